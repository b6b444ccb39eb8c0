/*
 * tokenize.c -- splits SQL text into tokens.
 *
 * One function, dj_sql_get_token(), returns the length of the token at the
 * cursor and its type, switching on a 256-entry character-class table (a
 * switch on the class compiles to a jump table; a switch on the raw byte
 * would be a chain of comparisons). Keywords are not told apart here: the
 * parser compares DJ_TK_ID tokens case-insensitively, so a keyword used as
 * a name ("order", "group", common Django field names) only needs quoting
 * where SQL itself would need it.
 */
#include <ctype.h>
#include <string.h>

#include "dj_sql.h"

enum {
   CC_ILLEGAL = 0, /* what the table holds for bytes it does not list */
   CC_SPACE, CC_ALPHA, CC_DIGIT, CC_QUOTE, CC_DQUOTE, CC_MINUS, CC_SLASH,
   CC_LP, CC_RP, CC_COMMA, CC_DOT, CC_SEMI, CC_EQ, CC_LT, CC_GT, CC_BANG,
   CC_PLUS, CC_STAR, CC_PERCENT, CC_PIPE, CC_TILDE, CC_QMARK, CC_AMP, CC_HASH, CC_CARET, CC_NUL
};

/* Bytes >= 0x80 are identifier characters so UTF-8 names work unquoted. */
static const unsigned char cls[256] = {
   ['\0'] = CC_NUL,
   [' '] = CC_SPACE, ['\t'] = CC_SPACE, ['\n'] = CC_SPACE, ['\r'] = CC_SPACE, ['\f'] = CC_SPACE, ['\v'] = CC_SPACE,
   ['\''] = CC_QUOTE, ['"'] = CC_DQUOTE, ['-'] = CC_MINUS, ['/'] = CC_SLASH,
   ['('] = CC_LP, [')'] = CC_RP, [','] = CC_COMMA, ['.'] = CC_DOT, [';'] = CC_SEMI,
   ['='] = CC_EQ, ['<'] = CC_LT, ['>'] = CC_GT, ['!'] = CC_BANG, ['+'] = CC_PLUS,
   ['*'] = CC_STAR, ['%'] = CC_PERCENT, ['|'] = CC_PIPE, ['~'] = CC_TILDE, ['?'] = CC_QMARK,
   ['&'] = CC_AMP, ['#'] = CC_HASH, ['^'] = CC_CARET,
   ['0'] = CC_DIGIT, ['1'] = CC_DIGIT, ['2'] = CC_DIGIT, ['3'] = CC_DIGIT, ['4'] = CC_DIGIT,
   ['5'] = CC_DIGIT, ['6'] = CC_DIGIT, ['7'] = CC_DIGIT, ['8'] = CC_DIGIT, ['9'] = CC_DIGIT,
};

static int
class_of (unsigned char c)
{
   if (c >= 0x80 || c == '_' || isalpha (c) || c == '$') {
      return CC_ALPHA;
   }
   return cls[c];
}

size_t
dj_sql_skip_space (const char *z, size_t n)
{
   size_t i = 0;
   while (i < n) {
      unsigned char c = (unsigned char) z[i];
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
         i++;
      } else if (c == '-' && i + 1 < n && z[i + 1] == '-') {
         while (i < n && z[i] != '\n') {
            i++;
         }
      } else if (c == '/' && i + 1 < n && z[i + 1] == '*') {
         size_t j = i + 2;
         while (j + 1 < n && !(z[j] == '*' && z[j + 1] == '/')) {
            j++;
         }
         if (j + 1 >= n) {
            return i; /* unterminated comment: left for the tokenizer to refuse */
         }
         i = j + 2;
      } else {
         break;
      }
   }
   return i;
}

/* A quoted run ending at the matching quote; a doubled quote is an escaped
 * quote. Returns the length including both quotes, or 0 if unterminated. */
