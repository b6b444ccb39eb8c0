/*
 * cmd_read.c -- find, count, distinct.
 *
 * Each runs in one LMDB read transaction: it sees one snapshot and never
 * blocks or is blocked by writers (in this or another process).
 */
#include "dj_commands.h"
#include "dj_heap.h"

#include <stdlib.h>

#define TOPK_KEYS 4

/* A result document with the positional match that produced it. */
typedef struct {
   bson_t *doc; /* owned */
   int32_t pos;
   uint64_t rid; /* showRecordId */
   uint64_t seq; /* arrival order: ties in a sort keep it */
   bson_value_t keys[TOPK_KEYS]; /* top-k: doc's sort keys (borrowed from doc), when the sort has at most TOPK_KEYS */
} result_t;

static const bson_t *
result_doc (const void *item)
{
   return ((const result_t *) item)->doc;
}

typedef struct {
   result_t **items; /* owned */
   size_t n, cap;
   int64_t skip; /* unsorted scans skip as they go */
   /* ORDER BY + LIMIT without an index in that order: only the topk first
    * documents in sort order are kept (a max-heap on items, the worst at
    * the root), so a sort with a limit copies k documents, not all. */
   const dj_sort_t *sort;
   size_t topk;
   bool keyed; /* the sort has at most TOPK_KEYS keys: items keep theirs (found once per document) */
   uint64_t seq;
   uint64_t max_rid; /* the last record id that matched, skipped ones too (tailable cursors go on from it) */
} collect_t;

/* Whether a comes after b in the result order (the sort, then arrival). */
static bool
later (const collect_t *c, const result_t *a, const result_t *b)
{
   int k = c->keyed ? dj_sort_cmp_keys (c->sort, a->keys, b->keys) : dj_sort_cmp (c->sort, a->doc, b->doc);
   return k > 0 || (k == 0 && a->seq > b->seq);
}

static void
heap_swap (collect_t *c, size_t i, size_t j)
{
   result_t *t = c->items[i];
   c->items[i] = c->items[j];
   c->items[j] = t;
}

/* The max-heap's order: the later result nearer the root (the first to go). */
static bool
heap_above (void *ctx, const void *a, const void *b)
{
   return later (ctx, *(result_t *const *) a, *(result_t *const *) b);
}

static void
sift_up (collect_t *c, size_t i)
{
   while (i > 0 && later (c, c->items[i], c->items[(i - 1) / 2])) {
      heap_swap (c, i, (i - 1) / 2);
      i = (i - 1) / 2;
   }
}

static void
sift_down (collect_t *c, size_t i)
{
   dj_heap_sift_down (c->items, sizeof *c->items, c->n, i, heap_above, c);
}

static bool
collect_fn (uint64_t rid, const bson_t *doc, int32_t pos, void *ctx)
{
   collect_t *c = ctx;
   c->max_rid = rid > c->max_rid ? rid : c->max_rid;
   if (c->skip > 0) {
      c->skip--;
      return true;
   }
   uint64_t seq = c->seq++;
   if (c->topk && c->n == c->topk) {
      result_t *worst = c->items[0];
      bson_value_t keys[TOPK_KEYS];
      if (c->keyed) {
         dj_sort_keys_of (c->sort, doc, keys);
      }
      if ((c->keyed ? dj_sort_cmp_keys (c->sort, keys, worst->keys) : dj_sort_cmp (c->sort, doc, worst->doc)) >= 0) {
         return true; /* not before the k-th: never copied (a tie arrived later) */
      }
      bson_destroy (worst->doc);
      *worst = (result_t) {bson_copy (doc), pos, rid, seq, {{0}}};
      if (c->keyed) {
         dj_sort_keys_of (c->sort, worst->doc, worst->keys);
      }
      sift_down (c, 0);
      return true;
   }
   result_t *r = bson_malloc (sizeof *r);
   *r = (result_t) {bson_copy (doc), pos, rid, seq, {{0}}};
   if (c->keyed) {
      dj_sort_keys_of (c->sort, r->doc, r->keys);
   }
   DJ_GROW (c->items, c->n, c->cap, 16);
   c->items[c->n++] = r;
   if (c->topk) {
      sift_up (c, c->n - 1);
   }
   return true;
}

static int
by_arrival (const void *a, const void *b)
{
   uint64_t x = (*(result_t *const *) a)->seq, y = (*(result_t *const *) b)->seq;
   return x < y ? -1 : x > y;
}

/* A find's blocking sort past internalQueryMaxBlockingSortMemoryUsageBytes:
 * with allowDiskUse (allowDiskUseByDefault when the find does not say) the
 * results go through storage's external sort (spill.c), else 292 as mongod.
 * Each result travels as {d: doc, p: pos, r: rid} (its text score, if any,
 * beside them, where a {$meta: "textScore"} key reads it), sorted by the
 * spec with "d." before each field; the sort is stable and the results
 * arrive in scan order, so ties keep it as the in-memory sort does.
 * https://www.mongodb.com/docs/manual/reference/command/find/ (allowDiskUse) */
