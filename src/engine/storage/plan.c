/*
 * plan.c -- choosing how to find the documents a filter matches.
 *
 * The choice is simple and always safe: an index whose first field has an
 * equality ($eq, $in) or a range ($gt/$gte/$lt/$lte) among the filter's
 * top-level conjuncts narrows the scan; every candidate is then checked
 * against the whole filter, so an index only ever removes work, never
 * changes results. Equality beats range; unique beats non-unique.
 *
 * Ranges stay within the bound's type bracket, as MongoDB's comparisons do
 * ({$gt: 5} never matches a string), and on a multikey index only one side
 * of a range is used: {a: {$gt: 1, $lt: 5}} matches a: [0, 10] (each bound
 * is met by some element), which an intersected scan would miss.
 * https://www.mongodb.com/docs/manual/core/multikey-index-bounds/
 *
 * A hashed first field (its keys are values' hashes, values/hash.c) answers
 * equality and $in only -- each point looked up by its hash, the documents
 * rechecked since hashes collide -- never a range or a sort.
 * https://www.mongodb.com/docs/manual/core/indexes/index-types/index-hashed/
 */
#include "storage-private.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- a set of record ids (open addressing) -------------------------------- */
typedef struct {
   uint64_t *slots; /* 0 = empty; record ids start at 1 */
   size_t cap, n;
} ridset_t;

static bool
ridset_add (ridset_t *s, uint64_t rid)
{
   if ((s->n + 1) * 2 > s->cap) {
      size_t ncap = s->cap ? s->cap * 2 : 64;
      uint64_t *ns = bson_malloc0 (sizeof (uint64_t) * ncap);
      for (size_t i = 0; i < s->cap; i++) {
         if (s->slots[i]) {
            size_t h = (size_t) (s->slots[i] * 0x9E3779B97F4A7C15ull) & (ncap - 1);
            while (ns[h]) {
               h = (h + 1) & (ncap - 1);
            }
            ns[h] = s->slots[i];
         }
      }
      bson_free (s->slots);
      s->slots = ns;
      s->cap = ncap;
   }
   size_t h = (size_t) (rid * 0x9E3779B97F4A7C15ull) & (s->cap - 1);
   while (s->slots[h]) {
      if (s->slots[h] == rid) {
         return false;
      }
      h = (h + 1) & (s->cap - 1);
   }
   s->slots[h] = rid;
   s->n++;
   return true;
}

/* ---- the scan state ---------------------------------------------------------- */
typedef struct {
   dj_ctx_t *ctx;
   dj_coll_t *c;
   const dj_matcher_t *m;
   bool writes;
   int64_t max, found;
   dj_scan_fn fn;
   void *fnctx;
   bool stop;
   ridset_t seen;
   bool dedupe;
   uint64_t *rids; /* writes: collected (rid, pos) pairs */
   int32_t *poss;
   size_t nrids;
   bson_error_t *error;
   bool failed;
   const dj_eval_t *vars; /* $expr variables, may be NULL */
   bool count_only; /* the entries in range are the matches: count them, fetch nothing */
   bool covered;    /* the entries in range are the matches: fetch them, match nothing */
   /* index entries in range: their record ids into rids, read later
    * (fetch_in_order) or handed over as they are (dj_plan_match_rids) */
   bool rids_only;
   size_t ridcap;
} scan_t;

/* Considers one record; returns false to stop the scan. */
static bool
consider (scan_t *s, uint64_t rid, const bson_t *doc)
{
   int32_t pos;

   if (s->dedupe && !ridset_add (&s->seen, rid)) {
      return true;
   }
   bson_error_t xe = {0};
   if (s->covered) {
      pos = -1; /* one scalar per document at the path: no array for $ to point into */
   } else if (s->m && dj_matcher_is_empty (s->m)) {
      pos = -1; /* {}: every record, as the matcher would say, without asking it */
   } else if (!dj_matcher_match_ex (s->m, doc, &pos, s->vars, &xe)) {
      if (xe.code) { /* an $expr failed: the query fails */
         *s->error = xe;
         s->failed = true;
         return false;
      }
      return true;
   }
   s->found++;
   if (s->writes) {
      s->rids = bson_realloc (s->rids, sizeof (uint64_t) * (s->nrids + 1));
      s->poss = bson_realloc (s->poss, sizeof (int32_t) * (s->nrids + 1));
      s->rids[s->nrids] = rid;
      s->poss[s->nrids++] = pos;
   } else if (!s->fn (rid, doc, pos, s->fnctx)) {
      s->stop = true;
      return false;
   }
   if (s->max && s->found >= s->max) {
      s->stop = true;
      return false;
   }
   return true;
}

