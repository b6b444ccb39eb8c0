/*
 * expr.c -- SQL expressions and predicates -> MongoDB.
 *
 * Three translators, one per place an expression can land:
 *   cx_agg_value  -- an aggregation expression with the SQL value
 *                    (functions, CAST and CASE in function.c);
 *   cx_agg_truth  -- an aggregation boolean: true iff the predicate is TRUE
 *                    (want) or FALSE (!want) under three-valued logic;
 *   cx_filter     -- the same as a query filter, which can use indexes; it
 *                    falls back to {$expr: cx_agg_truth} for what a filter
 *                    cannot say (column vs column, arithmetic, functions).
 *
 * Why two truth values: SQL's NOT maps UNKNOWN to UNKNOWN, MongoDB's $not /
 * $nor map "no match" to "match". Compiling NOT p as FALSE(p) instead of
 * $nor(TRUE(p)) keeps NULLs out of both p and NOT p, as SQL does.
 *
 * The fixed shapes are JSON templates (template.c); what is built by hand
 * here has a varying length (AND/OR lists, IN lists, array paths).
 *
 * Why {$literal: v} around every bound value in aggregation expressions: a
 * parameter holding "$password" or {"$gt": ""} must stay a value, never
 * become a field path or an operator (MongoDB manual, $literal: "Returns a
 * value without parsing").
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "compile-private.h"
#include "dj_bson_walk.h"

const char *
cx_idx (cx_idx_t *k, uint32_t i)
{
   bson_uint32_to_string (i, &k->key, k->buf, sizeof k->buf);
   return k->key;
}

bool
cx_fail (cx_t *cx, uint32_t code, uint32_t pos, const char *fmt, ...)
{
   char msg[400];
   va_list ap;
   va_start (ap, fmt);
   vsnprintf (msg, sizeof msg, fmt, ap);
   va_end (ap);
   /* a refusal says so in its first words, whatever the construct (the
    * driver maps the code to NotSupportedError; people read the text) */
   return dj_error_set (cx->error, DJ_DOMAIN_SQL, code, "%s%s (at offset %u)",
                        code == DJ_SQL_UNSUPPORTED ? "not supported: " : "", msg, pos);
}

/* ---- constants ---- */

bool
cx_is_const (const dj_expr_t *e)
{
   switch (e->kind) {
   case DJ_X_PARAM: case DJ_X_INT: case DJ_X_FLOAT: case DJ_X_STRING: case DJ_X_NULL: case DJ_X_BOOL:
      return true;
   default:
      return false;
   }
}

bool
cx_const_value (cx_t *cx, const dj_expr_t *e, bson_value_t *tmp, const bson_value_t **out)
{
   memset (tmp, 0, sizeof *tmp);
   switch (e->kind) {
   case DJ_X_PARAM:
      if (e->ival >= cx->nparams) {
         return cx_param_error (cx, e->pos, "parameter %d is missing: %d given", (int) e->ival + 1, cx->nparams);
      }
      *out = &cx->params[e->ival];
      if (cx->values_read) {
         *cx->values_read = true;
      }
      return true;
   case DJ_X_INT:
      if (e->ival >= INT32_MIN && e->ival <= INT32_MAX) {
         tmp->value_type = BSON_TYPE_INT32;
         tmp->value.v_int32 = (int32_t) e->ival;
      } else {
         tmp->value_type = BSON_TYPE_INT64;
         tmp->value.v_int64 = e->ival;
      }
      break;
   case DJ_X_FLOAT:
      tmp->value_type = BSON_TYPE_DOUBLE;
      tmp->value.v_double = e->dval;
      break;
   case DJ_X_STRING:
      tmp->value_type = BSON_TYPE_UTF8;
      tmp->value.v_utf8.str = e->name;
      tmp->value.v_utf8.len = (uint32_t) strlen (e->name);
      break;
   case DJ_X_NULL:
      tmp->value_type = BSON_TYPE_NULL;
      break;
   case DJ_X_BOOL:
      tmp->value_type = BSON_TYPE_BOOL;
      tmp->value.v_bool = e->ival != 0;
      break;
   default:
      return cx_unsupported (cx, e->pos, "expected a constant");
   }
   *out = tmp;
   return true;
}

bool
cx_const_peek (cx_t *cx, const dj_expr_t *e, bson_value_t *tmp, const bson_value_t **out)
{
   bool *noted = cx->values_read;
   cx->values_read = NULL;
   bool ok = cx_const_value (cx, e, tmp, out);
   cx->values_read = noted;
   return ok;
}

bool
cx_const_arg (cx_t *cx, const dj_expr_t *e, const char *what, bson_value_t *tmp, const bson_value_t **out)
{
   if (!cx_is_const (e)) {
      return cx_unsupported (cx, e->pos, "%s that is not a constant or parameter", what);
   }
   return cx_const_value (cx, e, tmp, out);
}

static bool
is_null_value (const bson_value_t *v)
{
   return v->value_type == BSON_TYPE_NULL || v->value_type == BSON_TYPE_UNDEFINED;
}

bool
cx_const_is_null (cx_t *cx, const dj_expr_t *e)
{
   bson_value_t tmp;
   const bson_value_t *v;
   return cx_const_peek (cx, e, &tmp, &v) && is_null_value (v); /* (the type alone) */
}

bool
cx_append_const (cx_t *cx, const dj_expr_t *e, bson_t *parent, const char *key)
{
   bson_value_t tmp;
   const bson_value_t *v;
   int64_t us;
   if (!cx_const_peek (cx, e, &tmp, &v)) {
      return false;
   }
   if (v->value_type == BSON_TYPE_UNDEFINED) {
      return BSON_APPEND_NULL (parent, key);
   }
   if (cx->values_read && dj_exact_dt_value (v, &us)) {
      *cx->values_read = true; /* (not appended as it is: its date) */
   }
   return cx_dt_append_query_value (parent, key, v); /* (an exact datetime: its date) */
}

bool
cx_append_stored (cx_t *cx, const dj_expr_t *e, bson_t *parent, const char *key)
{
   bson_value_t tmp;
   const bson_value_t *v;
   /* an exact datetime is stored as its date and remainder (exact_dt.c) */
   return cx_const_value (cx, e, &tmp, &v) && dj_exact_dt_store (parent, key, v);
}

/* v as the element(s) cx_append_stored writes, as bytes appended to b */
static bool
put_stored_value (dj_buf_t *b, const char *key, const bson_value_t *v)
{
   if (dj_bson_put_scalar (b, key, strlen (key), v)) {
      return true; /* (never an exact datetime: those are binary) */
   }
   bson_t one = BSON_INITIALIZER;
   return dj_bson_put_elements (b, &one, dj_exact_dt_store (&one, key, v));
}

bool
cx_put_stored (cx_t *cx, const dj_expr_t *e, dj_buf_t *b, const char *key)
{
   bson_value_t tmp;
   const bson_value_t *v;
   return cx_const_value (cx, e, &tmp, &v) && put_stored_value (b, key, v);
}

/* {$literal: v}: see the file comment. Plain numbers, booleans and null
 * need no wrapping and read better in `djongo-sql translate`. */
