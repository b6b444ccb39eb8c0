/*
 * write_many.c -- many records deleted or updated in one pass: what a
 * delete statement matched, removed with its index entries a sorted batch
 * at a time; what a multi-document update matched, rewritten in one cursor
 * walk with its index changes sorted (the "updates" part below).
 *
 * dj_record_delete, one document at a time, descends the B-tree once per
 * index entry and once for the record, and logs an entry of its own. Here
 * the record ids are sorted and the records walked with one cursor: after
 * LMDB deletes an entry the cursor stands on the next one, so records side
 * by side (a statement's matches usually are: ids grow with insertion) need
 * no seek at all, and a seek near the cursor stays within its page. Each
 * document's index entries are collected on the way (one walk over its
 * fields serves every index on one top-level field: "slots" below); then
 * each index's entries are sorted (when record order did not already give
 * them in key order) and deleted the same way, and the change log gets one
 * entry for the batch (changes.c: "A batch").
 *
 * A batch is at most BATCH records, so that the keys held in memory stay
 * bounded whatever the statement matched.
 */
#include "storage-private.h"

#include "dj_bson_array.h"
#include "dj_bson_walk.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#define BATCH 4096

/* ---- a cursor deleting keys in ascending order ---------------------------- */

typedef struct {
   MDB_cursor *cur;
   MDB_val k, v;
   bool on; /* k, v: the entry the cursor stands on */
} seq_t;

/* Puts the cursor on key (found: 0, s->v its value), without a seek when
 * it stands there already; MDB_NOTFOUND when there is no such key. */
static int
seq_find (seq_t *s, const void *key, size_t n)
{
   if (s->on && s->k.mv_size == n && !memcmp (s->k.mv_data, key, n)) {
      return 0;
   }
   s->k.mv_size = n;
   s->k.mv_data = (void *) key;
   int rc = mdb_cursor_get (s->cur, &s->k, &s->v, MDB_SET_KEY);
   s->on = rc == 0;
   return rc;
}

/* Deletes the entry the cursor stands on; the cursor then stands on the
 * one after it (none past the last: LMDB answers EINVAL, as walk.c says). */
static int
seq_del (seq_t *s)
{
   int rc = mdb_cursor_del (s->cur, 0);
   if (rc) {
      s->on = false;
      return rc;
   }
   rc = mdb_cursor_get (s->cur, &s->k, &s->v, MDB_GET_CURRENT);
   s->on = rc == 0;
   return rc == 0 || rc == MDB_NOTFOUND || rc == EINVAL ? 0 : rc;
}

/* Puts the cursor on record rid of c (k: its key, written here) and doc
 * (static) on its document: 1; 0: no such record; -1: an error. */
static int
seq_record (seq_t *s, const dj_coll_t *c, uint64_t rid, dj_buf_t *k, bson_t *doc, bson_error_t *error)
{
   dj_record_key (k, c->id, rid);
   int rc = seq_find (s, k->data, k->len);
   if (rc == MDB_NOTFOUND) {
      return 0;
   }
   if (rc) {
      dj_lmdb_error (rc, error, "record read");
      return -1;
   }
   if (!bson_init_static (doc, s->v.mv_data, s->v.mv_size)) {
      dj_err (error, DJ_InternalError, "corrupt record %" PRIu64 " in %s", rid, c->ns);
      return -1;
   }
   return 1;
}

/* ---- one batch ---------------------------------------------------------------- */

/* An index's entries to delete: keys end to end in `keys`, key j ending at
 * ends[j]; unsorted: some key came after a greater one (else they are in
 * LMDB's order already, as a statement's matches in record order usually
 * give them: no sort needed). */
typedef struct {
   dj_buf_t keys;
   size_t *ends;
   size_t n, cap;
   bool unsorted;
} entries_t;

