/*
 * densify.c -- $densify: new documents where a numeric or date field's
 * sequence has gaps, every `step` (for dates, `step` `unit`s) from the
 * range's lower bound, within each partition.
 *
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/densify/
 *
 * The output is sorted by the partition fields, then the field (mongod
 * sorts first); documents without the field (or with null) pass through
 * first in their partition. Bounds: "full" -- from the least value of any
 * partition to the greatest; "partition" -- each partition's own least to
 * greatest; [lower, upper] -- from lower, upper exclusive, documents
 * outside left as they are. A generated document holds the partition
 * fields and the field, nothing else.
 */
#include "agg-private.h"
#include "dj_date.h"

#include <math.h>
#include <stdlib.h>

enum { B_FULL, B_PARTITION, B_EXPLICIT };

typedef struct {
   char *field; /* owned */
   dj_path_t fpath;
   char **parts; /* owned, nparts */
   dj_path_t *ppaths;
   int nparts;
   int bounds;
   bson_value_t lo, hi; /* B_EXPLICIT: owned copies */
   bson_value_t step;   /* a number */
   char *unit;          /* owned; NULL: numeric */
} densify_t;

static void
densify_free (void *p)
{
   densify_t *d = p;
   for (int i = 0; i < d->nparts; i++) {
      bson_free (d->parts[i]);
      dj_path_cleanup (&d->ppaths[i]);
   }
   dj_path_cleanup (&d->fpath);
   if (d->bounds == B_EXPLICIT) {
      bson_value_destroy (&d->lo);
      bson_value_destroy (&d->hi);
   }
   DJ_FREE (d->parts, d->ppaths, d->field, d->unit, d);
}

bool
dj_agg_time_unit (const char *name, dj_tunit_t *u)
{
   static const struct {
      const char *name;
      int64_t ms;
      int months;
   } units[] = {
      {"millisecond", 1, 0}, {"second", 1000, 0}, {"minute", 60000, 0}, {"hour", 3600000, 0},
      {"day", 86400000, 0},  {"week", 7 * 86400000LL, 0}, {"month", 0, 1}, {"quarter", 0, 3}, {"year", 0, 12},
   };
   for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
      if (!strcmp (units[i].name, name)) {
         u->ms = units[i].ms;
         u->months = units[i].months;
         return true;
      }
   }
   return false;
}

int64_t
dj_agg_date_add (int64_t ms, const dj_tunit_t *u, int64_t n)
{
   return u->ms ? ms + n * u->ms : dj_date_add_months (ms, n * u->months);
}

static bool
valid_unit (const char *u)
{
   dj_tunit_t t;
   return dj_agg_time_unit (u, &t);
}

