/* seed_finetune.c — the fine-tuning scenario tsd exists for, in plain C.
 *
 * An ImageNet-1k checkpoint goes into a 10-class model. With strict=False
 * PyTorch still raises on the head's size mismatch; popping the head's keys
 * fixes it (they come back as missing, which is fine); auto-pop does both in
 * one call. Finally the fine-tune-ready model is saved.
 *
 *   seed_finetune MODEL.pt CHECKPOINT.pth OUT.pt
 *
 * MODEL.pt is a TorchScript archive (needs a build with LibTorch).
 * Only the public header is used. */
#include <stdio.h>
#include <string.h>

#include "tsd.h"

static int die(const char *what, tsd_status st) {
  fprintf(stderr, "seed_finetune: %s: %s (%s)\n", what, tsd_last_error(),
          tsd_status_name(st));
  return 2;
}

/* Loads `ck` into a fresh copy of the model and prints what PyTorch would. */
static int load_and_print(const char *model_path, const tsd_checkpoint *ck,
                          const tsd_load_options *opts, const char *save_to) {
  tsd_model *model = NULL;
  tsd_status st = tsd_model_open_torchscript(&model, model_path, NULL);
  if (st != TSD_OK) return die("open model", st);
  tsd_report *report = NULL;
  st = tsd_load(&report, model, ck, opts);
  if (st != TSD_OK && st != TSD_ERR_LOAD) {
    tsd_model_free(model);
    return die("load", st);
  }
  if (tsd_report_ok(report)) {
    printf("%s\n", tsd_report_message(report));
  } else {
    printf("RuntimeError: %s\n", tsd_report_message(report));
  }
  for (size_t i = 0; i < tsd_report_count(report, TSD_LIST_POPPED); i++) {
    tsd_mismatch mm;
    if (tsd_report_mismatch(&mm, report, TSD_LIST_POPPED, i) != TSD_OK)
      continue;
    printf("popped %s: checkpoint [", mm.key);
    for (size_t d = 0; d < mm.checkpoint_ndim; d++)
      printf("%s%lld", d ? ", " : "", (long long)mm.checkpoint_shape[d]);
    printf("] model [");
    for (size_t d = 0; d < mm.model_ndim; d++)
      printf("%s%lld", d ? ", " : "", (long long)mm.model_shape[d]);
    printf("]\n");
  }
  int rc = 0;
  if (save_to && tsd_report_ok(report)) {
    st = tsd_model_save(model, save_to, NULL);
    if (st != TSD_OK) rc = die("save", st);
    else printf("saved %s\n", save_to);
  }
  tsd_report_free(report);
  tsd_model_free(model);
  return rc;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s MODEL.pt CHECKPOINT.pth OUT.pt\n", argv[0]);
    return 2;
  }
  const char *model_path = argv[1], *ckpt_path = argv[2], *out = argv[3];

  tsd_checkpoint *ck = NULL;
  tsd_status st = tsd_checkpoint_open(&ck, ckpt_path, NULL);
  if (st != TSD_OK) return die("open checkpoint", st);

  tsd_load_options non_strict = TSD_LOAD_OPTIONS_INIT;
  non_strict.strict = 0;

  /* 1. strict=False still raises on the head: a matched key, another shape. */
  printf("== load_state_dict(strict=False)\n");
  int rc = load_and_print(model_path, ck, &non_strict, NULL);

  /* 2. The manual fix: pop the head's keys, load the rest. */
  printf("== pop heads.head.weight, heads.head.bias; "
         "load_state_dict(strict=False)\n");
  if (!rc && ((st = tsd_checkpoint_pop(ck, "heads.head.weight")) != TSD_OK ||
              (st = tsd_checkpoint_pop(ck, "heads.head.bias")) != TSD_OK))
    rc = die("pop", st);
  if (!rc) rc = load_and_print(model_path, ck, &non_strict, NULL);
  tsd_checkpoint_free(ck);
  ck = NULL;

  /* 3. auto-pop: the same in one call, on the untouched checkpoint. */
  printf("== auto-pop, strict=False\n");
  if (!rc && (st = tsd_checkpoint_open(&ck, ckpt_path, NULL)) != TSD_OK)
    rc = die("open checkpoint", st);
  tsd_load_options auto_pop = non_strict;
  auto_pop.auto_pop = 1;
  if (!rc) rc = load_and_print(model_path, ck, &auto_pop, out);
  tsd_checkpoint_free(ck);
  return rc;
}
