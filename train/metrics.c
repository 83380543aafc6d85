#include "train/metrics.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"

/* A metrics file of a very long run is large but never gigabytes. */
#define METRICS_FILE_MAX ((size_t)1 << 31)
#define LINE_CAP 2048

static const char *const train_fields[] = {"step", "loss", "loss_video", "loss_audio", "grad_norm", "lr",
                                           "tokens_per_s", "samples", "epoch", "time_s", NULL};
static const char *const val_fields[] = {"step", "loss", "loss_video", "loss_audio", "clips", NULL};
static const char *const val_ema_fields[] = {"step",  "loss",     "loss_video",     "loss_audio",
                                             "clips", "ema_loss", "ema_loss_video", "ema_loss_audio", NULL};

static cJSON *make_object(const char *kind, const char *const *fields) {
  cJSON *o = cJSON_CreateObject();
  if (!o || !cJSON_AddStringToObject(o, "kind", kind)) {
    cJSON_Delete(o);
    return NULL;
  }
  for (int i = 0; fields[i]; i++)
    if (!cJSON_AddNumberToObject(o, fields[i], 0)) {
      cJSON_Delete(o);
      return NULL;
    }
  return o;
}

static int history_alloc(duet_loss_history *h, int64_t cap) {
  h->n = 0;
  h->cap = cap > 0 ? cap : 1;
  h->step = malloc(sizeof *h->step * (size_t)h->cap);
  h->loss = malloc(sizeof *h->loss * (size_t)h->cap);
  return h->step && h->loss ? 0 : -1;
}

/* Full history is not an error: the plot simply stops there. */
static void history_push(duet_loss_history *h, int64_t step, double loss) {
  if (h->n >= h->cap) return;
  h->step[h->n] = step;
  h->loss[h->n] = (float)loss;
  h->n++;
}

