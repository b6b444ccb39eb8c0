/*
 * agg-private.h -- what the aggregation layer's files share. Not installed.
 *
 * A parsed pipeline is an array of stage_t; running it hands a list of
 * documents (dj_docs_t) from stage to stage. Each stage family that needs
 * more than a few lines has its own file and its dj_agg_run_* entry point,
 * called from the stage loop in pipeline.c.
 */
#ifndef DJ_AGG_PRIVATE_H
#define DJ_AGG_PRIVATE_H

#include "dj_agg.h"

/* $group, $sort and $bucket count the bytes they hold; past this, without
 * allowDiskUse, they fail with MongoDB's error 292. */
#define DJ_STAGE_MEMORY_LIMIT ((size_t) 100 * 1024 * 1024)

typedef enum {
   S_MATCH, S_RESHAPE, S_GROUP, S_SORT, S_SKIP, S_LIMIT, S_UNWIND, S_LOOKUP, S_COUNT,
   S_FACET, S_UNIONWITH, S_DOCUMENTS, S_SORTBYCOUNT, S_BUCKET, S_SAMPLE, S_SETWINDOWFIELDS, S_OUT, S_MERGE,
   S_LISTSESSIONS, S_COLLSTATS
} skind_t;

typedef struct {
   char *name;          /* owned: output field */
   const dj_accop_t *op; /* for window accumulators */
   int rank;            /* 1 $rank, 2 $denseRank, 3 $documentNumber, 4 $shift, 0 accumulator */
   dj_expr_t *expr;     /* owned */
   int64_t shift_by;
   bson_value_t shift_default; /* owned */
   bool has_window, range;
   bool lo_unbounded, hi_unbounded, lo_current, hi_current;
   double lo, hi;
} wfield_t;

typedef struct stage {
   skind_t kind;
   dj_matcher_t *match;
   dj_reshape_t *reshape; /* $project, $addFields/$set, $unset, $replaceRoot/$replaceWith */
   dj_expr_t *expr;
   dj_acc_t *accs;
   int naccs;
   dj_sort_t *sort;
   int64_t n;
   char *str, *str2;
   bool flag;
   dj_path_t path;
   /* $lookup */
   char *local, *foreign;
   dj_expr_t **let_exprs;
   char **let_names;
   int nlet;
   dj_vscope_t *let_scope; /* owned array, nlet entries */
   dj_pipeline_t *sub;
   struct dj_jcache *jcache; /* owned: the hash join's foreign side, kept across chunks (lookup.c) */
   /* $facet */
   char **fnames;
   dj_pipeline_t **facets;
   int nfacets;
   /* $bucket */
   bson_t *boundaries;
   bson_value_t dflt;
   bool has_default;
   /* $setWindowFields */
   dj_expr_t *partition;
   wfield_t *wf;
   int nwf;
   /* $merge */
   char **on;
   int non;
   int when_matched;     /* 0 merge, 1 replace, 2 keepExisting, 3 fail, 4 pipeline */
   int when_not_matched; /* 0 insert, 1 discard, 2 fail */
   dj_pipeline_t *merge_pipeline;
} stage_t;

struct dj_pipeline {
   stage_t *stages;
   int n;
};

/* The state of one run: the run's settings, the arena evaluation
 * temporaries live in (reset per document), where errors go. */
typedef struct {
   const dj_prun_t *run;
   dj_arena_t *arena;
   bson_error_t *error;
} rctx_t;

/* An evaluation context on doc with the run's variables. */
void dj_agg_eval_setup (rctx_t *r, dj_eval_t *ev, const bson_t *doc);
/* Error 292 when a stage holds more than DJ_STAGE_MEMORY_LIMIT bytes without allowDiskUse. */
bool dj_agg_check_memory (rctx_t *r, size_t bytes, const char *stage);
/* Whether stage s's output depends only on how many documents reach it
 * ($count, a $group on a constant _id that only counts, a $facet of those). */
