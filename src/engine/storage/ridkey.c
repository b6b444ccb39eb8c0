/*
 * ridkey.c -- record-keyed indexes: a unique index on one integer field
 * whose values are the record ids themselves, so that it needs no entries
 * of its own (a clustered index, as MongoDB's clustered collections keep
 * their documents by _id: https://www.mongodb.com/docs/manual/core/clustered-collections/).
 *
 * djongo's compiler asks for one for a table's INTEGER PRIMARY KEY (the
 * createIndexes spec's djongoRecordKeyed field, which nothing else sends
 * and listIndexes never shows); every SQL row then costs one B-tree entry
 * less, and a lookup by primary key is one record read instead of an index
 * probe and a record read. It behaves as the unique index it stands for:
 *
 *   - a document's record id is its value at the field (record.c's insert
 *     takes it instead of the next id); the record's put (MDB_NOOVERWRITE)
 *     is the unique check: a taken id is the index's DuplicateKey, with the
 *     same message, keyPattern and keyValue (index.c's dj_index_dup_error),
 *     after the unique indexes before it in the collection's order;
 *   - its entries are the records: index.c writes and deletes none for it,
 *     and plan.c's scans of it walk the records from the id its lower bound
 *     stands for to its upper bound's (dj_ridkey_bounds), in key order;
 *   - an update that changes the value moves the record to its new id,
 *     with every index entry (dj_ridkey_move);
 *   - a document that does not fit (the field missing or null, which a
 *     unique index lets one document have, a double, a string, an array,
 *     an integer below 1 or past DJ_RIDKEY_MAX) turns the index into a
 *     plain unique one at once, its entries written from the records, which
 *     keep their ids (dj_ridkey_unkey); it stays plain.
 *
 * Only an index that can be one becomes one: one ascending field without
 * dots, unique, not sparse, partial, hidden, TTL or collated, on an empty
 * collection that is not capped (a capped collection's ids are its
 * insertion order). Otherwise the spec is created as the plain index it
 * is. The flag is kept in the catalog entry beside multikey
 * ("recordKeyed", store.c), never in the spec.
 *
 * The _id index can be one too: djongo's compiler asks for it (an "_id_"
 * spec with djongoRecordKeyed in the CREATE TABLE's createIndexes) for a
 * table whose INTEGER PRIMARY KEY numbers itself (AUTOINCREMENT), and its
 * INSERTs then give each row an _id equal to its key (src/exec/exec.c's
 * assign_ids). The _id index then has no entries either: a SQL row is its
 * record and its own indexes' entries, no ObjectId and no _id entry beside
 * them. A collection may so have several record-keyed indexes; every
 * record's value in each of them is its id. A document that gives one of
 * them another value than the first one's (an UPDATE of the key: _id
 * stays, MongoDB's _id is immutable) turns that one plain, as a document
 * that does not fit does (dj_ridkey_doc_fit).
 *
 * A collection's natural order is then its records' order: by that field,
 * as SQLite returns a table's rows by rowid.
 */
#include "storage-private.h"

/* The largest id a record-keyed index takes: after it turns plain, new
 * records take ids past the largest, which must stay far from 2^64. */
#define DJ_RIDKEY_MAX ((uint64_t) 1 << 62)

static const char OPTION[] = "djongoRecordKeyed";

static bool
value_rid (const bson_value_t *v, uint64_t *rid)
{
   if (v->value_type != BSON_TYPE_INT32 && v->value_type != BSON_TYPE_INT64) {
      return false;
   }
   int64_t n = v->value_type == BSON_TYPE_INT32 ? v->value.v_int32 : v->value.v_int64;
   if (n < 1 || (uint64_t) n > DJ_RIDKEY_MAX) {
      return false;
   }
   *rid = (uint64_t) n;
   return true;
}

bool
dj_ridkey_doc_rid (const dj_index_t *ix, const bson_t *doc, uint64_t *rid)
{
   bson_iter_t it;
   /* the first occurrence of the field, as dj_index_keys reads it */
   return bson_iter_init_find (&it, doc, ix->paths[0].buf) && value_rid (bson_iter_value (&it), rid);
}

void
dj_ridkey_option (const bson_t *given, bson_t *out, bool *keyed)
{
   bson_iter_t it;
   *keyed = false;
   bson_init (out);
   if (!bson_iter_init_find (&it, given, OPTION)) {
      bson_copy_to_excluding_noinit (given, out, "", NULL); /* (no field is named "") */
      return;
   }
   *keyed = bson_iter_as_bool (&it);
   bson_copy_to_excluding_noinit (given, out, OPTION, NULL);
}

