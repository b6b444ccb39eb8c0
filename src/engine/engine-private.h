/*
 * engine-private.h -- what the engine's files share. Not installed.
 *
 * Files, one job each:
 *   value.c     MongoDB's order over BSON values
 *   keyenc.c    order-preserving byte encoding of BSON values (index keys)
 *   tree.c      mutable documents (for updates and projections)
 *   path.c      dotted paths
 *   match.c     the query language (filters)
 *   update.c    update operators and replacement documents
 *   project.c   find projections
 *   sort.c      sort specifications
 *   store.c     LMDB layout: catalog, records, indexes
 *   plan.c      choosing an index and scanning
 *   cursor.c    open cursors between find and getMore
 *   cmd_*.c     one file per command family
 *   engine.c    open/close and command dispatch
 */
#ifndef DJ_ENGINE_PRIVATE_H
#define DJ_ENGINE_PRIVATE_H

#include <lmdb.h>
#include <pthread.h>

#include "dj_buf.h"
#include "dj_engine.h"
#include "dj_error.h"

typedef struct dj_node dj_node_t;
typedef struct dj_path dj_path_t;
typedef struct dj_matcher dj_matcher_t;
typedef struct dj_update dj_update_t;
typedef struct dj_projection dj_projection_t;
typedef struct dj_sort dj_sort_t;
typedef struct dj_index dj_index_t;
typedef struct dj_coll dj_coll_t;
typedef struct dj_cursor dj_cursor_t;
typedef struct dj_ctx dj_ctx_t;
typedef struct dj_tz dj_tz_t;
typedef struct dj_collation dj_collation_t;

#define DJ_MAX_BSON_SIZE (16 * 1024 * 1024)
#define DJ_TYPE_NUMBER (-2) /* $type: "number" */

/* ---- value.c ------------------------------------------------------------ */
int dj_type_rank (bson_type_t t);
const char *dj_type_name (bson_type_t t);
bool dj_type_from_name (const char *name, int *out);
bool dj_value_is_number (const bson_value_t *v);
double dj_value_as_double (const bson_value_t *v);
bool dj_value_as_int64_exact (const bson_value_t *v, int64_t *out);
int dj_number_cmp (const bson_value_t *a, const bson_value_t *b);
int dj_value_cmp (const bson_value_t *a, const bson_value_t *b);
int dj_doc_cmp (const uint8_t *a, uint32_t la, const uint8_t *b, uint32_t lb);
bool dj_value_equal (const bson_value_t *a, const bson_value_t *b);
bool dj_value_identical (const bson_value_t *a, const bson_value_t *b);
/* Borrows doc's bytes: valid while doc is. */
void dj_value_from_doc (const bson_t *doc, bool is_array, bson_value_t *out);
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
/* Reads `collation` from cmd (or a statement) and makes it current. */
bool dj_cmd_collation (const bson_t *cmd, bson_error_t *error);

/* ---- tz.c: time zones ---------------------------------------------------- */
/* "UTC", "+hh[:mm]" or an Olson name; cached for the process (never freed).
 * NULL with error 40485 for unknown names. */
const dj_tz_t *dj_tz_get (const char *name, bson_error_t *error);
int32_t dj_tz_offset (const dj_tz_t *z, int64_t utc_seconds);
int64_t dj_tz_local_to_utc (const dj_tz_t *z, int64_t local_seconds);

/* ---- keyenc.c ----------------------------------------------------------- */
/* Appends the order-preserving encoding of v; memcmp order of two encodings
 * is dj_value_cmp order (descending inverts every byte). Missing encodes as
 * null, as MongoDB indexes it. */
void dj_key_append (dj_buf_t *b, const bson_value_t *v, bool descending);
/* The same, with strings under the current collation (for grouping and
 * joins; never for index keys, which are binary). */
void dj_key_append_collated (dj_buf_t *b, const bson_value_t *v);
/* Longest key we hand LMDB (its limit is 511 bytes with the 8-byte prefix
 * and record id); longer keys are cut and given a hash (see dj_engine.h). */
