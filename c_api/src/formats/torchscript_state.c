/* torchscript_state.c — a TorchScript archive's state, read without running
 * any of it (pure C: every build, no LibTorch).
 *
 * torch.jit.save writes the module tree as data.pkl: each module is an
 * object of its TorchScript class (GLOBAL `__torch__.<path> <Class>`,
 * NEWOBJ, then BUILD with a dict of its attributes in slot order), tensors
 * as in torch.save (`_rebuild_tensor_v2` on `data/<key>` records). Which
 * attributes are parameters and buffers is not in data.pkl: each class's
 * TorchScript source, code/__torch__/<path>.py, declares them:
 *     class Linear(Module):
 *       __parameters__ = ["weight", "bias", ]
 *       __buffers__ = []
 * tsd reads data.pkl with its restricted unpickler, where every `__torch__`
 * object is an inert placeholder (nothing constructed, no __setstate__
 * called), and only those two declarations (and each class's `(Module)`
 * base) from the code files, as text: nothing of the archive is run,
 * imported or compiled. The result is what `torch.jit.load(p).state_dict()`
 * holds — each module's parameters (None skipped), then its buffers, then
 * each child, in slot order; `_metadata` version 1 for every module, as the
 * shim's tsd_checkpoint_open_torchscript gives — and, for
 * tsd_model_open_torchscript_state, the module tree with class names and
 * roles.
 *
 * What cannot be read without running code is refused, never guessed: a
 * module class with its own __getstate__ (its BUILD state is whatever that
 * returned, not its attributes), a module class the code files do not
 * declare. Objects that are not modules (TorchScript classes, packed
 * params) stay placeholders: their __setstate__ is never called.
 */
#include <string.h>

#include "formats.h"

#define TS_PREFIX "__torch__."

typedef struct ts_class {
  const char *qualname; /* "__torch__.a.b.C" (the placeholder's) */
  const char *file;     /* "code/__torch__/a/b.py" (arena) */
  const char *name;     /* "C" (into qualname) */
  bool found, is_module;
  bool extra_state; /* the class defines set_extra_state (branch model) */
  const char **params, **buffers; /* arena */
  size_t n_params, n_buffers;
} ts_class;

typedef struct ts_reader {
  const tsd__source *src;
  tsd__arena *arena;
  const tsd__limits *limits;
  ts_class *classes;
  size_t n_classes, cap_classes;
  tsd__strmap class_index; /* qualname -> classes[] */
  uint64_t budget;         /* objects visited, bounded by max_objects */
  tsd__ts_module *modules;
  size_t n_modules, cap_modules;
  tsd__ts_entry *entries;
  size_t n_entries, cap_entries;
} ts_reader;

static const char *class_key(const void *ctx, size_t i, size_t *len) {
  const ts_reader *r = ctx;
  *len = strlen(r->classes[i].qualname);
  return r->classes[i].qualname;
}

/* The TorchScript class of a placeholder, or NULL if it is none. */
static const char *ts_class_of(const tsd__value *v) {
  const char *q = v ? tsd__object_class(v) : NULL;
  return q && !strncmp(q, TS_PREFIX, sizeof TS_PREFIX - 1) ? q : NULL;
}

static char *arena_strndup(tsd__arena *a, const char *s, size_t n) {
  char *p = tsd__arena_alloc(a, n + 1);
  if (p) {
    memcpy(p, s, n);
    p[n] = '\0';
  }
  return p;
}

static tsd_status oom(const ts_reader *r) {
  return tsd__err(TSD_ERR_NOMEM, "%s: out of memory", r->src->name);
}

