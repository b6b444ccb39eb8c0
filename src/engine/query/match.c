/*
 * match.c -- MongoDB's query language over BSON documents.
 *
 * A filter is compiled once into a tree of nodes (so parse errors are raised
 * before any document is read, as MongoDB does) and then evaluated per
 * document straight off the BSON bytes, without building trees.
 *
 * The rules that make this more than "compare a field":
 *  - dotted paths walk into embedded documents and *through arrays*: for
 *    "a.b", every document element of array `a` is searched for `b`;
 *    https://www.mongodb.com/docs/manual/tutorial/query-array-of-documents/
 *  - at the end of a path an array matches if the array itself matches or
 *    any element does ({tags: "x"} finds ["x", "y"]);
 *    https://www.mongodb.com/docs/manual/tutorial/query-arrays/
 *  - {f: null} matches null and missing fields;
 *    https://www.mongodb.com/docs/manual/tutorial/query-for-null-fields/
 *  - $ne, $nin and $not are the negation of the whole positive test, so
 *    {a: {$ne: 1}} rejects [1, 2];
 *  - comparisons only match within one type bracket ({$gt: 5} never matches
 *    a string); https://www.mongodb.com/docs/manual/reference/method/db.collection.find/#type-bracketing
 */
#include "dj_query.h"
#include "dj_geo.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <math.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>

typedef enum { N_AND, N_OR, N_NOR, N_NOT, N_FIELD, N_EXPR, N_SCHEMA, N_TEXT } nkind_t;

typedef enum {
   OP_EQ,
   OP_LT,
   OP_LTE,
   OP_GT,
   OP_GTE,
   OP_IN,
   OP_EXISTS,
   OP_TYPE,
   OP_REGEX,
   OP_SIZE,
   OP_MOD,
   OP_ELEM_DOC, /* $elemMatch: {field: ...} */
   OP_ELEM_VAL, /* $elemMatch: {$gt: ...} */
   OP_GEO,      /* $geoWithin, $geoIntersects, $near, $nearSphere (geo/dj_geo.h) */
   OP_ALWAYS_FALSE
} op_t;

/* A matcher (dj_query.h) is its root node. */
typedef struct dj_matcher mnode_t;
struct dj_matcher {
   nkind_t kind;
   mnode_t **kids; /* owned */
   int nkids;
   /* N_FIELD */
   dj_path_t path; /* n == 0: the value itself (value-level matchers) */
   op_t op;
   bson_value_t val;     /* owned copy: EQ and comparisons */
   bson_value_t *in;     /* owned array: $in values */
   pcre2_code **in_re;   /* owned array, parallel to in (NULL where not a regex) */
   int nin;
   pcre2_code *re;       /* owned: $regex */
   int types[32];
   int ntypes;
   int64_t num1, num2; /* $size: num1; $mod: divisor, remainder */
   mnode_t *sub;       /* $elemMatch */
   dj_expr_t *expr;    /* N_EXPR: owned */
   dj_schema_t *schema; /* N_SCHEMA ($jsonSchema, schema.c): owned */
   dj_geo_query_t *geo; /* OP_GEO: owned */
   char *dotted;        /* OP_GEO: owned, the path as written (dj_matcher_geo) */
};

static void
node_free (mnode_t *n)
{
   if (!n) {
      return;
   }
   for (int i = 0; i < n->nkids; i++) {
      node_free (n->kids[i]);
   }
   bson_free (n->kids);
   dj_path_cleanup (&n->path);
   bson_value_destroy (&n->val); /* EOD (none): nothing */
   dj_values_free (n->in, (size_t) n->nin);
   for (int i = 0; i < n->nin; i++) {
      pcre2_code_free (n->in_re[i]); /* NULL: nothing */
   }
   bson_free (n->in_re);
   pcre2_code_free (n->re);
   node_free (n->sub);
   dj_expr_destroy (n->expr);
   dj_schema_destroy (n->schema);
   if (n->geo) {
      dj_geo_query_cleanup (n->geo);
   }
   DJ_FREE (n->geo, n->dotted);
   bson_free (n);
}

static mnode_t *
node_new (nkind_t k)
{
   mnode_t *n = bson_malloc0 (sizeof *n);
   n->kind = k;
   return n;
}

static void
node_add (mnode_t *parent, mnode_t *kid)
{
   parent->kids = bson_realloc (parent->kids, sizeof (mnode_t *) * (size_t) (parent->nkids + 1));
   parent->kids[parent->nkids++] = kid;
}

static mnode_t *
field_node (const char *path, size_t len, op_t op)
{
   mnode_t *n = node_new (N_FIELD);
   n->op = op;
   if (len) {
      /* Empty components are legal in queries (they match nothing). */
      n->path.buf = bson_strndup (path, len);
      n->path.n = 1;
      for (size_t i = 0; i < len; i++) {
         n->path.n += n->path.buf[i] == '.';
      }
      n->path.parts = bson_malloc (sizeof (char *) * (size_t) n->path.n);
      int k = 0;
      n->path.parts[k++] = n->path.buf;
      for (size_t i = 0; i < len; i++) {
         if (n->path.buf[i] == '.') {
            n->path.buf[i] = '\0';
            n->path.parts[k++] = n->path.buf + i + 1;
         }
      }
   }
   return n;
}

/* ---- regular expressions ---------------------------------------------- */

void *
dj_match_regex (const char *pattern, size_t len, const char *options, bson_error_t *error)
{
   uint32_t flags = PCRE2_UTF;
   int errcode;
   PCRE2_SIZE erroff;

   char bad;
   if (!dj_regex_flags (options, &flags, &bad)) {
      dj_err (error, 51108, "invalid flag in regex options: %c", bad);
      return NULL;
   }
   pcre2_code *re = pcre2_compile ((PCRE2_SPTR) pattern, len, flags, &errcode, &erroff, NULL);
   if (!re) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message (errcode, msg, sizeof msg);
      dj_err (error, 51091, "Regular expression is invalid: %s", (char *) msg);
   }
   return re;
}

static bool
regex_match (const pcre2_code *re, const bson_value_t *v)
{
   const char *s;
   uint32_t n;

   if (!dj_value_string (v, &s, &n)) {
      return false;
   }
   pcre2_match_data *md = pcre2_match_data_create_from_pattern (re, NULL);
   int rc = pcre2_match (re, (PCRE2_SPTR) s, n, 0, 0, md, NULL);
   pcre2_match_data_free (md);
   return rc >= 0; /* invalid UTF-8 in a stored string: no match, not an error */
}

/* ---- parsing ------------------------------------------------------------ */

/* A node whose parsing may have failed: into parent when built, else freed
 * (the error is already set). Returns built. */
static bool
node_keep (mnode_t *parent, mnode_t *n, bool built)
{
   if (built) {
      node_add (parent, n);
   } else {
      node_free (n);
   }
   return built;
}

/* What parsing knows: the variables in scope for $expr ($lookup's let). */
typedef struct {
   const dj_vscope_t *scope;
} pctx_t;

static mnode_t *parse_doc (const uint8_t *data, uint32_t len, int top, const pctx_t *pc, bson_error_t *error);
static bool parse_ops (mnode_t *and_node, const char *path, size_t plen, const bson_value_t *opdoc, const pctx_t *pc,
                       bson_error_t *error);

