/*
 * server.c -- listening, one thread per connection, dispatch, shutdown.
 *
 * A connection's thread starts its I/O (io.c: TLS or plain), then reads a
 * 16-byte header, checks the length against the maximum message size
 * before allocating anything, reads the body,
 * parses it (wire.c), runs the command and writes the reply. A malformed
 * message is logged and closes its connection; the server goes on.
 * Stopping: dj_server_stop() writes to a self-pipe the accept loop polls;
 * the loop then shuts every connection's socket down (their threads see EOF
 * after the command they are running) and waits for them to finish.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "server-private.h"

void
dj_server_log (const struct dj_server *srv, const char *fmt, ...)
{
   if (srv->quiet) {
      return;
   }
   char when[32];
   time_t now = time (NULL);
   struct tm tm;
   gmtime_r (&now, &tm);
   strftime (when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
   va_list ap;
   va_start (ap, fmt);
   flockfile (stderr);
   fprintf (stderr, "%s djongo-server: ", when);
   vfprintf (stderr, fmt, ap);
   fputc ('\n', stderr);
   funlockfile (stderr);
   va_end (ap);
}

/* ---- commands -------------------------------------------------------------- */

/* The command's reply; false: the connection is to be closed unanswered
 * (the failCommand fail point's closeConnection). */
/* Ends cursor `id` (0: none) of the getMore cmd, as its user. */
static void
kill_cursor (struct dj_server *srv, const dj_conn_t *c, const char *db, const bson_t *cmd, int64_t id)
{
   bson_iter_t it;
   if (!id || !bson_iter_init_find (&it, cmd, "collection") || !BSON_ITER_HOLDS_UTF8 (&it)) {
      return;
   }
   bson_t kill = BSON_INITIALIZER, ids, out;
   BSON_APPEND_UTF8 (&kill, "killCursors", bson_iter_utf8 (&it, NULL));
   BSON_APPEND_ARRAY_BEGIN (&kill, "cursors", &ids);
   BSON_APPEND_INT64 (&ids, "0", id);
   bson_append_array_end (&kill, &ids);
   dj_engine_run_command_as (srv->engine, NULL, c->user, db, &kill, &out);
   bson_destroy (&out);
   bson_destroy (&kill);
}

