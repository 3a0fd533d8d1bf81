/**
 * \file
 * \brief PyTorch's load_state_dict for C.
 *
 * tsd reads checkpoints written by Python `torch.save` (zip and legacy
 * formats) with its own restricted unpickler (no Python, no code execution),
 * and loads them into a model with exactly the semantics of PyTorch 1.13's
 * `nn.Module.load_state_dict`: the same keys matched, the same errors with the
 * same text, the same `_IncompatibleKeys` result. An auto-pop mode drops
 * checkpoint keys whose shape differs from the model's (the "new classifier
 * head" case) and reports them.
 *
 * Conventions (they hold for every function below):
 *
 *  - Errors. Every fallible function returns a tsd_status: TSD_OK (0) or a
 *    negative TSD_ERR_* code. The readable message that goes with the last
 *    failure *of the calling thread* is returned by tsd_last_error(); it names
 *    the file, key or byte offset at fault. Messages are per thread: two
 *    threads never see each other's errors. Only a failure sets the
 *    message; a successful call does not reset it (tsd_load alone clears it
 *    when it succeeds), so read it right after a call that returned an
 *    error, before the next tsd call on that thread.
 *  - Options. Every options struct starts with a `version` field; fill it
 *    with its TSD_*_OPTIONS_INIT macro. A version the library does not
 *    know (a newer header, garbage) is refused with TSD_ERR_INVALID_ARG
 *    rather than its unknown fields being ignored.
 *  - Ownership. Output parameters come first and are named `out`. A handle
 *    returned through `out` is a new object owned by the caller, released by
 *    the one matching tsd_*_free function, which accepts NULL. Strings and
 *    arrays returned by accessor functions are *borrowed*: they belong to the
 *    handle they came from and stay valid until that handle is freed or (for a
 *    checkpoint) until the next call that modifies it (tsd_checkpoint_select,
 *    tsd_checkpoint_pop). The library never asks you to call free().
 *  - Memory. By default tsd allocates with malloc; a checkpoint or a C-owned
 *    model may be given its own allocator instead (tsd_allocator), used for
 *    everything that object allocates. A C-owned model's tensor memory is
 *    always the caller's: tsd writes into it and never allocates it.
 *  - Threads. Handles are not internally locked. Distinct handles may be used
 *    from distinct threads at once. A checkpoint may be read (entries, read,
 *    load) from several threads at once as long as no thread modifies it
 *    (select, pop) at the same time. There is no global mutable state.
 *  - Atomicity. A load that fails, for whatever reason found before copying
 *    (strict-mode key errors, size mismatches, non-tensor values, malformed
 *    input), changes no byte of the model. Unlike PyTorch, which copies the
 *    matching tensors before it raises.
 *  - The library never prints, never aborts, never exits.
 */
#ifndef TSD_H
#define TSD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** \def TSD_API
 * Marks a public function: exported from the shared library (visibility
 * "default" with GCC and Clang, dllexport/dllimport on Windows when
 * TSD_SHARED is defined). */
#if defined(_WIN32) && defined(TSD_SHARED)
#ifdef TSD_BUILDING
#define TSD_API __declspec(dllexport)
#else
#define TSD_API __declspec(dllimport)
#endif
#elif defined(__GNUC__)
#define TSD_API __attribute__((visibility("default")))
#else
#define TSD_API
#endif

/* ------------------------------------------------------------------------ */
/* Version                                                                   */
/* ------------------------------------------------------------------------ */

/** Major version of the header. */
#define TSD_VERSION_MAJOR 0
/** Minor version of the header. */
#define TSD_VERSION_MINOR 1
/** Patch version of the header. */
#define TSD_VERSION_PATCH 0
/** The header's version as one number (MAJOR * 10000 + MINOR * 100 + PATCH),
 * to compare with tsd_version_number(). */
#define TSD_VERSION_NUMBER \
  (TSD_VERSION_MAJOR * 10000 + TSD_VERSION_MINOR * 100 + TSD_VERSION_PATCH)

/** The library's version as "MAJOR.MINOR.PATCH" (static string). */
TSD_API const char *tsd_version(void);
/** TSD_VERSION_NUMBER of the library actually linked. */
TSD_API int tsd_version_number(void);
/** 1 if this build of the library can open TorchScript models (LibTorch shim
 * compiled in), 0 for the pure-C build. */
TSD_API int tsd_has_torch(void);

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */
/* ------------------------------------------------------------------------ */

/** The result of every fallible function: TSD_OK or a negative error. */
typedef enum tsd_status {
  TSD_OK = 0,               /**< success */
  TSD_ERR_INVALID_ARG = -1, /**< a NULL handle, a bad enum value, a bad name */
  TSD_ERR_IO = -2,          /**< a file could not be opened or read */
  TSD_ERR_FORMAT = -3,      /**< malformed or truncated input */
  TSD_ERR_UNSUPPORTED = -4, /**< valid input tsd does not handle (yet) */
  TSD_ERR_REFUSED = -5,     /**< a pickle global outside the allow-list */
  TSD_ERR_NOMEM = -6,       /**< an allocation failed */
  TSD_ERR_NOT_FOUND = -7,   /**< no such key / entry */
  TSD_ERR_TYPE = -8,        /**< an entry is not of the kind asked for */
  TSD_ERR_LIMIT = -9,       /**< a tsd_limits bound was exceeded */
  TSD_ERR_LOAD = -10,       /**< load_state_dict raised (see the report) */
  TSD_ERR_TORCH = -11,      /**< LibTorch reported an error (shim only) */
  TSD_ERR_BUFFER = -12,     /**< a caller's buffer is too small */
  TSD_ERR_CANCELED = -13    /**< a progress callback asked to stop */
} tsd_status;

/** The message of the calling thread's last failure ("" if none). Borrowed:
 * valid until the next tsd call on the same thread. */
TSD_API const char *tsd_last_error(void);
/** A short static name for a status ("TSD_ERR_FORMAT"). */
TSD_API const char *tsd_status_name(tsd_status status);

/** How to show a string that came from a file (a key, a metadata value, a
 * shard name): it may hold ESC sequences, newlines, NUL bytes, lone
 * surrogates (Python pickles str with 'surrogatepass') or bytes that are not
 * UTF-8. Every tsd_last_error() message is escaped with TSD_ESCAPE_MESSAGE
 * already, except TSD_ERR_LOAD's: that one and tsd_report_message() are
 * PyTorch's RuntimeError text, keys as they are. */
