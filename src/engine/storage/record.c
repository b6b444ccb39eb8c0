/*
 * record.c -- records: a collection's documents by record id, read,
 * inserted, replaced and deleted with their index entries (index.c) in the
 * caller's write transaction; the validator's check; capped collections
 * trimmed to their newest documents.
 *
 * A record is [collection id][record id] -> the document's BSON (store.c's
 * header comment); record ids grow, so the oldest record comes first.
 */
#include "storage-private.h"

#include "dj_bson_depth.h"

#include <inttypes.h>

void
dj_record_key (dj_buf_t *b, uint64_t coll, uint64_t rid)
{
   b->len = 0;
   dj_buf_put_u64be (b, coll);
   dj_buf_put_u64be (b, rid);
}

/* The id of c's next record: the last record's id + 1, read from LMDB by
 * a walk -- or, after an insert through this handle, the one it left in
 * c->next_rid: a command inserting many documents (an insert of 1,000
 * rows) walks once, not once per document. A handle lives inside one
 * transaction, whose writes to c go through it; should a record have
 * taken the id anyway, the insert's write (MDB_NOOVERWRITE) says so and
 * dj_record_insert asks the walk (fresh = true). */
static bool
next_rid (dj_ctx_t *ctx, dj_coll_t *c, bool fresh, uint64_t *rid, bson_error_t *error)
{
   dj_walk_t w;
   dj_buf_t p;

   if (c->next_rid && !fresh) {
      *rid = c->next_rid;
      return true;
   }

   dj_buf_init (&p);
   dj_buf_put_u64be (&p, c->id);
   bool ok = dj_walk_open (&w, ctx, ctx->engine->dbi_data, p.data, p.len, -1, error);
   dj_buf_cleanup (&p);
   if (!ok) {
      return false;
   }
   *rid = 1; /* the last record's id + 1 */
   if (dj_walk_next (&w) && w.k.mv_size == 16) {
      *rid = dj_u64be_read ((uint8_t *) w.k.mv_data + 8) + 1;
   }
   return dj_walk_close (&w, "record ids", error);
}

bool
dj_record_get (dj_ctx_t *ctx, dj_coll_t *c, uint64_t rid, bson_t *doc, bson_error_t *error)
{
   /* the key written in place (dj_record_key's layout): an index scan
    * fetches each match through here, so no allocation per record */
   uint8_t kb[16];
   MDB_val mk = {sizeof kb, kb}, mv;
   dj_u64be_write (kb, c->id);
   dj_u64be_write (kb + 8, rid);
   int rc = mdb_get (ctx->txn, ctx->engine->dbi_data, &mk, &mv);
   if (rc) {
      return dj_lmdb_error (rc, error, "record read");
   }
   if (!bson_init_static (doc, mv.mv_data, mv.mv_size)) {
      return dj_err (error, DJ_InternalError, "corrupt record %" PRIu64 " in %s", rid, c->ns);
   }
   return true;
}

bool
dj_coll_validate (dj_ctx_t *ctx, const dj_coll_t *c, const bson_t *doc, const bson_t *old_doc, bson_error_t *error)
{
   /* https://www.mongodb.com/docs/manual/core/schema-validation/ */
   if (!c->validator || c->validation_off || c->validation_warn_only) {
      return true;
   }
   if (c->validation_moderate && old_doc && !dj_matcher_match (c->validator, old_doc, NULL)) {
      return true; /* moderate: existing invalid documents may stay invalid */
   }
   if (dj_matcher_match (c->validator, doc, NULL)) {
      return true;
   }
   /* errInfo: {failingDocumentId, details}
    * https://www.mongodb.com/docs/manual/core/schema-validation/specify-query-expression-rules/ */
   bson_t *info = bson_new (), ei, det, spec;
   bson_iter_t it;
   BSON_APPEND_DOCUMENT_BEGIN (info, "errInfo", &ei);
   if (bson_iter_init_find (&it, doc, "_id")) {
      BSON_APPEND_VALUE (&ei, "failingDocumentId", bson_iter_value (&it));
   }
   BSON_APPEND_DOCUMENT_BEGIN (&ei, "details", &det);
   if (bson_iter_init_find (&it, c->options, "validator") && BSON_ITER_HOLDS_DOCUMENT (&it)) {
      const uint8_t *d;
      uint32_t l;
      bson_iter_document (&it, &l, &d);
      bson_init_static (&spec, d, l);
      dj_match_failure_details (&spec, doc, &det);
   }
   bson_append_document_end (&ei, &det);
   bson_append_document_end (info, &ei);
   bson_destroy (ctx->error_info);
   ctx->error_info = info;
   return dj_err (error, DJ_DocumentValidationFailure, "Document failed validation");
}