static bool
run_command (struct dj_server *srv, dj_conn_t *c, const char *db, const bson_t *cmd, bson_t *reply)
{
   bson_iter_t it;
   const char *name = bson_iter_init (&it, cmd) && bson_iter_next (&it) ? bson_iter_key (&it) : "";
   /* the fail point first: mongod's applies to the authentication
    * commands too (drivers' tests drop saslStart's connection) */
   dj_fail_action_t fa;
   dj_handshake_note_client (c, name, cmd);
   bool fired = dj_failpoint_check (srv, c, name, &fa);
   if (fired) {
      dj_fail_action_block (&fa);
      if (fa.close_connection) {
         dj_fail_action_cleanup (&fa);
         return false;
      }
      if (fa.has_error) {
         dj_fail_action_error (&fa, name, cmd, reply);
         dj_fail_action_cleanup (&fa);
         dj_cluster_time_stamp (srv, false, reply);
         return true;
      }
   }
   if (!dj_cluster_time_check (srv, cmd, reply)) {
      if (fired) {
         dj_fail_action_cleanup (&fa);
      }
      return true; /* a $clusterTime this server did not sign */
   }
   if (!dj_stable_api_check (name, cmd, reply)) {
      if (fired) {
         dj_fail_action_cleanup (&fa);
      }
      dj_cluster_time_stamp (srv, false, reply);
      return true;
   }
   bool in_txn = bson_has_field (cmd, "autocommit");
   uint32_t t0, i0, t1, i1; /* the clock before: a write that logged a change moved it already */
   int64_t timed_out = 0;
   dj_cluster_time_now (srv, &t0, &i0);
   /* (c->user: the cursors a command opens belong to the user who ran it) */
   if (dj_auth_command (srv, c, name, cmd, reply)) {
   } else if (dj_users_command (srv, db, name, cmd, reply)) {
   } else if (!strcmp (name, "configureFailPoint")) {
      dj_failpoint_configure (srv, db, cmd, reply);
   } else if (!strcmp (name, "getMore") && dj_failpoint_get_more (srv, reply)) {
      /* failGetMoreAfterCursorCheckout fired: its error is the reply */
   } else if (dj_failpoint_max_time (srv, name, cmd, &timed_out, reply)) {
      /* maxTimeAlwaysTimeOut fired: MaxTimeMSExpired is the reply; a
       * getMore's cursor ends with it */
      kill_cursor (srv, c, db, cmd, timed_out);
   } else if (dj_handshake_command (srv, c, db, name, cmd, reply)) {
   } else if (dj_sessions_run (srv->sessions, c->user, db, name, cmd, reply)) {
   } else if (dj_is_retryable_write (name, cmd)) {
      /* a retry of a write that succeeded gets the first reply; the
       * onPrimaryTransactionalWrite fail point drops the connection
       * before or after the write */
      if (!dj_sessions_retry_lookup (srv->sessions, cmd, reply)) {
         bool fail_before = false, drop = dj_failpoint_txn_write (srv, name, cmd, &fail_before);
         if (!(drop && fail_before)) {
            dj_engine_run_command_as (srv->engine, NULL, c->user, db, cmd, reply);
            dj_sessions_retry_record (srv->sessions, cmd, reply);
         }
         if (drop) {
            if (!fail_before) {
               bson_destroy (reply);
            }
            if (fired) {
               dj_fail_action_cleanup (&fa);
            }
            return false;
         }
      }
   } else {
      bson_t rewritten;
      if (!strcmp (name, "aggregate") && dj_sessions_rewrite_list (srv->sessions, cmd, &rewritten)) {
         dj_engine_run_command_as (srv->engine, NULL, c->user, db, &rewritten, reply);
         bson_destroy (&rewritten);
      } else {
         dj_engine_run_command_as (srv->engine, NULL, c->user, db, cmd, reply);
      }
   }
   if (!strcmp (name, "getMore") || !strcmp (name, "aggregate")) {
      dj_error_labels_stream (reply);
   }
   dj_failpoint_max_time_note (srv, name, cmd, reply);
   bool write = dj_is_write_command (name, cmd);
   if (write && (!in_txn || !strcmp (name, "commitTransaction"))) {
      dj_engine_write_concern_check (cmd, reply);
   }
   if (fired) {
      dj_fail_action_after (&fa, name, cmd, reply);
      dj_fail_action_cleanup (&fa);
   }
   dj_cluster_time_now (srv, &t1, &i1);
   /* A write outside a transaction that logged nothing (a delete that
    * matched nothing) still moves the clock, as mongod's no-op oplog entry
    * for a retryable write does. Inside a transaction nothing is logged
    * before the commit, and a commit of a transaction that wrote nothing
    * logs nothing (mongod writes no oplog entry for it): the clock stays,
    * and so do the drivers' cluster times -- libmongoc copies its whole
    * topology description each time a reply's $clusterTime is newer. */
   dj_cluster_time_stamp (srv, write && !in_txn && t1 == t0 && i1 == i0, reply);
   return true;
}

/* A command run on a worker thread (run_hosting). */
typedef struct {
   struct dj_server *srv;
   dj_conn_t *c;
   const char *db;
   const bson_t *cmd;
   bson_t *reply;
   bool keep;
} call_t;

static void
call_main (void *arg)
{
   call_t *a = arg;
   a->keep = run_command (a->srv, a->c, a->db, a->cmd, a->reply);
}

/* run_command, on a worker thread when this connection thread hosts a
 * transaction and cmd is not one of a transaction: a write outside it
 * would wait here for the write lock the hosted transaction holds, which
 * only this thread can let go (host.c); the thread serves its host while
 * it waits. */
static bool
run_hosting (struct dj_server *srv, dj_conn_t *c, const char *db, const bson_t *cmd, bson_t *reply)
{
   if (c->host && !bson_has_field (cmd, "autocommit") && dj_host_busy (c->host)) {
      call_t a = {srv, c, db, cmd, reply, false};
      if (dj_sessions_call (srv->sessions, call_main, &a)) {
         return a.keep;
      }
   }
   return run_command (srv, c, db, cmd, reply);
}

