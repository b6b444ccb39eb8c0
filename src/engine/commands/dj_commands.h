/*
 * dj_commands.h -- the engine's commands: dispatch, one file per family.
 *
 * What it owns: dj_engine_open/close and dj_engine_run_command (dj_engine.h),
 * the command table, each command's argument checks (raised before it
 * touches data), open cursors between find/aggregate and getMore, views,
 * a command's `let` and `collation`.
 * Who calls it: the public API (dj_engine.h): the transports, the server,
 * the tools. It calls every layer below.
 * Memory: replies are the caller's (dj_engine_run_command initialises them).
 *
 * Files:
 *   engine.c     open/close, the command table and dispatch, shared argument helpers
 *   cmd_read.c   find, count, distinct, explain
 *   cmd_agg.c    aggregate
 *   cmd_write.c  insert, update, delete, findAndModify
 *   cmd_bulk_write.c  bulkWrite (8.0): ops on many namespaces through cmd_write.c
 *   cmd_coll.c   create, collMod, drop, renameCollection, listCollections, stats, validate, fsync
 *   profile.c    the profiler: profile, system.profile
 *   cmd_index.c  createIndexes, dropIndexes, listIndexes
 *   cursor.c     open cursors, getMore, killCursors
 *   changestream.c  $changeStream: change events from the change log, resume tokens
 *   view.c       read-only views: find/count/distinct become aggregates, writes refused
 *   let.c        a command's `let` variables; what find and findAndModify
 *                parse alike (let, filter, sort, projection)
 *   ttl.c        the TTL monitor: a thread per data directory deleting what
 *                TTL indexes expire
 *   cmd_param.c  setParameter: the stages' memory limits
 *   default_collation.c  a collection's default collation (create) and an index's
 *   concern.c    write concerns as a one-member replica set judges them
 *                (dj_engine_write_concern_check: the server and the
 *                embedded transport)
 *   references.c insert's djongoReferences: the new documents' references
 *                to other collections checked by the insert itself
 *   maxof.c      findAndModify's djongoMax: a field's largest number in a
 *                collection as a let variable (AUTOINCREMENT ids in one command)
 */
#ifndef DJ_COMMANDS_H
#define DJ_COMMANDS_H

#include "dj_agg.h"

typedef struct dj_cursor dj_cursor_t;
typedef struct dj_stream dj_stream_t;

/* ---- view.c: read-only views (create with viewOn) -------------------------- */
/* A view is a catalog entry whose options hold {viewOn, pipeline}; reading
 * it runs the pipeline over what it is on (aggregation/lookup.c).
 * Before a command runs: find, count and distinct on a view become an
 * aggregate on it; writes, index commands and the like are refused with
 * CommandNotSupportedOnView (166). Returns true with *handled set when it
 * answered (reply appended), false with error on failure. */
bool dj_view_dispatch (dj_engine_t *e, const char *db, const char *name, const bson_t *cmd, bool view, bson_t *reply,
                       bool *handled, bson_error_t *error);
/* Whether command `name` is one dj_view_dispatch answers or refuses when
 * its collection is a view (`view`: dj_cmd_ns_read's answer). */
bool dj_view_concerns (const char *name);
/* create's viewOn: checks the definition; `options` receives {viewOn, pipeline}. */
bool dj_view_options (const bson_t *cmd, bson_t *options, bson_error_t *error);

/* ---- let.c ------------------------------------------------------------- */
/* A command's `let`: {name: expression, ...}, each evaluated once (no
 * document in scope), visible as $$name to the command's filter ($expr),
 * update pipeline and aggregation pipeline.
 * https://www.mongodb.com/docs/manual/reference/command/find/#let-variables */
typedef struct {
   dj_arena_t *arena;      /* owned: the values */
   dj_vscope_t *scope;     /* owned: one entry per variable, chained */
   const dj_vscope_t *top; /* the innermost entry; NULL without let */
   dj_eval_t vars;         /* the values, for evaluation */
} dj_let_t;
/* Reads cmd's "let" (absent: no variables). `let` is set up even on
 * failure: always dj_let_destroy() it. */
bool dj_let_parse (const bson_t *cmd, dj_let_t *let, bson_error_t *error);
void dj_let_destroy (dj_let_t *let);
/* Reads `collation` from cmd (or a statement) and makes it current. */
bool dj_cmd_collation (const bson_t *cmd, bson_error_t *error);
/* ---- references.c: insert's djongoReferences (the file's header) ---------- */
typedef struct dj_refs dj_refs_t;
/* cmd's djongoReferences checked into *out (NULL: none given; else owned
 * by the caller, dj_refs_free); its strings borrow from cmd. */
