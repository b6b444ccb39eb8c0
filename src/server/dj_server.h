/*
 * dj_server.h -- the embedded engine served over MongoDB's wire protocol,
 * so pymongo, libmongoc, mongosh and Compass can use the same data
 * directory Django does (`djongo-server --dbpath DIR`).
 *
 * @mainpage
 * One thread accepts connections (TCP, and a unix socket if asked); each
 * connection has a thread that reads a message, runs its command and writes
 * the reply. Commands go to the one engine handle (dj_engine.h), which is
 * thread-safe: readers never wait for each other or for writers (LMDB's
 * MVCC); writers take turns. The server answers the commands drivers send
 * around the engine's (hello/isMaster, buildInfo, getParameter, ...:
 * handshake.c) and reports itself as the primary of a one-member replica
 * set, so drivers offer sessions and transactions.
 *
 * A malformed, truncated or oversized message closes its connection with
 * a log line, never the server. SIGTERM/SIGINT stop accepting, let running
 * commands finish, close connections and the engine (every acknowledged
 * write is already durable: each command commits before it is answered).
 *
 * @section sessions_sec Sessions and transactions
 * Commands carrying lsid + txnNumber + autocommit: false run in that
 * session's transaction (startTransaction: true begins it): one engine
 * transaction (dj_engine_txn_t) owned by a worker thread of its own, since
 * an LMDB write transaction belongs to one thread while a driver may send
 * the session's commands over any of its connections. A command that fails
 * inside a transaction aborts it (MongoDB's rule); commitTransaction /
 * abortTransaction end it; one left open longer than txn_lifetime_s is
 * aborted. A transaction is a snapshot (dj_engine_txn_begin_snapshot):
 * its reads take no lock and see the data as it was at its first command;
 * its first write makes it the writer unless another transaction is
 * writing or something was committed since the snapshot -- then that write
 * fails with WriteConflict (112) labelled TransientTransactionError, which
 * drivers' withTransaction retries. Writes outside transactions wait for a
 * writing transaction to end; reads never wait.
 *
 * @section replset_sec What a replica-set member adds
 * Every reply carries operationTime and $clusterTime (unsigned: a zero
 * hash, keyId 0); each write advances the cluster time, reads answer with
 * the last write's. A retryable write (txnNumber outside a transaction)
 * retried after it succeeded is answered with its first reply, not run
 * again. Write concerns a one-member set cannot satisfy (w > 1, unknown tag
 * sets) get a writeConcernError after the write; a writeConcern inside a
 * transaction is refused (72). With test_commands (mongod's
 * enableTestCommands), configureFailPoint sets the failCommand and
 * onPrimaryTransactionalWrite fail points drivers' spec tests use.
 *
 * @section tls_sec TLS
 * With tls_cert_key_file, TCP clients speak TLS (io.c: OpenSSL), verified
 * against tls_ca_file when given; tls_mode says whether plain clients are
 * served too. The unix socket stays plain.
 *
 * @section auth_sec Authentication
 * With auth_file, clients authenticate with SCRAM-SHA-256 (saslStart /
 * saslContinue, as drivers do for MongoDB users) before any command but
 * the handshake (hello, ping, buildInfo...); others get Unauthorized (13).
 */
#ifndef DJ_SERVER_H
#define DJ_SERVER_H

#include <bson/bson.h>

#include "dj_error.h"

