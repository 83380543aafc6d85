/* Benchmark suites end to end on a tiny random-weight checkpoint and a tiny duet-synth reference
 * file of the same shape: a t2av case prompted by a reference caption, a v2a and an i2av case;
 * metrics.json with every case, finite values where defined, reference aggregates and quality
 * only where a counterpart exists; report.md; MP4s that decode; suite errors naming the key;
 * shape mismatch and missing checkpoint errors; the duet-eval bench command line. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>
#ifdef DUET_HAVE_FFMPEG
#include <libavutil/log.h>
#endif

#include "core/checkpoint.h"
#include "data/media.h"
#include "data/synth.h"
#include "eval/bench.h"
#include "infer/pipeline.h"
#include "testlib.h"

static char dir[512];

/* 1 s clips of 16x16 at 16 fps with 16 kHz audio: the offset needs at least half a second. */
static duet_model_config tiny_model(void) {
  duet_model_config c;
  duet_model_config_defaults(&c);
  c.video_frames = 16;
  c.video_height = 16;
  c.video_width = 16;
  c.patch_t = 2;
  c.patch_h = 8;
  c.patch_w = 8;
  c.fps = 16;
  c.audio_frames = 64;
  c.audio_channels = 64;
  c.patch_a = 4;
  c.audio_rate = 64;
  c.width_video = 32;
  c.width_audio = 32;
  c.width_text = 32;
  c.heads_video = 2;
  c.heads_audio = 2;
  c.heads_text = 2;
  c.depth = 1;
  c.text_len = 16;
  c.text_layers = 1;
  c.rope_time_pairs = 4;
  return c;
}

static int make_ckpt(const char *run_dir, duet_err *err) {
  duet_model_config mc = tiny_model();
  duet_flow_config fc;
  duet_flow_config_defaults(&fc);
  duet_audio_settings ac;
  duet_audio_settings_default(&ac);
  ac.gl_iters = 4;
  duet_pipeline *p = NULL;
  int rc = duet_pipeline_create(&p, &mc, &fc, &ac, err);
  if (rc) return rc;
  /* Non-zero output layers, so that samples move and make sound. */
  for (int i = 0; i < p->params.count; i++) {
    float *d = p->params.items[i]->data;
    for (int64_t j = 0; j < p->params.items[i]->numel; j++)
      if (d[j] == 0.0f) d[j] = 0.01f * (float)((j * 7 + i) % 13 - 6);
  }
  char *text = NULL;
  rc = duet_pipeline_config_text(p, &text, err);
  if (!rc) {
    const char *meta[3] = {DUET_CONFIG_META_KEY, text, NULL};
    duet_train_state st;
    duet_train_state_init(&st);
    duet_ckpt c = {&p->params, NULL, NULL, &st, meta};
    rc = duet_ckpt_save(run_dir, &c, NULL, 0, err);
    duet_train_state_free(&st);
  }
  free(text);
  duet_pipeline_free(p);
  return rc;
}

static int make_reference(const char *path, int size, duet_err *err) {
  duet_synth_params sp;
  duet_synth_params_default(&sp);
  sp.frames = 16;
  sp.height = sp.width = size;
  sp.fps = 16;
  sp.sample_rate = 16000;
  sp.max_objects = 2;
  sp.seed = 7;
  duet_synth_write_opts wo = {.count = 4, .threads = 1, .overwrite = 1};
  return duet_synth_write(path, &sp, &wo, err);
}

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  CHECK(f != NULL);
  if (!f) return;
  fputs(text, f);
  fclose(f);
}

static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *s = malloc((size_t)n + 1);
  if (s && fread(s, 1, (size_t)n, f) != (size_t)n) n = 0;
  if (s) s[n] = '\0';
  fclose(f);
  return s;
}

static const cJSON *at(const cJSON *o, const char *key) {
  return cJSON_GetObjectItemCaseSensitive(o, key);
}

static int finite_at(const cJSON *o, const char *a, const char *b) {
  const cJSON *x = at(o, a);
  if (b) x = at(x, b);
  return cJSON_IsNumber(x) && isfinite(x->valuedouble);
}

