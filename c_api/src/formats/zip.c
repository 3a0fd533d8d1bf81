/* zip.c — the zip container of torch.save (PyTorch >= 1.6).
 *
 * torch.save writes (caffe2/serialize/inline_container.cc, miniz):
 * `<prefix>/data.pkl`, `<prefix>/data/<key>` for each storage,
 * `<prefix>/version`, all stored (method 0) with 64-byte aligned data, ZIP64
 * when large. Only the central directory, the local headers of the records
 * we use and data.pkl are read at open; storage bytes stay in the file.
 * Compressed records are refused (a deflated record can expand to tens of
 * GB: a zip bomb), and every offset and size is checked against the file and
 * against the central directory, which no record may overlap.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats.h"

/* Identical in zip.c and legacy.c; `fmt` is the format's own state. */
struct tsd__persistent_ctx {
  tsd__arena *arena;
  const tsd__source *src;
  void *fmt;
};

typedef struct zrec {
  const char *name; /* into the central directory copy */
  size_t name_len;
  uint64_t size, csize, local_off;
  uint64_t end_off; /* where the next record (or the directory) starts */
  uint16_t method, flags;
} zrec;

typedef struct zarchive {
  const tsd__source *src;
  tsd__arena *arena;
  const tsd__limits *limits;
  uint8_t *cd; /* the central directory, read once */
  zrec *recs;
  size_t nrecs;
  tsd__strmap names;
  uint64_t cd_offset;
  const char *prefix; /* "archive/" (with the slash) or "" */
  size_t prefix_len;
  tsd__storage **storages; /* arena; doubling, old blocks wasted */
  size_t nstorages, cap_storages;
  tsd__strmap keys; /* storage key -> index in storages */
  /* read-ahead over the local headers: torch.save writes the records in
   * file order, so one read serves the headers of many small tensors */
  uint8_t *ra;
  uint64_t ra_off;
  size_t ra_len;
  bool big; /* the `byteorder` record says "big" */
} zarchive;

/* An archive with nothing read yet; zarchive_free releases what reading it
 * took from the allocator (the arena keeps the rest). */
static void zarchive_init(zarchive *z, const tsd__source *src,
                          tsd__arena *arena, const tsd__limits *limits) {
  memset(z, 0, sizeof *z);
  z->src = src;
  z->arena = arena;
  z->limits = limits;
  z->prefix = "";
  tsd__strmap_init(&z->names, arena->al);
  tsd__strmap_init(&z->keys, arena->al);
}
static void zarchive_free(zarchive *z) {
  tsd__strmap_free(&z->names);
  tsd__strmap_free(&z->keys);
  tsd__mem_free(z->arena->al, z->recs);
  tsd__mem_free(z->arena->al, z->cd);
  tsd__mem_free(z->arena->al, z->ra);
}

#define RA_SIZE ((size_t)32 << 10)

/* Reads [off, off+n) of the archive for a local header, through the
 * read-ahead window when it fits. */
static tsd_status local_read(zarchive *z, uint64_t off, void *dst, size_t n,
                             const char *what) {
  const tsd__source *s = z->src;
  if (n > RA_SIZE || s->mem) return tsd__source_read(s, off, dst, n, what);
  if (!(z->ra && off >= z->ra_off && off - z->ra_off <= z->ra_len &&
        n <= z->ra_len - (off - z->ra_off))) {
    if (!z->ra && !(z->ra = tsd__mem_alloc(z->arena->al, RA_SIZE)))
      return tsd__err(TSD_ERR_NOMEM, "%s: out of memory", s->name);
    if (off >= s->size) return tsd__source_read(s, off, dst, n, what);
    uint64_t left = s->size - off;
    size_t len = left < RA_SIZE ? (size_t)left : RA_SIZE;
    z->ra_len = 0;
    tsd_status st = tsd__source_read(s, off, z->ra, len, what);
    if (st != TSD_OK) return st;
    z->ra_off = off;
    z->ra_len = len;
    if (n > len) return tsd__source_read(s, off, dst, n, what);
  }
  memcpy(dst, z->ra + (off - z->ra_off), n);
  return TSD_OK;
}

