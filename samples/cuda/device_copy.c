/*
 * device_copy.c — the shape of a GPU upload through tsd's device-copy hook
 * (TSD_LOAD_DEVICE): every tensor of a checkpoint straight into CUDA device
 * memory, through a pinned staging buffer, with each chunk's DMA overlapping
 * tsd's read of the next one. Built only when CMake finds a CUDA toolkit
 * (find_package(CUDAToolkit)); the tests never run it (no GPU is assumed).
 *
 *   device_copy CHECKPOINT
 *
 * The model is the checkpoint's own tensors, added without host memory
 * (tsd_model_add_tensor_unbacked); a real program declares its network and
 * gets the same load_state_dict checks and report.
 *
 * The staging rule (tsd.h, TSD_LOAD_DEVICE): the bytes of chunk k stay
 * untouched until the callback for chunk k + 1 returns (tsd reads ahead into
 * a third part of a staging buffer of 3 * 64 KiB or more, else into the
 * other half). So the callback starts chunk k's copy, records an event, and
 * waits for chunk k - 1's event (the copy that still reads the part tsd
 * fills next) before it returns.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime.h>

#include "tsd.h"

#define HALF ((size_t)8 << 20)

typedef struct upload {
  cudaStream_t stream;
  cudaEvent_t done[2]; /* the copy out of each half */
  uint64_t chunks;
  unsigned char *device;   /* one allocation for every tensor */
  uint64_t *offset;        /* tensor index -> byte offset in `device` */
  cudaError_t error;
} upload;

static int copy_chunk(void *user, const tsd_device_chunk *ch) {
  upload *u = user;
  uint64_t k = u->chunks++;
  cudaError_t e = cudaMemcpyAsync(u->device + u->offset[ch->tensor] +
                                      ch->offset,
                                  ch->data, ch->len, cudaMemcpyHostToDevice,
                                  u->stream);
  if (e == cudaSuccess) e = cudaEventRecord(u->done[k % 2], u->stream);
  /* chunk k - 1's part: tsd may fill it as soon as we return */
  if (e == cudaSuccess && k > 0)
    e = cudaEventSynchronize(u->done[(k + 1) % 2]);
  if (e != cudaSuccess) {
    u->error = e;
    return 1; /* tsd_load fails with TSD_ERR_CALLBACK naming the tensor */
  }
  return 0;
}

static int fail(const char *what, tsd_status st) {
  fprintf(stderr, "device_copy: %s: %s: %s\n", what, tsd_status_name(st),
          tsd_last_error());
  return 1;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: device_copy CHECKPOINT\n");
    return 2;
  }
  tsd_checkpoint *ckpt;
  tsd_status st = tsd_checkpoint_open(&ckpt, argv[1], NULL);
  if (st) return fail(argv[1], st);
  tsd_model *model;
  if ((st = tsd_model_new(&model, "Model"))) return fail("model", st);
  for (size_t i = 0; i < tsd_checkpoint_count(ckpt); i++) {
    tsd_entry e;
    if ((st = tsd_checkpoint_entry(&e, ckpt, i))) return fail("entry", st);
    if (e.kind != TSD_KIND_TENSOR) continue;
    st = tsd_model_add_tensor_unbacked(
        model, e.key, e.is_parameter ? TSD_PARAMETER : TSD_BUFFER, e.dtype,
        e.ndim, e.shape);
    if (st) return fail(e.key, st);
  }
  size_t n = tsd_model_tensor_count(model);
  upload u;
  memset(&u, 0, sizeof u);
  u.offset = calloc(n ? n : 1, sizeof *u.offset);
  uint64_t total = 0;
  for (size_t i = 0; i < n; i++) {
    tsd_tensor_info info;
    tsd_model_tensor(&info, model, i);
    u.offset[i] = total;
    total += ((uint64_t)info.numel * tsd_dtype_size(info.dtype) + 255) & ~255u;
  }
  void *staging = NULL;
  if (cudaMalloc((void **)&u.device, total ? total : 256) != cudaSuccess ||
      cudaHostAlloc(&staging, 2 * HALF, cudaHostAllocDefault) != cudaSuccess ||
      cudaStreamCreate(&u.stream) != cudaSuccess ||
      cudaEventCreateWithFlags(&u.done[0], cudaEventDisableTiming) !=
          cudaSuccess ||
      cudaEventCreateWithFlags(&u.done[1], cudaEventDisableTiming) !=
          cudaSuccess) {
    fprintf(stderr, "device_copy: CUDA setup failed: %s\n",
            cudaGetErrorString(cudaGetLastError()));
    return 1;
  }

  tsd_load_options o = TSD_LOAD_OPTIONS_INIT;
  o.mode = TSD_LOAD_DEVICE;
  o.device_copy = copy_chunk;
  o.device_user = &u;
  o.staging = staging;
  o.staging_bytes = 2 * HALF;
  tsd_report *report = NULL;
  st = tsd_load(&report, model, ckpt, &o);
  /* the last chunk's copy may still run: wait before using the weights */
  cudaError_t e = cudaStreamSynchronize(u.stream);
  if (st == TSD_ERR_CALLBACK)
    fprintf(stderr, "device_copy: %s (CUDA: %s)\n", tsd_last_error(),
            cudaGetErrorString(u.error));
  else if (st)
    fprintf(stderr, "device_copy: %s\n%s\n", tsd_last_error(),
            report ? tsd_report_message(report) : "");
  else
    printf("%s\nuploaded %zu tensors (%llu bytes) in %llu chunks: %s\n",
           tsd_report_message(report), n, (unsigned long long)total,
           (unsigned long long)u.chunks,
           e == cudaSuccess ? "ok" : cudaGetErrorString(e));

  /* Spot check: the first tensor back from the device. */
  if (!st && n > 0) {
    tsd_tensor_info info;
    size_t idx;
    tsd_model_tensor(&info, model, 0);
    size_t bytes = (size_t)info.numel * tsd_dtype_size(info.dtype);
    unsigned char *want = malloc(bytes + 1), *got = malloc(bytes + 1);
    if (want && got && tsd_checkpoint_find(&idx, ckpt, info.name) == TSD_OK &&
        tsd_checkpoint_read(want, bytes, ckpt, idx, info.dtype) == TSD_OK &&
        cudaMemcpy(got, u.device, bytes, cudaMemcpyDeviceToHost) == cudaSuccess)
      printf("%s: %s\n", info.name,
             memcmp(want, got, bytes) ? "DIFFERS" : "matches the checkpoint");
    free(want);
    free(got);
  }
  tsd_report_free(report);
  cudaEventDestroy(u.done[0]);
  cudaEventDestroy(u.done[1]);
  cudaStreamDestroy(u.stream);
  cudaFreeHost(staging);
  cudaFree(u.device);
  free(u.offset);
  tsd_model_free(model);
  tsd_checkpoint_free(ckpt);
  return st ? 1 : 0;
}