/* Records that index i now holds a multikey or a lossy key (never unset:
 * a flag may be stale-true, never stale-false). */
bool
dj_record_note_flags (dj_ctx_t *ctx, dj_coll_t *c, int i, const dj_keyset_t *ks, bson_error_t *error)
{
   if ((!ks->multikey || c->indexes[i].multikey) && (!ks->lossy || c->indexes[i].lossy)) {
      return true;
   }
   c->indexes[i].multikey |= ks->multikey;
   c->indexes[i].lossy |= ks->lossy;
   /* c no longer is what its entry's bytes build: never kept by them
    * (dj_coll_checkin_written) */
   bson_free (c->entry);
   c->entry = NULL;
   return dj_coll_save (ctx, c, error);
}

bool
dj_record_insert (dj_ctx_t *ctx, dj_coll_t *c, const bson_t *doc, uint64_t *rid_out, bson_error_t *error)
{
   /* the keysets on the stack and their keys in one buffer
    * (dj_index_keys_all) when the indexes are not too many */
   dj_keyset_t ks_stack[DJ_KEYS_ALL_MAX];
   bool few = c->nindexes <= DJ_KEYS_ALL_MAX;
   dj_keyset_t *ks = few ? ks_stack : bson_malloc0 (sizeof (dj_keyset_t) * (size_t) c->nindexes);
   dj_buf_t k, keybuf;
   uint64_t rid = 0;
   bool ok = false;

   if (few) {
      memset (ks, 0, sizeof (dj_keyset_t) * (size_t) c->nindexes);
   }
   dj_buf_init (&k);
   dj_buf_init (&keybuf);
   if (doc->len > DJ_MAX_BSON_SIZE) {
      dj_err (error, DJ_BSONObjectTooLarge, "object to insert too large. size in bytes: %u, max size: %d", doc->len,
              DJ_MAX_BSON_SIZE);
      goto done;
   }
   if (!dj_bson_depth_ok (bson_get_data (doc), doc->len, DJ_MAX_STORED_DEPTH)) {
      dj_err (error, DJ_Overflow, "cannot insert document because it exceeds %d levels of nesting",
              DJ_MAX_STORED_DEPTH + 1);
      goto done;
   }
   /* a record-keyed index gives the id (ridkey.c); a document that does
    * not fit it turns it plain first */
   int rk;
   if (!dj_ridkey_doc_fit (ctx, c, doc, &rk, &rid, error)) {
      goto done;
   }
   bool hinted = rk < 0 && c->next_rid != 0;
   if (rk < 0 && !next_rid (ctx, c, false, &rid, error)) {
      goto done;
   }
   /* every key first (a document no index takes fails before any
    * write), then the record, then the unique indexes' entries -- each
    * put is the unique check (dj_index_put_unique_at) -- and the others'
    * last: a failure takes back what the document wrote, so that it
    * leaves nothing behind */
   if (few) {
      if (!dj_index_keys_all (c, doc, ks, &keybuf, error)) {
         goto done;
      }
   } else {
      for (int i = 0; i < c->nindexes; i++) {
         if (!dj_index_keys (&c->indexes[i], doc, &ks[i], error)) {
            goto done;
         }
      }
   }
   dj_record_key (&k, c->id, rid);
   MDB_val mk = {k.len, k.data}, mv = {doc->len, (void *) bson_get_data (doc)};
   int rc = dj_ctx_put (ctx, 0, &mk, &mv, MDB_NOOVERWRITE);
   if (rc == MDB_KEYEXIST && hinted) {
      /* the hint was taken meanwhile: the last record's id, read */
      if (!next_rid (ctx, c, true, &rid, error)) {
         goto done;
      }
      dj_record_key (&k, c->id, rid);
      mk.mv_size = k.len;
      mk.mv_data = k.data;
      mv.mv_size = doc->len;
      mv.mv_data = (void *) bson_get_data (doc); /* (a refused put returns the record there) */
      rc = dj_ctx_put (ctx, 0, &mk, &mv, MDB_NOOVERWRITE);
   }
   if (rc == MDB_KEYEXIST && rk >= 0) {
      /* the (first) record-keyed index's duplicate -- unless a unique
       * index before it has one, which mongod would meet first */
      for (int j = 0; j < rk; j++) {
         if (c->indexes[j].unique && !dj_index_unique_check (ctx, c, &c->indexes[j], &ks[j], 0, doc, error)) {
            goto done;
         }
      }
      dj_index_dup_error (ctx, c, &c->indexes[rk], doc, 0, error);
      goto done;
   }
   if (rc) {
      dj_lmdb_error (rc, error, "record write");
      goto done;
   }
   for (int i = 0; i < c->nindexes; i++) {
      if (c->indexes[i].unique && !dj_index_put_unique_at (ctx, c, &c->indexes[i], &ks[i], rid, doc, 1 + i, error)) {
         /* a duplicate key: the earlier unique indexes' entries and the
          * record taken back (the error is the document's) */
         bson_error_t ignored;
         for (int j = 0; j < i; j++) {
            if (c->indexes[j].unique) {
               dj_index_del_keys (ctx, &c->indexes[j], &ks[j], NULL, rid, &ignored);
            }
         }
         mdb_del (ctx->txn, ctx->engine->dbi_data, &mk, NULL);
         goto done;
      }
   }
   c->next_rid = rk < 0 ? rid + 1 : 0;
   for (int i = 0; i < c->nindexes; i++) {
      if (!c->indexes[i].unique && !dj_index_put_keys_at (ctx, &c->indexes[i], &ks[i], NULL, rid, 1 + i, error)) {
         goto done;
      }
      if (!dj_record_note_flags (ctx, c, i, &ks[i], error)) {
         goto done;
      }
   }
   if (rid_out) {
      *rid_out = rid;
   }
   ok = dj_changes_record (ctx, c, "insert", NULL, doc, error);
done:
   for (int i = 0; i < c->nindexes; i++) {
      dj_keyset_cleanup (&ks[i]);
   }
   if (!few) {
      bson_free (ks);
   }
   dj_buf_cleanup (&k);
   dj_buf_cleanup (&keybuf);
   return ok;
}

