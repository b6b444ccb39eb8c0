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

#include "dj_buf.h"
#include "dj_engine.h"
#include "dj_exec.h"
#include "dj_sql.h"
#include "dj_transport.h"
#include "transport-private.h"

struct dj_transport {
   dj_engine_t *engine;     /* owned, or NULL */
   mongoc_client_t *client; /* owned until pushed back to `pool`, or NULL */
   mongoc_client_pool_t *pool; /* borrowed: the process's pool the client came from (pool.c) */
   pid_t pid;                  /* the process that opened it (fork: see reopen_after_fork) */
   char *host;                 /* owned: what was opened, to open it again in a forked child */
   bson_t *options;            /* owned, or NULL */
   int ttl_monitor_secs;
   /* embedded: the open transaction (owned until commit/rollback), its
    * savepoints (outermost first) and the running statement's unit */
   dj_engine_txn_t *root;
   bool implicit_root; /* begun by a SAVEPOINT outside a transaction */
   dj_savepoints_t sps; /* owned; on a server their names only (server_txn) */
   dj_engine_txn_t *stmt;
   bool trusted; /* embedded: the command in flight comes from dj_transport_run_compiled */
   /* server: the session of the open transaction (owned), else NULL */
   mongoc_client_session_t *session;
   uint32_t last_server_id; /* the member the last command went to (APM) */
   dj_pool_writer_t *writer; /* the client's retryable-write session and number (the pool's) */
   struct {
      int64_t id;
      uint32_t server_id;
   } cursors[32]; /* open cursors of reads and the member each lives on */
   int ncursors;
   bson_t *labels; /* owned: the last failure's errorLabels (an array), or NULL */
   dj_concerns_t defaults; /* embedded: the connection options' concerns (a server's are its client's) */
   dj_concerns_t over;     /* dj_transport_set_concerns(): over the connection's, or empty */
   /* embedded: a write concern error met inside a statement's unit, kept
    * until the unit commits (the writes stand, as mongod's do; the
    * statement then fails with it) */
   bool wce_pending;
   bson_error_t wce;
};

/* How many times a commit answered with UnknownTransactionCommitResult is
 * sent again before that error is reported: the Convenient Transactions
 * API (libmongoc's mongoc_client_session_with_transaction) retries such a
 * commit, as the outcome is unknown and a second commitTransaction is safe
 * (the server applies a transaction once); retrying the whole transaction
 * would not be. https://www.mongodb.com/docs/manual/core/transactions-in-applications/ */
#define COMMIT_RETRIES 3

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

/* libmongoc's log: warnings and worse, as its default handler writes them
 * (stderr); its info and debug messages are dropped -- the default handler
 * would print them on stdout, where djongo-sql's results go, and a pool's
 * monitor logs each failed heartbeat at debug level. */
static void
log_warnings (mongoc_log_level_t level, const char *domain, const char *message, void *data)
{
   if (level <= MONGOC_LOG_LEVEL_WARNING) {
      mongoc_log_default_handler (level, domain, message, data);
   }
}

static void
init_mongoc (void)
{
   mongoc_init (); /* process-wide; never cleaned up: other threads may still use it at exit */
   mongoc_log_set_handler (log_warnings, NULL);
}

static void on_command_started (const mongoc_apm_command_started_t *event);

static bool
is_path (const char *host)
{
   return host[0] == '/' || host[0] == '.' || host[0] == '~' || !strncmp (host, "file:", 5) || strchr (host, '/') != NULL;
}

bool
dj_transport_is_server (const char *host)
{
   return !strncmp (host, "mongodb://", 10) || !strncmp (host, "mongodb+srv://", 14) || !is_path (host);
}

bool
dj_transport_check (const char *host, const bson_t *options, bson_error_t *error)
{
   pthread_once (&mongoc_once, init_mongoc);
   if (!dj_transport_is_server (host)) {
      /* a data directory: opening it is the check, but for the concerns */
      dj_concerns_t c;
      bool ok = dj_concerns_parse (options, true, false, &c, error);
      dj_concerns_clear (&c);
      return ok;
   }
   mongoc_uri_t *uri = dj_transport_uri (host, options, error);
   mongoc_uri_destroy (uri);
   return uri != NULL;
}

/* What a transport owns besides its engine and client, freed. */
static void
free_transport (dj_transport_t *t)
{
   if (t->labels) {
      bson_destroy (t->labels);
   }
   dj_concerns_clear (&t->defaults);
   dj_concerns_clear (&t->over);
   dj_savepoints_drop (&t->sps, 0);
   bson_free (t->host);
   if (t->options) {
      bson_destroy (t->options);
   }
   bson_free (t);
}

dj_transport_t *
dj_transport_open (const char *host, int flags, int ttl_monitor_secs, bson_error_t *error)
{
   return dj_transport_open_with (host, NULL, flags, ttl_monitor_secs, error);
}

dj_transport_t *
dj_transport_open_with (const char *host, const bson_t *options, int flags, int ttl_monitor_secs,
                        bson_error_t *error)
{
   dj_transport_t *t = bson_malloc0 (sizeof *t);
   t->pid = getpid ();
   t->host = bson_strdup (host);
   t->options = options ? bson_copy (options) : NULL;
   t->ttl_monitor_secs = ttl_monitor_secs;
   if (dj_transport_is_server (host)) {
      pthread_once (&mongoc_once, init_mongoc);
      if (!(t->client = dj_pool_pop (host, options, &t->pool, &t->writer, on_command_started, error))) {
         free_transport (t);
         return NULL;
      }
      return t;
   }
   pthread_once (&mongoc_once, init_mongoc); /* (the concerns are parsed by libmongoc's URI code) */
   if (!dj_concerns_parse (options, true, false, &t->defaults, error)) {
      free_transport (t);
      return NULL;
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
      free_transport (t);
      return NULL;
   }
   return t;
}

