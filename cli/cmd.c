/* cmd.c — see cmd.h: the option parser and how commands report. */
#include "cmd.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"

/* ---- the command's state (one command per process) ------------------------
 */

#define MAX_HINTS 8
static struct {
  const char *cmd;
  int json, quiet, json_done;
  FILE *json_out;
  char error[8192];
  const char *status;
  char hints[MAX_HINTS][1024];
  size_t n_hints;
} g;

void cli_begin(const char *cmd_name, int json, int quiet) {
  g.cmd = cmd_name;
  g.json = json;
  g.quiet = quiet;
}
const char *cli_cmd_name(void) {
  return g.cmd ? g.cmd : "";
}
int cli_json_mode(void) {
  return g.json;
}
int cli_quiet(void) {
  return g.quiet;
}
FILE *cli_json_out(void) {
  return g.json_out ? g.json_out : stdout;
}
void cli_set_json_out(FILE *f) {
  g.json_out = f;
}
void cli_json_done(void) {
  g.json_done = 1;
}

/* "tsd CMD: " (or "tsd: " before a command is known) */
static void prefix(char *out, size_t cap) {
  if (g.cmd)
    snprintf(out, cap, "tsd %s: ", g.cmd);
  else
    snprintf(out, cap, "tsd: ");
}

static void vline(FILE *f, const char *head, char *keep, size_t keep_cap,
                  const char *fmt, va_list ap) {
  char raw[8192];
  int n = vsnprintf(raw, sizeof raw, fmt, ap);
  (void)n;
  if (keep) snprintf(keep, keep_cap, "%s", raw);
  char pre[64];
  prefix(pre, sizeof pre);
  cli_msgf(f, "%s%s%s", pre, head, raw);
}

int cli_error(tsd_status status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  /* the first error is the one a --json caller gets */
  int first = !g.status;
  vline(stderr, "", first ? g.error : NULL, sizeof g.error, fmt, ap);
  va_end(ap);
  if (first) g.status = tsd_status_name(status);
  return CLI_EXIT_USAGE;
}

void cli_hint(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *keep = g.n_hints < MAX_HINTS ? g.hints[g.n_hints++] : NULL;
  vline(stderr, "hint: ", keep, sizeof g.hints[0], fmt, ap);
  va_end(ap);
}

void cli_status(const char *fmt, ...) {
  if (g.quiet) return;
  va_list ap;
  va_start(ap, fmt);
  vline(stderr, "", NULL, 0, fmt, ap);
  va_end(ap);
}

void cli_json_error_flush(void) {
  if (!g.json || g.json_done) return;
  FILE *f = cli_json_out();
  fprintf(f, "{\"schema_version\": %d, \"ok\": false, \"error\": ",
          CLI_SCHEMA_VERSION);
  const char *e = g.status ? g.error : "failed";
  cli_json_str(f, e, strlen(e));
  fprintf(f, ", \"status\": \"%s\", \"hints\": [",
          g.status ? g.status : tsd_status_name(TSD_ERR_INVALID_ARG));
  for (size_t i = 0; i < g.n_hints; i++) {
    if (i) fputs(", ", f);
    cli_json_str(f, g.hints[i], strlen(g.hints[i]));
  }
  fputs("]}\n", f);
  g.json_done = 1;
}

/* ---- usage errors -----------------------------------------------------------
 */

int cli_usage(const cli_command *cmd, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int first = !g.status;
  vline(stderr, "", first ? g.error : NULL, sizeof g.error, fmt, ap);
  va_end(ap);
  if (first) g.status = tsd_status_name(TSD_ERR_INVALID_ARG);
  fputs(cmd->usage, stderr);
  fprintf(stderr, "try 'tsd %s --help'\n", cmd->name);
  return CLI_EXIT_USAGE;
}

/* ---- did you mean
 * ------------------------------------------------------------- */

size_t cli_edit_distance(const char *a, size_t na, const char *b, size_t nb,
                         size_t cap) {
  if ((na > nb ? na - nb : nb - na) > cap) return cap + 1;
  if (nb > 256) return cap + 1;
  size_t row[257];
  for (size_t j = 0; j <= nb; j++)
    row[j] = j;
  for (size_t i = 1; i <= na; i++) {
    size_t diag = row[0], best = row[0] = i;
    for (size_t j = 1; j <= nb; j++) {
      size_t up = row[j];
      size_t v = diag + (a[i - 1] != b[j - 1]);
      if (up + 1 < v) v = up + 1;
      if (row[j - 1] + 1 < v) v = row[j - 1] + 1;
      row[j] = v;
      diag = up;
      if (v < best) best = v;
    }
    if (best > cap) return cap + 1;
  }
  return row[nb] > cap ? cap + 1 : row[nb];
}