typedef struct {
   const char *dbpath;      /**< data directory (created if missing) */
   const char *bind;        /**< address to listen on; NULL: 127.0.0.1 (loopback only) */
   int port;                /**< TCP port (0: 27017), or DJ_SERVER_ANY_PORT, or DJ_SERVER_NO_TCP */
   const char *unix_path;   /**< also listen on this unix socket, or NULL */
   int engine_flags;        /**< DJ_ENGINE_* (e.g. DJ_ENGINE_NOSYNC for tests) */
   int ttl_monitor_secs;    /**< seconds between TTL monitor passes (0: 60, mongod's
                                 ttlMonitorSleepSecs default); --ttl-monitor-sleep-secs */
   int max_connections;     /**< 0: 1000; more are accepted and closed at once */
   int auth_timeout_s;      /**< with auth_file: a connection that has not authenticated
                                 and is silent this long is closed (0: 20 s) */
   int idle_timeout_s;      /**< close a connection silent this long between messages
                                 (0: never, as mongod) */
   int max_incoming_mb;     /**< the messages being received on all connections hold at most
                                 this many MiB together (0: 1024); a message that would pass
                                 it closes its connection */
   int message_timeout_s;   /**< a message must arrive whole within this once its first
                                 byte has (0: 30 s): slow senders cannot pin a thread */
   bool quiet;              /**< no log lines on stderr */
   int txn_lifetime_s;      /**< abort transactions open longer (0: 60 s, MongoDB's
                                 transactionLifetimeLimitSeconds default) */
   const char *auth_file;   /**< require SCRAM-SHA-256 authentication by the users of
                                 this file (dj_server_add_user()); NULL: none */
   bool test_commands;      /**< enableTestCommands: configureFailPoint (the failCommand
                                 fail point drivers' tests use) exists */
   int tls_mode;            /**< DJ_TLS_MODE_*: which TCP connections speak TLS (mongod's
                                 net.tls.mode); DJ_TLS_MODE_DEFAULT: requireTLS when
                                 tls_cert_key_file is given, else disabled */
   const char *tls_cert_key_file; /**< PEM: the server's certificate (then its chain) and
                                 private key, as mongod's net.tls.certificateKeyFile */
   const char *tls_ca_file; /**< PEM: the CAs client certificates must come from; with it,
                                 clients must present one (net.tls.CAFile) */
   bool tls_allow_no_cert;  /**< with tls_ca_file: a client without a certificate is let in
                                 (net.tls.allowConnectionsWithoutCertificates) */
   int oplog_size_mb;       /**< MiB the change log (change streams' history) keeps,
                                 mongod's --oplogSize (0: the engine's 192) */
   const char *network_compressors; /**< the wire compressors clients may use (OP_COMPRESSED),
                                 mongod's --networkMessageCompressors: "snappy,zstd,zlib"
                                 (NULL: that default), or "disabled" */
} dj_server_options_t;

enum { DJ_SERVER_ANY_PORT = -2, DJ_SERVER_NO_TCP = -1 };

/** net.tls.mode: https://www.mongodb.com/docs/manual/reference/configuration-options/#mongodb-setting-net.tls.mode */
enum {
   DJ_TLS_MODE_DEFAULT = 0,
   DJ_TLS_MODE_DISABLED, /**< no TLS */
   DJ_TLS_MODE_ALLOW,    /**< TLS and plain connections (mongod: its own outgoing ones plain) */
   DJ_TLS_MODE_PREFER,   /**< TLS and plain connections (mongod: its own outgoing ones TLS) */
   DJ_TLS_MODE_REQUIRE   /**< TLS only: a plain connection is closed with a log line */
};

/** The DJ_TLS_MODE_* net.tls.mode spells `name` ("requireTLS", "preferTLS",
 *  "allowTLS" or "disabled"); DJ_TLS_MODE_DEFAULT for any other name. */
int dj_tls_mode_from_name (const char *name);

typedef struct dj_server dj_server_t;

/**
 * Opens the data directory and starts listening (not yet serving).
 * @return a server the caller owns (dj_server_destroy()), or NULL with
 *         @p error set (the directory, or the address, cannot be used).
 */
dj_server_t *dj_server_new (const dj_server_options_t *opts, bson_error_t *error);

/** The TCP port bound (with DJ_SERVER_ANY_PORT, the one the system chose). */
int dj_server_port (const dj_server_t *srv);

/** Serves until dj_server_stop() (or, if @p handle_signals, SIGINT/SIGTERM). */
void dj_server_run (dj_server_t *srv, bool handle_signals);

/** Asks a running server to stop; safe from any thread or a signal handler. */
void dj_server_stop (dj_server_t *srv);

/** Closes connections, sessions and the engine. */
void dj_server_destroy (dj_server_t *srv);

/**
 * Adds (or replaces) a user in a users file for auth_file: its
 * SCRAM-SHA-256 keys, derived from @p password (printable ASCII), never
 * the password itself. The file is created readable by its owner only.
 */
bool dj_server_add_user (const char *path, const char *user, const char *password, bson_error_t *error);

#endif
