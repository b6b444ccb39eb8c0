/*
 * engine.c -- opening data directories and dispatching commands.
 */
#include "dj_bson_depth.h"
#include "dj_commands.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

static void
free_projection (void *p)
{
   dj_projection_destroy (p);
}

dj_engine_t *
dj_engine_open (const char *path, const dj_engine_options_t *opts, bson_error_t *error)
{
   dj_engine_t *e = bson_malloc0 (sizeof *e);
   if (!dj_storage_open (e, path, opts, error)) {
      bson_free (e);
      return NULL;
   }
   pthread_mutex_init (&e->cursors_mu, NULL);
   e->proj_cache = dj_keep_new (16, free_projection); /* find projections (cmd_read.c) */
   e->join_keep = dj_agg_join_keep_new (); /* hash joins' foreign sides (aggregation/lookup.c) */
   if (!dj_ttl_attach (e, opts, error)) {
      dj_engine_close (e);
      return NULL;
   }
   return e;
}

void
dj_engine_close (dj_engine_t *e)
{
   if (!e) {
      return;
   }
   dj_ttl_detach (e);
   dj_cursor_close_all (e);
   dj_keep_destroy (e->proj_cache);
   dj_keep_destroy (e->join_keep);
   pthread_mutex_destroy (&e->cursors_mu);
   dj_storage_close (e);
   bson_free (e);
}

const char *
dj_engine_path (const dj_engine_t *e)
{
   return e->path;
}

/* ---- shared command helpers ------------------------------------------------ */

static const char *const generic_fields[] = {
   "$db", "lsid", "txnNumber", "autocommit", "startTransaction", "writeConcern", "readConcern", "$clusterTime",
   "$readPreference", "comment", "maxTimeMS", "apiVersion", "apiStrict", "apiDeprecationErrors", "$client",
   "$audit", "mayBypassWriteBlocking", "$queryOptions", NULL};

bool
dj_cmd_check_fields (const bson_t *cmd, const char *const *known, bson_error_t *error)
{
   uint64_t present;
   return dj_cmd_check_fields_present (cmd, known, &present, error);
}

bool
dj_cmd_check_fields_present (const bson_t *cmd, const char *const *known, uint64_t *present, bson_error_t *error)
{
   bson_iter_t it;
   const char *name = NULL;

   *present = 0;
   bson_iter_init (&it, cmd);
   while (bson_iter_next (&it)) {
      const char *k = bson_iter_key (&it);
      bool ok = false;
      if (!name) {
         name = k;
         continue;
      }
      for (int i = 0; known[i] && !ok; i++) {
         ok = !strcmp (known[i], k);
         if (ok && i < 64) {
            *present |= (uint64_t) 1 << i;
         }
      }
      for (int i = 0; generic_fields[i] && !ok; i++) {
         ok = !strcmp (generic_fields[i], k);
      }
      if (!ok) {
         return dj_err (error, DJ_UnknownField, "BSON field '%s.%s' is an unknown field.", name, k);
      }
   }
   return true;
}

bool
dj_cmd_collection (const bson_t *cmd, const char **name, bson_error_t *error)
{
   bson_iter_t it;
   bson_iter_init (&it, cmd);
   bson_iter_next (&it);
   if (!BSON_ITER_HOLDS_UTF8 (&it)) {
      return dj_err (error, DJ_InvalidNamespace, "collection name has invalid type %s", dj_type_name (bson_iter_type (&it)));
   }
   uint32_t len;
   *name = bson_iter_utf8 (&it, &len);
   if (strlen (*name) != len) { /* "a\0b" would otherwise be taken as "a" */
      return dj_err (error, DJ_InvalidNamespace, "namespaces cannot have embedded null characters");
   }
   return true;
}

bool
dj_cmd_target (const bson_t *cmd, const char *db, const char *const *known, const char **name, bson_error_t *error)
{
   return dj_cmd_check_fields (cmd, known, error) && dj_cmd_collection (cmd, name, error) && dj_ns_valid (db, *name, error);
}

dj_coll_t *
dj_cmd_load_existing (dj_ctx_t *ctx, const char *db, const char *name, const char *missing, bson_error_t *error)
{
   dj_coll_t *c = dj_coll_load (ctx, db, name, error);
   if (!c && !error->code) {
      dj_err (error, DJ_NamespaceNotFound, missing, db, name);
   }
   return c;
}

