/*
 * search.c -- $text: its argument, and one document against it.
 *
 * https://www.mongodb.com/docs/manual/reference/operator/query/text/
 * $search is read as mongod reads it: words (each broken into terms by the
 * query's language, stop words dropped, stemmed), "phrases" in double
 * quotes, and a hyphen-minus after whitespace (or at the start) negating
 * what follows up to the next whitespace -- "-foo-bar" negates both, "-
 * foo" neither, a term inside a phrase never. A document matches when the
 * index finds one of its positive terms in it (the caller's part), it holds
 * no negated term, contains every phrase (a substring of one indexed
 * string, compared folded as the query asks) and no negated phrase; with
 * $caseSensitive or $diacriticSensitive a positive term must also appear
 * as written.
 * Its score is the sum of the scores the document's terms have in the
 * index (spec.c) over the query's positive terms:
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/meta/#-meta---textscore-
 */
#include "dj_text.h"

#include <stdlib.h>

typedef struct {
   char **v; /* owned strings */
   size_t n, cap;
} strs_t;

struct dj_text_query {
   char *search;   /* owned */
   char *language; /* owned, NULL: the index's default */
   bool case_sensitive, diacritic_sensitive;
   /* bound (dj_text_query_bind) */
   const dj_text_spec_t *spec;
   const dj_text_lang_t *lang;
   strs_t bounds;   /* positive terms folded: what the index holds */
   strs_t positive; /* positive terms as the query's sensitivity folds them */
   strs_t negated;
   strs_t phrases, negated_phrases; /* folded as the query asks */
};

static void
strs_clear (strs_t *s)
{
   dj_strv_free (s->v, (int) s->n);
   memset (s, 0, sizeof *s);
}

static bool
strs_has (const strs_t *s, const char *w, size_t len)
{
   for (size_t i = 0; i < s->n; i++) {
      if (strlen (s->v[i]) == len && !memcmp (s->v[i], w, len)) {
         return true;
      }
   }
   return false;
}

static void
strs_add (strs_t *s, const char *w, size_t len)
{
   if (!strs_has (s, w, len)) {
      DJ_GROW (s->v, s->n, s->cap, 8);
      s->v[s->n++] = bson_strndup (w, len);
   }
}

static void
add_cb (const char *term, size_t len, void *ud)
{
   strs_add (ud, term, len);
}

void
dj_text_query_destroy (dj_text_query_t *q)
{
   if (!q) {
      return;
   }
   strs_clear (&q->bounds);
   strs_clear (&q->positive);
   strs_clear (&q->negated);
   strs_clear (&q->phrases);
   strs_clear (&q->negated_phrases);
   DJ_FREE (q->search, q->language, q);
}

dj_text_query_t *
dj_text_query_new (const bson_value_t *arg, bson_error_t *error)
{
   bson_iter_t it;
   if (arg->value_type != BSON_TYPE_DOCUMENT) {
      dj_err (error, DJ_BadValue, "$text expects an object");
      return NULL;
   }
   dj_text_query_t *q = bson_malloc0 (sizeof *q);
   bson_iter_init_from_data (&it, arg->value.v_doc.data, arg->value.v_doc.data_len);
   while (bson_iter_next (&it)) {
      const char *k = bson_iter_key (&it);
      if (!strcmp (k, "$search")) {
         if (!BSON_ITER_HOLDS_UTF8 (&it)) {
            dj_err (error, DJ_TypeMismatch, "$search requires a string value");
            goto fail;
         }
         bson_free (q->search);
         q->search = bson_strdup (bson_iter_utf8 (&it, NULL));
      } else if (!strcmp (k, "$language")) {
         if (!BSON_ITER_HOLDS_UTF8 (&it)) {
            dj_err (error, DJ_TypeMismatch, "$language requires a string value");
            goto fail;
         }
         bson_free (q->language);
         q->language = bson_strdup (bson_iter_utf8 (&it, NULL));
      } else if (!strcmp (k, "$caseSensitive") || !strcmp (k, "$diacriticSensitive")) {
         if (!BSON_ITER_HOLDS_BOOL (&it)) {
            dj_err (error, DJ_TypeMismatch, "%s requires a boolean value", k);
            goto fail;
         }
         *(k[1] == 'c' ? &q->case_sensitive : &q->diacritic_sensitive) = bson_iter_bool (&it);
      } else {
         dj_err (error, DJ_BadValue, "extra fields in $text");
         goto fail;
      }
   }
   if (!q->search) {
      dj_err (error, DJ_FailedToParse, "$text requires a $search string");
      goto fail;
   }
   if (q->language && !dj_text_language (q->language)) {
      dj_err (error, 17262, "unsupported language: \"%s\" for text index version 3", q->language);
      goto fail;
   }
   return q;
fail:
   dj_text_query_destroy (q);
   return NULL;
}

static int
sensitivity (const dj_text_query_t *q)
{
   return (q->case_sensitive ? DJ_TEXT_CASE : 0) | (q->diacritic_sensitive ? DJ_TEXT_DIACRITIC : 0);
}

/* The terms of one word of $search (s, len bytes). */
static void
add_terms (dj_text_query_t *q, dj_text_tok_t *t, const char *s, size_t len, bool negated)
{
   if (negated) {
      dj_text_terms (t, q->lang, s, len, DJ_TEXT_STOP | sensitivity (q), add_cb, &q->negated);
      return;
   }
   dj_text_terms (t, q->lang, s, len, DJ_TEXT_STOP, add_cb, &q->bounds);
   dj_text_terms (t, q->lang, s, len, DJ_TEXT_STOP | sensitivity (q), add_cb, &q->positive);
}

