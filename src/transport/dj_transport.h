/*
 * dj_transport.h -- where commands go: the embedded engine or a MongoDB
 * server (libmongoc), behind the one seam dj_exec uses (dj_run_command_fn).
 *
 * Files: transport.c (the seam, transactions), uri.c (a server HOST and
 * its connection options -> libmongoc's URI), concerns.c (read preference,
 * read and write concern: the connection's and dj_transport_set_concerns());
 * transport-private.h between them.
 *
 * Selection rule (what users write as HOST):
 *   - a filesystem path -- absolute, ./relative, ~/..., or a file: URI --
 *     is a data directory for the embedded engine;
 *   - mongodb://... or mongodb+srv://... is a MongoDB deployment (replica
 *     sets, TLS, SCRAM, Atlas: whatever libmongoc's URI takes);
 *   - anything else is a host name, optionally :port, of a MongoDB server
 *     (mongodb://HOST).
 *
 * Errors: a server's reply with ok: 0 or a write concern error becomes
 * DJ_DOMAIN_SERVER with MongoDB's code, from either transport; network,
 * server-selection and authentication failures keep libmongoc's
 * {domain, code} (domains below DJ_DOMAIN_SERVER), which the driver maps to
 * OperationalError.
 *
 * @section threads_sec Threads
 * One transport serves one connection: use it from one thread at a time
 * (libmongoc's mongoc_client_t is single-threaded; the engine handle is
 * thread-safe but the rule is the same for both). libmongoc's process-wide
 * initialisation happens once, under pthread_once.
 */
#ifndef DJ_TRANSPORT_H
#define DJ_TRANSPORT_H

#include <bson/bson.h>

#include "dj_error.h"
#include "dj_exec.h"

typedef struct dj_transport dj_transport_t;

/** Flags for dj_transport_open(). */
enum {
   /** A path must name a data directory the engine already made (a typo
    *  is an error, not a new empty database); djongo-sql without --create. */
   DJ_TRANSPORT_EXISTING = 1 << 0
};

/* libmongoc keeps performance counters in /dev/shm/mongoc-<pid>, which a
 * killed process leaves behind (and a later process given that pid warns
 * "Falling back to malloc for counters"). djongo reads none of them.
 * libmongoc's documented switch, MONGOC_DISABLE_SHM, is read as the library
 * loads, before main; so a program calls this first in main, while it has
 * one thread: it removes the name of the segment libmongoc has just made
 * (the mapping lives on, unnamed, until the process ends however it ends)
 * and sets the switch for the programs it starts. The Python driver sets
 * the switch before loading the extension (djongo/driver.py).
 * https://www.mongodb.com/docs/languages/c/c-driver/current/libmongoc/basic-troubleshooting/ */
void dj_transport_process_init (void);

/**
 * Opens HOST by the rule above. No network round trip happens here: a
 * server that cannot be reached fails the first command.
 * @param[in]  flags DJ_TRANSPORT_* flags, or 0.
 * @param[in]  ttl_monitor_secs the embedded engine's TTL monitor period
 *                   (dj_engine_options_t.ttl_monitor_secs: 0 for mongod's
 *                   60 s); unused for a MongoDB server.
 * @param[out] error a bad URI (libmongoc's message) or a data directory that
 *                   cannot be opened or, with DJ_TRANSPORT_EXISTING, does not
 *                   exist (DJ_DOMAIN_STORAGE).
 * @return a transport the caller owns (dj_transport_close()), or NULL.
 */
dj_transport_t *dj_transport_open (const char *host, int flags, int ttl_monitor_secs, bson_error_t *error);