/* A document of operators ({$gt: 1}): its first key starts with '$' and it
 * is not a DBRef ({$ref, $id[, $db]}), which filters compare as a value in
 * equality, $in and $all. https://www.mongodb.com/docs/manual/reference/database-references/#dbrefs */
static bool
is_operator_doc (const bson_value_t *v)
{
   bson_iter_t it;
   bool ref = false, id = false;
   if (v->value_type != BSON_TYPE_DOCUMENT ||
       !bson_iter_init_from_data (&it, v->value.v_doc.data, v->value.v_doc.data_len) || !bson_iter_next (&it)) {
      return false;
   }
   if (bson_iter_key (&it)[0] != '$') {
      return false;
   }
   do {
      ref |= !strcmp (bson_iter_key (&it), "$ref");
      id |= !strcmp (bson_iter_key (&it), "$id");
   } while (bson_iter_next (&it));
   return !(ref && id);
}

static bool
parse_type_arg (mnode_t *n, const bson_value_t *v, bson_error_t *error)
{
   if (v->value_type == BSON_TYPE_UTF8) {
      int t;
      if (!dj_type_from_name (v->value.v_utf8.str, &t)) {
         return dj_err (error, DJ_BadValue, "Unknown type name alias: %s", v->value.v_utf8.str);
      }
      n->types[n->ntypes++] = t;
      return true;
   }
   if (dj_value_is_number (v)) {
      int64_t code;
      if (!dj_value_as_int64_exact (v, &code)) {
         return dj_err (error, DJ_BadValue, "Invalid numerical type code: %g", dj_value_as_double (v));
      }
      if (code == -1) {
         code = BSON_TYPE_MINKEY;
      } else if (code == 127) {
         code = BSON_TYPE_MAXKEY;
      } else if (code < 1 || code > 19) {
         return dj_err (error, DJ_BadValue, "Invalid numerical type code: %" PRId64, code);
      }
      n->types[n->ntypes++] = (int) code;
      return true;
   }
   if (v->value_type == BSON_TYPE_ARRAY) {
      bson_iter_t it;
      bson_iter_init_from_data (&it, v->value.v_doc.data, v->value.v_doc.data_len);
      while (bson_iter_next (&it)) {
         if (n->ntypes == 31) {
            return dj_err (error, DJ_BadValue, "$type has too many type aliases");
         }
         const bson_value_t *e = bson_iter_value (&it);
         if (e->value_type == BSON_TYPE_ARRAY) {
            return dj_err (error, DJ_BadValue, "type must be represented as a number or a string");
         }
         if (!parse_type_arg (n, e, error)) {
            return false;
         }
      }
      return true;
   }
   return dj_err (error, DJ_TypeMismatch, "type must be represented as a number or a string");
}

static bool
fill_in_list (mnode_t *n, const bson_value_t *arr, const char *opname, bson_error_t *error)
{
   bson_iter_t it;

   if (arr->value_type != BSON_TYPE_ARRAY) {
      return dj_err (error, DJ_BadValue, "%s needs an array", opname);
   }
   bson_iter_init_from_data (&it, arr->value.v_doc.data, arr->value.v_doc.data_len);
   while (bson_iter_next (&it)) {
      const bson_value_t *e = bson_iter_value (&it);
      if (is_operator_doc (e)) {
         return dj_err (error, DJ_BadValue, "cannot nest $ under %s", opname);
      }
      n->in = bson_realloc (n->in, sizeof (bson_value_t) * (size_t) (n->nin + 1));
      n->in_re = bson_realloc (n->in_re, sizeof (pcre2_code *) * (size_t) (n->nin + 1));
      bson_value_copy (e, &n->in[n->nin]);
      n->in_re[n->nin] = NULL;
      if (e->value_type == BSON_TYPE_REGEX) {
         n->in_re[n->nin] = dj_match_regex (e->value.v_regex.regex, strlen (e->value.v_regex.regex), e->value.v_regex.options, error);
         if (!n->in_re[n->nin]) {
            bson_value_destroy (&n->in[n->nin]);
            return false;
         }
      }
      n->nin++;
   }
   return true;
}

static mnode_t *
wrap_not (mnode_t *n)
{
   mnode_t *w = node_new (N_NOT);
   node_add (w, n);
   return w;
}

/* Whether an $elemMatch argument is the "query on element documents" form. */
static bool
elem_is_doc_form (const bson_value_t *v)
{
   bson_iter_t it;
   bson_iter_init_from_data (&it, v->value.v_doc.data, v->value.v_doc.data_len);
   while (bson_iter_next (&it)) {
      const char *k = bson_iter_key (&it);
      if (k[0] != '$' || !strcmp (k, "$and") || !strcmp (k, "$or") || !strcmp (k, "$nor") || !strcmp (k, "$expr") ||
          !strcmp (k, "$jsonSchema") || !strcmp (k, "$where") || !strcmp (k, "$text") || !strcmp (k, "$comment")) {
         return true;
      }
   }
   return false;
}

/* Whether an operator document holds $near or $nearSphere (whose
 * $minDistance / $maxDistance sit beside them). */
static bool
has_near_sibling (const bson_value_t *opdoc)
{
   bson_iter_t it;
   bson_iter_init_from_data (&it, opdoc->value.v_doc.data, opdoc->value.v_doc.data_len);
   while (bson_iter_next (&it)) {
      if (!strcmp (bson_iter_key (&it), "$near") || !strcmp (bson_iter_key (&it), "$nearSphere")) {
         return true;
      }
   }
   return false;
}

