/* The config sections the model owns — [model], [flow] and [audio] — as core/config.h key
 * tables, so that training, inference and the benchmarks read one checkpoint's config.ini
 * the same way. */
#ifndef DUET_MODEL_CONFIG_KEYS_H
#define DUET_MODEL_CONFIG_KEYS_H

#include "core/config.h"
#include "model/audio_codec.h"
#include "model/config.h"
#include "model/flow.h"

/* The [audio] section: the codec settings a config may change (the normalisation constants as
 * doubles, since config values are). */
typedef struct duet_audio_settings {
  int sample_rate;
  int n_fft, hop, win_length, n_mels;
  double norm_mean, norm_std;
  int gl_iters;
} duet_audio_settings;

void duet_audio_settings_default(duet_audio_settings *s);
/* The codec config these settings describe (the codec's defaults elsewhere). */
void duet_audio_settings_to_codec(const duet_audio_settings *s, duet_audio_codec_config *out);

/* The text of [model], [flow] and [audio] that a checkpoint carries (model.safetensors
 * metadata, key DUET_CONFIG_META_KEY), and its inverse (defaults, then the text). Caller
 * frees *text. */
#define DUET_CONFIG_META_KEY "duet.config"
int duet_model_config_text(const duet_model_config *mc, const duet_flow_config *fc, const duet_audio_settings *as,
                           char **text, duet_err *err);
int duet_model_config_parse(const char *text, const char *origin, duet_model_config *mc, duet_flow_config *fc,
                            duet_audio_settings *as, duet_err *err);

extern const duet_cfg_key duet_model_keys[];
extern const int duet_model_key_count;
extern const duet_cfg_key duet_flow_keys[];
extern const int duet_flow_key_count;
extern const duet_cfg_key duet_audio_keys[];
extern const int duet_audio_key_count;

#endif
