/*
 * Tests of the _async operations: each queues work, runs the loop under a
 * time limit, then checks callback counts and the mkv_result_t fields.
 */
#include "helpers.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* A copy of one callback's result, made by record_result(). */
typedef struct {
  int calls;
  int status;
  char message[sizeof(((bson_error_t *)0)->message)];
  uint32_t domain;
  uint32_t code;
  bool error_null;
  mkv_t *db;
  char *key;
  bool has_value;
  bson_value_t value;
  bool removed;
  bool has_keys;
  char **keys;
  size_t key_count;
  uv_thread_t thread;
  int sequence; /* the callback's position among all recorded callbacks */
} op_record_t;

/* Counts callbacks across records, so that tests can check their order. */
static int callback_sequence;

static void record_result(mkv_t *db, const mkv_result_t *result, void *data) {
  op_record_t *record = data;

  record->calls++;
  record->sequence = callback_sequence++;
  record->thread = uv_thread_self();
  record->db = db;
  record->status = result->status;
  record->error_null = result->error == NULL;
  if (result->error != NULL) {
    record->domain = result->error->domain;
    record->code = result->error->code;
    bson_strncpy(record->message, result->error->message,
                 sizeof record->message);
  }
  if (result->key != NULL) {
    record->key = bson_strdup(result->key);
  }
  if (result->value != NULL) {
    record->has_value = true;
    bson_value_copy(result->value, &record->value);
  }
  record->removed = result->removed;
  if (result->keys != NULL) {
    record->has_keys = true;
    record->key_count = result->keys->count;
    record->keys = bson_malloc0((result->keys->count + 1) * sizeof(char *));
    for (size_t i = 0; i < result->keys->count; i++) {
      record->keys[i] = bson_strdup(result->keys->keys[i]);
    }
  }
}

static void record_clear(op_record_t *record) {
  bson_free(record->key);
  if (record->has_value) {
    bson_value_destroy(&record->value);
  }
  for (size_t i = 0; i < record->key_count; i++) {
    bson_free(record->keys[i]);
  }
  bson_free(record->keys);
  memset(record, 0, sizeof *record);
}

/*
 * Asserts that a callback ran once, on the loop's thread, for this handle,
 * with the expected status and a bson_error_t whose message is empty on
 * success.
 */
static void check_record(const test_fixture_t *fixture,
                         const op_record_t *record, int expected_status) {
  uv_thread_t self = uv_thread_self();

  assert_int_equal(record->calls, 1);
  test_check_status_at(expected_status, record->status, NULL, "callback status",
                       __FILE__, __LINE__);
  assert_true(uv_thread_equal(&record->thread, &self));
  assert_ptr_equal(record->db, fixture->db);
  assert_false(record->error_null);
  if (expected_status == MKV_OK) {
    assert_string_equal(record->message, "");
  } else {
    assert_true(strlen(record->message) > 0);
  }
}

/* Queues a set, runs the loop and checks the callback. */
static void set_and_run(test_fixture_t *fixture, const char *key,
                        const bson_value_t *value, op_record_t *record) {
  CHECK_OK(mkv_set_async(fixture->db, &fixture->loop, key, value, record_result,
                         record),
           NULL);
  test_run_loop(fixture, TEST_LOOP_TIMEOUT_MS);
  check_record(fixture, record, MKV_OK);
  assert_non_null(record->key);
  assert_false(record->has_value);
  assert_false(record->has_keys);
}

/* Queues a get, runs the loop and checks the status of the callback. */
static void get_and_run(test_fixture_t *fixture, const char *key,
                        op_record_t *record, int expected_status) {
  CHECK_OK(
      mkv_get_async(fixture->db, &fixture->loop, key, record_result, record),
      NULL);
  test_run_loop(fixture, TEST_LOOP_TIMEOUT_MS);
  check_record(fixture, record, expected_status);
  assert_false(record->has_keys);
}

static void all_and_run(test_fixture_t *fixture, op_record_t *record) {
  CHECK_OK(mkv_all_async(fixture->db, &fixture->loop, record_result, record),
           NULL);
  test_run_loop(fixture, TEST_LOOP_TIMEOUT_MS);
  check_record(fixture, record, MKV_OK);
  assert_true(record->has_keys);
  assert_false(record->has_value);
}

static void check_round_trip(test_fixture_t *fixture, test_sample_t sample) {
  const char *key = test_sample_name(sample);
  bson_value_t stored = test_sample_value(sample);
  op_record_t set = {0};
  op_record_t get = {0};

  set_and_run(fixture, key, &stored, &set);
  assert_string_equal(set.key, key);

  get_and_run(fixture, key, &get, MKV_OK);
  assert_true(get.has_value);
  assert_value_equal(&stored, &get.value);

  record_clear(&set);
  record_clear(&get);
  bson_value_destroy(&stored);
  test_close_all(fixture);
}