static void
add_phrase (dj_text_query_t *q, const char *s, size_t len, bool negated)
{
   dj_buf_t b;
   dj_buf_init (&b);
   dj_text_fold (q->lang, s, len, sensitivity (q), &b);
   /* an empty phrase ("") is the empty string, which every string contains */
   strs_add (negated ? &q->negated_phrases : &q->phrases, b.len ? (const char *) b.data : "", b.len);
   dj_buf_cleanup (&b);
}

static bool
is_space (char c)
{
   return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

bool
dj_text_query_bind (dj_text_query_t *q, const dj_text_spec_t *s, dj_text_tok_t *t, bson_error_t *error)
{
   (void) error;
   q->spec = s;
   q->lang = q->language ? dj_text_language (q->language) : dj_text_spec_language (s);
   const char *str = q->search;
   size_t n = strlen (str), i = 0, quote = 0;
   bool negation = false, phrase = false, after_space = true;
   while (i < n) {
      char c = str[i];
      if (is_space (c)) {
         after_space = true;
         i++;
         continue;
      }
      bool prev_space = after_space;
      after_space = false;
      if (c == '-') {
         if (!phrase && prev_space) {
            negation = true;
         }
         i++;
      } else if (c == '"') {
         if (phrase) {
            add_phrase (q, str + quote + 1, i - quote - 1, negation);
            phrase = false;
         } else {
            phrase = true;
            if (negation && prev_space) {
               negation = false;
            }
            quote = i;
         }
         i++;
      } else {
         size_t start = i;
         while (i < n && !is_space (str[i]) && str[i] != '-' && str[i] != '"') {
            i++;
         }
         if (!(phrase && negation)) {
            if (negation && prev_space) {
               negation = false;
            }
            add_terms (q, t, str + start, i - start, negation);
         }
      }
   }
   return true;
}

int
dj_text_query_nterms (const dj_text_query_t *q)
{
   return (int) q->bounds.n;
}

const char *
dj_text_query_term (const dj_text_query_t *q, int i)
{
   return q->bounds.v[i];
}

/* ---- one document ------------------------------------------------------------ */
typedef struct {
   const dj_text_query_t *q;
   dj_text_tok_t *tok;
   bool negated, positive; /* a negated term seen; a positive one seen as written */
   int *phrase_found;      /* per positive phrase */
   bool negated_phrase;
   dj_buf_t folded;
} check_t;

static void
term_cb (const char *term, size_t len, void *ud)
{
   check_t *c = ud;
   c->negated |= strs_has (&c->q->negated, term, len);
   c->positive |= strs_has (&c->q->positive, term, len);
}

static bool
contains (const dj_buf_t *hay, const char *needle)
{
   size_t n = strlen (needle);
   if (n == 0) {
      return true;
   }
   for (size_t i = 0; i + n <= hay->len; i++) {
      if (!memcmp (hay->data + i, needle, n)) {
         return true;
      }
   }
   return false;
}

static void
string_cb (const char *str, size_t len, const dj_text_lang_t *lang, void *ud)
{
   check_t *c = ud;
   const dj_text_query_t *q = c->q;
   if (q->negated.n || q->case_sensitive || q->diacritic_sensitive) {
      dj_text_terms (c->tok, lang, str, len, DJ_TEXT_STOP | sensitivity (q), term_cb, c);
   }
   if (q->phrases.n || q->negated_phrases.n) {
      c->folded.len = 0;
      dj_text_fold (lang, str, len, sensitivity (q), &c->folded);
      for (size_t i = 0; i < q->phrases.n; i++) {
         c->phrase_found[i] |= contains (&c->folded, q->phrases.v[i]);
      }
      for (size_t i = 0; i < q->negated_phrases.n; i++) {
         c->negated_phrase |= contains (&c->folded, q->negated_phrases.v[i]);
      }
   }
}

typedef struct {
   const dj_text_query_t *q;
   double score;
} sum_t;

static void
sum_cb (const char *term, size_t len, double score, void *ud)
{
   sum_t *s = ud;
   if (strs_has (&s->q->bounds, term, len)) {
      s->score += score;
   }
}

bool
dj_text_query_match (const dj_text_query_t *q, dj_text_tok_t *t, const bson_t *doc)
{
   if (!q->negated.n && !q->phrases.n && !q->negated_phrases.n && !q->case_sensitive && !q->diacritic_sensitive) {
      return true; /* a positive term the index found is all it takes */
   }
   check_t c = {.q = q, .tok = t};
   c.phrase_found = bson_malloc0 (sizeof (int) * (q->phrases.n + 1));
   dj_buf_init (&c.folded);
   dj_text_doc_strings (q->spec, doc, string_cb, &c);
   bool ok = !c.negated && !c.negated_phrase && (c.positive || !(q->case_sensitive || q->diacritic_sensitive));
   for (size_t i = 0; ok && i < q->phrases.n; i++) {
      ok = c.phrase_found[i];
   }
   bson_free (c.phrase_found);
   dj_buf_cleanup (&c.folded);
   return ok;
}

double
dj_text_query_score (const dj_text_query_t *q, dj_text_tok_t *t, const bson_t *doc)
{
   sum_t s = {.q = q};
   bson_error_t ignored;
   dj_text_doc_terms (q->spec, t, doc, sum_cb, &s, &ignored);
   return s.score;
}