bool
dj_keyset_same (const dj_keyset_t *a, const dj_keyset_t *b)
{
   if (a->n != b->n) {
      return false;
   }
   for (int j = 0; j < a->n; j++) {
      if (a->keys[j].len != b->keys[j].len || memcmp (a->keys[j].data, b->keys[j].data, a->keys[j].len)) {
         return false;
      }
   }
   return true;
}

bool
dj_record_update_check (const bson_t *new_doc, bson_error_t *error)
{
   if (new_doc->len > DJ_MAX_BSON_SIZE) {
      return dj_err (error, DJ_BSONObjectTooLarge, "Resulting document after update is larger than %d", DJ_MAX_BSON_SIZE);
   }
   if (!dj_bson_depth_ok (bson_get_data (new_doc), new_doc->len, DJ_MAX_STORED_DEPTH)) {
      return dj_err (error, DJ_Overflow, "the document after the update would exceed %d levels of nesting",
                     DJ_MAX_STORED_DEPTH + 1);
   }
   return true;
}

bool
dj_record_update (dj_ctx_t *ctx, dj_coll_t *c, uint64_t rid, const bson_t *old_doc, const bson_t *new_doc,
                  bson_error_t *error)
{
   dj_keyset_t *oks = bson_malloc0 (sizeof (dj_keyset_t) * (size_t) c->nindexes);
   dj_keyset_t *nks = bson_malloc0 (sizeof (dj_keyset_t) * (size_t) c->nindexes);
   dj_buf_t k;
   bool ok = false;

   dj_buf_init (&k);
   if (!dj_record_update_check (new_doc, error)) {
      goto done;
   }
   /* a new value in the record-keyed indexes moves the record; an index
    * the new document does not fit, or gives another id than the first's,
    * turns plain (ridkey.c) */
   int rk;
   uint64_t nrid = rid;
   if (!dj_ridkey_doc_fit (ctx, c, new_doc, &rk, &nrid, error)) {
      goto done;
   }
   if (rk >= 0 && nrid != rid) {
      ok = dj_ridkey_move (ctx, c, rid, old_doc, new_doc, nrid, error);
      goto done;
   }
   for (int i = 0; i < c->nindexes; i++) {
      if (!dj_index_keys (&c->indexes[i], old_doc, &oks[i], error) || !dj_index_keys (&c->indexes[i], new_doc, &nks[i], error)) {
         goto done;
      }
   }
   for (int i = 0; i < c->nindexes; i++) {
      /* keys the update left as they were are this record's already: no
       * other record can hold them (the _id index, most of all) */
      if (c->indexes[i].unique && !dj_keyset_same (&oks[i], &nks[i]) &&
          !dj_index_unique_check (ctx, c, &c->indexes[i], &nks[i], rid, new_doc, error)) {
         goto done;
      }
   }
   for (int i = 0; i < c->nindexes; i++) {
      if (!dj_index_del_keys (ctx, &c->indexes[i], &oks[i], &nks[i], rid, error) ||
          !dj_index_put_keys (ctx, &c->indexes[i], &nks[i], &oks[i], rid, error)) {
         goto done;
      }
      if (!dj_record_note_flags (ctx, c, i, &nks[i], error)) {
         goto done;
      }
   }
   dj_record_key (&k, c->id, rid);
   MDB_val mk = {k.len, k.data}, mv = {new_doc->len, (void *) bson_get_data (new_doc)};
   int rc = mdb_put (ctx->txn, ctx->engine->dbi_data, &mk, &mv, 0);
   if (rc) {
      dj_lmdb_error (rc, error, "record write");
      goto done;
   }
   ok = dj_changes_record (ctx, c, ctx->replacement ? "replace" : "update", old_doc, new_doc, error);
done:
   ctx->replacement = false; /* (the caller's word for this update only) */
   for (int i = 0; i < c->nindexes; i++) {
      dj_keyset_cleanup (&oks[i]);
      dj_keyset_cleanup (&nks[i]);
   }
   bson_free (oks);
   bson_free (nks);
   dj_buf_cleanup (&k);
   return ok;
}

