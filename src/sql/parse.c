/*
 * parse.c -- recursive-descent parser: SQL text -> dj_sql_stmt_t.
 *
 * Grammar (keywords case-insensitive; [] optional; {} repeated):
 *
 *   stmt     := select | insert | update | delete | create | drop | alter
 *             | BEGIN | COMMIT | ROLLBACK [TO [SAVEPOINT] name]
 *             | SAVEPOINT name | RELEASE [SAVEPOINT] name          [';']
 *   select   := core {(UNION | INTERSECT | EXCEPT) [ALL] core}
 *               [ORDER BY order {, order}] [LIMIT expr] [OFFSET expr]
 *   core     := SELECT [DISTINCT] item {, item} [FROM from {join}]
 *               [WHERE expr] [GROUP BY expr {, expr}] [HAVING expr]
 *             | '(' select ')'
 *   item     := '*' | name '.' '*' | expr [[AS] alias]
 *   from     := name [[AS] alias] | '(' select ')' [AS] alias
 *   join     := [INNER | LEFT [OUTER] | CROSS] JOIN from [ON expr] | ',' from
 *   order    := expr [ASC | DESC] [NULLS (FIRST | LAST)]
 *   insert   := INSERT INTO name ['(' col {, col} ')']
 *               (VALUES row {, row} | DEFAULT VALUES | select)
 *               [RETURNING item {, item}]
 *   update   := UPDATE name [[AS] alias] SET col = expr {, col = expr} [WHERE expr]
 *   delete   := DELETE FROM name [[AS] alias] [WHERE expr]
 *   expr     := or;  or := and {OR and};  and := not {AND not};
 *   not      := NOT not | pred
 *   pred     := sum [cmp sum | IS [NOT] NULL | [NOT] IN '(' (select | expr {, expr}) ')'
 *               | [NOT] BETWEEN sum AND sum | [NOT] (LIKE | ILIKE) sum [ESCAPE sum]
 *               | (~ | ~*) sum]
 *   sum      := prod {(+ | - | '||') prod};  prod := unary {(* | / | %) unary}
 *   unary    := (- | +) unary | primary {'->' (string | integer)}
 *   primary  := literal | %s | NULL | TRUE | FALSE | name ['.' name]
 *             | name '(' [DISTINCT] [args | '*'] ')' [FILTER '(' WHERE expr ')'] [OVER window]
 *             | CASE [expr] WHEN expr THEN expr {...} [ELSE expr] END
 *             | CAST '(' expr AS type ')' | [NOT] EXISTS '(' select ')'
 *             | '(' select ')' | '(' expr ')'
 *   DDL: see parse_create / parse_alter below.
 *
 * Errors: the first one wins and is kept on the parser ("near \"X\" at
 * offset N: ..."); every function returns NULL/false after it, so callers
 * only check the return value. All nodes come from the statement's arena.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dj_sql.h"

/* ---- arena: every node of a statement, freed at once ---- */

typedef struct chunk {
   struct chunk *next;
   size_t used, cap;
   _Alignas (max_align_t) unsigned char data[];
} chunk_t;

typedef struct {
   chunk_t *head;
} arena_t;

static void *
arena_alloc (arena_t *a, size_t n)
{
   n = (n + 15) & ~(size_t) 15;
   if (!a->head || a->head->used + n > a->head->cap) {
      size_t cap = n > 8192 ? n : 8192;
      chunk_t *c = bson_malloc (sizeof *c + cap); /* aborts on OOM, as libbson does */
      c->next = a->head;
      c->used = 0;
      c->cap = cap;
      a->head = c;
   }
   void *p = a->head->data + a->head->used;
   a->head->used += n;
   memset (p, 0, n);
   return p;
}

static void
arena_free (arena_t *a)
{
   chunk_t *c = a->head;
   while (c) {
      chunk_t *next = c->next;
      bson_free (c);
      c = next;
   }
}

/* ---- parser state ---- */

typedef struct {
   const char *sql;
   size_t len;
   size_t pos;             /* start of the current token */
   dj_token_type_t tk;     /* current token */
   size_t tlen;            /* its length */
   arena_t *arena;
   dj_sql_stmt_t *stmt;
   int depth;
   bool failed;
   bson_error_t *error;
} parser_t;

static void
advance (parser_t *p)
{
   p->pos += p->tlen;
   p->pos += dj_sql_skip_space (p->sql + p->pos, p->len - p->pos);
   p->tlen = dj_sql_get_token (p->sql + p->pos, p->len - p->pos, &p->tk);
}

static bool
fail (parser_t *p, const char *fmt, ...) BSON_GNUC_PRINTF (2, 3);

/* Records the first error: "near "TOKEN" at offset N: <what was expected>". */
static bool
fail (parser_t *p, const char *fmt, ...)
{
   if (p->failed) {
      return false;
   }
   p->failed = true;
   char what[256];
   va_list ap;
   va_start (ap, fmt);
   vsnprintf (what, sizeof what, fmt, ap);
   va_end (ap);
   if (p->tk == DJ_TK_ILLEGAL) {
      /* say what is wrong with the token rather than what was expected */
      char c = p->sql[p->pos];
      bson_strncpy (what, c == '\'' || c == '"' ? "unterminated quoted string or name" : "unrecognised token", sizeof what);
   }
   if (p->tk == DJ_TK_EOF) {
      dj_error_set (p->error, DJ_DOMAIN_SQL, DJ_SQL_SYNTAX, "syntax error at end of input (offset %zu): %s", p->pos, what);
   } else {
      int n = (int) (p->tlen > 40 ? 40 : p->tlen);
      dj_error_set (p->error, DJ_DOMAIN_SQL, DJ_SQL_SYNTAX, "syntax error near \"%.*s\" at offset %zu: %s", n, p->sql + p->pos, p->pos, what);
   }
   return false;
}

static bool
is_kw (parser_t *p, const char *kw)
{
   size_t n = strlen (kw);
   return p->tk == DJ_TK_ID && p->tlen == n && strncasecmp (p->sql + p->pos, kw, n) == 0;
}

static bool
accept_kw (parser_t *p, const char *kw)
{
   if (is_kw (p, kw)) {
      advance (p);
      return true;
   }
   return false;
}

static bool
expect_kw (parser_t *p, const char *kw)
{
   return accept_kw (p, kw) || fail (p, "expected %s", kw);
}

static bool
accept (parser_t *p, dj_token_type_t t)
{
   if (p->tk == t) {
      advance (p);
      return true;
   }
   return false;
}

static bool
expect (parser_t *p, dj_token_type_t t, const char *what)
{
   return accept (p, t) || fail (p, "expected %s", what);
}

static char *
copy_text (parser_t *p, const char *s, size_t n)
{
   char *r = arena_alloc (p->arena, n + 1);
   memcpy (r, s, n);
   r[n] = '\0';
   return r;
}

/* Copies a quoted token's body, turning each doubled quote into one. */
static char *
unquote (parser_t *p, char q)
{
   const char *s = p->sql + p->pos + 1;
   size_t n = p->tlen - 2;
   char *r = arena_alloc (p->arena, n + 1), *o = r;
   for (size_t i = 0; i < n; i++) {
      *o++ = s[i];
      if (s[i] == q) {
         i++;
      }
   }
   *o = '\0';
   return r;
}

static void
list_push (parser_t *p, dj_list_t *l, void *v)
{
   if (l->n == l->cap) {
      int cap = l->cap ? l->cap * 2 : 4;
      void **nv = arena_alloc (p->arena, sizeof (void *) * (size_t) cap);
      if (l->n) {
         memcpy (nv, l->v, sizeof (void *) * (size_t) l->n);
      }
      l->v = nv;
      l->cap = cap;
   }
   l->v[l->n++] = v;
}

