/*
 * env.c -- LMDB environments: one per data directory per process, shared by
 * every engine handle open on it, and the marks of who holds its write lock.
 */
#include "dj_storage.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* LMDB forbids opening one environment twice in a process (closing either
 * would drop the other's locks), so handles on the same directory share one
 * MDB_env. The list is the only process-global state; g_envs_mu guards it.
 *
 * fork(): LMDB forbids using an environment in a process forked from the
 * one that opened it ("Use an MDB_env* in the process which opened it,
 * without fork()ing": lmdb.h, caveats). A child forgets every environment
 * it inherited (pthread_atfork) and opens its own; the inherited ones are
 * abandoned, never closed there: closing would drop the fcntl locks of the
 * child's own environment on the same lock file, and an abort of an
 * inherited transaction would clear the parent's reader slot. Handles the
 * child inherited (a Django connection made before the fork) are reopened
 * by the transport (src/transport, reopen_after_fork). */
struct dj_env {
   char *realpath; /* owned */
   MDB_env *env;
   MDB_dbi dbi_catalog, dbi_data, dbi_changes, dbi_main;
   dj_clock_t clock;        /* the cluster clock (changes.c), its own lock */
   int64_t change_log_size; /* the first opener's cap */
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
   pid_t pid; /* the process that opened it: another's is never used or closed */
};
static pthread_mutex_t g_envs_mu = PTHREAD_MUTEX_INITIALIZER;
static struct dj_env *g_envs;
static pthread_once_t g_atfork_once = PTHREAD_ONCE_INIT;

/* fork(): the child starts with an empty list (the parent's environments, abandoned) and
 * a fresh mutex (a thread of the parent may have held it: none is left to
 * release it). Nothing of the old list is read, so its state at the fork
 * does not matter. */
static void
atfork_child (void)
{
   pthread_mutex_init (&g_envs_mu, NULL);
   g_envs = NULL;
}

static void
register_atfork (void)
{
   pthread_atfork (NULL, NULL, atfork_child);
}

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

/* Frees e and what it holds (LMDB's environment, if opened). */
static void
env_free (struct dj_env *e)
{
   if (e->env) {
      mdb_env_close (e->env);
   }
   pthread_mutex_destroy (&e->writer_mu);
   pthread_mutex_destroy (&e->clock.mu);
   bson_free (e->realpath);
   bson_free (e);
}

static struct dj_env *
env_acquire (const char *path, const dj_engine_options_t *opts, bson_error_t *error)
{
   char real[PATH_MAX];
   struct dj_env *e;
   int rc;

   if (opts && (opts->flags & DJ_ENGINE_EXISTING)) {
      char *file = bson_strdup_printf ("%s/data.mdb", path);
      struct stat st;
      bool there = stat (file, &st) == 0 && S_ISREG (st.st_mode);
      bson_free (file);
      if (!there) {
         dj_error_set (error, DJ_DOMAIN_STORAGE, ENOENT, "no database at '%s': not a data directory djongo made", path);
         return NULL;
      }
   } else if (!mkdir_parents (path)) {
      dj_error_set (error, DJ_DOMAIN_STORAGE, (uint32_t) errno, "cannot create data directory '%s': %s", path, strerror (errno));
      return NULL;
   }
   if (!realpath (path, real)) {
      dj_error_set (error, DJ_DOMAIN_STORAGE, (uint32_t) errno, "cannot resolve data directory '%s': %s", path, strerror (errno));
      return NULL;
   }
   pthread_once (&g_atfork_once, register_atfork);
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
   e->pid = getpid ();
   pthread_mutex_init (&e->writer_mu, NULL);
   pthread_mutex_init (&e->clock.mu, NULL);
   e->clock.secs = (uint32_t) time (NULL); /* (then past the log's newest entry, below) */
   e->clock.inc = 1;
   e->change_log_size = opts && opts->change_log_size > 0 ? opts->change_log_size : DJ_CHANGE_LOG_DEFAULT_SIZE;
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
       (rc = mdb_dbi_open (txn, "data", MDB_CREATE, &e->dbi_data)) ||
       (rc = mdb_dbi_open (txn, "changes", MDB_CREATE, &e->dbi_changes)) ||
       /* the unnamed database, which holds the named ones' records (and
        * the change log's size record: changes.c) */
       (rc = mdb_dbi_open (txn, NULL, 0, &e->dbi_main))) {
      if (txn && rc) {
         mdb_txn_abort (txn);
      }
      dj_lmdb_error (rc, error, "cannot initialise data directory");
      goto fail;
   }
   {
      /* the clock starts past the log's newest entry (a restart within the
       * same second, or a wall clock that stepped back, must not reuse times) */
      MDB_cursor *cur;
      MDB_val k, v;
      if (!mdb_cursor_open (txn, e->dbi_changes, &cur)) {
         if (mdb_cursor_get (cur, &k, &v, MDB_LAST) == 0 && k.mv_size == 8) {
            dj_clock_seed (&e->clock, dj_u64be_read (k.mv_data));
         }
         mdb_cursor_close (cur);
      }
      if ((rc = mdb_txn_commit (txn))) {
         dj_lmdb_error (rc, error, "cannot initialise data directory");
         goto fail;
      }
   }
   e->next = g_envs;
   g_envs = e;
   pthread_mutex_unlock (&g_envs_mu);
   return e;
fail:
   env_free (e);
   pthread_mutex_unlock (&g_envs_mu);
   return NULL;
}

