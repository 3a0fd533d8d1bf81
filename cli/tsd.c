/* tsd — the command line front end of libtsd. A thin user of tsd.h only.
 *
 *   tsd load MODEL.pt CHECKPOINT [options]
 *   tsd load --model-spec SPEC --class-name NAME CHECKPOINT [options]
 *   tsd inspect | diff | pop | convert ...
 *   tsd help [CMD], tsd CMD --help, tsd --version
 *
 * Each command is a cli_command (cmd.h) in its own cmd_*.c; this file
 * dispatches, and checks that what went to stdout was written (a full disk
 * or a closed pipe is an error, exit 2).
 *
 * Exit status: 0 loaded, 1 load_state_dict raised, 2 bad usage, bad input
 * or a write error (cli_exit in cmd.h; README, "The `tsd` command"). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli_common.h"
#include "cmd.h"
#include "cli_platform.h"

static const cli_command *const COMMANDS[] = {&cli_cmd_load, &cli_cmd_inspect,
                                              &cli_cmd_diff, &cli_cmd_pop,
                                              &cli_cmd_convert};
#define N_COMMANDS (sizeof COMMANDS / sizeof *COMMANDS)

static void main_help(FILE *f) {
  fputs("usage: tsd <command> [args]\n"
        "\n"
        "commands:\n",
        f);
  for (size_t i = 0; i < N_COMMANDS; i++)
    fprintf(f, "  %-9s %s\n", COMMANDS[i]->name, COMMANDS[i]->summary);
  fputs("\n"
        "tsd help CMD or tsd CMD --help for a command's options; tsd "
        "--version.\n"
        "'-' is stdin as an input and stdout as an output. Data goes to\n"
        "stdout, notes and errors to stderr.\n"
        "exit status: 0 loaded (or done), 1 load_state_dict raised, 2 bad\n"
        "usage, bad input or a write error\n",
        f);
}

static const cli_command *find_command(const char *name) {
  for (size_t i = 0; i < N_COMMANDS; i++)
    if (!strcmp(COMMANDS[i]->name, name)) return COMMANDS[i];
  return NULL;
}

static int unknown_command(const char *name) {
  const char *near = NULL;
  size_t best = 3;
  for (size_t i = 0; i < N_COMMANDS; i++) {
    size_t d = cli_edit_distance(name, strlen(name), COMMANDS[i]->name,
                                 strlen(COMMANDS[i]->name), 2);
    if (d < best) {
      best = d;
      near = COMMANDS[i]->name;
    }
  }
  if (near)
    cli_error(TSD_ERR_INVALID_ARG, "unknown command '%s' (did you mean '%s'?)",
              name, near);
  else
    cli_error(TSD_ERR_INVALID_ARG, "unknown command '%s'", name);
  fputs("usage: tsd <command> [args]\ntry 'tsd --help'\n", stderr);
  return CLI_EXIT_USAGE;
}

/* --json and --quiet before the command parses argv, so that its usage
 * errors are JSON too: options the table says take a value skip it. */
static void prescan(const cli_command *cmd, int argc, char **argv, int *json,
                    int *quiet) {
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--")) break;
    if (!strcmp(a, "--json")) *json = 1;
    if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) *quiet = 1;
    for (const cli_opt *o = cmd->opts; o->name; o++)
      if (o->takes_value &&
          (!strcmp(a, o->name) || (o->alias && !strcmp(a, o->alias))))
        i++;
  }
}

/* What went to stdout must have been written: fflush and fclose report a
 * full disk (/dev/full) or a closed pipe. */
static int close_stdout(int rc) {
  int failed = fflush(stdout) != 0 || ferror(stdout);
  int e = errno;
  if (fclose(stdout) != 0 && !failed) {
    failed = 1;
    e = errno;
  }
  if (!failed) return rc;
  cli_error(TSD_ERR_IO, "cannot write to stdout: %s", strerror(e));
  return CLI_EXIT_USAGE;
}

static int dispatch(int argc, char **argv) {
  if (argc < 2) {
    main_help(stderr);
    return CLI_EXIT_USAGE;
  }
  const char *name = argv[1];
  if (!strcmp(name, "--help") || !strcmp(name, "-h")) {
    main_help(stdout);
    return CLI_EXIT_OK;
  }
  if (!strcmp(name, "help")) {
    if (argc < 3) {
      main_help(stdout);
      return CLI_EXIT_OK;
    }
    const cli_command *c = find_command(argv[2]);
    if (!c) return unknown_command(argv[2]);
    fputs(c->help, stdout);
    return CLI_EXIT_OK;
  }
  if (!strcmp(name, "--version")) {
    printf("tsd %s (%s)\n", tsd_version(),
           tsd_has_torch() ? "with LibTorch" : "pure C");
    return CLI_EXIT_OK;
  }
  const cli_command *c = find_command(name);
  if (!c) return unknown_command(name);
  int json = 0, quiet = 0;
  prescan(c, argc - 2, argv + 2, &json, &quiet);
  cli_begin(c->name, json, quiet);
  int rc = c->run(c, argc - 2, argv + 2);
  if (rc == CLI_EXIT_USAGE) cli_json_error_flush();
  return rc;
}

int main(int argc, char **argv) {
  cli_platform_init(&argc, &argv);
  int rc = dispatch(argc, argv);
  cli_inputs_free();
  return close_stdout(rc);
}
