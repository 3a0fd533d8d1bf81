/* byteorder.c — tensor data between a little-endian file and a big-endian
 * machine (s390x). Every format tsd reads or writes stores tensor elements
 * little-endian; on a little-endian machine nothing here runs. */
#include <string.h>

#include "base.h"

void tsd__swap_elems(void *p, size_t elsize, size_t count) {
  unsigned char *b = p;
  switch (elsize) {
  case 2:
    for (size_t i = 0; i < count; i++, b += 2) {
      unsigned char t = b[0];
      b[0] = b[1];
      b[1] = t;
    }
    break;
  case 4:
    for (size_t i = 0; i < count; i++, b += 4) {
      uint32_t v;
      memcpy(&v, b, 4);
      v = __builtin_bswap32(v);
      memcpy(b, &v, 4);
    }
    break;
  case 8:
    for (size_t i = 0; i < count; i++, b += 8) {
      uint64_t v;
      memcpy(&v, b, 8);
      v = __builtin_bswap64(v);
      memcpy(b, &v, 8);
    }
    break;
  default:
    break;
  }
}

uint8_t tsd__swap_unit(tsd_dtype dtype, bool file_big) {
  if (file_big == (bool)TSD__BIG_ENDIAN) return 0;
  size_t unit = tsd_dtype_size(dtype);
  if (dtype == TSD_COMPLEX32 || dtype == TSD_COMPLEX64 ||
      dtype == TSD_COMPLEX128)
    unit /= 2;
  return unit > 1 ? (uint8_t)unit : 0;
}
