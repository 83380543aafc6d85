/* A bench run's metrics.json and report.md: generated samples and reference clips side by
 * side, then per case, then figures. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "eval/bench_internal.h"
#include "eval/strbuf.h"
#include "infer/sampler.h"

static const char *const EVENT_NOTE =
    "events of the reference clip a sample derives from (its caption and conditioning): a proxy "
    "for the intended events, since the sample was asked for the same scene, not given its times";

static const char *sampler_name(int k) { return k == DUET_SAMPLER_EULER ? "euler" : "heun"; }

static void add_num(cJSON *o, const char *key, double v) {
  if (isfinite(v)) cJSON_AddNumberToObject(o, key, v);
  else cJSON_AddNullToObject(o, key);
}

/* Means over measured clips, as duet-eval sync summarises. */
typedef struct agg {
  int n, ok, frame, bt, n_av, n_ev;
  double off, abs_off, av, p, r, f1;
} agg;

static void agg_add(agg *a, const duet_sync_entry *e) {
  a->n++;
  if (!e->ok) return;
  a->ok++;
  a->off += e->offset_ms;
  a->abs_off += fabs(e->offset_ms);
  a->frame += e->within_frame;
  a->bt += e->within_bt1359;
  if (e->has_avalign && isfinite(e->avalign)) {
    a->n_av++;
    a->av += e->avalign;
  }
  if (e->has_events) {
    a->n_ev++;
    a->p += e->events.precision;
    a->r += e->events.recall;
    a->f1 += e->events.f1;
  }
}

static double mean(double sum, int n) { return n > 0 ? sum / n : NAN; }

static agg agg_generated(const duet_bench_state *st) {
  agg a = {0};
  for (int i = 0; i < st->n_samples; i++) agg_add(&a, &st->samples[i].sync);
  return a;
}

static agg agg_reference(const duet_bench_state *st) {
  agg a = {0};
  for (int i = 0; i < st->n_refs; i++)
    if (st->refs[i].in_set) agg_add(&a, &st->refs[i].sync);
  return a;
}

static cJSON *agg_json(const agg *a, const char *count_key) {
  cJSON *o = cJSON_CreateObject();
  if (!o) return NULL;
  cJSON_AddNumberToObject(o, count_key, a->n);
  cJSON_AddNumberToObject(o, "measured", a->ok);
  cJSON_AddNumberToObject(o, "failed", a->n - a->ok);
  add_num(o, "mean_offset_ms", mean(a->off, a->ok));
  add_num(o, "mean_abs_offset_ms", mean(a->abs_off, a->ok));
  add_num(o, "fraction_within_one_frame", mean(a->frame, a->ok));
  add_num(o, "fraction_within_bt1359", mean(a->bt, a->ok));
  add_num(o, "mean_av_align", mean(a->av, a->n_av));
  cJSON_AddNumberToObject(o, "av_align_clips", a->n_av);
  add_num(o, "mean_event_precision", mean(a->p, a->n_ev));
  add_num(o, "mean_event_recall", mean(a->r, a->n_ev));
  add_num(o, "mean_event_f1", mean(a->f1, a->n_ev));
  cJSON_AddNumberToObject(o, "event_clips", a->n_ev);
  return o;
}

/* Quality means over the samples that have each figure (finite values only: identical frames
 * give an infinite PSNR). */
typedef struct qagg {
  int n_psnr, n_ssim, n_lsd, n_mr;
  double psnr, ssim, lsd, mr;
} qagg;

static qagg quality_means(const duet_bench_state *st) {
  qagg q = {0};
  for (int i = 0; i < st->n_samples; i++) {
    const duet_bench_sample *s = &st->samples[i];
    if (!s->sync.ok) continue;
    if (s->has_video_q && isfinite(s->video_q.psnr)) q.n_psnr++, q.psnr += s->video_q.psnr;
    if (s->has_video_q && isfinite(s->video_q.ssim)) q.n_ssim++, q.ssim += s->video_q.ssim;
    if (s->has_audio_q && isfinite(s->lsd)) q.n_lsd++, q.lsd += s->lsd;
    if (s->has_audio_q && isfinite(s->mrstft.total)) q.n_mr++, q.mr += s->mrstft.total;
  }
  return q;
}

