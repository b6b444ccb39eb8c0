/*
 * ops_string.c -- strings: $concat, $substr*, $strLen*, $indexOf*, case,
 * trimming, $split, $replaceOne/$replaceAll, the $regex* operators (PCRE2)
 * and $strcasecmp.
 *
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/#string-expression-operators
 *
 * Their rows (name, arity, argument rule) are in expr.c's ops[].
 */
#include "expr-private.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <ctype.h>
#include <inttypes.h>
#include <pcre2.h>

static bool
as_str (dj_eval_t *ev, const char *op, const bson_value_t *v, const char **s, uint32_t *n)
{
   if (dj_value_string (v, s, n)) {
      return true;
   }
   return x_fail (ev, 16702, "%s only supports strings, not %s", op, tname (v));
}

static size_t
utf8_cp_len (const char *s, size_t n)
{
   size_t c = 0;
   for (size_t i = 0; i < n; i++) {
      c += ((unsigned char) s[i] & 0xC0) != 0x80;
   }
   return c;
}

/* byte offset of code point cp (or n if past the end) */
static size_t
utf8_offset (const char *s, size_t n, size_t cp)
{
   size_t i = 0, c = 0;
   while (i < n && c < cp) {
      i++;
      while (i < n && ((unsigned char) s[i] & 0xC0) == 0x80) {
         i++;
      }
      c++;
   }
   return i;
}

/* the string a dj_buf_t holds, copied into the arena */
static void
buf_str (dj_eval_t *ev, const dj_buf_t *b, bson_value_t *out)
{
   x_str (ev->arena, b->data ? (char *) b->data : "", b->len, out);
}

static pcre2_code *
compile_re (dj_eval_t *ev, const char *op, const bson_value_t *rv, const bson_value_t *ov)
{
   const char *pat, *opts = "";
   uint32_t flags = PCRE2_UTF;
   if (rv->value_type == BSON_TYPE_REGEX) {
      pat = rv->value.v_regex.regex;
      opts = rv->value.v_regex.options;
      if (ov && ov->value_type == BSON_TYPE_UTF8 && *opts) {
         x_fail (ev, 51075, "%s: regex option(s) specified in both 'regex' and 'option' fields", op);
         return NULL;
      }
   } else if (rv->value_type == BSON_TYPE_UTF8) {
      pat = rv->value.v_utf8.str;
   } else {
      x_fail (ev, 51105, "%s needs 'regex' to be of type string or regex", op);
      return NULL;
   }
   if (ov && ov->value_type == BSON_TYPE_UTF8) {
      opts = ov->value.v_utf8.str;
   } else if (ov && !nullish (ov)) {
      x_fail (ev, 51106, "%s needs 'options' to be of type string", op);
      return NULL;
   }
   char bad;
   if (!dj_regex_flags (opts, &flags, &bad)) {
      x_fail (ev, 51108, "%s invalid flag in regex options: %c", op, bad);
      return NULL;
   }
   int ec;
   PCRE2_SIZE eo;
   pcre2_code *re = pcre2_compile ((PCRE2_SPTR) pat, PCRE2_ZERO_TERMINATED, flags, &ec, &eo, NULL);
   if (!re) {
      PCRE2_UCHAR msg[200];
      pcre2_get_error_message (ec, msg, sizeof msg);
      x_fail (ev, 51111, "Invalid Regex in %s: %s", op, (char *) msg);
   }
   return re;
}

/* one $regexFind result document: {match, idx, captures} */
static void
regex_result (const char *s, pcre2_match_data *md, int rc, bson_t *doc)
{
   PCRE2_SIZE *ov = pcre2_get_ovector_pointer (md);
   BSON_APPEND_UTF8 (doc, "match", "");
   bson_t d2 = BSON_INITIALIZER;
   bson_append_utf8 (&d2, "match", 5, s + ov[0], (int) (ov[1] - ov[0]));
   BSON_APPEND_INT32 (&d2, "idx", (int32_t) utf8_cp_len (s, ov[0]));
   bson_t caps;
   BSON_APPEND_ARRAY_BEGIN (&d2, "captures", &caps);
   for (int i = 1; i < rc || i < (int) pcre2_get_ovector_count (md); i++) {
      char buf[16];
      const char *k = dj_array_key ((uint32_t) (i - 1), buf);
      if (i >= (int) pcre2_get_ovector_count (md)) {
         break;
      }
      if (i >= rc || ov[2 * i] == PCRE2_UNSET) {
         bson_append_null (&caps, k, -1);
      } else {
         bson_append_utf8 (&caps, k, -1, s + ov[2 * i], (int) (ov[2 * i + 1] - ov[2 * i]));
      }
   }
   bson_append_array_end (&d2, &caps);
   bson_reinit (doc);
   bson_concat (doc, &d2);
   bson_destroy (&d2);
}


