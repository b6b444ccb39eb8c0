/*
 * group.c -- $group and $bucket (their accumulators are accumulators.c's).
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
   DJ_GROW (t->keys, t->n, t->cap, 16);
   dj_buf_init (&t->keys[t->n]);
   dj_buf_append (&t->keys[t->n], k->data, k->len);
   t->slots[h] = ++t->n;
   *added = true;
   return t->n - 1;
}

void
dj_ktable_free (ktable_t *t)
{
   dj_bufs_free (t->keys, t->n);
   bson_free (t->slots);
}

group_t *
dj_gtable_get (gtable_t *t, const bson_value_t *id, int naccs, const dj_acc_t *accs)
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
   DJ_GROW (t->g, i, t->cap, 16);
   group_t *g = &t->g[i];
   if (id->value_type == BSON_TYPE_EOD) {
      g->id.value_type = BSON_TYPE_NULL;
   } else {
      bson_value_copy (id, &g->id);
   }
   g->st = bson_malloc0 (sizeof (dj_accst_t) * (size_t) (naccs ? naccs : 1));
   for (int a = 0; a < naccs; a++) {
      dj_accst_init (&g->st[a], &accs[a]);
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

/* One document (ev) into a group's accumulator states st (one per s->accs);
 * *bytes (NULL: not counted) grows by what collecting accumulators keep. */
bool
dj_agg_accumulate (rctx_t *r, const stage_t *s, dj_accst_t *st, dj_eval_t *ev, size_t *bytes)
{
   for (int a = 0; a < s->naccs; a++) {
      bson_value_t v = {.value_type = BSON_TYPE_EOD};
      if (s->accs[a].expr && !dj_expr_eval (s->accs[a].expr, ev, &v)) {
         return false;
      }
      if (!dj_acc_step (&st[a], &v, r->error)) {
         return false;
      }
      if (bytes && dj_acc_collects (s->accs[a].op)) {
         *bytes += 16 + (v.value_type == BSON_TYPE_UTF8 ? v.value.v_utf8.len
                                                          : (v.value_type == BSON_TYPE_DOCUMENT || v.value_type == BSON_TYPE_ARRAY) ? v.value.v_doc.data_len : 8);
      }
   }
   return true;
}

/* doc's group key: ev set up for doc (the accumulators evaluate in it too)
 * and the stage's _id (or groupBy) expression evaluated into *key. */
static bool
group_key (rctx_t *r, const stage_t *s, const bson_t *doc, dj_eval_t *ev, bson_value_t *key)
{
   dj_agg_eval_setup (r, ev, doc);
   return dj_expr_eval (s->expr, ev, key);
}

/* One output document: {_id: id, each accumulator's field: its result}. */
void
dj_agg_group_output (dj_docs_t *docs, const bson_value_t *id, const stage_t *s, const dj_accst_t *st)
{
   bson_t *out = bson_new ();
   BSON_APPEND_VALUE (out, "_id", id);
   for (int a = 0; a < s->naccs; a++) {
      dj_acc_result (&st[a], s->accs[a].field, out);
   }
   dj_docs_push (docs, out);
}

bool
dj_agg_run_group (rctx_t *r, const stage_t *s, dj_docs_t *docs)
{
   gtable_t t = {0};
   bool ok = true, spill = false;
   int64_t limit = dj_engine_param (r->run->engine, DJ_PARAM_GROUP_BYTES);

   for (size_t i = 0; ok && !spill && i < docs->n; i++) {
      dj_eval_t ev;
      bson_value_t id;
      ok = group_key (r, s, docs->v[i], &ev, &id);
      if (ok) {
         group_t *g = dj_gtable_get (&t, &id, s->naccs, s->accs);
         ok = dj_agg_accumulate (r, s, g->st, &ev, &t.bytes) && dj_agg_check_memory (r, t.bytes, "$group");
         spill = ok && (int64_t) t.bytes > limit; /* allowDiskUse: grouped again by sorted keys (spill.c) */
      }
      dj_arena_reset (r->arena);
   }
   if (spill) {
      dj_gtable_free (&t, s->naccs);
      return dj_agg_group_spill (r, s, docs);
   }
   if (ok) {
      dj_docs_clear (docs);
      for (size_t i = 0; i < t.kt.n; i++) {
         dj_agg_group_output (docs, &t.g[i].id, s, t.g[i].st);
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
   int nb = (int) bson_count_keys (s->boundaries);
   bson_value_t *b = bson_malloc (sizeof (bson_value_t) * (size_t) nb);
   nb = 0;
   bson_iter_init (&it, s->boundaries);
   while (bson_iter_next (&it)) {
      b[nb++] = *bson_iter_value (&it);
   }
   /* one accumulator set per bucket plus the default bucket */
   dj_accst_t *st = bson_malloc0 (sizeof (dj_accst_t) * (size_t) (nb * s->naccs + s->naccs));
   bool *used = bson_malloc0 (sizeof (bool) * (size_t) nb);
   for (int i = 0; i < nb * s->naccs + s->naccs; i++) {
      dj_accst_init (&st[i], &s->accs[i % s->naccs]);
   }
   bool ok = true;
   for (size_t i = 0; ok && i < docs->n; i++) {
      dj_eval_t ev;
      bson_value_t g;
      ok = group_key (r, s, docs->v[i], &ev, &g);
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
      ok = dj_agg_accumulate (r, s, st + base, &ev, NULL);
      dj_arena_reset (r->arena);
   }
   if (ok) {
      bool default_used = false;
      for (int i = 0; i < s->naccs; i++) {
         default_used |= st[nb * s->naccs + i].have || st[nb * s->naccs + i].count || st[nb * s->naccs + i].arr;
      }
      dj_docs_clear (docs);
      for (int k = 0; k + 1 < nb; k++) {
         if (used[k]) {
            dj_agg_group_output (docs, &b[k], s, st + k * s->naccs);
         }
      }
      if (default_used) {
         dj_agg_group_output (docs, &s->dflt, s, st + nb * s->naccs);
      }
   }
   for (int i = 0; i < nb * s->naccs + s->naccs; i++) {
      dj_accst_cleanup (&st[i]);
   }
   DJ_FREE (st, used, b);
   return ok;
}

