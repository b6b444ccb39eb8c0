/*
 * io.c -- a connection's bytes, over a plain socket or TLS (OpenSSL).
 *
 * server.c reads and writes messages through dj_io_wait_readable() and
 * dj_io_transfer() only, so the OP_MSG code does not know which one a
 * connection speaks. The connection's thread starts it (dj_io_start()):
 * under --tls-mode requireTLS, preferTLS or allowTLS it peeks at the first
 * bytes the client sends; a TLS ClientHello gets the TLS handshake, a plain
 * MongoDB message is served plain (allowTLS, preferTLS) or refused with a
 * log line (requireTLS). The modes are mongod's net.tls.mode:
 * https://www.mongodb.com/docs/manual/reference/configuration-options/#mongodb-setting-net.tls.mode
 * (preferTLS and allowTLS differ only in the connections a server makes to
 * other members, which this one never does: both accept TLS and plain).
 *
 * With --tls-ca-file, clients must present a certificate that file's CAs
 * signed, as mongod requires with net.tls.CAFile, unless
 * --tls-allow-connections-without-certificates (mongod's
 * net.tls.allowConnectionsWithoutCertificates): then a certificate is
 * checked when one is presented.
 *
 * A TLS socket is non-blocking: SSL_read/SSL_write ask for readability or
 * writability, which poll() waits for under the same deadlines as the plain
 * path (so a client trickling a record cannot hold a thread past
 * --message-timeout either). The SSL object belongs to the connection's
 * thread; the SSL_CTX is shared, read-only after dj_tls_new().
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "server-private.h"

int64_t
dj_monotonic_ms (void)
{
   struct timespec ts;
   clock_gettime (CLOCK_MONOTONIC, &ts);
   return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until fd has one of events (or is closed / failed) or the deadline
 * (monotonic ms; -1: none) passes: false on the deadline. With a host
 * (host.c), what other threads post to it runs meanwhile. */
static bool
wait_fd (int fd, short events, int64_t deadline, dj_host_t *host)
{
   int wake = dj_host_fd (host);
   for (;;) {
      int timeout = -1;
      if (deadline >= 0) {
         int64_t left = deadline - dj_monotonic_ms ();
         if (left <= 0) {
            return false;
         }
         timeout = left > INT32_MAX ? INT32_MAX : (int) left;
      }
      struct pollfd p[2] = {{fd, events, 0}, {wake, POLLIN, 0}};
      int rc = poll (p, wake >= 0 ? 2 : 1, timeout);
      if (rc > 0 && p[1].revents) {
         dj_host_serve (host);
      }
      if (rc > 0 && p[0].revents) {
         return true; /* ready, or closed: the transfer tells which */
      }
      if (rc < 0 && errno != EINTR) {
         return true; /* let the transfer report the error */
      }
   }
}

/* ---- the TLS context ---------------------------------------------------- */

/* The last OpenSSL error of this thread as text ("" when none), its queue
 * emptied. */
static void
ssl_error_text (char *out, size_t n)
{
   unsigned long e = ERR_peek_last_error ();
   if (e) {
      ERR_error_string_n (e, out, n);
   } else {
      snprintf (out, n, "%s", errno ? strerror (errno) : "connection closed");
   }
   ERR_clear_error ();
}

static bool
tls_config_error (bson_error_t *error, const char *what, const char *path)
{
   char why[256];
   ssl_error_text (why, sizeof why);
   return dj_error_set (error, DJ_DOMAIN_STORAGE, EINVAL, "%s %s: %s", what, path, why);
}

