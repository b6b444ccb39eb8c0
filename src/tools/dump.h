/*
 * dump.h -- djongo-engine dump / restore (dump.c): databases in
 * mongodump's layout (DIR/<db>/<collection>.bson + .metadata.json), over
 * the transport seam, so either end may be a data directory or a server.
 */
#ifndef DJ_DUMP_H
#define DJ_DUMP_H

#include <stdbool.h>

#include "dj_transport.h"

/* Writes every database (or only_db; NULL: all but local and config) to
 * out_dir. Returns the exit status (0, or 1 with the reason on stderr). */
int dj_dump (dj_transport_t *t, const char *out_dir, const char *only_db);

/* Restores every database directory of in_dir; drop: each collection is
 * dropped first. Returns the exit status (1 when something failed or a
 * document was not inserted, e.g. its _id existed). */
int dj_restore (dj_transport_t *t, const char *in_dir, bool drop);

#endif
