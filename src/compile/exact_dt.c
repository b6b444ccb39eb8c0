/*
 * exact_dt.c -- datetimes to the microsecond (dj_compile.h says how they
 * are stored: a BSON date floored to the millisecond, and the remainder
 * 1..999 in the sibling field "<column>__us", absent when 0).
 *
 * What is exact, and how:
 *   - values written: a parameter with microseconds below the millisecond
 *     (an exact datetime, binary subtype 0x80) is stored as the pair by
 *     INSERT, UPDATE SET and computed INSERT values; UPDATE SET of a
 *     DATETIME column to anything else removes the remainder, or copies
 *     another DATETIME column's;
 *   - filters: a DATETIME column compared with a date (=, <>, <, <=, >, >=,
 *     IN, BETWEEN) compares the pair; each branch keeps a condition on the
 *     column itself, so its index still serves the query;
 *   - aggregation comparisons ($expr: column vs column, join conditions)
 *     compare [date, remainder] arrays, which MongoDB orders element by
 *     element;
 *   - ORDER BY a DATETIME column sorts by the remainder next;
 *   - an expression's remainder (cx_dt_rem) travels beside its value: a
 *     SELECT item brings it along (the executor makes the cell an exact
 *     datetime), ORDER BY sorts by it next, GROUP BY groups by it, MIN/MAX
 *     keep the extreme pair, joins, IN (subquery), scalar subqueries and
 *     correlated references (a `let` variable) compare it;
 *   - datetime +/- microseconds and datetime - datetime are functions of
 *     their own (DATETIME_ADD_US, US_ADD_DATETIME, DATETIME_DIFF_US), and
 *     TIME_OF_DAY writes the six digits.
 *   - a window's ORDER BY / PARTITION BY keys are {date, remainder}
 *     documents (cx_dt_key).
 * Anything else that reads a DATETIME column (a window function's value,
 * other functions and casts, generated columns) reads its BSON date: the
 * millisecond.
 *
 * Why a remainder and not the whole instant in microseconds: the column
 * stays a BSON date, so mongosh, Compass, mongodump, TTL indexes and every
 * $date operator see the right instant to the millisecond, and data written
 * by other tools (no remainder) reads as it is.
 *
 * Query operators: https://www.mongodb.com/docs/manual/reference/operator/query/not/
 * ({field: {$not: {$gt: r}}} also matches documents without the field,
 * which is remainder 0); comparison order of arrays in expressions:
 * https://www.mongodb.com/docs/manual/reference/bson-type-comparison-order/
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "compile-private.h"

/* ---- the value form (dj_compile.h) ---- */

bool
dj_exact_dt_value (const bson_value_t *v, int64_t *us)
{
   if (v->value_type != BSON_TYPE_BINARY || v->value.v_binary.subtype != DJ_EXACT_DT_SUBTYPE ||
       v->value.v_binary.data_len != 8) {
      return false;
   }
   uint64_t u = 0;
   for (int i = 7; i >= 0; i--) {
      u = (u << 8) | v->value.v_binary.data[i];
   }
   *us = (int64_t) u;
   return true;
}

void
dj_exact_dt_split (int64_t us, int64_t *ms, int32_t *rem)
{
   int64_t m = us / 1000, r = us % 1000;
   if (r < 0) { /* floor: before 1970 the remainder is still 0..999 */
      r += 1000;
      m -= 1;
   }
   *ms = m;
   *rem = (int32_t) r;
}

bool
dj_exact_dt_append (bson_t *b, const char *key, int64_t us)
{
   int64_t ms;
   int32_t rem;
   dj_exact_dt_split (us, &ms, &rem);
   if (!rem) {
      return bson_append_date_time (b, key, -1, ms);
   }
   uint8_t data[8];
   for (int i = 0; i < 8; i++) {
      data[i] = (uint8_t) ((uint64_t) us >> (8 * i));
   }
   return bson_append_binary (b, key, -1, DJ_EXACT_DT_SUBTYPE, data, 8);
}

/* v under key: an exact datetime as its date, and (with_rem) its
 * remainder under "<key>__us" when not 0; anything else as it is */
static bool
append_value (bson_t *b, const char *key, const bson_value_t *v, bool with_rem)
{
   int64_t us, ms;
   int32_t rem;
   if (!dj_exact_dt_value (v, &us)) {
      return bson_append_value (b, key, -1, v);
   }
   dj_exact_dt_split (us, &ms, &rem);
   char *sib = bson_strdup_printf ("%s" DJ_US_SUFFIX, key);
   bool ok = bson_append_date_time (b, key, -1, ms) && (!with_rem || !rem || bson_append_int32 (b, sib, -1, rem));
   bson_free (sib);
   return ok;
}

bool
dj_exact_dt_store (bson_t *b, const char *key, const bson_value_t *v)
{
   return append_value (b, key, v, true);
}

/* ---- which columns ---- */

