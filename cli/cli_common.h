/* cli_common.h — pieces the tsd subcommands share: key-remapping flags,
 * state-dict selection (explicit or automatic), the progress bar, JSON
 * output, and building a model (TorchScript or --model-spec). */
#ifndef TSD_CLI_COMMON_H
#define TSD_CLI_COMMON_H

#include <stdint.h>
#include <stdio.h>

#include "tsd.h"

#define CLI_MAX_RULES 256
#define CLI_MAX_SELECT 64
#define CLI_MAX_LIST 4096

/* --strip-prefix P (repeatable), --add-prefix P, --rename OLD=NEW
 * (repeatable). */
typedef struct cli_remap {
  const char *strip[CLI_MAX_RULES];
  size_t n_strip;
  tsd_rename renames[CLI_MAX_RULES];
  char *rename_from[CLI_MAX_RULES]; /* owned copies of OLD */
  size_t n_renames;
  const char *add;
} cli_remap;

#define CLI_REMAP_HELP                                                       \
  "  --strip-prefix P      remove the prefix P from the checkpoint keys\n"   \
  "                        that start with it (module. from DataParallel,\n" \
  "                        _orig_mod. from torch.compile), as PyTorch's\n"   \
  "                        consume_prefix_in_state_dict_if_present does;\n"  \
  "                        repeatable, applied in order\n"                   \
  "  --rename OLD=NEW      rename the key prefix OLD to NEW (repeatable;\n"  \
  "                        for each key the first matching rule applies,\n"  \
  "                        after the strips)\n"                              \
  "  --add-prefix P        put P in front of every key (last)\n"             \
  "                        Keys are reported as the model sees them. Two\n"  \
  "                        keys renamed to one name are an error.\n"

#define CLI_SELECT_HELP                                                      \
  "  --select KEY          use the state dict under KEY of a nested\n"       \
  "                        checkpoint (repeat to go deeper); --select auto\n" \
  "                        picks it by name. Without --select, the first\n"  \
  "                        of state_dict, model_state_dict, model, module,\n" \
  "                        net, network, params, state_dict_ema, model_ema\n" \
  "                        that is a dict of tensors or a pickled model is\n" \
  "                        used, even beside other tensors (said on\n"      \
  "                        stderr, and as \"selected\" in --json); with\n"   \
  "                        none, the dict itself if it holds a tensor\n"

/* If argv[*i] is a remap flag, consumes it (and its value) and returns 1;
 * 0 if it is not one; -1 after printing a usage error. */
int cli_remap_arg(cli_remap *r, int argc, char **argv, int *i);
void cli_remap_apply(const cli_remap *r, tsd_load_options *o);
void cli_remap_free(cli_remap *r);
/* The name a checkpoint key gets (strip, rename, add; order aside), into
 * out (cap bytes). */
void cli_remap_name(const cli_remap *r, const char *key, char *out,
                    size_t cap);

/* Applies --select KEY... (KEY "auto" = tsd_checkpoint_select_auto), or,
 * with no --select, the automatic selection (tsd_checkpoint_select_auto).
 * Writes the selected path ("state_dict", "a/b") into `path` ("" if none)
 * and says it on stderr when automatic. Returns -1 on success, else an exit
 * status after printing the error. */
int cli_select(tsd_checkpoint *ck, const char *const *selects, size_t n,
               char *path, size_t cap);

/* The progress bar: on stderr, only when stderr is a terminal and the
 * checkpoint file is larger than 64 MB. */
typedef struct cli_progress {
  int active;
  int last_pct;
} cli_progress;
void cli_progress_setup(cli_progress *p, tsd_load_options *o,
                        const char *ckpt_path);
void cli_progress_end(cli_progress *p);

/* Strings from files (keys, values, names) are never printed raw: they may
 * hold ESC sequences, newlines, NUL bytes or bytes that are not UTF-8.
 * Human-readable output uses tsd_escape's TSD_ESCAPE_TEXT (Python's repr
 * escaping: \x1b, \n, \\), except PyTorch's own message texts, which use
 * TSD_ESCAPE_MESSAGE (byte for byte PyTorch's for printable keys); --json
 * uses TSD_ESCAPE_JSON (always valid UTF-8). */
/* Prints s[0..n) escaped on f (nothing when f is NULL); returns the columns
 * (characters) it takes. */
size_t cli_text(FILE *f, const char *s, size_t n, tsd_escape_mode mode);
size_t cli_text_width(const char *s, size_t n);
/* Prints s[0..n) as TEXT, then spaces up to `width` columns. */
void cli_text_pad(FILE *f, const char *s, size_t n, size_t width);
/* Table columns of keys are at most this wide: a longer key overflows its
 * column instead of padding every row (a 1 MiB key would make a 1 GB
 * table). */
#define CLI_MAX_COLUMN 80
/* A JSON string: quotes around TSD_ESCAPE_JSON. */
void cli_json_str(FILE *f, const char *s, size_t n);
void cli_json_shape(FILE *f, size_t ndim, const int64_t *shape);
/* Prints tsd_report_message's text and a newline, keys escaped with
 * TSD_ESCAPE_MESSAGE: byte for byte PyTorch's text when every key is
 * printable. */
void cli_print_message(FILE *f, const tsd_report *r);
/* Prints a report's JSON object with `"selected": ...` appended (null when
 * path is ""), then a newline. */
void cli_print_report_json(const tsd_report *r, const char *path);