static bool
append_literal (cx_t *cx, const dj_expr_t *e, bson_t *parent, const char *key)
{
   bson_value_t tmp;
   const bson_value_t *v;
   if (!cx_const_value (cx, e, &tmp, &v)) {
      return false;
   }
   switch (v->value_type) {
   case BSON_TYPE_INT32: case BSON_TYPE_INT64: case BSON_TYPE_DOUBLE: case BSON_TYPE_BOOL: case BSON_TYPE_NULL:
   case BSON_TYPE_DECIMAL128: case BSON_TYPE_DATE_TIME: case BSON_TYPE_OID:
      return BSON_APPEND_VALUE (parent, key, v);
   case BSON_TYPE_UNDEFINED:
      return BSON_APPEND_NULL (parent, key);
   default:
      /* (CX_CONST: cx_append_const, an exact datetime as its date) */
      return cx_template (cx, "{'$literal': '@0'}", CX_ARGS (CX_CONST (e)), parent, key);
   }
}

/* ---- structure ---- */

static const char *const agg_names[] = {"COUNT", "SUM", "AVG", "MIN", "MAX", "STDDEV_POP", "STDDEV_SAMP",
                                        "STDDEV", "VAR_POP", "VAR_SAMP", "VARIANCE", NULL};

bool
cx_is_aggregate (const dj_expr_t *e)
{
   if (e->kind != DJ_X_FUNC || e->over) {
      return false;
   }
   for (int i = 0; agg_names[i]; i++) {
      if (!strcmp (e->name, agg_names[i])) {
         return true;
      }
   }
   return false;
}

static bool
str_eq (const char *a, const char *b)
{
   return a == b || (a && b && !strcmp (a, b));
}

/* Two parameters bound to the same value of the same type: Django writes a
 * GROUP BY expression's Value() again as a parameter of its own where the
 * SELECT list repeats the expression. */
static bool
same_bound_value (const cx_t *cx, const dj_expr_t *a, const dj_expr_t *b)
{
   if (!cx || a->ival < 0 || b->ival < 0 || a->ival >= cx->nparams || b->ival >= cx->nparams) {
      return false;
   }
   const bson_value_t *x = &cx->params[a->ival], *y = &cx->params[b->ival];
   if (cx->values_read) {
      *cx->values_read = true;
   }
   if (x->value_type != y->value_type) {
      return false;
   }
   switch (x->value_type) {
   case BSON_TYPE_INT32: return x->value.v_int32 == y->value.v_int32;
   case BSON_TYPE_INT64: return x->value.v_int64 == y->value.v_int64;
   case BSON_TYPE_DOUBLE: return x->value.v_double == y->value.v_double;
   case BSON_TYPE_BOOL: return x->value.v_bool == y->value.v_bool;
   case BSON_TYPE_NULL: return true;
   case BSON_TYPE_UTF8:
      return x->value.v_utf8.len == y->value.v_utf8.len &&
             !memcmp (x->value.v_utf8.str, y->value.v_utf8.str, x->value.v_utf8.len);
   default: return false;
   }
}

/* cx_expr_equal; with cx, parameters bound to the same value are equal. */
static bool
expr_equal (const cx_t *cx, const dj_expr_t *a, const dj_expr_t *b)
{
   if (a == b) {
      return true;
   }
   if (a && b && a->kind == DJ_X_PARAM && b->kind == DJ_X_PARAM && a->ival != b->ival) {
      return same_bound_value (cx, a, b);
   }
   if (!a || !b || a->kind != b->kind || a->op != b->op || a->flags != b->flags || !str_eq (a->name, b->name) ||
       a->ival != b->ival || a->args.n != b->args.n || a->sub || b->sub || a->over || b->over) {
      return false;
   }
   if (a->kind == DJ_X_COLUMN && !str_eq (a->table, b->table)) {
      return false;
   }
   if (a->kind == DJ_X_FLOAT && a->dval != b->dval) {
      return false;
   }
   if (!expr_equal (cx, a->a, b->a) || !expr_equal (cx, a->b, b->b) || !expr_equal (cx, a->c, b->c) ||
       !expr_equal (cx, a->filter, b->filter)) {
      return false;
   }
   for (int i = 0; i < a->args.n; i++) {
      if (!expr_equal (cx, a->args.v[i], b->args.v[i])) {
         return false;
      }
   }
   return true;
}

bool
cx_expr_equal (const dj_expr_t *a, const dj_expr_t *b)
{
   return expr_equal (NULL, a, b);
}

static void
push_agg (cx_group_t *g, const dj_expr_t *e)
{
   for (int i = 0; i < g->aggs.n; i++) {
      if (cx_expr_equal (g->aggs.v[i], e)) {
         return;
      }
   }
   DJ_GROW (g->aggs.v, g->aggs.n, g->aggs.cap, 8);
   g->aggs.v[g->aggs.n++] = (void *) e;
}

void
cx_collect_aggs (const dj_expr_t *e, cx_group_t *g)
{
   if (!e) {
      return;
   }
   if (cx_is_aggregate (e)) {
      push_agg (g, e);
      return;
   }
   cx_collect_aggs (e->a, g);
   cx_collect_aggs (e->b, g);
   cx_collect_aggs (e->c, g);
   for (int i = 0; i < e->args.n; i++) {
      cx_collect_aggs (e->args.v[i], g);
   }
}

bool
cx_expr_any (const dj_expr_t *e, bool (*pred) (const dj_expr_t *e, const void *ctx), const void *ctx)
{
   if (!e) {
      return false;
   }
   if (pred (e, ctx)) {
      return true;
   }
   if (cx_expr_any (e->a, pred, ctx) || cx_expr_any (e->b, pred, ctx) || cx_expr_any (e->c, pred, ctx)) {
      return true;
   }
   for (int i = 0; i < e->args.n; i++) {
      if (cx_expr_any (e->args.v[i], pred, ctx)) {
         return true;
      }
   }
   return false;
}

static bool
is_subquery (const dj_expr_t *e, const void *ctx)
{
   (void) ctx;
   return e->sub != NULL;
}

bool
cx_has_subquery (const dj_expr_t *e)
{
   return cx_expr_any (e, is_subquery, NULL);
}

/* A subquery, or a column of a joined table: not the base table's alone. */
static bool
not_base (const dj_expr_t *e, const void *ctx)
{
   const cx_t *cx = ctx;
   if (e->kind == DJ_X_COLUMN) {
      /* (no FROM: nothing is the base table; the column is refused later) */
      return !(cx->nsources == 1 ||
               (cx->nsources > 1 && e->table && cx->sources[0].alias && !strcmp (e->table, cx->sources[0].alias)));
   }
   return e->sub != NULL;
}

bool
cx_base_only (cx_t *cx, const dj_expr_t *e)
{
   return !cx_expr_any (e, not_base, cx);
}

/* ---- aggregation values ---- */

static bool
enter (cx_t *cx, const dj_expr_t *e)
{
   if (++cx->depth > DJ_SQL_MAX_DEPTH) {
      return cx_fail (cx, DJ_SQL_TOO_DEEP, e->pos, "expression nested too deeply");
   }
   return true;
}

