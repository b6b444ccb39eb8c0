/*
 * window.c -- window functions: f(...) OVER (PARTITION BY ... ORDER BY ...)
 * -> $setWindowFields, for a SELECT without GROUP BY.
 *
 * Per window call i, before the $project of the SELECT list:
 *   $set      __dj_w<i>_p: {k0: ..} (partition key, NULL and missing alike),
 *             __dj_w<i>_s<j>: ORDER BY values, __dj_w<i>_k: {s0, s1, ..}
 *   $setWindowFields  (A) partitionBy _p, sortBy the _s<j> in their
 *             directions: the function over documents
 *   $setWindowFields  (B) where SQL's frame includes the current row's
 *             peers (rows equal on ORDER BY): partitionBy {p, k}, sorted by
 *             A's row number, spreads the last row's value (running
 *             aggregates) or the first row's number (RANK) to all peers.
 *
 * Why not MongoDB's range windows: they take one numeric sort key; SQL's
 * default frame RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW takes any
 * keys. Explicit frames (ROWS/RANGE ...) are refused, not approximated.
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/setWindowFields/
 */
#include <stdio.h>
#include <string.h>

#include "compile-private.h"

static void
collect (const dj_expr_t *e, const dj_expr_t **out, int *n, int max)
{
   if (!e || e->sub) {
      return;
   }
   if (e->kind == DJ_X_FUNC && e->over) {
      if (*n < max) {
         out[(*n)++] = e;
      } else {
         (*n)++; /* counted, refused by the caller */
      }
      return; /* a window call inside another's arguments is refused when compiled */
   }
   collect (e->a, out, n, max);
   collect (e->b, out, n, max);
   collect (e->c, out, n, max);
   for (int i = 0; i < e->args.n; i++) {
      collect (e->args.v[i], out, n, max);
   }
}

bool
cx_has_window (const dj_select_t *s)
{
   const dj_expr_t *w[1];
   int n = 0;
   for (int i = 0; i < s->items.n; i++) {
      collect (((dj_item_t *) s->items.v[i])->expr, w, &n, 1);
   }
   for (int i = 0; i < s->order_by.n; i++) {
      collect (((dj_order_t *) s->order_by.v[i])->expr, w, &n, 1);
   }
   return n > 0;
}

/* {fieldname: {$ifNull: [expr, null]}} into doc */
static bool
ifnull_field (cx_t *cx, const dj_expr_t *e, bson_t *doc, const char *field)
{
   bson_t ifn, ia;
   BSON_APPEND_DOCUMENT_BEGIN (doc, field, &ifn);
   BSON_APPEND_ARRAY_BEGIN (&ifn, "$ifNull", &ia);
   bool ok = cx_agg_value (cx, e, &ia, "0");
   BSON_APPEND_NULL (&ia, "1");
   bson_append_array_end (&ifn, &ia);
   bson_append_document_end (doc, &ifn);
   return ok;
}

static void
window_docs (bson_t *out, const char *key, const char *from, const char *to)
{
   bson_t w, d;
   BSON_APPEND_DOCUMENT_BEGIN (out, key, &w);
   BSON_APPEND_ARRAY_BEGIN (&w, "documents", &d);
   BSON_APPEND_UTF8 (&d, "0", from);
   BSON_APPEND_UTF8 (&d, "1", to);
   bson_append_array_end (&w, &d);
   bson_append_document_end (out, &w);
}

/* Stage B: spreads `op` ($last / $min) of field `src` over each peer group
 * into field `dst`. */
