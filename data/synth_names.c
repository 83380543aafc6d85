/* The words and colours scenes are described with. Object colours never share a name with
 * the floor they stand on, so every caption names what a viewer can tell apart. */
#include "data/synth.h"

#include <stdio.h>

typedef struct named_colour {
  const char *name;
  uint8_t rgb[3];
} named_colour;

static const named_colour object_colours[DUET_SYNTH_N_COLOURS] = {
    {"red", {220, 45, 45}},    {"green", {50, 175, 70}},   {"blue", {45, 95, 225}},
    {"yellow", {240, 205, 40}}, {"orange", {245, 135, 35}}, {"purple", {145, 65, 190}},
    {"pink", {240, 125, 185}}, {"cyan", {40, 195, 210}},   {"black", {30, 30, 30}},
};

static const named_colour floor_colours[DUET_SYNTH_N_FLOORS] = {
    {"blue", {50, 70, 140}}, {"grey", {105, 105, 110}}, {"brown", {115, 80, 50}},
    {"green", {55, 105, 60}},
};

/* Pale, unnamed wall tones: far from every object colour. */
static const uint8_t wall_tones[DUET_SYNTH_N_WALLS][3] = {
    {200, 215, 235}, {230, 220, 200}, {210, 210, 210}, {200, 225, 205}, {220, 210, 235},
};

static const char *const shapes[DUET_SYNTH_N_SHAPES] = {"ball", "square", "triangle"};
static const char *const sizes[DUET_SYNTH_N_SIZES] = {"small", "medium", "large"};
static const char *const materials[DUET_SYNTH_N_MATERIALS] = {"wooden", "metal", "rubber", "glass"};

const char *duet_synth_shape_name(int i) { return i >= 0 && i < DUET_SYNTH_N_SHAPES ? shapes[i] : "?"; }
const char *duet_synth_size_name(int i) { return i >= 0 && i < DUET_SYNTH_N_SIZES ? sizes[i] : "?"; }
const char *duet_synth_material_name(int i) {
  return i >= 0 && i < DUET_SYNTH_N_MATERIALS ? materials[i] : "?";
}
const char *duet_synth_colour_name(int i) {
  return i >= 0 && i < DUET_SYNTH_N_COLOURS ? object_colours[i].name : "?";
}
const char *duet_synth_floor_name(int i) {
  return i >= 0 && i < DUET_SYNTH_N_FLOORS ? floor_colours[i].name : "?";
}

const char *duet_synth_count_words(int n, char *buf, int buf_n) {
  static const char *const words[] = {"no times", "once", "twice", "three times", "four times",
                                      "five times", "six times", "seven times", "eight times",
                                      "nine times", "ten times", "eleven times", "twelve times"};
  if (n >= 0 && n <= 12) snprintf(buf, (size_t)buf_n, "%s", words[n]);
  else snprintf(buf, (size_t)buf_n, "%d times", n);
  return buf;
}

static const uint8_t none[3] = {0, 0, 0};

const uint8_t *duet_synth_colour_rgb(int i) {
  return i >= 0 && i < DUET_SYNTH_N_COLOURS ? object_colours[i].rgb : none;
}
const uint8_t *duet_synth_floor_rgb(int i) {
  return i >= 0 && i < DUET_SYNTH_N_FLOORS ? floor_colours[i].rgb : none;
}
const uint8_t *duet_synth_wall_rgb(int i) {
  return i >= 0 && i < DUET_SYNTH_N_WALLS ? wall_tones[i] : none;
}
