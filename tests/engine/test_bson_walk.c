/*
 * test_bson_walk -- src/common/dj_bson_walk.h reads what libbson's
 * iterator reads.
 *
 * 1. A document of every BSON type: each element's type, key and value
 *    (dj_bwalk_value against bson_iter_value) the same, nested documents
 *    and arrays too, and the end found at the same place.
 * 2. Thousands of random mutations of it (bytes overwritten, the length
 *    prefix kept so that the walk starts): the walk yields exactly the
 *    elements libbson's iterator yields, and stops as bad exactly where
 *    the iterator reports an error (err_off). Under the ASan build this
 *    also shows that no walk reads outside its document.
 * 3. dj_bwalk_next_named, given the document's keys in order, reads each
 *    of those mutated documents as dj_bwalk_next does while the keys are
 *    the ones expected, and stops at the first other key without moving
 *    (nor calling the document bad).
 * 4. dj_bson_array_key_next carries an array key into the next index's,
 *    as dj_bson_array_key writes it, up to the last uint32_t.
 */
#include <string.h>

#include "ctest.h"
#include "dj_bson_array.h"
#include "dj_bson_walk.h"

/* The reading of a document as a trace: each element's type and the
 * offsets (from the document's start) of its key and of the element after
 * it, a nested document's or array's own trace after it, then whether the
 * reading stopped at a malformed element. */
typedef struct {
   uint32_t v[4096];
   int n;
} trace_t;

static void
put (trace_t *t, uint32_t x)
{
   if (t->n < 4096) {
      t->v[t->n++] = x;
   }
}

static void
trace_libbson (const uint8_t *data, uint32_t len, trace_t *t, int depth, int max)
{
   bson_iter_t it;
   if (!bson_iter_init_from_data (&it, data, len)) {
      put (t, 0xFFFF0000u);
      return;
   }
   while (bson_iter_next (&it)) {
      put (t, (uint32_t) bson_iter_type (&it));
      put (t, (uint32_t) ((const uint8_t *) bson_iter_key (&it) - data));
      put (t, it.next_off);
      const bson_value_t *v = bson_iter_value (&it);
      if ((v->value_type == BSON_TYPE_DOCUMENT || v->value_type == BSON_TYPE_ARRAY) && depth < max) {
         trace_libbson (v->value.v_doc.data, v->value.v_doc.data_len, t, depth + 1, max);
      }
   }
   put (t, it.err_off ? 0xBAD : 0xE0D);
}

static void
trace_walk (const uint8_t *data, uint32_t len, trace_t *t, int depth, int max)
{
   dj_bwalk_t w;
   if (!dj_bwalk_init (&w, data, len)) {
      put (t, 0xFFFF0000u);
      return;
   }
   while (dj_bwalk_next (&w)) {
      put (t, w.type);
      put (t, (uint32_t) ((const uint8_t *) w.key - data));
      put (t, (uint32_t) (w.p - data));
      size_t elen;
      const uint8_t *e = dj_bwalk_elem (&w, &elen);
      CHECK (e[0] == w.type && elen == 1 + w.key_len + 1 + w.val_len, "element bytes of %s", w.key);
      bson_value_t v;
      dj_bwalk_value (&w, &v);
      if ((v.value_type == BSON_TYPE_DOCUMENT || v.value_type == BSON_TYPE_ARRAY) && depth < max) {
         trace_walk (v.value.v_doc.data, v.value.v_doc.data_len, t, depth + 1, max);
      }
   }
   put (t, w.bad ? 0xBAD : 0xE0D);
}

/* Each element's value, by dj_bwalk_value and by bson_iter_value,
 * appended alike (a valid document: libbson can append every value). */
static bool
same_values (const bson_t *d)
{
   bson_t a = BSON_INITIALIZER, b = BSON_INITIALIZER;
   bson_iter_t it;
   dj_bwalk_t w;
   bson_iter_init (&it, d);
   dj_bwalk_init (&w, bson_get_data (d), d->len);
   while (bson_iter_next (&it) && dj_bwalk_next (&w)) {
      bson_value_t v;
      dj_bwalk_value (&w, &v);
      bson_append_value (&a, bson_iter_key (&it), -1, bson_iter_value (&it));
      bson_append_value (&b, w.key, (int) w.key_len, &v);
   }
   bool same = a.len == b.len && !memcmp (bson_get_data (&a), bson_get_data (&b), a.len);
   bson_destroy (&a);
   bson_destroy (&b);
   return same;
}

/* A valid document is read alike to its deepest level; any other alike
 * as far as the walk goes: the elements it yields at the top level are
 * the first ones libbson's iterator yields (the walk may stop earlier,
 * at a value libbson lets through but cannot read -- a document shorter
 * than 5 bytes, a value over the document's terminator -- never later). */
