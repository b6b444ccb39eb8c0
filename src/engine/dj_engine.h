/*
 * dj_engine.h -- the embedded MongoDB-compatible engine.
 *
 * @mainpage
 * The engine stores MongoDB documents in an LMDB environment (a directory)
 * and answers MongoDB commands: the same BSON command documents a MongoDB
 * server takes, and the same replies, error codes and messages. The Python
 * driver and the wire-protocol server both talk to it through one function,
 * dj_engine_run_command(); nothing else of the engine is public.
 *
 * Storage, in one sentence each:
 *  - one LMDB environment per data directory, shared safely by several
 *    processes (LMDB's lock file serialises writers; readers never block);
 *  - each command is one LMDB transaction, fsync'd on commit unless the
 *    engine was opened with DJ_ENGINE_NOSYNC: an acknowledged write survives
 *    a crash or SIGKILL;
 *  - documents are BSON, keyed by a per-collection record id (insertion
 *    order, MongoDB's "natural order"); `_id` and every secondary index map an
 *    order-preserving encoding of BSON values to record ids.
 *
 * @section txn_sec Transactions
 * dj_engine_txn_begin() opens a transaction that spans commands: they run
 * in it with dj_engine_run_command_in(), see each other's writes, and
 * become visible to others all at once on dj_engine_txn_commit(), or not at
 * all. Nested transactions (savepoints) undo part of one. Snapshot
 * isolation: other readers keep seeing the last committed state; other
 * writers wait (LMDB has one writer at a time), as in SQLite.
 * dj_engine_txn_begin_snapshot() starts one as a read-only snapshot that
 * takes the writer's place at its first write, or fails with
 * WriteConflict: many open at once, as MongoDB's transactions.
 *
 * @section views_sec Views
 * create with viewOn and pipeline makes a read-only view (view.c): find,
 * count, distinct, aggregate and $lookup read its pipeline's output over
 * its source; writes and index commands on it fail with
 * CommandNotSupportedOnView (166).
 *
 * @section threads_sec Threads
 * A dj_engine_t may be used from several threads at once; each call runs in
 * its own LMDB transaction. A dj_engine_txn_t belongs to the thread that
 * began it (LMDB's write lock is held by a thread). Opening the same directory twice in one process
 * returns the same underlying environment (LMDB forbids two opens per
 * process), reference-counted.
 *
 * @section caveats_sec Caveats
 *  - Decimal128 values compare exactly, but an index key holds them as the
 *    nearest pair of doubles: two decimals that differ beyond ~32 significant
 *    digits share an index key (a unique index treats them as equal).
 *  - Index keys longer than ~470 bytes are stored as a prefix plus a 128-bit
 *    hash: equality and uniqueness stay exact, range scans recheck documents.
 */
#ifndef DJ_ENGINE_H
#define DJ_ENGINE_H

#include <bson/bson.h>

#include "dj_error.h"

/** Opaque handle on an open data directory. */
typedef struct dj_engine dj_engine_t;

/** Flags for dj_engine_open(). */
enum {
   /** Skip fsync on commit: faster, and a crash may lose the last commits
    *  (never corrupts). For tests and benchmarks that say so. */
   DJ_ENGINE_NOSYNC = 1 << 0,
   /** Open only a data directory the engine already made (it holds
    *  data.mdb): nothing is created, so a mistyped path is an error
    *  (ENOENT, DJ_DOMAIN_STORAGE) instead of a new empty database. */
   DJ_ENGINE_EXISTING = 1 << 1
};

/** Options for dj_engine_open(); a zeroed struct means the defaults. */
typedef struct {
   int flags;       /**< DJ_ENGINE_* flags */
   size_t map_size; /**< largest size the data file may grow to; 0: 256 GiB.
                         Writes past it fail with OutOfDiskSpace (14031). */
   int ttl_monitor_secs; /**< seconds between the TTL monitor's passes, which
                              delete what TTL indexes expire (mongod's
                              ttlMonitorSleepSecs); 0: 60, as mongod; < 0: no
                              monitor. One monitor per data directory per
                              process: the first opener's value holds. */
   int64_t change_log_size; /**< bytes the change log (change streams' history)
                                 keeps before dropping its oldest entries;
                                 0: 192 MiB */
} dj_engine_options_t;

