/*
 * select.c -- SELECT -> find, or aggregate.
 *
 * `find` when the statement is a plain filter/sort/skip/limit/projection on
 * one table (what most of Django's ORM reads are); `aggregate` otherwise,
 * with stages in SQL's logical order:
 *
 *   $match (WHERE conjuncts on the base table: before the joins, so indexes
 *   serve them) -> per JOIN: $lookup + $unwind -> $lookup per subquery ->
 *   $match (the rest of WHERE) -> [$lookup per subquery GROUP BY key] ->
 *   $group (GROUP BY / aggregates) -> $lookup per subquery of HAVING ->
 *   $match (HAVING) -> $lookup per subquery of the SELECT list / ORDER BY
 *   -> $project (c0..cn, sort keys) -> $group (DISTINCT) -> $sort -> $skip
 *   -> $limit
 *
 * SQL's defaults kept where MongoDB differs:
 *  - ORDER BY puts NULLs first ascending and last descending (SQLite's
 *    order, and MongoDB's since null sorts lowest); NULLS FIRST/LAST that
 *    differ add a sort key "n<i>" computed from the value.
 *  - $group keys go through {$ifNull: [k, null]} so a missing field and a
 *    NULL fall in one group, as all NULLs do in SQL.
 *  - An aggregate without GROUP BY returns one row even on no input:
 *    $facet + $replaceWith with COUNT's 0 and NULL for the others.
 *  - SUM of no non-NULL values is NULL (MongoDB's $sum says 0).
 *  - LIMIT 0 returns no rows (a find limit of 0 means "no limit").
 */
#include <stdio.h>
#include <string.h>

#include "compile-private.h"

/* ---- sources ---- */

static bool
set_sources (cx_t *cx, const dj_select_t *s)
{
   cx->nsources = 0;
   if (s->from.n > CX_MAX_SOURCES) {
      return cx_unsupported (cx, s->pos, "more than %d tables in one query", CX_MAX_SOURCES);
   }
   for (int i = 0; i < s->from.n; i++) {
      const dj_from_t *f = s->from.v[i];
      cx_source_t *src = &cx->sources[cx->nsources++];
      src->sub = NULL;
      if (f->sub) {
         if (i > 0 || s->from.n > 1) {
            return cx_unsupported (cx, f->pos, "a derived table (subquery in FROM) joined with other tables");
         }
         src->sub = f->sub;
      }
      src->table = f->name;
      src->alias = f->alias ? f->alias : f->name;
      for (int j = 0; j < i; j++) {
         if (!strcmp (cx->sources[j].alias, src->alias)) {
            return cx_unsupported (cx, f->pos, "table name \"%s\" used twice in FROM without distinct aliases", src->alias);
         }
      }
      if (strchr (src->alias, '.') || src->alias[0] == '$') {
         return cx_unsupported (cx, f->pos, "alias \"%s\" cannot name a MongoDB field", src->alias);
      }
      if (i == 0) {
         src->prefix[0] = '\0';
      } else if ((size_t) snprintf (src->prefix, sizeof src->prefix, "__dj_%s.", src->alias) >= sizeof src->prefix) {
         return cx_unsupported (cx, f->pos, "alias too long");
      }
   }
   return true;
}

/* ---- helpers ---- */

/* The collection a SELECT's pipeline starts from: its first table, through
 * derived tables; NULL without FROM. */
static const char *
base_collection (const dj_select_t *s)
{
   while (s->from.n && ((dj_from_t *) s->from.v[0])->sub) {
      s = ((dj_from_t *) s->from.v[0])->sub;
   }
   return s->from.n ? ((dj_from_t *) s->from.v[0])->name : NULL;
}

static bool
is_aggregate (const dj_expr_t *e, const void *ctx)
{
   (void) ctx;
   return cx_is_aggregate (e);
}

static bool
has_aggregate (const dj_expr_t *e)
{
   return cx_expr_any (e, is_aggregate, NULL);
}

/* Is e one of the GROUP BY keys (read from $group's _id, its subqueries
 * looked up before the $group)? */
static bool
is_group_key (const cx_group_t *g, const dj_expr_t *e)
{
   for (int i = 0; i < g->keys->n; i++) {
      if (cx_expr_equal (g->keys->v[i], e)) {
         return true;
      }
   }
   return false;
}

/* LIMIT/OFFSET: an integer constant, >= 0 (INT64_MAX: no limit); -1 + error
 * otherwise. */
static int64_t
count_value (cx_t *cx, const dj_expr_t *e, const char *what)
{
   bson_value_t tmp;
   const bson_value_t *v;
   if (!cx_const_arg (cx, e, what, &tmp, &v)) {
      return -1;
   }
   int64_t n;
   if (v->value_type == BSON_TYPE_INT32) {
      n = v->value.v_int32;
   } else if (v->value_type == BSON_TYPE_INT64) {
      n = v->value.v_int64;
   } else {
      cx_param_error (cx, e->pos, "%s must be an integer", what);
      return -1;
   }
   if (n < 0) {
      /* SQLite's rule, which its Django backend relies on (LIMIT -1 OFFSET n):
       * a negative LIMIT is no limit, a negative OFFSET is 0 */
      return !strcmp (what, "LIMIT") ? INT64_MAX : 0;
   }
   return n;
}

static bool is_star_item (const dj_item_t *it);

/* Is s SELECT * FROM (derived) -- what the parser writes for a
 * parenthesised part of a compound -- whose columns are the derived
 * table's? Returns that table's SELECT (its first part), else NULL. */
const dj_select_t *
cx_derived_star (const dj_select_t *s)
{
   if (s->items.n == 1 && is_star_item (s->items.v[0]) && s->from.n == 1 && ((dj_from_t *) s->from.v[0])->sub &&
       !s->group_by.n) {
      return ((dj_from_t *) s->from.v[0])->sub;
   }
   return NULL;
}

/* How many columns a SELECT returns (a derived table's * counted whole). */
static int
select_width (const dj_select_t *s)
{
   const dj_select_t *in = cx_derived_star (s);
   return in ? select_width (in) : s->items.n;
}

/* ORDER BY item -> index of the SELECT item it names (alias or 1-based
 * position), or -1. */
static int
order_item_ref (const dj_select_t *s, const dj_order_t *o)
{
   const dj_expr_t *e = o->expr;
   const dj_select_t *in = cx_derived_star (s);
   if (in) {
      /* SELECT * FROM (derived): the derived table's columns, c<m> */
      return order_item_ref (in, o);
   }
   if (e->kind == DJ_X_INT && e->ival >= 1 && e->ival <= s->items.n) {
      return (int) e->ival - 1;
   }
   if (e->kind == DJ_X_COLUMN && !e->table) {
      for (int i = 0; i < s->items.n; i++) {
         const dj_item_t *it = s->items.v[i];
         if (it->alias && !strcmp (it->alias, e->name)) {
            return i;
         }
      }
   }
   for (int i = 0; i < s->items.n; i++) {
      const dj_item_t *it = s->items.v[i];
      if (cx_expr_equal (it->expr, e)) {
         return i;
      }
   }
   return -1;
}

static const char *
item_name (const dj_item_t *it)
{
   if (it->alias) {
      return it->alias;
   }
   if (it->expr->kind == DJ_X_COLUMN) {
      return it->expr->name;
   }
   if (it->expr->kind == DJ_X_FUNC) {
      return it->expr->name;
   }
   return "?column?";
}

static bool
is_star_item (const dj_item_t *it)
{
   return it->expr->kind == DJ_X_STAR || (it->expr->kind == DJ_X_COLUMN && !strcmp (it->expr->name, "*"));
}

/* A $project field: a bare number or boolean there would be read as an
 * inclusion flag ({c0: 1} keeps a field "c0"), so constants are $literal. */
static bool
project_value (cx_t *cx, const dj_expr_t *e, bson_t *proj, const char *key)
{
   if (!cx_is_const (e)) {
      return cx_agg_value (cx, e, proj, key);
   }
   return cx_template (cx, "{'$literal': '@0'}", CX_ARGS (CX_CONST (e)), proj, key);
}

/* SELECT * FROM (derived): the * is the derived table's columns c0, c1 ...
 * as they are (so ORDER BY 1 names c0). */
static bool
star_is_derived_columns (const cx_t *cx, const dj_select_t *s)
{
   (void) cx;
   return cx_derived_star (s) != NULL;
}

/* A * or t.* in a SELECT list that find cannot serve (joins, expressions
 * beside it): each table's row document is projected whole ("c<i>_<k>":
 * $$ROOT for the base table, "$__dj_<alias>" for a joined one, NULL-less
 * when a LEFT join found no partner) and described as a star column, which
 * the executor expands into the columns CREATE TABLE recorded for the table
 * (dj_mql_column_t.star_table). A derived table's columns are known here:
 * its SELECT items, "c<m>" of its rows. In EXISTS the values do not matter:
 * nothing is projected. */
