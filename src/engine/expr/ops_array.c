/*
 * ops_array.c -- arrays, sets and objects: $arrayElemAt/$first/$last,
 * $size, $slice, $filter/$map/$reduce, $range, $reverseArray, $in,
 * $indexOfArray, $concatArrays, $sortArray, $zip, $arrayToObject,
 * $objectToArray, the set operators, $anyElementTrue/$allElementsTrue,
 * $mergeObjects, $getField/$setField/$unsetField.
 *
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/#array-expression-operators
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/#set-expression-operators
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/#object-expression-operators
 *
 * Their rows (name, arity, argument rule) are in expr.c's ops[].
 */
#include "expr-private.h"

#include <inttypes.h>

/* $arrayElemAt (aux AR_ELEMAT): array, index; $first, $last (AR_FIRST, AR_LAST): array */
bool
op_elem_at (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   int64_t idx = e->op->aux == AR_LAST ? -1 : 0;
   vlist_t l;
   if (e->op->aux == AR_ELEMAT) {
      bson_value_t *b = &v[1];
      if (!isnum (b)) {
         return x_fail (ev, 28690, "$arrayElemAt's second argument must be a numeric value, but is %s", tname (b));
      }
      if (!dj_value_as_int64_exact (b, &idx)) {
         return x_fail (ev, 28691, "$arrayElemAt's second argument must be representable as a 32-bit integer: %g",
                        dj_value_as_double (b));
      }
   }
   l = x_list (ev, &v[0]);
   if (idx < 0) {
      idx += l.n;
   }
   *out = idx >= 0 && idx < (int64_t) l.n ? l.v[idx] : MISSING;
   return true;
}

bool
op_size (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   (void) e;
   vlist_t l = x_list (ev, v);
   set_int (out, l.n);
   return true;
}

/* array, n or array, position, n */
bool
op_slice (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   int64_t x, y = 0;
   vlist_t l;
   if (!dj_value_as_int64_exact (&v[1], &x) || (e->nargs == 3 && !dj_value_as_int64_exact (&v[2], &y))) {
      return x_fail (ev, 28725, "Second argument to $slice must be a numeric value");
   }
   l = x_list (ev, &v[0]);
   int64_t from, count;
   if (e->nargs == 2) {
      from = x >= 0 ? 0 : (int64_t) l.n + x;
      count = x >= 0 ? x : x == INT64_MIN ? INT64_MAX : -x;
   } else {
      if (y <= 0) {
         return x_fail (ev, 28729, "Third argument to $slice must be positive: %" PRId64, y);
      }
      from = x >= 0 ? x : (int64_t) l.n + x;
      count = y;
   }
   if (from < 0) {
      from = 0;
   }
   if (from > (int64_t) l.n) {
      from = l.n;
   }
   /* count may be near 2^63: compare without adding */
   if (count > (int64_t) l.n - from) {
      count = (int64_t) l.n - from;
   }
   x_list_value (ev, l.v + from, (uint32_t) count, out);
   return true;
}

/* $filter (aux AR_FILTER): input (evaluated), cond, as, limit; $map (AR_MAP): input (evaluated), in, as.
 * The inner expression sees the element as $$<as> ($$this by default). */
