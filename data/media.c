/* Decoding side of data/media.h: one pass over a window of a file, giving constant-rate RGB
 * frames (nearest decoded frame to each output time) and mono float audio on a fixed rate. */
#include "data/media.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void duet_media_free(duet_media *m) {
  if (!m) return;
  free(m->video);
  free(m->audio);
  memset(m, 0, sizeof *m);
}

#ifndef DUET_HAVE_FFMPEG

int duet_media_read(const char *path, const duet_media_opts *opts, duet_media *out,
                    duet_err *err) {
  (void)opts;
  if (out) memset(out, 0, sizeof *out);
  return duet_err_set(err, DUET_ENOTSUP, "%s: cannot decode media: duet was built without FFmpeg",
                      path);
}

#else

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>
#include <libavutil/pixdesc.h>
#include <libswresample/swresample.h>
#include <libswscale/swscale.h>

/* Seeking lands on a keyframe at or before its target, but audio packets are interleaved
 * loosely around video ones; aiming this far before the window makes sure the first audio
 * decoded starts before the window does. */
#define SEEK_MARGIN_S 0.5

typedef struct frame_picker {
  int want_w, want_h;   /* the caller's request; 0 = the source's own */
  int w, h;             /* output size, fixed at the first frame */
  double fps, t0;       /* output frame k shows the decoded frame nearest t0 + k / fps */
  int64_t n_max;        /* frames wanted, or -1 for all up to the end of the stream */
  int64_t n, cap;       /* frames emitted / allocated */
  uint8_t *buf;
  AVFrame *prev;        /* the newest decoded frame, not yet known to be nobody's nearest */
  double prev_t;
  int have_prev;
  int64_t prev_id, converted_id; /* avoids converting one decoded frame twice */
  int64_t converted_at;
  AVFrame *cropped;     /* a second reference to prev, cut to the covering rectangle */
  struct SwsContext *sws;
  int sws_src_w, sws_src_h, sws_src_fmt, sws_crop_w, sws_crop_h;
} frame_picker;

typedef struct audio_sink {
  int rate;
  SwrContext *swr;
  AVChannelLayout in_layout;
  int in_fmt, in_rate;
  float *planes_buf;    /* resampler output, planes_channels x planes_cap */
  int planes_cap, planes_channels;
  int started;
  double t_first;       /* time of the first sample in buf */
  float *buf;           /* mono, from t_first on */
  int64_t n, cap;
  int64_t in_samples;
} audio_sink;

typedef struct reader {
  const char *path;
  AVFormatContext *fmt;
  AVCodecContext *vdec, *adec;
  int vidx, aidx;
  double origin;        /* container start time: every time below is relative to it */
  double src_fps;
  AVPacket *pkt;
  AVFrame *frame;
  frame_picker v;
  audio_sink a;
  int decode_errors;
  int64_t frames_decoded;
  double last_video_t;
  duet_err *err;
} reader;

static const char *averr(int code, char *buf, size_t n) {
  if (av_strerror(code, buf, n) < 0) snprintf(buf, n, "error %d", code);
  return buf;
}

static double ts_seconds(int64_t ts, AVRational tb) { return (double)ts * av_q2d(tb); }

/* ---- video: nearest-frame picking, scale and centre-crop ---- */

static int colourspace_of(const AVFrame *f) {
  switch (f->colorspace) {
  case AVCOL_SPC_BT709: return SWS_CS_ITU709;
  case AVCOL_SPC_FCC: return SWS_CS_FCC;
  case AVCOL_SPC_BT470BG:
  case AVCOL_SPC_SMPTE170M: return SWS_CS_ITU601;
  case AVCOL_SPC_SMPTE240M: return SWS_CS_SMPTE240M;
  case AVCOL_SPC_BT2020_NCL:
  case AVCOL_SPC_BT2020_CL: return SWS_CS_BT2020;
  default: break;
  }
  /* Untagged: what players assume, HD matrices for HD sizes. */
  return f->height >= 720 ? SWS_CS_ITU709 : SWS_CS_ITU601;
}

