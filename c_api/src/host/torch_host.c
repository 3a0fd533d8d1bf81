/* torch_host.c — the table libtsd lends libtsd_torch (see torch_host.h). */
#include "torch_host.h"

#include "write.h"

/* tsd__value_new with its kind as an int (the table's plain-C type). */
static tsd__value *value_new(tsd__arena *a, int kind) {
  return tsd__value_new(a, (tsd__vkind)kind);
}

static const tsd__torch_host host = {
    TSD__TORCH_HOST_ABI,      TSD_VERSION_NUMBER,
    sizeof(tsd__torch_host),  tsd__err,
    sizeof(struct tsd_model), sizeof(struct tsd_checkpoint),
    sizeof(tsd__value),       sizeof(tsd__tensor),
    sizeof(tsd__storage),     sizeof(tsd__mtensor),
    tsd__mem_calloc,          tsd__mem_strdup,
    tsd__arena_init,          tsd__arena_alloc,
    tsd__strmap_init,         tsd__convert,
    tsd__open_regular,        tsd__tensor_read,
    tsd__model_create,        tsd__model_add,
    tsd__model_module,        tsd__afile_write,
    tsd__torchscript_check,   tsd__ckpt_val,
    tsd__object_class,        tsd__type_repr,
    tsd__checkpoint_new,      tsd__checkpoint_adopt,
    tsd__allocator_check,
    value_new,
    tsd__value_str,
    tsd__value_int,
    tsd__value_dict,
    tsd__value_dict_set,
};

TSD_API const tsd__torch_host *tsd__torch_host_get(void) { return &host; }