bool
dj_tls_init (struct dj_server *srv, const dj_server_options_t *opts, bson_error_t *error)
{
   int mode = opts->tls_mode;
   if (mode == DJ_TLS_MODE_DEFAULT) {
      /* a certificate alone turns TLS on for every connection */
      mode = opts->tls_cert_key_file ? DJ_TLS_MODE_REQUIRE : DJ_TLS_MODE_DISABLED;
   }
   srv->tls_mode = mode;
   if (mode == DJ_TLS_MODE_DISABLED) {
      if (opts->tls_cert_key_file || opts->tls_ca_file) {
         return dj_error_set (error, DJ_DOMAIN_STORAGE, EINVAL,
                              "TLS certificates given with --tls-mode disabled: drop them or choose another mode");
      }
      return true;
   }
   if (!opts->tls_cert_key_file) {
      return dj_error_set (error, DJ_DOMAIN_STORAGE, EINVAL,
                           "--tls-mode %s needs the server's certificate and key (--tls-cert-key-file PEM)",
                           dj_tls_mode_name (mode));
   }
   ERR_clear_error ();
   SSL_CTX *ctx = SSL_CTX_new (TLS_server_method ());
   if (!ctx) {
      return tls_config_error (error, "cannot create a TLS context for", opts->tls_cert_key_file);
   }
   srv->tls_ctx = ctx; /* owned: freed by dj_tls_cleanup() */
   /* MongoDB refuses TLS 1.0 where 1.1+ exists; OpenSSL 3's default
    * security level refuses 1.1 too: 1.2 is the floor. */
   SSL_CTX_set_min_proto_version (ctx, TLS1_2_VERSION);
   /* a partial write is resumed from where it stopped (the reply buffer
    * does not move, but may be retried from another address) */
   SSL_CTX_set_mode (ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
   /* sessions resumed by a client must have been verified by this server */
   static const unsigned char sid_ctx[] = "djongo-server";
   SSL_CTX_set_session_id_context (ctx, sid_ctx, sizeof sid_ctx - 1);
   /* mongod's certificateKeyFile: the certificate (its chain after it)
    * and the private key in one PEM file */
   if (SSL_CTX_use_certificate_chain_file (ctx, opts->tls_cert_key_file) != 1) {
      return tls_config_error (error, "cannot read the certificate of --tls-cert-key-file", opts->tls_cert_key_file);
   }
   if (SSL_CTX_use_PrivateKey_file (ctx, opts->tls_cert_key_file, SSL_FILETYPE_PEM) != 1) {
      return tls_config_error (error, "cannot read the private key of --tls-cert-key-file", opts->tls_cert_key_file);
   }
   if (SSL_CTX_check_private_key (ctx) != 1) {
      return tls_config_error (error, "the private key does not match the certificate in", opts->tls_cert_key_file);
   }
   if (opts->tls_ca_file) {
      if (SSL_CTX_load_verify_locations (ctx, opts->tls_ca_file, NULL) != 1) {
         return tls_config_error (error, "cannot read the CA certificates of --tls-ca-file", opts->tls_ca_file);
      }
      /* the CAs the client is told its certificate must come from */
      STACK_OF (X509_NAME) *names = SSL_load_client_CA_file (opts->tls_ca_file);
      if (names) {
         SSL_CTX_set_client_CA_list (ctx, names); /* steals names */
      }
      SSL_CTX_set_verify (ctx, SSL_VERIFY_PEER | (opts->tls_allow_no_cert ? 0 : SSL_VERIFY_FAIL_IF_NO_PEER_CERT),
                          NULL);
   }
   ERR_clear_error ();
   return true;
}

void
dj_tls_cleanup (struct dj_server *srv)
{
   SSL_CTX_free (srv->tls_ctx);
   srv->tls_ctx = NULL;
}

const char *
dj_tls_mode_name (int mode)
{
   switch (mode) {
   case DJ_TLS_MODE_REQUIRE:
      return "requireTLS";
   case DJ_TLS_MODE_PREFER:
      return "preferTLS";
   case DJ_TLS_MODE_ALLOW:
      return "allowTLS";
   default:
      return "disabled";
   }
}

int
dj_tls_mode_from_name (const char *name)
{
   for (int mode = DJ_TLS_MODE_DISABLED; mode <= DJ_TLS_MODE_REQUIRE; mode++) {
      if (!strcmp (name, dj_tls_mode_name (mode))) {
         return mode;
      }
   }
   return DJ_TLS_MODE_DEFAULT;
}

/* ---- starting a connection ---------------------------------------------- */

/* Does the client open with a TLS ClientHello? A TLS record header is
 * content type 22 (handshake), version 3.x, a two-byte length, then the
 * handshake type 1 (ClientHello); a MongoDB message opens with its
 * little-endian length and request id, which match all of these only for
 * lengths 0x..0316 with a request id whose second byte is 1. Peeks (the
 * bytes stay for whichever reads them); -1 when the client sent nothing
 * whole by the deadline or left. */
static int
starts_with_client_hello (int fd, int64_t deadline)
{
   uint8_t b[6];
   for (;;) {
      if (!wait_fd (fd, POLLIN, deadline, NULL)) {
         return -1;
      }
      ssize_t r = recv (fd, b, sizeof b, MSG_PEEK);
      if (r < 0 && errno == EINTR) {
         continue;
      }
      if (r <= 0) {
         return -1;
      }
      if (b[0] != 0x16) {
         return 0; /* no TLS record can start otherwise: decided on one byte */
      }
      if ((size_t) r == sizeof b) {
         return b[1] == 3 && b[2] <= 4 && b[5] == 1;
      }
      /* a partial header: wait for the rest (poll stays readable while
       * peeked bytes wait, so sleep a little rather than spin) */
      struct timespec ts = {0, 2 * 1000 * 1000};
      nanosleep (&ts, NULL);
      if (deadline >= 0 && dj_monotonic_ms () >= deadline) {
         return -1;
      }
   }
}

/* Runs the TLS handshake on a non-blocking socket until done, failed or the
 * deadline. */
static bool
tls_handshake (struct dj_server *srv, dj_conn_t *c, int64_t deadline)
{
   SSL *ssl = SSL_new (srv->tls_ctx);
   if (!ssl || SSL_set_fd (ssl, c->fd) != 1) {
      char why[256];
      ssl_error_text (why, sizeof why);
      dj_server_log (srv, "conn%lld %s: cannot start TLS: %s; closing", (long long) c->id, c->peer, why);
      SSL_free (ssl);
      return false;
   }
   c->ssl = ssl; /* owned by the connection: dj_io_close() frees it */
   int fl = fcntl (c->fd, F_GETFL);
   if (fl < 0 || fcntl (c->fd, F_SETFL, fl | O_NONBLOCK) < 0) {
      dj_server_log (srv, "conn%lld %s: cannot make the socket non-blocking: %s; closing", (long long) c->id, c->peer,
                     strerror (errno));
      return false;
   }
   for (;;) {
      ERR_clear_error ();
      errno = 0;
      int r = SSL_accept (ssl);
      if (r == 1) {
         c->tls = true;
         return true;
      }
      int e = SSL_get_error (ssl, r);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
         if (!wait_fd (c->fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline, NULL)) {
            dj_server_log (srv, "conn%lld %s: TLS handshake not complete in time (--message-timeout); closing",
                           (long long) c->id, c->peer);
            ERR_clear_error ();
            return false;
         }
         continue;
      }
      char why[256];
      long verify = SSL_get_verify_result (ssl);
      if (verify != X509_V_OK) {
         snprintf (why, sizeof why, "client certificate: %s", X509_verify_cert_error_string (verify));
         ERR_clear_error ();
      } else {
         ssl_error_text (why, sizeof why);
      }
      dj_server_log (srv, "conn%lld %s: TLS handshake failed: %s; closing", (long long) c->id, c->peer, why);
      return false;
   }
}

