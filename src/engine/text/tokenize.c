/*
 * tokenize.c -- a string's terms, as MongoDB's version 3 text index makes
 * them (textIndexVersion 3).
 *
 * https://www.mongodb.com/docs/manual/core/indexes/index-types/index-text/text-index-versions/
 * Version 3 delimiters are the code points with the Unicode properties
 * Dash, Hyphen, Pattern_Syntax, Quotation_Mark, Terminal_Punctuation or
 * White_Space; a word is folded to simple case folding (Turkish folds its
 * dotted and dotless i, https://www.mongodb.com/docs/manual/reference/operator/query/text/#case-insensitivity)
 * and loses its diacritics (the code points of Unicode's Diacritic
 * property, left after a canonical decomposition:
 * https://www.mongodb.com/docs/manual/reference/operator/query/text/#diacritic-insensitivity);
 * stop words of its language are dropped, and what is left is stemmed by
 * the language's Snowball stemmer (libstemmer, as mongod uses). ICU answers
 * the Unicode questions.
 * https://www.mongodb.com/docs/manual/reference/text-search-languages/
 */
#include "dj_text.h"

#include <libstemmer.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unicode/uchar.h>
#include <unicode/utf8.h>
#include <unicode/unorm2.h>

struct dj_text_lang {
   const char *name, *code; /* MongoDB's name and ISO 639-1 code */
   const char *stemmer;     /* libstemmer's algorithm; NULL: none */
   const char *stops;       /* the stop list's code; NULL: none */
   bool turkish;            /* folds I to dotless i */
};

/* The languages of https://www.mongodb.com/docs/manual/reference/text-search-languages/
 * (Lingua::StopWords has no Turkish list: Turkish text keeps its stop words). */
static const struct dj_text_lang langs[] = {
   {"danish", "da", "danish", "da", false},
   {"dutch", "nl", "dutch", "nl", false},
   {"english", "en", "english", "en", false},
   {"finnish", "fi", "finnish", "fi", false},
   {"french", "fr", "french", "fr", false},
   {"german", "de", "german", "de", false},
   {"hungarian", "hu", "hungarian", "hu", false},
   {"italian", "it", "italian", "it", false},
   {"norwegian", "nb", "norwegian", "no", false},
   {"portuguese", "pt", "portuguese", "pt", false},
   {"romanian", "ro", "romanian", "ro", false},
   {"russian", "ru", "russian", "ru", false},
   {"spanish", "es", "spanish", "es", false},
   {"swedish", "sv", "swedish", "sv", false},
   {"turkish", "tr", "turkish", NULL, true},
   {"none", "none", NULL, NULL, false},
};
#define NLANGS ((int) (sizeof langs / sizeof langs[0]))

const dj_text_lang_t *
dj_text_language (const char *name)
{
   for (int i = 0; i < NLANGS; i++) {
      if (!strcmp (name, langs[i].name) || !strcmp (name, langs[i].code)) {
         return &langs[i];
      }
   }
   return NULL;
}

const char *
dj_text_language_name (const dj_text_lang_t *l)
{
   return l->name;
}

struct dj_text_tok {
   struct sb_stemmer *stemmers[NLANGS]; /* owned; made at first use */
   dj_buf_t word, plain;                /* the word being built: folded as asked, and case-folded only */
};

dj_text_tok_t *
dj_text_tok_new (void)
{
   dj_text_tok_t *t = bson_malloc0 (sizeof *t);
   dj_buf_init (&t->word);
   dj_buf_init (&t->plain);
   return t;
}

void
dj_text_tok_destroy (dj_text_tok_t *t)
{
   if (!t) {
      return;
   }
   for (int i = 0; i < NLANGS; i++) {
      if (t->stemmers[i]) {
         sb_stemmer_delete (t->stemmers[i]);
      }
   }
   dj_buf_cleanup (&t->word);
   dj_buf_cleanup (&t->plain);
   bson_free (t);
}

/* The next code point of s[*i..len), *i moved past it (ICU's UTF-8
 * macros); an ill-formed sequence reads as U+FFFD. */
static UChar32
next_cp (const char *s, size_t len, size_t *i)
{
   UChar32 cp;
   int32_t at = (int32_t) *i;
   U8_NEXT ((const uint8_t *) s, at, (int32_t) len, cp);
   *i = (size_t) at;
   return cp < 0 ? 0xFFFD : cp;
}

static void
put_cp (dj_buf_t *b, UChar32 cp)
{
   uint8_t out[U8_MAX_LENGTH];
   int32_t n = 0;
   U8_APPEND_UNSAFE (out, n, cp);
   dj_buf_append (b, out, (size_t) n);
}

static bool
icu_delimiter (UChar32 cp)
{
   return u_hasBinaryProperty (cp, UCHAR_WHITE_SPACE) || u_hasBinaryProperty (cp, UCHAR_DASH) ||
          u_hasBinaryProperty (cp, UCHAR_HYPHEN) || u_hasBinaryProperty (cp, UCHAR_PATTERN_SYNTAX) ||
          u_hasBinaryProperty (cp, UCHAR_QUOTATION_MARK) || u_hasBinaryProperty (cp, UCHAR_TERMINAL_PUNCTUATION);
}

/* ASCII, the common case, answered from a table ICU fills once (under
 * pthread_once): whether each code point below 0x80 is a delimiter. */
static bool ascii_delim[128];
static pthread_once_t ascii_once = PTHREAD_ONCE_INIT;

