/*
 * index.c -- indexes: the keys a document contributes to one (its spec is
 * index_spec.c's), its entries written and removed beside a record's
 * (unique checks first), and building or dropping a whole one.
 *
 * An entry's layout is store.c's header comment: [index id][key] -> record
 * id for a unique index, [index id][key][record id] -> "" for the others.
 */
#include "storage-private.h"

#include "dj_bson_walk.h"

#include <stdio.h>
#include <stdlib.h>

void
dj_keyset_cleanup (dj_keyset_t *ks)
{
   if (ks->keys != &ks->one) {
      dj_bufs_free (ks->keys, (size_t) ks->n);
   }
   bson_free (ks->rows);
   memset (ks, 0, sizeof *ks);
}

typedef struct {
   dj_vlist_t vals;
   bool array;
} fieldvals_t;

static void
collect_visit (const bson_value_t *v, void *ctx)
{
   fieldvals_t *f = ctx;
   f->array |= v->value_type == BSON_TYPE_ARRAY;
   if (!dj_value_each (v, dj_vlist_push, &f->vals)) {
      static const bson_value_t undefined = {.value_type = BSON_TYPE_UNDEFINED};
      dj_vlist_push (&undefined, &f->vals); /* MongoDB indexes an empty array as undefined */
   }
}

static void
fields_free (fieldvals_t *fv, int n)
{
   for (int i = 0; i < n; i++) {
      bson_free (fv[i].vals.v);
   }
   bson_free (fv);
}

/* The values doc has at each of ix's paths (fv: ix->npaths of them, each
 * freed by fields_free; a missing field holds null). *multi receives the
 * path with several values (-1: none), *all_missing whether every path was
 * absent. Values borrow doc's bytes. */
static bool
index_fields (const dj_index_t *ix, const bson_t *doc, fieldvals_t *fv, int *multi, bool *multikey, bool *all_missing,
              bson_error_t *error)
{
   bson_value_t dv;
   *multi = -1;
   *multikey = false;
   *all_missing = true;
   dj_value_from_doc (doc, false, &dv);
   for (int i = 0; i < ix->npaths; i++) {
      if (ix->geo == i + 1) {
         /* its keys are the geometry's cells; no geometry, no entry */
         if (!dj_geo_index_cells (ix, doc, &fv[i].vals, error)) {
            return false;
         }
         if (fv[i].vals.n == 0) {
            *all_missing = true;
            return true;
         }
         fv[i].array = fv[i].vals.n > 1;
      } else {
         dj_path_visit (&dv, &ix->paths[i], 0, false, collect_visit, &fv[i]);
      }
      if (fv[i].vals.n) {
         *all_missing = false;
      } else {
         static const bson_value_t null_v = {.value_type = BSON_TYPE_NULL};
         dj_vlist_push (&null_v, &fv[i].vals);
      }
      if (ix->hashed == i + 1) {
         if (fv[i].vals.n > 1 || fv[i].array) {
            /* https://www.mongodb.com/docs/manual/core/indexes/index-types/index-hashed/ :
             * hashed indexes do not support arrays */
            bson_iter_t kp;
            bson_iter_init (&kp, ix->key);
            for (int j = 0; j <= i; j++) {
               bson_iter_next (&kp);
            }
            return dj_err (error, 16766, "Error: hashed indexes do not currently support array values. Found array at path: %s",
                           bson_iter_key (&kp));
         }
         int64_t h = dj_value_hash64 (&fv[i].vals.v[0]);
         fv[i].vals.v[0].value_type = BSON_TYPE_INT64;
         fv[i].vals.v[0].value.v_int64 = h;
         continue;
      }
      if (fv[i].vals.n > 1 || fv[i].array) {
         *multikey = true;
         if (fv[i].vals.n > 1) {
            if (*multi >= 0) {
               return dj_err (error, 171, "cannot index parallel arrays [%s] [%s]", ix->paths[i].buf, ix->paths[*multi].buf);
            }
            *multi = i;
         }
      }
   }
   return true;
}

/* The top-level field ix is on alone, when its key is that field's value
 * (no geo cells, no hash); NULL otherwise. */
