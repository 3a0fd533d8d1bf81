/* cli_common.c — see cli_common.h. */
#define _POSIX_C_SOURCE 200809L
#include "cli_common.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli_platform.h"

#define EXIT_USAGE 2

int cli_fail(const char *what, tsd_status st) {
  int ratio = st == TSD_ERR_LIMIT && strstr(tsd_last_error(), "max_output_ratio");
  /* tsd_last_error() is escaped already (TSD_ESCAPE_MESSAGE) */
  cli_msgf(stderr, "tsd: %s: %s (%s)", what, tsd_last_error(),
           tsd_status_name(st));
  if (ratio)
    fprintf(stderr, "tsd: hint: --max-output-ratio N (or inf) raises the "
                    "bound, if you want that output\n");
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

int cli_output_arg(int argc, char **argv, int *i) {
  const char *o = argv[*i];
  const char *val = NULL;
  if (!strncmp(o, "--max-output-ratio=", 19))
    val = o + 19;
  else if (strcmp(o, "--max-output-ratio"))
    return 0;
  else if (*i + 1 < argc)
    val = argv[++*i];
  if (!val) {
    fprintf(stderr, "tsd: --max-output-ratio needs a value\n");
    return -1;
  }
  if (!strcmp(val, "inf")) {
    open_opts.limits.max_output_ratio = UINT64_MAX;
    return 1;
  }
  char *end;
  errno = 0;
  unsigned long long v = strtoull(val, &end, 10);
  if (errno || end == val || *end || v == 0 || val[0] == '-') {
    fprintf(stderr,
            "tsd: --max-output-ratio takes a positive integer or 'inf': %s\n",
            val);
    return -1;
  }
  open_opts.limits.max_output_ratio = (uint64_t)v;
  return 1;
}

int cli_same_file(const char *cmd, const char *out, const char *in) {
  if (!out || !in || !strcmp(out, "-") || !strcmp(in, "-")) return 0;
  if (!cli_platform_same_file(out, in)) return 0;
  fprintf(stderr,
          "tsd %s: OUT %s is the input %s (the same file: a link or another "
          "path to it); write elsewhere\n",
          cmd, out, in);
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
  tsd_save_options so = TSD_SAVE_OPTIONS_INIT;
  if (!strcmp(out, "-")) {
    if (isatty(STDOUT_FILENO)) {
      fprintf(stderr, "tsd: not writing a binary file to a terminal "
                      "(redirect stdout, or -o FILE)\n");
      return EXIT_USAGE;
    }
    fflush(stdout);
    so.fd = STDOUT_FILENO;
    tsd_status st = tsd_model_save_ex(model, "<stdout>", &so);
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
  tsd_status st = tsd_model_save_ex(model, out, &so);
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

int cli_open_checkpoint(tsd_checkpoint **out, const char *path,
                        int torchscript) {
  tsd_status st = torchscript
                      ? tsd_checkpoint_open_torchscript(out, path)
                      : tsd_checkpoint_open(out, path, cli_open_options());
  if (st == TSD_OK) {
    /* A TorchScript archive's data.pkl reads as inert module objects
     * (`__torch__.Net` placeholders), which hold no state dict to work on. */
    const char *cls = tsd_checkpoint_root_class(*out);
    if (torchscript || !cls || strncmp(cls, "__torch__.", 10) != 0) return -1;
    fprintf(stderr,
            "tsd: cannot read checkpoint: %s holds a TorchScript module "
            "object ('%.200s'), not a state dict (TSD_ERR_TYPE)\n"
            "tsd: hint: %s looks like a TorchScript archive; if you trust it, "
            "open it with --torchscript-checkpoint\n",
            path, cls, path);
    tsd_checkpoint_free(*out);
    *out = NULL;
    return EXIT_USAGE;
  }
  /* Decided before cli_fail: the message is only ours until the next call. */
  int hint = st == TSD_ERR_REFUSED && is_torchscript_refusal(tsd_last_error());
  int rc = cli_fail("cannot read checkpoint", st);
  if (hint)
    cli_msgf(stderr,
             "tsd: hint: %s looks like a TorchScript archive; if you trust "
             "it, open it with --torchscript-checkpoint",
             path);
  return rc;
}

/* ---- remapping flags ------------------------------------------------------ */

int cli_remap_arg(cli_remap *r, int argc, char **argv, int *i) {
  const char *o = argv[*i];
  int is_strip = !strcmp(o, "--strip-prefix");
  int is_add = !strcmp(o, "--add-prefix");
  int is_rename = !strcmp(o, "--rename");
  if (!is_strip && !is_add && !is_rename) return 0;
  if (*i + 1 >= argc) {
    cli_msgf(stderr, "tsd: %s needs a value", o);
    return -1;
  }
  const char *val = argv[++*i];
  if (is_strip) {
    if (!val[0]) {
      fprintf(stderr, "tsd: --strip-prefix needs a non-empty prefix\n");
      return -1;
    }
    if (r->n_strip == CLI_MAX_RULES) {
      fprintf(stderr, "tsd: too many --strip-prefix\n");
      return -1;
    }
    r->strip[r->n_strip++] = val;
  } else if (is_add) {
    r->add = val;
  } else {
    const char *eq = strchr(val, '=');
    if (!eq || eq == val) {
      cli_msgf(stderr, "tsd: --rename takes OLD=NEW with a non-empty OLD: %s",
               val);
      return -1;
    }
    if (r->n_renames == CLI_MAX_RULES) {
      fprintf(stderr, "tsd: too many --rename\n");
      return -1;
    }
    char *from = strndup(val, (size_t)(eq - val));
    if (!from) {
      fprintf(stderr, "tsd: out of memory\n");
      return -1;
    }
    r->rename_from[r->n_renames] = from;
    r->renames[r->n_renames].from = from;
    r->renames[r->n_renames].to = eq + 1;
    r->n_renames++;
  }
  return 1;
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
    st = tsd_checkpoint_select_auto(ck, &key);
    /* No candidate: load the dict as it is, as PyTorch would be given it. */
    if (st == TSD_OK && key) {
      path_append(path, cap, key);
      cli_msgf(stderr,
               "tsd: using the state dict under '%s' (--select to choose "
               "another)",
               key);
    }
    return -1;
  }
  for (size_t i = 0; i < n; i++) {
    if (!strcmp(selects[i], "auto")) {
      const char *key = NULL;
      st = tsd_checkpoint_select_auto(ck, &key);
      if (st != TSD_OK) return cli_fail("--select auto", st);
      if (key) {
        path_append(path, cap, key);
        cli_msgf(stderr, "tsd: --select auto: using '%s'", key);
      }
    } else {
      st = tsd_checkpoint_select(ck, selects[i]);
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
  fprintf(stderr, "\rloading [%s] %3d%%  %.1f/%.1f MB", bar, pct,
          (double)done / 1e6, (double)total / 1e6);
  fflush(stderr);
  return 0;
}

void cli_progress_setup(cli_progress *p, tsd_load_options *o,
                        const char *ckpt_path) {
  memset(p, 0, sizeof *p);
  p->last_pct = -1;
  struct stat sb;
  if (!isatty(STDERR_FILENO) || stat(ckpt_path, &sb) != 0 ||
      (long long)sb.st_size <= PROGRESS_MIN_BYTES)
    return;
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

void cli_print_report_json(const tsd_report *r, const char *path) {
  const char *j = tsd_report_json(r);
  size_t n = strlen(j);
  if (n && j[n - 1] == '}') n--; /* the new field goes after the others */
  fwrite(j, 1, n, stdout);
  fputs(", \"selected\": ", stdout);
  if (path[0]) cli_json_str(stdout, path, strlen(path));
  else fputs("null", stdout);
  fputs("}\n", stdout);
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
static int refuse_nul_key(const tsd_entry *e, const char *cmd) {
  if (!memchr(e->key, '\0', e->key_len)) return 0;
  char key[1024];
  cli_msgf(stderr,
           "tsd %s: key '%s' holds a NUL byte; tsd writes keys as C strings "
           "and would cut it",
           cmd, cli_key(key, sizeof key, e));
  return 1;
}

static int build_spec(cli_model *m, const cli_model_args *a) {
  tsd_checkpoint *spec = NULL;
  tsd_status st = tsd_checkpoint_open(&spec, a->spec, cli_open_options());
  if (st != TSD_OK) return cli_fail("cannot read --model-spec", st);
  /* The model holds every tensor of SPEC in memory: bounded by SPEC's size
   * (an expanded tensor is 4 bytes in a file, GiBs in memory). */
  st = tsd_checkpoint_output_bytes(spec, NULL);
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
    fprintf(stderr, "tsd: out of memory\n");
    return EXIT_USAGE;
  }
  for (size_t i = 0; i < n && st == TSD_OK; i++) {
    tsd_entry e;
    st = tsd_checkpoint_entry(spec, i, &e);
    if (st != TSD_OK) break;
    if (e.kind != TSD_KIND_TENSOR || refuse_nul_key(&e, "load --model-spec")) {
      char key[1024];
      if (e.kind != TSD_KIND_TENSOR)
        cli_msgf(stderr, "tsd: --model-spec: entry '%s' is not a tensor (%s)",
                 cli_key(key, sizeof key, &e), e.type_repr);
      tsd_checkpoint_free(spec);
      return EXIT_USAGE;
    }
    size_t nbytes = (size_t)e.numel * tsd_dtype_size(e.dtype);
    void *buf = malloc(nbytes ? nbytes : 1);
    if (!buf) {
      tsd_checkpoint_free(spec);
      cli_msgf(stderr, "tsd: out of memory for '%s'", e.key);
      return EXIT_USAGE;
    }
    m->buffers[m->n_buffers++] = buf;
    st = tsd_checkpoint_read(spec, i, e.dtype, buf, nbytes);
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

int cli_model_build(cli_model *m, const cli_model_args *a) {
  memset(m, 0, sizeof *m);
  int rc;
  if (a->spec) {
    rc = build_spec(m, a);
    if (rc >= 0) return rc;
  } else {
    tsd_status st =
        a->state_only
            ? tsd_model_open_torchscript_state(&m->model, a->model_path)
            : tsd_model_open_torchscript(&m->model, a->model_path, a->device);
    if (st != TSD_OK) return cli_fail("cannot open model", st);
  }
  for (size_t i = 0; i < a->n_modules; i++) {
    const char *eq = strchr(a->modules[i], '=');
    char prefix[4096];
    size_t plen = eq ? (size_t)(eq - a->modules[i]) : 0;
    if (!eq || plen >= sizeof prefix) {
      cli_msgf(stderr, "tsd: --module takes PREFIX=TYPE: %s", a->modules[i]);
      return EXIT_USAGE;
    }
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
int cli_dict_as_model(cli_model *m, const tsd_checkpoint *ck, const char *cmd,
                      const char *non_tensor_hint) {
  memset(m, 0, sizeof *m);
  size_t n = tsd_checkpoint_count(ck);
  for (size_t i = 0; i < n; i++) {
    tsd_entry e;
    tsd_status st = tsd_checkpoint_entry(ck, i, &e);
    if (st != TSD_OK) return cli_fail("cannot read entry", st);
    if (e.kind != TSD_KIND_TENSOR) {
      char key[1024];
      cli_msgf(stderr, "tsd %s: entry '%s' is a %s: %s", cmd,
               cli_key(key, sizeof key, &e), e.type_repr, non_tensor_hint);
      return EXIT_USAGE;
    }
    if (refuse_nul_key(&e, cmd)) return EXIT_USAGE;
  }
  /* The tensors stay in the checkpoint: the writer streams them. */
  tsd_status st = tsd_model_from_checkpoint(&m->model, ck, "StateDict");
  if (st != TSD_OK) return cli_fail("cannot write the state dict", st);
  /* tsd_model_save writes state_dict order (modules in pre-order); a dict
   * that torch.save(model.state_dict()) wrote is already in that order. */
  for (size_t i = 0; i < n; i++) {
    tsd_entry e;
    tsd_tensor_info ti;
    if (tsd_checkpoint_entry(ck, i, &e) == TSD_OK &&
        tsd_model_tensor(m->model, i, &ti) == TSD_OK && strcmp(e.key, ti.name)) {
      cli_msgf(stderr,
               "tsd %s: note: the keys are not in module order (first "
               "difference at '%s'); OUT lists them module by module",
               cmd, e.key);
      break;
    }
  }
  return -1;
}
