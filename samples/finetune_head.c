/* finetune_head.c — a new classification head on any checkpoint, pure C.
 *
 *   finetune_head CHECKPOINT CLASS_NAME HEAD NUM_CLASSES [OUT.pth]
 *
 * The model is C-owned (your memory, no LibTorch): it has the checkpoint's
 * own tensors, except that the head's `HEAD.weight` [C, in] and `HEAD.bias`
 * [C] have NUM_CLASSES rows. That is the fine-tuning situation: a
 * strict=False load still raises on the head (a matched key with another
 * shape), and auto-pop drops the head's keys, loads the rest and reports
 * what it dropped. With OUT.pth the fine-tune-ready model is saved as a
 * torch.save file (its head zeros).
 *
 * A real program declares its model's real layout (roles, module types for
 * BatchNorm's rules, non-persistent buffers); this sample mirrors the
 * checkpoint so that it runs on any model: every tensor a parameter, in
 * checkpoint order, which is also PyTorch's state_dict order.
 * Only the public header is used. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tsd.h"

static int fail(const char *what, tsd_status st) {
  fprintf(stderr, "finetune_head: %s: %s (%s)\n", what, tsd_last_error(),
          tsd_status_name(st));
  return 2;
}

static void print_shape(size_t ndim, const int64_t *shape) {
  printf("[");
  for (size_t d = 0; d < ndim; d++)
    printf("%s%lld", d ? ", " : "", (long long)shape[d]);
  printf("]");
}

/* Prints a report the way Python shows the outcome of load_state_dict. */
static void print_report(const tsd_report *r) {
  if (tsd_report_ok(r))
    printf("%s\n", tsd_report_message(r));
  else
    printf("RuntimeError: %s\n", tsd_report_message(r));
  for (size_t i = 0; i < tsd_report_count(r, TSD_LIST_POPPED); i++) {
    tsd_mismatch mm;
    if (tsd_report_mismatch(&mm, r, TSD_LIST_POPPED, i) != TSD_OK) continue;
    printf("popped %s: checkpoint ", mm.key);
    print_shape(mm.checkpoint_ndim, mm.checkpoint_shape);
    printf(", model ");
    print_shape(mm.model_ndim, mm.model_shape);
    printf("\n");
  }
}

int main(int argc, char **argv) {
  if (argc != 5 && argc != 6) {
    fprintf(stderr,
            "usage: finetune_head CHECKPOINT CLASS_NAME HEAD NUM_CLASSES "
            "[OUT.pth]\n");
    return 2;
  }
  const char *ckpt_path = argv[1], *class_name = argv[2], *head = argv[3];
  char *end = NULL;
  long long classes = strtoll(argv[4], &end, 10);
  if (!*argv[4] || *end || classes <= 0) {
    fprintf(stderr, "finetune_head: NUM_CLASSES must be a positive integer\n");
    return 2;
  }
  char head_w[512], head_b[512];
  if ((size_t)snprintf(head_w, sizeof head_w, "%s.weight", head) >=
          sizeof head_w ||
      (size_t)snprintf(head_b, sizeof head_b, "%s.bias", head) >=
          sizeof head_b) {
    fprintf(stderr, "finetune_head: HEAD is too long\n");
    return 2;
  }

  tsd_checkpoint *ck = NULL;
  tsd_status st = tsd_checkpoint_open(&ck, ckpt_path, NULL);
  if (st != TSD_OK) return fail("open checkpoint", st);
  /* {'epoch': ..., 'state_dict': {...}} and friends: find the state dict */
  st = tsd_checkpoint_select_auto(NULL, ck);
  if (st != TSD_OK) {
    tsd_checkpoint_free(ck);
    return fail("find the state dict", st);
  }

  tsd_model *model = NULL;
  st = tsd_model_new(&model, class_name);
  if (st != TSD_OK) {
    tsd_checkpoint_free(ck);
    return fail("new model", st);
  }
  size_t n = tsd_checkpoint_count(ck), n_buffers = 0;
  void **buffers = calloc(n ? n : 1, sizeof *buffers);
  int rc = buffers ? 0 : fail("allocate", TSD_ERR_NOMEM);
  int found_head = 0;
  for (size_t i = 0; i < n && rc == 0; i++) {
    tsd_entry e;
    if (tsd_checkpoint_entry(&e, ck, i) != TSD_OK || e.kind != TSD_KIND_TENSOR)
      continue; /* e.g. a non-tensor value beside the weights */
    int64_t shape[TSD_MAX_NDIM];
    memcpy(shape, e.shape, e.ndim * sizeof *shape);
    int64_t numel = e.numel;
    if ((strcmp(e.key, head_w) == 0 || strcmp(e.key, head_b) == 0) &&
        e.ndim >= 1) {
      found_head = 1;
      numel = shape[0] ? numel / shape[0] * classes : 0;
      shape[0] = classes;
    }
    size_t bytes = (size_t)numel * tsd_dtype_size(e.dtype);
    void *data = calloc(bytes ? bytes : 1, 1); /* the head starts at zero */
    if (!data) {
      rc = fail("allocate", TSD_ERR_NOMEM);
      break;
    }
    buffers[n_buffers++] = data;
    st = tsd_model_add_tensor(model, e.key, TSD_PARAMETER, e.dtype, e.ndim,
                              shape, data);
    if (st != TSD_OK) rc = fail("add tensor", st);
  }
  if (rc == 0 && !found_head) {
    fprintf(stderr, "finetune_head: the checkpoint has no '%s' or '%s'\n",
            head_w, head_b);
    rc = 2;
  }

  tsd_report *r = NULL;
  if (rc == 0) {
    /* 1. What PyTorch does with strict=False: the head still raises. */
    tsd_load_options o = TSD_LOAD_OPTIONS_INIT;
    o.strict = 0;
    printf("== load_state_dict(strict=False)\n");
    st = tsd_load(&r, model, ck, &o);
    if (st != TSD_OK && st != TSD_ERR_LOAD) rc = fail("load", st);
    else print_report(r);
    tsd_report_free(r);
    r = NULL;
  }
  if (rc == 0) {
    /* 2. auto-pop: drop the mismatched keys, load the rest. */
    tsd_load_options o = TSD_LOAD_OPTIONS_INIT;
    o.strict = 0;
    o.auto_pop = 1;
    printf("== load_state_dict(strict=False) with auto-pop\n");
    st = tsd_load(&r, model, ck, &o);
    if (st != TSD_OK && st != TSD_ERR_LOAD) rc = fail("load", st);
    else print_report(r);
    if (rc == 0 && !tsd_report_ok(r)) rc = 1;
    tsd_report_free(r);
  }
  if (rc == 0 && argc == 6) {
    st = tsd_model_save(model, argv[5], NULL);
    if (st != TSD_OK) rc = fail("save", st);
    else printf("saved %s\n", argv[5]);
  }

  tsd_model_free(model);
  tsd_checkpoint_free(ck);
  for (size_t i = 0; i < n_buffers; i++) free(buffers[i]);
  free(buffers);
  return rc;
}
