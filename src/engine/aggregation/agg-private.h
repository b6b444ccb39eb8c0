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

/* A row of the accumulator tables (accumulators.c, acc_n.c). */
typedef bool (*acc_step_t) (dj_accst_t *a, const bson_value_t *v, bson_error_t *error);
typedef void (*acc_result_t) (const dj_accst_t *a, const char *field, bson_t *out);
struct dj_accop {
   const char *name;
   acc_step_t step;     /* one input value (missing: EOD) */
   acc_result_t result; /* appends field: the result to out */
   bool no_args;        /* $count: {} */
   bool collects;       /* keeps every value ($push, $addToSet): counted against the stage's memory */
   /* its own argument parser (acc_n.c): sets a->expr, a->param */
   bool (*parse) (dj_acc_t *a, const char *op, const bson_value_t *arg, const dj_vscope_t *scope, bson_error_t *error);
};
/* acc_n.c's rows: NULL if name is none of them. */
const dj_accop_t *dj_acc_n_op (const char *name);


typedef enum {
   S_MATCH, S_RESHAPE, S_GROUP, S_SORT, S_SKIP, S_LIMIT, S_UNWIND, S_LOOKUP, S_COUNT,
   S_FACET, S_UNIONWITH, S_DOCUMENTS, S_SORTBYCOUNT, S_BUCKET, S_SAMPLE, S_SETWINDOWFIELDS, S_OUT, S_MERGE,
   S_LISTSESSIONS, S_COLLSTATS, S_REDACT, S_BUCKETAUTO, S_GRAPHLOOKUP, S_DENSIFY, S_FILL, S_GEONEAR
} skind_t;

/* A time unit (densify.c parses them). */
typedef struct {
   int64_t ms; /* fixed length: millisecond .. week; 0 for the calendar units */
   int months; /* month 1, quarter 3, year 12 */
} dj_tunit_t;

typedef struct {
   char *name;          /* owned: output field */
   const dj_accop_t *op; /* for window accumulators */
   int rank;            /* 1 $rank, 2 $denseRank, 3 $documentNumber, 4 $shift, 0 accumulator */
   dj_expr_t *expr;     /* owned */
   dj_accparam_t *param; /* owned: the accumulator's (acc_n.c) */
   int64_t shift_by;
   bson_value_t shift_default; /* owned */
   bool has_window, range;
   bool lo_unbounded, hi_unbounded, lo_current, hi_current;
   double lo, hi;
   /* window_fns.c: the window functions that are not accumulators */
   int fn;           /* WF_* (0: an accumulator, or rank above) */
   dj_expr_t *expr2; /* owned: $covariance*'s second input */
   bool has_unit;    /* $derivative/$integral's unit */
   dj_tunit_t unit;
   bool has_range_unit; /* the range window's (window.unit): date bounds */
   dj_tunit_t range_unit;
   double alpha;     /* $expMovingAvg */
} wfield_t;
enum { WF_DERIVATIVE = 1, WF_INTEGRAL, WF_COVPOP, WF_COVSAMP, WF_EMA, WF_LOCF, WF_LINEARFILL };


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
   /* the $unwind of `as` that followed, folded in (dj_agg_coalesce): one
    * output per match, the array never built; unwind_index owned */
   bool unwinding, unwind_preserve;
   char *unwind_index;
   /* the $project of field paths after that, folded in too: each output
    * row built from the local document and the match (owned) */
   dj_reshape_t *project;
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
   /* the specification of a stage with a file of its own (graph.c,
    * densify.c, fill.c): owned, freed by spec_free */
   void *spec;
   void (*spec_free) (void *spec);
   /* $geoNear (geonear.c): str distanceField, str2 includeLocs, match query */
   dj_geo_query_t *geo; /* owned */
   char *geo_key;       /* owned, may be NULL */
   double geo_mult;
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
   int64_t spills; /* the sorted runs spill.c wrote to files (explain's spills) */
   /* how many of the running stage's first outputs the $skip right after
    * it drops: a stage may output them as they come, unshaped (each one
    * still counts), since nothing reads them (lookup.c's folded select list) */
   size_t dropped;
   /* where the running stage may make its outputs: views of rows (the
    * folded select list's rows, lookup.c), alive till the caller of
    * dj_pipeline_run_rows is done with them; NULL: heap documents */
   dj_rows_t *rows;
   /* the input documents that may be views of these rows (the chunk's scan,
    * pipeline.c): not the stage's to reuse; NULL: none */
   const dj_rows_t *views;
} rctx_t;

/* An evaluation context on doc with the run's variables. */
void dj_agg_eval_setup (rctx_t *r, dj_eval_t *ev, const bson_t *doc);
/* Error 292 when a stage holds more bytes than its limit (setParameter's
 * internalQueryMaxBlockingSortMemoryUsageBytes for "$sort", else
 * internalDocumentSourceGroupMaxMemoryBytes) without allowDiskUse. */