static int full_range(const AVFrame *f) {
  if (f->color_range == AVCOL_RANGE_JPEG) return 1;
  switch (f->format) {
  case AV_PIX_FMT_YUVJ420P:
  case AV_PIX_FMT_YUVJ422P:
  case AV_PIX_FMT_YUVJ444P:
  case AV_PIX_FMT_YUVJ440P: return 1;
  default: return 0;
  }
}

static double display_width(reader *r, const AVFrame *f) {
  AVRational sar = av_guess_sample_aspect_ratio(r->fmt, r->fmt->streams[r->vidx], (AVFrame *)f);
  if (sar.num > 0 && sar.den > 0) return f->width * av_q2d(sar);
  return f->width;
}

/* Fixes the output size from the first frame when the caller left it (or half of it) open. */
static void picker_set_size(reader *r, const AVFrame *f, int want_w, int want_h) {
  frame_picker *v = &r->v;
  double dw = display_width(r, f);
  if (want_w > 0 && want_h > 0) {
    v->w = want_w;
    v->h = want_h;
  } else if (want_w > 0) {
    v->w = want_w;
    v->h = (int)fmax(1.0, lround(want_w * f->height / dw));
  } else if (want_h > 0) {
    v->h = want_h;
    v->w = (int)fmax(1.0, lround(want_h * dw / f->height));
  } else {
    v->w = (int)fmax(1.0, lround(dw));
    v->h = f->height;
  }
}

/* The part of the source frame that, scaled, exactly covers the output: the shorter side
 * fits and the overhang is cut equally from both ends. Cutting in the source rather than after
 * scaling keeps the crop exact to a source pixel. Chroma-subsampled formats crop on the chroma
 * grid so luma and chroma stay aligned. */
static void crop_rect(reader *r, const AVFrame *f, int *x, int *y, int *cw, int *ch) {
  frame_picker *v = &r->v;
  double sar = display_width(r, f) / f->width;
  double dw = f->width * sar;
  double s = fmax((double)v->w / dw, (double)v->h / f->height);
  int w = (int)lround(v->w / s / sar), h = (int)lround(v->h / s);
  if (w > f->width) w = f->width;
  if (h > f->height) h = f->height;
  if (w < 1) w = 1;
  if (h < 1) h = 1;
  int left = (f->width - w) / 2, top = (f->height - h) / 2;
  const AVPixFmtDescriptor *d = av_pix_fmt_desc_get(f->format);
  if (d && !(d->flags & AV_PIX_FMT_FLAG_BITSTREAM)) {
    left &= ~((1 << d->log2_chroma_w) - 1);
    top &= ~((1 << d->log2_chroma_h) - 1);
  } else {
    /* Bit-packed formats cannot be cut at arbitrary pixels; scale the whole frame. */
    left = top = 0;
    w = f->width;
    h = f->height;
  }
  *x = left;
  *y = top;
  *cw = w;
  *ch = h;
}

static int picker_prepare(reader *r, const AVFrame *f, int cw, int ch) {
  frame_picker *v = &r->v;
  if (v->sws && v->sws_src_w == f->width && v->sws_src_h == f->height &&
      v->sws_src_fmt == f->format && v->sws_crop_w == cw && v->sws_crop_h == ch)
    return 0;
  int down = cw > v->w || ch > v->h;
  int flags = (down ? SWS_AREA : SWS_BICUBIC) | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT;
  v->sws = sws_getCachedContext(v->sws, cw, ch, f->format, v->w, v->h, AV_PIX_FMT_RGB24, flags,
                                NULL, NULL, NULL);
  if (!v->sws)
    return duet_err_set(r->err, DUET_EFORMAT, "%s: cannot convert %dx%d %s video to RGB",
                        r->path, f->width, f->height,
                        av_get_pix_fmt_name(f->format) ? av_get_pix_fmt_name(f->format) : "?");
  /* Only YUV sources take a matrix; for RGB sources swscale rejects the call harmlessly. */
  sws_setColorspaceDetails(v->sws, sws_getCoefficients(colourspace_of(f)), full_range(f),
                           sws_getCoefficients(SWS_CS_DEFAULT), 1, 0, 1 << 16, 1 << 16);
  v->sws_src_w = f->width;
  v->sws_src_h = f->height;
  v->sws_src_fmt = f->format;
  v->sws_crop_w = cw;
  v->sws_crop_h = ch;
  return 0;
}

