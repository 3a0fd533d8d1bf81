/* tsd — the command line front end of libtsd. A thin user of tsd.h only.
 *
 *   tsd load MODEL.pt CHECKPOINT [options]
 *   tsd load --model-spec SPEC --class-name NAME CHECKPOINT [options]
 *   tsd inspect CHECKPOINT [--json] [--select KEY] [--torchscript-checkpoint]
 *
 * Exit status: 0 loaded, 1 load_state_dict raised, 2 bad usage or
 * unreadable/malformed input (design.md, "The tsd command"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tsd.h"
#include "cli_common.h" /* remap flags, --select auto, progress, diff, pop */

int cmd_diff(int argc, char **argv); /* cmd_diff.c */
int cmd_pop(int argc, char **argv);  /* cmd_pop.c */
int cmd_convert(int argc, char **argv); /* cmd_convert.c */

enum { EXIT_LOADED = 0, EXIT_RAISED = 1, EXIT_USAGE = 2 };

static const char *const LOAD_HELP =
    "usage: tsd load MODEL.pt CHECKPOINT [options]\n"
    "       tsd load --model-spec SPEC --class-name NAME CHECKPOINT "
    "[options]\n"
    "\n"
    "Loads CHECKPOINT into a model with PyTorch's load_state_dict semantics.\n"
    "MODEL.pt is a TorchScript archive (torch.jit.save). --model-spec builds\n"
    "a C-owned model from the tensors of SPEC (a torch.save'd state dict:\n"
    "names, dtypes, shapes, initial values; modules from its _metadata).\n"
    "\n"
    "options:\n"
    "  --non-strict          strict=False (unmatched keys are not errors)\n"
    "  --auto-pop            drop checkpoint keys whose shape differs from\n"
    "                        the model's, then load; report them as popped\n"
    CLI_SELECT_HELP CLI_REMAP_HELP
    "  --json                print the report as one JSON object\n"
    "  -o OUT                write the loaded model (.pth for --model-spec,\n"
    "                        a TorchScript archive for MODEL.pt); only when\n"
    "                        the load succeeded\n"
    "  --rules 1.13|2        PyTorch edge rules to follow (default 1.13)\n"
    "  --device DEV          device of a TorchScript model (default cpu)\n"
    CLI_TORCHSCRIPT_HELP
    "  --module PREFIX=TYPE  declare the module at PREFIX as PyTorch class\n"
    "                        TYPE (e.g. features.2=ReLU, bn1=BatchNorm2d)\n"
    "  --non-persistent NAME the model's buffer NAME is not persistent\n"
    "  --none-param NAME     the model has a parameter NAME set to None\n"
    "                        (--model-spec only)\n"
    "\n"
    "A progress bar is shown on stderr when it is a terminal and the\n"
    "checkpoint is larger than 64 MB.\n"
    "\n"
    "exit status: 0 loaded, 1 load_state_dict raised, 2 bad usage or "
    "input\n";

static const char *const INSPECT_HELP =
    "usage: tsd inspect CHECKPOINT [--json] [--select KEY] "
    "[--torchscript-checkpoint]\n"
    "\n"
    "Lists the entries of a checkpoint: key, dtype, shape, bytes; then the\n"
    "bytes of each dtype and in all; then the file's metadata, if any (a\n"
    "safetensors __metadata__, a sharded index's \"metadata\").\n"
    "\n"
    "options:\n"
    "  --json                one JSON object: file, root_kind, tensors,\n"
    "                        numel, bytes, entries, bytes_by_dtype, metadata\n"
    "                        (values as strings)\n"
    "  --select KEY          list the dict under KEY (repeat to go deeper)\n"
    CLI_TORCHSCRIPT_HELP;

static const char *const MAIN_HELP =
    "usage: tsd <command> [args]\n"
    "\n"
    "commands:\n"
    "  load      load a checkpoint into a model (load_state_dict)\n"
    "  inspect   list a checkpoint's entries\n"
    "  diff      show how a checkpoint's keys meet a model's, loading nothing\n"
    "  pop       write a checkpoint without some keys\n"
    "  convert   rewrite a checkpoint as .pth or .safetensors\n"
    "\n"
    "tsd <command> --help for a command's options; tsd --version.\n";