static size_t
quoted (const char *z, size_t n, char q)
{
   for (size_t i = 1; i < n; i++) {
      if (z[i] == q) {
         if (i + 1 < n && z[i + 1] == q) {
            i++;
            continue;
         }
         return i + 1;
      }
   }
   return 0;
}

/* An operator that a second character can extend: `two` when z[1] is c2
 * (the longest match: "<=" is one token), else `one`. One rule for the
 * operators below; inline, as the tokenizer's switch is its hot path. */
static inline size_t
one_or_two (const char *z, size_t n, char c2, dj_token_type_t two, dj_token_type_t one, dj_token_type_t *type)
{
   bool pair = n > 1 && z[1] == c2;
   *type = pair ? two : one;
   return pair ? 2 : 1;
}

size_t
dj_sql_get_token (const char *z, size_t n, dj_token_type_t *type)
{
   size_t i;

   if (n == 0) {
      *type = DJ_TK_EOF;
      return 0;
   }
   unsigned char c = (unsigned char) z[0];
   switch (class_of (c)) {
   case CC_ALPHA:
      for (i = 1; i < n && (class_of ((unsigned char) z[i]) == CC_ALPHA || class_of ((unsigned char) z[i]) == CC_DIGIT); i++) {
      }
      *type = DJ_TK_ID;
      return i;
   case CC_DIGIT:
   case CC_DOT: {
      bool is_float = false;
      i = 0;
      if (c == '.' && (n < 2 || !isdigit ((unsigned char) z[1]))) {
         *type = DJ_TK_DOT;
         return 1;
      }
      while (i < n && isdigit ((unsigned char) z[i])) {
         i++;
      }
      if (i < n && z[i] == '.') {
         is_float = true;
         i++;
         while (i < n && isdigit ((unsigned char) z[i])) {
            i++;
         }
      }
      if (i < n && (z[i] == 'e' || z[i] == 'E')) {
         size_t j = i + 1;
         if (j < n && (z[j] == '+' || z[j] == '-')) {
            j++;
         }
         if (j < n && isdigit ((unsigned char) z[j])) {
            is_float = true;
            i = j;
            while (i < n && isdigit ((unsigned char) z[i])) {
               i++;
            }
         }
      }
      /* "12abc" is not a number followed by a name: refuse it whole. */
      if (i < n && class_of ((unsigned char) z[i]) == CC_ALPHA) {
         while (i < n && class_of ((unsigned char) z[i]) == CC_ALPHA) {
            i++;
         }
         *type = DJ_TK_ILLEGAL;
         return i;
      }
      *type = is_float ? DJ_TK_FLOAT : DJ_TK_INT;
      return i;
   }
   case CC_QUOTE:
      i = quoted (z, n, '\'');
      *type = i ? DJ_TK_STRING : DJ_TK_ILLEGAL;
      return i ? i : n;
   case CC_DQUOTE:
      i = quoted (z, n, '"');
      *type = i > 2 ? DJ_TK_QID : DJ_TK_ILLEGAL; /* "" is not a name */
      return i ? i : n;
   case CC_MINUS:
      return one_or_two (z, n, '>', DJ_TK_ARROW, DJ_TK_MINUS, type); /* col -> 'key': a path into a document */
   case CC_SLASH:
      *type = DJ_TK_SLASH;
      return 1;
   case CC_LP: *type = DJ_TK_LP; return 1;
   case CC_RP: *type = DJ_TK_RP; return 1;
   case CC_COMMA: *type = DJ_TK_COMMA; return 1;
   case CC_SEMI: *type = DJ_TK_SEMI; return 1;
   case CC_EQ: return one_or_two (z, n, '=', DJ_TK_EQ, DJ_TK_EQ, type); /* == is = */
   case CC_LT:
      if (n > 1 && z[1] == '>') { *type = DJ_TK_NE; return 2; }
      if (n > 1 && z[1] == '<') { *type = DJ_TK_SHL; return 2; }
      return one_or_two (z, n, '=', DJ_TK_LE, DJ_TK_LT, type);
   case CC_GT:
      if (n > 1 && z[1] == '>') { *type = DJ_TK_SHR; return 2; }
      return one_or_two (z, n, '=', DJ_TK_GE, DJ_TK_GT, type);
   case CC_BANG: return one_or_two (z, n, '=', DJ_TK_NE, DJ_TK_ILLEGAL, type);
   case CC_PLUS: *type = DJ_TK_PLUS; return 1;
   case CC_STAR: *type = DJ_TK_STAR; return 1;
   case CC_PERCENT:
      if (n > 1 && z[1] == 's') { *type = DJ_TK_PARAM; return 2; }
      return one_or_two (z, n, '%', DJ_TK_PERCENT, DJ_TK_PERCENT, type); /* %% is Django's escaped % */
   case CC_QMARK: /* qmark paramstyle (sqlite3, ODBC): the same positional parameter as %s */
      *type = DJ_TK_PARAM;
      return 1;
   case CC_PIPE: return one_or_two (z, n, '|', DJ_TK_CONCAT, DJ_TK_PIPE, type);
   case CC_AMP: *type = DJ_TK_AMP; return 1;
   case CC_HASH: *type = DJ_TK_HASH; return 1;
   case CC_CARET: *type = DJ_TK_CARET; return 1;
   case CC_TILDE: return one_or_two (z, n, '*', DJ_TK_TILDE_STAR, DJ_TK_TILDE, type);
   default:
      *type = DJ_TK_ILLEGAL;
      return 1;
   }
}

