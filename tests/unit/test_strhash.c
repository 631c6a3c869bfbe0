/* Unit tests for strhash: the intrusive index of the hub's rooms and the last-value store. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "telebridge/strhash.h"

/* A record as the index's users lay one out: the node, other fields, the key last. */
typedef struct {
    int value;
    tb_strhash_node_t node;
    char key[16];
} rec_t;

static int init(tb_strhash_t *t, uint32_t buckets)
{
    return tb_strhash_init(t, buckets, offsetof(rec_t, key) - offsetof(rec_t, node));
}

static rec_t *find(const tb_strhash_t *t, const char *key, size_t len)
{
    tb_strhash_node_t *n = tb_strhash_find(t, key, len);
    return n ? TB_STRHASH_ENTRY(n, rec_t, node) : NULL;
}

static void test_find_insert_remove(void **state)
{
    (void)state;
    tb_strhash_t t;
    rec_t a = {.value = 1, .key = "global"}, b = {.value = 2, .key = "group:x"};
    assert_int_equal(init(&t, 4), 0);
    assert_null(find(&t, "global", 6));
    tb_strhash_insert(&t, &a.node);
    tb_strhash_insert(&t, &b.node);
    assert_int_equal(t.count, 2);
    assert_ptr_equal(find(&t, "global", 6), &a);
    assert_ptr_equal(find(&t, "group:x", 7), &b);
    /* The key need not be terminated, and a prefix or an extension is another key. */
    assert_ptr_equal(find(&t, "globalXYZ", 6), &a);
    assert_null(find(&t, "globa", 5));
    assert_null(find(&t, "group:xy", 8));
    tb_strhash_remove(&t, &a.node);
    assert_int_equal(t.count, 1);
    assert_null(find(&t, "global", 6));
    assert_ptr_equal(find(&t, "group:x", 7), &b);
    tb_strhash_fini(&t);
    tb_strhash_fini(&t); /* a finished table is a no-op */
}

/* Past one record per bucket the index doubles, and every record stays findable, also after
 * removals from the longer chains; iteration visits each record once. */
static void test_growth_and_iteration(void **state)
{
    (void)state;
    enum { N = 300 };
    tb_strhash_t t;
    rec_t *r = calloc(N, sizeof(*r));
    assert_non_null(r);
    assert_int_equal(init(&t, 2), 0);
    for (int i = 0; i < N; i++) {
        r[i].value = i;
        snprintf(r[i].key, sizeof(r[i].key), "device:%d", i);
        tb_strhash_insert(&t, &r[i].node);
    }
    assert_int_equal(t.count, N);
    assert_true(t.n_buckets >= N && (t.n_buckets & (t.n_buckets - 1)) == 0);
    for (int i = 0; i < N; i += 2)
        tb_strhash_remove(&t, &r[i].node);
    int seen[N] = {0}, visits = 0;
    for (tb_strhash_node_t *n = tb_strhash_first(&t); n && visits <= N;
         n = tb_strhash_next(&t, n)) {
        seen[TB_STRHASH_ENTRY(n, rec_t, node)->value]++;
        visits++;
    }
    assert_int_equal(visits, N / 2);
    for (int i = 0; i < N; i++) {
        assert_int_equal(seen[i], i % 2);
        assert_ptr_equal(find(&t, r[i].key, strlen(r[i].key)), i % 2 ? &r[i] : NULL);
    }
    tb_strhash_fini(&t);
    free(r);
}

static void test_empty_iteration(void **state)
{
    (void)state;
    tb_strhash_t t;
    assert_int_equal(init(&t, 8), 0);
    assert_null(tb_strhash_first(&t));
    tb_strhash_fini(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_find_insert_remove),
        cmocka_unit_test(test_growth_and_iteration),
        cmocka_unit_test(test_empty_iteration),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