/* Parses one {$op: arg} entry for `path` into a node appended to and_node. */
static bool
parse_one_op (mnode_t *and_node, const char *path, size_t plen, const char *op, const bson_value_t *arg,
              const bson_value_t *opdoc, const pctx_t *pc, bson_error_t *error)
{
   mnode_t *n = NULL;

#define CMP_OP(name, code)                                                          \
   if (!strcmp (op, name)) {                                                         \
      if (arg->value_type == BSON_TYPE_REGEX && code != OP_EQ) {                      \
         return dj_err (error, DJ_BadValue, "Can't have RegEx as arg to predicate over field '%.*s'.", (int) plen, path); \
      }                                                                             \
      n = field_node (path, plen, code);                                            \
      bson_value_copy (arg, &n->val);                                               \
      goto done;                                                                    \
   }
   CMP_OP ("$eq", OP_EQ)
   CMP_OP ("$lt", OP_LT)
   CMP_OP ("$lte", OP_LTE)
   CMP_OP ("$gt", OP_GT)
   CMP_OP ("$gte", OP_GTE)
#undef CMP_OP
   if (!strcmp (op, "$ne")) {
      if (arg->value_type == BSON_TYPE_REGEX) {
         return dj_err (error, DJ_BadValue, "Can't have regex as arg to $ne.");
      }
      n = field_node (path, plen, OP_EQ);
      bson_value_copy (arg, &n->val);
      n = wrap_not (n);
      goto done;
   }
   if (!strcmp (op, "$in") || !strcmp (op, "$nin")) {
      n = field_node (path, plen, OP_IN);
      if (!fill_in_list (n, arg, op, error)) {
         node_free (n);
         return false;
      }
      if (op[1] == 'n') {
         n = wrap_not (n);
      }
      goto done;
   }
   if (!strcmp (op, "$exists")) {
      n = field_node (path, plen, OP_EXISTS);
      bool truthy = true;
      switch (arg->value_type) {
      case BSON_TYPE_BOOL: truthy = arg->value.v_bool; break;
      case BSON_TYPE_NULL:
      case BSON_TYPE_UNDEFINED: truthy = false; break;
      case BSON_TYPE_INT32:
      case BSON_TYPE_INT64:
      case BSON_TYPE_DOUBLE:
      case BSON_TYPE_DECIMAL128: truthy = dj_value_as_double (arg) != 0; break;
      default: truthy = true;
      }
      if (!truthy) {
         n = wrap_not (n);
      }
      goto done;
   }
   if (!strcmp (op, "$type")) {
      n = field_node (path, plen, OP_TYPE);
      return node_keep (and_node, n, parse_type_arg (n, arg, error));
   }
   if (!strcmp (op, "$regex")) {
      const char *pat, *opts = "";
      size_t patlen;
      bson_iter_t it;
      if (arg->value_type == BSON_TYPE_UTF8) {
         pat = arg->value.v_utf8.str;
         patlen = arg->value.v_utf8.len;
      } else if (arg->value_type == BSON_TYPE_REGEX) {
         pat = arg->value.v_regex.regex;
         patlen = strlen (pat);
         opts = arg->value.v_regex.options;
      } else {
         return dj_err (error, DJ_BadValue, "$regex has to be a string");
      }
      bson_iter_init_from_data (&it, opdoc->value.v_doc.data, opdoc->value.v_doc.data_len);
      if (bson_iter_find (&it, "$options")) {
         if (!BSON_ITER_HOLDS_UTF8 (&it)) {
            return dj_err (error, DJ_BadValue, "$options has to be a string");
         }
         if (*opts) {
            return dj_err (error, DJ_BadValue, "options set in both $regex and $options");
         }
         opts = bson_iter_utf8 (&it, NULL);
      }
      if (memchr (pat, '\0', patlen)) {
         return dj_err (error, 51091, "Regular expression cannot contain an embedded null byte");
      }
      n = field_node (path, plen, OP_REGEX);
      n->re = dj_match_regex (pat, patlen, opts, error);
      return node_keep (and_node, n, n->re != NULL);
   }
   if (!strcmp (op, "$options")) {
      bson_iter_t it;
      bson_iter_init_from_data (&it, opdoc->value.v_doc.data, opdoc->value.v_doc.data_len);
      if (!bson_iter_find (&it, "$regex")) {
         return dj_err (error, DJ_BadValue, "$options needs a $regex");
      }
      return true; /* consumed by $regex */
   }
   if (!strcmp (op, "$size")) {
      int64_t sz;
      if (!dj_value_is_number (arg)) {
         return dj_err (error, DJ_BadValue, "$size needs a number");
      }
      if (!dj_value_as_int64_exact (arg, &sz)) {
         return dj_err (error, DJ_BadValue, "$size must be a whole number");
      }
      if (sz < 0) {
         return dj_err (error, DJ_BadValue, "$size may not be negative");
      }
      n = field_node (path, plen, OP_SIZE);
      n->num1 = sz;
      goto done;
   }
   if (!strcmp (op, "$mod")) {
      bson_iter_t it;
      bson_value_t parts[2];
      int k = 0;
      if (arg->value_type != BSON_TYPE_ARRAY) {
         return dj_err (error, DJ_BadValue, "malformed mod, needs to be an array");
      }
      bson_iter_init_from_data (&it, arg->value.v_doc.data, arg->value.v_doc.data_len);
      while (bson_iter_next (&it)) {
         if (k == 2) {
            return dj_err (error, DJ_BadValue, "malformed mod, too many elements");
         }
         parts[k++] = *bson_iter_value (&it);
      }
      if (k < 2) {
         return dj_err (error, DJ_BadValue, "malformed mod, not enough elements");
      }
      if (!dj_value_is_number (&parts[0])) {
         return dj_err (error, DJ_BadValue, "malformed mod, divisor not a number");
      }
      if (!dj_value_is_number (&parts[1])) {
         return dj_err (error, DJ_BadValue, "malformed mod, remainder not a number");
      }
      double d = trunc (dj_value_as_double (&parts[0])), r = trunc (dj_value_as_double (&parts[1]));
      if (!isfinite (d) || !isfinite (r) || fabs (d) >= 9.2e18 || fabs (r) >= 9.2e18) {
         return dj_err (error, DJ_BadValue, "malformed mod, divisor value is invalid :: caused by :: Out of bounds coercing to integral value");
      }
      if ((int64_t) d == 0) {
         return dj_err (error, DJ_BadValue, "divisor cannot be 0");
      }
      n = field_node (path, plen, OP_MOD);
      n->num1 = (int64_t) d;
      n->num2 = (int64_t) r;
      goto done;
   }
   if (!strcmp (op, "$all")) {
      bson_iter_t it;
      if (arg->value_type != BSON_TYPE_ARRAY) {
         return dj_err (error, DJ_BadValue, "$all needs an array");
      }
      bson_iter_init_from_data (&it, arg->value.v_doc.data, arg->value.v_doc.data_len);
      int count = 0;
      while (bson_iter_next (&it)) {
         const bson_value_t *e = bson_iter_value (&it);
         count++;
         if (is_operator_doc (e)) {
            bson_iter_t first;
            bson_iter_init_from_data (&first, e->value.v_doc.data, e->value.v_doc.data_len);
            bson_iter_next (&first);
            if (strcmp (bson_iter_key (&first), "$elemMatch") != 0) {
               return dj_err (error, DJ_BadValue, "no $ expressions in $all");
            }
            if (!parse_ops (and_node, path, plen, e, pc, error)) {
               return false;
            }
            continue;
         }
         mnode_t *k = field_node (path, plen, e->value_type == BSON_TYPE_REGEX ? OP_REGEX : OP_EQ);
         if (e->value_type == BSON_TYPE_REGEX) {
            k->re = dj_match_regex (e->value.v_regex.regex, strlen (e->value.v_regex.regex), e->value.v_regex.options, error);
            if (!k->re) {
               node_free (k);
               return false;
            }
         } else {
            bson_value_copy (e, &k->val);
         }
         node_add (and_node, k);
      }
      if (count == 0) {
         node_add (and_node, field_node (path, plen, OP_ALWAYS_FALSE)); /* $all: [] matches nothing */
      }
      return true;
   }
   if (!strcmp (op, "$elemMatch")) {
      if (arg->value_type != BSON_TYPE_DOCUMENT) {
         return dj_err (error, DJ_BadValue, "$elemMatch needs an Object");
      }
      if (elem_is_doc_form (arg)) {
         n = field_node (path, plen, OP_ELEM_DOC);
         n->sub = parse_doc (arg->value.v_doc.data, arg->value.v_doc.data_len, false, pc, error);
      } else {
         n = field_node (path, plen, OP_ELEM_VAL);
         n->sub = node_new (N_AND);
         if (!parse_ops (n->sub, "", 0, arg, pc, error)) {
            node_free (n);
            return false;
         }
      }
      return node_keep (and_node, n, n->sub != NULL);
   }
   if (!strcmp (op, "$not")) {
      mnode_t *inner = node_new (N_AND);
      if (arg->value_type == BSON_TYPE_REGEX) {
         mnode_t *k = field_node (path, plen, OP_REGEX);
         k->re = dj_match_regex (arg->value.v_regex.regex, strlen (arg->value.v_regex.regex), arg->value.v_regex.options, error);
         if (!k->re) {
            node_free (k);
            node_free (inner);
            return false;
         }
         node_add (inner, k);
      } else if (arg->value_type == BSON_TYPE_DOCUMENT) {
         if (arg->value.v_doc.data_len <= 5) {
            node_free (inner);
            return dj_err (error, DJ_BadValue, "$not cannot be empty");
         }
         if (!is_operator_doc (arg)) {
            node_free (inner);
            return dj_err (error, DJ_BadValue, "unknown operator: %s", "$not");
         }
         if (!parse_ops (inner, path, plen, arg, pc, error)) {
            node_free (inner);
            return false;
         }
      } else {
         node_free (inner);
         return dj_err (error, DJ_BadValue, "$not needs a regex or a document");
      }
      n = wrap_not (inner);
      goto done;
   }
   if (!strcmp (op, "$comment")) {
      return true;
   }
   if (!strcmp (op, "$geoWithin") || !strcmp (op, "$within") || !strcmp (op, "$geoIntersects") || !strcmp (op, "$near") ||
       !strcmp (op, "$nearSphere")) {
      /* https://www.mongodb.com/docs/manual/reference/operator/query-geospatial/ */
      n = field_node (path, plen, OP_GEO);
      n->geo = bson_malloc0 (sizeof *n->geo);
      n->dotted = bson_strndup (path, plen);
      bool ok = !strncmp (op, "$near", 5) ? dj_geo_query_parse_near (op, arg, opdoc, n->geo, error)
                                           : dj_geo_query_parse (!strcmp (op, "$geoIntersects") ? DJ_GEO_INTERSECTS : DJ_GEO_WITHIN,
                                                                 arg, n->geo, error);
      if (!ok) {
         bson_free (n->geo);
         n->geo = NULL;
         node_free (n);
         return false;
      }
      goto done;
   }
   if ((!strcmp (op, "$maxDistance") || !strcmp (op, "$minDistance")) &&
       has_near_sibling (opdoc)) {
      return true; /* read by $near / $nearSphere beside them */
   }
   return dj_err (error, DJ_BadValue, "unknown operator: %s", op);

done:
   node_add (and_node, n);
   return true;
}

