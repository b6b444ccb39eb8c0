/*
 * expr.c -- the aggregation expression language: the arena, parsing,
 * variables, evaluation, and the operator table.
 *
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/
 *
 * An expression is parsed once into a tree (variables are resolved and
 * arities checked then, so a bad pipeline fails before it reads a document)
 * and evaluated per document. Values produced during evaluation live in an
 * arena that the caller resets per document; results that point into the
 * input documents are borrowed, not copied.
 *
 * "Missing" (a field that is not there, $$REMOVE) is BSON_TYPE_EOD and is
 * distinct from null, as in MongoDB: {$eq: ["$nosuch", null]} is false, and
 * a missing value leaves a computed field out of its document.
 *
 * Operators: one row each in ops[] below and one function in the file of
 * their family (expr-private.h says how a row's arguments are handled).
 */
#include "expr-private.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/time.h>

/* ---- arena ----------------------------------------------------------------- */

typedef struct chunk {
   struct chunk *next;
   size_t used, cap;
   max_align_t data[];
} chunk_t;

struct dj_arena {
   chunk_t *head;
};

dj_arena_t *
dj_arena_new (void)
{
   return bson_malloc0 (sizeof (dj_arena_t));
}

void *
dj_arena_alloc (dj_arena_t *a, size_t n)
{
   n = (n + 15) & ~(size_t) 15;
   if (!a->head || a->head->used + n > a->head->cap) {
      size_t cap = n > 16384 ? n : 16384;
      chunk_t *c = bson_malloc (sizeof (chunk_t) + cap);
      c->next = a->head;
      c->used = 0;
      c->cap = cap;
      a->head = c;
   }
   void *p = (char *) a->head->data + a->head->used;
   a->head->used += n;
   return p;
}

void
dj_arena_reset (dj_arena_t *a)
{
   while (a->head) {
      chunk_t *n = a->head->next;
      bson_free (a->head);
      a->head = n;
   }
}

void
dj_arena_destroy (dj_arena_t *a)
{
   if (a) {
      dj_arena_reset (a);
      bson_free (a);
   }
}

void
dj_arena_value (dj_arena_t *a, const bson_t *b, bool is_array, bson_value_t *out)
{
   uint8_t *p = dj_arena_alloc (a, b->len);
   memcpy (p, bson_get_data (b), b->len);
   out->value_type = is_array ? BSON_TYPE_ARRAY : BSON_TYPE_DOCUMENT;
   out->value.v_doc.data = p;
   out->value.v_doc.data_len = b->len;
}

void
x_str (dj_arena_t *a, const char *s, size_t n, bson_value_t *out)
{
   char *p = dj_arena_alloc (a, n + 1);
   if (n) {
      memcpy (p, s, n); /* s may be NULL when n is 0 (an empty buffer) */
   }
   p[n] = '\0';
   out->value_type = BSON_TYPE_UTF8;
   out->value.v_utf8.str = p;
   out->value.v_utf8.len = (uint32_t) n;
}