/* The command's option closest to `name` (by edit distance, at most 2 or a
 * third of its length; or the one option it is a prefix of), or NULL. */
static const char *closest_option(const cli_command *cmd, const char *name,
                                  size_t n) {
  const char *best = NULL, *prefix_of = NULL;
  size_t best_d = n / 3 > 2 ? n / 3 : 2;
  int n_prefix = 0;
  for (const cli_opt *o = cmd->opts; o->name; o++) {
    for (int k = 0; k < 2; k++) {
      const char *cand = k ? o->alias : o->name;
      if (!cand) continue;
      if (n >= 3 && !strncmp(cand, name, n) && strlen(cand) > n) {
        prefix_of = cand;
        n_prefix++;
      }
      /* a short option ("-w") is one edit from every other: no guess */
      if (n < 4) continue;
      size_t d = cli_edit_distance(name, n, cand, strlen(cand), best_d);
      if (d <= best_d && (!best || d < best_d)) {
        best = cand;
        best_d = d;
      }
    }
  }
  if (n_prefix == 1) return prefix_of;
  return best;
}

/* ---- the parser
 * -------------------------------------------------------------- */

void cli_parser_init(cli_parser *p, const cli_command *cmd, int argc,
                     char **argv) {
  memset(p, 0, sizeof *p);
  p->cmd = cmd;
  p->argc = argc;
  p->argv = argv;
}

int cli_next_own(cli_parser *p, cli_common_args *c, cli_model_args *ma,
                 tsd_load_options *opts, int *rc) {
  for (;;) {
    int id = cli_next(p);
    if (id == CLI_END || id == CLI_ARG) return id;
    if (id == CLI_HELP || id == CLI_BAD) {
      *rc = id == CLI_HELP ? CLI_EXIT_OK : CLI_EXIT_USAGE;
      return CLI_END;
    }
    int r = cli_common_opt(c, p->cmd, id, p->value);
    if (!r && ma) r = cli_model_opt(ma, opts, p->cmd, id, p->value);
    if (r < 0) {
      *rc = CLI_EXIT_USAGE;
      return CLI_END;
    }
    if (!r) return id; /* the command's own */
  }
}

int cli_next(cli_parser *p) {
  p->value = NULL;
  p->opt = NULL;
  if (p->i >= p->argc) return CLI_END;
  const char *a = p->argv[p->i++];
  if (p->only_args || a[0] != '-' || !a[1]) {
    p->value = a;
    return CLI_ARG;
  }
  if (!strcmp(a, "--")) {
    p->only_args = 1;
    return cli_next(p);
  }
  p->opt = a;
  if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
    fputs(p->cmd->help, stdout);
    return CLI_HELP;
  }
  /* --name=value */
  const char *eq = a[1] == '-' ? strchr(a, '=') : NULL;
  size_t n = eq ? (size_t)(eq - a) : strlen(a);
  for (const cli_opt *o = p->cmd->opts; o->name; o++) {
    int hit = (strlen(o->name) == n && !strncmp(o->name, a, n)) ||
              (o->alias && strlen(o->alias) == n && !strncmp(o->alias, a, n));
    if (!hit) continue;
    if (!o->takes_value) {
      if (eq) {
        cli_usage(p->cmd, "option '%.*s' takes no value", (int)n, a);
        return CLI_BAD;
      }
      return o->id;
    }
    if (eq) {
      p->value = eq + 1;
    } else if (p->i < p->argc) {
      p->value = p->argv[p->i++];
    } else {
      cli_usage(p->cmd, "option '%s' needs a value", a);
      return CLI_BAD;
    }
    return o->id;
  }
  const char *near = closest_option(p->cmd, a, n);
  if (near)
    cli_usage(p->cmd, "unknown option '%.*s' (did you mean '%s'?)", (int)n, a,
              near);
  else
    cli_usage(p->cmd, "unknown option '%.*s'%s", (int)n, a,
              " (put -- before an argument that starts with -)");
  return CLI_BAD;
}
