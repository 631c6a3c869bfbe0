/* config_cli — the command-line overrides of the file's listen and MQTT addresses (--listen,
 * --mqtt); see include/telebridge/config.h. */
#include "telebridge/config.h"

#include "config_internal.h"

#include <stdbool.h>
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

/* "HOST:PORT" or "[V6ADDR]:PORT": the host (*h, *hlen bytes, without brackets) and the port.
 * 0, or -1 when hp is not one, or the port is out of range (*range_err then true). */
static int split_hostport(const char *hp, const char **h, size_t *hlen, int *port, bool *range_err)
{
    const char *h_end, *p;
    *range_err = false;
    if (hp[0] == '[') {
        *h = hp + 1;
        h_end = strchr(*h, ']');
        p = (h_end && h_end[1] == ':') ? h_end + 2 : NULL;
    } else {
        *h = hp;
        h_end = strrchr(hp, ':');
        /* A second colon means an IPv6 address without brackets: ambiguous. */
        p = (h_end && !memchr(hp, ':', (size_t)(h_end - hp))) ? h_end + 1 : NULL;
    }
    if (!p || !config_host_valid(*h, (size_t)(h_end - *h)) || parse_port_digits(p, port) != 0)
        return -1;
    *hlen = (size_t)(h_end - *h);
    *range_err = *port < CONFIG_PORT_MIN || *port > CONFIG_PORT_MAX;
    return *range_err ? -1 : 0;
}

int tb_config_hostport(const char *s, char *host, size_t hostlen, int *port)
{
    const char *h;
    size_t n;
    bool range_err;
    if (!s || split_hostport(s, &h, &n, port, &range_err) != 0 || n >= hostlen)
        return -1;
    memcpy(host, h, n);
    host[n] = '\0';
    return 0;
}

bool config_hostport_valid(const char *s)
{
    char host[TB_CONFIG_HOST_MAX + 1];
    int port;
    return tb_config_hostport(s, host, sizeof(host), &port) == 0;
}

/* "HOST:PORT" or "[V6ADDR]:PORT" into *host (without brackets) and *port; flag names errors. */
static int set_hostport(char **host, int *port, const char *flag, const char *hp, char *err,
                        size_t errlen)
{
    const char *h = NULL;
    size_t n = 0;
    bool range_err = false;
    char *copy;
    int num = 0;
    if (!hp)
        return config_fail(err, errlen, flag, "expected HOST:PORT or [IPv6]:PORT");
    if (split_hostport(hp, &h, &n, &num, &range_err) != 0)
        return range_err ? config_fail(err, errlen, flag, "port must be between %d and %d",
                                       CONFIG_PORT_MIN, CONFIG_PORT_MAX)
                         : config_fail(err, errlen, flag,
                                       "expected HOST:PORT or [IPv6]:PORT, got \"%s\"", hp);
    if (!(copy = strndup(h, n)))
        return config_fail(err, errlen, flag, "out of memory");
    free(*host);
    *host = copy;
    *port = num;
    return 0;
}

/* ":PORT" (one colon): the port alone, listen.host kept (the systemd template passes its
 * instance's port). */
static int set_port_only(tb_config_t *next, const char *hostport, char *err, size_t errlen)
{
    int num;
    if (parse_port_digits(hostport + 1, &num) != 0 || num < CONFIG_PORT_MIN ||
        num > CONFIG_PORT_MAX)
        return config_fail(err, errlen, "--listen",
                           "expected :PORT with a port 1-65535, got \"%s\"", hostport);
    if (!(next->listen.host = strdup(next->listen.host)))
        return config_fail(err, errlen, "--listen", "out of memory");
    next->listen.port = num;
    return 0;
}

/* Checked against the rest of the configuration before it replaces anything. */
int tb_config_set_listen(tb_config_t *cfg, const char *hostport, char *err, size_t errlen)
{
    tb_config_t next = *cfg; /* shallow: only next.listen.host is its own */
    int rc;
    if (hostport && hostport[0] == ':' && !strchr(hostport + 1, ':')) {
        rc = set_port_only(&next, hostport, err, errlen);
    } else {
        next.listen.host = NULL;
        rc = set_hostport(&next.listen.host, &next.listen.port, "--listen", hostport, err, errlen);
    }
    if (rc != 0)
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

/* The command line wins over the file: the one broker given replaces mqtt.hosts too. */
int tb_config_set_mqtt(tb_config_t *cfg, const char *hostport, char *err, size_t errlen)
{
    char **none;
    if (set_hostport(&cfg->mqtt.host, &cfg->mqtt.port, "--mqtt", hostport, err, errlen) != 0)
        return -1;
    if (!(none = calloc(1, sizeof(*none))))
        return config_fail(err, errlen, "--mqtt", "out of memory");
    config_strv_free(cfg->mqtt.hosts);
    cfg->mqtt.hosts = none;
    cfg->mqtt.n_hosts = 0;
    return 0;
}