static bool
project_star (cx_t *cx, const dj_select_t *s, const dj_item_t *it, int i, int flags, bson_t *proj)
{
   const dj_expr_t *e = it->expr;
   if (flags & CX_PIPE_EXISTS) {
      return true;
   }
   if (star_is_derived_columns (cx, s)) {
      /* SELECT * FROM (derived): its columns as they are, c<m> -- in any
       * position, a part of a compound included (the parser writes a
       * parenthesised compound part so) */
      const dj_select_t *in = cx->sources[0].sub;
      while (cx_derived_star (in)) {
         in = cx_derived_star (in); /* the columns pass through as they are */
      }
      for (int m = 0; m < in->items.n; m++) {
         char key[16], ref[20];
         snprintf (key, sizeof key, "c%d", m);
         snprintf (ref, sizeof ref, "$c%d", m);
         BSON_APPEND_UTF8 (proj, key, ref);
         if (cx->out && !(flags & CX_PIPE_NO_COLUMNS)) {
            cx_add_column (cx, item_name (in->items.v[m]), key);
         }
      }
      return true;
   }
   bool done = false; /* (false on failure too) */
   if (cx->out && !(flags & CX_PIPE_NO_COLUMNS) && cx->group && !s->distinct && !s->next &&
       (!cx_project_star_grouped (cx, e, i, proj, &done) || done)) {
      return done;
   }
   if (!cx->out || (flags & CX_PIPE_NO_COLUMNS) || cx->group || s->distinct || s->next) {
      return cx_unsupported (cx, e->pos,
                             "* in the SELECT list of a subquery, a UNION, a GROUP BY or a DISTINCT (djongo has no "
                             "schema to expand it there)");
   }
   bool any = false;
   for (int k = 0; k < cx->nsources; k++) {
      const cx_source_t *src = &cx->sources[k];
      if (e->kind == DJ_X_COLUMN && e->table && strcmp (e->table, src->alias)) {
         continue;
      }
      any = true;
      char key[32], path[200];
      snprintf (key, sizeof key, "c%d_%d", i, k);
      if (k > 0) {
         snprintf (path, sizeof path, "$__dj_%s", src->alias);
      }
      BSON_APPEND_UTF8 (proj, key, k > 0 ? path : "$$ROOT");
      if (!src->sub) {
         cx_add_star_column (cx, src->table, key);
         continue;
      }
      for (int m = 0; m < src->sub->items.n; m++) {
         char cpath[48];
         snprintf (cpath, sizeof cpath, "%s.c%d", key, m);
         cx_add_column (cx, item_name (src->sub->items.v[m]), cpath);
      }
   }
   if (!any) {
      return cx_unsupported (cx, e->pos, "no table or alias \"%s\" in this query's FROM clause", e->table);
   }
   return true;
}

static bool stage_order_limit (cx_t *cx, const dj_select_t *s, const int *sort_ref, bson_t *pipeline, uint32_t *n);
static bool compound_stages (cx_t *cx, const dj_select_t *s, bson_t *pipeline, uint32_t *n, int flags);
static void stage_distinct_rows (bson_t *pipeline, uint32_t *n);

/* ---- find ---- */

static bool
find_eligible (cx_t *cx, const dj_select_t *s)
{
   if (s->next || s->from.n != 1 || s->distinct || s->group_by.n || s->having || cx_has_subquery (s->where) ||
       ((dj_from_t *) s->from.v[0])->sub) {
      return false;
   }
   for (int i = 0; i < s->items.n; i++) {
      const dj_item_t *it = s->items.v[i];
      if (is_star_item (it)) {
         if (s->items.n != 1) {
            return false;
         }
         continue;
      }
      /* a path (col -> 'key') projects as an expression: a find projection
       * of "a.b" keeps {a: {b}} (and collides with "a"), not b's value */
      if (it->expr->kind != DJ_X_COLUMN || strchr (it->expr->name, '.')) {
         return false;
      }
   }
   for (int i = 0; i < s->order_by.n; i++) {
      const dj_order_t *o = s->order_by.v[i];
      int ref = order_item_ref (s, o);
      const dj_expr_t *e = ref >= 0 ? ((dj_item_t *) s->items.v[ref])->expr : o->expr;
      if (e->kind != DJ_X_COLUMN || cx_path_has_index (e->name) || (o->nulls == 1 && o->desc) ||
          (o->nulls == 2 && !o->desc)) {
         return false;
      }
   }
   (void) cx;
   return true;
}

static bool
compile_find (cx_t *cx, const dj_select_t *s)
{
   bson_t *cmd = bson_new ();
   bson_t proj, sort;
   char path[512];
   bool ok = true;
   int64_t limit = -1, skip = 0;

   BSON_APPEND_UTF8 (cmd, "find", cx->sources[0].table);
   if (s->where) {
      /* cx_filter writes {"filter": {...}} */
      ok = cx_filter (cx, s->where, true, cmd, "filter");
   }
   if (ok && s->items.n == 1 && is_star_item (s->items.v[0])) {
      cx->out->star = true;
   } else if (ok) {
      BSON_APPEND_DOCUMENT_BEGIN (cmd, "projection", &proj);
      bool has_id = false;
      for (int i = 0; ok && i < s->items.n; i++) {
         const dj_item_t *it = s->items.v[i];
         ok = cx_column_path (cx, it->expr, path, sizeof path);
         if (ok) {
            bson_iter_t seen;
            has_id |= !strcmp (path, "_id");
            if (!bson_iter_init_find (&seen, &proj, path)) { /* a repeated column is one field */
               BSON_APPEND_INT32 (&proj, path, 1);
            }
            cx_add_column (cx, item_name (it), path);
            cx_dt_find_project (cx, it->expr, &proj, path); /* a DATETIME column's microseconds */
         }
      }
      if (!has_id) {
         BSON_APPEND_INT32 (&proj, "_id", 0);
      }
      bson_append_document_end (cmd, &proj);
   }
   if (ok && s->order_by.n) {
      BSON_APPEND_DOCUMENT_BEGIN (cmd, "sort", &sort);
      for (int i = 0; ok && i < s->order_by.n; i++) {
         const dj_order_t *o = s->order_by.v[i];
         int ref = order_item_ref (s, o);
         const dj_expr_t *e = ref >= 0 ? ((dj_item_t *) s->items.v[ref])->expr : o->expr;
         ok = cx_column_path (cx, e, path, sizeof path);
         if (ok && !bson_has_field (&sort, path)) { /* ORDER BY a, a: the first wins */
            BSON_APPEND_INT32 (&sort, path, o->desc ? -1 : 1);
            ok = !cx_dt_column (cx, e) || cx_dt_sort_rem (&sort, path, o->desc ? -1 : 1);
         }
      }
      bson_append_document_end (cmd, &sort);
   }
   if (ok && s->offset) {
      ok = (skip = count_value (cx, s->offset, "OFFSET")) >= 0;
   }
   if (ok && s->limit) {
      ok = (limit = count_value (cx, s->limit, "LIMIT")) >= 0;
   }
   if (ok && skip) {
      BSON_APPEND_INT64 (cmd, "skip", skip);
   }
   if (ok && limit == 0) {
      /* LIMIT 0: no rows; find's limit 0 would mean all of them */
      bson_destroy (cmd);
      cmd = cx_template_new (cx, "{'find': '@0', 'filter': {'$expr': false}, 'limit': 1}",
                             CX_ARGS (CX_STR (cx->sources[0].table)));
   } else if (ok && limit > 0 && limit != INT64_MAX) {
      BSON_APPEND_INT64 (cmd, "limit", limit);
   }
   return cx_add_command_if (cx, ok, cmd);
}

/* ---- aggregate ---- */

static bool
stage_match_filter (cx_t *cx, const dj_expr_t *e, bson_t *pipeline, uint32_t *n)
{
   return cx_stages (cx, pipeline, n, "{'$match': '@0'}", CX_ARGS (CX_FILTER (e)));
}

/* Splits WHERE into its top-level conjuncts. */
static int
conjuncts (const dj_expr_t *where, const dj_expr_t **out, int max)
{
   if (!where) {
      return 0;
   }
   if (where->kind != DJ_X_AND) {
      out[0] = where;
      return 1;
   }
   int n = 0;
   for (int i = 0; i < where->args.n && n < max; i++) {
      out[n++] = where->args.v[i];
   }
   return n;
}

/* Is e `x = y` with y a column of source `j` and x a column of an earlier
 * source? Sets *local (the earlier side) and *foreign. */
static bool
join_equality (cx_t *cx, const dj_expr_t *e, int j, const dj_expr_t **local, const dj_expr_t **foreign)
{
   if (e->kind != DJ_X_BINARY || e->op != DJ_OP_EQ || e->a->kind != DJ_X_COLUMN || e->b->kind != DJ_X_COLUMN ||
       !e->a->table || !e->b->table) {
      return false;
   }
   const char *alias = cx->sources[j].alias;
   const dj_expr_t *x = e->a, *y = e->b;
   if (!strcmp (x->table, alias)) {
      const dj_expr_t *t = x;
      x = y;
      y = t;
   }
   if (strcmp (y->table, alias) || !strcmp (x->table, alias)) {
      return false;
   }
   for (int i = 0; i < j; i++) {
      if (!strcmp (x->table, cx->sources[i].alias)) {
         *local = x;
         *foreign = y;
         return true;
      }
   }
   return false;
}