/* ---- one iterator over the data DBI ------------------------------------------
 * A collection's records and an index's entries are both key ranges of the
 * data DBI behind an 8-byte id prefix (store.c's header comment). range_t
 * describes one such walk -- forward or backward, optionally bounded -- and
 * scan_range() is the one loop over LMDB that serves the collection scan,
 * the bounded index scan and the ordered index walk. */
typedef struct {
   uint64_t id;          /* the collection's or the index's key prefix */
   const dj_index_t *ix; /* NULL: the collection's records (key: id + record id) */
   int dir;              /* 1: key order, -1: reverse key order */
   /* Bounds on the key after the prefix (forward walks of an index only):
    * start at lo; lo_skip skips entries starting with lo (an exclusive lower
    * bound); stop past hi (NULL: the end of the index), entries starting
    * with hi being inside when hi_prefix_incl. */
   const dj_buf_t *lo, *hi;
   bool lo_skip, hi_prefix_incl;
   uint64_t rid_end; /* records: stop at this record id (0: none) */
   const char *what; /* for LMDB errors */
} range_t;

/* Whether an index key (after the prefix) lies past r's upper bound. */
static bool
past_hi (const range_t *r, const uint8_t *key, size_t klen)
{
   size_t n = klen < r->hi->len ? klen : r->hi->len;
   int c = memcmp (key, r->hi->data, n);
   return c > 0 || (c == 0 && klen >= r->hi->len && !r->hi_prefix_incl);
}

static bool
scan_range (scan_t *s, const range_t *r)
{
   dj_walk_t w;
   dj_buf_t p;
   range_t keyed;
   uint8_t from_key[8], end_key[8];
   dj_buf_t from_buf = {.data = from_key, .len = 8}, end_buf = {.data = end_key, .len = 8};

   if (r->ix && r->ix->rid_keyed) {
      /* a record-keyed index's entries are the records: its bounds as
       * record ids (ridkey.c) */
      uint64_t from, end;
      dj_ridkey_bounds (r->ix, r->lo, r->lo_skip, r->hi, r->hi_prefix_incl, &from, &end);
      if (from >= end) {
         return true;
      }
      dj_u64be_write (from_key, from);
      dj_u64be_write (end_key, end);
      keyed = (range_t) {.id = s->c->id, .dir = r->dir, .lo = r->dir > 0 ? &from_buf : NULL, .rid_end = end, .what = r->what};
      r = &keyed;
   }
   if ((r->ix || r == &keyed) && s->count_only && !s->dedupe && !s->max && r->dir > 0) {
      /* keys alone: count_range.c (a record-keyed index's: its records'
       * keys, the collection's prefix and the ids [from, end)) */
      int64_t n = 0;
      dj_count_range_t cr = {.id = r->id, .lo = r->lo, .hi = r->ix ? r->hi : &end_buf, .lo_skip = r->lo_skip,
                             .hi_incl = r->ix && r->hi_prefix_incl};
      bool ok = dj_count_range (s->ctx, &cr, &n, s->error);
      s->found += n;
      return ok;
   }
   dj_buf_init (&p);
   dj_buf_put_u64be (&p, r->id);
   if (!dj_walk_open (&w, s->ctx, s->ctx->engine->dbi_data, p.data, p.len, r->dir, s->error)) {
      dj_buf_cleanup (&p);
      return false;
   }
   if (r->lo) { /* the key after the prefix starts at lo */
      dj_buf_append (&p, r->lo->data, r->lo->len);
      dj_walk_seek (&w, p.data, p.len);
   }
   dj_buf_cleanup (&p);
   while (dj_walk_next (&w)) {
      const uint8_t *kd = w.k.mv_data;
      uint64_t rid;
      bson_t doc;
      if (!r->ix) {
         if (w.k.mv_size != 16) {
            break;
         }
         rid = dj_u64be_read (kd + 8);
         if ((r->rid_end && rid >= r->rid_end && r->dir > 0) || (s->count_only && s->max && s->found >= s->max)) {
            break;
         }
      } else {
         const uint8_t *key = kd + 8;
         size_t klen = w.k.mv_size - 8;
         if (r->lo_skip && klen >= r->lo->len && !memcmp (key, r->lo->data, r->lo->len)) {
            continue;
         }
         if (r->hi && past_hi (r, key, klen)) {
            break;
         }
         rid = r->ix->unique ? dj_u64be_read (w.v.mv_data) : dj_u64be_read (kd + w.k.mv_size - 8);
      }
      if (s->rids_only) {
         /* (a multikey entry or an $in point met again: once; max counts records) */
         if (!s->dedupe || ridset_add (&s->seen, rid)) {
            DJ_GROW (s->rids, s->nrids, s->ridcap, 256);
            s->rids[s->nrids++] = rid;
            if (s->max && (int64_t) s->nrids >= s->max) {
               s->stop = true;
               break;
            }
         }
         continue;
      }
      if (s->count_only) {
         s->found += !s->dedupe || ridset_add (&s->seen, rid);
         continue;
      }
      if (!r->ix) {
         if (!bson_init_static (&doc, w.v.mv_data, w.v.mv_size)) {
            w.rc = MDB_CORRUPTED;
            break;
         }
      } else if (!dj_record_get (s->ctx, s->c, rid, &doc, s->error)) {
         s->failed = true;
         break;
      }
      if (!consider (s, rid, &doc)) {
         break;
      }
   }
   if (s->failed) { /* the error is the record's, already set */
      bson_error_t ignored;
      dj_walk_close (&w, r->what, &ignored);
      return false;
   }
   return dj_walk_close (&w, r->what, s->error);
}