/* A getMore reply's cursor id when another batch should follow it
 * unasked: the cursor is open and this batch held documents (an empty one
 * is a tailable cursor with nothing new: the client asks again); else 0. */
static int64_t
open_cursor_id (const bson_t *reply)
{
   bson_iter_t it, b;
   if (bson_iter_init (&it, reply) && bson_iter_find_descendant (&it, "cursor.id", &it) && BSON_ITER_HOLDS_INT64 (&it) &&
       bson_iter_init (&b, reply) && bson_iter_find_descendant (&b, "cursor.nextBatch", &b) && BSON_ITER_HOLDS_ARRAY (&b)) {
      bson_iter_t first;
      if (bson_iter_recurse (&b, &first) && bson_iter_next (&first)) {
         return bson_iter_int64 (&it);
      }
   }
   return 0;
}

/* A request that came compressed (compressor >= 0) is answered with the
 * same compressor, as mongod does (an uncompressed request gets an
 * uncompressed reply: https://jira.mongodb.org/browse/SERVER-28008) -- but
 * never the handshake's or authentication's reply (the compression spec's
 * list). */
static void
compress_reply (struct dj_server *srv, const dj_wire_request_t *req, int compressor, dj_buf_t *out)
{
   size_t plain = out->len;
   if (compressor >= 0 && dj_compress_reply_allowed (req) && dj_wire_compress (out, 0, compressor)) {
      dj_compress_count (srv, compressor, true, (int64_t) (plain - DJ_WIRE_HEADER),
                         (int64_t) (out->len - DJ_WIRE_HEADER - 9));
   }
}

/* Sends the reply to req; for a getMore that allows exhaust (OP_MSG's
 * exhaustAllowed) whose cursor stays open, then the cursor's next batches
 * too, each with moreToCome and answering the one before, until it ends:
 * the client asks once. https://github.com/mongodb/specifications/blob/master/source/message/OP_MSG.md#exhaustallowed */
static bool
send_replies (struct dj_server *srv, dj_conn_t *c, const dj_wire_header_t *h, const dj_wire_request_t *req,
              bson_t *reply, int compressor, dj_buf_t *out)
{
   bson_iter_t it;
   bool exhaust = !req->legacy && (req->flags & DJ_MSG_EXHAUST_ALLOWED) && bson_iter_init (&it, req->cmd) &&
                  bson_iter_next (&it) && !strcmp (bson_iter_key (&it), "getMore");
   int64_t id = exhaust ? open_cursor_id (reply) : 0;
   int32_t answering = h->request_id, me = atomic_fetch_add (&srv->next_request_id, 1);
   out->len = 0;
   dj_wire_reply_to (req, reply, me, answering, id != 0, out);
   compress_reply (srv, req, compressor, out);
   bool ok = dj_io_transfer (c, out->data, out->len, true, -1, NULL);
   while (ok && id != 0) {
      bson_t next = BSON_INITIALIZER, more;
      bson_iter_t f;
      BSON_APPEND_INT64 (&next, "getMore", id);
      bson_iter_init (&f, req->cmd);
      while (bson_iter_next (&f)) { /* collection, batchSize, $db, lsid... as first asked */
         if (strcmp (bson_iter_key (&f), "getMore")) {
            bson_append_iter (&next, NULL, 0, &f);
         }
      }
      ok = run_command (srv, c, req->db, &next, &more);
      bson_destroy (&next);
      if (!ok) {
         break; /* closeConnection: no reply */
      }
      id = open_cursor_id (&more);
      answering = me;
      me = atomic_fetch_add (&srv->next_request_id, 1);
      out->len = 0;
      dj_wire_reply_to (req, &more, me, answering, id != 0, out);
      compress_reply (srv, req, compressor, out);
      bson_destroy (&more);
      ok = dj_io_transfer (c, out->data, out->len, true, -1, NULL);
   }
   return ok;
}

