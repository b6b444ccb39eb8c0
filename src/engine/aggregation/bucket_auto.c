/*
 * bucket_auto.c -- $bucketAuto: the documents sorted by groupBy and cut
 * into `buckets` runs of about equal size; a run never splits equal
 * values, and with a granularity its upper bound is rounded up the
 * preferred-number series (documents below the rounded bound join it).
 * Each bucket's _id is {min, max}: max is the next bucket's min (exclusive),
 * the last bucket's its greatest value (inclusive).
 *
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/bucketAuto/
 * Granularity series: https://www.mongodb.com/docs/manual/reference/operator/aggregation/bucketAuto/#granularity
 * (Renard R5..R80, ISO 3; E6..E192, IEC 60063; 1-2-5; powers of 2).
 */
#include "agg-private.h"

#include <math.h>
#include <stdlib.h>

static const double r5[] = {1.0, 1.6, 2.5, 4.0, 6.3};
static const double r10[] = {1.0, 1.25, 1.6, 2.0, 2.5, 3.15, 4.0, 5.0, 6.3, 8.0};
static const double r20[] = {1.0, 1.12, 1.25, 1.4, 1.6, 1.8, 2.0, 2.24, 2.5, 2.8,
                             3.15, 3.55, 4.0, 4.5, 5.0, 5.6, 6.3, 7.1, 8.0, 9.0};
static const double r40[] = {1.0, 1.06, 1.12, 1.18, 1.25, 1.32, 1.4, 1.5, 1.6, 1.7, 1.8, 1.9, 2.0, 2.12,
                             2.24, 2.36, 2.5, 2.65, 2.8, 3.0, 3.15, 3.35, 3.55, 3.75, 4.0, 4.25, 4.5, 4.75,
                             5.0, 5.3, 5.6, 6.0, 6.3, 6.7, 7.1, 7.5, 8.0, 8.5, 9.0, 9.5};
static const double r80[] = {1.00, 1.03, 1.06, 1.09, 1.12, 1.15, 1.18, 1.22, 1.25, 1.28, 1.32, 1.36, 1.40, 1.45,
                             1.50, 1.55, 1.60, 1.65, 1.70, 1.75, 1.80, 1.85, 1.90, 1.95, 2.00, 2.06, 2.12, 2.18,
                             2.24, 2.30, 2.36, 2.43, 2.50, 2.58, 2.65, 2.72, 2.80, 2.90, 3.00, 3.07, 3.15, 3.25,
                             3.35, 3.45, 3.55, 3.65, 3.75, 3.87, 4.00, 4.12, 4.25, 4.37, 4.50, 4.62, 4.75, 4.87,
                             5.00, 5.15, 5.30, 5.45, 5.60, 5.80, 6.00, 6.15, 6.30, 6.50, 6.70, 6.90, 7.10, 7.30,
                             7.50, 7.75, 8.00, 8.25, 8.50, 8.75, 9.00, 9.25, 9.50, 9.75};
static const double s125[] = {1.0, 2.0, 5.0};
static const double e6[] = {1.0, 1.5, 2.2, 3.3, 4.7, 6.8};
static const double e12[] = {1.0, 1.2, 1.5, 1.8, 2.2, 2.7, 3.3, 3.9, 4.7, 5.6, 6.8, 8.2};
static const double e24[] = {1.0, 1.1, 1.2, 1.3, 1.5, 1.6, 1.8, 2.0, 2.2, 2.4, 2.7, 3.0,
                             3.3, 3.6, 3.9, 4.3, 4.7, 5.1, 5.6, 6.2, 6.8, 7.5, 8.2, 9.1};
static const double e48[] = {1.00, 1.05, 1.10, 1.15, 1.21, 1.27, 1.33, 1.40, 1.47, 1.54, 1.62, 1.69,
                             1.78, 1.87, 1.96, 2.05, 2.15, 2.26, 2.37, 2.49, 2.61, 2.74, 2.87, 3.01,
                             3.16, 3.32, 3.48, 3.65, 3.83, 4.02, 4.22, 4.42, 4.64, 4.87, 5.11, 5.36,
                             5.62, 5.90, 6.19, 6.49, 6.81, 7.15, 7.50, 7.87, 8.25, 8.66, 9.09, 9.53};
