/*
 * engine.c -- opening data directories and dispatching commands.
 */
#include "engine-private.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

/* LMDB forbids opening one environment twice in a process (closing either
 * would drop the other's locks), so handles on the same directory share one
 * MDB_env. The list is the only process-global state; g_envs_mu guards it. */
struct dj_env {
   char *realpath; /* owned */
   MDB_env *env;
   MDB_dbi dbi_catalog, dbi_data;
   int refs;
   struct dj_env *next;
   /* Which thread holds LMDB's write lock through this env (writer_mu guards
    * both). LMDB's lock is not recursive: a thread that asked for it twice
    * would wait for itself forever, so it is told WriteConflict instead. */
   pthread_mutex_t writer_mu;
   bool writer_held;
   pthread_t writer;
   /* Whether a snapshot transaction has become a writer (writer_mu guards
    * it): a second one asking is told WriteConflict instead of waiting for
    * the first to end (dj_engine_txn_begin_snapshot). */
   bool snapshot_writer;
};
static pthread_mutex_t g_envs_mu = PTHREAD_MUTEX_INITIALIZER;
static struct dj_env *g_envs;

/* mkdir -p: the data directory and any missing parents (0700: the data is
 * the user's). false with errno set. */
static bool
mkdir_parents (const char *path)
{
   char buf[PATH_MAX];
   size_t n = strlen (path);
   if (n == 0 || n >= sizeof buf) {
      errno = n ? ENAMETOOLONG : ENOENT;
      return false;
   }
   memcpy (buf, path, n + 1);
   for (char *p = buf + 1; *p; p++) {
      if (*p == '/') {
         *p = 0;
         if (mkdir (buf, 0700) != 0 && errno != EEXIST) {
            return false;
         }
         *p = '/';
      }
   }
   return mkdir (buf, 0700) == 0 || errno == EEXIST;
}

static struct dj_env *
env_acquire (const char *path, const dj_engine_options_t *opts, bson_error_t *error)
{
   char real[PATH_MAX];
   struct dj_env *e;
   int rc;

   if (!mkdir_parents (path)) {
      dj_error_set (error, DJ_DOMAIN_STORAGE, (uint32_t) errno, "cannot create data directory '%s': %s", path, strerror (errno));
      return NULL;
   }
   if (!realpath (path, real)) {
      dj_error_set (error, DJ_DOMAIN_STORAGE, (uint32_t) errno, "cannot resolve data directory '%s': %s", path, strerror (errno));
      return NULL;
   }
   pthread_mutex_lock (&g_envs_mu);
   for (e = g_envs; e; e = e->next) {
      if (!strcmp (e->realpath, real)) {
         e->refs++;
         pthread_mutex_unlock (&g_envs_mu);
         return e;
      }
   }
   e = bson_malloc0 (sizeof *e);
   e->realpath = bson_strdup (real);
   e->refs = 1;
   pthread_mutex_init (&e->writer_mu, NULL);
   unsigned flags = MDB_NOTLS; /* read transactions are not tied to threads */
   if (opts && (opts->flags & DJ_ENGINE_NOSYNC)) {
      flags |= MDB_NOSYNC;
   }
   size_t map_size = opts && opts->map_size ? opts->map_size : ((size_t) 256 << 30);
   MDB_txn *txn = NULL;
   if ((rc = mdb_env_create (&e->env)) || (rc = mdb_env_set_maxdbs (e->env, 4)) ||
       (rc = mdb_env_set_mapsize (e->env, map_size)) || (rc = mdb_env_set_maxreaders (e->env, 512)) ||
       (rc = mdb_env_open (e->env, real, flags, 0600))) {
      dj_error_set (error, DJ_DOMAIN_STORAGE, (uint32_t) rc, "cannot open data directory '%s': %s", real, mdb_strerror (rc));
      goto fail;
   }
   int dead = 0;
   mdb_reader_check (e->env, &dead); /* slots left by killed processes */
   if ((rc = mdb_txn_begin (e->env, NULL, 0, &txn)) ||
       (rc = mdb_dbi_open (txn, "catalog", MDB_CREATE, &e->dbi_catalog)) ||
       (rc = mdb_dbi_open (txn, "data", MDB_CREATE, &e->dbi_data)) || (rc = mdb_txn_commit (txn))) {
      if (txn && rc) {
         mdb_txn_abort (txn);
      }
      dj_lmdb_error (rc, error, "cannot initialise data directory");
      goto fail;
   }
   e->next = g_envs;
   g_envs = e;
   pthread_mutex_unlock (&g_envs_mu);
   return e;
fail:
   if (e->env) {
      mdb_env_close (e->env);
   }
   pthread_mutex_destroy (&e->writer_mu);
   bson_free (e->realpath);
   bson_free (e);
   pthread_mutex_unlock (&g_envs_mu);
   return NULL;
}