static int picker_reserve(reader *r, int64_t frames) {
  frame_picker *v = &r->v;
  if (frames <= v->cap) return 0;
  int64_t cap = v->cap ? v->cap : 64;
  while (cap < frames) cap *= 2;
  if (v->n_max >= 0 && cap > v->n_max) cap = v->n_max;
  uint8_t *b = realloc(v->buf, (size_t)cap * v->w * v->h * 3);
  if (!b) return duet_err_set(r->err, DUET_ENOMEM, "%s: out of memory for %lld frames", r->path,
                              (long long)cap);
  v->buf = b;
  v->cap = cap;
  return 0;
}

/* Output frame v->n shows v->prev. */
static int picker_emit(reader *r) {
  frame_picker *v = &r->v;
  int rc = picker_reserve(r, v->n + 1);
  if (rc) return rc;
  size_t fb = (size_t)v->w * v->h * 3;
  uint8_t *dst = v->buf + (size_t)v->n * fb;
  if (v->converted_id == v->prev_id) {
    memcpy(dst, v->buf + (size_t)v->converted_at * fb, fb);
  } else {
    int x, y, cw, ch;
    crop_rect(r, v->prev, &x, &y, &cw, &ch);
    if ((rc = picker_prepare(r, v->prev, cw, ch))) return rc;
    AVFrame *c = v->cropped;
    av_frame_unref(c);
    if (av_frame_ref(c, v->prev) < 0)
      return duet_err_set(r->err, DUET_ENOMEM, "%s: out of memory", r->path);
    c->crop_left = (size_t)x;
    c->crop_top = (size_t)y;
    c->crop_right = (size_t)(c->width - x - cw);
    c->crop_bottom = (size_t)(c->height - y - ch);
    /* swscale reads unaligned rows fine (FFmpeg's own crop filter hands it the same). */
    if (av_frame_apply_cropping(c, AV_FRAME_CROP_UNALIGNED) < 0)
      return duet_err_set(r->err, DUET_EFORMAT, "%s: cannot crop a %dx%d frame", r->path,
                          v->prev->width, v->prev->height);
    uint8_t *planes[4] = {dst, NULL, NULL, NULL};
    int strides[4] = {v->w * 3, 0, 0, 0};
    int got = sws_scale(v->sws, (const uint8_t *const *)c->data, c->linesize, 0, c->height,
                        planes, strides);
    av_frame_unref(c);
    if (got <= 0) return duet_err_set(r->err, DUET_EFORMAT, "%s: video conversion failed", r->path);
    v->converted_id = v->prev_id;
    v->converted_at = v->n;
  }
  v->n++;
  return 0;
}

static int picker_done(const frame_picker *v) { return v->n_max >= 0 && v->n >= v->n_max; }

/* A new decoded frame at time t: every output time nearer to the previous frame than to this
 * one gets the previous frame. */
static int picker_take(reader *r, AVFrame *f, double t) {
  frame_picker *v = &r->v;
  if (v->have_prev && t <= v->prev_t) return 0; /* a repeated or out-of-order timestamp */
  if (v->have_prev) {
    while (!picker_done(v)) {
      double tk = v->t0 + (double)v->n / v->fps;
      if (fabs(tk - v->prev_t) > fabs(tk - t)) break;
      int rc = picker_emit(r);
      if (rc) return rc;
    }
  }
  av_frame_unref(v->prev);
  av_frame_move_ref(v->prev, f);
  v->prev_t = t;
  v->have_prev = 1;
  v->prev_id++;
  return 0;
}

/* At the end of the stream the last frame lasts one source frame. */
static int picker_finish(reader *r) {
  frame_picker *v = &r->v;
  if (!v->have_prev) return 0;
  double end = v->prev_t + 1.0 / r->src_fps;
  while (!picker_done(v)) {
    double tk = v->t0 + (double)v->n / v->fps;
    if (tk >= end - 1e-9) break;
    int rc = picker_emit(r);
    if (rc) return rc;
  }
  return 0;
}

