/* cmd_inspect.c — `tsd inspect CHECKPOINT`: a checkpoint's entries (key,
 * dtype, shape, bytes; non-tensor values), the bytes of each dtype, the
 * file's metadata; as a table or one JSON object. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"
#include "cmd.h"

#define INSPECT_USAGE                                                        \
  "usage: tsd inspect CHECKPOINT [--json] [--select KEY] "                   \
  "[--torchscript-checkpoint]\n"

static const char *const INSPECT_HELP =
    INSPECT_USAGE
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
    "CHECKPOINT '-' reads stdin.\n"
    "\n"
    "options:\n"
    "  --json                one JSON object (docs/json-schema.md):\n"
    "                        schema_version, ok, file, root_kind, tensors,\n"
    "                        numel, bytes, entries, bytes_by_dtype,\n"
    "                        metadata, selected\n"
    "                        (metadata values as strings). A float nan,\n"
    "                        inf, -inf is the string \"nan\", \"inf\",\n"
    "                        \"-inf\"; an int beyond 64 bits an exact\n"
    "                        number (null past 2048 bytes); exact totals\n"
    "  --select KEY          list the dict under KEY (repeat to go deeper;\n"
    "                        auto picks it by name, as tsd load does)\n"
    CLI_TORCHSCRIPT_HELP CLI_COMMON_HELP
    "\n"
    "exit status: 0 listed, 2 bad usage, unreadable input or a write error\n";



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
static void print_file_metadata(FILE *out, const tsd_checkpoint *ck) {
  size_t n = tsd_checkpoint_file_metadata_count(ck), wkey = 0;
  for (size_t i = 0; i < n; i++) {
    const char *k = NULL;
    if (tsd_checkpoint_file_metadata(&k, NULL, ck, i) == TSD_OK) {
      size_t w = key_column(cli_text_width(k, strlen(k)));
      if (w > wkey) wkey = w;
    }
  }
  if (n) fprintf(out, "metadata:\n");
  for (size_t i = 0; i < n; i++) {
    const char *k = NULL, *v = NULL;
    if (tsd_checkpoint_file_metadata(&k, &v, ck, i) != TSD_OK) continue;
    fputs("  ", out);
    cli_text_pad(out, k, strlen(k), wkey);
    fputs("  ", out);
    cli_text(out, v, strlen(v), TSD_ESCAPE_TEXT);
    fputc('\n', out);
  }
}

/* A float as JSON: JSON has no nan or infinity, so they are the strings
 * "nan", "inf", "-inf" (Python's float() reads them back). */
