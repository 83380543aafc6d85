/* AV-Align against values computed by the reference stack (OpenCV + librosa) on the same
 * inputs (tests/eval/make_avalign_golden.py). Every stage is compared so that a mismatch
 * points at its cause:
 *   grey conversion      exact (same integer formula as cv2.cvtColor)
 *   flow magnitudes      |diff| <= 1e-4 px + 1e-4 relative: float32 arithmetic in the same order
 *                        as OpenCV; OpenCV's Gaussian pre-blur (IPP in the pip wheels) rounds
 *                        differently in the last bits (seen: 1.3e-5 px on 1..6 px magnitudes)
 *   onset envelope       |diff| <= 1e-4 of its maximum at 22050 Hz: librosa computes the mel
 *                        spectrogram and dB in float32, duet in double (seen: 2.5e-7);
 *                        2e-2 when the audio is resampled first, since duet's Kaiser-sinc
 *                        resampler and soxr differ in the transition band (seen: 9.4e-4)
 *   onset frames, flow peaks, IoU   exact: they are discrete given the curves above. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval/avalign.h"
#include "eval/farneback.h"
#include "eval/matrix_io.h"
#include "eval/resample.h"
#include "eval/sync_curves.h"
#include "fixture.h"
#include "testlib.h"

static double max_abs(const double *v, int n) {
  double m = 0;
  for (int i = 0; i < n; i++)
    if (fabs(v[i]) > m) m = fabs(v[i]);
  return m;
}

static void check_clip(const cJSON *c, const duet_npy *tex) {
  const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
  int h = cJSON_GetObjectItem(c, "height")->valueint, w = cJSON_GetObjectItem(c, "width")->valueint;
  int frames = cJSON_GetObjectItem(c, "frames")->valueint;
  int sr = cJSON_GetObjectItem(c, "sample_rate")->valueint;
  double fps = cJSON_GetObjectItem(c, "fps")->valuedouble;
  const cJSON *offs = cJSON_GetObjectItem(c, "offsets");
  int tw = (int)tex->shape[1];
  const uint8_t *t = tex->data;

  /* Frames: crops of the texture, colour channels derived by integer arithmetic. */
  size_t fsz = (size_t)h * w * 3;
  uint8_t *video = malloc(fsz * frames);
  for (int f = 0; f < frames; f++) {
    const cJSON *o = cJSON_GetArrayItem(offs, f);
    int ox = cJSON_GetArrayItem(o, 0)->valueint, oy = cJSON_GetArrayItem(o, 1)->valueint;
    for (int y = 0; y < h; y++)
      for (int x = 0; x < w; x++) {
        int g = t[(size_t)(oy + y) * tw + ox + x];
        uint8_t *p = video + fsz * f + ((size_t)y * w + x) * 3;
        p[0] = (uint8_t)g;
        p[1] = (uint8_t)(3 * g / 4 + 32);
        p[2] = (uint8_t)(255 - g);
      }
  }
  long long grey_sum = 0;
  for (size_t i = 0; i < (size_t)h * w; i++)
    grey_sum += duet_luma(video[3 * i], video[3 * i + 1], video[3 * i + 2]);
  CHECK_EQ_INT(grey_sum, (long long)cJSON_GetObjectItem(c, "grey0_sum")->valuedouble);

  /* Audio: int16 PCM / 32768, as librosa.load returns it. */
  char path[1024];
  fixture_path(path, sizeof path, cJSON_GetObjectItem(c, "audio")->valuestring);
  duet_npy pcm;
  duet_err err = {0};
  CHECK_MSG(duet_npy_read(path, &pcm, &err) == 0, "%s", err.msg);
  float *audio = malloc(sizeof(float) * (size_t)pcm.count);
  for (int64_t i = 0; i < pcm.count; i++) audio[i] = (float)(duet_npy_get(&pcm, i) / 32768.0);

  duet_avalign a;
  int rc = duet_avalign_clip(video, frames, h, w, fps, audio, pcm.count, sr, &a, &err);
  CHECK_MSG(rc == 0, "%s: %s", name, err.msg);
  if (rc) goto done;

  int n;
  double *env = json_doubles(cJSON_GetObjectItem(c, "onset_env"), &n);
  CHECK_EQ_INT(a.n_env, n);
  double tol = (sr == 22050 ? 1e-4 : 2e-2) * max_abs(env, n), worst = 0;
  for (int i = 0; i < n && i < a.n_env; i++) worst = fmax(worst, fabs(a.onset_env[i] - env[i]));
  CHECK_MSG(worst <= tol, "%s: onset envelope differs by %g (tolerance %g)", name, worst, tol);
  printf("%s: onset envelope max |diff| %.3g of max %.3g\n", name, worst, max_abs(env, n));
  free(env);

  double *ap = json_doubles(cJSON_GetObjectItem(c, "audio_peaks"), &n);
  CHECK_EQ_INT(a.n_audio, n);
  for (int i = 0; i < n && i < a.n_audio; i++) CHECK_NEAR(a.audio_peaks[i], ap[i], 1e-9);
  free(ap);

  double *flow = json_doubles(cJSON_GetObjectItem(c, "flow"), &n);
  CHECK_EQ_INT(a.n_flow, n);
  worst = 0;
  for (int i = 0; i < n && i < a.n_flow; i++) {
    double d = fabs(a.flow[i] - flow[i]);
    CHECK_MSG(d <= 1e-4 + 1e-4 * fabs(flow[i]), "%s: flow[%d] = %.9g, reference %.9g", name, i,
              a.flow[i], flow[i]);
    worst = fmax(worst, d);
  }
  printf("%s: flow magnitude max |diff| %.3g px\n", name, worst);
  free(flow);

  double *vp = json_doubles(cJSON_GetObjectItem(c, "video_peaks"), &n);
  CHECK_EQ_INT(a.n_video, n);
  for (int i = 0; i < n && i < a.n_video; i++) CHECK_NEAR(a.video_peaks[i], vp[i], 1e-9);
  free(vp);

  CHECK_NEAR(a.score, cJSON_GetObjectItem(c, "iou_one_to_one")->valuedouble, 1e-12);
  CHECK_NEAR(a.score_reference, cJSON_GetObjectItem(c, "iou_reference")->valuedouble, 1e-12);
  CHECK_EQ_INT(a.n_matched, cJSON_GetObjectItem(c, "matched")->valueint);
  printf("%s: AV-Align %.4f (reference counting %.4f)\n", name, a.score, a.score_reference);
  duet_avalign_free(&a);
