/* inflate.c — a bounded raw DEFLATE decoder (RFC 1951), for the one kind of
 * compressed zip record tsd reads: a TorchScript archive's code files
 * (torch.jit.save deflates them; torchscript_state.c reads two declarations
 * out of them). Checkpoint data is never compressed and stays refused.
 *
 * The output size is given (the zip's declared size) and never exceeded:
 * no deflate bomb. Every bit read is checked against the input's end,
 * every back-reference against what was produced; each output byte costs a
 * bounded number of steps, so time is linear in the output.
 */
#include <string.h>

#include "formats.h"

typedef struct bits {
  const uint8_t *in;
  size_t len, pos; /* byte position */
  uint32_t buf;    /* bits not yet used, LSB first */
  int n;           /* how many */
} bits;

/* Reads `n` (<= 16) bits; false past the input's end. */
static bool get(bits *b, int n, unsigned *out) {
  while (b->n < n) {
    if (b->pos == b->len) return false;
    b->buf |= (uint32_t)b->in[b->pos++] << b->n;
    b->n += 8;
  }
  *out = b->buf & ((1u << n) - 1u);
  b->buf >>= n;
  b->n -= n;
  return true;
}

/* A canonical Huffman code: counts of each length, symbols by code. */
typedef struct huff {
  uint16_t count[16];
  uint16_t symbol[288];
} huff;

/* Builds the code of `n` lengths; false if over-subscribed. */
static bool build(huff *h, const uint8_t *lengths, unsigned n) {
  uint16_t offs[16];
  memset(h->count, 0, sizeof h->count);
  for (unsigned i = 0; i < n; i++)
    h->count[lengths[i]]++;
  h->count[0] = 0;
  int left = 1;
  for (int len = 1; len < 16; len++) {
    left <<= 1;
    left -= h->count[len];
    if (left < 0) return false;
  }
  offs[1] = 0;
  for (int len = 1; len < 15; len++)
    offs[len + 1] = (uint16_t)(offs[len] + h->count[len]);
  for (unsigned i = 0; i < n; i++)
    if (lengths[i]) h->symbol[offs[lengths[i]]++] = (uint16_t)i;
  return true;
}

/* Decodes one symbol; -1 on an invalid code or the input's end. */
static int decode(bits *b, const huff *h) {
  int code = 0, first = 0, index = 0;
  for (int len = 1; len < 16; len++) {
    unsigned bit;
    if (!get(b, 1, &bit)) return -1;
    code |= (int)bit;
    int count = h->count[len];
    if (code - first < count) return h->symbol[index + code - first];
    index += count;
    first = (first + count) << 1;
    code <<= 1;
  }
  return -1;
}

static const uint16_t len_base[29] = {
    3,  4,  5,  6,  7,  8,  9,  10, 11,  13,  15,  17,  19,  23, 27,
    31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
static const uint8_t len_extra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1,
                                      1, 1, 2, 2, 2, 2, 3, 3, 3, 3,
                                      4, 4, 4, 4, 5, 5, 5, 5, 0};