bool dj_refs_parse (const bson_t *cmd, const char *db, dj_refs_t **out, bson_error_t *error);
/* Notes the values doc (an inserted document) references (r NULL: none). */
void dj_refs_note (dj_refs_t *r, const bson_t *doc);
/* Each noted value has its document, in ctx's transaction; else 121 (the
 * insert into `coll` then fails as a whole), or for a deferred item the
 * item noted as unsettled. */
bool dj_refs_check (dj_refs_t *r, dj_ctx_t *ctx, const char *db, const char *coll, bson_error_t *error);
/* The deferred items left unsettled, as reply's djongoUnsettled (none: nothing appended). */
void dj_refs_reply (const dj_refs_t *r, bson_t *reply);
void dj_refs_free (dj_refs_t *r);
/* ---- maxof.c: findAndModify's djongoMax (the file's header) ---------- */
/* When cmd (a findAndModify) has djongoMax: *out (initialised, the
 * caller's) is cmd without it, its let given $$djongoMax, and *rewritten
 * is true; else nothing is initialised. */
bool dj_maxof_rewrite (dj_engine_t *e, const char *db, const bson_t *cmd, bson_t *out, bool *rewritten, bson_error_t *error);
/* ---- default_collation.c ------------------------------------------------------------- */
/* What the dispatcher asks the catalog of the collection a command names
 * before it runs, in one read of its entry: whether it is a view (for
 * the commands dj_view_concerns) and its default collation (for
 * find/aggregate/count/distinct/update/delete/findAndModify; not asked
 * when the command is one a view answers itself). */
typedef struct {
   bool view;
   const dj_collation_t *collation; /* the process's (never freed); NULL: none (simple) */
} dj_cmd_ns_t;
bool dj_cmd_ns_read (dj_engine_t *e, const char *db, const char *name, const bson_t *cmd, dj_cmd_ns_t *ns,
                     bson_error_t *error);
/* A collation option v, checked, appended to parent as key in full
 * (nothing for {locale: "simple"}). */
bool dj_collation_option (const bson_value_t *v, bson_t *parent, const char *key, bson_error_t *error);
/* An index spec as stored: its collation in full (none for simple), or
 * the collection's default (coll_options' collation) when it names none.
 * out: initialised on success (the caller's). */
bool dj_index_spec_collated (const bson_t *spec, const bson_t *coll_options, bson_t *out, bson_error_t *error);
/* cmd's hint (an index name or key pattern) as the index of c it names: -1
 * for none ({} too), DJ_HINT_NATURAL for {$natural: ...} (the collection
 * scan); BadValue when it names no index of c (c NULL: a missing
 * collection, any hint goes).
 * https://www.mongodb.com/docs/manual/reference/command/find/ (hint) */
#define DJ_HINT_NATURAL DJ_PLAN_COLLSCAN
bool dj_cmd_hint (const bson_t *cmd, const dj_coll_t *c, int *index, bson_error_t *error);
/* What find and findAndModify both read from a command: its let, the filter
 * (whose $expr sees the let variables), the sort and the projection (NULL
 * when their specification is empty: dj_cmd_get_doc leaves an absent one
 * empty). Borrows nothing from the specifications. Set up even on failure:
 * always dj_find_spec_destroy() it. */
typedef struct {
   dj_let_t let;
   dj_matcher_t *m;       /* owned */
   dj_sort_t *sort;       /* owned; NULL: no sort */
   dj_projection_t *proj; /* owned; NULL: whole documents */
} dj_find_spec_t;
bool dj_find_spec_parse (const bson_t *cmd, const bson_t *filter, const bson_t *sort, const bson_t *projection,
                         dj_find_spec_t *fs, bson_error_t *error);
void dj_find_spec_destroy (dj_find_spec_t *fs);

/* ---- cursor.c ----------------------------------------------------------- */
/* The records a scan matched, kept in scan order: a dj_scan_fn context
 * (dj_matches_add) for findAndModify's candidates and a tailable cursor's
 * next batch. Each entry: a copy of the document (projected by proj when
 * set), its record id and the array position a positional $ matched.
 * Stops the scan after max records (0: no limit). Set proj, max and error
 * before the scan, zero the rest; on a projection error the scan stops with
 * failed set and *error filled. Owns docs (each one too), rids and poss:
 * dj_matches_cleanup(). */
