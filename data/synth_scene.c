/* Drawing a scene and simulating it. Motion between impacts is ballistic (or, on the floor,
 * uniformly decelerated), so each impact time is the root of a quadratic: exact, not found by
 * stepping. */
#include "data/synth.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/rng.h"

/* Stream ids: what a clip's random numbers are for. */
#define SYNTH_STREAM_SCENE 0x5CE9Eull

/* A rebound slower than this would be a hop of under a tenth of a second: the object settles
 * and slides instead. Every floor impact above it is an audible event. */
#define REST_SPEED 0.5
/* A wall touched slower than this stops the object there silently. */
#define WALL_MIN_SPEED 0.25
#define SLIDE_FRICTION 0.4  /* sliding deceleration, in units of g */
#define TANGENTIAL_KEEP 0.9 /* share of horizontal speed kept through a floor bounce */
#define TOP_Y 0.95          /* objects never rise above this */

static const double size_radius[DUET_SYNTH_N_SIZES] = {0.06, 0.09, 0.13};
static const double restitution[DUET_SYNTH_N_MATERIALS] = {0.65, 0.6, 0.85, 0.55};

/* Object colours a floor hides: an object never has the colour of its floor. */
static int clashes(int floor, int colour) {
  const char *a = duet_synth_floor_name(floor), *b = duet_synth_colour_name(colour);
  return strcmp(a, b) == 0;
}

static void push_segment(duet_synth_object *o, double t, double x, double y, double vx,
                         double vy, int sliding) {
  if (o->n_segments >= DUET_SYNTH_MAX_SEGMENTS) return;
  duet_synth_segment *s = &o->seg[o->n_segments++];
  s->t = t;
  s->x = x;
  s->y = y;
  s->vx = vx;
  s->vy = vy;
  s->sliding = sliding;
}

typedef struct sim {
  double t_end, right_wall, floor_c; /* floor_c: centre height when touching the floor */
  duet_synth_event *events;
  int n_events, cap;
} sim;

static int add_event(sim *m, duet_synth_object *o, int obj, double t, int surface, double speed) {
  if (m->n_events >= m->cap) return 0;
  duet_synth_event *e = &m->events[m->n_events++];
  e->t = t;
  e->object = obj;
  e->surface = surface;
  e->speed = speed;
  if (surface == DUET_SYNTH_HIT_FLOOR) o->floor_bounces++;
  else o->wall_hits++;
  return 1;
}

/* Time until a body at x moving at vx (|vx| decreasing at rate a >= 0) reaches `wall`, or
 * INFINITY. */
static double time_to_wall(double x, double vx, double a, double left, double right) {
  if (vx == 0.0) return INFINITY;
  double d = vx > 0 ? right - x : x - left;
  if (d <= 0) return 0.0;
  double v = fabs(vx);
  if (a <= 0.0) return d / v;
  double disc = v * v - 2.0 * a * d;
  if (disc < 0) return INFINITY;
  return (v - sqrt(disc)) / a;
}

