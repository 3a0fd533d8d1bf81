/* cmd_load.c — `tsd load`: a checkpoint into a model (a TorchScript
 * archive, or a C-owned model built from --model-spec) with PyTorch's
 * load_state_dict semantics; the report as PyTorch's text or JSON. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"
#include "cmd.h"

#define LOAD_USAGE                                                             \
  "usage: tsd load MODEL.pt CHECKPOINT [options]\n"                            \
  "       tsd load --model-spec SPEC --class-name NAME CHECKPOINT "            \
  "[options]\n"

static const char *const LOAD_HELP = LOAD_USAGE
    "\n"
    "Loads CHECKPOINT into a model with PyTorch's load_state_dict semantics.\n"
    "MODEL.pt is a TorchScript archive (torch.jit.save). A TorchScript\n"
    "model is code: tsd load runs it through LibTorch (its __setstate__\n"
    "methods run while it is opened), as a program would. Load only models\n"
    "you trust; tsd inspect and tsd diff read a model's state without\n"
    "running it. --model-spec builds\n"
    "a C-owned model from the tensors of SPEC (a torch.save'd state dict:\n"
    "names, dtypes, shapes, initial values; modules from its _metadata),\n"
    "or from a layout file (scripts/tsd_layout.py: roles, module types,\n"
    "versions, extra state; tensors start at zero; docs/layout.md).\n"
    "CHECKPOINT (or SPEC) '-' reads stdin.\n"
    "\n"
    "options:\n"
    "  --non-strict          strict=False (unmatched keys are not errors)\n"
    "  --auto-pop            drop checkpoint keys whose shape differs from\n"
    "                        the model's, then load; report them as popped\n"
    "                        (each with both shapes on stderr, or in "
    "--json)\n" CLI_SELECT_HELP CLI_REMAP_HELP
    "  --json                print the report as one JSON object\n"
    "                        (docs/json-schema.md)\n"
    "  --map                 open CHECKPOINT mapped and bind the model's\n"
    "                        tensors to its bytes instead of copying them\n"
    "                        (TSD_OPEN_MAP, TSD_LOAD_BIND: what a program\n"
    "                        binding this checkpoint gets); a tensor that\n"
    "                        needs a conversion or cannot be viewed is\n"
    "                        copied. After a load that succeeded, stderr\n"
    "                        says how many were bound and copied and why\n"
    "                        each copy was made (--json: \"bound\" and\n"
    "                        \"copied\"). -o writes the same file as\n"
    "                        without --map. --model-spec only; not with\n"
    "                        CHECKPOINT '-' (stdin cannot be mapped) nor\n"
    "                        --torchscript-checkpoint\n"
    "  -o, --output OUT      write the loaded model (.pth for --model-spec,\n"
    "                        a TorchScript archive for MODEL.pt; safetensors\n"
    "                        when OUT ends in .safetensors); only when the\n"
    "                        load succeeded. '-' is stdout (the report then\n"
    "                        goes to stderr)\n" CLI_OUTPUT_HELP
    "  --rules 1.13|2        PyTorch edge rules to follow (default 1.13)\n"
    "  --device DEV          device of a TorchScript model (default "
    "cpu)\n" CLI_TORCHSCRIPT_HELP
    "  --module PREFIX=TYPE  declare the module at PREFIX as PyTorch class\n"
    "                        TYPE (e.g. features.2=ReLU, bn1=BatchNorm2d)\n"
    "  --non-persistent NAME the model's buffer NAME is not persistent\n"
    "  --none-param NAME     the model has a parameter NAME set to None\n"
    "                        (--model-spec only)\n" CLI_COMMON_HELP "\n"
    "The report (PyTorch's text, or --json) is the data: on stdout (on\n"
    "stderr with -o -). Notes, hints and the progress bar go to stderr.\n"
    "A progress bar is shown on stderr when it is a terminal and the\n"
    "checkpoint is larger than 64 MB.\n"
    "\n" CLI_OUT_RULES_HELP
    "--model-spec holds SPEC's tensors in memory: they may take at most\n"
    "--max-output-ratio times SPEC's size + 64 MiB.\n"
    "\n"
    "exit status: 0 loaded, 1 load_state_dict raised, 2 bad usage, bad\n"
    "input or a write error\n";

/* The options of the model to load into, shared with tsd diff. */
#define MODEL_OPTS                                                             \
  {OPT_MODEL_SPEC, "--model-spec", NULL, 1},                                   \
      {OPT_CLASS_NAME, "--class-name", NULL, 1},                               \
      {OPT_DEVICE, "--device", NULL, 1}, {OPT_MODULE, "--module", NULL, 1},    \
      {OPT_NON_PERSISTENT, "--non-persistent", NULL, 1},                       \
      {OPT_RULES, "--rules", NULL, 1},                                         \
      {OPT_NON_STRICT, "--non-strict", NULL, 0}, {                             \
    OPT_AUTO_POP, "--auto-pop", NULL, 0                                        \
  }

