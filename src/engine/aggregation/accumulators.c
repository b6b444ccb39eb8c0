/*
 * accumulators.c -- the accumulators of $group, $bucket and
 * $setWindowFields: one row each in accs[] (name, step, result) over one
 * running state (dj_accst_t).
 *
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/group/#accumulator-operator
 *
 * A new accumulator is one row and its step/result functions. (The same
 * names used as expressions, {$sum: [..]}, are the expression layer's.)
 */
#include "agg-private.h"

#include <math.h>

static bool
nullish (const bson_value_t *v)
{
   return v->value_type == BSON_TYPE_EOD || v->value_type == BSON_TYPE_NULL || v->value_type == BSON_TYPE_UNDEFINED;
}

/* ---- steps ---- */

/* $sum, $avg: numbers only, others skipped */
static bool
step_sum (dj_accst_t *a, const bson_value_t *v, bson_error_t *error)
{
   if (!a->have) {
      a->sum.value_type = BSON_TYPE_INT32;
      a->sum.value.v_int32 = 0;
      a->have = true;
      a->val.value_type = BSON_TYPE_EOD;
   }
   if (dj_value_is_number (v)) {
      dj_num_arith ('+', &a->sum, v, &a->sum);
      a->count++;
   }
   (void) error;
   return true;
}

static bool
step_count (dj_accst_t *a, const bson_value_t *v, bson_error_t *error)
{
   a->count++;
   (void) v, (void) error;
   return true;
}

/* keeps v when there is no value yet or `sign` * (v <=> value) > 0; nulls skipped */
static bool
keep_extreme (dj_accst_t *a, const bson_value_t *v, int sign)
{
   if (nullish (v)) {
      return true;
   }
   if (!a->have || (sign < 0 ? dj_value_cmp (v, &a->val) < 0 : dj_value_cmp (v, &a->val) > 0)) {
      if (a->have) {
         bson_value_destroy (&a->val);
      }
      bson_value_copy (v, &a->val);
      a->have = true;
   }
   return true;
}

static bool
step_min (dj_accst_t *a, const bson_value_t *v, bson_error_t *error)
{
   (void) error;
   return keep_extreme (a, v, -1);
}

static bool
step_max (dj_accst_t *a, const bson_value_t *v, bson_error_t *error)
{
   (void) error;
   return keep_extreme (a, v, 1);
}

/* the value as kept by $first/$last: missing is null */
static void
keep_value (dj_accst_t *a, const bson_value_t *v)
{
   if (v->value_type == BSON_TYPE_EOD) {
      a->val.value_type = BSON_TYPE_NULL;
   } else {
      bson_value_copy (v, &a->val);
   }
   a->have = true;
}

static bool
step_first (dj_accst_t *a, const bson_value_t *v, bson_error_t *error)
{
   if (!a->have) {
      keep_value (a, v);
   }
   (void) error;
   return true;
}

static bool
step_last (dj_accst_t *a, const bson_value_t *v, bson_error_t *error)
{
   if (a->have) {
      bson_value_destroy (&a->val);
   }
   keep_value (a, v);
   (void) error;
   return true;
}

/* appends v to the array (missing: nothing); `unique`: unless already there */
static bool
append_value (dj_accst_t *a, const bson_value_t *v, bool unique)
{
   if (!a->arr) {
      a->arr = bson_new ();
   }
   if (v->value_type == BSON_TYPE_EOD) {
      return true;
   }
   if (unique) {
      bson_iter_t it;
      bson_iter_init (&it, a->arr);
      while (bson_iter_next (&it)) {
         if (dj_value_cmp (bson_iter_value (&it), v) == 0) {
            return true;
         }
      }
   }
   char buf[16];
   bson_append_value (a->arr, dj_array_key (a->narr++, buf), -1, v);
   return true;
}

static bool
step_push (dj_accst_t *a, const bson_value_t *v, bson_error_t *error)
{
   (void) error;
   return append_value (a, v, false);
}