typedef struct {
   bson_t **docs;
   uint64_t *rids;
   int32_t *poss;
   size_t n, cap;
   const dj_projection_t *proj; /* borrowed; NULL: documents as stored */
   size_t max;
   bson_error_t *error;
   bool failed;
} dj_matches_t;
bool dj_matches_add (uint64_t rid, const bson_t *doc, int32_t pos, void *ctx);
void dj_matches_cleanup (dj_matches_t *m);
/* Takes ownership of docs[] (each bson_t* and the array). */
int64_t dj_cursor_open (dj_engine_t *e, const char *ns, bson_t **docs, size_t n, size_t pos);
/* The user the commands on this thread run for (dj_engine_run_command_as):
 * enter returns the previous one, which leave restores. */
const char *dj_cursor_user_enter (const char *user);
void dj_cursor_user_leave (const char *saved);
void dj_cursor_close_all (dj_engine_t *e);

/* ---- ttl.c: the TTL monitor ------------------------------------------------ */
/* Joins e to its data directory's monitor, starting it (with opts' period)
 * if e is the first handle; none when opts->ttl_monitor_secs < 0. */
bool dj_ttl_attach (dj_engine_t *e, const dj_engine_options_t *opts, bson_error_t *error);
/* Leaves it; the last handle stops it (a pass in progress ends first). */
void dj_ttl_detach (dj_engine_t *e);

/* ---- commands ----------------------------------------------------------- */
/* A command: fills reply and returns true, or returns false with *error.
 * A failed command's reply is replaced by the error, keeping only the error's
 * own fields the command left in it (keyPattern, keyValue, errInfo). */
typedef bool (*dj_command_fn) (dj_engine_t *e, const char *db, const bson_t *cmd, bson_t *reply, bson_error_t *error);
/* Checks cmd's fields against `known` (NULL-terminated; the command name
 * itself and generic fields like $db, lsid, comment are always allowed). */
bool dj_cmd_check_fields (const bson_t *cmd, const char *const *known, bson_error_t *error);
/* dj_cmd_check_fields, also telling which of known[0..63] cmd holds (bit i
 * of *present for known[i]): a command with many options then reads only
 * those it was given (dj_cmd_find). */
bool dj_cmd_check_fields_present (const bson_t *cmd, const char *const *known, uint64_t *present, bson_error_t *error);
/* The collection name from the first field ({find: "c"}); error if not a string. */
bool dj_cmd_collection (const bson_t *cmd, const char **name, bson_error_t *error);
/* The checks every command on a collection starts with: its fields
 * against `known`, the collection name (*name, borrowed from cmd) and the
 * namespace db.name. */
bool dj_cmd_target (const bson_t *cmd, const char *db, const char *const *known, const char **name, bson_error_t *error);
/* Loads db.name in ctx; a missing collection is NamespaceNotFound with the
 * message `missing` (a format taking db and name: each command has
 * MongoDB's own words). */
dj_coll_t *dj_cmd_load_existing (dj_ctx_t *ctx, const char *db, const char *name, const char *missing, bson_error_t *error);
/* The start of a command on a collection: dj_cmd_target, its transaction
 * (write or read) and the collection in *c -- NULL when it does not exist,
 * which is NamespaceNotFound in the words `missing` when that is not NULL.
 * *name (if not NULL): the collection's name, borrowed from cmd. Either
 * way the caller ends with dj_cmd_end. */
bool dj_cmd_open (dj_engine_t *e, const char *db, const bson_t *cmd, const char *const *known, bool write, const char *missing,
                  const char **name, dj_ctx_t *ctx, dj_coll_t **c, bson_error_t *error);
/* The one exit of a command on a collection: when ok, commits its write
 * transaction if still open (false with error if that fails); aborts what
 * is left, frees c (may be NULL) and returns ok. The reply may be complete
 * before the commit: dj_engine_run_command replaces it when ok is false. */
bool dj_cmd_end (dj_ctx_t *ctx, dj_coll_t *c, bool ok, bson_error_t *error);
/* The start of a command on a whole database: its fields against `known`,
 * its transaction (write or read) and the names of db's collections
 * (*names: owned, freed by dj_cmd_end_db; NULL and *n 0 until listed).
 * Either way the caller ends with dj_cmd_end_db. */
bool dj_cmd_open_db (dj_engine_t *e, const char *db, const bson_t *cmd, const char *const *known, bool write, dj_ctx_t *ctx,
                     char ***names, int *n, bson_error_t *error);
/* dj_cmd_end for dj_cmd_open_db: also frees names. */
bool dj_cmd_end_db (dj_ctx_t *ctx, char **names, int n, bool ok, bson_error_t *error);
bool dj_cmd_get_doc (const bson_t *cmd, const char *field, bson_t *out, bool *present, bson_error_t *error);
/* An optional array field of cmd (or of a statement): *out borrows it from
 * cmd, empty when absent; *present says whether it was there. Any other type
 * is TypeMismatch naming the field as `where` (its full name: "create.pipeline"). */