/* {op: [a, b]} */
static bool
agg_binop (cx_t *cx, const char *op, const dj_expr_t *a, const dj_expr_t *b, bson_t *parent, const char *key)
{
   return cx_template (cx, "{'@0': ['@1', '@2']}", CX_ARGS (CX_STR (op), CX_VALUE (a), CX_VALUE (b)), parent, key);
}

bool
cx_agg_value_or_null (cx_t *cx, const dj_expr_t *e, bson_t *parent, const char *key)
{
   return cx_template (cx, "{'$ifNull': ['@0', null]}", CX_ARGS (CX_VALUE (e)), parent, key);
}

bool
cx_agg_isnull (cx_t *cx, const dj_expr_t *x, bool want_null, bson_t *parent, const char *key)
{
   return cx_template (cx, "{'@0': ['@1', null]}", CX_ARGS (CX_STR (want_null ? "$eq" : "$ne"), CX_OR_NULL (x)),
                       parent, key);
}

/* A predicate used as a value: TRUE / FALSE / NULL. */
static bool
agg_truth_value (cx_t *cx, const dj_expr_t *e, bson_t *parent, const char *key)
{
   return cx_template (cx, "{'$cond': ['@0', true, {'$cond': ['@1', false, null]}]}",
                       CX_ARGS (CX_TRUTH (e, true), CX_TRUTH (e, false)), parent, key);
}

static bool
agg_arith (cx_t *cx, const dj_expr_t *e, bson_t *parent, const char *key)
{
   switch (e->op) {
   case DJ_OP_ADD: return agg_binop (cx, "$add", e->a, e->b, parent, key);
   case DJ_OP_SUB: return agg_binop (cx, "$subtract", e->a, e->b, parent, key);
   case DJ_OP_MUL: return agg_binop (cx, "$multiply", e->a, e->b, parent, key);
   case DJ_OP_MOD: return agg_binop (cx, "$mod", e->a, e->b, parent, key);
   case DJ_OP_DIV:
      /* SQL divides integers by truncating (7 / 2 = 3); MongoDB's $divide
       * always gives a double. Check the operand types at run time.
       * Integers past 2^53 lose precision through the double. */
      return cx_template (cx,
                          "{'$let': {'vars': {'x': '@0', 'y': '@1'}, 'in': {'$cond': ["
                          "{'$and': [{'$in': [{'$type': '$$x'}, ['int', 'long']]}, {'$in': [{'$type': '$$y'}, ['int', 'long']]}]}, "
                          "{'$toLong': {'$trunc': {'$divide': ['$$x', '$$y']}}}, {'$divide': ['$$x', '$$y']}]}}}",
                          CX_ARGS (CX_VALUE (e->a), CX_VALUE (e->b)), parent, key);
   case DJ_OP_BITAND: return agg_binop (cx, "$bitAnd", e->a, e->b, parent, key);
   case DJ_OP_BITOR: return agg_binop (cx, "$bitOr", e->a, e->b, parent, key);
   case DJ_OP_BITXOR: return agg_binop (cx, "$bitXor", e->a, e->b, parent, key);
   case DJ_OP_POW: return agg_binop (cx, "$pow", e->a, e->b, parent, key);
   case DJ_OP_SHL:
   case DJ_OP_SHR:
      /* MongoDB has no shifts: a << b is a * 2^b, a >> b is floor(a / 2^b)
       * (an arithmetic shift: -5 >> 1 is -3), exact below 2^53 */
      return cx_template (cx,
                          e->op == DJ_OP_SHL ? "{'$multiply': ['@0', {'$pow': [2, '@1']}]}"
                                             : "{'$toLong': {'$floor': {'$divide': ['@0', {'$pow': [2, '@1']}]}}}",
                          CX_ARGS (CX_VALUE (e->a), CX_VALUE (e->b)), parent, key);
   case DJ_OP_CONCAT:
      /* SQL's || makes text of its operands; $concat refuses numbers. */
      return cx_template (cx, "{'$concat': [{'$toString': '@0'}, {'$toString': '@1'}]}",
                          CX_ARGS (CX_VALUE (e->a), CX_VALUE (e->b)), parent, key);
   default:
      return agg_truth_value (cx, e, parent, key); /* a comparison */
   }
}

/* After $group: a GROUP BY key or aggregate call becomes a field reference. */
static bool
agg_group_ref (cx_t *cx, const dj_expr_t *e, bson_t *parent, const char *key, bool *done)
{
   cx_group_t *g = cx->group;
   char ref[32];
   *done = false;
   if (!g) {
      return true;
   }
   for (int i = 0; i < g->aggs.n; i++) {
      if (cx_expr_equal (g->aggs.v[i], e)) {
         snprintf (ref, sizeof ref, "$a%d", i);
         *done = true;
         return BSON_APPEND_UTF8 (parent, key, ref);
      }
   }
   for (int i = 0; g->keys && i < g->keys->n; i++) {
      if (expr_equal (cx, g->keys->v[i], e)) {
         snprintf (ref, sizeof ref, "$_id.k%d", i);
         *done = true;
         return BSON_APPEND_UTF8 (parent, key, ref);
      }
   }
   if (e->kind == DJ_X_COLUMN) {
      *done = true;
      return cx_unsupported (cx, e->pos, "column \"%s\" must appear in GROUP BY or be used in an aggregate", e->name);
   }
   return true;
}

static int subquery_field (cx_t *cx, const dj_expr_t *e);

/* e's value by its kind, once neither a window call nor a $group result. */
static bool
agg_value (cx_t *cx, const dj_expr_t *e, bson_t *parent, const char *key)
{
   switch (e->kind) {
   case DJ_X_COLUMN: return cx_append_field_ref (cx, e, parent, key);
   case DJ_X_PARAM: case DJ_X_INT: case DJ_X_FLOAT: case DJ_X_STRING: case DJ_X_NULL: case DJ_X_BOOL:
      return append_literal (cx, e, parent, key);
   case DJ_X_NEG: return cx_template (cx, "{'$multiply': [-1, '@0']}", CX_ARGS (CX_VALUE (e->a)), parent, key);
   case DJ_X_BINARY: return agg_arith (cx, e, parent, key);
   case DJ_X_CASE: return cx_agg_case (cx, e, parent, key);
   case DJ_X_CAST: return cx_agg_cast (cx, e, parent, key);
   case DJ_X_FUNC: return cx_agg_function (cx, e, parent, key);
   case DJ_X_SUBQUERY: {
      /* first row's first column, NULL when there is no row */
      int i = subquery_field (cx, e);
      char ref[40];
      if (i < 0) {
         return cx_unsupported (cx, e->pos, "scalar subquery in this position");
      }
      snprintf (ref, sizeof ref, "$__dj_sq%d.c0", i);
      return cx_template (cx, "{'$ifNull': [{'$arrayElemAt': ['@0', 0]}, null]}", CX_ARGS (CX_STR (ref)), parent, key);
   }
   case DJ_X_STAR: return cx_unsupported (cx, e->pos, "* outside COUNT(*) and the SELECT list");
   case DJ_X_ROW:
      return cx_unsupported (cx, e->pos, "a row value (a, b, ...) other than in =, <>, IN (rows) or IN (SELECT ...)");
   default: return agg_truth_value (cx, e, parent, key); /* a predicate used as a value */
   }
}

