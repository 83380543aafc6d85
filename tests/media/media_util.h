/* Helpers shared by the media tests: making inputs with the ffmpeg command-line tool and
 * measuring frames and audio. */
#ifndef DUET_TESTS_MEDIA_UTIL_H
#define DUET_TESTS_MEDIA_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Runs a shell command built printf-style, its output discarded; returns its exit status. */
int mt_run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Exits 77 (skipped) when the ffmpeg tool or duet's FFmpeg support is missing, and turns
 * FFmpeg's own logging off so test output stays readable. */
void mt_require_ffmpeg(void);

/* A path inside the test's scratch directory, in one of 64 static buffers used in turn: copy
 * it to keep it past the next few calls. */
const char *mt_path(const char *name);

/* Mean of channel c (0..2) over the rectangle [x0, x1) x [y0, y1) of an RGB frame. */
double mt_mean(const uint8_t *frame, int width, int x0, int y0, int x1, int y1, int c);

/* RMS of audio[from, to). */
double mt_rms(const float *audio, int64_t n, int64_t from, int64_t to);

/* Time (s) of the first 10 ms window whose RMS exceeds thr at or after `from_s`; -1 if none. */
double mt_onset(const float *audio, int64_t n, int rate, double from_s, double thr);

/* PSNR in dB between two byte arrays. */
double mt_psnr(const uint8_t *a, const uint8_t *b, size_t n);

int mt_file_exists(const char *path);
int64_t mt_file_size(const char *path);
/* Copies the first `bytes` bytes of src to dst. */
int mt_truncate_copy(const char *src, const char *dst, int64_t bytes);
/* Writes a string to a file. */
int mt_write_text(const char *path, const char *text);

#endif
