/*
 * parse_expr.c -- SQL expressions: `expr` and everything under it in the
 * grammar at the top of parse.c (operators by precedence, predicates,
 * functions with FILTER and OVER, CASE, CAST, paths, subqueries in
 * expressions), ORDER BY lists and column types.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "parse-private.h"


/* expr [, expr ...] appended to `list`: window partitions, GROUP BY,
 * function arguments and IN lists are all this. */
bool
sql_parse_expr_list (parser_t *p, dj_list_t *list)
{
   do {
      dj_expr_t *e = sql_parse_expr (p);
      if (!e) {
         return false;
      }
      sql_list_push (p, list, e);
   } while (sql_accept (p, DJ_TK_COMMA));
   return true;
}


/* The token at byte `pos` (after whitespace): its type, *at its start, and
 * the position after it. */
static size_t
token_at (const parser_t *p, size_t pos, dj_token_type_t *t, size_t *at)
{
   pos += dj_sql_skip_space (p->sql + pos, p->len - pos);
   *at = pos;
   return pos + dj_sql_get_token (p->sql + pos, p->len - pos, t);
}

static bool
word_is (const parser_t *p, size_t at, size_t end, const char *w)
{
   return end - at == strlen (w) && strncasecmp (p->sql + at, w, end - at) == 0;
}

/* Is the current '(' the start of a subquery? Either SELECT follows, or
 * '(' ... SELECT ... -- a parenthesised SELECT, possibly one part of a
 * compound -- whose group is followed by ')' or what may follow a SELECT
 * (UNION, INTERSECT, EXCEPT, ORDER, LIMIT, OFFSET); `((SELECT ..) / 1)` is
 * an expression. Iterative: nesting depth costs no stack here. */
bool
sql_at_subquery (parser_t *p)
{
   dj_token_type_t t;
   size_t at, pos = p->pos + p->tlen, group = 0;
   int k = 0;
   for (;;) {
      size_t next = token_at (p, pos, &t, &at);
      if (t != DJ_TK_LP) {
         if (t != DJ_TK_ID || !word_is (p, at, next, "SELECT")) {
            return false;
         }
         break;
      }
      if (k++ == 0) {
         group = at; /* the first inner '(' */
      }
      pos = next;
   }
   if (k == 0) {
      return true;
   }
   /* past the group that the first inner '(' opens */
   int depth = 0;
   pos = group;
   do {
      pos = token_at (p, pos, &t, &at);
      if (t == DJ_TK_LP) {
         depth++;
      } else if (t == DJ_TK_RP) {
         depth--;
      } else if (t == DJ_TK_EOF || t == DJ_TK_ILLEGAL) {
         return true; /* unbalanced: the subquery parser names the error */
      }
   } while (depth > 0);
   size_t next = token_at (p, pos, &t, &at);
   if (t == DJ_TK_RP) {
      return true;
   }
   static const char *const after_select[] = {"UNION", "INTERSECT", "EXCEPT", "ORDER", "LIMIT", "OFFSET", NULL};
   for (int i = 0; t == DJ_TK_ID && after_select[i]; i++) {
      if (word_is (p, at, next, after_select[i])) {
         return true;
      }
   }
   return false;
}

bool
sql_parse_order_list (parser_t *p, dj_list_t *out, bool index_keys)
{
   do {
      dj_order_t *o = sql_arena_alloc (p->arena, sizeof *o);
      if (!(o->expr = sql_parse_expr (p))) {
         return false;
      }
      if (index_keys && sql_accept_kw (p, "HASHED")) {
         o->hashed = true;
      } else if (index_keys && sql_accept_kw (p, "TEXT")) {
         o->text = true;
         if (sql_accept_kw (p, "WEIGHT") && !(o->weight = sql_parse_expr (p))) {
            return false;
         }
      } else if (index_keys && sql_accept_kw (p, "GEOSPHERE")) {
         o->geo = 1;
      } else if (index_keys && sql_accept_kw (p, "GEO2D")) {
         o->geo = 2;
      } else if (sql_accept_kw (p, "DESC")) {
         o->desc = true;
      } else {
         sql_accept_kw (p, "ASC");
      }
      if (sql_accept_kw (p, "NULLS")) {
         if (sql_accept_kw (p, "FIRST")) {
            o->nulls = 1;
         } else if (sql_accept_kw (p, "LAST")) {
            o->nulls = 2;
         } else {
            return sql_fail (p, "expected FIRST or LAST after NULLS");
         }
      }
      sql_list_push (p, out, o);
   } while (sql_accept (p, DJ_TK_COMMA));
   return true;
}

