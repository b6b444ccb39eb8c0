/*
 * parse-private.h -- what the parser's files share. Not installed.
 *
 *   parse.c       the parser's state and token helpers, SELECT, INSERT,
 *                 UPDATE, DELETE, DDL, transaction statements, dj_sql_parse
 *   parse_expr.c  expressions: operators by precedence, predicates,
 *                 functions, CASE, CAST, window specifications, types
 *
 * The grammar is written out at the top of parse.c. Errors: the first one
 * wins and is kept on the parser (sql_fail); every function returns
 * NULL/false after it. All nodes come from the statement's arena.
 */
#ifndef DJ_PARSE_PRIVATE_H
#define DJ_PARSE_PRIVATE_H

#include <string.h>
#include <strings.h>

#include "dj_sql.h"

/* ---- the statement's arena: every node, freed at once ---- */
typedef struct chunk {
   struct chunk *next;
   size_t used, cap;
   _Alignas (max_align_t) unsigned char data[];
} chunk_t;

typedef struct {
   chunk_t *head;
} arena_t;

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

/* ---- parse.c ---- */
/* Records the first error: "near "TOKEN" at offset N: <what was expected>". */
bool sql_fail (parser_t *p, const char *fmt, ...) BSON_GNUC_PRINTF (2, 3);

/* The token helpers every rule calls, inline: is_kw's strlen of a literal
 * keyword folds to a constant (as it did when the parser was one file). */
static inline void
sql_advance (parser_t *p)
{
   p->pos += p->tlen;
   p->pos += dj_sql_skip_space (p->sql + p->pos, p->len - p->pos);
   p->tlen = dj_sql_get_token (p->sql + p->pos, p->len - p->pos, &p->tk);
}

static inline bool
sql_is_kw (parser_t *p, const char *kw)
{
   size_t n = strlen (kw);
   return p->tk == DJ_TK_ID && p->tlen == n && strncasecmp (p->sql + p->pos, kw, n) == 0;
}

static inline bool
sql_accept_kw (parser_t *p, const char *kw)
{
   if (sql_is_kw (p, kw)) {
      sql_advance (p);
      return true;
   }
   return false;
}

static inline bool
sql_expect_kw (parser_t *p, const char *kw)
{
   return sql_accept_kw (p, kw) || sql_fail (p, "expected %s", kw);
}

static inline bool
sql_accept (parser_t *p, dj_token_type_t t)
{
   if (p->tk == t) {
      sql_advance (p);
      return true;
   }
   return false;
}

static inline bool
sql_expect (parser_t *p, dj_token_type_t t, const char *what)
{
   return sql_accept (p, t) || sql_fail (p, "expected %s", what);
}

void *sql_arena_alloc (arena_t *a, size_t n);
char *sql_copy_text (parser_t *p, const char *s, size_t n);
char *sql_unquote (parser_t *p, char q);
bool sql_next_is_lparen (parser_t *p);
bool sql_is_reserved (parser_t *p);
char *sql_parse_name (parser_t *p, const char *what);
dj_select_t *sql_parse_select (parser_t *p);

/* ---- parse_expr.c ---- */
bool sql_parse_expr_list (parser_t *p, dj_list_t *list);
bool sql_at_subquery (parser_t *p);
/* order {, order}; index_keys: CREATE INDEX's keys, which may be HASHED
 * instead of ASC/DESC */
bool sql_parse_order_list (parser_t *p, dj_list_t *out, bool index_keys);
char *sql_parse_type (parser_t *p);
dj_expr_t *sql_parse_unary (parser_t *p);
dj_expr_t *sql_parse_expr (parser_t *p);

/* Small enough to inline everywhere, as when the parser was one file. */
static inline dj_expr_t *
sql_new_expr (parser_t *p, dj_expr_kind_t kind, size_t pos)
{
   dj_expr_t *e = sql_arena_alloc (p->arena, sizeof *e);
   e->kind = kind;
   e->pos = (uint32_t) pos;
   return e;
}

static inline void
sql_list_push (parser_t *p, dj_list_t *l, void *v)
{
   if (l->n == l->cap) {
      int cap = l->cap ? l->cap * 2 : 4;
      void **nv = sql_arena_alloc (p->arena, sizeof (void *) * (size_t) cap);
      if (l->n) {
         memcpy (nv, l->v, sizeof (void *) * (size_t) l->n);
      }
      l->v = nv;
      l->cap = cap;
   }
   l->v[l->n++] = v;
}

static inline bool
sql_enter (parser_t *p)
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

#endif