static bool
parse_ops (mnode_t *and_node, const char *path, size_t plen, const bson_value_t *opdoc, const pctx_t *pc,
           bson_error_t *error)
{
   bson_iter_t it;

   bson_iter_init_from_data (&it, opdoc->value.v_doc.data, opdoc->value.v_doc.data_len);
   while (bson_iter_next (&it)) {
      const char *op = bson_iter_key (&it);
      if (op[0] != '$') {
         return dj_err (error, DJ_BadValue, "unknown operator: %s", op);
      }
      if (!parse_one_op (and_node, path, plen, op, bson_iter_value (&it), opdoc, pc, error)) {
         return false;
      }
   }
   return true;
}

static bool
parse_logical (mnode_t *and_node, const char *op, const bson_value_t *arg, const pctx_t *pc, int top, bson_error_t *error)
{
   bson_iter_t it;
   nkind_t kind = !strcmp (op, "$and") ? N_AND : !strcmp (op, "$or") ? N_OR : N_NOR;

   if (arg->value_type != BSON_TYPE_ARRAY) {
      return dj_err (error, DJ_BadValue, "%s must be an array", op);
   }
   mnode_t *n = node_new (kind);
   bson_iter_init_from_data (&it, arg->value.v_doc.data, arg->value.v_doc.data_len);
   while (bson_iter_next (&it)) {
      if (!BSON_ITER_HOLDS_DOCUMENT (&it)) {
         node_free (n);
         return dj_err (error, DJ_BadValue, "$or/$and/$nor entries need to be full objects");
      }
      const bson_value_t *e = bson_iter_value (&it);
      /* a top-level $and's entries are top-level conjuncts too (flattened below); an $or's
       * and a $nor's are still in the top-level document ($text: parse_text) */
      mnode_t *k = parse_doc (e->value.v_doc.data, e->value.v_doc.data_len, kind == N_AND ? top : top > 0, pc, error);
      if (!k) {
         node_free (n);
         return false;
      }
      node_add (n, k);
   }
   if (n->nkids == 0) {
      node_free (n);
      return dj_err (error, DJ_BadValue, "$and/$or/$nor must be a nonempty array");
   }
   if (kind == N_AND) {
      /* flatten: {$and: [a, b]} is the same tree as {a, b}, and the planner
       * then sees its conjuncts -- each entry was parsed as a document, an
       * AND of its own fields, so those fields are what joins and_node */
      for (int i = 0; i < n->nkids; i++) {
         mnode_t *k = n->kids[i];
         if (k->kind != N_AND) {
            node_add (and_node, k);
            continue;
         }
         for (int j = 0; j < k->nkids; j++) {
            node_add (and_node, k->kids[j]);
         }
         k->nkids = 0;
         node_free (k);
      }
      n->nkids = 0;
      node_free (n);
      return true;
   }
   node_add (and_node, n);
   return true;
}

/* $text: checked here (text/search.c), answered by the scan that reads its
 * text index (storage/text_scan.c, text_or.c under an $or), which then
 * matches the rest of the filter telling whether the index found the
 * document (dj_matcher_match_text). top: 2 a top-level conjunct, 1 under a
 * top-level $or or $nor, 0 in an embedded document ($elemMatch).
 * https://www.mongodb.com/docs/manual/reference/operator/query/text/#restrictions */
static bool
parse_text (mnode_t *and_node, int top, const bson_value_t *arg, bson_error_t *error)
{
   dj_text_query_t *q = dj_text_query_new (arg, error);
   if (!q) {
      return false;
   }
   dj_text_query_destroy (q);
   if (!top) {
      return dj_err (error, DJ_BadValue, "$text can only be applied to the top-level document");
   }
   mnode_t *n = node_new (N_TEXT);
   bson_value_copy (arg, &n->val);
   node_add (and_node, n);
   return true;
}

const bson_value_t *
dj_matcher_text (const dj_matcher_t *m)
{
   const bson_value_t *t = m->kind == N_TEXT ? &m->val : NULL;
   for (int i = 0; !t && (m->kind == N_AND || m->kind == N_OR) && i < m->nkids; i++) {
      t = dj_matcher_text (m->kids[i]);
   }
   return t;
}

dj_mkind_t
dj_matcher_kind (const dj_matcher_t *m, int *nkids)
{
   *nkids = m->kind == N_AND || m->kind == N_OR ? m->nkids : 0;
   return m->kind == N_AND ? DJ_MK_AND : m->kind == N_OR ? DJ_MK_OR : m->kind == N_TEXT ? DJ_MK_TEXT : DJ_MK_OTHER;
}

const dj_matcher_t *
dj_matcher_kid (const dj_matcher_t *m, int i)
{
   return m->kids[i];
}

