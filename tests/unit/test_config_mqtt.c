/* Unit tests for config_mqtt: the placeholders of mqtt.client_id and history.file, expanded
 * (docs/configuration.md). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "telebridge/config.h"

/* cfg with the defaults and the JSON text applied; fails the test when it does not load. */
static void load(tb_config_t *cfg, const char *text)
{
    char err[TB_CONFIG_ERR_LEN] = "";
    assert_int_equal(tb_config_defaults(cfg), 0);
    if (tb_config_apply_json(cfg, text, NULL, err, sizeof(err)) != 0)
        fail_msg("%s: %s", text, err);
}

static void test_client_id_expands_hostname_and_port(void **state)
{
    char host[256] = "", want[512], id[TB_CONFIG_CLIENT_ID_MAX + 1];
    char err[TB_CONFIG_ERR_LEN] = "";
    tb_config_t cfg;
    (void)state;
    assert_int_equal(gethostname(host, sizeof(host) - 1), 0);
    load(&cfg,
         "{\"listen\": {\"port\": 8081}, \"mqtt\": {\"client_id\": \"tb-{hostname}-{port}\"}}");
    assert_string_equal(cfg.mqtt.client_id, "tb-{hostname}-{port}"); /* the template is kept */
    assert_int_equal(tb_config_client_id(&cfg, id, sizeof(id), err, sizeof(err)), 0);
    snprintf(want, sizeof(want), "tb-%s-8081", host);
    assert_string_equal(id, want);
    /* {port} is the effective listen.port: after --listen too. */
    assert_int_equal(tb_config_set_listen(&cfg, "127.0.0.1:9002", err, sizeof(err)), 0);
    assert_int_equal(tb_config_client_id(&cfg, id, sizeof(id), err, sizeof(err)), 0);
    snprintf(want, sizeof(want), "tb-%s-9002", host);
    assert_string_equal(id, want);
    tb_config_free(&cfg);
}

static void test_client_id_without_placeholders_is_itself(void **state)
{
    char id[TB_CONFIG_CLIENT_ID_MAX + 1], err[TB_CONFIG_ERR_LEN] = "";
    tb_config_t cfg;
    (void)state;
    load(&cfg, "{\"mqtt\": {\"client_id\": \"a}b{port}{port}\"}}");
    assert_int_equal(tb_config_client_id(&cfg, id, sizeof(id), err, sizeof(err)), 0);
    assert_string_equal(id, "a}b80808080");
    tb_config_free(&cfg);
    load(&cfg, "{}");
    assert_int_equal(tb_config_client_id(&cfg, id, sizeof(id), err, sizeof(err)), 0);
    assert_string_equal(id, "telebridge");
    tb_config_free(&cfg);
}

static void test_client_id_too_long_once_expanded(void **state)
{
    char id[12], err[TB_CONFIG_ERR_LEN] = "";
    tb_config_t cfg;
    (void)state;
    load(&cfg, "{\"mqtt\": {\"client_id\": \"telebridge-{port}\"}}");
    assert_int_equal(tb_config_client_id(&cfg, id, sizeof(id), err, sizeof(err)), -1);
    assert_string_equal(err, "mqtt.client_id: longer than 11 bytes once expanded");
    tb_config_free(&cfg);
}

/* --check-config shows the id the broker sees. */
static void test_dump_shows_the_expanded_id(void **state)
{
    tb_config_t cfg;
    json_t *j;
    (void)state;
    load(&cfg, "{\"listen\": {\"port\": 8090}, \"mqtt\": {\"client_id\": \"tb-{port}\"}}");
    j = tb_config_to_json(&cfg);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "mqtt"), "client_id")),
                        "tb-8090");
    json_decref(j);
    tb_config_free(&cfg);
}

/* history.file takes the same placeholders, after the path is resolved against the config's
 * folder, so that the instances of one config keep a file each; unset stays unset. */
static void test_history_file_expands_port(void **state)
{
    char path[TB_CONFIG_PATH_MAX + 1], err[TB_CONFIG_ERR_LEN] = "";
    tb_config_t cfg;
    json_t *j;
    (void)state;
    load(&cfg, "{\"listen\": {\"port\": 8091}, \"history\": {\"file\": \"/var/lib/tb-{port}/h\"}}");
    assert_string_equal(cfg.history.file, "/var/lib/tb-{port}/h");
    assert_int_equal(tb_config_history_file(&cfg, path, sizeof(path), err, sizeof(err)), 0);
    assert_string_equal(path, "/var/lib/tb-8091/h");
    assert_int_equal(tb_config_set_listen(&cfg, ":9003", err, sizeof(err)), 0);
    assert_int_equal(tb_config_history_file(&cfg, path, sizeof(path), err, sizeof(err)), 0);
    assert_string_equal(path, "/var/lib/tb-9003/h");
    j = tb_config_to_json(&cfg);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "history"), "file")),
                        "/var/lib/tb-9003/h");
    json_decref(j);
    assert_int_equal(tb_config_history_file(&cfg, path, 8, err, sizeof(err)), -1);
    assert_string_equal(err, "history.file: longer than 7 bytes once expanded");
    tb_config_free(&cfg);
    load(&cfg, "{}");
    assert_int_equal(tb_config_history_file(&cfg, path, sizeof(path), err, sizeof(err)), 0);
    assert_string_equal(path, "");
    j = tb_config_to_json(&cfg);
    assert_true(json_is_null(json_object_get(json_object_get(j, "history"), "file")));
    json_decref(j);
    tb_config_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client_id_expands_hostname_and_port),
        cmocka_unit_test(test_client_id_without_placeholders_is_itself),
        cmocka_unit_test(test_client_id_too_long_once_expanded),
        cmocka_unit_test(test_dump_shows_the_expanded_id),
        cmocka_unit_test(test_history_file_expands_port),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