static void add_mean(cJSON *o, const char *key, double sum, int n) {
  if (!n) return;
  cJSON *m = cJSON_AddObjectToObject(o, key);
  add_num(m, "mean", sum / n);
  cJSON_AddNumberToObject(m, "samples", n);
}

static cJSON *sample_json(const duet_bench_state *st, const duet_bench_sample *s) {
  cJSON *o = duet_sync_entry_json(&s->sync);
  if (!o) return NULL;
  cJSON_AddNumberToObject(o, "seed", (double)s->seed);
  if (s->mp4[0]) cJSON_AddStringToObject(o, "mp4", s->mp4);
  else cJSON_AddNullToObject(o, "mp4");
  add_num(o, "sampling_seconds", s->sample_seconds);
  if (s->mp4[0]) {
    add_num(o, "audio_peak", s->audio_peak);
    cJSON_AddNumberToObject(o, "audio_clipped_samples", (double)s->audio_clipped);
  }
  if (s->has_video_q || s->has_audio_q) {
    cJSON *q = cJSON_AddObjectToObject(o, "quality");
    cJSON_AddNumberToObject(q, "reference_clip", st->suite->cases[s->case_index].clip);
    if (s->has_video_q) {
      cJSON *v = cJSON_AddObjectToObject(q, "video");
      cJSON_AddNumberToObject(v, "from_frame", s->video_from);
      cJSON_AddNumberToObject(v, "frames", s->video_q.frames);
      add_num(v, "psnr_db", s->video_q.psnr);
      add_num(v, "ssim", s->video_q.ssim);
      add_num(v, "ssim_min_frame", s->video_q.ssim_min);
    }
    if (s->has_audio_q) {
      cJSON *a = cJSON_AddObjectToObject(q, "audio");
      add_num(a, "from_s", s->audio_from_s);
      add_num(a, "log_spectral_distance_db", s->lsd);
      add_num(a, "mr_stft_total", s->mrstft.total);
    }
  }
  return o;
}