int64_t
dj_now_ms (void)
{
   struct timeval tv;
   gettimeofday (&tv, NULL);
   return (int64_t) tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* ---- the operator table --------------------------------------------------- */

static dj_expr_t *parse_literal (const struct opdef *op, const bson_value_t *arg, const dj_vscope_t *scope,
                                 bson_error_t *error);
static dj_expr_t *parse_let (const struct opdef *op, const bson_value_t *arg, const dj_vscope_t *scope,
                             bson_error_t *error);
static dj_expr_t *parse_switch (const struct opdef *op, const bson_value_t *arg, const dj_vscope_t *scope,
                                bson_error_t *error);
static dj_expr_t *parse_meta (const struct opdef *op, const bson_value_t *arg, const dj_vscope_t *scope,
                              bson_error_t *error);
static bool op_meta (XFN_ARGS);
static bool op_cmp (XFN_ARGS), op_and_or (XFN_ARGS), op_not (XFN_ARGS), op_cond (XFN_ARGS), op_ifnull (XFN_ARGS),
   op_switch (XFN_ARGS), op_let (XFN_ARGS);
enum { C_EQ, C_NE, C_GT, C_GTE, C_LT, C_LTE, C_CMP, C_AND, C_OR };

#define NAMED(...) ((const char *const[]){__VA_ARGS__, NULL})
/* the argument rules the families share */
#define NUMERIC NULL1, T_NUMBER, 28765, "%s only supports numeric types, not %s"
#define ARRAY_ARG(code, msg) NULL1, T (BSON_TYPE_ARRAY), code, msg
#define DATE_PART(name, d) {name, op_date_part, 1, 1, ARGS, .named = NAMED ("date", "timezone"), .required = 1, .aux = d}
#define REGEX(r) ARGS, .named = NAMED ("input", "regex", "options"), .required = 2, .aux = r
#define HASH(name, h) {name, op_hash, 1, 1, NULL1, .aux = h}
/* $firstN..$minN on arrays: {input, n}; a null input gives null */
#define N_ARRAY(name, a)                                                                                                 \
   {name, op_n_array, -1, -1, NULL1, T (BSON_TYPE_ARRAY), 5788200, "Input to %s must be an array, but found %s",           \
    .named = NAMED ("input", "n"), .required = 2, .aux = a}
#define DATE_ARITH(d) LAZY, .named = NAMED ("startDate", "unit", "amount", "timezone"), .required = 3, .aux = d

/* One row per operator (expr-private.h: struct opdef): name, function, positional arity (min, max),
 * argument rule, the types accepted for argument 0 and the error otherwise; then, by name, the
 * object-form parameters, how many arguments the prologue evaluates and the family member.
 * Each operator's page: https://www.mongodb.com/docs/manual/reference/operator/aggregation/<name without $>/ */
static const struct opdef ops[] = {
   /* arithmetic (ops_arith.c) */
   {"$add", op_add, 0, ANY, ARGS, .aux = '+'},
   {"$subtract", op_subtract, 2, 2, NULL_ANY},
   {"$multiply", op_add, 0, ANY, ARGS, .aux = '*'},
   {"$divide", op_divide_mod, 2, 2, NULL_ANY, .aux = '/'},
   {"$mod", op_divide_mod, 2, 2, NULL_ANY, .aux = '%'},
   {"$pow", op_pow, 2, 2, NULL_ANY},
   {"$abs", op_abs, 1, 1, NUMERIC},
   {"$ceil", op_ceil_floor, 1, 1, NUMERIC, .aux = M_CEIL},
   {"$floor", op_ceil_floor, 1, 1, NUMERIC, .aux = M_FLOOR},
   {"$round", op_round, 1, 2, NULL_ANY, T_NUMBER, 51081, "%s only supports numeric types, not %s"},
   {"$trunc", op_round, 1, 2, NULL_ANY, T_NUMBER, 51081, "%s only supports numeric types, not %s", .aux = 1},
   {"$sqrt", op_math1, 1, 1, NUMERIC, .aux = M_SQRT},
   {"$exp", op_math1, 1, 1, NUMERIC, .aux = M_EXP},
   {"$ln", op_math1, 1, 1, NUMERIC, .aux = M_LN},
   {"$log", op_math2, 2, 2, NULL_ANY, .aux = M_LOG},
   {"$log10", op_math1, 1, 1, NUMERIC, .aux = M_LOG10},
   /* comparison, boolean, conditional (here) */
   {"$eq", op_cmp, 2, 2, ARGS, .aux = C_EQ},
   {"$ne", op_cmp, 2, 2, ARGS, .aux = C_NE},
   {"$gt", op_cmp, 2, 2, ARGS, .aux = C_GT},
   {"$gte", op_cmp, 2, 2, ARGS, .aux = C_GTE},
   {"$lt", op_cmp, 2, 2, ARGS, .aux = C_LT},
   {"$lte", op_cmp, 2, 2, ARGS, .aux = C_LTE},
   {"$cmp", op_cmp, 2, 2, ARGS, .aux = C_CMP},
   {"$and", op_and_or, 0, ANY, LAZY, .aux = C_AND},
   {"$or", op_and_or, 0, ANY, LAZY, .aux = C_OR},
   {"$not", op_not, 1, 1, ARGS},
   {"$cond", op_cond, 3, 3, ARGS, .eval = 1, .named = NAMED ("if", "then", "else"), .required = 3},
   {"$ifNull", op_ifnull, 2, ANY, LAZY},
   {"$switch", op_switch, -1, -1, LAZY, .parse = parse_switch},
   /* types and conversions (ops_type.c) */
   {"$type", op_type, 1, 1, ARGS},
   {"$convert", op_convert, -1, -1, ARGS, .eval = 2, .named = NAMED ("input", "to", "onError", "onNull", "format"), .required = 2},
   {"$toString", op_to, 1, 1, NULL1, .aux = BSON_TYPE_UTF8},
   {"$toInt", op_to, 1, 1, NULL1, .aux = BSON_TYPE_INT32},
   {"$toLong", op_to, 1, 1, NULL1, .aux = BSON_TYPE_INT64},
   {"$toHashedIndexKey", op_to_hashed_index_key, 1, 1, ARGS},
   {"$toDouble", op_to, 1, 1, NULL1, .aux = BSON_TYPE_DOUBLE},
   {"$toDecimal", op_to, 1, 1, NULL1, .aux = BSON_TYPE_DECIMAL128},
   {"$toBool", op_to, 1, 1, NULL1, .aux = BSON_TYPE_BOOL},
   {"$toDate", op_to, 1, 1, NULL1, .aux = BSON_TYPE_DATE_TIME},
   {"$toObjectId", op_to, 1, 1, NULL1, .aux = BSON_TYPE_OID},
   {"$isNumber", op_is_number, 1, 1, ARGS},
   {"$isArray", op_is_array, 1, 1, ARGS},
   /* strings (ops_string.c) */
   {"$concat", op_concat, 0, ANY, LAZY},
   {"$substrCP", op_substr, 3, 3, EMPTY1, .aux = S_CP},
   {"$substrBytes", op_substr, 3, 3, EMPTY1, .aux = S_BYTES},
   {"$substr", op_substr, 3, 3, EMPTY1, .aux = S_BYTES},
   {"$strLenCP", op_strlen, 1, 1, ARGS, T (BSON_TYPE_UTF8), 34471, "%s requires a string argument, found: %s", .aux = S_CP},
   {"$strLenBytes", op_strlen, 1, 1, ARGS, T (BSON_TYPE_UTF8), 34473, "%s requires a string argument, found: %s", .aux = S_BYTES},
   {"$indexOfCP", op_indexof_str, 2, 4, NULL1, T (BSON_TYPE_UTF8), 40091,
    "%s requires a string as the first argument, found: %s", .aux = S_CP},
   {"$indexOfBytes", op_indexof_str, 2, 4, NULL1, T (BSON_TYPE_UTF8), 40091,
    "%s requires a string as the first argument, found: %s", .aux = S_BYTES},
   {"$toLower", op_case, 1, 1, EMPTY1, .aux = S_LOWER},
   {"$toUpper", op_case, 1, 1, EMPTY1, .aux = S_UPPER},
   {"$trim", op_trim, -1, -1, ARGS, .named = NAMED ("input", "chars"), .required = 1, .aux = S_TRIM},
   {"$ltrim", op_trim, -1, -1, ARGS, .named = NAMED ("input", "chars"), .required = 1, .aux = S_LTRIM},
   {"$rtrim", op_trim, -1, -1, ARGS, .named = NAMED ("input", "chars"), .required = 1, .aux = S_RTRIM},
   {"$split", op_split, 2, 2, NULL1, T (BSON_TYPE_UTF8), 40085,
    "%s requires an expression that evaluates to a string as a first argument, found: %s"},
   {"$replaceOne", op_replace, -1, -1, NULL_ANY, .named = NAMED ("input", "find", "replacement"), .required = 3, .aux = S_ONE},
   {"$replaceAll", op_replace, -1, -1, NULL_ANY, .named = NAMED ("input", "find", "replacement"), .required = 3, .aux = S_ALL},
   {"$regexMatch", op_regex, -1, -1, REGEX (S_MATCH)},
   {"$regexFind", op_regex, -1, -1, REGEX (S_FIND)},
   {"$regexFindAll", op_regex, -1, -1, REGEX (S_FINDALL)},
   {"$strcasecmp", op_strcasecmp, 2, 2, ARGS},
   /* dates (ops_date.c) */
   DATE_PART ("$year", D_YEAR),
   DATE_PART ("$month", D_MONTH),
   DATE_PART ("$dayOfMonth", D_DAYOFMONTH),
   DATE_PART ("$dayOfWeek", D_DAYOFWEEK),
   DATE_PART ("$dayOfYear", D_DAYOFYEAR),
   DATE_PART ("$hour", D_HOUR),
   DATE_PART ("$minute", D_MINUTE),
   DATE_PART ("$second", D_SECOND),
   DATE_PART ("$millisecond", D_MILLISECOND),
   DATE_PART ("$week", D_WEEK),
   DATE_PART ("$isoWeek", D_ISOWEEK),
   DATE_PART ("$isoWeekYear", D_ISOWEEKYEAR),
   DATE_PART ("$isoDayOfWeek", D_ISODAYOFWEEK),
   {"$dateToString", op_date_to_string, -1, -1, ARGS, .eval = 3, .named = NAMED ("date", "format", "timezone", "onNull"), .required = 1},
   {"$dateFromString", op_date_from_string, -1, -1, ARGS, .eval = 3,
    .named = NAMED ("dateString", "format", "timezone", "onError", "onNull"), .required = 1},
   {"$dateTrunc", op_date_arith, -1, -1, LAZY, .named = NAMED ("date", "unit", "binSize", "timezone", "startOfWeek"),
    .required = 2, .aux = D_TRUNC},
   {"$dateAdd", op_date_arith, -1, -1, DATE_ARITH (D_ADD)},
   {"$dateSubtract", op_date_arith, -1, -1, DATE_ARITH (D_SUBTRACT)},
   {"$dateDiff", op_date_arith, -1, -1, LAZY, .named = NAMED ("startDate", "endDate", "unit", "timezone", "startOfWeek"),
    .required = 3, .aux = D_DIFF},
   {"$dateFromParts", op_date_from_parts, -1, -1, LAZY,
    .named = NAMED ("year", "month", "day", "hour", "minute", "second", "millisecond", "timezone", "isoWeekYear", "isoWeek",
                    "isoDayOfWeek")},
   {"$dateToParts", op_date_to_parts, -1, -1, ARGS, .eval = 2, .named = NAMED ("date", "timezone", "iso8601"), .required = 1},
   /* arrays, sets, objects (ops_array.c) */
   {"$arrayElemAt", op_elem_at, 2, 2, NULL_ANY, T (BSON_TYPE_ARRAY), 28689, "%s's first argument must be an array, but is %s",
    .aux = AR_ELEMAT},
   {"$first", op_elem_at, 1, 1, ARRAY_ARG (28689, "%s's argument must be an array, but is %s"), .aux = AR_FIRST},
   {"$last", op_elem_at, 1, 1, ARRAY_ARG (28689, "%s's argument must be an array, but is %s"), .aux = AR_LAST},
   {"$size", op_size, 1, 1, ARGS, T (BSON_TYPE_ARRAY), 17124, "The argument to %s must be an array. Type of the argument was: %s"},
   {"$slice", op_slice, 2, 3, NULL_ANY, T (BSON_TYPE_ARRAY), 28724, "First argument to %s must be an array, but is of type: %s"},
   {"$filter", op_filter_map, -1, -1, ARGS, .eval = 1, .named = NAMED ("input", "cond", "as", "limit"), .required = 2, .aux = AR_FILTER},
   {"$map", op_filter_map, -1, -1, ARGS, .eval = 1, .named = NAMED ("input", "in", "as"), .required = 2, .aux = AR_MAP},
   {"$reduce", op_reduce, -1, -1, ARRAY_ARG (40080, "%s requires that 'input' be an array, found: %s"), .eval = 2,
    .named = NAMED ("input", "initialValue", "in"), .required = 3},
   {"$range", op_range, 2, 3, ARGS},
   {"$reverseArray", op_reverse, 1, 1, ARRAY_ARG (34435, "The argument to %s must be an array, but was of type: %s")},
   {"$in", op_in, 2, 2, ARGS},
   {"$indexOfArray", op_indexof_array, 2, 4, ARRAY_ARG (40090, "%s requires an array as a first argument, found: %s")},
   {"$concatArrays", op_concat_arrays, 0, ANY, LAZY},
   {"$sortArray", op_sort_array, -1, -1, ARRAY_ARG (2, "The 'input' argument to %s must be an array, but was of type: %s"),
    .named = NAMED ("input", "sortBy"), .required = 2},
   {"$zip", op_zip, -1, -1, ARRAY_ARG (34461, "%.0sinputs must be an array of expressions, found %s"),
    .named = NAMED ("inputs", "useLongestLength", "defaults"), .required = 1},
   {"$arrayToObject", op_array_to_object, 1, 1, ARRAY_ARG (40386, "%s requires an array input, found: %s")},
   {"$objectToArray", op_object_to_array, 1, 1, NULL1, T (BSON_TYPE_DOCUMENT), 40390, "%s requires a document input, found: %s"},
   {"$setEquals", op_set, 2, ANY, ARGS, .aux = AR_EQUALS},
   {"$setIntersection", op_set, 0, ANY, ARGS, .aux = AR_INTERSECTION},
   {"$setUnion", op_set, 0, ANY, ARGS, .aux = AR_UNION},
   {"$setDifference", op_set, 2, 2, ARGS, .aux = AR_DIFFERENCE},
   {"$setIsSubset", op_set, 2, 2, ARGS, .aux = AR_ISSUBSET},
   {"$anyElementTrue", op_any_all, 1, 1, ARGS, T (BSON_TYPE_ARRAY), 17041, "%s's argument must be an array, but is %s", .aux = AR_ANY},
   {"$allElementsTrue", op_any_all, 1, 1, ARGS, T (BSON_TYPE_ARRAY), 17040, "%s's argument must be an array, but is %s", .aux = AR_ALL},
   {"$mergeObjects", op_merge_objects, 0, ANY, ARGS},
   N_ARRAY ("$firstN", AR_FIRSTN), N_ARRAY ("$lastN", AR_LASTN), N_ARRAY ("$maxN", AR_MAXN), N_ARRAY ("$minN", AR_MINN),
   {"$getField", op_get_field, 1, 1, ARGS, .eval = 1, .named = NAMED ("field", "input"), .required = 1},
   {"$setField", op_set_field, -1, -1, ARGS, .eval = 2, .named = NAMED ("field", "input", "value"), .required = 3, .aux = AR_SET},
   {"$unsetField", op_set_field, -1, -1, ARGS, .eval = 2, .named = NAMED ("field", "input"), .required = 2, .aux = AR_UNSET},
   /* trigonometry (ops_arith.c) */
   {"$sin", op_math1, 1, 1, NUMERIC, .aux = M_SIN},
   {"$cos", op_math1, 1, 1, NUMERIC, .aux = M_COS},
   {"$tan", op_math1, 1, 1, NUMERIC, .aux = M_TAN},
   {"$asin", op_math1, 1, 1, NUMERIC, .aux = M_ASIN},
   {"$acos", op_math1, 1, 1, NUMERIC, .aux = M_ACOS},
   {"$atan", op_math1, 1, 1, NUMERIC, .aux = M_ATAN},
   {"$atan2", op_math2, 2, 2, NULL_ANY, .aux = M_ATAN2},
   {"$sinh", op_math1, 1, 1, NUMERIC, .aux = M_SINH},
   {"$cosh", op_math1, 1, 1, NUMERIC, .aux = M_COSH},
   {"$tanh", op_math1, 1, 1, NUMERIC, .aux = M_TANH},
   {"$asinh", op_math1, 1, 1, NUMERIC, .aux = M_ASINH},
   {"$acosh", op_math1, 1, 1, NUMERIC, .aux = M_ACOSH},
   {"$atanh", op_math1, 1, 1, NUMERIC, .aux = M_ATANH},
   {"$degreesToRadians", op_math1, 1, 1, NUMERIC, .aux = M_DEG2RAD},
   {"$radiansToDegrees", op_math1, 1, 1, NUMERIC, .aux = M_RAD2DEG},
   /* bitwise (ops_arith.c) */
   {"$bitAnd", op_bit, 0, ANY, LAZY, .aux = '&'},
   {"$bitOr", op_bit, 0, ANY, LAZY, .aux = '|'},
   {"$bitXor", op_bit, 0, ANY, LAZY, .aux = '^'},
   {"$bitNot", op_bitnot, 1, 1, NULL1, T (BSON_TYPE_INT32) | T (BSON_TYPE_INT64), 28679, "%s only supports int and long operands."},
   /* the rest */
   {"$literal", NULL, -1, -1, LAZY, .parse = parse_literal},
   {"$let", op_let, -1, -1, LAZY, .parse = parse_let},
   {"$rand", op_rand, 0, 0, ARGS},
   {"$meta", op_meta, -1, -1, LAZY, .parse = parse_meta},
   /* accumulators as expressions (ops_arith.c) */
   {"$sum", op_sum_avg, 0, ANY, ARGS},
   {"$avg", op_sum_avg, 0, ANY, ARGS, .aux = 1},
   {"$min", op_min_max, 0, ANY, ARGS, .aux = -1},
   {"$max", op_min_max, 0, ANY, ARGS, .aux = 1},
   {"$stdDevPop", op_stddev, 0, ANY, ARGS},
   {"$stdDevSamp", op_stddev, 0, ANY, ARGS, .aux = 1},
   {"$percentile", op_percentile, -1, -1, ARGS, .named = NAMED ("input", "p", "method"), .required = 3},
   {"$median", op_percentile, -1, -1, ARGS, .named = NAMED ("input", "method"), .required = 2, .aux = 1},
   /* djongo's own, for SQL functions MongoDB has none for (ops_djongo.c) */
   HASH ("$_djongoMd5", H_MD5), HASH ("$_djongoSha1", H_SHA1), HASH ("$_djongoSha224", H_SHA224),
   HASH ("$_djongoSha256", H_SHA256), HASH ("$_djongoSha384", H_SHA384), HASH ("$_djongoSha512", H_SHA512),
   {"$_djongoChr", op_chr, 1, 1, NULL1},
   {"$_djongoOrd", op_ord, 1, 1, NULL1},
   {"$_djongoCollationKey", op_collation_key, 2, 2, ARGS},
   {"$_djongoGeoDistance", op_geo_distance, 2, 2, NULL_ANY},
};


void
dj_expr_destroy (dj_expr_t *e)
{
   if (!e) {
      return;
   }
   for (int i = 0; i < e->nargs; i++) {
      dj_expr_destroy (e->args[i]);
      if (e->keys) {
         bson_free (e->keys[i]);
      }
   }
   DJ_FREE (e->args, e->keys, e->as, e->var);
   dj_path_cleanup (&e->path);
   if (e->kind == X_CONST) {
      bson_value_destroy (&e->val);
   }
   bson_free (e);
}

bool
dj_expr_is_const (const dj_expr_t *e, bson_value_t *out)
{
   if (e->kind != X_CONST) {
      return false;
   }
   if (out) {
      *out = e->val;
   }
   return true;
}

static dj_expr_t *
xnew (xkind_t k)
{
   dj_expr_t *e = bson_malloc0 (sizeof *e);
   e->kind = k;
   return e;
}

/* e destroyed; NULL (a failed parse's result) */
static dj_expr_t *
xdrop (dj_expr_t *e)
{
   dj_expr_destroy (e);
   return NULL;
}

static void
xadd (dj_expr_t *e, dj_expr_t *kid)
{
   e->args = bson_realloc (e->args, sizeof (dj_expr_t *) * (size_t) (e->nargs + 1));
   e->args[e->nargs++] = kid;
}

/* kid appended under `key` (copied; NULL for none) */
static void
xadd_keyed (dj_expr_t *e, const char *key, dj_expr_t *kid)
{
   e->keys = bson_realloc (e->keys, sizeof (char *) * (size_t) (e->nargs + 1));
   e->keys[e->nargs] = key ? bson_strdup (key) : NULL;
   xadd (e, kid);
}

static bool
scope_has (const dj_vscope_t *s, const char *name, size_t n)
{
   for (; s; s = s->up) {
      if (strlen (s->name) == n && !strncmp (s->name, name, n)) {
         return true;
      }
   }
   return false;
}

static bool
valid_var_name (const char *s, size_t n, bool user)
{
   if (!n || (user && !islower ((unsigned char) s[0]) && !((unsigned char) s[0] >= 0x80))) {
      return false;
   }
   for (size_t i = 0; i < n; i++) {
      if (!isalnum ((unsigned char) s[i]) && s[i] != '_' && (unsigned char) s[i] < 0x80) {
         return false;
      }
   }
   return true;
}

static dj_expr_t *parse (const bson_value_t *v, const dj_vscope_t *scope, bson_error_t *error);

/* Parses v and appends it to e's arguments: false when it fails to parse. */
static bool
xadd_one (dj_expr_t *e, const bson_value_t *v, const dj_vscope_t *scope, bson_error_t *error)
{
   dj_expr_t *k = parse (v, scope, error);
   if (!k) {
      return false;
   }
   xadd (e, k);
   return true;
}

/* e with v parsed into its arguments: each element of an array, anything
 * else as the one argument. NULL (e destroyed) when one fails to parse. */
static dj_expr_t *
xadd_parsed (dj_expr_t *e, const bson_value_t *v, const dj_vscope_t *scope, bson_error_t *error)
{
   if (v->value_type != BSON_TYPE_ARRAY) {
      return xadd_one (e, v, scope, error) ? e : xdrop (e);
   }
   bson_iter_t it;
   x_iter (&it, v);
   while (bson_iter_next (&it)) {
      if (!xadd_one (e, bson_iter_value (&it), scope, error)) {
         return xdrop (e);
      }
   }
   return e;
}

static bool
parse_path_tail (dj_expr_t *e, const char *p, size_t n, bson_error_t *error)
{
   if (n == 0) {
      return true;
   }
   if (!dj_path_init (&e->path, p, n, error)) {
      return dj_err (error, 15998, "FieldPath field names may not be empty strings.");
   }
   for (int i = 0; i < e->path.n; i++) {
      if (e->path.parts[i][0] == '$') {
         return dj_err (error, 16410, "FieldPath field names may not start with '$'. Consider using $getField or $setField.");
      }
   }
   return true;
}

static dj_expr_t *
parse_string (const bson_value_t *v, const dj_vscope_t *scope, bson_error_t *error)
{
   const char *s = v->value.v_utf8.str;
   size_t n = v->value.v_utf8.len;
   dj_expr_t *e;

   if (n == 0 || s[0] != '$') {
      e = xnew (X_CONST);
      bson_value_copy (v, &e->val);
      return e;
   }
   if (n == 1) {
      dj_err (error, 16872, "'$' by itself is not a valid FieldPath");
      return NULL;
   }
   if (s[1] != '$') {
      e = xnew (X_FIELD);
      if (!parse_path_tail (e, s + 1, n - 1, error)) {
         return xdrop (e);
      }
      return e;
   }
   const char *name = s + 2;
   size_t nl = strcspn (name, ".");
   if (!valid_var_name (name, nl, false)) {
      dj_err (error, 16870, "'%s' starts with an invalid character for a user variable name", s);
      return NULL;
   }
   static const char *const builtins[] = {"ROOT", "CURRENT", "REMOVE", "NOW", "CLUSTER_TIME", NULL};
   bool known = scope_has (scope, name, nl);
   for (int i = 0; builtins[i] && !known; i++) {
      known = strlen (builtins[i]) == nl && !strncmp (builtins[i], name, nl);
   }
   if (!known) {
      dj_err (error, 17276, "Use of undefined variable: %.*s", (int) nl, name);
      return NULL;
   }
   e = xnew (X_VAR);
   e->var = bson_strndup (name, nl);
   if (name[nl] == '.' && !parse_path_tail (e, name + nl + 1, n - 2 - nl - 1, error)) {
      return xdrop (e);
   }
   return e;
}

static const struct opdef *
find_op (const char *name)
{
   for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
      if (!strcmp (ops[i].name, name)) {
         return &ops[i];
      }
   }
   return NULL;
}

