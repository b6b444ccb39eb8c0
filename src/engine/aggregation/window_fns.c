/*
 * window_fns.c -- the $setWindowFields functions that are not group
 * accumulators: $derivative, $integral, $covariancePop, $covarianceSamp
 * (over each document's window), $expMovingAvg, $locf, $linearFill (down
 * the partition in sortBy order).
 *
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/derivative/
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/integral/
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/covariancePop/
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/covarianceSamp/
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/expMovingAvg/
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/locf/
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/linearFill/
 *
 * $derivative and $integral measure along the sortBy field (one field,
 * numbers or dates; dates in `unit`s, which dates require).
 */
#include "agg-private.h"

#include <math.h>

static bool
take_unit (wfield_t *w, const bson_value_t *u, const char *fn, bson_error_t *error)
{
   if (u->value_type != BSON_TYPE_UTF8 || !dj_agg_time_unit (u->value.v_utf8.str, &w->unit)) {
      return dj_err (error, 5490704, "%s 'unit' must be a time unit, found %s", fn,
                     u->value_type == BSON_TYPE_UTF8 ? u->value.v_utf8.str : dj_type_name (u->value_type));
   }
   if (!w->unit.ms) {
      return dj_err (error, 5490710, "%s 'unit' must be a fixed-length unit (week or shorter), found %s", fn, u->value.v_utf8.str);
   }
   w->has_unit = true;
   return true;
}

bool
dj_agg_window_fn_parse (wfield_t *w, const char *fk, const bson_value_t *fv, const dj_vscope_t *scope, bool *handled,
                        bson_error_t *error)
{
   static const struct {
      const char *name;
      int fn;
   } fns[] = {{"$derivative", WF_DERIVATIVE}, {"$integral", WF_INTEGRAL}, {"$covariancePop", WF_COVPOP},
              {"$covarianceSamp", WF_COVSAMP}, {"$expMovingAvg", WF_EMA}, {"$locf", WF_LOCF},
              {"$linearFill", WF_LINEARFILL}};
   *handled = false;
   for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
      if (!strcmp (fns[i].name, fk)) {
         w->fn = fns[i].fn;
      }
   }
   if (!w->fn) {
      return true;
   }
   *handled = true;
   bson_value_t in;
   switch (w->fn) {
   case WF_DERIVATIVE:
   case WF_INTEGRAL:
   case WF_EMA: {
      bson_value_t u, n, alpha;
      if (fv->value_type != BSON_TYPE_DOCUMENT || !dj_value_get_field (fv, "input", &in)) {
         return dj_err (error, DJ_FailedToParse, "%s requires an object with an 'input' expression", fk);
      }
      bson_iter_t it;
      bson_iter_init_from_data (&it, fv->value.v_doc.data, fv->value.v_doc.data_len);
      while (bson_iter_next (&it)) {
         const char *k = bson_iter_key (&it);
         bool known = !strcmp (k, "input") || (w->fn != WF_EMA && !strcmp (k, "unit")) ||
                      (w->fn == WF_EMA && (!strcmp (k, "N") || !strcmp (k, "alpha")));
         if (!known) {
            return dj_err (error, DJ_FailedToParse, "%s got unexpected argument: %s", fk, k);
         }
      }
      if (w->fn != WF_EMA && dj_value_get_field (fv, "unit", &u) && !take_unit (w, &u, fk, error)) {
         return false;
      }
      if (w->fn == WF_EMA) {
         bool has_n = dj_value_get_field (fv, "N", &n), has_alpha = dj_value_get_field (fv, "alpha", &alpha);
         int64_t nn;
         if (has_n == has_alpha) {
            return dj_err (error, 5433602, "$expMovingAvg must have exactly one of 'N' and 'alpha'");
         }
         if (has_n && (!dj_value_is_number (&n) || !dj_value_as_int64_exact (&n, &nn) || nn <= 0)) {
            return dj_err (error, 5433603, "'N' field must be a positive integer");
         }
         if (has_alpha && (!dj_value_is_number (&alpha) || !(dj_value_as_double (&alpha) > 0 && dj_value_as_double (&alpha) < 1))) {
            return dj_err (error, 5433607, "'alpha' must be between 0 and 1 (exclusive)");
         }
         w->alpha = has_n ? 2.0 / ((double) nn + 1) : dj_value_as_double (&alpha);
      }
      break;
   }
   case WF_COVPOP:
   case WF_COVSAMP: {
      bson_value_t y;
      if (fv->value_type != BSON_TYPE_ARRAY || dj_value_count (fv) != 2) {
         return dj_err (error, DJ_FailedToParse, "%s requires an array of two expressions", fk);
      }
      dj_value_get_field (fv, "0", &in);
      dj_value_get_field (fv, "1", &y);
      w->expr2 = dj_expr_parse (&y, scope, error);
      if (!w->expr2) {
         return false;
      }
      break;
   }
   default: in = *fv; /* $locf, $linearFill: the expression itself */
   }
   w->expr = dj_expr_parse (&in, scope, error);
   return w->expr != NULL;
}

