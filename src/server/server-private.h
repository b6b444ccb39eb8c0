/*
 * server-private.h -- what the server's files share. Not installed.
 *
 *   wire.c       messages <-> commands (dj_wire.h)
 *   server.c     listening, connections, dispatch, shutdown
 *   handshake.c  the commands a server answers around the engine's
 *   sessions.c   sessions and multi-document transactions
 *   host.c       a thread's mailbox: a transaction's commands run on the
 *                thread that hosts it (the connection thread that began it)
 *   io.c         a connection's bytes: plain socket or TLS (OpenSSL)
 *   auth.c       SCRAM-SHA-256 (saslStart / saslContinue), the users file
 *   replset.c    what a replica-set member adds to replies: cluster time,
 *                write concern errors
 *   compress.c   OP_COMPRESSED (dj_wire.h), the handshake's compression
 *                negotiation, serverStatus network.compression
 *   failpoint.c  test commands: configureFailPoint and the failCommand fail
 *                point, error labels
 */
#ifndef DJ_SERVER_PRIVATE_H
#define DJ_SERVER_PRIVATE_H

#include <pthread.h>
#include <stdatomic.h>

#include "dj_engine.h"
#include "dj_server.h"
#include "dj_wire.h"

typedef struct dj_sessions dj_sessions_t;
typedef struct dj_users dj_users_t;
typedef struct dj_auth_conv dj_auth_conv_t;
typedef struct dj_failpoint dj_failpoint_t;
typedef struct dj_host dj_host_t;

/* One client connection (owned by the server's list; its thread runs it). */
typedef struct dj_conn {
   struct dj_server *srv;
   int fd;
   bool tcp;           /* accepted on the TCP listener (TLS applies), not the unix socket */
   bool tls;           /* the TLS handshake completed: close with close_notify */
   struct ssl_st *ssl; /* owned: the connection's TLS (io.c), or NULL: plain */
   int64_t id;
   char peer[96];      /* "ip:port" of the client, for whatsmyuri and logs */
   char local[96];     /* "host:port" the client reached us at: hello's hosts */
   char *user;         /* owned: the authenticated user, or NULL */
   dj_auth_conv_t *conv; /* owned: a SCRAM conversation in progress, or NULL */
   int auth_fails;     /* failed logins in a row on this connection (auth.c's backoff) */
   char app_name[128]; /* the handshake's client.application.name, or "" */
   uint8_t compressors[DJ_COMPRESSORS]; /* agreed on in the handshake, the client's order first */
   uint32_t ncompressors;
   dj_host_t *host;    /* owned by its thread: the transactions it runs (host.c), or NULL */
   struct dj_conn *next;
} dj_conn_t;

struct dj_server {
   char *dbpath, *bind, *unix_path; /* owned copies of the options */
   int port;
   int max_connections;
   int64_t txn_lifetime_ms;
   int64_t auth_timeout_ms;    /* --auth: a connection not logged in may be silent this long */
   int64_t idle_timeout_ms;    /* between messages; 0: no limit */
   int64_t message_timeout_ms; /* a message, once begun, arrives whole within this */
   int64_t max_incoming;       /* bytes all messages being received may hold together */
   atomic_llong incoming;      /* what they hold now */
   bool quiet;
   bool test_commands;  /* enableTestCommands: configureFailPoint exists */
   unsigned compressors; /* --networkMessageCompressors: bit (1 << compressorId) each */
   /* per compressorId: compressor bytesIn, bytesOut, decompressor bytesIn, bytesOut */
   atomic_llong compress_bytes[DJ_COMPRESSORS][4];
   int tls_mode;        /* DJ_TLS_MODE_* (never _DEFAULT once started) */
   struct ssl_ctx_st *tls_ctx; /* owned: the certificate and CAs, or NULL (disabled) */
   dj_failpoint_t *failpoint; /* owned: the failCommand fail point */
   dj_failpoint_t *txn_write_fp; /* owned: the onPrimaryTransactionalWrite fail point */
   dj_failpoint_t *getmore_fp;   /* owned: the failGetMoreAfterCursorCheckout fail point */
   dj_failpoint_t *maxtime_fp;   /* owned: the maxTimeAlwaysTimeOut fail point */
   uint8_t clock_key[20];     /* with --auth: the HMAC-SHA1 key $clusterTime is signed with (random per start) */
   int64_t clock_key_id;
   dj_engine_t *engine; /* owned */
   dj_sessions_t *sessions; /* owned */
   dj_users_t *users;   /* owned: --auth's users (NULL: no authentication) */
   int tcp_fd, unix_fd;
   int wake[2];         /* self-pipe: dj_server_stop() wakes the accept loop */
   atomic_bool stopping;
   atomic_int next_request_id;
   int64_t started_ms;
   bson_oid_t process_id; /* hello's topologyVersion.processId: new each start */
   pthread_mutex_t mu;  /* guards conns, nconns, next_conn_id */
   pthread_cond_t idle; /* signalled when nconns drops to 0 */
   dj_conn_t *conns;
   int nconns;
   int64_t next_conn_id;
};

