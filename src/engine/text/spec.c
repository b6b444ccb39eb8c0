/*
 * spec.c -- a text index's specification, and the terms and scores one
 * document gives it.
 *
 * https://www.mongodb.com/docs/manual/core/indexes/index-types/index-text/
 * A text index reads the string fields its key names "text" (or every
 * string field: the wildcard "$**"), with the weights of its `weights`
 * option (1 for a field it does not name):
 * https://www.mongodb.com/docs/manual/core/indexes/index-types/index-text/control-text-search-results/
 * Each document is read in the language its `language_override` field
 * names ("language" unless the index says otherwise; a subdocument may
 * name its own), else the index's default_language ("english"):
 * https://www.mongodb.com/docs/manual/core/indexes/index-types/index-text/specify-language-text-index/
 * Other key fields before the text fields are its prefix, after them its
 * suffix (a compound text index):
 * https://www.mongodb.com/docs/manual/core/indexes/index-types/index-text/text-index-restrictions/
 *
 * A term's score in one string is MongoDB's: with n the string's terms and
 * c the occurrences of this one, weight * freq * (0.5 * c / n + 0.5), where
 * freq = 1 + 1/2 + 1/4 ... (c addends: each repeat counts half the one
 * before), times 1.1 when the term is the whole string; scores of a term in
 * several strings and fields add up.
 */
#include "dj_text.h"

#include <math.h>
#include <stdlib.h>
#include <strings.h>

typedef struct {
   char *path; /* owned */
   double weight;
} weight_t;

struct dj_text_spec {
   weight_t *weights; /* owned, sorted by path */
   int nweights;
   bool wildcard;
   double wildcard_weight;
   const dj_text_lang_t *lang;
   char *lang_field; /* owned: language_override */
};

void
dj_text_spec_destroy (dj_text_spec_t *s)
{
   if (!s) {
      return;
   }
   for (int i = 0; i < s->nweights; i++) {
      bson_free (s->weights[i].path);
   }
   bson_free (s->weights);
   bson_free (s->lang_field);
   bson_free (s);
}

const dj_text_lang_t *
dj_text_spec_language (const dj_text_spec_t *s)
{
   return s->lang;
}

bool
dj_text_is_text_key (const bson_t *key)
{
   bson_iter_t it;
   bson_iter_init (&it, key);
   while (bson_iter_next (&it)) {
      if ((BSON_ITER_HOLDS_UTF8 (&it) && !strcmp (bson_iter_utf8 (&it, NULL), "text")) || !strcmp (bson_iter_key (&it), "_fts")) {
         return true;
      }
   }
   return false;
}

static weight_t *
find_weight (const dj_text_spec_t *s, const char *path)
{
   for (int i = 0; i < s->nweights; i++) {
      if (!strcmp (s->weights[i].path, path)) {
         return &s->weights[i];
      }
   }
   return NULL;
}

static bool
set_weight (dj_text_spec_t *s, const char *path, const bson_value_t *v, bson_error_t *error)
{
   if (!dj_value_is_number (v)) {
      return dj_err (error, DJ_CannotCreateIndex, "weight for text index needs numeric type");
   }
   double w = dj_value_as_double (v);
   /* mongod: weights lie in (0, 99999] */
   if (!(w > 0) || w >= 100000) {
      return dj_err (error, DJ_CannotCreateIndex, "text index weights must be in the exclusive interval (0,100000) but found: %g",
                     w);
   }
   if (!strcmp (path, "$**")) {
      s->wildcard = true;
      s->wildcard_weight = w;
      return true;
   }
   if (path[0] == '$' || path[0] == '\0') {
      return dj_err (error, DJ_CannotCreateIndex, "Index key contains an illegal field name: '%s'", path);
   }
   weight_t *have = find_weight (s, path);
   if (!have) {
      s->weights = bson_realloc (s->weights, sizeof (weight_t) * (size_t) (s->nweights + 1));
      have = &s->weights[s->nweights++];
      have->path = bson_strdup (path);
   }
   have->weight = w;
   return true;
}

static int
cmp_weight (const void *a, const void *b)
{
   return strcmp (((const weight_t *) a)->path, ((const weight_t *) b)->path);
}