bool
cx_dt_column (cx_t *cx, const dj_expr_t *e)
{
   if (e->kind != DJ_X_COLUMN || !cx->catalog || !cx->catalog->is_datetime || strchr (e->name, '.') ||
       !strcmp (e->name, "*") || cx->group || cx_is_outer (cx, e)) {
      return false;
   }
   const char *table = cx_column_table (cx, e);
   return table && cx->catalog->is_datetime (cx->catalog->ctx, table, e->name);
}

/* A constant's date and remainder: *is_dt false when it is not a date. */
static bool
const_dt (cx_t *cx, const dj_expr_t *e, bool *is_dt, int64_t *ms, int32_t *rem)
{
   bson_value_t tmp;
   const bson_value_t *v;
   int64_t us;
   *is_dt = false;
   if (!cx_const_value (cx, e, &tmp, &v)) {
      return false;
   }
   if (v->value_type == BSON_TYPE_DATE_TIME) {
      *is_dt = true;
      *ms = v->value.v_datetime;
      *rem = 0;
   } else if (dj_exact_dt_value (v, &us)) {
      *is_dt = true;
      dj_exact_dt_split (us, ms, rem);
   }
   return true;
}

/* Whether e is a constant holding an exact datetime. */
static bool
is_exact_const (cx_t *cx, const dj_expr_t *e)
{
   bson_value_t tmp;
   const bson_value_t *v;
   int64_t us;
   return cx_is_const (e) && cx_const_peek (cx, e, &tmp, &v) && dj_exact_dt_value (v, &us); /* (the type alone) */
}

/* ---- filters ---- */

/* The remainder's condition for each operator (r its value): the field
 * absent is remainder 0. */
static bool
rem_cond (dj_op_t op, int32_t r, bson_t *parent, const char *key)
{
   bson_t c, n;
   bson_append_document_begin (parent, key, -1, &c);
   switch (op) {
   case DJ_OP_EQ:
      if (r) {
         BSON_APPEND_INT32 (&c, "$eq", r);
      } else {
         BSON_APPEND_DOCUMENT_BEGIN (&c, "$not", &n);
         BSON_APPEND_INT32 (&n, "$gt", 0);
         bson_append_document_end (&c, &n);
      }
      break;
   case DJ_OP_NE:
      if (r) {
         BSON_APPEND_INT32 (&c, "$ne", r);
      } else {
         BSON_APPEND_INT32 (&c, "$gt", 0);
      }
      break;
   case DJ_OP_LT: case DJ_OP_LE:
      BSON_APPEND_DOCUMENT_BEGIN (&c, "$not", &n);
      BSON_APPEND_INT32 (&n, op == DJ_OP_LT ? "$gte" : "$gt", r);
      bson_append_document_end (&c, &n);
      break;
   default:
      BSON_APPEND_INT32 (&c, op == DJ_OP_GT ? "$gt" : "$gte", r);
      break;
   }
   return bson_append_document_end (parent, &c);
}

bool
cx_dt_filter (cx_t *cx, const dj_expr_t *col, dj_op_t op, bool want, const dj_expr_t *val, bson_t *parent,
              const char *key, bool *done)
{
   static const dj_op_t negated[] = {DJ_OP_NE, DJ_OP_EQ, DJ_OP_GE, DJ_OP_GT, DJ_OP_LE, DJ_OP_LT};
   bool is_dt;
   int64_t ms;
   int32_t r;
   char path[512], upath[520];
   *done = false;
   if (!cx_dt_column (cx, col) && !is_exact_const (cx, val)) {
      return true;
   }
   /* (another column compared with an exact datetime: its remainder
    * field is absent, i.e. 0, and the pair forms below stay exact) */
   if (!const_dt (cx, val, &is_dt, &ms, &r)) {
      return false;
   }
   if (!is_dt) {
      return true;
   }
   if (!cx_column_path (cx, col, path, sizeof path)) {
      return false;
   }
   *done = true;
   snprintf (upath, sizeof upath, "%s" DJ_US_SUFFIX, path);
   /* FALSE(c op v) is TRUE(c negated-op v): every form below is false
    * for a NULL or missing c already (a date compares only with dates) */
   if (!want) {
      op = negated[op];
   }
   bson_t f, or, b, c;
   bson_append_document_begin (parent, key, -1, &f);
   if ((op == DJ_OP_LT || op == DJ_OP_GE) && !r) {
      /* c < d.000 and c >= d.000 need no remainder */
      BSON_APPEND_DOCUMENT_BEGIN (&f, path, &c);
      bson_append_date_time (&c, op == DJ_OP_LT ? "$lt" : "$gte", -1, ms);
      bson_append_document_end (&f, &c);
   } else if (op == DJ_OP_EQ) {
      BSON_APPEND_DOCUMENT_BEGIN (&f, path, &c);
      bson_append_date_time (&c, "$eq", -1, ms);
      bson_append_document_end (&f, &c);
      rem_cond (op, r, &f, upath);
   } else {
      /* {$or: [{c: {<strict op>: d}}, {c: d, c__us: <op> r}]} (<>: any
       * other date) */
      static const char *const strict[] = {NULL, NULL, "$lt", "$lt", "$gt", "$gt"};
      BSON_APPEND_ARRAY_BEGIN (&f, "$or", &or);
      BSON_APPEND_DOCUMENT_BEGIN (&or, "0", &b);
      BSON_APPEND_DOCUMENT_BEGIN (&b, path, &c);
      if (op == DJ_OP_NE) { /* (not NULL either) */
         bson_t nin;
         BSON_APPEND_ARRAY_BEGIN (&c, "$nin", &nin);
         bson_append_date_time (&nin, "0", 1, ms);
         BSON_APPEND_NULL (&nin, "1");
         bson_append_array_end (&c, &nin);
      } else {
         bson_append_date_time (&c, strict[op], -1, ms);
      }
      bson_append_document_end (&b, &c);
      bson_append_document_end (&or, &b);
      BSON_APPEND_DOCUMENT_BEGIN (&or, "1", &b);
      BSON_APPEND_DOCUMENT_BEGIN (&b, path, &c);
      bson_append_date_time (&c, "$eq", -1, ms);
      bson_append_document_end (&b, &c);
      rem_cond (op, r, &b, upath);
      bson_append_document_end (&or, &b);
      bson_append_array_end (&f, &or);
   }
   return bson_append_document_end (parent, &f);
}