static const char *
one_field (const dj_index_t *ix)
{
   return ix->npaths != 1 || ix->paths[0].n != 1 || ix->geo || ix->hashed ? NULL : ix->paths[0].parts[0];
}

const char *
dj_index_plain_field (const dj_index_t *ix)
{
   return ix->partial || ix->text ? NULL : one_field (ix);
}

/* Whether v's key does not hold it whole (a Decimal128's, a document's):
 * an index with such a key is lossy, as one with a cut key is. */
static inline bool
lossy_value (const bson_value_t *v)
{
   return v->value_type == BSON_TYPE_DECIMAL128 || v->value_type == BSON_TYPE_DOCUMENT;
}

bool
dj_index_plain_key (dj_buf_t *b, const dj_index_t *ix, const bson_value_t *v)
{
   static const bson_value_t null_v = {.value_type = BSON_TYPE_NULL};
   size_t start = b->len;
   dj_key_append_by (b, v ? v : &null_v, ix->desc[0], ix->collation);
   bool cut = b->len - start > DJ_KEY_MAX;
   dj_key_finish (b, start);
   return cut || (v && lossy_value (v));
}

/* The key when ix is on one top-level field and doc holds no array there
 * (most indexes, most documents): index_fields' answer without its walk
 * and its lists. False: not that case, nothing done. */
static bool
plain_key (const dj_index_t *ix, const bson_t *doc, dj_keyset_t *ks)
{
   const bson_value_t *v = NULL;
   bson_value_t fv;
   const char *name = one_field (ix);
   if (!name) {
      return false;
   }
   /* the key read from the document's bytes (dj_bson_walk.h): each insert
    * asks this of every index; a malformed document takes index_fields' way */
   dj_bwalk_field_t f = {.name = name, .len = (uint32_t) strlen (name)};
   if (!dj_bwalk_fields (bson_get_data (doc), doc->len, &f, 1) || (f.has && f.type == BSON_TYPE_ARRAY)) {
      return false;
   }
   if (f.has) {
      dj_bson_value_read (f.type, f.val, f.val_len, &fv);
      v = &fv;
   } else if (ix->sparse) {
      return true; /* a sparse index has no entry for a missing field */
   }
   dj_buf_t k;
   dj_buf_init (&k);
   ks->lossy = dj_index_plain_key (&k, ix, v);
   ks->keys = bson_malloc (sizeof (dj_buf_t));
   ks->keys[0] = k; /* (rows NULL: its row is 0) */
   ks->n = 1;
   return true;
}

bool
dj_index_keys (const dj_index_t *ix, const bson_t *doc, dj_keyset_t *ks, bson_error_t *error)
{
   int multi;
   bool ok = true, all_missing;

   memset (ks, 0, sizeof *ks);
   if (ix->partial && !dj_matcher_match (ix->partial, doc, NULL)) {
      return true;
   }
   if (ix->text) {
      return dj_text_index_keys (ix, doc, ks, error);
   }
   if (plain_key (ix, doc, ks)) {
      return true;
   }
   fieldvals_t *fv = bson_malloc0 (sizeof (fieldvals_t) * (size_t) ix->npaths);
   if (!(ok = index_fields (ix, doc, fv, &multi, &ks->multikey, &all_missing, error))) {
      goto done;
   }
   if ((ix->sparse || ix->geo) && all_missing) {
      goto done; /* a geo index holds no entry for a document without geometry */
   }
   int count = multi >= 0 ? (int) fv[multi].vals.n : 1;
   for (int r = 0; r < count; r++) {
      dj_buf_t k;
      dj_buf_init (&k);
      for (int i = 0; i < ix->npaths; i++) {
         const bson_value_t *kv = &fv[i].vals.v[i == multi ? r : 0];
         ks->lossy |= lossy_value (kv);
         dj_key_append_by (&k, kv, ix->desc[i], ix->collation);
      }
      ks->lossy |= k.len > DJ_KEY_MAX;
      dj_key_finish (&k, 0);
      bool dup = false;
      for (int j = 0; j < ks->n && !dup; j++) {
         dup = ks->keys[j].len == k.len && !memcmp (ks->keys[j].data, k.data, k.len);
      }
      if (dup) {
         dj_buf_cleanup (&k);
         continue;
      }
      ks->keys = bson_realloc (ks->keys, sizeof (dj_buf_t) * (size_t) (ks->n + 1));
      ks->rows = bson_realloc (ks->rows, sizeof (int) * (size_t) (ks->n + 1));
      ks->rows[ks->n] = r;
      ks->keys[ks->n++] = k;
   }
done:
   fields_free (fv, ix->npaths);
   if (!ok) {
      dj_keyset_cleanup (ks);
   }
   return ok;
}