static bool
sort_spilled (dj_engine_t *e, const bson_t *cmd, const bson_t *sort_spec, collect_t *col, bool *spilled, bson_error_t *error)
{
   size_t bytes = 0;
   int64_t limit = dj_engine_param (e, DJ_PARAM_SORT_BYTES);
   for (size_t i = 0; i < col->n; i++) {
      bytes += col->items[i]->doc->len;
   }
   *spilled = false;
   if ((int64_t) bytes <= limit) {
      return true;
   }
   bool allow = dj_engine_param (e, DJ_PARAM_DISK_BY_DEFAULT) > 0;
   dj_cmd_get_bool (cmd, "allowDiskUse", &allow, error);
   if (!allow) {
      return dj_err (error, 292,
                     "Executor error during find command :: caused by :: Sort exceeded memory limit of %" PRId64
                     " bytes, but did not opt in to external sorting.",
                     limit);
   }
   bson_t spec = BSON_INITIALIZER;
   bson_iter_t it;
   bson_iter_init (&it, sort_spec);
   while (bson_iter_next (&it)) {
      char *k = BSON_ITER_HOLDS_DOCUMENT (&it) ? bson_strdup (bson_iter_key (&it)) : bson_strdup_printf ("d.%s", bson_iter_key (&it));
      BSON_APPEND_VALUE (&spec, k, bson_iter_value (&it));
      bson_free (k);
   }
   dj_sort_t *by = dj_sort_new (&spec, error);
   bson_destroy (&spec);
   if (!by) {
      return false;
   }
   dj_spill_t *sp = dj_spill_new (e->path, by, limit);
   bool ok = true;
   for (size_t i = 0; i < col->n; i++) {
      result_t *r = col->items[i];
      if (ok) {
         bson_t *w = bson_new ();
         bson_iter_t ts;
         BSON_APPEND_DOCUMENT (w, "d", r->doc);
         BSON_APPEND_INT32 (w, "p", r->pos);
         BSON_APPEND_INT64 (w, "r", (int64_t) r->rid);
         if (bson_iter_init_find (&ts, r->doc, DJ_META_TEXT_SCORE)) {
            BSON_APPEND_VALUE (w, DJ_META_TEXT_SCORE, bson_iter_value (&ts));
         }
         ok = dj_spill_add (sp, w, error); /* steals w */
      }
      bson_destroy (r->doc);
      bson_free (r);
   }
   col->n = 0;
   ok = ok && dj_spill_finish (sp, error);
   bson_t *w;
   while (ok && (w = dj_spill_next (sp, error))) {
      bson_iter_t f;
      const uint8_t *d;
      uint32_t l;
      result_t *r = bson_malloc0 (sizeof *r);
      bson_iter_init_find (&f, w, "d");
      bson_iter_document (&f, &l, &d);
      r->doc = bson_new_from_data (d, l);
      bson_iter_next (&f);
      r->pos = bson_iter_int32 (&f);
      bson_iter_next (&f);
      r->rid = (uint64_t) bson_iter_int64 (&f);
      bson_destroy (w);
      DJ_GROW (col->items, col->n, col->cap, 16);
      col->items[col->n++] = r;
   }
   ok = ok && !error->code;
   dj_spill_destroy (sp);
   dj_sort_destroy (by);
   *spilled = ok;
   return ok;
}

static bool
check_nonneg (const char *field, int64_t v, bson_error_t *error)
{
   if (v < 0) {
      return dj_err (error, 51024, "BSON field '%s' value must be >= 0, actual value '%" PRId64 "'", field, v);
   }
   return true;
}

/* find's projection (*p: NULL for {}), parsed -- or the one parsed for an
 * earlier find from the very same spec bytes, taken from the handle's
 * keep (e->proj_cache): what dj_projection_new builds depends on nothing
 * else (a collation applies when it is evaluated, not parsed). The
 * caller puts it back (dj_keep_put) or destroys it. */
static bool
projection_checkout (dj_engine_t *e, const bson_t *spec, dj_projection_t **p, bson_error_t *error)
{
   *p = NULL;
   if (bson_empty (spec)) {
      return true;
   }
   *p = dj_keep_take (e->proj_cache, bson_get_data (spec), spec->len);
   return *p || (*p = dj_projection_new (spec, error));
}

/* find's options, by their place in its list of known fields (dj_cmd_find's
 * `known`): dj_cmd_check_fields_present tells which the command holds, and
 * only those are looked up -- an ORM's find names 3 or 4 of the 15, and
 * each lookup walks the command. An absent one is left as its getter
 * leaves it (engine.c: dj_cmd_get_doc, _int64, _bool). */
enum {
   F_FILTER, F_SORT, F_PROJECTION, F_HINT, F_SKIP, F_LIMIT, F_BATCH_SIZE, F_SINGLE_BATCH, F_MAX, F_MIN, F_RETURN_KEY,
   F_SHOW_RECORD_ID, F_TAILABLE, F_OPLOG_REPLAY, F_NO_CURSOR_TIMEOUT, F_AWAIT_DATA, F_ALLOW_PARTIAL_RESULTS, F_COLLATION
};

static bool
opt_doc (const bson_t *cmd, uint64_t given, int k, const char *field, bson_t *out, bool *present, bson_error_t *error)
{
   if (!(given >> k & 1)) {
      bson_init (out);
      *present = false;
      return true;
   }
   return dj_cmd_get_doc (cmd, field, out, present, error);
}

static bool
opt_int64 (const bson_t *cmd, uint64_t given, int k, const char *field, int64_t *out, bool *present, bson_error_t *error)
{
   *present = false;
   return !(given >> k & 1) || dj_cmd_get_int64 (cmd, field, out, present, error);
}

static bool
opt_bool (const bson_t *cmd, uint64_t given, int k, const char *field, bool *out)
{
   return !(given >> k & 1) || dj_cmd_get_bool (cmd, field, out, NULL);
}

