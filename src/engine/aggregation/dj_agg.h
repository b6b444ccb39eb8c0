/*
 * dj_agg.h -- aggregation pipelines.
 *
 * What it owns: parsing a pipeline's stages (every parse error raised before
 * a document is read) and running them over a collection, a view or given
 * documents: $match, $group and the accumulators, $sort, $lookup, $unwind,
 * $facet, $unionWith, $setWindowFields, $out/$merge and the rest.
 * Who calls it: commands (aggregate, views, find on a view).
 * It calls storage (reading and writing collections), query ($match, the
 * shaping stages), expr and values.
 * Memory: a dj_pipeline_t is its creator's; a dj_docs_t owns its documents.
 *
 * Files:
 *   agg-private.h   what the files below share: stage_t, the run state, entry points
 *   pipeline.c      parsing stages, the stage loop, the small stages ($match, $sort, $facet...)
 *   accumulators.c  the accumulators ($sum, $push...) of $group, $bucket, $setWindowFields
 *   acc_n.c         the accumulators of n values ($firstN, $maxN, $topN...) and $median/$percentile
 *   group.c         $group, $bucket, hash tables of group keys
 *   unwind.c        $unwind
 *   lookup.c        reading other collections: $lookup, views, $unionWith's input
 *   lookup_group.c  a $lookup whose pipeline starts with $group: grouped on the foreign side first
 *   window.c        $setWindowFields
 *   window_fns.c    its functions that are not accumulators ($derivative, $integral,
 *                   $covariance*, $expMovingAvg, $locf, $linearFill)
 *   redact.c        $redact
 *   bucket_auto.c   $bucketAuto and its granularity series
 *   graph.c         $graphLookup
 *   densify.c       $densify; the time units of stages
 *   fill.c          $fill
 *   out.c           $out, $merge
 *   geonear.c       $geoNear (through storage's geo_index.c)
 *   spill.c         $sort and $group past their memory limit: through storage's external sort
 *   topk.c          [$match] $sort $limit over a collection: a heap of the first k while reading
 */
#ifndef DJ_AGG_H
#define DJ_AGG_H

#include "dj_storage.h"

/* ---- pipeline.c: aggregation pipelines ----------------------------------- */
typedef struct dj_pipeline dj_pipeline_t;
/* A list of heap documents; the list owns them. */
typedef struct {
   bson_t **v;
   size_t n, cap;
} dj_docs_t;
/* Appends doc to d (steals it); inline: a push per document and stage. */
static inline void
dj_docs_push (dj_docs_t *d, bson_t *doc)
{
   DJ_GROW (d->v, d->n, d->cap, 16);
   d->v[d->n++] = doc;
}
void dj_docs_clear (dj_docs_t *d);
/* Room for n documents in all (at most a few thousand: a hint, not a
 * limit), so that as many pushes grow d once rather than by doubling. */
void dj_docs_reserve (dj_docs_t *d, size_t n);
/* Documents written back to back into a few large blocks, each one viewed
 * by a static bson_t (bson_init_static) from blocks of views: a handful of
 * allocations for a few hundred documents, where a heap bson_t per
 * document is an aligned allocation (glibc's slow memalign path) and a
 * free. A view's bson_destroy frees nothing; the views and their bytes
 * live until dj_rows_free, so whatever holds views (a dj_docs_t: its
 * dj_docs_clear is then harmless) must be done with them by then, or own
 * copies of them (dj_docs_own). */
typedef struct dj_rows dj_rows_t;
dj_rows_t *dj_rows_new (void);
/* dj_rows_new for about n documents (a hint). */
dj_rows_t *dj_rows_new_for (size_t n);
void dj_rows_free (dj_rows_t *rows);
/* Room for a document of len bytes, to be written there and then viewed
 * by dj_rows_commit (the next dj_rows_reserve or dj_rows_add may give the
 * same room again until then). */
uint8_t *dj_rows_reserve (dj_rows_t *rows, size_t len);
/* The view of the len bytes written at the last dj_rows_reserve's room
 * (len no more than that one's; a malformed document views as {}). */