/* The $text nodes in n's subtree; *nor: whether one is under a $nor. */
static int
count_text (const mnode_t *n, bool under_nor, bool *nor)
{
   int k = n->kind == N_TEXT;
   *nor |= k && under_nor;
   for (int i = 0; i < n->nkids; i++) {
      k += count_text (n->kids[i], under_nor || n->kind == N_NOR, nor);
   }
   return k;
}

static mnode_t *
parse_doc (const uint8_t *data, uint32_t len, int top, const pctx_t *pc, bson_error_t *error)
{
   bson_iter_t it;
   mnode_t *and_node = node_new (N_AND);

   if (!bson_iter_init_from_data (&it, data, len)) {
      node_free (and_node);
      dj_err (error, DJ_FailedToParse, "invalid BSON in query");
      return NULL;
   }
   while (bson_iter_next (&it)) {
      const char *key = bson_iter_key (&it);
      const bson_value_t *v = bson_iter_value (&it);
      bool ok = true;

      if (key[0] == '$') {
         if (!strcmp (key, "$and") || !strcmp (key, "$or") || !strcmp (key, "$nor")) {
            ok = parse_logical (and_node, key, v, pc, top, error);
         } else if (!strcmp (key, "$comment")) {
            ok = true;
         } else if (!strcmp (key, "$expr")) {
            /* https://www.mongodb.com/docs/manual/reference/operator/query/expr/ */
            mnode_t *n = node_new (N_EXPR);
            n->expr = dj_expr_parse (v, pc ? pc->scope : NULL, error);
            ok = node_keep (and_node, n, n->expr != NULL);
         } else if (!strcmp (key, "$text")) {
            ok = parse_text (and_node, top, v, error);
         } else if (!strcmp (key, "$jsonSchema")) {
            /* https://www.mongodb.com/docs/manual/reference/operator/query/jsonSchema/ */
            mnode_t *n = node_new (N_SCHEMA);
            n->schema = dj_schema_new (v, error);
            ok = node_keep (and_node, n, n->schema != NULL);
         } else {
            ok = dj_err (error, DJ_BadValue, "unknown top level operator: %s. If you are trying to use a field name "
                                             "that begins with '$', please use $getField.", key);
         }
      } else if (is_operator_doc (v)) {
         ok = parse_ops (and_node, key, bson_iter_key_len (&it), v, pc, error);
      } else if (v->value_type == BSON_TYPE_REGEX) {
         mnode_t *n = field_node (key, bson_iter_key_len (&it), OP_REGEX);
         n->re = dj_match_regex (v->value.v_regex.regex, strlen (v->value.v_regex.regex), v->value.v_regex.options, error);
         /* a stored regex equal to the literal matches too */
         bson_value_copy (v, &n->val);
         ok = node_keep (and_node, n, n->re != NULL);
      } else {
         mnode_t *n = field_node (key, bson_iter_key_len (&it), OP_EQ);
         bson_value_copy (v, &n->val);
         node_add (and_node, n);
      }
      if (!ok) {
         node_free (and_node);
         return NULL;
      }
   }
   return and_node;
}

dj_matcher_t *
dj_matcher_new (const bson_t *filter, bson_error_t *error)
{
   return dj_matcher_new_scoped (filter, NULL, error);
}

/* The $near / $nearSphere nodes in n's subtree (sub: $elemMatch's too). */
static int
count_near (const mnode_t *n)
{
   int k = n->kind == N_FIELD && n->op == OP_GEO && n->geo->op == DJ_GEO_NEAR;
   for (int i = 0; i < n->nkids; i++) {
      k += count_near (n->kids[i]);
   }
   return k + (n->sub ? count_near (n->sub) : 0);
}

dj_matcher_t *
dj_matcher_new_scoped (const bson_t *filter, const dj_vscope_t *scope, bson_error_t *error)
{
   pctx_t pc = {.scope = scope};
   mnode_t *root = parse_doc (bson_get_data (filter), filter->len, 2, &pc, error);
   if (!root) {
      return NULL;
   }
   /* mongod orders by a near condition, so there is at most one, among the
    * filter's top-level conditions (not under $or, $nor, $not, $elemMatch) */
   bool text_nor = false;
   int total = count_near (root), top = 0, ntext = count_text (root, false, &text_nor);
   for (int i = 0; i < root->nkids; i++) {
      const mnode_t *k = root->kids[i];
      top += k->kind == N_FIELD && k->op == OP_GEO && k->geo->op == DJ_GEO_NEAR;
   }
   if (total > 1 || total != top) {
      node_free (root);
      dj_err (error, DJ_BadValue, total > 1 ? "Too many geoNear expressions" : "geoNear must be top-level expr");
      return NULL;
   }
   if (ntext > 1 || text_nor || (ntext && total)) { /* https://www.mongodb.com/docs/manual/reference/operator/query/text/#restrictions */
      node_free (root);
      dj_err (error, DJ_BadValue, ntext > 1 ? "Too many text expressions" : text_nor ? "text expression not allowed in nor"
                                                                                     : "text and geoNear not allowed in same query");
      return NULL;
   }
   return root;
}

dj_matcher_t *
dj_matcher_new_value (const bson_t *ops, bson_error_t *error)
{
   bson_value_t v;
   mnode_t *root = node_new (N_AND);

   dj_value_from_doc (ops, false, &v);
   if (!parse_ops (root, "", 0, &v, NULL, error)) {
      node_free (root);
      return NULL;
   }
   return root;
}

void
dj_matcher_destroy (dj_matcher_t *m)
{
   node_free (m);
}

bool
dj_matcher_is_empty (const dj_matcher_t *m)
{
   return m->kind == N_AND && m->nkids == 0;
}

const dj_geo_query_t *
dj_matcher_geo (const dj_matcher_t *m, const char *path, bool near, const char **path_out)
{
   int n = m->kind == N_AND ? m->nkids : 1;
   for (int i = 0; i < n; i++) {
      const mnode_t *k = m->kind == N_AND ? m->kids[i] : m;
      if (k->kind == N_FIELD && k->op == OP_GEO && (!path || !strcmp (k->dotted, path)) &&
          (!near || k->geo->op == DJ_GEO_NEAR)) {
         if (path_out) {
            *path_out = k->dotted;
         }
         return k->geo;
      }
   }
   return NULL;
}

/* ---- evaluation --------------------------------------------------------- */

/* $expr needs the variables in force ($lookup's let) and a place to report
 * runtime errors ($divide by zero ...). */
typedef struct {
   const dj_eval_t *vars;
   bson_error_t *error;
   bool failed;
   bool text_miss; /* the text index did not find this document (dj_matcher_match_text) */
} xctx_t;

static bool eval (const mnode_t *n, const bson_value_t *doc, int32_t *pos, xctx_t *xc);

static bool
type_matches (const mnode_t *n, bson_type_t t)
{
   for (int i = 0; i < n->ntypes; i++) {
      if (n->types[i] == (int) t) {
         return true;
      }
      if (n->types[i] == DJ_TYPE_NUMBER && (t == BSON_TYPE_INT32 || t == BSON_TYPE_INT64 || t == BSON_TYPE_DOUBLE ||
                                            t == BSON_TYPE_DECIMAL128)) {
         return true;
      }
   }
   return false;
}