static dj_expr_t *
parse_named (const struct opdef *op, const bson_value_t *arg, const dj_vscope_t *scope, bson_error_t *error)
{
   int nnamed = 0;
   while (op->named[nnamed]) {
      nnamed++;
   }
   dj_expr_t *e = xnew (X_OP);
   e->op = op;
   e->args = bson_malloc0 (sizeof (dj_expr_t *) * (size_t) nnamed);
   e->nargs = nnamed;
   bson_iter_t it;
   x_iter (&it, arg);
   /* $filter/$map/$reduce bind a name for their inner expressions */
   dj_vscope_t inner = {.name = NULL, .up = scope}, inner2 = {.name = "value", .up = NULL};
   const dj_vscope_t *kid_scope = scope;
   bool filter_map = op->fn == op_filter_map, reduce = op->fn == op_reduce;
   if (filter_map) {
      bson_iter_t ai;
      inner.name = "this";
      x_iter (&ai, arg);
      if (bson_iter_find (&ai, "as")) {
         if (!BSON_ITER_HOLDS_UTF8 (&ai) || !valid_var_name (bson_iter_utf8 (&ai, NULL), strlen (bson_iter_utf8 (&ai, NULL)), true)) {
            dj_err (error, 16866, "invalid parameter: 'as' must be a valid variable name");
            return xdrop (e);
         }
         e->as = bson_strdup (bson_iter_utf8 (&ai, NULL));
         inner.name = e->as;
      } else {
         e->as = bson_strdup ("this");
      }
   } else if (reduce) {
      inner.name = "this";
      inner2.up = &inner;
   }
   while (bson_iter_next (&it)) {
      const char *k = bson_iter_key (&it);
      int slot = -1;
      for (int i = 0; i < nnamed; i++) {
         if (!strcmp (op->named[i], k)) {
            slot = i;
         }
      }
      if (slot < 0) {
         dj_err (error, 28647, "Unrecognized parameter to %s: %s", op->name, k);
         return xdrop (e);
      }
      if (filter_map && !strcmp (k, "as")) {
         continue;
      }
      kid_scope = scope;
      if (filter_map && !strcmp (k, op->aux == AR_FILTER ? "cond" : "in")) {
         kid_scope = &inner;
      } else if (reduce && !strcmp (k, "in")) {
         kid_scope = &inner2;
      }
      /* a parameter given twice: the last one counts, as in MongoDB's parsers
       * (each keeps the last element it saw for a name) */
      dj_expr_destroy (e->args[slot]);
      e->args[slot] = parse (bson_iter_value (&it), kid_scope, error);
      if (!e->args[slot]) {
         return xdrop (e);
      }
   }
   for (int i = 0; i < op->required; i++) {
      if (!e->args[i]) {
         dj_err (error, 2, "Missing '%s' parameter to %s", op->named[i], op->name);
         return xdrop (e);
      }
   }
   return e;
}

