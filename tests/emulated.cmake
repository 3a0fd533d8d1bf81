# Tests of a cross build that cannot run under its emulator (Wine, qemu-user),
# included by tests/CMakeLists.txt when cross-compiling. Everything else
# carries the label `unit-emulated` and runs in scripts/cross.sh.
#
# TSD_NOT_ON_WINDOWS: test programs not built for Windows at all (they are
# POSIX programs: fork/exec, pipes, rlimits, signals, symlinks, modes).
# TSD_EMU_SKIP_<program>: a GoogleTest filter (A.B:C.*) of its tests that are
# labelled `unit-not-emulated` instead, with the reason next to it.
set(TSD_NOT_ON_WINDOWS)
list(APPEND TSD_NOT_ON_WINDOWS
  test_cli         # sys/wait.h; runs tsd through sh with POSIX quoting
  test_cli_text    # rlimits, fork/exec, terminals (pty), signals
  test_io          # sockets, FIFOs, devices, symlinks, fork/exec
  test_malformed   # rlimits (memory bound per case) and fork
  test_parallel    # dlopen of the allocator hooks, fork
  test_ts_state    # sys/wait.h; runs tsd through sh
  test_write       # mounts (a full file system), fork/exec, modes, symlinks
)

# Timing bounds in seconds, meant for a native run: an emulator is 5-50x
# slower (checked natively by the main build).
set(TSD_EMU_SKIP_test_engine "Engine.FiftyThousandKeysLoadInLinearTime")
