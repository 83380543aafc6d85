/* Offset estimation after real encoding: MP4s made by the ffmpeg command-line tool (H.264 +
 * AAC) with a white box flashing on black for two frames and an 880 Hz beep of the same length
 * at irregular times, the beeps shifted by known offsets from -200 to +200 ms, at 25 and 30
 * fps, read back through data/media.h. The estimate must be within one frame of the truth in
 * at least 95 % of the clips and have the right sign in all. Skipped without ffmpeg. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/media.h"
#include "eval/offset.h"
#include "testlib.h"

static const double EVENTS[] = {0.52, 1.31, 1.77, 2.63, 3.18};
enum { N_EVENTS = 5 };
static const double SECONDS = 4.0;

/* Writes the ffmpeg command for one clip into cmd. */
static void command(char *cmd, size_t cap, const char *path, double fps, double shift_s) {
  char venable[512] = "", aexpr[1024] = "";
  size_t vl = 0, al = 0;
  for (int e = 0; e < N_EVENTS; e++) {
    int f0 = (int)ceil(EVENTS[e] * fps - 1e-9);
    double a0 = f0 / fps + shift_s, a1 = a0 + 2 / fps;
    vl += (size_t)snprintf(venable + vl, sizeof venable - vl, "%sbetween(n\\,%d\\,%d)",
                           e ? "+" : "", f0, f0 + 1);
    al += (size_t)snprintf(aexpr + al, sizeof aexpr - al, "%sbetween(t\\,%.6f\\,%.6f)",
                           e ? "+" : "", a0, a1);
  }
  snprintf(cmd, cap,
           "ffmpeg -nostdin -loglevel error -y "
           "-f lavfi -i \"color=c=black:s=160x120:r=%g:d=%g,format=yuv420p,"
           "drawbox=x=40:y=30:w=80:h=60:color=white:t=fill:enable='%s'\" "
           "-f lavfi -i \"aevalsrc='0.5*sin(2*PI*880*t)*(%s)':s=48000:d=%g\" "
           "-c:v libx264 -preset veryfast -crf 18 -pix_fmt yuv420p -c:a aac -b:a 128k "
           "-movflags +faststart \"%s\"",
           fps, SECONDS, venable, aexpr, SECONDS, path);
}

int main(void) {
  if (system("ffmpeg -hide_banner -version > /dev/null 2>&1") != 0) {
    printf("eval_offset_mp4: ffmpeg not found, skipped\n");
    return 77;
  }
  static const double fps_list[] = {25.0, 30.0};
  static const int shifts_ms[] = {-200, -160, -120, -80, -45, -20, 0, 20, 45, 80, 120, 160, 200};
  const int n_shifts = (int)(sizeof shifts_ms / sizeof shifts_ms[0]);
  int total = 0, within = 0, sign_ok = 0, signed_total = 0;
  double sum_err = 0, worst = 0;
  for (int k = 0; k < 2; k++)
    for (int s = 0; s < n_shifts; s++) {
      double fps = fps_list[k], shift = shifts_ms[s] / 1000.0;
      char path[1024], cmd[4096];
      snprintf(path, sizeof path, "%s/clip_%g_%d.mp4", test_tmpdir(), fps, shifts_ms[s]);
      command(cmd, sizeof cmd, path, fps, shift);
      if (system(cmd) != 0) {
        CHECK_MSG(0, "ffmpeg failed: %s", cmd);
        continue;
      }
      duet_media m = {0};
      duet_media_opts o = {0};
      o.need_audio = 1;
      duet_err err = {0};
      int rc = duet_media_read(path, &o, &m, &err);
      CHECK_MSG(rc == 0, "%s", err.msg);
      if (rc) continue;
      duet_offset off;
      rc = duet_offset_estimate(m.video, m.frames, m.height, m.width, m.fps, m.audio,
                                m.audio_samples, m.sample_rate, NULL, &off, &err);
      CHECK_MSG(rc == 0, "%s: %s", path, err.msg);
      if (!rc) {
        double e = off.offset_ms - shifts_ms[s];
        total++;
        within += fabs(e) <= off.frame_ms;
        sum_err += e;
        worst = fmax(worst, fabs(e));
        if (shifts_ms[s] != 0) {
          signed_total++;
          sign_ok += (off.offset_ms > 0) == (shifts_ms[s] > 0);
          CHECK_MSG((off.offset_ms > 0) == (shifts_ms[s] > 0), "%g fps, %+d ms: estimate %+.1f ms",
                    fps, shifts_ms[s], off.offset_ms);
        }
        if (fabs(e) > off.frame_ms)
          printf("outside one frame: %g fps, truth %+d ms, estimate %+.1f ms\n", fps,
                 shifts_ms[s], off.offset_ms);
        duet_offset_free(&off);
      }
      duet_media_free(&m);
    }
  CHECK_EQ_INT(total, 2 * n_shifts);
  CHECK_MSG(within >= 0.95 * total, "%d of %d within one frame", within, total);
  CHECK_EQ_INT(sign_ok, signed_total);
  printf("MP4 clips: %d/%d within one frame (%.0f %%), sign right in %d/%d, mean error %+.1f ms, "
         "worst %.1f ms\n", within, total, total ? 100.0 * within / total : 0.0, sign_ok,
         signed_total, total ? sum_err / total : 0.0, worst);
  return test_finish("eval_offset_mp4");
}