static bool
step_add_to_set (dj_accst_t *a, const bson_value_t *v, bson_error_t *error)
{
   (void) error;
   return append_value (a, v, true);
}

/* $stdDevPop, $stdDevSamp: Welford's running variance over the numbers */
static bool
step_stddev (dj_accst_t *a, const bson_value_t *v, bson_error_t *error)
{
   if (dj_value_is_number (v)) {
      double x = dj_value_as_double (v);
      a->count++;
      double d = x - a->mean;
      a->mean += d / (double) a->count;
      a->m2 += d * (x - a->mean);
   }
   (void) error;
   return true;
}

static bool
step_merge (dj_accst_t *a, const bson_value_t *v, bson_error_t *error)
{
   if (nullish (v)) {
      return true;
   }
   if (v->value_type != BSON_TYPE_DOCUMENT) {
      return dj_err (error, 40400, "$mergeObjects requires object inputs, but input is of type %s", dj_type_name (v->value_type));
   }
   if (!a->merged) {
      a->merged = dj_node_new_container (BSON_TYPE_DOCUMENT, NULL);
   }
   bson_iter_t it;
   bson_iter_init_from_data (&it, v->value.v_doc.data, v->value.v_doc.data_len);
   while (bson_iter_next (&it)) {
      dj_node_set_child (a->merged, bson_iter_key (&it), dj_node_from_value (bson_iter_value (&it), bson_iter_key (&it)));
   }
   return true;
}

/* ---- results ---- */

static void
result_sum (const dj_accst_t *a, const char *field, bson_t *out)
{
   if (a->have) {
      BSON_APPEND_VALUE (out, field, &a->sum);
   } else {
      BSON_APPEND_INT32 (out, field, 0);
   }
}

static void
result_avg (const dj_accst_t *a, const char *field, bson_t *out)
{
   if (!a->have || !a->count) {
      BSON_APPEND_NULL (out, field);
   } else if (a->sum.value_type == BSON_TYPE_DECIMAL128) {
      bson_value_t c = {.value_type = BSON_TYPE_INT64}, r;
      c.value.v_int64 = a->count;
      dj_decimal_arith ('/', &a->sum, &c, &r);
      BSON_APPEND_VALUE (out, field, &r);
   } else {
      BSON_APPEND_DOUBLE (out, field, dj_value_as_double (&a->sum) / (double) a->count);
   }
}

static void
result_count (const dj_accst_t *a, const char *field, bson_t *out)
{
   BSON_APPEND_INT32 (out, field, (int32_t) a->count);
}

/* $min, $max, $first, $last: the value kept, null if none */
static void
result_value (const dj_accst_t *a, const char *field, bson_t *out)
{
   if (a->have) {
      BSON_APPEND_VALUE (out, field, &a->val);
   } else {
      BSON_APPEND_NULL (out, field);
   }
}

static void
result_array (const dj_accst_t *a, const char *field, bson_t *out)
{
   if (a->arr) {
      BSON_APPEND_ARRAY (out, field, a->arr);
   } else {
      bson_t empty = BSON_INITIALIZER;
      BSON_APPEND_ARRAY (out, field, &empty);
   }
}

static void
result_stddev (const dj_accst_t *a, int64_t min_count, int64_t less, const char *field, bson_t *out)
{
   if (a->count < min_count) {
      BSON_APPEND_NULL (out, field);
   } else {
      BSON_APPEND_DOUBLE (out, field, sqrt (a->m2 / (double) (a->count - less)));
   }
}

static void
result_stddev_pop (const dj_accst_t *a, const char *field, bson_t *out)
{
   result_stddev (a, 1, 0, field, out);
}

static void
result_stddev_samp (const dj_accst_t *a, const char *field, bson_t *out)
{
   result_stddev (a, 2, 1, field, out);
}

static void
result_merge (const dj_accst_t *a, const char *field, bson_t *out)
{
   bson_t d = BSON_INITIALIZER;
   if (a->merged) {
      dj_node_to_bson (a->merged, &d);
   }
   BSON_APPEND_DOCUMENT (out, field, &d);
   bson_destroy (&d);
}