bool
op_filter_map (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   bool filter = e->op->aux == AR_FILTER;
   int64_t limit = -1;
   bson_value_t a = v[0], b;
   vlist_t l;
   if (filter && e->args[3]) {
      if (!x_arg (e, 3, ev, &b)) {
         return false;
      }
      if (!nullish (&b) && (!dj_value_as_int64_exact (&b, &limit) || limit < 1)) {
         return x_fail (ev, 327391, "$filter: limit must be greater than 0");
      }
   }
   if (nullish (&a)) {
      set_null (out);
      return true;
   }
   if (a.value_type != BSON_TYPE_ARRAY) {
      return x_fail (ev, filter ? 28651 : 16883, "input to %s must be an array not %s", e->op->name, tname (&a));
   }
   l = x_list (ev, &a);
   bson_value_t *res = dj_arena_alloc (ev->arena, sizeof (bson_value_t) * (l.n ? l.n : 1));
   uint32_t k = 0;
   for (uint32_t i = 0; i < l.n && (limit < 0 || k < limit); i++) {
      if (!x_push_var (ev, e->as, &l.v[i])) {
         return false;
      }
      bool ok = x_eval (e->args[1], ev, &b);
      ev->nvars--;
      if (!ok) {
         return false;
      }
      if (filter) {
         if (dj_value_truthy (&b)) {
            res[k++] = l.v[i];
         }
      } else {
         if (b.value_type == BSON_TYPE_EOD) {
            set_null (&b);
         }
         res[k++] = b;
      }
   }
   x_list_value (ev, res, k, out);
   return true;
}

/* input, initialValue (evaluated), in (which sees $$value and $$this) */
bool
op_reduce (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   bson_value_t acc = v[1];
   vlist_t l = x_list (ev, &v[0]);
   for (uint32_t i = 0; i < l.n; i++) {
      if (!x_push_var (ev, "value", &acc) || !x_push_var (ev, "this", &l.v[i])) {
         return false;
      }
      bool ok = x_eval (e->args[2], ev, &acc);
      ev->nvars -= 2;
      if (!ok) {
         return false;
      }
   }
   *out = acc;
   return true;
}

/* start, end, step: each an integral number an int32 holds; the array's
 * size is bounded as MongoDB bounds it (internalQueryMaxRangeBytes, 64 MiB,
 * at 16 bytes a value plus the vector's 24), checked before it is built.
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/range/ */
#define RANGE_MAX_BYTES 67108864
static bool
range_arg (dj_eval_t *ev, const bson_value_t *v, const char *what, uint32_t type_code, int64_t *out)
{
   if (!isnum (v)) {
      return x_fail (ev, type_code, "$range requires a numeric %s value, found value of type: %s", what, tname (v));
   }
   if (!dj_value_as_int64_exact (v, out) || *out < INT32_MIN || *out > INT32_MAX) {
      char s[BSON_DECIMAL128_STRING];
      if (v->value_type == BSON_TYPE_DECIMAL128) {
         bson_decimal128_to_string (&v->value.v_decimal128, s);
      } else if (v->value_type == BSON_TYPE_DOUBLE) {
         snprintf (s, sizeof s, "%.15g", v->value.v_double);
      } else {
         snprintf (s, sizeof s, "%" PRId64, *out);
      }
      return x_fail (ev, type_code + 1, "$range requires a%s %s value that can be represented as a 32-bit integer, found value: %s",
                     what[0] == 'e' ? "n" : "", what, s);
   }
   return true;
}

bool
op_range (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   (void) e;
   int64_t from, to, step = 1;
   if (!range_arg (ev, &v[0], "starting", 34443, &from) || !range_arg (ev, &v[1], "ending", 34445, &to)) {
      return false;
   }
   if (v[2].value_type != BSON_TYPE_EOD && !range_arg (ev, &v[2], "step", 34447, &step)) {
      return false;
   }
   if (step == 0) {
      return x_fail (ev, 34449, "$range requires a non-zero step value");
   }
   int64_t steps = (to - from) / step, length = steps >= 0 ? 1 + steps : 0;
   int64_t need = 24 + length * 16;
   if (need >= RANGE_MAX_BYTES) {
      return x_fail (ev, DJ_ExceededMemoryLimit,
                     "$range would use too much memory (%" PRId64 " bytes) and cannot spill to disk. Memory limit: %d bytes", need,
                     RANGE_MAX_BYTES);
   }
   bson_t arr = BSON_INITIALIZER;
   uint32_t k = 0;
   char buf[16];
   for (int64_t x = from; step > 0 ? x < to : x > to; x += step) {
      bson_append_int32 (&arr, dj_array_key (k++, buf), -1, (int32_t) x);
   }
   return x_doc_value (ev, &arr, true, out);
}

