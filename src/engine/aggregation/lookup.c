/*
 * lookup.c -- reading other collections: $lookup, views, and the
 * collection reads $unionWith and $facet's inputs share.
 *
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/lookup/
 *
 * Reads happen in the pipeline's own LMDB transaction, so a pipeline sees
 * one consistent snapshot. An equality $lookup builds a hash table of the
 * foreign side's keys (collated) and probes it per local document.
 */
#include "agg-private.h"

#include "dj_bson_walk.h"

#include <stdlib.h>

/* Copies each document into the dj_docs_t at ctx. */
static bool
collect_fn (uint64_t rid, const bson_t *doc, int32_t pos, void *ctx)
{
   (void) rid;
   (void) pos;
   dj_docs_push ((dj_docs_t *) ctx, bson_copy (doc));
   return true;
}

/* The collection a read starts from: *c loaded (NULL when it does not
 * exist, which reads as empty; checked out of the handle's cache: read it
 * only, and hand it back with dj_coll_checkin); false, with error, when
 * loading failed. */
static bool
load_source (const dj_prun_t *run, const char *db, const char *coll, dj_coll_t **c, bson_error_t *error)
{
   bson_error_t le = {0};
   *c = dj_coll_checkout (run->ctx, db, coll, &le);
   if (!*c && le.code) {
      *error = le;
      return false;
   }
   return true;
}

bool
dj_agg_scan_collection (const dj_prun_t *run, const char *db, const char *coll, const dj_matcher_t *m, const dj_eval_t *vars,
                        dj_scan_fn fn, void *fnctx, bson_error_t *error)
{
   dj_coll_t *c;
   if (!load_source (run, db, coll, &c, error)) {
      return false;
   }
   if (!c) {
      return true; /* a missing collection reads as empty */
   }
   bool ok = true;
   if (c->view_on) {
      /* a view: its pipeline's output, then the filter */
      dj_docs_t vd = {0};
      ok = dj_view_read (run, c, 0, &vd, error);
      bool going = ok;
      for (size_t i = 0; going && i < vd.n; i++) {
         if (!m || dj_matcher_match_ex (m, vd.v[i], NULL, vars, error)) {
            going = fn (0, vd.v[i], -1, fnctx);
         } else if (error && error->code) {
            ok = going = false;
         }
      }
      dj_docs_clear (&vd);
      dj_coll_checkin (run->ctx->engine, c);
      return ok;
   }
   dj_matcher_t *all = NULL;
   if (!m) {
      bson_t empty = BSON_INITIALIZER;
      all = dj_matcher_new (&empty, error);
      m = all;
   }
   ok = dj_plan_scan_vars (run->ctx, c, m, vars, false, 0, fn, fnctx, error);
   dj_matcher_destroy (all);
   dj_coll_checkin (run->ctx->engine, c);
   return ok;
}

bool
dj_agg_read_collection (const dj_prun_t *run, const char *db, const char *coll, const dj_matcher_t *m, const dj_eval_t *vars,
                        dj_docs_t *out, bson_error_t *error)
{
   return dj_agg_scan_collection (run, db, coll, m, vars, collect_fn, out, error);
}


bool
dj_agg_count_collection (const dj_prun_t *run, const char *db, const char *coll, const dj_matcher_t *m,
                         const dj_eval_t *vars, int64_t *n, bson_error_t *error)
{
   dj_coll_t *c;
   *n = 0;
   if (!load_source (run, db, coll, &c, error)) {
      return false;
   }
   if (!c) {
      return true; /* a missing collection reads as empty */
   }
   bool ok;
   if (c->view_on) { /* a view's documents are its pipeline's: read them */
      dj_docs_t docs = {0};
      ok = dj_agg_read_collection (run, db, coll, m, vars, &docs, error);
      *n = (int64_t) docs.n;
      dj_docs_clear (&docs);
   } else {
      dj_matcher_t *all = NULL;
      if (!m) {
         bson_t empty = BSON_INITIALIZER;
         m = all = dj_matcher_new (&empty, error);
      }
      ok = m && dj_plan_count (run->ctx, c, m, vars, n, error);
      dj_matcher_destroy (all);
   }
   dj_coll_checkin (run->ctx->engine, c);
   return ok;
}

static bool
sample_fn (uint64_t rid, const bson_t *doc, int32_t pos, void *ctx)
{
   (void) rid, (void) pos;
   dj_docs_push (ctx, bson_copy (doc));
   return true;
}

bool
dj_agg_sample_collection (const dj_prun_t *run, const char *coll, int64_t size, dj_docs_t *out, bool *used,
                          bson_error_t *error)
{
   dj_coll_t *c;
   *used = false;
   if (!load_source (run, run->db, coll, &c, error)) {
      return false;
   }
   if (!c || c->view_on) {
      dj_coll_checkin (run->ctx->engine, c);
      return true; /* a view's documents come from its pipeline: sorted at random there */
   }
   /* https://www.mongodb.com/docs/manual/reference/operator/aggregation/sample/#behavior :
    * more than 100 documents, and size under 5% of them */
   int64_t enough = size > (INT64_MAX - 1) / 20 ? INT64_MAX : (size * 20 + 1 > 101 ? size * 20 + 1 : 101);
   bool ok = true;
   int64_t n = dj_plan_count_upto (run->ctx, c, enough, error);
   ok = n >= 0;
   if (n >= enough) {
      *used = true;
      ok = dj_record_sample (run->ctx, c, size, sample_fn, out, error);
   }
   dj_coll_checkin (run->ctx->engine, c);
   return ok;
}

void
dj_agg_storage_stats (dj_ctx_t *ctx, dj_coll_t *c, int64_t scale, bson_t *out, int64_t *count)
{
   int64_t n, size, total = 0;
   int64_t *isz = bson_malloc0 (sizeof (int64_t) * (size_t) (c->nindexes ? c->nindexes : 1));
   dj_coll_stats (ctx, c, &n, &size, isz);
   bson_t sizes;
   BSON_APPEND_INT64 (out, "size", size / scale);
   BSON_APPEND_INT64 (out, "count", n);
   if (n) {
      BSON_APPEND_INT64 (out, "avgObjSize", size / n); /* bytes whatever the scale, as mongod */
   }
   BSON_APPEND_INT64 (out, "storageSize", size / scale);
   BSON_APPEND_INT32 (out, "nindexes", c->nindexes);
   BSON_APPEND_DOCUMENT_BEGIN (out, "indexSizes", &sizes);
   for (int i = 0; i < c->nindexes; i++) {
      BSON_APPEND_INT64 (&sizes, c->indexes[i].name, isz[i] / scale);
      total += isz[i];
   }
   bson_append_document_end (out, &sizes);
   BSON_APPEND_INT64 (out, "totalIndexSize", total / scale);
   BSON_APPEND_BOOL (out, "capped", c->capped);
   bson_free (isz);
   *count = n;
}