static dj_expr_t *
parse_literal (const struct opdef *op, const bson_value_t *arg, const dj_vscope_t *scope, bson_error_t *error)
{
   (void) op, (void) scope, (void) error;
   dj_expr_t *e = xnew (X_CONST);
   bson_value_copy (arg, &e->val);
   return e;
}

/* {$meta: "name"}: a document's metadata. The text score is the one this
 * engine gives (storage/text_scan.c puts it beside the document as
 * DJ_META_TEXT_SCORE); the other names parse and read as missing.
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/meta/ */
static dj_expr_t *
parse_meta (const struct opdef *op, const bson_value_t *arg, const dj_vscope_t *scope, bson_error_t *error)
{
   static const char *const names[] = {"textScore", "indexKey", "randVal", "recordId", "searchScore", "searchHighlights",
                                       "searchScoreDetails", "searchSequenceToken", "geoNearDistance", "geoNearPoint",
                                       "sortKey", "vectorSearchScore", "score", "scoreDetails", NULL};
   (void) scope;
   for (int i = 0; arg->value_type == BSON_TYPE_UTF8 && names[i]; i++) {
      if (!strcmp (arg->value.v_utf8.str, names[i])) {
         dj_expr_t *e = xnew (X_OP);
         e->op = op;
         e->var = bson_strdup (names[i]); /* owned: the metadata's name */
         return e;
      }
   }
   dj_err (error, 17308, "Unsupported argument to $meta: %s",
           arg->value_type == BSON_TYPE_UTF8 ? arg->value.v_utf8.str : dj_type_name (arg->value_type));
   return NULL;
}

