/* Calls of the 0.1 API, as scripts/migrate_0_2.py reads them (its test:
 * Migrate.RewritesTheCallsOf01; the result must be v0_2.c). */
static void calls(tsd_checkpoint *ck, tsd_model *m, tsd_report *r) {
  tsd_entry e;
  size_t i;
  const char *k, *v, *key;
  float buf[4];
  uint64_t bytes;
  tsd_tensor_view view;
  tsd_tensor_info info;
  tsd_mismatch mm;
  tsd_checkpoint_entry(&e, ck, 0);
  tsd_checkpoint_find(&i, ck, "fc.weight");
  tsd_checkpoint_select_auto(&key, ck);
  tsd_checkpoint_file_metadata(&k, &v, ck, 0);
  tsd_checkpoint_output_bytes(&bytes, ck);
  tsd_checkpoint_view(&view, ck, f(i, 1));
  tsd_checkpoint_read(buf, sizeof buf, ck, i, TSD_FLOAT32);
  tsd_checkpoint_read_range(buf, sizeof buf, ck, i, TSD_FLOAT32, 0, 4);
  tsd_model_tensor(&info, m, 0);
  tsd_model_find(&i, m, "fc.weight");
  tsd_model_read(buf, sizeof buf, m, i, TSD_FLOAT32);
  tsd_model_read_range(buf, sizeof buf, m, i, TSD_FLOAT32, 0, 4);
  tsd_report_mismatch(&mm, r, TSD_LIST_MISMATCHED, 0);
  k = tsd_checkpoint_file_metadata_string(ck, "format");
  tsd_model_save(m, "out.pth", NULL);
  tsd_model_save(m, "out.pth", NULL);
  tsd_checkpoint_open_torchscript(&ck, "m.pt", NULL);
  tsd_model_open_torchscript_state(&m, "m.pt", NULL);
  tsd_model_open_torchscript(&m, "m.pt", NULL);
  tsd_model_open_torchscript(&m, "m.pt", "cuda:0");
}
