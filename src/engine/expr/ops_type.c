/*
 * ops_type.c -- types and conversions: $type, $isNumber, $isArray,
 * $convert (with MongoDB 8.0's format for binData to string) and the
 * $toString..$toObjectId shorthands, $toHashedIndexKey.
 *
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/convert/
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/#type-expression-operators
 *
 * Their rows (name, arity, argument rule) are in expr.c's ops[].
 */
#include "expr-private.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <strings.h>

/* the string form $toString / $convert give */
bool
x_stringify (dj_eval_t *ev, const bson_value_t *v, bson_value_t *out)
{
   char tmp[64];
   switch (v->value_type) {
   case BSON_TYPE_UTF8: *out = *v; return true;
   case BSON_TYPE_INT32: snprintf (tmp, sizeof tmp, "%d", v->value.v_int32); break;
   case BSON_TYPE_INT64: snprintf (tmp, sizeof tmp, "%" PRId64, v->value.v_int64); break;
   case BSON_TYPE_DOUBLE: {
      double d = v->value.v_double;
      if (isnan (d)) {
         snprintf (tmp, sizeof tmp, "NaN");
      } else if (isinf (d)) {
         snprintf (tmp, sizeof tmp, d > 0 ? "Infinity" : "-Infinity");
      } else if (d == trunc (d) && fabs (d) < 1e15) {
         snprintf (tmp, sizeof tmp, "%.0f", d);
      } else {
         snprintf (tmp, sizeof tmp, "%.17g", d);
         /* shortest round-trip form */
         for (int prec = 1; prec <= 17; prec++) {
            char t2[64];
            snprintf (t2, sizeof t2, "%.*g", prec, d);
            if (strtod (t2, NULL) == d) {
               memcpy (tmp, t2, sizeof t2);
               break;
            }
         }
      }
      break;
   }
   case BSON_TYPE_DECIMAL128: bson_decimal128_to_string (&v->value.v_decimal128, tmp); break;
   case BSON_TYPE_BOOL: snprintf (tmp, sizeof tmp, "%s", v->value.v_bool ? "true" : "false"); break;
   case BSON_TYPE_OID: bson_oid_to_string (&v->value.v_oid, tmp); break;
   case BSON_TYPE_DATE_TIME: return x_format_date (ev, v->value.v_datetime, NULL, "%Y-%m-%dT%H:%M:%S.%LZ", out);
   default: return x_fail (ev, 241, "Unsupported conversion from %s to string", tname (v));
   }
   x_str (ev->arena, tmp, strlen (tmp), out);
   return true;
}


/* target type codes for $convert */
static int
convert_target (const bson_value_t *to)
{
   int t = -1;
   if (to->value_type == BSON_TYPE_UTF8) {
      if (!dj_type_from_name (to->value.v_utf8.str, &t)) {
         return -1;
      }
      return t;
   }
   int64_t code;
   if (dj_value_as_int64_exact (to, &code)) {
      return (int) code;
   }
   return -1;
}

/* A double or decimal v truncated to an integer in [lo, -lo): NaN,
 * infinities and values out of range are ConversionFailure, as mongod's
 * (and the C cast of such a double would be undefined). */
static bool
truncated (dj_eval_t *ev, const bson_value_t *v, int64_t lo, int64_t *out)
{
   double d = trunc (dj_value_as_double (v));
   if (!isfinite (d) || d < (double) lo || d >= -(double) lo) {
      return x_fail (ev, 241, "Conversion would overflow target type in $convert with no onError value: %g", d);
   }
   *out = (int64_t) d;
   return true;
}

