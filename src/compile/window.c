/*
 * window.c -- window functions: f(...) OVER (PARTITION BY ... ORDER BY ...)
 * -> $setWindowFields (with GROUP BY: over the groups, after $group and HAVING).
 *
 * Per window call i, before the $project of the SELECT list:
 *   $set      __dj_w<i>_p: {k0: ..} (partition key, NULL and missing alike),
 *             __dj_w<i>_s<j>: ORDER BY values, __dj_w<i>_k: {s0, s1, ..}
 *   $setWindowFields  (A) partitionBy _p, sortBy the _s<j> in their
 *             directions: the function over documents
 *   $setWindowFields  (B) where SQL's frame includes the current row's
 *             peers (rows equal on ORDER BY): partitionBy {p, k}, sorted by
 *             A's row number, spreads the last row's value (running
 *             aggregates) or the first row's number (RANK, PERCENT_RANK)
 *             or the last one (CUME_DIST) to all peers.
 *   $set      NTILE, PERCENT_RANK, CUME_DIST: computed from the row number
 *             and the partition's row count (distribution_tpl).
 *
 * Why not MongoDB's range windows throughout: they take one numeric sort
 * key; SQL's default frame RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT
 * ROW takes any keys. ROWS frames are MongoDB's documents windows; RANGE
 * frames bounded by UNBOUNDED and CURRENT ROW use the peer stage; RANGE
 * with offsets (one numeric key, as SQL requires one key) and GROUPS (over
 * the peer group's number) are range windows (frame_of, value_key_stage).
 * MongoDB's windows have no EXCLUDE: a frame with EXCLUDE CURRENT ROW /
 * GROUP / TIES pushes {value, row id, peer key} over the same window, and
 * the value is computed from that array less the excluded rows
 * (exclusion_stages).
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

/* Whether the frame is computed with a range window over an "_r" key:
 * RANGE with an offset (n PRECEDING / n FOLLOWING), or GROUPS. */
static bool
frame_by_value (const dj_window_t *w)
{
   return w->frame == DJ_FRAME_GROUPS ||
          (w->frame == DJ_FRAME_RANGE && (w->start == DJ_BOUND_PRECEDING || w->start == DJ_BOUND_FOLLOWING ||
                                          w->end == DJ_BOUND_PRECEDING || w->end == DJ_BOUND_FOLLOWING));
}

/* A documents-window bound: "unbounded", "current" or a signed offset. */
typedef struct {
   const char *word; /* or NULL for `n` */
   int64_t n;
} wbound_t;

static cx_arg_t
bound_arg (wbound_t b)
{
   return b.word ? CX_STR (b.word) : CX_INT64 (b.n);
}

static wbound_t
rows_bound (dj_bound_t b, int64_t n)
{
   switch (b) {
   case DJ_BOUND_UNBOUNDED_PRECEDING:
   case DJ_BOUND_UNBOUNDED_FOLLOWING: return (wbound_t){.word = "unbounded"};
   case DJ_BOUND_CURRENT: return (wbound_t){.word = "current"};
   case DJ_BOUND_PRECEDING: return (wbound_t){.n = -n};
   default: return (wbound_t){.n = n};
   }
}

/* The window of an aggregate/value function over its frame, and how its
 * result reaches the current row's peers ($last or $first of the running
 * value over each peer group, or NULL when peers play no part):
 *   no ORDER BY             the whole partition (all rows are peers)
 *   RANGE (or default)      UNBOUNDED PRECEDING .. CURRENT ROW: running, peers take the last
 *                           UNBOUNDED .. UNBOUNDED: the whole partition
 *                           CURRENT ROW .. UNBOUNDED FOLLOWING: suffix, peers take the first
 *   ROWS                    exactly the documents window, no peers
 *   RANGE with an offset    a range window over the one ORDER BY key (the
 *                           "_r" field: by_value_key), CURRENT ROW is 0 --
 *                           the current row's value, so its peers are in
 *   GROUPS                  a range window over the peer group's number
 *                           (the "_r" field: its dense rank), CURRENT ROW 0
 * *by_value says a range window ("range" rather than "documents"). */