#define CONCAT_MAX_BYTES (64u * 1024 * 1024)

/* a null argument gives null, a non-string one fails at once */
bool
op_concat (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   (void) v;
   dj_buf_t buf;
   bson_value_t a;
   const char *s = NULL;
   uint32_t sn = 0;
   bool isnull = false;
   dj_buf_init (&buf);
   for (int i = 0; i < e->nargs; i++) {
      if (!x_eval (e->args[i], ev, &a)) {
         dj_buf_cleanup (&buf);
         return false;
      }
      if (nullish (&a)) {
         isnull = true;
         continue;
      }
      if (!as_str (ev, "$concat", &a, &s, &sn)) {
         dj_buf_cleanup (&buf);
         return false;
      }
      /* MongoDB builds the result in a BufBuilder, which refuses to grow
       * past 64 MiB: without that bound a $reduce that doubles a string
       * runs the server out of memory (found by the command fuzzer) */
      size_t want = buf.len + sn;
      if (want > CONCAT_MAX_BYTES) {
         dj_buf_cleanup (&buf);
         return x_fail (ev, 13548, "BufBuilder attempted to grow() to %zu bytes, past the 64MB limit.", want);
      }
      dj_buf_append (&buf, s, sn);
   }
   if (isnull) {
      set_null (out);
   } else {
      buf_str (ev, &buf, out);
   }
   dj_buf_cleanup (&buf);
   return true;
}

/* $substrCP (aux S_CP), $substrBytes/$substr (S_BYTES): string, start, length */
bool
op_substr (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   int64_t start, len;
   bson_value_t *a = &v[0];
   if (a->value_type != BSON_TYPE_UTF8 && !x_stringify (ev, a, a)) {
      return false;
   }
   if (!isnum (&v[1]) || !dj_value_as_int64_exact (&v[1], &start) || !isnum (&v[2]) ||
       !dj_value_as_int64_exact (&v[2], &len)) {
      return x_fail (ev, 34450, "%s: starting index and length must be numeric integers", e->op->name);
   }
   if (start < 0) {
      return x_fail (ev, 34455, "%s: starting index must be non-negative (got: %" PRId64 ")", e->op->name, start);
   }
   const char *s = a->value.v_utf8.str;
   uint32_t sn = a->value.v_utf8.len;
   size_t from, to;
   if (e->op->aux == S_CP) {
      from = utf8_offset (s, sn, (size_t) start);
      to = len < 0 ? sn : utf8_offset (s + from, sn - from, (size_t) len) + from;
   } else {
      from = (size_t) start > sn ? sn : (size_t) start;
      to = len < 0 || from + (size_t) len > sn ? sn : from + (size_t) len;
      if ((from < sn && ((unsigned char) s[from] & 0xC0) == 0x80) || (to < sn && ((unsigned char) s[to] & 0xC0) == 0x80)) {
         return x_fail (ev, 28656, "$substrBytes: Invalid range, starting index is a UTF-8 continuation byte.");
      }
   }
   x_str (ev->arena, s + from, to - from, out);
   return true;
}

/* $strLenCP (aux S_CP), $strLenBytes (S_BYTES) */
bool
op_strlen (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   (void) ev;
   set_int (out, e->op->aux == S_CP ? (int64_t) utf8_cp_len (v->value.v_utf8.str, v->value.v_utf8.len) : v->value.v_utf8.len);
   return true;
}

/* $indexOfCP (aux S_CP), $indexOfBytes (S_BYTES): string, substring, start, end */
bool
op_indexof_str (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   bool cp = e->op->aux == S_CP;
   bson_value_t *b = &v[1];
   if (b->value_type != BSON_TYPE_UTF8) {
      return x_fail (ev, 40092, "%s requires a string as the second argument, found: %s", e->op->name, tname (b));
   }
   const char *s = v[0].value.v_utf8.str;
   uint32_t sn = v[0].value.v_utf8.len;
   int64_t from = 0, to = cp ? (int64_t) utf8_cp_len (s, sn) : sn;
   if (v[2].value_type != BSON_TYPE_EOD && (!dj_value_as_int64_exact (&v[2], &from) || from < 0)) {
      return x_fail (ev, 40097, "%s requires a nonnegative integral start index", e->op->name);
   }
   if (v[3].value_type != BSON_TYPE_EOD && (!dj_value_as_int64_exact (&v[3], &to) || to < 0)) {
      return x_fail (ev, 40097, "%s requires a nonnegative integral end index", e->op->name);
   }
   size_t bfrom = cp ? utf8_offset (s, sn, (size_t) from) : (size_t) from;
   size_t bto = cp ? utf8_offset (s, sn, (size_t) to) : ((size_t) to > sn ? sn : (size_t) to);
   int64_t found = -1;
   for (size_t i = bfrom; i + b->value.v_utf8.len <= bto && i <= sn; i++) {
      if (!memcmp (s + i, b->value.v_utf8.str, b->value.v_utf8.len)) {
         found = cp ? (int64_t) utf8_cp_len (s, i) : (int64_t) i;
         break;
      }
   }
   set_int (out, found);
   return true;
}

