/* report.c — load reports: the lists PyTorch's load_state_dict collects, its
 * message texts (RuntimeError, _IncompatibleKeys repr) and the JSON form. */
#include <stdio.h>
#include <string.h>

#include "load.h"

typedef struct str_list {
  const char **items;
  size_t len, cap;
} str_list;

typedef struct mismatch_list {
  tsd_mismatch *items;
  size_t len, cap;
} mismatch_list;

struct tsd_report {
  tsd_allocator alloc;     /* the model's allocator, copied */
  const tsd_allocator *al; /* &alloc, or NULL for libc */
  tsd__arena arena;        /* every string and shape of the report */
  const char *class_name;
  str_list missing, unexpected, errors, mismatched_keys, popped_keys;
  str_list matched; /* TSD_LIST_MATCHED: not part of PyTorch's result */
  /* TSD_LIST_BOUND .. TSD_LIST_DEVICE_FAILED (views; not in the JSON) */
  str_list bound, copied, copy_reasons, device_failed;
  mismatch_list mismatched, popped;
  bool ok;
  char *message; /* al */
  char *json;    /* al */
};

static const char *arena_strndup(tsd__arena *a, const char *s, size_t n) {
  if (n == SIZE_MAX) return NULL;
  char *p = tsd__arena_alloc(a, n + 1);
  if (!p) return NULL;
  if (n) memcpy(p, s, n);
  p[n] = '\0';
  return p;
}

static tsd_status oom(void) {
  return tsd__err(TSD_ERR_NOMEM, "out of memory building the load report");
}

static tsd_status list_push(const tsd_allocator *al, str_list *l,
                            const char *s) {
  if (!tsd__mem_grow(al, (void **)&l->items, &l->cap, l->len + 1,
                     sizeof *l->items))
    return oom();
  l->items[l->len++] = s;
  return TSD_OK;
}

static str_list *str_list_of(tsd_report *r, tsd_list list) {
  switch (list) {
  case TSD_LIST_MISSING:
    return &r->missing;
  case TSD_LIST_UNEXPECTED:
    return &r->unexpected;
  case TSD_LIST_ERRORS:
    return &r->errors;
  case TSD_LIST_MISMATCHED:
    return &r->mismatched_keys;
  case TSD_LIST_POPPED:
    return &r->popped_keys;
  case TSD_LIST_MATCHED:
    return &r->matched;
  case TSD_LIST_BOUND:
    return &r->bound;
  case TSD_LIST_COPIED:
    return &r->copied;
  case TSD_LIST_COPY_REASONS:
    return &r->copy_reasons;
  case TSD_LIST_DEVICE_FAILED:
    return &r->device_failed;
  }
  return NULL;
}

tsd_status tsd__report_new(tsd_report **out, const char *class_name,
                           const tsd_allocator *al) {
  *out = NULL;
  tsd_report *r = tsd__mem_calloc(al, 1, sizeof *r);
  if (!r) return oom();
  if (al) {
    r->alloc = *al;
    r->al = &r->alloc;
  }
  tsd__arena_init(&r->arena, 0, r->al);
  r->class_name = arena_strndup(&r->arena, class_name, strlen(class_name));
  if (!r->class_name) {
    tsd_report_free(r);
    return oom();
  }
  *out = r;
  return TSD_OK;
}

tsd_status tsd__report_add(tsd_report *r, tsd_list list, const char *text,
                           size_t len) {
  str_list *l = str_list_of(r, list);
  if (!l) return tsd__err(TSD_ERR_INVALID_ARG, "bad report list %d", (int)list);
  const char *s = arena_strndup(&r->arena, text, len);
  if (!s) return oom();
  return list_push(r->al, l, s);
}

void tsd__shape_repr(tsd__buf *b, size_t ndim, const int64_t *shape) {
  tsd__buf_puts(b, "torch.Size([");
  for (size_t i = 0; i < ndim; i++)
    tsd__buf_printf(b, "%s%lld", i ? ", " : "", (long long)shape[i]);
  tsd__buf_puts(b, "])");
}

