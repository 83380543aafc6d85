#include "eval/input.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "data/clips.h"
#include "data/media.h"

static const char *ext_of(const char *path) {
  const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
  return dot && (!slash || dot > slash) ? dot + 1 : "";
}

int duet_is_clip_file(const char *path) {
  const char *e = ext_of(path);
  return !strcasecmp(e, "h5") || !strcasecmp(e, "hdf5");
}

static int is_media_name(const char *path) {
  static const char *exts[] = {"mp4", "mov", "mkv", "webm", "avi", "m4v", "mpg", "mpeg", "ts",
                               "flv", "gif", "wav", "flac", "mp3", "m4a", "ogg", "opus", "aac"};
  const char *e = ext_of(path);
  for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++)
    if (!strcasecmp(e, exts[i])) return 1;
  return 0;
}

static char *dupstr(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

static int add(duet_eval_sources *s, const char *path, int64_t clip, const char *error,
               duet_err *err) {
  if (s->count == s->cap) {
    int nc = s->cap ? s->cap * 2 : 16;
    duet_eval_source *ni = realloc(s->items, sizeof *ni * (size_t)nc);
    if (!ni) return duet_err_set(err, DUET_ENOMEM, "out of memory listing inputs");
    s->items = ni;
    s->cap = nc;
  }
  duet_eval_source *it = &s->items[s->count];
  memset(it, 0, sizeof *it);
  it->clip = clip;
  it->path = dupstr(path);
  size_t nlen = strlen(path) + 24;
  it->name = malloc(nlen);
  if (it->name) {
    if (clip >= 0) snprintf(it->name, nlen, "%s#%lld", path, (long long)clip);
    else snprintf(it->name, nlen, "%s", path);
  }
  it->error = error ? dupstr(error) : NULL;
  if (!it->path || !it->name || (error && !it->error)) {
    free(it->path);
    free(it->name);
    free(it->error);
    return duet_err_set(err, DUET_ENOMEM, "out of memory listing inputs");
  }
  s->count++;
  return DUET_OK;
}

static int add_clip_file(duet_eval_sources *s, const char *path, duet_err *err) {
  duet_clip_file *f = NULL;
  duet_err e = {0};
  if (duet_clip_file_open(&f, path, &e)) return add(s, path, -1, e.msg, err);
  int64_t n = duet_clip_file_count(f);
  duet_clip_file_close(f);
  if (n == 0) {
    char msg[1200];
    snprintf(msg, sizeof msg, "%s: clip file holds no clips", path);
    return add(s, path, -1, msg, err);
  }
  for (int64_t i = 0; i < n; i++) {
    int rc = add(s, path, i, NULL, err);
    if (rc) return rc;
  }
  return DUET_OK;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static int add_dir(duet_eval_sources *s, const char *dir, duet_err *err) {
  DIR *d = opendir(dir);
  if (!d) {
    char msg[1200];
    snprintf(msg, sizeof msg, "%s: cannot open folder (%s)", dir, strerror(errno));
    return add(s, dir, -1, msg, err);
  }
  char **names = NULL;
  int n = 0, cap = 0, rc = DUET_OK;
  struct dirent *de;
  while ((de = readdir(d))) {
    if (de->d_name[0] == '.') continue;
    if (!is_media_name(de->d_name) && !duet_is_clip_file(de->d_name)) continue;
    if (n == cap) {
      cap = cap ? cap * 2 : 64;
      char **nn = realloc(names, sizeof *nn * (size_t)cap);
      if (!nn) {
        rc = duet_err_set(err, DUET_ENOMEM, "out of memory listing %s", dir);
        break;
      }
      names = nn;
    }
    size_t len = strlen(dir) + strlen(de->d_name) + 2;
    names[n] = malloc(len);
    if (!names[n]) {
      rc = duet_err_set(err, DUET_ENOMEM, "out of memory listing %s", dir);
      break;
    }
    snprintf(names[n], len, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", de->d_name);
    n++;
  }
  closedir(d);
  if (!rc) qsort(names, (size_t)n, sizeof *names, cmp_str);
  for (int i = 0; i < n && !rc; i++)
    rc = duet_is_clip_file(names[i]) ? add_clip_file(s, names[i], err)
                                     : add(s, names[i], -1, NULL, err);
  for (int i = 0; i < n; i++) free(names[i]);
  free(names);
  if (!rc && n == 0) {
    char msg[1200];
    snprintf(msg, sizeof msg, "%s: folder has no media or clip files", dir);
    rc = add(s, dir, -1, msg, err);
  }
  return rc;
}

int duet_eval_sources_collect(char *const *args, int n_args, duet_eval_sources *out,
                              duet_err *err) {
  memset(out, 0, sizeof *out);
  for (int i = 0; i < n_args; i++) {
    struct stat st;
    int rc;
    if (stat(args[i], &st) != 0) {
      char msg[1200];
      snprintf(msg, sizeof msg, "%s: %s", args[i], strerror(errno));
      rc = add(out, args[i], -1, msg, err);
    } else if (S_ISDIR(st.st_mode)) {
      rc = add_dir(out, args[i], err);
    } else if (duet_is_clip_file(args[i])) {
      rc = add_clip_file(out, args[i], err);
    } else {
      rc = add(out, args[i], -1, NULL, err);
    }
    if (rc) {
      duet_eval_sources_free(out);
      return rc;
    }
  }
  return DUET_OK;
}

void duet_eval_sources_free(duet_eval_sources *s) {
  for (int i = 0; i < s->count; i++) {
    free(s->items[i].path);
    free(s->items[i].name);
    free(s->items[i].error);
  }
  free(s->items);
  memset(s, 0, sizeof *s);
}

static int load_clip(const duet_eval_source *s, duet_eval_loaded *out, duet_err *err) {
  duet_clip_file *f = NULL;
  int rc = duet_clip_file_open(&f, s->path, err);
  if (rc) return rc;
  const duet_clip_shape *sh = duet_clip_file_shape(f);
  size_t vbytes = (size_t)sh->frames * sh->height * sh->width * 3;
  out->video = malloc(vbytes ? vbytes : 1);
  out->audio = malloc(sizeof(float) * (size_t)(sh->audio_samples > 0 ? sh->audio_samples : 1));
  float *ev = sh->max_events > 0 ? malloc(sizeof(float) * (size_t)sh->max_events) : NULL;
  int n_ev = 0;
  if (!out->video || !out->audio || (sh->max_events > 0 && !ev)) {
    rc = duet_err_set(err, DUET_ENOMEM, "%s: out of memory", s->name);
    goto done;
  }
  rc = duet_clip_file_read(f, s->clip, out->video, out->audio, NULL, NULL, ev, ev ? &n_ev : NULL,
                           err);
  if (rc) goto done;
  if (n_ev > 0) {
    out->events = malloc(sizeof(double) * (size_t)n_ev);
    if (!out->events) {
      rc = duet_err_set(err, DUET_ENOMEM, "%s: out of memory", s->name);
      goto done;
    }
    for (int i = 0; i < n_ev; i++) out->events[i] = ev[i];
  }
  out->clip = (duet_eval_clip){out->video, sh->frames, sh->height, sh->width, sh->fps,
                               out->audio, sh->audio_samples, sh->sample_rate, out->events, n_ev};
done:
  free(ev);
  duet_clip_file_close(f);
  return rc;
}

static int load_media(const duet_eval_source *s, int need_video, int need_audio,
                      duet_eval_loaded *out, duet_err *err) {
  duet_media_opts o = {0};
  o.need_audio = need_audio;
  duet_media m = {0};
  int rc = duet_media_read(s->path, &o, &m, err);
  if (rc) return rc;
  if (need_video && m.frames < 1) {
    duet_media_free(&m);
    return duet_err_set(err, DUET_EFORMAT, "%s: no video stream", s->name);
  }
  if (need_audio && (!m.has_audio || m.audio_samples < 1)) {
    duet_media_free(&m);
    return duet_err_set(err, DUET_EFORMAT, "%s: no audio stream", s->name);
  }
  /* Take ownership of the buffers; duet_media_free would release them. */
  out->video = m.video;
  out->audio = m.audio;
  out->clip = (duet_eval_clip){m.video, m.frames, m.height, m.width, m.fps, m.audio,
                               m.has_audio ? m.audio_samples : 0, m.sample_rate, NULL, 0};
  return DUET_OK;
}

int duet_eval_source_load(const duet_eval_source *s, int need_video, int need_audio,
                          duet_eval_loaded *out, duet_err *err) {
  memset(out, 0, sizeof *out);
  if (s->error) return duet_err_set(err, DUET_EIO, "%s", s->error);
  int rc = s->clip >= 0 ? load_clip(s, out, err) : load_media(s, need_video, need_audio, out, err);
  if (rc) {
    duet_eval_loaded_free(out);
    /* Make sure the message names the input, whatever layer produced it. */
    if (err && !strstr(err->msg, s->path)) duet_err_prefix(err, "%s: ", s->name);
  }
  return rc;
}

void duet_eval_loaded_free(duet_eval_loaded *l) {
  free(l->video);
  free(l->audio);
  free(l->events);
  memset(l, 0, sizeof *l);
}