/* Ends e's next entry: the bytes appended to e->keys since start. */
static void
entries_end (entries_t *e, size_t start)
{
   if (e->n && !e->unsorted) {
      size_t prev = e->n > 1 ? e->ends[e->n - 2] : 0;
      e->unsorted = dj_key_cmp (e->keys.data + prev, start - prev, e->keys.data + start, e->keys.len - start) > 0;
   }
   DJ_GROW (e->ends, e->n, e->cap, 64);
   e->ends[e->n++] = e->keys.len;
}

/* An entry's key, and its bytes 8..16 (past the index id all of an index's
 * keys share; zeros past the end) as a number: what decides most comparisons. */
typedef struct {
   uint64_t head;
   const uint8_t *p;
   size_t len;
} span_t;

static inline int
span_cmp (const span_t *x, const span_t *y)
{
   if (x->head != y->head) {
      return x->head < y->head ? -1 : 1;
   }
   return dj_key_cmp (x->p, x->len, y->p, y->len);
}

/* Sorts v[0..n) (tmp: room for n more), a merge sort: qsort's indirect
 * comparisons cost as much as the LMDB seeks the sort saves. */
static void
span_sort (span_t *v, span_t *tmp, size_t n)
{
   if (n < 2) {
      return;
   }
   size_t h = n / 2;
   span_sort (v, tmp, h);
   span_sort (v + h, tmp, n - h);
   if (span_cmp (&v[h - 1], &v[h]) <= 0) {
      return; /* in order already */
   }
   memcpy (tmp, v, h * sizeof (span_t));
   size_t i = 0, j = h, k = 0;
   while (i < h && j < n) {
      v[k++] = span_cmp (&v[j], &tmp[i]) < 0 ? v[j++] : tmp[i++];
   }
   while (i < h) {
      v[k++] = tmp[i++];
   }
}

static int
rid_cmp (const void *a, const void *b)
{
   uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
   return (x > y) - (x < y);
}

/* e's keys in key order (owned by the caller, bson_free; e->n > 0). */
static span_t *
sorted_spans (const entries_t *e)
{
   span_t *sp = bson_malloc (sizeof (span_t) * e->n * (e->unsorted ? 2 : 1));
   for (size_t j = 0; j < e->n; j++) {
      size_t start = j ? e->ends[j - 1] : 0;
      sp[j].p = e->keys.data + start;
      sp[j].len = e->ends[j] - start;
      sp[j].head = 0;
      for (size_t b = 8; e->unsorted && b < 16; b++) {
         sp[j].head = sp[j].head << 8 | (b < sp[j].len ? sp[j].p[b] : 0);
      }
   }
   if (e->unsorted) {
      span_sort (sp, sp + e->n, e->n);
   }
   return sp;
}

/* Deletes the entries e holds from the data DBI, in key order. */
static bool
delete_entries (dj_ctx_t *ctx, entries_t *e, bson_error_t *error)
{
   if (!e->n) {
      return true;
   }
   span_t *sp = sorted_spans (e);
   seq_t s = {0};
   int rc = mdb_cursor_open (ctx->txn, ctx->engine->dbi_data, &s.cur);
   for (size_t j = 0; rc == 0 && j < e->n; j++) {
      rc = seq_find (&s, sp[j].p, sp[j].len);
      rc = rc == MDB_NOTFOUND ? 0 : rc ? rc : seq_del (&s); /* (gone already: as dj_index_del_keys) */
   }
   if (s.cur) {
      mdb_cursor_close (s.cur);
   }
   bson_free (sp);
   return rc == 0 || dj_lmdb_error (rc, error, "index delete");
}

/* es back to the n entries each held before a document's (marks). */
static void
drop_entries_past (entries_t *es, int nindexes, const size_t *marks)
{
   for (int i = 0; i < nindexes; i++) {
      es[i].n = marks[i];
      es[i].keys.len = marks[i] ? es[i].ends[marks[i] - 1] : 0;
   }
}

/* A document's values at the fields of c's indexes on one top-level field
 * (dj_index_plain_field: most indexes), and at _id (the change log lists
 * it), found in one walk over its bytes (dj_bson_walk.h; bson_iter costs
 * ~80 instructions an element, and a delete walks every field before the
 * last indexed one of every document): slot i for index i, slot nindexes
 * for _id. Such an index's entry is then encoded straight into its batch,
 * with no key set and no allocation; a value that is an array (its
 * elements are the keys) and every other kind of index go through
 * dj_index_keys. */