static const char *const reserved[] = {
   "SELECT", "FROM", "WHERE", "GROUP", "HAVING", "ORDER", "LIMIT", "OFFSET", "UNION",
   "INTERSECT", "EXCEPT", "INNER", "LEFT", "RIGHT", "FULL", "OUTER", "CROSS", "JOIN",
   "ON", "AND", "OR", "NOT", "AS", "SET", "VALUES", "RETURNING", "WINDOW", "USING",
   "FOR", "IS", "IN", "LIKE", "ILIKE", "BETWEEN", "ESCAPE", "THEN", "WHEN", "ELSE",
   "END", "ASC", "DESC", "NULLS", "DEFAULT", "FILTER", "OVER", "CASE", "DISTINCT", "ALL", NULL};

/* Whether the token after the current one is "(" (one token of lookahead
 * for the keywords that are also function names). */
static bool
next_is_lparen (parser_t *p)
{
   size_t at = p->pos + p->tlen;
   at += dj_sql_skip_space (p->sql + at, p->len - at);
   return at < p->len && p->sql[at] == '(';
}

static bool
is_reserved (parser_t *p)
{
   for (int i = 0; reserved[i]; i++) {
      if (is_kw (p, reserved[i])) {
         return true;
      }
   }
   return false;
}

/* name := ID | "QID". Reserved words need quotes only where they would be
 * ambiguous, which is everywhere a bare alias may follow. */
static char *
parse_name (parser_t *p, const char *what)
{
   char *r;
   if (p->tk == DJ_TK_QID) {
      r = unquote (p, '"');
   } else if (p->tk == DJ_TK_ID && !is_reserved (p)) {
      r = copy_text (p, p->sql + p->pos, p->tlen);
   } else {
      fail (p, "expected %s%s", what, p->tk == DJ_TK_ID ? " (quote a keyword used as a name)" : "");
      return NULL;
   }
   advance (p);
   return r;
}

/* An alias: AS name, or a bare name that is not a keyword. */
static char *
parse_alias (parser_t *p)
{
   if (accept_kw (p, "AS")) {
      return parse_name (p, "an alias after AS");
   }
   if (p->tk == DJ_TK_QID || (p->tk == DJ_TK_ID && !is_reserved (p))) {
      return parse_name (p, "an alias");
   }
   return NULL;
}

static dj_expr_t *
new_expr (parser_t *p, dj_expr_kind_t kind, size_t pos)
{
   dj_expr_t *e = arena_alloc (p->arena, sizeof *e);
   e->kind = kind;
   e->pos = (uint32_t) pos;
   return e;
}

static dj_expr_t *parse_expr (parser_t *p);
static dj_select_t *parse_select (parser_t *p);
static dj_expr_t *parse_sum (parser_t *p);

/* expr [, expr ...] appended to `list`: window partitions, GROUP BY,
 * function arguments and IN lists are all this. */
static bool
parse_expr_list (parser_t *p, dj_list_t *list)
{
   do {
      dj_expr_t *e = parse_expr (p);
      if (!e) {
         return false;
      }
      list_push (p, list, e);
   } while (accept (p, DJ_TK_COMMA));
   return true;
}

static bool
enter (parser_t *p)
{
   if (++p->depth > DJ_SQL_MAX_DEPTH) {
      if (!p->failed) {
         p->failed = true;
         dj_error_set (p->error, DJ_DOMAIN_SQL, DJ_SQL_TOO_DEEP, "statement nested deeper than %d levels (offset %zu)", DJ_SQL_MAX_DEPTH, p->pos);
      }
      return false;
   }
   return true;
}

/* Is the current '(' the start of a subquery? Looks past nested '('. */
static bool
at_subquery (parser_t *p)
{
   size_t pos = p->pos + p->tlen;
   dj_token_type_t t;
   for (;;) {
      pos += dj_sql_skip_space (p->sql + pos, p->len - pos);
      size_t n = dj_sql_get_token (p->sql + pos, p->len - pos, &t);
      if (t == DJ_TK_LP) {
         pos += n;
         continue;
      }
      return t == DJ_TK_ID && n == 6 && strncasecmp (p->sql + pos, "SELECT", 6) == 0;
   }
}

static bool
parse_order_list (parser_t *p, dj_list_t *out)
{
   do {
      dj_order_t *o = arena_alloc (p->arena, sizeof *o);
      if (!(o->expr = parse_expr (p))) {
         return false;
      }
      if (accept_kw (p, "DESC")) {
         o->desc = true;
      } else {
         accept_kw (p, "ASC");
      }
      if (accept_kw (p, "NULLS")) {
         if (accept_kw (p, "FIRST")) {
            o->nulls = 1;
         } else if (accept_kw (p, "LAST")) {
            o->nulls = 2;
         } else {
            return fail (p, "expected FIRST or LAST after NULLS");
         }
      }
      list_push (p, out, o);
   } while (accept (p, DJ_TK_COMMA));
   return true;
}

/* UNBOUNDED PRECEDING | n PRECEDING | CURRENT ROW | n FOLLOWING | UNBOUNDED FOLLOWING */
static bool
parse_bound (parser_t *p, dj_bound_t *b, int64_t *n)
{
   if (accept_kw (p, "UNBOUNDED")) {
      if (accept_kw (p, "PRECEDING")) {
         *b = DJ_BOUND_UNBOUNDED_PRECEDING;
         return true;
      }
      *b = DJ_BOUND_UNBOUNDED_FOLLOWING;
      return expect_kw (p, "FOLLOWING");
   }
   if (accept_kw (p, "CURRENT")) {
      *b = DJ_BOUND_CURRENT;
      return expect_kw (p, "ROW");
   }
   if (p->tk != DJ_TK_INT) {
      return fail (p, "expected UNBOUNDED, CURRENT ROW or a number in a window frame");
   }
   char num[24];
   snprintf (num, sizeof num, "%.*s", (int) (p->tlen < 23 ? p->tlen : 23), p->sql + p->pos);
   errno = 0;
   long long v = strtoll (num, NULL, 10);
   if (errno || p->tlen > 18) {
      return fail (p, "window frame offset out of range");
   }
   *n = v;
   advance (p);
   if (accept_kw (p, "PRECEDING")) {
      *b = DJ_BOUND_PRECEDING;
      return true;
   }
   *b = DJ_BOUND_FOLLOWING;
   return expect_kw (p, "FOLLOWING");
}

/* OVER ( [PARTITION BY ...] [ORDER BY ...] [ROWS|RANGE frame] ) */
static dj_window_t *
parse_window (parser_t *p)
{
   dj_window_t *w = arena_alloc (p->arena, sizeof *w);
   if (!expect (p, DJ_TK_LP, "( after OVER")) {
      return NULL;
   }
   if (accept_kw (p, "PARTITION") && !(expect_kw (p, "BY") && parse_expr_list (p, &w->partition))) {
      return NULL;
   }
   if (accept_kw (p, "ORDER")) {
      if (!expect_kw (p, "BY") || !parse_order_list (p, &w->order)) {
         return NULL;
      }
   }
   if (is_kw (p, "ROWS") || is_kw (p, "RANGE") || is_kw (p, "GROUPS")) {
      /* {ROWS | RANGE | GROUPS} {bound | BETWEEN bound AND bound};
       * a single bound is the start, the end being CURRENT ROW */
      w->frame_pos = (uint32_t) p->pos;
      w->frame = is_kw (p, "ROWS") ? DJ_FRAME_ROWS : is_kw (p, "RANGE") ? DJ_FRAME_RANGE : DJ_FRAME_GROUPS;
      advance (p);
      bool between = accept_kw (p, "BETWEEN");
      if (!parse_bound (p, &w->start, &w->start_n)) {
         return NULL;
      }
      w->end = DJ_BOUND_CURRENT;
      if (between && (!expect_kw (p, "AND") || !parse_bound (p, &w->end, &w->end_n))) {
         return NULL;
      }
      if (is_kw (p, "EXCLUDE")) {
         fail (p, "EXCLUDE in a window frame is not part of the dialect");
         return NULL;
      }
   }
   if (!expect (p, DJ_TK_RP, ") to close OVER (...)")) {
      return NULL;
   }
   return w;
}