static cJSON *metrics_json(const duet_bench_state *st) {
  const duet_bench_suite *s = st->suite;
  cJSON *root = cJSON_CreateObject();
  if (!root) return NULL;
  cJSON_AddStringToObject(root, "command", "bench");
  cJSON *su = cJSON_AddObjectToObject(root, "suite");
  cJSON_AddStringToObject(su, "name", s->name);
  cJSON_AddStringToObject(su, "file", s->file);
  cJSON_AddStringToObject(su, "reference", s->reference);
  cJSON_AddNumberToObject(su, "reference_clips", agg_reference(st).n);
  cJSON_AddNumberToObject(su, "cases", s->n_cases);
  cJSON_AddNumberToObject(su, "seeds", s->seeds);
  cJSON_AddNumberToObject(su, "steps", s->defaults.steps);
  cJSON_AddStringToObject(su, "sampler", sampler_name(s->defaults.sampler));
  add_num(su, "cfg_video", s->defaults.cfg_video);
  add_num(su, "cfg_audio", s->defaults.cfg_audio);
  add_num(su, "sync_cfg_video", s->sync_cfg_video);
  add_num(su, "sync_cfg_audio", s->sync_cfg_audio);
  add_num(su, "audio_lag", s->audio_lag);
  if (s->shift > 0) add_num(su, "shift", s->shift);
  else cJSON_AddStringToObject(su, "shift", "checkpoint");
  cJSON_AddBoolToObject(su, "ema", s->ema);
  cJSON_AddStringToObject(root, "checkpoint", st->ckpt);
  cJSON *m = cJSON_AddObjectToObject(root, "clip_shape");
  cJSON_AddNumberToObject(m, "frames", st->shape.frames);
  cJSON_AddNumberToObject(m, "height", st->shape.height);
  cJSON_AddNumberToObject(m, "width", st->shape.width);
  add_num(m, "fps", st->shape.fps);
  cJSON_AddNumberToObject(m, "sample_rate", st->shape.sample_rate);
  cJSON_AddNumberToObject(m, "audio_samples", (double)st->shape.audio_samples);
  cJSON_AddStringToObject(root, "offset_sign", "positive = audio late");
  cJSON_AddStringToObject(root, "event_truth", EVENT_NOTE);

  cJSON *sum = cJSON_AddObjectToObject(root, "summary");
  agg g = agg_generated(st), r = agg_reference(st);
  cJSON_AddItemToObject(sum, "generated", agg_json(&g, "samples"));
  cJSON_AddItemToObject(sum, "reference", agg_json(&r, "clips"));
  qagg q = quality_means(st);
  cJSON *qo = cJSON_AddObjectToObject(sum, "quality");
  add_mean(qo, "video_psnr_db", q.psnr, q.n_psnr);
  add_mean(qo, "video_ssim", q.ssim, q.n_ssim);
  add_mean(qo, "audio_log_spectral_distance_db", q.lsd, q.n_lsd);
  add_mean(qo, "audio_mr_stft_total", q.mr, q.n_mr);

  cJSON *cases = cJSON_AddArrayToObject(root, "cases");
  for (int ci = 0, si = 0; ci < s->n_cases; ci++) {
    const duet_bench_case *c = &s->cases[ci];
    const duet_bench_ref *ref = c->clip >= 0 ? duet_bench_ref_find(st, c->clip) : NULL;
    cJSON *co = cJSON_CreateObject();
    cJSON_AddItemToArray(cases, co);
    cJSON_AddNumberToObject(co, "case", c->number);
    cJSON_AddStringToObject(co, "task", duet_task_names[c->task]);
    cJSON_AddStringToObject(co, "prompt", c->prompt_from_clip && ref ? ref->caption : c->prompt);
    cJSON_AddStringToObject(co, "prompt_source",
                            c->prompt_from_clip ? "reference caption" : "suite");
    if (c->clip >= 0) cJSON_AddNumberToObject(co, "reference_clip", c->clip);
    else cJSON_AddNullToObject(co, "reference_clip");
    cJSON_AddNumberToObject(co, "steps", c->steps);
    cJSON_AddStringToObject(co, "sampler", sampler_name(c->sampler));
    add_num(co, "cfg_video", c->cfg_video);
    add_num(co, "cfg_audio", c->cfg_audio);
    if (c->task == DUET_TASK_EXTEND)
      cJSON_AddNumberToObject(co, "keep_frames",
                              c->keep_frames > 0 ? c->keep_frames : st->shape.frames / 2);
    cJSON *arr = cJSON_AddArrayToObject(co, "samples");
    for (int k = 0; k < s->seeds; k++, si++)
      cJSON_AddItemToArray(arr, sample_json(st, &st->samples[si]));
  }
  cJSON *refs = cJSON_AddArrayToObject(root, "reference");
  for (int i = 0; i < st->n_refs; i++) {
    const duet_bench_ref *rf = &st->refs[i];
    cJSON *o = duet_sync_entry_json(&rf->sync);
    cJSON_AddItemToArray(refs, o);
    if (!o) continue;
    cJSON_AddNumberToObject(o, "clip", rf->clip);
    cJSON_AddBoolToObject(o, "in_summary", rf->in_set);
    if (rf->caption) cJSON_AddStringToObject(o, "caption", rf->caption);
  }
  add_num(root, "seconds", st->seconds);
  return root;
}

/* ---- report.md ---------------------------------------------------------------------------- */

