/* limits.c — the limits a checkpoint is read within (tsd_limits), with
 * tsd's defaults filled in for the fields left 0. */
#include "base.h"

void tsd__limits_resolve(tsd__limits *out, const tsd_open_options *opts) {
  out->max_depth = 1000;
  out->max_objects = (uint64_t)64 << 20;
  out->max_pickle_bytes = (uint64_t)4 << 30;
  if (!opts) return;
  if (opts->limits.max_depth) out->max_depth = opts->limits.max_depth;
  if (opts->limits.max_objects) out->max_objects = opts->limits.max_objects;
  if (opts->limits.max_pickle_bytes)
    out->max_pickle_bytes = opts->limits.max_pickle_bytes;
  out->max_output_ratio = opts->limits.max_output_ratio;
}
