#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "eval/figure.h"
#include "eval/report.h"
#include "eval/strbuf.h"

static void add_num(cJSON *o, const char *key, double v) {
  if (isfinite(v)) cJSON_AddNumberToObject(o, key, v);
  else cJSON_AddNullToObject(o, key);
}

static int save(const char *dir, const char *file, duet_canvas *cv, char *recorded, size_t cap,
                duet_err *err) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, file);
  int rc = duet_image_write_png(path, cv->rgb, cv->width, cv->height, err);
  duet_canvas_free(cv);
  if (!rc) snprintf(recorded, cap, "%s", file);
  return rc;
}

static int side_figures(const char *dir, const char *side, const duet_eval_clip *c, char *sheet,
                        char *spec, size_t cap, duet_err *err) {
  duet_canvas cv;
  char file[64];
  int rc = DUET_OK;
  if (c->video && c->frames > 0) {
    rc = duet_figure_contact_sheet(c->video, c->frames, c->height, c->width, 8, 4, 96, &cv, err);
    snprintf(file, sizeof file, "%s-sheet.png", side);
    if (!rc) rc = save(dir, file, &cv, sheet, cap, err);
  }
  if (!rc && c->audio && c->samples > 0) {
    rc = duet_figure_spectrogram(c->audio, c->samples, c->sample_rate, 800, 200, &cv, err);
    snprintf(file, sizeof file, "%s-spectrogram.png", side);
    if (!rc) rc = save(dir, file, &cv, spec, cap, err);
  }
  return rc;
}

int duet_quality_figures(const char *out_dir, const duet_eval_clip *ref,
                         const duet_eval_clip *test, duet_quality_entry *q, duet_err *err) {
  int rc = side_figures(out_dir, "reference", ref, q->fig_ref_sheet, q->fig_ref_spec,
                        sizeof q->fig_ref_sheet, err);
  if (!rc)
    rc = side_figures(out_dir, "test", test, q->fig_test_sheet, q->fig_test_spec,
                      sizeof q->fig_test_sheet, err);
  return rc;
}

