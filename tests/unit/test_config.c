/* Unit tests for config: defaults, strict loading, path resolution, CLI overrides, to_json. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "telebridge/alerts.h"
#include "telebridge/config.h"

#define SECRET_ENV "TELEBRIDGE_JWT_SECRET"
#define PATH_LEN 4096

/* The defaults of docs/configuration.md → Keys and defaults, groups and alerts empty, plus
 * log_level and web_root. */
static const char *const documented_defaults =
    "{\"listen\": {\"host\": \"127.0.0.1\", \"port\": 8080, \"allowed_origins\": [],"
    "  \"web_root\": \"" TB_WEB_ROOT_DEFAULT "\", \"reuse_port\": false},"
    " \"admin\": {\"host\": \"127.0.0.1\", \"port\": 0},"
    " \"mqtt\": {\"host\": \"127.0.0.1\", \"port\": 1883, \"hosts\": [],"
    "  \"client_id\": \"telebridge\","
    "  \"username\": null, \"password_file\": null, \"keepalive_s\": 30, \"qos\": 1,"
    "  \"telemetry_topic\": \"devices/{device}/telemetry\","
    "  \"status_topic\": \"devices/{device}/status\"},"
    " \"auth\": {\"algorithm\": \"HS256\", \"secret_file\": null, \"public_key_file\": null,"
    "  \"issuer\": null, \"audience\": null, \"leeway_s\": 30, \"default_rooms\": [],"
    "  \"expiry_warning_s\": 60, \"ticket_ttl_s\": 30, \"ticket_secret_file\": null},"
    " \"groups\": {},"
    " \"limits\": {\"max_connections\": 10000, \"max_message_bytes\": 8192,"
    "  \"max_rooms_per_connection\": 64, \"send_queue_messages\": 256,"
    "  \"slow_consumer\": \"disconnect\", \"max_mqtt_payload_bytes\": 65536,"
    "  \"client_messages_per_s\": 200, \"handshakes_per_ip_per_s\": 0, \"handshake_burst\": 0,"
    "  \"handshake_timeout_s\": 10},"
    " \"heartbeat\": {\"ping_interval_s\": 30, \"pong_timeout_s\": 60},"
    " \"compression\": {\"enabled\": true, \"level\": 1, \"min_bytes\": 128},"
    " \"history\": {\"messages\": 65536, \"devices\": 100000, \"series_points\": 60,"
    "  \"file\": null},"
    " \"alerts\": [],"
    " \"log_level\": \"info\"}";

/* Every key set, none to its default. */
static const char *const full_config =
    "{\"listen\": {\"host\": \"::1\", \"port\": 9000,"
    "  \"allowed_origins\": [\"https://a.example\", \"http://localhost:3000\"],"
    "  \"web_root\": \"/srv/dashboard\", \"reuse_port\": true},"
    " \"admin\": {\"host\": \"10.0.0.5\", \"port\": 9100},"
    " \"mqtt\": {\"host\": \"broker.local\", \"port\": 8883,"
    "  \"hosts\": [\"n1.example:1883\", \"[::1]:1884\", \"10.0.0.3:65535\"],"
    "  \"client_id\": \"tb-1\","
    "  \"username\": \"bridge\", \"password_file\": \"/run/secrets/mqtt\", \"keepalive_s\": 45,"
    "  \"qos\": 2, \"telemetry_topic\": \"site/{group}/{device}/t\","
    "  \"status_topic\": \"site/{device}/s\"},"
    " \"auth\": {\"algorithm\": \"ES256\", \"secret_file\": null,"
    "  \"public_key_file\": \"/etc/tb/pub.pem\", \"issuer\": \"https://issuer.example\","
    "  \"audience\": \"telebridge\", \"leeway_s\": 5,"
    "  \"default_rooms\": [\"global\", \"device:sensor-*\"], \"expiry_warning_s\": 0,"
    "  \"ticket_ttl_s\": 10, \"ticket_secret_file\": \"/etc/tb/ticket.key\"},"
    " \"groups\": {\"building-a\": [\"sensor-temp-001\", \"sensor-hum-*\"], \"all\": [\"*\"]},"
    " \"limits\": {\"max_connections\": 5, \"max_message_bytes\": 64,"
    "  \"max_rooms_per_connection\": 3, \"send_queue_messages\": 65536,"
    "  \"slow_consumer\": \"drop_oldest\", \"max_mqtt_payload_bytes\": 16777216,"
    "  \"client_messages_per_s\": 7, \"handshakes_per_ip_per_s\": 4, \"handshake_burst\": 9,"
    "  \"handshake_timeout_s\": 3},"
    " \"heartbeat\": {\"ping_interval_s\": 10, \"pong_timeout_s\": 25},"
    " \"compression\": {\"enabled\": false, \"level\": 9, \"min_bytes\": 0},"
    " \"history\": {\"messages\": 0, \"devices\": 5, \"series_points\": 7,"
    "  \"file\": \"/var/lib/telebridge/history\"},"
    " \"alerts\": [{\"name\": \"high-temp\", \"field\": \"temperature\", \"op\": \">\","
    "   \"threshold\": 30.5, \"clear_below\": 29, \"severity\": \"critical\","
    "   \"devices\": [\"sensor-*\", \"x\"]},"
    "  {\"name\": \"low-batt\", \"field\": \"battery\", \"op\": \"<=\", \"threshold\": 10,"
    "   \"clear_above\": 15, \"severity\": \"warning\", \"devices\": [\"*\"]}]}";

static json_t *parse(const char *text)
{
    json_error_t jerr;
    json_t *j = json_loads(text, 0, &jerr);
    if (!j)
        fail_msg("test JSON does not parse: %s", jerr.text);
    return j;
}

