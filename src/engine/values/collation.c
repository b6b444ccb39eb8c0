/*
 * collation.c -- locale-aware string comparison (MongoDB collations, ICU).
 *
 * https://www.mongodb.com/docs/manual/reference/collation/
 *
 * A command that carries `collation` makes it the current collation of its
 * thread for as long as it runs (dj_collation_set_current); string
 * comparisons in the matcher, sort, $group keys, distinct and $lookup then
 * follow it. The dispatcher clears it after every command; a command
 * without a collation on a collection created with one takes the
 * collection's (dj_collation_set_default). An index with a collation keys
 * its strings by it (keyenc.c); the planner only uses indexes whose keys
 * compare as the query's strings do, so while a collation is current it
 * scans instead.
 *
 * Collators are built once per distinct specification and kept for the life
 * of the process in a list guarded by g_coll_mu; ICU collators are
 * thread-safe for comparison and sort keys once configured.
 */
#include "dj_values.h"

#include <pthread.h>

#include <stdio.h>
#include <unicode/ucol.h>
#include <unicode/ustring.h>

struct dj_collation {
   char *spec;       /* owned: canonical spec text, the cache key */
   UCollator *coll;  /* owned by the cache, never closed */
   bson_t *doc;      /* owned: the full spec as MongoDB reports it */
   struct dj_collation *next;
};

static pthread_mutex_t g_coll_mu = PTHREAD_MUTEX_INITIALIZER;
static dj_collation_t *g_colls;
static _Thread_local const dj_collation_t *tls_current;

const dj_collation_t *
dj_collation_current (void)
{
   return tls_current;
}

const dj_collation_t *
dj_collation_set_current (const dj_collation_t *c)
{
   const dj_collation_t *prev = tls_current;
   tls_current = c;
   return prev;
}

static _Thread_local const dj_collation_t *tls_default;

const dj_collation_t *
dj_collation_default (void)
{
   return tls_default;
}

void
dj_collation_set_default (const dj_collation_t *c)
{
   tls_default = c;
}

static bool
set_attr (UCollator *c, UColAttribute a, UColAttributeValue v, bson_error_t *error)
{
   UErrorCode st = U_ZERO_ERROR;
   ucol_setAttribute (c, a, v, &st);
   if (U_FAILURE (st)) {
      return dj_err (error, DJ_BadValue, "collation: %s", u_errorName (st));
   }
   return true;
}

static bool
attr_on (const UCollator *uc, UColAttribute a)
{
   UErrorCode st = U_ZERO_ERROR;
   return ucol_getAttribute (uc, a, &st) == UCOL_ON;
}

/* The collation as mongod reports it where it keeps one (a collection's
 * options, an index spec): every field, with the collator's effective
 * values; version is the ICU release's.
 * https://www.mongodb.com/docs/manual/reference/collation/#collation-document */
static bson_t *
full_doc (const UCollator *uc, const char *locale)
{
   UErrorCode st = U_ZERO_ERROR;
   bson_t *d = bson_new ();
   UColAttributeValue first = ucol_getAttribute (uc, UCOL_CASE_FIRST, &st);
   st = U_ZERO_ERROR;
   UColAttributeValue alt = ucol_getAttribute (uc, UCOL_ALTERNATE_HANDLING, &st);
   static const int strengths[] = {[UCOL_PRIMARY] = 1, [UCOL_SECONDARY] = 2, [UCOL_TERTIARY] = 3,
                                   [UCOL_QUATERNARY] = 4, [UCOL_IDENTICAL] = 5};
   UColAttributeValue strength = ucol_getStrength (uc);
   UVersionInfo v;
   char version[U_MAX_VERSION_STRING_LENGTH];
   u_getVersion (v); /* the ICU release, as mongod reports its own ("57.1") */
   u_versionToString (v, version);
   BSON_APPEND_UTF8 (d, "locale", locale);
   BSON_APPEND_BOOL (d, "caseLevel", attr_on (uc, UCOL_CASE_LEVEL));
   BSON_APPEND_UTF8 (d, "caseFirst", first == UCOL_UPPER_FIRST ? "upper" : first == UCOL_LOWER_FIRST ? "lower" : "off");
   BSON_APPEND_INT32 (d, "strength", strength <= UCOL_IDENTICAL ? strengths[strength] : 3);
   BSON_APPEND_BOOL (d, "numericOrdering", attr_on (uc, UCOL_NUMERIC_COLLATION));
   BSON_APPEND_UTF8 (d, "alternate", alt == UCOL_SHIFTED ? "shifted" : "non-ignorable");
   BSON_APPEND_UTF8 (d, "maxVariable", ucol_getMaxVariable (uc) == UCOL_REORDER_CODE_SPACE ? "space" : "punct");
   BSON_APPEND_BOOL (d, "normalization", attr_on (uc, UCOL_NORMALIZATION_MODE));
   BSON_APPEND_BOOL (d, "backwards", attr_on (uc, UCOL_FRENCH_COLLATION));
   BSON_APPEND_UTF8 (d, "version", version);
   return d;
}