static const cli_opt LOAD_OPTS[] = {
    MODEL_OPTS,
    {OPT_NONE_PARAM, "--none-param", NULL, 1},
    {OPT_STRICT, "--strict", NULL, 0},
    {OPT_OUTPUT, "-o", "--output", 1},
    {OPT_JSON, "--json", NULL, 0},
    {OPT_MAP, "--map", NULL, 0},
    {OPT_QUIET, "--quiet", "-q", 0},
    {OPT_SELECT, "--select", NULL, 1},
    {OPT_STRIP, "--strip-prefix", NULL, 1},
    {OPT_RENAME, "--rename", NULL, 1},
    {OPT_ADD, "--add-prefix", NULL, 1},
    {OPT_RATIO, "--max-output-ratio", NULL, 1},
    {OPT_TS_CKPT, "--torchscript-checkpoint", NULL, 0},
    {OPT_NONE, NULL, NULL, 0}};

/* --model-spec, --class-name, --module...: 1 taken, 0 not a model option,
 * -1 usage error printed. Shared with tsd diff (cli_model_opt). */
int cli_model_opt(cli_model_args *m, tsd_load_options *o,
                  const cli_command *cmd, int id, const char *val);
int cli_model_opt(cli_model_args *m, tsd_load_options *o,
                  const cli_command *cmd, int id, const char *val) {
  switch (id) {
  case OPT_MODEL_SPEC:
    m->spec = val;
    return 1;
  case OPT_CLASS_NAME:
    m->class_name = val;
    return 1;
  case OPT_DEVICE:
    m->device = val;
    return 1;
  case OPT_MODULE:
    if (!strchr(val, '=') || m->n_modules == CLI_MAX_LIST) {
      cli_usage(cmd, "--module takes PREFIX=TYPE: %s", val);
      return -1;
    }
    m->modules[m->n_modules++] = val;
    return 1;
  case OPT_NON_PERSISTENT:
    if (m->n_non_persistent == CLI_MAX_LIST) {
      cli_usage(cmd, "too many --non-persistent");
      return -1;
    }
    m->non_persistent[m->n_non_persistent++] = val;
    return 1;
  case OPT_NONE_PARAM:
    if (m->n_none_params == CLI_MAX_LIST) {
      cli_usage(cmd, "too many --none-param");
      return -1;
    }
    m->none_params[m->n_none_params++] = val;
    return 1;
  case OPT_RULES:
    if (!strcmp(val, "1.13")) {
      o->rules = TSD_RULES_TORCH_1_13;
    } else if (!strcmp(val, "2")) {
      o->rules = TSD_RULES_TORCH_2;
    } else {
      cli_usage(cmd, "--rules takes 1.13 or 2, not '%s'", val);
      return -1;
    }
    return 1;
  case OPT_NON_STRICT:
    o->strict = 0;
    return 1;
  case OPT_STRICT:
    o->strict = 1;
    return 1;
  case OPT_AUTO_POP:
    o->auto_pop = 1;
    return 1;
  default:
    return 0;
  }
}

/* MODEL.pt CHECKPOINT, or --model-spec SPEC --class-name NAME CHECKPOINT:
 * the checkpoint's path, or NULL after a usage error. */
