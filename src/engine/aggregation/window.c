/*
 * window.c -- $setWindowFields: ranks, $shift and accumulators over
 * ROWS/RANGE windows within partitions.
 *
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/setWindowFields/
 */
#include "agg-private.h"

#include <math.h>
#include <stdlib.h>

typedef struct {
   bson_t *doc;
   size_t idx;
   bson_value_t part; /* borrowed from arena-free evaluation: copied */
   dj_buf_t pkey;
} wrow_t;

int
dj_agg_key_cmp (const dj_buf_t *a, const dj_buf_t *b)
{
   size_t n = a->len < b->len ? a->len : b->len;
   int c = n ? memcmp (a->data, b->data, n) : 0; /* no partitionBy: empty keys */
   if (!c && a->len != b->len) {
      c = a->len < b->len ? -1 : 1;
   }
   return c;
}

bool
dj_agg_partition_key (rctx_t *r, const dj_expr_t *partition, const bson_t *doc, dj_buf_t *key)
{
   dj_eval_t ev;
   bson_value_t pv;
   dj_agg_eval_setup (r, &ev, doc);
   bool ok = dj_expr_eval (partition, &ev, &pv);
   if (ok) {
      dj_key_append_collated (key, &pv);
   }
   dj_arena_reset (r->arena);
   return ok;
}

static int
wrow_cmp (const void *a, const void *b)
{
   const wrow_t *x = a, *y = b;
   int c = dj_agg_key_cmp (&x->pkey, &y->pkey);
   return c ? c : (x->idx > y->idx) - (x->idx < y->idx);
}

/* Whether b is in a's range window: the sortBy field's value of b minus
 * a's within [lo, hi] -- numbers, or with a unit dates lo..hi units from
 * a's (https://www.mongodb.com/docs/manual/reference/operator/aggregation/setWindowFields/#std-label-setWindowFields-range). */
static bool
in_range (const stage_t *s, const wfield_t *wf, const bson_t *a, const bson_t *b)
{
   int dir;
   const char *f = dj_sort_key (s->sort, 0, &dir);
   bson_value_t ka, kb;
   bson_iter_t it;
   if (!bson_iter_init (&it, a) || !bson_iter_find_descendant (&it, f, &it)) {
      return false;
   }
   ka = *bson_iter_value (&it);
   if (!bson_iter_init (&it, b) || !bson_iter_find_descendant (&it, f, &it)) {
      return false;
   }
   kb = *bson_iter_value (&it);
   if (wf->has_range_unit) {
      if (ka.value_type != BSON_TYPE_DATE_TIME || kb.value_type != BSON_TYPE_DATE_TIME) {
         return false;
      }
      int64_t t = kb.value.v_datetime;
      return (wf->lo_unbounded || t >= (wf->lo_current ? ka.value.v_datetime : dj_agg_date_add (ka.value.v_datetime, &wf->range_unit, (int64_t) wf->lo))) &&
             (wf->hi_unbounded || t <= (wf->hi_current ? ka.value.v_datetime : dj_agg_date_add (ka.value.v_datetime, &wf->range_unit, (int64_t) wf->hi)));
   }
   if (!dj_value_is_number (&ka) || !dj_value_is_number (&kb)) {
      return false;
   }
   double d = dj_value_as_double (&kb) - dj_value_as_double (&ka);
   return (wf->lo_unbounded || d >= (wf->lo_current ? 0 : wf->lo)) && (wf->hi_unbounded || d <= (wf->hi_current ? 0 : wf->hi));
}

