/* cmd_diff.c — `tsd diff MODEL CKPT`: what a strict load would do (matched,
 * missing, unexpected, shape-mismatched keys), computed by a dry-run load:
 * nothing is copied, the model is not written. */
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"

enum { EXIT_WOULD_LOAD = 0, EXIT_WOULD_RAISE = 1, EXIT_USAGE = 2 };

static const char *const DIFF_HELP =
    "usage: tsd diff MODEL.pt CHECKPOINT [options]\n"
    "       tsd diff --model-spec SPEC CHECKPOINT [options]\n"
    "\n"
    "Shows, before loading anything, how CHECKPOINT's keys meet the model's:\n"
    "matched, missing (in the model, not in the checkpoint), unexpected (in\n"
    "the checkpoint, not in the model), shape mismatches, and any other\n"
    "error load_state_dict would raise. Exit status 0 when a strict load\n"
    "would succeed, 1 when it would raise, 2 for bad usage or input.\n"
    "MODEL.pt (a TorchScript archive) is read without running any of its\n"
    "code and without LibTorch: its modules, parameters and buffers come\n"
    "from its data.pkl and its classes' declarations.\n"
    "\n"
    "options:\n"
    "  --json                one JSON object: ok, matched_keys, missing_keys,\n"
    "                        unexpected_keys, size_mismatches, popped,\n"
    "                        error_msgs, message, selected\n"
    "  --all                 list matched keys in the table too (by default\n"
    "                        only their count)\n"
    "  --auto-pop            as tsd load --auto-pop (popped keys are then\n"
    "                        missing)\n" CLI_SELECT_HELP CLI_REMAP_HELP
    "  --class-name NAME     the model's class name in messages (default\n"
    "                        Model; --model-spec only)\n"
    "  --rules 1.13|2        PyTorch edge rules (default 1.13)\n"
    "  --device DEV          accepted and ignored (nothing is loaded)\n"
    CLI_TORCHSCRIPT_HELP
    "  --module PREFIX=TYPE  declare a module's PyTorch class (see tsd load)\n"
    "  --non-persistent NAME the model's buffer NAME is not persistent\n";

static int usage(const char *msg, const char *arg) {
  cli_msgf(stderr, "tsd diff: %s%s%s", msg, arg ? ": " : "", arg ? arg : "");
  fprintf(stderr, "\n%s", DIFF_HELP);
  return EXIT_USAGE;
}

static void shape_text(char *out, size_t cap, size_t ndim,
                       const int64_t *shape) {
  size_t len = (size_t)snprintf(out, cap, "[");
  for (size_t i = 0; i < ndim && len < cap; i++)
    len += (size_t)snprintf(out + len, cap - len, "%s%lld", i ? ", " : "",
                            (long long)shape[i]);
  if (len < cap) snprintf(out + len, cap - len, "]");
}

/* The model tensor's shape by name, as text ("" if not a model tensor). */
static void model_shape(const tsd_model *m, const char *name, char *out,
                        size_t cap) {
  out[0] = '\0';
  size_t n = tsd_model_tensor_count(m);
  for (size_t i = 0; i < n; i++) {
    tsd_tensor_info ti;
    if (tsd_model_tensor(m, i, &ti) == TSD_OK && !strcmp(ti.name, name)) {
      shape_text(out, cap, ti.ndim, ti.shape);
      return;
    }
  }
}

/* The checkpoint shape of the key the model sees as `name`: the current
 * dict's keys renamed as the load renamed them. */
static void ckpt_shape(const tsd_checkpoint *ck, const cli_remap *r,
                       const char *name, char *out, size_t cap) {
  out[0] = '\0';
  size_t n = tsd_checkpoint_count(ck);
  char mapped[4096];
  for (size_t i = 0; i < n; i++) {
    tsd_entry e;
    if (tsd_checkpoint_entry(ck, i, &e) != TSD_OK) continue;
    cli_remap_name(r, e.key, mapped, sizeof mapped);
    if (strcmp(mapped, name)) continue;
    if (e.kind == TSD_KIND_TENSOR) shape_text(out, cap, e.ndim, e.shape);
    else snprintf(out, cap, "%s", e.type_repr);
    return;
  }
}

