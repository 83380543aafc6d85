/* duet_ingest: files -> windows -> clips. Each file is read in chunks of many clips (one seek
 * and one decoder start-up per chunk, memory bounded at the output size), after a check that
 * its last clip decodes, so that a truncated file is skipped before any of it is written. */
#include "data/ingest.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/clips.h"
#include "data/media.h"

/* Decoded output held at once: bounds a chunk's length. */
#define CHUNK_BYTES ((size_t)256 << 20)
#define CHUNK_MAX_SECONDS 120.0

void duet_ingest_opts_default(duet_ingest_opts *o) {
  memset(o, 0, sizeof *o);
  o->height = 64;
  o->width = 64;
  o->fps = 16.0;
  o->sample_rate = 16000;
  o->clip_seconds = 2.0;
  o->stride_seconds = 2.0;
}

int duet_ingest_opts_check(const duet_ingest_opts *o, duet_err *err) {
  if (o->height < 1 || o->width < 1 || o->height > 8192 || o->width > 8192)
    return duet_err_set(err, DUET_EINVAL, "size must be 1..8192 pixels a side (got %dx%d)",
                        o->width, o->height);
  if (!(o->fps > 0.0) || o->fps > 1000.0)
    return duet_err_set(err, DUET_EINVAL, "fps must be in (0, 1000] (got %g)", o->fps);
  if (o->sample_rate < 1000 || o->sample_rate > 384000)
    return duet_err_set(err, DUET_EINVAL, "sample rate must be 1000..384000 Hz (got %d)",
                        o->sample_rate);
  if (!(o->clip_seconds > 0.0) || lround(o->clip_seconds * o->fps) < 1)
    return duet_err_set(err, DUET_EINVAL, "clip length must be at least one frame (got %g s)",
                        o->clip_seconds);
  if (!(o->stride_seconds > 0.0) || !isfinite(o->stride_seconds))
    return duet_err_set(err, DUET_EINVAL, "stride must be positive (got %g s)", o->stride_seconds);
  return 0;
}

void duet_ingest_report_free(duet_ingest_report *r) {
  if (!r) return;
  free(r->files);
  memset(r, 0, sizeof *r);
}

typedef struct ingest {
  const duet_ingest_opts *o;
  duet_clip_writer *w;
  duet_captions *caps;
  unsigned char *cap_used;
  duet_ingest_report *rep;
  duet_ingest_progress_fn progress;
  void *user;
  int T;                 /* frames per clip */
  int64_t S;             /* samples per clip */
  double clip_dur;       /* T / fps: what a clip really spans */
  double total_bytes, done_bytes;
  double footage_done;
  float *silence;
} ingest;

static void report_progress(ingest *g, int file, const char *path, double file_bytes,
                            double file_fraction) {
  if (!g->progress) return;
  duet_ingest_progress p = {.file = file, .n_files = g->rep->n_files, .path = path,
                            .clips = g->rep->clips, .footage_seconds = g->footage_done};
  double done = g->done_bytes + file_bytes * file_fraction;
  p.fraction = g->total_bytes > 0 ? done / g->total_bytes : 1.0;
  if (p.fraction > 1.0) p.fraction = 1.0;
  g->progress(g->user, &p);
}

/* Appends the clip starting at frame `f0` of a decoded window that starts at `t0`. Returns 1
 * when the window is too short to hold it (the tail of a file), 0 when appended. */
