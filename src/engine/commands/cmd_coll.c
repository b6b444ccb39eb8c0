/*
 * cmd_coll.c -- collections and databases: create, collMod, drop, dropDatabase, validate,
 * renameCollection, listCollections, listDatabases, collStats, dbStats, fsync (views:
 * view.c).
 */
#include "dj_commands.h"

#include <stdio.h>

/* changeStreamPreAndPostImages: {enabled: <bool>} and nothing else (it
 names the command, `cmd`, in its errors as mongod's parser does). */
static bool
pre_post_images_option (const bson_iter_t *opt, const char *cmd, bson_error_t *error)
{
   bson_iter_t f;
   bool enabled = false;
   if (!BSON_ITER_HOLDS_DOCUMENT (opt)) {
      return dj_err (error, DJ_TypeMismatch, "BSON field '%s.changeStreamPreAndPostImages' is the wrong type '%s', expected type 'object'",
                     cmd, dj_type_name (bson_iter_type (opt)));
   }
   bson_iter_recurse (opt, &f);
   while (bson_iter_next (&f)) {
      if (strcmp (bson_iter_key (&f), "enabled")) {
         return dj_err (error, DJ_UnknownField, "BSON field '%s.changeStreamPreAndPostImages.%s' is an unknown field.", cmd,
                        bson_iter_key (&f));
      }
      if (!BSON_ITER_HOLDS_BOOL (&f)) {
         return dj_err (error, DJ_TypeMismatch,
                        "BSON field '%s.changeStreamPreAndPostImages.enabled' is the wrong type '%s', expected type 'bool'",
                        cmd, dj_type_name (bson_iter_type (&f)));
      }
      enabled = true;
   }
   if (!enabled) {
      return dj_err (error, 40414, "BSON field '%s.changeStreamPreAndPostImages.enabled' is missing but a required field", cmd);
   }
   return true;
}

/* create: https://www.mongodb.com/docs/manual/reference/command/create/ */
bool
dj_cmd_create (dj_engine_t *e, const char *db, const bson_t *cmd, bson_t *reply, bson_error_t *error)
{
   static const char *const known[] = {"capped", "size", "max", "validator", "validationLevel", "validationAction",
                                       "idIndex", "collation", "storageEngine", "indexOptionDefaults", "viewOn",
                                       "pipeline", "timeseries", "expireAfterSeconds", "clusteredIndex",
                                       "changeStreamPreAndPostImages", "autoIndexId", "flags", "encryptedFields", NULL};
   const char *name;
   bson_iter_t it;
   bson_t options = BSON_INITIALIZER;
   dj_ctx_t ctx = {0};
   dj_coll_t *c = NULL;
   bool ok = false;

   if (!dj_cmd_target (cmd, db, known, &name, error)) {
      goto done;
   }
   if (bson_has_field (cmd, "viewOn")) {
      if (!dj_view_options (cmd, &options, error)) {
         goto done;
      }
   } else if (bson_has_field (cmd, "pipeline")) {
      dj_err (error, DJ_InvalidOptions, "'pipeline' requires 'viewOn' to also be specified");
      goto done;
   }
   bson_iter_init (&it, cmd);
   bson_iter_next (&it);
   while (!bson_has_field (&options, "viewOn") && bson_iter_next (&it)) {
      const char *k = bson_iter_key (&it);
      if (!strcmp (k, "timeseries") || !strcmp (k, "clusteredIndex") ||
          !strcmp (k, "encryptedFields") || !strcmp (k, "expireAfterSeconds")) {
         dj_err (error, DJ_NotImplemented, "create with '%s' is not supported by the embedded engine", k);
         goto done;
      }
      if (!strcmp (k, "collation") && !dj_collation_option (bson_iter_value (&it), &options, "collation", error)) {
         goto done; /* (default_collation.c) */
      }
      if (!strcmp (k, "changeStreamPreAndPostImages") && !pre_post_images_option (&it, "create", error)) {
         goto done;
      }
      if (!strcmp (k, "capped") || !strcmp (k, "size") || !strcmp (k, "max") || !strcmp (k, "validator") ||
          !strcmp (k, "validationLevel") || !strcmp (k, "validationAction") || !strcmp (k, "changeStreamPreAndPostImages")) {
         bson_append_value (&options, k, -1, bson_iter_value (&it));
      }
   }
   if (!dj_txn_begin (e, true, &ctx, error)) {
      goto done;
   }
   c = dj_coll_load (&ctx, db, name, error);
   if (c) {
      dj_err (error, DJ_NamespaceExists, "Collection %s.%s already exists.", db, name);
      goto done;
   }
   if (error->code || !(c = dj_coll_create (&ctx, db, name, &options, error)) || !dj_txn_commit (&ctx, error)) {
      goto done;
   }
   BSON_APPEND_DOUBLE (reply, "ok", 1.0);
   ok = true;
done:
   bson_destroy (&options);
   return dj_cmd_end (&ctx, c, ok, error);
}