bool
dj_record_delete (dj_ctx_t *ctx, dj_coll_t *c, uint64_t rid, const bson_t *doc, bson_error_t *error)
{
   dj_buf_t k;
   bool ok = true;

   for (int i = 0; i < c->nindexes && ok; i++) {
      dj_keyset_t ks;
      if (!dj_index_keys (&c->indexes[i], doc, &ks, error)) {
         return false;
      }
      ok = dj_index_del_keys (ctx, &c->indexes[i], &ks, NULL, rid, error);
      dj_keyset_cleanup (&ks);
   }
   if (!ok) {
      return false;
   }
   dj_buf_init (&k);
   dj_record_key (&k, c->id, rid);
   MDB_val mk = {k.len, k.data};
   int rc = mdb_del (ctx->txn, ctx->engine->dbi_data, &mk, NULL);
   dj_buf_cleanup (&k);
   if (rc) {
      return dj_lmdb_error (rc, error, "record delete");
   }
   return dj_changes_record (ctx, c, "delete", doc, NULL, error);
}

/* Capped collections keep the newest documents: drop the oldest (lowest
 * record ids) while over `size` bytes or `max` documents.
 * https://www.mongodb.com/docs/manual/core/capped-collections/ */
bool
dj_coll_trim_capped (dj_ctx_t *ctx, dj_coll_t *c, bson_error_t *error)
{
   int64_t count, size;
   dj_buf_t p;

   dj_coll_stats (ctx, c, &count, &size, NULL);
   dj_buf_init (&p);
   dj_buf_put_u64be (&p, c->id);
   bool ok = true;
   while (ok && count > 1 && (size > c->capped_size || (c->capped_max > 0 && count > c->capped_max))) {
      /* the oldest record: the first of the collection's range (deleting it
       * rewrites indexes too, so each round walks afresh) */
      dj_walk_t w;
      if (!dj_walk_open (&w, ctx, ctx->engine->dbi_data, p.data, p.len, 1, error)) {
         ok = false;
         break;
      }
      bson_t *copy = NULL;
      uint64_t rid = 0;
      if (dj_walk_next (&w) && w.k.mv_size == 16) {
         bson_t doc;
         rid = dj_u64be_read ((uint8_t *) w.k.mv_data + 8);
         bson_init_static (&doc, w.v.mv_data, w.v.mv_size);
         copy = bson_copy (&doc);
      }
      ok = dj_walk_close (&w, "capped collection", error);
      if (!copy) {
         break;
      }
      size -= copy->len;
      count--;
      ctx->quiet_log = true; /* trimming is no change a stream shows */
      ok = ok && dj_record_delete (ctx, c, rid, copy, error);
      ctx->quiet_log = false;
      bson_destroy (copy);
   }
   dj_buf_cleanup (&p);
   return ok;
}