static int append_clip(ingest *g, duet_ingest_file *fr, const duet_media *m, double t0, int f0,
                       duet_err *err) {
  const int T = g->T;
  if (f0 + T > m->frames + 1) return 1;
  size_t fb = (size_t)m->width * m->height * 3;
  uint8_t *video = m->video + fb * (size_t)f0;
  uint8_t *padded = NULL;
  if (f0 + T > m->frames) {
    /* One frame short (rounding at the very end): repeat the last frame. */
    padded = malloc(fb * (size_t)T);
    if (!padded) return duet_err_set(err, DUET_ENOMEM, "out of memory");
    memcpy(padded, video, fb * (size_t)(T - 1));
    memcpy(padded + fb * (size_t)(T - 1), m->video + fb * (size_t)(m->frames - 1), fb);
    video = padded;
  }
  float *audio = g->silence, *audio_buf = NULL;
  if (m->has_audio) {
    int64_t a0 = llround(f0 / g->o->fps * g->o->sample_rate);
    if (a0 + g->S <= m->audio_samples) {
      audio = m->audio + a0;
    } else {
      audio_buf = calloc((size_t)g->S, sizeof *audio_buf);
      if (!audio_buf) {
        free(padded);
        return duet_err_set(err, DUET_ENOMEM, "out of memory");
      }
      for (int64_t i = 0; i < g->S && a0 + i < m->audio_samples; i++) audio_buf[i] = m->audio[a0 + i];
      audio = audio_buf;
    }
  }
  double start = t0 + f0 / g->o->fps;
  char source[4200];
  snprintf(source, sizeof source, "%s@%.3f", fr->path, start);
  int ci = duet_captions_match(g->caps, fr->path, start, start + g->clip_dur);
  duet_clip clip = {.video = video, .audio = audio, .source = source,
                    .caption = ci >= 0 ? duet_captions_text(g->caps, ci) : ""};
  int rc = duet_clip_writer_append(g->w, &clip, err);
  free(padded);
  free(audio_buf);
  if (rc) return rc;
  if (ci >= 0) {
    g->cap_used[ci] = 1;
    g->rep->captioned++;
  }
  fr->clips++;
  g->rep->clips++;
  return 0;
}

static int read_window(ingest *g, const char *path, double start, double duration, int need_audio,
                       duet_media *m, duet_err *err) {
  duet_media_opts mo = {.width = g->o->width, .height = g->o->height, .fps = g->o->fps,
                        .sample_rate = g->o->sample_rate, .start = start,
                        .duration = duration, .need_audio = need_audio};
  return duet_media_read(path, &mo, m, err);
}

/* Returns 0 when the file was handled (ingested, partly ingested or skipped: see fr), or a
 * writer error, which ends the whole run. */
static int ingest_file(ingest *g, int idx, duet_ingest_file *fr, duet_err *err) {
  const duet_ingest_opts *o = g->o;
  const char *path = fr->path;
  struct stat sb;
  double bytes = stat(path, &sb) == 0 ? (double)sb.st_size : 0.0;
  const int need_audio = !o->silent_if_no_audio;
  duet_err e = {0};
  duet_media first = {0}, last = {0};

  /* The first clip doubles as the probe: it says how long the file is and whether it has
   * audio. */
  int rc = read_window(g, path, 0.0, g->clip_dur, need_audio, &first, &e);
  if (rc) {
    fr->status = DUET_INGEST_SKIPPED;
    snprintf(fr->reason, sizeof fr->reason, "%s", e.msg);
    g->done_bytes += bytes;
    return 0;
  }
  fr->seconds = first.duration;
  fr->silent = !first.has_audio;
  double dur = first.duration;
  int64_t n_win = dur + 1e-6 >= g->clip_dur
                      ? (int64_t)floor((dur - g->clip_dur) / o->stride_seconds + 1e-6) + 1 : 0;
  if (n_win < 1 || first.frames < g->T - 1) {
    fr->status = DUET_INGEST_SKIPPED;
    snprintf(fr->reason, sizeof fr->reason, "%s: %.2f s long, shorter than one %.2f s clip", path,
             dur, g->clip_dur);
    duet_media_free(&first);
    g->done_bytes += bytes;
    return 0;
  }
  /* A truncated file usually loses its end: try the last clip before writing any. */
  double last_start = (double)(n_win - 1) * o->stride_seconds;
  if (n_win > 1 && (rc = read_window(g, path, last_start, g->clip_dur, need_audio, &last, &e))) {
    fr->status = DUET_INGEST_SKIPPED;
    snprintf(fr->reason, sizeof fr->reason, "%s", e.msg);
    duet_media_free(&first);
    g->done_bytes += bytes;
    return 0;
  }

  int status = DUET_INGEST_DONE;
  if ((rc = append_clip(g, fr, &first, 0.0, 0, &e)) < 0) goto fatal;
  duet_media_free(&first);

  /* The middle, a chunk of clips per read. */
  size_t per_second = (size_t)(o->fps * o->width * o->height * 3 + o->sample_rate * 4.0);
  double chunk_s = (double)CHUNK_BYTES / (double)(per_second ? per_second : 1);
  if (chunk_s > CHUNK_MAX_SECONDS) chunk_s = CHUNK_MAX_SECONDS;
  int64_t per_chunk = (int64_t)floor((chunk_s - g->clip_dur) / o->stride_seconds) + 1;
  if (per_chunk < 1) per_chunk = 1;
  for (int64_t a = 1; a < n_win - 1;) {
    int64_t b = a + per_chunk < n_win - 1 ? a + per_chunk : n_win - 1;
    double c0 = (double)a * o->stride_seconds;
    double span = (double)(b - 1 - a) * o->stride_seconds + g->clip_dur;
    /* Whole frames, so clip k of the chunk starts on a frame of the chunk. */
    duet_media m = {0};
    rc = read_window(g, path, c0, ceil(span * o->fps - 1e-6) / o->fps, need_audio, &m, &e);
    if (rc) {
      status = DUET_INGEST_PARTIAL;
      snprintf(fr->reason, sizeof fr->reason, "%s", e.msg);
      break;
    }
    for (int64_t k = a; k < b; k++) {
      int f0 = (int)lround(((double)k * o->stride_seconds - c0) * o->fps);
      if ((rc = append_clip(g, fr, &m, c0, f0, &e)) < 0) {
        duet_media_free(&m);
        goto fatal;
      }
    }
    duet_media_free(&m);
    g->footage_done += (double)(b - a) * o->stride_seconds;
    report_progress(g, idx, path, bytes, (double)b / (double)n_win);
    a = b;
  }
  if (n_win > 1 && status == DUET_INGEST_DONE && (rc = append_clip(g, fr, &last, last_start, 0, &e)) < 0)
    goto fatal;
  duet_media_free(&last);
  fr->status = status;
  g->footage_done += g->clip_dur;
  g->done_bytes += bytes;
  return 0;

fatal:
  duet_media_free(&first);
  duet_media_free(&last);
  if (err) *err = e;
  return rc;
}

