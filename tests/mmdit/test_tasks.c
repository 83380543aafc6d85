/* Every task of the mixture, in both fusion modes and with single-stream tail blocks, gives a
 * finite loss and a gradient on every parameter that should get one — and exactly zero on the
 * few that structurally cannot (the output layer of a modality that carries no loss). */
#include <math.h>
#include <string.h>

#include "batch_fixture.h"
#include "core/optim.h"
#include "testlib.h"
#include "tiny_config.h"

static int contains(const char *s, const char *part) { return strstr(s, part) != NULL; }

/* Parameters that get no gradient under a task, by construction. */
static int expect_zero(const duet_model_config *c, int task, const char *name) {
  int video_loss_off = task == DUET_TASK_V2A || task == DUET_TASK_T2A;
  int audio_loss_off = task == DUET_TASK_A2V || task == DUET_TASK_T2V;
  if (video_loss_off && contains(name, "video.final.")) return 1;
  if (audio_loss_off && contains(name, "audio.final.")) return 1;
  /* With only the audio loss, the last update of the video tokens reaches nothing (with the
   * aligned exchange after it, its cross-attention does). */
  char last[64];
  snprintf(last, sizeof last, "blocks.%d.video_from_audio.", c->depth - 1);
  if (video_loss_off && c->single_depth == 0 && c->aligned_width == 0 && contains(name, last)) return 1;
  /* Likewise the last block's aligned exchange: into the video tokens with only the audio loss,
   * into the audio tokens (and the video reduction that feeds it) with only the video loss. */
  char into_v[80], into_a[80], down[80];
  snprintf(into_v, sizeof into_v, "blocks.%d.aligned.video_from_audio.", c->depth - 1);
  snprintf(into_a, sizeof into_a, "blocks.%d.aligned.audio_from_video.", c->depth - 1);
  snprintf(down, sizeof down, "blocks.%d.aligned.video_down.", c->depth - 1);
  if (video_loss_off && c->single_depth == 0 && contains(name, into_v)) return 1;
  if (audio_loss_off && c->single_depth == 0 && (contains(name, into_a) || contains(name, down))) return 1;
  /* In joint fusion the last block's update of a loss-free modality reaches nothing either:
   * its queries, output projection and MLP. */
  if (c->fusion == DUET_FUSION_JOINT && c->single_depth == 0) {
    const char *parts[3] = {"attn.q_norm.", "attn.proj.", "mlp."};
    for (int i = 0; i < 3; i++) {
      char v[96], a[96];
      snprintf(v, sizeof v, "blocks.%d.video.%s", c->depth - 1, parts[i]);
      snprintf(a, sizeof a, "blocks.%d.audio.%s", c->depth - 1, parts[i]);
      if ((video_loss_off && contains(name, v)) || (audio_loss_off && contains(name, a))) return 1;
    }
  }
  return 0;
}

static double grad_norm(const duet_tensor *p) {
  double s = 0;
  const float *g = p->grad->data;
  for (int64_t i = 0; i < p->numel; i++) s += (double)g[i] * g[i];
  return sqrt(s);
}

static void run_config(const char *label, duet_model_config c) {
  duet_param_set ps;
  duet_params_init(&ps);
  duet_mmdit *m;
  duet_err err;
  CHECK_MSG(duet_mmdit_create(&m, &c, &ps, 7, &err) == DUET_OK, "%s: %s", label, err.msg);
  duet_flow_config fc;
  duet_flow_config_defaults(&fc);
  fc.text_dropout = 0;
  for (int t = 0; t < DUET_TASK_COUNT; t++) fc.task_prob[t] = 1;
  batch_fixture bf;
  batch_fixture_make(&bf, &c, 2, 3);
  duet_adamw opt;
  duet_adamw_config ac = duet_adamw_defaults();
  duet_adamw_init(&opt, &ps, &ac, NULL, NULL, &err);
  duet_graph g;
  duet_graph_init(&g, 1 << 20);
  /* A few steps first: at initialisation the adaLN-Zero gates are zero, which blocks most
   * gradients by design. */
  for (int step = 0; step < 6; step++) {
    duet_graph_reset(&g);
    duet_params_zero_grad(&ps);
    duet_flow_loss fl;
    if (duet_flow_loss_build(&g, m, &fc, &bf.batch, 1, (uint64_t)step, 0, -1, &fl, &err) != DUET_OK ||
        duet_backward(&g, fl.loss, &err) != DUET_OK) {
      CHECK_MSG(0, "%s: warm-up step %d: %s", label, step, err.msg);
      break;
    }
    duet_adamw_step(&opt, 1e-2, &err);
  }
  for (int task = 0; task < DUET_TASK_COUNT; task++) {
    duet_graph_reset(&g);
    duet_params_zero_grad(&ps);
    duet_flow_loss fl;
    int rc = duet_flow_loss_build(&g, m, &fc, &bf.batch, 1, 100, 0, task, &fl, &err);
    CHECK_MSG(rc == DUET_OK, "%s %s: %s", label, duet_task_names[task], err.msg);
    if (rc) continue;
    double loss = duet_tensor_get(fl.loss, 0);
    CHECK_MSG(isfinite(loss) && loss > 0, "%s %s: loss %g", label, duet_task_names[task], loss);
    CHECK(duet_backward(&g, fl.loss, &err) == DUET_OK);
    int wrong = 0;
    for (int i = 0; i < ps.count; i++) {
      const duet_tensor *p = ps.items[i];
      double n = grad_norm(p);
      int zero = expect_zero(&c, task, p->name);
      if (!isfinite(n) || (zero ? n != 0 : n == 0)) {
        if (wrong++ < 5)
          fprintf(stderr, "%s %s: %s has gradient norm %g (expected %s)\n", label, duet_task_names[task], p->name, n,
                  zero ? "zero" : "non-zero");
      }
    }
    CHECK_MSG(wrong == 0, "%s %s: %d parameters with unexpected gradients", label, duet_task_names[task], wrong);
  }
  duet_graph_free(&g);
  duet_adamw_free(&opt);
  batch_fixture_free(&bf);
  duet_mmdit_free(m);
  duet_params_free(&ps);
}

