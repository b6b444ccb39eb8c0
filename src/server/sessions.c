/*
 * sessions.c -- logical sessions and multi-document transactions.
 * https://www.mongodb.com/docs/manual/core/transactions/
 *
 * A transaction is one engine snapshot transaction (dj_engine_txn_t). LMDB's write
 * transaction belongs to the thread that began it, while a driver may send
 * a session's commands over any of its connections (so, any of our
 * connection threads). Each open transaction therefore has a host thread
 * (host.c) that begins it, runs every command of it, and commits or aborts
 * it: the connection thread whose command began it -- the commands that
 * follow over that connection run at once, the others are posted to it --
 * or, for a snapshot read, a worker thread of its own. A connection thread
 * that hosts a transaction runs its other commands (outside transactions)
 * on a worker thread (server.c): a write there would wait for the write
 * lock the hosted transaction holds, which only this thread can let go.
 *
 * MongoDB's rules kept here: commands of a transaction carry lsid,
 * txnNumber and autocommit: false, the first also startTransaction: true; a
 * higher txnNumber on the session ends the previous transaction; a command
 * that fails inside a transaction aborts it, and later commands of it get
 * NoSuchTransaction (251) labelled TransientTransactionError;
 * commitTransaction may be retried after it succeeded.
 *
 * Beyond MongoDB (hello's djongo.savepoints): savepoints inside a
 * transaction -- djongoSavepoint, djongoReleaseSavepoint and
 * djongoRollbackToSavepoint, each naming one, sent as commands of the
 * transaction -- are nested engine transactions, as the embedded engine's
 * savepoints are (what Django's nested atomic() blocks and TestCase need).
 * Under a savepoint a failed command (ok 0 or writeErrors) leaves nothing
 * of itself behind and the transaction open, as SQL's ROLLBACK TO expects.
 *
 * Snapshot sessions read outside transactions at one point in time: the
 * first find/aggregate/distinct with readConcern {level: "snapshot"} and
 * no atClusterTime opens a read-only snapshot (on a worker thread of its
 * own) and its reply names the point (atClusterTime, a
 * Timestamp); the session's later reads give that atClusterTime back and
 * run in the same snapshot, so later writes stay invisible to them. A
 * snapshot is kept for mongod's default history window
 * (minSnapshotHistoryWindowInSeconds, 300 s); a read at a point no longer
 * (or never) kept fails with SnapshotTooOld (239).
 * https://www.mongodb.com/docs/manual/reference/read-concern-snapshot/
 *
 * Worker threads are kept for the next use rather than ended (up to
 * POOL_IDLE idle ones).
 *
 * Ownership: the table owns its sessions and its idle workers; a session
 * owns its worker while the transaction is open (a hosted one: the
 * connection thread's host counts it, and outlives it), and its snapshot worker
 * while it has one; a job is the caller's (stack) and lives until its
 * host has run it.
 */
#include <stdio.h>
#include <string.h>

#include "dj_buf.h"
#include "server-private.h"

int64_t dj_now_ms (void); /* engine: wall-clock milliseconds */

enum { JOB_BEGIN, JOB_RUN, JOB_COMMIT, JOB_ABORT, JOB_SAVEPOINT, JOB_RELEASE, JOB_ROLLBACK_TO };
enum { TXN_NONE, TXN_OPEN, TXN_COMMITTED, TXN_ABORTED };

struct worker;

typedef struct {
   int kind;
   const char *db;
   const bson_t *cmd;
   bson_t *reply; /* initialised by the job (not for JOB_BEGIN) */
   bool ok;
   const char *user;  /* the connection's authenticated user (borrowed), or NULL */
   struct worker *w;  /* the transaction it runs in */
   const char *name;  /* JOB_SAVEPOINT, JOB_RELEASE, JOB_ROLLBACK_TO: the savepoint's (borrowed) */
} job_t;

/* A transaction's host (host.c) and its state there. A transaction begun
 * by a command over a connection is hosted by that connection's thread
 * (`hosted`: no thread of its own; the commands that follow over the same
 * connection run at once); a snapshot read's, or one begun where no
 * connection thread can host it, by a worker thread of the pool (one
 * per open transaction, kept for the next after it ends). Only the host's
 * thread touches txn and the begin fields after worker_start; one caller at
 * a time: the session's mutex (or, for an idle worker, the pool) admits one. */
typedef struct worker {
   dj_engine_t *engine;
   struct dj_sessions *table; /* borrowed: the table whose pool it goes back to */
   dj_host_t *host;      /* where its jobs run: a connection thread's (hosted), or its own thread's */
   bool hosted;
   pthread_t thread;     /* (not hosted) its thread */
   dj_engine_txn_t *txn; /* the transaction (its host's thread's), or NULL */
   /* A transaction to begin before the next job runs (worker_start): a
    * transaction's begin rides on its first command. lsid is borrowed from
    * that command (static), the session the transaction is of
    * (dj_engine_txn_set_session), when has_lsid. */
   bool begin;
   bool has_lsid;
   bson_t lsid;
   int64_t txn_number;
   bson_error_t begin_error; /* why the begin failed */
   /* The transaction's savepoints, innermost last (djongoSavepoint): its
    * commands run in the innermost. Only the host's thread changes them;
    * the session's caller reads its count after a job (dj_host_run orders it). */
   dj_savepoints_t sps; /* owned (dj_engine.h) */
   struct worker *next_idle;
} worker_t;

typedef struct session {
   uint8_t id[16];
   int64_t last_use_ms;    /* for $listLocalSessions and the idle timeout */
   int refs;               /* threads between session_get and session_put (guarded by the table's mu) */
   bool ended;             /* endSessions named it: reaped once unused */
   int64_t txn_number;
   int64_t txn_started_ms; /* when the open transaction began */
   int state;
   worker_t *w;        /* owned while state == TXN_OPEN */
   worker_t *snap;     /* owned: the snapshot reads outside transactions run in, or NULL */
   uint32_t snap_t, snap_i;  /* its atClusterTime */
   int64_t snap_started_ms;
   int64_t retry_txn;  /* the last successful retryable write's txnNumber (-1: none) */
   bson_t *retry_reply; /* owned: its reply, or NULL */
   pthread_mutex_t mu; /* one command of the session at a time */
   struct session *next;
} session_t;

