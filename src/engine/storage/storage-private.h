/*
 * storage-private.h -- what store.c, index.c and record.c share (not part
 * of the storage room's interface, dj_storage.h).
 */
#ifndef DJ_STORAGE_PRIVATE_H
#define DJ_STORAGE_PRIVATE_H

#include "dj_storage.h"

#include <string.h>

/* LMDB's default order of keys: their bytes, then the shorter first. */
static inline int
dj_key_cmp (const uint8_t *a, size_t na, const uint8_t *b, size_t nb)
{
   int c = memcmp (a, b, na < nb ? na : nb);
   return c ? c : (na > nb) - (na < nb);
}

/* store.c */
/* The next prefix id (collections and indexes share one sequence), taken in
 * ctx's write transaction. */
bool dj_store_next_id (dj_ctx_t *ctx, uint64_t *out, bson_error_t *error);
/* Deletes every key of the data database under prefix id (a collection's
 * records or an index's entries). */
bool dj_store_delete_prefix (dj_ctx_t *ctx, uint64_t id, bson_error_t *error);

/* index.c */
/* The keys a document contributes to an index (0, 1 or many), each the
 * encoded field values cut to DJ_KEY_MAX, deduplicated. */
typedef struct {
   dj_buf_t *keys; /* owned array, or &one */
   int *rows;      /* owned array: the element of the multikey field key i was made from;
                    * NULL: every key's is 0 (one key of a plain field) */
   int n;
   bool multikey;
   bool lossy;
   dj_buf_t one;   /* the one key of a plain index when keys == &one: its bytes
                    * borrowed from the caller's buffer (dj_index_keys_all), never
                    * freed here; a copy of the struct borrows them too */
} dj_keyset_t;
void dj_keyset_cleanup (dj_keyset_t *ks);
/* text_scan.c: the keys doc gives text index ix (prefix, term, score,
 * suffix; none for a document without indexed text) into ks. */
bool dj_text_index_keys (const dj_index_t *ix, const bson_t *doc, dj_keyset_t *ks, bson_error_t *error);
/* The top-level field ix keys a document by, when its one key is that
 * field's value encoded (dj_key_append_by, dj_key_finish) unless the value
 * is an array, and null when the field is absent (no key at all in a
 * sparse index): not partial, text, geo, hashed nor compound, on a path
 * without dots. NULL otherwise. Points into ix. */
const char *dj_index_plain_field (const dj_index_t *ix);
/* Appends to b the key such an index gives the value v (NULL: the field
 * is absent, keyed as null): encoded in the index's direction and
 * collation, finished from b's length at the call; true when the key is
 * lossy: longer than DJ_KEY_MAX, and so cut, or of a value a key does not
 * hold whole (Decimal128, a document). */
bool dj_index_plain_key (dj_buf_t *b, const dj_index_t *ix, const bson_value_t *v);
/* doc's keys for ix into *ks (always dj_keyset_cleanup it after success). */
bool dj_index_keys (const dj_index_t *ix, const bson_t *doc, dj_keyset_t *ks, bson_error_t *error);
/* The most indexes dj_index_keys_all takes (a collection with more: its
 * caller asks dj_index_keys per index). */
#define DJ_KEYS_ALL_MAX 16
/* doc's keys for every index of c (at most DJ_KEYS_ALL_MAX) into ks[0 ..
 * c->nindexes), as dj_index_keys gives them: the plain indexes'
 * (dj_index_plain_field) read in one walk of doc and written into buf (a
 * key each, which their keysets borrow: valid while buf is neither
 * changed nor cleaned up), the others' by dj_index_keys. An insert asks
 * this of every document: no allocation per index. Each ks[i] is
 * dj_keyset_cleanup'd after, success or not. */
bool dj_index_keys_all (const dj_coll_t *c, const bson_t *doc, dj_keyset_t *ks, dj_buf_t *buf, bson_error_t *error);
/* Checks that none of ks's keys is held by another record in unique index
 * ix: DuplicateKey (11000) naming doc's key, else true. */
bool dj_index_unique_check (dj_ctx_t *ctx, const dj_coll_t *c, const dj_index_t *ix, const dj_keyset_t *ks,
                            uint64_t rid, const bson_t *doc, bson_error_t *error);
/* The data DBI's key of rid's entry for key k in ix, into out (reset
 * first): [index id][key], and [record id] after it unless ix is unique. */
void dj_index_entry_key (dj_buf_t *out, const dj_index_t *ix, const dj_buf_t *k, uint64_t rid);
/* Whether ks (NULL: none) holds key: an update writes and deletes only the
 * index keys that changed. */
bool dj_keyset_has (const dj_keyset_t *ks, const dj_buf_t *key);
/* Records that index i of c now holds a multikey or a lossy key, as ks's
 * keys say (record.c; saves c's catalog entry when a flag turns on). */
bool dj_record_note_flags (dj_ctx_t *ctx, dj_coll_t *c, int i, const dj_keyset_t *ks, bson_error_t *error);
/* Whether a and b are the same keys in the same order (record.c). */
bool dj_keyset_same (const dj_keyset_t *a, const dj_keyset_t *b);
/* Whether new_doc may replace a record (size and nesting): an update's checks. */
bool dj_record_update_check (const bson_t *new_doc, bson_error_t *error);
/* Writes rid's entries for ks's keys, but those also in skip (may be NULL). */
bool dj_index_put_keys (dj_ctx_t *ctx, const dj_index_t *ix, const dj_keyset_t *ks, const dj_keyset_t *skip,
                        uint64_t rid, bson_error_t *error);
