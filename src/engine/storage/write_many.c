/*
 * write_many.c -- many records deleted in one pass: what a delete statement
 * matched, removed with its index entries a sorted batch at a time.
 *
 * dj_record_delete, one document at a time, descends the B-tree once per
 * index entry and once for the record, and logs an entry of its own. Here
 * the record ids are sorted and the records walked with one cursor: after
 * LMDB deletes an entry the cursor stands on the next one, so records side
 * by side (a statement's matches usually are: ids grow with insertion) need
 * no seek at all, and a seek near the cursor stays within its page. Each
 * document's index entries are collected on the way; then each index's
 * entries are sorted and deleted the same way, and the change log gets one
 * entry for the batch (changes.c: "A batch").
 *
 * A batch is at most BATCH records, so that the keys held in memory stay
 * bounded whatever the statement matched.
 */
#include "storage-private.h"

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

/* ---- one batch ---------------------------------------------------------------- */

/* An index's entries to delete: keys end to end in `keys`, key j ending at ends[j]. */
typedef struct {
   dj_buf_t keys;
   size_t *ends;
   size_t n, cap;
} entries_t;

/* An entry's key, and its bytes 8..16 (past the index id all of an index's
 * keys share; zeros past the end) as a number: what decides most comparisons. */
typedef struct {
   uint64_t head;
   const uint8_t *p;
   size_t len;
} span_t;

/* LMDB's default order: bytes, then the shorter first. */
static inline int
span_cmp (const span_t *x, const span_t *y)
{
   if (x->head != y->head) {
      return x->head < y->head ? -1 : 1;
   }
   int c = memcmp (x->p, y->p, x->len < y->len ? x->len : y->len);
   return c ? c : (x->len > y->len) - (x->len < y->len);
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

/* Deletes the entries e holds from the data DBI, in key order. */
static bool
delete_entries (dj_ctx_t *ctx, entries_t *e, bson_error_t *error)
{
   if (!e->n) {
      return true;
   }
   span_t *sp = bson_malloc (sizeof (span_t) * e->n * 2);
   for (size_t j = 0; j < e->n; j++) {
      size_t start = j ? e->ends[j - 1] : 0;
      sp[j].p = e->keys.data + start;
      sp[j].len = e->ends[j] - start;
      sp[j].head = 0;
      for (size_t b = 8; b < 16; b++) {
         sp[j].head = sp[j].head << 8 | (b < sp[j].len ? sp[j].p[b] : 0);
      }
   }
   span_sort (sp, sp + e->n, e->n);
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

/* Collects doc's entries (record rid) for every index of c into es; on an
 * error, none of them. */
static bool
collect_entries (const dj_coll_t *c, const bson_t *doc, uint64_t rid, entries_t *es, size_t *marks, dj_buf_t *k,
                 bson_error_t *error)
{
   for (int i = 0; i < c->nindexes; i++) {
      marks[i] = es[i].n;
   }
   for (int i = 0; i < c->nindexes; i++) {
      dj_keyset_t ks;
      if (!dj_index_keys (&c->indexes[i], doc, &ks, error)) {
         drop_entries_past (es, i, marks);
         return false;
      }
      entries_t *e = &es[i];
      for (int j = 0; j < ks.n; j++) {
         dj_index_entry_key (k, &c->indexes[i], &ks.keys[j], rid);
         dj_buf_append (&e->keys, k->data, k->len);
         DJ_GROW (e->ends, e->n, e->cap, 64);
         e->ends[e->n++] = e->keys.len;
      }
      dj_keyset_cleanup (&ks);
   }
   return true;
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
      dj_buf_init (&es[i].keys);
   }
   size_t *marks = bson_malloc (sizeof (size_t) * (size_t) (c->nindexes ? c->nindexes : 1));
   bson_value_t *ids = bson_malloc0 (sizeof (bson_value_t) * n); /* by place; EOD: not deleted */
   dj_buf_t k, ek;
   dj_buf_init (&k);
   dj_buf_init (&ek);
   seq_t s = {0};
   bool ok = true;
   int rc = mdb_cursor_open (ctx->txn, ctx->engine->dbi_data, &s.cur);
   if (rc) {
      ok = dj_lmdb_error (rc, error, "record delete");
   }
   for (size_t w = 0; ok && w < n; w++) {
      uint64_t rid = walk[2 * w];
      bson_t doc;
      bson_iter_t it;
      if (w && rid == walk[2 * (w - 1)]) {
         continue; /* listed twice */
      }
      dj_record_key (&k, c->id, rid);
      if ((rc = seq_find (&s, k.data, k.len)) == MDB_NOTFOUND) {
         continue;
      }
      if (rc) {
         ok = dj_lmdb_error (rc, error, "record read");
         break;
      }
      if (!bson_init_static (&doc, s.v.mv_data, s.v.mv_size)) {
         ok = dj_err (error, DJ_InternalError, "corrupt record %" PRIu64 " in %s", rid, c->ns);
         break;
      }
      /* doc is read here, before the delete below changes its page */
      if (!collect_entries (c, &doc, rid, es, marks, &ek, error)) {
         ok = false;
         break;
      }
      if (images && !dj_changes_record (ctx, c, "delete", &doc, NULL, error)) {
         drop_entries_past (es, c->nindexes, marks);
         ok = false;
         break;
      }
      size_t place = (size_t) walk[2 * w + 1];
      if (bson_iter_init_find (&it, &doc, "_id")) {
         bson_value_copy (bson_iter_value (&it), &ids[place]);
      } else {
         ids[place].value_type = BSON_TYPE_NULL; /* (every stored document has one) */
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
   size_t nlog = 0;
   for (size_t i = 0; i < n; i++) {
      if (ids[i].value_type != BSON_TYPE_EOD) {
         ids[nlog++] = ids[i];
      }
   }
   if (!images && !dj_changes_record_deletes (ctx, c, ids, nlog, ok ? error : &later)) {
      ok = false;
   }
   for (size_t i = 0; i < nlog; i++) {
      bson_value_destroy (&ids[i]);
   }
   DJ_FREE (ids, marks, es, walk);
   dj_buf_cleanup (&k);
   dj_buf_cleanup (&ek);
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