static int cmp_name(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Registers the class of placeholder `qualname`; *out its index. */
static tsd_status add_class(ts_reader *r, const char *qualname, size_t *out) {
  size_t n = strlen(qualname);
  if (tsd__strmap_find(&r->class_index, qualname, n, class_key, r, out))
    return TSD_OK;
  const char *dot = strrchr(qualname, '.'); /* after "__torch__" at least */
  size_t mod_len = (size_t)(dot - qualname);
  char *file = tsd__arena_alloc(r->arena, mod_len + 9);
  if (!file) return oom(r);
  memcpy(file, "code/", 5);
  for (size_t i = 0; i < mod_len; i++)
    file[5 + i] = qualname[i] == '.' ? '/' : qualname[i];
  memcpy(file + 5 + mod_len, ".py", 4);
  if (!tsd__mem_grow(r->arena->al, (void **)&r->classes, &r->cap_classes,
                     r->n_classes + 1, sizeof *r->classes))
    return oom(r);
  ts_class *c = &r->classes[r->n_classes];
  memset(c, 0, sizeof *c);
  c->qualname = qualname;
  c->file = file;
  c->name = dot + 1;
  bool no_mem = false;
  tsd__strmap_insert(&r->class_index, qualname, n, r->n_classes, class_key, r,
                     NULL, &no_mem);
  if (no_mem) return oom(r);
  *out = r->n_classes++;
  return TSD_OK;
}

/* Counts one more object visited: a module shared by two parents is
 * visited (and named) twice, as state_dict does, so sharing could blow a
 * small pickle up exponentially without this bound. */
static tsd_status spend(ts_reader *r) {
  if (++r->budget <= r->limits->max_objects) return TSD_OK;
  return tsd__err(TSD_ERR_LIMIT,
                  "%s: the TorchScript module tree has more than %llu module "
                  "visits (limits.max_objects; shared submodules count once "
                  "per name)",
                  r->src->name, (unsigned long long)r->limits->max_objects);
}

/* ---- the code files ------------------------------------------------------ */

/* Parses `["a", "b", ]` at *p (the end of the line at `end`) into names. */
static tsd_status parse_names(ts_reader *r, const ts_class *c, const char *what,
                              const char *p, const char *end, const char ***out,
                              size_t *n_out) {
  size_t n = 0, cap = 0;
  const char **names = NULL;
  tsd_status st = TSD_OK;
  const char *q = p;
  while (q < end && *q == ' ')
    q++;
  if (q == end || *q++ != '[') goto bad;
  for (;;) {
    while (q < end && (*q == ' ' || *q == ','))
      q++;
    if (q < end && *q == ']') break;
    if (q == end || (*q != '"' && *q != '\'')) goto bad;
    char quote = *q++;
    const char *s = q;
    size_t len = 0;
    /* Attribute names: TorchScript's printer escapes only the quote and the
     * backslash in them. */
    char *name = tsd__arena_alloc(r->arena, (size_t)(end - q) + 1);
    if (!name) {
      st = oom(r);
      goto done;
    }
    while (s < end && *s != quote) {
      if (*s == '\\') {
        if (s + 1 == end || (s[1] != '\\' && s[1] != '"' && s[1] != '\''))
          goto bad;
        s++;
      }
      name[len++] = *s++;
    }
    if (s == end) goto bad;
    name[len] = '\0';
    q = s + 1;
    if (!tsd__mem_grow(r->arena->al, (void **)&names, &cap, n + 1,
                       sizeof *names)) {
      st = oom(r);
      goto done;
    }
    names[n++] = name;
  }
  *out = tsd__arena_alloc(r->arena, (n ? n : 1) * sizeof **out);
  if (!*out) {
    st = oom(r);
    goto done;
  }
  if (n) memcpy(*out, names, n * sizeof *names);
  tsd__sort(*out, n, sizeof **out, cmp_name);
  *n_out = n;
  goto done;
bad:
  st = tsd__err(TSD_ERR_FORMAT,
                "%s: %s: class %s: cannot read its %s declaration (a list of "
                "quoted names)",
                r->src->name, c->file, c->name, what);
done:
  tsd__mem_free(r->arena->al, names);
  return st;
}

/* Finds `class <c->name>(` at the start of a line of the file's text and
 * reads its base and its __parameters__ / __buffers__ lines (the class
 * body: the indented lines after it). */
static tsd_status parse_class(ts_reader *r, ts_class *c, const char *text,
                              size_t len) {
  const char *end = text + len, *line = text;
  size_t nl = strlen(c->name);
  while (line < end) {
    const char *eol = memchr(line, '\n', (size_t)(end - line));
    if (!eol) eol = end;
    if ((size_t)(eol - line) > 6 + nl && !memcmp(line, "class ", 6) &&
        !memcmp(line + 6, c->name, nl) &&
        (line[6 + nl] == '(' || line[6 + nl] == ':'))
      break;
    line = eol + (eol < end);
  }
  if (line >= end) return TSD_OK; /* not found: the caller says so */
  const char *eol = memchr(line, '\n', (size_t)(end - line));
  if (!eol) eol = end;
  c->found = true;
  static const char base[] = "(Module):";
  c->is_module = (size_t)(eol - line) >= 6 + nl + sizeof base - 1 &&
                 !memcmp(line + 6 + nl, base, sizeof base - 1);
  for (line = eol + (eol < end); line < end && *line == ' ';) {
    eol = memchr(line, '\n', (size_t)(end - line));
    if (!eol) eol = end;
    const char *p = line;
    while (p < eol && *p == ' ')
      p++;
    static const char kp[] = "__parameters__ =", kb[] = "__buffers__ =";
    static const char ke[] = "def set_extra_state(";
    /* an exported set_extra_state: Module._load_from_state_dict hands it
     * prefix + "_extra_state" (a method's header line, not run) */
    if ((size_t)(eol - p) >= sizeof ke - 1 && !memcmp(p, ke, sizeof ke - 1))
      c->extra_state = true;
    tsd_status st = TSD_OK;
    if ((size_t)(eol - p) >= sizeof kp - 1 && !memcmp(p, kp, sizeof kp - 1))
      st = parse_names(r, c, "__parameters__", p + sizeof kp - 1, eol,
                       &c->params, &c->n_params);
    else if ((size_t)(eol - p) >= sizeof kb - 1 &&
             !memcmp(p, kb, sizeof kb - 1))
      st = parse_names(r, c, "__buffers__", p + sizeof kb - 1, eol, &c->buffers,
                       &c->n_buffers);
    if (st != TSD_OK) return st;
    line = eol + (eol < end);
  }
  return TSD_OK;
}

/* Reads every registered class's code file once. */
static tsd_status read_classes(ts_reader *r) {
  const char **files = tsd__arena_alloc(r->arena, r->n_classes * sizeof *files);
  char **texts = tsd__arena_alloc(r->arena, r->n_classes * sizeof *texts);
  size_t *lens = tsd__arena_alloc(r->arena, r->n_classes * sizeof *lens);
  if (!files || !texts || !lens) return oom(r);
  size_t n_files = 0;
  for (size_t i = 0; i < r->n_classes; i++) {
    size_t j = 0;
    while (j < n_files && strcmp(files[j], r->classes[i].file))
      j++;
    if (j == n_files) files[n_files++] = r->classes[i].file;
  }
  tsd_status st =
      tsd__zip_read_records(r->src, r->arena, r->limits, files, n_files,
                            r->limits->max_pickle_bytes, texts, lens);
  for (size_t i = 0; i < r->n_classes && st == TSD_OK; i++) {
    ts_class *c = &r->classes[i];
    size_t j = 0;
    while (strcmp(files[j], c->file))
      j++;
    if (texts[j]) st = parse_class(r, c, texts[j], lens[j]);
  }
  return st;
}

/* ---- the module tree ----------------------------------------------------- */

/* `names` is sorted (parse_names): a lookup costs log n, so that a class of
 * many attributes costs no more than its size. */
static bool in_list(const char *const *names, size_t n, const char *s) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(names[mid], s);
    if (c == 0) return true;
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return false;
}