bool
dj_text_spec_new (const bson_t *spec, dj_text_spec_t **out, bson_t *normalized, bson_error_t *error)
{
   dj_text_spec_t *s = bson_malloc0 (sizeof *s);
   bson_iter_t it, ki;
   bson_t key = BSON_INITIALIZER;
   const char *lang = "english", *lang_field = "language";
   int state = 0; /* 0: prefix fields, 1: text fields, 2: suffix fields */
   bool stored_form = false;

   bson_init (normalized);
   s->wildcard_weight = 1;
   if (bson_iter_init_find (&it, spec, "key") && BSON_ITER_HOLDS_DOCUMENT (&it) && bson_iter_recurse (&it, &ki)) {
      while (bson_iter_next (&ki)) {
         const char *f = bson_iter_key (&ki);
         const bson_value_t *v = bson_iter_value (&ki);
         bool text = v->value_type == BSON_TYPE_UTF8 && !strcmp (v->value.v_utf8.str, "text");
         if (!strcmp (f, "_fts") || !strcmp (f, "_ftsx")) {
            stored_form = true;
            text = true;
         } else if (text) {
            bson_value_t one = {.value_type = BSON_TYPE_INT32, .value.v_int32 = 1};
            if (!set_weight (s, f, &one, error)) {
               goto fail;
            }
         }
         if (text && state == 2) {
            dj_err (error, DJ_CannotCreateIndex, "text fields in the key pattern must be next to each other");
            goto fail;
         }
         if (text && state != 1) {
            state = 1;
            BSON_APPEND_UTF8 (&key, "_fts", "text");
            BSON_APPEND_INT32 (&key, "_ftsx", 1);
         } else if (!text) {
            if (!dj_value_is_number (v) || fabs (dj_value_as_double (v)) != 1) {
               dj_err (error, DJ_CannotCreateIndex, "expected 1 or -1 for the non-text field '%s' of a text index", f);
               goto fail;
            }
            if (state == 1) {
               state = 2;
            }
            bson_append_value (&key, f, -1, v);
         }
      }
   }
   if (bson_iter_init_find (&it, spec, "weights")) {
      bson_iter_t wi;
      if (!BSON_ITER_HOLDS_DOCUMENT (&it) || !bson_iter_recurse (&it, &wi)) {
         dj_err (error, DJ_CannotCreateIndex, "text index option 'weights' must be an object");
         goto fail;
      }
      while (bson_iter_next (&wi)) {
         if (!set_weight (s, bson_iter_key (&wi), bson_iter_value (&wi), error)) {
            goto fail;
         }
      }
   }
   if (bson_iter_init_find (&it, spec, "default_language")) {
      if (!BSON_ITER_HOLDS_UTF8 (&it)) {
         dj_err (error, DJ_CannotCreateIndex, "default_language needs a string type");
         goto fail;
      }
      lang = bson_iter_utf8 (&it, NULL);
   }
   if (!(s->lang = dj_text_language (lang))) {
      dj_err (error, DJ_CannotCreateIndex, "default_language is not valid: %s", lang);
      goto fail;
   }
   if (bson_iter_init_find (&it, spec, "language_override")) {
      if (!BSON_ITER_HOLDS_UTF8 (&it) || !*bson_iter_utf8 (&it, NULL)) {
         dj_err (error, DJ_CannotCreateIndex, "language_override must be a non-empty string");
         goto fail;
      }
      lang_field = bson_iter_utf8 (&it, NULL);
   }
   if (bson_iter_init_find (&it, spec, "textIndexVersion") &&
       !(dj_value_is_number (bson_iter_value (&it)) && dj_value_as_double (bson_iter_value (&it)) == 3)) {
      /* https://www.mongodb.com/docs/manual/core/indexes/index-types/index-text/text-index-versions/ */
      dj_err (error, DJ_CannotCreateIndex, "Currently only textIndexVersion 3 is supported");
      goto fail;
   }
   if (!stored_form && s->nweights == 0 && !s->wildcard) {
      dj_err (error, DJ_CannotCreateIndex, "text index option 'weights' names no field");
      goto fail;
   }
   s->lang_field = bson_strdup (lang_field);
   if (s->nweights) {
      qsort (s->weights, (size_t) s->nweights, sizeof (weight_t), cmp_weight);
   }

   /* the spec as listIndexes shows it */
   bson_iter_init (&it, spec);
   while (bson_iter_next (&it)) {
      const char *f = bson_iter_key (&it);
      if (!strcmp (f, "key")) {
         BSON_APPEND_DOCUMENT (normalized, "key", &key);
      } else if (strcmp (f, "weights") && strcmp (f, "default_language") && strcmp (f, "language_override") &&
                 strcmp (f, "textIndexVersion")) {
         bson_append_iter (normalized, f, -1, &it);
      }
   }
   bson_t w;
   BSON_APPEND_DOCUMENT_BEGIN (normalized, "weights", &w);
   if (s->wildcard) {
      BSON_APPEND_INT32 (&w, "$**", (int32_t) s->wildcard_weight);
   }
   for (int i = 0; i < s->nweights; i++) {
      if (s->weights[i].weight == floor (s->weights[i].weight)) {
         BSON_APPEND_INT32 (&w, s->weights[i].path, (int32_t) s->weights[i].weight);
      } else {
         BSON_APPEND_DOUBLE (&w, s->weights[i].path, s->weights[i].weight);
      }
   }
   bson_append_document_end (normalized, &w);
   BSON_APPEND_UTF8 (normalized, "default_language", lang);
   BSON_APPEND_UTF8 (normalized, "language_override", lang_field);
   BSON_APPEND_INT32 (normalized, "textIndexVersion", 3);
   bson_destroy (&key);
   *out = s;
   return true;
fail:
   bson_destroy (&key);
   bson_destroy (normalized);
   bson_init (normalized);
   dj_text_spec_destroy (s);
   return false;
}