struct dj_sessions {
   dj_engine_t *engine;
   struct dj_server *srv; /* borrowed: its cluster time is a snapshot's atClusterTime */
   pthread_mutex_t mu; /* guards list and each session's refs, ended, last_use_ms */
   session_t *list;
   pthread_mutex_t pool_mu; /* guards idle, nidle (apart from mu: reaping aborts under mu) */
   worker_t *idle;          /* owned: workers between transactions */
   int nidle;
};

/* Idle workers kept for the next transactions at most. */
#define POOL_IDLE 8

/* How long a snapshot stays readable (mongod's minSnapshotHistoryWindowInSeconds default). */
#define SNAPSHOT_WINDOW_MS (300 * 1000)

/* A session unused this long is forgotten (hello's logicalSessionTimeoutMinutes). */
#define SESSION_IDLE_MS (30 * 60 * 1000)

/* ---- the worker ------------------------------------------------------------ */

/* Whether cmd is a write command whose every failure dj_sessions_run sees
 * (ok 0, or writeErrors) and so aborts the transaction: insert, update,
 * delete, findAndModify. (bulkWrite reports errors in its cursor.) */
static bool
flat_command (const bson_t *cmd)
{
   static const char *const names[] = {"insert", "update", "delete", "findAndModify", "findandmodify", NULL};
   bson_iter_t it;
   if (!bson_iter_init (&it, cmd) || !bson_iter_next (&it)) {
      return false;
   }
   for (int i = 0; names[i]; i++) {
      if (!strcmp (bson_iter_key (&it), names[i])) {
         return true;
      }
   }
   return false;
}

/* The begin worker_start asked for, on the host's thread before `job`
 * runs (none before an abort: there is nothing to end). */
static bool
worker_begin (worker_t *w, const job_t *job)
{
   w->begin = false;
   if (job->kind == JOB_ABORT) {
      return true;
   }
   memset (&w->begin_error, 0, sizeof w->begin_error);
   /* a snapshot: reads take no lock, the first write takes the writer's
    * place or gets WriteConflict (dj_engine_txn_begin_snapshot) */
   w->txn = dj_engine_txn_begin_snapshot (w->engine, &w->begin_error);
   if (w->txn && w->has_lsid) {
      dj_engine_txn_set_session (w->txn, &w->lsid, w->txn_number);
   }
   w->has_lsid = false;
   return w->txn != NULL;
}

/* Did a command inside a transaction fail (ok: 0 or write errors)? */
static bool
failed (const bson_t *reply, bool ok)
{
   bson_iter_t it;
   return !ok || (bson_iter_init_find (&it, reply, "writeErrors") && BSON_ITER_HOLDS_ARRAY (&it));
}

/* djongoSavepoint, djongoReleaseSavepoint, djongoRollbackToSavepoint: SQL's
 * SAVEPOINT, RELEASE and ROLLBACK TO inside w's transaction. A release
 * commits the savepoint (and those inside it) into its parent; a rollback
 * discards what was written since the savepoint, which stays, empty. */
static bool
savepoint_job (worker_t *w, int kind, const char *name, bson_error_t *error)
{
   if (kind == JOB_SAVEPOINT) {
      return dj_savepoints_begin (&w->sps, w->engine, w->txn, name, error);
   }
   int i = dj_savepoints_find (&w->sps, name);
   if (i < 0) {
      return dj_err (error, DJ_IllegalOperation, "no such savepoint: %s", name);
   }
   /* (a release that fails aborts the transaction, w->txn NULL: with no
    * savepoint left open, dj_sessions_run ends it as aborted) */
   return kind == JOB_RELEASE ? dj_savepoints_release (&w->sps, i, &w->txn, error)
                              : dj_savepoints_rollback_to (&w->sps, i, w->engine, w->txn, error);
}

/* A job, on its transaction's host thread (dj_host_run). */
static void
run_job (void *arg)
{
   job_t *job = arg;
   worker_t *w = job->w;
   if (w->begin && !worker_begin (w, job)) {
      if (job->kind != JOB_BEGIN) {
         bson_init (job->reply);
         dj_error_append_reply (&w->begin_error, job->reply);
      }
      job->ok = false;
      return;
   }
   dj_engine_txn_t *t = w->txn;
   bson_error_t err = {0};
   switch (job->kind) {
   case JOB_BEGIN:
      job->ok = true;
      break;
   case JOB_RUN:
      if (w->sps.n) {
         /* under a savepoint a failure leaves the transaction open (the
          * client rolls back to the savepoint, or goes on), so the command
          * must leave nothing behind: it runs in a nested transaction of
          * its own, dropped when it failed -- writeErrors too, which keep
          * the writes before them outside a transaction */
         dj_engine_txn_t *stmt = dj_engine_txn_begin (w->engine, dj_savepoints_top (&w->sps, t), &err);
         if (stmt) {
            dj_engine_txn_set_flat (stmt, true);
            job->ok = dj_engine_run_command_as (w->engine, stmt, job->user, job->db, job->cmd, job->reply);
            if (failed (job->reply, job->ok)) {
               dj_engine_txn_abort (stmt);
               break;
            }
            if (dj_engine_txn_commit (stmt, &err)) {
               break;
            }
            bson_destroy (job->reply);
         }
         bson_init (job->reply);
         dj_error_append_reply (&err, job->reply);
         job->ok = false;
         break;
      }
      /* a write command's failure (ok 0 or writeErrors) aborts the
       * transaction (dj_sessions_run): it needs no nested
       * transaction to undo its own writes */
      dj_engine_txn_set_flat (t, flat_command (job->cmd));
      job->ok = dj_engine_run_command_as (w->engine, t, job->user, job->db, job->cmd, job->reply);
      break;
   case JOB_SAVEPOINT:
   case JOB_RELEASE:
   case JOB_ROLLBACK_TO:
      bson_init (job->reply);
      job->ok = savepoint_job (w, job->kind, job->name, &err);
      if (job->ok) {
         BSON_APPEND_DOUBLE (job->reply, "ok", 1.0);
      } else {
         dj_error_append_reply (&err, job->reply);
      }
      break;
   case JOB_COMMIT:
      bson_init (job->reply);
      job->ok = dj_engine_txn_commit (t, &err); /* (its savepoints' first) */
      w->txn = NULL;
      dj_savepoints_drop (&w->sps, 0);
      if (job->ok) {
         BSON_APPEND_DOUBLE (job->reply, "ok", 1.0);
      } else {
         dj_error_append_reply (&err, job->reply);
      }
      break;
   default:
      if (t) { /* NULL: its begin failed, or never came */
         dj_engine_txn_abort (t); /* (and its savepoints') */
      }
      w->txn = NULL;
      dj_savepoints_drop (&w->sps, 0);
      bson_init (job->reply);
      BSON_APPEND_DOUBLE (job->reply, "ok", 1.0);
      job->ok = true;
   }
}

