/*
 * keyenc.c -- order-preserving, self-delimiting byte encoding of BSON values.
 *
 * memcmp() over two encodings gives the same answer as dj_value_cmp() over the
 * values, so an LMDB B-tree of encoded keys is an index in MongoDB's order.
 * Every encoding is prefix-free (no encoding is a proper prefix of another),
 * so a compound key is just the concatenation of its fields' encodings.
 *
 * Type bytes follow dj_type_rank(); values inside:
 *   number   0x20 then 0x00 for NaN (lowest number), or 0x01 + hi + lo: the
 *            value as an unevaluated sum of two doubles hi + lo, each as an
 *            8-byte order-preserving IEEE image. int64 is exact this way
 *            (hi = nearest double, lo = the rest), doubles have lo = 0.
 *   string   bytes with 0x00 escaped as 00 FF, ended by 00 00
 *   object   (type, escaped name, value)* then 0x01 (sorts below any type)
 *   array    (value)* then 0x01
 *   binary   u32 length, subtype, bytes (MongoDB orders by length first)
 */
#include "dj_values.h"

#include <math.h>
#include <stdlib.h>

enum {
   K_END = 0x01,
   K_MINKEY = 0x10,
   K_UNDEFINED = 0x14,
   K_NULL = 0x18,
   K_NUMBER = 0x20,
   K_STRING = 0x28,
   K_OBJECT = 0x30,
   K_ARRAY = 0x38,
   K_BINARY = 0x40,
   K_OID = 0x48,
   K_BOOL = 0x50,
   K_DATE = 0x58,
   K_TIMESTAMP = 0x60,
   K_REGEX = 0x68,
   K_DBPOINTER = 0x70,
   K_CODE = 0x78,
   K_CODEWSCOPE = 0x80,
   K_MAXKEY = 0xF0
};

static void
put_escaped (dj_buf_t *b, const char *s, size_t n)
{
   for (size_t i = 0; i < n; i++) {
      dj_buf_putc (b, (uint8_t) s[i]);
      if (s[i] == '\0') {
         dj_buf_putc (b, 0xFF);
      }
   }
   dj_buf_putc (b, 0);
   dj_buf_putc (b, 0);
}

static void
put_double (dj_buf_t *b, double d)
{
   uint64_t bits;

   if (d == 0) {
      d = 0.0; /* -0 == 0 */
   }
   memcpy (&bits, &d, 8);
   bits = (bits & 0x8000000000000000ull) ? ~bits : bits | 0x8000000000000000ull;
   dj_buf_put_u64be (b, bits);
}

static void
put_number (dj_buf_t *b, const bson_value_t *v)
{
   double hi, lo = 0.0;

   dj_buf_putc (b, K_NUMBER);
   switch (v->value_type) {
   case BSON_TYPE_INT32: hi = v->value.v_int32; break;
   case BSON_TYPE_INT64: {
      hi = (double) v->value.v_int64;
      __int128 rest = (__int128) v->value.v_int64 - (__int128) hi;
      lo = (double) rest;
      break;
   }
   case BSON_TYPE_DOUBLE: hi = v->value.v_double; break;
   default: hi = dj_value_as_double (v); break; /* Decimal128: nearest double (caveat in dj_engine.h) */
   }
   if (isnan (hi)) {
      dj_buf_putc (b, 0x00);
      return;
   }
   dj_buf_putc (b, 0x01);
   put_double (b, hi);
   put_double (b, lo);
}

static void put_value (dj_buf_t *b, const bson_value_t *v);

bool
dj_key_read_double (const uint8_t *k, size_t n, double *out)
{
   if (n < 18 || k[0] != K_NUMBER || k[1] != 0x01) {
      return false;
   }
   uint64_t bits = dj_u64be_read (k + 2);
   bits = (bits & 0x8000000000000000ull) ? bits & ~0x8000000000000000ull : ~bits;
   memcpy (out, &bits, 8);
   return true;
}

/* Collated encodings put a string's ICU sort key where its bytes would go. */
static _Thread_local const dj_collation_t *tls_key_coll;

static void
put_doc (dj_buf_t *b, const uint8_t *data, uint32_t len, bool is_array)
{
   bson_iter_t it;

   dj_buf_putc (b, is_array ? K_ARRAY : K_OBJECT);
   if (bson_iter_init_from_data (&it, data, len)) {
      while (bson_iter_next (&it)) {
         if (!is_array) {
            /* type rank first, then name, then value: MongoDB's element order */
            const bson_value_t *ev = bson_iter_value (&it);
            dj_buf_t tmp;
            dj_buf_init (&tmp);
            put_value (&tmp, ev);
            dj_buf_putc (b, tmp.data[0]);
            put_escaped (b, bson_iter_key (&it), bson_iter_key_len (&it));
            dj_buf_append (b, tmp.data, tmp.len);
            dj_buf_cleanup (&tmp);
         } else {
            put_value (b, bson_iter_value (&it));
         }
      }
   }
   dj_buf_putc (b, K_END);
}