bool
cx_agg_value (cx_t *cx, const dj_expr_t *e, bson_t *parent, const char *key)
{
   bool done = false, ok = true;
   if (!enter (cx, e)) {
      return false;
   }
   /* a window call computed by $setWindowFields (window.c) */
   for (int i = 0; e->kind == DJ_X_FUNC && e->over && !done && i < cx->nwins; i++) {
      if (cx->wins[i] == e) {
         char ref[24];
         snprintf (ref, sizeof ref, "$__dj_w%d", i);
         ok = BSON_APPEND_UTF8 (parent, key, ref);
         done = true;
      }
   }
   if (!done) {
      ok = agg_group_ref (cx, e, parent, key, &done);
   }
   if (ok && !done) {
      ok = agg_value (cx, e, parent, key);
   }
   cx->depth--;
   return ok;
}

/* ---- truth under three-valued logic, as aggregation booleans ---- */

static const char *
cmp_op (dj_op_t op, bool negate)
{
   static const char *pos[] = {"$eq", "$ne", "$lt", "$lte", "$gt", "$gte"};
   static const char *neg[] = {"$ne", "$eq", "$gte", "$gt", "$lte", "$lt"};
   return negate ? neg[op] : pos[op];
}

static bool
is_comparison (const dj_expr_t *e)
{
   return e->kind == DJ_X_BINARY && e->op <= DJ_OP_GE;
}

/* e COLLATE name, as the parser writes it (function.c) */
bool
cx_is_collate (const dj_expr_t *e)
{
   return e->kind == DJ_X_FUNC && !strcmp (e->name, "COLLATE") && e->args.n == 2 && !(e->flags & DJ_XF_COLLKEY);
}

void
cx_collation_key (dj_expr_t *out, void **argv, const dj_expr_t *x, const dj_expr_t *c)
{
   *out = *c;
   argv[0] = cx_is_collate (x) ? x->args.v[0] : (void *) x;
   argv[1] = c->args.v[1];
   out->args.v = argv;
   out->args.n = 2;
   out->flags |= DJ_XF_COLLKEY;
}

/* SQL LIKE pattern -> PCRE, anchored; `esc` escapes % and _ (0: none). */
static bool
like_to_regex (cx_t *cx, const dj_expr_t *e, const char *pat, uint32_t len, char esc, dj_buf_t *out)
{
   const char *meta = "\\^$.|?*+()[]{}";
   bool lead = len > 0 && pat[0] == '%' && esc != '%';
   uint32_t i = 0;
   if (!lead) {
      dj_buf_putc (out, '^');
   }
   bool trailing_any = false;
   for (; i < len; i++) {
      char c = pat[i];
      trailing_any = false;
      if (esc && c == esc) {
         if (i + 1 >= len) {
            return cx_param_error (cx, e->pos, "LIKE pattern ends with its escape character");
         }
         c = pat[++i];
         if (strchr (meta, c) && c) {
            dj_buf_putc (out, '\\');
         }
         dj_buf_putc (out, (uint8_t) c);
      } else if (c == '%') {
         if (!(i == 0 && lead)) {
            dj_buf_append (out, ".*", 2);
         }
         trailing_any = true;
      } else if (c == '_') {
         dj_buf_putc (out, '.');
      } else {
         if (c && strchr (meta, c)) {
            dj_buf_putc (out, '\\');
         }
         dj_buf_putc (out, (uint8_t) c);
      }
   }
   if (trailing_any && out->len >= 2 && !memcmp (out->data + out->len - 2, ".*", 2)) {
      out->len -= 2; /* 'abc%' needs no end anchor */
   } else if (!(lead && len == 1)) {
      dj_buf_append (out, "\\z", 2); /* \z, not $: $ also matches before a final newline */
   }
   dj_buf_putc (out, '\0');
   return true;
}

/* The pattern of a LIKE/regex as a string constant, or false (+ error). */
static bool
pattern_of (cx_t *cx, const dj_expr_t *e, const bson_value_t **v, bson_value_t *tmp)
{
   if (!cx_is_const (e->b)) {
      return cx_unsupported (cx, e->b->pos, "%s with a pattern that is not a constant or parameter",
                             e->kind == DJ_X_LIKE ? "LIKE" : "regex match");
   }
   if (!cx_const_value (cx, e->b, tmp, v)) {
      return false;
   }
   if (!is_null_value (*v) && (*v)->value_type != BSON_TYPE_UTF8) {
      return cx_param_error (cx, e->b->pos, "the pattern of %s must be a string", e->kind == DJ_X_LIKE ? "LIKE" : "a regex match");
   }
   return true;
}

/* regex (PCRE text) and options ("s" plus "i") of a LIKE or ~ predicate;
 * *is_null when the pattern is NULL. buf owns the text. */
static bool
predicate_regex (cx_t *cx, const dj_expr_t *e, dj_buf_t *buf, const char **options, bool *is_null)
{
   bson_value_t tmp, etmp;
   const bson_value_t *v, *ev;
   *is_null = false;
   if (!pattern_of (cx, e, &v, &tmp)) {
      return false;
   }
   if (is_null_value (v)) {
      *is_null = true;
      return true;
   }
   bool icase = (e->flags & DJ_XF_ICASE) != 0;
   if (e->kind == DJ_X_REGEX) {
      dj_buf_append (buf, v->value.v_utf8.str, v->value.v_utf8.len);
      dj_buf_putc (buf, '\0');
      if (strlen ((const char *) buf->data) != v->value.v_utf8.len) {
         return cx_param_error (cx, e->b->pos, "a regex pattern cannot contain NUL");
      }
      *options = icase ? "i" : "";
      return true;
   }
   char esc = 0;
   if (e->c) {
      if (!cx_is_const (e->c) || !cx_const_value (cx, e->c, &etmp, &ev) || ev->value_type != BSON_TYPE_UTF8 ||
          ev->value.v_utf8.len != 1) {
         return cx->error && cx->error->code ? false : cx_param_error (cx, e->c->pos, "ESCAPE takes a one-character string");
      }
      esc = ev->value.v_utf8.str[0];
   }
   if (memchr (v->value.v_utf8.str, '\0', v->value.v_utf8.len)) {
      return cx_param_error (cx, e->b->pos, "a LIKE pattern cannot contain NUL");
   }
   *options = icase ? "is" : "s";
   return like_to_regex (cx, e, v->value.v_utf8.str, v->value.v_utf8.len, esc, buf);
}

static bool
agg_const_bool (bson_t *parent, const char *key, bool v)
{
   return BSON_APPEND_BOOL (parent, key, v);
}

static bool
agg_subquery_truth (cx_t *cx, const dj_expr_t *e, bool want, bson_t *parent, const char *key);

typedef bool (*truth_fn) (cx_t *cx, const dj_expr_t *e, bool want, bson_t *parent, const char *key);

/* AND / OR for either truth translator (`leaf`):
 * TRUE(a AND b) = TRUE(a) and TRUE(b); FALSE(a AND b) = FALSE(a) or FALSE(b),
 * and the mirror image for OR. */
