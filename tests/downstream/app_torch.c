/* app_torch.c -- a downstream C program that uses TorchScript models: it
 * links libtsd_torch too (CMake tsd::torch / tsd::torch_static, pkg-config
 * tsd-torch), built only against a tsd installed with LibTorch.
 *
 *   app_torch MODEL.pt
 *
 * Prints "MODEL: N tensors, class C (torch yes)"; exit 1 on error. */
#include <stdio.h>

#include <tsd.h>

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: app_torch MODEL.pt\n");
    return 2;
  }
  tsd_model *m = NULL;
  tsd_status st = tsd_model_open_torchscript(&m, argv[1], NULL);
  if (st != TSD_OK) {
    fprintf(stderr, "app_torch: %s (%s)\n", tsd_last_error(),
            tsd_status_name(st));
    return 1;
  }
  printf("%s: %zu tensors, class %s (torch %s)\n", argv[1],
         tsd_model_tensor_count(m), tsd_model_class_name(m),
         tsd_has_torch() ? "yes" : "no");
  tsd_model_free(m);
  return 0;
}
