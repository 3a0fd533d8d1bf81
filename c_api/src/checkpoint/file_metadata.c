/* file_metadata.c — a file's own metadata, public: safetensors
 * `__metadata__`, a sharded index's "metadata" (tsd__parsed.file_metadata,
 * a str -> str dict). */
#include <string.h>

#include "checkpoint.h"

static const tsd__value *file_meta(const tsd_checkpoint *c) {
  return c ? c->parsed.file_metadata : NULL;
}

size_t tsd_checkpoint_file_metadata_count(const tsd_checkpoint *ckpt) {
  const tsd__value *m = file_meta(ckpt);
  return m ? m->u.dict.len : 0;
}

tsd_status tsd_checkpoint_file_metadata(const char **out_key,
                                        const char **out_value,
                                        const tsd_checkpoint *ckpt,
                                        size_t index) {
  const tsd__value *m = file_meta(ckpt);
  size_t n = m ? m->u.dict.len : 0;
  if (index >= n)
    return tsd__err(TSD_ERR_NOT_FOUND,
                    "file metadata entry %zu does not exist (there are %zu)",
                    index, n);
  if (out_key) *out_key = m->u.dict.keys[index]->u.s.p;
  if (out_value) *out_value = m->u.dict.vals[index]->u.s.p;
  return TSD_OK;
}

const char *tsd_checkpoint_file_metadata_string(const tsd_checkpoint *ckpt,
                                                const char *key) {
  const tsd__value *m = file_meta(ckpt);
  if (!m || !key) return NULL;
  for (size_t i = 0; i < m->u.dict.len; i++)
    if (strcmp(m->u.dict.keys[i]->u.s.p, key) == 0)
      return m->u.dict.vals[i]->u.s.p;
  return NULL;
}
