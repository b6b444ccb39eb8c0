/*
 * hash.c -- MongoDB's hash of a BSON value: the key of a hashed index and
 * the result of $toHashedIndexKey.
 *
 * The hash is the first 8 bytes (little-endian) of the MD5 of: the seed (a
 * 32-bit 0), then the value's canonical type (a 32-bit number: the rank
 * MongoDB's comparisons use, so 1, 1.0 and NumberLong(1) share it) and
 * either every number squashed to a 64-bit integer (truncated; NaN is 0,
 * out-of-range values clamp), or an embedded document's / array's elements
 * one by one (canonical type, field name with its NUL, value), or the
 * value's BSON bytes. The manual's example: {$toHashedIndexKey: "string to
 * hash"} is 763543691661428748.
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/toHashedIndexKey/
 * https://www.mongodb.com/docs/manual/core/indexes/index-types/index-hashed/
 */
#include "dj_values.h"

#include <math.h>
#include <openssl/evp.h>

/* MongoDB's canonical type numbers (its comparison brackets):
 * dj_type_rank's, but missing (EOD) is 0 here, as undefined. */
static int32_t
canonical_type (bson_type_t t)
{
   return t == BSON_TYPE_EOD ? 0 : dj_type_rank (t);
}

/* A number as MongoDB's hash sees it: truncated toward zero, NaN as 0,
 * values past the int64 range clamped to its ends. */
static int64_t
squash (const bson_value_t *v)
{
   if (v->value_type == BSON_TYPE_INT32) {
      return v->value.v_int32;
   }
   if (v->value_type == BSON_TYPE_INT64) {
      return v->value.v_int64;
   }
   double d = dj_value_as_double (v); /* a Decimal128 as its nearest double */
   if (isnan (d)) {
      return 0;
   }
   if (d >= 9223372036854775808.0) {
      return INT64_MAX;
   }
   if (d < -9223372036854775808.0) {
      return INT64_MIN;
   }
   return (int64_t) d;
}

static void
put_le32 (EVP_MD_CTX *md, int32_t x)
{
   uint8_t b[4];
   for (int i = 0; i < 4; i++) {
      b[i] = (uint8_t) ((uint32_t) x >> (8 * i));
   }
   EVP_DigestUpdate (md, b, 4);
}

/* What follows the canonical type: the squashed number, the elements of a
 * document or array (each: canonical type, field name and NUL, body), or
 * the value's BSON bytes. */
static void
hash_body (EVP_MD_CTX *md, const bson_value_t *v)
{
   if (dj_value_is_number (v)) {
      uint64_t x = (uint64_t) squash (v);
      uint8_t b[8];
      for (int i = 0; i < 8; i++) {
         b[i] = (uint8_t) (x >> (8 * i));
      }
      EVP_DigestUpdate (md, b, 8);
   } else if (v->value_type == BSON_TYPE_DOCUMENT || v->value_type == BSON_TYPE_ARRAY) {
      bson_iter_t it;
      if (bson_iter_init_from_data (&it, v->value.v_doc.data, v->value.v_doc.data_len)) {
         while (bson_iter_next (&it)) {
            const bson_value_t *e = bson_iter_value (&it);
            put_le32 (md, canonical_type (e->value_type));
            EVP_DigestUpdate (md, bson_iter_key (&it), bson_iter_key_len (&it) + 1);
            hash_body (md, e);
         }
      }
   } else if (v->value_type != BSON_TYPE_NULL && v->value_type != BSON_TYPE_UNDEFINED &&
              v->value_type != BSON_TYPE_MINKEY && v->value_type != BSON_TYPE_MAXKEY) {
      /* the value's BSON bytes: write {"": v} and take what follows the
       * 4-byte length, the type byte and the empty key's NUL */
      bson_t tmp = BSON_INITIALIZER;
      bson_append_value (&tmp, "", 0, v);
      EVP_DigestUpdate (md, bson_get_data (&tmp) + 6, tmp.len - 7);
      bson_destroy (&tmp);
   }
}

int64_t
dj_value_hash64 (const bson_value_t *v)
{
   EVP_MD_CTX *md = EVP_MD_CTX_new ();
   uint8_t digest[EVP_MAX_MD_SIZE];
   unsigned n = 0;
   uint64_t h = 0;

   EVP_DigestInit_ex (md, EVP_md5 (), NULL);
   put_le32 (md, 0); /* the seed */
   put_le32 (md, canonical_type (v->value_type));
   hash_body (md, v);
   EVP_DigestFinal_ex (md, digest, &n);
   EVP_MD_CTX_free (md);
   for (int i = 7; i >= 0; i--) {
      h = (h << 8) | digest[i];
   }
   return (int64_t) h;
}