/* ---- audio: resample each channel, then average them ---- */

static int sink_configure(reader *r, const AVFrame *f) {
  audio_sink *a = &r->a;
  AVChannelLayout in = {0};
  if (f->ch_layout.order == AV_CHANNEL_ORDER_UNSPEC || f->ch_layout.nb_channels <= 0) {
    av_channel_layout_default(&in, f->ch_layout.nb_channels > 0 ? f->ch_layout.nb_channels : 1);
  } else if (av_channel_layout_copy(&in, &f->ch_layout) < 0) {
    return duet_err_set(r->err, DUET_ENOMEM, "%s: out of memory", r->path);
  }
  if (a->swr && a->in_fmt == f->format && a->in_rate == f->sample_rate &&
      !av_channel_layout_compare(&a->in_layout, &in)) {
    av_channel_layout_uninit(&in);
    return 0;
  }
  swr_free(&a->swr);
  av_channel_layout_uninit(&a->in_layout);
  a->in_layout = in;
  a->in_fmt = f->format;
  a->in_rate = f->sample_rate;
  /* Same layout out as in: the mono mix is a plain mean done below, which never clips. */
  int rc = swr_alloc_set_opts2(&a->swr, &in, AV_SAMPLE_FMT_FLTP, a->rate, &in, f->format,
                               f->sample_rate, 0, NULL);
  if (rc < 0 || swr_init(a->swr) < 0)
    return duet_err_set(r->err, DUET_EFORMAT, "%s: cannot resample %d Hz audio to %d Hz",
                        r->path, f->sample_rate, a->rate);
  return 0;
}

static int sink_append(reader *r, int got, int channels) {
  audio_sink *a = &r->a;
  if (got <= 0) return 0;
  if (a->n + got > a->cap) {
    int64_t cap = a->cap ? a->cap : 65536;
    while (cap < a->n + got) cap *= 2;
    float *b = realloc(a->buf, (size_t)cap * sizeof *b);
    if (!b) return duet_err_set(r->err, DUET_ENOMEM, "%s: out of memory for audio", r->path);
    a->buf = b;
    a->cap = cap;
  }
  float inv = 1.0f / (float)channels;
  for (int i = 0; i < got; i++) {
    float s = 0.0f;
    for (int c = 0; c < channels; c++) s += a->planes_buf[(size_t)c * a->planes_cap + i];
    a->buf[a->n + i] = s * inv;
  }
  a->n += got;
  return 0;
}

static int sink_convert(reader *r, const AVFrame *f) {
  audio_sink *a = &r->a;
  int channels = a->in_layout.nb_channels;
  int want = swr_get_out_samples(a->swr, f ? f->nb_samples : 0);
  if (want < 0) return duet_err_set(r->err, DUET_EFORMAT, "%s: audio resampler failed", r->path);
  if (want == 0) return 0;
  if (channels > 64)
    return duet_err_set(r->err, DUET_ENOTSUP, "%s: %d audio channels", r->path, channels);
  if (want > a->planes_cap || channels != a->planes_channels) {
    free(a->planes_buf);
    a->planes_cap = want;
    a->planes_channels = channels;
    a->planes_buf = malloc((size_t)channels * want * sizeof(float));
    if (!a->planes_buf) return duet_err_set(r->err, DUET_ENOMEM, "%s: out of memory", r->path);
  }
  uint8_t *planes[64];
  for (int c = 0; c < channels; c++) planes[c] = (uint8_t *)(a->planes_buf + (size_t)c * a->planes_cap);
  int got = swr_convert(a->swr, planes, a->planes_cap,
                        f ? (const uint8_t **)f->extended_data : NULL, f ? f->nb_samples : 0);
  if (got < 0) return duet_err_set(r->err, DUET_EFORMAT, "%s: audio resampling failed", r->path);
  return sink_append(r, got, channels);
}

