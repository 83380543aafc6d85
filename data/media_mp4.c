/* Encoding side of data/media.h: RGB frames + mono float audio -> MP4 (H.264 yuv420p, AAC),
 * written under a temporary name and renamed into place. */
#include "data/media.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef DUET_HAVE_FFMPEG

int duet_media_write_mp4(const char *path, const uint8_t *video, int frames, int height,
                         int width, double fps, const float *audio, int64_t audio_samples,
                         int sample_rate, duet_err *err) {
  (void)video; (void)frames; (void)height; (void)width; (void)fps;
  (void)audio; (void)audio_samples; (void)sample_rate;
  return duet_err_set(err, DUET_ENOTSUP, "%s: cannot write MP4: duet was built without FFmpeg",
                      path);
}

#else

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>
#include <libavutil/opt.h>
#include <libswresample/swresample.h>
#include <libswscale/swscale.h>

typedef struct mp4_writer {
  const char *path;
  duet_err *err;
  AVFormatContext *oc;
  AVCodecContext *venc, *aenc;
  AVStream *vst, *ast;
  struct SwsContext *sws;
  AVFrame *vframe, *aframe;
  AVPacket *pkt;
  uint8_t *padded;      /* the RGB frame grown to even size, edges repeated */
  int w, h, ew, eh;     /* requested and encoded (even) size */
  float *aud;           /* audio at the encoder's rate (points into the caller's when equal) */
  float *aud_owned;
  int64_t aud_n, aud_pos;
  int file_open;
} mp4_writer;

static const char *averr(int code, char *buf, size_t n) {
  if (av_strerror(code, buf, n) < 0) snprintf(buf, n, "error %d", code);
  return buf;
}

static int fail(mp4_writer *m, int code, const char *what, int averror) {
  char eb[128];
  if (averror) return duet_err_set(m->err, code, "%s: %s: %s", m->path, what, averr(averror, eb, sizeof eb));
  return duet_err_set(m->err, code, "%s: %s", m->path, what);
}

static int drain(mp4_writer *m, AVCodecContext *c, AVStream *st) {
  for (;;) {
    int rc = avcodec_receive_packet(c, m->pkt);
    if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return 0;
    if (rc < 0) return fail(m, DUET_EIO, "encoding failed", rc);
    av_packet_rescale_ts(m->pkt, c->time_base, st->time_base);
    m->pkt->stream_index = st->index;
    rc = av_interleaved_write_frame(m->oc, m->pkt);
    if (rc < 0) return fail(m, DUET_EIO, "write failed", rc);
  }
}

static int encode(mp4_writer *m, AVCodecContext *c, AVStream *st, const AVFrame *f) {
  int rc = avcodec_send_frame(c, f);
  if (rc < 0 && rc != AVERROR_EOF) return fail(m, DUET_EIO, "encoding failed", rc);
  return drain(m, c, st);
}

static int open_video(mp4_writer *m, double fps) {
  const AVCodec *codec = avcodec_find_encoder_by_name("libx264");
  if (!codec) codec = avcodec_find_encoder(AV_CODEC_ID_H264);
  if (!codec) return fail(m, DUET_ENOTSUP, "this FFmpeg has no H.264 encoder", 0);
  AVCodecContext *c = m->venc = avcodec_alloc_context3(codec);
  if (!c) return fail(m, DUET_ENOMEM, "out of memory", 0);
  AVRational rate = av_d2q(fps, 1 << 20);
  c->width = m->ew;
  c->height = m->eh;
  c->pix_fmt = AV_PIX_FMT_YUV420P;
  c->framerate = rate;
  c->time_base = av_inv_q(rate);
  /* Keyframes every two seconds keep windowed reads of long outputs cheap. */
  c->gop_size = (int)fmax(1.0, round(2.0 * fps));
  c->color_range = AVCOL_RANGE_MPEG;
  c->colorspace = AVCOL_SPC_SMPTE170M;
  c->color_primaries = AVCOL_PRI_SMPTE170M;
  c->color_trc = AVCOL_TRC_SMPTE170M;
  if (!strcmp(codec->name, "libx264")) {
    av_opt_set(c->priv_data, "preset", "medium", 0);
    av_opt_set(c->priv_data, "crf", "18", 0);
    av_opt_set(c->priv_data, "x264-params", "log=-1", 0);
  } else {
    c->bit_rate = (int64_t)fmax(200e3, 0.3 * m->ew * m->eh * fps);
  }
  if (m->oc->oformat->flags & AVFMT_GLOBALHEADER) c->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  int rc = avcodec_open2(c, codec, NULL);
  if (rc < 0) return fail(m, DUET_EIO, "cannot open the H.264 encoder", rc);
  m->vst = avformat_new_stream(m->oc, NULL);
  if (!m->vst) return fail(m, DUET_ENOMEM, "out of memory", 0);
  m->vst->time_base = c->time_base;
  m->vst->avg_frame_rate = rate;
  if ((rc = avcodec_parameters_from_context(m->vst->codecpar, c)) < 0)
    return fail(m, DUET_EIO, "cannot set video stream parameters", rc);

  m->sws = sws_getContext(m->ew, m->eh, AV_PIX_FMT_RGB24, m->ew, m->eh, AV_PIX_FMT_YUV420P,
                          SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INP, NULL, NULL, NULL);
  if (!m->sws) return fail(m, DUET_EIO, "cannot convert RGB to yuv420p", 0);
  /* BT.601 limited range, as the stream is tagged, so players and duet's reader agree. */
  sws_setColorspaceDetails(m->sws, sws_getCoefficients(SWS_CS_DEFAULT), 1,
                           sws_getCoefficients(SWS_CS_ITU601), 0, 0, 1 << 16, 1 << 16);
  m->vframe = av_frame_alloc();
  if (!m->vframe) return fail(m, DUET_ENOMEM, "out of memory", 0);
  m->vframe->format = c->pix_fmt;
  m->vframe->width = c->width;
  m->vframe->height = c->height;
  if ((rc = av_frame_get_buffer(m->vframe, 0)) < 0) return fail(m, DUET_ENOMEM, "out of memory", rc);
  if (m->ew != m->w || m->eh != m->h) {
    m->padded = malloc((size_t)m->ew * m->eh * 3);
    if (!m->padded) return fail(m, DUET_ENOMEM, "out of memory", 0);
  }
  return 0;
}

