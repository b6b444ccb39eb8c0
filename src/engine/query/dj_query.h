/*
 * dj_query.h -- the query language: filters, updates, projections.
 *
 * What it owns: compiling a filter ({a: {$gt: 1}}) into a matcher and
 * matching documents; the bounds a filter puts on a path (for the planner);
 * update operators and replacement documents; find projections; the
 * document-shaping stages ($project, $addFields/$set, $unset, $replaceRoot/
 * $replaceWith) that projections, pipeline updates and aggregation share.
 * Who calls it: storage (partial index filters, validators, scans),
 * aggregation ($match and the shaping stages), commands.
 * It calls expr and values, never storage: it works on one document at a time.
 * Memory: every dj_*_new returns an object its caller destroys; parse-time
 * errors are raised by the _new functions, before any document is read.
 *
 * Files:
 *   match.c      filters: the query operators, $expr, bounds for the planner
 *   implies.c    whether a query implies a partial index's filter (the planner)
 *   update.c     update operators, replacement documents, pipeline updates
 *   project.c    find projections (incl. positional $ and $elemMatch)
 *   reshape.c    the document-shaping stages shared with aggregation
 *   reshape_paths.c  a $project of field paths alone (SQL's select list) in one pass
 *   failure.c    why a document fails a filter (a validator's errInfo details)
 *   schema.c     $jsonSchema: MongoDB's JSON Schema subset, and why a document fails one
 *   spec.c       the projection specification tree both of them parse into
 *                (spec-private.h: nodes, the path-collision rule)
 */
#ifndef DJ_QUERY_H
#define DJ_QUERY_H

#include "dj_expr.h"
#include "dj_text.h"
#include "dj_geo.h"

typedef struct dj_matcher dj_matcher_t;
typedef struct dj_update dj_update_t;
typedef struct dj_reshape dj_reshape_t;
typedef struct dj_schema dj_schema_t;
/* A find projection is a shaping too: the same type (query/spec-private.h). */
typedef struct dj_reshape dj_projection_t;

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
/* The top-level field f when m is exactly {f: {$ne: null}} (f one path
 * component: what the SQL compiler puts before an inner join on f), else
 * NULL. Such a filter passes a document whose first f is neither null nor
 * undefined nor an array -- and fails one without f -- so a caller that
 * already holds f's value may decide it without the matcher
 * (aggregation/lookup.c). The string is m's. */
const char *dj_matcher_not_null_field (const dj_matcher_t *m);
/* Parses a filter whose $expr may use the variables in `scope`. */
dj_matcher_t *dj_matcher_new_scoped (const bson_t *filter, const dj_vscope_t *scope, bson_error_t *error);
/* With the variables' values for $expr, and runtime errors: returns false
 * with error->code set when an $expr failed (error may be NULL). */
bool dj_matcher_match_ex (const dj_matcher_t *m, const bson_t *doc, int32_t *pos, const dj_eval_t *vars,
                          bson_error_t *error);
/* dj_matcher_match_ex for a filter whose $text is under an $or
 * (storage/text_or.c): text_hit says whether the text index found doc for
 * it (dj_matcher_match_ex: as if it had). */
bool dj_matcher_match_text (const dj_matcher_t *m, const bson_t *doc, bool text_hit, int32_t *pos, const dj_eval_t *vars,
                            bson_error_t *error);
bool dj_matcher_match_value (const dj_matcher_t *m, const bson_value_t *v);
/* A regular expression compiled as $regex compiles it (options: its flag
 * letters): a pcre2_code (8-bit) the caller frees with pcre2_code_free, or
 * NULL with error 51091 (invalid) / 51108 (a bad flag). */
void *dj_match_regex (const char *pattern, size_t len, const char *options, bson_error_t *error);
bool dj_matcher_is_empty (const dj_matcher_t *m);
/* The argument of m's $text (borrowed from m; a top-level conjunct, or
 * under a top-level $or, $and), NULL if it has none: a scan must answer m
 * through the text index (storage/text_scan.c, text_or.c); the $text node
 * itself matches what dj_matcher_match_text is told. */