bool
dj_cmd_open (dj_engine_t *e, const char *db, const bson_t *cmd, const char *const *known, bool write, const char *missing,
             const char **pname, dj_ctx_t *ctx, dj_coll_t **c, bson_error_t *error)
{
   const char *name;
   if (pname) {
      *pname = NULL;
   }
   if (!dj_cmd_target (cmd, db, known, &name, error) || !dj_txn_begin (e, write, ctx, error)) {
      return false;
   }
   if (pname) {
      *pname = name;
   }
   *c = missing ? dj_cmd_load_existing (ctx, db, name, missing, error) : dj_coll_load (ctx, db, name, error);
   return *c || !error->code;
}

bool
dj_cmd_end (dj_ctx_t *ctx, dj_coll_t *c, bool ok, bson_error_t *error)
{
   if (ok && ctx->txn && ctx->write) {
      ok = dj_txn_commit (ctx, error); /* a failure replaces the reply with the error */
   }
   dj_txn_abort (ctx);
   dj_coll_free (c);
   return ok;
}

bool
dj_cmd_open_db (dj_engine_t *e, const char *db, const bson_t *cmd, const char *const *known, bool write, dj_ctx_t *ctx,
                char ***names, int *n, bson_error_t *error)
{
   return dj_cmd_check_fields (cmd, known, error) && dj_txn_begin (e, write, ctx, error) &&
          dj_coll_list (ctx, db, names, n, error);
}

bool
dj_cmd_end_db (dj_ctx_t *ctx, char **names, int n, bool ok, bson_error_t *error)
{
   dj_strv_free (names, n);
   return dj_cmd_end (ctx, NULL, ok, error);
}

/* cmd's field of `type` (a document or an array) into *out, borrowed from
 * cmd; absent: *out empty. False, with *it at the field, when it holds
 * another type. */
static bool
get_container (const bson_t *cmd, const char *field, bson_type_t type, bson_t *out, bool *present, bson_iter_t *it)
{
   *present = false;
   bson_init (out);
   if (!bson_iter_init_find (it, cmd, field)) {
      return true;
   }
   if (bson_iter_type (it) != type) {
      return false;
   }
   const bson_value_t *v = bson_iter_value (it);
   bson_destroy (out);
   bson_init_static (out, v->value.v_doc.data, v->value.v_doc.data_len);
   *present = true;
   return true;
}

bool
dj_cmd_get_doc (const bson_t *cmd, const char *field, bson_t *out, bool *present, bson_error_t *error)
{
   bson_iter_t it, n;

   if (get_container (cmd, field, BSON_TYPE_DOCUMENT, out, present, &it)) {
      return true;
   }
   bson_iter_init (&n, cmd);
   bson_iter_next (&n);
   return dj_err (error, DJ_TypeMismatch, "BSON field '%s.%s' is the wrong type '%s', expected type 'object'",
                  bson_iter_key (&n), field, dj_type_name (bson_iter_type (&it)));
}

bool
dj_cmd_get_array (const bson_t *cmd, const char *field, const char *where, bson_t *out, bool *present, bson_error_t *error)
{
   bson_iter_t it;

   if (get_container (cmd, field, BSON_TYPE_ARRAY, out, present, &it)) {
      return true;
   }
   return dj_err (error, DJ_TypeMismatch, "BSON field '%s' is the wrong type, expected type 'array'", where);
}

bool
dj_cmd_get_int64 (const bson_t *cmd, const char *field, int64_t *out, bool *present, bson_error_t *error)
{
   bson_iter_t it;
   *present = false;
   if (!bson_iter_init_find (&it, cmd, field)) {
      return true;
   }
   const bson_value_t *v = bson_iter_value (&it);
   if (!dj_value_is_number (v)) {
      bson_iter_t n;
      bson_iter_init (&n, cmd);
      bson_iter_next (&n);
      return dj_err (error, DJ_TypeMismatch, "BSON field '%s.%s' is the wrong type '%s', expected types '[long, int, decimal, double]'",
                     bson_iter_key (&n), field, dj_type_name (v->value_type));
   }
   double d = dj_value_as_double (v);
   if (d != d || d > 9.2e18 || d < -9.2e18) {
      return dj_err (error, DJ_BadValue, "BSON field '%s' value is out of range", field);
   }
   *out = (int64_t) d;
   *present = true;
   return true;
}