/* ---- the strings a document gives the index --------------------------------- */
typedef struct {
   const dj_text_spec_t *s;
   dj_buf_t path;
   bool bad; /* a language the index does not know */
   char badname[64];
   void (*fn) (const char *str, size_t len, const dj_text_lang_t *lang, double weight, void *ud);
   void *ud;
} walk_t;

/* Whether some weighted path lies below `path` (len bytes). */
static bool
weights_below (const dj_text_spec_t *s, const char *path, size_t len)
{
   for (int i = 0; i < s->nweights; i++) {
      if (strlen (s->weights[i].path) > len && !strncmp (s->weights[i].path, path, len) && s->weights[i].path[len] == '.') {
         return true;
      }
   }
   return false;
}

static void walk_doc (walk_t *w, const uint8_t *data, uint32_t len, const dj_text_lang_t *lang);

/* A value at w->path: a string is read, a document walked, an array's
 * elements taken one by one at the same path. */
static void
walk_value (walk_t *w, bson_iter_t *it, const dj_text_lang_t *lang, bool in_array)
{
   const char *path = (const char *) w->path.data;
   if (BSON_ITER_HOLDS_UTF8 (it)) {
      const weight_t *wt = find_weight (w->s, path);
      if (wt || w->s->wildcard) {
         uint32_t n;
         const char *str = bson_iter_utf8 (it, &n);
         w->fn (str, n, lang, wt ? wt->weight : w->s->wildcard_weight, w->ud);
      }
   } else if (BSON_ITER_HOLDS_DOCUMENT (it)) {
      if (w->s->wildcard || weights_below (w->s, path, w->path.len)) {
         const uint8_t *d;
         uint32_t l;
         bson_iter_document (it, &l, &d);
         walk_doc (w, d, l, lang);
      }
   } else if (BSON_ITER_HOLDS_ARRAY (it) && !in_array) {
      bson_iter_t ai;
      bson_iter_recurse (it, &ai);
      while (bson_iter_next (&ai)) {
         walk_value (w, &ai, lang, true);
      }
   }
}

static void
walk_doc (walk_t *w, const uint8_t *data, uint32_t len, const dj_text_lang_t *lang)
{
   bson_iter_t it;
   if (!bson_iter_init_from_data (&it, data, len)) {
      return;
   }
   /* a (sub)document may name its own language */
   bson_iter_t li;
   if (bson_iter_init_from_data (&li, data, len) && bson_iter_find (&li, w->s->lang_field) && BSON_ITER_HOLDS_UTF8 (&li)) {
      const char *name = bson_iter_utf8 (&li, NULL);
      const dj_text_lang_t *l = dj_text_language (name);
      if (!l && !w->bad) {
         w->bad = true;
         bson_strncpy (w->badname, name, sizeof w->badname);
      }
      lang = l ? l : lang;
   }
   size_t base = w->path.len;
   while (bson_iter_next (&it)) {
      const char *k = bson_iter_key (&it);
      if (!strcmp (k, w->s->lang_field)) {
         continue; /* the language is not text */
      }
      w->path.len = base;
      if (base) {
         dj_buf_putc (&w->path, '.');
      }
      dj_buf_append (&w->path, k, strlen (k));
      dj_buf_putc (&w->path, 0);
      w->path.len--;
      walk_value (w, &it, lang, false);
   }
   w->path.len = base;
   dj_buf_putc (&w->path, 0);
   w->path.len--;
}