bool
cx_dt_in_filter (cx_t *cx, const dj_expr_t *e, bool want, bson_t *parent, const char *key, bool *done)
{
   *done = false;
   bool exact = false;
   for (int i = 0; i < e->args.n && !exact; i++) {
      exact = is_exact_const (cx, e->args.v[i]);
   }
   if (!exact && !cx_dt_column (cx, e->a)) {
      return true;
   }
   /* a IN (x, y) is a = x OR a = y under three-valued logic, NOT IN the
    * AND of <>: each compared as a pair */
   bool neg = (e->flags & DJ_XF_NOT) != 0;
   int n = e->args.n;
   dj_expr_t *cmps = bson_malloc0 (sizeof *cmps * (size_t) (n ? n : 1));
   void **v = bson_malloc (sizeof *v * (size_t) (n ? n : 1));
   for (int i = 0; i < n; i++) {
      cmps[i] = (dj_expr_t) {.kind = DJ_X_BINARY, .op = neg ? DJ_OP_NE : DJ_OP_EQ, .pos = e->pos, .a = e->a, .b = e->args.v[i]};
      v[i] = &cmps[i];
   }
   dj_expr_t list = {.kind = neg ? DJ_X_AND : DJ_X_OR, .pos = e->pos, .args = {.v = v, .n = n}};
   bool ok = n < 2 ? cx_filter (cx, n ? &cmps[0] : &(dj_expr_t) {.kind = DJ_X_BOOL, .ival = neg}, want, parent, key)
                   : cx_filter (cx, &list, want, parent, key);
   *done = true;
   bson_free (v);
   bson_free (cmps);
   return ok;
}

/* ---- aggregation comparisons ---- */

/* ---- remainders of expressions ----
 *
 * An expression's aggregation value (cx_agg_value) is its BSON date: an
 * exact datetime constant reads as its millisecond there too (expr.c,
 * cx_append_const). Its remainder, when it may have one, is a second
 * expression (cx_dt_rem), which the SELECT list projects beside the value
 * and comparisons pair with it. */

static bool is_exact_const (cx_t *cx, const dj_expr_t *e);

static bool
is_func (const dj_expr_t *e, const char *name)
{
   return e->kind == DJ_X_FUNC && !e->over && !strcmp (e->name, name);
}

static bool
cast_to_datetime (const dj_expr_t *e)
{
   return e->kind == DJ_X_CAST && (!strncasecmp (e->name, "DATETIME", 8) || !strncasecmp (e->name, "TIMESTAMP", 9));
}

static bool pair (cx_t *cx, const dj_expr_t *e, bson_t *parent, const char *key);

/* The "__dj_sq<i>" of subquery e, or -1 (expr.c's subquery_field) */
static int
sub_index (cx_t *cx, const dj_expr_t *e)
{
   for (int i = 0; i < cx->nsub; i++) {
      if (cx->subs[i] == e) {
         return i;
      }
   }
   return -1;
}

/* After $group: the GROUP BY key (*key = i) or MIN/MAX aggregate (*agg =
 * i) e is, when it has a remainder (judged before the $group), else -1. */
static void
grouped (cx_t *cx, const dj_expr_t *e, int *key, int *agg)
{
   cx_group_t *g = cx->group;
   *key = *agg = -1;
   cx->group = NULL;
   for (int i = 0; g->keys && i < g->keys->n && *key < 0; i++) {
      if (cx_expr_equal (g->keys->v[i], e) && cx_dt_has_rem (cx, g->keys->v[i])) {
         *key = i;
      }
   }
   for (int i = 0; i < g->aggs.n && *key < 0 && *agg < 0; i++) {
      const dj_expr_t *a = g->aggs.v[i];
      if (cx_expr_equal (a, e) && (!strcmp (a->name, "MIN") || !strcmp (a->name, "MAX")) && a->args.n == 1 &&
          !(a->flags & DJ_XF_DISTINCT) && !a->filter && cx_dt_has_rem (cx, a->args.v[0])) {
         *agg = i;
      }
   }
   cx->group = g;
}

