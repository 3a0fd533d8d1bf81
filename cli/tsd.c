/* tsd — the command line front end of libtsd. A thin user of tsd.h only.
 *
 *   tsd load MODEL.pt CHECKPOINT [options]
 *   tsd load --model-spec SPEC --class-name NAME CHECKPOINT [options]
 *   tsd inspect CHECKPOINT [--json] [--select KEY] [--torchscript-checkpoint]
 *
 * Exit status: 0 loaded, 1 load_state_dict raised, 2 bad usage or
 * unreadable/malformed input (README, "The `tsd` command"). */
#include <math.h>
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
    "MODEL.pt is a TorchScript archive (torch.jit.save). A TorchScript\n"
    "model is code: tsd load runs it through LibTorch (its __setstate__\n"
    "methods run while it is opened), as a program would. Load only models\n"
    "you trust; tsd inspect and tsd diff read a model's state without\n"
    "running it. --model-spec builds\n"
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
    "                        a TorchScript archive for MODEL.pt; safetensors\n"
    "                        when OUT ends in .safetensors); only when the\n"
    "                        load succeeded. '-' is stdout (the report then\n"
    "                        goes to stderr)\n"
    CLI_OUTPUT_HELP
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
    CLI_OUT_RULES_HELP
    "--model-spec holds SPEC's tensors in memory: they may take at most\n"
    "--max-output-ratio times SPEC's size + 64 MiB.\n"
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
    "Keys and values are shown escaped as Python's repr does (\\x1b, \\n);\n"
    "a key longer than 80 characters overflows its column. A safetensors\n"
    "file's keys come sorted, as safetensors.torch.load_file gives them.\n"
    "A TorchScript archive (torch.jit.save) is listed as its state_dict(),\n"
    "read without running any of its code (no LibTorch needed).\n"
    "\n"
    "options:\n"
    "  --json                one JSON object: file, root_kind, tensors,\n"
    "                        numel, bytes, entries, bytes_by_dtype, metadata\n"
    "                        (metadata values as strings). A float nan,\n"
    "                        inf, -inf is the string \"nan\", \"inf\",\n"
    "                        \"-inf\"; an int beyond 64 bits an exact\n"
    "                        number (null past 2048 bytes); exact totals\n"
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
  cli_msgf(stderr, "tsd: %s%s%s", msg, arg ? ": " : "", arg ? arg : "");
  fprintf(stderr, "\n%s", help);
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

/* Byte and element totals in 128 bits: a stride-0 view of 2^62 float64
 * elements is 2^65 bytes, which 64 bits would wrap to 0. 128 bits cannot
 * wrap: at most 2^20 entries of at most 2^63 elements of 16 bytes. */
__extension__ typedef unsigned __int128 u128;

/* Decimal text of v into out (at least 40 bytes). */
static const char *u128_text(char *out, u128 v) {
  char tmp[40];
  size_t n = 0;
  do {
    tmp[n++] = (char)('0' + (int)(v % 10));
    v /= 10;
  } while (v);
  for (size_t i = 0; i < n; i++)
    out[i] = tmp[n - 1 - i];
  out[n] = '\0';
  return out;
}

static u128 entry_bytes(const tsd_entry *e) {
  return (u128)(uint64_t)e->numel * tsd_dtype_size(e->dtype);
}

/* An int beyond 64 bits: kind OTHER, Python type int, its bytes in
 * str_value (tsd.h). */
static int is_bigint(const tsd_entry *e) {
  return e->kind == TSD_KIND_OTHER && e->type_repr &&
         !strcmp(e->type_repr, "<class 'int'>");
}

/* Python refuses to print an int of more than 4300 digits
 * (sys.get_int_max_str_digits); tsd prints up to 2048 bytes (~4900
 * digits), in time quadratic in that bound. */
#define BIGINT_MAX_BYTES 2048
#define BIGINT_TEXT_CAP (BIGINT_MAX_BYTES * 5 / 2 + 16)

/* The exact decimal text of a pickle LONG (little-endian two's complement),
 * or NULL when it has more than BIGINT_MAX_BYTES bytes. */
