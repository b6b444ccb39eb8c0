/*
 * transport-private.h -- what the transport's files share. Not installed.
 *
 *   transport.c  the seam: the embedded engine or libmongoc, transactions
 *   uri.c        a server HOST + connection options -> mongoc_uri_t
 *   concerns.c   read preference, read concern, write concern: parsed and
 *                judged per transport
 *   pool.c       one libmongoc client pool per server per process, fork-aware
 */
#ifndef DJ_TRANSPORT_PRIVATE_H
#define DJ_TRANSPORT_PRIVATE_H

#include <mongoc/mongoc.h>

/* The URI of a server HOST (a mongodb:// or mongodb+srv:// URI, or a host
 * name[:port]) with @p options (NULL: none; see dj_transport_open_with())
 * set through libmongoc's URI API. Returns a URI the caller owns
 * (mongoc_uri_destroy()), or NULL with @p error naming the option. No
 * network: mongodb+srv:// is resolved when the client starts. */
mongoc_uri_t *dj_transport_uri (const char *host, const bson_t *options, bson_error_t *error);

/* What a pooled client keeps for retryable writes across the transports
 * that pop it: an explicit session held out of libmongoc's session pool
 * for the client's life (the pool's), and the last transaction number sent
 * on it. Retryable writes number their statements themselves (libmongoc
 * does not number an insert/update/delete sent as a command); a session
 * given back to libmongoc's pool would come out again -- to another
 * transport, or as an implicit session whose findAndModify libmongoc
 * numbers from its own counter -- and repeat a number this lsid has
 * already used, which the server answers with the earlier write's stored
 * reply: a write acknowledged and never applied. Used by one transport at
 * a time (the one that popped the client). */
typedef struct {
   mongoc_client_session_t *session; /* started on first use; never destroyed (see above) */
   int64_t txn_number;               /* the last number sent with session's lsid (from 2^40: transport.c, retryable_write) */
} dj_pool_writer_t;

/* A client from this process's pool for HOST + @p options (made on first
 * use: dj_transport_uri()'s URI, appname "djongo" unless given, error API
 * 2, @p started as the command-started APM callback with a NULL context).
 * Waits while the pool's maxPoolSize clients are out. Returns the client,
 * which goes back with mongoc_client_pool_push (*from, client), and sets
 * *from and *writer (the client's, owned by the pool); NULL with @p error
 * for a bad URI. */
mongoc_client_t *dj_pool_pop (const char *host, const bson_t *options, mongoc_client_pool_t **from,
                              dj_pool_writer_t **writer, void (*started) (const mongoc_apm_command_started_t *),
                              bson_error_t *error);

/* A read preference, read concern and write concern, each NULL when not
 * given (then the connection's own applies). Each part owned. */
typedef struct {
   mongoc_read_prefs_t *read_prefs;
   mongoc_read_concern_t *read_concern;
   mongoc_write_concern_t *write_concern;
} dj_concerns_t;

/* Whether a connection option names a part of them (any case). */
bool dj_concerns_key (const char *key);

/* Reads the concern options of @p doc (NULL: none) into @p out (set even
 * on failure: empty). With @p only_concerns, any other key is an error,
 * else others are skipped. @p embedded: refuses a read preference a
 * one-node deployment cannot serve (MONGOC_ERROR_SERVER_SELECTION). Errors
 * as uri.c's. */
bool dj_concerns_parse (const bson_t *doc, bool embedded, bool only_concerns, dj_concerns_t *out,
                        bson_error_t *error);

/* Frees the parts; @p c is then empty. */
void dj_concerns_clear (dj_concerns_t *c);

#endif