/* The sortBy field's value of doc as a number: dates in milliseconds
 * (divided by unit when one is set); false when neither. */
static bool
position (const dj_sort_t *sort, const wfield_t *wf, const bson_t *doc, double *x, bool *is_date)
{
   int dir;
   const char *f = dj_sort_key (sort, 0, &dir);
   bson_iter_t it;
   if (!bson_iter_init (&it, doc) || !bson_iter_find_descendant (&it, f, &it)) {
      return false;
   }
   const bson_value_t *v = bson_iter_value (&it);
   *is_date = v->value_type == BSON_TYPE_DATE_TIME;
   if (*is_date) {
      *x = (double) v->value.v_datetime / (wf->has_unit ? (double) wf->unit.ms : 1);
      return true;
   }
   if (dj_value_is_number (v)) {
      *x = dj_value_as_double (v);
      return true;
   }
   return false;
}

static bool
eval_num (rctx_t *r, const dj_expr_t *e, const bson_t *doc, double *y, bool *is_num)
{
   dj_eval_t ev;
   bson_value_t v;
   dj_agg_eval_setup (r, &ev, doc);
   if (!dj_expr_eval (e, &ev, &v)) {
      return false;
   }
   *is_num = dj_value_is_number (&v);
   *y = *is_num ? dj_value_as_double (&v) : 0;
   return true;
}

bool
dj_agg_window_over (rctx_t *r, const dj_sort_t *sort, const wfield_t *wf, bson_t **pd, const size_t *idx, size_t n,
                    bson_value_t *out)
{
   out->value_type = BSON_TYPE_NULL;
   if (wf->fn == WF_COVPOP || wf->fn == WF_COVSAMP) {
      /* over the documents where both are numbers */
      double mx = 0, my = 0, c = 0;
      int64_t k = 0;
      for (size_t j = 0; j < n; j++) {
         double x, y;
         bool nx, ny;
         if (!eval_num (r, wf->expr, pd[idx[j]], &x, &nx) || !eval_num (r, wf->expr2, pd[idx[j]], &y, &ny)) {
            return false;
         }
         dj_arena_reset (r->arena);
         if (!nx || !ny) {
            continue;
         }
         k++;
         double dx = x - mx;
         mx += dx / (double) k;
         my += (y - my) / (double) k;
         c += dx * (y - my); /* Welford's co-moment */
      }
      int64_t div = wf->fn == WF_COVPOP ? k : k - 1;
      if (div > 0) {
         out->value_type = BSON_TYPE_DOUBLE;
         out->value.v_double = c / (double) div;
      }
      return true;
   }
   /* $derivative, $integral: along the sortBy field */
   double px = 0, py = 0, first_x = 0, first_y = 0, sum = 0;
   int64_t k = 0;
   for (size_t j = 0; j < n; j++) {
      double x, y;
      bool is_date, ny;
      if (!position (sort, wf, pd[idx[j]], &x, &is_date)) {
         return dj_err (r->error, 5624900, "%s requires the sortBy field to be a number or a date",
                        wf->fn == WF_DERIVATIVE ? "$derivative" : "$integral");
      }
      if (is_date && !wf->has_unit) {
         return dj_err (r->error, 5624901, "%s with a date sortBy requires a 'unit'", wf->fn == WF_DERIVATIVE ? "$derivative" : "$integral");
      }
      if (!eval_num (r, wf->expr, pd[idx[j]], &y, &ny)) {
         return false;
      }
      dj_arena_reset (r->arena);
      if (!ny) {
         continue;
      }
      if (!k) {
         first_x = x;
         first_y = y;
      } else {
         sum += (x - px) * (py + y) / 2; /* the trapezoid from the last point */
      }
      px = x;
      py = y;
      k++;
   }
   if (wf->fn == WF_INTEGRAL) {
      if (k) {
         out->value_type = BSON_TYPE_DOUBLE;
         out->value.v_double = sum;
      }
   } else if (k >= 2 && px != first_x) {
      out->value_type = BSON_TYPE_DOUBLE;
      out->value.v_double = (py - first_y) / (px - first_x);
   }
   return true;
}