/* $lookup of src into "__dj_<alias>" -- by lpath = foreign (none: every
 * document), `sp` a pipeline run on the matches (an array, NULL or empty:
 * none) with variables `lets` (NULL or empty: none) -- then $unwind,
 * keeping documents without a match when `left`. */
static void
emit_lookup (cx_t *cx, const cx_source_t *src, const char *lpath, const char *foreign, bool left, const bson_t *lets,
             const bson_t *sp, bson_t *pipeline, uint32_t *n)
{
   char as[200], ref[210], lref[520];
   bson_t none = BSON_INITIALIZER;
   snprintf (as, sizeof as, "__dj_%s", src->alias);
   snprintf (ref, sizeof ref, "$%s", as);
   snprintf (lref, sizeof lref, "$%s", lpath);
   const cx_arg_t args[] = {CX_STR (src->table), CX_STR (lpath), CX_STR (foreign), CX_STR (as),
                            CX_STR (ref), CX_STR (lref), CX_BOOL (left), CX_DOC (lets ? lets : &none),
                            CX_ARRAY (sp ? sp : &none)};
   /* [equality][0: no pipeline, 1: a pipeline without variables, 2: with] */
   static const char *const lookup[2][3] = {
      {"{'$lookup': {'from': '@0', 'pipeline': [], 'as': '@3'}}",
       "{'$lookup': {'from': '@0', 'pipeline': '@8', 'as': '@3'}}",
       "{'$lookup': {'from': '@0', 'let': '@7', 'pipeline': '@8', 'as': '@3'}}"},
      {"{'$lookup': {'from': '@0', 'localField': '@1', 'foreignField': '@2', 'as': '@3'}}",
       "{'$lookup': {'from': '@0', 'localField': '@1', 'foreignField': '@2', 'pipeline': '@8', 'as': '@3'}}",
       "{'$lookup': {'from': '@0', 'localField': '@1', 'foreignField': '@2', 'let': '@7', 'pipeline': '@8', 'as': '@3'}}"}};
   bool has_sp = sp && !bson_empty (sp);
   cx_stages (cx, pipeline, n, lookup[foreign != NULL][has_sp ? 1 + (lets && !bson_empty (lets)) : 0], CX_ARGV (args));
   if (foreign && left) {
      /* a NULL local field matches nothing: empty the array it got */
      cx_stages (cx, pipeline, n, "{'$set': {'@3': {'$cond': [{'$eq': [{'$ifNull': ['@5', null]}, null]}, [], '@4']}}}",
                 CX_ARGV (args));
   }
   cx_stages (cx, pipeline, n, "{'$unwind': {'path': '@4', 'preserveNullAndEmptyArrays': '@6'}}", CX_ARGV (args));
   bson_destroy (&none);
}

/* Does column e name source j or a later one (which an ON cannot see)? */
static bool
names_later_source (const dj_expr_t *e, const void *ctx)
{
   const cx_t *cx = ((const void *const *) ctx)[0];
   int j = *(const int *) ((const void *const *) ctx)[1];
   if (e->kind != DJ_X_COLUMN || !e->table) {
      return false;
   }
   for (int i = j + 1; i < cx->nsources; i++) {
      if (!strcmp (cx->sources[i].alias, e->table)) {
         return true;
      }
   }
   return false;
}

/* The pipeline of a join's $lookup that keeps the joined table's rows where
 * each of conj[0..nc) is TRUE: [{$match: filter}...], compiled in a context
 * whose one source is the joined table and whose outer query is ours, so
 * that columns of the earlier tables become `let` variables ($$o<i>, bound
 * in *lets). A LEFT join's extra ON conditions belong here, not after the
 * $unwind: they choose the partners, and a row with none is still kept,
 * with NULLs -- SQL's outer join. */
static bool
join_pipeline (cx_t *cx, const cx_source_t *src, const dj_expr_t *const *conj, int nc, bson_t *lets, bson_t *sp,
               uint32_t *sn)
{
   cx_t sc = {.params = cx->params, .nparams = cx->nparams, .values_read = cx->values_read, .db = cx->db, .error = cx->error, .catalog = cx->catalog, .depth = cx->depth + 1,
              .out = NULL, .outer = cx, .lets = lets};
   cx_single_source (&sc, src->table, src->alias);
   for (int i = 0; i < nc; i++) {
      if (!stage_match_filter (&sc, conj[i], sp, sn)) {
         return false;
      }
   }
   return true;
}

static bool
stage_join (cx_t *cx, const dj_from_t *f, int j, bson_t *pipeline, uint32_t *n)
{
   const cx_source_t *src = &cx->sources[j];
   const dj_expr_t *local = NULL, *foreign = NULL;
   char lpath[512] = "";
   const dj_expr_t *rest[64];
   int nrest = 0;

   if (f->join != DJ_JOIN_CROSS) {
      const dj_expr_t *conj[64];
      int nc = conjuncts (f->on, conj, 64);
      if (f->on && f->on->kind == DJ_X_AND && f->on->args.n > 64) {
         return cx_unsupported (cx, f->on->pos, "more than 64 AND-ed conditions in JOIN ... ON");
      }
      const void *later_ctx[2] = {cx, &j};
      for (int i = 0; i < nc; i++) {
         if (cx_has_subquery (conj[i])) {
            return cx_unsupported (cx, conj[i]->pos, "a subquery in JOIN ... ON");
         }
         if (cx_expr_any (conj[i], names_later_source, later_ctx)) {
            return cx_unsupported (cx, conj[i]->pos, "JOIN ... ON naming a table joined after it");
         }
         if (!local && join_equality (cx, conj[i], j, &local, &foreign)) {
            if (cx_dt_has_rem (cx, local) || cx_dt_has_rem (cx, foreign)) {
               rest[nrest++] = conj[i]; /* datetimes: the remainders must match too (exact_dt.c) */
            }
            continue;
         }
         rest[nrest++] = conj[i];
      }
      if (local && (!cx_column_path (cx, local, lpath, sizeof lpath) || !cx_check_column (cx, src, foreign))) {
         return false; /* (the foreign side is named as it is: checked here, "no such column") */
      }
      if (local && f->join == DJ_JOIN_INNER) {
         /* SQL: NULL joins nothing; $lookup would pair a NULL local field
          * with foreign documents whose field is NULL or missing. */
         cx_stages (cx, pipeline, n, "{'$match': {'@0': {'$ne': null}}}", CX_ARGS (CX_STR (lpath)));
      }
   }
   /* An INNER join's other ON conditions filter the joined rows after the
    * $unwind; a LEFT join's, or those of an ON without a column equality to
    * look up by, go into the $lookup's pipeline (with localField and
    * foreignField as well when there is an equality: MongoDB 5.0+ runs the
    * equality match first, on an index of the foreign field if there is
    * one, then the pipeline on the matches).
    * https://www.mongodb.com/docs/manual/reference/operator/aggregation/lookup/ */
   bool in_lookup = nrest && (f->join == DJ_JOIN_LEFT || !local);
   bson_t lets = BSON_INITIALIZER, sp = BSON_INITIALIZER;
   uint32_t sn = 0;
   if (in_lookup && !join_pipeline (cx, src, rest, nrest, &lets, &sp, &sn)) {
      bson_destroy (&lets);
      bson_destroy (&sp);
      return false;
   }
   emit_lookup (cx, src, lpath, local ? foreign->name : NULL, f->join == DJ_JOIN_LEFT, &lets, &sp, pipeline, n);
   bson_destroy (&lets);
   bson_destroy (&sp);

   /* the rest of an INNER JOIN's ON is a filter on the joined rows */
   for (int i = 0; !in_lookup && i < nrest; i++) {
      if (!stage_match_filter (cx, rest[i], pipeline, n)) {
         return false;
      }
   }
   return true;
}

/* Aggregate i's $group fields: a<i>, and a<i>_n (its non-NULL inputs, for
 * SUM), with their "$" references. */
typedef struct {
   char field[24], nfield[24], ref[28], nref[28];
} acc_names_t;

static void
acc_names (int i, acc_names_t *n)
{
   snprintf (n->field, sizeof n->field, "a%d", i);
   snprintf (n->nfield, sizeof n->nfield, "a%d_n", i);
   snprintf (n->ref, sizeof n->ref, "$a%d", i);
   snprintf (n->nref, sizeof n->nref, "$a%d_n", i);
}

/* The accumulator for aggregate call e into group field a<i>; a post-$group
 * fix-up (COUNT DISTINCT, SUM's NULL, VARIANCE) goes into `post`. */