static int sink_take(reader *r, const AVFrame *f) {
  audio_sink *a = &r->a;
  if (f->nb_samples <= 0) return 0;
  int rc = sink_configure(r, f);
  if (rc) return rc;
  if (!a->started) {
    int64_t ts = f->best_effort_timestamp;
    AVRational tb = r->fmt->streams[r->aidx]->time_base;
    a->t_first = ts == AV_NOPTS_VALUE ? 0.0 : ts_seconds(ts, tb) - r->origin;
    a->started = 1;
  }
  a->in_samples += f->nb_samples;
  return sink_convert(r, f);
}

static int sink_flush(reader *r) {
  if (!r->a.swr) return 0;
  return sink_convert(r, NULL);
}

/* ---- the demux/decode loop ---- */

static int open_decoder(reader *r, int idx, AVCodecContext **out) {
  AVStream *st = r->fmt->streams[idx];
  const AVCodec *codec = avcodec_find_decoder(st->codecpar->codec_id);
  if (!codec)
    return duet_err_set(r->err, DUET_ENOTSUP, "%s: no decoder for %s stream (%s)", r->path,
                        av_get_media_type_string(st->codecpar->codec_type),
                        avcodec_get_name(st->codecpar->codec_id));
  AVCodecContext *c = avcodec_alloc_context3(codec);
  if (!c) return duet_err_set(r->err, DUET_ENOMEM, "%s: out of memory", r->path);
  *out = c;
  if (avcodec_parameters_to_context(c, st->codecpar) < 0)
    return duet_err_set(r->err, DUET_EFORMAT, "%s: bad %s stream parameters", r->path,
                        av_get_media_type_string(st->codecpar->codec_type));
  c->pkt_timebase = st->time_base;
  c->thread_count = 0;
  char eb[128];
  int rc = avcodec_open2(c, codec, NULL);
  if (rc < 0)
    return duet_err_set(r->err, DUET_EFORMAT, "%s: cannot open %s decoder: %s", r->path,
                        avcodec_get_name(st->codecpar->codec_id), averr(rc, eb, sizeof eb));
  return 0;
}

static int pick_video_stream(AVFormatContext *fmt) {
  int best = -1;
  int64_t best_px = -1;
  for (unsigned i = 0; i < fmt->nb_streams; i++) {
    AVStream *st = fmt->streams[i];
    if (st->codecpar->codec_type != AVMEDIA_TYPE_VIDEO) continue;
    if (st->disposition & AV_DISPOSITION_ATTACHED_PIC) continue; /* cover art, not video */
    int64_t px = (int64_t)st->codecpar->width * st->codecpar->height;
    if (px > best_px) {
      best = (int)i;
      best_px = px;
    }
  }
  return best;
}

static int receive_frames(reader *r, AVCodecContext *dec, int is_video) {
  for (;;) {
    int rc = avcodec_receive_frame(dec, r->frame);
    if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return 0;
    if (rc < 0) {
      r->decode_errors++;
      return 0;
    }
    if (is_video) {
      AVRational tb = r->fmt->streams[r->vidx]->time_base;
      int64_t ts = r->frame->best_effort_timestamp;
      double t = ts == AV_NOPTS_VALUE ? r->last_video_t + 1.0 / r->src_fps
                                      : ts_seconds(ts, tb) - r->origin;
      r->frames_decoded++;
      if (t > r->last_video_t || r->frames_decoded == 1) r->last_video_t = t;
      if (!r->v.w) picker_set_size(r, r->frame, r->v.want_w, r->v.want_h);
      rc = picker_take(r, r->frame, t);
    } else {
      rc = sink_take(r, r->frame);
    }
    av_frame_unref(r->frame);
    if (rc) return rc;
  }
}

static int feed(reader *r, AVCodecContext *dec, const AVPacket *pkt, int is_video) {
  int rc = avcodec_send_packet(dec, pkt);
  if (rc == AVERROR(EAGAIN)) {
    /* The decoder wants its output drained first; then the packet goes in. */
    if ((rc = receive_frames(r, dec, is_video))) return rc;
    rc = avcodec_send_packet(dec, pkt);
  }
  if (rc < 0 && rc != AVERROR_EOF) {
    r->decode_errors++;
    return 0;
  }
  return receive_frames(r, dec, is_video);
}