#define DJ_KEY_MAX 470
void dj_key_finish (dj_buf_t *b, size_t start);

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
/* Finds a field (or, in an array, a numeric index) in a document value.
 * Returns false if absent. */
bool dj_value_get_field (const bson_value_t *container, const char *key, bson_value_t *out);
/* All values at a path, arrays expanded at every level (leaf arrays are both
 * reported whole, if want_whole, and element by element). Missing reports
 * nothing; `found` counts reports. Used for sort keys and index keys. */
typedef void (*dj_path_visit_fn) (const bson_value_t *v, void *ctx);
void dj_path_visit (const bson_value_t *doc, const dj_path_t *path, int from, bool expand_leaf, dj_path_visit_fn fn,
                    void *ctx);

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

/* ---- expr.c: the aggregation expression language ---------------------------- */
/* Evaluation temporaries live in an arena, freed all at once per document. */
typedef struct dj_arena dj_arena_t;
dj_arena_t *dj_arena_new (void);
void *dj_arena_alloc (dj_arena_t *a, size_t n);
void dj_arena_reset (dj_arena_t *a);
void dj_arena_destroy (dj_arena_t *a);
/* Copies b's bytes into the arena; out views them (is_array picks the type). */
void dj_arena_value (dj_arena_t *a, const bson_t *b, bool is_array, bson_value_t *out);

typedef struct dj_expr dj_expr_t;
/* Names visible while parsing (for "Use of undefined variable" errors). */
typedef struct dj_vscope {
   const char *name;
   const struct dj_vscope *up;
} dj_vscope_t;
#define DJ_MAX_VARS 64
typedef struct {
   dj_arena_t *arena;   /* borrowed */
   bson_value_t root;   /* $$ROOT */
   bson_value_t current; /* $$CURRENT */
   struct {
      const char *name;
      bson_value_t value;
   } vars[DJ_MAX_VARS];
   int nvars;
   int64_t now_ms; /* $$NOW */
   bson_error_t *error;
} dj_eval_t;

/* Parses an expression (any BSON value: literal, "$path", "$$var", {$op: ...},
 * object or array of expressions). Every parse-time error is raised here. */
dj_expr_t *dj_expr_parse (const bson_value_t *spec, const dj_vscope_t *scope, bson_error_t *error);
/* Object literal {a: expr, ...} parsed as one expression. */
dj_expr_t *dj_expr_parse_object (const bson_t *spec, const dj_vscope_t *scope, bson_error_t *error);
void dj_expr_destroy (dj_expr_t *e);
bool dj_expr_is_const (const dj_expr_t *e, bson_value_t *out);
/* Evaluates e. out: EOD for "missing"; memory borrowed from the documents
 * or the arena (valid until dj_arena_reset). false with ev->error set. */
bool dj_expr_eval (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *out);
void dj_eval_init (dj_eval_t *ev, dj_arena_t *arena, const bson_t *doc, int64_t now_ms, bson_error_t *error);
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
/* $cond/$filter truthiness: false, null, missing, undefined and 0 are false. */
bool dj_value_truthy (const bson_value_t *v);
/* Expression comparison: like dj_value_cmp, but missing sorts below null. */
int dj_expr_cmp (const bson_value_t *a, const bson_value_t *b);
int64_t dj_now_ms (void);

/* ---- match.c ------------------------------------------------------------ */
/* Compiles a filter; every error MongoDB raises at parse time is raised here,
 * before any document is read. */
dj_matcher_t *dj_matcher_new (const bson_t *filter, bson_error_t *error);
/* Like dj_matcher_new for a value-level predicate ($elemMatch on scalars,
 * $pull conditions): {$gt: 1} applies to the value itself. */
dj_matcher_t *dj_matcher_new_value (const bson_t *ops, bson_error_t *error);
void dj_matcher_destroy (dj_matcher_t *m);
/* `pos`, if not NULL, receives the array position the positional `$`
 * operator refers to (-1 if none). */
bool dj_matcher_match (const dj_matcher_t *m, const bson_t *doc, int32_t *pos);
/* Parses a filter whose $expr may use the variables in `scope`. */
dj_matcher_t *dj_matcher_new_scoped (const bson_t *filter, const dj_vscope_t *scope, bson_error_t *error);
/* With the variables' values for $expr, and runtime errors: returns false
 * with error->code set when an $expr failed (error may be NULL). */