static bool
accumulator (cx_t *cx, const dj_expr_t *e, int i, bson_t *group, bson_t *post, bson_t *defaults)
{
   acc_names_t nm;
   const char *f = e->name;
   bool distinct = (e->flags & DJ_XF_DISTINCT) != 0;
   bool ok = true;

   acc_names (i, &nm);
   const char *field = nm.field, *nfield = nm.nfield, *ref = nm.ref, *nref = nm.nref;
   if (!(e->flags & DJ_XF_STAR) && e->args.n != 1) {
      return cx_unsupported (cx, e->pos, "%s() with %d arguments", f, e->args.n);
   }
   const dj_expr_t *arg = e->args.n ? e->args.v[0] : NULL;
   if (e->flags & DJ_XF_STAR && strcmp (f, "COUNT")) {
      return cx_unsupported (cx, e->pos, "%s(*)", f);
   }
   /* FILTER (WHERE c): the input is NULL where c is not TRUE */
   dj_expr_t one = {.kind = DJ_X_INT, .ival = 1, .pos = e->pos};
   dj_expr_t null_x = {.kind = DJ_X_NULL, .pos = e->pos};
   dj_expr_t filtered;
   void *fargs[2];
   if (e->filter) {
      fargs[0] = e->filter;
      fargs[1] = arg ? (void *) arg : (void *) &one;
      filtered = (dj_expr_t){.kind = DJ_X_CASE, .pos = e->pos, .args = {.v = fargs, .n = 2}, .b = &null_x};
      arg = &filtered;
   }
   bool is_count = !strcmp (f, "COUNT");
   if (is_count) {
      BSON_APPEND_INT32 (defaults, field, 0);
   } else {
      BSON_APPEND_NULL (defaults, field);
   }

   if (distinct) {
      /* {$addToSet: x}, then reduce the set (without NULL) after $group */
      ok = cx_template (cx, "{'$addToSet': '@0'}", CX_ARGS (CX_VALUE (arg)), group, field);
      const char *op = is_count ? "$size" : !strcmp (f, "SUM") ? "$sum" : !strcmp (f, "AVG") ? "$avg" :
                       !strcmp (f, "MIN") ? "$min" : !strcmp (f, "MAX") ? "$max" : NULL;
      if (!op) {
         return cx_unsupported (cx, e->pos, "%s(DISTINCT ...)", f);
      }
      if (!strcmp (f, "SUM")) {
         /* $sum of [] is 0; SQL's SUM of no (non-NULL) value is NULL */
         cx_template (cx,
                      "{'$let': {'vars': {'s': {'$filter': {'input': '@0', 'cond': {'$ne': ['$$this', null]}}}}, "
                      "'in': {'$cond': [{'$gt': [{'$size': '$$s'}, 0]}, {'$sum': '$$s'}, null]}}}",
                      CX_ARGS (CX_STR (ref)), post, field);
         return ok;
      }
      cx_template (cx, "{'@0': {'$filter': {'input': '@1', 'cond': {'$ne': ['$$this', null]}}}}",
                   CX_ARGS (CX_STR (op), CX_STR (ref)), post, field);
      return ok;
   }
   if (is_count) {
      if ((e->flags & DJ_XF_STAR) && !e->filter) {
         return cx_template (cx, "{'$sum': 1}", CX_NO_ARGS, group, field);
      }
      return cx_template (cx, "{'$sum': '@0'}", CX_ARGS (CX_FN (cx_agg_count_one, arg)), group, field);
   }
   static const struct {
      const char *sql, *op;
      bool square;
   } accs[] = {{"SUM", "$sum", false}, {"AVG", "$avg", false}, {"MIN", "$min", false}, {"MAX", "$max", false},
               {"STDDEV_POP", "$stdDevPop", false}, {"STDDEV_SAMP", "$stdDevSamp", false},
               {"STDDEV", "$stdDevSamp", false}, {"VAR_POP", "$stdDevPop", true}, {"VAR_SAMP", "$stdDevSamp", true},
               {"VARIANCE", "$stdDevSamp", true}, {NULL, NULL, false}};
   for (int j = 0; accs[j].sql; j++) {
      if (strcmp (f, accs[j].sql)) {
         continue;
      }
      ok = cx_template (cx, "{'@0': '@1'}", CX_ARGS (CX_STR (accs[j].op), CX_VALUE (arg)), group, field);
      if (!strcmp (f, "SUM")) {
         /* count the non-NULL inputs: none means SUM is NULL */
         ok = ok && cx_template (cx, "{'$sum': '@0'}", CX_ARGS (CX_FN (cx_agg_count_one, arg)), group, nfield);
         cx_append_null_if_none (post, field, ref, nref);
      } else if (accs[j].square) {
         cx_template (cx, "{'$pow': ['@0', 2]}", CX_ARGS (CX_STR (ref)), post, field);
      }
      return ok;
   }
   return cx_unsupported (cx, e->pos, "aggregate %s()", f);
}

static bool prejoin_accumulator (cx_t *cx, const dj_expr_t *e, int i, bson_t *group, bson_t *post);

/* prejoined: the join was aggregated per parent (stage_prejoin); its
 * partials are combined. */
static bool
stage_group (cx_t *cx, const dj_select_t *s, cx_group_t *g, bool prejoined, bson_t *pipeline, uint32_t *n)
{
   bson_t group = BSON_INITIALIZER, id, post = BSON_INITIALIZER, defaults = BSON_INITIALIZER;
   bool ok = true, scalar = s->group_by.n == 0;

   if (scalar) {
      BSON_APPEND_NULL (&group, "_id");
   } else {
      BSON_APPEND_DOCUMENT_BEGIN (&group, "_id", &id);
      for (int i = 0; ok && i < g->keys->n; i++) {
         char key[16];
         snprintf (key, sizeof key, "k%d", i);
         ok = cx_agg_value_or_null (cx, g->keys->v[i], &id, key) && cx_dt_group_key (cx, g->keys->v[i], &id, key);
      }
      bson_append_document_end (&group, &id);
   }
   for (int i = 0; ok && i < g->aggs.n; i++) {
      ok = prejoined ? prejoin_accumulator (cx, g->aggs.v[i], i, &group, &post)
                     : accumulator (cx, g->aggs.v[i], i, &group, &post, &defaults) &&
                          cx_dt_group_acc (cx, g->aggs.v[i], i, &group);
   }
   /* $group, then the accumulators' fix-ups ($set) if any; without GROUP
    * BY, inside a $facet whose one row (or, on no input, the defaults:
    * COUNT's 0, NULL for the others) replaces the document */
   static const char *const tpl[2][2] = {
      {"{'$group': '@0'}", "[{'$group': '@0'}, {'$set': '@1'}]"},
      {"[{'$facet': {'g': [{'$group': '@0'}]}}, "
       "{'$replaceWith': {'$ifNull': [{'$arrayElemAt': ['$g', 0]}, {'$literal': '@2'}]}}]",
       "[{'$facet': {'g': [{'$group': '@0'}, {'$set': '@1'}]}}, "
       "{'$replaceWith': {'$ifNull': [{'$arrayElemAt': ['$g', 0]}, {'$literal': '@2'}]}}]"}};
   ok = ok && cx_stages (cx, pipeline, n, tpl[scalar][!bson_empty (&post)],
                         CX_ARGS (CX_DOC (&group), CX_DOC (&post), CX_DOC (&defaults)));
   bson_destroy (&group);
   bson_destroy (&post);
   bson_destroy (&defaults);
   return ok;
}

/* ---- a join aggregated before it is unwound --------------------------------
 * SELECT a.x, COUNT(b.id) FROM a LEFT JOIN b ON a.id = b.a_id GROUP BY a.x
 * (Django's annotate(Count("b"))): joined, unwound and then grouped, every
 * parent is copied once per child. Instead, each parent's children are
 * grouped inside the $lookup ({$group: {_id: null, a<i>: ...}} over its
 * matches: one partial per parent) and the outer $group combines the
 * partials: COUNT and SUM add theirs, MIN and MAX take theirs. Done only
 * where the rows are the same: two tables, ON one equality, WHERE and
 * GROUP BY on the first table alone, every aggregate COUNT/SUM/MIN/MAX of a
 * plain column of the joined table (which a parent without children
 * gives them as NULL, and they skip), and the joined table used nowhere
 * else. */

static const char *const prejoin_ops[][2] = {{"COUNT", "$sum"}, {"SUM", "$sum"}, {"MIN", "$min"}, {"MAX", "$max"}, {NULL, NULL}};

static const char *
prejoin_op (const dj_expr_t *agg)
{
   for (int i = 0; prejoin_ops[i][0]; i++) {
      if (!strcmp (agg->name, prejoin_ops[i][0])) {
         return prejoin_ops[i][1];
      }
   }
   return NULL;
}

/* Does e use anything but the first table outside its aggregate calls? */
static bool
joined_outside_aggs (cx_t *cx, const dj_expr_t *e)
{
   if (!e || cx_is_aggregate (e)) {
      return false;
   }
   if (e->kind == DJ_X_COLUMN || e->sub) {
      return !cx_base_only (cx, e);
   }
   if (joined_outside_aggs (cx, e->a) || joined_outside_aggs (cx, e->b) || joined_outside_aggs (cx, e->c)) {
      return true;
   }
   for (int i = 0; i < e->args.n; i++) {
      if (joined_outside_aggs (cx, e->args.v[i])) {
         return true;
      }
   }
   return false;
}