typedef struct row {
  const char *state, *key;
  char ck[256], model[256];
} row;

static void print_list_json(const tsd_report *r, tsd_list l) {
  fputc('[', stdout);
  for (size_t i = 0; i < tsd_report_count(r, l); i++) {
    const char *s = tsd_report_item(r, l, i);
    if (i) fputs(", ", stdout);
    cli_json_str(stdout, s, strlen(s));
  }
  fputc(']', stdout);
}

static void print_mismatches_json(const tsd_report *r, tsd_list l) {
  fputc('[', stdout);
  for (size_t i = 0; i < tsd_report_count(r, l); i++) {
    tsd_mismatch mm;
    if (tsd_report_mismatch(r, l, i, &mm) != TSD_OK) continue;
    fputs(i ? ", {\"key\": " : "{\"key\": ", stdout);
    cli_json_str(stdout, mm.key, strlen(mm.key));
    fputs(", \"checkpoint_shape\": ", stdout);
    cli_json_shape(stdout, mm.checkpoint_ndim, mm.checkpoint_shape);
    fputs(", \"model_shape\": ", stdout);
    cli_json_shape(stdout, mm.model_ndim, mm.model_shape);
    fputc('}', stdout);
  }
  fputc(']', stdout);
}

static void print_json(const tsd_report *r, const char *selected) {
  printf("{\"ok\": %s, \"matched_keys\": ",
         tsd_report_ok(r) ? "true" : "false");
  print_list_json(r, TSD_LIST_MATCHED);
  fputs(", \"missing_keys\": ", stdout);
  print_list_json(r, TSD_LIST_MISSING);
  fputs(", \"unexpected_keys\": ", stdout);
  print_list_json(r, TSD_LIST_UNEXPECTED);
  fputs(", \"size_mismatches\": ", stdout);
  print_mismatches_json(r, TSD_LIST_MISMATCHED);
  fputs(", \"popped\": ", stdout);
  print_mismatches_json(r, TSD_LIST_POPPED);
  fputs(", \"error_msgs\": ", stdout);
  print_list_json(r, TSD_LIST_ERRORS);
  fputs(", \"message\": ", stdout);
  const char *msg = tsd_report_message(r);
  cli_json_str(stdout, msg, strlen(msg));
  fputs(", \"selected\": ", stdout);
  if (selected[0]) cli_json_str(stdout, selected, strlen(selected));
  else fputs("null", stdout);
  fputs("}\n", stdout);
}

/* Lines of error_msgs that are not a size mismatch or the strict
 * Missing/Unexpected summaries (non-tensor values, InstanceNorm stats...). */
static int is_other_error(const char *s) {
  return strncmp(s, "size mismatch for ", 18) &&
         strncmp(s, "Missing key(s) in state_dict: ", 30) &&
         strncmp(s, "Unexpected key(s) in state_dict: ", 33);
}

