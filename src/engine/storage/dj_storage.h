/*
 * dj_storage.h -- data on disk: LMDB environments, the catalog, records,
 * indexes, transactions, and scans that choose an index.
 *
 * What it owns: the LMDB layout (store.c's header comment), every write to
 * it (index maintenance and unique checks happen here, inside the caller's
 * write transaction), the one transaction each command runs in and the ones
 * callers hold across commands, and the access paths (collection scan,
 * index scan, ordered index walk) a filter and sort are answered by.
 * Who calls it: aggregation (reading and writing collections) and commands.
 * It calls query (partial index filters, validators, filter bounds) and
 * values (key encoding).
 * Memory: a dj_coll_t is its loader's (dj_coll_free); documents handed to
 * scan callbacks live in LMDB's map, valid only during the call.
 * Threads: an engine handle may be used from several threads; an LMDB write
 * transaction belongs to the thread that began it.
 *
 * Files:
 *   env.c        LMDB environments shared per data directory, writer marks
 *   store.c      the LMDB layout, the catalog: collections and their lifecycle
 *   index_spec.c index specifications (incl. hashed fields and TTL) parsed and checked
 *   index.c      a document's keys, index entries and builds
 *   record.c     records read and written with their index entries, capped trims
 *   ridkey.c     record-keyed indexes: an integer field's values as the record
 *                ids (a table's INTEGER PRIMARY KEY), no entries of their own
 *   write_many.c many records deleted or updated at once: sorted batches, one
 *                cursor pass each (updates: the records walked in scan order)
 *   storage-private.h  what store.c, index.c and record.c share
 *   txn.c        each command's transaction (and the cursors its puts go
 *                through, one per stream; a read's kept reset for the next
 *                read: dj_engine.spare_read); callers' and snapshot transactions
 *                (a write in one nothing was written in yet shares its LMDB
 *                transaction instead of nesting one: dj_ctx.direct)
 *   walk.c       the one cursor loop over a key range (records, index entries, catalog)
 *   count_range.c a key range's entries counted (covered counts), two walkers meeting
 *   plan.c       choosing an index and scanning
 *   text_scan.c  a text index's keys, and $text answered through it
 *   text_or.c    $text under an $or: the union of its text index and the others' indexes
 *   geo_index.c  '2dsphere' and '2d' indexes: cell keys, and the scans that
 *                answer $geoWithin/$geoIntersects (cell ranges) and
 *                $near/$nearSphere/$geoNear (by distance)
 *   changes.c    the change log change streams read (a statement's inserts,
 *                deletes, updates: one entry each), and the cluster clock
 *   sample.c     records picked at random ($sample's random cursor)
 *   keycount.c   a field's values counted from an index's keys (no document read)
 *   spill.c      an external merge sort: a blocking sort past its memory limit
 *                through temporary files in the data directory's _tmp
 */
#ifndef DJ_STORAGE_H
#define DJ_STORAGE_H

#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>

#include "dj_keep.h"
#include "dj_query.h"
#include "dj_text.h"

typedef struct dj_index dj_index_t;
typedef struct dj_coll dj_coll_t;
typedef struct dj_ctx dj_ctx_t;

/* ---- store.c, index.c, record.c ------------------------------------------ */
struct dj_index {
   uint64_t id;        /* key prefix in the data DBI */
   char *name;         /* owned */
   bson_t *key;        /* owned: the key pattern {a: 1, b: -1} */
   dj_path_t *paths;   /* owned array of npaths */
   bool *desc;         /* owned array of npaths */
   int npaths;
   bool unique, sparse, multikey, is_id;
   bool hidden; /* kept up to date, never chosen or hinted (collMod index.hidden) */
   bool lossy; /* some key was cut or holds a Decimal128: index order may differ from sort order */
   /* record-keyed (ridkey.c): a unique index on one integer field whose
    * values are the records' ids; it has no entries of its own */
   bool rid_keyed;
   int hashed; /* 1 + the path keyed by its value's hash (values/hash.c); 0: none */
   bool ttl;   /* expireAfterSeconds: commands/ttl.c deletes what it expires */
   dj_text_spec_t *text; /* owned: a text index (text/spec.c), NULL otherwise */
   int text_pos;         /* a text index: where _fts sits among paths (_ftsx after it) */
   int32_t expire_after;
   /* 1 + the path keyed by geo cells ('2dsphere' or '2d', geo_index.c); 0: none */
   int geo;
   bool geo_flat;       /* '2d': flat, over grid's min/max/bits */
   dj_geo_grid_t grid;  /* the cell grid of a geo index */
   dj_matcher_t *partial; /* owned, may be NULL */
   const dj_collation_t *collation; /* the process's (never freed); NULL: simple. Keys its strings */
   bson_t *spec;          /* owned: the spec as listIndexes shows it */
};
struct dj_coll {
   char *db, *name, *ns; /* owned */
   uint64_t id;
   bson_t *options; /* owned: create() options */
   dj_index_t *indexes; /* owned array; [0] is _id_ */
   int nindexes;
   bool capped;
   int64_t capped_size, capped_max;
   dj_matcher_t *validator;   /* owned, may be NULL */
   bool validation_warn_only; /* validationAction: "warn" */
   bool validation_moderate;  /* validationLevel: "moderate" */
   bool validation_off;
   const char *view_on;  /* a view: the collection it reads (points into options), else NULL */
   /* the record id this handle's next insert takes, once one insert through
    * it has run (0: unknown, read from LMDB); record.c */
   uint64_t next_rid;
   /* owned: the catalog entry it was built from, kept by dj_coll_checkout
    * (the handle's cache knows it by these bytes); NULL otherwise */
   uint8_t *entry;
   uint32_t entry_len;
};
/* How many put streams a write context keeps a cursor for (dj_ctx_t.puts):
 * a collection's records and its first indexes (past them, mdb_put). */
