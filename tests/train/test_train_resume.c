/* A resumed run is the run it resumes: 8 steps straight give the same bits as 4 steps, a
 * checkpoint, a lost 5th step, and a resume to 8 (every parameter memcmp-equal, EMA and
 * optimizer files equal, every logged loss equal). The data crosses epochs on the way (20
 * training clips, 3 per micro-batch, 2 micro-batches per step). Also: metrics.jsonl is one
 * valid JSON object per line with one train line per step, and after the first step a step
 * allocates no arena memory. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "testlib.h"
#include "train/trainer.h"
#include "train_fixture.h"

static duet_trainer *create(const char *data, const char *run, int resume) {
  duet_train_config c;
  duet_err err;
  if (resume) {
    CHECK(duet_train_config_load_run(&c, run, &err) == DUET_OK);
  } else if (fx_config(&c, data, run)) {
    return NULL;
  }
  duet_trainer_opts o = {.cfg = &c, .resume = resume};
  duet_trainer *t = NULL;
  int rc = duet_trainer_create(&t, &o, &err);
  CHECK_MSG(rc == DUET_OK, "%s", err.msg);
  return rc ? NULL : t;
}

static int files_equal(const char *a, const char *b) {
  char *da, *db;
  size_t na, nb;
  if (duet_read_file(a, 1u << 30, &da, &na, NULL)) return 0;
  if (duet_read_file(b, 1u << 30, &db, &nb, NULL)) {
    free(da);
    return 0;
  }
  int eq = na == nb && memcmp(da, db, na) == 0;
  free(da);
  free(db);
  return eq;
}

typedef struct logged {
  int train_lines, val_lines, bad_lines;
  int64_t steps[64];
  double loss[64][4];
  double val[16], ema_val[16]; /* ema_val: NaN where a line has no ema_loss */
} logged;

static void read_metrics(const char *run, logged *lg) {
  memset(lg, 0, sizeof *lg);
  char path[4096], *text;
  size_t n;
  snprintf(path, sizeof path, "%s/metrics.jsonl", run);
  if (duet_read_file(path, 1u << 24, &text, &n, NULL)) {
    lg->bad_lines = -1;
    return;
  }
  for (char *line = text; *line;) {
    char *nl = strchr(line, '\n');
    if (!nl) {
      lg->bad_lines++; /* every line ends with a newline */
      break;
    }
    *nl = '\0';
    cJSON *o = cJSON_Parse(line);
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(o, "kind");
    if (!o || !cJSON_IsString(kind)) {
      lg->bad_lines++;
    } else if (!strcmp(kind->valuestring, "train") && lg->train_lines < 64) {
      int i = lg->train_lines++;
      lg->steps[i] = (int64_t)cJSON_GetObjectItemCaseSensitive(o, "step")->valuedouble;
      const char *keys[4] = {"loss", "loss_video", "loss_audio", "grad_norm"};
      for (int k = 0; k < 4; k++) lg->loss[i][k] = cJSON_GetObjectItemCaseSensitive(o, keys[k])->valuedouble;
    } else if (!strcmp(kind->valuestring, "val") && lg->val_lines < 16) {
      const cJSON *ema = cJSON_GetObjectItemCaseSensitive(o, "ema_loss");
      lg->ema_val[lg->val_lines] = cJSON_IsNumber(ema) ? ema->valuedouble : NAN;
      lg->val[lg->val_lines++] = cJSON_GetObjectItemCaseSensitive(o, "loss")->valuedouble;
    }
    cJSON_Delete(o);
    line = nl + 1;
  }
  free(text);
}