/* Whether c holds no record. */
static bool
coll_empty (dj_ctx_t *ctx, const dj_coll_t *c, bool *empty, bson_error_t *error)
{
   dj_walk_t w;
   uint8_t p[8];
   dj_u64be_write (p, c->id);
   if (!dj_walk_open (&w, ctx, ctx->engine->dbi_data, p, sizeof p, 1, error)) {
      return false;
   }
   *empty = !dj_walk_next (&w);
   return dj_walk_close (&w, "record-keyed index", error);
}

bool
dj_ridkey_doc_fit (dj_ctx_t *ctx, dj_coll_t *c, const bson_t *doc, int *rk, uint64_t *rid, bson_error_t *error)
{
   *rk = -1;
   for (int i = 0; i < c->nindexes; i++) {
      uint64_t r;
      if (!c->indexes[i].rid_keyed) {
         continue;
      }
      if (!dj_ridkey_doc_rid (&c->indexes[i], doc, &r) || (*rk >= 0 && r != *rid)) {
         /* (every record's value in each keyed index is its id: the
          * ones after the first stay keyed only when doc agrees) */
         if (!dj_ridkey_unkey (ctx, c, i, error)) {
            return false;
         }
         continue;
      }
      if (*rk < 0) {
         *rk = i;
         *rid = r;
      }
   }
   return true;
}

bool
dj_ridkey_key_id (dj_ctx_t *ctx, dj_coll_t *c, bson_error_t *error)
{
   dj_index_t *ix = &c->indexes[0]; /* (the _id index is always the first: store.c) */
   bool empty = false;
   if (!ix->is_id || ix->rid_keyed || c->capped || c->view_on || ix->collation || ix->hidden) {
      return true;
   }
   if (!coll_empty (ctx, c, &empty, error)) {
      return false;
   }
   if (!empty) {
      return true; /* (its records have other ids: it stays as it is) */
   }
   ix->rid_keyed = true;
   bson_free (c->entry); /* (as dj_ridkey_unkey: never kept by its old entry's bytes) */
   c->entry = NULL;
   return dj_coll_save (ctx, c, error);
}

bool
dj_ridkey_add_index (dj_ctx_t *ctx, dj_coll_t *c, const bson_t *spec, bool keyed, bson_error_t *error)
{
   dj_index_t ix;
   bool empty = false;

   if (!keyed || c->capped || c->view_on) {
      return dj_coll_add_index (ctx, c, spec, error);
   }
   if (!dj_index_load (&ix, spec, error)) {
      return false;
   }
   bool fits = ix.npaths == 1 && !strchr (ix.paths[0].buf, '.') && !ix.desc[0] && ix.unique && !ix.sparse &&
               !ix.partial && !ix.hidden && !ix.ttl && !ix.hashed && !ix.geo && !ix.text && !ix.collation && !ix.is_id;
   if (fits && !coll_empty (ctx, c, &empty, error)) {
      dj_index_cleanup (&ix);
      return false;
   }
   if (!fits || !empty) {
      dj_index_cleanup (&ix);
      return dj_coll_add_index (ctx, c, spec, error);
   }
   if (!dj_store_next_id (ctx, &ix.id, error)) {
      dj_index_cleanup (&ix);
      return false;
   }
   ix.rid_keyed = true;
   c->indexes = bson_realloc (c->indexes, sizeof (dj_index_t) * (size_t) (c->nindexes + 1));
   c->indexes[c->nindexes++] = ix;
   return dj_coll_save (ctx, c, error);
}

bool
dj_ridkey_unkey (dj_ctx_t *ctx, dj_coll_t *c, int i, bson_error_t *error)
{
   c->indexes[i].rid_keyed = false;
   c->next_rid = 0; /* (the next id: past the largest, read again) */
   /* c no longer is what its entry's bytes build: never kept by them
    * (dj_coll_checkin_written) */
   bson_free (c->entry);
   c->entry = NULL;
   return dj_index_build (ctx, c, &c->indexes[i], error) && dj_coll_save (ctx, c, error);
}