static void
stage_peers (bson_t *pipeline, uint32_t *n, const char *w, const char *op, const char *src, const char *dst)
{
   cx_idx_t k;
   bson_t st, swf, part, sort, out, f;
   char p[64], key[64], rn[64], srcref[64];
   snprintf (p, sizeof p, "$%s_p", w);
   snprintf (key, sizeof key, "$%s_k", w);
   snprintf (rn, sizeof rn, "%s_rn", w);
   snprintf (srcref, sizeof srcref, "$%s", src);
   BSON_APPEND_DOCUMENT_BEGIN (pipeline, cx_idx (&k, (*n)++), &st);
   BSON_APPEND_DOCUMENT_BEGIN (&st, "$setWindowFields", &swf);
   BSON_APPEND_DOCUMENT_BEGIN (&swf, "partitionBy", &part);
   BSON_APPEND_UTF8 (&part, "p", p);
   BSON_APPEND_UTF8 (&part, "k", key);
   bson_append_document_end (&swf, &part);
   BSON_APPEND_DOCUMENT_BEGIN (&swf, "sortBy", &sort);
   BSON_APPEND_INT32 (&sort, rn, 1);
   bson_append_document_end (&swf, &sort);
   BSON_APPEND_DOCUMENT_BEGIN (&swf, "output", &out);
   BSON_APPEND_DOCUMENT_BEGIN (&out, dst, &f);
   BSON_APPEND_UTF8 (&f, op, srcref);
   window_docs (&f, "window", "unbounded", "unbounded");
   bson_append_document_end (&out, &f);
   bson_append_document_end (&swf, &out);
   bson_append_document_end (&st, &swf);
   bson_append_document_end (pipeline, &st);
}