static void
env_release (struct dj_env *e)
{
   pthread_mutex_lock (&g_envs_mu);
   if (e->pid != getpid ()) {
      e->refs--; /* inherited: not in this process's list, never closed here */
   } else if (--e->refs == 0) {
      for (struct dj_env **pp = &g_envs; *pp; pp = &(*pp)->next) {
         if (*pp == e) {
            *pp = e->next;
            break;
         }
      }
      env_free (e);
   }
   pthread_mutex_unlock (&g_envs_mu);
}

bool
dj_storage_open (dj_engine_t *e, const char *path, const dj_engine_options_t *opts, bson_error_t *error)
{
   struct dj_env *shared = env_acquire (path, opts, error);
   if (!shared) {
      return false;
   }
   e->shared = shared;
   e->env = shared->env;
   e->dbi_catalog = shared->dbi_catalog;
   e->dbi_data = shared->dbi_data;
   e->dbi_changes = shared->dbi_changes;
   e->dbi_main = shared->dbi_main;
   e->shared_clock = &shared->clock;
   e->change_log_size = shared->change_log_size;
   e->path = bson_strdup (path);
   dj_spill_sweep (path); /* a dead process's leftover sort files */
   e->coll_cache = dj_keep_new (16, dj_coll_free_any);
   return true;
}

void
dj_storage_close (dj_engine_t *e)
{
   MDB_txn *spare = __atomic_exchange_n (&e->spare_read, NULL, __ATOMIC_ACQ_REL);
   if (spare && e->shared->pid == getpid ()) {
      mdb_txn_abort (spare); /* (frees its reader slot) */
   }
   /* (an inherited handle's is left alone, as its env is: its reader slot
    * is the parent's, which must not be freed from here) */
   env_release (e->shared);
   dj_keep_destroy (e->coll_cache);
   bson_free (e->path);
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


bool
dj_storage_flush (dj_engine_t *e, bson_error_t *error)
{
   int rc = mdb_env_sync (e->env, 1); /* forced: also under MDB_NOSYNC (--nosync) */
   return rc == 0 || dj_lmdb_error (rc, error, "fsync");
}

int64_t
dj_engine_param (dj_engine_t *e, int which)
{
   int64_t v = e ? atomic_load (&e->params[which]) : 0;
   return v ? v : which == DJ_PARAM_DISK_BY_DEFAULT ? 1 : DJ_PARAM_DEFAULT_BYTES;
}

void
dj_engine_param_set (dj_engine_t *e, int which, int64_t v)
{
   atomic_store (&e->params[which], v);
}
