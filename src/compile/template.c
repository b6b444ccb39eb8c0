/*
 * template.c -- the compiler's fixed shapes written as JSON templates.
 *
 * Most of what the compiler emits is a fixed shape with a few holes:
 * {$ifNull: [<e>, null]}, {$lookup: {from: <table>, ..., as: <field>}}. A
 * template is that shape as JSON text, with 'single-quoted' strings so
 * that it reads in C without backslashes; a string "@<d>" (d a digit) is
 * hole d, which args[d] fills (cx_arg_t, compile-private.h). A hole may
 * stand as a key too ({'@0': {'$ne': null}}), and a string argument may be
 * spliced into a longer string or key: '$@0' is the field path of field
 * @0, '@0_p' a name made from @0.
 *
 * Why the text is walked at each use rather than read once with
 * bson_new_from_json(): binding a cached plan takes about 2 µs
 * (bench/results/sql_compile.md); parsing into a bson_t and copying it out
 * again would cost as much as the rest. Walking the text appends straight
 * into the parent, allocating only for a spliced string.
 *
 * Numbers read as libbson's JSON reader reads them, so the BSON types are
 * those the hand-built documents had: an integer is an int32 when it fits,
 * else an int64; one with '.' or an exponent is a double. Strings have no
 * escapes. Templates are constants of the compiler (or printf'd from
 * them), never user text: a malformed one is a bug, and asserts.
 */
#include <stdlib.h>
#include <string.h>

#include "compile-private.h"

typedef struct {
   const char *p; /* the next character of the template */
   cx_t *cx;
   const cx_arg_t *args;
   int nargs;
   bool ok; /* false once a hole failed to fill: the walk goes on, so that
               every document it opened is closed, but fills nothing more
               (the first error stays the one reported) */
} walk_t;

static void value (walk_t *w, bson_t *parent, const char *key, int keylen);

static void
skip_space (walk_t *w)
{
   while (*w->p == ' ' || *w->p == '\n' || *w->p == '\t' || *w->p == '\r') {
      w->p++;
   }
}

/* A quoted string at w->p: *s (borrowed from the template), its length,
 * and whether it has an '@' (a hole, or one spliced in). */
static bool
string (walk_t *w, const char **s, int *len)
{
   char quote = *w->p++;
   bool at = false;
   BSON_ASSERT (quote == '\'' || quote == '"');
   *s = w->p;
   for (; *w->p != quote; w->p++) {
      BSON_ASSERT (*w->p);
      at |= *w->p == '@';
   }
   *len = (int) (w->p - *s);
   w->p++;
   return at;
}

/* The hole a string is, "@<d>", or NULL. */
static const cx_arg_t *
hole (const walk_t *w, const char *s, int len)
{
   if (len != 2 || s[0] != '@' || s[1] < '0' || s[1] > '9') {
      return NULL;
   }
   BSON_ASSERT (s[1] - '0' < w->nargs);
   return &w->args[s[1] - '0'];
}

/* A string with holes spliced in ("$@0" the field path of field @0,
 * "@0_p" a name made from @0): a new string (bson_free()). Rare enough to
 * allocate: no buffer stays on the stack of recursive calls. */
static char *
splice_holes (const walk_t *w, const char *s, int len)
{
   bson_string_t *out = bson_string_new (NULL);
   for (const char *p = s; p < s + len; p++) {
      if (*p == '@' && p + 1 < s + len && p[1] >= '0' && p[1] <= '9') {
         const cx_arg_t *a = hole (w, p, 2);
         BSON_ASSERT (a->kind == CX_A_STR);
         bson_string_append (out, a->str);
         p++;
      } else {
         bson_string_append_c (out, *p);
      }
   }
   return bson_string_free (out, false);
}

/* Fills hole a under key (keylen bytes, or NUL-terminated when -1). */
static void
fill (walk_t *w, const cx_arg_t *a, bson_t *parent, const char *key, int keylen)
{
   char buf[64];
   if (!w->ok) {
      return;
   }
   if (keylen >= 0) { /* the emitters take NUL-terminated keys */
      BSON_ASSERT ((size_t) keylen < sizeof buf);
      memcpy (buf, key, (size_t) keylen);
      buf[keylen] = '\0';
      key = buf;
   }
   switch (a->kind) {
   case CX_A_VALUE: w->ok = cx_agg_value (w->cx, a->e, parent, key); break;
   case CX_A_OR_NULL: w->ok = cx_agg_value_or_null (w->cx, a->e, parent, key); break;
   case CX_A_TRUE: w->ok = cx_agg_truth (w->cx, a->e, true, parent, key); break;
   case CX_A_FALSE: w->ok = cx_agg_truth (w->cx, a->e, false, parent, key); break;
   case CX_A_FILTER: w->ok = cx_filter (w->cx, a->e, true, parent, key); break;
   case CX_A_CONST: w->ok = cx_append_const (w->cx, a->e, parent, key); break;
   case CX_A_STR: w->ok = BSON_APPEND_UTF8 (parent, key, a->str); break;
   case CX_A_INT32: w->ok = BSON_APPEND_INT32 (parent, key, (int32_t) a->i64); break;
   case CX_A_INT64: w->ok = BSON_APPEND_INT64 (parent, key, a->i64); break;
   case CX_A_BOOL: w->ok = BSON_APPEND_BOOL (parent, key, a->i64 != 0); break;
   case CX_A_DOC: w->ok = BSON_APPEND_DOCUMENT (parent, key, a->doc); break;
   case CX_A_ARRAY: w->ok = bson_append_array (parent, key, -1, a->doc); break;
   case CX_A_FN: w->ok = a->fn (w->cx, a->e, parent, key); break;
   default: BSON_ASSERT (false);
   }
}