/* collMod's index: {name | keyPattern, hidden, expireAfterSeconds}: a
 * hidden index is kept up to date (a unique one still refuses duplicates)
 * but never chosen or hinted; expireAfterSeconds changes a TTL index's
 * period, or makes a single-field index a TTL index (MongoDB 5.1+).
 * https://www.mongodb.com/docs/manual/core/index-hidden/
 * https://www.mongodb.com/docs/manual/core/index-ttl/#change-the-expireafterseconds-value-for-a-ttl-index */
static bool
modify_index (dj_ctx_t *ctx, dj_coll_t *c, const bson_t *spec, bson_t *reply, bson_error_t *error)
{
   bson_iter_t it;
   dj_index_t *ix = NULL;
   bool hidden = false, has_hidden = false, has_ttl = false;
   int32_t ttl = 0;
   bson_value_t ttl_given = {0}; /* as given: the reply echoes its type, as mongod's */
   bson_iter_init (&it, spec);
   while (bson_iter_next (&it)) {
      const char *k = bson_iter_key (&it);
      if (!strcmp (k, "name") && BSON_ITER_HOLDS_UTF8 (&it)) {
         for (int i = 0; i < c->nindexes && !ix; i++) {
            ix = !strcmp (c->indexes[i].name, bson_iter_utf8 (&it, NULL)) ? &c->indexes[i] : NULL;
         }
      } else if (!strcmp (k, "keyPattern") && BSON_ITER_HOLDS_DOCUMENT (&it)) {
         bson_t key;
         const uint8_t *d;
         uint32_t l;
         bson_iter_document (&it, &l, &d);
         bson_init_static (&key, d, l);
         for (int i = 0; i < c->nindexes && !ix; i++) {
            ix = bson_equal (c->indexes[i].key, &key) ? &c->indexes[i] : NULL;
         }
      } else if (!strcmp (k, "hidden") && BSON_ITER_HOLDS_BOOL (&it)) {
         hidden = bson_iter_bool (&it);
         has_hidden = true;
      } else if (!strcmp (k, "expireAfterSeconds")) {
         if (!dj_ttl_seconds (bson_iter_value (&it), &ttl, error)) {
            return false;
         }
         ttl_given = *bson_iter_value (&it);
         has_ttl = true;
      } else {
         return dj_err (error, DJ_NotImplemented, "collMod of an index's '%s' is not supported by the embedded engine", k);
      }
   }
   if (!ix) {
      return dj_err (error, DJ_IndexNotFound, "cannot find index in collMod of %s", c->ns);
   }
   if (!has_hidden && !has_ttl) {
      return dj_err (error, DJ_InvalidOptions, "no index option to modify (hidden, expireAfterSeconds)");
   }
   if (ix->is_id && hidden) {
      return dj_err (error, DJ_BadValue, "can't hide _id index");
   }
   if (has_ttl && ix->is_id) {
      return dj_err (error, DJ_InvalidOptions, "the _id field does not support TTL indexes");
   }
   if (has_ttl && ix->npaths != 1) {
      return dj_err (error, DJ_InvalidOptions, "TTL indexes are single-field indexes, compound indexes do not support TTL");
   }
   if (!has_hidden) {
      hidden = ix->hidden;
   }
   bson_t *respec = bson_new ();
   bson_iter_init (&it, ix->spec);
   while (bson_iter_next (&it)) {
      if (strcmp (bson_iter_key (&it), "hidden") && (!has_ttl || strcmp (bson_iter_key (&it), "expireAfterSeconds"))) {
         bson_append_iter (respec, NULL, 0, &it);
      }
   }
   if (hidden) {
      BSON_APPEND_BOOL (respec, "hidden", true);
   }
   if (has_ttl) {
      bson_iter_t old;
      BSON_APPEND_VALUE (respec, "expireAfterSeconds", &ttl_given);
      if (ix->ttl && bson_iter_init_find (&old, ix->spec, "expireAfterSeconds")) {
         BSON_APPEND_VALUE (reply, "expireAfterSeconds_old", bson_iter_value (&old));
      }
      BSON_APPEND_VALUE (reply, "expireAfterSeconds_new", &ttl_given);
      ix->ttl = true;
      ix->expire_after = ttl;
   }
   if (has_hidden) {
      BSON_APPEND_BOOL (reply, "hidden_old", ix->hidden);
      BSON_APPEND_BOOL (reply, "hidden_new", hidden);
   }
   bson_destroy (ix->spec);
   ix->spec = respec;
   ix->hidden = hidden;
   return dj_coll_save (ctx, c, error);
}