static int usage_error(const char *help, const char *msg, const char *arg) {
  fprintf(stderr, "tsd: %s%s%s\n\n%s", msg, arg ? ": " : "", arg ? arg : "",
          help);
  return EXIT_USAGE;
}



/* ---- inspect -------------------------------------------------------------- */

static const char *kind_name(tsd_kind k) {
  static const char *const names[] = {"tensor", "None",  "bool", "int",
                                      "float",  "str",   "bytes", "dict",
                                      "list",   "tuple", "other",
                                      "object"};
  return (unsigned)k < sizeof names / sizeof names[0] ? names[k] : "?";
}

static void shape_text(char *out, size_t cap, size_t ndim,
                       const int64_t *shape) {
  size_t len = 0;
  len += (size_t)snprintf(out + len, cap - len, "[");
  for (size_t i = 0; i < ndim && len < cap; i++)
    len += (size_t)snprintf(out + len, cap - len, "%s%lld", i ? ", " : "",
                            (long long)shape[i]);
  if (len < cap) snprintf(out + len, cap - len, "]");
}

typedef struct dtype_total {
  tsd_dtype dtype;
  size_t tensors;
  uint64_t bytes;
} dtype_total;

static void tensors_text(char *out, size_t cap, size_t n) {
  snprintf(out, cap, "%zu tensor%s", n, n == 1 ? "" : "s");
}

/* Columns count characters, not bytes: metadata is often non-ASCII text. */
static size_t utf8_width(const char *s) {
  size_t w = 0;
  for (; *s; s++)
    if (((unsigned char)*s & 0xC0) != 0x80) w++;
  return w;
}

/* "metadata:" then one aligned "  key  value" line per entry. */
static void print_file_metadata(const tsd_checkpoint *ck) {
  size_t n = tsd_checkpoint_file_metadata_count(ck), wkey = 0;
  for (size_t i = 0; i < n; i++) {
    const char *k = NULL;
    if (tsd_checkpoint_file_metadata(ck, i, &k, NULL) == TSD_OK &&
        utf8_width(k) > wkey)
      wkey = utf8_width(k);
  }
  if (n) printf("metadata:\n");
  for (size_t i = 0; i < n; i++) {
    const char *k = NULL, *v = NULL;
    if (tsd_checkpoint_file_metadata(ck, i, &k, &v) != TSD_OK) continue;
    printf("  %s%*s  %s\n", k, (int)(wkey - utf8_width(k)), "", v);
  }
}