static const tsd__value *module_state(ts_reader *r, const tsd__value *obj,
                                      const ts_class *c, const char *prefix,
                                      tsd_status *st) {
  const tsd__value *s = obj->u.obj.state;
  if (s && s->kind == TSD__V_DICT) return s;
  *st = tsd__err(TSD_ERR_UNSUPPORTED,
                 "%s: module '%s' (class %s) keeps its state through its own "
                 "__getstate__/__setstate__: its parameters cannot be read "
                 "without running its code (load it with LibTorch only if "
                 "you trust it)",
                 r->src->name, prefix[0] ? prefix : "(root)", c->qualname);
  return NULL;
}

static tsd_status class_of(ts_reader *r, const tsd__value *obj,
                           const char *prefix, ts_class **out) {
  size_t i;
  tsd_status st = add_class(r, ts_class_of(obj), &i);
  if (st != TSD_OK) return st;
  *out = &r->classes[i];
  if (!(*out)->found)
    return tsd__err(TSD_ERR_FORMAT,
                    "%s: module '%s': class %s is not defined in the "
                    "archive's %s",
                    r->src->name, prefix[0] ? prefix : "(root)",
                    (*out)->qualname, (*out)->file);
  return TSD_OK;
}

/* Pass 1: every TorchScript class reachable through attributes. */
static tsd_status collect_classes(ts_reader *r, const tsd__value *root) {
  const tsd__value **todo = NULL;
  size_t n = 0, cap = 0;
  tsd_status st = TSD_OK;
  if (!tsd__mem_grow(r->arena->al, (void **)&todo, &cap, 1, sizeof *todo))
    return oom(r);
  todo[n++] = root;
  while (n && st == TSD_OK) {
    const tsd__value *v = todo[--n];
    size_t idx;
    if ((st = spend(r)) || (st = add_class(r, ts_class_of(v), &idx))) break;
    const tsd__value *s = v->u.obj.state;
    if (!s || s->kind != TSD__V_DICT) continue;
    for (size_t i = 0; i < s->u.dict.len; i++) {
      const tsd__value *a = s->u.dict.vals[i];
      if (!ts_class_of(a)) continue;
      if (!tsd__mem_grow(r->arena->al, (void **)&todo, &cap, n + 1,
                         sizeof *todo)) {
        st = oom(r);
        break;
      }
      todo[n++] = a;
    }
  }
  tsd__mem_free(r->arena->al, todo);
  return st;
}