const bson_value_t *dj_matcher_text (const dj_matcher_t *m);
/* For planners walking a filter's tree (storage/text_or.c): a node's kind
 * and its children (*nkids: an AND's conjuncts, an OR's alternatives, each
 * itself a matcher borrowed from m; 0 for the others). */
typedef enum { DJ_MK_AND, DJ_MK_OR, DJ_MK_TEXT, DJ_MK_OTHER } dj_mkind_t;
dj_mkind_t dj_matcher_kind (const dj_matcher_t *m, int *nkids);
const dj_matcher_t *dj_matcher_kid (const dj_matcher_t *m, int i);
/* The geo condition ($geoWithin, $geoIntersects, $near, $nearSphere) among
 * m's top-level conjuncts on `path` (NULL: any path; near: $near or
 * $nearSphere only), or NULL; *path_out (if not NULL) receives its path.
 * Borrowed from m. */
const dj_geo_query_t *dj_matcher_geo (const dj_matcher_t *m, const char *path, bool near, const char **path_out);

/* ---- schema.c: $jsonSchema ------------------------------------------------ */
/* Parses a $jsonSchema (a document); unknown and unsupported keywords and
 * ill-typed arguments are refused here, as mongod refuses them. */
dj_schema_t *dj_schema_new (const bson_value_t *spec, bson_error_t *error);
void dj_schema_destroy (dj_schema_t *s);
/* Whether v (the document, at the top) satisfies s. */
bool dj_schema_match (const dj_schema_t *s, const bson_value_t *v);
/* Appends to `rules` (an array being built) the rules v breaks, in the
 * shape of mongod's errInfo schemaRulesNotSatisfied. */
void dj_schema_failure (const dj_schema_t *s, const bson_value_t *v, bson_t *rules);

/* ---- failure.c ---------------------------------------------------------- */
/* Appends to `details` why doc fails `filter` (a filter that parses), in the
 * shape of mongod's DocumentValidationFailure errInfo.details. */
void dj_match_failure_details (const bson_t *filter, const bson_t *doc, bson_t *details);

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
   /* The bounds say all the filter says: it is these conditions on this one
    * path and nothing else, on values whose index keys compare exactly as
    * the matcher compares them (numbers but NaN and Decimal128, strings,
    * booleans, dates, ObjectIds). With an index where each document has
    * exactly one key, counting its entries in the bounds counts matches. */
   bool exact;
} dj_bounds_t;
bool dj_matcher_bounds (const dj_matcher_t *m, const char *path, dj_bounds_t *out);
/* For partial indexes (implies.c): a filter's top-level conjuncts (through
 * nested $and) as simple conditions on one path. OTHER: anything else (no
 * path, or an operator the implication check does not read). */
typedef enum { DJ_CJ_OTHER, DJ_CJ_EQ, DJ_CJ_LT, DJ_CJ_LTE, DJ_CJ_GT, DJ_CJ_GTE, DJ_CJ_IN, DJ_CJ_EXISTS } dj_cj_op_t;
typedef struct {
   const dj_path_t *path;     /* borrowed from the matcher; NULL for OTHER without a path */
   dj_cj_op_t op;             /* EXISTS: {$exists: true} ({$exists: false} is OTHER) */
   const bson_value_t *vals;  /* borrowed: EQ and comparisons one value, IN its list */
   int nvals;
} dj_conjunct_t;
/* *out: an owned array (bson_free) of the returned count, pointing into m. */
int dj_matcher_conjuncts (const dj_matcher_t *m, dj_conjunct_t **out);
/* Whether every document `query` matches also matches `filter` (a partial
 * index's partialFilterExpression), proven conjunct by conjunct as mongod's
 * planner does (implies.c); false when it cannot tell. */
bool dj_matcher_implies (const dj_matcher_t *query, const dj_matcher_t *filter);
/* Equality fields of a filter, for building an upserted document. */
bool dj_matcher_upsert_seed (const bson_t *filter, dj_node_t *doc, bson_error_t *error);

/* ---- update.c ----------------------------------------------------------- */
/* `scope`: the command's let variables a pipeline-style update may use (NULL: none). */
dj_update_t *dj_update_new (const bson_value_t *spec, const bson_t *array_filters, const dj_vscope_t *scope,
                            bson_error_t *error);