typedef enum tsd_escape_mode {
  /** Python's repr() escaping without the quotes, of the string decoded
   * as pickle does (UTF-8, 'surrogatepass') and, for bytes that are not
   * UTF-8, as os.fsdecode does ('surrogateescape'): `\\` `\n` `\r` `\t`;
   * `\xNN` for C0, DEL and C1; `\uNNNN` or `\UNNNNNNNN` for the other
   * characters str.isprintable() rejects (surrogates, U+2028, bidi
   * controls); `\udcNN` for a byte that is not UTF-8; printable UTF-8 as
   * it is. Two strings show alike only when one holds the byte NN and the
   * other the lone surrogate U+DCNN, as in Python. */
  TSD_ESCAPE_TEXT = 0,
  /** As TEXT, but a backslash stays as it is: escaping twice changes
   * nothing, and a string without control or non-printable characters is
   * shown byte for byte. */
  TSD_ESCAPE_MESSAGE = 1,
  /** The inside of a JSON string (no quotes), always valid UTF-8: `\"`
   * `\\` `\b` `\f` `\n` `\r` `\t`; `\uNNNN` (a surrogate pair beyond
   * U+FFFF) for every other character TEXT escapes; a lone surrogate as
   * itself (`\ud800`); a byte that is not UTF-8 as `\udcNN`, Python's
   * 'surrogateescape' (os.fsencode of the parsed string gives the bytes
   * back). A high surrogate followed by a low one reads back as the pair's
   * character, as from Python's json.dumps: JSON cannot tell them apart. */
  TSD_ESCAPE_JSON = 2
} tsd_escape_mode;

/** Escapes s[0..len) into out (cap bytes, NUL-terminated when cap > 0; a
 * character's escape is never cut: what does not fit is left out). Returns
 * the length the whole escaped text needs, without the NUL, as snprintf
 * does: out holds all of it when the result is < cap. out may be NULL when
 * cap is 0. */
TSD_API size_t tsd_escape(char *out, size_t cap, const char *s, size_t len,
                          tsd_escape_mode mode);

/* ------------------------------------------------------------------------ */
/* Data types                                                                */
/* ------------------------------------------------------------------------ */

/** Our own numbering: it is not LibTorch's ScalarType. */
typedef enum tsd_dtype {
  TSD_FLOAT32 = 0,  /**< torch.float32 */
  TSD_FLOAT64 = 1,  /**< torch.float64 */
  TSD_FLOAT16 = 2,  /**< torch.float16 */
  TSD_BFLOAT16 = 3, /**< torch.bfloat16 */
  TSD_INT8 = 4,     /**< torch.int8 */
  TSD_INT16 = 5,    /**< torch.int16 */
  TSD_INT32 = 6,    /**< torch.int32 */
  TSD_INT64 = 7,    /**< torch.int64 */
  TSD_UINT8 = 8,    /**< torch.uint8 */
  TSD_BOOL = 9,     /**< torch.bool */
  /* Added later (PyTorch 2.2+ float8, 2.3+ uint16/32/64; complex since
   * 1.x). Conversions follow c10's rounding and saturation, bit for bit. */
  TSD_FLOAT8_E4M3FN = 10,   /**< torch.float8_e4m3fn (no inf; NaN 0x7F) */
  TSD_FLOAT8_E5M2 = 11,     /**< torch.float8_e5m2 (IEEE-like) */
  TSD_FLOAT8_E4M3FNUZ = 12, /**< torch.float8_e4m3fnuz (NaN 0x80, no -0) */
  TSD_FLOAT8_E5M2FNUZ = 13, /**< torch.float8_e5m2fnuz (NaN 0x80, no -0) */
  TSD_FLOAT8_E8M0FNU = 14,  /**< torch.float8_e8m0fnu (powers of two) */
  TSD_UINT16 = 15,          /**< torch.uint16 */
  TSD_UINT32 = 16,          /**< torch.uint32 */
  TSD_UINT64 = 17,          /**< torch.uint64 */
  /** torch.complex32 (torch.chalf): two float16, real then imaginary. As
   * Tensor.copy_, complex -> real keeps the real part (PyTorch warns), real
   * -> complex sets the imaginary part to 0. */
  TSD_COMPLEX32 = 18,
  TSD_COMPLEX64 = 19,       /**< torch.complex64: two float32 */
  TSD_COMPLEX128 = 20,      /**< torch.complex128: two float64 */
  TSD_DTYPE_COUNT = 21 /**< number of dtypes (not a dtype) */
} tsd_dtype;

/** Bytes per element (0 for an invalid dtype). */
TSD_API size_t tsd_dtype_size(tsd_dtype dtype);
/** PyTorch's name: "float32", "bfloat16", "bool", ... (static string; "?" for
 * an invalid dtype). */
TSD_API const char *tsd_dtype_name(tsd_dtype dtype);

/** The most dimensions a tensor may have. */
#define TSD_MAX_NDIM 64

/* ------------------------------------------------------------------------ */
/* Checkpoints                                                               */
/* ------------------------------------------------------------------------ */

/** An open checkpoint (opaque): from tsd_checkpoint_open and friends,
 * released by tsd_checkpoint_free. */
typedef struct tsd_checkpoint tsd_checkpoint;

/** Bounds a hostile file cannot make tsd exceed. Zero in a field means the
 * default shown. */
typedef struct tsd_limits {
  uint32_t max_depth;       /**< container nesting (default 1000) */
  uint64_t max_objects;     /**< values built by the unpickler (default 64M) */
  uint64_t max_pickle_bytes;/**< size of the pickle stream (default 4 GiB) */
  /** The tensor bytes a command may produce from this checkpoint, per byte
   * of input: writing its dict (tsd_model_from_checkpoint, then
   * tsd_model_save) or holding its tensors in memory (a model built from
   * it) may take at most max_output_ratio * (the input's size in bytes) +
   * 64 MiB. A view, a shared storage and an expanded (stride-0) tensor take
   * few bytes in a file and their full size when written: eight
   * `zeros(1).expand(2**25)` views are 1 GiB from a 2.5 KB file. Checked
   * by tsd_checkpoint_output_bytes (TSD_ERR_LIMIT naming the key that
   * crosses the bound). Default 16; UINT64_MAX for no bound. Read when
   * tsd_open_options.version >= 3. */
  uint64_t max_output_ratio;
} tsd_limits;

