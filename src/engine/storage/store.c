/*
 * store.c -- how collections, documents and indexes sit in LMDB.
 *
 * One LMDB environment per data directory, with two named databases:
 *
 *   catalog  "db\0collection"  -> BSON {ns, id, options, indexes: [{id, spec, multikey}]}
 *            "\x01next_id"     -> u64, the last prefix id handed out
 *   data     [coll id][record id]            -> the document (BSON)
 *            [index id][key]                 -> record id         (unique index)
 *            [index id][key][record id]      -> ""                (other indexes)
 *
 * Ids are 8-byte big-endian, so each collection and each index is a
 * contiguous key range: a "sub-database" by prefix. We use prefixes rather
 * than one LMDB named database per index because named-database handles are
 * per process and may not be opened by two transactions of one process at
 * once, which would make concurrent create/drop across processes unsafe.
 *
 * Every write here happens inside the caller's LMDB write transaction, and
 * LMDB allows one writer at a time across all processes: a unique check and
 * the insert that follows it are atomic.
 */
#include "dj_storage.h"

#include "dj_bson_depth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/statvfs.h>

static const char NEXT_ID_KEY[] = "\x01next_id";

bool
dj_lmdb_error (int rc, bson_error_t *error, const char *what)
{
   if (rc == MDB_MAP_FULL || rc == ENOSPC) {
      return dj_err (error, DJ_OutOfDiskSpace, "%s: the data directory is full (%s)", what, mdb_strerror (rc));
   }
   return dj_error_set (error, DJ_DOMAIN_STORAGE, (uint32_t) rc, "%s: %s", what, mdb_strerror (rc));
}

bool
dj_commit_error (const dj_engine_t *e, int rc, bson_error_t *error)
{
   /* A full disk reaches LMDB's commit as ENOSPC, or as EIO when a page
    * write came up short (LMDB reports a short write as EIO): when the
    * filesystem holding the data directory has (almost) nothing left, say
    * so in words a user acts on, as MongoDB's OutOfDiskSpace does. */
   struct statvfs fs;
   if ((rc == EIO || rc == ENOSPC) && statvfs (e->path, &fs) == 0) {
      unsigned long long avail = (unsigned long long) fs.f_bavail * fs.f_frsize;
      if (rc == ENOSPC || avail < (1ULL << 20)) {
         return dj_err (error, DJ_OutOfDiskSpace,
                        "the disk holding the data directory %s is full (%llu KiB free): commit failed, nothing was "
                        "written; free some space and retry",
                        e->path, avail >> 10);
      }
   }
   return dj_lmdb_error (rc, error, "commit failed, nothing was written");
}

/* ---- names ----------------------------------------------------------------- */

bool
dj_ns_valid (const char *db, const char *coll, bson_error_t *error)
{
   /* https://www.mongodb.com/docs/manual/reference/limits/#naming-restrictions */
   if (!db || !*db || strlen (db) >= 64 || strpbrk (db, "/\\. \"$*<>:|?")) {
      return dj_err (error, DJ_InvalidNamespace, "Invalid database name: '%s'", db ? db : "");
   }
   if (coll) {
      if (!*coll) {
         return dj_err (error, DJ_InvalidNamespace, "Invalid namespace specified '%s.'", db);
      }
      if (coll[0] == '$' || strchr (coll, '$')) {
         return dj_err (error, DJ_InvalidNamespace, "Invalid collection name: %s", coll);
      }
      if (coll[0] == '.') {
         return dj_err (error, DJ_InvalidNamespace, "Collection names cannot start with '.': %s", coll);
      }
      if (strlen (db) + 1 + strlen (coll) > 255) {
         return dj_err (error, DJ_InvalidNamespace, "Fully qualified namespace is too long. Namespace: %s.%s", db, coll);
      }
   }
   return true;
}

static void
catalog_key (dj_buf_t *k, const char *db, const char *name)
{
   dj_buf_append (k, db, strlen (db));
   dj_buf_putc (k, 0);
   if (name) {
      dj_buf_append (k, name, strlen (name));
   }
}

typedef enum { CAT_GET, CAT_PUT, CAT_DEL } catop_t;

/* db.name's catalog entry read (CAT_GET: *entry then lives in LMDB's map),
 * written (CAT_PUT: *entry) or removed (CAT_DEL): LMDB's answer
 * (MDB_NOTFOUND when there is none to read or remove). */
static int
catalog_op (dj_ctx_t *ctx, catop_t op, const char *db, const char *name, MDB_val *entry)
{
   dj_buf_t k;
   dj_buf_init (&k);
   catalog_key (&k, db, name);
   MDB_val mk = {k.len, k.data};
   MDB_dbi dbi = ctx->engine->dbi_catalog;
   int rc = op == CAT_GET   ? mdb_get (ctx->txn, dbi, &mk, entry)
            : op == CAT_PUT ? mdb_put (ctx->txn, dbi, &mk, entry, 0)
                            : mdb_del (ctx->txn, dbi, &mk, NULL);
   dj_buf_cleanup (&k);
   return rc;
}

static bool
next_id (dj_ctx_t *ctx, uint64_t *out, bson_error_t *error)
{
   MDB_val k = {sizeof NEXT_ID_KEY - 1, (void *) NEXT_ID_KEY}, v;
   uint64_t id = 0;
   int rc = mdb_get (ctx->txn, ctx->engine->dbi_catalog, &k, &v);

   if (rc == 0 && v.mv_size == 8) {
      id = dj_u64be_read (v.mv_data);
   } else if (rc != MDB_NOTFOUND && rc != 0) {
      return dj_lmdb_error (rc, error, "catalog read");
   }
   id++;
   dj_buf_t b;
   dj_buf_init (&b);
   dj_buf_put_u64be (&b, id);
   v.mv_size = 8;
   v.mv_data = b.data;
   rc = mdb_put (ctx->txn, ctx->engine->dbi_catalog, &k, &v, 0);
   dj_buf_cleanup (&b);
   if (rc) {
      return dj_lmdb_error (rc, error, "catalog write");
   }
   *out = id;
   return true;
}

/* ---- indexes ------------------------------------------------------------ */