/* UNBOUNDED PRECEDING | n PRECEDING | CURRENT ROW | n FOLLOWING | UNBOUNDED FOLLOWING */
static bool
parse_bound (parser_t *p, dj_bound_t *b, int64_t *n)
{
   if (sql_accept_kw (p, "UNBOUNDED")) {
      if (sql_accept_kw (p, "PRECEDING")) {
         *b = DJ_BOUND_UNBOUNDED_PRECEDING;
         return true;
      }
      *b = DJ_BOUND_UNBOUNDED_FOLLOWING;
      return sql_expect_kw (p, "FOLLOWING");
   }
   if (sql_accept_kw (p, "CURRENT")) {
      *b = DJ_BOUND_CURRENT;
      return sql_expect_kw (p, "ROW");
   }
   if (p->tk != DJ_TK_INT) {
      return sql_fail (p, "expected UNBOUNDED, CURRENT ROW or a number in a window frame");
   }
   char num[24];
   snprintf (num, sizeof num, "%.*s", (int) (p->tlen < 23 ? p->tlen : 23), p->sql + p->pos);
   errno = 0;
   long long v = strtoll (num, NULL, 10);
   if (errno || p->tlen > 18) {
      return sql_fail (p, "window frame offset out of range");
   }
   *n = v;
   sql_advance (p);
   if (sql_accept_kw (p, "PRECEDING")) {
      *b = DJ_BOUND_PRECEDING;
      return true;
   }
   *b = DJ_BOUND_FOLLOWING;
   return sql_expect_kw (p, "FOLLOWING");
}

/* OVER ( [PARTITION BY ...] [ORDER BY ...] [ROWS|RANGE frame] ) */
static dj_window_t *
parse_window (parser_t *p)
{
   dj_window_t *w = sql_arena_alloc (p->arena, sizeof *w);
   if (!sql_expect (p, DJ_TK_LP, "( after OVER")) {
      return NULL;
   }
   if (sql_accept_kw (p, "PARTITION") && !(sql_expect_kw (p, "BY") && sql_parse_expr_list (p, &w->partition))) {
      return NULL;
   }
   if (sql_accept_kw (p, "ORDER")) {
      if (!sql_expect_kw (p, "BY") || !sql_parse_order_list (p, &w->order, false)) {
         return NULL;
      }
   }
   if (sql_is_kw (p, "ROWS") || sql_is_kw (p, "RANGE") || sql_is_kw (p, "GROUPS")) {
      /* {ROWS | RANGE | GROUPS} {bound | BETWEEN bound AND bound};
       * a single bound is the start, the end being CURRENT ROW */
      w->frame_pos = (uint32_t) p->pos;
      w->frame = sql_is_kw (p, "ROWS") ? DJ_FRAME_ROWS : sql_is_kw (p, "RANGE") ? DJ_FRAME_RANGE : DJ_FRAME_GROUPS;
      sql_advance (p);
      bool between = sql_accept_kw (p, "BETWEEN");
      if (!parse_bound (p, &w->start, &w->start_n)) {
         return NULL;
      }
      w->end = DJ_BOUND_CURRENT;
      if (between && (!sql_expect_kw (p, "AND") || !parse_bound (p, &w->end, &w->end_n))) {
         return NULL;
      }
      if (sql_accept_kw (p, "EXCLUDE")) {
         /* EXCLUDE {CURRENT ROW | GROUP | TIES | NO OTHERS} */
         if (sql_accept_kw (p, "CURRENT")) {
            w->exclude = DJ_EXCLUDE_CURRENT_ROW;
            if (!sql_expect_kw (p, "ROW")) {
               return NULL;
            }
         } else if (sql_accept_kw (p, "GROUP")) {
            w->exclude = DJ_EXCLUDE_GROUP;
         } else if (sql_accept_kw (p, "TIES")) {
            w->exclude = DJ_EXCLUDE_TIES;
         } else if (sql_accept_kw (p, "NO")) {
            w->exclude = DJ_EXCLUDE_NO_OTHERS;
            if (!sql_expect_kw (p, "OTHERS")) {
               return NULL;
            }
         } else {
            sql_fail (p, "expected CURRENT ROW, GROUP, TIES or NO OTHERS after EXCLUDE");
            return NULL;
         }
      }
   }
   if (!sql_expect (p, DJ_TK_RP, ") to close OVER (...)")) {
      return NULL;
   }
   return w;
}