/* dj_cmd_collation; without the field, the default collation (as it sets) */
static bool
opt_collation (const bson_t *cmd, uint64_t given, bson_error_t *error)
{
   if (!(given >> F_COLLATION & 1)) {
      dj_collation_set_current (dj_collation_default ());
      return true;
   }
   return dj_cmd_collation (cmd, error);
}

/* find: https://www.mongodb.com/docs/manual/reference/command/find/ */
bool
dj_cmd_find (dj_engine_t *e, const char *db, const bson_t *cmd, bson_t *reply, bson_error_t *error)
{
   static const char *const known[] = {
      "filter", "sort", "projection", "hint", "skip", "limit", "batchSize", "singleBatch", "max", "min",
      "returnKey", "showRecordId", "tailable", "oplogReplay", "noCursorTimeout", "awaitData", "allowPartialResults",
      "collation", "allowDiskUse", "let", "readOnce", "$_requestResumeToken", "$_resumeAfter", NULL};
   const char *name;
   bson_t filter, sort_spec, proj_spec, min_spec, max_spec;
   bool has_filter, has_sort, has_proj, has_min, has_max, single = false, ok = false, return_key = false, show_rid = false;
   bool tailable = false, await_data = false;
   int64_t skip = 0, limit = 0, batch = -1;
   bool p1, p2, p3;
   int hint = -1, used = -1; /* the hinted index; the index the scan used (returnKey) */
   dj_buf_t lo, hi;          /* min and max as keys of the hinted index */
   dj_find_spec_t fs = {0};
   dj_coll_t *c = NULL;
   dj_ctx_t ctx = {0};
   collect_t col = {0};

   uint64_t given; /* bit F_x: the option is in cmd (only those are looked up) */
   if (!dj_cmd_check_fields_present (cmd, known, &given, error) || !dj_cmd_collection (cmd, &name, error) ||
       !dj_ns_valid (db, name, error) || !opt_doc (cmd, given, F_FILTER, "filter", &filter, &has_filter, error) ||
       !opt_doc (cmd, given, F_SORT, "sort", &sort_spec, &has_sort, error) ||
       !opt_doc (cmd, given, F_PROJECTION, "projection", &proj_spec, &has_proj, error) ||
       !opt_int64 (cmd, given, F_SKIP, "skip", &skip, &p1, error) ||
       !opt_int64 (cmd, given, F_LIMIT, "limit", &limit, &p2, error) ||
       !opt_int64 (cmd, given, F_BATCH_SIZE, "batchSize", &batch, &p3, error) || !check_nonneg ("skip", skip, error) ||
       !check_nonneg ("limit", limit, error) || (p3 && !check_nonneg ("batchSize", batch, error)) ||
       !opt_bool (cmd, given, F_SINGLE_BATCH, "singleBatch", &single) ||
       !opt_bool (cmd, given, F_RETURN_KEY, "returnKey", &return_key) ||
       !opt_bool (cmd, given, F_SHOW_RECORD_ID, "showRecordId", &show_rid) ||
       !opt_doc (cmd, given, F_MIN, "min", &min_spec, &has_min, error) ||
       !opt_doc (cmd, given, F_MAX, "max", &max_spec, &has_max, error) || !opt_collation (cmd, given, error) ||
       !opt_bool (cmd, given, F_TAILABLE, "tailable", &tailable) ||
       !opt_bool (cmd, given, F_AWAIT_DATA, "awaitData", &await_data)) {
      return false;
   }
   /* https://www.mongodb.com/docs/manual/core/tailable-cursors/ */
   if (await_data && !tailable) {
      return dj_err (error, DJ_FailedToParse, "Cannot set 'awaitData' without also setting 'tailable'");
   }
   if (tailable && (single || (has_sort && !bson_empty (&sort_spec) && !bson_has_field (&sort_spec, "$natural")))) {
      return dj_err (error, DJ_BadValue, "error processing query: a tailable cursor %s",
                     single ? "cannot be a single batch" : "reads in insertion order: no sort but $natural");
   }
   if (!p3) {
      batch = -1;
   }
   has_min = has_min && !bson_empty (&min_spec);
   has_max = has_max && !bson_empty (&max_spec);
   if (has_min && has_max) {
      /* https://www.mongodb.com/docs/manual/reference/method/cursor.min/#index-bounds */
      bson_iter_t a, b;
      bool same = bson_count_keys (&min_spec) == bson_count_keys (&max_spec);
      bson_iter_init (&a, &min_spec);
      bson_iter_init (&b, &max_spec);
      while (same && bson_iter_next (&a) && bson_iter_next (&b)) {
         same = !strcmp (bson_iter_key (&a), bson_iter_key (&b));
      }
      if (!same) {
         return dj_err (error, 51176, "min and max must have the same field names");
      }
   }
   dj_buf_init (&lo);
   dj_buf_init (&hi);
   bson_t no_projection = BSON_INITIALIZER; /* the projection is parsed last, by projection_checkout */
   if (!dj_find_spec_parse (cmd, &filter, &sort_spec, &no_projection, &fs, error) ||
       (has_proj && !projection_checkout (e, &proj_spec, &fs.proj, error))) {
      goto done;
   }
   if (has_sort && bson_has_field (&sort_spec, "$natural") && dj_matcher_text (fs.m)) {
      /* https://www.mongodb.com/docs/manual/reference/operator/query/text/#restrictions */
      dj_err (error, DJ_BadValue, "text expression not allowed with $natural sort order");
      goto done;
   }
   if (!dj_txn_begin (e, false, &ctx, error)) {
      goto done;
   }
   c = dj_coll_checkout (&ctx, db, name, error); /* read only; handed back at the end */
   if (!c && error->code) {
      goto done;
   }
   if ((given >> F_HINT & 1) && !dj_cmd_hint (cmd, c, &hint, error)) {
      goto done;
   }
   if (tailable && c && !c->capped) {
      dj_err (error, DJ_BadValue, "error processing query: tailable cursor requested on non capped collection %s.%s", db,
              name);
      goto done;
   }
   if (tailable) {
      hint = DJ_HINT_NATURAL; /* in insertion order, the order later documents come in */
   }
   bool hinted = hint >= 0 || hint == DJ_HINT_NATURAL;
   if (hint == DJ_HINT_NATURAL) {
      hint = -1; /* the collection scan */
   }
   if (c && (has_min || has_max)) {
      /* min/max bound the hinted index's keys: min inclusive, max exclusive
       * https://www.mongodb.com/docs/manual/reference/method/cursor.min/ */
      if (hint < 0) {
         dj_err (error, 51173, "When using min()/max() a hint of which index to use must be provided");
         goto done;
      }
      if ((has_min && !dj_index_key_bound (&c->indexes[hint], &min_spec, &lo, error)) ||
          (has_max && !dj_index_key_bound (&c->indexes[hint], &max_spec, &hi, error))) {
         goto done;
      }
   }
   bool presorted = false;
   if (c && hinted) {
      /* a hint fixes the plan: the index's entries in key order, so without
       * a sort the documents come in the hinted index's order */
      col.skip = fs.sort ? 0 : skip;
      int64_t max = (!fs.sort && limit) ? skip + limit : 0;
      used = hint;
      if (!dj_plan_scan_hinted (&ctx, c, hint, has_min ? &lo : NULL, has_max ? &hi : NULL, fs.m, &fs.let.vars, max, collect_fn, &col,
                                error)) {
         goto done;
      }
      presorted = !fs.sort; /* nothing to sort; skip and limit applied */
   } else if (c && return_key) {
      used = dj_plan_index (c, fs.m, fs.let.top ? NULL : fs.sort); /* (what returnKey reads: the plan's index) */
   }
   if (c && !hinted && fs.sort && !fs.let.top) { /* (the sorted walk takes no variables) */
      /* an index in the sort's order streams sorted documents: skip and
       * limit then apply during the walk */
      col.skip = skip;
      if (!dj_plan_scan_sorted (&ctx, c, fs.m, fs.sort, limit ? skip + limit : 0, collect_fn, &col, &presorted, error) &&
          presorted) {
         goto done;
      }
      if (!presorted) {
         col.skip = 0;
      }
   }
   if (c && !hinted && !presorted) {
      /* without a sort, the scan itself can skip and stop at the limit;
       * with one, only the first skip + limit in sort order are kept */
      col.skip = fs.sort ? 0 : skip;
      int64_t max = (!fs.sort && limit) ? skip + limit : 0;
      col.sort = fs.sort;
      col.topk = fs.sort && limit && skip <= INT64_MAX - limit ? (size_t) (skip + limit) : 0;
      col.keyed = col.topk && dj_sort_nkeys (fs.sort) <= TOPK_KEYS;
      /* a blocking sort orders them anyway: an index's matches may come in record order */
      if (fs.sort ? !dj_plan_scan_unordered (&ctx, c, fs.m, &fs.let.vars, collect_fn, &col, error)
                  : !dj_plan_scan_vars (&ctx, c, fs.m, &fs.let.vars, false, max, collect_fn, &col, error)) {
         goto done;
      }
      if (col.topk && col.n > 1) {
         qsort (col.items, col.n, sizeof *col.items, by_arrival); /* the stable sort below keeps ties in this order */
      }
   }
   dj_txn_abort (&ctx);
   bool spilled = false;
   if (fs.sort && !presorted && !sort_spilled (e, cmd, &sort_spec, &col, &spilled, error)) {
      goto done;
   }
   if (fs.sort && !presorted) {
      if (!spilled) {
         dj_sort_items (fs.sort, (void **) col.items, col.n, result_doc);
      }
      /* apply skip and limit after sorting */
      size_t from = (size_t) (skip < (int64_t) col.n ? skip : (int64_t) col.n);
      size_t to = limit ? (from + (size_t) limit < col.n ? from + (size_t) limit : col.n) : col.n;
      for (size_t i = 0; i < from; i++) {
         bson_destroy (col.items[i]->doc);
         bson_free (col.items[i]);
      }
      for (size_t i = to; i < col.n; i++) {
         bson_destroy (col.items[i]->doc);
         bson_free (col.items[i]);
      }
      if (to > from) {
         memmove (col.items, col.items + from, sizeof (result_t *) * (to - from));
      }
      col.n = to - from;
   }
   /* the results, projected; the cursor takes them over */
   bson_t **docs = bson_malloc (sizeof (bson_t *) * (col.n ? col.n : 1));
   for (size_t i = 0; i < col.n; i++) {
      if (return_key) {
         /* only the index key; {} when no index was used
          * https://www.mongodb.com/docs/manual/reference/command/find/ (returnKey) */
         bson_t key = BSON_INITIALIZER;
         if (used >= 0) {
            bson_destroy (&key);
            dj_index_key_doc (&c->indexes[used], col.items[i]->doc, &key);
         }
         docs[i] = bson_copy (&key);
         bson_destroy (&key);
      } else if (fs.proj) {
         bson_t out;
         if (!dj_projection_apply (fs.proj, col.items[i]->doc, col.items[i]->pos, &out, error)) {
            dj_bsons_free (docs, 0, i);
            goto done;
         }
         /* the projected document goes into the result's own bson_t (moved,
          * emptied, its buffer kept): no allocation per row (bson_new's
          * aligned one is glibc's slow memalign path) */
         docs[i] = col.items[i]->doc;
         col.items[i]->doc = NULL;
         bson_reinit (docs[i]);
         bson_concat (docs[i], &out);
         bson_destroy (&out);
      } else {
         docs[i] = col.items[i]->doc; /* moved (NULL left: bson_destroy ignores it) */
         col.items[i]->doc = NULL;
      }
      if (show_rid && !return_key) { /* returnKey gives the key alone (the command-monitoring spec test) */
         /* https://www.mongodb.com/docs/manual/reference/command/find/ (showRecordId) */
         BSON_APPEND_INT64 (docs[i], "$recordId", (int64_t) col.items[i]->rid);
      }
   }
   for (size_t i = 0; dj_matcher_text (fs.m) && i < col.n; i++) {
      bson_t *plain = dj_meta_strip (docs[i]); /* the text score is metadata, never a field of the reply */
      if (plain) {
         bson_destroy (docs[i]);
         docs[i] = plain;
      }
   }
   /* "db.name" (bson_strdup_printf's formatting was ~1,100 instructions a find) */
   size_t dlen = strlen (db), nlen = strlen (name);
   char *ns = bson_malloc (dlen + nlen + 2);
   memcpy (ns, db, dlen);
   ns[dlen] = '.';
   memcpy (ns + dlen + 1, name, nlen + 1);
   if (tailable && c) {
      dj_tail_t *tail = bson_malloc0 (sizeof *tail);
      tail->db = bson_strdup (db);
      tail->coll = bson_strdup (name);
      tail->filter = has_filter ? bson_copy (&filter) : bson_new ();
      tail->projection = fs.proj ? bson_copy (&proj_spec) : NULL;
      tail->await_data = await_data;
      tail->last_rid = col.max_rid;
      dj_reply_tailable (e, reply, ns, docs, col.n, batch, tail);
   } else {
      /* a limit is already applied to the materialised results, so the
       * cursor closes by itself once they are handed out. As mongod's plan,
       * a scan that reached the limit or sorted in memory knows it has
       * nothing more; any other does not until it looks (cursor.c) */
      bool ended = (limit && (int64_t) col.n >= limit) || (fs.sort && !presorted);
      dj_reply_find_results (e, reply, ns, docs, col.n, batch, single, !ended);
   }
   bson_free (ns);
   ok = true;
done:
   for (size_t i = 0; i < col.n; i++) {
      bson_destroy (col.items[i]->doc);
      bson_free (col.items[i]);
   }
   bson_free (col.items);
   if (fs.proj) {
      dj_keep_put (e->proj_cache, bson_get_data (&proj_spec), proj_spec.len, fs.proj); /* kept for the next find */
      fs.proj = NULL;
   }
   dj_find_spec_destroy (&fs);
   dj_buf_cleanup (&lo);
   dj_buf_cleanup (&hi);
   dj_coll_checkin (e, c);
   return dj_cmd_end (&ctx, NULL, ok, error);
}