bool
dj_io_start (struct dj_server *srv, dj_conn_t *c)
{
   /* OpenSSL writes with write(2), not send(MSG_NOSIGNAL): a client gone
    * mid-reply would raise SIGPIPE, which kills a process by default. The
    * signal goes to the writing thread; blocked in this one it stays
    * pending (the write fails with EPIPE) and is discarded when the thread
    * ends, so the process's disposition is left alone (the server may be
    * a library in someone's process). */
   sigset_t pipe_set;
   sigemptyset (&pipe_set);
   sigaddset (&pipe_set, SIGPIPE);
   pthread_sigmask (SIG_BLOCK, &pipe_set, NULL);
   if (srv->tls_mode == DJ_TLS_MODE_DISABLED || !c->tcp) {
      return true; /* the unix socket is local: plain, as mongod's */
   }
   int64_t deadline = dj_monotonic_ms () + srv->message_timeout_ms;
   int hello = starts_with_client_hello (c->fd, deadline);
   if (hello < 0) {
      return false; /* gone before saying anything */
   }
   if (hello) {
      return tls_handshake (srv, c, deadline);
   }
   if (srv->tls_mode == DJ_TLS_MODE_REQUIRE) {
      dj_server_log (srv, "conn%lld %s: plain (non-TLS) connection refused: the server runs with --tls-mode requireTLS; "
                     "closing",
                     (long long) c->id, c->peer);
      return false;
   }
   return true; /* allowTLS / preferTLS: plain clients too */
}