static void *
worker_main (void *arg)
{
   worker_t *w = arg;
   dj_host_enter (w->host);
   dj_host_loop (w->host);
   dj_host_close (w->host);
   return NULL;
}

static bool
worker_do (worker_t *w, int kind, const char *user, const char *db, const bson_t *cmd, bson_t *reply)
{
   job_t job = {kind, db, cmd, reply, false, user, w, NULL};
   dj_host_run (w->host, run_job, &job);
   return job.ok;
}

/* Ends w's thread (between transactions) and frees it. */
static void
worker_stop (worker_t *w)
{
   dj_host_quit (w->host);
   pthread_join (w->thread, NULL); /* (the thread freed its host) */
   bson_free (w);
}

/* Gives w (between transactions) back to its table's pool, or ends it
 * when the pool is full; a hosted one is freed and its host let go. */
static void
worker_put (worker_t *w)
{
   if (w->hosted) {
      dj_host_t *h = w->host;
      bson_free (w);
      dj_host_hold (h, -1); /* (h may be gone after: a closed connection's thread waits for this) */
      return;
   }
   dj_sessions_t *s = w->table;
   w->begin = w->has_lsid = false; /* a begin that never came (the transaction failed before its first job) */
   pthread_mutex_lock (&s->pool_mu);
   bool kept = s->nidle < POOL_IDLE;
   if (kept) {
      w->next_idle = s->idle;
      s->idle = w;
      s->nidle++;
   }
   pthread_mutex_unlock (&s->pool_mu);
   if (!kept) {
      worker_stop (w);
   }
}

/* A worker thread of the pool: an idle one, else a new thread. */
static worker_t *
worker_thread (dj_sessions_t *s, bson_error_t *error)
{
   pthread_mutex_lock (&s->pool_mu);
   worker_t *w = s->idle;
   if (w) {
      s->idle = w->next_idle;
      s->nidle--;
   }
   pthread_mutex_unlock (&s->pool_mu);
   if (w) {
      return w;
   }
   w = bson_malloc0 (sizeof *w);
   w->engine = s->engine;
   w->table = s;
   w->host = dj_host_new (false);
   if (pthread_create (&w->thread, NULL, worker_main, w) != 0) {
      dj_err (error, DJ_InternalError, "cannot start a transaction thread");
      dj_host_close (w->host);
      bson_free (w);
      return NULL;
   }
   return w;
}

/* A host for a transaction. The transaction begins on the host's thread
 * before its first job runs: `now` begins it here (a snapshot read's,
 * whose point in time is taken right after, on a worker thread), else the
 * first job carries the begin and, on a connection thread, the thread
 * itself hosts it. lsid (the session's document, borrowed until that job
 * is done; NULL: none) is set on it. */
static worker_t *
worker_start (dj_sessions_t *s, bool now, const bson_t *lsid, int64_t txn_number, bson_error_t *error)
{
   dj_host_t *self = dj_host_self ();
   worker_t *w;
   if (!now && dj_host_fd (self) >= 0) {
      w = bson_malloc0 (sizeof *w);
      w->engine = s->engine;
      w->table = s;
      w->host = self;
      w->hosted = true;
      dj_host_hold (self, 1);
   } else if (!(w = worker_thread (s, error))) {
      return NULL;
   }
   w->begin = true;
   w->has_lsid = lsid && bson_init_static (&w->lsid, bson_get_data (lsid), lsid->len);
   w->txn_number = txn_number;
   if (now && !worker_do (w, JOB_BEGIN, NULL, NULL, NULL, NULL)) {
      *error = w->begin_error;
      worker_put (w);
      return NULL;
   }
   return w;
}

/* Commits or aborts, then gives the worker back to the pool. */
static bool
worker_end (worker_t *w, bool commit, bson_t *reply)
{
   bson_t ignored;
   bool ok = worker_do (w, commit ? JOB_COMMIT : JOB_ABORT, NULL, NULL, NULL, reply ? reply : &ignored);
   if (!reply) {
      bson_destroy (&ignored);
   }
   worker_put (w);
   return ok;
}

bool
dj_sessions_call (dj_sessions_t *s, void (*fn) (void *), void *arg)
{
   bson_error_t ignored;
   worker_t *w = worker_thread (s, &ignored);
   if (!w) {
      return false;
   }
   dj_host_run (w->host, fn, arg);
   worker_put (w);
   return true;
}

/* ---- the table ----------------------------------------------------------- */

dj_sessions_t *
dj_sessions_new (dj_engine_t *engine, struct dj_server *srv)
{
   dj_sessions_t *s = bson_malloc0 (sizeof *s);
   s->engine = engine;
   s->srv = srv;
   pthread_mutex_init (&s->mu, NULL);
   pthread_mutex_init (&s->pool_mu, NULL);
   return s;
}

static void
session_abort (session_t *ss)
{
   if (ss->state == TXN_OPEN) {
      worker_end (ss->w, false, NULL);
      ss->w = NULL;
      ss->state = TXN_ABORTED;
   }
}

static void
snapshot_drop (session_t *ss)
{
   if (ss->snap) {
      worker_end (ss->snap, false, NULL);
      ss->snap = NULL;
   }
}

static void
session_free (session_t *ss)
{
   bson_destroy (ss->retry_reply);
   pthread_mutex_destroy (&ss->mu);
   bson_free (ss);
}

