/*
 * function.c -- SQL's scalar functions, CAST and CASE -> aggregation
 * expressions.
 *
 * One row a function (`functions`): a MongoDB operator, or a template for
 * what MongoDB has no operator for (template.c). SQL's rule that a
 * function of NULL is NULL is MongoDB's for most operators; where MongoDB
 * makes something of a NULL ($toUpper(null) is "", $concat and the
 * string templates likewise) the row asks for a guard:
 * {$cond: [any argument NULL, null, <the function>]}.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "compile-private.h"

typedef bool (*emit_fn) (cx_t *cx, const dj_expr_t *e, bson_t *parent, const char *key);

/* [f(x0), f(x1), ...] over the expressions of a list. */
static bool
append_each (cx_t *cx, const dj_list_t *l, emit_fn f, bson_t *parent, const char *key)
{
   bson_t arr;
   cx_idx_t k;
   bool ok = true;
   BSON_APPEND_ARRAY_BEGIN (parent, key, &arr);
   for (int i = 0; ok && i < l->n; i++) {
      ok = f (cx, l->v[i], &arr, cx_idx (&k, (uint32_t) i));
   }
   bson_append_array_end (parent, &arr);
   return ok;
}

/* [a0, a1, ...]: e's arguments' values, for an operator taking an array. */
static bool
append_args_array (cx_t *cx, const dj_expr_t *e, bson_t *parent, const char *key)
{
   return append_each (cx, &e->args, cx_agg_value, parent, key);
}

/* x as text, "" for NULL (CONCAT's argument) */
static bool
agg_text_or_empty (cx_t *cx, const dj_expr_t *x, bson_t *parent, const char *key)
{
   return cx_template (cx, "{'$ifNull': [{'$toString': '@0'}, '']}", CX_ARGS (CX_VALUE (x)), parent, key);
}

/* [text(a0), text(a1), ...] */
static bool
append_args_text (cx_t *cx, const dj_expr_t *e, bson_t *parent, const char *key)
{
   return append_each (cx, &e->args, agg_text_or_empty, parent, key);
}

static bool
agg_is_null (cx_t *cx, const dj_expr_t *x, bson_t *parent, const char *key)
{
   return cx_agg_isnull (cx, x, true, parent, key);
}

/* [isnull(a0), isnull(a1), ...] */
static bool
append_args_isnull (cx_t *cx, const dj_expr_t *e, bson_t *parent, const char *key)
{
   return append_each (cx, &e->args, agg_is_null, parent, key);
}

/* Appends under key the condition "some argument of e is NULL": one
 * isnull test, or their $or. */
static bool
append_any_null (cx_t *cx, const dj_expr_t *e, bson_t *parent, const char *key)
{
   if (e->args.n == 1) {
      return cx_agg_isnull (cx, e->args.v[0], true, parent, key);
   }
   return cx_template (cx, "{'$or': '@0'}", CX_ARGS (CX_FN (append_args_isnull, e)), parent, key);
}

/* Template `tpl` (see template.c) with its arguments args; `guard`: NULL
 * when any argument of e is NULL (SQL's rule for functions), where
 * MongoDB's operator would make something of a NULL ($toUpper(null) is ""):
 * {$cond: [any argument NULL, null, tpl]}. */
static bool
agg_guarded (cx_t *cx, const dj_expr_t *e, bool guard, const char *tpl, const cx_arg_t *args, int nargs,
             bson_t *parent, const char *key)
{
   if (!guard) {
      return cx_template (cx, tpl, args, nargs, parent, key);
   }
   bson_t d, arr;
   BSON_APPEND_DOCUMENT_BEGIN (parent, key, &d);
   BSON_APPEND_ARRAY_BEGIN (&d, "$cond", &arr);
   bool ok = append_any_null (cx, e, &arr, "0");
   BSON_APPEND_NULL (&arr, "1");
   ok = ok && cx_template (cx, tpl, args, nargs, &arr, "2");
   bson_append_array_end (&d, &arr);
   bson_append_document_end (parent, &d);
   return ok;
}

/* Template `tpl` whose "@<i>" is e's argument i. */
static bool
agg_template (cx_t *cx, const dj_expr_t *e, const char *tpl, bool guard, bson_t *parent, const char *key)
{
   cx_arg_t args[10];
   BSON_ASSERT (e->args.n <= 10);
   for (int i = 0; i < e->args.n; i++) {
      args[i] = CX_VALUE (e->args.v[i]);
   }
   return agg_guarded (cx, e, guard, tpl, args, e->args.n, parent, key);
}

/* {op: x} for one argument, {op: [x, y, ...]} for more (and for $round,
 * whose one argument is still an array); NULL-guarded for the string
 * functions, which turn NULL into "" in MongoDB. */
static bool
agg_operator (cx_t *cx, const dj_expr_t *e, const char *op, bool guard, bson_t *parent, const char *key)
{
   bool one = e->args.n == 1 && strcmp (op, "$round");
   return agg_guarded (cx, e, guard, "{'@0': '@1'}",
                       CX_ARGS (CX_STR (op), one ? CX_VALUE (e->args.v[0]) : CX_FN (append_args_array, e)), parent,
                       key);
}

