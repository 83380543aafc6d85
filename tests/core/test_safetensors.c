/* safetensors: bit-exact round trips, the on-disk layout, a file written by the Python
 * package, strict rejection of malformed files, and loading into parameter sets. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/safetensors.h"
#include "testlib.h"

typedef struct path_buf {
  char s[512];
} path_buf;

static path_buf tmp_path(const char *name) {
  path_buf p;
  CHECK(duet_path_join(p.s, sizeof p.s, test_tmpdir(), name, NULL) == 0);
  return p;
}

static duet_tensor *new_tensor(duet_dtype dt, int ndim, const int64_t *shape) {
  duet_tensor *t = duet_tensor_new(dt, ndim, shape, NULL);
  CHECK(t != NULL);
  return t;
}

static void write_bytes(const char *path, const void *data, size_t n) {
  FILE *f = fopen(path, "wb");
  CHECK(f != NULL);
  if (!f) return;
  CHECK(fwrite(data, 1, n, f) == n);
  fclose(f);
}

static unsigned char *read_bytes(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *buf = malloc((size_t)size + 1);
  *n = fread(buf, 1, (size_t)size, f);
  fclose(f);
  return buf;
}

/* A file from a header text (padded to 8 with spaces, as writers do) and data_len data bytes. */
static void write_raw(const char *path, const char *header, size_t data_len) {
  size_t n = strlen(header), padded = (n + 7) & ~(size_t)7;
  unsigned char *buf = calloc(8 + padded + data_len + 1, 1);
  for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)padded >> (8 * i));
  memcpy(buf + 8, header, n);
  memset(buf + 8 + n, ' ', padded - n);
  for (size_t i = 0; i < data_len; i++) buf[8 + padded + i] = (unsigned char)i;
  write_bytes(path, buf, 8 + padded + data_len);
  free(buf);
}

/* Opening must fail with code, naming the file and containing every needle. */
static void expect_reject(const char *what, const char *path, int code, const char *needle1, const char *needle2) {
  duet_st_file *f = NULL;
  duet_err err = {0};
  int rc = duet_st_open(&f, path, &err);
  CHECK_MSG(rc == code, "%s: got %d (%s)", what, rc, err.msg);
  CHECK(f == NULL);
  CHECK_MSG(strstr(err.msg, path) != NULL, "%s: message does not name the file: %s", what, err.msg);
  CHECK_MSG(!needle1 || strstr(err.msg, needle1), "%s: '%s' not in: %s", what, needle1, err.msg);
  CHECK_MSG(!needle2 || strstr(err.msg, needle2), "%s: '%s' not in: %s", what, needle2, err.msg);
  CHECK_MSG(!strchr(err.msg, '\n'), "%s: message is not one line", what);
  duet_st_close(f);
}