static dj_expr_t *
parse_function (parser_t *p, char *name, size_t pos)
{
   dj_expr_t *e = sql_new_expr (p, DJ_X_FUNC, pos);
   for (char *c = name; *c; c++) {
      *c = (char) toupper ((unsigned char) *c);
   }
   e->name = name;
   /* the '(' is current */
   sql_advance (p);
   if (!strcmp (name, "EXTRACT")) {
      /* EXTRACT(field FROM expr): args = ['field', expr] */
      dj_expr_t *field = sql_new_expr (p, DJ_X_STRING, p->pos), *a;
      if (p->tk != DJ_TK_ID) {
         sql_fail (p, "expected a field name (YEAR, MONTH, ...) in EXTRACT");
         return NULL;
      }
      field->name = sql_copy_text (p, p->sql + p->pos, p->tlen);
      for (char *c = field->name; *c; c++) {
         *c = (char) tolower ((unsigned char) *c);
      }
      sql_advance (p);
      if (!sql_expect_kw (p, "FROM") || !(a = sql_parse_expr (p)) || !sql_expect (p, DJ_TK_RP, ") to close EXTRACT (...)")) {
         return NULL;
      }
      sql_list_push (p, &e->args, field);
      sql_list_push (p, &e->args, a);
      return e;
   }
   if (sql_accept (p, DJ_TK_STAR)) {
      e->flags |= DJ_XF_STAR;
   } else if (p->tk != DJ_TK_RP) {
      if (sql_accept_kw (p, "DISTINCT")) {
         e->flags |= DJ_XF_DISTINCT;
      } else {
         sql_accept_kw (p, "ALL");
      }
      if (!sql_parse_expr_list (p, &e->args)) {
         return NULL;
      }
   }
   if (!sql_expect (p, DJ_TK_RP, ") to close the argument list")) {
      return NULL;
   }
   if (sql_accept_kw (p, "FILTER")) {
      if (!sql_expect (p, DJ_TK_LP, "( after FILTER") || !sql_expect_kw (p, "WHERE") || !(e->filter = sql_parse_expr (p)) ||
          !sql_expect (p, DJ_TK_RP, ") to close FILTER (...)")) {
         return NULL;
      }
   }
   if (sql_accept_kw (p, "OVER")) {
      if (!(e->over = parse_window (p))) {
         return NULL;
      }
   }
   return e;
}

static dj_expr_t *
parse_case (parser_t *p, size_t pos)
{
   dj_expr_t *e = sql_new_expr (p, DJ_X_CASE, pos);
   if (!sql_is_kw (p, "WHEN")) {
      if (!(e->a = sql_parse_expr (p))) {
         return NULL;
      }
   }
   while (sql_accept_kw (p, "WHEN")) {
      dj_expr_t *w = sql_parse_expr (p), *t;
      if (!w || !sql_expect_kw (p, "THEN") || !(t = sql_parse_expr (p))) {
         return NULL;
      }
      sql_list_push (p, &e->args, w);
      sql_list_push (p, &e->args, t);
   }
   if (e->args.n == 0) {
      sql_fail (p, "expected WHEN in CASE");
      return NULL;
   }
   if (sql_accept_kw (p, "ELSE") && !(e->b = sql_parse_expr (p))) {
      return NULL;
   }
   if (!sql_expect_kw (p, "END")) {
      return NULL;
   }
   return e;
}