static const struct {
   const char *sql, *mongo;
} cast_types[] = {
   {"INT", "long"}, {"INTEGER", "long"}, {"BIGINT", "long"}, {"SMALLINT", "long"}, {"SIGNED", "long"},
   {"REAL", "double"}, {"FLOAT", "double"}, {"DOUBLE", "double"}, {"DOUBLE PRECISION", "double"},
   {"TEXT", "string"}, {"VARCHAR", "string"}, {"CHAR", "string"}, {"NUMERIC", "decimal"}, {"DECIMAL", "decimal"},
   {"BOOL", "bool"}, {"BOOLEAN", "bool"}, {"DATETIME", "date"}, {"TIMESTAMP", "date"}, {NULL, NULL}};

bool
cx_agg_cast (cx_t *cx, const dj_expr_t *e, bson_t *parent, const char *key)
{
   char base[32];
   size_t n = strcspn (e->name, "(");
   while (n > 0 && e->name[n - 1] == ' ') {
      n--;
   }
   snprintf (base, sizeof base, "%.*s", (int) n, e->name);
   if (!strcmp (base, "JSON")) {
      /* a JSON column holds any BSON value as it is (Django's
       * Cast(x, JSONField())): nothing to convert */
      return cx_agg_value (cx, e->a, parent, key);
   }
   if (!strcmp (base, "TIME")) {
      /* a TimeField is ISO text: a date's UTC wall-clock time as
       * TIME_OF_DAY writes it (to the millisecond a BSON date holds:
       * features.time_cast_precision), anything else its text */
      dj_expr_t utc = {.kind = DJ_X_STRING, .name = "UTC", .pos = e->pos};
      void *argv[2] = {e->a, &utc};
      dj_expr_t tod = {.kind = DJ_X_FUNC, .name = "TIME_OF_DAY", .pos = e->pos, .args = {.v = argv, .n = 2}};
      return cx_template (cx,
                          "{'$cond': [{'$eq': [{'$type': '@0'}, 'date']}, '@1', "
                          "{'$convert': {'input': '@0', 'to': 'string', 'onNull': null}}]}",
                          CX_ARGS (CX_VALUE (e->a), CX_VALUE (&tod)), parent, key);
   }
   for (int i = 0; cast_types[i].sql; i++) {
      if (!strcmp (base, cast_types[i].sql)) {
         return cx_template (cx, "{'$convert': {'input': '@0', 'to': '@1', 'onNull': null}}",
                             CX_ARGS (CX_VALUE (e->a), CX_STR (cast_types[i].mongo)), parent, key);
      }
   }
   return cx_unsupported (cx, e->pos, "CAST to %s", e->name);
}

/* [tpl(a0, a1), tpl(a2, a3), ...] over e's arguments in pairs; `when`:
 * the first of each pair is CASE's WHEN, a condition (x = v for CASE x). */
static bool
append_pairs (cx_t *cx, const dj_expr_t *e, const char *tpl, bool when, bson_t *parent, const char *key)
{
   bson_t arr;
   cx_idx_t k;
   bool ok = true;
   BSON_APPEND_ARRAY_BEGIN (parent, key, &arr);
   for (int i = 0; ok && i + 1 < e->args.n; i += 2) {
      const dj_expr_t *first = e->args.v[i];
      dj_expr_t eq = {.kind = DJ_X_BINARY, .op = DJ_OP_EQ, .pos = first->pos, .a = e->a, .b = (dj_expr_t *) first};
      ok = cx_template (cx, tpl,
                        CX_ARGS (when ? CX_TRUTH (e->a ? &eq : first, true) : CX_VALUE (first), CX_VALUE (e->args.v[i + 1])),
                        &arr, cx_idx (&k, (uint32_t) i / 2));
   }
   bson_append_array_end (parent, &arr);
   return ok;
}

static bool
case_branches (cx_t *cx, const dj_expr_t *e, bson_t *parent, const char *key)
{
   return append_pairs (cx, e, "{'case': '@0', 'then': '@1'}", true, parent, key);
}

static const dj_expr_t null_expr = {.kind = DJ_X_NULL};

bool
cx_agg_case (cx_t *cx, const dj_expr_t *e, bson_t *parent, const char *key)
{
   return cx_template (cx, "{'$switch': {'branches': '@0', 'default': '@1'}}",
                       CX_ARGS (CX_FN (case_branches, e), CX_VALUE (e->b ? e->b : &null_expr)), parent, key);
}

/* A string constant argument (a field or unit name, a time zone), or NULL
 * with the error set. Borrowed from the statement or the parameters. */
static const char *
const_string (cx_t *cx, const dj_expr_t *e, const char *what)
{
   bson_value_t tmp;
   const bson_value_t *v;
   if (!cx_const_arg (cx, e, what, &tmp, &v)) {
      return NULL;
   }
   if (v->value_type != BSON_TYPE_UTF8) {
      cx_param_error (cx, e->pos, "%s must be a string", what);
      return NULL;
   }
   return v->value.v_utf8.str;
}

/* Whether PostgreSQL knows a DATE_TRUNC unit (trunc) or EXTRACT field:
 * one djongo cannot compute is unsupported, any other name an error in the
 * value (PostgreSQL: 'unit "x" not recognized', SQLSTATE 22023).
 * https://www.postgresql.org/docs/current/functions-datetime.html */
