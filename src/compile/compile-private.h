/*
 * compile-private.h -- what the compiler's files share.
 *
 *   expr.c    SQL expressions -> aggregation expressions; predicates ->
 *             query filters or $expr, both with three-valued logic
 *   function.c  scalar functions, CAST, CASE (one table row a function)
 *   template.c  documents written as JSON templates with holes
 *   select.c  SELECT -> find / aggregate
 *   write.c   INSERT / UPDATE / DELETE
 *   window.c  window functions -> $setWindowFields
 *   ddl.c     CREATE / DROP / ALTER, transaction statements
 *   compile.c plans, binding, dj_mql_t
 *   cache.c   the plan cache (SQL text -> shared plan)
 *   exact_dt.c  DATETIME columns to the microsecond (dj_compile.h)
 *   schema.c  what recorded columns settle: unknown columns, * beside GROUP BY
 *
 * Emitters append to a parent document under a key and return false with
 * cx->error set on failure; a half-built parent is then discarded by the
 * caller, so they never need to undo.
 */
#ifndef DJ_COMPILE_PRIVATE_H
#define DJ_COMPILE_PRIVATE_H

#include "dj_buf.h"
#include "dj_compile.h"

/* libbson's BSON_APPEND_* macros evaluate `key` twice (once for strlen);
 * the compiler's keys are often cx_idx (&k, (*n)++). These forms pass -1
 * (NUL-terminated) and evaluate each argument once. */
#undef BSON_APPEND_DOCUMENT_BEGIN
#undef BSON_APPEND_ARRAY_BEGIN
#undef BSON_APPEND_DOCUMENT
#undef BSON_APPEND_UTF8
#undef BSON_APPEND_INT32
#undef BSON_APPEND_INT64
#undef BSON_APPEND_BOOL
#undef BSON_APPEND_NULL
#undef BSON_APPEND_VALUE
#define BSON_APPEND_DOCUMENT_BEGIN(b, key, child) bson_append_document_begin ((b), (key), -1, (child))
#define BSON_APPEND_ARRAY_BEGIN(b, key, child) bson_append_array_begin ((b), (key), -1, (child))
#define BSON_APPEND_DOCUMENT(b, key, val) bson_append_document ((b), (key), -1, (val))
#define BSON_APPEND_UTF8(b, key, val) bson_append_utf8 ((b), (key), -1, (val), -1)
#define BSON_APPEND_INT32(b, key, val) bson_append_int32 ((b), (key), -1, (val))
#define BSON_APPEND_INT64(b, key, val) bson_append_int64 ((b), (key), -1, (val))
#define BSON_APPEND_BOOL(b, key, val) bson_append_bool ((b), (key), -1, (val))
#define BSON_APPEND_NULL(b, key) bson_append_null ((b), (key), -1)
#define BSON_APPEND_VALUE(b, key, val) bson_append_value ((b), (key), -1, (val))

struct dj_plan {
   dj_sql_stmt_t *stmt; /* owned */
   int refs;            /* references of a cached plan (atomic, cache.c); 0 from dj_plan_new */
   uint64_t serial;     /* the plans made before it in this process (dj_plan_new):
                           bound.c's slot set, spreading plans made in a row evenly */
};

/* One FROM entry as the pipeline sees it. */
typedef struct {
   const char *alias;   /* the name columns are qualified with */
   const char *table;   /* collection */
   char prefix[160];    /* "" for the base table, "__dj_<alias>." for joins */
   const dj_select_t *sub; /* a derived table (FROM (SELECT ...) alias): its
                              columns are the inner rows' c<i>, by name */
} cx_source_t;

#define CX_MAX_SOURCES 32
#define CX_MAX_SUBS 32
#define CX_MAX_WINDOWS 16

/* After $group, expressions are rewritten: a GROUP BY key becomes
 * "$_id.k<i>", an aggregate call "$a<i>". */
typedef struct {
   const dj_list_t *keys;      /* dj_expr_t *: GROUP BY expressions */
   dj_list_t aggs;             /* dj_expr_t *: aggregate calls (malloc'd v) */
} cx_group_t;

