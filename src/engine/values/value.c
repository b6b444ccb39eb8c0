/*
 * value.c -- MongoDB's total order over BSON values, and type helpers.
 *
 * One comparison serves the query matcher, sort, $min/$max, distinct and the
 * index key encoding's tests, so the engine has exactly one notion of order:
 * https://www.mongodb.com/docs/manual/reference/bson-type-comparison-order/
 *
 *   MinKey < Null (and missing) < Numbers < Symbol, String < Object < Array
 *   < BinData < ObjectId < Boolean < Date < Timestamp < Regular Expression
 *   < MaxKey
 *
 * Numbers compare by value across int32, int64, double and Decimal128, exactly
 * (int64 vs double without rounding; Decimal128 by its decimal digits).
 * NaN sorts below every other number and equals itself, as in MongoDB.
 */
#include "dj_values.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

int
dj_type_rank (bson_type_t t)
{
   /* The numbers are MongoDB's canonicalizeBSONType() values; only their
    * order matters. Missing (EOD) sorts as null, as the sort docs state. */
   switch (t) {
   case BSON_TYPE_MINKEY: return -1;
   case BSON_TYPE_UNDEFINED: return 0;
   case BSON_TYPE_EOD:
   case BSON_TYPE_NULL: return 5;
   case BSON_TYPE_DOUBLE:
   case BSON_TYPE_INT32:
   case BSON_TYPE_INT64:
   case BSON_TYPE_DECIMAL128: return 10;
   case BSON_TYPE_UTF8:
   case BSON_TYPE_SYMBOL: return 15;
   case BSON_TYPE_DOCUMENT: return 20;
   case BSON_TYPE_ARRAY: return 25;
   case BSON_TYPE_BINARY: return 30;
   case BSON_TYPE_OID: return 35;
   case BSON_TYPE_BOOL: return 40;
   case BSON_TYPE_DATE_TIME: return 45;
   case BSON_TYPE_TIMESTAMP: return 47;
   case BSON_TYPE_REGEX: return 50;
   case BSON_TYPE_DBPOINTER: return 55;
   case BSON_TYPE_CODE: return 60;
   case BSON_TYPE_CODEWSCOPE: return 65;
   case BSON_TYPE_MAXKEY: return 127;
   default: return 100;
   }
}

const char *
dj_type_name (bson_type_t t)
{
   /* The $type aliases: https://www.mongodb.com/docs/manual/reference/operator/query/type/ */
   switch (t) {
   case BSON_TYPE_EOD: return "missing";
   case BSON_TYPE_DOUBLE: return "double";
   case BSON_TYPE_UTF8: return "string";
   case BSON_TYPE_DOCUMENT: return "object";
   case BSON_TYPE_ARRAY: return "array";
   case BSON_TYPE_BINARY: return "binData";
   case BSON_TYPE_UNDEFINED: return "undefined";
   case BSON_TYPE_OID: return "objectId";
   case BSON_TYPE_BOOL: return "bool";
   case BSON_TYPE_DATE_TIME: return "date";
   case BSON_TYPE_NULL: return "null";
   case BSON_TYPE_REGEX: return "regex";
   case BSON_TYPE_DBPOINTER: return "dbPointer";
   case BSON_TYPE_CODE: return "javascript";
   case BSON_TYPE_SYMBOL: return "symbol";
   case BSON_TYPE_CODEWSCOPE: return "javascriptWithScope";
   case BSON_TYPE_INT32: return "int";
   case BSON_TYPE_TIMESTAMP: return "timestamp";
   case BSON_TYPE_INT64: return "long";
   case BSON_TYPE_DECIMAL128: return "decimal";
   case BSON_TYPE_MINKEY: return "minKey";
   case BSON_TYPE_MAXKEY: return "maxKey";
   default: return "unknown";
   }
}

