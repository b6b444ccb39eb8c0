/*
 * dj_keep.h -- objects built from bytes, kept for the next user of the
 * same bytes, one user at a time.
 *
 * What a parse builds often depends on nothing but the bytes it parsed: a
 * collection from its catalog entry, a find projection from its spec. A
 * dj_keep_t holds a few such objects, each under a copy of its bytes, so
 * that the next command that finds the very same bytes takes the object
 * instead of building it again. Bytes that differ by one bit are another
 * key: a keep never needs invalidating.
 *
 * Taking an object removes it: it is the taker's alone (objects with
 * per-use state -- matchers, arenas -- are never shared between threads)
 * until it is put back. Two users of the same bytes at once: the second
 * finds nothing and builds its own; whichever is put back last stays.
 * A full keep replaces the object put back longest ago.
 *
 * Threads: every function may be called from any thread (one mutex per
 * keep). Ownership: a keep owns what it holds and frees it with the
 * free function given to dj_keep_new (at dj_keep_destroy, or when
 * replaced); dj_keep_take hands ownership to the caller, dj_keep_put
 * takes it back.
 */
#ifndef DJ_KEEP_H
#define DJ_KEEP_H

#include <stddef.h>

typedef struct dj_keep dj_keep_t;
typedef void (*dj_keep_free_fn) (void *obj);

/* A keep of at most `slots` objects, freed with free_fn. */
dj_keep_t *dj_keep_new (int slots, dj_keep_free_fn free_fn);
/* Frees the keep and what it holds (NULL: nothing). */
void dj_keep_destroy (dj_keep_t *keep);
/* The object kept under exactly key[0..len), now the caller's; NULL when
 * there is none. */
void *dj_keep_take (dj_keep_t *keep, const void *key, size_t len);
/* Keeps obj (stolen) under a copy of key[0..len), in place of an object
 * under the same key, else in a free slot, else in place of the oldest
 * (those are freed). */
void dj_keep_put (dj_keep_t *keep, const void *key, size_t len, void *obj);

#endif