int duet_quality_report_write(const char *out_dir, const duet_quality_entry *q, duet_err *err) {
  cJSON *root = cJSON_CreateObject();
  if (!root) return duet_err_set(err, DUET_ENOMEM, "report: out of memory");
  cJSON_AddStringToObject(root, "command", "quality");
  if (q->ref[0]) cJSON_AddStringToObject(root, "reference", q->ref);
  if (q->test[0]) cJSON_AddStringToObject(root, "test", q->test);
  if (q->has_video) {
    cJSON *v = cJSON_AddObjectToObject(root, "video");
    cJSON_AddNumberToObject(v, "frames", q->video.frames);
    cJSON_AddNumberToObject(v, "width", q->width);
    cJSON_AddNumberToObject(v, "height", q->height);
    add_num(v, "psnr_db", q->video.psnr);
    add_num(v, "mse", q->video.mse);
    add_num(v, "ssim", q->video.ssim);
    add_num(v, "ssim_min_frame", q->video.ssim_min);
    cJSON_AddStringToObject(v, "ssim_channels", "RGB, per channel, averaged");
  }
  if (q->has_audio) {
    cJSON *a = cJSON_AddObjectToObject(root, "audio");
    cJSON_AddNumberToObject(a, "sample_rate", q->sample_rate);
    add_num(a, "log_spectral_distance_db", q->lsd);
    cJSON *m = cJSON_AddObjectToObject(a, "mr_stft");
    add_num(m, "total", q->mrstft.total);
    cJSON *res = cJSON_AddArrayToObject(m, "resolutions");
    for (int i = 0; i < DUET_MRSTFT_RESOLUTIONS; i++) {
      cJSON *r = cJSON_CreateObject();
      cJSON_AddNumberToObject(r, "n_fft", q->mrstft.n_fft[i]);
      add_num(r, "spectral_convergence", q->mrstft.sc[i]);
      add_num(r, "log_magnitude_l1", q->mrstft.mag[i]);
      cJSON_AddItemToArray(res, r);
    }
  }
  if (q->has_features) {
    cJSON *f = cJSON_AddObjectToObject(root, "features");
    cJSON_AddStringToObject(f, "reference", q->feat_ref);
    cJSON_AddStringToObject(f, "test", q->feat_test);
    cJSON_AddNumberToObject(f, "reference_count", (double)q->n_ref);
    cJSON_AddNumberToObject(f, "test_count", (double)q->n_test);
    cJSON_AddNumberToObject(f, "dim", q->dim);
    add_num(f, "frechet_distance", q->fd);
    add_num(f, "kid", q->kid);
  }
  char path[4096];
  snprintf(path, sizeof path, "%s/metrics.json", out_dir);
  int rc = duet_write_json(path, root, err);
  cJSON_Delete(root);
  if (rc) return rc;

  duet_strbuf b = {0};
  char when[64];
  time_t t = time(NULL);
  struct tm tmv;
  gmtime_r(&t, &tmv);
  strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", &tmv);
  duet_sb_printf(&b, "# duet-eval quality\n\n%s · metric definitions: docs/eval.md\n\n", when);
  if (q->ref[0]) duet_sb_printf(&b, "Reference: `%s`  \nTest: `%s`\n\n", q->ref, q->test);
  duet_sb_printf(&b, "| metric | value | better |\n| --- | ---: | --- |\n");
  if (q->has_video) {
    duet_sb_printf(&b, "| PSNR (%d frames, %dx%d) | %.2f dB | higher |\n", q->video.frames,
                   q->width, q->height, q->video.psnr);
    duet_sb_printf(&b, "| SSIM (RGB mean; worst frame %.4f) | %.4f | higher, 1 = identical |\n",
                   q->video.ssim_min, q->video.ssim);
  }
  if (q->has_audio) {
    duet_sb_printf(&b, "| log-spectral distance (%d Hz) | %.3f dB | lower |\n", q->sample_rate,
                   q->lsd);
    duet_sb_printf(&b, "| MR-STFT distance (SC + log-mag, mean of 3) | %.4f | lower |\n",
                   q->mrstft.total);
    for (int i = 0; i < DUET_MRSTFT_RESOLUTIONS; i++)
      duet_sb_printf(&b, "| · n_fft %d: spectral convergence / log-magnitude L1 | %.4f / %.4f | "
                         "lower |\n", q->mrstft.n_fft[i], q->mrstft.sc[i], q->mrstft.mag[i]);
  }
  if (q->has_features) {
    duet_sb_printf(&b, "| Fréchet distance (%lld vs %lld vectors, dim %d) | %.6g | lower |\n",
                   (long long)q->n_ref, (long long)q->n_test, q->dim, q->fd);
    duet_sb_printf(&b, "| KID (cubic polynomial kernel, unbiased MMD²) | %.6g | lower |\n",
                   q->kid);
  }
  if (q->fig_ref_sheet[0] || q->fig_ref_spec[0] || q->fig_test_sheet[0] || q->fig_test_spec[0]) {
    duet_sb_printf(&b, "\n## Figures\n\n");
    if (q->fig_ref_sheet[0])
      duet_sb_printf(&b, "Reference frames\n\n![reference](%s)\n\n", q->fig_ref_sheet);
    if (q->fig_test_sheet[0])
      duet_sb_printf(&b, "Test frames\n\n![test](%s)\n\n", q->fig_test_sheet);
    if (q->fig_ref_spec[0])
      duet_sb_printf(&b, "Reference spectrogram (time in s, frequency in kHz)\n\n"
                         "![reference spectrogram](%s)\n\n",
                     q->fig_ref_spec);
    if (q->fig_test_spec[0])
      duet_sb_printf(&b, "Test spectrogram\n\n![test spectrogram](%s)\n", q->fig_test_spec);
  }
  if (b.failed) {
    duet_sb_free(&b);
    return duet_err_set(err, DUET_ENOMEM, "report: out of memory");
  }
  snprintf(path, sizeof path, "%s/report.md", out_dir);
  rc = duet_write_file_atomic(path, b.s, b.len, err);
  duet_sb_free(&b);
  return rc;
}