typedef struct cx {
   const bson_value_t *params;
   int nparams;
   /* set when the compile read a parameter's value, not only its type or
    * to append it as it is (cx_const_value; cx_const_peek does not): the
    * output then depends on the values (bound.c keeps only outputs that do
    * not). NULL: not tracked. Shared by a statement's subquery contexts. */
   bool *values_read;
   const char *db;
   bson_error_t *error;
   cx_source_t sources[CX_MAX_SOURCES];
   int nsources;
   cx_group_t *group;          /* non-NULL after $group */
   int depth;
   int nsub;                   /* subqueries with a $lookup into "__dj_sq<i>" */
   const dj_expr_t *subs[CX_MAX_SUBS]; /* borrowed from the statement */
   uint32_t sub_us;            /* bit i: subquery i's rows carry c0__us (exact_dt.c) */
   bool c0_us;                 /* this query's rows carry c0__us (exact_dt.c) */
   /* Inside a subquery: the enclosing query, and the $lookup `let` document
    * being built ({o<i>: "$<outer path>"}) for the outer columns it uses. */
   struct cx *outer;
   bson_t *lets;
   int nlets;
   /* window calls computed by $setWindowFields into "__dj_w<i>" (window.c) */
   const dj_expr_t *wins[CX_MAX_WINDOWS];
   int nwins;
   dj_mql_t *out;
   const dj_catalog_t *catalog; /* borrowed; NULL: no catalog (dj_plan_bind) */
} cx_t;

/* dj_plan_bind_catalog; *values_read (NULL: not tracked) set when the
 * compile read a parameter's value (cx_t.values_read) */
bool cx_plan_bind (const dj_plan_t *plan, const char *db, const dj_catalog_t *catalog, const bson_value_t *params,
                   int nparams, dj_mql_t *out, bool *values_read, bson_error_t *error);

/* key buffer for array elements */
typedef struct {
   char buf[16];
   const char *key;
} cx_idx_t;

const char *cx_idx (cx_idx_t *k, uint32_t i);

/* Sets cx->error (DJ_DOMAIN_SQL, code; the message names the byte offset)
 * and returns false. */
bool cx_fail (cx_t *cx, uint32_t code, uint32_t pos, const char *fmt, ...) BSON_GNUC_PRINTF (4, 5);
#define cx_unsupported(cx, pos, ...) cx_fail ((cx), DJ_SQL_UNSUPPORTED, (pos), __VA_ARGS__)
#define cx_param_error(cx, pos, ...) cx_fail ((cx), DJ_SQL_PARAMS, (pos), __VA_ARGS__)
#define cx_value_error(cx, pos, ...) cx_fail ((cx), DJ_SQL_VALUE, (pos), __VA_ARGS__)

/* cx_const_value for a caller whose output depends on the value's type
 * alone (NULL or not, an exact datetime or not: bound.c keys its templates
 * by the parameters' types) or that appends it as it is: the read is not
 * noted in cx->values_read. */
bool cx_const_peek (cx_t *cx, const dj_expr_t *e, bson_value_t *tmp, const bson_value_t **out);
/* Is e a constant once parameters are bound (literal or %s)? */
bool cx_is_const (const dj_expr_t *e);
/* The bound value of a constant (params borrowed; literals in *tmp). */
bool cx_const_value (cx_t *cx, const dj_expr_t *e, bson_value_t *tmp, const bson_value_t **out);
/* cx_const_value of an argument that must be a constant or a parameter
 * (LIMIT, a unit name...): `what` names it in the error otherwise. */
bool cx_const_arg (cx_t *cx, const dj_expr_t *e, const char *what, bson_value_t *tmp, const bson_value_t **out);
bool cx_const_is_null (cx_t *cx, const dj_expr_t *e);
/* Appends a constant's value as a query value (BSON undefined as null). */
bool cx_append_const (cx_t *cx, const dj_expr_t *e, bson_t *parent, const char *key);
/* Appends a constant's value as a value to store (INSERT VALUES, UPDATE
 * SET): as it is, BSON undefined included -- a JSON column's JSON null
 * (djongo/operations.py: adapt_json_value), kept apart from SQL NULL. */