void
dj_transport_close (dj_transport_t *t)
{
   if (!t) {
      return;
   }
   dj_savepoints_drop (&t->sps, 0);
   if (t->pid != getpid ()) {
      /* inherited through fork(): the engine handle, its transactions, the
       * client and its sessions are the parent's -- closing them here would
       * release the parent's LMDB reader slots or end its sessions over its
       * sockets. Abandoned (the child's copy of their memory stays). */
      free_transport (t);
      return;
   }
   /* an open transaction is rolled back, as PEP 249 says close() does */
   dj_engine_txn_abort (t->stmt);
   dj_engine_txn_abort (t->root);
   if (t->session) {
      mongoc_client_session_destroy (t->session); /* aborts its transaction */
   }
   dj_engine_close (t->engine);
   if (t->client) {
      mongoc_client_pool_push (t->pool, t->client); /* its sockets serve the next connection */
   }
   free_transport (t);
}

/* A transport opened before this process was forked from its opener
 * (gunicorn's pre-fork, Django's test --parallel): nothing it holds may
 * be used here -- LMDB forbids an environment across fork, and a pooled
 * client's sockets and monitor are the parent's. It is opened again, as
 * dj_transport_open_with() opened it, the old handles abandoned (see
 * dj_transport_close()); a transaction that was open stays the parent's.
 * True when there is nothing to do or the transport is open again. */
static bool
reopen_after_fork (dj_transport_t *t, bson_error_t *error)
{
   if (t->pid == getpid ()) {
      return true;
   }
   t->root = t->stmt = NULL;
   t->implicit_root = false;
   dj_savepoints_drop (&t->sps, 0);
   t->session = NULL;
   t->writer = NULL;
   t->ncursors = 0;
   t->wce_pending = false;
   /* (on failure the old handles stay in place, unused: the next call tries again) */
   if (t->client) {
      mongoc_client_pool_t *pool;
      dj_pool_writer_t *writer;
      mongoc_client_t *client = dj_pool_pop (t->host, t->options, &pool, &writer, on_command_started, error);
      if (!client) {
         return false;
      }
      t->client = client, t->pool = pool, t->writer = writer;
   } else {
      /* the same directory, by the path the handle resolved; the engine's
       * table of environments makes a new one for this process (storage/env.c) */
      dj_engine_options_t opts = {.flags = DJ_ENGINE_EXISTING, .ttl_monitor_secs = t->ttl_monitor_secs};
      dj_engine_t *engine = dj_engine_open (dj_engine_path (t->engine), &opts, error);
      if (!engine) {
         return false;
      }
      t->engine = engine;
   }
   t->pid = getpid ();
   return true;
}

const char *
dj_transport_kind (const dj_transport_t *t)
{
   return t->engine ? "embedded" : "mongodb";
}

bool
dj_transport_djongo_engine (dj_transport_t *t)
{
   return dj_transport_djongo_has (t, "insertReferences");
}

bool
dj_transport_djongo_has (dj_transport_t *t, const char *feature)
{
   if (t->engine) {
      return true;
   }
   /* the primary's last hello, as the client's monitoring keeps it (the
    * server selection a first command makes anyway) */
   bson_error_t ignored;
   bson_iter_t it;
   if (!reopen_after_fork (t, &ignored)) {
      return false;
   }
   mongoc_server_description_t *sd = mongoc_client_select_server (t->client, true, NULL, &ignored);
   bool yes = sd && bson_iter_init_find (&it, mongoc_server_description_hello_response (sd), "djongo") &&
              BSON_ITER_HOLDS_DOCUMENT (&it) && bson_iter_recurse (&it, &it) && bson_iter_find (&it, feature) &&
              bson_iter_as_bool (&it);
   mongoc_server_description_destroy (sd);
   return yes;
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
   return t->stmt ? t->stmt : dj_savepoints_top (&t->sps, t->root);
}

/* ---- error labels ------------------------------------------------------------ */

static void
forget_labels (dj_transport_t *t)
{
   if (t->labels) {
      bson_destroy (t->labels);
      t->labels = NULL;
   }
}

/* Keeps a failed reply's errorLabels (libmongoc adds its own there too:
 * TransientTransactionError for a network error in a transaction,
 * UnknownTransactionCommitResult for a commit whose outcome is unknown). */
static void
keep_labels (dj_transport_t *t, const bson_t *reply)
{
   bson_iter_t it;
   uint32_t len;
   const uint8_t *data;
   forget_labels (t);
   if (reply && bson_iter_init_find (&it, reply, "errorLabels") && BSON_ITER_HOLDS_ARRAY (&it)) {
      bson_iter_array (&it, &len, &data);
      t->labels = bson_new_from_data (data, len);
   }
}

static void
add_label (dj_transport_t *t, const char *label)
{
   if (!t->labels) {
      t->labels = bson_new ();
   }
   char kb[16];
   const char *key;
   bson_uint32_to_string (bson_count_keys (t->labels), &key, kb, sizeof kb);
   bson_append_utf8 (t->labels, key, -1, label, -1);
}