void
dj_index_cleanup (dj_index_t *ix)
{
   for (int i = 0; i < ix->npaths; i++) {
      dj_path_cleanup (&ix->paths[i]);
   }
   bson_free (ix->paths);
   bson_free (ix->desc);
   bson_free (ix->name);
   if (ix->key) {
      bson_destroy (ix->key);
   }
   if (ix->spec) {
      bson_destroy (ix->spec);
   }
   dj_matcher_destroy (ix->partial);
   memset (ix, 0, sizeof *ix);
}

bool
dj_index_load (dj_index_t *ix, const bson_t *spec, bson_error_t *error)
{
   bson_iter_t it;

   memset (ix, 0, sizeof *ix);
   ix->key = bson_new ();
   ix->spec = bson_copy (spec);
   bson_iter_init (&it, spec);
   bool have_key = false;
   while (bson_iter_next (&it)) {
      const char *f = bson_iter_key (&it);
      if (!strcmp (f, "key")) {
         if (!BSON_ITER_HOLDS_DOCUMENT (&it)) {
            dj_err (error, DJ_TypeMismatch, "The field 'key' must be an object, but got %s",
                    dj_type_name (bson_iter_type (&it)));
            goto fail;
         }
         bson_iter_t ki;
         bson_iter_recurse (&it, &ki);
         /* a field given twice: the last one counts, for key, name and
          * partialFilterExpression alike (the earlier one is freed) */
         bson_reinit (ix->key);
         for (int i = 0; i < ix->npaths; i++) {
            dj_path_cleanup (&ix->paths[i]);
         }
         ix->npaths = 0;
         while (bson_iter_next (&ki)) {
            const bson_value_t *v = bson_iter_value (&ki);
            double d = dj_value_as_double (v);
            if (v->value_type == BSON_TYPE_UTF8) {
               dj_err (error, DJ_CannotCreateIndex, "Index type '%s' is not supported by the embedded engine",
                       v->value.v_utf8.str);
               goto fail;
            }
            if (!dj_value_is_number (v) || d == 0 || d != d) {
               dj_err (error, DJ_CannotCreateIndex, "Values in the index key pattern can only be numbers or strings, and numbers must be non-zero; found %s: %s",
                       bson_iter_key (&ki), dj_type_name (v->value_type));
               goto fail;
            }
            if (bson_iter_key (&ki)[0] == '\0' || bson_iter_key (&ki)[0] == '$') {
               dj_err (error, DJ_CannotCreateIndex, "Index key contains an illegal field name: '%s'", bson_iter_key (&ki));
               goto fail;
            }
            ix->paths = bson_realloc (ix->paths, sizeof (dj_path_t) * (size_t) (ix->npaths + 1));
            ix->desc = bson_realloc (ix->desc, sizeof (bool) * (size_t) (ix->npaths + 1));
            if (!dj_path_init (&ix->paths[ix->npaths], bson_iter_key (&ki), bson_iter_key_len (&ki), error)) {
               dj_err (error, DJ_CannotCreateIndex, "Index key contains an illegal field name: '%s'", bson_iter_key (&ki));
               goto fail;
            }
            ix->desc[ix->npaths] = d < 0;
            ix->npaths++;
            bson_append_value (ix->key, bson_iter_key (&ki), -1, v);
         }
         have_key = true;
      } else if (!strcmp (f, "name")) {
         if (!BSON_ITER_HOLDS_UTF8 (&it)) {
            dj_err (error, DJ_TypeMismatch, "The field 'name' must be a string");
            goto fail;
         }
         bson_free (ix->name);
         ix->name = bson_strdup (bson_iter_utf8 (&it, NULL));
      } else if (!strcmp (f, "unique")) {
         ix->unique = bson_iter_as_bool (&it);
      } else if (!strcmp (f, "sparse")) {
         ix->sparse = bson_iter_as_bool (&it);
      } else if (!strcmp (f, "partialFilterExpression")) {
         if (!BSON_ITER_HOLDS_DOCUMENT (&it)) {
            dj_err (error, DJ_TypeMismatch, "The field 'partialFilterExpression' must be an object");
            goto fail;
         }
         bson_t pf;
         const uint8_t *d;
         uint32_t l;
         bson_iter_document (&it, &l, &d);
         bson_init_static (&pf, d, l);
         dj_matcher_destroy (ix->partial);
         ix->partial = dj_matcher_new (&pf, error);
         if (!ix->partial) {
            goto fail;
         }
      } else if (!strcmp (f, "collation")) {
         bson_iter_t ci;
         if (BSON_ITER_HOLDS_DOCUMENT (&it) && bson_iter_recurse (&it, &ci) && bson_iter_find (&ci, "locale") &&
             BSON_ITER_HOLDS_UTF8 (&ci) && !strcmp (bson_iter_utf8 (&ci, NULL), "simple")) {
            continue;
         }
         dj_err (error, DJ_CannotCreateIndex, "collations other than 'simple' are not supported by the embedded engine");
         goto fail;
      } else if (!strcmp (f, "expireAfterSeconds")) {
         /* refused rather than stored and never enforced */
         dj_err (error, DJ_CannotCreateIndex, "TTL indexes (expireAfterSeconds) are not supported by the embedded engine");
         goto fail;
      } else if (!strcmp (f, "hidden")) {
         /* https://www.mongodb.com/docs/manual/core/index-hidden/ */
         if (!BSON_ITER_HOLDS_BOOL (&it)) {
            dj_err (error, DJ_TypeMismatch, "The field 'hidden' must be a boolean");
            goto fail;
         }
         ix->hidden = bson_iter_bool (&it);
      } else if (!strcmp (f, "v") || !strcmp (f, "background") || !strcmp (f, "ns") ||
                 !strcmp (f, "storageEngine") || !strcmp (f, "weights") ||
                 !strcmp (f, "default_language") || !strcmp (f, "language_override") || !strcmp (f, "textIndexVersion") ||
                 !strcmp (f, "dropDups") || !strcmp (f, "wildcardProjection") || !strcmp (f, "clustered")) {
         continue;
      } else {
         dj_err (error, DJ_InvalidOptions, "The field '%s' is not valid for an index specification. Specification: %s", f,
                 ix->name ? ix->name : "");
         goto fail;
      }
   }
   if (!have_key || ix->npaths == 0) {
      dj_err (error, have_key ? DJ_CannotCreateIndex : DJ_FailedToParse,
              have_key ? "Index keys cannot be an empty object." : "The 'key' field is a required property of an index specification");
      goto fail;
   }
   if (!ix->name) {
      dj_err (error, DJ_FailedToParse, "The 'name' field is a required property of an index specification");
      goto fail;
   }
   if (ix->sparse && ix->partial) {
      dj_err (error, DJ_CannotCreateIndex, "cannot mix \"partialFilterExpression\" and \"sparse\" options");
      goto fail;
   }
   ix->is_id = !strcmp (ix->name, "_id_");
   if (ix->is_id) {
      ix->unique = true; /* _id is unique without saying so */
   }
   return true;
fail:
   dj_index_cleanup (ix);
   return false;
}