static bool
connective (cx_t *cx, const dj_expr_t *e, bool want, bson_t *parent, const char *key, truth_fn leaf)
{
   bson_t d, arr;
   cx_idx_t k;
   bool ok = true, conj = (e->kind == DJ_X_AND) == want;
   BSON_APPEND_DOCUMENT_BEGIN (parent, key, &d);
   BSON_APPEND_ARRAY_BEGIN (&d, conj ? "$and" : "$or", &arr);
   for (int i = 0; ok && i < e->args.n; i++) {
      ok = leaf (cx, e->args.v[i], want, &arr, cx_idx (&k, (uint32_t) i));
   }
   bson_append_array_end (&d, &arr);
   bson_append_document_end (parent, &d);
   return ok;
}

/* a [NOT] BETWEEN b AND c is (a >= b AND a <= c), negated for NOT: SQL's
 * definition, so NULL bounds come out as SQL says. */
static bool
between (cx_t *cx, const dj_expr_t *e, bool want, bson_t *parent, const char *key, truth_fn leaf)
{
   dj_expr_t ge = {.kind = DJ_X_BINARY, .op = DJ_OP_GE, .pos = e->pos, .a = e->a, .b = e->b};
   dj_expr_t le = {.kind = DJ_X_BINARY, .op = DJ_OP_LE, .pos = e->pos, .a = e->a, .b = e->c};
   void *both[2] = {&ge, &le};
   dj_expr_t andx = {.kind = DJ_X_AND, .pos = e->pos, .args = {.v = both, .n = 2}};
   return leaf (cx, &andx, (e->flags & DJ_XF_NOT) ? !want : want, parent, key);
}

/* What the two truth translators share: the depth guard; AND / OR; NOT,
 * the other truth value; [NOT] BETWEEN, rewritten. `self` is the
 * translator, `own` its other cases. */
static bool
truth (cx_t *cx, const dj_expr_t *e, bool want, bson_t *parent, const char *key, truth_fn self, truth_fn own)
{
   bool ok;
   if (!enter (cx, e)) {
      return false;
   }
   switch (e->kind) {
   case DJ_X_AND:
   case DJ_X_OR:
      ok = connective (cx, e, want, parent, key, self);
      break;
   case DJ_X_NOT:
      ok = self (cx, e->a, !want, parent, key);
      break;
   case DJ_X_BETWEEN:
      ok = between (cx, e, want, parent, key, self);
      break;
   default:
      ok = own (cx, e, want, parent, key);
      break;
   }
   cx->depth--;
   return ok;
}

static bool dynamic_regex_truth (cx_t *cx, const dj_expr_t *e, bool want, bson_t *parent, const char *key);

/* LIKE / regex match, as an aggregation boolean or a query filter: TRUE
 * for a string that matches, FALSE for one that does not; a NULL pattern
 * makes it neither. */
static bool
regex_truth (cx_t *cx, const dj_expr_t *e, bool want, bool filter, bson_t *parent, const char *key)
{
   static const char *const tpl[2][3] = {
      /* NULL pattern, TRUE, FALSE; @0 the subject, @1 the regex, @2 its options */
      {"false",
       "{'$and': [{'$eq': [{'$type': '@0'}, 'string']}, {'$regexMatch': {'input': '@0', 'regex': '@1', 'options': '@2'}}]}",
       "{'$and': [{'$eq': [{'$type': '@0'}, 'string']}, "
       "{'$not': [{'$regexMatch': {'input': '@0', 'regex': '@1', 'options': '@2'}}]}]}"},
      {"{'$expr': false}", "{'@0': {'$regex': '@1', '$options': '@2'}}",
       "{'@0': {'$type': 'string', '$not': {'$regex': '@1', '$options': '@2'}}}"}};
   if (!filter && !cx_is_const (e->b)) {
      return dynamic_regex_truth (cx, e, want, parent, key);
   }
   dj_buf_t re;
   const char *opts = "";
   bool is_null, w = (e->flags & DJ_XF_NOT) ? !want : want;
   char path[512];
   dj_buf_init (&re);
   bool ok = predicate_regex (cx, e, &re, &opts, &is_null) && (!filter || cx_column_path (cx, e->a, path, sizeof path));
   ok = ok && cx_template (cx, tpl[filter][is_null ? 0 : w ? 1 : 2],
                           CX_ARGS (filter ? CX_STR (path) : CX_VALUE (e->a), CX_STR ((const char *) re.data), CX_STR (opts)),
                           parent, key);
   dj_buf_cleanup (&re);
   return ok;
}

/* The regex of LIKE pattern p (an expression), built while the query runs:
 * each code point of p in turn -- after the escape character, itself;
 * else % is .*, _ is ., and the rest is itself -- a PCRE metacharacter
 * quoted with a backslash (like_to_regex's rules, for Django's F() in
 * contains/startswith/endswith: '%' || REPLACE(..) || '%' ESCAPE '\').
 * The state is {s: regex so far, e: the last code point was the escape}.
 * $$pat the pattern (dynamic_regex_truth's $let), @1 the escape character
 * ("" for none, which never equals one code point), @2 the
 * metacharacters. */
static const char dynamic_like_regex[] =
   "{'$concat': ['^', {'$getField': {'field': 's', "
   "'input': {'$reduce': {'input': {'$range': [0, {'$strLenCP': '$$pat'}]}, 'initialValue': {'s': '', "
   "'e': false}, 'in': {'$let': {'vars': {'ch': {'$substrCP': ['$$pat', '$$this', 1]}}, "
   "'in': {'$cond': [{'$and': [{'$not': ['$$value.e']}, {'$eq': ['$$ch', '@1']}]}, {'s': '$$value.s', "
   "'e': true}, {'s': {'$concat': ['$$value.s', {'$cond': [{'$or': ['$$value.e', "
   "{'$not': [{'$in': ['$$ch', ['%', '_']]}]}]}, {'$cond': [{'$gte': [{'$indexOfCP': ['@2', '$$ch']}, 0]}, "
   "{'$concat': ['\\', '$$ch']}, '$$ch']}, {'$cond': [{'$eq': ['$$ch', '%']}, '.*', '.']}]}]}, "
   "'e': false}]}}}}}}}, '\\z']}";

/* The regex of a LIKE or ~ whose pattern ($$pat) is not a constant (a
 * column, an expression): LIKE's built from it at run time, ~'s the pattern
 * itself. */
static bool
dynamic_regex (cx_t *cx, const dj_expr_t *e, bson_t *parent, const char *key)
{
   if (e->kind == DJ_X_REGEX) {
      return BSON_APPEND_UTF8 (parent, key, "$$pat");
   }
   const char *esc = "";
   bson_value_t etmp;
   const bson_value_t *ev;
   if (e->c) {
      if (!cx_is_const (e->c) || !cx_const_value (cx, e->c, &etmp, &ev) || ev->value_type != BSON_TYPE_UTF8 ||
          ev->value.v_utf8.len != 1) {
         return cx->error && cx->error->code ? false : cx_param_error (cx, e->c->pos, "ESCAPE takes a one-character string");
      }
      esc = ev->value.v_utf8.str;
   }
   return cx_template (cx, dynamic_like_regex, CX_ARGS (CX_STR (""), CX_STR (esc), CX_STR ("\\^$.|?*+()[]{}")), parent, key);
}

/* LIKE / ~ with a pattern that is not a constant, evaluated once into $$pat:
 * TRUE when subject and pattern are strings and the subject matches, FALSE
 * when both are strings and it does not; a NULL subject or pattern makes
 * it neither. */