static const char *bigint_text(char *out, const unsigned char *p, size_t n) {
  if (n > BIGINT_MAX_BYTES) return NULL;
  uint32_t limb[BIGINT_MAX_BYTES / 4 + 1] = {0};
  size_t nl = (n + 3) / 4;
  int neg = n && (p[n - 1] & 0x80);
  for (size_t i = 0; i < n; i++)
    limb[i / 4] |= (uint32_t)(neg ? (unsigned char)~p[i] : p[i])
                   << (8 * (i % 4));
  if (neg) { /* magnitude = ~x + 1, within the n bytes (and a carry past) */
    if (n % 4) limb[nl - 1] &= (uint32_t)((1ull << (8 * (n % 4))) - 1);
    for (size_t i = 0; i <= nl; i++)
      if (++limb[i] != 0) break;
    if (limb[nl]) nl++;
  }
  uint32_t chunk[BIGINT_TEXT_CAP / 9 + 1];
  size_t nc = 0;
  while (nl && !limb[nl - 1])
    nl--;
  while (nl) { /* divide by 10^9, keep the remainder */
    uint64_t rem = 0;
    for (size_t i = nl; i-- > 0;) {
      uint64_t cur = (rem << 32) | limb[i];
      limb[i] = (uint32_t)(cur / 1000000000u);
      rem = cur % 1000000000u;
    }
    chunk[nc++] = (uint32_t)rem;
    while (nl && !limb[nl - 1])
      nl--;
  }
  size_t len = 0;
  if (neg) out[len++] = '-';
  if (!nc) chunk[nc++] = 0;
  len += (size_t)sprintf(out + len, "%u", (unsigned)chunk[nc - 1]);
  for (size_t i = nc - 1; i-- > 0;)
    len += (size_t)sprintf(out + len, "%09u", (unsigned)chunk[i]);
  return out;
}

typedef struct dtype_total {
  tsd_dtype dtype;
  size_t tensors;
  u128 bytes;
} dtype_total;

static void tensors_text(char *out, size_t cap, size_t n) {
  snprintf(out, cap, "%zu tensor%s", n, n == 1 ? "" : "s");
}

static size_t key_column(size_t w) {
  return w < CLI_MAX_COLUMN ? w : CLI_MAX_COLUMN;
}

/* "metadata:" then one aligned "  key  value" line per entry. */
static void print_file_metadata(const tsd_checkpoint *ck) {
  size_t n = tsd_checkpoint_file_metadata_count(ck), wkey = 0;
  for (size_t i = 0; i < n; i++) {
    const char *k = NULL;
    if (tsd_checkpoint_file_metadata(ck, i, &k, NULL) == TSD_OK) {
      size_t w = key_column(cli_text_width(k, strlen(k)));
      if (w > wkey) wkey = w;
    }
  }
  if (n) printf("metadata:\n");
  for (size_t i = 0; i < n; i++) {
    const char *k = NULL, *v = NULL;
    if (tsd_checkpoint_file_metadata(ck, i, &k, &v) != TSD_OK) continue;
    fputs("  ", stdout);
    cli_text_pad(stdout, k, strlen(k), wkey);
    fputs("  ", stdout);
    cli_text(stdout, v, strlen(v), TSD_ESCAPE_TEXT);
    fputc('\n', stdout);
  }
}

/* A float as JSON: JSON has no nan or infinity, so they are the strings
 * "nan", "inf", "-inf" (Python's float() reads them back). */
static void json_float(double d) {
  if (isnan(d))
    printf("\"nan\"");
  else if (isinf(d))
    printf(d > 0 ? "\"inf\"" : "\"-inf\"");
  else
    printf("%.17g", d);
}