static void print_table(const tsd_report *r, const tsd_model *m,
                        const tsd_checkpoint *ck, const cli_remap *remap,
                        int all) {
  size_t n_match = tsd_report_count(r, TSD_LIST_MATCHED);
  size_t n_miss = tsd_report_count(r, TSD_LIST_MISSING);
  size_t n_unexp = tsd_report_count(r, TSD_LIST_UNEXPECTED);
  size_t n_mm = tsd_report_count(r, TSD_LIST_MISMATCHED);
  size_t n_pop = tsd_report_count(r, TSD_LIST_POPPED);
  size_t cap = (all ? n_match : 0) + n_miss + n_unexp + n_mm + n_pop;
  row *rows = calloc(cap ? cap : 1, sizeof *rows);
  if (!rows) {
    fprintf(stderr, "tsd: out of memory\n");
    return;
  }
  size_t n = 0;
  for (size_t i = 0; all && i < n_match; i++) {
    row *w = &rows[n++];
    w->state = "matched";
    w->key = tsd_report_item(r, TSD_LIST_MATCHED, i);
    model_shape(m, w->key, w->model, sizeof w->model);
    ckpt_shape(ck, remap, w->key, w->ck, sizeof w->ck);
  }
  for (size_t i = 0; i < n_mm; i++) {
    tsd_mismatch mm;
    if (tsd_report_mismatch(r, TSD_LIST_MISMATCHED, i, &mm)) continue;
    row *w = &rows[n++];
    w->state = "mismatch";
    w->key = mm.key;
    shape_text(w->ck, sizeof w->ck, mm.checkpoint_ndim, mm.checkpoint_shape);
    shape_text(w->model, sizeof w->model, mm.model_ndim, mm.model_shape);
  }
  for (size_t i = 0; i < n_pop; i++) {
    tsd_mismatch mm;
    if (tsd_report_mismatch(r, TSD_LIST_POPPED, i, &mm)) continue;
    row *w = &rows[n++];
    w->state = "popped";
    w->key = mm.key;
    shape_text(w->ck, sizeof w->ck, mm.checkpoint_ndim, mm.checkpoint_shape);
    shape_text(w->model, sizeof w->model, mm.model_ndim, mm.model_shape);
  }
  for (size_t i = 0; i < n_miss; i++) {
    row *w = &rows[n++];
    w->state = "missing";
    w->key = tsd_report_item(r, TSD_LIST_MISSING, i);
    snprintf(w->ck, sizeof w->ck, "-");
    model_shape(m, w->key, w->model, sizeof w->model);
  }
  for (size_t i = 0; i < n_unexp; i++) {
    row *w = &rows[n++];
    w->state = "unexpected";
    w->key = tsd_report_item(r, TSD_LIST_UNEXPECTED, i);
    ckpt_shape(ck, remap, w->key, w->ck, sizeof w->ck);
    snprintf(w->model, sizeof w->model, "-");
  }
  /* keys escaped (TEXT), their column capped: a longer key overflows it */
  size_t wk = 3, wc = 10;
  for (size_t i = 0; i < n; i++) {
    size_t w = cli_text_width(rows[i].key, strlen(rows[i].key));
    if (w > wk) wk = w < CLI_MAX_COLUMN ? w : CLI_MAX_COLUMN;
    if (strlen(rows[i].ck) > wc) wc = strlen(rows[i].ck);
  }
  if (n) {
    printf("%-10s  %-*s  %-*s  %s\n", "state", (int)wk, "key", (int)wc,
           "checkpoint", "model");
    for (size_t i = 0; i < n; i++) {
      printf("%-10s  ", rows[i].state);
      cli_text_pad(stdout, rows[i].key, strlen(rows[i].key), wk);
      printf("  %-*s  %s\n", (int)wc, rows[i].ck[0] ? rows[i].ck : "?",
             rows[i].model);
    }
  }
  for (size_t i = 0; i < tsd_report_count(r, TSD_LIST_ERRORS); i++) {
    const char *e = tsd_report_item(r, TSD_LIST_ERRORS, i);
    if (is_other_error(e)) cli_msgf(stdout, "error: %s", e);
  }
  printf("%zu matched, %zu missing, %zu unexpected, %zu shape mismatches",
         n_match, n_miss, n_unexp, n_mm);
  if (n_pop) printf(", %zu popped", n_pop);
  printf(": a strict load would %s\n",
         tsd_report_ok(r) ? "succeed" : "raise");
  free(rows);
}