static bool
frame_of (cx_t *cx, const dj_expr_t *e, wbound_t *lo, wbound_t *hi, const char **peer, bool *by_value)
{
   const dj_window_t *w = e->over;
   const wbound_t unb = {.word = "unbounded"}, cur = {.word = "current"};
   *peer = NULL;
   *by_value = false;
   if (w->frame != DJ_FRAME_NONE &&
       (w->start == DJ_BOUND_UNBOUNDED_FOLLOWING || w->end == DJ_BOUND_UNBOUNDED_PRECEDING ||
        w->start_n < 0 || w->end_n < 0)) {
      return cx_unsupported (cx, w->frame_pos, "a window frame that starts after its end");
   }
   if (w->frame == DJ_FRAME_ROWS) {
      *lo = rows_bound (w->start, w->start_n);
      *hi = rows_bound (w->end, w->end_n);
      return true;
   }
   if (frame_by_value (w)) {
      /* the range window's bounds: offsets from the key, 0 for CURRENT ROW */
      *by_value = true;
      *lo = rows_bound (w->start, w->start_n);
      *hi = rows_bound (w->end, w->end_n);
      lo->word = w->start == DJ_BOUND_CURRENT ? NULL : lo->word;
      hi->word = w->end == DJ_BOUND_CURRENT ? NULL : hi->word;
      return true;
   }
   dj_bound_t start = w->frame ? w->start : DJ_BOUND_UNBOUNDED_PRECEDING;
   dj_bound_t end = w->frame ? w->end : DJ_BOUND_CURRENT;
   if (w->order.n == 0 || (start == DJ_BOUND_UNBOUNDED_PRECEDING && end == DJ_BOUND_UNBOUNDED_FOLLOWING)) {
      *lo = *hi = unb;
   } else if (start == DJ_BOUND_UNBOUNDED_PRECEDING && end == DJ_BOUND_CURRENT) {
      *lo = unb;
      *hi = cur;
      *peer = "$last";
   } else if (start == DJ_BOUND_CURRENT && end == DJ_BOUND_UNBOUNDED_FOLLOWING) {
      *lo = cur;
      *hi = unb;
      *peer = "$first";
   } else {
      return cx_unsupported (cx, w->frame_pos, "a RANGE window frame from CURRENT ROW to CURRENT ROW");
   }
   return true;
}

/* Stage B: spreads `op` ($last / $min) of field w<src> over each peer
 * group into field w<dst>; w is the call's "__dj_w<i>", src and dst
 * suffixes of it. */
static void
stage_peers (bson_t *pipeline, uint32_t *n, const char *w, const char *op, const char *src, const char *dst)
{
   cx_stages (NULL, pipeline, n,
              "{'$setWindowFields': {'partitionBy': {'p': '$@0_p', 'k': '$@0_k'}, 'sortBy': {'@0_rn': 1}, "
              "'output': {'@0@1': {'@2': '$@0@3', 'window': {'documents': ['unbounded', 'unbounded']}}}}}",
              CX_ARGS (CX_STR (w), CX_STR (dst), CX_STR (op), CX_STR (src)));
}

/* A window's ORDER BY term: its value, or for e COLLATE c its sort key
 * under c (as a statement's ORDER BY, select.c); NULL and missing alike. */
static bool
order_value (cx_t *cx, const dj_expr_t *e, bson_t *parent, const char *key)
{
   if (!cx_is_collate (e)) {
      return cx_dt_key (cx, e, parent, key); /* (a datetime: with its microseconds) */
   }
   void *argv[2];
   dj_expr_t k;
   cx_collation_key (&k, argv, e, e);
   return cx_agg_value_or_null (cx, &k, parent, key);
}

/* The $set before stage A: the partition key {k0, ..}, the ORDER BY
 * values _s<j>, and the peer key {s0, ..}, NULL and missing alike. */