bool
dj_cmd_get_bool (const bson_t *cmd, const char *field, bool *out, bson_error_t *error)
{
   bson_iter_t it;
   (void) error;
   if (bson_iter_init_find (&it, cmd, field)) {
      *out = bson_iter_as_bool (&it);
   }
   return true;
}

static bool hint_visible (const dj_coll_t *c, int index, bson_error_t *error);

bool
dj_cmd_hint (const bson_t *cmd, const dj_coll_t *c, int *index, bson_error_t *error)
{
   bson_iter_t it;
   *index = -1;
   if (!bson_iter_init_find (&it, cmd, "hint")) {
      return true;
   }
   if (BSON_ITER_HOLDS_UTF8 (&it)) {
      for (int i = 0; c && i < c->nindexes; i++) {
         if (!strcmp (c->indexes[i].name, bson_iter_utf8 (&it, NULL))) {
            *index = i;
            return hint_visible (c, i, error);
         }
      }
   } else if (BSON_ITER_HOLDS_DOCUMENT (&it)) {
      const uint8_t *d;
      uint32_t l;
      bson_t k;
      bson_iter_t first;
      bson_iter_document (&it, &l, &d);
      bson_init_static (&k, d, l);
      if (bson_iter_init_find (&first, &k, "$natural") && bson_count_keys (&k) == 1) {
         *index = DJ_HINT_NATURAL;
         return true;
      }
      if (bson_empty (&k)) {
         return true;
      }
      for (int i = 0; c && i < c->nindexes; i++) {
         if (bson_equal (c->indexes[i].key, &k)) {
            *index = i;
            return hint_visible (c, i, error);
         }
      }
   } else {
      return dj_err (error, DJ_FailedToParse, "hint must be a string or an object");
   }
   if (!c) {
      return true; /* a missing collection answers nothing, whatever the hint */
   }
   return dj_err (error, DJ_BadValue, "hint provided does not correspond to an existing index");
}

/* A hint naming a hidden index is one naming no index, as mongod's.
 * https://www.mongodb.com/docs/manual/core/index-hidden/ */
static bool
hint_visible (const dj_coll_t *c, int index, bson_error_t *error)
{
   if (c && index >= 0 && c->indexes[index].hidden) {
      return dj_err (error, DJ_BadValue, "hint provided does not correspond to an existing index");
   }
   return true;
}

/* A command's (or statement's) collation; none, or {}, is the
 * collection's default (https://www.mongodb.com/docs/manual/reference/collation/
 * "Operations ... use the collection's default collation unless they
 * explicitly specify a different collation"); {locale: "simple"} is binary. */
bool
dj_cmd_collation (const bson_t *cmd, bson_error_t *error)
{
   bson_iter_t it;
   const dj_collation_t *c = dj_collation_default ();
   if (bson_iter_init_find (&it, cmd, "collation") &&
       !(BSON_ITER_HOLDS_DOCUMENT (&it) && bson_iter_value (&it)->value.v_doc.data_len <= 5) &&
       !dj_collation_parse (bson_iter_value (&it), &c, error)) {
      return false;
   }
   dj_collation_set_current (c);
   return true;
}

static bool
cmd_ping (dj_engine_t *e, const char *db, const bson_t *cmd, bson_t *reply, bson_error_t *error)
{
   (void) e;
   (void) db;
   (void) cmd;
   (void) error;
   BSON_APPEND_DOUBLE (reply, "ok", 1.0);
   return true;
}

/* Checks every embedded document and array the way bson_init_static() will
 * later, down to MongoDB's nesting limit. bson_validate() alone accepts an
 * embedded document whose last byte is not NUL (seen with libbson 1.23), and
 * commands rely on every nested document being readable. */
