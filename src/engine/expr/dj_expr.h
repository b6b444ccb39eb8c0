/*
 * dj_expr.h -- the aggregation expression language ($add, $cond, $dateToString...).
 *
 * What it owns: parsing an expression once into a tree (variables resolved,
 * arities checked: a bad expression fails before any document is read) and
 * evaluating it per document; the operator tables; the arena evaluation
 * temporaries live in.
 * Who calls it: the query layer ($expr in filters, projections, pipeline
 * updates), aggregation (every stage that computes), commands (`let`).
 * It calls only the values layer.
 * Memory: a dj_expr_t is its creator's (dj_expr_destroy). Results of
 * evaluation are borrowed from the input documents or from the arena, valid
 * until dj_arena_reset.
 *
 * Files:
 *   expr.c          arena, parsing, variables, evaluation, the operator table
 *   expr-private.h  what the files share: the node, the table's row, helpers
 *   ops_arith.c     numbers: arithmetic, rounding, trigonometry, bits, $sum.. as expressions
 *   ops_date.c      dates: parts, formats, $dateTrunc/$dateAdd/$dateDiff, from/to parts
 *   ops_date_parse.c  $dateFromString's format specifiers
 *   ops_string.c    strings: substrings, case, trim, split, replace, regex
 *   ops_array.c     arrays, sets, objects ($filter/$map/$reduce, $zip, $mergeObjects...)
 *   ops_type.c      types and conversions ($type, $convert, $toString...)
 *   ops_djongo.c    djongo's own ($_djongoMd5.., $_djongoChr, $_djongoOrd, $_djongoCollationKey): SQL
 *                   functions MongoDB has no operator for
 */
#ifndef DJ_EXPR_H
#define DJ_EXPR_H

#include "dj_values.h"

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
/* e's path when e is a field path of the current document ("$a.b"), else
 * NULL. Borrowed: valid while e lives. */
const dj_path_t *dj_expr_field_path (const dj_expr_t *e);
/* Evaluates e. out: EOD for "missing"; memory borrowed from the documents
 * or the arena (valid until dj_arena_reset). false with ev->error set. */
bool dj_expr_eval (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *out);
void dj_eval_init (dj_eval_t *ev, dj_arena_t *arena, const bson_t *doc, int64_t now_ms, bson_error_t *error);
/* The same, with the variables of `vars` (a command's let values; may be NULL) in scope. */
void dj_eval_init_vars (dj_eval_t *ev, dj_arena_t *arena, const bson_t *doc, const dj_eval_t *vars, int64_t now_ms,
                        bson_error_t *error);
/* $cond/$filter truthiness: false, null, missing, undefined and 0 are false. */
bool dj_value_truthy (const bson_value_t *v);
/* Expression comparison: like dj_value_cmp, but missing sorts below null. */
int dj_expr_cmp (const bson_value_t *a, const bson_value_t *b);
int64_t dj_now_ms (void);

/* ---- ops_arith.c ---------------------------------------------------------- */
/* out = a op b ('+', '-', '*') with aggregation's widening: int32 -> int64 ->
 * double on overflow; any double: double; any decimal: decimal. out may be a. */
void dj_num_arith (char op, const bson_value_t *a, const bson_value_t *b, bson_value_t *out);
/* The p-th percentile (0 <= p <= 1) of the n > 0 ascending numbers v: the
 * discrete method takes the value of rank ceil(p * n) (1-based), as
 * mongod's 'approximate' and 'discrete'; 'continuous' interpolates between
 * the ranks around p * (n - 1) (0-based). $percentile, $median. */
double dj_percentile (const double *v, size_t n, double p, bool continuous);

/* Adds the PCRE2 options MongoDB's regex flags (i, m, s, x, u) stand for to
 * *flags; false with the offending character in *bad for any other. */
bool dj_regex_flags (const char *options, uint32_t *flags, char *bad);

#endif