static dj_expr_t *
parse_function (parser_t *p, char *name, size_t pos)
{
   dj_expr_t *e = new_expr (p, DJ_X_FUNC, pos);
   for (char *c = name; *c; c++) {
      *c = (char) toupper ((unsigned char) *c);
   }
   e->name = name;
   /* the '(' is current */
   advance (p);
   if (!strcmp (name, "EXTRACT")) {
      /* EXTRACT(field FROM expr): args = ['field', expr] */
      dj_expr_t *field = new_expr (p, DJ_X_STRING, p->pos), *a;
      if (p->tk != DJ_TK_ID) {
         fail (p, "expected a field name (YEAR, MONTH, ...) in EXTRACT");
         return NULL;
      }
      field->name = copy_text (p, p->sql + p->pos, p->tlen);
      for (char *c = field->name; *c; c++) {
         *c = (char) tolower ((unsigned char) *c);
      }
      advance (p);
      if (!expect_kw (p, "FROM") || !(a = parse_expr (p)) || !expect (p, DJ_TK_RP, ") to close EXTRACT (...)")) {
         return NULL;
      }
      list_push (p, &e->args, field);
      list_push (p, &e->args, a);
      return e;
   }
   if (accept (p, DJ_TK_STAR)) {
      e->flags |= DJ_XF_STAR;
   } else if (p->tk != DJ_TK_RP) {
      if (accept_kw (p, "DISTINCT")) {
         e->flags |= DJ_XF_DISTINCT;
      } else {
         accept_kw (p, "ALL");
      }
      if (!parse_expr_list (p, &e->args)) {
         return NULL;
      }
   }
   if (!expect (p, DJ_TK_RP, ") to close the argument list")) {
      return NULL;
   }
   if (accept_kw (p, "FILTER")) {
      if (!expect (p, DJ_TK_LP, "( after FILTER") || !expect_kw (p, "WHERE") || !(e->filter = parse_expr (p)) ||
          !expect (p, DJ_TK_RP, ") to close FILTER (...)")) {
         return NULL;
      }
   }
   if (accept_kw (p, "OVER")) {
      if (!(e->over = parse_window (p))) {
         return NULL;
      }
   }
   return e;
}

static dj_expr_t *
parse_case (parser_t *p, size_t pos)
{
   dj_expr_t *e = new_expr (p, DJ_X_CASE, pos);
   if (!is_kw (p, "WHEN")) {
      if (!(e->a = parse_expr (p))) {
         return NULL;
      }
   }
   while (accept_kw (p, "WHEN")) {
      dj_expr_t *w = parse_expr (p), *t;
      if (!w || !expect_kw (p, "THEN") || !(t = parse_expr (p))) {
         return NULL;
      }
      list_push (p, &e->args, w);
      list_push (p, &e->args, t);
   }
   if (e->args.n == 0) {
      fail (p, "expected WHEN in CASE");
      return NULL;
   }
   if (accept_kw (p, "ELSE") && !(e->b = parse_expr (p))) {
      return NULL;
   }
   if (!expect_kw (p, "END")) {
      return NULL;
   }
   return e;
}

/* A type name: words and an optional (n[, m]), e.g. varchar(100),
 * decimal(10, 2), double precision, integer unsigned. Upper-cased. */
static char *
parse_type (parser_t *p)
{
   size_t start = p->pos, end = p->pos + p->tlen;
   if (p->tk != DJ_TK_ID) {
      fail (p, "expected a type name");
      return NULL;
   }
   while (p->tk == DJ_TK_ID && !is_reserved (p) && !is_kw (p, "PRIMARY") && !is_kw (p, "REFERENCES") &&
          !is_kw (p, "UNIQUE") && !is_kw (p, "CHECK") && !is_kw (p, "CONSTRAINT") && !is_kw (p, "COLLATE") &&
          !is_kw (p, "AUTOINCREMENT") && !is_kw (p, "NULL")) {
      end = p->pos + p->tlen;
      advance (p);
   }
   if (p->tk == DJ_TK_LP) {
      advance (p);
      while (p->tk == DJ_TK_INT || p->tk == DJ_TK_COMMA) {
         advance (p);
      }
      end = p->pos + p->tlen;
      if (!expect (p, DJ_TK_RP, ") after the type's size")) {
         return NULL;
      }
   }
   char *t = copy_text (p, p->sql + start, end - start);
   for (char *c = t; *c; c++) {
      *c = (char) toupper ((unsigned char) *c);
   }
   return t;
}

static dj_expr_t *
parse_primary (parser_t *p)
{
   size_t pos = p->pos;
   dj_expr_t *e;

   switch (p->tk) {
   case DJ_TK_INT: {
      e = new_expr (p, DJ_X_INT, pos);
      errno = 0;
      char *txt = copy_text (p, p->sql + p->pos, p->tlen);
      unsigned long long v = strtoull (txt, NULL, 10);
      if (errno == ERANGE || v > (unsigned long long) INT64_MAX) {
         /* too big for int64: a float, as SQLite reads it */
         e->kind = DJ_X_FLOAT;
         e->dval = strtod (txt, NULL);
      } else {
         e->ival = (int64_t) v;
      }
      e->name = txt;
      advance (p);
      return e;
   }
   case DJ_TK_FLOAT:
      e = new_expr (p, DJ_X_FLOAT, pos);
      e->name = copy_text (p, p->sql + p->pos, p->tlen);
      e->dval = strtod (e->name, NULL);
      advance (p);
      return e;
   case DJ_TK_STRING:
      e = new_expr (p, DJ_X_STRING, pos);
      e->name = unquote (p, '\'');
      advance (p);
      return e;
   case DJ_TK_PARAM:
      e = new_expr (p, DJ_X_PARAM, pos);
      e->ival = p->stmt->nparams++;
      advance (p);
      return e;
   case DJ_TK_LP:
      if (at_subquery (p)) {
         advance (p);
         e = new_expr (p, DJ_X_SUBQUERY, pos);
         if (!(e->sub = parse_select (p)) || !expect (p, DJ_TK_RP, ") to close the subquery")) {
            return NULL;
         }
         return e;
      }
      advance (p);
      if (!(e = parse_expr (p)) || !expect (p, DJ_TK_RP, ")")) {
         return NULL;
      }
      return e;
   case DJ_TK_STAR:
      advance (p);
      return new_expr (p, DJ_X_STAR, pos);
   case DJ_TK_ID:
      if (accept_kw (p, "NULL")) {
         return new_expr (p, DJ_X_NULL, pos);
      }
      if (is_kw (p, "TRUE") || is_kw (p, "FALSE")) {
         e = new_expr (p, DJ_X_BOOL, pos);
         e->ival = is_kw (p, "TRUE");
         advance (p);
         return e;
      }
      if (accept_kw (p, "CASE")) {
         return parse_case (p, pos);
      }
      if (accept_kw (p, "CURRENT_TIMESTAMP")) {
         e = new_expr (p, DJ_X_FUNC, pos);
         e->name = copy_text (p, "NOW", 3);
         return e;
      }
      if (accept_kw (p, "EXISTS")) {
         e = new_expr (p, DJ_X_EXISTS, pos);
         if (!expect (p, DJ_TK_LP, "( after EXISTS") || !(e->sub = parse_select (p)) ||
             !expect (p, DJ_TK_RP, ") to close EXISTS (...)")) {
            return NULL;
         }
         return e;
      }
      if (is_kw (p, "CAST")) {
         advance (p);
         e = new_expr (p, DJ_X_CAST, pos);
         if (!expect (p, DJ_TK_LP, "( after CAST") || !(e->a = parse_expr (p)) || !expect_kw (p, "AS") ||
             !(e->name = parse_type (p)) || !expect (p, DJ_TK_RP, ") to close CAST (...)")) {
            return NULL;
         }
         return e;
      }
      if ((is_kw (p, "LEFT") || is_kw (p, "RIGHT")) && next_is_lparen (p)) {
         /* LEFT(s, n) / RIGHT(s, n): the string functions (Django's Left,
          * Right), not the join keywords */
         char *name = copy_text (p, p->sql + p->pos, p->tlen);
         advance (p);
         return parse_function (p, name, pos);
      }
      if (is_reserved (p)) {
         fail (p, "expected an expression");
         return NULL;
      }
      /* a name */
      /* fall through */
   case DJ_TK_QID: {
      bool quoted = p->tk == DJ_TK_QID;
      char *name = parse_name (p, "a name");
      if (!name) {
         return NULL;
      }
      if (!quoted && p->tk == DJ_TK_LP) {
         return parse_function (p, name, pos);
      }
      e = new_expr (p, DJ_X_COLUMN, pos);
      if (accept (p, DJ_TK_DOT)) {
         e->table = name;
         if (accept (p, DJ_TK_STAR)) {
            e->name = copy_text (p, "*", 1);
         } else if (!(e->name = parse_name (p, "a column name after '.'"))) {
            return NULL;
         }
      } else {
         e->name = name;
      }
      return e;
   }
   default:
      fail (p, "expected an expression");
      return NULL;
   }
}

