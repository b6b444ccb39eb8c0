/*
 * expr-private.h -- what the expression layer's files share: the parsed
 * node, the operator table's row, the evaluation helpers, and the operator
 * functions the table (expr.c) points at. Not seen outside src/engine/expr.
 *
 * An operator is one row of ops[] (expr.c) and one function in the file of
 * its family (ops_*.c). The row says how its arguments are handled before
 * the function runs (the shared prologue, x_eval_op in expr.c):
 *
 *   LAZY      the function evaluates its own arguments ($cond, $and, $let...)
 *   ARGS      every argument is evaluated first, in order (absent: missing)
 *   NULL1     ARGS, and a null/missing/undefined argument 0 gives null
 *   NULL_ANY  ARGS, and any null/missing/undefined argument given gives null
 *   EMPTY1    ARGS, and a null/missing/undefined argument 0 gives ""
 *
 * (with `eval` set, only the first `eval` arguments: the others are the
 * function's to evaluate when it needs them -- $convert's onError, $map's in)
 *
 * then, if the row lists accepted types, argument 0 is checked against them
 * and the row's error raised when it is not one: `msg` is a printf format
 * given (operator name, type name) in that order.
 */
#ifndef DJ_EXPR_PRIVATE_H
#define DJ_EXPR_PRIVATE_H

#include "dj_expr.h"

#include <stdio.h>

typedef enum { LAZY, ARGS, NULL1, NULL_ANY, EMPTY1 } xargs_t;

struct opdef;
/* v: the evaluated arguments (NULL for LAZY rows); the function may overwrite them. */
typedef bool (*xfn_t) (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out);
typedef dj_expr_t *(*xparse_t) (const struct opdef *op, const bson_value_t *arg, const dj_vscope_t *scope,
                                bson_error_t *error);

#define ANY 1000                  /* no upper arity bound */
#define T(t) (1u << (t))          /* a type in an opdef's `types` */
#define T_NUMBER (T (BSON_TYPE_INT32) | T (BSON_TYPE_INT64) | T (BSON_TYPE_DOUBLE) | T (BSON_TYPE_DECIMAL128))

struct opdef {
   const char *name;
   xfn_t fn;
   int min, max;    /* positional arity; -1: object form only */
   xargs_t args;    /* the prologue (above) */
   uint32_t types;  /* accepted types of argument 0 (T() bits), 0: any */
   uint32_t code;   /* the error when it is not one of them ... */
   const char *msg; /* ... formatted with (operator name, type name) */
   const char *const *named; /* object-form parameters, NULL if positional only */
   int required;             /* how many leading named parameters are required */
   int eval;                 /* ARGS..: evaluate only the first `eval` arguments (0: all) */
   int aux;                  /* which member of a family its function serves */
   xparse_t parse;           /* a parser of its own ($literal, $let, $switch) */
};

typedef enum { X_CONST, X_FIELD, X_VAR, X_OBJECT, X_ARRAY, X_OP } xkind_t;

struct dj_expr {
   xkind_t kind;
   const struct opdef *op;
   bson_value_t val; /* X_CONST: owned copy */
   char *var;        /* X_VAR: owned name */
   dj_path_t path;   /* X_FIELD, X_VAR: the path after the root */
   dj_expr_t **args; /* owned; X_OBJECT fields, X_ARRAY elements, X_OP arguments (NULL where absent) */
   int nargs;
   char **keys;     /* X_OBJECT field names; $let variable names (owned) */
   char *as;        /* $filter/$map variable (owned) */
   bool positional; /* X_OP given as an array (or single value), not an object */
};

/* Iterating array values */
typedef struct {
   bson_value_t *v;
   uint32_t n;
} vlist_t;

#define MISSING ((bson_value_t){.value_type = BSON_TYPE_EOD})

static inline bool
nullish (const bson_value_t *v)
{
   return v->value_type == BSON_TYPE_NULL || v->value_type == BSON_TYPE_EOD || v->value_type == BSON_TYPE_UNDEFINED;
}

static inline bool
isnum (const bson_value_t *v)
{
   return dj_value_is_number (v);
}

static inline void
set_null (bson_value_t *out)
{
   out->value_type = BSON_TYPE_NULL;
}

static inline void
set_bool (bson_value_t *out, bool b)
{
   out->value_type = BSON_TYPE_BOOL;
   out->value.v_bool = b;
}

/* int32 when it fits: MongoDB narrows integer results the same way */
static inline void
set_int (bson_value_t *out, int64_t v)
{
   if (v >= INT32_MIN && v <= INT32_MAX) {
      out->value_type = BSON_TYPE_INT32;
      out->value.v_int32 = (int32_t) v;
   } else {
      out->value_type = BSON_TYPE_INT64;
      out->value.v_int64 = v;
   }
}

static inline void
set_long (bson_value_t *out, int64_t v)
{
   out->value_type = BSON_TYPE_INT64;
   out->value.v_int64 = v;
}

static inline void
set_double (bson_value_t *out, double d)
{
   out->value_type = BSON_TYPE_DOUBLE;
   out->value.v_double = d;
}

static inline void
set_date (bson_value_t *out, int64_t ms)
{
   out->value_type = BSON_TYPE_DATE_TIME;
   out->value.v_datetime = ms;
}

static inline const char *
tname (const bson_value_t *v)
{
   return dj_type_name (v->value_type);
}