bool
dj_agg_coll_stats (const dj_prun_t *run, const char *coll, int64_t scale, bool count, bson_t *out, bson_error_t *error)
{
   bson_error_t le = {0};
   dj_coll_t *c = dj_coll_load (run->ctx, run->db, coll, &le);
   if (!c || c->view_on) {
      dj_coll_free (c);
      if (le.code) {
         *error = le;
         return false;
      }
      return dj_err (error, DJ_NamespaceNotFound, "Unable to retrieve storageStats in $collStats stage :: caused by :: "
                     "Collection [%s.%s] not found.", run->db, coll);
   }
   int64_t n = 0;
   BSON_APPEND_UTF8 (out, "ns", c->ns);
   BSON_APPEND_UTF8 (out, "host", "djongo");
   BSON_APPEND_DATE_TIME (out, "localTime", run->now_ms);
   if (scale > 0) {
      bson_t st;
      BSON_APPEND_DOCUMENT_BEGIN (out, "storageStats", &st);
      dj_agg_storage_stats (run->ctx, c, scale, &st, &n);
      BSON_APPEND_INT32 (&st, "scaleFactor", (int32_t) (scale > INT32_MAX ? INT32_MAX : scale));
      bson_append_document_end (out, &st);
   } else {
      dj_coll_stats (run->ctx, c, &n, &(int64_t){0}, NULL);
   }
   if (count) {
      BSON_APPEND_INT64 (out, "count", n);
   }
   dj_coll_free (c);
   return true;
}

bool
dj_view_read (const dj_prun_t *run, const dj_coll_t *view, int depth, dj_docs_t *out, bson_error_t *error)
{
   bson_iter_t it;
   bson_t stages;
   const uint8_t *d;
   uint32_t l;
   /* https://www.mongodb.com/docs/manual/core/views/#behavior: views on
    * views resolve to the first real collection, up to 20 deep */
   if (depth >= 20) {
      return dj_err (error, DJ_ViewDepthLimitExceeded, "View depth too deep or view cycle detected. Maximum depth is 20");
   }
   bson_init (&stages);
   if (bson_iter_init_find (&it, view->options, "pipeline") && BSON_ITER_HOLDS_ARRAY (&it)) {
      bson_iter_array (&it, &l, &d);
      bson_destroy (&stages);
      bson_init_static (&stages, d, l);
   }
   dj_pipeline_t *p = dj_pipeline_new (&stages, NULL, error);
   bson_destroy (&stages);
   if (!p) {
      return false;
   }
   bool ok;
   bson_error_t le = {0};
   dj_coll_t *src = dj_coll_load (run->ctx, view->db, view->view_on, &le);
   if (!src) {
      ok = !le.code; /* a view on a missing collection is empty */
      if (!ok) {
         *error = le;
      }
   } else if (src->view_on) {
      ok = dj_view_read (run, src, depth + 1, out, error);
   } else {
      ok = dj_agg_read_collection (run, view->db, view->view_on, NULL, NULL, out, error);
   }
   dj_coll_free (src);
   ok = ok && dj_agg_run_stages (p, 0, run, out, error);
   dj_pipeline_destroy (p);
   return ok;
}

/* ---- $lookup ------------------------------------------------------------------ */

/* The join field's value when the path is one top-level field holding no
 * array -- a foreign key, the common join -- read straight from doc's
 * bytes: 1 with *v set (borrowing doc), 0 when the field is missing, -1
 * when dj_path_visit must walk it (a dotted path, an array to expand). The
 * field found is the first of duplicate keys, as dj_value_get_field finds
 * it, and a malformed document reads as far as it does there. */
static int
top_field (const bson_t *doc, const dj_path_t *p, bson_value_t *v)
{
   if (p->n != 1) {
      return -1;
   }
   const char *key = p->parts[0];
   size_t len = strlen (key);
   dj_bwalk_t w;
   dj_bwalk_init (&w, bson_get_data (doc), doc->len);
   while (dj_bwalk_next (&w)) {
      if (w.key_len == len && !memcmp (w.key, key, len)) {
         if (w.type == BSON_TYPE_ARRAY) {
            return -1;
         }
         dj_bwalk_value (&w, v);
         return 1;
      }
   }
   return 0;
}

/* dj_agg_local_values of a document whose top_field was top (>= 0) with
 * the value *dv: the value, unless a regex; or nothing -- what the path's
 * visit makes of it. */
static size_t
local_top (int top, const bson_value_t *dv, dj_vlist_t *vals)
{
   vals->n = 0;
   if (top && dv->value_type != BSON_TYPE_REGEX) {
      dj_vlist_push (dv, vals);
   }
   return (size_t) top;
}

size_t
dj_agg_local_values (const bson_t *doc, const dj_path_t *lp, dj_vlist_t *vals)
{
   bson_value_t dv;
   size_t kept = 0;
   vals->n = 0;
   int top = top_field (doc, lp, &dv);
   if (top >= 0) {
      return local_top (top, &dv, vals);
   }
   dj_value_from_doc (doc, false, &dv);
   dj_path_visit (&dv, lp, 0, true, dj_vlist_push, vals);
   for (size_t i = 0; i < vals->n; i++) {
      if (vals->v[i].value_type != BSON_TYPE_REGEX) {
         vals->v[kept++] = vals->v[i];
      }
   }
   size_t visited = vals->n;
   vals->n = kept;
   return visited;
}

void
dj_agg_in_query (bson_t *q, const char *foreign, const dj_vlist_t *vals, bool with_null)
{
   bson_t cond, arr;
   char buf[16];
   uint32_t n = 0;
   BSON_APPEND_DOCUMENT_BEGIN (q, foreign, &cond);
   BSON_APPEND_ARRAY_BEGIN (&cond, "$in", &arr);
   for (size_t i = 0; i < vals->n; i++) {
      bson_append_value (&arr, dj_array_key (n++, buf), -1, &vals->v[i]);
   }
   if (with_null) {
      bson_append_null (&arr, dj_array_key (n++, buf), -1);
   }
   bson_append_array_end (&cond, &arr);
   bson_append_document_end (q, &cond);
}


/* A hash join for localField/foreignField: the foreign collection is read
 * once and indexed by the encoded values at foreignField -- each array
 * element and the whole array, missing as null -- so equality follows
 * MongoDB's value order (1 == 1.0) exactly as the $in query it replaces.
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/lookup/#equality-match-with-a-single-join-condition */

