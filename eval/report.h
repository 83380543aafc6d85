/* duet-eval's outputs: metrics.json for machines and report.md (with PNG figures) for people,
 * every file written under a temporary name and renamed into place. */
#ifndef DUET_EVAL_REPORT_H
#define DUET_EVAL_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "core/error.h"
#include "core/fileio.h" /* duet_mkdir_p, duet_write_file_atomic */
#include "eval/eval.h"
#include "eval/quality.h"

/* Pretty-printed JSON, atomically. Non-finite numbers come out as null. */
int duet_write_json(const char *path, const cJSON *root, duet_err *err);

/* One input of a sync run, as reported: numbers only, so that a long run keeps little. */
typedef struct duet_sync_entry {
  char name[512];
  int ok;
  char error[1024];
  int frames, width, height, sample_rate;
  double fps, duration;
  double offset_ms, confidence, peak_r, frame_ms;
  int within_frame, within_bt1359;
  int has_avalign;
  double avalign, avalign_reference;
  int n_audio, n_video, n_matched;
  int has_events;
  duet_event_score events;
  double seconds;
  char fig_sheet[256], fig_spectrogram[256], fig_offset[256], fig_avalign[256]; /* or "" */
} duet_sync_entry;

void duet_sync_entry_set(duet_sync_entry *e, const char *name, const duet_eval_clip *c,
                         const duet_eval_result *r);
void duet_sync_entry_fail(duet_sync_entry *e, const char *name, const char *message);

/* Draws the clip's figures into out_dir as <stem>-sheet.png, -spectrogram.png, -offset.png,
 * -avalign.png and records their names in e. */
int duet_sync_figures(const char *out_dir, const char *stem, const duet_eval_clip *c,
                      const duet_eval_result *r, duet_sync_entry *e, duet_err *err);

cJSON *duet_sync_entry_json(const duet_sync_entry *e);

/* metrics.json and report.md for a whole run. */
int duet_sync_report_write(const char *out_dir, const duet_sync_entry *entries, int n,
                           double elapsed_s, duet_err *err);

/* A quality comparison of a test against a reference. */
typedef struct duet_quality_entry {
  char ref[512], test[512];
  int has_video;
  duet_video_quality video;
  int width, height;
  int has_audio;
  int sample_rate;
  double lsd;
  duet_mrstft mrstft;
  char feat_ref[512], feat_test[512];
  int has_features;
  double fd, kid;
  int64_t n_ref, n_test;
  int dim;
  char fig_ref_sheet[256], fig_test_sheet[256], fig_ref_spec[256], fig_test_spec[256];
} duet_quality_entry;

/* Contact sheets and spectrograms of both sides (whatever each has) into out_dir. */
int duet_quality_figures(const char *out_dir, const duet_eval_clip *ref,
                         const duet_eval_clip *test, duet_quality_entry *q, duet_err *err);

int duet_quality_report_write(const char *out_dir, const duet_quality_entry *q, duet_err *err);

#endif