const bson_t *
dj_collation_doc (const dj_collation_t *c)
{
   return c->doc;
}

bool
dj_collation_parse (const bson_value_t *spec, const dj_collation_t **out, bson_error_t *error)
{
   bson_iter_t it;
   const char *locale = NULL, *case_first = NULL, *alternate = NULL, *max_variable = NULL;
   int64_t strength = 3;
   bool case_level = false, numeric = false, backwards = false, normalization = false;

   *out = NULL;
   if (spec->value_type != BSON_TYPE_DOCUMENT) {
      return dj_err (error, DJ_TypeMismatch, "collation must be an object");
   }
   if (spec->value.v_doc.data_len <= 5) {
      /* collation: {} is no collation: mongod parses a collation only when
       * the document is not empty, so {} means the collection's default
       * (drivers send it when given an empty one) */
      return true;
   }
   bson_iter_init_from_data (&it, spec->value.v_doc.data, spec->value.v_doc.data_len);
   while (bson_iter_next (&it)) {
      const char *k = bson_iter_key (&it);
      const bson_value_t *v = bson_iter_value (&it);
      if (!strcmp (k, "locale") && v->value_type == BSON_TYPE_UTF8) {
         locale = v->value.v_utf8.str;
      } else if (!strcmp (k, "strength") && dj_value_is_number (v) && dj_value_as_int64_exact (v, &strength)) {
         if (strength < 1 || strength > 5) {
            return dj_err (error, DJ_BadValue, "unable to parse collation :: caused by :: Field 'strength' must be an integer 1 through 5. Got: %" PRId64, strength);
         }
      } else if (!strcmp (k, "caseLevel") && v->value_type == BSON_TYPE_BOOL) {
         case_level = v->value.v_bool;
      } else if (!strcmp (k, "numericOrdering") && v->value_type == BSON_TYPE_BOOL) {
         numeric = v->value.v_bool;
      } else if (!strcmp (k, "backwards") && v->value_type == BSON_TYPE_BOOL) {
         backwards = v->value.v_bool;
      } else if (!strcmp (k, "normalization") && v->value_type == BSON_TYPE_BOOL) {
         normalization = v->value.v_bool;
      } else if (!strcmp (k, "caseFirst") && v->value_type == BSON_TYPE_UTF8) {
         case_first = v->value.v_utf8.str;
      } else if (!strcmp (k, "alternate") && v->value_type == BSON_TYPE_UTF8) {
         alternate = v->value.v_utf8.str;
      } else if (!strcmp (k, "maxVariable") && v->value_type == BSON_TYPE_UTF8) {
         max_variable = v->value.v_utf8.str;
      } else if (!strcmp (k, "version")) {
         continue;
      } else {
         return dj_err (error, DJ_BadValue, "unable to parse collation :: caused by :: unknown or ill-typed field '%s'", k);
      }
   }
   if (!locale) {
      return dj_err (error, DJ_BadValue, "unable to parse collation :: caused by :: missing required field 'locale'");
   }
   if (!strcmp (locale, "simple")) {
      return true; /* binary comparison: no collator */
   }
   char key[512];
   snprintf (key, sizeof key, "%s|%d|%d|%d|%d|%d|%s|%s|%s", locale, (int) strength, case_level, numeric, backwards,
             normalization, case_first ? case_first : "", alternate ? alternate : "", max_variable ? max_variable : "");
   pthread_mutex_lock (&g_coll_mu);
   for (dj_collation_t *c = g_colls; c; c = c->next) {
      if (!strcmp (c->spec, key)) {
         pthread_mutex_unlock (&g_coll_mu);
         *out = c;
         return true;
      }
   }
   UErrorCode st = U_ZERO_ERROR;
   UCollator *uc = ucol_open (locale, &st);
   bool ok = U_SUCCESS (st);
   if (!ok) {
      pthread_mutex_unlock (&g_coll_mu);
      return dj_err (error, DJ_BadValue, "unable to parse collation :: caused by :: Field 'locale' is invalid: %s", locale);
   }
   static const UColAttributeValue strengths[] = {UCOL_PRIMARY, UCOL_SECONDARY, UCOL_TERTIARY, UCOL_QUATERNARY, UCOL_IDENTICAL};
   ok = set_attr (uc, UCOL_STRENGTH, strengths[strength - 1], error) &&
        set_attr (uc, UCOL_CASE_LEVEL, case_level ? UCOL_ON : UCOL_OFF, error) &&
        set_attr (uc, UCOL_NUMERIC_COLLATION, numeric ? UCOL_ON : UCOL_OFF, error) &&
        set_attr (uc, UCOL_FRENCH_COLLATION, backwards ? UCOL_ON : UCOL_OFF, error) &&
        set_attr (uc, UCOL_NORMALIZATION_MODE, normalization ? UCOL_ON : UCOL_OFF, error);
   if (ok && case_first && strcmp (case_first, "off")) {
      ok = set_attr (uc, UCOL_CASE_FIRST, !strcmp (case_first, "upper") ? UCOL_UPPER_FIRST : UCOL_LOWER_FIRST, error);
   }
   if (ok && alternate && !strcmp (alternate, "shifted")) {
      ok = set_attr (uc, UCOL_ALTERNATE_HANDLING, UCOL_SHIFTED, error);
   }
   if (ok && max_variable) {
      st = U_ZERO_ERROR;
      ucol_setMaxVariable (uc, !strcmp (max_variable, "space") ? UCOL_REORDER_CODE_SPACE : UCOL_REORDER_CODE_PUNCTUATION, &st);
      ok = U_SUCCESS (st) || dj_err (error, DJ_BadValue, "collation: bad maxVariable");
   }
   if (!ok) {
      ucol_close (uc);
      pthread_mutex_unlock (&g_coll_mu);
      return false;
   }
   dj_collation_t *c = bson_malloc0 (sizeof *c);
   c->spec = bson_strdup (key);
   c->coll = uc;
   c->doc = full_doc (uc, locale);
   c->next = g_colls;
   g_colls = c;
   pthread_mutex_unlock (&g_coll_mu);
   *out = c;
   return true;
}