bool
dj_agg_window_column (rctx_t *r, const dj_sort_t *sort, const wfield_t *wf, bson_t **pd, size_t pn, bson_value_t *vals)
{
   static const bson_value_t null_v = {.value_type = BSON_TYPE_NULL};
   bool ok = true;
   size_t i;
   /* the inputs, copied (null for missing) */
   for (i = 0; ok && i < pn; i++) {
      dj_eval_t ev;
      bson_value_t v;
      dj_agg_eval_setup (r, &ev, pd[i]);
      ok = dj_expr_eval (wf->expr, &ev, &v);
      bson_value_copy (ok && v.value_type != BSON_TYPE_EOD && v.value_type != BSON_TYPE_UNDEFINED ? &v : &null_v, &vals[i]);
      dj_arena_reset (r->arena);
   }
   for (; i < pn; i++) {
      vals[i] = null_v;
   }
   if (!ok) {
      return false;
   }
   if (wf->fn == WF_LOCF) {
      /* each null takes the last value before it */
      for (i = 1; i < pn; i++) {
         if (vals[i].value_type == BSON_TYPE_NULL && vals[i - 1].value_type != BSON_TYPE_NULL) {
            bson_value_copy (&vals[i - 1], &vals[i]);
         }
      }
      return true;
   }
   if (wf->fn == WF_EMA) {
      /* result = input * alpha + previous * (1 - alpha), from the first number on */
      bool have = false;
      double ema = 0;
      for (i = 0; i < pn; i++) {
         if (dj_value_is_number (&vals[i])) {
            double x = dj_value_as_double (&vals[i]);
            ema = have ? x * wf->alpha + ema * (1 - wf->alpha) : x;
            have = true;
         }
         bson_value_destroy (&vals[i]);
         vals[i] = null_v;
         if (have) {
            vals[i].value_type = BSON_TYPE_DOUBLE;
            vals[i].value.v_double = ema;
         }
      }
      return true;
   }
   /* $linearFill: nulls between two numbers on the line between them */
   double *xs = bson_malloc (sizeof (double) * (pn ? pn : 1));
   for (i = 0; ok && i < pn; i++) {
      bool is_date;
      if (!position (sort, wf, pd[i], &xs[i], &is_date)) {
         ok = dj_err (r->error, 6050106, "$linearFill requires the sortBy field to be a number or a date");
      } else if (vals[i].value_type != BSON_TYPE_NULL && !dj_value_is_number (&vals[i])) {
         ok = dj_err (r->error, 6050106, "$linearFill fills numbers only, found %s", dj_type_name (vals[i].value_type));
      }
   }
   size_t prev = SIZE_MAX;
   for (i = 0; ok && i < pn; i++) {
      if (vals[i].value_type != BSON_TYPE_NULL) {
         prev = i;
         continue;
      }
      size_t next = i + 1;
      while (next < pn && vals[next].value_type == BSON_TYPE_NULL) {
         next++;
      }
      if (prev == SIZE_MAX || next == pn) {
         continue;
      }
      double y1 = dj_value_as_double (&vals[prev]), y2 = dj_value_as_double (&vals[next]);
      vals[i].value_type = BSON_TYPE_DOUBLE;
      vals[i].value.v_double =
         xs[next] == xs[prev] ? y1 : y1 + (y2 - y1) * (xs[i] - xs[prev]) / (xs[next] - xs[prev]);
   }
   bson_free (xs);
   return ok;
}

bool
dj_agg_window_check (const stage_t *s, const wfield_t *wf, bson_error_t *error)
{
   static const char *const names[] = {"", "$derivative", "$integral", "$covariancePop", "$covarianceSamp",
                                       "$expMovingAvg", "$locf", "$linearFill"};
   bool one_key = s->sort && dj_sort_nkeys (s->sort) == 1;
   if (wf->has_window && wf->range && !one_key) {
      return dj_err (error, 5339902, "Range-based bounds require sortBy a single field");
   }
   if ((wf->fn == WF_DERIVATIVE || wf->fn == WF_INTEGRAL || wf->fn == WF_LINEARFILL) && !one_key) {
      return dj_err (error, 5624902, "%s requires a sortBy of exactly one field", names[wf->fn]);
   }
   if (wf->fn == WF_EMA && !s->sort) {
      return dj_err (error, 5433601, "$expMovingAvg requires an explicit 'sortBy'");
   }
   if (wf->fn == WF_DERIVATIVE && !wf->has_window) {
      return dj_err (error, 5490701, "$derivative requires explicit window bounds");
   }
   if ((wf->fn == WF_EMA || wf->fn == WF_LOCF || wf->fn == WF_LINEARFILL) && wf->has_window) {
      return dj_err (error, 5339901, "%s does not accept a 'window' field", names[wf->fn]);
   }
   return true;
}