static int cmd_inspect(int argc, char **argv) {
  const char *path = NULL;
  int json = 0, torchscript = 0;
  const char *selects[CLI_MAX_SELECT];
  size_t n_select = 0;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      fputs(INSPECT_HELP, stdout);
      return EXIT_LOADED;
    } else if (!strcmp(a, "--json")) {
      json = 1;
    } else if (!strcmp(a, "--torchscript-checkpoint")) {
      torchscript = 1;
    } else if (!strcmp(a, "--select")) {
      if (i + 1 >= argc) return usage_error(INSPECT_HELP, "--select needs a key", NULL);
      if (n_select == CLI_MAX_SELECT) return usage_error(INSPECT_HELP, "too many --select", NULL);
      selects[n_select++] = argv[++i];
    } else if (a[0] == '-' && a[1]) {
      return usage_error(INSPECT_HELP, "unknown option", a);
    } else if (!path) {
      path = a;
    } else {
      return usage_error(INSPECT_HELP, "unexpected argument", a);
    }
  }
  if (!path) return usage_error(INSPECT_HELP, "missing CHECKPOINT", NULL);

  tsd_checkpoint *ck = NULL;
  int rc = cli_open_checkpoint(&ck, path, torchscript);
  if (rc >= 0) return rc;
  tsd_status st;
  for (size_t i = 0; i < n_select; i++) {
    st = tsd_checkpoint_select(ck, selects[i]);
    if (st != TSD_OK) {
      tsd_checkpoint_free(ck);
      return cli_fail("--select", st);
    }
  }
  size_t n = tsd_checkpoint_count(ck);
  /* Collect entries first so a bad one is an error before any output. */
  tsd_entry *entries = calloc(n ? n : 1, sizeof *entries);
  if (!entries) {
    tsd_checkpoint_free(ck);
    fprintf(stderr, "tsd: out of memory\n");
    return EXIT_USAGE;
  }
  for (size_t i = 0; i < n; i++) {
    st = tsd_checkpoint_entry(ck, i, &entries[i]);
    if (st != TSD_OK) {
      free(entries);
      tsd_checkpoint_free(ck);
      return cli_fail("cannot read entry", st);
    }
  }
  uint64_t total_bytes = 0, total_numel = 0;
  size_t n_tensors = 0;
  dtype_total by_dtype[TSD_DTYPE_COUNT];
  size_t n_dtypes = 0;
  for (size_t i = 0; i < n; i++) {
    if (entries[i].kind != TSD_KIND_TENSOR) continue;
    uint64_t bytes =
        (uint64_t)entries[i].numel * tsd_dtype_size(entries[i].dtype);
    n_tensors++;
    total_numel += (uint64_t)entries[i].numel;
    total_bytes += bytes;
    size_t d = 0;
    while (d < n_dtypes && by_dtype[d].dtype != entries[i].dtype) d++;
    if (d == n_dtypes) {
      if (n_dtypes == TSD_DTYPE_COUNT) continue; /* not a dtype we know */
      by_dtype[n_dtypes++] = (dtype_total){entries[i].dtype, 0, 0};
    }
    by_dtype[d].tensors++;
    by_dtype[d].bytes += bytes;
  }
  if (json) {
    printf("{\"file\": ");
    cli_json_str(stdout, path, strlen(path));
    printf(", \"root_kind\": \"%s\", \"tensors\": %zu, \"numel\": %llu, "
           "\"bytes\": %llu, \"entries\": [",
           kind_name(tsd_checkpoint_root_kind(ck)), n_tensors,
           (unsigned long long)total_numel, (unsigned long long)total_bytes);
    for (size_t i = 0; i < n; i++) {
      const tsd_entry *e = &entries[i];
      printf("%s{\"key\": ", i ? ", " : "");
      cli_json_str(stdout, e->key, e->key_len);
      printf(", \"kind\": \"%s\"", kind_name(e->kind));
      if (e->kind == TSD_KIND_TENSOR) {
        printf(", \"dtype\": \"%s\", \"shape\": ", tsd_dtype_name(e->dtype));
        cli_json_shape(stdout, e->ndim, e->shape);
        printf(", \"numel\": %lld, \"bytes\": %llu, \"parameter\": %s",
               (long long)e->numel,
               (unsigned long long)e->numel * tsd_dtype_size(e->dtype),
               e->is_parameter ? "true" : "false");
      } else if (e->kind == TSD_KIND_INT) {
        printf(", \"value\": %lld", (long long)e->int_value);
      } else if (e->kind == TSD_KIND_BOOL) {
        printf(", \"value\": %s", e->int_value ? "true" : "false");
      } else if (e->kind == TSD_KIND_FLOAT) {
        printf(", \"value\": %.17g", e->float_value);
      } else if (e->kind == TSD_KIND_STR) {
        printf(", \"value\": ");
        cli_json_str(stdout, e->str_value, e->str_len);
      } else if (e->kind == TSD_KIND_DICT || e->kind == TSD_KIND_LIST ||
                 e->kind == TSD_KIND_TUPLE) {
        printf(", \"length\": %zu", e->length);
      } else if (e->kind == TSD_KIND_OBJECT) {
        const char *cls = tsd_checkpoint_entry_class(ck, i);
        printf(", \"class\": ");
        cli_json_str(stdout, cls, strlen(cls));
      }
      printf("}");
    }
    printf("], \"bytes_by_dtype\": {");
    for (size_t d = 0; d < n_dtypes; d++)
      printf("%s\"%s\": %llu", d ? ", " : "", tsd_dtype_name(by_dtype[d].dtype),
             (unsigned long long)by_dtype[d].bytes);
    printf("}, \"metadata\": {");
    for (size_t m = 0; m < tsd_checkpoint_file_metadata_count(ck); m++) {
      const char *k = NULL, *v = NULL;
      if (tsd_checkpoint_file_metadata(ck, m, &k, &v) != TSD_OK) continue;
      if (m) printf(", ");
      cli_json_str(stdout, k, strlen(k));
      printf(": ");
      cli_json_str(stdout, v, strlen(v));
    }
    printf("}}\n");
  } else {
    size_t wkey = 3, wdtype = 5, wshape = 5;
    char shape[512];
    if (n_dtypes) wkey = 5; /* "total" */
    for (size_t d = 0; d < n_dtypes; d++) {
      tensors_text(shape, sizeof shape, by_dtype[d].tensors);
      if (strlen(shape) > wshape) wshape = strlen(shape);
      if (strlen(tsd_dtype_name(by_dtype[d].dtype)) > wdtype)
        wdtype = strlen(tsd_dtype_name(by_dtype[d].dtype));
    }
    for (size_t i = 0; i < n; i++) {
      const tsd_entry *e = &entries[i];
      if (e->key_len > wkey) wkey = e->key_len;
      if (e->kind == TSD_KIND_TENSOR) {
        shape_text(shape, sizeof shape, e->ndim, e->shape);
        if (strlen(shape) > wshape) wshape = strlen(shape);
        if (strlen(tsd_dtype_name(e->dtype)) > wdtype)
          wdtype = strlen(tsd_dtype_name(e->dtype));
      } else if (strlen(kind_name(e->kind)) > wdtype) {
        wdtype = strlen(kind_name(e->kind));
      }
    }
    printf("%-*s  %-*s  %-*s  %12s\n", (int)wkey, "key", (int)wdtype, "dtype",
           (int)wshape, "shape", "bytes");
    for (size_t i = 0; i < n; i++) {
      const tsd_entry *e = &entries[i];
      if (e->kind == TSD_KIND_TENSOR) {
        shape_text(shape, sizeof shape, e->ndim, e->shape);
        printf("%-*s  %-*s  %-*s  %12llu\n", (int)wkey, e->key, (int)wdtype,
               tsd_dtype_name(e->dtype), (int)wshape, shape,
               (unsigned long long)e->numel * tsd_dtype_size(e->dtype));
      } else {
        char value[128] = "";
        if (e->kind == TSD_KIND_INT)
          snprintf(value, sizeof value, "%lld", (long long)e->int_value);
        else if (e->kind == TSD_KIND_BOOL)
          snprintf(value, sizeof value, "%s", e->int_value ? "True" : "False");
        else if (e->kind == TSD_KIND_FLOAT)
          snprintf(value, sizeof value, "%.17g", e->float_value);
        else if (e->kind == TSD_KIND_STR)
          snprintf(value, sizeof value, "'%.100s'", e->str_value);
        else if (e->kind == TSD_KIND_DICT || e->kind == TSD_KIND_LIST ||
                 e->kind == TSD_KIND_TUPLE)
          snprintf(value, sizeof value, "(%zu items)", e->length);
        else if (e->kind == TSD_KIND_OBJECT)
          snprintf(value, sizeof value, "%.120s",
                   tsd_checkpoint_entry_class(ck, i));
        printf("%-*s  %-*s  %s\n", (int)wkey, e->key, (int)wdtype,
               kind_name(e->kind), value);
      }
    }
    if (n_dtypes) {
      size_t rule = wkey + 2 + wdtype + 2 + wshape + 2 + 12;
      for (size_t c = 0; c < rule; c++) putchar('-');
      putchar('\n');
    }
    for (size_t d = 0; d < n_dtypes; d++) {
      tensors_text(shape, sizeof shape, by_dtype[d].tensors);
      printf("%-*s  %-*s  %-*s  %12llu\n", (int)wkey, "total", (int)wdtype,
             tsd_dtype_name(by_dtype[d].dtype), (int)wshape, shape,
             (unsigned long long)by_dtype[d].bytes);
    }
    printf("%zu tensors, %llu elements, %llu bytes\n", n_tensors,
           (unsigned long long)total_numel, (unsigned long long)total_bytes);
    print_file_metadata(ck);
  }
  free(entries);
  tsd_checkpoint_free(ck);
  return EXIT_LOADED;
}