/* to_json of cfg without log_level, to compare with a file's content. */
static json_t *file_shape(const tb_config_t *cfg)
{
    json_t *j = tb_config_to_json(cfg);
    assert_non_null(j);
    assert_int_equal(json_object_del(j, "log_level"), 0);
    return j;
}

static void assert_json_equal(json_t *got, json_t *want)
{
    if (!json_equal(got, want)) {
        char *g = json_dumps(got, JSON_SORT_KEYS);
        char *w = json_dumps(want, JSON_SORT_KEYS);
        print_error("got:  %s\nwant: %s\n", g, w);
        free(g);
        free(w);
        fail();
    }
}

static void test_defaults(void **state)
{
    tb_config_t cfg;
    (void)state;
    assert_int_equal(tb_config_defaults(&cfg), 0);
    assert_string_equal(cfg.listen.host, "127.0.0.1");
    assert_int_equal(cfg.listen.port, 8080);
    assert_int_equal(cfg.listen.n_allowed_origins, 0);
    assert_non_null(cfg.listen.allowed_origins);
    assert_null(cfg.listen.allowed_origins[0]);
    assert_string_equal(cfg.listen.web_root, TB_WEB_ROOT_DEFAULT);
    assert_false(cfg.listen.reuse_port);
    assert_string_equal(cfg.mqtt.client_id, "telebridge");
    assert_null(cfg.mqtt.username);
    assert_null(cfg.mqtt.password_file);
    assert_int_equal(cfg.mqtt.keepalive_s, 30);
    assert_int_equal(cfg.mqtt.qos, 1);
    assert_string_equal(cfg.mqtt.telemetry_topic, "devices/{device}/telemetry");
    assert_string_equal(cfg.auth.algorithm, "HS256");
    assert_null(cfg.auth.secret_file);
    assert_int_equal(cfg.auth.n_default_rooms, 0);
    assert_int_equal(cfg.limits.slow_consumer, TB_SLOW_DISCONNECT);
    assert_int_equal(cfg.limits.max_message_bytes, 8192);
    assert_int_equal(cfg.heartbeat.pong_timeout_s, 60);
    assert_true(cfg.compression.enabled);
    assert_int_equal(cfg.history.devices, 100000);
    assert_int_equal(cfg.history.series_points, 60);
    assert_null(cfg.history.file);
    assert_int_equal(cfg.n_groups, 0);
    assert_int_equal(cfg.n_alerts, 0);
    assert_int_equal(cfg.log_level, TB_LOG_INFO);
    assert_null(cfg.path);
    tb_config_free(&cfg);
}

/* Every key's default, through to_json, against the documented ones. */
static void test_defaults_match_the_docs(void **state)
{
    tb_config_t cfg;
    json_t *want = parse(documented_defaults);
    json_t *got;
    (void)state;
    unsetenv(SECRET_ENV);
    assert_int_equal(tb_config_defaults(&cfg), 0);
    got = tb_config_to_json(&cfg);
    assert_non_null(got);
    assert_json_equal(got, want);
    json_decref(got);
    json_decref(want);
    tb_config_free(&cfg);
}

static void test_full_round_trip(void **state)
{
    char err[TB_CONFIG_ERR_LEN] = "";
    tb_config_t cfg;
    json_t *want = parse(full_config);
    json_t *got;
    (void)state;
    unsetenv(SECRET_ENV);
    assert_int_equal(tb_config_defaults(&cfg), 0);
    if (tb_config_apply_json(&cfg, full_config, NULL, err, sizeof(err)) != 0)
        fail_msg("apply failed: %s", err);
    assert_int_equal(cfg.limits.slow_consumer, TB_SLOW_DROP_OLDEST);
    assert_int_equal(cfg.n_groups, 2);
    assert_string_equal(cfg.groups[1].name, "all");
    assert_int_equal(cfg.n_alerts, 2);
    assert_int_equal(cfg.alerts[1].op, TB_OP_LE);
    assert_true(cfg.alerts[0].has_clear_below);
    assert_false(cfg.alerts[0].has_clear_above);
    assert_true(cfg.alerts[0].threshold == 30.5);
    assert_true(cfg.alerts[1].clear_above == 15.0);
    assert_string_equal(cfg.auth.default_rooms[1], "device:sensor-*");
    assert_null(cfg.auth.default_rooms[2]);
    got = file_shape(&cfg);
    assert_json_equal(got, want);
    json_decref(got);
    json_decref(want);
    tb_config_free(&cfg);
}

static void test_alert_optional_defaults(void **state)
{
    char err[TB_CONFIG_ERR_LEN] = "";
    tb_config_t cfg;
    (void)state;
    assert_int_equal(tb_config_defaults(&cfg), 0);
    assert_int_equal(tb_config_apply_json(&cfg,
                                          "{\"alerts\": [{\"name\": \"a\", \"field\": \"t\","
                                          " \"op\": \"!=\", \"threshold\": -1}]}",
                                          NULL, err, sizeof(err)),
                     0);
    assert_int_equal(cfg.n_alerts, 1);
    assert_int_equal(cfg.alerts[0].op, TB_OP_NE);
    assert_string_equal(cfg.alerts[0].severity, "warning");
    assert_int_equal(cfg.alerts[0].n_devices, 1);
    assert_string_equal(cfg.alerts[0].devices[0], "*");
    assert_null(cfg.alerts[0].devices[1]);
    assert_false(cfg.alerts[0].has_clear_below);
    assert_false(cfg.alerts[0].has_clear_above);
    tb_config_free(&cfg);
}

typedef struct {
    const char *json;
    const char *expect; /* must appear in the error message */
} bad_case_t;