#define DJ_PUT_CURSORS 8
struct dj_ctx {
   dj_engine_t *engine;
   MDB_txn *txn;
   bool write;
   bool borrowed; /* a read inside a caller's transaction: txn is theirs */
   /* a write inside a caller's fresh transaction (txn.c): txn is theirs,
    * written directly; aborting undoes it there. NULL otherwise */
   dj_engine_txn_t *direct;
   bool top;      /* a top-level write transaction: holds the env's writer mark */
   /* owned, NULL unless the last error raised here carries fields of its
    * own for the reply: {keyPattern, keyValue} of a DuplicateKey, {errInfo}
    * of a DocumentValidationFailure. dj_ctx_error_info moves them out;
    * dj_txn_abort frees what is left. */
   bson_t *error_info;
   /* Change log (changes.c): the next dj_record_update is a replacement
    * (a "replace" event, not an "update"); quiet_log: this transaction's
    * changes are not logged (a capped collection's own trimming). */
   bool replacement;
   bool quiet_log;
   /* The change log as this transaction has left it (changes.c): read once
    * at its first change (valid), then kept here, and the log's size
    * record written once, at commit (dirty). Reset by dj_txn_begin. */
   struct {
      bool valid, dirty;
      bool legacy; /* the size record was found where older versions kept it */
      uint64_t last;       /* the newest entry's time */
      int64_t bytes, lost; /* the log's size; the newest time the cap dropped */
      /* inserts waiting to be logged as one batch entry (changes.c's
       * header, "A batch"): written at the transaction's next other
       * change, or at commit; dropped by dj_txn_abort. ins_docs (the
       * documents, an array being built), ins_db and ins_coll owned;
       * NULL: none waiting. Reset by dj_txn_begin. */
      bson_t *ins_docs;
      char *ins_db, *ins_coll;
      uint64_t ins_cid;
      uint32_t ins_n;
   } chg;
   /* Cursors on the data DBI for a write's puts, one per stream (txn.c,
    * dj_ctx_put): [0] records, [1 + i] index i's entries. A put through
    * the cursor of the last put of its stream lands, when the key falls in
    * that cursor's leaf page (an insert's ascending record id, _id, id or
    * equal key), without LMDB's descent from the root. Opened at first
    * use, closed by dj_txn_commit/abort before the transaction ends; NULL
    * until then. Reset by dj_txn_begin. */
   MDB_cursor *puts[DJ_PUT_CURSORS];
};
/* The cluster clock: a BSON Timestamp (seconds, increment), one per data
 * directory in a process (env.c), guarded by mu. */
typedef struct {
   pthread_mutex_t mu;
   uint32_t secs, inc;
} dj_clock_t;
struct dj_engine {
   struct dj_env *shared; /* refcounted LMDB env for this path */
   MDB_env *env;
   MDB_dbi dbi_catalog, dbi_data, dbi_changes;
   MDB_dbi dbi_main; /* LMDB's unnamed database: changes.c's size record */
   dj_clock_t *shared_clock; /* the env's */
   int64_t change_log_size;  /* the env's cap on the change log, bytes */
   char *path;
   /* The open cursors: commands/cursor.c's (storage never touches them). */
   pthread_mutex_t cursors_mu; /* guards everything below */
   struct dj_cursor *cursors;
   int64_t next_cursor_id; /* only when the kernel gives no random bytes */
   /* Collections built from their catalog entries, kept by the entry's
    * bytes for the next read of them (store.c: dj_coll_checkout). */
   struct dj_keep *coll_cache;
   /* Find projections parsed, kept by their spec's bytes (commands/
    * cmd_read.c); storage never touches it. */
   struct dj_keep *proj_cache;
   /* Aggregate pipelines parsed, kept by their stages' bytes (commands/
    * cmd_agg.c); storage never touches it. */
   struct dj_keep *pipe_cache;
   /* Hash joins' foreign sides, kept by snapshot for the next $lookup of
    * the same one (aggregation/lookup.c); storage never touches it. */
   struct dj_keep *join_keep;
   /* The TTL monitor this handle shares (commands/ttl.c), NULL if none. */
   struct dj_ttl_monitor *ttl;
   /* Server parameters (setParameter: commands/cmd_param.c), atomic: read
    * by commands on any thread; 0 stands for the default. */
   _Atomic int64_t params[3];
   /* An ended read transaction kept reset for the next one (txn.c): renewed,
    * it keeps its reader slot, where a new one takes LMDB's reader mutex to
    * find a slot, and is not allocated again. Owned; taken and put back
    * with atomic exchanges (any thread: the env is MDB_NOTLS); NULL: none. */
   MDB_txn *spare_read;
};

/* The parameters: what a blocking $sort, and a $group, may hold in memory
 * before failing with 292 (mongod's internalQueryMaxBlockingSortMemoryUsageBytes
 * and internalDocumentSourceGroupMaxMemoryBytes: 100 MiB each by default). */