bool
op_reverse (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   (void) e;
   vlist_t l = x_list (ev, v);
   for (uint32_t i = 0; i < l.n / 2; i++) {
      bson_value_t t = l.v[i];
      l.v[i] = l.v[l.n - 1 - i];
      l.v[l.n - 1 - i] = t;
   }
   x_list_value (ev, l.v, l.n, out);
   return true;
}

/* the first index of x in l from `from` (and before `to` unless negative); -1 */
static int64_t
list_find (const vlist_t *l, const bson_value_t *x, int64_t from, int64_t to)
{
   for (int64_t i = from; i < (int64_t) l->n && (to < 0 || i < to); i++) {
      if (dj_expr_cmp (&l->v[i], x) == 0) {
         return i;
      }
   }
   return -1;
}

/* value, array */
bool
op_in (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   (void) e;
   vlist_t l;
   if (v[1].value_type != BSON_TYPE_ARRAY) {
      return x_fail (ev, 40081, "$in requires an array as a second argument, found: %s", tname (&v[1]));
   }
   l = x_list (ev, &v[1]);
   set_bool (out, list_find (&l, &v[0], 0, -1) >= 0);
   return true;
}

/* array, value, start, end */
bool
op_indexof_array (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   (void) e;
   int64_t from = 0, to = -1;
   vlist_t l;
   if (v[2].value_type != BSON_TYPE_EOD && (!dj_value_as_int64_exact (&v[2], &from) || from < 0)) {
      return x_fail (ev, 40097, "$indexOfArray requires a nonnegative integral start index");
   }
   if (v[3].value_type != BSON_TYPE_EOD && (!dj_value_as_int64_exact (&v[3], &to) || to < 0)) {
      return x_fail (ev, 40097, "$indexOfArray requires a nonnegative integral end index");
   }
   l = x_list (ev, &v[0]);
   set_int (out, list_find (&l, &v[1], from, to));
   return true;
}

/* a null argument gives null, a non-array one fails at once */
bool
op_concat_arrays (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   (void) v;
   bson_t arr = BSON_INITIALIZER;
   uint32_t k = 0;
   bson_value_t a;
   char buf[16];
   for (int i = 0; i < e->nargs; i++) {
      if (!x_eval (e->args[i], ev, &a)) {
         bson_destroy (&arr);
         return false;
      }
      if (nullish (&a)) {
         bson_destroy (&arr);
         set_null (out);
         return true;
      }
      if (a.value_type != BSON_TYPE_ARRAY) {
         bson_destroy (&arr);
         return x_fail (ev, 28664, "$concatArrays only supports arrays, not %s", tname (&a));
      }
      bson_iter_t it;
      x_iter (&it, &a);
      while (bson_iter_next (&it)) {
         bson_append_value (&arr, dj_array_key (k++, buf), -1, bson_iter_value (&it));
      }
   }
   return x_doc_value (ev, &arr, true, out);
}

