/*
 * spill.c -- blocking stages past their memory limit with allowDiskUse:
 * $sort and $group through storage's external merge sort (storage/spill.c).
 *
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/sort/#-sort-and-memory-restrictions
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/group/#-group-and-memory-restrictions
 *
 * $sort: the documents go through the sorter, which keeps what fits the
 * limit (internalQueryMaxBlockingSortMemoryUsageBytes) and writes sorted
 * runs of it to temporary files, then merges them back in order.
 *
 * $group: past internalDocumentSourceGroupMaxMemoryBytes the groups held in
 * memory are dropped and the input is grouped again by sorting it on the
 * group key through the sorter: each group's documents then come together,
 * in their input order (the sort is stable), so each group's accumulators
 * see the same values in the same order as the in-memory $group gives them
 * ($first, $push... unchanged) and only one group's state is held at a
 * time. The groups come out in key order (a $group's order is unspecified).
 */
#include "agg-private.h"

/* The sorter for a stage of r: its limit, the data directory's _tmp. */
static dj_spill_t *
sorter (rctx_t *r, const dj_sort_t *sort, int which)
{
   return dj_spill_new (r->run->engine->path, sort, dj_engine_param (r->run->engine, which));
}

bool
dj_agg_sort_spill (rctx_t *r, const dj_sort_t *sort, dj_docs_t *docs, bool last)
{
   dj_spill_t *sp = sorter (r, sort, DJ_PARAM_SORT_BYTES);
   bool ok = true;
   size_t n = docs->n;
   for (size_t i = 0; i < n; i++) {
      bson_t *doc = docs->v[i];
      docs->v[i] = NULL;
      if (ok) {
         ok = dj_spill_add (sp, doc, r->error); /* steals doc */
      } else {
         bson_destroy (doc);
      }
   }
   docs->n = 0;
   ok = ok && dj_spill_finish (sp, r->error);
   if (ok && last) {
      r->spills += dj_spill_count (sp);
      *r->run->tail = sp; /* the caller's: the merge streams into its cursor */
      return true;
   }
   bson_t *doc;
   while (ok && (doc = dj_spill_next (sp, r->error))) {
      dj_docs_push (docs, doc);
   }
   ok = ok && !r->error->code;
   if (!ok) {
      dj_docs_clear (docs);
   }
   r->spills += dj_spill_count (sp);
   dj_spill_destroy (sp);
   return ok;
}

/* The value a wrapped document ({k: {v: key}, d: doc}) carries at k.v and d. */
static void
unwrap (const bson_t *w, bson_value_t *key, bson_t *doc)
{
   bson_iter_t it, k;
   const uint8_t *data;
   uint32_t len;
   bson_iter_init_find (&it, w, "k");
   bson_iter_recurse (&it, &k);
   bson_iter_next (&k);
   *key = *bson_iter_value (&k);
   bson_iter_next (&it);
   bson_iter_document (&it, &len, &data);
   bson_init_static (doc, data, len);
}

/* The output of the group of key id (st: its states), then fresh states. */
static void
close_group (const stage_t *s, dj_docs_t *out, const bson_value_t *id, dj_accst_t *st)
{
   dj_agg_group_output (out, id, s, st);
   for (int a = 0; a < s->naccs; a++) {
      dj_accst_cleanup (&st[a]);
      dj_accst_init (&st[a], &s->accs[a]);
   }
}

