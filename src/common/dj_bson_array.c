/*
 * dj_bson_array.c -- appending to BSON arrays by index (dj_bson_array.h).
 */
#include "dj_bson_array.h"

uint32_t
dj_bson_array_append_rest (bson_t *arr, uint32_t n, bson_iter_t *it)
{
   while (bson_iter_next (it)) {
      char buf[16];
      const char *key;
      bson_uint32_to_string (n++, &key, buf, sizeof buf);
      bson_append_value (arr, key, -1, bson_iter_value (it));
   }
   return n;
}
