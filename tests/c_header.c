/* Compiles tsd.h as plain C11 with -pedantic -Werror and calls a few
 * functions, so a C user never meets a C++-ism or an extension. */
#include <stdio.h>
#include <string.h>

#include "tsd.h"

int main(void) {
  tsd_load_options lo = TSD_LOAD_OPTIONS_INIT;
  tsd_open_options oo = TSD_OPEN_OPTIONS_INIT;
  tsd_layout_options yo = TSD_LAYOUT_OPTIONS_INIT;
  tsd_model *lm = NULL;
  tsd_checkpoint *ck = NULL;
  tsd_status st = tsd_checkpoint_open(&ck, "/nonexistent/file.pth", &oo);
  if (st != TSD_ERR_IO || ck != NULL || strlen(tsd_last_error()) == 0) {
    fprintf(stderr, "expected TSD_ERR_IO, got %s\n", tsd_status_name(st));
    return 1;
  }
  if (lo.strict != 1 || lo.auto_pop != 0) return 1;
  /* no memory given: refused before the file is opened */
  if (yo.version != TSD_LAYOUT_OPTIONS_VERSION ||
      tsd_model_from_layout(&lm, "/nonexistent/l.json", &yo) !=
          TSD_ERR_INVALID_ARG || lm != NULL)
    return 1;
  if (tsd_dtype_size(TSD_BFLOAT16) != 2) return 1;
  /* issue 15's additions: the initializers' new fields and the views API */
  if (lo.mode != TSD_LOAD_COPY || lo.device_copy != NULL || oo.flags != 0)
    return 1;
  {
    tsd_tensor_view v;
    if (tsd_checkpoint_view(&v, NULL, 0) != TSD_ERR_INVALID_ARG ||
        v.data != NULL)
      return 1;
    if (tsd_model_borrow_count(NULL, NULL) != 0) return 1;
  }
  tsd_checkpoint_free(NULL);
  tsd_model_free(NULL);
  tsd_report_free(NULL);
  printf("tsd %s\n", tsd_version());
  return 0;
}