bool dj_matcher_match_ex (const dj_matcher_t *m, const bson_t *doc, int32_t *pos, const dj_eval_t *vars,
                          bson_error_t *error);
bool dj_matcher_match_value (const dj_matcher_t *m, const bson_value_t *v);
bool dj_matcher_is_empty (const dj_matcher_t *m);

/* For the planner: the top-level conjuncts on one path. */
typedef enum {
   DJ_BOUND_NONE = 0,
   DJ_BOUND_EQ,    /* value == v (also $in: one per value) */
   DJ_BOUND_RANGE, /* lo/hi with inclusive flags, within one type bracket */
} dj_bound_kind_t;
typedef struct {
   dj_bound_kind_t kind;
   bson_value_t *points; /* EQ: borrowed from the matcher */
   int npoints;
   const bson_value_t *lo, *hi;
   bool lo_incl, hi_incl;
} dj_bounds_t;
bool dj_matcher_bounds (const dj_matcher_t *m, const char *path, dj_bounds_t *out);
/* Equality fields of a filter, for building an upserted document. */
bool dj_matcher_upsert_seed (const bson_t *filter, dj_node_t *doc, bson_error_t *error);

/* ---- update.c ----------------------------------------------------------- */
/* `scope`: the command's let variables a pipeline-style update may use (NULL: none). */
dj_update_t *dj_update_new (const bson_value_t *spec, const bson_t *array_filters, const dj_vscope_t *scope,
                            bson_error_t *error);
void dj_update_destroy (dj_update_t *u);
bool dj_update_is_replacement (const dj_update_t *u);
/* Applies u to doc. `pos` is the matched array position for `$` (-1: none).
 * `inserting` enables $setOnInsert. `vars`: the let values (NULL: none).
 * out: uninitialised; initialised on success. *changed: whether the
 * document differs from doc. */
bool dj_update_apply (const dj_update_t *u, const bson_t *doc, int32_t pos, bool inserting, const dj_eval_t *vars,
                      bson_t *out, bool *changed, bson_error_t *error);

/* ---- project.c ---------------------------------------------------------- */
dj_projection_t *dj_projection_new (const bson_t *spec, bson_error_t *error);
void dj_projection_destroy (dj_projection_t *p);
/* out: uninitialised; initialised on success. pos: the query's positional match. */
bool dj_projection_apply (const dj_projection_t *p, const bson_t *doc, int32_t pos, bson_t *out, bson_error_t *error);

/* ---- sort.c ------------------------------------------------------------- */
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

/* ---- store.c ------------------------------------------------------------ */
struct dj_index {
   uint64_t id;        /* key prefix in the data DBI */
   char *name;         /* owned */
   bson_t *key;        /* owned: the key pattern {a: 1, b: -1} */
   dj_path_t *paths;   /* owned array of npaths */
   bool *desc;         /* owned array of npaths */
   int npaths;
   bool unique, sparse, multikey, is_id;
   bool lossy; /* some key was cut or holds a Decimal128: index order may differ from sort order */
   dj_matcher_t *partial; /* owned, may be NULL */
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
};
struct dj_ctx {
   dj_engine_t *engine;
   MDB_txn *txn;
   bool write;
   bool borrowed; /* a read inside a caller's transaction: txn is theirs */
   bool top;      /* a top-level write transaction: holds the env's writer mark */
};
struct dj_engine {
   struct dj_env *shared; /* refcounted LMDB env for this path */
   MDB_env *env;
   MDB_dbi dbi_catalog, dbi_data;
   char *path;
   pthread_mutex_t cursors_mu; /* guards everything below */
   dj_cursor_t *cursors;
   int64_t next_cursor_id;
};

/* ---- txn.c: one command's transaction, and callers' transactions ---------- */
/* Begins the transaction one command runs in. Inside a caller's transaction
 * (dj_engine_run_command_in) a write is a nested LMDB transaction of it, so
 * a failing command undoes only itself, and a read uses the caller's
 * transaction as is (it must see the caller's writes). */
