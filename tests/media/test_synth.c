/* duet-synth's generator: determinism, and truth that agrees with what is drawn, heard and
 * said (events at sound onsets and at floor contacts, captions that count the events). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../testlib.h"
#include "data/synth.h"

#define N_CLIPS 60
/* Clips checked against their truth; fewer under AddressSanitizer, where rendering each clip
 * once per event is slow. */
#ifdef __SANITIZE_ADDRESS__
#define N_TRUTH 60
#else
#define N_TRUTH 200
#endif

static duet_synth_params params(uint64_t seed) {
  duet_synth_params p;
  duet_synth_params_default(&p);
  p.seed = seed;
  return p;
}

static void test_determinism(void) {
  duet_synth_params p = params(7);
  const size_t vn = (size_t)p.frames * p.height * p.width * 3;
  const int64_t an = duet_synth_audio_samples(&p);
  CHECK_EQ_INT(an, 32000);
  uint8_t *v1 = malloc(vn * N_CLIPS), *v2 = malloc(vn * N_CLIPS);
  float *a1 = malloc(sizeof(float) * an * N_CLIPS), *a2 = malloc(sizeof(float) * an * N_CLIPS);
  static duet_synth_scene s1[N_CLIPS], s2[N_CLIPS];
  duet_err err = {0};
  for (int i = 0; i < N_CLIPS; i++)
    CHECK(duet_synth_clip(&p, i, &s1[i], v1 + vn * i, a1 + an * i, &err) == 0);
  /* In reverse order, on two threads: the same bytes. */
#pragma omp parallel for num_threads(2) schedule(dynamic, 1)
  for (int i = N_CLIPS - 1; i >= 0; i--) duet_synth_clip(&p, i, &s2[i], v2 + vn * i, a2 + an * i, NULL);
  CHECK(memcmp(v1, v2, vn * N_CLIPS) == 0);
  CHECK(memcmp(a1, a2, sizeof(float) * an * N_CLIPS) == 0);
  int same_caption = 1;
  for (int i = 0; i < N_CLIPS; i++) same_caption &= strcmp(s1[i].caption, s2[i].caption) == 0;
  CHECK(same_caption);
  /* Clips differ from each other, and another seed gives other clips. */
  CHECK(memcmp(v1, v1 + vn, vn) != 0);
  duet_synth_params q = params(8);
  duet_synth_clip(&q, 0, &s2[0], v2, a2, NULL);
  CHECK(memcmp(v1, v2, vn) != 0);
  free(v1);
  free(v2);
  free(a1);
  free(a2);
}

static int word_count(const char *w) {
  static const char *const words[] = {"no times", "once", "twice", "three times", "four times",
                                      "five times", "six times", "seven times", "eight times",
                                      "nine times", "ten times", "eleven times", "twelve times"};
  for (int i = 0; i <= 12; i++)
    if (!strncmp(w, words[i], strlen(words[i]))) return i;
  return atoi(w);
}

/* Splits the caption at "; " and checks clause j names object j and counts its events. */
static void check_caption(const duet_synth_scene *s) {
  char buf[DUET_SYNTH_CAPTION_MAX];
  snprintf(buf, sizeof buf, "%s", s->caption);
  char *clause[DUET_SYNTH_MAX_OBJECTS + 1];
  int n = 0;
  for (char *c = buf; c && n <= DUET_SYNTH_MAX_OBJECTS;) {
    clause[n++] = c;
    char *sep = strstr(c, "; ");
    if (sep) {
      *sep = '\0';
      c = sep + 2;
    } else {
      c = NULL;
    }
  }
  CHECK_EQ_INT(n, s->n_objects);
  for (int j = 0; j < n && j < s->n_objects; j++) {
    const duet_synth_object *o = &s->objects[j];
    char head[128];
    snprintf(head, sizeof head, "a %s %s %s %s ", duet_synth_size_name(o->size),
             duet_synth_colour_name(o->colour), duet_synth_material_name(o->material),
             duet_synth_shape_name(o->shape));
    CHECK_MSG(!strncmp(clause[j], head, strlen(head)), "'%s' vs '%s'", clause[j], head);
    int floor = 0, wall = 0;
    for (int e = 0; e < s->n_events; e++) {
      if (s->events[e].object != j) continue;
      if (s->events[e].surface == DUET_SYNTH_HIT_FLOOR) floor++;
      else wall++;
    }
    const char *b = strstr(clause[j], "bounces ");
    int said_floor = b ? word_count(b + 8) : 0;
    const char *w = strstr(clause[j], "hits a wall ");
    int said_wall = w ? word_count(w + 12) : 0;
    CHECK_MSG(said_floor == floor, "'%s': %d floor events", clause[j], floor);
    CHECK_MSG(said_wall == wall, "'%s': %d wall events", clause[j], wall);
    if (j == 0) {
      char fl[64];
      snprintf(fl, sizeof fl, "a %s floor", duet_synth_floor_name(s->floor_colour));
      CHECK_MSG(strstr(clause[0], fl) != NULL, "'%s'", clause[0]);
    }
  }
}