void
dj_sessions_destroy (dj_sessions_t *s)
{
   if (!s) {
      return;
   }
   for (session_t *ss = s->list, *next; ss; ss = next) {
      next = ss->next;
      session_abort (ss);
      snapshot_drop (ss);
      session_free (ss);
   }
   for (worker_t *w = s->idle, *next; w; w = next) {
      next = w->next_idle;
      worker_stop (w);
   }
   pthread_mutex_destroy (&s->pool_mu);
   pthread_mutex_destroy (&s->mu);
   bson_free (s);
}

void
dj_sessions_reap (dj_sessions_t *s, int64_t lifetime_ms)
{
   int64_t now = dj_now_ms ();
   /* transactions past their lifetime, aborted outside the table's lock:
    * ending one waits for its host, a connection thread that may itself be
    * waiting for the table */
   session_t **due = NULL;
   size_t n = 0, cap = 0;
   pthread_mutex_lock (&s->mu);
   for (session_t *ss = s->list; ss; ss = ss->next) {
      if (ss->state == TXN_OPEN && now - ss->txn_started_ms > lifetime_ms) {
         DJ_GROW (due, n, cap, 8);
         ss->refs++; /* keeps it listed until looked at */
         due[n++] = ss;
      }
   }
   pthread_mutex_unlock (&s->mu);
   for (size_t i = 0; i < n; i++) {
      session_t *ss = due[i];
      /* a session running a command is left alone; it is reaped next time */
      if (pthread_mutex_trylock (&ss->mu) == 0) {
         if (ss->state == TXN_OPEN && now - ss->txn_started_ms > lifetime_ms) {
            session_abort (ss);
         }
         pthread_mutex_unlock (&ss->mu);
      }
      pthread_mutex_lock (&s->mu);
      ss->refs--;
      pthread_mutex_unlock (&s->mu);
   }
   bson_free (due);
   pthread_mutex_lock (&s->mu);
   for (session_t **pp = &s->list, *ss; (ss = *pp);) {
      /* a snapshot past the history window (or at shutdown) is let go (its
       * worker thread never waits for the table) */
      if (ss->snap && (lifetime_ms < 0 || ss->ended || now - ss->snap_started_ms > SNAPSHOT_WINDOW_MS) &&
          pthread_mutex_trylock (&ss->mu) == 0) {
         snapshot_drop (ss);
         pthread_mutex_unlock (&ss->mu);
      }
      /* ended or idle, and nobody between session_get and session_put:
       * no other thread can reach it once unlinked (refs is 0 under mu) */
      if (ss->refs == 0 && ss->state != TXN_OPEN && !ss->snap && (ss->ended || now - ss->last_use_ms > SESSION_IDLE_MS)) {
         *pp = ss->next;
         session_free (ss);
      } else {
         pp = &ss->next;
      }
   }
   pthread_mutex_unlock (&s->mu);
}

int
dj_sessions_active (dj_sessions_t *s)
{
   int n = 0;
   pthread_mutex_lock (&s->mu);
   for (session_t *ss = s->list; ss; ss = ss->next) {
      n += ss->state == TXN_OPEN;
   }
   pthread_mutex_unlock (&s->mu);
   return n;
}

/* The 16-byte UUID of an lsid document {id: UUID}. */
static bool
lsid_of (const bson_iter_t *lsid, uint8_t out[16])
{
   bson_iter_t f;
   bson_subtype_t st;
   uint32_t len;
   const uint8_t *data;
   if (!BSON_ITER_HOLDS_DOCUMENT (lsid) || !bson_iter_recurse (lsid, &f) || !bson_iter_find (&f, "id") ||
       !BSON_ITER_HOLDS_BINARY (&f)) {
      return false;
   }
   bson_iter_binary (&f, &st, &len, &data);
   if (len != 16) {
      return false;
   }
   memcpy (out, data, 16);
   return true;
}

/* Finds (or creates) a session and locks it; session_put() gives it back. */
static session_t *
session_get (dj_sessions_t *s, const uint8_t id[16], bool create)
{
   pthread_mutex_lock (&s->mu);
   session_t *ss = s->list;
   while (ss && memcmp (ss->id, id, 16)) {
      ss = ss->next;
   }
   if (!ss && create) {
      ss = bson_malloc0 (sizeof *ss);
      memcpy (ss->id, id, 16);
      ss->retry_txn = -1;
      pthread_mutex_init (&ss->mu, NULL);
      ss->next = s->list;
      s->list = ss;
   }
   if (ss) {
      ss->refs++; /* keeps the reaper off it until session_put */
      ss->last_use_ms = dj_now_ms ();
      if (create) {
         ss->ended = false; /* a driver may reuse an lsid it ended */
      }
   }
   pthread_mutex_unlock (&s->mu);
   if (ss) {
      dj_host_lock (&ss->mu); /* (its holder may be waiting for this thread's transactions) */
   }
   return ss;
}

static void
session_put (dj_sessions_t *s, session_t *ss)
{
   pthread_mutex_unlock (&ss->mu);
   pthread_mutex_lock (&s->mu);
   ss->refs--;
   pthread_mutex_unlock (&s->mu);
}

static void error_reply (bson_t *reply, uint32_t code, bool transient, const char *fmt, int64_t n);

/* A retryable write's session and txnNumber. */
static bool
retry_key (const bson_t *cmd, uint8_t id[16], int64_t *txn)
{
   bson_iter_t it;
   if (!bson_iter_init_find (&it, cmd, "lsid") || !lsid_of (&it, id) || !bson_iter_init_find (&it, cmd, "txnNumber") ||
       !BSON_ITER_HOLDS_NUMBER (&it)) {
      return false;
   }
   *txn = bson_iter_as_int64 (&it);
   return true;
}

/* mongod keeps each executed statement of a retryable write with its
 * session, so a retry does not apply it twice.
 * https://www.mongodb.com/docs/manual/core/retryable-writes/
 * Here a command either runs whole or not at all (the failCommand fail
 * point fails before, or adds a writeConcernError after), so the
 * command's reply is what is kept: the last successful one per session. */
