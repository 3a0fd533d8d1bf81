// test_compat_win.h — force-included (-include) into the unit tests of the
// Windows cross build: the few POSIX calls the portable tests make.
#pragma once
#ifdef _WIN32
#include <direct.h>
#include <io.h>
#include <stdio.h>
// mkdir(path, mode): Windows directories have no mode bits
#define mkdir(path, mode) _mkdir(path)
// pclose returns the command's exit status itself
#ifndef WIFEXITED
#define WIFEXITED(status) 1
#define WEXITSTATUS(status) (status)
#endif
#endif