/* The keys a document contributes to an index (0, 1 or many), each the
 * encoded field values cut to DJ_KEY_MAX, deduplicated. */
typedef struct {
   dj_buf_t *keys; /* owned array */
   int *rows;      /* owned array: the element of the multikey field key i was made from */
   int n;
   bool multikey;
   bool lossy;
} keyset_t;

static void
keyset_cleanup (keyset_t *ks)
{
   for (int i = 0; i < ks->n; i++) {
      dj_buf_cleanup (&ks->keys[i]);
   }
   bson_free (ks->keys);
   bson_free (ks->rows);
   memset (ks, 0, sizeof *ks);
}

typedef struct {
   bson_value_t *vals;
   int n;
   bool array;
} fieldvals_t;

static void
collect_visit (const bson_value_t *v, void *ctx)
{
   fieldvals_t *f = ctx;
   if (v->value_type == BSON_TYPE_ARRAY) {
      bson_iter_t it;
      bool any = false;
      f->array = true;
      bson_iter_init_from_data (&it, v->value.v_doc.data, v->value.v_doc.data_len);
      while (bson_iter_next (&it)) {
         f->vals = bson_realloc (f->vals, sizeof (bson_value_t) * (size_t) (f->n + 1));
         f->vals[f->n++] = *bson_iter_value (&it);
         any = true;
      }
      if (!any) {
         /* MongoDB indexes an empty array as undefined */
         f->vals = bson_realloc (f->vals, sizeof (bson_value_t) * (size_t) (f->n + 1));
         f->vals[f->n].value_type = BSON_TYPE_UNDEFINED;
         f->n++;
      }
      return;
   }
   f->vals = bson_realloc (f->vals, sizeof (bson_value_t) * (size_t) (f->n + 1));
   f->vals[f->n++] = *v;
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
      dj_path_visit (&dv, &ix->paths[i], 0, false, collect_visit, &fv[i]);
      if (fv[i].n) {
         *all_missing = false;
      } else {
         fv[i].vals = bson_malloc (sizeof (bson_value_t));
         fv[i].vals[0].value_type = BSON_TYPE_NULL;
         fv[i].n = 1;
      }
      if (fv[i].n > 1 || fv[i].array) {
         *multikey = true;
         if (fv[i].n > 1) {
            if (*multi >= 0) {
               return dj_err (error, 171, "cannot index parallel arrays [%s] [%s]", ix->paths[i].buf, ix->paths[*multi].buf);
            }
            *multi = i;
         }
      }
   }
   return true;
}