typedef dj_bwalk_field_t slot_t; /* (dj_bwalk_fields) */

/* c's slots (owned by the caller, bson_free). */
static slot_t *
slots_new (const dj_coll_t *c)
{
   slot_t *sl = bson_malloc0 (sizeof (slot_t) * (size_t) (c->nindexes + 1));
   for (int i = 0; i < c->nindexes; i++) {
      sl[i].name = dj_index_plain_field (&c->indexes[i]);
   }
   sl[c->nindexes].name = "_id";
   for (int i = 0; i <= c->nindexes; i++) {
      sl[i].len = sl[i].name ? (uint32_t) strlen (sl[i].name) : 0;
   }
   return sl;
}

/* Appends the entry (record rid) of plain index ix for a document whose
 * field holds s's value (null when absent) to e: [index id][key][record id],
 * as dj_index_entry_key. */
static void
plain_entry (entries_t *e, const dj_index_t *ix, const slot_t *s, uint64_t rid)
{
   size_t start = e->keys.len;
   bson_value_t v;
   if (s->has) {
      dj_bson_value_read (s->type, s->val, s->val_len, &v);
   }
   dj_buf_put_u64be (&e->keys, ix->id);
   dj_index_plain_key (&e->keys, ix, s->has ? &v : NULL);
   if (!ix->unique) {
      dj_buf_put_u64be (&e->keys, rid);
   }
   entries_end (e, start);
}

/* Collects doc's entries (record rid) for every index of c into es (sl:
 * c's slots, filled here); on an error, none of them. */
static bool
collect_entries (const dj_coll_t *c, const bson_t *doc, uint64_t rid, entries_t *es, size_t *marks, slot_t *sl,
                 dj_buf_t *k, bson_error_t *error)
{
   bool walked = dj_bwalk_fields (bson_get_data (doc), doc->len, sl, c->nindexes + 1);
   for (int i = 0; i < c->nindexes; i++) {
      marks[i] = es[i].n;
   }
   for (int i = 0; i < c->nindexes; i++) {
      const dj_index_t *ix = &c->indexes[i];
      entries_t *e = &es[i];
      if (ix->rid_keyed) {
         continue; /* its entries are the records (ridkey.c) */
      }
      if (walked && sl[i].name && !(sl[i].has && sl[i].type == BSON_TYPE_ARRAY)) {
         if (sl[i].has || !ix->sparse) { /* (a sparse index has no entry for a missing field) */
            plain_entry (e, ix, &sl[i], rid);
         }
         continue;
      }
      dj_keyset_t ks;
      if (!dj_index_keys (ix, doc, &ks, error)) {
         drop_entries_past (es, i, marks);
         return false;
      }
      for (int j = 0; j < ks.n; j++) {
         dj_index_entry_key (k, ix, &ks.keys[j], rid);
         size_t start = e->keys.len;
         dj_buf_append (&e->keys, k->data, k->len);
         entries_end (e, start);
      }
      dj_keyset_cleanup (&ks);
   }
   return true;
}

/* A deleted document's _id, for the change log: its type (0: the place's
 * record was not deleted) and its value's bytes, copied into a buffer (the
 * record's page changes with the delete). */
typedef struct {
   uint8_t type;
   uint32_t off, len;
} logged_id_t;

/* The ids (n places, vals their bytes) of the deleted documents in place
 * order, written into arr as a BSON array: what bson_append_value writes
 * for each, a libbson append and a value copy fewer per document. *count:
 * how many. */