bool dj_txn_begin (dj_engine_t *e, bool write, dj_ctx_t *ctx, bson_error_t *error);
bool dj_txn_commit (dj_ctx_t *ctx, bson_error_t *error);
void dj_txn_abort (dj_ctx_t *ctx);
/* The env's writer mark (engine.c): which thread holds LMDB's write lock, so
 * that a thread asking for a second one gets WriteConflict, not a deadlock. */
bool dj_env_writer_check (dj_engine_t *e, bson_error_t *error);
void dj_env_writer_set (dj_engine_t *e, bool held);
/* The one writing snapshot transaction of the env: claim returns false if
 * another holds it (then the caller reports WriteConflict). */
bool dj_env_snapshot_writer_claim (dj_engine_t *e);
void dj_env_snapshot_writer_release (dj_engine_t *e);
bool dj_lmdb_error (int rc, bson_error_t *error, const char *what);

bool dj_ns_valid (const char *db, const char *coll, bson_error_t *error);
/* Loads a collection's catalog entry. Returns NULL with error->code == 0 when
 * the collection does not exist, NULL with an error otherwise. */
dj_coll_t *dj_coll_load (dj_ctx_t *ctx, const char *db, const char *name, bson_error_t *error);
/* Whether db.name is a view (reads only its catalog entry: the check every
 * command on a collection goes through, view.c). */
bool dj_coll_is_view (dj_ctx_t *ctx, const char *db, const char *name);
dj_coll_t *dj_coll_create (dj_ctx_t *ctx, const char *db, const char *name, const bson_t *options, bson_error_t *error);
/* Loads, creating implicitly (as MongoDB's writes do) when absent. */
dj_coll_t *dj_coll_load_or_create (dj_ctx_t *ctx, const char *db, const char *name, bool *created, bson_error_t *error);
void dj_coll_free (dj_coll_t *c);
bool dj_coll_save (dj_ctx_t *ctx, const dj_coll_t *c, bson_error_t *error);
bool dj_coll_drop (dj_ctx_t *ctx, dj_coll_t *c, bson_error_t *error);
bool dj_coll_list (dj_ctx_t *ctx, const char *db, char ***names, int *n, bson_error_t *error);
bool dj_db_list (dj_ctx_t *ctx, char ***names, int *n, bson_error_t *error);
void dj_strv_free (char **v, int n);

bool dj_index_load (dj_index_t *ix, const bson_t *spec, bson_error_t *error);
void dj_index_cleanup (dj_index_t *ix);
/* Adds ix to c (already validated) and fills it from existing documents. */
bool dj_coll_add_index (dj_ctx_t *ctx, dj_coll_t *c, const bson_t *spec, bson_error_t *error);
bool dj_coll_drop_index (dj_ctx_t *ctx, dj_coll_t *c, int i, bson_error_t *error);

/* Record-level writes. All index maintenance and unique checks happen here,
 * inside the caller's write transaction; on error nothing was written. */
bool dj_record_insert (dj_ctx_t *ctx, dj_coll_t *c, const bson_t *doc, uint64_t *rid_out, bson_error_t *error);
bool dj_record_update (dj_ctx_t *ctx, dj_coll_t *c, uint64_t rid, const bson_t *old_doc, const bson_t *new_doc,
                       bson_error_t *error);
bool dj_record_delete (dj_ctx_t *ctx, dj_coll_t *c, uint64_t rid, const bson_t *doc, bson_error_t *error);
bool dj_record_get (dj_ctx_t *ctx, dj_coll_t *c, uint64_t rid, bson_t *doc_static, bson_error_t *error);
/* Checks the collection's validator against doc. */
bool dj_coll_validate (const dj_coll_t *c, const bson_t *doc, const bson_t *old_doc, bson_error_t *error);
/* Statistics for collStats/dbStats. */
void dj_coll_stats (dj_ctx_t *ctx, dj_coll_t *c, int64_t *count, int64_t *size, int64_t *index_sizes /* nindexes */);

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
/* Like dj_plan_scan (reads only), but delivers documents in the order of
 * sort `s` by walking an index, so a limit stops the walk early. Returns
 * false with *used = false (and no error) when no index gives exactly the
 * sort's order; the caller then sorts in memory. */
