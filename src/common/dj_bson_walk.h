/*
 * dj_bson_walk.h -- a document's elements read in order straight from its
 * bytes: what bson_iter_next() gives, at a fraction of its cost.
 *
 * libbson's iterator fills a dozen offsets per element whatever its type,
 * about 80 instructions an element; the paths that read every field of
 * every row (a select list's projection, a cursor's rows handed to the
 * executor and to Python) need only the element's type, key and value
 * bytes. dj_bwalk_next() finds those with libbson's bounds checks (a
 * length inside the document, a string's or a key's terminating 0) and
 * stops -- returning false, with `bad` set -- where libbson's iterator
 * reports an error, or earlier at a value it lets through but nobody can
 * read (a document shorter than 5 bytes, a value over the document's
 * terminator): a malformed document is never read past its end, and a
 * valid one is read exactly as libbson reads it (tests/engine/test_bson_walk.c).
 *
 * Usage:
 *    dj_bwalk_t w;
 *    dj_bwalk_init (&w, bson_get_data (doc), doc->len);
 *    while (dj_bwalk_next (&w)) { ... w.type, w.key, w.val ... }
 *
 * Memory: a walk borrows the bytes it reads (valid while they are); it
 * allocates nothing.
 */
#ifndef DJ_BSON_WALK_H
#define DJ_BSON_WALK_H

#include <bson/bson.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "dj_buf.h"

typedef struct {
   const uint8_t *p;   /**< the next element's type byte */
   const uint8_t *end; /**< the document's trailing 0 */
   uint8_t type;       /**< the current element's bson_type_t */
   const char *key;    /**< its key (0-terminated) */
   uint32_t key_len;
   const uint8_t *val; /**< its value's bytes [val, val + val_len) */
   uint32_t val_len;
   bool bad; /**< the walk stopped at a malformed element */
} dj_bwalk_t;

/* The little-endian uint32 at p (BSON's lengths), read without an
 * alignment assumption. */
static inline uint32_t
dj_bwalk_u32 (const uint8_t *p)
{
   uint32_t n;
   memcpy (&n, p, 4);
   return BSON_UINT32_FROM_LE (n);
}

/*
 * dj_bwalk_init --
 *    Starts a walk over the document of `len` bytes at data; false (and a
 *    walk with nothing to read) when its length prefix or terminator is
 *    wrong.
 */
static inline bool
dj_bwalk_init (dj_bwalk_t *w, const uint8_t *data, uint32_t len)
{
   bool ok = len >= 5 && dj_bwalk_u32 (data) == len && data[len - 1] == 0;
   w->p = ok ? data + 4 : data;
   w->end = ok ? data + len - 1 : data;
   w->bad = !ok;
   return ok;
}

/* The size + 1 of each type's value when it is fixed, else 0: a
 * string's read here, the others' in dj_bwalk_value_size (dj_bson_walk.c). */
extern const uint8_t dj_bwalk_fixed[256];

/* The value size of the element of `type` whose value starts at v, with
 * `room` bytes before the document's end; 0 with *ok false when it is
 * malformed. */
uint32_t dj_bwalk_value_size (uint8_t type, const uint8_t *v, size_t room, bool *ok);

/*
 * dj_bwalk_value_len --
 *    The size of the value of `type` that starts at v, with `room` bytes
 *    before the document's end, with dj_bwalk_next's checks: *ok false
 *    when it is malformed or runs past the end.
 */
static inline uint32_t
dj_bwalk_value_len (uint8_t t, const uint8_t *v, size_t room, bool *ok)
{
   uint32_t n = (uint32_t) dj_bwalk_fixed[t] - 1, l;
   bool good = true;
   if (!dj_bwalk_fixed[t]) {
      if (t == BSON_TYPE_UTF8 && room >= 5) {
         l = dj_bwalk_u32 (v);
         good = l >= 1 && l <= room - 4 && v[4 + l - 1] == 0;
         n = 4 + l;
      } else if ((t == BSON_TYPE_DOCUMENT || t == BSON_TYPE_ARRAY) && room >= 4) {
         /* (a batch's or a result's rows: a walk meets one at every step) */
         n = dj_bwalk_u32 (v);
         good = n >= 5;
      } else {
         n = dj_bwalk_value_size (t, v, room, &good);
      }
   }
   *ok = good && n <= room;
   return n;
}

/* The element at w->p, whose key ends at z (its 0, found by the caller),
 * made the current one once its value's size is checked: the rest of
 * dj_bwalk_next() and dj_bwalk_next_named(). */
