/* byteorder.c — tensor data between a little-endian file and a big-endian
 * machine (s390x). Every format tsd reads or writes stores tensor elements
 * little-endian; on a little-endian machine nothing here runs. */
#include <string.h>

#include "internal.h"

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