bool
dj_type_from_name (const char *name, int *out)
{
   static const bson_type_t all[] = {
      BSON_TYPE_DOUBLE, BSON_TYPE_UTF8, BSON_TYPE_DOCUMENT, BSON_TYPE_ARRAY,
      BSON_TYPE_BINARY, BSON_TYPE_UNDEFINED, BSON_TYPE_OID, BSON_TYPE_BOOL,
      BSON_TYPE_DATE_TIME, BSON_TYPE_NULL, BSON_TYPE_REGEX, BSON_TYPE_DBPOINTER,
      BSON_TYPE_CODE, BSON_TYPE_SYMBOL, BSON_TYPE_CODEWSCOPE, BSON_TYPE_INT32,
      BSON_TYPE_TIMESTAMP, BSON_TYPE_INT64, BSON_TYPE_DECIMAL128, BSON_TYPE_MINKEY,
      BSON_TYPE_MAXKEY};
   if (!strcmp (name, "number")) {
      *out = DJ_TYPE_NUMBER;
      return true;
   }
   for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
      if (!strcmp (name, dj_type_name (all[i]))) {
         *out = (int) all[i];
         return true;
      }
   }
   return false;
}

bool
dj_value_is_number (const bson_value_t *v)
{
   return v->value_type == BSON_TYPE_INT32 || v->value_type == BSON_TYPE_INT64 ||
          v->value_type == BSON_TYPE_DOUBLE || v->value_type == BSON_TYPE_DECIMAL128;
}

double
dj_value_as_double (const bson_value_t *v)
{
   switch (v->value_type) {
   case BSON_TYPE_INT32: return v->value.v_int32;
   case BSON_TYPE_INT64: return (double) v->value.v_int64;
   case BSON_TYPE_DOUBLE: return v->value.v_double;
   case BSON_TYPE_DECIMAL128: {
      char s[BSON_DECIMAL128_STRING];
      bson_decimal128_to_string (&v->value.v_decimal128, s);
      return strtod (s, NULL);
   }
   case BSON_TYPE_BOOL: return v->value.v_bool;
   default: return 0.0;
   }
}

bool
dj_value_as_int64_exact (const bson_value_t *v, int64_t *out)
{
   switch (v->value_type) {
   case BSON_TYPE_INT32: *out = v->value.v_int32; return true;
   case BSON_TYPE_INT64: *out = v->value.v_int64; return true;
   case BSON_TYPE_DOUBLE: {
      double d = v->value.v_double;
      if (d != trunc (d) || d < -9223372036854775808.0 || d >= 9223372036854775808.0) {
         return false;
      }
      *out = (int64_t) d;
      return true;
   }
   case BSON_TYPE_DECIMAL128: {
      double d = dj_value_as_double (v);
      if (d != trunc (d) || fabs (d) > 9007199254740992.0) {
         return false;
      }
      *out = (int64_t) d;
      return true;
   }
   default: return false;
   }
}

/* --- exact numeric comparison ------------------------------------------- */

static int
cmp_i64_dbl (int64_t i, double d)
{
   if (isnan (d)) {
      return 1;
   }
   if (d >= 9223372036854775808.0) {
      return -1;
   }
   if (d < -9223372036854775808.0) {
      return 1;
   }
   double t = trunc (d);
   int64_t di = (int64_t) t;
   if (i != di) {
      return i < di ? -1 : 1;
   }
   double frac = d - t;
   return frac > 0 ? -1 : (frac < 0 ? 1 : 0);
}

int
dj_number_cmp (const bson_value_t *a, const bson_value_t *b)
{
   bson_type_t ta = a->value_type, tb = b->value_type;

   if (ta == BSON_TYPE_DECIMAL128 || tb == BSON_TYPE_DECIMAL128) {
      return dj_decimal_cmp (a, b);
   }
   if (ta == BSON_TYPE_DOUBLE && tb == BSON_TYPE_DOUBLE) {
      double x = a->value.v_double, y = b->value.v_double;
      if (isnan (x) || isnan (y)) {
         return isnan (y) - isnan (x);
      }
      return (x > y) - (x < y);
   }
   if (ta == BSON_TYPE_DOUBLE) {
      return -cmp_i64_dbl (tb == BSON_TYPE_INT32 ? b->value.v_int32 : b->value.v_int64, a->value.v_double);
   }
   if (tb == BSON_TYPE_DOUBLE) {
      return cmp_i64_dbl (ta == BSON_TYPE_INT32 ? a->value.v_int32 : a->value.v_int64, b->value.v_double);
   }
   int64_t x = ta == BSON_TYPE_INT32 ? a->value.v_int32 : a->value.v_int64;
   int64_t y = tb == BSON_TYPE_INT32 ? b->value.v_int32 : b->value.v_int64;
   return (x > y) - (x < y);
}