static void set_get_string(void **state) {
  check_round_trip(*state, SAMPLE_STRING);
}

static void set_get_empty_string(void **state) {
  check_round_trip(*state, SAMPLE_EMPTY_STRING);
}

static void set_get_int32(void **state) {
  check_round_trip(*state, SAMPLE_INT32);
}

static void set_get_int64(void **state) {
  check_round_trip(*state, SAMPLE_INT64);
}

static void set_get_double(void **state) {
  check_round_trip(*state, SAMPLE_DOUBLE);
}

static void set_get_true(void **state) {
  check_round_trip(*state, SAMPLE_TRUE);
}

static void set_get_false(void **state) {
  check_round_trip(*state, SAMPLE_FALSE);
}

static void set_get_null(void **state) {
  check_round_trip(*state, SAMPLE_NULL);
}

static void set_get_document(void **state) {
  check_round_trip(*state, SAMPLE_DOCUMENT);
}

static void set_get_empty_document(void **state) {
  check_round_trip(*state, SAMPLE_EMPTY_DOCUMENT);
}

static void set_get_array(void **state) {
  check_round_trip(*state, SAMPLE_ARRAY);
}

static void set_get_binary(void **state) {
  check_round_trip(*state, SAMPLE_BINARY);
}

static void set_get_oid(void **state) { check_round_trip(*state, SAMPLE_OID); }

static void set_get_date(void **state) {
  check_round_trip(*state, SAMPLE_DATE);
}

/* The key and value are copied, so the caller may change them at once. */
static void set_copies_arguments(void **state) {
  test_fixture_t *fixture = *state;
  char key[] = "copied";
  char text[] = "original";
  bson_value_t stored = mkv_str(text);
  bson_value_t expected = mkv_str("original");
  op_record_t set = {0};
  op_record_t get = {0};

  CHECK_OK(mkv_set_async(fixture->db, &fixture->loop, key, &stored,
                         record_result, &set),
           NULL);
  memset(key, 'x', sizeof key - 1);
  memset(text, 'y', sizeof text - 1);
  test_run_loop(fixture, TEST_LOOP_TIMEOUT_MS);
  check_record(fixture, &set, MKV_OK);
  assert_string_equal(set.key, "copied");

  get_and_run(fixture, "copied", &get, MKV_OK);
  assert_value_equal(&expected, &get.value);

  record_clear(&set);
  record_clear(&get);
  test_close_all(fixture);
}

static void set_overwrite(void **state) {
  test_fixture_t *fixture = *state;
  bson_value_t first = mkv_str("first");
  bson_value_t second = mkv_int64(2);
  op_record_t records[3] = {{0}};

  set_and_run(fixture, "k", &first, &records[0]);
  set_and_run(fixture, "k", &second, &records[1]);
  get_and_run(fixture, "k", &records[2], MKV_OK);
  assert_value_equal(&second, &records[2].value);
  assert_key_count(fixture, 1);

  for (size_t i = 0; i < 3; i++) {
    record_clear(&records[i]);
  }
  test_close_all(fixture);
}

static void set_auto_key(void **state) {
  test_fixture_t *fixture = *state;
  bson_value_t stored = mkv_str("auto");
  op_record_t set = {0};
  op_record_t get = {0};

  set_and_run(fixture, NULL, &stored, &set);
  assert_true(test_is_object_id_hex(set.key));

  get_and_run(fixture, set.key, &get, MKV_OK);
  assert_value_equal(&stored, &get.value);

  record_clear(&set);
  record_clear(&get);
  test_close_all(fixture);
}

static void get_missing_key(void **state) {
  test_fixture_t *fixture = *state;
  op_record_t get = {0};

  get_and_run(fixture, "missing_key", &get, MKV_ENOTFOUND);
  assert_false(get.has_value);
  assert_int_equal(get.domain, MKV_ERROR_DOMAIN);
  assert_int_equal(get.code, (uint32_t)MKV_ENOTFOUND);
  assert_non_null(strstr(get.message, "missing_key"));

  record_clear(&get);
  test_close_all(fixture);
}