bool dj_agg_counts_only (const stage_t *s);
/* Runs stages [from, n) of p over docs (replaced by the result). */
bool dj_agg_run_stages (const dj_pipeline_t *p, int from, const dj_prun_t *run, dj_docs_t *docs, bson_error_t *error);

/* ---- group.c: $group, $bucket, hash tables of keys ----------------------- */

typedef struct {
   bson_value_t id; /* owned */
   dj_accst_t *st;     /* owned, naccs */
} group_t;

typedef struct {
   dj_buf_t *keys; /* owned */
   size_t n, cap;
   size_t *slots; /* hash -> index + 1 */
   size_t nslots;
} ktable_t;

typedef struct {
   ktable_t kt;
   group_t *g; /* owned, kt.n entries */
   size_t cap;
   size_t bytes;
} gtable_t;

/* The index of k; SIZE_MAX when absent and !create. *added: k is new. */
size_t dj_ktable_index (ktable_t *t, const dj_buf_t *k, bool create, bool *added);
void dj_ktable_free (ktable_t *t);
/* The group of key id, created (with naccs fresh accumulator states) when new. */
group_t *dj_gtable_get (gtable_t *t, const bson_value_t *id, int naccs, const dj_acc_t *accs);
void dj_gtable_free (gtable_t *t, int naccs);
/* One document (ev) into the accumulator states st (one per s->accs);
 * *bytes (NULL: not counted) grows by what collecting accumulators keep. */
bool dj_agg_accumulate (rctx_t *r, const stage_t *s, dj_accst_t *st, dj_eval_t *ev, size_t *bytes);
/* Appends {_id: id, each accumulator's field: its result} to docs. */
void dj_agg_group_output (dj_docs_t *docs, const bson_value_t *id, const stage_t *s, const dj_accst_t *st);
bool dj_agg_run_group (rctx_t *r, const stage_t *s, dj_docs_t *docs);
bool dj_agg_run_bucket (rctx_t *r, const stage_t *s, dj_docs_t *docs);

/* ---- lookup.c, lookup_group.c: $lookup ------------------------------------ */

/* The values at localField in doc (arrays by element) into vals, emptied
 * first: what $lookup's equality match compares with foreignField. A regex
 * is left out (in the $in query it would turn into a pattern) but counted
 * in the return value, which is 0 only when nothing is there -- and
 * nothing matches as null. The values borrow doc's bytes. */
size_t dj_agg_local_values (const bson_t *doc, const dj_path_t *lp, dj_vlist_t *vals);
/* q = {foreign: {$in: vals}}, with null added to the list when with_null */
void dj_agg_in_query (bson_t *q, const char *foreign, const dj_vlist_t *vals, bool with_null);
/* The values a foreign document is found by in an equality $lookup, each
 * given to fn: those at foreignField, an array as a whole and by its
 * elements, null when there is none. vals: scratch (emptied first; the
 * values borrow doc's bytes). */
typedef void (*dj_join_key_fn) (const bson_value_t *v, void *ctx);
void dj_agg_join_keys (const bson_t *doc, const dj_path_t *fp, dj_vlist_t *vals, dj_join_key_fn fn, void *ctx);

/* The hash join's foreign side, kept in a $lookup stage for its run. */
typedef struct dj_jcache dj_jcache_t;
dj_jcache_t *dj_agg_jcache_new (void);
void dj_agg_jcache_free (dj_jcache_t *c);

/* A $lookup whose pipeline starts with a $group on a constant _id (SQL's
 * aggregate over a LEFT JOIN) grouped on the foreign side first: one read
 * of the foreign collection accumulates each foreignField value's group,
 * and each local document takes its value's group (lookup_group.c). */