static bool
known_unit (const char *name, bool trunc)
{
   static const char *const units[] = {"microseconds", "milliseconds", "second", "minute", "hour", "day", "week",
                                       "month", "quarter", "year", "decade", "century", "millennium", NULL};
   static const char *const fields[] = {"epoch", "julian", "timezone", "timezone_hour", "timezone_minute", NULL};
   for (int i = 0; units[i]; i++) {
      if (!strcasecmp (name, units[i])) {
         return true;
      }
   }
   for (int i = 0; !trunc && fields[i]; i++) {
      if (!strcasecmp (name, fields[i])) {
         return true;
      }
   }
   return false;
}

/* EXTRACT(field FROM x), DATE_PART('field', x[, 'tz']), DATE_TRUNC('unit',
 * x[, 'tz']) on BSON dates (with a time zone, DATE_TRUNC gives local
 * wall-clock time, as PostgreSQL's date_trunc of x AT TIME ZONE tz). Field names are PostgreSQL's plus Django's
 * (week_day: 1 = Sunday .. 7 = Saturday, MongoDB's $dayOfWeek; iso_week_day:
 * 1 = Monday, $isoDayOfWeek; week: the ISO week, $isoWeek). A time zone is an
 * Olson name or an offset; the result is NULL for a NULL date.
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/dateTrunc/ */
static bool
agg_date_function (cx_t *cx, const dj_expr_t *e, bson_t *parent, const char *key)
{
   int n = e->args.n;
   bool trunc = !strcmp (e->name, "DATE_TRUNC");
   if (n < 2 || n > 3 || (!strcmp (e->name, "EXTRACT") && n != 2)) {
      return cx_unsupported (cx, e->pos, "%s() with %d arguments", e->name, n);
   }
   const char *field = const_string (cx, e->args.v[0], trunc ? "the unit of DATE_TRUNC" : "the field of EXTRACT");
   const char *tz = NULL;
   if (!field || (n == 3 && !(tz = const_string (cx, e->args.v[2], "a time zone")))) {
      return false;
   }
   const dj_expr_t *x = e->args.v[1];
   if (trunc) {
      static const char *const units[] = {"year", "quarter", "month", "week", "day", "hour", "minute", "second", NULL};
      int u = -1;
      for (int i = 0; units[i]; i++) {
         if (!strcasecmp (field, units[i])) {
            u = i;
         }
      }
      if (u < 0) {
         return known_unit (field, true) ? cx_unsupported (cx, ((const dj_expr_t *) e->args.v[0])->pos, "DATE_TRUNC to '%s'", field)
                                         : cx_value_error (cx, ((const dj_expr_t *) e->args.v[0])->pos,
                                                           "unit \"%s\" not recognized", field);
      }
      if (tz) {
         /* With a time zone, PostgreSQL's date_trunc(unit, x AT TIME ZONE tz):
          * the local wall-clock time, a timestamp without zone (which dates
          * here carry as UTC) -- what Django's Trunc/TruncDate expect back.
          * startOfWeek only counts for the unit week (ISO weeks, as Django's). */
         dj_expr_t unit = {.kind = DJ_X_STRING, .name = (char *) units[u], .pos = e->pos};
         dj_expr_t *argv[3] = {&unit, e->args.v[1], e->args.v[2]};
         dj_expr_t call = *e;
         call.args.v = (void **) argv;
         call.args.n = 3;
         return agg_template (
            cx, &call,
            "{'$let': {'vars': {'t': {'$dateTrunc': {'date': '@1', 'unit': '@0', 'timezone': '@2', "
            "'startOfWeek': 'monday'}}}, 'in': {'$dateFromParts': {"
            "'year': {'$year': {'date': '$$t', 'timezone': '@2'}}, 'month': {'$month': {'date': '$$t', 'timezone': '@2'}}, "
            "'day': {'$dayOfMonth': {'date': '$$t', 'timezone': '@2'}}, 'hour': {'$hour': {'date': '$$t', 'timezone': '@2'}}, "
            "'minute': {'$minute': {'date': '$$t', 'timezone': '@2'}}, "
            "'second': {'$second': {'date': '$$t', 'timezone': '@2'}}, "
            "'millisecond': {'$millisecond': {'date': '$$t', 'timezone': '@2'}}}}}}",
            true, parent, key);
      }
      /* week: ISO weeks, as Django's TruncWeek */
      return cx_template (cx,
                          u == 3 ? "{'$dateTrunc': {'date': '@0', 'unit': '@1', 'startOfWeek': 'monday'}}"
                                 : "{'$dateTrunc': {'date': '@0', 'unit': '@1'}}",
                          CX_ARGS (CX_VALUE (x), CX_STR (units[u])), parent, key);
   }
   static const struct {
      const char *field, *op;
   } fields[] = {{"year", "$year"}, {"month", "$month"}, {"day", "$dayOfMonth"}, {"hour", "$hour"},
                 {"minute", "$minute"}, {"second", "$second"}, {"week", "$isoWeek"}, {"week_day", "$dayOfWeek"},
                 {"dow", "$dayOfWeek"}, {"iso_week_day", "$isoDayOfWeek"}, {"isodow", "$isoDayOfWeek"},
                 {"iso_year", "$isoWeekYear"}, {"isoyear", "$isoWeekYear"}, {"doy", "$dayOfYear"},
                 {"quarter", "$month"}, {NULL, NULL}};
   for (int i = 0; fields[i].field; i++) {
      if (strcasecmp (field, fields[i].field)) {
         continue;
      }
      /* [a time zone] x [the quarter: {$toInt: {$ceil: ...}}, an integer as SQL's] */
      static const char *const tpl[2][2] = {
         {"{'@1': {'date': '@0'}}", "{'@1': {'date': '@0', 'timezone': '@2'}}"},
         {"{'$toInt': {'$ceil': {'$divide': [{'@1': {'date': '@0'}}, 3]}}}",
          "{'$toInt': {'$ceil': {'$divide': [{'@1': {'date': '@0', 'timezone': '@2'}}, 3]}}}"}};
      return cx_template (cx, tpl[!strcasecmp (field, "quarter")][tz != NULL],
                          CX_ARGS (CX_VALUE (x), CX_STR (fields[i].op), CX_STR (tz)), parent, key);
   }
   return known_unit (field, false) ? cx_unsupported (cx, ((const dj_expr_t *) e->args.v[0])->pos, "EXTRACT of '%s'", field)
                                    : cx_value_error (cx, ((const dj_expr_t *) e->args.v[0])->pos,
                                                      "unit \"%s\" not recognized", field);
}