bool dj_agg_check_memory (rctx_t *r, size_t bytes, const char *stage);
/* Runs stages [from, to) of p over docs (replaced by the result; emptied on failure). */
bool dj_agg_run_range (const dj_pipeline_t *p, int from, int to, const dj_prun_t *run, dj_docs_t *docs, bson_error_t *error);
/* ---- geonear.c: $geoNear ------------------------------------------------- */
bool dj_agg_geonear_parse (stage_t *s, const bson_value_t *spec, const dj_vscope_t *scope, bson_error_t *error);
void dj_agg_geonear_cleanup (stage_t *s);
/* The stage's output over collection db.coll, nearest first, into out. */
bool dj_agg_geonear_read (const dj_prun_t *run, const char *coll, const stage_t *s, dj_docs_t *out, bson_error_t *error);

/* Whether stage s's output depends only on how many documents reach it
 * ($count, a $group on a constant _id that only counts, a $facet of those). */
bool dj_agg_counts_only (const stage_t *s);
/* Runs stages [from, n) of p over docs (replaced by the result). */
bool dj_agg_run_stages (const dj_pipeline_t *p, int from, const dj_prun_t *run, dj_docs_t *docs, bson_error_t *error);

/* One more accumulator on s: the output field `name` with v, {$op: expression}. */
bool dj_agg_add_acc (stage_t *s, const char *name, const bson_value_t *v, const dj_vscope_t *scope, bson_error_t *error);
/* s's accumulators: {count: {$count: {}}} ($bucket's, $bucketAuto's without output). */
void dj_agg_count_only (stage_t *s);

/* ---- stages with files of their own: parse (every error before a document
 * is read) and run ------------------------------------------------------------ */
bool dj_agg_parse_redact (stage_t *s, const bson_value_t *v, const dj_vscope_t *scope, bson_error_t *error);
bool dj_agg_run_redact (rctx_t *r, const stage_t *s, dj_docs_t *docs);
bool dj_agg_parse_bucket_auto (stage_t *s, const bson_value_t *v, const dj_vscope_t *scope, bson_error_t *error);
bool dj_agg_run_bucket_auto (rctx_t *r, const stage_t *s, dj_docs_t *docs);
bool dj_agg_parse_graph_lookup (stage_t *s, const bson_value_t *v, const dj_vscope_t *scope, bson_error_t *error);
bool dj_agg_run_graph_lookup (rctx_t *r, const stage_t *s, dj_docs_t *docs);
/* densify.c: the time units of $densify, $setWindowFields ranges, $derivative... */
bool dj_agg_time_unit (const char *name, dj_tunit_t *u); /* false: not a unit */
int64_t dj_agg_date_add (int64_t ms, const dj_tunit_t *u, int64_t n); /* n units after ms (UTC) */
bool dj_agg_parse_densify (stage_t *s, const bson_value_t *v, bson_error_t *error);
bool dj_agg_run_densify (rctx_t *r, const stage_t *s, dj_docs_t *docs);
bool dj_agg_parse_fill (stage_t *s, const bson_value_t *v, const dj_vscope_t *scope, bson_error_t *error);
bool dj_agg_run_fill (rctx_t *r, const stage_t *s, dj_docs_t *docs);

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

/* ---- topk.c: [$match] $sort $limit k read as a top k ------------------------ */
/* The first k documents of db.coll matching m (NULL: all) in sort order,
 * into out in read order (the $sort then orders them); *used false (and
 * nothing read) when k is too large for a top k. */
bool dj_agg_read_topk (const dj_prun_t *run, const char *coll, const dj_matcher_t *m, const dj_sort_t *sort, int64_t k,
                       dj_docs_t *out, bool *used, bson_error_t *error);

/* ---- spill.c: past the memory limit with allowDiskUse ---------------------- */
/* docs sorted through temporary files (emptied on failure); when `last`
 * and the run takes a tail (dj_prun_t.tail), the sorted output stays in
 * the sorter, handed to *run->tail, and docs stay empty. */
bool dj_agg_sort_spill (rctx_t *r, const dj_sort_t *sort, dj_docs_t *docs, bool last);
/* A pipeline [$match] $sort over db.coll whose output may stay in a sorter
 * (dj_prun_t.tail, allowDiskUse): the scan feeds the sorter directly, so
 * no more than the limit is ever held; *used false when it does not apply. */
bool dj_agg_scan_sorted_tail (const dj_prun_t *run, const dj_pipeline_t *p, int from, const char *coll,
                              const dj_matcher_t *m, bool *used, bson_error_t *error);
/* $group s over docs by sorting them on the group key through temporary
 * files (docs replaced by the groups; emptied on failure). */
bool dj_agg_group_spill (rctx_t *r, const stage_t *s, dj_docs_t *docs);
bool dj_agg_run_bucket (rctx_t *r, const stage_t *s, dj_docs_t *docs);

/* ---- lookup.c, lookup_group.c: $lookup ------------------------------------ */

/* The values at localField in doc (arrays by element) into vals, emptied
 * first: what $lookup's equality match compares with foreignField. A regex
 * is left out (in the $in query it would turn into a pattern) but counted
 * in the return value, which is 0 only when nothing is there -- and
 * nothing matches as null. The values borrow doc's bytes. */