static bool
op_meta (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   (void) v;
   bson_iter_t it;
   *out = MISSING;
   if (strcmp (e->var, "textScore")) {
      return true;
   }
   if (ev->root.value_type == BSON_TYPE_DOCUMENT &&
       bson_iter_init_from_data (&it, ev->root.value.v_doc.data, ev->root.value.v_doc.data_len) &&
       bson_iter_find (&it, DJ_META_TEXT_SCORE)) {
      if (BSON_ITER_HOLDS_DOUBLE (&it)) { /* null: a document without one (storage/text_or.c), missing */
         *out = *bson_iter_value (&it);
      }
      return true;
   }
   return dj_err (ev->error, 40218, "query requires text score metadata, but it is not available");
}

/* {$let: {vars: {name: expr, ...}, in: expr}}: args are the variables then the body */
static dj_expr_t *
parse_let (const struct opdef *op, const bson_value_t *arg, const dj_vscope_t *scope, bson_error_t *error)
{
   dj_expr_t *e;
   bson_iter_t it, vi;
   bson_value_t in_v;
   const bson_value_t *in = NULL;
   if (arg->value_type != BSON_TYPE_DOCUMENT) {
      dj_err (error, 16874, "$let only supports an object as its argument");
      return NULL;
   }
   e = xnew (X_OP);
   e->op = op;
   e->keys = NULL;
   x_iter (&it, arg);
   bool have_vars = false;
   while (bson_iter_next (&it)) {
      if (!strcmp (bson_iter_key (&it), "vars") && BSON_ITER_HOLDS_DOCUMENT (&it)) {
         have_vars = true;
         bson_iter_recurse (&it, &vi);
         while (bson_iter_next (&vi)) {
            const char *vn = bson_iter_key (&vi);
            if (!valid_var_name (vn, strlen (vn), true)) {
               dj_err (error, 16867, "'%s' starts with an invalid character for a user variable name", vn);
               return xdrop (e);
            }
            dj_expr_t *ve = parse (bson_iter_value (&vi), scope, error);
            if (!ve) {
               return xdrop (e);
            }
            xadd_keyed (e, vn, ve);
         }
      } else if (!strcmp (bson_iter_key (&it), "in")) {
         in_v = *bson_iter_value (&it);
         in = &in_v;
      } else {
         dj_err (error, 16875, "Unrecognized parameter to $let: %s", bson_iter_key (&it));
         return xdrop (e);
      }
   }
   if (!have_vars || !in) {
      dj_err (error, have_vars ? 16877 : 16876, "Missing '%s' parameter to $let", have_vars ? "in" : "vars");
      return xdrop (e);
   }
   /* the body sees the new names */
   dj_vscope_t *sc = bson_malloc (sizeof (dj_vscope_t) * (size_t) (e->nargs ? e->nargs : 1));
   const dj_vscope_t *up = scope;
   for (int i = 0; i < e->nargs; i++) {
      sc[i].name = e->keys[i];
      sc[i].up = up;
      up = &sc[i];
   }
   dj_expr_t *body = parse (in, up, error);
   bson_free (sc);
   if (!body) {
      return xdrop (e);
   }
   xadd_keyed (e, NULL, body);
   return e;
}

