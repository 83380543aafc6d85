#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "eval/figure.h"
#include "eval/report.h"
#include "eval/strbuf.h"

static void copy_str(char *dst, size_t cap, const char *src) {
  snprintf(dst, cap, "%s", src ? src : "");
}

void duet_sync_entry_set(duet_sync_entry *e, const char *name, const duet_eval_clip *c,
                         const duet_eval_result *r) {
  memset(e, 0, sizeof *e);
  copy_str(e->name, sizeof e->name, name);
  e->ok = 1;
  e->frames = c->frames;
  e->width = c->width;
  e->height = c->height;
  e->fps = c->fps;
  e->sample_rate = c->sample_rate;
  e->duration = c->frames / c->fps;
  e->offset_ms = r->offset.offset_ms;
  e->confidence = r->offset.confidence;
  e->peak_r = r->offset.peak_r;
  e->frame_ms = r->offset.frame_ms;
  e->within_frame = r->offset.within_frame;
  e->within_bt1359 = r->offset.within_bt1359;
  e->has_avalign = r->has_avalign;
  e->avalign = r->avalign.score;
  e->avalign_reference = r->avalign.score_reference;
  e->n_audio = r->avalign.n_audio;
  e->n_video = r->avalign.n_video;
  e->n_matched = r->avalign.n_matched;
  e->has_events = r->has_events;
  e->events = r->events;
  e->seconds = r->seconds;
}

void duet_sync_entry_fail(duet_sync_entry *e, const char *name, const char *message) {
  memset(e, 0, sizeof *e);
  copy_str(e->name, sizeof e->name, name);
  copy_str(e->error, sizeof e->error, message);
}

static int save(const char *dir, const char *file, duet_canvas *cv, char *recorded, size_t cap,
                duet_err *err) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, file);
  int rc = duet_image_write_png(path, cv->rgb, cv->width, cv->height, err);
  duet_canvas_free(cv);
  if (!rc) copy_str(recorded, cap, file);
  return rc;
}

int duet_sync_figures(const char *out_dir, const char *stem, const duet_eval_clip *c,
                      const duet_eval_result *r, duet_sync_entry *e, duet_err *err) {
  duet_canvas cv;
  char file[300];
  int rc = duet_figure_contact_sheet(c->video, c->frames, c->height, c->width, 8, 4, 96, &cv, err);
  if (!rc) {
    snprintf(file, sizeof file, "%s-sheet.png", stem);
    rc = save(out_dir, file, &cv, e->fig_sheet, sizeof e->fig_sheet, err);
  }
  if (!rc) rc = duet_figure_spectrogram(c->audio, c->samples, c->sample_rate, 800, 200, &cv, err);
  if (!rc) {
    snprintf(file, sizeof file, "%s-spectrogram.png", stem);
    rc = save(out_dir, file, &cv, e->fig_spectrogram, sizeof e->fig_spectrogram, err);
  }
  if (!rc) rc = duet_figure_offset(&r->offset, 800, &cv, err);
  if (!rc) {
    snprintf(file, sizeof file, "%s-offset.png", stem);
    rc = save(out_dir, file, &cv, e->fig_offset, sizeof e->fig_offset, err);
  }
  if (!rc && r->has_avalign) {
    rc = duet_figure_avalign(&r->avalign, c->fps, 800, &cv, err);
    if (!rc) {
      snprintf(file, sizeof file, "%s-avalign.png", stem);
      rc = save(out_dir, file, &cv, e->fig_avalign, sizeof e->fig_avalign, err);
    }
  }
  return rc;
}

static void add_num(cJSON *o, const char *key, double v) {
  if (isfinite(v)) cJSON_AddNumberToObject(o, key, v);
  else cJSON_AddNullToObject(o, key);
}