bson_t *dj_rows_commit (dj_rows_t *rows, size_t len);
/* The view of a copy of doc. */
bson_t *dj_rows_add (dj_rows_t *rows, const bson_t *doc);
/* Whether doc is one of rows' views. */
bool dj_rows_has (const dj_rows_t *rows, const bson_t *doc);
/* Each of d's documents that is a view of rows (NULL: none) replaced by a
 * heap copy of it: d then holds no view of rows. */
void dj_docs_own (dj_docs_t *d, const dj_rows_t *rows);
/* Drops the text score (DJ_META_TEXT_SCORE) from each document: what a
 * reply or a write ($out, $merge) sees. */
void dj_docs_strip_meta (dj_docs_t *d);
/* Parses the stages (an array document). `scope`: variables visible to $expr
 * (a $lookup's let). Every parse error is raised here. */
dj_pipeline_t *dj_pipeline_new (const bson_t *stages, const dj_vscope_t *scope, bson_error_t *error);
void dj_pipeline_destroy (dj_pipeline_t *p);
/* Whether a run of p changes nothing in it but what dj_pipeline_reset
 * renews, so that it may be kept (cmd_agg.c: e->pipe_cache) and run again
 * by the next command of the very same stages. */
bool dj_pipeline_keepable (const dj_pipeline_t *p);
/* p as dj_pipeline_new made it, after a run: each $lookup's hash join
 * cache ends as at dj_pipeline_destroy (handed to the join keep) and a
 * new, empty one takes its place. */
void dj_pipeline_reset (dj_pipeline_t *p);
bool dj_pipeline_writes (const dj_pipeline_t *p); /* ends in $out or $merge */
bool dj_pipeline_has_text (const dj_pipeline_t *p); /* starts with a $match holding $text */
/* A collection's storage statistics, as collStats and $collStats's
 * storageStats give them (sizes divided by scale, 1 for bytes): size, count,
 * avgObjSize, storageSize, nindexes, indexSizes, totalIndexSize, capped;
 * *count: the documents. */
void dj_agg_storage_stats (dj_ctx_t *ctx, dj_coll_t *c, int64_t scale, bson_t *out, int64_t *count);
bool dj_pipeline_needs_collection (const dj_pipeline_t *p); /* false when it starts with $documents */
/* Runs p over collection db.coll (coll NULL: a collection-less pipeline) in
 * the transaction ctx. vars: let variables (may be NULL). out: the results. */
/* explain's executionStats: what the stages of one pipeline did. */
typedef struct {
   const dj_pipeline_t *top; /* the pipeline whose stages are counted (not its $facet/$lookup pipelines) */
   int64_t *spills;          /* the caller's, one per stage, zeroed: the sorted runs each wrote to files */
} dj_agg_stats_t;
typedef struct {
   dj_engine_t *engine;
   dj_ctx_t *ctx;
   const char *db;
   const dj_eval_t *vars;
   int64_t now_ms;
   bool allow_disk;
   bool bypass_validation;
   dj_agg_stats_t *stats; /* NULL: not counted */
   /* A pipeline (tail_of) whose last stage is a $sort that spills may leave
    * its output in the sorter instead of the result list: *tail set (the
    * caller's then, results empty), to stream into a cursor. NULL: never. */
   dj_spill_t **tail;
   const dj_pipeline_t *tail_of;
   /* A leading {f: {$ne: null}} the scan left to the $lookup on f right
    * after it (lookup.c: dj_agg_join_filter): that stage (join_filter_stage, its
    * address) drops the documents the filter fails. NULL: none. */
   const dj_matcher_t *join_filter;
   const void *join_filter_stage;
} dj_prun_t;
int dj_pipeline_nstages (const dj_pipeline_t *p);
/* The engine handle's keep of hash joins' foreign sides (e->join_keep):
 * what an equality $lookup read and indexed in a read-only snapshot, for
 * the next one of the same snapshot (lookup.c). */