static void reader_close(reader *r) {
  av_frame_free(&r->v.prev);
  av_frame_free(&r->v.cropped);
  sws_freeContext(r->v.sws);
  free(r->v.buf);
  swr_free(&r->a.swr);
  av_channel_layout_uninit(&r->a.in_layout);
  free(r->a.planes_buf);
  free(r->a.buf);
  av_frame_free(&r->frame);
  av_packet_free(&r->pkt);
  avcodec_free_context(&r->vdec);
  avcodec_free_context(&r->adec);
  avformat_close_input(&r->fmt);
}

static int reader_open(reader *r, const duet_media_opts *o) {
  struct stat sb;
  if (stat(r->path, &sb) != 0)
    return duet_err_set(r->err, DUET_EIO, "%s: %s", r->path, strerror(errno));
  if (S_ISDIR(sb.st_mode)) return duet_err_set(r->err, DUET_EIO, "%s: is a directory", r->path);
  char eb[128];
  int rc = avformat_open_input(&r->fmt, r->path, NULL, NULL);
  if (rc < 0)
    return duet_err_set(r->err, DUET_EFORMAT,
                        "%s: not a media file FFmpeg can read, or truncated (%s)", r->path,
                        averr(rc, eb, sizeof eb));
  rc = avformat_find_stream_info(r->fmt, NULL);
  if (rc < 0)
    return duet_err_set(r->err, DUET_EFORMAT, "%s: cannot read stream information (%s)",
                        r->path, averr(rc, eb, sizeof eb));
  r->vidx = pick_video_stream(r->fmt);
  if (r->vidx < 0) return duet_err_set(r->err, DUET_EFORMAT, "%s: no video stream", r->path);
  r->aidx = av_find_best_stream(r->fmt, AVMEDIA_TYPE_AUDIO, -1, r->vidx, NULL, 0);
  if (r->aidx < 0) r->aidx = -1;
  if (r->aidx < 0 && o->need_audio)
    return duet_err_set(r->err, DUET_EFORMAT, "%s: no audio stream", r->path);
  for (unsigned i = 0; i < r->fmt->nb_streams; i++)
    if ((int)i != r->vidx && (int)i != r->aidx) r->fmt->streams[i]->discard = AVDISCARD_ALL;
  if ((rc = open_decoder(r, r->vidx, &r->vdec))) return rc;
  if (r->aidx >= 0) {
    rc = open_decoder(r, r->aidx, &r->adec);
    if (rc && o->need_audio) return rc;
    if (rc) { /* audio we cannot decode is no audio when none was required */
      avcodec_free_context(&r->adec);
      r->fmt->streams[r->aidx]->discard = AVDISCARD_ALL;
      r->aidx = -1;
    }
  }
  AVStream *vs = r->fmt->streams[r->vidx];
  AVRational fr = av_guess_frame_rate(r->fmt, vs, NULL);
  r->src_fps = fr.num > 0 && fr.den > 0 ? av_q2d(fr) : 0.0;
  if (!(r->src_fps > 0.0) || r->src_fps > 1000.0) {
    if (!(o->fps > 0.0))
      return duet_err_set(r->err, DUET_EFORMAT, "%s: cannot tell the video frame rate", r->path);
    r->src_fps = o->fps;
  }
  r->origin = r->fmt->start_time != AV_NOPTS_VALUE ? (double)r->fmt->start_time / AV_TIME_BASE
                                                    : 0.0;
  r->pkt = av_packet_alloc();
  r->frame = av_frame_alloc();
  r->v.prev = av_frame_alloc();
  r->v.cropped = av_frame_alloc();
  if (!r->pkt || !r->frame || !r->v.prev || !r->v.cropped)
    return duet_err_set(r->err, DUET_ENOMEM, "%s: out of memory", r->path);
  return 0;
}

static double stream_duration(const reader *r, int idx) {
  const AVStream *st = r->fmt->streams[idx];
  if (st->duration != AV_NOPTS_VALUE && st->duration > 0) return ts_seconds(st->duration, st->time_base);
  return -1.0;
}