static const bad_case_t bad_cases[] = {
    {"{\"listen\": {\"reuse_port\": 1}}", "listen.reuse_port: must be true or false"},
    {"{\"auth\": {\"ticket_secret_file\": 1}}",
     "auth.ticket_secret_file: must be a string or null"},
    {"{\"mqtt\": {\"hosts\": \"a:1\"}}", "mqtt.hosts: must be an array of strings"},
    {"{\"mqtt\": {\"hosts\": [\"a:1\", \"b\"]}}", "mqtt.hosts[1]: \"b\" is not a valid host:port"},
    {"{\"mqtt\": {\"hosts\": [\"a:0\"]}}", "mqtt.hosts[0]: \"a:0\" is not a valid host:port"},
    {"{\"mqtt\": {\"hosts\": [\"a:65536\"]}}", "mqtt.hosts[0]: \"a:65536\" is not a valid"},
    {"{\"mqtt\": {\"hosts\": [\"::1:1883\"]}}", "mqtt.hosts[0]: \"::1:1883\" is not a valid"},
    {"{\"mqtt\": {\"hosts\": [\":1883\"]}}", "mqtt.hosts[0]: \":1883\" is not a valid"},
    {"{\"mqtt\": {\"hosts\": [\"a:18x3\"]}}", "mqtt.hosts[0]: \"a:18x3\" is not a valid"},
    {"{\"mqtt\": {\"client_id\": \"tb-{host}\"}}",
     "mqtt.client_id: unknown placeholder \"{host}\" (known: {hostname}, {port})"},
    {"{\"mqtt\": {\"client_id\": \"tb-{port\"}}", "mqtt.client_id: unknown placeholder \"{port\""},
    {"{\"history\": {\"file\": \"/tmp/h-{instance}\"}}",
     "history.file: unknown placeholder \"{instance}\" (known: {hostname}, {port})"},
    {"{\"lisen\": {}}", "lisen: unknown key"},
    {"{\"limits\": {\"max_conections\": 1}}", "limits.max_conections: unknown key"},
    {"{\"listen\": 8080}", "listen: must be an object"},
    {"{\"mqtt\": {\"port\": \"1883\"}}", "mqtt.port: must be an integer"},
    {"{\"mqtt\": {\"port\": 1883.0}}", "mqtt.port: must be an integer"},
    {"{\"mqtt\": {\"qos\": true}}", "mqtt.qos: must be an integer"},
    {"{\"listen\": {\"port\": 0}}", "listen.port: must be between 1 and 65535"},
    {"{\"admin\": {\"port\": -1}}", "admin.port: must be between 0 and 65535"},
    {"{\"admin\": {\"port\": 65536}}", "admin.port: must be between 0 and 65535"},
    {"{\"admin\": {\"host\": \"\"}}", "admin.host: must not be empty"},
    {"{\"admin\": {\"token\": \"x\"}}", "admin.token: unknown key"},
    {"{\"admin\": {\"port\": 8080}}", "admin.port: must differ from listen.port (8080)"},
    {"{\"listen\": {\"port\": 9100}, \"admin\": {\"port\": 9100}}", "admin.port: must differ"},
    {"{\"mqtt\": {\"port\": 65536}}", "mqtt.port: must be between 1 and 65535"},
    {"{\"mqtt\": {\"qos\": 3}}", "mqtt.qos: must be between 0 and 2"},
    {"{\"mqtt\": {\"keepalive_s\": 4}}", "mqtt.keepalive_s: must be between 5 and 65535"},
    {"{\"mqtt\": {\"keepalive_s\": 0}}", "mqtt.keepalive_s: must be between 5 and 65535"},
    {"{\"mqtt\": {\"client_id\": \"\"}}", "mqtt.client_id: must not be empty"},
    {"{\"mqtt\": {\"port\": 0}}", "mqtt.port: must be between 1 and 65535"},
    {"{\"mqtt\": {\"host\": \"\"}}", "mqtt.host: must not be empty"},
    {"{\"listen\": {\"host\": \"my host\"}}", "listen.host: must be a host name or address"},
    {"{\"listen\": {\"host\": null}}", "listen.host: must be a string"},
    {"{\"mqtt\": {\"client_id\": \"\"}}", "mqtt.client_id: must not be empty"},
    {"{\"mqtt\": {\"username\": 5}}", "mqtt.username: must be a string or null"},
    {"{\"mqtt\": {\"password_file\": \"\"}}", "mqtt.password_file: must not be empty"},
    {"{\"mqtt\": {\"telemetry_topic\": \"devices/telemetry\"}}", "mqtt.telemetry_topic: "},
    {"{\"mqtt\": {\"status_topic\": \"devices/x{device}/status\"}}", "mqtt.status_topic: "},
    {"{\"mqtt\": {\"status_topic\": \"devices/+/{device}\"}}", "mqtt.status_topic: "},
    {"{\"auth\": {\"algorithm\": \"none\"}}",
     "auth.algorithm: must be one of HS256, HS384, HS512, RS256, ES256"},
    {"{\"auth\": {\"algorithm\": \"hs256\"}}", "auth.algorithm: must be one of"},
    {"{\"auth\": {\"leeway_s\": 3601}}", "auth.leeway_s: must be between 0 and 3600"},
    {"{\"auth\": {\"expiry_warning_s\": -1}}", "auth.expiry_warning_s: must be >= 0"},
    {"{\"auth\": {\"ticket_ttl_s\": 0}}", "auth.ticket_ttl_s: must be between 1 and 3600"},
    {"{\"auth\": {\"issuer\": \"\"}}", "auth.issuer: must not be empty"},
    {"{\"auth\": {\"audience\": []}}", "auth.audience: must be a string or null"},
    {"{\"auth\": {\"default_rooms\": \"global\"}}", "auth.default_rooms: must be an array"},
    {"{\"auth\": {\"default_rooms\": [\"global\", 3]}}", "auth.default_rooms[1]: must be a string"},
    {"{\"auth\": {\"default_rooms\": [\"global\", \"room:x\"]}}",
     "auth.default_rooms[1]: \"room:x\" is not a valid room pattern"},
    {"{\"listen\": {\"allowed_origins\": [\"\"]}}", "listen.allowed_origins[0]: "},
    {"{\"groups\": []}", "groups: must be an object"},
    {"{\"groups\": {\"bad name\": [\"a\"]}}", "groups.bad name: not a valid group name"},
    {"{\"groups\": {\"g\": \"a\"}}", "groups.g: must be an array"},
    {"{\"groups\": {\"g\": [\"ok\", \"a*b\"]}}", "groups.g[1]: \"a*b\" is not a valid device"},
    {"{\"groups\": {\"g\": [\"**\"]}}", "groups.g[0]: "},
    {"{\"groups\": {\"g\": [\"a:b\"]}}", "groups.g[0]: "},
    {"{\"groups\": {\"g\": [\"\"]}}", "groups.g[0]: "},
    {"{\"limits\": {\"slow_consumer\": \"block\"}}",
     "limits.slow_consumer: must be one of disconnect, drop_oldest, conflate"},
    {"{\"limits\": {\"max_connections\": 0}}", "limits.max_connections: must be >= 1"},
    {"{\"limits\": {\"handshake_burst\": -1}}", "limits.handshake_burst: must be >= 0"},
    {"{\"limits\": {\"handshake_timeout_s\": 0}}",
     "limits.handshake_timeout_s: must be between 1 and 3600"},
    {"{\"limits\": {\"handshakes_per_ip_per_s\": -1}}", "limits.handshakes_per_ip_per_s: "},
    {"{\"limits\": {\"client_messages_per_s\": 0}}", "limits.client_messages_per_s: "},
    {"{\"limits\": {\"max_message_bytes\": 63}}", "limits.max_message_bytes: must be between 64"},
    {"{\"limits\": {\"send_queue_messages\": 65537}}", "limits.send_queue_messages: "},
    {"{\"limits\": {\"max_mqtt_payload_bytes\": 16777217}}", "limits.max_mqtt_payload_bytes: "},
    {"{\"limits\": {\"max_connections\": 4294967296}}",
     "limits.max_connections: must be between 1 and 2147483647"},
    {"{\"heartbeat\": {\"ping_interval_s\": 0}}", "heartbeat.ping_interval_s: "},
    {"{\"compression\": {\"enabled\": 1}}", "compression.enabled: must be true or false"},
    {"{\"compression\": {\"level\": 0}}", "compression.level: must be between"},
    {"{\"heartbeat\": {\"pong_timeout_s\": 7201}}", "heartbeat.pong_timeout_s: must be between"},
    {"{\"heartbeat\": {\"ping_interval_s\": 20, \"pong_timeout_s\": 20}}",
     "heartbeat.pong_timeout_s: must be greater than heartbeat.ping_interval_s"},
    {"{\"heartbeat\": {\"ping_interval_s\": 61}}", "heartbeat.pong_timeout_s: must be greater"},
    {"{\"history\": {\"messages\": -1}}", "history.messages: must be between 0 and 16777216"},
    {"{\"history\": {\"file\": 7}}", "history.file"},
    {"{\"history\": {\"devices\": 10000001}}", "history.devices: must be between 0 and 10000000"},
    {"{\"history\": {\"series_points\": 1001}}",
     "history.series_points: must be between 0 and 1000"},
    {"{\"alerts\": {}}", "alerts: must be an array"},
    {"{\"alerts\": [5]}", "alerts[0]: must be an object"},
    {"{\"alerts\": [{\"name\": \"a\", \"op\": \">\", \"threshold\": 1}]}",
     "alerts[0].field: is required"},
    {"{\"alerts\": [{\"field\": \"t\", \"op\": \">\", \"threshold\": 1}]}",
     "alerts[0].name: is required"},
    {"{\"alerts\": [{\"name\": \"a\", \"field\": \"t\", \"threshold\": 1}]}",
     "alerts[0].op: is required"},
    {"{\"alerts\": [{\"name\": \"a\", \"field\": \"t\", \"op\": \">\"}]}",
     "alerts[0].threshold: is required"},
    {"{\"alerts\": [{\"name\": \"a\", \"field\": \"t\", \"op\": \"=>\", \"threshold\": 1}]}",
     "alerts[0].op: must be one of >, >=, <, <=, ==, !="},
    {"{\"alerts\": [{\"name\": \"a\", \"field\": \"t\", \"op\": \">\", \"threshold\": \"1\"}]}",
     "alerts[0].threshold: must be a number"},
    {"{\"alerts\": [{\"name\": \"a\", \"field\": \"t\", \"op\": \">\", \"threshold\": 1,"
     " \"foo\": 1}]}",
     "alerts[0].foo: unknown key"},
    {"{\"alerts\": [{\"name\": \"a\", \"field\": \"t\", \"op\": \">\", \"threshold\": 1},"
     " {\"name\": \"a\", \"field\": \"u\", \"op\": \"<\", \"threshold\": 1}]}",
     "alerts[1].name: duplicate alert name \"a\""},
    {"{\"alerts\": [{\"name\": \"a\", \"field\": \"t\", \"op\": \">\", \"threshold\": 1,"
     " \"devices\": [\"bad id\"]}]}",
     "alerts[0].devices[0]: "},
    {"{\"alerts\": [{\"name\": \"a\", \"field\": \"t\", \"op\": \">\", \"threshold\": 1,"
     " \"devices\": []}]}",
     "alerts[0].devices: must not be empty"},
    {"{\"alerts\": [{\"name\": \"a\", \"field\": \"t\", \"op\": \">\", \"threshold\": 1,"
     " \"clear_below\": 2}]}",
     "alerts[0].clear_below: must be <= threshold"},
    {"{\"alerts\": [{\"name\": \"a\", \"field\": \"t\", \"op\": \">\", \"threshold\": 1,"
     " \"clear_above\": 2}]}",
     "alerts[0].clear_above: only applies to op < and <="},
    {"{\"alerts\": [{\"name\": \"a\", \"field\": \"t\", \"op\": \"<\", \"threshold\": 1,"
     " \"clear_above\": 0}]}",
     "alerts[0].clear_above: must be >= threshold"},
    {"{\"alerts\": [{\"name\": \"a\", \"field\": \"t\", \"op\": \"==\", \"threshold\": 1,"
     " \"clear_below\": 0}]}",
     "alerts[0].clear_below: only applies to op > and >="},
    {"{\"alerts\": [{\"name\": \"a\", \"field\": \"t\", \"op\": \">\", \"threshold\": 1,"
     " \"severity\": \"\"}]}",
     "alerts[0].severity: must not be empty"},
    {"{\"mqtt\": {\"port\": 1, \"port\": 2}}", "duplicate object key near '\"port\"'"},
    {"{\"mqtt\": {\"port\": }", "line 1, column 19: "},
    {"{\n  \"listen\": {\n    \"port\": 80,,\n  }\n}", "line 3, column"},
    {"", "line 1, column"},
    {"[]", "the top level must be a JSON object"},
    {"{} {}", "line 1, column"},
};