static int
cmp_bytes (const void *a, size_t la, const void *b, size_t lb)
{
   int c = memcmp (a, b, la < lb ? la : lb);
   if (c) {
      return c < 0 ? -1 : 1;
   }
   return (la > lb) - (la < lb);
}

int
dj_doc_cmp (const uint8_t *a, uint32_t la, const uint8_t *b, uint32_t lb)
{
   bson_iter_t ia, ib;

   if (!bson_iter_init_from_data (&ia, a, la) || !bson_iter_init_from_data (&ib, b, lb)) {
      return cmp_bytes (a, la, b, lb);
   }
   for (;;) {
      bool ha = bson_iter_next (&ia), hb = bson_iter_next (&ib);
      if (!ha || !hb) {
         return (ha > hb) - (ha < hb);
      }
      int ra = dj_type_rank (bson_iter_type (&ia)), rb = dj_type_rank (bson_iter_type (&ib));
      if (ra != rb) {
         return ra < rb ? -1 : 1;
      }
      int c = strcmp (bson_iter_key (&ia), bson_iter_key (&ib));
      if (c) {
         return c < 0 ? -1 : 1;
      }
      c = dj_value_cmp (bson_iter_value (&ia), bson_iter_value (&ib));
      if (c) {
         return c;
      }
   }
}

int
dj_value_cmp (const bson_value_t *a, const bson_value_t *b)
{
   int ra = dj_type_rank (a->value_type), rb = dj_type_rank (b->value_type);
   int c;

   if (ra != rb) {
      return ra < rb ? -1 : 1;
   }
   switch (a->value_type) {
   case BSON_TYPE_DOUBLE:
   case BSON_TYPE_INT32:
   case BSON_TYPE_INT64:
   case BSON_TYPE_DECIMAL128: return dj_number_cmp (a, b);
   case BSON_TYPE_UTF8:
   case BSON_TYPE_SYMBOL: {
      const dj_collation_t *coll = dj_collation_current ();
      const char *sa, *sb;
      uint32_t la, lb;
      dj_value_string (a, &sa, &la); /* both strings: same rank */
      dj_value_string (b, &sb, &lb);
      if (coll) {
         return dj_collation_cmp (coll, sa, la, sb, lb);
      }
      return cmp_bytes (sa, la, sb, lb);
   }
   case BSON_TYPE_DOCUMENT:
   case BSON_TYPE_ARRAY:
      return dj_doc_cmp (a->value.v_doc.data, a->value.v_doc.data_len, b->value.v_doc.data, b->value.v_doc.data_len);
   case BSON_TYPE_BINARY:
      if (a->value.v_binary.data_len != b->value.v_binary.data_len) {
         return a->value.v_binary.data_len < b->value.v_binary.data_len ? -1 : 1;
      }
      if (a->value.v_binary.subtype != b->value.v_binary.subtype) {
         return a->value.v_binary.subtype < b->value.v_binary.subtype ? -1 : 1;
      }
      return cmp_bytes (a->value.v_binary.data, a->value.v_binary.data_len, b->value.v_binary.data, b->value.v_binary.data_len);
   case BSON_TYPE_OID: return cmp_bytes (a->value.v_oid.bytes, 12, b->value.v_oid.bytes, 12);
   case BSON_TYPE_BOOL: return (a->value.v_bool > b->value.v_bool) - (a->value.v_bool < b->value.v_bool);
   case BSON_TYPE_DATE_TIME:
      return (a->value.v_datetime > b->value.v_datetime) - (a->value.v_datetime < b->value.v_datetime);
   case BSON_TYPE_TIMESTAMP:
      if (a->value.v_timestamp.timestamp != b->value.v_timestamp.timestamp) {
         return a->value.v_timestamp.timestamp < b->value.v_timestamp.timestamp ? -1 : 1;
      }
      return (a->value.v_timestamp.increment > b->value.v_timestamp.increment) -
             (a->value.v_timestamp.increment < b->value.v_timestamp.increment);
   case BSON_TYPE_REGEX:
      c = strcmp (a->value.v_regex.regex, b->value.v_regex.regex);
      if (c) {
         return c < 0 ? -1 : 1;
      }
      c = strcmp (a->value.v_regex.options, b->value.v_regex.options);
      return (c > 0) - (c < 0);
   case BSON_TYPE_DBPOINTER:
      c = cmp_bytes (a->value.v_dbpointer.collection, a->value.v_dbpointer.collection_len, b->value.v_dbpointer.collection,
                     b->value.v_dbpointer.collection_len);
      return c ? c : cmp_bytes (a->value.v_dbpointer.oid.bytes, 12, b->value.v_dbpointer.oid.bytes, 12);
   case BSON_TYPE_CODE:
      return cmp_bytes (a->value.v_code.code, a->value.v_code.code_len, b->value.v_code.code, b->value.v_code.code_len);
   case BSON_TYPE_CODEWSCOPE:
      c = cmp_bytes (a->value.v_codewscope.code, a->value.v_codewscope.code_len, b->value.v_codewscope.code,
                     b->value.v_codewscope.code_len);
      return c ? c
               : dj_doc_cmp (a->value.v_codewscope.scope_data, a->value.v_codewscope.scope_len,
                             b->value.v_codewscope.scope_data, b->value.v_codewscope.scope_len);
   default: return 0; /* null, undefined, missing, minKey, maxKey: one value each */
   }
}

