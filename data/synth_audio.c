/* Impact sounds: each event starts a sum of exponentially damped sinusoids (modal synthesis)
 * exactly at the impact time, plus a short noise click for the dull materials. The mode
 * frequency ratios are those of the physical objects the materials suggest (a free bar for
 * metal, a glass bowl, a wooden block); size scales pitch (smaller is higher), impact speed
 * scales loudness. */
#include "data/synth.h"

#include <math.h>
#include <string.h>

#include "core/rng.h"

#define SYNTH_STREAM_NOISE 0x401Eull
#define SYNTH_STREAM_CLICK 0xC11Cull
#define MAX_MODES 4
#define PEAK 0.3        /* loudest single impact; three at once still fit in [-1, 1] */
#define REF_SPEED 3.0   /* impact speed that gives PEAK */
#define SILENT 1e-4     /* a mode stops once it has decayed below this */
#define NOISE_POLE 0.9  /* one-pole low-pass that softens the noise bed */

typedef struct material_sound {
  double f0;                    /* fundamental of a medium object, Hz */
  int n;
  double ratio[MAX_MODES], amp[MAX_MODES], tau[MAX_MODES]; /* tau: decay time constant, s */
  double click_amp, click_tau;  /* noise burst at the contact */
} material_sound;

static const material_sound sounds[DUET_SYNTH_N_MATERIALS] = {
    /* wood: low, quickly damped, inharmonic block modes, a knock of noise */
    {420.0, 3, {1.0, 2.57, 4.2}, {1.0, 0.5, 0.25}, {0.06, 0.035, 0.02}, 0.5, 0.004},
    /* metal: free-bar ratios, a ring (kept under half a second so it does not bury the next
     * impact), a sharp tick */
    {700.0, 4, {1.0, 2.76, 5.40, 8.93}, {1.0, 0.6, 0.4, 0.25}, {0.4, 0.25, 0.15, 0.1}, 0.35, 0.002},
    /* rubber: a dull, heavily damped thump */
    {160.0, 3, {1.0, 1.6, 2.3}, {1.0, 0.4, 0.2}, {0.03, 0.02, 0.015}, 0.6, 0.008},
    /* glass: high, bright, shorter ring, a sharp tick */
    {1300.0, 4, {1.0, 2.32, 4.25, 6.63}, {1.0, 0.5, 0.35, 0.2}, {0.25, 0.18, 0.1, 0.07}, 0.35, 0.0015},
};

static const double size_pitch[DUET_SYNTH_N_SIZES] = {1.6, 1.0, 0.6};

static double loudness(double speed) {
  double v = speed / REF_SPEED;
  if (v > 1.0) v = 1.0;
  return PEAK * pow(v, 0.8);
}

/* Adds one impact at time t0 (seconds) to audio[0, n). A mode is a complex phasor rotated
 * and shrunk once per sample, so the cost is a few multiplies per mode per sample and the
 * onset lands between samples exactly. */
