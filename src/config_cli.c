/* config_cli — the command-line overrides of the file's listen and MQTT addresses (--listen,
 * --mqtt); see include/telebridge/config.h. */
#include "telebridge/config.h"

#include "config_internal.h"

#include <stdlib.h>
#include <string.h>

#define PORT_DIGITS_MAX 5

/* Digits only, without sign or spaces; -1 when s is not a number of at most 5 digits. */
static int parse_port_digits(const char *s, int *out)
{
    size_t n = strlen(s);
    int v = 0;
    if (n == 0 || n > PORT_DIGITS_MAX)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* "HOST:PORT" or "[V6ADDR]:PORT" into *host (without brackets) and *port; flag names errors. */
static int set_hostport(char **host, int *port, const char *flag, const char *hp, char *err,
                        size_t errlen)
{
    const char *h = hp, *h_end, *p;
    char *copy;
    int num;
    if (!hp)
        return config_fail(err, errlen, flag, "expected HOST:PORT or [IPv6]:PORT");
    if (hp[0] == '[') {
        h = hp + 1;
        h_end = strchr(h, ']');
        p = (h_end && h_end[1] == ':') ? h_end + 2 : NULL;
    } else {
        h_end = strrchr(hp, ':');
        /* A second colon means an IPv6 address without brackets: ambiguous. */
        p = (h_end && !memchr(hp, ':', (size_t)(h_end - hp))) ? h_end + 1 : NULL;
    }
    if (!p || !config_host_valid(h, (size_t)(h_end - h)) || parse_port_digits(p, &num) != 0)
        return config_fail(err, errlen, flag, "expected HOST:PORT or [IPv6]:PORT, got \"%s\"", hp);
    if (num < CONFIG_PORT_MIN || num > CONFIG_PORT_MAX)
        return config_fail(err, errlen, flag, "port must be between %d and %d", CONFIG_PORT_MIN,
                           CONFIG_PORT_MAX);
    if (!(copy = strndup(h, (size_t)(h_end - h))))
        return config_fail(err, errlen, flag, "out of memory");
    free(*host);
    *host = copy;
    *port = num;
    return 0;
}

/* Checked against the rest of the configuration before it replaces anything. */
int tb_config_set_listen(tb_config_t *cfg, const char *hostport, char *err, size_t errlen)
{
    tb_config_t next = *cfg; /* shallow: only next.listen.host is its own */
    next.listen.host = NULL;
    if (set_hostport(&next.listen.host, &next.listen.port, "--listen", hostport, err, errlen) != 0)
        return -1;
    if (config_check_cross(&next, err, errlen) != 0) {
        free(next.listen.host);
        return -1;
    }
    free(cfg->listen.host);
    cfg->listen.host = next.listen.host;
    cfg->listen.port = next.listen.port;
    return 0;
}

int tb_config_set_mqtt(tb_config_t *cfg, const char *hostport, char *err, size_t errlen)
{
    return set_hostport(&cfg->mqtt.host, &cfg->mqtt.port, "--mqtt", hostport, err, errlen);
}