/** Memory hooks for programs that own their memory (game engines, robot
 * runtimes). A checkpoint (tsd_open_options.allocator) or a C-owned model
 * (tsd_model_new_ex) keeps a copy of the struct and makes every allocation
 * of its own through it, for as long as it lives: a checkpoint its tables,
 * the unpickled values and the buffers of tsd_checkpoint_read; a model its
 * tables, and what tsd_load (key views, read buffers, the report) and
 * tsd_model_save allocate for it. tsd_load allocates everything it needs
 * before it writes the first byte, so an allocation failure never leaves
 * a model partly loaded. There are no process-wide hooks: two objects may
 * use two allocators.
 *
 * The functions have malloc/realloc/free semantics (a NULL return is an
 * out-of-memory failure, reported as TSD_ERR_NOMEM; tsd never asks for 0
 * bytes and never frees NULL); the returned memory must be aligned for any
 * type (like malloc's). They are called from the thread that calls tsd, so
 * an object shared by threads (a checkpoint loaded from several threads)
 * needs thread-safe hooks. A NULL allocator pointer means libc's malloc.
 *
 * Not covered: the memory LibTorch allocates for TorchScript models and
 * archives (tsd_model_open_torchscript, tsd_checkpoint_open_torchscript),
 * and the worker thread a large read may start for its duration (its stack
 * and the C library's per-thread data; tsd_load_options.threads = 1 starts
 * none). The model's tensor memory is always the caller's. */
typedef struct tsd_allocator {
  /** Returns `size` bytes or NULL. */
  void *(*allocate)(void *user, size_t size);
  /** Resizes `ptr` (never NULL) to `size` bytes, or returns NULL and leaves
   * it as it was. */
  void *(*reallocate)(void *user, void *ptr, size_t size);
  /** Releases `ptr` (never NULL). */
  void (*deallocate)(void *user, void *ptr);
  void *user; /**< passed to the three functions */
} tsd_allocator;

/** The current version of tsd_open_options. Version 1 callers (`limits`
 * only) keep working: `allocator` is read when version >= 2. Version 3
 * added tsd_limits.max_output_ratio (which moved `allocator`): a struct
 * whose version is 1 or 2 is read in its own, older layout. */
#define TSD_OPEN_OPTIONS_VERSION 3
/** Options of tsd_checkpoint_open (NULL there means the defaults). */
typedef struct tsd_open_options {
  unsigned version; /**< TSD_OPEN_OPTIONS_VERSION */
  tsd_limits limits; /**< bounds for hostile files */
  /** The checkpoint's allocator (copied), or NULL for malloc. Version 2. */
  const tsd_allocator *allocator;
} tsd_open_options;
/** Initializer of a tsd_open_options with the defaults. */
#define TSD_OPEN_OPTIONS_INIT {TSD_OPEN_OPTIONS_VERSION, {0, 0, 0, 0}, NULL}

/** Opens a checkpoint written by torch.save (zip format, any pickle protocol
 * 2-5, ZIP64; or the legacy pre-1.6 format), a safetensors file, or (from a
 * path ending in ".json", e.g. "model.safetensors.index.json") a sharded
 * checkpoint. Only the pickle / header is read and checked now; tensor bytes
 * are read when asked for. The file stays open until tsd_checkpoint_free.
 * `options` may be NULL (defaults).
 *
 * safetensors: detected by content (a '{' after the 8-byte header length)
 * or by the ".safetensors" extension. Every header rule is checked (length
 * within the file and at most 100 MB, well-formed JSON, known dtype,
 * non-negative shape, data_offsets in bounds and matching numel * itemsize,
 * the tensors tiling the data section with no gap or overlap); a dtype tsd
 * does not handle (F8_*, U16, ...) is TSD_ERR_UNSUPPORTED naming it. The
 * root is a dict of tensors in the header's order; `__metadata__` is
 * available through tsd_checkpoint_file_metadata.
 *
 * Sharded: a JSON index {"metadata": {...}, "weight_map": {"key": "file"}}
 * over torch.save (.bin/.pth) or safetensors shards, named relative to the
 * index's directory (plain file names: a '/' , "." or ".." is refused).
 * The root is one dict holding every weight_map key in the index's order,
 * each value taken from its shard; each shard is opened once, its header or
 * pickle read now, tensor bytes on demand. A weight_map key its shard does
 * not hold is TSD_ERR_FORMAT; shard entries the weight_map does not list are
 * ignored (the index is the checkpoint's table of contents). The torch.save
 * shards' `_metadata` are merged (first shard naming a module wins). Not
 * available from memory.
 * Inputs by path (the checkpoint, the index, each shard) must be regular
 * files: a FIFO, device, directory or socket is TSD_ERR_IO at once, never
 * waited on. Messages about a shard (a file the caller did not name) do
 * not quote its bytes until they prove to be a checkpoint. A JSON text (a
 * safetensors header, an index) takes at most 16 bytes of memory per byte
 * + 1 MiB to parse.
 *
 * TorchScript archive (torch.jit.save output): its state dict, exactly what
 * tsd_checkpoint_open_torchscript gives (`torch.jit.load(p).state_dict()`),
 * read without LibTorch and without running anything of the archive:
 * data.pkl through the restricted unpickler (every TorchScript object an
 * inert placeholder, no __setstate__ called), and only each module class's
 * `__parameters__` / `__buffers__` declarations from its code files, as
 * text. A module whose class keeps its state through its own
 * __getstate__/__setstate__ cannot be read so: TSD_ERR_UNSUPPORTED.
 * On failure *out is NULL and the status says why: TSD_ERR_IO (cannot open or
 * read), TSD_ERR_FORMAT (malformed), TSD_ERR_REFUSED (a global outside the
 * allow-list, named in the message), TSD_ERR_LIMIT, TSD_ERR_UNSUPPORTED. */
TSD_API tsd_status tsd_checkpoint_open(tsd_checkpoint **out, const char *path,
                                       const tsd_open_options *options);

/** Same, from memory. The bytes are borrowed, not copied: they must stay valid
 * and unchanged until tsd_checkpoint_free. */