static uint16_t rd16(const uint8_t *p) {
  return (uint16_t)(p[0] | p[1] << 8);
}
static uint32_t rd32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}
static uint64_t rd64(const uint8_t *p) {
  return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static const char *rec_key(const void *ctx, size_t i, size_t *len) {
  const zarchive *z = ctx;
  *len = z->recs[i].name_len;
  return z->recs[i].name;
}
static const char *storage_key(const void *ctx, size_t i, size_t *len) {
  const zarchive *z = ctx;
  *len = strlen(z->storages[i]->key);
  return z->storages[i]->key;
}

#define EOCD_SIZE 22
#define EOCD64_SIZE 56
#define LOCATOR_SIZE 20
#define CDH_SIZE 46
#define LFH_SIZE 30

/* Finds the End of Central Directory: the last record signature within the
 * final 64 KiB + 22 bytes (the comment is at most 65535 bytes). */
static tsd_status find_eocd(zarchive *z, uint64_t *n_entries, uint64_t *cd_size,
                            uint64_t *cd_offset, uint64_t *cd_limit) {
  const tsd__source *s = z->src;
  if (s->size < EOCD_SIZE)
    return tsd__err(TSD_ERR_FORMAT,
                    "%s: %llu bytes is too small for a zip archive", s->name,
                    (unsigned long long)s->size);
  size_t tail =
      (size_t)(s->size < 65535 + EOCD_SIZE ? s->size : 65535 + EOCD_SIZE);
  uint64_t tail_off = s->size - tail;
  uint8_t *buf = tsd__mem_alloc(z->arena->al, tail);
  if (!buf) return tsd__err(TSD_ERR_NOMEM, "%s: out of memory", s->name);
  tsd_status st = tsd__source_read(s, tail_off, buf, tail, "zip end record");
  if (st != TSD_OK) {
    tsd__mem_free(z->arena->al, buf);
    return st;
  }
  size_t at = SIZE_MAX;
  for (size_t i = tail - EOCD_SIZE + 1; i-- > 0;) {
    if (rd32(buf + i) == 0x06054b50u &&
        i + EOCD_SIZE + rd16(buf + i + 20) <= tail) {
      at = i;
      break;
    }
  }
  if (at == SIZE_MAX) {
    tsd__mem_free(z->arena->al, buf);
    return tsd__err(TSD_ERR_FORMAT,
                    "%s: no zip End of Central Directory record (not a zip "
                    "archive, or truncated)",
                    s->name);
  }
  const uint8_t *e = buf + at;
  uint64_t eocd_off = tail_off + at;
  uint16_t disk = rd16(e + 4), cd_disk = rd16(e + 6);
  *n_entries = rd16(e + 10);
  *cd_size = rd32(e + 12);
  *cd_offset = rd32(e + 16);
  *cd_limit = eocd_off;
  /* A ZIP64 end-record locator sits right before the classic end record. */
  uint8_t loc[LOCATOR_SIZE];
  bool has_locator = false;
  if (eocd_off >= LOCATOR_SIZE) {
    if (at >= LOCATOR_SIZE) {
      memcpy(loc, buf + at - LOCATOR_SIZE, LOCATOR_SIZE);
      has_locator = rd32(loc) == 0x07064b50u;
    } else if (tsd__source_read(s, eocd_off - LOCATOR_SIZE, loc, LOCATOR_SIZE,
                                "zip64 locator") == TSD_OK) {
      has_locator = rd32(loc) == 0x07064b50u;
    }
  }
  tsd__mem_free(z->arena->al, buf);
  if (has_locator) {
    uint64_t off64 = rd64(loc + 8), end64;
    if (!tsd__add_u64(off64, EOCD64_SIZE, &end64) ||
        end64 > eocd_off - LOCATOR_SIZE)
      return tsd__err(TSD_ERR_FORMAT,
                      "%s: ZIP64 end record offset %llu is outside the file",
                      s->name, (unsigned long long)off64);
    uint8_t r[EOCD64_SIZE];
    st = tsd__source_read(s, off64, r, EOCD64_SIZE, "zip64 end record");
    if (st != TSD_OK) return st;
    if (rd32(r) != 0x06064b50u)
      return tsd__err(TSD_ERR_FORMAT,
                      "%s: offset %llu: bad ZIP64 end record signature",
                      s->name, (unsigned long long)off64);
    disk = (uint16_t)(rd32(r + 16) != 0);
    cd_disk = (uint16_t)(rd32(r + 20) != 0);
    *n_entries = rd64(r + 32);
    *cd_size = rd64(r + 40);
    *cd_offset = rd64(r + 48);
    *cd_limit = off64;
  } else if (*n_entries == 0xFFFF || *cd_size == 0xFFFFFFFFu ||
             *cd_offset == 0xFFFFFFFFu) {
    return tsd__err(TSD_ERR_FORMAT,
                    "%s: zip end record needs ZIP64 but there is no ZIP64 "
                    "locator",
                    s->name);
  }
  if (disk != 0 || cd_disk != 0)
    return tsd__err(TSD_ERR_UNSUPPORTED,
                    "%s: multi-disk zip archives are not supported", s->name);
  uint64_t cd_end;
  if (!tsd__add_u64(*cd_offset, *cd_size, &cd_end) || cd_end > *cd_limit)
    return tsd__err(TSD_ERR_FORMAT,
                    "%s: zip central directory (offset %llu, %llu bytes) runs "
                    "past its end record",
                    s->name, (unsigned long long)*cd_offset,
                    (unsigned long long)*cd_size);
  uint64_t min_size;
  if (!tsd__mul_u64(*n_entries, CDH_SIZE, &min_size) || min_size > *cd_size)
    return tsd__err(TSD_ERR_FORMAT,
                    "%s: zip central directory of %llu bytes cannot hold %llu "
                    "entries",
                    s->name, (unsigned long long)*cd_size,
                    (unsigned long long)*n_entries);
  return TSD_OK;
}

static int cmp_local_off(const void *a, const void *b) {
  const zrec *x = *(const zrec *const *)a, *y = *(const zrec *const *)b;
  return x->local_off < y->local_off ? -1 : x->local_off > y->local_off;
}

/* No two records may share bytes: otherwise one tensor's storage silently
 * reads another's (Python's zipfile, and torch.load, accept such files).
 * A record spans at least its local header, its name and its data; the local
 * extra field is only known later: each record's end_off (the next record's
 * offset, or the directory's) bounds it in record_data, as Python's zipfile
 * (3.12+, "Overlapped entries") does. */
static tsd_status check_overlaps(zarchive *z) {
  for (size_t i = 0; i < z->nrecs; i++)
    z->recs[i].end_off = z->cd_offset;
  if (z->nrecs < 2) return TSD_OK;
  const zrec **by_off = tsd__mem_alloc(z->arena->al, z->nrecs * sizeof *by_off);
  if (!by_off)
    return tsd__err(TSD_ERR_NOMEM, "%s: out of memory", z->src->name);
  for (size_t i = 0; i < z->nrecs; i++)
    by_off[i] = &z->recs[i];
  tsd__sort(by_off, z->nrecs, sizeof *by_off, cmp_local_off);
  tsd_status st = TSD_OK;
  for (size_t i = 0; i + 1 < z->nrecs; i++) {
    const zrec *a = by_off[i], *b = by_off[i + 1];
    /* local_off + LFH_SIZE + csize <= cd_offset was checked per record. */
    uint64_t end = a->local_off + LFH_SIZE + a->name_len + a->csize;
    if (end > b->local_off) {
      st = tsd__err(TSD_ERR_FORMAT,
                    "%s: zip records '%.*s' (offset %llu) and '%.*s' "
                    "(offset %llu) overlap",
                    z->src->name, (int)a->name_len, a->name,
                    (unsigned long long)a->local_off, (int)b->name_len, b->name,
                    (unsigned long long)b->local_off);
      break;
    }
    TSD__UNCONST(zrec *, a)->end_off = b->local_off;
  }
  tsd__mem_free(z->arena->al, by_off);
  return st;
}

static tsd_status parse_cd(zarchive *z) {
  const tsd__source *s = z->src;
  uint64_t n = 0, cd_size = 0, cd_off = 0, cd_limit = 0;
  tsd_status st = find_eocd(z, &n, &cd_size, &cd_off, &cd_limit);
  if (st != TSD_OK) return st;
  z->cd_offset = cd_off;
  z->cd = tsd__mem_alloc(z->arena->al, (size_t)cd_size);
  z->recs = tsd__mem_calloc(z->arena->al, (size_t)n, sizeof *z->recs);
  if (!z->cd || !z->recs)
    return tsd__err(TSD_ERR_NOMEM, "%s: out of memory for the zip directory",
                    s->name);
  st = tsd__source_read(s, cd_off, z->cd, (size_t)cd_size,
                        "zip central directory");
  if (st != TSD_OK) return st;
  size_t pos = 0;
  for (uint64_t i = 0; i < n; i++) {
    if (cd_size - pos < CDH_SIZE || rd32(z->cd + pos) != 0x02014b50u)
      return tsd__err(TSD_ERR_FORMAT,
                      "%s: offset %llu: bad zip central directory entry %llu",
                      s->name, (unsigned long long)(cd_off + pos),
                      (unsigned long long)i);
    const uint8_t *h = z->cd + pos;
    zrec *r = &z->recs[i];
    r->flags = rd16(h + 8);
    r->method = rd16(h + 10);
    r->csize = rd32(h + 20);
    r->size = rd32(h + 24);
    size_t nl = rd16(h + 28), el = rd16(h + 30), cl = rd16(h + 32);
    uint16_t disk = rd16(h + 34);
    r->local_off = rd32(h + 42);
    if (cd_size - pos - CDH_SIZE < (uint64_t)nl + el + cl)
      return tsd__err(TSD_ERR_FORMAT,
                      "%s: offset %llu: zip entry %llu's name and extra "
                      "fields run past the central directory",
                      s->name, (unsigned long long)(cd_off + pos),
                      (unsigned long long)i);
    r->name = (const char *)h + CDH_SIZE;
    r->name_len = nl;
    /* ZIP64 extended information (0x0001): the fields that are all-ones in
     * the fixed header follow, in this order. */
    const uint8_t *x = h + CDH_SIZE + nl, *xe = x + el;
    while (xe - x >= 4) {
      uint16_t id = rd16(x), sz = rd16(x + 2);
      if ((size_t)(xe - x - 4) < sz)
        return tsd__err(TSD_ERR_FORMAT,
                        "%s: zip entry '%.*s': extra field runs past its end",
                        s->name, (int)nl, r->name);
      if (id == 0x0001) {
        const uint8_t *f = x + 4, *fe = f + sz;
        uint64_t *fields[3] = {&r->size, &r->csize, &r->local_off};
        for (int k = 0; k < 3; k++) {
          if (*fields[k] != 0xFFFFFFFFu) continue;
          if (fe - f < 8)
            return tsd__err(TSD_ERR_FORMAT,
                            "%s: zip entry '%.*s': ZIP64 extra field too short",
                            s->name, (int)nl, r->name);
          *fields[k] = rd64(f);
          f += 8;
        }
        if (disk == 0xFFFF && fe - f >= 4) disk = (uint16_t)(rd32(f) != 0);
      }
      x += 4 + sz;
    }
    if (disk != 0)
      return tsd__err(TSD_ERR_UNSUPPORTED,
                      "%s: zip entry '%.*s' is on another disk", s->name,
                      (int)nl, r->name);
    uint64_t end;
    if (!tsd__add_u64(r->local_off, LFH_SIZE, &end) || end > cd_off ||
        !tsd__add_u64(r->local_off, r->csize, &end) || end > cd_off)
      return tsd__err(TSD_ERR_FORMAT,
                      "%s: zip record '%.*s' (offset %llu, %llu bytes) "
                      "overlaps the central directory at %llu",
                      s->name, (int)nl, r->name,
                      (unsigned long long)r->local_off,
                      (unsigned long long)r->csize, (unsigned long long)cd_off);
    pos += CDH_SIZE + nl + el + cl;
    bool oom;
    size_t prev;
    if (!tsd__strmap_insert(&z->names, r->name, nl, (size_t)i, rec_key, z,
                            &prev, &oom)) {
      if (oom) return tsd__err(TSD_ERR_NOMEM, "%s: out of memory", s->name);
      return tsd__err(TSD_ERR_FORMAT, "%s: duplicate zip record '%.*s'",
                      s->name, (int)nl, r->name);
    }
  }
  z->nrecs = (size_t)n;
  return check_overlaps(z);
}

/* The data offset of a record comes from its own local header: its name
 * and extra lengths may differ from the central directory's. */
static tsd_status record_data(zarchive *z, const zrec *r, uint64_t *off) {
  const tsd__source *s = z->src;
  if (r->method != 0)
    return tsd__err(TSD_ERR_UNSUPPORTED,
                    "%s: zip record '%.*s' is compressed (method %u); "
                    "torch.save stores records uncompressed, and tsd refuses "
                    "compressed ones (a compressed record can expand without "
                    "bound)",
                    s->name, (int)r->name_len, r->name, r->method);
  if (r->flags & 1u)
    return tsd__err(TSD_ERR_UNSUPPORTED, "%s: zip record '%.*s' is encrypted",
                    s->name, (int)r->name_len, r->name);
  if (r->csize != r->size)
    return tsd__err(TSD_ERR_FORMAT,
                    "%s: stored zip record '%.*s' has compressed size %llu "
                    "but size %llu",
                    s->name, (int)r->name_len, r->name,
                    (unsigned long long)r->csize, (unsigned long long)r->size);
  uint8_t h[LFH_SIZE];
  tsd_status st = local_read(z, r->local_off, h, LFH_SIZE, "zip local header");
  if (st != TSD_OK) return st;
  if (rd32(h) != 0x04034b50u)
    return tsd__err(TSD_ERR_FORMAT,
                    "%s: offset %llu: bad local header signature for zip "
                    "record '%.*s'",
                    s->name, (unsigned long long)r->local_off, (int)r->name_len,
                    r->name);
  /* The local header must name the same record as the directory, so two
   * directory entries cannot share one local record (compared in pieces:
   * a name may be up to 65535 bytes). */
  char name[512];
  bool same = rd16(h + 26) == r->name_len;
  for (size_t at = 0; same && at < r->name_len; at += sizeof name) {
    size_t k = r->name_len - at < sizeof name ? r->name_len - at : sizeof name;
    if ((st = local_read(z, r->local_off + LFH_SIZE + at, name, k,
                         "zip local header name")) != TSD_OK)
      return st;
    same = memcmp(name, r->name + at, k) == 0;
  }
  if (!same)
    return tsd__err(TSD_ERR_FORMAT,
                    "%s: offset %llu: the local header of zip record '%.*s' "
                    "names another record",
                    s->name, (unsigned long long)r->local_off, (int)r->name_len,
                    r->name);
  /* The local extra field's length is the local header's own: the data it
   * places must end before the next record (or the directory) begins, or
   * one record's bytes would be read as another's. */
  uint64_t data = r->local_off + LFH_SIZE + rd16(h + 26) + rd16(h + 28), end;
  if (!tsd__add_u64(data, r->size, &end) || end > r->end_off)
    return tsd__err(TSD_ERR_FORMAT,
                    "%s: zip record '%.*s' (data at %llu, %llu bytes, after "
                    "a local extra field of %u bytes) runs into %s at %llu",
                    s->name, (int)r->name_len, r->name,
                    (unsigned long long)data, (unsigned long long)r->size,
                    (unsigned)rd16(h + 28),
                    r->end_off == z->cd_offset ? "the central directory"
                                               : "the next record",
                    (unsigned long long)r->end_off);
  *off = data;
  return TSD_OK;
}

static const zrec *find_rec(const zarchive *z, const char *name, size_t len) {
  size_t i;
  if (!tsd__strmap_find(&z->names, name, len, rec_key, z, &i)) return NULL;
  return &z->recs[i];
}

/* Locates `<prefix>/data.pkl`: torch.save names the prefix after the file
 * stem (or "archive"); never assume it. */
static tsd_status find_prefix(zarchive *z, const zrec **pkl) {
  *pkl = NULL;
  size_t found = 0;
  for (size_t i = 0; i < z->nrecs; i++) {
    const zrec *r = &z->recs[i];
    if (r->name_len < 8 ||
        memcmp(r->name + r->name_len - 8, "data.pkl", 8) != 0)
      continue;
    size_t plen = r->name_len - 8;
    if (plen > 0) {
      if (plen < 2 || r->name[plen - 1] != '/' ||
          memchr(r->name, '/', plen - 1) != NULL)
        continue;
    }
    if (found++ == 0) {
      *pkl = r;
      z->prefix = r->name;
      z->prefix_len = plen;
    }
  }
  if (found == 0)
    return tsd__err(TSD_ERR_FORMAT,
                    "%s: the zip archive has no data.pkl record: not a "
                    "torch.save checkpoint",
                    z->src->name);
  if (found > 1)
    return tsd__err(TSD_ERR_FORMAT,
                    "%s: the zip archive has %zu data.pkl records at the top "
                    "level; which one is the checkpoint is ambiguous",
                    z->src->name, found);
  return TSD_OK;
}

/* ('storage', torch.FloatStorage, key, location, numel) */
static tsd_status zip_persistent(tsd__persistent_ctx *ctx, tsd__value *pid,
                                 tsd__value **out) {
  zarchive *z = ctx->fmt;
  tsd_dtype dtype;
  if (pid->kind != TSD__V_TUPLE || pid->u.seq.len != 5 ||
      pid->u.seq.items[0]->kind != TSD__V_STR ||
      strcmp(pid->u.seq.items[0]->u.s.p, "storage") != 0)
    return tsd__err(TSD_ERR_FORMAT,
                    "persistent id is not ('storage', type, key, location, "
                    "numel)");
  tsd__value **it = pid->u.seq.items;
  if (!tsd__storage_type_dtype(it[1], &dtype))
    return tsd__err(TSD_ERR_FORMAT, "persistent id: not a storage type");
  if (it[2]->kind != TSD__V_STR)
    return tsd__err(TSD_ERR_FORMAT, "persistent id: storage key is not a str");
  if (it[4]->kind != TSD__V_INT || it[4]->u.i < 0)
    return tsd__err(TSD_ERR_FORMAT,
                    "storage '%s': element count is not a non-negative int",
                    it[2]->u.s.p);
  const char *key = it[2]->u.s.p;
  size_t klen = it[2]->u.s.len;
  tsd__value *v = tsd__arena_alloc(ctx->arena, sizeof *v);
  if (!v) return tsd__err(TSD_ERR_NOMEM, "out of memory");
  v->kind = TSD__V_STORAGE;
  size_t idx;
  /* Shared storages: torch.load keeps one storage per key (the first
   * occurrence's dtype wins, as in torch.load's loaded_storages). */
  if (tsd__strmap_find(&z->keys, key, klen, storage_key, z, &idx)) {
    v->u.storage = z->storages[idx];
    *out = v;
    return TSD_OK;
  }
  if (memchr(key, '\0', klen))
    return tsd__err(TSD_ERR_FORMAT, "storage key contains a NUL byte");
  /* `<prefix>/data/<key>` */
  size_t nlen = z->prefix_len + 5 + klen;
  char *name = tsd__mem_alloc(z->arena->al, nlen + 1);
  if (!name) return tsd__err(TSD_ERR_NOMEM, "out of memory");
  memcpy(name, z->prefix, z->prefix_len);
  memcpy(name + z->prefix_len, "data/", 5);
  memcpy(name + z->prefix_len + 5, key, klen);
  name[nlen] = '\0';
  const zrec *r = find_rec(z, name, nlen);
  if (!r) {
    tsd_status st =
        tsd__err(TSD_ERR_FORMAT, "storage '%s': the archive has no record '%s'",
                 key, name);
    tsd__mem_free(z->arena->al, name);
    return st;
  }
  tsd__mem_free(z->arena->al, name);
  uint64_t numel = (uint64_t)it[4]->u.i, nbytes;
  if (!tsd__mul_u64(numel, tsd_dtype_size(dtype), &nbytes) || nbytes != r->size)
    return tsd__err(TSD_ERR_FORMAT,
                    "storage '%s': the pickle declares %llu %s elements "
                    "(%llu bytes) but its record holds %llu bytes",
                    key, (unsigned long long)numel, tsd_dtype_name(dtype),
                    (unsigned long long)numel * tsd_dtype_size(dtype),
                    (unsigned long long)r->size);
  uint64_t off;
  tsd_status st = record_data(z, r, &off);
  if (st != TSD_OK) return st;
  tsd__storage *s = tsd__arena_alloc(ctx->arena, sizeof *s);
  char *k = tsd__arena_alloc(ctx->arena, klen + 1);
  if (!s || !k) return tsd__err(TSD_ERR_NOMEM, "out of memory");
  memcpy(k, key, klen + 1);
  s->dtype = dtype;
  s->numel = numel;
  s->nbytes = nbytes;
  s->offset = off;
  s->key = k;
  s->untyped = tsd__storage_type_untyped(it[1]);
  /* torch.load swaps a file's storages whose byte order is not the
   * machine's by the dtype of their persistent id (UntypedStorage.byteswap):
   * whole elements, each half of a complex one, nothing for an untyped
   * (uint8) storage. A file without a `byteorder` record is little-endian. */
  s->swap = tsd__swap_unit(dtype, z->big);
  s->big_file = z->big;
  if (z->nstorages == z->cap_storages) {
    size_t cap = z->cap_storages ? z->cap_storages * 2 : 16;
    tsd__storage **a = tsd__arena_alloc(ctx->arena, cap * sizeof *a);
    if (!a) return tsd__err(TSD_ERR_NOMEM, "out of memory");
    if (z->nstorages) memcpy(a, z->storages, z->nstorages * sizeof *a);
    z->storages = a;
    z->cap_storages = cap;
  }
  z->storages[z->nstorages] = s;
  bool oom;
  if (!tsd__strmap_insert(&z->keys, k, klen, z->nstorages, storage_key, z, NULL,
                          &oom))
    return tsd__err(TSD_ERR_NOMEM, "out of memory");
  z->nstorages++;
  v->u.storage = s;
  *out = v;
  return TSD_OK;
}

static tsd_status read_zip(zarchive *z, tsd__parsed *out) {
  const tsd__source *s = z->src;
  tsd_status st = parse_cd(z);
  if (st != TSD_OK) return st;
  const zrec *pkl;
  st = find_prefix(z, &pkl);
  if (st != TSD_OK) return st;

  /* PyTorch >= 2.1 records the byte order: exactly "little" or "big"
   * (torch.load raises "Unknown endianness type" otherwise). Without the
   * record the data is little-endian (torch.load's default). */
  char bo_name[512];
  if (z->prefix_len + 9 < sizeof bo_name) {
    memcpy(bo_name, z->prefix, z->prefix_len);
    memcpy(bo_name + z->prefix_len, "byteorder", 9);
    const zrec *bo = find_rec(z, bo_name, z->prefix_len + 9);
    if (bo) {
      uint64_t off;
      char txt[8] = {0};
      if (bo->size != 3 && bo->size != 6)
        return tsd__err(TSD_ERR_FORMAT,
                        "%s: the byteorder record holds %llu bytes, not "
                        "\"little\" or \"big\"",
                        s->name, (unsigned long long)bo->size);
      st = record_data(z, bo, &off);
      if (st == TSD_OK)
        st = tsd__source_read(s, off, txt, (size_t)bo->size, "byteorder");
      if (st != TSD_OK) return st;
      if (strcmp(txt, "big") == 0)
        z->big = true;
      else if (strcmp(txt, "little") != 0)
        return tsd__err(TSD_ERR_FORMAT,
                        "%s: unknown byte order in the byteorder record (not "
                        "\"little\" or \"big\")",
                        s->name);
    }
  }

  uint64_t off;
  st = record_data(z, pkl, &off);
  if (st != TSD_OK) return st;
  if (pkl->size > z->limits->max_pickle_bytes)
    return tsd__err(TSD_ERR_LIMIT,
                    "%s: '%.*s' is %llu bytes, over limits.max_pickle_bytes "
                    "(%llu)",
                    s->name, (int)pkl->name_len, pkl->name,
                    (unsigned long long)pkl->size,
                    (unsigned long long)z->limits->max_pickle_bytes);
  if (pkl->size > SIZE_MAX / 2)
    return tsd__err(TSD_ERR_LIMIT, "%s: data.pkl too large", s->name);
  size_t len = (size_t)pkl->size;
  uint8_t *buf = tsd__mem_alloc(z->arena->al, len);
  if (!buf) return tsd__err(TSD_ERR_NOMEM, "%s: out of memory", s->name);
  st = tsd__source_read(s, off, buf, len, "data.pkl");
  if (st != TSD_OK) {
    tsd__mem_free(z->arena->al, buf);
    return st;
  }
  char what[600];
  snprintf(what, sizeof what, "%.*s", (int)pkl->name_len, pkl->name);
  /* The values the pickle builds are bounded by its size: tsd__unpickle
   * keeps them within tsd__parse_budget. */
  tsd__persistent_ctx pctx = {z->arena, s, z};
  size_t used;
  tsd__value *root;
  st = tsd__unpickle(buf, len, &used, z->arena, z->limits, zip_persistent,
                     &pctx, what, &root);
  tsd__mem_free(z->arena->al, buf);
  if (st != TSD_OK) return st;
  out->root = root;
  out->storages = z->storages;
  out->n_storages = z->nstorages;
  return TSD_OK;
}

tsd_status tsd__read_zip(const tsd__source *src, tsd__arena *arena,
                         const tsd__limits *limits, tsd__parsed *out) {
  zarchive z;
  zarchive_init(&z, src, arena, limits);
  memset(out, 0, sizeof *out);
  tsd_status st = read_zip(&z, out);
  zarchive_free(&z);
  if (st != TSD_OK) memset(out, 0, sizeof *out);
  return st;
}

/* Reads records `<prefix><names[i]>` (prefix: the folder of data.pkl) into
 * the arena, NUL-terminated: texts[i] (NULL when the archive has no such
 * record) and lens[i]. One parse of the central directory for all of them.
 * A record over max_bytes is TSD_ERR_LIMIT. For a TorchScript archive's code
 * files (torchscript.c). */
tsd_status tsd__zip_read_records(const tsd__source *src, tsd__arena *arena,
                                 const tsd__limits *limits,
                                 const char *const *names, size_t n,
                                 uint64_t max_bytes, char **texts,
                                 size_t *lens) {
  zarchive z;
  zarchive_init(&z, src, arena, limits);
  const zrec *pkl;
  tsd_status st = parse_cd(&z);
  if (st == TSD_OK) st = find_prefix(&z, &pkl);
  for (size_t i = 0; i < n && st == TSD_OK; i++) {
    texts[i] = NULL;
    lens[i] = 0;
    size_t nl = strlen(names[i]), full_len;
    char *full = NULL;
    if (__builtin_add_overflow(nl, z.prefix_len, &full_len) ||
        !(full = tsd__arena_alloc(arena, full_len + 1))) {
      st = tsd__err(TSD_ERR_NOMEM, "%s: out of memory", src->name);
      break;
    }
    memcpy(full, z.prefix, z.prefix_len);
    memcpy(full + z.prefix_len, names[i], nl);
    const zrec *r = find_rec(&z, full, full_len);
    if (!r) continue;
    /* torch.jit.save deflates code files (method 8): inflated here into
     * exactly their declared size (inflate.c), which max_bytes bounds. */
    zrec stored = *r;
    if (r->method == 8) {
      stored.method = 0;
      stored.size = r->csize;
    }
    uint64_t off;
    if ((st = record_data(&z, &stored, &off)) != TSD_OK) break;
    if (r->size > max_bytes || r->csize > max_bytes || r->size >= SIZE_MAX) {
      st = tsd__err(TSD_ERR_LIMIT,
                    "%s: zip record '%s' is %llu bytes, over the limit of "
                    "%llu",
                    src->name, full, (unsigned long long)r->size,
                    (unsigned long long)max_bytes);
      break;
    }
    char *buf = tsd__arena_alloc(arena, (size_t)r->size + 1);
    if (!buf) {
      st = tsd__err(TSD_ERR_NOMEM, "%s: out of memory", src->name);
      break;
    }
    if (r->method == 8) {
      uint8_t *z8 = tsd__mem_alloc(arena->al, r->csize ? (size_t)r->csize : 1);
      if (!z8) {
        st = tsd__err(TSD_ERR_NOMEM, "%s: out of memory", src->name);
        break;
      }
      st = tsd__source_read(src, off, z8, (size_t)r->csize, full);
      if (st == TSD_OK)
        st = tsd__inflate(z8, (size_t)r->csize, (uint8_t *)buf, (size_t)r->size,
                          full);
      tsd__mem_free(arena->al, z8);
    } else {
      st = tsd__source_read(src, off, buf, (size_t)r->size, full);
    }
    buf[r->size] = '\0';
    texts[i] = buf;
    lens[i] = (size_t)r->size;
  }
  zarchive_free(&z);
  return st;
}