static bool
eq_matches (const bson_value_t *want, const bson_value_t *v)
{
   if (want->value_type == BSON_TYPE_NULL) {
      return v->value_type == BSON_TYPE_NULL || v->value_type == BSON_TYPE_EOD || v->value_type == BSON_TYPE_UNDEFINED;
   }
   if (v->value_type == BSON_TYPE_EOD) {
      return false;
   }
   return dj_type_rank (want->value_type) == dj_type_rank (v->value_type) && dj_value_cmp (want, v) == 0;
}

/* ---- the predicates over an array's elements ($elemMatch, a value's
 * elements at the path's end, documents inside arrays along the path) ---- */

typedef struct {
   const mnode_t *n;
   int i;         /* walk_test: the path component to continue with */
   bool produced; /* walk_test: some element was a document */
} elem_test_t;

/* One element e against t; sub: where a nested positional match may go
 * (NULL when the caller wants none), not the caller's. */
typedef bool (*elem_test_fn) (elem_test_t *t, const bson_value_t *e, int32_t *sub);

/* Whether some element of the array arr passes test; *pos (if not NULL and
 * still -1) receives the first such element's index, for the positional
 * `$`. */
static bool
any_element (const bson_value_t *arr, elem_test_fn test, elem_test_t *t, int32_t *pos)
{
   bson_iter_t it;
   int32_t k = 0;
   bson_iter_init_from_data (&it, arr->value.v_doc.data, arr->value.v_doc.data_len);
   while (bson_iter_next (&it)) {
      int32_t sub = -1;
      if (test (t, bson_iter_value (&it), pos ? &sub : NULL)) {
         if (pos && *pos < 0) {
            *pos = k;
         }
         return true;
      }
      k++;
   }
   return false;
}

static bool leaf (const mnode_t *n, const bson_value_t *v);
static bool walk (const mnode_t *n, const bson_value_t *v, int i, int32_t *pos);

/* $elemMatch: {$elemMatch: {a: 1}} takes documents, {$elemMatch: {$gt: 1}} any value. */
static bool
elem_match_test (elem_test_t *t, const bson_value_t *e, int32_t *sub)
{
   (void) sub;
   return (t->n->op == OP_ELEM_VAL || e->value_type == BSON_TYPE_DOCUMENT) && eval (t->n->sub, e, NULL, NULL);
}

static bool
leaf_test (elem_test_t *t, const bson_value_t *e, int32_t *sub)
{
   (void) sub;
   return leaf (t->n, e);
}

/* The path goes on inside each document element ({"a.b": 1} over a: [{b: 1}]). */
static bool
walk_test (elem_test_t *t, const bson_value_t *e, int32_t *sub)
{
   if (e->value_type != BSON_TYPE_DOCUMENT) {
      return false;
   }
   t->produced = true;
   return walk (t->n, e, t->i, sub);
}

/* The predicate against one value (no array expansion). v may be EOD.
 * $elemMatch reports the matching element's position in *pos. */
static bool
leaf_at (const mnode_t *n, const bson_value_t *v, int32_t *pos)
{
   switch (n->op) {
   case OP_EQ: return eq_matches (&n->val, v);
   case OP_LT:
   case OP_LTE:
   case OP_GT:
   case OP_GTE: {
      const bson_value_t *w = &n->val;
      if (v->value_type == BSON_TYPE_EOD && w->value_type != BSON_TYPE_NULL) {
         return false;
      }
      /* MinKey/MaxKey bound everything: {$lt: MaxKey} matches all but MaxKey. */
      if (w->value_type != BSON_TYPE_MINKEY && w->value_type != BSON_TYPE_MAXKEY &&
          dj_type_rank (w->value_type) != dj_type_rank (v->value_type)) {
         return false;
      }
      int c = dj_value_cmp (v, w);
      if (w->value_type == BSON_TYPE_NULL && v->value_type != BSON_TYPE_NULL && v->value_type != BSON_TYPE_EOD) {
         return false;
      }
      /* NaN only equals NaN; it is not "less than" any number in a query */
      if (dj_value_is_number (v) && dj_value_is_number (w)) {
         bool vn = v->value_type == BSON_TYPE_DOUBLE && isnan (v->value.v_double);
         bool wn = w->value_type == BSON_TYPE_DOUBLE && isnan (w->value.v_double);
         if (vn || wn) {
            return (vn && wn) && (n->op == OP_LTE || n->op == OP_GTE);
         }
      }
      switch (n->op) {
      case OP_LT: return c < 0;
      case OP_LTE: return c <= 0;
      case OP_GT: return c > 0;
      default: return c >= 0;
      }
   }
   case OP_IN:
      for (int i = 0; i < n->nin; i++) {
         if (n->in_re[i] ? (regex_match (n->in_re[i], v) || eq_matches (&n->in[i], v)) : eq_matches (&n->in[i], v)) {
            return true;
         }
      }
      return false;
   case OP_EXISTS: return v->value_type != BSON_TYPE_EOD;
   case OP_TYPE: return v->value_type != BSON_TYPE_EOD && type_matches (n, v->value_type);
   case OP_REGEX:
      if (v->value_type == BSON_TYPE_REGEX) {
         return n->val.value_type == BSON_TYPE_REGEX && dj_value_cmp (v, &n->val) == 0;
      }
      return regex_match (n->re, v);
   case OP_SIZE: return v->value_type == BSON_TYPE_ARRAY && (int64_t) dj_value_count (v) == n->num1;
   case OP_MOD: {
      if (!dj_value_is_number (v)) {
         return false;
      }
      double d = dj_value_as_double (v);
      int64_t x;
      if (v->value_type == BSON_TYPE_INT32 || v->value_type == BSON_TYPE_INT64) {
         dj_value_as_int64_exact (v, &x);
      } else {
         if (!isfinite (d) || fabs (d) >= 9.2e18) {
            return false;
         }
         x = (int64_t) trunc (d);
      }
      if (n->num1 == -1) {
         return n->num2 == 0; /* x % -1 overflows for INT64_MIN; the answer is 0 */
      }
      return x % n->num1 == n->num2;
   }
   case OP_ELEM_DOC:
   case OP_ELEM_VAL: {
      elem_test_t t = {.n = n};
      return v->value_type == BSON_TYPE_ARRAY && any_element (v, elem_match_test, &t, pos);
   }
   case OP_ALWAYS_FALSE: return false;
   case OP_GEO: return dj_geo_query_match (n->geo, v, NULL);
   }
   return false;
}

static bool
leaf (const mnode_t *n, const bson_value_t *v)
{
   return leaf_at (n, v, NULL);
}

static bool
whole_only (const mnode_t *n)
{
   return n->op == OP_SIZE || n->op == OP_ELEM_DOC || n->op == OP_ELEM_VAL || n->op == OP_ALWAYS_FALSE;
}

/* At the end of the path: the value, or any element of an array value. */
static bool
at_leaf (const mnode_t *n, const bson_value_t *v, int32_t *pos)
{
   if (leaf_at (n, v, pos)) {
      return true;
   }
   elem_test_t t = {.n = n};
   return v->value_type == BSON_TYPE_ARRAY && !whole_only (n) && any_element (v, leaf_test, &t, pos);
}

static const bson_value_t missing_value = {.value_type = BSON_TYPE_EOD};