/**
 * dj_transport_open() with connection options for a server HOST: a
 * document of MongoDB connection-string options
 * (https://www.mongodb.com/docs/manual/reference/connection-string-options/,
 * any case), each set through libmongoc's URI API -- never pasted into
 * URI text -- over what HOST's URI says: booleans as BSON bools, numbers
 * as integers, readPreferenceTags as an array of tag-set documents (or
 * "name:value,..." strings), compressors as an array of names or
 * comma-joined text, w as a number, "majority" or a tag name, plus
 * "username", "password" and, for a host name, "port". A null value is
 * not set. For a data directory only the read preference, read concern
 * and write concern options are read (one node's semantics: see
 * dj_transport_set_concerns()), the others ignored (ttl_monitor_secs: as
 * dj_transport_open()'s, for a data directory only). Errors (libmongoc's
 * MONGOC_ERROR_COMMAND_INVALID_ARG) name the option and what it accepts.
 * @param options borrowed; NULL: none.
 */
dj_transport_t *dj_transport_open_with (const char *host, const bson_t *options, int flags, int ttl_monitor_secs,
                                        bson_error_t *error);

/** Whether HOST names a MongoDB server (else a data directory). */
bool dj_transport_is_server (const char *host);

/**
 * The checks dj_transport_open_with() makes of a server HOST and its
 * options, without connecting (no DNS either: mongodb+srv:// is resolved
 * when a connection starts). For a data directory, those of its read and
 * write concern options.
 */
bool dj_transport_check (const char *host, const bson_t *options, bson_error_t *error);

void dj_transport_close (dj_transport_t *t);

/** "embedded" or "mongodb". */
const char *dj_transport_kind (const dj_transport_t *t);

/** Whether commands reach djongo's own engine -- embedded, or over the
 *  wire djongo-server (its hello says so: {djongo: {insertReferences:
 *  true}}) -- which reads fields of djongo's that a MongoDB server refuses
 *  (an insert's djongoReferences). A server HOST: selects the primary (it
 *  may wait for one, as a command would), so ask it where a command is
 *  about to go. */
bool dj_transport_djongo_engine (dj_transport_t *t);
/** Whether djongo's engine behind t reads @p feature, one of the fields of
 *  djongo-server's hello `djongo` document (insertReferences,
 *  deferredReferences, djongoMax, recordKeyed, savepoints: src/server/handshake.c); always on the
 *  embedded engine. Selects the primary as dj_transport_djongo_engine does. */
bool dj_transport_djongo_has (dj_transport_t *t, const char *feature);

/** A dj_run_command_fn: @p ctx is the dj_transport_t. Runs in the open
 *  transaction, if any. A createIndexes' djongoRecordKeyed fields (the
 *  compiler's, for an INTEGER PRIMARY KEY) go to a server only when it
 *  announces recordKeyed: a MongoDB server gets the plain unique index. */
bool dj_transport_run (void *ctx, const char *db, const bson_t *cmd, bson_t *reply, bson_error_t *error);

/** dj_transport_run for a command built by djongo's compiler from UTF-8
 *  text with libbson's append API (the Python driver's statements: Python
 *  strings are UTF-8, document keys hold no NUL): the embedded engine skips
 *  re-validating its bytes (dj_engine_run_trusted_in). A server validates
 *  what it receives anyway. Never for BSON that came from outside. */
bool dj_transport_run_compiled (void *ctx, const char *db, const bson_t *cmd, bson_t *reply, bson_error_t *error);

/** dj_transport_run, but on a server never in the open transaction: for
 *  what MongoDB refuses inside one (it runs only CRUD, create and
 *  createIndexes there, and a refused command leaves the transaction
 *  aborted) that djongo asks while one is open -- the catalog
 *  (listCollections, listIndexes: Django introspects inside atomic blocks,
 *  loaddata's and TestCase's constraint checks), ping (is_usable()) and
 *  ON CONFLICT's target check and EXPLAIN (dj_exec_set_outside_run). A dj_run_command_fn:
 *  @p ctx is the dj_transport_t.
 *  On the embedded engine: dj_transport_run (its transactions run them).
 *  https://www.mongodb.com/docs/manual/core/transactions-operations/ */
bool dj_transport_run_outside (void *ctx, const char *db, const bson_t *cmd, bson_t *reply, bson_error_t *error);

