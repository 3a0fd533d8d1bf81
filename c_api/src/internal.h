/*
 * internal.h — every layer of libtsd at once, for the unit tests, the
 * fuzzers and the shim (which sit above all of them). Not installed; not
 * public. The library's own files never include it: each layer's files see
 * only their own header and those of the layers below (README, "Inside the
 * library"), and the build gives each layer only those include folders, so
 * a call against the direction does not compile.
 *
 *   base/        base.h        errors, allocation, arena, buffers, maps,
 *                              sort, dtype conversion, text, limits
 *   io/          io.h          byte sources, storages, tensor views, the
 *                              threaded tensor-read engine
 *   value/       value.h       the value tree, its Python descriptions
 *   formats/     formats.h     detection and every reader (pickle, zip,
 *                              legacy, JSON, safetensors, sharded,
 *                              TorchScript state): each returns a tree
 *   checkpoint/  checkpoint.h  tsd_checkpoint_*, the current-dict view
 *   model/       model.h       the module tree, C-owned models
 *   load/        load.h        tsd_load: engine, remap, report
 *   write/       write.h       the atomic file, .pth and safetensors writers
 */
#ifndef TSD_INTERNAL_H
#define TSD_INTERNAL_H

#include "load.h"
#include "write.h"

#endif /* TSD_INTERNAL_H */
