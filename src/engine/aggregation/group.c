/*
 * group.c -- $group and $bucket, and the accumulators they (and
 * $setWindowFields) use: $sum, $avg, $min, $max, $first, $last, $push,
 * $addToSet, $count, $stdDevPop, $stdDevSamp, $mergeObjects.
 *
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/group/
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/bucket/
 *
 * Groups are found by the collated key encoding of their _id in an
 * open-addressing hash table (ktable_t), so grouping is linear in the input.
 */
#include "agg-private.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

void
dj_accst_cleanup (accst_t *a)
{
   if (a->have && a->val.value_type != BSON_TYPE_EOD) {
      bson_value_destroy (&a->val);
   }
   if (a->arr) {
      bson_destroy (a->arr);
   }
   dj_node_free (a->merged);
}

static void
num_add (bson_value_t *acc, const bson_value_t *v)
{
   /* $sum's widening: int32 -> int64 -> double; decimal wins */
   bson_type_t ta = acc->value_type, tb = v->value_type;
   if (ta == BSON_TYPE_DECIMAL128 || tb == BSON_TYPE_DECIMAL128) {
      dj_decimal_arith ('+', acc, v, acc);
      return;
   }
   if (ta == BSON_TYPE_DOUBLE || tb == BSON_TYPE_DOUBLE) {
      double x = dj_value_as_double (acc) + dj_value_as_double (v);
      acc->value_type = BSON_TYPE_DOUBLE;
      acc->value.v_double = x;
      return;
   }
   int64_t x = ta == BSON_TYPE_INT32 ? acc->value.v_int32 : acc->value.v_int64;
   int64_t y = tb == BSON_TYPE_INT32 ? v->value.v_int32 : v->value.v_int64;
   int64_t rr;
   if (__builtin_add_overflow (x, y, &rr)) {
      acc->value_type = BSON_TYPE_DOUBLE;
      acc->value.v_double = (double) x + (double) y;
   } else if (ta == BSON_TYPE_INT32 && tb == BSON_TYPE_INT32 && rr >= INT32_MIN && rr <= INT32_MAX) {
      acc->value.v_int32 = (int32_t) rr;
   } else {
      acc->value_type = BSON_TYPE_INT64;
      acc->value.v_int64 = rr;
   }
}

bool
dj_acc_step (accst_t *a, const bson_value_t *v, bson_error_t *error)
{
   bool nullish = v->value_type == BSON_TYPE_EOD || v->value_type == BSON_TYPE_NULL || v->value_type == BSON_TYPE_UNDEFINED;
   switch (a->op) {
   case A_SUM:
   case A_AVG:
      if (!a->have) {
         a->sum.value_type = BSON_TYPE_INT32;
         a->sum.value.v_int32 = 0;
         a->have = true;
         a->val.value_type = BSON_TYPE_EOD;
      }
      if (dj_value_is_number (v)) {
         num_add (&a->sum, v);
         a->count++;
      }
      return true;
   case A_COUNT: a->count++; return true;
   case A_MIN:
   case A_MAX:
      if (nullish) {
         return true;
      }
      if (!a->have || (a->op == A_MIN ? dj_value_cmp (v, &a->val) < 0 : dj_value_cmp (v, &a->val) > 0)) {
         if (a->have) {
            bson_value_destroy (&a->val);
         }
         bson_value_copy (v, &a->val);
         a->have = true;
      }
      return true;
   case A_FIRST:
      if (!a->have) {
         if (v->value_type == BSON_TYPE_EOD) {
            a->val.value_type = BSON_TYPE_NULL;
         } else {
            bson_value_copy (v, &a->val);
         }
         a->have = true;
      }
      return true;
   case A_LAST:
      if (a->have) {
         bson_value_destroy (&a->val);
      }
      if (v->value_type == BSON_TYPE_EOD) {
         a->val.value_type = BSON_TYPE_NULL;
      } else {
         bson_value_copy (v, &a->val);
      }
      a->have = true;
      return true;
   case A_PUSH:
   case A_ADDTOSET: {
      if (!a->arr) {
         a->arr = bson_new ();
      }
      if (v->value_type == BSON_TYPE_EOD) {
         return true;
      }
      if (a->op == A_ADDTOSET) {
         bson_iter_t it;
         bson_iter_init (&it, a->arr);
         while (bson_iter_next (&it)) {
            if (dj_value_cmp (bson_iter_value (&it), v) == 0) {
               return true;
            }
         }
      }
      char buf[16];
      const char *k;
      bson_uint32_to_string (a->narr++, &k, buf, sizeof buf);
      bson_append_value (a->arr, k, -1, v);
      return true;
   }
   case A_STDPOP:
   case A_STDSAMP:
      if (dj_value_is_number (v)) {
         double x = dj_value_as_double (v);
         a->count++;
         double d = x - a->mean;
         a->mean += d / (double) a->count;
         a->m2 += d * (x - a->mean);
      }
      return true;
   case A_MERGE:
      if (nullish) {
         return true;
      }
      if (v->value_type != BSON_TYPE_DOCUMENT) {
         return dj_err (error, 40400, "$mergeObjects requires object inputs, but input is of type %s", dj_type_name (v->value_type));
      }
      if (!a->merged) {
         a->merged = dj_node_new_container (BSON_TYPE_DOCUMENT, NULL);
      }
      {
         bson_iter_t it;
         bson_iter_init_from_data (&it, v->value.v_doc.data, v->value.v_doc.data_len);
         while (bson_iter_next (&it)) {
            dj_node_set_child (a->merged, bson_iter_key (&it), dj_node_from_value (bson_iter_value (&it), bson_iter_key (&it)));
         }
      }
      return true;
   }
   return true;
}