/* col -> 'key' and col -> 0 (PostgreSQL's operator) step into a document or
 * an array: the column's name becomes the MongoDB path "col.key" / "col.0".
 * Keys are literals in the SQL text, never parameters: a path is part of the
 * plan (MongoDB matches paths, not values), and a literal cannot smuggle an
 * operator in -- a key MongoDB would read as a path separator or an operator
 * ('.' anywhere, '$' first) is refused rather than reinterpreted.
 * https://www.mongodb.com/docs/manual/core/document/#dot-notation */
static dj_expr_t *
parse_path_step (parser_t *p, dj_expr_t *e)
{
   size_t at = p->pos;
   advance (p);
   if (e->kind != DJ_X_COLUMN || !strcmp (e->name, "*")) {
      p->pos = at;
      p->tlen = 2; /* name the arrow in the message */
      fail (p, "'->' steps into a column's document; the left side is not a column");
      return NULL;
   }
   if (p->tk == DJ_TK_GT) {
      fail (p, "'->>' (the key as text) is not supported: use '->', which gives the stored value");
      return NULL;
   }
   char *key;
   if (p->tk == DJ_TK_STRING) {
      key = unquote (p, '\'');
   } else if (p->tk == DJ_TK_INT) {
      key = copy_text (p, p->sql + p->pos, p->tlen);
   } else {
      fail (p, "expected a key (a quoted string) or an array index after '->'");
      return NULL;
   }
   if (!*key || strchr (key, '.') || key[0] == '$' || memchr (p->sql + p->pos, '\0', p->tlen)) {
      if (!p->failed) {
         p->failed = true;
         dj_error_set (p->error, DJ_DOMAIN_SQL, DJ_SQL_UNSUPPORTED,
                       "a document key that is empty, contains '.' or NUL, or starts with '$' cannot be a MongoDB path "
                       "(at offset %zu)", p->pos);
      }
      return NULL;
   }
   size_t n = strlen (e->name), k = strlen (key);
   char *path = arena_alloc (p->arena, n + k + 2);
   memcpy (path, e->name, n);
   path[n] = '.';
   memcpy (path + n + 1, key, k + 1);
   e->name = path;
   advance (p);
   return e;
}

static dj_expr_t *
parse_unary (parser_t *p)
{
   size_t pos = p->pos;
   if (!enter (p)) {
      return NULL;
   }
   dj_expr_t *e;
   if (accept (p, DJ_TK_MINUS)) {
      dj_expr_t *a = parse_unary (p);
      if (!a) {
         return NULL;
      }
      /* fold -literal so "-1" is the integer -1 (and INT64_MIN reads) */
      if (a->kind == DJ_X_INT) {
         a->ival = -a->ival;
         a->pos = (uint32_t) pos;
         e = a;
      } else if (a->kind == DJ_X_FLOAT) {
         a->dval = -a->dval;
         a->pos = (uint32_t) pos;
         e = a;
      } else {
         e = new_expr (p, DJ_X_NEG, pos);
         e->a = a;
      }
   } else if (accept (p, DJ_TK_PLUS)) {
      e = parse_unary (p);
   } else {
      e = parse_primary (p);
      while (e && p->tk == DJ_TK_ARROW) {
         e = parse_path_step (p, e);
      }
   }
   p->depth--;
   return e;
}

static dj_expr_t *
binary (parser_t *p, dj_op_t op, dj_expr_t *a, dj_expr_t *b)
{
   dj_expr_t *e = new_expr (p, DJ_X_BINARY, a->pos);
   e->op = op;
   e->a = a;
   e->b = b;
   return e;
}

/* A chain a op b op c ... builds a left-deep tree, one level per operator:
 * each operator takes one step of the depth budget (enter), given back when
 * the chain ends, so DJ_SQL_MAX_DEPTH bounds the height of the tree and not
 * only the parser's own recursion -- the compiler walks trees recursively.
 * The products' and the sums' chains differ only in their operators and
 * operands, hence one loop over a table for both (AND/OR chains are
 * flattened instead: parse_chain). */
typedef struct {
   dj_token_type_t tk;
   dj_op_t op;
} binop_t;

/* each table ends at DJ_TK_EOF, which is no operator */
static const binop_t prod_ops[] = {{DJ_TK_STAR, DJ_OP_MUL}, {DJ_TK_SLASH, DJ_OP_DIV}, {DJ_TK_PERCENT, DJ_OP_MOD}, {DJ_TK_EOF}};
static const binop_t sum_ops[] = {{DJ_TK_PLUS, DJ_OP_ADD}, {DJ_TK_MINUS, DJ_OP_SUB}, {DJ_TK_CONCAT, DJ_OP_CONCAT}, {DJ_TK_EOF}};

static const binop_t *
chain_op (const parser_t *p, const binop_t *ops)
{
   for (; ops->tk != DJ_TK_EOF; ops++) {
      if (p->tk == ops->tk) {
         return ops;
      }
   }
   return NULL;
}

static dj_expr_t *
parse_left_chain (parser_t *p, dj_expr_t *(*operand) (parser_t *), const binop_t *ops)
{
   int chain = 0;
   dj_expr_t *e = operand (p);
   const binop_t *o;
   while (e && (o = chain_op (p, ops))) {
      if (!enter (p)) {
         e = NULL;
         break;
      }
      chain++;
      advance (p);
      dj_expr_t *b = operand (p);
      e = b ? binary (p, o->op, e, b) : NULL;
   }
   p->depth -= chain;
   return e;
}