int
dj_collation_cmp (const dj_collation_t *c, const char *a, size_t la, const char *b, size_t lb)
{
   UErrorCode st = U_ZERO_ERROR;
   UCollationResult r = ucol_strcollUTF8 (c->coll, a, (int32_t) la, b, (int32_t) lb, &st);
   if (U_FAILURE (st)) {
      /* not valid UTF-8 (stored before validation existed): binary order */
      int x = memcmp (a, b, la < lb ? la : lb);
      return x ? (x < 0 ? -1 : 1) : (la > lb) - (la < lb);
   }
   return r == UCOL_LESS ? -1 : r == UCOL_GREATER ? 1 : 0;
}

void
dj_collation_key (const dj_collation_t *c, const char *s, size_t n, dj_buf_t *out)
{
   UErrorCode st = U_ZERO_ERROR;
   int32_t ulen = 0;
   u_strFromUTF8 (NULL, 0, &ulen, s, (int32_t) n, &st);
   st = U_ZERO_ERROR;
   UChar *u = bson_malloc (sizeof (UChar) * (size_t) (ulen + 1));
   u_strFromUTF8 (u, ulen + 1, &ulen, s, (int32_t) n, &st);
   if (U_FAILURE (st)) {
      ulen = 0;
   }
   int32_t klen = ucol_getSortKey (c->coll, u, ulen, NULL, 0);
   uint8_t *k = bson_malloc ((size_t) klen + 1);
   ucol_getSortKey (c->coll, u, ulen, k, klen + 1);
   /* sort keys end with their only 0x00 */
   dj_buf_append (out, k, klen > 0 ? (size_t) klen - 1 : 0);
   bson_free (k);
   bson_free (u);
}