bool
cx_dt_group_key (cx_t *cx, const dj_expr_t *e, bson_t *id, const char *key)
{
   if (!cx_dt_has_rem (cx, e)) {
      return true;
   }
   /* one group per [date, remainder]: the remainder is a key too */
   char *k = bson_strdup_printf ("%s" DJ_US_SUFFIX, key);
   bool ok = cx_dt_rem (cx, e, id, k);
   bson_free (k);
   return ok;
}

bool
cx_dt_group_acc (cx_t *cx, const dj_expr_t *e, int i, bson_t *group)
{
   if ((strcmp (e->name, "MIN") && strcmp (e->name, "MAX")) || e->args.n != 1 || (e->flags & DJ_XF_DISTINCT) ||
       e->filter || !cx_dt_has_rem (cx, e->args.v[0])) {
      return true;
   }
   /* a<i>__p: the least/greatest [date, remainder] of the non-NULL inputs
    * (the accumulators skip NULL) */
   char field[32];
   snprintf (field, sizeof field, "a%d__p", i);
   dj_expr_t isnull = {.kind = DJ_X_IS_NULL, .pos = e->pos, .a = e->args.v[0]};
   return cx_template (cx, "{'@0': {'$cond': ['@1', null, '@2']}}",
                       CX_ARGS (CX_STR (strcmp (e->name, "MIN") ? "$max" : "$min"), CX_TRUTH (&isnull, true),
                                CX_FN (pair, e->args.v[0])),
                       group, field);
}

bool
cx_dt_has_rem (cx_t *cx, const dj_expr_t *e)
{
   if (!e) {
      return false;
   }
   cx_t *o = cx_outer_query (cx, e);
   if (o) { /* a correlated reference: as its own query reads it */
      return cx_dt_has_rem (o, e);
   }
   if (e->kind == DJ_X_SUBQUERY) { /* a scalar subquery whose rows carry c0__us */
      return sub_index (cx, e) >= 0 && (cx->sub_us >> sub_index (cx, e) & 1);
   }
   if (cx->group) {
      int key, agg;
      grouped (cx, e, &key, &agg);
      return key >= 0 || agg >= 0;
   }
   if (cx_dt_column (cx, e) || is_exact_const (cx, e) || is_func (e, "DATETIME_ADD_US") || is_func (e, "US_ADD_DATETIME")) {
      return true;
   }
   if (cast_to_datetime (e)) {
      return cx_dt_has_rem (cx, e->a);
   }
   if (is_func (e, "COALESCE") || is_func (e, "IFNULL") || is_func (e, "GREATEST") || is_func (e, "LEAST")) {
      for (int i = 0; i < e->args.n; i++) {
         if (cx_dt_has_rem (cx, e->args.v[i])) {
            return true;
         }
      }
      return false;
   }
   if (e->kind == DJ_X_CASE) {
      for (int i = 1; i < e->args.n; i += 2) {
         if (cx_dt_has_rem (cx, e->args.v[i])) {
            return true;
         }
      }
      return cx_dt_has_rem (cx, e->b);
   }
   return false;
}

/* A constant remainder: {$literal: r} (a bare number in $project would
 * read as an inclusion flag) */
static bool
rem_const (bson_t *parent, const char *key, int32_t r)
{
   bson_t d;
   BSON_APPEND_DOCUMENT_BEGIN (parent, key, &d);
   BSON_APPEND_INT32 (&d, "$literal", r);
   return bson_append_document_end (parent, &d);
}

/* COALESCE's remainder: the first non-NULL argument's */
static bool
rem_coalesce (cx_t *cx, const dj_expr_t *e, int from, bson_t *parent, const char *key)
{
   if (from == e->args.n - 1) {
      return cx_dt_rem (cx, e->args.v[from], parent, key);
   }
   bson_t d, arr;
   BSON_APPEND_DOCUMENT_BEGIN (parent, key, &d);
   BSON_APPEND_ARRAY_BEGIN (&d, "$cond", &arr);
   bool ok = cx_agg_isnull (cx, e->args.v[from], false, &arr, "0") && cx_dt_rem (cx, e->args.v[from], &arr, "1") &&
             rem_coalesce (cx, e, from + 1, &arr, "2");
   bson_append_array_end (&d, &arr);
   return bson_append_document_end (parent, &d) && ok;
}

/* GREATEST/LEAST's remainder: the second of the largest/smallest
 * [value, remainder] pair among the non-NULL arguments (MongoDB's $max
 * and $min skip NULLs, and so do these) */