static void
ascii_init (void)
{
   for (UChar32 c = 0; c < 128; c++) {
      ascii_delim[c] = icu_delimiter (c);
   }
}

static bool
is_delimiter (UChar32 cp)
{
   if (cp < 128) {
      pthread_once (&ascii_once, ascii_init);
      return ascii_delim[cp];
   }
   return icu_delimiter (cp);
}

static UChar32
fold_case (const dj_text_lang_t *l, UChar32 cp)
{
   return u_foldCase (cp, l->turkish ? U_FOLD_CASE_EXCLUDE_SPECIAL_I : U_FOLD_CASE_DEFAULT);
}

/* Appends code point cp folded as flags ask to out. */
static void
fold_cp (const dj_text_lang_t *l, UChar32 cp, int flags, dj_buf_t *out)
{
   if (cp < 128 && !(l->turkish && cp == 'I')) {
      /* ASCII has no decompositions, and its Diacritic code points (^ `)
       * are delimiters: only case is left to fold */
      dj_buf_putc (out, (uint8_t) ((flags & DJ_TEXT_CASE) || cp < 'A' || cp > 'Z' ? cp : cp + 32));
      return;
   }
   if (flags & DJ_TEXT_DIACRITIC) {
      put_cp (out, (flags & DJ_TEXT_CASE) ? cp : fold_case (l, cp));
      return;
   }
   UErrorCode err = U_ZERO_ERROR;
   const UNormalizer2 *nfd = unorm2_getNFDInstance (&err);
   UChar dec[32];
   int32_t n = U_SUCCESS (err) ? unorm2_getDecomposition (nfd, cp, dec, 32, &err) : -1;
   if (n < 0 || U_FAILURE (err)) { /* no decomposition: the code point itself */
      dec[0] = 0;
      n = 0;
      if (!u_hasBinaryProperty (cp, UCHAR_DIACRITIC)) {
         put_cp (out, (flags & DJ_TEXT_CASE) ? cp : fold_case (l, cp));
      }
      return;
   }
   for (int32_t i = 0; i < n;) {
      UChar32 c;
      U16_NEXT (dec, i, n, c);
      if (!u_hasBinaryProperty (c, UCHAR_DIACRITIC)) {
         put_cp (out, (flags & DJ_TEXT_CASE) ? c : fold_case (l, c));
      }
   }
}

void
dj_text_fold (const dj_text_lang_t *l, const char *s, size_t len, int flags, dj_buf_t *out)
{
   for (size_t i = 0; i < len;) {
      fold_cp (l, next_cp (s, len, &i), flags, out);
   }
}

static int
cmp_word (const void *key, const void *elem)
{
   const dj_buf_t *w = key;
   const char *e = *(const char *const *) elem;
   size_t el = strlen (e);
   int c = memcmp (w->data, e, w->len < el ? w->len : el);
   return c ? c : (w->len < el ? -1 : w->len > el ? 1 : 0);
}

static bool
in_stoplist (const dj_text_lang_t *l, const dj_buf_t *w)
{
   for (const dj_text_stoplist_t *s = dj_text_stoplists; s->code; s++) {
      if (!strcmp (s->code, l->stops)) {
         return bsearch (w, s->words, s->n, sizeof (char *), cmp_word) != NULL;
      }
   }
   return false;
}

/* The word in t->word (folded as asked; t->plain: case-folded only) ends:
 * hand it on unless it is a stop word, stemmed. */
static void
emit (dj_text_tok_t *t, const dj_text_lang_t *l, int flags, dj_text_term_fn fn, void *ud)
{
   if (!t->word.len) {
      return;
   }
   if ((flags & DJ_TEXT_STOP) && l->stops && (in_stoplist (l, &t->plain) || in_stoplist (l, &t->word))) {
      return;
   }
   if (!l->stemmer) {
      fn ((const char *) t->word.data, t->word.len, ud);
      return;
   }
   int li = (int) (l - langs);
   if (!t->stemmers[li]) {
      t->stemmers[li] = sb_stemmer_new (l->stemmer, "UTF_8");
   }
   if (!t->stemmers[li]) { /* out of memory in libstemmer: the word unstemmed */
      fn ((const char *) t->word.data, t->word.len, ud);
      return;
   }
   const sb_symbol *st = sb_stemmer_stem (t->stemmers[li], t->word.data, (int) t->word.len);
   if (!st) {
      fn ((const char *) t->word.data, t->word.len, ud);
      return;
   }
   fn ((const char *) st, (size_t) sb_stemmer_length (t->stemmers[li]), ud);
}

void
dj_text_terms (dj_text_tok_t *t, const dj_text_lang_t *l, const char *s, size_t len, int flags, dj_text_term_fn fn,
               void *ud)
{
   t->word.len = 0;
   t->plain.len = 0;
   for (size_t i = 0; i < len;) {
      UChar32 cp = next_cp (s, len, &i);
      if (is_delimiter (cp)) {
         emit (t, l, flags, fn, ud);
         t->word.len = 0;
         t->plain.len = 0;
         continue;
      }
      fold_cp (l, cp, flags, &t->word);
      if (flags & DJ_TEXT_STOP) {
         fold_cp (l, cp, DJ_TEXT_DIACRITIC, &t->plain);
      }
   }
   emit (t, l, flags, fn, ud);
   t->word.len = 0;
   t->plain.len = 0;
}