static double get_num(const cJSON *o, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  /* cJSON prints non-finite numbers as null; they read back as NaN. */
  return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* Keeps the lines of steps <= keep_until, rebuilding the history from them. */
static int truncate_to(duet_metrics *m, int64_t keep_until, duet_err *err) {
  char *text;
  size_t size;
  int rc = duet_read_file(m->path, METRICS_FILE_MAX, &text, &size, err);
  if (rc) return rc;
  char *out = malloc(size + 1);
  if (!out) {
    free(text);
    return duet_err_set(err, DUET_ENOMEM, "%s: out of memory", m->path);
  }
  size_t used = 0;
  for (char *line = text; line < text + size;) {
    char *nl = memchr(line, '\n', (size_t)(text + size - line));
    if (!nl) break; /* a torn last line: the step it describes is redone */
    cJSON *o = cJSON_ParseWithLength(line, (size_t)(nl - line));
    const cJSON *step = o ? cJSON_GetObjectItemCaseSensitive(o, "step") : NULL;
    const cJSON *kind = o ? cJSON_GetObjectItemCaseSensitive(o, "kind") : NULL;
    if (cJSON_IsNumber(step) && step->valuedouble <= (double)keep_until && cJSON_IsString(kind)) {
      memcpy(out + used, line, (size_t)(nl - line) + 1);
      used += (size_t)(nl - line) + 1;
      int64_t s = (int64_t)step->valuedouble;
      if (strcmp(kind->valuestring, "train") == 0) history_push(&m->train_hist, s, get_num(o, "loss"));
      else if (strcmp(kind->valuestring, "val") == 0) history_push(&m->val_hist, s, get_num(o, "loss"));
    }
    cJSON_Delete(o);
    line = nl + 1;
  }
  free(text);
  rc = duet_write_file_atomic(m->path, out, used, err);
  free(out);
  return rc;
}

int duet_metrics_open(duet_metrics *m, const char *path, int64_t keep_until, int64_t capacity, duet_err *err) {
  memset(m, 0, sizeof *m);
  if (snprintf(m->path, sizeof m->path, "%s", path) >= (int)sizeof m->path)
    return duet_err_set(err, DUET_EINVAL, "%s: path too long", path);
  m->train = make_object("train", train_fields);
  m->val = make_object("val", val_fields);
  m->val_ema = make_object("val", val_ema_fields);
  m->line_cap = LINE_CAP;
  m->line = malloc((size_t)m->line_cap);
  int64_t val_cap = capacity / 2 + 16;
  if (!m->train || !m->val || !m->val_ema || !m->line || history_alloc(&m->train_hist, capacity) ||
      history_alloc(&m->val_hist, val_cap)) {
    duet_metrics_close(m);
    return duet_err_set(err, DUET_ENOMEM, "%s: out of memory", path);
  }
  int rc = DUET_OK;
  if (keep_until >= 0 && duet_path_exists(path)) rc = truncate_to(m, keep_until, err);
  if (rc) {
    duet_metrics_close(m);
    return rc;
  }
  m->f = fopen(path, keep_until >= 0 ? "a" : "w");
  if (!m->f) {
    rc = duet_err_set(err, DUET_EIO, "%s: cannot open: %s", path, strerror(errno));
    duet_metrics_close(m);
    return rc;
  }
  return DUET_OK;
}

static void set_num(cJSON *o, const char *key, double v) {
  cJSON *item = cJSON_GetObjectItemCaseSensitive(o, key);
  (void)cJSON_SetNumberValue(item, v);
}

static int emit(duet_metrics *m, cJSON *o, duet_err *err) {
  if (!cJSON_PrintPreallocated(o, m->line, m->line_cap, 0))
    return duet_err_set(err, DUET_EINVAL, "%s: metrics line does not fit %d bytes", m->path, m->line_cap);
  /* Flushed per line, so that a killed run keeps every step it finished. */
  if (fputs(m->line, m->f) < 0 || fputc('\n', m->f) < 0 || fflush(m->f) != 0)
    return duet_err_set(err, DUET_EIO, "%s: write failed: %s", m->path, strerror(errno));
  return DUET_OK;
}

int duet_metrics_log_train(duet_metrics *m, const duet_train_record *r, duet_err *err) {
  set_num(m->train, "step", (double)r->step);
  set_num(m->train, "loss", r->loss);
  set_num(m->train, "loss_video", r->loss_video);
  set_num(m->train, "loss_audio", r->loss_audio);
  set_num(m->train, "grad_norm", r->grad_norm);
  set_num(m->train, "lr", r->lr);
  set_num(m->train, "tokens_per_s", r->tokens_per_s);
  set_num(m->train, "samples", (double)r->samples);
  set_num(m->train, "epoch", (double)r->epoch);
  set_num(m->train, "time_s", r->time_s);
  history_push(&m->train_hist, r->step, r->loss);
  return emit(m, m->train, err);
}

int duet_metrics_log_val(duet_metrics *m, const duet_val_record *r, duet_err *err) {
  /* set_num only fills keys the object was made with, hence one object per shape of line. */
  cJSON *o = r->has_ema ? m->val_ema : m->val;
  set_num(o, "step", (double)r->step);
  set_num(o, "loss", r->loss);
  set_num(o, "loss_video", r->loss_video);
  set_num(o, "loss_audio", r->loss_audio);
  set_num(o, "clips", (double)r->clips);
  if (r->has_ema) {
    set_num(o, "ema_loss", r->ema_loss);
    set_num(o, "ema_loss_video", r->ema_loss_video);
    set_num(o, "ema_loss_audio", r->ema_loss_audio);
  }
  history_push(&m->val_hist, r->step, r->loss);
  return emit(m, o, err);
}

void duet_metrics_close(duet_metrics *m) {
  if (m->f) fclose(m->f);
  cJSON_Delete(m->train);
  cJSON_Delete(m->val);
  cJSON_Delete(m->val_ema);
  free(m->line);
  free(m->train_hist.step);
  free(m->train_hist.loss);
  free(m->val_hist.step);
  free(m->val_hist.loss);
  memset(m, 0, sizeof *m);
}