typedef struct {
   int64_t n;
} count_t;

static bool
count_fn (uint64_t rid, const bson_t *doc, int32_t pos, void *ctx)
{
   (void) rid;
   (void) doc;
   (void) pos;
   ((count_t *) ctx)->n++;
   return true;
}

/* What count and distinct start with: the query's matcher (*m, owned by
 * the caller), a read transaction, the collection (*c: NULL when it does
 * not exist; dj_coll_checkout's, so the caller hands it back with
 * dj_coll_checkin) and the hint (dj_cmd_hint). On failure the caller still
 * cleans up all three. */
static bool
open_filtered (dj_engine_t *e, const char *db, const char *name, const bson_t *cmd, const bson_t *query, dj_matcher_t **m,
               dj_ctx_t *ctx, dj_coll_t **c, int *hint, bson_error_t *error)
{
   if (!(*m = dj_matcher_new (query, error)) || !dj_txn_begin (e, false, ctx, error)) {
      return false;
   }
   *c = dj_coll_checkout (ctx, db, name, error); /* read only: the caller hands it back */
   if (!*c && error->code) {
      return false;
   }
   return dj_cmd_hint (cmd, *c, hint, error);
}

/* count: https://www.mongodb.com/docs/manual/reference/command/count/ */
bool
dj_cmd_count (dj_engine_t *e, const char *db, const bson_t *cmd, bson_t *reply, bson_error_t *error)
{
   static const char *const known[] = {"query", "limit", "skip", "hint", "collation", "readConcern", "fields", NULL};
   const char *name;
   bson_t query;
   bool has_q, p1, p2, ok = false;
   int64_t skip = 0, limit = 0;
   dj_matcher_t *m = NULL;
   dj_coll_t *c = NULL;
   dj_ctx_t ctx = {0};
   count_t cnt = {0};

   if (!dj_cmd_target (cmd, db, known, &name, error) || !dj_cmd_get_doc (cmd, "query", &query, &has_q, error) ||
       !dj_cmd_get_int64 (cmd, "skip", &skip, &p1, error) || !dj_cmd_get_int64 (cmd, "limit", &limit, &p2, error) ||
       !check_nonneg ("skip", skip, error) || !dj_cmd_collation (cmd, error)) {
      return false;
   }
   if (limit < 0) {
      limit = -limit; /* count treats a negative limit as its absolute value */
   }
   int hint;
   if (!open_filtered (e, db, name, cmd, &query, &m, &ctx, &c, &hint, error)) {
      goto done;
   }
   bool hinted = hint >= 0 || hint == DJ_HINT_NATURAL;
   if (c && hinted &&
       !dj_plan_scan_hinted (&ctx, c, hint >= 0 ? hint : -1, NULL, NULL, m, NULL, limit ? skip + limit : 0, count_fn, &cnt,
                             error)) {
      goto done;
   }
   if (c && !hinted && limit && !dj_plan_scan (&ctx, c, m, false, skip + limit, count_fn, &cnt, error)) {
      goto done;
   }
   if (c && !hinted && !limit && !dj_plan_count (&ctx, c, m, NULL, &cnt.n, error)) { /* from index keys if it can */
      goto done;
   }
   int64_t n = cnt.n - skip;
   if (n < 0) {
      n = 0;
   }
   if (limit && n > limit) {
      n = limit;
   }
   BSON_APPEND_INT32 (reply, "n", (int32_t) n);
   BSON_APPEND_DOUBLE (reply, "ok", 1.0);
   ok = true;
done:
   dj_matcher_destroy (m);
   dj_coll_checkin (e, c);
   return dj_cmd_end (&ctx, NULL, ok, error);
}