/* ---- load ----------------------------------------------------------------- */

typedef struct load_args {
  cli_model_args model; /* MODEL.pt or --model-spec and its declarations */
  const char *ckpt, *out;
  const char *selects[CLI_MAX_SELECT];
  size_t n_select;
  int json;
  int torchscript_ckpt; /* --torchscript-checkpoint */
  tsd_load_options opts;
} load_args;

static int cmd_load(int argc, char **argv) {
  static load_args a; /* large; one per process */
  static cli_remap remap;
  memset(&remap, 0, sizeof remap);
  tsd_load_options defaults = TSD_LOAD_OPTIONS_INIT;
  memset(&a, 0, sizeof a);
  a.opts = defaults;
  const char *positional[2];
  size_t n_pos = 0;
  for (int i = 0; i < argc; i++) {
    const char *o = argv[i];
    const char *val = (i + 1 < argc) ? argv[i + 1] : NULL;
#define NEED_VALUE()                                                       \
  do {                                                                     \
    if (!val) return usage_error(LOAD_HELP, "option needs a value", o);    \
    i++;                                                                   \
  } while (0)
    int remap_arg = cli_remap_arg(&remap, argc, argv, &i);
    if (remap_arg < 0) return usage_error(LOAD_HELP, "bad remapping option", o);
    if (remap_arg) continue;
    if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
      fputs(LOAD_HELP, stdout);
      return EXIT_LOADED;
    } else if (!strcmp(o, "--non-strict")) {
      a.opts.strict = 0;
    } else if (!strcmp(o, "--strict")) {
      a.opts.strict = 1;
    } else if (!strcmp(o, "--auto-pop")) {
      a.opts.auto_pop = 1;
    } else if (!strcmp(o, "--json")) {
      a.json = 1;
    } else if (!strcmp(o, "--torchscript-checkpoint")) {
      a.torchscript_ckpt = 1;
    } else if (!strcmp(o, "--model-spec")) {
      NEED_VALUE();
      a.model.spec = val;
    } else if (!strcmp(o, "--class-name")) {
      NEED_VALUE();
      a.model.class_name = val;
    } else if (!strcmp(o, "-o") || !strcmp(o, "--output")) {
      NEED_VALUE();
      a.out = val;
    } else if (!strcmp(o, "--device")) {
      NEED_VALUE();
      a.model.device = val;
    } else if (!strcmp(o, "--select")) {
      NEED_VALUE();
      if (a.n_select == CLI_MAX_SELECT) return usage_error(LOAD_HELP, "too many --select", NULL);
      a.selects[a.n_select++] = val;
    } else if (!strcmp(o, "--rules")) {
      NEED_VALUE();
      if (!strcmp(val, "1.13")) a.opts.rules = TSD_RULES_TORCH_1_13;
      else if (!strcmp(val, "2")) a.opts.rules = TSD_RULES_TORCH_2;
      else return usage_error(LOAD_HELP, "--rules takes 1.13 or 2", val);
    } else if (!strcmp(o, "--module")) {
      NEED_VALUE();
      if (!strchr(val, '=') || a.model.n_modules == CLI_MAX_LIST)
        return usage_error(LOAD_HELP, "--module takes PREFIX=TYPE", val);
      a.model.modules[a.model.n_modules++] = val;
    } else if (!strcmp(o, "--non-persistent")) {
      NEED_VALUE();
      if (a.model.n_non_persistent == CLI_MAX_LIST)
        return usage_error(LOAD_HELP, "too many --non-persistent", NULL);
      a.model.non_persistent[a.model.n_non_persistent++] = val;
    } else if (!strcmp(o, "--none-param")) {
      NEED_VALUE();
      if (a.model.n_none_params == CLI_MAX_LIST)
        return usage_error(LOAD_HELP, "too many --none-param", NULL);
      a.model.none_params[a.model.n_none_params++] = val;
    } else if (o[0] == '-' && o[1]) {
      return usage_error(LOAD_HELP, "unknown option", o);
    } else {
      if (n_pos == 2) return usage_error(LOAD_HELP, "unexpected argument", o);
      positional[n_pos++] = o;
    }
#undef NEED_VALUE
  }
  if (a.model.spec) {
    if (n_pos != 1)
      return usage_error(LOAD_HELP, "--model-spec takes one CHECKPOINT", NULL);
    if (!a.model.class_name)
      return usage_error(LOAD_HELP, "--model-spec needs --class-name", NULL);
    a.ckpt = positional[0];
  } else {
    if (n_pos != 2)
      return usage_error(LOAD_HELP, "expected MODEL.pt CHECKPOINT", NULL);
    if (a.model.n_none_params)
      return usage_error(LOAD_HELP, "--none-param needs --model-spec", NULL);
    a.model.model_path = positional[0];
    a.ckpt = positional[1];
  }

  cli_model sm;
  int rc = cli_model_build(&sm, &a.model);
  if (rc >= 0) {
    cli_model_free(&sm);
    return rc;
  }

  tsd_checkpoint *ck = NULL;
  rc = cli_open_checkpoint(&ck, a.ckpt, a.torchscript_ckpt);
  if (rc >= 0) {
    cli_model_free(&sm);
    return rc;
  }
  tsd_status st;
  char selected[1024];
  rc = cli_select(ck, a.selects, a.n_select, selected, sizeof selected);
  if (rc >= 0) {
    tsd_checkpoint_free(ck);
    cli_model_free(&sm);
    return rc;
  }

  tsd_report *report = NULL;
  cli_remap_apply(&remap, &a.opts);
  cli_progress progress;
  cli_progress_setup(&progress, &a.opts, a.ckpt);
  st = tsd_load(&report, sm.model, ck, &a.opts);
  cli_progress_end(&progress);
  cli_remap_free(&remap);
  if (st != TSD_OK && st != TSD_ERR_LOAD) {
    tsd_checkpoint_free(ck);
    cli_model_free(&sm);
    return cli_fail("cannot load", st);
  }
  if (a.json) {
    cli_print_report_json(report, selected);
  } else {
    puts(tsd_report_message(report));
  }
  rc = tsd_report_ok(report) ? EXIT_LOADED : EXIT_RAISED;
  if (rc == EXIT_LOADED && a.out) {
    st = tsd_model_save(sm.model, a.out);
    if (st != TSD_OK) rc = cli_fail("cannot write output", st);
  }
  tsd_report_free(report);
  tsd_checkpoint_free(ck);
  cli_model_free(&sm);
  return rc;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fputs(MAIN_HELP, stderr);
    return EXIT_USAGE;
  }
  const char *cmd = argv[1];
  if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
    fputs(MAIN_HELP, stdout);
    return EXIT_LOADED;
  }
  if (!strcmp(cmd, "--version")) {
    printf("tsd %s (%s)\n", tsd_version(),
           tsd_has_torch() ? "with LibTorch" : "pure C");
    return EXIT_LOADED;
  }
  if (!strcmp(cmd, "load")) return cmd_load(argc - 2, argv + 2);
  if (!strcmp(cmd, "inspect")) return cmd_inspect(argc - 2, argv + 2);
  if (!strcmp(cmd, "diff")) return cmd_diff(argc - 2, argv + 2);
  if (!strcmp(cmd, "pop")) return cmd_pop(argc - 2, argv + 2);
  if (!strcmp(cmd, "convert")) return cmd_convert(argc - 2, argv + 2);
  fprintf(stderr, "tsd: unknown command '%s'\n\n%s", cmd, MAIN_HELP);
  return EXIT_USAGE;
}