static bool
parse_range (densify_t *d, const bson_value_t *rv, bson_error_t *error)
{
   bson_iter_t it;
   bool have_step = false, have_bounds = false;
   if (rv->value_type != BSON_TYPE_DOCUMENT) {
      return dj_err (error, DJ_TypeMismatch, "BSON field '$densify.range' is the wrong type '%s', expected type 'object'",
                     dj_type_name (rv->value_type));
   }
   bson_iter_init_from_data (&it, rv->value.v_doc.data, rv->value.v_doc.data_len);
   while (bson_iter_next (&it)) {
      const char *k = bson_iter_key (&it);
      if (!strcmp (k, "step")) {
         if (!BSON_ITER_HOLDS_NUMBER (&it) || !(dj_value_as_double (bson_iter_value (&it)) > 0)) {
            return dj_err (error, 5733401, "the step parameter in a range statement must be a strictly positive numeric value");
         }
         d->step = *bson_iter_value (&it); /* a number: no bytes borrowed */
         have_step = true;
      } else if (!strcmp (k, "unit")) {
         if (!BSON_ITER_HOLDS_UTF8 (&it) || !valid_unit (bson_iter_utf8 (&it, NULL))) {
            return dj_err (error, DJ_FailedToParse, "unknown time unit value: %s",
                           BSON_ITER_HOLDS_UTF8 (&it) ? bson_iter_utf8 (&it, NULL) : dj_type_name (bson_iter_type (&it)));
         }
         bson_free (d->unit);
         d->unit = bson_strdup (bson_iter_utf8 (&it, NULL));
      } else if (!strcmp (k, "bounds")) {
         have_bounds = true;
         if (BSON_ITER_HOLDS_UTF8 (&it) && !strcmp (bson_iter_utf8 (&it, NULL), "full")) {
            d->bounds = B_FULL;
         } else if (BSON_ITER_HOLDS_UTF8 (&it) && !strcmp (bson_iter_utf8 (&it, NULL), "partition")) {
            d->bounds = B_PARTITION;
         } else if (BSON_ITER_HOLDS_ARRAY (&it)) {
            bson_iter_t bi;
            bson_value_t b[2];
            int n = 0;
            bson_iter_recurse (&it, &bi);
            while (bson_iter_next (&bi)) {
               if (n < 2) {
                  b[n] = *bson_iter_value (&bi);
               }
               n++;
            }
            if (n != 2) {
               return dj_err (error, 5733403, "a bounding array in a range statement must have exactly two elements");
            }
            bool dates = b[0].value_type == BSON_TYPE_DATE_TIME && b[1].value_type == BSON_TYPE_DATE_TIME;
            if (!dates && !(dj_value_is_number (&b[0]) && dj_value_is_number (&b[1]))) {
               return dj_err (error, 5733402, "a bounding array must contain either both dates or both numeric types");
            }
            if (dj_value_cmp (&b[0], &b[1]) > 0) {
               return dj_err (error, 5733404, "the lower bound in a range statement must be less than or equal to the upper bound");
            }
            if (d->bounds == B_EXPLICIT) {
               bson_value_destroy (&d->lo);
               bson_value_destroy (&d->hi);
            }
            bson_value_copy (&b[0], &d->lo);
            bson_value_copy (&b[1], &d->hi);
            d->bounds = B_EXPLICIT;
         } else {
            return dj_err (error, 5946802, "the bounds in a range statement must be the string 'full', 'partition', or an ascending array of two numbers or two dates");
         }
      } else {
         return dj_err (error, 40415, "BSON field '$densify.range.%s' is an unknown field.", k);
      }
   }
   if (!have_step || !have_bounds) {
      return dj_err (error, 40414, "BSON field '$densify.range.%s' is missing but a required field", have_step ? "bounds" : "step");
   }
   if (d->bounds == B_EXPLICIT && (d->lo.value_type == BSON_TYPE_DATE_TIME) != (d->unit != NULL)) {
      return dj_err (error, 5733405, "a unit must be given with date bounds, and only with them");
   }
   int64_t whole;
   if (d->unit && !dj_value_as_int64_exact (&d->step, &whole)) {
      return dj_err (error, 5733412, "a step with a unit must be an integer");
   }
   return true;
}

bool
dj_agg_parse_densify (stage_t *s, const bson_value_t *v, bson_error_t *error)
{
   densify_t *d = bson_malloc0 (sizeof *d);
   s->spec = d;
   s->spec_free = densify_free;
   bson_value_t range = {0};
   if (v->value_type != BSON_TYPE_DOCUMENT) {
      return dj_err (error, DJ_TypeMismatch, "the $densify stage specification must be an object, found %s", dj_type_name (v->value_type));
   }
   bson_iter_t it;
   bson_iter_init_from_data (&it, v->value.v_doc.data, v->value.v_doc.data_len);
   while (bson_iter_next (&it)) {
      const char *k = bson_iter_key (&it);
      if (!strcmp (k, "field")) {
         if (!BSON_ITER_HOLDS_UTF8 (&it)) {
            return dj_err (error, DJ_TypeMismatch, "BSON field '$densify.field' is the wrong type, expected type 'string'");
         }
         bson_free (d->field);
         d->field = bson_strdup (bson_iter_utf8 (&it, NULL));
      } else if (!strcmp (k, "partitionByFields")) {
         bson_iter_t pi;
         if (!BSON_ITER_HOLDS_ARRAY (&it)) {
            return dj_err (error, DJ_TypeMismatch, "BSON field '$densify.partitionByFields' is the wrong type, expected type 'array'");
         }
         bson_iter_recurse (&it, &pi);
         while (bson_iter_next (&pi)) {
            if (!BSON_ITER_HOLDS_UTF8 (&pi)) {
               return dj_err (error, DJ_TypeMismatch, "BSON field '$densify.partitionByFields' must hold strings");
            }
            d->parts = bson_realloc (d->parts, sizeof (char *) * (size_t) (d->nparts + 1));
            d->ppaths = bson_realloc (d->ppaths, sizeof (dj_path_t) * (size_t) (d->nparts + 1));
            memset (&d->ppaths[d->nparts], 0, sizeof (dj_path_t));
            d->parts[d->nparts++] = bson_strdup (bson_iter_utf8 (&pi, NULL));
            if (!dj_path_init (&d->ppaths[d->nparts - 1], d->parts[d->nparts - 1], strlen (d->parts[d->nparts - 1]), error)) {
               return false;
            }
         }
      } else if (!strcmp (k, "range")) {
         range = *bson_iter_value (&it);
      } else {
         return dj_err (error, 40415, "BSON field '$densify.%s' is an unknown field.", k);
      }
   }
   if (!d->field || range.value_type == BSON_TYPE_EOD) {
      return dj_err (error, 40414, "BSON field '$densify.%s' is missing but a required field", d->field ? "range" : "field");
   }
   if (d->field[0] == '$') {
      return dj_err (error, 16410, "FieldPath field names may not start with '$'");
   }
   if (!parse_range (d, &range, error)) {
      return false;
   }
   if (d->bounds == B_PARTITION && !d->nparts) {
      return dj_err (error, 5733408, "one may not specify the bounds as 'partition' without specifying a non-empty array of partitionByFields");
   }
   for (int i = 0; i < d->nparts; i++) {
      if (!strcmp (d->parts[i], d->field)) {
         return dj_err (error, 8993000, "BSON field '$densify.partitionByFields' contains the field that is being densified");
      }
   }
   return dj_path_init (&d->fpath, d->field, strlen (d->field), error);
}