bool cx_append_stored (cx_t *cx, const dj_expr_t *e, bson_t *parent, const char *key);
/* cx_append_stored's element(s) written as bytes into b, the document
 * being built (an INSERT's row) */
bool cx_put_stored (cx_t *cx, const dj_expr_t *e, dj_buf_t *b, const char *key);

/* column.c: column references */
/* parent[key] = the column's value: "$path", an indexed path's element, or
 * an outer query's column through the $lookup's `let`. */
bool cx_append_field_ref (cx_t *cx, const dj_expr_t *col, bson_t *parent, const char *key);
/* Does col name a column of the enclosing query (a correlated reference)? */
bool cx_is_outer (cx_t *cx, const dj_expr_t *col);
/* The query an outer column col is read in (NULL: col is not outer). */
cx_t *cx_outer_query (cx_t *cx, const dj_expr_t *col);
/* An outer column's `value` (cx_agg_value, or its remainder cx_dt_rem),
 * computed by that query and bound by the $lookup's `let`: parent[key] =
 * "$$<variable>". */
typedef bool (*cx_emit_fn) (struct cx *cx, const dj_expr_t *e, bson_t *parent, const char *key);
bool cx_outer_let (cx_t *cx, const dj_expr_t *col, cx_emit_fn value, bson_t *parent, const char *key);
/* Field path of a column (no "$"); false + error if unknown/ambiguous. */
bool cx_column_path (cx_t *cx, const dj_expr_t *col, char *path, size_t size);
bool cx_path_has_index (const char *name);
/* The table a column reads (NULL: a derived table's, or unknown); no error. */
const char *cx_column_table (cx_t *cx, const dj_expr_t *col);

/* exact_dt.c: DATETIME columns to the microsecond (dj_compile.h) */
/* Is e a DATETIME column of a table of this query (the catalog says so)? */
bool cx_dt_column (cx_t *cx, const dj_expr_t *e);
/* The filter of `col op val` (want: TRUE, else FALSE) when col is a
 * DATETIME column and val a date: *done, else nothing appended. */
bool cx_dt_filter (cx_t *cx, const dj_expr_t *col, dj_op_t op, bool want, const dj_expr_t *val, bson_t *parent,
                   const char *key, bool *done);
/* The same for `col [NOT] IN (constants)` (e a DJ_X_IN_LIST). */
bool cx_dt_in_filter (cx_t *cx, const dj_expr_t *e, bool want, bson_t *parent, const char *key, bool *done);
/* Whether an aggregation comparison of a and b compares [date, remainder]
 * pairs (either is a DATETIME column or an exact datetime constant), and
 * one side as its pair (a CX_FN). */
bool cx_dt_compared (cx_t *cx, const dj_expr_t *a, const dj_expr_t *b);
bool cx_dt_compare_operand (cx_t *cx, const dj_expr_t *e, bson_t *parent, const char *key);
/* Whether e's value may have a remainder (a DATETIME column, an exact
 * datetime, COALESCE/GREATEST/LEAST/CASE/CAST of one, DATETIME_ADD_US),
 * and that remainder as an aggregation expression (0..999; 0 for none). */
bool cx_dt_has_rem (cx_t *cx, const dj_expr_t *e);
bool cx_dt_rem (cx_t *cx, const dj_expr_t *e, bson_t *parent, const char *key);
/* DATETIME_ADD_US(x, us), DATETIME_DIFF_US(a, b), TIME_OF_DAY(x, tz) of
 * an x with a remainder: *done, else nothing appended. */
bool cx_dt_function (cx_t *cx, const dj_expr_t *e, bson_t *parent, const char *key, bool *done);
/* a [NOT] IN (subquery i's rows "__dj_sq<i>") when a may have a
 * remainder: its [date, remainder] among the rows' [c0, c0__us] (*done),
 * as expr.c's agg_subquery_truth says otherwise (w: TRUE, else FALSE). */
bool cx_dt_in_subquery (cx_t *cx, const dj_expr_t *e, bool w, int i, bson_t *parent, const char *key, bool *done);
/* $group: a GROUP BY key e with a remainder groups by it too
 * (id["<key>__us"]); MIN/MAX (aggregate e, field a<i>) of one also keep
 * the least/greatest [date, remainder] pair in "a<i>__p". After the
 * $group, cx_dt_has_rem/cx_dt_rem read those. */