enum { DJ_PARAM_SORT_BYTES, DJ_PARAM_GROUP_BYTES, DJ_PARAM_DISK_BY_DEFAULT };
#define DJ_PARAM_DEFAULT_BYTES ((int64_t) 100 * 1024 * 1024)
/* e may be NULL: the default. DJ_PARAM_DISK_BY_DEFAULT (mongod's
 * allowDiskUseByDefault, true by default): 1 true, -1 false. */
int64_t dj_engine_param (dj_engine_t *e, int which);
void dj_engine_param_set (dj_engine_t *e, int which, int64_t v);

/* ---- env.c: data directories ---------------------------------------------- */
/* Opens (creating it and missing parents, 0700) the data directory `path`
 * for e: e's storage fields are set; the LMDB environment is shared with
 * other handles on the same directory. dj_storage_close releases it. */
bool dj_storage_open (dj_engine_t *e, const char *path, const dj_engine_options_t *opts, bson_error_t *error);
void dj_storage_close (dj_engine_t *e);
/* Flushes every committed write of e's data directory to disk, even when it
 * was opened without syncing commits (DJ_ENGINE_NOSYNC): the fsync command. */
bool dj_storage_flush (dj_engine_t *e, bson_error_t *error);

/* ---- txn.c: one command's transaction, and callers' transactions ---------- */
/* Begins the transaction one command runs in. Inside a caller's transaction
 * (dj_engine_run_command_in) a write is a nested LMDB transaction of it, so
 * a failing command undoes only itself, and a read uses the caller's
 * transaction as is (it must see the caller's writes). */
bool dj_txn_begin (dj_engine_t *e, bool write, dj_ctx_t *ctx, bson_error_t *error);
bool dj_txn_commit (dj_ctx_t *ctx, bson_error_t *error);
void dj_txn_abort (dj_ctx_t *ctx);
/* Appends to `into` the fields ctx->error_info holds for error e (a write
 * error or an error reply: they sit beside code and errmsg), and clears it. */
void dj_ctx_error_info (dj_ctx_t *ctx, const bson_error_t *e, bson_t *into);
/* Makes t (a caller's transaction) the one the commands run on this thread
 * use, after checking it may be used here; *saved receives the previous one
 * for dj_txn_leave. */
bool dj_txn_enter (dj_engine_t *e, dj_engine_txn_t *t, dj_engine_txn_t **saved, bson_error_t *error);
/* The session (lsid, borrowed; txnNumber) of the caller's transaction this
 * thread runs commands in (dj_engine_txn_set_session), if any. */
bool dj_txn_session (const dj_ctx_t *ctx, const bson_t **lsid, int64_t *txn_number);
void dj_txn_leave (dj_engine_txn_t *saved);
/* The env's writer mark (env.c): which thread holds LMDB's write lock, so
 * that a thread asking for a second one gets WriteConflict, not a deadlock. */
bool dj_env_writer_check (dj_engine_t *e, bson_error_t *error);
void dj_env_writer_set (dj_engine_t *e, bool held);
/* The one writing snapshot transaction of the env: claim returns false if
 * another holds it (then the caller reports WriteConflict). */
bool dj_env_snapshot_writer_claim (dj_engine_t *e);
void dj_env_snapshot_writer_release (dj_engine_t *e);
bool dj_lmdb_error (int rc, bson_error_t *error, const char *what);
/* A failed mdb_txn_commit: OutOfDiskSpace (naming the data directory) when
 * the disk is full, else dj_lmdb_error's "commit failed, nothing was written". */
bool dj_commit_error (const dj_engine_t *e, int rc, bson_error_t *error);

bool dj_ns_valid (const char *db, const char *coll, bson_error_t *error);
/* Loads a collection's catalog entry. Returns NULL with error->code == 0 when
 * the collection does not exist, NULL with an error otherwise. */
dj_coll_t *dj_coll_load (dj_ctx_t *ctx, const char *db, const char *name, bson_error_t *error);
/* dj_coll_load for a command that only reads the collection: the result may
 * be one the handle built for an earlier read from the very same catalog
 * entry bytes (e->coll_cache, a dj_keep_t), so it must not be changed; it
 * is the caller's alone until handed back with dj_coll_checkin (which
 * keeps it for the next read). A point read then costs one catalog lookup
 * instead of rebuilding every index and validator. What coll_from_entry
 * builds depends on nothing but the entry's bytes (which hold the ns), and
 * every change to a collection -- an index made or dropped, a multikey
 * flag, collMod, a drop and re-create (a new id) -- changes them: nothing
 * to invalidate, and a reader of an older snapshot gets its own version. */
dj_coll_t *dj_coll_checkout (dj_ctx_t *ctx, const char *db, const char *name, bson_error_t *error);
/* Hands back what dj_coll_checkout gave (NULL: nothing); c is no longer the
 * caller's. */
void dj_coll_checkin (dj_engine_t *e, dj_coll_t *c);
/* dj_coll_checkin of a collection a write used (an insert, whose record
 * ids and index flags change c: its next_rid is forgotten; one whose
 * flags changed is freed, as dj_record_note_flags dropped its entry).
 * Anything dj_coll_load gave is freed. */
void dj_coll_checkin_written (dj_engine_t *e, dj_coll_t *c);
/* db.name's create options (*options views its catalog entry in LMDB's
 * map: valid while ctx's transaction is); false when there is no such
 * collection. Nothing is built: the dispatcher's question (is it a view,
 * has it a default collation) before every command on a collection. */