bool
dj_sessions_retry_lookup (dj_sessions_t *s, const bson_t *cmd, bson_t *reply)
{
   uint8_t id[16];
   int64_t txn;
   bool found = false;
   if (!retry_key (cmd, id, &txn)) {
      return false;
   }
   session_t *ss = session_get (s, id, false);
   if (ss) {
      if (ss->retry_reply && ss->retry_txn == txn) {
         bson_copy_to (ss->retry_reply, reply);
         found = true;
      } else if (txn < ss->retry_txn || txn < ss->txn_number) {
         /* a number below the session's newest is a statement of a write
          * already superseded: mongod refuses it rather than run it
          * https://github.com/mongodb/specifications/blob/master/source/retryable-writes/retryable-writes.md */
         error_reply (reply, DJ_TransactionTooOld, false, "txnNumber %lld is older than the session's", txn);
         found = true;
      }
      session_put (s, ss);
   }
   return found;
}

void
dj_sessions_retry_record (dj_sessions_t *s, const bson_t *cmd, const bson_t *reply)
{
   uint8_t id[16];
   int64_t txn;
   bson_iter_t it;
   if (!retry_key (cmd, id, &txn) || !bson_iter_init_find (&it, reply, "ok") || bson_iter_as_double (&it) != 1.0 ||
       bson_has_field (reply, "writeErrors")) {
      return; /* failed statements run again when retried, as on mongod */
   }
   session_t *ss = session_get (s, id, true);
   bson_destroy (ss->retry_reply);
   ss->retry_reply = bson_copy (reply);
   ss->retry_txn = txn;
   session_put (s, ss);
}

void
dj_sessions_kill_all (dj_sessions_t *s)
{
   /* collect the ids first: session_get takes the table's lock itself */
   uint8_t (*ids)[16] = NULL;
   size_t n = 0, cap = 0;
   pthread_mutex_lock (&s->mu);
   for (session_t *ss = s->list; ss; ss = ss->next) {
      if (n == cap) {
         cap = cap ? 2 * cap : 16;
         ids = bson_realloc (ids, cap * sizeof *ids);
      }
      memcpy (ids[n++], ss->id, 16);
   }
   pthread_mutex_unlock (&s->mu);
   for (size_t i = 0; i < n; i++) {
      session_t *ss = session_get (s, ids[i], false);
      if (ss) {
         session_abort (ss);
         session_put (s, ss);
      }
   }
   bson_free (ids);
}

void
dj_sessions_end (dj_sessions_t *s, const bson_t *lsids)
{
   bson_iter_t it;
   uint8_t id[16];
   bson_iter_init (&it, lsids);
   while (bson_iter_next (&it)) {
      if (!lsid_of (&it, id)) {
         continue;
      }
      session_t *ss = session_get (s, id, false);
      if (ss) {
         session_abort (ss);
         snapshot_drop (ss);
         pthread_mutex_lock (&s->mu);
         ss->ended = true;
         pthread_mutex_unlock (&s->mu);
         session_put (s, ss);
      }
   }
}

/* fmt takes one %lld: the txnNumber */
static void
error_reply (bson_t *reply, uint32_t code, bool transient, const char *fmt, int64_t n)
{
   bson_error_t e;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
   dj_err (&e, code, fmt, (long long) n);
#pragma GCC diagnostic pop
   bson_init (reply);
   dj_error_append_reply (&e, reply);
   if (transient) {
      bson_t labels;
      BSON_APPEND_ARRAY_BEGIN (reply, "errorLabels", &labels);
      BSON_APPEND_UTF8 (&labels, "0", "TransientTransactionError");
      bson_append_array_end (reply, &labels);
   }
}

/* A read with readConcern {level: "snapshot"} outside a transaction (the
 * engine refuses that level for commands other than these):
 * has_at, at_t and at_i receive its atClusterTime. */
static bool
snapshot_read (const char *name, const bson_t *cmd, bool *has_at, uint32_t *at_t, uint32_t *at_i)
{
   bson_iter_t it, rc;
   *has_at = false;
   if (strcmp (name, "find") && strcmp (name, "aggregate") && strcmp (name, "distinct")) {
      return false;
   }
   if (!bson_iter_init_find (&it, cmd, "readConcern") || !BSON_ITER_HOLDS_DOCUMENT (&it) || !bson_iter_recurse (&it, &rc) ||
       !bson_iter_find (&rc, "level") || !BSON_ITER_HOLDS_UTF8 (&rc) || strcmp (bson_iter_utf8 (&rc, NULL), "snapshot")) {
      return false;
   }
   bson_iter_recurse (&it, &rc);
   if (bson_iter_find (&rc, "atClusterTime") && BSON_ITER_HOLDS_TIMESTAMP (&rc)) {
      bson_iter_timestamp (&rc, at_t, at_i);
      *has_at = true;
   }
   return true;
}

/* The reply with the snapshot's atClusterTime where mongod puts it:
 * cursor.atClusterTime for find and aggregate, atClusterTime for distinct. */
static void
add_cluster_time (bson_t *reply, uint32_t t, uint32_t i)
{
   bson_t out = BSON_INITIALIZER;
   bson_iter_t it;
   bool in_cursor = bson_iter_init_find (&it, reply, "cursor") && BSON_ITER_HOLDS_DOCUMENT (&it);
   bson_iter_init (&it, reply);
   while (bson_iter_next (&it)) {
      if (in_cursor && !strcmp (bson_iter_key (&it), "cursor")) {
         bson_t cur;
         bson_iter_t c;
         BSON_APPEND_DOCUMENT_BEGIN (&out, "cursor", &cur);
         bson_iter_recurse (&it, &c);
         while (bson_iter_next (&c)) {
            bson_append_iter (&cur, NULL, 0, &c);
         }
         BSON_APPEND_TIMESTAMP (&cur, "atClusterTime", t, i);
         bson_append_document_end (&out, &cur);
      } else {
         bson_append_iter (&out, NULL, 0, &it);
      }
   }
   if (!in_cursor) {
      BSON_APPEND_TIMESTAMP (&out, "atClusterTime", t, i);
   }
   bson_destroy (reply);
   bson_steal (reply, &out);
}