/**
 * Opens (creating if needed) the data directory @p path.
 *
 * @param[in] path   directory; created (with missing parents) with mode 0700 if
 *                   missing, unless opts->flags has DJ_ENGINE_EXISTING.
 * @param[in] opts   options, or NULL for the defaults. When the directory is
 *                   already open in this process, the first opener's options
 *                   stay in force.
 * @param[out] error set on failure: domain DJ_DOMAIN_STORAGE, code = errno or
 *                   the LMDB return code, with a message naming the path.
 * @return a handle the caller owns (dj_engine_close()), or NULL.
 */
dj_engine_t *dj_engine_open (const char *path, const dj_engine_options_t *opts, bson_error_t *error);

/**
 * The cluster time (a BSON Timestamp: @p t seconds, @p i increment) of the
 * data directory: the time of its newest change-log entry or later. With
 * @p advance, a fresh time past every one handed out so far (a write that
 * logged no change still moves the clock). djongo-server's operationTime
 * and $clusterTime, and change events' clusterTime, are read from it.
 */
void dj_engine_cluster_time (dj_engine_t *engine, bool advance, uint32_t *t, uint32_t *i);

/** Closes a handle from dj_engine_open(). Open cursors are discarded. NULL is a no-op. */
void dj_engine_close (dj_engine_t *engine);

/**
 * Runs one MongoDB command against database @p db.
 *
 * @param[in]  engine the engine.
 * @param[in]  db     database name ("admin" for admin commands).
 * @param[in]  cmd    the command document; its first key names the command.
 * @param[out] reply  uninitialised storage; always initialised on return, and
 *                    the caller must bson_destroy() it. On failure it holds
 *                    MongoDB's error shape {ok: 0, errmsg, code, codeName},
 *                    with the error's own fields where mongod adds them
 *                    (DuplicateKey: keyPattern, keyValue; document
 *                    validation: errInfo). Write commands report
 *                    per-document failures in `writeErrors` with ok: 1
 *                    (those fields included), as MongoDB does.
 * @return true when reply.ok is 1.
 */
bool dj_engine_run_command (dj_engine_t *engine, const char *db, const bson_t *cmd, bson_t *reply);

/** A transaction over several commands; see @ref txn_sec. */
typedef struct dj_engine_txn dj_engine_txn_t;

/**
 * Begins a transaction, or a savepoint inside one.
 *
 * @param[in] parent NULL for a top-level transaction, which takes the data
 *                   directory's write lock (waiting while another thread or
 *                   process holds it); else an open transaction of the same
 *                   engine, which cannot run commands until the new, nested
 *                   one ends.
 * @param[out] error WriteConflict (112) when this thread already holds the
 *                   write lock through another transaction (waiting would
 *                   deadlock); IllegalOperation (20) when @p parent already
 *                   has an open nested transaction.
 * @return a handle owned by the caller until dj_engine_txn_commit() or
 *         dj_engine_txn_abort(), or NULL.
 */
dj_engine_txn_t *dj_engine_txn_begin (dj_engine_t *engine, dj_engine_txn_t *parent, bson_error_t *error);

/**
 * Begins a top-level transaction as a read-only snapshot of the committed
 * data (no lock taken): MongoDB's snapshot isolation for transactions that
 * are mostly reads, and for many of them at once. Its first write turns it
 * into a write transaction, if it can without breaking the snapshot: when
 * something was committed since the snapshot was taken, or another
 * snapshot transaction is already writing, that write fails with
 * WriteConflict (112) -- MongoDB's answer to conflicting transactions,
 * which drivers retry as a TransientTransactionError -- instead of waiting.
 * Commit and abort as for dj_engine_txn_begin()'s transactions.
 */