typedef struct {
   dj_path_t path;
   bson_value_t *vals; /* owned copies */
   size_t n;
} distinct_t;

static void
distinct_add (const bson_value_t *v, void *ctx)
{
   distinct_t *d = ctx;
   if (v->value_type == BSON_TYPE_ARRAY) {
      dj_value_each (v, distinct_add, ctx); /* nested arrays too */
      return;
   }
   for (size_t i = 0; i < d->n; i++) {
      if (dj_value_cmp (&d->vals[i], v) == 0 && dj_type_rank (d->vals[i].value_type) == dj_type_rank (v->value_type)) {
         return;
      }
   }
   d->vals = bson_realloc (d->vals, sizeof (bson_value_t) * (d->n + 1));
   bson_value_copy (v, &d->vals[d->n++]);
}

static bool
distinct_fn (uint64_t rid, const bson_t *doc, int32_t pos, void *ctx)
{
   distinct_t *d = ctx;
   bson_value_t dv;
   (void) rid;
   (void) pos;
   dj_value_from_doc (doc, false, &dv);
   dj_path_visit (&dv, &d->path, 0, false, distinct_add, d);
   return true;
}

/* distinct: https://www.mongodb.com/docs/manual/reference/command/distinct/ */
bool
dj_cmd_distinct (dj_engine_t *e, const char *db, const bson_t *cmd, bson_t *reply, bson_error_t *error)
{
   static const char *const known[] = {"key", "query", "collation", "hint", NULL};
   const char *name;
   bson_t query;
   bson_iter_t it;
   bool has_q, ok = false;
   dj_matcher_t *m = NULL;
   dj_coll_t *c = NULL;
   dj_ctx_t ctx = {0};
   distinct_t d = {0};

   if (!dj_cmd_target (cmd, db, known, &name, error) || !dj_cmd_get_doc (cmd, "query", &query, &has_q, error) ||
       !dj_cmd_collation (cmd, error)) {
      return false;
   }
   if (!bson_iter_init_find (&it, cmd, "key") || !BSON_ITER_HOLDS_UTF8 (&it)) {
      return dj_err (error, 40414, "BSON field 'distinct.key' is missing but a required field");
   }
   const char *key = bson_iter_utf8 (&it, NULL);
   if (!dj_path_init (&d.path, key, strlen (key), error)) {
      return dj_err (error, DJ_BadValue, "FieldPath field names may not be empty strings.");
   }
   int hint;
   if (!open_filtered (e, db, name, cmd, &query, &m, &ctx, &c, &hint, error)) {
      goto done;
   }
   if (c && !dj_plan_scan (&ctx, c, m, false, 0, distinct_fn, &d, error)) {
      goto done;
   }
   bson_t arr;
   char buf[16];
   BSON_APPEND_ARRAY_BEGIN (reply, "values", &arr);
   for (size_t i = 0; i < d.n; i++) {
      bson_append_value (&arr, dj_array_key ((uint32_t) i, buf), -1, &d.vals[i]);
   }
   bson_append_array_end (reply, &arr);
   BSON_APPEND_DOUBLE (reply, "ok", 1.0);
   ok = true;
done:
   dj_txn_abort (&ctx);
   dj_values_free (d.vals, d.n);
   dj_path_cleanup (&d.path);
   dj_coll_checkin (e, c);
   dj_matcher_destroy (m);
   return ok;
}

