/*
 * ops_djongo.c -- djongo's own expression operators, for SQL functions
 * MongoDB has no operator for. Their names start with "$_djongo" so that
 * no one mistakes them for MongoDB's: a MongoDB server refuses them (the
 * SQL compiler marks a statement that uses one, and the executor refuses
 * it by name over libmongoc: dj_compile.h, dj_mql_t.engine_only).
 *
 *   {$_djongoMd5: s}, $_djongoSha1, $_djongoSha224, $_djongoSha256,
 *   $_djongoSha384, $_djongoSha512
 *                    the lowercase hex digest of s's UTF-8 bytes (SQL's
 *                    MD5() and Django's SHA* functions: PostgreSQL's md5(),
 *                    encode(sha256(s::bytea), 'hex'))
 *   {$_djongoChr: n} the one-character string of code point n (PostgreSQL's
 *                    chr(), SQLite's char()): n an integral number in
 *                    1..0x10FFFF, not a UTF-16 surrogate
 *   {$_djongoOrd: s} the code point of s's first character; 0 for ""
 *                    (PostgreSQL's ascii())
 *
 *   {$_djongoCollationKey: [s, collation]}
 *                    s's sort key under a MongoDB collation document
 *                    ({locale, strength, ...}, values/collation.c) as
 *                    lowercase hex: two keys compare, as strings, the way
 *                    ICU compares the strings (SQL's COLLATE in
 *                    comparisons and ORDER BY); {locale: "simple"} gives s
 *                    itself; a value that is not a string is returned as
 *                    it is (COLLATE changes only how text compares)
 *
 *   {$_djongoGeoDistance: [location, point]}
 *                    the spherical distance from point to a stored
 *                    location (GeoJSON or a legacy pair; to a line or a
 *                    polygon: to its nearest point, 0 inside): meters
 *                    when point is a GeoJSON Point, radians for a legacy
 *                    pair -- the units $near and $geoNear report
 *                    (https://www.mongodb.com/docs/manual/reference/operator/aggregation/geoNear/);
 *                    null when the location is no geometry (SQL's
 *                    Distance() of a row without one)
 *
 * All of them: null or missing in, null out (the row's NULL1 rule).
 * Their rows are in expr.c's ops[].
 */
#include "expr-private.h"

#include "dj_geo.h"

#include <openssl/evp.h>

static bool
need_string (const dj_expr_t *e, dj_eval_t *ev, const bson_value_t *v)
{
   if (v->value_type != BSON_TYPE_UTF8) {
      return x_fail (ev, DJ_BadValue, "%s requires a string argument, found: %s", e->op->name, tname (v));
   }
   return true;
}

/* $_djongoMd5 .. $_djongoSha512 (aux: H_MD5 ..) */
bool
op_hash (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   if (!need_string (e, ev, v)) {
      return false;
   }
   const EVP_MD *md = NULL;
   switch (e->op->aux) {
   case H_MD5: md = EVP_md5 (); break;
   case H_SHA1: md = EVP_sha1 (); break;
   case H_SHA224: md = EVP_sha224 (); break;
   case H_SHA256: md = EVP_sha256 (); break;
   case H_SHA384: md = EVP_sha384 (); break;
   default: md = EVP_sha512 (); break;
   }
   unsigned char digest[EVP_MAX_MD_SIZE];
   unsigned int n = 0;
   if (!EVP_Digest (v->value.v_utf8.str, v->value.v_utf8.len, digest, &n, md, NULL)) {
      return x_fail (ev, DJ_InternalError, "%s: the digest failed", e->op->name);
   }
   char hex[2 * EVP_MAX_MD_SIZE + 1];
   static const char digits[] = "0123456789abcdef";
   for (unsigned int i = 0; i < n; i++) {
      hex[2 * i] = digits[digest[i] >> 4];
      hex[2 * i + 1] = digits[digest[i] & 15];
   }
   x_str (ev->arena, hex, 2 * (size_t) n, out);
   return true;
}