/* AAC takes only some rates: the lowest allowed one at or above the input's, else the top. */
static int pick_rate(const AVCodec *codec, int want) {
  const int *r = codec->supported_samplerates;
  if (!r) return want;
  int best = 0, top = 0;
  for (; *r; r++) {
    if (*r == want) return want;
    if (*r > want && (!best || *r < best)) best = *r;
    if (*r > top) top = *r;
  }
  return best ? best : top;
}

static int resample_audio(mp4_writer *m, const float *audio, int64_t n, int in_rate, int out_rate) {
  SwrContext *swr = NULL;
  AVChannelLayout mono = AV_CHANNEL_LAYOUT_MONO;
  int rc = swr_alloc_set_opts2(&swr, &mono, AV_SAMPLE_FMT_FLT, out_rate, &mono, AV_SAMPLE_FMT_FLT,
                               in_rate, 0, NULL);
  if (rc < 0 || (rc = swr_init(swr)) < 0) {
    swr_free(&swr);
    return fail(m, DUET_EIO, "cannot set up audio resampling", rc);
  }
  int64_t cap = av_rescale_rnd(n, out_rate, in_rate, AV_ROUND_UP) + 256;
  m->aud_owned = malloc((size_t)cap * sizeof(float));
  if (!m->aud_owned) {
    swr_free(&swr);
    return fail(m, DUET_ENOMEM, "out of memory", 0);
  }
  int64_t got = 0;
  for (int64_t i = 0; i < n && rc >= 0;) {
    int chunk = (int)(n - i < 65536 ? n - i : 65536);
    const uint8_t *in = (const uint8_t *)(audio + i);
    uint8_t *out = (uint8_t *)(m->aud_owned + got);
    rc = swr_convert(swr, &out, (int)(cap - got), &in, chunk);
    if (rc > 0) got += rc;
    i += chunk;
  }
  while (rc >= 0 && got < cap) { /* drain the resampler's delay line */
    uint8_t *out = (uint8_t *)(m->aud_owned + got);
    rc = swr_convert(swr, &out, (int)(cap - got), NULL, 0);
    if (rc <= 0) break;
    got += rc;
  }
  swr_free(&swr);
  if (rc < 0) return fail(m, DUET_EIO, "audio resampling failed", rc);
  m->aud = m->aud_owned;
  m->aud_n = av_rescale_rnd(n, out_rate, in_rate, AV_ROUND_NEAR_INF);
  if (m->aud_n > got) m->aud_n = got;
  return 0;
}

