/* cli_common.h — pieces the tsd subcommands share: key-remapping flags,
 * state-dict selection (explicit or automatic), the progress bar, JSON
 * output, and building a model (TorchScript or --model-spec). */
#ifndef TSD_CLI_COMMON_H
#define TSD_CLI_COMMON_H

#include <stdint.h>
#include <stdio.h>

#include "cmd.h"
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

/* The options every command that reads a checkpoint shares: --select,
 * the remapping flags, --torchscript-checkpoint, --max-output-ratio,
 * --json, --quiet. */
typedef struct cli_common_args {
  cli_remap remap;
  const char *selects[CLI_MAX_SELECT];
  size_t n_select;
  int torchscript; /* --torchscript-checkpoint */
  int json;
} cli_common_args;

struct cli_command;
/* If `id` is one of the shared options, takes it (and `val`): 1; 0 if it
 * is not one; -1 after printing a usage error. */
int cli_common_opt(cli_common_args *c, const struct cli_command *cmd, int id,
                   const char *val);
void cli_common_free(cli_common_args *c);
int cli_remap_any(const cli_remap *r);
void cli_remap_apply(const cli_remap *r, tsd_load_options *o);
void cli_remap_free(cli_remap *r);
/* The name a checkpoint key gets (strip, rename, add; order aside), into
 * out (cap bytes). */
void cli_remap_name(const cli_remap *r, const char *key, char *out,
                    size_t cap);

/* Applies --select KEY... (KEY "auto" = tsd_checkpoint_select_auto), or,
 * with no --select, the automatic selection (tsd_checkpoint_select_auto).
 * Writes the selected path ("state_dict", "a/b") into `path` ("" if none)
 * and says it on stderr when automatic. A KEY not found names the closest
 * key ("did you mean"). Returns -1 on success, else an exit status after
 * printing the error. */
int cli_select(tsd_checkpoint *ck, const char *const *selects, size_t n,
               char *path, size_t cap);

/* "no key 'KEY' in FILE" for a key the current dict lacks, with a "did
 * you mean" hint naming the closest key; returns CLI_EXIT_USAGE. */
int cli_key_not_found(const tsd_checkpoint *ck, const char *path,
                      const char *what, const char *key);

/* The progress bar: on stderr, only when stderr is a terminal, not
 * --quiet, and the checkpoint file is larger than 64 MB. `verb` is
 * "loading", "writing"... */
typedef struct cli_progress {
  int active;
  int last_pct;
  const char *verb;
} cli_progress;
void cli_progress_setup(cli_progress *p, tsd_load_options *o,
                        const char *ckpt_path);
/* The same for a write (tsd_save_options.progress). */
void cli_progress_setup_save(cli_progress *p, tsd_save_options *o,
                             const char *in_path);
void cli_progress_end(cli_progress *p);

/* Hints after a load or dry run: shape mismatches suggest --auto-pop;
 * unexpected keys that all start with a prefix the model lacks suggest
 * --strip-prefix. `o` is the load's options. */
void cli_report_hints(const tsd_report *r, const tsd_model *m,
                      const tsd_load_options *o);


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
/* A JSON string, or null when s is NULL or "". */
void cli_json_str_or_null(FILE *f, const char *s);
void cli_json_shape(FILE *f, size_t ndim, const int64_t *shape);
/* "[5, 2]" */
void cli_shape_text(char *out, size_t cap, size_t ndim, const int64_t *shape);
/* Prints tsd_report_message's text and a newline, keys escaped with
 * TSD_ESCAPE_MESSAGE: byte for byte PyTorch's text when every key is
 * printable. */
void cli_print_message(FILE *f, const tsd_report *r);
/* Prints a report as one JSON object on f, then a newline: schema_version,
 * ok, class_name, matched_keys, missing_keys, unexpected_keys,
 * size_mismatches, popped_keys, popped, error_msgs, message, selected (null
 * when path is ""). The same object for tsd load and tsd diff. */
void cli_print_report_json(FILE *f, const tsd_report *r, const char *path);
/* The same object for tsd load --map, with two more members: "bound" (the
 * keys of TSD_LIST_BOUND) and "copied" ([{"key", "reason"}] from
 * TSD_LIST_COPIED and TSD_LIST_COPY_REASONS). */
void cli_print_report_json_bind(FILE *f, const tsd_report *r,
                                const char *path);

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
  /* CHECKPOINT, for the hint when MODEL and CHECKPOINT look swapped */
  const char *ckpt_path;
} cli_model_args;

/* The option loop every command shares (cmd.c): the next positional
 * argument (CLI_ARG, in p->value) or option id the command handles itself.
 * It takes -h/--help (*rc = CLI_EXIT_OK), usage errors (*rc =
 * CLI_EXIT_USAGE, printed) and the shared options (cli_common_opt into c;
 * with `ma`, the model options too, cli_model_opt into ma and opts), and
 * returns CLI_END when argv is done or *rc was set. A command's loop:
 *   for (int id; (id = cli_next_own(&p, &c, NULL, NULL, &rc)) != CLI_END;)
 *     if (id == CLI_ARG) ... else if (id == OPT_OUTPUT) ...            */