static inline bool
dj_bwalk_take (dj_bwalk_t *w, const uint8_t *z)
{
   const uint8_t *k = w->p + 1;
   const uint8_t *v = z + 1;
   uint8_t t = w->p[0];
   bool ok = z < w->end;
   uint32_t n = ok ? dj_bwalk_value_len (t, v, (size_t) (w->end - v), &ok) : 0;
   if (!ok) {
      w->bad = true;
      w->p = w->end;
      return false;
   }
   w->type = t;
   w->key = (const char *) k;
   w->key_len = (uint32_t) (z - k);
   w->val = v;
   w->val_len = n;
   w->p = v + n;
   return true;
}

/*
 * dj_bwalk_next --
 *    Advances to the next element; false at the end of the document, or
 *    (w->bad set) at an element libbson's iterator refuses: an unknown
 *    type, a key or value running past the document.
 */
static inline bool
dj_bwalk_next (dj_bwalk_t *w)
{
   if (w->p >= w->end) {
      return false;
   }
   /* the key, short as a rule: read here rather than by a call; the
    * document's trailing 0 (checked by dj_bwalk_init) ends the search */
   const uint8_t *z = w->p + 1;
   while (*z) {
      z++;
   }
   return dj_bwalk_take (w, z);
}

/*
 * dj_bwalk_next_named --
 *    dj_bwalk_next() when the next element's key is `key`, compared as it
 *    is read (not found, then compared): for a reader that expects its
 *    fields in a known order. False when the document ends or the key
 *    differs -- the walk then where it was, not bad -- or (w->bad set) at
 *    a malformed element.
 */
static inline bool
dj_bwalk_next_named (dj_bwalk_t *w, const char *key)
{
   if (w->p >= w->end) {
      return false;
   }
   /* (a key running on to the document's trailing 0 stops there: the 0
    * differs from key's characters) */
   const uint8_t *z = w->p + 1;
   while (*key && *z == (uint8_t) *key) {
      z++;
      key++;
   }
   if (*key || *z) {
      return false;
   }
   return dj_bwalk_take (w, z);
}

/*
 * dj_bson_value_read --
 *    The value of `type` whose `len` bytes (checked: as a walk found them)
 *    are at val, as the bson_value_t bson_iter_value() gives (its strings
 *    and documents borrowed from those bytes).
 */
void dj_bson_value_read (uint8_t type, const uint8_t *val, uint32_t len, bson_value_t *out);

/*
 * dj_bson_put_scalar --
 *    The element `key: v` (klen: strlen(key)) appended to b as its BSON
 *    bytes -- what bson_append_value writes -- when v is null, a bool, an
 *    int32, an int64, a double or a string; false, b untouched, for any
 *    other type (the caller appends it through libbson). For the paths
 *    that write a value per row (an INSERT's documents, bound parameters)
 *    without libbson's per-append cost.
 */
bool dj_bson_put_scalar (dj_buf_t *b, const char *key, size_t klen, const bson_value_t *v);

/* one's elements (built through libbson) appended to b as bytes, when ok;
 * one destroyed either way. Returns ok. */
bool dj_bson_put_elements (dj_buf_t *b, bson_t *one, bool ok);

/* A top-level field dj_bwalk_fields() looks for, and what it found. */
typedef struct {
   const char *name;   /**< NULL: nothing wanted in this slot */
   uint32_t len;       /**< strlen (name) */
   bool has;           /**< found: its type and value bytes (borrowed from the document) */
   uint8_t type;
   const uint8_t *val;
   uint32_t val_len;
} dj_bwalk_field_t;

/*
 * dj_bwalk_fields --
 *    Finds the first element (as bson_iter_find) of each named field of
 *    f[0 .. n) in one walk of the document of `len` bytes at data, which
 *    stops once every one is found: for the paths that read a few
 *    top-level fields of every document (an insert's or a delete's plain
 *    index keys). False when the document cannot be walked to that
 *    point (malformed): then none `has`.
 */
bool dj_bwalk_fields (const uint8_t *data, uint32_t len, dj_bwalk_field_t *f, int n);

/* The current element's value (dj_bson_value_read). */
static inline void
dj_bwalk_value (const dj_bwalk_t *w, bson_value_t *out)
{
   dj_bson_value_read (w->type, w->val, w->val_len, out);
}

/* The current element's bytes, from its type byte to its value's end. */
static inline const uint8_t *
dj_bwalk_elem (const dj_bwalk_t *w, size_t *len)
{
   const uint8_t *start = (const uint8_t *) w->key - 1;
   *len = (size_t) (w->val + w->val_len - start);
   return start;
}

#endif