/* {$switch: {branches: [{case, then}...], default}}: args are case, then, ..., default */
static dj_expr_t *
parse_switch (const struct opdef *op, const bson_value_t *arg, const dj_vscope_t *scope, bson_error_t *error)
{
   dj_expr_t *e;
   bson_iter_t it, bi;
   if (arg->value_type != BSON_TYPE_DOCUMENT) {
      dj_err (error, 40060, "$switch requires an object as an argument, found: %s", dj_type_name (arg->value_type));
      return NULL;
   }
   e = xnew (X_OP);
   e->op = op;
   dj_expr_t *dflt = NULL;
   bool have_branches = false;
   x_iter (&it, arg);
   while (bson_iter_next (&it)) {
      const char *k = bson_iter_key (&it);
      if (!strcmp (k, "branches")) {
         if (!BSON_ITER_HOLDS_ARRAY (&it)) {
            dj_err (error, 40061, "$switch expected an array for 'branches', found: %s", dj_type_name (bson_iter_type (&it)));
            goto switch_fail;
         }
         have_branches = true;
         bson_iter_recurse (&it, &bi);
         while (bson_iter_next (&bi)) {
            bson_iter_t ci;
            dj_expr_t *c = NULL, *t = NULL;
            if (!BSON_ITER_HOLDS_DOCUMENT (&bi)) {
               dj_err (error, 40062, "$switch expected each branch to be an object, found: %s", dj_type_name (bson_iter_type (&bi)));
               goto switch_fail;
            }
            bson_iter_recurse (&bi, &ci);
            while (bson_iter_next (&ci)) {
               /* a case or then given twice: the last counts (as for named parameters) */
               if (!strcmp (bson_iter_key (&ci), "case")) {
                  dj_expr_destroy (c);
                  c = parse (bson_iter_value (&ci), scope, error);
               } else if (!strcmp (bson_iter_key (&ci), "then")) {
                  dj_expr_destroy (t);
                  t = parse (bson_iter_value (&ci), scope, error);
               } else {
                  dj_err (error, 40063, "$switch found an unknown argument to a branch: %s", bson_iter_key (&ci));
               }
               if (error->code == 40063 || (!c && !strcmp (bson_iter_key (&ci), "case")) || (!t && !strcmp (bson_iter_key (&ci), "then"))) {
                  dj_expr_destroy (c);
                  dj_expr_destroy (t);
                  goto switch_fail;
               }
            }
            if (!c || !t) {
               dj_err (error, c ? 40065 : 40064, "$switch requires each branch have a '%s' expression", c ? "then" : "case");
               dj_expr_destroy (c);
               dj_expr_destroy (t);
               goto switch_fail;
            }
            xadd (e, c);
            xadd (e, t);
         }
      } else if (!strcmp (k, "default")) {
         dj_expr_destroy (dflt);
         dflt = parse (bson_iter_value (&it), scope, error);
         if (!dflt) {
            goto switch_fail;
         }
      } else {
         dj_err (error, 40067, "$switch found an unknown argument: %s", k);
         goto switch_fail;
      }
   }
   if (!have_branches || e->nargs == 0) {
      dj_err (error, 40068, "$switch requires at least one branch.");
      goto switch_fail;
   }
   xadd (e, dflt); /* last slot: default, may be NULL */
   return e;
switch_fail:
   dj_expr_destroy (dflt);
   return xdrop (e);
}

static dj_expr_t *
parse_op (const char *name, const bson_value_t *arg, const dj_vscope_t *scope, bson_error_t *error)
{
   const struct opdef *op = find_op (name);
   dj_expr_t *e;

   if (!op) {
      dj_err (error, 168, "Unrecognized expression '%s'", name);
      return NULL;
   }
   if (op->parse) {
      return op->parse (op, arg, scope, error);
   }
   /* object form for operators with named parameters */
   if (op->named && arg->value_type == BSON_TYPE_DOCUMENT) {
      bson_iter_t fi;
      x_iter (&fi, arg);
      bool looks_named = bson_iter_next (&fi) && bson_iter_key (&fi)[0] != '$';
      if (op->min < 0 || looks_named) {
         return parse_named (op, arg, scope, error);
      }
   }
   if (op->min < 0) {
      dj_err (error, 2, "%s only supports an object as its argument", op->name);
      return NULL;
   }
   e = xnew (X_OP);
   e->op = op;
   e->positional = true;
   if (op->max == 0 && arg->value_type == BSON_TYPE_DOCUMENT && arg->value.v_doc.data_len == 5) {
      return e; /* {$rand: {}}: MongoDB's way of passing no arguments */
   }
   if (!xadd_parsed (e, arg, scope, error)) {
      return NULL;
   }
   if (e->nargs < op->min || (op->max != ANY && e->nargs > op->max)) {
      if (op->min == op->max) {
         dj_err (error, 16020, "Expression %s takes exactly %d arguments. %d were passed in.", op->name, op->min, e->nargs);
      } else {
         dj_err (error, 16020, "Expression %s takes at least %d arguments, and at most %d, but %d were passed in.", op->name,
                 op->min, op->max, e->nargs);
      }
      return xdrop (e);
   }
   return e;
}

static dj_expr_t *
parse (const bson_value_t *v, const dj_vscope_t *scope, bson_error_t *error)
{
   dj_expr_t *e;
   bson_iter_t it;

   switch (v->value_type) {
   case BSON_TYPE_UTF8: return parse_string (v, scope, error);
   case BSON_TYPE_ARRAY: return xadd_parsed (xnew (X_ARRAY), v, scope, error);
   case BSON_TYPE_DOCUMENT: {
      x_iter (&it, v);
      if (bson_iter_next (&it) && bson_iter_key (&it)[0] == '$') {
         const char *name = bson_iter_key (&it);
         bson_value_t argv = *bson_iter_value (&it);
         const bson_value_t *arg = &argv;
         if (bson_iter_next (&it)) {
            dj_err (error, 15983, "An object representing an expression must have exactly one field");
            return NULL;
         }
         return parse_op (name, arg, scope, error);
      }
      e = xnew (X_OBJECT);
      x_iter (&it, v);
      while (bson_iter_next (&it)) {
         const char *k = bson_iter_key (&it);
         if (k[0] == '$') {
            dj_err (error, 16410, "FieldPath field names may not start with '$'. Consider using $getField or $setField.");
            return xdrop (e);
         }
         if (strchr (k, '.')) {
            dj_err (error, 16412, "FieldPath field names may not contain '.'. Consider using $getField or $setField.");
            return xdrop (e);
         }
         dj_expr_t *kid = parse (bson_iter_value (&it), scope, error);
         if (!kid) {
            return xdrop (e);
         }
         xadd_keyed (e, k, kid);
      }
      return e;
   }
   default:
      e = xnew (X_CONST);
      bson_value_copy (v, &e->val);
      return e;
   }
}