int main(void) {
  char data[4096], run_a[4096], run_b[4096];
  fx_path(data, sizeof data, "clips.h5");
  fx_path(run_a, sizeof run_a, "straight");
  fx_path(run_b, sizeof run_b, "resumed");
  if (fx_write_clips(data, 24, 0, 0, 3)) return 1;
  duet_err err;
  duet_train_stats st;

  /* Straight: 8 steps. */
  duet_trainer *a = create(data, run_a, 0);
  if (!a) return test_finish("train_resume");
  int64_t allocs_after_2 = 0;
  for (int s = 0; s < 8; s++) {
    int rc = duet_trainer_step(a, &st, &err);
    CHECK_MSG(rc == DUET_OK, "step %d: %s", s + 1, err.msg);
    if (s == 1) allocs_after_2 = duet_trainer_arena_allocs(a);
  }
  CHECK_EQ_INT(duet_trainer_arena_allocs(a), allocs_after_2);
  CHECK_EQ_INT(duet_trainer_steps_done(a), 8);

  /* Interrupted: 4 steps (checkpoint at 4), a 5th whose result is lost, then resumed. */
  duet_trainer *b = create(data, run_b, 0);
  for (int s = 0; b && s < 5; s++) CHECK_MSG(duet_trainer_step(b, &st, &err) == DUET_OK, "%s", err.msg);
  duet_trainer_free(b);
  b = create(data, run_b, 1);
  if (b) {
    CHECK_EQ_INT(duet_trainer_steps_done(b), 4);
    CHECK_MSG(duet_trainer_run(b, &err) == DUET_OK, "%s", err.msg);
    CHECK_EQ_INT(duet_trainer_steps_done(b), 8);
    const duet_param_set *pa = duet_trainer_params(a), *pb = duet_trainer_params(b);
    CHECK_EQ_INT(pa->count, pb->count);
    int differ = 0;
    for (int i = 0; i < pa->count && i < pb->count; i++)
      if (memcmp(pa->items[i]->data, pb->items[i]->data, duet_tensor_bytes(pa->items[i]))) {
        if (!differ) fprintf(stderr, "first differing parameter: %s\n", pa->items[i]->name);
        differ++;
      }
    CHECK_EQ_INT(differ, 0);
    duet_trainer_free(b);
  }
  duet_trainer_free(a);

  char pa_[4200], pb_[4200];
  const char *parts[2] = {"ema.safetensors", "optim.safetensors"};
  for (int i = 0; i < 2; i++) {
    snprintf(pa_, sizeof pa_, "%s/step_000008/%s", run_a, parts[i]);
    snprintf(pb_, sizeof pb_, "%s/step_000008/%s", run_b, parts[i]);
    CHECK_MSG(files_equal(pa_, pb_), "%s differs", parts[i]);
  }

  logged la, lb;
  read_metrics(run_a, &la);
  read_metrics(run_b, &lb);
  CHECK_EQ_INT(la.bad_lines, 0);
  CHECK_EQ_INT(lb.bad_lines, 0);
  CHECK_EQ_INT(la.train_lines, 8);
  CHECK_EQ_INT(lb.train_lines, 8); /* the lost 5th step's line was dropped on resume */
  for (int i = 0; i < 8 && i < la.train_lines && i < lb.train_lines; i++) {
    CHECK_EQ_INT(la.steps[i], i + 1);
    CHECK_EQ_INT(lb.steps[i], i + 1);
    CHECK_MSG(memcmp(la.loss[i], lb.loss[i], sizeof la.loss[i]) == 0, "step %d: losses %.17g vs %.17g", i + 1,
              la.loss[i][0], lb.loss[i][0]);
  }
  CHECK_EQ_INT(la.val_lines, 2); /* steps 4 and 8 */
  CHECK_EQ_INT(lb.val_lines, 2);
  CHECK(memcmp(la.val, lb.val, sizeof(double) * 2) == 0);
  /* The EMA weights' validation loss is logged beside the training weights' (same clips, same
   * draws), resumes to the same bits, and after 4 steps is not the training weights' loss. */
  for (int i = 0; i < 2; i++) {
    CHECK_MSG(isfinite(la.ema_val[i]) && isfinite(lb.ema_val[i]), "val line %d: ema_loss %g / %g", i, la.ema_val[i],
              lb.ema_val[i]);
    CHECK(la.ema_val[i] == lb.ema_val[i]);
    CHECK(la.ema_val[i] != la.val[i]);
  }
  char png[4200];
  snprintf(png, sizeof png, "%s/loss.png", run_b);
  CHECK(duet_path_exists(png));
  return test_finish("train_resume");
}