/* A non-tensor entry's value as the table shows it ("" for none). */
static void value_text(const tsd_entry *e, const char *cls, char *out,
                       size_t cap) {
  out[0] = '\0';
  if (e->kind == TSD_KIND_INT) {
    snprintf(out, cap, "%lld", (long long)e->int_value);
  } else if (e->kind == TSD_KIND_BOOL) {
    snprintf(out, cap, "%s", e->int_value ? "True" : "False");
  } else if (e->kind == TSD_KIND_FLOAT) {
    snprintf(out, cap, "%.17g", e->float_value);
  } else if (e->kind == TSD_KIND_STR) {
    /* at most 100 bytes of the escaped text, then "..." */
    char esc[101];
    size_t need =
        tsd_escape(esc, sizeof esc, e->str_value, e->str_len, TSD_ESCAPE_TEXT);
    snprintf(out, cap, "'%s'%s", esc, need >= sizeof esc ? "..." : "");
  } else if (e->kind == TSD_KIND_DICT || e->kind == TSD_KIND_LIST ||
             e->kind == TSD_KIND_TUPLE) {
    snprintf(out, cap, "(%zu items)", e->length);
  } else if (e->kind == TSD_KIND_OBJECT) {
    /* an inert placeholder: its class, escaped (it comes from the file) */
    if (!cls) cls = "";
    tsd_escape(out, cap, cls, strlen(cls), TSD_ESCAPE_TEXT);
  } else if (is_bigint(e)) {
    if (!bigint_text(out, (const unsigned char *)e->str_value, e->str_len))
      snprintf(out, cap, "(an int of %zu bytes)", e->str_len);
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
  u128 total_bytes = 0, total_numel = 0;
  size_t n_tensors = 0;
  dtype_total by_dtype[TSD_DTYPE_COUNT];
  size_t n_dtypes = 0;
  for (size_t i = 0; i < n; i++) {
    if (entries[i].kind != TSD_KIND_TENSOR) continue;
    u128 bytes = entry_bytes(&entries[i]);
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
  char num[40], num2[40];
  static char big[BIGINT_TEXT_CAP];
  if (json) {
    printf("{\"file\": ");
    cli_json_str(stdout, path, strlen(path));
    printf(", \"root_kind\": \"%s\", \"tensors\": %zu, \"numel\": %s, "
           "\"bytes\": %s, \"entries\": [",
           kind_name(tsd_checkpoint_root_kind(ck)), n_tensors,
           u128_text(num, total_numel), u128_text(num2, total_bytes));
    for (size_t i = 0; i < n; i++) {
      const tsd_entry *e = &entries[i];
      printf("%s{\"key\": ", i ? ", " : "");
      cli_json_str(stdout, e->key, e->key_len);
      printf(", \"kind\": \"%s\"", is_bigint(e) ? "int" : kind_name(e->kind));
      if (e->kind == TSD_KIND_TENSOR) {
        printf(", \"dtype\": \"%s\", \"shape\": ", tsd_dtype_name(e->dtype));
        cli_json_shape(stdout, e->ndim, e->shape);
        printf(", \"numel\": %lld, \"bytes\": %s, \"parameter\": %s",
               (long long)e->numel, u128_text(num, entry_bytes(e)),
               e->is_parameter ? "true" : "false");
      } else if (e->kind == TSD_KIND_INT) {
        printf(", \"value\": %lld", (long long)e->int_value);
      } else if (is_bigint(e)) {
        /* exact: JSON numbers have no size limit (Python reads it back as
         * the same int); null beyond BIGINT_MAX_BYTES */
        const char *t =
            bigint_text(big, (const unsigned char *)e->str_value, e->str_len);
        printf(", \"value\": %s", t ? t : "null");
      } else if (e->kind == TSD_KIND_BOOL) {
        printf(", \"value\": %s", e->int_value ? "true" : "false");
      } else if (e->kind == TSD_KIND_FLOAT) {
        printf(", \"value\": ");
        json_float(e->float_value);
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
      printf("%s\"%s\": %s", d ? ", " : "", tsd_dtype_name(by_dtype[d].dtype),
             u128_text(num, by_dtype[d].bytes));
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
    size_t wkey = 3, wdtype = 5, wshape = 5, wbytes = 12;
    char shape[512];
    if (n_dtypes) wkey = 5; /* "total" */
    for (size_t d = 0; d < n_dtypes; d++) {
      tensors_text(shape, sizeof shape, by_dtype[d].tensors);
      if (strlen(shape) > wshape) wshape = strlen(shape);
      if (strlen(u128_text(num, by_dtype[d].bytes)) > wbytes)
        wbytes = strlen(num); /* the totals are the widest numbers */
      if (strlen(tsd_dtype_name(by_dtype[d].dtype)) > wdtype)
        wdtype = strlen(tsd_dtype_name(by_dtype[d].dtype));
    }
    for (size_t i = 0; i < n; i++) {
      const tsd_entry *e = &entries[i];
      /* capped: a longer key overflows its column, not every row */
      size_t w = key_column(cli_text_width(e->key, e->key_len));
      if (w > wkey) wkey = w;
      const char *kind = is_bigint(e) ? "int" : kind_name(e->kind);
      if (e->kind == TSD_KIND_TENSOR) {
        shape_text(shape, sizeof shape, e->ndim, e->shape);
        if (strlen(shape) > wshape) wshape = strlen(shape);
        if (strlen(tsd_dtype_name(e->dtype)) > wdtype)
          wdtype = strlen(tsd_dtype_name(e->dtype));
      } else if (strlen(kind) > wdtype) {
        wdtype = strlen(kind);
      }
    }
    tsd_kind rk = tsd_checkpoint_root_kind(ck);
    if (rk != TSD_KIND_DICT && n == 0) {
      /* no dict to list (a list, a scalar, an inert object): say what the
       * file holds instead of an empty table */
      const char *cls = tsd_checkpoint_root_class(ck);
      char esc[256];
      if (cls) tsd_escape(esc, sizeof esc, cls, strlen(cls), TSD_ESCAPE_TEXT);
      printf("top level: %s%s%s%s, not a dict: no state dict to list\n",
             kind_name(rk), cls ? " (" : "", cls ? esc : "", cls ? ")" : "");
      free(entries);
      tsd_checkpoint_free(ck);
      return EXIT_LOADED;
    }
    printf("%-*s  %-*s  %-*s  %*s\n", (int)wkey, "key", (int)wdtype, "dtype",
           (int)wshape, "shape", (int)wbytes, "bytes");
    for (size_t i = 0; i < n; i++) {
      const tsd_entry *e = &entries[i];
      cli_text_pad(stdout, e->key, e->key_len, wkey);
      if (e->kind == TSD_KIND_TENSOR) {
        shape_text(shape, sizeof shape, e->ndim, e->shape);
        printf("  %-*s  %-*s  %*s\n", (int)wdtype, tsd_dtype_name(e->dtype),
               (int)wshape, shape, (int)wbytes, u128_text(num, entry_bytes(e)));
      } else {
        value_text(e, tsd_checkpoint_entry_class(ck, i), big, sizeof big);
        printf("  %-*s  %s\n", (int)wdtype,
               is_bigint(e) ? "int" : kind_name(e->kind), big);
      }
    }
    if (n_dtypes) {
      size_t rule = wkey + 2 + wdtype + 2 + wshape + 2 + wbytes;
      for (size_t c = 0; c < rule; c++) putchar('-');
      putchar('\n');
    }
    for (size_t d = 0; d < n_dtypes; d++) {
      tensors_text(shape, sizeof shape, by_dtype[d].tensors);
      printf("%-*s  %-*s  %-*s  %*s\n", (int)wkey, "total", (int)wdtype,
             tsd_dtype_name(by_dtype[d].dtype), (int)wshape, shape, (int)wbytes,
             u128_text(num, by_dtype[d].bytes));
    }
    printf("%zu tensors, %s elements, %s bytes\n", n_tensors,
           u128_text(num, total_numel), u128_text(num2, total_bytes));
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
    int out_arg = cli_output_arg(argc, argv, &i);
    if (out_arg < 0) return usage_error(LOAD_HELP, "bad --max-output-ratio", o);
    if (out_arg) continue;
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

  if (a.out && (cli_same_file("load", a.out, a.ckpt) ||
                cli_same_file("load", a.out, a.model.model_path) ||
                cli_same_file("load", a.out, a.model.spec)))
    return usage_error(LOAD_HELP, "OUT must differ from the inputs", a.out);

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
  /* -o -: the model is the data on stdout, the report goes to stderr (glibc
   * lets a program assign stdout, so the JSON printer is reused as is) */
  FILE *report_to = a.out && !strcmp(a.out, "-") ? stderr : stdout;
  if (a.json) {
    FILE *keep = stdout;
    stdout = report_to;
    cli_print_report_json(report, selected);
    stdout = keep;
  } else {
    cli_print_message(report_to, report);
  }
  rc = tsd_report_ok(report) ? EXIT_LOADED : EXIT_RAISED;
  if (rc == EXIT_LOADED && a.out) {
    int save_rc = cli_save(sm.model, a.out);
    if (save_rc >= 0) rc = save_rc;
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
  cli_msgf(stderr, "tsd: unknown command '%s'", cmd);
  fprintf(stderr, "\n%s", MAIN_HELP);
  return EXIT_USAGE;
}