TSD_API tsd_status tsd_checkpoint_open_memory(tsd_checkpoint **out,
                                              const void *data, size_t size,
                                              const tsd_open_options *options);

/** Opens a TorchScript archive (torch.jit.save output, or a C++ program's
 * `torch::save(module, path)`) as a checkpoint, through LibTorch: its dict
 * is what Python's `torch.jit.load(path).state_dict()` holds — every
 * module's parameters, then buffers (persistent or not: TorchScript keeps no
 * persistent flag), then its children, with a `_metadata` version of 1 for
 * every module. The tensors are copied to memory (CPU) and the module is
 * released before this returns. TorchScript archives are code: open only
 * files you trust. TSD_ERR_UNSUPPORTED in a build without LibTorch
 * (tsd_has_torch() == 0); otherwise the errors of
 * tsd_model_open_torchscript. */
TSD_API tsd_status tsd_checkpoint_open_torchscript(tsd_checkpoint **out,
                                                   const char *path);

/** Releases the checkpoint and everything borrowed from it. NULL is a no-op. */
TSD_API void tsd_checkpoint_free(tsd_checkpoint *ckpt);

/** The kind of a checkpoint entry's value. */
typedef enum tsd_kind {
  TSD_KIND_TENSOR = 0, /**< torch.Tensor or nn.Parameter */
  TSD_KIND_NONE = 1,   /**< None */
  TSD_KIND_BOOL = 2,   /**< bool */
  TSD_KIND_INT = 3,    /**< int (64-bit) */
  TSD_KIND_FLOAT = 4,  /**< float */
  TSD_KIND_STR = 5,    /**< str */
  TSD_KIND_BYTES = 6,  /**< bytes */
  TSD_KIND_DICT = 7,   /**< dict or OrderedDict */
  TSD_KIND_LIST = 8,   /**< list */
  TSD_KIND_TUPLE = 9,  /**< tuple */
  TSD_KIND_OTHER = 10, /**< sets, big integers, ... */
  /** An object of a class tsd does not construct (argparse.Namespace,
   * omegaconf.DictConfig, a pickled nn.Module ...): an inert placeholder
   * that keeps the class name (tsd_checkpoint_entry_class), the constructor
   * arguments and the pickled state as plain values. Nothing in the file is
   * ever called or imported; a load that needs it as a tensor fails naming
   * the key and the class. */
  TSD_KIND_OBJECT = 11
} tsd_kind;

/** One entry of the current dict. All pointers are borrowed from the
 * checkpoint. */
typedef struct tsd_entry {
  const char *key;      /**< NUL-terminated UTF-8 */
  size_t key_len;       /**< bytes, without the NUL */
  tsd_kind kind;        /**< what the value is */
  /* for TSD_KIND_TENSOR */
  tsd_dtype dtype;      /**< element type */
  size_t ndim;          /**< number of dimensions */
  const int64_t *shape; /**< ndim elements */
  int64_t numel;        /**< number of elements */
  int is_parameter;     /**< saved as nn.Parameter */
  int contiguous;       /**< C-contiguous view of its storage */
  /* for scalars */
  int64_t int_value;    /**< TSD_KIND_INT, TSD_KIND_BOOL */
  double float_value;   /**< TSD_KIND_FLOAT */
  /** TSD_KIND_STR (NUL-terminated), TSD_KIND_BYTES; for TSD_KIND_OTHER: an
   * int beyond 64 bits (type_repr "<class 'int'>") as its little-endian
   * two's complement bytes, as pickle's LONG1/LONG4 hold it; a torch.dtype's
   * name ("torch.float16"), a torch.device's str() ("cuda:1"), or for a
   * quantized or sparse tensor (type_repr "<class 'torch.Tensor'>"; dtype,
   * ndim, shape set; never loaded: tsd_load fails with PyTorch's copy_
   * error) "torch.qint8 per_tensor_affine" / "torch.sparse_coo" */
  const char *str_value;
  size_t str_len;       /**< bytes of str_value, without the NUL */
  size_t length;        /**< number of items for DICT, LIST, TUPLE */
  /** Python's type name as `type(x)` prints it: "<class 'int'>",
   * "<class 'torch.Tensor'>", "<class 'collections.OrderedDict'>", ... */
  const char *type_repr;
} tsd_entry;

/** The checkpoint's current dict is the top-level object when it is a dict,
 * or the one chosen with tsd_checkpoint_select. If the top-level object is not
 * a dict, the count is 0 and tsd_checkpoint_root_kind says what it is. */
TSD_API tsd_kind tsd_checkpoint_root_kind(const tsd_checkpoint *ckpt);
/** The class of the top-level object when it is a TSD_KIND_OBJECT
 * ("module.qualname", borrowed), else NULL. */
TSD_API const char *tsd_checkpoint_root_class(const tsd_checkpoint *ckpt);
/** Number of entries of the current dict (0 when there is none). */
TSD_API size_t tsd_checkpoint_count(const tsd_checkpoint *ckpt);
/** Fills *out with entry `index` (0-based, checkpoint order) of the current
 * dict. TSD_ERR_NOT_FOUND if index >= count; TSD_ERR_TYPE if the dict's key
 * is not a string. */
TSD_API tsd_status tsd_checkpoint_entry(const tsd_checkpoint *ckpt,
                                        size_t index, tsd_entry *out);
/** Index of `key` in the current dict: TSD_OK and *out_index, or
 * TSD_ERR_NOT_FOUND. */
TSD_API tsd_status tsd_checkpoint_find(const tsd_checkpoint *ckpt,
                                       size_t *out_index, const char *key);

/** The class of entry `index` of the current dict when it is a
 * TSD_KIND_OBJECT: "module.qualname" as the pickle names it (for a value made
 * by calling a function, the function's name), borrowed; NULL for any other
 * kind or a bad index. */
TSD_API const char *tsd_checkpoint_entry_class(const tsd_checkpoint *ckpt,
                                               size_t index);

/** Makes the dict found under `key` of the current dict the current dict (for
 * nested training checkpoints: {'epoch': 7, 'state_dict': {...}}). Can be
 * called again to go deeper. TSD_ERR_NOT_FOUND, or TSD_ERR_TYPE when the value
 * is not a dict. Invalidates borrowed entries. Pops are a property of the
 * current view: selecting (or returning to the root) shows the dict as the
 * file holds it, with no key popped. */
