/* A model small enough for unit tests, with every feature switched on. */
#ifndef DUET_TESTS_MMDIT_TINY_CONFIG_H
#define DUET_TESTS_MMDIT_TINY_CONFIG_H

#include "model/config.h"

static inline duet_model_config tiny_model_config(void) {
  duet_model_config c;
  duet_model_config_defaults(&c);
  c.video_frames = 4; c.video_height = 8; c.video_width = 8;
  c.patch_t = 2; c.patch_h = 4; c.patch_w = 4; c.fps = 16;
  c.audio_frames = 16; c.audio_channels = 8; c.patch_a = 4; c.audio_rate = 64;
  c.width_video = 32; c.width_audio = 16; c.width_text = 24;
  c.heads_video = 2; c.heads_audio = 1; c.heads_text = 2;
  c.depth = 2; c.text_len = 12; c.text_layers = 1;
  c.rope_time_pairs = 4;
  return c;
}

#endif