/* ---- running ------------------------------------------------------------- */

typedef struct {
   bson_t *doc;      /* the input (owned by the docs list until moved out) */
   size_t idx;
   dj_buf_t pkey;    /* the partition's collated key */
   bson_value_t val; /* the field (borrowed from doc); EOD when missing */
} drow_t;

static int
drow_cmp (const void *a, const void *b)
{
   const drow_t *x = a, *y = b;
   int c = dj_agg_key_cmp (&x->pkey, &y->pkey);
   if (!c) {
      c = dj_value_cmp (&x->val, &y->val); /* missing (EOD) first, as null */
   }
   return c ? c : (x->idx > y->idx) - (x->idx < y->idx);
}

/* The value at path in doc (the first one a visit reports; EOD if none). */
static bson_value_t
value_at (const bson_t *doc, const dj_path_t *path)
{
   bson_value_t dv, out = {.value_type = BSON_TYPE_EOD};
   dj_vlist_t l = {0};
   dj_value_from_doc (doc, false, &dv);
   dj_path_visit (&dv, path, 0, false, dj_vlist_push, &l);
   if (l.n) {
      out = l.v[0];
   }
   bson_free (l.v);
   return out;
}

/* The k-th value of the sequence from lo: lo + k * step, by calendar for
 * months, quarters and years (the day clamped to the month's length, as
 * $dateAdd does), by milliseconds for the other units (UTC). */
static void
nth_value (const densify_t *d, const bson_value_t *lo, int64_t k, bson_value_t *out)
{
   if (!d->unit) {
      /* k an int when it fits: ints stay ints (600 + 200 is 800, not a long), as mongod adds */
      bson_value_t n = {.value_type = BSON_TYPE_INT64}, prod;
      n.value.v_int64 = k;
      if (k <= INT32_MAX) {
         n.value_type = BSON_TYPE_INT32;
         n.value.v_int32 = (int32_t) k;
      }
      /* lo + step * k with aggregation's widening */
      dj_num_arith ('*', &d->step, &n, &prod);
      dj_num_arith ('+', lo, &prod, out);
      return;
   }
   dj_tunit_t u;
   dj_agg_time_unit (d->unit, &u); /* checked when parsed */
   out->value_type = BSON_TYPE_DATE_TIME;
   out->value.v_datetime = dj_agg_date_add (lo->value.v_datetime, &u, (int64_t) dj_value_as_double (&d->step) * k);
}

/* A generated document: the partition fields of `like`, then field = v. */
static bson_t *
generated (const densify_t *d, const bson_t *like, const bson_value_t *v)
{
   bson_t *doc = bson_new ();
   for (int i = 0; i < d->nparts; i++) {
      bson_value_t pv = value_at (like, &d->ppaths[i]);
      if (pv.value_type != BSON_TYPE_EOD) {
         bson_t *nd = dj_agg_with_path (doc, &d->ppaths[i], &pv, NULL, 0);
         bson_destroy (doc);
         doc = nd;
      }
   }
   bson_t *nd = dj_agg_with_path (doc, &d->fpath, v, NULL, 0);
   bson_destroy (doc);
   return nd;
}

static bool
type_fits (const densify_t *d, const bson_value_t *v, bson_error_t *error)
{
   if (d->unit ? v->value_type != BSON_TYPE_DATE_TIME : !dj_value_is_number (v)) {
      return dj_err (error, d->unit ? 6053600 : 5733201,
                     d->unit ? "Encountered non-date value in $densify with a unit: %s"
                             : "Densify field type must be numeric when no unit is given, found %s",
                     dj_type_name (v->value_type));
   }
   return true;
}