bool cx_dt_group_key (cx_t *cx, const dj_expr_t *e, bson_t *id, const char *key);
bool cx_dt_group_acc (cx_t *cx, const dj_expr_t *e, int i, bson_t *group);
/* ON CONFLICT DO UPDATE SET column = EXCLUDED.source of a DATETIME
 * column: set["<column>__us"] = "<source>__us" too (its remainder, NULL --
 * read as 0 -- when the row has none). */
bool cx_dt_upsert_set (cx_t *cx, const char *table, const char *column, const char *source, bson_t *set);
/* ALTER TABLE DROP / RENAME (rename_to) COLUMN of a DATETIME column:
 * the rows' remainders are dropped / renamed too (one more update). */
bool cx_dt_alter_column (cx_t *cx, const char *table, const char *column, const char *rename_to);
/* e as a sort or partition key, NULL and missing alike: its value
 * (cx_agg_value_or_null), or {d: value, r: remainder} when it may have a
 * remainder -- documents sort field by field (arrays would not: a sort
 * reads an array's least element). */
bool cx_dt_key (cx_t *cx, const dj_expr_t *e, bson_t *parent, const char *key);
/* When e may have a remainder: proj["<key>__us"] = it, *added. */
bool cx_dt_project_rem (cx_t *cx, const dj_expr_t *e, bson_t *proj, const char *key, bool *added);
/* Marks the last column cx_add_column added as a DATETIME one (.us). */
void cx_dt_mark_column (cx_t *cx);
/* find: when e is a DATETIME column (at `path`), its remainder projected
 * too and the column marked. */
void cx_dt_find_project (cx_t *cx, const dj_expr_t *e, bson_t *proj, const char *path);
/* ORDER BY term o of s, sorted by `key` (cN when ref >= 0: item ref, else
 * s<i>): its remainder "<key>__us" next when it may have one. */
void cx_dt_sort_key (cx_t *cx, const dj_select_t *s, int ref, const dj_order_t *o, bson_t *sort, const char *key);
/* A compound's part s (its sources set): bit i set when its item i may
 * have a remainder; and a row's group _id gets "c<i>__us" for those. */
uint64_t cx_dt_items_us (cx_t *cx, const dj_select_t *s);
void cx_dt_row_rem (bson_t *id, int i, uint64_t us);
/* sort["<key>__us"] = dir (unless there). */
bool cx_dt_sort_rem (bson_t *sort, const char *key, int dir);
/* cx_append_const's value: an exact datetime as its date (the remainder
 * is cx_dt_rem's), anything else as it is. */
bool cx_dt_append_query_value (bson_t *parent, const char *key, const bson_value_t *v);
/* UPDATE SET column = e of `table`: an exact datetime constant in a
 * pipeline $set as its date and remainder (*done); else nothing. */
bool cx_dt_set_exact (cx_t *cx, const dj_expr_t *e, bson_t *set, const char *column, bool *done);
/* ... then the remainder of a DATETIME column: removed (unset, or
 * $$REMOVE in a pipeline) for a value without one, copied from another
 * DATETIME column in a pipeline. */
bool cx_dt_set_rem (cx_t *cx, const char *table, const char *column, const dj_expr_t *e, bool pipeline, bson_t *set,
                    bson_t *unset);

/* template.c: documents written as JSON templates (see its comment). What
 * fills a hole "@<d>" of a template (d a digit: ten holes at most): */
typedef enum {
   CX_A_VALUE,   /* e's SQL value (cx_agg_value) */
   CX_A_OR_NULL, /* e's value, missing read as NULL (cx_agg_value_or_null) */
   CX_A_TRUE,    /* true iff predicate e is TRUE (cx_agg_truth) */
   CX_A_FALSE,   /* true iff predicate e is FALSE */
   CX_A_FILTER,  /* the query filter of the rows where e is TRUE (cx_filter) */
   CX_A_CONST,   /* constant e as it is, a query value (cx_append_const) */
   CX_A_STR,     /* a string of the compiler's (a field path, a name); also a key */
   CX_A_INT32,
   CX_A_INT64,
   CX_A_BOOL,
   CX_A_DOC,     /* a document, copied */
   CX_A_ARRAY,   /* an array, copied */
   CX_A_FN       /* what fn appends for e (a shape with a varying length) */
} cx_arg_kind_t;