size_t dj_agg_local_values (const bson_t *doc, const dj_path_t *lp, dj_vlist_t *vals);
/* Whether the leading filter m (run over coll) is left to stage s, the
 * $lookup after it (lookup.c: a {f: {$ne: null}} on its localField). */
bool dj_agg_join_filter (const dj_prun_t *run, const char *coll, const dj_matcher_t *m, const stage_t *s);
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

/* Folds each $lookup's following $unwind of its `as` field into it, as
 * mongod does ("$lookup + $unwind Coalescence"): when `as` is a top-level
 * field and so is includeArrayIndex, if given; and, without
 * includeArrayIndex, a $project of field paths after them (lookup.c). */
void dj_agg_coalesce (dj_pipeline_t *p);

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
/* $sample first in a pipeline over db.coll (run->db): when coll holds more
 * than 100 documents and size is under 5% of them, `size` of them picked
 * by the random cursor (storage/sample.c) into out and *used set; else
 * nothing done (the stage sorts at random what it is given). */
bool dj_agg_sample_collection (const dj_prun_t *run, const char *coll, int64_t size, dj_docs_t *out, bool *used,
                               bson_error_t *error);
bool dj_agg_run_lookup (rctx_t *r, const stage_t *s, dj_docs_t *docs);
/* Documents by the values at a path (each array element and the whole
 * array, missing as null; by collated key, so 1 == 1.0), as an $in on that
 * path matches them: $lookup's hash join, $graphLookup's connectToField. */
typedef struct {
   size_t first; /* indexes into the document list, ascending: the first, */
   size_t *more; /* owned: the others (most keys have one document: no allocation) */
   size_t n, cap; /* n in all; cap: more's room */
} jbucket_t;
/* The h-th document (h < b->n) of bucket b. */
static inline size_t
dj_jbucket_doc (const jbucket_t *b, size_t h)
{
   return h ? b->more[h - 1] : b->first;
}
typedef struct {
   ktable_t kt;
   jbucket_t *b; /* owned, kt.n entries (ints.n while the keys are integers) */
   size_t cap;
   dj_buf_t key; /* owned: the encoded key of the last lookup (reused) */
   /* while every key is an integer (a foreign key: the common join), the
    * keys by value, not encoded: ints.v[i] is bucket i's; the first other
    * key moves them into kt (general set) -- lookup.c */
   struct {
      int64_t *v;     /* owned */
      size_t n, cap;
      size_t *slots;  /* owned: hash -> index + 1 */
      size_t nslots;
   } ints;
   bool general;
} jtable_t;
/* t (zeroed before) indexes the documents of `docs` by their values at fp. */
void dj_jtable_build (jtable_t *t, const dj_docs_t *docs, const dj_path_t *fp);
/* The bucket of the value v; NULL when there is none and !create. */
jbucket_t *dj_jtable_find (jtable_t *t, const bson_value_t *v, bool create);
void dj_jtable_free (jtable_t *t);

/* ---- window.c ------------------------------------------------------------- */
bool dj_agg_run_window (rctx_t *r, const stage_t *s, dj_docs_t *docs);
/* Partitions ($setWindowFields, $fill, $densify): doc's key -- partition's
 * value, collated-encoded -- appended to key; and the order of two keys
 * (the empty key of no partitionBy is equal to itself). */
bool dj_agg_partition_key (rctx_t *r, const dj_expr_t *partition, const bson_t *doc, dj_buf_t *key);
int dj_agg_key_cmp (const dj_buf_t *a, const dj_buf_t *b);

/* ---- window_fns.c ------------------------------------------------------------ */
/* Parses `fk: fv` when fk is one of window_fns.c's functions into w (w->fn
 * set); *handled false (nothing done) for any other name. */
bool dj_agg_window_fn_parse (wfield_t *w, const char *fk, const bson_value_t *fv, const dj_vscope_t *scope,
                             bool *handled, bson_error_t *error);
/* What a window function needs of its stage (a sortBy of one field...);
 * range windows' single sortBy field too. */
bool dj_agg_window_check (const stage_t *s, const wfield_t *wf, bson_error_t *error);
/* The functions over the window's documents pd[idx[0..n)] of row i
 * ($derivative, $integral, $covariance*): *out (a scalar). */
bool dj_agg_window_over (rctx_t *r, const dj_sort_t *sort, const wfield_t *wf, bson_t **pd, const size_t *idx, size_t n,
                         bson_value_t *out);
/* The functions of the partition in order ($expMovingAvg, $locf,
 * $linearFill): vals[0..pn) (owned copies) for the rows pd[0..pn). */
bool dj_agg_window_column (rctx_t *r, const dj_sort_t *sort, const wfield_t *wf, bson_t **pd, size_t pn, bson_value_t *vals);


/* ---- out.c ---------------------------------------------------------------- */
bool dj_agg_run_out (rctx_t *r, const stage_t *s, dj_docs_t *docs);
bool dj_agg_run_merge (rctx_t *r, const stage_t *s, dj_docs_t *docs);

#endif