static bool
deep_valid (const uint8_t *data, uint32_t len, int depth, bool is_array)
{
   bson_t b;
   bson_iter_t it;
   uint32_t pos = 0;

   if (depth > DJ_BSON_MAX_DEPTH || !bson_init_static (&b, data, len) || !bson_iter_init (&it, &b)) {
      return false; /* https://www.mongodb.com/docs/manual/reference/limits/#mongodb-limit-Nested-Depth-for-BSON-Documents */
   }
   while (bson_iter_next (&it)) {
      /* keys and string values must be UTF-8; libbson 1.23's bson_validate
       * does not check string values itself */
      if (!bson_utf8_validate (bson_iter_key (&it), bson_iter_key_len (&it), false)) {
         return false;
      }
      if (BSON_ITER_HOLDS_UTF8 (&it) || BSON_ITER_HOLDS_SYMBOL (&it) || BSON_ITER_HOLDS_CODE (&it)) {
         uint32_t sl;
         const char *sv = BSON_ITER_HOLDS_UTF8 (&it) ? bson_iter_utf8 (&it, &sl)
                          : BSON_ITER_HOLDS_SYMBOL (&it) ? bson_iter_symbol (&it, &sl) : bson_iter_code (&it, &sl);
         if (!bson_utf8_validate (sv, sl, true)) {
            return false;
         }
      }
      /* array keys must be "0", "1", ...: libbson refuses to copy other
       * arrays, which would silently drop fields further on */
      if (is_array) {
         char want[16];
         snprintf (want, sizeof want, "%u", pos++);
         if (strcmp (bson_iter_key (&it), want)) {
            return false;
         }
      }
      const uint8_t *d = NULL;
      uint32_t l = 0;
      if (BSON_ITER_HOLDS_DOCUMENT (&it)) {
         bson_iter_document (&it, &l, &d);
      } else if (BSON_ITER_HOLDS_ARRAY (&it)) {
         bson_iter_array (&it, &l, &d);
      } else if (BSON_ITER_HOLDS_CODEWSCOPE (&it)) {
         uint32_t cl;
         bson_iter_codewscope (&it, &cl, &l, &d);
      } else {
         continue;
      }
      if (!d || !deep_valid (d, l, depth + 1, BSON_ITER_HOLDS_ARRAY (&it))) {
         return false;
      }
   }
   return !it.err_off;
}

/* The command table. Names are matched exactly, with MongoDB's historical
 * lower-case aliases. */
static const struct {
   const char *name;
   dj_command_fn fn;
} commands[] = {
   {"insert", dj_cmd_insert},
   {"update", dj_cmd_update},
   {"delete", dj_cmd_delete},
   {"bulkWrite", dj_cmd_bulk_write},
   {"findAndModify", dj_cmd_find_and_modify},
   {"findandmodify", dj_cmd_find_and_modify},
   {"find", dj_cmd_find},
   {"getMore", dj_cmd_get_more},
   {"killCursors", dj_cmd_kill_cursors},
   {"count", dj_cmd_count},
   {"distinct", dj_cmd_distinct},
   {"create", dj_cmd_create},
   {"collMod", dj_cmd_coll_mod},
   {"drop", dj_cmd_drop},
   {"dropDatabase", dj_cmd_drop_database},
   {"renameCollection", dj_cmd_rename_collection},
   {"listCollections", dj_cmd_list_collections},
   {"listDatabases", dj_cmd_list_databases},
   {"collStats", dj_cmd_coll_stats},
   {"validate", dj_cmd_validate},
   {"fsync", dj_cmd_fsync},
   {"profile", dj_cmd_profile},
   {"dbStats", dj_cmd_db_stats},
   {"createIndexes", dj_cmd_create_indexes},
   {"dropIndexes", dj_cmd_drop_indexes},
   {"deleteIndexes", dj_cmd_drop_indexes},
   {"listIndexes", dj_cmd_list_indexes},
   {"explain", dj_cmd_explain},
   {"aggregate", dj_cmd_aggregate},
   {"setParameter", dj_cmd_set_parameter},
   {"ping", cmd_ping},
};

/* readConcern {level: "snapshot"} outside a transaction: only reads that
 * can run at one point in time take it (find, aggregate, distinct, and the
 * getMores of their cursors); mongod refuses it on everything else, writes
 * included.
 * https://www.mongodb.com/docs/manual/reference/read-concern-snapshot/ */