/* nc conjuncts of WHERE, done[i]: already a $match on the first table. */
static bool
prejoin_eligible (cx_t *cx, const dj_select_t *s, const cx_group_t *g, int nc, const bool *done)
{
   const dj_expr_t *local, *foreign;
   if (s->from.n != 2 || !g->keys || !g->keys->n || !g->aggs.n || cx_has_window (s)) {
      return false;
   }
   const dj_from_t *f = s->from.v[1];
   if ((f->join != DJ_JOIN_LEFT && f->join != DJ_JOIN_INNER) || !f->on || !join_equality (cx, f->on, 1, &local, &foreign)) {
      return false;
   }
   for (int i = 0; i < nc; i++) {
      if (!done[i]) {
         return false;
      }
   }
   for (int i = 0; i < g->keys->n; i++) {
      if (!cx_base_only (cx, g->keys->v[i])) {
         return false;
      }
   }
   for (int i = 0; i < g->aggs.n; i++) {
      const dj_expr_t *e = g->aggs.v[i];
      const dj_expr_t *arg = e->args.n == 1 ? e->args.v[0] : NULL;
      if (!prejoin_op (e) || (e->flags & (DJ_XF_DISTINCT | DJ_XF_STAR)) || e->filter || !arg || arg->kind != DJ_X_COLUMN ||
          !arg->table || strcmp (arg->table, cx->sources[1].alias)) {
         return false;
      }
   }
   for (int i = 0; i < s->items.n; i++) {
      if (joined_outside_aggs (cx, ((dj_item_t *) s->items.v[i])->expr)) {
         return false;
      }
   }
   for (int i = 0; i < s->order_by.n; i++) {
      if (joined_outside_aggs (cx, ((dj_order_t *) s->order_by.v[i])->expr)) {
         return false;
      }
   }
   return !joined_outside_aggs (cx, s->having);
}

/* The join, each parent's matches grouped into one partial. */
static bool
stage_prejoin (cx_t *cx, const dj_select_t *s, const cx_group_t *g, bson_t *pipeline, uint32_t *n)
{
   const dj_from_t *f = s->from.v[1];
   cx_source_t *src = &cx->sources[1];
   const dj_expr_t *local = NULL, *foreign = NULL;
   char lpath[512], prefix[sizeof src->prefix];
   bool ok = true;

   join_equality (cx, f->on, 1, &local, &foreign);
   if (!cx_column_path (cx, local, lpath, sizeof lpath) || !cx_check_column (cx, src, foreign)) {
      return false;
   }
   if (f->join == DJ_JOIN_INNER) {
      cx_stages (cx, pipeline, n, "{'$match': {'@0': {'$ne': null}}}", CX_ARGS (CX_STR (lpath)));
   }
   bson_t group = BSON_INITIALIZER, post = BSON_INITIALIZER, defaults = BSON_INITIALIZER;
   BSON_APPEND_NULL (&group, "_id");
   /* inside the $lookup the joined table's documents are the input: its
    * columns without their prefix */
   memcpy (prefix, src->prefix, sizeof prefix);
   src->prefix[0] = '\0';
   for (int i = 0; ok && i < g->aggs.n; i++) {
      ok = accumulator (cx, g->aggs.v[i], i, &group, &post, &defaults); /* post, defaults: the outer group's */
   }
   memcpy (src->prefix, prefix, sizeof prefix);
   if (ok) {
      bson_t sp = BSON_INITIALIZER, st;
      BSON_APPEND_DOCUMENT_BEGIN (&sp, "0", &st);
      BSON_APPEND_DOCUMENT (&st, "$group", &group);
      bson_append_document_end (&sp, &st);
      emit_lookup (cx, src, lpath, foreign->name, f->join == DJ_JOIN_LEFT, NULL, &sp, pipeline, n);
      bson_destroy (&sp);
   }
   bson_destroy (&group);
   bson_destroy (&post);
   bson_destroy (&defaults);
   return ok;
}

/* The outer accumulator of aggregate i over the partials at "__dj_<alias>". */
static bool
prejoin_accumulator (cx_t *cx, const dj_expr_t *e, int i, bson_t *group, bson_t *post)
{
   acc_names_t nm;
   char part[240], npart[240];
   acc_names (i, &nm);
   const char *field = nm.field, *nfield = nm.nfield, *ref = nm.ref, *nref = nm.nref;
   snprintf (part, sizeof part, "$__dj_%s.a%d", cx->sources[1].alias, i);
   snprintf (npart, sizeof npart, "$__dj_%s.a%d_n", cx->sources[1].alias, i);
   bool ok = cx_template (cx, "{'@0': '@1'}", CX_ARGS (CX_STR (prejoin_op (e)), CX_STR (part)), group, field);
   if (ok && !strcmp (e->name, "SUM")) {
      /* the non-NULL inputs counted by the partials: none means NULL */
      ok = cx_template (cx, "{'$sum': '@0'}", CX_ARGS (CX_STR (npart)), group, nfield);
      cx_append_null_if_none (post, field, ref, nref);
   }
   return ok;
}

/* One $lookup per subquery in e, results in "__dj_sq<i>" (rows {c0: v}). */
bool
cx_subquery_lookups (cx_t *cx, const dj_expr_t *e, bson_t *pipeline, uint32_t *n)
{
   if (!e) {
      return true;
   }
   if (e->sub && (e->kind == DJ_X_IN_SELECT || e->kind == DJ_X_EXISTS || e->kind == DJ_X_SUBQUERY)) {
      const dj_select_t *sub = e->sub;
      if (cx->nsub >= CX_MAX_SUBS) {
         return cx_unsupported (cx, e->pos, "more than %d subqueries in one statement", CX_MAX_SUBS);
      }
      if (sub->from.n == 0) {
         return cx_unsupported (cx, sub->pos, "a subquery without FROM");
      }
      int want_cols = e->kind == DJ_X_IN_SELECT && e->a->kind == DJ_X_ROW ? e->a->args.n : 1;
      int width = select_width (sub);
      if (e->kind != DJ_X_EXISTS && width != want_cols) {
         return cx_unsupported (cx, sub->pos, "a subquery returning %d column%s where %d %s expected", width,
                                width == 1 ? "" : "s", want_cols, want_cols == 1 ? "is" : "are");
      }
      /* the sub-pipeline is built first: only then are the outer columns
       * it uses (its `let` variables) known */
      bson_t lets = BSON_INITIALIZER, sp = BSON_INITIALIZER;
      cx_t sc = {.params = cx->params, .nparams = cx->nparams, .values_read = cx->values_read, .db = cx->db, .error = cx->error, .catalog = cx->catalog, .depth = cx->depth + 1,
                 .out = NULL, .outer = cx, .lets = &lets};
      uint32_t sn = 0;
      /* IN (SELECT .. UNION SELECT ..): the compound's stages, the first
       * SELECT's collection the $lookup's */
      bool ok = sub->next ? compound_stages (&sc, sub, &sp, &sn, CX_PIPE_NO_COLUMNS)
                          : cx_select_pipeline (&sc, sub, &sp, &sn,
                                                CX_PIPE_SUBQUERY | (e->kind == DJ_X_EXISTS ? CX_PIPE_EXISTS : 0));
      if (ok && e->kind == DJ_X_EXISTS && !sub->limit) {
         cx_stages (cx, &sp, &sn, "{'$limit': 1}", CX_NO_ARGS);
      }
      if (ok) {
         char as[32];
         snprintf (as, sizeof as, "__dj_sq%d", cx->nsub);
         cx_stages (cx, pipeline, n,
                    bson_empty (&lets) ? "{'$lookup': {'from': '@0', 'pipeline': '@2', 'as': '@3'}}"
                                       : "{'$lookup': {'from': '@0', 'let': '@1', 'pipeline': '@2', 'as': '@3'}}",
                    CX_ARGS (CX_STR (base_collection (sub)), CX_DOC (&lets), CX_ARRAY (&sp), CX_STR (as)));
         cx->sub_us |= sc.c0_us ? (uint32_t) 1 << cx->nsub : 0; /* a datetime's remainder (exact_dt.c) */
         cx->subs[cx->nsub++] = e;
      }
      bson_destroy (&lets);
      bson_destroy (&sp);
      return ok;
   }
   if (!cx_subquery_lookups (cx, e->a, pipeline, n) || !cx_subquery_lookups (cx, e->b, pipeline, n) ||
       !cx_subquery_lookups (cx, e->c, pipeline, n)) {
      return false;
   }
   for (int i = 0; i < e->args.n; i++) {
      if (!cx_subquery_lookups (cx, e->args.v[i], pipeline, n)) {
         return false;
      }
   }
   return true;
}

/* After $group: the $lookups of the subqueries in e outside its aggregate
 * calls (whose own subqueries were looked up per row, before $group). */
static bool
lookups_beside_aggs (cx_t *cx, const dj_expr_t *e, bson_t *pipeline, uint32_t *n)
{
   if (!e || cx_is_aggregate (e)) {
      return true;
   }
   if (e->sub && (e->kind == DJ_X_IN_SELECT || e->kind == DJ_X_EXISTS || e->kind == DJ_X_SUBQUERY)) {
      return cx_subquery_lookups (cx, e, pipeline, n);
   }
   bool ok = lookups_beside_aggs (cx, e->a, pipeline, n) && lookups_beside_aggs (cx, e->b, pipeline, n) &&
             lookups_beside_aggs (cx, e->c, pipeline, n);
   for (int i = 0; ok && i < e->args.n; i++) {
      ok = lookups_beside_aggs (cx, e->args.v[i], pipeline, n);
   }
   return ok;
}