static void test_round_trip(void) {
  int64_t s23[2] = {2, 3}, s5[1] = {5}, s22[2] = {2, 2}, s4[1] = {4}, s7[1] = {7}, s03[2] = {0, 3};
  duet_tensor *f32 = new_tensor(DUET_F32, 2, s23), *bf = new_tensor(DUET_BF16, 1, s5), *f64 = new_tensor(DUET_F64, 2, s22);
  duet_tensor *i32 = new_tensor(DUET_I32, 1, s4), *u8 = new_tensor(DUET_U8, 1, s7), *scalar = new_tensor(DUET_F32, 0, NULL);
  duet_tensor *empty = new_tensor(DUET_F32, 2, s03);
  uint32_t f32bits[6] = {0x3f800000u, 0x80000000u, 0x7fc01234u, 0xff800000u, 0x00000001u, 0x3eaaaaabu};
  memcpy(f32->data, f32bits, sizeof f32bits);
  uint16_t bfbits[5] = {0x3f80, 0xc000, 0x7fc1, 0x0001, 0x8000};
  memcpy(bf->data, bfbits, sizeof bfbits);
  double dv[4] = {M_PI, -0.0, 1e-310, -1e300};
  memcpy(f64->data, dv, sizeof dv);
  int32_t iv[4] = {INT32_MIN, -1, 0, INT32_MAX};
  memcpy(i32->data, iv, sizeof iv);
  for (int i = 0; i < 7; i++) ((uint8_t *)u8->data)[i] = (uint8_t)(250 + i);
  ((float *)scalar->data)[0] = 42.5f;

  duet_err err = {0};
  duet_st_writer *w = duet_st_writer_new(&err);
  /* Added smallest first: the writer must still align every tensor to its element size. */
  CHECK(duet_st_writer_add(w, "u8", u8, &err) == 0);
  CHECK(duet_st_writer_add(w, "bf16", bf, &err) == 0);
  CHECK(duet_st_writer_add(w, "i32", i32, &err) == 0);
  CHECK(duet_st_writer_add(w, "f32", f32, &err) == 0);
  CHECK(duet_st_writer_add(w, "f64", f64, &err) == 0);
  CHECK(duet_st_writer_add(w, "scalar", scalar, &err) == 0);
  CHECK(duet_st_writer_add(w, "empty", empty, &err) == 0);
  CHECK(duet_st_writer_add(w, "f32", f32, &err) == DUET_EINVAL && strstr(err.msg, "twice"));
  CHECK(duet_st_writer_add(w, "__metadata__", f32, &err) == DUET_EINVAL);
  CHECK(duet_st_writer_meta(w, "format", "pt", &err) == 0);
  CHECK(duet_st_writer_meta(w, "note", "quote \" and \\ and caf\xc3\xa9", &err) == 0);
  CHECK(duet_st_writer_meta(w, "format", "duet-test", &err) == 0); /* replaces */
  path_buf pb = tmp_path("round.safetensors");
  const char *path = pb.s;
  CHECK_MSG(duet_st_writer_write(w, path, &err) == 0, "%s", err.msg);
  duet_st_writer_free(w);

  /* The layout: 8-byte length, 8-aligned JSON header, buffer right after. */
  size_t n = 0;
  unsigned char *raw = read_bytes(path, &n);
  CHECK(raw != NULL && n >= 8);
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; i--) hlen = hlen << 8 | raw[i];
  CHECK(hlen % 8 == 0);
  uint64_t data_bytes = 6 * 4 + 5 * 2 + 4 * 8 + 4 * 4 + 7 + 4;
  CHECK_EQ_INT(n, 8 + hlen + data_bytes);
  cJSON *j = cJSON_ParseWithLength((const char *)raw + 8, hlen);
  CHECK(j && cJSON_IsObject(j));
  cJSON *meta = cJSON_GetObjectItem(j, "__metadata__");
  CHECK(cJSON_IsString(cJSON_GetObjectItem(meta, "format")) &&
        strcmp(cJSON_GetObjectItem(meta, "format")->valuestring, "duet-test") == 0);
  cJSON *jf = cJSON_GetObjectItem(j, "f32");
  CHECK(strcmp(cJSON_GetObjectItem(jf, "dtype")->valuestring, "F32") == 0);
  CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(jf, "shape")) == 2);
  CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "scalar"), "shape")) == 0);
  cJSON_Delete(j);
  free(raw);

  duet_st_file *f = NULL;
  CHECK_MSG(duet_st_open(&f, path, &err) == 0, "%s", err.msg);
  if (!f) return;
  CHECK_EQ_INT(duet_st_count(f), 7);
  CHECK(strcmp(duet_st_meta(f, "format"), "duet-test") == 0);
  CHECK(strcmp(duet_st_meta(f, "note"), "quote \" and \\ and caf\xc3\xa9") == 0);
  CHECK(duet_st_meta(f, "absent") == NULL && duet_st_meta_count(f) == 2);
  uint64_t prev_end = 0;
  for (int i = 0; i < duet_st_count(f); i++) {
    const duet_st_info *ti = duet_st_info_at(f, i);
    CHECK_MSG(ti->begin % duet_dtype_size(ti->dtype) == 0, "'%s' misaligned at %llu", ti->name,
              (unsigned long long)ti->begin);
    CHECK(ti->begin == prev_end);
    prev_end = ti->end;
  }
  const duet_tensor *orig[7] = {f32, bf, f64, i32, u8, scalar, empty};
  const char *names[7] = {"f32", "bf16", "f64", "i32", "u8", "scalar", "empty"};
  for (int i = 0; i < 7; i++) {
    duet_tensor *back = NULL;
    CHECK_MSG(duet_st_read_new(f, names[i], &back, &err) == 0, "%s", err.msg);
    if (!back) continue;
    CHECK_MSG(back->dtype == orig[i]->dtype && duet_shape_equal(back, orig[i]), "%s", names[i]);
    CHECK_MSG(memcmp(back->data, orig[i]->data, duet_tensor_bytes(orig[i])) == 0, "%s not bit-exact", names[i]);
    duet_tensor_free(back);
  }
  duet_tensor *none = NULL;
  CHECK(duet_st_read_new(f, "nope", &none, &err) == DUET_EINVAL && strstr(err.msg, "nope"));
  /* Reading into another float dtype converts; into an integer it is refused. */
  duet_tensor *as64 = new_tensor(DUET_F64, 1, s5);
  CHECK(duet_st_read(f, duet_st_find(f, "bf16"), as64, &err) == 0);
  CHECK(((double *)as64->data)[0] == 1.0 && ((double *)as64->data)[1] == -2.0 && isnan(((double *)as64->data)[2]));
  duet_tensor *asi = new_tensor(DUET_I32, 1, s5);
  CHECK(duet_st_read(f, duet_st_find(f, "bf16"), asi, &err) == DUET_EINVAL);
  duet_tensor_free(as64);
  duet_tensor_free(asi);
  duet_st_close(f);

  /* Stored as bf16 from f32 (round to nearest even), read back as f32. */
  float vals[6] = {1.0f, 1.00390625f, 1.01171875f, -3.5f, 1e-3f, 65504.0f};
  memcpy(f32->data, vals, sizeof vals);
  w = duet_st_writer_new(&err);
  CHECK(duet_st_writer_add_as(w, "x", f32, DUET_BF16, &err) == 0);
  CHECK(duet_st_writer_add_as(w, "y", i32, DUET_F32, &err) == DUET_EINVAL);
  path_buf pb2 = tmp_path("bf16.safetensors");
  const char *p2 = pb2.s;
  CHECK(duet_st_writer_write(w, p2, &err) == 0);
  duet_st_writer_free(w);
  CHECK(duet_st_open(&f, p2, &err) == 0);
  if (f) {
    CHECK(duet_st_find(f, "x")->dtype == DUET_BF16 && duet_st_meta_count(f) == 0);
    duet_tensor *back = new_tensor(DUET_F32, 2, s23);
    CHECK(duet_st_read(f, duet_st_find(f, "x"), back, &err) == 0);
    for (int i = 0; i < 6; i++) CHECK(((float *)back->data)[i] == duet_bf16_to_f32(duet_f32_to_bf16(vals[i])));
    CHECK(((float *)back->data)[1] == 1.0f && ((float *)back->data)[2] == 1.015625f);
    duet_tensor_free(back);
    duet_st_close(f);
  }
  unlink(path);
  unlink(p2);
  duet_tensor *all[7] = {f32, bf, f64, i32, u8, scalar, empty};
  for (int i = 0; i < 7; i++) duet_tensor_free(all[i]);
  (void)s4;
  (void)s7;
}

