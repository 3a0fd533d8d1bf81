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
 *    threads never see each other's errors. The rule for when it changes:
 *    every call that returns an error status sets it; a call that returns
 *    TSD_OK, or returns no status, leaves it as it was, with one exception:
 *    tsd_load returning TSD_OK clears it to "". So read it right after a
 *    call that returned an error, before the next tsd call on that thread
 *    (tests/unit/test_api.cc checks this rule).
 *  - Options. A function that may grow takes a pointer to its options
 *    struct as its last parameter (NULL: the defaults), never a second
 *    `_ex` version (tsd_model_new_ex, which takes an allocator, predates
 *    the rule). Every options struct starts with a `version` field; fill it
 *    with its TSD_*_OPTIONS_INIT macro. A version the library does not
 *    know (a newer header, garbage) is refused with TSD_ERR_INVALID_ARG
 *    rather than its unknown fields being ignored.
 *  - Parameter order. Outputs first: what a function returns through a
 *    pointer (a handle, a struct it fills, an index, a borrowed string) and
 *    the caller's buffer it writes with its size (`dst, dst_bytes`, as
 *    tsd_escape's `out, cap`); then the object it works on; then the other
 *    inputs; options last. Since 0.2 (issue 12; scripts/migrate_0_2.py
 *    rewrites 0.1 calls).
 *  - Ownership. Output parameters are named `out` or `out_*` (the caller's
 *    buffer `dst`). A handle returned through `out` is a new object owned
 *    by the caller, released by the one matching tsd_*_free function,
 *    which accepts NULL. Strings and
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
 *  - Libraries. Everything here is libtsd (CMake tsd::tsd, pkg-config tsd),
 *    which never links LibTorch, except the three TorchScript functions
 *    tsd_has_torch, tsd_model_open_torchscript and
 *    tsd_checkpoint_open_torchscript: they are libtsd_torch's (tsd::torch,
 *    tsd-torch), which brings LibTorch and which only programs using them
 *    link. C++ programs find more in tsd_torch.hpp (libtsd_torch).
 *  - Mapped checkpoints, tensor views, models bound to a checkpoint and
 *    device-copy loads have lifetime and thread rules of their own, set out
 *    at "Mapped views, binding, device copies, ranged reads" below: in
 *    short, views and bound tensors are read-only and live as long as the
 *    checkpoint, which a bound model borrows.
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
 * "default" with GCC and Clang; on Windows dllexport while building tsd, and
 * dllimport for a user of tsd.dll, who defines TSD_SHARED: the installed
 * CMake target tsd::tsd_shared does so; a user of the static library
 * defines nothing). */
#if defined(_WIN32)
#if defined(TSD_BUILDING)
#define TSD_API __declspec(dllexport)
#elif defined(TSD_SHARED)
#define TSD_API __declspec(dllimport)
#else
#define TSD_API
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
#define TSD_VERSION_MINOR 2
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
/** 1: TorchScript models can be opened through LibTorch. Like
 * tsd_model_open_torchscript and tsd_checkpoint_open_torchscript, this is
 * libtsd_torch's (CMake tsd::torch, pkg-config tsd-torch), not libtsd's:
 * libtsd never links LibTorch, and only programs using these three
 * functions link libtsd_torch (which brings LibTorch). The pure-C build
 * (-DTSD_WITH_TORCH=OFF) has no libtsd_torch. */
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
  TSD_ERR_CANCELED = -13,   /**< a progress callback asked to stop */
  TSD_ERR_CALLBACK = -14    /**< a device-copy callback failed a load */
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
 * whose version is 1 or 2 is read in its own, older layout. `flags` is
 * read when version >= 4. */