/* Each event's position: the touching side of the object is on the floor or the wall. */
static void check_event_positions(const duet_synth_params *p, const duet_synth_scene *s) {
  double dur = p->frames / p->fps;
  for (int e = 0; e < s->n_events; e++) {
    const duet_synth_event *ev = &s->events[e];
    CHECK(ev->t >= 0.0 && ev->t < dur);
    if (e > 0) CHECK(ev->t >= s->events[e - 1].t);
    double x, y, r = s->objects[ev->object].radius;
    duet_synth_object_at(s, ev->object, ev->t, &x, &y);
    if (ev->surface == DUET_SYNTH_HIT_FLOOR) CHECK_NEAR(y - r, DUET_SYNTH_FLOOR_Y, 1e-9);
    else if (ev->surface == DUET_SYNTH_HIT_LEFT_WALL) CHECK_NEAR(x - r, 0.0, 1e-9);
    else CHECK_NEAR(x + r, (double)p->width / p->height, 1e-9);
  }
}

/* Audio: silence before the first impact, and every impact heard from its own sample on. */
static void check_audio(const duet_synth_params *p, const duet_synth_scene *s, int64_t index,
                        const float *audio, int *clear, int *all) {
  const int64_t n = duet_synth_audio_samples(p);
  const int rate = p->sample_rate;
  if (s->n_events == 0) {
    double e = 0;
    for (int64_t i = 0; i < n; i++) e += fabs(audio[i]);
    CHECK(e == 0.0);
    return;
  }
  int64_t first = (int64_t)ceil(s->events[0].t * rate);
  int silent = 1;
  for (int64_t i = 0; i < first && i < n; i++) silent &= audio[i] == 0.0f;
  CHECK_MSG(silent, "clip %lld: sound before the first event", (long long)index);

  /* Each event's own sound (the clip minus the clip rendered without that event) starts
   * exactly at the event's sample. Where it stands out from everything else sounding at that
   * moment (8x the energy, no other event in the 50 ms before), an onset detector on the
   * clip itself must find it: high-passed energy over the next 5 ms at least twice that over
   * the 10 ms before. */
  float *without = malloc(sizeof(float) * n);
  duet_synth_scene t;
  for (int e = 0; e < s->n_events; e++) {
    t = *s;
    memmove(&t.events[e], &t.events[e + 1], sizeof t.events[0] * (t.n_events - e - 1));
    t.n_events--;
    duet_synth_render_audio(p, &t, index, without);
    int64_t start = (int64_t)ceil(s->events[e].t * rate), diff_at = -1;
    for (int64_t i = 0; i < n && diff_at < 0; i++)
      if (audio[i] != without[i]) diff_at = i;
    CHECK_MSG(diff_at == start, "clip %lld event %d: sound starts at %lld, event at %lld",
              (long long)index, e, (long long)diff_at, (long long)start);
    if (start < rate / 100 || start + rate / 200 > n) continue;
    double own = 0, rest = 0, pre = 0, post = 0;
    for (int64_t i = start; i < start + rate / 200; i++) {
      double d_own = (audio[i] - without[i]) - (audio[i - 1] - without[i - 1]);
      double d_rest = without[i] - without[i - 1], d = audio[i] - audio[i - 1];
      own += d_own * d_own;
      rest += d_rest * d_rest;
      post += d * d;
    }
    for (int64_t i = start - rate / 100; i < start; i++) {
      double d = audio[i] - audio[i - 1];
      pre += d * d;
    }
    int alone = own >= 8.0 * rest && (e == 0 || s->events[e].t - s->events[e - 1].t >= 0.05);
    *clear += alone;
    *all += 1;
    if (alone)
      CHECK_MSG(post / (rate / 200) > 2.0 * pre / (rate / 100), "clip %lld: no onset at event %d",
                (long long)index, e);
  }
  free(without);
}