/* The members of a document or the elements of an array, up to `close`;
 * array elements are keyed from *n on. */
static void
members (walk_t *w, bson_t *parent, char close, uint32_t *n)
{
   skip_space (w);
   while (*w->p != close) {
      cx_idx_t k;
      const char *key;
      int keylen = -1;
      char *spliced = NULL;
      if (n) {
         key = cx_idx (&k, (*n)++);
      } else {
         const cx_arg_t *a;
         if (!string (w, &key, &keylen)) {
            /* the template's own key */
         } else if ((a = hole (w, key, keylen))) {
            BSON_ASSERT (a->kind == CX_A_STR);
            key = a->str;
            keylen = -1;
         } else {
            key = spliced = splice_holes (w, key, keylen);
            keylen = -1;
         }
         skip_space (w);
         BSON_ASSERT (*w->p == ':');
         w->p++;
      }
      value (w, parent, key, keylen);
      if (spliced) { /* (bson_free is an indirect call, even for NULL) */
         bson_free (spliced);
      }
      skip_space (w);
      if (*w->p == ',') {
         w->p++;
         skip_space (w);
      } else {
         BSON_ASSERT (*w->p == close);
      }
   }
   w->p++;
}

/* The value at w->p under key (keylen bytes, or NUL-terminated when -1). */
static void
value (walk_t *w, bson_t *parent, const char *key, int keylen)
{
   bson_t child;
   uint32_t n = 0;
   skip_space (w);
   switch (*w->p) {
   case '{':
      w->p++;
      bson_append_document_begin (parent, key, keylen, &child);
      members (w, &child, '}', NULL);
      bson_append_document_end (parent, &child);
      break;
   case '[':
      w->p++;
      bson_append_array_begin (parent, key, keylen, &child);
      members (w, &child, ']', &n);
      bson_append_array_end (parent, &child);
      break;
   case '\'':
   case '"': {
      const char *s;
      int len;
      const cx_arg_t *a = NULL;
      char *spliced = NULL;
      if (string (w, &s, &len) && !(a = hole (w, s, len))) {
         s = spliced = splice_holes (w, s, len);
         len = -1;
      }
      if (a) {
         fill (w, a, parent, key, keylen);
      } else {
         bson_append_utf8 (parent, key, keylen, s, len);
      }
      if (spliced) {
         bson_free (spliced);
      }
      break;
   }
   case 't':
   case 'f':
      BSON_ASSERT (!strncmp (w->p, "true", 4) || !strncmp (w->p, "false", 5));
      bson_append_bool (parent, key, keylen, *w->p == 't');
      w->p += *w->p == 't' ? 4 : 5;
      break;
   case 'n':
      BSON_ASSERT (!strncmp (w->p, "null", 4));
      bson_append_null (parent, key, keylen);
      w->p += 4;
      break;
   default: {
      char *end;
      long long i = strtoll (w->p, &end, 10);
      BSON_ASSERT (end > w->p);
      if (*end == '.' || *end == 'e' || *end == 'E') {
         bson_append_double (parent, key, keylen, strtod (w->p, &end));
      } else if (i >= INT32_MIN && i <= INT32_MAX) {
         bson_append_int32 (parent, key, keylen, (int32_t) i);
      } else {
         bson_append_int64 (parent, key, keylen, i);
      }
      w->p = end;
   }
   }
}

bool
cx_template (cx_t *cx, const char *tpl, const cx_arg_t *args, int nargs, bson_t *parent, const char *key)
{
   walk_t w = {.p = tpl, .cx = cx, .args = args, .nargs = nargs, .ok = true};
   value (&w, parent, key, -1);
   skip_space (&w);
   BSON_ASSERT (*w.p == '\0');
   return w.ok;
}

bson_t *
cx_template_new (cx_t *cx, const char *tpl, const cx_arg_t *args, int nargs)
{
   walk_t w = {.p = tpl, .cx = cx, .args = args, .nargs = nargs, .ok = true};
   bson_t *doc = bson_new ();
   skip_space (&w);
   BSON_ASSERT (*w.p == '{');
   w.p++;
   members (&w, doc, '}', NULL);
   skip_space (&w);
   BSON_ASSERT (*w.p == '\0');
   if (!w.ok) {
      bson_destroy (doc);
      return NULL;
   }
   return doc;
}

bool
cx_stages (cx_t *cx, bson_t *pipeline, uint32_t *n, const char *tpl, const cx_arg_t *args, int nargs)
{
   walk_t w = {.p = tpl, .cx = cx, .args = args, .nargs = nargs, .ok = true};
   skip_space (&w);
   if (*w.p == '[') {
      w.p++;
      members (&w, pipeline, ']', n);
   } else {
      cx_idx_t k;
      value (&w, pipeline, cx_idx (&k, (*n)++), -1);
   }
   skip_space (&w);
   BSON_ASSERT (*w.p == '\0');
   return w.ok;
}