#define TSD_OPEN_OPTIONS_VERSION 4
/** Options of tsd_checkpoint_open (NULL there means the defaults). */
typedef struct tsd_open_options {
  unsigned version; /**< TSD_OPEN_OPTIONS_VERSION */
  tsd_limits limits; /**< bounds for hostile files */
  /** The checkpoint's allocator (copied), or NULL for malloc. Version 2. */
  const tsd_allocator *allocator;
  /** TSD_OPEN_* flags (0: none). Version 4. */
  unsigned flags;
} tsd_open_options;
/** Initializer of a tsd_open_options with the defaults. */
#define TSD_OPEN_OPTIONS_INIT {TSD_OPEN_OPTIONS_VERSION, {0, 0, 0, 0}, NULL, 0}

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
 * not quote its bytes until they prove to be a checkpoint.
 *
 * Memory and time, whatever the file holds: opening S bytes holds at most
 * 24 * S + 2 MiB of memory (through the allocator; a sharded checkpoint:
 * that for the index and for each shard), and takes time linear in S.
 * Parsing a pickle (zip data.pkl, each pickle of the legacy format, a
 * TorchScript archive's) takes at most 16 bytes per byte of the pickle +
 * 1 MiB for its values and the unpickler's working arrays together, past
 * which the open fails with TSD_ERR_LIMIT ("parsing needs more memory than
 * the input's size justifies"); the rest is the pickle's own copy and the
 * key index. Checkpoints that torch.save writes take 3 to 11 times their
 * pickle (a list of ints >= 1024, the densest, about 11). A JSON text (a
 * safetensors header, an index) takes at most 16 bytes per byte + 1 MiB.
 * A load reads tensors in windows of a few MiB (at most 64 MiB beside the
 * model's own tensors), so its peak is at most the model's own tensors +
 * 66 MiB + 24 * S; what a command writes is bounded by
 * tsd_limits.max_output_ratio. tests/unit/test_parse_memory.cc measures
 * the densest input of each pickle construct.
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
 * and unchanged until tsd_checkpoint_free. They need no alignment (any
 * address will do: tensor data is read with memcpy-safe loads, never
 * through a pointer cast); `size` is the whole file. A sharded index
 * cannot be read from memory (its shards are files): TSD_ERR_FORMAT.
 * Errors as tsd_checkpoint_open's, and
 * TSD_ERR_INVALID_ARG for NULL data with a non-zero size. */
TSD_API tsd_status tsd_checkpoint_open_memory(tsd_checkpoint **out,
                                              const void *data, size_t size,
                                              const tsd_open_options *options);

/** The current version of tsd_torchscript_options. */
#define TSD_TORCHSCRIPT_OPTIONS_VERSION 1
/** Options of tsd_model_open_torchscript and tsd_checkpoint_open_torchscript
 * (NULL there means the defaults). */
typedef struct tsd_torchscript_options {
  unsigned version; /**< TSD_TORCHSCRIPT_OPTIONS_VERSION */
  /** tsd_model_open_torchscript: the device the module is loaded on
   * ("cpu", "cuda:0", ...); NULL means "cpu". tsd_checkpoint_open_torchscript
   * always reads to CPU memory: there it must be NULL or "cpu"
   * (TSD_ERR_INVALID_ARG otherwise). */
  const char *device;
  /** The model's or checkpoint's allocator (copied; NULL: malloc) for
   * everything tsd allocates for it: its tables, and for a checkpoint the
   * copied tensors. What LibTorch allocates for the module is not covered
   * (see tsd_allocator). */
  const tsd_allocator *allocator;
} tsd_torchscript_options;
/** Initializer of a tsd_torchscript_options with the defaults. */
#define TSD_TORCHSCRIPT_OPTIONS_INIT {TSD_TORCHSCRIPT_OPTIONS_VERSION, NULL, NULL}

/** In libtsd_torch (see tsd_has_torch). Opens a TorchScript archive
 * (torch.jit.save output, or a C++ program's
 * `torch::save(module, path)`) as a checkpoint, through LibTorch: its dict
 * is what Python's `torch.jit.load(path).state_dict()` holds — every
 * module's parameters, then buffers (persistent or not: TorchScript keeps no
 * persistent flag), then its children, with a `_metadata` version of 1 for
 * every module. The tensors are copied to memory (CPU) and the module is
 * released before this returns. TorchScript archives are code: open only
 * files you trust. `options` may be NULL (defaults). The errors of
 * tsd_model_open_torchscript. */
TSD_API tsd_status tsd_checkpoint_open_torchscript(
    tsd_checkpoint **out, const char *path,
    const tsd_torchscript_options *options);

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
   * the key and the class. A pickled nn.Module's state dict is rebuilt from
   * its `_parameters`, `_buffers` and `_modules`; what its class's own code
   * adds (a get_extra_state's `_extra_state` key, a state_dict or
   * _save_to_state_dict override) is not in the pickle and cannot be
   * detected: it is absent. */
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
TSD_API tsd_status tsd_checkpoint_entry(tsd_entry *out,
                                        const tsd_checkpoint *ckpt,
                                        size_t index);
/** Index of `key` in the current dict: TSD_OK and *out_index, or
 * TSD_ERR_NOT_FOUND. */
TSD_API tsd_status tsd_checkpoint_find(size_t *out_index,
                                       const tsd_checkpoint *ckpt,
                                       const char *key);

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
TSD_API tsd_status tsd_checkpoint_select_auto(const char **out_key,
                                              tsd_checkpoint *ckpt);

/** Removes `key` from the current dict, like Python's `sd.pop(key)`.
 * TSD_ERR_NOT_FOUND if absent. Invalidates borrowed entries. */
TSD_API tsd_status tsd_checkpoint_pop(tsd_checkpoint *ckpt, const char *key);

/** Copies the tensor at `index` of the current dict into `dst` as a
 * C-contiguous array of `dtype`, converting as Tensor.copy_ does.
 * `dst_bytes` must be at least numel * tsd_dtype_size(dtype)
 * (TSD_ERR_BUFFER otherwise). TSD_ERR_TYPE if the entry is not a tensor. */
TSD_API tsd_status tsd_checkpoint_read(void *dst, size_t dst_bytes,
                                       const tsd_checkpoint *ckpt,
                                       size_t index, tsd_dtype dtype);

/* Two kinds of metadata, one prefix each: tsd_checkpoint_module_version
 * and tsd_checkpoint_metadata_* are a torch.save dict's `_metadata` (module
 * versions); tsd_checkpoint_file_metadata* is a file's own metadata (a
 * safetensors `__metadata__`, a sharded index's "metadata"). */

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
TSD_API tsd_status tsd_checkpoint_file_metadata(const char **out_key,
                                                const char **out_value,
                                                const tsd_checkpoint *ckpt,
                                                size_t index);
/** The file metadata value of `key` (borrowed), or NULL. */
TSD_API const char *tsd_checkpoint_file_metadata_string(
    const tsd_checkpoint *ckpt, const char *key);

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

/** In libtsd_torch (see tsd_has_torch). Opens a TorchScript archive
 * (torch.jit.save output) as a model on options->device ("cpu",
 * "cuda:0", ...); `options` may be NULL (on "cpu", malloc). TorchScript
 * archives are code: open only files you trust. TSD_ERR_TORCH for
 * LibTorch's own failures (message kept); TSD_ERR_UNSUPPORTED when
 * libtsd_torch and libtsd come from different builds; TSD_ERR_INVALID_ARG
 * for an unknown options->version or an allocator missing one of its
 * functions. C++ programs get the loaded torch::jit::Module, or a model
 * over a module they hold, with shim/tsd_torch.hpp. */
TSD_API tsd_status tsd_model_open_torchscript(
    tsd_model **out, const char *path, const tsd_torchscript_options *options);

/** A TorchScript archive's module tree as a read-only model, without
 * LibTorch and without running anything of the archive (every build): the
 * modules with their class names, the parameters (None ones included) and
 * buffers with their dtypes and shapes, as tsd_model_open_torchscript sees
 * them, read as tsd_checkpoint_open reads the archive (see there).
 * tsd_model_read reads the archive's values; a tsd_load into it works as a
 * dry run (what `tsd diff` does) and otherwise fails with
 * TSD_ERR_UNSUPPORTED before writing anything; tsd_model_save is
 * TSD_ERR_UNSUPPORTED. `options` (NULL: the defaults) are passed to the
 * tsd_checkpoint_open that reads the archive (limits, flags), and its
 * allocator is also the model's. TSD_ERR_FORMAT for a file that is not a
 * TorchScript archive; otherwise the errors of tsd_checkpoint_open. */
TSD_API tsd_status tsd_model_open_torchscript_state(
    tsd_model **out, const char *path, const tsd_open_options *options);

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
 * (pass -1 for PyTorch's default for that type: 2 for norm layers, else 1).
 * Declaring a module again changes its type (when type_name is not NULL)
 * and its version (when version >= 0). Works on every model kind (a
 * TorchScript model's modules are declared at open; this overrides).
 * Errors: TSD_ERR_INVALID_ARG (NULL model or name; an empty dotted
 * component, "a..b"; a path through a tensor, "fc.weight.x"; a version
 * < -1), TSD_ERR_NOMEM (the model is unchanged, but modules created on
 * the path before the failure stay: they hold nothing and are harmless). */
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
  /** C-owned models: the caller's pointer, or the read-only view a
   * TSD_LOAD_BIND load bound the tensor to (tsd_model_tensor_borrowed),
   * NULL for an unbacked tensor not bound; TorchScript: NULL */
  void *data;
} tsd_tensor_info;

/** Number of tensors of the model (every role, None parameters too). */
TSD_API size_t tsd_model_tensor_count(const tsd_model *model);
/** Fills *out with tensor `index` (state_dict order). TSD_ERR_NOT_FOUND if
 * index >= tsd_model_tensor_count. */
TSD_API tsd_status tsd_model_tensor(tsd_tensor_info *out,
                                    const tsd_model *model, size_t index);

/** Copies model tensor `index` (state_dict order; tsd_model_find gives it
 * for a name) into `dst` as C-contiguous `dtype`, converting as
 * Tensor.copy_ does. `dst_bytes` must be at least numel *
 * tsd_dtype_size(dtype). Errors: TSD_ERR_INVALID_ARG (NULL model, an
 * invalid dtype, NULL dst for a non-empty tensor), TSD_ERR_NOT_FOUND (index
 * >= tsd_model_tensor_count), TSD_ERR_TYPE (a parameter registered as
 * None: it has no data), TSD_ERR_BUFFER (dst_bytes too small; the message
 * names the tensor, the bytes needed and the dtype), TSD_ERR_NOMEM; for a
 * model whose tensors live elsewhere: TSD_ERR_TORCH (TorchScript, LibTorch's
 * message kept), or the checkpoint's TSD_ERR_IO / TSD_ERR_FORMAT (a model
 * over a checkpoint or a TorchScript archive read without LibTorch). */
TSD_API tsd_status tsd_model_read(void *dst, size_t dst_bytes,
                                  const tsd_model *model, size_t index,
                                  tsd_dtype dtype);

/** Progress of a load's copy phase (tsd_load_options.progress) or of a
 * save (tsd_save_options.progress). For a load `done` and `total` count
 * checkpoint tensor bytes (numel * checkpoint itemsize) of the tensors
 * being copied. Return 0 to go on, non-zero to cancel. */
typedef int (*tsd_progress_fn)(void *user, uint64_t done, uint64_t total);

/** What tsd_model_save writes. */
typedef enum tsd_save_format {
  /** a safetensors file for a path ending in ".safetensors", else the
   * model's own format (tsd_model_save's rule) */
  TSD_SAVE_AUTO = 0,
  /** a C-owned model: a torch.save .pth; a TorchScript model: its archive */
  TSD_SAVE_NATIVE = 1,
  TSD_SAVE_SAFETENSORS = 2 /**< a safetensors file */
} tsd_save_format;

/** The current version of tsd_save_options (2 added `progress`; a version
 * 1 struct is still accepted, a version above the current one is
 * TSD_ERR_INVALID_ARG). */
#define TSD_SAVE_OPTIONS_VERSION 2
/** Options of tsd_model_save (NULL there means the defaults). */
typedef struct tsd_save_options {
  unsigned version;       /**< TSD_SAVE_OPTIONS_VERSION */
  tsd_save_format format; /**< TSD_SAVE_AUTO */
  /** -1: write to the path. >= 0: write to this descriptor instead (e.g.
   * STDOUT_FILENO for a command's `-o -`): written in order from its
   * current position, never closed; a failure leaves what was written.
   * On Windows a C runtime descriptor (_fileno, _open_osfhandle); its
   * HANDLE is written directly (binary, whatever the descriptor's mode). */
  int fd;
  /** Called (on the calling thread) with the full name of a named
   * temporary when one exists next to the output (the file system has no
   * O_TMPFILE, or for the instant between linking and renaming), and with
   * NULL once it is gone. A host that removes it in its own SIGINT/SIGTERM
   * handler keeps a copy of the name (the string is borrowed for the call).
   * NULL: not called. */
  void (*temp_file)(void *user, const char *temp_path);
  void *user; /**< passed to temp_file */
  /** Version 2. Called on the calling thread as the output grows: `done`
   * bytes written of about `total` (the tensors' bytes; headers make done
   * reach total a little early, it never exceeds it), at most once per
   * write of up to a few MiB. A nonzero return stops the save:
   * TSD_ERR_CANCELED, the old file left as it was. NULL: not called. */
  tsd_progress_fn progress;
  void *progress_user; /**< passed to progress as `user` */
} tsd_save_options;
/** Initializer of a tsd_save_options with the defaults. */
#define TSD_SAVE_OPTIONS_INIT                                                  \
  {TSD_SAVE_OPTIONS_VERSION, TSD_SAVE_AUTO, -1, NULL, NULL, NULL, NULL}

/** Saves the model (`options` NULL: the defaults, TSD_SAVE_OPTIONS_INIT):
 * a C-owned model as a torch.save-compatible .pth (an
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
 *    itself.) To update the target, pass the target's path;
 *  - on Windows `path` is UTF-8; the file is always a named ".tsd-XXXXXX"
 *    (reported through temp_file), flushed, then put in place with
 *    ReplaceFileW over an existing file (which keeps its attributes and
 *    ACL) or MoveFileExW; a directory at `path` is refused.
 * Tensors that are not in memory (tsd_model_from_checkpoint, TorchScript
 * models) are written in windows of a few MiB, never held whole.
 * A C-owned model's extra state is not written (tsd cannot call
 * get_extra_state; see tsd_model_set_extra_state).
 * Errors: TSD_ERR_INVALID_ARG (NULL model or path, an empty path, a path
 * that exists and is not a regular file; for safetensors a tensor named
 * "__metadata__" or a name that is not UTF-8), TSD_ERR_IO (cannot create,
 * write, fsync or rename: a full disk, no permission; the old file is
 * intact), TSD_ERR_UNSUPPORTED (a model kind that cannot be saved,
 * tsd_model_open_torchscript_state's; a dtype safetensors has no name for),
 * TSD_ERR_LIMIT (tensors beyond 2^64 bytes), TSD_ERR_NOMEM, TSD_ERR_TORCH
 * (LibTorch failed to serialize a TorchScript model), and a source
 * checkpoint's TSD_ERR_IO / TSD_ERR_FORMAT while streaming its tensors
 * (tsd_model_from_checkpoint). `path` may be NULL when options->fd >= 0
 * (it then only names the output in messages and, with TSD_SAVE_AUTO,
 * chooses the format by its extension). */
TSD_API tsd_status tsd_model_save(const tsd_model *model, const char *path,
                                  const tsd_save_options *options);

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


/** How a load delivers the checkpoint's bytes (tsd_load_options.mode). The
 * rules of each mode are in "Mapped views, binding, device copies" below. */
typedef enum tsd_load_mode {
  /** Copy into the model's memory (C-owned: the caller's buffers;
   * TorchScript: its tensors). */
  TSD_LOAD_COPY = 0,
  /** C-owned models: point each model tensor at its mapped view in the
   * checkpoint instead of copying; copy where a view is impossible. */
  TSD_LOAD_BIND = 1,
  /** Hand the converted bytes of each model tensor, in chunks, to
   * tsd_load_options.device_copy; the model's memory is never written. */
  TSD_LOAD_DEVICE = 2
} tsd_load_mode;

/** One chunk of a TSD_LOAD_DEVICE load: bytes [offset, offset + len) of a
 * model tensor's value, C-contiguous, in the model tensor's dtype. All
 * pointers are borrowed for the duration of the call. */
typedef struct tsd_device_chunk {
  size_t tensor;         /**< the model tensor's index (tsd_model_tensor) */
  const char *name;      /**< its full name */
  tsd_dtype dtype;       /**< its dtype: the type of the bytes */
  uint64_t tensor_bytes; /**< numel * tsd_dtype_size(dtype) */
  uint64_t offset;       /**< byte offset of `data` in the tensor */
  const void *data;      /**< the bytes, inside the caller's staging buffer */
  size_t len;            /**< bytes; whole elements, at most one part of
                            the staging buffer (a third or a half, see
                            TSD_LOAD_DEVICE's rules) */
} tsd_device_chunk;

/** The device-copy callback: copy the chunk to the device (or start an
 * asynchronous copy, see TSD_LOAD_DEVICE's rules) and return 0, or return
 * non-zero to fail the load (TSD_ERR_CALLBACK). */
typedef int (*tsd_device_copy_fn)(void *user, const tsd_device_chunk *chunk);

/** The current version of tsd_load_options. Older callers keep working:
 * version 1 structs (the first four fields) are read up to `rules`, version
 * 2 up to `dry_run`; `threads` is read from version 3, `mode` and the
 * device hook from version 4. */
#define TSD_LOAD_OPTIONS_VERSION 4
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
   * the model is unchanged; at a later call, the tensors copied so far are
   * loaded and the others unchanged (tensors are copied in the order their
   * bytes lie in the checkpoint's files, which for torch.save zip files is
   * not state_dict order: records are sorted by storage key as strings;
   * tensors in memory in state_dict order); the return of
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
   * least 4 MiB (1 MiB when converting dtypes) whose bytes are in the page
   * cache — both cores of a small machine copy at once; a TSD_LOAD_DEVICE load with a staging buffer of
   * at least 3 * 64 KiB reads the next chunk on a worker thread while the
   * callback runs (one thread for the whole load, started before the first
   * chunk and joined before tsd_load returns; it never calls the
   * callbacks). 1: the calling thread only (for hosts that
   * own every thread). 2 or more: as 0. Negative: TSD_ERR_INVALID_ARG. */
  int threads;

  /* ---- version 4 (see "Mapped views, binding, device copies") ---- */

  /** Where the bytes go: TSD_LOAD_COPY (default), TSD_LOAD_BIND or
   * TSD_LOAD_DEVICE. */
  tsd_load_mode mode;
  /** TSD_LOAD_DEVICE: called with each chunk of converted bytes. */
  tsd_device_copy_fn device_copy;
  void *device_user; /**< passed to device_copy as `user` */
  /** TSD_LOAD_DEVICE: the caller's staging buffer (pinned memory for a
   * GPU), used as three parts or two halves (TSD_LOAD_DEVICE's rules). */
  void *staging;
  size_t staging_bytes; /**< size of staging */
} tsd_load_options;
/** Initializer of a tsd_load_options with the defaults. */
#define TSD_LOAD_OPTIONS_INIT                                             \
  {TSD_LOAD_OPTIONS_VERSION, 1, 0, TSD_RULES_TORCH_1_13, NULL, 0, NULL, 0, \
   NULL, NULL, NULL, 0, 0, TSD_LOAD_COPY, NULL, NULL, NULL, 0}

/** The result of a load (opaque): what PyTorch's load_state_dict returned
 * or raised. From tsd_load, released by tsd_report_free. A report owns
 * copies of everything it holds (keys, messages, shapes, the class name):
 * it stays valid after its model and its checkpoint are freed, and may be
 * kept while they are modified or loaded again. It allocates with the
 * model's allocator (tsd_model_new_ex), whose functions and `user` must
 * outlive the report. Strings and mismatches borrowed from it live until
 * tsd_report_free. */
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
 * written. Two more with options->mode: TSD_ERR_CALLBACK (a TSD_LOAD_DEVICE
 * callback failed; *out is the report, naming the tensor in
 * TSD_LIST_DEVICE_FAILED; the model is unchanged) and TSD_ERR_UNSUPPORTED
 * (TSD_LOAD_BIND into a model that is not C-owned, or a tensor without
 * memory, tsd_model_add_tensor_unbacked, that this load would have to
 * write; *out NULL, the model unchanged). */
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
  TSD_LIST_MATCHED = 5,    /**< keys whose values are (or, with dry_run,
                              would be) copied, model order; not in the
                              JSON */
  /* The next four are filled by TSD_LOAD_BIND and TSD_LOAD_DEVICE loads
   * only (empty otherwise), model order, not in the JSON. */
  TSD_LIST_BOUND = 6,      /**< TSD_LOAD_BIND: keys whose model tensor now
                              points into the checkpoint's map */
  TSD_LIST_COPIED = 7,     /**< TSD_LOAD_BIND: matched keys copied into the
                              caller's memory instead (a view was
                              impossible) */
  TSD_LIST_COPY_REASONS = 8, /**< TSD_LOAD_BIND: why the i-th key of
                              TSD_LIST_COPIED was copied ("float16 in the
                              checkpoint, float32 in the model", ...) */
  TSD_LIST_DEVICE_FAILED = 9 /**< TSD_LOAD_DEVICE: the key whose chunk the
                              callback refused (at most one) */
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
/** For TSD_LIST_MISMATCHED and TSD_LIST_POPPED: entry `index` with both
 * shapes, borrowed from the report. Errors: TSD_ERR_INVALID_ARG (NULL
 * report or out; another list, whose items have no shapes),
 * TSD_ERR_NOT_FOUND (index >= tsd_report_count of that list). */
TSD_API tsd_status tsd_report_mismatch(tsd_mismatch *out,
                                       const tsd_report *report,
                                       tsd_list list, size_t index);
/** Exactly what PyTorch prints: the RuntimeError message when not ok,
 * otherwise the `_IncompatibleKeys(...)` / `<All keys matched
 * successfully>` text. Borrowed. */
TSD_API const char *tsd_report_message(const tsd_report *report);
/** The report as one JSON object (the `tsd load --json` format). Borrowed. */
TSD_API const char *tsd_report_json(const tsd_report *report);

/* ------------------------------------------------------------------------ */
/* Writing: options, outputs bounded by inputs                              */
/* ------------------------------------------------------------------------ */


/** The bytes the tensors of the checkpoint's current dict take when
 * written or held in memory (the sum of numel * itemsize), into *out_bytes
 * (may be NULL). TSD_ERR_LIMIT when they exceed the checkpoint's bound
 * (tsd_limits.max_output_ratio): the message names the key that crosses
 * it, the sizes, and the limit to raise. Non-tensor entries count 0. */
TSD_API tsd_status tsd_checkpoint_output_bytes(uint64_t *out_bytes,
                                               const tsd_checkpoint *ckpt);

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

/* ------------------------------------------------------------------------ */
/* Mapped views, binding, device copies, ranged reads                        */
/* ------------------------------------------------------------------------ */

/* Four ways to get a checkpoint's bytes besides tsd_checkpoint_read and a
 * copy load. Their rules, in the manner of the conventions at the top:
 *
 *  - Maps (TSD_OPEN_MAP). tsd_checkpoint_open maps the file (and each shard
 *    of a sharded checkpoint) whole, read-only and shared, and unmaps it in
 *    tsd_checkpoint_free. Nothing is read through the map until a view is
 *    used: mapping costs no memory and no I/O, and pages are faulted in
 *    (and counted in the process's resident memory) only as they are
 *    touched; several processes mapping one file share its page-cache
 *    pages. Header parsing and copy loads still read with pread. The file
 *    must not be truncated or rewritten in place while it is mapped: a
 *    truncated file makes a touch of a lost page raise SIGBUS in the
 *    process (tsd installs no signal handlers and cannot turn it into an
 *    error), and bytes changed in place show through every view. tsd's own
 *    writers replace files by rename, which keeps the mapped bytes intact.
 *    A checkpoint opened from memory needs no flag: its views point into
 *    the caller's bytes.
 *  - Views (tsd_checkpoint_view). A view is a `const void *` to element 0
 *    of a tensor where its bytes lie, with dtype, shape and strides; valid
 *    until tsd_checkpoint_free (unlike tsd_entry pointers, tsd_checkpoint_
 *    select and tsd_checkpoint_pop do not invalidate it). The memory is
 *    read-only: writing through a view faults (SIGSEGV). Any number of
 *    threads may read views at once, also while other threads read or load
 *    from the checkpoint. A tensor can be viewed when its bytes are in a
 *    mapped file, in the memory given to tsd_checkpoint_open_memory or in
 *    memory the checkpoint holds (tsd_checkpoint_open_torchscript), stored
 *    little-endian on a little-endian host, with element 0 aligned to its
 *    element size (at most 8): safetensors files (whose writers align every
 *    tensor), torch.save zip files (records 64-byte aligned), legacy files
 *    when their storages happen to be aligned. Strided and expanded tensors
 *    are views too (the strides say so); the binding below takes only
 *    C-contiguous ones.
 *  - Binding (TSD_LOAD_BIND, C-owned models). The load's semantics, report
 *    and messages are those of a copy load; what changes is the last step:
 *    each matched tensor whose checkpoint tensor can be viewed, has the
 *    model tensor's dtype, is C-contiguous and is not taken by the 0-dim
 *    rule (element 0 of a 1-dim tensor) nor made up (the num_batches_tracked
 *    the _NormBase rule inserts) is *bound*: its data pointer
 *    (tsd_tensor_info.data) becomes the view, read-only, and the caller's
 *    memory is left untouched. The others are copied into the caller's
 *    memory as by a copy load. TSD_LIST_BOUND, TSD_LIST_COPIED and
 *    TSD_LIST_COPY_REASONS say which and why. Atomic: everything is checked
 *    first (a tensor that must be copied but has no memory of its own,
 *    tsd_model_add_tensor_unbacked, fails the load with TSD_ERR_UNSUPPORTED
 *    naming it, before anything changes), the copies are done, and only
 *    when the load succeeds are the bound pointers set. A bound model
 *    *borrows* from the checkpoint (tsd_model_tensor_borrowed,
 *    tsd_model_borrow_count): the checkpoint must outlive every use of the
 *    bound tensors (tsd cannot detect a checkpoint freed too early; the
 *    pointers then dangle). A later copy load into a bound tensor writes
 *    the caller's memory and unbinds it; a later bind rebinds. Threads: a
 *    bound model is read like any model; binding writes only the model.
 *  - Device copies (TSD_LOAD_DEVICE, any model kind). After the same checks
 *    as a copy load, each matched model tensor's value, converted to the
 *    model tensor's dtype (the 0-dim rule and num_batches_tracked
 *    included), is handed to device_copy in chunks, chunks of one tensor
 *    in order of offset, covering it exactly once (an empty tensor has no
 *    chunk), tensors in the order a copy load reads them: the order their
 *    bytes lie in the checkpoint's files, which is not state_dict order
 *    (see progress below; tsd_device_chunk.tensor says which model tensor
 *    a chunk belongs to). Reading in file order is what keeps a cold load
 *    (file not in the page cache) near the speed of reading the file once. The staging buffer is cut into
 *    parts: with staging_bytes >= 3 * 64 KiB and threads != 1, three parts
 *    of P = staging_bytes / 3 rounded down to a multiple of 64 bytes
 *    (chunk k at staging + (k % 3) * P); while the callback for chunk k
 *    runs, a thread of tsd reads chunk k + 1 into the next part, so reading
 *    overlaps a synchronous callback's copy. Otherwise two halves of
 *    H = staging_bytes / 2 rounded down to a multiple of 8 bytes (chunk k
 *    at staging + (k % 2) * H), chunk k + 1 read after the callback for
 *    chunk k returns. Either way the bytes of
 *    chunk k stay untouched until the callback for chunk k + 1 returns.
 *    So a callback that starts an asynchronous copy of chunk k
 *    (cudaMemcpyAsync from pinned staging) must, before it returns, wait
 *    for the copy of chunk k - 1 it started earlier; after tsd_load returns
 *    the caller waits for the last one (samples/cuda/device_copy.c). staging
 *    must hold two such halves of at least one element of the largest
 *    dtype loaded: at least 16 bytes, 32 for complex128
 *    (TSD_ERR_INVALID_ARG). Any alignment of staging works; 64 bytes (a
 *    page, as pinned allocations are) is the fast case. The callback runs on the calling thread, may
 *    call any tsd function that does not modify the model or checkpoint
 *    being loaded, and fails the load by returning non-zero: tsd_load then
 *    returns TSD_ERR_CALLBACK, the report (*out, to free) lists the tensor
 *    in TSD_LIST_DEVICE_FAILED and tsd_last_error() names the tensor, the
 *    offset and the value returned. The model's memory is never written
 *    (tensors may be unbacked), in success and in failure; what reached the
 *    device before a failure is the caller's to discard. Progress and
 *    cancellation work as in a copy load, per tensor. The hook costs the
 *    host one copy (file to staging); a callback that copies with the CPU
 *    adds a second. An upload that takes any host pointer (glBufferSubData,
 *    a memcpy into a mapped Vulkan buffer) can skip staging for tensors
 *    stored in the model's dtype: bind (TSD_LOAD_BIND on a TSD_OPEN_MAP
 *    checkpoint) and upload from the bound pointers, one copy in all
 *    (bench/results/views.md, "bind-upload").
 *  - Ranged reads (tsd_checkpoint_read_range, tsd_model_read_range): any
 *    range of elements, C order, converted; the memory used is at most a
 *    read buffer of the range, whatever the tensor's size. */

/** tsd_open_options.flags: map the file (see the rules above). */
#define TSD_OPEN_MAP 1u

/** A tensor where its bytes lie (tsd_checkpoint_view). Borrowed from the
 * checkpoint: valid until tsd_checkpoint_free. */
typedef struct tsd_tensor_view {
  const void *data;       /**< element 0 (read-only memory) */
  tsd_dtype dtype;        /**< element type */
  size_t ndim;            /**< number of dimensions */
  const int64_t *shape;   /**< ndim elements */
  const int64_t *strides; /**< ndim elements, in elements (not bytes) */
  int64_t numel;          /**< number of elements */
  int contiguous;         /**< C-contiguous: numel elements from data */
} tsd_tensor_view;

/** A view of the tensor at `index` of the current dict (see the rules
 * above). TSD_ERR_UNSUPPORTED when it cannot be viewed, with the reason in
 * tsd_last_error() (the file is not mapped, it is stored big-endian, it is
 * not aligned ...); TSD_ERR_TYPE for an entry that is not a tensor;
 * TSD_ERR_NOT_FOUND for a bad index. On failure *out is zeroed. */
TSD_API tsd_status tsd_checkpoint_view(tsd_tensor_view *out,
                                       const tsd_checkpoint *ckpt,
                                       size_t index);

/** Elements [first, first + count) of the tensor at `index` of the current
 * dict, in C order, converted to `dtype` as tsd_checkpoint_read does, into
 * dst (at least count * tsd_dtype_size(dtype) bytes, else TSD_ERR_BUFFER).
 * A range outside the tensor is TSD_ERR_INVALID_ARG; TSD_ERR_TYPE for an
 * entry that is not a tensor. count 0 reads nothing. */
TSD_API tsd_status tsd_checkpoint_read_range(void *dst, size_t dst_bytes,
                                             const tsd_checkpoint *ckpt,
                                             size_t index, tsd_dtype dtype,
                                             uint64_t first, uint64_t count);

/** The same for model tensor `index` (state_dict order): its current value
 * (the caller's memory, a bound view, a TorchScript tensor, or a checkpoint
 * behind tsd_model_from_checkpoint). TSD_ERR_TYPE for a None parameter or
 * an unbacked tensor not bound; a TorchScript model reads the tensor whole
 * into a temporary first. */
TSD_API tsd_status tsd_model_read_range(void *dst, size_t dst_bytes,
                                        const tsd_model *model, size_t index,
                                        tsd_dtype dtype, uint64_t first,
                                        uint64_t count);

/** Adds a tensor with no memory of its own to a C-owned model (as
 * tsd_model_add_tensor, without `data`): for a TSD_LOAD_BIND load, which
 * points it at the checkpoint, or a TSD_LOAD_DEVICE load, which never
 * needs host memory. A copy load that would write into it fails before
 * anything is written (TSD_ERR_UNSUPPORTED naming it); tsd_model_read and
 * saving fail with TSD_ERR_TYPE until a load has bound it;
 * tsd_tensor_info.data is NULL until then. */
TSD_API tsd_status tsd_model_add_tensor_unbacked(tsd_model *model,
                                                 const char *name,
                                                 tsd_tensor_role role,
                                                 tsd_dtype dtype, size_t ndim,
                                                 const int64_t *shape);

/** The checkpoint whose map model tensor `index` (state_dict order) is
 * bound to, or NULL (in the caller's memory, or a bad index). */
TSD_API const tsd_checkpoint *tsd_model_tensor_borrowed(const tsd_model *model,
                                                        size_t index);

/** Number of the model's tensors bound to `ckpt` (to any checkpoint when
 * ckpt is NULL): while it is not 0, `ckpt` must not be freed. */
TSD_API size_t tsd_model_borrow_count(const tsd_model *model,
                                      const tsd_checkpoint *ckpt);
/* Extra state, model layouts, finding tensors                               */
/* ------------------------------------------------------------------------ */

/** PyTorch's `Module.set_extra_state(state)` for a module of a model: called
 * by tsd_load with the value of the key `key` (the module's prefix +
 * "_extra_state", as the model names it; borrowed for the call). The value
 * is entry `index` of `ckpt`'s current dict: tsd_checkpoint_entry(&entry,
 * ckpt, index) describes it (a tensor, an int, a str, a dict ...) and
 * tsd_checkpoint_read(dst, dst_bytes, ckpt, index, dtype) reads it when it
 * is a tensor. That
 * handle is read-only and stays valid as long as the checkpoint lives and
 * is not modified (tsd_checkpoint_select, tsd_checkpoint_pop), so the
 * callback may keep (ckpt, index) instead of copying the value. (The
 * entries of a nested dict or list are not reachable through it; the
 * entry's kind and length are.) Called on the thread that calls tsd_load.
 * Return TSD_OK, or an error status to stop the load (see
 * tsd_model_set_extra_state). */
typedef tsd_status (*tsd_extra_state_fn)(void *user, const char *key,
                                         const tsd_checkpoint *ckpt,
                                         size_t index);

/** Declares that the module at dotted path `module` ("" is the root;
 * created with its parents if needed, as by tsd_model_add_module) has
 * extra state: its class overrides `set_extra_state`. `set_fn` NULL
 * removes the declaration (a plain nn.Module again). The semantics are
 * PyTorch 1.13's Module._load_from_state_dict, for the key prefix +
 * "_extra_state":
 *  - declared, key present: the key is matched; set_fn(user, key, ckpt,
 *    index) is called once the load is known to succeed (never when it
 *    fails or with dry_run), in module pre-order, before any tensor is
 *    copied. PyTorch calls set_extra_state while it walks the modules,
 *    even when the load then raises; tsd never changes a model whose load
 *    fails;
 *  - declared, key absent: the key is missing (after the module's own
 *    missing tensors), an error only when strict;
 *  - not declared, key present: the key is unexpected (the first of the
 *    module's unexpected keys), an error only when strict.
 * The key is never auto-popped, is not in TSD_LIST_MATCHED (no tensor is
 * copied) and is not written by tsd_model_save (tsd cannot call a
 * get_extra_state: a saved file has no `_extra_state` keys).
 * A set_fn that returns an error stops the load: tsd_load returns that
 * status (its message names the key), *out is NULL, no tensor of the model
 * is changed, the extra state of the modules before it is set.
 * TorchScript models (tsd_model_open_torchscript) declare every module
 * whose class has a `set_extra_state` method (exported with
 * `torch.jit.export`) at open;
 * the shim converts the value (None, bool, int, float, str, tensor, and
 * lists, tuples and str- or int-keyed dicts of them) to the method's
 * argument type and calls it; a value it cannot convert (an inert object,
 * bytes, a type the signature does not take) fails the load with
 * TSD_ERR_UNSUPPORTED naming the key. This function may replace that
 * declaration. tsd_model_open_torchscript_state declares the modules whose
 * class code defines `set_extra_state` (read as text, never run): a dry
 * run (`tsd diff`) matches the key as PyTorch would; a real load into that
 * read-only model fails with TSD_ERR_UNSUPPORTED. Errors: TSD_ERR_INVALID_ARG (NULL model or module, a bad
 * module path, a path through a tensor, a model that cannot be loaded
 * into), TSD_ERR_NOMEM. */
TSD_API tsd_status tsd_model_set_extra_state(tsd_model *model,
                                             const char *module,
                                             tsd_extra_state_fn set_fn,
                                             void *user);

/** Finds the model tensor named `name` (full dotted name, as in
 * tsd_tensor_info.name): TSD_OK and *out_index, its index in state_dict
 * order (for tsd_model_tensor / tsd_model_read); TSD_ERR_NOT_FOUND (naming
 * it) when the model has none; TSD_ERR_INVALID_ARG for a NULL argument;
 * TSD_ERR_NOMEM (the order is computed on first use after a change).
 * A hash lookup, then one pass over the model's order (no allocation once
 * the order is cached). */
TSD_API tsd_status tsd_model_find(size_t *out_index, const tsd_model *model,
                                  const char *name);

/** Gives the memory of one tensor of a model built from a layout
 * (tsd_model_from_layout): called once per tensor, in the layout's order,
 * with its description (`info->data` is NULL) and its size in bytes
 * (numel * tsd_dtype_size(dtype), C-contiguous). Return memory of at least
 * `nbytes` bytes, aligned for the dtype, that stays valid while the model is
 * used (loads write into it; tsd never frees it), or NULL to fail the build
 * (TSD_ERR_NOMEM naming the tensor). Not called for a parameter registered
 * as None; for an empty tensor (nbytes 0) NULL is fine. */
typedef void *(*tsd_layout_memory_fn)(void *user, const tsd_tensor_info *info,
                                      size_t nbytes);

/** The current version of tsd_layout_options. */
#define TSD_LAYOUT_OPTIONS_VERSION 1
/** Options of tsd_model_from_layout (required: the tensor memory). */
typedef struct tsd_layout_options {
  unsigned version; /**< TSD_LAYOUT_OPTIONS_VERSION */
  /** The model's allocator (copied; NULL: malloc), also used to parse the
   * file. */
  const tsd_allocator *allocator;
  /** The tensors' memory, one call per tensor; or NULL to use `arena`. */
  tsd_layout_memory_fn memory;
  void *memory_user; /**< passed to memory */
  /** One block for every tensor, when `memory` is NULL: tensors are
   * placed in the layout's order, each at an offset that is a multiple of
   * 64 (so as aligned as the block is, up to 64). tsd_layout_arena_bytes
   * gives the size needed; a smaller block is TSD_ERR_BUFFER. */
  void *arena;
  size_t arena_bytes; /**< size of arena */
  /** Given to every module the layout marks `"extra_state": true`
   * (tsd_model_set_extra_state). NULL with such a module in the layout is
   * TSD_ERR_INVALID_ARG: the caller decides what becomes of the value. */
  tsd_extra_state_fn extra_state;
  void *extra_state_user; /**< passed to extra_state */
  /** The model's class name; NULL: the layout's "class_name". */
  const char *class_name;
} tsd_layout_options;
/** Initializer of a tsd_layout_options (memory still to be set). */
#define TSD_LAYOUT_OPTIONS_INIT \
  {TSD_LAYOUT_OPTIONS_VERSION, NULL, NULL, NULL, NULL, 0, NULL, NULL, NULL}

/** Builds a C-owned model from a layout file: the JSON that
 * scripts/tsd_layout.py writes from a Python nn.Module (run with your own
 * torch; the format is in docs/layout.md): the class name, every module in
 * pre-order with its type name, its `_metadata` version and whether it has
 * extra state, and every tensor with its role (parameter, buffer,
 * non-persistent buffer, parameter registered as None), dtype and shape.
 * The result is what tsd_model_new, tsd_model_add_module,
 * tsd_model_set_extra_state and tsd_model_add_tensor would build: tensor
 * memory comes from the caller (options->memory or options->arena) and is
 * not written (its values are the caller's). The file must be a regular
 * file of at most 64 MiB; it is parsed with the strict JSON parser of the
 * safetensors headers (16 bytes of memory per byte + 1 MiB at most).
 * Errors: TSD_ERR_INVALID_ARG (NULL out, path or options; no memory given;
 * extra state without a callback), TSD_ERR_IO (cannot open or read),
 * TSD_ERR_TYPE (valid JSON that is not a layout: no
 * `"format": "tsd.layout"`), TSD_ERR_FORMAT (a malformed layout: the
 * message names the tensor or module and the field), TSD_ERR_UNSUPPORTED
 * (a format_version above 1, a dtype tsd lacks), TSD_ERR_LIMIT (a file
 * over 64 MiB), TSD_ERR_BUFFER (arena too small), TSD_ERR_NOMEM. On
 * failure *out is NULL; memory handed out by options->memory before the
 * failure stays the caller's. */
TSD_API tsd_status tsd_model_from_layout(tsd_model **out, const char *path,
                                         const tsd_layout_options *options);

/** The bytes an arena for tsd_model_from_layout(path) needs (each tensor
 * at a 64-byte multiple, in the layout's order), into *out_bytes. Errors as
 * tsd_model_from_layout's. */
TSD_API tsd_status tsd_layout_arena_bytes(size_t *out_bytes, const char *path);

#ifdef __cplusplus
}
#endif

#endif /**< TSD_H */