void dj_server_log (const struct dj_server *srv, const char *fmt, ...) BSON_GNUC_PRINTF (2, 3);

/* io.c: a connection's bytes, plain or TLS; server.c reads and writes
 * through these only */
int64_t dj_monotonic_ms (void);
/* The TLS mode and context from the options: false with error when they
 * are inconsistent or a file cannot be used. */
bool dj_tls_init (struct dj_server *srv, const dj_server_options_t *opts, bson_error_t *error);
void dj_tls_cleanup (struct dj_server *srv);
const char *dj_tls_mode_name (int mode);
/* On the connection's thread, first: the TLS handshake when the client
 * opens with one; false (logged) when the connection is to be closed (a
 * plain client under requireTLS, a failed handshake, silence). */
bool dj_io_start (struct dj_server *srv, dj_conn_t *c);
/* Waits for the next message's first byte or the deadline (monotonic ms;
 * -1: none): false on the deadline. */
bool dj_io_wait_readable (dj_conn_t *c, int64_t deadline);
/* Receives (sending false) or sends exactly n bytes at p; false when the
 * peer has gone, the stream failed, or (receiving) the deadline passed
 * first (*timed_out then true). */
bool dj_io_transfer (dj_conn_t *c, uint8_t *p, size_t n, bool sending, int64_t deadline, bool *timed_out);
/* Ends TLS (close_notify) and closes the socket. */
void dj_io_close (dj_conn_t *c);

/* handshake.c: answers the server-level command `name` into reply
 * (initialised here) and returns true, or returns false (reply untouched)
 * when the command is the engine's. */
bool dj_handshake_command (struct dj_server *srv, dj_conn_t *c, const char *db, const char *name, const bson_t *cmd,
                           bson_t *reply);
/* handshake.c: the Stable API parameters a command declares (apiVersion,
 * apiStrict, apiDeprecationErrors) checked as mongod does: true when the
 * command may run, else false with reply initialised to the error.
 * https://www.mongodb.com/docs/manual/reference/stable-api/ */
bool dj_stable_api_check (const char *name, const bson_t *cmd, bson_t *reply);
/* handshake.c: the first stage of cmd's pipeline named in names[0..n), as
 * a pointer into names, or NULL (no pipeline, or none of them) */
const char *dj_pipeline_stage_among (const bson_t *cmd, const char *const *names, size_t n);
/* handshake.c: a hello / isMaster's client metadata noted on the connection
 * (its appName), before the fail points look at the command */
void dj_handshake_note_client (dj_conn_t *c, const char *name, const bson_t *cmd);

/* auth.c: the users file (lines user:iterations:salt:StoredKey:ServerKey) */
dj_users_t *dj_users_load (const char *path, bson_error_t *error);
void dj_users_destroy (dj_users_t *us);
bool dj_users_has (dj_users_t *us, const char *name);
/* Derives the user's SCRAM-SHA-256 keys and writes them to the file
 * (created 0600; an existing line for the user is replaced). */
bool dj_users_add (const char *path, const char *name, const char *password, bson_error_t *error);
void dj_auth_conv_free (dj_auth_conv_t *cv);
/* saslStart / saslContinue / logout, and with --auth the refusal of
 * everything but the handshake before a user has authenticated: returns
 * true with reply initialised, false (reply untouched) otherwise. */
bool dj_auth_command (struct dj_server *srv, dj_conn_t *c, const char *name, const bson_t *cmd, bson_t *reply);
bool dj_auth_exempt (const char *name);
/* createUser, updateUser, dropUser, usersInfo over the users file: true
 * when name is one of them (reply made). */
bool dj_users_command (struct dj_server *srv, const char *db, const char *name, const bson_t *cmd, bson_t *reply);