tsd_status tsd__report_add_mismatch(tsd_report *r, tsd_list list,
                                    const char *key, size_t ckpt_ndim,
                                    const int64_t *ckpt_shape,
                                    size_t model_ndim,
                                    const int64_t *model_shape) {
  mismatch_list *ml;
  str_list *keys;
  if (list == TSD_LIST_MISMATCHED) {
    ml = &r->mismatched;
    keys = &r->mismatched_keys;
  } else if (list == TSD_LIST_POPPED) {
    ml = &r->popped;
    keys = &r->popped_keys;
  } else {
    return tsd__err(TSD_ERR_INVALID_ARG, "bad mismatch list %d", (int)list);
  }
  tsd_mismatch mm;
  mm.key = arena_strndup(&r->arena, key, strlen(key));
  int64_t *cs = tsd__arena_alloc(&r->arena, (ckpt_ndim + 1) * sizeof *cs);
  int64_t *ms = tsd__arena_alloc(&r->arena, (model_ndim + 1) * sizeof *ms);
  if (!mm.key || !cs || !ms) return oom();
  if (ckpt_ndim) memcpy(cs, ckpt_shape, ckpt_ndim * sizeof *cs);
  if (model_ndim) memcpy(ms, model_shape, model_ndim * sizeof *ms);
  mm.checkpoint_ndim = ckpt_ndim;
  mm.checkpoint_shape = cs;
  mm.model_ndim = model_ndim;
  mm.model_shape = ms;
  if (list == TSD_LIST_MISMATCHED) {
    /* Module._load_from_state_dict's text, shapes printed as torch.Size. */
    tsd__buf b;
    tsd__buf_init(&b, r->al);
    tsd__buf_printf(&b, "size mismatch for %s: copying a param with shape ",
                    key);
    tsd__shape_repr(&b, ckpt_ndim, ckpt_shape);
    tsd__buf_puts(&b, " from checkpoint, the shape in current model is ");
    tsd__shape_repr(&b, model_ndim, model_shape);
    tsd__buf_puts(&b, ".");
    if (b.oom) {
      tsd__buf_free(&b);
      return oom();
    }
    tsd_status st = tsd__report_add(r, TSD_LIST_ERRORS, b.data, b.len);
    tsd__buf_free(&b);
    if (st) return st;
  }
  if (!tsd__mem_grow(r->al, (void **)&ml->items, &ml->cap, ml->len + 1,
                     sizeof *ml->items))
    return oom();
  tsd_status st = list_push(r->al, keys, mm.key);
  if (st) return st;
  ml->items[ml->len++] = mm;
  return TSD_OK;
}

/* ---- Python's str repr -------------------------------------------------- */

/* repr(str) as CPython writes it (Objects/unicodeobject.c unicode_repr):
 * the quote it picks, the quote escaped, the rest as tsd_escape's TEXT. */
static void py_repr(tsd__buf *b, const char *str) {
  size_t n = strlen(str);
  bool has_sq = memchr(str, '\'', n) != NULL,
       has_dq = memchr(str, '"', n) != NULL;
  char q = (has_sq && !has_dq) ? '"' : '\'';
  tsd__buf_append(b, &q, 1);
  for (const char *run = str, *end = str + n;;) {
    const char *p = memchr(run, q, (size_t)(end - run));
    tsd__buf_escape(b, run, (size_t)((p ? p : end) - run), TSD_ESCAPE_TEXT);
    if (!p) break;
    char e[2] = {'\\', q};
    tsd__buf_append(b, e, 2);
    run = p + 1;
  }
  tsd__buf_append(b, &q, 1);
}

static void py_list_repr(tsd__buf *b, const str_list *l) {
  tsd__buf_puts(b, "[");
  for (size_t i = 0; i < l->len; i++) {
    if (i) tsd__buf_puts(b, ", ");
    py_repr(b, l->items[i]);
  }
  tsd__buf_puts(b, "]");
}

/* ---- JSON --------------------------------------------------------------- */

static void json_str(tsd__buf *b, const char *str) {
  tsd__buf_puts(b, "\"");
  tsd__buf_escape(b, str, strlen(str), TSD_ESCAPE_JSON);
  tsd__buf_puts(b, "\"");
}