static double container_duration(const reader *r) {
  if (r->fmt->duration != AV_NOPTS_VALUE && r->fmt->duration > 0)
    return (double)r->fmt->duration / AV_TIME_BASE;
  return -1.0;
}

/* Where a stream should have ended, and how far short of it counts as truncation. A stream
 * length from the index is trusted closely; a container-wide guess only loosely. */
static void expected_end(const reader *r, int idx, double want_end, double *end, double *tol) {
  double sd = stream_duration(r, idx), cd = container_duration(r);
  double start = ts_seconds(r->fmt->streams[idx]->start_time == AV_NOPTS_VALUE
                                ? 0 : r->fmt->streams[idx]->start_time,
                            r->fmt->streams[idx]->time_base) - r->origin;
  if (sd > 0) {
    *end = start + sd;
    *tol = fmax(0.5, 3.0 / r->src_fps);
  } else if (cd > 0) {
    *end = cd;
    *tol = fmax(1.0, 0.05 * cd);
  } else {
    *end = -1.0;
    *tol = 0.0;
  }
  if (*end > 0 && want_end > 0 && want_end < *end) *end = want_end;
}

static int check_complete(reader *r, double want_end, int read_error, const char *read_msg) {
  char why[320] = "";
  if (read_error) snprintf(why, sizeof why, "; read error: %s", read_msg);
  else if (r->decode_errors) snprintf(why, sizeof why, "; %d damaged packets", r->decode_errors);
  if (!r->v.have_prev)
    return duet_err_set(r->err, DUET_EFORMAT, "%s: truncated or damaged: no video frame decodes%s",
                        r->path, why);
  double end, tol;
  expected_end(r, r->vidx, want_end, &end, &tol);
  double got = r->last_video_t + 1.0 / r->src_fps;
  if (end > 0 && got < end - tol)
    return duet_err_set(r->err, DUET_EFORMAT,
                        "%s: truncated or damaged: video decodes to %.2f s of %.2f s%s", r->path,
                        got, end, why);
  if (r->aidx >= 0 && r->a.started) {
    expected_end(r, r->aidx, want_end, &end, &tol);
    double agot = r->a.t_first + (double)r->a.in_samples / r->a.in_rate;
    if (end > 0 && agot < end - tol)
      return duet_err_set(r->err, DUET_EFORMAT,
                          "%s: truncated or damaged: audio decodes to %.2f s of %.2f s%s",
                          r->path, agot, end, why);
  }
  if (read_error && (!picker_done(&r->v)))
    return duet_err_set(r->err, DUET_EFORMAT, "%s: damaged: %s", r->path, read_msg);
  return 0;
}

static int audio_done(const reader *r, int64_t want_samples, double t_start) {
  if (r->aidx < 0) return 1;
  if (!r->a.started || want_samples < 0) return 0;
  int64_t off = llround((t_start - r->a.t_first) * r->a.rate);
  return r->a.n >= off + want_samples;
}

static int decode_all(reader *r, double t_start, int64_t want_samples, int *read_error,
                      char *read_msg, size_t msg_n) {
  int rc;
  for (;;) {
    if (picker_done(&r->v) && audio_done(r, want_samples, t_start)) return 0;
    rc = av_read_frame(r->fmt, r->pkt);
    if (rc == AVERROR_EOF) break;
    if (rc < 0) {
      *read_error = 1;
      averr(rc, read_msg, msg_n);
      break;
    }
    if (r->pkt->stream_index == r->vidx) rc = feed(r, r->vdec, r->pkt, 1);
    else if (r->pkt->stream_index == r->aidx) rc = feed(r, r->adec, r->pkt, 0);
    else rc = 0;
    av_packet_unref(r->pkt);
    if (rc) return rc;
  }
  if ((rc = feed(r, r->vdec, NULL, 1))) return rc;
  if (r->adec && (rc = feed(r, r->adec, NULL, 0))) return rc;
  if ((rc = sink_flush(r))) return rc;
  return picker_finish(r);
}