/* input, sortBy (a sort specification for documents, or 1 / -1) */
bool
op_sort_array (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   (void) e;
   bson_value_t *b = &v[1];
   vlist_t l = x_list (ev, &v[0]);
   if (b->value_type == BSON_TYPE_DOCUMENT) {
      bson_t spec;
      bson_init_static (&spec, b->value.v_doc.data, b->value.v_doc.data_len);
      dj_sort_t *so = dj_sort_new (&spec, ev->error);
      if (!so) {
         return false;
      }
      bson_t **docs = dj_arena_alloc (ev->arena, sizeof (bson_t *) * (l.n ? l.n : 1));
      for (uint32_t i = 0; i < l.n; i++) {
         docs[i] = l.v[i].value_type == BSON_TYPE_DOCUMENT
                      ? bson_new_from_data (l.v[i].value.v_doc.data, l.v[i].value.v_doc.data_len)
                      : bson_new ();
      }
      /* sort indexes by the documents */
      uint32_t *order = dj_arena_alloc (ev->arena, sizeof (uint32_t) * (l.n ? l.n : 1));
      for (uint32_t i = 0; i < l.n; i++) {
         order[i] = i;
      }
      for (uint32_t i = 1; i < l.n; i++) {
         uint32_t x = order[i], j = i;
         while (j > 0 && dj_sort_cmp (so, docs[order[j - 1]], docs[x]) > 0) {
            order[j] = order[j - 1];
            j--;
         }
         order[j] = x;
      }
      bson_value_t *sorted = dj_arena_alloc (ev->arena, sizeof (bson_value_t) * (l.n ? l.n : 1));
      for (uint32_t i = 0; i < l.n; i++) {
         sorted[i] = l.v[order[i]];
      }
      for (uint32_t i = 0; i < l.n; i++) {
         bson_destroy (docs[i]);
      }
      dj_sort_destroy (so);
      x_list_value (ev, sorted, l.n, out);
      return true;
   }
   int64_t dir;
   if (!dj_value_as_int64_exact (b, &dir) || (dir != 1 && dir != -1)) {
      return x_fail (ev, 2, "$sortArray requires sortBy to be 1, -1 or a sort specification");
   }
   for (uint32_t i = 1; i < l.n; i++) {
      bson_value_t x = l.v[i];
      uint32_t j = i;
      while (j > 0 && dj_value_cmp (&l.v[j - 1], &x) * dir > 0) {
         l.v[j] = l.v[j - 1];
         j--;
      }
      l.v[j] = x;
   }
   x_list_value (ev, l.v, l.n, out);
   return true;
}

/* inputs, useLongestLength, defaults */
bool
op_zip (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   (void) e;
   vlist_t l = x_list (ev, &v[0]);
   vlist_t *cols = dj_arena_alloc (ev->arena, sizeof (vlist_t) * (l.n ? l.n : 1));
   vlist_t defs = {0};
   uint32_t minlen = UINT32_MAX, maxlen = 0;
   for (uint32_t i = 0; i < l.n; i++) {
      if (nullish (&l.v[i])) {
         set_null (out);
         return true;
      }
      if (l.v[i].value_type != BSON_TYPE_ARRAY) {
         return x_fail (ev, 34468, "$zip found a non-array expression in input: %s", tname (&l.v[i]));
      }
      cols[i] = x_list (ev, &l.v[i]);
      minlen = cols[i].n < minlen ? cols[i].n : minlen;
      maxlen = cols[i].n > maxlen ? cols[i].n : maxlen;
   }
   bool longest = dj_value_truthy (&v[1]);
   if (v[2].value_type == BSON_TYPE_ARRAY) {
      if (!longest) {
         return x_fail (ev, 34466, "cannot specify defaults unless useLongestLength is true");
      }
      defs = x_list (ev, &v[2]);
      if (defs.n != l.n) {
         return x_fail (ev, 34467, "defaults and inputs must have the same length");
      }
   }
   uint32_t rows = l.n ? (longest ? maxlen : minlen) : 0;
   bson_t arr = BSON_INITIALIZER;
   char buf[16], b2[16];
   for (uint32_t r = 0; r < rows; r++) {
      bson_t row;
      bson_append_array_begin (&arr, dj_array_key (r, buf), -1, &row);
      for (uint32_t i = 0; i < l.n; i++) {
         const char *k2 = dj_array_key (i, b2);
         if (r < cols[i].n) {
            bson_append_value (&row, k2, -1, &cols[i].v[r]);
         } else if (defs.n) {
            bson_append_value (&row, k2, -1, &defs.v[i]);
         } else {
            bson_append_null (&row, k2, -1);
         }
      }
      bson_append_array_end (&arr, &row);
   }
   return x_doc_value (ev, &arr, true, out);
}