/* collMod: https://www.mongodb.com/docs/manual/reference/command/collMod/
 * The validation options only (validator, validationLevel,
 * validationAction), which apply to writes from then on: existing documents
 * are not checked. A validator set without a level or action records the
 * defaults (strict, error) as mongod's collMod does (SERVER-53575); an
 * empty validator ({}) removes validation. The other options (views, TTL,
 * index changes) are refused by name. */
/* collMod's change event ("modify", shown with showExpandedEvents): its
 * operationDescription is the options the command gave.
 * https://www.mongodb.com/docs/manual/reference/change-events/modify/ */
static bool
collmod_event (dj_ctx_t *ctx, const dj_coll_t *c, const bson_t *cmd, bson_error_t *error)
{
   bson_t desc = BSON_INITIALIZER;
   bson_iter_t it;
   bson_iter_init (&it, cmd);
   bson_iter_next (&it);
   while (bson_iter_next (&it)) {
      const char *k = bson_iter_key (&it);
      if (strcmp (k, "writeConcern") && strcmp (k, "dryRun") && k[0] != '$' && strcmp (k, "lsid") &&
          strcmp (k, "txnNumber") && strcmp (k, "comment")) {
         bson_append_value (&desc, k, -1, bson_iter_value (&it));
      }
   }
   bool ok = dj_changes_record_ns (ctx, "modify", c->db, c->name, c->id, &desc, error);
   bson_destroy (&desc);
   return ok;
}

bool
dj_cmd_coll_mod (dj_engine_t *e, const char *db, const bson_t *cmd, bson_t *reply, bson_error_t *error)
{
   static const char *const known[] = {"validator", "validationLevel", "validationAction", "index", "viewOn", "pipeline",
                                       "expireAfterSeconds", "changeStreamPreAndPostImages", "timeseries", "cappedSize",
                                       "cappedMax", "dryRun", "writeConcern", NULL};
   dj_ctx_t ctx = {0};
   dj_coll_t *c = NULL;
   bson_t changes = BSON_INITIALIZER, index_spec;
   bson_iter_t it;
   const char *name;
   bool ok = false, has_index = false;

   if (!dj_cmd_target (cmd, db, known, &name, error)) {
      goto done;
   }
   bson_iter_init (&it, cmd);
   bson_iter_next (&it);
   while (bson_iter_next (&it)) {
      const char *k = bson_iter_key (&it);
      if (!strcmp (k, "validator") || !strcmp (k, "validationLevel") || !strcmp (k, "validationAction")) {
         bson_append_value (&changes, k, -1, bson_iter_value (&it));
      } else if (!strcmp (k, "changeStreamPreAndPostImages")) {
         /* {enabled: bool}: change streams' pre- and post-images (storage/changes.c)
          * https://www.mongodb.com/docs/manual/reference/command/collMod/#change-streams-with-document-pre--and-post-images */
         if (!pre_post_images_option (&it, "collMod", error)) {
            goto done;
         }
         bson_append_value (&changes, k, -1, bson_iter_value (&it));
      } else if (!strcmp (k, "index")) {
         if (!dj_cmd_get_doc (cmd, "index", &index_spec, &has_index, error)) {
            goto done;
         }
      } else {
         for (int i = 3; known[i]; i++) { /* the options after the validation ones */
            if (!strcmp (k, known[i]) && strcmp (k, "writeConcern")) {
               dj_err (error, DJ_NotImplemented, "collMod with '%s' is not supported by the embedded engine", k);
               goto done;
            }
         }
      }
   }
   if (bson_has_field (&changes, "validator")) {
      if (!bson_has_field (&changes, "validationLevel")) {
         BSON_APPEND_UTF8 (&changes, "validationLevel", "strict");
      }
      if (!bson_has_field (&changes, "validationAction")) {
         BSON_APPEND_UTF8 (&changes, "validationAction", "error");
      }
   }
   if (!dj_cmd_open (e, db, cmd, known, true, "ns does not exist: %s.%s", NULL, &ctx, &c, error) ||
       !dj_coll_modify (&ctx, c, &changes, error) || (has_index && !modify_index (&ctx, c, &index_spec, reply, error))) {
      goto done;
   }
   if (!collmod_event (&ctx, c, cmd, error)) {
      goto done;
   }
   BSON_APPEND_DOUBLE (reply, "ok", 1.0);
   ok = true;
done:
   bson_destroy (&changes);
   return dj_cmd_end (&ctx, c, ok, error);
}