/* A type name: words and an optional (n[, m]), e.g. varchar(100),
 * decimal(10, 2), double precision, integer unsigned. Upper-cased. */
char *
sql_parse_type (parser_t *p)
{
   size_t start = p->pos, end = p->pos + p->tlen;
   if (p->tk != DJ_TK_ID) {
      sql_fail (p, "expected a type name");
      return NULL;
   }
   while (p->tk == DJ_TK_ID && !sql_is_reserved (p) && !sql_is_kw (p, "PRIMARY") && !sql_is_kw (p, "REFERENCES") &&
          !sql_is_kw (p, "UNIQUE") && !sql_is_kw (p, "CHECK") && !sql_is_kw (p, "CONSTRAINT") && !sql_is_kw (p, "COLLATE") &&
          !sql_is_kw (p, "AUTOINCREMENT") && !sql_is_kw (p, "NULL") && !sql_is_kw (p, "GENERATED")) {
      end = p->pos + p->tlen;
      sql_advance (p);
   }
   if (p->tk == DJ_TK_LP) {
      sql_advance (p);
      while (p->tk == DJ_TK_INT || p->tk == DJ_TK_COMMA) {
         sql_advance (p);
      }
      end = p->pos + p->tlen;
      if (!sql_expect (p, DJ_TK_RP, ") after the type's size")) {
         return NULL;
      }
   }
   char *t = sql_copy_text (p, p->sql + start, end - start);
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
      e = sql_new_expr (p, DJ_X_INT, pos);
      errno = 0;
      char *txt = sql_copy_text (p, p->sql + p->pos, p->tlen);
      unsigned long long v = strtoull (txt, NULL, 10);
      if (errno == ERANGE || v > (unsigned long long) INT64_MAX) {
         /* too big for int64: a float, as SQLite reads it */
         e->kind = DJ_X_FLOAT;
         e->dval = strtod (txt, NULL);
      } else {
         e->ival = (int64_t) v;
      }
      e->name = txt;
      sql_advance (p);
      return e;
   }
   case DJ_TK_FLOAT:
      e = sql_new_expr (p, DJ_X_FLOAT, pos);
      e->name = sql_copy_text (p, p->sql + p->pos, p->tlen);
      e->dval = strtod (e->name, NULL);
      sql_advance (p);
      return e;
   case DJ_TK_STRING:
      e = sql_new_expr (p, DJ_X_STRING, pos);
      e->name = sql_unquote (p, '\'');
      sql_advance (p);
      return e;
   case DJ_TK_PARAM:
      e = sql_new_expr (p, DJ_X_PARAM, pos);
      e->ival = p->stmt->nparams++;
      sql_advance (p);
      return e;
   case DJ_TK_LP:
      if (sql_at_subquery (p)) {
         sql_advance (p);
         e = sql_new_expr (p, DJ_X_SUBQUERY, pos);
         if (!(e->sub = sql_parse_select (p)) || !sql_expect (p, DJ_TK_RP, ") to close the subquery")) {
            return NULL;
         }
         return e;
      }
      sql_advance (p);
      if (!(e = sql_parse_expr (p))) {
         return NULL;
      }
      if (p->tk == DJ_TK_COMMA) {
         /* a row value: (a, b, ...) */
         dj_expr_t *row = sql_new_expr (p, DJ_X_ROW, pos);
         sql_list_push (p, &row->args, e);
         sql_advance (p);
         if (!sql_parse_expr_list (p, &row->args)) {
            return NULL;
         }
         e = row;
      }
      if (!sql_expect (p, DJ_TK_RP, ")")) {
         return NULL;
      }
      return e;
   case DJ_TK_STAR:
      sql_advance (p);
      return sql_new_expr (p, DJ_X_STAR, pos);
   case DJ_TK_ID:
      if (sql_accept_kw (p, "NULL")) {
         return sql_new_expr (p, DJ_X_NULL, pos);
      }
      if (sql_is_kw (p, "TRUE") || sql_is_kw (p, "FALSE")) {
         e = sql_new_expr (p, DJ_X_BOOL, pos);
         e->ival = sql_is_kw (p, "TRUE");
         sql_advance (p);
         return e;
      }
      if (sql_accept_kw (p, "CASE")) {
         return parse_case (p, pos);
      }
      if (sql_accept_kw (p, "CURRENT_TIMESTAMP")) {
         e = sql_new_expr (p, DJ_X_FUNC, pos);
         e->name = sql_copy_text (p, "NOW", 3);
         return e;
      }
      if (sql_accept_kw (p, "EXISTS")) {
         e = sql_new_expr (p, DJ_X_EXISTS, pos);
         if (!sql_expect (p, DJ_TK_LP, "( after EXISTS") || !(e->sub = sql_parse_select (p)) ||
             !sql_expect (p, DJ_TK_RP, ") to close EXISTS (...)")) {
            return NULL;
         }
         return e;
      }
      if (sql_is_kw (p, "CAST")) {
         sql_advance (p);
         e = sql_new_expr (p, DJ_X_CAST, pos);
         if (!sql_expect (p, DJ_TK_LP, "( after CAST") || !(e->a = sql_parse_expr (p)) || !sql_expect_kw (p, "AS") ||
             !(e->name = sql_parse_type (p)) || !sql_expect (p, DJ_TK_RP, ") to close CAST (...)")) {
            return NULL;
         }
         return e;
      }
      if ((sql_is_kw (p, "LEFT") || sql_is_kw (p, "RIGHT")) && sql_next_is_lparen (p)) {
         /* LEFT(s, n) / RIGHT(s, n): the string functions (Django's Left,
          * Right), not the join keywords */
         char *name = sql_copy_text (p, p->sql + p->pos, p->tlen);
         sql_advance (p);
         return parse_function (p, name, pos);
      }
      if (sql_is_reserved (p)) {
         sql_fail (p, "expected an expression");
         return NULL;
      }
      /* a name */
      /* fall through */
   case DJ_TK_QID: {
      bool quoted = p->tk == DJ_TK_QID;
      char *name = sql_parse_name (p, "a name");
      if (!name) {
         return NULL;
      }
      if (!quoted && p->tk == DJ_TK_LP) {
         return parse_function (p, name, pos);
      }
      e = sql_new_expr (p, DJ_X_COLUMN, pos);
      if (sql_accept (p, DJ_TK_DOT)) {
         e->table = name;
         if (sql_accept (p, DJ_TK_STAR)) {
            e->name = sql_copy_text (p, "*", 1);
         } else if (!(e->name = sql_parse_name (p, "a column name after '.'"))) {
            return NULL;
         }
      } else {
         e->name = name;
      }
      return e;
   }
   default:
      sql_fail (p, "expected an expression");
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
   sql_advance (p);
   if (e->kind != DJ_X_COLUMN || !strcmp (e->name, "*")) {
      p->pos = at;
      p->tlen = 2; /* name the arrow in the message */
      sql_fail (p, "'->' steps into a column's document; the left side is not a column");
      return NULL;
   }
   if (p->tk == DJ_TK_GT) {
      sql_fail (p, "'->>' (the key as text) is not supported: use '->', which gives the stored value");
      return NULL;
   }
   char *key;
   if (p->tk == DJ_TK_STRING) {
      key = sql_unquote (p, '\'');
   } else if (p->tk == DJ_TK_INT) {
      key = sql_copy_text (p, p->sql + p->pos, p->tlen);
   } else {
      sql_fail (p, "expected a key (a quoted string) or an array index after '->'");
      return NULL;
   }
   if (!*key || strchr (key, '.') || key[0] == '$' || memchr (p->sql + p->pos, '\0', p->tlen)) {
      if (!p->failed) {
         p->failed = true;
         dj_error_set (p->error, DJ_DOMAIN_SQL, DJ_SQL_UNSUPPORTED,
                       "not supported: a document key that is empty, contains '.' or NUL, or starts with '$' cannot be a MongoDB path "
                       "(at offset %zu)", p->pos);
      }
      return NULL;
   }
   size_t n = strlen (e->name), k = strlen (key);
   char *path = sql_arena_alloc (p->arena, n + k + 2);
   memcpy (path, e->name, n);
   path[n] = '.';
   memcpy (path + n + 1, key, k + 1);
   e->name = path;
   sql_advance (p);
   return e;
}

