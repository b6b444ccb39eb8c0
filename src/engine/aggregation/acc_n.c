/*
 * acc_n.c -- the accumulators that keep n values ($firstN, $lastN, $maxN,
 * $minN, $top, $bottom, $topN, $bottomN) and the ones that keep every
 * number ($median, $percentile), in $group, $bucket and $setWindowFields.
 *
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/firstN/
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/maxN/
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/topN/
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/bottomN/
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/median/
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/percentile/
 *
 * Each parses its object argument into one expression evaluated per
 * document -- [input, n] for $firstN..$minN, [output, $$ROOT, n] for the
 * $top family (the document is what sortBy orders) -- and what is fixed
 * (sortBy, p, method) into the dj_acc_t's param. n is an expression: it is
 * read from the first document of each group (the manual allows it to
 * depend on the group's _id, which every document of the group shares).
 */
#include "agg-private.h"

#include <math.h>
#include <stdlib.h>

enum { N_FIRST, N_LAST, N_MAX, N_MIN, N_TOP, N_BOTTOM };

void
dj_accparam_free (dj_accparam_t *p)
{
   if (p) {
      dj_sort_destroy (p->sort);
      bson_free (p->p);
      bson_free (p);
   }
}

/* ---- parsing ------------------------------------------------------------ */

/* The family member of an op name ("$firstN" -> N_FIRST), *single: $top/$bottom. */
static int
n_kind (const char *op, bool *single)
{
   static const char *const names[] = {"$firstN", "$lastN", "$maxN", "$minN", "$topN", "$bottomN"};
   *single = !strcmp (op, "$top") || !strcmp (op, "$bottom");
   if (*single) {
      return op[1] == 't' ? N_TOP : N_BOTTOM;
   }
   for (int i = 0; i < 6; i++) {
      if (!strcmp (op, names[i])) {
         return i;
      }
   }
   return -1;
}

/* {input|output, n, sortBy} of the n-accumulators; a->expr becomes
 * [input, n] or [output, "$$ROOT", n] ($top/$bottom: n is 1). */
static bool
parse_n (dj_acc_t *a, const char *op, const bson_value_t *arg, const dj_vscope_t *scope, bson_error_t *error)
{
   bool single;
   int kind = n_kind (op, &single);
   bool top = kind == N_TOP || kind == N_BOTTOM;
   const char *in_name = top ? "output" : "input";
   bson_value_t in = {0}, n = {0}, sort = {0};
   bool have_in = false, have_n = false, have_sort = false;
   if (arg->value_type != BSON_TYPE_DOCUMENT) {
      return dj_err (error, 5787801, "specification must be an object; found %s: %s", op, dj_type_name (arg->value_type));
   }
   bson_iter_t it;
   bson_iter_init_from_data (&it, arg->value.v_doc.data, arg->value.v_doc.data_len);
   while (bson_iter_next (&it)) {
      const char *k = bson_iter_key (&it);
      if (!strcmp (k, in_name)) {
         in = *bson_iter_value (&it);
         have_in = true;
      } else if (!strcmp (k, "n") && !single) {
         n = *bson_iter_value (&it);
         have_n = true;
      } else if (!strcmp (k, "sortBy") && top) {
         sort = *bson_iter_value (&it);
         have_sort = true;
      } else {
         return dj_err (error, 5787901, "Unknown argument for 'n' operator: %s", k);
      }
   }
   if (!single && !have_n) {
      return dj_err (error, 5787906, "Missing value for 'n'");
   }
   if (!have_in) {
      return dj_err (error, 5787907, "Missing value for '%s'", in_name);
   }
   if (top) {
      if (!have_sort) {
         return dj_err (error, 5788005, "Missing value for 'sortBy'");
      }
      if (sort.value_type != BSON_TYPE_DOCUMENT) {
         return dj_err (error, 5788004, "expected an object for 'sortBy', found %s", dj_type_name (sort.value_type));
      }
      bson_t sd;
      bson_init_static (&sd, sort.value.v_doc.data, sort.value.v_doc.data_len);
      a->param = bson_malloc0 (sizeof *a->param);
      a->param->sort = dj_sort_new (&sd, error);
      if (!a->param->sort) {
         return false;
      }
   }
   bson_t arr = BSON_INITIALIZER;
   BSON_APPEND_VALUE (&arr, "0", &in);
   if (top) {
      BSON_APPEND_UTF8 (&arr, "1", "$$ROOT");
   }
   if (single) {
      BSON_APPEND_INT32 (&arr, "2", 1);
   } else {
      BSON_APPEND_VALUE (&arr, top ? "2" : "1", &n);
   }
   bson_value_t av;
   dj_value_from_doc (&arr, true, &av);
   a->expr = dj_expr_parse (&av, scope, error);
   bson_destroy (&arr);
   return a->expr != NULL;
}