/* v: the value reached after parts[0..i); continue with parts[i]. */
static bool
walk (const mnode_t *n, const bson_value_t *v, int i, int32_t *pos)
{
   if (i == n->path.n) {
      return at_leaf (n, v, pos);
   }
   const char *part = n->path.parts[i];
   if (v->value_type == BSON_TYPE_DOCUMENT) {
      bson_value_t child;
      if (!dj_value_get_field (v, part, &child)) {
         return leaf (n, &missing_value);
      }
      return walk (n, &child, i + 1, pos);
   }
   if (v->value_type == BSON_TYPE_ARRAY) {
      bool produced = false;
      uint32_t idx;
      if (dj_path_is_index (part, &idx)) {
         bson_value_t child;
         if (dj_value_get_field (v, part, &child)) {
            produced = true;
            if (walk (n, &child, i + 1, pos)) {
               return true;
            }
         }
      }
      elem_test_t t = {.n = n, .i = i};
      if (any_element (v, walk_test, &t, pos)) {
         return true;
      }
      return (produced || t.produced) ? false : leaf (n, &missing_value);
   }
   return leaf (n, &missing_value);
}

static bool
eval_expr (const mnode_t *n, const bson_value_t *doc, xctx_t *xc)
{
   bson_error_t local = {0};
   dj_arena_t *arena = dj_arena_new ();
   dj_eval_t ev;
   bson_t d;
   bson_value_t r;

   bson_init_static (&d, doc->value.v_doc.data, doc->value.v_doc.data_len);
   const dj_eval_t *vars = xc ? xc->vars : NULL;
   dj_eval_init_vars (&ev, arena, &d, vars, vars ? vars->now_ms : dj_now_ms (), xc && xc->error ? xc->error : &local);
   bool ok = dj_expr_eval (n->expr, &ev, &r);
   bool truth = ok && dj_value_truthy (&r);
   dj_arena_destroy (arena);
   if (!ok && xc) {
      xc->failed = true;
   }
   return truth;
}

static bool
eval (const mnode_t *n, const bson_value_t *doc, int32_t *pos, xctx_t *xc)
{
   switch (n->kind) {
   case N_AND:
      for (int i = 0; i < n->nkids; i++) {
         if (!eval (n->kids[i], doc, pos, xc)) {
            return false;
         }
      }
      return true;
   case N_OR:
      for (int i = 0; i < n->nkids; i++) {
         if (eval (n->kids[i], doc, pos, xc)) {
            return true;
         }
      }
      return false;
   case N_NOR:
      for (int i = 0; i < n->nkids; i++) {
         if (eval (n->kids[i], doc, NULL, xc)) {
            return false;
         }
      }
      return true;
   case N_NOT: return !eval (n->kids[0], doc, NULL, xc);
   case N_EXPR: return doc->value_type == BSON_TYPE_DOCUMENT && eval_expr (n, doc, xc);
   case N_SCHEMA: return doc->value_type == BSON_TYPE_DOCUMENT && dj_schema_match (n->schema, doc);
   case N_TEXT: return !xc || !xc->text_miss; /* the text index's scan decided (dj_matcher_text) */
   case N_FIELD:
      if (n->path.n == 0) {
         return at_leaf (n, doc, pos); /* value-level: doc is the value */
      }
      return walk (n, doc, 0, pos);
   }
   return false;
}

bool
dj_matcher_match (const dj_matcher_t *m, const bson_t *doc, int32_t *pos)
{
   return dj_matcher_match_ex (m, doc, pos, NULL, NULL);
}

bool
dj_matcher_match_ex (const dj_matcher_t *m, const bson_t *doc, int32_t *pos, const dj_eval_t *vars, bson_error_t *error)
{
   return dj_matcher_match_text (m, doc, true, pos, vars, error);
}

bool
dj_matcher_match_text (const dj_matcher_t *m, const bson_t *doc, bool text_hit, int32_t *pos, const dj_eval_t *vars,
                       bson_error_t *error)
{
   bson_value_t v;
   xctx_t xc = {.vars = vars, .error = error, .text_miss = !text_hit};

   if (pos) {
      *pos = -1;
   }
   dj_value_from_doc (doc, false, &v);
   bool r = eval (m, &v, pos, &xc);
   return r && !xc.failed;
}

const char *
dj_matcher_not_null_field (const dj_matcher_t *m)
{
   /* parse_doc's AND of parse_one_op's $ne: NOT (f == null) */
   if (m->kind != N_AND || m->nkids != 1 || m->kids[0]->kind != N_NOT || m->kids[0]->nkids != 1) {
      return NULL;
   }
   const mnode_t *f = m->kids[0]->kids[0];
   if (f->kind != N_FIELD || f->op != OP_EQ || f->val.value_type != BSON_TYPE_NULL || f->path.n != 1) {
      return NULL;
   }
   return f->path.parts[0];
}

bool
dj_matcher_match_value (const dj_matcher_t *m, const bson_value_t *v)
{
   return eval (m, v, NULL, NULL);
}

/* ---- planner support ---------------------------------------------------- */

static bool
path_is (const mnode_t *n, const char *path)
{
   /* compare the dotted form: parts are NUL-separated in buf */
   size_t i = 0;
   for (int k = 0; k < n->path.n; k++) {
      size_t l = strlen (n->path.parts[k]);
      if (strncmp (path + i, n->path.parts[k], l) != 0) {
         return false;
      }
      i += l;
      if (k + 1 < n->path.n) {
         if (path[i] != '.') {
            return false;
         }
         i++;
      }
   }
   return n->path.n > 0 && path[i] == '\0';
}

static bool
indexable_point (const bson_value_t *v)
{
   /* Arrays match element-wise and whole; regexes match by pattern: both
    * need more than one point lookup, so they take the scan. */
   return v->value_type != BSON_TYPE_ARRAY && v->value_type != BSON_TYPE_REGEX && v->value_type != BSON_TYPE_EOD;
}

/* A value whose index key orders and compares exactly as the matcher
 * compares it (dj_bounds_t.exact): no null (it also matches missing), no
 * NaN or Decimal128 (their keys are approximate), no documents or arrays. */
static bool
exact_point (const bson_value_t *v)
{
   switch (v->value_type) {
   case BSON_TYPE_INT32: case BSON_TYPE_INT64: case BSON_TYPE_UTF8: case BSON_TYPE_BOOL: case BSON_TYPE_DATE_TIME:
   case BSON_TYPE_OID:
      return true;
   case BSON_TYPE_DOUBLE:
      return v->value.v_double == v->value.v_double;
   default:
      return false;
   }
}