static bool
scan_collection (scan_t *s)
{
   range_t r = {.id = s->c->id, .dir = 1, .what = "collection scan"};
   return scan_range (s, &r);
}

/* Visits index entries with keys in [lo, hi) (see range_t). */
static bool
scan_index (scan_t *s, const dj_index_t *ix, const dj_buf_t *lo, bool lo_skip, const dj_buf_t *hi, bool hi_prefix_incl)
{
   range_t r = {.id = ix->id, .ix = ix, .dir = 1, .lo = lo, .lo_skip = lo_skip, .hi = hi, .hi_prefix_incl = hi_prefix_incl,
                .what = "index scan"};
   return scan_range (s, &r);
}

typedef struct {
   int index; /* -1: collection scan */
   dj_bounds_t b;
} choice_t;

static const char *
first_field (const dj_index_t *ix)
{
   bson_iter_t it;
   if (bson_iter_init (&it, ix->key) && bson_iter_next (&it)) {
      return bson_iter_key (&it);
   }
   return "";
}

/* Appends the key of equality point v on ix's first field: the value's
 * hash when that field is hashed. */
static void
point_key (dj_buf_t *k, const dj_index_t *ix, const bson_value_t *v)
{
   if (ix->hashed == 1) {
      bson_value_t h = {.value_type = BSON_TYPE_INT64};
      h.value.v_int64 = dj_value_hash64 (v);
      dj_key_append (k, &h, false);
   } else {
      dj_key_append (k, v, ix->desc[0]);
   }
}

static bool
point_usable (const dj_index_t *ix, const bson_value_t *v)
{
   dj_buf_t k;
   bool ok;

   if (ix->sparse && v->value_type == BSON_TYPE_NULL) {
      return false; /* a sparse index has no entry for missing fields */
   }
   if (ix->hashed == 1 && (v->value_type == BSON_TYPE_ARRAY || v->value_type == BSON_TYPE_REGEX)) {
      return false; /* no document holds an array there; a regex is no point */
   }
   dj_buf_init (&k);
   point_key (&k, ix, v);
   ok = k.len < DJ_KEY_MAX - 24; /* never cut: prefix lookups stay exact */
   dj_buf_cleanup (&k);
   return ok;
}

static choice_t
choose (dj_coll_t *c, const dj_matcher_t *m)
{
   choice_t best = {.index = -1};
   int best_score = 0;

   if (dj_collation_current ()) {
      return best; /* indexes hold binary keys: no bounds under a collation */
   }

   for (int i = 0; i < c->nindexes; i++) {
      const dj_index_t *ix = &c->indexes[i];
      dj_bounds_t b;
      int score = 0;
      if (ix->hidden || ix->geo || ix->text || ix->collation || (ix->partial && !dj_matcher_implies (m, ix->partial))) {
         /* a partial index misses what its filter does not match (query/implies.c); an index
          * with a collation keys strings otherwise than a query without one compares them;
          * geo: keyed by cells, and sparse (geo_index.c); text: only $text reads it (text_scan.c) */
         continue;
      }
      if (!dj_matcher_bounds (m, first_field (ix), &b)) {
         continue;
      }
      if (b.kind == DJ_BOUND_EQ) {
         bool ok = true;
         for (int p = 0; p < b.npoints && ok; p++) {
            ok = point_usable (ix, &b.points[p]);
         }
         if (!ok) {
            continue;
         }
         score = 10 + (ix->unique ? 5 : 0) + (ix->npaths == 1 ? 1 : 0);
         if (ix->hashed == 1) {
            b.exact = false; /* hashes collide: only the documents tell */
         }
      } else {
         if (ix->desc[0] || ix->sparse || ix->hashed == 1) {
            continue;
         }
         if ((b.lo && !point_usable (ix, b.lo)) || (b.hi && !point_usable (ix, b.hi))) {
            continue;
         }
         if (ix->multikey && b.lo && b.hi) {
            b.hi = NULL;
         }
         score = 5 + (b.lo && b.hi ? 1 : 0);
      }
      if (score > best_score) {
         best_score = score;
         best.index = i;
         best.b = b;
      }
   }
   return best;
}