/* drop: https://www.mongodb.com/docs/manual/reference/command/drop/
 * Since MongoDB 7.0 dropping a missing collection succeeds. */
bool
dj_cmd_drop (dj_engine_t *e, const char *db, const bson_t *cmd, bson_t *reply, bson_error_t *error)
{
   static const char *const known[] = {NULL};
   const char *name;
   dj_ctx_t ctx = {0};
   dj_coll_t *c = NULL;
   bool ok = false;

   if (!dj_cmd_open (e, db, cmd, known, true, NULL, &name, &ctx, &c, error)) {
      goto done;
   }
   if (c) {
      if (!dj_coll_drop (&ctx, c, error) || !dj_txn_commit (&ctx, error)) {
         goto done;
      }
      BSON_APPEND_INT32 (reply, "nIndexesWas", c->nindexes);
   }
   char *ns = bson_strdup_printf ("%s.%s", db, name);
   BSON_APPEND_UTF8 (reply, "ns", ns);
   bson_free (ns);
   BSON_APPEND_DOUBLE (reply, "ok", 1.0);
   ok = true;
done:
   return dj_cmd_end (&ctx, c, ok, error);
}

bool
dj_cmd_drop_database (dj_engine_t *e, const char *db, const bson_t *cmd, bson_t *reply, bson_error_t *error)
{
   static const char *const known[] = {NULL};
   dj_ctx_t ctx = {0};
   char **names = NULL;
   int n = 0;
   bool ok = false;

   if (!dj_cmd_open_db (e, db, cmd, known, true, &ctx, &names, &n, error)) {
      goto done;
   }
   for (int i = 0; i < n; i++) {
      dj_coll_t *c = dj_coll_load (&ctx, db, names[i], error);
      bool dropped = c && dj_coll_drop (&ctx, c, error);
      dj_coll_free (c);
      if (!dropped) {
         goto done;
      }
   }
   if (n > 0 && !dj_changes_record_ns (&ctx, "dropDatabase", db, NULL, 0, NULL, error)) {
      goto done;
   }
   BSON_APPEND_UTF8 (reply, "dropped", db);
   BSON_APPEND_DOUBLE (reply, "ok", 1.0);
   ok = true;
done:
   return dj_cmd_end_db (&ctx, names, n, ok, error);
}

static bool
split_ns (const char *ns, char **db, char **coll, bson_error_t *error)
{
   const char *dot = strchr (ns, '.');
   if (!dot || dot == ns || !dot[1]) {
      return dj_err (error, DJ_InvalidNamespace, "Invalid namespace specified '%s'", ns);
   }
   *db = bson_strndup (ns, (size_t) (dot - ns));
   *coll = bson_strdup (dot + 1);
   return true;
}

/* renameCollection: {renameCollection: "db.a", to: "db.b", dropTarget: bool}, run on admin.
 * A collection's data is keyed by its id, not its name: renaming rewrites
 * only the catalog entry, so it is O(1) and atomic. */
