/*
 * dj_bson_array.h -- appending to BSON arrays by index.
 *
 * An array's keys are its indexes "0", "1", ... in order; copying part of
 * one array into another (the stages after a pipeline's first, a
 * pipeline's stages after ones of our own) renumbers them.
 */
#ifndef DJ_BSON_ARRAY_H
#define DJ_BSON_ARRAY_H

#include <bson/bson.h>

/*
 * dj_bson_array_append_rest --
 *    Appends every element left in `it` (advanced to its end) to the array
 *    being built in `arr`, keyed from index `n` on; returns the index after
 *    the last appended. Values are copied: `it`'s document stays the caller's.
 */
uint32_t dj_bson_array_append_rest (bson_t *arr, uint32_t n, bson_iter_t *it);

/*
 * dj_bson_array_key --
 *    Index i as an array key, written into buf (16 bytes: any uint32_t
 *    fits); returns its length. libbson's bson_uint32_to_string gives
 *    keys past 999 through snprintf, which the parameters of a 1,000-row
 *    INSERT (4,000 and more of them) pay once each.
 */
size_t dj_bson_array_key (uint32_t i, char buf[16]);

/*
 * dj_bson_array_key_next --
 *    The key after the `len`-digit array key in buf (as dj_bson_array_key
 *    wrote it), written in its place: its last digits carried ("9" ->
 *    "10"); returns its length. For the loops that write or check every
 *    key of an array in order: a carry rather than a division per digit.
 *    The caller stays below UINT32_MAX elements (10 digits, buf's room).
 */
static inline size_t
dj_bson_array_key_next (char buf[16], size_t len)
{
   size_t i = len;
   while (i > 0 && buf[i - 1] == '9') {
      buf[--i] = '0';
   }
   if (i > 0) {
      buf[i - 1]++;
      return len;
   }
   /* all nines: one digit more, "1" followed by the zeros */
   buf[0] = '1';
   buf[len] = '0';
   buf[len + 1] = '\0';
   return len + 1;
}

/*
 * dj_bson_array_append_new --
 *    Appends v to the array `arr` (its *n elements keyed "0".."n-1"; *n is
 *    advanced) unless arr holds it already: the same type and bytes, as
 *    compared for int32, int64, strings and ObjectIds -- a value of another
 *    type is appended each time (kept twice: a second lookup for whoever
 *    reads the array, never a value lost). Returns whether it was appended.
 */
bool dj_bson_array_append_new (bson_t *arr, uint32_t *n, const bson_value_t *v);

#endif