/* Embedded: mongod labels a write conflict in a transaction so -- the
 * transaction is lost, and running it again may succeed. Here the
 * conflict is found when a snapshot transaction takes the write lock (a
 * statement's unit begins) or by a command.
 * https://www.mongodb.com/docs/manual/core/transactions-in-applications/#transienttransactionerror */
static void
label_conflict (dj_transport_t *t, const bson_error_t *error)
{
   if (t->root && error->domain == DJ_DOMAIN_SERVER && error->code == DJ_WriteConflict) {
      add_label (t, "TransientTransactionError");
   }
}

const bson_t *
dj_transport_error_labels (const dj_transport_t *t)
{
   static const bson_t empty = BSON_INITIALIZER; /* read-only: never written */
   return t->labels ? t->labels : &empty;
}

/* ---- commands on a server, outside transactions ---------------------------- */

/* What libmongoc applies to a command outside a transaction: reads of data
 * follow the client's read preference and read concern (and retryReads);
 * writes get its write concern (and retryWrites); the rest -- DDL reads,
 * admin commands -- go to the primary as they are. The connection
 * options (uri.c) set those defaults. */
typedef enum { CMD_DATA_READ, CMD_WRITE, CMD_READ_WRITE, CMD_CURSOR, CMD_OTHER } cmd_kind_t;

static cmd_kind_t
classify (const bson_t *cmd)
{
   bson_iter_t it;
   if (!bson_iter_init (&it, cmd) || !bson_iter_next (&it)) {
      return CMD_OTHER;
   }
   const char *name = bson_iter_key (&it);
   static const char *const reads[] = {"find", "count", "distinct"};
   static const char *const writes[] = {"insert", "update", "delete", "findAndModify", "create", "drop",
                                        "createIndexes", "dropIndexes", "collMod", "dropDatabase", "renameCollection"};
   for (size_t i = 0; i < sizeof reads / sizeof reads[0]; i++) {
      if (!strcmp (name, reads[i])) {
         /* djongo's own tables (__djongo_tables: the schema, counters)
          * are read where they were written: a lagging secondary would
          * not know a table just created */
         return BSON_ITER_HOLDS_UTF8 (&it) && !strncmp (bson_iter_utf8 (&it, NULL), "__djongo", 8) ? CMD_OTHER
                                                                                                  : CMD_DATA_READ;
      }
   }
   for (size_t i = 0; i < sizeof writes / sizeof writes[0]; i++) {
      if (!strcmp (name, writes[i])) {
         return CMD_WRITE;
      }
   }
   if (!strcmp (name, "getMore")) {
      return CMD_CURSOR; /* (the driver drains its cursors: it sends no killCursors) */
   }
   if (!strcmp (name, "aggregate")) {
      /* $out / $merge write: the primary, with the write concern */
      bson_iter_t p, stage, op;
      if (bson_iter_init_find (&p, cmd, "pipeline") && BSON_ITER_HOLDS_ARRAY (&p) && bson_iter_recurse (&p, &stage)) {
         while (bson_iter_next (&stage)) {
            if (BSON_ITER_HOLDS_DOCUMENT (&stage) && bson_iter_recurse (&stage, &op) && bson_iter_next (&op) &&
                (!strcmp (bson_iter_key (&op), "$out") || !strcmp (bson_iter_key (&op), "$merge"))) {
               return CMD_READ_WRITE;
            }
         }
      }
      return CMD_DATA_READ;
   }
   return CMD_OTHER;
}

/* The transport running a command on this thread, for the APM callback:
 * the pool's clients share one set of callbacks (pool.c), so the callback
 * cannot be given a transport as its context. Set by dj_transport_run()
 * and dj_transport_txn() around their libmongoc calls (a transport is used
 * by one thread at a time; the callback runs on the calling thread). */
static _Thread_local dj_transport_t *tl_running;

/* APM: the server each command is sent to, so a cursor's getMore follows
 * its find to the member that holds it (a secondary, when reads go there). */
static void
on_command_started (const mongoc_apm_command_started_t *event)
{
   if (tl_running) {
      tl_running->last_server_id = mongoc_apm_command_started_get_server_id (event);
   }
}

/* The cursor a reply leaves open (cursor.id), or 0. */
static int64_t
reply_cursor_id (const bson_t *reply)
{
   bson_iter_t it;
   return bson_iter_init (&it, reply) && bson_iter_find_descendant (&it, "cursor.id", &it) &&
                BSON_ITER_HOLDS_INT (&it)
             ? bson_iter_as_int64 (&it)
             : 0;
}

/* The member a cursor lives on (0: unknown, the command goes wherever). */
static uint32_t
cursor_server (dj_transport_t *t, int64_t id, bool forget)
{
   for (int i = 0; i < t->ncursors; i++) {
      if (t->cursors[i].id == id) {
         uint32_t server = t->cursors[i].server_id;
         if (forget) {
            t->cursors[i] = t->cursors[--t->ncursors];
         }
         return server;
      }
   }
   return 0;
}

static void
remember_cursor (dj_transport_t *t, int64_t id, uint32_t server_id)
{
   if (t->ncursors == (int) (sizeof t->cursors / sizeof t->cursors[0])) {
      /* cursors abandoned without being drained or killed: the oldest goes */
      memmove (t->cursors, t->cursors + 1, (size_t) (t->ncursors - 1) * sizeof t->cursors[0]);
      t->ncursors--;
   }
   t->cursors[t->ncursors].id = id;
   t->cursors[t->ncursors++].server_id = server_id;
}