/* explain's executionStats (verbosity "executionStats", or the default
 * "allPlansExecution"): the plan run to its end, what it returned and how
 * long it took. A find or count explained is run; a write explained is
 * not, so it reports none. Only the
 * one plan djongo considers runs, so allPlansExecution is empty, as
 * mongod's is when a single plan was a candidate.
 * https://www.mongodb.com/docs/manual/reference/explain-results/#executionstats */
static bool
append_execution_stats (dj_ctx_t *ctx, dj_coll_t *c, const dj_matcher_t *m, const char *verb, const bson_t *inner,
                        int hint, bool all_plans, const bson_t *plan, bson_t *reply, bson_error_t *error)
{
   if (strcmp (verb, "find") && strcmp (verb, "count")) {
      return true; /* (an aggregate's stats belong in its stages, per stage: not kept here) */
   }
   int64_t start = dj_now_ms (), skip = 0, limit = 0;
   bool has;
   count_t cnt = {0};
   if (!dj_cmd_get_int64 (inner, "skip", &skip, &has, error) || !dj_cmd_get_int64 (inner, "limit", &limit, &has, error)) {
      return false;
   }
   if (c && (hint >= 0 || hint == DJ_HINT_NATURAL)
          ? !dj_plan_scan_hinted (ctx, c, hint >= 0 ? hint : -1, NULL, NULL, m, NULL, 0, count_fn, &cnt, error)
          : c && !dj_plan_scan (ctx, c, m, false, 0, count_fn, &cnt, error)) {
      return false;
   }
   int64_t n = cnt.n - (skip > 0 ? skip : 0);
   if (n < 0) {
      n = 0;
   }
   if (limit && n > (limit < 0 ? -limit : limit)) {
      n = limit < 0 ? -limit : limit;
   }
   bson_t st, stages, none;
   bson_iter_t it;
   BSON_APPEND_DOCUMENT_BEGIN (reply, "executionStats", &st);
   BSON_APPEND_BOOL (&st, "executionSuccess", true);
   BSON_APPEND_INT64 (&st, "nReturned", n);
   BSON_APPEND_INT64 (&st, "executionTimeMillis", dj_now_ms () - start);
   BSON_APPEND_DOCUMENT_BEGIN (&st, "executionStages", &stages);
   if (bson_iter_init_find (&it, plan, "stage") && BSON_ITER_HOLDS_UTF8 (&it)) {
      BSON_APPEND_UTF8 (&stages, "stage", bson_iter_utf8 (&it, NULL));
   }
   BSON_APPEND_INT64 (&stages, "nReturned", n);
   bson_append_document_end (&st, &stages);
   if (all_plans) {
      BSON_APPEND_ARRAY_BEGIN (&st, "allPlansExecution", &none);
      bson_append_array_end (&st, &none);
   }
   bson_append_document_end (reply, &st);
   return true;
}