void dj_update_destroy (dj_update_t *u);
bool dj_update_is_replacement (const dj_update_t *u);
/* Whether a path of u holds the positional `$` (its documents then need
 * the array position their match found: dj_update_apply's pos). */
bool dj_update_positional (const dj_update_t *u);
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

/* ---- reshape.c: $project, $addFields/$set, $unset, $replaceRoot/$replaceWith */
/* Whether `name` is one of the document-shaping stages. */
bool dj_reshape_is_stage (const char *name);
/* Parses stage `name` (a shaping stage) with its specification. `scope`:
 * variables visible to its expressions. NULL with error on failure. */
dj_reshape_t *dj_reshape_new (const char *name, const bson_value_t *spec, const dj_vscope_t *scope, bson_error_t *error);
void dj_reshape_destroy (dj_reshape_t *r);
/* Reshapes doc, appending the result's fields to out (an empty document the
 * caller owns; on failure it holds a partial result to discard). ev is set
 * up on doc (dj_eval_init); its error is set on failure. Temporaries go to
 * ev's arena (the caller resets it). */
bool dj_reshape_apply (const dj_reshape_t *r, dj_eval_t *ev, const bson_t *doc, bson_t *out);
/* Whether r is a $project of field paths alone, _id excluded (SQL's
 * select list): dj_reshape_apply_joined applies it (reshape_paths.c). */
bool dj_reshape_joins (const dj_reshape_t *r);
/* dj_reshape_apply on doc with its top-level field `as` set to match (NULL:
 * removed), without making that document: a join's output row built
 * straight from the local document and the match (both borrowed). ev is
 * set up on doc. memo (may be NULL): the layout of the rows before, kept
 * by the caller for one r and `as` across a join's rows (dj_rmemo_new; the
 * caller frees it with dj_rmemo_free). */
typedef struct dj_rmemo dj_rmemo_t;
dj_rmemo_t *dj_rmemo_new (void);
void dj_rmemo_free (dj_rmemo_t *memo);
bool dj_reshape_apply_joined (const dj_reshape_t *r, dj_eval_t *ev, const bson_t *doc, const char *as, const bson_t *match,
                              dj_rmemo_t *memo, bson_t *out);
/* dj_reshape_apply_joined, the row written -- instead of appended to a
 * document -- into the bytes room(room_ctx, size) gives for its size
 * (never NULL), *len set to the row's length (0 for a row too large to
 * be a document: then it reads as {}, as dj_reshape_apply_joined's out). */
typedef uint8_t *(*dj_room_fn) (void *room_ctx, size_t size);
/* Whether shaping r's rows with this memo (kept for r and `as`) may
 * evaluate an expression -- a path that goes through an array -- and so
 * read the dj_eval_t given: when not, it is never read (nor set up). */
bool dj_rmemo_evaluates (dj_rmemo_t *memo, const dj_reshape_t *r, const char *as);
/* The first top-level field `key` (len bytes; the same on every call for
 * one memo: the join's localField) of doc, read at the
 * position the memo's layout of the local documents gives it once doc is
 * checked to have that layout -- which the next row shaped from doc then
 * needs not check again: 1 with *v set (borrowing doc), 0 when doc has no
 * such field, -1 when it holds an array (the path's visit must expand
 * it); -2 when the memo cannot tell (no layout learned, or not doc's):
 * read doc itself. doc NULL: -2, and the memo forgets the last doc. */
int dj_rmemo_top (dj_rmemo_t *memo, const bson_t *doc, const char *key, size_t len, bson_value_t *v);
bool dj_reshape_apply_joined_at (const dj_reshape_t *r, dj_eval_t *ev, const bson_t *doc, const char *as,
                                 const bson_t *match, dj_rmemo_t *memo, dj_room_fn room, void *room_ctx, size_t *len);
/* One element of a stage array: {name: spec} with exactly one field.
 * name/spec borrow from it. Errors are the ones MongoDB gives. */
bool dj_stage_split (const bson_iter_t *it, const char **name, bson_value_t *spec, bson_error_t *error);

#endif