void
dj_acc_result (const accst_t *a, const char *field, bson_t *out)
{
   switch (a->op) {
   case A_SUM:
      if (a->have) {
         BSON_APPEND_VALUE (out, field, &a->sum);
      } else {
         BSON_APPEND_INT32 (out, field, 0);
      }
      return;
   case A_AVG:
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
      return;
   case A_COUNT: BSON_APPEND_INT32 (out, field, (int32_t) a->count); return;
   case A_MIN:
   case A_MAX:
   case A_FIRST:
   case A_LAST:
      if (a->have) {
         BSON_APPEND_VALUE (out, field, &a->val);
      } else {
         BSON_APPEND_NULL (out, field);
      }
      return;
   case A_PUSH:
   case A_ADDTOSET:
      if (a->arr) {
         BSON_APPEND_ARRAY (out, field, a->arr);
      } else {
         bson_t empty = BSON_INITIALIZER;
         BSON_APPEND_ARRAY (out, field, &empty);
      }
      return;
   case A_STDPOP:
   case A_STDSAMP:
      if (a->op == A_STDPOP ? a->count == 0 : a->count < 2) {
         BSON_APPEND_NULL (out, field);
      } else {
         BSON_APPEND_DOUBLE (out, field, sqrt (a->m2 / (double) (a->op == A_STDPOP ? a->count : a->count - 1)));
      }
      return;
   case A_MERGE: {
      bson_t d = BSON_INITIALIZER;
      if (a->merged) {
         dj_node_to_bson (a->merged, &d);
      }
      BSON_APPEND_DOCUMENT (out, field, &d);
      bson_destroy (&d);
      return;
   }
   }
}

static uint64_t
hash_bytes (const uint8_t *p, size_t n)
{
   uint64_t h = 0xcbf29ce484222325ull;
   for (size_t i = 0; i < n; i++) {
      h = (h ^ p[i]) * 0x100000001b3ull;
   }
   return h;
}

/* Encoded keys to dense indexes 0..n-1, by open addressing. The $group
 * table and the $lookup join both sit on it, each keeping its own array of
 * values in step with the indexes. */