static bool
stage_keys (cx_t *cx, const dj_window_t *w, const char *name, bson_t *pipeline, uint32_t *n)
{
   bson_t set = BSON_INITIALIZER, part, keydoc;
   char field[48], k[16];
   bool ok = true;
   snprintf (field, sizeof field, "%s_p", name);
   BSON_APPEND_DOCUMENT_BEGIN (&set, field, &part);
   for (int j = 0; ok && j < w->partition.n; j++) {
      const dj_expr_t *e = w->partition.v[j];
      snprintf (k, sizeof k, "k%d", j);
      if (cx_is_collate (e) && !cx_collation_deterministic (((const dj_expr_t *) e->args.v[1])->name)) {
         /* equal values make a partition: see GROUP BY (select.c) */
         ok = cx_unsupported (cx, e->pos, "PARTITION BY over a non-deterministic collation");
      } else {
         ok = cx_dt_key (cx, e, &part, k);
      }
   }
   bson_append_document_end (&set, &part);
   for (int j = 0; ok && j < w->order.n; j++) {
      snprintf (field, sizeof field, "%s_s%d", name, j);
      ok = order_value (cx, ((dj_order_t *) w->order.v[j])->expr, &set, field);
   }
   /* the peer key repeats the expressions: fields set by this same $set
    * are not visible to it (a stage sees its input document) */
   snprintf (field, sizeof field, "%s_k", name);
   BSON_APPEND_DOCUMENT_BEGIN (&set, field, &keydoc);
   for (int j = 0; ok && j < w->order.n; j++) {
      snprintf (k, sizeof k, "s%d", j);
      ok = order_value (cx, ((dj_order_t *) w->order.v[j])->expr, &keydoc, k);
   }
   bson_append_document_end (&set, &keydoc);
   ok = ok && cx_stages (cx, pipeline, n, "{'$set': '@0'}", CX_ARGS (CX_DOC (&set)));
   bson_destroy (&set);
   return ok;
}

/* The "_r" key a range window needs (frame_by_value), set before stage A:
 *   RANGE n PRECEDING ..: the one ORDER BY key, negated for DESC (so that
 *     PRECEDING is always lower), a NULL key 0 in a partition of the NULL
 *     keys alone -- SQL's frame of a NULL row is its NULL peers
 *   GROUPS: the number of the row's peer group ($denseRank in ORDER BY's
 *     direction), so n PRECEDING is n groups back
 * The keys must be numbers (MongoDB's range windows: setWindowFields). */
static bool
value_key_stage (cx_t *cx, const dj_window_t *w, const char *name, bson_t *pipeline, uint32_t *n)
{
   if (w->order.n == 0 || (w->frame == DJ_FRAME_RANGE && w->order.n != 1)) {
      return cx_unsupported (cx, w->frame_pos, w->frame == DJ_FRAME_GROUPS ? "a GROUPS window frame without ORDER BY"
                                                                           : "a RANGE window frame with an offset and "
                                                                             "other than one ORDER BY key");
   }
   bool desc = ((dj_order_t *) w->order.v[0])->desc;
   for (int j = 1; j < w->order.n; j++) {
      if (((dj_order_t *) w->order.v[j])->desc != desc) {
         return cx_unsupported (cx, w->frame_pos, "a GROUPS window frame over ORDER BY keys in mixed directions");
      }
   }
   if (w->frame == DJ_FRAME_GROUPS) {
      return cx_stages (cx, pipeline, n,
                        "{'$setWindowFields': {'partitionBy': '$@0_p', 'sortBy': {'@0_k': '@1'}, "
                        "'output': {'@0_r': {'$denseRank': {}}}}}",
                        CX_ARGS (CX_STR (name), CX_INT32 (desc ? -1 : 1)));
   }
   return cx_stages (cx, pipeline, n,
                     "{'$set': {'@0_r': {'$multiply': [{'$ifNull': ['$@0_s0', 0]}, '@1']}, "
                     "'@0_p': {'p': '$@0_p', 'null': {'$eq': ['$@0_s0', null]}}}}",
                     CX_ARGS (CX_STR (name), CX_INT32 (desc ? -1 : 1)));
}

/* EXCLUDE CURRENT ROW / GROUP / TIES (SQL's frame exclusion; SQLite's
 * window functions page: https://www.sqlite.org/windowfunctions.html#frame_exclusion):
 * stage A pushed {v: value, i: row id, k: peer key} over the frame into
 * "@0" (stage_a_excl*), the peer stage spread it as it spreads a running
 * value; here the entries left out go -- the current row (its id "@0_i",
 * from exclusion_ids), its peers (equal "@0_k") or both -- and the
 * function is computed over the values that remain, as SQL computes it:
 * SUM NULL when no value is non-NULL, COUNT(x) the non-NULL ones, AVG, MIN
 * and MAX skip NULLs (MongoDB's array forms of $avg/$min/$max do), the
 * n-th value NULL past the end. */