/* Whether record rid of c exists (*found). */
static bool
record_exists (dj_ctx_t *ctx, const dj_coll_t *c, uint64_t rid, bool *found, bson_error_t *error)
{
   uint8_t kb[16]; /* (dj_record_key's layout, in place) */
   dj_u64be_write (kb, c->id);
   dj_u64be_write (kb + 8, rid);
   MDB_val mk = {sizeof kb, kb}, mv;
   int rc = mdb_get (ctx->txn, ctx->engine->dbi_data, &mk, &mv);
   *found = rc == 0;
   return rc == 0 || rc == MDB_NOTFOUND || dj_lmdb_error (rc, error, "record read");
}

bool
dj_ridkey_unique_check (dj_ctx_t *ctx, const dj_coll_t *c, const dj_index_t *ix, uint64_t rid, const bson_t *doc,
                        bson_error_t *error)
{
   uint64_t want;
   bool found;
   if (!dj_ridkey_doc_rid (ix, doc, &want) || want == rid) {
      return true; /* (a document that does not fit never meets a keyed index: record.c turned it plain) */
   }
   if (!record_exists (ctx, c, want, &found, error)) {
      return false;
   }
   return !found || dj_index_dup_error (ctx, c, ix, doc, 0, error);
}

/* ---- bounds ------------------------------------------------------------------ */

/* The key record id `id` has in the index: an integer's number key. */
static void
id_key (dj_buf_t *b, uint64_t id)
{
   bson_value_t v = {.value_type = BSON_TYPE_INT64};
   v.value.v_int64 = (int64_t) id;
   b->len = 0;
   dj_key_append (b, &v, false);
}

typedef struct {
   const dj_buf_t *bound;
   bool flag;
   bool upper; /* past the upper bound (else: inside the lower) */
   dj_buf_t k;
} pred_t;

/* Whether id's key is inside the lower bound (at or after it, and not
 * starting with it when that is excluded), or past the upper one (after
 * it, or starting with it when that is not included): either is false for
 * the ids before some id and true from it on. */
static bool
pred (pred_t *p, uint64_t id)
{
   id_key (&p->k, id);
   const uint8_t *k = p->k.data, *b = p->bound->data;
   size_t n = p->k.len, bn = p->bound->len;
   bool starts = n >= bn && !memcmp (k, b, bn);
   if (p->upper) {
      size_t m = n < bn ? n : bn;
      int c = memcmp (k, b, m);
      return c > 0 || (c == 0 && n >= bn && !p->flag);
   }
   return dj_key_cmp (k, n, b, bn) >= 0 && !(p->flag && starts);
}

/* An order-preserving IEEE image back to its double (values/keyenc.c). */
static double
image_double (const uint8_t *d)
{
   uint64_t bits = dj_u64be_read (d);
   bits = (bits & 0x8000000000000000ull) ? bits & ~0x8000000000000000ull : ~bits;
   double out;
   memcpy (&out, &bits, 8);
   return out;
}

/* The first id in [1, DJ_RIDKEY_MAX] p holds for; DJ_RIDKEY_MAX + 1: none. */
static uint64_t
first_true (pred_t *p)
{
   const uint8_t *b = p->bound->data;
   uint64_t lo = 1, hi = DJ_RIDKEY_MAX + 1; /* the answer lies in [lo, hi] */
   if (p->bound->len >= 18 && b[0] == 0x20 && b[1] == 0x01) {
      /* a number's key: hi + lo, two doubles (values/keyenc.c); the ids
       * next to it decide, found in a step or two */
      double h = image_double (b + 2), l = image_double (b + 10);
      uint64_t guess;
      if (!(h >= 1)) {
         guess = 1;
      } else if (h >= (double) DJ_RIDKEY_MAX) {
         guess = DJ_RIDKEY_MAX;
      } else {
         int64_t g = (int64_t) h + (int64_t) l;
         guess = g < 1 ? 1 : (uint64_t) g > DJ_RIDKEY_MAX ? DJ_RIDKEY_MAX : (uint64_t) g;
      }
      id_key (&p->k, guess);
      if (p->k.len == p->bound->len && !memcmp (p->k.data, b, p->bound->len)) {
         /* the bound is guess's own key (an equality's point): inside a
          * lower bound unless excluded, past an upper one unless included */
         return p->flag ? guess + 1 : guess;
      }
      if (pred (p, guess)) {
         hi = guess;
         lo = guess > 3 ? guess - 3 : 1;
      } else {
         lo = guess + 1;
         hi = guess + 3 <= DJ_RIDKEY_MAX ? guess + 3 : DJ_RIDKEY_MAX + 1;
      }
      if ((lo > 1 && pred (p, lo - 1)) || (hi <= DJ_RIDKEY_MAX && !pred (p, hi))) {
         lo = 1; /* (not near the guess after all: the whole range) */
         hi = DJ_RIDKEY_MAX + 1;
      }
   }
   while (lo < hi) { /* binary search: p is false, then true */
      uint64_t mid = lo + (hi - lo) / 2;
      if (pred (p, mid)) {
         hi = mid;
      } else {
         lo = mid + 1;
      }
   }
   return lo;
}