static const uint16_t dist_base[30] = {
    1,    2,    3,    4,    5,    7,    9,    13,    17,    25,
    33,   49,   65,   97,   129,  193,  257,  385,   513,   769,
    1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
static const uint8_t dist_extra[30] = {0, 0, 0,  0,  1,  1,  2,  2,  3,  3,
                                       4, 4, 5,  5,  6,  6,  7,  7,  8,  8,
                                       9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

typedef struct out_buf {
  uint8_t *p;
  size_t cap, len;
} out_buf;

/* One Huffman-coded block's symbols until end-of-block (256). */
static bool codes(bits *b, out_buf *o, const huff *lit, const huff *dist) {
  for (;;) {
    int sym = decode(b, lit);
    if (sym < 0) return false;
    if (sym < 256) {
      if (o->len == o->cap) return false;
      o->p[o->len++] = (uint8_t)sym;
      continue;
    }
    if (sym == 256) return true;
    sym -= 257;
    if (sym >= 29) return false;
    unsigned extra, len, d;
    if (!get(b, len_extra[sym], &extra)) return false;
    len = len_base[sym] + extra;
    int ds = decode(b, dist);
    if (ds < 0 || ds >= 30 || !get(b, dist_extra[ds], &extra)) return false;
    d = dist_base[ds] + extra;
    if (d > o->len || len > o->cap - o->len) return false;
    for (unsigned i = 0; i < len; i++, o->len++)
      o->p[o->len] = o->p[o->len - d];
  }
}

static bool fixed_block(bits *b, out_buf *o) {
  uint8_t l[288];
  huff lit, dist;
  unsigned i = 0;
  for (; i < 144; i++)
    l[i] = 8;
  for (; i < 256; i++)
    l[i] = 9;
  for (; i < 280; i++)
    l[i] = 7;
  for (; i < 288; i++)
    l[i] = 8;
  build(&lit, l, 288);
  memset(l, 5, 30);
  build(&dist, l, 30);
  return codes(b, o, &lit, &dist);
}

static bool dynamic_block(bits *b, out_buf *o) {
  static const uint8_t order[19] = {16, 17, 18, 0, 8,  7, 9,  6, 10, 5,
                                    11, 4,  12, 3, 13, 2, 14, 1, 15};
  unsigned nlen, ndist, ncode, v;
  if (!get(b, 5, &nlen) || !get(b, 5, &ndist) || !get(b, 4, &ncode))
    return false;
  nlen += 257;
  ndist += 1;
  ncode += 4;
  if (nlen > 286 || ndist > 30) return false;
  uint8_t l[320];
  memset(l, 0, 19);
  for (unsigned i = 0; i < ncode; i++) {
    if (!get(b, 3, &v)) return false;
    l[order[i]] = (uint8_t)v;
  }
  huff lencode, lit, dist;
  if (!build(&lencode, l, 19)) return false;
  for (unsigned i = 0; i < nlen + ndist;) {
    int sym = decode(b, &lencode);
    if (sym < 0) return false;
    if (sym < 16) {
      l[i++] = (uint8_t)sym;
      continue;
    }
    uint8_t rep = 0;
    unsigned n;
    if (sym == 16) {
      if (i == 0 || !get(b, 2, &n)) return false;
      rep = l[i - 1];
      n += 3;
    } else if (sym == 17) {
      if (!get(b, 3, &n)) return false;
      n += 3;
    } else {
      if (!get(b, 7, &n)) return false;
      n += 11;
    }
    if (i + n > nlen + ndist) return false;
    while (n--)
      l[i++] = rep;
  }
  if (l[256] == 0) return false; /* no end-of-block code */
  if (!build(&lit, l, nlen) || !build(&dist, l + nlen, ndist)) return false;
  return codes(b, o, &lit, &dist);
}

tsd_status tsd__inflate(const uint8_t *in, size_t in_len, uint8_t *out,
                        size_t out_len, const char *what) {
  bits b = {in, in_len, 0, 0, 0};
  out_buf o = {out, out_len, 0};
  unsigned last = 0, type;
  bool ok = true;
  while (ok && !last) {
    if (!get(&b, 1, &last) || !get(&b, 2, &type)) {
      ok = false;
    } else if (type == 0) { /* stored: byte-aligned LEN, NLEN, bytes */
      b.buf = 0;
      b.n = 0;
      if (b.len - b.pos < 4) {
        ok = false;
        break;
      }
      unsigned len = b.in[b.pos] | (unsigned)b.in[b.pos + 1] << 8;
      unsigned nlen = b.in[b.pos + 2] | (unsigned)b.in[b.pos + 3] << 8;
      b.pos += 4;
      ok = len == (~nlen & 0xFFFFu) && len <= b.len - b.pos &&
           len <= o.cap - o.len;
      if (ok) {
        memcpy(o.p + o.len, b.in + b.pos, len);
        o.len += len;
        b.pos += len;
      }
    } else if (type == 1) {
      ok = fixed_block(&b, &o);
    } else if (type == 2) {
      ok = dynamic_block(&b, &o);
    } else {
      ok = false;
    }
  }
  if (!ok || o.len != out_len)
    return tsd__err(TSD_ERR_FORMAT,
                    "%s: corrupt deflate data (or not the %zu bytes its zip "
                    "entry declares)",
                    what, out_len);
  return TSD_OK;
}