static bool
snapshot_allowed (const char *name, const bson_iter_t *rc, bson_error_t *error)
{
   static const char *const readers[] = {"find", "aggregate", "distinct", "getMore", NULL};
   bson_iter_t level;
   if (!rc || !BSON_ITER_HOLDS_DOCUMENT (rc) || !bson_iter_recurse (rc, &level) || !bson_iter_find (&level, "level") ||
       !BSON_ITER_HOLDS_UTF8 (&level) || strcmp (bson_iter_utf8 (&level, NULL), "snapshot")) {
      return true;
   }
   for (int i = 0; readers[i]; i++) {
      if (!strcmp (readers[i], name)) {
         return true;
      }
   }
   return dj_err (error, DJ_InvalidOptions, "Command %s does not support { readConcern: { level: \"snapshot\" } }", name);
}

/* readConcern.level names one of MongoDB's five levels; any other string
 * (or a level that is not a string) is refused before the command runs,
 * as mongod parses read concerns: clients rely on the server for it
 * (pymongo's ReadConcern("unknown") is sent as given).
 * https://www.mongodb.com/docs/manual/reference/read-concern/#read-concern-levels */
static bool
read_concern_level_ok (const bson_iter_t *rc, bson_error_t *error)
{
   static const char *const levels[] = {"local", "majority", "linearizable", "available", "snapshot"};
   bson_iter_t level;
   if (!rc || !BSON_ITER_HOLDS_DOCUMENT (rc) || !bson_iter_recurse (rc, &level) || !bson_iter_find (&level, "level")) {
      return true;
   }
   if (BSON_ITER_HOLDS_UTF8 (&level)) {
      for (size_t k = 0; k < sizeof levels / sizeof levels[0]; k++) {
         if (!strcmp (levels[k], bson_iter_utf8 (&level, NULL))) {
            return true;
         }
      }
   }
   return dj_err (error, DJ_FailedToParse,
                  "readConcern.level must be either 'local', 'majority', 'linearizable', 'available', or 'snapshot'");
}

static bool run_command (dj_engine_t *e, const char *db, const bson_t *cmd, bool in_txn, bool trusted, bson_t *reply);

static bool run_in (dj_engine_t *e, dj_engine_txn_t *t, const char *db, const bson_t *cmd, bool trusted,
                    bson_t *reply);

bool
dj_engine_run_command (dj_engine_t *e, const char *db, const bson_t *cmd, bson_t *reply)
{
   return run_in (e, NULL, db, cmd, false, reply);
}

static bool
run_command (dj_engine_t *e, const char *db, const bson_t *cmd, bool in_txn, bool trusted, bson_t *reply)
{
   bson_error_t error = {0};
   bson_iter_t it;
   bool ok = false;

   bson_init (reply);
   /* strings and field names must be UTF-8 (embedded NULs are allowed in
    * string values, as BSON allows): bad bytes would otherwise travel into
    * replies and stored documents */
   if (!cmd) {
      dj_err (&error, 22, "command document is not valid BSON");
      goto fail;
   }
   if (trusted) {
      /* built by libbson's append API from UTF-8 text (dj_engine_run_trusted_in):
       * framed, nested and encoded correctly by construction */
   } else if (!dj_bson_depth_ok (bson_get_data (cmd), cmd->len, DJ_BSON_MAX_DEPTH)) {
      /* before anything that recurses: bson_validate() would overflow the stack on deep nesting */
      dj_err (&error, 22, "command document is not valid BSON or nests deeper than %d levels", DJ_BSON_MAX_DEPTH);
      goto fail;
   }
   if (!trusted && (!bson_validate (cmd, BSON_VALIDATE_UTF8 | BSON_VALIDATE_UTF8_ALLOW_NULL, NULL) ||
                    !deep_valid (bson_get_data (cmd), cmd->len, 0, false))) {
      dj_err (&error, 22, "command document is not valid BSON");
      goto fail;
   }
   if (!bson_iter_init (&it, cmd) || !bson_iter_next (&it)) {
      dj_err (&error, DJ_FailedToParse, "no such command: ''");
      error.code = DJ_CommandNotFound;
      goto fail;
   }
   if (!db || !dj_ns_valid (db, NULL, &error)) {
      if (!db) {
         dj_err (&error, DJ_InvalidNamespace, "Invalid database name: ''");
      }
      goto fail;
   }
   const char *name = bson_iter_key (&it);
   bool handled;
   /* the command's readConcern (rc: NULL without one), looked up once for both checks */
   bson_iter_t rc_it;
   const bson_iter_t *rc = bson_iter_init_find (&rc_it, cmd, "readConcern") ? &rc_it : NULL;
   if (!read_concern_level_ok (rc, &error) || (!in_txn && !snapshot_allowed (name, rc, &error))) {
      goto fail;
   }
   /* the collection's catalog entry, read once: a view? its default collation? */
   dj_cmd_ns_t ns;
   if (!dj_cmd_ns_read (e, db, name, cmd, &ns, &error) ||
       !dj_view_dispatch (e, db, name, cmd, ns.view, reply, &handled, &error)) {
      goto fail;
   }
   if (handled) {
      return true;
   }
   for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
      if (!strcmp (commands[i].name, name)) {
         dj_collation_set_default (ns.collation);
         ok = commands[i].fn (e, db, cmd, reply, &error);
         dj_collation_set_current (NULL); /* a command's collation ends with it */
         dj_collation_set_default (NULL);
         if (!ok) {
            goto fail;
         }
         return true;
      }
   }
   dj_err (&error, DJ_CommandNotFound, "no such command: '%s'", name);