dj_engine_txn_t *dj_engine_txn_begin_snapshot (dj_engine_t *engine, bson_error_t *error);

/**
 * The session a top-level @p txn is a MongoDB multi-document transaction of:
 * its lsid document (copied) and txnNumber. Each change the transaction
 * makes records them, and change events show them as lsid and txnNumber
 * (https://www.mongodb.com/docs/manual/reference/change-events/). Set before
 * the transaction runs commands; djongo-server sets it.
 */
void dj_engine_txn_set_session (dj_engine_txn_t *txn, const bson_t *lsid, int64_t txn_number);

/**
 * Whether the commands run in @p txn (dj_engine_run_command_in() and
 * friends) write in it directly rather than each in a nested transaction
 * of its own (default false). A command that fails then leaves what it
 * wrote in @p txn, which the caller must abort -- as MongoDB aborts a
 * transaction whose command failed (djongo-server, for the write commands,
 * whose every failure it sees: ok 0 or writeErrors). Without it only a
 * transaction's first write goes in directly (storage/txn.c, which must be
 * able to undo it); with it every write command does, and LMDB is spared
 * the nested transaction's work: each page looked up in two dirty lists,
 * the lists merged at its commit (a bulk_create's insert after its ids'
 * findAndModify, which reads the table first).
 */
void dj_engine_txn_set_flat (dj_engine_txn_t *txn, bool flat);

/**
 * Commits @p txn (and first any nested transactions still open in it) and
 * frees the handles. A nested transaction's writes join its parent's; a
 * top-level one's become durable (fsync'd unless DJ_ENGINE_NOSYNC).
 * @return false if the commit failed: then nothing of @p txn was written
 *         (it was aborted and freed all the same).
 */
bool dj_engine_txn_commit (dj_engine_txn_t *txn, bson_error_t *error);

/** Discards @p txn's writes (and its open nested transactions') and frees
 *  the handles. Called from another thread than the one that began it, only
 *  the handles are freed: LMDB's lock can be released by its owner alone, so
 *  the transaction (never written) ends when that thread exits -- except a
 *  snapshot that has not written (dj_engine_txn_begin_snapshot()), a
 *  read-only LMDB transaction any thread may end, which ends at once. */
void dj_engine_txn_abort (dj_engine_txn_t *txn);

/**
 * SQL's savepoints by name (SAVEPOINT, RELEASE, ROLLBACK TO) as a stack of
 * nested transactions over a root one: what the embedded transport keeps
 * per connection and djongo-server per transaction it hosts
 * (src/server/sessions.c), one piece for both. Names fold case, as SQLite
 * compares them, and the innermost of a name is the one meant. A stack
 * zeroed is empty. Ownership: the stack owns its array and names; each
 * transaction (NULL in a stack that keeps names only: a server's
 * savepoints, which live on the server) is ended by its parent's commit or
 * abort, or by dj_savepoints_release() / dj_savepoints_rollback_to().
 */
typedef struct {
   char *name;
   dj_engine_txn_t *txn; /* nested in the one before it, or in the root */
} dj_savepoint_t;

typedef struct {
   dj_savepoint_t *v;
   int n, cap;
} dj_savepoints_t;

/** The place of the innermost savepoint named @p name, or -1. */
int dj_savepoints_find (const dj_savepoints_t *s, const char *name);
/** The innermost savepoint's transaction, or @p root when there is none. */
dj_engine_txn_t *dj_savepoints_top (const dj_savepoints_t *s, dj_engine_txn_t *root);
/** Puts @p name (a copy) with @p txn on top. */
void dj_savepoints_push (dj_savepoints_t *s, const char *name, dj_engine_txn_t *txn);
/** SAVEPOINT: a transaction nested in the top one (or @p root), pushed as @p name. */
bool dj_savepoints_begin (dj_savepoints_t *s, dj_engine_t *engine, dj_engine_txn_t *root, const char *name,
                          bson_error_t *error);