bool
cx_select_pipeline (cx_t *cx, const dj_select_t *s, bson_t *pipeline, uint32_t *n, int flags)
{
   cx_idx_t k;
   bson_t st, proj;
   const dj_expr_t *conj[256];
   bool ok = true;
   cx_group_t g = {0};
   dj_list_t keys = {0}; /* GROUP BY with positions and aliases resolved (owned v) */

   if (s->next && !(flags & CX_PIPE_NO_ORDER)) {
      /* only compound_stages() compiles the parts of a compound */
      return cx_unsupported (cx, s->pos, "UNION/INTERSECT/EXCEPT in this position");
   }
   if (!set_sources (cx, s)) {
      return false;
   }
   if (s->from.n == 0) {
      /* SELECT without FROM: one row to compute on, {$documents: [{}]}
       * (aggregate: 1, the database-level form) */
      if (!cx->out || cx->outer || ((flags & CX_PIPE_NO_COLUMNS) && !(flags & CX_PIPE_VALUES))) {
         return cx_unsupported (cx, s->pos, "SELECT without FROM inside another statement");
      }
      cx_stages (cx, pipeline, n, "{'$documents': [{}]}", CX_NO_ARGS);
   }
   if (s->from.n == 1 && ((dj_from_t *) s->from.v[0])->sub) {
      /* a derived table: its own stages first (in a context of its own:
       * its names are not ours), leaving rows {c0, c1, ...} */
      const dj_select_t *in = ((dj_from_t *) s->from.v[0])->sub;
      cx_t sc = {.params = cx->params, .nparams = cx->nparams, .values_read = cx->values_read, .db = cx->db, .error = cx->error, .catalog = cx->catalog,
                 .depth = cx->depth + 1, .out = cx->out, .outer = cx->outer, .lets = cx->lets};
      bool ok_in = in->next ? compound_stages (&sc, in, pipeline, n, CX_PIPE_NO_COLUMNS)
                            : cx_select_pipeline (&sc, in, pipeline, n, CX_PIPE_KEEP_NULLS | CX_PIPE_NO_COLUMNS);
      if (cx->outer) {
         cx->nlets = sc.nlets; /* correlated columns the inner part used */
      }
      if (!ok_in) {
         return false;
      }
   }
   int nc = conjuncts (s->where, conj, 256);
   if (s->where && s->where->kind == DJ_X_AND && s->where->args.n > 256) {
      return cx_unsupported (cx, s->where->pos, "more than 256 AND-ed conditions");
   }
   /* 1. base-table conditions first: they can use the base table's indexes */
   bool done[256] = {false};
   for (int i = 0; ok && i < nc; i++) {
      if (cx_base_only (cx, conj[i]) && !cx_has_subquery (conj[i])) {
         ok = stage_match_filter (cx, conj[i], pipeline, n);
         done[i] = true;
      }
   }
   /* GROUP BY and DISTINCT take equal values as one: under a collation
    * that equates different strings (nocase, levels 1 and 2) SQL would
    * merge what the $group here keeps apart */
   for (int i = 0; ok && i < s->group_by.n + (s->distinct ? s->items.n : 0); i++) {
      const dj_expr_t *e = i < s->group_by.n ? s->group_by.v[i] : ((dj_item_t *) s->items.v[i - s->group_by.n])->expr;
      dj_order_t probe = {.expr = (dj_expr_t *) e};
      int ref = i < s->group_by.n && (e->kind == DJ_X_INT || e->kind == DJ_X_COLUMN) ? order_item_ref (s, &probe) : -1;
      if (ref >= 0) {
         e = ((dj_item_t *) s->items.v[ref])->expr; /* GROUP BY 1 / an alias */
      }
      if (cx_is_collate (e) && !cx_collation_deterministic (((const dj_expr_t *) e->args.v[1])->name)) {
         ok = cx_unsupported (cx, e->pos, "GROUP BY or DISTINCT over a non-deterministic collation");
      }
   }
   /* what grouping there is: the joins may be aggregated before they are unwound */
   bool grouped = s->group_by.n > 0 || has_aggregate (s->having);
   for (int i = 0; i < s->items.n; i++) {
      grouped |= has_aggregate (((dj_item_t *) s->items.v[i])->expr);
   }
   for (int i = 0; i < s->order_by.n; i++) {
      grouped |= has_aggregate (((dj_order_t *) s->order_by.v[i])->expr);
   }
   if (grouped) {
      for (int i = 0; i < s->items.n; i++) {
         cx_collect_aggs (((dj_item_t *) s->items.v[i])->expr, &g);
      }
      cx_collect_aggs (s->having, &g);
      for (int i = 0; i < s->order_by.n; i++) {
         cx_collect_aggs (((dj_order_t *) s->order_by.v[i])->expr, &g);
      }
      /* GROUP BY 1 / GROUP BY alias name a SELECT item (SQLite, MySQL and
       * PostgreSQL all allow it; Django emits GROUP BY 1 for values()) */
      keys.v = bson_malloc (sizeof (void *) * (size_t) (s->group_by.n + 1));
      keys.n = keys.cap = s->group_by.n;
      for (int i = 0; i < s->group_by.n; i++) {
         dj_order_t probe = {.expr = s->group_by.v[i]};
         int ref = order_item_ref (s, &probe);
         keys.v[i] = ref >= 0 && (probe.expr->kind == DJ_X_INT || probe.expr->kind == DJ_X_COLUMN)
                        ? ((dj_item_t *) s->items.v[ref])->expr
                        : s->group_by.v[i];
      }
      g.keys = &keys;
   }
   bool prejoined = grouped && prejoin_eligible (cx, s, &g, nc, done);
   /* 2. joins */
   for (int j = 1; ok && j < s->from.n; j++) {
      ok = prejoined ? stage_prejoin (cx, s, &g, pipeline, n) : stage_join (cx, s->from.v[j], j, pipeline, n);
   }
   /* 3. subqueries, then the rest of WHERE */
   for (int i = 0; ok && i < nc; i++) {
      if (!done[i]) {
         ok = cx_subquery_lookups (cx, conj[i], pipeline, n) && stage_match_filter (cx, conj[i], pipeline, n);
      }
   }
   if (!ok) {
      bson_free (g.aggs.v);
      bson_free (keys.v);
      return false;
   }
   /* 4. grouping */
   if (!grouped) {
      /* scalar subqueries in the SELECT list / ORDER BY */
      for (int i = 0; ok && i < s->items.n; i++) {
         ok = cx_subquery_lookups (cx, ((dj_item_t *) s->items.v[i])->expr, pipeline, n);
      }
      for (int i = 0; ok && i < s->order_by.n; i++) {
         ok = cx_subquery_lookups (cx, ((dj_order_t *) s->order_by.v[i])->expr, pipeline, n);
      }
      /* window functions see the rows WHERE kept */
      if (ok && cx_has_window (s)) {
         ok = cx_window_stages (cx, s, pipeline, n);
      }
   }
   if (grouped) {
      for (int i = 0; ok && i < keys.n; i++) {
         if (has_aggregate (keys.v[i])) {
            ok = cx_unsupported (cx, ((dj_expr_t *) s->group_by.v[i])->pos, "an aggregate in GROUP BY");
         }
      }
      /* a subquery GROUP BY key (GROUP BY 2 naming a Subquery annotation)
       * or in an aggregate's argument or FILTER (SUM(Subquery(...))) is
       * looked up per row, before $group */
      for (int i = 0; ok && i < keys.n; i++) {
         ok = cx_subquery_lookups (cx, keys.v[i], pipeline, n);
      }
      for (int i = 0; ok && i < g.aggs.n; i++) {
         const dj_expr_t *agg = g.aggs.v[i];
         ok = cx_subquery_lookups (cx, agg, pipeline, n) && cx_subquery_lookups (cx, agg->filter, pipeline, n);
      }
      ok = ok && stage_group (cx, s, &g, prejoined, pipeline, n);
      cx->group = &g;
      /* subqueries of HAVING, then of the SELECT list and ORDER BY, look
       * up per group: their outer columns are GROUP BY keys ("$_id.k<i>") */
      if (ok && s->having) {
         ok = lookups_beside_aggs (cx, s->having, pipeline, n) &&
              cx_stages (cx, pipeline, n, "{'$match': {'$expr': '@0'}}", CX_ARGS (CX_TRUTH (s->having, true)));
      }
      for (int i = 0; ok && i < s->items.n; i++) {
         const dj_expr_t *e = ((dj_item_t *) s->items.v[i])->expr;
         ok = is_group_key (&g, e) || lookups_beside_aggs (cx, e, pipeline, n);
      }
      for (int i = 0; ok && i < s->order_by.n; i++) {
         const dj_expr_t *e = ((dj_order_t *) s->order_by.v[i])->expr;
         ok = is_group_key (&g, e) || lookups_beside_aggs (cx, e, pipeline, n);
      }
      /* window functions over the groups HAVING kept (SQL's order: the
       * windows see the grouped rows; their arguments and partitions are
       * GROUP BY keys or aggregates, which read the $group's output) */
      if (ok && cx_has_window (s)) {
         ok = cx_window_stages (cx, s, pipeline, n);
      }
   } else if (s->having) {
      ok = cx_unsupported (cx, s->having->pos, "HAVING without GROUP BY or aggregates");
   }
   /* 5. output columns c0..cn and sort keys s<i> / n<i> */
   int sort_ref[128];
   if (ok && s->order_by.n > 128) {
      ok = cx_unsupported (cx, s->pos, "more than 128 ORDER BY terms");
   }
   BSON_APPEND_DOCUMENT_BEGIN (pipeline, cx_idx (&k, (*n)++), &st);
   BSON_APPEND_DOCUMENT_BEGIN (&st, "$project", &proj);
   BSON_APPEND_INT32 (&proj, "_id", 0);
   for (int i = 0; ok && i < s->items.n; i++) {
      const dj_item_t *it = s->items.v[i];
      char key[16];
      snprintf (key, sizeof key, "c%d", i);
      if (is_star_item (it)) {
         ok = project_star (cx, s, it, i, flags, &proj);
         continue;
      }
      if ((flags & CX_PIPE_KEEP_NULLS) || s->distinct) {
         /* keep NULL columns present: "$sq.c0" arrays and DISTINCT groups
          * must see NULL, not a missing field */
         ok = cx_agg_value_or_null (cx, it->expr, &proj, key);
      } else {
         ok = project_value (cx, it->expr, &proj, key);
      }
      bool us = false; /* a DATETIME column: its microseconds beside (exact_dt.c) */
      ok = ok && cx_dt_project_rem (cx, it->expr, &proj, key, &us);
      if (ok && cx->out && !(flags & CX_PIPE_NO_COLUMNS)) {
         cx_add_column (cx, item_name (it), key);
         if (us) {
            cx_dt_mark_column (cx);
         }
      }
   }
   /* (the ORDER BY of a compound, kept on its first SELECT, is
    * compound_stages' to sort by: no keys in this part's rows) */
   for (int i = 0; ok && !s->next && i < s->order_by.n; i++) {
      const dj_order_t *o = s->order_by.v[i];
      char key[16];
      sort_ref[i] = order_item_ref (s, o);
      /* (with SELECT * FROM (derived), sort_ref indexes the derived table's columns) */
      if (!star_is_derived_columns (cx, s) && sort_ref[i] >= 0 && is_star_item (s->items.v[sort_ref[i]])) {
         ok = cx_unsupported (cx, o->expr->pos, "ORDER BY a * of the SELECT list");
         break;
      }
      if (sort_ref[i] < 0) {
         if (s->distinct) {
            ok = cx_unsupported (cx, o->expr->pos, "ORDER BY an expression not in the SELECT DISTINCT list");
            break;
         }
         snprintf (key, sizeof key, "s%d", i);
         if (cx_is_collate (o->expr)) {
            /* ORDER BY e COLLATE c: by e's sort key under c */
            void *argv[2];
            dj_expr_t k;
            cx_collation_key (&k, argv, o->expr, o->expr);
            ok = project_value (cx, &k, &proj, key);
         } else {
            bool us;
            ok = project_value (cx, o->expr, &proj, key) && cx_dt_project_rem (cx, o->expr, &proj, key, &us);
         }
      }
      bool nulls_first = o->nulls ? o->nulls == 1 : !o->desc;
      if (ok && nulls_first != !o->desc) {
         snprintf (key, sizeof key, "n%d", i);
         /* ORDER BY 2 / ORDER BY alias: whether that SELECT item is NULL,
          * not the position or the name (a derived table's: its column) */
         const dj_expr_t *what = o->expr;
         dj_expr_t dcol = {.kind = DJ_X_COLUMN, .pos = o->expr->pos};
         if (sort_ref[i] >= 0 && star_is_derived_columns (cx, s)) {
            const dj_select_t *in = cx->sources[0].sub;
            while (cx_derived_star (in)) {
               in = cx_derived_star (in);
            }
            dcol.name = (char *) item_name (in->items.v[sort_ref[i]]);
            what = &dcol;
         } else if (sort_ref[i] >= 0) {
            what = ((const dj_item_t *) s->items.v[sort_ref[i]])->expr;
         }
         dj_expr_t isnull = {.kind = DJ_X_IS_NULL, .pos = o->expr->pos, .a = (dj_expr_t *) what};
         dj_expr_t one = {.kind = DJ_X_INT, .ival = 1}, zero = {.kind = DJ_X_INT, .ival = 0};
         void *ca[2] = {&isnull, &one};
         dj_expr_t cs = {.kind = DJ_X_CASE, .pos = o->expr->pos, .args = {.v = ca, .n = 2}, .b = &zero};
         if (s->distinct) {
            ok = cx_unsupported (cx, o->expr->pos, "NULLS FIRST/LAST with SELECT DISTINCT");
            break;
         }
         ok = cx_agg_value (cx, &cs, &proj, key);
      }
   }
   bson_append_document_end (&st, &proj);
   bson_append_document_end (pipeline, &st);
   cx->group = NULL;
   bson_free (g.aggs.v);
   bson_free (keys.v);
   if (!ok) {
      return false;
   }
   /* 6. DISTINCT */
   if (s->distinct) {
      stage_distinct_rows (pipeline, n);
   }
   if (flags & CX_PIPE_NO_ORDER) {
      return true;
   }
   return stage_order_limit (cx, s, sort_ref, pipeline, n);
}