size_t
dj_sql_statement_end (const char *z, size_t n)
{
   size_t i = 0;
   for (;;) {
      i += dj_sql_skip_space (z + i, n - i);
      if (i + 1 < n && z[i] == '/' && z[i + 1] == '*') {
         return 0; /* skip_space stops at a comment that does not end */
      }
      dj_token_type_t type;
      size_t len = dj_sql_get_token (z + i, n - i, &type);
      if (len == 0) {
         return 0;
      }
      i += len;
      if (type == DJ_TK_SEMI) {
         return i;
      }
      /* an unterminated quote runs to the end: get_token returned all of
       * it, so the loop ends at the next turn */
   }
}

/* Whether sql holds "%%": each '%' found with memchr (word-wise), which a
 * statement with parameters has a few of (its %s), where memmem walked
 * every byte of every statement (~1,600 instructions for a Django get). */
static bool
has_double_percent (const char *sql, size_t len)
{
   const char *end = sql + len;
   for (const char *p = sql; (p = memchr (p, '%', (size_t) (end - p))) != NULL && p + 1 < end; p++) {
      if (p[1] == '%') {
         return true;
      }
   }
   return false;
}

char *
dj_sql_unescape_percents (const char *sql, size_t len, size_t *out_len)
{
   if (!has_double_percent (sql, len)) {
      return NULL;
   }
   char *out = bson_malloc (len + 1), quote = 0;
   size_t o = 0;
   bool changed = false;
   for (size_t i = 0; i < len; i++) {
      char c = sql[i];
      if (quote) {
         if (c == quote) {
            quote = 0; /* a doubled quote closes and reopens: same result */
         } else if (c == '%' && i + 1 < len && sql[i + 1] == '%') {
            i++;
            changed = true;
         }
      } else if (c == '\'' || c == '"') {
         quote = c;
      } else if ((c == '-' && i + 1 < len && sql[i + 1] == '-') || (c == '/' && i + 1 < len && sql[i + 1] == '*')) {
         /* a comment is copied as is: a quote in it opens nothing */
         size_t skip = dj_sql_skip_space (sql + i, len - i);
         memcpy (out + o, sql + i, skip);
         o += skip;
         i += skip - 1;
         continue;
      }
      out[o++] = c;
   }
   out[o] = 0;
   if (!changed) {
      bson_free (out);
      return NULL;
   }
   *out_len = o;
   return out;
}
