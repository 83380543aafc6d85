/* Private to data/: small HDF5 helpers shared by the clip reader and writer. */
#ifndef DUET_DATA_CLIPS_H5_H
#define DUET_DATA_CLIPS_H5_H

#include <stddef.h>

#include <hdf5.h>

/* HDF5 prints its error stack to stderr by default; a library must not. The automatic printer
 * is per thread in the thread-safe build, so each entry point turns it off for the calling
 * thread and puts back whatever the application had, leaving no state of its own behind. */
typedef struct duet_h5_quiet {
  unsigned is_v2;
  H5E_auto2_t func2;
#ifndef H5_NO_DEPRECATED_SYMBOLS
  H5E_auto1_t func1;
#endif
  void *data;
} duet_h5_quiet;

void duet_h5_quiet_begin(duet_h5_quiet *q);
void duet_h5_quiet_end(const duet_h5_quiet *q);

/* The innermost message on this thread's HDF5 error stack ("truncated file: eof = ..."), or
 * "unknown HDF5 error"; clears the stack. */
const char *duet_h5_error_text(char *buf, size_t n);

/* A short name of a stored type for messages: "uint8", "float32", "string", ... */
const char *duet_h5_type_name(hid_t type, char *buf, size_t n);

#endif