static bool
rem_extreme (cx_t *cx, const dj_expr_t *e, bson_t *parent, const char *key)
{
   bson_t pairs = BSON_INITIALIZER;
   cx_idx_t k;
   bool ok = true;
   for (int i = 0; ok && i < e->args.n; i++) {
      ok = pair (cx, e->args.v[i], &pairs, cx_idx (&k, (uint32_t) i));
   }
   ok = ok && cx_template (cx,
                           "{'$ifNull': [{'$arrayElemAt': [{'@0': {'$filter': {'input': '@1', "
                           "'cond': {'$ne': [{'$arrayElemAt': ['$$this', 0]}, null]}}}}, 1]}, 0]}",
                           CX_ARGS (CX_STR (is_func (e, "GREATEST") ? "$max" : "$min"), CX_ARRAY (&pairs)), parent, key);
   bson_destroy (&pairs);
   return ok;
}

/* CASE's remainder: the chosen branch's */
static bool
rem_case (cx_t *cx, const dj_expr_t *e, bson_t *parent, const char *key)
{
   bson_t d, sw, br, b;
   cx_idx_t k;
   bool ok = true;
   BSON_APPEND_DOCUMENT_BEGIN (parent, key, &d);
   BSON_APPEND_DOCUMENT_BEGIN (&d, "$switch", &sw);
   BSON_APPEND_ARRAY_BEGIN (&sw, "branches", &br);
   for (int i = 0; ok && i + 1 < e->args.n; i += 2) {
      const dj_expr_t *when = e->args.v[i];
      dj_expr_t eq = {.kind = DJ_X_BINARY, .op = DJ_OP_EQ, .pos = when->pos, .a = e->a, .b = (dj_expr_t *) when};
      BSON_APPEND_DOCUMENT_BEGIN (&br, cx_idx (&k, (uint32_t) i / 2), &b);
      ok = cx_agg_truth (cx, e->a ? &eq : when, true, &b, "case") && cx_dt_rem (cx, e->args.v[i + 1], &b, "then");
      bson_append_document_end (&br, &b);
   }
   bson_append_array_end (&sw, &br);
   ok = ok && (e->b ? cx_dt_rem (cx, e->b, &sw, "default") : rem_const (&sw, "default", 0));
   bson_append_document_end (&d, &sw);
   return bson_append_document_end (parent, &d) && ok;
}

bool
cx_dt_rem (cx_t *cx, const dj_expr_t *e, bson_t *parent, const char *key)
{
   bool is_dt;
   int64_t ms;
   int32_t r = 0;
   if (!cx_dt_has_rem (cx, e)) {
      return rem_const (parent, key, 0);
   }
   if (cx_outer_query (cx, e)) {
      /* a correlated reference: its remainder is a `let` variable too */
      return cx_outer_let (cx, e, cx_dt_rem, parent, key);
   }
   if (e->kind == DJ_X_SUBQUERY) {
      /* the first row's (expr.c: a scalar subquery's value) */
      char ref[32];
      snprintf (ref, sizeof ref, "$__dj_sq%d", sub_index (cx, e));
      return cx_template (cx, "{'$let': {'vars': {'r': {'$arrayElemAt': ['@0', 0]}}, 'in': {'$ifNull': ['$$r.c0__us', 0]}}}",
                          CX_ARGS (CX_STR (ref)), parent, key);
   }
   if (cx->group) {
      int gk, ga;
      char ref[48];
      grouped (cx, e, &gk, &ga);
      if (gk >= 0) {
         snprintf (ref, sizeof ref, "$_id.k%d" DJ_US_SUFFIX, gk);
         return cx_template (cx, "{'$ifNull': ['@0', 0]}", CX_ARGS (CX_STR (ref)), parent, key);
      }
      snprintf (ref, sizeof ref, "$a%d__p", ga);
      return cx_template (cx, "{'$ifNull': [{'$arrayElemAt': ['@0', 1]}, 0]}", CX_ARGS (CX_STR (ref)), parent, key);
   }
   if (cx_is_const (e)) {
      return const_dt (cx, e, &is_dt, &ms, &r) && rem_const (parent, key, r);
   }
   if (cx_dt_column (cx, e)) {
      char path[512];
      if (!cx_column_path (cx, e, path, sizeof path)) {
         return false;
      }
      char *ref = bson_strdup_printf ("$%s" DJ_US_SUFFIX, path);
      bool ok = cx_template (cx, "{'$ifNull': ['@0', 0]}", CX_ARGS (CX_STR (ref)), parent, key);
      bson_free (ref);
      return ok;
   }
   if (cast_to_datetime (e)) {
      return cx_dt_rem (cx, e->a, parent, key);
   }
   if (is_func (e, "COALESCE") || is_func (e, "IFNULL")) {
      return rem_coalesce (cx, e, 0, parent, key);
   }
   if (is_func (e, "GREATEST") || is_func (e, "LEAST")) {
      return rem_extreme (cx, e, parent, key);
   }
   if (is_func (e, "US_ADD_DATETIME") && e->args.n == 2) {
      void *argv[2] = {e->args.v[1], e->args.v[0]};
      dj_expr_t call = *e;
      call.name = "DATETIME_ADD_US";
      call.args.v = argv;
      return cx_dt_rem (cx, &call, parent, key);
   }
   if (is_func (e, "DATETIME_ADD_US") && e->args.n == 2) {
      /* ((rem + us) mod 1000), floored: 0..999 */
      return cx_template (cx,
                          "{'$ifNull': [{'$mod': [{'$add': [{'$mod': [{'$add': ['@0', {'$toLong': '@1'}]}, 1000]}, 1000]}, "
                          "1000]}, 0]}",
                          CX_ARGS (CX_FN (cx_dt_rem, e->args.v[0]), CX_VALUE (e->args.v[1])), parent, key);
   }
   if (e->kind == DJ_X_CASE) {
      return rem_case (cx, e, parent, key);
   }
   return rem_const (parent, key, 0);
}

