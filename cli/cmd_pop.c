/* cmd_pop.c — `tsd pop CKPT KEY... -o OUT`: the seed's manual fix
 * (`sd.pop(key)` then `torch.save(sd)`) as one command. The state dict is
 * rebuilt as a C-owned model (modules and versions from `_metadata`) and
 * written with tsd_model_save, so only tensor entries can be written. */
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"
#include "cmd.h"

#define POP_USAGE "usage: tsd pop CHECKPOINT KEY... -o OUT [options]\n"

static const char *const POP_HELP =
    POP_USAGE
    "\n"
    "Writes OUT, a .pth that torch.load reads, holding CHECKPOINT's state\n"
    "dict without the given KEYs: the other entries in their order, and the\n"
    "_metadata (module versions) when the checkpoint has one (one is added,\n"
    "version 1 for every module, when it has none).\n"
    "\n"
    "The .pth writer writes tensors only: a state dict holding non-tensor\n"
    "values (an 'epoch' int, a nested dict) is refused, naming the entry;\n"
    "pop it too, or --select the state dict inside a training checkpoint\n"
    "(OUT then holds that state dict alone). Tensors are written contiguous,\n"
    "each in its own storage (views and shared storages are not kept), and\n"
    "nn.Parameter entries as plain tensors, as state_dict() holds them;\n"
    "they are streamed from CHECKPOINT a few MiB at a time (with a\n"
    "remapping option, held in memory, bounded as --max-output-ratio says).\n"
    "KEYs are the dict's keys before any remapping. CHECKPOINT '-' reads\n"
    "stdin; OUT '-' writes stdout. A KEY that starts with - comes after --.\n"
    "\n"
    "A DataParallel training checkpoint to a clean state dict:\n"
    "  tsd pop train.pth optimizer_extra --missing-ok --select model \\\n"
    "      --strip-prefix module. -o clean.pth\n"
    "\n"
    CLI_OUT_RULES_HELP
    "\n"
    "options:\n"
    "  -o, --output OUT      the file to write (required; may not be\n"
    "                        CHECKPOINT itself)\n"
    "  --missing-ok          a KEY that is not in the state dict is not an\n"
    "                        error\n"
    "  --json                the result as one JSON object\n"
    "                        (docs/json-schema.md)\n" CLI_SELECT_HELP
    CLI_REMAP_HELP CLI_OUTPUT_HELP CLI_TORCHSCRIPT_HELP CLI_COMMON_HELP "\n"
    "A progress bar is shown on stderr when it is a terminal and\n"
    "CHECKPOINT is larger than 64 MB.\n"
    "\n"
    "exit status: 0 written, 2 bad usage, a KEY not found, unreadable\n"
    "input or a write error\n";

static const cli_opt POP_OPTS[] = {
    {OPT_OUTPUT, "-o", "--output", 1},
    {OPT_MISSING_OK, "--missing-ok", NULL, 0},
    {OPT_JSON, "--json", NULL, 0},
    {OPT_QUIET, "--quiet", "-q", 0},
    {OPT_SELECT, "--select", NULL, 1},
    {OPT_STRIP, "--strip-prefix", NULL, 1},
    {OPT_RENAME, "--rename", NULL, 1},
    {OPT_ADD, "--add-prefix", NULL, 1},
    {OPT_RATIO, "--max-output-ratio", NULL, 1},
    {OPT_TS_CKPT, "--torchscript-checkpoint", NULL, 0},
    {OPT_NONE, NULL, NULL, 0}};

static int run_pop(const cli_command *cmd, int argc, char **argv) {
  static cli_common_args c; /* large; one per process */
  memset(&c, 0, sizeof c);
  const char *ckpt_path = NULL, *out = NULL;
  const char **keys = calloc((size_t)argc + 1, sizeof *keys);
  const char **popped = calloc((size_t)argc + 1, sizeof *popped);
  size_t n_keys = 0, n_popped = 0;
  int missing_ok = 0, rc = CLI_GO_ON;
  if (!keys || !popped) rc = cli_error(TSD_ERR_NOMEM, "out of memory");
  cli_parser p;
  cli_parser_init(&p, cmd, argc, argv);
  for (int id;
       rc < 0 && (id = cli_next_own(&p, &c, NULL, NULL, &rc)) != CLI_END;) {
    if (id == CLI_ARG) {
      if (!ckpt_path)
        ckpt_path = p.value;
      else
        keys[n_keys++] = p.value;
    } else if (id == OPT_OUTPUT) {
      out = p.value;
    } else if (id == OPT_MISSING_OK) {
      missing_ok = 1;
    }
  }
  if (rc < 0 && !ckpt_path) rc = cli_usage(cmd, "missing CHECKPOINT");
  if (rc < 0 && !n_keys) rc = cli_usage(cmd, "missing KEY (what to pop)");
  if (rc < 0 && !out) rc = cli_usage(cmd, "missing -o OUT");
  if (rc < 0 && strcmp(out, "-") && !strcmp(out, ckpt_path))
    rc = cli_usage(cmd, "OUT must differ from CHECKPOINT: %s", out);
  if (rc < 0 && cli_same_file(out, ckpt_path)) rc = CLI_EXIT_USAGE;

  tsd_checkpoint *ck = NULL;
  char selected[1024] = "";
  if (rc < 0) rc = cli_open_checkpoint(&ck, ckpt_path, c.torchscript);
  if (rc < 0)
    rc = cli_select(ck, c.selects, c.n_select, selected, sizeof selected);
  for (size_t k = 0; rc < 0 && k < n_keys; k++) {
    tsd_status st = tsd_checkpoint_pop(ck, keys[k]);
    if (st == TSD_OK)
      popped[n_popped++] = keys[k];
    else if (st == TSD_ERR_NOT_FOUND && !missing_ok)
      rc = cli_key_not_found(ck, ckpt_path, "cannot pop", keys[k]);
    else if (st != TSD_ERR_NOT_FOUND)
      rc = cli_fail("cannot pop", st);
  }
  if (rc < 0) {
    char what[64];
    snprintf(what, sizeof what, "popped %zu key%s; ", n_popped,
             n_popped == 1 ? "" : "s");
    rc = cli_write_dict(ck, &c, ckpt_path, out, selected,
                        "the .pth writer writes tensors only (pop it as well, "
                        "or --select the state dict inside)",
                        what, popped, n_popped);
  }
  tsd_checkpoint_free(ck);
  cli_common_free(&c);
  free(keys);
  free(popped);
  return rc;
}

const cli_command cli_cmd_pop = {"pop", POP_USAGE, POP_HELP, POP_OPTS, run_pop,
                                 "write a checkpoint without some keys"};