bool
dj_cmd_rename_collection (dj_engine_t *e, const char *db, const bson_t *cmd, bson_t *reply, bson_error_t *error)
{
   static const char *const known[] = {"to", "dropTarget", "stayTemp", NULL};
   bson_iter_t it;
   char *sdb = NULL, *scoll = NULL, *tdb = NULL, *tcoll = NULL;
   bool drop_target = false, ok = false;
   dj_ctx_t ctx = {0};
   dj_coll_t *src = NULL, *dst = NULL;

   if (!dj_cmd_check_fields (cmd, known, error)) {
      return false;
   }
   if (strcmp (db, "admin")) {
      return dj_err (error, 13, "renameCollection may only be run against the admin database.");
   }
   bson_iter_init (&it, cmd);
   bson_iter_next (&it);
   if (!BSON_ITER_HOLDS_UTF8 (&it)) {
      return dj_err (error, DJ_TypeMismatch, "BSON field 'renameCollection' must be a string");
   }
   if (!split_ns (bson_iter_utf8 (&it, NULL), &sdb, &scoll, error)) {
      return false;
   }
   if (!bson_iter_init_find (&it, cmd, "to") || !BSON_ITER_HOLDS_UTF8 (&it) ||
       !split_ns (bson_iter_utf8 (&it, NULL), &tdb, &tcoll, error)) {
      if (!tdb) {
         dj_err (error, 40414, "BSON field 'renameCollection.to' is missing but a required field");
      }
      goto done;
   }
   dj_cmd_get_bool (cmd, "dropTarget", &drop_target, error);
   if (!dj_ns_valid (sdb, scoll, error) || !dj_ns_valid (tdb, tcoll, error) || !dj_txn_begin (e, true, &ctx, error)) {
      goto done;
   }
   src = dj_coll_load (&ctx, sdb, scoll, error);
   if (!src) {
      if (!error->code) {
         dj_err (error, DJ_NamespaceNotFound, "Source collection %s.%s does not exist", sdb, scoll);
      }
      goto done;
   }
   if (!strcmp (sdb, tdb) && !strcmp (scoll, tcoll)) {
      dj_err (error, DJ_IllegalOperation, "Can't rename a collection to itself");
      goto done;
   }
   dst = dj_coll_load (&ctx, tdb, tcoll, error);
   if (!dst && error->code) {
      goto done;
   }
   if (dst) {
      if (!drop_target) {
         dj_err (error, DJ_NamespaceExists, "target namespace exists");
         goto done;
      }
      if (!dj_coll_drop (&ctx, dst, error)) {
         goto done;
      }
   }
   {
      /* the change event: rename's operationDescription {to, dropTarget}
       * https://www.mongodb.com/docs/manual/reference/change-events/rename/ */
      bson_t desc = BSON_INITIALIZER, to;
      BSON_APPEND_DOCUMENT_BEGIN (&desc, "to", &to);
      BSON_APPEND_UTF8 (&to, "db", tdb);
      BSON_APPEND_UTF8 (&to, "coll", tcoll);
      bson_append_document_end (&desc, &to);
      if (dst) {
         BSON_APPEND_INT64 (&desc, "dropTarget", (int64_t) dst->id);
      }
      bool logged = dj_changes_record_ns (&ctx, "rename", sdb, scoll, src->id, &desc, error);
      bson_destroy (&desc);
      if (!logged) {
         goto done;
      }
   }
   if (!dj_coll_rename (&ctx, src, tdb, tcoll, error) || !dj_txn_commit (&ctx, error)) {
      goto done;
   }
   BSON_APPEND_DOUBLE (reply, "ok", 1.0);
   ok = true;
done:
   dj_txn_abort (&ctx);
   dj_coll_free (src);
   dj_coll_free (dst);
   DJ_FREE (sdb, scoll, tdb, tcoll);
   return ok;
}

/* listCollections: https://www.mongodb.com/docs/manual/reference/command/listCollections/ */
bool
dj_cmd_list_collections (dj_engine_t *e, const char *db, const bson_t *cmd, bson_t *reply, bson_error_t *error)
{
   static const char *const known[] = {"filter", "nameOnly", "cursor", "authorizedCollections", NULL};
   bson_t filter;
   bool has_filter, name_only = false, ok = false;
   dj_matcher_t *m = NULL;
   dj_ctx_t ctx = {0};
   char **names = NULL;
   int n = 0;
   bson_t **docs = NULL;
   size_t nd = 0;

   if (!dj_cmd_open_db (e, db, cmd, known, false, &ctx, &names, &n, error) ||
       !dj_cmd_get_doc (cmd, "filter", &filter, &has_filter, error) || !dj_cmd_get_bool (cmd, "nameOnly", &name_only, error) ||
       !(m = dj_matcher_new (&filter, error))) {
      goto done;
   }
   docs = bson_malloc (sizeof (bson_t *) * (size_t) (n ? n : 1));
   for (int i = 0; i < n; i++) {
      dj_coll_t *c = dj_coll_load (&ctx, db, names[i], error);
      if (!c) {
         goto done;
      }
      bson_t *d = bson_new (), info;
      BSON_APPEND_UTF8 (d, "name", names[i]);
      BSON_APPEND_UTF8 (d, "type", c->view_on ? "view" : "collection");
      if (!name_only && c->view_on) {
         BSON_APPEND_DOCUMENT (d, "options", c->options);
         BSON_APPEND_DOCUMENT_BEGIN (d, "info", &info);
         BSON_APPEND_BOOL (&info, "readOnly", true);
         bson_append_document_end (d, &info);
      } else if (!name_only) {
         BSON_APPEND_DOCUMENT (d, "options", c->options);
         BSON_APPEND_DOCUMENT_BEGIN (d, "info", &info);
         BSON_APPEND_BOOL (&info, "readOnly", false);
         bson_append_document_end (d, &info);
         BSON_APPEND_DOCUMENT (d, "idIndex", c->indexes[0].spec); /* (with the collection's collation) */
      }
      dj_coll_free (c);
      if (dj_matcher_match (m, d, NULL)) {
         docs[nd++] = d;
      } else {
         bson_destroy (d);
      }
   }
   dj_txn_abort (&ctx);
   char *ns = bson_strdup_printf ("%s.$cmd.listCollections", db);
   dj_reply_results (e, reply, ns, docs, nd, -1, false);
   docs = NULL;
   nd = 0;
   bson_free (ns);
   ok = true;
done:
   dj_bsons_free (docs, 0, nd);
   dj_matcher_destroy (m);
   return dj_cmd_end_db (&ctx, names, n, ok, error);
}

