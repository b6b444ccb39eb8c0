/*
 * fill.c -- $fill: null and missing fields given a value, the last value
 * before them (locf) or the straight line between the values around them
 * (linear), within partitions, in sortBy order.
 *
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/fill/
 *
 * mongod runs $fill as $setWindowFields ($locf, $linearFill) followed by
 * $addFields ({$ifNull: [field, value]}): with a sortBy the documents come
 * out by partition, then sortBy (as $setWindowFields outputs them), and a
 * method sets its field on every document -- null where nothing comes
 * before (locf) or around (linear). Without a sortBy the order stays.
 */
#include "agg-private.h"

#include <math.h>
#include <stdlib.h>

enum { F_VALUE, F_LOCF, F_LINEAR };

typedef struct {
   char *name; /* owned */
   dj_path_t path;
   int method;
   dj_expr_t *value; /* owned: F_VALUE */
   dj_expr_t *input; /* owned: "$name", what locf and linear read */
} fout_t;

typedef struct {
   dj_expr_t *partition; /* owned; NULL: one partition (partitionByFields become an object of them) */
   dj_sort_t *sort;      /* owned; NULL: none */
   fout_t *outs;         /* owned, nouts */
   int nouts;
} fill_t;

static void
fill_free (void *p)
{
   fill_t *f = p;
   dj_expr_destroy (f->partition);
   dj_sort_destroy (f->sort);
   for (int i = 0; i < f->nouts; i++) {
      bson_free (f->outs[i].name);
      dj_path_cleanup (&f->outs[i].path);
      dj_expr_destroy (f->outs[i].value);
      dj_expr_destroy (f->outs[i].input);
   }
   bson_free (f->outs);
   bson_free (f);
}

/* partitionByFields [a, b] as the expression {a: "$a", b: "$b"} (the
 * names' dots made '_': only the grouping matters). */
static bool
fields_partition (fill_t *f, bson_iter_t *it, const dj_vscope_t *scope, bson_error_t *error)
{
   bson_iter_t pi;
   bson_t obj = BSON_INITIALIZER;
   bson_iter_recurse (it, &pi);
   int n = 0;
   while (bson_iter_next (&pi)) {
      if (!BSON_ITER_HOLDS_UTF8 (&pi) || bson_iter_utf8 (&pi, NULL)[0] == '$') {
         bson_destroy (&obj);
         return dj_err (error, DJ_TypeMismatch, "$fill 'partitionByFields' must be an array of field names");
      }
      char key[16], *path = bson_strdup_printf ("$%s", bson_iter_utf8 (&pi, NULL));
      snprintf (key, sizeof key, "f%d", n++);
      BSON_APPEND_UTF8 (&obj, key, path);
      bson_free (path);
   }
   f->partition = dj_expr_parse_object (&obj, scope, error);
   bson_destroy (&obj);
   return f->partition != NULL;
}