dj_expr_t *
dj_expr_parse (const bson_value_t *spec, const dj_vscope_t *scope, bson_error_t *error)
{
   return parse (spec, scope, error);
}

dj_expr_t *
dj_expr_parse_object (const bson_t *spec, const dj_vscope_t *scope, bson_error_t *error)
{
   bson_value_t v;
   dj_value_from_doc (spec, false, &v);
   return parse (&v, scope, error);
}

/* ---- evaluation helpers ---------------------------------------------------- */

void
dj_eval_init (dj_eval_t *ev, dj_arena_t *arena, const bson_t *doc, int64_t now_ms, bson_error_t *error)
{
   ev->arena = arena;
   if (doc) {
      dj_value_from_doc (doc, false, &ev->root);
   } else {
      ev->root.value_type = BSON_TYPE_DOCUMENT;
      static const uint8_t empty[5] = {5, 0, 0, 0, 0};
      ev->root.value.v_doc.data = (uint8_t *) empty;
      ev->root.value.v_doc.data_len = 5;
   }
   ev->current = ev->root;
   ev->nvars = 0;
   ev->now_ms = now_ms;
   ev->error = error;
}

void
dj_eval_init_vars (dj_eval_t *ev, dj_arena_t *arena, const bson_t *doc, const dj_eval_t *vars, int64_t now_ms,
                   bson_error_t *error)
{
   dj_eval_init (ev, arena, doc, now_ms, error);
   if (vars) {
      memcpy (ev->vars, vars->vars, sizeof (ev->vars[0]) * (size_t) vars->nvars);
      ev->nvars = vars->nvars;
   }
}

bool
dj_value_truthy (const bson_value_t *v)
{
   switch (v->value_type) {
   case BSON_TYPE_EOD:
   case BSON_TYPE_NULL:
   case BSON_TYPE_UNDEFINED: return false;
   case BSON_TYPE_BOOL: return v->value.v_bool;
   case BSON_TYPE_INT32: return v->value.v_int32 != 0;
   case BSON_TYPE_INT64: return v->value.v_int64 != 0;
   case BSON_TYPE_DOUBLE: return v->value.v_double != 0;
   case BSON_TYPE_DECIMAL128: {
      bson_value_t zero = {.value_type = BSON_TYPE_INT32};
      return dj_number_cmp (v, &zero) != 0;
   }
   default: return true;
   }
}

int
dj_expr_cmp (const bson_value_t *a, const bson_value_t *b)
{
   bool ma = a->value_type == BSON_TYPE_EOD, mb = b->value_type == BSON_TYPE_EOD;
   if (ma || mb) {
      return mb - ma;
   }
   return dj_value_cmp (a, b);
}

bool
x_fail (dj_eval_t *ev, uint32_t code, const char *fmt, ...)
{
   va_list ap;
   va_start (ap, fmt);
   if (ev->error) {
      ev->error->domain = DJ_DOMAIN_SERVER;
      ev->error->code = code;
      vsnprintf (ev->error->message, sizeof ev->error->message, fmt, ap);
   }
   va_end (ap);
   return false;
}

/* Field paths in expressions: through documents, and through arrays by
 * mapping ("$a.b" over a: [{b: 1}, {b: 2}] is [1, 2]; elements without b
 * are left out). */
static void
path_get (dj_eval_t *ev, const bson_value_t *v, const dj_path_t *p, int i, bson_value_t *out)
{
   if (i == p->n) {
      *out = *v;
      return;
   }
   if (v->value_type == BSON_TYPE_DOCUMENT) {
      bson_value_t child;
      if (!dj_value_get_field (v, p->parts[i], &child)) {
         *out = MISSING;
         return;
      }
      path_get (ev, &child, p, i + 1, out);
      return;
   }
   if (v->value_type == BSON_TYPE_ARRAY) {
      vlist_t l = x_list (ev, v);
      for (uint32_t j = 0; j < l.n; j++) {
         bson_value_t sub = MISSING;
         if (l.v[j].value_type == BSON_TYPE_DOCUMENT || l.v[j].value_type == BSON_TYPE_ARRAY) {
            path_get (ev, &l.v[j], p, i, &sub);
         }
         l.v[j] = sub;
      }
      x_list_value (ev, l.v, l.n, out); /* the missing left out */
      return;
   }
   *out = MISSING;
}

static bool
lookup_var (dj_eval_t *ev, const char *name, bson_value_t *out)
{
   for (int i = ev->nvars - 1; i >= 0; i--) {
      if (!strcmp (ev->vars[i].name, name)) {
         *out = ev->vars[i].value;
         return true;
      }
   }
   if (!strcmp (name, "ROOT")) {
      *out = ev->root;
   } else if (!strcmp (name, "CURRENT")) {
      *out = ev->current;
   } else if (!strcmp (name, "REMOVE")) {
      *out = MISSING;
   } else if (!strcmp (name, "NOW")) {
      out->value_type = BSON_TYPE_DATE_TIME;
      out->value.v_datetime = ev->now_ms;
   } else if (!strcmp (name, "CLUSTER_TIME")) {
      out->value_type = BSON_TYPE_TIMESTAMP;
      out->value.v_timestamp.timestamp = (uint32_t) (ev->now_ms / 1000);
      out->value.v_timestamp.increment = 1;
   } else {
      return x_fail (ev, 17276, "Use of undefined variable: %s", name);
   }
   return true;
}

bool
x_push_var (dj_eval_t *ev, const char *name, const bson_value_t *v)
{
   if (ev->nvars == DJ_MAX_VARS) {
      return x_fail (ev, 2, "too many nested variables (limit %d)", DJ_MAX_VARS);
   }
   ev->vars[ev->nvars].name = name;
   ev->vars[ev->nvars].value = *v;
   ev->nvars++;
   return true;
}

vlist_t
x_list (dj_eval_t *ev, const bson_value_t *arr)
{
   bson_iter_t it;
   uint32_t n = 0;
   vlist_t l;
   x_iter (&it, arr);
   while (bson_iter_next (&it)) {
      n++;
   }
   l.v = dj_arena_alloc (ev->arena, sizeof (bson_value_t) * (n ? n : 1));
   l.n = 0;
   x_iter (&it, arr);
   while (bson_iter_next (&it)) {
      l.v[l.n++] = *bson_iter_value (&it);
   }
   return l;
}

bool
x_doc_value (dj_eval_t *ev, bson_t *doc, bool is_array, bson_value_t *out)
{
   dj_arena_value (ev->arena, doc, is_array, out);
   bson_destroy (doc);
   return true;
}

void
x_list_value (dj_eval_t *ev, const bson_value_t *vals, uint32_t n, bson_value_t *out)
{
   bson_t arr = BSON_INITIALIZER;
   char buf[16];
   uint32_t k = 0;
   for (uint32_t i = 0; i < n; i++) {
      if (vals[i].value_type != BSON_TYPE_EOD) {
         bson_append_value (&arr, dj_array_key (k++, buf), -1, &vals[i]);
      }
   }
   x_doc_value (ev, &arr, true, out);
}