/* Retryable writes (https://github.com/mongodb/specifications/blob/master/source/retryable-writes/retryable-writes.md):
 * an insert, an update or delete of single documents, with an
 * acknowledged write concern and retryWrites on (the default). Not
 * findAndModify: libmongoc's write command makes that one retryable
 * itself, numbering it from the session's own counter -- which, on our
 * session, repeated a number this transport had already used, and the
 * server answered with the earlier write's reply. */
static bool
is_retryable_write (dj_transport_t *t, const bson_t *cmd)
{
   bson_iter_t it, stmts, one, f;
   const mongoc_write_concern_t *wc = t->over.write_concern ? t->over.write_concern
                                                             : mongoc_client_get_write_concern (t->client);
   if (!mongoc_uri_get_option_as_bool (mongoc_client_get_uri (t->client), MONGOC_URI_RETRYWRITES, true) ||
       !mongoc_write_concern_is_acknowledged (wc) ||
       !bson_iter_init (&it, cmd) || !bson_iter_next (&it)) {
      return false;
   }
   const char *name = bson_iter_key (&it);
   if (bson_iter_init_find (&f, cmd, "writeConcern") && BSON_ITER_HOLDS_DOCUMENT (&f) && bson_iter_recurse (&f, &f) &&
       bson_iter_find (&f, "w") && BSON_ITER_HOLDS_INT (&f) && bson_iter_as_int64 (&f) == 0) {
      return false; /* unacknowledged: nothing to learn the outcome from */
   }
   bool update = !strcmp (name, "update"), del = !strcmp (name, "delete");
   if (!update && !del) {
      return !strcmp (name, "insert");
   }
   /* updateMany / deleteMany (multi: true, limit: 0) are not retryable */
   if (bson_iter_init_find (&stmts, cmd, update ? "updates" : "deletes") && BSON_ITER_HOLDS_ARRAY (&stmts) &&
       bson_iter_recurse (&stmts, &one)) {
      while (bson_iter_next (&one)) {
         if (!BSON_ITER_HOLDS_DOCUMENT (&one) || !bson_iter_recurse (&one, &f)) {
            return false;
         }
         if (update ? bson_iter_find (&f, "multi") && bson_iter_as_bool (&f)
                    : !bson_iter_find (&f, "limit") || bson_iter_as_int64 (&f) == 0) {
            return false;
         }
      }
   }
   return true;
}

/* A retryable write: sent with the client's write session id and a new
 * transaction number (dj_pool_writer_t: numbers never restart for an lsid), and sent once more -- the same number, to a
 * primary selected again -- after a network error or an error labelled
 * RetryableWriteError (a primary stepping down answers NotWritablePrimary
 * so labelled): the server applies a statement of one transaction number
 * at most once. The second error, if any, is the one reported. */
static bool
retryable_write (dj_transport_t *t, const char *db, const bson_t *cmd, const bson_t *base_opts, bson_t *reply,
                 bson_error_t *error)
{
   dj_pool_writer_t *w = t->writer;
   if (!w->session) {
      bson_error_t ignored;
      /* no sessions (a server too old, or unreachable now): plain */
      if (!(w->session = mongoc_client_start_session (t->client, NULL, &ignored))) {
         return mongoc_client_write_command_with_opts (t->client, db, cmd, base_opts, reply, error);
      }
      /* The session comes out of libmongoc's session pool, so its lsid may
       * already have carried numbers: an implicit session's findAndModify
       * or a transaction, numbered by libmongoc from 0 up by one each. The
       * server answers a number it has seen on an lsid with that write's
       * stored reply (and MongoDB refuses a lower one: TransactionTooOld),
       * so an insert numbered 1 after such a findAndModify was
       * acknowledged and never applied -- the first create of a process
       * whose tables already existed. Ours start above any number
       * libmongoc could have reached on it (2^40 writes), and the session
       * is never given back, so nothing else numbers on this lsid again. */
      w->txn_number = INT64_C (1) << 40;
   }
   bson_t opts;
   bson_copy_to (base_opts, &opts);
   if (!mongoc_client_session_append (w->session, &opts, error)) {
      bson_destroy (&opts);
      bson_init (reply);
      return false;
   }
   BSON_APPEND_INT64 (&opts, "txnNumber", ++w->txn_number);
   bool ok = mongoc_client_write_command_with_opts (t->client, db, cmd, &opts, reply, error);
   if (!ok && (error->domain == MONGOC_ERROR_STREAM || mongoc_error_has_label (reply, "RetryableWriteError"))) {
      bson_destroy (reply);
      ok = mongoc_client_write_command_with_opts (t->client, db, cmd, &opts, reply, error);
   }
   bson_destroy (&opts);
   return ok;
}

/* The options a command outside a transaction takes from
 * dj_transport_set_concerns(): its read concern (reads) and write concern
 * (writes), appended to @p opts; libmongoc applies the client's own for
 * what is not there. */
static void
append_concerns (dj_transport_t *t, cmd_kind_t kind, bson_t *opts)
{
   if (t->over.read_concern && (kind == CMD_DATA_READ || kind == CMD_READ_WRITE)) {
      mongoc_read_concern_append (t->over.read_concern, opts);
   }
   if (t->over.write_concern && (kind == CMD_WRITE || kind == CMD_READ_WRITE)) {
      mongoc_write_concern_append (t->over.write_concern, opts);
   }
}

