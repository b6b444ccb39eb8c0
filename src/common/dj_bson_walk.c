/*
 * dj_bson_walk.c -- the variable-sized values of a document walk
 * (dj_bson_walk.h): their sizes, checked as libbson's iterator checks
 * them, and any element as a bson_value_t.
 *
 * The layouts are BSON's: https://bsonspec.org/spec.html
 */
#include "dj_bson_walk.h"

static uint64_t
le64 (const uint8_t *p)
{
   uint64_t n;
   memcpy (&n, p, 8);
   return BSON_UINT64_FROM_LE (n);
}

/* (a value's size + 1: 0, the default, for the variable ones) */
const uint8_t dj_bwalk_fixed[256] = {
   [BSON_TYPE_DOUBLE] = 8 + 1,
   [BSON_TYPE_DATE_TIME] = 8 + 1,
   [BSON_TYPE_TIMESTAMP] = 8 + 1,
   [BSON_TYPE_INT64] = 8 + 1,
   [BSON_TYPE_INT32] = 4 + 1,
   [BSON_TYPE_NULL] = 0 + 1,
   [BSON_TYPE_UNDEFINED] = 0 + 1,
   [BSON_TYPE_MINKEY] = 0 + 1,
   [BSON_TYPE_MAXKEY] = 0 + 1,
   [BSON_TYPE_OID] = 12 + 1,
   [BSON_TYPE_DECIMAL128] = 16 + 1,
};

/* A string value (int32 length counting its 0, the bytes, the 0) at v
 * with room bytes left: its size, or 0 when it does not fit. */
static uint32_t
string_size (const uint8_t *v, size_t room)
{
   if (room < 5) {
      return 0;
   }
   uint32_t l = dj_bwalk_u32 (v);
   if (l < 1 || l > room - 4 || v[4 + l - 1] != 0) {
      return 0;
   }
   return 4 + l;
}

uint32_t
dj_bwalk_value_size (uint8_t type, const uint8_t *v, size_t room, bool *ok)
{
   uint32_t n = 0, l;
   const uint8_t *z;
   switch (type) {
   case BSON_TYPE_UTF8:
   case BSON_TYPE_CODE:
   case BSON_TYPE_SYMBOL: n = string_size (v, room); break;
   case BSON_TYPE_DOCUMENT:
   case BSON_TYPE_ARRAY:
      l = room >= 4 ? dj_bwalk_u32 (v) : 0;
      n = l >= 5 && l <= room ? l : 0;
      break;
   case BSON_TYPE_BINARY:
      l = room >= 5 ? dj_bwalk_u32 (v) : 0;
      if (room >= 5 && l <= room - 5) {
         n = 5 + l;
         /* the old binary subtype holds its length again inside */
         if (v[4] == BSON_SUBTYPE_BINARY_DEPRECATED && (l < 4 || dj_bwalk_u32 (v + 5) != l - 4)) {
            n = 0;
         }
      }
      break;
   case BSON_TYPE_BOOL: n = room >= 1 && v[0] <= 1 ? 1 : 0; break;
   case BSON_TYPE_REGEX:
      /* the pattern, then the options: two C strings */
      z = room ? memchr (v, 0, room) : NULL;
      z = z && (size_t) (z + 1 - v) < room ? memchr (z + 1, 0, room - (size_t) (z + 1 - v)) : NULL;
      n = z ? (uint32_t) (z + 1 - v) : 0;
      break;
   case BSON_TYPE_DBPOINTER:
      n = string_size (v, room);
      n = n && room - n >= 12 ? n + 12 : 0;
      break;
   case BSON_TYPE_CODEWSCOPE:
      /* int32 total, the code as a string, the scope as a document; the
       * code's terminating 0 unchecked, as libbson's iterator and
       * bson_validate() leave it */
      l = room >= 4 ? dj_bwalk_u32 (v) : 0;
      if (l >= 14 && l <= room) {
         uint32_t s = dj_bwalk_u32 (v + 4);
         uint32_t d = s >= 1 && s <= l - 8 - 5 ? dj_bwalk_u32 (v + 8 + s) : 0;
         n = d >= 5 && d == l - 8 - s ? l : 0;
      }
      break;
   default: break; /* an unknown type */
   }
   *ok = n != 0;
   return n;
}