/* Whether the entries of ch's index within its bounds are exactly the
 * filter's matches: each document has one entry (no arrays, every document
 * indexed, no key cut) and the bounds are the whole filter, compared as the
 * matcher compares (dj_bounds_t.exact). */
static bool
covered (const dj_coll_t *c, const choice_t *ch)
{
   const dj_index_t *ix = ch->index >= 0 ? &c->indexes[ch->index] : NULL;
   return ix && ch->b.exact && !ix->multikey && !ix->sparse && !ix->partial && !ix->lossy;
}

static bool
run_choice (scan_t *s, const choice_t *ch)
{
   const dj_index_t *ix = &s->c->indexes[ch->index];
   dj_buf_t lo, hi;
   bool ok = true;

   dj_buf_init (&lo);
   dj_buf_init (&hi);
   if (ch->b.kind == DJ_BOUND_EQ) {
      s->dedupe = ch->b.npoints > 1 || ix->multikey;
      for (int p = 0; p < ch->b.npoints && ok && !s->stop; p++) {
         lo.len = 0;
         point_key (&lo, ix, &ch->b.points[p]);
         ok = scan_index (s, ix, &lo, false, &lo, true);
      }
   } else {
      s->dedupe = ix->multikey;
      const bson_value_t *any = ch->b.lo ? ch->b.lo : ch->b.hi;
      dj_buf_t bracket;
      dj_buf_init (&bracket);
      dj_key_append (&bracket, any, false);
      uint8_t first = bracket.data[0];
      uint8_t end = (uint8_t) ((first & 0xF8) == 0x50 ? 0x52 : first + 1); /* bool: false|true share a bracket */
      if ((first & 0xF8) == 0x50) {
         first = 0x50;
      }
      dj_buf_cleanup (&bracket);
      if (ch->b.lo) {
         dj_key_append (&lo, ch->b.lo, false);
      } else {
         dj_buf_putc (&lo, first);
         if (first == 0x20 && !(ch->b.hi->value_type == BSON_TYPE_DOUBLE && isnan (ch->b.hi->value.v_double))) {
            /* NaN's key (0x20 0x00) sorts below every number, but no
             * comparison with a number matches NaN ({$lt: 5} does not):
             * start at the first number proper (values/keyenc.c) */
            dj_buf_putc (&lo, 0x01);
         }
      }
      if (ch->b.hi) {
         dj_key_append (&hi, ch->b.hi, false);
      } else {
         dj_buf_putc (&hi, end);
      }
      ok = scan_index (s, ix, &lo, ch->b.lo && !ch->b.lo_incl, &hi, ch->b.hi ? ch->b.hi_incl : false);
   }
   dj_buf_cleanup (&lo);
   dj_buf_cleanup (&hi);
   return ok;
}

/* Walks index ix in key order (dir 1) or reverse key order (dir -1). */
static bool
walk_index (scan_t *s, const dj_index_t *ix, int dir)
{
   range_t r = {.id = ix->id, .ix = ix, .dir = dir, .what = "index scan"};
   return scan_range (s, &r);
}

static int
sorted_index (dj_coll_t *c, const dj_matcher_t *m, const dj_sort_t *sort, int *dir);

static void
append_ixscan (bson_t *plan, const dj_index_t *ix, int dir)
{
   bson_t in;
   BSON_APPEND_UTF8 (plan, "stage", "FETCH");
   BSON_APPEND_DOCUMENT_BEGIN (plan, "inputStage", &in);
   BSON_APPEND_UTF8 (&in, "stage", "IXSCAN");
   BSON_APPEND_DOCUMENT (&in, "keyPattern", ix->key);
   BSON_APPEND_UTF8 (&in, "indexName", ix->name);
   BSON_APPEND_BOOL (&in, "isMultiKey", ix->multikey);
   BSON_APPEND_BOOL (&in, "isUnique", ix->unique);
   BSON_APPEND_BOOL (&in, "isSparse", ix->sparse);
   BSON_APPEND_BOOL (&in, "isPartial", ix->partial != NULL);
   BSON_APPEND_UTF8 (&in, "direction", dir > 0 ? "forward" : "backward");
   bson_append_document_end (plan, &in);
}