static void
ids_array (dj_buf_t *arr, const logged_id_t *ids, size_t n, const dj_buf_t *vals, size_t *count)
{
   uint32_t k = 0;
   dj_buf_put_u32le (arr, 0); /* (the length, written at the end) */
   for (size_t i = 0; i < n; i++) {
      if (!ids[i].type) {
         continue;
      }
      char kb[16];
      size_t kl = dj_bson_array_key (k++, kb);
      dj_buf_putc (arr, ids[i].type);
      dj_buf_append (arr, kb, kl + 1);
      dj_buf_append (arr, vals->data + ids[i].off, ids[i].len);
   }
   dj_buf_putc (arr, 0);
   dj_le32_write (arr->data, (uint32_t) arr->len);
   *count = k;
}

/* Deletes the records rids[0..n) of c (n <= BATCH; ones already gone are
 * skipped) and their index entries, and logs them: in the order given,
 * which the change log keeps. *deleted counts them; on an error, the ones
 * before it stay deleted (entries, log and all). */
static bool
delete_batch (dj_ctx_t *ctx, dj_coll_t *c, const uint64_t *rids, size_t n, int64_t *deleted, bson_error_t *error)
{
   /* pre-images are logged document by document, in the order given
    * (so then no sort: the records are visited in that order) */
   bool images = dj_changes_images_enabled (c);
   /* (rid, its place in rids) pairs, in record order */
   uint64_t *walk = bson_malloc (sizeof (uint64_t) * 2 * n);
   bool sorted = true;
   for (size_t i = 0; i < n; i++) {
      walk[2 * i] = rids[i];
      walk[2 * i + 1] = i;
      sorted = sorted && (i == 0 || rids[i - 1] < rids[i]);
   }
   if (!sorted && !images) {
      qsort (walk, n, 2 * sizeof (uint64_t), rid_cmp);
   }
   entries_t *es = bson_malloc0 (sizeof (entries_t) * (size_t) c->nindexes);
   for (int i = 0; i < c->nindexes; i++) {
      /* room for a key a document of ~40 bytes (an index id, a number's
       * key, a record id), grown past it as usual */
      dj_buf_init (&es[i].keys);
      if (!c->indexes[i].rid_keyed) { /* (which has none: collect_entries) */
         dj_buf_reserve (&es[i].keys, n * 40);
      }
      es[i].ends = bson_malloc (sizeof (size_t) * n);
      es[i].cap = n;
   }
   size_t *marks = bson_malloc (sizeof (size_t) * (size_t) (c->nindexes ? c->nindexes : 1));
   slot_t *sl = slots_new (c);
   logged_id_t *ids = bson_malloc0 (sizeof (logged_id_t) * n); /* by place */
   dj_buf_t k, ek, idvals;
   dj_buf_init (&k);
   dj_buf_init (&ek);
   dj_buf_init (&idvals);
   seq_t s = {0};
   bool ok = true;
   int rc = mdb_cursor_open (ctx->txn, ctx->engine->dbi_data, &s.cur);
   if (rc) {
      ok = dj_lmdb_error (rc, error, "record delete");
   }
   for (size_t w = 0; ok && w < n; w++) {
      uint64_t rid = walk[2 * w];
      bson_t doc;
      if (w && rid == walk[2 * (w - 1)]) {
         continue; /* listed twice */
      }
      int found = seq_record (&s, c, rid, &k, &doc, error);
      if (found <= 0) {
         ok = found == 0;
         if (ok) {
            continue;
         }
         break;
      }
      /* doc is read here, before the delete below changes its page */
      if (!collect_entries (c, &doc, rid, es, marks, sl, &ek, error)) {
         ok = false;
         break;
      }
      if (images && !dj_changes_record (ctx, c, "delete", &doc, NULL, error)) {
         drop_entries_past (es, c->nindexes, marks);
         ok = false;
         break;
      }
      logged_id_t *id = &ids[walk[2 * w + 1]];
      const slot_t *is = &sl[c->nindexes];
      id->type = is->has ? is->type : BSON_TYPE_NULL; /* (every stored document has one) */
      id->off = (uint32_t) idvals.len;
      id->len = is->has ? is->val_len : 0;
      if (is->has) {
         dj_buf_append (&idvals, is->val, is->val_len);
      }
      if ((rc = seq_del (&s))) {
         ok = dj_lmdb_error (rc, error, "record delete");
         break;
      }
      (*deleted)++;
   }
   if (s.cur) {
      mdb_cursor_close (s.cur);
   }
   /* the entries of what was deleted, even after an error: a document is
    * gone with its entries or not at all */
   bson_error_t later;
   for (int i = 0; i < c->nindexes; i++) {
      if (!delete_entries (ctx, &es[i], ok ? error : &later)) {
         ok = false;
      }
      dj_buf_cleanup (&es[i].keys);
      bson_free (es[i].ends);
   }
   if (!images) {
      dj_buf_t arr;
      dj_buf_init (&arr);
      size_t nlog;
      ids_array (&arr, ids, n, &idvals, &nlog);
      bson_t logged;
      bson_error_t *err = ok ? error : &later;
      if (!bson_init_static (&logged, arr.data, arr.len)) {
         ok = dj_err (err, DJ_InternalError, "the change log's ids of a delete in %s", c->ns);
      } else if (!dj_changes_record_deletes (ctx, c, &logged, nlog, err)) {
         ok = false;
      }
      dj_buf_cleanup (&arr);
   }
   DJ_FREE (ids, marks, sl, es, walk);
   dj_buf_cleanup (&k);
   dj_buf_cleanup (&ek);
   dj_buf_cleanup (&idvals);
   return ok;
}