/* ---- reading and writing -------------------------------------------------- */

bool
dj_io_wait_readable (dj_conn_t *c, int64_t deadline)
{
   if (c->ssl && SSL_pending (c->ssl) > 0) {
      return true; /* decrypted bytes wait in OpenSSL, not in the socket */
   }
   return wait_fd (c->fd, POLLIN, deadline, c->host);
}

/* The plain path: blocking send/recv, a poll before each receive when
 * there is a deadline. */
static bool
plain_transfer (int fd, uint8_t *p, size_t n, bool sending, int64_t deadline, bool *timed_out)
{
   while (n) {
      if (!sending && deadline >= 0 && !wait_fd (fd, POLLIN, deadline, NULL)) {
         *timed_out = true;
         return false;
      }
      ssize_t r = sending ? send (fd, p, n, MSG_NOSIGNAL) : recv (fd, p, n, 0);
      if (r < 0 && errno == EINTR) {
         continue;
      }
      if (r <= 0) { /* 0: recv's end of stream */
         return false;
      }
      p += r;
      n -= (size_t) r;
   }
   return true;
}

/* The TLS path: SSL_read/SSL_write on the non-blocking socket, waiting for
 * whatever OpenSSL asks for (a write may need to read, during a
 * renegotiation or key update, and the other way round). A retried
 * operation gets the same buffer and length, as OpenSSL requires. */
static bool
tls_transfer (dj_conn_t *c, uint8_t *p, size_t n, bool sending, int64_t deadline, bool *timed_out)
{
   while (n) {
      int want = n > INT32_MAX ? INT32_MAX : (int) n;
      ERR_clear_error ();
      int r = sending ? SSL_write (c->ssl, p, want) : SSL_read (c->ssl, p, want);
      if (r > 0) {
         p += r;
         n -= (size_t) r;
         continue;
      }
      int e = SSL_get_error (c->ssl, r);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
         if (!wait_fd (c->fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, sending ? -1 : deadline, NULL)) {
            *timed_out = true;
            return false;
         }
         continue;
      }
      ERR_clear_error (); /* the peer left or the stream broke: the caller closes */
      return false;
   }
   return true;
}

bool
dj_io_transfer (dj_conn_t *c, uint8_t *p, size_t n, bool sending, int64_t deadline, bool *timed_out)
{
   return c->ssl ? tls_transfer (c, p, n, sending, deadline, timed_out)
                 : plain_transfer (c->fd, p, n, sending, deadline, timed_out);
}

void
dj_io_close (dj_conn_t *c)
{
   if (c->ssl) {
      if (c->tls) {
         ERR_clear_error ();
         SSL_shutdown (c->ssl); /* one close_notify, not waiting for the client's */
         ERR_clear_error ();
      }
      SSL_free (c->ssl);
      c->ssl = NULL;
   }
   close (c->fd);
}