/* ---- the keys while they are integers ---------------------------------------
 * A join on a foreign key compares integers: their buckets are found by
 * value (a multiplicative hash), not by encoding each key and hashing its
 * bytes. Equality is the encoded keys' -- MongoDB's numeric equality --
 * for the values that have an int64 view: an int32, an int64, a double
 * holding an integer in int64's range (1.0 == 1, -0.0 == 0). No other
 * value equals one of those but a Decimal128: a lookup of a Decimal128,
 * or the first key without an int64 view, moves the keys into the
 * general table, in their order (the buckets keep their indexes). */
static bool
int_view (const bson_value_t *v, int64_t *out)
{
   switch (v->value_type) {
   case BSON_TYPE_INT32:
      *out = v->value.v_int32;
      return true;
   case BSON_TYPE_INT64:
      *out = v->value.v_int64;
      return true;
   case BSON_TYPE_DOUBLE: {
      double d = v->value.v_double;
      /* (NaN fails both comparisons; 2^63 is the first double past int64) */
      if (d >= -9223372036854775808.0 && d < 9223372036854775808.0 && (double) (int64_t) d == d) {
         *out = (int64_t) d;
         return true;
      }
      return false;
   }
   default:
      return false;
   }
}

static size_t
int_hash (int64_t k, size_t nslots)
{
   uint64_t h = (uint64_t) k * 0x9E3779B97F4A7C15ull;
   return (size_t) (h ^ h >> 29) & (nslots - 1);
}

/* The index of integer key k; SIZE_MAX when absent and !create. */
static size_t
int_index (jtable_t *t, int64_t k, bool create, bool *added)
{
   *added = false;
   if (create && (t->ints.n + 1) * 2 > t->ints.nslots) {
      size_t ns = t->ints.nslots ? t->ints.nslots * 2 : 64;
      size_t *nsl = bson_malloc0 (sizeof (size_t) * ns);
      for (size_t i = 0; i < t->ints.n; i++) {
         size_t h = int_hash (t->ints.v[i], ns);
         while (nsl[h]) {
            h = (h + 1) & (ns - 1);
         }
         nsl[h] = i + 1;
      }
      bson_free (t->ints.slots);
      t->ints.slots = nsl;
      t->ints.nslots = ns;
   }
   if (!t->ints.nslots) {
      return SIZE_MAX;
   }
   size_t h = int_hash (k, t->ints.nslots);
   while (t->ints.slots[h]) {
      if (t->ints.v[t->ints.slots[h] - 1] == k) {
         return t->ints.slots[h] - 1;
      }
      h = (h + 1) & (t->ints.nslots - 1);
   }
   if (!create) {
      return SIZE_MAX;
   }
   DJ_GROW (t->ints.v, t->ints.n, t->ints.cap, 64);
   t->ints.v[t->ints.n] = k;
   t->ints.slots[h] = ++t->ints.n;
   *added = true;
   return t->ints.n - 1;
}

/* The integer keys moved into the general table, bucket i's key at index i. */
static void
to_general (jtable_t *t)
{
   for (size_t i = 0; i < t->ints.n; i++) {
      bson_value_t v = {.value_type = BSON_TYPE_INT64};
      bool added;
      v.value.v_int64 = t->ints.v[i];
      t->key.len = 0;
      dj_key_append_collated (&t->key, &v);
      size_t at = dj_ktable_index (&t->kt, &t->key, true, &added);
      BSON_ASSERT (at == i && added); /* (distinct integers, distinct keys) */
   }
   bson_free (t->ints.v);
   bson_free (t->ints.slots);
   memset (&t->ints, 0, sizeof t->ints);
   t->general = true;
}

jbucket_t *
dj_jtable_find (jtable_t *t, const bson_value_t *v, bool create)
{
   bool added;
   size_t i;
   int64_t k;
   if (!t->general && int_view (v, &k)) {
      i = int_index (t, k, create, &added);
   } else if (!t->general && !create && v->value_type != BSON_TYPE_DECIMAL128) {
      return NULL; /* the keys are integers: no other value equals one */
   } else {
      if (!t->general) {
         to_general (t);
      }
      t->key.len = 0; /* one buffer for every lookup: no allocation per probe */
      dj_key_append_collated (&t->key, v);
      i = dj_ktable_index (&t->kt, &t->key, create, &added);
   }
   if (i == SIZE_MAX) {
      return NULL;
   }
   if (added) {
      DJ_GROW (t->b, i, t->cap, 64);
      memset (&t->b[i], 0, sizeof t->b[i]);
   }
   return &t->b[i];
}

void
dj_jtable_free (jtable_t *t)
{
   size_t n = t->general ? t->kt.n : t->ints.n;
   for (size_t i = 0; i < n; i++) {
      bson_free (t->b[i].more);
   }
   bson_free (t->b);
   dj_ktable_free (&t->kt);
   bson_free (t->ints.v);
   bson_free (t->ints.slots);
   dj_buf_cleanup (&t->key);
}

/* Foreign document `doc` into v's bucket */
static void
jadd (jtable_t *t, size_t doc, const bson_value_t *v)
{
   jbucket_t *b = dj_jtable_find (t, v, true);
   if (b->n && dj_jbucket_doc (b, b->n - 1) == doc) {
      return; /* [1, 1] indexes the document once */
   }
   if (b->n) {
      DJ_GROW (b->more, b->n - 1, b->cap, 4);
      b->more[b->n - 1] = doc;
   } else {
      b->first = doc;
   }
   b->n++;
}

void
dj_agg_join_keys (const bson_t *doc, const dj_path_t *fp, dj_vlist_t *vals, dj_join_key_fn fn, void *ctx)
{
   static const bson_value_t null_v = {.value_type = BSON_TYPE_NULL};
   bson_value_t dv;
   bson_iter_t it;
   vals->n = 0;
   int top = top_field (doc, fp, &dv);
   if (top >= 0) {
      fn (top ? &dv : &null_v, ctx); /* (no array: the value alone) */
      return;
   }
   dj_value_from_doc (doc, false, &dv);
   dj_path_visit (&dv, fp, 0, false, dj_vlist_push, vals);
   if (!vals->n) {
      fn (&null_v, ctx);
   }
   for (size_t k = 0; k < vals->n; k++) {
      const bson_value_t *v = &vals->v[k];
      fn (v, ctx); /* an array as a whole matches an equal array, and by its elements */
      if (v->value_type == BSON_TYPE_ARRAY && bson_iter_init_from_data (&it, v->value.v_doc.data, v->value.v_doc.data_len)) {
         while (bson_iter_next (&it)) {
            fn (bson_iter_value (&it), ctx);
         }
      }
   }
}