static bool
dynamic_regex_truth (cx_t *cx, const dj_expr_t *e, bool want, bson_t *parent, const char *key)
{
   bool w = (e->flags & DJ_XF_NOT) ? !want : want;
   const char *opts = e->kind == DJ_X_LIKE ? ((e->flags & DJ_XF_ICASE) ? "is" : "s") : (e->flags & DJ_XF_ICASE) ? "i" : "";
   return cx_template (cx,
                       w ? "{'$let': {'vars': {'pat': '@1'}, 'in': {'$and': [{'$eq': [{'$type': '@0'}, 'string']}, "
                           "{'$eq': [{'$type': '$$pat'}, 'string']}, "
                           "{'$regexMatch': {'input': '@0', 'regex': '@3', 'options': '@2'}}]}}}"
                         : "{'$let': {'vars': {'pat': '@1'}, 'in': {'$and': [{'$eq': [{'$type': '@0'}, 'string']}, "
                           "{'$eq': [{'$type': '$$pat'}, 'string']}, "
                           "{'$not': [{'$regexMatch': {'input': '@0', 'regex': '@3', 'options': '@2'}}]}]}}}",
                       CX_ARGS (CX_VALUE (e->a), CX_VALUE (e->b), CX_STR (opts), CX_FN (dynamic_regex, e)), parent, key);
}

static bool
agg_truth (cx_t *cx, const dj_expr_t *e, bool want, bson_t *parent, const char *key)
{
   bool ok = true;

   switch (e->kind) {
   case DJ_X_BOOL:
      ok = agg_const_bool (parent, key, (e->ival != 0) == want);
      break;
   case DJ_X_NULL:
      ok = agg_const_bool (parent, key, false);
      break;
   case DJ_X_IS_NULL: {
      bool want_null = ((e->flags & DJ_XF_NOT) == 0) == want;
      ok = cx_agg_isnull (cx, e->a, want_null, parent, key);
      break;
   }
   case DJ_X_BINARY:
      if (is_comparison (e) && (cx_is_collate (e->a) || cx_is_collate (e->b))) {
         /* a COLLATE c op b: both sides compared as sort keys under c (the
          * left side's collation when both name one, as SQLite chooses) */
         const dj_expr_t *c = cx_is_collate (e->a) ? e->a : e->b;
         void *av[2], *bv[2];
         dj_expr_t ka, kb, cmp = *e;
         cx_collation_key (&ka, av, e->a, c);
         cx_collation_key (&kb, bv, e->b, c);
         cmp.a = &ka;
         cmp.b = &kb;
         ok = agg_truth (cx, &cmp, want, parent, key);
         break;
      }
      if (is_comparison (e)) {
         /* TRUE(a op b) = a, b not NULL and a op b; FALSE: not NULL and not (a op b) */
         if ((cx_is_const (e->a) && cx_const_is_null (cx, e->a)) || (cx_is_const (e->b) && cx_const_is_null (cx, e->b))) {
            ok = cx->error && cx->error->code ? false : agg_const_bool (parent, key, false);
            if (cx->error && cx->error->domain) {
               ok = false;
            }
            break;
         }
         /* a constant (not NULL, as seen above) needs no test */
         static const char *const tpl[2][2] = {
            {"{'$and': [{'$ne': ['@0', null]}, {'$ne': ['@1', null]}, {'@2': ['@3', '@4']}]}",
             "{'$and': [{'$ne': ['@0', null]}, {'@2': ['@3', '@4']}]}"},
            {"{'$and': [{'$ne': ['@1', null]}, {'@2': ['@3', '@4']}]}", "{'$and': [{'@2': ['@3', '@4']}]}"}};
         /* a DATETIME column or an exact datetime: [date, remainder] pairs (exact_dt.c) */
         bool dt = cx_dt_compared (cx, e->a, e->b);
         ok = cx_template (cx, tpl[cx_is_const (e->a)][cx_is_const (e->b)],
                           CX_ARGS (CX_OR_NULL (e->a), CX_OR_NULL (e->b), CX_STR (cmp_op (e->op, !want)),
                                    dt ? CX_FN (cx_dt_compare_operand, e->a) : CX_VALUE (e->a),
                                    dt ? CX_FN (cx_dt_compare_operand, e->b) : CX_VALUE (e->b)),
                           parent, key);
         break;
      }
      /* arithmetic as a condition: true when non-zero, as SQLite reads it */
      {
         dj_expr_t zero = {.kind = DJ_X_INT, .pos = e->pos};
         dj_expr_t ne = {.kind = DJ_X_BINARY, .op = DJ_OP_NE, .pos = e->pos, .a = (dj_expr_t *) e, .b = &zero};
         ok = cx_agg_truth (cx, &ne, want, parent, key);
      }
      break;
   case DJ_X_COLUMN:
   case DJ_X_PARAM:
   case DJ_X_FUNC:
   case DJ_X_CASE:
   case DJ_X_CAST:
   case DJ_X_SUBQUERY: {
      /* a value used as a condition: TRUE when it is true (a boolean) or a
       * non-zero number; FALSE when false or 0; NULL otherwise. */
      ok = cx_template (cx, want ? "{'$in': ['@0', [true, 1]]}" : "{'$in': ['@0', [false, 0]]}",
                        CX_ARGS (CX_VALUE (e)), parent, key);
      break;
   }
   case DJ_X_IN_LIST: {
      /* a IN (v1, v2, ...) = a = v1 OR a = v2 ...; NOT IN = NOT (that) */
      dj_expr_t **eqs = bson_malloc (sizeof (dj_expr_t *) * (size_t) e->args.n + 1);
      dj_expr_t *cells = bson_malloc0 (sizeof (dj_expr_t) * (size_t) e->args.n + 1);
      dj_expr_t orx = {.kind = DJ_X_OR, .pos = e->pos};
      for (int i = 0; i < e->args.n; i++) {
         cells[i] = (dj_expr_t){.kind = DJ_X_BINARY, .op = DJ_OP_EQ, .pos = e->pos, .a = e->a, .b = e->args.v[i]};
         eqs[i] = &cells[i];
      }
      orx.args.v = (void **) eqs;
      orx.args.n = e->args.n;
      bool w = (e->flags & DJ_XF_NOT) ? !want : want;
      ok = cx_agg_truth (cx, &orx, w, parent, key);
      bson_free (eqs);
      bson_free (cells);
      break;
   }
   case DJ_X_LIKE:
   case DJ_X_REGEX:
      ok = regex_truth (cx, e, want, false, parent, key);
      break;
   case DJ_X_IN_SELECT:
   case DJ_X_EXISTS:
      ok = agg_subquery_truth (cx, e, want, parent, key);
      break;
   default:
      ok = cx_unsupported (cx, e->pos, "this expression as a condition");
      break;
   }
   return ok;
}

bool
cx_agg_truth (cx_t *cx, const dj_expr_t *e, bool want, bson_t *parent, const char *key)
{
   return truth (cx, e, want, parent, key, cx_agg_truth, agg_truth);
}

/* ---- subqueries: results fetched by $lookup into "__dj_sq<i>" ---- */