/* 7. ORDER BY (sort_ref[i]: the cN an ORDER BY term names, or -1 for its
 * s<i> key), OFFSET, LIMIT. */
static bool
stage_order_limit (cx_t *cx, const dj_select_t *s, const int *sort_ref, bson_t *pipeline, uint32_t *n)
{
   cx_idx_t k;
   bson_t st, sort;
   if (s->order_by.n) {
      BSON_APPEND_DOCUMENT_BEGIN (pipeline, cx_idx (&k, (*n)++), &st);
      BSON_APPEND_DOCUMENT_BEGIN (&st, "$sort", &sort);
      for (int i = 0; i < s->order_by.n; i++) {
         const dj_order_t *o = s->order_by.v[i];
         char key[16];
         bool nulls_first = o->nulls ? o->nulls == 1 : !o->desc;
         if (nulls_first != !o->desc) {
            snprintf (key, sizeof key, "n%d", i);
            BSON_APPEND_INT32 (&sort, key, nulls_first ? -1 : 1);
         }
         snprintf (key, sizeof key, sort_ref[i] >= 0 ? "c%d" : "s%d", sort_ref[i] >= 0 ? sort_ref[i] : i);
         if (!bson_has_field (&sort, key)) {
            BSON_APPEND_INT32 (&sort, key, o->desc ? -1 : 1);
            cx_dt_sort_key (cx, s, sort_ref[i], o, &sort, key); /* a datetime's microseconds next */
         }
      }
      bson_append_document_end (&st, &sort);
      bson_append_document_end (pipeline, &st);
   }
   int64_t skip = 0, limit = -1;
   if (s->offset && (skip = count_value (cx, s->offset, "OFFSET")) < 0) {
      return false;
   }
   if (s->limit && (limit = count_value (cx, s->limit, "LIMIT")) < 0) {
      return false;
   }
   if (skip > 0) {
      cx_stages (cx, pipeline, n, "{'$skip': '@0'}", CX_ARGS (CX_INT64 (skip)));
   }
   if (limit == 0) {
      /* $limit must be positive: LIMIT 0 becomes a $match that keeps nothing */
      cx_stages (cx, pipeline, n, "{'$match': {'$expr': false}}", CX_NO_ARGS);
   } else if (limit > 0 && limit != INT64_MAX) {
      cx_stages (cx, pipeline, n, "{'$limit': '@0'}", CX_ARGS (CX_INT64 (limit)));
   }
   return true;
}

bool
cx_compile_select (cx_t *cx, const dj_sql_stmt_t *st)
{
   const dj_select_t *s = st->select;
   cx->out->kind = DJ_MQL_ROWS;
   if (st->for_update && !cx_compile_claim (cx, st)) {
      return false;
   }
   const char *coll = base_collection (s);
   if (coll) {
      cx->out->collection = bson_strdup (coll); /* where the cursor lives */
   }
   if (s->from.n && !s->next) {
      if (!set_sources (cx, s)) {
         return false;
      }
      if (find_eligible (cx, s)) {
         return compile_find (cx, s);
      }
   }
   return cx_add_aggregate (cx, coll, s, 0);
}

bool
cx_add_aggregate (cx_t *cx, const char *coll, const dj_select_t *s, int flags)
{
   /* built in place, not from a template: the pipeline is most of the
    * command, and a copy of it would be a second allocation */
   bson_t *cmd = bson_new (), pipeline, cursor;
   uint32_t n = 0;
   if (coll) {
      BSON_APPEND_UTF8 (cmd, "aggregate", coll);
   } else {
      BSON_APPEND_INT32 (cmd, "aggregate", 1);
   }
   BSON_APPEND_ARRAY_BEGIN (cmd, "pipeline", &pipeline);
   bool ok = s->next ? compound_stages (cx, s, &pipeline, &n, flags) : cx_select_pipeline (cx, s, &pipeline, &n, flags);
   bson_append_array_end (cmd, &pipeline);
   BSON_APPEND_DOCUMENT_BEGIN (cmd, "cursor", &cursor);
   bson_append_document_end (cmd, &cursor);
   return cx_add_command_if (cx, ok, cmd);
}

