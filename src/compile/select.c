/*
 * select.c -- SELECT -> find, or aggregate.
 *
 * `find` when the statement is a plain filter/sort/skip/limit/projection on
 * one table (what most of Django's ORM reads are); `aggregate` otherwise,
 * with stages in SQL's logical order:
 *
 *   $match (WHERE conjuncts on the base table: before the joins, so indexes
 *   serve them) -> per JOIN: $lookup + $unwind -> $lookup per subquery ->
 *   $match (the rest of WHERE) -> $group (GROUP BY / aggregates) -> $match
 *   (HAVING) -> $project (c0..cn, sort keys) -> $group (DISTINCT) -> $sort
 *   -> $skip -> $limit
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

static bool
has_aggregate (const dj_expr_t *e)
{
   if (!e) {
      return false;
   }
   if (cx_is_aggregate (e)) {
      return true;
   }
   if (has_aggregate (e->a) || has_aggregate (e->b) || has_aggregate (e->c)) {
      return true;
   }
   for (int i = 0; i < e->args.n; i++) {
      if (has_aggregate (e->args.v[i])) {
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
   if (!cx_is_const (e)) {
      cx_unsupported (cx, e->pos, "%s that is not a constant or parameter", what);
      return -1;
   }
   if (!cx_const_value (cx, e, &tmp, &v)) {
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

/* ORDER BY item -> index of the SELECT item it names (alias or 1-based
 * position), or -1. */
static int
order_item_ref (const dj_select_t *s, const dj_order_t *o)
{
   const dj_expr_t *e = o->expr;
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
   bson_t lit;
   BSON_APPEND_DOCUMENT_BEGIN (proj, key, &lit);
   bool ok = cx_append_const (cx, e, &lit, "$literal");
   bson_append_document_end (proj, &lit);
   return ok;
}

static bool stage_order_limit (cx_t *cx, const dj_select_t *s, const int *sort_ref, bson_t *pipeline, uint32_t *n);
static bool compound_stages (cx_t *cx, const dj_select_t *s, bson_t *pipeline, uint32_t *n, int flags);

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
      cmd = bson_new ();
      BSON_APPEND_UTF8 (cmd, "find", cx->sources[0].table);
      bson_t f;
      BSON_APPEND_DOCUMENT_BEGIN (cmd, "filter", &f);
      BSON_APPEND_BOOL (&f, "$expr", false);
      bson_append_document_end (cmd, &f);
      BSON_APPEND_INT32 (cmd, "limit", 1);
   } else if (ok && limit > 0 && limit != INT64_MAX) {
      BSON_APPEND_INT64 (cmd, "limit", limit);
   }
   if (!ok) {
      bson_destroy (cmd);
      return false;
   }
   return cx_add_command (cx, cmd, 0, false);
}

/* ---- aggregate ---- */