/* JSON_OBJECT's [[k1, v1], ...] */
static bool
json_object_pairs (cx_t *cx, const dj_expr_t *e, bson_t *parent, const char *key)
{
   return append_pairs (cx, e, "['@0', '@1']", false, parent, key);
}

/* JSON_GET(x, key): one step of a JSON path, as JSON reads it (Django's
 * JSONField, djongo/jsonfield.py) -- unlike `col -> 'key'`, whose field
 * path reaches through arrays ("$a.k" is every element's k): a string key
 * is a field of a document ($getField, so any key: "a.b", "$x"), an integer
 * an index into an array (counted from the end when negative, as
 * $arrayElemAt does); anything else, or no such field or element, is
 * missing ($$REMOVE), which JSON_TYPE reads as 'missing' and a row as NULL.
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/getField/ */
static bool
json_get (cx_t *cx, const dj_expr_t *e, bson_t *parent, const char *key)
{
   const dj_expr_t *step = e->args.v[1];
   bson_value_t tmp;
   const bson_value_t *v;
   if (!cx_const_arg (cx, step, "a JSON_GET key", &tmp, &v)) {
      return false;
   }
   bool index = v->value_type == BSON_TYPE_INT32 || v->value_type == BSON_TYPE_INT64;
   if (!index && v->value_type != BSON_TYPE_UTF8) {
      return cx_unsupported (cx, step->pos, "a JSON_GET key that is neither a string nor an integer");
   }
   return cx_template (cx, index ? "{'$let': {'vars': {'j': '@0'}, 'in': {'$cond': [{'$isArray': '$$j'}, "
                                   "{'$arrayElemAt': ['$$j', '@1']}, '$$REMOVE']}}}"
                                 : "{'$let': {'vars': {'j': '@0'}, 'in': {'$cond': [{'$eq': [{'$type': '$$j'}, 'object']}, "
                                   "{'$getField': {'field': {'$literal': '@1'}, 'input': '$$j'}}, '$$REMOVE']}}}",
                       CX_ARGS (CX_VALUE (e->args.v[0]), CX_CONST (step)), parent, key);
}

/* Scalar functions of the dialect: one row each, an operator ({op: x},
 * {op: [x, y, ...]}) or, for what MongoDB has no operator for, a template
 * whose "@<i>" is argument i. */