/* ---- UNION / INTERSECT / EXCEPT ---- */

/* One row per distinct row: {$group: {_id: "$$ROOT"}}, {$replaceWith: "$_id"}. */
static void
stage_distinct_rows (bson_t *pipeline, uint32_t *n)
{
   cx_stages (NULL, pipeline, n, "[{'$group': {'_id': '$$ROOT'}}, {'$replaceWith': '$_id'}]", CX_NO_ARGS);
}

/* {$group: {_id: {c0: "$c0", ...}, <accumulators>}}: one group per row of
 * ncols columns; `group` is the template of the $group stage, "@0" its _id.
 * Bit i of `us`: column i may have a remainder, c<i>__us, which is part of
 * the row (cx_dt_items_us). */
static void
stage_group_rows (bson_t *pipeline, uint32_t *n, int ncols, uint64_t us, const char *group)
{
   bson_t id = BSON_INITIALIZER;
   for (int i = 0; i < ncols; i++) {
      char key[16], ref[16];
      snprintf (key, sizeof key, "c%d", i);
      snprintf (ref, sizeof ref, "$c%d", i);
      BSON_APPEND_UTF8 (&id, key, ref);
      cx_dt_row_rem (&id, i, us); /* a datetime's microseconds */
   }
   cx_stages (NULL, pipeline, n, group, CX_ARGS (CX_DOC (&id)));
   bson_destroy (&id);
}

/* {$set: {__dj_t: tag}}: which side of an INTERSECT/EXCEPT a row is from */
static void
stage_tag (bson_t *pipeline, uint32_t *n, int tag)
{
   cx_stages (NULL, pipeline, n, "{'$set': {'__dj_t': '@0'}}", CX_ARGS (CX_INT32 (tag)));
}

/* INTERSECT ALL / EXCEPT ALL: count each row's copies per side, keep
 * min(l, r) or max(l - r, 0) of them:
 *   {$group: {_id: row, l: {$sum: left ? 1 : 0}, r: {$sum: right ? 1 : 0}}}
 *   {$set: {n: ...}} {$match: {n > 0}} {$set: {k: {$range: [0, n]}}}
 *   {$unwind: "$k"} {$replaceWith: "$_id"} */
static void
stage_multiset (bson_t *pipeline, uint32_t *n, int ncols, uint64_t us, bool intersect)
{
   /* a row's copies from the left (tag 0) and from the right (tag 1) */
   stage_group_rows (pipeline, n, ncols, us,
                     "{'$group': {'_id': '@0', 'l': {'$sum': {'$cond': [{'$eq': ['$__dj_t', 0]}, 1, 0]}}, "
                     "'r': {'$sum': {'$cond': [{'$eq': ['$__dj_t', 1]}, 1, 0]}}}}");
   cx_stages (NULL, pipeline, n,
              intersect ? "{'$set': {'n': {'$min': ['$l', '$r']}}}"
                        : "{'$set': {'n': {'$max': [{'$subtract': ['$l', '$r']}, 0]}}}",
              CX_NO_ARGS);
   cx_stages (NULL, pipeline, n,
              "[{'$match': {'$expr': {'$gt': ['$n', 0]}}}, {'$set': {'k': {'$range': [0, '$n']}}},"
              " {'$unwind': '$k'}, {'$replaceWith': '$_id'}]",
              CX_NO_ARGS);
}

/* Left to right, as SQL reads `a UNION b EXCEPT c`:
 *   UNION ALL   {$unionWith: {coll, pipeline}}
 *   UNION       the same, then one row per distinct row ($group on $$ROOT)
 *   INTERSECT / EXCEPT  rows so far tagged 0, the branch's tagged 1; after
 *               $unionWith, group by the row and keep it when it came from
 *               both sides (INTERSECT) or only from the left (EXCEPT);
 *               ... ALL keeps as many copies as SQL's multiset rules say
 *               (stage_multiset).
 * Branches keep NULL columns present, so rows compare whole. ORDER BY,
 * LIMIT and OFFSET apply to the result and may name its columns only. */
static bool
compound_stages (cx_t *cx, const dj_select_t *s, bson_t *pipeline, uint32_t *n, int flags)
{
   int ncols = select_width (s);
   if (!cx_select_pipeline (cx, s, pipeline, n, CX_PIPE_KEEP_NULLS | CX_PIPE_NO_ORDER | (flags & CX_PIPE_NO_COLUMNS))) {
      return false;
   }
   uint64_t us = cx_dt_items_us (cx, s);
   for (const dj_select_t *left = s; left->next; left = left->next) {
      const dj_select_t *b = left->next;
      dj_setop_t op = left->setop;
      if (select_width (b) != ncols) {
         return cx_unsupported (cx, b->pos, "the SELECTs of a UNION/INTERSECT/EXCEPT have %d and %d columns", ncols,
                                select_width (b));
      }
      if (b->from.n == 0) {
         return cx_unsupported (cx, b->pos, "SELECT without FROM");
      }
      if (b->order_by.n || b->limit || b->offset) {
         return cx_unsupported (cx, b->pos, "ORDER BY or LIMIT inside one SELECT of a UNION/INTERSECT/EXCEPT");
      }
      bool tagged = op != DJ_SET_UNION && op != DJ_SET_UNION_ALL;
      bool intersect = op == DJ_SET_INTERSECT || op == DJ_SET_INTERSECT_ALL;
      bool all = op == DJ_SET_INTERSECT_ALL || op == DJ_SET_EXCEPT_ALL;
      if (tagged) {
         stage_tag (pipeline, n, 0);
      }
      bson_t bp = BSON_INITIALIZER;
      uint32_t bn = 0;
      dj_select_t branch = *b;
      branch.next = NULL;
      /* in a correlated subquery the branch may read the $lookup's `let`
       * variables: a $unionWith pipeline is parsed in the expression
       * context of the pipeline around it, variables included (a server
       * that saw otherwise would refuse the command: "Use of undefined
       * variable", never other rows) */
      bool ok = cx_select_pipeline (cx, &branch, &bp, &bn, CX_PIPE_KEEP_NULLS | CX_PIPE_NO_COLUMNS | CX_PIPE_NO_ORDER);
      us |= ok ? cx_dt_items_us (cx, &branch) : 0;
      if (ok && tagged) {
         stage_tag (&bp, &bn, 1);
      }
      cx_stages (cx, pipeline, n, "{'$unionWith': {'coll': '@0', 'pipeline': '@1'}}",
                 CX_ARGS (CX_STR (base_collection (b)), CX_ARRAY (&bp)));
      bson_destroy (&bp);
      if (!ok) {
         return false;
      }
      if (op == DJ_SET_UNION) {
         stage_distinct_rows (pipeline, n);
      } else if (tagged && all) {
         stage_multiset (pipeline, n, ncols, us, intersect);
      } else if (tagged) {
         /* the sides each row came from: INTERSECT keeps the rows of both,
          * EXCEPT those of the left only */
         stage_group_rows (pipeline, n, ncols, us, "{'$group': {'_id': '@0', 't': {'$addToSet': '$__dj_t'}}}");
         cx_stages (NULL, pipeline, n,
                    intersect ? "[{'$match': {'t': {'$all': [0, 1]}}}, {'$replaceWith': '$_id'}]"
                              : "[{'$match': {'t': {'$nin': [1]}}}, {'$replaceWith': '$_id'}]",
                    CX_NO_ARGS);
      }
   }
   int sort_ref[128];
   if (s->order_by.n > 128) {
      return cx_unsupported (cx, s->pos, "more than 128 ORDER BY terms");
   }
   for (int i = 0; i < s->order_by.n; i++) {
      const dj_order_t *o = s->order_by.v[i];
      sort_ref[i] = order_item_ref (s, o);
      bool nulls_first = o->nulls ? o->nulls == 1 : !o->desc;
      if (sort_ref[i] < 0) {
         return cx_unsupported (cx, o->expr->pos, "ORDER BY of a UNION/INTERSECT/EXCEPT that is not one of its columns");
      }
      if (nulls_first == o->desc) {
         /* NULLS FIRST/LAST against the direction's default: the sort key
          * n<i> of stage_order_limit, 1 for a NULL c<ref> */
         char key[16], ref[16];
         snprintf (key, sizeof key, "n%d", i);
         snprintf (ref, sizeof ref, "$c%d", sort_ref[i]);
         cx_stages (NULL, pipeline, n, "{'$set': {'@0': {'$cond': [{'$eq': [{'$ifNull': ['@1', null]}, null]}, 1, 0]}}}",
                    CX_ARGS (CX_STR (key), CX_STR (ref)));
      }
   }
   return stage_order_limit (cx, s, sort_ref, pipeline, n);
}
