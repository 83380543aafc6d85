/* Shared set-up of the train tests: a small clip file of synthetic content, a tiny config that
 * fits it, and running the duet-train binary. */
#ifndef DUET_TESTS_TRAIN_FIXTURE_H
#define DUET_TESTS_TRAIN_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "train/train_config.h"

/* Clip shape of the fixture: 4 frames of 8x8 at 16 fps, 0.25 s of 16 kHz audio. */
#define FX_FRAMES 4
#define FX_SIZE 8
#define FX_FPS 16
#define FX_RATE 16000
#define FX_SAMPLES 4000

/* Writes n clips (random pixels, a tone per clip, a caption naming it) to path; with
 * text_dim > 0 also text_emb [text_len, text_dim] and text_mask. Returns 0 or prints why not. */
int fx_write_clips(const char *path, int n, int text_len, int text_dim, uint64_t seed);

/* INI text of a tiny model and run on data_path into run_dir (used by file and binary). */
void fx_ini_text(char *buf, size_t size, const char *data_path, const char *run_dir);
/* Writes that text to path; returns 0 on success. */
int fx_write_ini(const char *path, const char *data_path, const char *run_dir);
/* The same config as a struct (defaults, then the text). */
int fx_config(duet_train_config *c, const char *data_path, const char *run_dir);

/* <test_tmpdir()>/name into buf; returns buf. */
const char *fx_path(char *buf, size_t size, const char *name);

/* Runs the duet-train binary with args (a shell word list); stdout and stderr go to out
 * (NUL-terminated, truncated to size). Returns its exit status, or -1 when it did not exit. */
int fx_run_tool(const char *args, char *out, size_t size);

/* Number of lines in s (a last line without a newline counts). */
int fx_count_lines(const char *s);

#endif