static int
cmp_names (const void *a, const void *b)
{
   return strcmp (*(char *const *) a, *(char *const *) b);
}

/* The stored databases (*dbs, *n: owned, in name order) with mongod's own
 * three added where absent: a replica-set member always has admin
 * (system.version), config (system.sessions) and local (the oplog), so its
 * listDatabases names them. The result stays in name order, as mongod's.
 * https://www.mongodb.com/docs/manual/reference/local-database/ */
static void
add_system_databases (char ***dbs, int *n)
{
   static const char *const own[] = {"admin", "config", "local"};
   for (size_t i = 0; i < sizeof own / sizeof *own; i++) {
      bool have = false;
      for (int j = 0; j < *n && !have; j++) {
         have = !strcmp ((*dbs)[j], own[i]);
      }
      if (!have) {
         *dbs = bson_realloc (*dbs, sizeof (char *) * (size_t) (*n + 1));
         (*dbs)[(*n)++] = bson_strdup (own[i]);
      }
   }
   qsort (*dbs, (size_t) *n, sizeof (char *), cmp_names);
}

/* listDatabases: https://www.mongodb.com/docs/manual/reference/command/listDatabases/ */
bool
dj_cmd_list_databases (dj_engine_t *e, const char *db, const bson_t *cmd, bson_t *reply, bson_error_t *error)
{
   static const char *const known[] = {"filter", "nameOnly", "authorizedDatabases", NULL};
   bson_t filter, arr;
   bool has_filter, name_only = false, ok = false;
   dj_matcher_t *m = NULL;
   dj_ctx_t ctx = {0};
   char **dbs = NULL;
   int n = 0;
   int64_t total = 0;

   if (strcmp (db, "admin")) {
      /* https://www.mongodb.com/docs/manual/reference/command/listDatabases/ */
      return dj_err (error, DJ_Unauthorized, "listDatabases may only be run against the admin database.");
   }
   if (!dj_cmd_check_fields (cmd, known, error) || !dj_cmd_get_doc (cmd, "filter", &filter, &has_filter, error) ||
       !dj_cmd_get_bool (cmd, "nameOnly", &name_only, error) || !(m = dj_matcher_new (&filter, error)) ||
       !dj_txn_begin (e, false, &ctx, error) || !dj_db_list (&ctx, &dbs, &n, error)) {
      goto done;
   }
   add_system_databases (&dbs, &n);
   BSON_APPEND_ARRAY_BEGIN (reply, "databases", &arr);
   for (int i = 0, k = 0; i < n; i++) {
      char **names = NULL;
      int nc = 0;
      int64_t size = 0;
      if (!dj_coll_list (&ctx, dbs[i], &names, &nc, error)) {
         goto done;
      }
      for (int j = 0; j < nc; j++) {
         dj_coll_t *c = dj_coll_load (&ctx, dbs[i], names[j], error);
         if (c) {
            int64_t cnt, sz;
            dj_coll_stats (&ctx, c, &cnt, &sz, NULL);
            size += sz;
            dj_coll_free (c);
         }
      }
      dj_strv_free (names, nc);
      bson_t one = BSON_INITIALIZER;
      BSON_APPEND_UTF8 (&one, "name", dbs[i]);
      if (!name_only) {
         BSON_APPEND_INT64 (&one, "sizeOnDisk", size);
         BSON_APPEND_BOOL (&one, "empty", size == 0);
      }
      if (dj_matcher_match (m, &one, NULL)) {
         char buf[16];
         const char *key;
         bson_uint32_to_string ((uint32_t) k++, &key, buf, sizeof buf);
         bson_append_document (&arr, key, -1, &one);
         total += size;
      }
      bson_destroy (&one);
   }
   bson_append_array_end (reply, &arr);
   if (!name_only) {
      BSON_APPEND_INT64 (reply, "totalSize", total);
   }
   BSON_APPEND_DOUBLE (reply, "ok", 1.0);
   ok = true;
done:
   dj_txn_abort (&ctx);
   dj_strv_free (dbs, n);
   dj_matcher_destroy (m);
   return ok;
}