static void remove_present_key(void **state) {
  test_fixture_t *fixture = *state;
  bson_value_t stored = mkv_str("gone soon");
  op_record_t set = {0};
  op_record_t remove = {0};
  op_record_t get = {0};

  set_and_run(fixture, "k", &stored, &set);
  CHECK_OK(mkv_remove_async(fixture->db, &fixture->loop, "k", record_result,
                            &remove),
           NULL);
  test_run_loop(fixture, TEST_LOOP_TIMEOUT_MS);
  check_record(fixture, &remove, MKV_OK);
  assert_true(remove.removed);
  assert_false(remove.has_value);
  assert_false(remove.has_keys);

  get_and_run(fixture, "k", &get, MKV_ENOTFOUND);
  assert_false(get.has_value);

  record_clear(&set);
  record_clear(&remove);
  record_clear(&get);
  test_close_all(fixture);
}

static void remove_absent_key(void **state) {
  test_fixture_t *fixture = *state;
  op_record_t remove = {0};

  remove.removed = true;
  CHECK_OK(mkv_remove_async(fixture->db, &fixture->loop, "never_set",
                            record_result, &remove),
           NULL);
  test_run_loop(fixture, TEST_LOOP_TIMEOUT_MS);
  check_record(fixture, &remove, MKV_OK);
  assert_false(remove.removed);

  record_clear(&remove);
  test_close_all(fixture);
}

static void all_empty(void **state) {
  test_fixture_t *fixture = *state;
  op_record_t all = {0};

  all_and_run(fixture, &all);
  assert_int_equal(all.key_count, 0);

  record_clear(&all);
  test_close_all(fixture);
}

static void all_filled(void **state) {
  test_fixture_t *fixture = *state;
  const char *expected[] = {"alpha", "beta", "gamma", "delta", "epsilon"};
  size_t count = sizeof expected / sizeof expected[0];
  bson_value_t stored = mkv_int64(1);
  bson_error_t error = {0};
  op_record_t all = {0};
  mkv_keys_t keys;

  for (size_t i = 0; i < count; i++) {
    CHECK_OK(mkv_set(fixture->db, expected[i], &stored, NULL, &error), &error);
  }

  all_and_run(fixture, &all);
  keys.keys = all.keys;
  keys.count = all.key_count;
  assert_keys_equal(&keys, expected, count);

  record_clear(&all);
  test_close_all(fixture);
}

static void purge_all(void **state) {
  test_fixture_t *fixture = *state;
  bson_value_t stored = mkv_int64(5);
  op_record_t sets[5] = {{0}};
  op_record_t purge = {0};
  op_record_t all = {0};
  op_record_t set_after = {0};
  char key[16];

  for (int i = 0; i < 5; i++) {
    snprintf(key, sizeof key, "k%d", i);
    CHECK_OK(mkv_set_async(fixture->db, &fixture->loop, key, &stored,
                           record_result, &sets[i]),
             NULL);
  }
  test_run_loop(fixture, TEST_LOOP_TIMEOUT_MS);
  for (int i = 0; i < 5; i++) {
    check_record(fixture, &sets[i], MKV_OK);
  }
  assert_key_count(fixture, 5);

  CHECK_OK(mkv_purge_async(fixture->db, &fixture->loop, record_result, &purge),
           NULL);
  test_run_loop(fixture, TEST_LOOP_TIMEOUT_MS);
  check_record(fixture, &purge, MKV_OK);
  assert_false(purge.has_value);
  assert_false(purge.has_keys);

  all_and_run(fixture, &all);
  assert_int_equal(all.key_count, 0);

  set_and_run(fixture, "after", &stored, &set_after);
  assert_key_count(fixture, 1);

  for (int i = 0; i < 5; i++) {
    record_clear(&sets[i]);
  }
  record_clear(&purge);
  record_clear(&all);
  record_clear(&set_after);
  test_close_all(fixture);
}

static void ping_ok(void **state) {
  test_fixture_t *fixture = *state;
  op_record_t ping = {0};

  CHECK_OK(mkv_ping_async(fixture->db, &fixture->loop, record_result, &ping),
           NULL);
  test_run_loop(fixture, TEST_LOOP_TIMEOUT_MS);
  check_record(fixture, &ping, MKV_OK);
  assert_false(ping.has_value);
  assert_false(ping.has_keys);

  record_clear(&ping);
  test_close_all(fixture);
}