/* The fields `it` walks, into out, with field `key` set to val where it
 * stands (or last, when it is not there); val missing: without the field. */
static void
with_field (bson_iter_t *it, const char *key, const bson_value_t *val, bson_t *out)
{
   bool set = false;
   while (bson_iter_next (it)) {
      if (strcmp (bson_iter_key (it), key)) {
         bson_append_value (out, bson_iter_key (it), -1, bson_iter_value (it));
         continue;
      }
      if (val->value_type != BSON_TYPE_EOD) {
         bson_append_value (out, key, -1, val);
      }
      set = true;
   }
   if (!set && val->value_type != BSON_TYPE_EOD) {
      bson_append_value (out, key, -1, val);
   }
}

/* [[k, v], ...] or [{k, v}, ...] */
bool
op_array_to_object (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   (void) e;
   vlist_t l = x_list (ev, v);
   bson_t doc = BSON_INITIALIZER;
   for (uint32_t i = 0; i < l.n; i++) {
      bson_value_t k, val;
      if (l.v[i].value_type == BSON_TYPE_ARRAY) {
         vlist_t pair = x_list (ev, &l.v[i]);
         if (pair.n != 2) {
            bson_destroy (&doc);
            return x_fail (ev, 40397, "$arrayToObject requires an array of size 2 arrays,found array of size: %u", pair.n);
         }
         k = pair.v[0];
         val = pair.v[1];
      } else if (l.v[i].value_type == BSON_TYPE_DOCUMENT) {
         if (!dj_value_get_field (&l.v[i], "k", &k) || !dj_value_get_field (&l.v[i], "v", &val)) {
            bson_destroy (&doc);
            return x_fail (ev, 40392, "$arrayToObject requires an object keys of 'k' and 'v'. Found incorrect number of keys:1");
         }
      } else {
         bson_destroy (&doc);
         return x_fail (ev, 40398, "Unrecognised input type format for $arrayToObject: %s", tname (&l.v[i]));
      }
      if (k.value_type != BSON_TYPE_UTF8) {
         bson_destroy (&doc);
         return x_fail (ev, 40395,
                        "$arrayToObject requires an array of key-value pairs, where the key must be of type string. Found key type: %s",
                        tname (&k));
      }
      /* a repeated key keeps its first position and takes the last value */
      bson_t tmp = BSON_INITIALIZER;
      bson_iter_t it;
      bson_iter_init (&it, &doc);
      with_field (&it, k.value.v_utf8.str, &val, &tmp);
      bson_destroy (&doc);
      bson_copy_to (&tmp, &doc);
      bson_destroy (&tmp);
   }
   return x_doc_value (ev, &doc, false, out);
}

bool
op_object_to_array (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   (void) e;
   bson_t arr = BSON_INITIALIZER;
   bson_iter_t it;
   uint32_t k = 0;
   char buf[16];
   x_iter (&it, v);
   while (bson_iter_next (&it)) {
      bson_t kv;
      bson_append_document_begin (&arr, dj_array_key (k++, buf), -1, &kv);
      BSON_APPEND_UTF8 (&kv, "k", bson_iter_key (&it));
      BSON_APPEND_VALUE (&kv, "v", bson_iter_value (&it));
      bson_append_document_end (&arr, &kv);
   }
   return x_doc_value (ev, &arr, true, out);
}

static bool
set_contains (const vlist_t *l, const bson_value_t *v)
{
   for (uint32_t i = 0; i < l->n; i++) {
      if (dj_value_cmp (&l->v[i], v) == 0 && dj_type_rank (l->v[i].value_type) == dj_type_rank (v->value_type)) {
         return true;
      }
   }
   return false;
}

