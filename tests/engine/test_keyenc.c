/*
 * test_keyenc -- the index key encoding agrees with MongoDB's value order.
 *
 * Property: for any two values a, b: sign(memcmp(enc(a), enc(b))) ==
 * sign(dj_value_cmp(a, b)), and descending encodings reverse it. Checked on
 * hand-picked edge values (every BSON type, numeric boundaries across int32,
 * int64, double and Decimal128, NaN, -0, strings with NUL bytes, nested
 * documents and arrays) and on random values.
 * https://www.mongodb.com/docs/manual/reference/bson-type-comparison-order/
 */
#include <math.h>
#include <stdlib.h>

#include "ctest.h"
#include "dj_values.h"

static int
sign (int x)
{
   return (x > 0) - (x < 0);
}

static int
enc_cmp (const bson_value_t *a, const bson_value_t *b, bool desc)
{
   dj_buf_t x, y;
   dj_buf_init (&x);
   dj_buf_init (&y);
   dj_key_append (&x, a, desc);
   dj_key_append (&y, b, desc);
   size_t n = x.len < y.len ? x.len : y.len;
   int c = memcmp (x.data, y.data, n);
   if (!c) {
      c = (x.len > y.len) - (x.len < y.len);
   }
   dj_buf_cleanup (&x);
   dj_buf_cleanup (&y);
   return sign (c);
}

/* Values parsed from one JSON array, so the edge cases read as data. */
static const char *edge_json =
   "{\"v\": [{\"$minKey\": 1}, null, {\"$numberDouble\": \"NaN\"}, {\"$numberDouble\": \"-Infinity\"},"
   " -9.3e18, {\"$numberLong\": \"-9223372036854775808\"}, -2147483649, -2147483648, -1.5, -1, -0.0, 0,"
   " {\"$numberDecimal\": \"0.000\"}, 1e-300, {\"$numberDecimal\": \"0.1\"}, 0.1, 1, {\"$numberLong\": \"1\"},"
   " {\"$numberDecimal\": \"1.0\"}, 1.0000000000000002, 2147483647, 2147483648, 9007199254740992,"
   " {\"$numberLong\": \"9007199254740993\"}, 9007199254740994.0, {\"$numberLong\": \"9223372036854775806\"},"
   " {\"$numberLong\": \"9223372036854775807\"}, 9223372036854775808.0, 1e300, {\"$numberDouble\": \"Infinity\"},"
   " \"\", \"\\u0000\", \"\\u0000a\", \"a\", \"a\\u0000\", \"ab\", \"b\", \"\\u00e9\","
   " {}, {\"a\": 1}, {\"a\": 1, \"b\": 1}, {\"a\": 2}, {\"b\": 0}, {\"a\": \"x\"}, {\"a\": {\"b\": null}},"
   " [], [1], [1, 2], [1, [0]], [2], [\"a\"], [{\"a\": 1}],"
   " {\"$binary\": {\"base64\": \"\", \"subType\": \"00\"}}, {\"$binary\": {\"base64\": \"AA==\", \"subType\": \"00\"}},"
   " {\"$binary\": {\"base64\": \"AA==\", \"subType\": \"04\"}}, {\"$binary\": {\"base64\": \"AAA=\", \"subType\": \"00\"}},"
   " {\"$oid\": \"000000000000000000000000\"}, {\"$oid\": \"ffffffffffffffffffffffff\"}, false, true,"
   " {\"$date\": {\"$numberLong\": \"-1\"}}, {\"$date\": {\"$numberLong\": \"0\"}}, {\"$date\": \"2020-01-01T00:00:00Z\"},"
   " {\"$timestamp\": {\"t\": 1, \"i\": 2}}, {\"$timestamp\": {\"t\": 2, \"i\": 1}},"
   " {\"$regularExpression\": {\"pattern\": \"a\", \"options\": \"\"}}, {\"$regularExpression\": {\"pattern\": \"a\", \"options\": \"i\"}},"
   " {\"$maxKey\": 1}]}";