bool
cx_dt_key (cx_t *cx, const dj_expr_t *e, bson_t *parent, const char *key)
{
   if (!cx_dt_has_rem (cx, e)) {
      return cx_agg_value_or_null (cx, e, parent, key);
   }
   return cx_template (cx, "{'$cond': [{'$eq': ['@0', null]}, null, {'d': '@1', 'r': '@2'}]}",
                       CX_ARGS (CX_OR_NULL (e), CX_VALUE (e), CX_FN (cx_dt_rem, e)), parent, key);
}

/* parent[key] = e's remainder, or $$REMOVE (no field, in $project and
 * $set) when it is 0 */
static bool
rem_or_remove (cx_t *cx, const dj_expr_t *e, bson_t *parent, const char *key)
{
   return cx_template (cx, "{'$let': {'vars': {'r': '@0'}, 'in': {'$cond': [{'$eq': ['$$r', 0]}, '$$REMOVE', '$$r']}}}",
                       CX_ARGS (CX_FN (cx_dt_rem, e)), parent, key);
}

/* e as [value, remainder] for a comparison (0 for what has none) */
static bool
pair (cx_t *cx, const dj_expr_t *e, bson_t *parent, const char *key)
{
   bson_t arr;
   BSON_APPEND_ARRAY_BEGIN (parent, key, &arr);
   bool ok = cx_agg_value (cx, e, &arr, "0") && cx_dt_rem (cx, e, &arr, "1");
   return bson_append_array_end (parent, &arr) && ok;
}

bool
cx_dt_compared (cx_t *cx, const dj_expr_t *a, const dj_expr_t *b)
{
   return cx_dt_has_rem (cx, a) || cx_dt_has_rem (cx, b);
}

bool
cx_dt_compare_operand (cx_t *cx, const dj_expr_t *e, bson_t *parent, const char *key)
{
   return pair (cx, e, parent, key);
}

bool
cx_dt_in_subquery (cx_t *cx, const dj_expr_t *e, bool w, int i, bson_t *parent, const char *key, bool *done)
{
   *done = false;
   if (!cx_dt_has_rem (cx, e->a)) {
      return true;
   }
   *done = true;
   char rows[32], vals[40];
   snprintf (rows, sizeof rows, "$__dj_sq%d", i);
   snprintf (vals, sizeof vals, "$__dj_sq%d.c0", i);
   /* the rows as pairs (a subquery's c0__us: cx_dt_project_rem, absent when 0) */
   bson_t pairs = BSON_INITIALIZER;
   bool ok = cx_template (cx, "{'$map': {'input': '@0', 'as': 'r', 'in': ['$$r.c0', {'$ifNull': ['$$r.c0__us', 0]}]}}",
                          CX_ARGS (CX_STR (rows)), &pairs, "p");
   bson_iter_t it;
   bson_t p;
   uint32_t len;
   const uint8_t *data;
   ok = ok && bson_iter_init_find (&it, &pairs, "p") && BSON_ITER_HOLDS_DOCUMENT (&it);
   if (ok) {
      bson_iter_document (&it, &len, &data);
      bson_init_static (&p, data, len);
      ok = cx_template (cx,
                        w ? "{'$and': [{'$ne': ['@0', null]}, {'$in': ['@1', '@2']}]}"
                          : "{'$and': [{'$ne': ['@0', null]}, {'$not': [{'$in': ['@1', '@2']}]}, "
                            "{'$not': [{'$in': [null, '@3']}]}]}",
                        CX_ARGS (CX_OR_NULL (e->a), CX_FN (pair, e->a), CX_DOC (&p), CX_STR (vals)), parent, key);
   }
   bson_destroy (&pairs);
   return ok;
}

/* ---- results and ORDER BY ---- */