static void test_bad_values(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        char err[TB_CONFIG_ERR_LEN] = "";
        tb_config_t cfg;
        int rc;
        assert_int_equal(tb_config_defaults(&cfg), 0);
        rc = tb_config_apply_json(&cfg, bad_cases[i].json, "/etc/tb", err, sizeof(err));
        tb_config_free(&cfg);
        if (rc != -1 || !strstr(err, bad_cases[i].expect))
            fail_msg("case %zu %s: rc %d, error \"%s\", expected \"%s\"", i, bad_cases[i].json, rc,
                     err, bad_cases[i].expect);
    }
}

/* Writes "{"<section>": {"<key>": "<n times c>"}}" into buf. */
static void long_string_config(char *buf, size_t buflen, const char *section, const char *key,
                               size_t n)
{
    int used = snprintf(buf, buflen, "{\"%s\": {\"%s\": \"", section, key);
    assert_true(used > 0 && (size_t)used + n + 4 < buflen);
    memset(buf + used, 'a', n);
    strcpy(buf + used + n, "\"}}");
}

static void test_string_lengths(void **state)
{
    static char text[2 * PATH_LEN];
    char err[TB_CONFIG_ERR_LEN] = "";
    tb_config_t cfg;
    (void)state;
    assert_int_equal(tb_config_defaults(&cfg), 0);
    long_string_config(text, sizeof(text), "mqtt", "client_id", 256);
    assert_int_equal(tb_config_apply_json(&cfg, text, NULL, err, sizeof(err)), 0);
    assert_int_equal(strlen(cfg.mqtt.client_id), 256);
    long_string_config(text, sizeof(text), "mqtt", "client_id", 257);
    assert_int_equal(tb_config_apply_json(&cfg, text, NULL, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "mqtt.client_id: must be at most 256 bytes"));
    long_string_config(text, sizeof(text), "listen", "host", 256);
    assert_int_equal(tb_config_apply_json(&cfg, text, NULL, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "listen.host: must be at most 255 bytes"));
    /* 4090 bytes fit alone but not after "/etc/tb/". */
    long_string_config(text, sizeof(text), "auth", "secret_file", 4090);
    assert_int_equal(tb_config_apply_json(&cfg, text, NULL, err, sizeof(err)), 0);
    assert_int_equal(tb_config_apply_json(&cfg, text, "/etc/tb", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "auth.secret_file: path longer than 4096 bytes"));
    /* An unknown key too long for the message is cut, not overflowed. */
    strcpy(text, "{\"limits\": {\"");
    memset(text + strlen(text), 'k', 300);
    strcpy(text + strlen("{\"limits\": {\"") + 300, "\": 1}}");
    assert_int_equal(tb_config_apply_json(&cfg, text, NULL, err, sizeof(err)), -1);
    assert_int_equal(strncmp(err, "limits.kkkk", 11), 0);
    assert_true(strlen(err) < TB_CONFIG_ERR_LEN);
    tb_config_free(&cfg);
}

