/*
 * expr-private.h -- what the expression layer's files share: the parsed
 * node, the operator table's row, the evaluation helpers, and the operator
 * functions the table (expr.c) points at. Not seen outside src/engine/expr.
 *
 * An operator is one row of ops[] (expr.c) and one function in the file of
 * its family (ops_*.c). The row says how its arguments are handled before
 * the function runs (the shared prologue, eval_op in expr.c):
 *
 *   LAZY      the function evaluates its own arguments ($and, $switch, $let...)
 *   ARGS      every argument is evaluated first, in order (absent: missing)
 *   NULL1     ARGS, and a null/missing/undefined argument 0 gives null
 *   NULL_ANY  ARGS, and any null/missing/undefined argument given gives null
 *   EMPTY1    ARGS, and a null/missing/undefined argument 0 gives ""
 *
 * With `eval` set only the first `eval` arguments are evaluated; the others
 * are the function's, for when it needs them ($convert's onError, $map's in).
 * Then, if the row lists accepted types, argument 0 is checked against them
 * and the row's error raised when it is not one: `msg` is a printf format
 * given (operator name, type name) in that order ("%.0s" skips the name).
 */
#ifndef DJ_EXPR_PRIVATE_H
#define DJ_EXPR_PRIVATE_H

#include "dj_expr.h"

#include <stdio.h>

typedef enum { LAZY, ARGS, NULL1, NULL_ANY, EMPTY1 } xargs_t;

struct opdef;
/* v: the evaluated arguments (NULL for LAZY rows); the function may overwrite them. */
#define XFN_ARGS const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out
typedef bool (*xfn_t) (XFN_ARGS);
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

/* set_bool, set_long, set_double, set_date: out = x of that type */
#define SETTER(name, ctype, type, member)                                                                              \
   static inline void name (bson_value_t *out, ctype x)                                                                 \
   {                                                                                                                    \
      out->value_type = type;                                                                                           \
      out->value.member = x;                                                                                            \
   }
SETTER (set_bool, bool, BSON_TYPE_BOOL, v_bool)
SETTER (set_long, int64_t, BSON_TYPE_INT64, v_int64)
SETTER (set_double, double, BSON_TYPE_DOUBLE, v_double)
SETTER (set_date, int64_t, BSON_TYPE_DATE_TIME, v_datetime)
#undef SETTER

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

/* it over the fields (elements) of the document (array) v */
static inline void
x_iter (bson_iter_t *it, const bson_value_t *v)
{
   bson_iter_init_from_data (it, v->value.v_doc.data, v->value.v_doc.data_len);
}

/* ---- expr.c: evaluation helpers ---- */
bool x_eval (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *out);
/* argument i (missing when absent) */
bool x_arg (const dj_expr_t *e, int i, dj_eval_t *ev, bson_value_t *out);
bool x_fail (dj_eval_t *ev, uint32_t code, const char *fmt, ...) BSON_GNUC_PRINTF (3, 4);
bool x_push_var (dj_eval_t *ev, const char *name, const bson_value_t *v);
void x_str (dj_arena_t *a, const char *s, size_t n, bson_value_t *out); /* a string copied into the arena */
vlist_t x_list (dj_eval_t *ev, const bson_value_t *arr); /* an array's elements (in the arena) */
/* the values as an array (missing ones left out) */
void x_list_value (dj_eval_t *ev, const bson_value_t *vals, uint32_t n, bson_value_t *out);
/* the list-style operators' inputs ($sum: [..] or $sum: "$arr"): one array argument means its elements */
vlist_t x_acc_inputs (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v);
/* doc (a document or array, destroyed here) copied into the arena as out; true */
bool x_doc_value (dj_eval_t *ev, bson_t *doc, bool is_array, bson_value_t *out);

/* ---- ops_arith.c ---- */
bool op_percentile (XFN_ARGS);
bool op_add (XFN_ARGS), op_subtract (XFN_ARGS), op_divide_mod (XFN_ARGS), op_pow (XFN_ARGS), op_abs (XFN_ARGS),
     op_ceil_floor (XFN_ARGS), op_math1 (XFN_ARGS), op_math2 (XFN_ARGS), op_round (XFN_ARGS), op_bit (XFN_ARGS),
     op_bitnot (XFN_ARGS), op_rand (XFN_ARGS), op_sum_avg (XFN_ARGS), op_min_max (XFN_ARGS), op_stddev (XFN_ARGS);
