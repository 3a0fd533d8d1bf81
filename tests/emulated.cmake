# Tests of a cross build that cannot run under its emulator (Wine, qemu-user),
# included by tests/CMakeLists.txt when cross-compiling. Everything else
# carries the label `unit-emulated` and runs in scripts/cross.sh.
#
# TSD_NOT_ON_WINDOWS: test programs not built for Windows at all (they are
# POSIX programs: fork/exec, pipes, rlimits, signals, symlinks, modes). Their
# tests that need only the library live in portable programs, built here too:
# test_write_portable, test_io_portable, test_malformed_portable,
# test_parallel_portable, test_ts_state_portable, test_escape_portable,
# test_save_progress; test_alloc is built here too
# (its glibc malloc interposer only where glibc is). A test left in these
# programs for no POSIX reason hides Windows bugs: the progress callback
# once was one.
# TSD_EMU_SKIP_<program>: a GoogleTest filter (A.B:C.*) of its tests that are
# labelled `unit-not-emulated` instead, with the reason next to it.
set(TSD_NOT_ON_WINDOWS)
list(APPEND TSD_NOT_ON_WINDOWS
  test_cli         # sys/wait.h; runs tsd through sh with POSIX quoting
  test_cli_conventions # sys/wait.h, pty (script), runs tsd through sh
  test_cli_map     # sys/wait.h; runs tsd through sh (stdin redirected)
  test_cli_text    # rlimits, fork/exec, terminals (pty), signals
  test_io          # sockets, FIFOs, devices, symlinks, fork/exec, /proc
  test_malformed   # rlimits (memory bound per case), fork, /proc (the cases
                   # themselves run in-process: test_malformed_portable)
  test_parallel    # interposes pthread_create (dlsym RTLD_NEXT) to count threads
  test_ts_state    # sys/wait.h; runs tsd through sh (the reader's own tests:
                   # test_ts_state_portable)
  test_write       # mounts (a full file system), fork/exec, modes, symlinks
)

# Timing bounds in seconds, meant for a native run: an emulator is 5-50x
# slower (checked natively by the main build).
set(TSD_EMU_SKIP_test_engine "Engine.AHundredThousandKeysLoadInLinearTime")
set(TSD_EMU_SKIP_test_parse_memory "ParseMemory.TimeIsLinearInTheInput")

# Windows: tests that run /usr/bin/python3 (Python torch as the oracle)
# through popen: under Wine a child process is a Windows process, and there
# is no Windows Python torch. (Under qemu the same tests run: the children
# are host processes.) The parity suite covers these paths on Windows.
if(WIN32)
  string(APPEND TSD_EMU_SKIP_test_engine ":Engine.PythonCheckpointGivesPythonsAnswer")
  set(TSD_EMU_SKIP_test_safetensors "Safetensors.NewDtypesAreWrittenWithTheFormatsNames:SafetensorsWrite.PythonJsonAndTorchSeeTheSameTensors:SafetensorsWrite.RefusesATensorNamedMetadataAndLeavesNoFile")
  # test_views makes its fixtures with Python torch (popen) before any test.
  # The Win32 mapping (CreateFileMapping/MapViewOfFile) is therefore not run.
  set(TSD_EMU_SKIP_test_views "Views.*:ViewsSharded.*")
  set(TSD_EMU_SKIP_test_save "Save.PythonTorchLoadReadsItBack:Save.PythonLoadStateDictAcceptsItIntoTheEagerModel:Save.NewDtypesRoundTripAsTorch2WritesThem:Save.ComplexTensorsLoadInPythonTorch")
endif()

# Big-endian (s390x): two tests whose expectations are a little-endian
# machine's torch.load of torch2x_big.pth (untyped uint16/32/64 storages of a
# big-endian file left unswapped; values swapped by hand in the test). On a
# big-endian machine the file is in the machine's order and tsd reads it as
# it is; no big-endian torch runs here to give those expectations.
if(CMAKE_SYSTEM_PROCESSOR STREQUAL "s390x")
  set(TSD_EMU_SKIP_test_torch2x "Torch2x.BigEndianFilesAreSwappedPerElementAsTorchLoadDoes:Torch2x.BigEndianLoadsIntoAModelWithTheSwappedValues")
  # Views need a little-endian host (tsd_checkpoint_view says "big-endian"
  # and a bind copies instead, as documented); test_views' expectations are a
  # little-endian machine's.
  set(TSD_EMU_SKIP_test_views "Views.*:ViewsSharded.*")
endif()