bool
dj_record_delete_many (dj_ctx_t *ctx, dj_coll_t *c, const uint64_t *rids, size_t n, int64_t *deleted, bson_error_t *error)
{
   for (size_t lo = 0; lo < n; lo += BATCH) {
      if (!delete_batch (ctx, c, rids + lo, n - lo < BATCH ? n - lo : BATCH, deleted, error)) {
         return false;
      }
   }
   return true;
}

/* ---- updates ------------------------------------------------------------------
 *
 * A multi-document update: the records visited in the order given (the
 * scan's: which document fails first, and the change events' order, are as
 * one at a time), each read once, changed by the caller's fn and written
 * back where the cursor stands (then one step on: records side by side need
 * no seek). Index keys are computed only for an index one of whose fields
 * the update touched. A unique index's changed entries are written at once,
 * so that the next document's check sees them (as one at a time: a second
 * document taking the first's new key is a DuplicateKey); the others' are
 * collected and, at the end of the batch, deleted and written sorted, one
 * cursor pass per index. The batch is one change log entry ("A batch" in
 * changes.c) unless the collection keeps images. */

/* Whether the elements a and b are the same type and bytes. */
static bool
same_element (const bson_iter_t *a, const bson_iter_t *b)
{
   uint32_t la = a->next_off - a->d1, lb = b->next_off - b->d1;
   return bson_iter_type (a) == bson_iter_type (b) && la == lb && !memcmp (a->raw + a->d1, b->raw + b->d1, la);
}

/* Whether ix's keys of old and new are the same, known without computing
 * them: each field its key paths start in is the same bytes in both (or
 * absent from both). Not known for a partial index (its filter reads other
 * fields) nor a text one, nor a path starting with '$' (a wildcard's). */
static bool
keys_unchanged (const dj_index_t *ix, const bson_t *old, const bson_t *new)
{
   if (ix->partial || ix->text || ix->npaths == 0) {
      return false;
   }
   for (int p = 0; p < ix->npaths; p++) {
      const dj_path_t *path = &ix->paths[p];
      if (path->n == 0 || path->parts[0][0] == '$') {
         return false;
      }
      bson_iter_t a, b;
      bool ha = bson_iter_init_find (&a, old, path->parts[0]), hb = bson_iter_init_find (&b, new, path->parts[0]);
      if (ha != hb || (ha && !same_element (&a, &b))) {
         return false;
      }
   }
   return true;
}

/* Appends the entries (record rid) of ks's keys that other lacks to e. */
static void
add_entries (entries_t *e, const dj_index_t *ix, const dj_keyset_t *ks, const dj_keyset_t *other, uint64_t rid, dj_buf_t *k)
{
   for (int j = 0; j < ks->n; j++) {
      if (dj_keyset_has (other, &ks->keys[j])) {
         continue;
      }
      dj_index_entry_key (k, ix, &ks->keys[j], rid);
      size_t start = e->keys.len;
      dj_buf_append (&e->keys, k->data, k->len);
      entries_end (e, start);
   }
}

