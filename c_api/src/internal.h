/*
 * internal.h — every layer of libtsd at once, for the unit tests, the
 * fuzzers and the shim (which sit above all of them). Not installed; not
 * public. The library's own files never include it: each layer's files see
 * only their own header and those of the layers below (README, "Inside the
 * library"), and the build gives each layer only those include folders, so
 * a call against the direction does not compile.
 *
 *   base/        base.h        errors, allocation, arena (and the parse
 *                platform.h    budget), buffers, maps, sort, dtype
 *                              conversion, text, limits, crc32, byte
 *                              order; the OS (platform_posix.c,
 *                              platform_win32.c: files, threads, random)
 *   io/          tsd_io.h      byte sources, storages, tensor views, the
 *                              threaded tensor-read engine
 *   value/       value.h       the value tree, its Python descriptions
 *   formats/     formats.h     detection and every reader (pickle, zip,
 *                              legacy, JSON, safetensors, sharded,
 *                              TorchScript state): each returns a tree
 *   checkpoint/  checkpoint.h  tsd_checkpoint_*, the current-dict view,
 *                              mapped views and ranged reads (mapview.c)
 *   model/       model.h       the module tree, C-owned models, models
 *                              from layout files (layout.c)
 *   load/        load.h        tsd_load: engine, remap, report
 *   write/       write.h       the atomic file (afile.c; afile_win32.c on
 *                              Windows), .pth and safetensors writers
 *   host/        torch_host.h  the table libtsd lends libtsd_torch
 */
#ifndef TSD_INTERNAL_H
#define TSD_INTERNAL_H

#include "load.h"
#include "write.h"
#include "torch_host.h"

#endif /* TSD_INTERNAL_H */
