/*
 * dj_text.h -- text search: MongoDB's version 3 text index and $text.
 *
 * What it owns: the languages a text index knows, breaking a string into
 * terms (delimiters, case folding, diacritic folding, stop words, Snowball
 * stemming), a text index's specification (its fields and weights, the
 * default language, the per-document language field), the terms and scores
 * a document gives such an index, and a $text query: parsing it, and whether
 * and how well one document matches it.
 * https://www.mongodb.com/docs/manual/core/indexes/index-types/index-text/
 * https://www.mongodb.com/docs/manual/reference/operator/query/text/
 * https://www.mongodb.com/docs/manual/reference/text-search-languages/
 * Who calls it: query ($text in a filter), storage (a text index's keys and
 * its scan). It calls values only.
 * Memory: every dj_text_*_new returns an object its caller destroys.
 * Threads: no state is shared; the stop word tables are constant.
 *
 * Files:
 *   tokenize.c        languages, terms of a string (ICU for Unicode
 *                     properties, libstemmer for stems), stop words
 *   spec.c            a text index's specification; a document's terms and scores
 *   search.c          $text: parsing, matching one document, its score
 *   gen_stopwords.py  writes stopwords.c at build time from the Snowball
 *                     project's lists (Debian's liblingua-stopwords-perl)
 */
#ifndef DJ_TEXT_H
#define DJ_TEXT_H

#include "dj_values.h"

/* ---- tokenize.c ------------------------------------------------------------ */
typedef struct dj_text_lang dj_text_lang_t;
/* A language by its name or ISO 639-1 code ("english", "en", "none"), NULL
 * when a text index does not know it. */
const dj_text_lang_t *dj_text_language (const char *name);
const char *dj_text_language_name (const dj_text_lang_t *l); /* "english" */

/* Options of one tokenization (bits). */
enum {
   DJ_TEXT_STOP = 1,      /* leave out the language's stop words */
   DJ_TEXT_CASE = 2,      /* keep case (a $caseSensitive query) */
   DJ_TEXT_DIACRITIC = 4, /* keep diacritics (a $diacriticSensitive query) */
};
/* Called with each term (len bytes of UTF-8, not NUL-terminated; valid
 * during the call). */
typedef void (*dj_text_term_fn) (const char *term, size_t len, void *ud);
/* A tokenizer: holds a stemmer per language it met (owned). */
typedef struct dj_text_tok dj_text_tok_t;
dj_text_tok_t *dj_text_tok_new (void);
void dj_text_tok_destroy (dj_text_tok_t *t);
/* Breaks s (len bytes of UTF-8) into terms in language l with options
 * `flags`, calling fn for each in order. */
void dj_text_terms (dj_text_tok_t *t, const dj_text_lang_t *l, const char *s, size_t len, int flags, dj_text_term_fn fn,
                    void *ud);
/* Folds s (case and diacritics unless flags keep them) into out, code
 * point by code point, delimiters kept: what phrases are compared on. */
void dj_text_fold (const dj_text_lang_t *l, const char *s, size_t len, int flags, dj_buf_t *out);

/* The stop word lists (stopwords.c, generated): one per ISO code. */
typedef struct {
   const char *code;
   const char *const *words; /* sorted by byte order */
   size_t n;
} dj_text_stoplist_t;
extern const dj_text_stoplist_t dj_text_stoplists[];

/* ---- spec.c: a text index ------------------------------------------------- */
typedef struct dj_text_spec dj_text_spec_t;
/* Whether index key pattern `key` makes a text index (a field "text", or
 * the stored form's _fts). */
bool dj_text_is_text_key (const bson_t *key);
/* Parses a text index spec as createIndexes or the catalog gives it, into
 * *out (owned) and `normalized` (initialised here: the spec as listIndexes
 * shows it, key {prefix..., _fts: "text", _ftsx: 1, suffix...}, weights,
 * default_language, language_override, textIndexVersion 3). */
bool dj_text_spec_new (const bson_t *spec, dj_text_spec_t **out, bson_t *normalized, bson_error_t *error);
void dj_text_spec_destroy (dj_text_spec_t *s);
const dj_text_lang_t *dj_text_spec_language (const dj_text_spec_t *s); /* default_language */
/* The terms doc gives the index and each one's score, MongoDB's
 * formula (spec.c). Calls fn(term, len, score) once per distinct term, in
 * byte order. False (error 17262) when the document names a language the
 * index does not know. */
typedef void (*dj_text_scored_fn) (const char *term, size_t len, double score, void *ud);
bool dj_text_doc_terms (const dj_text_spec_t *s, dj_text_tok_t *t, const bson_t *doc, dj_text_scored_fn fn, void *ud,
                        bson_error_t *error);
/* Calls fn with each string the index reads in doc (and its language). */
typedef void (*dj_text_string_fn) (const char *str, size_t len, const dj_text_lang_t *lang, void *ud);
void dj_text_doc_strings (const dj_text_spec_t *s, const bson_t *doc, dj_text_string_fn fn, void *ud);

/* ---- search.c: $text ---------------------------------------------------------- */
typedef struct dj_text_query dj_text_query_t;
/* Parses $text's argument ({$search, $language, $caseSensitive,
 * $diacriticSensitive}); errors as mongod's. */
dj_text_query_t *dj_text_query_new (const bson_value_t *arg, bson_error_t *error);
void dj_text_query_destroy (dj_text_query_t *q);
/* Readies q for index s: the search string's terms in the query's language
 * (the index's default when $language is absent). Call once before the
 * functions below; q keeps pointers into s (valid while s is). */
bool dj_text_query_bind (dj_text_query_t *q, const dj_text_spec_t *s, dj_text_tok_t *t, bson_error_t *error);
/* The positive terms (folded, stemmed) to look up in the index: term i of n. */
int dj_text_query_nterms (const dj_text_query_t *q);
const char *dj_text_query_term (const dj_text_query_t *q, int i);
/* Whether doc (a candidate the index found) matches the bound query: no
 * negated term or phrase, every phrase, and with $caseSensitive or
 * $diacriticSensitive a positive term as written. */
bool dj_text_query_match (const dj_text_query_t *q, dj_text_tok_t *t, const bson_t *doc);
/* doc's text score for the query: the sum of its terms' scores (spec.c)
 * over the query's positive terms -- what the index entries it was found
 * by hold (storage/text_scan.c reads them there). */
double dj_text_query_score (const dj_text_query_t *q, dj_text_tok_t *t, const bson_t *doc);

#endif