bool
dj_agg_parse_fill (stage_t *s, const bson_value_t *v, const dj_vscope_t *scope, bson_error_t *error)
{
   fill_t *f = bson_malloc0 (sizeof *f);
   s->spec = f;
   s->spec_free = fill_free;
   if (v->value_type != BSON_TYPE_DOCUMENT) {
      return dj_err (error, DJ_TypeMismatch, "the $fill stage specification must be an object, found %s", dj_type_name (v->value_type));
   }
   bool have_output = false, by_expr = false, by_fields = false;
   bson_iter_t it;
   bson_iter_init_from_data (&it, v->value.v_doc.data, v->value.v_doc.data_len);
   while (bson_iter_next (&it)) {
      const char *k = bson_iter_key (&it);
      if (!strcmp (k, "partitionBy")) {
         by_expr = true;
         dj_expr_destroy (f->partition);
         f->partition = dj_expr_parse (bson_iter_value (&it), scope, error);
         if (!f->partition) {
            return false;
         }
      } else if (!strcmp (k, "partitionByFields")) {
         by_fields = true;
         if (!BSON_ITER_HOLDS_ARRAY (&it)) {
            return dj_err (error, DJ_TypeMismatch, "BSON field '$fill.partitionByFields' is the wrong type, expected type 'array'");
         }
         dj_expr_destroy (f->partition);
         f->partition = NULL;
         if (!fields_partition (f, &it, scope, error)) {
            return false;
         }
      } else if (!strcmp (k, "sortBy")) {
         bson_t sd;
         uint32_t len;
         const uint8_t *data;
         if (!BSON_ITER_HOLDS_DOCUMENT (&it)) {
            return dj_err (error, DJ_TypeMismatch, "BSON field '$fill.sortBy' is the wrong type, expected type 'object'");
         }
         bson_iter_document (&it, &len, &data);
         bson_init_static (&sd, data, len);
         dj_sort_destroy (f->sort);
         f->sort = dj_sort_new (&sd, error);
         if (!f->sort) {
            return false;
         }
      } else if (!strcmp (k, "output")) {
         bson_iter_t oi;
         have_output = true;
         if (!BSON_ITER_HOLDS_DOCUMENT (&it)) {
            return dj_err (error, DJ_TypeMismatch, "BSON field '$fill.output' is the wrong type, expected type 'object'");
         }
         bson_iter_recurse (&it, &oi);
         while (bson_iter_next (&oi)) {
            f->outs = bson_realloc (f->outs, sizeof (fout_t) * (size_t) (f->nouts + 1));
            fout_t *o = &f->outs[f->nouts++];
            memset (o, 0, sizeof *o);
            o->name = bson_strdup (bson_iter_key (&oi));
            if (!dj_path_init (&o->path, o->name, strlen (o->name), error)) {
               return false;
            }
            bson_value_t spec = *bson_iter_value (&oi), mv, vv;
            bool has_method = spec.value_type == BSON_TYPE_DOCUMENT && dj_value_get_field (&spec, "method", &mv);
            bool has_value = spec.value_type == BSON_TYPE_DOCUMENT && dj_value_get_field (&spec, "value", &vv);
            if (spec.value_type != BSON_TYPE_DOCUMENT || has_method == has_value || dj_value_count (&spec) != 1) {
               return dj_err (error, 6050203, "Exactly one of 'value' and 'method' must be specified in a $fill output field");
            }
            if (has_value) {
               o->method = F_VALUE;
               o->value = dj_expr_parse (&vv, scope, error);
               if (!o->value) {
                  return false;
               }
            } else if (mv.value_type == BSON_TYPE_UTF8 && (!strcmp (mv.value.v_utf8.str, "locf") || !strcmp (mv.value.v_utf8.str, "linear"))) {
               o->method = mv.value.v_utf8.str[1] == 'o' ? F_LOCF : F_LINEAR;
               bson_value_t pv = {.value_type = BSON_TYPE_UTF8};
               char *path = bson_strdup_printf ("$%s", o->name);
               pv.value.v_utf8.str = path;
               pv.value.v_utf8.len = (uint32_t) strlen (path);
               o->input = dj_expr_parse (&pv, scope, error);
               bson_free (path);
               if (!o->input) {
                  return false;
               }
            } else {
               return dj_err (error, 6050202, "Method must be either 'linear' or 'locf'");
            }
         }
      } else {
         return dj_err (error, 40415, "BSON field '$fill.%s' is an unknown field.", k);
      }
   }
   if (!have_output) {
      return dj_err (error, 40414, "BSON field '$fill.output' is missing but a required field");
   }
   if (by_expr && by_fields) {
      return dj_err (error, 6050204, "Maximum one of 'partitionBy' and 'partitionByFields can be specified in '$fill'");
   }
   for (int i = 0; i < f->nouts; i++) {
      if (f->outs[i].method != F_VALUE && !f->sort) {
         return dj_err (error, 6050201, "sortBy is required if any fill methods are specified");
      }
      if (f->outs[i].method == F_LINEAR && dj_sort_nkeys (f->sort) != 1) {
         return dj_err (error, 605001, "$linearFill requires a single sortBy field");
      }
   }
   return true;
}

typedef struct {
   bson_t *doc; /* owned by the docs list */
   size_t idx;
   dj_buf_t pkey;
} frow_t;

/* Sorts rows[0..n) by partition key, then sort (NULL: input order), then input order. */
static void
sort_rows (frow_t *rows, size_t n, const dj_sort_t *sort)
{
   /* a bottom-up merge sort: stable, and qsort has no context for the sort spec */
   frow_t *tmp = bson_malloc (sizeof (frow_t) * (n ? n : 1));
   for (size_t width = 1; width < n; width *= 2) {
      for (size_t lo = 0; lo < n; lo += 2 * width) {
         size_t mid = lo + width < n ? lo + width : n, hi = lo + 2 * width < n ? lo + 2 * width : n;
         size_t a = lo, b = mid, o = lo;
         while (a < mid && b < hi) {
            const frow_t *x = &rows[a], *y = &rows[b];
            int c = dj_agg_key_cmp (&x->pkey, &y->pkey);
            if (!c && sort) {
               c = dj_sort_cmp (sort, x->doc, y->doc);
            }
            tmp[o++] = c <= 0 ? rows[a++] : rows[b++];
         }
         while (a < mid) {
            tmp[o++] = rows[a++];
         }
         while (b < hi) {
            tmp[o++] = rows[b++];
         }
      }
      memcpy (rows, tmp, sizeof (frow_t) * n);
   }
   bson_free (tmp);
}