static tsd_status add_entry(ts_reader *r, const char *prefix, const char *name,
                            tsd_tensor_role role, tsd__value *tensor) {
  if (!tsd__mem_grow(r->arena->al, (void **)&r->entries, &r->cap_entries,
                     r->n_entries + 1, sizeof *r->entries))
    return oom(r);
  size_t pl = strlen(prefix), nl = strlen(name);
  char *full = tsd__arena_alloc(r->arena, pl + nl + 2);
  if (!full) return oom(r);
  memcpy(full, prefix, pl);
  if (pl) full[pl++] = '.';
  memcpy(full + pl, name, nl + 1);
  tsd__ts_entry *e = &r->entries[r->n_entries++];
  e->name = full;
  e->role = role;
  e->tensor = tensor;
  if (tensor && role == TSD_PARAMETER) tensor->u.tensor->is_parameter = true;
  return TSD_OK;
}

typedef struct ts_frame {
  const tsd__value *obj;
  const char *prefix;
} ts_frame;

/* Pass 2: pre-order, as Module.state_dict: a module's parameters, its
 * buffers, then each child, in attribute (slot) order. */
static tsd_status walk(ts_reader *r, const tsd__value *root) {
  ts_frame *stack = NULL;
  size_t n = 0, cap = 0;
  tsd_status st = TSD_OK;
  if (!tsd__mem_grow(r->arena->al, (void **)&stack, &cap, 1, sizeof *stack))
    return oom(r);
  stack[n++] = (ts_frame){root, ""};
  r->budget = 0;
  while (n && st == TSD_OK) {
    ts_frame f = stack[--n];
    ts_class *c;
    if ((st = spend(r)) || (st = class_of(r, f.obj, f.prefix, &c))) break;
    const tsd__value *s = module_state(r, f.obj, c, f.prefix, &st);
    if (!s) break;
    if (!tsd__mem_grow(r->arena->al, (void **)&r->modules, &r->cap_modules,
                       r->n_modules + 1, sizeof *r->modules)) {
      st = oom(r);
      break;
    }
    /* The class name PyTorch prints, `type(m).__name__`: the last atom of
     * the qualified name, which is past TorchScript's `___torch_mangle_N`
     * namespace (as the shim's class_name_of). */
    r->modules[r->n_modules++] =
        (tsd__ts_module){f.prefix, c->name, c->extra_state};
    for (int pass = 0; pass < 2 && st == TSD_OK; pass++) {
      for (size_t i = 0; i < s->u.dict.len && st == TSD_OK; i++) {
        const tsd__value *k = s->u.dict.keys[i];
        tsd__value *v = s->u.dict.vals[i];
        if (k->kind != TSD__V_STR) continue;
        bool want = pass == 0 ? in_list(c->params, c->n_params, k->u.s.p)
                              : in_list(c->buffers, c->n_buffers, k->u.s.p);
        if (!want) continue;
        if (v->kind == TSD__V_TENSOR)
          st = add_entry(r, f.prefix, k->u.s.p,
                         pass == 0 ? TSD_PARAMETER : TSD_BUFFER, v);
        else if (v->kind == TSD__V_NONE && pass == 0)
          st = add_entry(r, f.prefix, k->u.s.p, TSD_PARAMETER_NONE, NULL);
        else if (pass == 0)
          st = tsd__err(TSD_ERR_UNSUPPORTED,
                        "%s: parameter '%s%s%s' is %s, not a tensor",
                        r->src->name, f.prefix, f.prefix[0] ? "." : "",
                        k->u.s.p, tsd__type_repr(v));
        /* a None buffer is not in state_dict: as if it were absent */
      }
    }
    /* children, pushed in reverse so that they pop in order */
    size_t first = n;
    for (size_t i = 0; i < s->u.dict.len && st == TSD_OK; i++) {
      const tsd__value *k = s->u.dict.keys[i], *v = s->u.dict.vals[i];
      size_t idx;
      if (k->kind != TSD__V_STR || !ts_class_of(v)) continue;
      if ((st = add_class(r, ts_class_of(v), &idx))) break;
      if (!r->classes[idx].is_module) continue;
      size_t pl = strlen(f.prefix), kl = k->u.s.len;
      char *prefix = tsd__arena_alloc(r->arena, pl + kl + 2);
      if (!prefix || !tsd__mem_grow(r->arena->al, (void **)&stack, &cap, n + 1,
                                    sizeof *stack)) {
        st = oom(r);
        break;
      }
      memcpy(prefix, f.prefix, pl);
      if (pl) prefix[pl++] = '.';
      memcpy(prefix + pl, k->u.s.p, kl + 1);
      stack[n++] = (ts_frame){v, prefix};
    }
    for (size_t a = first, b = n; a + 1 < b; a++, b--) {
      ts_frame t = stack[a];
      stack[a] = stack[b - 1];
      stack[b - 1] = t;
    }
  }
  tsd__mem_free(r->arena->al, stack);
  return st;
}

