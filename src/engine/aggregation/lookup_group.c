/*
 * lookup_group.c -- a $lookup whose pipeline starts with a $group on a
 * constant _id, grouped on the foreign side first.
 *
 * That is the shape of an aggregate over a LEFT JOIN (Django's
 * annotate(Count("book"))): for each local document, $lookup finds the
 * foreign documents whose foreignField equals its localField and the $group
 * folds them into one document. Run as written, every foreign document is
 * read (or probed for) and copied once per local document that matches it,
 * then folded. Here the foreign collection is read once, in its natural
 * order -- the order the matches of either join come in, so accumulators
 * that depend on order ($first, $push, a floating-point $sum) see the same
 * sequence -- and each document is folded straight into the group of each
 * value it is found by (dj_agg_join_keys: as the hash join indexes it). A
 * local document then takes the group of its value: exactly what the
 * $group would output on its matches, or nothing when nothing matched.
 *
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/lookup/#equality-match-with-a-single-join-condition
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/group/
 *
 * Memory: the groups live in the dj_pregroup_t (dj_agg_pregroup_free);
 * their bytes count against $group's limit as in dj_agg_run_group.
 */
#include "agg-private.h"

/* The value a local document joins by: its one scalar at localField, or
 * null when nothing is there. False when it has several values, an array
 * or a regex (each of which a grouped value cannot stand for). */
static bool
local_key (const bson_t *doc, const dj_path_t *lp, dj_vlist_t *vals, bson_value_t *key)
{
   size_t visited = dj_agg_local_values (doc, lp, vals);
   if (!visited) {
      key->value_type = BSON_TYPE_NULL;
      return true;
   }
   if (visited != 1 || vals->n != 1 || vals->v[0].value_type == BSON_TYPE_ARRAY) {
      return false;
   }
   *key = vals->v[0];
   return true;
}

/* Whether grouping every foreign document costs less than probing the
 * index for the local values: they match at least a quarter of the
 * collection (both counted from index keys). keys: the local values. */
static bool
worth_reading_all (rctx_t *r, const stage_t *s, dj_coll_t *probe, const dj_vlist_t *keys, bool with_null, bool *ok)
{
   bson_t q = BSON_INITIALIZER;
   dj_agg_in_query (&q, s->foreign, keys, with_null);
   dj_matcher_t *m = dj_matcher_new (&q, r->error);
   bson_destroy (&q);
   int64_t matched = 0;
   *ok = m && dj_plan_count (r->run->ctx, probe, m, NULL, &matched, r->error);
   dj_matcher_destroy (m);
   if (!*ok) {
      return false;
   }
   int64_t total = dj_plan_count_upto (r->run->ctx, probe, INT64_MAX, r->error);
   return total >= 0 && matched >= total / 4;
}

typedef struct {
   rctx_t *r;
   const stage_t *g; /* the $group */
   const dj_path_t *fp;
   dj_pregroup_t *pg;
   dj_vlist_t vals;
   group_t **seen; /* this document's groups so far (it folds into each once) */
   size_t nseen, cap;
   bool ok;
} fold_t;

static void
fold_key (const bson_value_t *v, void *ctx)
{
   fold_t *f = ctx;
   group_t *grp = dj_gtable_get (&f->pg->t, v, f->g->naccs, f->g->accs);
   for (size_t i = 0; i < f->nseen; i++) {
      if (f->seen[i] == grp) {
         return; /* [1, 1] and 1 in [1]: one match */
      }
   }
   DJ_GROW (f->seen, f->nseen, f->cap, 4);
   f->seen[f->nseen++] = grp;
}

static bool
fold_fn (uint64_t rid, const bson_t *doc, int32_t pos, void *ctx)
{
   fold_t *f = ctx;
   (void) rid;
   (void) pos;
   f->nseen = 0;
   dj_agg_join_keys (doc, f->fp, &f->vals, fold_key, f);
   for (size_t i = 0; f->ok && i < f->nseen; i++) {
      dj_eval_t ev;
      dj_agg_eval_setup (f->r, &ev, doc);
      f->ok = dj_agg_accumulate (f->r, f->g, f->seen[i]->st, &ev, &f->pg->t.bytes) &&
              dj_agg_check_memory (f->r, f->pg->t.bytes, "$group");
      dj_arena_reset (f->r->arena);
   }
   return f->ok;
}

/* A $group that only counts, over a foreignField an index answers: each
 * local value's documents counted from the index's entries (no document
 * read) instead of the foreign documents folded. False (and pg->covered
 * false) when that index is not there. */