static const char *const excl_cond[] = {
   [DJ_EXCLUDE_CURRENT_ROW] = "{'$ne': ['$$this.i', '$@0_i']}",
   [DJ_EXCLUDE_GROUP] = "{'$ne': ['$$this.k', '$@0_k']}",
   [DJ_EXCLUDE_TIES] = "{'$or': [{'$eq': ['$$this.i', '$@0_i']}, {'$ne': ['$$this.k', '$@0_k']}]}",
};
#define EXCL_NONNULL "{'$size': {'$filter': {'input': '$$f', 'cond': {'$ne': ['$$this', null]}}}}"

static bool
exclusion_stages (cx_t *cx, const dj_expr_t *e, const char *name, int64_t nth_n, bson_t *pipeline, uint32_t *n)
{
   const char *f = e->name, *in;
   if (!strcmp (f, "SUM")) {
      in = "{'$cond': [{'$gt': [" EXCL_NONNULL ", 0]}, {'$sum': '$$f'}, null]}";
   } else if (!strcmp (f, "AVG")) {
      in = "{'$avg': '$$f'}";
   } else if (!strcmp (f, "MIN")) {
      in = "{'$min': '$$f'}";
   } else if (!strcmp (f, "MAX")) {
      in = "{'$max': '$$f'}";
   } else if (!strcmp (f, "COUNT")) {
      in = (e->flags & DJ_XF_STAR) ? "{'$size': '$$f'}" : EXCL_NONNULL;
   } else { /* FIRST_VALUE, LAST_VALUE, NTH_VALUE: an element, NULL past the end */
      in = "{'$ifNull': [{'$arrayElemAt': ['$$f', '@1']}, null]}";
   }
   char tpl[1024];
   snprintf (tpl, sizeof tpl,
             "{'$set': {'@0': {'$let': {'vars': {'f': {'$map': {'input': {'$filter': {'input': '$@0', 'cond': %s}}, "
             "'in': '$$this.v'}}}, 'in': %s}}}}",
             excl_cond[e->over->exclude], in);
   int64_t at = !strcmp (f, "LAST_VALUE") ? -1 : !strcmp (f, "NTH_VALUE") ? nth_n - 1 : 0;
   return cx_stages (cx, pipeline, n, tpl, CX_ARGS (CX_STR (name), CX_INT64 (at)));
}

/* LAG/LEAD's default: a constant, NULL when there is none. */
static bool
shift_default (cx_t *cx, const dj_expr_t *e, bson_t *parent, const char *key)
{
   if (e->args.n < 3) {
      return BSON_APPEND_NULL (parent, key);
   }
   if (!cx_is_const (e->args.v[2])) {
      return cx_unsupported (cx, ((dj_expr_t *) e->args.v[2])->pos, "a %s() default that is not a constant", e->name);
   }
   return cx_append_const (cx, e->args.v[2], parent, key);
}

/* Stage A's outputs: "@0_rn" the row number, and the function's value:
 * "@0" for DENSE_RANK, LAG/LEAD and what needs no peer stage, "@0_c" the
 * running value the peer stage spreads; "@0_n" how many non-NULL inputs
 * SUM saw. @1 the sort, @2 the argument, @3 the offset or the accumulator,
 * @4 LAG/LEAD's default or SUM's count of a non-NULL input, @5 @6 the
 * window's bounds, @7 its unit ("documents" or "range"). */
#define STAGE_A "{'$setWindowFields': {'partitionBy': '$@0_p', 'sortBy': '@1', 'output': {'@0_rn': {'$documentNumber': {}}"
#define OVER_FRAME "'window': {'@7': ['@5', '@6']}"
static const char *const stage_a_rownum = STAGE_A "}}}";
static const char *const stage_a_dense = STAGE_A ", '@0': {'$denseRank': {}}}}}";
/* with the partition's row count "@0_cnt" (NTILE, PERCENT_RANK, CUME_DIST) */
static const char *const stage_a_count =
   STAGE_A ", '@0_cnt': {'$sum': 1, 'window': {'documents': ['unbounded', 'unbounded']}}}}}";