/* ---- the state dict ------------------------------------------------------ */

static tsd__value *new_value(tsd__arena *a, tsd__vkind kind) {
  tsd__value *v = tsd__arena_alloc(a, sizeof *v); /* zeroed */
  if (v) v->kind = kind;
  return v;
}

static tsd__value *new_dict(tsd__arena *a, size_t n, uint32_t depth) {
  tsd__value *d = new_value(a, TSD__V_DICT);
  if (!d) return NULL;
  d->flags = TSD__VF_ORDERED;
  d->depth = depth;
  d->u.dict.keys = tsd__arena_alloc(a, (n ? n : 1) * sizeof *d->u.dict.keys);
  d->u.dict.vals = tsd__arena_alloc(a, (n ? n : 1) * sizeof *d->u.dict.vals);
  d->u.dict.cap = n;
  return d->u.dict.keys && d->u.dict.vals ? d : NULL;
}

static tsd__value *new_str(tsd__arena *a, const char *s) {
  tsd__value *v = new_value(a, TSD__V_STR);
  if (!v) return NULL;
  v->u.s.len = strlen(s);
  v->u.s.p = arena_strndup(a, s, v->u.s.len);
  return v->u.s.p ? v : NULL;
}

static bool set_item(tsd__value *d, tsd__value *k, tsd__value *v) {
  if (!k || !v) return false;
  d->u.dict.keys[d->u.dict.len] = k;
  d->u.dict.vals[d->u.dict.len++] = v;
  return true;
}