static bool
walk (const dj_text_spec_t *s, const bson_t *doc, walk_t *w, bson_error_t *error)
{
   w->s = s;
   dj_buf_init (&w->path);
   dj_buf_putc (&w->path, 0);
   w->path.len = 0;
   walk_doc (w, bson_get_data (doc), doc->len, s->lang);
   dj_buf_cleanup (&w->path);
   if (w->bad) {
      /* https://www.mongodb.com/docs/manual/reference/text-search-languages/ */
      return dj_err (error, 17262, "language override unsupported: %s", w->badname);
   }
   return true;
}

typedef struct {
   dj_text_string_fn fn;
   void *ud;
} strings_t;

static void
string_cb (const char *str, size_t len, const dj_text_lang_t *lang, double weight, void *ud)
{
   strings_t *st = ud;
   (void) weight;
   st->fn (str, len, lang, st->ud);
}

void
dj_text_doc_strings (const dj_text_spec_t *s, const bson_t *doc, dj_text_string_fn fn, void *ud)
{
   strings_t st = {fn, ud};
   walk_t w = {.fn = string_cb, .ud = &st};
   walk (s, doc, &w, NULL);
}

/* ---- scoring ---------------------------------------------------------------- */
typedef struct {
   char *term; /* owned */
   size_t len;
   double score;
} scored_t;

typedef struct {
   dj_text_tok_t *tok;
   scored_t *terms; /* the document's, unsorted, repeated */
   size_t n, cap;
   scored_t *one; /* one string's tokens */
   size_t n1, cap1;
} score_t;

static void
token_cb (const char *term, size_t len, void *ud)
{
   score_t *sc = ud;
   DJ_GROW (sc->one, sc->n1, sc->cap1, 16);
   sc->one[sc->n1].term = bson_strndup (term, len);
   sc->one[sc->n1].len = len;
   sc->one[sc->n1].score = 0;
   sc->n1++;
}

static int
cmp_scored (const void *a, const void *b)
{
   const scored_t *x = a, *y = b;
   int c = memcmp (x->term, y->term, x->len < y->len ? x->len : y->len);
   return c ? c : (x->len < y->len ? -1 : x->len > y->len ? 1 : 0);
}

static void
score_string (const char *str, size_t len, const dj_text_lang_t *lang, double weight, void *ud)
{
   score_t *sc = ud;
   sc->n1 = 0;
   dj_text_terms (sc->tok, lang, str, len, DJ_TEXT_STOP, token_cb, sc);
   if (!sc->n1) {
      return;
   }
   qsort (sc->one, sc->n1, sizeof (scored_t), cmp_scored);
   size_t ntokens = sc->n1;
   for (size_t i = 0; i < sc->n1;) {
      size_t j = i + 1;
      while (j < sc->n1 && !cmp_scored (&sc->one[i], &sc->one[j])) {
         bson_free (sc->one[j].term);
         j++;
      }
      double count = (double) (j - i);
      double freq = 2.0 - ldexp (1.0, 1 - (int) (j - i)); /* 1 + 1/2 + ... (count addends) */
      double coeff = 0.5 * count / (double) ntokens + 0.5;
      double adjustment = (len == sc->one[i].len && !strncasecmp (str, sc->one[i].term, len)) ? 1.1 : 1.0;
      DJ_GROW (sc->terms, sc->n, sc->cap, 16);
      sc->terms[sc->n] = sc->one[i];
      sc->terms[sc->n].score = weight * freq * coeff * adjustment;
      sc->n++;
      i = j;
   }
   sc->n1 = 0;
}

bool
dj_text_doc_terms (const dj_text_spec_t *s, dj_text_tok_t *t, const bson_t *doc, dj_text_scored_fn fn, void *ud,
                   bson_error_t *error)
{
   score_t sc = {.tok = t};
   walk_t w = {.fn = score_string, .ud = &sc};
   bool ok = walk (s, doc, &w, error);
   if (ok && sc.n) {
      qsort (sc.terms, sc.n, sizeof (scored_t), cmp_scored);
      for (size_t i = 0; i < sc.n;) {
         double total = 0;
         size_t j = i;
         while (j < sc.n && !cmp_scored (&sc.terms[i], &sc.terms[j])) {
            total += sc.terms[j++].score;
         }
         fn (sc.terms[i].term, sc.terms[i].len, total, ud);
         i = j;
      }
   }
   for (size_t i = 0; i < sc.n; i++) {
      bson_free (sc.terms[i].term);
   }
   bson_free (sc.terms);
   bson_free (sc.one);
   return ok;
}