static int
subquery_field (cx_t *cx, const dj_expr_t *e)
{
   for (int i = 0; i < cx->nsub; i++) {
      if (cx->subs[i] == e) {
         return i;
      }
   }
   return -1; /* no $lookup was prepared for it (see cx_subquery_lookups) */
}

/* (a, b) IN (SELECT x, y ...), the subquery's rows {c0, c1} in
 * "__dj_sq<i>": TRUE iff some row equals (a, b) -- each pair equal, neither
 * NULL -- and FALSE iff every row differs from it in some pair of non-NULL
 * values (none: FALSE too, NOT IN of no rows being TRUE); else NULL, as
 * SQL's row comparison under three-valued logic says. row = (SELECT ...)
 * (DJ_XF_ROW_EQ) compares with the first row alone, NULL when there is none. */
static bool
row_in_truth (cx_t *cx, const dj_expr_t *e, bool want, int i, bson_t *parent, const char *key)
{
   const dj_expr_t *row = e->a;
   bson_t pairs = BSON_INITIALIZER;
   bool ok = true;
   for (int j = 0; ok && j < row->args.n; j++) {
      char cell[24], k[16];
      snprintf (cell, sizeof cell, "$$r.c%d", j);
      snprintf (k, sizeof k, "%d", j);
      const cx_arg_t args[] = {CX_OR_NULL (row->args.v[j]), CX_STR (cell)};
      /* TRUE: both non-NULL and equal; FALSE: both non-NULL and different */
      ok = cx_template (cx,
                        want ? "{'$and': [{'$ne': ['@0', null]}, {'$ne': [{'$ifNull': ['@1', null]}, null]}, "
                               "{'$eq': ['@0', '@1']}]}"
                             : "{'$and': [{'$ne': ['@0', null]}, {'$ne': [{'$ifNull': ['@1', null]}, null]}, "
                               "{'$ne': ['@0', '@1']}]}",
                        CX_ARGV (args), &pairs, k);
   }
   char ref[32];
   snprintf (ref, sizeof ref, "$__dj_sq%d", i);
   if (e->flags & DJ_XF_ROW_EQ) {
      /* row = (SELECT ...): its first row only (SQLite's reading of a
       * subquery of several rows); none makes the comparison NULL */
      ok = ok && cx_template (cx,
                              want ? "{'$anyElementTrue': [{'$map': {'input': {'$slice': ['@0', 1]}, 'as': 'r', "
                                     "'in': {'$and': '@1'}}}]}"
                                   : "{'$and': [{'$gt': [{'$size': '@0'}, 0]}, {'$allElementsTrue': [{'$map': "
                                     "{'input': {'$slice': ['@0', 1]}, 'as': 'r', 'in': {'$or': '@1'}}}]}]}",
                              CX_ARGS (CX_STR (ref), CX_ARRAY (&pairs)), parent, key);
      bson_destroy (&pairs);
      return ok;
   }
   ok = ok && cx_template (cx,
                           want ? "{'$anyElementTrue': [{'$map': {'input': '@0', 'as': 'r', 'in': {'$and': '@1'}}}]}"
                                : "{'$allElementsTrue': [{'$map': {'input': '@0', 'as': 'r', 'in': {'$or': '@1'}}}]}",
                           CX_ARGS (CX_STR (ref), CX_ARRAY (&pairs)), parent, key);
   bson_destroy (&pairs);
   return ok;
}

static bool
agg_subquery_truth (cx_t *cx, const dj_expr_t *e, bool want, bson_t *parent, const char *key)
{
   int i = subquery_field (cx, e);
   char ref[48];
   bool w = (e->flags & DJ_XF_NOT) ? !want : want;
   if (i < 0) {
      return cx_unsupported (cx, e->pos, "%s subquery in this position", e->kind == DJ_X_EXISTS ? "EXISTS" : "IN");
   }
   if (e->kind == DJ_X_EXISTS) {
      /* EXISTS is never NULL: TRUE iff a row came back */
      snprintf (ref, sizeof ref, "$__dj_sq%d", i);
      return cx_template (cx, "{'@0': [{'$size': '@1'}, 0]}", CX_ARGS (CX_STR (w ? "$gt" : "$eq"), CX_STR (ref)), parent,
                          key);
   }
   if (e->a->kind == DJ_X_ROW) {
      return row_in_truth (cx, e, w, i, parent, key);
   }
   bool done; /* a datetime: its [date, remainder] among the rows' (exact_dt.c) */
   if (!cx_dt_in_subquery (cx, e, w, i, parent, key, &done) || done) {
      return done;
   }
   /* a IN (sub): TRUE iff a is not NULL and among the values;
    * FALSE iff a is not NULL, not among them, and no value is NULL. */
   snprintf (ref, sizeof ref, "$__dj_sq%d.c0", i);
   return cx_template (cx,
                       w ? "{'$and': [{'$ne': ['@0', null]}, {'$in': ['@1', '@2']}]}"
                         : "{'$and': [{'$ne': ['@0', null]}, {'$not': [{'$in': ['@1', '@2']}]}, "
                           "{'$not': [{'$in': [null, '@2']}]}]}",
                       CX_ARGS (CX_OR_NULL (e->a), CX_VALUE (e->a), CX_STR (ref)), parent, key);
}

/* ---- query filters ---- */

static bool
filter_never (bson_t *parent, const char *key)
{
   return cx_template (NULL, "{'$expr': false}", CX_NO_ARGS, parent, key);
}

static bool
filter_expr (cx_t *cx, const dj_expr_t *e, bool want, bson_t *parent, const char *key)
{
   return cx_template (cx, "{'$expr': '@0'}", CX_ARGS (CX_TRUTH (e, want)), parent, key);
}

/* {path: {op: v}}; op "$nin_null": FALSE(a = v), not v and not NULL. */
static bool
filter_field_op (cx_t *cx, const dj_expr_t *col, const char *op, const dj_expr_t *v, bson_t *parent, const char *key)
{
   char path[512];
   if (!cx_column_path (cx, col, path, sizeof path)) {
      return false;
   }
   return cx_template (cx,
                       !strcmp (op, "$nin_null") ? "{'@0': {'$nin': ['@2', null]}}"
                       : v                       ? "{'@0': {'@1': '@2'}}"
                                                 : "{'@0': {'@1': null}}",
                       CX_ARGS (CX_STR (path), CX_STR (op), CX_CONST (v)), parent, key);
}

/* Can a filter compare this column directly? Only real columns of the
 * current sources, outside a $group. */
static bool
filter_column (cx_t *cx, const dj_expr_t *e)
{
   return e->kind == DJ_X_COLUMN && !cx->group && strcmp (e->name, "*") && !cx_is_outer (cx, e);
}

/* djongo's MATCH_TEXT(search[, language]): the collection's text index
 * searched, {$text: {$search, $language}} -- a filter only, and only a
 * positive one (MongoDB has no negated $text).
 * https://www.mongodb.com/docs/manual/reference/operator/query/text/ */