static void add_impact(float *audio, int64_t n, int rate, double t0, const duet_synth_object *o,
                       double speed, uint64_t seed, uint64_t click_stream) {
  const material_sound *m = &sounds[o->material];
  const double a = loudness(speed), nyquist = 0.45 * rate;
  const double f0 = m->f0 * size_pitch[o->size] * o->detune;
  int64_t first = (int64_t)ceil(t0 * rate);
  if (first >= n) return;
  if (first < 0) first = 0;
  double norm = 0.0;
  for (int k = 0; k < m->n; k++) norm += m->amp[k];
  /* All modes advance in one pass over the samples: their recurrences are independent, so
   * the processor overlaps them instead of waiting on one chain at a time. */
  /* Unused slots stay zero: a fixed trip count lets the compiler keep all in registers. */
  double re[MAX_MODES] = {0}, im[MAX_MODES] = {0}, cr[MAX_MODES] = {0}, ci[MAX_MODES] = {0};
  int modes = 0;
  int64_t len = 0;
  const double dt0 = first / (double)rate - t0;
  for (int k = 0; k < m->n; k++) {
    double f = f0 * m->ratio[k];
    if (f >= nyquist) continue;
    double tau = m->tau[k], w = 2.0 * M_PI * f;
    double mag = a * m->amp[k] / norm * exp(-dt0 / tau);
    double decay = exp(-1.0 / (tau * rate));
    re[modes] = mag * cos(w * dt0);
    im[modes] = mag * sin(w * dt0);
    cr[modes] = decay * cos(w / rate);
    ci[modes] = decay * sin(w / rate);
    modes++;
    int64_t l = (int64_t)ceil(tau * log(a / SILENT + 1.0) * rate) + 1;
    if (l > len) len = l;
  }
  int64_t end = first + len < n ? first + len : n;
  for (int64_t i = first; i < end; i++) {
    double sum = 0.0;
    for (int k = 0; k < MAX_MODES; k++) {
      sum += im[k];
      double nr = re[k] * cr[k] - im[k] * ci[k];
      im[k] = re[k] * ci[k] + im[k] * cr[k];
      re[k] = nr;
    }
    audio[i] += (float)sum;
  }
  if (m->click_amp > 0.0) {
    int64_t len = (int64_t)ceil(m->click_tau * 8.0 * rate) + 1;
    int64_t end = first + len < n ? first + len : n;
    duet_rng r = duet_rng_make(seed, click_stream);
    double lp = 0.0, env_step = exp(-1.0 / (m->click_tau * rate));
    double env = a * m->click_amp * exp(-(first / (double)rate - t0) / m->click_tau);
    for (int64_t i = first; i < end; i++) {
      /* Centred uniform noise through a one-pole low-pass: a dull knock rather than a hiss. */
      lp = 0.6 * lp + 0.4 * (2.0 * duet_rng_uniform_f64(&r) - 1.0);
      audio[i] += (float)(env * lp);
      env *= env_step;
    }
  }
}

static void add_noise_bed(float *audio, int64_t n, float rms, uint64_t seed, uint64_t stream) {
  /* Low-passing white noise of unit variance by a one-pole filter scales its RMS by
   * sqrt((1 - a) / (1 + a)); undo that so `rms` is what comes out. */
  const double a = NOISE_POLE, gain = rms / sqrt((1.0 - a) / (1.0 + a));
  double y = 0.0;
  float block[1024];
  for (int64_t i0 = 0; i0 < n; i0 += 1024) {
    int64_t m = n - i0 < 1024 ? n - i0 : 1024;
    duet_rng_fill_normal_f32(seed, stream, (uint64_t)i0, block, m, 0.0f, 1.0f);
    for (int64_t i = 0; i < m; i++) {
      y = a * y + (1.0 - a) * block[i];
      audio[i0 + i] += (float)(gain * y);
    }
  }
}

void duet_synth_render_audio(const duet_synth_params *p, const duet_synth_scene *s,
                             int64_t index, float *audio) {
  const int64_t n = duet_synth_audio_samples(p);
  memset(audio, 0, (size_t)n * sizeof *audio);
  for (int e = 0; e < s->n_events; e++) {
    const duet_synth_event *ev = &s->events[e];
    /* Keyed by the event itself, not its place in the list, so one impact's sound does not
     * depend on which other impacts exist. */
    uint64_t t_bits;
    memcpy(&t_bits, &ev->t, sizeof t_bits);
    uint64_t stream = duet_rng_stream_id(SYNTH_STREAM_CLICK ^ (uint64_t)index,
                                         (uint64_t)ev->object, t_bits);
    add_impact(audio, n, p->sample_rate, ev->t, &s->objects[ev->object], ev->speed, p->seed,
               stream);
  }
  if (p->background_noise > 0.0f)
    add_noise_bed(audio, n, p->background_noise, p->seed,
                  duet_rng_stream_id(SYNTH_STREAM_NOISE, (uint64_t)index, 0));
  for (int64_t i = 0; i < n; i++) {
    if (audio[i] > 1.0f) audio[i] = 1.0f;
    if (audio[i] < -1.0f) audio[i] = -1.0f;
  }
}