static void json_str_list(tsd__buf *b, const str_list *l) {
  tsd__buf_puts(b, "[");
  for (size_t i = 0; i < l->len; i++) {
    if (i) tsd__buf_puts(b, ", ");
    json_str(b, l->items[i]);
  }
  tsd__buf_puts(b, "]");
}

static void json_shape(tsd__buf *b, size_t ndim, const int64_t *shape) {
  tsd__buf_puts(b, "[");
  for (size_t i = 0; i < ndim; i++)
    tsd__buf_printf(b, "%s%lld", i ? ", " : "", (long long)shape[i]);
  tsd__buf_puts(b, "]");
}

static void json_mismatches(tsd__buf *b, const mismatch_list *l) {
  tsd__buf_puts(b, "[");
  for (size_t i = 0; i < l->len; i++) {
    const tsd_mismatch *m = &l->items[i];
    tsd__buf_puts(b, i ? ", {\"key\": " : "{\"key\": ");
    json_str(b, m->key);
    tsd__buf_puts(b, ", \"checkpoint_shape\": ");
    json_shape(b, m->checkpoint_ndim, m->checkpoint_shape);
    tsd__buf_puts(b, ", \"model_shape\": ");
    json_shape(b, m->model_ndim, m->model_shape);
    tsd__buf_puts(b, "}");
  }
  tsd__buf_puts(b, "]");
}

/* ---- the ending of load_state_dict -------------------------------------- */

static void quoted_join(tsd__buf *b, const str_list *l) {
  for (size_t i = 0; i < l->len; i++) {
    if (i) tsd__buf_puts(b, ", ");
    tsd__buf_printf(b, "\"%s\"", l->items[i]);
  }
}

static tsd_status insert_front(tsd_report *r, tsd__buf *b) {
  if (b->oom) return oom();
  const char *s = arena_strndup(&r->arena, b->data, b->len);
  if (!s) return oom();
  str_list *l = &r->errors;
  if (!tsd__mem_grow(r->al, (void **)&l->items, &l->cap, l->len + 1,
                     sizeof *l->items))
    return oom();
  memmove(l->items + 1, l->items, l->len * sizeof *l->items);
  l->items[0] = s;
  l->len++;
  return TSD_OK;
}

tsd_status tsd__report_finish(tsd_report *r, bool strict) {
  tsd__buf b;
  tsd_status st = TSD_OK;
  /* load_state_dict: unexpected first at index 0, then missing before it. */
  if (strict && r->unexpected.len) {
    tsd__buf_init(&b, r->al);
    tsd__buf_puts(&b, "Unexpected key(s) in state_dict: ");
    quoted_join(&b, &r->unexpected);
    tsd__buf_puts(&b, ". ");
    st = insert_front(r, &b);
    tsd__buf_free(&b);
    if (st) return st;
  }
  if (strict && r->missing.len) {
    tsd__buf_init(&b, r->al);
    tsd__buf_puts(&b, "Missing key(s) in state_dict: ");
    quoted_join(&b, &r->missing);
    tsd__buf_puts(&b, ". ");
    st = insert_front(r, &b);
    tsd__buf_free(&b);
    if (st) return st;
  }
  r->ok = r->errors.len == 0;

  tsd__buf_init(&b, r->al);
  if (!r->ok) {
    tsd__buf_printf(&b, "Error(s) in loading state_dict for %s:\n\t",
                    r->class_name);
    for (size_t i = 0; i < r->errors.len; i++) {
      if (i) tsd__buf_puts(&b, "\n\t");
      tsd__buf_puts(&b, r->errors.items[i]);
    }
  } else if (!r->missing.len && !r->unexpected.len) {
    tsd__buf_puts(&b, "<All keys matched successfully>");
  } else {
    tsd__buf_puts(&b, "_IncompatibleKeys(missing_keys=");
    py_list_repr(&b, &r->missing);
    tsd__buf_puts(&b, ", unexpected_keys=");
    py_list_repr(&b, &r->unexpected);
    tsd__buf_puts(&b, ")");
  }
  tsd__mem_free(r->al, r->message);
  r->message = tsd__buf_take(&b);
  if (!r->message) return oom();

  tsd__buf_init(&b, r->al);
  tsd__buf_printf(&b,
                  "{\"ok\": %s, \"class_name\": ", r->ok ? "true" : "false");
  json_str(&b, r->class_name);
  tsd__buf_puts(&b, ", \"missing_keys\": ");
  json_str_list(&b, &r->missing);
  tsd__buf_puts(&b, ", \"unexpected_keys\": ");
  json_str_list(&b, &r->unexpected);
  tsd__buf_puts(&b, ", \"size_mismatches\": ");
  json_mismatches(&b, &r->mismatched);
  tsd__buf_puts(&b, ", \"popped_keys\": ");
  json_str_list(&b, &r->popped_keys);
  tsd__buf_puts(&b, ", \"popped\": ");
  json_mismatches(&b, &r->popped);
  tsd__buf_puts(&b, ", \"error_msgs\": ");
  json_str_list(&b, &r->errors);
  tsd__buf_puts(&b, ", \"message\": ");
  json_str(&b, r->message);
  tsd__buf_puts(&b, "}");
  tsd__mem_free(r->al, r->json);
  r->json = tsd__buf_take(&b);
  if (!r->json) return oom();
  return TSD_OK;
}