bool
dj_index_keys_all (const dj_coll_t *c, const bson_t *doc, dj_keyset_t *ks, dj_buf_t *buf, bson_error_t *error)
{
   int n = c->nindexes;
   dj_bwalk_field_t f[DJ_KEYS_ALL_MAX]; /* the plain indexes' fields (name NULL: not plain) */
   size_t start[DJ_KEYS_ALL_MAX], end[DJ_KEYS_ALL_MAX];

   BSON_ASSERT (n <= DJ_KEYS_ALL_MAX);
   memset (ks, 0, sizeof *ks * (size_t) n);
   for (int i = 0; i < n; i++) {
      f[i].name = dj_index_plain_field (&c->indexes[i]);
      f[i].len = f[i].name ? (uint32_t) strlen (f[i].name) : 0;
   }
   /* plain_key's reading for all of them in one walk: a field's first
    * occurrence decides; an array takes dj_index_keys' way (multikey), and
    * so does every field of a document the walk stopped short in */
   bool walked = dj_bwalk_fields (bson_get_data (doc), doc->len, f, n);
   bool plain[DJ_KEYS_ALL_MAX];
   buf->len = 0;
   for (int i = 0; i < n; i++) {
      plain[i] = walked && f[i].name && !(f[i].has && f[i].type == BSON_TYPE_ARRAY);
      if (!plain[i] || (!f[i].has && c->indexes[i].sparse)) {
         continue; /* (a sparse index has no entry for a missing field) */
      }
      bson_value_t v;
      if (f[i].has) {
         dj_bson_value_read (f[i].type, f[i].val, f[i].val_len, &v);
      }
      start[i] = buf->len;
      ks[i].lossy = dj_index_plain_key (buf, &c->indexes[i], f[i].has ? &v : NULL); /* NULL: absent, keyed as null */
      end[i] = buf->len;
   }
   for (int i = 0; i < n; i++) {
      if (!plain[i]) {
         if (!dj_index_keys (&c->indexes[i], doc, &ks[i], error)) {
            return false;
         }
      } else if (f[i].has || !c->indexes[i].sparse) {
         /* set once buf stopped growing (its bytes may have moved) */
         ks[i].one = (dj_buf_t){buf->data + start[i], end[i] - start[i], 0};
         ks[i].keys = &ks[i].one; /* (rows NULL: its row is 0) */
         ks[i].n = 1;
      }
   }
   return true;
}

void
dj_index_entry_key (dj_buf_t *out, const dj_index_t *ix, const dj_buf_t *k, uint64_t rid)
{
   out->len = 0;
   dj_buf_put_u64be (out, ix->id);
   dj_buf_append (out, k->data, k->len);
   if (!ix->unique) {
      dj_buf_put_u64be (out, rid);
   }
}

/* Room for most entry keys on the stack: [index id][key][record id], the
 * key cut near DJ_KEY_MAX (dj_key_finish). */
#define ENTRY_STACK (8 + DJ_KEY_MAX + 64 + 8)

/* dj_index_entry_key's bytes as an MDB_val: in `stack` (ENTRY_STACK
 * bytes) when they fit, else in heap (the caller's, cleaned up by it) --
 * an insert writes an entry per index per document, and allocating each
 * key was a good part of what writing it cost. */
static MDB_val
entry_val (const dj_index_t *ix, const dj_buf_t *k, uint64_t rid, uint8_t *stack, dj_buf_t *heap)
{
   size_t n = 8 + k->len + (ix->unique ? 0 : 8);
   if (n > ENTRY_STACK) {
      dj_index_entry_key (heap, ix, k, rid);
      return (MDB_val){heap->len, heap->data};
   }
   dj_u64be_write (stack, ix->id);
   memcpy (stack + 8, k->data, k->len);
   if (!ix->unique) {
      dj_u64be_write (stack + 8 + k->len, rid);
   }
   return (MDB_val){n, stack};
}