static void odd_keys(void **state) {
  test_fixture_t *fixture = *state;
  const char *keys[] = {
      "",
      "a.b.c",
      "$x",
      "with space",
      "\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87",
      "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
      "emoji \xf0\x9f\x98\x80",
  };
  enum { KEY_COUNT = sizeof keys / sizeof keys[0] };
  op_record_t sets[KEY_COUNT] = {{0}};
  op_record_t gets[KEY_COUNT] = {{0}};
  op_record_t all = {0};
  mkv_keys_t listed;

  for (size_t i = 0; i < KEY_COUNT; i++) {
    bson_value_t stored = mkv_int64((int64_t)i);

    CHECK_OK(mkv_set_async(fixture->db, &fixture->loop, keys[i], &stored,
                           record_result, &sets[i]),
             NULL);
  }
  test_run_loop(fixture, TEST_LOOP_TIMEOUT_MS);

  for (size_t i = 0; i < KEY_COUNT; i++) {
    check_record(fixture, &sets[i], MKV_OK);
    assert_string_equal(sets[i].key, keys[i]);
    CHECK_OK(mkv_get_async(fixture->db, &fixture->loop, keys[i], record_result,
                           &gets[i]),
             NULL);
  }
  test_run_loop(fixture, TEST_LOOP_TIMEOUT_MS);

  for (size_t i = 0; i < KEY_COUNT; i++) {
    bson_value_t expected = mkv_int64((int64_t)i);

    check_record(fixture, &gets[i], MKV_OK);
    assert_value_equal(&expected, &gets[i].value);
  }

  all_and_run(fixture, &all);
  listed.keys = all.keys;
  listed.count = all.key_count;
  assert_keys_equal(&listed, keys, KEY_COUNT);

  for (size_t i = 0; i < KEY_COUNT; i++) {
    record_clear(&sets[i]);
    record_clear(&gets[i]);
  }
  record_clear(&all);
  test_close_all(fixture);
}

/*
 * With one operation in flight, operations run in call order. So 50 sets of
 * one key call back in order, and the get queued last reads the last value.
 */
static void queue_call_order(void **state) {
  test_fixture_t *fixture = *state;
  mkv_options_t options = test_options(fixture);
  enum { SET_COUNT = 50 };
  op_record_t sets[SET_COUNT] = {{0}};
  op_record_t get = {0};
  bson_value_t last = mkv_int64(SET_COUNT - 1);
  int first_sequence;

  options.max_in_flight = 1;
  test_reopen(fixture, &options);

  for (int i = 0; i < SET_COUNT; i++) {
    bson_value_t stored = mkv_int64(i);

    CHECK_OK(mkv_set_async(fixture->db, &fixture->loop, "k", &stored,
                           record_result, &sets[i]),
             NULL);
  }
  CHECK_OK(mkv_get_async(fixture->db, &fixture->loop, "k", record_result, &get),
           NULL);
  first_sequence = callback_sequence;
  test_run_loop(fixture, TEST_LOOP_TIMEOUT_MS);

  for (int i = 0; i < SET_COUNT; i++) {
    check_record(fixture, &sets[i], MKV_OK);
    assert_int_equal(sets[i].sequence, first_sequence + i);
  }
  check_record(fixture, &get, MKV_OK);
  assert_int_equal(get.sequence, first_sequence + SET_COUNT);
  assert_value_equal(&last, &get.value);

  for (int i = 0; i < SET_COUNT; i++) {
    record_clear(&sets[i]);
  }
  record_clear(&get);
  test_close_all(fixture);
}

/* Callbacks that queue the next operation: set, get, remove, all, ping. */
typedef struct {
  test_fixture_t *fixture;
  int step;
  int statuses[5];
  bool removed;
  bool value_matches;
  bool keys_null;
  size_t key_count;
} chain_t;

static void on_chain_step(mkv_t *db, const mkv_result_t *result, void *data) {
  chain_t *chain = data;
  bson_value_t expected = mkv_str("chained");
  uv_loop_t *loop = &chain->fixture->loop;
  int status = MKV_OK;

  chain->statuses[chain->step] = result->status;
  switch (chain->step) {
  case 0:
    status = mkv_get_async(db, loop, "k", on_chain_step, chain);
    break;
  case 1:
    chain->value_matches =
        result->value != NULL && test_value_equal(&expected, result->value);
    status = mkv_remove_async(db, loop, "k", on_chain_step, chain);
    break;
  case 2:
    chain->removed = result->removed;
    status = mkv_all_async(db, loop, on_chain_step, chain);
    break;
  case 3:
    chain->keys_null = result->keys == NULL;
    if (result->keys != NULL) {
      chain->key_count = result->keys->count;
    }
    status = mkv_ping_async(db, loop, on_chain_step, chain);
    break;
  default:
    break;
  }
  chain->step++;
  if (status != MKV_OK) {
    chain->statuses[chain->step] = status;
  }
}