static int open_audio(mp4_writer *m, const float *audio, int64_t n, int rate) {
  const AVCodec *codec = avcodec_find_encoder_by_name("aac");
  if (!codec) codec = avcodec_find_encoder(AV_CODEC_ID_AAC);
  if (!codec) return fail(m, DUET_ENOTSUP, "this FFmpeg has no AAC encoder", 0);
  AVCodecContext *c = m->aenc = avcodec_alloc_context3(codec);
  if (!c) return fail(m, DUET_ENOMEM, "out of memory", 0);
  c->sample_fmt = AV_SAMPLE_FMT_FLTP;
  if (codec->sample_fmts) {
    int ok = 0;
    for (const enum AVSampleFormat *f = codec->sample_fmts; *f != AV_SAMPLE_FMT_NONE; f++)
      ok |= *f == AV_SAMPLE_FMT_FLTP;
    if (!ok) return fail(m, DUET_ENOTSUP, "the AAC encoder does not take float audio", 0);
  }
  int enc_rate = pick_rate(codec, rate);
  c->sample_rate = enc_rate;
  AVChannelLayout mono = AV_CHANNEL_LAYOUT_MONO;
  int rc = av_channel_layout_copy(&c->ch_layout, &mono);
  if (rc < 0) return fail(m, DUET_ENOMEM, "out of memory", rc);
  c->bit_rate = enc_rate <= 24000 ? 64000 : 128000;
  c->time_base = (AVRational){1, enc_rate};
  if (m->oc->oformat->flags & AVFMT_GLOBALHEADER) c->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  if ((rc = avcodec_open2(c, codec, NULL)) < 0)
    return fail(m, DUET_EIO, "cannot open the AAC encoder", rc);
  m->ast = avformat_new_stream(m->oc, NULL);
  if (!m->ast) return fail(m, DUET_ENOMEM, "out of memory", 0);
  m->ast->time_base = c->time_base;
  if ((rc = avcodec_parameters_from_context(m->ast->codecpar, c)) < 0)
    return fail(m, DUET_EIO, "cannot set audio stream parameters", rc);
  if (enc_rate != rate) {
    if ((rc = resample_audio(m, audio, n, rate, enc_rate))) return rc;
  } else {
    m->aud = (float *)audio; /* read only */
    m->aud_n = n;
  }
  m->aframe = av_frame_alloc();
  if (!m->aframe) return fail(m, DUET_ENOMEM, "out of memory", 0);
  return 0;
}

static int put_video_frame(mp4_writer *m, const uint8_t *rgb, int64_t index) {
  const uint8_t *src = rgb;
  if (m->padded) {
    /* Repeat the last column and row rather than pad with black: no edge for the codec. */
    for (int y = 0; y < m->eh; y++) {
      const uint8_t *row = rgb + (size_t)(y < m->h ? y : m->h - 1) * m->w * 3;
      uint8_t *dst = m->padded + (size_t)y * m->ew * 3;
      memcpy(dst, row, (size_t)m->w * 3);
      if (m->ew > m->w) memcpy(dst + (size_t)m->w * 3, row + (size_t)(m->w - 1) * 3, 3);
    }
    src = m->padded;
  }
  int rc = av_frame_make_writable(m->vframe);
  if (rc < 0) return fail(m, DUET_ENOMEM, "out of memory", rc);
  const uint8_t *planes[1] = {src};
  int strides[1] = {m->ew * 3};
  sws_scale(m->sws, planes, strides, 0, m->eh, m->vframe->data, m->vframe->linesize);
  m->vframe->pts = index;
  return encode(m, m->venc, m->vst, m->vframe);
}

/* Feeds the AAC encoder whole frames of frame_size samples up to sample `until`; the last
 * frame of the stream is zero-padded when the encoder cannot take a short one. */
static int put_audio_until(mp4_writer *m, int64_t until, int last) {
  AVCodecContext *c = m->aenc;
  int fs = c->frame_size > 0 && !(c->codec->capabilities & AV_CODEC_CAP_VARIABLE_FRAME_SIZE)
               ? c->frame_size : 1024;
  int small_last = (c->codec->capabilities & AV_CODEC_CAP_SMALL_LAST_FRAME) != 0 || c->frame_size == 0;
  if (until > m->aud_n) until = m->aud_n;
  while (m->aud_pos < m->aud_n && (m->aud_pos + fs <= until || (last && m->aud_pos < until))) {
    int64_t left = m->aud_n - m->aud_pos;
    int n = left < fs ? (int)left : fs;
    av_frame_unref(m->aframe);
    m->aframe->format = c->sample_fmt;
    m->aframe->sample_rate = c->sample_rate;
    m->aframe->nb_samples = n < fs && !small_last ? fs : n;
    int rc = av_channel_layout_copy(&m->aframe->ch_layout, &c->ch_layout);
    if (rc >= 0) rc = av_frame_get_buffer(m->aframe, 0);
    if (rc < 0) return fail(m, DUET_ENOMEM, "out of memory", rc);
    float *dst = (float *)m->aframe->data[0];
    /* AAC takes [-1, 1]; far outside it the encoder's rate loop crawls for minutes, and a
     * model's raw output can be anywhere. Clip (NaN to silence) like any sound card would. */
    const float *src = m->aud + m->aud_pos;
    for (int i = 0; i < n; i++) {
      float v = src[i];
      dst[i] = v != v ? 0.0f : v > 1.0f ? 1.0f : v < -1.0f ? -1.0f : v;
    }
    for (int i = n; i < m->aframe->nb_samples; i++) dst[i] = 0.0f;
    m->aframe->pts = m->aud_pos;
    m->aud_pos += n;
    if ((rc = encode(m, c, m->ast, m->aframe))) return rc;
  }
  return 0;
}