int cli_next_own(cli_parser *p, cli_common_args *c, cli_model_args *ma,
                 tsd_load_options *opts, int *rc);

typedef struct cli_model {
  tsd_model *model;
  void **buffers;
  size_t n_buffers;
} cli_model;

/* Returns -1 on success, else an exit status (error printed; a
 * checkpoint given as MODEL.pt, or MODEL.pt and CHECKPOINT swapped, said
 * as such). */
int cli_model_build(cli_model *m, const cli_model_args *a);
void cli_model_free(cli_model *m);

/* The model options and positionals of tsd load and tsd diff (cmd_load.c):
 * --model-spec, --class-name, --module...: 1 taken, 0 not a model option,
 * -1 usage error printed. */
int cli_model_opt(cli_model_args *m, tsd_load_options *o,
                  const struct cli_command *cmd, int id, const char *val);
const char *cli_model_positionals(cli_model_args *m,
                                  const struct cli_command *cmd,
                                  const char *const *pos, size_t n_pos);
int cli_model_open(cli_model *sm, cli_model_args *m, const char *ckpt);

/* The selected dict of `ck` as a model that saves as that dict (modules and
 * versions from `_metadata`, tensors read from `ck`, which must outlive it,
 * a window at a time: tsd_model_from_checkpoint), for tsd pop and tsd
 * convert. Non-tensor entries are refused with
 * "tsd CMD: entry 'k' is a <type>: HINT". Returns -1 on success, else an
 * exit status (error printed). */
int cli_dict_as_model(cli_model *m, const tsd_checkpoint *ck, const char *cmd,
                      const char *non_tensor_hint);
/* The same with the keys renamed by --strip-prefix / --rename /
 * --add-prefix (as tsd load renames them; `_metadata` module names too),
 * the tensors read into memory (bounded as --model-spec's). Two keys
 * renamed to one name are an error. */
int cli_dict_as_model_remapped(cli_model *m, const tsd_checkpoint *ck,
                               const cli_remap *r, const char *cmd,
                               const char *non_tensor_hint);

/* Options every command takes. */
#define CLI_COMMON_HELP                                                      \
  "  -q, --quiet           no status lines on stderr (errors, hints and\n"   \
  "                        the data stay)\n"                                 \
  "  -h, --help            this text (also: tsd help CMD)\n"                 \
  "Options may come anywhere; --opt=VALUE is --opt VALUE; -- ends the\n"     \
  "options. With --json, an error is one JSON object on stdout too.\n"

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
 * is set; "-" reads stdin (into memory; at most one input may be "-"). A
 * file refused for a TorchScript global gets a hint naming
 * --torchscript-checkpoint, a directory one naming its *.index.json.
 * Returns -1 on success, else an exit status (error printed). */
int cli_open_checkpoint(tsd_checkpoint **out, const char *path,
                        int torchscript);
/* Releases what reading stdin took (at exit). */
void cli_inputs_free(void);

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

/* Prints "tsd CMD: WHAT: <last error> (STATUS)" (cli_error) and returns
 * 2. */
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
/* --max-output-ratio VALUE: 1, or -1 after printing a usage error. */
int cli_output_ratio(const struct cli_command *cmd, const char *val);
/* The open options carrying --max-output-ratio. */
const tsd_open_options *cli_open_options(void);
/* Checkpoints opened from now on are mapped (TSD_OPEN_MAP; tsd load
 * --map). */
void cli_open_mapped(void);
/* 1 if `out` is the same file as `in` (device and inode, symlinks
 * followed), printing "tsd CMD: OUT is IN..." ; 0 otherwise. */
int cli_same_file(const char *out, const char *in);
/* Saves `model` to `out` ("-": stdout), removing a named temporary on
 * SIGINT/SIGTERM/SIGHUP. Returns -1 on success, else an exit status
 * (error printed). */
int cli_save(const tsd_model *model, const char *out);
/* cli_save with a progress bar for a write from `in_path` (NULL: none). */
int cli_save_progress(const tsd_model *model, const char *out,
                      const char *in_path);

/* ---- tsd pop / tsd convert: a dict written out ---- */

/* Writes the selected dict of `ck` (read from `in`) to `out`: renamed by
 * the remapping flags when any, with a progress bar, then the status line
 * "wrote OUT (N tensors, FORMAT)" after `what` (e.g. "popped 2 keys; ")
 * or, with --json, the result object (schema_version, ok, file, selected,
 * output, format, tensors, popped_keys when `popped` is not NULL). Returns
 * the exit status. */
int cli_write_dict(const tsd_checkpoint *ck, const cli_common_args *c,
                   const char *in, const char *out, const char *selected,
                   const char *non_tensor_hint, const char *what,
                   const char *const *popped, size_t n_popped);

#endif