TSD_API tsd_status tsd_checkpoint_select(tsd_checkpoint *ckpt,
                                         const char *key);
/** Returns to the top-level dict. */
TSD_API void tsd_checkpoint_select_root(tsd_checkpoint *ckpt);

/** Automatic selection of the state dict inside a training checkpoint.
 * The rule: the first key of this priority list that is present and whose
 * value is a dict holding at least one tensor, or a pickled nn.Module
 * (torch.save(model); its state dict is rebuilt as Module.state_dict
 * would, see TSD_KIND_OBJECT) with at least one tensor, is selected (as by
 * tsd_checkpoint_select) and *out_key is set to it (a static string):
 *   "state_dict"        Lightning, timm train.py, mmcv, pytorch/examples
 *   "model_state_dict"  the PyTorch tutorials' checkpoint recipe
 *   "model"             torchvision references, fairseq, DeiT/MAE, YOLO
 *   "module"            DeepSpeed
 *   "net", "network", "params"
 *   "state_dict_ema", "model_ema"   EMA weights (timm, torchvision), last:
 *                       the raw weights are preferred when both exist.
 * This holds even when the current dict has tensors of its own
 * (pytorch/examples' ImageNet checkpoint keeps 'best_acc1' as a tensor
 * beside 'state_dict'): a real state dict never maps one of these bare
 * names to a dict. Otherwise, if the current dict holds at least one
 * tensor (numpy arrays do not count), it is the state dict: nothing
 * changes and *out_key is set to NULL. Only one level is searched.
 * TSD_ERR_NOT_FOUND (naming the keys tried) when nothing qualifies,
 * TSD_ERR_TYPE when there is no current dict (the root is not a dict or a
 * pickled model). `out_key` may be NULL. */
TSD_API tsd_status tsd_checkpoint_select_auto(tsd_checkpoint *ckpt,
                                              const char **out_key);

/** Removes `key` from the current dict, like Python's `sd.pop(key)`.
 * TSD_ERR_NOT_FOUND if absent. Invalidates borrowed entries. */
TSD_API tsd_status tsd_checkpoint_pop(tsd_checkpoint *ckpt, const char *key);

/** Copies the tensor at `index` of the current dict into `dst` as a
 * C-contiguous array of `dtype`, converting as Tensor.copy_ does.
 * `dst_bytes` must be at least numel * tsd_dtype_size(dtype)
 * (TSD_ERR_BUFFER otherwise). TSD_ERR_TYPE if the entry is not a tensor. */
TSD_API tsd_status tsd_checkpoint_read(const tsd_checkpoint *ckpt,
                                       size_t index, tsd_dtype dtype,
                                       void *dst, size_t dst_bytes);

/** The `_metadata` version PyTorch stored for module `prefix` ("" for the
 * root, "features.1" ...) in the current dict, or -1 when the dict has no
 * `_metadata` or no version for that module. */
TSD_API int64_t tsd_checkpoint_module_version(const tsd_checkpoint *ckpt,
                                              const char *prefix);
/** Number of module prefixes in the current dict's `_metadata` (0 if none),
 * and the i-th of them (borrowed), in the order PyTorch wrote them
 * (pre-order over modules). */
TSD_API size_t tsd_checkpoint_metadata_count(const tsd_checkpoint *ckpt);
/** The `index`-th module prefix of the current dict's `_metadata`
 * (borrowed), or NULL if index >= tsd_checkpoint_metadata_count. */
TSD_API const char *tsd_checkpoint_metadata_prefix(const tsd_checkpoint *ckpt,
                                                   size_t index);

/** File-level metadata: a safetensors file's `__metadata__` (str -> str), or
 * a sharded index's "metadata" object (strings as they are, numbers,
 * booleans and null as their JSON text, arrays and objects left out).
 * Empty for torch.save files (their module versions are above). Keys and
 * values are borrowed from the checkpoint, in file order. */
TSD_API size_t tsd_checkpoint_file_metadata_count(const tsd_checkpoint *ckpt);
/** TSD_ERR_NOT_FOUND if index >= count. out_key / out_value may be NULL. */
TSD_API tsd_status tsd_checkpoint_file_metadata(const tsd_checkpoint *ckpt,
                                                size_t index,
                                                const char **out_key,
                                                const char **out_value);
/** The file metadata value of `key` (borrowed), or NULL. */
TSD_API const char *tsd_checkpoint_metadata_string(const tsd_checkpoint *ckpt,
                                                   const char *key);

/* ------------------------------------------------------------------------ */
/* Models                                                                    */
/* ------------------------------------------------------------------------ */

/** A model to load into (opaque): C-owned (tsd_model_new) or a TorchScript
 * module (tsd_model_open_torchscript), released by tsd_model_free. */
typedef struct tsd_model tsd_model;

/** What a model tensor is to PyTorch. */
typedef enum tsd_tensor_role {
  TSD_PARAMETER = 0,            /**< nn.Parameter */
  TSD_BUFFER = 1,               /**< persistent buffer */
  TSD_BUFFER_NON_PERSISTENT = 2,/**< register_buffer(..., persistent=False) */
  TSD_PARAMETER_NONE = 3        /**< a parameter registered as None: no data */
} tsd_tensor_role;

/** A new, empty C-owned model. `class_name` is what PyTorch would print as
 * the model's class (`self.__class__.__name__`), e.g. "VisionTransformer";
 * it is copied. */
TSD_API tsd_status tsd_model_new(tsd_model **out, const char *class_name);

/** tsd_model_new with an allocator (copied; NULL means malloc) for the
 * model's own tables and for what tsd_load and tsd_model_save allocate on
 * its behalf, reports included: tsd_report_free gives their memory back to
 * the same allocator. TSD_ERR_INVALID_ARG if one of its three functions is
 * NULL. */
TSD_API tsd_status tsd_model_new_ex(tsd_model **out, const char *class_name,
                                    const tsd_allocator *allocator);

/** Opens a TorchScript archive (torch.jit.save output) as a model on `device`
 * ("cpu", "cuda:0", ...; NULL means "cpu"). TorchScript archives are code:
 * open only files you trust. TSD_ERR_UNSUPPORTED in a build without LibTorch;
 * TSD_ERR_TORCH for LibTorch's own failures (message kept). */