void
dj_plan_explain (dj_coll_t *c, const dj_matcher_t *m, const dj_sort_t *sort, int hint, bson_t *plan)
{
   int dir = 1;
   bool near;
   int gi = c && hint == -1 ? dj_geo_plan_index (c, m, &near) : -1;
   if (gi >= 0 && near) {
      /* mongod's near plans: GEO_NEAR_2DSPHERE / GEO_NEAR_2D (geo_index.c) */
      BSON_APPEND_UTF8 (plan, "stage", c->indexes[gi].geo_flat ? "GEO_NEAR_2D" : "GEO_NEAR_2DSPHERE");
      BSON_APPEND_DOCUMENT (plan, "keyPattern", c->indexes[gi].key);
      BSON_APPEND_UTF8 (plan, "indexName", c->indexes[gi].name);
      return;
   }
   if (gi >= 0) {
      append_ixscan (plan, &c->indexes[gi], 1);
      return;
   }
   if (sort && c && hint == -1) {
      int i = sorted_index (c, m, sort, &dir);
      if (i >= 0) {
         append_ixscan (plan, &c->indexes[i], dir);
         return;
      }
   }
   bson_t inner, *target = plan;
   if (sort) {
      BSON_APPEND_UTF8 (plan, "stage", "SORT");
      BSON_APPEND_DOCUMENT_BEGIN (plan, "inputStage", &inner);
      target = &inner;
   }
   choice_t ch = c && hint == -1 ? choose (c, m) : (choice_t){.index = hint >= 0 ? hint : -1};
   if (c && dj_matcher_text (m) && dj_text_or_explain (c, m, target)) {
      /* under an $or: the union (text_or.c) */
   } else if (c && dj_matcher_text (m)) { /* mongod's TEXT_MATCH, FETCH, TEXT_OR, IXSCAN of the text index */
      bson_t fetch, or, ixscan;
      ch.index = dj_plan_index (c, m, NULL);
      BSON_APPEND_UTF8 (target, "stage", "TEXT_MATCH");
      BSON_APPEND_DOCUMENT_BEGIN (target, "inputStage", &fetch);
      BSON_APPEND_UTF8 (&fetch, "stage", "FETCH");
      BSON_APPEND_DOCUMENT_BEGIN (&fetch, "inputStage", &or);
      BSON_APPEND_UTF8 (&or, "stage", "TEXT_OR");
      if (ch.index >= 0) {
         BSON_APPEND_DOCUMENT_BEGIN (&or, "inputStage", &ixscan);
         BSON_APPEND_UTF8 (&ixscan, "stage", "IXSCAN");
         BSON_APPEND_DOCUMENT (&ixscan, "keyPattern", c->indexes[ch.index].key);
         BSON_APPEND_UTF8 (&ixscan, "indexName", c->indexes[ch.index].name);
         bson_append_document_end (&or, &ixscan);
      }
      bson_append_document_end (&fetch, &or);
      bson_append_document_end (target, &fetch);
   } else if (ch.index < 0) {
      BSON_APPEND_UTF8 (target, "stage", c ? "COLLSCAN" : "EOF");
   } else {
      append_ixscan (target, &c->indexes[ch.index], 1);
   }
   if (sort) {
      bson_append_document_end (plan, &inner);
   }
}

bool
dj_plan_scan_sorted (dj_ctx_t *ctx, dj_coll_t *c, const dj_matcher_t *m, const dj_sort_t *sort, int64_t max, dj_scan_fn fn,
                     void *fnctx, bool *used, bson_error_t *error)
{
   int dir;
   int i = sorted_index (c, m, sort, &dir);
   *used = i >= 0;
   if (i < 0) {
      return false;
   }
   scan_t s = {.ctx = ctx, .c = c, .m = m, .max = max, .fn = fn, .fnctx = fnctx, .error = error};
   return walk_index (&s, &c->indexes[i], dir);
}

