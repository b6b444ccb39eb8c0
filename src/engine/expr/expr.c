/*
 * expr.c -- the aggregation expression language.
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
 */
#include "dj_date.h"
#include "dj_expr.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <pcre2.h>
#include <stdio.h>
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

static void
arena_str (dj_arena_t *a, const char *s, size_t n, bson_value_t *out)
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

/* ---- operators ------------------------------------------------------------ */

enum {
   XO_ADD, XO_SUBTRACT, XO_MULTIPLY, XO_DIVIDE, XO_MOD, XO_POW, XO_ABS, XO_CEIL, XO_FLOOR, XO_ROUND, XO_TRUNC, XO_SQRT, XO_EXP,
   XO_LN, XO_LOG, XO_LOG10,
   XO_EQ, XO_NE, XO_GT, XO_GTE, XO_LT, XO_LTE, XO_CMP,
   XO_AND, XO_OR, XO_NOT,
   XO_COND, XO_IFNULL, XO_SWITCH,
   XO_TYPE, XO_CONVERT, XO_TOSTRING, XO_TOINT, XO_TOLONG, XO_TODOUBLE, XO_TODECIMAL, XO_TOBOOL, XO_TODATE, XO_TOOBJECTID,
   XO_ISNUMBER, XO_ISARRAY,
   XO_CONCAT, XO_SUBSTRCP, XO_SUBSTRBYTES, XO_STRLENCP, XO_STRLENBYTES, XO_INDEXOFCP, XO_INDEXOFBYTES, XO_TOLOWER, XO_TOUPPER,
   XO_TRIM, XO_LTRIM, XO_RTRIM, XO_SPLIT, XO_REPLACEONE, XO_REPLACEALL, XO_REGEXMATCH, XO_REGEXFIND, XO_REGEXFINDALL,
   XO_STRCASECMP,
   XO_YEAR, XO_MONTH, XO_DAYOFMONTH, XO_DAYOFWEEK, XO_DAYOFYEAR, XO_HOUR, XO_MINUTE, XO_SECOND, XO_MILLISECOND, XO_WEEK,
   XO_ISOWEEK, XO_ISOWEEKYEAR, XO_ISODAYOFWEEK, XO_DATETOSTRING, XO_DATEFROMSTRING, XO_DATETRUNC, XO_DATEADD,
   XO_DATESUBTRACT, XO_DATEDIFF, XO_DATEFROMPARTS, XO_DATETOPARTS,
   XO_ARRAYELEMAT, XO_FIRST, XO_LAST, XO_SIZE, XO_SLICE, XO_FILTER, XO_MAP, XO_REDUCE, XO_RANGE, XO_REVERSEARRAY, XO_IN,
   XO_INDEXOFARRAY, XO_CONCATARRAYS, XO_SORTARRAY, XO_ZIP, XO_ARRAYTOOBJECT, XO_OBJECTTOARRAY,
   XO_SETEQUALS, XO_SETINTERSECTION, XO_SETUNION, XO_SETDIFFERENCE, XO_SETISSUBSET, XO_ANYELEMENTTRUE, XO_ALLELEMENTSTRUE,
   XO_MERGEOBJECTS, XO_GETFIELD, XO_SETFIELD, XO_UNSETFIELD,
   XO_SIN, XO_COS, XO_TAN, XO_ASIN, XO_ACOS, XO_ATAN, XO_ATAN2, XO_SINH, XO_COSH, XO_TANH, XO_ASINH, XO_ACOSH, XO_ATANH,
   XO_DEG2RAD, XO_RAD2DEG,
   XO_BITAND, XO_BITOR, XO_BITXOR, XO_BITNOT,
   XO_LITERAL, XO_LET, XO_RAND, XO_SUM, XO_AVG, XO_MIN, XO_MAX, XO_STDDEVPOP, XO_STDDEVSAMP
};

#define NAMED(...) ((const char *const[]){__VA_ARGS__, NULL})
#define ANY 1000

static const struct opdef {
   const char *name;
   int id;
   int min, max;             /* positional arity */
   const char *const *named; /* object-form parameters, NULL if positional only */
   int required;             /* how many leading named parameters are required */
} ops[] = {
   {"$add", XO_ADD, 0, ANY},
   {"$subtract", XO_SUBTRACT, 2, 2},
   {"$multiply", XO_MULTIPLY, 0, ANY},
   {"$divide", XO_DIVIDE, 2, 2},
   {"$mod", XO_MOD, 2, 2},
   {"$pow", XO_POW, 2, 2},
   {"$abs", XO_ABS, 1, 1},
   {"$ceil", XO_CEIL, 1, 1},
   {"$floor", XO_FLOOR, 1, 1},
   {"$round", XO_ROUND, 1, 2},
   {"$trunc", XO_TRUNC, 1, 2},
   {"$sqrt", XO_SQRT, 1, 1},
   {"$exp", XO_EXP, 1, 1},
   {"$ln", XO_LN, 1, 1},
   {"$log", XO_LOG, 2, 2},
   {"$log10", XO_LOG10, 1, 1},
   {"$eq", XO_EQ, 2, 2},
   {"$ne", XO_NE, 2, 2},
   {"$gt", XO_GT, 2, 2},
   {"$gte", XO_GTE, 2, 2},
   {"$lt", XO_LT, 2, 2},
   {"$lte", XO_LTE, 2, 2},
   {"$cmp", XO_CMP, 2, 2},
   {"$and", XO_AND, 0, ANY},
   {"$or", XO_OR, 0, ANY},
   {"$not", XO_NOT, 1, 1},
   {"$cond", XO_COND, 3, 3, NAMED ("if", "then", "else"), 3},
   {"$ifNull", XO_IFNULL, 2, ANY},
   {"$switch", XO_SWITCH, -1, -1}, /* parsed by hand */
   {"$type", XO_TYPE, 1, 1},
   {"$convert", XO_CONVERT, -1, -1, NAMED ("input", "to", "onError", "onNull"), 2},
   {"$toString", XO_TOSTRING, 1, 1},
   {"$toInt", XO_TOINT, 1, 1},
   {"$toLong", XO_TOLONG, 1, 1},
   {"$toDouble", XO_TODOUBLE, 1, 1},
   {"$toDecimal", XO_TODECIMAL, 1, 1},
   {"$toBool", XO_TOBOOL, 1, 1},
   {"$toDate", XO_TODATE, 1, 1},
   {"$toObjectId", XO_TOOBJECTID, 1, 1},
   {"$isNumber", XO_ISNUMBER, 1, 1},
   {"$isArray", XO_ISARRAY, 1, 1},
   {"$concat", XO_CONCAT, 0, ANY},
   {"$substrCP", XO_SUBSTRCP, 3, 3},
   {"$substrBytes", XO_SUBSTRBYTES, 3, 3},
   {"$substr", XO_SUBSTRBYTES, 3, 3},
   {"$strLenCP", XO_STRLENCP, 1, 1},
   {"$strLenBytes", XO_STRLENBYTES, 1, 1},
   {"$indexOfCP", XO_INDEXOFCP, 2, 4},
   {"$indexOfBytes", XO_INDEXOFBYTES, 2, 4},
   {"$toLower", XO_TOLOWER, 1, 1},
   {"$toUpper", XO_TOUPPER, 1, 1},
   {"$trim", XO_TRIM, -1, -1, NAMED ("input", "chars"), 1},
   {"$ltrim", XO_LTRIM, -1, -1, NAMED ("input", "chars"), 1},
   {"$rtrim", XO_RTRIM, -1, -1, NAMED ("input", "chars"), 1},
   {"$split", XO_SPLIT, 2, 2},
   {"$replaceOne", XO_REPLACEONE, -1, -1, NAMED ("input", "find", "replacement"), 3},
   {"$replaceAll", XO_REPLACEALL, -1, -1, NAMED ("input", "find", "replacement"), 3},
   {"$regexMatch", XO_REGEXMATCH, -1, -1, NAMED ("input", "regex", "options"), 2},
   {"$regexFind", XO_REGEXFIND, -1, -1, NAMED ("input", "regex", "options"), 2},
   {"$regexFindAll", XO_REGEXFINDALL, -1, -1, NAMED ("input", "regex", "options"), 2},
   {"$strcasecmp", XO_STRCASECMP, 2, 2},
   {"$year", XO_YEAR, 1, 1, NAMED ("date", "timezone"), 1},
   {"$month", XO_MONTH, 1, 1, NAMED ("date", "timezone"), 1},
   {"$dayOfMonth", XO_DAYOFMONTH, 1, 1, NAMED ("date", "timezone"), 1},
   {"$dayOfWeek", XO_DAYOFWEEK, 1, 1, NAMED ("date", "timezone"), 1},
   {"$dayOfYear", XO_DAYOFYEAR, 1, 1, NAMED ("date", "timezone"), 1},
   {"$hour", XO_HOUR, 1, 1, NAMED ("date", "timezone"), 1},
   {"$minute", XO_MINUTE, 1, 1, NAMED ("date", "timezone"), 1},
   {"$second", XO_SECOND, 1, 1, NAMED ("date", "timezone"), 1},
   {"$millisecond", XO_MILLISECOND, 1, 1, NAMED ("date", "timezone"), 1},
   {"$week", XO_WEEK, 1, 1, NAMED ("date", "timezone"), 1},
   {"$isoWeek", XO_ISOWEEK, 1, 1, NAMED ("date", "timezone"), 1},
   {"$isoWeekYear", XO_ISOWEEKYEAR, 1, 1, NAMED ("date", "timezone"), 1},
   {"$isoDayOfWeek", XO_ISODAYOFWEEK, 1, 1, NAMED ("date", "timezone"), 1},
   {"$dateToString", XO_DATETOSTRING, -1, -1, NAMED ("date", "format", "timezone", "onNull"), 1},
   {"$dateFromString", XO_DATEFROMSTRING, -1, -1, NAMED ("dateString", "format", "timezone", "onError", "onNull"), 1},
   {"$dateTrunc", XO_DATETRUNC, -1, -1, NAMED ("date", "unit", "binSize", "timezone", "startOfWeek"), 2},
   {"$dateAdd", XO_DATEADD, -1, -1, NAMED ("startDate", "unit", "amount", "timezone"), 3},
   {"$dateSubtract", XO_DATESUBTRACT, -1, -1, NAMED ("startDate", "unit", "amount", "timezone"), 3},
   {"$dateDiff", XO_DATEDIFF, -1, -1, NAMED ("startDate", "endDate", "unit", "timezone", "startOfWeek"), 3},
   {"$dateFromParts", XO_DATEFROMPARTS, -1, -1,
    NAMED ("year", "month", "day", "hour", "minute", "second", "millisecond", "timezone", "isoWeekYear", "isoWeek",
           "isoDayOfWeek"),
    0},
   {"$dateToParts", XO_DATETOPARTS, -1, -1, NAMED ("date", "timezone", "iso8601"), 1},
   {"$arrayElemAt", XO_ARRAYELEMAT, 2, 2},
   {"$first", XO_FIRST, 1, 1},
   {"$last", XO_LAST, 1, 1},
   {"$size", XO_SIZE, 1, 1},
   {"$slice", XO_SLICE, 2, 3},
   {"$filter", XO_FILTER, -1, -1, NAMED ("input", "cond", "as", "limit"), 2},
   {"$map", XO_MAP, -1, -1, NAMED ("input", "in", "as"), 2},
   {"$reduce", XO_REDUCE, -1, -1, NAMED ("input", "initialValue", "in"), 3},
   {"$range", XO_RANGE, 2, 3},
   {"$reverseArray", XO_REVERSEARRAY, 1, 1},
   {"$in", XO_IN, 2, 2},
   {"$indexOfArray", XO_INDEXOFARRAY, 2, 4},
   {"$concatArrays", XO_CONCATARRAYS, 0, ANY},
   {"$sortArray", XO_SORTARRAY, -1, -1, NAMED ("input", "sortBy"), 2},
   {"$zip", XO_ZIP, -1, -1, NAMED ("inputs", "useLongestLength", "defaults"), 1},
   {"$arrayToObject", XO_ARRAYTOOBJECT, 1, 1},
   {"$objectToArray", XO_OBJECTTOARRAY, 1, 1},
   {"$setEquals", XO_SETEQUALS, 2, ANY},
   {"$setIntersection", XO_SETINTERSECTION, 0, ANY},
   {"$setUnion", XO_SETUNION, 0, ANY},
   {"$setDifference", XO_SETDIFFERENCE, 2, 2},
   {"$setIsSubset", XO_SETISSUBSET, 2, 2},
   {"$anyElementTrue", XO_ANYELEMENTTRUE, 1, 1},
   {"$allElementsTrue", XO_ALLELEMENTSTRUE, 1, 1},
   {"$mergeObjects", XO_MERGEOBJECTS, 0, ANY},
   {"$getField", XO_GETFIELD, 1, 1, NAMED ("field", "input"), 1},
   {"$setField", XO_SETFIELD, -1, -1, NAMED ("field", "input", "value"), 3},
   {"$unsetField", XO_UNSETFIELD, -1, -1, NAMED ("field", "input"), 2},
   {"$sin", XO_SIN, 1, 1},
   {"$cos", XO_COS, 1, 1},
   {"$tan", XO_TAN, 1, 1},
   {"$asin", XO_ASIN, 1, 1},
   {"$acos", XO_ACOS, 1, 1},
   {"$atan", XO_ATAN, 1, 1},
   {"$atan2", XO_ATAN2, 2, 2},
   {"$sinh", XO_SINH, 1, 1},
   {"$cosh", XO_COSH, 1, 1},
   {"$tanh", XO_TANH, 1, 1},
   {"$asinh", XO_ASINH, 1, 1},
   {"$acosh", XO_ACOSH, 1, 1},
   {"$atanh", XO_ATANH, 1, 1},
   {"$degreesToRadians", XO_DEG2RAD, 1, 1},
   {"$radiansToDegrees", XO_RAD2DEG, 1, 1},
   {"$bitAnd", XO_BITAND, 0, ANY},
   {"$bitOr", XO_BITOR, 0, ANY},
   {"$bitXor", XO_BITXOR, 0, ANY},
   {"$bitNot", XO_BITNOT, 1, 1},
   {"$literal", XO_LITERAL, -1, -1},
   {"$let", XO_LET, -1, -1},
   {"$rand", XO_RAND, 0, 0},
   {"$sum", XO_SUM, 0, ANY},
   {"$avg", XO_AVG, 0, ANY},
   {"$min", XO_MIN, 0, ANY},
   {"$max", XO_MAX, 0, ANY},
   {"$stdDevPop", XO_STDDEVPOP, 0, ANY},
   {"$stdDevSamp", XO_STDDEVSAMP, 0, ANY},
};

typedef enum { X_CONST, X_FIELD, X_VAR, X_OBJECT, X_ARRAY, X_OP } xkind_t;