static dj_expr_t *
parse_prod (parser_t *p)
{
   return parse_left_chain (p, parse_unary, prod_ops);
}

static dj_expr_t *
parse_sum (parser_t *p)
{
   return parse_left_chain (p, parse_prod, sum_ops);
}

static dj_expr_t *
parse_pred (parser_t *p)
{
   dj_expr_t *a = parse_sum (p), *e;
   if (!a) {
      return NULL;
   }
   dj_op_t op;
   switch (p->tk) {
   case DJ_TK_EQ: op = DJ_OP_EQ; goto cmp;
   case DJ_TK_NE: op = DJ_OP_NE; goto cmp;
   case DJ_TK_LT: op = DJ_OP_LT; goto cmp;
   case DJ_TK_LE: op = DJ_OP_LE; goto cmp;
   case DJ_TK_GT: op = DJ_OP_GT; goto cmp;
   case DJ_TK_GE: op = DJ_OP_GE; goto cmp;
   cmp: {
      advance (p);
      dj_expr_t *b = parse_sum (p);
      return b ? binary (p, op, a, b) : NULL;
   }
   case DJ_TK_TILDE:
   case DJ_TK_TILDE_STAR:
      e = new_expr (p, DJ_X_REGEX, a->pos);
      e->flags = p->tk == DJ_TK_TILDE_STAR ? DJ_XF_ICASE : 0;
      advance (p);
      e->a = a;
      return (e->b = parse_sum (p)) ? e : NULL;
   default:
      break;
   }
   if (is_kw (p, "REGEXP")) { /* SQLite's and MySQL's spelling of ~ */
      e = new_expr (p, DJ_X_REGEX, a->pos);
      advance (p);
      e->a = a;
      return (e->b = parse_sum (p)) ? e : NULL;
   }
   if (accept_kw (p, "IS")) {
      e = new_expr (p, DJ_X_IS_NULL, a->pos);
      e->a = a;
      if (accept_kw (p, "NOT")) {
         e->flags |= DJ_XF_NOT;
      }
      if (!expect_kw (p, "NULL")) {
         return NULL;
      }
      return e;
   }
   int neg = 0;
   if (is_kw (p, "NOT")) {
      neg = DJ_XF_NOT;
      advance (p);
      if (!is_kw (p, "IN") && !is_kw (p, "BETWEEN") && !is_kw (p, "LIKE") && !is_kw (p, "ILIKE")) {
         fail (p, "expected IN, BETWEEN, LIKE or ILIKE after NOT");
         return NULL;
      }
   }
   if (accept_kw (p, "IN")) {
      if (p->tk != DJ_TK_LP) {
         fail (p, "expected ( after IN");
         return NULL;
      }
      if (at_subquery (p)) {
         advance (p);
         e = new_expr (p, DJ_X_IN_SELECT, a->pos);
         e->flags = neg;
         e->a = a;
         if (!(e->sub = parse_select (p)) || !expect (p, DJ_TK_RP, ") to close the subquery")) {
            return NULL;
         }
         return e;
      }
      advance (p);
      e = new_expr (p, DJ_X_IN_LIST, a->pos);
      e->flags = neg;
      e->a = a;
      return parse_expr_list (p, &e->args) && expect (p, DJ_TK_RP, ") to close the IN list") ? e : NULL;
   }
   if (accept_kw (p, "BETWEEN")) {
      e = new_expr (p, DJ_X_BETWEEN, a->pos);
      e->flags = neg;
      e->a = a;
      if (!(e->b = parse_sum (p)) || !expect_kw (p, "AND") || !(e->c = parse_sum (p))) {
         return NULL;
      }
      return e;
   }
   if (is_kw (p, "LIKE") || is_kw (p, "ILIKE")) {
      e = new_expr (p, DJ_X_LIKE, a->pos);
      e->flags = neg | (is_kw (p, "ILIKE") ? DJ_XF_ICASE : 0);
      advance (p);
      e->a = a;
      if (!(e->b = parse_sum (p))) {
         return NULL;
      }
      if (accept_kw (p, "ESCAPE") && !(e->c = parse_sum (p))) {
         return NULL;
      }
      return e;
   }
   if (neg) {
      fail (p, "expected IN, BETWEEN or LIKE after NOT");
      return NULL;
   }
   return a;
}

static dj_expr_t *
parse_not (parser_t *p)
{
   size_t pos = p->pos;
   if (!enter (p)) {
      return NULL;
   }
   dj_expr_t *e;
   if (accept_kw (p, "NOT")) {
      dj_expr_t *a = parse_not (p);
      if (a) {
         e = new_expr (p, DJ_X_NOT, pos);
         e->a = a;
      } else {
         e = NULL;
      }
   } else {
      e = parse_pred (p);
   }
   p->depth--;
   return e;
}

/* AND/OR chains are flattened into one node with n args. */
static dj_expr_t *
parse_chain (parser_t *p, const char *kw, dj_expr_kind_t kind, dj_expr_t *(*sub) (parser_t *))
{
   dj_expr_t *a = sub (p);
   if (!a || !is_kw (p, kw)) {
      return a;
   }
   dj_expr_t *e = new_expr (p, kind, a->pos);
   list_push (p, &e->args, a);
   while (accept_kw (p, kw)) {
      dj_expr_t *b = sub (p);
      if (!b) {
         return NULL;
      }
      list_push (p, &e->args, b);
   }
   return e;
}

static dj_expr_t *
parse_and (parser_t *p)
{
   return parse_chain (p, "AND", DJ_X_AND, parse_not);
}

static dj_expr_t *
parse_expr (parser_t *p)
{
   if (!enter (p)) {
      return NULL;
   }
   dj_expr_t *e = parse_chain (p, "OR", DJ_X_OR, parse_and);
   p->depth--;
   return e;
}

static dj_from_t *
parse_from_item (parser_t *p, dj_join_t join)
{
   dj_from_t *f = arena_alloc (p->arena, sizeof *f);
   f->join = join;
   f->pos = (uint32_t) p->pos;
   if (p->tk == DJ_TK_LP) {
      advance (p);
      if (!(f->sub = parse_select (p)) || !expect (p, DJ_TK_RP, ") to close the derived table")) {
         return NULL;
      }
      if (!(f->alias = parse_alias (p))) {
         fail (p, "expected an alias for the derived table");
         return NULL;
      }
      return f;
   }
   if (!(f->name = parse_name (p, "a table name"))) {
      return NULL;
   }
   f->alias = parse_alias (p);
   return p->failed ? NULL : f;
}

static bool
parse_from (parser_t *p, dj_select_t *s)
{
   dj_from_t *f = parse_from_item (p, DJ_JOIN_NONE);
   if (!f) {
      return false;
   }
   list_push (p, &s->from, f);
   for (;;) {
      dj_join_t j;
      if (accept (p, DJ_TK_COMMA)) {
         j = DJ_JOIN_CROSS;
      } else if (accept_kw (p, "JOIN")) {
         j = DJ_JOIN_INNER;
      } else if (accept_kw (p, "INNER")) {
         if (!expect_kw (p, "JOIN")) {
            return false;
         }
         j = DJ_JOIN_INNER;
      } else if (accept_kw (p, "LEFT")) {
         accept_kw (p, "OUTER");
         if (!expect_kw (p, "JOIN")) {
            return false;
         }
         j = DJ_JOIN_LEFT;
      } else if (accept_kw (p, "CROSS")) {
         if (!expect_kw (p, "JOIN")) {
            return false;
         }
         j = DJ_JOIN_CROSS;
      } else if (is_kw (p, "RIGHT") || is_kw (p, "FULL")) {
         return fail (p, "RIGHT and FULL joins are not part of the dialect (Django emits INNER and LEFT OUTER)");
      } else {
         return true;
      }
      if (!(f = parse_from_item (p, j))) {
         return false;
      }
      if (j != DJ_JOIN_CROSS && !p->failed) {
         if (!expect_kw (p, "ON") || !(f->on = parse_expr (p))) {
            return false;
         }
      }
      list_push (p, &s->from, f);
   }
}