/* The stages for window call e, number i; its value ends in "__dj_w<i>". */
static bool
one_window (cx_t *cx, const dj_expr_t *e, int i, bson_t *pipeline, uint32_t *n)
{
   const dj_window_t *w = e->over;
   const char *f = e->name;
   char name[24], field[48];
   cx_idx_t k;
   bson_t st, set, part, keydoc, swf, sort, out, fo;
   bool ok = true, ordered = w->order.n > 0;

   snprintf (name, sizeof name, "__dj_w%d", i);
   if (w->has_frame) {
      return cx_unsupported (cx, e->pos, "an explicit window frame (ROWS/RANGE ...) in %s() OVER", f);
   }
   if (e->filter || (e->flags & DJ_XF_DISTINCT)) {
      return cx_unsupported (cx, e->pos, "FILTER or DISTINCT in window function %s()", f);
   }
   for (int j = 0; j < w->order.n; j++) {
      const dj_order_t *o = w->order.v[j];
      if (o->nulls && (o->nulls == 1) == o->desc) {
         return cx_unsupported (cx, o->expr->pos, "NULLS FIRST/LAST in a window's ORDER BY");
      }
   }
   /* the kind of function */
   bool is_agg = cx_is_aggregate (&(dj_expr_t){.kind = DJ_X_FUNC, .name = (char *) f});
   bool rownum = !strcmp (f, "ROW_NUMBER"), rank = !strcmp (f, "RANK"), dense = !strcmp (f, "DENSE_RANK");
   bool lag = !strcmp (f, "LAG"), lead = !strcmp (f, "LEAD"), first = !strcmp (f, "FIRST_VALUE");
   if (!is_agg && !rownum && !rank && !dense && !lag && !lead && !first) {
      return cx_unsupported (cx, e->pos, "window function %s()", f);
   }
   if ((rownum || rank || dense) && e->args.n) {
      return cx_unsupported (cx, e->pos, "%s() with arguments", f);
   }
   if ((rank || dense || lag || lead) && !ordered) {
      return cx_unsupported (cx, e->pos, "%s() OVER without ORDER BY", f);
   }
   if (dense) {
      for (int j = 1; j < w->order.n; j++) {
         if (((dj_order_t *) w->order.v[j])->desc != ((dj_order_t *) w->order.v[0])->desc) {
            return cx_unsupported (cx, e->pos, "DENSE_RANK() over ORDER BY keys in mixed directions");
         }
      }
   }
   if (is_agg && !(e->flags & DJ_XF_STAR) && e->args.n != 1) {
      return cx_unsupported (cx, e->pos, "%s() with %d arguments", f, e->args.n);
   }

   /* $set: partition key, sort values, peer key */
   BSON_APPEND_DOCUMENT_BEGIN (pipeline, cx_idx (&k, (*n)++), &st);
   BSON_APPEND_DOCUMENT_BEGIN (&st, "$set", &set);
   snprintf (field, sizeof field, "%s_p", name);
   BSON_APPEND_DOCUMENT_BEGIN (&set, field, &part);
   for (int j = 0; ok && j < w->partition.n; j++) {
      char pk[16];
      snprintf (pk, sizeof pk, "k%d", j);
      ok = ifnull_field (cx, w->partition.v[j], &part, pk);
   }
   bson_append_document_end (&set, &part);
   for (int j = 0; ok && j < w->order.n; j++) {
      snprintf (field, sizeof field, "%s_s%d", name, j);
      ok = ifnull_field (cx, ((dj_order_t *) w->order.v[j])->expr, &set, field);
   }
   /* the peer key repeats the expressions: fields set by this same $set
    * are not visible to it (a stage sees its input document) */
   snprintf (field, sizeof field, "%s_k", name);
   BSON_APPEND_DOCUMENT_BEGIN (&set, field, &keydoc);
   for (int j = 0; ok && j < w->order.n; j++) {
      char sk[16];
      snprintf (sk, sizeof sk, "s%d", j);
      ok = ifnull_field (cx, ((dj_order_t *) w->order.v[j])->expr, &keydoc, sk);
   }
   bson_append_document_end (&set, &keydoc);
   bson_append_document_end (&st, &set);
   bson_append_document_end (pipeline, &st);
   if (!ok) {
      return false;
   }

   /* stage A */
   char pref[48], rn[48], cum[48], cnt[48];
   snprintf (pref, sizeof pref, "$%s_p", name);
   snprintf (rn, sizeof rn, "%s_rn", name);
   snprintf (cum, sizeof cum, "%s_c", name);
   snprintf (cnt, sizeof cnt, "%s_n", name);
   BSON_APPEND_DOCUMENT_BEGIN (pipeline, cx_idx (&k, (*n)++), &st);
   BSON_APPEND_DOCUMENT_BEGIN (&st, "$setWindowFields", &swf);
   BSON_APPEND_UTF8 (&swf, "partitionBy", pref);
   BSON_APPEND_DOCUMENT_BEGIN (&swf, "sortBy", &sort);
   if (dense) { /* one key, the peer document: same direction for all parts */
      snprintf (field, sizeof field, "%s_k", name);
      BSON_APPEND_INT32 (&sort, field, ((dj_order_t *) w->order.v[0])->desc ? -1 : 1);
   } else if (ordered) {
      for (int j = 0; j < w->order.n; j++) {
         snprintf (field, sizeof field, "%s_s%d", name, j);
         BSON_APPEND_INT32 (&sort, field, ((dj_order_t *) w->order.v[j])->desc ? -1 : 1);
      }
   } else {
      BSON_APPEND_INT32 (&sort, "_id", 1); /* any order: SQL leaves it unspecified */
   }
   bson_append_document_end (&swf, &sort);
   BSON_APPEND_DOCUMENT_BEGIN (&swf, "output", &out);
   BSON_APPEND_DOCUMENT_BEGIN (&out, rn, &fo);
   BSON_APPEND_DOCUMENT_BEGIN (&fo, "$documentNumber", &part);
   bson_append_document_end (&fo, &part);
   bson_append_document_end (&out, &fo);
   const char *peer_op = NULL, *peer_src = NULL;
   bool sum_fix = false;
   if (rownum) {
      /* the row number is it */
   } else if (rank) {
      peer_op = "$min";
      peer_src = rn;
   } else if (dense) {
      BSON_APPEND_DOCUMENT_BEGIN (&out, name, &fo);
      BSON_APPEND_DOCUMENT_BEGIN (&fo, "$denseRank", &part);
      bson_append_document_end (&fo, &part);
      bson_append_document_end (&out, &fo);
   } else if (lag || lead) {
      /* LAG(x [, offset [, default]]): {$shift: {output, by: -offset, default}} */
      int64_t by = 1;
      if (e->args.n < 1 || e->args.n > 3) {
         ok = cx_unsupported (cx, e->pos, "%s() with %d arguments", f, e->args.n);
      } else if (e->args.n >= 2) {
         const dj_expr_t *o = e->args.v[1];
         if (o->kind != DJ_X_INT) {
            ok = cx_unsupported (cx, o->pos, "a %s() offset that is not an integer literal", f);
         }
         by = o->ival;
      }
      bson_t sh;
      BSON_APPEND_DOCUMENT_BEGIN (&out, name, &fo);
      BSON_APPEND_DOCUMENT_BEGIN (&fo, "$shift", &sh);
      ok = ok && cx_agg_value (cx, e->args.v[0], &sh, "output");
      BSON_APPEND_INT64 (&sh, "by", lag ? -by : by);
      if (ok && e->args.n == 3) {
         if (!cx_is_const (e->args.v[2])) {
            ok = cx_unsupported (cx, ((dj_expr_t *) e->args.v[2])->pos, "a %s() default that is not a constant", f);
         } else {
            ok = cx_append_const (cx, e->args.v[2], &sh, "default");
         }
      } else {
         BSON_APPEND_NULL (&sh, "default");
      }
      bson_append_document_end (&fo, &sh);
      bson_append_document_end (&out, &fo);
   } else {
      /* aggregates and FIRST_VALUE: over the whole partition without ORDER
       * BY; with it, a running value spread to the peers */
      const char *op = first ? "$first" : !strcmp (f, "SUM") ? "$sum" : !strcmp (f, "AVG") ? "$avg" :
                       !strcmp (f, "MIN") ? "$min" : !strcmp (f, "MAX") ? "$max" : !strcmp (f, "COUNT") ? "$sum" : NULL;
      if (!op) {
         ok = cx_unsupported (cx, e->pos, "%s() as a window function", f);
      }
      const char *dst = ordered && !first ? cum : name;
      const dj_expr_t *arg = e->args.n ? e->args.v[0] : NULL;
      BSON_APPEND_DOCUMENT_BEGIN (&out, dst, &fo);
      if (!ok) {
      } else if (!strcmp (f, "COUNT")) {
         if (e->flags & DJ_XF_STAR) {
            BSON_APPEND_INT32 (&fo, "$sum", 1);
         } else {
            dj_expr_t isnull = {.kind = DJ_X_IS_NULL, .pos = e->pos, .a = (dj_expr_t *) arg};
            bson_t c, ca;
            BSON_APPEND_DOCUMENT_BEGIN (&fo, "$sum", &c);
            BSON_APPEND_ARRAY_BEGIN (&c, "$cond", &ca);
            ok = cx_agg_truth (cx, &isnull, true, &ca, "0");
            BSON_APPEND_INT32 (&ca, "1", 0);
            BSON_APPEND_INT32 (&ca, "2", 1);
            bson_append_array_end (&c, &ca);
            bson_append_document_end (&fo, &c);
         }
      } else {
         ok = cx_agg_value (cx, arg, &fo, op);
      }
      window_docs (&fo, "window", "unbounded", ordered ? "current" : "unbounded");
      bson_append_document_end (&out, &fo);
      if (ok && !strcmp (f, "SUM")) {
         /* how many non-NULL inputs: none means SUM is NULL, not 0 */
         dj_expr_t isnull = {.kind = DJ_X_IS_NULL, .pos = e->pos, .a = (dj_expr_t *) arg};
         bson_t c, ca;
         BSON_APPEND_DOCUMENT_BEGIN (&out, cnt, &fo);
         BSON_APPEND_DOCUMENT_BEGIN (&fo, "$sum", &c);
         BSON_APPEND_ARRAY_BEGIN (&c, "$cond", &ca);
         ok = cx_agg_truth (cx, &isnull, true, &ca, "0");
         BSON_APPEND_INT32 (&ca, "1", 0);
         BSON_APPEND_INT32 (&ca, "2", 1);
         bson_append_array_end (&c, &ca);
         bson_append_document_end (&fo, &c);
         window_docs (&fo, "window", "unbounded", ordered ? "current" : "unbounded");
         bson_append_document_end (&out, &fo);
         sum_fix = true;
      }
      if (ordered && !first) {
         peer_op = "$last";
         peer_src = cum;
      }
   }
   bson_append_document_end (&swf, &out);
   bson_append_document_end (&st, &swf);
   bson_append_document_end (pipeline, &st);
   if (!ok) {
      return false;
   }
   if (rownum) {
      BSON_APPEND_DOCUMENT_BEGIN (pipeline, cx_idx (&k, (*n)++), &st);
      BSON_APPEND_DOCUMENT_BEGIN (&st, "$set", &set);
      char ref[64];
      snprintf (ref, sizeof ref, "$%s", rn);
      BSON_APPEND_UTF8 (&set, name, ref);
      bson_append_document_end (&st, &set);
      bson_append_document_end (pipeline, &st);
   }
   if (peer_op) {
      stage_peers (pipeline, n, name, peer_op, peer_src, name);
      if (sum_fix) {
         stage_peers (pipeline, n, name, "$last", cnt, cnt);
      }
   }
   if (sum_fix) {
      /* {$set: {w: {$cond: [{$gt: ["$w_n", 0]}, "$w", null]}}} */
      bson_t v, c, g, ga;
      char nref[64], vref[64];
      snprintf (nref, sizeof nref, "$%s", cnt);
      snprintf (vref, sizeof vref, "$%s", name);
      BSON_APPEND_DOCUMENT_BEGIN (pipeline, cx_idx (&k, (*n)++), &st);
      BSON_APPEND_DOCUMENT_BEGIN (&st, "$set", &set);
      BSON_APPEND_DOCUMENT_BEGIN (&set, name, &v);
      BSON_APPEND_ARRAY_BEGIN (&v, "$cond", &c);
      BSON_APPEND_DOCUMENT_BEGIN (&c, "0", &g);
      BSON_APPEND_ARRAY_BEGIN (&g, "$gt", &ga);
      BSON_APPEND_UTF8 (&ga, "0", nref);
      BSON_APPEND_INT32 (&ga, "1", 0);
      bson_append_array_end (&g, &ga);
      bson_append_document_end (&c, &g);
      BSON_APPEND_UTF8 (&c, "1", vref);
      BSON_APPEND_NULL (&c, "2");
      bson_append_array_end (&v, &c);
      bson_append_document_end (&set, &v);
      bson_append_document_end (&st, &set);
      bson_append_document_end (pipeline, &st);
   }
   return true;
}

bool
cx_window_stages (cx_t *cx, const dj_select_t *s, bson_t *pipeline, uint32_t *n)
{
   const dj_expr_t *wins[CX_MAX_WINDOWS];
   int nw = 0;
   for (int i = 0; i < s->items.n; i++) {
      collect (((dj_item_t *) s->items.v[i])->expr, wins, &nw, CX_MAX_WINDOWS);
   }
   for (int i = 0; i < s->order_by.n; i++) {
      collect (((dj_order_t *) s->order_by.v[i])->expr, wins, &nw, CX_MAX_WINDOWS);
   }
   if (nw > CX_MAX_WINDOWS) {
      return cx_unsupported (cx, s->pos, "more than %d window functions in one SELECT", CX_MAX_WINDOWS);
   }
   for (int i = 0; i < nw; i++) {
      if (!one_window (cx, wins[i], i, pipeline, n)) {
         return false;
      }
      cx->wins[cx->nwins++] = wins[i]; /* from now on it reads "$__dj_w<i>" */
   }
   return true;
}
