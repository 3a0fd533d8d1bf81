/* cli_common.c — see cli_common.h. */
#define _POSIX_C_SOURCE 200809L
#include "cli_common.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli_platform.h"

#define EXIT_USAGE CLI_EXIT_USAGE

/* The library's message without a leading C function name ("tsd_load: "):
 * a command's user never called one. */
static const char *user_message(const char *msg) {
  if (strncmp(msg, "tsd_", 4)) return msg;
  const char *p = msg + 4;
  while ((*p >= 'a' && *p <= 'z') || *p == '_') p++;
  return p[0] == ':' && p[1] == ' ' ? p + 2 : msg;
}

int cli_fail(const char *what, tsd_status st) {
  int ratio = st == TSD_ERR_LIMIT && strstr(tsd_last_error(), "max_output_ratio");
  /* tsd_last_error() is escaped already (TSD_ESCAPE_MESSAGE) */
  cli_error(st, "%s: %s (%s)", what, user_message(tsd_last_error()),
            tsd_status_name(st));
  if (ratio)
    cli_hint("--max-output-ratio N (or inf) raises the bound, if you want "
             "that output");
  return EXIT_USAGE;
}

const char *cli_key(char *buf, size_t cap, const tsd_entry *e) {
  tsd_escape(buf, cap, e->key, e->key_len, TSD_ESCAPE_MESSAGE);
  return buf;
}

void cli_msgf(FILE *f, const char *fmt, ...) {
  char raw[8192];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(raw, sizeof raw, fmt, ap);
  va_end(ap);
  size_t len = n < 0 ? 0 : (size_t)n < sizeof raw ? (size_t)n : sizeof raw - 1;
  cli_text(f, raw, len, TSD_ESCAPE_MESSAGE);
  fputc('\n', f);
}

/* ---- outputs --------------------------------------------------------------- */

static tsd_open_options open_opts = TSD_OPEN_OPTIONS_INIT;

const tsd_open_options *cli_open_options(void) {
  return &open_opts;
}

void cli_open_mapped(void) {
  open_opts.flags |= TSD_OPEN_MAP;
}

int cli_output_ratio(const cli_command *cmd, const char *val) {
  if (!strcmp(val, "inf")) {
    open_opts.limits.max_output_ratio = UINT64_MAX;
    return 1;
  }
  char *end;
  errno = 0;
  unsigned long long v = strtoull(val, &end, 10);
  if (errno || end == val || *end || v == 0 || val[0] == '-') {
    cli_usage(cmd, "--max-output-ratio takes a positive integer or 'inf': %s",
              val);
    return -1;
  }
  open_opts.limits.max_output_ratio = (uint64_t)v;
  return 1;
}

int cli_same_file(const char *out, const char *in) {
  if (!out || !in || !strcmp(out, "-") || !strcmp(in, "-")) return 0;
  if (!cli_platform_same_file(out, in)) return 0;
  cli_error(TSD_ERR_INVALID_ARG,
            "OUT %s is the input %s (the same file: a link or another path to "
            "it); write elsewhere",
            out, in);
  return 1;
}

/* The named temporary of the save in progress, for the signal handler:
 * written only with the signals blocked, read only by the handler. */
static char temp_path[4096];
static volatile sig_atomic_t temp_set;
static const int save_signals[] = {SIGINT, SIGTERM, SIGHUP};

static void on_signal(int sig) {
  if (temp_set) unlink(temp_path);
  signal(sig, SIG_DFL);
  raise(sig);
}

static void on_temp_file(void *user, const char *path) {
  (void)user;
  sigset_t block, old;
  sigemptyset(&block);
  for (size_t i = 0; i < sizeof save_signals / sizeof *save_signals; i++)
    sigaddset(&block, save_signals[i]);
  sigprocmask(SIG_BLOCK, &block, &old);
  temp_set = 0;
  if (path && strlen(path) < sizeof temp_path) {
    memcpy(temp_path, path, strlen(path) + 1);
    temp_set = 1;
  }
  sigprocmask(SIG_SETMASK, &old, NULL);
}

int cli_save(const tsd_model *model, const char *out) {
  return cli_save_progress(model, out, NULL);
}

int cli_save_progress(const tsd_model *model, const char *out,
                      const char *in_path) {
  tsd_save_options so = TSD_SAVE_OPTIONS_INIT;
  cli_progress progress;
  memset(&progress, 0, sizeof progress);
  if (in_path) cli_progress_setup_save(&progress, &so, in_path);
  if (!strcmp(out, "-")) {
    if (isatty(STDOUT_FILENO))
      return cli_error(TSD_ERR_INVALID_ARG,
                       "not writing a binary file to a terminal (redirect "
                       "stdout, or write to a file)");
    if (fflush(stdout) != 0)
      return cli_error(TSD_ERR_IO, "cannot write to stdout: %s",
                       strerror(errno));
    so.fd = STDOUT_FILENO;
    tsd_status st = tsd_model_save(model, "<stdout>", &so);
    cli_progress_end(&progress);
    return st == TSD_OK ? -1 : cli_fail("cannot write output", st);
  }
  /* The library installs no handlers; the command removes a named
   * temporary (a file system without O_TMPFILE) when it is interrupted. */
  struct sigaction sa, old[3];
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  for (size_t i = 0; i < 3; i++)
    sigaction(save_signals[i], &sa, &old[i]);
  so.temp_file = on_temp_file;
  tsd_status st = tsd_model_save(model, out, &so);
  cli_progress_end(&progress);
  on_temp_file(NULL, NULL);
  for (size_t i = 0; i < 3; i++)
    sigaction(save_signals[i], &old[i], NULL);
  return st == TSD_OK ? -1 : cli_fail("cannot write output", st);
}

/* ---- opening a checkpoint -------------------------------------------------- */

/* Globals only a TorchScript archive's data.pkl holds: its module classes
 * (`__torch__.Net`) and the jit's own pickle helpers. */
static int is_torchscript_refusal(const char *msg) {
  return strstr(msg, "refusing global '__torch__.") ||
         strstr(msg, "refusing global 'torch.jit.");
}