dj_expr_t *
sql_parse_unary (parser_t *p)
{
   size_t pos = p->pos;
   if (!sql_enter (p)) {
      return NULL;
   }
   dj_expr_t *e;
   if (sql_accept (p, DJ_TK_MINUS)) {
      dj_expr_t *a = sql_parse_unary (p);
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
         e = sql_new_expr (p, DJ_X_NEG, pos);
         e->a = a;
      }
   } else if (sql_accept (p, DJ_TK_PLUS)) {
      e = sql_parse_unary (p);
   } else {
      e = parse_primary (p);
      while (e && p->tk == DJ_TK_ARROW) {
         e = parse_path_step (p, e);
      }
      /* e COLLATE name: the function COLLATE(e, 'name') (function.c) */
      while (e && sql_accept_kw (p, "COLLATE")) {
         dj_expr_t *c = sql_new_expr (p, DJ_X_FUNC, pos), *n = sql_new_expr (p, DJ_X_STRING, p->pos);
         if (!(n->name = sql_parse_name (p, "a collation name"))) {
            return NULL;
         }
         c->name = "COLLATE";
         sql_list_push (p, &c->args, e);
         sql_list_push (p, &c->args, n);
         e = c;
      }
   }
   p->depth--;
   return e;
}

static dj_expr_t *
binary (parser_t *p, dj_op_t op, dj_expr_t *a, dj_expr_t *b)
{
   dj_expr_t *e = sql_new_expr (p, DJ_X_BINARY, a->pos);
   e->op = op;
   e->a = a;
   e->b = b;
   return e;
}