/* Written by the Python package (safetensors 0.8.0, safetensors.numpy.save) from
 * {"w": f32 [[1.5, -2, 0.25], [3, -0, 1e-3]], "ids": i32 [7, -1, 2^31 - 1],
 *  "mask": u8 [1, 0, 1, 1, 0], "h": f64 [pi]}, metadata {"source": "python"}. */
static const char py_header[] =
    "{\"__metadata__\":{\"source\":\"python\"},\"h\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]},"
    "\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[8,32]},\"ids\":{\"dtype\":\"I32\",\"shape\":[3],"
    "\"data_offsets\":[32,44]},\"mask\":{\"dtype\":\"U8\",\"shape\":[5],\"data_offsets\":[44,49]}}     ";
static const unsigned char py_data[49] = {
    0x18, 0x2d, 0x44, 0x54, 0xfb, 0x21, 0x09, 0x40, 0x00, 0x00, 0xc0, 0x3f, 0x00, 0x00, 0x00, 0xc0, 0x00,
    0x00, 0x80, 0x3e, 0x00, 0x00, 0x40, 0x40, 0x00, 0x00, 0x00, 0x80, 0x6f, 0x12, 0x83, 0x3a, 0x07, 0x00,
    0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0x01, 0x00, 0x01, 0x01, 0x00};