/* explain: {explain: {find|count|delete|update ...}, verbosity} -> the plan
 * in MongoDB's queryPlanner shape, and with a verbosity other than
 * "queryPlanner" (the default is "allPlansExecution") its executionStats.
 * https://www.mongodb.com/docs/manual/reference/command/explain/ */
bool
dj_cmd_explain (dj_engine_t *e, const char *db, const bson_t *cmd, bson_t *reply, bson_error_t *error)
{
   static const char *const known[] = {"verbosity", NULL};
   bson_iter_t it;
   bson_t inner, filter, sort_spec, qp, plan;
   bool has, ok = false;
   dj_matcher_t *m = NULL;
   dj_sort_t *sort = NULL;
   dj_coll_t *c = NULL;
   dj_ctx_t ctx = {0};
   const char *name;
   bson_iter_t pipeline; /* aggregate: its pipeline, the stages after pipeline_from listed */
   int pipeline_from = -1;

   if (!dj_cmd_check_fields (cmd, known, error) || !dj_cmd_get_doc (cmd, "explain", &inner, &has, error)) {
      return false;
   }
   if (!bson_iter_init (&it, &inner) || !bson_iter_next (&it)) {
      return dj_err (error, DJ_FailedToParse, "explain command requires a nested object");
   }
   const char *verbosity = "allPlansExecution";
   bson_iter_t vit;
   if (bson_iter_init_find (&vit, cmd, "verbosity")) {
      verbosity = BSON_ITER_HOLDS_UTF8 (&vit) ? bson_iter_utf8 (&vit, NULL) : "";
      if (strcmp (verbosity, "queryPlanner") && strcmp (verbosity, "executionStats") &&
          strcmp (verbosity, "allPlansExecution")) {
         return dj_err (error, DJ_BadValue, "Enumeration value '%s' for field 'verbosity' is not a valid value.",
                        verbosity);
      }
   }
   const char *verb = bson_iter_key (&it);
   if (!dj_cmd_collection (&inner, &name, error) || !dj_ns_valid (db, name, error)) {
      return false;
   }
   bson_init (&filter);
   bson_init (&sort_spec);
   if (!strcmp (verb, "find")) {
      dj_cmd_get_doc (&inner, "filter", &filter, &has, error);
      dj_cmd_get_doc (&inner, "sort", &sort_spec, &has, error);
   } else if (!strcmp (verb, "count")) {
      dj_cmd_get_doc (&inner, "query", &filter, &has, error);
   } else if (!strcmp (verb, "delete") || !strcmp (verb, "update")) {
      bson_iter_t s, st;
      if (bson_iter_init_find (&s, &inner, !strcmp (verb, "delete") ? "deletes" : "updates") && BSON_ITER_HOLDS_ARRAY (&s) &&
          bson_iter_recurse (&s, &st) && bson_iter_next (&st) && BSON_ITER_HOLDS_DOCUMENT (&st)) {
         bson_t stmt;
         const uint8_t *d;
         uint32_t l;
         bson_iter_document (&st, &l, &d);
         bson_init_static (&stmt, d, l);
         dj_cmd_get_doc (&stmt, "q", &filter, &has, error);
      }
   } else if (!strcmp (verb, "aggregate")) {
      /* the pipeline's leading $match is what the planner answers (the
       * rest runs over its documents: listed as the "stages" after it) */
      if (!bson_iter_init_find (&it, &inner, "pipeline") || !BSON_ITER_HOLDS_ARRAY (&it)) {
         return dj_err (error, DJ_FailedToParse, "'pipeline' option must be specified as an array");
      }
      bson_iter_t st, m0;
      pipeline_from = 0;
      bson_iter_recurse (&it, &st);
      if (bson_iter_next (&st) && BSON_ITER_HOLDS_DOCUMENT (&st) && bson_iter_recurse (&st, &m0) && bson_iter_next (&m0) &&
          !strcmp (bson_iter_key (&m0), "$match") && BSON_ITER_HOLDS_DOCUMENT (&m0)) {
         const uint8_t *d;
         uint32_t l;
         bson_iter_document (&m0, &l, &d);
         bson_destroy (&filter);
         bson_init_static (&filter, d, l);
         pipeline_from = 1;
      }
      pipeline = it;
   } else {
      return dj_err (error, DJ_NotImplemented, "explain of '%s' is not supported by the embedded engine", verb);
   }
   if (!dj_cmd_collation (&inner, error) || !(m = dj_matcher_new (&filter, error)) ||
       (!bson_empty (&sort_spec) && !(sort = dj_sort_new (&sort_spec, error))) || !dj_txn_begin (e, false, &ctx, error)) {
      goto done;
   }
   c = dj_coll_load (&ctx, db, name, error);
   if (!c && error->code) {
      goto done;
   }
   int hint;
   if (!dj_cmd_hint (&inner, c, &hint, error)) {
      goto done;
   }
   char *ns = bson_strdup_printf ("%s.%s", db, name);
   bson_init (&qp);
   BSON_APPEND_UTF8 (&qp, "namespace", ns);
   BSON_APPEND_DOCUMENT (&qp, "parsedQuery", &filter);
   BSON_APPEND_DOCUMENT_BEGIN (&qp, "winningPlan", &plan);
   dj_plan_explain (c, m, sort, hint == DJ_HINT_NATURAL ? DJ_PLAN_COLLSCAN : hint, &plan);
   bson_append_document_end (&qp, &plan);
   BSON_APPEND_DOCUMENT (reply, "queryPlanner", &qp);
   if (strcmp (verbosity, "queryPlanner")) {
      bson_iter_t wp;
      bson_t winning;
      const uint8_t *wd;
      uint32_t wl;
      bson_iter_init_find (&wp, &qp, "winningPlan");
      bson_iter_document (&wp, &wl, &wd);
      bson_init_static (&winning, wd, wl);
      if (!append_execution_stats (&ctx, c, m, verb, &inner, hint, !strcmp (verbosity, "allPlansExecution"), &winning,
                                   reply, error)) {
         bson_destroy (&qp);
         bson_free (ns);
         goto done;
      }
   }
   if (pipeline_from >= 0) {
      /* mongod's shape for a pipeline: the $cursor stage that reads the
       * collection, then the stages that run over its documents; with
       * executionStats the pipeline runs and $sort/$group say whether they
       * spilled (usedDisk, spills), as mongod's do
       * https://www.mongodb.com/docs/manual/reference/explain-results/ */
      bson_t stages, cur, qpw;
      bson_iter_t st;
      int k = 0, n = 0, nspills = 0;
      int64_t *spills = NULL;
      if (strcmp (verbosity, "queryPlanner") && !dj_cmd_aggregate_spills (e, db, name, &ctx, &inner, &spills, &nspills, error)) {
         bson_destroy (&qp);
         bson_free (ns);
         goto done;
      }
      char kb[16];
      const char *key;
      BSON_APPEND_ARRAY_BEGIN (reply, "stages", &stages);
      bson_uint32_to_string ((uint32_t) n++, &key, kb, sizeof kb);
      BSON_APPEND_DOCUMENT_BEGIN (&stages, key, &cur);
      BSON_APPEND_DOCUMENT_BEGIN (&cur, "$cursor", &qpw);
      BSON_APPEND_DOCUMENT (&qpw, "queryPlanner", &qp);
      bson_append_document_end (&cur, &qpw);
      bson_append_document_end (&stages, &cur);
      bson_iter_recurse (&pipeline, &st);
      while (bson_iter_next (&st)) {
         if (k++ < pipeline_from) {
            continue;
         }
         bson_uint32_to_string ((uint32_t) n++, &key, kb, sizeof kb);
         bson_iter_t op;
         if (k - 1 < nspills && BSON_ITER_HOLDS_DOCUMENT (&st) && bson_iter_recurse (&st, &op) && bson_iter_next (&op) &&
             (!strcmp (bson_iter_key (&op), "$sort") || !strcmp (bson_iter_key (&op), "$group"))) {
            bson_t sd;
            BSON_APPEND_DOCUMENT_BEGIN (&stages, key, &sd);
            bson_append_value (&sd, bson_iter_key (&op), -1, bson_iter_value (&op));
            BSON_APPEND_BOOL (&sd, "usedDisk", spills[k - 1] > 0);
            BSON_APPEND_INT64 (&sd, "spills", spills[k - 1]);
            bson_append_document_end (&stages, &sd);
         } else {
            bson_append_value (&stages, key, -1, bson_iter_value (&st));
         }
      }
      bson_free (spills);
      bson_append_array_end (reply, &stages);
   }
   bson_destroy (&qp);
   BSON_APPEND_DOUBLE (reply, "ok", 1.0);
   bson_free (ns);
   ok = true;
done:
   dj_matcher_destroy (m);
   dj_sort_destroy (sort);
   return dj_cmd_end (&ctx, c, ok, error);
}
