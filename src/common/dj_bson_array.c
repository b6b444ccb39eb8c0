/*
 * dj_bson_array.c -- appending to BSON arrays by index (dj_bson_array.h).
 */
#include "dj_bson_array.h"

size_t
dj_bson_array_key (uint32_t i, char buf[16])
{
   char rev[10];
   size_t n = 0;
   do {
      rev[n++] = (char) ('0' + i % 10);
      i /= 10;
   } while (i);
   for (size_t k = 0; k < n; k++) {
      buf[k] = rev[n - 1 - k];
   }
   buf[n] = '\0';
   return n;
}

uint32_t
dj_bson_array_append_rest (bson_t *arr, uint32_t n, bson_iter_t *it)
{
   while (bson_iter_next (it)) {
      char key[16];
      size_t len = dj_bson_array_key (n++, key);
      bson_append_value (arr, key, (int) len, bson_iter_value (it));
   }
   return n;
}

static bool
same_value (const bson_value_t *a, const bson_value_t *b)
{
   if (a->value_type != b->value_type) {
      return false;
   }
   switch (a->value_type) {
   case BSON_TYPE_INT32: return a->value.v_int32 == b->value.v_int32;
   case BSON_TYPE_INT64: return a->value.v_int64 == b->value.v_int64;
   case BSON_TYPE_UTF8:
      return a->value.v_utf8.len == b->value.v_utf8.len &&
             !memcmp (a->value.v_utf8.str, b->value.v_utf8.str, a->value.v_utf8.len);
   case BSON_TYPE_OID: return !memcmp (&a->value.v_oid, &b->value.v_oid, sizeof a->value.v_oid);
   default: return false;
   }
}

bool
dj_bson_array_append_new (bson_t *arr, uint32_t *n, const bson_value_t *v)
{
   bson_iter_t seen;
   bson_iter_init (&seen, arr);
   while (bson_iter_next (&seen)) {
      if (same_value (bson_iter_value (&seen), v)) {
         return false;
      }
   }
   char key[16];
   size_t len = dj_bson_array_key ((*n)++, key);
   return bson_append_value (arr, key, (int) len, v);
}