vlist_t
x_acc_inputs (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v)
{
   if (e->nargs == 1 && v[0].value_type == BSON_TYPE_ARRAY) {
      return x_list (ev, &v[0]);
   }
   return (vlist_t){.v = v, .n = (uint32_t) e->nargs};
}

bool
x_arg (const dj_expr_t *e, int i, dj_eval_t *ev, bson_value_t *out)
{
   if (i >= e->nargs || !e->args[i]) {
      *out = MISSING;
      return true;
   }
   return x_eval (e->args[i], ev, out);
}

/* ---- the evaluator ---------------------------------------------------------- */

static bool
eval_object (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *out)
{
   bson_t doc = BSON_INITIALIZER;
   for (int i = 0; i < e->nargs; i++) {
      bson_value_t v;
      if (!x_eval (e->args[i], ev, &v)) {
         bson_destroy (&doc);
         return false;
      }
      if (v.value_type != BSON_TYPE_EOD) {
         bson_append_value (&doc, e->keys[i], -1, &v);
      }
   }
   return x_doc_value (ev, &doc, false, out);
}

/* missing elements become null in array literals */
static bool
eval_array_lit (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *out)
{
   bson_value_t *v = dj_arena_alloc (ev->arena, sizeof (bson_value_t) * (size_t) (e->nargs ? e->nargs : 1));
   for (int i = 0; i < e->nargs; i++) {
      if (!x_eval (e->args[i], ev, &v[i])) {
         return false;
      }
      if (v[i].value_type == BSON_TYPE_EOD) {
         set_null (&v[i]);
      }
   }
   x_list_value (ev, v, (uint32_t) e->nargs, out);
   return true;
}

/* ---- comparison, boolean and conditional operators ------------------------ */

static bool
op_cmp (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   (void) ev;
   int r = dj_expr_cmp (&v[0], &v[1]);
   switch (e->op->aux) {
   case C_EQ: set_bool (out, r == 0); break;
   case C_NE: set_bool (out, r != 0); break;
   case C_GT: set_bool (out, r > 0); break;
   case C_GTE: set_bool (out, r >= 0); break;
   case C_LT: set_bool (out, r < 0); break;
   case C_LTE: set_bool (out, r <= 0); break;
   default: set_int (out, r < 0 ? -1 : r > 0); break;
   }
   return true;
}

/* $and / $or: stop at the first argument that decides */
static bool
op_and_or (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   (void) v;
   bool is_and = e->op->aux == C_AND;
   bson_value_t a;
   for (int i = 0; i < e->nargs; i++) {
      if (!x_eval (e->args[i], ev, &a)) {
         return false;
      }
      if (dj_value_truthy (&a) != is_and) {
         set_bool (out, !is_and);
         return true;
      }
   }
   set_bool (out, is_and);
   return true;
}

static bool
op_not (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   (void) e, (void) ev;
   set_bool (out, !dj_value_truthy (&v[0]));
   return true;
}

/* if (evaluated), then, else */
static bool
op_cond (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   return x_arg (e, dj_value_truthy (&v[0]) ? 1 : 2, ev, out);
}

static bool
op_ifnull (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   (void) v;
   bson_value_t a;
   for (int i = 0; i < e->nargs; i++) {
      if (!x_eval (e->args[i], ev, &a)) {
         return false;
      }
      if (!nullish (&a) || i == e->nargs - 1) {
         *out = a;
         return true;
      }
   }
   return true;
}

/* args: case, then, case, then, ..., default (may be NULL) */
static bool
op_switch (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   (void) v;
   bson_value_t a;
   for (int i = 0; i + 1 < e->nargs; i += 2) {
      if (!x_eval (e->args[i], ev, &a)) {
         return false;
      }
      if (dj_value_truthy (&a)) {
         return x_eval (e->args[i + 1], ev, out);
      }
   }
   if (!e->args[e->nargs - 1]) {
      return x_fail (ev, 40066, "$switch could not find a matching branch for an input, and no default was specified.");
   }
   return x_eval (e->args[e->nargs - 1], ev, out);
}

/* args: the variables' expressions (names in keys), then the body */
static bool
op_let (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   (void) v;
   int nv = e->nargs - 1;
   bson_value_t *vals = dj_arena_alloc (ev->arena, sizeof (bson_value_t) * (size_t) (nv ? nv : 1));
   for (int i = 0; i < nv; i++) {
      if (!x_eval (e->args[i], ev, &vals[i])) {
         return false;
      }
   }
   int saved = ev->nvars;
   for (int i = 0; i < nv; i++) {
      if (!x_push_var (ev, e->keys[i], &vals[i])) {
         ev->nvars = saved;
         return false;
      }
   }
   bool ok = x_eval (e->args[nv], ev, out);
   ev->nvars = saved;
   return ok;
}

/* ---- evaluation ------------------------------------------------------------ */

static bool
has_type (uint32_t types, const bson_value_t *v)
{
   return (unsigned) v->value_type < 32 && (types >> v->value_type & 1);
}

/* The shared prologue: the row's argument rule, then its function. */
static bool
eval_op (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *out)
{
   const struct opdef *op = e->op;
   if (op->args == LAZY) {
      return op->fn (e, ev, NULL, out);
   }
   int n = e->nargs;
   if (op->max != ANY && op->max > n) {
      n = op->max; /* optional positional arguments: missing */
   }
   if (op->eval && op->eval < n) {
      n = op->eval;
   }
   bson_value_t few[8];
   bson_value_t *v = n <= 8 ? few : dj_arena_alloc (ev->arena, sizeof (bson_value_t) * (size_t) n);
   for (int i = 0; i < n; i++) {
      if (!x_arg (e, i, ev, &v[i])) {
         return false;
      }
   }
   switch (op->args) {
   case NULL1:
   case EMPTY1:
      if (nullish (&v[0])) {
         if (op->args == EMPTY1) {
            x_str (ev->arena, "", 0, out);
         } else {
            set_null (out);
         }
         return true;
      }
      break;
   case NULL_ANY:
      for (int i = 0; i < n && i < e->nargs; i++) {
         if (e->args[i] && nullish (&v[i])) {
            set_null (out);
            return true;
         }
      }
      break;
   default: break;
   }
   if (op->types && !has_type (op->types, &v[0])) {
      return x_fail (ev, op->code, op->msg, op->name, tname (&v[0]));
   }
   return op->fn (e, ev, v, out);
}


bool
x_eval (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *out)
{
   switch (e->kind) {
   case X_CONST: *out = e->val; return true;
   case X_FIELD: path_get (ev, &ev->current, &e->path, 0, out); return true;
   case X_VAR: {
      bson_value_t base;
      if (!lookup_var (ev, e->var, &base)) {
         return false;
      }
      path_get (ev, &base, &e->path, 0, out);
      return true;
   }
   case X_OBJECT: return eval_object (e, ev, out);
   case X_ARRAY: return eval_array_lit (e, ev, out);
   case X_OP: return eval_op (e, ev, out);
   }
   return false;
}

bool
dj_expr_eval (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *out)
{
   return x_eval (e, ev, out);
}