static bool
server_run (dj_transport_t *t, const char *db, const bson_t *cmd, bson_t *reply, bson_error_t *error)
{
   const mongoc_read_prefs_t *prefs = t->over.read_prefs ? t->over.read_prefs : mongoc_client_get_read_prefs (t->client);
   cmd_kind_t kind = classify (cmd);
   bson_t opts = BSON_INITIALIZER;
   append_concerns (t, kind, &opts);
   bool ok;
   switch (kind) {
   case CMD_DATA_READ: {
      t->last_server_id = 0;
      ok = mongoc_client_read_command_with_opts (t->client, db, cmd, prefs, &opts, reply, error);
      int64_t id = ok ? reply_cursor_id (reply) : 0;
      if (id && t->last_server_id) {
         remember_cursor (t, id, t->last_server_id);
      }
      break;
   }
   case CMD_WRITE:
      ok = is_retryable_write (t, cmd) ? retryable_write (t, db, cmd, &opts, reply, error)
                                       : mongoc_client_write_command_with_opts (t->client, db, cmd, &opts, reply, error);
      break;
   case CMD_READ_WRITE:
      ok = mongoc_client_read_write_command_with_opts (t->client, db, cmd, NULL, &opts, reply, error);
      break;
   case CMD_CURSOR: {
      bson_iter_t it;
      int64_t id = bson_iter_init (&it, cmd) && bson_iter_next (&it) && BSON_ITER_HOLDS_INT (&it)
                      ? bson_iter_as_int64 (&it)
                      : 0;
      uint32_t server = id ? cursor_server (t, id, false) : 0;
      if (!server) {
         ok = mongoc_client_command_simple (t->client, db, cmd, NULL, reply, error);
         break;
      }
      BSON_APPEND_INT32 (&opts, "serverId", (int32_t) server);
      ok = mongoc_client_command_with_opts (t->client, db, cmd, prefs, &opts, reply, error);
      if (!ok || reply_cursor_id (reply) == 0) {
         cursor_server (t, id, true); /* drained (or gone): forgotten */
      }
      break;
   }
   default:
      ok = mongoc_client_command_simple (t->client, db, cmd, NULL, reply, error);
   }
   bson_destroy (&opts);
   return ok;
}

/* On the embedded engine, outside a transaction: the connection's (or
 * dj_transport_set_concerns()') read concern goes with reads and write
 * concern with writes, as libmongoc sends them to a server, and the write
 * concern is judged as a one-member replica set judges it
 * (dj_engine_write_concern_check): w > 1 leaves the write done and fails
 * with UnsatisfiableWriteConcern (100), as a driver reports mongod's
 * writeConcernError. Inside a transaction a command takes neither (MongoDB
 * refuses them there). */
static bool
embedded_run (dj_transport_t *t, const char *db, const bson_t *cmd, bson_t *reply, bson_error_t *error)
{
   mongoc_read_concern_t *rc = t->over.read_concern ? t->over.read_concern : t->defaults.read_concern;
   mongoc_write_concern_t *wc = t->over.write_concern ? t->over.write_concern : t->defaults.write_concern;
   cmd_kind_t kind = t->root ? CMD_OTHER : classify (cmd);
   bool reads = kind == CMD_DATA_READ || kind == CMD_READ_WRITE, writes = kind == CMD_WRITE || kind == CMD_READ_WRITE;
   bson_t with;
   const bson_t *run = cmd;
   if ((reads && rc && !bson_has_field (cmd, "readConcern")) || (writes && wc && !bson_has_field (cmd, "writeConcern"))) {
      bson_copy_to (cmd, &with);
      if (reads && rc && !bson_has_field (cmd, "readConcern")) {
         mongoc_read_concern_append (rc, &with);
      }
      if (writes && wc && !bson_has_field (cmd, "writeConcern")) {
         mongoc_write_concern_append (wc, &with);
      }
      run = &with;
   }
   bool ok = (t->trusted ? dj_engine_run_trusted_in (t->engine, current_txn (t), db, run, reply)
                         : dj_engine_run_command_in (t->engine, current_txn (t), db, run, reply)) ||
             reply_error (reply, error);
   bson_iter_t it;
   if (ok && writes) {
      dj_engine_write_concern_check (run, reply);
      if (bson_iter_init_find (&it, reply, "writeConcernError") && BSON_ITER_HOLDS_DOCUMENT (&it)) {
         bson_t wce;
         uint32_t len;
         const uint8_t *data;
         bson_iter_document (&it, &len, &data);
         if (t->stmt) {
            /* in a statement's unit: reported when it commits (the unit
             * rolled back would undo writes mongod keeps) */
            if (!t->wce_pending && bson_init_static (&wce, data, len)) {
               reply_error (&wce, &t->wce);
               t->wce_pending = true;
            }
         } else {
            ok = bson_init_static (&wce, data, len) && reply_error (&wce, error);
         }
      }
   }
   if (run == &with) {
      bson_destroy (&with);
   }
   return ok;
}

bool
dj_transport_set_concerns (dj_transport_t *t, const bson_t *concerns, bson_error_t *error)
{
   dj_concerns_t c;
   pthread_once (&mongoc_once, init_mongoc);
   if (!reopen_after_fork (t, error)) {
      return false;
   }
   if (!dj_concerns_parse (concerns, t->engine != NULL, true, &c, error)) {
      return false;
   }
   dj_concerns_clear (&t->over);
   t->over = c; /* steals c's parts */
   return true;
}

