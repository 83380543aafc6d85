/* The config sections the model owns — [model], [flow] and [audio] — as core/config.h key
 * tables, so that training, inference and the benchmarks read one checkpoint's config.ini
 * the same way. */
#ifndef DUET_MODEL_CONFIG_KEYS_H
#define DUET_MODEL_CONFIG_KEYS_H

#include "core/config.h"
#include "model/audio_codec.h"
#include "model/config.h"
#include "model/flow.h"

extern const duet_cfg_key duet_model_keys[];
extern const int duet_model_key_count;
extern const duet_cfg_key duet_flow_keys[];
extern const int duet_flow_key_count;
extern const duet_cfg_key duet_audio_keys[];
extern const int duet_audio_key_count;

#endif
