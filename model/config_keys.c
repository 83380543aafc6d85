#include "model/config_keys.h"

#include <stddef.h>

static const char *const fusion_names[] = {"cross", "joint", NULL};
static const char *const text_names[] = {"bytes", "precomputed", NULL};
static const char *const time_names[] = {"uniform", "logit_normal", NULL};

#define M(name, type, lo, hi, help) {"model", #name, type, offsetof(duet_model_config, name), lo, hi, NULL, help}

const duet_cfg_key duet_model_keys[] = {
    M(video_frames, DUET_CFG_INT, 1, 1e9, "video latent frames per clip"),
    M(video_height, DUET_CFG_INT, 1, 1e9, "video latent height"),
    M(video_width, DUET_CFG_INT, 1, 1e9, "video latent width"),
    M(video_channels, DUET_CFG_INT, 1, 1e9, "video latent channels (3 for pixels)"),
    M(patch_t, DUET_CFG_INT, 1, 1e9, "video patch size in time"),
    M(patch_h, DUET_CFG_INT, 1, 1e9, "video patch height"),
    M(patch_w, DUET_CFG_INT, 1, 1e9, "video patch width"),
    M(fps, DUET_CFG_DOUBLE, 1e-3, 1e4, "video latent frames per second"),
    M(audio_frames, DUET_CFG_INT, 1, 1e9, "audio latent frames per clip"),
    M(audio_channels, DUET_CFG_INT, 1, 1e9, "audio latent channels (mel bands)"),
    M(patch_a, DUET_CFG_INT, 1, 1e9, "audio frames per token"),
    M(audio_rate, DUET_CFG_DOUBLE, 1e-3, 1e6, "audio latent frames per second"),
    M(width_video, DUET_CFG_INT, 1, 1e9, "video branch width"),
    M(width_audio, DUET_CFG_INT, 1, 1e9, "audio branch width"),
    M(width_text, DUET_CFG_INT, 1, 1e9, "text encoder width"),
    M(heads_video, DUET_CFG_INT, 1, 1e9, "attention heads, video branch"),
    M(heads_audio, DUET_CFG_INT, 1, 1e9, "attention heads, audio branch"),
    M(heads_text, DUET_CFG_INT, 1, 1e9, "attention heads, text encoder"),
    M(depth, DUET_CFG_INT, 0, 64, "dual-stream blocks"),
    M(single_depth, DUET_CFG_INT, 0, 64, "single-stream tail blocks (equal branch widths)"),
    M(mlp_ratio, DUET_CFG_DOUBLE, 0.25, 16, "MLP hidden width / width"),
    {"model", "fusion", DUET_CFG_ENUM, offsetof(duet_model_config, fusion), 1, 0, fusion_names,
     "cross: per-branch attention + A<->V cross-attention; joint: one attention over all"},
    {"model", "text_source", DUET_CFG_ENUM, offsetof(duet_model_config, text_source), 1, 0, text_names,
     "bytes: built-in byte-level encoder; precomputed: the dataset's text_emb"},
    M(text_len, DUET_CFG_INT, 1, 1e9, "caption tokens (bytes)"),
    M(text_layers, DUET_CFG_INT, 0, 32, "built-in text encoder depth"),
    M(text_emb_dim, DUET_CFG_INT, 0, 1e6, "width of precomputed text embeddings"),
    M(rope_time_pairs, DUET_CFG_INT, 1, 1e9, "rotary pairs per head on the shared time axis"),
    M(rope_theta, DUET_CFG_DOUBLE, 1, 1e9, "rotary base"),
    M(rope_time_scale, DUET_CFG_DOUBLE, 1e-6, 1e6, "time positions = seconds * this"),
    M(ref_video_frames, DUET_CFG_INT, 0, 1e6, "reference video frames (0 = none)"),
    M(ref_audio_frames, DUET_CFG_INT, 0, 1e6, "reference audio latent frames (0 = none)"),
};
const int duet_model_key_count = (int)(sizeof duet_model_keys / sizeof duet_model_keys[0]);

#define F(name, type, lo, hi, help) {"flow", #name, type, offsetof(duet_flow_config, name), lo, hi, NULL, help}
#define TASK(i, key) {"flow", key, DUET_CFG_DOUBLE, offsetof(duet_flow_config, task_prob) + (i) * sizeof(double), 0, 1e6, NULL, "relative weight of this task in the mixture"}

const duet_cfg_key duet_flow_keys[] = {
    {"flow", "time_sampling", DUET_CFG_ENUM, offsetof(duet_flow_config, time_sampling), 1, 0, time_names,
     "flow time distribution during training"},
    F(logit_mean, DUET_CFG_DOUBLE, -10, 10, "logit-normal mean"),
    F(logit_std, DUET_CFG_DOUBLE, 1e-3, 10, "logit-normal standard deviation"),
    F(time_shift, DUET_CFG_DOUBLE, 1e-3, 1e3, "t' = s t / (1 + (s - 1) t); raise for larger grids"),
    F(weight_video, DUET_CFG_DOUBLE, 0, 1e6, "video loss weight"),
    F(weight_audio, DUET_CFG_DOUBLE, 0, 1e6, "audio loss weight"),
    F(text_dropout, DUET_CFG_DOUBLE, 0, 1, "probability of an empty caption (for guidance)"),
    TASK(DUET_TASK_T2AV, "task_t2av"), TASK(DUET_TASK_I2AV, "task_i2av"), TASK(DUET_TASK_EXTEND, "task_extend"),
    TASK(DUET_TASK_INPAINT, "task_inpaint"), TASK(DUET_TASK_V2A, "task_v2a"), TASK(DUET_TASK_A2V, "task_a2v"),
    TASK(DUET_TASK_T2V, "task_t2v"), TASK(DUET_TASK_T2A, "task_t2a"),
};
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
