/* detect.c — which reader a checkpoint file needs: a sharded index by its
 * path, safetensors, torch.save's zip (or a TorchScript archive, read as its
 * state dict) or the legacy format from the first bytes. */
#include <string.h>

#include "formats.h"

static bool has_suffix(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n > k && strcmp(s + n - k, suffix) == 0;
}

/* A zip: torch.save's, or a TorchScript archive read as its state dict
 * without running it (torchscript_state.c). */
static tsd_status read_zip(const tsd__source *src, tsd__arena *arena,
                           const tsd__limits *lim, tsd__parsed *out) {
  tsd_status st = tsd__read_zip(src, arena, lim, out);
  if (st == TSD_OK) st = tsd__torchscript_state(src, arena, lim, out);
  return st;
}

tsd_status tsd__read_file_format(const tsd__source *src, tsd__arena *arena,
                                 const tsd__limits *lim, tsd__parsed *out) {
  uint8_t head[9] = {0};
  size_t hn = src->size < 9 ? (size_t)src->size : 9;
  tsd_status st = tsd__source_read(src, 0, head, hn, "header");
  if (st != TSD_OK) return st;
  /* safetensors: an 8-byte length then '{'. A torch.save file never has
   * '{' there (zip: the method field; legacy: the magic number). */
  if ((hn == 9 && head[8] == '{') || has_suffix(src->name, ".safetensors"))
    return tsd__read_safetensors(src, arena, lim, out);
  if (hn >= 2 && head[0] == 'P' && head[1] == 'K')
    return read_zip(src, arena, lim, out);
  /* legacy: protocol 2's PROTO, or protocols 0-1's text LONG magic */
  if (hn >= 1 && (head[0] == 0x80 || head[0] == 'L'))
    return tsd__read_legacy(src, arena, lim, out);
  if (src->size >= 262) {
    /* a tar (legacy < 0.4) or a zip with a prefix: let the readers say */
    uint8_t t[5];
    st = tsd__source_read(src, 257, t, 5, "header");
    if (st == TSD_OK && memcmp(t, "ustar", 5) == 0)
      return tsd__read_legacy(src, arena, lim, out);
    if (st == TSD_OK) return read_zip(src, arena, lim, out);
    return st;
  }
  return tsd__err(TSD_ERR_FORMAT,
                  "%s: not a torch.save checkpoint (neither a zip archive "
                  "nor a legacy pickle; %llu bytes)",
                  src->name, (unsigned long long)src->size);
}
tsd_status tsd__read_checkpoint(const tsd__source *src, tsd__arena *arena,
                                const tsd__limits *lim,
                                const tsd_allocator *al, tsd__parsed *out) {
  /* A sharded checkpoint's index names its shards relative to its own
   * directory, so it is recognised by its path (never from memory). */
  if (src->fd >= 0 && has_suffix(src->name, ".json"))
    return tsd__read_sharded(src, arena, lim, al, out);
  return tsd__read_file_format(src, arena, lim, out);
}