/* $toLower (aux S_LOWER), $toUpper (S_UPPER): ASCII only, as MongoDB's */
bool
op_case (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   if (v->value_type != BSON_TYPE_UTF8 && !x_stringify (ev, v, v)) {
      return false;
   }
   x_str (ev->arena, v->value.v_utf8.str, v->value.v_utf8.len, out);
   char *p = (char *) out->value.v_utf8.str;
   for (uint32_t i = 0; i < out->value.v_utf8.len; i++) {
      p[i] = (char) (e->op->aux == S_LOWER ? tolower ((unsigned char) p[i]) : toupper ((unsigned char) p[i]));
   }
   return true;
}

/* $trim, $ltrim, $rtrim (aux S_TRIM, S_LTRIM, S_RTRIM): input, chars */
bool
op_trim (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   bson_value_t *a = &v[0], *b = &v[1];
   if (nullish (a) || b->value_type == BSON_TYPE_NULL) {
      set_null (out);
      return true;
   }
   if (a->value_type != BSON_TYPE_UTF8) {
      return x_fail (ev, 50699, "%s requires its input to be a string, got %s", e->op->name, tname (a));
   }
   const char *chars = " \t\n\v\f\r";
   size_t nchars = strlen (chars);
   bool ws = b->value_type == BSON_TYPE_EOD;
   if (!ws) {
      if (b->value_type != BSON_TYPE_UTF8) {
         return x_fail (ev, 50700, "%s requires 'chars' to be a string, got %s", e->op->name, tname (b));
      }
      chars = b->value.v_utf8.str;
      nchars = b->value.v_utf8.len;
   }
   const char *s = a->value.v_utf8.str;
   size_t lo = 0, hi = a->value.v_utf8.len;
   if (e->op->aux != S_RTRIM) {
      while (lo < hi && memchr (chars, s[lo], nchars) && (ws ? s[lo] != '\0' : true)) {
         lo++;
      }
   }
   if (e->op->aux != S_LTRIM) {
      while (hi > lo && memchr (chars, s[hi - 1], nchars)) {
         hi--;
      }
   }
   x_str (ev->arena, s + lo, hi - lo, out);
   return true;
}

bool
op_split (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   (void) e;
   bson_value_t *b = &v[1];
   if (b->value_type != BSON_TYPE_UTF8) {
      return x_fail (ev, 40086, "$split requires an expression that evaluates to a string as a second argument, found: %s",
                     tname (b));
   }
   if (b->value.v_utf8.len == 0) {
      return x_fail (ev, 40087, "$split requires a non-empty separator");
   }
   bson_t arr = BSON_INITIALIZER;
   uint32_t k = 0;
   const char *s = v[0].value.v_utf8.str;
   uint32_t sn = v[0].value.v_utf8.len;
   size_t start = 0;
   char buf[16];
   for (size_t i = 0; i + b->value.v_utf8.len <= sn;) {
      if (!memcmp (s + i, b->value.v_utf8.str, b->value.v_utf8.len)) {
         bson_append_utf8 (&arr, dj_array_key (k++, buf), -1, s + start, (int) (i - start));
         i += b->value.v_utf8.len;
         start = i;
      } else {
         i++;
      }
   }
   bson_append_utf8 (&arr, dj_array_key (k++, buf), -1, s + start, (int) (sn - start));
   return x_doc_value (ev, &arr, true, out);
}

/* $replaceOne (aux S_ONE), $replaceAll (S_ALL): input, find, replacement */
bool
op_replace (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   const bson_value_t *a = &v[0], *b = &v[1], *c = &v[2];
   if (a->value_type != BSON_TYPE_UTF8 || b->value_type != BSON_TYPE_UTF8 || c->value_type != BSON_TYPE_UTF8) {
      return x_fail (ev, 51746, "%s requires that 'input', 'find' and 'replacement' be strings", e->op->name);
   }
   dj_buf_t buf;
   dj_buf_init (&buf);
   const char *s = a->value.v_utf8.str;
   uint32_t sn = a->value.v_utf8.len;
   size_t i = 0;
   bool done = false;
   while (i <= sn) {
      if (!done && i + b->value.v_utf8.len <= sn && !memcmp (s + i, b->value.v_utf8.str, b->value.v_utf8.len)) {
         dj_buf_append (&buf, c->value.v_utf8.str, c->value.v_utf8.len);
         i += b->value.v_utf8.len;
         done = e->op->aux == S_ONE;
         if (b->value.v_utf8.len == 0) {
            if (i < sn) {
               dj_buf_putc (&buf, (uint8_t) s[i]);
            }
            i++;
         }
         continue;
      }
      if (i < sn) {
         dj_buf_putc (&buf, (uint8_t) s[i]);
      }
      i++;
   }
   buf_str (ev, &buf, out);
   dj_buf_cleanup (&buf);
   return true;
}