/* Video: the object is drawn where the simulation says, and it is lowest on the frame
 * nearest a floor impact. Uses objects alone on the background (drawn without objects). */
static void check_video(const duet_synth_params *p, const duet_synth_scene *s,
                        const uint8_t *video) {
  const int H = p->height, W = p->width;
  const size_t fb = (size_t)H * W * 3;
  duet_synth_params one = *p;
  one.frames = 1;
  duet_synth_scene empty = *s;
  empty.n_objects = 0;
  uint8_t *bg = malloc(fb);
  duet_synth_render_video(&one, &empty, bg);
  if (s->n_objects != 1) {
    free(bg);
    return;
  }
  const duet_synth_object *o = &s->objects[0];
  /* Lowest object row per frame, and the drawn centre against the simulated one. */
  double *bottom = malloc(sizeof(double) * p->frames);
  for (int t = 0; t < p->frames; t++) {
    const uint8_t *f = video + fb * t;
    double sx = 0, sy = 0, sw = 0;
    int low = -1;
    for (int y = 0; y < H; y++)
      for (int x = 0; x < W; x++) {
        const uint8_t *a = f + ((size_t)y * W + x) * 3, *b = bg + ((size_t)y * W + x) * 3;
        int d = abs(a[0] - b[0]) + abs(a[1] - b[1]) + abs(a[2] - b[2]);
        if (d > 60) {
          sx += x + 0.5;
          sy += y + 0.5;
          sw += 1;
          if (y > low) low = y;
        }
      }
    bottom[t] = low;
    double x, y;
    duet_synth_object_at(s, 0, t / p->fps, &x, &y);
    if (sw > 20) { /* wholly or mostly visible: the drawn centroid sits near the true centre */
      double cy = o->shape == DUET_SYNTH_TRIANGLE ? (1.0 - y) * H + o->radius * H / 3.0
                                                  : (1.0 - y) * H;
      CHECK_MSG(fabs(sx / sw - x * H) < 1.5 && fabs(sy / sw - cy) < 1.5,
                "frame %d: drawn (%.1f, %.1f), simulated (%.1f, %.1f)", t, sx / sw, sy / sw,
                x * H, cy);
    }
  }
  const double floor_row = (1.0 - DUET_SYNTH_FLOOR_Y) * H;
  for (int e = 0; e < s->n_events; e++) {
    const duet_synth_event *ev = &s->events[e];
    if (ev->surface != DUET_SYNTH_HIT_FLOOR) continue;
    int k = (int)lround(ev->t * p->fps);
    if (k >= p->frames) continue;
    /* At the nearest frame the object is within half a frame's travel of the floor (the
     * impact speed bounds the speed on both sides of the impact). */
    double travel = ev->speed * 0.5 / p->fps * H;
    CHECK_MSG(bottom[k] >= floor_row - 1.0 - travel - 1.0 && bottom[k] <= floor_row + 0.5,
              "event %d at %.3f s: bottom row %.0f at frame %d, floor at %.1f", e, ev->t,
              bottom[k], k, floor_row);
  }
  free(bottom);
  free(bg);
}

static void test_truth(void) {
  duet_synth_params p = params(11);
  const size_t vn = (size_t)p.frames * p.height * p.width * 3;
  const int64_t an = duet_synth_audio_samples(&p);
  uint8_t *video = malloc(vn);
  float *audio = malloc(sizeof(float) * an);
  static duet_synth_scene s;
  int total_events = 0, singles = 0, shapes[3] = {0}, clear = 0, all = 0;
  for (int i = 0; i < N_TRUTH; i++) {
    duet_synth_clip(&p, i, &s, video, audio, NULL);
    total_events += s.n_events;
    singles += s.n_objects == 1;
    for (int j = 0; j < s.n_objects; j++) shapes[s.objects[j].shape]++;
    check_caption(&s);
    check_event_positions(&p, &s);
    check_audio(&p, &s, i, audio, &clear, &all);
    check_video(&p, &s, video);
  }
  CHECK(total_events > 2 * N_TRUTH); /* a couple of impacts per object in 2 s */
  CHECK(singles > N_TRUTH / 6);
  /* About half the impacts stand out 8x; the rest overlap a louder ring or a near-simultaneous
   * impact of another object, as in real recordings. */
  CHECK_MSG(clear > all * 4 / 10, "%d of %d events stand out", clear, all);
  CHECK(shapes[0] > N_TRUTH / 4 && shapes[1] > N_TRUTH / 4 && shapes[2] > N_TRUTH / 4);
  free(video);
  free(audio);
}