static void *
conn_main (void *arg)
{
   dj_conn_t *c = arg;
   struct dj_server *srv = c->srv;
   uint8_t *msg = NULL;
   dj_buf_t out;
   dj_buf_init (&out);
   int64_t held = 0; /* this connection's share of srv->incoming */
   /* TLS first, when the server speaks it: the handshake runs here, not
    * in the accept loop, so a slow client delays only itself */
   bool started = dj_io_start (srv, c);
   /* the transactions begun over this connection run on this thread (host.c) */
   dj_host_t *host = started ? dj_host_new (true) : NULL;
   if (host) {
      dj_host_enter (host);
   }
   c->host = host;
   while (started) {
      uint8_t head[DJ_WIRE_HEADER];
      dj_wire_header_t h;
      bson_error_t error = {0};
      bool timed_out = false;
      /* Between messages: with --auth, a connection that has not logged in
       * may stay silent --auth-timeout at most, so idle sockets cannot hold
       * the connection slots (a driver's monitoring connection, which never
       * logs in, sends hello far more often); otherwise --idle-timeout (0:
       * wait forever, as mongod does). */
      bool unauthenticated = srv->users && !c->user;
      int64_t idle_deadline = unauthenticated ? dj_monotonic_ms () + srv->auth_timeout_ms
                              : srv->idle_timeout_ms > 0 ? dj_monotonic_ms () + srv->idle_timeout_ms
                                                          : -1;
      if (!dj_io_wait_readable (c, idle_deadline)) {
         dj_server_log (srv, "conn%lld %s: %s; closing", (long long) c->id, c->peer,
                        unauthenticated ? "not authenticated in time (--auth-timeout)" : "idle (--idle-timeout)");
         break;
      }
      /* A message that has begun must arrive whole within
       * --message-timeout: a client trickling bytes (slowloris) cannot hold
       * a thread for ever. */
      int64_t deadline = dj_monotonic_ms () + srv->message_timeout_ms;
      if (unauthenticated && idle_deadline < deadline) {
         deadline = idle_deadline;
      }
      if (!dj_io_transfer (c, head, sizeof head, false, deadline, &timed_out)) {
         if (timed_out) {
            dj_server_log (srv, "conn%lld %s: message not complete in time (--message-timeout); closing",
                           (long long) c->id, c->peer);
         }
         break; /* the client left (or we are stopping) */
      }
      if (!dj_wire_read_header (head, &h, &error)) {
         dj_server_log (srv, "conn%lld %s: %s; closing", (long long) c->id, c->peer, error.message);
         break;
      }
      /* the memory messages being received hold, all connections together,
       * stays under --max-incoming-mb: many slow senders of large messages
       * cannot exhaust the machine's memory (each is bounded by the 48 MB
       * message limit, their sum by this) */
      held = (int64_t) h.length;
      if (atomic_fetch_add (&srv->incoming, held) + held > srv->max_incoming) {
         dj_server_log (srv, "conn%lld %s: a %lld-byte message would pass --max-incoming-mb; closing", (long long) c->id,
                        c->peer, (long long) held);
         break;
      }
      /* header and body in one buffer: OP_MSG's checksum covers both */
      msg = bson_malloc ((size_t) h.length);
      memcpy (msg, head, sizeof head);
      if (!dj_io_transfer (c, msg + DJ_WIRE_HEADER, (size_t) h.length - DJ_WIRE_HEADER, false, deadline, &timed_out)) {
         dj_server_log (srv, "conn%lld %s: %s; closing", (long long) c->id, c->peer,
                        timed_out ? "message not complete in time (--message-timeout)" : "truncated message");
         break;
      }
      int compressor = -1; /* OP_COMPRESSED's compressorId: the reply's too */
      if (h.opcode == DJ_OP_COMPRESSED) {
         /* what the decompressed message will hold counts against
          * --max-incoming-mb before it is allocated (the size is checked
          * against the maximum message size by dj_wire_decompress) */
         int32_t usize = h.length >= DJ_WIRE_HEADER + 9 ? dj_le32_read (msg + DJ_WIRE_HEADER + 4) : 0;
         if (usize > 0 && usize <= DJ_WIRE_MAX_MESSAGE) {
            held += usize;
            if (atomic_fetch_add (&srv->incoming, (long long) usize) + usize > srv->max_incoming) {
               dj_server_log (srv, "conn%lld %s: a %d-byte decompressed message would pass --max-incoming-mb; closing",
                              (long long) c->id, c->peer, usize);
               break;
            }
         }
         uint8_t *plain;
         dj_wire_header_t inner;
         if (!dj_wire_decompress (&h, msg, srv->compressors, &plain, &inner, &compressor, &error)) {
            dj_server_log (srv, "conn%lld %s: %s; closing", (long long) c->id, c->peer, error.message);
            break;
         }
         dj_compress_count (srv, compressor, false, h.length - DJ_WIRE_HEADER - 9, inner.length - DJ_WIRE_HEADER);
         bson_free (msg);
         msg = plain;
         h = inner;
      }
      dj_wire_request_t req;
      if (!dj_wire_parse (&h, msg + DJ_WIRE_HEADER, (size_t) h.length - DJ_WIRE_HEADER, &req, &error)) {
         dj_server_log (srv, "conn%lld %s: %s; closing", (long long) c->id, c->peer, error.message);
         break;
      }
      bson_free (msg);
      msg = NULL;
      atomic_fetch_sub (&srv->incoming, held);
      held = 0;
      bson_t reply;
      if (!run_hosting (srv, c, req.db, req.cmd, &reply)) {
         dj_wire_request_cleanup (&req);
         break; /* closeConnection: no reply */
      }
      bool reply_wanted = !(req.flags & DJ_MSG_MORE_TO_COME);
      bool ok = true;
      if (reply_wanted) {
         ok = send_replies (srv, c, &h, &req, &reply, compressor, &out);
      }
      bson_destroy (&reply);
      dj_wire_request_cleanup (&req);
      if (!ok) {
         break;
      }
   }
   atomic_fetch_sub (&srv->incoming, held);
   bson_free (msg);
   dj_buf_cleanup (&out);
   dj_io_close (c);
   /* OpenSSL keeps per-thread state (the random generator SCRAM's nonces
    * use, HMAC's): freed before this thread counts itself out, since the
    * server may exit as soon as the last one has */
   OPENSSL_thread_stop ();
   pthread_mutex_lock (&srv->mu);
   for (dj_conn_t **pp = &srv->conns; *pp; pp = &(*pp)->next) {
      if (*pp == c) {
         *pp = c->next;
         break;
      }
   }
   pthread_mutex_unlock (&srv->mu);
   /* a transaction this thread hosts outlives the connection (a driver may
    * end it over another one, or it ends past its lifetime, or at
    * shutdown): served until none is left, the thread still counted */
   dj_host_close (host);
   pthread_mutex_lock (&srv->mu);
   if (--srv->nconns == 0) {
      pthread_cond_broadcast (&srv->idle);
   }
   pthread_mutex_unlock (&srv->mu);
   bson_free (c->user);
   dj_auth_conv_free (c->conv);
   bson_free (c);
   return NULL;
}

