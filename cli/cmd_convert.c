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

enum { EXIT_OK = 0, EXIT_USAGE = 2 };

static const char *const CONVERT_HELP =
    "usage: tsd convert IN OUT [options]\n"
    "\n"
    "Writes IN's state dict to OUT: a safetensors file when OUT ends in\n"
    ".safetensors, otherwise a .pth that torch.load reads. IN is any\n"
    "checkpoint tsd reads: a torch.save .pth (zip or legacy), a\n"
    "safetensors file, or a sharded checkpoint's *.index.json.\n"
    "\n"
    "Order and metadata: keys are written in state_dict (module) order; a\n"
    "state dict saved by torch.save(model.state_dict()) keeps its order\n"
    "exactly (a note is printed when IN's order differs). A .pth OUT keeps\n"
    "IN's _metadata (module versions) when IN has one; safetensors has no\n"
    "such field, so a .pth made from safetensors says version 1 for every\n"
    "module. A safetensors OUT gets __metadata__ {\"format\": \"pt\"}.\n"
    "\n"
    "Only tensors can be written: a state dict holding another value (an\n"
    "'epoch' int) is refused, naming the entry; --select the state dict of a\n"
    "training checkpoint. Tensors are written contiguous, in their own dtype.\n"
    "The whole state dict is held in memory while writing.\n"
    "\n"
    "options:\n" CLI_SELECT_HELP CLI_TORCHSCRIPT_HELP "\n"
    "exit status: 0 written, 2 bad usage, unreadable input or unwritable\n"
    "output\n";

static int usage(const char *msg, const char *arg) {
  fprintf(stderr, "tsd convert: %s%s%s\n\n%s", msg, arg ? ": " : "",
          arg ? arg : "", CONVERT_HELP);
  return EXIT_USAGE;
}

int cmd_convert(int argc, char **argv);
int cmd_convert(int argc, char **argv) {
  const char *in = NULL, *out = NULL;
  const char *selects[CLI_MAX_SELECT];
  size_t n_select = 0;
  int rc = -1, torchscript = 0;
  for (int i = 0; i < argc && rc < 0; i++) {
    const char *o = argv[i];
    if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
      fputs(CONVERT_HELP, stdout);
      rc = EXIT_OK;
    } else if (!strcmp(o, "--torchscript-checkpoint")) {
      torchscript = 1;
    } else if (!strcmp(o, "--select")) {
      if (i + 1 >= argc)
        rc = usage("--select needs a key", NULL);
      else if (n_select == CLI_MAX_SELECT)
        rc = usage("too many --select", NULL);
      else
        selects[n_select++] = argv[++i];
    } else if (o[0] == '-' && o[1]) {
      rc = usage("unknown option", o);
    } else if (!in) {
      in = o;
    } else if (!out) {
      out = o;
    } else {
      rc = usage("too many arguments", o);
    }
  }
  if (rc < 0 && (!in || !out)) rc = usage("needs IN and OUT", NULL);
  if (rc < 0 && !strcmp(in, out)) rc = usage("OUT must differ from IN", out);
  if (rc >= 0) return rc;

  tsd_checkpoint *ck = NULL;
  cli_model m = {0};
  char selected[1024];
  tsd_status st = TSD_OK;
  rc = cli_open_checkpoint(&ck, in, torchscript);
  if (rc < 0) rc = cli_select(ck, selects, n_select, selected, sizeof selected);
  /* a pickled model (an object root) gives its rebuilt state dict */
  if (rc < 0 && tsd_checkpoint_root_kind(ck) != TSD_KIND_DICT &&
      !(tsd_checkpoint_root_kind(ck) == TSD_KIND_OBJECT &&
        tsd_checkpoint_count(ck) > 0)) {
    fprintf(stderr, "tsd convert: %s holds no dict\n", in);
    rc = EXIT_USAGE;
  }
  if (rc < 0)
    rc = cli_dict_as_model(&m, ck, "convert",
                           "only tensors can be written (--select the state "
                           "dict inside a training checkpoint)");
  if (rc < 0) {
    st = tsd_model_save(m.model, out);
    if (st != TSD_OK) rc = cli_fail("cannot write output", st);
  }
  if (rc < 0) {
    size_t n = strlen(out), k = strlen(".safetensors");
    int st_out = n > k && !strcmp(out + n - k, ".safetensors");
    printf("wrote %s (%zu tensors, %s)\n", out, tsd_checkpoint_count(ck),
           st_out ? "safetensors" : "torch.save .pth");
    rc = EXIT_OK;
  }
  cli_model_free(&m);
  tsd_checkpoint_free(ck);
  return rc;
}