static bool
count_from_index (rctx_t *r, const stage_t *s, const dj_docs_t *docs, const dj_path_t *lp, dj_pregroup_t *pg, bool *ok)
{
   bson_error_t le = {0};
   *ok = true;
   if (!dj_agg_counts_only (&s->sub->stages[0]) || s->sub->stages[0].kind != S_GROUP) {
      return false;
   }
   pg->fc = dj_coll_load (r->run->ctx, r->run->db, s->str2, &le);
   if (!pg->fc || (pg->ix = dj_keycount_index (pg->fc, s->foreign)) < 0) {
      return false; /* missing (reads as empty) or failing (the fold reports it), or no such index */
   }
   dj_vlist_t vals = {0};
   dj_buf_t kb;
   dj_buf_init (&kb);
   bool usable = true;
   for (size_t i = 0; usable && *ok && i < docs->n; i++) {
      bson_value_t k;
      bool added;
      usable = local_key (docs->v[i], lp, &vals, &k) &&
               dj_keycount_value_key (pg->fc, pg->ix, s->foreign, &k, &kb, &le);
      if (usable && dj_ktable_index (&pg->kk, &kb, false, &added) == SIZE_MAX) {
         size_t at = dj_ktable_index (&pg->kk, &kb, true, &added);
         DJ_GROW (pg->counts, at, pg->ccap, 64);
         *ok = dj_keycount_count (r->run->ctx, pg->fc, pg->ix, &kb, &pg->counts[at], r->error);
      }
   }
   dj_buf_cleanup (&kb);
   bson_free (vals.v);
   pg->covered = usable && *ok;
   return pg->covered;
}

bool
dj_agg_pregroup_build (rctx_t *r, const stage_t *s, const dj_docs_t *docs, const dj_path_t *lp, const dj_path_t *fp,
                       dj_coll_t *probe, dj_pregroup_t *pg)
{
   pg->on = false;
   if (!s->local || !s->str2 || s->nlet || !s->sub || s->sub->n < 1 || s->sub->stages[0].kind != S_GROUP ||
       !s->sub->stages[0].expr || !dj_expr_is_const (s->sub->stages[0].expr, &pg->id)) {
      return true;
   }
   const stage_t *g = &s->sub->stages[0];
   dj_vlist_t vals = {0}, keys = {0};
   bool usable = true, with_null = false, ok = true;
   for (size_t i = 0; usable && i < docs->n; i++) {
      bson_value_t k;
      usable = local_key (docs->v[i], lp, &vals, &k);
      if (usable && k.value_type == BSON_TYPE_NULL) {
         with_null = true;
      } else if (usable) {
         dj_vlist_push (&k, &keys); /* borrows docs->v[i]'s bytes, alive meanwhile */
      }
   }
   if (usable && docs->n && (count_from_index (r, s, docs, lp, pg, &ok) || !ok)) {
      pg->on = ok;
      usable = false; /* counted: no fold */
   } else if (usable && docs->n && probe) {
      usable = worth_reading_all (r, s, probe, &keys, with_null, &ok);
   }
   bson_free (vals.v);
   bson_free (keys.v);
   if (!ok || !usable || !docs->n) {
      return ok;
   }
   fold_t f = {.r = r, .g = g, .fp = fp, .pg = pg, .ok = true};
   ok = dj_agg_scan_collection (r->run, r->run->db, s->str2, NULL, NULL, fold_fn, &f, r->error) && f.ok;
   bson_free (f.vals.v);
   bson_free (f.seen);
   pg->on = ok;
   return ok;
}

void
dj_agg_pregroup_matches (dj_pregroup_t *pg, const stage_t *s, const bson_t *doc, const dj_path_t *lp,
                         dj_vlist_t *vals, dj_docs_t *matches)
{
   bson_value_t k;
   if (!local_key (doc, lp, vals, &k)) {
      return; /* dj_agg_pregroup_build saw every local document usable */
   }
   dj_buf_t kb;
   bool added;
   dj_buf_init (&kb);
   if (pg->covered) {
      bson_error_t ignored;
      const stage_t *g = &s->sub->stages[0];
      size_t i = dj_keycount_value_key (pg->fc, pg->ix, s->foreign, &k, &kb, &ignored)
                    ? dj_ktable_index (&pg->kk, &kb, false, &added)
                    : SIZE_MAX;
      dj_buf_cleanup (&kb);
      if (i == SIZE_MAX || !pg->counts[i]) {
         return; /* no foreign document holds it: $group outputs nothing */
      }
      /* what the $group would make of counts[i] documents: each
       * accumulator ($count, {$sum: 1}) stepped once per document */
      dj_accst_t *st = bson_malloc0 (sizeof (dj_accst_t) * (size_t) g->naccs);
      for (int a = 0; a < g->naccs; a++) {
         bson_value_t v = {.value_type = BSON_TYPE_EOD};
         st[a].op = g->accs[a].op;
         if (g->accs[a].expr) {
            dj_expr_is_const (g->accs[a].expr, &v);
         }
         for (int64_t n = 0; n < pg->counts[i]; n++) {
            dj_acc_step (&st[a], &v, &ignored);
         }
      }
      dj_agg_group_output (matches, &pg->id, g, st);
      for (int a = 0; a < g->naccs; a++) {
         dj_accst_cleanup (&st[a]);
      }
      bson_free (st);
      return;
   }
   dj_key_append_collated (&kb, &k);
   size_t i = dj_ktable_index (&pg->t.kt, &kb, false, &added);
   dj_buf_cleanup (&kb);
   if (i != SIZE_MAX) {
      dj_agg_group_output (matches, &pg->id, &s->sub->stages[0], pg->t.g[i].st);
   }
}

void
dj_agg_pregroup_free (dj_pregroup_t *pg, const stage_t *s)
{
   if (s->sub && s->sub->n >= 1) {
      dj_gtable_free (&pg->t, s->sub->stages[0].naccs);
   }
   dj_ktable_free (&pg->kk);
   bson_free (pg->counts);
   dj_coll_free (pg->fc);
}