static bool
index_keys (const dj_index_t *ix, const bson_t *doc, keyset_t *ks, bson_error_t *error)
{
   fieldvals_t *fv = bson_malloc0 (sizeof (fieldvals_t) * (size_t) ix->npaths);
   int multi;
   bool ok = true, all_missing;

   memset (ks, 0, sizeof *ks);
   if (ix->partial && !dj_matcher_match (ix->partial, doc, NULL)) {
      bson_free (fv);
      return true;
   }
   if (!(ok = index_fields (ix, doc, fv, &multi, &ks->multikey, &all_missing, error))) {
      goto done;
   }
   if (ix->sparse && all_missing) {
      goto done;
   }
   int count = multi >= 0 ? fv[multi].n : 1;
   for (int r = 0; r < count; r++) {
      dj_buf_t k;
      dj_buf_init (&k);
      for (int i = 0; i < ix->npaths; i++) {
         const bson_value_t *kv = &fv[i].vals[i == multi ? r : 0];
         ks->lossy |= kv->value_type == BSON_TYPE_DECIMAL128 || kv->value_type == BSON_TYPE_DOCUMENT;
         dj_key_append (&k, kv, ix->desc[i]);
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
   for (int i = 0; i < ix->npaths; i++) {
      bson_free (fv[i].vals);
   }
   bson_free (fv);
   if (!ok) {
      keyset_cleanup (ks);
   }
   return ok;
}

static void
entry_key (dj_buf_t *out, const dj_index_t *ix, const dj_buf_t *k, uint64_t rid)
{
   out->len = 0;
   dj_buf_put_u64be (out, ix->id);
   dj_buf_append (out, k->data, k->len);
   if (!ix->unique) {
      dj_buf_put_u64be (out, rid);
   }
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
      const bson_value_t *v = &fv[i].vals[i == multi ? row : 0];
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
   for (int i = 0; i < ix->npaths; i++) {
      bson_free (fv[i].vals);
   }
   bson_free (fv);
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
      dj_key_append (out, bson_iter_value (&b), ix->desc[i]);
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
static bool
dup_key_error (dj_ctx_t *ctx, const dj_coll_t *c, const dj_index_t *ix, const bson_t *doc, int row, bson_error_t *error)
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

/* Checks that none of ks's keys is held by another record in unique index ix. */
static bool
unique_check (dj_ctx_t *ctx, const dj_coll_t *c, const dj_index_t *ix, const keyset_t *ks, uint64_t rid,
              const bson_t *doc, bson_error_t *error)
{
   dj_buf_t k;
   dj_buf_init (&k);
   for (int i = 0; i < ks->n; i++) {
      MDB_val key, val;
      entry_key (&k, ix, &ks->keys[i], rid);
      key.mv_size = k.len;
      key.mv_data = k.data;
      int rc = mdb_get (ctx->txn, ctx->engine->dbi_data, &key, &val);
      if (rc == 0 && !(val.mv_size == 8 && dj_u64be_read (val.mv_data) == rid)) {
         dj_buf_cleanup (&k);
         return dup_key_error (ctx, c, ix, doc, ks->rows[i], error);
      }
      if (rc && rc != MDB_NOTFOUND) {
         dj_buf_cleanup (&k);
         return dj_lmdb_error (rc, error, "index read");
      }
   }
   dj_buf_cleanup (&k);
   return true;
}

/* Whether ks (NULL: none) holds key: an update writes and deletes only the
 * index keys that changed. */
static bool
keyset_has (const keyset_t *ks, const dj_buf_t *key)
{
   for (int j = 0; ks && j < ks->n; j++) {
      if (ks->keys[j].len == key->len && !memcmp (ks->keys[j].data, key->data, key->len)) {
         return true;
      }
   }
   return false;
}

static bool
put_keys (dj_ctx_t *ctx, const dj_index_t *ix, const keyset_t *ks, const keyset_t *skip, uint64_t rid,
          bson_error_t *error)
{
   dj_buf_t k, r;
   dj_buf_init (&k);
   dj_buf_init (&r);
   dj_buf_put_u64be (&r, rid);
   for (int i = 0; i < ks->n; i++) {
      if (keyset_has (skip, &ks->keys[i])) {
         continue;
      }
      MDB_val key, val = {ix->unique ? 8 : 0, ix->unique ? r.data : (void *) ""};
      entry_key (&k, ix, &ks->keys[i], rid);
      key.mv_size = k.len;
      key.mv_data = k.data;
      int rc = mdb_put (ctx->txn, ctx->engine->dbi_data, &key, &val, 0);
      if (rc) {
         dj_buf_cleanup (&k);
         dj_buf_cleanup (&r);
         return dj_lmdb_error (rc, error, "index write");
      }
   }
   dj_buf_cleanup (&k);
   dj_buf_cleanup (&r);
   return true;
}

static bool
del_keys (dj_ctx_t *ctx, const dj_index_t *ix, const keyset_t *ks, const keyset_t *keep, uint64_t rid,
          bson_error_t *error)
{
   dj_buf_t k;
   dj_buf_init (&k);
   for (int i = 0; i < ks->n; i++) {
      if (keyset_has (keep, &ks->keys[i])) {
         continue;
      }
      MDB_val key;
      entry_key (&k, ix, &ks->keys[i], rid);
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

/* ---- collections ----------------------------------------------------------- */

void
dj_coll_free (dj_coll_t *c)
{
   if (!c) {
      return;
   }
   for (int i = 0; i < c->nindexes; i++) {
      dj_index_cleanup (&c->indexes[i]);
   }
   bson_free (c->indexes);
   if (c->options) {
      bson_destroy (c->options);
   }
   dj_matcher_destroy (c->validator);
   bson_free (c->db);
   bson_free (c->name);
   bson_free (c->ns);
   bson_free (c);
}

static bool
coll_apply_options (dj_coll_t *c, bson_error_t *error)
{
   bson_iter_t it;

   bson_iter_init (&it, c->options);
   while (bson_iter_next (&it)) {
      const char *k = bson_iter_key (&it);
      if (!strcmp (k, "viewOn") && BSON_ITER_HOLDS_UTF8 (&it)) {
         c->view_on = bson_iter_utf8 (&it, NULL);
      } else if (!strcmp (k, "capped")) {
         c->capped = bson_iter_as_bool (&it);
      } else if (!strcmp (k, "size")) {
         c->capped_size = bson_iter_as_int64 (&it);
      } else if (!strcmp (k, "max")) {
         c->capped_max = bson_iter_as_int64 (&it);
      } else if (!strcmp (k, "validator")) {
         bson_t v;
         const uint8_t *d;
         uint32_t l;
         if (!BSON_ITER_HOLDS_DOCUMENT (&it)) {
            return dj_err (error, DJ_TypeMismatch, "BSON field 'validator' is the wrong type '%s', expected type 'object'",
                           dj_type_name (bson_iter_type (&it)));
         }
         bson_iter_document (&it, &l, &d);
         bson_init_static (&v, d, l);
         dj_matcher_destroy (c->validator);
         c->validator = NULL;
         if (!bson_empty (&v)) {
            c->validator = dj_matcher_new (&v, error);
            if (!c->validator) {
               return false;
            }
         }
      } else if (!strcmp (k, "validationLevel")) {
         const char *s = BSON_ITER_HOLDS_UTF8 (&it) ? bson_iter_utf8 (&it, NULL) : "";
         if (strcmp (s, "strict") && strcmp (s, "moderate") && strcmp (s, "off")) {
            return dj_err (error, DJ_BadValue, "Enumeration value '%s' for field 'validationLevel' is not a valid value.", s);
         }
         c->validation_moderate = !strcmp (s, "moderate");
         c->validation_off = !strcmp (s, "off");
      } else if (!strcmp (k, "validationAction")) {
         const char *s = BSON_ITER_HOLDS_UTF8 (&it) ? bson_iter_utf8 (&it, NULL) : "";
         if (strcmp (s, "error") && strcmp (s, "warn")) {
            return dj_err (error, DJ_BadValue, "Enumeration value '%s' for field 'validationAction' is not a valid value.", s);
         }
         c->validation_warn_only = !strcmp (s, "warn");
      }
   }
   if (c->capped && c->capped_size <= 0) {
      return dj_err (error, 72, "the 'size' field is required when 'capped' is true");
   }
   return true;
}

bool
dj_coll_modify (dj_ctx_t *ctx, dj_coll_t *c, const bson_t *changes, bson_error_t *error)
{
   bson_t *next = bson_new (), *old = c->options;
   bson_iter_t it;
   bson_iter_init (&it, old);
   while (bson_iter_next (&it)) {
      if (!bson_has_field (changes, bson_iter_key (&it))) {
         bson_append_value (next, bson_iter_key (&it), -1, bson_iter_value (&it));
      }
   }
   bson_concat (next, changes);
   /* the options' effects, from nothing: an option collMod removed is gone */
   dj_matcher_destroy (c->validator);
   c->validator = NULL;
   c->validation_moderate = c->validation_off = c->validation_warn_only = false;
   c->options = next;
   if (coll_apply_options (c, error) && dj_coll_save (ctx, c, error)) {
      bson_destroy (old);
      return true;
   }
   /* as it was (those options applied before) */
   dj_matcher_destroy (c->validator);
   c->validator = NULL;
   c->validation_moderate = c->validation_off = c->validation_warn_only = false;
   c->options = old;
   bson_destroy (next);
   bson_error_t ignored;
   coll_apply_options (c, &ignored);
   return false;
}

static dj_coll_t *
coll_from_entry (const char *db, const char *name, const bson_t *entry, bson_error_t *error)
{
   bson_iter_t it, ii;
   dj_coll_t *c = bson_malloc0 (sizeof *c);

   c->db = bson_strdup (db);
   c->name = bson_strdup (name);
   c->ns = bson_strdup_printf ("%s.%s", db, name);
   c->options = bson_new ();
   if (bson_iter_init_find (&it, entry, "id")) {
      c->id = (uint64_t) bson_iter_as_int64 (&it);
   }
   if (bson_iter_init_find (&it, entry, "options") && BSON_ITER_HOLDS_DOCUMENT (&it)) {
      const uint8_t *d;
      uint32_t l;
      bson_t o;
      bson_iter_document (&it, &l, &d);
      bson_init_static (&o, d, l);
      bson_destroy (c->options);
      c->options = bson_copy (&o);
   }
   if (!coll_apply_options (c, error)) {
      dj_coll_free (c);
      return NULL;
   }
   if (bson_iter_init_find (&it, entry, "indexes") && bson_iter_recurse (&it, &ii)) {
      while (bson_iter_next (&ii)) {
         bson_iter_t fi;
         bson_t spec;
         const uint8_t *d;
         uint32_t l;
         uint64_t id = 0;
         bool multikey = false, lossy = false;
         bson_iter_recurse (&ii, &fi);
         while (bson_iter_next (&fi)) {
            if (!strcmp (bson_iter_key (&fi), "id")) {
               id = (uint64_t) bson_iter_as_int64 (&fi);
            } else if (!strcmp (bson_iter_key (&fi), "multikey")) {
               multikey = bson_iter_as_bool (&fi);
            } else if (!strcmp (bson_iter_key (&fi), "lossy")) {
               lossy = bson_iter_as_bool (&fi);
            } else if (!strcmp (bson_iter_key (&fi), "spec")) {
               bson_iter_document (&fi, &l, &d);
            }
         }
         bson_init_static (&spec, d, l);
         c->indexes = bson_realloc (c->indexes, sizeof (dj_index_t) * (size_t) (c->nindexes + 1));
         if (!dj_index_load (&c->indexes[c->nindexes], &spec, error)) {
            dj_coll_free (c);
            return NULL;
         }
         c->indexes[c->nindexes].id = id;
         c->indexes[c->nindexes].multikey = multikey;
         c->indexes[c->nindexes].lossy = lossy;
         c->nindexes++;
      }
   }
   return c;
}

bool
dj_coll_save (dj_ctx_t *ctx, const dj_coll_t *c, bson_error_t *error)
{
   bson_t entry = BSON_INITIALIZER, arr, one;
   char buf[16];
   const char *key;

   BSON_APPEND_UTF8 (&entry, "ns", c->ns);
   BSON_APPEND_INT64 (&entry, "id", (int64_t) c->id);
   BSON_APPEND_DOCUMENT (&entry, "options", c->options);
   BSON_APPEND_ARRAY_BEGIN (&entry, "indexes", &arr);
   for (int i = 0; i < c->nindexes; i++) {
      bson_uint32_to_string ((uint32_t) i, &key, buf, sizeof buf);
      bson_append_document_begin (&arr, key, -1, &one);
      BSON_APPEND_INT64 (&one, "id", (int64_t) c->indexes[i].id);
      BSON_APPEND_BOOL (&one, "multikey", c->indexes[i].multikey);
      BSON_APPEND_BOOL (&one, "lossy", c->indexes[i].lossy);
      BSON_APPEND_DOCUMENT (&one, "spec", c->indexes[i].spec);
      bson_append_document_end (&arr, &one);
   }
   bson_append_array_end (&entry, &arr);
   MDB_val mv = {entry.len, (void *) bson_get_data (&entry)};
   int rc = catalog_op (ctx, CAT_PUT, c->db, c->name, &mv);
   bson_destroy (&entry);
   if (rc) {
      return dj_lmdb_error (rc, error, "catalog write");
   }
   return true;
}

dj_coll_t *
dj_coll_load (dj_ctx_t *ctx, const char *db, const char *name, bson_error_t *error)
{
   MDB_val mv;
   bson_t entry;

   if (error) {
      error->code = 0;
   }
   if (!dj_ns_valid (db, name, error)) {
      return NULL;
   }
   int rc = catalog_op (ctx, CAT_GET, db, name, &mv);
   if (rc == MDB_NOTFOUND) {
      return NULL;
   }
   if (rc) {
      dj_lmdb_error (rc, error, "catalog read");
      return NULL;
   }
   if (!bson_init_static (&entry, mv.mv_data, mv.mv_size)) {
      dj_err (error, DJ_InternalError, "corrupt catalog entry for %s.%s", db, name);
      return NULL;
   }
   return coll_from_entry (db, name, &entry, error);
}

bool
dj_coll_is_view (dj_ctx_t *ctx, const char *db, const char *name)
{
   MDB_val mv;
   bson_t entry;
   bson_iter_t it;
   int rc = catalog_op (ctx, CAT_GET, db, name, &mv);
   /* the raw entry: no indexes or validator to build for a yes/no */
   return rc == 0 && bson_init_static (&entry, mv.mv_data, mv.mv_size) && bson_iter_init (&it, &entry) &&
          bson_iter_find_descendant (&it, "options.viewOn", &it) && BSON_ITER_HOLDS_UTF8 (&it);
}

dj_coll_t *
dj_coll_create (dj_ctx_t *ctx, const char *db, const char *name, const bson_t *options, bson_error_t *error)
{
   dj_coll_t *c = bson_malloc0 (sizeof *c);
   bson_t idspec = BSON_INITIALIZER, key;

   c->db = bson_strdup (db);
   c->name = bson_strdup (name);
   c->ns = bson_strdup_printf ("%s.%s", db, name);
   c->options = options ? bson_copy (options) : bson_new ();
   if (!coll_apply_options (c, error) || !next_id (ctx, &c->id, error)) {
      goto fail;
   }
   BSON_APPEND_INT32 (&idspec, "v", 2);
   BSON_APPEND_DOCUMENT_BEGIN (&idspec, "key", &key);
   BSON_APPEND_INT32 (&key, "_id", 1);
   bson_append_document_end (&idspec, &key);
   BSON_APPEND_UTF8 (&idspec, "name", "_id_");
   c->indexes = bson_malloc0 (sizeof (dj_index_t));
   if (!dj_index_load (&c->indexes[0], &idspec, error)) {
      goto fail;
   }
   c->nindexes = 1;
   if (!next_id (ctx, &c->indexes[0].id, error) || !dj_coll_save (ctx, c, error) ||
       !dj_changes_record_ns (ctx, "create", db, name, c->id, NULL, error)) {
      goto fail;
   }
   bson_destroy (&idspec);
   return c;
fail:
   bson_destroy (&idspec);
   dj_coll_free (c);
   return NULL;
}

dj_coll_t *
dj_coll_load_or_create (dj_ctx_t *ctx, const char *db, const char *name, bool *created, bson_error_t *error)
{
   dj_coll_t *c = dj_coll_load (ctx, db, name, error);
   if (created) {
      *created = false;
   }
   if (c || (error && error->code)) {
      return c;
   }
   c = dj_coll_create (ctx, db, name, NULL, error);
   if (c && created) {
      *created = true;
   }
   return c;
}

static bool
delete_prefix (dj_ctx_t *ctx, uint64_t id, bson_error_t *error)
{
   dj_walk_t w;
   dj_buf_t p;

   dj_buf_init (&p);
   dj_buf_put_u64be (&p, id);
   bool ok = dj_walk_open (&w, ctx, ctx->engine->dbi_data, p.data, p.len, 1, error);
   dj_buf_cleanup (&p);
   if (!ok) {
      return false;
   }
   while (dj_walk_next (&w) && dj_walk_del (&w)) {
   }
   return dj_walk_close (&w, "drop", error);
}

bool
dj_coll_drop (dj_ctx_t *ctx, dj_coll_t *c, bson_error_t *error)
{
   if (!delete_prefix (ctx, c->id, error)) {
      return false;
   }
   for (int i = 0; i < c->nindexes; i++) {
      if (!delete_prefix (ctx, c->indexes[i].id, error)) {
         return false;
      }
   }
   int rc = catalog_op (ctx, CAT_DEL, c->db, c->name, NULL);
   if (rc && rc != MDB_NOTFOUND) {
      return dj_lmdb_error (rc, error, "catalog delete");
   }
   return dj_changes_record_ns (ctx, "drop", c->db, c->name, c->id, NULL, error);
}

void
dj_strv_free (char **v, int n)
{
   for (int i = 0; i < n; i++) {
      bson_free (v[i]);
   }
   bson_free (v);
}

static bool
catalog_walk (dj_ctx_t *ctx, const char *db, char ***names, int *n, bool dbs, bson_error_t *error)
{
   static const uint8_t past_counters = 0x02; /* the catalog's \x01 keys are counters, not names */
   dj_walk_t w;
   dj_buf_t p;

   *names = NULL;
   *n = 0;
   dj_buf_init (&p);
   if (db) {
      catalog_key (&p, db, NULL);
   }
   bool ok = dj_walk_open (&w, ctx, ctx->engine->dbi_catalog, p.data, p.len, 1, error);
   dj_buf_cleanup (&p);
   if (!ok) {
      return false;
   }
   if (!db) {
      dj_walk_seek (&w, &past_counters, 1);
   }
   while (dj_walk_next (&w)) {
      const char *s = w.k.mv_data;
      size_t dl = strnlen (s, w.k.mv_size);
      char *item = dbs ? bson_strndup (s, dl) : bson_strndup (s + dl + 1, w.k.mv_size - dl - 1);
      if (dbs && *n && !strcmp ((*names)[*n - 1], item)) {
         bson_free (item);
      } else {
         *names = bson_realloc (*names, sizeof (char *) * (size_t) (*n + 1));
         (*names)[(*n)++] = item;
      }
   }
   if (!dj_walk_close (&w, "catalog scan", error)) {
      dj_strv_free (*names, *n);
      *names = NULL;
      *n = 0;
      return false;
   }
   return true;
}

bool
dj_coll_list (dj_ctx_t *ctx, const char *db, char ***names, int *n, bson_error_t *error)
{
   return catalog_walk (ctx, db, names, n, false, error);
}

bool
dj_db_list (dj_ctx_t *ctx, char ***names, int *n, bson_error_t *error)
{
   return catalog_walk (ctx, NULL, names, n, true, error);
}

/* ---- records ------------------------------------------------------------ */

static void
record_key (dj_buf_t *b, uint64_t coll, uint64_t rid)
{
   b->len = 0;
   dj_buf_put_u64be (b, coll);
   dj_buf_put_u64be (b, rid);
}

static bool
next_rid (dj_ctx_t *ctx, const dj_coll_t *c, uint64_t *rid, bson_error_t *error)
{
   dj_walk_t w;
   dj_buf_t p;

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
   dj_buf_t k;
   MDB_val mk, mv;
   dj_buf_init (&k);
   record_key (&k, c->id, rid);
   mk.mv_size = k.len;
   mk.mv_data = k.data;
   int rc = mdb_get (ctx->txn, ctx->engine->dbi_data, &mk, &mv);
   dj_buf_cleanup (&k);
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
   if (ctx->error_info) {
      bson_destroy (ctx->error_info);
   }
   ctx->error_info = info;
   return dj_err (error, DJ_DocumentValidationFailure, "Document failed validation");
}

/* Records that index i now holds a multikey or a lossy key (never unset:
 * a flag may be stale-true, never stale-false). */
static bool
note_flags (dj_ctx_t *ctx, dj_coll_t *c, int i, const keyset_t *ks, bson_error_t *error)
{
   if ((!ks->multikey || c->indexes[i].multikey) && (!ks->lossy || c->indexes[i].lossy)) {
      return true;
   }
   c->indexes[i].multikey |= ks->multikey;
   c->indexes[i].lossy |= ks->lossy;
   return dj_coll_save (ctx, c, error);
}

bool
dj_record_insert (dj_ctx_t *ctx, dj_coll_t *c, const bson_t *doc, uint64_t *rid_out, bson_error_t *error)
{
   keyset_t *ks = bson_malloc0 (sizeof (keyset_t) * (size_t) c->nindexes);
   dj_buf_t k;
   uint64_t rid = 0;
   bool ok = false;

   dj_buf_init (&k);
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
   if (!next_rid (ctx, c, &rid, error)) {
      goto done;
   }
   /* every key first, every unique check second, writes last: a failure
    * leaves nothing behind */
   for (int i = 0; i < c->nindexes; i++) {
      if (!index_keys (&c->indexes[i], doc, &ks[i], error)) {
         goto done;
      }
   }
   for (int i = 0; i < c->nindexes; i++) {
      if (c->indexes[i].unique && !unique_check (ctx, c, &c->indexes[i], &ks[i], rid, doc, error)) {
         goto done;
      }
   }
   record_key (&k, c->id, rid);
   MDB_val mk = {k.len, k.data}, mv = {doc->len, (void *) bson_get_data (doc)};
   int rc = mdb_put (ctx->txn, ctx->engine->dbi_data, &mk, &mv, MDB_NOOVERWRITE);
   if (rc) {
      dj_lmdb_error (rc, error, "record write");
      goto done;
   }
   for (int i = 0; i < c->nindexes; i++) {
      if (!put_keys (ctx, &c->indexes[i], &ks[i], NULL, rid, error)) {
         goto done;
      }
      if (!note_flags (ctx, c, i, &ks[i], error)) {
         goto done;
      }
   }
   if (rid_out) {
      *rid_out = rid;
   }
   ok = dj_changes_record (ctx, c, "insert", NULL, doc, error);
done:
   for (int i = 0; i < c->nindexes; i++) {
      keyset_cleanup (&ks[i]);
   }
   bson_free (ks);
   dj_buf_cleanup (&k);
   return ok;
}

bool
dj_record_update (dj_ctx_t *ctx, dj_coll_t *c, uint64_t rid, const bson_t *old_doc, const bson_t *new_doc,
                  bson_error_t *error)
{
   keyset_t *oks = bson_malloc0 (sizeof (keyset_t) * (size_t) c->nindexes);
   keyset_t *nks = bson_malloc0 (sizeof (keyset_t) * (size_t) c->nindexes);
   dj_buf_t k;
   bool ok = false;

   dj_buf_init (&k);
   if (new_doc->len > DJ_MAX_BSON_SIZE) {
      dj_err (error, DJ_BSONObjectTooLarge, "Resulting document after update is larger than %d", DJ_MAX_BSON_SIZE);
      goto done;
   }
   if (!dj_bson_depth_ok (bson_get_data (new_doc), new_doc->len, DJ_MAX_STORED_DEPTH)) {
      dj_err (error, DJ_Overflow, "the document after the update would exceed %d levels of nesting",
              DJ_MAX_STORED_DEPTH + 1);
      goto done;
   }
   for (int i = 0; i < c->nindexes; i++) {
      if (!index_keys (&c->indexes[i], old_doc, &oks[i], error) || !index_keys (&c->indexes[i], new_doc, &nks[i], error)) {
         goto done;
      }
   }
   for (int i = 0; i < c->nindexes; i++) {
      if (c->indexes[i].unique && !unique_check (ctx, c, &c->indexes[i], &nks[i], rid, new_doc, error)) {
         goto done;
      }
   }
   for (int i = 0; i < c->nindexes; i++) {
      if (!del_keys (ctx, &c->indexes[i], &oks[i], &nks[i], rid, error) ||
          !put_keys (ctx, &c->indexes[i], &nks[i], &oks[i], rid, error)) {
         goto done;
      }
      if (!note_flags (ctx, c, i, &nks[i], error)) {
         goto done;
      }
   }
   record_key (&k, c->id, rid);
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
      keyset_cleanup (&oks[i]);
      keyset_cleanup (&nks[i]);
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
      keyset_t ks;
      if (!index_keys (&c->indexes[i], doc, &ks, error)) {
         return false;
      }
      ok = del_keys (ctx, &c->indexes[i], &ks, NULL, rid, error);
      keyset_cleanup (&ks);
   }
   if (!ok) {
      return false;
   }
   dj_buf_init (&k);
   record_key (&k, c->id, rid);
   MDB_val mk = {k.len, k.data};
   int rc = mdb_del (ctx->txn, ctx->engine->dbi_data, &mk, NULL);
   dj_buf_cleanup (&k);
   if (rc) {
      return dj_lmdb_error (rc, error, "record delete");
   }
   return dj_changes_record (ctx, c, "delete", doc, NULL, error);
}

bool
dj_coll_add_index (dj_ctx_t *ctx, dj_coll_t *c, const bson_t *spec, bson_error_t *error)
{
   dj_index_t ix;
   dj_walk_t w;
   dj_buf_t p;

   if (!dj_index_load (&ix, spec, error)) {
      return false;
   }
   if (!next_id (ctx, &ix.id, error)) {
      dj_index_cleanup (&ix);
      return false;
   }
   dj_buf_init (&p);
   dj_buf_put_u64be (&p, c->id);
   bool ok = dj_walk_open (&w, ctx, ctx->engine->dbi_data, p.data, p.len, 1, error);
   dj_buf_cleanup (&p);
   if (!ok) {
      dj_index_cleanup (&ix);
      return false;
   }
   /* Index the existing documents. A unique violation among them fails the
    * whole command, and the caller's transaction is aborted. */
   int n_before = c->nindexes;
   c->indexes = bson_realloc (c->indexes, sizeof (dj_index_t) * (size_t) (c->nindexes + 1));
   c->indexes[c->nindexes++] = ix;
   dj_index_t *nix = &c->indexes[n_before];
   while (ok && dj_walk_next (&w) && w.k.mv_size == 16) {
      bson_t doc;
      keyset_t ks;
      uint64_t rid = dj_u64be_read ((uint8_t *) w.k.mv_data + 8);
      bson_init_static (&doc, w.v.mv_data, w.v.mv_size);
      ok = index_keys (nix, &doc, &ks, error);
      if (ok) {
         if (nix->unique) {
            ok = unique_check (ctx, c, nix, &ks, rid, &doc, error);
         }
         if (ok) {
            ok = put_keys (ctx, nix, &ks, NULL, rid, error);
         }
         nix->multikey |= ks.multikey;
         nix->lossy |= ks.lossy;
         keyset_cleanup (&ks);
      }
      if (ok) {
         /* our puts moved the cursor's page; find our place again */
         dj_buf_t again;
         dj_buf_init (&again);
         record_key (&again, c->id, rid + 1);
         dj_walk_seek (&w, again.data, again.len);
         dj_buf_cleanup (&again);
      }
   }
   if (ok) {
      ok = dj_walk_close (&w, "index build", error) && dj_coll_save (ctx, c, error);
   } else {
      bson_error_t ignored; /* the error is the document's */
      dj_walk_close (&w, "index build", &ignored);
   }
   return ok;
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

bool
dj_coll_rename (dj_ctx_t *ctx, dj_coll_t *c, const char *db, const char *name, bson_error_t *error)
{
   /* the catalog entry moves to the new key; records and index entries stay
    * where they are (they are keyed by the collection's and indexes' ids) */
   int rc = catalog_op (ctx, CAT_DEL, c->db, c->name, NULL);
   if (rc) {
      return dj_lmdb_error (rc, error, "catalog delete");
   }
   bson_free (c->db);
   bson_free (c->name);
   bson_free (c->ns);
   c->db = bson_strdup (db);
   c->name = bson_strdup (name);
   c->ns = bson_strdup_printf ("%s.%s", db, name);
   return dj_coll_save (ctx, c, error);
}

bool
dj_coll_drop_index (dj_ctx_t *ctx, dj_coll_t *c, int i, bson_error_t *error)
{
   if (!delete_prefix (ctx, c->indexes[i].id, error)) {
      return false;
   }
   dj_index_cleanup (&c->indexes[i]);
   memmove (c->indexes + i, c->indexes + i + 1, sizeof (dj_index_t) * (size_t) (c->nindexes - i - 1));
   c->nindexes--;
   return dj_coll_save (ctx, c, error);
}

bool
dj_coll_check (dj_ctx_t *ctx, dj_coll_t *c, dj_coll_check_t *out, bson_error_t *error)
{
   memset (out, 0, sizeof *out);
   out->keys = bson_malloc0 (sizeof (int64_t) * (size_t) (c->nindexes ? c->nindexes : 1));
   out->dangling = bson_malloc0 (sizeof (int64_t) * (size_t) (c->nindexes ? c->nindexes : 1));
   for (int i = -1; i < c->nindexes; i++) {
      dj_walk_t w;
      dj_buf_t p;
      const dj_index_t *ix = i < 0 ? NULL : &c->indexes[i];
      dj_buf_init (&p);
      dj_buf_put_u64be (&p, ix ? ix->id : c->id);
      bool ok = dj_walk_open (&w, ctx, ctx->engine->dbi_data, p.data, p.len, 1, error);
      dj_buf_cleanup (&p);
      if (!ok) {
         return false;
      }
      while (dj_walk_next (&w)) {
         if (!ix) {
            bson_t doc;
            out->nrecords++;
            /* a record must be a whole document a reader can walk */
            if (w.k.mv_size != 16 || !bson_init_static (&doc, w.v.mv_data, w.v.mv_size) ||
                !dj_bson_depth_ok (w.v.mv_data, w.v.mv_size, DJ_BSON_MAX_DEPTH) || !bson_validate (&doc, 0, NULL)) {
               out->invalid++;
            }
            continue;
         }
         out->keys[i]++;
         /* every entry names a record that is there */
         const uint8_t *kd = w.k.mv_data;
         uint64_t rid = ix->unique ? dj_u64be_read (w.v.mv_data) : dj_u64be_read (kd + w.k.mv_size - 8);
         dj_buf_t rk;
         dj_buf_init (&rk);
         dj_buf_put_u64be (&rk, c->id);
         dj_buf_put_u64be (&rk, rid);
         MDB_val mk = {rk.len, rk.data}, mv;
         if (mdb_get (ctx->txn, ctx->engine->dbi_data, &mk, &mv) != 0) {
            out->dangling[i]++;
         }
         dj_buf_cleanup (&rk);
      }
      if (!dj_walk_close (&w, "validate", error)) {
         return false;
      }
   }
   return true;
}

void
dj_coll_check_cleanup (dj_coll_check_t *r)
{
   bson_free (r->keys);
   bson_free (r->dangling);
}

void
dj_coll_stats (dj_ctx_t *ctx, dj_coll_t *c, int64_t *count, int64_t *size, int64_t *index_sizes)
{
   *count = *size = 0;
   for (int i = -1; i < c->nindexes; i++) {
      dj_walk_t w;
      dj_buf_t p;
      bson_error_t ignored; /* statistics are best effort */
      int64_t bytes = 0, n = 0;
      dj_buf_init (&p);
      dj_buf_put_u64be (&p, i < 0 ? c->id : c->indexes[i].id);
      bool ok = dj_walk_open (&w, ctx, ctx->engine->dbi_data, p.data, p.len, 1, &ignored);
      dj_buf_cleanup (&p);
      if (!ok) {
         return;
      }
      while (dj_walk_next (&w)) {
         n++;
         bytes += (int64_t) (i < 0 ? w.v.mv_size : w.k.mv_size + w.v.mv_size);
      }
      dj_walk_close (&w, "statistics", &ignored);
      if (i < 0) {
         *count = n;
         *size = bytes;
      } else if (index_sizes) {
         index_sizes[i] = bytes;
      }
   }
}