/* the members of the op_math1/op_math2/op_round/op_bit/... families (opdef.aux) */
enum { M_SQRT, M_EXP, M_LN, M_LOG10, M_SIN, M_COS, M_TAN, M_ASIN, M_ACOS, M_ATAN, M_SINH, M_COSH, M_TANH, M_ASINH,
       M_ACOSH, M_ATANH, M_DEG2RAD, M_RAD2DEG, M_LOG, M_ATAN2, M_CEIL, M_FLOOR };

/* ---- ops_date.c ---- */
bool x_date_ms (dj_eval_t *ev, const bson_value_t *v, int64_t *ms);
bool x_format_date (dj_eval_t *ev, int64_t ms, const dj_tz_t *tz, const char *fmt, bson_value_t *out);
bool x_parse_iso (const char *s, const dj_tz_t *tz, int64_t *ms_out, bool *had_offset);
/* The instant of a local civil time in tz (NULL: UTC); months and days past their ranges carry. */
int64_t x_from_parts (int64_t y, int64_t mo, int64_t d, int64_t h, int64_t mi, int64_t s, int64_t ms, const dj_tz_t *tz);
/* ---- ops_date_parse.c: $dateFromString's format ---- */
/* s read by the format's specifiers (fmt): *ms_out; false with ev's error
 * set for a bad format (18535, 18536) or a string it does not read (241). */
bool x_parse_format (dj_eval_t *ev, const char *s, const char *fmt, const dj_tz_t *tz, int64_t *ms_out);
bool op_date_part (XFN_ARGS), op_date_to_string (XFN_ARGS), op_date_from_string (XFN_ARGS), op_date_arith (XFN_ARGS),
     op_date_from_parts (XFN_ARGS), op_date_to_parts (XFN_ARGS);
enum { D_YEAR, D_MONTH, D_DAYOFMONTH, D_DAYOFWEEK, D_DAYOFYEAR, D_HOUR, D_MINUTE, D_SECOND, D_MILLISECOND, D_WEEK,
       D_ISOWEEK, D_ISOWEEKYEAR, D_ISODAYOFWEEK, D_TRUNC, D_ADD, D_SUBTRACT, D_DIFF };

/* ---- ops_string.c ---- */
bool op_concat (XFN_ARGS), op_substr (XFN_ARGS), op_strlen (XFN_ARGS), op_indexof_str (XFN_ARGS), op_case (XFN_ARGS),
     op_trim (XFN_ARGS), op_split (XFN_ARGS), op_replace (XFN_ARGS), op_regex (XFN_ARGS), op_strcasecmp (XFN_ARGS);
enum { S_CP, S_BYTES, S_LOWER, S_UPPER, S_TRIM, S_LTRIM, S_RTRIM, S_ONE, S_ALL, S_MATCH, S_FIND, S_FINDALL };

/* ---- ops_array.c: arrays, sets, objects ---- */
bool op_elem_at (XFN_ARGS), op_size (XFN_ARGS), op_slice (XFN_ARGS), op_filter_map (XFN_ARGS), op_reduce (XFN_ARGS),
     op_range (XFN_ARGS), op_reverse (XFN_ARGS), op_in (XFN_ARGS), op_indexof_array (XFN_ARGS),
     op_concat_arrays (XFN_ARGS), op_sort_array (XFN_ARGS), op_zip (XFN_ARGS), op_array_to_object (XFN_ARGS),
     op_object_to_array (XFN_ARGS), op_set (XFN_ARGS), op_any_all (XFN_ARGS), op_merge_objects (XFN_ARGS),
     op_get_field (XFN_ARGS), op_set_field (XFN_ARGS), op_n_array (XFN_ARGS);
enum { AR_FIRST, AR_LAST, AR_ELEMAT, AR_FILTER, AR_MAP, AR_EQUALS, AR_INTERSECTION, AR_UNION, AR_DIFFERENCE, AR_ISSUBSET,
       AR_ANY, AR_ALL, AR_SET, AR_UNSET, AR_FIRSTN, AR_LASTN, AR_MAXN, AR_MINN };

/* ---- ops_djongo.c: djongo's own operators ($_djongo...) ---- */
bool op_hash (XFN_ARGS), op_chr (XFN_ARGS), op_ord (XFN_ARGS), op_collation_key (XFN_ARGS), op_geo_distance (XFN_ARGS);
enum { H_MD5, H_SHA1, H_SHA224, H_SHA256, H_SHA384, H_SHA512 };

/* ---- ops_type.c: conversions, types ---- */
bool x_stringify (dj_eval_t *ev, const bson_value_t *v, bson_value_t *out);
bool op_type (XFN_ARGS), op_is_number (XFN_ARGS), op_is_array (XFN_ARGS), op_convert (XFN_ARGS), op_to (XFN_ARGS),
     op_to_hashed_index_key (XFN_ARGS);

#endif