/* The index of k; SIZE_MAX when absent and !create. *added: k is new. */
size_t
dj_ktable_index (ktable_t *t, const dj_buf_t *k, bool create, bool *added)
{
   *added = false;
   if (create && (t->n + 1) * 2 > t->nslots) {
      size_t ns = t->nslots ? t->nslots * 2 : 64;
      size_t *nsl = bson_malloc0 (sizeof (size_t) * ns);
      for (size_t i = 0; i < t->n; i++) {
         size_t h = (size_t) hash_bytes (t->keys[i].data, t->keys[i].len) & (ns - 1);
         while (nsl[h]) {
            h = (h + 1) & (ns - 1);
         }
         nsl[h] = i + 1;
      }
      bson_free (t->slots);
      t->slots = nsl;
      t->nslots = ns;
   }
   if (!t->nslots) {
      return SIZE_MAX;
   }
   size_t h = (size_t) hash_bytes (k->data, k->len) & (t->nslots - 1);
   while (t->slots[h]) {
      const dj_buf_t *e = &t->keys[t->slots[h] - 1];
      if (e->len == k->len && !memcmp (e->data, k->data, k->len)) {
         return t->slots[h] - 1;
      }
      h = (h + 1) & (t->nslots - 1);
   }
   if (!create) {
      return SIZE_MAX;
   }
   if (t->n == t->cap) {
      t->cap = t->cap ? t->cap * 2 : 16;
      t->keys = bson_realloc (t->keys, sizeof (dj_buf_t) * t->cap);
   }
   dj_buf_init (&t->keys[t->n]);
   dj_buf_append (&t->keys[t->n], k->data, k->len);
   t->slots[h] = ++t->n;
   *added = true;
   return t->n - 1;
}

void
dj_ktable_free (ktable_t *t)
{
   for (size_t i = 0; i < t->n; i++) {
      dj_buf_cleanup (&t->keys[i]);
   }
   bson_free (t->keys);
   bson_free (t->slots);
}

group_t *
dj_gtable_get (gtable_t *t, const bson_value_t *id, int naccs, const acc_t *accs)
{
   dj_buf_t k;
   bool added;
   dj_buf_init (&k);
   /* groups by value: 1, 1.0 and NumberLong(1) are one group, as in MongoDB */
   dj_key_append_collated (&k, id);
   size_t i = dj_ktable_index (&t->kt, &k, true, &added);
   t->bytes += added ? k.len + 64 : 0;
   dj_buf_cleanup (&k);
   if (!added) {
      return &t->g[i];
   }
   if (i == t->cap) {
      t->cap = t->cap ? t->cap * 2 : 16;
      t->g = bson_realloc (t->g, sizeof (group_t) * t->cap);
   }
   group_t *g = &t->g[i];
   if (id->value_type == BSON_TYPE_EOD) {
      g->id.value_type = BSON_TYPE_NULL;
   } else {
      bson_value_copy (id, &g->id);
   }
   g->st = bson_malloc0 (sizeof (accst_t) * (size_t) (naccs ? naccs : 1));
   for (int a = 0; a < naccs; a++) {
      g->st[a].op = accs[a].op;
   }
   return g;
}

void
dj_gtable_free (gtable_t *t, int naccs)
{
   for (size_t i = 0; i < t->kt.n; i++) {
      bson_value_destroy (&t->g[i].id);
      for (int a = 0; a < naccs; a++) {
         dj_accst_cleanup (&t->g[i].st[a]);
      }
      bson_free (t->g[i].st);
   }
   bson_free (t->g);
   dj_ktable_free (&t->kt);
}

static bool
accumulate (rctx_t *r, gtable_t *t, const acc_t *accs, int naccs, group_t *g, dj_eval_t *ev)
{
   for (int a = 0; a < naccs; a++) {
      bson_value_t v = {.value_type = BSON_TYPE_EOD};
      if (accs[a].expr && !dj_expr_eval (accs[a].expr, ev, &v)) {
         return false;
      }
      if (!dj_acc_step (&g->st[a], &v, r->error)) {
         return false;
      }
      if (accs[a].op == A_PUSH || accs[a].op == A_ADDTOSET) {
         t->bytes += 16 + (v.value_type == BSON_TYPE_UTF8 ? v.value.v_utf8.len
                                                          : (v.value_type == BSON_TYPE_DOCUMENT || v.value_type == BSON_TYPE_ARRAY) ? v.value.v_doc.data_len : 8);
      }
   }
   return true;
}