/* {input, p, method} of $percentile, {input, method} of $median: a->expr is input. */
static bool
parse_percentile (dj_acc_t *a, const char *op, const bson_value_t *arg, const dj_vscope_t *scope, bson_error_t *error)
{
   bool median = !strcmp (op, "$median");
   bson_value_t in = {0}, p = {0}, method = {0};
   if (arg->value_type != BSON_TYPE_DOCUMENT) {
      return dj_err (error, DJ_TypeMismatch, "%s expects an object, found %s", op, dj_type_name (arg->value_type));
   }
   bson_iter_t it;
   bson_iter_init_from_data (&it, arg->value.v_doc.data, arg->value.v_doc.data_len);
   while (bson_iter_next (&it)) {
      const char *k = bson_iter_key (&it);
      bson_value_t *slot = !strcmp (k, "input") ? &in : !strcmp (k, "method") ? &method : (!median && !strcmp (k, "p")) ? &p : NULL;
      if (!slot) {
         return dj_err (error, 40415, "BSON field '%s.%s' is an unknown field.", op, k);
      }
      *slot = *bson_iter_value (&it);
   }
   const char *missing = in.value_type == BSON_TYPE_EOD ? "input" : (!median && p.value_type == BSON_TYPE_EOD) ? "p"
                         : method.value_type == BSON_TYPE_EOD ? "method" : NULL;
   if (missing) {
      return dj_err (error, 40414, "BSON field '%s.%s' is missing but a required field", op, missing);
   }
   /* 'approximate' (7.0) and, since 8.0, 'discrete' and 'continuous' */
   if (method.value_type != BSON_TYPE_UTF8 ||
       (strcmp (method.value.v_utf8.str, "approximate") && strcmp (method.value.v_utf8.str, "discrete") &&
        strcmp (method.value.v_utf8.str, "continuous"))) {
      return dj_err (error, DJ_BadValue, "Enumeration value '%s' for field '%s.method' is not a valid value.",
                     method.value_type == BSON_TYPE_UTF8 ? method.value.v_utf8.str : dj_type_name (method.value_type), op);
   }
   a->param = bson_malloc0 (sizeof *a->param);
   a->param->continuous = !strcmp (method.value.v_utf8.str, "continuous");
   if (median) {
      a->param->p = bson_malloc (sizeof (double));
      a->param->p[0] = 0.5;
      a->param->np = 1;
   } else {
      /* p: an array of constant expressions, numbers in [0, 1] */
      bool ok = p.value_type == BSON_TYPE_ARRAY && p.value.v_doc.data_len > 5;
      bson_iter_t pi;
      if (ok) {
         bson_iter_init_from_data (&pi, p.value.v_doc.data, p.value.v_doc.data_len);
      }
      while (ok && bson_iter_next (&pi)) {
         bson_error_t ignored;
         bson_value_t x;
         dj_expr_t *pe = dj_expr_parse (bson_iter_value (&pi), scope, &ignored);
         double d = pe && dj_expr_is_const (pe, &x) && dj_value_is_number (&x) ? dj_value_as_double (&x) : -1;
         dj_expr_destroy (pe);
         ok = d >= 0 && d <= 1;
         a->param->p = bson_realloc (a->param->p, sizeof (double) * (size_t) (a->param->np + 1));
         a->param->p[a->param->np++] = d;
      }
      if (!ok) {
         return dj_err (error, 7750301, "The $percentile 'p' field must be an array of numbers from [0.0, 1.0]");
      }
   }
   a->expr = dj_expr_parse (&in, scope, error);
   return a->expr != NULL;
}