bool dj_cmd_get_array (const bson_t *cmd, const char *field, const char *where, bson_t *out, bool *present,
                       bson_error_t *error);
bool dj_cmd_get_int64 (const bson_t *cmd, const char *field, int64_t *out, bool *present, bson_error_t *error);
bool dj_cmd_get_bool (const bson_t *cmd, const char *field, bool *out, bson_error_t *error);
/* Appends a batch cursor reply: {cursor: {firstBatch|nextBatch, id, ns}}. */
void dj_reply_cursor (bson_t *reply, const char *ns, const char *batch_name, bson_t **docs, size_t n, int64_t id);
/* Takes documents from a result list into a first batch and, if more remain,
 * a cursor. Owns docs afterwards. */
void dj_reply_results (dj_engine_t *e, bson_t *reply, const char *ns, bson_t **docs, size_t n, int64_t batch_size,
                       bool single_batch);
/* Whether dj_reply_results (.., docs, n, batch_size, single_batch) leaves
 * documents past its first batch to a cursor: a caller whose documents
 * live only as long as the command (views, dj_rows_t) gives it copies. */
bool dj_reply_keeps (bson_t **docs, size_t n, int64_t batch_size, bool single_batch);
/* The results still in a sorter (a spilled $sort's k-way merge, storage's
 * spill.c): the first batch from it and, unless it ran out, a cursor whose
 * getMores read on from it. Owns sp (steals) and `keep` (what sp borrows,
 * freed with keep_free after sp) afterwards. */
void dj_reply_spilled (dj_engine_t *e, bson_t *reply, const char *ns, dj_spill_t *sp, void *keep,
                       void (*keep_free) (void *), int64_t batch_size, bson_error_t *error);
/* dj_reply_results for a find: `streamed` when its plan hands documents out
 * as it finds them (no limit reached, no in-memory sort), whose batches
 * filled exactly to their size leave the cursor open (cursor.c: batch_ends). */
void dj_reply_find_results (dj_engine_t *e, bson_t *reply, const char *ns, bson_t **docs, size_t n, int64_t batch_size,
                            bool single_batch, bool streamed);
/* A tailable cursor's way back to its capped collection (owned by the
 * cursor once given): later getMores read the records after last_rid that
 * match filter, shaped by projection; with await_data a getMore with none
 * waits up to its maxTimeMS (1 s by default) for some.
 * https://www.mongodb.com/docs/manual/core/tailable-cursors/ */
typedef struct {
   char *db, *coll;     /* owned */
   bson_t *filter;      /* owned */
   bson_t *projection;  /* owned, NULL: whole documents */
   uint64_t last_rid;
   bool await_data;
} dj_tail_t;
void dj_tail_free (dj_tail_t *t);
/* dj_reply_results for a tailable find: the cursor stays open after its
 * documents are handed out (it takes over tail). */
void dj_reply_tailable (dj_engine_t *e, bson_t *reply, const char *ns, bson_t **docs, size_t n, int64_t batch_size,
                        dj_tail_t *tail);

/* ---- changestream.c: $changeStream ------------------------------------------ */
/* aggregate with a leading {$changeStream: spec} on db.coll (coll NULL:
 * the database, or with allChangesForCluster the cluster), `rest` the
 * stages after it (an array): the first batch, and a cursor holding the
 * stream. */
/* false (InvalidOptions) when cmd's readConcern level is not majority. */
bool dj_change_stream_read_concern (const bson_t *cmd, bson_error_t *error);
bool dj_cmd_change_stream (dj_engine_t *e, const char *db, const char *coll, const bson_value_t *spec, const bson_t *rest,
                           int64_t batch, bson_t *reply, bson_error_t *error);
/* A getMore on a stream's cursor (id): the next batch (at most batch
 * events, 0: as many as fit), waiting up to wait_ms for one; *done: the
 * stream ended (an invalidate was handed out), the cursor is to go. */
bool dj_stream_get_more (dj_engine_t *e, dj_stream_t *s, const char *ns, int64_t batch, int64_t wait_ms, int64_t id,
                         bson_t *reply, bool *done, bson_error_t *error);
void dj_stream_free (dj_stream_t *s);
/* Gives cursor id the stream (owned by the cursor from then on). */
void dj_cursor_attach_stream (dj_engine_t *e, int64_t id, dj_stream_t *s);