static const double e96[] = {1.00, 1.02, 1.05, 1.07, 1.10, 1.13, 1.15, 1.18, 1.21, 1.24, 1.27, 1.30, 1.33, 1.37,
                             1.40, 1.43, 1.47, 1.50, 1.54, 1.58, 1.62, 1.65, 1.69, 1.74, 1.78, 1.82, 1.87, 1.91,
                             1.96, 2.00, 2.05, 2.10, 2.15, 2.21, 2.26, 2.32, 2.37, 2.43, 2.49, 2.55, 2.61, 2.67,
                             2.74, 2.80, 2.87, 2.94, 3.01, 3.09, 3.16, 3.24, 3.32, 3.40, 3.48, 3.57, 3.65, 3.74,
                             3.83, 3.92, 4.02, 4.12, 4.22, 4.32, 4.42, 4.53, 4.64, 4.75, 4.87, 4.99, 5.11, 5.23,
                             5.36, 5.49, 5.62, 5.76, 5.90, 6.04, 6.19, 6.34, 6.49, 6.65, 6.81, 6.98, 7.15, 7.32,
                             7.50, 7.68, 7.87, 8.06, 8.25, 8.45, 8.66, 8.87, 9.09, 9.31, 9.53, 9.76};
static const double e192[] = {
   1.00, 1.01, 1.02, 1.04, 1.05, 1.06, 1.07, 1.09, 1.10, 1.11, 1.13, 1.14, 1.15, 1.17, 1.18, 1.20, 1.21, 1.23, 1.24, 1.26,
   1.27, 1.29, 1.30, 1.32, 1.33, 1.35, 1.37, 1.38, 1.40, 1.42, 1.43, 1.45, 1.47, 1.49, 1.50, 1.52, 1.54, 1.56, 1.58, 1.60,
   1.62, 1.64, 1.65, 1.67, 1.69, 1.72, 1.74, 1.76, 1.78, 1.80, 1.82, 1.84, 1.87, 1.89, 1.91, 1.93, 1.96, 1.98, 2.00, 2.03,
   2.05, 2.08, 2.10, 2.13, 2.15, 2.18, 2.21, 2.23, 2.26, 2.29, 2.32, 2.34, 2.37, 2.40, 2.43, 2.46, 2.49, 2.52, 2.55, 2.58,
   2.61, 2.64, 2.67, 2.71, 2.74, 2.77, 2.80, 2.84, 2.87, 2.91, 2.94, 2.98, 3.01, 3.05, 3.09, 3.12, 3.16, 3.20, 3.24, 3.28,
   3.32, 3.36, 3.40, 3.44, 3.48, 3.52, 3.57, 3.61, 3.65, 3.70, 3.74, 3.79, 3.83, 3.88, 3.92, 3.97, 4.02, 4.07, 4.12, 4.17,
   4.22, 4.27, 4.32, 4.37, 4.42, 4.48, 4.53, 4.59, 4.64, 4.70, 4.75, 4.81, 4.87, 4.93, 4.99, 5.05, 5.11, 5.17, 5.23, 5.30,
   5.36, 5.42, 5.49, 5.56, 5.62, 5.69, 5.76, 5.83, 5.90, 5.97, 6.04, 6.12, 6.19, 6.26, 6.34, 6.42, 6.49, 6.57, 6.65, 6.73,
   6.81, 6.90, 6.98, 7.06, 7.15, 7.23, 7.32, 7.41, 7.50, 7.59, 7.68, 7.77, 7.87, 7.96, 8.06, 8.16, 8.25, 8.35, 8.45, 8.56,
   8.66, 8.76, 8.87, 8.98, 9.09, 9.20, 9.31, 9.42, 9.53, 9.65, 9.76, 9.88};

typedef struct {
   const char *name;
   const double *v;
   int n; /* 0: powers of 2 */
} series_t;

#define SERIES(name, a) {name, a, (int) (sizeof a / sizeof a[0])}
static const series_t series[] = {
   SERIES ("R5", r5),    SERIES ("R10", r10),  SERIES ("R20", r20),  SERIES ("R40", r40),   SERIES ("R80", r80),
   SERIES ("1-2-5", s125), SERIES ("E6", e6),  SERIES ("E12", e12),  SERIES ("E24", e24),   SERIES ("E48", e48),
   SERIES ("E96", e96),  SERIES ("E192", e192), {"POWERSOF2", NULL, 0},
};

/* The series value around x > 0: the smallest greater than x (up) or the
 * greatest less than x (down), over the series scaled by powers of 10. */
static double
series_round (const series_t *sr, double x, bool up)
{
   if (!sr->n) {
      double p = exp2 (floor (log2 (x)));
      if (up) {
         return p <= x ? p * 2 : p;
      }
      return p >= x ? p / 2 : p;
   }
   int decade = (int) floor (log10 (x));
   /* the candidates: the decade below, this one and the one above */
   double best = up ? INFINITY : 0;
   for (int d = decade - 1; d <= decade + 1; d++) {
      for (int i = 0; i < sr->n; i++) {
         /* divided by an exact power of ten below 1: 2.5 / 10 is 0.25, where 2.5 * 0.1 need not be */
         double c = d >= 0 ? sr->v[i] * pow (10, d) : sr->v[i] / pow (10, -d);
         if (up ? (c > x && c < best) : (c < x && c > best)) {
            best = c;
         }
      }
   }
   return best;
}