/* ---- steps ---------------------------------------------------------------- */

/* The i-th element of the evaluated array v (EOD past its end). */
static bson_value_t
elem (const bson_value_t *v, uint32_t i)
{
   bson_value_t out = {.value_type = BSON_TYPE_EOD};
   char kb[16];
   if (v->value_type == BSON_TYPE_ARRAY) {
      dj_value_get_field (v, dj_array_key (i, kb), &out);
   }
   return out;
}

/* a->n from the evaluated n, on the group's first document. */
static bool
take_n (dj_accst_t *a, const bson_value_t *nv, bson_error_t *error)
{
   if (a->n) {
      return true;
   }
   int64_t n;
   if (!dj_value_is_number (nv) || !dj_value_as_int64_exact (nv, &n)) {
      return dj_err (error, 5787902, "Value for 'n' must be of integral type, but found %s", dj_type_name (nv->value_type));
   }
   if (n <= 0) {
      return dj_err (error, 5787908, "'n' must be greater than 0, found %" PRId64, n);
   }
   a->n = n;
   return true;
}

/* Inserts x (copied) and, for the $top family, root (copied) at position i. */
static void
insert_at (dj_accst_t *a, size_t i, const bson_value_t *x, const bson_t *root)
{
   if (a->nitems == a->icap) {
      a->icap = a->icap ? a->icap * 2 : 8;
      a->items = bson_realloc (a->items, sizeof (bson_value_t) * a->icap);
      if (root) {
         a->roots = bson_realloc (a->roots, sizeof (bson_t *) * a->icap);
      }
   }
   memmove (a->items + i + 1, a->items + i, sizeof (bson_value_t) * (a->nitems - i));
   bson_value_copy (x, &a->items[i]);
   if (root) {
      memmove (a->roots + i + 1, a->roots + i, sizeof (bson_t *) * (a->nitems - i));
      a->roots[i] = bson_copy (root);
   }
   a->nitems++;
}

/* Drops item i. */
static void
drop_at (dj_accst_t *a, size_t i)
{
   bson_value_destroy (&a->items[i]);
   memmove (a->items + i, a->items + i + 1, sizeof (bson_value_t) * (a->nitems - i - 1));
   if (a->roots) {
      bson_destroy (a->roots[i]);
      memmove (a->roots + i, a->roots + i + 1, sizeof (bson_t *) * (a->nitems - i - 1));
   }
   a->nitems--;
}

static int
kind_of (const dj_accst_t *a)
{
   bool single;
   return n_kind (a->op->name, &single);
}

static bool
step_n (dj_accst_t *a, const bson_value_t *v, bson_error_t *error)
{
   int kind = kind_of (a);
   bool top = kind == N_TOP || kind == N_BOTTOM;
   bson_value_t x = elem (v, 0), nv = elem (v, top ? 2 : 1);
   if (!take_n (a, &nv, error)) {
      return false;
   }
   static const bson_value_t null_v = {.value_type = BSON_TYPE_NULL};
   if (x.value_type == BSON_TYPE_EOD) {
      x = null_v; /* a missing input is null (the array expression made it one already) */
   }
   switch (kind) {
   case N_FIRST:
      if ((int64_t) a->nitems < a->n) {
         insert_at (a, a->nitems, &x, NULL);
      }
      return true;
   case N_LAST:
      insert_at (a, a->nitems, &x, NULL);
      if ((int64_t) a->nitems > a->n) {
         drop_at (a, 0);
      }
      return true;
   case N_MAX:
   case N_MIN: {
      /* nulls and missing values are not counted */
      if (x.value_type == BSON_TYPE_NULL || x.value_type == BSON_TYPE_UNDEFINED) {
         return true;
      }
      int sign = kind == N_MAX ? -1 : 1;
      size_t i = 0;
      while (i < a->nitems && sign * dj_value_cmp (&a->items[i], &x) <= 0) {
         i++;
      }
      insert_at (a, i, &x, NULL);
      if ((int64_t) a->nitems > a->n) {
         drop_at (a, a->nitems - 1);
      }
      return true;
   }
   default: {
      bson_value_t rv = elem (v, 1);
      bson_t root;
      if (rv.value_type != BSON_TYPE_DOCUMENT) {
         return dj_err (error, DJ_InternalError, "%s: no document to sort", a->op->name);
      }
      bson_init_static (&root, rv.value.v_doc.data, rv.value.v_doc.data_len);
      /* after the ones that sort equal: ties keep the input order */
      size_t i = 0;
      while (i < a->nitems && dj_sort_cmp (a->param->sort, a->roots[i], &root) <= 0) {
         i++;
      }
      insert_at (a, i, &x, &root);
      if ((int64_t) a->nitems > a->n) {
         drop_at (a, kind == N_TOP ? a->nitems - 1 : 0);
      }
      return true;
   }
   }
}