bool
dj_matcher_bounds (const dj_matcher_t *m, const char *path, dj_bounds_t *out)
{
   const mnode_t *root = m;
   int used = 0; /* conjuncts the bounds capture exactly */

   memset (out, 0, sizeof *out);
   if (root->kind != N_AND) {
      return false;
   }
   for (int i = 0; i < root->nkids; i++) {
      const mnode_t *n = root->kids[i];
      if (n->kind != N_FIELD || !path_is (n, path)) {
         continue;
      }
      if (n->op == OP_EQ && indexable_point (&n->val)) {
         out->kind = DJ_BOUND_EQ;
         out->points = (bson_value_t *) &n->val;
         out->npoints = 1;
         out->exact = root->nkids == 1 && exact_point (&n->val);
         return true;
      }
      if (n->op == OP_IN) {
         bool ok = true, exact = root->nkids == 1;
         for (int k = 0; k < n->nin && ok; k++) {
            ok = indexable_point (&n->in[k]);
            exact = exact && exact_point (&n->in[k]);
         }
         if (ok) {
            out->kind = DJ_BOUND_EQ;
            out->points = n->in;
            out->npoints = n->nin;
            out->exact = exact;
            return true;
         }
      }
      if ((n->op == OP_LT || n->op == OP_LTE || n->op == OP_GT || n->op == OP_GTE) && indexable_point (&n->val) &&
          n->val.value_type != BSON_TYPE_NULL && n->val.value_type != BSON_TYPE_MINKEY &&
          n->val.value_type != BSON_TYPE_MAXKEY && n->val.value_type != BSON_TYPE_DOCUMENT) {
         if (n->op == OP_LT || n->op == OP_LTE) {
            if (!out->hi) {
               out->hi = &n->val;
               out->hi_incl = n->op == OP_LTE;
               used += exact_point (&n->val);
            }
         } else if (!out->lo) {
            out->lo = &n->val;
            out->lo_incl = n->op == OP_GTE;
            used += exact_point (&n->val);
         }
         out->kind = DJ_BOUND_RANGE;
      }
   }
   out->exact = out->kind == DJ_BOUND_RANGE && used == root->nkids;
   if (out->kind == DJ_BOUND_RANGE && out->lo && out->hi &&
       dj_type_rank (out->lo->value_type) != dj_type_rank (out->hi->value_type)) {
      out->hi = NULL; /* different brackets: no document can match both; keep one side, recheck does the rest */
      out->exact = false;
   }
   return out->kind != DJ_BOUND_NONE;
}

/* The top-level conjuncts (through nested $and) as simple conditions, for
 * implies.c. */
static void
conjuncts_add (const mnode_t *n, dj_conjunct_t **v, int *nv, int *cap)
{
   if (n->kind == N_AND) {
      for (int i = 0; i < n->nkids; i++) {
         conjuncts_add (n->kids[i], v, nv, cap);
      }
      return;
   }
   DJ_GROW (*v, *nv, *cap, 4);
   dj_conjunct_t *c = &(*v)[(*nv)++];
   *c = (dj_conjunct_t) {.op = DJ_CJ_OTHER};
   if (n->kind != N_FIELD || n->path.n == 0) {
      return;
   }
   c->path = &n->path;
   switch (n->op) {
   case OP_EQ: c->op = DJ_CJ_EQ; break;
   case OP_LT: c->op = DJ_CJ_LT; break;
   case OP_LTE: c->op = DJ_CJ_LTE; break;
   case OP_GT: c->op = DJ_CJ_GT; break;
   case OP_GTE: c->op = DJ_CJ_GTE; break;
   case OP_IN: c->op = DJ_CJ_IN; break;
   case OP_EXISTS: c->op = DJ_CJ_EXISTS; break;
   default: return;
   }
   if (n->op == OP_IN) {
      for (int k = 0; k < n->nin; k++) {
         if (n->in_re[k]) {
            c->op = DJ_CJ_OTHER; /* a regex in $in matches by pattern */
            return;
         }
      }
      c->vals = n->in;
      c->nvals = n->nin;
   } else if (n->op != OP_EXISTS) {
      c->vals = &n->val;
      c->nvals = 1;
   }
}

int
dj_matcher_conjuncts (const dj_matcher_t *m, dj_conjunct_t **out)
{
   int n = 0, cap = 0;
   *out = NULL;
   conjuncts_add (m, out, &n, &cap);
   return n;
}

/* ---- upsert seeds -------------------------------------------------------- */

static bool
seed_set (dj_node_t *doc, const char *path, size_t plen, const bson_value_t *v, bson_error_t *error)
{
   dj_path_t p;
   dj_node_t *cur = doc;

   if (!dj_path_init (&p, path, plen, error)) {
      return false;
   }
   for (int i = 0; i < p.n; i++) {
      dj_node_t *next = dj_node_child (cur, p.parts[i], NULL);
      if (i + 1 == p.n) {
         if (next) {
            dj_path_cleanup (&p);
            return dj_err (error, DJ_NotSingleValueField, "cannot infer query fields to set, path '%.*s' is matched twice",
                           (int) plen, path);
         }
         dj_node_set_child (cur, p.parts[i], dj_node_from_value (v, p.parts[i]));
         break;
      }
      if (!next) {
         next = dj_node_new_container (BSON_TYPE_DOCUMENT, p.parts[i]);
         dj_node_push (cur, next);
      } else if (next->v.value_type != BSON_TYPE_DOCUMENT) {
         dj_path_cleanup (&p);
         return dj_err (error, DJ_NotSingleValueField, "cannot infer query fields to set, both paths '%.*s' and a prefix of it are matched",
                        (int) plen, path);
      }
      cur = next;
   }
   dj_path_cleanup (&p);
   return true;
}

bool
dj_matcher_upsert_seed (const bson_t *filter, dj_node_t *doc, bson_error_t *error)
{
   bson_iter_t it;

   /* https://www.mongodb.com/docs/manual/reference/method/db.collection.update/#upsert-behavior:
    * equality conditions become fields of the new document. */
   if (!bson_iter_init (&it, filter)) {
      return false;
   }
   while (bson_iter_next (&it)) {
      const char *key = bson_iter_key (&it);
      const bson_value_t *v = bson_iter_value (&it);
      if (!strcmp (key, "$and")) {
         bson_iter_t ai;
         if (BSON_ITER_HOLDS_ARRAY (&it) && bson_iter_recurse (&it, &ai)) {
            while (bson_iter_next (&ai)) {
               if (BSON_ITER_HOLDS_DOCUMENT (&ai)) {
                  bson_t sub;
                  const uint8_t *d;
                  uint32_t l;
                  bson_iter_document (&ai, &l, &d);
                  if (bson_init_static (&sub, d, l) && !dj_matcher_upsert_seed (&sub, doc, error)) {
                     return false;
                  }
               }
            }
         }
         continue;
      }
      if (key[0] == '$') {
         continue;
      }
      if (is_operator_doc (v)) {
         bson_iter_t oi;
         bson_iter_init_from_data (&oi, v->value.v_doc.data, v->value.v_doc.data_len);
         while (bson_iter_next (&oi)) {
            if (!strcmp (bson_iter_key (&oi), "$eq")) {
               if (!seed_set (doc, key, bson_iter_key_len (&it), bson_iter_value (&oi), error)) {
                  return false;
               }
            } else if (!strcmp (bson_iter_key (&oi), "$in")) {
               /* a one-element $in is an equality too */
               bson_iter_t ii;
               const bson_value_t *only = NULL;
               int count = 0;
               if (BSON_ITER_HOLDS_ARRAY (&oi) && bson_iter_recurse (&oi, &ii)) {
                  while (bson_iter_next (&ii)) {
                     only = bson_iter_value (&ii);
                     count++;
                  }
               }
               if (count == 1 && only->value_type != BSON_TYPE_REGEX &&
                   !seed_set (doc, key, bson_iter_key_len (&it), only, error)) {
                  return false;
               }
            }
         }
         continue;
      }
      if (v->value_type == BSON_TYPE_REGEX) {
         continue;
      }
      if (!seed_set (doc, key, bson_iter_key_len (&it), v, error)) {
         return false;
      }
   }
   return true;
}