bool dj_coll_entry_options (dj_ctx_t *ctx, const char *db, const char *name, bson_t *options);
dj_coll_t *dj_coll_create (dj_ctx_t *ctx, const char *db, const char *name, const bson_t *options, bson_error_t *error);
/* Loads, creating implicitly (as MongoDB's writes do) when absent. */
dj_coll_t *dj_coll_load_or_create (dj_ctx_t *ctx, const char *db, const char *name, bool *created, bson_error_t *error);
void dj_coll_free (dj_coll_t *c);
/* dj_coll_free for a dj_keep_t's free function. */
void dj_coll_free_any (void *c);
bool dj_coll_save (dj_ctx_t *ctx, const dj_coll_t *c, bson_error_t *error);
/* collMod: c's options with `changes` (borrowed) put over them, applied
 * (the validator parsed again) and saved; on error c is as it was. */
bool dj_coll_modify (dj_ctx_t *ctx, dj_coll_t *c, const bson_t *changes, bson_error_t *error);
bool dj_coll_drop (dj_ctx_t *ctx, dj_coll_t *c, bson_error_t *error);
/* Moves c's catalog entry to db.name (the caller checked the target is free). */
bool dj_coll_rename (dj_ctx_t *ctx, dj_coll_t *c, const char *db, const char *name, bson_error_t *error);
/* A capped collection keeps its newest documents: deletes the oldest while
 * it is over its size or document count. */
bool dj_coll_trim_capped (dj_ctx_t *ctx, dj_coll_t *c, bson_error_t *error);
bool dj_coll_list (dj_ctx_t *ctx, const char *db, char ***names, int *n, bson_error_t *error);
bool dj_db_list (dj_ctx_t *ctx, char ***names, int *n, bson_error_t *error);

/* ---- index_spec.c ---------------------------------------------------------- */
bool dj_index_load (dj_index_t *ix, const bson_t *spec, bson_error_t *error);
/* An expireAfterSeconds value checked as mongod checks it (a number, not
 * NaN, 0..2147483647) into *out. */
bool dj_ttl_seconds (const bson_value_t *v, int32_t *out, bson_error_t *error);
void dj_index_cleanup (dj_index_t *ix);
/* Adds ix to c (already validated) and fills it from existing documents. */
bool dj_coll_add_index (dj_ctx_t *ctx, dj_coll_t *c, const bson_t *spec, bson_error_t *error);
bool dj_coll_drop_index (dj_ctx_t *ctx, dj_coll_t *c, int i, bson_error_t *error);
/* createIndexes' spec `given` without its djongoRecordKeyed field into out
 * (initialised here); *keyed: the field asked for a record-keyed index
 * (ridkey.c: djongo's compiler sends it for a table's INTEGER PRIMARY KEY). */
void dj_ridkey_option (const bson_t *given, bson_t *out, bool *keyed);
/* dj_coll_add_index, made record-keyed when `keyed` and the index and c
 * allow it (ridkey.c: one ascending unique integer field, nothing else, on
 * an empty collection that is not capped). */
bool dj_ridkey_add_index (dj_ctx_t *ctx, dj_coll_t *c, const bson_t *spec, bool keyed, bson_error_t *error);
/* c's _id index made record-keyed (an "_id_" spec with djongoRecordKeyed:
 * its documents' _ids will be their ids) when c allows it: empty, not
 * capped, no collation; otherwise c is left as it is. */
bool dj_ridkey_key_id (dj_ctx_t *ctx, dj_coll_t *c, bson_error_t *error);

/* Record-level writes. All index maintenance and unique checks happen here,
 * inside the caller's write transaction; on error nothing was written. */
bool dj_record_insert (dj_ctx_t *ctx, dj_coll_t *c, const bson_t *doc, uint64_t *rid_out, bson_error_t *error);
bool dj_record_update (dj_ctx_t *ctx, dj_coll_t *c, uint64_t rid, const bson_t *old_doc, const bson_t *new_doc,
                       bson_error_t *error);
bool dj_record_delete (dj_ctx_t *ctx, dj_coll_t *c, uint64_t rid, const bson_t *doc, bson_error_t *error);
/* Deletes the records rids[0..n) (borrowed; any order, ones gone already
 * skipped) with their index entries, logging them in that order
 * (write_many.c: batches, one cursor pass each). *deleted is increased by
 * how many went; after an error, the ones before it stay deleted. */
/* A multi-document update's change to one document: out (uninitialised;
 * initialised when true is returned) what doc becomes, *changed whether it
 * differs. False: the statement stops with *error. */
typedef bool (*dj_update_doc_fn) (const bson_t *doc, bson_t *out, bool *changed, void *ud, bson_error_t *error);
/* Updates the records rids[0..n) (borrowed; in that order; ones gone
 * skipped) with fn (write_many.c: a cursor walk over the records, each
 * non-unique index's changed entries written sorted at the end of a batch,
 * one change log entry a batch). *matched and *modified are increased as
 * documents are seen and changed; after an error, the documents before the
 * failing one stay updated, as with dj_record_update one at a time. */
bool dj_record_update_many (dj_ctx_t *ctx, dj_coll_t *c, const uint64_t *rids, size_t n, dj_update_doc_fn fn, void *ud,
                            int64_t *matched, int64_t *modified, bson_error_t *error);
bool dj_record_delete_many (dj_ctx_t *ctx, dj_coll_t *c, const uint64_t *rids, size_t n, int64_t *deleted,
                            bson_error_t *error);
