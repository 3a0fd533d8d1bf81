/* cmd.h — what every `tsd` subcommand shares: the exit statuses, the one
 * option parser, the command table, and how a command reports (errors and
 * hints on stderr, data on stdout, --json errors as one JSON object).
 *
 * A command is a cli_command: its name, usage line(s), --help text, option
 * table and run function. `tsd help CMD`, `tsd CMD --help` and a usage
 * error all come from that one entry. */
#ifndef TSD_CLI_CMD_H
#define TSD_CLI_CMD_H

#include <stdio.h>

#include "tsd.h"

/* The exit statuses of every command (documented in README, "The tsd
 * command", and in each --help). CLI_GO_ON is no exit: "carry on", the
 * value helpers return when nothing failed. */
typedef enum cli_exit {
  CLI_EXIT_OK = 0,     /* loaded (load), would load (diff), done (others) */
  CLI_EXIT_RAISED = 1, /* load_state_dict raised (load), would raise (diff) */
  CLI_EXIT_USAGE = 2,  /* bad usage, unreadable/malformed input, write error */
  CLI_GO_ON = -1
} cli_exit;

/* ---- options ---------------------------------------------------------------
 * One table per command lists the options it takes; cli_next walks argv:
 * GNU long options (`--opt value` and `--opt=value`), `--` ends the
 * options, `-` alone is an argument (stdin or stdout), `-h`/`--help`
 * anywhere before `--`. */
typedef enum cli_opt_id {
  OPT_NONE = 0,
  /* shared */
  OPT_JSON,
  OPT_QUIET,
  OPT_SELECT,
  OPT_STRIP,
  OPT_RENAME,
  OPT_ADD,
  OPT_RATIO,
  OPT_TS_CKPT,
  OPT_OUTPUT,
  /* models (load, diff) */
  OPT_MODEL_SPEC,
  OPT_CLASS_NAME,
  OPT_DEVICE,
  OPT_MODULE,
  OPT_NON_PERSISTENT,
  OPT_NONE_PARAM,
  OPT_RULES,
  OPT_NON_STRICT,
  OPT_STRICT,
  OPT_AUTO_POP,
  /* one command's own */
  OPT_ALL,
  OPT_MISSING_OK,
  OPT_MAP
} cli_opt_id;

typedef struct cli_opt {
  cli_opt_id id;
  const char *name;  /* "--select", "-o" */
  const char *alias; /* another spelling ("--output"), or NULL */
  int takes_value;
} cli_opt;

struct cli_command;
typedef struct cli_command {
  const char *name;    /* "load" */
  const char *usage;   /* "usage: tsd load ...\n" (one or two lines) */
  const char *help;    /* the whole --help text (starts with usage) */
  const cli_opt *opts; /* ends with {OPT_NONE, NULL, NULL, 0} */
  int (*run)(const struct cli_command *cmd, int argc, char **argv);
  const char *summary; /* one line for `tsd --help` */
} cli_command;

/* What cli_next returns besides an option id. */
enum {
  CLI_ARG = -2, /* a positional argument, in p->value */
  CLI_END = -3, /* argv is done */
  CLI_BAD = -4, /* a usage error, printed (exit CLI_EXIT_USAGE) */
  CLI_HELP = -5 /* -h / --help: the help was printed (exit 0) */
};

typedef struct cli_parser {
  const cli_command *cmd;
  int argc;
  char **argv;
  int i;
  int only_args;     /* after `--` */
  const char *value; /* the option's value, or the positional argument */
  const char *opt;   /* the option as written (for messages) */
} cli_parser;

void cli_parser_init(cli_parser *p, const cli_command *cmd, int argc,
                     char **argv);
/* The next option's id (its value in p->value), CLI_ARG, CLI_END, CLI_BAD
 * or CLI_HELP. */
int cli_next(cli_parser *p);

/* ---- reporting --------------------------------------------------------------
 * Every line a command prints on stderr starts with "tsd CMD: ": errors,
 * "hint: ..." lines, status lines ("wrote ...", --quiet silences those).
 * The command's state below is one per process (the command runs once). */

/* Sets the command name of the messages and whether --json / --quiet are
 * on (main scans argv for them before the command parses it, so that a
 * usage error is JSON too). */
void cli_begin(const char *cmd_name, int json, int quiet);
const char *cli_cmd_name(void);
int cli_json_mode(void);
int cli_quiet(void);
/* Where --json output goes: stdout, or stderr when the command's data (a
 * file written to `-`) takes stdout. */
FILE *cli_json_out(void);
void cli_set_json_out(FILE *f);

/* printf-style checks; MinGW's C99 printf (__USE_MINGW_ANSI_STDIO) is
 * gnu_printf, which knows %zu. */
#if defined(__MINGW32__)
#define CLI_PRINTF(f, a) __attribute__((format(gnu_printf, f, a)))
#else
#define CLI_PRINTF(f, a) __attribute__((format(printf, f, a)))
#endif

/* A usage error: "tsd CMD: MESSAGE", the usage line(s), "try 'tsd CMD
 * --help'"; returns CLI_EXIT_USAGE. */
int cli_usage(const cli_command *cmd, const char *fmt, ...)
    CLI_PRINTF(2, 3);
/* An error: "tsd CMD: MESSAGE" (escaped as cli_msgf does), remembered for
 * the --json error object with the status name `status` (a tsd_status).
 * Returns CLI_EXIT_USAGE. */
int cli_error(tsd_status status, const char *fmt, ...)
    CLI_PRINTF(2, 3);
/* "tsd CMD: hint: MESSAGE" (also in the --json error object's "hints"). */
void cli_hint(const char *fmt, ...) CLI_PRINTF(1, 2);
/* A status line "tsd CMD: MESSAGE" on stderr, unless --quiet. */
void cli_status(const char *fmt, ...) CLI_PRINTF(1, 2);
/* A note about the data (a selection made for the user, keys reordered):
 * as cli_status. */
#define cli_note cli_status

/* With --json, after a command failed (exit 2): the error object
 * {"schema_version": 1, "ok": false, "error": ..., "status": ...,
 * "hints": [...]} on cli_json_out(), unless the command printed its own
 * JSON already. */
void cli_json_error_flush(void);
/* A command that printed its JSON result says so. */
void cli_json_done(void);

/* The JSON schema version of every --json object (docs/json-schema.md). */
#define CLI_SCHEMA_VERSION 1

/* ---- commands ---------------------------------------------------------- */
extern const cli_command cli_cmd_load, cli_cmd_inspect, cli_cmd_diff,
    cli_cmd_pop, cli_cmd_convert;

/* Levenshtein distance of a and b, capped at `cap` + 1 (for "did you
 * mean"). */
size_t cli_edit_distance(const char *a, size_t na, const char *b, size_t nb,
                         size_t cap);

#endif