static const struct {
   const char *sql;
   int min, max;
   const char *op, *json;
   bool guard; /* NULL when an argument is NULL: MongoDB's operator would give a non-null result */
} functions[] = {
   {"UPPER", 1, 1, "$toUpper", NULL, true}, {"LOWER", 1, 1, "$toLower", NULL, true},
   {"LENGTH", 1, 1, "$strLenCP", NULL, true}, {"CHAR_LENGTH", 1, 1, "$strLenCP", NULL, true},
   {"ABS", 1, 1, "$abs", NULL, false}, {"CEIL", 1, 1, "$ceil", NULL, false}, {"CEILING", 1, 1, "$ceil", NULL, false},
   {"FLOOR", 1, 1, "$floor", NULL, false}, {"SQRT", 1, 1, "$sqrt", NULL, false}, {"EXP", 1, 1, "$exp", NULL, false},
   {"LN", 1, 1, "$ln", NULL, false}, {"LOG10", 1, 1, "$log10", NULL, false}, {"ROUND", 1, 2, "$round", NULL, false},
   {"POWER", 2, 2, "$pow", NULL, false}, {"MOD", 2, 2, "$mod", NULL, false}, {"SIN", 1, 1, "$sin", NULL, false},
   {"COS", 1, 1, "$cos", NULL, false}, {"TAN", 1, 1, "$tan", NULL, false}, {"ASIN", 1, 1, "$asin", NULL, false},
   {"ACOS", 1, 1, "$acos", NULL, false}, {"ATAN", 1, 1, "$atan", NULL, false}, {"ATAN2", 2, 2, "$atan2", NULL, false},
   /* the largest/smallest non-NULL argument, NULL if all are (PostgreSQL's
    * rule; features.greatest_least_ignores_nulls) */
   {"GREATEST", 2, 64, "$max", NULL, false}, {"LEAST", 2, 64, "$min", NULL, false},
   {"RADIANS", 1, 1, "$degreesToRadians", NULL, false}, {"DEGREES", 1, 1, "$radiansToDegrees", NULL, false},
   {"TRIM", 1, 1, NULL, "{'$trim': {'input': '@0'}}", true},
   {"LTRIM", 1, 1, NULL, "{'$ltrim': {'input': '@0'}}", true},
   {"RTRIM", 1, 1, NULL, "{'$rtrim': {'input': '@0'}}", true},
   {"LEFT", 2, 2, NULL, "{'$substrCP': ['@0', 0, {'$max': ['@1', 0]}]}", true},
   {"RIGHT", 2, 2, NULL, "{'$substrCP': ['@0', {'$max': [0, {'$subtract': [{'$strLenCP': '@0'}, '@1']}]}, "
                "{'$max': ['@1', 0]}]}", true},
   /* INSTR(s, sub): 1-based position, 0 when absent (Django's StrIndex) */
   {"INSTR", 2, 2, NULL, "{'$add': [{'$indexOfCP': ['@0', '@1']}, 1]}", true},
   {"STRPOS", 2, 2, NULL, "{'$add': [{'$indexOfCP': ['@0', '@1']}, 1]}", true},
   {"REPEAT", 2, 2, NULL, "{'$reduce': {'input': {'$range': [0, {'$max': ['@1', 0]}]}, 'initialValue': '', "
                 "'in': {'$concat': ['$$value', '@0']}}}", true},
   {"REVERSE", 1, 1, NULL, "{'$reduce': {'input': {'$range': [0, {'$strLenCP': '@0'}]}, 'initialValue': '', "
                  "'in': {'$concat': [{'$substrCP': ['@0', '$$this', 1]}, '$$value']}}}", true},
   /* LPAD/RPAD(s, n, fill): cut to n, or padded with fill repeated (PostgreSQL's) */
   {"LPAD", 3, 3, NULL, "{'$cond': [{'$gte': [{'$strLenCP': '@0'}, '@1']}, {'$substrCP': ['@0', 0, {'$max': ['@1', 0]}]}, "
               "{'$concat': [{'$substrCP': [{'$reduce': {'input': {'$range': [0, '@1']}, 'initialValue': '', "
               "'in': {'$concat': ['$$value', '@2']}}}, 0, {'$subtract': ['@1', {'$strLenCP': '@0'}]}]}, '@0']}]}", true},
   {"RPAD", 3, 3, NULL, "{'$cond': [{'$gte': [{'$strLenCP': '@0'}, '@1']}, {'$substrCP': ['@0', 0, {'$max': ['@1', 0]}]}, "
               "{'$concat': ['@0', {'$substrCP': [{'$reduce': {'input': {'$range': [0, '@1']}, 'initialValue': '', "
               "'in': {'$concat': ['$$value', '@2']}}}, 0, {'$subtract': ['@1', {'$strLenCP': '@0'}]}]}]}]}", true},
   {"SIGN", 1, 1, NULL, "{'$cond': [{'$gt': ['@0', 0]}, 1, {'$cond': [{'$lt': ['@0', 0]}, -1, 0]}]}", true},
   {"COT", 1, 1, NULL, "{'$divide': [1, {'$tan': '@0'}]}", true},
   /* TIME_OF_DAY(datetime, tz): the wall-clock time as a TimeField stores
    * it (Python's isoformat: "HH:MM:SS", ".ffffff" when not whole) */
   {"TIME_OF_DAY", 2, 2, NULL, "{'$cond': [{'$eq': [{'$millisecond': {'date': '@0', 'timezone': '@1'}}, 0]}, "
                      "{'$dateToString': {'date': '@0', 'format': '%H:%M:%S', 'timezone': '@1'}}, "
                      "{'$concat': [{'$dateToString': {'date': '@0', 'format': '%H:%M:%S.%L', 'timezone': '@1'}}, "
                      "'000']}]}", true},
   /* TIME_US(t): a TimeField's ISO text "HH:MM:SS[.ffffff]" as microseconds
    * since midnight (Django's subtraction of two TimeFields: a duration) */
   {"TIME_US", 1, 1, NULL, "{'$add': [{'$multiply': [{'$toLong': {'$substrCP': ['@0', 0, 2]}}, 3600000000]}, "
                  "{'$multiply': [{'$toLong': {'$substrCP': ['@0', 3, 2]}}, 60000000]}, "
                  "{'$multiply': [{'$toLong': {'$substrCP': ['@0', 6, 2]}}, 1000000]}, "
                  "{'$toLong': {'$substrCP': [{'$concat': ['@0', '.000000']}, 9, 6]}}]}", true},
   /* UUID_TEXT(x): a UUID (binData subtype 4) as its canonical text
    * "550e8400-e29b-...", PostgreSQL's uuid::text (Django's text lookups on
    * a UUIDField: djongo/operations.py, lookup_cast); text stays text.
    * $convert's format is MongoDB 8.0's; a 7.0 server refuses it. */
   {"UUID_TEXT", 1, 1, NULL, "{'$convert': {'input': '@0', 'to': 'string', 'format': 'uuid', 'onNull': null}}", false},
   /* a value's BSON type name, "missing" for an absent path (has_key tests
    * presence: a key holding null exists), and an array's length */
   {"JSON_TYPE", 1, 1, NULL, "{'$type': '@0'}", false},
   {"JSON_ARRAY_LENGTH", 1, 1, NULL, "{'$cond': [{'$isArray': '@0'}, {'$size': '@0'}, null]}", true},
   /* a document's keys as an array, [] for anything else (NULL included:
    * it has no keys); whether every element of one array is in another
    * (NULL unless both are arrays): Django's has_key and contained_by
    * (djongo/jsonfield.py) */
   {"JSON_KEYS", 1, 1, NULL, "{'$cond': [{'$eq': [{'$type': '@0'}, 'object']}, "
                   "{'$map': {'input': {'$objectToArray': '@0'}, 'in': '$$this.k'}}, []]}", false},
   {"ARRAY_SUBSET", 2, 2, NULL, "{'$cond': [{'$and': [{'$isArray': '@0'}, {'$isArray': '@1'}]}, "
                      "{'$setIsSubset': ['@0', '@1']}, null]}", false},
   /* what MongoDB has no operator for: the embedded engine's own ($_djongo...,
    * src/engine/expr/ops_djongo.c); over a MongoDB server the executor
    * refuses the statement by name (dj_mql_t.engine_only). MD5 and SHA* are
    * the hex digests Django's MD5/SHA1.. functions return, CHR PostgreSQL's
    * chr() (Django's Chr), ASCII PostgreSQL's ascii() (Django's Ord). */
   {"MD5", 1, 1, "$_djongoMd5", NULL, false}, {"SHA1", 1, 1, "$_djongoSha1", NULL, false},
   {"SHA224", 1, 1, "$_djongoSha224", NULL, false}, {"SHA256", 1, 1, "$_djongoSha256", NULL, false},
   {"SHA384", 1, 1, "$_djongoSha384", NULL, false}, {"SHA512", 1, 1, "$_djongoSha512", NULL, false},
   {"CHR", 1, 1, "$_djongoChr", NULL, false}, {"ASCII", 1, 1, "$_djongoOrd", NULL, false},
   /* GEO_DISTANCE(col, point): meters from a GeoJSON point to the column's
    * GeoJSON Point (NULL for anything else), as every MongoDB evaluates it:
    * the haversine great-circle distance on the sphere MongoDB's spherical
    * queries use, radius 6378.1 km (2 r = 12756200 m), sqrt clamped to 1
    * for $asin (https://www.mongodb.com/docs/manual/reference/operator/aggregation/asin/);
    * https://www.mongodb.com/docs/manual/reference/operator/query/centerSphere/ */
   {"GEO_DISTANCE", 2, 2, NULL,
    "{'$let': {'vars': {'l': '@0', 'q': '@1'}, 'in': {'$let': {'vars': {"
    "'a': {'$cond': [{'$eq': ['$$l.type', 'Point']}, '$$l.coordinates', null]}, 'b': '$$q.coordinates'}, "
    "'in': {'$cond': [{'$and': [{'$isArray': '$$a'}, {'$isArray': '$$b'}]}, {'$let': {'vars': {"
    "'f1': {'$degreesToRadians': {'$arrayElemAt': ['$$a', 1]}}, 'f2': {'$degreesToRadians': {'$arrayElemAt': ['$$b', 1]}}, "
    "'dl': {'$degreesToRadians': {'$subtract': [{'$arrayElemAt': ['$$b', 0]}, {'$arrayElemAt': ['$$a', 0]}]}}}, "
    "'in': {'$multiply': [12756200, {'$asin': {'$min': [1, {'$sqrt': {'$add': ["
    "{'$pow': [{'$sin': {'$divide': [{'$subtract': ['$$f2', '$$f1']}, 2]}}, 2]}, "
    "{'$multiply': [{'$cos': '$$f1'}, {'$cos': '$$f2'}, {'$pow': [{'$sin': {'$divide': ['$$dl', 2]}}, 2]}]}]}}]}}]}}}, "
    "null]}}}}}",
    false},
   /* GEO_SHAPE_DISTANCE(col, point): to any stored geometry (its nearest
    * point; radians for a legacy pair): the embedded engine's own operator */
   {"GEO_SHAPE_DISTANCE", 2, 2, "$_djongoGeoDistance", NULL, false},
   {NULL, 0, 0, NULL, NULL, false}};