typedef struct cx_arg {
   cx_arg_kind_t kind;
   const dj_expr_t *e;
   const char *str;
   int64_t i64; /* INT32, INT64, BOOL */
   const bson_t *doc;
   bool (*fn) (cx_t *cx, const dj_expr_t *e, bson_t *parent, const char *key);
} cx_arg_t;

#define CX_VALUE(x) ((cx_arg_t){.kind = CX_A_VALUE, .e = (x)})
#define CX_OR_NULL(x) ((cx_arg_t){.kind = CX_A_OR_NULL, .e = (x)})
#define CX_TRUTH(x, want) ((cx_arg_t){.kind = (want) ? CX_A_TRUE : CX_A_FALSE, .e = (x)})
#define CX_FILTER(x) ((cx_arg_t){.kind = CX_A_FILTER, .e = (x)})
#define CX_CONST(x) ((cx_arg_t){.kind = CX_A_CONST, .e = (x)})
#define CX_STR(s) ((cx_arg_t){.kind = CX_A_STR, .str = (s)})
#define CX_INT32(n) ((cx_arg_t){.kind = CX_A_INT32, .i64 = (n)})
#define CX_INT64(n) ((cx_arg_t){.kind = CX_A_INT64, .i64 = (n)})
#define CX_BOOL(b) ((cx_arg_t){.kind = CX_A_BOOL, .i64 = (b)})
#define CX_DOC(d) ((cx_arg_t){.kind = CX_A_DOC, .doc = (d)})
#define CX_ARRAY(d) ((cx_arg_t){.kind = CX_A_ARRAY, .doc = (d)})
#define CX_FN(f, x) ((cx_arg_t){.kind = CX_A_FN, .fn = (f), .e = (x)})
/* The `args, nargs` of cx_template / cx_stages: CX_ARGS (CX_VALUE (a), ...). */
#define CX_ARGS(...) (const cx_arg_t[]){__VA_ARGS__}, (int) (sizeof ((const cx_arg_t[]){__VA_ARGS__}) / sizeof (cx_arg_t))
#define CX_NO_ARGS NULL, 0
/* ... or an array of them, for several templates filled alike */
#define CX_ARGV(a) (a), (int) (sizeof (a) / sizeof *(a))

/* Appends template `tpl` under key, its holes filled by args[0..nargs)
 * (cx may be NULL when no hole is an expression). */
bool cx_template (cx_t *cx, const char *tpl, const cx_arg_t *args, int nargs, bson_t *parent, const char *key);
/* A new document (owned by the caller): the members of template `tpl`, a
 * document; NULL when a hole failed (cx->error set). */
bson_t *cx_template_new (cx_t *cx, const char *tpl, const cx_arg_t *args, int nargs);
/* Appends a stage (`tpl` a document) or stages (an array of them) to a
 * pipeline being built, next index *n. */
bool cx_stages (cx_t *cx, bson_t *pipeline, uint32_t *n, const char *tpl, const cx_arg_t *args, int nargs);

bool cx_is_aggregate (const dj_expr_t *e);
bool cx_expr_equal (const dj_expr_t *a, const dj_expr_t *b);
/* Collects aggregate calls (not inside subqueries) into g->aggs. */
void cx_collect_aggs (const dj_expr_t *e, cx_group_t *g);

/* Aggregation expression whose value is e's SQL value. */
bool cx_agg_value (cx_t *cx, const dj_expr_t *e, bson_t *parent, const char *key);
/* {$ifNull: [e, null]}: e's value with a missing field read as NULL (so
 * NULL and missing group, compare and project alike). */