static bool
convert (dj_eval_t *ev, const bson_value_t *v, int to, bson_value_t *out)
{
   char s[128];
   switch (to) {
   case BSON_TYPE_DOUBLE:
      if (isnum (v) || v->value_type == BSON_TYPE_BOOL) {
         set_double (out, dj_value_as_double (v));
         return true;
      }
      if (v->value_type == BSON_TYPE_DATE_TIME) {
         set_double (out, (double) v->value.v_datetime);
         return true;
      }
      if (v->value_type == BSON_TYPE_UTF8) {
         char *end;
         double d = strtod (v->value.v_utf8.str, &end);
         if (*v->value.v_utf8.str && !*end && !isspace ((unsigned char) v->value.v_utf8.str[0])) {
            set_double (out, d);
            return true;
         }
         return x_fail (ev, 241, "Failed to parse number '%s' in $convert with no onError value: Did not consume whole string.",
                      v->value.v_utf8.str);
      }
      break;
   case BSON_TYPE_INT32:
   case BSON_TYPE_INT64: {
      int64_t x = 0;
      int64_t lo = to == BSON_TYPE_INT32 ? INT32_MIN : INT64_MIN, hi = to == BSON_TYPE_INT32 ? INT32_MAX : INT64_MAX;
      if (v->value_type == BSON_TYPE_BOOL) {
         x = v->value.v_bool;
      } else if (v->value_type == BSON_TYPE_INT32 || v->value_type == BSON_TYPE_INT64) {
         x = v->value_type == BSON_TYPE_INT32 ? v->value.v_int32 : v->value.v_int64;
      } else if (v->value_type == BSON_TYPE_DOUBLE || v->value_type == BSON_TYPE_DECIMAL128) {
         if (!truncated (ev, v, lo, &x)) {
            return false;
         }
      } else if (v->value_type == BSON_TYPE_DATE_TIME && to == BSON_TYPE_INT64) {
         x = v->value.v_datetime;
      } else if (v->value_type == BSON_TYPE_UTF8) {
         char *end;
         errno = 0;
         long long ll = strtoll (v->value.v_utf8.str, &end, 10);
         if (!*v->value.v_utf8.str || *end || errno) {
            return x_fail (ev, 241, "Failed to parse number '%s' in $convert with no onError value: Did not consume whole string.",
                         v->value.v_utf8.str);
         }
         x = ll;
      } else {
         break;
      }
      if (x < lo || x > hi) {
         return x_fail (ev, 241, "Conversion would overflow target type in $convert with no onError value: %" PRId64, x);
      }
      if (to == BSON_TYPE_INT32) {
         out->value_type = BSON_TYPE_INT32;
         out->value.v_int32 = (int32_t) x;
      } else {
         set_long (out, x);
      }
      return true;
   }
   case BSON_TYPE_DECIMAL128:
      if (isnum (v) || v->value_type == BSON_TYPE_BOOL) {
         bson_value_t n = *v;
         if (v->value_type == BSON_TYPE_BOOL) {
            set_int (&n, v->value.v_bool);
         }
         if (v->value_type == BSON_TYPE_DOUBLE) {
            /* $toDecimal keeps the double's shortest decimal form */
            bson_value_t sv;
            if (!x_stringify (ev, v, &sv)) {
               return false;
            }
            out->value_type = BSON_TYPE_DECIMAL128;
            bson_decimal128_from_string (sv.value.v_utf8.str, &out->value.v_decimal128);
            return true;
         }
         dj_decimal_from_value (&n, out);
         return true;
      }
      if (v->value_type == BSON_TYPE_UTF8) {
         out->value_type = BSON_TYPE_DECIMAL128;
         if (bson_decimal128_from_string (v->value.v_utf8.str, &out->value.v_decimal128)) {
            bson_decimal128_to_string (&out->value.v_decimal128, s);
            if (strcmp (s, "NaN") || !strcasecmp (v->value.v_utf8.str, "nan")) {
               return true;
            }
         }
         return x_fail (ev, 241, "Failed to parse number '%s' in $convert with no onError value", v->value.v_utf8.str);
      }
      if (v->value_type == BSON_TYPE_DATE_TIME) {
         bson_value_t n;
         set_long (&n, v->value.v_datetime);
         dj_decimal_from_value (&n, out);
         return true;
      }
      break;
   case BSON_TYPE_UTF8: return x_stringify (ev, v, out);
   case BSON_TYPE_BOOL:
      set_bool (out, dj_value_truthy (v));
      return true;
   case BSON_TYPE_DATE_TIME: {
      int64_t ms;
      bool had;
      if (v->value_type == BSON_TYPE_DATE_TIME) {
         *out = *v;
         return true;
      }
      if (v->value_type == BSON_TYPE_INT64) {
         set_date (out, v->value.v_int64);
         return true;
      }
      if (v->value_type == BSON_TYPE_DOUBLE || v->value_type == BSON_TYPE_DECIMAL128) {
         /* a double or decimal names milliseconds */
         if (!truncated (ev, v, INT64_MIN, &ms)) {
            return false;
         }
         set_date (out, ms);
         return true;
      }
      if ((v->value_type == BSON_TYPE_OID || v->value_type == BSON_TYPE_TIMESTAMP) && x_date_ms (ev, v, &ms)) {
         set_date (out, ms);
         return true;
      }
      if (v->value_type == BSON_TYPE_UTF8 && x_parse_iso (v->value.v_utf8.str, NULL, &ms, &had)) {
         set_date (out, ms);
         return true;
      }
      if (v->value_type == BSON_TYPE_UTF8) {
         return x_fail (ev, 241, "Error parsing date string '%s'", v->value.v_utf8.str);
      }
      break;
   }
   case BSON_TYPE_OID:
      if (v->value_type == BSON_TYPE_OID) {
         *out = *v;
         return true;
      }
      if (v->value_type == BSON_TYPE_UTF8 && bson_oid_is_valid (v->value.v_utf8.str, v->value.v_utf8.len) &&
          v->value.v_utf8.len == 24) {
         out->value_type = BSON_TYPE_OID;
         bson_oid_init_from_string (&out->value.v_oid, v->value.v_utf8.str);
         return true;
      }
      if (v->value_type == BSON_TYPE_UTF8) {
         return x_fail (ev, 241, "Failed to parse objectId '%s' in $convert with no onError value: Invalid string length for parsing to OID, expected 24 but found %u",
                      v->value.v_utf8.str, v->value.v_utf8.len);
      }
      break;
   default: return x_fail (ev, 2, "Unknown type name: %d", to);
   }
   return x_fail (ev, 241, "Unsupported conversion from %s to %s in $convert with no onError value", tname (v),
                dj_type_name ((bson_type_t) to));
}