static void
env_release (struct dj_env *e)
{
   pthread_mutex_lock (&g_envs_mu);
   if (--e->refs == 0) {
      for (struct dj_env **pp = &g_envs; *pp; pp = &(*pp)->next) {
         if (*pp == e) {
            *pp = e->next;
            break;
         }
      }
      mdb_env_close (e->env);
      pthread_mutex_destroy (&e->writer_mu);
      bson_free (e->realpath);
      bson_free (e);
   }
   pthread_mutex_unlock (&g_envs_mu);
}

dj_engine_t *
dj_engine_open (const char *path, const dj_engine_options_t *opts, bson_error_t *error)
{
   struct dj_env *shared = env_acquire (path, opts, error);
   if (!shared) {
      return NULL;
   }
   dj_engine_t *e = bson_malloc0 (sizeof *e);
   e->shared = shared;
   e->env = shared->env;
   e->dbi_catalog = shared->dbi_catalog;
   e->dbi_data = shared->dbi_data;
   e->path = bson_strdup (path);
   pthread_mutex_init (&e->cursors_mu, NULL);
   return e;
}

void
dj_engine_close (dj_engine_t *e)
{
   if (!e) {
      return;
   }
   dj_cursor_close_all (e);
   pthread_mutex_destroy (&e->cursors_mu);
   env_release (e->shared);
   bson_free (e->path);
   bson_free (e);
}

bool
dj_env_writer_check (dj_engine_t *e, bson_error_t *error)
{
   struct dj_env *env = e->shared;
   pthread_mutex_lock (&env->writer_mu);
   bool mine = env->writer_held && pthread_equal (env->writer, pthread_self ());
   pthread_mutex_unlock (&env->writer_mu);
   if (mine) {
      return dj_err (error, DJ_WriteConflict,
                     "this thread already holds a write transaction on '%s' (through another connection); "
                     "commit or abort it first",
                     env->realpath);
   }
   return true;
}

void
dj_env_writer_set (dj_engine_t *e, bool held)
{
   struct dj_env *env = e->shared;
   pthread_mutex_lock (&env->writer_mu);
   env->writer_held = held;
   env->writer = pthread_self ();
   pthread_mutex_unlock (&env->writer_mu);
}

bool
dj_env_snapshot_writer_claim (dj_engine_t *e)
{
   struct dj_env *env = e->shared;
   pthread_mutex_lock (&env->writer_mu);
   bool free_ = !env->snapshot_writer;
   env->snapshot_writer = true;
   pthread_mutex_unlock (&env->writer_mu);
   return free_;
}

void
dj_env_snapshot_writer_release (dj_engine_t *e)
{
   struct dj_env *env = e->shared;
   pthread_mutex_lock (&env->writer_mu);
   env->snapshot_writer = false;
   pthread_mutex_unlock (&env->writer_mu);
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
   bson_iter_t it;
   const char *name = NULL;

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
   *name = bson_iter_utf8 (&it, NULL);
   return true;
}