static dj_select_t *
parse_core (parser_t *p)
{
   dj_select_t *s = arena_alloc (p->arena, sizeof *s);
   s->pos = (uint32_t) p->pos;
   if (p->tk == DJ_TK_LP) {
      advance (p);
      dj_select_t *inner = parse_select (p);
      if (!inner || !expect (p, DJ_TK_RP, ") to close the parenthesised SELECT")) {
         return NULL;
      }
      return inner;
   }
   if (!expect_kw (p, "SELECT")) {
      return NULL;
   }
   if (accept_kw (p, "DISTINCT")) {
      s->distinct = true;
   } else {
      accept_kw (p, "ALL");
   }
   do {
      dj_item_t *it = arena_alloc (p->arena, sizeof *it);
      if (!(it->expr = parse_expr (p))) {
         return NULL;
      }
      if (it->expr->kind != DJ_X_STAR) {
         it->alias = parse_alias (p);
      }
      list_push (p, &s->items, it);
   } while (accept (p, DJ_TK_COMMA));
   if (accept_kw (p, "FROM") && !parse_from (p, s)) {
      return NULL;
   }
   if (accept_kw (p, "WHERE") && !(s->where = parse_expr (p))) {
      return NULL;
   }
   if (accept_kw (p, "GROUP") && !(expect_kw (p, "BY") && parse_expr_list (p, &s->group_by))) {
      return NULL;
   }
   if (accept_kw (p, "HAVING") && !(s->having = parse_expr (p))) {
      return NULL;
   }
   return p->failed ? NULL : s;
}

static dj_select_t *
parse_select (parser_t *p)
{
   if (!enter (p)) {
      return NULL;
   }
   dj_select_t *first = parse_core (p), *s = first;
   while (s) {
      dj_setop_t op;
      if (accept_kw (p, "UNION")) {
         op = accept_kw (p, "ALL") ? DJ_SET_UNION_ALL : DJ_SET_UNION;
      } else if (accept_kw (p, "INTERSECT")) {
         op = accept_kw (p, "ALL") ? DJ_SET_INTERSECT_ALL : DJ_SET_INTERSECT;
      } else if (accept_kw (p, "EXCEPT")) {
         op = accept_kw (p, "ALL") ? DJ_SET_EXCEPT_ALL : DJ_SET_EXCEPT;
      } else {
         break;
      }
      while (s->next) {
         s = s->next; /* a parenthesised core may itself be a compound */
      }
      s->setop = op;
      s = s->next = parse_core (p);
   }
   if (!s) {
      p->depth--;
      return NULL;
   }
   /* ORDER BY / LIMIT / OFFSET after a compound apply to the whole of it;
    * they are stored on the first core. */
   if (accept_kw (p, "ORDER")) {
      if (!expect_kw (p, "BY") || !parse_order_list (p, &first->order_by)) {
         return NULL;
      }
   }
   if (accept_kw (p, "LIMIT")) {
      if (!(first->limit = parse_expr (p))) {
         return NULL;
      }
      if (accept (p, DJ_TK_COMMA)) { /* LIMIT offset, count (MySQL/SQLite) */
         first->offset = first->limit;
         if (!(first->limit = parse_expr (p))) {
            return NULL;
         }
      }
   }
   if (accept_kw (p, "OFFSET") && !(first->offset = parse_expr (p))) {
      return NULL;
   }
   p->depth--;
   return first;
}

static bool
parse_returning (parser_t *p, dj_sql_stmt_t *st)
{
   if (!accept_kw (p, "RETURNING")) {
      return true;
   }
   do {
      dj_item_t *it = arena_alloc (p->arena, sizeof *it);
      if (!(it->expr = parse_expr (p))) {
         return false;
      }
      it->alias = parse_alias (p);
      list_push (p, &st->returning, it);
   } while (accept (p, DJ_TK_COMMA));
   return !p->failed;
}

static bool
parse_name_list (parser_t *p, dj_list_t *out)
{
   if (!expect (p, DJ_TK_LP, "(")) {
      return false;
   }
   do {
      char *n = parse_name (p, "a column name");
      if (!n) {
         return false;
      }
      list_push (p, out, n);
   } while (accept (p, DJ_TK_COMMA));
   return expect (p, DJ_TK_RP, ")");
}

static bool
parse_insert (parser_t *p, dj_sql_stmt_t *st)
{
   st->kind = DJ_STMT_INSERT;
   if (accept_kw (p, "OR")) { /* INSERT OR IGNORE (SQLite's spelling of ON CONFLICT DO NOTHING) */
      if (!expect_kw (p, "IGNORE")) {
         return false;
      }
      st->ignore_conflicts = true;
   }
   if (!expect_kw (p, "INTO") || !(st->table = parse_name (p, "a table name"))) {
      return false;
   }
   if (p->tk == DJ_TK_LP && !at_subquery (p) && !parse_name_list (p, &st->columns)) {
      return false;
   }
   if (accept_kw (p, "DEFAULT")) {
      if (!expect_kw (p, "VALUES")) {
         return false;
      }
      dj_list_t *row = arena_alloc (p->arena, sizeof *row);
      list_push (p, &st->rows, row);
   } else if (accept_kw (p, "VALUES")) {
      do {
         dj_list_t *row = arena_alloc (p->arena, sizeof *row);
         if (!expect (p, DJ_TK_LP, "( to open a row of VALUES")) {
            return false;
         }
         do {
            dj_expr_t *v;
            if (is_kw (p, "DEFAULT")) {
               return fail (p, "DEFAULT in VALUES is not supported: leave the column out instead");
            }
            if (!(v = parse_expr (p))) {
               return false;
            }
            list_push (p, row, v);
         } while (accept (p, DJ_TK_COMMA));
         if (!expect (p, DJ_TK_RP, ") to close a row of VALUES")) {
            return false;
         }
         if (st->columns.n && row->n != st->columns.n) {
            return fail (p, "a row of VALUES has %d values for %d columns", row->n, st->columns.n);
         }
         list_push (p, &st->rows, row);
      } while (accept (p, DJ_TK_COMMA));
   } else if (is_kw (p, "SELECT") || p->tk == DJ_TK_LP) {
      if (!(st->select = parse_select (p))) {
         return false;
      }
   } else {
      return fail (p, "expected VALUES, DEFAULT VALUES or SELECT");
   }
   if (accept_kw (p, "ON")) {
      if (!expect_kw (p, "CONFLICT")) {
         return false;
      }
      if (p->tk == DJ_TK_LP) { /* the conflict target: any unique index counts */
         dj_list_t cols = {0};
         if (!parse_name_list (p, &cols)) {
            return false;
         }
      }
      if (!expect_kw (p, "DO") || !expect_kw (p, "NOTHING")) {
         return false; /* ON CONFLICT DO UPDATE is not part of the dialect */
      }
      st->ignore_conflicts = true;
   }
   return parse_returning (p, st);
}