typedef struct {
   jtable_t *t;
   size_t doc;
} jbuild_t;

static void
jbuild_add (const bson_value_t *v, void *ctx)
{
   jbuild_t *b = ctx;
   jadd (b->t, b->doc, v);
}

void
dj_jtable_build (jtable_t *t, const dj_docs_t *foreign, const dj_path_t *fp)
{
   dj_vlist_t vals = {0};
   for (size_t i = 0; i < foreign->n; i++) {
      jbuild_t b = {t, i};
      dj_agg_join_keys (foreign->v[i], fp, &vals, jbuild_add, &b);
   }
   bson_free (vals.v);
}

/* The hash join's foreign side -- its documents and their table -- kept
 * in the stage across the chunks a streaming pipeline hands the $lookup
 * (pipeline.c's run_in_chunks), so that one run reads and indexes the
 * foreign collection once, not once per chunk. A pipeline is parsed per
 * command and runs in that command's snapshot: the foreign side cannot
 * change while the cache lives (it goes with the pipeline). */
struct dj_jcache {
   jtable_t jt;
   dj_docs_t foreign; /* owned; its documents view bytes (read_foreign) */
   dj_buf_t bytes;    /* owned: the foreign documents' bytes */
   bson_t *views;     /* owned: the static bson_t each of `foreign` points to */
   dj_rmemo_t *memo;  /* owned: the folded select list's rows' layout (NULL until one is made) */
   bool built;
   /* the join keep (below) this side goes to when the stage is freed, under
    * `kkey` (owned); NULL: freed with the stage */
   dj_keep_t *keep;
   dj_buf_t kkey;
};

dj_jcache_t *
dj_agg_jcache_new (void)
{
   return bson_malloc0 (sizeof (dj_jcache_t));
}

static void
jcache_free (dj_jcache_t *c)
{
   dj_jtable_free (&c->jt);
   dj_docs_clear (&c->foreign);
   bson_free (c->views);
   dj_buf_cleanup (&c->bytes);
   dj_rmemo_free (c->memo);
   dj_buf_cleanup (&c->kkey);
   bson_free (c);
}

void
dj_agg_jcache_free (dj_jcache_t *c)
{
   if (!c) {
      return;
   }
   if (c->keep && c->built) {
      /* the foreign side, not the stage's select list layout, is kept */
      dj_keep_t *keep = c->keep;
      dj_buf_t key = c->kkey;
      dj_rmemo_free (c->memo);
      c->memo = NULL;
      c->keep = NULL;
      memset (&c->kkey, 0, sizeof c->kkey);
      dj_keep_put (keep, key.data, key.len, c);
      dj_buf_cleanup (&key);
      return;
   }
   jcache_free (c);
}

/* ---- the foreign side kept for the next $lookup of the same snapshot -------
 * A query run again and again (a page of a join: Django's select_related)
 * reads and indexes the same small foreign collection every time. What
 * read_foreign and dj_jtable_build make of it depends on nothing but the
 * collection's documents -- fixed by the LMDB snapshot the read runs in
 * -- the foreignField path and the collation its keys are encoded with.
 * So a command that reads in a read-only transaction of its own hands
 * its built side, at the pipeline's end, to the engine handle's join keep
 * (e->join_keep, a dj_keep_t) under {snapshot id, collation, db, coll,
 * foreignField}; a later $lookup whose read-only transaction has the same
 * snapshot id takes it instead of reading the collection.
 *
 * Why that is exact: an LMDB read-only transaction's id (mdb_txn_id: "for
 * a read-only transaction, this corresponds to the snapshot being read",
 * lmdb.h) is the id of the last write transaction committed before it
 * began; every commit
 * that changes anything takes the next id, in any process sharing the
 * data directory, so two read-only transactions of the same environment
 * with the same id see the same data. A write transaction's id is the next
 * one whatever it writes (two of them, one aborted, share it), and a
 * caller's transaction may hold writes of its own: a read in either
 * (ctx->write, ctx->borrowed, ctx->direct) neither keeps nor takes. Views
 * (their pipelines may read $$NOW or $rand) and missing collections are
 * never kept, nor a side past JKEEP_MAX_BYTES (a handle holds at most
 * JKEEP_SLOTS of them; an older snapshot's stays until replaced). The
 * keep holds the objects (dj_keep.h): a taker has its side to itself until
 * its pipeline ends. */
enum { JKEEP_SLOTS = 4 };
#define JKEEP_MAX_BYTES ((size_t) 4 * 1024 * 1024)

static void
jkeep_free (void *obj)
{
   jcache_free (obj);
}

dj_keep_t *
dj_agg_join_keep_new (void)
{
   return dj_keep_new (JKEEP_SLOTS, jkeep_free);
}

/* The key of the foreign side `coll` at fp read in run's transaction into
 * key; false when that transaction is not a read-only one of its own. */
static bool
jkeep_key (const dj_prun_t *run, const char *coll, const char *foreign, dj_buf_t *key)
{
   const dj_ctx_t *ctx = run->ctx;
   if (!ctx || !ctx->txn || ctx->write || ctx->borrowed || ctx->direct || !run->engine || !run->engine->join_keep) {
      return false;
   }
   uint64_t snap = (uint64_t) mdb_txn_id (ctx->txn);
   const dj_collation_t *coll_at = dj_collation_current (); /* (the process's: never freed) */
   key->len = 0;
   dj_buf_append (key, &snap, sizeof snap);
   dj_buf_append (key, &coll_at, sizeof coll_at);
   dj_buf_append (key, run->db, strlen (run->db) + 1);
   dj_buf_append (key, coll, strlen (coll) + 1);
   dj_buf_append (key, foreign, strlen (foreign) + 1);
   return true;
}

/* The foreign collection's size past which nlocal documents are joined by
 * probing its index rather than by the hash join (probe_target): more than
 * 8 records per document to join, and 64 more. */
static int64_t
probe_enough (size_t nlocal)
{
   return (int64_t) (nlocal < 1u << 20 ? nlocal : 1u << 20) * 8 + 64;
}

/* The kept foreign side of stage s moved into its (unbuilt) jcache, when
 * there is one for this snapshot and the index nested-loop join would not
 * be chosen for nlocal documents (probe_target's test, on the count the
 * side was read with); true when it was. */
