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
   if (usable && docs->n && probe) {
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
}