/* A later apply replaces earlier strings, arrays, groups and alerts (ASan checks the frees). */
static void test_apply_over_existing(void **state)
{
    char err[TB_CONFIG_ERR_LEN] = "";
    tb_config_t cfg;
    (void)state;
    assert_int_equal(tb_config_defaults(&cfg), 0);
    assert_int_equal(tb_config_apply_json(&cfg, full_config, NULL, err, sizeof(err)), 0);
    assert_int_equal(tb_config_apply_json(&cfg,
                                          "{\"mqtt\": {\"username\": null, \"host\": \"h2\"},"
                                          " \"auth\": {\"default_rooms\": [\"*\"]},"
                                          " \"groups\": {\"g2\": []}, \"alerts\": []}",
                                          NULL, err, sizeof(err)),
                     0);
    assert_null(cfg.mqtt.username);
    assert_string_equal(cfg.mqtt.host, "h2");
    assert_int_equal(cfg.mqtt.port, 8883); /* untouched keys keep the earlier value */
    assert_int_equal(cfg.auth.n_default_rooms, 1);
    assert_string_equal(cfg.auth.default_rooms[0], "*");
    assert_int_equal(cfg.n_groups, 1);
    assert_string_equal(cfg.groups[0].name, "g2");
    assert_int_equal(cfg.groups[0].n_patterns, 0);
    assert_int_equal(cfg.n_alerts, 0);
    assert_null(cfg.alerts);
    /* A failed apply keeps the earlier groups and leaves a freeable config. */
    assert_int_equal(tb_config_apply_json(&cfg, "{\"groups\": {\"ok\": [\"a\"], \"x\": [1]}}", NULL,
                                          err, sizeof(err)),
                     -1);
    assert_string_equal(cfg.groups[0].name, "g2");
    tb_config_free(&cfg);
    tb_config_free(&cfg); /* free zeroes: a second call is harmless */
}

