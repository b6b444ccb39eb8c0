/*
 * kms.c -- a KMS provider's request (AWS, Azure, GCP, KMIP) over TLS.
 *
 * libmongocrypt builds each HTTP (or KMIP) message and parses the reply;
 * moving the bytes is the driver's job: connect to the endpoint it names
 * (host[:port], port 443 when absent, as MongoDB's drivers default), TLS
 * with the system's CA certificates (libmongoc's stream, verified against
 * the host name), write the message, read while bytes are needed.
 * The "local" provider never gets here.
 * https://github.com/mongodb/specifications/ "Client Side Encryption": KMS
 * requests are made by the driver, one TLS connection per request.
 */
#include <netdb.h>
#include <string.h>

#include <mongoc/mongoc.h>

#include "crypt-private.h"
#include "dj_error.h"

#define KMS_TIMEOUT_MS 10000

static mongoc_stream_t *
connect_tcp (const char *host, const char *port, bson_error_t *error)
{
   struct addrinfo hints = {0}, *res = NULL;
   hints.ai_family = AF_UNSPEC;
   hints.ai_socktype = SOCK_STREAM;
   int rc = getaddrinfo (host, port, &hints, &res);
   if (rc) {
      dj_error_set (error, DJ_DOMAIN_CRYPT, 1, "KMS endpoint %s:%s: %s", host, port, gai_strerror (rc));
      return NULL;
   }
   mongoc_stream_t *stream = NULL;
   for (struct addrinfo *ai = res; ai && !stream; ai = ai->ai_next) {
      mongoc_socket_t *sock = mongoc_socket_new (ai->ai_family, SOCK_STREAM, 0);
      if (!sock) {
         continue;
      }
      int64_t expire = bson_get_monotonic_time () + KMS_TIMEOUT_MS * 1000;
      if (mongoc_socket_connect (sock, ai->ai_addr, (mongoc_socklen_t) ai->ai_addrlen, expire) == 0) {
         stream = mongoc_stream_socket_new (sock); /* steals sock */
      } else {
         mongoc_socket_destroy (sock);
      }
   }
   freeaddrinfo (res);
   if (!stream) {
      dj_error_set (error, DJ_DOMAIN_CRYPT, 1, "KMS endpoint %s:%s: cannot connect", host, port);
   }
   return stream;
}

bool
dj_crypt_kms_exchange (mongocrypt_kms_ctx_t *kms, bson_error_t *error)
{
   const char *endpoint = NULL;
   if (!mongocrypt_kms_ctx_endpoint (kms, &endpoint) || !endpoint) {
      dj_error_set (error, DJ_DOMAIN_CRYPT, 1, "KMS request without an endpoint");
      return false;
   }
   char host[256], port[16] = "443";
   const char *colon = strrchr (endpoint, ':');
   size_t hlen = colon ? (size_t) (colon - endpoint) : strlen (endpoint);
   if (hlen == 0 || hlen >= sizeof host || (colon && strlen (colon + 1) >= sizeof port)) {
      dj_error_set (error, DJ_DOMAIN_CRYPT, 1, "KMS endpoint \"%s\" is not host[:port]", endpoint);
      return false;
   }
   memcpy (host, endpoint, hlen);
   host[hlen] = '\0';
   if (colon) {
      bson_strncpy (port, colon + 1, sizeof port);
   }
   mongoc_stream_t *base = connect_tcp (host, port, error);
   if (!base) {
      return false;
   }
   mongoc_ssl_opt_t ssl = *mongoc_ssl_opt_get_default ();
   mongoc_stream_t *tls = mongoc_stream_tls_new_with_hostname (base, host, &ssl, 1); /* steals base */
   if (!tls) {
      mongoc_stream_destroy (base);
      dj_error_set (error, DJ_DOMAIN_CRYPT, 1, "KMS endpoint %s: cannot start TLS", endpoint);
      return false;
   }
   bool ok = mongoc_stream_tls_handshake_block (tls, host, KMS_TIMEOUT_MS, error);
   if (ok) {
      mongocrypt_binary_t *msg = mongocrypt_binary_new ();
      ok = mongocrypt_kms_ctx_message (kms, msg);
      if (ok) {
         mongoc_iovec_t iov = {.iov_base = mongocrypt_binary_data (msg), .iov_len = mongocrypt_binary_len (msg)};
         ok = mongoc_stream_writev (tls, &iov, 1, KMS_TIMEOUT_MS) == (ssize_t) iov.iov_len;
      }
      mongocrypt_binary_destroy (msg);
      if (!ok) {
         dj_error_set (error, DJ_DOMAIN_CRYPT, 1, "KMS endpoint %s: cannot send the request", endpoint);
      }
   } else {
      dj_error_set (error, DJ_DOMAIN_CRYPT, error->code, "KMS endpoint %s: TLS handshake: %s", endpoint,
                    error->message);
   }
   uint8_t buf[4096];
   uint32_t need;
   while (ok && (need = mongocrypt_kms_ctx_bytes_needed (kms)) > 0) {
      size_t want = need < sizeof buf ? need : sizeof buf;
      ssize_t got = mongoc_stream_read (tls, buf, want, 1, KMS_TIMEOUT_MS);
      if (got <= 0) {
         dj_error_set (error, DJ_DOMAIN_CRYPT, 1, "KMS endpoint %s: the connection closed mid-reply", endpoint);
         ok = false;
         break;
      }
      mongocrypt_binary_t *b = mongocrypt_binary_new_from_data (buf, (uint32_t) got);
      ok = mongocrypt_kms_ctx_feed (kms, b);
      mongocrypt_binary_destroy (b);
      if (!ok) {
         mongocrypt_status_t *st = mongocrypt_status_new ();
         mongocrypt_kms_ctx_status (kms, st);
         dj_error_set (error, DJ_DOMAIN_CRYPT, mongocrypt_status_code (st), "KMS reply: %s",
                       mongocrypt_status_message (st, NULL));
         mongocrypt_status_destroy (st);
      }
   }
   mongoc_stream_destroy (tls);
   return ok;
}