typedef struct {
   gtable_t t;       /* groups by foreignField value (their id: that value) */
   bson_value_t id;  /* the $group's constant _id (borrowed from the stage) */
   bool on;          /* built: the $lookup uses it */
   /* a $group that only counts, answered from an index on foreignField
    * (storage's keycount.c): how many foreign documents hold each key */
   bool covered;
   dj_coll_t *fc;    /* owned: the foreign collection */
   int ix;           /* its index */
   ktable_t kk;      /* the index's keys */
   int64_t *counts;  /* owned: kk.n counts */
   size_t ccap;
} dj_pregroup_t;
/* Builds pg when the stage has that shape, every local document has at
 * most one scalar at localField and, when the index nested-loop join
 * (probe, may be NULL) would serve it, the local values match at least a
 * quarter of the foreign collection (counted from index keys); else leaves
 * pg->on false. False only on an error. */
bool dj_agg_pregroup_build (rctx_t *r, const stage_t *s, const dj_docs_t *docs, const dj_path_t *lp, const dj_path_t *fp,
                            dj_coll_t *probe, dj_pregroup_t *pg);
/* doc's $group output (none when nothing matched) into matches: what the
 * $lookup's first stage would output on doc's matches. */
void dj_agg_pregroup_matches (dj_pregroup_t *pg, const stage_t *s, const bson_t *doc, const dj_path_t *lp,
                              dj_vlist_t *vals, dj_docs_t *matches);
void dj_agg_pregroup_free (dj_pregroup_t *pg, const stage_t *s);

/* ---- unwind.c ------------------------------------------------------------- */
/* Copies doc with `path` set to v (v NULL: removed) and, if idx_field, that
 * field set to idx (-1: null). */
bson_t *dj_agg_with_path (const bson_t *doc, const dj_path_t *path, const bson_value_t *v, const char *idx_field, int64_t idx);
bool dj_agg_run_unwind (rctx_t *r, const stage_t *s, dj_docs_t *docs);

/* ---- lookup.c: reading other collections, views, $lookup ------------------ */
/* Calls fn(0 or rid, doc, pos, fnctx) for each document of db.coll matching m
 * (NULL: all), in the planner's order (a view: its pipeline's); doc is valid
 * during the call only; fn returns false to stop (the scan then returns true
 * unless an error stopped it). A missing collection is empty. */
bool dj_agg_scan_collection (const dj_prun_t *run, const char *db, const char *coll, const dj_matcher_t *m,
                             const dj_eval_t *vars, dj_scan_fn fn, void *fnctx, bson_error_t *error);
/* All documents of db.coll matching m (NULL: all), copied into out. */
bool dj_agg_read_collection (const dj_prun_t *run, const char *db, const char *coll, const dj_matcher_t *m, const dj_eval_t *vars,
                             dj_docs_t *out, bson_error_t *error);
/* How many documents of coll m matches (NULL: all), without materialising
 * them (dj_plan_count: from index keys when an index answers m exactly). */
bool dj_agg_count_collection (const dj_prun_t *run, const char *db, const char *coll, const dj_matcher_t *m,
                              const dj_eval_t *vars, int64_t *n, bson_error_t *error);
/* $collStats's one document for db.coll (run->db): ns, host, localTime,
 * storageStats (sizes divided by scale; scale 0: not asked) and count as
 * asked. NamespaceNotFound for a missing collection or a view. */
bool dj_agg_coll_stats (const dj_prun_t *run, const char *coll, int64_t scale, bool count, bson_t *out,
                        bson_error_t *error);
bool dj_agg_run_lookup (rctx_t *r, const stage_t *s, dj_docs_t *docs);

/* ---- window.c ------------------------------------------------------------- */
bool dj_agg_run_window (rctx_t *r, const stage_t *s, dj_docs_t *docs);

/* ---- out.c ---------------------------------------------------------------- */
bool dj_agg_run_out (rctx_t *r, const stage_t *s, dj_docs_t *docs);
bool dj_agg_run_merge (rctx_t *r, const stage_t *s, dj_docs_t *docs);

#endif