/* Runs a snapshot read for session `id`: a read without atClusterTime
 * opens the session's snapshot (replacing the one it had), a read with one
 * runs in the snapshot of that time. */
static void
snapshot_run (dj_sessions_t *s, const uint8_t id[16], const char *user, const char *db, const bson_t *cmd, bool has_at,
              uint32_t at_t, uint32_t at_i, bson_t *reply)
{
   session_t *ss = session_get (s, id, true);
   if (!has_at) {
      bson_error_t err = {0};
      snapshot_drop (ss);
      if (!(ss->snap = worker_start (s, true, NULL, 0, &err))) {
         bson_init (reply);
         dj_error_append_reply (&err, reply);
         session_put (s, ss);
         return;
      }
      /* the snapshot stands at the cluster time of the last write, the
       * operationTime replies carry: a client may name it again */
      dj_cluster_time_now (s->srv, &ss->snap_t, &ss->snap_i);
      ss->snap_started_ms = dj_now_ms ();
   } else if (!ss->snap || ss->snap_t != at_t || ss->snap_i != at_i) {
      error_reply (reply, 239, false, "Read timestamp is older than the oldest available timestamp (%lld)",
                   (long long) at_t);
      session_put (s, ss);
      return;
   }
   bool ok = worker_do (ss->snap, JOB_RUN, user, db, cmd, reply);
   if (ok) {
      add_cluster_time (reply, ss->snap_t, ss->snap_i);
   }
   session_put (s, ss);
}

/* The commands mongod runs inside a multi-document transaction (its
 * txnCmdAllowlist): CRUD, create / createIndexes, cursors, and the
 * transaction's own end. Any other command carrying autocommit: false --
 * dropDatabase, drop, renameCollection, dropIndexes, count, explain... -- is
 * refused with OperationNotSupportedInTransaction before it touches the
 * session, so nothing runs and no transaction starts.
 * https://www.mongodb.com/docs/manual/core/transactions-operations/ */
static bool
allowed_in_txn (const char *name)
{
   static const char *const allowed[] = {"abortTransaction", "aggregate", "bulkWrite", "commitTransaction", "create",
                                         "createIndexes", "delete", "distinct", "find", "findAndModify",
                                         "findandmodify", "getMore", "insert", "killCursors", "update"};
   for (size_t k = 0; k < sizeof allowed / sizeof allowed[0]; k++) {
      if (!strcmp (allowed[k], name)) {
         return true;
      }
   }
   return false;
}

/* An aggregate's stage a transaction cannot run (the manual's list:
 * "excluding the following stages"), or NULL.
 * https://www.mongodb.com/docs/manual/core/transactions-operations/#crud-operations */
static const char *
stage_refused_in_txn (const char *name, const bson_t *cmd)
{
   static const char *const refused[] = {"$collStats", "$currentOp",      "$indexStats", "$listSessions",
                                         "$merge",     "$out",            "$planCacheStats"};
   return strcmp (name, "aggregate") ? NULL : dj_pipeline_stage_among (cmd, refused, sizeof refused / sizeof refused[0]);
}

/* Does the collection a createIndexes names exist outside any transaction
 * (in the committed catalog, which a transaction's own creations are not
 * yet part of)? A read of its own: LMDB readers never wait for the
 * transaction's writer. */
static bool
committed_collection (dj_engine_t *engine, const char *db, const bson_t *cmd)
{
   bson_iter_t it;
   if (!bson_iter_init_find (&it, cmd, "createIndexes") || !BSON_ITER_HOLDS_UTF8 (&it)) {
      return false;
   }
   bson_t q = BSON_INITIALIZER, filter, reply;
   BSON_APPEND_INT32 (&q, "listCollections", 1);
   BSON_APPEND_DOCUMENT_BEGIN (&q, "filter", &filter);
   BSON_APPEND_UTF8 (&filter, "name", bson_iter_utf8 (&it, NULL));
   bson_append_document_end (&q, &filter);
   BSON_APPEND_BOOL (&q, "nameOnly", true);
   bool found = false;
   bson_iter_t f;
   if (dj_engine_run_command (engine, db, &q, &reply) && bson_iter_init (&f, &reply) &&
       bson_iter_find_descendant (&f, "cursor.firstBatch.0", &f)) {
      found = true;
   }
   bson_destroy (&reply);
   bson_destroy (&q);
   return found;
}

/* djongo-server's savepoint commands (hello's djongo.savepoints): the job
 * each is, or -1. MongoDB has no savepoints; these give djongo's driver
 * SQL's SAVEPOINT, RELEASE and ROLLBACK TO inside a transaction, as the
 * embedded engine has them, so that Django's nested atomic() blocks (and
 * TestCase, which wraps each test in one) work against this server. */
static int
savepoint_kind (const char *name)
{
   return !strcmp (name, "djongoSavepoint")             ? JOB_SAVEPOINT
          : !strcmp (name, "djongoReleaseSavepoint")    ? JOB_RELEASE
          : !strcmp (name, "djongoRollbackToSavepoint") ? JOB_ROLLBACK_TO
                                                        : -1;
}

/* The answer to a savepoint command outside a transaction: true. */
static bool
savepoint_outside (const char *name, bson_t *reply)
{
   bson_error_t e;
   dj_err (&e, DJ_InvalidOptions,
           "%s runs only inside a multi-document transaction (lsid, txnNumber, autocommit: false)", name);
   bson_init (reply);
   dj_error_append_reply (&e, reply);
   return true;
}

/* Runs a savepoint command (kind: savepoint_kind's, name: the command's)
 * in w's transaction. */
static bool
savepoint_do (worker_t *w, int kind, const char *name, const bson_t *cmd, bson_t *reply)
{
   bson_iter_t it;
   uint32_t len = 0;
   /* (a NUL inside the name would make it another's: names compare as C strings) */
   if (!bson_iter_init (&it, cmd) || !bson_iter_next (&it) || !BSON_ITER_HOLDS_UTF8 (&it) ||
       !bson_iter_utf8 (&it, &len) || !len || strlen (bson_iter_utf8 (&it, NULL)) != len) {
      bson_error_t e;
      dj_err (&e, DJ_TypeMismatch, "%s needs the savepoint's name, a non-empty string without NUL", name);
      bson_init (reply);
      dj_error_append_reply (&e, reply);
      return false;
   }
   job_t job = {kind, NULL, cmd, reply, false, NULL, w, bson_iter_utf8 (&it, NULL)};
   dj_host_run (w->host, run_job, &job);
   return job.ok;
}