int cmd_diff(int argc, char **argv);
int cmd_diff(int argc, char **argv) {
  static cli_model_args ma; /* large; one per process */
  static cli_remap remap;
  memset(&ma, 0, sizeof ma);
  memset(&remap, 0, sizeof remap);
  tsd_load_options opts = TSD_LOAD_OPTIONS_INIT;
  const char *selects[CLI_MAX_SELECT];
  size_t n_select = 0;
  const char *pos[2];
  size_t n_pos = 0;
  int json = 0, all = 0, torchscript = 0, rc = -1;
  for (int i = 0; i < argc && rc < 0; i++) {
    const char *o = argv[i];
    const char *val = i + 1 < argc ? argv[i + 1] : NULL;
    int r = cli_remap_arg(&remap, argc, argv, &i);
    if (r < 0) rc = EXIT_USAGE;
    if (r) continue;
    int takes = !strcmp(o, "--model-spec") || !strcmp(o, "--class-name") ||
                !strcmp(o, "--select") || !strcmp(o, "--rules") ||
                !strcmp(o, "--device") || !strcmp(o, "--module") ||
                !strcmp(o, "--non-persistent");
    if (takes && !val) {
      rc = usage("option needs a value", o);
      break;
    }
    if (takes) i++;
    if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
      fputs(DIFF_HELP, stdout);
      rc = EXIT_WOULD_LOAD;
    } else if (!strcmp(o, "--json")) {
      json = 1;
    } else if (!strcmp(o, "--all")) {
      all = 1;
    } else if (!strcmp(o, "--torchscript-checkpoint")) {
      torchscript = 1;
    } else if (!strcmp(o, "--auto-pop")) {
      opts.auto_pop = 1;
    } else if (!strcmp(o, "--model-spec")) {
      ma.spec = val;
    } else if (!strcmp(o, "--class-name")) {
      ma.class_name = val;
    } else if (!strcmp(o, "--device")) {
      ma.device = val;
    } else if (!strcmp(o, "--select")) {
      if (n_select == CLI_MAX_SELECT) rc = usage("too many --select", NULL);
      else selects[n_select++] = val;
    } else if (!strcmp(o, "--rules")) {
      if (!strcmp(val, "1.13")) opts.rules = TSD_RULES_TORCH_1_13;
      else if (!strcmp(val, "2")) opts.rules = TSD_RULES_TORCH_2;
      else rc = usage("--rules takes 1.13 or 2", val);
    } else if (!strcmp(o, "--module")) {
      if (ma.n_modules == CLI_MAX_LIST) rc = usage("too many --module", NULL);
      else ma.modules[ma.n_modules++] = val;
    } else if (!strcmp(o, "--non-persistent")) {
      if (ma.n_non_persistent == CLI_MAX_LIST)
        rc = usage("too many --non-persistent", NULL);
      else ma.non_persistent[ma.n_non_persistent++] = val;
    } else if (o[0] == '-' && o[1]) {
      rc = usage("unknown option", o);
    } else if (n_pos == 2) {
      rc = usage("unexpected argument", o);
    } else {
      pos[n_pos++] = o;
    }
  }
  if (rc < 0 && n_pos != (ma.spec ? 1u : 2u))
    rc = usage(ma.spec ? "--model-spec takes one CHECKPOINT"
                       : "expected MODEL.pt CHECKPOINT",
               NULL);
  if (rc >= 0) {
    cli_remap_free(&remap);
    return rc;
  }
  const char *ckpt_path = ma.spec ? pos[0] : pos[1];
  if (!ma.spec) ma.model_path = pos[0];
  ma.state_only = 1; /* a dry run: nothing of MODEL.pt runs */

  cli_model m;
  tsd_checkpoint *ck = NULL;
  tsd_report *report = NULL;
  char selected[1024];
  rc = cli_model_build(&m, &ma);
  if (rc < 0) rc = cli_open_checkpoint(&ck, ckpt_path, torchscript);
  if (rc < 0)
    rc = cli_select(ck, selects, n_select, selected, sizeof selected);
  if (rc < 0) {
    opts.strict = 1; /* the question diff answers */
    opts.dry_run = 1;
    cli_remap_apply(&remap, &opts);
    tsd_status st = tsd_load(&report, m.model, ck, &opts);
    if (st != TSD_OK && st != TSD_ERR_LOAD) rc = cli_fail("cannot diff", st);
  }
  if (rc < 0) {
    if (json) print_json(report, selected);
    else print_table(report, m.model, ck, &remap, all);
    rc = tsd_report_ok(report) ? EXIT_WOULD_LOAD : EXIT_WOULD_RAISE;
  }
  tsd_report_free(report);
  tsd_checkpoint_free(ck);
  cli_model_free(&m);
  cli_remap_free(&remap);
  return rc;
}