bool dj_plan_scan_sorted (dj_ctx_t *ctx, dj_coll_t *c, const dj_matcher_t *m, const dj_sort_t *s, int64_t max, dj_scan_fn fn,
                          void *fnctx, bool *used, bson_error_t *error);
/* Appends MongoDB's explain shape of the plan find would use to `plan`:
 * {stage: COLLSCAN} or {stage: FETCH, inputStage: {stage: IXSCAN, indexName,
 * keyPattern, direction}}, under {stage: SORT} when sorting in memory. */
void dj_plan_explain (dj_coll_t *c, const dj_matcher_t *m, const dj_sort_t *sort, bson_t *plan);

/* ---- pipeline.c: aggregation pipelines ----------------------------------- */
typedef struct dj_pipeline dj_pipeline_t;
/* A list of heap documents; the list owns them. */
typedef struct {
   bson_t **v;
   size_t n, cap;
} dj_docs_t;
void dj_docs_push (dj_docs_t *d, bson_t *doc); /* steals doc */
void dj_docs_clear (dj_docs_t *d);
/* Parses the stages (an array document). `scope`: variables visible to $expr
 * (a $lookup's let). Every parse error is raised here. */
dj_pipeline_t *dj_pipeline_new (const bson_t *stages, const dj_vscope_t *scope, bson_error_t *error);
void dj_pipeline_destroy (dj_pipeline_t *p);
bool dj_pipeline_writes (const dj_pipeline_t *p); /* ends in $out or $merge */
/* Only the stages an update pipeline may use ($addFields, $set, $project,
 * $unset, $replaceRoot, $replaceWith)? Names the first offender otherwise. */
bool dj_pipeline_check_update (const dj_pipeline_t *p, bson_error_t *error);
bool dj_pipeline_needs_collection (const dj_pipeline_t *p); /* false when it starts with $documents */
/* Runs p over collection db.coll (coll NULL: a collection-less pipeline) in
 * the transaction ctx. vars: let variables (may be NULL). out: the results. */
typedef struct {
   dj_engine_t *engine;
   dj_ctx_t *ctx;
   const char *db;
   const dj_eval_t *vars;
   int64_t now_ms;
   bool allow_disk;
   bool bypass_validation;
} dj_prun_t;
bool dj_pipeline_run (const dj_pipeline_t *p, const dj_prun_t *run, const char *coll, dj_docs_t *out, bson_error_t *error);
/* Runs p over the given input documents (consumed). */
bool dj_pipeline_run_docs (const dj_pipeline_t *p, const dj_prun_t *run, dj_docs_t *docs, bson_error_t *error);
bool dj_cmd_aggregate (dj_engine_t *, const char *, const bson_t *, bson_t *, bson_error_t *);

/* ---- view.c: read-only views (create with viewOn) -------------------------- */
/* A view is a catalog entry whose options hold {viewOn, pipeline}; reading
 * it runs the pipeline over what it is on (read_collection in pipeline.c).
 * Before a command runs: find, count and distinct on a view become an
 * aggregate on it; writes, index commands and the like are refused with
 * CommandNotSupportedOnView (166). Returns true with *handled set when it
 * answered (reply appended), false with error on failure. */
bool dj_view_dispatch (dj_engine_t *e, const char *db, const char *name, const bson_t *cmd, bson_t *reply,
                       bool *handled, bson_error_t *error);
/* create's viewOn: checks the definition; `options` receives {viewOn, pipeline}. */
bool dj_view_options (const bson_t *cmd, bson_t *options, bson_error_t *error);
/* The view's documents (all of them): its pipeline over its source, which may be a view in turn. */
bool dj_view_read (const dj_prun_t *run, const dj_coll_t *view, int depth, dj_docs_t *out, bson_error_t *error);

/* ---- cursor.c ----------------------------------------------------------- */
/* Takes ownership of docs[] (each bson_t* and the array). */
int64_t dj_cursor_open (dj_engine_t *e, const char *ns, bson_t **docs, size_t n, size_t pos);
void dj_cursor_close_all (dj_engine_t *e);