/* ---- public accessors --------------------------------------------------- */

TSD_API void tsd_report_free(tsd_report *r) {
  if (!r) return;
  str_list *lists[] = {&r->missing,         &r->unexpected,  &r->errors,
                       &r->mismatched_keys, &r->popped_keys, &r->matched,
                       &r->bound,           &r->copied,      &r->copy_reasons,
                       &r->device_failed};
  for (size_t i = 0; i < sizeof lists / sizeof *lists; i++)
    tsd__mem_free(r->al, lists[i]->items);
  tsd__mem_free(r->al, r->mismatched.items);
  tsd__mem_free(r->al, r->popped.items);
  tsd__mem_free(r->al, r->message);
  tsd__mem_free(r->al, r->json);
  tsd__arena_free(&r->arena);
  /* r->al points into r: free r through a copy */
  tsd_allocator a = r->alloc;
  tsd__mem_free(r->al ? &a : NULL, r);
}

TSD_API int tsd_report_ok(const tsd_report *r) {
  return r && r->ok;
}

TSD_API const char *tsd_report_class_name(const tsd_report *r) {
  return r ? r->class_name : "";
}

TSD_API size_t tsd_report_count(const tsd_report *r, tsd_list list) {
  if (!r) return 0;
  str_list *l = str_list_of(TSD__UNCONST(tsd_report *, r), list);
  return l ? l->len : 0;
}

TSD_API const char *tsd_report_item(const tsd_report *r, tsd_list list,
                                    size_t index) {
  if (!r) return NULL;
  str_list *l = str_list_of(TSD__UNCONST(tsd_report *, r), list);
  return l && index < l->len ? l->items[index] : NULL;
}

TSD_API tsd_status tsd_report_mismatch(tsd_mismatch *out, const tsd_report *r,
                                       tsd_list list, size_t index) {
  if (!r || !out)
    return tsd__err(TSD_ERR_INVALID_ARG, "tsd_report_mismatch: NULL argument");
  const mismatch_list *ml;
  if (list == TSD_LIST_MISMATCHED)
    ml = &r->mismatched;
  else if (list == TSD_LIST_POPPED)
    ml = &r->popped;
  else
    return tsd__err(TSD_ERR_INVALID_ARG,
                    "tsd_report_mismatch: list %d has no shapes (use "
                    "TSD_LIST_MISMATCHED or TSD_LIST_POPPED)",
                    (int)list);
  if (index >= ml->len)
    return tsd__err(TSD_ERR_NOT_FOUND,
                    "tsd_report_mismatch: index %zu out of range (%zu)", index,
                    ml->len);
  *out = ml->items[index];
  return TSD_OK;
}

TSD_API const char *tsd_report_message(const tsd_report *r) {
  return r && r->message ? r->message : "";
}

TSD_API const char *tsd_report_json(const tsd_report *r) {
  return r && r->json ? r->json : "";
}