/* validate: every record a whole document, every index entry pointing at a
 * record, and an index on which every document has exactly one entry
 * (not multikey, sparse or partial) holding as many entries as there are
 * records. The reply is mongod's shape.
 * https://www.mongodb.com/docs/manual/reference/command/validate/ */
bool
dj_cmd_validate (dj_engine_t *e, const char *db, const bson_t *cmd, bson_t *reply, bson_error_t *error)
{
   /* scandata: the old shell's validate(scandata) flag, which mongod still
    * takes and ignores -- pymongo's Database.validate_collection sends it */
   static const char *const known[] = {"full",       "repair",   "metadata", "checkBSONConformance",
                                       "background", "scandata", NULL};
   dj_ctx_t ctx = {0};
   dj_coll_t *c = NULL;
   dj_coll_check_t r = {0};
   bool ok = false;

   bson_iter_t bg, full;
   if (bson_iter_init_find (&bg, cmd, "background") && bson_iter_as_bool (&bg) &&
       bson_iter_init_find (&full, cmd, "full") && bson_iter_as_bool (&full)) {
      /* a background validation reads a checkpoint; a full one cannot */
      return dj_err (error, DJ_InvalidOptions,
                     "Running the validate command with both { background: true } and { full: true } is not supported.");
   }
   if (!dj_cmd_open (e, db, cmd, known, false, "Collection '%s.%s' does not exist to validate.", NULL, &ctx, &c, error) ||
       !dj_coll_check (&ctx, c, &r, error)) {
      goto done;
   }
   bson_t keys, details, errors = BSON_INITIALIZER, one; /* errors: an array's document, appended last */
   int nerr = 0;
   char kb[16];
   const char *key;
   BSON_APPEND_UTF8 (reply, "ns", c->ns);
   dj_append_count (reply, "nInvalidDocuments", r.invalid);
   dj_append_count (reply, "nNonCompliantDocuments", 0);
   dj_append_count (reply, "nrecords", r.nrecords);
   BSON_APPEND_INT32 (reply, "nIndexes", c->nindexes);
   BSON_APPEND_DOCUMENT_BEGIN (reply, "keysPerIndex", &keys);
   for (int i = 0; i < c->nindexes; i++) {
      dj_append_count (&keys, c->indexes[i].name, r.keys[i]);
   }
   bson_append_document_end (reply, &keys);
   if (r.invalid) {
      bson_uint32_to_string ((uint32_t) nerr++, &key, kb, sizeof kb);
      char *m = bson_strdup_printf ("%" PRId64 " record(s) are not valid BSON documents", r.invalid);
      BSON_APPEND_UTF8 (&errors, key, m);
      bson_free (m);
   }
   BSON_APPEND_DOCUMENT_BEGIN (reply, "indexDetails", &details);
   for (int i = 0; i < c->nindexes; i++) {
      const dj_index_t *ix = &c->indexes[i];
      bool exact = !ix->multikey && !ix->sparse && !ix->partial;
      char *why = r.dangling[i] ? bson_strdup_printf ("index %s has %" PRId64 " entries for records that do not exist",
                                                      ix->name, r.dangling[i])
                  : exact && r.keys[i] != r.nrecords
                     ? bson_strdup_printf ("index %s has %" PRId64 " entries for %" PRId64 " records", ix->name,
                                           r.keys[i], r.nrecords)
                     : NULL;
      BSON_APPEND_DOCUMENT_BEGIN (&details, ix->name, &one);
      BSON_APPEND_BOOL (&one, "valid", why == NULL);
      bson_append_document_end (&details, &one);
      if (why) {
         bson_uint32_to_string ((uint32_t) nerr++, &key, kb, sizeof kb);
         BSON_APPEND_UTF8 (&errors, key, why);
         bson_free (why);
      }
   }
   bson_append_document_end (reply, &details);
   BSON_APPEND_ARRAY (reply, "errors", &errors);
   bson_destroy (&errors);
   bson_t empty = BSON_INITIALIZER;
   BSON_APPEND_ARRAY (reply, "warnings", &empty);
   BSON_APPEND_BOOL (reply, "valid", nerr == 0);
   BSON_APPEND_BOOL (reply, "repaired", false);
   BSON_APPEND_DOUBLE (reply, "ok", 1.0);
   ok = true;
done:
   dj_coll_check_cleanup (&r);
   return dj_cmd_end (&ctx, c, ok, error);
}

