/*
 * dj_values.h -- the engine's bottom layer: BSON values and documents.
 *
 * What it owns: MongoDB's one order over values (and documents by a sort
 * specification), the order-preserving key encoding indexes are made of,
 * exact Decimal128 arithmetic, collations (ICU) and time zones (tzdata),
 * dotted paths, and documents as mutable trees.
 * Who calls it: every layer above (expr, query, storage, aggregation,
 * commands). It calls nothing of the engine's.
 * Memory: values passed in are borrowed; what a function returns is the
 * caller's unless its comment says otherwise. Collators and time zones are
 * cached for the process (never freed, each cache behind its own mutex).
 *
 * Files:
 *   value.c      MongoDB's total order over BSON values, type names and ranks
 *   sort.c       sort specifications ({a: 1, "b.c": -1}) and document order
 *   keyenc.c     order-preserving byte encoding of values (index keys)
 *   decimal.c    exact Decimal128 arithmetic
 *   collation.c  locale-aware string comparison (collations, ICU)
 *   tz.c         time zones for date expressions
 *   path.c       dotted paths and walking them through values
 *   tree.c       documents as mutable trees (updates, projections)
 *   hash.c       MongoDB's hash of a value (hashed indexes, $toHashedIndexKey)
 */
#ifndef DJ_VALUES_H
#define DJ_VALUES_H

#include "dj_buf.h"
#include "dj_engine.h"
#include "dj_error.h"

typedef struct dj_node dj_node_t;
typedef struct dj_path dj_path_t;
typedef struct dj_sort dj_sort_t;
typedef struct dj_tz dj_tz_t;
typedef struct dj_collation dj_collation_t;

#define DJ_MAX_BSON_SIZE (16 * 1024 * 1024)
/* The deepest a stored document nests below its top level: MongoDB
 * "supports no more than 100 levels of nesting for BSON documents. Each
 * object or array adds a level", the top document being the first.
 * https://www.mongodb.com/docs/manual/reference/limits/#mongodb-limit-Nested-Depth-for-BSON-Documents */
#define DJ_MAX_STORED_DEPTH 99
#define DJ_TYPE_NUMBER (-2) /* $type: "number" */

/* The key of array element i ("0", "1", ...), for appending to a BSON
 * array; buf holds it (or it is a static string). */
static inline const char *
dj_array_key (uint32_t i, char buf[16])
{
   const char *k;
   bson_uint32_to_string (i, &k, buf, 16);
   return k;
}

/* ---- value.c ------------------------------------------------------------ */
int dj_type_rank (bson_type_t t);
const char *dj_type_name (bson_type_t t);
bool dj_type_from_name (const char *name, int *out);
bool dj_value_is_number (const bson_value_t *v);
/* A string's bytes (UTF-8, or the deprecated symbol type, which MongoDB
 * treats as a string) into *s and *n; false for any other type. */
bool dj_value_string (const bson_value_t *v, const char **s, uint32_t *n);
double dj_value_as_double (const bson_value_t *v);
bool dj_value_as_int64_exact (const bson_value_t *v, int64_t *out);
int dj_number_cmp (const bson_value_t *a, const bson_value_t *b);
int dj_value_cmp (const bson_value_t *a, const bson_value_t *b);
int dj_doc_cmp (const uint8_t *a, uint32_t la, const uint8_t *b, uint32_t lb);
bool dj_value_equal (const bson_value_t *a, const bson_value_t *b);
bool dj_value_identical (const bson_value_t *a, const bson_value_t *b);
/* An owned array of documents freed: v[from] to v[to - 1] destroyed (the
 * ones before `from` were handed on), then the array itself. */
void dj_bsons_free (bson_t **v, size_t from, size_t to);
/* An int32 while n fits, else an int64 (how mongod writes counts). */
void dj_append_count (bson_t *b, const char *key, int64_t n);
/* Borrows doc's bytes: valid while doc is. */
void dj_value_from_doc (const bson_t *doc, bool is_array, bson_value_t *out);
/* Frees an owned array of n owned values (bson_value_copy'd): each, then the array. */
void dj_values_free (bson_value_t *v, size_t n);
/* Renders a value the way MongoDB's error messages do ({ _id: 1 }). */
void dj_value_to_shell (const bson_value_t *v, dj_buf_t *out);
void dj_doc_to_shell (const bson_t *doc, dj_buf_t *out);

/* ---- decimal.c: exact Decimal128 arithmetic ------------------------------ */
/* op is '+', '-', '*' or '/'; operands of any numeric type (doubles enter
 * with 15 significant digits, as in MongoDB). out: a Decimal128. */
