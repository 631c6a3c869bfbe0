/* config_mqtt — the placeholders {hostname} and {port} of mqtt.client_id and history.file; see
 * include/telebridge/config.h and src/config_internal.h. */
#include "telebridge/config.h"

#include "config_internal.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#ifndef HOST_NAME_MAX
#define HOST_NAME_MAX 255
#endif

/* Indexed by the placeholder's meaning; docs/configuration.md lists them. */
enum { PH_HOSTNAME, PH_PORT, PH_N };
static const char *const placeholders[PH_N] = {"{hostname}", "{port}"};
/* How much of an unknown placeholder an error message quotes. */
#define PH_QUOTE_MAX 32

/* The placeholder s starts with (PH_…), or -1. */
static int placeholder_at(const char *s)
{
    for (int i = 0; i < PH_N; i++)
        if (strncmp(s, placeholders[i], strlen(placeholders[i])) == 0)
            return i;
    return -1;
}

int config_placeholders_check(const char *tpl, const char *key, char *err, size_t errlen)
{
    for (const char *p = strchr(tpl, '{'); p; p = strchr(p + 1, '{')) {
        if (placeholder_at(p) >= 0)
            continue;
        size_t n = strcspn(p, "}");
        n = p[n] == '}' ? n + 1 : n;
        return config_fail(err, errlen, key,
                           "unknown placeholder \"%.*s\" (known: {hostname}, {port})",
                           (int)(n < PH_QUOTE_MAX ? n : PH_QUOTE_MAX), p);
    }
    return 0;
}

/* Appends n bytes of s to out at *used; -1 when that would pass cap - 1 bytes. */
static int append(char *out, size_t cap, size_t *used, const char *s, size_t n)
{
    if (*used + n >= cap)
        return -1;
    memcpy(out + *used, s, n);
    *used += n;
    out[*used] = '\0';
    return 0;
}

/* tpl (the value of key) with its placeholders expanded into out (outlen bytes); 0 or -1. */
static int expand(const tb_config_t *cfg, const char *tpl, const char *key, char *out,
                  size_t outlen, char *err, size_t errlen)
{
    char host[HOST_NAME_MAX + 1] = "";
    char port[sizeof("65535")];
    const char *values[PH_N] = {host, port};
    const char *p = tpl;
    size_t used = 0;
    if (outlen == 0)
        return config_fail(err, errlen, key, "no room");
    out[0] = '\0';
    if (strstr(p, placeholders[PH_HOSTNAME]) && gethostname(host, sizeof(host) - 1) != 0)
        return config_fail(err, errlen, key, "cannot read the host name: %s", strerror(errno));
    snprintf(port, sizeof(port), "%d", cfg->listen.port);
    while (*p) {
        size_t lit = strcspn(p, "{");
        int ph = p[lit] ? placeholder_at(p + lit) : -1;
        size_t take = ph < 0 && p[lit] ? lit + 1 : lit; /* config checked: ph >= 0 at a '{' */
        if (append(out, outlen, &used, p, take) != 0 ||
            (ph >= 0 && append(out, outlen, &used, values[ph], strlen(values[ph])) != 0))
            return config_fail(err, errlen, key, "longer than %zu bytes once expanded", outlen - 1);
        p += take + (ph >= 0 ? strlen(placeholders[ph]) : 0);
    }
    return 0;
}

int tb_config_client_id(const tb_config_t *cfg, char *out, size_t outlen, char *err, size_t errlen)
{
    return expand(cfg, cfg->mqtt.client_id, "mqtt.client_id", out, outlen, err, errlen);
}

int tb_config_history_file(const tb_config_t *cfg, char *out, size_t outlen, char *err,
                           size_t errlen)
{
    if (!cfg->history.file) {
        if (outlen > 0)
            out[0] = '\0';
        return 0;
    }
    return expand(cfg, cfg->history.file, "history.file", out, outlen, err, errlen);
}
