/* Does a clip file fit the model and the codecs? Checked at start, before anything is written,
 * so that a mismatch is one line naming both sides rather than a shape error deep in a step. */
#include <math.h>
#include <stdio.h>

#include "data/augment.h"
#include "model/video_codec.h"
#include "train/train_config.h"

static int near(double a, double b) { return fabs(a - b) <= 1e-9 * fmax(fabs(a), fabs(b)); }

int duet_train_check_data(const duet_train_config *c, const duet_clip_shape *shape, int has_text_emb,
                          const char *path, duet_err *err) {
  const duet_model_config *m = &c->model;
  if (!near(shape->fps, m->fps))
    return duet_err_set(err, DUET_EINVAL, "%s: clips are %g fps but model.fps = %g", path, shape->fps, m->fps);
  if (shape->sample_rate != c->audio.sample_rate)
    return duet_err_set(err, DUET_EINVAL, "%s: audio is %d Hz but audio.sample_rate = %d", path, shape->sample_rate,
                        c->audio.sample_rate);
  duet_augment_config ac = {c->data.crop_height, c->data.crop_width, c->data.random_crop, c->data.flip};
  int rc = duet_augment_check(&ac, shape->height, shape->width, path, err);
  if (rc) return rc;
  int h, w;
  duet_augment_out_size(&ac, shape->height, shape->width, &h, &w);
  duet_video_codec vc;
  if ((rc = duet_video_codec_init(&vc, DUET_VIDEO_CODEC_PIXELS, err))) return rc;
  int64_t lt, lh, lw;
  if ((rc = duet_video_codec_latent_shape(&vc, shape->frames, h, w, &lt, &lh, &lw, err)))
    return duet_err_prefix(err, "%s: ", path);
  if (lt != m->video_frames && lt == shape->frames)
    return duet_err_set(err, DUET_EINVAL, "%s: clips have %d frames but model.video_frames = %d", path, shape->frames,
                        m->video_frames);
  if (lt != m->video_frames)
    return duet_err_set(err, DUET_EINVAL, "%s: clips have %d frames (%lld latent frames) but model.video_frames = %d",
                        path, shape->frames, (long long)lt, m->video_frames);
  const char *crop = c->data.crop_height ? " after cropping" : "";
  if (lh != m->video_height || lw != m->video_width)
    return duet_err_set(err, DUET_EINVAL, "%s: frames are %dx%d (HxW)%s but model.video_height x video_width = %dx%d",
                        path, h, w, crop, m->video_height, m->video_width);
  /* frames = ceil(samples / hop), the codec's framing (model/audio_codec.h). */
  int64_t frames = (shape->audio_samples + c->audio.hop - 1) / c->audio.hop;
  if (frames != m->audio_frames)
    return duet_err_set(err, DUET_EINVAL,
                        "%s: %lld audio samples make %lld mel frames at audio.hop = %d but model.audio_frames = %d",
                        path, (long long)shape->audio_samples, (long long)frames, c->audio.hop, m->audio_frames);
  if (m->text_source == DUET_TEXT_PRECOMPUTED) {
    if (!has_text_emb)
      return duet_err_set(err, DUET_EINVAL, "%s: the file has no text_emb but model.text_source = precomputed", path);
    if (shape->text_len != m->text_len || shape->text_dim != m->text_emb_dim)
      return duet_err_set(err, DUET_EINVAL,
                          "%s: text_emb is [%d, %d] per clip but model.text_len x text_emb_dim = [%d, %d]", path,
                          shape->text_len, shape->text_dim, m->text_len, m->text_emb_dim);
  }
  return DUET_OK;
}

/* In pixel space a token carries patch_t x patch_h x patch_w x channels numbers in and out; a
 * branch narrower than that cannot pass the noise it has to remove through its width, and
 * training stalls at a high loss with samples that stay noise. Not an error: a learned codec
 * changes the numbers, and a user may want to see it for themselves. */
int duet_train_capacity_warning(const duet_model_config *m, char *buf, size_t size) {
  int video_features = m->patch_t * m->patch_h * m->patch_w * m->video_channels;
  int audio_features = m->patch_a * m->audio_channels;
  if (m->width_video < video_features)
    return snprintf(buf, size,
                    "warning: model.width_video = %d is below the %d numbers a video token carries "
                    "(patch %dx%dx%d x %d channels); expect samples that stay noisy",
                    m->width_video, video_features, m->patch_t, m->patch_h, m->patch_w, m->video_channels) > 0;
  if (m->width_audio < audio_features)
    return snprintf(buf, size,
                    "warning: model.width_audio = %d is below the %d numbers an audio token carries "
                    "(patch %d x %d mels); expect samples that stay noisy",
                    m->width_audio, audio_features, m->patch_a, m->audio_channels) > 0;
  return 0;
}
