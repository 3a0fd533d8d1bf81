/* cli_platform.c — see cli_platform.h. */
#include "cli_platform.h"

#ifdef _WIN32
#include <windows.h>
#include <fcntl.h>
#include <shellapi.h>
#include <stdio.h>

void cli_platform_init(int *argc, char ***argv) {
  /* binary: a .pth written to stdout (-o -) or read from stdin must not get
   * CR LF translation */
  _setmode(_fileno(stdin), _O_BINARY);
  _setmode(_fileno(stdout), _O_BINARY);
  SetConsoleOutputCP(CP_UTF8);
  int n = 0;
  wchar_t **w = CommandLineToArgvW(GetCommandLineW(), &n);
  if (!w) return;
  char **u = (char **)calloc((size_t)n + 1, sizeof *u);
  if (!u) return;
  for (int i = 0; i < n; i++) {
    int k = WideCharToMultiByte(CP_UTF8, 0, w[i], -1, NULL, 0, NULL, NULL);
    u[i] = k > 0 ? (char *)malloc((size_t)k) : NULL;
    if (!u[i] ||
        WideCharToMultiByte(CP_UTF8, 0, w[i], -1, u[i], k, NULL, NULL) != k)
      return; /* keep the ANSI argv (the process exits soon; no free) */
  }
  LocalFree(w);
  /* lives until exit, like argv itself */
  *argc = n;
  *argv = u;
}

static int file_id(const char *path, BY_HANDLE_FILE_INFORMATION *info) {
  int n = MultiByteToWideChar(CP_UTF8, 0, path, -1, NULL, 0);
  if (n <= 0) return 0;
  wchar_t *w = (wchar_t *)malloc((size_t)n * sizeof *w);
  if (!w) return 0;
  MultiByteToWideChar(CP_UTF8, 0, path, -1, w, n);
  HANDLE h = CreateFileW(w, 0, FILE_SHARE_READ | FILE_SHARE_WRITE |
                                   FILE_SHARE_DELETE,
                         NULL, OPEN_EXISTING, FILE_FLAG_BACKUP_SEMANTICS, NULL);
  free(w);
  if (h == INVALID_HANDLE_VALUE) return 0;
  BOOL ok = GetFileInformationByHandle(h, info);
  CloseHandle(h);
  return ok != 0;
}

int cli_platform_same_file(const char *a, const char *b) {
  BY_HANDLE_FILE_INFORMATION x, y;
  if (!file_id(a, &x) || !file_id(b, &y)) return 0;
  return x.dwVolumeSerialNumber == y.dwVolumeSerialNumber &&
         x.nFileIndexHigh == y.nFileIndexHigh &&
         x.nFileIndexLow == y.nFileIndexLow;
}
#else
#include <sys/stat.h>

void cli_platform_init(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
}

int cli_platform_same_file(const char *a, const char *b) {
  struct stat x, y;
  if (stat(a, &x) != 0 || stat(b, &y) != 0) return 0;
  return x.st_dev == y.st_dev && x.st_ino == y.st_ino;
}
#endif