done:
  duet_npy_free(&pcm);
  free(audio);
  free(video);
}

/* An image against itself at tiny and odd sizes (a pattern both sides compute): only the edge
 * handling produces flow, so this checks the border code, pyramid depth and rounding. */
static void check_self_flow(const cJSON *c) {
  int h = cJSON_GetObjectItem(c, "height")->valueint, w = cJSON_GetObjectItem(c, "width")->valueint;
  double want = cJSON_GetObjectItem(c, "mean_magnitude")->valuedouble;
  uint8_t *img = malloc((size_t)h * w);
  for (int i = 0; i < h * w; i++) img[i] = (uint8_t)((i * 37 + (i / w) * 11) & 255);
  duet_farneback_params p;
  duet_farneback_defaults(&p);
  duet_farneback_frame *a = NULL, *b = NULL;
  duet_err err = {0};
  float *flow = malloc(sizeof(float) * (size_t)h * w * 2);
  int rc = duet_farneback_prepare(img, h, w, &p, &a, &err);
  if (!rc) rc = duet_farneback_prepare(img, h, w, &p, &b, &err);
  if (!rc) rc = duet_farneback_flow(a, b, &p, flow, &err);
  CHECK_MSG(rc == 0, "%dx%d: %s", w, h, err.msg);
  if (!rc) {
    double got = duet_flow_mean_magnitude(flow, h, w);
    CHECK_MSG(fabs(got - want) <= 1e-6 + 1e-4 * want, "%dx%d: %.9g, reference %.9g", w, h, got,
              want);
  }
  duet_farneback_frame_free(a);
  duet_farneback_frame_free(b);
  free(flow);
  free(img);
}

int main(void) {
  cJSON *g = fixture_json("avalign_golden.json");
  CHECK(g != NULL);
  if (!g) return test_finish("eval_avalign_golden");
  char path[1024];
  fixture_path(path, sizeof path, cJSON_GetObjectItem(g, "texture")->valuestring);
  duet_npy tex;
  duet_err err = {0};
  int rc = duet_npy_read(path, &tex, &err);
  CHECK_MSG(rc == 0, "%s", err.msg);
  if (!rc) {
    CHECK_EQ_INT(tex.dtype, DUET_DT_U8);
    CHECK_EQ_INT(tex.ndim, 2);
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(g, "clips")) check_clip(c, &tex);
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(g, "self_flow")) check_self_flow(c);
    CHECK_EQ_INT(cJSON_GetArraySize(cJSON_GetObjectItem(g, "self_flow")), 6);
    duet_npy_free(&tex);
  }
  cJSON_Delete(g);
  return test_finish("eval_avalign_golden");
}