static bool
stage_match_filter (cx_t *cx, const dj_expr_t *e, bson_t *pipeline, uint32_t *n)
{
   cx_idx_t k;
   bson_t st;
   BSON_APPEND_DOCUMENT_BEGIN (pipeline, cx_idx (&k, (*n)++), &st);
   bool ok = cx_filter (cx, e, true, &st, "$match");
   bson_append_document_end (pipeline, &st);
   return ok;
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

static bool
stage_join (cx_t *cx, const dj_from_t *f, int j, bson_t *pipeline, uint32_t *n)
{
   const cx_source_t *src = &cx->sources[j];
   const dj_expr_t *local = NULL, *foreign = NULL;
   char lpath[512], as[200];
   cx_idx_t k;
   bson_t st, lk, sub;
   const dj_expr_t *rest[64];
   int nrest = 0;

   snprintf (as, sizeof as, "__dj_%s", src->alias);
   if (f->join != DJ_JOIN_CROSS) {
      const dj_expr_t *conj[64];
      int nc = conjuncts (f->on, conj, 64);
      for (int i = 0; i < nc; i++) {
         if (!local && join_equality (cx, conj[i], j, &local, &foreign)) {
            continue;
         }
         rest[nrest++] = conj[i];
      }
      if (!local) {
         return cx_unsupported (cx, f->pos, "JOIN ... ON without an equality between a column of \"%s\" and an earlier table",
                                src->alias);
      }
      if (nrest && f->join == DJ_JOIN_LEFT) {
         return cx_unsupported (cx, f->pos, "LEFT JOIN with conditions beyond one column equality");
      }
      if (!cx_column_path (cx, local, lpath, sizeof lpath)) {
         return false;
      }
      if (f->join == DJ_JOIN_INNER) {
         /* SQL: NULL joins nothing; $lookup would pair a NULL local field
          * with foreign documents whose field is NULL or missing. */
         bson_t m, c;
         BSON_APPEND_DOCUMENT_BEGIN (pipeline, cx_idx (&k, (*n)++), &st);
         BSON_APPEND_DOCUMENT_BEGIN (&st, "$match", &m);
         BSON_APPEND_DOCUMENT_BEGIN (&m, lpath, &c);
         BSON_APPEND_NULL (&c, "$ne");
         bson_append_document_end (&m, &c);
         bson_append_document_end (&st, &m);
         bson_append_document_end (pipeline, &st);
      }
   }
   BSON_APPEND_DOCUMENT_BEGIN (pipeline, cx_idx (&k, (*n)++), &st);
   BSON_APPEND_DOCUMENT_BEGIN (&st, "$lookup", &lk);
   BSON_APPEND_UTF8 (&lk, "from", src->table);
   if (local) {
      BSON_APPEND_UTF8 (&lk, "localField", lpath);
      BSON_APPEND_UTF8 (&lk, "foreignField", foreign->name);
   } else {
      BSON_APPEND_ARRAY_BEGIN (&lk, "pipeline", &sub);
      bson_append_array_end (&lk, &sub);
   }
   BSON_APPEND_UTF8 (&lk, "as", as);
   bson_append_document_end (&st, &lk);
   bson_append_document_end (pipeline, &st);

   char ref[210];
   snprintf (ref, sizeof ref, "$%s", as);
   if (f->join == DJ_JOIN_LEFT) {
      /* a NULL local field matches nothing: empty the array it got */
      bson_t set, cond, ca, eq, ea, ifn, ia, empty;
      char lref[520];
      snprintf (lref, sizeof lref, "$%s", lpath);
      BSON_APPEND_DOCUMENT_BEGIN (pipeline, cx_idx (&k, (*n)++), &st);
      BSON_APPEND_DOCUMENT_BEGIN (&st, "$set", &set);
      BSON_APPEND_DOCUMENT_BEGIN (&set, as, &cond);
      BSON_APPEND_ARRAY_BEGIN (&cond, "$cond", &ca);
      BSON_APPEND_DOCUMENT_BEGIN (&ca, "0", &eq);
      BSON_APPEND_ARRAY_BEGIN (&eq, "$eq", &ea);
      BSON_APPEND_DOCUMENT_BEGIN (&ea, "0", &ifn);
      BSON_APPEND_ARRAY_BEGIN (&ifn, "$ifNull", &ia);
      BSON_APPEND_UTF8 (&ia, "0", lref);
      BSON_APPEND_NULL (&ia, "1");
      bson_append_array_end (&ifn, &ia);
      bson_append_document_end (&ea, &ifn);
      BSON_APPEND_NULL (&ea, "1");
      bson_append_array_end (&eq, &ea);
      bson_append_document_end (&ca, &eq);
      BSON_APPEND_ARRAY_BEGIN (&ca, "1", &empty);
      bson_append_array_end (&ca, &empty);
      BSON_APPEND_UTF8 (&ca, "2", ref);
      bson_append_array_end (&cond, &ca);
      bson_append_document_end (&set, &cond);
      bson_append_document_end (&st, &set);
      bson_append_document_end (pipeline, &st);
   }
   bson_t uw;
   BSON_APPEND_DOCUMENT_BEGIN (pipeline, cx_idx (&k, (*n)++), &st);
   BSON_APPEND_DOCUMENT_BEGIN (&st, "$unwind", &uw);
   BSON_APPEND_UTF8 (&uw, "path", ref);
   BSON_APPEND_BOOL (&uw, "preserveNullAndEmptyArrays", f->join == DJ_JOIN_LEFT);
   bson_append_document_end (&st, &uw);
   bson_append_document_end (pipeline, &st);

   /* the rest of an INNER JOIN's ON is a filter on the joined rows */
   for (int i = 0; i < nrest; i++) {
      if (!stage_match_filter (cx, rest[i], pipeline, n)) {
         return false;
      }
   }
   return true;
}

/* The accumulator for aggregate call e into group field a<i>; a post-$group
 * fix-up (COUNT DISTINCT, SUM's NULL, VARIANCE) goes into `post`. */
static bool
accumulator (cx_t *cx, const dj_expr_t *e, int i, bson_t *group, bson_t *post, bson_t *defaults)
{
   char field[24], nfield[24], ref[28], nref[28];
   const char *f = e->name;
   bool distinct = (e->flags & DJ_XF_DISTINCT) != 0;
   bson_t acc;
   bool ok = true;

   snprintf (field, sizeof field, "a%d", i);
   snprintf (nfield, sizeof nfield, "a%d_n", i);
   snprintf (ref, sizeof ref, "$a%d", i);
   snprintf (nref, sizeof nref, "$a%d_n", i);
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
      BSON_APPEND_DOCUMENT_BEGIN (group, field, &acc);
      ok = cx_agg_value (cx, arg, &acc, "$addToSet");
      bson_append_document_end (group, &acc);
      bson_t red, filt, fd, fc, fca;
      BSON_APPEND_DOCUMENT_BEGIN (post, field, &red);
      const char *op = is_count ? "$size" : !strcmp (f, "SUM") ? "$sum" : !strcmp (f, "AVG") ? "$avg" :
                       !strcmp (f, "MIN") ? "$min" : !strcmp (f, "MAX") ? "$max" : NULL;
      if (!op) {
         return cx_unsupported (cx, e->pos, "%s(DISTINCT ...)", f);
      }
      BSON_APPEND_DOCUMENT_BEGIN (&red, op, &filt);
      BSON_APPEND_DOCUMENT_BEGIN (&filt, "$filter", &fd);
      BSON_APPEND_UTF8 (&fd, "input", ref);
      BSON_APPEND_DOCUMENT_BEGIN (&fd, "cond", &fc);
      BSON_APPEND_ARRAY_BEGIN (&fc, "$ne", &fca);
      BSON_APPEND_UTF8 (&fca, "0", "$$this");
      BSON_APPEND_NULL (&fca, "1");
      bson_append_array_end (&fc, &fca);
      bson_append_document_end (&fd, &fc);
      bson_append_document_end (&filt, &fd);
      bson_append_document_end (&red, &filt);
      bson_append_document_end (post, &red);
      if (!strcmp (f, "SUM")) {
         return cx_unsupported (cx, e->pos, "SUM(DISTINCT ...)"); /* $sum of [] is 0, SQL says NULL */
      }
      return ok;
   }
   if (is_count) {
      BSON_APPEND_DOCUMENT_BEGIN (group, field, &acc);
      if ((e->flags & DJ_XF_STAR) && !e->filter) {
         BSON_APPEND_INT32 (&acc, "$sum", 1);
      } else {
         ok = cx_append_count_nonnull (cx, arg, &acc); /* COUNT(x): rows where x is not NULL */
      }
      bson_append_document_end (group, &acc);
      return ok;
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
      BSON_APPEND_DOCUMENT_BEGIN (group, field, &acc);
      ok = cx_agg_value (cx, arg, &acc, accs[j].op);
      bson_append_document_end (group, &acc);
      if (!strcmp (f, "SUM")) {
         /* count the non-NULL inputs: none means SUM is NULL */
         BSON_APPEND_DOCUMENT_BEGIN (group, nfield, &acc);
         ok = ok && cx_append_count_nonnull (cx, arg, &acc);
         bson_append_document_end (group, &acc);
         cx_append_null_if_none (post, field, ref, nref);
      } else if (accs[j].square) {
         bson_t sq, sa;
         BSON_APPEND_DOCUMENT_BEGIN (post, field, &sq);
         BSON_APPEND_ARRAY_BEGIN (&sq, "$pow", &sa);
         BSON_APPEND_UTF8 (&sa, "0", ref);
         BSON_APPEND_INT32 (&sa, "1", 2);
         bson_append_array_end (&sq, &sa);
         bson_append_document_end (post, &sq);
      }
      return ok;
   }
   return cx_unsupported (cx, e->pos, "aggregate %s()", f);
}