/* what a $regex* operator gives for no input: false, null, [] */
static bool
regex_none (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *out)
{
   if (e->op->aux == S_MATCH) {
      set_bool (out, false);
   } else if (e->op->aux == S_FIND) {
      set_null (out);
   } else {
      x_list_value (ev, NULL, 0, out);
   }
   return true;
}

/* $regexMatch, $regexFind, $regexFindAll (aux S_MATCH, S_FIND, S_FINDALL): input, regex, options */
bool
op_regex (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   bson_value_t *a = &v[0];
   if (nullish (&v[1])) {
      return regex_none (e, ev, out);
   }
   if (!nullish (a) && a->value_type != BSON_TYPE_UTF8) {
      return x_fail (ev, 51104, "%s needs 'input' to be of type string", e->op->name);
   }
   pcre2_code *re = compile_re (ev, e->op->name, &v[1], v[2].value_type == BSON_TYPE_EOD ? NULL : &v[2]);
   if (!re) {
      return false;
   }
   if (nullish (a)) {
      pcre2_code_free (re);
      return regex_none (e, ev, out);
   }
   pcre2_match_data *md = pcre2_match_data_create_from_pattern (re, NULL);
   const char *s = a->value.v_utf8.str;
   uint32_t sn = a->value.v_utf8.len;
   if (e->op->aux != S_FINDALL) {
      int rc = pcre2_match (re, (PCRE2_SPTR) s, sn, 0, 0, md, NULL);
      if (e->op->aux == S_MATCH) {
         set_bool (out, rc >= 0);
      } else if (rc < 0) {
         set_null (out);
      } else {
         bson_t doc = BSON_INITIALIZER;
         regex_result (s, md, rc, &doc);
         x_doc_value (ev, &doc, false, out);
      }
   } else {
      bson_t arr = BSON_INITIALIZER;
      uint32_t k = 0;
      PCRE2_SIZE off = 0;
      char buf[16];
      while (off <= sn) {
         int rc = pcre2_match (re, (PCRE2_SPTR) s, sn, off, 0, md, NULL);
         if (rc < 0) {
            break;
         }
         PCRE2_SIZE *ov = pcre2_get_ovector_pointer (md);
         bson_t doc = BSON_INITIALIZER;
         regex_result (s, md, rc, &doc);
         bson_append_document (&arr, dj_array_key (k++, buf), -1, &doc);
         bson_destroy (&doc);
         off = ov[1] > ov[0] ? ov[1] : ov[1] + 1;
      }
      x_doc_value (ev, &arr, true, out);
   }
   pcre2_match_data_free (md);
   pcre2_code_free (re);
   return true;
}

/* a string argument of $strcasecmp: null is "", others their string form */
static bool
casecmp_arg (dj_eval_t *ev, bson_value_t *a, const char **s, uint32_t *n)
{
   *s = "";
   *n = 0;
   if (nullish (a)) {
      return true;
   }
   if (a->value_type != BSON_TYPE_UTF8 && !x_stringify (ev, a, a)) {
      return false;
   }
   *s = a->value.v_utf8.str;
   *n = a->value.v_utf8.len;
   return true;
}

bool
op_strcasecmp (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   (void) e;
   const char *x, *y;
   uint32_t xn, yn;
   if (!casecmp_arg (ev, &v[0], &x, &xn) || !casecmp_arg (ev, &v[1], &y, &yn)) {
      return false;
   }
   int r = 0;
   for (uint32_t i = 0; i < xn && i < yn && !r; i++) {
      r = toupper ((unsigned char) x[i]) - toupper ((unsigned char) y[i]);
   }
   if (!r) {
      r = (xn > yn) - (xn < yn);
   }
   set_int (out, r < 0 ? -1 : r > 0);
   return true;
}

bool
dj_regex_flags (const char *options, uint32_t *flags, char *bad)
{
   /* https://www.mongodb.com/docs/manual/reference/operator/query/regex/#std-label-regex-options */
   for (const char *o = options; *o; o++) {
      switch (*o) {
      case 'i': *flags |= PCRE2_CASELESS; break;
      case 'm': *flags |= PCRE2_MULTILINE; break;
      case 's': *flags |= PCRE2_DOTALL; break;
      case 'x': *flags |= PCRE2_EXTENDED; break;
      case 'u': break;
      default: *bad = *o; return false;
      }
   }
   return true;
}
