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
  tsd_checkpoint_entry(ck, 0, &e);
  tsd_checkpoint_find(ck, &i, "fc.weight");
  tsd_checkpoint_select_auto(ck, &key);
  tsd_checkpoint_file_metadata(ck, 0, &k, &v);
  tsd_checkpoint_output_bytes(ck, &bytes);
  tsd_checkpoint_view(ck, f(i, 1), &view);
  tsd_checkpoint_read(ck, i, TSD_FLOAT32, buf, sizeof buf);
  tsd_checkpoint_read_range(ck, i, TSD_FLOAT32, 0, 4, buf, sizeof buf);
  tsd_model_tensor(m, 0, &info);
  tsd_model_find(m, &i, "fc.weight");
  tsd_model_read(m, i, TSD_FLOAT32, buf, sizeof buf);
  tsd_model_read_range(m, i, TSD_FLOAT32, 0, 4, buf, sizeof buf);
  tsd_report_mismatch(r, TSD_LIST_MISMATCHED, 0, &mm);
  k = tsd_checkpoint_metadata_string(ck, "format");
  tsd_model_save(m, "out.pth");
  tsd_model_save_ex(m, "out.pth", NULL);
  tsd_checkpoint_open_torchscript(&ck, "m.pt");
  tsd_model_open_torchscript_state(&m, "m.pt");
  tsd_model_open_torchscript(&m, "m.pt", "cpu");
  tsd_model_open_torchscript(&m, "m.pt", "cuda:0");
}