static bool
same_reading (const uint8_t *data, uint32_t len)
{
   static trace_t a, b;
   a.n = b.n = 0;
   if (ctest_strict_valid (data, len)) {
      trace_libbson (data, len, &a, 0, 8);
      trace_walk (data, len, &b, 0, 8);
      return a.n == b.n && !memcmp (a.v, b.v, sizeof (uint32_t) * (size_t) a.n);
   }
   trace_libbson (data, len, &a, 0, 0);
   trace_walk (data, len, &b, 0, 0);
   if (b.v[b.n - 1] == 0xE0D || b.v[0] == 0xFFFF0000u) {
      /* read to its end, or refused at once: as libbson */
      return a.n == b.n && !memcmp (a.v, b.v, sizeof (uint32_t) * (size_t) a.n);
   }
   /* stopped as bad: its elements (before the end marker) are libbson's first */
   return b.n <= a.n && !memcmp (a.v, b.v, sizeof (uint32_t) * (size_t) (b.n - 1));
}

/* The document read by dj_bwalk_next_named with the n keys expected,
 * beside dj_bwalk_next (see 3. above); true when they agree. */
static bool
same_named (const uint8_t *data, uint32_t len, const char *const *keys, int n)
{
   dj_bwalk_t a = {0}, b = {0}; /* (zeroed: the compiler cannot see next sets val_len when it returns true) */
   dj_bwalk_init (&a, data, len);
   dj_bwalk_init (&b, data, len);
   for (int i = 0; i < n; i++) {
      const uint8_t *was = b.p;
      bool got_a = dj_bwalk_next (&a), got_b = dj_bwalk_next_named (&b, keys[i]);
      if (got_a && !strcmp (a.key, keys[i])) {
         if (!got_b || b.type != a.type || b.key != a.key || b.key_len != a.key_len || b.val != a.val ||
             b.val_len != a.val_len || b.p != a.p) {
            return false;
         }
         continue;
      }
      /* another key, the end or a malformed element: no element; the
       * walk stays put unless the key was the one expected */
      return !got_b && (b.bad ? a.bad : b.p == was);
   }
   return true;
}

static bson_t *
all_types (void)
{
   bson_oid_t oid;
   bson_decimal128_t dec;
   static const uint8_t bytes[] = {9, 8, 7, 6};
   bson_oid_init_from_string (&oid, "0123456789abcdef01234567");
   bson_decimal128_from_string ("-12.25", &dec);
   bson_t *scope = BCON_NEW ("x", BCON_UTF8 ("y"));
   bson_t *d = BCON_NEW ("d", BCON_DOUBLE (-2.5), "s", BCON_UTF8 ("héllo"), "empty", BCON_UTF8 (""), "o", "{", "k",
                         BCON_INT64 (3), "n", "{", "z", BCON_NULL, "}", "}", "a", "[", BCON_INT32 (1), "[", "]",
                         BCON_BOOL (false), "]", "bin", BCON_BIN (BSON_SUBTYPE_UUID, bytes, 4), "u", BCON_UNDEFINED,
                         "oid", BCON_OID (&oid), "t", BCON_BOOL (true), "dt", BCON_DATE_TIME (-5), "nul", BCON_NULL,
                         "re", BCON_REGEX ("a.*b", "ix"), "dbp", BCON_DBPOINTER ("db.coll", &oid), "js",
                         BCON_CODE ("x => 1"), "sym", BCON_SYMBOL ("sy"), "jsw", BCON_CODEWSCOPE ("y", scope), "i",
                         BCON_INT32 (-9), "ts", BCON_TIMESTAMP (77, 88), "l", BCON_INT64 (INT64_MIN), "dec",
                         BCON_DECIMAL128 (&dec), "mn", BCON_MINKEY, "mx", BCON_MAXKEY);
   /* the old binary subtype (its length again inside) */
   bson_append_binary (d, "old", 3, BSON_SUBTYPE_BINARY_DEPRECATED, bytes, 4);
   bson_destroy (scope);
   return d;
}

/* dj_bson_put_scalar writes each element of d it takes as libbson's
 * bson_append_value does, and refuses (writing nothing) the others: the
 * scalars' count. */
static int
same_writing (const bson_t *d, int *taken)
{
   dj_bwalk_t w;
   int differing = 0;
   *taken = 0;
   dj_bwalk_init (&w, bson_get_data (d), d->len);
   while (dj_bwalk_next (&w)) {
      bson_value_t v;
      dj_buf_t b;
      dj_bwalk_value (&w, &v);
      dj_buf_init (&b);
      bool took = dj_bson_put_scalar (&b, w.key, w.key_len, &v);
      bson_t one = BSON_INITIALIZER;
      bson_append_value (&one, w.key, -1, &v);
      if (took) {
         (*taken)++;
         differing += b.len != one.len - 5 || memcmp (b.data, bson_get_data (&one) + 4, b.len);
      } else {
         differing += b.len != 0;
      }
      bson_destroy (&one);
      dj_buf_cleanup (&b);
   }
   return differing;
}