static bool
jkeep_take (const dj_prun_t *run, const stage_t *s, size_t nlocal)
{
   dj_buf_t key = {0};
   if (!jkeep_key (run, s->str2, s->foreign, &key)) {
      return false;
   }
   dj_keep_t *keep = run->engine->join_keep;
   dj_jcache_t *k = dj_keep_take (keep, key.data, key.len);
   int64_t enough = probe_enough (nlocal);
   if (k && (int64_t) k->foreign.n > enough) {
      dj_keep_put (keep, key.data, key.len, k); /* the probe, as probe_target decides */
      k = NULL;
   }
   if (!k) {
      dj_buf_cleanup (&key);
      return false;
   }
   dj_jcache_t *mine = s->jcache;
   dj_rmemo_t *memo = mine->memo;
   dj_jcache_t empty = *mine;
   *mine = *k;
   *k = empty;
   k->memo = NULL;
   mine->memo = memo;
   jcache_free (k);
   mine->built = true;
   mine->keep = keep;
   dj_buf_cleanup (&mine->kkey);
   mine->kkey = key; /* moved */
   return true;
}

/* The side stage s just built from the real collection it read: kept at
 * the stage's end when its snapshot may be (jkeep_key) and it is small. */
static void
jkeep_note (const dj_prun_t *run, const stage_t *s)
{
   dj_jcache_t *c = s->jcache;
   if (c && c->bytes.len <= JKEEP_MAX_BYTES && jkeep_key (run, s->str2, s->foreign, &c->kkey)) {
      c->keep = run->engine->join_keep;
   }
}

/* ---- the hash join's foreign side, read once ----------------------------------
 * Its documents' bytes go back to back into one buffer, each viewed by a
 * static bson_t of one array: two allocations for the collection, not one
 * (an aligned bson_t, glibc's slow memalign path) per document. The views
 * are read only -- as matches borrowed, or copied (bson_copy) -- and
 * destroying them frees nothing: `bytes` and `views` go with the table. */
typedef struct {
   dj_buf_t *bytes;
   dj_buf_t offs; /* owned: each document's offset in bytes, a size_t each */
} fread_t;

static bool
fread_fn (uint64_t rid, const bson_t *doc, int32_t pos, void *ctx)
{
   fread_t *f = ctx;
   size_t at = f->bytes->len;
   (void) rid, (void) pos;
   dj_buf_append (&f->offs, &at, sizeof at);
   dj_buf_append (f->bytes, bson_get_data (doc), doc->len);
   return true;
}

static bool
read_foreign (const dj_prun_t *run, const char *coll, dj_docs_t *foreign, dj_buf_t *bytes, bson_t **views,
              bson_error_t *error)
{
   fread_t f = {.bytes = bytes};
   bool ok = dj_agg_scan_collection (run, run->db, coll, NULL, NULL, fread_fn, &f, error);
   size_t n = f.offs.len / sizeof (size_t);
   if (ok && n) {
      *views = bson_aligned_alloc (BSON_ALIGNOF (bson_t), sizeof (bson_t) * n);
      for (size_t i = 0; i < n; i++) {
         size_t at;
         memcpy (&at, f.offs.data + i * sizeof at, sizeof at);
         const uint8_t *d = bytes->data + at;
         bson_init_static (&(*views)[i], d, (size_t) dj_le32_read (d)); /* (the scan handed valid documents) */
         dj_docs_push (foreign, &(*views)[i]);
      }
   }
   dj_buf_cleanup (&f.offs);
   return ok;
}

static int
cmp_size (const void *a, const void *b)
{
   size_t x = *(const size_t *) a, y = *(const size_t *) b;
   return (x > y) - (x < y);
}

/* ---- an index nested-loop join --------------------------------------------
 * When the foreign collection is much larger than the documents to join and
 * an index serves foreignField, each document's matches are found by probing
 * that index ({foreignField: {$in: [values at localField]}}, what mongod's
 * $lookup runs per document) rather than by reading the whole collection
 * into the hash table: a LIMIT over a join of a large table reads what it
 * joins. The matches come in natural (record id) order, as the hash join's. */
typedef struct {
   uint64_t rid;
   bson_t *doc; /* owned */
} jrow_t;

typedef struct {
   jrow_t *v;
   size_t n, cap;
} jrows_t;

static bool
jrow_collect (uint64_t rid, const bson_t *doc, int32_t pos, void *ctx)
{
   jrows_t *rows = ctx;
   (void) pos;
   DJ_GROW (rows->v, rows->n, rows->cap, 16);
   rows->v[rows->n++] = (jrow_t){rid, bson_copy (doc)};
   return true;
}

static int
cmp_rid (const void *a, const void *b)
{
   uint64_t x = ((const jrow_t *) a)->rid, y = ((const jrow_t *) b)->rid;
   return (x > y) - (x < y);
}

/* The foreign collection to probe (checked out of the handle's cache:
 * read only, handed back with dj_coll_checkin), or NULL for the hash
 * join: a collection (not a view) with more records than probe_enough,
 * counted from its keys. *real: whether coll is a
 * collection (not a view, not missing). */
static dj_coll_t *
probe_target (const dj_prun_t *run, const char *coll, size_t nlocal, bool *real)
{
   bson_error_t le = {0}, *error = &le; /* a failure here only means: the hash join (which reports it) */
   dj_coll_t *c = dj_coll_checkout (run->ctx, run->db, coll, &le);
   *real = c && !c->view_on;
   int64_t enough = probe_enough (nlocal);
   if (c && !c->view_on && dj_plan_count_upto (run->ctx, c, enough + 1, error) > enough) {
      return c;
   }
   dj_coll_checkin (run->ctx->engine, c);
   return NULL;
}

/* doc's matches in fc by probing, appended to matches. *probed false (and
 * nothing read) when the planner would not use an index for this probe. */
static bool
probe_matches (const dj_prun_t *run, dj_coll_t *fc, const stage_t *s, const dj_path_t *lp, const bson_t *doc,
               dj_docs_t *matches, bool *probed, bson_error_t *error)
{
   bson_t q = BSON_INITIALIZER;
   dj_vlist_t vals = {0};
   size_t visited = dj_agg_local_values (doc, lp, &vals);
   bool only_regexes = visited && !vals.n;
   dj_agg_in_query (&q, s->foreign, &vals, !visited); /* nothing at localField: it counts as null */
   bson_free (vals.v);
   *probed = true;
   if (only_regexes) {
      bson_destroy (&q);
      return true; /* they match nothing */
   }
   dj_matcher_t *m = dj_matcher_new (&q, error);
   bson_destroy (&q);
   if (!m) {
      return false;
   }
   bool ok = true;
   *probed = dj_plan_uses_index (fc, m);
   if (*probed) {
      jrows_t rows = {0};
      ok = dj_plan_scan (run->ctx, fc, m, false, 0, jrow_collect, &rows, error);
      if (rows.n > 1) {
         qsort (rows.v, rows.n, sizeof *rows.v, cmp_rid);
      }
      for (size_t k = 0; k < rows.n; k++) {
         if (ok) {
            dj_docs_push (matches, rows.v[k].doc);
         } else {
            bson_destroy (rows.v[k].doc);
         }
      }
      bson_free (rows.v);
   }
   dj_matcher_destroy (m);
   return ok;
}