/* Freeing a loaded config leaves every byte zero (so a second free, or reading a field after
 * it, sees NULL and 0), whatever sections, groups and alerts it held. */
static void test_free_zeroes_everything(void **state)
{
    char err[TB_CONFIG_ERR_LEN] = "";
    static const tb_config_t zero;
    tb_config_t cfg;
    (void)state;
    assert_int_equal(tb_config_defaults(&cfg), 0);
    assert_int_equal(
        tb_config_apply_json(&cfg,
                             "{\"groups\": {\"g\": [\"a*\"]}, \"auth\":"
                             " {\"default_rooms\": [\"global\"]}, \"alerts\": [{\"name\":"
                             " \"hot\", \"field\": \"t\", \"op\": \">\", \"threshold\": 1}]}",
                             "/etc/tb", err, sizeof(err)),
        0);
    assert_non_null(cfg.listen.host);
    assert_int_equal(cfg.n_groups, 1);
    assert_int_equal(cfg.n_alerts, 1);
    tb_config_free(&cfg);
    assert_memory_equal(&cfg, &zero, sizeof(cfg));
}

static void test_relative_paths(void **state)
{
    char err[TB_CONFIG_ERR_LEN] = "";
    const char *text = "{\"auth\": {\"secret_file\": \"secret.key\","
                       " \"public_key_file\": \"/abs/pub.pem\"},"
                       " \"mqtt\": {\"password_file\": \"../pw/mqtt\"},"
                       " \"history\": {\"file\": \"state/history\"}}";
    tb_config_t cfg;
    (void)state;
    assert_int_equal(tb_config_defaults(&cfg), 0);
    assert_int_equal(tb_config_apply_json(&cfg, text, "/etc/tb", err, sizeof(err)), 0);
    assert_string_equal(cfg.auth.secret_file, "/etc/tb/secret.key");
    assert_string_equal(cfg.auth.public_key_file, "/abs/pub.pem");
    assert_string_equal(cfg.mqtt.password_file, "/etc/tb/../pw/mqtt");
    assert_string_equal(cfg.history.file, "/etc/tb/state/history");
    assert_int_equal(tb_config_apply_json(&cfg, text, "/etc/tb/", err, sizeof(err)), 0);
    assert_string_equal(cfg.auth.secret_file, "/etc/tb/secret.key");
    assert_int_equal(tb_config_apply_json(&cfg, text, "conf", err, sizeof(err)), 0);
    assert_string_equal(cfg.auth.secret_file, "conf/secret.key");
    assert_int_equal(tb_config_apply_json(&cfg, text, NULL, err, sizeof(err)), 0);
    assert_string_equal(cfg.auth.secret_file, "secret.key");
    assert_string_equal(cfg.mqtt.password_file, "../pw/mqtt");
    assert_int_equal(
        tb_config_apply_json(&cfg, "{\"auth\": {\"secret_file\": null}}", NULL, err, sizeof(err)),
        0);
    assert_null(cfg.auth.secret_file);
    tb_config_free(&cfg);
}

typedef struct {
    char dir[64];
    char file[PATH_LEN];
} tmp_t;