bool
dj_agg_run_densify (rctx_t *r, const stage_t *s, dj_docs_t *docs)
{
   const densify_t *d = s->spec;
   size_t n = docs->n;
   drow_t *rows = bson_malloc0 (sizeof (drow_t) * (n ? n : 1));
   bool ok = true;
   bson_value_t gmin = {0}, gmax = {0}; /* borrowed from the documents */
   for (size_t i = 0; i < n; i++) {
      rows[i].doc = docs->v[i];
      rows[i].idx = i;
      dj_buf_init (&rows[i].pkey);
      for (int p = 0; p < d->nparts; p++) {
         bson_value_t pv = value_at (docs->v[i], &d->ppaths[p]);
         static const bson_value_t null_v = {.value_type = BSON_TYPE_NULL};
         dj_key_append_collated (&rows[i].pkey, pv.value_type == BSON_TYPE_EOD ? &null_v : &pv);
      }
      rows[i].val = value_at (docs->v[i], &d->fpath);
      bson_value_t *fv = &rows[i].val;
      if (fv->value_type == BSON_TYPE_NULL || fv->value_type == BSON_TYPE_UNDEFINED) {
         fv->value_type = BSON_TYPE_EOD;
      }
      if (fv->value_type == BSON_TYPE_EOD) {
         continue;
      }
      if (ok && !type_fits (d, fv, r->error)) {
         ok = false;
      }
      if (ok && (gmin.value_type == BSON_TYPE_EOD || dj_value_cmp (fv, &gmin) < 0)) {
         gmin = *fv;
      }
      if (ok && (gmax.value_type == BSON_TYPE_EOD || dj_value_cmp (fv, &gmax) > 0)) {
         gmax = *fv;
      }
   }
   dj_docs_t out = {0};
   if (ok) {
      qsort (rows, n, sizeof (drow_t), drow_cmp);
   }
   /* a limit on what one stage run may generate, as mongod's
    * internalQueryMaxAllowedDensifyDocs (500,000) */
   size_t made = 0;
   for (size_t start = 0; ok && start < n;) {
      size_t end = start + 1;
      while (end < n && !dj_agg_key_cmp (&rows[end].pkey, &rows[start].pkey)) {
         end++;
      }
      /* the partition's range */
      bson_value_t lo = {0}, hi = {0};
      bool hi_inclusive = true;
      if (d->bounds == B_EXPLICIT) {
         lo = d->lo;
         hi = d->hi;
         hi_inclusive = false;
      } else if (d->bounds == B_FULL) {
         lo = gmin;
         hi = gmax;
      } else {
         for (size_t i = start; i < end; i++) {
            if (rows[i].val.value_type != BSON_TYPE_EOD) {
               lo = lo.value_type == BSON_TYPE_EOD ? rows[i].val : lo;
               hi = rows[i].val;
            }
         }
      }
      int64_t k = 0;
      bson_value_t cur = {0};
      const bson_t *like = rows[start].doc; /* the partition's values (moved to out below, still alive) */
      if (lo.value_type != BSON_TYPE_EOD) {
         nth_value (d, &lo, 0, &cur);
      }
#define IN_RANGE(v) (hi_inclusive ? dj_value_cmp ((v), &hi) <= 0 : dj_value_cmp ((v), &hi) < 0)
      for (size_t i = start; ok && i < end; i++) {
         const bson_value_t *v = &rows[i].val;
         if (v->value_type != BSON_TYPE_EOD && cur.value_type != BSON_TYPE_EOD) {
            while (ok && dj_value_cmp (&cur, v) < 0 && IN_RANGE (&cur)) {
               if (++made > 500000) {
                  ok = dj_err (r->error, 5897900, "Generated 500000 documents in $densify, which is over the limit of 500000");
                  break;
               }
               dj_docs_push (&out, generated (d, like, &cur));
               nth_value (d, &lo, ++k, &cur);
            }
            if (ok && dj_value_cmp (&cur, v) == 0) {
               nth_value (d, &lo, ++k, &cur); /* the document holds this one */
            }
         }
         dj_docs_push (&out, rows[i].doc);
         rows[i].doc = NULL; /* moved */
      }
      while (ok && cur.value_type != BSON_TYPE_EOD && d->bounds != B_PARTITION && IN_RANGE (&cur)) {
         if (++made > 500000) {
            ok = dj_err (r->error, 5897900, "Generated 500000 documents in $densify, which is over the limit of 500000");
            break;
         }
         dj_docs_push (&out, generated (d, like, &cur));
         nth_value (d, &lo, ++k, &cur);
      }
#undef IN_RANGE
      start = end;
   }
   /* the documents not moved to out (after a failure) go with the input list */
   for (size_t i = 0; i < n; i++) {
      if (!rows[i].doc) {
         docs->v[rows[i].idx] = NULL;
      }
      dj_buf_cleanup (&rows[i].pkey);
   }
   bson_free (rows);
   for (size_t i = 0; i < n; i++) {
      bson_destroy (docs->v[i]); /* NULL-safe: the moved ones */
   }
   bson_free (docs->v);
   *docs = out;
   if (!ok) {
      dj_docs_clear (docs);
   }
   return ok;
}