/* ---- $lookup + $unwind ----------------------------------------------------
 * https://www.mongodb.com/docs/manual/core/aggregation-pipeline-optimization/#-lookup----unwind-coalescence
 * A $unwind of the $lookup's `as` right after it is folded into the $lookup:
 * each match makes one output document (the local document with `as` set
 * to the match, and the match's position at includeArrayIndex), in the
 * order the array would have held them; the array of matches is never
 * built, nor the copies $unwind would make of it. */
void
dj_agg_coalesce (dj_pipeline_t *p)
{
   for (int i = 0; i + 1 < p->n; i++) {
      stage_t *s = &p->stages[i], *u = &p->stages[i + 1];
      if (s->kind != S_LOOKUP || s->unwinding || u->kind != S_UNWIND || u->path.n != 1 || strcmp (u->str, s->str) ||
          (u->str2 && strchr (u->str2, '.'))) {
         continue;
      }
      s->unwinding = true;
      s->unwind_preserve = u->flag;
      s->unwind_index = u->str2; /* moved */
      /* the $unwind's own fields (its parse sets these alone) */
      bson_free (u->str);
      dj_path_cleanup (&u->path);
      memmove (u, u + 1, sizeof (stage_t) * (size_t) (p->n - i - 2));
      p->n--;
      /* a select list after the join: its rows are made from the local
       * document and each match, never from the joined document */
      if (i + 1 < p->n && !s->unwind_index && u->kind == S_RESHAPE && dj_reshape_joins (u->reshape)) {
         s->project = u->reshape; /* moved: a shaping stage owns nothing else */
         memmove (u, u + 1, sizeof (stage_t) * (size_t) (p->n - i - 2));
         p->n--;
      }
   }
}

/* (dj_room_fn) room in the rows at ctx */
static uint8_t *
rows_room (void *ctx, size_t size)
{
   return dj_rows_reserve (ctx, size);
}

/* The outputs of the local document at *slot for its matches (what the
 * folded $unwind would make of `as`: one per match; none, or the document
 * without `as` when preserving, for no match) appended to out. A folded
 * select list's rows: with the layout memo (NULL: none); `evaluates`:
 * whether they may need the evaluator (dj_rmemo_evaluates), set up per
 * row only then. */
static bool
unwind_matches (rctx_t *r, const stage_t *s, bson_t **slot, const dj_path_t *as, const dj_docs_t *matches, dj_docs_t *out,
                dj_rmemo_t *memo, bool evaluates)
{
   const bson_t *doc = *slot;
   if (s->project) {
      /* the folded select list, over doc with `as` set to each match */
      dj_eval_t ev;
      bool ok = true;
      size_t nout = matches->n ? matches->n : (size_t) s->unwind_preserve;
      for (size_t k = 0; ok && k < nout; k++) {
         const bson_t *match = matches->n ? matches->v[k] : NULL;
         if (out->n < r->dropped) {
            /* a row the $skip after this stage drops: counted, not made
             * (a select list of field paths cannot fail on it) */
            if (k + 1 < nout) {
               dj_docs_push (out, bson_new ());
            } else {
               dj_docs_push (out, *slot);
               *slot = NULL; /* moved */
            }
            continue;
         }
         if (evaluates) {
            dj_agg_eval_setup (r, &ev, doc);
         }
         if (r->rows) {
            /* the row written straight into the run's rows (a view of them) */
            size_t len;
            ok = dj_reshape_apply_joined_at (s->project, &ev, doc, s->str, match, memo, rows_room, r->rows, &len);
            if (ok) {
               dj_docs_push (out, dj_rows_commit (r->rows, len));
            }
         } else if (k + 1 < nout || (r->views && dj_rows_has (r->views, doc))) {
            /* (a view -- a scanned document's, pipeline.c -- is not the stage's to reuse) */
            bson_t *row = bson_new ();
            ok = dj_reshape_apply_joined (s->project, &ev, doc, s->str, match, memo, row);
            if (ok) {
               dj_docs_push (out, row);
            } else {
               bson_destroy (row);
            }
         } else {
            /* the last row takes the local document's bson_t (the stage's
             * own: dj_docs_push steals), written over once the row is
             * made -- a heap bson_t is an aligned allocation, glibc's slow
             * one, and this saves one per row of a one-to-one join */
            bson_t row = BSON_INITIALIZER;
            ok = dj_reshape_apply_joined (s->project, &ev, doc, s->str, match, memo, &row);
            if (ok) {
               bson_t *mine = *slot;
               bson_reinit (mine);
               uint8_t *w = bson_reserve_buffer (mine, row.len);
               if (w) {
                  memcpy (w, bson_get_data (&row), row.len);
               }
               dj_docs_push (out, mine);
               *slot = NULL; /* moved */
            }
            bson_destroy (&row);
         }
         dj_arena_reset (r->arena);
      }
      return ok;
   }
   if (!matches->n) {
      if (s->unwind_preserve) {
         dj_docs_push (out, dj_agg_with_path (doc, as, NULL, s->unwind_index, -1));
      }
      return true;
   }
   for (size_t k = 0; k < matches->n; k++) {
      bson_value_t mv;
      dj_value_from_doc (matches->v[k], false, &mv);
      bson_t *nd = dj_agg_with_path (doc, as, &mv, s->unwind_index, (int64_t) k);
      if (nd->len > DJ_MAX_BSON_SIZE) {
         unsigned len = nd->len;
         bson_destroy (nd);
         return dj_err (r->error, DJ_BSONObjectTooLarge, "BSONObj size: %u is invalid. Size must be between 0 and %d", len,
                        DJ_MAX_BSON_SIZE);
      }
      dj_docs_push (out, nd);
   }
   return true;
}

/* ---- a leading {f: {$ne: null}} read by the $lookup on f ------------------
 * The SQL compiler puts {f: {$ne: null}} before every inner join on f
 * (NULL never equals anything in SQL), and the $lookup right after it
 * reads each document's f anyway: that stage, rather than the scan,
 * decides the filter -- at no cost for a document whose first f is a
 * value other than null, undefined or an array (the filter passes it:
 * dj_matcher_not_null_field), by the matcher for any other. The documents
 * and their order are the scan's with the filter: it would read the
 * collection in its natural order all the same (no index serves the
 * filter), and documents the filter fails produce nothing at the $lookup
 * (an unwound one: each output is pushed for its document, a failed one
 * has none; a $lookup keeping its array would output the document: never
 * given the filter). */