bool
cx_dt_project_rem (cx_t *cx, const dj_expr_t *e, bson_t *proj, const char *key, bool *added)
{
   *added = false;
   if (!cx_dt_has_rem (cx, e)) {
      return true;
   }
   cx->c0_us |= !strcmp (key, "c0"); /* (a subquery's value: cx_dt_rem reads it) */
   /* absent when 0, as stored: rows compare whole (DISTINCT, UNION) alike
    * whether their remainder is 0 or they have none */
   char *k = bson_strdup_printf ("%s" DJ_US_SUFFIX, key);
   bool ok = rem_or_remove (cx, e, proj, k);
   bson_free (k);
   *added = ok;
   return ok;
}

bool
cx_dt_append_query_value (bson_t *parent, const char *key, const bson_value_t *v)
{
   return append_value (parent, key, v, false);
}

void
cx_dt_find_project (cx_t *cx, const dj_expr_t *e, bson_t *proj, const char *path)
{
   if (!cx_dt_column (cx, e)) {
      return;
   }
   char *upath = bson_strdup_printf ("%s" DJ_US_SUFFIX, path);
   if (!bson_has_field (proj, upath)) {
      BSON_APPEND_INT32 (proj, upath, 1);
   }
   bson_free (upath);
   cx_dt_mark_column (cx);
}

void
cx_dt_sort_key (cx_t *cx, const dj_select_t *s, int ref, const dj_order_t *o, bson_t *sort, const char *key)
{
   /* (projected beside the key; absent after a $group, which sorts the
    * same; a compound's ORDER BY names the result's columns: not here) */
   const dj_expr_t *e = ref < 0 ? o->expr : ref < s->items.n ? ((const dj_item_t *) s->items.v[ref])->expr : NULL;
   if (!s->next && e && cx_dt_has_rem (cx, e)) {
      cx_dt_sort_rem (sort, key, o->desc ? -1 : 1);
   }
}

uint64_t
cx_dt_items_us (cx_t *cx, const dj_select_t *s)
{
   uint64_t us = 0;
   for (int i = 0; i < s->items.n && i < 64; i++) {
      if (cx_dt_has_rem (cx, ((const dj_item_t *) s->items.v[i])->expr)) {
         us |= (uint64_t) 1 << i;
      }
   }
   return us;
}

void
cx_dt_row_rem (bson_t *id, int i, uint64_t us)
{
   char key[24], ref[24];
   if (i < 64 && (us >> i & 1)) {
      snprintf (key, sizeof key, "c%d" DJ_US_SUFFIX, i);
      snprintf (ref, sizeof ref, "$c%d" DJ_US_SUFFIX, i);
      BSON_APPEND_UTF8 (id, key, ref);
   }
}

void
cx_dt_mark_column (cx_t *cx)
{
   if (cx->out && cx->out->ncolumns) {
      cx->out->columns[cx->out->ncolumns - 1].us = true;
   }
}

bool
cx_dt_sort_rem (bson_t *sort, const char *key, int dir)
{
   char *k = bson_strdup_printf ("%s" DJ_US_SUFFIX, key);
   bool ok = bson_has_field (sort, k) || BSON_APPEND_INT32 (sort, k, dir);
   bson_free (k);
   return ok;
}

/* ---- writes ---- */

bool
cx_dt_alter_column (cx_t *cx, const char *table, const char *column, const char *rename_to)
{
   if (!cx->catalog || !cx->catalog->is_datetime || !cx->catalog->is_datetime (cx->catalog->ctx, table, column)) {
      return true;
   }
   char *from = bson_strdup_printf ("%s" DJ_US_SUFFIX, column);
   char *to = rename_to ? bson_strdup_printf ("%s" DJ_US_SUFFIX, rename_to) : bson_strdup ("");
   bson_t *cmd = cx_template_new (cx,
                                  "{'update': '@0', 'updates': [{'q': {'@1': {'$exists': true}}, 'u': {'@2': {'@1': '@3'}}, "
                                  "'multi': true}]}",
                                  CX_ARGS (CX_STR (table), CX_STR (from), CX_STR (rename_to ? "$rename" : "$unset"),
                                           CX_STR (to)));
   bson_free (from);
   bson_free (to);
   return cx_add_command_if (cx, cmd != NULL, cmd);
}

bool
cx_dt_upsert_set (cx_t *cx, const char *table, const char *column, const char *source, bson_t *set)
{
   if (!cx->catalog || !cx->catalog->is_datetime || !cx->catalog->is_datetime (cx->catalog->ctx, table, column)) {
      return true;
   }
   char *k = bson_strdup_printf ("%s" DJ_US_SUFFIX, column), *v = bson_strdup_printf ("%s" DJ_US_SUFFIX, source);
   bool ok = BSON_APPEND_UTF8 (set, k, v);
   bson_free (k);
   bson_free (v);
   return ok;
}