/* A table cell: no '|' or line break, at most max_chars bytes (cut on a UTF-8 boundary). */
static const char *md_cell(const char *s, size_t max_chars, char *buf, size_t cap) {
  size_t j = 0, n = strlen(s);
  int cut = n > max_chars;
  if (cut) {
    n = max_chars;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) n--;
  }
  for (size_t i = 0; i < n && j + 5 < cap; i++) {
    if (s[i] == '|') buf[j++] = '\\';
    buf[j++] = s[i] == '\n' || s[i] == '\r' ? ' ' : s[i];
  }
  if (cut && j + 4 < cap) memcpy(buf + j, "…", 3), j += 3;
  buf[j] = '\0';
  return buf;
}

static void fmt(char *buf, size_t cap, int has, double v, const char *f) {
  if (!has || !isfinite(v)) snprintf(buf, cap, "–");
  else snprintf(buf, cap, f, v);
}

static void count_cell(char *buf, size_t cap, int k, int n) {
  if (n <= 0) snprintf(buf, cap, "–");
  else snprintf(buf, cap, "%d / %d (%.0f %%)", k, n, 100.0 * k / n);
}

static void summary_table(duet_strbuf *b, const agg *g, const agg *r) {
  char x[64], y[64];
  duet_sb_printf(b, "| metric | generated | reference |\n| --- | ---: | ---: |\n");
  duet_sb_printf(b, "| measured | %d / %d | %d / %d |\n", g->ok, g->n, r->ok, r->n);
  fmt(x, sizeof x, g->ok, mean(g->abs_off, g->ok), "%.1f ms");
  fmt(y, sizeof y, r->ok, mean(r->abs_off, r->ok), "%.1f ms");
  duet_sb_printf(b, "| mean abs offset | %s | %s |\n", x, y);
  fmt(x, sizeof x, g->ok, mean(g->off, g->ok), "%+.1f ms");
  fmt(y, sizeof y, r->ok, mean(r->off, r->ok), "%+.1f ms");
  duet_sb_printf(b, "| mean offset | %s | %s |\n", x, y);
  count_cell(x, sizeof x, g->frame, g->ok);
  count_cell(y, sizeof y, r->frame, r->ok);
  duet_sb_printf(b, "| within one frame | %s | %s |\n", x, y);
  count_cell(x, sizeof x, g->bt, g->ok);
  count_cell(y, sizeof y, r->bt, r->ok);
  duet_sb_printf(b, "| within ITU-R BT.1359 (−45 … +125 ms) | %s | %s |\n", x, y);
  fmt(x, sizeof x, g->n_av, mean(g->av, g->n_av), "%.3f");
  fmt(y, sizeof y, r->n_av, mean(r->av, r->n_av), "%.3f");
  duet_sb_printf(b, "| mean AV-Align | %s | %s |\n", x, y);
  if (g->n_ev || r->n_ev) {
    char gx[96], ry[96];
    if (g->n_ev)
      snprintf(gx, sizeof gx, "%.3f / %.3f / %.3f", g->p / g->n_ev, g->r / g->n_ev,
               g->f1 / g->n_ev);
    else snprintf(gx, sizeof gx, "–");
    if (r->n_ev)
      snprintf(ry, sizeof ry, "%.3f / %.3f / %.3f", r->p / r->n_ev, r->r / r->n_ev,
               r->f1 / r->n_ev);
    else snprintf(ry, sizeof ry, "–");
    duet_sb_printf(b, "| events: precision / recall / F1 | %s | %s |\n", gx, ry);
  }
}

static void quality_table(duet_strbuf *b, const qagg *q) {
  if (!q->n_psnr && !q->n_ssim && !q->n_lsd && !q->n_mr) return;
  duet_sb_printf(b,
                 "\n**Quality against the reference clip**, only where a sample has a real "
                 "counterpart for what it generated: frames after the first (i2av), after the kept "
                 "ones (extend) or all (a2v); audio after the kept part (extend) or all (v2a). "
                 "t2av samples share only a caption with their clip and are not compared.\n\n"
                 "| metric | mean | samples |\n| --- | ---: | ---: |\n");
  if (q->n_psnr)
    duet_sb_printf(b, "| video PSNR | %.2f dB | %d |\n", q->psnr / q->n_psnr, q->n_psnr);
  if (q->n_ssim) duet_sb_printf(b, "| video SSIM | %.4f | %d |\n", q->ssim / q->n_ssim, q->n_ssim);
  if (q->n_lsd)
    duet_sb_printf(b, "| audio log-spectral distance | %.2f dB | %d |\n", q->lsd / q->n_lsd,
                   q->n_lsd);
  if (q->n_mr)
    duet_sb_printf(b, "| audio MR-STFT distance | %.4g | %d |\n", q->mr / q->n_mr, q->n_mr);
}