bool
dj_value_equal (const bson_value_t *a, const bson_value_t *b)
{
   return dj_value_cmp (a, b) == 0;
}

bool
dj_value_identical (const bson_value_t *a, const bson_value_t *b)
{
   /* Same type and same value: what $addToSet and replacement checks need
    * beyond ==. (1 and 1.0 are equal but not identical.) Embedded documents
    * are compared byte for byte, which also compares their element types. */
   if (a->value_type != b->value_type) {
      return false;
   }
   if (a->value_type == BSON_TYPE_DOCUMENT || a->value_type == BSON_TYPE_ARRAY) {
      return a->value.v_doc.data_len == b->value.v_doc.data_len &&
             !memcmp (a->value.v_doc.data, b->value.v_doc.data, a->value.v_doc.data_len);
   }
   return dj_value_cmp (a, b) == 0;
}

void
dj_bsons_free (bson_t **v, size_t from, size_t to)
{
   for (size_t i = from; i < to; i++) {
      bson_destroy (v[i]);
   }
   bson_free (v);
}

bool
dj_value_string (const bson_value_t *v, const char **s, uint32_t *n)
{
   if (v->value_type == BSON_TYPE_UTF8) {
      *s = v->value.v_utf8.str;
      *n = v->value.v_utf8.len;
      return true;
   }
   if (v->value_type == BSON_TYPE_SYMBOL) {
      *s = v->value.v_symbol.symbol;
      *n = v->value.v_symbol.len;
      return true;
   }
   return false;
}

/* A count the way mongod writes one (count's n, validate's nrecords, a sum
 * of int 1s): an int32 while it fits, else an int64. */
void
dj_append_count (bson_t *b, const char *key, int64_t n)
{
   if (n >= INT32_MIN && n <= INT32_MAX) {
      BSON_APPEND_INT32 (b, key, (int32_t) n);
   } else {
      BSON_APPEND_INT64 (b, key, n);
   }
}

void
dj_values_free (bson_value_t *v, size_t n)
{
   for (size_t i = 0; i < n; i++) {
      bson_value_destroy (&v[i]);
   }
   bson_free (v);
}

void
dj_value_from_doc (const bson_t *doc, bool is_array, bson_value_t *out)
{
   out->value_type = is_array ? BSON_TYPE_ARRAY : BSON_TYPE_DOCUMENT;
   out->value.v_doc.data = (uint8_t *) bson_get_data (doc);
   out->value.v_doc.data_len = doc->len;
}