bool
dj_agg_run_group (rctx_t *r, const stage_t *s, dj_docs_t *docs)
{
   gtable_t t = {0};
   bool ok = true;

   for (size_t i = 0; ok && i < docs->n; i++) {
      dj_eval_t ev;
      bson_value_t id;
      dj_agg_eval_setup (r, &ev, docs->v[i]);
      ok = dj_expr_eval (s->expr, &ev, &id);
      if (ok) {
         group_t *g = dj_gtable_get (&t, &id, s->naccs, s->accs);
         ok = accumulate (r, &t, s->accs, s->naccs, g, &ev) && dj_agg_check_memory (r, t.bytes, "$group");
      }
      dj_arena_reset (r->arena);
   }
   if (ok) {
      dj_docs_clear (docs);
      for (size_t i = 0; i < t.kt.n; i++) {
         bson_t *out = bson_new ();
         BSON_APPEND_VALUE (out, "_id", &t.g[i].id);
         for (int a = 0; a < s->naccs; a++) {
            dj_acc_result (&t.g[i].st[a], s->accs[a].field, out);
         }
         dj_docs_push (docs, out);
      }
   }
   dj_gtable_free (&t, s->naccs);
   return ok;
}

/* ---- $bucket ------------------------------------------------------------ */

bool
dj_agg_run_bucket (rctx_t *r, const stage_t *s, dj_docs_t *docs)
{
   bson_iter_t it;
   int nb = 0;
   bson_iter_init (&it, s->boundaries);
   while (bson_iter_next (&it)) {
      nb++;
   }
   bson_value_t *b = bson_malloc (sizeof (bson_value_t) * (size_t) nb);
   nb = 0;
   bson_iter_init (&it, s->boundaries);
   while (bson_iter_next (&it)) {
      b[nb++] = *bson_iter_value (&it);
   }
   /* one accumulator set per bucket plus the default bucket */
   accst_t *st = bson_malloc0 (sizeof (accst_t) * (size_t) (nb * s->naccs + s->naccs));
   bool *used = bson_malloc0 (sizeof (bool) * (size_t) nb);
   for (int i = 0; i < nb * s->naccs + s->naccs; i++) {
      st[i].op = s->accs[i % s->naccs].op;
   }
   gtable_t dummy = {0};
   bool ok = true;
   for (size_t i = 0; ok && i < docs->n; i++) {
      dj_eval_t ev;
      bson_value_t g;
      dj_agg_eval_setup (r, &ev, docs->v[i]);
      ok = dj_expr_eval (s->expr, &ev, &g);
      if (!ok) {
         break;
      }
      int slot = -1;
      if (dj_type_rank (g.value_type) == dj_type_rank (b[0].value_type)) {
         for (int k = 0; k + 1 < nb; k++) {
            if (dj_value_cmp (&g, &b[k]) >= 0 && dj_value_cmp (&g, &b[k + 1]) < 0) {
               slot = k;
               break;
            }
         }
      }
      if (slot < 0 && !s->has_default) {
         ok = dj_err (r->error, 40066, "$switch could not find a matching branch for an input, and no default was specified.");
         break;
      }
      int base = (slot < 0 ? nb - 1 : slot) * s->naccs;
      if (slot < 0) {
         base = nb * s->naccs;
      } else {
         used[slot] = true;
      }
      group_t grp = {.st = st + base};
      ok = accumulate (r, &dummy, s->accs, s->naccs, &grp, &ev);
      dj_arena_reset (r->arena);
   }
   if (ok) {
      bool default_used = false;
      for (int i = 0; i < s->naccs; i++) {
         default_used |= st[nb * s->naccs + i].have || st[nb * s->naccs + i].count || st[nb * s->naccs + i].arr;
      }
      dj_docs_clear (docs);
      for (int k = 0; k + 1 < nb; k++) {
         if (!used[k]) {
            continue;
         }
         bson_t *out = bson_new ();
         BSON_APPEND_VALUE (out, "_id", &b[k]);
         for (int a = 0; a < s->naccs; a++) {
            dj_acc_result (&st[k * s->naccs + a], s->accs[a].field, out);
         }
         dj_docs_push (docs, out);
      }
      if (default_used) {
         bson_t *out = bson_new ();
         BSON_APPEND_VALUE (out, "_id", &s->dflt);
         for (int a = 0; a < s->naccs; a++) {
            dj_acc_result (&st[nb * s->naccs + a], s->accs[a].field, out);
         }
         dj_docs_push (docs, out);
      }
   }
   for (int i = 0; i < nb * s->naccs + s->naccs; i++) {
      dj_accst_cleanup (&st[i]);
   }
   bson_free (st);
   bson_free (used);
   bson_free (b);
   return ok;
}