bool
cx_dt_set_exact (cx_t *cx, const dj_expr_t *e, bson_t *set, const char *column, bool *done)
{
   bool is_dt = false;
   int64_t ms;
   int32_t r = 0;
   *done = false;
   if (!cx_is_const (e) || !const_dt (cx, e, &is_dt, &ms, &r)) {
      return !cx_is_const (e) || !(cx->error && cx->error->domain);
   }
   if (!is_dt || !r) {
      return true;
   }
   *done = true;
   char *k = bson_strdup_printf ("%s" DJ_US_SUFFIX, column);
   /* a date needs no $literal: it cannot be read as a path or operator */
   bool ok = bson_append_date_time (set, column, -1, ms) && BSON_APPEND_INT32 (set, k, r);
   bson_free (k);
   return ok;
}

bool
cx_dt_set_rem (cx_t *cx, const char *table, const char *column, const dj_expr_t *e, bool pipeline, bson_t *set,
               bson_t *unset)
{
   if (!cx->catalog || !cx->catalog->is_datetime || !cx->catalog->is_datetime (cx->catalog->ctx, table, column)) {
      return true;
   }
   char *k = bson_strdup_printf ("%s" DJ_US_SUFFIX, column);
   bool ok = true, is_dt = false;
   int64_t ms;
   int32_t r = 0;
   if (cx_is_const (e)) {
      ok = const_dt (cx, e, &is_dt, &ms, &r);
   }
   if (!ok || r) {
      /* error set, or the $set holds the remainder already
       * (cx_append_stored, cx_dt_set_exact) */
   } else if (pipeline && cx_dt_has_rem (cx, e)) {
      ok = rem_or_remove (cx, e, set, k); /* the expression's remainder, none when 0 */
   } else if (pipeline) {
      ok = BSON_APPEND_UTF8 (set, k, "$$REMOVE");
   } else {
      ok = BSON_APPEND_UTF8 (unset, k, "");
   }
   bson_free (k);
   return ok;
}

/* ---- functions on datetimes ---- */

bool
cx_dt_function (cx_t *cx, const dj_expr_t *e, bson_t *parent, const char *key, bool *done)
{
   *done = true;
   if (is_func (e, "US_ADD_DATETIME") && e->args.n == 2) {
      /* us + x: DATETIME_ADD_US(x, us) */
      void *argv[2] = {e->args.v[1], e->args.v[0]};
      dj_expr_t call = *e;
      call.name = "DATETIME_ADD_US";
      call.args.v = argv;
      return cx_dt_function (cx, &call, parent, key, done);
   }
   if (is_func (e, "DATETIME_ADD_US") && e->args.n == 2) {
      /* x + us microseconds (djongo/operations.py: a datetime plus or
       * minus a duration): the date moves by floor((rem + us) / 1000)
       * milliseconds; the remainder (cx_dt_rem) is the rest */
      /* (a NULL duration is NULL whatever x is, as x - NULL was) */
      return cx_template (cx,
                          "{'$let': {'vars': {'u': {'$toLong': '@2'}}, 'in': {'$cond': [{'$eq': ['$$u', null]}, null, "
                          "{'$add': ['@0', {'$toLong': {'$floor': {'$divide': [{'$add': ['@1', '$$u']}, 1000]}}}]}]}}}",
                          CX_ARGS (CX_VALUE (e->args.v[0]), CX_FN (cx_dt_rem, e->args.v[0]), CX_VALUE (e->args.v[1])),
                          parent, key);
   }
   if (is_func (e, "DATETIME_DIFF_US") && e->args.n == 2) {
      /* a - b in microseconds (a duration): the dates' milliseconds apart
       * times 1000, plus the remainders' difference */
      return cx_template (cx,
                          "{'$add': [{'$multiply': [{'$subtract': ['@0', '@1']}, 1000]}, {'$subtract': ['@2', '@3']}]}",
                          CX_ARGS (CX_VALUE (e->args.v[0]), CX_VALUE (e->args.v[1]), CX_FN (cx_dt_rem, e->args.v[0]),
                                   CX_FN (cx_dt_rem, e->args.v[1])),
                          parent, key);
   }
   if (is_func (e, "TIME_OF_DAY") && e->args.n == 2 && cx_dt_has_rem (cx, e->args.v[0])) {
      /* the wall-clock time as Python's isoformat writes it: ".ffffff"
       * when not whole, the remainder's three digits after %L */
      return cx_template (cx,
                          "{'$let': {'vars': {'r': '@2'}, 'in': {'$cond': [{'$and': [{'$eq': [{'$millisecond': "
                          "{'date': '@0', 'timezone': '@1'}}, 0]}, {'$eq': ['$$r', 0]}]}, "
                          "{'$dateToString': {'date': '@0', 'format': '%H:%M:%S', 'timezone': '@1'}}, "
                          "{'$concat': [{'$dateToString': {'date': '@0', 'format': '%H:%M:%S.%L', 'timezone': '@1'}}, "
                          "{'$substrCP': [{'$toString': {'$add': [1000, '$$r']}}, 1, 3]}]}]}}}",
                          CX_ARGS (CX_VALUE (e->args.v[0]), CX_VALUE (e->args.v[1]), CX_FN (cx_dt_rem, e->args.v[0])),
                          parent, key);
   }
   *done = false;
   return true;
}