/* A COLLATE name -> the MongoDB collation document of the embedded
 * engine's $_djongoCollationKey into parent[key] (dj_sql.h lists the names).
 * binary is {locale: "simple"}; nocase is ICU's root locale at strength 2
 * (unlike SQLite's NOCASE, which folds ASCII letters only, every script's
 * case is ignored); <locale>-x-icu is PostgreSQL's name for an ICU locale
 * (strength 3, the default); -u-ks-levelN the BCP 47 keyword for strength N.
 * https://www.mongodb.com/docs/manual/reference/collation/ */
bool
cx_collation_spec (cx_t *cx, uint32_t pos, const char *name, bson_t *parent, const char *key)
{
   char locale[64];
   int strength = 3;
   size_t n = strlen (name), cut = 0;
   bson_t spec;
   if (!strcmp (name, "binary") || !strcmp (name, "C")) { /* C: PostgreSQL's name for it */
      BSON_APPEND_DOCUMENT_BEGIN (parent, key, &spec);
      BSON_APPEND_UTF8 (&spec, "locale", "simple");
      return bson_append_document_end (parent, &spec);
   }
   if (!strcmp (name, "nocase")) {
      bson_strncpy (locale, "und", sizeof locale);
      strength = 2;
   } else {
      if (n > 6 && !strcmp (name + n - 6, "-x-icu")) {
         cut = 6;
      } else if (n > 12 && !strncmp (name + n - 12, "-u-ks-level", 11) && name[n - 1] >= '1' && name[n - 1] <= '3') {
         cut = 12;
         strength = name[n - 1] - '0';
      }
      bool ok = cut && n - cut < sizeof locale;
      for (size_t i = 0; ok && i < n - cut; i++) {
         char c = name[i];
         ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
         locale[i] = c == '-' ? '_' : c; /* ICU's locale ids use _ */
      }
      if (!ok || n == cut) {
         return cx_unsupported (cx, pos,
                                "collation \"%s\" (djongo's are binary or C, nocase, <locale>-x-icu and "
                                "<locale>-u-ks-level1|2|3)",
                                name);
      }
      locale[n - cut] = '\0';
   }
   BSON_APPEND_DOCUMENT_BEGIN (parent, key, &spec);
   BSON_APPEND_UTF8 (&spec, "locale", locale);
   BSON_APPEND_INT32 (&spec, "strength", strength);
   return bson_append_document_end (parent, &spec);
}