dj_keep_t *dj_agg_join_keep_new (void);
bool dj_pipeline_run (const dj_pipeline_t *p, const dj_prun_t *run, const char *coll, dj_docs_t *out, bson_error_t *error);
/* dj_pipeline_run, whose results may be views of rows (NULL: heap
 * documents only), as those of the stages that stream to a $limit are
 * (pipeline.c): the caller frees rows once done with out. */
bool dj_pipeline_run_rows (const dj_pipeline_t *p, const dj_prun_t *run, const char *coll, dj_rows_t *rows,
                           dj_docs_t *out, bson_error_t *error);
/* Runs p over the given documents (replaced by the results; cleared on
 * failure): a change stream's stages over its events. */
bool dj_pipeline_run_docs (const dj_pipeline_t *p, const dj_prun_t *run, dj_docs_t *docs, bson_error_t *error);

/* ---- accumulators.c: $sum, $avg, $min, $max, $first, $last, $push, $addToSet,
 * $count, $stdDevPop, $stdDevSamp, $mergeObjects ----------------------------- */
typedef struct dj_accop dj_accop_t; /* a row of the accumulator table */
/* What an accumulator's arguments fix once, at parse time (acc_n.c):
 * $top/$bottom(N)'s sortBy, $percentile's p and $median/$percentile's method. */
typedef struct {
   dj_sort_t *sort; /* owned */
   double *p;       /* owned, np entries */
   int np;
   bool continuous; /* method 'continuous': interpolated, else the discrete rank */
} dj_accparam_t;
typedef struct {
   char *field; /* owned */
   const dj_accop_t *op;
   dj_expr_t *expr;       /* owned; NULL for $count */
   dj_accparam_t *param;  /* owned; NULL for the accumulators without one */
} dj_acc_t;
/* One accumulator's running state; zeroed with op set before the first step. */
typedef struct {
   const dj_accop_t *op;
   bson_value_t val; /* owned: $min/$max/$first/$last */
   bool have;
   int64_t count;
   double mean, m2;  /* $stdDev* */
   bson_value_t sum; /* $sum/$avg: a number */
   bson_t *arr;      /* $push / $addToSet */
   uint32_t narr;
   dj_node_t *merged; /* $mergeObjects */
   const dj_accparam_t *param; /* borrowed from the dj_acc_t */
   /* acc_n.c: the n values kept ($firstN...$bottomN; items[i] owned, roots[i]
    * owned copies of the documents $top/$bottom sort by), n once known, and
    * $median/$percentile's numbers */
   bson_value_t *items;
   bson_t **roots;
   size_t nitems, icap;
   int64_t n;
   double *nums;
   size_t nnums, ncap;
} dj_accst_t;
const dj_accop_t *dj_acc_op (const char *name); /* NULL if there is none */
/* Parses `field: {$op: expr}` into a (a->field, a->expr owned even on failure). */
bool dj_acc_parse (dj_acc_t *a, const char *field, const bson_value_t *spec, const dj_vscope_t *scope, bson_error_t *error);
bool dj_acc_collects (const dj_accop_t *op); /* keeps every value ($push, $addToSet) */
bool dj_acc_step (dj_accst_t *a, const bson_value_t *v, bson_error_t *error); /* v: EOD for missing */
void dj_acc_result (const dj_accst_t *a, const char *field, bson_t *out); /* appends field: result */
void dj_accst_cleanup (dj_accst_t *a);
/* A fresh state for a (zeroed, op and param set). */
void dj_accst_init (dj_accst_t *st, const dj_acc_t *a);
void dj_acc_cleanup (dj_acc_t *a); /* frees what a owns */
void dj_accparam_free (dj_accparam_t *p);

/* The view's documents (all of them): its pipeline over its source, which may be a view in turn. */
bool dj_view_read (const dj_prun_t *run, const dj_coll_t *view, int depth, dj_docs_t *out, bson_error_t *error);

#endif