static void write_suite(const char *path, const char *reference, const char *extra) {
  char text[4096];
  snprintf(text, sizeof text,
           "[suite]\nname = tiny\nreference = %s\nreference_clips = 3\n"
           "; case 0: t2av prompted by reference clip 0's caption\n"
           "prompts_from_reference = 1\n"
           "steps = 2\nsampler = heun\ncfg_video = 2\ncfg_audio = 2\nseed = 5\nfigures = 2\n\n"
           "[case.1]\ntask = v2a\n\n[case.2]\ntask = i2av\nprompt = a red ball bounces\n%s",
           reference, extra);
  write_text(path, text);
}

static void check_metrics(const char *out, const char *reference, int figures) {
  char p[1024];
  snprintf(p, sizeof p, "%s/metrics.json", out);
  char *s = slurp(p);
  cJSON *j = s ? cJSON_Parse(s) : NULL;
  free(s);
  CHECK_MSG(j != NULL, "%s unreadable", p);
  if (!j) return;
  const cJSON *sum = at(j, "summary");
  const cJSON *gen = at(sum, "generated");
  const cJSON *ref = at(sum, "reference");
  CHECK_EQ_INT(at(gen, "samples")->valueint, 3);
  CHECK_EQ_INT(at(gen, "measured")->valueint, 3);
  CHECK_EQ_INT(at(ref, "clips")->valueint, 3);
  CHECK_EQ_INT(at(ref, "measured")->valueint, 3);
  const char *aggs[] = {"mean_abs_offset_ms", "fraction_within_one_frame", "fraction_within_bt1359",
                        "mean_av_align", "mean_event_f1"};
  for (int i = 0; i < 5; i++) {
    CHECK_MSG(finite_at(gen, aggs[i], NULL), "generated %s", aggs[i]);
    CHECK_MSG(finite_at(ref, aggs[i], NULL), "reference %s", aggs[i]);
  }
  const cJSON *q = at(sum, "quality");
  CHECK(finite_at(q, "video_psnr_db", "mean") &&
        finite_at(q, "audio_log_spectral_distance_db", "mean"));
  CHECK_EQ_INT(at(at(q, "video_psnr_db"), "samples")->valueint, 1);

  const cJSON *cases = at(j, "cases");
  CHECK_EQ_INT(cJSON_GetArraySize(cases), 3);
  const char *tasks[] = {"t2av", "v2a", "i2av"};
  for (int i = 0; i < 3 && i < cJSON_GetArraySize(cases); i++) {
    const cJSON *c = cJSON_GetArrayItem(cases, i);
    CHECK_EQ_INT(at(c, "case")->valueint, i);
    CHECK(!strcmp(at(c, "task")->valuestring, tasks[i]));
    CHECK_EQ_INT(at(c, "reference_clip")->valueint, i);
    const cJSON *smp = cJSON_GetArrayItem(at(c, "samples"), 0);
    CHECK_MSG(!strcmp(at(smp, "status")->valuestring, "ok"), "case %d: %s", i, cJSON_Print(smp));
    CHECK_EQ_INT(at(smp, "seed")->valueint, 5);
    CHECK(finite_at(smp, "offset", "offset_ms") && finite_at(smp, "offset", "confidence"));
    CHECK(cJSON_IsObject(at(smp, "av_align")));
    /* Every case derives from a clip with events, so event scores are there ... */
    CHECK(finite_at(smp, "events", "f1") && finite_at(smp, "events", "truth"));
    /* ... and quality only where the sample has a counterpart for what it generated. */
    const cJSON *qs = at(smp, "quality");
    if (i == 0) CHECK(qs == NULL);
    if (i == 1) CHECK(finite_at(qs, "audio", "log_spectral_distance_db") && !at(qs, "video"));
    if (i == 2) {
      CHECK(finite_at(qs, "video", "psnr_db") && finite_at(qs, "video", "ssim") &&
            !at(qs, "audio"));
      CHECK_EQ_INT(at(at(qs, "video"), "from_frame")->valueint, 1);
      CHECK(!strcmp(at(c, "prompt")->valuestring, "a red ball bounces"));
    }
    /* The MP4 decodes to the model's shape, with sound. */
    const cJSON *mp4 = at(smp, "mp4");
    CHECK(cJSON_IsString(mp4));
    if (cJSON_IsString(mp4)) {
      char path[1024];
      snprintf(path, sizeof path, "%s/%s", out, mp4->valuestring);
      duet_media m = {0};
      duet_media_opts mo = {0};
      duet_err err = {0};
      CHECK_MSG(duet_media_read(path, &mo, &m, &err) == DUET_OK, "%s", err.msg);
      CHECK(m.frames == 16 && m.width == 16 && m.height == 16 && m.has_audio);
      duet_media_free(&m);
    }
  }
  /* Case 0's prompt is reference clip 0's caption. */
  const cJSON *refs = at(j, "reference");
  CHECK_EQ_INT(cJSON_GetArraySize(refs), 3);
  const cJSON *c0 = cJSON_GetArrayItem(cases, 0), *r0 = cJSON_GetArrayItem(refs, 0);
  CHECK(c0 && r0 && !strcmp(at(c0, "prompt")->valuestring, at(r0, "caption")->valuestring));
  CHECK(!strcmp(at(at(j, "suite"), "reference")->valuestring, reference));
  cJSON_Delete(j);

  snprintf(p, sizeof p, "%s/report.md", out);
  char *md = slurp(p);
  CHECK(md && strstr(md, "# duet-eval bench: tiny") &&
        strstr(md, "| metric | generated | reference |") && strstr(md, "| 1 | v2a | 5 |"));
  /* Figures for the first two samples and their reference clips, none for the third. */
  CHECK(!md || !figures ||
        (strstr(md, "case-00-seed-5-offset.png") && strstr(md, "reference-0001-sheet.png") &&
         !strstr(md, "case-02-seed-5-offset.png")));
  CHECK(!md || figures || !strstr(md, "## Figures"));
  free(md);
  snprintf(p, sizeof p, "%s/metrics.json.tmp", out);
  struct stat st;
  CHECK(stat(p, &st) != 0);
}