struct dj_expr {
   xkind_t kind;
   const struct opdef *op;
   bson_value_t val;  /* X_CONST: owned copy */
   char *var;         /* X_VAR: owned name */
   dj_path_t path;    /* X_FIELD, X_VAR: the path after the root */
   dj_expr_t **args;  /* owned; X_OBJECT fields, X_ARRAY elements, X_OP arguments (NULL where absent) */
   int nargs;
   char **keys;       /* X_OBJECT field names; $let variable names (owned) */
   char *as;          /* $filter/$map variable (owned) */
   bool positional;   /* X_OP given as an array (or single value), not an object */
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
   bson_free (e->args);
   bson_free (e->keys);
   bson_free (e->as);
   bson_free (e->var);
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

static void
xadd (dj_expr_t *e, dj_expr_t *kid)
{
   e->args = bson_realloc (e->args, sizeof (dj_expr_t *) * (size_t) (e->nargs + 1));
   e->args[e->nargs++] = kid;
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
         dj_expr_destroy (e);
         return NULL;
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
      dj_expr_destroy (e);
      return NULL;
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
   bson_iter_init_from_data (&it, arg->value.v_doc.data, arg->value.v_doc.data_len);
   /* $filter/$map/$reduce bind a name for their inner expressions */
   dj_vscope_t inner = {.name = NULL, .up = scope}, inner2 = {.name = "value", .up = NULL};
   const dj_vscope_t *kid_scope = scope;
   if (op->id == XO_FILTER || op->id == XO_MAP) {
      bson_iter_t ai;
      inner.name = "this";
      bson_iter_init_from_data (&ai, arg->value.v_doc.data, arg->value.v_doc.data_len);
      if (bson_iter_find (&ai, "as")) {
         if (!BSON_ITER_HOLDS_UTF8 (&ai) || !valid_var_name (bson_iter_utf8 (&ai, NULL), strlen (bson_iter_utf8 (&ai, NULL)), true)) {
            dj_err (error, 16866, "invalid parameter: 'as' must be a valid variable name");
            dj_expr_destroy (e);
            return NULL;
         }
         e->as = bson_strdup (bson_iter_utf8 (&ai, NULL));
         inner.name = e->as;
      } else {
         e->as = bson_strdup ("this");
      }
   } else if (op->id == XO_REDUCE) {
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
         dj_expr_destroy (e);
         return NULL;
      }
      if ((op->id == XO_FILTER || op->id == XO_MAP) && !strcmp (k, "as")) {
         continue;
      }
      kid_scope = scope;
      if (((op->id == XO_FILTER && !strcmp (k, "cond")) || (op->id == XO_MAP && !strcmp (k, "in")))) {
         kid_scope = &inner;
      } else if (op->id == XO_REDUCE && !strcmp (k, "in")) {
         kid_scope = &inner2;
      }
      e->args[slot] = parse (bson_iter_value (&it), kid_scope, error);
      if (!e->args[slot]) {
         dj_expr_destroy (e);
         return NULL;
      }
   }
   for (int i = 0; i < op->required; i++) {
      if (!e->args[i]) {
         dj_err (error, 2, "Missing '%s' parameter to %s", op->named[i], op->name);
         dj_expr_destroy (e);
         return NULL;
      }
   }
   return e;
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
   if (op->id == XO_LITERAL) {
      e = xnew (X_CONST);
      bson_value_copy (arg, &e->val);
      return e;
   }
   if (op->id == XO_LET) {
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
      bson_iter_init_from_data (&it, arg->value.v_doc.data, arg->value.v_doc.data_len);
      bool have_vars = false;
      while (bson_iter_next (&it)) {
         if (!strcmp (bson_iter_key (&it), "vars") && BSON_ITER_HOLDS_DOCUMENT (&it)) {
            have_vars = true;
            bson_iter_recurse (&it, &vi);
            while (bson_iter_next (&vi)) {
               const char *vn = bson_iter_key (&vi);
               if (!valid_var_name (vn, strlen (vn), true)) {
                  dj_err (error, 16867, "'%s' starts with an invalid character for a user variable name", vn);
                  dj_expr_destroy (e);
                  return NULL;
               }
               dj_expr_t *ve = parse (bson_iter_value (&vi), scope, error);
               if (!ve) {
                  dj_expr_destroy (e);
                  return NULL;
               }
               e->keys = bson_realloc (e->keys, sizeof (char *) * (size_t) (e->nargs + 1));
               e->keys[e->nargs] = bson_strdup (vn);
               xadd (e, ve);
            }
         } else if (!strcmp (bson_iter_key (&it), "in")) {
            in_v = *bson_iter_value (&it);
            in = &in_v;
         } else {
            dj_err (error, 16875, "Unrecognized parameter to $let: %s", bson_iter_key (&it));
            dj_expr_destroy (e);
            return NULL;
         }
      }
      if (!have_vars || !in) {
         dj_err (error, have_vars ? 16877 : 16876, "Missing '%s' parameter to $let", have_vars ? "in" : "vars");
         dj_expr_destroy (e);
         return NULL;
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
         dj_expr_destroy (e);
         return NULL;
      }
      e->keys = bson_realloc (e->keys, sizeof (char *) * (size_t) (e->nargs + 1));
      e->keys[e->nargs] = NULL;
      xadd (e, body);
      return e;
   }
   if (op->id == XO_SWITCH) {
      bson_iter_t it, bi;
      if (arg->value_type != BSON_TYPE_DOCUMENT) {
         dj_err (error, 40060, "$switch requires an object as an argument, found: %s", dj_type_name (arg->value_type));
         return NULL;
      }
      e = xnew (X_OP);
      e->op = op;
      dj_expr_t *dflt = NULL;
      bool have_branches = false;
      bson_iter_init_from_data (&it, arg->value.v_doc.data, arg->value.v_doc.data_len);
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
                  if (!strcmp (bson_iter_key (&ci), "case")) {
                     c = parse (bson_iter_value (&ci), scope, error);
                  } else if (!strcmp (bson_iter_key (&ci), "then")) {
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
      dj_expr_destroy (e);
      return NULL;
   }
   /* object form for operators with named parameters */
   if (op->named && arg->value_type == BSON_TYPE_DOCUMENT &&
       (op->min < 0 || (op->id >= XO_YEAR && op->id <= XO_ISODAYOFWEEK) || op->id == XO_COND || op->id == XO_GETFIELD)) {
      bson_iter_t fi;
      bson_iter_init_from_data (&fi, arg->value.v_doc.data, arg->value.v_doc.data_len);
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
   if (arg->value_type == BSON_TYPE_ARRAY) {
      bson_iter_t it;
      bson_iter_init_from_data (&it, arg->value.v_doc.data, arg->value.v_doc.data_len);
      while (bson_iter_next (&it)) {
         dj_expr_t *k = parse (bson_iter_value (&it), scope, error);
         if (!k) {
            dj_expr_destroy (e);
            return NULL;
         }
         xadd (e, k);
      }
   } else {
      dj_expr_t *k = parse (arg, scope, error);
      if (!k) {
         dj_expr_destroy (e);
         return NULL;
      }
      xadd (e, k);
   }
   if (e->nargs < op->min || (op->max != ANY && e->nargs > op->max)) {
      if (op->min == op->max) {
         dj_err (error, 16020, "Expression %s takes exactly %d arguments. %d were passed in.", op->name, op->min, e->nargs);
      } else {
         dj_err (error, 16020, "Expression %s takes at least %d arguments, and at most %d, but %d were passed in.", op->name,
                 op->min, op->max, e->nargs);
      }
      dj_expr_destroy (e);
      return NULL;
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
   case BSON_TYPE_ARRAY:
      e = xnew (X_ARRAY);
      bson_iter_init_from_data (&it, v->value.v_doc.data, v->value.v_doc.data_len);
      while (bson_iter_next (&it)) {
         dj_expr_t *k = parse (bson_iter_value (&it), scope, error);
         if (!k) {
            dj_expr_destroy (e);
            return NULL;
         }
         xadd (e, k);
      }
      return e;
   case BSON_TYPE_DOCUMENT: {
      bson_iter_init_from_data (&it, v->value.v_doc.data, v->value.v_doc.data_len);
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
      bson_iter_init_from_data (&it, v->value.v_doc.data, v->value.v_doc.data_len);
      while (bson_iter_next (&it)) {
         const char *k = bson_iter_key (&it);
         if (k[0] == '$') {
            dj_err (error, 16410, "FieldPath field names may not start with '$'. Consider using $getField or $setField.");
            dj_expr_destroy (e);
            return NULL;
         }
         if (strchr (k, '.')) {
            dj_err (error, 16412, "FieldPath field names may not contain '.'. Consider using $getField or $setField.");
            dj_expr_destroy (e);
            return NULL;
         }
         dj_expr_t *kid = parse (bson_iter_value (&it), scope, error);
         if (!kid) {
            dj_expr_destroy (e);
            return NULL;
         }
         e->keys = bson_realloc (e->keys, sizeof (char *) * (size_t) (e->nargs + 1));
         e->keys[e->nargs] = bson_strdup (k);
         xadd (e, kid);
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

static const bson_value_t MISSING = {.value_type = BSON_TYPE_EOD};

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

static bool
nullish (const bson_value_t *v)
{
   return v->value_type == BSON_TYPE_NULL || v->value_type == BSON_TYPE_EOD || v->value_type == BSON_TYPE_UNDEFINED;
}

static void
set_null (bson_value_t *out)
{
   out->value_type = BSON_TYPE_NULL;
}

static void
set_bool (bson_value_t *out, bool b)
{
   out->value_type = BSON_TYPE_BOOL;
   out->value.v_bool = b;
}

static void
set_int (bson_value_t *out, int64_t v)
{
   /* int32 when it fits: MongoDB narrows integer results the same way */
   if (v >= INT32_MIN && v <= INT32_MAX) {
      out->value_type = BSON_TYPE_INT32;
      out->value.v_int32 = (int32_t) v;
   } else {
      out->value_type = BSON_TYPE_INT64;
      out->value.v_int64 = v;
   }
}

static void
set_long (bson_value_t *out, int64_t v)
{
   out->value_type = BSON_TYPE_INT64;
   out->value.v_int64 = v;
}

static void
set_double (bson_value_t *out, double d)
{
   out->value_type = BSON_TYPE_DOUBLE;
   out->value.v_double = d;
}

static bool
fail (dj_eval_t *ev, uint32_t code, const char *fmt, ...) BSON_GNUC_PRINTF (3, 4);

static bool
fail (dj_eval_t *ev, uint32_t code, const char *fmt, ...)
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

static const char *
tname (const bson_value_t *v)
{
   return dj_type_name (v->value_type);
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
      bson_t arr = BSON_INITIALIZER;
      bson_iter_t it;
      uint32_t k = 0;
      char buf[16];
      const char *key;
      bson_iter_init_from_data (&it, v->value.v_doc.data, v->value.v_doc.data_len);
      while (bson_iter_next (&it)) {
         const bson_value_t *e = bson_iter_value (&it);
         if (e->value_type != BSON_TYPE_DOCUMENT && e->value_type != BSON_TYPE_ARRAY) {
            continue;
         }
         bson_value_t sub;
         path_get (ev, e, p, i, &sub);
         if (sub.value_type == BSON_TYPE_EOD) {
            continue;
         }
         bson_uint32_to_string (k++, &key, buf, sizeof buf);
         bson_append_value (&arr, key, -1, &sub);
      }
      dj_arena_value (ev->arena, &arr, true, out);
      bson_destroy (&arr);
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
      return fail (ev, 17276, "Use of undefined variable: %s", name);
   }
   return true;
}

static bool
push_var (dj_eval_t *ev, const char *name, const bson_value_t *v)
{
   if (ev->nvars == DJ_MAX_VARS) {
      return fail (ev, 2, "too many nested variables (limit %d)", DJ_MAX_VARS);
   }
   ev->vars[ev->nvars].name = name;
   ev->vars[ev->nvars].value = *v;
   ev->nvars++;
   return true;
}

/* Iterating array values */
typedef struct {
   bson_value_t *v;
   uint32_t n;
} vlist_t;

static bool
as_list (dj_eval_t *ev, const bson_value_t *arr, vlist_t *out)
{
   bson_iter_t it;
   uint32_t n = 0;
   bson_iter_init_from_data (&it, arr->value.v_doc.data, arr->value.v_doc.data_len);
   while (bson_iter_next (&it)) {
      n++;
   }
   out->v = dj_arena_alloc (ev->arena, sizeof (bson_value_t) * (n ? n : 1));
   out->n = 0;
   bson_iter_init_from_data (&it, arr->value.v_doc.data, arr->value.v_doc.data_len);
   while (bson_iter_next (&it)) {
      out->v[out->n++] = *bson_iter_value (&it);
   }
   return true;
}

static void
list_to_value (dj_eval_t *ev, const bson_value_t *vals, uint32_t n, bson_value_t *out)
{
   bson_t arr = BSON_INITIALIZER;
   char buf[16];
   const char *key;
   uint32_t k = 0;
   for (uint32_t i = 0; i < n; i++) {
      if (vals[i].value_type == BSON_TYPE_EOD) {
         continue;
      }
      bson_uint32_to_string (k++, &key, buf, sizeof buf);
      bson_append_value (&arr, key, -1, &vals[i]);
   }
   dj_arena_value (ev->arena, &arr, true, out);
   bson_destroy (&arr);
}

static bool eval (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *out);

/* Evaluates every argument; for ops that take one array argument as their
 * list ($sum: "$arr"), spreads it. */
static bool
eval_args (const dj_expr_t *e, dj_eval_t *ev, bson_value_t **outv, int *n)
{
   bson_value_t *vals = dj_arena_alloc (ev->arena, sizeof (bson_value_t) * (size_t) (e->nargs ? e->nargs : 1));
   for (int i = 0; i < e->nargs; i++) {
      if (!eval (e->args[i], ev, &vals[i])) {
         return false;
      }
   }
   *outv = vals;
   *n = e->nargs;
   return true;
}

/* ---- numbers ------------------------------------------------------------- */

static bool
isnum (const bson_value_t *v)
{
   return dj_value_is_number (v);
}

/* $add/$multiply/$subtract with aggregation's widening: int32 -> int64 ->
 * double on overflow; any double: double; any decimal: decimal. */
static void
num_binop (char op, const bson_value_t *a, const bson_value_t *b, bson_value_t *out)
{
   bson_type_t ta = a->value_type, tb = b->value_type;
   if (ta == BSON_TYPE_DECIMAL128 || tb == BSON_TYPE_DECIMAL128) {
      dj_decimal_arith (op, a, b, out);
      return;
   }
   if (ta == BSON_TYPE_DOUBLE || tb == BSON_TYPE_DOUBLE) {
      double x = dj_value_as_double (a), y = dj_value_as_double (b);
      set_double (out, op == '+' ? x + y : op == '-' ? x - y : x * y);
      return;
   }
   int64_t x = ta == BSON_TYPE_INT32 ? a->value.v_int32 : a->value.v_int64;
   int64_t y = tb == BSON_TYPE_INT32 ? b->value.v_int32 : b->value.v_int64;
   int64_t r;
   bool ovf = op == '+' ? __builtin_add_overflow (x, y, &r) : op == '-' ? __builtin_sub_overflow (x, y, &r)
                                                                        : __builtin_mul_overflow (x, y, &r);
   if (ovf) {
      set_double (out, op == '+' ? (double) x + (double) y : op == '-' ? (double) x - (double) y : (double) x * (double) y);
   } else if (ta == BSON_TYPE_INT32 && tb == BSON_TYPE_INT32 && r >= INT32_MIN && r <= INT32_MAX) {
      set_int (out, r);
   } else {
      set_long (out, r);
   }
}

static bool
eval_add (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *out, bool mul)
{
   bson_value_t *v;
   int n;
   bson_value_t acc = {.value_type = BSON_TYPE_INT32};
   acc.value.v_int32 = mul ? 1 : 0;
   bool have_date = false, is_null = false;
   if (!eval_args (e, ev, &v, &n)) {
      return false;
   }
   for (int i = 0; i < n; i++) {
      if (nullish (&v[i])) {
         is_null = true;
         continue;
      }
      if (!mul && v[i].value_type == BSON_TYPE_DATE_TIME) {
         if (have_date) {
            return fail (ev, 16612, "only one date allowed in an $add expression");
         }
         have_date = true;
         bson_value_t ms;
         set_long (&ms, v[i].value.v_datetime);
         num_binop ('+', &acc, &ms, &acc);
         continue;
      }
      if (!isnum (&v[i])) {
         return fail (ev, mul ? 16555 : 16554, "%s only supports numeric%s types, not %s", mul ? "$multiply" : "$add",
                      mul ? "" : " or date", tname (&v[i]));
      }
      num_binop (mul ? '*' : '+', &acc, &v[i], &acc);
   }
   if (is_null) {
      set_null (out);
      return true;
   }
   if (have_date) {
      double d = dj_value_as_double (&acc);
      out->value_type = BSON_TYPE_DATE_TIME;
      out->value.v_datetime = acc.value_type == BSON_TYPE_INT64 || acc.value_type == BSON_TYPE_INT32
                                 ? (acc.value_type == BSON_TYPE_INT32 ? acc.value.v_int32 : acc.value.v_int64)
                                 : (int64_t) llround (d);
      return true;
   }
   *out = acc;
   return true;
}

static bool
to_double_arg (dj_eval_t *ev, const char *op, const bson_value_t *v, double *d)
{
   if (!isnum (v)) {
      return fail (ev, 28765, "%s only supports numeric types, not %s", op, tname (v));
   }
   *d = dj_value_as_double (v);
   return true;
}

/* round half to even at `place` digits after the point (negative: before) */
static double
round_half_even (double x, int place)
{
   if (!isfinite (x)) {
      return x;
   }
   long double scale = powl (10.0L, place);
   long double y = (long double) x * scale;
   long double r = roundl (y);
   if (fabsl (y - truncl (y)) == 0.5L) {
      r = 2.0L * roundl (y / 2.0L);
   }
   return (double) (r / scale);
}

static bool
eval_round (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *out, bool trunc_mode)
{
   bson_value_t *v;
   int n;
   int64_t place = 0;
   if (!eval_args (e, ev, &v, &n)) {
      return false;
   }
   if (nullish (&v[0]) || (n > 1 && nullish (&v[1]))) {
      set_null (out);
      return true;
   }
   if (!isnum (&v[0])) {
      return fail (ev, 51081, "%s only supports numeric types, not %s", e->op->name, tname (&v[0]));
   }
   if (n > 1) {
      if (!dj_value_as_int64_exact (&v[1], &place) || place < -20 || place > 100) {
         return fail (ev, 51083, "cannot apply %s with precision value %g value must be in [-20, 100]", e->op->name,
                      dj_value_as_double (&v[1]));
      }
   }
   switch (v[0].value_type) {
   case BSON_TYPE_INT32:
   case BSON_TYPE_INT64: {
      int64_t x = v[0].value_type == BSON_TYPE_INT32 ? v[0].value.v_int32 : v[0].value.v_int64;
      if (place < 0) {
         int64_t p = 1;
         for (int64_t i = 0; i < -place && p < INT64_MAX / 10; i++) {
            p *= 10;
         }
         int64_t q = x / p, r = x % p;
         if (!trunc_mode) {
            int64_t half = p / 2;
            int64_t ar = r < 0 ? -r : r;
            if (ar > half || (ar == half && (q % 2 != 0))) {
               q += x < 0 ? -1 : 1;
            }
         }
         x = q * p;
      }
      if (v[0].value_type == BSON_TYPE_INT32) {
         set_int (out, x);
      } else {
         set_long (out, x);
      }
      return true;
   }
   case BSON_TYPE_DOUBLE: {
      double x = v[0].value.v_double;
      if (trunc_mode) {
         long double scale = powl (10.0L, (long double) place);
         set_double (out, (double) (truncl ((long double) x * scale) / scale));
      } else {
         set_double (out, round_half_even (x, (int) place));
      }
      return true;
   }
   default: {
      /* Decimal128: via its string digits */
      char s[BSON_DECIMAL128_STRING];
      bson_decimal128_to_string (&v[0].value.v_decimal128, s);
      double x = strtod (s, NULL);
      char r[64];
      snprintf (r, sizeof r, "%.*f", place > 0 ? (int) place : 0,
                trunc_mode ? trunc (x * pow (10, (double) place)) / pow (10, (double) place) : round_half_even (x, (int) place));
      out->value_type = BSON_TYPE_DECIMAL128;
      bson_decimal128_from_string (r, &out->value.v_decimal128);
      return true;
   }
   }
}

static bool
eval_math1 (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *out)
{
   bson_value_t v;
   double d;
   if (!eval (e->args[0], ev, &v)) {
      return false;
   }
   if (nullish (&v)) {
      set_null (out);
      return true;
   }
   if (!isnum (&v)) {
      return fail (ev, 28765, "%s only supports numeric types, not %s", e->op->name, tname (&v));
   }
   switch (e->op->id) {
   case XO_ABS:
      if (v.value_type == BSON_TYPE_INT32) {
         set_int (out, llabs ((long long) v.value.v_int32));
      } else if (v.value_type == BSON_TYPE_INT64) {
         if (v.value.v_int64 == INT64_MIN) {
            return fail (ev, 28680, "can't take $abs of long long min");
         }
         set_long (out, llabs (v.value.v_int64));
      } else if (v.value_type == BSON_TYPE_DECIMAL128) {
         *out = v;
         out->value.v_decimal128.high &= ~(1ull << 63);
      } else {
         set_double (out, fabs (v.value.v_double));
      }
      return true;
   case XO_CEIL:
   case XO_FLOOR:
      if (v.value_type == BSON_TYPE_INT32 || v.value_type == BSON_TYPE_INT64) {
         *out = v;
         return true;
      }
      d = dj_value_as_double (&v);
      set_double (out, e->op->id == XO_CEIL ? ceil (d) : floor (d));
      if (v.value_type == BSON_TYPE_DECIMAL128) {
         dj_decimal_from_value (out, out);
      }
      return true;
   default: break;
   }
   d = dj_value_as_double (&v);
   double r = 0;
   switch (e->op->id) {
   case XO_SQRT:
      if (d < 0) {
         return fail (ev, 28714, "$sqrt's argument must be greater than or equal to 0");
      }
      r = sqrt (d);
      break;
   case XO_EXP: r = exp (d); break;
   case XO_LN:
      if (d <= 0) {
         return fail (ev, 28766, "$ln's argument must be a positive number, but is %g", d);
      }
      r = log (d);
      break;
   case XO_LOG10:
      if (d <= 0) {
         return fail (ev, 28761, "$log10's argument must be a positive number, but is %g", d);
      }
      r = log10 (d);
      break;
   case XO_SIN: r = sin (d); break;
   case XO_COS: r = cos (d); break;
   case XO_TAN: r = tan (d); break;
   case XO_ASIN:
   case XO_ACOS:
      if (d < -1 || d > 1) {
         return fail (ev, 50989, "cannot apply %s to %g, value must in [-1,1]", e->op->name, d);
      }
      r = e->op->id == XO_ASIN ? asin (d) : acos (d);
      break;
   case XO_ATAN: r = atan (d); break;
   case XO_SINH: r = sinh (d); break;
   case XO_COSH: r = cosh (d); break;
   case XO_TANH: r = tanh (d); break;
   case XO_ASINH: r = asinh (d); break;
   case XO_ACOSH:
      if (d < 1) {
         return fail (ev, 50989, "cannot apply $acosh to %g, value must in [1,inf]", d);
      }
      r = acosh (d);
      break;
   case XO_ATANH:
      if (d < -1 || d > 1) {
         return fail (ev, 50989, "cannot apply $atanh to %g, value must in [-1,1]", d);
      }
      r = atanh (d);
      break;
   case XO_DEG2RAD: r = d * M_PI / 180.0; break;
   case XO_RAD2DEG: r = d * 180.0 / M_PI; break;
   default: break;
   }
   set_double (out, r);
   if (v.value_type == BSON_TYPE_DECIMAL128) {
      dj_decimal_from_value (out, out);
   }
   return true;
}

/* ---- dates ----------------------------------------------------------------- */

typedef struct {
   int64_t year;
   unsigned month, day, hour, minute, second, ms;
   unsigned dow;  /* 1 = Sunday .. 7 */
   unsigned doy;  /* 1..366 */
   int32_t offset; /* seconds */
} parts_t;

static int64_t
floordiv (int64_t a, int64_t b)
{
   int64_t q = a / b;
   return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

static void
to_parts (int64_t ms, const dj_tz_t *tz, parts_t *p)
{
   int64_t secs = floordiv (ms, 1000);
   p->offset = tz ? dj_tz_offset (tz, secs) : 0;
   int64_t local_ms = ms + (int64_t) p->offset * 1000;
   int64_t days = floordiv (local_ms, 86400000);
   int64_t rem = local_ms - days * 86400000;
   dj_civil_from_days (days, &p->year, &p->month, &p->day);
   p->hour = (unsigned) (rem / 3600000);
   p->minute = (unsigned) (rem / 60000 % 60);
   p->second = (unsigned) (rem / 1000 % 60);
   p->ms = (unsigned) (rem % 1000);
   p->dow = (unsigned) ((days % 7 + 7 + 4) % 7) + 1; /* 1970-01-01 was a Thursday */
   p->doy = (unsigned) (days - dj_days_from_civil (p->year, 1, 1)) + 1;
}

static int64_t
from_parts (int64_t y, int64_t mo, int64_t d, int64_t h, int64_t mi, int64_t s, int64_t ms, const dj_tz_t *tz)
{
   /* months and days may overflow their ranges: MongoDB carries them */
   y += floordiv (mo - 1, 12);
   mo = mo - 1 - floordiv (mo - 1, 12) * 12 + 1;
   int64_t days = dj_days_from_civil (y, (unsigned) mo, 1) + d - 1;
   int64_t local_s = days * 86400 + h * 3600 + mi * 60 + s;
   int64_t utc_s = tz ? dj_tz_local_to_utc (tz, local_s) : local_s;
   return utc_s * 1000 + ms;
}

static unsigned
iso_dow (const parts_t *p)
{
   return p->dow == 1 ? 7 : p->dow - 1;
}

static void
iso_week (const parts_t *p, int64_t *wyear, unsigned *week)
{
   /* ISO 8601: the week with the year's first Thursday is week 1 */
   int64_t y = p->year;
   int wd = (int) iso_dow (p);
   int64_t ordinal = p->doy;
   int64_t w = (ordinal - wd + 10) / 7;
   if (w < 1) {
      y--;
      int64_t dec31 = dj_days_from_civil (y, 12, 31);
      parts_t q;
      to_parts (dec31 * 86400000, NULL, &q);
      w = ((int64_t) q.doy - (int64_t) iso_dow (&q) + 10) / 7;
   } else if (w == 53) {
      int64_t jan1next = dj_days_from_civil (y + 1, 1, 1);
      int jd = (int) (((jan1next % 7) + 7 + 3) % 7) + 1; /* ISO weekday of next Jan 1 */
      if (jd <= 4) {
         y++;
         w = 1;
      }
   }
   *wyear = y;
   *week = (unsigned) w;
}

static bool
get_tz (const dj_expr_t *tze, dj_eval_t *ev, const dj_tz_t **tz, bool *is_null)
{
   bson_value_t v;
   *tz = NULL;
   if (!tze) {
      return true;
   }
   if (!eval (tze, ev, &v)) {
      return false;
   }
   if (nullish (&v)) {
      *is_null = true;
      return true;
   }
   if (v.value_type != BSON_TYPE_UTF8) {
      return fail (ev, 40517, "timezone must evaluate to a string, found %s", tname (&v));
   }
   *tz = dj_tz_get (v.value.v_utf8.str, ev->error);
   return *tz != NULL;
}

static bool
as_date_ms (dj_eval_t *ev, const char *op, const bson_value_t *v, int64_t *ms)
{
   switch (v->value_type) {
   case BSON_TYPE_DATE_TIME: *ms = v->value.v_datetime; return true;
   case BSON_TYPE_TIMESTAMP: *ms = (int64_t) v->value.v_timestamp.timestamp * 1000; return true;
   case BSON_TYPE_OID: *ms = (int64_t) bson_oid_get_time_t (&v->value.v_oid) * 1000; return true;
   default: return fail (ev, 16006, "can't convert from BSON type %s to Date", tname (v)); (void) op;
   }
}

static bool
eval_date_part (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *out)
{
   bson_value_t v;
   const dj_tz_t *tz = NULL;
   bool tz_null = false;
   int64_t ms = 0;
   parts_t p;

   if (!eval (e->args[0], ev, &v) || !get_tz (e->nargs > 1 ? e->args[1] : NULL, ev, &tz, &tz_null)) {
      return false;
   }
   if (nullish (&v) || tz_null) {
      set_null (out);
      return true;
   }
   if (!as_date_ms (ev, e->op->name, &v, &ms)) {
      return false;
   }
   to_parts (ms, tz, &p);
   int64_t wy;
   unsigned w;
   switch (e->op->id) {
   case XO_YEAR: set_int (out, p.year); break;
   case XO_MONTH: set_int (out, p.month); break;
   case XO_DAYOFMONTH: set_int (out, p.day); break;
   case XO_DAYOFWEEK: set_int (out, p.dow); break;
   case XO_DAYOFYEAR: set_int (out, p.doy); break;
   case XO_HOUR: set_int (out, p.hour); break;
   case XO_MINUTE: set_int (out, p.minute); break;
   case XO_SECOND: set_int (out, p.second); break;
   case XO_MILLISECOND: set_int (out, p.ms); break;
   case XO_WEEK:
      /* %U: weeks start on Sunday; days before the first Sunday are week 0 */
      set_int (out, ((int64_t) p.doy + 6 - ((int64_t) p.dow - 1)) / 7);
      break;
   case XO_ISOWEEK: iso_week (&p, &wy, &w); set_int (out, w); break;
   case XO_ISOWEEKYEAR: iso_week (&p, &wy, &w); set_long (out, wy); set_int (out, wy); break;
   case XO_ISODAYOFWEEK: set_int (out, iso_dow (&p)); break;
   default: break;
   }
   return true;
}

static bool
format_date (dj_eval_t *ev, int64_t ms, const dj_tz_t *tz, const char *fmt, bson_value_t *out)
{
   parts_t p;
   dj_buf_t b;
   char tmp[64];
   to_parts (ms, tz, &p);
   dj_buf_init (&b);
   for (const char *f = fmt; *f; f++) {
      if (*f != '%') {
         dj_buf_putc (&b, (uint8_t) *f);
         continue;
      }
      f++;
      int64_t wy;
      unsigned w;
      switch (*f) {
      case 'Y': snprintf (tmp, sizeof tmp, "%04" PRId64, p.year); break;
      case 'm': snprintf (tmp, sizeof tmp, "%02u", p.month); break;
      case 'd': snprintf (tmp, sizeof tmp, "%02u", p.day); break;
      case 'H': snprintf (tmp, sizeof tmp, "%02u", p.hour); break;
      case 'M': snprintf (tmp, sizeof tmp, "%02u", p.minute); break;
      case 'S': snprintf (tmp, sizeof tmp, "%02u", p.second); break;
      case 'L': snprintf (tmp, sizeof tmp, "%03u", p.ms); break;
      case 'j': snprintf (tmp, sizeof tmp, "%03u", p.doy); break;
      case 'w': snprintf (tmp, sizeof tmp, "%u", p.dow); break;
      case 'u': snprintf (tmp, sizeof tmp, "%u", iso_dow (&p)); break;
      case 'U': snprintf (tmp, sizeof tmp, "%02u", (p.doy + 6 - (p.dow - 1)) / 7); break;
      case 'V': iso_week (&p, &wy, &w); snprintf (tmp, sizeof tmp, "%02u", w); break;
      case 'G': iso_week (&p, &wy, &w); snprintf (tmp, sizeof tmp, "%04" PRId64, wy); break;
      case 'b': {
         static const char *const mon[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
         snprintf (tmp, sizeof tmp, "%s", mon[p.month - 1]);
         break;
      }
      case 'z': {
         int32_t o = p.offset;
         snprintf (tmp, sizeof tmp, "%c%02d%02d", o < 0 ? '-' : '+', abs (o) / 3600, abs (o) / 60 % 60);
         break;
      }
      case 'Z': snprintf (tmp, sizeof tmp, "%d", p.offset / 60); break;
      case '%': snprintf (tmp, sizeof tmp, "%%"); break;
      default:
         dj_buf_cleanup (&b);
         return fail (ev, 18536, "Invalid format character '%%%c' in format string", *f ? *f : ' ');
      }
      dj_buf_append (&b, tmp, strlen (tmp));
   }
   arena_str (ev->arena, (char *) b.data, b.len, out);
   dj_buf_cleanup (&b);
   return true;
}

/* Parses the ISO 8601 forms MongoDB's $dateFromString and $toDate accept:
 * YYYY-MM-DD[(T| )hh:mm[:ss[.fff]]][Z|+hh[:mm]]. Returns false if not one. */
static bool
parse_iso (const char *s, const dj_tz_t *tz, int64_t *ms_out, bool *had_offset)
{
   int64_t y = 0;
   int mo = 1, d = 1, h = 0, mi = 0, sec = 0, ms = 0, n = 0;
   const char *p = s;
   *had_offset = false;
   if (sscanf (p, "%4" SCNd64 "-%2d-%2d%n", &y, &mo, &d, &n) != 3) {
      return false;
   }
   p += n;
   if (*p == 'T' || *p == ' ') {
      p++;
      if (sscanf (p, "%2d:%2d%n", &h, &mi, &n) != 2) {
         return false;
      }
      p += n;
      if (*p == ':') {
         p++;
         if (sscanf (p, "%2d%n", &sec, &n) != 1) {
            return false;
         }
         p += n;
         if (*p == '.') {
            p++;
            int digits = 0;
            ms = 0;
            while (isdigit ((unsigned char) *p)) {
               if (digits < 3) {
                  ms = ms * 10 + (*p - '0');
               }
               digits++;
               p++;
            }
            while (digits < 3) {
               ms *= 10;
               digits++;
            }
         }
      }
   }
   int32_t off = 0;
   if (*p == 'Z') {
      *had_offset = true;
      p++;
   } else if (*p == '+' || *p == '-') {
      const dj_tz_t *oz = dj_tz_get (p, NULL);
      if (!oz) {
         return false;
      }
      off = dj_tz_offset (oz, 0);
      *had_offset = true;
      p += strlen (p);
   }
   if (*p || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 59) {
      return false;
   }
   int64_t local = from_parts (y, mo, d, h, mi, sec, ms, NULL);
   if (*had_offset) {
      *ms_out = local - (int64_t) off * 1000;
   } else {
      *ms_out = tz ? from_parts (y, mo, d, h, mi, sec, ms, tz) : local;
   }
   return true;
}

static int64_t
unit_ms (const char *unit)
{
   if (!strcmp (unit, "millisecond")) return 1;
   if (!strcmp (unit, "second")) return 1000;
   if (!strcmp (unit, "minute")) return 60000;
   if (!strcmp (unit, "hour")) return 3600000;
   if (!strcmp (unit, "day")) return 86400000;
   if (!strcmp (unit, "week")) return 7 * 86400000LL;
   return 0;
}

static bool
valid_unit (const char *u)
{
   return unit_ms (u) || !strcmp (u, "month") || !strcmp (u, "quarter") || !strcmp (u, "year");
}

/* ---- strings --------------------------------------------------------------- */

static bool
as_str (dj_eval_t *ev, const char *op, const bson_value_t *v, const char **s, uint32_t *n)
{
   if (v->value_type == BSON_TYPE_UTF8) {
      *s = v->value.v_utf8.str;
      *n = v->value.v_utf8.len;
      return true;
   }
   if (v->value_type == BSON_TYPE_SYMBOL) {
      *s = v->value.v_symbol.symbol;
      *n = v->value.v_symbol.len;
      return true;
   }
   return fail (ev, 16702, "%s only supports strings, not %s", op, tname (v));
}

static size_t
utf8_cp_len (const char *s, size_t n)
{
   size_t c = 0;
   for (size_t i = 0; i < n; i++) {
      c += ((unsigned char) s[i] & 0xC0) != 0x80;
   }
   return c;
}

/* byte offset of code point cp (or n if past the end) */
static size_t
utf8_offset (const char *s, size_t n, size_t cp)
{
   size_t i = 0, c = 0;
   while (i < n && c < cp) {
      i++;
      while (i < n && ((unsigned char) s[i] & 0xC0) == 0x80) {
         i++;
      }
      c++;
   }
   return i;
}

/* the string form $toString / $convert give */
static bool
stringify (dj_eval_t *ev, const bson_value_t *v, bson_value_t *out)
{
   char tmp[64];
   switch (v->value_type) {
   case BSON_TYPE_UTF8: *out = *v; return true;
   case BSON_TYPE_INT32: snprintf (tmp, sizeof tmp, "%d", v->value.v_int32); break;
   case BSON_TYPE_INT64: snprintf (tmp, sizeof tmp, "%" PRId64, v->value.v_int64); break;
   case BSON_TYPE_DOUBLE: {
      double d = v->value.v_double;
      if (isnan (d)) {
         snprintf (tmp, sizeof tmp, "NaN");
      } else if (isinf (d)) {
         snprintf (tmp, sizeof tmp, d > 0 ? "Infinity" : "-Infinity");
      } else if (d == trunc (d) && fabs (d) < 1e15) {
         snprintf (tmp, sizeof tmp, "%.0f", d);
      } else {
         snprintf (tmp, sizeof tmp, "%.17g", d);
         /* shortest round-trip form */
         for (int prec = 1; prec <= 17; prec++) {
            char t2[64];
            snprintf (t2, sizeof t2, "%.*g", prec, d);
            if (strtod (t2, NULL) == d) {
               memcpy (tmp, t2, sizeof t2);
               break;
            }
         }
      }
      break;
   }
   case BSON_TYPE_DECIMAL128: bson_decimal128_to_string (&v->value.v_decimal128, tmp); break;
   case BSON_TYPE_BOOL: snprintf (tmp, sizeof tmp, "%s", v->value.v_bool ? "true" : "false"); break;
   case BSON_TYPE_OID: bson_oid_to_string (&v->value.v_oid, tmp); break;
   case BSON_TYPE_DATE_TIME: return format_date (ev, v->value.v_datetime, NULL, "%Y-%m-%dT%H:%M:%S.%LZ", out);
   default: return fail (ev, 241, "Unsupported conversion from %s to string", tname (v));
   }
   arena_str (ev->arena, tmp, strlen (tmp), out);
   return true;
}

static pcre2_code *
compile_re (dj_eval_t *ev, const char *op, const bson_value_t *rv, const bson_value_t *ov)
{
   const char *pat, *opts = "";
   uint32_t flags = PCRE2_UTF;
   if (rv->value_type == BSON_TYPE_REGEX) {
      pat = rv->value.v_regex.regex;
      opts = rv->value.v_regex.options;
      if (ov && ov->value_type == BSON_TYPE_UTF8 && *opts) {
         fail (ev, 51075, "%s: regex option(s) specified in both 'regex' and 'option' fields", op);
         return NULL;
      }
   } else if (rv->value_type == BSON_TYPE_UTF8) {
      pat = rv->value.v_utf8.str;
   } else {
      fail (ev, 51105, "%s needs 'regex' to be of type string or regex", op);
      return NULL;
   }
   if (ov && ov->value_type == BSON_TYPE_UTF8) {
      opts = ov->value.v_utf8.str;
   } else if (ov && !nullish (ov)) {
      fail (ev, 51106, "%s needs 'options' to be of type string", op);
      return NULL;
   }
   for (const char *o = opts; *o; o++) {
      switch (*o) {
      case 'i': flags |= PCRE2_CASELESS; break;
      case 'm': flags |= PCRE2_MULTILINE; break;
      case 's': flags |= PCRE2_DOTALL; break;
      case 'x': flags |= PCRE2_EXTENDED; break;
      case 'u': break;
      default: fail (ev, 51108, "%s invalid flag in regex options: %c", op, *o); return NULL;
      }
   }
   int ec;
   PCRE2_SIZE eo;
   pcre2_code *re = pcre2_compile ((PCRE2_SPTR) pat, PCRE2_ZERO_TERMINATED, flags, &ec, &eo, NULL);
   if (!re) {
      PCRE2_UCHAR msg[200];
      pcre2_get_error_message (ec, msg, sizeof msg);
      fail (ev, 51111, "Invalid Regex in %s: %s", op, (char *) msg);
   }
   return re;
}

/* one $regexFind result document: {match, idx, captures} */
static void
regex_result (dj_eval_t *ev, const char *s, pcre2_match_data *md, int rc, bson_t *doc)
{
   PCRE2_SIZE *ov = pcre2_get_ovector_pointer (md);
   BSON_APPEND_UTF8 (doc, "match", "");
   bson_t d2 = BSON_INITIALIZER;
   bson_append_utf8 (&d2, "match", 5, s + ov[0], (int) (ov[1] - ov[0]));
   BSON_APPEND_INT32 (&d2, "idx", (int32_t) utf8_cp_len (s, ov[0]));
   bson_t caps;
   BSON_APPEND_ARRAY_BEGIN (&d2, "captures", &caps);
   for (int i = 1; i < rc || i < (int) pcre2_get_ovector_count (md); i++) {
      char buf[16];
      const char *k;
      if (i >= (int) pcre2_get_ovector_count (md)) {
         break;
      }
      bson_uint32_to_string ((uint32_t) (i - 1), &k, buf, sizeof buf);
      if (i >= rc || ov[2 * i] == PCRE2_UNSET) {
         bson_append_null (&caps, k, -1);
      } else {
         bson_append_utf8 (&caps, k, -1, s + ov[2 * i], (int) (ov[2 * i + 1] - ov[2 * i]));
      }
   }
   bson_append_array_end (&d2, &caps);
   bson_reinit (doc);
   bson_concat (doc, &d2);
   bson_destroy (&d2);
   (void) ev;
}

/* ---- conversions ---------------------------------------------------------- */

/* target type codes for $convert */
static int
convert_target (const bson_value_t *to)
{
   int t = -1;
   if (to->value_type == BSON_TYPE_UTF8) {
      if (!dj_type_from_name (to->value.v_utf8.str, &t)) {
         return -1;
      }
      return t;
   }
   int64_t code;
   if (dj_value_as_int64_exact (to, &code)) {
      return (int) code;
   }
   return -1;
}

static bool
convert (dj_eval_t *ev, const bson_value_t *v, int to, bson_value_t *out)
{
   char s[128];
   switch (to) {
   case BSON_TYPE_DOUBLE:
      if (isnum (v) || v->value_type == BSON_TYPE_BOOL) {
         set_double (out, dj_value_as_double (v));
         return true;
      }
      if (v->value_type == BSON_TYPE_DATE_TIME) {
         set_double (out, (double) v->value.v_datetime);
         return true;
      }
      if (v->value_type == BSON_TYPE_UTF8) {
         char *end;
         double d = strtod (v->value.v_utf8.str, &end);
         if (*v->value.v_utf8.str && !*end && !isspace ((unsigned char) v->value.v_utf8.str[0])) {
            set_double (out, d);
            return true;
         }
         return fail (ev, 241, "Failed to parse number '%s' in $convert with no onError value: Did not consume whole string.",
                      v->value.v_utf8.str);
      }
      break;
   case BSON_TYPE_INT32:
   case BSON_TYPE_INT64: {
      int64_t x;
      int64_t lo = to == BSON_TYPE_INT32 ? INT32_MIN : INT64_MIN, hi = to == BSON_TYPE_INT32 ? INT32_MAX : INT64_MAX;
      if (v->value_type == BSON_TYPE_BOOL) {
         x = v->value.v_bool;
      } else if (v->value_type == BSON_TYPE_INT32 || v->value_type == BSON_TYPE_INT64) {
         x = v->value_type == BSON_TYPE_INT32 ? v->value.v_int32 : v->value.v_int64;
      } else if (v->value_type == BSON_TYPE_DOUBLE || v->value_type == BSON_TYPE_DECIMAL128) {
         double d = trunc (dj_value_as_double (v));
         if (!isfinite (d) || d < (double) lo || d >= -(double) lo) {
            return fail (ev, 241, "Conversion would overflow target type in $convert with no onError value: %g", d);
         }
         x = (int64_t) d;
      } else if (v->value_type == BSON_TYPE_DATE_TIME && to == BSON_TYPE_INT64) {
         x = v->value.v_datetime;
      } else if (v->value_type == BSON_TYPE_UTF8) {
         char *end;
         errno = 0;
         long long ll = strtoll (v->value.v_utf8.str, &end, 10);
         if (!*v->value.v_utf8.str || *end || errno) {
            return fail (ev, 241, "Failed to parse number '%s' in $convert with no onError value: Did not consume whole string.",
                         v->value.v_utf8.str);
         }
         x = ll;
      } else {
         break;
      }
      if (x < lo || x > hi) {
         return fail (ev, 241, "Conversion would overflow target type in $convert with no onError value: %" PRId64, x);
      }
      if (to == BSON_TYPE_INT32) {
         out->value_type = BSON_TYPE_INT32;
         out->value.v_int32 = (int32_t) x;
      } else {
         set_long (out, x);
      }
      return true;
   }
   case BSON_TYPE_DECIMAL128:
      if (isnum (v) || v->value_type == BSON_TYPE_BOOL) {
         bson_value_t n = *v;
         if (v->value_type == BSON_TYPE_BOOL) {
            set_int (&n, v->value.v_bool);
         }
         if (v->value_type == BSON_TYPE_DOUBLE) {
            /* $toDecimal keeps the double's shortest decimal form */
            bson_value_t sv;
            if (!stringify (ev, v, &sv)) {
               return false;
            }
            out->value_type = BSON_TYPE_DECIMAL128;
            bson_decimal128_from_string (sv.value.v_utf8.str, &out->value.v_decimal128);
            return true;
         }
         dj_decimal_from_value (&n, out);
         return true;
      }
      if (v->value_type == BSON_TYPE_UTF8) {
         out->value_type = BSON_TYPE_DECIMAL128;
         if (bson_decimal128_from_string (v->value.v_utf8.str, &out->value.v_decimal128)) {
            bson_decimal128_to_string (&out->value.v_decimal128, s);
            if (strcmp (s, "NaN") || !strcasecmp (v->value.v_utf8.str, "nan")) {
               return true;
            }
         }
         return fail (ev, 241, "Failed to parse number '%s' in $convert with no onError value", v->value.v_utf8.str);
      }
      if (v->value_type == BSON_TYPE_DATE_TIME) {
         bson_value_t n;
         set_long (&n, v->value.v_datetime);
         dj_decimal_from_value (&n, out);
         return true;
      }
      break;
   case BSON_TYPE_UTF8: return stringify (ev, v, out);
   case BSON_TYPE_BOOL:
      set_bool (out, dj_value_truthy (v));
      return true;
   case BSON_TYPE_DATE_TIME: {
      int64_t ms;
      bool had;
      if (v->value_type == BSON_TYPE_DATE_TIME) {
         *out = *v;
         return true;
      }
      if (v->value_type == BSON_TYPE_INT64 || v->value_type == BSON_TYPE_DOUBLE || v->value_type == BSON_TYPE_DECIMAL128) {
         out->value_type = BSON_TYPE_DATE_TIME;
         out->value.v_datetime = v->value_type == BSON_TYPE_INT64 ? v->value.v_int64 : (int64_t) dj_value_as_double (v);
         return true;
      }
      if (v->value_type == BSON_TYPE_OID || v->value_type == BSON_TYPE_TIMESTAMP) {
         as_date_ms (ev, "$convert", v, &ms);
         out->value_type = BSON_TYPE_DATE_TIME;
         out->value.v_datetime = ms;
         return true;
      }
      if (v->value_type == BSON_TYPE_UTF8 && parse_iso (v->value.v_utf8.str, NULL, &ms, &had)) {
         out->value_type = BSON_TYPE_DATE_TIME;
         out->value.v_datetime = ms;
         return true;
      }
      if (v->value_type == BSON_TYPE_UTF8) {
         return fail (ev, 241, "Error parsing date string '%s'", v->value.v_utf8.str);
      }
      break;
   }
   case BSON_TYPE_OID:
      if (v->value_type == BSON_TYPE_OID) {
         *out = *v;
         return true;
      }
      if (v->value_type == BSON_TYPE_UTF8 && bson_oid_is_valid (v->value.v_utf8.str, v->value.v_utf8.len) &&
          v->value.v_utf8.len == 24) {
         out->value_type = BSON_TYPE_OID;
         bson_oid_init_from_string (&out->value.v_oid, v->value.v_utf8.str);
         return true;
      }
      if (v->value_type == BSON_TYPE_UTF8) {
         return fail (ev, 241, "Failed to parse objectId '%s' in $convert with no onError value: Invalid string length for parsing to OID, expected 24 but found %u",
                      v->value.v_utf8.str, v->value.v_utf8.len);
      }
      break;
   default: return fail (ev, 2, "Unknown type name: %d", to);
   }
   return fail (ev, 241, "Unsupported conversion from %s to %s in $convert with no onError value", tname (v),
                dj_type_name ((bson_type_t) to));
}

/* ---- the evaluator ---------------------------------------------------------- */

static bool
eval_object (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *out)
{
   bson_t doc = BSON_INITIALIZER;
   for (int i = 0; i < e->nargs; i++) {
      bson_value_t v;
      if (!eval (e->args[i], ev, &v)) {
         bson_destroy (&doc);
         return false;
      }
      if (v.value_type != BSON_TYPE_EOD) {
         bson_append_value (&doc, e->keys[i], -1, &v);
      }
   }
   dj_arena_value (ev->arena, &doc, false, out);
   bson_destroy (&doc);
   return true;
}

static bool
eval_array_lit (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *out)
{
   bson_value_t *v;
   int n;
   if (!eval_args (e, ev, &v, &n)) {
      return false;
   }
   /* missing elements become null in array literals */
   for (int i = 0; i < n; i++) {
      if (v[i].value_type == BSON_TYPE_EOD) {
         set_null (&v[i]);
      }
   }
   list_to_value (ev, v, (uint32_t) n, out);
   return true;
}

/* Arguments of list-style accumulators used as expressions ($sum etc.): one
 * array argument means its elements. */
static bool
acc_inputs (const dj_expr_t *e, dj_eval_t *ev, vlist_t *l)
{
   bson_value_t *v;
   int n;
   if (!eval_args (e, ev, &v, &n)) {
      return false;
   }
   if (n == 1 && v[0].value_type == BSON_TYPE_ARRAY) {
      return as_list (ev, &v[0], l);
   }
   l->v = v;
   l->n = (uint32_t) n;
   return true;
}

static bool
eval_acc_expr (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *out)
{
   vlist_t l;
   if (!acc_inputs (e, ev, &l)) {
      return false;
   }
   switch (e->op->id) {
   case XO_SUM:
   case XO_AVG: {
      bson_value_t acc = {.value_type = BSON_TYPE_INT32};
      uint32_t cnt = 0;
      for (uint32_t i = 0; i < l.n; i++) {
         if (isnum (&l.v[i])) {
            num_binop ('+', &acc, &l.v[i], &acc);
            cnt++;
         }
      }
      if (e->op->id == XO_SUM) {
         *out = acc;
      } else if (!cnt) {
         set_null (out);
      } else if (acc.value_type == BSON_TYPE_DECIMAL128) {
         bson_value_t c;
         set_int (&c, cnt);
         dj_decimal_arith ('/', &acc, &c, out);
      } else {
         set_double (out, dj_value_as_double (&acc) / cnt);
      }
      return true;
   }
   case XO_MIN:
   case XO_MAX: {
      bool have = false;
      for (uint32_t i = 0; i < l.n; i++) {
         if (nullish (&l.v[i])) {
            continue;
         }
         int c = have ? dj_value_cmp (&l.v[i], out) : 0;
         if (!have || (e->op->id == XO_MIN ? c < 0 : c > 0)) {
            *out = l.v[i];
            have = true;
         }
      }
      if (!have) {
         set_null (out);
      }
      return true;
   }
   default: { /* stdDev */
      double mean = 0, m2 = 0;
      uint32_t cnt = 0;
      for (uint32_t i = 0; i < l.n; i++) {
         if (isnum (&l.v[i])) {
            double x = dj_value_as_double (&l.v[i]);
            cnt++;
            double d = x - mean;
            mean += d / cnt;
            m2 += d * (x - mean);
         }
      }
      if (e->op->id == XO_STDDEVPOP ? cnt == 0 : cnt < 2) {
         set_null (out);
      } else {
         set_double (out, sqrt (m2 / (e->op->id == XO_STDDEVPOP ? cnt : cnt - 1)));
      }
      return true;
   }
   }
}

static bool
arg (const dj_expr_t *e, int i, dj_eval_t *ev, bson_value_t *out)
{
   if (i >= e->nargs || !e->args[i]) {
      *out = MISSING;
      return true;
   }
   return eval (e->args[i], ev, out);
}

static bool
set_contains (const vlist_t *l, const bson_value_t *v)
{
   for (uint32_t i = 0; i < l->n; i++) {
      if (dj_value_cmp (&l->v[i], v) == 0 && dj_type_rank (l->v[i].value_type) == dj_type_rank (v->value_type)) {
         return true;
      }
   }
   return false;
}

static bool
eval_op (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *out)
{
   bson_value_t a, b, c, d;
   vlist_t l;
   const char *s = NULL;
   uint32_t sn = 0;
   int id = e->op->id;

   switch (id) {
   case XO_ADD: return eval_add (e, ev, out, false);
   case XO_MULTIPLY: return eval_add (e, ev, out, true);
   case XO_SUBTRACT:
      if (!arg (e, 0, ev, &a) || !arg (e, 1, ev, &b)) {
         return false;
      }
      if (nullish (&a) || nullish (&b)) {
         set_null (out);
         return true;
      }
      if (a.value_type == BSON_TYPE_DATE_TIME && b.value_type == BSON_TYPE_DATE_TIME) {
         set_long (out, a.value.v_datetime - b.value.v_datetime);
         return true;
      }
      if (a.value_type == BSON_TYPE_DATE_TIME && isnum (&b)) {
         out->value_type = BSON_TYPE_DATE_TIME;
         out->value.v_datetime = a.value.v_datetime - (int64_t) llround (dj_value_as_double (&b));
         return true;
      }
      if (!isnum (&a) || !isnum (&b)) {
         return fail (ev, 16556, "can't $subtract %s from %s", tname (&b), tname (&a));
      }
      num_binop ('-', &a, &b, out);
      return true;
   case XO_DIVIDE:
   case XO_MOD:
      if (!arg (e, 0, ev, &a) || !arg (e, 1, ev, &b)) {
         return false;
      }
      if (nullish (&a) || nullish (&b)) {
         set_null (out);
         return true;
      }
      if (!isnum (&a) || !isnum (&b)) {
         return fail (ev, id == XO_DIVIDE ? 16609 : 16611, "%s only supports numeric types, not %s and %s", e->op->name,
                      tname (&a), tname (&b));
      }
      {
         bson_value_t zero = {.value_type = BSON_TYPE_INT32};
         if (dj_number_cmp (&b, &zero) == 0) {
            return fail (ev, id == XO_DIVIDE ? 2 : 16610, "can't %s by zero", e->op->name);
         }
      }
      if (a.value_type == BSON_TYPE_DECIMAL128 || b.value_type == BSON_TYPE_DECIMAL128) {
         if (id == XO_DIVIDE) {
            return dj_decimal_arith ('/', &a, &b, out);
         }
         double x = dj_value_as_double (&a), y = dj_value_as_double (&b);
         set_double (out, fmod (x, y));
         dj_decimal_from_value (out, out);
         return true;
      }
      if (id == XO_DIVIDE) {
         set_double (out, dj_value_as_double (&a) / dj_value_as_double (&b));
         return true;
      }
      if (a.value_type == BSON_TYPE_DOUBLE || b.value_type == BSON_TYPE_DOUBLE) {
         set_double (out, fmod (dj_value_as_double (&a), dj_value_as_double (&b)));
         return true;
      }
      {
         int64_t x = a.value_type == BSON_TYPE_INT32 ? a.value.v_int32 : a.value.v_int64;
         int64_t y = b.value_type == BSON_TYPE_INT32 ? b.value.v_int32 : b.value.v_int64;
         int64_t r = y == -1 ? 0 : x % y;
         if (a.value_type == BSON_TYPE_INT32 && b.value_type == BSON_TYPE_INT32) {
            set_int (out, r);
         } else {
            set_long (out, r);
         }
      }
      return true;
   case XO_POW:
      if (!arg (e, 0, ev, &a) || !arg (e, 1, ev, &b)) {
         return false;
      }
      if (nullish (&a) || nullish (&b)) {
         set_null (out);
         return true;
      }
      if (!isnum (&a) || !isnum (&b)) {
         return fail (ev, 28762, "$pow's base must be numeric, not %s", tname (isnum (&a) ? &b : &a));
      }
      {
         double x = dj_value_as_double (&a), y = dj_value_as_double (&b);
         if (x == 0 && y < 0) {
            return fail (ev, 28764, "$pow cannot take a base of 0 and a negative exponent");
         }
         bool ints = (a.value_type == BSON_TYPE_INT32 || a.value_type == BSON_TYPE_INT64) &&
                     (b.value_type == BSON_TYPE_INT32 || b.value_type == BSON_TYPE_INT64) && y >= 0;
         double r = pow (x, y);
         if (ints && fabs (r) < 9.2e18) {
            /* exact integer power when it fits */
            int64_t base = (int64_t) x, res = 1;
            bool ovf = false;
            for (int64_t k = 0; k < (int64_t) y && !ovf; k++) {
               ovf = __builtin_mul_overflow (res, base, &res);
            }
            if (!ovf) {
               if (a.value_type == BSON_TYPE_INT32 && b.value_type == BSON_TYPE_INT32 && res >= INT32_MIN && res <= INT32_MAX) {
                  set_int (out, res);
               } else {
                  set_long (out, res);
               }
               return true;
            }
         }
         set_double (out, r);
         if (a.value_type == BSON_TYPE_DECIMAL128 || b.value_type == BSON_TYPE_DECIMAL128) {
            dj_decimal_from_value (out, out);
         }
      }
      return true;
   case XO_ABS:
   case XO_CEIL:
   case XO_FLOOR:
   case XO_SQRT:
   case XO_EXP:
   case XO_LN:
   case XO_LOG10:
   case XO_SIN:
   case XO_COS:
   case XO_TAN:
   case XO_ASIN:
   case XO_ACOS:
   case XO_ATAN:
   case XO_SINH:
   case XO_COSH:
   case XO_TANH:
   case XO_ASINH:
   case XO_ACOSH:
   case XO_ATANH:
   case XO_DEG2RAD:
   case XO_RAD2DEG: return eval_math1 (e, ev, out);
   case XO_LOG:
   case XO_ATAN2: {
      double x, y;
      if (!arg (e, 0, ev, &a) || !arg (e, 1, ev, &b)) {
         return false;
      }
      if (nullish (&a) || nullish (&b)) {
         set_null (out);
         return true;
      }
      if (!to_double_arg (ev, e->op->name, &a, &x) || !to_double_arg (ev, e->op->name, &b, &y)) {
         return false;
      }
      if (id == XO_LOG) {
         if (x <= 0 || y <= 0 || y == 1) {
            return fail (ev, 28758, "$log's argument must be a positive number, and the base must be positive and not 1");
         }
         set_double (out, log (x) / log (y));
      } else {
         set_double (out, atan2 (x, y));
      }
      return true;
   }
   case XO_ROUND: return eval_round (e, ev, out, false);
   case XO_TRUNC: return eval_round (e, ev, out, true);
   case XO_EQ:
   case XO_NE:
   case XO_GT:
   case XO_GTE:
   case XO_LT:
   case XO_LTE:
   case XO_CMP: {
      if (!arg (e, 0, ev, &a) || !arg (e, 1, ev, &b)) {
         return false;
      }
      int r = dj_expr_cmp (&a, &b);
      switch (id) {
      case XO_EQ: set_bool (out, r == 0); break;
      case XO_NE: set_bool (out, r != 0); break;
      case XO_GT: set_bool (out, r > 0); break;
      case XO_GTE: set_bool (out, r >= 0); break;
      case XO_LT: set_bool (out, r < 0); break;
      case XO_LTE: set_bool (out, r <= 0); break;
      default: set_int (out, r < 0 ? -1 : r > 0); break;
      }
      return true;
   }
   case XO_AND:
   case XO_OR:
      for (int i = 0; i < e->nargs; i++) {
         if (!eval (e->args[i], ev, &a)) {
            return false;
         }
         bool tv = dj_value_truthy (&a);
         if (id == XO_AND ? !tv : tv) {
            set_bool (out, id == XO_OR);
            return true;
         }
      }
      set_bool (out, id == XO_AND);
      return true;
   case XO_NOT:
      if (!arg (e, 0, ev, &a)) {
         return false;
      }
      set_bool (out, !dj_value_truthy (&a));
      return true;
   case XO_COND:
      if (!arg (e, 0, ev, &a)) {
         return false;
      }
      return arg (e, dj_value_truthy (&a) ? 1 : 2, ev, out);
   case XO_IFNULL:
      for (int i = 0; i < e->nargs; i++) {
         if (!eval (e->args[i], ev, &a)) {
            return false;
         }
         if (!nullish (&a) || i == e->nargs - 1) {
            *out = a;
            return true;
         }
      }
      return true;
   case XO_SWITCH:
      for (int i = 0; i + 1 < e->nargs; i += 2) {
         if (!eval (e->args[i], ev, &a)) {
            return false;
         }
         if (dj_value_truthy (&a)) {
            return eval (e->args[i + 1], ev, out);
         }
      }
      if (!e->args[e->nargs - 1]) {
         return fail (ev, 40066, "$switch could not find a matching branch for an input, and no default was specified.");
      }
      return eval (e->args[e->nargs - 1], ev, out);
   case XO_TYPE:
      if (!arg (e, 0, ev, &a)) {
         return false;
      }
      s = dj_type_name (a.value_type);
      arena_str (ev->arena, s, strlen (s), out);
      return true;
   case XO_ISNUMBER:
      if (!arg (e, 0, ev, &a)) {
         return false;
      }
      set_bool (out, isnum (&a));
      return true;
   case XO_ISARRAY:
      if (!arg (e, 0, ev, &a)) {
         return false;
      }
      set_bool (out, a.value_type == BSON_TYPE_ARRAY);
      return true;
   case XO_CONVERT: {
      if (!arg (e, 0, ev, &a) || !arg (e, 1, ev, &b)) {
         return false;
      }
      if (nullish (&b)) {
         set_null (out);
         return true;
      }
      int to = convert_target (&b);
      if (to < 0) {
         return fail (ev, 2, "Unknown type name: %s", b.value_type == BSON_TYPE_UTF8 ? b.value.v_utf8.str : tname (&b));
      }
      if (nullish (&a)) {
         if (e->args[3]) {
            return eval (e->args[3], ev, out);
         }
         set_null (out);
         return true;
      }
      if (!convert (ev, &a, to, out)) {
         if (e->args[2]) {
            return eval (e->args[2], ev, out);
         }
         return false;
      }
      return true;
   }
   case XO_TOSTRING:
   case XO_TOINT:
   case XO_TOLONG:
   case XO_TODOUBLE:
   case XO_TODECIMAL:
   case XO_TOBOOL:
   case XO_TODATE:
   case XO_TOOBJECTID: {
      static const int targets[] = {BSON_TYPE_UTF8, BSON_TYPE_INT32, BSON_TYPE_INT64, BSON_TYPE_DOUBLE,
                                    BSON_TYPE_DECIMAL128, BSON_TYPE_BOOL, BSON_TYPE_DATE_TIME, BSON_TYPE_OID};
      if (!arg (e, 0, ev, &a)) {
         return false;
      }
      if (nullish (&a)) {
         set_null (out);
         return true;
      }
      return convert (ev, &a, targets[id - XO_TOSTRING], out);
   }
   case XO_CONCAT: {
      dj_buf_t buf;
      dj_buf_init (&buf);
      bool isnull = false;
      for (int i = 0; i < e->nargs; i++) {
         if (!eval (e->args[i], ev, &a)) {
            dj_buf_cleanup (&buf);
            return false;
         }
         if (nullish (&a)) {
            isnull = true;
            continue;
         }
         if (!as_str (ev, "$concat", &a, &s, &sn)) {
            dj_buf_cleanup (&buf);
            return false;
         }
         dj_buf_append (&buf, s, sn);
      }
      if (isnull) {
         set_null (out);
      } else {
         arena_str (ev->arena, buf.data ? (char *) buf.data : "", buf.len, out);
      }
      dj_buf_cleanup (&buf);
      return true;
   }
   case XO_SUBSTRCP:
   case XO_SUBSTRBYTES: {
      int64_t start, len;
      if (!arg (e, 0, ev, &a) || !arg (e, 1, ev, &b) || !arg (e, 2, ev, &c)) {
         return false;
      }
      if (nullish (&a)) {
         arena_str (ev->arena, "", 0, out);
         return true;
      }
      if (a.value_type != BSON_TYPE_UTF8) {
         if (!stringify (ev, &a, &a)) {
            return false;
         }
      }
      if (!isnum (&b) || !dj_value_as_int64_exact (&b, &start) || !isnum (&c) || !dj_value_as_int64_exact (&c, &len)) {
         return fail (ev, 34450, "%s: starting index and length must be numeric integers", e->op->name);
      }
      if (start < 0) {
         return fail (ev, 34455, "%s: starting index must be non-negative (got: %" PRId64 ")", e->op->name, start);
      }
      s = a.value.v_utf8.str;
      sn = a.value.v_utf8.len;
      if (id == XO_SUBSTRCP) {
         size_t from = utf8_offset (s, sn, (size_t) start);
         size_t to = len < 0 ? sn : utf8_offset (s + from, sn - from, (size_t) len) + from;
         arena_str (ev->arena, s + from, to - from, out);
      } else {
         size_t from = (size_t) start > sn ? sn : (size_t) start;
         size_t to = len < 0 || from + (size_t) len > sn ? sn : from + (size_t) len;
         if ((from < sn && ((unsigned char) s[from] & 0xC0) == 0x80) || (to < sn && ((unsigned char) s[to] & 0xC0) == 0x80)) {
            return fail (ev, 28656, "$substrBytes: Invalid range, starting index is a UTF-8 continuation byte.");
         }
         arena_str (ev->arena, s + from, to - from, out);
      }
      return true;
   }
   case XO_STRLENCP:
   case XO_STRLENBYTES:
      if (!arg (e, 0, ev, &a)) {
         return false;
      }
      if (a.value_type != BSON_TYPE_UTF8) {
         return fail (ev, id == XO_STRLENCP ? 34471 : 34473, "%s requires a string argument, found: %s", e->op->name, tname (&a));
      }
      set_int (out, id == XO_STRLENCP ? (int64_t) utf8_cp_len (a.value.v_utf8.str, a.value.v_utf8.len) : a.value.v_utf8.len);
      return true;
   case XO_INDEXOFCP:
   case XO_INDEXOFBYTES: {
      if (!arg (e, 0, ev, &a) || !arg (e, 1, ev, &b) || !arg (e, 2, ev, &c) || !arg (e, 3, ev, &d)) {
         return false;
      }
      if (nullish (&a)) {
         set_null (out);
         return true;
      }
      if (a.value_type != BSON_TYPE_UTF8) {
         return fail (ev, 40091, "%s requires a string as the first argument, found: %s", e->op->name, tname (&a));
      }
      if (b.value_type != BSON_TYPE_UTF8) {
         return fail (ev, 40092, "%s requires a string as the second argument, found: %s", e->op->name, tname (&b));
      }
      s = a.value.v_utf8.str;
      sn = a.value.v_utf8.len;
      int64_t from = 0, to = id == XO_INDEXOFCP ? (int64_t) utf8_cp_len (s, sn) : sn;
      if (c.value_type != BSON_TYPE_EOD && (!dj_value_as_int64_exact (&c, &from) || from < 0)) {
         return fail (ev, 40097, "%s requires a nonnegative integral start index", e->op->name);
      }
      if (d.value_type != BSON_TYPE_EOD && (!dj_value_as_int64_exact (&d, &to) || to < 0)) {
         return fail (ev, 40097, "%s requires a nonnegative integral end index", e->op->name);
      }
      size_t bfrom = id == XO_INDEXOFCP ? utf8_offset (s, sn, (size_t) from) : (size_t) from;
      size_t bto = id == XO_INDEXOFCP ? utf8_offset (s, sn, (size_t) to) : ((size_t) to > sn ? sn : (size_t) to);
      int64_t found = -1;
      for (size_t i = bfrom; i + b.value.v_utf8.len <= bto && i <= sn; i++) {
         if (!memcmp (s + i, b.value.v_utf8.str, b.value.v_utf8.len)) {
            found = id == XO_INDEXOFCP ? (int64_t) utf8_cp_len (s, i) : (int64_t) i;
            break;
         }
      }
      set_int (out, found);
      return true;
   }
   case XO_TOLOWER:
   case XO_TOUPPER: {
      if (!arg (e, 0, ev, &a)) {
         return false;
      }
      if (nullish (&a)) {
         arena_str (ev->arena, "", 0, out);
         return true;
      }
      if (a.value_type != BSON_TYPE_UTF8 && !stringify (ev, &a, &a)) {
         return false;
      }
      arena_str (ev->arena, a.value.v_utf8.str, a.value.v_utf8.len, out);
      char *p = (char *) out->value.v_utf8.str;
      for (uint32_t i = 0; i < out->value.v_utf8.len; i++) {
         /* ASCII only, as MongoDB's $toLower/$toUpper */
         p[i] = (char) (id == XO_TOLOWER ? tolower ((unsigned char) p[i]) : toupper ((unsigned char) p[i]));
      }
      return true;
   }
   case XO_TRIM:
   case XO_LTRIM:
   case XO_RTRIM: {
      if (!arg (e, 0, ev, &a) || !arg (e, 1, ev, &b)) {
         return false;
      }
      if (nullish (&a) || b.value_type == BSON_TYPE_NULL) {
         set_null (out);
         return true;
      }
      if (a.value_type != BSON_TYPE_UTF8) {
         return fail (ev, 50699, "%s requires its input to be a string, got %s", e->op->name, tname (&a));
      }
      const char *chars = " \t\n\v\f\r";
      size_t nchars = strlen (chars);
      bool ws = b.value_type == BSON_TYPE_EOD;
      if (!ws) {
         if (b.value_type != BSON_TYPE_UTF8) {
            return fail (ev, 50700, "%s requires 'chars' to be a string, got %s", e->op->name, tname (&b));
         }
         chars = b.value.v_utf8.str;
         nchars = b.value.v_utf8.len;
      }
      s = a.value.v_utf8.str;
      size_t lo = 0, hi = a.value.v_utf8.len;
      if (id != XO_RTRIM) {
         while (lo < hi && memchr (chars, s[lo], nchars) && (ws ? s[lo] != '\0' : true)) {
            lo++;
         }
      }
      if (id != XO_LTRIM) {
         while (hi > lo && memchr (chars, s[hi - 1], nchars)) {
            hi--;
         }
      }
      arena_str (ev->arena, s + lo, hi - lo, out);
      return true;
   }
   case XO_SPLIT: {
      if (!arg (e, 0, ev, &a) || !arg (e, 1, ev, &b)) {
         return false;
      }
      if (nullish (&a)) {
         set_null (out);
         return true;
      }
      if (a.value_type != BSON_TYPE_UTF8) {
         return fail (ev, 40085, "$split requires an expression that evaluates to a string as a first argument, found: %s", tname (&a));
      }
      if (b.value_type != BSON_TYPE_UTF8) {
         return fail (ev, 40086, "$split requires an expression that evaluates to a string as a second argument, found: %s", tname (&b));
      }
      if (b.value.v_utf8.len == 0) {
         return fail (ev, 40087, "$split requires a non-empty separator");
      }
      bson_t arr = BSON_INITIALIZER;
      uint32_t k = 0;
      s = a.value.v_utf8.str;
      sn = a.value.v_utf8.len;
      size_t start = 0;
      char buf[16];
      const char *key;
      for (size_t i = 0; i + b.value.v_utf8.len <= sn;) {
         if (!memcmp (s + i, b.value.v_utf8.str, b.value.v_utf8.len)) {
            bson_uint32_to_string (k++, &key, buf, sizeof buf);
            bson_append_utf8 (&arr, key, -1, s + start, (int) (i - start));
            i += b.value.v_utf8.len;
            start = i;
         } else {
            i++;
         }
      }
      bson_uint32_to_string (k++, &key, buf, sizeof buf);
      bson_append_utf8 (&arr, key, -1, s + start, (int) (sn - start));
      dj_arena_value (ev->arena, &arr, true, out);
      bson_destroy (&arr);
      return true;
   }
   case XO_REPLACEONE:
   case XO_REPLACEALL: {
      if (!arg (e, 0, ev, &a) || !arg (e, 1, ev, &b) || !arg (e, 2, ev, &c)) {
         return false;
      }
      if (nullish (&a) || nullish (&b) || nullish (&c)) {
         set_null (out);
         return true;
      }
      if (a.value_type != BSON_TYPE_UTF8 || b.value_type != BSON_TYPE_UTF8 || c.value_type != BSON_TYPE_UTF8) {
         return fail (ev, 51746, "%s requires that 'input', 'find' and 'replacement' be strings", e->op->name);
      }
      dj_buf_t buf;
      dj_buf_init (&buf);
      s = a.value.v_utf8.str;
      sn = a.value.v_utf8.len;
      size_t i = 0;
      bool done = false;
      while (i <= sn) {
         if (!done && i + b.value.v_utf8.len <= sn && !memcmp (s + i, b.value.v_utf8.str, b.value.v_utf8.len)) {
            dj_buf_append (&buf, c.value.v_utf8.str, c.value.v_utf8.len);
            i += b.value.v_utf8.len;
            done = id == XO_REPLACEONE;
            if (b.value.v_utf8.len == 0) {
               if (i < sn) {
                  dj_buf_putc (&buf, (uint8_t) s[i]);
               }
               i++;
            }
            continue;
         }
         if (i < sn) {
            dj_buf_putc (&buf, (uint8_t) s[i]);
         }
         i++;
      }
      arena_str (ev->arena, buf.data ? (char *) buf.data : "", buf.len, out);
      dj_buf_cleanup (&buf);
      return true;
   }
   case XO_REGEXMATCH:
   case XO_REGEXFIND:
   case XO_REGEXFINDALL: {
      if (!arg (e, 0, ev, &a) || !arg (e, 1, ev, &b) || !arg (e, 2, ev, &c)) {
         return false;
      }
      if (nullish (&b)) {
         if (id == XO_REGEXMATCH) {
            set_bool (out, false);
         } else if (id == XO_REGEXFIND) {
            set_null (out);
         } else {
            list_to_value (ev, NULL, 0, out);
         }
         return true;
      }
      if (!nullish (&a) && a.value_type != BSON_TYPE_UTF8) {
         return fail (ev, 51104, "%s needs 'input' to be of type string", e->op->name);
      }
      pcre2_code *re = compile_re (ev, e->op->name, &b, c.value_type == BSON_TYPE_EOD ? NULL : &c);
      if (!re) {
         return false;
      }
      if (nullish (&a)) {
         pcre2_code_free (re);
         if (id == XO_REGEXMATCH) {
            set_bool (out, false);
         } else if (id == XO_REGEXFIND) {
            set_null (out);
         } else {
            list_to_value (ev, NULL, 0, out);
         }
         return true;
      }
      pcre2_match_data *md = pcre2_match_data_create_from_pattern (re, NULL);
      s = a.value.v_utf8.str;
      sn = a.value.v_utf8.len;
      if (id != XO_REGEXFINDALL) {
         int rc = pcre2_match (re, (PCRE2_SPTR) s, sn, 0, 0, md, NULL);
         if (id == XO_REGEXMATCH) {
            set_bool (out, rc >= 0);
         } else if (rc < 0) {
            set_null (out);
         } else {
            bson_t doc = BSON_INITIALIZER;
            regex_result (ev, s, md, rc, &doc);
            dj_arena_value (ev->arena, &doc, false, out);
            bson_destroy (&doc);
         }
      } else {
         bson_t arr = BSON_INITIALIZER;
         uint32_t k = 0;
         PCRE2_SIZE off = 0;
         while (off <= sn) {
            int rc = pcre2_match (re, (PCRE2_SPTR) s, sn, off, 0, md, NULL);
            if (rc < 0) {
               break;
            }
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer (md);
            bson_t doc = BSON_INITIALIZER;
            regex_result (ev, s, md, rc, &doc);
            char buf[16];
            const char *key;
            bson_uint32_to_string (k++, &key, buf, sizeof buf);
            bson_append_document (&arr, key, -1, &doc);
            bson_destroy (&doc);
            off = ov[1] > ov[0] ? ov[1] : ov[1] + 1;
         }
         dj_arena_value (ev->arena, &arr, true, out);
         bson_destroy (&arr);
      }
      pcre2_match_data_free (md);
      pcre2_code_free (re);
      return true;
   }
   case XO_STRCASECMP: {
      if (!arg (e, 0, ev, &a) || !arg (e, 1, ev, &b)) {
         return false;
      }
      const char *x = "", *y = "";
      uint32_t xn = 0, yn = 0;
      if (!nullish (&a)) {
         if (a.value_type != BSON_TYPE_UTF8 && !stringify (ev, &a, &a)) {
            return false;
         }
         x = a.value.v_utf8.str;
         xn = a.value.v_utf8.len;
      }
      if (!nullish (&b)) {
         if (b.value_type != BSON_TYPE_UTF8 && !stringify (ev, &b, &b)) {
            return false;
         }
         y = b.value.v_utf8.str;
         yn = b.value.v_utf8.len;
      }
      int r = 0;
      for (uint32_t i = 0; i < xn && i < yn && !r; i++) {
         r = toupper ((unsigned char) x[i]) - toupper ((unsigned char) y[i]);
      }
      if (!r) {
         r = (xn > yn) - (xn < yn);
      }
      set_int (out, r < 0 ? -1 : r > 0);
      return true;
   }
   case XO_YEAR:
   case XO_MONTH:
   case XO_DAYOFMONTH:
   case XO_DAYOFWEEK:
   case XO_DAYOFYEAR:
   case XO_HOUR:
   case XO_MINUTE:
   case XO_SECOND:
   case XO_MILLISECOND:
   case XO_WEEK:
   case XO_ISOWEEK:
   case XO_ISOWEEKYEAR:
   case XO_ISODAYOFWEEK: return eval_date_part (e, ev, out);
   case XO_DATETOSTRING: {
      const dj_tz_t *tz;
      bool tz_null = false;
      int64_t ms;
      if (!arg (e, 0, ev, &a) || !arg (e, 1, ev, &b) || !get_tz (e->args[2], ev, &tz, &tz_null)) {
         return false;
      }
      if (nullish (&a)) {
         return e->args[3] ? eval (e->args[3], ev, out) : (set_null (out), true);
      }
      if (tz_null || b.value_type == BSON_TYPE_NULL) {
         set_null (out);
         return true;
      }
      if (!as_date_ms (ev, "$dateToString", &a, &ms)) {
         return false;
      }
      if (b.value_type != BSON_TYPE_EOD && b.value_type != BSON_TYPE_UTF8) {
         return fail (ev, 18533, "$dateToString requires that 'format' be a string, found: %s", tname (&b));
      }
      return format_date (ev, ms, tz, b.value_type == BSON_TYPE_UTF8 ? b.value.v_utf8.str : "%Y-%m-%dT%H:%M:%S.%LZ", out);
   }
   case XO_DATEFROMSTRING: {
      const dj_tz_t *tz;
      bool tz_null = false, had;
      int64_t ms;
      if (!arg (e, 0, ev, &a) || !arg (e, 1, ev, &b) || !get_tz (e->args[2], ev, &tz, &tz_null)) {
         return false;
      }
      if (nullish (&a)) {
         return e->args[4] ? eval (e->args[4], ev, out) : (set_null (out), true);
      }
      if (tz_null) {
         set_null (out);
         return true;
      }
      if (a.value_type != BSON_TYPE_UTF8) {
         if (e->args[3]) {
            return eval (e->args[3], ev, out);
         }
         return fail (ev, 241, "$dateFromString requires that 'dateString' be a string, found: %s", tname (&a));
      }
      if (!parse_iso (a.value.v_utf8.str, tz, &ms, &had)) {
         if (e->args[3]) {
            return eval (e->args[3], ev, out);
         }
         return fail (ev, 241, "Error parsing date string '%s'", a.value.v_utf8.str);
      }
      out->value_type = BSON_TYPE_DATE_TIME;
      out->value.v_datetime = ms;
      return true;
   }
   case XO_DATETRUNC:
   case XO_DATEADD:
   case XO_DATESUBTRACT:
   case XO_DATEDIFF: {
      /* args: trunc (date, unit, binSize, timezone, startOfWeek);
       *       add (startDate, unit, amount, timezone);
       *       diff (startDate, endDate, unit, timezone, startOfWeek) */
      bson_value_t unit_v;
      int tzslot = id == XO_DATEDIFF ? 3 : (id == XO_DATETRUNC ? 3 : 3);
      const dj_tz_t *tz;
      bool tz_null = false;
      int64_t ms, ms2 = 0;
      if (!arg (e, 0, ev, &a) || !arg (e, id == XO_DATEDIFF ? 2 : 1, ev, &unit_v) ||
          !get_tz (e->args[tzslot], ev, &tz, &tz_null)) {
         return false;
      }
      if (id == XO_DATEDIFF && !arg (e, 1, ev, &b)) {
         return false;
      }
      if (id == XO_DATEADD || id == XO_DATESUBTRACT) {
         if (!arg (e, 2, ev, &b)) {
            return false;
         }
      }
      if (id == XO_DATETRUNC && !arg (e, 2, ev, &b)) {
         return false;
      }
      /* startOfWeek (args[4] of $dateTrunc and $dateDiff): 0 = Sunday, the
       * default .. 6 = Saturday; case-insensitive day names or their first
       * three letters. https://www.mongodb.com/docs/manual/reference/operator/aggregation/dateTrunc/ */
      int start_dow = 0;
      bool sow_null = false;
      if ((id == XO_DATETRUNC || id == XO_DATEDIFF) && e->args[4]) {
         bson_value_t sow;
         static const char *const days[] = {"sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"};
         if (!arg (e, 4, ev, &sow)) {
            return false;
         }
         if (nullish (&sow)) {
            sow_null = true;
         } else {
            start_dow = -1;
            for (int d = 0; sow.value_type == BSON_TYPE_UTF8 && d < 7; d++) {
               if (!strcasecmp (sow.value.v_utf8.str, days[d]) ||
                   (strlen (sow.value.v_utf8.str) == 3 && !strncasecmp (sow.value.v_utf8.str, days[d], 3))) {
                  start_dow = d;
               }
            }
            if (start_dow < 0) {
               return fail (ev, 5439018, "%s parameter 'startOfWeek' value cannot be recognized as a day of a week",
                            e->op->name);
            }
         }
      }
      if (nullish (&a) || nullish (&unit_v) || tz_null || ((id != XO_DATETRUNC) && nullish (&b))) {
         set_null (out);
         return true;
      }
      if (sow_null && unit_v.value_type == BSON_TYPE_UTF8 && !strcmp (unit_v.value.v_utf8.str, "week")) {
         set_null (out); /* an explicit null startOfWeek with unit week */
         return true;
      }
      if (unit_v.value_type != BSON_TYPE_UTF8 || !valid_unit (unit_v.value.v_utf8.str)) {
         return fail (ev, 5439014, "%s requires 'unit' to be a valid time unit", e->op->name);
      }
      const char *unit = unit_v.value.v_utf8.str;
      if (!as_date_ms (ev, e->op->name, &a, &ms)) {
         return false;
      }
      if (id == XO_DATEDIFF && !as_date_ms (ev, e->op->name, &b, &ms2)) {
         return false;
      }
      parts_t p, q;
      to_parts (ms, tz, &p);
      if (id == XO_DATEADD || id == XO_DATESUBTRACT) {
         int64_t amount;
         if (!dj_value_as_int64_exact (&b, &amount)) {
            return fail (ev, 5166405, "%s requires 'amount' to be an integer", e->op->name);
         }
         if (id == XO_DATESUBTRACT) {
            amount = -amount;
         }
         int64_t r;
         if (unit_ms (unit)) {
            if (!strcmp (unit, "day") || !strcmp (unit, "week")) {
               /* calendar days in the time zone: DST changes keep local time */
               int64_t days = amount * (!strcmp (unit, "week") ? 7 : 1);
               r = from_parts (p.year, p.month, (int64_t) p.day + days, p.hour, p.minute, p.second, p.ms, tz);
            } else {
               r = ms + amount * unit_ms (unit);
            }
         } else {
            int64_t months = amount * (!strcmp (unit, "year") ? 12 : !strcmp (unit, "quarter") ? 3 : 1);
            int64_t tm = (int64_t) p.month - 1 + months;
            int64_t y = p.year + floordiv (tm, 12);
            int64_t mo = tm - floordiv (tm, 12) * 12 + 1;
            /* clamp the day to the target month's length, as MongoDB does */
            int64_t dim = dj_days_from_civil (mo == 12 ? y + 1 : y, mo == 12 ? 1 : (unsigned) mo + 1, 1) - dj_days_from_civil (y, (unsigned) mo, 1);
            r = from_parts (y, mo, p.day > dim ? dim : p.day, p.hour, p.minute, p.second, p.ms, tz);
         }
         out->value_type = BSON_TYPE_DATE_TIME;
         out->value.v_datetime = r;
         return true;
      }
      if (id == XO_DATEDIFF) {
         to_parts (ms2, tz, &q);
         int64_t r;
         if (!strcmp (unit, "year")) {
            r = q.year - p.year;
         } else if (!strcmp (unit, "quarter")) {
            r = (q.year * 4 + (q.month - 1) / 3) - (p.year * 4 + (p.month - 1) / 3);
         } else if (!strcmp (unit, "month")) {
            r = (q.year * 12 + q.month) - (p.year * 12 + p.month);
         } else if (!strcmp (unit, "week")) {
            /* weeks start on startOfWeek (Sunday by default); dow is 1 = Sunday */
            int64_t d1 = floordiv (ms + (int64_t) p.offset * 1000, 86400000) - (p.dow - 1 - start_dow + 7) % 7;
            int64_t d2 = floordiv (ms2 + (int64_t) q.offset * 1000, 86400000) - (q.dow - 1 - start_dow + 7) % 7;
            r = (d2 - d1) / 7;
         } else if (!strcmp (unit, "day")) {
            r = floordiv (ms2 + (int64_t) q.offset * 1000, 86400000) - floordiv (ms + (int64_t) p.offset * 1000, 86400000);
         } else {
            int64_t u = unit_ms (unit);
            r = floordiv (ms2, u) - floordiv (ms, u);
         }
         set_long (out, r);
         return true;
      }
      /* $dateTrunc */
      int64_t bin = 1;
      if (b.value_type != BSON_TYPE_EOD && (!dj_value_as_int64_exact (&b, &bin) || bin <= 0)) {
         return fail (ev, 5439017, "$dateTrunc requires 'binSize' to be a positive integer");
      }
      int64_t r;
      if (!strcmp (unit, "year") || !strcmp (unit, "quarter") || !strcmp (unit, "month")) {
         int64_t per = !strcmp (unit, "year") ? 12 : !strcmp (unit, "quarter") ? 3 : 1;
         int64_t months = (p.year - 2000) * 12 + (p.month - 1);
         months = floordiv (months, per * bin) * per * bin;
         r = from_parts (2000 + floordiv (months, 12), months - floordiv (months, 12) * 12 + 1, 1, 0, 0, 0, 0, tz);
      } else if (!strcmp (unit, "week") || !strcmp (unit, "day")) {
         int64_t local_days = floordiv (ms + (int64_t) p.offset * 1000, 86400000);
         int64_t ref = dj_days_from_civil (2000, 1, 2) + start_dow; /* 2000-01-02 is a Sunday */
         int64_t per = !strcmp (unit, "week") ? 7 : 1;
         int64_t ddays = floordiv (local_days - (per == 7 ? ref : dj_days_from_civil (2000, 1, 1)), per * bin) * per * bin +
                         (per == 7 ? ref : dj_days_from_civil (2000, 1, 1));
         int64_t y;
         unsigned mo, dd;
         dj_civil_from_days (ddays, &y, &mo, &dd);
         r = from_parts (y, mo, dd, 0, 0, 0, 0, tz);
      } else {
         int64_t u = unit_ms (unit) * bin;
         int64_t ref = from_parts (2000, 1, 1, 0, 0, 0, 0, (unit_ms (unit) >= 3600000) ? tz : NULL);
         r = ref + floordiv (ms - ref, u) * u;
      }
      out->value_type = BSON_TYPE_DATE_TIME;
      out->value.v_datetime = r;
      return true;
   }
   case XO_DATEFROMPARTS: {
      static const int64_t dflt[] = {1970, 1, 1, 0, 0, 0, 0};
      int64_t vals[7];
      const dj_tz_t *tz;
      bool tz_null = false;
      if (!get_tz (e->args[7], ev, &tz, &tz_null)) {
         return false;
      }
      bool iso = e->args[8] != NULL;
      if (!iso && !e->args[0]) {
         return fail (ev, 40516, "$dateFromParts requires either 'year' or 'isoWeekYear' to be present");
      }
      for (int i = 0; i < 7; i++) {
         int slot = i;
         if (iso && i < 3) {
            slot = 8 + i;
         }
         if (!arg (e, slot, ev, &a)) {
            return false;
         }
         if (a.value_type == BSON_TYPE_EOD) {
            vals[i] = dflt[i];
            continue;
         }
         if (nullish (&a)) {
            set_null (out);
            return true;
         }
         if (!isnum (&a) || !dj_value_as_int64_exact (&a, &vals[i])) {
            return fail (ev, 40515, "'%s' must evaluate to an integer, found %s with value", e->op->named[slot], tname (&a));
         }
      }
      if (tz_null) {
         set_null (out);
         return true;
      }
      if (!iso && (vals[0] < 1 || vals[0] > 9999)) {
         return fail (ev, 40523, "'year' must evaluate to an integer in the range 1 to 9999, found %" PRId64, vals[0]);
      }
      int64_t r;
      if (iso) {
         /* ISO week date: Monday of week 1 is the Monday on or before Jan 4 */
         int64_t jan4 = dj_days_from_civil (vals[0], 1, 4);
         int wd = (int) (((jan4 % 7) + 7 + 3) % 7) + 1; /* ISO weekday */
         int64_t day = jan4 - (wd - 1) + (vals[1] - 1) * 7 + (vals[2] - 1);
         int64_t y;
         unsigned mo, dd;
         dj_civil_from_days (day, &y, &mo, &dd);
         r = from_parts (y, mo, dd, vals[3], vals[4], vals[5], vals[6], tz);
      } else {
         r = from_parts (vals[0], vals[1], vals[2], vals[3], vals[4], vals[5], vals[6], tz);
      }
      out->value_type = BSON_TYPE_DATE_TIME;
      out->value.v_datetime = r;
      return true;
   }
   case XO_DATETOPARTS: {
      const dj_tz_t *tz;
      bool tz_null = false;
      int64_t ms;
      parts_t p;
      if (!arg (e, 0, ev, &a) || !get_tz (e->args[1], ev, &tz, &tz_null) || !arg (e, 2, ev, &b)) {
         return false;
      }
      if (nullish (&a) || tz_null) {
         set_null (out);
         return true;
      }
      if (!as_date_ms (ev, "$dateToParts", &a, &ms)) {
         return false;
      }
      to_parts (ms, tz, &p);
      bson_t doc = BSON_INITIALIZER;
      if (dj_value_truthy (&b)) {
         int64_t wy;
         unsigned w;
         iso_week (&p, &wy, &w);
         BSON_APPEND_INT32 (&doc, "isoWeekYear", (int32_t) wy);
         BSON_APPEND_INT32 (&doc, "isoWeek", (int32_t) w);
         BSON_APPEND_INT32 (&doc, "isoDayOfWeek", (int32_t) iso_dow (&p));
      } else {
         BSON_APPEND_INT32 (&doc, "year", (int32_t) p.year);
         BSON_APPEND_INT32 (&doc, "month", (int32_t) p.month);
         BSON_APPEND_INT32 (&doc, "day", (int32_t) p.day);
      }
      BSON_APPEND_INT32 (&doc, "hour", (int32_t) p.hour);
      BSON_APPEND_INT32 (&doc, "minute", (int32_t) p.minute);
      BSON_APPEND_INT32 (&doc, "second", (int32_t) p.second);
      BSON_APPEND_INT32 (&doc, "millisecond", (int32_t) p.ms);
      dj_arena_value (ev->arena, &doc, false, out);
      bson_destroy (&doc);
      return true;
   }
   case XO_ARRAYELEMAT:
   case XO_FIRST:
   case XO_LAST: {
      int64_t idx = id == XO_LAST ? -1 : 0;
      if (!arg (e, 0, ev, &a)) {
         return false;
      }
      if (id == XO_ARRAYELEMAT) {
         if (!arg (e, 1, ev, &b)) {
            return false;
         }
         if (nullish (&a) || nullish (&b)) {
            set_null (out);
            return true;
         }
         if (a.value_type != BSON_TYPE_ARRAY) {
            return fail (ev, 28689, "$arrayElemAt's first argument must be an array, but is %s", tname (&a));
         }
         if (!isnum (&b)) {
            return fail (ev, 28690, "$arrayElemAt's second argument must be a numeric value, but is %s", tname (&b));
         }
         if (!dj_value_as_int64_exact (&b, &idx)) {
            return fail (ev, 28691, "$arrayElemAt's second argument must be representable as a 32-bit integer: %g", dj_value_as_double (&b));
         }
      } else if (nullish (&a)) {
         set_null (out);
         return true;
      } else if (a.value_type != BSON_TYPE_ARRAY) {
         return fail (ev, 28689, "%s's argument must be an array, but is %s", e->op->name, tname (&a));
      }
      as_list (ev, &a, &l);
      if (idx < 0) {
         idx += l.n;
      }
      *out = idx >= 0 && idx < (int64_t) l.n ? l.v[idx] : MISSING;
      return true;
   }
   case XO_SIZE:
      if (!arg (e, 0, ev, &a)) {
         return false;
      }
      if (a.value_type != BSON_TYPE_ARRAY) {
         return fail (ev, 17124, "The argument to $size must be an array. Type of the argument was: %s", tname (&a));
      }
      as_list (ev, &a, &l);
      set_int (out, l.n);
      return true;
   case XO_SLICE: {
      int64_t x, y = 0;
      if (!arg (e, 0, ev, &a) || !arg (e, 1, ev, &b) || !arg (e, 2, ev, &c)) {
         return false;
      }
      if (nullish (&a) || nullish (&b) || (e->nargs == 3 && nullish (&c))) {
         set_null (out);
         return true;
      }
      if (a.value_type != BSON_TYPE_ARRAY) {
         return fail (ev, 28724, "First argument to $slice must be an array, but is of type: %s", tname (&a));
      }
      if (!dj_value_as_int64_exact (&b, &x) || (e->nargs == 3 && !dj_value_as_int64_exact (&c, &y))) {
         return fail (ev, 28725, "Second argument to $slice must be a numeric value");
      }
      as_list (ev, &a, &l);
      int64_t from, count;
      if (e->nargs == 2) {
         from = x >= 0 ? 0 : (int64_t) l.n + x;
         count = x >= 0 ? x : -x;
      } else {
         if (y <= 0) {
            return fail (ev, 28729, "Third argument to $slice must be positive: %" PRId64, y);
         }
         from = x >= 0 ? x : (int64_t) l.n + x;
         count = y;
      }
      if (from < 0) {
         from = 0;
      }
      if (from > (int64_t) l.n) {
         from = l.n;
      }
      if (from + count > (int64_t) l.n) {
         count = (int64_t) l.n - from;
      }
      list_to_value (ev, l.v + from, (uint32_t) count, out);
      return true;
   }
   case XO_FILTER:
   case XO_MAP: {
      int64_t limit = -1;
      if (!arg (e, 0, ev, &a)) {
         return false;
      }
      if (id == XO_FILTER && e->args[3]) {
         if (!arg (e, 3, ev, &b)) {
            return false;
         }
         if (!nullish (&b) && (!dj_value_as_int64_exact (&b, &limit) || limit < 1)) {
            return fail (ev, 327391, "$filter: limit must be greater than 0");
         }
      }
      if (nullish (&a)) {
         set_null (out);
         return true;
      }
      if (a.value_type != BSON_TYPE_ARRAY) {
         return fail (ev, id == XO_FILTER ? 28651 : 16883, "input to %s must be an array not %s", e->op->name, tname (&a));
      }
      as_list (ev, &a, &l);
      bson_value_t *res = dj_arena_alloc (ev->arena, sizeof (bson_value_t) * (l.n ? l.n : 1));
      uint32_t k = 0;
      for (uint32_t i = 0; i < l.n && (limit < 0 || k < limit); i++) {
         if (!push_var (ev, e->as, &l.v[i])) {
            return false;
         }
         bool ok = eval (e->args[1], ev, &b);
         ev->nvars--;
         if (!ok) {
            return false;
         }
         if (id == XO_FILTER) {
            if (dj_value_truthy (&b)) {
               res[k++] = l.v[i];
            }
         } else {
            if (b.value_type == BSON_TYPE_EOD) {
               set_null (&b);
            }
            res[k++] = b;
         }
      }
      list_to_value (ev, res, k, out);
      return true;
   }
   case XO_REDUCE: {
      if (!arg (e, 0, ev, &a) || !arg (e, 1, ev, &b)) {
         return false;
      }
      if (nullish (&a)) {
         set_null (out);
         return true;
      }
      if (a.value_type != BSON_TYPE_ARRAY) {
         return fail (ev, 40080, "$reduce requires that 'input' be an array, found: %s", tname (&a));
      }
      as_list (ev, &a, &l);
      bson_value_t acc = b;
      for (uint32_t i = 0; i < l.n; i++) {
         if (!push_var (ev, "value", &acc) || !push_var (ev, "this", &l.v[i])) {
            return false;
         }
         bool ok = eval (e->args[2], ev, &acc);
         ev->nvars -= 2;
         if (!ok) {
            return false;
         }
      }
      *out = acc;
      return true;
   }
   case XO_RANGE: {
      int64_t from, to, step = 1;
      if (!arg (e, 0, ev, &a) || !arg (e, 1, ev, &b) || !arg (e, 2, ev, &c)) {
         return false;
      }
      if (!dj_value_as_int64_exact (&a, &from) || !isnum (&a)) {
         return fail (ev, 34443, "$range requires a numeric starting value, found value of type: %s", tname (&a));
      }
      if (!dj_value_as_int64_exact (&b, &to) || !isnum (&b)) {
         return fail (ev, 34445, "$range requires a numeric ending value, found value of type: %s", tname (&b));
      }
      if (c.value_type != BSON_TYPE_EOD && (!isnum (&c) || !dj_value_as_int64_exact (&c, &step))) {
         return fail (ev, 34447, "$range requires a numeric step value, found value of type: %s", tname (&c));
      }
      if (step == 0) {
         return fail (ev, 34449, "$range requires a non-zero step value");
      }
      bson_t arr = BSON_INITIALIZER;
      uint32_t k = 0;
      for (int64_t x = from; step > 0 ? x < to : x > to; x += step) {
         char buf[16];
         const char *key;
         if (k >= 10000000) {
            bson_destroy (&arr);
            return fail (ev, 146, "$range would use too much memory");
         }
         bson_uint32_to_string (k++, &key, buf, sizeof buf);
         bson_append_int32 (&arr, key, -1, (int32_t) x);
      }
      dj_arena_value (ev->arena, &arr, true, out);
      bson_destroy (&arr);
      return true;
   }
   case XO_REVERSEARRAY:
      if (!arg (e, 0, ev, &a)) {
         return false;
      }
      if (nullish (&a)) {
         set_null (out);
         return true;
      }
      if (a.value_type != BSON_TYPE_ARRAY) {
         return fail (ev, 34435, "The argument to $reverseArray must be an array, but was of type: %s", tname (&a));
      }
      as_list (ev, &a, &l);
      for (uint32_t i = 0; i < l.n / 2; i++) {
         bson_value_t t2 = l.v[i];
         l.v[i] = l.v[l.n - 1 - i];
         l.v[l.n - 1 - i] = t2;
      }
      list_to_value (ev, l.v, l.n, out);
      return true;
   case XO_IN:
      if (!arg (e, 0, ev, &a) || !arg (e, 1, ev, &b)) {
         return false;
      }
      if (b.value_type != BSON_TYPE_ARRAY) {
         return fail (ev, 40081, "$in requires an array as a second argument, found: %s", tname (&b));
      }
      as_list (ev, &b, &l);
      {
         bool found = false;
         for (uint32_t i = 0; i < l.n && !found; i++) {
            found = dj_expr_cmp (&l.v[i], &a) == 0;
         }
         set_bool (out, found);
      }
      return true;
   case XO_INDEXOFARRAY: {
      int64_t from = 0, to = -1;
      if (!arg (e, 0, ev, &a) || !arg (e, 1, ev, &b) || !arg (e, 2, ev, &c) || !arg (e, 3, ev, &d)) {
         return false;
      }
      if (nullish (&a)) {
         set_null (out);
         return true;
      }
      if (a.value_type != BSON_TYPE_ARRAY) {
         return fail (ev, 40090, "$indexOfArray requires an array as a first argument, found: %s", tname (&a));
      }
      if (c.value_type != BSON_TYPE_EOD && (!dj_value_as_int64_exact (&c, &from) || from < 0)) {
         return fail (ev, 40097, "$indexOfArray requires a nonnegative integral start index");
      }
      if (d.value_type != BSON_TYPE_EOD && (!dj_value_as_int64_exact (&d, &to) || to < 0)) {
         return fail (ev, 40097, "$indexOfArray requires a nonnegative integral end index");
      }
      as_list (ev, &a, &l);
      int64_t found = -1;
      for (int64_t i = from; i < (int64_t) l.n && (to < 0 || i < to); i++) {
         if (dj_expr_cmp (&l.v[i], &b) == 0) {
            found = i;
            break;
         }
      }
      set_int (out, found);
      return true;
   }
   case XO_CONCATARRAYS: {
      bson_t arr = BSON_INITIALIZER;
      uint32_t k = 0;
      for (int i = 0; i < e->nargs; i++) {
         if (!eval (e->args[i], ev, &a)) {
            bson_destroy (&arr);
            return false;
         }
         if (nullish (&a)) {
            bson_destroy (&arr);
            set_null (out);
            return true;
         }
         if (a.value_type != BSON_TYPE_ARRAY) {
            bson_destroy (&arr);
            return fail (ev, 28664, "$concatArrays only supports arrays, not %s", tname (&a));
         }
         bson_iter_t it;
         bson_iter_init_from_data (&it, a.value.v_doc.data, a.value.v_doc.data_len);
         while (bson_iter_next (&it)) {
            char buf[16];
            const char *key;
            bson_uint32_to_string (k++, &key, buf, sizeof buf);
            bson_append_value (&arr, key, -1, bson_iter_value (&it));
         }
      }
      dj_arena_value (ev->arena, &arr, true, out);
      bson_destroy (&arr);
      return true;
   }
   case XO_SORTARRAY: {
      if (!arg (e, 0, ev, &a) || !arg (e, 1, ev, &b)) {
         return false;
      }
      if (nullish (&a)) {
         set_null (out);
         return true;
      }
      if (a.value_type != BSON_TYPE_ARRAY) {
         return fail (ev, 2, "The 'input' argument to $sortArray must be an array, but was of type: %s", tname (&a));
      }
      as_list (ev, &a, &l);
      if (b.value_type == BSON_TYPE_DOCUMENT) {
         bson_t spec;
         bson_init_static (&spec, b.value.v_doc.data, b.value.v_doc.data_len);
         dj_sort_t *so = dj_sort_new (&spec, ev->error);
         if (!so) {
            return false;
         }
         bson_t **docs = dj_arena_alloc (ev->arena, sizeof (bson_t *) * (l.n ? l.n : 1));
         for (uint32_t i = 0; i < l.n; i++) {
            docs[i] = l.v[i].value_type == BSON_TYPE_DOCUMENT
                         ? bson_new_from_data (l.v[i].value.v_doc.data, l.v[i].value.v_doc.data_len)
                         : bson_new ();
         }
         /* sort indexes by the documents */
         uint32_t *order = dj_arena_alloc (ev->arena, sizeof (uint32_t) * (l.n ? l.n : 1));
         for (uint32_t i = 0; i < l.n; i++) {
            order[i] = i;
         }
         for (uint32_t i = 1; i < l.n; i++) {
            uint32_t x = order[i], j = i;
            while (j > 0 && dj_sort_cmp (so, docs[order[j - 1]], docs[x]) > 0) {
               order[j] = order[j - 1];
               j--;
            }
            order[j] = x;
         }
         bson_value_t *sorted = dj_arena_alloc (ev->arena, sizeof (bson_value_t) * (l.n ? l.n : 1));
         for (uint32_t i = 0; i < l.n; i++) {
            sorted[i] = l.v[order[i]];
         }
         for (uint32_t i = 0; i < l.n; i++) {
            bson_destroy (docs[i]);
         }
         dj_sort_destroy (so);
         list_to_value (ev, sorted, l.n, out);
         return true;
      }
      int64_t dir;
      if (!dj_value_as_int64_exact (&b, &dir) || (dir != 1 && dir != -1)) {
         return fail (ev, 2, "$sortArray requires sortBy to be 1, -1 or a sort specification");
      }
      for (uint32_t i = 1; i < l.n; i++) {
         bson_value_t x = l.v[i];
         uint32_t j = i;
         while (j > 0 && dj_value_cmp (&l.v[j - 1], &x) * dir > 0) {
            l.v[j] = l.v[j - 1];
            j--;
         }
         l.v[j] = x;
      }
      list_to_value (ev, l.v, l.n, out);
      return true;
   }
   case XO_ZIP: {
      if (!arg (e, 0, ev, &a) || !arg (e, 1, ev, &b) || !arg (e, 2, ev, &c)) {
         return false;
      }
      if (nullish (&a)) {
         set_null (out);
         return true;
      }
      if (a.value_type != BSON_TYPE_ARRAY) {
         return fail (ev, 34461, "inputs must be an array of expressions, found %s", tname (&a));
      }
      as_list (ev, &a, &l);
      vlist_t *cols = dj_arena_alloc (ev->arena, sizeof (vlist_t) * (l.n ? l.n : 1));
      vlist_t defs = {0};
      uint32_t minlen = UINT32_MAX, maxlen = 0;
      for (uint32_t i = 0; i < l.n; i++) {
         if (nullish (&l.v[i])) {
            set_null (out);
            return true;
         }
         if (l.v[i].value_type != BSON_TYPE_ARRAY) {
            return fail (ev, 34468, "$zip found a non-array expression in input: %s", tname (&l.v[i]));
         }
         as_list (ev, &l.v[i], &cols[i]);
         minlen = cols[i].n < minlen ? cols[i].n : minlen;
         maxlen = cols[i].n > maxlen ? cols[i].n : maxlen;
      }
      bool longest = dj_value_truthy (&b);
      if (c.value_type == BSON_TYPE_ARRAY) {
         if (!longest) {
            return fail (ev, 34466, "cannot specify defaults unless useLongestLength is true");
         }
         as_list (ev, &c, &defs);
         if (defs.n != l.n) {
            return fail (ev, 34467, "defaults and inputs must have the same length");
         }
      }
      uint32_t rows = l.n ? (longest ? maxlen : minlen) : 0;
      bson_t arr = BSON_INITIALIZER;
      for (uint32_t r = 0; r < rows; r++) {
         bson_t row;
         char buf[16];
         const char *key;
         bson_uint32_to_string (r, &key, buf, sizeof buf);
         bson_append_array_begin (&arr, key, -1, &row);
         for (uint32_t i = 0; i < l.n; i++) {
            char b2[16];
            const char *k2;
            bson_uint32_to_string (i, &k2, b2, sizeof b2);
            if (r < cols[i].n) {
               bson_append_value (&row, k2, -1, &cols[i].v[r]);
            } else if (defs.n) {
               bson_append_value (&row, k2, -1, &defs.v[i]);
            } else {
               bson_append_null (&row, k2, -1);
            }
         }
         bson_append_array_end (&arr, &row);
      }
      dj_arena_value (ev->arena, &arr, true, out);
      bson_destroy (&arr);
      return true;
   }
   case XO_ARRAYTOOBJECT: {
      if (!arg (e, 0, ev, &a)) {
         return false;
      }
      if (nullish (&a)) {
         set_null (out);
         return true;
      }
      if (a.value_type != BSON_TYPE_ARRAY) {
         return fail (ev, 40386, "$arrayToObject requires an array input, found: %s", tname (&a));
      }
      as_list (ev, &a, &l);
      bson_t doc = BSON_INITIALIZER;
      for (uint32_t i = 0; i < l.n; i++) {
         bson_value_t k, v;
         if (l.v[i].value_type == BSON_TYPE_ARRAY) {
            vlist_t pair;
            as_list (ev, &l.v[i], &pair);
            if (pair.n != 2) {
               bson_destroy (&doc);
               return fail (ev, 40397, "$arrayToObject requires an array of size 2 arrays,found array of size: %u", pair.n);
            }
            k = pair.v[0];
            v = pair.v[1];
         } else if (l.v[i].value_type == BSON_TYPE_DOCUMENT) {
            if (!dj_value_get_field (&l.v[i], "k", &k) || !dj_value_get_field (&l.v[i], "v", &v)) {
               bson_destroy (&doc);
               return fail (ev, 40392, "$arrayToObject requires an object keys of 'k' and 'v'. Found incorrect number of keys:1");
            }
         } else {
            bson_destroy (&doc);
            return fail (ev, 40398, "Unrecognised input type format for $arrayToObject: %s", tname (&l.v[i]));
         }
         if (k.value_type != BSON_TYPE_UTF8) {
            bson_destroy (&doc);
            return fail (ev, 40395, "$arrayToObject requires an array of key-value pairs, where the key must be of type string. Found key type: %s", tname (&k));
         }
         /* a repeated key keeps its first position and takes the last value */
         bson_t tmp = BSON_INITIALIZER;
         bson_iter_t it;
         bool replaced = false;
         bson_iter_init (&it, &doc);
         while (bson_iter_next (&it)) {
            if (!strcmp (bson_iter_key (&it), k.value.v_utf8.str)) {
               bson_append_value (&tmp, k.value.v_utf8.str, -1, &v);
               replaced = true;
            } else {
               bson_append_value (&tmp, bson_iter_key (&it), -1, bson_iter_value (&it));
            }
         }
         if (!replaced) {
            bson_append_value (&tmp, k.value.v_utf8.str, -1, &v);
         }
         bson_destroy (&doc);
         bson_copy_to (&tmp, &doc);
         bson_destroy (&tmp);
      }
      dj_arena_value (ev->arena, &doc, false, out);
      bson_destroy (&doc);
      return true;
   }
   case XO_OBJECTTOARRAY: {
      if (!arg (e, 0, ev, &a)) {
         return false;
      }
      if (nullish (&a)) {
         set_null (out);
         return true;
      }
      if (a.value_type != BSON_TYPE_DOCUMENT) {
         return fail (ev, 40390, "$objectToArray requires a document input, found: %s", tname (&a));
      }
      bson_t arr = BSON_INITIALIZER;
      bson_iter_t it;
      uint32_t k = 0;
      bson_iter_init_from_data (&it, a.value.v_doc.data, a.value.v_doc.data_len);
      while (bson_iter_next (&it)) {
         bson_t kv;
         char buf[16];
         const char *key;
         bson_uint32_to_string (k++, &key, buf, sizeof buf);
         bson_append_document_begin (&arr, key, -1, &kv);
         BSON_APPEND_UTF8 (&kv, "k", bson_iter_key (&it));
         BSON_APPEND_VALUE (&kv, "v", bson_iter_value (&it));
         bson_append_document_end (&arr, &kv);
      }
      dj_arena_value (ev->arena, &arr, true, out);
      bson_destroy (&arr);
      return true;
   }
   case XO_SETEQUALS:
   case XO_SETINTERSECTION:
   case XO_SETUNION:
   case XO_SETDIFFERENCE:
   case XO_SETISSUBSET: {
      bson_value_t *v;
      int n;
      if (!eval_args (e, ev, &v, &n)) {
         return false;
      }
      vlist_t *sets = dj_arena_alloc (ev->arena, sizeof (vlist_t) * (size_t) (n ? n : 1));
      for (int i = 0; i < n; i++) {
         if (nullish (&v[i])) {
            if (id == XO_SETEQUALS || id == XO_SETISSUBSET) {
               return fail (ev, 17044, "All operands of %s must be arrays. One argument is of type: %s", e->op->name, tname (&v[i]));
            }
            set_null (out);
            return true;
         }
         if (v[i].value_type != BSON_TYPE_ARRAY) {
            return fail (ev, 17044, "All operands of %s must be arrays. One argument is of type: %s", e->op->name, tname (&v[i]));
         }
         as_list (ev, &v[i], &sets[i]);
      }
      vlist_t r = {.v = dj_arena_alloc (ev->arena, sizeof (bson_value_t) * 1024), .n = 0};
      uint32_t cap = 1024;
      if (id == XO_SETUNION || id == XO_SETINTERSECTION || id == XO_SETDIFFERENCE) {
         for (int i = 0; i < (id == XO_SETUNION ? n : (n ? 1 : 0)); i++) {
            for (uint32_t j = 0; j < sets[i].n; j++) {
               const bson_value_t *x = &sets[i].v[j];
               bool keep = !set_contains (&r, x);
               if (keep && id == XO_SETINTERSECTION) {
                  for (int o = 1; o < n && keep; o++) {
                     keep = set_contains (&sets[o], x);
                  }
               }
               if (keep && id == XO_SETDIFFERENCE) {
                  keep = !set_contains (&sets[1], x);
               }
               if (keep) {
                  if (r.n == cap) {
                     bson_value_t *nv = dj_arena_alloc (ev->arena, sizeof (bson_value_t) * cap * 2);
                     memcpy (nv, r.v, sizeof (bson_value_t) * cap);
                     r.v = nv;
                     cap *= 2;
                  }
                  r.v[r.n++] = *x;
               }
            }
         }
         list_to_value (ev, r.v, r.n, out);
         return true;
      }
      bool result = true;
      if (id == XO_SETISSUBSET) {
         for (uint32_t j = 0; j < sets[0].n && result; j++) {
            result = set_contains (&sets[1], &sets[0].v[j]);
         }
      } else {
         for (int i = 1; i < n && result; i++) {
            for (uint32_t j = 0; j < sets[0].n && result; j++) {
               result = set_contains (&sets[i], &sets[0].v[j]);
            }
            for (uint32_t j = 0; j < sets[i].n && result; j++) {
               result = set_contains (&sets[0], &sets[i].v[j]);
            }
         }
      }
      set_bool (out, result);
      return true;
   }
   case XO_ANYELEMENTTRUE:
   case XO_ALLELEMENTSTRUE: {
      if (!arg (e, 0, ev, &a)) {
         return false;
      }
      if (a.value_type != BSON_TYPE_ARRAY) {
         return fail (ev, id == XO_ANYELEMENTTRUE ? 17041 : 17040, "%s's argument must be an array, but is %s", e->op->name, tname (&a));
      }
      as_list (ev, &a, &l);
      bool r = id == XO_ALLELEMENTSTRUE;
      for (uint32_t i = 0; i < l.n; i++) {
         if (id == XO_ANYELEMENTTRUE && dj_value_truthy (&l.v[i])) {
            r = true;
         }
         if (id == XO_ALLELEMENTSTRUE && !dj_value_truthy (&l.v[i])) {
            r = false;
         }
      }
      set_bool (out, r);
      return true;
   }
   case XO_MERGEOBJECTS: {
      dj_node_t *acc = dj_node_new_container (BSON_TYPE_DOCUMENT, NULL);
      vlist_t in;
      if (!acc_inputs (e, ev, &in)) {
         dj_node_free (acc);
         return false;
      }
      for (uint32_t i = 0; i < in.n; i++) {
         if (nullish (&in.v[i])) {
            continue;
         }
         if (in.v[i].value_type != BSON_TYPE_DOCUMENT) {
            dj_node_free (acc);
            return fail (ev, 40400, "$mergeObjects requires object inputs, but input %s is of type %s", "", tname (&in.v[i]));
         }
         bson_iter_t it;
         bson_iter_init_from_data (&it, in.v[i].value.v_doc.data, in.v[i].value.v_doc.data_len);
         while (bson_iter_next (&it)) {
            dj_node_set_child (acc, bson_iter_key (&it), dj_node_from_value (bson_iter_value (&it), bson_iter_key (&it)));
         }
      }
      bson_t doc = BSON_INITIALIZER;
      dj_node_to_bson (acc, &doc);
      dj_node_free (acc);
      dj_arena_value (ev->arena, &doc, false, out);
      bson_destroy (&doc);
      return true;
   }
   case XO_GETFIELD:
   case XO_SETFIELD:
   case XO_UNSETFIELD: {
      bson_value_t field, input, value;
      if (!arg (e, 0, ev, &field)) {
         return false;
      }
      if (id == XO_GETFIELD && e->positional) {
         input = ev->current;
      } else if (!arg (e, 1, ev, &input)) {
         return false;
      } else if (id == XO_GETFIELD && !e->args[1]) {
         input = ev->current;
      }
      if (field.value_type != BSON_TYPE_UTF8) {
         return fail (ev, 5654602, "%s requires 'field' to evaluate to type String, but got %s", e->op->name, tname (&field));
      }
      if (id == XO_GETFIELD) {
         if (nullish (&input)) {
            *out = input.value_type == BSON_TYPE_EOD ? MISSING : (bson_value_t){.value_type = BSON_TYPE_NULL};
            return true;
         }
         if (input.value_type != BSON_TYPE_DOCUMENT) {
            return fail (ev, 3041705, "$getField requires 'input' to evaluate to type Object, but got %s", tname (&input));
         }
         if (!dj_value_get_field (&input, field.value.v_utf8.str, out)) {
            *out = MISSING;
         }
         return true;
      }
      if (id == XO_SETFIELD && !arg (e, 2, ev, &value)) {
         return false;
      }
      if (id == XO_UNSETFIELD) {
         value = MISSING;
      }
      if (nullish (&input)) {
         set_null (out);
         return true;
      }
      if (input.value_type != BSON_TYPE_DOCUMENT) {
         return fail (ev, 4161105, "%s requires 'input' to evaluate to type Object", e->op->name);
      }
      bson_t doc = BSON_INITIALIZER;
      bson_iter_t it;
      bool set = false;
      bson_iter_init_from_data (&it, input.value.v_doc.data, input.value.v_doc.data_len);
      while (bson_iter_next (&it)) {
         if (!strcmp (bson_iter_key (&it), field.value.v_utf8.str)) {
            if (value.value_type != BSON_TYPE_EOD) {
               bson_append_value (&doc, bson_iter_key (&it), -1, &value);
            }
            set = true;
         } else {
            bson_append_value (&doc, bson_iter_key (&it), -1, bson_iter_value (&it));
         }
      }
      if (!set && value.value_type != BSON_TYPE_EOD) {
         bson_append_value (&doc, field.value.v_utf8.str, -1, &value);
      }
      dj_arena_value (ev->arena, &doc, false, out);
      bson_destroy (&doc);
      return true;
   }
   case XO_BITAND:
   case XO_BITOR:
   case XO_BITXOR: {
      int64_t acc = id == XO_BITAND ? -1 : 0;
      bool long_seen = false;
      for (int i = 0; i < e->nargs; i++) {
         if (!eval (e->args[i], ev, &a)) {
            return false;
         }
         if (nullish (&a)) {
            set_null (out);
            return true;
         }
         if (a.value_type != BSON_TYPE_INT32 && a.value_type != BSON_TYPE_INT64) {
            return fail (ev, 28679, "%s only supports int and long operands.", e->op->name);
         }
         int64_t x = a.value_type == BSON_TYPE_INT32 ? a.value.v_int32 : a.value.v_int64;
         long_seen |= a.value_type == BSON_TYPE_INT64;
         acc = id == XO_BITAND ? (acc & x) : id == XO_BITOR ? (acc | x) : (acc ^ x);
      }
      if (long_seen) {
         set_long (out, acc);
      } else {
         out->value_type = BSON_TYPE_INT32;
         out->value.v_int32 = (int32_t) acc;
      }
      return true;
   }
   case XO_BITNOT:
      if (!arg (e, 0, ev, &a)) {
         return false;
      }
      if (nullish (&a)) {
         set_null (out);
         return true;
      }
      if (a.value_type == BSON_TYPE_INT32) {
         out->value_type = BSON_TYPE_INT32;
         out->value.v_int32 = ~a.value.v_int32;
      } else if (a.value_type == BSON_TYPE_INT64) {
         set_long (out, ~a.value.v_int64);
      } else {
         return fail (ev, 28679, "$bitNot only supports int and long operands.");
      }
      return true;
   case XO_LET: {
      int nv = e->nargs - 1;
      bson_value_t *vals = dj_arena_alloc (ev->arena, sizeof (bson_value_t) * (size_t) (nv ? nv : 1));
      for (int i = 0; i < nv; i++) {
         if (!eval (e->args[i], ev, &vals[i])) {
            return false;
         }
      }
      int saved = ev->nvars;
      for (int i = 0; i < nv; i++) {
         if (!push_var (ev, e->keys[i], &vals[i])) {
            ev->nvars = saved;
            return false;
         }
      }
      bool ok = eval (e->args[nv], ev, out);
      ev->nvars = saved;
      return ok;
   }
   case XO_RAND: set_double (out, (double) random () / ((double) RAND_MAX + 1.0)); return true;
   case XO_SUM:
   case XO_AVG:
   case XO_MIN:
   case XO_MAX:
   case XO_STDDEVPOP:
   case XO_STDDEVSAMP: return eval_acc_expr (e, ev, out);
   default: return fail (ev, DJ_InternalError, "operator %s has no evaluator", e->op->name);
   }
}

static bool
eval (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *out)
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
   return eval (e, ev, out);
}