bool
dj_agg_join_filter (const dj_prun_t *run, const char *coll, const dj_matcher_t *m, const stage_t *s)
{
   const char *f = dj_matcher_not_null_field (m);
   if (!f || s->kind != S_LOOKUP || !s->local || !s->str2 || s->sub || s->nlet || !s->unwinding ||
       strcmp (s->local, f)) {
      return false;
   }
   bson_error_t le = {0}; /* (a failure here only means: the scan filters, and reports it) */
   dj_coll_t *c = dj_coll_checkout (run->ctx, run->db, coll, &le);
   bool fused = c && !c->view_on && !dj_plan_uses_index (c, m);
   dj_coll_checkin (run->ctx->engine, c);
   return fused;
}

bool
dj_agg_run_lookup (rctx_t *r, const stage_t *s, dj_docs_t *docs)
{
   jtable_t own_jt = {0}, *jt = s->jcache ? &s->jcache->jt : &own_jt;
   dj_docs_t own_foreign = {0}, *foreign = s->jcache ? &s->jcache->foreign : &own_foreign; /* the hash join's */
   dj_buf_t own_bytes = {0}, *fbytes = s->jcache ? &s->jcache->bytes : &own_bytes; /* (read_foreign) */
   bson_t *own_views = NULL, **fviews = s->jcache ? &s->jcache->views : &own_views;
   dj_path_t lp = {0};
   bool joined = s->jcache && s->jcache->built;
   const dj_prun_t *run = r->run;
   dj_path_t as;
   bool ok = true;
   dj_docs_t foreign_all = {0};
   bool have_all = false;
   dj_vlist_t vals = {0}; /* the current document's values at localField */
   dj_docs_t unwound = {0}; /* s->unwinding: the outputs */
   /* unwound with no pipeline to run over them, the hash join's matches are
    * borrowed, not copied, into each document's matches (valid while
    * `foreign` lives: this call, or the jcache's run) */
   bool may_borrow = s->unwinding && !s->sub;

   if (!dj_path_init (&as, s->str, strlen (s->str), r->error)) {
      return false;
   }
   dj_path_t fp = {0};
   dj_coll_t *probe = NULL; /* the foreign collection while probing its index (checked out: probe_target) */
   bool real = false;       /* the foreign side is a collection (probe_target) */
   if (s->local && s->str2) {
      ok = dj_path_init (&fp, s->foreign, strlen (s->foreign), r->error);
      if (ok) {
         /* a bad localField after a good foreignField: fp is freed all the same */
         ok = dj_path_init (&lp, s->local, strlen (s->local), r->error);
      }
      if (ok && !joined && !s->sub && jkeep_take (run, s, docs->n)) {
         joined = true; /* the side a command of this snapshot built */
      } else if (ok && !joined) {
         /* (once the hash join's table is built, the next chunks use it) */
         probe = probe_target (run, s->str2, docs->n, &real);
      }
   }
   dj_pregroup_t pg = {0}; /* a leading $group folded on the foreign side (lookup_group.c) */
   if (ok && s->local && s->str2) {
      ok = dj_agg_pregroup_build (r, s, docs, &lp, &fp, probe, &pg);
   }
   if (pg.on) {
      dj_coll_checkin (run->ctx->engine, probe);
      probe = NULL;
   }
   /* each document's matches; the list and the hash join's hits are reused
    * from one document to the next (emptied at each one's end) */
   dj_docs_t matches = {0};
   bool borrowed = false; /* matches' documents are the hash join's */
   size_t *hits = NULL, hcap = 0;
   /* the leading filter this stage decides (dj_agg_join_filter) */
   const dj_matcher_t *jf = run->join_filter_stage == (const void *) s ? run->join_filter : NULL;
   /* a folded select list's memo of the rows' layout (kept for the run's
    * rows where the stage keeps a cache), which also reads localField (a
    * top-level one) where it knows it is (dj_rmemo_top) */
   dj_rmemo_t *memo = NULL, *tmemo = NULL;
   bool evaluates = true;
   if (ok && s->project && s->jcache) {
      if (!s->jcache->memo) {
         s->jcache->memo = dj_rmemo_new (); /* the jcache's */
      }
      memo = s->jcache->memo;
      evaluates = dj_rmemo_evaluates (memo, s->project, s->str);
      tmemo = lp.n == 1 ? memo : NULL;
   }
   size_t local_len = tmemo ? strlen (lp.parts[0]) : 0;
   if (s->unwinding) {
      dj_docs_reserve (&unwound, docs->n); /* (one per document, as a rule) */
   }
   for (size_t i = 0; ok && i < docs->n; i++) {
      int sub_from = 0; /* the sub-pipeline's stages still to run over matches */
      dj_eval_t ev, vars;
      /* top_field's answer at localField, in fv (-1: not read; -2: the memo could not tell) */
      bson_value_t fv;
      int ftop = tmemo ? dj_rmemo_top (tmemo, docs->v[i], lp.parts[0], local_len, &fv) : -1;
      if (jf && ftop < -1) {
         ftop = top_field (docs->v[i], &lp, &fv);
      }
      ftop = ftop < -1 ? -1 : ftop;
      if (jf) {
         bool passes = ftop == 1 && fv.value_type != BSON_TYPE_NULL && fv.value_type != BSON_TYPE_UNDEFINED;
         if (!passes && !dj_matcher_match_ex (jf, docs->v[i], NULL, run->vars, r->error)) {
            ok = !r->error->code;
            continue; /* filtered out: no output */
         }
      }
      if (s->nlet || s->sub) {
         /* (only let and a sub-pipeline evaluate anything here) */
         dj_agg_eval_setup (r, &ev, docs->v[i]);
         vars = ev;
      }
      /* let variables, evaluated against the local document */
      for (int k = 0; ok && k < s->nlet; k++) {
         bson_value_t lv;
         ok = dj_expr_eval (s->let_exprs[k], &ev, &lv);
         if (ok && vars.nvars < DJ_MAX_VARS) {
            vars.vars[vars.nvars].name = s->let_names[k];
            vars.vars[vars.nvars].value = lv.value_type == BSON_TYPE_EOD ? (bson_value_t){.value_type = BSON_TYPE_NULL} : lv;
            vars.nvars++;
         }
      }
      if (!ok) {
         break;
      }
      if (pg.on) {
         dj_agg_pregroup_matches (&pg, s, docs->v[i], &lp, &vals, &matches);
      } else if (probe) {
         bool probed;
         ok = probe_matches (run, probe, s, &lp, docs->v[i], &matches, &probed, r->error);
         if (ok && !probed) {
            /* no index serves this probe: the hash join from here on */
            dj_coll_checkin (run->ctx->engine, probe);
            probe = NULL;
         }
      }
      if (ok && !pg.on && !probe && s->local && s->str2 && !joined) {
         /* the foreign side, once: a hash table on foreignField */
         ok = read_foreign (run, s->str2, foreign, fbytes, fviews, r->error);
         if (ok) {
            dj_jtable_build (jt, foreign, &fp);
            joined = true;
            if (s->jcache) {
               s->jcache->built = true;
               if (real && !s->sub) {
                  jkeep_note (run, s);
               }
            }
         }
      }
      if (!ok) {
         break;
      }
      if (probe || pg.on) {
         /* matched by probing, or grouped, above */
      } else if (joined) {
         /* equality match: foreignField equals any value at localField (an
          * array by its elements; missing matches null and missing) */
         static const bson_value_t null_v = {.value_type = BSON_TYPE_NULL};
         size_t nhits = 0;
         size_t visited = ftop >= 0 ? local_top (ftop, &fv, &vals) : dj_agg_local_values (docs->v[i], &lp, &vals);
         if (!visited) {
            dj_vlist_push (&null_v, &vals); /* nothing at localField: it counts as null */
         }
         for (size_t k = 0; k < vals.n; k++) {
            jbucket_t *b = dj_jtable_find (jt, &vals.v[k], false);
            for (size_t h = 0; b && h < b->n; h++) {
               DJ_GROW (hits, nhits, hcap, 8);
               hits[nhits++] = dj_jbucket_doc (b, h);
            }
         }
         if (nhits > 1) { /* qsort (NULL, 0, ...) is undefined: no hits leaves hits NULL */
            qsort (hits, nhits, sizeof (size_t), cmp_size);
         }
         borrowed = may_borrow;
         for (size_t k = 0; k < nhits; k++) {
            if (k == 0 || hits[k] != hits[k - 1]) {
               dj_docs_push (&matches, borrowed ? foreign->v[hits[k]] : bson_copy (foreign->v[hits[k]]));
            }
         }
      } else if (s->local) {
         /* equality match: foreignField equals any value at localField
          * (an array matches by element; missing matches null) */
         dj_path_t lp;
         ok = dj_path_init (&lp, s->local, strlen (s->local), r->error);
         if (!ok) {
            break;
         }
         bson_t q = BSON_INITIALIZER;
         dj_agg_local_values (docs->v[i], &lp, &vals);
         dj_agg_in_query (&q, s->foreign, &vals, vals.n == 0);
         dj_path_cleanup (&lp);
         dj_matcher_t *m = dj_matcher_new (&q, r->error);
         bson_destroy (&q);
         if (!m) {
            ok = false;
            break;
         }
         if (s->str2) {
            ok = dj_agg_read_collection (run, run->db, s->str2, m, NULL, &matches, r->error);
         } else {
            /* no 'from': the sub-pipeline's $documents are the foreign side,
             * and mongod puts the equality $match right after that stage
             * (https://www.mongodb.com/docs/manual/reference/operator/aggregation/documents/#use-a--documents-stage-in-a--lookup-stage) */
            dj_prun_t sub = *run;
            sub.vars = &vars;
            ok = dj_agg_run_range (s->sub, 0, 1, &sub, &matches, r->error);
            size_t kept = 0;
            for (size_t k = 0; ok && k < matches.n; k++) {
               if (dj_matcher_match (m, matches.v[k], NULL)) {
                  matches.v[kept++] = matches.v[k];
               } else {
                  bson_destroy (matches.v[k]);
               }
            }
            matches.n = ok ? kept : matches.n;
            sub_from = 1;
         }
         dj_matcher_destroy (m);
      } else if (s->str2 && dj_pipeline_needs_collection (s->sub)) {
         /* uncorrelated pipelines still run per document (they may use let) */
         if (!have_all) {
            ok = dj_agg_read_collection (run, run->db, s->str2, NULL, NULL, &foreign_all, r->error);
            have_all = true;
         }
         for (size_t k = 0; ok && k < foreign_all.n; k++) {
            dj_docs_push (&matches, bson_copy (foreign_all.v[k]));
         }
      }
      if (ok && s->sub) {
         dj_prun_t sub = *run;
         sub.vars = &vars;
         ok = dj_agg_run_stages (s->sub, pg.on ? 1 : sub_from, &sub, &matches, r->error);
      }
      if (ok && s->unwinding) {
         ok = unwind_matches (r, s, &docs->v[i], &as, &matches, &unwound, memo, evaluates);
      } else if (ok) {
         bson_t arr = BSON_INITIALIZER;
         for (size_t k = 0; k < matches.n; k++) {
            char buf[16];
            const char *key;
            bson_uint32_to_string ((uint32_t) k, &key, buf, sizeof buf);
            bson_append_document (&arr, key, -1, matches.v[k]);
         }
         bson_value_t av;
         dj_value_from_doc (&arr, true, &av);
         bson_t *nd = dj_agg_with_path (docs->v[i], &as, &av, NULL, 0);
         bson_destroy (&arr);
         if (nd->len > DJ_MAX_BSON_SIZE) {
            bson_destroy (nd);
            ok = dj_err (r->error, 4568, "Total size of documents in %s matching pipeline's $lookup stage exceeds 16793600 bytes",
                         s->str2 ? s->str2 : "$documents");
         } else {
            bson_destroy (docs->v[i]);
            docs->v[i] = nd;
         }
      }
      for (size_t k = 0; !borrowed && k < matches.n; k++) {
         bson_destroy (matches.v[k]);
      }
      matches.n = 0; /* (borrowed ones are not matches' to free) */
      borrowed = false;
      dj_arena_reset (r->arena);
   }
   if (borrowed) {
      matches.n = 0; /* a failure left the hash join's documents there */
   }
   if (tmemo) {
      dj_rmemo_top (tmemo, NULL, NULL, 0, NULL); /* the last document it found is no longer read */
   }
   dj_docs_clear (&matches);
   bson_free (hits);
   if (ok && s->unwinding) {
      dj_docs_clear (docs);
      *docs = unwound;
   } else {
      dj_docs_clear (&unwound);
   }
   dj_docs_clear (&foreign_all);
   dj_agg_pregroup_free (&pg, s);
   dj_coll_checkin (run->ctx->engine, probe);
   dj_path_cleanup (&as);
   dj_path_cleanup (&fp);
   dj_path_cleanup (&lp);
   dj_jtable_free (&own_jt);
   dj_docs_clear (&own_foreign);
   bson_free (own_views);
   dj_buf_cleanup (&own_bytes);
   bson_free (vals.v);
   return ok;
}

