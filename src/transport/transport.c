/*
 * transport.c -- the embedded engine and libmongoc behind dj_run_command_fn.
 */
#include <mongoc/mongoc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dj_engine.h"
#include "dj_exec.h"
#include "dj_sql.h"
#include "dj_transport.h"

typedef struct {
   char *name;           /* owned */
   dj_engine_txn_t *txn; /* nested in the previous savepoint's, or the root */
} savepoint_t;

struct dj_transport {
   dj_engine_t *engine;     /* owned, or NULL */
   mongoc_client_t *client; /* owned, or NULL */
   /* embedded: the open transaction (owned until commit/rollback), its
    * savepoints (outermost first) and the running statement's unit */
   dj_engine_txn_t *root;
   bool implicit_root; /* begun by a SAVEPOINT outside a transaction */
   savepoint_t *sps;   /* owned array */
   int nsp, capsp;
   dj_engine_txn_t *stmt;
   /* server: the session of the open transaction (owned), else NULL */
   mongoc_client_session_t *session;
};

void
dj_transport_process_init (void)
{
   if (!getenv ("MONGOC_DISABLE_SHM")) {
      char name[32];
      snprintf (name, sizeof name, "/mongoc-%d", (int) getpid ()); /* libmongoc's name for it */
      shm_unlink (name); /* none there (counters off, or another name): nothing to do */
      setenv ("MONGOC_DISABLE_SHM", "1", 1);
   }
}

static pthread_once_t mongoc_once = PTHREAD_ONCE_INIT;

static void
init_mongoc (void)
{
   mongoc_init (); /* process-wide; never cleaned up: other threads may still use it at exit */
}

static bool
is_path (const char *host)
{
   return host[0] == '/' || host[0] == '.' || host[0] == '~' || !strncmp (host, "file:", 5) || strchr (host, '/') != NULL;
}

dj_transport_t *
dj_transport_open (const char *host, int flags, int ttl_monitor_secs, bson_error_t *error)
{
   dj_transport_t *t = bson_malloc0 (sizeof *t);
   if (!strncmp (host, "mongodb://", 10) || !strncmp (host, "mongodb+srv://", 14) || !is_path (host)) {
      char *uri_s = (!strncmp (host, "mongodb", 7) && strstr (host, "://")) ? bson_strdup (host)
                                                                              : bson_strdup_printf ("mongodb://%s", host);
      pthread_once (&mongoc_once, init_mongoc);
      mongoc_uri_t *uri = mongoc_uri_new_with_error (uri_s, error);
      bson_free (uri_s);
      if (uri) {
         t->client = mongoc_client_new_from_uri_with_error (uri, error);
         mongoc_uri_destroy (uri);
      }
      if (!t->client) {
         bson_free (t);
         return NULL;
      }
      mongoc_client_set_appname (t->client, "djongo");
      mongoc_client_set_error_api (t->client, MONGOC_ERROR_API_VERSION_2);
      return t;
   }
   const char *path = !strncmp (host, "file:", 5) ? host + 5 : host;
   char *expanded = NULL;
   if (path[0] == '~' && getenv ("HOME")) {
      expanded = bson_strdup_printf ("%s%s", getenv ("HOME"), path + 1);
      path = expanded;
   }
   dj_engine_options_t opts = {.flags = (flags & DJ_TRANSPORT_EXISTING) ? DJ_ENGINE_EXISTING : 0,
                               .ttl_monitor_secs = ttl_monitor_secs};
   t->engine = dj_engine_open (path, &opts, error);
   bson_free (expanded);
   if (!t->engine) {
      bson_free (t);
      return NULL;
   }
   return t;
}

static void
forget_savepoints (dj_transport_t *t, int from)
{
   for (int i = from; i < t->nsp; i++) {
      bson_free (t->sps[i].name);
   }
   t->nsp = from;
}

void
dj_transport_close (dj_transport_t *t)
{
   if (t) {
      /* an open transaction is rolled back, as PEP 249 says close() does */
      dj_engine_txn_abort (t->stmt);
      dj_engine_txn_abort (t->root);
      forget_savepoints (t, 0);
      bson_free (t->sps);
      if (t->session) {
         mongoc_client_session_destroy (t->session); /* aborts its transaction */
      }
      dj_engine_close (t->engine);
      if (t->client) {
         mongoc_client_destroy (t->client);
      }
      bson_free (t);
   }
}

const char *
dj_transport_kind (const dj_transport_t *t)
{
   return t->engine ? "embedded" : "mongodb";
}