static bool
parse_update (parser_t *p, dj_sql_stmt_t *st)
{
   st->kind = DJ_STMT_UPDATE;
   if (!(st->table = parse_name (p, "a table name"))) {
      return false;
   }
   if (!is_kw (p, "SET")) {
      st->alias = parse_alias (p);
   }
   if (!expect_kw (p, "SET")) {
      return false;
   }
   do {
      dj_item_t *it = arena_alloc (p->arena, sizeof *it);
      if (!(it->alias = parse_name (p, "a column name"))) {
         return false;
      }
      if (accept (p, DJ_TK_DOT) && !(it->alias = parse_name (p, "a column name"))) {
         return false; /* "t"."c" = ...: the table is the target */
      }
      if (!expect (p, DJ_TK_EQ, "= after the column name") || !(it->expr = parse_expr (p))) {
         return false;
      }
      list_push (p, &st->sets, it);
   } while (accept (p, DJ_TK_COMMA));
   if (accept_kw (p, "WHERE") && !(st->where = parse_expr (p))) {
      return false;
   }
   return parse_returning (p, st);
}

static bool
parse_delete (parser_t *p, dj_sql_stmt_t *st)
{
   st->kind = DJ_STMT_DELETE;
   if (!expect_kw (p, "FROM") || !(st->table = parse_name (p, "a table name"))) {
      return false;
   }
   if (!is_kw (p, "WHERE")) {
      st->alias = parse_alias (p);
   }
   if (accept_kw (p, "WHERE") && !(st->where = parse_expr (p))) {
      return false;
   }
   return parse_returning (p, st);
}

/* Column definition: name [type] {constraint}. */
static dj_coldef_t *
parse_coldef (parser_t *p)
{
   dj_coldef_t *c = arena_alloc (p->arena, sizeof *c);
   if (!(c->name = parse_name (p, "a column name"))) {
      return NULL;
   }
   if (p->tk == DJ_TK_ID && !is_kw (p, "NOT") && !is_kw (p, "NULL") && !is_kw (p, "PRIMARY") && !is_kw (p, "UNIQUE") &&
       !is_kw (p, "DEFAULT") && !is_kw (p, "REFERENCES") && !is_kw (p, "CHECK") && !is_kw (p, "CONSTRAINT")) {
      if (!(c->type = parse_type (p))) {
         return NULL;
      }
   }
   for (;;) {
      if (accept_kw (p, "CONSTRAINT")) {
         if (!parse_name (p, "a constraint name")) {
            return NULL;
         }
      } else if (accept_kw (p, "NOT")) {
         if (!expect_kw (p, "NULL")) {
            return NULL;
         }
         c->not_null = true;
      } else if (accept_kw (p, "NULL")) {
         c->not_null = false;
      } else if (accept_kw (p, "PRIMARY")) {
         if (!expect_kw (p, "KEY")) {
            return NULL;
         }
         c->primary_key = c->not_null = true;
      } else if (accept_kw (p, "AUTOINCREMENT") || accept_kw (p, "AUTO_INCREMENT")) {
         c->autoincrement = true;
      } else if (accept_kw (p, "UNIQUE")) {
         c->unique = true;
      } else if (accept_kw (p, "DEFAULT")) {
         if (!(c->default_value = parse_unary (p))) {
            return NULL;
         }
      } else if (accept_kw (p, "REFERENCES")) {
         if (!(c->ref_table = parse_name (p, "a table name"))) {
            return NULL;
         }
         if (p->tk == DJ_TK_LP) {
            advance (p);
            if (!(c->ref_column = parse_name (p, "a column name")) || !expect (p, DJ_TK_RP, ")")) {
               return NULL;
            }
         }
         if (accept_kw (p, "DEFERRABLE")) {
            if (!expect_kw (p, "INITIALLY") || (!accept_kw (p, "DEFERRED") && !expect_kw (p, "IMMEDIATE"))) {
               return NULL;
            }
         }
      } else if (is_kw (p, "CHECK") || is_kw (p, "GENERATED") || is_kw (p, "COLLATE")) {
         fail (p, "%.*s in a column definition is not part of the dialect", (int) p->tlen, p->sql + p->pos);
         return NULL;
      } else {
         return c;
      }
   }
}

static dj_tconstraint_t *
parse_tconstraint (parser_t *p)
{
   dj_tconstraint_t *tc = arena_alloc (p->arena, sizeof *tc);
   if (accept_kw (p, "CONSTRAINT") && !(tc->name = parse_name (p, "a constraint name"))) {
      return NULL;
   }
   if (accept_kw (p, "PRIMARY")) {
      if (!expect_kw (p, "KEY")) {
         return NULL;
      }
      tc->primary_key = true;
   } else if (!accept_kw (p, "UNIQUE")) {
      fail (p, "expected PRIMARY KEY or UNIQUE (CHECK and FOREIGN KEY constraints are not part of the dialect)");
      return NULL;
   }
   if (!parse_name_list (p, &tc->columns)) {
      return NULL;
   }
   if (accept_kw (p, "WHERE") && !(tc->where = parse_expr (p))) {
      return NULL;
   }
   return tc;
}

static bool
at_tconstraint (parser_t *p)
{
   return is_kw (p, "CONSTRAINT") || is_kw (p, "PRIMARY") || is_kw (p, "UNIQUE") || is_kw (p, "CHECK") ||
          is_kw (p, "FOREIGN");
}

/* Appends what a parser returned; false when it failed (returned NULL).
 * CREATE TABLE's elements and ALTER TABLE ADD take the same two parsers. */
static bool
push_parsed (parser_t *p, dj_list_t *list, void *parsed)
{
   if (!parsed) {
      return false;
   }
   list_push (p, list, parsed);
   return true;
}

/* [IF NOT EXISTS], for CREATE TABLE and CREATE INDEX */
static bool
parse_if_not_exists (parser_t *p, dj_sql_stmt_t *st)
{
   if (accept_kw (p, "IF")) {
      if (!expect_kw (p, "NOT") || !expect_kw (p, "EXISTS")) {
         return false;
      }
      st->if_not_exists = true;
   }
   return true;
}

static bool
parse_create (parser_t *p, dj_sql_stmt_t *st)
{
   bool unique = accept_kw (p, "UNIQUE");
   if (accept_kw (p, "INDEX")) {
      st->kind = DJ_STMT_CREATE_INDEX;
      st->unique = unique;
      if (!parse_if_not_exists (p, st) || !(st->name = parse_name (p, "an index name")) || !expect_kw (p, "ON") ||
          !(st->table = parse_name (p, "a table name")) || !expect (p, DJ_TK_LP, "( to open the index keys") ||
          !parse_order_list (p, &st->columns) || !expect (p, DJ_TK_RP, ") to close the index keys")) {
         return false;
      }
      if (accept_kw (p, "WHERE") && !(st->where = parse_expr (p))) {
         return false;
      }
      return true;
   }
   if (unique) {
      return fail (p, "expected INDEX after CREATE UNIQUE");
   }
   if (!expect_kw (p, "TABLE")) {
      return false;
   }
   st->kind = DJ_STMT_CREATE_TABLE;
   if (!parse_if_not_exists (p, st) || !(st->table = parse_name (p, "a table name")) ||
       !expect (p, DJ_TK_LP, "( to open the column list")) {
      return false;
   }
   do {
      if (!(at_tconstraint (p) ? push_parsed (p, &st->constraints, parse_tconstraint (p))
                               : push_parsed (p, &st->coldefs, parse_coldef (p)))) {
         return false;
      }
   } while (accept (p, DJ_TK_COMMA));
   return expect (p, DJ_TK_RP, ") to close the column list");
}