TSD_API tsd_status tsd_model_open_torchscript(tsd_model **out,
                                              const char *path,
                                              const char *device);

/** A TorchScript archive's module tree as a read-only model, without
 * LibTorch and without running anything of the archive (every build): the
 * modules with their class names, the parameters (None ones included) and
 * buffers with their dtypes and shapes, as tsd_model_open_torchscript sees
 * them, read as tsd_checkpoint_open reads the archive (see there).
 * tsd_model_read reads the archive's values; a tsd_load into it works as a
 * dry run (what `tsd diff` does) and otherwise fails with
 * TSD_ERR_UNSUPPORTED before writing anything; tsd_model_save is
 * TSD_ERR_UNSUPPORTED. TSD_ERR_FORMAT for a file that is not a TorchScript
 * archive; otherwise the errors of tsd_checkpoint_open. */
TSD_API tsd_status tsd_model_open_torchscript_state(tsd_model **out,
                                                    const char *path);

/** Releases the model (never the caller's tensor memory). NULL is a no-op. */
TSD_API void tsd_model_free(tsd_model *model);

/** Adds a tensor to a C-owned model. `name` is its full dotted name
 * ("features.0.weight"); the modules on its path are created as needed, in
 * order of first appearance. `data` is borrowed: it must hold
 * numel * tsd_dtype_size(dtype) bytes, C-contiguous, and stay valid while the
 * model is used; loads write into it. For TSD_PARAMETER_NONE, data, ndim and
 * shape are ignored. TSD_ERR_INVALID_ARG for a duplicate or empty name, a
 * name component that is empty, or a negative dimension. */
TSD_API tsd_status tsd_model_add_tensor(tsd_model *model, const char *name,
                                        tsd_tensor_role role, tsd_dtype dtype,
                                        size_t ndim, const int64_t *shape,
                                        void *data);

/** Declares the module at dotted path `name` ("features.2"; "" is the root)
 * with its PyTorch class name `type_name` ("ReLU", "BatchNorm2d", ...; NULL
 * leaves the type unknown/unchanged), creating it (and its parents) if
 * needed. Declaring matters for:
 *  - modules without tensors (a ReLU), which the unexpected-key rule sees;
 *  - norm layers (BatchNorm1d/2d/3d, SyncBatchNorm, InstanceNorm1d/2d/3d and
 *    their Lazy forms): the `num_batches_tracked` / running-stats rules.
 * The `_metadata` version tsd saves for a declared module is `version`
 * (pass -1 for PyTorch's default for that type: 2 for norm layers, else 1). */
TSD_API tsd_status tsd_model_add_module(tsd_model *model, const char *name,
                                        const char *type_name,
                                        int64_t version);

/** Marks the buffer `name` persistent (1) or not (0). Non-persistent buffers
 * are not loaded and their keys are unexpected, as in PyTorch. For
 * TorchScript models this is the way to get the eager model's answer:
 * TorchScript forgets persistent=False. */
TSD_API tsd_status tsd_model_set_persistent(tsd_model *model,
                                            const char *name, int persistent);

/** The class name (borrowed). */
TSD_API const char *tsd_model_class_name(const tsd_model *model);

/** One tensor of a model, in PyTorch's state_dict order (pre-order over
 * modules: a module's parameters, then its buffers, then its children).
 * Pointers borrowed from the model. */
typedef struct tsd_tensor_info {
  const char *name;     /**< full dotted name ("features.0.weight") */
  tsd_tensor_role role; /**< parameter or buffer */
  tsd_dtype dtype;      /**< element type */
  size_t ndim;          /**< number of dimensions */
  const int64_t *shape; /**< ndim elements */
  int64_t numel;        /**< number of elements */
  void *data; /**< C-owned models: the caller's pointer; TorchScript: NULL */
} tsd_tensor_info;

/** Number of tensors of the model (every role, None parameters too). */
TSD_API size_t tsd_model_tensor_count(const tsd_model *model);
/** Fills *out with tensor `index` (state_dict order). TSD_ERR_NOT_FOUND if
 * index >= tsd_model_tensor_count. */
TSD_API tsd_status tsd_model_tensor(const tsd_model *model, size_t index,
                                    tsd_tensor_info *out);

/** Copies model tensor `index` into `dst` as C-contiguous `dtype`. */
TSD_API tsd_status tsd_model_read(const tsd_model *model, size_t index,
                                  tsd_dtype dtype, void *dst,
                                  size_t dst_bytes);

/** Saves the model: a C-owned model as a torch.save-compatible .pth (an
 * OrderedDict of its persistent tensors with `_metadata`, readable by Python
 * torch.load); a TorchScript model as a TorchScript archive.
 * Any model to a path ending in ".safetensors": a safetensors file of its
 * persistent tensors (header in state_dict order, `__metadata__`
 * {"format": "pt"}, data C-order with larger element types first so every
 * tensor is aligned to its element size).
 *
 * Every writer follows one rule, so that a write never damages what it
 * replaces:
 *  - the file is written in `path`'s directory as an unnamed file
 *    (O_TMPFILE) where the file system allows, else as ".tsd-XXXXXX";
 *    fsync'ed, given its name (rename over the old file), and the directory
 *    fsync'ed. On any failure (a full disk is TSD_ERR_IO) the old file is
 *    intact and nothing is left behind. A process killed mid-write leaves
 *    nothing with O_TMPFILE; with a named temporary the library cannot
 *    remove it (it installs no signal handlers): see
 *    tsd_save_options.temp_file;
 *  - an existing file keeps its permission bits (and its owner when the
 *    process may set it); hard links to it keep the old contents;
 *  - only a regular file is replaced: a directory, FIFO, device or socket
 *    at `path` is refused (TSD_ERR_INVALID_ARG), never replaced;
 *  - a symbolic link at `path` is replaced by the file; its target is not
 *    written. (Writing through a link would let a link planted in a shared
 *    directory redirect the write to any file; rename(2) replaces the link
 *    itself.) To update the target, pass the target's path.
 * Tensors that are not in memory (tsd_model_from_checkpoint, TorchScript
 * models) are written in windows of a few MiB, never held whole. */
TSD_API tsd_status tsd_model_save(const tsd_model *model, const char *path);

/* ------------------------------------------------------------------------ */
/* Loading                                                                   */
/* ------------------------------------------------------------------------ */