/* Writes the entries e holds (a non-unique index's: empty values) in key order. */
static bool
put_entries (dj_ctx_t *ctx, entries_t *e, bson_error_t *error)
{
   if (!e->n) {
      return true;
   }
   span_t *sp = sorted_spans (e);
   MDB_cursor *cur = NULL;
   int rc = mdb_cursor_open (ctx->txn, ctx->engine->dbi_data, &cur);
   for (size_t j = 0; rc == 0 && j < e->n; j++) {
      /* sorted: LMDB finds most keys on the page the cursor stands on */
      MDB_val key = {sp[j].len, (void *) sp[j].p}, val = {0, (void *) ""};
      rc = mdb_cursor_put (cur, &key, &val, 0);
   }
   if (cur) {
      mdb_cursor_close (cur);
   }
   bson_free (sp);
   return rc == 0 || dj_lmdb_error (rc, error, "index write");
}

/* One batch's state: the non-unique indexes' entries to delete and to
 * write (by index), and what the change log entry lists. */
typedef struct {
   entries_t *dels, *puts;
   bson_value_t *ids; /* owned copies, nids of them */
   size_t nids;
   bson_t upds;       /* their update descriptions */
   bool log_batch;    /* logged as a batch (no images, a logged namespace) */
   dj_buf_t k, ek;
} ubatch_t;