/* `torch.jit.load(p).state_dict()`: an OrderedDict of the tensors with
 * `_metadata` {prefix: {'version': 1}} in module pre-order. */
static tsd_status state_dict(ts_reader *r, tsd__value **out) {
  tsd__value *root = new_dict(r->arena, r->n_entries, 1);
  tsd__value *meta = new_dict(r->arena, r->n_modules, 2);
  if (!root || !meta) return oom(r);
  for (size_t i = 0; i < r->n_entries; i++) {
    const tsd__ts_entry *e = &r->entries[i];
    if (e->tensor && !set_item(root, new_str(r->arena, e->name), e->tensor))
      return oom(r);
  }
  for (size_t i = 0; i < r->n_modules; i++) {
    tsd__value *entry = new_dict(r->arena, 1, 1);
    tsd__value *one = new_value(r->arena, TSD__V_INT);
    if (!entry || !one) return oom(r);
    one->u.i = 1;
    if (!set_item(entry, new_str(r->arena, "version"), one) ||
        !set_item(meta, new_str(r->arena, r->modules[i].prefix), entry))
      return oom(r);
  }
  root->u.dict.metadata = meta;
  *out = root;
  return TSD_OK;
}

static tsd_status read_state(ts_reader *r, tsd__parsed *p) {
  tsd_status st = collect_classes(r, p->root);
  if (st == TSD_OK) st = read_classes(r);
  if (st == TSD_OK) st = walk(r, p->root);
  tsd__value *root = NULL;
  if (st == TSD_OK) st = state_dict(r, &root);
  if (st != TSD_OK) return st;
  tsd__ts_state *ts = tsd__arena_alloc(r->arena, sizeof *ts);
  size_t ne = r->n_entries ? r->n_entries : 1;
  size_t nm = r->n_modules ? r->n_modules : 1;
  tsd__ts_entry *entries = tsd__arena_alloc(r->arena, ne * sizeof *entries);
  tsd__ts_module *modules = tsd__arena_alloc(r->arena, nm * sizeof *modules);
  if (!ts || !entries || !modules) return oom(r);
  if (r->n_entries) memcpy(entries, r->entries, r->n_entries * sizeof *entries);
  if (r->n_modules) memcpy(modules, r->modules, r->n_modules * sizeof *modules);
  ts->entries = entries;
  ts->n_entries = r->n_entries;
  ts->modules = modules;
  ts->n_modules = r->n_modules;
  ts->root_class = r->n_modules ? modules[0].class_name : "";
  p->root = root;
  p->torchscript = ts;
  return TSD_OK;
}

tsd_status tsd__torchscript_state(const tsd__source *src, tsd__arena *arena,
                                  const tsd__limits *limits, tsd__parsed *p) {
  if (!ts_class_of(p->root)) return TSD_OK; /* a torch.save checkpoint */
  ts_reader r;
  memset(&r, 0, sizeof r);
  r.src = src;
  r.arena = arena;
  r.limits = limits;
  tsd__strmap_init(&r.class_index, arena->al);
  tsd_status st = read_state(&r, p);
  tsd__strmap_free(&r.class_index);
  tsd__mem_free(arena->al, r.classes);
  tsd__mem_free(arena->al, r.modules);
  tsd__mem_free(arena->al, r.entries);
  return st;
}

/* ---- the shim's pre-check ------------------------------------------------ */

