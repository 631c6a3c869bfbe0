/* Unit tests for mqtt_nodes: which broker node the MQTT thread uses, and the round-robin move
 * after a lost session or a failed attempt (docs/operations.md → A broker cluster). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "telebridge/config.h"
#include "telebridge/mqtt_nodes.h"

static void load(tb_config_t *cfg, const char *text)
{
    char err[TB_CONFIG_ERR_LEN] = "";
    assert_int_equal(tb_config_defaults(cfg), 0);
    if (tb_config_apply_json(cfg, text, NULL, err, sizeof(err)) != 0)
        fail_msg("%s: %s", text, err);
}

static void assert_node(const tb_mqtt_nodes_t *nodes, const char *host, int port)
{
    assert_string_equal(tb_mqtt_nodes_current(nodes)->host, host);
    assert_int_equal(tb_mqtt_nodes_current(nodes)->port, port);
}

static void test_without_hosts_one_node_stays(void **state)
{
    char err[TB_CONFIG_ERR_LEN] = "";
    tb_config_t cfg;
    tb_mqtt_nodes_t nodes;
    (void)state;
    load(&cfg, "{\"mqtt\": {\"host\": \"broker.local\", \"port\": 1884}}");
    assert_int_equal(tb_mqtt_nodes_init(&nodes, &cfg.mqtt, err, sizeof(err)), 0);
    assert_int_equal(nodes.n, 1);
    for (int i = 0; i < 3; i++) {
        assert_node(&nodes, "broker.local", 1884);
        tb_mqtt_nodes_next(&nodes);
    }
    tb_mqtt_nodes_free(&nodes);
    tb_config_free(&cfg);
}

/* hosts replaces host/port, in its order, then round again; IPv6 loses its brackets. */
static void test_hosts_in_order_then_round(void **state)
{
    char err[TB_CONFIG_ERR_LEN] = "";
    tb_config_t cfg;
    tb_mqtt_nodes_t nodes;
    (void)state;
    load(&cfg, "{\"mqtt\": {\"host\": \"ignored\", \"port\": 1,"
               " \"hosts\": [\"n2.local:1883\", \"[::1]:1884\", \"10.0.0.1:65535\"]}}");
    assert_int_equal(tb_mqtt_nodes_init(&nodes, &cfg.mqtt, err, sizeof(err)), 0);
    assert_int_equal(nodes.n, 3);
    for (int round = 0; round < 2; round++) {
        assert_node(&nodes, "n2.local", 1883);
        tb_mqtt_nodes_next(&nodes);
        assert_node(&nodes, "::1", 1884);
        tb_mqtt_nodes_next(&nodes);
        assert_node(&nodes, "10.0.0.1", 65535);
        tb_mqtt_nodes_next(&nodes);
    }
    assert_int_equal(nodes.cur, 0);
    tb_mqtt_nodes_free(&nodes);
    tb_config_free(&cfg);
}

/* --mqtt wins over the file's hosts. */
static void test_mqtt_flag_replaces_hosts(void **state)
{
    char err[TB_CONFIG_ERR_LEN] = "";
    tb_config_t cfg;
    tb_mqtt_nodes_t nodes;
    (void)state;
    load(&cfg, "{\"mqtt\": {\"hosts\": [\"a:1\", \"b:2\"]}}");
    assert_int_equal(tb_config_set_mqtt(&cfg, "c:3", err, sizeof(err)), 0);
    assert_int_equal(cfg.mqtt.n_hosts, 0);
    assert_int_equal(tb_mqtt_nodes_init(&nodes, &cfg.mqtt, err, sizeof(err)), 0);
    assert_int_equal(nodes.n, 1);
    assert_node(&nodes, "c", 3);
    tb_mqtt_nodes_free(&nodes);
    tb_config_free(&cfg);
}

static void test_hostport_parse(void **state)
{
    char host[TB_CONFIG_HOST_MAX + 1];
    int port = 0;
    (void)state;
    assert_int_equal(tb_config_hostport("a.b:1", host, sizeof(host), &port), 0);
    assert_string_equal(host, "a.b");
    assert_int_equal(port, 1);
    assert_int_equal(tb_config_hostport("[fe80::1]:8883", host, sizeof(host), &port), 0);
    assert_string_equal(host, "fe80::1");
    assert_int_equal(port, 8883);
    assert_int_equal(tb_config_hostport("a.b", host, sizeof(host), &port), -1);
    assert_int_equal(tb_config_hostport("a.b:", host, sizeof(host), &port), -1);
    assert_int_equal(tb_config_hostport("a.b:0", host, sizeof(host), &port), -1);
    assert_int_equal(tb_config_hostport("a.b:65536", host, sizeof(host), &port), -1);
    assert_int_equal(tb_config_hostport("a.b:-1", host, sizeof(host), &port), -1);
    assert_int_equal(tb_config_hostport("a b:1", host, sizeof(host), &port), -1);
    assert_int_equal(tb_config_hostport("fe80::1:1", host, sizeof(host), &port), -1);
    assert_int_equal(tb_config_hostport("[fe80::1]1", host, sizeof(host), &port), -1);
    assert_int_equal(tb_config_hostport("abcd:1", host, 4, &port), -1); /* host does not fit */
    assert_int_equal(tb_config_hostport(NULL, host, sizeof(host), &port), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_without_hosts_one_node_stays),
        cmocka_unit_test(test_hosts_in_order_then_round),
        cmocka_unit_test(test_mqtt_flag_replaces_hosts),
        cmocka_unit_test(test_hostport_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