static void simulate(sim *m, duet_synth_object *o, int obj, double x, double y, double vx,
                     double vy) {
  const double g = DUET_SYNTH_GRAVITY, r = o->radius, e = restitution[o->material];
  const double left = r, right = m->right_wall - r, floor_c = m->floor_c;
  double t = 0.0;
  int sliding = 0, n_obj_events = 0;
  o->n_segments = 0;
  push_segment(o, t, x, y, vx, vy, 0);
  while (t < m->t_end) {
    if (n_obj_events >= DUET_SYNTH_MAX_EVENTS_PER_OBJECT) {
      /* Stop where it is (on the floor if it was there): see DUET_SYNTH_MAX_EVENTS_PER_OBJECT. */
      push_segment(o, t, x, y, 0.0, 0.0, 1);
      return;
    }
    if (!sliding) {
      double h = y - floor_c > 0 ? y - floor_c : 0.0;
      double tf = (vy + sqrt(vy * vy + 2.0 * g * h)) / g;
      double tw = time_to_wall(x, vx, 0.0, left, right);
      if (tw < tf) {
        t += tw;
        y += vy * tw - 0.5 * g * tw * tw;
        vy -= g * tw;
        x = vx > 0 ? right : left;
        if (t >= m->t_end) return;
        double speed = fabs(vx);
        if (speed >= WALL_MIN_SPEED && add_event(m, o, obj, t, vx > 0 ? DUET_SYNTH_HIT_RIGHT_WALL
                                                                      : DUET_SYNTH_HIT_LEFT_WALL,
                                                speed)) {
          n_obj_events++;
          vx = -e * vx;
        } else {
          vx = 0.0;
        }
      } else {
        t += tf;
        x += vx * tf;
        y = floor_c;
        double speed = fabs(vy - g * tf);
        if (t >= m->t_end) return;
        if (add_event(m, o, obj, t, DUET_SYNTH_HIT_FLOOR, speed)) n_obj_events++;
        vy = e * speed;
        vx *= TANGENTIAL_KEEP;
        if (vy < REST_SPEED) {
          vy = 0.0;
          sliding = 1;
          o->settles = 1;
        }
      }
    } else {
      double a = SLIDE_FRICTION * g;
      double tw = time_to_wall(x, vx, a, left, right);
      if (!isfinite(tw)) return; /* stops before reaching a wall: the last segment says where */
      double v_hit = fabs(vx) - a * tw;
      t += tw;
      x = vx > 0 ? right : left;
      if (t >= m->t_end) return;
      int surface = vx > 0 ? DUET_SYNTH_HIT_RIGHT_WALL : DUET_SYNTH_HIT_LEFT_WALL;
      if (v_hit >= WALL_MIN_SPEED && add_event(m, o, obj, t, surface, v_hit)) {
        n_obj_events++;
        vx = vx > 0 ? -e * v_hit : e * v_hit;
      } else {
        vx = 0.0;
      }
    }
    push_segment(o, t, x, y, vx, vy, sliding);
  }
}

void duet_synth_object_at(const duet_synth_scene *s, int j, double t, double *x, double *y) {
  const duet_synth_object *o = &s->objects[j];
  const duet_synth_segment *seg = &o->seg[0];
  for (int i = 1; i < o->n_segments && o->seg[i].t <= t; i++) seg = &o->seg[i];
  double dt = t - seg->t;
  if (dt < 0) dt = 0;
  double floor_c = DUET_SYNTH_FLOOR_Y + o->radius;
  if (seg->sliding) {
    double a = SLIDE_FRICTION * DUET_SYNTH_GRAVITY, v = fabs(seg->vx);
    double ts = a > 0 ? v / a : INFINITY;
    double tt = dt < ts ? dt : ts;
    double dist = v * tt - 0.5 * a * tt * tt;
    *x = seg->x + (seg->vx >= 0 ? dist : -dist);
    *y = seg->y;
  } else {
    *x = seg->x + seg->vx * dt;
    *y = seg->y + seg->vy * dt - 0.5 * DUET_SYNTH_GRAVITY * dt * dt;
    /* Past the clip's end no impact was simulated: keep the body above the floor. */
    if (*y < floor_c) *y = floor_c;
  }
}

static void sort_events(duet_synth_event *ev, int n) {
  for (int i = 1; i < n; i++) {
    duet_synth_event e = ev[i];
    int j = i - 1;
    while (j >= 0 && (ev[j].t > e.t || (ev[j].t == e.t && ev[j].object > e.object))) {
      ev[j + 1] = ev[j];
      j--;
    }
    ev[j + 1] = e;
  }
}

static void join_phrases(char *out, size_t n, const char *const *ph, int k) {
  size_t len = strlen(out);
  for (int i = 0; i < k; i++) {
    const char *sep = i == 0 ? "" : (i == k - 1 ? " and " : ", ");
    int w = snprintf(out + len, n - len, "%s%s", sep, ph[i]);
    if (w < 0 || (size_t)w >= n - len) return;
    len += (size_t)w;
  }
}

static void write_caption(duet_synth_scene *s) {
  char *c = s->caption;
  size_t n = sizeof s->caption;
  c[0] = '\0';
  for (int j = 0; j < s->n_objects; j++) {
    const duet_synth_object *o = &s->objects[j];
    char words[32], ph[3][96];
    const char *list[3];
    int k = 0;
    size_t len = strlen(c);
    snprintf(c + len, n - len, "%sa %s %s %s %s ", j ? "; " : "", duet_synth_size_name(o->size),
             duet_synth_colour_name(o->colour), duet_synth_material_name(o->material),
             duet_synth_shape_name(o->shape));
    if (o->floor_bounces > 0)
      snprintf(ph[k], sizeof ph[k], "bounces %s%s%s%s",
               duet_synth_count_words(o->floor_bounces, words, sizeof words),
               j == 0 ? " on a " : "", j == 0 ? duet_synth_floor_name(s->floor_colour) : "",
               j == 0 ? " floor" : "");
    else
      snprintf(ph[k], sizeof ph[k], "flies%s%s%s", j == 0 ? " above a " : "",
               j == 0 ? duet_synth_floor_name(s->floor_colour) : "", j == 0 ? " floor" : "");
    list[k] = ph[k];
    k++;
    if (o->wall_hits > 0) {
      snprintf(ph[k], sizeof ph[k], "hits a wall %s",
               duet_synth_count_words(o->wall_hits, words, sizeof words));
      list[k] = ph[k];
      k++;
    }
    if (o->settles) {
      snprintf(ph[k], sizeof ph[k], "comes to rest");
      list[k] = ph[k];
      k++;
    }
    join_phrases(c, n, list, k);
  }
}