cJSON *duet_sync_entry_json(const duet_sync_entry *e) {
  cJSON *o = cJSON_CreateObject();
  if (!o) return NULL;
  cJSON_AddStringToObject(o, "input", e->name);
  cJSON_AddStringToObject(o, "status", e->ok ? "ok" : "failed");
  if (!e->ok) {
    cJSON_AddStringToObject(o, "error", e->error);
    return o;
  }
  cJSON *clip = cJSON_AddObjectToObject(o, "clip");
  cJSON_AddNumberToObject(clip, "frames", e->frames);
  cJSON_AddNumberToObject(clip, "width", e->width);
  cJSON_AddNumberToObject(clip, "height", e->height);
  add_num(clip, "fps", e->fps);
  cJSON_AddNumberToObject(clip, "sample_rate", e->sample_rate);
  add_num(clip, "duration_s", e->duration);
  cJSON *off = cJSON_AddObjectToObject(o, "offset");
  add_num(off, "offset_ms", e->offset_ms);
  add_num(off, "confidence", e->confidence);
  add_num(off, "peak_correlation", e->peak_r);
  add_num(off, "frame_ms", e->frame_ms);
  cJSON_AddBoolToObject(off, "within_one_frame", e->within_frame);
  cJSON_AddBoolToObject(off, "within_bt1359", e->within_bt1359);
  if (e->has_avalign) {
    cJSON *av = cJSON_AddObjectToObject(o, "av_align");
    add_num(av, "score", e->avalign);
    add_num(av, "score_reference_counting", e->avalign_reference);
    cJSON_AddNumberToObject(av, "audio_peaks", e->n_audio);
    cJSON_AddNumberToObject(av, "video_peaks", e->n_video);
    cJSON_AddNumberToObject(av, "matched", e->n_matched);
  }
  if (e->has_events) {
    cJSON *ev = cJSON_AddObjectToObject(o, "events");
    cJSON_AddNumberToObject(ev, "truth", e->events.n_truth);
    cJSON_AddNumberToObject(ev, "detected", e->events.n_detected);
    cJSON_AddNumberToObject(ev, "matched", e->events.n_matched);
    add_num(ev, "precision", e->events.precision);
    add_num(ev, "recall", e->events.recall);
    add_num(ev, "f1", e->events.f1);
    add_num(ev, "mean_offset_ms", e->events.mean_offset_ms);
  }
  add_num(o, "seconds", e->seconds);
  return o;
}

typedef struct summary {
  int ok, failed, frame, bt, n_av, n_ev;
  double sum_off, sum_abs, av, av_ref, f1, prec, rec;
} summary;

static summary summarise(const duet_sync_entry *es, int n) {
  summary s = {0};
  for (int i = 0; i < n; i++) {
    const duet_sync_entry *e = &es[i];
    if (!e->ok) {
      s.failed++;
      continue;
    }
    s.ok++;
    s.sum_off += e->offset_ms;
    s.sum_abs += fabs(e->offset_ms);
    s.frame += e->within_frame;
    s.bt += e->within_bt1359;
    if (e->has_avalign && isfinite(e->avalign)) {
      s.n_av++;
      s.av += e->avalign;
      s.av_ref += isfinite(e->avalign_reference) ? e->avalign_reference : 0;
    }
    if (e->has_events) {
      s.n_ev++;
      s.f1 += e->events.f1;
      s.prec += e->events.precision;
      s.rec += e->events.recall;
    }
  }
  return s;
}

static const char *md_cell(const char *s, char *buf, size_t cap) {
  size_t j = 0;
  for (size_t i = 0; s[i] && j + 2 < cap; i++) {
    if (s[i] == '|') buf[j++] = '\\';
    buf[j++] = s[i] == '\n' ? ' ' : s[i];
  }
  buf[j] = '\0';
  return buf;
}

static void fmt_opt(char *buf, size_t cap, int has, double v, const char *fmt) {
  if (!has || !isfinite(v)) snprintf(buf, cap, "–");
  else snprintf(buf, cap, fmt, v);
}