int duet_ingest(const char *out, const char *const *files, int n_files,
                const duet_ingest_opts *o, duet_ingest_progress_fn progress, void *user,
                duet_ingest_report *rep, duet_err *err) {
  memset(rep, 0, sizeof *rep);
  int rc = duet_ingest_opts_check(o, err);
  if (rc) return rc;
  if (n_files < 1) return duet_err_set(err, DUET_EINVAL, "no input files");
  rep->files = calloc((size_t)n_files, sizeof *rep->files);
  if (!rep->files) return duet_err_set(err, DUET_ENOMEM, "out of memory");
  rep->n_files = n_files;
  for (int i = 0; i < n_files; i++) rep->files[i].path = files[i];

  ingest g = {.o = o, .rep = rep, .progress = progress, .user = user};
  g.T = (int)lround(o->clip_seconds * o->fps);
  g.clip_dur = g.T / o->fps;
  g.S = (int64_t)llround(g.clip_dur * o->sample_rate);
  if (o->captions) {
    if ((rc = duet_captions_load(&g.caps, o->captions, err))) return rc;
    g.cap_used = calloc((size_t)duet_captions_count(g.caps) + 1, 1);
    if (!g.cap_used) {
      duet_captions_free(g.caps);
      return duet_err_set(err, DUET_ENOMEM, "out of memory");
    }
  }
  g.silence = calloc((size_t)g.S, sizeof *g.silence);
  for (int i = 0; i < n_files; i++) {
    struct stat sb;
    if (stat(files[i], &sb) == 0) g.total_bytes += (double)sb.st_size;
  }
  duet_clip_shape shape = {.fps = o->fps, .sample_rate = o->sample_rate, .frames = g.T,
                           .height = o->height, .width = o->width, .audio_samples = g.S};
  duet_clip_writer_opts wo = {.overwrite = o->overwrite, .audio_i16 = o->audio_i16};
  if (!g.silence) rc = duet_err_set(err, DUET_ENOMEM, "out of memory");
  if (!rc) rc = duet_clip_writer_open_opts(&g.w, out, &shape, &wo, err);
  for (int i = 0; !rc && i < n_files; i++) {
    report_progress(&g, i, files[i], 0.0, 0.0);
    rc = ingest_file(&g, i, &rep->files[i], err);
  }
  if (!rc) report_progress(&g, n_files, NULL, 0.0, 0.0);
  if (!rc && rep->clips == 0)
    rc = duet_err_set(err, DUET_EFORMAT, "nothing ingested: none of the %d input file%s gave a clip",
                      n_files, n_files == 1 ? "" : "s");
  if (g.w) {
    if (rc) duet_clip_writer_close(g.w, 0, NULL);
    else rc = duet_clip_writer_close(g.w, 1, err);
  }
  for (int i = 0; i < duet_captions_count(g.caps); i++) rep->unused_captions += !g.cap_used[i];
  duet_captions_free(g.caps);
  free(g.cap_used);
  free(g.silence);
  return rc;
}