static bool
step_numbers (dj_accst_t *a, const bson_value_t *v, bson_error_t *error)
{
   (void) error;
   if (!dj_value_is_number (v)) {
      return true; /* not numeric: ignored */
   }
   DJ_GROW (a->nums, a->nnums, a->ncap, 16);
   a->nums[a->nnums++] = dj_value_as_double (v);
   return true;
}

/* ---- results -------------------------------------------------------------- */

static void
result_n (const dj_accst_t *a, const char *field, bson_t *out)
{
   bson_t arr;
   BSON_APPEND_ARRAY_BEGIN (out, field, &arr);
   for (size_t i = 0; i < a->nitems; i++) {
      char kb[16];
      bson_append_value (&arr, dj_array_key ((uint32_t) i, kb), -1, &a->items[i]);
   }
   bson_append_array_end (out, &arr);
}

static void
result_single (const dj_accst_t *a, const char *field, bson_t *out)
{
   if (a->nitems) {
      BSON_APPEND_VALUE (out, field, &a->items[0]);
   } else {
      BSON_APPEND_NULL (out, field);
   }
}

static int
cmp_double (const void *x, const void *y)
{
   double a = *(const double *) x, b = *(const double *) y;
   return (a > b) - (a < b);
}

static void
result_percentile (const dj_accst_t *a, const char *field, bson_t *out, bool median)
{
   if (!a->nnums) {
      BSON_APPEND_NULL (out, field);
      return;
   }
   double *v = bson_malloc (sizeof (double) * a->nnums); /* sorted copy (owned here) */
   memcpy (v, a->nums, sizeof (double) * a->nnums);
   qsort (v, a->nnums, sizeof (double), cmp_double);
   if (median) {
      BSON_APPEND_DOUBLE (out, field, dj_percentile (v, a->nnums, 0.5, a->param->continuous));
   } else {
      bson_t arr;
      BSON_APPEND_ARRAY_BEGIN (out, field, &arr);
      for (int i = 0; i < a->param->np; i++) {
         char kb[16];
         BSON_APPEND_DOUBLE (&arr, dj_array_key ((uint32_t) i, kb), dj_percentile (v, a->nnums, a->param->p[i], a->param->continuous));
      }
      bson_append_array_end (out, &arr);
   }
   bson_free (v);
}

static void
result_median (const dj_accst_t *a, const char *field, bson_t *out)
{
   result_percentile (a, field, out, true);
}

static void
result_percentiles (const dj_accst_t *a, const char *field, bson_t *out)
{
   result_percentile (a, field, out, false);
}

static const struct dj_accop n_accs[] = {
   {"$firstN", step_n, result_n, .parse = parse_n},
   {"$lastN", step_n, result_n, .parse = parse_n},
   {"$maxN", step_n, result_n, .parse = parse_n},
   {"$minN", step_n, result_n, .parse = parse_n},
   {"$topN", step_n, result_n, .parse = parse_n},
   {"$bottomN", step_n, result_n, .parse = parse_n},
   {"$top", step_n, result_single, .parse = parse_n},
   {"$bottom", step_n, result_single, .parse = parse_n},
   {"$median", step_numbers, result_median, .collects = true, .parse = parse_percentile},
   {"$percentile", step_numbers, result_percentiles, .collects = true, .parse = parse_percentile},
};

const dj_accop_t *
dj_acc_n_op (const char *name)
{
   for (size_t i = 0; i < sizeof n_accs / sizeof n_accs[0]; i++) {
      if (!strcmp (n_accs[i].name, name)) {
         return &n_accs[i];
      }
   }
   return NULL;
}