/* A reply with ok: 0 -> DJ_DOMAIN_SERVER {code, errmsg}. */
static bool
reply_error (const bson_t *reply, bson_error_t *error)
{
   bson_iter_t it;
   uint32_t code = DJ_InternalError;
   const char *msg = "command failed";
   if (bson_iter_init_find (&it, reply, "code") && BSON_ITER_HOLDS_NUMBER (&it)) {
      code = (uint32_t) bson_iter_as_int64 (&it);
   }
   if (bson_iter_init_find (&it, reply, "errmsg") && BSON_ITER_HOLDS_UTF8 (&it)) {
      msg = bson_iter_utf8 (&it, NULL);
   }
   return dj_error_set (error, DJ_DOMAIN_SERVER, code, "%s", msg);
}

/* The transaction commands run in: the statement's unit, else the innermost
 * savepoint, else the root (NULL: autocommit). */
static dj_engine_txn_t *
current_txn (dj_transport_t *t)
{
   return t->stmt ? t->stmt : t->nsp ? t->sps[t->nsp - 1].txn : t->root;
}

bool
dj_transport_run (void *ctx, const char *db, const bson_t *cmd, bson_t *reply, bson_error_t *error)
{
   dj_transport_t *t = ctx;
   if (t->engine) {
      return dj_engine_run_command_in (t->engine, current_txn (t), db, cmd, reply) || reply_error (reply, error);
   }
   bool ok;
   if (t->session) {
      bson_t opts = BSON_INITIALIZER;
      if (mongoc_client_session_append (t->session, &opts, error)) {
         ok = mongoc_client_command_with_opts (t->client, db, cmd, NULL, &opts, reply, error);
      } else {
         bson_init (reply);
         ok = false;
      }
      bson_destroy (&opts);
   } else {
      /* initialises reply in every case */
      ok = mongoc_client_command_simple (t->client, db, cmd, NULL, reply, error);
   }
   if (ok) {
      return true;
   }
   if (error->domain == MONGOC_ERROR_SERVER || error->domain == MONGOC_ERROR_WRITE_CONCERN) {
      /* the server answered: its code is MongoDB's, as the engine's are */
      uint32_t code = error->code;
      char msg[sizeof error->message];
      bson_strncpy (msg, error->message, sizeof msg);
      dj_error_set (error, DJ_DOMAIN_SERVER, code, "%s", msg);
   }
   return false;
}

/* ---- transactions ---------------------------------------------------------- */

static bool
unsupported (bson_error_t *error, const char *what)
{
   return dj_error_set (error, DJ_DOMAIN_SQL, DJ_SQL_UNSUPPORTED, "not supported: %s", what); /* as every refusal begins */
}

static int
find_savepoint (const dj_transport_t *t, const char *name, bson_error_t *error)
{
   for (int i = t->nsp - 1; i >= 0; i--) {
      if (!strcasecmp (t->sps[i].name, name)) { /* SQL names fold case, as SQLite compares them */
         return i;
      }
   }
   dj_error_set (error, DJ_DOMAIN_SQL, DJ_SQL_SYNTAX, "no such savepoint: %s", name);
   return -1;
}

static bool
push_savepoint (dj_transport_t *t, const char *name, bson_error_t *error)
{
   dj_engine_txn_t *parent = t->nsp ? t->sps[t->nsp - 1].txn : t->root;
   dj_engine_txn_t *sp = dj_engine_txn_begin (t->engine, parent, error);
   if (!sp) {
      return false;
   }
   if (t->nsp == t->capsp) {
      t->capsp = t->capsp ? 2 * t->capsp : 8;
      t->sps = bson_realloc (t->sps, (size_t) t->capsp * sizeof *t->sps);
   }
   t->sps[t->nsp].name = bson_strdup (name);
   t->sps[t->nsp++].txn = sp;
   return true;
}