bool dj_record_get (dj_ctx_t *ctx, dj_coll_t *c, uint64_t rid, bson_t *doc_static, bson_error_t *error);
/* Checks the collection's validator against doc; a failure's errInfo goes to
 * ctx->error_info. */
bool dj_coll_validate (dj_ctx_t *ctx, const dj_coll_t *c, const bson_t *doc, const bson_t *old_doc, bson_error_t *error);
/* The index key doc holds for ix, as a document of ix's fields ({a: 1, b:
 * "x"}; the first entry's for a multikey document): find's returnKey. */
void dj_index_key_doc (const dj_index_t *ix, const bson_t *doc, bson_t *out);
/* Encodes `bound` (find's min or max: {field: value, ...}, ix's fields in
 * order) as an index key into out; false (error 51174) when its fields are
 * not ix's. */
bool dj_index_key_bound (const dj_index_t *ix, const bson_t *bound, dj_buf_t *out, bson_error_t *error);
/* What validate checks, record by record and entry by entry: that each
 * record is a well-formed document, and that each index entry names a
 * record that exists; the caller compares entry counts with records. */
typedef struct {
   int64_t nrecords, invalid;
   int64_t *keys, *dangling; /* owned, one per index */
} dj_coll_check_t;
bool dj_coll_check (dj_ctx_t *ctx, dj_coll_t *c, dj_coll_check_t *out, bson_error_t *error);
void dj_coll_check_cleanup (dj_coll_check_t *r);
/* Statistics for collStats/dbStats. */
void dj_coll_stats (dj_ctx_t *ctx, dj_coll_t *c, int64_t *count, int64_t *size, int64_t *index_sizes /* nindexes */);

/* ---- changes.c: the change log -------------------------------------------- */
/* The cap on the change log when the options give none: 192 MiB. */
#define DJ_CHANGE_LOG_DEFAULT_SIZE ((int64_t) 192 << 20)
/* The cluster time now, and a fresh one past every time handed out. */
void dj_clock_now (dj_engine_t *e, uint32_t *t, uint32_t *i);
void dj_clock_advance (dj_engine_t *e, uint32_t *t, uint32_t *i);
/* Moves clock c to at least `last` (seconds << 32 | increment). */
void dj_clock_seed (dj_clock_t *c, uint64_t last);
/* Logs a change to a document of c in ctx's write transaction: op
 * "insert" (after), "update" or "replace" (before, after), "delete"
 * (before). */
bool dj_changes_record (dj_ctx_t *ctx, const dj_coll_t *c, const char *op, const bson_t *before, const bson_t *after,
                        bson_error_t *error);
/* Logs the deletes of n documents of c (their _ids: ids, an array of n in
 * the order they were deleted) as one batch entry (changes.c's header: "A
 * batch"). A collection that keeps pre-images logs each with
 * dj_changes_record instead. */
bool dj_changes_record_deletes (dj_ctx_t *ctx, const dj_coll_t *c, const bson_t *ids, size_t n, bson_error_t *error);
/* Logs the updates of n documents of c (their _ids: ids; upds: an array of
 * their update descriptions, dj_changes_describe_update's) as one batch
 * entry. A collection that keeps images logs each with dj_changes_record. */
bool dj_changes_record_updates (dj_ctx_t *ctx, const dj_coll_t *c, const bson_value_t *ids, size_t n, const bson_t *upds,
                                bson_error_t *error);
/* Whether changes to c are logged at all (in this context). */
bool dj_changes_wants_updates (dj_ctx_t *ctx, const dj_coll_t *c);
/* Logs a change to a namespace: "drop", "create", "createIndexes",
 * "dropIndexes", "modify" (coll; cid its id, 0: unknown), "dropDatabase"
 * (coll NULL), "rename" (desc {to: {db, coll}, dropTarget?}). desc (may be
 * NULL) is kept as the event's operationDescription. */
bool dj_changes_record_ns (dj_ctx_t *ctx, const char *op, const char *db, const char *coll, uint64_t cid, const bson_t *desc,
                           bson_error_t *error);
/* Writes the inserts still waiting (ctx->chg.ins_docs) and what ctx's
 * changes did to the log's size record; dj_txn_commit calls it before the
 * commit. */
bool dj_changes_flush (dj_ctx_t *ctx, bson_error_t *error);
/* Drops the inserts still waiting: the transaction is aborted. */
void dj_changes_discard (dj_ctx_t *ctx);
/* An update's description: {updatedFields, removedFields, truncatedArrays}
 * from the document before and after (out: initialised here). */
void dj_changes_describe_update (const bson_t *before, const bson_t *after, bson_t *out);
/* Whether c keeps pre- and post-images (changeStreamPreAndPostImages). */
bool dj_changes_images_enabled (const dj_coll_t *c);
/* Calls fn with each entry logged after time `after`, in time order, until
 * it returns false (a batch's documents each as an entry of its own, at its
 * own time); entry is valid during the call only.
 * *lost: the newest time the cap dropped (0: none). */
typedef bool (*dj_change_fn) (uint64_t ts, const bson_t *entry, void *ud);
bool dj_changes_read (dj_ctx_t *ctx, uint64_t after, dj_change_fn fn, void *ud, uint64_t *lost, bson_error_t *error);
/* The newest time in the log (0: empty). */
bool dj_changes_last (dj_ctx_t *ctx, uint64_t *last, bson_error_t *error);