bool
dj_sessions_run (dj_sessions_t *s, const char *user, const char *db, const char *name, const bson_t *cmd, bson_t *reply)
{
   bson_iter_t it;
   uint8_t id[16];
   int64_t txn = -1;
   bool has_autocommit = false, autocommit = true, start = false;
   bool commit = !strcmp (name, "commitTransaction"), abort_ = !strcmp (name, "abortTransaction");
   int sp = savepoint_kind (name);

   if (!bson_iter_init_find (&it, cmd, "lsid") || !lsid_of (&it, id)) {
      if (sp >= 0) {
         return savepoint_outside (name, reply);
      }
      if (commit || abort_) {
         error_reply (reply, DJ_InvalidOptions, false, "commitTransaction and abortTransaction need a session (lsid) %lld",
                     0);
         return true;
      }
      return false;
   }
   if (bson_iter_init_find (&it, cmd, "txnNumber") && BSON_ITER_HOLDS_NUMBER (&it)) {
      txn = bson_iter_as_int64 (&it);
   }
   if (bson_iter_init_find (&it, cmd, "autocommit")) {
      has_autocommit = true;
      autocommit = bson_iter_as_bool (&it);
   }
   if (bson_iter_init_find (&it, cmd, "startTransaction")) {
      start = bson_iter_as_bool (&it);
   }
   bool has_at;
   uint32_t at_t = 0, at_i = 0;
   if (!has_autocommit && !commit && !abort_ && snapshot_read (name, cmd, &has_at, &at_t, &at_i)) {
      snapshot_run (s, id, user, db, cmd, has_at, at_t, at_i, reply);
      return true;
   }
   if (!has_autocommit && sp >= 0) {
      return savepoint_outside (name, reply);
   }
   if (!has_autocommit && !commit && !abort_) {
      /* an ordinary command of a session (retryable writes included): the
       * session is known from now on ($listLocalSessions) */
      session_put (s, session_get (s, id, true));
      return false;
   }
   if (has_autocommit && autocommit) {
      error_reply (reply, DJ_InvalidOptions, false, "autocommit must be false (txnNumber %lld)", txn);
      return true;
   }
   if (txn < 0) {
      error_reply (reply, DJ_InvalidOptions, false, "a transaction needs a txnNumber (got %lld)", txn);
      return true;
   }
   if (sp < 0 && !allowed_in_txn (name)) {
      bson_error_t e;
      if (!strcmp (name, "count")) { /* mongod points to countDocuments' way */
         dj_err (&e, DJ_OperationNotSupportedInTransaction,
                 "Cannot run 'count' in a multi-document transaction. Please see "
                 "http://dochub.mongodb.org/core/transaction-count for a recommended alternative.");
      } else {
         dj_err (&e, DJ_OperationNotSupportedInTransaction, "Cannot run '%s' in a multi-document transaction.", name);
      }
      bson_init (reply);
      dj_error_append_reply (&e, reply);
      return true;
   }
   session_t *ss = session_get (s, id, true);
   if (start) {
      if (ss->state == TXN_OPEN && ss->txn_number == txn) {
         error_reply (reply, DJ_ConflictingOperationInProgress, false,
                      "Transaction with txnNumber %lld has already been started", txn);
         goto done;
      }
      if (txn < ss->txn_number) {
         error_reply (reply, DJ_TransactionTooOld, false, "txnNumber %lld is older than the session's", txn);
         goto done;
      }
      session_abort (ss); /* a newer transaction ends the old one */
      bson_error_t err = {0};
      bson_t lsid;
      uint32_t len;
      const uint8_t *data;
      bool has_lsid = false;
      if (bson_iter_init_find (&it, cmd, "lsid") && BSON_ITER_HOLDS_DOCUMENT (&it)) {
         bson_iter_document (&it, &len, &data);
         has_lsid = bson_init_static (&lsid, data, len);
      }
      /* begun with this command's job, the session set on it before the
       * command runs */
      if (!(ss->w = worker_start (s, false, has_lsid ? &lsid : NULL, txn, &err))) {
         ss->state = TXN_ABORTED;
         ss->txn_number = txn;
         bson_init (reply);
         dj_error_append_reply (&err, reply);
         goto done;
      }
      ss->state = TXN_OPEN;
      ss->txn_number = txn;
      ss->txn_started_ms = dj_now_ms ();
   } else if (txn != ss->txn_number || ss->state == TXN_NONE) {
      error_reply (reply, DJ_NoSuchTransaction, true, "Transaction with txnNumber %lld is not open", txn);
      goto done;
   }
   if (commit) {
      if (ss->state == TXN_COMMITTED) {
         bson_init (reply); /* a retried commit */
         BSON_APPEND_DOUBLE (reply, "ok", 1.0);
      } else if (ss->state != TXN_OPEN) {
         error_reply (reply, DJ_NoSuchTransaction, true, "Transaction %lld has been aborted", txn);
      } else {
         bool ok = worker_end (ss->w, true, reply);
         ss->w = NULL;
         ss->state = ok ? TXN_COMMITTED : TXN_ABORTED;
      }
      goto done;
   }
   if (abort_) {
      if (ss->state == TXN_COMMITTED) {
         error_reply (reply, DJ_TransactionCommitted, false, "Transaction %lld has been committed", txn);
      } else if (ss->state != TXN_OPEN) {
         error_reply (reply, DJ_NoSuchTransaction, true, "Transaction %lld has been aborted", txn);
      } else {
         worker_end (ss->w, false, reply);
         ss->w = NULL;
         ss->state = TXN_ABORTED;
      }
      goto done;
   }
   if (ss->state == TXN_COMMITTED) {
      error_reply (reply, DJ_TransactionCommitted, false, "Transaction %lld has been committed", txn);
      goto done;
   }
   if (ss->state != TXN_OPEN) {
      error_reply (reply, DJ_NoSuchTransaction, true, "Transaction %lld has been aborted", txn);
      goto done;
   }
   bool ok;
   const char *stage = stage_refused_in_txn (name, cmd);
   if (!strcmp (name, "createIndexes") && committed_collection (s->engine, db, cmd)) {
      /* indexes in a transaction only on a collection it creates: "a
       * non-existing collection ... or a new empty collection created
       * earlier in the same transaction"; an index on one that exists
       * outside it is refused and the transaction aborted
       * https://www.mongodb.com/docs/manual/core/transactions/#create-collections-and-indexes-in-a-transaction */
      bson_error_t e;
      bson_iter_init_find (&it, cmd, "createIndexes"); /* a string: committed_collection checked */
      dj_err (&e, DJ_OperationNotSupportedInTransaction,
              "Cannot create new indexes on existing collection %s.%s in a multi-document transaction.", db,
              bson_iter_utf8 (&it, NULL));
      bson_init (reply);
      dj_error_append_reply (&e, reply);
      ok = false;
   } else if (stage) {
      /* refused as the pipeline is parsed, inside the transaction: the
       * failure aborts it, as any failed command of it does */
      bson_error_t e;
      dj_err (&e, DJ_OperationNotSupportedInTransaction,
              "Stage not supported inside of a multi-document transaction: %s", stage);
      bson_init (reply);
      dj_error_append_reply (&e, reply);
      ok = false;
   } else if (bson_has_field (cmd, "writeConcern")) {
      /* a transaction's write concern is commitTransaction's alone; the
       * failure aborts the transaction, as any failed command of it does
       * https://www.mongodb.com/docs/manual/core/transactions/#transactions-and-write-concern */
      error_reply (reply, DJ_InvalidOptions, false,
                   "writeConcern is not allowed within a multi-statement transaction (txnNumber %lld)", txn);
      ok = false;
   } else if (sp >= 0) {
      ok = savepoint_do (ss->w, sp, name, cmd, reply);
   } else {
      ok = worker_do (ss->w, JOB_RUN, user, db, cmd, reply);
   }
   bool conflict = bson_iter_init_find (&it, reply, "code") && bson_iter_as_int64 (&it) == DJ_WriteConflict;
   if (failed (reply, ok) && (!ss->w->sps.n || conflict)) {
      /* MongoDB aborts a transaction whose command failed; a write
       * conflict is worth retrying from the start, which the label says.
       * Under a savepoint the failed command left nothing behind (it ran
       * in a nested transaction of its own) and the transaction stays
       * open, as SQL's does, for the client to roll back to the savepoint
       * -- but not after a write conflict: its snapshot cannot write. */
      worker_end (ss->w, false, NULL);
      ss->w = NULL;
      ss->state = TXN_ABORTED;
      if (conflict && !bson_has_field (reply, "errorLabels")) {
         bson_t labels;
         BSON_APPEND_ARRAY_BEGIN (reply, "errorLabels", &labels);
         BSON_APPEND_UTF8 (&labels, "0", "TransientTransactionError");
         bson_append_array_end (reply, &labels);
      }
   }
done:
   session_put (s, ss);
   return true;
}