void
dj_ridkey_bounds (const dj_index_t *ix, const dj_buf_t *lo, bool lo_skip, const dj_buf_t *hi, bool hi_incl,
                  uint64_t *from, uint64_t *end)
{
   (void) ix;
   pred_t p = {0};
   dj_buf_init (&p.k);
   *from = 1;
   *end = DJ_RIDKEY_MAX + 1;
   if (lo) {
      p.bound = lo;
      p.flag = lo_skip;
      *from = first_true (&p);
   }
   if (hi) {
      p.bound = hi;
      p.flag = hi_incl;
      p.upper = true;
      *end = first_true (&p);
   }
   dj_buf_cleanup (&p.k);
}

/* ---- an update moving a record ------------------------------------------------ */

bool
dj_ridkey_move (dj_ctx_t *ctx, dj_coll_t *c, uint64_t rid, const bson_t *old_doc, const bson_t *new_doc, uint64_t nrid,
                bson_error_t *error)
{
   int ni = c->nindexes;
   dj_keyset_t *oks = bson_malloc0 (sizeof (dj_keyset_t) * (size_t) ni);
   dj_keyset_t *nks = bson_malloc0 (sizeof (dj_keyset_t) * (size_t) ni);
   dj_buf_t k;
   bool ok = false;
   int rc;

   dj_buf_init (&k);
   if (!dj_record_update_check (new_doc, error)) {
      goto done;
   }
   for (int i = 0; i < ni; i++) {
      if (!dj_index_keys (&c->indexes[i], old_doc, &oks[i], error) || !dj_index_keys (&c->indexes[i], new_doc, &nks[i], error)) {
         goto done;
      }
   }
   /* the unique checks in the indexes' order, the record-keyed one's
    * among them (keys left as they were are the document's own) */
   for (int i = 0; i < ni; i++) {
      if (c->indexes[i].unique && (c->indexes[i].rid_keyed || !dj_keyset_same (&oks[i], &nks[i])) &&
          !dj_index_unique_check (ctx, c, &c->indexes[i], &nks[i], rid, new_doc, error)) {
         goto done;
      }
   }
   /* every entry names the record: all of them move */
   for (int i = 0; i < ni; i++) {
      if (!dj_index_del_keys (ctx, &c->indexes[i], &oks[i], NULL, rid, error) ||
          !dj_index_put_keys (ctx, &c->indexes[i], &nks[i], NULL, nrid, error) ||
          !dj_record_note_flags (ctx, c, i, &nks[i], error)) {
         goto done;
      }
   }
   dj_record_key (&k, c->id, rid);
   MDB_val mk = {k.len, k.data};
   if ((rc = mdb_del (ctx->txn, ctx->engine->dbi_data, &mk, NULL))) {
      dj_lmdb_error (rc, error, "record delete");
      goto done;
   }
   dj_record_key (&k, c->id, nrid);
   mk.mv_size = k.len;
   mk.mv_data = k.data;
   MDB_val mv = {new_doc->len, (void *) bson_get_data (new_doc)};
   if ((rc = mdb_put (ctx->txn, ctx->engine->dbi_data, &mk, &mv, MDB_NOOVERWRITE))) {
      dj_lmdb_error (rc, error, "record write");
      goto done;
   }
   ok = dj_changes_record (ctx, c, ctx->replacement ? "replace" : "update", old_doc, new_doc, error);
done:
   ctx->replacement = false; /* (the caller's word for this update only) */
   for (int i = 0; i < ni; i++) {
      dj_keyset_cleanup (&oks[i]);
      dj_keyset_cleanup (&nks[i]);
   }
   DJ_FREE (oks, nks);
   dj_buf_cleanup (&k);
   return ok;
}