static bool
parse_drop (parser_t *p, dj_sql_stmt_t *st)
{
   if (accept_kw (p, "TABLE")) {
      st->kind = DJ_STMT_DROP_TABLE;
   } else if (accept_kw (p, "INDEX")) {
      st->kind = DJ_STMT_DROP_INDEX;
   } else {
      return fail (p, "expected TABLE or INDEX after DROP");
   }
   if (accept_kw (p, "IF")) {
      if (!expect_kw (p, "EXISTS")) {
         return false;
      }
      st->if_exists = true;
   }
   char *n = parse_name (p, st->kind == DJ_STMT_DROP_TABLE ? "a table name" : "an index name");
   if (!n) {
      return false;
   }
   if (st->kind == DJ_STMT_DROP_TABLE) {
      st->table = n;
      accept_kw (p, "CASCADE");
   } else {
      st->name = n;
      /* DROP INDEX name ON table (MySQL), needed because MongoDB index
       * names are per collection. */
      if (accept_kw (p, "ON") && !(st->table = parse_name (p, "a table name"))) {
         return false;
      }
   }
   return true;
}

static bool
parse_alter (parser_t *p, dj_sql_stmt_t *st)
{
   st->kind = DJ_STMT_ALTER_TABLE;
   if (!expect_kw (p, "TABLE") || !(st->table = parse_name (p, "a table name"))) {
      return false;
   }
   if (accept_kw (p, "ADD")) {
      if (at_tconstraint (p)) {
         st->alter = DJ_ALTER_ADD_CONSTRAINT;
         return push_parsed (p, &st->constraints, parse_tconstraint (p));
      }
      accept_kw (p, "COLUMN");
      st->alter = DJ_ALTER_ADD_COLUMN;
      return push_parsed (p, &st->coldefs, parse_coldef (p));
   }
   if (accept_kw (p, "DROP")) {
      if (accept_kw (p, "CONSTRAINT")) {
         st->alter = DJ_ALTER_DROP_CONSTRAINT;
         return (st->name = parse_name (p, "a constraint name")) != NULL;
      }
      accept_kw (p, "COLUMN");
      st->alter = DJ_ALTER_DROP_COLUMN;
      if (!(st->column = parse_name (p, "a column name"))) {
         return false;
      }
      accept_kw (p, "CASCADE");
      return true;
   }
   if (accept_kw (p, "RENAME")) {
      if (accept_kw (p, "TO")) {
         st->alter = DJ_ALTER_RENAME_TABLE;
         return (st->name = parse_name (p, "a new table name")) != NULL;
      }
      accept_kw (p, "COLUMN");
      st->alter = DJ_ALTER_RENAME_COLUMN;
      return (st->column = parse_name (p, "a column name")) && expect_kw (p, "TO") &&
             (st->name = parse_name (p, "a new column name"));
   }
   if (accept_kw (p, "ALTER")) {
      /* ALTER COLUMN c {TYPE t | SET NOT NULL | DROP NOT NULL | SET DEFAULT e | DROP DEFAULT}:
       * the compiler records the type and NOT NULL in the table's entry
       * (what the executor checks writes against); defaults change nothing
       * stored. */
      accept_kw (p, "COLUMN");
      st->alter = DJ_ALTER_ALTER_COLUMN;
      if (!(st->column = parse_name (p, "a column name"))) {
         return false;
      }
      dj_coldef_t *c = arena_alloc (p->arena, sizeof *c);
      c->name = st->column;
      if (accept_kw (p, "TYPE")) {
         c->type = parse_type (p);
         return c->type && (list_push (p, &st->coldefs, c), true);
      }
      if (accept_kw (p, "SET")) {
         if (accept_kw (p, "NOT")) {
            c->not_null = expect_kw (p, "NULL");
         } else if (accept_kw (p, "DEFAULT")) {
            c->default_value = parse_unary (p);
         } else {
            return fail (p, "expected NOT NULL or DEFAULT after SET");
         }
      } else if (accept_kw (p, "DROP")) {
         if (!accept_kw (p, "DEFAULT") && !(c->drop_not_null = expect_kw (p, "NOT") && expect_kw (p, "NULL"))) {
            return false;
         }
      } else {
         return fail (p, "expected TYPE, SET or DROP");
      }
      if (p->failed) {
         return false;
      }
      list_push (p, &st->coldefs, c);
      return true;
   }
   return fail (p, "expected ADD, DROP, RENAME or ALTER");
}

static bool
parse_statement (parser_t *p, dj_sql_stmt_t *st)
{
   if (is_kw (p, "SELECT") || p->tk == DJ_TK_LP) {
      st->kind = DJ_STMT_SELECT;
      return (st->select = parse_select (p)) != NULL;
   }
   /* the statements whose first keyword hands the rest to their own parser */
   static const struct {
      const char *kw;
      bool (*parse) (parser_t *p, dj_sql_stmt_t *st);
   } by_keyword[] = {{"INSERT", parse_insert}, {"UPDATE", parse_update}, {"DELETE", parse_delete},
                     {"CREATE", parse_create}, {"DROP", parse_drop}, {"ALTER", parse_alter}};
   for (size_t i = 0; i < sizeof by_keyword / sizeof by_keyword[0]; i++) {
      if (accept_kw (p, by_keyword[i].kw)) {
         return by_keyword[i].parse (p, st);
      }
   }
   if (accept_kw (p, "BEGIN") || accept_kw (p, "START")) {
      st->kind = DJ_STMT_BEGIN;
      accept_kw (p, "TRANSACTION");
      return true;
   }
   if (accept_kw (p, "COMMIT") || accept_kw (p, "END")) {
      st->kind = DJ_STMT_COMMIT;
      accept_kw (p, "TRANSACTION");
      return true;
   }
   if (accept_kw (p, "ROLLBACK")) {
      accept_kw (p, "TRANSACTION");
      st->kind = DJ_STMT_ROLLBACK;
      if (accept_kw (p, "TO")) {
         st->kind = DJ_STMT_ROLLBACK_TO;
         accept_kw (p, "SAVEPOINT");
         return (st->name = parse_name (p, "a savepoint name")) != NULL;
      }
      return true;
   }
   if (accept_kw (p, "SAVEPOINT")) {
      st->kind = DJ_STMT_SAVEPOINT;
      return (st->name = parse_name (p, "a savepoint name")) != NULL;
   }
   if (accept_kw (p, "RELEASE")) {
      st->kind = DJ_STMT_RELEASE;
      accept_kw (p, "SAVEPOINT");
      return (st->name = parse_name (p, "a savepoint name")) != NULL;
   }
   return fail (p, "expected a statement (SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, BEGIN, COMMIT, ROLLBACK, SAVEPOINT, RELEASE)");
}

dj_sql_stmt_t *
dj_sql_parse (const char *sql, size_t len, bson_error_t *error)
{
   arena_t arena = {0};
   dj_sql_stmt_t *st = arena_alloc (&arena, sizeof *st);
   parser_t p = {.sql = sql, .len = len, .arena = &arena, .stmt = st, .error = error};

   p.tlen = 0;
   advance (&p);
   bool ok = parse_statement (&p, st);
   if (ok && !p.failed) {
      accept (&p, DJ_TK_SEMI);
      if (p.tk != DJ_TK_EOF) {
         fail (&p, p.tk == DJ_TK_ILLEGAL ? "unrecognised token" : "expected the end of the statement");
      }
   } else if (!p.failed) {
      fail (&p, "unexpected token");
   }
   if (p.failed) {
      arena_free (&arena);
      return NULL;
   }
   /* the arena lives in its first chunk's owner: keep it on the statement */
   arena_t *keep = arena_alloc (&arena, sizeof *keep);
   *keep = arena;
   st->arena_ = keep;
   return st;
}

void
dj_sql_stmt_destroy (dj_sql_stmt_t *stmt)
{
   if (stmt) {
      arena_t a = *(arena_t *) stmt->arena_;
      arena_free (&a); /* frees the chunk holding stmt and the arena copy too */
   }
}