/* replset.c */
/* Does the command write (so advance the cluster time)? */
bool dj_is_write_command (const char *name, const bson_t *cmd);
bool dj_cluster_time_init (struct dj_server *srv); /* false: no random bytes for the signing key */
/* Appends $clusterTime and operationTime to reply, advancing the clock
 * first when the command wrote. */
void dj_cluster_time_stamp (struct dj_server *srv, bool advance, bson_t *reply);
/* With --auth, a $clusterTime the client sends must carry this server's
 * signature: false with reply set to TimeProofMismatch (204) otherwise. */
bool dj_cluster_time_check (struct dj_server *srv, const bson_t *cmd, bson_t *reply);
/* The cluster time now (the last write's), without advancing it. */
void dj_cluster_time_now (struct dj_server *srv, uint32_t *t, uint32_t *i);
/* (write concerns: dj_engine_write_concern_check, dj_engine.h) */

/* compress.c */
/* --networkMessageCompressors: "disabled", or names separated by commas
 * (NULL: DJ_COMPRESSORS_DEFAULT) into a mask; false on an unknown name. */
bool dj_compress_parse_list (const char *list, unsigned *mask, bson_error_t *error);
/* hello / isMaster: agrees on the client's `compression` list and adds the
 * agreed compressors to reply (as mongod: only when there are some). */
void dj_compress_negotiate (struct dj_server *srv, dj_conn_t *c, const bson_t *cmd, bson_t *reply);
/* May the reply to req be compressed? (not the handshake's, nor auth's) */
bool dj_compress_reply_allowed (const dj_wire_request_t *req);
/* Counts bytes through compressor id (compressing, or decompressing). */
void dj_compress_count (struct dj_server *srv, int id, bool compressing, int64_t in, int64_t out);
/* serverStatus: appends network.compression */
void dj_compress_status (struct dj_server *srv, bson_t *reply);

/* failpoint.c: what the failCommand fail point does to one command
 * (owned by the caller: dj_fail_action_cleanup()) */
typedef struct {
   bool close_connection, block, has_error;
   int64_t block_ms;
   int32_t error_code;
   bson_t *error_labels;        /* owned copy, or NULL: the server's own labels */
   bson_t *write_concern_error; /* owned copy, or NULL */
} dj_fail_action_t;
dj_failpoint_t *dj_failpoint_new (void);
void dj_failpoint_destroy (dj_failpoint_t *fp);
/* configureFailPoint: reply initialised */
bool dj_failpoint_configure (struct dj_server *srv, const char *db, const bson_t *cmd, bson_t *reply);
/* Does the fail point fire for this command on this connection? If so
 * (counting it against times / skip), *out says what to do. */
bool dj_failpoint_check (struct dj_server *srv, const dj_conn_t *c, const char *name, dj_fail_action_t *out);
void dj_fail_action_cleanup (dj_fail_action_t *a);
/* onPrimaryTransactionalWrite, asked by a retryable write (command `name`,
 * its statements counted against the mode's skip): true when it fires
 * (close the connection unanswered), *fail_before when the write is not to
 * be applied first. */
bool dj_failpoint_txn_write (struct dj_server *srv, const char *name, const bson_t *cmd, bool *fail_before);
/* failGetMoreAfterCursorCheckout: when it fires, reply is a getMore's
 * failure with data.errorCode, labelled ResumableChangeStreamError when a
 * change stream may resume after it (mongod's error labels), and true. */
bool dj_failpoint_get_more (struct dj_server *srv, bson_t *reply);
/* maxTimeAlwaysTimeOut: when it fires for this command (maxTimeMS > 0, or
 * a getMore on a cursor opened with one), reply is MaxTimeMSExpired and
 * true; for a getMore, *cursor_id is the cursor the caller is to end. */
bool dj_failpoint_max_time (struct dj_server *srv, const char *name, const bson_t *cmd, int64_t *cursor_id,
                            bson_t *reply);
/* After a command ran: remembers the cursor a command with maxTimeMS
 * opened, forgets the ones that ended (test commands only). */
void dj_failpoint_max_time_note (struct dj_server *srv, const char *name, const bson_t *cmd, const bson_t *reply);
/* A change stream's getMore or aggregate that failed for good: mongod's
 * NonResumableChangeStreamError label (ChangeStreamFatalError 280,
 * ChangeStreamHistoryLost 286), which tells a driver not to resume. */