static void write_markdown(duet_strbuf *b, const duet_sync_entry *es, int n, double elapsed) {
  summary s = summarise(es, n);
  char when[64];
  time_t t = time(NULL);
  struct tm tmv;
  gmtime_r(&t, &tmv);
  strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", &tmv);
  duet_sb_printf(b, "# duet-eval sync\n\n%s · %d input(s): %d measured, %d failed · %.1f s\n\n",
                 when, n, s.ok, s.failed, elapsed);
  duet_sb_printf(b, "Offsets are audio relative to video: **positive = audio late**. "
                    "Metric definitions: docs/eval.md.\n\n## Summary\n\n| metric | value |\n"
                    "| --- | --- |\n");
  if (s.ok) {
    duet_sb_printf(b, "| mean offset | %+.1f ms |\n| mean abs offset | %.1f ms |\n",
                   s.sum_off / s.ok, s.sum_abs / s.ok);
    duet_sb_printf(b, "| within one frame | %d / %d (%.0f %%) |\n", s.frame, s.ok,
                   100.0 * s.frame / s.ok);
    duet_sb_printf(b, "| within ITU-R BT.1359 (-45 .. +125 ms) | %d / %d (%.0f %%) |\n", s.bt,
                   s.ok, 100.0 * s.bt / s.ok);
  }
  if (s.n_av)
    duet_sb_printf(b, "| mean AV-Align | %.3f (reference counting %.3f; over %d) |\n",
                   s.av / s.n_av, s.av_ref / s.n_av, s.n_av);
  if (s.n_ev)
    duet_sb_printf(b, "| events: mean precision / recall / F1 | %.3f / %.3f / %.3f (over %d) |\n",
                   s.prec / s.n_ev, s.rec / s.n_ev, s.f1 / s.n_ev, s.n_ev);
  duet_sb_printf(b, "| failed inputs | %d |\n\n", s.failed);

  duet_sb_printf(b, "## Clips\n\n| # | input | offset (ms) | confidence | ±1 frame | BT.1359 | "
                    "AV-Align | event F1 | status |\n| ---: | --- | ---: | ---: | :---: | :---: | "
                    "---: | ---: | --- |\n");
  for (int i = 0; i < n; i++) {
    const duet_sync_entry *e = &es[i];
    char name[1100], av[32], f1[32];
    md_cell(e->name, name, sizeof name);
    if (!e->ok) {
      duet_sb_printf(b, "| %d | %s | – | – | – | – | – | – | failed |\n", i + 1, name);
      continue;
    }
    fmt_opt(av, sizeof av, e->has_avalign, e->avalign, "%.3f");
    fmt_opt(f1, sizeof f1, e->has_events, e->events.f1, "%.3f");
    duet_sb_printf(b, "| %d | %s | %+.1f | %.1f | %s | %s | %s | %s | ok |\n", i + 1, name,
                   e->offset_ms, e->confidence, e->within_frame ? "yes" : "no",
                   e->within_bt1359 ? "yes" : "no", av, f1);
  }
  if (s.failed) {
    duet_sb_printf(b, "\n## Failed inputs\n\n");
    for (int i = 0; i < n; i++)
      if (!es[i].ok) {
        char msg[2200];
        duet_sb_printf(b, "- %s\n", md_cell(es[i].error, msg, sizeof msg));
      }
  }
  int any_fig = 0;
  for (int i = 0; i < n; i++) {
    const duet_sync_entry *e = &es[i];
    if (!e->ok || !e->fig_offset[0]) continue;
    if (!any_fig) {
      duet_sb_printf(b,
                     "\n## Figures\n\nPer clip: a contact sheet of 8 frames; the spectrogram "
                     "(time in s, frequency in kHz, 80 dB range); the offset curves, where the "
                     "top panel shows audio onset strength (blue) and video motion energy "
                     "(orange) as measured, the middle panel the motion curve shifted by the "
                     "found offset, and the bottom panel the correlation against lag in ms with "
                     "the found offset in red and zero in grey; the AV-Align panel shows the "
                     "mean flow magnitude per frame (orange, peaks ticked on top, grey line at "
                     "the 0.1 px threshold) and audio onsets (green: matched within one frame, "
                     "blue: unmatched).\n");
      any_fig = 1;
    }
    char name[1100];
    duet_sb_printf(b, "\n### %d. %s\n\nOffset %+.1f ms (audio %s), confidence %.1f", i + 1,
                   md_cell(e->name, name, sizeof name), e->offset_ms,
                   e->offset_ms >= 0 ? "late" : "early", e->confidence);
    if (e->has_avalign)
      duet_sb_printf(b, "; AV-Align %.3f (%d audio onsets, %d flow peaks, %d matched)",
                     e->avalign, e->n_audio, e->n_video, e->n_matched);
    if (e->has_events)
      duet_sb_printf(b, "; events P %.2f R %.2f F1 %.2f, mean offset %+.1f ms", e->events.precision,
                     e->events.recall, e->events.f1, e->events.mean_offset_ms);
    duet_sb_printf(b, ".\n\n");
    if (e->fig_sheet[0]) duet_sb_printf(b, "![frames](%s)\n\n", e->fig_sheet);
    if (e->fig_spectrogram[0]) duet_sb_printf(b, "![spectrogram](%s)\n\n", e->fig_spectrogram);
    duet_sb_printf(b, "![offset curves](%s)\n\n", e->fig_offset);
    if (e->fig_avalign[0]) duet_sb_printf(b, "![AV-Align](%s)\n\n", e->fig_avalign);
  }
}