/** Which PyTorch version's edge rules a load follows. */
typedef enum tsd_rules {
  TSD_RULES_TORCH_1_13 = 0, /**< default: PyTorch 1.13's edge rules */
  TSD_RULES_TORCH_2 = 1     /**< PyTorch 2.x's: a 0-dim tensor accepts only a
                               length-1 tensor; `weight.foo` is unexpected; a
                               norm layer's missing `num_batches_tracked`
                               keeps the model's value instead of 0 */
} tsd_rules;

/** A key rename rule: a checkpoint key that starts with `from` has that
 * prefix replaced by `to` ("backbone." -> "encoder."). Plain string
 * prefixes: "fc" also matches "fc2.weight", so write "fc." -> "head.". */
typedef struct tsd_rename {
  const char *from; /**< non-empty */
  const char *to;   /**< may be "" (drops the prefix) */
} tsd_rename;

/** Progress of the copy phase of a load (see tsd_load_options.progress).
 * `done` and `total` count checkpoint tensor bytes (numel * checkpoint
 * itemsize) of the tensors being copied. Return 0 to go on, non-zero to
 * cancel. */
typedef int (*tsd_progress_fn)(void *user, uint64_t done, uint64_t total);

/** The current version of tsd_load_options. Older callers keep working:
 * version 1 structs (the first four fields) are read up to `rules`, version
 * 2 up to `dry_run`; `threads` is read from version 3. */
#define TSD_LOAD_OPTIONS_VERSION 3
/** Options of tsd_load (NULL there means the defaults). */
typedef struct tsd_load_options {
  unsigned version; /**< TSD_LOAD_OPTIONS_VERSION */
  int strict;       /**< like PyTorch's strict (default 1) */
  int auto_pop;     /**< drop shape-mismatched keys first (default 0) */
  tsd_rules rules;  /**< default TSD_RULES_TORCH_1_13 */

  /** ---- version 2 ---- */

  /** Key remapping, before anything is matched. The load sees the current
   * dict's keys transformed by, in this order:
   *  1. each of `strip_prefixes` in turn, with the semantics of PyTorch's
   *     torch.nn.modules.utils.consume_prefix_in_state_dict_if_present:
   *     only keys that start with the prefix lose it; those keys move, in
   *     sorted order of their old names, after the keys left alone (PyTorch
   *     pops and re-inserts them; this order is the order of
   *     unexpected_keys). `_metadata` module names: left unchanged with
   *     TSD_RULES_TORCH_1_13 (1.13's consume_prefix tests
   *     `"_metadata" in state_dict` and never finds it), stripped with
   *     TSD_RULES_TORCH_2 ("module" -> "", "module.fc" -> "fc");
   *  2. `renames`: for each key the first rule (in array order) whose
   *     `from` prefixes it, and only that one;
   *  3. `add_prefix` (NULL or "" for none) in front of every key.
   * Steps 2 and 3 rename `_metadata` module names the same way (module
   * "m" is renamed as the key "m." would be, then loses the final dot).
   * The report names keys as the model sees them (after remapping). Two
   * checkpoint keys that end up with the same name make the load fail with
   * TSD_ERR_INVALID_ARG naming both (PyTorch would silently keep one). An
   * empty strip prefix or rename `from` is TSD_ERR_INVALID_ARG. */
  const char *const *strip_prefixes; /**< n_strip_prefixes strings */
  size_t n_strip_prefixes;   /**< number of strip_prefixes */
  const tsd_rename *renames; /**< n_renames rules */
  size_t n_renames;          /**< number of renames */
  const char *add_prefix;    /**< NULL or "" for none */

  /** Progress of the copy phase, from the calling thread: first with
   * done = 0 before any byte of the model is written, then after each
   * tensor copied once at least 1% of `total` more is done, and last with
   * done == total. (One large tensor is one step; with nothing to copy
   * the only call is (0, 0).) A non-zero return cancels: tsd_load returns
   * TSD_ERR_CANCELED and no report. Canceled at the first call (done = 0),
   * the model is unchanged; at a later call, the tensors copied so far (in
   * state_dict order) are loaded and the others unchanged; the return of
   * the final call (done == total, all copied) is ignored. Not called when
   * the load fails before copying, nor with dry_run. NULL: no progress. */
  tsd_progress_fn progress;
  void *progress_user; /**< passed to progress as `user` */

  /** Non-zero: do everything except copying (the report and the status are
   * those of the real load; the model is never written). This is what
   * `tsd diff` shows. */
  int dry_run;

  /* ---- version 3 ---- */

  /** Threads a load may use. 0 (the default): the calling thread, plus one
   * worker thread, started and joined inside the read, for a tensor of at
   * least 4 MiB (1 MiB when converting dtypes) — both cores of a small
   * machine copy at once. 1: the calling thread only (for hosts that own
   * every thread). 2 or more: as 0. Negative: TSD_ERR_INVALID_ARG. */
  int threads;
} tsd_load_options;
/** Initializer of a tsd_load_options with the defaults. */
#define TSD_LOAD_OPTIONS_INIT                                             \
  {TSD_LOAD_OPTIONS_VERSION, 1, 0, TSD_RULES_TORCH_1_13, NULL, 0, NULL, 0, \
   NULL, NULL, NULL, 0, 0}

/** The result of a load (opaque): what PyTorch's load_state_dict returned
 * or raised. From tsd_load, released by tsd_report_free. */
typedef struct tsd_report tsd_report;

/** load_state_dict(model, current dict of ckpt, options). `options` may be
 * NULL (strict, no auto-pop, 1.13 rules). The checkpoint is not modified
 * (auto-pop works on the load's own view of the keys).
 *
 * Returns TSD_OK when PyTorch would have returned (the model is loaded),
 * TSD_ERR_LOAD when PyTorch would have raised RuntimeError (the model is
 * unchanged). In both cases *out is a new report to free with
 * tsd_report_free. Any other status is a failure before the load (malformed
 * tensor data, I/O, a root that is not a dict): *out is NULL and the model is
 * unchanged, except for an I/O error while copying (a file truncated under
 * us), which is reported as TSD_ERR_IO and may leave the model partly
 * written. */
TSD_API tsd_status tsd_load(tsd_report **out, tsd_model *model,
                            const tsd_checkpoint *ckpt,
                            const tsd_load_options *options);

