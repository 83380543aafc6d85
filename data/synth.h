/* Procedural audio-video clips with known truth: one to three objects (ball, square, triangle)
 * fall under gravity and bounce off the floor and the side walls; every impact makes a sound
 * whose pitch follows the object's size, timbre its material and loudness the impact speed.
 * Impact times are solved in closed form, so the events are exact to the sample, and the
 * caption is written from the same simulation ("a small red metal ball bounces three times on
 * a blue floor; ...").
 *
 * Clip i of a dataset is a pure function of (params, i): any thread, in any order, produces the
 * same bytes. World units: one unit is the image height; x runs from 0 (left wall) to
 * width / height (right wall), y from 0 (image bottom) up; the floor's surface is at
 * DUET_SYNTH_FLOOR_Y. */
#ifndef DUET_DATA_SYNTH_H
#define DUET_DATA_SYNTH_H

#include <stdint.h>

#include "core/error.h"

#define DUET_SYNTH_MAX_OBJECTS 3
/* An object that would collide more often than this within a clip stops where it is. */
#define DUET_SYNTH_MAX_EVENTS_PER_OBJECT 32
#define DUET_SYNTH_MAX_EVENTS (DUET_SYNTH_MAX_OBJECTS * DUET_SYNTH_MAX_EVENTS_PER_OBJECT)
#define DUET_SYNTH_MAX_SEGMENTS (DUET_SYNTH_MAX_EVENTS_PER_OBJECT + 4)
#define DUET_SYNTH_CAPTION_MAX 512
#define DUET_SYNTH_FLOOR_Y 0.15
#define DUET_SYNTH_GRAVITY 6.0 /* units / s^2 */

typedef struct duet_synth_params {
  int frames;              /* T */
  int height, width;       /* H, W */
  double fps;
  int sample_rate;
  int max_objects;         /* each clip has 1..max_objects objects (at most 3) */
  float background_noise;  /* RMS of a soft low-passed noise bed; 0 = silence between impacts */
  double object_scale;     /* multiplies every object's radius (0.5..2): small frames show
                              objects only when they span several pixels */
  uint64_t seed;
} duet_synth_params;

enum { DUET_SYNTH_BALL, DUET_SYNTH_SQUARE, DUET_SYNTH_TRIANGLE, DUET_SYNTH_N_SHAPES };
enum { DUET_SYNTH_SMALL, DUET_SYNTH_MEDIUM, DUET_SYNTH_LARGE, DUET_SYNTH_N_SIZES };
enum { DUET_SYNTH_WOOD, DUET_SYNTH_METAL, DUET_SYNTH_RUBBER, DUET_SYNTH_GLASS,
       DUET_SYNTH_N_MATERIALS };
enum { DUET_SYNTH_N_COLOURS = 9, DUET_SYNTH_N_FLOORS = 4, DUET_SYNTH_N_WALLS = 5 };
enum { DUET_SYNTH_HIT_FLOOR, DUET_SYNTH_HIT_LEFT_WALL, DUET_SYNTH_HIT_RIGHT_WALL };

/* A stretch of free flight (g pulls) or of sliding on the floor (friction slows), from t on. */
typedef struct duet_synth_segment {
  double t, x, y, vx, vy;
  int sliding;
} duet_synth_segment;

typedef struct duet_synth_object {
  int shape, size, material, colour; /* indices into the name tables below */
  double radius;                     /* half extent in units: the shape spans centre +- radius */
  int n_segments;
  duet_synth_segment seg[DUET_SYNTH_MAX_SEGMENTS];
  int floor_bounces, wall_hits;      /* impacts within the clip, as the caption counts them */
  int settles;                       /* comes to rest on the floor within the clip */
  float detune;                      /* per-object pitch factor, near 1 */
} duet_synth_object;

typedef struct duet_synth_event {
  double t;      /* seconds from the clip start */
  int object;    /* index into objects */
  int surface;   /* DUET_SYNTH_HIT_* */
  double speed;  /* normal speed at impact, units / s */
} duet_synth_event;

typedef struct duet_synth_scene {
  int n_objects;
  duet_synth_object objects[DUET_SYNTH_MAX_OBJECTS];
  int floor_colour;                 /* index into the floor names */
  int gradient;                     /* 1: the wall behind is a vertical gradient */
  uint8_t wall_top[3], wall_bottom[3], floor_rgb[3];
  int n_events;                     /* sorted by time */
  duet_synth_event events[DUET_SYNTH_MAX_EVENTS];
  char caption[DUET_SYNTH_CAPTION_MAX];
} duet_synth_scene;

/* 2 s at 16 fps, 64x64, 16 kHz, up to 3 objects, no noise bed, seed 0. */
void duet_synth_params_default(duet_synth_params *p);
int duet_synth_params_check(const duet_synth_params *p, duet_err *err);
/* round(frames / fps * sample_rate): audio exactly as long as the video. */
int64_t duet_synth_audio_samples(const duet_synth_params *p);
/* Width of the events dataset a file of these clips needs. */
int duet_synth_max_events(const duet_synth_params *p);

/* Draws the scene of clip `index` and simulates it over the clip's duration. */
void duet_synth_scene_make(const duet_synth_params *p, int64_t index, duet_synth_scene *s);
/* Centre of object j at time t (seconds), in world units. */
void duet_synth_object_at(const duet_synth_scene *s, int j, double t, double *x, double *y);
/* [T, H, W, 3] RGB, anti-aliased; objects are drawn in index order. */
void duet_synth_render_video(const duet_synth_params *p, const duet_synth_scene *s,
                             uint8_t *video);
/* [S] mono in [-1, 1]: one impact sound per event, plus the noise bed. */
void duet_synth_render_audio(const duet_synth_params *p, const duet_synth_scene *s,
                             int64_t index, float *audio);
/* All of the above for clip `index`; video [T*H*W*3] and audio [S] are the caller's. */
int duet_synth_clip(const duet_synth_params *p, int64_t index, duet_synth_scene *s,
                    uint8_t *video, float *audio, duet_err *err);

const char *duet_synth_shape_name(int shape);       /* "ball", "square", "triangle" */
const char *duet_synth_size_name(int size);         /* "small", "medium", "large" */
const char *duet_synth_material_name(int material); /* "wooden", "metal", "rubber", "glass" */
const char *duet_synth_colour_name(int colour);     /* object colours: "red", ... */
const char *duet_synth_floor_name(int colour);      /* floor colours: "blue", ... */
const uint8_t *duet_synth_colour_rgb(int colour);   /* RGB of an object colour */
const uint8_t *duet_synth_floor_rgb(int colour);
const uint8_t *duet_synth_wall_rgb(int tone);       /* the unnamed wall tones */
/* "once", "twice", "three times", ... */
const char *duet_synth_count_words(int n, char *buf, int buf_n);

/* Writing a whole dataset through the clip writer (data/clips.h). */
typedef void (*duet_synth_progress_fn)(void *user, int64_t done, int64_t total);

typedef struct duet_synth_write_opts {
  int64_t count;         /* clips 0 .. count-1 */
  int threads;           /* generator threads; 0 = OpenMP's default */
  int overwrite;         /* replace an existing file */
  int audio_i16;         /* store audio as int16 */
  duet_synth_progress_fn progress; /* called from the calling thread; may be NULL */
  void *user;
} duet_synth_write_opts;

int duet_synth_write(const char *path, const duet_synth_params *p,
                     const duet_synth_write_opts *o, duet_err *err);

#endif
