# Windows x64 with Debian's MinGW-w64 (the posix thread model, whose libstdc++
# has std::thread for the tests; libtsd itself uses Win32 threads directly).
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR AMD64)
set(CMAKE_C_COMPILER x86_64-w64-mingw32-gcc-posix)
set(CMAKE_CXX_COMPILER x86_64-w64-mingw32-g++-posix)
set(CMAKE_RC_COMPILER x86_64-w64-mingw32-windres)
set(CMAKE_FIND_ROOT_PATH /usr/x86_64-w64-mingw32)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
# The programs carry their runtime (libgcc, libstdc++, winpthread) so that
# Wine, or a Windows machine, runs them without MinGW's DLLs on its PATH.
set(CMAKE_EXE_LINKER_FLAGS_INIT "-static")
# tsd.dll too: its thread-local error message (emutls) uses winpthread,
# linked in statically, so the DLL needs only Windows' own DLLs.
set(CMAKE_SHARED_LINKER_FLAGS_INIT "-static")