/* ---- listening ------------------------------------------------------------- */

static void
addr_text (const struct sockaddr *sa, char *out, size_t n)
{
   char ip[INET6_ADDRSTRLEN] = "?";
   if (sa->sa_family == AF_INET) {
      const struct sockaddr_in *in = (const struct sockaddr_in *) sa;
      inet_ntop (AF_INET, &in->sin_addr, ip, sizeof ip);
      snprintf (out, n, "%s:%d", ip, ntohs (in->sin_port));
   } else if (sa->sa_family == AF_INET6) {
      const struct sockaddr_in6 *in = (const struct sockaddr_in6 *) sa;
      inet_ntop (AF_INET6, &in->sin6_addr, ip, sizeof ip);
      snprintf (out, n, "[%s]:%d", ip, ntohs (in->sin6_port));
   } else {
      snprintf (out, n, "unix");
   }
}

static int
listen_tcp (struct dj_server *srv, bson_error_t *error)
{
   struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res;
   char port[16];
   snprintf (port, sizeof port, "%d", srv->port == DJ_SERVER_ANY_PORT ? 0 : srv->port);
   int rc = getaddrinfo (srv->bind, port, &hints, &res);
   if (rc) {
      dj_error_set (error, DJ_DOMAIN_STORAGE, (uint32_t) rc, "cannot resolve bind address '%s': %s", srv->bind,
                    gai_strerror (rc));
      return -1;
   }
   int fd = socket (res->ai_family, res->ai_socktype | SOCK_CLOEXEC, res->ai_protocol);
   int one = 1;
   if (fd < 0 || setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
       bind (fd, res->ai_addr, res->ai_addrlen) || listen (fd, 128)) {
      dj_error_set (error, DJ_DOMAIN_STORAGE, (uint32_t) errno, "cannot listen on %s:%s: %s", srv->bind, port,
                    strerror (errno));
      if (fd >= 0) {
         close (fd);
      }
      freeaddrinfo (res);
      return -1;
   }
   freeaddrinfo (res);
   struct sockaddr_storage ss;
   socklen_t sl = sizeof ss;
   if (getsockname (fd, (struct sockaddr *) &ss, &sl) == 0) {
      srv->port = ntohs (ss.ss_family == AF_INET ? ((struct sockaddr_in *) &ss)->sin_port
                                                 : ((struct sockaddr_in6 *) &ss)->sin6_port);
   }
   return fd;
}