static void tmp_write(tmp_t *t, const char *content, size_t len)
{
    FILE *f;
    strcpy(t->dir, "/tmp/tb-config-test-XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    snprintf(t->file, sizeof(t->file), "%s/telebridge.json", t->dir);
    f = fopen(t->file, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(content, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void tmp_remove(const tmp_t *t)
{
    unlink(t->file);
    rmdir(t->dir);
}

static void test_load_file(void **state)
{
    const char *text = "{\"auth\": {\"secret_file\": \"secret.key\"}}";
    char err[TB_CONFIG_ERR_LEN] = "";
    char want[PATH_LEN];
    tmp_t t;
    tb_config_t cfg;
    (void)state;
    tmp_write(&t, text, strlen(text));
    assert_int_equal(tb_config_defaults(&cfg), 0);
    if (tb_config_load_file(&cfg, t.file, err, sizeof(err)) != 0)
        fail_msg("load failed: %s", err);
    assert_string_equal(cfg.path, t.file);
    snprintf(want, sizeof(want), "%s/secret.key", t.dir);
    assert_string_equal(cfg.auth.secret_file, want);
    tb_config_free(&cfg);
    tmp_remove(&t);
}

static void test_load_file_errors(void **state)
{
    static char big[1024 * 1024 + 1];
    const char *bad_qos = "{\n\"mqtt\": {\"qos\": 7}\n}";
    const char *bad_syntax = "{\n\"mqtt\": {\"qos\": 1,}\n}";
    char err[TB_CONFIG_ERR_LEN] = "";
    tmp_t t;
    tb_config_t cfg;
    (void)state;
    assert_int_equal(tb_config_defaults(&cfg), 0);
    assert_int_equal(tb_config_load_file(&cfg, "/nonexistent/tb.json", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "/nonexistent/tb.json: No such file or directory"));

    memset(big, ' ', sizeof(big));
    big[0] = '{';
    big[sizeof(big) - 1] = '}';
    tmp_write(&t, big, sizeof(big));
    assert_int_equal(tb_config_load_file(&cfg, t.file, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "larger than 1048576 bytes"));
    assert_non_null(strstr(err, t.file));
    tmp_remove(&t);

    tmp_write(&t, "{}\0{\"x\":1}", 10);
    assert_int_equal(tb_config_load_file(&cfg, t.file, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "contains a NUL byte"));
    tmp_remove(&t);

    tmp_write(&t, bad_qos, strlen(bad_qos));
    assert_int_equal(tb_config_load_file(&cfg, t.file, err, sizeof(err)), -1);
    assert_non_null(strstr(err, t.file));
    assert_non_null(strstr(err, ": mqtt.qos: must be between 0 and 2"));
    tmp_remove(&t);

    tmp_write(&t, bad_syntax, strlen(bad_syntax));
    assert_int_equal(tb_config_load_file(&cfg, t.file, err, sizeof(err)), -1);
    assert_non_null(strstr(err, t.file));
    assert_non_null(strstr(err, ": line 2, column"));
    tmp_remove(&t);
    tb_config_free(&cfg);
}

/* The repository's config/ folder, found from this file's path (CMake passes it whole). */
static void repo_config_path(char *out, size_t outlen, const char *name)
{
    char src[PATH_LEN];
    snprintf(src, sizeof(src), "%s", __FILE__);
    snprintf(out, outlen, "%s/../../config/%s", dirname(src), name);
}

static void test_shipped_default_config(void **state)
{
    char err[TB_CONFIG_ERR_LEN] = "";
    char path[PATH_LEN];
    tb_config_t cfg;
    const char *slash;
    (void)state;
    repo_config_path(path, sizeof(path), "telebridge.json");
    assert_int_equal(tb_config_defaults(&cfg), 0);
    if (tb_config_load_file(&cfg, path, err, sizeof(err)) != 0)
        fail_msg("%s: %s", path, err);
    assert_string_equal(cfg.listen.host, "127.0.0.1");
    assert_int_equal(cfg.listen.port, 8080);
    assert_string_equal(cfg.mqtt.host, "127.0.0.1");
    assert_int_equal(cfg.mqtt.port, 1883);
    assert_int_equal(cfg.n_groups, 1);
    assert_string_equal(cfg.groups[0].name, "building-a");
    slash = strrchr(cfg.auth.secret_file, '/');
    assert_non_null(slash);
    assert_string_equal(slash, "/secret.key");
    assert_int_equal(strncmp(cfg.auth.secret_file, path, (size_t)(slash - cfg.auth.secret_file)),
                     0);
    tb_config_free(&cfg);
}

/* example-full.json holds every key; what loads is exactly what the file says. */
static void test_shipped_full_example(void **state)
{
    char err[TB_CONFIG_ERR_LEN] = "";
    char path[PATH_LEN];
    json_error_t jerr;
    tb_config_t cfg;
    json_t *want, *got;
    (void)state;
    unsetenv(SECRET_ENV);
    repo_config_path(path, sizeof(path), "example-full.json");
    assert_int_equal(tb_config_defaults(&cfg), 0);
    if (tb_config_load_file(&cfg, path, err, sizeof(err)) != 0)
        fail_msg("%s: %s", path, err);
    assert_int_equal(cfg.n_alerts, 1);
    assert_string_equal(cfg.alerts[0].name, "high-temp");
    want = json_load_file(path, 0, &jerr);
    assert_non_null(want);
    got = file_shape(&cfg);
    /* The differences: paths come back resolved against the file's folder. */
    assert_int_equal(json_object_set_new(json_object_get(want, "auth"), "secret_file",
                                         json_string(cfg.auth.secret_file)),
                     0);
    assert_non_null(strstr(cfg.listen.web_root, "/config/../web"));
    assert_int_equal(json_object_set_new(json_object_get(want, "listen"), "web_root",
                                         json_string(cfg.listen.web_root)),
                     0);
    assert_json_equal(got, want);
    json_decref(got);
    json_decref(want);
    tb_config_free(&cfg);
}

static void test_cli_overrides(void **state)
{
    char err[TB_CONFIG_ERR_LEN] = "";
    tb_config_t cfg;
    (void)state;
    assert_int_equal(tb_config_defaults(&cfg), 0);
    assert_int_equal(tb_config_set_listen(&cfg, "0.0.0.0:9000", err, sizeof(err)), 0);
    assert_string_equal(cfg.listen.host, "0.0.0.0");
    assert_int_equal(cfg.listen.port, 9000);
    assert_int_equal(tb_config_set_listen(&cfg, "[::1]:8081", err, sizeof(err)), 0);
    assert_string_equal(cfg.listen.host, "::1");
    assert_int_equal(cfg.listen.port, 8081);
    /* ":PORT" keeps the host (the systemd template's --listen :%i). */
    assert_int_equal(tb_config_set_listen(&cfg, ":8082", err, sizeof(err)), 0);
    assert_string_equal(cfg.listen.host, "::1");
    assert_int_equal(cfg.listen.port, 8082);
    assert_int_equal(tb_config_set_mqtt(&cfg, "broker.example:65535", err, sizeof(err)), 0);
    assert_string_equal(cfg.mqtt.host, "broker.example");
    assert_int_equal(cfg.mqtt.port, 65535);
    assert_int_equal(tb_config_set_mqtt(&cfg, "[fe80::1%eth0]:1", err, sizeof(err)), 0);
    assert_string_equal(cfg.mqtt.host, "fe80::1%eth0");
    assert_int_equal(cfg.mqtt.port, 1);
    tb_config_free(&cfg);
}

static void test_cli_overrides_bad(void **state)
{
    static const char *const bad[] = {
        "nohost",  "x:",    "host:",  "host:80x", "host:+80", "host:123456", "::1:80",
        "[::1]80", "[]:80", "[::1]:", "[::1",     "ho st:80", "host: 80",    "",
    };
    char err[TB_CONFIG_ERR_LEN] = "";
    tb_config_t cfg;
    (void)state;
    assert_int_equal(tb_config_defaults(&cfg), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        if (tb_config_set_listen(&cfg, bad[i], err, sizeof(err)) != -1 ||
            !strstr(err, "--listen: expected HOST:PORT"))
            fail_msg("\"%s\" gave \"%s\"", bad[i], err);
    }
    assert_int_equal(tb_config_set_listen(&cfg, NULL, err, sizeof(err)), -1);
    for (size_t i = 0; i < 4; i++) {
        static const char *const bad_port[] = {":", ":0", ":65536", ":8o"};
        assert_int_equal(tb_config_set_listen(&cfg, bad_port[i], err, sizeof(err)), -1);
        assert_non_null(strstr(err, "--listen: expected :PORT with a port 1-65535"));
    }
    assert_int_equal(tb_config_set_mqtt(&cfg, ":1883", err, sizeof(err)), -1);
    assert_int_equal(tb_config_set_mqtt(&cfg, "host:0", err, sizeof(err)), -1);
    assert_string_equal(err, "--mqtt: port must be between 1 and 65535");
    assert_int_equal(tb_config_set_mqtt(&cfg, "[::1]:65536", err, sizeof(err)), -1);
    assert_string_equal(err, "--mqtt: port must be between 1 and 65535");
    assert_int_equal(tb_config_set_mqtt(&cfg, "x", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "--mqtt: expected HOST:PORT"));
    /* Failures change nothing. */
    assert_string_equal(cfg.listen.host, "127.0.0.1");
    assert_int_equal(cfg.listen.port, 8080);
    assert_string_equal(cfg.mqtt.host, "127.0.0.1");
    assert_int_equal(cfg.mqtt.port, 1883);
    /* --listen cannot move onto the admin listener's port either. */
    cfg.admin.port = 9100;
    assert_int_equal(tb_config_set_listen(&cfg, "10.1.1.1:9100", err, sizeof(err)), -1);
    assert_string_equal(err, "admin.port: must differ from listen.port (9100)");
    assert_string_equal(cfg.listen.host, "127.0.0.1");
    assert_int_equal(cfg.listen.port, 8080);
    cfg.admin.port = 0;
    assert_int_equal(tb_config_set_listen(&cfg, "127.0.0.1:9100", err, sizeof(err)), 0);
    assert_int_equal(cfg.listen.port, 9100);
    tb_config_free(&cfg);
}

static void test_to_json_masks_secrets(void **state)
{
    const char *secret = "s3cr3t-value-never-shown";
    char err[TB_CONFIG_ERR_LEN] = "";
    tb_config_t cfg;
    json_t *j, *mqtt;
    char *text;
    (void)state;
    assert_int_equal(tb_config_defaults(&cfg), 0);
    assert_int_equal(tb_config_apply_json(&cfg,
                                          "{\"mqtt\": {\"username\": \"bridge\","
                                          " \"password_file\": \"/run/pw\"},"
                                          " \"auth\": {\"secret_file\": \"/run/jwt.key\"}}",
                                          NULL, err, sizeof(err)),
                     0);
    cfg.log_level = TB_LOG_DEBUG;
    assert_int_equal(setenv(SECRET_ENV, secret, 1), 0);
    j = tb_config_to_json(&cfg);
    assert_non_null(j);
    text = json_dumps(j, 0);
    assert_non_null(text);
    assert_null(strstr(text, secret));
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "auth"), "secret")),
                        "(from TELEBRIDGE_JWT_SECRET)");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(j, "auth"), "secret_file")),
        "/run/jwt.key");
    mqtt = json_object_get(j, "mqtt");
    assert_string_equal(json_string_value(json_object_get(mqtt, "username")), "bridge");
    assert_string_equal(json_string_value(json_object_get(mqtt, "password_file")), "/run/pw");
    assert_null(json_object_get(mqtt, "password"));
    assert_string_equal(json_string_value(json_object_get(j, "log_level")), "debug");
    free(text);
    json_decref(j);

    assert_int_equal(unsetenv(SECRET_ENV), 0);
    j = tb_config_to_json(&cfg);
    assert_non_null(j);
    assert_null(json_object_get(json_object_get(j, "auth"), "secret"));
    json_decref(j);
    tb_config_free(&cfg);
}

static void test_op_names(void **state)
{
    static const char *const want[] = {[TB_OP_GT] = ">",  [TB_OP_GE] = ">=", [TB_OP_LT] = "<",
                                       [TB_OP_LE] = "<=", [TB_OP_EQ] = "==", [TB_OP_NE] = "!="};
    (void)state;
    for (size_t op = 0; op < sizeof(want) / sizeof(want[0]); op++)
        assert_string_equal(tb_alerts_op_name((tb_alert_op_t)op), want[op]);
    assert_string_equal(tb_alerts_op_name((tb_alert_op_t)42), "?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_defaults_match_the_docs),
        cmocka_unit_test(test_full_round_trip),
        cmocka_unit_test(test_alert_optional_defaults),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_string_lengths),
        cmocka_unit_test(test_apply_over_existing),
        cmocka_unit_test(test_free_zeroes_everything),
        cmocka_unit_test(test_relative_paths),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_load_file_errors),
        cmocka_unit_test(test_shipped_default_config),
        cmocka_unit_test(test_shipped_full_example),
        cmocka_unit_test(test_cli_overrides),
        cmocka_unit_test(test_cli_overrides_bad),
        cmocka_unit_test(test_to_json_masks_secrets),
        cmocka_unit_test(test_op_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
