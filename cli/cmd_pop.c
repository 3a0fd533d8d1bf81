/* cmd_pop.c — `tsd pop CKPT KEY... -o OUT`: the seed's manual fix
 * (`sd.pop(key)` then `torch.save(sd)`) as one command. The state dict is
 * rebuilt as a C-owned model (modules and versions from `_metadata`) and
 * written with tsd_model_save, so only tensor entries can be written. */
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"

enum { EXIT_OK = 0, EXIT_USAGE = 2 };

static const char *const POP_HELP =
    "usage: tsd pop CHECKPOINT KEY... -o OUT [options]\n"
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
    "nn.Parameter entries as plain tensors, as state_dict() holds them.\n"
    "\n"
    "options:\n"
    "  -o OUT                the file to write (required; may not be\n"
    "                        CHECKPOINT itself)\n"
    "  --missing-ok          a KEY that is not in the state dict is not an\n"
    "                        error\n" CLI_SELECT_HELP CLI_TORCHSCRIPT_HELP "\n"
    "exit status: 0 written, 2 bad usage, a KEY not found, unreadable or\n"
    "unwritable input\n";

static int usage(const char *msg, const char *arg) {
  fprintf(stderr, "tsd pop: %s%s%s\n\n%s", msg, arg ? ": " : "", arg ? arg : "",
          POP_HELP);
  return EXIT_USAGE;
}

int cmd_pop(int argc, char **argv);
int cmd_pop(int argc, char **argv) {
  const char *ckpt_path = NULL, *out = NULL;
  const char **keys = calloc((size_t)argc + 1, sizeof *keys);
  const char *selects[CLI_MAX_SELECT];
  size_t n_keys = 0, n_select = 0;
  int missing_ok = 0, torchscript = 0, rc = -1;
  if (!keys) {
    fprintf(stderr, "tsd: out of memory\n");
    return EXIT_USAGE;
  }
  for (int i = 0; i < argc && rc < 0; i++) {
    const char *o = argv[i];
    if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
      fputs(POP_HELP, stdout);
      rc = EXIT_OK;
    } else if (!strcmp(o, "-o") || !strcmp(o, "--output")) {
      if (i + 1 >= argc)
        rc = usage("-o needs a file", NULL);
      else
        out = argv[++i];
    } else if (!strcmp(o, "--torchscript-checkpoint")) {
      torchscript = 1;
    } else if (!strcmp(o, "--select")) {
      if (i + 1 >= argc)
        rc = usage("--select needs a key", NULL);
      else if (n_select == CLI_MAX_SELECT)
        rc = usage("too many --select", NULL);
      else
        selects[n_select++] = argv[++i];
    } else if (!strcmp(o, "--missing-ok")) {
      missing_ok = 1;
    } else if (!strcmp(o, "--")) {
      for (i++; i < argc; i++) {
        if (!ckpt_path)
          ckpt_path = argv[i];
        else
          keys[n_keys++] = argv[i];
      }
    } else if (o[0] == '-' && o[1]) {
      rc = usage("unknown option (use -- before a KEY that starts with -)", o);
    } else if (!ckpt_path) {
      ckpt_path = o;
    } else {
      keys[n_keys++] = o;
    }
  }
  if (rc < 0 && !ckpt_path) rc = usage("missing CHECKPOINT", NULL);
  if (rc < 0 && !n_keys) rc = usage("missing KEY (what to pop)", NULL);
  if (rc < 0 && !out) rc = usage("missing -o OUT", NULL);
  if (rc < 0 && !strcmp(out, ckpt_path))
    rc = usage("OUT must differ from CHECKPOINT", out);
  if (rc >= 0) {
    free(keys);
    return rc;
  }

  tsd_checkpoint *ck = NULL;
  cli_model m = {0};
  char selected[1024];
  tsd_status st = TSD_OK;
  rc = cli_open_checkpoint(&ck, ckpt_path, torchscript);
  if (rc < 0) rc = cli_select(ck, selects, n_select, selected, sizeof selected);
  /* a pickled model (an object root) gives its rebuilt state dict */
  if (rc < 0 && tsd_checkpoint_root_kind(ck) != TSD_KIND_DICT &&
      !(tsd_checkpoint_root_kind(ck) == TSD_KIND_OBJECT &&
        tsd_checkpoint_count(ck) > 0)) {
    fprintf(stderr, "tsd pop: %s holds no dict\n", ckpt_path);
    rc = EXIT_USAGE;
  }
  size_t popped = 0;
  for (size_t k = 0; rc < 0 && k < n_keys; k++) {
    st = tsd_checkpoint_pop(ck, keys[k]);
    if (st == TSD_OK)
      popped++;
    else if (!(st == TSD_ERR_NOT_FOUND && missing_ok))
      rc = cli_fail("cannot pop", st);
  }
  if (rc < 0)
    rc = cli_dict_as_model(&m, ck, "pop",
                           "the .pth writer writes tensors only (pop it as "
                           "well, or --select the state dict inside)");
  if (rc < 0) {
    st = tsd_model_save(m.model, out);
    if (st != TSD_OK) rc = cli_fail("cannot write output", st);
  }
  if (rc < 0) {
    printf("popped %zu key%s; wrote %s (%zu tensors)\n", popped,
           popped == 1 ? "" : "s", out, tsd_checkpoint_count(ck));
    rc = EXIT_OK;
  }
  cli_model_free(&m);
  tsd_checkpoint_free(ck);
  free(keys);
  return rc;
}