static int
listen_unix (struct dj_server *srv, bson_error_t *error)
{
   struct sockaddr_un sa = {.sun_family = AF_UNIX};
   if (strlen (srv->unix_path) >= sizeof sa.sun_path) {
      dj_error_set (error, DJ_DOMAIN_STORAGE, ENAMETOOLONG, "unix socket path too long: %s", srv->unix_path);
      return -1;
   }
   strcpy (sa.sun_path, srv->unix_path);
   unlink (srv->unix_path); /* a stale socket from a killed server */
   int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
   if (fd < 0 || bind (fd, (struct sockaddr *) &sa, sizeof sa) || listen (fd, 128)) {
      dj_error_set (error, DJ_DOMAIN_STORAGE, (uint32_t) errno, "cannot listen on %s: %s", srv->unix_path,
                    strerror (errno));
      if (fd >= 0) {
         close (fd);
      }
      return -1;
   }
   return fd;
}

dj_server_t *
dj_server_new (const dj_server_options_t *opts, bson_error_t *error)
{
   struct dj_server *srv = bson_malloc0 (sizeof *srv);
   srv->dbpath = bson_strdup (opts->dbpath);
   srv->bind = bson_strdup (opts->bind ? opts->bind : "127.0.0.1");
   srv->unix_path = opts->unix_path ? bson_strdup (opts->unix_path) : NULL;
   srv->port = opts->port ? opts->port : 27017;
   srv->max_connections = opts->max_connections > 0 ? opts->max_connections : 1000;
   srv->auth_timeout_ms = (int64_t) (opts->auth_timeout_s > 0 ? opts->auth_timeout_s : 20) * 1000;
   srv->idle_timeout_ms = (int64_t) (opts->idle_timeout_s > 0 ? opts->idle_timeout_s : 0) * 1000;
   srv->message_timeout_ms = (int64_t) (opts->message_timeout_s > 0 ? opts->message_timeout_s : 30) * 1000;
   srv->max_incoming = (int64_t) (opts->max_incoming_mb > 0 ? opts->max_incoming_mb : 1024) << 20;
   atomic_init (&srv->incoming, 0);
   srv->quiet = opts->quiet;
   srv->test_commands = opts->test_commands;
   for (int i = 0; i < DJ_COMPRESSORS; i++) {
      for (int k = 0; k < 4; k++) {
         atomic_init (&srv->compress_bytes[i][k], 0);
      }
   }
   bson_error_t compressors_error;
   bool compressors_ok = dj_compress_parse_list (opts->network_compressors, &srv->compressors, &compressors_error);
   srv->failpoint = dj_failpoint_new ();
   srv->txn_write_fp = dj_failpoint_new ();
   srv->getmore_fp = dj_failpoint_new ();
   srv->maxtime_fp = dj_failpoint_new ();
   bool clock_ok = dj_cluster_time_init (srv);
   srv->txn_lifetime_ms = (int64_t) (opts->txn_lifetime_s > 0 ? opts->txn_lifetime_s : 60) * 1000;
   srv->tcp_fd = srv->unix_fd = -1;
   srv->wake[0] = srv->wake[1] = -1;
   srv->started_ms = (int64_t) time (NULL) * 1000;
   bson_oid_init (&srv->process_id, NULL);
   atomic_init (&srv->stopping, false);
   atomic_init (&srv->next_request_id, 1);
   pthread_mutex_init (&srv->mu, NULL);
   pthread_cond_init (&srv->idle, NULL);
   dj_engine_options_t eo = {.flags = opts->engine_flags, .ttl_monitor_secs = opts->ttl_monitor_secs,
                             .change_log_size = (int64_t) opts->oplog_size_mb << 20};
   if (!(srv->engine = dj_engine_open (srv->dbpath, &eo, error))) {
      goto fail;
   }
   srv->sessions = dj_sessions_new (srv->engine, srv);
   if (!compressors_ok) {
      *error = compressors_error;
      goto fail;
   }
   if (!clock_ok) {
      dj_error_set (error, DJ_DOMAIN_STORAGE, EIO, "no random bytes for the cluster-time signing key");
      goto fail;
   }
   if (!dj_tls_init (srv, opts, error)) {
      goto fail;
   }
   if (opts->auth_file && !(srv->users = dj_users_load (opts->auth_file, error))) {
      goto fail;
   }
   if (pipe2 (srv->wake, O_CLOEXEC | O_NONBLOCK)) {
      dj_error_set (error, DJ_DOMAIN_STORAGE, (uint32_t) errno, "pipe: %s", strerror (errno));
      goto fail;
   }
   if (srv->port != DJ_SERVER_NO_TCP && (srv->tcp_fd = listen_tcp (srv, error)) < 0) {
      goto fail;
   }
   if (srv->unix_path && (srv->unix_fd = listen_unix (srv, error)) < 0) {
      goto fail;
   }
   return srv;
fail:
   dj_server_destroy (srv);
   return NULL;
}