/* A server's answer keeps its code, as MongoDB's, in DJ_DOMAIN_SERVER as the
 * engine's are; libmongoc's own errors (network, selection) stay as they are. */
static void
server_error (bson_error_t *error)
{
   if (error->domain == MONGOC_ERROR_SERVER || error->domain == MONGOC_ERROR_WRITE_CONCERN) {
      uint32_t code = error->code;
      char msg[sizeof error->message];
      bson_strncpy (msg, error->message, sizeof msg);
      dj_error_set (error, DJ_DOMAIN_SERVER, code, "%s", msg);
   }
}

/* No member could be selected: libmongoc's message, then each member the
 * client knows of and what it was last seen as (RSSecondary...), then each
 * seed of the URI it has no description of (Unknown: never reached), so
 * the reader sees which hosts were tried. (A pooled client's message,
 * unlike a single-threaded one's, does not name unreachable hosts.) */
static void
explain_selection (dj_transport_t *t, bson_error_t *error)
{
   size_t n = 0;
   mongoc_server_description_t **sds = mongoc_client_get_server_descriptions (t->client, &n);
   bson_string_t *s = bson_string_new (error->message);
   size_t listed = 0;
   for (size_t i = 0; i < n; i++) {
      bson_string_append_printf (s, "%s%s (%s)", listed++ ? ", " : "; members: ",
                                 mongoc_server_description_host (sds[i])->host_and_port,
                                 mongoc_server_description_type (sds[i]));
   }
   for (const mongoc_host_list_t *h = mongoc_uri_get_hosts (mongoc_client_get_uri (t->client)); h; h = h->next) {
      bool known = false;
      for (size_t i = 0; i < n && !known; i++) {
         known = !strcasecmp (mongoc_server_description_host (sds[i])->host_and_port, h->host_and_port);
      }
      if (!known) {
         bson_string_append_printf (s, "%s%s (Unknown)", listed++ ? ", " : "; members: ", h->host_and_port);
      }
   }
   mongoc_server_descriptions_destroy_all (sds, n);
   bson_strncpy (error->message, s->str, sizeof error->message); /* (cut at the message's size) */
   bson_string_free (s, true);
}

/* cmd for a server, with the djongoRecordKeyed fields of a createIndexes'
 * specs (djongo's compiler asks for a record-keyed INTEGER PRIMARY KEY,
 * and _id index, src/engine/storage/ridkey.c) taken out when the server
 * does not announce it: a MongoDB server refuses an unknown index option,
 * and makes the plain unique index it stands for without (the _id index's
 * spec is left out: every collection has it). Into *out (initialised) when
 * taken out: true; false: cmd as it is. */
static bool
without_record_keyed (dj_transport_t *t, const bson_t *cmd, bson_t *out)
{
   bson_iter_t it, specs;
   if (!bson_iter_init (&it, cmd) || !bson_iter_next (&it) || strcmp (bson_iter_key (&it), "createIndexes") ||
       !bson_iter_init_find (&it, cmd, "indexes") || !BSON_ITER_HOLDS_ARRAY (&it) || !bson_iter_recurse (&it, &specs)) {
      return false;
   }
   bool asked = false;
   while (!asked && bson_iter_next (&specs)) {
      bson_iter_t f;
      asked = BSON_ITER_HOLDS_DOCUMENT (&specs) && bson_iter_recurse (&specs, &f) && bson_iter_find (&f, "djongoRecordKeyed");
   }
   if (!asked || dj_transport_djongo_has (t, "recordKeyed")) {
      return false;
   }
   bson_t arr;
   bson_init (out);
   bson_iter_init (&it, cmd);
   while (bson_iter_next (&it)) {
      if (strcmp (bson_iter_key (&it), "indexes") || !BSON_ITER_HOLDS_ARRAY (&it)) {
         bson_append_iter (out, NULL, 0, &it);
         continue;
      }
      BSON_APPEND_ARRAY_BEGIN (out, "indexes", &arr);
      bson_iter_recurse (&it, &specs);
      uint32_t n = 0;
      while (bson_iter_next (&specs)) {
         const uint8_t *d;
         uint32_t l;
         bson_t spec, plain;
         char kb[16];
         const char *k;
         bson_iter_t f;
         bson_uint32_to_string (n, &k, kb, sizeof kb);
         if (!BSON_ITER_HOLDS_DOCUMENT (&specs)) {
            bson_append_value (&arr, k, -1, bson_iter_value (&specs));
            n++;
            continue;
         }
         bson_iter_document (&specs, &l, &d);
         bson_init_static (&spec, d, l);
         if (bson_iter_init_find (&f, &spec, "name") && BSON_ITER_HOLDS_UTF8 (&f) && !strcmp (bson_iter_utf8 (&f, NULL), "_id_") &&
             bson_iter_init_find (&f, &spec, "djongoRecordKeyed")) {
            continue; /* the _id index asked record-keyed: the server has it already */
         }
         bson_init (&plain);
         bson_copy_to_excluding_noinit (&spec, &plain, "djongoRecordKeyed", NULL);
         bson_append_document (&arr, k, -1, &plain);
         bson_destroy (&plain);
         n++;
      }
      bson_append_array_end (out, &arr);
   }
   return true;
}

