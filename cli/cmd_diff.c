/* cmd_diff.c — `tsd diff MODEL CKPT`: what a strict load would do (matched,
 * missing, unexpected, shape-mismatched keys), computed by a dry-run load:
 * nothing is copied, the model is not written. */
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"
#include "cmd.h"

#define DIFF_USAGE                                                           \
  "usage: tsd diff MODEL.pt CHECKPOINT [options]\n"                          \
  "       tsd diff --model-spec SPEC --class-name NAME CHECKPOINT "         \
  "[options]\n"

static const char *const DIFF_HELP =
    DIFF_USAGE
    "\n"
    "Shows, before loading anything, how CHECKPOINT's keys meet the model's:\n"
    "matched, missing (in the model, not in the checkpoint), unexpected (in\n"
    "the checkpoint, not in the model), shape mismatches, and any other\n"
    "error load_state_dict would raise. Exit status 0 when a strict load\n"
    "(with --non-strict: a non-strict one) would succeed, 1 when it would\n"
    "raise, 2 for bad usage, bad input or a write error.\n"
    "MODEL.pt (a TorchScript archive) is read without running any of its\n"
    "code and without LibTorch: its modules, parameters and buffers come\n"
    "from its data.pkl and its classes' declarations.\n"
    "\n"
    "options:\n"
    "  --json                one JSON object, the same as tsd load --json's\n"
    "                        (docs/json-schema.md): schema_version, ok,\n"
    "                        class_name, matched_keys, missing_keys,\n"
    "                        unexpected_keys, size_mismatches, popped_keys,\n"
    "                        popped, error_msgs, message, selected\n"
    "  --non-strict          what a load with strict=False would do\n"
    "  --all                 list matched keys in the table too (by default\n"
    "                        only their count)\n"
    "  --auto-pop            as tsd load --auto-pop (popped keys are then\n"
    "                        missing)\n" CLI_SELECT_HELP CLI_REMAP_HELP
    "  --class-name NAME     the model's class name in PyTorch's messages\n"
    "                        (required with --model-spec, as in tsd load)\n"
    "  --rules 1.13|2        PyTorch edge rules (default 1.13)\n"
    "  --device DEV          accepted and ignored (nothing is loaded)\n"
    CLI_TORCHSCRIPT_HELP
    "  --module PREFIX=TYPE  declare a module's PyTorch class (see tsd load)\n"
    "  --non-persistent NAME the model's buffer NAME is not persistent\n"
    CLI_OUTPUT_HELP CLI_COMMON_HELP
    "\n"
    "exit status: 0 the load would succeed, 1 it would raise, 2 bad usage,\n"
    "bad input or a write error\n";

#define shape_text cli_shape_text