/* $_djongoChr */
bool
op_chr (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   int64_t cp;
   if (!isnum (v) || !dj_value_as_int64_exact (v, &cp) || cp < 1 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return x_fail (ev, DJ_BadValue, "%s requires a Unicode code point (an integer from 1 to 1114111, not a surrogate)",
                     e->op->name);
   }
   char b[4];
   size_t n;
   if (cp < 0x80) {
      b[0] = (char) cp;
      n = 1;
   } else if (cp < 0x800) {
      b[0] = (char) (0xC0 | (cp >> 6));
      b[1] = (char) (0x80 | (cp & 0x3F));
      n = 2;
   } else if (cp < 0x10000) {
      b[0] = (char) (0xE0 | (cp >> 12));
      b[1] = (char) (0x80 | ((cp >> 6) & 0x3F));
      b[2] = (char) (0x80 | (cp & 0x3F));
      n = 3;
   } else {
      b[0] = (char) (0xF0 | (cp >> 18));
      b[1] = (char) (0x80 | ((cp >> 12) & 0x3F));
      b[2] = (char) (0x80 | ((cp >> 6) & 0x3F));
      b[3] = (char) (0x80 | (cp & 0x3F));
      n = 4;
   }
   x_str (ev->arena, b, n, out);
   return true;
}

/* $_djongoOrd: BSON strings are valid UTF-8 (libbson validates them) */
bool
op_ord (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   if (!need_string (e, ev, v)) {
      return false;
   }
   const unsigned char *s = (const unsigned char *) v->value.v_utf8.str;
   uint32_t len = v->value.v_utf8.len;
   int64_t cp = 0;
   if (len > 0) {
      int extra = s[0] >= 0xF0 ? 3 : s[0] >= 0xE0 ? 2 : s[0] >= 0xC0 ? 1 : 0;
      cp = extra ? s[0] & (0x3F >> extra) : s[0];
      for (int i = 1; i <= extra && (uint32_t) i < len; i++) {
         cp = (cp << 6) | (s[i] & 0x3F);
      }
   }
   set_int (out, cp);
   return true;
}

/* $_djongoCollationKey (ARGS: v[0] the value, v[1] the collation) */
bool
op_collation_key (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   if (v[1].value_type != BSON_TYPE_DOCUMENT) {
      return x_fail (ev, DJ_BadValue, "%s requires a collation document as its second argument, found: %s", e->op->name,
                     tname (&v[1]));
   }
   const dj_collation_t *c;
   bson_error_t err;
   if (!dj_collation_parse (&v[1], &c, &err)) {
      return x_fail (ev, err.code, "%s", err.message);
   }
   if (v[0].value_type == BSON_TYPE_NULL || v[0].value_type == BSON_TYPE_EOD || v[0].value_type == BSON_TYPE_UNDEFINED) {
      set_null (out);
      return true;
   }
   if (v[0].value_type != BSON_TYPE_UTF8 || !c) {
      *out = v[0]; /* borrowed like the argument: both live in the evaluation's arena or the document */
      return true;
   }
   dj_buf_t key;
   dj_buf_init (&key);
   dj_collation_key (c, v[0].value.v_utf8.str, v[0].value.v_utf8.len, &key);
   char *hex = bson_malloc (2 * key.len + 1);
   static const char digits[] = "0123456789abcdef";
   for (size_t i = 0; i < key.len; i++) {
      hex[2 * i] = digits[key.data[i] >> 4];
      hex[2 * i + 1] = digits[key.data[i] & 15];
   }
   x_str (ev->arena, hex, 2 * key.len, out);
   bson_free (hex);
   dj_buf_cleanup (&key);
   return true;
}

/* $_djongoGeoDistance (NULL_ANY: v[0] the location, v[1] the point) */
bool
op_geo_distance (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   dj_geo_query_t q;
   bson_error_t err;
   double d;
   if (!dj_geo_query_near_point (&v[1], true, NULL, NULL, &q, &err)) {
      return x_fail (ev, err.code, "%s: %s", e->op->name, err.message);
   }
   bool ok = dj_geo_query_match (&q, &v[0], &d);
   dj_geo_query_cleanup (&q);
   if (!ok) {
      set_null (out);
      return true;
   }
   out->value_type = BSON_TYPE_DOUBLE;
   out->value.v_double = d;
   return true;
}
