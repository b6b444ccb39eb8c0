/*
 * transport-private.h -- what the transport's files share. Not installed.
 *
 *   transport.c  the seam: the embedded engine or libmongoc, transactions
 *   uri.c        a server HOST + connection options -> mongoc_uri_t
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

#endif