bool
dj_cmd_get_doc (const bson_t *cmd, const char *field, bson_t *out, bool *present, bson_error_t *error)
{
   bson_iter_t it;
   const uint8_t *d;
   uint32_t l;

   *present = false;
   bson_init (out);
   if (!bson_iter_init_find (&it, cmd, field)) {
      return true;
   }
   if (!BSON_ITER_HOLDS_DOCUMENT (&it)) {
      bson_iter_t n;
      bson_iter_init (&n, cmd);
      bson_iter_next (&n);
      return dj_err (error, DJ_TypeMismatch, "BSON field '%s.%s' is the wrong type '%s', expected type 'object'",
                     bson_iter_key (&n), field, dj_type_name (bson_iter_type (&it)));
   }
   bson_iter_document (&it, &l, &d);
   bson_destroy (out);
   bson_init_static (out, d, l);
   *present = true;
   return true;
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

bool
dj_cmd_collation (const bson_t *cmd, bson_error_t *error)
{
   bson_iter_t it;
   const dj_collation_t *c = NULL;
   if (bson_iter_init_find (&it, cmd, "collation") && !dj_collation_parse (bson_iter_value (&it), &c, error)) {
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

   if (depth > 180 || !bson_init_static (&b, data, len) || !bson_iter_init (&it, &b)) {
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
   {"findAndModify", dj_cmd_find_and_modify},
   {"findandmodify", dj_cmd_find_and_modify},
   {"find", dj_cmd_find},
   {"getMore", dj_cmd_get_more},
   {"killCursors", dj_cmd_kill_cursors},
   {"count", dj_cmd_count},
   {"distinct", dj_cmd_distinct},
   {"create", dj_cmd_create},
   {"drop", dj_cmd_drop},
   {"dropDatabase", dj_cmd_drop_database},
   {"renameCollection", dj_cmd_rename_collection},
   {"listCollections", dj_cmd_list_collections},
   {"listDatabases", dj_cmd_list_databases},
   {"collStats", dj_cmd_coll_stats},
   {"dbStats", dj_cmd_db_stats},
   {"createIndexes", dj_cmd_create_indexes},
   {"dropIndexes", dj_cmd_drop_indexes},
   {"deleteIndexes", dj_cmd_drop_indexes},
   {"listIndexes", dj_cmd_list_indexes},
   {"explain", dj_cmd_explain},
   {"aggregate", dj_cmd_aggregate},
   {"ping", cmd_ping},
};

bool
dj_engine_run_command (dj_engine_t *e, const char *db, const bson_t *cmd, bson_t *reply)
{
   bson_error_t error = {0};
   bson_iter_t it;
   bool ok = false;

   bson_init (reply);
   /* strings and field names must be UTF-8 (embedded NULs are allowed in
    * string values, as BSON allows): bad bytes would otherwise travel into
    * replies and stored documents */
   if (!cmd || !bson_validate (cmd, BSON_VALIDATE_UTF8 | BSON_VALIDATE_UTF8_ALLOW_NULL, NULL) ||
       !deep_valid (bson_get_data (cmd), cmd->len, 0, false)) {
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
   if (!dj_view_dispatch (e, db, name, cmd, reply, &handled, &error)) {
      goto fail;
   }
   if (handled) {
      return true;
   }
   for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
      if (!strcmp (commands[i].name, name)) {
         ok = commands[i].fn (e, db, cmd, reply, &error);
         dj_collation_set_current (NULL); /* a command's collation ends with it */
         if (!ok) {
            goto fail;
         }
         return true;
      }
   }
   dj_err (&error, DJ_CommandNotFound, "no such command: '%s'", name);
fail:
   /* a failed command's partial reply is replaced by the error */
   bson_reinit (reply);
   dj_error_append_reply (&error, reply);
   return false;
}