/* flow.audio_lag_*: t2av and i2av samples get t_v <= t_a <= min(1, t_v + max); other tasks
 * and a zero probability keep their old times (the draws come after every other draw). */
static void check_audio_lag(void) {
  duet_model_config c = tiny_model_config();
  duet_param_set ps;
  duet_params_init(&ps);
  duet_mmdit *m;
  duet_err err;
  CHECK_MSG(duet_mmdit_create(&m, &c, &ps, 7, &err) == DUET_OK, "%s", err.msg);
  const int B = 16;
  batch_fixture bf;
  batch_fixture_make(&bf, &c, B, 3);
  duet_graph g;
  duet_graph_init(&g, 1 << 20);
  const int tasks[3] = {DUET_TASK_T2AV, DUET_TASK_I2AV, DUET_TASK_EXTEND};
  for (int k = 0; k < 4; k++) {
    if (k == 3) { /* a negative maximum: the video behind the audio */
      duet_flow_config fc;
      duet_flow_config_defaults(&fc);
      fc.audio_lag_prob = 1.0;
      fc.audio_lag_max = -0.4;
      duet_graph_reset(&g);
      duet_flow_loss fl;
      CHECK_MSG(duet_flow_loss_build(&g, m, &fc, &bf.batch, 5, 9, 0, DUET_TASK_T2AV, &fl, &err) == DUET_OK, "%s", err.msg);
      const float *tv = fl.t_video->data, *ta = fl.t_audio->data;
      float behind = 0;
      for (int i = 0; i < B; i++) {
        float hi = ta[i] + 0.4f < 1 ? ta[i] + 0.4f : 1;
        CHECK_MSG(tv[i] >= ta[i] && tv[i] <= hi + 1e-6f, "t_a %g, t_v %g outside [t_a, %g]", ta[i], tv[i], hi);
        behind += tv[i] - ta[i];
      }
      CHECK_MSG(behind / B > 0.05f, "mean video lag only %g", behind / B);
      continue;
    }
    float shared_v[16], lagged = 0;
    for (int on = 0; on < 2; on++) {
      duet_flow_config fc;
      duet_flow_config_defaults(&fc);
      fc.audio_lag_prob = on ? 1.0 : 0.0;
      fc.audio_lag_max = 0.4;
      duet_graph_reset(&g);
      duet_flow_loss fl;
      CHECK_MSG(duet_flow_loss_build(&g, m, &fc, &bf.batch, 5, 9, 0, tasks[k], &fl, &err) == DUET_OK, "%s", err.msg);
      const float *tv = fl.t_video->data, *ta = fl.t_audio->data;
      for (int i = 0; i < B; i++) {
        if (!on) {
          shared_v[i] = tv[i];
          CHECK_MSG(ta[i] == tv[i], "%s, no lag: t_a %g != t_v %g", duet_task_names[tasks[k]], ta[i], tv[i]);
          continue;
        }
        CHECK_MSG(tv[i] == shared_v[i], "the lag changed t_v of sample %d", i); /* same draws before it */
        if (tasks[k] == DUET_TASK_EXTEND) {
          CHECK_MSG(ta[i] == tv[i], "extend got a lag (t_v %g, t_a %g)", tv[i], ta[i]);
          continue;
        }
        float hi = tv[i] + 0.4f < 1 ? tv[i] + 0.4f : 1;
        CHECK_MSG(ta[i] >= tv[i] && ta[i] <= hi + 1e-6f, "t_v %g, t_a %g outside [t_v, %g]", tv[i], ta[i], hi);
        lagged += ta[i] - tv[i];
      }
    }
    if (tasks[k] != DUET_TASK_EXTEND) CHECK_MSG(lagged / B > 0.05f, "mean lag only %g", lagged / B);
  }
  duet_graph_free(&g);
  batch_fixture_free(&bf);
  duet_mmdit_free(m);
  duet_params_free(&ps);
}

int main(void) {
  check_audio_lag();
  run_config("cross", tiny_model_config());
  duet_model_config joint = tiny_model_config();
  joint.fusion = DUET_FUSION_JOINT;
  joint.width_audio = joint.width_text = joint.width_video;
  joint.heads_audio = joint.heads_text = joint.heads_video;
  run_config("joint", joint);
  duet_model_config single = tiny_model_config();
  single.width_audio = single.width_video;
  single.heads_audio = single.heads_video;
  single.depth = 1;
  single.single_depth = 1;
  run_config("cross+single", single);
  duet_model_config words = tiny_model_config();
  words.text_source = DUET_TEXT_WORDS;
  words.text_vocab = 64;
  run_config("words", words);
  duet_model_config aligned = tiny_model_config();
  aligned.aligned_width = 3;
  run_config("aligned", aligned);
  duet_model_config clean = tiny_model_config();
  clean.video_prediction = clean.audio_prediction = DUET_PREDICT_CLEAN;
  run_config("clean", clean);

  /* A config error names the key. */
  duet_model_config bad = tiny_model_config();
  bad.patch_t = 3;
  duet_param_set ps;
  duet_params_init(&ps);
  duet_mmdit *m = NULL;
  duet_err err;
  CHECK(duet_mmdit_create(&m, &bad, &ps, 1, &err) == DUET_EINVAL && strstr(err.msg, "patch_t"));
  duet_params_free(&ps);
  return test_finish("mmdit_tasks");
}
