/* cli_common.c — see cli_common.h. */
#define _POSIX_C_SOURCE 200809L
#include "cli_common.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define EXIT_USAGE 2

int cli_fail(const char *what, tsd_status st) {
  fprintf(stderr, "tsd: %s: %s (%s)\n", what, tsd_last_error(),
          tsd_status_name(st));
  return EXIT_USAGE;
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
  tsd_status st = torchscript ? tsd_checkpoint_open_torchscript(out, path)
                              : tsd_checkpoint_open(out, path, NULL);
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
    fprintf(stderr,
            "tsd: hint: %s looks like a TorchScript archive; if you trust it, "
            "open it with --torchscript-checkpoint\n",
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
    fprintf(stderr, "tsd: %s needs a value\n", o);
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
      fprintf(stderr, "tsd: --rename takes OLD=NEW with a non-empty OLD: %s\n",
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
      fprintf(stderr,
              "tsd: using the state dict under '%s' (--select to choose "
              "another)\n",
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
        fprintf(stderr, "tsd: --select auto: using '%s'\n", key);
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

void cli_json_str(FILE *f, const char *s, size_t n) {
  fputc('"', f);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    switch (c) {
    case '"': fputs("\\\"", f); break;
    case '\\': fputs("\\\\", f); break;
    case '\n': fputs("\\n", f); break;
    case '\r': fputs("\\r", f); break;
    case '\t': fputs("\\t", f); break;
    case '\b': fputs("\\b", f); break;
    case '\f': fputs("\\f", f); break;
    default:
      if (c < 0x20) fprintf(f, "\\u%04x", c);
      else fputc(c, f);
    }
  }
  fputc('"', f);
}

void cli_json_shape(FILE *f, size_t ndim, const int64_t *shape) {
  fputc('[', f);
  for (size_t i = 0; i < ndim; i++)
    fprintf(f, "%s%lld", i ? ", " : "", (long long)shape[i]);
  fputc(']', f);
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

static int build_spec(cli_model *m, const cli_model_args *a) {
  tsd_checkpoint *spec = NULL;
  tsd_status st = tsd_checkpoint_open(&spec, a->spec, NULL);
  if (st != TSD_OK) return cli_fail("cannot read --model-spec", st);
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
    if (e.kind != TSD_KIND_TENSOR) {
      fprintf(stderr, "tsd: --model-spec: entry '%s' is not a tensor (%s)\n",
              e.key, e.type_repr);
      tsd_checkpoint_free(spec);
      return EXIT_USAGE;
    }
    size_t nbytes = (size_t)e.numel * tsd_dtype_size(e.dtype);
    void *buf = malloc(nbytes ? nbytes : 1);
    if (!buf) {
      tsd_checkpoint_free(spec);
      fprintf(stderr, "tsd: out of memory for '%s'\n", e.key);
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
        tsd_model_open_torchscript(&m->model, a->model_path, a->device);
    if (st != TSD_OK) return cli_fail("cannot open model", st);
  }
  for (size_t i = 0; i < a->n_modules; i++) {
    const char *eq = strchr(a->modules[i], '=');
    char prefix[4096];
    size_t plen = eq ? (size_t)(eq - a->modules[i]) : 0;
    if (!eq || plen >= sizeof prefix) {
      fprintf(stderr, "tsd: --module takes PREFIX=TYPE: %s\n", a->modules[i]);
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
      fprintf(stderr,
              "tsd %s: entry '%s' is a %s: %s\n", cmd, e.key, e.type_repr,
              non_tensor_hint);
      return EXIT_USAGE;
    }
  }
  tsd_status st = tsd_model_new(&m->model, "StateDict");
  if (st != TSD_OK) return cli_fail("cannot create model", st);
  size_t n_meta = tsd_checkpoint_metadata_count(ck);
  for (size_t i = 0; i < n_meta && st == TSD_OK; i++) {
    const char *prefix = tsd_checkpoint_metadata_prefix(ck, i);
    if (!prefix) continue;
    int64_t v = tsd_checkpoint_module_version(ck, prefix);
    st = tsd_model_add_module(m->model, prefix, NULL, v >= 0 ? v : 1);
  }
  if (st != TSD_OK) return cli_fail("cannot rebuild _metadata", st);
  m->buffers = calloc(n ? n : 1, sizeof *m->buffers);
  if (!m->buffers) {
    fprintf(stderr, "tsd: out of memory\n");
    return EXIT_USAGE;
  }
  for (size_t i = 0; i < n; i++) {
    tsd_entry e;
    st = tsd_checkpoint_entry(ck, i, &e);
    if (st != TSD_OK) return cli_fail("cannot read entry", st);
    size_t nbytes;
    if (e.numel < 0 ||
        __builtin_mul_overflow((size_t)e.numel, tsd_dtype_size(e.dtype),
                               &nbytes)) {
      fprintf(stderr, "tsd %s: entry '%s' is too large\n", cmd, e.key);
      return EXIT_USAGE;
    }
    void *buf = malloc(nbytes ? nbytes : 1);
    if (!buf) {
      fprintf(stderr, "tsd: out of memory for '%s'\n", e.key);
      return EXIT_USAGE;
    }
    m->buffers[m->n_buffers++] = buf;
    st = tsd_checkpoint_read(ck, i, e.dtype, buf, nbytes);
    if (st == TSD_OK)
      st = tsd_model_add_tensor(m->model, e.key, TSD_BUFFER, e.dtype, e.ndim,
                                e.shape, buf);
    if (st != TSD_OK) {
      fprintf(stderr, "tsd %s: entry '%s': %s (%s)\n", cmd, e.key,
              tsd_last_error(), tsd_status_name(st));
      return EXIT_USAGE;
    }
  }
  /* tsd_model_save writes state_dict order (modules in pre-order); a dict
   * that torch.save(model.state_dict()) wrote is already in that order. */
  for (size_t i = 0; i < n; i++) {
    tsd_entry e;
    tsd_tensor_info ti;
    if (tsd_checkpoint_entry(ck, i, &e) == TSD_OK &&
        tsd_model_tensor(m->model, i, &ti) == TSD_OK && strcmp(e.key, ti.name)) {
      fprintf(stderr,
              "tsd %s: note: the keys are not in module order (first "
              "difference at '%s'); OUT lists them module by module\n",
              cmd, e.key);
      break;
    }
  }
  return -1;
}
