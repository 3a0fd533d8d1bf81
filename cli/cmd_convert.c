/* cmd_convert.c — `tsd convert IN OUT`: a state dict from any format tsd
 * reads (.pth zip or legacy, safetensors, a sharded index) written as a
 * .pth (torch.save) or a .safetensors file, chosen by OUT's extension.
 *
 * The state dict is rebuilt as a C-owned model (modules and versions from
 * `_metadata` when IN has one) and written with tsd_model_save, which picks
 * the safetensors writer for a ".safetensors" path. */
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"
#include "cmd.h"

#define CONVERT_USAGE "usage: tsd convert IN OUT [options]\n"

static const char *const CONVERT_HELP =
    CONVERT_USAGE
    "\n"
    "Writes IN's state dict to OUT: a safetensors file when OUT ends in\n"
    ".safetensors, otherwise a .pth that torch.load reads. IN is any\n"
    "checkpoint tsd reads: a torch.save .pth (zip or legacy), a\n"
    "safetensors file, or a sharded checkpoint's *.index.json.\n"
    "\n"
    "Order and metadata: keys are written in state_dict (module) order; a\n"
    "state dict saved by torch.save(model.state_dict()) keeps its order\n"
    "exactly (a note is printed when IN's order differs). A safetensors IN\n"
    "is read sorted by key, as safetensors.torch.load_file gives it (its\n"
    "header's order is lost, as in Python). A .pth OUT keeps\n"
    "IN's _metadata (module versions) when IN has one; safetensors has no\n"
    "such field, so a .pth made from safetensors says version 1 for every\n"
    "module. A safetensors OUT gets __metadata__ {\"format\": \"pt\"}.\n"
    "\n"
    "Only tensors can be written: a state dict holding another value (an\n"
    "'epoch' int) is refused, naming the entry; --select the state dict of a\n"
    "training checkpoint. Tensors are written contiguous, in their own dtype,\n"
    "streamed from IN a few MiB at a time (with a remapping option, held in\n"
    "memory, bounded as --max-output-ratio says). IN '-' reads stdin; OUT\n"
    "'-' writes a .pth to stdout.\n"
    "\n"
    "A DataParallel training checkpoint to a clean state dict:\n"
    "  tsd convert train.pth clean.safetensors --select model \\\n"
    "      --strip-prefix module.\n"
    "\n"
    CLI_OUT_RULES_HELP
    "\n"
    "options:\n"
    "  --json                the result as one JSON object\n"
    "                        (docs/json-schema.md)\n" CLI_SELECT_HELP
    CLI_REMAP_HELP CLI_OUTPUT_HELP CLI_TORCHSCRIPT_HELP CLI_COMMON_HELP "\n"
    "A progress bar is shown on stderr when it is a terminal and IN is\n"
    "larger than 64 MB.\n"
    "\n"
    "exit status: 0 written, 2 bad usage, unreadable input or a write\n"
    "error\n";

static const cli_opt CONVERT_OPTS[] = {
    {OPT_JSON, "--json", NULL, 0},
    {OPT_QUIET, "--quiet", "-q", 0},
    {OPT_SELECT, "--select", NULL, 1},
    {OPT_STRIP, "--strip-prefix", NULL, 1},
    {OPT_RENAME, "--rename", NULL, 1},
    {OPT_ADD, "--add-prefix", NULL, 1},
    {OPT_RATIO, "--max-output-ratio", NULL, 1},
    {OPT_TS_CKPT, "--torchscript-checkpoint", NULL, 0},
    {OPT_NONE, NULL, NULL, 0}};

static int run_convert(const cli_command *cmd, int argc, char **argv) {
  static cli_common_args c; /* large; one per process */
  memset(&c, 0, sizeof c);
  const char *in = NULL, *out = NULL;
  int rc = CLI_GO_ON;
  cli_parser p;
  cli_parser_init(&p, cmd, argc, argv);
  for (int id;
       rc < 0 && (id = cli_next_own(&p, &c, NULL, NULL, &rc)) != CLI_END;) {
    if (id == CLI_ARG) {
      if (!in)
        in = p.value;
      else if (!out)
        out = p.value;
      else
        rc = cli_usage(cmd, "too many arguments: '%s'", p.value);
    }
  }
  if (rc < 0 && (!in || !out)) rc = cli_usage(cmd, "needs IN and OUT");
  if (rc < 0 && strcmp(in, "-") && !strcmp(in, out))
    rc = cli_usage(cmd, "OUT must differ from IN: %s", out);
  if (rc < 0 && cli_same_file(out, in)) rc = CLI_EXIT_USAGE;

  tsd_checkpoint *ck = NULL;
  char selected[1024] = "";
  if (rc < 0) rc = cli_open_checkpoint(&ck, in, c.torchscript);
  if (rc < 0) rc = cli_select(ck, c.selects, c.n_select, selected, sizeof selected);
  if (rc < 0)
    rc = cli_write_dict(ck, &c, in, out, selected,
                        "only tensors can be written (--select the state dict "
                        "inside a training checkpoint)",
                        "", NULL, 0);
  tsd_checkpoint_free(ck);
  cli_common_free(&c);
  return rc;
}

const cli_command cli_cmd_convert = {
    "convert", CONVERT_USAGE, CONVERT_HELP, CONVERT_OPTS, run_convert,
    "rewrite a checkpoint as .pth or .safetensors"};