/* The key of doc's entry `row` in ix as a document of ix's fields ({a: 1});
 * `shell`, if not NULL, receives it as mongod's messages print it ({ a: 1 }). */
static void
key_doc (const dj_index_t *ix, const bson_t *doc, int row, bson_t *kv, dj_buf_t *shell)
{
   fieldvals_t *fv = bson_malloc0 (sizeof (fieldvals_t) * (size_t) ix->npaths);
   int multi;
   bool multikey, all_missing;
   bson_iter_t kp;

   /* the keys were made from doc already, so this cannot fail again */
   index_fields (ix, doc, fv, &multi, &multikey, &all_missing, NULL);
   if (shell) {
      dj_buf_append (shell, "{ ", 2);
   }
   bson_iter_init (&kp, ix->key);
   for (int i = 0; i < ix->npaths && bson_iter_next (&kp); i++) {
      const bson_value_t *v = &fv[i].vals.v[i == multi ? row : 0];
      bson_append_value (kv, bson_iter_key (&kp), -1, v);
      if (shell) {
         if (i) {
            dj_buf_append (shell, ", ", 2);
         }
         dj_buf_append (shell, bson_iter_key (&kp), strlen (bson_iter_key (&kp)));
         dj_buf_append (shell, ": ", 2);
         dj_value_to_shell (v, shell);
      }
   }
   if (shell) {
      dj_buf_append (shell, " }", 2);
   }
   fields_free (fv, ix->npaths);
}

void
dj_index_key_doc (const dj_index_t *ix, const bson_t *doc, bson_t *out)
{
   bson_init (out);
   key_doc (ix, doc, 0, out, NULL);
}

bool
dj_index_key_bound (const dj_index_t *ix, const bson_t *bound, dj_buf_t *out, bson_error_t *error)
{
   bson_iter_t kp, b;
   bool same = bson_count_keys (bound) == (uint32_t) ix->npaths;
   bson_iter_init (&kp, ix->key);
   bson_iter_init (&b, bound);
   for (int i = 0; same && i < ix->npaths && bson_iter_next (&kp) && bson_iter_next (&b); i++) {
      same = !strcmp (bson_iter_key (&kp), bson_iter_key (&b));
      dj_key_append_by (out, bson_iter_value (&b), ix->desc[i], ix->collation);
   }
   if (!same) {
      /* https://www.mongodb.com/docs/manual/reference/method/cursor.min/#index-bounds */
      return dj_err (error, 51174, "The index chosen is not compatible with min/max");
   }
   return true;
}

/* DuplicateKey, as mongod reports it: the message names the index and the
 * conflicting key ({ a: 1 }), and the reply carries keyPattern and keyValue
 * (the same key as a document) beside it -- ctx->error_info.
 * `row` is the element of a multikey field the conflicting key came from.
 * https://www.mongodb.com/docs/manual/core/index-unique/ */
bool
dj_index_dup_error (dj_ctx_t *ctx, const dj_coll_t *c, const dj_index_t *ix, const bson_t *doc, int row, bson_error_t *error)
{
   dj_buf_t b;
   bson_t *info = bson_new (), kv;

   BSON_APPEND_DOCUMENT (info, "keyPattern", ix->key);
   BSON_APPEND_DOCUMENT_BEGIN (info, "keyValue", &kv);
   dj_buf_init (&b);
   key_doc (ix, doc, row, &kv, &b);
   bson_append_document_end (info, &kv);
   dj_err (error, DJ_DuplicateKey, "E11000 duplicate key error collection: %s index: %s dup key: %.*s", c->ns, ix->name,
           (int) b.len, (char *) b.data);
   dj_buf_cleanup (&b);
   if (ctx->error_info) {
      bson_destroy (ctx->error_info);
   }
   ctx->error_info = info;
   return false;
}