/* The index whose walk yields sort's order (and the walk direction), or -1. */
static int
sorted_index (dj_coll_t *c, const dj_matcher_t *m, const dj_sort_t *sort, int *dir)
{
   if (dj_sort_nkeys (sort) != 1 || dj_collation_current () || dj_matcher_geo (m, NULL, true, NULL) || dj_matcher_text (m)) {
      return -1; /* (a near condition or $text: its geo or text index finds the documents) */
   }
   const char *field = dj_sort_key (sort, 0, dir);
   /* an equality on a unique index finds at most one document: no walk needed */
   choice_t ch = choose (c, m);
   if (ch.index >= 0 && ch.b.kind == DJ_BOUND_EQ && c->indexes[ch.index].unique) {
      return -1;
   }
   for (int i = 0; i < c->nindexes; i++) {
      const dj_index_t *ix = &c->indexes[i];
      /* index order equals sort order only when every document has exactly
       * one exact key: arrays (multikey), skipped documents (sparse,
       * partial) and approximate keys (lossy) break that */
      if (ix->multikey || ix->sparse || ix->partial || ix->lossy || ix->hidden || ix->hashed == 1 || ix->geo || ix->text || ix->collation ||
          strcmp (first_field (ix), field)) {
         continue;
      }
      if (ix->desc[0]) {
         *dir = -*dir;
      }
      return i;
   }
   return -1;
}

bool
dj_plan_scan (dj_ctx_t *ctx, dj_coll_t *c, const dj_matcher_t *m, bool writes, int64_t max, dj_scan_fn fn, void *fnctx,
              bson_error_t *error)
{
   return dj_plan_scan_vars (ctx, c, m, NULL, writes, max, fn, fnctx, error);
}

bool
dj_plan_scan_vars (dj_ctx_t *ctx, dj_coll_t *c, const dj_matcher_t *m, const dj_eval_t *vars, bool writes, int64_t max,
                   dj_scan_fn fn, void *fnctx, bson_error_t *error)
{
   if (dj_matcher_text (m)) {
      return dj_text_scan (ctx, c, m, vars, writes, max, fn, fnctx, error);
   }
   bool geo; /* a geo condition answered through a geo index (geo_index.c) */
   if (!dj_geo_plan_scan (ctx, c, m, vars, max, fn, fnctx, &geo, error)) {
      return false;
   }
   if (geo) {
      return true;
   }
   scan_t s = {.ctx = ctx, .c = c, .m = m, .writes = writes, .max = max, .fn = fn, .fnctx = fnctx, .error = error, .vars = vars};
   choice_t ch = choose (c, m);
   s.covered = covered (c, &ch); /* (a range on an indexed field: SQL's WHERE x >= ?) */
   bool ok = ch.index < 0 ? scan_collection (&s) : run_choice (&s, &ch);

   bson_free (s.seen.slots);
   if (ok && writes) {
      for (size_t i = 0; i < s.nrids; i++) {
         bson_t doc;
         if (!dj_record_get (ctx, c, s.rids[i], &doc, error)) {
            ok = false;
            break;
         }
         if (!fn (s.rids[i], &doc, s.poss[i], fnctx)) {
            break;
         }
      }
   }
   bson_free (s.rids);
   bson_free (s.poss);
   return ok;
}

bool
dj_plan_clause_indexed (dj_coll_t *c, const dj_matcher_t *clause)
{
   return choose (c, clause).index >= 0 || dj_geo_plan_index (c, clause, NULL) >= 0;
}

bool
dj_plan_scan_clause (dj_ctx_t *ctx, dj_coll_t *c, const dj_matcher_t *clause, const dj_eval_t *vars, dj_scan_fn fn,
                     void *fnctx, bson_error_t *error)
{
   bool geo;
   choice_t ch = choose (c, clause);
   if (ch.index < 0) {
      return dj_geo_plan_scan (ctx, c, clause, vars, 0, fn, fnctx, &geo, error);
   }
   scan_t s = {.ctx = ctx, .c = c, .m = clause, .fn = fn, .fnctx = fnctx, .error = error, .vars = vars};
   bool ok = run_choice (&s, &ch);
   bson_free (s.seen.slots);
   return ok;
}

/* dj_storage.h: LSD radix, 11 bits a pass (as many passes as the largest
 * id needs). */
void
dj_rids_sort (uint64_t *v, size_t n)
{
   uint64_t max = 0, *a = v, *b = bson_malloc (sizeof (uint64_t) * (n ? n : 1));
   for (size_t i = 0; i < n; i++) {
      max |= v[i];
   }
   for (int shift = 0; shift < 64 && (max >> shift); shift += 11) {
      size_t pos[2048] = {0};
      for (size_t i = 0; i < n; i++) {
         pos[(a[i] >> shift) & 2047]++;
      }
      for (size_t d = 0, at = 0; d < 2048; d++) {
         size_t k = pos[d];
         pos[d] = at;
         at += k;
      }
      for (size_t i = 0; i < n; i++) {
         b[pos[(a[i] >> shift) & 2047]++] = a[i];
      }
      uint64_t *t = a;
      a = b;
      b = t;
   }
   if (a != v) {
      memcpy (v, a, sizeof (uint64_t) * n);
      b = a;
   }
   bson_free (b);
}