static void pick_colour(duet_rng *r, int floor, const int *taken, int n_taken, int *out) {
  for (;;) {
    int c = (int)duet_rng_below(r, DUET_SYNTH_N_COLOURS);
    int ok = !clashes(floor, c);
    for (int i = 0; i < n_taken; i++) ok &= taken[i] != c;
    if (ok) {
      *out = c;
      return;
    }
  }
}

void duet_synth_scene_make(const duet_synth_params *p, int64_t index, duet_synth_scene *s) {
  memset(s, 0, sizeof *s);
  duet_rng r = duet_rng_make(p->seed, duet_rng_stream_id(SYNTH_STREAM_SCENE, (uint64_t)index, 0));
  s->n_objects = 1 + (int)duet_rng_below(&r, (uint64_t)p->max_objects);
  s->floor_colour = (int)duet_rng_below(&r, DUET_SYNTH_N_FLOORS);
  memcpy(s->floor_rgb, duet_synth_floor_rgb(s->floor_colour), 3);
  int top = (int)duet_rng_below(&r, DUET_SYNTH_N_WALLS);
  s->gradient = duet_rng_below(&r, 2) == 1;
  int bottom = top;
  if (s->gradient) bottom = (top + 1 + (int)duet_rng_below(&r, DUET_SYNTH_N_WALLS - 1)) % DUET_SYNTH_N_WALLS;
  memcpy(s->wall_top, duet_synth_wall_rgb(top), 3);
  memcpy(s->wall_bottom, duet_synth_wall_rgb(bottom), 3);

  sim m = {.t_end = p->frames / p->fps, .right_wall = (double)p->width / p->height,
           .events = s->events, .cap = DUET_SYNTH_MAX_EVENTS};
  int taken[DUET_SYNTH_MAX_OBJECTS];
  for (int j = 0; j < s->n_objects; j++) {
    duet_synth_object *o = &s->objects[j];
    o->shape = (int)duet_rng_below(&r, DUET_SYNTH_N_SHAPES);
    o->size = (int)duet_rng_below(&r, DUET_SYNTH_N_SIZES);
    o->material = (int)duet_rng_below(&r, DUET_SYNTH_N_MATERIALS);
    pick_colour(&r, s->floor_colour, taken, j, &o->colour);
    taken[j] = o->colour;
    o->radius = size_radius[o->size] * p->object_scale * (0.92 + 0.16 * duet_rng_uniform_f64(&r));
    o->detune = (float)(0.97 + 0.06 * duet_rng_uniform_f64(&r));
    double rr = o->radius, aw = m.right_wall;
    double x = aw > 2 * rr ? rr + (aw - 2 * rr) * duet_rng_uniform_f64(&r) : aw / 2;
    double y_lo = DUET_SYNTH_FLOOR_Y + rr + 0.2, y_hi = TOP_Y - rr;
    double y = y_hi > y_lo ? y_lo + (y_hi - y_lo) * duet_rng_uniform_f64(&r) : y_lo;
    double vx = (0.3 + 0.6 * duet_rng_uniform_f64(&r)) * (duet_rng_below(&r, 2) ? 1.0 : -1.0);
    double vy = -1.0 + 2.2 * duet_rng_uniform_f64(&r);
    double vmax = y_hi > y ? sqrt(2.0 * DUET_SYNTH_GRAVITY * (y_hi - y)) : 0.0;
    if (vy > vmax) vy = vmax;
    m.floor_c = DUET_SYNTH_FLOOR_Y + rr;
    simulate(&m, o, j, x, y, vx, vy);
  }
  s->n_events = m.n_events;
  sort_events(s->events, s->n_events);
  write_caption(s);
}