bool
dj_agg_run_window (rctx_t *r, const stage_t *s, dj_docs_t *docs)
{
   size_t n = docs->n;
   wrow_t *rows = bson_malloc0 (sizeof (wrow_t) * (n ? n : 1));
   bool ok = true;

   /* partition, then sort within each partition (stable) */
   for (size_t i = 0; i < n && ok; i++) {
      rows[i].doc = docs->v[i];
      rows[i].idx = i;
      dj_buf_init (&rows[i].pkey);
      if (s->partition) {
         ok = dj_agg_partition_key (r, s->partition, docs->v[i], &rows[i].pkey);
      }
   }
   if (!ok) {
      for (size_t i = 0; i < n; i++) {
         dj_buf_cleanup (&rows[i].pkey);
      }
      bson_free (rows);
      return false;
   }
   qsort (rows, n, sizeof (wrow_t), wrow_cmp);
   size_t done = 0; /* rows[0..done) hold results; the rest still point at the input */
   for (size_t start = 0; start < n && ok;) {
      size_t end = start + 1;
      while (end < n && !dj_agg_key_cmp (&rows[end].pkey, &rows[start].pkey)) {
         end++;
      }
      size_t pn = end - start;
      bson_t **pd = bson_malloc (sizeof (bson_t *) * pn);
      for (size_t i = 0; i < pn; i++) {
         pd[i] = rows[start + i].doc;
      }
      if (s->sort) {
         dj_sort_docs (s->sort, pd, pn);
      }
      /* each output field, per row */
      bson_t **outs = bson_malloc (sizeof (bson_t *) * pn);
      for (size_t i = 0; i < pn; i++) {
         outs[i] = bson_copy (pd[i]);
      }
      for (int w = 0; ok && w < s->nwf; w++) {
         const wfield_t *wf = &s->wf[w];
         int64_t rank = 0, dense = 0;
         dj_path_t wpath;
         if (!dj_path_init (&wpath, wf->name, strlen (wf->name), r->error)) {
            ok = false;
            break;
         }
         /* $expMovingAvg, $locf, $linearFill: the partition's column at once */
         bson_value_t *column = NULL;
         if (wf->fn == WF_EMA || wf->fn == WF_LOCF || wf->fn == WF_LINEARFILL) {
            column = bson_malloc (sizeof (bson_value_t) * (pn ? pn : 1));
            ok = dj_agg_window_column (r, s->sort, wf, pd, pn, column);
         }
         size_t *idx = bson_malloc (sizeof (size_t) * (pn ? pn : 1)); /* a window's rows */
         for (size_t i = 0; ok && i < pn; i++) {
            bson_value_t result = {.value_type = BSON_TYPE_NULL};
            if (wf->rank == 1 || wf->rank == 2 || wf->rank == 3) {
               bool tie = i > 0 && s->sort && dj_sort_cmp (s->sort, pd[i - 1], pd[i]) == 0;
               if (!tie) {
                  rank = (int64_t) i + 1;
                  dense++;
               }
               result.value_type = BSON_TYPE_INT32;
               result.value.v_int32 = (int32_t) (wf->rank == 1 ? rank : wf->rank == 2 ? dense : (int64_t) i + 1);
               if (wf->rank == 3) {
                  result.value.v_int32 = (int32_t) (i + 1);
               }
            } else if (wf->rank == 4) {
               int64_t j = (int64_t) i + wf->shift_by;
               if (j >= 0 && j < (int64_t) pn) {
                  dj_eval_t ev;
                  dj_agg_eval_setup (r, &ev, pd[j]);
                  ok = dj_expr_eval (wf->expr, &ev, &result);
                  if (result.value_type == BSON_TYPE_EOD) {
                     result.value_type = BSON_TYPE_NULL;
                  }
               } else if (wf->shift_default.value_type != BSON_TYPE_EOD) {
                  result = wf->shift_default;
               }
            } else if (column) {
               result = column[i]; /* borrowed: column owns it */
            } else {
               /* accumulator (or window_fns.c's function) over the window */
               int64_t lo = 0, hi = (int64_t) pn - 1;
               if (wf->has_window && !wf->range) {
                  lo = wf->lo_unbounded ? 0 : (int64_t) i + (wf->lo_current ? 0 : (int64_t) wf->lo);
                  hi = wf->hi_unbounded ? (int64_t) pn - 1 : (int64_t) i + (wf->hi_current ? 0 : (int64_t) wf->hi);
               } else if (!wf->has_window && s->sort) {
                  hi = (int64_t) i; /* with a sortBy the default window is [unbounded, current] */
               }
               dj_accst_t st = {.op = wf->op, .param = wf->param};
               size_t nidx = 0;
               for (int64_t j = lo < 0 ? 0 : lo; ok && j <= hi && j < (int64_t) pn; j++) {
                  if (wf->has_window && wf->range && !in_range (s, wf, pd[i], pd[j])) {
                     continue;
                  }
                  if (wf->fn) {
                     idx[nidx++] = (size_t) j; /* for window_fns.c, below */
                     continue;
                  }
                  bson_value_t v = {.value_type = BSON_TYPE_EOD};
                  dj_eval_t ev;
                  dj_agg_eval_setup (r, &ev, pd[j]);
                  if (wf->expr) {
                     ok = dj_expr_eval (wf->expr, &ev, &v);
                  }
                  ok = ok && dj_acc_step (&st, &v, r->error);
               }
               bson_t tmp = BSON_INITIALIZER;
               if (wf->fn) {
                  bson_value_t fv;
                  ok = ok && dj_agg_window_over (r, s->sort, wf, pd, idx, nidx, &fv);
                  BSON_APPEND_VALUE (&tmp, "v", &fv);
               } else {
                  dj_acc_result (&st, "v", &tmp);
               }
               bson_iter_t ti;
               bson_iter_init_find (&ti, &tmp, "v");
               bson_t *nd = dj_agg_with_path (outs[i], &wpath, bson_iter_value (&ti), NULL, 0);
               bson_destroy (&tmp);
               dj_accst_cleanup (&st);
               bson_destroy (outs[i]);
               outs[i] = nd;
               dj_arena_reset (r->arena);
               continue;
            }
            if (!ok) {
               break;
            }
            bson_t *nd = dj_agg_with_path (outs[i], &wpath, &result, NULL, 0);
            bson_destroy (outs[i]);
            outs[i] = nd;
            dj_arena_reset (r->arena);
         }
         for (size_t i = 0; column && i < pn; i++) {
            bson_value_destroy (&column[i]);
         }
         bson_free (column);
         bson_free (idx);
         dj_path_cleanup (&wpath);
      }
      for (size_t i = 0; i < pn; i++) {
         /* replace in the row order the partition sorted them into */
         rows[start + i].doc = outs[i];
      }
      bson_free (outs);
      bson_free (pd);
      start = done = end;
   }
   /* the input goes; the results take its place -- all of them, or after a
    * failure the partitions that were done (those after it still point at
    * the input: handing them back freed them twice) */
   for (size_t i = 0; i < n; i++) {
      bson_destroy (docs->v[i]);
      dj_buf_cleanup (&rows[i].pkey);
   }
   for (size_t i = 0; i < done; i++) {
      docs->v[i] = rows[i].doc;
   }
   docs->n = done;
   bson_free (rows);
   return ok;
}