/* Identical in zip.c and legacy.c. */
struct tsd__persistent_ctx {
  tsd__arena *arena;
  const tsd__source *src;
  void *fmt;
};

/* A storage of either pickle: ('storage', type, key, location, numel),
 * with the declared size; the shim then checks every storage against its
 * record. A storage type tsd does not know (complex, quantized: LibTorch
 * may) gets 16 bytes per element, the widest there is, so that tsd's own
 * tensor checks never refuse what LibTorch's prescan checks exactly. */
static tsd_status any_storage(tsd__persistent_ctx *ctx, tsd__value *pid,
                              tsd__value **out) {
  tsd_dtype dtype = TSD_UINT8;
  uint64_t numel = 0, nbytes, scale = 1;
  if (pid->kind != TSD__V_TUPLE || pid->u.seq.len != 5 ||
      pid->u.seq.items[0]->kind != TSD__V_STR ||
      strcmp(pid->u.seq.items[0]->u.s.p, "storage") ||
      pid->u.seq.items[2]->kind != TSD__V_STR ||
      pid->u.seq.items[4]->kind != TSD__V_INT || pid->u.seq.items[4]->u.i < 0)
    return tsd__err(TSD_ERR_FORMAT,
                    "persistent id is not ('storage', type, key, location, "
                    "numel)");
  if (!tsd__storage_type_dtype(pid->u.seq.items[1], &dtype)) scale = 16;
  if (!tsd__mul_u64((uint64_t)pid->u.seq.items[4]->u.i, scale, &numel) ||
      !tsd__mul_u64(numel, tsd_dtype_size(dtype), &nbytes))
    return tsd__err(TSD_ERR_FORMAT, "storage '%s': its size overflows",
                    pid->u.seq.items[2]->u.s.p);
  tsd__value *v = tsd__arena_alloc(ctx->arena, sizeof *v);
  tsd__storage *s = tsd__arena_alloc(ctx->arena, sizeof *s);
  if (!v || !s) return tsd__err(TSD_ERR_NOMEM, "out of memory");
  s->dtype = dtype;
  s->numel = numel;
  s->nbytes = nbytes;
  s->key = pid->u.seq.items[2]->u.s.p;
  s->swap = tsd__swap_unit(dtype, false); /* torch.jit.save: little-endian */
  v->kind = TSD__V_STORAGE;
  v->u.storage = s;
  *out = v;
  return TSD_OK;
}

tsd_status tsd__torchscript_check(const char *path) {
  tsd__source src;
  tsd_status st = tsd__source_open_file(&src, path, NULL);
  if (st != TSD_OK) return st;
  tsd__arena arena;
  tsd__arena_init(&arena, 0, NULL);
  tsd__limits lim;
  tsd__limits_resolve(&lim, NULL);
  static const char *const names[2] = {"constants.pkl", "data.pkl"};
  char *text[2] = {NULL, NULL};
  size_t len[2] = {0, 0};
  st = tsd__zip_read_records(&src, &arena, &lim, names, 2, lim.max_pickle_bytes,
                             text, len);
  /* one parse budget for both pickles (tsd__parse_budget) */
  if (st == TSD_OK) arena.limit = tsd__parse_budget(&arena, len[0] + len[1]);
  for (int i = 0; i < 2 && st == TSD_OK; i++) {
    if (!text[i]) continue; /* the shim says which record is missing */
    tsd__persistent_ctx ctx = {&arena, &src, NULL};
    size_t used;
    tsd__value *root;
    st = tsd__unpickle((const uint8_t *)text[i], len[i], &used, &arena, &lim,
                       any_storage, &ctx, names[i], &root);
  }
  if (st != TSD_OK) { /* every message names the file, once */
    const char *msg = tsd_last_error();
    size_t n = strlen(src.name);
    if (strncmp(msg, src.name, n) != 0 || msg[n] != ':')
      tsd__err_prefix("%s", src.name);
  }
  tsd__arena_free(&arena);
  tsd__source_close(&src);
  return st;
}