static bool server_command (dj_transport_t *t, const char *db, const bson_t *cmd, bson_t *reply, bson_error_t *error);

bool
dj_transport_run (void *ctx, const char *db, const bson_t *cmd, bson_t *reply, bson_error_t *error)
{
   dj_transport_t *t = ctx;
   forget_labels (t);
   if (!reopen_after_fork (t, error)) {
      bson_init (reply);
      return false;
   }
   if (t->engine) {
      if (embedded_run (t, db, cmd, reply, error)) {
         return true;
      }
      label_conflict (t, error);
      return false;
   }
   bson_t plain;
   if (without_record_keyed (t, cmd, &plain)) {
      bool ok = server_command (t, db, &plain, reply, error);
      bson_destroy (&plain);
      return ok;
   }
   return server_command (t, db, cmd, reply, error);
}

static bool
server_command (dj_transport_t *t, const char *db, const bson_t *cmd, bson_t *reply, bson_error_t *error)
{
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
      tl_running = t;
      ok = server_run (t, db, cmd, reply, error); /* initialises reply in every case */
      tl_running = NULL;
   }
   if (ok) {
      return true;
   }
   keep_labels (t, reply);
   if (error->domain == MONGOC_ERROR_SERVER_SELECTION) {
      explain_selection (t, error);
   }
   server_error (error);
   return false;
}

bool
dj_transport_run_compiled (void *ctx, const char *db, const bson_t *cmd, bson_t *reply, bson_error_t *error)
{
   dj_transport_t *t = ctx;
   t->trusted = true;
   bool ok = dj_transport_run (t, db, cmd, reply, error);
   t->trusted = false;
   return ok;
}

bool
dj_transport_run_outside (void *ctx, const char *db, const bson_t *cmd, bson_t *reply, bson_error_t *error)
{
   dj_transport_t *t = ctx;
   mongoc_client_session_t *session = t->session;
   t->session = NULL; /* hidden for this command: it goes without one */
   bool ok = dj_transport_run (t, db, cmd, reply, error);
   t->session = session;
   return ok;
}

/* ---- transactions ---------------------------------------------------------- */

static bool
unsupported (bson_error_t *error, const char *what)
{
   return dj_error_set (error, DJ_DOMAIN_SQL, DJ_SQL_UNSUPPORTED, "not supported: %s", what); /* as every refusal begins */
}

/* The place of savepoint name in t's stack, or -1 with SQLite's error. */
static int
find_savepoint (const dj_transport_t *t, const char *name, bson_error_t *error)
{
   int i = dj_savepoints_find (&t->sps, name);
   if (i < 0) {
      dj_error_set (error, DJ_DOMAIN_SQL, DJ_SQL_SYNTAX, "no such savepoint: %s", name);
   }
   return i;
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
      dj_savepoints_drop (&t->sps, 0);
      return ok;
   case DJ_TXN_ROLLBACK:
      dj_engine_txn_abort (t->root);
      t->root = NULL;
      dj_savepoints_drop (&t->sps, 0);
      return true;
   case DJ_TXN_SAVEPOINT:
      if (!t->root) {
         if (!(t->root = dj_engine_txn_begin (t->engine, NULL, error))) {
            return false;
         }
         t->implicit_root = true;
      }
      return dj_savepoints_begin (&t->sps, t->engine, t->root, name, error);
   case DJ_TXN_RELEASE:
      if ((i = find_savepoint (t, name, error)) < 0) {
         return false;
      }
      if (!dj_savepoints_release (&t->sps, i, &t->root, error)) {
         return false; /* (the transaction aborted: it cannot be trusted) */
      }
      if (t->sps.n == 0 && t->implicit_root) {
         return embedded_txn (t, DJ_TXN_COMMIT, NULL, error);
      }
      return true;
   case DJ_TXN_ROLLBACK_TO:
      if ((i = find_savepoint (t, name, error)) < 0) {
         return false;
      }
      return dj_savepoints_rollback_to (&t->sps, i, t->engine, t->root, error); /* the savepoint stays, empty */
   case DJ_TXN_STMT_BEGIN:
      t->stmt = dj_engine_txn_begin (t->engine, dj_savepoints_top (&t->sps, t->root), error);
      return t->stmt != NULL;
   case DJ_TXN_STMT_COMMIT:
      ok = dj_engine_txn_commit (t->stmt, error);
      t->stmt = NULL;
      if (ok && t->wce_pending) {
         *error = t->wce; /* the writes stand; the statement reports it */
         ok = false;
      }
      t->wce_pending = false;
      return ok;
   case DJ_TXN_STMT_ABORT:
      dj_engine_txn_abort (t->stmt);
      t->stmt = NULL;
      t->wce_pending = false;
      return true;
   }
   return unsupported (error, "unknown transaction operation");
}

static bool server_txn (dj_transport_t *t, dj_txn_op_t op, const char *name, bson_error_t *error);

/* A savepoint command of djongo-server (SAVEPOINT, RELEASE or ROLLBACK TO:
 * djongoSavepoint and its two, src/server/sessions.c) in the transaction. */
static bool
server_savepoint (dj_transport_t *t, const char *command, const char *name, bson_error_t *error)
{
   bson_t cmd = BSON_INITIALIZER, reply;
   BSON_APPEND_UTF8 (&cmd, command, name);
   bool ok = server_command (t, "admin", &cmd, &reply, error);
   bson_destroy (&reply);
   bson_destroy (&cmd);
   return ok;
}

