#include "model/config_keys.h"

#include <stddef.h>

#define NO_RANGE 1, 0 /* min > max: no range check */

static const char *const fusion_names[] = {"cross", "joint", NULL};
static const char *const text_source_names[] = {"bytes", "precomputed", "words", NULL};
static const char *const prediction_names[] = {"velocity", "clean", NULL};
static const char *const time_sampling_names[] = {"uniform", "logit_normal", NULL};

#define M(name, type, lo, hi, help) {"model", #name, type, offsetof(duet_model_config, name), lo, hi, NULL, help}
const duet_cfg_key duet_model_keys[] = {
    M(video_frames, DUET_CFG_INT, 1, 4096, "video latent frames per clip (pixels: the clip's frames)"),
    M(video_height, DUET_CFG_INT, 1, 8192, "video latent height (pixels: frame height after cropping)"),
    M(video_width, DUET_CFG_INT, 1, 8192, "video latent width (pixels: frame width after cropping)"),
    M(video_channels, DUET_CFG_INT, 1, 1024, "video latent channels (pixels: 3)"),
    M(patch_t, DUET_CFG_INT, 1, 64, "video patch size in time (latent frames per token)"),
    M(patch_h, DUET_CFG_INT, 1, 256, "video patch height"),
    M(patch_w, DUET_CFG_INT, 1, 256, "video patch width"),
    M(fps, DUET_CFG_DOUBLE, 0, 1e4, "video latent frames per second (must equal the data's fps)"),
    M(audio_frames, DUET_CFG_INT, 1, 1 << 20, "audio latent frames per clip (ceil(samples / audio.hop))"),
    M(audio_channels, DUET_CFG_INT, 1, 4096, "audio latent channels (must equal audio.n_mels)"),
    M(patch_a, DUET_CFG_INT, 1, 256, "audio latent frames per token"),
    M(audio_rate, DUET_CFG_DOUBLE, 0, 1e6, "audio latent frames per second (audio.sample_rate / audio.hop)"),
    M(width_video, DUET_CFG_INT, 2, 65536, "video branch width"),
    M(width_audio, DUET_CFG_INT, 2, 65536, "audio branch width"),
    M(width_text, DUET_CFG_INT, 2, 65536, "text encoder width"),
    M(heads_video, DUET_CFG_INT, 1, 1024, "video attention heads (width_video / heads must be even)"),
    M(heads_audio, DUET_CFG_INT, 1, 1024, "audio attention heads"),
    M(heads_text, DUET_CFG_INT, 1, 1024, "text encoder attention heads"),
    M(depth, DUET_CFG_INT, 0, 64, "dual-stream blocks"),
    M(single_depth, DUET_CFG_INT, 0, 64, "single-stream blocks after them (need equal branch widths)"),
    M(mlp_ratio, DUET_CFG_DOUBLE, 0, 64, "MLP hidden width / branch width"),
    {"model", "fusion", DUET_CFG_ENUM, offsetof(duet_model_config, fusion), NO_RANGE, fusion_names,
     "cross: per-branch attention with its text, then A<->V cross-attention; joint: one attention over all"},
    {"model", "text_source", DUET_CFG_ENUM, offsetof(duet_model_config, text_source), NO_RANGE, text_source_names,
     "bytes: built-in encoder on the caption's bytes; words: on its hashed words; precomputed: the data's /text_emb"},
    M(text_len, DUET_CFG_INT, 1, 65536, "text tokens per caption (bytes or words; longer captions are cut)"),
    M(text_vocab, DUET_CFG_INT, 2, 1 << 22, "words: hash buckets of the word embedding table"),
    M(text_layers, DUET_CFG_INT, 0, 64, "built-in text encoder layers"),
    M(text_emb_dim, DUET_CFG_INT, 0, 65536, "width D of precomputed embeddings (text_source = precomputed)"),
    M(rope_time_pairs, DUET_CFG_INT, 1, 4096, "rotary pairs per head on the shared time axis"),
    M(rope_theta, DUET_CFG_DOUBLE, 0, 1e12, "rotary base frequency"),
    M(rope_time_scale, DUET_CFG_DOUBLE, 0, 1e9, "rotary time positions per second"),
    M(aligned_width, DUET_CFG_INT, 0, 65536,
      "time-aligned exchange after each block's cross-attention: features per video token (0: off)"),
    {"model", "video_prediction", DUET_CFG_ENUM, offsetof(duet_model_config, video_prediction), NO_RANGE,
     prediction_names, "what the video branch predicts: velocity (eps - x_0), or clean (x_0, turned into its velocity)"},
    {"model", "audio_prediction", DUET_CFG_ENUM, offsetof(duet_model_config, audio_prediction), NO_RANGE,
     prediction_names, "what the audio branch predicts: velocity or clean (as video_prediction)"},
    M(ref_video_frames, DUET_CFG_INT, 0, 4096, "reference video frames at negative times (0: none)"),
    M(ref_audio_frames, DUET_CFG_INT, 0, 1 << 20, "reference audio latent frames (0: none)"),
};
#undef M
const int duet_model_key_count = (int)(sizeof duet_model_keys / sizeof duet_model_keys[0]);