bool dj_cmd_aggregate (dj_engine_t *, const char *, const bson_t *, bson_t *, bson_error_t *);
/* explain's executionStats of aggregate command `inner` on db.coll: runs
 * its pipeline in ctx (not one that writes: *spills stays NULL) and gives
 * the sorted runs each stage spilled to files (*spills: the caller's, *n
 * entries, one per stage). */
bool dj_cmd_aggregate_spills (dj_engine_t *e, const char *db, const char *coll, dj_ctx_t *ctx, const bson_t *inner,
                              int64_t **spills, int *n, bson_error_t *error);
bool dj_cmd_insert (dj_engine_t *, const char *, const bson_t *, bson_t *, bson_error_t *);
bool dj_cmd_update (dj_engine_t *, const char *, const bson_t *, bson_t *, bson_error_t *);
bool dj_cmd_delete (dj_engine_t *, const char *, const bson_t *, bson_t *, bson_error_t *);
/* cmd_bulk_write.c: MongoDB 8.0's bulkWrite (admin database) */
bool dj_cmd_bulk_write (dj_engine_t *, const char *, const bson_t *, bson_t *, bson_error_t *);
/* engine.c: a command run from inside another (bulkWrite's ops), as
 * dj_engine_run_command runs it -- views, default collations, the error
 * reply -- in the caller's transaction if any, without a profiler entry of
 * its own. reply: initialised here, the caller's. */
bool dj_cmd_run_nested (dj_engine_t *e, const char *db, const bson_t *cmd, bson_t *reply);
bool dj_cmd_find_and_modify (dj_engine_t *, const char *, const bson_t *, bson_t *, bson_error_t *);
bool dj_cmd_find (dj_engine_t *, const char *, const bson_t *, bson_t *, bson_error_t *);
bool dj_cmd_get_more (dj_engine_t *, const char *, const bson_t *, bson_t *, bson_error_t *);
bool dj_cmd_kill_cursors (dj_engine_t *, const char *, const bson_t *, bson_t *, bson_error_t *);
bool dj_cmd_count (dj_engine_t *, const char *, const bson_t *, bson_t *, bson_error_t *);
bool dj_cmd_distinct (dj_engine_t *, const char *, const bson_t *, bson_t *, bson_error_t *);
bool dj_cmd_create (dj_engine_t *, const char *, const bson_t *, bson_t *, bson_error_t *);
bool dj_cmd_coll_mod (dj_engine_t *, const char *, const bson_t *, bson_t *, bson_error_t *);
bool dj_cmd_drop (dj_engine_t *, const char *, const bson_t *, bson_t *, bson_error_t *);
bool dj_cmd_drop_database (dj_engine_t *, const char *, const bson_t *, bson_t *, bson_error_t *);
bool dj_cmd_rename_collection (dj_engine_t *, const char *, const bson_t *, bson_t *, bson_error_t *);
bool dj_cmd_list_collections (dj_engine_t *, const char *, const bson_t *, bson_t *, bson_error_t *);
bool dj_cmd_list_databases (dj_engine_t *, const char *, const bson_t *, bson_t *, bson_error_t *);
bool dj_cmd_coll_stats (dj_engine_t *, const char *, const bson_t *, bson_t *, bson_error_t *);
bool dj_cmd_validate (dj_engine_t *, const char *, const bson_t *, bson_t *, bson_error_t *);
bool dj_cmd_fsync (dj_engine_t *, const char *, const bson_t *, bson_t *, bson_error_t *);
/* cmd_param.c */
bool dj_cmd_set_parameter (dj_engine_t *, const char *, const bson_t *, bson_t *, bson_error_t *);
/* profile.c: the profile command, and a command's entry in system.profile
 * when its database profiles it (start_ms: when it began; millis: how long) */
bool dj_cmd_profile (dj_engine_t *, const char *, const bson_t *, bson_t *, bson_error_t *);
void dj_profile_record (dj_engine_t *e, const char *db, const char *name, const bson_t *cmd, const bson_t *reply,
                        int64_t start_ms, int64_t millis);
bool dj_cmd_db_stats (dj_engine_t *, const char *, const bson_t *, bson_t *, bson_error_t *);
bool dj_cmd_create_indexes (dj_engine_t *, const char *, const bson_t *, bson_t *, bson_error_t *);
bool dj_cmd_drop_indexes (dj_engine_t *, const char *, const bson_t *, bson_t *, bson_error_t *);
bool dj_cmd_explain (dj_engine_t *, const char *, const bson_t *, bson_t *, bson_error_t *);
bool dj_cmd_list_indexes (dj_engine_t *, const char *, const bson_t *, bson_t *, bson_error_t *);

#endif