/** The lists of keys and messages a report holds. */
typedef enum tsd_list {
  TSD_LIST_MISSING = 0,    /**< missing_keys */
  TSD_LIST_UNEXPECTED = 1, /**< unexpected_keys */
  TSD_LIST_ERRORS = 2,     /**< error_msgs, PyTorch's order */
  TSD_LIST_MISMATCHED = 3, /**< keys of size mismatches (errors) */
  TSD_LIST_POPPED = 4,     /**< keys auto-pop dropped, in the model's
                              state_dict order (the order PyTorch would
                              report their size mismatches in) */
  TSD_LIST_MATCHED = 5     /**< keys whose values are (or, with dry_run,
                              would be) copied, model order; not in the
                              JSON */
} tsd_list;

/** A shape mismatch (an error, or a key auto-pop dropped). Borrowed. */
typedef struct tsd_mismatch {
  const char *key;                 /**< as the model names it */
  size_t checkpoint_ndim;          /**< dimensions in the checkpoint */
  const int64_t *checkpoint_shape; /**< checkpoint_ndim elements */
  size_t model_ndim;               /**< dimensions in the model */
  const int64_t *model_shape;      /**< model_ndim elements */
} tsd_mismatch;

/** Releases the report and everything borrowed from it. NULL is a no-op. */
TSD_API void tsd_report_free(tsd_report *report);
/** 1 if the load succeeded (PyTorch returned), else 0. */
TSD_API int tsd_report_ok(const tsd_report *report);
/** The model's class name, as in the messages (borrowed). */
TSD_API const char *tsd_report_class_name(const tsd_report *report);
/** Number of strings (or mismatches) in a list. */
TSD_API size_t tsd_report_count(const tsd_report *report, tsd_list list);
/** The i-th string of a list (borrowed), NULL if out of range. */
TSD_API const char *tsd_report_item(const tsd_report *report, tsd_list list,
                                    size_t index);
/** For TSD_LIST_MISMATCHED and TSD_LIST_POPPED: both shapes. */
TSD_API tsd_status tsd_report_mismatch(const tsd_report *report,
                                       tsd_list list, size_t index,
                                       tsd_mismatch *out);
/** Exactly what PyTorch prints: the RuntimeError message when not ok,
 * otherwise the `_IncompatibleKeys(...)` / `<All keys matched
 * successfully>` text. Borrowed. */
TSD_API const char *tsd_report_message(const tsd_report *report);
/** The report as one JSON object (the `tsd load --json` format). Borrowed. */
TSD_API const char *tsd_report_json(const tsd_report *report);

/* ------------------------------------------------------------------------ */
/* Writing: options, outputs bounded by inputs                              */
/* ------------------------------------------------------------------------ */

/** What tsd_model_save_ex writes. */
typedef enum tsd_save_format {
  /** a safetensors file for a path ending in ".safetensors", else the
   * model's own format (tsd_model_save's rule) */
  TSD_SAVE_AUTO = 0,
  /** a C-owned model: a torch.save .pth; a TorchScript model: its archive */
  TSD_SAVE_NATIVE = 1,
  TSD_SAVE_SAFETENSORS = 2 /**< a safetensors file */
} tsd_save_format;

/** The current version of tsd_save_options. */
#define TSD_SAVE_OPTIONS_VERSION 1
/** Options of tsd_model_save_ex (NULL there means the defaults). */
typedef struct tsd_save_options {
  unsigned version;       /**< TSD_SAVE_OPTIONS_VERSION */
  tsd_save_format format; /**< TSD_SAVE_AUTO */
  /** -1: write to the path. >= 0: write to this descriptor instead (e.g.
   * STDOUT_FILENO for a command's `-o -`): written in order from its
   * current position, never closed; a failure leaves what was written. */
  int fd;
  /** Called (on the calling thread) with the full name of a named
   * temporary when one exists next to the output (the file system has no
   * O_TMPFILE, or for the instant between linking and renaming), and with
   * NULL once it is gone. A host that removes it in its own SIGINT/SIGTERM
   * handler keeps a copy of the name (the string is borrowed for the call).
   * NULL: not called. */
  void (*temp_file)(void *user, const char *temp_path);
  void *user; /**< passed to temp_file */
} tsd_save_options;
/** Initializer of a tsd_save_options with the defaults. */
#define TSD_SAVE_OPTIONS_INIT {TSD_SAVE_OPTIONS_VERSION, TSD_SAVE_AUTO, -1, NULL, NULL}

/** tsd_model_save with options. `path` may be NULL when options->fd >= 0
 * (it then only names the output in messages and, with TSD_SAVE_AUTO,
 * chooses the format by its extension). */
TSD_API tsd_status tsd_model_save_ex(const tsd_model *model, const char *path,
                                     const tsd_save_options *options);

/** The bytes the tensors of the checkpoint's current dict take when
 * written or held in memory (the sum of numel * itemsize), into *out_bytes
 * (may be NULL). TSD_ERR_LIMIT when they exceed the checkpoint's bound
 * (tsd_limits.max_output_ratio): the message names the key that crosses
 * it, the sizes, and the limit to raise. Non-tensor entries count 0. */
TSD_API tsd_status tsd_checkpoint_output_bytes(const tsd_checkpoint *ckpt,
                                               uint64_t *out_bytes);

/** A model whose tensors are the tensors of the checkpoint's current dict,
 * read from the checkpoint when saved (in windows: never a whole tensor in
 * memory), for writing a checkpoint in another format or without some keys
 * (`tsd convert`, `tsd pop`). Modules and versions come from the dict's
 * `_metadata` (1 for the modules it does not list), tensors in dict order
 * as persistent buffers; `class_name` NULL means "StateDict". The
 * checkpoint must outlive the model; pops made later are not seen.
 * TSD_ERR_TYPE naming the first entry that is not a tensor; TSD_ERR_LIMIT
 * from tsd_checkpoint_output_bytes. Such a model cannot be loaded into
 * (tsd_load gives TSD_ERR_UNSUPPORTED); tsd_model_read works. Allocates
 * with the checkpoint's allocator. */
TSD_API tsd_status tsd_model_from_checkpoint(tsd_model **out,
                                             const tsd_checkpoint *ckpt,
                                             const char *class_name);

#ifdef __cplusplus
}
#endif

#endif /**< TSD_H */