/* $setEquals, $setIntersection, $setUnion, $setDifference, $setIsSubset (aux AR_EQUALS...) */
bool
op_set (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   int id = e->op->aux, n = e->nargs;
   vlist_t *sets = dj_arena_alloc (ev->arena, sizeof (vlist_t) * (size_t) (n ? n : 1));
   for (int i = 0; i < n; i++) {
      if (nullish (&v[i]) && id != AR_EQUALS && id != AR_ISSUBSET) {
         set_null (out);
         return true;
      }
      if (v[i].value_type != BSON_TYPE_ARRAY) {
         return x_fail (ev, 17044, "All operands of %s must be arrays. One argument is of type: %s", e->op->name,
                        tname (&v[i]));
      }
      sets[i] = x_list (ev, &v[i]);
   }
   if (id == AR_UNION || id == AR_INTERSECTION || id == AR_DIFFERENCE) {
      vlist_t r = {.v = dj_arena_alloc (ev->arena, sizeof (bson_value_t) * 1024), .n = 0};
      uint32_t cap = 1024;
      for (int i = 0; i < (id == AR_UNION ? n : (n ? 1 : 0)); i++) {
         for (uint32_t j = 0; j < sets[i].n; j++) {
            const bson_value_t *x = &sets[i].v[j];
            bool keep = !set_contains (&r, x);
            if (keep && id == AR_INTERSECTION) {
               for (int o = 1; o < n && keep; o++) {
                  keep = set_contains (&sets[o], x);
               }
            }
            if (keep && id == AR_DIFFERENCE) {
               keep = !set_contains (&sets[1], x);
            }
            if (keep) {
               if (r.n == cap) {
                  bson_value_t *nv = dj_arena_alloc (ev->arena, sizeof (bson_value_t) * cap * 2);
                  memcpy (nv, r.v, sizeof (bson_value_t) * cap);
                  r.v = nv;
                  cap *= 2;
               }
               r.v[r.n++] = *x;
            }
         }
      }
      x_list_value (ev, r.v, r.n, out);
      return true;
   }
   bool result = true;
   if (id == AR_ISSUBSET) {
      for (uint32_t j = 0; j < sets[0].n && result; j++) {
         result = set_contains (&sets[1], &sets[0].v[j]);
      }
   } else {
      for (int i = 1; i < n && result; i++) {
         for (uint32_t j = 0; j < sets[0].n && result; j++) {
            result = set_contains (&sets[i], &sets[0].v[j]);
         }
         for (uint32_t j = 0; j < sets[i].n && result; j++) {
            result = set_contains (&sets[0], &sets[i].v[j]);
         }
      }
   }
   set_bool (out, result);
   return true;
}

/* $anyElementTrue (aux AR_ANY), $allElementsTrue (AR_ALL) */
bool
op_any_all (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   bool all = e->op->aux == AR_ALL;
   vlist_t l = x_list (ev, v);
   for (uint32_t i = 0; i < l.n; i++) {
      if (dj_value_truthy (&l.v[i]) != all) {
         set_bool (out, !all);
         return true;
      }
   }
   set_bool (out, all);
   return true;
}

bool
op_merge_objects (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   dj_node_t *acc = dj_node_new_container (BSON_TYPE_DOCUMENT, NULL);
   vlist_t in = x_acc_inputs (e, ev, v);
   for (uint32_t i = 0; i < in.n; i++) {
      if (nullish (&in.v[i])) {
         continue;
      }
      if (in.v[i].value_type != BSON_TYPE_DOCUMENT) {
         dj_node_free (acc);
         return x_fail (ev, 40400, "$mergeObjects requires object inputs, but input %s is of type %s", "", tname (&in.v[i]));
      }
      bson_iter_t it;
      x_iter (&it, &in.v[i]);
      while (bson_iter_next (&it)) {
         dj_node_set_child (acc, bson_iter_key (&it), dj_node_from_value (bson_iter_value (&it), bson_iter_key (&it)));
      }
   }
   bson_t doc = BSON_INITIALIZER;
   dj_node_to_bson (acc, &doc);
   dj_node_free (acc);
   return x_doc_value (ev, &doc, false, out);
}