/* How many keys from index `from`, `count` of them, dj_bson_array_key_next
 * carries into another than dj_bson_array_key's for the next index. */
static int
keys_differing (uint32_t from, uint32_t count)
{
   char kb[16], want[16];
   size_t klen = dj_bson_array_key (from, kb);
   int differing = 0;
   for (uint32_t i = from; i - from < count && i < UINT32_MAX; i++) {
      size_t wlen = dj_bson_array_key (i + 1, want);
      klen = dj_bson_array_key_next (kb, klen);
      differing += klen != wlen || memcmp (kb, want, wlen + 1);
   }
   return differing;
}

int
main (void)
{
   bson_t *d = all_types ();
   int taken = 0;
   CHECK (same_writing (d, &taken) == 0, "scalars written as libbson writes them");
   /* d, s, empty, t, nul, i, l: a double, two strings, a bool, a null, an
    * int32 and an int64 */
   CHECK (taken == 7, "the scalars taken: %d", taken);
   bson_t *big = BCON_NEW ("neg", BCON_DOUBLE (-0.0), "max", BCON_INT64 (INT64_MAX), "i", BCON_INT32 (INT32_MIN),
                           "f", BCON_BOOL (false), "nul\xc3\xa9", BCON_UTF8 ("a"));
   CHECK (same_writing (big, &taken) == 0 && taken == 5, "edge values written as libbson writes them");
   bson_destroy (big);
   CHECK (same_reading (bson_get_data (d), d->len), "every type read alike");
   CHECK (same_values (d), "every type's value alike");
   dj_bwalk_t w;
   int n = 0;
   dj_bwalk_init (&w, bson_get_data (d), d->len);
   while (dj_bwalk_next (&w)) {
      n++;
   }
   CHECK (keys_differing (0, 200000) == 0, "array keys carried from 0");
   for (uint32_t p = 10; p <= 1000000000u; p *= 10) {
      CHECK (keys_differing (p - 3, 6) == 0, "array keys carried across %u", p);
   }
   CHECK (keys_differing (UINT32_MAX - 3, 3) == 0, "array keys carried to the last uint32_t");
   CHECK (n == 23 && !w.bad, "every element, then the end: %d", n);
   const char *keys[23];
   n = 0;
   dj_bwalk_init (&w, bson_get_data (d), d->len);
   while (dj_bwalk_next (&w)) {
      keys[n++] = w.key; /* (borrowed from d, which outlives them) */
   }
   CHECK (same_named (bson_get_data (d), d->len, keys, 23), "every element read by its name");
   dj_bwalk_init (&w, bson_get_data (d), d->len);
   CHECK (dj_bwalk_next_named (&w, "d") && !dj_bwalk_next_named (&w, "x") && !dj_bwalk_next_named (&w, "") &&
             !dj_bwalk_next_named (&w, "ss") && !dj_bwalk_next_named (&w, "") && !w.bad &&
             dj_bwalk_next_named (&w, "s") && w.type == BSON_TYPE_UTF8,
          "another name, a longer or a shorter one: no element, the walk where it was");
   bson_t empty = BSON_INITIALIZER;
   CHECK (dj_bwalk_init (&w, bson_get_data (&empty), empty.len) && !dj_bwalk_next (&w) && !w.bad, "{} has no element");
   static const uint8_t short_doc[] = {4, 0, 0, 0};
   CHECK (!dj_bwalk_init (&w, short_doc, sizeof short_doc) && !dj_bwalk_next (&w), "a length under 5 is refused");

   /* mutations: 1 to 3 bytes after the length prefix overwritten */
   uint32_t seed = 12345;
   uint8_t *buf = bson_malloc (d->len);
   int differing = 0, named_differing = 0;
   for (int round = 0; round < 20000; round++) {
      memcpy (buf, bson_get_data (d), d->len);
      int k = 1 + (int) (seed % 3);
      for (int j = 0; j < k; j++) {
         seed = seed * 1103515245u + 12345u;
         uint32_t at = 4 + (seed >> 8) % (d->len - 4);
         seed = seed * 1103515245u + 12345u;
         buf[at] = (uint8_t) (seed >> 16);
      }
      if (!same_reading (buf, d->len)) {
         differing++;
      }
      if (!same_named (buf, d->len, keys, 23)) {
         named_differing++;
      }
   }
   CHECK (differing == 0, "%d mutated documents read differently", differing);
   CHECK (named_differing == 0, "%d mutated documents read differently by name", named_differing);
   bson_free (buf);
   bson_destroy (d);
   return CTEST_REPORT ("bson_walk");
}