static void test_python_file(void) {
  size_t hlen = sizeof py_header - 1;
  CHECK_EQ_INT(hlen, 0x108);
  unsigned char buf[8 + sizeof py_header + sizeof py_data];
  for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
  memcpy(buf + 8, py_header, hlen);
  memcpy(buf + 8 + hlen, py_data, sizeof py_data);
  path_buf pb = tmp_path("python.safetensors");
  const char *path = pb.s;
  write_bytes(path, buf, 8 + hlen + sizeof py_data);
  duet_st_file *f = NULL;
  duet_err err = {0};
  CHECK_MSG(duet_st_open(&f, path, &err) == 0, "%s", err.msg);
  if (!f) return;
  CHECK(strcmp(duet_st_meta(f, "source"), "python") == 0);
  duet_tensor *w = NULL, *ids = NULL, *mask = NULL, *h = NULL;
  CHECK(duet_st_read_new(f, "w", &w, &err) == 0 && duet_st_read_new(f, "ids", &ids, &err) == 0 &&
        duet_st_read_new(f, "mask", &mask, &err) == 0 && duet_st_read_new(f, "h", &h, &err) == 0);
  if (w && ids && mask && h) {
    float wf[6] = {1.5f, -2.0f, 0.25f, 3.0f, -0.0f, 1e-3f};
    CHECK(w->ndim == 2 && w->shape[0] == 2 && w->shape[1] == 3 && memcmp(w->data, wf, sizeof wf) == 0);
    CHECK(((int32_t *)ids->data)[1] == -1 && ((int32_t *)ids->data)[2] == INT32_MAX);
    CHECK(((uint8_t *)mask->data)[3] == 1 && ((uint8_t *)mask->data)[4] == 0);
    CHECK(((double *)h->data)[0] == M_PI);
  }
  duet_tensor_free(w);
  duet_tensor_free(ids);
  duet_tensor_free(mask);
  duet_tensor_free(h);
  duet_st_close(f);
  unlink(path);
}

static void test_truncations(void) {
  int64_t s[2] = {3, 5};
  duet_tensor *t = new_tensor(DUET_F32, 2, s);
  duet_err err = {0};
  duet_st_writer *w = duet_st_writer_new(&err);
  duet_st_writer_add(w, "a", t, &err);
  duet_st_writer_add(w, "b", t, &err);
  path_buf pb = tmp_path("whole.safetensors"), pc = tmp_path("cut.safetensors");
  const char *path = pb.s, *cut = pc.s;
  CHECK(duet_st_writer_write(w, path, &err) == 0);
  duet_st_writer_free(w);
  size_t n = 0;
  unsigned char *raw = read_bytes(path, &n);
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; i--) hlen = hlen << 8 | raw[i];
  size_t cuts[] = {0, 3, 7, 8, 9, 8 + hlen / 2, 8 + hlen - 1, 8 + hlen, 8 + hlen + 1, 8 + hlen + 60, n - 1};
  const char *needles[] = {"too short", "too short", "too short", "runs past", "runs past", "runs past",
                           "runs past", "outside",   "outside",   "outside",   "outside"};
  for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
    write_bytes(cut, raw, cuts[i]);
    char what[64];
    snprintf(what, sizeof what, "cut at %zu of %zu", cuts[i], n);
    expect_reject(what, cut, DUET_EFORMAT, needles[i], NULL);
  }
  /* One byte more is trailing garbage. */
  unsigned char *longer = malloc(n + 1);
  memcpy(longer, raw, n);
  longer[n] = 0;
  write_bytes(cut, longer, n + 1);
  expect_reject("trailing byte", cut, DUET_EFORMAT, "1 bytes of trailing data", NULL);
  free(longer);
  free(raw);
  duet_tensor_free(t);
  unlink(path);
  unlink(cut);
}