void dj_error_labels_stream (bson_t *reply);
/* A retryable write (txnNumber outside a transaction)? */
bool dj_is_retryable_write (const char *name, const bson_t *cmd);
void dj_fail_action_block (const dj_fail_action_t *a);
/* The configured error as the reply (initialised here). */
void dj_fail_action_error (const dj_fail_action_t *a, const char *name, const bson_t *cmd, bson_t *reply);
/* After the command ran: the configured writeConcernError into its reply. */
void dj_fail_action_after (const dj_fail_action_t *a, const char *name, const bson_t *cmd, bson_t *reply);
/* mongod's error labels (RetryableWriteError, TransientTransactionError)
 * for an error reply that has none. */
void dj_error_labels_add (const char *name, const bson_t *cmd, bson_t *reply);

/* host.c: a thread's mailbox (the header there). dj_host_new makes one
 * (pollable: with an eventfd a connection thread polls; NULL if that
 * fails), dj_host_enter makes it the calling thread's (dj_host_self).
 * dj_host_run runs fn(arg) on h's thread -- at once when that is the
 * caller's -- and returns when it is done, running what is posted to the
 * caller's own host meanwhile; dj_host_serve runs what was posted (h's
 * thread, its eventfd readable); dj_host_lock takes a mutex the same way.
 * dj_host_hold counts what h hosts (dj_host_busy: any), dj_host_quit ends
 * dj_host_loop (a worker thread's life), dj_host_close serves until
 * nothing is held, then frees h (its thread's end). */
dj_host_t *dj_host_new (bool pollable);
void dj_host_enter (dj_host_t *h);
dj_host_t *dj_host_self (void);
int dj_host_fd (const dj_host_t *h);
void dj_host_run (dj_host_t *h, void (*fn) (void *), void *arg);
bool dj_host_serve (dj_host_t *h);
void dj_host_lock (pthread_mutex_t *m);
void dj_host_hold (dj_host_t *h, int delta);
bool dj_host_busy (dj_host_t *h);
void dj_host_quit (dj_host_t *h);
void dj_host_loop (dj_host_t *h);
void dj_host_close (dj_host_t *h);

/* sessions.c */
/* Runs fn(arg) on a worker thread of the pool and waits (serving the
 * caller's host): a command that must not run on a connection thread
 * hosting a transaction (it could wait for that transaction's write lock,
 * which only this thread can release). false if no thread could start. */
bool dj_sessions_call (dj_sessions_t *s, void (*fn) (void *), void *arg);
/* Retryable writes: a write retried with the txnNumber of one that
 * succeeded is answered with the first execution's reply (copied into
 * reply, initialised) instead of running again; one with a txnNumber below
 * the session's newest gets TransactionTooOld (225). true: reply is the
 * answer. */
bool dj_sessions_retry_lookup (dj_sessions_t *s, const bson_t *cmd, bson_t *reply);
/* Remembers a retryable write's successful reply for its session. */
void dj_sessions_retry_record (dj_sessions_t *s, const bson_t *cmd, const bson_t *reply);
/* killAllSessions: aborts every open transaction. */
void dj_sessions_kill_all (dj_sessions_t *s);
dj_sessions_t *dj_sessions_new (dj_engine_t *engine, struct dj_server *srv);
void dj_sessions_destroy (dj_sessions_t *s); /* aborts open transactions */
/* Runs cmd for its session if it belongs to a transaction (autocommit:
 * false) or ends one (commitTransaction / abortTransaction): returns true
 * with reply initialised. Returns false (reply untouched) for everything
 * else, which runs outside transactions. */
bool dj_sessions_run (dj_sessions_t *s, const char *user, const char *db, const char *name, const bson_t *cmd,
                      bson_t *reply);
/* endSessions / killSessions: aborts the listed sessions' transactions. */
void dj_sessions_end (dj_sessions_t *s, const bson_t *lsids_array);
int dj_sessions_active (dj_sessions_t *s);
/* An aggregate starting with $listLocalSessions: out (initialised) is the
 * command with that stage turned into $documents of the known sessions.
 * false (out untouched) for any other command. */
bool dj_sessions_rewrite_list (dj_sessions_t *s, const bson_t *cmd, bson_t *out);
/* Aborts transactions open longer than lifetime_ms (MongoDB's
 * transactionLifetimeLimitSeconds): an abandoned transaction would
 * otherwise hold the data directory's write lock for good. Forgets ended
 * sessions and sessions idle for 30 minutes. */
void dj_sessions_reap (dj_sessions_t *s, int64_t lifetime_ms);

#endif