static bool
stage_group (cx_t *cx, const dj_select_t *s, cx_group_t *g, bson_t *pipeline, uint32_t *n)
{
   cx_idx_t k, k2;
   bson_t st, group, id, post, defaults;
   bool ok = true;

   bson_init (&post);
   bson_init (&defaults);
   bson_t *target = pipeline;
   uint32_t *tn = n, fn = 0;
   bson_t facet_st, facet, facet_arr;
   bool scalar = s->group_by.n == 0;
   if (scalar) {
      /* {$facet: {g: [$group, $set]}} -> {$replaceWith: {$ifNull: [{$arrayElemAt: ["$g", 0]}, defaults]}} */
      BSON_APPEND_DOCUMENT_BEGIN (pipeline, cx_idx (&k, (*n)++), &facet_st);
      BSON_APPEND_DOCUMENT_BEGIN (&facet_st, "$facet", &facet);
      BSON_APPEND_ARRAY_BEGIN (&facet, "g", &facet_arr);
      target = &facet_arr;
      tn = &fn;
   }
   BSON_APPEND_DOCUMENT_BEGIN (target, cx_idx (&k, (*tn)++), &st);
   BSON_APPEND_DOCUMENT_BEGIN (&st, "$group", &group);
   if (scalar) {
      BSON_APPEND_NULL (&group, "_id");
   } else {
      BSON_APPEND_DOCUMENT_BEGIN (&group, "_id", &id);
      for (int i = 0; ok && i < g->keys->n; i++) {
         char key[16];
         snprintf (key, sizeof key, "k%d", i);
         ok = cx_agg_value_or_null (cx, g->keys->v[i], &id, key);
      }
      bson_append_document_end (&group, &id);
   }
   for (int i = 0; ok && i < g->aggs.n; i++) {
      ok = accumulator (cx, g->aggs.v[i], i, &group, &post, &defaults);
   }
   bson_append_document_end (&st, &group);
   bson_append_document_end (target, &st);
   if (ok && !bson_empty (&post)) {
      BSON_APPEND_DOCUMENT_BEGIN (target, cx_idx (&k2, (*tn)++), &st);
      BSON_APPEND_DOCUMENT (&st, "$set", &post);
      bson_append_document_end (target, &st);
   }
   if (scalar) {
      bson_t rw, ifn, ia, at, aa;
      bson_append_array_end (&facet, &facet_arr);
      bson_append_document_end (&facet_st, &facet);
      bson_append_document_end (pipeline, &facet_st);
      BSON_APPEND_DOCUMENT_BEGIN (pipeline, cx_idx (&k, (*n)++), &st);
      BSON_APPEND_DOCUMENT_BEGIN (&st, "$replaceWith", &rw);
      BSON_APPEND_ARRAY_BEGIN (&rw, "$ifNull", &ia);
      BSON_APPEND_DOCUMENT_BEGIN (&ia, "0", &at);
      BSON_APPEND_ARRAY_BEGIN (&at, "$arrayElemAt", &aa);
      BSON_APPEND_UTF8 (&aa, "0", "$g");
      BSON_APPEND_INT32 (&aa, "1", 0);
      bson_append_array_end (&at, &aa);
      bson_append_document_end (&ia, &at);
      BSON_APPEND_DOCUMENT_BEGIN (&ia, "1", &ifn);
      BSON_APPEND_DOCUMENT (&ifn, "$literal", &defaults);
      bson_append_document_end (&ia, &ifn);
      bson_append_array_end (&rw, &ia);
      bson_append_document_end (&st, &rw);
      bson_append_document_end (pipeline, &st);
   }
   bson_destroy (&post);
   bson_destroy (&defaults);
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
      if (sub->next) {
         return cx_unsupported (cx, sub->pos, "UNION/INTERSECT/EXCEPT inside a subquery");
      }
      if (e->kind != DJ_X_EXISTS && sub->items.n != 1) {
         return cx_unsupported (cx, sub->pos, "a subquery returning %d columns where one is expected", sub->items.n);
      }
      /* the sub-pipeline is built first: only then are the outer columns
       * it uses (its `let` variables) known */
      bson_t lets = BSON_INITIALIZER, sp = BSON_INITIALIZER;
      cx_t sc = {.params = cx->params, .nparams = cx->nparams, .db = cx->db, .error = cx->error, .depth = cx->depth + 1,
                 .out = NULL, .outer = cx, .lets = &lets};
      bson_t st, lk;
      cx_idx_t k;
      uint32_t sn = 0;
      const dj_from_t *f0 = sub->from.v[0];
      bool ok = cx_select_pipeline (&sc, sub, &sp, &sn, CX_PIPE_SUBQUERY);
      if (ok && e->kind == DJ_X_EXISTS && !sub->limit) {
         bson_t lim;
         BSON_APPEND_DOCUMENT_BEGIN (&sp, cx_idx (&k, sn++), &lim);
         BSON_APPEND_INT32 (&lim, "$limit", 1);
         bson_append_document_end (&sp, &lim);
      }
      if (ok) {
         char as[32];
         snprintf (as, sizeof as, "__dj_sq%d", cx->nsub);
         BSON_APPEND_DOCUMENT_BEGIN (pipeline, cx_idx (&k, (*n)++), &st);
         BSON_APPEND_DOCUMENT_BEGIN (&st, "$lookup", &lk);
         BSON_APPEND_UTF8 (&lk, "from", f0->name ? f0->name : "");
         if (!bson_empty (&lets)) {
            BSON_APPEND_DOCUMENT (&lk, "let", &lets);
         }
         bson_append_array (&lk, "pipeline", -1, &sp);
         BSON_APPEND_UTF8 (&lk, "as", as);
         bson_append_document_end (&st, &lk);
         bson_append_document_end (pipeline, &st);
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
      bson_t docs, one;
      if (!cx->out || cx->outer || (flags & CX_PIPE_NO_COLUMNS)) {
         return cx_unsupported (cx, s->pos, "SELECT without FROM inside another statement");
      }
      BSON_APPEND_DOCUMENT_BEGIN (pipeline, cx_idx (&k, (*n)++), &st);
      BSON_APPEND_ARRAY_BEGIN (&st, "$documents", &docs);
      BSON_APPEND_DOCUMENT_BEGIN (&docs, "0", &one);
      bson_append_document_end (&docs, &one);
      bson_append_array_end (&st, &docs);
      bson_append_document_end (pipeline, &st);
   }
   if (s->from.n == 1 && ((dj_from_t *) s->from.v[0])->sub) {
      /* a derived table: its own stages first (in a context of its own:
       * its names are not ours), leaving rows {c0, c1, ...} */
      const dj_select_t *in = ((dj_from_t *) s->from.v[0])->sub;
      cx_t sc = {.params = cx->params, .nparams = cx->nparams, .db = cx->db, .error = cx->error,
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
   /* 2. joins */
   for (int j = 1; ok && j < s->from.n; j++) {
      ok = stage_join (cx, s->from.v[j], j, pipeline, n);
   }
   /* 3. subqueries, then the rest of WHERE */
   for (int i = 0; ok && i < nc; i++) {
      if (!done[i]) {
         ok = cx_subquery_lookups (cx, conj[i], pipeline, n) && stage_match_filter (cx, conj[i], pipeline, n);
      }
   }
   if (!ok) {
      return false;
   }
   /* 4. grouping */
   bool grouped = s->group_by.n > 0 || has_aggregate (s->having);
   for (int i = 0; i < s->items.n; i++) {
      grouped |= has_aggregate (((dj_item_t *) s->items.v[i])->expr);
   }
   for (int i = 0; i < s->order_by.n; i++) {
      grouped |= has_aggregate (((dj_order_t *) s->order_by.v[i])->expr);
   }
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
   } else if (cx_has_window (s)) {
      ok = cx_unsupported (cx, s->pos, "window functions together with GROUP BY or aggregates");
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
      for (int i = 0; ok && i < keys.n; i++) {
         if (has_aggregate (keys.v[i])) {
            ok = cx_unsupported (cx, ((dj_expr_t *) s->group_by.v[i])->pos, "an aggregate in GROUP BY");
         }
      }
      ok = ok && stage_group (cx, s, &g, pipeline, n);
      cx->group = &g;
      if (ok && s->having) {
         if (cx_has_subquery (s->having)) {
            ok = cx_unsupported (cx, s->having->pos, "a subquery in HAVING");
         } else {
            bson_t m;
            BSON_APPEND_DOCUMENT_BEGIN (pipeline, cx_idx (&k, (*n)++), &st);
            BSON_APPEND_DOCUMENT_BEGIN (&st, "$match", &m);
            ok = cx_agg_truth (cx, s->having, true, &m, "$expr");
            bson_append_document_end (&st, &m);
            bson_append_document_end (pipeline, &st);
         }
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
         ok = cx_unsupported (cx, it->expr->pos, "* in a SELECT list with joins, grouping or expressions (djongo has no schema to expand it)");
         break;
      }
      if ((flags & CX_PIPE_KEEP_NULLS) || s->distinct) {
         /* keep NULL columns present: "$sq.c0" arrays and DISTINCT groups
          * must see NULL, not a missing field */
         ok = cx_agg_value_or_null (cx, it->expr, &proj, key);
      } else {
         ok = project_value (cx, it->expr, &proj, key);
      }
      if (ok && cx->out && !(flags & CX_PIPE_NO_COLUMNS)) {
         cx_add_column (cx, item_name (it), key);
      }
   }
   for (int i = 0; ok && i < s->order_by.n; i++) {
      const dj_order_t *o = s->order_by.v[i];
      char key[16];
      sort_ref[i] = order_item_ref (s, o);
      if (sort_ref[i] < 0) {
         if (s->distinct) {
            ok = cx_unsupported (cx, o->expr->pos, "ORDER BY an expression not in the SELECT DISTINCT list");
            break;
         }
         snprintf (key, sizeof key, "s%d", i);
         ok = project_value (cx, o->expr, &proj, key);
      }
      bool nulls_first = o->nulls ? o->nulls == 1 : !o->desc;
      if (ok && nulls_first != !o->desc) {
         snprintf (key, sizeof key, "n%d", i);
         dj_expr_t isnull = {.kind = DJ_X_IS_NULL, .pos = o->expr->pos, .a = o->expr};
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
      bson_t grp;
      BSON_APPEND_DOCUMENT_BEGIN (pipeline, cx_idx (&k, (*n)++), &st);
      BSON_APPEND_DOCUMENT_BEGIN (&st, "$group", &grp);
      BSON_APPEND_UTF8 (&grp, "_id", "$$ROOT");
      bson_append_document_end (&st, &grp);
      bson_append_document_end (pipeline, &st);
      BSON_APPEND_DOCUMENT_BEGIN (pipeline, cx_idx (&k, (*n)++), &st);
      BSON_APPEND_UTF8 (&st, "$replaceWith", "$_id");
      bson_append_document_end (pipeline, &st);
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
      BSON_APPEND_DOCUMENT_BEGIN (pipeline, cx_idx (&k, (*n)++), &st);
      BSON_APPEND_INT64 (&st, "$skip", skip);
      bson_append_document_end (pipeline, &st);
   }
   if (limit == 0) {
      /* $limit must be positive: LIMIT 0 becomes a $match that keeps nothing */
      bson_t m;
      BSON_APPEND_DOCUMENT_BEGIN (pipeline, cx_idx (&k, (*n)++), &st);
      BSON_APPEND_DOCUMENT_BEGIN (&st, "$match", &m);
      BSON_APPEND_BOOL (&m, "$expr", false);
      bson_append_document_end (&st, &m);
      bson_append_document_end (pipeline, &st);
   } else if (limit > 0 && limit != INT64_MAX) {
      BSON_APPEND_DOCUMENT_BEGIN (pipeline, cx_idx (&k, (*n)++), &st);
      BSON_APPEND_INT64 (&st, "$limit", limit);
      bson_append_document_end (pipeline, &st);
   }
   return true;
}

bool
cx_compile_select (cx_t *cx, const dj_sql_stmt_t *st)
{
   const dj_select_t *s = st->select;
   cx->out->kind = DJ_MQL_ROWS;
   const dj_select_t *base = s;
   while (base->from.n && ((dj_from_t *) base->from.v[0])->sub) {
      base = ((dj_from_t *) base->from.v[0])->sub;
   }
   if (base->from.n) {
      cx->out->collection = bson_strdup (((dj_from_t *) base->from.v[0])->name); /* where the cursor lives */
   }
   if (s->from.n && !s->next) {
      if (!set_sources (cx, s)) {
         return false;
      }
      if (find_eligible (cx, s)) {
         return compile_find (cx, s);
      }
   }
   bson_t *cmd = bson_new (), pipeline;
   uint32_t n = 0;
   if (base->from.n) {
      BSON_APPEND_UTF8 (cmd, "aggregate", ((dj_from_t *) base->from.v[0])->name);
   } else {
      BSON_APPEND_INT32 (cmd, "aggregate", 1);
   }
   BSON_APPEND_ARRAY_BEGIN (cmd, "pipeline", &pipeline);
   bool ok = s->next ? compound_stages (cx, s, &pipeline, &n, 0) : cx_select_pipeline (cx, s, &pipeline, &n, 0);
   bson_append_array_end (cmd, &pipeline);
   bson_t cursor = BSON_INITIALIZER;
   BSON_APPEND_DOCUMENT (cmd, "cursor", &cursor);
   if (!ok) {
      bson_destroy (cmd);
      return false;
   }
   return cx_add_command (cx, cmd, 0, false);
}

/* ---- UNION / INTERSECT / EXCEPT ---- */

/* Appends the stages of `json` ({"s": [stage, ...]}, a constant of this
 * file) to the pipeline. */
static void
append_const_stages (bson_t *pipeline, uint32_t *n, const char *json)
{
   bson_error_t jerr;
   bson_t *c = bson_new_from_json ((const uint8_t *) json, -1, &jerr);
   BSON_ASSERT (c); /* this file's constants are valid JSON */
   bson_iter_t it, st;
   cx_idx_t k;
   bson_iter_init_find (&it, c, "s");
   bson_iter_recurse (&it, &st);
   while (bson_iter_next (&st)) {
      bson_append_iter (pipeline, cx_idx (&k, (*n)++), -1, &st);
   }
   bson_destroy (c);
}

/* One row per distinct row: {$group: {_id: "$$ROOT"}}, {$replaceWith: "$_id"}. */
static void
stage_distinct_rows (bson_t *pipeline, uint32_t *n)
{
   append_const_stages (pipeline, n,
                        "{\"s\": [{\"$group\": {\"_id\": \"$$ROOT\"}}, {\"$replaceWith\": \"$_id\"}]}");
}

/* {$group: {_id: {c0: "$c0", ...}, <accumulators>}}: one group per row of
 * ncols columns; `accumulators` is a JSON constant of this file. */
static void
stage_group_rows (bson_t *pipeline, uint32_t *n, int ncols, const char *accumulators)
{
   cx_idx_t k;
   bson_t st, grp, id;
   bson_error_t jerr;
   bson_t *acc = bson_new_from_json ((const uint8_t *) accumulators, -1, &jerr);
   BSON_ASSERT (acc);
   BSON_APPEND_DOCUMENT_BEGIN (pipeline, cx_idx (&k, (*n)++), &st);
   BSON_APPEND_DOCUMENT_BEGIN (&st, "$group", &grp);
   BSON_APPEND_DOCUMENT_BEGIN (&grp, "_id", &id);
   for (int i = 0; i < ncols; i++) {
      char key[16], ref[16];
      snprintf (key, sizeof key, "c%d", i);
      snprintf (ref, sizeof ref, "$c%d", i);
      BSON_APPEND_UTF8 (&id, key, ref);
   }
   bson_append_document_end (&grp, &id);
   bson_concat (&grp, acc);
   bson_append_document_end (&st, &grp);
   bson_append_document_end (pipeline, &st);
   bson_destroy (acc);
}

static void
stage_tag (bson_t *pipeline, uint32_t *n, int tag)
{
   cx_idx_t k;
   bson_t st, set;
   BSON_APPEND_DOCUMENT_BEGIN (pipeline, cx_idx (&k, (*n)++), &st);
   BSON_APPEND_DOCUMENT_BEGIN (&st, "$set", &set);
   BSON_APPEND_INT32 (&set, "__dj_t", tag);
   bson_append_document_end (&st, &set);
   bson_append_document_end (pipeline, &st);
}

/* INTERSECT ALL / EXCEPT ALL: count each row's copies per side, keep
 * min(l, r) or max(l - r, 0) of them:
 *   {$group: {_id: row, l: {$sum: left ? 1 : 0}, r: {$sum: right ? 1 : 0}}}
 *   {$set: {n: ...}} {$match: {n > 0}} {$set: {k: {$range: [0, n]}}}
 *   {$unwind: "$k"} {$replaceWith: "$_id"} */
static void
stage_multiset (bson_t *pipeline, uint32_t *n, int ncols, bool intersect)
{
   /* a row's copies from the left (tag 0) and from the right (tag 1) */
   stage_group_rows (pipeline, n, ncols,
                     "{\"l\": {\"$sum\": {\"$cond\": [{\"$eq\": [\"$__dj_t\", 0]}, 1, 0]}}, "
                     "\"r\": {\"$sum\": {\"$cond\": [{\"$eq\": [\"$__dj_t\", 1]}, 1, 0]}}}");
   append_const_stages (pipeline, n,
                        intersect ? "{\"s\": [{\"$set\": {\"n\": {\"$min\": [\"$l\", \"$r\"]}}}]}"
                                  : "{\"s\": [{\"$set\": {\"n\": {\"$max\": [{\"$subtract\": [\"$l\", \"$r\"]}, 0]}}}]}");
   append_const_stages (pipeline, n,
                        "{\"s\": [{\"$match\": {\"$expr\": {\"$gt\": [\"$n\", 0]}}},"
                        " {\"$set\": {\"k\": {\"$range\": [0, \"$n\"]}}},"
                        " {\"$unwind\": \"$k\"}, {\"$replaceWith\": \"$_id\"}]}");
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
   cx_idx_t k;
   int ncols = s->items.n;
   if (!cx_select_pipeline (cx, s, pipeline, n, CX_PIPE_KEEP_NULLS | CX_PIPE_NO_ORDER | (flags & CX_PIPE_NO_COLUMNS))) {
      return false;
   }
   for (const dj_select_t *left = s; left->next; left = left->next) {
      const dj_select_t *b = left->next;
      dj_setop_t op = left->setop;
      if (b->items.n != ncols) {
         return cx_unsupported (cx, b->pos, "the SELECTs of a UNION/INTERSECT/EXCEPT have %d and %d columns", ncols,
                                b->items.n);
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
      bson_t st, uw, bp;
      uint32_t bn = 0;
      BSON_APPEND_DOCUMENT_BEGIN (pipeline, cx_idx (&k, (*n)++), &st);
      BSON_APPEND_DOCUMENT_BEGIN (&st, "$unionWith", &uw);
      BSON_APPEND_UTF8 (&uw, "coll", ((dj_from_t *) b->from.v[0])->name);
      BSON_APPEND_ARRAY_BEGIN (&uw, "pipeline", &bp);
      dj_select_t branch = *b;
      branch.next = NULL;
      bool ok = cx_select_pipeline (cx, &branch, &bp, &bn, CX_PIPE_KEEP_NULLS | CX_PIPE_NO_COLUMNS | CX_PIPE_NO_ORDER);
      if (ok && tagged) {
         stage_tag (&bp, &bn, 1);
      }
      bson_append_array_end (&uw, &bp);
      bson_append_document_end (&st, &uw);
      bson_append_document_end (pipeline, &st);
      if (!ok) {
         return false;
      }
      if (op == DJ_SET_UNION) {
         stage_distinct_rows (pipeline, n);
      } else if (tagged && all) {
         stage_multiset (pipeline, n, ncols, intersect);
      } else if (tagged) {
         /* the sides each row came from: INTERSECT keeps the rows of both,
          * EXCEPT those of the left only */
         stage_group_rows (pipeline, n, ncols, "{\"t\": {\"$addToSet\": \"$__dj_t\"}}");
         append_const_stages (pipeline, n,
                              intersect ? "{\"s\": [{\"$match\": {\"t\": {\"$all\": [0, 1]}}}]}"
                                        : "{\"s\": [{\"$match\": {\"t\": {\"$nin\": [1]}}}]}");
         append_const_stages (pipeline, n, "{\"s\": [{\"$replaceWith\": \"$_id\"}]}");
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
         return cx_unsupported (cx, o->expr->pos, "NULLS FIRST/LAST on a UNION/INTERSECT/EXCEPT");
      }
   }
   return stage_order_limit (cx, s, sort_ref, pipeline, n);
}