static int tool(const char *args, char **err_out) {
  char cmd[8192], errf[700];
  snprintf(errf, sizeof errf, "%s/tool-err.txt", dir);
  snprintf(cmd, sizeof cmd, "%s %s > /dev/null 2> %s", DUET_EVAL_BIN, args, errf);
  int rc = system(cmd);
  if (err_out) *err_out = slurp(errf);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static int lines(const char *s) {
  int n = 0;
  for (; s && *s; s++) n += *s == '\n';
  return n;
}

int main(void) {
#ifdef DUET_HAVE_FFMPEG
  av_log_set_level(AV_LOG_ERROR); /* the encoders' notes would bury the test's own lines */
#endif
  snprintf(dir, sizeof dir, "%s", test_tmpdir());
  duet_err err = {0};
  char run_dir[600], ckpt[700], ref[600], ref_big[600], suite[600], out[600];
  snprintf(run_dir, sizeof run_dir, "%s/run", dir);
  snprintf(ckpt, sizeof ckpt, "%s/last", run_dir);
  snprintf(ref, sizeof ref, "%s/ref.h5", dir);
  snprintf(ref_big, sizeof ref_big, "%s/ref32.h5", dir);
  snprintf(suite, sizeof suite, "%s/suite.ini", dir);
  snprintf(out, sizeof out, "%s/out", dir);
  CHECK_MSG(make_ckpt(run_dir, &err) == DUET_OK, "%s", err.msg);
  CHECK_MSG(make_reference(ref, 16, &err) == DUET_OK, "%s", err.msg);
  CHECK_MSG(make_reference(ref_big, 32, &err) == DUET_OK, "%s", err.msg);

  /* The library, as a test or another program would call it. */
  write_suite(suite, ref, "");
  duet_bench_suite s;
  CHECK_MSG(duet_bench_suite_load(suite, NULL, 0, &s, &err) == DUET_OK, "%s", err.msg);
  CHECK_EQ_INT(s.n_cases, 3);
  if (s.n_cases == 3) {
    CHECK(s.cases[0].prompt_from_clip && s.cases[0].clip == 0 && s.cases[0].task == DUET_TASK_T2AV);
    CHECK(s.cases[1].prompt_from_clip && s.cases[1].clip == 1 && s.cases[1].task == DUET_TASK_V2A);
    CHECK(!s.cases[2].prompt_from_clip && s.cases[2].clip == 2 &&
          s.cases[2].task == DUET_TASK_I2AV);
    CHECK(s.cases[1].steps == 2 && s.cases[1].seed == 5 && s.cases[1].sampler == DUET_SAMPLER_HEUN);
  }
  duet_bench_opts bo = {ckpt, out, NULL, NULL};
  duet_bench_outcome oc;
  CHECK_MSG(duet_bench_run(&s, &bo, &oc, &err) == DUET_OK, "%s", err.msg);
  CHECK_EQ_INT(oc.samples, 3);
  CHECK_EQ_INT(oc.samples_failed, 0);
  CHECK_EQ_INT(oc.reference, 3);
  CHECK_EQ_INT(oc.reference_failed, 0);
  check_metrics(out, ref, 1);

  /* Shape mismatch: both sides named. Missing checkpoint: named. */
  duet_bench_suite_free(&s);
  write_suite(suite, ref_big, "");
  CHECK(duet_bench_suite_load(suite, NULL, 0, &s, &err) == DUET_OK);
  CHECK(duet_bench_run(&s, &bo, &oc, &err) == DUET_EINVAL && strstr(err.msg, ref_big) &&
        strstr(err.msg, ckpt) && strstr(err.msg, "32x32") && strstr(err.msg, "16x16"));
  bo.ckpt = "/nonexistent/ckpt";
  CHECK(duet_bench_run(&s, &bo, &oc, &err) != DUET_OK && strstr(err.msg, "/nonexistent/ckpt"));
  duet_bench_suite_free(&s);

  /* Suite errors name the key; overrides apply and are checked the same way. */
  write_suite(suite, ref, "[case.3]\npromt = a bell\n");
  CHECK(duet_bench_suite_load(suite, NULL, 0, &s, &err) == DUET_EINVAL &&
        strstr(err.msg, "case.3.promt"));
  write_suite(suite, ref, "");
  const char *bad_set[] = {"suite.stepz=3"};
  CHECK(duet_bench_suite_load(suite, bad_set, 1, &s, &err) == DUET_EINVAL &&
        strstr(err.msg, "suite.stepz"));
  /* Overrides can change a case and add one: a2v and extend, with quality over what they
   * generated; clip 3 is measured for case 3 but is not one of the reference set's 3. */
  const char *lag_set[] = {"suite.audio_lag=1.5"};
  CHECK(duet_bench_suite_load(suite, lag_set, 1, &s, &err) == DUET_EINVAL && strstr(err.msg, "suite.audio_lag"));
  const char *sets[] = {"case.2.task=a2v", "case.3.task=extend", "suite.steps=1", "suite.sync_cfg_audio=2",
                        "suite.audio_lag=0.25"};
  CHECK_MSG(duet_bench_suite_load(suite, sets, 5, &s, &err) == DUET_OK, "%s", err.msg);
  CHECK(s.n_cases == 4 && s.cases[2].task == DUET_TASK_A2V && s.cases[3].number == 3 &&
        s.cases[3].clip == 3 && s.cases[3].steps == 1);
  CHECK(s.sync_cfg_audio == 2 && s.sync_cfg_video == 1 && s.audio_lag == 0.25);
  bo.ckpt = ckpt;
  char out3[700];
  snprintf(out3, sizeof out3, "%s/out-tasks", dir);
  bo.out_dir = out3;
  CHECK_MSG(duet_bench_run(&s, &bo, &oc, &err) == DUET_OK, "%s", err.msg);
  CHECK(oc.samples == 4 && oc.samples_failed == 0 && oc.reference == 4);
  char p[1024];
  snprintf(p, sizeof p, "%s/metrics.json", out3);
  char *text = slurp(p);
  cJSON *j = text ? cJSON_Parse(text) : NULL;
  free(text);
  const cJSON *su = at(j, "suite");
  CHECK(at(su, "sync_cfg_audio") && at(su, "sync_cfg_audio")->valuedouble == 2 &&
        at(su, "audio_lag") && at(su, "audio_lag")->valuedouble == 0.25);
  const cJSON *cases = at(j, "cases");
  const cJSON *q2 =
      at(cJSON_GetArrayItem(at(cJSON_GetArrayItem(cases, 2), "samples"), 0), "quality");
  const cJSON *q3 =
      at(cJSON_GetArrayItem(at(cJSON_GetArrayItem(cases, 3), "samples"), 0), "quality");
  CHECK(finite_at(q2, "video", "psnr_db") && !at(q2, "audio"));
  CHECK_EQ_INT(at(at(q2, "video"), "from_frame")->valueint, 0);
  CHECK(finite_at(q3, "video", "ssim") && finite_at(q3, "audio", "mr_stft_total"));
  CHECK_EQ_INT(at(at(q3, "video"), "from_frame")->valueint, 8);
  CHECK_NEAR(at(at(q3, "audio"), "from_s")->valuedouble, 0.5, 1e-12);
  const cJSON *refs = at(j, "reference");
  CHECK(cJSON_GetArraySize(refs) == 4 &&
        cJSON_IsTrue(at(cJSON_GetArrayItem(refs, 2), "in_summary")) &&
        cJSON_IsFalse(at(cJSON_GetArrayItem(refs, 3), "in_summary")));
  CHECK_EQ_INT(at(at(at(j, "summary"), "reference"), "clips")->valueint, 3);
  cJSON_Delete(j);
  duet_bench_suite_free(&s);
  /* A case that wants reference clip 4 of a 4-clip file. */
  const char *far[] = {"case.4.task=v2a"};
  CHECK(duet_bench_suite_load(suite, far, 1, &s, &err) == DUET_OK);
  CHECK(duet_bench_run(&s, &bo, &oc, &err) == DUET_EINVAL && strstr(err.msg, "case.4") &&
        strstr(err.msg, "clip 4"));
  duet_bench_suite_free(&s);

  /* The command line: a good run, then one-line errors and a non-zero exit. */
  char args[4096], out2[700];
  char *msg = NULL;
  snprintf(out2, sizeof out2, "%s/out-tool", dir);
  snprintf(args, sizeof args, "bench --suite %s --ckpt %s --out %s --set suite.figures=0", suite,
           ckpt, out2);
  CHECK_EQ_INT(tool(args, &msg), 0);
  free(msg);
  check_metrics(out2, ref, 0);
  snprintf(args, sizeof args, "bench --suite %s --ckpt %s --out %s -q --set suite.stepz=1", suite,
           ckpt, out2);
  CHECK(tool(args, &msg) == 1 && msg && strstr(msg, "suite.stepz") && lines(msg) == 1);
  free(msg);
  snprintf(args, sizeof args, "bench --suite %s --ckpt %s/none --out %s -q", suite, dir, out2);
  CHECK(tool(args, &msg) == 1 && msg && strstr(msg, "/none") && lines(msg) == 1);
  free(msg);
  write_suite(suite, ref_big, "");
  snprintf(args, sizeof args, "bench --suite %s --ckpt %s --out %s -q", suite, ckpt, out2);
  CHECK(tool(args, &msg) == 1 && msg && strstr(msg, "must match") && lines(msg) == 1);
  free(msg);
  snprintf(args, sizeof args, "bench --ckpt %s", ckpt);
  CHECK_EQ_INT(tool(args, NULL), 2);
  return test_finish("eval_bench");
}