static void json_float(FILE *out, double d) {
  if (isnan(d))
    fprintf(out, "\"nan\"");
  else if (isinf(d))
    fprintf(out, d > 0 ? "\"inf\"" : "\"-inf\"");
  else
    fprintf(out, "%.17g", d);
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

static const cli_opt INSPECT_OPTS[] = {
    {OPT_JSON, "--json", NULL, 0},
    {OPT_QUIET, "--quiet", "-q", 0},
    {OPT_SELECT, "--select", NULL, 1},
    {OPT_TS_CKPT, "--torchscript-checkpoint", NULL, 0},
    {OPT_NONE, NULL, NULL, 0}};

static int run_inspect(const cli_command *cmd, int argc, char **argv) {
  static cli_common_args c; /* large; one per process */
  memset(&c, 0, sizeof c);
  const char *path = NULL;
  cli_parser p;
  cli_parser_init(&p, cmd, argc, argv);
  int rc = CLI_GO_ON;
  for (int id; (id = cli_next_own(&p, &c, NULL, NULL, &rc)) != CLI_END;) {
    if (id == CLI_ARG) {
      if (path) return cli_usage(cmd, "unexpected argument '%s'", p.value);
      path = p.value;
    }
  }
  if (rc >= 0) return rc;
  if (!path) return cli_usage(cmd, "missing CHECKPOINT");
  FILE *out = stdout;
  int json = c.json;

  tsd_checkpoint *ck = NULL;
  rc = cli_open_checkpoint(&ck, path, c.torchscript);
  if (rc >= 0) return rc;
  tsd_status st;
  char selected[1024] = "";
  /* without --select: the top level as it is (no automatic selection) */
  if (c.n_select) {
    rc = cli_select(ck, c.selects, c.n_select, selected, sizeof selected);
    if (rc >= 0) {
      tsd_checkpoint_free(ck);
      return rc;
    }
  }
  size_t n = tsd_checkpoint_count(ck);
  /* Collect entries first so a bad one is an error before any output. */
  tsd_entry *entries = calloc(n ? n : 1, sizeof *entries);
  if (!entries) {
    tsd_checkpoint_free(ck);
    return cli_error(TSD_ERR_NOMEM, "out of memory");
  }
  for (size_t i = 0; i < n; i++) {
    st = tsd_checkpoint_entry(&entries[i], ck, i);
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
    fprintf(out, "{\"schema_version\": %d, \"ok\": true, \"file\": ",
            CLI_SCHEMA_VERSION);
    cli_json_str(out, path, strlen(path));
    fprintf(out, ", \"root_kind\": \"%s\", \"tensors\": %zu, \"numel\": %s, "
           "\"bytes\": %s, \"entries\": [",
           kind_name(tsd_checkpoint_root_kind(ck)), n_tensors,
           u128_text(num, total_numel), u128_text(num2, total_bytes));
    for (size_t i = 0; i < n; i++) {
      const tsd_entry *e = &entries[i];
      fprintf(out, "%s{\"key\": ", i ? ", " : "");
      cli_json_str(out, e->key, e->key_len);
      fprintf(out, ", \"kind\": \"%s\"", is_bigint(e) ? "int" : kind_name(e->kind));
      if (e->kind == TSD_KIND_TENSOR) {
        fprintf(out, ", \"dtype\": \"%s\", \"shape\": ", tsd_dtype_name(e->dtype));
        cli_json_shape(out, e->ndim, e->shape);
        fprintf(out, ", \"numel\": %lld, \"bytes\": %s, \"parameter\": %s",
               (long long)e->numel, u128_text(num, entry_bytes(e)),
               e->is_parameter ? "true" : "false");
      } else if (e->kind == TSD_KIND_INT) {
        fprintf(out, ", \"value\": %lld", (long long)e->int_value);
      } else if (is_bigint(e)) {
        /* exact: JSON numbers have no size limit (Python reads it back as
         * the same int); null beyond BIGINT_MAX_BYTES */
        const char *t =
            bigint_text(big, (const unsigned char *)e->str_value, e->str_len);
        fprintf(out, ", \"value\": %s", t ? t : "null");
      } else if (e->kind == TSD_KIND_BOOL) {
        fprintf(out, ", \"value\": %s", e->int_value ? "true" : "false");
      } else if (e->kind == TSD_KIND_FLOAT) {
        fprintf(out, ", \"value\": ");
        json_float(out, e->float_value);
      } else if (e->kind == TSD_KIND_STR) {
        fprintf(out, ", \"value\": ");
        cli_json_str(out, e->str_value, e->str_len);
      } else if (e->kind == TSD_KIND_DICT || e->kind == TSD_KIND_LIST ||
                 e->kind == TSD_KIND_TUPLE) {
        fprintf(out, ", \"length\": %zu", e->length);
      } else if (e->kind == TSD_KIND_OBJECT) {
        const char *cls = tsd_checkpoint_entry_class(ck, i);
        fprintf(out, ", \"class\": ");
        cli_json_str(out, cls, strlen(cls));
      }
      fprintf(out, "}");
    }
    fprintf(out, "], \"bytes_by_dtype\": {");
    for (size_t d = 0; d < n_dtypes; d++)
      fprintf(out, "%s\"%s\": %s", d ? ", " : "", tsd_dtype_name(by_dtype[d].dtype),
             u128_text(num, by_dtype[d].bytes));
    fprintf(out, "}, \"metadata\": {");
    for (size_t m = 0; m < tsd_checkpoint_file_metadata_count(ck); m++) {
      const char *k = NULL, *v = NULL;
      if (tsd_checkpoint_file_metadata(&k, &v, ck, m) != TSD_OK) continue;
      if (m) fprintf(out, ", ");
      cli_json_str(out, k, strlen(k));
      fprintf(out, ": ");
      cli_json_str(out, v, strlen(v));
    }
    fprintf(out, "}, \"selected\": ");
    cli_json_str_or_null(out, selected);
    fprintf(out, "}\n");
    cli_json_done();
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
      fprintf(out, "top level: %s%s%s%s, not a dict: no state dict to list\n",
             kind_name(rk), cls ? " (" : "", cls ? esc : "", cls ? ")" : "");
      free(entries);
      tsd_checkpoint_free(ck);
      return CLI_EXIT_OK;
    }
    fprintf(out, "%-*s  %-*s  %-*s  %*s\n", (int)wkey, "key", (int)wdtype, "dtype",
           (int)wshape, "shape", (int)wbytes, "bytes");
    for (size_t i = 0; i < n; i++) {
      const tsd_entry *e = &entries[i];
      cli_text_pad(out, e->key, e->key_len, wkey);
      if (e->kind == TSD_KIND_TENSOR) {
        shape_text(shape, sizeof shape, e->ndim, e->shape);
        fprintf(out, "  %-*s  %-*s  %*s\n", (int)wdtype, tsd_dtype_name(e->dtype),
               (int)wshape, shape, (int)wbytes, u128_text(num, entry_bytes(e)));
      } else {
        value_text(e, tsd_checkpoint_entry_class(ck, i), big, sizeof big);
        fprintf(out, "  %-*s  %s\n", (int)wdtype,
               is_bigint(e) ? "int" : kind_name(e->kind), big);
      }
    }
    if (n_dtypes) {
      size_t rule = wkey + 2 + wdtype + 2 + wshape + 2 + wbytes;
      for (size_t c = 0; c < rule; c++) fputc('-', out);
      fputc('\n', out);
    }
    for (size_t d = 0; d < n_dtypes; d++) {
      tensors_text(shape, sizeof shape, by_dtype[d].tensors);
      fprintf(out, "%-*s  %-*s  %-*s  %*s\n", (int)wkey, "total", (int)wdtype,
             tsd_dtype_name(by_dtype[d].dtype), (int)wshape, shape, (int)wbytes,
             u128_text(num, by_dtype[d].bytes));
    }
    fprintf(out, "%zu tensors, %s elements, %s bytes\n", n_tensors,
           u128_text(num, total_numel), u128_text(num2, total_bytes));
    print_file_metadata(out, ck);
  }
  free(entries);
  tsd_checkpoint_free(ck);
  return CLI_EXIT_OK;
}


const cli_command cli_cmd_inspect = {"inspect", INSPECT_USAGE, INSPECT_HELP,
                                     INSPECT_OPTS, run_inspect,
                                     "list a checkpoint's entries"};