int duet_sync_report_write(const char *out_dir, const duet_sync_entry *entries, int n,
                           double elapsed_s, duet_err *err) {
  summary s = summarise(entries, n);
  cJSON *root = cJSON_CreateObject();
  if (!root) return duet_err_set(err, DUET_ENOMEM, "report: out of memory");
  cJSON_AddStringToObject(root, "command", "sync");
  cJSON_AddStringToObject(root, "offset_sign", "positive = audio late");
  cJSON *sum = cJSON_AddObjectToObject(root, "summary");
  cJSON_AddNumberToObject(sum, "inputs", n);
  cJSON_AddNumberToObject(sum, "measured", s.ok);
  cJSON_AddNumberToObject(sum, "failed", s.failed);
  add_num(sum, "mean_offset_ms", s.ok ? s.sum_off / s.ok : NAN);
  add_num(sum, "mean_abs_offset_ms", s.ok ? s.sum_abs / s.ok : NAN);
  add_num(sum, "fraction_within_one_frame", s.ok ? (double)s.frame / s.ok : NAN);
  add_num(sum, "fraction_within_bt1359", s.ok ? (double)s.bt / s.ok : NAN);
  add_num(sum, "mean_av_align", s.n_av ? s.av / s.n_av : NAN);
  add_num(sum, "mean_event_f1", s.n_ev ? s.f1 / s.n_ev : NAN);
  add_num(sum, "seconds", elapsed_s);
  cJSON *arr = cJSON_AddArrayToObject(root, "clips");
  for (int i = 0; i < n; i++) cJSON_AddItemToArray(arr, duet_sync_entry_json(&entries[i]));
  char path[4096];
  snprintf(path, sizeof path, "%s/metrics.json", out_dir);
  int rc = duet_write_json(path, root, err);
  cJSON_Delete(root);
  if (rc) return rc;
  duet_strbuf b = {0};
  write_markdown(&b, entries, n, elapsed_s);
  if (b.failed) {
    duet_sb_free(&b);
    return duet_err_set(err, DUET_ENOMEM, "report: out of memory");
  }
  snprintf(path, sizeof path, "%s/report.md", out_dir);
  rc = duet_write_file_atomic(path, b.s, b.len, err);
  duet_sb_free(&b);
  return rc;
}