static const char *const stage_a_shift = STAGE_A ", '@0': {'$shift': {'output': '@2', 'by': '@3', 'default': '@4'}}}}}";
static const char *const stage_a_frame = STAGE_A ", '@0': {'@3': '@2', " OVER_FRAME "}}}}";
static const char *const stage_a_frame_peers = STAGE_A ", '@0_c': {'@3': '@2', " OVER_FRAME "}}}}";
static const char *const stage_a_sum = STAGE_A ", '@0': {'@3': '@2', " OVER_FRAME "}, '@0_n': {'$sum': '@4', " OVER_FRAME "}}}}";
static const char *const stage_a_sum_peers =
   STAGE_A ", '@0_c': {'@3': '@2', " OVER_FRAME "}, '@0_n': {'$sum': '@4', " OVER_FRAME "}}}}";
/* a frame with EXCLUDE: its rows' values, ids and peer keys (exclusion_stages) */
#define EXCL_ITEM "{'$push': {'v': '@2', 'i': '$@0_i', 'k': '$@0_k'}, " OVER_FRAME "}"
static const char *const stage_a_excl = STAGE_A ", '@0': " EXCL_ITEM "}}}";
static const char *const stage_a_excl_peers = STAGE_A ", '@0_c': " EXCL_ITEM "}}}";
/* the row ids a frame with EXCLUDE compares: any numbering unique in the
 * partition ($documentNumber needs a sortBy: stage A's) */
static const char *const exclusion_ids =
   "{'$setWindowFields': {'partitionBy': '$@0_p', 'sortBy': '@1', 'output': {'@0_i': {'$documentNumber': {}}}}}";

/* NTILE(k), PERCENT_RANK(), CUME_DIST() from the row number _rn (for the
 * last two spread over the peers first: RANK's first row number, or the
 * last one, the rows up to and including the current row's peers) and the
 * partition's row count _cnt, as SQL defines them:
 *   PERCENT_RANK = (rank - 1) / (rows - 1), 0 for a partition of one row
 *   CUME_DIST    = (rows up to the current row's last peer) / rows
 *   NTILE(k)     buckets 1..k of rows/k rows each, the first rows%k buckets
 *                one row more: row rn is in bucket (rn-1) div (q+1) + 1
 *                while rn <= r(q+1) (q = rows div k, r = rows mod k), else
 *                in r + (rn-1 - r(q+1)) div q + 1 */
static const char *const distribution_tpl[] = {
   "{'$set': {'@0': {'$cond': [{'$lte': ['$@0_cnt', 1]}, 0.0, "
   "{'$divide': [{'$subtract': ['$@0', 1]}, {'$subtract': ['$@0_cnt', 1]}]}]}}}",
   "{'$set': {'@0': {'$divide': ['$@0', '$@0_cnt']}}}",
   "{'$set': {'@0': {'$let': {'vars': {'q': {'$floor': {'$divide': ['$@0_cnt', '@1']}}, 'r': {'$mod': ['$@0_cnt', '@1']}, "
   "'rn': {'$subtract': ['$@0_rn', 1]}}, 'in': {'$toInt': {'$cond': [{'$lt': ['$$rn', {'$multiply': ['$$r', {'$add': ['$$q', 1]}]}]}, "
   "{'$add': [{'$floor': {'$divide': ['$$rn', {'$add': ['$$q', 1]}]}}, 1]}, "
   "{'$add': [{'$floor': {'$divide': [{'$subtract': ['$$rn', {'$multiply': ['$$r', {'$add': ['$$q', 1]}]}]}, '$$q']}}, "
   "'$$r', 1]}]}}}}}}"};

/* Argument i of e, an integer constant (a literal or a parameter) of at
 * least `min`: NTILE's bucket count and NTH_VALUE's n (PostgreSQL refuses
 * what is not greater than zero), LAG/LEAD's offset. */
