/* config_keys — the error and key helpers every parser of the configuration file shares: messages
 * named by their dotted key, and the common value shapes; see src/config_internal.h. */
#include "config_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "telebridge/util.h"

/* Writes "key: message" (or just the message when key is NULL) into err; returns -1. */
__attribute__((format(printf, 4, 5))) int config_fail(char *err, size_t errlen, const char *key,
                                                      const char *fmt, ...)
{
    size_t used = 0;
    va_list ap;
    if (!err || errlen == 0)
        return -1;
    if (key) {
        int n = snprintf(err, errlen, "%s: ", key);
        used = n < 0 ? 0 : (size_t)n;
        if (used >= errlen)
            return -1;
    }
    va_start(ap, fmt);
    vsnprintf(err + used, errlen - used, fmt, ap);
    va_end(ap);
    return -1;
}

/* Appends s to out[CONFIG_KEY_MAX] at *used; a too-long key is cut, as it only names errors. */
static void key_append(char out[CONFIG_KEY_MAX], size_t *used, const char *s)
{
    size_t n = strnlen(s, CONFIG_KEY_MAX - 1 - *used);
    memcpy(out + *used, s, n);
    *used += n;
    out[*used] = '\0';
}

/* "parent.key", or "key" at the top level. */
void config_key_join(char out[CONFIG_KEY_MAX], const char *parent, const char *key)
{
    size_t used = 0;
    key_append(out, &used, parent);
    key_append(out, &used, parent[0] ? "." : "");
    key_append(out, &used, key);
}

/* "parent[i]". */
void config_key_index(char out[CONFIG_KEY_MAX], const char *parent, size_t i)
{
    char index[sizeof("[]") + 20]; /* 20 digits hold any 64-bit size_t */
    size_t used = 0;
    snprintf(index, sizeof(index), "[%zu]", i);
    key_append(out, &used, parent);
    key_append(out, &used, index);
}

/* Index of name in names[0..n), or -1. */
int config_name_index(const char *const *names, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return (int)i;
    return -1;
}

/* Fails with "key: must be one of A, B, C". */
int config_fail_one_of(char *err, size_t errlen, const char *key, const char *const *names,
                       size_t n)
{
    char list[TB_CONFIG_ERR_LEN] = "";
    size_t used = 0;
    for (size_t i = 0; i < n && used < sizeof(list); i++) {
        int w = snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "", names[i]);
        used += w < 0 ? 0 : (size_t)w;
    }
    return config_fail(err, errlen, key, "must be one of %s", list);
}

void config_strv_free(char **v)
{
    if (!v)
        return;
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
}

/* "*", a device id, or an id prefix with one trailing '*' ("sensor-hum-*"). */
bool config_device_pattern_valid(const char *s)
{
    size_t len = strlen(s);
    if (len == 1 && s[0] == '*')
        return true;
    if (len > 1 && s[len - 1] == '*')
        len--;
    return tb_id_valid(s, len);
}

/* An array of strings each passing ok(), as a NULL-terminated copy; what names one element. */
int config_strv(json_t *v, const char *key, config_str_check_fn ok, const char *what, char ***out,
                size_t *n_out, char *err, size_t errlen)
{
    char elkey[CONFIG_KEY_MAX];
    size_t n, i;
    json_t *el;
    char **arr;
    if (!json_is_array(v))
        return config_fail(err, errlen, key, "must be an array of strings");
    n = json_array_size(v);
    arr = calloc(n + 1, sizeof(*arr));
    if (!arr)
        return config_fail(err, errlen, key, "out of memory");
    json_array_foreach(v, i, el)
    {
        const char *s;
        config_key_index(elkey, key, i);
        if (!json_is_string(el)) {
            config_fail(err, errlen, elkey, "must be a string");
            goto fail;
        }
        s = json_string_value(el);
        if (json_string_length(el) > CONFIG_STR_MAX || !ok(s)) {
            config_fail(err, errlen, elkey, "\"%s\" is not a valid %s", s, what);
            goto fail;
        }
        if (!(arr[i] = strdup(s))) {
            config_fail(err, errlen, elkey, "out of memory");
            goto fail;
        }
    }
    *out = arr;
    *n_out = n;
    return 0;
fail:
    config_strv_free(arr);
    return -1;
}

int config_known_keys(json_t *obj, const char *parent, const char *const *names, size_t n,
                      char *err, size_t errlen)
{
    const char *name;
    json_t *v;
    json_object_foreach(obj, name, v)
    {
        char key[CONFIG_KEY_MAX];
        if (config_name_index(names, n, name) >= 0)
            continue;
        config_key_join(key, parent, name);
        return config_fail(err, errlen, key, "unknown key");
    }
    return 0;
}

/* obj[name] into *v, its dotted key into key; absent: an error when required, else *v NULL. */
int config_member(json_t *obj, const char *parent, const char *name, bool required, json_t **v,
                  char key[CONFIG_KEY_MAX], char *err, size_t errlen)
{
    config_key_join(key, parent, name);
    *v = json_object_get(obj, name);
    if (!*v && required)
        return config_fail(err, errlen, key, "is required");
    return 0;
}