/* A model to load into: a TorchScript archive, or built from a state-dict
 * checkpoint (--model-spec): tensors with their values, modules from its
 * `_metadata`, a module holding num_batches_tracked declared BatchNorm2d. */
typedef struct cli_model_args {
  const char *model_path, *spec, *class_name, *device;
  const char *modules[CLI_MAX_LIST]; /* PREFIX=TYPE */
  size_t n_modules;
  const char *non_persistent[CLI_MAX_LIST];
  size_t n_non_persistent;
  const char *none_params[CLI_MAX_LIST]; /* --model-spec only */
  size_t n_none_params;
  /* MODEL.pt opened read-only without running it
   * (tsd_model_open_torchscript_state): for commands that copy nothing */
  int state_only;
} cli_model_args;

typedef struct cli_model {
  tsd_model *model;
  void **buffers;
  size_t n_buffers;
} cli_model;

/* Returns -1 on success, else an exit status (error printed). */
int cli_model_build(cli_model *m, const cli_model_args *a);
void cli_model_free(cli_model *m);

/* The current dict of `ck` as a model that saves as that dict (modules and
 * versions from `_metadata`, tensors read from `ck`, which must outlive it,
 * a window at a time: tsd_model_from_checkpoint), for tsd pop and tsd
 * convert. Non-tensor entries are refused with
 * "tsd CMD: entry 'k' is a <type>: HINT". Returns -1 on success, else an
 * exit status (error printed). */
int cli_dict_as_model(cli_model *m, const tsd_checkpoint *ck, const char *cmd,
                      const char *non_tensor_hint);

/* --torchscript-checkpoint: opening CHECKPOINT through LibTorch is never
 * tried on its own, because an untrusted .pth must never reach LibTorch's
 * unpickler; the user asks for it. */
#define CLI_TORCHSCRIPT_HELP                                                 \
  "  --torchscript-checkpoint\n"                                             \
  "                        CHECKPOINT is a TorchScript archive\n"            \
  "                        (torch.jit.save, or C++ torch::save(module)):\n"  \
  "                        read its state_dict() through LibTorch. Such an\n" \
  "                        archive is code: use it only on files you trust.\n" \
  "                        Needs a build with LibTorch\n"

/* Opens CHECKPOINT, with tsd_checkpoint_open_torchscript when `torchscript`
 * is set. A file refused for a TorchScript global gets a hint naming
 * --torchscript-checkpoint. Returns -1 on success, else an exit status
 * (error printed). */
int cli_open_checkpoint(tsd_checkpoint **out, const char *path,
                        int torchscript);

/* Prints one message line on f (a newline is added): formatted, then
 * escaped as a whole with TSD_ESCAPE_MESSAGE, so the file names, keys and
 * values it quotes cannot forge lines or drive the terminal (an escaped
 * message stays as it is). At most 8 KiB of it. */
#ifdef __MINGW32__ /* C99 formats (__USE_MINGW_ANSI_STDIO), not msvcrt's */
#define CLI_PRINTF_FORMAT gnu_printf
#else
#define CLI_PRINTF_FORMAT printf
#endif
void cli_msgf(FILE *f, const char *fmt, ...)
    __attribute__((format(CLI_PRINTF_FORMAT, 2, 3)));

/* An entry's key for cli_msgf's "%s": escaped whole into buf (printf's %s
 * would stop at a NUL byte the key holds); returns buf. */
const char *cli_key(char *buf, size_t cap, const tsd_entry *e);

/* Prints "tsd: WHAT: <last error> (STATUS)" and returns 2. */
int cli_fail(const char *what, tsd_status st);

/* ---- outputs (every command that writes a file) ---- */

/* --max-output-ratio N: tsd_limits.max_output_ratio for every checkpoint
 * the command opens (0 = the default; "inf" = no bound). */
#define CLI_OUTPUT_HELP                                                        \
  "  --max-output-ratio N  allow the tensors written or held in memory to\n"   \
  "                        take up to N x the input's size + 64 MiB\n"         \
  "                        (default 16; 'inf' for no bound). Views, shared\n"  \
  "                        storages and expanded tensors take few bytes in\n"  \
  "                        a file and their full size when written\n"
#define CLI_OUT_RULES_HELP                                                     \
  "OUT: '-' writes to stdout (not a terminal). A file is written whole or\n"   \
  "not at all: to an unnamed file in OUT's directory, fsync'ed, then\n"        \
  "renamed over OUT; a failure (a full disk) or Ctrl-C leaves OUT as it\n"     \
  "was and nothing else behind. An existing OUT keeps its permissions. OUT\n"  \
  "may not be an input (compared by device and inode: hard links and\n"        \
  "symlinks count), nor a directory, FIFO or device. A symlink OUT is\n"       \
  "replaced by the file; its target is not written (write to the target's\n"   \
  "path to update it).\n"
/* If argv[*i] is --max-output-ratio, consumes it and its value: 1; 0 if
 * not it; -1 after printing a usage error. */
int cli_output_arg(int argc, char **argv, int *i);
/* The open options carrying --max-output-ratio. */
const tsd_open_options *cli_open_options(void);
/* 1 if `out` is the same file as `in` (device and inode, symlinks
 * followed), printing "tsd CMD: OUT is IN..." ; 0 otherwise. */
int cli_same_file(const char *cmd, const char *out, const char *in);
/* Saves `model` to `out` ("-": stdout), removing a named temporary on
 * SIGINT/SIGTERM/SIGHUP. Returns -1 on success, else an exit status
 * (error printed). */
int cli_save(const tsd_model *model, const char *out);

#endif
