/*
 * config_internal — what the parts of the config module share: the table of keys (defined in
 * config.c, read by the dump in config_dump.c), the checks the command-line overrides
 * (config_cli.c) reuse, and the error and key helpers (config_keys.c) that make every message
 * "key: what is wrong" for config.c and the other parsers of the file (alerts_config.c). Not
 * part of the public headers.
 *
 * Errors: every function that fails writes "key: message" into err (errlen bytes; NULL or 0:
 * nothing is written) and returns -1. Keys are dotted paths ("alerts[3].devices[0]") in
 * buffers of CONFIG_KEY_MAX bytes; a longer one is cut, as it only names errors. Allocations
 * belong to the caller on success and are freed on failure. Any thread; no state.
 */
#ifndef TELEBRIDGE_CONFIG_INTERNAL_H
#define TELEBRIDGE_CONFIG_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "telebridge/config.h"

#define CONFIG_STR_MAX 1024              /* longest ordinary string value */
#define CONFIG_KEY_MAX TB_CONFIG_ERR_LEN /* a dotted key such as "alerts[3].devices[0]" */
#define CONFIG_PORT_MIN 1
#define CONFIG_PORT_MAX 65535

#define CONFIG_COUNT(a) (sizeof(a) / sizeof((a)[0]))

typedef enum {
    CONFIG_K_INT,          /* integer in [lo, hi] */
    CONFIG_K_BOOL,         /* true or false, stored as bool */
    CONFIG_K_STR,          /* string of 1..hi bytes */
    CONFIG_K_HOST,         /* CONFIG_K_STR of visible ASCII (a host name or address) */
    CONFIG_K_STR_NULL,     /* CONFIG_K_STR, or null for unset */
    CONFIG_K_PATH_NULL,    /* CONFIG_K_STR_NULL, resolved against the config file's folder */
    CONFIG_K_HISTORY_FILE, /* CONFIG_K_PATH_NULL whose only placeholders are {hostname}, {port} */
    CONFIG_K_TOPIC,        /* CONFIG_K_STR accepted by tb_topic_tpl_parse() */
    CONFIG_K_CLIENT_ID,    /* CONFIG_K_STR whose only placeholders are {hostname} and {port} */
    CONFIG_K_ALGORITHM,    /* CONFIG_K_STR, one of config.c's algorithm_names */
    CONFIG_K_SLOW,         /* one of config.c's slow_names, as tb_slow_policy_t */
    CONFIG_K_ORIGINS,      /* array of non-empty strings */
    CONFIG_K_ROOMS,        /* array of room patterns (tb_room_pattern_valid) */
    CONFIG_K_HOSTPORTS,    /* array of "host:port" (tb_config_hostport) */
} config_kind_t;

typedef struct {
    const char *key;
    config_kind_t kind;
    size_t off;       /* the value inside its section struct */
    size_t n_off;     /* arrays: their element count */
    long long lo, hi; /* CONFIG_K_INT: the value's range; string kinds: hi is the longest length */
    int def_int;      /* CONFIG_K_INT, CONFIG_K_BOOL and CONFIG_K_SLOW default */
    const char *def_str; /* string kinds default; NULL is unset. Arrays default to empty. */
} config_field_t;

typedef struct {
    const char *name;
    size_t off; /* the section inside tb_config_t */
    const config_field_t *fields;
    size_t n_fields;
} config_section_t;

/* The file's sections and their keys, with rules and defaults: the one place defaults live. */
extern const config_section_t config_sections[];
extern const size_t config_n_sections;

/* A slow_consumer policy's name in the file. */
const char *config_slow_name(tb_slow_policy_t policy);
/* A host name or address: 1..CFG_HOST_MAX (config.c) bytes of visible ASCII. */
bool config_host_valid(const char *s, size_t len);
/* The rules that tie two keys together, on the effective values (after the file and after
 * --listen); the first one broken is the error. */
int config_check_cross(const tb_config_t *cfg, char *err, size_t errlen);

/* config_mqtt.c: fails naming key unless every '{' in tpl starts {hostname} or {port}. */
int config_placeholders_check(const char *tpl, const char *key, char *err, size_t errlen);

typedef bool (*config_str_check_fn)(const char *s);

/* Writes "key: message" (or just the message when key is NULL) into err; returns -1. */
__attribute__((format(printf, 4, 5))) int config_fail(char *err, size_t errlen, const char *key,
                                                      const char *fmt, ...);
/* Fails with "key: must be one of A, B, C". */
int config_fail_one_of(char *err, size_t errlen, const char *key, const char *const *names,
                       size_t n);

/* "parent.key" ("key" at the top level), and "parent[i]", into out. */
void config_key_join(char out[CONFIG_KEY_MAX], const char *parent, const char *key);
void config_key_index(char out[CONFIG_KEY_MAX], const char *parent, size_t i);

/* Index of name in names[0..n), or -1. */
int config_name_index(const char *const *names, size_t n, const char *name);

/* Fails with "parent.name: unknown key" for the first member of obj not in names[0..n). */
int config_known_keys(json_t *obj, const char *parent, const char *const *names, size_t n,
                      char *err, size_t errlen);
/* obj[name] into *v (borrowed), its dotted key into key; absent: an error when required, else
 * *v NULL and 0. */
int config_member(json_t *obj, const char *parent, const char *name, bool required, json_t **v,
                  char key[CONFIG_KEY_MAX], char *err, size_t errlen);

/* A copy of a string of 1..maxlen bytes into *out (caller frees). */
int config_dup_string(json_t *v, const char *key, size_t maxlen, char **out, char *err,
                      size_t errlen);
/* An array of strings each passing ok(), as a NULL-terminated copy in *out (free with
 * config_strv_free()) and its length in *n_out; what names one element in errors. */
int config_strv(json_t *v, const char *key, config_str_check_fn ok, const char *what, char ***out,
                size_t *n_out, char *err, size_t errlen);
/* Frees a NULL-terminated string array; NULL is a no-op. */
void config_strv_free(char **v);

/* tb_config_hostport() accepts s. */
bool config_hostport_valid(const char *s);

/* "*", a device id, or an id prefix with one trailing '*' ("sensor-hum-*"). */
bool config_device_pattern_valid(const char *s);

/* A number as JSON: an integer when it is one (30, not 30.0). NULL when out of memory. */
json_t *config_number_json(double x);
/* v[0..n) as a JSON array of strings. NULL when out of memory. */
json_t *config_strv_json(char *const *v, size_t n);

#endif
