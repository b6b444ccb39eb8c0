/*
 * store.c -- how collections, documents and indexes sit in LMDB, and the
 * catalog: collections created, loaded, changed, renamed, dropped, listed,
 * checked and measured (records: record.c; index entries: index.c).
 *
 * One LMDB environment per data directory, with two named databases:
 *
 *   catalog  "db\0collection"  -> BSON {ns, id, options, indexes: [{id, spec, multikey, lossy[, recordKeyed]}]}
 *            "\x01next_id"     -> u64, the last prefix id handed out
 *   data     [coll id][record id]            -> the document (BSON)
 *            [index id][key]                 -> record id         (unique index)
 *            [index id][key][record id]      -> ""                (other indexes)
 *            (none)                                               (a record-keyed index:
 *                                                                  its keys are the record ids, ridkey.c)
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
#include "storage-private.h"

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

bool
dj_store_next_id (dj_ctx_t *ctx, uint64_t *out, bson_error_t *error)
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
   DJ_FREE (c->entry, c->db, c->name, c->ns, c);
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
            if (dj_matcher_text (c->validator)) { /* it reads a text index: no document alone answers it */
               dj_matcher_destroy (c->validator);
               c->validator = NULL;
               return dj_err (error, DJ_QueryFeatureNotAllowed, "$text is not allowed in this context");
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
         bool multikey = false, lossy = false, keyed = false;
         bson_iter_recurse (&ii, &fi);
         while (bson_iter_next (&fi)) {
            if (!strcmp (bson_iter_key (&fi), "id")) {
               id = (uint64_t) bson_iter_as_int64 (&fi);
            } else if (!strcmp (bson_iter_key (&fi), "multikey")) {
               multikey = bson_iter_as_bool (&fi);
            } else if (!strcmp (bson_iter_key (&fi), "lossy")) {
               lossy = bson_iter_as_bool (&fi);
            } else if (!strcmp (bson_iter_key (&fi), "recordKeyed")) {
               keyed = bson_iter_as_bool (&fi); /* (ridkey.c) */
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
         c->indexes[c->nindexes].rid_keyed = keyed;
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
      if (c->indexes[i].rid_keyed) { /* (ridkey.c; absent: false) */
         BSON_APPEND_BOOL (&one, "recordKeyed", true);
      }
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

dj_coll_t *
dj_coll_checkout (dj_ctx_t *ctx, const char *db, const char *name, bson_error_t *error)
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
   dj_coll_t *c = dj_keep_take (ctx->engine->coll_cache, mv.mv_data, mv.mv_size);
   if (c) {
      return c;
   }
   if (!bson_init_static (&entry, mv.mv_data, mv.mv_size)) {
      dj_err (error, DJ_InternalError, "corrupt catalog entry for %s.%s", db, name);
      return NULL;
   }
   c = coll_from_entry (db, name, &entry, error);
   if (c) {
      /* (mv lives in LMDB's map only as long as the transaction) */
      c->entry = bson_malloc (mv.mv_size);
      memcpy (c->entry, mv.mv_data, mv.mv_size);
      c->entry_len = (uint32_t) mv.mv_size;
   }
   return c;
}

void
dj_coll_checkin (dj_engine_t *e, dj_coll_t *c)
{
   if (c && c->entry) {
      dj_keep_put (e->coll_cache, c->entry, c->entry_len, c);
   } else {
      dj_coll_free (c);
   }
}

void
dj_coll_checkin_written (dj_engine_t *e, dj_coll_t *c)
{
   if (c) {
      c->next_rid = 0; /* good inside the transaction that wrote only */
   }
   /* (a handle whose index flags the write set has no entry left:
    * dj_record_note_flags) */
   dj_coll_checkin (e, c);
}

void
dj_coll_free_any (void *c)
{
   dj_coll_free (c);
}

bool
dj_coll_entry_options (dj_ctx_t *ctx, const char *db, const char *name, bson_t *options)
{
   MDB_val mv;
   bson_t entry;
   bson_iter_t it;
   const uint8_t *d;
   uint32_t l;
   /* the raw entry: no indexes or validator to build for what the
    * dispatcher asks of every command (engine.c) */
   if (catalog_op (ctx, CAT_GET, db, name, &mv) || !bson_init_static (&entry, mv.mv_data, mv.mv_size) ||
       !bson_iter_init_find (&it, &entry, "options") || !BSON_ITER_HOLDS_DOCUMENT (&it)) {
      return false;
   }
   bson_iter_document (&it, &l, &d);
   return bson_init_static (options, d, l);
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
   if (!coll_apply_options (c, error) || !dj_store_next_id (ctx, &c->id, error)) {
      goto fail;
   }
   BSON_APPEND_INT32 (&idspec, "v", 2);
   BSON_APPEND_DOCUMENT_BEGIN (&idspec, "key", &key);
   BSON_APPEND_INT32 (&key, "_id", 1);
   bson_append_document_end (&idspec, &key);
   BSON_APPEND_UTF8 (&idspec, "name", "_id_");
   bson_iter_t coll;
   if (bson_iter_init_find (&coll, c->options, "collation")) {
      /* the _id index takes the collection's default collation, as every index made without one
       * https://www.mongodb.com/docs/manual/reference/collation/#collation-and-index-use */
      bson_append_value (&idspec, "collation", -1, bson_iter_value (&coll));
   }
   c->indexes = bson_malloc0 (sizeof (dj_index_t));
   if (!dj_index_load (&c->indexes[0], &idspec, error)) {
      goto fail;
   }
   c->nindexes = 1;
   if (!dj_store_next_id (ctx, &c->indexes[0].id, error) || !dj_coll_save (ctx, c, error) ||
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

bool
dj_store_delete_prefix (dj_ctx_t *ctx, uint64_t id, bson_error_t *error)
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
   if (!dj_store_delete_prefix (ctx, c->id, error)) {
      return false;
   }
   for (int i = 0; i < c->nindexes; i++) {
      if (!dj_store_delete_prefix (ctx, c->indexes[i].id, error)) {
         return false;
      }
   }
   int rc = catalog_op (ctx, CAT_DEL, c->db, c->name, NULL);
   if (rc && rc != MDB_NOTFOUND) {
      return dj_lmdb_error (rc, error, "catalog delete");
   }
   return dj_changes_record_ns (ctx, "drop", c->db, c->name, c->id, NULL, error);
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

bool
dj_coll_rename (dj_ctx_t *ctx, dj_coll_t *c, const char *db, const char *name, bson_error_t *error)
{
   /* the catalog entry moves to the new key; records and index entries stay
    * where they are (they are keyed by the collection's and indexes' ids) */
   int rc = catalog_op (ctx, CAT_DEL, c->db, c->name, NULL);
   if (rc) {
      return dj_lmdb_error (rc, error, "catalog delete");
   }
   DJ_FREE (c->db, c->name, c->ns);
   c->db = bson_strdup (db);
   c->name = bson_strdup (name);
   c->ns = bson_strdup_printf ("%s.%s", db, name);
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
      if (ix && ix->rid_keyed) {
         out->keys[i] = out->nrecords; /* its entries are the records (ridkey.c) */
         continue;
      }
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
         dj_record_key (&rk, c->id, rid);
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
   DJ_FREE (r->keys, r->dangling);
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