bool dj_decimal_arith (char op, const bson_value_t *a, const bson_value_t *b, bson_value_t *out);
void dj_decimal_from_value (const bson_value_t *v, bson_value_t *out);
/* Exact order of two numbers, at least one a Decimal128 (dj_number_cmp uses it). */
int dj_decimal_cmp (const bson_value_t *a, const bson_value_t *b);

/* ---- collation.c: locale-aware strings (ICU) ---------------------------- */
/* Parses a collation document. *out = NULL for {locale: "simple"}. Collators
 * are cached for the process; never freed. */
bool dj_collation_parse (const bson_value_t *spec, const dj_collation_t **out, bson_error_t *error);
/* The thread's current collation (NULL: binary), set by the command that
 * carries one and cleared by the dispatcher after every command. */
const dj_collation_t *dj_collation_current (void);
const dj_collation_t *dj_collation_set_current (const dj_collation_t *c);
int dj_collation_cmp (const dj_collation_t *c, const char *a, size_t la, const char *b, size_t lb);
void dj_collation_key (const dj_collation_t *c, const char *s, size_t n, dj_buf_t *out);
/* The full collation document mongod keeps and reports (a collection's
 * options, an index spec). Borrowed: lives as long as the process. */
const bson_t *dj_collation_doc (const dj_collation_t *c);
/* The collation of a command that names none (NULL: simple): the
 * collection's default, set by the dispatcher for the command's length. */
const dj_collation_t *dj_collation_default (void);
void dj_collation_set_default (const dj_collation_t *c);

/* ---- tz.c: time zones ---------------------------------------------------- */
/* "UTC", "+hh[:mm]" or an Olson name; cached for the process (never freed).
 * NULL with error 40485 for unknown names. */
const dj_tz_t *dj_tz_get (const char *name, bson_error_t *error);
int32_t dj_tz_offset (const dj_tz_t *z, int64_t utc_seconds);
int64_t dj_tz_local_to_utc (const dj_tz_t *z, int64_t local_seconds);

/* ---- hash.c: MongoDB's hash of a value (MD5-based, seed 0) --------------- */
/* The key a hashed index holds for v, and $toHashedIndexKey's result. */
int64_t dj_value_hash64 (const bson_value_t *v);

/* ---- keyenc.c ----------------------------------------------------------- */
/* Appends the order-preserving encoding of v; memcmp order of two encodings
 * is dj_value_cmp order (descending inverts every byte). Missing encodes as
 * null, as MongoDB indexes it. */
void dj_key_append (dj_buf_t *b, const bson_value_t *v, bool descending);
/* The same, with strings under the current collation (for grouping and
 * joins). */
void dj_key_append_collated (dj_buf_t *b, const bson_value_t *v);
/* dj_key_append with strings keyed by collation coll (NULL: binary): an
 * index with a collation's keys. */
void dj_key_append_by (dj_buf_t *b, const bson_value_t *v, bool descending, const dj_collation_t *coll);
/* Longest key we hand LMDB (its limit is 511 bytes with the 8-byte prefix
 * and record id); longer keys are cut and given a hash (see dj_engine.h). */
#define DJ_KEY_MAX 470
void dj_key_finish (dj_buf_t *b, size_t start);
/* The double the key encoding k[0..n) of a (non-NaN) double starts with
 * (a text index's score: storage/text_scan.c); false if it holds none. */
bool dj_key_read_double (const uint8_t *k, size_t n, double *out);

/* ---- path.c ------------------------------------------------------------- */
struct dj_path {
   char *buf;    /* owned: the dotted string with '.' replaced by NUL */
   char **parts; /* owned array; strings point into buf */
   int n;
};
bool dj_path_init (dj_path_t *p, const char *dotted, size_t len, bson_error_t *error);
void dj_path_cleanup (dj_path_t *p);
/* True if s is a non-negative array index in MongoDB's sense ("0", "12"). */
bool dj_path_is_index (const char *s, uint32_t *out);
/* Whether path a is b or a prefix of it, part by part ("a.b" of "a.b.c"). */
bool dj_path_is_prefix (const dj_path_t *a, const dj_path_t *b);
/* Finds a field (or, in an array, a numeric index) in a document value.
 * Returns false if absent. */
bool dj_value_get_field (const bson_value_t *container, const char *key, bson_value_t *out);
/* How many fields a document value, or elements an array value, holds. */
uint32_t dj_value_count (const bson_value_t *container);
/* All values at a path, arrays expanded at every level (leaf arrays are both
 * reported whole, if want_whole, and element by element). Missing reports
 * nothing; `found` counts reports. Used for sort keys and index keys. */
typedef void (*dj_path_visit_fn) (const bson_value_t *v, void *ctx);
/* The values v stands for at the end of a path: each element of an array
 * (in order), else v itself. Returns how many fn was given (0: an empty
 * array, which index keys and sort keys take as undefined). */