static void test_noise_and_sizes(void) {
  duet_synth_params p = params(3);
  p.background_noise = 0.02f;
  p.height = 48;
  p.width = 80;
  p.fps = 24;
  p.frames = 24;
  p.sample_rate = 22050;
  p.max_objects = 1;
  duet_err err = {0};
  CHECK(duet_synth_params_check(&p, &err) == 0);
  int64_t an = duet_synth_audio_samples(&p);
  CHECK_EQ_INT(an, 22050);
  uint8_t *video = malloc((size_t)p.frames * p.height * p.width * 3);
  float *audio = malloc(sizeof(float) * an);
  static duet_synth_scene s;
  CHECK(duet_synth_clip(&p, 5, &s, video, audio, &err) == 0);
  CHECK_EQ_INT(s.n_objects, 1);
  /* Before the first impact: the noise bed alone, at the RMS asked for. */
  int64_t quiet = s.n_events ? (int64_t)(s.events[0].t * p.sample_rate) : an;
  if (quiet > 4000) {
    double e = 0;
    for (int64_t i = 1000; i < quiet; i++) e += (double)audio[i] * audio[i];
    CHECK_NEAR(sqrt(e / (double)(quiet - 1000)), 0.02, 0.006);
  }
  check_event_positions(&p, &s);
  check_caption(&s);
  free(video);
  free(audio);

  p.max_objects = 4;
  CHECK(duet_synth_params_check(&p, &err) == DUET_EINVAL);
  CHECK(strstr(err.msg, "objects") != NULL);
  p.max_objects = 1;
  p.fps = 0;
  CHECK(duet_synth_params_check(&p, &err) == DUET_EINVAL);
}

/* --object-scale: the same scene with every radius doubled, still obeying the physics (events
 * where the scaled object touches the floor or a wall) and drawing about 4x the pixels. */
static void test_object_scale(void) {
  duet_synth_params p = params(1);
  p.max_objects = 1;
  duet_err err = {0};
  static duet_synth_scene plain, big;
  size_t vn = (size_t)p.frames * p.height * p.width * 3;
  uint8_t *video = malloc(vn);
  float *audio = malloc(sizeof(float) * duet_synth_audio_samples(&p));
  long drawn[2] = {0, 0};
  for (int k = 0; k < 2; k++) {
    p.object_scale = k ? 2.0 : 1.0;
    CHECK(duet_synth_params_check(&p, &err) == 0);
    duet_synth_scene *s = k ? &big : &plain;
    CHECK(duet_synth_clip(&p, 7, s, video, audio, &err) == 0);
    check_event_positions(&p, s);
    check_caption(s);
    /* Object pixels of the first frame: those unlike both ends of their row (walls and floor
     * are uniform along a row; the object touches at most one side wall). */
    for (int y = 0; y < p.height; y++)
      for (int x = 0; x < p.width; x++) {
        const uint8_t *px = video + ((size_t)y * p.width + x) * 3, *edge = video + (size_t)y * p.width * 3;
        const uint8_t *edge2 = video + ((size_t)y * p.width + p.width - 1) * 3;
        int off = 0;
        for (int c = 0; c < 3; c++) off += abs(px[c] - edge[c]) > 20 && abs(px[c] - edge2[c]) > 20;
        drawn[k] += off > 0;
      }
  }
  CHECK_EQ_INT(big.objects[0].size, plain.objects[0].size);
  CHECK_EQ_INT(big.objects[0].colour, plain.objects[0].colour);
  CHECK_NEAR(big.objects[0].radius, 2.0 * plain.objects[0].radius, 1e-12);
  CHECK_MSG(drawn[1] > 3 * drawn[0], "object pixels: %ld at scale 1, %ld at scale 2", drawn[0], drawn[1]);
  p.object_scale = 2.5;
  CHECK(duet_synth_params_check(&p, &err) == DUET_EINVAL);
  CHECK(strstr(err.msg, "object scale") != NULL);
  free(video);
  free(audio);
}

int main(void) {
  test_determinism();
  test_truth();
  test_noise_and_sizes();
  test_object_scale();
  return test_finish("test_synth");
}