#define F(name, type, lo, hi, help) {"flow", #name, type, offsetof(duet_flow_config, name), lo, hi, NULL, help}
#define TASK(name, id)                                                                                    \
  {"flow", "task_" #name, DUET_CFG_DOUBLE, offsetof(duet_flow_config, task_prob) + (id) * sizeof(double), \
   0, 1e6, NULL, "relative weight of task " #name " in the training mixture"}
const duet_cfg_key duet_flow_keys[] = {
    {"flow", "time_sampling", DUET_CFG_ENUM, offsetof(duet_flow_config, time_sampling), NO_RANGE,
     time_sampling_names, "flow time distribution: uniform, or logit_normal = sigmoid(N(logit_mean, logit_std))"},
    F(logit_mean, DUET_CFG_DOUBLE, -20, 20, "mean of the logit-normal time distribution"),
    F(logit_std, DUET_CFG_DOUBLE, 1e-6, 20, "standard deviation of the logit-normal time distribution"),
    F(time_shift, DUET_CFG_DOUBLE, 1e-6, 1e6, "time shift s: t' = s t / (1 + (s - 1) t); 1 = none, > 1 for larger grids"),
    F(weight_video, DUET_CFG_DOUBLE, 0, 1e6, "weight of the video loss in the total"),
    F(weight_audio, DUET_CFG_DOUBLE, 0, 1e6, "weight of the audio loss in the total"),
    F(text_dropout, DUET_CFG_DOUBLE, 0, 1, "probability of an empty caption (for classifier-free guidance)"),
    TASK(t2av, DUET_TASK_T2AV),
    TASK(i2av, DUET_TASK_I2AV),
    TASK(extend, DUET_TASK_EXTEND),
    TASK(inpaint, DUET_TASK_INPAINT),
    TASK(v2a, DUET_TASK_V2A),
    TASK(a2v, DUET_TASK_A2V),
    TASK(t2v, DUET_TASK_T2V),
    TASK(t2a, DUET_TASK_T2A),
    F(audio_lag_prob, DUET_CFG_DOUBLE, 0, 1,
      "probability that a t2av or i2av sample draws its audio time behind its video time (0 = always shared)"),
    F(audio_lag_max, DUET_CFG_DOUBLE, -1, 1,
      "largest such lag: t_a = min(1, t_v + u audio_lag_max), u ~ U(0, 1); negative: the video behind the audio"),
    F(clean_loss_floor, DUET_CFG_DOUBLE, 0.05, 1,
      "clean-predicting branches: loss = x_0 error / max(t, floor)^2 (0.05: the velocity loss; 1: the x_0 loss)"),
};
#undef F
#undef TASK
const int duet_flow_key_count = (int)(sizeof duet_flow_keys / sizeof duet_flow_keys[0]);

#define A(name, type, lo, hi, help) {"audio", #name, type, offsetof(duet_audio_settings, name), lo, hi, NULL, help}

const duet_cfg_key duet_audio_keys[] = {
    A(sample_rate, DUET_CFG_INT, 1000, 384000, "waveform sample rate (Hz; must equal the data's)"),
    A(n_fft, DUET_CFG_INT, 16, 65536, "STFT size"),
    A(hop, DUET_CFG_INT, 1, 65536, "samples between mel frames (sample_rate / hop = model.audio_rate)"),
    A(win_length, DUET_CFG_INT, 1, 65536, "Hann window length (<= n_fft, >= hop)"),
    A(n_mels, DUET_CFG_INT, 1, 4096, "mel bands (= model.audio_channels)"),
    A(norm_mean, DUET_CFG_DOUBLE, -1e3, 1e3, "latent = (log mel - norm_mean) / norm_std"),
    A(norm_std, DUET_CFG_DOUBLE, 1e-6, 1e3, "see norm_mean"),
    A(gl_iters, DUET_CFG_INT, 0, 100000, "Griffin-Lim iterations when decoding"),
};
const int duet_audio_key_count = (int)(sizeof duet_audio_keys / sizeof duet_audio_keys[0]);

void duet_audio_settings_default(duet_audio_settings *s) {
  duet_audio_codec_config ac;
  duet_audio_codec_config_default(&ac);
  *s = (duet_audio_settings){ac.sample_rate, ac.n_fft, ac.hop, ac.win_length, ac.n_mels,
                             ac.norm_mean, ac.norm_std, ac.gl_iters};
}

void duet_audio_settings_to_codec(const duet_audio_settings *s, duet_audio_codec_config *out) {
  duet_audio_codec_config_default(out);
  out->sample_rate = s->sample_rate;
  out->n_fft = s->n_fft;
  out->hop = s->hop;
  out->win_length = s->win_length;
  out->n_mels = s->n_mels;
  out->norm_mean = (float)s->norm_mean;
  out->norm_std = (float)s->norm_std;
  out->gl_iters = s->gl_iters;
}

static void groups(duet_cfg_group g[3], duet_model_config *mc, duet_flow_config *fc, duet_audio_settings *as) {
  g[0] = (duet_cfg_group){duet_model_keys, duet_model_key_count, mc};
  g[1] = (duet_cfg_group){duet_flow_keys, duet_flow_key_count, fc};
  g[2] = (duet_cfg_group){duet_audio_keys, duet_audio_key_count, as};
}

int duet_model_config_text(const duet_model_config *mc, const duet_flow_config *fc, const duet_audio_settings *as,
                           char **text, duet_err *err) {
  duet_model_config m = *mc;
  duet_flow_config f = *fc;
  duet_audio_settings a = *as;
  duet_cfg_group g[3];
  groups(g, &m, &f, &a);
  return duet_config_format_multi(g, 3, text, err);
}

int duet_model_config_parse(const char *text, const char *origin, duet_model_config *mc, duet_flow_config *fc,
                            duet_audio_settings *as, duet_err *err) {
  duet_model_config_defaults(mc);
  duet_flow_config_defaults(fc);
  duet_audio_settings_default(as);
  duet_cfg_group g[3];
  groups(g, mc, fc, as);
  return duet_config_load_string_multi(g, 3, text, origin, err);
}