/* ---- the table (pages: .../reference/operator/aggregation/<name without $>/) ---- */

static const struct dj_accop accs[] = {
   {"$sum", step_sum, result_sum},
   {"$avg", step_sum, result_avg},
   {"$min", step_min, result_value},
   {"$max", step_max, result_value},
   {"$first", step_first, result_value},
   {"$last", step_last, result_value},
   {"$push", step_push, result_array, .collects = true},
   {"$addToSet", step_add_to_set, result_array, .collects = true},
   {"$count", step_count, result_count, .no_args = true},
   {"$stdDevPop", step_stddev, result_stddev_pop},
   {"$stdDevSamp", step_stddev, result_stddev_samp},
   {"$mergeObjects", step_merge, result_merge},
};

const dj_accop_t *
dj_acc_op (const char *name)
{
   for (size_t i = 0; i < sizeof accs / sizeof accs[0]; i++) {
      if (!strcmp (accs[i].name, name)) {
         return &accs[i];
      }
   }
   return dj_acc_n_op (name);
}

bool
dj_acc_collects (const dj_accop_t *op)
{
   return op->collects;
}

bool
dj_acc_parse (dj_acc_t *a, const char *field, const bson_value_t *spec, const dj_vscope_t *scope, bson_error_t *error)
{
   bson_iter_t it;
   memset (a, 0, sizeof *a);
   a->field = bson_strdup (field);
   if (spec->value_type != BSON_TYPE_DOCUMENT) {
      return dj_err (error, 40234, "The field '%s' must be an accumulator object", field);
   }
   bson_iter_init_from_data (&it, spec->value.v_doc.data, spec->value.v_doc.data_len);
   if (!bson_iter_next (&it)) {
      return dj_err (error, 40234, "The field '%s' must be an accumulator object", field);
   }
   const char *op = bson_iter_key (&it);
   const bson_value_t *arg = bson_iter_value (&it);
   if (bson_iter_next (&it)) {
      return dj_err (error, 40238, "The field '%s' must specify one accumulator", field);
   }
   a->op = dj_acc_op (op);
   if (!a->op) {
      return dj_err (error, 15952, "Unknown group operator '%s'", op);
   }
   if (a->op->parse) {
      return a->op->parse (a, op, arg, scope, error);
   }
   if (a->op->no_args) {
      if (arg->value_type != BSON_TYPE_DOCUMENT || arg->value.v_doc.data_len != 5) {
         return dj_err (error, 40237, "$count takes no arguments, i.e. $count:{}");
      }
      return true;
   }
   if (arg->value_type == BSON_TYPE_ARRAY) {
      return dj_err (error, 40237, "The %s accumulator is a unary operator", op);
   }
   a->expr = dj_expr_parse (arg, scope, error);
   return a->expr != NULL;
}

bool
dj_acc_step (dj_accst_t *a, const bson_value_t *v, bson_error_t *error)
{
   return a->op->step (a, v, error);
}

void
dj_acc_result (const dj_accst_t *a, const char *field, bson_t *out)
{
   a->op->result (a, field, out);
}

void
dj_accst_cleanup (dj_accst_t *a)
{
   if (a->have && a->val.value_type != BSON_TYPE_EOD) {
      bson_value_destroy (&a->val);
   }
   bson_destroy (a->arr);
   dj_node_free (a->merged);
   for (size_t i = 0; i < a->nitems; i++) {
      bson_value_destroy (&a->items[i]);
      if (a->roots) {
         bson_destroy (a->roots[i]);
      }
   }
   DJ_FREE (a->items, a->roots, a->nums);
}

void
dj_accst_init (dj_accst_t *st, const dj_acc_t *a)
{
   memset (st, 0, sizeof *st);
   st->op = a->op;
   st->param = a->param;
}

void
dj_acc_cleanup (dj_acc_t *a)
{
   bson_free (a->field);
   dj_expr_destroy (a->expr);
   dj_accparam_free (a->param);
   memset (a, 0, sizeof *a);
}