/* ---- commands ----------------------------------------------------------- */
typedef bool (*dj_command_fn) (dj_engine_t *e, const char *db, const bson_t *cmd, bson_t *reply, bson_error_t *error);
/* Checks cmd's fields against `known` (NULL-terminated; the command name
 * itself and generic fields like $db, lsid, comment are always allowed). */
bool dj_cmd_check_fields (const bson_t *cmd, const char *const *known, bson_error_t *error);
/* The collection name from the first field ({find: "c"}); error if not a string. */
bool dj_cmd_collection (const bson_t *cmd, const char **name, bson_error_t *error);
bool dj_cmd_get_doc (const bson_t *cmd, const char *field, bson_t *out, bool *present, bson_error_t *error);
bool dj_cmd_get_int64 (const bson_t *cmd, const char *field, int64_t *out, bool *present, bson_error_t *error);
bool dj_cmd_get_bool (const bson_t *cmd, const char *field, bool *out, bson_error_t *error);
/* Appends a batch cursor reply: {cursor: {firstBatch|nextBatch, id, ns}}. */
void dj_reply_cursor (bson_t *reply, const char *ns, const char *batch_name, bson_t **docs, size_t n, int64_t id);
/* Takes documents from a result list into a first batch and, if more remain,
 * a cursor. Owns docs afterwards. */
void dj_reply_results (dj_engine_t *e, bson_t *reply, const char *ns, bson_t **docs, size_t n, int64_t batch_size,
                       bool single_batch);

bool dj_cmd_insert (dj_engine_t *, const char *, const bson_t *, bson_t *, bson_error_t *);
bool dj_cmd_update (dj_engine_t *, const char *, const bson_t *, bson_t *, bson_error_t *);
bool dj_cmd_delete (dj_engine_t *, const char *, const bson_t *, bson_t *, bson_error_t *);
bool dj_cmd_find_and_modify (dj_engine_t *, const char *, const bson_t *, bson_t *, bson_error_t *);
bool dj_cmd_find (dj_engine_t *, const char *, const bson_t *, bson_t *, bson_error_t *);
bool dj_cmd_get_more (dj_engine_t *, const char *, const bson_t *, bson_t *, bson_error_t *);
bool dj_cmd_kill_cursors (dj_engine_t *, const char *, const bson_t *, bson_t *, bson_error_t *);
bool dj_cmd_count (dj_engine_t *, const char *, const bson_t *, bson_t *, bson_error_t *);
bool dj_cmd_distinct (dj_engine_t *, const char *, const bson_t *, bson_t *, bson_error_t *);
bool dj_cmd_create (dj_engine_t *, const char *, const bson_t *, bson_t *, bson_error_t *);
bool dj_cmd_drop (dj_engine_t *, const char *, const bson_t *, bson_t *, bson_error_t *);
bool dj_cmd_drop_database (dj_engine_t *, const char *, const bson_t *, bson_t *, bson_error_t *);
bool dj_cmd_rename_collection (dj_engine_t *, const char *, const bson_t *, bson_t *, bson_error_t *);
bool dj_cmd_list_collections (dj_engine_t *, const char *, const bson_t *, bson_t *, bson_error_t *);
bool dj_cmd_list_databases (dj_engine_t *, const char *, const bson_t *, bson_t *, bson_error_t *);
bool dj_cmd_coll_stats (dj_engine_t *, const char *, const bson_t *, bson_t *, bson_error_t *);
bool dj_cmd_db_stats (dj_engine_t *, const char *, const bson_t *, bson_t *, bson_error_t *);
bool dj_cmd_create_indexes (dj_engine_t *, const char *, const bson_t *, bson_t *, bson_error_t *);
bool dj_cmd_drop_indexes (dj_engine_t *, const char *, const bson_t *, bson_t *, bson_error_t *);
bool dj_cmd_explain (dj_engine_t *, const char *, const bson_t *, bson_t *, bson_error_t *);
bool dj_cmd_list_indexes (dj_engine_t *, const char *, const bson_t *, bson_t *, bson_error_t *);

#endif