static void test_corrupt_headers(void) {
  path_buf pb = tmp_path("bad.safetensors"), missing = tmp_path("does-not-exist.safetensors");
  const char *p = pb.s;
  expect_reject("missing file", missing.s, DUET_EIO, "cannot open", NULL);

  unsigned char huge[16] = {0, 0, 0, 0, 0, 1, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '};
  write_bytes(p, huge, sizeof huge);
  expect_reject("absurd header length", p, DUET_EFORMAT, "absurd", NULL);
  unsigned char past[16] = {0xe8, 0x03, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '};
  write_bytes(p, past, sizeof past);
  expect_reject("header length past the end", p, DUET_EFORMAT, "runs past", "1000");

  write_raw(p, "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], ", 8);
  expect_reject("bad JSON", p, DUET_EFORMAT, "not valid JSON", NULL);
  write_raw(p, "{} x", 0);
  expect_reject("text after JSON", p, DUET_EFORMAT, "after its JSON", NULL);
  write_raw(p, "[1, 2]", 0);
  expect_reject("not an object", p, DUET_EFORMAT, "'{'", NULL);
  write_raw(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}}", 16);
  expect_reject("offsets out of range", p, DUET_EFORMAT, "outside the 16-byte data buffer", "'a'");
  write_raw(p,
            "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
            "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
            12);
  expect_reject("overlap", p, DUET_EFORMAT, "overlap", "'b'");
  write_raw(p,
            "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
            "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}",
            20);
  expect_reject("gap", p, DUET_EFORMAT, "4 unused bytes", "'b'");
  write_raw(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12);
  expect_reject("first tensor not at 0", p, DUET_EFORMAT, "unused bytes", NULL);
  write_raw(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", 20);
  expect_reject("wrong span", p, DUET_EFORMAT, "needs 24 bytes but data_offsets span 20", "[2,3]");
  write_raw(p, "{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4);
  expect_reject("unsupported dtype", p, DUET_EFORMAT, "dtype 'F16'", "'a'");
  write_raw(p, "{\"a\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4);
  expect_reject("unknown dtype", p, DUET_EFORMAT, "dtype 'Q4'", NULL);
  write_raw(p, "{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8);
  expect_reject("no dtype", p, DUET_EFORMAT, "'dtype'", NULL);
  write_raw(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8);
  expect_reject("negative dim", p, DUET_EFORMAT, "shape entry", NULL);
  write_raw(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,2],\"data_offsets\":[0,8]}}", 8);
  expect_reject("rank 7", p, DUET_EFORMAT, "7 dims", NULL);
  write_raw(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8);
  expect_reject("reversed offsets", p, DUET_EFORMAT, "data_offsets", NULL);
  write_raw(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,8]}}", 8);
  expect_reject("shape overflow", p, DUET_EFORMAT, "too many", NULL);
  write_raw(p,
            "{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"
            "\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[2,4]}}",
            4);
  expect_reject("duplicate names", p, DUET_EFORMAT, "'a' appears twice", NULL);
  write_raw(p, "{\"__metadata__\":{\"k\":3}}", 0);
  expect_reject("metadata not a string", p, DUET_EFORMAT, "metadata 'k'", NULL);

  /* Valid edge cases: no tensors at all, metadata null. */
  duet_st_file *f = NULL;
  duet_err err = {0};
  write_raw(p, "{}", 0);
  CHECK(duet_st_open(&f, p, &err) == 0 && f && duet_st_count(f) == 0);
  duet_st_close(f);
  write_raw(p, "{\"__metadata__\":null,\"a\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[0,3]}}", 3);
  CHECK_MSG(duet_st_open(&f, p, &err) == 0, "%s", err.msg);
  duet_st_close(f);
  unlink(p);
}

static void make_params(duet_param_set *ps, int with_extra, int transpose, double base) {
  duet_params_init(ps);
  int64_t sw[2] = {transpose ? 3 : 2, transpose ? 2 : 3}, sb[1] = {3};
  duet_tensor *w = duet_params_add(ps, "layer.weight", DUET_F32, 2, sw, 1, NULL);
  duet_tensor *b = duet_params_add(ps, "layer.bias", DUET_F32, 1, sb, 1, NULL);
  for (int i = 0; i < 6; i++) ((float *)w->data)[i] = (float)(base + i);
  for (int i = 0; i < 3; i++) ((float *)b->data)[i] = (float)(base - i);
  if (with_extra) duet_params_add(ps, "extra", DUET_F32, 1, sb, 0, NULL);
}

static void test_load_params(void) {
  duet_param_set src, dst;
  duet_err err = {0};
  make_params(&src, 0, 0, 1.0);
  path_buf pb = tmp_path("params.safetensors");
  const char *path = pb.s;
  duet_st_writer *w = duet_st_writer_new(&err);
  CHECK(duet_st_writer_add_params(w, &src, NULL, &err) == 0);
  CHECK(duet_st_writer_write(w, path, &err) == 0);
  duet_st_writer_free(w);

  duet_st_load_report rep;
  make_params(&dst, 0, 0, 0.0);
  CHECK_MSG(duet_st_load_params_file(path, &dst, NULL, &rep, &err) == 0, "%s", err.msg);
  CHECK(rep.loaded == 2 && rep.missing == 0 && rep.unexpected == 0);
  CHECK(memcmp(dst.items[0]->data, src.items[0]->data, 24) == 0 && memcmp(dst.items[1]->data, src.items[1]->data, 12) == 0);
  duet_params_free(&dst);

  /* A parameter the file lacks. */
  make_params(&dst, 1, 0, 0.0);
  CHECK(duet_st_load_params_file(path, &dst, NULL, &rep, &err) == DUET_EINVAL);
  CHECK_MSG(strstr(err.msg, path) && strstr(err.msg, "missing") && strstr(err.msg, "'extra'"), "%s", err.msg);
  CHECK(((float *)dst.items[0]->data)[1] == 1.0f); /* nothing read on failure */
  duet_st_load_opts lenient = {.allow_missing = 1};
  CHECK(duet_st_load_params_file(path, &dst, &lenient, &rep, &err) == 0 && rep.missing == 1 && rep.loaded == 2);
  CHECK(strcmp(rep.first_missing, "extra") == 0);
  duet_params_free(&dst);

  /* A key the model lacks. */
  duet_params_init(&dst);
  int64_t sb[1] = {3};
  duet_params_add(&dst, "layer.bias", DUET_F32, 1, sb, 1, NULL);
  CHECK(duet_st_load_params_file(path, &dst, NULL, &rep, &err) == DUET_EINVAL);
  CHECK_MSG(strstr(err.msg, "unexpected") && strstr(err.msg, "'layer.weight'"), "%s", err.msg);
  lenient = (duet_st_load_opts){.allow_unexpected = 1};
  CHECK(duet_st_load_params_file(path, &dst, &lenient, &rep, &err) == 0 && rep.unexpected == 1);
  duet_params_free(&dst);

  /* Wrong shape. */
  make_params(&dst, 0, 1, 0.0);
  CHECK(duet_st_load_params_file(path, &dst, NULL, &rep, &err) == DUET_EINVAL);
  CHECK_MSG(strstr(err.msg, "'layer.weight' has shape [2,3] in the file but [3,2] here"), "%s", err.msg);
  CHECK(((float *)dst.items[1]->data)[0] == 0.0f);
  duet_params_free(&dst);

  /* Wrong dtype: refused unless conversion is asked for. */
  duet_params_init(&dst);
  int64_t sw[2] = {2, 3};
  duet_params_add(&dst, "layer.weight", DUET_BF16, 2, sw, 0, NULL);
  duet_params_add(&dst, "layer.bias", DUET_F64, 1, sb, 0, NULL);
  CHECK(duet_st_load_params_file(path, &dst, NULL, &rep, &err) == DUET_EINVAL);
  CHECK_MSG(strstr(err.msg, "F32 in the file but BF16 here (conversion not requested)"), "%s", err.msg);
  duet_st_load_opts conv = {.convert = 1};
  CHECK(duet_st_load_params_file(path, &dst, &conv, &rep, &err) == 0);
  CHECK(duet_tensor_get(dst.items[0], 5) == 6.0 && duet_tensor_get(dst.items[1], 2) == -1.0);
  duet_params_free(&dst);

  /* Prefixed keys (as the optimizer's "m.<name>"). */
  w = duet_st_writer_new(&err);
  CHECK(duet_st_writer_add_params(w, &src, "m.", &err) == 0);
  CHECK(duet_st_writer_add_params(w, &src, "v.", &err) == 0);
  CHECK(duet_st_writer_write(w, path, &err) == 0);
  duet_st_writer_free(w);
  make_params(&dst, 0, 0, 0.0);
  duet_st_load_opts pre = {.prefix = "v."};
  CHECK_MSG(duet_st_load_params_file(path, &dst, &pre, &rep, &err) == 0, "%s", err.msg);
  CHECK(rep.loaded == 2 && rep.unexpected == 0 && ((float *)dst.items[0]->data)[5] == 6.0f);
  duet_params_free(&dst);
  duet_params_free(&src);
  unlink(path);
}

int main(void) {
  test_round_trip();
  test_python_file();
  test_truncations();
  test_corrupt_headers();
  test_load_params();
  rmdir(test_tmpdir());
  return test_finish("core_safetensors");
}
