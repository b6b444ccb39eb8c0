/*
 * dj_bson_depth.h -- how deeply a BSON document nests, found without recursion.
 *
 * libbson's bson_validate() and every recursive walk of ours use one C stack
 * frame per level, so a document nested a few thousand levels deep (seven
 * bytes a level: ~70 KB for 10,000 levels) would overflow the stack of the
 * thread reading it -- before any limit could be checked by a walk that
 * recurses. dj_bson_depth_ok() runs first, over the raw bytes, with an
 * explicit stack of fixed size, wherever untrusted BSON enters: the wire
 * server's message reader and dj_engine_run_command().
 *
 * MongoDB stores documents nested at most 100 levels (storage/store.c
 * refuses deeper ones, DJ_MAX_STORED_DEPTH); commands and messages carry
 * them inside a few levels of their own, hence the larger bound here.
 * https://www.mongodb.com/docs/manual/reference/limits/#mongodb-limit-Nested-Depth-for-BSON-Documents
 */
#ifndef DJ_BSON_DEPTH_H
#define DJ_BSON_DEPTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The deepest nesting below a command or message's top-level document that
 * is read at all (the engine's own recursive checks use the same bound). */
#define DJ_BSON_MAX_DEPTH 180

/*
 * dj_bson_depth_ok --
 *    Whether the document in data[0..len) is well framed (every element's
 *    type is known and its length fits inside its parent) and nests no
 *    deeper than max_depth levels below the top document. Arrays, embedded
 *    documents and a code-with-scope's scope each count as a level. It
 *    checks framing only: string encodings and the rest are left to
 *    bson_validate(), which is safe to call once this said yes.
 *    max_depth must not exceed DJ_BSON_MAX_DEPTH.
 */
bool dj_bson_depth_ok (const uint8_t *data, size_t len, int max_depth);

#endif