static bool
embedded_txn (dj_transport_t *t, dj_txn_op_t op, const char *name, bson_error_t *error)
{
   int i;
   bool ok;

   switch (op) {
   case DJ_TXN_ACTIVE: /* answered by dj_transport_txn */
      return t->root != NULL;
   case DJ_TXN_BEGIN: /* none open: dj_transport_txn checked */
   case DJ_TXN_BEGIN_DEFERRED:
      t->root = op == DJ_TXN_BEGIN ? dj_engine_txn_begin (t->engine, NULL, error)
                                   : dj_engine_txn_begin_snapshot (t->engine, error);
      t->implicit_root = false;
      return t->root != NULL;
   case DJ_TXN_COMMIT:
      ok = dj_engine_txn_commit (t->root, error); /* also its savepoints */
      t->root = NULL;
      forget_savepoints (t, 0);
      return ok;
   case DJ_TXN_ROLLBACK:
      dj_engine_txn_abort (t->root);
      t->root = NULL;
      forget_savepoints (t, 0);
      return true;
   case DJ_TXN_SAVEPOINT:
      if (!t->root) {
         if (!(t->root = dj_engine_txn_begin (t->engine, NULL, error))) {
            return false;
         }
         t->implicit_root = true;
      }
      return push_savepoint (t, name, error);
   case DJ_TXN_RELEASE:
      if ((i = find_savepoint (t, name, error)) < 0) {
         return false;
      }
      ok = dj_engine_txn_commit (t->sps[i].txn, error); /* and the later ones */
      forget_savepoints (t, i);
      if (!ok) {
         /* the savepoint's writes are lost; the transaction cannot be trusted */
         dj_engine_txn_abort (t->root);
         t->root = NULL;
         forget_savepoints (t, 0);
         return false;
      }
      if (t->nsp == 0 && t->implicit_root) {
         return embedded_txn (t, DJ_TXN_COMMIT, NULL, error);
      }
      return true;
   case DJ_TXN_ROLLBACK_TO:
      if ((i = find_savepoint (t, name, error)) < 0) {
         return false;
      }
      dj_engine_txn_abort (t->sps[i].txn); /* and the later ones */
      char *keep = t->sps[i].name;
      t->sps[i].name = NULL;
      forget_savepoints (t, i);
      ok = push_savepoint (t, keep, error); /* the savepoint stays, empty */
      bson_free (keep);
      return ok;
   case DJ_TXN_STMT_BEGIN:
      t->stmt = dj_engine_txn_begin (t->engine, t->nsp ? t->sps[t->nsp - 1].txn : t->root, error);
      return t->stmt != NULL;
   case DJ_TXN_STMT_COMMIT:
      ok = dj_engine_txn_commit (t->stmt, error);
      t->stmt = NULL;
      return ok;
   case DJ_TXN_STMT_ABORT:
      dj_engine_txn_abort (t->stmt);
      t->stmt = NULL;
      return true;
   }
   return unsupported (error, "unknown transaction operation");
}

/* On a server: a session with a multi-document transaction. MongoDB has no
 * savepoints, and statements outside a transaction are not atomic units
 * (inside one, a failed write aborts the whole transaction server-side). */
static bool
server_txn (dj_transport_t *t, dj_txn_op_t op, bson_error_t *error)
{
   bool ok;
   switch (op) {
   case DJ_TXN_ACTIVE: /* answered by dj_transport_txn */
      return t->session != NULL;
   case DJ_TXN_BEGIN: /* none open: dj_transport_txn checked */
   case DJ_TXN_BEGIN_DEFERRED: /* MongoDB's transactions are snapshots already */
      if (!(t->session = mongoc_client_start_session (t->client, NULL, error))) {
         return false;
      }
      if (!mongoc_client_session_start_transaction (t->session, NULL, error)) {
         mongoc_client_session_destroy (t->session);
         t->session = NULL;
         return false;
      }
      return true;
   case DJ_TXN_COMMIT:
   case DJ_TXN_ROLLBACK:
      if (!t->session) {
         return true;
      }
      if (op == DJ_TXN_COMMIT) {
         bson_t reply;
         ok = mongoc_client_session_commit_transaction (t->session, &reply, error);
         bson_destroy (&reply);
      } else {
         ok = mongoc_client_session_abort_transaction (t->session, error);
      }
      mongoc_client_session_destroy (t->session);
      t->session = NULL;
      return ok;
   case DJ_TXN_SAVEPOINT:
   case DJ_TXN_RELEASE:
   case DJ_TXN_ROLLBACK_TO:
      return unsupported (error, "savepoints on a MongoDB server (the embedded engine has them); "
                                 "nested atomic blocks need a data directory as HOST");
   case DJ_TXN_STMT_BEGIN:
   case DJ_TXN_STMT_COMMIT:
   case DJ_TXN_STMT_ABORT:
      return true;
   }
   return unsupported (error, "unknown transaction operation");
}

bool
dj_transport_txn (void *ctx, dj_txn_op_t op, const char *name, bson_error_t *error)
{
   dj_transport_t *t = ctx;
   /* what a transaction is open means, and that BEGIN inside one is refused
    * (as MongoDB and SQLite refuse it), is the same rule on both transports */
   bool active = t->engine ? t->root != NULL : t->session != NULL;
   if (op == DJ_TXN_ACTIVE) {
      return active;
   }
   if ((op == DJ_TXN_BEGIN || op == DJ_TXN_BEGIN_DEFERRED) && active) {
      return dj_error_set (error, DJ_DOMAIN_SERVER, DJ_IllegalOperation, "cannot start a transaction within a transaction");
   }
   if (t->engine) {
      return embedded_txn (t, op, name, error);
   }
   return server_txn (t, op, error);
}