typedef struct {
   const series_t *gran; /* NULL: none */
} bauto_t;

static void
bauto_free (void *p)
{
   bson_free (p);
}

bool
dj_agg_parse_bucket_auto (stage_t *s, const bson_value_t *v, const dj_vscope_t *scope, bson_error_t *error)
{
   bson_iter_t it;
   bauto_t *spec = bson_malloc0 (sizeof *spec);
   s->spec = spec;
   s->spec_free = bauto_free;
   if (v->value_type != BSON_TYPE_DOCUMENT) {
      return dj_err (error, 40240, "The argument to $bucketAuto must be an object, but found type: %s", dj_type_name (v->value_type));
   }
   bool have_buckets = false;
   bson_iter_init_from_data (&it, v->value.v_doc.data, v->value.v_doc.data_len);
   while (bson_iter_next (&it)) {
      const char *k = bson_iter_key (&it);
      if (!strcmp (k, "groupBy")) {
         const bson_value_t *g = bson_iter_value (&it);
         if (!(g->value_type == BSON_TYPE_UTF8 && g->value.v_utf8.str[0] == '$') && g->value_type != BSON_TYPE_DOCUMENT) {
            return dj_err (error, 40239, "The $bucketAuto 'groupBy' field must be defined as a $-prefixed path or an expression object, but found: %s",
                           dj_type_name (g->value_type));
         }
         dj_expr_destroy (s->expr);
         s->expr = dj_expr_parse (g, scope, error);
         if (!s->expr) {
            return false;
         }
      } else if (!strcmp (k, "buckets")) {
         int64_t n;
         if (!BSON_ITER_HOLDS_NUMBER (&it) || !dj_value_as_int64_exact (bson_iter_value (&it), &n) || n > INT32_MAX) {
            return dj_err (error, 40241, "The $bucketAuto 'buckets' field must be a numeric value, but found type: %s",
                           dj_type_name (bson_iter_type (&it)));
         }
         if (n <= 0) {
            return dj_err (error, 40243, "The $bucketAuto 'buckets' field must be greater than 0, but found: %" PRId64, n);
         }
         s->n = n;
         have_buckets = true;
      } else if (!strcmp (k, "output")) {
         bson_iter_t oi;
         if (!BSON_ITER_HOLDS_DOCUMENT (&it)) {
            return dj_err (error, 40244, "The $bucketAuto 'output' field must be an object, but found type: %s",
                           dj_type_name (bson_iter_type (&it)));
         }
         bson_iter_recurse (&it, &oi);
         while (bson_iter_next (&oi)) {
            if (!dj_agg_add_acc (s, bson_iter_key (&oi), bson_iter_value (&oi), scope, error)) {
               return false;
            }
         }
      } else if (!strcmp (k, "granularity")) {
         const char *g = BSON_ITER_HOLDS_UTF8 (&it) ? bson_iter_utf8 (&it, NULL) : "";
         spec->gran = NULL;
         for (size_t i = 0; i < sizeof series / sizeof series[0]; i++) {
            if (!strcmp (series[i].name, g)) {
               spec->gran = &series[i];
            }
         }
         if (!spec->gran) {
            return dj_err (error, 40257, "Rounding granularity not recognized: %s", g);
         }
      } else {
         return dj_err (error, 40245, "Unrecognized option to $bucketAuto: %s.", k);
      }
   }
   if (!s->expr || !have_buckets) {
      return dj_err (error, 40246, "$bucketAuto requires 'groupBy' and 'buckets' to be specified");
   }
   if (!s->naccs) {
      dj_agg_count_only (s);
   }
   return true;
}

typedef struct {
   bson_value_t key; /* owned copy: the groupBy value (missing: null) */
   size_t idx;       /* input position: ties keep the input order */
} bkey_t;

static int
bkey_cmp (const void *a, const void *b)
{
   const bkey_t *x = a, *y = b;
   int c = dj_value_cmp (&x->key, &y->key);
   return c ? c : (x->idx > y->idx) - (x->idx < y->idx);
}

/* A rounded boundary: a double, or a decimal when the value was one. */
static void
rounded (const bauto_t *spec, const bson_value_t *v, bool up, bson_value_t *out)
{
   double x = dj_value_as_double (v);
   if (x == 0) {
      *out = *v; /* zero stays itself, either way */
      return;
   }
   double r = series_round (spec->gran, x, up);
   if (v->value_type == BSON_TYPE_DECIMAL128) {
      char buf[64];
      snprintf (buf, sizeof buf, "%.15g", r);
      out->value_type = BSON_TYPE_DECIMAL128;
      bson_decimal128_from_string (buf, &out->value.v_decimal128);
   } else {
      out->value_type = BSON_TYPE_DOUBLE;
      out->value.v_double = r;
   }
}