/* (a, b) = (c, d) and (a, b) <> (c, d): SQL defines row equality
 * component by component -- TRUE when every pair is equal, FALSE when one
 * pair differs, else NULL, which is the AND of the pairs' equalities under
 * three-valued logic; <> is its negation, the OR of the pairs' <>. So they
 * are written that way here, and `(a, b) IN ((c, d), ...)` as the OR of
 * such equalities. Rows compared by order (<, > ...) stay DJ_X_ROW operands,
 * which the compiler refuses. NULL + error when the rows' sizes differ. */
static dj_expr_t *
row_equality (parser_t *p, dj_expr_t *a, dj_expr_t *b, bool negate)
{
   if (a->kind == DJ_X_SUBQUERY && b->kind == DJ_X_ROW) {
      dj_expr_t *t = a;
      a = b;
      b = t;
   }
   if (a->kind == DJ_X_ROW && b->kind == DJ_X_SUBQUERY) {
      /* row = (SELECT x, y ...): the subquery's one row, compared pair by
       * pair (Django's pk=queryset[:1] on a composite key) */
      dj_expr_t *e = sql_new_expr (p, DJ_X_IN_SELECT, a->pos);
      e->flags = DJ_XF_ROW_EQ;
      e->a = a;
      e->sub = b->sub;
      if (!negate) {
         return e;
      }
      dj_expr_t *not = sql_new_expr (p, DJ_X_NOT, a->pos);
      not->a = e;
      return not;
   }
   if (a->kind != DJ_X_ROW || b->kind != DJ_X_ROW || a->args.n != b->args.n) {
      sql_fail (p, "rows of %d and %d values compared", a->kind == DJ_X_ROW ? a->args.n : 1,
                b->kind == DJ_X_ROW ? b->args.n : 1);
      return NULL;
   }
   dj_expr_t *e = sql_new_expr (p, negate ? DJ_X_OR : DJ_X_AND, a->pos);
   for (int i = 0; i < a->args.n; i++) {
      sql_list_push (p, &e->args, binary (p, negate ? DJ_OP_NE : DJ_OP_EQ, a->args.v[i], b->args.v[i]));
   }
   return e;
}