/* stdin, read whole: one input per command may be "-". */
static char *stdin_data;
static size_t stdin_size;
static int stdin_used;

void cli_inputs_free(void) {
  free(stdin_data);
  stdin_data = NULL;
}

static int read_stdin(void) {
  if (stdin_used)
    return cli_error(TSD_ERR_INVALID_ARG,
                     "only one input can be '-' (stdin)");
  stdin_used = 1;
  if (isatty(STDIN_FILENO))
    return cli_error(TSD_ERR_INVALID_ARG,
                     "not reading a checkpoint from a terminal (redirect "
                     "stdin, or name a file)");
  size_t cap = 1 << 16;
  stdin_data = malloc(cap);
  if (!stdin_data) return cli_error(TSD_ERR_NOMEM, "out of memory");
  for (;;) {
    if (stdin_size == cap) {
      char *p = cap < SIZE_MAX / 2 ? realloc(stdin_data, cap * 2) : NULL;
      if (!p)
        return cli_error(TSD_ERR_NOMEM, "out of memory reading stdin (%zu "
                                        "bytes so far)",
                         stdin_size);
      stdin_data = p;
      cap *= 2;
    }
    ssize_t r = read(STDIN_FILENO, stdin_data + stdin_size, cap - stdin_size);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0)
      return cli_error(TSD_ERR_IO, "cannot read stdin: %s", strerror(errno));
    if (r == 0) break;
    stdin_size += (size_t)r;
  }
  return -1;
}

/* A directory given as CHECKPOINT: a sharded checkpoint is opened by its
 * index; name the directory's *.index.json (or its checkpoint files). */
static int refuse_directory(const char *path) {
  cli_error(TSD_ERR_IO, "%s is a directory, not a checkpoint file", path);
  DIR *d = opendir(path);
  if (!d) return EXIT_USAGE;
  char found[3][1024];
  size_t n = 0, n_other = 0;
  char other[3][1024];
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    size_t len = strlen(e->d_name);
    static const char *const exts[] = {".pth", ".pt", ".bin", ".safetensors",
                                       ".ckpt"};
    if (len > 11 && !strcmp(e->d_name + len - 11, ".index.json")) {
      if (n < 3)
        snprintf(found[n], sizeof found[n], "%s/%s", path, e->d_name);
      n++;
      continue;
    }
    for (size_t k = 0; k < sizeof exts / sizeof *exts; k++) {
      size_t el = strlen(exts[k]);
      if (len > el && !strcmp(e->d_name + len - el, exts[k])) {
        if (n_other < 3)
          snprintf(other[n_other], sizeof other[n_other], "%s/%s", path,
                   e->d_name);
        n_other++;
        break;
      }
    }
  }
  closedir(d);
  if (n == 1)
    cli_hint("a sharded checkpoint is opened by its index: %s", found[0]);
  else if (n > 1)
    cli_hint("a sharded checkpoint is opened by its index: %s, %s%s",
             found[0], found[1], n > 2 ? ", ..." : "");
  else if (n_other == 1)
    cli_hint("name the checkpoint file: %s", other[0]);
  else if (n_other > 1)
    cli_hint("name one checkpoint file: %s, %s%s", other[0], other[1],
             n_other > 2 ? ", ..." : "");
  return EXIT_USAGE;
}