bool
cx_collation_deterministic (const char *name)
{
   size_t n = strlen (name);
   return strcmp (name, "nocase") && !(n > 12 && !strncmp (name + n - 12, "-u-ks-level", 11) && name[n - 1] < '3');
}

/* COLLATE(e, 'name'): e's value, except where the compiler asks for the
 * sort key (DJ_XF_COLLKEY: comparisons, ORDER BY; expr.c, select.c) under
 * a collation other than binary (whose order is the strings' own). The
 * key is the embedded engine's $_djongoCollationKey, which a MongoDB server
 * has not (its one collation per command cannot be given to one
 * expression): the statement is refused there by name. */
static bool
agg_collate (cx_t *cx, const dj_expr_t *e, bson_t *parent, const char *key)
{
   const dj_expr_t *name = e->args.v[1];
   if (e->args.n != 2 || name->kind != DJ_X_STRING) {
      return cx_unsupported (cx, e->pos, "COLLATE() other than e COLLATE name");
   }
   bson_t spec = BSON_INITIALIZER;
   bool ok = cx_collation_spec (cx, e->pos, name->name, &spec, "s");
   bson_iter_t it, loc;
   /* binary (locale "simple"): the strings themselves compare so, on any server */
   bool simple = ok && bson_iter_init (&loc, &spec) && bson_iter_find_descendant (&loc, "s.locale", &loc) &&
                 !strcmp (bson_iter_utf8 (&loc, NULL), "simple");
   if (ok && !simple && (e->flags & DJ_XF_COLLKEY) && bson_iter_init_find (&it, &spec, "s")) {
      uint32_t len;
      const uint8_t *data;
      bson_t doc;
      bson_iter_document (&it, &len, &data);
      bson_init_static (&doc, data, len);
      if (!cx->out->engine_only) {
         cx->out->engine_only = "COLLATE";
      }
      ok = cx_template (cx, "{'$_djongoCollationKey': ['@0', '@1']}", CX_ARGS (CX_VALUE (e->args.v[0]), CX_DOC (&doc)),
                        parent, key);
   } else if (ok) {
      ok = cx_agg_value (cx, e->args.v[0], parent, key);
   }
   bson_destroy (&spec);
   return ok;
}

/* Aggregates are handled by the $group rewrite (agg_group_ref); here they
 * are an error (no GROUP context). */