/* A chain a op b op c ... builds a left-deep tree, one level per operator:
 * each operator takes one step of the depth budget (sql_enter), given back when
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
static const binop_t pow_ops[] = {{DJ_TK_CARET, DJ_OP_POW}, {DJ_TK_EOF}};
static const binop_t prod_ops[] = {{DJ_TK_STAR, DJ_OP_MUL}, {DJ_TK_SLASH, DJ_OP_DIV}, {DJ_TK_PERCENT, DJ_OP_MOD}, {DJ_TK_EOF}};
static const binop_t sum_ops[] = {{DJ_TK_PLUS, DJ_OP_ADD}, {DJ_TK_MINUS, DJ_OP_SUB}, {DJ_TK_CONCAT, DJ_OP_CONCAT}, {DJ_TK_EOF}};
/* PostgreSQL's "any other operator" level: below + -, above comparisons */
static const binop_t bit_ops[] = {{DJ_TK_AMP, DJ_OP_BITAND}, {DJ_TK_PIPE, DJ_OP_BITOR}, {DJ_TK_HASH, DJ_OP_BITXOR},
                                  {DJ_TK_SHL, DJ_OP_SHL}, {DJ_TK_SHR, DJ_OP_SHR}, {DJ_TK_EOF}};

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

/* The binary operator levels, loosest first; past the last, a unary term. */
static const binop_t *const levels[] = {bit_ops, sum_ops, prod_ops, pow_ops};
enum { LEVEL_BITS, LEVEL_SUM, LEVEL_PROD, LEVEL_POW, NLEVELS };

/* A left-associative chain of level's operators over the next level's terms. */
static dj_expr_t *
parse_level (parser_t *p, int level)
{
   if (level == NLEVELS) {
      return sql_parse_unary (p);
   }
   int chain = 0;
   dj_expr_t *e = parse_level (p, level + 1);
   const binop_t *o;
   while (e && (o = chain_op (p, levels[level]))) {
      if (!sql_enter (p)) {
         e = NULL;
         break;
      }
      chain++;
      sql_advance (p);
      dj_expr_t *b = parse_level (p, level + 1);
      e = b ? binary (p, o->op, e, b) : NULL;
   }
   p->depth -= chain;
   return e;
}

static dj_expr_t *
parse_bits (parser_t *p)
{
   return parse_level (p, LEVEL_BITS);
}