int cli_open_checkpoint(tsd_checkpoint **out, const char *path,
                        int torchscript) {
  *out = NULL;
  struct stat sb;
  int from_stdin = !strcmp(path, "-");
  if (!from_stdin && stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
    return refuse_directory(path);
  if (from_stdin && torchscript)
    return cli_error(TSD_ERR_INVALID_ARG,
                     "--torchscript-checkpoint reads a file, not stdin");
  if (from_stdin) {
    int rc = read_stdin();
    if (rc >= 0) return rc;
  }
  tsd_status st = torchscript ? tsd_checkpoint_open_torchscript(out, path, NULL)
                  : from_stdin
                      ? tsd_checkpoint_open_memory(out, stdin_data, stdin_size,
                                                   cli_open_options())
                      : tsd_checkpoint_open(out, path, cli_open_options());
  if (st == TSD_OK) {
    /* A TorchScript archive's data.pkl reads as inert module objects
     * (`__torch__.Net` placeholders), which hold no state dict to work on. */
    const char *cls = tsd_checkpoint_root_class(*out);
    if (torchscript || !cls || strncmp(cls, "__torch__.", 10) != 0) return -1;
    cli_error(TSD_ERR_TYPE,
              "cannot read checkpoint: %s holds a TorchScript module object "
              "('%.200s'), not a state dict (TSD_ERR_TYPE)",
              path, cls);
    cli_hint("%s looks like a TorchScript archive; if you trust it, open it "
             "with --torchscript-checkpoint",
             path);
    tsd_checkpoint_free(*out);
    *out = NULL;
    return EXIT_USAGE;
  }
  /* Decided before cli_fail: the message is only ours until the next call. */
  int hint = st == TSD_ERR_REFUSED && is_torchscript_refusal(tsd_last_error());
  int rc = cli_fail("cannot read checkpoint", st);
  if (hint)
    cli_hint("%s looks like a TorchScript archive; if you trust it, open it "
             "with --torchscript-checkpoint",
             path);
  return rc;
}

int cli_key_not_found(const tsd_checkpoint *ck, const char *path,
                      const char *what, const char *key) {
  cli_error(TSD_ERR_NOT_FOUND, "%s: no key '%s' in %s", what, key, path);
  size_t n = tsd_checkpoint_count(ck), klen = strlen(key);
  size_t cap = klen / 4 > 2 ? klen / 4 : 2, best_d = cap + 1;
  char best[1024] = "";
  for (size_t i = 0; i < n; i++) {
    tsd_entry e;
    if (tsd_checkpoint_entry(&e, ck, i) != TSD_OK) continue;
    size_t d = cli_edit_distance(key, klen, e.key, e.key_len,
                                 best_d <= cap ? best_d - 1 : cap);
    if (d < best_d) {
      best_d = d;
      cli_key(best, sizeof best, &e);
      if (d == 0) break;
    }
  }
  if (best[0]) cli_hint("did you mean '%s'?", best);
  return EXIT_USAGE;
}

/* ---- remapping flags ------------------------------------------------------ */

static int remap_opt(cli_remap *r, const cli_command *cmd, int id,
                     const char *val) {
  if (id == OPT_STRIP) {
    if (!val[0]) {
      cli_usage(cmd, "--strip-prefix needs a non-empty prefix");
      return -1;
    }
    if (r->n_strip == CLI_MAX_RULES) {
      cli_usage(cmd, "too many --strip-prefix");
      return -1;
    }
    r->strip[r->n_strip++] = val;
  } else if (id == OPT_ADD) {
    r->add = val;
  } else {
    const char *eq = strchr(val, '=');
    if (!eq || eq == val) {
      cli_usage(cmd, "--rename takes OLD=NEW with a non-empty OLD: %s", val);
      return -1;
    }
    if (r->n_renames == CLI_MAX_RULES) {
      cli_usage(cmd, "too many --rename");
      return -1;
    }
    char *from = strndup(val, (size_t)(eq - val));
    if (!from) {
      cli_error(TSD_ERR_NOMEM, "out of memory");
      return -1;
    }
    r->rename_from[r->n_renames] = from;
    r->renames[r->n_renames].from = from;
    r->renames[r->n_renames].to = eq + 1;
    r->n_renames++;
  }
  return 1;
}

int cli_common_opt(cli_common_args *c, const cli_command *cmd, int id,
                   const char *val) {
  switch (id) {
  case OPT_STRIP:
  case OPT_ADD:
  case OPT_RENAME:
    return remap_opt(&c->remap, cmd, id, val);
  case OPT_SELECT:
    if (c->n_select == CLI_MAX_SELECT) {
      cli_usage(cmd, "too many --select");
      return -1;
    }
    c->selects[c->n_select++] = val;
    return 1;
  case OPT_RATIO:
    return cli_output_ratio(cmd, val);
  case OPT_TS_CKPT:
    c->torchscript = 1;
    return 1;
  case OPT_JSON:
    c->json = 1;
    return 1;
  case OPT_QUIET: /* taken by main before the command runs (cli_begin) */
    return 1;
  default:
    return 0;
  }
}

void cli_common_free(cli_common_args *c) {
  cli_remap_free(&c->remap);
}

int cli_remap_any(const cli_remap *r) {
  return r->n_strip || r->n_renames || r->add;
}

void cli_remap_apply(const cli_remap *r, tsd_load_options *o) {
  o->strip_prefixes = r->n_strip ? r->strip : NULL;
  o->n_strip_prefixes = r->n_strip;
  o->renames = r->n_renames ? r->renames : NULL;
  o->n_renames = r->n_renames;
  o->add_prefix = r->add;
}

void cli_remap_free(cli_remap *r) {
  for (size_t i = 0; i < r->n_renames; i++) free(r->rename_from[i]);
  r->n_renames = 0;
}

void cli_remap_name(const cli_remap *r, const char *key, char *out,
                    size_t cap) {
  for (size_t i = 0; i < r->n_strip; i++) {
    size_t n = strlen(r->strip[i]);
    if (!strncmp(key, r->strip[i], n)) key += n;
  }
  const char *to = "";
  for (size_t i = 0; i < r->n_renames; i++) {
    size_t n = strlen(r->renames[i].from);
    if (!strncmp(key, r->renames[i].from, n)) {
      to = r->renames[i].to;
      key += n;
      break;
    }
  }
  snprintf(out, cap, "%s%s%s", r->add ? r->add : "", to, key);
}

/* ---- selection ------------------------------------------------------------ */

static void path_append(char *path, size_t cap, const char *key) {
  size_t len = strlen(path);
  snprintf(path + len, cap - len, "%s%s", len ? "/" : "", key);
}

int cli_select(tsd_checkpoint *ck, const char *const *selects, size_t n,
               char *path, size_t cap) {
  path[0] = '\0';
  tsd_status st;
  if (n == 0) {
    const char *key = NULL;
    st = tsd_checkpoint_select_auto(&key, ck);
    /* No candidate: load the dict as it is, as PyTorch would be given it. */
    if (st == TSD_OK && key) {
      path_append(path, cap, key);
      cli_note("using the state dict under '%s' (--select to choose "
               "another)",
               key);
    }
    return -1;
  }
  for (size_t i = 0; i < n; i++) {
    if (!strcmp(selects[i], "auto")) {
      const char *key = NULL;
      st = tsd_checkpoint_select_auto(&key, ck);
      if (st != TSD_OK) return cli_fail("--select auto", st);
      if (key) {
        path_append(path, cap, key);
        cli_note("--select auto: using '%s'", key);
      }
    } else {
      st = tsd_checkpoint_select(ck, selects[i]);
      if (st == TSD_ERR_NOT_FOUND) {
        char where[1200];
        snprintf(where, sizeof where, "the %s", path[0] ? "selected dict" : "checkpoint");
        return cli_key_not_found(ck, where, "--select", selects[i]);
      }
      if (st != TSD_OK) return cli_fail("--select", st);
      path_append(path, cap, selects[i]);
    }
  }
  return -1;
}

/* ---- progress bar ---------------------------------------------------------- */

#define PROGRESS_MIN_BYTES ((long long)64 << 20)

static int progress_cb(void *user, uint64_t done, uint64_t total) {
  cli_progress *p = user;
  int pct = total ? (int)(done * 100 / total) : 100;
  if (pct == p->last_pct) return 0;
  p->last_pct = pct;
  char bar[41];
  int fill = pct * 40 / 100;
  for (int i = 0; i < 40; i++) bar[i] = i < fill ? '#' : '.';
  bar[40] = '\0';
  fprintf(stderr, "\r%s [%s] %3d%%  %.1f/%.1f MB", p->verb, bar, pct,
          (double)done / 1e6, (double)total / 1e6);
  fflush(stderr);
  return 0;
}

/* A bar is worth showing: stderr a terminal, not --quiet, a large input
 * (stdin: its size read). */
static int progress_wanted(const char *in_path) {
  struct stat sb;
  if (cli_quiet() || !isatty(STDERR_FILENO)) return 0;
  if (!strcmp(in_path, "-"))
    return fstat(STDIN_FILENO, &sb) == 0 && S_ISREG(sb.st_mode) &&
           (long long)sb.st_size > PROGRESS_MIN_BYTES;
  return stat(in_path, &sb) == 0 && (long long)sb.st_size > PROGRESS_MIN_BYTES;
}

void cli_progress_setup(cli_progress *p, tsd_load_options *o,
                        const char *ckpt_path) {
  memset(p, 0, sizeof *p);
  p->last_pct = -1;
  p->verb = "loading";
  if (!progress_wanted(ckpt_path)) return;
  p->active = 1;
  o->progress = progress_cb;
  o->progress_user = p;
}

void cli_progress_setup_save(cli_progress *p, tsd_save_options *o,
                             const char *in_path) {
  memset(p, 0, sizeof *p);
  p->last_pct = -1;
  p->verb = "writing";
  if (!progress_wanted(in_path)) return;
  p->active = 1;
  o->progress = progress_cb;
  o->progress_user = p;
}

void cli_progress_end(cli_progress *p) {
  if (p->active && p->last_pct >= 0) fputc('\n', stderr);
}

/* ---- JSON ------------------------------------------------------------------ */

/* Escapes s[0..n) in pieces cut before a UTF-8 lead byte (never inside a
 * character), so a key of any size costs a fixed buffer. */
#define CLI_CHUNK 4096
#define CLI_ESC_MAX 6 /* the longest escape per input byte: \udcNN */

size_t cli_text(FILE *f, const char *s, size_t n, tsd_escape_mode mode) {
  char esc[CLI_CHUNK * CLI_ESC_MAX + 1];
  size_t cols = 0;
  for (size_t i = 0; i < n;) {
    size_t end = n - i > CLI_CHUNK ? i + CLI_CHUNK : n;
    for (int back = 0; back < 3 && end < n && end > i + 1 &&
                       ((unsigned char)s[end] & 0xC0) == 0x80;
         back++)
      end--;
    size_t k = tsd_escape(esc, sizeof esc, s + i, end - i, mode);
    if (k >= sizeof esc) k = strlen(esc); /* cannot happen: 6 per byte */
    if (f) fwrite(esc, 1, k, f);
    for (size_t j = 0; j < k; j++)
      if (((unsigned char)esc[j] & 0xC0) != 0x80) cols++;
    i = end;
  }
  return cols;
}

size_t cli_text_width(const char *s, size_t n) {
  return cli_text(NULL, s, n, TSD_ESCAPE_TEXT);
}

void cli_text_pad(FILE *f, const char *s, size_t n, size_t width) {
  for (size_t c = cli_text(f, s, n, TSD_ESCAPE_TEXT); c < width; c++)
    fputc(' ', f);
}

void cli_json_str(FILE *f, const char *s, size_t n) {
  fputc('"', f);
  cli_text(f, s, n, TSD_ESCAPE_JSON);
  fputc('"', f);
}

void cli_json_shape(FILE *f, size_t ndim, const int64_t *shape) {
  fputc('[', f);
  for (size_t i = 0; i < ndim; i++)
    fprintf(f, "%s%lld", i ? ", " : "", (long long)shape[i]);
  fputc(']', f);
}

void cli_print_message(FILE *f, const tsd_report *r) {
  if (tsd_report_ok(r)) {
    /* "<All keys matched successfully>" or the _IncompatibleKeys repr,
     * whose keys Python's repr (report.c) has escaped already */
    fprintf(f, "%s\n", tsd_report_message(r));
    return;
  }
  /* report.c's RuntimeError text, rebuilt with every piece escaped: the
   * structure's own newlines and tabs stay, a key's cannot forge a line */
  const char *cls = tsd_report_class_name(r);
  fputs("Error(s) in loading state_dict for ", f);
  cli_text(f, cls, strlen(cls), TSD_ESCAPE_MESSAGE);
  fputs(":\n\t", f);
  for (size_t i = 0; i < tsd_report_count(r, TSD_LIST_ERRORS); i++) {
    const char *e = tsd_report_item(r, TSD_LIST_ERRORS, i);
    if (i) fputs("\n\t", f);
    cli_text(f, e, strlen(e), TSD_ESCAPE_MESSAGE);
  }
  fputc('\n', f);
}

void cli_json_str_or_null(FILE *f, const char *s) {
  if (s && s[0])
    cli_json_str(f, s, strlen(s));
  else
    fputs("null", f);
}

void cli_shape_text(char *out, size_t cap, size_t ndim, const int64_t *shape) {
  size_t len = (size_t)snprintf(out, cap, "[");
  for (size_t i = 0; i < ndim && len < cap; i++)
    len += (size_t)snprintf(out + len, cap - len, "%s%lld", i ? ", " : "",
                            (long long)shape[i]);
  if (len < cap) snprintf(out + len, cap - len, "]");
}

static void json_list(FILE *f, const tsd_report *r, tsd_list l) {
  fputc('[', f);
  for (size_t i = 0; i < tsd_report_count(r, l); i++) {
    const char *s = tsd_report_item(r, l, i);
    if (i) fputs(", ", f);
    cli_json_str(f, s, strlen(s));
  }
  fputc(']', f);
}

static void json_mismatches(FILE *f, const tsd_report *r, tsd_list l) {
  fputc('[', f);
  size_t k = 0;
  for (size_t i = 0; i < tsd_report_count(r, l); i++) {
    tsd_mismatch mm;
    if (tsd_report_mismatch(&mm, r, l, i) != TSD_OK) continue;
    fputs(k++ ? ", {\"key\": " : "{\"key\": ", f);
    cli_json_str(f, mm.key, strlen(mm.key));
    fputs(", \"checkpoint_shape\": ", f);
    cli_json_shape(f, mm.checkpoint_ndim, mm.checkpoint_shape);
    fputs(", \"model_shape\": ", f);
    cli_json_shape(f, mm.model_ndim, mm.model_shape);
    fputc('}', f);
  }
  fputc(']', f);
}

static void report_json(FILE *f, const tsd_report *r, const char *path,
                        int bind) {
  fprintf(f, "{\"schema_version\": %d, \"ok\": %s, \"class_name\": ",
          CLI_SCHEMA_VERSION, tsd_report_ok(r) ? "true" : "false");
  const char *cls = tsd_report_class_name(r);
  cli_json_str(f, cls, strlen(cls));
  fputs(", \"matched_keys\": ", f);
  json_list(f, r, TSD_LIST_MATCHED);
  fputs(", \"missing_keys\": ", f);
  json_list(f, r, TSD_LIST_MISSING);
  fputs(", \"unexpected_keys\": ", f);
  json_list(f, r, TSD_LIST_UNEXPECTED);
  fputs(", \"size_mismatches\": ", f);
  json_mismatches(f, r, TSD_LIST_MISMATCHED);
  fputs(", \"popped_keys\": [", f);
  for (size_t i = 0, k = 0; i < tsd_report_count(r, TSD_LIST_POPPED); i++) {
    tsd_mismatch mm;
    if (tsd_report_mismatch(&mm, r, TSD_LIST_POPPED, i) != TSD_OK) continue;
    if (k++) fputs(", ", f);
    cli_json_str(f, mm.key, strlen(mm.key));
  }
  fputs("], \"popped\": ", f);
  json_mismatches(f, r, TSD_LIST_POPPED);
  fputs(", \"error_msgs\": ", f);
  json_list(f, r, TSD_LIST_ERRORS);
  fputs(", \"message\": ", f);
  const char *msg = tsd_report_message(r);
  cli_json_str(f, msg, strlen(msg));
  fputs(", \"selected\": ", f);
  cli_json_str_or_null(f, path);
  if (bind) {
    fputs(", \"bound\": ", f);
    json_list(f, r, TSD_LIST_BOUND);
    fputs(", \"copied\": [", f);
    for (size_t i = 0; i < tsd_report_count(r, TSD_LIST_COPIED); i++) {
      const char *key = tsd_report_item(r, TSD_LIST_COPIED, i);
      const char *why = tsd_report_item(r, TSD_LIST_COPY_REASONS, i);
      if (!why) why = "";
      fputs(i ? ", {\"key\": " : "{\"key\": ", f);
      cli_json_str(f, key, strlen(key));
      fputs(", \"reason\": ", f);
      cli_json_str(f, why, strlen(why));
      fputc('}', f);
    }
    fputc(']', f);
  }
  fputs("}\n", f);
  cli_json_done();
}

void cli_print_report_json(FILE *f, const tsd_report *r, const char *path) {
  report_json(f, r, path, 0);
}

void cli_print_report_json_bind(FILE *f, const tsd_report *r,
                                const char *path) {
  report_json(f, r, path, 1);
}

/* ---- hints after a load ------------------------------------------------------ */

/* The first dotted component of key, with its dot ("module."); 0 if none. */
static size_t first_component(const char *key) {
  const char *dot = strchr(key, '.');
  return dot && dot != key ? (size_t)(dot - key) + 1 : 0;
}

void cli_report_hints(const tsd_report *r, const tsd_model *m,
                      const tsd_load_options *o) {
  size_t n_mm = tsd_report_count(r, TSD_LIST_MISMATCHED);
  if (n_mm && !o->auto_pop)
    cli_hint("%zu key%s differ%s in shape from the model's: --auto-pop drops "
             "%s from the checkpoint and loads the rest (tsd diff shows both "
             "shapes)",
             n_mm, n_mm == 1 ? "" : "s", n_mm == 1 ? "s" : "",
             n_mm == 1 ? "it" : "them");
  size_t n_un = tsd_report_count(r, TSD_LIST_UNEXPECTED);
  if (!n_un) return;
  const char *k0 = tsd_report_item(r, TSD_LIST_UNEXPECTED, 0);
  size_t plen = first_component(k0);
  if (!plen) return;
  for (size_t i = 1; i < n_un; i++)
    if (strncmp(tsd_report_item(r, TSD_LIST_UNEXPECTED, i), k0, plen))
      return;
  /* a prefix the model has (a submodule "model.") is no wrapper's */
  size_t n = tsd_model_tensor_count(m);
  for (size_t i = 0; i < n; i++) {
    tsd_tensor_info ti;
    if (tsd_model_tensor(&ti, m, i) == TSD_OK && !strncmp(ti.name, k0, plen))
      return;
  }
  char prefix[256];
  snprintf(prefix, sizeof prefix, "%.*s", (int)(plen < 255 ? plen : 255), k0);
  cli_hint("%s unexpected key%s start%s with '%s', which no model key does: "
           "--strip-prefix %s removes it",
           n_un == 1 ? "the" : "all", n_un == 1 ? "" : "s",
           n_un == 1 ? "s" : "", prefix, prefix);
}

/* ---- models ---------------------------------------------------------------- */

void cli_model_free(cli_model *m) {
  tsd_model_free(m->model);
  for (size_t i = 0; i < m->n_buffers; i++) free(m->buffers[i]);
  free(m->buffers);
  memset(m, 0, sizeof *m);
}

static int in_list(const char *const *list, size_t n, const char *s) {
  for (size_t i = 0; i < n; i++)
    if (!strcmp(list[i], s)) return 1;
  return 0;
}

/* tsd_model_add_tensor takes a C string: a key holding a NUL byte
 * ('head\0.evil') would be written back cut ('head'). Refused instead,
 * naming the key escaped; 1 when refused (message printed). */
static int refuse_nul_key(const tsd_entry *e, const char *what) {
  if (!memchr(e->key, '\0', e->key_len)) return 0;
  char key[1024];
  cli_error(TSD_ERR_UNSUPPORTED,
            "%s%skey '%s' holds a NUL byte; tsd writes keys as C strings and "
            "would cut it",
            what ? what : "", what ? ": " : "", cli_key(key, sizeof key, e));
  return 1;
}

/* ---- --model-spec LAYOUT.json (branch model) ---- */

/* A module's extra state: matched as PyTorch's set_extra_state would take
 * it; the CLI has no object to give it to (and -o cannot write it). */
static tsd_status layout_extra_state(void *user, const char *key,
                                     const tsd_checkpoint *ckpt,
                                     size_t index) {
  (void)user, (void)key, (void)ckpt, (void)index;
  return TSD_OK;
}

/* SPEC is a layout file (scripts/tsd_layout.py) when it is JSON whose
 * "format" is "tsd.layout" (a sharded index, also JSON, is not). Returns
 * -1 when built, an exit status on failure, -2 when SPEC is no layout. */
static int build_layout(cli_model *m, const cli_model_args *a) {
  /* Sniff without ever blocking: only a regular file (a FIFO or device
   * goes on to tsd_checkpoint_open, which refuses it at once). */
  int fd = open(a->spec, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  struct stat sb;
  char head[64];
  ssize_t got = 0;
  if (fd >= 0 && fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode))
    got = read(fd, head, sizeof head);
  if (fd >= 0) close(fd);
  ssize_t i = 0;
  while (i < got && (head[i] == ' ' || head[i] == '\t' || head[i] == '\r' ||
                     head[i] == '\n'))
    i++;
  if (i >= got || head[i] != '{') return -2;
  /* The tensors' memory: one zeroed arena sized up front, kept as
   * m->buffers[0] (a block per tensor grew m->buffers one by one). */
  size_t bytes = 0;
  tsd_status st = tsd_layout_arena_bytes(&bytes, a->spec);
  if (st == TSD_ERR_TYPE) return -2;
  if (st != TSD_OK) return cli_fail("cannot build model from --model-spec", st);
  m->buffers = calloc(1, sizeof *m->buffers);
  void *arena = m->buffers ? calloc(1, bytes ? bytes : 1) : NULL;
  if (!arena) return cli_error(TSD_ERR_NOMEM, "out of memory");
  m->buffers[m->n_buffers++] = arena;
  tsd_layout_options o = TSD_LAYOUT_OPTIONS_INIT;
  o.arena = arena;
  o.arena_bytes = bytes;
  o.extra_state = layout_extra_state;
  o.class_name = a->class_name;
  st = tsd_model_from_layout(&m->model, a->spec, &o);
  if (st == TSD_ERR_TYPE) { /* (arena_bytes said it was a layout) */
    cli_model_free(m);
    return -2;
  }
  if (st != TSD_OK) return cli_fail("cannot build model from --model-spec", st);
  return -1;
}

static int build_spec(cli_model *m, const cli_model_args *a) {
  int rc = build_layout(m, a);
  if (rc != -2) return rc;
  tsd_checkpoint *spec = NULL;
  if (!strcmp(a->spec, "-")) {
    int rc = cli_open_checkpoint(&spec, "-", 0);
    if (rc >= 0) return rc;
  } else {
    tsd_status st0 = tsd_checkpoint_open(&spec, a->spec, cli_open_options());
    if (st0 != TSD_OK) return cli_fail("cannot read --model-spec", st0);
  }
  tsd_status st;
  /* The model holds every tensor of SPEC in memory: bounded by SPEC's size
   * (an expanded tensor is 4 bytes in a file, GiBs in memory). */
  st = tsd_checkpoint_output_bytes(NULL, spec);
  if (st != TSD_OK) {
    tsd_checkpoint_free(spec);
    return cli_fail("--model-spec", st);
  }
  st = tsd_model_new(&m->model, a->class_name ? a->class_name : "Model");
  size_t n_meta = tsd_checkpoint_metadata_count(spec);
  for (size_t i = 0; i < n_meta && st == TSD_OK; i++) {
    const char *prefix = tsd_checkpoint_metadata_prefix(spec, i);
    if (prefix)
      st = tsd_model_add_module(m->model, prefix, NULL,
                                tsd_checkpoint_module_version(spec, prefix));
  }
  size_t n = tsd_checkpoint_count(spec);
  m->buffers = calloc(n ? n : 1, sizeof *m->buffers);
  if (!m->buffers) {
    tsd_checkpoint_free(spec);
    return cli_error(TSD_ERR_NOMEM, "out of memory");
  }
  for (size_t i = 0; i < n && st == TSD_OK; i++) {
    tsd_entry e;
    st = tsd_checkpoint_entry(&e, spec, i);
    if (st != TSD_OK) break;
    if (e.kind != TSD_KIND_TENSOR || refuse_nul_key(&e, "--model-spec")) {
      char key[1024];
      if (e.kind != TSD_KIND_TENSOR)
        cli_error(TSD_ERR_TYPE, "--model-spec: entry '%s' is not a tensor (%s)",
                  cli_key(key, sizeof key, &e), e.type_repr);
      tsd_checkpoint_free(spec);
      return EXIT_USAGE;
    }
    size_t nbytes = (size_t)e.numel * tsd_dtype_size(e.dtype);
    void *buf = malloc(nbytes ? nbytes : 1);
    if (!buf) {
      char key[1024];
      tsd_checkpoint_free(spec);
      return cli_error(TSD_ERR_NOMEM, "out of memory for '%s'",
                       cli_key(key, sizeof key, &e));
    }
    m->buffers[m->n_buffers++] = buf;
    st = tsd_checkpoint_read(buf, nbytes, spec, i, e.dtype);
    if (st != TSD_OK) break;
    /* As tsd load's spec model: the norm layers' buffers are buffers (their
     * rules need it), everything else a parameter. */
    const char *last_dot = strrchr(e.key, '.');
    const char *leaf = last_dot ? last_dot + 1 : e.key;
    tsd_tensor_role role = TSD_PARAMETER;
    if (in_list(a->non_persistent, a->n_non_persistent, e.key))
      role = TSD_BUFFER_NON_PERSISTENT;
    else if (!strcmp(leaf, "running_mean") || !strcmp(leaf, "running_var") ||
             !strcmp(leaf, "num_batches_tracked"))
      role = TSD_BUFFER;
    st = tsd_model_add_tensor(m->model, e.key, role, e.dtype, e.ndim, e.shape,
                              buf);
    const char *dot = strrchr(e.key, '.');
    const char *local = dot ? dot + 1 : e.key;
    if (st == TSD_OK && !strcmp(local, "num_batches_tracked")) {
      char prefix[4096];
      size_t plen = dot ? (size_t)(dot - e.key) : 0;
      if (plen >= sizeof prefix) plen = sizeof prefix - 1;
      memcpy(prefix, e.key, plen);
      prefix[plen] = '\0';
      st = tsd_model_add_module(m->model, prefix, "BatchNorm2d",
                                tsd_checkpoint_module_version(spec, prefix));
    }
  }
  for (size_t i = 0; i < a->n_none_params && st == TSD_OK; i++)
    st = tsd_model_add_tensor(m->model, a->none_params[i], TSD_PARAMETER_NONE,
                              TSD_FLOAT32, 0, NULL, NULL);
  tsd_checkpoint_free(spec);
  if (st != TSD_OK) return cli_fail("cannot build model from --model-spec", st);
  return -1;
}

/* 1 if path opens as a TorchScript model (read without running it). */
static int is_torchscript(const char *path) {
  tsd_model *m = NULL;
  if (!strcmp(path, "-") ||
      tsd_model_open_torchscript_state(&m, path, NULL) != TSD_OK)
    return 0;
  tsd_model_free(m);
  return 1;
}

/* MODEL.pt did not open: a checkpoint given as MODEL (the model comes from
 * --model-spec), or MODEL and CHECKPOINT swapped, are said as such. */
static int model_open_failed(const cli_model_args *a, tsd_status st) {
  tsd_checkpoint *ck = NULL;
  char msg[2048];
  snprintf(msg, sizeof msg, "%s", tsd_last_error());
  /* only "not a TorchScript archive" (TSD_ERR_FORMAT; a build without
   * LibTorch refuses any MODEL.pt) of a file that is a checkpoint; an
   * archive tsd cannot read keeps its own message */
  int plain = (st == TSD_ERR_FORMAT ||
               (st == TSD_ERR_UNSUPPORTED && !tsd_has_torch())) &&
              strcmp(a->model_path, "-") &&
              !is_torchscript(a->model_path) &&
              tsd_checkpoint_open(&ck, a->model_path, cli_open_options()) ==
                  TSD_OK;
  const char *cls = plain ? tsd_checkpoint_root_class(ck) : NULL;
  if (cls && !strncmp(cls, "__torch__.", 10)) plain = 0;
  tsd_checkpoint_free(ck);
  if (!plain) {
    cli_error(st, "cannot open model: %s (%s)", user_message(msg),
              tsd_status_name(st));
    return EXIT_USAGE;
  }
  cli_error(TSD_ERR_FORMAT,
            "cannot open model: %s is a checkpoint, not a TorchScript model "
            "(torch.jit.save output)",
            a->model_path);
  if (a->ckpt_path && is_torchscript(a->ckpt_path))
    cli_hint("the arguments look swapped: the model comes first: tsd %s %s "
             "%s",
             cli_cmd_name(), a->ckpt_path, a->model_path);
  else
    cli_hint("to build the model from its tensors: --model-spec %s "
             "--class-name NAME",
             a->model_path);
  return EXIT_USAGE;
}

int cli_model_build(cli_model *m, const cli_model_args *a) {
  memset(m, 0, sizeof *m);
  int rc;
  if (a->spec) {
    rc = build_spec(m, a);
    if (rc >= 0) return rc;
  } else {
    tsd_torchscript_options o = TSD_TORCHSCRIPT_OPTIONS_INIT;
    o.device = a->device;
    tsd_status st =
        a->state_only
            ? tsd_model_open_torchscript_state(&m->model, a->model_path, NULL)
            : tsd_model_open_torchscript(&m->model, a->model_path, &o);
    if (st != TSD_OK) return model_open_failed(a, st);
  }
  for (size_t i = 0; i < a->n_modules; i++) {
    const char *eq = strchr(a->modules[i], '=');
    char prefix[4096];
    size_t plen = eq ? (size_t)(eq - a->modules[i]) : 0;
    if (!eq || plen >= sizeof prefix)
      return cli_error(TSD_ERR_INVALID_ARG, "--module takes PREFIX=TYPE: %s",
                       a->modules[i]);
    memcpy(prefix, a->modules[i], plen);
    prefix[plen] = '\0';
    tsd_status st = tsd_model_add_module(m->model, prefix, eq + 1, -1);
    if (st != TSD_OK) return cli_fail("--module", st);
  }
  for (size_t i = 0; i < a->n_non_persistent; i++) {
    tsd_status st = tsd_model_set_persistent(m->model, a->non_persistent[i], 0);
    if (st != TSD_OK) return cli_fail("--non-persistent", st);
  }
  return -1;
}

/* Builds a C-owned model that saves as the current dict: modules from
 * `_metadata` in its (pre-)order with their versions, tensors in dict
 * order with their values. */
/* Every entry a tensor with a key a C string can hold; -1 if so. */
static int only_tensors(const tsd_checkpoint *ck, const char *non_tensor_hint) {
  size_t n = tsd_checkpoint_count(ck);
  for (size_t i = 0; i < n; i++) {
    tsd_entry e;
    tsd_status st = tsd_checkpoint_entry(&e, ck, i);
    if (st != TSD_OK) return cli_fail("cannot read entry", st);
    if (e.kind != TSD_KIND_TENSOR) {
      char key[1024];
      return cli_error(TSD_ERR_TYPE, "entry '%s' is a %s: %s",
                       cli_key(key, sizeof key, &e), e.type_repr,
                       non_tensor_hint);
    }
    if (refuse_nul_key(&e, NULL)) return EXIT_USAGE;
  }
  return -1;
}

int cli_dict_as_model(cli_model *m, const tsd_checkpoint *ck, const char *cmd,
                      const char *non_tensor_hint) {
  (void)cmd;
  memset(m, 0, sizeof *m);
  size_t n = tsd_checkpoint_count(ck);
  int rc = only_tensors(ck, non_tensor_hint);
  if (rc >= 0) return rc;
  /* The tensors stay in the checkpoint: the writer streams them. */
  tsd_status st = tsd_model_from_checkpoint(&m->model, ck, "StateDict");
  if (st != TSD_OK) return cli_fail("cannot write the state dict", st);
  /* tsd_model_save writes state_dict order (modules in pre-order); a dict
   * that torch.save(model.state_dict()) wrote is already in that order. */
  for (size_t i = 0; i < n; i++) {
    tsd_entry e;
    tsd_tensor_info ti;
    if (tsd_checkpoint_entry(&e, ck, i) == TSD_OK &&
        tsd_model_tensor(&ti, m->model, i) == TSD_OK &&
        strcmp(e.key, ti.name)) {
      cli_note("note: the keys are not in module order (first difference "
               "at '%s'); OUT lists them module by module",
               e.key);
      break;
    }
  }
  return -1;
}

int cli_dict_as_model_remapped(cli_model *m, const tsd_checkpoint *ck,
                               const cli_remap *r, const char *cmd,
                               const char *non_tensor_hint) {
  (void)cmd;
  memset(m, 0, sizeof *m);
  int rc = only_tensors(ck, non_tensor_hint);
  if (rc >= 0) return rc;
  /* in memory: bounded as a --model-spec model is */
  uint64_t total = 0;
  tsd_status st = tsd_checkpoint_output_bytes(&total, ck);
  if (st != TSD_OK) return cli_fail("cannot hold the tensors", st);
  st = tsd_model_new(&m->model, "StateDict");
  if (st != TSD_OK) return cli_fail("cannot write the state dict", st);
  char name[4096];
  /* modules: "m" is renamed as the key "m." would be, minus the dot */
  size_t n_meta = tsd_checkpoint_metadata_count(ck);
  for (size_t i = 0; i < n_meta && st == TSD_OK; i++) {
    const char *prefix = tsd_checkpoint_metadata_prefix(ck, i);
    if (!prefix) continue;
    char dotted[4096];
    snprintf(dotted, sizeof dotted, "%s%s", prefix, prefix[0] ? "." : "");
    cli_remap_name(r, dotted, name, sizeof name);
    size_t len = strlen(name);
    if (len && name[len - 1] == '.') name[len - 1] = '\0';
    int64_t v = tsd_checkpoint_module_version(ck, prefix);
    st = tsd_model_add_module(m->model, name, NULL, v >= 0 ? v : 1);
  }
  size_t n = tsd_checkpoint_count(ck);
  m->buffers = calloc(n ? n : 1, sizeof *m->buffers);
  if (!m->buffers) return cli_error(TSD_ERR_NOMEM, "out of memory");
  for (size_t i = 0; i < n && st == TSD_OK; i++) {
    tsd_entry e;
    st = tsd_checkpoint_entry(&e, ck, i);
    if (st != TSD_OK) break;
    size_t nbytes = (size_t)e.numel * tsd_dtype_size(e.dtype);
    void *buf = malloc(nbytes ? nbytes : 1);
    if (!buf) {
      char key[1024];
      return cli_error(TSD_ERR_NOMEM, "out of memory for '%s'",
                       cli_key(key, sizeof key, &e));
    }
    m->buffers[m->n_buffers++] = buf;
    st = tsd_checkpoint_read(buf, nbytes, ck, i, e.dtype);
    if (st != TSD_OK) break;
    cli_remap_name(r, e.key, name, sizeof name);
    st = tsd_model_add_tensor(m->model, name, TSD_BUFFER, e.dtype, e.ndim,
                              e.shape, buf);
  }
  if (st != TSD_OK) return cli_fail("cannot write the renamed state dict", st);
  return -1;
}

/* ---- tsd pop / tsd convert ------------------------------------------------- */

int cli_write_dict(const tsd_checkpoint *ck, const cli_common_args *c,
                   const char *in, const char *out, const char *selected,
                   const char *non_tensor_hint, const char *what,
                   const char *const *popped, size_t n_popped) {
  /* a pickled model (an object root) gives its rebuilt state dict */
  tsd_kind rk = tsd_checkpoint_root_kind(ck);
  if (rk != TSD_KIND_DICT &&
      !(rk == TSD_KIND_OBJECT && tsd_checkpoint_count(ck) > 0))
    return cli_error(TSD_ERR_TYPE, "%s holds no dict", in);
  cli_model m = {0};
  int rc = cli_remap_any(&c->remap)
               ? cli_dict_as_model_remapped(&m, ck, &c->remap,
                                            cli_cmd_name(), non_tensor_hint)
               : cli_dict_as_model(&m, ck, cli_cmd_name(), non_tensor_hint);
  int to_stdout = !strcmp(out, "-");
  if (to_stdout) cli_set_json_out(stderr);
  if (rc < 0) rc = cli_save_progress(m.model, out, in);
  size_t n = strlen(out), k = strlen(".safetensors");
  int st_out = !to_stdout && n > k && !strcmp(out + n - k, ".safetensors");
  size_t n_tensors = m.model ? tsd_model_tensor_count(m.model) : 0;
  cli_model_free(&m);
  if (rc >= 0) return rc;
  if (c->json) {
    FILE *f = cli_json_out();
    fprintf(f, "{\"schema_version\": %d, \"ok\": true, \"file\": ",
            CLI_SCHEMA_VERSION);
    cli_json_str(f, in, strlen(in));
    fputs(", \"selected\": ", f);
    cli_json_str_or_null(f, selected);
    fputs(", \"output\": ", f);
    cli_json_str(f, out, strlen(out));
    fprintf(f, ", \"format\": \"%s\", \"tensors\": %zu",
            st_out ? "safetensors" : "pth", n_tensors);
    if (popped) {
      fputs(", \"popped_keys\": [", f);
      for (size_t i = 0; i < n_popped; i++) {
        if (i) fputs(", ", f);
        cli_json_str(f, popped[i], strlen(popped[i]));
      }
      fputc(']', f);
    }
    fputs("}\n", f);
    cli_json_done();
  } else {
    cli_status("%swrote %s (%zu tensors, %s)", what,
               to_stdout ? "stdout" : out, n_tensors,
               st_out ? "safetensors" : "torch.save .pth");
  }
  return CLI_EXIT_OK;
}