size_t dj_value_each (const bson_value_t *v, dj_path_visit_fn fn, void *ctx);
void dj_path_visit (const bson_value_t *doc, const dj_path_t *path, int from, bool expand_leaf, dj_path_visit_fn fn,
                    void *ctx);
/* The values a visit reports, in order: dj_vlist_push is the visit's fn and
 * a dj_vlist_t its ctx. The values are shallow (they borrow the visited
 * document's bytes); the caller owns v (bson_free) and may reuse the list
 * by setting n to 0. */
typedef struct {
   bson_value_t *v;
   size_t n, cap;
} dj_vlist_t;
void dj_vlist_push (const bson_value_t *v, void *list);

/* ---- tree.c: mutable documents ------------------------------------------ */
struct dj_node {
   char *key;      /* owned; NULL for array elements */
   bson_value_t v; /* scalars: owned deep copy; DOCUMENT/ARRAY: only value_type */
   dj_node_t **kids;
   uint32_t n, cap;
};
dj_node_t *dj_node_new_container (bson_type_t t, const char *key);
dj_node_t *dj_node_from_value (const bson_value_t *v, const char *key);
dj_node_t *dj_node_from_bson (const bson_t *doc);
dj_node_t *dj_node_copy (const dj_node_t *n, const char *key);
void dj_node_free (dj_node_t *n);
void dj_node_to_bson (const dj_node_t *doc, bson_t *out); /* appends fields of doc/array node into out */
void dj_node_append (bson_t *out, const char *key, int keylen, const dj_node_t *n);
/* A read-only bson_value_t view of n: scalars point at n's storage, containers
 * are serialised into *tmp (initialised here; caller bson_destroy()s it). */
void dj_node_value (const dj_node_t *n, bson_t *tmp, bson_value_t *out);
bool dj_node_is_container (const dj_node_t *n);
dj_node_t *dj_node_child (const dj_node_t *n, const char *key, uint32_t *pos);
void dj_node_set_child (dj_node_t *parent, const char *key, dj_node_t *child); /* steals child */
void dj_node_push (dj_node_t *arr, dj_node_t *child);                          /* steals child */
void dj_node_insert_at (dj_node_t *arr, uint32_t pos, dj_node_t *child);       /* steals child */
void dj_node_remove_at (dj_node_t *parent, uint32_t pos);
void dj_node_replace_at (dj_node_t *parent, uint32_t pos, dj_node_t *child); /* steals child, keeps key */

/* ---- sort.c ------------------------------------------------------------- */
/* A $text match's score travels with its document as this last top-level
 * field (storage/text_scan.c adds it; a stored document cannot hold it:
 * '$'-prefixed names are refused at the top level) until the reply, which
 * drops it (dj_meta_strip): what {$meta: "textScore"} reads in projections,
 * sorts and expressions. */
#define DJ_META_TEXT_SCORE "$__djongo_textScore"
/* doc without DJ_META_TEXT_SCORE: NULL when it has none, else a new
 * document the caller owns. */
bson_t *dj_meta_strip (const bson_t *doc);
/* A sort spec; {field: {$meta: "textScore"}} sorts by the text score, highest first. */
dj_sort_t *dj_sort_new (const bson_t *spec, bson_error_t *error);
void dj_sort_destroy (dj_sort_t *s);
/* Sorts docs[0..n) in place (stable: ties keep their order). */
void dj_sort_docs (const dj_sort_t *s, bson_t **docs, size_t n);
/* Puts the first k documents in sort order into docs[0..k) (the same k a
 * full stable sort would give); docs[k..n) hold the rest, unordered. */
void dj_sort_docs_topk (const dj_sort_t *s, bson_t **docs, size_t n, size_t k);
/* Sorts arbitrary items by the document get(item) returns (stable). */
void dj_sort_items (const dj_sort_t *s, void **items, size_t n, const bson_t *(*get) (const void *item));
/* The spec's keys: dotted field name (owned by s) and direction. */
int dj_sort_nkeys (const dj_sort_t *s);
const char *dj_sort_key (const dj_sort_t *s, int i, int *dir);
/* Compares two documents by the spec (<0: a first). */
int dj_sort_cmp (const dj_sort_t *s, const bson_t *a, const bson_t *b);
/* doc's sort keys, one per spec key (dj_sort_nkeys), into keys: borrowed
 * from doc's bytes. Comparing them (dj_sort_cmp_keys) is dj_sort_cmp
 * without finding the fields again. */
void dj_sort_keys_of (const dj_sort_t *s, const bson_t *doc, bson_value_t *keys);
int dj_sort_cmp_keys (const dj_sort_t *s, const bson_value_t *a, const bson_value_t *b);

#endif
