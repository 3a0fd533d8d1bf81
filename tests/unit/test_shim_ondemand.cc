// test_shim_ondemand.cc — LibTorch on demand (issue 12): the tsd command
// does not link libtsd_torch; cli/torch_dl.c loads it with dlopen the first
// time a TorchScript model is used. Runs the built binary (TSD_CLI) and asks
// the dynamic loader (LD_DEBUG=files) which libraries the process opened.
// LibTorch builds only (test_shim*).
#include <sys/wait.h>

#include <fstream>
#include <sstream>
#include <string>

#include "test_helpers.h"

namespace {

using Out = tsdtest::CliOut;
using tsdtest::shell_quote;

std::string q(const std::string &s) { return shell_quote(s); }

// Runs `env ENV tsd ARGS`, stdout and stderr apart.
Out tsd(const std::string &env, const std::string &args) {
  return tsdtest::run_cli(args, "env " + env + " ");
}

std::string fx(const char *name) {
  return q(std::string(TSD_FIXTURES) + "/" + name);
}

bool has(const std::string &s, const std::string &part) {
  return s.find(part) != std::string::npos;
}

// The loader's trace names every library it opens ("file=libtorch_cpu.so").
bool loaded_libtorch(const Out &r) {
  return has(r.err, "file=libtorch_cpu.so") || has(r.err, "file=libc10.so");
}

const std::string kLoadTs =
    "load " + fx("shim_tiny.pt") + " " + fx("shim_tiny_src.pt");

} // namespace

TEST(OnDemand, CommandsWithoutATorchScriptModelNeverLoadLibTorch) {
  for (const std::string &args :
       {std::string("--help"), std::string("load --help"),
        "inspect " + fx("small.pth"),
        // a TorchScript archive read as its state, without running it
        "inspect " + fx("shim_tiny.pt"),
        "load --model-spec " + fx("small.pth") + " --class-name M " +
            fx("small.pth")}) {
    Out r = tsd("LD_DEBUG=files", args);
    EXPECT_EQ(r.rc, 0) << args << "\n" << r.err.substr(0, 2000);
    EXPECT_FALSE(loaded_libtorch(r)) << args;
    EXPECT_FALSE(has(r.err, "libtsd_torch")) << args;
  }
}

TEST(OnDemand, ATorchScriptModelLoadsLibTorchAndWorks) {
  Out r = tsd("LD_DEBUG=files", kLoadTs);
  EXPECT_EQ(r.rc, 0) << r.err.substr(r.err.size() > 3000 ? r.err.size() - 3000 : 0);
  EXPECT_EQ(r.out, "<All keys matched successfully>\n");
  EXPECT_TRUE(has(r.err, "libtsd_torch.so")); // the check above can fail
  EXPECT_TRUE(loaded_libtorch(r));
  // --torchscript-checkpoint goes through it too.
  Out c = tsd("LD_DEBUG=files",
              "inspect --torchscript-checkpoint " + fx("shim_tiny.pt"));
  EXPECT_EQ(c.rc, 0);
  EXPECT_TRUE(loaded_libtorch(c));
}

TEST(OnDemand, TheLibraryNamedInTheEnvironmentIsUsed) {
  Out r = tsd("TSD_TORCH_LIBRARY=" + q(TSD_TORCH_LIB), kLoadTs);
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out, "<All keys matched successfully>\n");
}

TEST(OnDemand, AMissingLibraryIsAClearErrorAndOnlyForTorchScript) {
  const std::string env = "TSD_TORCH_LIBRARY=/nonexistent/libtsd_torch.so.0";
  Out r = tsd(env, kLoadTs);
  EXPECT_EQ(r.rc, 2);
  EXPECT_EQ(r.out, "");
  // the SONAME carries MAJOR.MINOR while 0.x (libtsd_torch.so.0.2)
  EXPECT_TRUE(has(r.err, "shim_tiny.pt: TorchScript models need "
                         "libtsd_torch.so." +
                             std::to_string(TSD_VERSION_MAJOR) + "." +
                             std::to_string(TSD_VERSION_MINOR) +
                             ", tsd's LibTorch part, which "
                         "could not be loaded (/nonexistent/libtsd_torch.so.0:"
                         " no such file). Install tsd built with LibTorch, "
                         "or set TSD_TORCH_LIBRARY to the library's path "
                         "(TSD_ERR_UNSUPPORTED)"))
      << r.err;
  r = tsd(env, "inspect --torchscript-checkpoint " + fx("shim_tiny.pt"));
  EXPECT_EQ(r.rc, 2);
  EXPECT_TRUE(has(r.err, "TSD_TORCH_LIBRARY")) << r.err;
  // Everything else works without it.
  r = tsd(env, "inspect " + fx("shim_tiny.pt"));
  EXPECT_EQ(r.rc, 0) << r.err;
  r = tsd(env, "--help");
  EXPECT_EQ(r.rc, 0) << r.err;
}

TEST(OnDemand, AFileThatIsNoLibraryGivesTheLoadersMessage) {
  const std::string path = std::string(TSD_FIXTURES) + "/small.pth";
  Out r = tsd("TSD_TORCH_LIBRARY=" + q(path), kLoadTs);
  EXPECT_EQ(r.rc, 2);
  // dlerror(): "<path>: invalid ELF header" (glibc's words)
  EXPECT_TRUE(has(r.err, "could not be loaded (" + path + ": ")) << r.err;
  EXPECT_TRUE(has(r.err, "ELF")) << r.err;
}