int
dj_server_port (const dj_server_t *srv)
{
   return srv->port;
}

void
dj_server_stop (dj_server_t *srv)
{
   atomic_store (&srv->stopping, true);
   if (srv->wake[1] >= 0) {
      ssize_t w = write (srv->wake[1], "x", 1); /* async-signal-safe */
      (void) w;
   }
}

static void *
signal_main (void *arg)
{
   struct dj_server *srv = arg;
   sigset_t set;
   int sig;
   sigemptyset (&set);
   sigaddset (&set, SIGINT);
   sigaddset (&set, SIGTERM);
   if (sigwait (&set, &sig) == 0) {
      dj_server_log (srv, "signal %d: shutting down", sig);
      dj_server_stop (srv);
   }
   return NULL;
}

static void
accept_one (struct dj_server *srv, int lfd, bool tcp)
{
   struct sockaddr_storage peer, local;
   socklen_t pl = sizeof peer, ll = sizeof local;
   int fd = accept4 (lfd, (struct sockaddr *) &peer, &pl, SOCK_CLOEXEC);
   if (fd < 0) {
      return;
   }
   pthread_mutex_lock (&srv->mu);
   bool full = srv->nconns >= srv->max_connections;
   pthread_mutex_unlock (&srv->mu);
   if (full) {
      dj_server_log (srv, "connection refused: %d connections open (the maximum)", srv->max_connections);
      close (fd);
      return;
   }
   dj_conn_t *c = bson_malloc0 (sizeof *c);
   c->srv = srv;
   c->fd = fd;
   c->tcp = tcp;
   if (tcp) {
      int one = 1;
      setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      addr_text ((struct sockaddr *) &peer, c->peer, sizeof c->peer);
      if (getsockname (fd, (struct sockaddr *) &local, &ll) == 0) {
         addr_text ((struct sockaddr *) &local, c->local, sizeof c->local);
      }
   } else {
      snprintf (c->peer, sizeof c->peer, "%s", srv->unix_path);
      snprintf (c->local, sizeof c->local, "%s", srv->unix_path);
   }
   pthread_mutex_lock (&srv->mu);
   c->id = ++srv->next_conn_id;
   c->next = srv->conns;
   srv->conns = c;
   srv->nconns++;
   pthread_mutex_unlock (&srv->mu);
   pthread_t t;
   pthread_attr_t attr;
   pthread_attr_init (&attr);
   pthread_attr_setdetachstate (&attr, PTHREAD_CREATE_DETACHED);
   if (pthread_create (&t, &attr, conn_main, c) != 0) {
      dj_server_log (srv, "cannot start a connection thread: %s", strerror (errno));
      pthread_mutex_lock (&srv->mu);
      srv->conns = c->next;
      srv->nconns--;
      pthread_mutex_unlock (&srv->mu);
      close (fd);
      bson_free (c);
   }
   pthread_attr_destroy (&attr);
}