bool
dj_index_unique_check (dj_ctx_t *ctx, const dj_coll_t *c, const dj_index_t *ix, const dj_keyset_t *ks,
                       uint64_t rid, const bson_t *doc, bson_error_t *error)
{
   if (ix->rid_keyed) {
      return dj_ridkey_unique_check (ctx, c, ix, rid, doc, error);
   }
   dj_buf_t k;
   uint8_t kb[ENTRY_STACK];
   dj_buf_init (&k);
   for (int i = 0; i < ks->n; i++) {
      MDB_val val, key = entry_val (ix, &ks->keys[i], rid, kb, &k);
      int rc = mdb_get (ctx->txn, ctx->engine->dbi_data, &key, &val);
      if (rc == 0 && !(val.mv_size == 8 && dj_u64be_read (val.mv_data) == rid)) {
         dj_buf_cleanup (&k);
         return dj_index_dup_error (ctx, c, ix, doc, ks->rows ? ks->rows[i] : 0, error);
      }
      if (rc && rc != MDB_NOTFOUND) {
         dj_buf_cleanup (&k);
         return dj_lmdb_error (rc, error, "index read");
      }
   }
   dj_buf_cleanup (&k);
   return true;
}

bool
dj_keyset_has (const dj_keyset_t *ks, const dj_buf_t *key)
{
   for (int j = 0; ks && j < ks->n; j++) {
      if (ks->keys[j].len == key->len && !memcmp (ks->keys[j].data, key->data, key->len)) {
         return true;
      }
   }
   return false;
}

bool
dj_index_put_unique_at (dj_ctx_t *ctx, const dj_coll_t *c, const dj_index_t *ix, const dj_keyset_t *ks,
                        uint64_t rid, const bson_t *doc, int slot, bson_error_t *error)
{
   if (ix->rid_keyed) {
      return true; /* the record's own key: its put was the unique check (record.c) */
   }
   dj_buf_t k;
   uint8_t kb[ENTRY_STACK], r[8];
   bool ok = true;
   int i;
   dj_buf_init (&k);
   dj_u64be_write (r, rid);
   for (i = 0; ok && i < ks->n; i++) {
      MDB_val val = {8, r}, key = entry_val (ix, &ks->keys[i], rid, kb, &k);
      int rc = dj_ctx_put (ctx, slot, &key, &val, MDB_NOOVERWRITE);
      if (rc == MDB_KEYEXIST && !(val.mv_size == 8 && dj_u64be_read (val.mv_data) == rid)) {
         ok = dj_index_dup_error (ctx, c, ix, doc, ks->rows ? ks->rows[i] : 0, error);
      } else if (rc && rc != MDB_KEYEXIST) {
         ok = dj_lmdb_error (rc, error, "index write");
      }
   }
   dj_buf_cleanup (&k);
   if (!ok) {
      /* the keys before the refused one were written: taken back */
      dj_keyset_t written = *ks; /* (borrows ks's keys: never cleaned up) */
      bson_error_t ignored;
      written.n = i - 1;
      dj_index_del_keys (ctx, ix, &written, NULL, rid, &ignored);
   }
   return ok;
}

bool
dj_index_put_keys (dj_ctx_t *ctx, const dj_index_t *ix, const dj_keyset_t *ks, const dj_keyset_t *skip,
                   uint64_t rid, bson_error_t *error)
{
   return dj_index_put_keys_at (ctx, ix, ks, skip, rid, -1, error);
}

bool
dj_index_put_keys_at (dj_ctx_t *ctx, const dj_index_t *ix, const dj_keyset_t *ks, const dj_keyset_t *skip,
                      uint64_t rid, int slot, bson_error_t *error)
{
   if (ix->rid_keyed) {
      return true; /* no entries of its own (ridkey.c) */
   }
   dj_buf_t k;
   uint8_t kb[ENTRY_STACK], r[8];
   dj_buf_init (&k);
   dj_u64be_write (r, rid);
   for (int i = 0; i < ks->n; i++) {
      if (dj_keyset_has (skip, &ks->keys[i])) {
         continue;
      }
      MDB_val val = {ix->unique ? 8 : 0, ix->unique ? r : (void *) ""};
      MDB_val key = entry_val (ix, &ks->keys[i], rid, kb, &k);
      int rc = dj_ctx_put (ctx, slot, &key, &val, 0);
      if (rc) {
         dj_buf_cleanup (&k);
         return dj_lmdb_error (rc, error, "index write");
      }
   }
   dj_buf_cleanup (&k);
   return true;
}