/* The model tensor's shape by name, as text ("" if not a model tensor). */
static void model_shape(const tsd_model *m, const char *name, char *out,
                        size_t cap) {
  out[0] = '\0';
  size_t n = tsd_model_tensor_count(m);
  for (size_t i = 0; i < n; i++) {
    tsd_tensor_info ti;
    if (tsd_model_tensor(&ti, m, i) == TSD_OK && !strcmp(ti.name, name)) {
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
    if (tsd_checkpoint_entry(&e, ck, i) != TSD_OK) continue;
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

/* Lines of error_msgs that are not a size mismatch or the strict
 * Missing/Unexpected summaries (non-tensor values, InstanceNorm stats...). */
static int is_other_error(const char *s) {
  return strncmp(s, "size mismatch for ", 18) &&
         strncmp(s, "Missing key(s) in state_dict: ", 30) &&
         strncmp(s, "Unexpected key(s) in state_dict: ", 33);
}

static void print_table(const tsd_report *r, const tsd_model *m,
                        const tsd_checkpoint *ck, const cli_remap *remap,
                        int all, int strict) {
  size_t n_match = tsd_report_count(r, TSD_LIST_MATCHED);
  size_t n_miss = tsd_report_count(r, TSD_LIST_MISSING);
  size_t n_unexp = tsd_report_count(r, TSD_LIST_UNEXPECTED);
  size_t n_mm = tsd_report_count(r, TSD_LIST_MISMATCHED);
  size_t n_pop = tsd_report_count(r, TSD_LIST_POPPED);
  size_t cap = (all ? n_match : 0) + n_miss + n_unexp + n_mm + n_pop;
  row *rows = calloc(cap ? cap : 1, sizeof *rows);
  if (!rows) {
    cli_error(TSD_ERR_NOMEM, "out of memory");
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
    if (tsd_report_mismatch(&mm, r, TSD_LIST_MISMATCHED, i)) continue;
    row *w = &rows[n++];
    w->state = "mismatch";
    w->key = mm.key;
    shape_text(w->ck, sizeof w->ck, mm.checkpoint_ndim, mm.checkpoint_shape);
    shape_text(w->model, sizeof w->model, mm.model_ndim, mm.model_shape);
  }
  for (size_t i = 0; i < n_pop; i++) {
    tsd_mismatch mm;
    if (tsd_report_mismatch(&mm, r, TSD_LIST_POPPED, i)) continue;
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
  printf(": a %s load would %s\n", strict ? "strict" : "non-strict",
         tsd_report_ok(r) ? "succeed" : "raise");
  free(rows);
}

static const cli_opt DIFF_OPTS[] = {
    {OPT_MODEL_SPEC, "--model-spec", NULL, 1},
    {OPT_CLASS_NAME, "--class-name", NULL, 1},
    {OPT_DEVICE, "--device", NULL, 1},
    {OPT_MODULE, "--module", NULL, 1},
    {OPT_NON_PERSISTENT, "--non-persistent", NULL, 1},
    {OPT_RULES, "--rules", NULL, 1},
    {OPT_NON_STRICT, "--non-strict", NULL, 0},
    {OPT_AUTO_POP, "--auto-pop", NULL, 0},
    {OPT_ALL, "--all", NULL, 0},
    {OPT_JSON, "--json", NULL, 0},
    {OPT_QUIET, "--quiet", "-q", 0},
    {OPT_SELECT, "--select", NULL, 1},
    {OPT_STRIP, "--strip-prefix", NULL, 1},
    {OPT_RENAME, "--rename", NULL, 1},
    {OPT_ADD, "--add-prefix", NULL, 1},
    {OPT_RATIO, "--max-output-ratio", NULL, 1},
    {OPT_TS_CKPT, "--torchscript-checkpoint", NULL, 0},
    {OPT_NONE, NULL, NULL, 0}};

static int run_diff(const cli_command *cmd, int argc, char **argv) {
  static cli_model_args ma; /* large; one per process */
  static cli_common_args c;
  memset(&ma, 0, sizeof ma);
  memset(&c, 0, sizeof c);
  tsd_load_options opts = TSD_LOAD_OPTIONS_INIT;
  const char *pos[2];
  size_t n_pos = 0;
  int all = 0, rc = CLI_GO_ON;
  cli_parser p;
  cli_parser_init(&p, cmd, argc, argv);
  for (int id;
       rc < 0 && (id = cli_next_own(&p, &c, &ma, &opts, &rc)) != CLI_END;) {
    if (id == CLI_ARG) {
      if (n_pos == 2)
        rc = cli_usage(cmd, "unexpected argument '%s'", p.value);
      else
        pos[n_pos++] = p.value;
    } else if (id == OPT_ALL) {
      all = 1;
    }
  }
  const char *ckpt_path = NULL;
  if (rc < 0) {
    ckpt_path = cli_model_positionals(&ma, cmd, pos, n_pos);
    if (!ckpt_path) rc = CLI_EXIT_USAGE;
  }
  if (rc >= 0) {
    cli_common_free(&c);
    return rc;
  }
  ma.state_only = 1; /* a dry run: nothing of MODEL.pt runs */

  cli_model m;
  tsd_checkpoint *ck = NULL;
  tsd_report *report = NULL;
  char selected[1024] = "";
  rc = cli_model_open(&m, &ma, ckpt_path);
  if (rc < 0) rc = cli_open_checkpoint(&ck, ckpt_path, c.torchscript);
  if (rc < 0)
    rc = cli_select(ck, c.selects, c.n_select, selected, sizeof selected);
  if (rc < 0) {
    /* strict unless --non-strict: the question diff answers */
    opts.dry_run = 1;
    cli_remap_apply(&c.remap, &opts);
    tsd_status st = tsd_load(&report, m.model, ck, &opts);
    if (st != TSD_OK && st != TSD_ERR_LOAD) rc = cli_fail("cannot diff", st);
  }
  if (rc < 0) {
    if (c.json)
      cli_print_report_json(stdout, report, selected);
    else
      print_table(report, m.model, ck, &c.remap, all, opts.strict);
    cli_report_hints(report, m.model, &opts);
    rc = tsd_report_ok(report) ? CLI_EXIT_OK : CLI_EXIT_RAISED;
  }
  tsd_report_free(report);
  tsd_checkpoint_free(ck);
  cli_model_free(&m);
  cli_common_free(&c);
  return rc;
}

const cli_command cli_cmd_diff = {
    "diff", DIFF_USAGE, DIFF_HELP, DIFF_OPTS, run_diff,
    "show how a checkpoint's keys meet a model's, loading nothing"};