void
dj_server_run (dj_server_t *srv, bool handle_signals)
{
   pthread_t sig_thread;
   bool have_sig_thread = false;
   if (handle_signals) {
      /* every thread started from here on blocks the signals; one waits for them */
      sigset_t set;
      sigemptyset (&set);
      sigaddset (&set, SIGINT);
      sigaddset (&set, SIGTERM);
      pthread_sigmask (SIG_BLOCK, &set, NULL);
      have_sig_thread = pthread_create (&sig_thread, NULL, signal_main, srv) == 0;
   }
   dj_server_log (srv, "serving %s on %s:%d%s%s%s%s%s", srv->dbpath, srv->bind, srv->port,
                  srv->tls_mode == DJ_TLS_MODE_DISABLED ? "" : " (TLS: ",
                  srv->tls_mode == DJ_TLS_MODE_DISABLED ? "" : dj_tls_mode_name (srv->tls_mode),
                  srv->tls_mode == DJ_TLS_MODE_DISABLED ? "" : ")", srv->unix_path ? " and " : "",
                  srv->unix_path ? srv->unix_path : "");
   while (!atomic_load (&srv->stopping)) {
      struct pollfd p[3] = {{srv->wake[0], POLLIN, 0}, {srv->tcp_fd, POLLIN, 0}, {srv->unix_fd, POLLIN, 0}};
      int rc = poll (p, 3, 500);
      if (rc < 0) {
         if (errno == EINTR) {
            continue;
         }
         break;
      }
      dj_sessions_reap (srv->sessions, srv->txn_lifetime_ms);
      if (p[1].revents & POLLIN) {
         accept_one (srv, srv->tcp_fd, true);
      }
      if (p[2].revents & POLLIN) {
         accept_one (srv, srv->unix_fd, false);
      }
   }
   /* stop: no new connections; wake every connection thread and wait */
   pthread_mutex_lock (&srv->mu);
   for (dj_conn_t *c = srv->conns; c; c = c->next) {
      shutdown (c->fd, SHUT_RDWR);
   }
   while (srv->nconns > 0) {
      /* a connection may be waiting for the write lock an idle
       * transaction holds: abort those, so every thread can finish */
      pthread_mutex_unlock (&srv->mu);
      dj_sessions_reap (srv->sessions, -1);
      pthread_mutex_lock (&srv->mu);
      struct timespec until;
      clock_gettime (CLOCK_REALTIME, &until);
      until.tv_nsec += 200 * 1000 * 1000;
      if (until.tv_nsec >= 1000000000) {
         until.tv_sec++;
         until.tv_nsec -= 1000000000;
      }
      if (srv->nconns > 0) {
         pthread_cond_timedwait (&srv->idle, &srv->mu, &until);
      }
   }
   pthread_mutex_unlock (&srv->mu);
   if (have_sig_thread) {
      pthread_kill (sig_thread, SIGTERM); /* if it is still waiting */
      pthread_join (sig_thread, NULL);
   }
   dj_server_log (srv, "stopped");
}

void
dj_server_destroy (dj_server_t *srv)
{
   if (!srv) {
      return;
   }
   dj_sessions_destroy (srv->sessions);
   dj_users_destroy (srv->users);
   dj_engine_close (srv->engine);
   dj_tls_cleanup (srv);
   if (srv->tcp_fd >= 0) {
      close (srv->tcp_fd);
   }
   if (srv->unix_fd >= 0) {
      close (srv->unix_fd);
      unlink (srv->unix_path);
   }
   for (int i = 0; i < 2; i++) {
      if (srv->wake[i] >= 0) {
         close (srv->wake[i]);
      }
   }
   pthread_cond_destroy (&srv->idle);
   pthread_mutex_destroy (&srv->mu);
   dj_failpoint_destroy (srv->failpoint);
   dj_failpoint_destroy (srv->txn_write_fp);
   dj_failpoint_destroy (srv->getmore_fp);
   dj_failpoint_destroy (srv->maxtime_fp);
   DJ_FREE (srv->dbpath, srv->bind, srv->unix_path, srv);
}