/* The records of s->rids (in any order, repeats allowed) read in record
 * order -- neighbours on one LMDB page, not a descent from the root per
 * record -- each considered once. */
static bool
fetch_in_order (scan_t *s)
{
   dj_walk_t w;
   uint8_t key[16];
   dj_u64be_write (key, s->c->id);
   dj_rids_sort (s->rids, s->nrids);
   s->dedupe = false;
   if (!dj_walk_open (&w, s->ctx, s->ctx->engine->dbi_data, key, 8, 1, s->error)) {
      return false;
   }
   uint64_t at = 0; /* the record the cursor is on (0: none yet) */
   bool more = true;
   for (size_t i = 0; more && i < s->nrids; i++) {
      uint64_t rid = s->rids[i];
      bson_t doc;
      if (i && rid == s->rids[i - 1]) {
         continue;
      }
      dj_u64be_write (key + 8, rid);
      if (at && rid > at && rid - at <= 8) {
         /* a near neighbour: step to it (ids are not reused, some may be gone) */
         while ((more = dj_walk_next (&w)) && w.k.mv_size == sizeof key && memcmp (w.k.mv_data, key, sizeof key) < 0) {
         }
      } else {
         dj_walk_seek (&w, key, sizeof key);
         more = dj_walk_next (&w);
      }
      if (!more) {
         break;
      }
      at = w.k.mv_size == sizeof key ? dj_u64be_read ((const uint8_t *) w.k.mv_data + 8) : 0;
      if (at != rid) {
         continue; /* (an index entry without its record: not in one snapshot) */
      }
      if (!bson_init_static (&doc, w.v.mv_data, w.v.mv_size)) {
         w.rc = MDB_CORRUPTED;
         break;
      }
      if (!consider (s, rid, &doc)) {
         break;
      }
   }
   if (s->failed) {
      bson_error_t ignored;
      dj_walk_close (&w, "record fetch", &ignored);
      return false;
   }
   return dj_walk_close (&w, "record fetch", s->error);
}

bool
dj_plan_scan_unordered (dj_ctx_t *ctx, dj_coll_t *c, const dj_matcher_t *m, const dj_eval_t *vars, dj_scan_fn fn,
                        void *fnctx, bson_error_t *error)
{
   /* ($text and geo conditions have scans of their own) */
   choice_t ch = dj_matcher_text (m) || dj_geo_plan_index (c, m, NULL) >= 0 ? (choice_t) {.index = -1} : choose (c, m);
   if (ch.index < 0) {
      return dj_plan_scan_vars (ctx, c, m, vars, false, 0, fn, fnctx, error);
   }
   scan_t s = {.ctx = ctx, .c = c, .m = m, .fn = fn, .fnctx = fnctx, .error = error, .vars = vars, .rids_only = true};
   s.covered = covered (c, &ch);
   bool ok = run_choice (&s, &ch);
   s.rids_only = false;
   ok = ok && fetch_in_order (&s);
   bson_free (s.seen.slots);
   bson_free (s.rids);
   return ok;
}

int64_t
dj_plan_count_upto (dj_ctx_t *ctx, dj_coll_t *c, int64_t max, bson_error_t *error)
{
   scan_t s = {.ctx = ctx, .c = c, .count_only = true, .max = max, .error = error};
   return scan_collection (&s) ? s.found : -1;
}

bool
dj_plan_uses_index (dj_coll_t *c, const dj_matcher_t *m)
{
   choice_t ch = choose (c, m);
   return ch.index >= 0 || dj_matcher_text (m);
}

static bool
count_fn (uint64_t rid, const bson_t *doc, int32_t pos, void *ctx)
{
   (void) rid;
   (void) doc;
   (void) pos;
   (void) ctx;
   return true; /* scan_t.found counts */
}

/* A geo or text filter's matches, counted through its index (geo_index.c,
 * text_scan.c). */
static bool
index_count_fn (uint64_t rid, const bson_t *doc, int32_t pos, void *ctx)
{
   (void) rid;
   (void) doc;
   (void) pos;
   (*(int64_t *) ctx)++;
   return true;
}

static bool
rid_fn (uint64_t rid, const bson_t *doc, int32_t pos, void *ctx)
{
   scan_t *s = ctx;
   (void) doc;
   (void) pos;
   DJ_GROW (s->rids, s->nrids, s->ridcap, 256);
   s->rids[s->nrids++] = rid;
   return true;
}