/* offset, ±1 frame, BT.1359, AV-Align, event F1 as table cells. */
static void sync_cells(duet_strbuf *b, const duet_sync_entry *e) {
  if (!e || !e->ok) {
    duet_sb_printf(b, " – | – | – | – | – |");
    return;
  }
  char av[32], f1[32];
  fmt(av, sizeof av, e->has_avalign, e->avalign, "%.3f");
  fmt(f1, sizeof f1, e->has_events, e->events.f1, "%.2f");
  duet_sb_printf(b, " %+.1f | %s | %s | %s | %s |", e->offset_ms, e->within_frame ? "yes" : "no",
                 e->within_bt1359 ? "yes" : "no", av, f1);
}

/* The reference side of a case row: offset, AV-Align, event F1. */
static void ref_cells(duet_strbuf *b, const duet_sync_entry *e) {
  if (!e || !e->ok) {
    duet_sb_printf(b, " – | – | – |");
    return;
  }
  char av[32], f1[32];
  fmt(av, sizeof av, e->has_avalign, e->avalign, "%.3f");
  fmt(f1, sizeof f1, e->has_events, e->events.f1, "%.2f");
  duet_sb_printf(b, " %+.1f | %s | %s |", e->offset_ms, av, f1);
}

static void quality_cell(char *buf, size_t cap, const duet_bench_sample *s) {
  int n = 0;
  buf[0] = '\0';
  if (s->sync.ok && s->has_video_q)
    n += snprintf(buf, cap, "PSNR %.1f dB, SSIM %.3f", s->video_q.psnr, s->video_q.ssim);
  if (s->sync.ok && s->has_audio_q && (size_t)n < cap)
    snprintf(buf + n, cap - (size_t)n, "%sLSD %.1f dB, MR-STFT %.3g", n ? "; " : "", s->lsd,
             s->mrstft.total);
  if (!buf[0]) snprintf(buf, cap, "–");
}

static void cases_table(duet_strbuf *b, const duet_bench_state *st) {
  const duet_bench_suite *s = st->suite;
  duet_sb_printf(
      b,
      "\n## Cases\n\nEach sample next to the reference clip it derives from (event F1 of a "
      "sample: against that clip's events).\n\n"
      "| case | task | seed | prompt | offset (ms) | ±1 frame | BT.1359 | AV-Align | "
      "event F1 | ref clip | ref offset (ms) | ref AV-Align | ref F1 | quality | status |\n"
      "| ---: | --- | ---: | --- | ---: | :---: | :---: | ---: | ---: | ---: | ---: | ---: "
      "| ---: | --- | --- |\n");
  for (int i = 0; i < st->n_samples; i++) {
    const duet_bench_sample *smp = &st->samples[i];
    const duet_bench_case *c = &s->cases[smp->case_index];
    const duet_bench_ref *ref = c->clip >= 0 ? duet_bench_ref_find(st, c->clip) : NULL;
    char prompt[300], q[160], clip[32];
    md_cell(c->prompt_from_clip && ref ? ref->caption : c->prompt, 60, prompt, sizeof prompt);
    duet_sb_printf(b, "| %d | %s | %llu | %s |", c->number, duet_task_names[c->task],
                   (unsigned long long)smp->seed, prompt[0] ? prompt : "(none)");
    sync_cells(b, &smp->sync);
    if (ref) snprintf(clip, sizeof clip, "%d", ref->clip);
    else snprintf(clip, sizeof clip, "–");
    duet_sb_printf(b, " %s |", clip);
    ref_cells(b, ref ? &ref->sync : NULL);
    quality_cell(q, sizeof q, smp);
    duet_sb_printf(b, " %s | %s%s |\n", q, smp->sync.ok ? "ok" : "failed",
                   smp->audio_clipped ? ", audio clipped in the MP4" : "");
  }
}