const char *cli_model_positionals(cli_model_args *m, const cli_command *cmd,
                                  const char *const *pos, size_t n_pos);
const char *cli_model_positionals(cli_model_args *m, const cli_command *cmd,
                                  const char *const *pos, size_t n_pos) {
  if (m->spec) {
    if (n_pos != 1) {
      cli_usage(cmd,
                n_pos ? "--model-spec takes one CHECKPOINT, not %zu "
                        "arguments"
                      : "missing CHECKPOINT",
                n_pos);
      return NULL;
    }
    if (!m->class_name) {
      cli_usage(cmd, "--model-spec needs --class-name (the model's class "
                     "name in PyTorch's messages)");
      return NULL;
    }
    return pos[0];
  }
  if (n_pos != 2) {
    cli_usage(cmd, "expected MODEL.pt CHECKPOINT (or --model-spec SPEC "
                   "--class-name NAME CHECKPOINT)");
    return NULL;
  }
  if (m->n_none_params) {
    cli_usage(cmd, "--none-param needs --model-spec");
    return NULL;
  }
  if (!strcmp(pos[0], "-")) {
    cli_usage(cmd, "MODEL.pt cannot be '-': a TorchScript model is read from "
                   "a file (CHECKPOINT and --model-spec may be '-')");
    return NULL;
  }
  m->model_path = pos[0];
  return pos[1];
}

/* Builds the model (cli_model_build, which knows CHECKPOINT for its
 * hints). */
int cli_model_open(cli_model *sm, cli_model_args *m, const char *ckpt);
int cli_model_open(cli_model *sm, cli_model_args *m, const char *ckpt) {
  m->ckpt_path = ckpt;
  return cli_model_build(sm, m);
}

/* --map: a C-owned model, a checkpoint file opened by tsd. 1 when it
 * may, else 0 after a usage error. */
static int map_allowed(const cli_command *cmd, const cli_model_args *ma,
                       const cli_common_args *c, const char *ckpt) {
  if (!ma->spec) {
    cli_usage(cmd, "--map binds the tensors of a C-owned model "
                   "(--model-spec); a TorchScript model's tensors are "
                   "LibTorch's and are copied into");
    return 0;
  }
  if (!strcmp(ckpt, "-")) {
    cli_usage(cmd, "--map maps CHECKPOINT; stdin ('-') cannot be mapped");
    return 0;
  }
  if (c->torchscript) {
    cli_usage(cmd, "--map maps CHECKPOINT; --torchscript-checkpoint reads "
                   "it through LibTorch");
    return 0;
  }
  return 1;
}

/* Text mode --map, after a load that succeeded (one that raised binds
 * nothing): the counts, then each copied key with its reason, on stderr
 * (as the popped keys). */
static void print_bind(const tsd_report *r) {
  size_t nb = tsd_report_count(r, TSD_LIST_BOUND);
  size_t nc = tsd_report_count(r, TSD_LIST_COPIED);
  cli_status("bound %zu tensor%s to the mapped checkpoint, copied %zu", nb,
             nb == 1 ? "" : "s", nc);
  for (size_t i = 0; i < nc; i++) {
    const char *why = tsd_report_item(r, TSD_LIST_COPY_REASONS, i);
    cli_status("copied '%s': %s", tsd_report_item(r, TSD_LIST_COPIED, i),
               why ? why : "");
  }
}

/* Text mode --auto-pop: each dropped key with both shapes, on stderr. */
static void print_popped(const tsd_report *r) {
  size_t n = tsd_report_count(r, TSD_LIST_POPPED);
  for (size_t i = 0; i < n; i++) {
    tsd_mismatch mm;
    if (tsd_report_mismatch(&mm, r, TSD_LIST_POPPED, i) != TSD_OK) continue;
    char a[512], b[512];
    cli_shape_text(a, sizeof a, mm.checkpoint_ndim, mm.checkpoint_shape);
    cli_shape_text(b, sizeof b, mm.model_ndim, mm.model_shape);
    cli_status("popped '%s': checkpoint %s, model %s", mm.key, a, b);
  }
}