bool
op_type (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   (void) e;
   const char *s = tname (v);
   x_str (ev->arena, s, strlen (s), out);
   return true;
}

bool
op_is_number (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   (void) e, (void) ev;
   set_bool (out, isnum (v));
   return true;
}

bool
op_is_array (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   (void) e, (void) ev;
   set_bool (out, v->value_type == BSON_TYPE_ARRAY);
   return true;
}

/* binData -> string under $convert's format (MongoDB 8.0): "uuid" a UUID
 * (subtype 4, 16 bytes) in its canonical 8-4-4-4-12 lowercase hex form,
 * "base64" RFC 4648 base64 with padding, "utf8" the bytes themselves when
 * they are valid UTF-8. Data that does not fit the format is a
 * ConversionFailure (onError applies). The engine writes no other format
 * (hex, base64url, auto): they are refused by name.
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/convert/ */
static bool
binary_to_string (dj_eval_t *ev, const bson_value_t *v, const bson_value_t *format, bson_value_t *out)
{
   const uint8_t *p = v->value.v_binary.data;
   uint32_t n = v->value.v_binary.data_len;
   if (format->value_type != BSON_TYPE_UTF8) {
      return x_fail (ev, 2, "$convert's format must be a string, not %s", tname (format));
   }
   const char *f = format->value.v_utf8.str;
   if (!strcmp (f, "uuid")) {
      char s[37];
      size_t k = 0;
      if (v->value.v_binary.subtype != BSON_SUBTYPE_UUID || n != 16) {
         return x_fail (ev, 241, "Failed to convert binData of subtype %d and length %u to a UUID string in $convert with no onError value",
                        (int) v->value.v_binary.subtype, n);
      }
      for (uint32_t i = 0; i < 16; i++) {
         if (i == 4 || i == 6 || i == 8 || i == 10) {
            s[k++] = '-';
         }
         k += (size_t) snprintf (s + k, sizeof s - k, "%02x", p[i]);
      }
      x_str (ev->arena, s, k, out);
      return true;
   }
   if (!strcmp (f, "base64")) {
      static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
      size_t len = ((size_t) n + 2) / 3 * 4;
      char *s = bson_malloc (len + 1); /* owned here, copied into the arena */
      size_t k = 0;
      for (uint32_t i = 0; i < n; i += 3) {
         uint32_t w = (uint32_t) p[i] << 16 | (i + 1 < n ? (uint32_t) p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
         s[k++] = b64[w >> 18 & 63];
         s[k++] = b64[w >> 12 & 63];
         s[k++] = i + 1 < n ? b64[w >> 6 & 63] : '=';
         s[k++] = i + 2 < n ? b64[w & 63] : '=';
      }
      x_str (ev->arena, s, k, out);
      bson_free (s);
      return true;
   }
   if (!strcmp (f, "utf8")) {
      if (!bson_utf8_validate ((const char *) p, n, false)) {
         return x_fail (ev, 241, "Failed to convert binData to a UTF-8 string in $convert with no onError value: invalid UTF-8");
      }
      x_str (ev->arena, (const char *) p, n, out);
      return true;
   }
   if (!strcmp (f, "hex") || !strcmp (f, "base64url") || !strcmp (f, "auto")) {
      return x_fail (ev, 2, "$convert's format \"%s\" is not one djongo's engine writes (uuid, base64, utf8 are)", f);
   }
   return x_fail (ev, 2, "Invalid format for $convert: \"%s\"", f);
}

/* input, to (evaluated); onError, onNull, format (evaluated when needed) */
bool
op_convert (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   bson_value_t *a = &v[0], *b = &v[1];
   if (nullish (b)) {
      set_null (out);
      return true;
   }
   int to = convert_target (b);
   if (to < 0) {
      return x_fail (ev, 2, "Unknown type name: %s", b->value_type == BSON_TYPE_UTF8 ? b->value.v_utf8.str : tname (b));
   }
   if (nullish (a)) {
      if (e->args[3]) {
         return x_eval (e->args[3], ev, out);
      }
      set_null (out);
      return true;
   }
   bool ok;
   if (e->args[4] && a->value_type == BSON_TYPE_BINARY && to == BSON_TYPE_UTF8) {
      bson_value_t format;
      if (!x_eval (e->args[4], ev, &format)) {
         return false;
      }
      ok = binary_to_string (ev, a, &format, out);
   } else {
      ok = convert (ev, a, to, out);
   }
   if (!ok) {
      if (e->args[2]) {
         return x_eval (e->args[2], ev, out);
      }
      return false;
   }
   return true;
}

/* $toString, $toInt, ... (aux: the target type) */
bool
op_to (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   return convert (ev, v, e->op->aux, out);
}

/* {$toHashedIndexKey: x}: the key a hashed index holds for x (values/hash.c);
 * a missing value hashes as null, as a hashed index stores it.
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/toHashedIndexKey/ */
bool
op_to_hashed_index_key (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   (void) e;
   (void) ev;
   bson_value_t in = v[0];
   if (in.value_type == BSON_TYPE_EOD) {
      in.value_type = BSON_TYPE_NULL;
   }
   out->value_type = BSON_TYPE_INT64;
   out->value.v_int64 = dj_value_hash64 (&in);
   return true;
}