static void mp4_close(mp4_writer *m) {
  if (m->file_open) avio_closep(&m->oc->pb);
  avformat_free_context(m->oc);
  avcodec_free_context(&m->venc);
  avcodec_free_context(&m->aenc);
  sws_freeContext(m->sws);
  av_frame_free(&m->vframe);
  av_frame_free(&m->aframe);
  av_packet_free(&m->pkt);
  free(m->padded);
  free(m->aud_owned);
}

static int write_all(mp4_writer *m, const char *tmp, const uint8_t *video, int frames,
                     double fps, const float *audio, int64_t audio_samples, int sample_rate) {
  int rc = avformat_alloc_output_context2(&m->oc, NULL, "mp4", tmp);
  if (rc < 0 || !m->oc) return fail(m, DUET_ENOTSUP, "this FFmpeg cannot write MP4", rc);
  m->pkt = av_packet_alloc();
  if (!m->pkt) return fail(m, DUET_ENOMEM, "out of memory", 0);
  if ((rc = open_video(m, fps))) return rc;
  if (audio && audio_samples > 0 && (rc = open_audio(m, audio, audio_samples, sample_rate)))
    return rc;
  if ((rc = avio_open(&m->oc->pb, tmp, AVIO_FLAG_WRITE)) < 0) {
    char eb[128];
    return duet_err_set(m->err, DUET_EIO, "%s: cannot create: %s", tmp, averr(rc, eb, sizeof eb));
  }
  m->file_open = 1;
  AVDictionary *mux = NULL;
  /* Index up front, so a player or a reader can start before the whole file has arrived. */
  av_dict_set(&mux, "movflags", "+faststart", 0);
  rc = avformat_write_header(m->oc, &mux);
  av_dict_free(&mux);
  if (rc < 0) return fail(m, DUET_EIO, "cannot write the MP4 header", rc);

  size_t fb = (size_t)m->w * m->h * 3;
  for (int i = 0; i < frames; i++) {
    if ((rc = put_video_frame(m, video + (size_t)i * fb, i))) return rc;
    /* Interleave: audio up to the end of this frame, so the muxer buffers little. */
    if (m->aenc) {
      int64_t until = (int64_t)floor((i + 1) / fps * m->aenc->sample_rate);
      if ((rc = put_audio_until(m, until, 0))) return rc;
    }
  }
  if ((rc = encode(m, m->venc, m->vst, NULL))) return rc;
  if (m->aenc) {
    if ((rc = put_audio_until(m, m->aud_n, 1))) return rc;
    if ((rc = encode(m, m->aenc, m->ast, NULL))) return rc;
  }
  if ((rc = av_write_trailer(m->oc)) < 0) return fail(m, DUET_EIO, "cannot finish the MP4", rc);
  m->file_open = 0;
  if ((rc = avio_closep(&m->oc->pb)) < 0) return fail(m, DUET_EIO, "write failed", rc);
  return 0;
}

int duet_media_write_mp4(const char *path, const uint8_t *video, int frames, int height,
                         int width, double fps, const float *audio, int64_t audio_samples,
                         int sample_rate, duet_err *err) {
  if (!path || !video || frames <= 0 || height <= 0 || width <= 0 || !(fps > 0) ||
      !isfinite(fps) || audio_samples < 0 || (audio && audio_samples > 0 && sample_rate <= 0))
    return duet_err_set(err, DUET_EINVAL, "%s: bad MP4 arguments", path ? path : "(null)");
  size_t plen = strlen(path);
  char *tmp = malloc(plen + 5);
  if (!tmp) return duet_err_set(err, DUET_ENOMEM, "%s: out of memory", path);
  memcpy(tmp, path, plen);
  memcpy(tmp + plen, ".tmp", 5);

  /* H.264 in 4:2:0 needs even sizes. */
  mp4_writer m = {.path = path, .err = err, .w = width, .h = height,
                  .ew = width + (width & 1), .eh = height + (height & 1)};
  int rc = write_all(&m, tmp, video, frames, fps, audio, audio_samples, sample_rate);
  mp4_close(&m);
  if (!rc && rename(tmp, path) != 0)
    rc = duet_err_set(err, DUET_EIO, "%s: cannot rename into place: %s", path, strerror(errno));
  if (rc) remove(tmp);
  free(tmp);
  return rc;
}

#endif