/* Writes rid's entries for ks's keys in unique index ix, each put refusing
 * a key another record holds (MDB_NOOVERWRITE: the write is the unique
 * check, one search of the tree instead of a read and a write): on one,
 * DuplicateKey as dj_index_unique_check reports it, the entries this call
 * wrote removed again. An entry holding rid already passes as the
 * document's own. Through ctx's put cursor `slot` (dj_ctx_put). */
bool dj_index_put_unique_at (dj_ctx_t *ctx, const dj_coll_t *c, const dj_index_t *ix, const dj_keyset_t *ks,
                             uint64_t rid, const bson_t *doc, int slot, bson_error_t *error);
/* dj_index_put_keys through ctx's put cursor `slot` (dj_ctx_put). */
bool dj_index_put_keys_at (dj_ctx_t *ctx, const dj_index_t *ix, const dj_keyset_t *ks, const dj_keyset_t *skip,
                           uint64_t rid, int slot, bson_error_t *error);
/* Removes rid's entries for ks's keys, but those also in keep (may be NULL). */
bool dj_index_del_keys (dj_ctx_t *ctx, const dj_index_t *ix, const dj_keyset_t *ks, const dj_keyset_t *keep,
                        uint64_t rid, bson_error_t *error);

/* txn.c */
/* Puts k -> v (mdb_put's flags) into the data DBI in ctx's write
 * transaction through its cursor for stream `slot` (dj_ctx_t.puts: 0 for
 * records, 1 + i for index i), opened here at first use; mdb_put for a
 * slot past DJ_PUT_CURSORS. Returns LMDB's code. */
int dj_ctx_put (dj_ctx_t *ctx, int slot, MDB_val *k, MDB_val *v, unsigned flags);

/* DuplicateKey (11000) for doc's key (row: the multikey element it came
 * from) in unique index ix, with keyPattern and keyValue in
 * ctx->error_info, as mongod reports it; returns false. */
bool dj_index_dup_error (dj_ctx_t *ctx, const dj_coll_t *c, const dj_index_t *ix, const bson_t *doc, int row,
                         bson_error_t *error);
/* Adds the entries of every record of c to c's index nix (a unique
 * violation among them fails), sets its multikey and lossy flags. */
bool dj_index_build (dj_ctx_t *ctx, dj_coll_t *c, dj_index_t *nix, bson_error_t *error);

/* ridkey.c: record-keyed indexes (its header comment) */
/* The record id doc's value at record-keyed ix's field stands for: false
 * when the value is no integer in range (missing, null, an array, a double,
 * a string, an integer below 1 or past DJ_RIDKEY_MAX): the document does
 * not fit the index, which then turns into a plain one (dj_ridkey_unkey). */
bool dj_ridkey_doc_rid (const dj_index_t *ix, const bson_t *doc, uint64_t *rid);
/* The record id doc takes in c (*rid) and the first record-keyed index
 * that gives it (*rk; -1: none, the next id is the record's): each
 * record-keyed index doc does not fit, or that gives another id than the
 * first, turned plain first (dj_ridkey_unkey). */
bool dj_ridkey_doc_fit (dj_ctx_t *ctx, dj_coll_t *c, const bson_t *doc, int *rk, uint64_t *rid, bson_error_t *error);
/* Turns c's record-keyed index i into a plain unique index: its entries
 * written from the records (which keep their ids), c's entry saved. */
bool dj_ridkey_unkey (dj_ctx_t *ctx, dj_coll_t *c, int i, bson_error_t *error);
/* dj_index_unique_check for record-keyed ix: the record doc's key names,
 * when it is not rid's, is a DuplicateKey. */
bool dj_ridkey_unique_check (dj_ctx_t *ctx, const dj_coll_t *c, const dj_index_t *ix, uint64_t rid, const bson_t *doc,
                             bson_error_t *error);
/* The record ids [*from, *end) whose keys in record-keyed ix lie in a
 * range of index keys as plan.c's scans bound them: from lo (NULL: the
 * first; lo_skip: keys starting with lo excluded) to hi (NULL: the last;
 * keys starting with hi inside when hi_incl). */
void dj_ridkey_bounds (const dj_index_t *ix, const dj_buf_t *lo, bool lo_skip, const dj_buf_t *hi, bool hi_incl,
                       uint64_t *from, uint64_t *end);
/* dj_record_update of a document whose key in c's record-keyed indexes
 * changed to nrid: the record moves to nrid with all its index entries. */
bool dj_ridkey_move (dj_ctx_t *ctx, dj_coll_t *c, uint64_t rid, const bson_t *old_doc, const bson_t *new_doc,
                     uint64_t nrid, bson_error_t *error);

/* record.c */
/* A record's key: [coll][rid], both 8-byte big-endian, into b (reset first). */
void dj_record_key (dj_buf_t *b, uint64_t coll, uint64_t rid);

#endif