static int take_audio(reader *r, double t_start, int64_t want_samples, duet_media *out) {
  audio_sink *a = &r->a;
  int64_t off = a->started ? llround((t_start - a->t_first) * a->rate) : 0;
  int64_t n = want_samples >= 0 ? want_samples : (a->n - off > 0 ? a->n - off : 0);
  out->audio = calloc(n > 0 ? (size_t)n : 1, sizeof(float));
  if (!out->audio) return duet_err_set(r->err, DUET_ENOMEM, "%s: out of memory", r->path);
  for (int64_t i = 0; i < n; i++) {
    int64_t j = off + i;
    if (j >= 0 && j < a->n) out->audio[i] = a->buf[j];
  }
  out->audio_samples = n;
  return 0;
}

int duet_media_read(const char *path, const duet_media_opts *opts, duet_media *out,
                    duet_err *err) {
  memset(out, 0, sizeof *out);
  duet_media_opts o = opts ? *opts : (duet_media_opts){0};
  if (o.width < 0 || o.height < 0 || o.fps < 0 || o.sample_rate < 0 || o.start < 0 ||
      o.duration < 0 || !isfinite(o.start) || !isfinite(o.duration))
    return duet_err_set(err, DUET_EINVAL, "%s: bad read options", path);
  reader r = {.path = path, .err = err, .vidx = -1, .aidx = -1};
  int rc = reader_open(&r, &o);
  if (rc) goto done;

  double cd = container_duration(&r);
  if (cd > 0 && o.start >= cd) {
    rc = duet_err_set(err, DUET_EINVAL, "%s: start %.2f s is past the end (%.2f s)", path, o.start,
                      cd);
    goto done;
  }
  r.v.want_w = o.width;
  r.v.want_h = o.height;
  r.v.fps = o.fps > 0 ? o.fps : r.src_fps;
  r.v.t0 = o.start;
  r.v.n_max = o.duration > 0 ? (int64_t)llround(o.duration * r.v.fps) : -1;
  if (o.duration > 0 && r.v.n_max < 1) r.v.n_max = 1;
  r.a.rate = o.sample_rate > 0 ? o.sample_rate
                               : (r.aidx >= 0 ? r.fmt->streams[r.aidx]->codecpar->sample_rate : 0);
  int64_t want_samples = o.duration > 0 ? (int64_t)llround(o.duration * r.a.rate) : -1;
  if (r.aidx >= 0 && r.a.rate <= 0) {
    rc = duet_err_set(err, DUET_EFORMAT, "%s: audio stream without a sample rate", path);
    goto done;
  }

  if (o.start > 0) {
    double target = r.origin + o.start - SEEK_MARGIN_S;
    if (target > r.origin) {
      int64_t ts = (int64_t)(target * AV_TIME_BASE);
      /* A failed seek only costs time: decoding from the top reaches the window too. */
      if (avformat_seek_file(r.fmt, -1, INT64_MIN, ts, ts, 0) >= 0) {
        avcodec_flush_buffers(r.vdec);
        if (r.adec) avcodec_flush_buffers(r.adec);
      }
    }
  }
  {
    int read_error = 0;
    char read_msg[256] = "";
    rc = decode_all(&r, o.start, r.aidx >= 0 ? want_samples : -1, &read_error, read_msg,
                    sizeof read_msg);
    if (rc) goto done;
    double want_end = o.duration > 0 ? o.start + o.duration : -1.0;
    rc = check_complete(&r, want_end, read_error, read_msg);
    if (rc) goto done;
  }
  if (r.v.n == 0) {
    rc = duet_err_set(err, DUET_EFORMAT, "%s: no video frames in %.2f..%.2f s", path, o.start,
                      o.duration > 0 ? o.start + o.duration : cd);
    goto done;
  }
  out->frames = (int)r.v.n;
  out->width = r.v.w;
  out->height = r.v.h;
  out->fps = r.v.fps;
  out->video = r.v.buf;
  r.v.buf = NULL;
  out->duration = cd > 0 ? cd : r.last_video_t + 1.0 / r.src_fps;
  if (r.aidx >= 0) {
    out->has_audio = 1;
    out->sample_rate = r.a.rate;
    if ((rc = take_audio(&r, o.start, want_samples, out))) goto done;
  }
done:
  reader_close(&r);
  if (rc) duet_media_free(out);
  return rc;
}

#endif