/* One check per value set: every ordered pair must agree. */
static void
check_pairs (const char *what, bson_value_t *vals, int n)
{
   int bad = 0;
   for (int i = 0; i < n; i++) {
      for (int j = 0; j < n; j++) {
         int want = sign (dj_value_cmp (&vals[i], &vals[j]));
         int got = enc_cmp (&vals[i], &vals[j], false);
         int gotd = enc_cmp (&vals[i], &vals[j], true);
         /* Decimal128 keys hold the nearest double pair (dj_engine.h caveat):
          * distinct decimals may share a key, but never invert the order */
         bool dec = vals[i].value_type == BSON_TYPE_DECIMAL128 || vals[j].value_type == BSON_TYPE_DECIMAL128;
         bool ok = (want == got && -want == gotd) || (dec && got == 0 && gotd == 0);
         if (!ok && bad++ < 10) {
            printf ("  %s: values %d and %d: cmp %d, key %d, desc key %d\n", what, i, j, want, got, gotd);
         }
      }
   }
   CHECK (bad == 0, "%s: %d of %d ordered pairs disagree", what, bad, n * n);
}

int
main (void)
{
   bson_error_t err;
   bson_t *doc = bson_new_from_json ((const uint8_t *) edge_json, -1, &err);
   if (!doc) {
      printf ("FAIL bad edge JSON: %s\n", err.message);
      return 1;
   }
   bson_iter_t it, ai;
   bson_iter_init_find (&it, doc, "v");
   bson_iter_recurse (&it, &ai);
   bson_value_t vals[128];
   int n = 0;
   while (bson_iter_next (&ai) && n < 128) {
      vals[n++] = *bson_iter_value (&ai);
   }
   /* the list is written in ascending order (with equal neighbours) */
   int disorder = -1;
   for (int i = 1; i < n && disorder < 0; i++) {
      if (dj_value_cmp (&vals[i - 1], &vals[i]) > 0) {
         disorder = i;
      }
   }
   CHECK (disorder < 0, "the edge list is in MongoDB's order (first disorder at %d)", disorder);
   check_pairs ("edge values", vals, n);

   /* random numbers of every numeric type, including near-equal pairs */
   srand (12345);
   bson_value_t r[400];
   for (int i = 0; i < 400; i++) {
      int64_t base = (int64_t) (((uint64_t) rand () << 33) ^ ((uint64_t) rand () << 2) ^ (uint64_t) rand ());
      if (i % 3 == 0) {
         base >>= (rand () % 60);
      }
      switch (i % 4) {
      case 0: r[i].value_type = BSON_TYPE_INT64; r[i].value.v_int64 = base; break;
      case 1: r[i].value_type = BSON_TYPE_DOUBLE; r[i].value.v_double = (double) base + (rand () % 3 - 1) * 0.5; break;
      case 2: r[i].value_type = BSON_TYPE_INT32; r[i].value.v_int32 = (int32_t) base; break;
      default: r[i].value_type = BSON_TYPE_DOUBLE; r[i].value.v_double = ldexp ((double) (base % 100000), rand () % 80 - 40); break;
      }
   }
   check_pairs ("random numbers", r, 400);

   /* dj_key_finish: long keys are cut to DJ_KEY_MAX and stay distinct */
   dj_buf_t a, b;
   dj_buf_init (&a);
   dj_buf_init (&b);
   char big[2000];
   memset (big, 'x', sizeof big);
   bson_value_t s1 = {.value_type = BSON_TYPE_UTF8}, s2;
   s1.value.v_utf8.str = big;
   s1.value.v_utf8.len = 1500;
   s2 = s1;
   s2.value.v_utf8.len = 1501;
   dj_key_append (&a, &s1, false);
   dj_key_append (&b, &s2, false);
   dj_key_finish (&a, 0);
   dj_key_finish (&b, 0);
   CHECK (a.len == DJ_KEY_MAX && b.len == DJ_KEY_MAX, "cut lengths %zu %zu", a.len, b.len);
   CHECK (memcmp (a.data, b.data, DJ_KEY_MAX) != 0, "long keys differ after the cut");
   dj_buf_cleanup (&a);
   dj_buf_cleanup (&b);
   bson_destroy (doc);
   return CTEST_REPORT ("keyenc");
}