void
dj_bson_value_read (uint8_t type, const uint8_t *val, uint32_t len, bson_value_t *out)
{
   const uint8_t *v = val;
   memset (out, 0, sizeof *out);
   out->value_type = (bson_type_t) type;
   switch (type) {
   case BSON_TYPE_DOUBLE: {
      uint64_t bits = le64 (v);
      memcpy (&out->value.v_double, &bits, 8);
      break;
   }
   case BSON_TYPE_UTF8:
      out->value.v_utf8.str = (char *) v + 4;
      out->value.v_utf8.len = dj_bwalk_u32 (v) - 1;
      break;
   case BSON_TYPE_DOCUMENT:
   case BSON_TYPE_ARRAY:
      out->value.v_doc.data = (uint8_t *) v;
      out->value.v_doc.data_len = len;
      break;
   case BSON_TYPE_BINARY:
      out->value.v_binary.subtype = (bson_subtype_t) v[4];
      if (v[4] == BSON_SUBTYPE_BINARY_DEPRECATED) {
         out->value.v_binary.data = (uint8_t *) v + 9;
         out->value.v_binary.data_len = dj_bwalk_u32 (v + 5);
      } else {
         out->value.v_binary.data = (uint8_t *) v + 5;
         out->value.v_binary.data_len = dj_bwalk_u32 (v);
      }
      break;
   case BSON_TYPE_OID: memcpy (out->value.v_oid.bytes, v, 12); break;
   case BSON_TYPE_BOOL: out->value.v_bool = v[0] != 0; break;
   case BSON_TYPE_DATE_TIME: out->value.v_datetime = (int64_t) le64 (v); break;
   case BSON_TYPE_REGEX:
      out->value.v_regex.regex = (char *) v;
      out->value.v_regex.options = (char *) v + strlen ((const char *) v) + 1;
      break;
   case BSON_TYPE_DBPOINTER:
      out->value.v_dbpointer.collection = (char *) v + 4;
      out->value.v_dbpointer.collection_len = dj_bwalk_u32 (v) - 1;
      memcpy (out->value.v_dbpointer.oid.bytes, v + 4 + dj_bwalk_u32 (v), 12);
      break;
   case BSON_TYPE_CODE:
      out->value.v_code.code = (char *) v + 4;
      out->value.v_code.code_len = dj_bwalk_u32 (v) - 1;
      break;
   case BSON_TYPE_SYMBOL:
      out->value.v_symbol.symbol = (char *) v + 4;
      out->value.v_symbol.len = dj_bwalk_u32 (v) - 1;
      break;
   case BSON_TYPE_CODEWSCOPE: {
      uint32_t l = dj_bwalk_u32 (v + 4);
      out->value.v_codewscope.code = (char *) v + 8;
      out->value.v_codewscope.code_len = l - 1;
      out->value.v_codewscope.scope_data = (uint8_t *) v + 8 + l;
      out->value.v_codewscope.scope_len = dj_bwalk_u32 (v + 8 + l);
      break;
   }
   case BSON_TYPE_INT32: out->value.v_int32 = (int32_t) dj_bwalk_u32 (v); break;
   case BSON_TYPE_TIMESTAMP:
      out->value.v_timestamp.increment = dj_bwalk_u32 (v);
      out->value.v_timestamp.timestamp = dj_bwalk_u32 (v + 4);
      break;
   case BSON_TYPE_INT64: out->value.v_int64 = (int64_t) le64 (v); break;
   case BSON_TYPE_DECIMAL128:
      out->value.v_decimal128.low = le64 (v);
      out->value.v_decimal128.high = le64 (v + 8);
      break;
   default: break; /* null, undefined, minkey, maxkey: the type alone */
   }
}

bool
dj_bson_put_scalar (dj_buf_t *b, const char *key, size_t klen, const bson_value_t *v)
{
   uint64_t u;
   switch (v->value_type) {
   case BSON_TYPE_NULL:
   case BSON_TYPE_BOOL:
   case BSON_TYPE_INT32:
   case BSON_TYPE_INT64:
   case BSON_TYPE_DOUBLE:
      break;
   case BSON_TYPE_UTF8:
      if (v->value.v_utf8.len >= INT32_MAX / 2) {
         return false;
      }
      break;
   default:
      return false;
   }
   dj_buf_putc (b, (uint8_t) v->value_type);
   dj_buf_append (b, key, klen + 1);
   switch (v->value_type) {
   case BSON_TYPE_BOOL:
      dj_buf_putc (b, v->value.v_bool ? 1 : 0);
      break;
   case BSON_TYPE_INT32:
      dj_buf_put_u32le (b, (uint32_t) v->value.v_int32);
      break;
   case BSON_TYPE_INT64:
   case BSON_TYPE_DOUBLE:
      if (v->value_type == BSON_TYPE_INT64) {
         u = (uint64_t) v->value.v_int64;
      } else {
         memcpy (&u, &v->value.v_double, sizeof u);
      }
      dj_buf_put_u32le (b, (uint32_t) (u & 0xffffffffu));
      dj_buf_put_u32le (b, (uint32_t) (u >> 32));
      break;
   case BSON_TYPE_UTF8:
      dj_buf_put_u32le (b, v->value.v_utf8.len + 1);
      dj_buf_append (b, v->value.v_utf8.str, v->value.v_utf8.len);
      dj_buf_putc (b, 0);
      break;
   default:
      break; /* null: no value bytes */
   }
   return true;
}

bool
dj_bson_put_elements (dj_buf_t *b, bson_t *one, bool ok)
{
   if (ok) {
      dj_buf_append (b, bson_get_data (one) + 4, one->len - 5); /* without the length and the trailing 0 */
   }
   bson_destroy (one);
   return ok;
}

bool
dj_bwalk_fields (const uint8_t *data, uint32_t len, dj_bwalk_field_t *f, int n)
{
   dj_bwalk_t w;
   int want = 0;
   for (int i = 0; i < n; i++) {
      f[i].has = false;
      want += f[i].name != NULL;
   }
   if (!dj_bwalk_init (&w, data, len)) {
      return false;
   }
   while (want && dj_bwalk_next (&w)) {
      for (int i = 0; i < n; i++) {
         dj_bwalk_field_t *s = &f[i];
         if (s->name && !s->has && s->len == w.key_len && !memcmp (s->name, w.key, w.key_len)) {
            s->has = true;
            s->type = w.type;
            s->val = w.val;
            s->val_len = w.val_len;
            want--;
         }
      }
   }
   if (w.bad) {
      for (int i = 0; i < n; i++) {
         f[i].has = false;
      }
      return false;
   }
   return true;
}