bool
dj_index_del_keys (dj_ctx_t *ctx, const dj_index_t *ix, const dj_keyset_t *ks, const dj_keyset_t *keep,
                   uint64_t rid, bson_error_t *error)
{
   if (ix->rid_keyed) {
      return true; /* no entries of its own (ridkey.c) */
   }
   dj_buf_t k;
   dj_buf_init (&k);
   for (int i = 0; i < ks->n; i++) {
      if (dj_keyset_has (keep, &ks->keys[i])) {
         continue;
      }
      MDB_val key;
      dj_index_entry_key (&k, ix, &ks->keys[i], rid);
      key.mv_size = k.len;
      key.mv_data = k.data;
      int rc = mdb_del (ctx->txn, ctx->engine->dbi_data, &key, NULL);
      if (rc && rc != MDB_NOTFOUND) {
         dj_buf_cleanup (&k);
         return dj_lmdb_error (rc, error, "index delete");
      }
   }
   dj_buf_cleanup (&k);
   return true;
}

bool
dj_coll_add_index (dj_ctx_t *ctx, dj_coll_t *c, const bson_t *spec, bson_error_t *error)
{
   dj_index_t ix;

   if (!dj_index_load (&ix, spec, error)) {
      return false;
   }
   if (!dj_store_next_id (ctx, &ix.id, error)) {
      dj_index_cleanup (&ix);
      return false;
   }
   /* Index the existing documents. A unique violation among them fails the
    * whole command, and the caller's transaction is aborted. */
   int n_before = c->nindexes;
   c->indexes = bson_realloc (c->indexes, sizeof (dj_index_t) * (size_t) (c->nindexes + 1));
   c->indexes[c->nindexes++] = ix;
   return dj_index_build (ctx, c, &c->indexes[n_before], error) && dj_coll_save (ctx, c, error);
}

bool
dj_index_build (dj_ctx_t *ctx, dj_coll_t *c, dj_index_t *nix, bson_error_t *error)
{
   dj_walk_t w;
   dj_buf_t p;

   dj_buf_init (&p);
   dj_buf_put_u64be (&p, c->id);
   bool ok = dj_walk_open (&w, ctx, ctx->engine->dbi_data, p.data, p.len, 1, error);
   dj_buf_cleanup (&p);
   if (!ok) {
      return false;
   }
   while (ok && dj_walk_next (&w) && w.k.mv_size == 16) {
      bson_t doc;
      dj_keyset_t ks;
      uint64_t rid = dj_u64be_read ((uint8_t *) w.k.mv_data + 8);
      bson_init_static (&doc, w.v.mv_data, w.v.mv_size);
      ok = dj_index_keys (nix, &doc, &ks, error);
      if (ok) {
         if (nix->unique) {
            ok = dj_index_unique_check (ctx, c, nix, &ks, rid, &doc, error);
         }
         if (ok) {
            ok = dj_index_put_keys (ctx, nix, &ks, NULL, rid, error);
         }
         nix->multikey |= ks.multikey;
         nix->lossy |= ks.lossy;
         dj_keyset_cleanup (&ks);
      }
      if (ok) {
         /* our puts moved the cursor's page; find our place again */
         dj_buf_t again;
         dj_buf_init (&again);
         dj_record_key (&again, c->id, rid + 1);
         dj_walk_seek (&w, again.data, again.len);
         dj_buf_cleanup (&again);
      }
   }
   if (ok) {
      ok = dj_walk_close (&w, "index build", error);
   } else {
      bson_error_t ignored; /* the error is the document's */
      dj_walk_close (&w, "index build", &ignored);
   }
   return ok;
}

bool
dj_coll_drop_index (dj_ctx_t *ctx, dj_coll_t *c, int i, bson_error_t *error)
{
   if (!dj_store_delete_prefix (ctx, c->indexes[i].id, error)) {
      return false;
   }
   dj_index_cleanup (&c->indexes[i]);
   memmove (c->indexes + i, c->indexes + i + 1, sizeof (dj_index_t) * (size_t) (c->nindexes - i - 1));
   c->nindexes--;
   return dj_coll_save (ctx, c, error);
}