static void
put_value (dj_buf_t *b, const bson_value_t *v)
{
   switch (v->value_type) {
   case BSON_TYPE_MINKEY: dj_buf_putc (b, K_MINKEY); break;
   case BSON_TYPE_MAXKEY: dj_buf_putc (b, K_MAXKEY); break;
   case BSON_TYPE_UNDEFINED: dj_buf_putc (b, K_UNDEFINED); break;
   case BSON_TYPE_EOD:
   case BSON_TYPE_NULL: dj_buf_putc (b, K_NULL); break;
   case BSON_TYPE_INT32:
   case BSON_TYPE_INT64:
   case BSON_TYPE_DOUBLE:
   case BSON_TYPE_DECIMAL128: put_number (b, v); break;
   case BSON_TYPE_UTF8:
      dj_buf_putc (b, K_STRING);
      if (tls_key_coll) {
         dj_buf_t sk;
         dj_buf_init (&sk);
         dj_collation_key (tls_key_coll, v->value.v_utf8.str, v->value.v_utf8.len, &sk);
         put_escaped (b, (const char *) sk.data, sk.len);
         dj_buf_cleanup (&sk);
         break;
      }
      put_escaped (b, v->value.v_utf8.str, v->value.v_utf8.len);
      break;
   case BSON_TYPE_SYMBOL:
      dj_buf_putc (b, K_STRING);
      put_escaped (b, v->value.v_symbol.symbol, v->value.v_symbol.len);
      break;
   case BSON_TYPE_DOCUMENT: put_doc (b, v->value.v_doc.data, v->value.v_doc.data_len, false); break;
   case BSON_TYPE_ARRAY: put_doc (b, v->value.v_doc.data, v->value.v_doc.data_len, true); break;
   case BSON_TYPE_BINARY:
      dj_buf_putc (b, K_BINARY);
      dj_buf_put_u32be (b, v->value.v_binary.data_len);
      dj_buf_putc (b, (uint8_t) v->value.v_binary.subtype);
      dj_buf_append (b, v->value.v_binary.data, v->value.v_binary.data_len);
      break;
   case BSON_TYPE_OID:
      dj_buf_putc (b, K_OID);
      dj_buf_append (b, v->value.v_oid.bytes, 12);
      break;
   case BSON_TYPE_BOOL: dj_buf_putc (b, K_BOOL | (v->value.v_bool ? 1 : 0)); break;
   case BSON_TYPE_DATE_TIME:
      dj_buf_putc (b, K_DATE);
      dj_buf_put_u64be (b, (uint64_t) v->value.v_datetime ^ 0x8000000000000000ull);
      break;
   case BSON_TYPE_TIMESTAMP:
      dj_buf_putc (b, K_TIMESTAMP);
      dj_buf_put_u32be (b, v->value.v_timestamp.timestamp);
      dj_buf_put_u32be (b, v->value.v_timestamp.increment);
      break;
   case BSON_TYPE_REGEX:
      dj_buf_putc (b, K_REGEX);
      put_escaped (b, v->value.v_regex.regex, strlen (v->value.v_regex.regex));
      put_escaped (b, v->value.v_regex.options, strlen (v->value.v_regex.options));
      break;
   case BSON_TYPE_DBPOINTER:
      dj_buf_putc (b, K_DBPOINTER);
      put_escaped (b, v->value.v_dbpointer.collection, v->value.v_dbpointer.collection_len);
      dj_buf_append (b, v->value.v_dbpointer.oid.bytes, 12);
      break;
   case BSON_TYPE_CODE:
      dj_buf_putc (b, K_CODE);
      put_escaped (b, v->value.v_code.code, v->value.v_code.code_len);
      break;
   case BSON_TYPE_CODEWSCOPE:
      dj_buf_putc (b, K_CODEWSCOPE);
      put_escaped (b, v->value.v_codewscope.code, v->value.v_codewscope.code_len);
      put_doc (b, v->value.v_codewscope.scope_data, v->value.v_codewscope.scope_len, false);
      break;
   default: dj_buf_putc (b, K_NULL); break;
   }
}

void
dj_key_append (dj_buf_t *b, const bson_value_t *v, bool descending)
{
   size_t start = b->len;

   put_value (b, v);
   if (descending) {
      for (size_t i = start; i < b->len; i++) {
         b->data[i] = (uint8_t) ~b->data[i];
      }
   }
}

/* FNV-1a, twice with different bases: a 128-bit fingerprint for over-long
 * keys. Not cryptographic; index keys are not secrets, and a collision needs
 * two ~470-byte values sharing their first 452 bytes. */
static uint64_t
fnv1a (const uint8_t *p, size_t n, uint64_t h)
{
   for (size_t i = 0; i < n; i++) {
      h ^= p[i];
      h *= 0x100000001b3ull;
   }
   return h;
}

void
dj_key_append_by (dj_buf_t *b, const bson_value_t *v, bool descending, const dj_collation_t *coll)
{
   size_t start = b->len;
   tls_key_coll = coll;
   put_value (b, v);
   tls_key_coll = NULL;
   if (descending) {
      for (size_t i = start; i < b->len; i++) {
         b->data[i] = (uint8_t) ~b->data[i];
      }
   }
}

void
dj_key_append_collated (dj_buf_t *b, const bson_value_t *v)
{
   tls_key_coll = dj_collation_current ();
   put_value (b, v);
   tls_key_coll = NULL;
}

void
dj_key_finish (dj_buf_t *b, size_t start)
{
   size_t n = b->len - start;

   if (n <= DJ_KEY_MAX) {
      return;
   }
   const uint8_t *p = b->data + start;
   uint64_t h1 = fnv1a (p, n, 0xcbf29ce484222325ull);
   uint64_t h2 = fnv1a (p, n, 0x84222325cbf29ce4ull);
   b->len = start + DJ_KEY_MAX - 18;
   dj_buf_putc (b, 0xFF);
   dj_buf_putc (b, 0xFF);
   dj_buf_put_u64be (b, h1);
   dj_buf_put_u64be (b, h2);
}