bool cx_agg_value_or_null (cx_t *cx, const dj_expr_t *e, bson_t *parent, const char *key);
/* {$eq: [{$ifNull: [x, null]}, null]}: x is NULL or missing ($ne: is not). */
bool cx_agg_isnull (cx_t *cx, const dj_expr_t *x, bool want_null, bson_t *parent, const char *key);
/* geo.c: GEO_WITHIN / GEO_INTERSECTS / GEO_NEAR (col, param) as a filter */
bool cx_geo_is_predicate (const dj_expr_t *e);
bool cx_geo_filter (cx_t *cx, const dj_expr_t *e, bool want, bson_t *parent, const char *key);
/* function.c: a function call (not an aggregate), CAST, CASE */
bool cx_agg_function (cx_t *cx, const dj_expr_t *e, bson_t *parent, const char *key);
bool cx_agg_cast (cx_t *cx, const dj_expr_t *e, bson_t *parent, const char *key);
bool cx_agg_case (cx_t *cx, const dj_expr_t *e, bson_t *parent, const char *key);
/* Aggregation expression, true iff predicate e is TRUE (want) / FALSE (!want). */
bool cx_agg_truth (cx_t *cx, const dj_expr_t *e, bool want, bson_t *parent, const char *key);
/* Query filter document matching the rows where e is TRUE (want) / FALSE. */
bool cx_filter (cx_t *cx, const dj_expr_t *e, bool want, bson_t *parent, const char *key);
/* {$cond: [x IS NULL, 0, 1]}, for {$sum: ...}: COUNT(x), and how many
 * inputs SUM saw (SQL's SUM of none is NULL). */
bool cx_agg_count_one (cx_t *cx, const dj_expr_t *x, bson_t *parent, const char *key);
/* parent[key] = {$cond: [{$gt: [count_ref, 0]}, value_ref, null]} */
bool cx_append_null_if_none (bson_t *parent, const char *key, const char *value_ref, const char *count_ref);
/* Is pred true of e or of an expression in it (not looking into
 * subqueries)? ctx is pred's. */
bool cx_expr_any (const dj_expr_t *e, bool (*pred) (const dj_expr_t *e, const void *ctx), const void *ctx);
/* Does e mention only source 0 (the base table)? Subqueries: no. */
bool cx_base_only (cx_t *cx, const dj_expr_t *e);
/* Does e (a predicate) need $lookup stages (IN/EXISTS subqueries)? */
bool cx_has_subquery (const dj_expr_t *e);
/* A COLLATE name's collation document ({locale[, strength]}) into
 * parent[key]; an unknown name fails (DJ_SQL_UNSUPPORTED at pos). */
bool cx_collation_spec (cx_t *cx, uint32_t pos, const char *name, bson_t *parent, const char *key);
/* Whether the collation tells apart every two different strings (binary,
 * <locale>-x-icu, level3), as PostgreSQL's deterministic collations: not
 * nocase and the case- or accent-blind levels 1 and 2. */
bool cx_collation_deterministic (const char *name);
/* e COLLATE name (a COLLATE function the compiler has not made a key). */
bool cx_is_collate (const dj_expr_t *e);
/* *out: x's sort key under the collation of c (a COLLATE): a COLLATE node
 * with DJ_XF_COLLKEY over x (x's own COLLATE stripped); argv[2] holds its
 * arguments (both borrowed from the caller's frame). */
void cx_collation_key (dj_expr_t *out, void **argv, const dj_expr_t *x, const dj_expr_t *c);

/* cx_select_pipeline flags */
enum {
   CX_PIPE_KEEP_NULLS = 1 << 0, /* every cN present, NULL rather than missing */
   CX_PIPE_NO_COLUMNS = 1 << 1, /* do not describe cN in cx->out->columns */
   CX_PIPE_NO_ORDER = 1 << 2,   /* ORDER BY / LIMIT / OFFSET belong to the caller */
   CX_PIPE_VALUES = 1 << 3,     /* an INSERT's computed VALUES: a SELECT without FROM
                                   that describes no columns (write.c) */
   CX_PIPE_EXISTS = 1 << 4,     /* the rows' values do not matter (EXISTS): a * in
                                   the SELECT list projects nothing */
   CX_PIPE_SUBQUERY = CX_PIPE_KEEP_NULLS | CX_PIPE_NO_COLUMNS
};