/* The cursor one step on from the entry it stands on (s->on: it found one). */
static int
seq_next (seq_t *s)
{
   int rc = mdb_cursor_get (s->cur, &s->k, &s->v, MDB_NEXT);
   s->on = rc == 0;
   return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Writes out (what doc, record rid, became) where the cursor stands, with
 * the index entries and log that go with it. doc lives in LMDB's map: it is
 * read before the first write. */
static bool
update_one (dj_ctx_t *ctx, dj_coll_t *c, seq_t *s, uint64_t rid, const bson_t *doc, const bson_t *out, ubatch_t *b,
            bson_error_t *error)
{
   int ni = c->nindexes;
   dj_keyset_t *oks = bson_malloc0 (sizeof (dj_keyset_t) * (size_t) (ni ? ni : 1));
   dj_keyset_t *nks = bson_malloc0 (sizeof (dj_keyset_t) * (size_t) (ni ? ni : 1));
   bool *changed = bson_malloc0 (sizeof (bool) * (size_t) (ni ? ni : 1));
   bool ok = false, moved = false;
   int rc;

   if (!dj_record_update_check (out, error)) {
      goto done;
   }
   for (int i = 0; i < ni; i++) {
      if (keys_unchanged (&c->indexes[i], doc, out)) {
         continue;
      }
      if (!dj_index_keys (&c->indexes[i], doc, &oks[i], error) || !dj_index_keys (&c->indexes[i], out, &nks[i], error)) {
         goto done;
      }
      for (int j = 0; j < nks[i].n && !changed[i]; j++) {
         changed[i] = !dj_keyset_has (&oks[i], &nks[i].keys[j]);
      }
      for (int j = 0; j < oks[i].n && !changed[i]; j++) {
         changed[i] = !dj_keyset_has (&nks[i], &oks[i].keys[j]);
      }
   }
   for (int i = 0; i < ni; i++) {
      if (changed[i] && c->indexes[i].unique &&
          !dj_index_unique_check (ctx, c, &c->indexes[i], &nks[i], rid, out, error)) {
         goto done;
      }
   }
   /* the log's part, while doc is still where the cursor read it */
   if (!b->log_batch) {
      if (!dj_changes_record (ctx, c, "update", doc, out, error)) {
         goto done;
      }
      moved = true;
   } else {
      bson_iter_t it;
      if (bson_iter_init_find (&it, doc, "_id")) {
         bson_value_copy (bson_iter_value (&it), &b->ids[b->nids]);
      } else {
         b->ids[b->nids].value_type = BSON_TYPE_NULL; /* (every stored document has one) */
      }
      bson_t upd;
      char buf[16];
      const char *key;
      size_t klen = bson_uint32_to_string ((uint32_t) b->nids, &key, buf, sizeof buf);
      dj_changes_describe_update (doc, out, &upd);
      bson_append_document (&b->upds, key, (int) klen, &upd);
      bson_destroy (&upd);
      b->nids++;
   }
   for (int i = 0; i < ni; i++) {
      if (!changed[i]) {
         continue;
      }
      if (c->indexes[i].unique) {
         if (!dj_index_del_keys (ctx, &c->indexes[i], &oks[i], &nks[i], rid, error) ||
             !dj_index_put_keys (ctx, &c->indexes[i], &nks[i], &oks[i], rid, error)) {
            goto done;
         }
         moved = true;
      } else {
         add_entries (&b->dels[i], &c->indexes[i], &oks[i], &nks[i], rid, &b->ek);
         add_entries (&b->puts[i], &c->indexes[i], &nks[i], &oks[i], rid, &b->ek);
      }
      if (!dj_record_note_flags (ctx, c, i, &nks[i], error)) {
         goto done;
      }
      moved = true; /* (perhaps: a catalog write) */
   }
   dj_record_key (&b->k, c->id, rid);
   if (moved) {
      s->on = false; /* other writes came between: find the record again */
      if ((rc = seq_find (s, b->k.data, b->k.len))) {
         dj_lmdb_error (rc, error, "record write");
         goto done;
      }
   }
   MDB_val mk = {b->k.len, b->k.data}, mv = {out->len, (void *) bson_get_data (out)};
   if ((rc = mdb_cursor_put (s->cur, &mk, &mv, MDB_CURRENT)) || (rc = seq_next (s))) {
      dj_lmdb_error (rc, error, "record write");
      goto done;
   }
   ok = true;
done:
   for (int i = 0; i < ni; i++) {
      dj_keyset_cleanup (&oks[i]);
      dj_keyset_cleanup (&nks[i]);
   }
   DJ_FREE (oks, nks, changed);
   return ok;
}

/* The index entries and log entry of a batch's updates so far: what is
 * updated goes with its entries and log, even after an error. */
static bool
update_flush (dj_ctx_t *ctx, dj_coll_t *c, ubatch_t *b, bool ok, bson_error_t *error)
{
   bson_error_t later;
   for (int i = 0; i < c->nindexes; i++) {
      if (!delete_entries (ctx, &b->dels[i], ok ? error : &later) || !put_entries (ctx, &b->puts[i], ok ? error : &later)) {
         ok = false;
      }
   }
   if (b->log_batch && !dj_changes_record_updates (ctx, c, b->ids, b->nids, &b->upds, ok ? error : &later)) {
      ok = false;
   }
   return ok;
}

/* Whether out, what record rid of c becomes, moves to another id or turns
 * one of c's record-keyed indexes plain (ridkey.c): each must still give
 * rid. */
static bool
moves (const dj_coll_t *c, uint64_t rid, const bson_t *out)
{
   for (int i = 0; i < c->nindexes; i++) {
      uint64_t nrid;
      if (c->indexes[i].rid_keyed && !(dj_ridkey_doc_rid (&c->indexes[i], out, &nrid) && nrid == rid)) {
         return true;
      }
   }
   return false;
}

/* update_one of a record that moves: the batch so far written out (its
 * log entry before this update's), then dj_record_update (which moves the
 * record, and logs its update), the cursor found again after. */
static bool
update_moved (dj_ctx_t *ctx, dj_coll_t *c, seq_t *s, uint64_t rid, const bson_t *doc, const bson_t *out, ubatch_t *b,
              bson_error_t *error)
{
   bson_t *old = bson_copy (doc); /* doc lives in LMDB's map; the writes move it */
   bool ok = update_flush (ctx, c, b, true, error);
   for (int i = 0; i < c->nindexes; i++) {
      b->dels[i].n = b->puts[i].n = 0;
      b->dels[i].keys.len = b->puts[i].keys.len = 0;
      b->dels[i].unsorted = b->puts[i].unsorted = false;
   }
   for (size_t i = 0; i < b->nids; i++) {
      bson_value_destroy (&b->ids[i]);
   }
   b->nids = 0;
   bson_reinit (&b->upds);
   ok = ok && dj_record_update (ctx, c, rid, old, out, error);
   bson_destroy (old);
   s->on = false;
   return ok;
}

/* Updates the records rids[0..n) (n <= BATCH), in that order. */
static bool
update_batch (dj_ctx_t *ctx, dj_coll_t *c, const uint64_t *rids, size_t n, dj_update_doc_fn fn, void *ud, int64_t *matched,
              int64_t *modified, bson_error_t *error)
{
   ubatch_t b = {.log_batch = !dj_changes_images_enabled (c) && dj_changes_wants_updates (ctx, c)};
   b.dels = bson_malloc0 (sizeof (entries_t) * (size_t) (c->nindexes ? c->nindexes : 1));
   b.puts = bson_malloc0 (sizeof (entries_t) * (size_t) (c->nindexes ? c->nindexes : 1));
   for (int i = 0; i < c->nindexes; i++) {
      dj_buf_init (&b.dels[i].keys);
      dj_buf_init (&b.puts[i].keys);
   }
   b.ids = bson_malloc0 (sizeof (bson_value_t) * n);
   bson_init (&b.upds);
   dj_buf_init (&b.k);
   dj_buf_init (&b.ek);
   seq_t s = {0};
   bool ok = true;
   int rc = mdb_cursor_open (ctx->txn, ctx->engine->dbi_data, &s.cur);
   if (rc) {
      ok = dj_lmdb_error (rc, error, "record update");
   }
   for (size_t w = 0; ok && w < n; w++) {
      uint64_t rid = rids[w];
      bson_t doc, out;
      bool changed;
      int found = seq_record (&s, c, rid, &b.k, &doc, error);
      if (found <= 0) {
         ok = found == 0;
         if (ok) {
            continue;
         }
         break;
      }
      if (!fn (&doc, &out, &changed, ud, error)) {
         ok = false;
         break;
      }
      if (changed && moves (c, rid, &out)) {
         ok = update_moved (ctx, c, &s, rid, &doc, &out, &b, error);
      } else if (changed) {
         ok = update_one (ctx, c, &s, rid, &doc, &out, &b, error);
      } else if ((rc = seq_next (&s))) {
         ok = dj_lmdb_error (rc, error, "record read");
      }
      bson_destroy (&out);
      if (ok) {
         (*matched)++;
         *modified += changed;
      }
   }
   if (s.cur) {
      mdb_cursor_close (s.cur);
   }
   ok = update_flush (ctx, c, &b, ok, error);
   for (int i = 0; i < c->nindexes; i++) {
      dj_buf_cleanup (&b.dels[i].keys);
      dj_buf_cleanup (&b.puts[i].keys);
      DJ_FREE (b.dels[i].ends, b.puts[i].ends);
   }
   for (size_t i = 0; i < b.nids; i++) {
      bson_value_destroy (&b.ids[i]);
   }
   bson_destroy (&b.upds);
   dj_buf_cleanup (&b.k);
   dj_buf_cleanup (&b.ek);
   DJ_FREE (b.ids, b.dels, b.puts);
   return ok;
}

bool
dj_record_update_many (dj_ctx_t *ctx, dj_coll_t *c, const uint64_t *rids, size_t n, dj_update_doc_fn fn, void *ud,
                       int64_t *matched, int64_t *modified, bson_error_t *error)
{
   for (size_t lo = 0; lo < n; lo += BATCH) {
      if (!update_batch (ctx, c, rids + lo, n - lo < BATCH ? n - lo : BATCH, fn, ud, matched, modified, error)) {
         return false;
      }
   }
   return true;
}