static void reference_table(duet_strbuf *b, const duet_bench_state *st) {
  duet_sb_printf(
      b,
      "\n## Reference clips\n\nClips of `%s` measured the same way; the summary's "
      "reference column is the first %d.\n\n"
      "| clip | caption | offset (ms) | ±1 frame | BT.1359 | AV-Align | event F1 | status |\n"
      "| ---: | --- | ---: | :---: | :---: | ---: | ---: | --- |\n",
      st->suite->reference, agg_reference(st).n);
  for (int i = 0; i < st->n_refs; i++) {
    const duet_bench_ref *r = &st->refs[i];
    char cap[300];
    md_cell(r->caption ? r->caption : "", 60, cap, sizeof cap);
    duet_sb_printf(b, "| %d%s | %s |", r->clip, r->in_set ? "" : " (not in the summary)", cap);
    sync_cells(b, &r->sync);
    duet_sb_printf(b, " %s |\n", r->sync.ok ? "ok" : "failed");
  }
}

static void failures(duet_strbuf *b, const duet_bench_state *st) {
  int any = 0;
  char msg[2200];
  for (int i = 0; i < st->n_samples + st->n_refs; i++) {
    const duet_sync_entry *e =
        i < st->n_samples ? &st->samples[i].sync : &st->refs[i - st->n_samples].sync;
    if (e->ok) continue;
    if (!any) duet_sb_printf(b, "\n## Failed\n\n");
    any = 1;
    duet_sb_printf(b, "- %s\n", md_cell(e->error, sizeof msg, msg, sizeof msg));
  }
}

static void entry_figures(duet_strbuf *b, const duet_sync_entry *e) {
  duet_sb_printf(b, "Offset %+.1f ms (audio %s), confidence %.1f", e->offset_ms,
                 e->offset_ms >= 0 ? "late" : "early", e->confidence);
  if (e->has_avalign)
    duet_sb_printf(b, "; AV-Align %.3f (%d audio onsets, %d flow peaks, %d matched)", e->avalign,
                   e->n_audio, e->n_video, e->n_matched);
  if (e->has_events)
    duet_sb_printf(b, "; events P %.2f R %.2f F1 %.2f", e->events.precision, e->events.recall,
                   e->events.f1);
  duet_sb_printf(b, ".\n\n");
  if (e->fig_sheet[0]) duet_sb_printf(b, "![frames](%s)\n\n", e->fig_sheet);
  if (e->fig_spectrogram[0]) duet_sb_printf(b, "![spectrogram](%s)\n\n", e->fig_spectrogram);
  if (e->fig_offset[0]) duet_sb_printf(b, "![offset curves](%s)\n\n", e->fig_offset);
  if (e->fig_avalign[0]) duet_sb_printf(b, "![AV-Align](%s)\n\n", e->fig_avalign);
}