static bool
const_int_arg (cx_t *cx, const dj_expr_t *e, int i, int64_t min, int64_t *out)
{
   bson_value_t tmp;
   const bson_value_t *v;
   const dj_expr_t *a = e->args.v[i];
   char what[64];
   snprintf (what, sizeof what, "argument %d of %s()", i + 1, e->name);
   if (!cx_const_arg (cx, a, what, &tmp, &v)) {
      return false;
   }
   if ((v->value_type != BSON_TYPE_INT32 && v->value_type != BSON_TYPE_INT64) ||
       (*out = v->value_type == BSON_TYPE_INT32 ? v->value.v_int32 : v->value.v_int64) < min) {
      return min > 0 ? cx_param_error (cx, a->pos, "%s must be an integer greater than zero", what)
                     : cx_param_error (cx, a->pos, "%s must be an integer", what);
   }
   return true;
}

/* The stages for window call e, number i; its value ends in "__dj_w<i>". */
static bool
one_window (cx_t *cx, const dj_expr_t *e, int i, bson_t *pipeline, uint32_t *n)
{
   const dj_window_t *w = e->over;
   const char *f = e->name;
   char name[24], field[48];
   bool ordered = w->order.n > 0;

   snprintf (name, sizeof name, "__dj_w%d", i);
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
   bool last_value = !strcmp (f, "LAST_VALUE");
   /* 0 PERCENT_RANK, 1 CUME_DIST, 2 NTILE (distribution_tpl), or -1 */
   int dist = !strcmp (f, "PERCENT_RANK") ? 0 : !strcmp (f, "CUME_DIST") ? 1 : !strcmp (f, "NTILE") ? 2 : -1;
   int64_t buckets = 0, nth_n = 0;
   bool nth = !strcmp (f, "NTH_VALUE");
   if (nth && e->args.n != 2) {
      return cx_unsupported (cx, e->pos, "%s() with %d arguments", f, e->args.n);
   }
   if (!is_agg && !rownum && !rank && !dense && !lag && !lead && !first && !last_value && dist < 0 && !nth) {
      return cx_unsupported (cx, e->pos, "window function %s()", f);
   }
   if ((rownum || rank || dense || dist == 0 || dist == 1) && e->args.n) {
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
   if (dist == 2 && (e->args.n != 1 || nth)) {
      return cx_unsupported (cx, e->pos, "%s() with %d arguments", f, e->args.n);
   }
   if ((dist == 2 && !const_int_arg (cx, e, 0, 1, &buckets)) || (nth && !const_int_arg (cx, e, 1, 1, &nth_n))) {
      return false;
   }
   if (!stage_keys (cx, w, name, pipeline, n)) {
      return false;
   }

   /* stage A */
   bson_t sort = BSON_INITIALIZER;
   if ((is_agg || first || last_value || nth) && frame_by_value (w)) {
      if (!value_key_stage (cx, w, name, pipeline, n)) {
         return false;
      }
      snprintf (field, sizeof field, "%s_r", name);
      BSON_APPEND_INT32 (&sort, field, 1);
   } else if (dense) { /* one key, the peer document: same direction for all parts */
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
   const dj_expr_t *arg = e->args.n && dist < 0 ? e->args.v[0] : NULL;
   /* a frame with EXCLUDE (ranking functions and LAG/LEAD have no frame) */
   bool excluding = w->exclude != DJ_EXCLUDE_NO_OTHERS && (is_agg || first || last_value || nth);
   cx_arg_t args[8] = {CX_STR (name), CX_DOC (&sort), CX_VALUE (arg)};
   const char *stage = stage_a_rownum, *peer_op = NULL;
   bool ok = true, sum_fix = false;
   if (dist >= 0) {
      stage = stage_a_count;
      peer_op = dist == 0 ? "$min" : dist == 1 ? "$max" : NULL;
   } else if (rownum || rank) {
      peer_op = rank ? "$min" : NULL; /* RANK: the first row number among the peers */
   } else if (dense) {
      stage = stage_a_dense;
   } else if (lag || lead) {
      /* LAG(x [, offset [, default]]): {$shift: {output, by: -offset, default}} */
      int64_t by = 1;
      if (e->args.n < 1 || e->args.n > 3) {
         ok = cx_unsupported (cx, e->pos, "%s() with %d arguments", f, e->args.n);
      } else if (e->args.n >= 2) {
         ok = const_int_arg (cx, e, 1, INT64_MIN, &by);
      }
      stage = stage_a_shift;
      args[3] = CX_INT64 (lag ? -by : by);
      args[4] = CX_FN (shift_default, e);
   } else {
      /* aggregates, FIRST_VALUE, LAST_VALUE over the frame (frame_of);
       * ranking functions and LAG/LEAD ignore frames, as SQL says */
      const char *op = first ? "$first" : last_value ? "$last" : nth ? "$push" : !strcmp (f, "SUM") ? "$sum" : !strcmp (f, "AVG") ? "$avg" :
                       !strcmp (f, "MIN") ? "$min" : !strcmp (f, "MAX") ? "$max" : !strcmp (f, "COUNT") ? "$sum" : NULL;
      wbound_t lo = {0}, hi = {0};
      if (!op) {
         ok = cx_unsupported (cx, e->pos, "%s() as a window function", f);
      } else if ((first || last_value) && e->args.n != 1) {
         ok = cx_unsupported (cx, e->pos, "%s() with %d arguments", f, e->args.n);
      }
      bool by_value = false;
      ok = ok && frame_of (cx, e, &lo, &hi, &peer_op, &by_value);
      if (ok && excluding) {
         /* the frame's entries, for exclusion_stages; each row's id first */
         ok = cx_stages (cx, pipeline, n, exclusion_ids, CX_ARGS (CX_STR (name), CX_DOC (&sort)));
         stage = peer_op ? stage_a_excl_peers : stage_a_excl;
         args[2] = (e->flags & DJ_XF_STAR) ? CX_INT32 (1) : CX_OR_NULL (arg);
      } else if (ok) {
         /* SUM also counts its non-NULL inputs: none means NULL, not 0 */
         sum_fix = !strcmp (f, "SUM");
         stage = sum_fix ? (peer_op ? stage_a_sum_peers : stage_a_sum) : peer_op ? stage_a_frame_peers : stage_a_frame;
         args[3] = CX_STR (op);
         if (!strcmp (f, "COUNT")) {
            args[2] = (e->flags & DJ_XF_STAR) ? CX_INT32 (1) : CX_FN (cx_agg_count_one, arg);
         }
         if (nth) {
            args[2] = CX_OR_NULL (arg); /* a NULL value still counts in the frame */
         }
      }
      if (ok) {
         args[4] = CX_FN (cx_agg_count_one, arg);
         args[5] = bound_arg (lo);
         args[6] = bound_arg (hi);
         args[7] = CX_STR (by_value ? "range" : "documents");
      }
   }
   ok = ok && cx_stages (cx, pipeline, n, stage, CX_ARGV (args));
   bson_destroy (&sort);
   if (!ok) {
      return false;
   }
   if (rownum) {
      cx_stages (cx, pipeline, n, "{'$set': {'@0': '$@0_rn'}}", CX_ARGS (CX_STR (name)));
   }
   if (peer_op) {
      stage_peers (pipeline, n, name, peer_op, rank || dist >= 0 ? "_rn" : "_c", "");
      if (sum_fix) {
         stage_peers (pipeline, n, name, peer_op, "_n", "_n");
      }
   }
   if (dist >= 0) {
      cx_stages (cx, pipeline, n, distribution_tpl[dist], CX_ARGS (CX_STR (name), CX_INT64 (buckets)));
   }
   if (excluding) {
      return exclusion_stages (cx, e, name, nth_n, pipeline, n);
   }
   if (nth) { /* NTH_VALUE(x, n): the frame's n-th value, NULL when it has fewer rows */
      cx_stages (cx, pipeline, n, "{'$set': {'@0': {'$ifNull': [{'$arrayElemAt': ['$@0', '@1']}, null]}}}",
                 CX_ARGS (CX_STR (name), CX_INT64 (nth_n - 1)));
   }
   if (sum_fix) {
      char nref[64], vref[64];
      bson_t set = BSON_INITIALIZER;
      snprintf (nref, sizeof nref, "$%s_n", name);
      snprintf (vref, sizeof vref, "$%s", name);
      cx_append_null_if_none (&set, name, vref, nref);
      cx_stages (cx, pipeline, n, "{'$set': '@0'}", CX_ARGS (CX_DOC (&set)));
      bson_destroy (&set);
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