fail:
   /* a failed command's partial reply is replaced by the error, except the
    * fields a command left there that belong to the error itself: a
    * DuplicateKey's keyPattern/keyValue, a DocumentValidationFailure's
    * errInfo (https://www.mongodb.com/docs/manual/core/index-unique/,
    * https://www.mongodb.com/docs/manual/core/schema-validation/) */
   {
      static const char *const kept[] = {"keyPattern", "keyValue", "errInfo", NULL};
      bson_t extra = BSON_INITIALIZER;
      for (int i = 0; kept[i]; i++) {
         if (bson_iter_init_find (&it, reply, kept[i])) {
            bson_append_value (&extra, kept[i], -1, bson_iter_value (&it));
         }
      }
      bson_reinit (reply);
      dj_error_append_reply (&error, reply);
      bson_concat (reply, &extra);
      bson_destroy (&extra);
   }
   return false;
}

bool
dj_cmd_run_nested (dj_engine_t *e, const char *db, const bson_t *cmd, bson_t *reply)
{
   return run_command (e, db, cmd, true, false, reply);
}

bool
dj_engine_run_command_as (dj_engine_t *e, dj_engine_txn_t *t, const char *user, const char *db, const bson_t *cmd,
                          bson_t *reply)
{
   const char *saved = dj_cursor_user_enter (user);
   bool ok = dj_engine_run_command_in (e, t, db, cmd, reply);
   dj_cursor_user_leave (saved);
   return ok;
}

static bool
run_in (dj_engine_t *e, dj_engine_txn_t *t, const char *db, const bson_t *cmd, bool trusted, bson_t *reply)
{
   bson_error_t error = {0};
   dj_engine_txn_t *saved;

   if (!t) {
      int64_t start = dj_now_ms ();
      bool ok = run_command (e, db, cmd, false, trusted, reply);
      bson_iter_t it;
      if (db && cmd && bson_iter_init (&it, cmd) && bson_iter_next (&it)) {
         /* (inside a caller's transaction nothing is profiled: the entry could
          * not be written beside it) */
         dj_profile_record (e, db, bson_iter_key (&it), cmd, reply, start, dj_now_ms () - start);
      }
      return ok;
   }
   if (!dj_txn_enter (e, t, &saved, &error)) {
      bson_init (reply);
      dj_error_append_reply (&error, reply);
      return false;
   }
   bool ok = run_command (e, db, cmd, true, trusted, reply);
   dj_txn_leave (saved);
   return ok;
}

bool
dj_engine_run_command_in (dj_engine_t *e, dj_engine_txn_t *t, const char *db, const bson_t *cmd, bson_t *reply)
{
   return run_in (e, t, db, cmd, false, reply);
}

bool
dj_engine_run_trusted_in (dj_engine_t *e, dj_engine_txn_t *t, const char *db, const bson_t *cmd, bson_t *reply)
{
   return run_in (e, t, db, cmd, true, reply);
}

void
dj_engine_cluster_time (dj_engine_t *engine, bool advance, uint32_t *t, uint32_t *i)
{
   if (advance) {
      dj_clock_advance (engine, t, i);
   } else {
      dj_clock_now (engine, t, i);
   }
}