static void callback_queues_next(void **state) {
  test_fixture_t *fixture = *state;
  bson_value_t stored = mkv_str("chained");
  chain_t chain = {.fixture = fixture};

  for (size_t i = 0; i < 5; i++) {
    chain.statuses[i] = MKV_ENOMEM;
  }
  CHECK_OK(mkv_set_async(fixture->db, &fixture->loop, "k", &stored,
                         on_chain_step, &chain),
           NULL);
  test_run_loop(fixture, TEST_LOOP_TIMEOUT_MS);

  assert_int_equal(chain.step, 5);
  for (size_t i = 0; i < 5; i++) {
    CHECK_STATUS(MKV_OK, chain.statuses[i], NULL);
  }
  assert_true(chain.value_matches);
  assert_true(chain.removed);
  assert_false(chain.keys_null);
  assert_int_equal(chain.key_count, 0);
  test_close_all(fixture);
}

/*
 * Three thousand sets with auto keys make three thousand distinct keys. The
 * count keeps the test well inside its loop limit on a loaded machine.
 */
enum { AUTO_KEY_COUNT = 3000 };

typedef struct {
  int calls;
  int status;
  char key[25];
} auto_key_slot_t;

static void on_auto_key_set(mkv_t *db, const mkv_result_t *result, void *data) {
  auto_key_slot_t *slot = data;

  (void)db;
  slot->calls++;
  slot->status = result->status;
  if (result->key != NULL) {
    bson_strncpy(slot->key, result->key, sizeof slot->key);
  }
}

static int compare_slot_keys(const void *a, const void *b) {
  return strcmp(((const auto_key_slot_t *)a)->key,
                ((const auto_key_slot_t *)b)->key);
}

static void auto_keys_distinct(void **state) {
  test_fixture_t *fixture = *state;
  auto_key_slot_t *slots = bson_malloc0(AUTO_KEY_COUNT * sizeof *slots);
  bson_value_t stored = mkv_null();
  op_record_t all = {0};
  int ok_count = 0;
  int one_call_count = 0;
  int hex_count = 0;
  int duplicate_count = 0;
  uint64_t start = test_now_ms();

  for (int i = 0; i < AUTO_KEY_COUNT; i++) {
    CHECK_OK(mkv_set_async(fixture->db, &fixture->loop, NULL, &stored,
                           on_auto_key_set, &slots[i]),
             NULL);
  }
  test_run_loop(fixture, 60000);
  print_message("%d sets with auto keys took %" PRIu64 " ms\n", AUTO_KEY_COUNT,
                test_now_ms() - start);

  for (int i = 0; i < AUTO_KEY_COUNT; i++) {
    one_call_count += slots[i].calls == 1;
    ok_count += slots[i].status == MKV_OK;
    hex_count += test_is_object_id_hex(slots[i].key);
  }
  assert_int_equal(one_call_count, AUTO_KEY_COUNT);
  assert_int_equal(ok_count, AUTO_KEY_COUNT);
  assert_int_equal(hex_count, AUTO_KEY_COUNT);

  qsort(slots, AUTO_KEY_COUNT, sizeof *slots, compare_slot_keys);
  for (int i = 1; i < AUTO_KEY_COUNT; i++) {
    duplicate_count += strcmp(slots[i - 1].key, slots[i].key) == 0;
  }
  assert_int_equal(duplicate_count, 0);

  all_and_run(fixture, &all);
  assert_int_equal(all.key_count, AUTO_KEY_COUNT);

  record_clear(&all);
  bson_free(slots);
  test_close_all(fixture);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TEST_CASE(set_get_string),
      TEST_CASE(set_get_empty_string),
      TEST_CASE(set_get_int32),
      TEST_CASE(set_get_int64),
      TEST_CASE(set_get_double),
      TEST_CASE(set_get_true),
      TEST_CASE(set_get_false),
      TEST_CASE(set_get_null),
      TEST_CASE(set_get_document),
      TEST_CASE(set_get_empty_document),
      TEST_CASE(set_get_array),
      TEST_CASE(set_get_binary),
      TEST_CASE(set_get_oid),
      TEST_CASE(set_get_date),
      TEST_CASE(set_copies_arguments),
      TEST_CASE(set_overwrite),
      TEST_CASE(set_auto_key),
      TEST_CASE(get_missing_key),
      TEST_CASE(remove_present_key),
      TEST_CASE(remove_absent_key),
      TEST_CASE(all_empty),
      TEST_CASE(all_filled),
      TEST_CASE(purge_all),
      TEST_CASE(ping_ok),
      TEST_CASE(odd_keys),
      TEST_CASE(queue_call_order),
      TEST_CASE(callback_queues_next),
      TEST_CASE(auto_keys_distinct),
  };

  if (test_check_environment() != 0) {
    return 1;
  }
  return cmocka_run_group_tests_name("async", tests, NULL, NULL);
}