bool
dj_agg_group_spill (rctx_t *r, const stage_t *s, dj_docs_t *docs)
{
   /* sorted on k: the key inside a document, so that an array key compares
    * as a whole (a sort on an array field would compare its least element) */
   bson_t spec = BSON_INITIALIZER;
   BSON_APPEND_INT32 (&spec, "k", 1);
   dj_sort_t *by_key = dj_sort_new (&spec, r->error);
   bson_destroy (&spec);
   if (!by_key) {
      return false;
   }
   dj_spill_t *sp = sorter (r, by_key, DJ_PARAM_GROUP_BYTES);
   bool ok = true;
   for (size_t i = 0; ok && i < docs->n; i++) {
      dj_eval_t ev;
      bson_value_t id;
      dj_agg_eval_setup (r, &ev, docs->v[i]);
      ok = dj_expr_eval (s->expr, &ev, &id);
      if (ok) {
         bson_t *w = bson_new (), k;
         BSON_APPEND_DOCUMENT_BEGIN (w, "k", &k);
         if (id.value_type == BSON_TYPE_EOD) {
            BSON_APPEND_NULL (&k, "v"); /* a missing key groups as null */
         } else {
            BSON_APPEND_VALUE (&k, "v", &id);
         }
         bson_append_document_end (w, &k);
         BSON_APPEND_DOCUMENT (w, "d", docs->v[i]);
         ok = dj_spill_add (sp, w, r->error); /* steals w */
      }
      dj_arena_reset (r->arena);
      bson_destroy (docs->v[i]);
      docs->v[i] = NULL;
   }
   dj_docs_clear (docs);
   ok = ok && dj_spill_finish (sp, r->error);

   dj_accst_t *st = bson_malloc0 (sizeof (dj_accst_t) * (size_t) (s->naccs ? s->naccs : 1));
   for (int a = 0; a < s->naccs; a++) {
      dj_accst_init (&st[a], &s->accs[a]);
   }
   bson_value_t cur = {0}; /* owned: the current group's key */
   bool have = false;
   bson_t *w;
   while (ok && (w = dj_spill_next (sp, r->error))) {
      bson_value_t key;
      bson_t doc;
      dj_eval_t ev;
      unwrap (w, &key, &doc);
      if (have && dj_value_cmp (&cur, &key)) {
         close_group (s, docs, &cur, st);
         bson_value_destroy (&cur);
         have = false;
      }
      if (!have) {
         bson_value_copy (&key, &cur); /* the group's first document's key, as the in-memory $group keeps */
         have = true;
      }
      dj_agg_eval_setup (r, &ev, &doc);
      ok = dj_agg_accumulate (r, s, st, &ev, NULL);
      dj_arena_reset (r->arena);
      bson_destroy (w);
   }
   ok = ok && !r->error->code;
   if (ok && have) {
      dj_agg_group_output (docs, &cur, s, st);
   }
   if (have) {
      bson_value_destroy (&cur);
   }
   for (int a = 0; a < s->naccs; a++) {
      dj_accst_cleanup (&st[a]);
   }
   bson_free (st);
   if (!ok) {
      dj_docs_clear (docs);
   }
   r->spills += dj_spill_count (sp);
   dj_spill_destroy (sp);
   dj_sort_destroy (by_key);
   return ok;
}

typedef struct {
   dj_spill_t *sp;
   bson_error_t *error;
} feed_t;

static bool
feed_fn (uint64_t rid, const bson_t *doc, int32_t pos, void *ctx)
{
   feed_t *f = ctx;
   (void) rid;
   (void) pos;
   return dj_spill_add (f->sp, bson_copy (doc), f->error); /* steals the copy */
}

bool
dj_agg_scan_sorted_tail (const dj_prun_t *run, const dj_pipeline_t *p, int from, const char *coll,
                         const dj_matcher_t *m, bool *used, bson_error_t *error)
{
   /* (without allowDiskUse the $sort stage itself fails with 292, as it must) */
   *used = run->tail && run->tail_of == p && run->allow_disk && from == p->n - 1 && p->stages[from].kind == S_SORT;
   if (!*used) {
      return true;
   }
   feed_t f = {dj_spill_new (run->engine->path, p->stages[from].sort, dj_engine_param (run->engine, DJ_PARAM_SORT_BYTES)),
               error};
   bool ok = dj_agg_scan_collection (run, run->db, coll, m, run->vars, feed_fn, &f, error) && !error->code &&
             dj_spill_finish (f.sp, error);
   if (ok && run->stats && run->stats->top == p) {
      run->stats->spills[from] += dj_spill_count (f.sp);
   }
   if (!ok) {
      dj_spill_destroy (f.sp);
      return false;
   }
   *run->tail = f.sp; /* the caller's */
   return true;
}