static void figures(duet_strbuf *b, const duet_bench_state *st) {
  int any = 0;
  for (int i = 0; i < st->n_samples; i++) {
    const duet_bench_sample *smp = &st->samples[i];
    if (!smp->sync.ok || !smp->sync.fig_offset[0]) continue;
    const duet_bench_case *c = &st->suite->cases[smp->case_index];
    const duet_bench_ref *ref = c->clip >= 0 ? duet_bench_ref_find(st, c->clip) : NULL;
    if (!any)
      duet_sb_printf(
          b,
          "\n## Figures\n\nPer clip: a contact sheet of 8 frames; the spectrogram (time in "
          "s, frequency in kHz, 80 dB range); the offset curves, where the top panel shows "
          "audio onset strength (blue) and video motion energy (orange) as measured, the "
          "middle panel the motion curve shifted by the found offset, and the bottom panel "
          "the correlation against lag in ms with the found offset in red and zero in grey; "
          "the AV-Align panel shows the mean flow magnitude per frame (orange, peaks ticked "
          "on top, grey line at the 0.1 px threshold) and audio onsets (green: matched "
          "within one frame, blue: unmatched).\n");
    any = 1;
    char prompt[1100];
    md_cell(c->prompt_from_clip && ref ? ref->caption : c->prompt, 1000, prompt, sizeof prompt);
    duet_sb_printf(b, "\n### Case %d, seed %llu: %s\n\n> %s\n\n**Generated** (`%s`): ", c->number,
                   (unsigned long long)smp->seed, duet_task_names[c->task],
                   prompt[0] ? prompt : "(no prompt)", smp->mp4);
    entry_figures(b, &smp->sync);
    if (ref && ref->sync.ok && ref->sync.fig_offset[0]) {
      duet_sb_printf(b, "**Reference clip %d**: ", ref->clip);
      entry_figures(b, &ref->sync);
    }
  }
}

static void markdown(duet_strbuf *b, const duet_bench_state *st) {
  const duet_bench_suite *s = st->suite;
  char when[64];
  time_t t = time(NULL);
  struct tm tmv;
  gmtime_r(&t, &tmv);
  strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", &tmv);
  agg g = agg_generated(st), r = agg_reference(st);
  duet_sb_printf(b, "# duet-eval bench: %s\n\n", s->name);
  duet_sb_printf(b,
                 "%s · suite `%s` · checkpoint `%s` · reference `%s` · %d case(s) × %d seed(s) · "
                 "%s, %d steps, cfg %g / %g (video / audio)",
                 when, s->file, st->ckpt, s->reference, s->n_cases, s->seeds,
                 sampler_name(s->defaults.sampler), s->defaults.steps, s->defaults.cfg_video,
                 s->defaults.cfg_audio);
  if (s->sync_cfg_video != 1 || s->sync_cfg_audio != 1)
    duet_sb_printf(b, ", cross-modal guidance %g / %g", s->sync_cfg_video, s->sync_cfg_audio);
  if (s->audio_lag != 0) duet_sb_printf(b, ", audio lag %g", s->audio_lag);
  duet_sb_printf(b, " · %.1f s\n\n", st->seconds);
  duet_sb_printf(b,
                 "Clips: %dx%d, %d frames at %g fps, audio at %d Hz. Offsets are audio relative to "
                 "video: **positive = audio late**. Samples are measured as generated (before MP4 "
                 "coding). Event scores of samples are against the %s. Metric definitions: "
                 "docs/eval.md.\n\n## Generated against reference\n\n",
                 st->shape.width, st->shape.height, st->shape.frames, st->shape.fps,
                 st->shape.sample_rate, EVENT_NOTE);
  summary_table(b, &g, &r);
  qagg q = quality_means(st);
  quality_table(b, &q);
  cases_table(b, st);
  reference_table(b, st);
  failures(b, st);
  figures(b, st);
}

int duet_bench_report_write(const duet_bench_state *st, duet_err *err) {
  cJSON *root = metrics_json(st);
  if (!root) return duet_err_set(err, DUET_ENOMEM, "report: out of memory");
  char path[4096];
  snprintf(path, sizeof path, "%s/metrics.json", st->out_dir);
  int rc = duet_write_json(path, root, err);
  cJSON_Delete(root);
  if (rc) return rc;
  duet_strbuf b = {0};
  markdown(&b, st);
  if (b.failed) {
    duet_sb_free(&b);
    return duet_err_set(err, DUET_ENOMEM, "report: out of memory");
  }
  snprintf(path, sizeof path, "%s/report.md", st->out_dir);
  rc = duet_write_file_atomic(path, b.s, b.len, err);
  duet_sb_free(&b);
  return rc;
}