/* On a server: a session with a multi-document transaction. MongoDB has no
 * savepoints, and statements outside a transaction are not atomic units
 * (inside one, a failed write aborts the whole transaction server-side).
 * djongo-server has savepoints (hello's djongo.savepoints): t->sps keeps
 * their names (dj_savepoints_push with no transaction), so that an unknown name gets the
 * embedded transport's error and a SAVEPOINT outside a transaction begins
 * one that the release of the last savepoint commits, as there. */
static bool
server_txn (dj_transport_t *t, dj_txn_op_t op, const char *name, bson_error_t *error)
{
   int i;
   bool ok;
   switch (op) {
   case DJ_TXN_ACTIVE: /* answered by dj_transport_txn */
      return t->session != NULL;
   case DJ_TXN_BEGIN: /* none open: dj_transport_txn checked */
   case DJ_TXN_BEGIN_DEFERRED: /* MongoDB's transactions are snapshots already */
      if (!(t->session = mongoc_client_start_session (t->client, NULL, error))) {
         return false;
      }
      /* a transaction reads from the primary, whatever the client's read
       * preference says for reads outside one (MongoDB refuses others) */
      mongoc_transaction_opt_t *txn_opts = mongoc_transaction_opts_new ();
      mongoc_read_prefs_t *primary = mongoc_read_prefs_new (MONGOC_READ_PRIMARY);
      mongoc_transaction_opts_set_read_prefs (txn_opts, primary);
      mongoc_read_prefs_destroy (primary);
      /* dj_transport_set_concerns()' read and write concern are the
       * transaction's (its commit waits for the write concern) */
      if (t->over.read_concern) {
         mongoc_transaction_opts_set_read_concern (txn_opts, t->over.read_concern);
      }
      if (t->over.write_concern) {
         mongoc_transaction_opts_set_write_concern (txn_opts, t->over.write_concern);
      }
      ok = mongoc_client_session_start_transaction (t->session, txn_opts, error);
      mongoc_transaction_opts_destroy (txn_opts);
      if (!ok) {
         mongoc_client_session_destroy (t->session);
         t->session = NULL;
         return false;
      }
      return true;
   case DJ_TXN_COMMIT:
   case DJ_TXN_ROLLBACK:
      dj_savepoints_drop (&t->sps, 0);
      t->implicit_root = false;
      if (!t->session) {
         return true;
      }
      if (op == DJ_TXN_COMMIT) {
         bson_t reply;
         ok = mongoc_client_session_commit_transaction (t->session, &reply, error);
         for (int i = 0; !ok && i < COMMIT_RETRIES && mongoc_error_has_label (&reply, "UnknownTransactionCommitResult");
              i++) {
            bson_destroy (&reply);
            ok = mongoc_client_session_commit_transaction (t->session, &reply, error);
         }
         if (!ok) {
            keep_labels (t, &reply);
            server_error (error);
         }
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
      if (!dj_transport_djongo_has (t, "savepoints")) {
         return unsupported (error, "savepoints on a MongoDB server (the embedded engine and djongo-server have "
                                    "them); nested atomic blocks need a data directory or djongo-server as HOST");
      }
      if (op == DJ_TXN_SAVEPOINT) {
         if (!t->session) {
            if (!server_txn (t, DJ_TXN_BEGIN_DEFERRED, NULL, error)) {
               return false;
            }
            t->implicit_root = true;
         }
         if (!server_savepoint (t, "djongoSavepoint", name, error)) {
            return false;
         }
         dj_savepoints_push (&t->sps, name, NULL);
         return true;
      }
      if ((i = find_savepoint (t, name, error)) < 0) {
         return false;
      }
      if (op == DJ_TXN_ROLLBACK_TO) {
         if (!server_savepoint (t, "djongoRollbackToSavepoint", name, error)) {
            return false;
         }
         dj_savepoints_drop (&t->sps, i + 1); /* the savepoint stays, empty */
         return true;
      }
      if (!server_savepoint (t, "djongoReleaseSavepoint", name, error)) {
         return false;
      }
      dj_savepoints_drop (&t->sps, i);
      if (t->sps.n == 0 && t->implicit_root) {
         return server_txn (t, DJ_TXN_COMMIT, NULL, error);
      }
      return true;
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
   bson_error_t ignored;
   if (!reopen_after_fork (t, op == DJ_TXN_ACTIVE ? &ignored : error)) {
      return false;
   }
   /* what a transaction is open means, and that BEGIN inside one is refused
    * (as MongoDB and SQLite refuse it), is the same rule on both transports */
   bool active = t->engine ? t->root != NULL : t->session != NULL;
   if (op == DJ_TXN_ACTIVE) {
      return active;
   }
   if (op != DJ_TXN_STMT_ABORT && op != DJ_TXN_ROLLBACK) {
      forget_labels (t); /* (those two follow a failure: its labels stay to be read) */
   }
   if ((op == DJ_TXN_BEGIN || op == DJ_TXN_BEGIN_DEFERRED) && active) {
      return dj_error_set (error, DJ_DOMAIN_SERVER, DJ_IllegalOperation, "cannot start a transaction within a transaction");
   }
   if (t->engine) {
      if (embedded_txn (t, op, name, error)) {
         return true;
      }
      label_conflict (t, error);
      return false;
   }
   tl_running = t;
   bool ok = server_txn (t, op, name, error);
   tl_running = NULL;
   return ok;
}