/* ---- walk.c: one cursor over a key range --------------------------------- */
/* Walks the keys of `dbi` that start with prefix[0..n) (n == 0: all keys),
 * in key order (dir 1) or backward (dir -1):
 *
 *    dj_walk_t w;
 *    if (!dj_walk_open (&w, ctx, ctx->engine->dbi_data, p, 8, 1, error)) return false;
 *    while (dj_walk_next (&w)) { ... w.k, w.v ... }
 *    return dj_walk_close (&w, "collection scan", error);
 *
 * w.k and w.v point into LMDB's map: valid until the next call or a write.
 * A loop may stop early; dj_walk_close then reports nothing. */
typedef enum { DJ_WALK_START, DJ_WALK_SEEK, DJ_WALK_ON, DJ_WALK_DELETED, DJ_WALK_END } dj_walk_state_t;
typedef struct {
   MDB_cursor *cur;
   dj_buf_t prefix, from;
   int dir;
   dj_walk_state_t state;
   MDB_val k, v; /* the current entry */
   int rc;       /* LMDB's last answer */
} dj_walk_t;
bool dj_walk_open (dj_walk_t *w, dj_ctx_t *ctx, MDB_dbi dbi, const void *prefix, size_t n, int dir, bson_error_t *error);
/* The next dj_walk_next goes to the first key at or after key (forward
 * walks: a start inside the range, or the way back after writes moved the
 * cursor). */
void dj_walk_seek (dj_walk_t *w, const void *key, size_t n);
/* Moves to the next entry of the range: false at its end or on an error. */
bool dj_walk_next (dj_walk_t *w);
/* Deletes the current entry; dj_walk_next then goes on with the one after it. */
bool dj_walk_del (dj_walk_t *w);
/* Ends the walk; false with an error (`what` failed) if LMDB failed. */
bool dj_walk_close (dj_walk_t *w, const char *what, bson_error_t *error);

/* ---- count_range.c: a key range's entries counted ------------------------ */
/* The keys of the data DBI behind prefix id (an index's or a collection's)
 * from lo (keys starting with it left out when lo_skip; NULL: the first)
 * up to hi (keys starting with it inside when hi_incl; NULL: the last),
 * counted without reading their values: exact within ctx's snapshot. A
 * long range is walked by ctx's thread and a helper thread of the call
 * from both ends when the helper sees the same snapshot (count_range.c). */
typedef struct {
   uint64_t id;
   const dj_buf_t *lo, *hi; /* borrowed, may be NULL */
   bool lo_skip, hi_incl;
   /* 0: the defaults. The keys counted by the caller before a helper
    * starts, and the keys the walkers claim at a time (tests use small ones) */
   size_t serial_keys, chunk_keys;
   int64_t *helped; /* may be NULL: set to the keys the helper counted */
} dj_count_range_t;
bool dj_count_range (dj_ctx_t *ctx, const dj_count_range_t *r, int64_t *n, bson_error_t *error);

/* ---- spill.c: an external merge sort ---------------------------------------
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/sort/#-sort-and-memory-restrictions
 *
 *    dj_spill_t *s = dj_spill_new (e->path, sort, limit);
 *    for each document: dj_spill_add (s, doc, error)        (steals doc)
 *    dj_spill_finish (s, error);
 *    while ((doc = dj_spill_next (s, error))) { ... }       (doc: the caller's)
 *    if (error->code) ...; dj_spill_destroy (s);
 *
 * The output is the stable sort of the input (ties in the order added).
 * Past `limit` bytes held, the documents held go sorted to a temporary file
 * under dir/_tmp (unlinked at once: gone when the sort ends or the process
 * dies) and are merged back at the end. dir and sort are borrowed for the
 * sorter's life. Errors: InternalError when a file cannot be written or read. */
typedef struct dj_spill dj_spill_t;
dj_spill_t *dj_spill_new (const char *dir, const dj_sort_t *sort, int64_t limit);
bool dj_spill_add (dj_spill_t *s, bson_t *doc, bson_error_t *error);
bool dj_spill_finish (dj_spill_t *s, bson_error_t *error);
bson_t *dj_spill_next (dj_spill_t *s, bson_error_t *error); /* NULL: the end, or an error (error->code) */
int64_t dj_spill_count (const dj_spill_t *s); /* the runs memory went out as (0: sorted in memory) */
void dj_spill_destroy (dj_spill_t *s);                       /* NULL ok; closes (so removes) its files */
/* Removes the spill files under dir/_tmp of processes that are gone (one
 * that died between creating a file and unlinking it): at the directory's open. */
void dj_spill_sweep (const char *dir);

/* Sorts record ids v[0..n) ascending, in place (repeats kept). */
void dj_rids_sort (uint64_t *v, size_t n);

/* ---- plan.c ------------------------------------------------------------- */
/* Calls fn(rid, doc) for each document matching m, using an index where one
 * fits. doc is valid only during the call (it lives in LMDB's map). fn
 * returns false to stop early. `pos` receives the positional match. */
typedef bool (*dj_scan_fn) (uint64_t rid, const bson_t *doc, int32_t pos, void *ctx);
/* writes: collect matching record ids first and only then call fn, so fn
 * may change the collection without the scan seeing a document twice (the
 * "Halloween problem"). `max`: stop after that many matches (0: all). */
bool dj_plan_scan (dj_ctx_t *ctx, dj_coll_t *c, const dj_matcher_t *m, bool writes, int64_t max, dj_scan_fn fn, void *fnctx,
                   bson_error_t *error);
/* The same, with variables for the filter's $expr. */
bool dj_plan_scan_vars (dj_ctx_t *ctx, dj_coll_t *c, const dj_matcher_t *m, const dj_eval_t *vars, bool writes, int64_t max,
                        dj_scan_fn fn, void *fnctx, bson_error_t *error);
