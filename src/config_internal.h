/*
 * config_internal — what config.c shares with the other parsers of the configuration file
 * (alerts_config.c): the error and key helpers that make every message "key: what is wrong",
 * and the checks of common value shapes. Not part of the public headers.
 *
 * Errors: every function that fails writes "key: message" into err (errlen bytes; NULL or 0:
 * nothing is written) and returns -1. Keys are dotted paths ("alerts[3].devices[0]") in
 * buffers of TB_CONFIG_KEY_MAX bytes; a longer one is cut, as it only names errors. Allocations
 * belong to the caller on success and are freed on failure. Any thread; no state.
 */
#ifndef TELEBRIDGE_CONFIG_INTERNAL_H
#define TELEBRIDGE_CONFIG_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "telebridge/config.h"

#define TB_CONFIG_STR_MAX 1024              /* longest ordinary string value */
#define TB_CONFIG_KEY_MAX TB_CONFIG_ERR_LEN /* a dotted key such as "alerts[3].devices[0]" */

typedef bool (*tb_config_str_check_fn)(const char *s);

/* Writes "key: message" (or just the message when key is NULL) into err; returns -1. */
__attribute__((format(printf, 4, 5))) int tb_config_fail(char *err, size_t errlen, const char *key,
                                                         const char *fmt, ...);
/* Fails with "key: must be one of A, B, C". */
int tb_config_fail_one_of(char *err, size_t errlen, const char *key, const char *const *names,
                          size_t n);

/* "parent.key" ("key" at the top level), and "parent[i]", into out. */
void tb_config_key_join(char out[TB_CONFIG_KEY_MAX], const char *parent, const char *key);
void tb_config_key_index(char out[TB_CONFIG_KEY_MAX], const char *parent, size_t i);

/* Index of name in names[0..n), or -1. */
int tb_config_name_index(const char *const *names, size_t n, const char *name);

/* Fails with "parent.name: unknown key" for the first member of obj not in names[0..n). */
int tb_config_known_keys(json_t *obj, const char *parent, const char *const *names, size_t n,
                         char *err, size_t errlen);
/* obj[name] into *v (borrowed), its dotted key into key; absent: an error when required, else
 * *v NULL and 0. */
int tb_config_member(json_t *obj, const char *parent, const char *name, bool required, json_t **v,
                     char key[TB_CONFIG_KEY_MAX], char *err, size_t errlen);

/* A copy of a string of 1..maxlen bytes into *out (caller frees). */
int tb_config_dup_string(json_t *v, const char *key, size_t maxlen, char **out, char *err,
                         size_t errlen);
/* An array of strings each passing ok(), as a NULL-terminated copy in *out (free with
 * tb_config_strv_free()) and its length in *n_out; what names one element in errors. */
int tb_config_strv(json_t *v, const char *key, tb_config_str_check_fn ok, const char *what,
                   char ***out, size_t *n_out, char *err, size_t errlen);
/* Frees a NULL-terminated string array; NULL is a no-op. */
void tb_config_strv_free(char **v);

/* "*", a device id, or an id prefix with one trailing '*' ("sensor-hum-*"). */
bool tb_config_device_pattern_valid(const char *s);

/* A number as JSON: an integer when it is one (30, not 30.0). NULL when out of memory. */
json_t *tb_config_number_json(double x);
/* v[0..n) as a JSON array of strings. NULL when out of memory. */
json_t *tb_config_strv_json(char *const *v, size_t n);

#endif
