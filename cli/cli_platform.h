/* cli_platform.h — the few POSIX bits the tsd command uses, on Windows.
 *
 * The command is written against POSIX (signals with sigaction and masks,
 * isatty, stat); on Windows this header maps them onto the C runtime:
 * sigaction becomes signal(), masks are no-ops (Windows delivers Ctrl-C on a
 * thread of its own), SIGHUP is Ctrl-Break. cli_platform.c adds what cannot
 * be a macro: UTF-8 argv, binary stdio, file identity. */
#ifndef TSD_CLI_PLATFORM_H
#define TSD_CLI_PLATFORM_H

#include <signal.h>
#include <stddef.h>

/* Call first in main: on Windows argv becomes UTF-8 (from the wide command
 * line, so any file name can be passed), stdin/stdout binary; elsewhere
 * nothing. */
void cli_platform_init(int *argc, char ***argv);
/* 1 if both paths exist and name the same file (device and inode, or on
 * Windows volume serial and file index), else 0. */
int cli_platform_same_file(const char *a, const char *b);

#ifdef _WIN32
#include <fcntl.h>
#include <io.h>
#ifndef O_NONBLOCK /* no FIFOs to block on */
#define O_NONBLOCK 0
#endif
#ifndef O_CLOEXEC
#define O_CLOEXEC 0
#endif
#include <stdlib.h>
#include <string.h>
#ifndef STDIN_FILENO
#define STDIN_FILENO 0
#define STDOUT_FILENO 1
#define STDERR_FILENO 2
#endif
#define SIGHUP SIGBREAK
typedef int cli_sigset_t;
#define sigset_t cli_sigset_t
#define SIG_BLOCK 0
#define SIG_SETMASK 2
static inline int sigemptyset(sigset_t *s) { *s = 0; return 0; }
static inline int sigfillset(sigset_t *s) { *s = ~0; return 0; }
static inline int sigaddset(sigset_t *s, int sig) { (void)sig; *s = 1; return 0; }
static inline int sigprocmask(int how, const sigset_t *set, sigset_t *old) {
  (void)how; (void)set;
  if (old) *old = 0;
  return 0;
}
struct sigaction {
  void (*sa_handler)(int);
  sigset_t sa_mask;
  int sa_flags;
};
static inline int sigaction(int sig, const struct sigaction *sa,
                            struct sigaction *old) {
  void (*prev)(int) = signal(sig, sa->sa_handler);
  if (prev == SIG_ERR) return -1;
  if (old) {
    old->sa_handler = prev;
    old->sa_mask = 0;
    old->sa_flags = 0;
  }
  return 0;
}
static inline char *cli_strndup(const char *s, size_t n) {
  size_t k = 0;
  while (k < n && s[k]) k++;
  char *p = (char *)malloc(k + 1);
  if (p) {
    memcpy(p, s, k);
    p[k] = '\0';
  }
  return p;
}
#define strndup cli_strndup
#else
#include <unistd.h>
#endif

#endif