bool
cx_agg_function (cx_t *cx, const dj_expr_t *e, bson_t *parent, const char *key)
{
   const char *f = e->name;
   int n = e->args.n;

   if (e->over) {
      return cx_unsupported (cx, e->pos, "window function %s() outside the SELECT list and ORDER BY", f);
   }
   if (!strcmp (f, "COALESCE") || !strcmp (f, "IFNULL")) {
      if (n < 2) {
         return cx_unsupported (cx, e->pos, "%s with fewer than two arguments", f);
      }
      /* nested {$ifNull: [a, {$ifNull: [b, c]}]} (the n-ary form is 5.0+) */
      dj_expr_t rest = *e;
      rest.args.v = e->args.v + 1;
      rest.args.n = n - 1;
      return cx_template (cx, "{'$ifNull': ['@0', '@1']}",
                          CX_ARGS (CX_VALUE (e->args.v[0]), n == 2 ? CX_VALUE (e->args.v[1]) : CX_FN (cx_agg_function, &rest)),
                          parent, key);
   }
   if (!strcmp (f, "CONCAT") && n >= 1) {
      /* PostgreSQL's concat(), which Django's Concat emits: NULL arguments
       * are left out, the others joined as text (`||` instead is NULL when
       * either side is) */
      return cx_template (cx, "{'$concat': '@0'}", CX_ARGS (CX_FN (append_args_text, e)), parent, key);
   }
   if (!strcmp (f, "EXTRACT") || !strcmp (f, "DATE_PART") || !strcmp (f, "DATE_TRUNC")) {
      return agg_date_function (cx, e, parent, key);
   }
   bool done; /* datetimes to the microsecond (exact_dt.c) */
   if (!cx_dt_function (cx, e, parent, key, &done) || done) {
      return done;
   }
   if (!strcmp (f, "COLLATE")) {
      return agg_collate (cx, e, parent, key);
   }
   if (!strcmp (f, "NOW") && n == 0) {
      return BSON_APPEND_UTF8 (parent, key, "$$NOW");
   }
   if (!strcmp (f, "NULLIF") && n == 2) {
      dj_expr_t eq = {.kind = DJ_X_BINARY, .op = DJ_OP_EQ, .pos = e->pos, .a = e->args.v[0], .b = e->args.v[1]};
      return cx_template (cx, "{'$cond': ['@0', null, '@1']}", CX_ARGS (CX_TRUTH (&eq, true), CX_VALUE (eq.a)), parent,
                          key);
   }
   for (int i = 0; functions[i].sql; i++) {
      if (strcmp (f, functions[i].sql)) {
         continue;
      }
      if (n < functions[i].min || n > functions[i].max) {
         return cx_unsupported (cx, e->pos, "%s() with %d arguments", f, n);
      }
      if (functions[i].op && !strncmp (functions[i].op, "$_djongo", 8) && !cx->out->engine_only) {
         cx->out->engine_only = functions[i].sql;
      }
      if (functions[i].op) {
         return agg_operator (cx, e, functions[i].op, functions[i].guard, parent, key);
      }
      return agg_template (cx, e, functions[i].json, functions[i].guard, parent, key);
   }
   if (!strcmp (f, "PI") && n == 0) { /* a bare number in $project would mean "include" */
      return cx_template (cx, "{'$literal': 3.14159265358979323846}", CX_NO_ARGS, parent, key);
   }
   if (!strcmp (f, "RANDOM") && n == 0) {
      return cx_template (cx, "{'$rand': {}}", CX_NO_ARGS, parent, key);
   }
   if (!strcmp (f, "TEXT_SCORE") && n == 0) { /* djongo's: the score of the WHERE clause's MATCH_TEXT (expr.c) */
      return cx_template (cx, "{'$meta': 'textScore'}", CX_NO_ARGS, parent, key);
   }
   if (!strcmp (f, "MATCH_TEXT")) { /* $text is a query filter, never an expression */
      return cx_unsupported (cx, e->pos, "MATCH_TEXT() other than as a condition of the WHERE clause");
   }
   if (!strcmp (f, "LOG") && n == 2) { /* LOG(base, x), as PostgreSQL's and Django's Log() */
      return agg_template (cx, e, "{'$log': ['@1', '@0']}", false, parent, key);
   }
   if (!strcmp (f, "JSON_OBJECT")) {
      /* JSON_OBJECT(k1, v1, ...): the keys may be parameters, so the object
       * is built at run time */
      if (n % 2) {
         return cx_unsupported (cx, e->pos, "JSON_OBJECT() with an odd number of arguments");
      }
      return cx_template (cx, "{'$arrayToObject': ['@0']}", CX_ARGS (CX_FN (json_object_pairs, e)), parent, key);
   }
   if (!strcmp (f, "JSON_ARRAY")) { /* JSON_ARRAY(a, ...): the values in an array, NULL as null (Django's JSONArray) */
      return append_args_array (cx, e, parent, key);
   }
   if (!strcmp (f, "JSON_GET") && n == 2) {
      return json_get (cx, e, parent, key);
   }
   if (!strcmp (f, "REPLACE") && n == 3) { /* every occurrence, as SQL's REPLACE(s, from, to) */
      return agg_template (cx, e, "{'$replaceAll': {'input': '@0', 'find': '@1', 'replacement': '@2'}}", true, parent,
                           key);
   }
   if ((!strcmp (f, "SUBSTR") || !strcmp (f, "SUBSTRING")) && (n == 2 || n == 3)) {
      /* SQL positions are 1-based: {$substrCP: [s, p - 1, len]}; without a
       * length, to the end (a length past the end is fine for $substrCP). */
      dj_expr_t one = {.kind = DJ_X_INT, .ival = 1, .pos = e->pos};
      dj_expr_t start = {.kind = DJ_X_BINARY, .op = DJ_OP_SUB, .pos = e->pos, .a = e->args.v[1], .b = &one};
      dj_expr_t big = {.kind = DJ_X_INT, .ival = INT32_MAX, .pos = e->pos};
      dj_expr_t *argv[3] = {e->args.v[0], &start, n == 3 ? e->args.v[2] : &big};
      dj_expr_t call = *e;
      call.args.v = (void **) argv;
      call.args.n = 3;
      return agg_template (cx, &call, "{'$substrCP': ['@0', '@1', '@2']}", true, parent, key);
   }
   if (cx_is_aggregate (e)) {
      return cx_unsupported (cx, e->pos, "aggregate %s() in this position (WHERE, or nested in another aggregate)", f);
   }
   return cx_unsupported (cx, e->pos, "function %s()", f);
}