/* $listLocalSessions: the sessions this server has seen and not yet
 * forgotten (ended ones excluded), as MongoDB lists its in-memory cache.
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/listLocalSessions/
 * The stage becomes a $documents stage of those sessions, so the rest of
 * the pipeline runs in the engine as usual. */
bool
dj_sessions_rewrite_list (dj_sessions_t *s, const bson_t *cmd, bson_t *out)
{
   bson_iter_t it, st, first;
   if (!bson_iter_init_find (&it, cmd, "pipeline") || !BSON_ITER_HOLDS_ARRAY (&it) || !bson_iter_recurse (&it, &st) ||
       !bson_iter_next (&st) || !BSON_ITER_HOLDS_DOCUMENT (&st) || !bson_iter_recurse (&st, &first) ||
       !bson_iter_next (&first) || strcmp (bson_iter_key (&first), "$listLocalSessions")) {
      return false;
   }
   static const uint8_t no_user[32] = {0}; /* uid: the hash of the (absent) user */
   bson_init (out);
   bson_iter_init (&it, cmd);
   while (bson_iter_next (&it)) {
      if (strcmp (bson_iter_key (&it), "pipeline")) {
         bson_append_iter (out, NULL, 0, &it);
         continue;
      }
      bson_t pipe, stage, docs, doc, id;
      BSON_APPEND_ARRAY_BEGIN (out, "pipeline", &pipe);
      BSON_APPEND_DOCUMENT_BEGIN (&pipe, "0", &stage);
      BSON_APPEND_ARRAY_BEGIN (&stage, "$documents", &docs);
      pthread_mutex_lock (&s->mu);
      int n = 0;
      for (session_t *ss = s->list; ss; ss = ss->next) {
         if (ss->ended) {
            continue;
         }
         char key[16];
         snprintf (key, sizeof key, "%d", n++);
         BSON_APPEND_DOCUMENT_BEGIN (&docs, key, &doc);
         BSON_APPEND_DOCUMENT_BEGIN (&doc, "_id", &id);
         bson_append_binary (&id, "id", 2, BSON_SUBTYPE_UUID, ss->id, 16);
         bson_append_binary (&id, "uid", 3, BSON_SUBTYPE_BINARY, no_user, sizeof no_user);
         bson_append_document_end (&doc, &id);
         BSON_APPEND_DATE_TIME (&doc, "lastUse", ss->last_use_ms);
         bson_append_document_end (&docs, &doc);
      }
      pthread_mutex_unlock (&s->mu);
      bson_append_array_end (&stage, &docs);
      bson_append_document_end (&pipe, &stage);
      /* the stages after $listLocalSessions, renumbered */
      bson_iter_t rest;
      bson_iter_recurse (&it, &rest);
      bson_iter_next (&rest);
      for (int i = 1; bson_iter_next (&rest); i++) {
         char key[16];
         snprintf (key, sizeof key, "%d", i);
         bson_append_value (&pipe, key, -1, bson_iter_value (&rest));
      }
      bson_append_array_end (out, &pipe);
   }
   return true;
}