static int run_load(const cli_command *cmd, int argc, char **argv) {
  static cli_model_args ma; /* large; one per process */
  static cli_common_args c;
  memset(&ma, 0, sizeof ma);
  memset(&c, 0, sizeof c);
  tsd_load_options opts = TSD_LOAD_OPTIONS_INIT;
  const char *pos[2], *out = NULL;
  size_t n_pos = 0;
  int rc = CLI_GO_ON, map = 0;
  cli_parser p;
  cli_parser_init(&p, cmd, argc, argv);
  for (int id;
       rc < 0 && (id = cli_next_own(&p, &c, &ma, &opts, &rc)) != CLI_END;) {
    if (id == CLI_ARG) {
      if (n_pos == 2)
        rc = cli_usage(cmd, "unexpected argument '%s'", p.value);
      else
        pos[n_pos++] = p.value;
    } else if (id == OPT_OUTPUT) {
      out = p.value;
    } else if (id == OPT_MAP) {
      map = 1;
    }
  }
  const char *ckpt = NULL;
  if (rc < 0) {
    ckpt = cli_model_positionals(&ma, cmd, pos, n_pos);
    if (!ckpt) rc = CLI_EXIT_USAGE;
  }
  if (rc < 0 && map && !map_allowed(cmd, &ma, &c, ckpt)) rc = CLI_EXIT_USAGE;
  if (rc < 0 && out &&
      (cli_same_file(out, ckpt) || cli_same_file(out, ma.model_path) ||
       cli_same_file(out, ma.spec)))
    rc = CLI_EXIT_USAGE;
  /* -o -: the model is the data on stdout; the report goes to stderr */
  int out_stdout = out && !strcmp(out, "-");
  if (out_stdout) cli_set_json_out(stderr);
  if (rc >= 0) {
    cli_common_free(&c);
    return rc;
  }

  cli_model sm;
  tsd_checkpoint *ck = NULL;
  tsd_report *report = NULL;
  char selected[1024] = "";
  rc = cli_model_open(&sm, &ma, ckpt);
  if (map) { /* CHECKPOINT only: SPEC is read into the model's memory */
    cli_open_mapped();
    opts.mode = TSD_LOAD_BIND;
  }
  if (rc < 0) rc = cli_open_checkpoint(&ck, ckpt, c.torchscript);
  if (rc < 0)
    rc = cli_select(ck, c.selects, c.n_select, selected, sizeof selected);
  if (rc < 0) {
    cli_remap_apply(&c.remap, &opts);
    cli_progress progress;
    cli_progress_setup(&progress, &opts, ckpt);
    tsd_status st = tsd_load(&report, sm.model, ck, &opts);
    cli_progress_end(&progress);
    if (st != TSD_OK && st != TSD_ERR_LOAD) rc = cli_fail("cannot load", st);
  }
  if (rc < 0) {
    FILE *report_to = out_stdout ? stderr : stdout;
    if (c.json && map) {
      cli_print_report_json_bind(report_to, report, selected);
    } else if (c.json) {
      cli_print_report_json(report_to, report, selected);
    } else {
      cli_print_message(report_to, report);
      print_popped(report);
      if (map && tsd_report_ok(report)) print_bind(report);
    }
    cli_report_hints(report, sm.model, &opts);
    rc = tsd_report_ok(report) ? CLI_EXIT_OK : CLI_EXIT_RAISED;
    if (rc == CLI_EXIT_OK && out) {
      int save_rc = cli_save(sm.model, out);
      if (save_rc >= 0)
        rc = save_rc;
      else if (!out_stdout)
        cli_status("wrote %s", out);
    }
  }
  tsd_report_free(report);
  cli_model_free(&sm); /* before the checkpoint a --map model borrows from */
  tsd_checkpoint_free(ck);
  cli_common_free(&c);
  return rc;
}

const cli_command cli_cmd_load = {
    "load",    LOAD_USAGE, LOAD_HELP,
    LOAD_OPTS, run_load,   "load a checkpoint into a model (load_state_dict)"};