/* int32 or int64 as int64 (the caller has checked the type) */
static inline int64_t
as_i64 (const bson_value_t *v)
{
   return v->value_type == BSON_TYPE_INT32 ? v->value.v_int32 : v->value.v_int64;
}

/* The key of array element i ("0", "1", ...); buf holds it. */
static inline const char *
akey (uint32_t i, char buf[16])
{
   const char *k;
   bson_uint32_to_string (i, &k, buf, 16);
   return k;
}

/* ---- expr.c: evaluation helpers ---- */
bool x_eval (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *out);
/* argument i (missing when absent) */
bool x_arg (const dj_expr_t *e, int i, dj_eval_t *ev, bson_value_t *out);
bool x_fail (dj_eval_t *ev, uint32_t code, const char *fmt, ...) BSON_GNUC_PRINTF (3, 4);
bool x_push_var (dj_eval_t *ev, const char *name, const bson_value_t *v);
void x_str (dj_arena_t *a, const char *s, size_t n, bson_value_t *out); /* a string copied into the arena */
void x_list (dj_eval_t *ev, const bson_value_t *arr, vlist_t *out);      /* an array's elements */
/* the values as an array (missing ones left out) */
void x_list_value (dj_eval_t *ev, const bson_value_t *vals, uint32_t n, bson_value_t *out);
/* doc (a document or array, destroyed here) copied into the arena as out; true */
bool x_doc_value (dj_eval_t *ev, bson_t *doc, bool is_array, bson_value_t *out);

/* ---- ops_arith.c ---- */
bool op_add (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out);
bool op_subtract (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out);
bool op_divide_mod (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out);
bool op_pow (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out);
bool op_abs (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out);
bool op_ceil_floor (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out);
bool op_math1 (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out);
bool op_math2 (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out);
bool op_round (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out);
bool op_bit (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out);
bool op_bitnot (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out);
bool op_rand (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out);
bool op_sum_avg (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out);
bool op_min_max (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out);
bool op_stddev (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out);
/* the members of the op_math1/op_math2/op_round/op_bit/... families (opdef.aux) */
enum { M_SQRT, M_EXP, M_LN, M_LOG10, M_SIN, M_COS, M_TAN, M_ASIN, M_ACOS, M_ATAN, M_SINH, M_COSH, M_TANH, M_ASINH,
       M_ACOSH, M_ATANH, M_DEG2RAD, M_RAD2DEG, M_LOG, M_ATAN2, M_CEIL, M_FLOOR };

/* ---- ops_date.c ---- */
bool x_date_ms (dj_eval_t *ev, const bson_value_t *v, int64_t *ms);
bool x_format_date (dj_eval_t *ev, int64_t ms, const dj_tz_t *tz, const char *fmt, bson_value_t *out);
bool x_parse_iso (const char *s, const dj_tz_t *tz, int64_t *ms_out, bool *had_offset);
bool op_date_part (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out);
bool op_date_to_string (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out);
bool op_date_from_string (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out);
bool op_date_arith (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out);
bool op_date_from_parts (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out);
bool op_date_to_parts (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out);
enum { D_YEAR, D_MONTH, D_DAYOFMONTH, D_DAYOFWEEK, D_DAYOFYEAR, D_HOUR, D_MINUTE, D_SECOND, D_MILLISECOND, D_WEEK,
       D_ISOWEEK, D_ISOWEEKYEAR, D_ISODAYOFWEEK, D_TRUNC, D_ADD, D_SUBTRACT, D_DIFF };

/* ---- ops_string.c ---- */
bool op_concat (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out);
bool op_substr (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out);
bool op_strlen (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out);
bool op_indexof_str (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out);
bool op_case (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out);
bool op_trim (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out);
bool op_split (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out);
bool op_replace (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out);
bool op_regex (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out);
bool op_strcasecmp (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out);
enum { S_CP, S_BYTES, S_LOWER, S_UPPER, S_TRIM, S_LTRIM, S_RTRIM, S_ONE, S_ALL, S_MATCH, S_FIND, S_FINDALL };

/* ---- ops_array.c: arrays, sets, objects ---- */
bool op_elem_at (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out);
bool op_size (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out);
bool op_slice (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out);
bool op_filter_map (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out);
bool op_reduce (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out);
bool op_range (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out);
bool op_reverse (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out);
bool op_in (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out);
bool op_indexof_array (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out);
bool op_concat_arrays (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out);
bool op_sort_array (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out);
bool op_zip (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out);
bool op_array_to_object (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out);
bool op_object_to_array (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out);
bool op_set (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out);
bool op_any_all (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out);
bool op_merge_objects (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out);
bool op_get_field (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out);
bool op_set_field (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out);
enum { AR_FIRST, AR_LAST, AR_ELEMAT, AR_FILTER, AR_MAP, AR_EQUALS, AR_INTERSECTION, AR_UNION, AR_DIFFERENCE, AR_ISSUBSET,
       AR_ANY, AR_ALL, AR_SET, AR_UNSET };
/* the list-style operators' inputs ($sum: [..] or $sum: "$arr"): one array argument means its elements */
void x_acc_inputs (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, vlist_t *l);

/* ---- ops_type.c: conversions, types ---- */
bool x_stringify (dj_eval_t *ev, const bson_value_t *v, bson_value_t *out);
bool op_type (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out);
bool op_is_number (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out);
bool op_is_array (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out);
bool op_convert (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out);
bool op_to (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out);

#endif