/** Forgets the savepoints from place @p i on (their transactions untouched); the array goes when none is left. */
void dj_savepoints_drop (dj_savepoints_t *s, int i);
/**
 * RELEASE of the savepoint at place @p i: commits it (and those inside it)
 * into its parent and forgets them. When that commit fails, its writes are
 * lost and the transaction cannot be trusted: *root is aborted and set to
 * NULL, and every savepoint forgotten.
 */
bool dj_savepoints_release (dj_savepoints_t *s, int i, dj_engine_txn_t **root, bson_error_t *error);
/**
 * ROLLBACK TO the savepoint at place @p i: discards what it and those
 * inside it wrote; the savepoint stays, empty (begun again in its parent).
 */
bool dj_savepoints_rollback_to (dj_savepoints_t *s, int i, dj_engine_t *engine, dj_engine_txn_t *root,
                                bson_error_t *error);

/**
 * dj_engine_run_command() inside @p txn (NULL: the same as
 * dj_engine_run_command()). A command that fails (ok: 0) leaves no writes
 * behind and the transaction usable; per-document writeErrors keep the
 * writes before them, as outside a transaction. Cursors opened here hold
 * their documents, so getMore works after the transaction ends.
 */
bool dj_engine_run_command_in (dj_engine_t *engine, dj_engine_txn_t *txn, const char *db, const bson_t *cmd,
                               bson_t *reply);

/**
 * dj_engine_run_command_in() for a command the caller built itself with
 * libbson's append API, from UTF-8 strings and field names without NULs
 * (djongo's SQL compiler, fed by the Python driver): the checks of the
 * command's bytes (framing, nesting depth, UTF-8, array keys), which
 * validate BSON that came from outside, are skipped. Anything else --
 * the wire server, pymongo-style raw commands -- goes through
 * dj_engine_run_command_in().
 */
bool dj_engine_run_trusted_in (dj_engine_t *engine, dj_engine_txn_t *txn, const char *db, const bson_t *cmd,
                               bson_t *reply);

/**
 * dj_engine_run_command_in() on behalf of @p user (for instance "name@db";
 * NULL when no one authenticated; borrowed for the call): the cursors the
 * command opens belong to that user, and a getMore or killCursors of
 * another user's cursor fails with Unauthorized (13), as mongod's do.
 * djongo-server passes the connection's authenticated user.
 */
bool dj_engine_run_command_as (dj_engine_t *engine, dj_engine_txn_t *txn, const char *user, const char *db,
                               const bson_t *cmd, bson_t *reply);

/**
 * The TTL monitor's counters for @p engine's data directory (mongod's
 * serverStatus metrics.ttl): documents it deleted and passes it finished;
 * 0 when no monitor runs.
 */
void dj_engine_ttl_stats (dj_engine_t *engine, int64_t *deleted, int64_t *passes);

/** The path the engine was opened with (owned by the engine). */
const char *dj_engine_path (const dj_engine_t *engine);

/**
 * The write concern of a write command, judged as a one-member replica
 * set's mongod judges it (commands/concern.c): when @p cmd's writeConcern
 * asks for more members than one (w > 1) or a tag set no configuration
 * defines, appends writeConcernError {code: 100 UnsatisfiableWriteConcern or
 * 79 UnknownReplWriteConcern, codeName, errmsg} to @p reply -- the write
 * itself stands, as mongod's does. Nothing for w: 0, 1, "majority", j or
 * wtimeout, or a reply that has one already. Called after the command ran
 * (not for commands inside a transaction: their commit carries it).
 * https://www.mongodb.com/docs/manual/reference/write-concern/
 */
void dj_engine_write_concern_check (const bson_t *cmd, bson_t *reply);

#endif