/* field (evaluated), input ($$CURRENT when not given) */
bool
op_get_field (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   bson_value_t field = v[0], input;
   if (e->positional || !e->args[1]) {
      input = ev->current;
   } else if (!x_arg (e, 1, ev, &input)) {
      return false;
   }
   if (field.value_type != BSON_TYPE_UTF8) {
      return x_fail (ev, 5654602, "%s requires 'field' to evaluate to type String, but got %s", e->op->name, tname (&field));
   }
   if (nullish (&input)) {
      *out = input.value_type == BSON_TYPE_EOD ? MISSING : (bson_value_t){.value_type = BSON_TYPE_NULL};
      return true;
   }
   if (input.value_type != BSON_TYPE_DOCUMENT) {
      return x_fail (ev, 3041705, "$getField requires 'input' to evaluate to type Object, but got %s", tname (&input));
   }
   if (!dj_value_get_field (&input, field.value.v_utf8.str, out)) {
      *out = MISSING;
   }
   return true;
}

/* $setField (aux AR_SET): field, input (evaluated), value; $unsetField (AR_UNSET): field, input */
bool
op_set_field (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   bson_value_t field = v[0], input = v[1], value = MISSING;
   if (field.value_type != BSON_TYPE_UTF8) {
      return x_fail (ev, 5654602, "%s requires 'field' to evaluate to type String, but got %s", e->op->name, tname (&field));
   }
   if (e->op->aux == AR_SET && !x_arg (e, 2, ev, &value)) {
      return false;
   }
   if (nullish (&input)) {
      set_null (out);
      return true;
   }
   if (input.value_type != BSON_TYPE_DOCUMENT) {
      return x_fail (ev, 4161105, "%s requires 'input' to evaluate to type Object", e->op->name);
   }
   bson_t doc = BSON_INITIALIZER;
   bson_iter_t it;
   x_iter (&it, &input);
   with_field (&it, field.value.v_utf8.str, &value, &doc);
   return x_doc_value (ev, &doc, false, out);
}

/* $firstN, $lastN, $maxN, $minN on an array: input, n.
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/firstN-array-element/
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/maxN-array-element/
 * $maxN/$minN leave nulls out and give the n greatest (least) in order. */
bool
op_n_array (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   int64_t n;
   if (!dj_value_is_number (&v[1]) || !dj_value_as_int64_exact (&v[1], &n)) {
      return x_fail (ev, 5787902, "Value for 'n' must be of integral type, but found %s", tname (&v[1]));
   }
   if (n <= 0) {
      return x_fail (ev, 5787908, "'n' must be greater than 0, found %" PRId64, n);
   }
   vlist_t l = x_list (ev, &v[0]);
   if (e->op->aux == AR_FIRSTN || e->op->aux == AR_LASTN) {
      uint32_t k = (int64_t) l.n < n ? l.n : (uint32_t) n;
      x_list_value (ev, e->op->aux == AR_FIRSTN ? l.v : l.v + (l.n - k), k, out);
      return true;
   }
   /* the non-null values, by insertion into order (greatest first for $maxN) */
   int sign = e->op->aux == AR_MAXN ? -1 : 1;
   bson_value_t *kept = dj_arena_alloc (ev->arena, sizeof (bson_value_t) * (l.n ? l.n : 1));
   uint32_t m = 0;
   for (uint32_t i = 0; i < l.n; i++) {
      if (nullish (&l.v[i])) {
         continue;
      }
      uint32_t j = m++;
      while (j > 0 && sign * dj_value_cmp (&kept[j - 1], &l.v[i]) > 0) {
         kept[j] = kept[j - 1];
         j--;
      }
      kept[j] = l.v[i];
   }
   x_list_value (ev, kept, (int64_t) m < n ? m : (uint32_t) n, out);
   return true;
}
