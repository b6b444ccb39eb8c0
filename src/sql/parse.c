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
 *               [FOR UPDATE]                     (the statement's SELECT only)
 *   core     := SELECT [DISTINCT] item {, item} [FROM from {join}]
 *               [WHERE expr] [GROUP BY expr {, expr}] [HAVING expr]
 *             | '(' select ')'
 *   item     := '*' | name '.' '*' | expr [[AS] alias]
 *   from     := name [[AS] alias] | '(' select ')' [AS] alias
 *   join     := [INNER | LEFT [OUTER] | CROSS] JOIN from [ON expr] | ',' from
 *   order    := expr [ASC | DESC] [NULLS (FIRST | LAST)]
 *   insert   := INSERT INTO name ['(' col {, col} ')']
 *               (VALUES row {, row} | DEFAULT VALUES | select)
 *               [ON CONFLICT ['(' col {, col} ')'] DO (NOTHING | UPDATE SET col = expr {, col = expr} [WHERE expr])]
 *               [RETURNING item {, item}]
 *   update   := UPDATE name [[AS] alias] SET col = expr {, col = expr} [WHERE expr]
 *   delete   := DELETE FROM name [[AS] alias] [WHERE expr]
 *   expr     := or;  or := and {OR and};  and := not {AND not};
 *   not      := NOT not | pred
 *   pred     := bits [cmp bits | IS [NOT] NULL | [NOT] IN '(' (select | expr {, expr}) ')'
 *               | [NOT] BETWEEN bits AND bits | [NOT] (LIKE | ILIKE) bits [ESCAPE bits]
 *               | (~ | ~*) bits]
 *   bits     := sum {(& | '|' | # | << | >>) sum}
 *   sum      := prod {(+ | - | '||') prod};  prod := pow {(* | / | %) pow}
 *   pow      := unary {^ unary}
 *   unary    := (- | +) unary | primary {'->' (string | integer)} {COLLATE name}
 *   primary  := literal | %s | NULL | TRUE | FALSE | name ['.' name]
 *             | name '(' [DISTINCT] [args | '*'] ')' [FILTER '(' WHERE expr ')'] [OVER window]
 *             | CASE [expr] WHEN expr THEN expr {...} [ELSE expr] END
 *             | CAST '(' expr AS type ')' | [NOT] EXISTS '(' select ')'
 *             | '(' select ')' | '(' expr ')' | '(' expr ',' expr {, expr} ')'
 *               (a row value: in row = row, row <> row, row [NOT] IN '(' rows
 *               ')' -- ANDs and ORs of its components -- and row [NOT] IN
 *               '(' select ')')
 *   DDL: see parse_create / parse_alter below (CREATE [UNIQUE] INDEX [IF NOT
 *   EXISTS] i ON t '(' expr [ASC | DESC | HASHED | GEOSPHERE | GEO2D | TEXT [WEIGHT n]] {, ...} ')'
 *   [WITH '(' param = value {, ...} ')'] [WHERE expr]) (params: expireAfterSeconds,
 *   default_language, language_override); a column takes [CONSTRAINT
 *   name] CHECK '(' expr ')', [GENERATED ALWAYS] AS '(' expr ')' [STORED |
 *   VIRTUAL], COLLATE name (also after ALTER COLUMN c TYPE t) and REFERENCES t
 *   ['(' col ')'] [DEFERRABLE
 *   INITIALLY (DEFERRED | IMMEDIATE) | NOT DEFERRABLE], a table (and ALTER
 *   TABLE ADD) [CONSTRAINT name] (PRIMARY KEY | UNIQUE) '(' cols ')' [WHERE
 *   expr] | CHECK '(' expr ')' | FOREIGN KEY '(' cols ')' REFERENCES t
 *   ['(' cols ')'] [deferrable].
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

#include "parse-private.h"

/* ---- arena: every node of a statement, freed at once ---- */


void *
sql_arena_alloc (arena_t *a, size_t n)
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



bool
sql_fail (parser_t *p, const char *fmt, ...) BSON_GNUC_PRINTF (2, 3);

/* Records the first error: "near "TOKEN" at offset N: <what was expected>". */
bool
sql_fail (parser_t *p, const char *fmt, ...)
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






char *
sql_copy_text (parser_t *p, const char *s, size_t n)
{
   char *r = sql_arena_alloc (p->arena, n + 1);
   memcpy (r, s, n);
   r[n] = '\0';
   return r;
}

/* Copies a quoted token's body, turning each doubled quote into one. */
char *
sql_unquote (parser_t *p, char q)
{
   const char *s = p->sql + p->pos + 1;
   size_t n = p->tlen - 2;
   char *r = sql_arena_alloc (p->arena, n + 1), *o = r;
   for (size_t i = 0; i < n; i++) {
      *o++ = s[i];
      if (s[i] == q) {
         i++;
      }
   }
   *o = '\0';
   return r;
}


static const char *const reserved[] = {
   "SELECT", "FROM", "WHERE", "GROUP", "HAVING", "ORDER", "LIMIT", "OFFSET", "UNION",
   "INTERSECT", "EXCEPT", "INNER", "LEFT", "RIGHT", "FULL", "OUTER", "CROSS", "JOIN",
   "ON", "AND", "OR", "NOT", "AS", "SET", "VALUES", "RETURNING", "WINDOW", "USING",
   "FOR", "IS", "IN", "LIKE", "ILIKE", "BETWEEN", "ESCAPE", "THEN", "WHEN", "ELSE",
   "END", "ASC", "DESC", "NULLS", "DEFAULT", "FILTER", "OVER", "CASE", "DISTINCT", "ALL", NULL};

/* Whether the token after the current one is "(" (one token of lookahead
 * for the keywords that are also function names). */
bool
sql_next_is_lparen (parser_t *p)
{
   size_t at = p->pos + p->tlen;
   at += dj_sql_skip_space (p->sql + at, p->len - at);
   return at < p->len && p->sql[at] == '(';
}

bool
sql_is_reserved (parser_t *p)
{
   for (int i = 0; reserved[i]; i++) {
      if (sql_is_kw (p, reserved[i])) {
         return true;
      }
   }
   return false;
}

/* name := ID | "QID". Reserved words need quotes only where they would be
 * ambiguous, which is everywhere a bare alias may follow. */
char *
sql_parse_name (parser_t *p, const char *what)
{
   char *r;
   if (p->tk == DJ_TK_QID) {
      r = sql_unquote (p, '"');
   } else if (p->tk == DJ_TK_ID && !sql_is_reserved (p)) {
      r = sql_copy_text (p, p->sql + p->pos, p->tlen);
   } else {
      sql_fail (p, "expected %s%s", what, p->tk == DJ_TK_ID ? " (quote a keyword used as a name)" : "");
      return NULL;
   }
   sql_advance (p);
   return r;
}

/* An alias: AS name, or a bare name that is not a keyword. */
static char *
parse_alias (parser_t *p)
{
   if (sql_accept_kw (p, "AS")) {
      return sql_parse_name (p, "an alias after AS");
   }
   if (p->tk == DJ_TK_QID || (p->tk == DJ_TK_ID && !sql_is_reserved (p))) {
      return sql_parse_name (p, "an alias");
   }
   return NULL;
}


static dj_from_t *
parse_from_item (parser_t *p, dj_join_t join)
{
   dj_from_t *f = sql_arena_alloc (p->arena, sizeof *f);
   f->join = join;
   f->pos = (uint32_t) p->pos;
   if (p->tk == DJ_TK_LP) {
      sql_advance (p);
      if (!(f->sub = sql_parse_select (p)) || !sql_expect (p, DJ_TK_RP, ") to close the derived table")) {
         return NULL;
      }
      if (!(f->alias = parse_alias (p))) {
         /* PostgreSQL 16 and SQLite take a derived table without an alias
          * (Django's nested compounds: SELECT * FROM ((..) UNION (..))) */
         f->alias = "__dj_derived";
      }
      return f;
   }
   if (!(f->name = sql_parse_name (p, "a table name"))) {
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
   sql_list_push (p, &s->from, f);
   for (;;) {
      dj_join_t j;
      if (sql_accept (p, DJ_TK_COMMA)) {
         j = DJ_JOIN_CROSS;
      } else if (sql_accept_kw (p, "JOIN")) {
         j = DJ_JOIN_INNER;
      } else if (sql_accept_kw (p, "INNER")) {
         if (!sql_expect_kw (p, "JOIN")) {
            return false;
         }
         j = DJ_JOIN_INNER;
      } else if (sql_accept_kw (p, "LEFT")) {
         sql_accept_kw (p, "OUTER");
         if (!sql_expect_kw (p, "JOIN")) {
            return false;
         }
         j = DJ_JOIN_LEFT;
      } else if (sql_accept_kw (p, "CROSS")) {
         if (!sql_expect_kw (p, "JOIN")) {
            return false;
         }
         j = DJ_JOIN_CROSS;
      } else if (sql_is_kw (p, "RIGHT") || sql_is_kw (p, "FULL")) {
         return sql_fail (p, "RIGHT and FULL joins are not part of the dialect (Django emits INNER and LEFT OUTER)");
      } else {
         return true;
      }
      if (!(f = parse_from_item (p, j))) {
         return false;
      }
      if (j != DJ_JOIN_CROSS && !p->failed) {
         if (!sql_expect_kw (p, "ON") || !(f->on = sql_parse_expr (p))) {
            return false;
         }
      }
      sql_list_push (p, &s->from, f);
   }
}

static dj_select_t *
parse_core (parser_t *p)
{
   dj_select_t *s = sql_arena_alloc (p->arena, sizeof *s);
   s->pos = (uint32_t) p->pos;
   if (p->tk == DJ_TK_LP) {
      sql_advance (p);
      dj_select_t *inner = sql_parse_select (p);
      if (!inner || !sql_expect (p, DJ_TK_RP, ") to close the parenthesised SELECT")) {
         return NULL;
      }
      if (!inner->next && !inner->order_by.n && !inner->limit && !inner->offset) {
         return inner;
      }
      /* (a compound) or (SELECT ... ORDER BY / LIMIT) as one part of a
       * compound keeps its own meaning -- `a UNION (b EXCEPT c)` is not
       * `(a UNION b) EXCEPT c`, and the inner LIMIT is not the compound's:
       * it becomes the derived table SELECT * FROM (inner) "__dj_paren" */
      dj_expr_t *star = sql_new_expr (p, DJ_X_STAR, s->pos);
      dj_item_t *it = sql_arena_alloc (p->arena, sizeof *it);
      it->expr = star;
      sql_list_push (p, &s->items, it);
      dj_from_t *f = sql_arena_alloc (p->arena, sizeof *f);
      f->join = DJ_JOIN_NONE;
      f->pos = s->pos;
      f->sub = inner;
      f->alias = "__dj_paren";
      sql_list_push (p, &s->from, f);
      return s;
   }
   if (!sql_expect_kw (p, "SELECT")) {
      return NULL;
   }
   if (sql_accept_kw (p, "DISTINCT")) {
      s->distinct = true;
   } else {
      sql_accept_kw (p, "ALL");
   }
   do {
      dj_item_t *it = sql_arena_alloc (p->arena, sizeof *it);
      if (!(it->expr = sql_parse_expr (p))) {
         return NULL;
      }
      if (it->expr->kind != DJ_X_STAR) {
         it->alias = parse_alias (p);
      }
      sql_list_push (p, &s->items, it);
   } while (sql_accept (p, DJ_TK_COMMA));
   if (sql_accept_kw (p, "FROM") && !parse_from (p, s)) {
      return NULL;
   }
   if (sql_accept_kw (p, "WHERE") && !(s->where = sql_parse_expr (p))) {
      return NULL;
   }
   if (sql_accept_kw (p, "GROUP") && !(sql_expect_kw (p, "BY") && sql_parse_expr_list (p, &s->group_by))) {
      return NULL;
   }
   if (sql_accept_kw (p, "HAVING") && !(s->having = sql_parse_expr (p))) {
      return NULL;
   }
   return p->failed ? NULL : s;
}

dj_select_t *
sql_parse_select (parser_t *p)
{
   if (!sql_enter (p)) {
      return NULL;
   }
   dj_select_t *first = parse_core (p), *s = first;
   while (s) {
      dj_setop_t op;
      if (sql_accept_kw (p, "UNION")) {
         op = sql_accept_kw (p, "ALL") ? DJ_SET_UNION_ALL : DJ_SET_UNION;
      } else if (sql_accept_kw (p, "INTERSECT")) {
         op = sql_accept_kw (p, "ALL") ? DJ_SET_INTERSECT_ALL : DJ_SET_INTERSECT;
      } else if (sql_accept_kw (p, "EXCEPT")) {
         op = sql_accept_kw (p, "ALL") ? DJ_SET_EXCEPT_ALL : DJ_SET_EXCEPT;
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
   if (sql_accept_kw (p, "ORDER")) {
      if (!sql_expect_kw (p, "BY") || !sql_parse_order_list (p, &first->order_by, false)) {
         return NULL;
      }
   }
   if (sql_accept_kw (p, "LIMIT")) {
      if (!(first->limit = sql_parse_expr (p))) {
         return NULL;
      }
      if (sql_accept (p, DJ_TK_COMMA)) { /* LIMIT offset, count (MySQL/SQLite) */
         first->offset = first->limit;
         if (!(first->limit = sql_parse_expr (p))) {
            return NULL;
         }
      }
   }
   if (sql_accept_kw (p, "OFFSET") && !(first->offset = sql_parse_expr (p))) {
      return NULL;
   }
   p->depth--;
   return first;
}

/* FOR UPDATE after the statement's SELECT (where Django puts it: after
 * LIMIT/OFFSET). Its variants are valid SQL that djongo does not translate
 * (dj_compile.h says what FOR UPDATE does): refused by name, so that
 * Django's own NotSupportedError for them (the backend's features say
 * has_select_for_update_nowait/skip_locked/of = False) has a twin here. */
static bool
parse_for_update (parser_t *p, dj_sql_stmt_t *st)
{
   size_t at = p->pos;
   if (!sql_accept_kw (p, "FOR")) {
      return true;
   }
   st->for_update_pos = (uint32_t) at;
   at = p->pos;
   const char *what = NULL;
   if (sql_accept_kw (p, "UPDATE")) {
      if (sql_is_kw (p, "OF")) {
         what = "FOR UPDATE OF";
      } else if (sql_is_kw (p, "NOWAIT")) {
         what = "FOR UPDATE NOWAIT";
      } else if (sql_is_kw (p, "SKIP")) {
         what = "FOR UPDATE SKIP LOCKED";
      } else {
         st->for_update = true;
         return true;
      }
      at = p->pos;
   } else if (sql_is_kw (p, "NO") || sql_is_kw (p, "SHARE") || sql_is_kw (p, "KEY")) {
      what = "FOR SHARE / FOR NO KEY UPDATE / FOR KEY SHARE";
   } else {
      return sql_fail (p, "expected UPDATE");
   }
   p->failed = true;
   return dj_error_set (p->error, DJ_DOMAIN_SQL, DJ_SQL_UNSUPPORTED,
                        "not supported: %s (at offset %zu): djongo takes FOR UPDATE alone", what, at);
}

static bool
parse_returning (parser_t *p, dj_sql_stmt_t *st)
{
   if (!sql_accept_kw (p, "RETURNING")) {
      return true;
   }
   do {
      dj_item_t *it = sql_arena_alloc (p->arena, sizeof *it);
      if (!(it->expr = sql_parse_expr (p))) {
         return false;
      }
      it->alias = parse_alias (p);
      sql_list_push (p, &st->returning, it);
   } while (sql_accept (p, DJ_TK_COMMA));
   return !p->failed;
}

static bool
parse_name_list (parser_t *p, dj_list_t *out)
{
   if (!sql_expect (p, DJ_TK_LP, "(")) {
      return false;
   }
   do {
      char *n = sql_parse_name (p, "a column name");
      if (!n) {
         return false;
      }
      sql_list_push (p, out, n);
   } while (sql_accept (p, DJ_TK_COMMA));
   return sql_expect (p, DJ_TK_RP, ")");
}

/* col = expr {, col = expr} (UPDATE's SET, ON CONFLICT DO UPDATE SET) */
static bool
parse_assignments (parser_t *p, dj_list_t *sets)
{
   do {
      dj_item_t *it = sql_arena_alloc (p->arena, sizeof *it);
      if (!(it->alias = sql_parse_name (p, "a column name"))) {
         return false;
      }
      if (sql_accept (p, DJ_TK_DOT) && !(it->alias = sql_parse_name (p, "a column name"))) {
         return false; /* "t"."c" = ...: the table is the target */
      }
      if (!sql_expect (p, DJ_TK_EQ, "= after the column name") || !(it->expr = sql_parse_expr (p))) {
         return false;
      }
      sql_list_push (p, sets, it);
   } while (sql_accept (p, DJ_TK_COMMA));
   return true;
}

static bool
parse_insert (parser_t *p, dj_sql_stmt_t *st)
{
   st->kind = DJ_STMT_INSERT;
   if (sql_accept_kw (p, "OR")) { /* INSERT OR IGNORE (SQLite's spelling of ON CONFLICT DO NOTHING) */
      if (!sql_expect_kw (p, "IGNORE")) {
         return false;
      }
      st->ignore_conflicts = true;
   }
   if (!sql_expect_kw (p, "INTO") || !(st->table = sql_parse_name (p, "a table name"))) {
      return false;
   }
   if (p->tk == DJ_TK_LP && !sql_at_subquery (p) && !parse_name_list (p, &st->columns)) {
      return false;
   }
   if (sql_accept_kw (p, "DEFAULT")) {
      if (!sql_expect_kw (p, "VALUES")) {
         return false;
      }
      dj_list_t *row = sql_arena_alloc (p->arena, sizeof *row);
      sql_list_push (p, &st->rows, row);
   } else if (sql_accept_kw (p, "VALUES")) {
      do {
         dj_list_t *row = sql_arena_alloc (p->arena, sizeof *row);
         if (!sql_expect (p, DJ_TK_LP, "( to open a row of VALUES")) {
            return false;
         }
         do {
            dj_expr_t *v;
            if (sql_is_kw (p, "DEFAULT")) {
               return sql_fail (p, "DEFAULT in VALUES is not supported: leave the column out instead");
            }
            if (!(v = sql_parse_expr (p))) {
               return false;
            }
            sql_list_push (p, row, v);
         } while (sql_accept (p, DJ_TK_COMMA));
         if (!sql_expect (p, DJ_TK_RP, ") to close a row of VALUES")) {
            return false;
         }
         if (st->columns.n && row->n != st->columns.n) {
            return sql_fail (p, "a row of VALUES has %d values for %d columns", row->n, st->columns.n);
         }
         sql_list_push (p, &st->rows, row);
      } while (sql_accept (p, DJ_TK_COMMA));
   } else if (sql_is_kw (p, "SELECT") || p->tk == DJ_TK_LP) {
      if (!(st->select = sql_parse_select (p))) {
         return false;
      }
   } else {
      return sql_fail (p, "expected VALUES, DEFAULT VALUES or SELECT");
   }
   if (sql_accept_kw (p, "ON")) {
      if (!sql_expect_kw (p, "CONFLICT")) {
         return false;
      }
      /* the conflict target: DO NOTHING skips a row any unique index
       * refuses; DO UPDATE updates the row whose target columns match */
      if (p->tk == DJ_TK_LP && !parse_name_list (p, &st->conflict_target)) {
         return false;
      }
      if (!sql_expect_kw (p, "DO")) {
         return false;
      }
      if (sql_accept_kw (p, "UPDATE")) {
         if (!st->conflict_target.n) {
            return sql_fail (p, "ON CONFLICT DO UPDATE needs a conflict target: ON CONFLICT (column, ...)");
         }
         if (!sql_expect_kw (p, "SET") || !parse_assignments (p, &st->conflict_sets)) {
            return false;
         }
         if (sql_accept_kw (p, "WHERE") && !(st->conflict_where = sql_parse_expr (p))) {
            return false;
         }
      } else if (!sql_expect_kw (p, "NOTHING")) {
         return false;
      } else {
         st->ignore_conflicts = true;
      }
   }
   return parse_returning (p, st);
}

static bool
parse_update (parser_t *p, dj_sql_stmt_t *st)
{
   st->kind = DJ_STMT_UPDATE;
   if (!(st->table = sql_parse_name (p, "a table name"))) {
      return false;
   }
   if (!sql_is_kw (p, "SET")) {
      st->alias = parse_alias (p);
   }
   if (!sql_expect_kw (p, "SET") || !parse_assignments (p, &st->sets)) {
      return false;
   }
   if (sql_accept_kw (p, "WHERE") && !(st->where = sql_parse_expr (p))) {
      return false;
   }
   return parse_returning (p, st);
}

static bool
parse_delete (parser_t *p, dj_sql_stmt_t *st)
{
   st->kind = DJ_STMT_DELETE;
   if (!sql_expect_kw (p, "FROM") || !(st->table = sql_parse_name (p, "a table name"))) {
      return false;
   }
   if (!sql_is_kw (p, "WHERE")) {
      st->alias = parse_alias (p);
   }
   if (sql_accept_kw (p, "WHERE") && !(st->where = sql_parse_expr (p))) {
      return false;
   }
   return parse_returning (p, st);
}

/* [DEFERRABLE INITIALLY {DEFERRED | IMMEDIATE} | NOT DEFERRABLE] after
 * REFERENCES: *deferred says whether the check waits for COMMIT. */
static bool
parse_deferrable (parser_t *p, bool *deferred)
{
   *deferred = false;
   if (sql_accept_kw (p, "NOT")) {
      return sql_expect_kw (p, "DEFERRABLE");
   }
   if (sql_accept_kw (p, "DEFERRABLE")) {
      if (!sql_expect_kw (p, "INITIALLY")) {
         return false;
      }
      if (sql_accept_kw (p, "DEFERRED")) {
         *deferred = true;
      } else if (!sql_expect_kw (p, "IMMEDIATE")) {
         return false;
      }
   }
   return true;
}

/* ( expr ) after CHECK */
static dj_expr_t *
parse_check (parser_t *p)
{
   dj_expr_t *e;
   if (!sql_expect (p, DJ_TK_LP, "( after CHECK") || !(e = sql_parse_expr (p)) || !sql_expect (p, DJ_TK_RP, ") to close CHECK")) {
      return NULL;
   }
   return e;
}

/* Column definition: name [type] {constraint}. */
static dj_coldef_t *
parse_coldef (parser_t *p)
{
   dj_coldef_t *c = sql_arena_alloc (p->arena, sizeof *c);
   if (!(c->name = sql_parse_name (p, "a column name"))) {
      return NULL;
   }
   if (p->tk == DJ_TK_ID && !sql_is_kw (p, "NOT") && !sql_is_kw (p, "NULL") && !sql_is_kw (p, "PRIMARY") && !sql_is_kw (p, "UNIQUE") &&
       !sql_is_kw (p, "DEFAULT") && !sql_is_kw (p, "REFERENCES") && !sql_is_kw (p, "CHECK") && !sql_is_kw (p, "CONSTRAINT") &&
       !sql_is_kw (p, "GENERATED") && !sql_is_kw (p, "AS")) {
      if (!(c->type = sql_parse_type (p))) {
         return NULL;
      }
   }
   char *name = NULL; /* the last CONSTRAINT name: a CHECK's */
   for (;;) {
      if (sql_accept_kw (p, "CONSTRAINT")) {
         if (!(name = sql_parse_name (p, "a constraint name"))) {
            return NULL;
         }
      } else if (sql_accept_kw (p, "NOT")) {
         if (!sql_expect_kw (p, "NULL")) {
            return NULL;
         }
         c->not_null = true;
      } else if (sql_accept_kw (p, "NULL")) {
         c->not_null = false;
      } else if (sql_accept_kw (p, "PRIMARY")) {
         if (!sql_expect_kw (p, "KEY")) {
            return NULL;
         }
         c->primary_key = c->not_null = true;
      } else if (sql_accept_kw (p, "AUTOINCREMENT") || sql_accept_kw (p, "AUTO_INCREMENT")) {
         c->autoincrement = true;
      } else if (sql_accept_kw (p, "UNIQUE")) {
         c->unique = true;
      } else if (sql_accept_kw (p, "DEFAULT")) {
         if (!(c->default_value = sql_parse_unary (p))) {
            return NULL;
         }
      } else if (sql_accept_kw (p, "REFERENCES")) {
         if (!(c->ref_table = sql_parse_name (p, "a table name"))) {
            return NULL;
         }
         if (p->tk == DJ_TK_LP) {
            sql_advance (p);
            if (!(c->ref_column = sql_parse_name (p, "a column name")) || !sql_expect (p, DJ_TK_RP, ")")) {
               return NULL;
            }
         }
         if (!parse_deferrable (p, &c->ref_deferred)) {
            return NULL;
         }
      } else if (sql_accept_kw (p, "CHECK")) {
         if (c->check) {
            sql_fail (p, "two CHECK constraints on one column");
            return NULL;
         }
         c->check_name = name;
         if (!(c->check = parse_check (p))) {
            return NULL;
         }
      } else if (sql_is_kw (p, "GENERATED") || sql_is_kw (p, "AS")) {
         /* [GENERATED ALWAYS] AS (e) [STORED | VIRTUAL]: SQLite's and
          * PostgreSQL's generated column (Django's GeneratedField) */
         if (c->generated) {
            sql_fail (p, "two generated-column expressions on one column");
            return NULL;
         }
         if (sql_accept_kw (p, "GENERATED") && !sql_expect_kw (p, "ALWAYS")) {
            return NULL;
         }
         if (!sql_expect_kw (p, "AS") || !sql_expect (p, DJ_TK_LP, "( after AS") || !(c->generated = sql_parse_expr (p)) ||
             !sql_expect (p, DJ_TK_RP, ") to close the generated column's expression")) {
            return NULL;
         }
         c->stored = sql_accept_kw (p, "STORED");
         if (!c->stored) {
            sql_accept_kw (p, "VIRTUAL");
         }
      } else if (sql_accept_kw (p, "COLLATE")) {
         if (!(c->collation = sql_parse_name (p, "a collation name"))) {
            return NULL;
         }
      } else {
         return c;
      }
   }
}

static dj_tconstraint_t *
parse_tconstraint (parser_t *p)
{
   dj_tconstraint_t *tc = sql_arena_alloc (p->arena, sizeof *tc);
   if (sql_accept_kw (p, "CONSTRAINT") && !(tc->name = sql_parse_name (p, "a constraint name"))) {
      return NULL;
   }
   if (sql_accept_kw (p, "CHECK")) {
      return (tc->check = parse_check (p)) ? tc : NULL;
   }
   if (sql_accept_kw (p, "FOREIGN")) {
      if (!sql_expect_kw (p, "KEY") || !parse_name_list (p, &tc->columns) || !sql_expect_kw (p, "REFERENCES") ||
          !(tc->ref_table = sql_parse_name (p, "a table name"))) {
         return NULL;
      }
      if (p->tk == DJ_TK_LP && !parse_name_list (p, &tc->ref_columns)) {
         return NULL;
      }
      if (tc->ref_columns.n && tc->ref_columns.n != tc->columns.n) {
         sql_fail (p, "FOREIGN KEY with %d columns referencing %d", tc->columns.n, tc->ref_columns.n);
         return NULL;
      }
      return parse_deferrable (p, &tc->ref_deferred) ? tc : NULL;
   }
   if (sql_accept_kw (p, "PRIMARY")) {
      if (!sql_expect_kw (p, "KEY")) {
         return NULL;
      }
      tc->primary_key = true;
   } else if (!sql_accept_kw (p, "UNIQUE")) {
      sql_fail (p, "expected PRIMARY KEY, UNIQUE, CHECK or FOREIGN KEY");
      return NULL;
   }
   if (!parse_name_list (p, &tc->columns)) {
      return NULL;
   }
   if (sql_accept_kw (p, "WHERE") && !(tc->where = sql_parse_expr (p))) {
      return NULL;
   }
   return tc;
}

static bool
at_tconstraint (parser_t *p)
{
   return sql_is_kw (p, "CONSTRAINT") || sql_is_kw (p, "PRIMARY") || sql_is_kw (p, "UNIQUE") || sql_is_kw (p, "CHECK") ||
          sql_is_kw (p, "FOREIGN");
}

/* Appends what a parser returned; false when it failed (returned NULL).
 * CREATE TABLE's elements and ALTER TABLE ADD take the same two parsers. */
static bool
push_parsed (parser_t *p, dj_list_t *list, void *parsed)
{
   if (!parsed) {
      return false;
   }
   sql_list_push (p, list, parsed);
   return true;
}

/* [IF NOT EXISTS], for CREATE TABLE and CREATE INDEX */
static bool
parse_if_not_exists (parser_t *p, dj_sql_stmt_t *st)
{
   if (sql_accept_kw (p, "IF")) {
      if (!sql_expect_kw (p, "NOT") || !sql_expect_kw (p, "EXISTS")) {
         return false;
      }
      st->if_not_exists = true;
   }
   return true;
}

static bool
parse_create (parser_t *p, dj_sql_stmt_t *st)
{
   bool unique = sql_accept_kw (p, "UNIQUE");
   if (sql_accept_kw (p, "INDEX")) {
      st->kind = DJ_STMT_CREATE_INDEX;
      st->unique = unique;
      if (!parse_if_not_exists (p, st) || !(st->name = sql_parse_name (p, "an index name")) || !sql_expect_kw (p, "ON") ||
          !(st->table = sql_parse_name (p, "a table name")) || !sql_expect (p, DJ_TK_LP, "( to open the index keys")) {
         return false;
      }
      /* key {, key}, key := expr [ASC | DESC | HASHED | TEXT [WEIGHT n]] (HASHED: MongoDB's hashed
       * index field; TEXT: a text index's) */
      if (!sql_parse_order_list (p, &st->columns, true)) {
         return false;
      }
      if (!sql_expect (p, DJ_TK_RP, ") to close the index keys")) {
         return false;
      }
      /* WITH (param = value {, ...}): expireAfterSeconds (a TTL index), default_language and
       * language_override (a text index's) -- PostgreSQL's spelling of index storage parameters */
      if (sql_accept_kw (p, "WITH")) {
         if (!sql_expect (p, DJ_TK_LP, "( after WITH")) {
            return false;
         }
         do {
            dj_expr_t **to = sql_accept_kw (p, "EXPIREAFTERSECONDS") ? &st->expire_after
                             : sql_accept_kw (p, "DEFAULT_LANGUAGE") ? &st->default_language
                             : sql_accept_kw (p, "LANGUAGE_OVERRIDE") ? &st->language_override
                                                                        : NULL;
            if (!to) {
               return sql_fail (p, "expected expireAfterSeconds, default_language or language_override in WITH");
            }
            if (!sql_expect (p, DJ_TK_EQ, "= after an index parameter") || !(*to = sql_parse_expr (p))) {
               return false;
            }
         } while (sql_accept (p, DJ_TK_COMMA));
         if (!sql_expect (p, DJ_TK_RP, ") to close WITH")) {
            return false;
         }
      }
      if (sql_accept_kw (p, "WHERE") && !(st->where = sql_parse_expr (p))) {
         return false;
      }
      return true;
   }
   if (unique) {
      return sql_fail (p, "expected INDEX after CREATE UNIQUE");
   }
   if (sql_accept_kw (p, "VIEW")) {
      /* CREATE VIEW v AS SELECT ...: a MongoDB view (src/compile/view.c) */
      st->kind = DJ_STMT_CREATE_TABLE;
      st->view = true;
      return (st->table = sql_parse_name (p, "a view name")) && sql_expect_kw (p, "AS") &&
             (sql_is_kw (p, "SELECT") || p->tk == DJ_TK_LP || sql_fail (p, "expected SELECT after AS")) &&
             (st->select = sql_parse_select (p)) != NULL;
   }
   if (!sql_expect_kw (p, "TABLE")) {
      return false;
   }
   st->kind = DJ_STMT_CREATE_TABLE;
   if (!parse_if_not_exists (p, st) || !(st->table = sql_parse_name (p, "a table name")) ||
       !sql_expect (p, DJ_TK_LP, "( to open the column list")) {
      return false;
   }
   do {
      if (!(at_tconstraint (p) ? push_parsed (p, &st->constraints, parse_tconstraint (p))
                               : push_parsed (p, &st->coldefs, parse_coldef (p)))) {
         return false;
      }
   } while (sql_accept (p, DJ_TK_COMMA));
   return sql_expect (p, DJ_TK_RP, ") to close the column list");
}

static bool
parse_drop (parser_t *p, dj_sql_stmt_t *st)
{
   if (sql_accept_kw (p, "TABLE") || sql_accept_kw (p, "VIEW")) {
      /* a view is dropped as a table is: its collection and its entry */
      st->kind = DJ_STMT_DROP_TABLE;
   } else if (sql_accept_kw (p, "INDEX")) {
      st->kind = DJ_STMT_DROP_INDEX;
   } else {
      return sql_fail (p, "expected TABLE or INDEX after DROP");
   }
   if (sql_accept_kw (p, "IF")) {
      if (!sql_expect_kw (p, "EXISTS")) {
         return false;
      }
      st->if_exists = true;
   }
   char *n = sql_parse_name (p, st->kind == DJ_STMT_DROP_TABLE ? "a table name" : "an index name");
   if (!n) {
      return false;
   }
   if (st->kind == DJ_STMT_DROP_TABLE) {
      st->table = n;
      sql_accept_kw (p, "CASCADE");
   } else {
      st->name = n;
      /* DROP INDEX name ON table (MySQL), needed because MongoDB index
       * names are per collection. */
      if (sql_accept_kw (p, "ON") && !(st->table = sql_parse_name (p, "a table name"))) {
         return false;
      }
   }
   return true;
}

/* ALTER TABLE's action `kind` on what the next name names (what: that
 * name's description, for the error): st->name. */
static bool
alter_named (parser_t *p, dj_sql_stmt_t *st, dj_alter_kind_t kind, const char *what)
{
   st->alter = kind;
   return (st->name = sql_parse_name (p, what)) != NULL;
}

/* ALTER TABLE's action `kind` on a column: [COLUMN] name -> st->column. */
static bool
alter_column (parser_t *p, dj_sql_stmt_t *st, dj_alter_kind_t kind)
{
   sql_accept_kw (p, "COLUMN");
   st->alter = kind;
   return (st->column = sql_parse_name (p, "a column name")) != NULL;
}

static bool
parse_alter (parser_t *p, dj_sql_stmt_t *st)
{
   st->kind = DJ_STMT_ALTER_TABLE;
   if (!sql_expect_kw (p, "TABLE") || !(st->table = sql_parse_name (p, "a table name"))) {
      return false;
   }
   if (sql_accept_kw (p, "ADD")) {
      if (at_tconstraint (p)) {
         st->alter = DJ_ALTER_ADD_CONSTRAINT;
         return push_parsed (p, &st->constraints, parse_tconstraint (p));
      }
      sql_accept_kw (p, "COLUMN");
      st->alter = DJ_ALTER_ADD_COLUMN;
      return push_parsed (p, &st->coldefs, parse_coldef (p));
   }
   if (sql_accept_kw (p, "DROP")) {
      if (sql_accept_kw (p, "CONSTRAINT")) {
         return alter_named (p, st, DJ_ALTER_DROP_CONSTRAINT, "a constraint name");
      }
      if (!alter_column (p, st, DJ_ALTER_DROP_COLUMN)) {
         return false;
      }
      sql_accept_kw (p, "CASCADE");
      return true;
   }
   if (sql_accept_kw (p, "RENAME")) {
      if (sql_accept_kw (p, "TO")) {
         return alter_named (p, st, DJ_ALTER_RENAME_TABLE, "a new table name");
      }
      return alter_column (p, st, DJ_ALTER_RENAME_COLUMN) && sql_expect_kw (p, "TO") &&
             (st->name = sql_parse_name (p, "a new column name"));
   }
   if (sql_accept_kw (p, "ALTER")) {
      /* ALTER COLUMN c {TYPE t [COLLATE n] [AUTOINCREMENT] | SET NOT NULL | DROP NOT NULL | SET DEFAULT e | DROP DEFAULT}:
       * the compiler records the type, NOT NULL and the default in the
       * table's entry (what the executor checks and fills INSERTs from);
       * nothing stored changes. */
      if (!alter_column (p, st, DJ_ALTER_ALTER_COLUMN)) {
         return false;
      }
      dj_coldef_t *c = sql_arena_alloc (p->arena, sizeof *c);
      c->name = st->column;
      if (sql_accept_kw (p, "TYPE")) {
         c->type = sql_parse_type (p);
         if (c->type && sql_accept_kw (p, "COLLATE") && !(c->collation = sql_parse_name (p, "a collation name"))) {
            return false;
         }
         /* the column's whole type, as MySQL's MODIFY: without
          * AUTOINCREMENT it numbers itself no more */
         c->autoincrement = c->type && (sql_accept_kw (p, "AUTOINCREMENT") || sql_accept_kw (p, "AUTO_INCREMENT"));
         return c->type && (sql_list_push (p, &st->coldefs, c), true);
      }
      if (sql_accept_kw (p, "SET")) {
         if (sql_accept_kw (p, "NOT")) {
            c->not_null = sql_expect_kw (p, "NULL");
         } else if (sql_accept_kw (p, "DEFAULT")) {
            c->default_value = sql_parse_unary (p);
         } else {
            return sql_fail (p, "expected NOT NULL or DEFAULT after SET");
         }
      } else if (sql_accept_kw (p, "DROP")) {
         if (!(c->drop_default = sql_accept_kw (p, "DEFAULT")) &&
             !(c->drop_not_null = sql_expect_kw (p, "NOT") && sql_expect_kw (p, "NULL"))) {
            return false;
         }
      } else {
         return sql_fail (p, "expected TYPE, SET or DROP");
      }
      if (p->failed) {
         return false;
      }
      sql_list_push (p, &st->coldefs, c);
      return true;
   }
   return sql_fail (p, "expected ADD, DROP, RENAME or ALTER");
}

static bool
parse_statement (parser_t *p, dj_sql_stmt_t *st)
{
   /* EXPLAIN [QUERY PLAN] SELECT ...: the plan of the read (Django's
    * QuerySet.explain()) */
   if (sql_accept_kw (p, "EXPLAIN")) {
      if (sql_accept_kw (p, "QUERY") && !sql_expect_kw (p, "PLAN")) {
         return false;
      }
      if (!sql_is_kw (p, "SELECT") && p->tk != DJ_TK_LP) {
         return sql_fail (p, "expected SELECT after EXPLAIN");
      }
      st->explain = true;
   }
   if (sql_is_kw (p, "SELECT") || p->tk == DJ_TK_LP) {
      st->kind = DJ_STMT_SELECT;
      return (st->select = sql_parse_select (p)) != NULL && parse_for_update (p, st);
   }
   /* the statements whose first keyword hands the rest to their own parser */
   static const struct {
      const char *kw;
      bool (*parse) (parser_t *p, dj_sql_stmt_t *st);
   } by_keyword[] = {{"INSERT", parse_insert}, {"UPDATE", parse_update}, {"DELETE", parse_delete},
                     {"CREATE", parse_create}, {"DROP", parse_drop}, {"ALTER", parse_alter}};
   for (size_t i = 0; i < sizeof by_keyword / sizeof by_keyword[0]; i++) {
      if (sql_accept_kw (p, by_keyword[i].kw)) {
         return by_keyword[i].parse (p, st);
      }
   }
   if (sql_accept_kw (p, "BEGIN") || sql_accept_kw (p, "START")) {
      st->kind = DJ_STMT_BEGIN;
      sql_accept_kw (p, "TRANSACTION");
      return true;
   }
   if (sql_accept_kw (p, "COMMIT") || sql_accept_kw (p, "END")) {
      st->kind = DJ_STMT_COMMIT;
      sql_accept_kw (p, "TRANSACTION");
      return true;
   }
   if (sql_accept_kw (p, "ROLLBACK")) {
      sql_accept_kw (p, "TRANSACTION");
      st->kind = DJ_STMT_ROLLBACK;
      if (sql_accept_kw (p, "TO")) {
         st->kind = DJ_STMT_ROLLBACK_TO;
         sql_accept_kw (p, "SAVEPOINT");
         return (st->name = sql_parse_name (p, "a savepoint name")) != NULL;
      }
      return true;
   }
   if (sql_accept_kw (p, "SAVEPOINT")) {
      st->kind = DJ_STMT_SAVEPOINT;
      return (st->name = sql_parse_name (p, "a savepoint name")) != NULL;
   }
   if (sql_accept_kw (p, "RELEASE")) {
      st->kind = DJ_STMT_RELEASE;
      sql_accept_kw (p, "SAVEPOINT");
      return (st->name = sql_parse_name (p, "a savepoint name")) != NULL;
   }
   return sql_fail (p, "expected a statement (SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, BEGIN, COMMIT, ROLLBACK, SAVEPOINT, RELEASE)");
}

dj_sql_stmt_t *
dj_sql_parse (const char *sql, size_t len, bson_error_t *error)
{
   arena_t arena = {0};
   dj_sql_stmt_t *st = sql_arena_alloc (&arena, sizeof *st);
   parser_t p = {.sql = sql, .len = len, .arena = &arena, .stmt = st, .error = error};

   p.tlen = 0;
   sql_advance (&p);
   bool ok = parse_statement (&p, st);
   if (ok && !p.failed) {
      sql_accept (&p, DJ_TK_SEMI);
      if (p.tk != DJ_TK_EOF) {
         sql_fail (&p, p.tk == DJ_TK_ILLEGAL ? "unrecognised token" : "expected the end of the statement");
      }
   } else if (!p.failed) {
      sql_fail (&p, "unexpected token");
   }
   if (p.failed) {
      arena_free (&arena);
      return NULL;
   }
   /* the arena lives in its first chunk's owner: keep it on the statement */
   arena_t *keep = sql_arena_alloc (&arena, sizeof *keep);
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