static bool
text_filter (cx_t *cx, const dj_expr_t *e, bool want, bson_t *parent, const char *key)
{
   int n = e->args.n;
   if (!want || n < 1 || n > 2 || !cx_is_const (e->args.v[0]) || (n == 2 && !cx_is_const (e->args.v[1]))) {
      return cx_unsupported (cx, e->pos, "%s", !want ? "NOT MATCH_TEXT()" : "MATCH_TEXT() other than (search[, language]) values");
   }
   return n == 1 ? cx_template (cx, "{'$text': {'$search': '@0'}}", CX_ARGS (CX_CONST (e->args.v[0])), parent, key)
                 : cx_template (cx, "{'$text': {'$search': '@0', '$language': '@1'}}",
                                CX_ARGS (CX_CONST (e->args.v[0]), CX_CONST (e->args.v[1])), parent, key);
}

static bool
filter (cx_t *cx, const dj_expr_t *e, bool want, bson_t *parent, const char *key)
{
   bson_t d;
   cx_idx_t k;
   bool ok = true;

   switch (e->kind) {
   case DJ_X_BINARY: {
      const dj_expr_t *col = e->a, *val = e->b;
      dj_op_t op = e->op;
      if (is_comparison (e) && !filter_column (cx, col) && filter_column (cx, val) && cx_is_const (col)) {
         static const dj_op_t swapped[] = {DJ_OP_EQ, DJ_OP_NE, DJ_OP_GT, DJ_OP_GE, DJ_OP_LT, DJ_OP_LE};
         col = e->b;
         val = e->a;
         op = swapped[op];
      }
      if (!is_comparison (e) || !filter_column (cx, col) || !cx_is_const (val)) {
         ok = filter_expr (cx, e, want, parent, key);
         break;
      }
      bson_value_t tmp;
      const bson_value_t *v;
      if (!cx_const_peek (cx, val, &tmp, &v)) { /* (whether it is NULL: the type alone) */
         ok = false;
         break;
      }
      if (is_null_value (v)) {
         ok = filter_never (parent, key); /* a = NULL is never TRUE nor FALSE */
         break;
      }
      bool done;
      if (!(ok = cx_dt_filter (cx, col, op, want, val, parent, key, &done)) || done) {
         break; /* a DATETIME column: date and remainder (exact_dt.c) */
      }
      /* TRUE(a = v): {a: {$eq: v}} (never the {a: v} shorthand: v may be a
       * document that looks like operators). FALSE(a = v): {a: {$nin: [v, null]}}. */
      const char *mop;
      if (op == DJ_OP_EQ) {
         mop = want ? "$eq" : "$nin_null";
      } else if (op == DJ_OP_NE) {
         mop = want ? "$nin_null" : "$eq";
      } else {
         mop = cmp_op (op, !want);
      }
      ok = filter_field_op (cx, col, mop, val, parent, key);
      break;
   }
   case DJ_X_IS_NULL:
      if (!filter_column (cx, e->a)) {
         ok = filter_expr (cx, e, want, parent, key);
         break;
      }
      {
         bool want_null = ((e->flags & DJ_XF_NOT) == 0) == want;
         /* {a: {$eq: null}} matches NULL and missing fields alike */
         ok = filter_field_op (cx, e->a, want_null ? "$eq" : "$ne", NULL, parent, key);
      }
      break;
   case DJ_X_IN_LIST: {
      bool w = (e->flags & DJ_XF_NOT) ? !want : want;
      bool all_const = filter_column (cx, e->a);
      for (int i = 0; all_const && i < e->args.n; i++) {
         all_const = cx_is_const (e->args.v[i]);
      }
      if (!all_const) {
         ok = filter_expr (cx, e, want, parent, key);
         break;
      }
      bool done;
      if (!(ok = cx_dt_in_filter (cx, e, want, parent, key, &done)) || done) {
         break;
      }
      /* TRUE: {a: {$in: non-null values}}. FALSE: no NULL in the list and
       * {a: {$nin: values + [null]}}. */
      bool has_null = false;
      for (int i = 0; ok && i < e->args.n; i++) {
         has_null |= cx_const_is_null (cx, e->args.v[i]);
         ok = !(cx->error && cx->error->domain);
      }
      if (!ok) {
         break;
      }
      if (!w && has_null) {
         ok = filter_never (parent, key);
         break;
      }
      char path[512];
      bson_t f, vals;
      if (!cx_column_path (cx, e->a, path, sizeof path)) {
         ok = false;
         break;
      }
      BSON_APPEND_DOCUMENT_BEGIN (parent, key, &d);
      BSON_APPEND_DOCUMENT_BEGIN (&d, path, &f);
      BSON_APPEND_ARRAY_BEGIN (&f, w ? "$in" : "$nin", &vals);
      uint32_t j = 0;
      for (int i = 0; ok && i < e->args.n; i++) {
         if (!cx_const_is_null (cx, e->args.v[i])) {
            ok = cx_append_const (cx, e->args.v[i], &vals, cx_idx (&k, j++));
         }
      }
      if (!w) {
         BSON_APPEND_NULL (&vals, cx_idx (&k, j++));
      }
      bson_append_array_end (&f, &vals);
      bson_append_document_end (&d, &f);
      bson_append_document_end (parent, &d);
      break;
   }
   case DJ_X_LIKE:
   case DJ_X_REGEX:
      ok = filter_column (cx, e->a) && cx_is_const (e->b) ? regex_truth (cx, e, want, true, parent, key)
                                                          : filter_expr (cx, e, want, parent, key);
      break;
   case DJ_X_BOOL:
      if ((e->ival != 0) == want) {
         ok = cx_template (cx, "{}", CX_NO_ARGS, parent, key);
      } else {
         ok = filter_never (parent, key);
      }
      break;
   case DJ_X_COLUMN:
      if (filter_column (cx, e)) {
         /* a boolean column as the condition: WHERE "flag" */
         dj_expr_t t = {.kind = DJ_X_BOOL, .ival = 1, .pos = e->pos};
         ok = filter_field_op (cx, e, "$eq", want ? &t : &(dj_expr_t){.kind = DJ_X_BOOL, .ival = 0}, parent, key);
         break;
      }
      /* fall through */
   default:
      ok = cx_geo_is_predicate (e)                                   ? cx_geo_filter (cx, e, want, parent, key)
           : e->kind == DJ_X_FUNC && !strcmp (e->name, "MATCH_TEXT") ? text_filter (cx, e, want, parent, key)
                                                                      : filter_expr (cx, e, want, parent, key);
      break;
   }
   return ok;
}

bool
cx_filter (cx_t *cx, const dj_expr_t *e, bool want, bson_t *parent, const char *key)
{
   return truth (cx, e, want, parent, key, cx_filter, filter);
}

bool
cx_agg_count_one (cx_t *cx, const dj_expr_t *x, bson_t *parent, const char *key)
{
   dj_expr_t isnull = {.kind = DJ_X_IS_NULL, .pos = x ? x->pos : 0, .a = (dj_expr_t *) x};
   return cx_template (cx, "{'$cond': ['@0', 0, 1]}", CX_ARGS (CX_TRUTH (&isnull, true)), parent, key);
}

bool
cx_append_null_if_none (bson_t *parent, const char *key, const char *value_ref, const char *count_ref)
{
   return cx_template (NULL, "{'$cond': [{'$gt': ['@0', 0]}, '@1', null]}", CX_ARGS (CX_STR (count_ref), CX_STR (value_ref)),
                       parent, key);
}