/**
 * A dj_txn_fn: @p ctx is the dj_transport_t.
 *  - embedded: BEGIN takes the data directory's write lock until COMMIT or
 *    ROLLBACK (other writers wait; readers see the last commit).
 *    BEGIN_DEFERRED takes none: the transaction starts as a read snapshot
 *    (dj_engine_txn_begin_snapshot) and takes the lock at its first write
 *    -- a write statement, a FOR UPDATE claim or a SAVEPOINT -- unless
 *    another transaction committed since the snapshot was taken: then that
 *    statement fails with WriteConflict (112) and the transaction can only
 *    be rolled back and retried (SQLite's WAL mode does the same, with
 *    SQLITE_BUSY_SNAPSHOT). Savepoints are nested LMDB transactions; each
 *    statement's unit is one more nested transaction (or, in autocommit,
 *    its own transaction).
 *  - server: a client session with a multi-document transaction (a replica
 *    set or sharded cluster is needed, as MongoDB requires), the same for
 *    both BEGINs: MongoDB's transaction reads one snapshot, and a write to
 *    a document another transaction wrote since gets WriteConflict
 *    (TransientTransactionError); savepoints are refused with
 *    DJ_SQL_UNSUPPORTED -- but on djongo-server (hello's djongo.savepoints)
 *    they are its djongoSavepoint, djongoReleaseSavepoint and
 *    djongoRollbackToSavepoint commands in the transaction (nested engine
 *    transactions there; a statement that fails under one leaves the
 *    transaction open); statement units are no-ops.
 * dj_transport_close() rolls back an open transaction.
 */
bool dj_transport_txn (void *ctx, dj_txn_op_t op, const char *name, bson_error_t *error);

/**
 * The read preference, read concern and write concern of what @p t runs
 * from now on, over the connection options' own: @p concerns holds
 * connection-string options of those three only (readPreference,
 * readPreferenceTags, maxStalenessSeconds, readConcernLevel, w,
 * wTimeoutMS, journal; values as dj_transport_open_with() takes them);
 * those it does not name stay the connection's. NULL or {}: back to the
 * connection's. Replaces what an earlier call set.
 *  - server: outside transactions, reads go by the read preference with
 *    the read concern, writes carry the write concern (w: 0 writes are
 *    not retried); a transaction begun meanwhile takes the read and write
 *    concern (its reads go to the primary, as MongoDB requires).
 *  - embedded engine (also for the connection options, which a data
 *    directory otherwise ignores): one node, the primary of a one-member
 *    replica set. A read preference only a secondary or a tagged member
 *    could serve fails here (MONGOC_ERROR_SERVER_SELECTION, as selection
 *    finds no member); outside transactions reads carry the read concern
 *    and writes the write concern, which w: 0/1/"majority", j and
 *    wtimeout meet, while w > 1 leaves the write done and fails it with
 *    UnsatisfiableWriteConcern (100) and an unknown tag with
 *    UnknownReplWriteConcern (79), as mongod reports them.
 * https://www.mongodb.com/docs/manual/reference/write-concern/
 * @param concerns borrowed.
 * @param error a value or key the connection string would refuse (uri.c's
 *        words), or a read preference the embedded engine cannot serve.
 */
bool dj_transport_set_concerns (dj_transport_t *t, const bson_t *concerns, bson_error_t *error);

/**
 * MongoDB's error labels of the last failed dj_transport_run() or
 * dj_transport_txn() on @p t: the server's errorLabels, those libmongoc
 * adds (TransientTransactionError after a network error in a
 * transaction, UnknownTransactionCommitResult after a commit whose
 * outcome is unknown, once retried: a commit so labelled is sent again up
 * to three times first), and on the embedded engine
 * TransientTransactionError for a WriteConflict (112) in a transaction,
 * as mongod labels it. A transaction failed with TransientTransactionError
 * can be rolled back and run again from its start.
 * https://www.mongodb.com/docs/manual/core/transactions-in-applications/
 * @return a BSON array of strings, empty after a success; borrowed: valid
 *         until the next call on @p t.
 */
const bson_t *dj_transport_error_labels (const dj_transport_t *t);

#endif