/* collStats (basics): count, size, avgObjSize, nindexes, indexSizes. */
bool
dj_cmd_coll_stats (dj_engine_t *e, const char *db, const bson_t *cmd, bson_t *reply, bson_error_t *error)
{
   static const char *const known[] = {"scale", "verbose", NULL};
   dj_ctx_t ctx = {0};
   dj_coll_t *c = NULL;
   bool ok = false;

   if (!dj_cmd_open (e, db, cmd, known, false, "Collection [%s.%s] not found.", NULL, &ctx, &c, error)) {
      goto done;
   }
   int64_t count;
   BSON_APPEND_UTF8 (reply, "ns", c->ns);
   dj_agg_storage_stats (&ctx, c, 1, reply, &count);
   if (c->capped) {
      BSON_APPEND_INT64 (reply, "maxSize", c->capped_size);
      if (c->capped_max > 0) {
         BSON_APPEND_INT64 (reply, "max", c->capped_max);
      }
   }
   BSON_APPEND_DOUBLE (reply, "ok", 1.0);
   ok = true;
done:
   return dj_cmd_end (&ctx, c, ok, error);
}

bool
dj_cmd_db_stats (dj_engine_t *e, const char *db, const bson_t *cmd, bson_t *reply, bson_error_t *error)
{
   static const char *const known[] = {"scale", "freeStorage", NULL};
   dj_ctx_t ctx = {0};
   char **names = NULL;
   int n = 0;
   int64_t objects = 0, data = 0, nidx = 0, isize = 0;
   bool ok = false;

   if (!dj_cmd_open_db (e, db, cmd, known, false, &ctx, &names, &n, error)) {
      goto done;
   }
   for (int i = 0; i < n; i++) {
      dj_coll_t *c = dj_coll_load (&ctx, db, names[i], error);
      if (!c) {
         goto done;
      }
      int64_t count, size;
      int64_t *isz = bson_malloc0 (sizeof (int64_t) * (size_t) c->nindexes);
      dj_coll_stats (&ctx, c, &count, &size, isz);
      objects += count;
      data += size;
      nidx += c->nindexes;
      for (int k = 0; k < c->nindexes; k++) {
         isize += isz[k];
      }
      bson_free (isz);
      dj_coll_free (c);
   }
   BSON_APPEND_UTF8 (reply, "db", db);
   BSON_APPEND_INT64 (reply, "collections", n);
   BSON_APPEND_INT64 (reply, "views", 0);
   BSON_APPEND_INT64 (reply, "objects", objects);
   BSON_APPEND_DOUBLE (reply, "avgObjSize", objects ? (double) data / (double) objects : 0.0);
   BSON_APPEND_INT64 (reply, "dataSize", data);
   BSON_APPEND_INT64 (reply, "storageSize", data);
   BSON_APPEND_INT64 (reply, "indexes", nidx);
   BSON_APPEND_INT64 (reply, "indexSize", isize);
   BSON_APPEND_DOUBLE (reply, "ok", 1.0);
   ok = true;
done:
   return dj_cmd_end_db (&ctx, names, n, ok, error);
}

/* fsync: every committed write flushed to disk (a server started with
 * --nosync defers that to the OS), {numFiles: 1} as mongod answers. Only
 * on the admin database. lock: true -- blocking writes until fsyncUnlock --
 * is not supported: refused rather than answered as if writes were held.
 * https://www.mongodb.com/docs/manual/reference/command/fsync/ */
bool
dj_cmd_fsync (dj_engine_t *e, const char *db, const bson_t *cmd, bson_t *reply, bson_error_t *error)
{
   static const char *const known[] = {"lock", "fsyncLockAcquisitionTimeoutMillis", "async", NULL};
   bson_iter_t it;
   if (!dj_cmd_check_fields (cmd, known, error)) {
      return false;
   }
   if (strcmp (db, "admin")) {
      return dj_err (error, DJ_Unauthorized, "fsync may only be run against the admin database.");
   }
   if (bson_iter_init_find (&it, cmd, "lock") && bson_iter_as_bool (&it)) {
      return dj_err (error, DJ_NotImplemented, "fsync with lock: true (fsyncLock) is not supported by the embedded engine");
   }
   if (!dj_storage_flush (e, error)) {
      return false;
   }
   BSON_APPEND_INT32 (reply, "numFiles", 1);
   BSON_APPEND_DOUBLE (reply, "ok", 1.0);
   return true;
}