/* The record ids of the documents m matches, at most max (0: all), in
 * scan order, into *rids (owned by the caller, bson_free; *n of them): a
 * write's targets, found without reading a document when the index's
 * entries are the answer (as a count's). The scan writes nothing. */
bool dj_plan_match_rids (dj_ctx_t *ctx, dj_coll_t *c, const dj_matcher_t *m, const dj_eval_t *vars, int64_t max,
                         uint64_t **rids, size_t *n, bson_error_t *error);
/* dj_plan_scan_vars (reads, every match) for a caller that orders the
 * matches itself (a blocking sort): an index's matches come in record
 * order, not index order -- their ids taken from the index, sorted, and
 * the records read as neighbours rather than by a B-tree descent each. */
bool dj_plan_scan_unordered (dj_ctx_t *ctx, dj_coll_t *c, const dj_matcher_t *m, const dj_eval_t *vars, dj_scan_fn fn,
                             void *fnctx, bson_error_t *error);
/* Like dj_plan_scan (reads only), but delivers documents in the order of
 * sort `s` by walking an index, so a limit stops the walk early. Returns
 * false with *used = false (and no error) when no index gives exactly the
 * sort's order; the caller then sorts in memory. */
bool dj_plan_scan_sorted (dj_ctx_t *ctx, dj_coll_t *c, const dj_matcher_t *m, const dj_sort_t *s, int64_t max, dj_scan_fn fn,
                          void *fnctx, bool *used, bson_error_t *error);
/* A hinted scan: the entries of index `index` (-1: the collection's records,
 * lo and hi unused) in key order, from key `lo`
 * (inclusive; NULL: the first) to `hi` (exclusive; NULL: past the last) --
 * find's min/max, encoded as dj_index_key_bound does -- each document
 * checked against m and handed to fn once (a multikey document has several
 * entries). Documents the index holds no entry for (sparse, partial) are not
 * seen, as with mongod's hinted plans. */
bool dj_plan_scan_hinted (dj_ctx_t *ctx, dj_coll_t *c, int index, const dj_buf_t *lo, const dj_buf_t *hi, const dj_matcher_t *m,
                          const dj_eval_t *vars, int64_t max, dj_scan_fn fn, void *fnctx, bson_error_t *error);
/* The index the scans above use for m (and sort, may be NULL): -1 for a
 * collection scan. */
int dj_plan_index (dj_coll_t *c, const dj_matcher_t *m, const dj_sort_t *sort);
/* The records after record id `after`, in insertion order, that m matches:
 * what a tailable cursor reads next on a capped collection. */
bool dj_plan_scan_after (dj_ctx_t *ctx, dj_coll_t *c, uint64_t after, const dj_matcher_t *m, dj_scan_fn fn, void *fnctx,
                         bson_error_t *error);
/* sample.c: fn(rid, doc, -1, fnctx) for `size` different records of c
 * picked at random, without reading the others (the caller checks c holds
 * many more than size: the draw retries duplicates, failing with 28799
 * after 100 in a row). doc is valid during the call; fn returns false to stop. */
bool dj_record_sample (dj_ctx_t *ctx, dj_coll_t *c, int64_t size, dj_scan_fn fn, void *fnctx, bson_error_t *error);
/* How many records c holds, counting no further than max (> 0): max means
 * "max or more". -1 on an LMDB error. Reads keys only. */
int64_t dj_plan_count_upto (dj_ctx_t *ctx, dj_coll_t *c, int64_t max, bson_error_t *error);
/* ---- text_scan.c: text indexes ------------------------------------------- */
/* The $text query of m (NULL: m has none) answered through c's text index
 * (error 27 without one), each match handed to fn as a copy of the
 * document with its text score under DJ_META_TEXT_SCORE (writes: the
 * record ids gathered first, documents handed on as stored). */
bool dj_text_scan (dj_ctx_t *ctx, dj_coll_t *c, const dj_matcher_t *m, const dj_eval_t *vars, bool writes, int64_t max,
                   dj_scan_fn fn, void *fnctx, bson_error_t *error);
/* The documents c's text index finds for the $text in `clause` (its
 * prefix fields' equalities read from clause's conjuncts), each meeting the
 * $text's own tests (negations, phrases, case, diacritics), to fn with its
 * score -- the filter's other conditions unchecked; fn returns false to
 * stop. Error 27 without a text index, 291 without the prefix equalities. */
typedef bool (*dj_text_hit_fn) (uint64_t rid, const bson_t *doc, double score, void *ud);
bool dj_text_hits (dj_ctx_t *ctx, dj_coll_t *c, const dj_matcher_t *clause, dj_text_hit_fn fn, void *ud, bson_error_t *error);
/* dj_text_hits' errors without the scan: false with 27 or 291. */
bool dj_text_check (const dj_coll_t *c, const dj_matcher_t *clause, bson_error_t *error);
/* ---- text_or.c: $text under an $or ----------------------------------------- */
/* dj_text_scan of a filter whose $text is under a top-level $or: the union
 * of the text index's documents and those of each other alternative's own
 * index, each matched against the whole filter (text scores on the text
 * index's; DJ_META_TEXT_SCORE null on the others); 291 as mongod's planner
 * when an alternative has no index. */
