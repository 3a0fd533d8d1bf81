# cmake -DOBJDUMP=... -DDLL=... -DHEADER=... -P dll_exports.cmake
# tsd.dll exports exactly the functions tsd.h marks TSD_API: nothing missing,
# nothing else (no internal tsd__ symbol, no libgcc or winpthread symbol).
# Two exceptions, both from the LibTorch split (README, "Use it in your
# project"): the three TorchScript functions are libtsd_torch's, not tsd's,
# and tsd__torch_host_get (the table libtsd_torch reaches the C core through)
# is tsd's one private export.
execute_process(COMMAND ${OBJDUMP} -p ${DLL} OUTPUT_VARIABLE dump RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${OBJDUMP} -p ${DLL} failed")
endif()
string(REGEX MATCH "\\[Ordinal/Name Pointer\\] Table[^\n]*\n(.*)" _ "${dump}")
set(table "${CMAKE_MATCH_1}")
string(REGEX REPLACE "\n[ \t]*\n.*" "" table "${table}")
string(REGEX MATCHALL "[A-Za-z_][A-Za-z0-9_]*\n|[A-Za-z_][A-Za-z0-9_]*$" exported "${table}")
list(TRANSFORM exported STRIP)
list(SORT exported)
file(READ ${HEADER} h)
string(REGEX MATCHALL "TSD_API[^;(]*[ *](tsd_[a-z0-9_]+)\\(" decls "${h}")
set(api "")
foreach(d ${decls})
  string(REGEX MATCH "(tsd_[a-z0-9_]+)\\($" _ "${d}")
  list(APPEND api ${CMAKE_MATCH_1})
endforeach()
list(REMOVE_DUPLICATES api)
list(REMOVE_ITEM api tsd_has_torch tsd_model_open_torchscript tsd_checkpoint_open_torchscript)
list(APPEND api tsd__torch_host_get)
list(SORT api)
list(LENGTH api n_api)
list(LENGTH exported n_exp)
if(NOT api STREQUAL exported)
  set(missing ${api})
  list(REMOVE_ITEM missing ${exported})
  set(extra ${exported})
  list(REMOVE_ITEM extra ${api})
  message(FATAL_ERROR "tsd.dll exports ${n_exp} symbols, tsd.h declares ${n_api} TSD_API "
                      "functions (libtsd_torch's three aside, with tsd__torch_host_get).\nmissing: ${missing}\nextra: ${extra}")
endif()
message(STATUS "tsd.dll exports exactly the ${n_api} functions of libtsd")