bool
dj_agg_run_bucket_auto (rctx_t *r, const stage_t *s, dj_docs_t *docs)
{
   const bauto_t *spec = s->spec;
   size_t n = docs->n;
   bkey_t *keys = bson_malloc0 (sizeof (bkey_t) * (n ? n : 1));
   bool ok = true;
   size_t nk = 0;
   for (size_t i = 0; ok && i < n; i++) {
      dj_eval_t ev;
      bson_value_t g;
      dj_agg_eval_setup (r, &ev, docs->v[i]);
      ok = dj_expr_eval (s->expr, &ev, &g);
      if (ok && spec->gran) {
         /* https://www.mongodb.com/docs/manual/reference/operator/aggregation/bucketAuto/#granularity */
         if (!dj_value_is_number (&g) || isnan (dj_value_as_double (&g))) {
            ok = dj_err (r->error, 40258, "$bucketAuto can specify a 'granularity' with numeric boundaries only, but found type: %s",
                         dj_type_name (g.value_type));
         } else if (dj_value_as_double (&g) < 0) {
            ok = dj_err (r->error, 40260, "A granularity rounder cannot round a negative number");
         }
      }
      if (ok) {
         if (g.value_type == BSON_TYPE_EOD) {
            g.value_type = BSON_TYPE_NULL;
         }
         bson_value_copy (&g, &keys[nk].key);
         keys[nk].idx = i;
         nk++;
      }
      dj_arena_reset (r->arena);
   }
   size_t bytes = 0; /* it holds every document and its key */
   for (size_t i = 0; i < n; i++) {
      bytes += docs->v[i]->len + sizeof (bkey_t);
   }
   ok = ok && dj_agg_check_memory (r, bytes, "$bucketAuto");
   dj_docs_t out = {0};
   if (ok && nk) {
      qsort (keys, nk, sizeof (bkey_t), bkey_cmp);
      size_t per = (size_t) llround ((double) nk / (double) s->n);
      per = per ? per : 1;
      size_t i = 0;
      bson_value_t prev_max = {0}; /* with a granularity: the last bucket's rounded max (borrowed) */
      bson_value_t rmax = {0};
      while (ok && i < nk) {
         size_t start = i, end = i + per < nk ? i + per : nk;
         bson_value_t bmin = keys[start].key, bmax;
         if (spec->gran) {
            if (start == 0) {
               rounded (spec, &bmin, false, &bmin);
            } else {
               bmin = prev_max;
            }
            rounded (spec, &keys[end - 1].key, true, &rmax);
            while (end < nk && dj_value_cmp (&keys[end].key, &rmax) < 0) {
               end++;
            }
            bmax = rmax;
         } else {
            while (end < nk && dj_value_cmp (&keys[end].key, &keys[end - 1].key) == 0) {
               end++;
            }
            bmax = end < nk ? keys[end].key : keys[end - 1].key;
         }
         dj_accst_t *st = bson_malloc0 (sizeof (dj_accst_t) * (size_t) s->naccs);
         for (int a = 0; a < s->naccs; a++) {
            dj_accst_init (&st[a], &s->accs[a]);
         }
         for (size_t k = start; ok && k < end; k++) {
            dj_eval_t ev;
            dj_agg_eval_setup (r, &ev, docs->v[keys[k].idx]);
            for (int a = 0; ok && a < s->naccs; a++) {
               bson_value_t av = {.value_type = BSON_TYPE_EOD};
               ok = (!s->accs[a].expr || dj_expr_eval (s->accs[a].expr, &ev, &av)) && dj_acc_step (&st[a], &av, r->error);
            }
            dj_arena_reset (r->arena);
         }
         if (ok) {
            bson_t *d = bson_new (), id;
            BSON_APPEND_DOCUMENT_BEGIN (d, "_id", &id);
            BSON_APPEND_VALUE (&id, "min", &bmin);
            BSON_APPEND_VALUE (&id, "max", &bmax);
            bson_append_document_end (d, &id);
            for (int a = 0; a < s->naccs; a++) {
               dj_acc_result (&st[a], s->accs[a].field, d);
            }
            dj_docs_push (&out, d);
         }
         for (int a = 0; a < s->naccs; a++) {
            dj_accst_cleanup (&st[a]);
         }
         bson_free (st);
         prev_max = rmax;
         i = end;
      }
   }
   for (size_t i = 0; i < nk; i++) {
      bson_value_destroy (&keys[i].key);
   }
   bson_free (keys);
   dj_docs_clear (docs);
   *docs = out;
   if (!ok) {
      dj_docs_clear (docs);
   }
   return ok;
}