bool dj_text_or_scan (dj_ctx_t *ctx, dj_coll_t *c, const dj_matcher_t *m, const dj_eval_t *vars, bool writes, int64_t max,
                      dj_scan_fn fn, void *fnctx, bson_error_t *error);
/* Appends the union's explain to plan -- {stage: OR, inputStages: the text
 * index's plan, then each alternative's} -- and returns true; false (plan
 * untouched) when m's $text is a top-level conjunct or has no plan. */
bool dj_text_or_explain (dj_coll_t *c, const dj_matcher_t *m, bson_t *plan);
/* plan.c, for text_or.c: whether an index serves `clause` (an $or's
 * alternative) on its own, and its records through that index (each
 * matching clause) to fn. */
bool dj_plan_clause_indexed (dj_coll_t *c, const dj_matcher_t *clause);
bool dj_plan_scan_clause (dj_ctx_t *ctx, dj_coll_t *c, const dj_matcher_t *clause, const dj_eval_t *vars, dj_scan_fn fn,
                          void *fnctx, bson_error_t *error);
/* Whether a scan for m would walk an index rather than the collection. */
bool dj_plan_uses_index (dj_coll_t *c, const dj_matcher_t *m);
/* How many documents m matches (with $expr variables vars, may be NULL),
 * counted from index keys without reading documents when an index answers
 * the whole filter exactly (dj_bounds_t.exact), or from the record keys for
 * an empty filter; else by scanning and matching, copying nothing. */
bool dj_plan_count (dj_ctx_t *ctx, dj_coll_t *c, const dj_matcher_t *m, const dj_eval_t *vars, int64_t *n,
                    bson_error_t *error);
/* Appends MongoDB's explain shape of the plan find would use to `plan`:
 * {stage: COLLSCAN} or {stage: FETCH, inputStage: {stage: IXSCAN, indexName,
 * keyPattern, direction}}, under {stage: SORT} when sorting in memory. */
/* `hint`: -1 the planner's choice, DJ_PLAN_COLLSCAN the collection scan,
 * else the index find was told to use. */
#define DJ_PLAN_COLLSCAN (-2)
void dj_plan_explain (dj_coll_t *c, const dj_matcher_t *m, const dj_sort_t *sort, int hint, bson_t *plan);

/* ---- geo_index.c: '2dsphere' and '2d' indexes ----------------------------- */
/* The key pattern value `v` names a geo index kind: sets ix->geo for path i
 * (ix->npaths) and its grid; false if v is no geo kind. */
bool dj_geo_index_kind (dj_index_t *ix, const bson_value_t *v);
/* A geo index's options (2d: min, max, bits) checked into ix->grid. */
bool dj_geo_index_options (dj_index_t *ix, const bson_t *spec, bson_error_t *error);
/* The cell ids (int64 values) doc's geometry at ix's geo path is keyed by,
 * appended to out; none when the field is missing or null. Malformed
 * geometry fails as mongod's insert does (16755 "Can't extract geo keys"). */
bool dj_geo_index_cells (const dj_index_t *ix, const bson_t *doc, dj_vlist_t *out, bson_error_t *error);
/* Answers a filter with a geo condition through a geo index: *used false
 * (and nothing done) when no geo index serves it; $near/$nearSphere
 * without one fail with 291 as mongod's. fn as dj_plan_scan's; a near
 * query delivers by distance. */
bool dj_geo_plan_scan (dj_ctx_t *ctx, dj_coll_t *c, const dj_matcher_t *m, const dj_eval_t *vars, int64_t max, dj_scan_fn fn,
                       void *fnctx, bool *used, bson_error_t *error);
/* The geo index m's geo condition uses (-1: none); *near (may be NULL):
 * whether it is a near condition (delivered by distance). */
int dj_geo_plan_index (const dj_coll_t *c, const dj_matcher_t *m, bool *near);
/* $geoNear: the documents matching m (may be NULL) within q's distances,
 * nearest first, through geo index `index` (dj_geo_near_index chooses it);
 * fn gets each with its distance (q's units) and the nearest location.
 * max: stop after that many (0: all). */
typedef bool (*dj_geo_near_fn) (const bson_t *doc, double dist, const bson_value_t *loc, void *ud);
bool dj_geo_near (dj_ctx_t *ctx, dj_coll_t *c, int index, const dj_geo_query_t *q, const dj_matcher_t *m, int64_t max,
                  dj_geo_near_fn fn, void *ud, bson_error_t *error);
/* The geo index $geoNear uses for q: the one on `key` if given, else the
 * only one that fits; errors as mongod's. */
bool dj_geo_near_index (const dj_coll_t *c, const dj_geo_query_t *q, const char *key, int *index, bson_error_t *error);

/* ---- keycount.c: a field's values counted from an index's keys ---------- */
/* The index of c whose keys stand for `field`'s values one to one (single
 * field, not multikey, sparse, partial, lossy or hashed), or -1. */
int dj_keycount_index (const dj_coll_t *c, const char *field);
/* How many documents hold the key `key` (dj_keycount_value_key) in that
 * index, counted from its entries. */
bool dj_keycount_count (dj_ctx_t *ctx, const dj_coll_t *c, int index, const dj_buf_t *key, int64_t *n, bson_error_t *error);
/* The key the value v (NULL: missing) has in that index, into out (emptied
 * first); false for a value that is not one whole key (an array, a key
 * that would be cut). */
bool dj_keycount_value_key (const dj_coll_t *c, int index, const char *field, const bson_value_t *v, dj_buf_t *out,
                            bson_error_t *error);

#endif