static dj_expr_t *
parse_pred (parser_t *p)
{
   dj_expr_t *a = parse_bits (p), *e;
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
      sql_advance (p);
      dj_expr_t *b = parse_bits (p);
      if (b && (op == DJ_OP_EQ || op == DJ_OP_NE) && (a->kind == DJ_X_ROW || b->kind == DJ_X_ROW)) {
         return row_equality (p, a, b, op == DJ_OP_NE);
      }
      return b ? binary (p, op, a, b) : NULL;
   }
   case DJ_TK_TILDE:
   case DJ_TK_TILDE_STAR:
      e = sql_new_expr (p, DJ_X_REGEX, a->pos);
      e->flags = p->tk == DJ_TK_TILDE_STAR ? DJ_XF_ICASE : 0;
      sql_advance (p);
      e->a = a;
      return (e->b = parse_bits (p)) ? e : NULL;
   default:
      break;
   }
   if (sql_is_kw (p, "REGEXP")) { /* SQLite's and MySQL's spelling of ~ */
      e = sql_new_expr (p, DJ_X_REGEX, a->pos);
      sql_advance (p);
      e->a = a;
      return (e->b = parse_bits (p)) ? e : NULL;
   }
   if (sql_accept_kw (p, "IS")) {
      e = sql_new_expr (p, DJ_X_IS_NULL, a->pos);
      e->a = a;
      if (sql_accept_kw (p, "NOT")) {
         e->flags |= DJ_XF_NOT;
      }
      if (!sql_expect_kw (p, "NULL")) {
         return NULL;
      }
      return e;
   }
   int neg = 0;
   if (sql_is_kw (p, "NOT")) {
      neg = DJ_XF_NOT;
      sql_advance (p);
      if (!sql_is_kw (p, "IN") && !sql_is_kw (p, "BETWEEN") && !sql_is_kw (p, "LIKE") && !sql_is_kw (p, "ILIKE")) {
         sql_fail (p, "expected IN, BETWEEN, LIKE or ILIKE after NOT");
         return NULL;
      }
   }
   if (sql_accept_kw (p, "IN")) {
      if (p->tk != DJ_TK_LP) {
         sql_fail (p, "expected ( after IN");
         return NULL;
      }
      if (sql_at_subquery (p)) {
         sql_advance (p);
         e = sql_new_expr (p, DJ_X_IN_SELECT, a->pos);
         e->flags = neg;
         e->a = a;
         if (!(e->sub = sql_parse_select (p)) || !sql_expect (p, DJ_TK_RP, ") to close the subquery")) {
            return NULL;
         }
         return e;
      }
      sql_advance (p);
      e = sql_new_expr (p, DJ_X_IN_LIST, a->pos);
      e->flags = neg;
      e->a = a;
      if (!sql_parse_expr_list (p, &e->args) || !sql_expect (p, DJ_TK_RP, ") to close the IN list")) {
         return NULL;
      }
      if (a->kind != DJ_X_ROW) {
         return e;
      }
      /* (a, b) IN ((c, d), ...): the OR of the rows' equalities */
      dj_expr_t *any = sql_new_expr (p, DJ_X_OR, a->pos);
      for (int i = 0; i < e->args.n; i++) {
         dj_expr_t *eq = row_equality (p, a, e->args.v[i], false);
         if (!eq) {
            return NULL;
         }
         sql_list_push (p, &any->args, eq);
      }
      dj_expr_t *r = any->args.n == 1 ? any->args.v[0] : any;
      if (neg) {
         dj_expr_t *not = sql_new_expr (p, DJ_X_NOT, a->pos);
         not->a = r;
         r = not;
      }
      return r;
   }
   if (sql_accept_kw (p, "BETWEEN")) {
      e = sql_new_expr (p, DJ_X_BETWEEN, a->pos);
      e->flags = neg;
      e->a = a;
      if (!(e->b = parse_bits (p)) || !sql_expect_kw (p, "AND") || !(e->c = parse_bits (p))) {
         return NULL;
      }
      return e;
   }
   if (sql_is_kw (p, "LIKE") || sql_is_kw (p, "ILIKE")) {
      e = sql_new_expr (p, DJ_X_LIKE, a->pos);
      e->flags = neg | (sql_is_kw (p, "ILIKE") ? DJ_XF_ICASE : 0);
      sql_advance (p);
      e->a = a;
      if (!(e->b = parse_bits (p))) {
         return NULL;
      }
      if (sql_accept_kw (p, "ESCAPE") && !(e->c = parse_bits (p))) {
         return NULL;
      }
      return e;
   }
   if (neg) {
      sql_fail (p, "expected IN, BETWEEN or LIKE after NOT");
      return NULL;
   }
   return a;
}

static dj_expr_t *
parse_not (parser_t *p)
{
   size_t pos = p->pos;
   if (!sql_enter (p)) {
      return NULL;
   }
   dj_expr_t *e;
   if (sql_accept_kw (p, "NOT")) {
      dj_expr_t *a = parse_not (p);
      if (a) {
         e = sql_new_expr (p, DJ_X_NOT, pos);
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
   if (!a || !sql_is_kw (p, kw)) {
      return a;
   }
   dj_expr_t *e = sql_new_expr (p, kind, a->pos);
   sql_list_push (p, &e->args, a);
   while (sql_accept_kw (p, kw)) {
      dj_expr_t *b = sub (p);
      if (!b) {
         return NULL;
      }
      sql_list_push (p, &e->args, b);
   }
   return e;
}

static dj_expr_t *
parse_and (parser_t *p)
{
   return parse_chain (p, "AND", DJ_X_AND, parse_not);
}

dj_expr_t *
sql_parse_expr (parser_t *p)
{
   if (!sql_enter (p)) {
      return NULL;
   }
   dj_expr_t *e = parse_chain (p, "OR", DJ_X_OR, parse_and);
   p->depth--;
   return e;
}