bool
dj_plan_match_rids (dj_ctx_t *ctx, dj_coll_t *c, const dj_matcher_t *m, const dj_eval_t *vars, int64_t max,
                    uint64_t **rids, size_t *n, bson_error_t *error)
{
   scan_t s = {.ctx = ctx, .c = c, .m = m, .max = max, .error = error, .vars = vars, .fn = rid_fn};
   s.fnctx = &s;
   choice_t ch = {.index = -1};
   bool ok;
   if (dj_matcher_text (m) || dj_matcher_geo (m, NULL, false, NULL) || !covered (c, (ch = choose (c, m), &ch))) {
      /* the documents tell: a scan handing each match's id over as it goes */
      ok = dj_plan_scan_vars (ctx, c, m, vars, false, max, rid_fn, &s, error);
   } else {
      s.rids_only = true;
      ok = run_choice (&s, &ch);
   }
   bson_free (s.seen.slots);
   *rids = s.rids;
   *n = s.nrids;
   return ok;
}

bool
dj_plan_count (dj_ctx_t *ctx, dj_coll_t *c, const dj_matcher_t *m, const dj_eval_t *vars, int64_t *n,
               bson_error_t *error)
{
   scan_t s = {.ctx = ctx, .c = c, .m = m, .fn = count_fn, .error = error, .vars = vars};
   bool ok, geo;
   *n = 0;
   if (dj_matcher_text (m)) {
      return dj_text_scan (ctx, c, m, vars, false, 0, index_count_fn, n, error);
   }
   if (!dj_geo_plan_scan (ctx, c, m, vars, 0, index_count_fn, n, &geo, error)) {
      return false;
   }
   if (geo) {
      return true;
   }
   if (dj_matcher_is_empty (m)) {
      s.count_only = true; /* every record: count the keys, read no document */
      ok = scan_collection (&s);
   } else {
      choice_t ch = choose (c, m);
      s.count_only = covered (c, &ch);
      ok = ch.index >= 0 ? run_choice (&s, &ch) : scan_collection (&s);
   }
   bson_free (s.seen.slots);
   *n = s.found;
   return ok;
}

bool
dj_plan_scan_hinted (dj_ctx_t *ctx, dj_coll_t *c, int index, const dj_buf_t *lo, const dj_buf_t *hi, const dj_matcher_t *m,
                     const dj_eval_t *vars, int64_t max, dj_scan_fn fn, void *fnctx, bson_error_t *error)
{
   if (dj_matcher_text (m)) {
      /* https://www.mongodb.com/docs/manual/core/indexes/index-types/index-text/text-index-restrictions/#text-search-and-hints */
      return dj_err (error, DJ_BadValue, "text and hint not allowed in same query");
   }
   const dj_index_t *ix = index >= 0 ? &c->indexes[index] : NULL;
   scan_t s = {.ctx = ctx, .c = c, .m = m, .max = max, .fn = fn, .fnctx = fnctx, .error = error, .vars = vars,
               .dedupe = ix && ix->multikey};
   range_t r = {.id = ix ? ix->id : c->id, .ix = ix, .dir = 1, .lo = ix ? lo : NULL, .hi = ix ? hi : NULL,
                .what = ix ? "index scan" : "collection scan"};
   bool ok = scan_range (&s, &r);
   bson_free (s.seen.slots);
   return ok;
}

bool
dj_plan_scan_after (dj_ctx_t *ctx, dj_coll_t *c, uint64_t after, const dj_matcher_t *m, dj_scan_fn fn, void *fnctx,
                    bson_error_t *error)
{
   scan_t s = {.ctx = ctx, .c = c, .m = m, .fn = fn, .fnctx = fnctx, .error = error};
   dj_buf_t lo;
   dj_buf_init (&lo);
   dj_buf_put_u64be (&lo, after + 1);
   range_t r = {.id = c->id, .dir = 1, .lo = &lo, .what = "collection scan"};
   bool ok = scan_range (&s, &r);
   dj_buf_cleanup (&lo);
   return ok;
}

int
dj_plan_index (dj_coll_t *c, const dj_matcher_t *m, const dj_sort_t *sort)
{
   int dir, i;
   for (i = 0; dj_matcher_text (m) && i < c->nindexes; i++) {
      if (c->indexes[i].text && !c->indexes[i].hidden) {
         return i;
      }
   }
   if ((i = dj_geo_plan_index (c, m, NULL)) >= 0) {
      return i;
   }
   if (sort && (i = sorted_index (c, m, sort, &dir)) >= 0) {
      return i;
   }
   return choose (c, m).index;
}
