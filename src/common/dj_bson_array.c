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