static bool
nullish_v (const bson_value_t *v)
{
   return v->value_type == BSON_TYPE_EOD || v->value_type == BSON_TYPE_NULL || v->value_type == BSON_TYPE_UNDEFINED;
}

/* rows[i].doc with the output's field set to v (the old document freed). */
static void
set_field (frow_t *row, const fout_t *o, const bson_value_t *v)
{
   bson_t *nd = dj_agg_with_path (row->doc, &o->path, v, NULL, 0);
   bson_destroy (row->doc);
   row->doc = nd;
}

/* The fields of one output over one partition rows[0..n). */
static bool
fill_partition (rctx_t *r, const fill_t *f, const fout_t *o, frow_t *rows, size_t n)
{
   static const bson_value_t null_v = {.value_type = BSON_TYPE_NULL};
   if (o->method == F_VALUE) {
      for (size_t i = 0; i < n; i++) {
         bson_value_t cur;
         bson_iter_t it;
         cur.value_type = BSON_TYPE_EOD;
         if (bson_iter_init (&it, rows[i].doc) && bson_iter_find_descendant (&it, o->name, &it)) {
            cur = *bson_iter_value (&it);
         }
         if (!nullish_v (&cur)) {
            continue;
         }
         dj_eval_t ev;
         bson_value_t v;
         dj_agg_eval_setup (r, &ev, rows[i].doc);
         if (!dj_expr_eval (o->value, &ev, &v)) {
            return false;
         }
         set_field (&rows[i], o, v.value_type == BSON_TYPE_EOD ? &null_v : &v);
         dj_arena_reset (r->arena);
      }
      return true;
   }
   /* $locf / $linearFill down the partition, as mongod's $fill runs them
    * (window_fns.c); every document gets the field, null where none */
   wfield_t w = {.fn = o->method == F_LOCF ? WF_LOCF : WF_LINEARFILL, .expr = o->input};
   bson_t **pd = bson_malloc (sizeof (bson_t *) * (n ? n : 1));
   bson_value_t *vals = bson_malloc (sizeof (bson_value_t) * (n ? n : 1));
   for (size_t i = 0; i < n; i++) {
      pd[i] = rows[i].doc;
   }
   bool ok = dj_agg_window_column (r, f->sort, &w, pd, n, vals);
   for (size_t i = 0; i < n; i++) {
      if (ok) {
         set_field (&rows[i], o, &vals[i]);
      }
      bson_value_destroy (&vals[i]);
   }
   DJ_FREE (pd, vals);
   return ok;
}

bool
dj_agg_run_fill (rctx_t *r, const stage_t *s, dj_docs_t *docs)
{
   const fill_t *f = s->spec;
   size_t n = docs->n;
   frow_t *rows = bson_malloc0 (sizeof (frow_t) * (n ? n : 1));
   bool ok = true;
   for (size_t i = 0; i < n; i++) {
      rows[i].doc = docs->v[i];
      rows[i].idx = i;
      dj_buf_init (&rows[i].pkey);
      if (ok && f->partition) {
         ok = dj_agg_partition_key (r, f->partition, docs->v[i], &rows[i].pkey);
      }
   }
   if (ok && (f->sort || f->partition)) {
      sort_rows (rows, n, f->sort);
   }
   for (size_t start = 0; ok && start < n;) {
      size_t end = start + 1;
      while (end < n && !dj_agg_key_cmp (&rows[end].pkey, &rows[start].pkey)) {
         end++;
      }
      for (int o = 0; ok && o < f->nouts; o++) {
         ok = fill_partition (r, f, &f->outs[o], rows + start, end - start);
      }
      start = end;
   }
   /* the rows own the (possibly replaced) documents now: back into the list */
   for (size_t i = 0; i < n; i++) {
      docs->v[i] = rows[i].doc;
      dj_buf_cleanup (&rows[i].pkey);
   }
   bson_free (rows);
   if (!ok) {
      dj_docs_clear (docs);
   }
   return ok;
}
