/*
 * dj_bson_keys.h -- a document with some of its keys renamed, at every level.
 *
 * libbson's Extended JSON reader takes some keys for its own syntax ("$type"
 * beside "$binary", "$regex" ...), so text that means them as plain field
 * names is read with those keys renamed, and the names are put back in the
 * parsed document with dj_bson_rename_keys (dump.c's restore, the engine
 * script runner's legacy operators).
 */
#ifndef DJ_BSON_KEYS_H
#define DJ_BSON_KEYS_H

#include <bson/bson.h>

/* The name key gets: key itself, a constant, or buf (size bytes) filled in. */
typedef const char *(*dj_key_rename_fn) (const char *key, char *buf, size_t size);

/* A new document (the caller's to bson_destroy) equal to doc but for its
 * keys, at every level of documents and arrays, renamed by rename. doc is
 * destroyed: it is the renamed one's draft. */
bson_t *dj_bson_rename_keys (bson_t *doc, dj_key_rename_fn rename);

#endif
