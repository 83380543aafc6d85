/* Configs: INI files and "section.key=value" overrides read into plain C structs, driven by
 * tables that say, for each key, where it lives in the struct, its type and what it may hold.
 *
 * A table is the single description of a struct's settings: loading, overriding, writing the
 * resolved config back out and printing --help all walk it, so they cannot drift apart. core
 * knows no table itself; each folder that has settings declares its own.
 *
 *   typedef struct train_cfg { double lr; int steps; char run[DUET_CFG_STRING_MAX]; } train_cfg;
 *   static const duet_cfg_key train_keys[] = {
 *     {"train", "lr", DUET_CFG_DOUBLE, offsetof(train_cfg, lr), 0, 1, NULL, "peak learning rate"},
 *     {"train", "steps", DUET_CFG_INT, offsetof(train_cfg, steps), 1, 1e9, NULL, "optimizer steps"},
 *     {"train", "run", DUET_CFG_STRING, offsetof(train_cfg, run), 1, 0, NULL, "run folder"},
 *   };
 *
 * Values in files: "name = value" under "[section]"; ';' or '#' starts a comment line, and
 * " ;" (';' after whitespace) starts a comment after a value. Strings are taken as written,
 * without quotes, trimmed at both ends.
 *
 * Every function that changes a target changes nothing when it fails: a file is checked
 * whole before the first value is stored. Error codes: DUET_EINVAL for a bad key or value (and
 * for a mistake in a table), DUET_EFORMAT for a line that is not INI, DUET_EIO for a file that
 * cannot be read or written. */
#ifndef DUET_CORE_CONFIG_H
#define DUET_CORE_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#include "core/error.h"

/* Size of a STRING target: the struct member must be char[DUET_CFG_STRING_MAX], and a value
 * may hold at most DUET_CFG_STRING_MAX - 1 bytes. */
#define DUET_CFG_STRING_MAX 512

/* What the target member is, per type:
 *   INT     int                        decimal, optional sign
 *   INT64   int64_t                    decimal, optional sign
 *   DOUBLE  double                     anything strtod reads (2e-4, 0.1, 0x1p-3), finite only
 *   BOOL    bool                       true/false, 1/0, yes/no, on/off
 *   STRING  char[DUET_CFG_STRING_MAX]  the text as written
 *   ENUM    int (or an int-sized C enum numbered 0, 1, ...): the index of the choice */
typedef enum {
  DUET_CFG_INT,
  DUET_CFG_INT64,
  DUET_CFG_DOUBLE,
  DUET_CFG_BOOL,
  DUET_CFG_STRING,
  DUET_CFG_ENUM
} duet_cfg_type;

typedef struct duet_cfg_key {
  const char *section, *name; /* "train", "lr": letters, digits, '_' and '-' (and '.' in a
                                 section name) */
  duet_cfg_type type;
  size_t offset; /* offsetof into the target struct */
  /* Numeric range, inclusive; min > max means none. min == max is refused as a table error:
   * it is what a forgotten range looks like, and a setting with one allowed value is none. */
  double min, max;
  const char *const *choices; /* ENUM: NULL-terminated names; the target holds the index */
  const char *help;           /* one line, for --help and the comments in written configs */
} duet_cfg_key;

/* One table and the struct it fills. Several groups let one file fill several structs (a
 * model struct from [model], a training struct from [train], ...). */
typedef struct duet_cfg_group {
  const duet_cfg_key *keys;
  int n;
  void *target; /* only read by the write and format functions */
} duet_cfg_group;

/* Reads an INI file into target. Errors (one line, naming file:line and section.key): an
 * unknown section or key, a key given twice, a value that is not of the key's type, out of
 * range or not one of its choices, a string too long, a syntax error, a file that cannot be
 * read. Keys the file does not mention keep their current values, so the caller sets the
 * defaults first and may load several files in turn, each overriding the last. */
int duet_config_load_file(const duet_cfg_key *keys, int n, void *target, const char *path,
                          duet_err *err);
/* The same from INI text in memory; name stands for the file in messages. */
int duet_config_load_string(const duet_cfg_key *keys, int n, void *target, const char *text,
                            const char *name, duet_err *err);

/* Applies one "section.key=value" (a command line's --set), with the same checks; an error
 * names the override as given. Whitespace around the key and the value is ignored. */
int duet_config_set(const duet_cfg_key *keys, int n, void *target, const char *assignment,
                    duet_err *err);

/* Writes every key of the table with its current value, grouped by section, each preceded by
 * its help as a comment, atomically (temporary file, then rename). Numbers are written so
 * that they read back exactly (a double as the shortest text that strtod returns to the same
 * bits: 0.1, 2e-4). Fails, writing nothing, when a value cannot be written so that it reads
 * back the same: a value out of its range; a string with a control character, whitespace at
 * either end or " ;"; an enum index that is not a choice; a non-finite double. */
int duet_config_write(const duet_cfg_key *keys, int n, const void *target, const char *path,
                      duet_err *err);

/* One line per key: section.key, its type with range or choices, and its help. */
void duet_config_print_help(FILE *f, const duet_cfg_key *keys, int n);

/* The same over several groups. A key must be in exactly one group (a section.key found in
 * two groups is a table error); a key known to no group is the input's error. */
int duet_config_load_file_multi(const duet_cfg_group *groups, int ngroups, const char *path,
                                duet_err *err);
int duet_config_load_string_multi(const duet_cfg_group *groups, int ngroups, const char *text,
                                  const char *name, duet_err *err);
int duet_config_set_multi(const duet_cfg_group *groups, int ngroups, const char *assignment,
                          duet_err *err);
int duet_config_write_multi(const duet_cfg_group *groups, int ngroups, const char *path,
                            duet_err *err);
/* The text duet_config_write_multi writes, in a NUL-terminated heap buffer the caller frees
 * (to log it, or to store it beside a checkpoint's weights). */
int duet_config_format_multi(const duet_cfg_group *groups, int ngroups, char **text,
                             duet_err *err);

#endif