/* select.c: appends the pipeline stages of a SELECT to `pipeline` (an
 * array being built, next index *n). Used for subqueries and the branches
 * of UNION/INTERSECT/EXCEPT too (flags). */
bool cx_select_pipeline (cx_t *cx, const dj_select_t *s, bson_t *pipeline, uint32_t *n, int flags);
/* select.c: adds {aggregate: coll (NULL: 1, the database-level form),
 * pipeline: [the stages of s], cursor: {}}. */
bool cx_add_aggregate (cx_t *cx, const char *coll, const dj_select_t *s, int flags);
/* Makes `table` (named `alias`, or by its name) the one source. */
void cx_single_source (cx_t *cx, const char *table, const char *alias);
/* Prepares stages that compute subquery results used by predicate e:
 * each IN/EXISTS/scalar subquery becomes a $lookup into "__dj_sq<i>". */
bool cx_subquery_lookups (cx_t *cx, const dj_expr_t *e, bson_t *pipeline, uint32_t *n);

/* window.c: does the SELECT list or ORDER BY call window functions? */
bool cx_has_window (const dj_select_t *s);
/* window.c: the $setWindowFields stages for them (see its comment). */
bool cx_window_stages (cx_t *cx, const dj_select_t *s, bson_t *pipeline, uint32_t *n);

bool cx_compile_select (cx_t *cx, const dj_sql_stmt_t *st);
/* CREATE VIEW v AS SELECT ... (view.c) */
bool cx_compile_create_view (cx_t *cx, const dj_sql_stmt_t *st);
bool cx_compile_write (cx_t *cx, const dj_sql_stmt_t *st);
/* write.c: the first command of SELECT ... FOR UPDATE, which claims the rows
 * (dj_mql_t.for_update) */
bool cx_compile_claim (cx_t *cx, const dj_sql_stmt_t *st);
bool cx_compile_ddl (cx_t *cx, const dj_sql_stmt_t *st);

/* Adds a command to cx->out (steals cmd). */
bool cx_add_command (cx_t *cx, bson_t *cmd, int32_t ignore_code, bool admin);
/* The usual ending of a compile_*: adds cmd (steals it) when ok, else
 * destroys it (NULL is fine) and returns false. */
bool cx_add_command_if (cx_t *cx, bool ok, bson_t *cmd);
void cx_add_column (cx_t *cx, const char *name, const char *path);

/* schema.c. A column of table source `src` its recorded schema lacks:
 * false with DJ_SQL_NO_COLUMN (a table without one: any column is fine). */
bool cx_check_column (cx_t *cx, const cx_source_t *src, const dj_expr_t *col);
/* The * (or t.*) of SELECT item i after $group: each recorded column of its
 * tables, a GROUP BY key, projected as "c<i>_<k>_<m>" and described.
 * true with *done false (nothing written): some table has no recorded
 * schema; false (and *done false) with cx->error set. */
bool cx_project_star_grouped (cx_t *cx, const dj_expr_t *star, int i, bson_t *proj, bool *done);
/* Blocks cx_expand_derived_stars allocates, freed by cx_scratch_free. */
typedef struct {
   void **v;
   int n, cap;
} cx_scratch_t;
void cx_scratch_free (cx_scratch_t *mem);
/* s, or a copy of it (in *mem, borrowing the rest from s) whose derived
 * table (FROM (SELECT ...) alias, through nested ones) has its * and t.*
 * written out as the recorded columns of their tables, so the outer query
 * can name them; s when nothing is to expand or a table has no schema. */
const dj_select_t *cx_expand_derived_stars (cx_t *cx, const dj_select_t *s, cx_scratch_t *mem);
/* A column the executor expands into `table`'s recorded columns, read under
 * `path` (dj_mql_column_t.star_table); named "<table>.*" until then. */
void cx_add_star_column (cx_t *cx, const char *table, const char *path);
/* s is SELECT * FROM (derived) [WHERE ...], whose columns are the derived
 * table's as they are (c0, c1 ...): that derived SELECT, else NULL.
 * Borrowed from s. (select.c) */
const dj_select_t *cx_derived_star (const dj_select_t *s);

#endif
