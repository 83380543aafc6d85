/* A loader batch -> the latents the flow objective reads. */
#include <stdlib.h>
#include <string.h>

#include "model/text_encoder.h"
#include "train/trainer_internal.h"

int duet_latent_batch_alloc(duet_trainer *t, duet_err *err) {
  const duet_model_config *m = &t->cfg.model;
  size_t B = (size_t)t->cfg.data.batch;
  size_t vsz = (size_t)m->video_frames * m->video_height * m->video_width * m->video_channels;
  size_t asz = (size_t)m->audio_frames * m->audio_channels;
  duet_latent_batch *lb = &t->lat;
  lb->video = malloc(B * vsz * sizeof(float));
  lb->audio = malloc(B * asz * sizeof(float));
  lb->text_ids = malloc(B * (size_t)m->text_len * sizeof(int32_t));
  lb->text_mask = malloc(B * (size_t)m->text_len);
  if (!lb->video || !lb->audio || !lb->text_ids || !lb->text_mask)
    return duet_err_set(err, DUET_ENOMEM, "out of memory for a batch of %zu clips", B);
  return DUET_OK;
}

void duet_latent_batch_free(duet_latent_batch *lb) {
  free(lb->video);
  free(lb->audio);
  free(lb->text_ids);
  free(lb->text_mask);
  memset(lb, 0, sizeof *lb);
}

int duet_latent_batch_fill(duet_trainer *t, int64_t split_size, const duet_batch *b, duet_err *err) {
  const duet_model_config *m = &t->cfg.model;
  duet_latent_batch *lb = &t->lat;
  int n = b->count, L = m->text_len;
  int64_t frame_bytes = (int64_t)b->frames * b->height * b->width * 3;
  int64_t vsz = (int64_t)m->video_frames * m->video_height * m->video_width * m->video_channels;
  for (int i = 0; i < n; i++) {
    int rc = duet_video_codec_encode(&t->video_codec, b->video + i * frame_bytes, b->frames, b->height, b->width,
                                     lb->video + i * vsz, err);
    if (rc) return rc;
  }
  int rc = duet_audio_codec_encode(t->audio_codec, b->audio, n, b->audio_samples, lb->audio, err);
  if (rc) return duet_err_prefix(err, "clip %lld: ", (long long)b->clip_index[0]);
  const int32_t *ids = NULL;
  const float *emb = NULL;
  const uint8_t *mask = lb->text_mask;
  if (duet_text_reads_ids(m->text_source)) {
    for (int i = 0; i < n; i++) duet_text_tokenize(m, b->captions[i], lb->text_ids + i * L, lb->text_mask + i * L);
    ids = lb->text_ids;
  } else {
    emb = b->text_emb;
    mask = b->text_mask;
  }
  lb->flow = (duet_flow_batch){n, lb->video, lb->audio, ids, emb, mask};
  /* The clip's place in the epoch's order, not in this rank's share of it: the flow draws of
   * a clip are then the same whatever the number of ranks. */
  int64_t first;
  int count;
  duet_loader_shard(split_size, b->pos.consumed, b->batch_size, duet_dist_world(&t->dist), t->dist.rank, &first,
                    &count);
  lb->sample_base = b->pos.epoch * split_size + first;
  return DUET_OK;
}
