/* torch_dl.c — LibTorch on demand for the tsd command (LibTorch builds).
 *
 * The TorchScript functions of tsd.h are libtsd_torch's, and libtsd_torch
 * brings LibTorch: ~290 shared libraries, 0.4 s and ~130 MiB before main()
 * when linked. Most commands never need them (every .pth, safetensors and
 * --model-spec path, and TorchScript archives read as state without
 * running them), so the tsd command does not link libtsd_torch: these
 * functions, with the names and signatures of tsd.h, load it with dlopen on
 * first use and forward to it. The rest of the command calls them as if it
 * were linked.
 *
 * Where it looks, first found wins:
 *   1. $TSD_TORCH_LIBRARY, if set (a path; nothing else is tried then);
 *   2. beside the executable (the build tree: tsd, libtsd.so and
 *      libtsd_torch.so share one folder);
 *   3. the install layout relative to the executable (bin/../lib);
 *   4. the library folder it was configured to install into;
 *   5. the dynamic loader's own search by SONAME (LD_LIBRARY_PATH,
 *      ld.so.cache, the system folders).
 * A file that exists but does not load (LibTorch missing) is reported with
 * the loader's message. The command links libtsd.so, so the libtsd that
 * libtsd_torch needs is the command's own (one C core, one last error).
 *
 * Not thread-safe against itself before the first load completes: the tsd
 * command calls these from its main thread only (pthread_once would make it
 * so; it is not needed here). */
#define _GNU_SOURCE /* secure_getenv, readlink */
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "torch_host.h"
#include "tsd.h"

#ifndef TSD_TORCH_SONAME
#error "TSD_TORCH_SONAME (libtsd_torch's SONAME) must be defined"
#endif
#ifndef TSD_TORCH_REL_LIBDIR /* from the executable's folder */
#define TSD_TORCH_REL_LIBDIR "../lib"
#endif

typedef tsd_status (*open_model_fn)(tsd_model **, const char *,
                                    const tsd_torchscript_options *);
typedef tsd_status (*open_ckpt_fn)(tsd_checkpoint **, const char *,
                                   const tsd_torchscript_options *);

static struct {
  int tried;                 /* 0: not yet; 1: loaded; -1: failed */
  open_model_fn open_model;
  open_ckpt_fn open_ckpt;
  char why[3072];            /* the failure, for tsd_last_error() */
} torch;

/* Appends a + b + tail to the failure text. */
static void append3(const char *a, const char *b, const char *tail) {
  size_t n = strlen(torch.why);
  if (n + 1 < sizeof torch.why)
    snprintf(torch.why + n, sizeof torch.why - n, "%s%s%s", a, b, tail);
}

/* dlopen of one candidate; records why it failed. `quiet_if_missing`: a
 * missing file is not worth a message (a folder tried in turn), unlike the
 * path the user named. */
static void *try_open(const char *path, int quiet_if_missing) {
  struct stat sb;
  if (strchr(path, '/') && stat(path, &sb) != 0) {
    if (!quiet_if_missing) append3(torch.why[0] ? "; " : "", path, ": no such file");
    return NULL;
  }
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char *e = dlerror();
    append3(torch.why[0] ? "; " : "", e ? e : path, "");
  }
  return h;
}

static void *find_library(void) {
  const char *env = secure_getenv("TSD_TORCH_LIBRARY");
  if (env && *env) return try_open(env, 0);
  char exe[PATH_MAX], path[PATH_MAX + 256];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  void *h = NULL;
  if (n > 0) {
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash) {
      *slash = '\0';
      snprintf(path, sizeof path, "%s/%s", exe, TSD_TORCH_SONAME);
      if ((h = try_open(path, 1))) return h;
      snprintf(path, sizeof path, "%s/%s/%s", exe, TSD_TORCH_REL_LIBDIR,
               TSD_TORCH_SONAME);
      if ((h = try_open(path, 1))) return h;
    }
  }
#ifdef TSD_TORCH_INSTALL_LIBDIR
  snprintf(path, sizeof path, "%s/%s", TSD_TORCH_INSTALL_LIBDIR,
           TSD_TORCH_SONAME);
  if ((h = try_open(path, 1))) return h;
#endif
  return try_open(TSD_TORCH_SONAME, 1);
}

/* Loads libtsd_torch once; 1 if its functions are ready. */
static int load(void) {
  if (torch.tried) return torch.tried > 0;
  torch.tried = -1;
  void *h = find_library();
  if (!h) return 0;
  /* dlsym in the library's own scope: its definitions, not these. */
  torch.open_model =
      (open_model_fn)dlsym(h, "tsd_model_open_torchscript");
  torch.open_ckpt =
      (open_ckpt_fn)dlsym(h, "tsd_checkpoint_open_torchscript");
  if (!torch.open_model || !torch.open_ckpt) {
    append3(torch.why[0] ? "; " : "",
            "the library has no tsd_model_open_torchscript / "
            "tsd_checkpoint_open_torchscript",
            "");
    dlclose(h);
    return 0;
  }
  torch.tried = 1; /* kept loaded until exit: models point into it */
  return 1;
}

static tsd_status unavailable(const char *path) {
  return tsd__torch_host_get()->err(
      TSD_ERR_UNSUPPORTED,
      "%s: TorchScript models need %s, tsd's LibTorch part, which could not "
      "be loaded (%s). Install tsd built with LibTorch, or set "
      "TSD_TORCH_LIBRARY to the library's path",
      path ? path : "(null)", TSD_TORCH_SONAME,
      torch.why[0] ? torch.why : "not found beside the tsd command, in "
                                 TSD_TORCH_REL_LIBDIR " from it, or by the "
                                 "dynamic loader");
}

int tsd_has_torch(void) { return load(); }

tsd_status tsd_model_open_torchscript(tsd_model **out, const char *path,
                                      const tsd_torchscript_options *options) {
  if (!load()) {
    if (out) *out = NULL;
    return unavailable(path);
  }
  return torch.open_model(out, path, options);
}

tsd_status
tsd_checkpoint_open_torchscript(tsd_checkpoint **out, const char *path,
                                const tsd_torchscript_options *options) {
  if (!load()) {
    if (out) *out = NULL;
    return unavailable(path);
  }
  return torch.open_ckpt(out, path, options);
}
