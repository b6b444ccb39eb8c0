/*
 * schema.c -- $jsonSchema: MongoDB's subset of JSON Schema draft 4, in
 * query filters and collection validators, and why a document fails one
 * (a DocumentValidationFailure's errInfo.details.schemaRulesNotSatisfied).
 * https://www.mongodb.com/docs/manual/reference/operator/query/jsonSchema/
 * https://www.mongodb.com/docs/manual/core/schema-validation/specify-json-schema/
 *
 * Keywords: bsonType, type, required, properties, patternProperties,
 * additionalProperties, dependencies, minProperties, maxProperties, enum,
 * minimum, maximum, exclusiveMinimum, exclusiveMaximum, multipleOf,
 * minLength, maxLength, pattern, items, additionalItems, minItems,
 * maxItems, uniqueItems, allOf, anyOf, oneOf, not, title, description.
 * As in the manual: a keyword about one type holds for values of other
 * types (minimum says nothing of a string), JSON's "integer" type is not
 * supported (bsonType "int"/"long" is), and $ref, $schema, default,
 * definitions, format and id are refused (FailedToParse), as is any
 * unknown keyword. The top level describes the document itself.
 */
#include "dj_query.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <math.h>
#include <pcre2.h>
#include <stdio.h>

/* The public handle (dj_query.h) is the root schema itself. */
typedef struct dj_schema schema_t;

/* additionalProperties / additionalItems: absent, false, true or a schema */
typedef enum { ADD_ANY = 0, ADD_NONE, ADD_SCHEMA } add_t;

struct dj_schema {
   bson_t *raw; /* owned: the keywords as given (specifiedAs) */
   int jtypes[8], njtypes;   /* type (JSON names, as BSON types; DJ_TYPE_NUMBER) */
   int btypes[32], nbtypes;  /* bsonType */
   bool has_jtype, has_btype;
   char **required;
   int nrequired;
   char **prop_names;
   schema_t **props;
   int nprops;
   pcre2_code **pat_re;
   schema_t **pat_props;
   int npat;
   add_t add_props;
   schema_t *add_props_schema;
   /* minimum .. enumv: shallow copies whose bytes are raw's; EOD: absent */
   bson_value_t minimum, maximum, multiple_of;
   bool excl_min, excl_max;
   int64_t min_len, max_len, min_items, max_items, min_props, max_props; /* -1: none */
   pcre2_code *pattern;
   bson_value_t enumv; /* an array */
   schema_t *items;           /* items: one schema for every element */
   schema_t **item_list;      /* items: [schemas], one per position */
   int nitem_list;
   bool items_is_list;
   add_t add_items;
   schema_t *add_items_schema;
   bool unique_items;
   char **dep_names;
   schema_t **dep_schemas; /* NULL where the dependency is a list of names */
   bson_value_t *dep_lists; /* EOD where the dependency is a schema */
   int ndeps;
   schema_t **all_of, **any_of, **one_of;
   int nall, nany, none;
   schema_t *not_;
   char *description; /* owned, or NULL */
};

static void schema_free (schema_t *s);

/* An owned array of n owned schemas (entries may be NULL) */
static void
free_schemas (schema_t **list, int n)
{
   for (int i = 0; i < n; i++) {
      schema_free (list[i]);
   }
   bson_free (list);
}

static void
schema_free (schema_t *s)
{
   if (!s) {
      return;
   }
   dj_strv_free (s->required, s->nrequired);
   dj_strv_free (s->prop_names, s->nprops);
   free_schemas (s->props, s->nprops);
   for (int i = 0; i < s->npat; i++) {
      pcre2_code_free (s->pat_re[i]);
   }
   bson_free (s->pat_re);
   free_schemas (s->pat_props, s->npat);
   schema_free (s->add_props_schema);
   pcre2_code_free (s->pattern); /* NULL: nothing */
   schema_free (s->items);
   free_schemas (s->item_list, s->nitem_list);
   schema_free (s->add_items_schema);
   dj_strv_free (s->dep_names, s->ndeps);
   free_schemas (s->dep_schemas, s->ndeps);
   bson_free (s->dep_lists);
   free_schemas (s->all_of, s->nall);
   free_schemas (s->any_of, s->nany);
   free_schemas (s->one_of, s->none);
   schema_free (s->not_);
   bson_free (s->description);
   bson_destroy (s->raw); /* NULL: nothing */
   bson_free (s);
}

/* ---- parsing ---------------------------------------------------------------- */

static schema_t *parse (const bson_value_t *spec, bson_error_t *error);

static bool
bad_type (const char *kw, const char *want, const bson_value_t *v, bson_error_t *error)
{
   return dj_err (error, DJ_TypeMismatch, "$jsonSchema keyword '%s' must be %s, but found %s", kw, want,
                  dj_type_name (v->value_type));
}

/* v, which kw wants to be an array or an object, with *it before its first element. */
static bool
elements (const char *kw, const bson_value_t *v, bson_type_t type, bson_iter_t *it, bson_error_t *error)
{
   if (v->value_type != type) {
      return bad_type (kw, type == BSON_TYPE_ARRAY ? "an array" : "an object", v, error);
   }
   bson_iter_init_from_data (it, v->value.v_doc.data, v->value.v_doc.data_len);
   return true;
}

/* A non-negative whole number ({minLength: 2}), into *out. */
static bool
count_arg (const char *kw, const bson_value_t *v, int64_t *out, bson_error_t *error)
{
   int64_t n;
   if (!dj_value_is_number (v)) {
      return bad_type (kw, "a number", v, error);
   }
   if (!dj_value_as_int64_exact (v, &n)) {
      return dj_err (error, DJ_FailedToParse, "$jsonSchema keyword '%s' must be representable as an integer", kw);
   }
   if (n < 0) {
      return dj_err (error, DJ_FailedToParse, "$jsonSchema keyword '%s' must be non-negative", kw);
   }
   *out = n;
   return true;
}

/* pattern / patternProperties: as $regex compiles it, no flags */
static pcre2_code *
regex (const char *src, bson_error_t *error)
{
   return dj_match_regex (src, strlen (src), "", error);
}

/* type / bsonType: one name or an array of them, into types[]. */
static bool
parse_types (const char *kw, const bson_value_t *v, bool json, int *types, int *n, int max, bson_error_t *error)
{
   bson_iter_t it;
   const bson_value_t *one = v;
   bool array = v->value_type == BSON_TYPE_ARRAY;
   if (array) {
      bson_iter_init_from_data (&it, v->value.v_doc.data, v->value.v_doc.data_len);
   }
   while (array ? bson_iter_next (&it) : one != NULL) {
      const bson_value_t *e = array ? bson_iter_value (&it) : one;
      one = NULL;
      if (e->value_type != BSON_TYPE_UTF8) {
         return bad_type (kw, "a string or an array of strings", e, error);
      }
      const char *name = e->value.v_utf8.str;
      int t;
      if (json) {
         static const struct {
            const char *name;
            int type;
         } jt[] = {{"object", BSON_TYPE_DOCUMENT}, {"array", BSON_TYPE_ARRAY}, {"number", DJ_TYPE_NUMBER},
                   {"boolean", BSON_TYPE_BOOL},    {"string", BSON_TYPE_UTF8}, {"null", BSON_TYPE_NULL}};
         if (!strcmp (name, "integer")) {
            return dj_err (error, DJ_BadValue, "$jsonSchema type 'integer' is not currently supported.");
         }
         t = -1;
         for (size_t i = 0; i < sizeof jt / sizeof jt[0]; i++) {
            if (!strcmp (name, jt[i].name)) {
               t = jt[i].type;
            }
         }
         if (t == -1) {
            return dj_err (error, DJ_BadValue, "Unknown JSON Schema type: %s", name);
         }
      } else if (!dj_type_from_name (name, &t)) {
         return dj_err (error, DJ_BadValue, "Unknown type name alias: %s", name);
      }
      for (int i = 0; i < *n; i++) {
         if (types[i] == t) {
            return dj_err (error, DJ_FailedToParse, "$jsonSchema keyword '%s' has duplicate value: %s", kw, name);
         }
      }
      if (*n == max) {
         return dj_err (error, DJ_FailedToParse, "$jsonSchema keyword '%s' lists too many types", kw);
      }
      types[(*n)++] = t;
   }
   if (*n == 0) {
      return dj_err (error, DJ_FailedToParse, "$jsonSchema keyword '%s' must name at least one type", kw);
   }
   return true;
}

/* An array of schemas (allOf, anyOf, oneOf, items as a list). */
static bool
parse_list (const char *kw, const bson_value_t *v, schema_t ***out, int *n, bson_error_t *error)
{
   bson_iter_t it;
   if (!elements (kw, v, BSON_TYPE_ARRAY, &it, error)) {
      return false;
   }
   while (bson_iter_next (&it)) {
      schema_t *s = parse (bson_iter_value (&it), error);
      if (!s) {
         return false;
      }
      *out = bson_realloc (*out, sizeof (schema_t *) * (size_t) (*n + 1));
      (*out)[(*n)++] = s;
   }
   if (*n == 0 && strcmp (kw, "items")) {
      return dj_err (error, DJ_FailedToParse, "$jsonSchema keyword '%s' must be a nonempty array", kw);
   }
   return true;
}

/* additionalProperties / additionalItems: a boolean or a schema. */
static bool
parse_additional (const char *kw, const bson_value_t *v, add_t *kind, schema_t **s, bson_error_t *error)
{
   if (v->value_type == BSON_TYPE_BOOL) {
      *kind = v->value.v_bool ? ADD_ANY : ADD_NONE;
      return true;
   }
   if (v->value_type != BSON_TYPE_DOCUMENT) {
      return bad_type (kw, "an object or a boolean", v, error);
   }
   *kind = ADD_SCHEMA;
   return (*s = parse (v, error)) != NULL;
}

/* properties / patternProperties: {name: schema, ...}, from `it` on */
static bool
parse_props (bson_iter_t it, schema_t *s, bool patterns, bson_error_t *error)
{
   while (bson_iter_next (&it)) {
      if (!BSON_ITER_HOLDS_DOCUMENT (&it)) {
         return dj_err (error, DJ_TypeMismatch, "Nested schema for $jsonSchema property '%s' must be an object",
                        bson_iter_key (&it));
      }
      schema_t *sub = parse (bson_iter_value (&it), error);
      if (!sub) {
         return false;
      }
      if (patterns) {
         pcre2_code *re = regex (bson_iter_key (&it), error);
         if (!re) {
            schema_free (sub);
            return false;
         }
         s->pat_re = bson_realloc (s->pat_re, sizeof (pcre2_code *) * (size_t) (s->npat + 1));
         s->pat_props = bson_realloc (s->pat_props, sizeof (schema_t *) * (size_t) (s->npat + 1));
         s->pat_re[s->npat] = re;
         s->pat_props[s->npat++] = sub;
      } else {
         s->prop_names = bson_realloc (s->prop_names, sizeof (char *) * (size_t) (s->nprops + 1));
         s->props = bson_realloc (s->props, sizeof (schema_t *) * (size_t) (s->nprops + 1));
         s->prop_names[s->nprops] = bson_strdup (bson_iter_key (&it));
         s->props[s->nprops++] = sub;
      }
   }
   return true;
}

/* required: a nonempty array of distinct strings, from `it` on */
static bool
parse_required (bson_iter_t it, schema_t *s, bson_error_t *error)
{
   while (bson_iter_next (&it)) {
      if (!BSON_ITER_HOLDS_UTF8 (&it)) {
         return dj_err (error, DJ_TypeMismatch, "$jsonSchema keyword 'required' must be an array of strings");
      }
      for (int i = 0; i < s->nrequired; i++) {
         if (!strcmp (s->required[i], bson_iter_utf8 (&it, NULL))) {
            return dj_err (error, DJ_FailedToParse, "$jsonSchema keyword 'required' array cannot contain duplicate values");
         }
      }
      s->required = bson_realloc (s->required, sizeof (char *) * (size_t) (s->nrequired + 1));
      s->required[s->nrequired++] = bson_strdup (bson_iter_utf8 (&it, NULL));
   }
   if (s->nrequired == 0) {
      return dj_err (error, DJ_FailedToParse, "$jsonSchema keyword 'required' cannot be an empty array");
   }
   return true;
}

/* dependencies: {name: [names] | schema}, from `it` on */
static bool
parse_deps (bson_iter_t it, schema_t *s, bson_error_t *error)
{
   while (bson_iter_next (&it)) {
      const bson_value_t *d = bson_iter_value (&it);
      schema_t *sub = NULL;
      if (d->value_type == BSON_TYPE_DOCUMENT) {
         if (!(sub = parse (d, error))) {
            return false;
         }
      } else if (d->value_type == BSON_TYPE_ARRAY) {
         bson_iter_t ai;
         bson_iter_init_from_data (&ai, d->value.v_doc.data, d->value.v_doc.data_len);
         bool any = false;
         while (bson_iter_next (&ai)) {
            any = true;
            if (!BSON_ITER_HOLDS_UTF8 (&ai)) {
               return dj_err (error, DJ_TypeMismatch, "property dependencies in $jsonSchema keyword 'dependencies' must be strings");
            }
         }
         if (!any) {
            return dj_err (error, DJ_FailedToParse, "property dependencies in $jsonSchema keyword 'dependencies' cannot be empty");
         }
      } else {
         return dj_err (error, DJ_TypeMismatch, "Expected an object or an array for $jsonSchema dependency '%s'",
                        bson_iter_key (&it));
      }
      s->dep_names = bson_realloc (s->dep_names, sizeof (char *) * (size_t) (s->ndeps + 1));
      s->dep_schemas = bson_realloc (s->dep_schemas, sizeof (schema_t *) * (size_t) (s->ndeps + 1));
      s->dep_lists = bson_realloc (s->dep_lists, sizeof (bson_value_t) * (size_t) (s->ndeps + 1));
      s->dep_names[s->ndeps] = bson_strdup (bson_iter_key (&it));
      s->dep_schemas[s->ndeps] = sub;
      s->dep_lists[s->ndeps].value_type = BSON_TYPE_EOD;
      if (!sub) {
         s->dep_lists[s->ndeps] = *d;
      }
      s->ndeps++;
   }
   return true;
}

/* One keyword of s; v's bytes are s->raw's, which outlives s's copies of v. */
static bool
keyword (schema_t *s, const char *k, const bson_value_t *v, bson_error_t *error)
{
   bson_iter_t it;
   if (!strcmp (k, "type") || !strcmp (k, "bsonType")) {
      bool json = k[0] == 't';
      bool ok = json ? parse_types (k, v, true, s->jtypes, &s->njtypes, 8, error)
                     : parse_types (k, v, false, s->btypes, &s->nbtypes, 32, error);
      *(json ? &s->has_jtype : &s->has_btype) = true;
      return ok;
   }
   if (!strcmp (k, "required")) {
      return elements (k, v, BSON_TYPE_ARRAY, &it, error) && parse_required (it, s, error);
   }
   if (!strcmp (k, "properties") || !strcmp (k, "patternProperties")) {
      return elements (k, v, BSON_TYPE_DOCUMENT, &it, error) && parse_props (it, s, k[0] == 'p' && k[1] == 'a', error);
   }
   if (!strcmp (k, "additionalProperties")) {
      return parse_additional (k, v, &s->add_props, &s->add_props_schema, error);
   }
   if (!strcmp (k, "additionalItems")) {
      return parse_additional (k, v, &s->add_items, &s->add_items_schema, error);
   }
   if (!strcmp (k, "minimum") || !strcmp (k, "maximum") || !strcmp (k, "multipleOf")) {
      if (!dj_value_is_number (v)) {
         return bad_type (k, "a number", v, error);
      }
      if (k[1] == 'u' && !(dj_value_as_double (v) > 0)) {
         return dj_err (error, DJ_FailedToParse, "$jsonSchema keyword 'multipleOf' must have a positive value");
      }
      *(k[1] == 'i' ? &s->minimum : k[1] == 'a' ? &s->maximum : &s->multiple_of) = *v;
      return true;
   }
   if (!strcmp (k, "exclusiveMinimum") || !strcmp (k, "exclusiveMaximum")) {
      if (v->value_type != BSON_TYPE_BOOL) {
         return bad_type (k, "a boolean", v, error);
      }
      *(k[9] == 'i' ? &s->excl_min : &s->excl_max) = v->value.v_bool;
      return true;
   }
   if (!strcmp (k, "minLength") || !strcmp (k, "maxLength")) {
      return count_arg (k, v, k[1] == 'i' ? &s->min_len : &s->max_len, error);
   }
   if (!strcmp (k, "minItems") || !strcmp (k, "maxItems")) {
      return count_arg (k, v, k[1] == 'i' ? &s->min_items : &s->max_items, error);
   }
   if (!strcmp (k, "minProperties") || !strcmp (k, "maxProperties")) {
      return count_arg (k, v, k[1] == 'i' ? &s->min_props : &s->max_props, error);
   }
   if (!strcmp (k, "pattern")) {
      if (v->value_type != BSON_TYPE_UTF8) {
         return bad_type (k, "a string", v, error);
      }
      return (s->pattern = regex (v->value.v_utf8.str, error)) != NULL;
   }
   if (!strcmp (k, "enum")) {
      if (v->value_type != BSON_TYPE_ARRAY) {
         return bad_type (k, "an array", v, error);
      }
      if (v->value.v_doc.data_len <= 5) {
         return dj_err (error, DJ_FailedToParse, "$jsonSchema keyword 'enum' cannot be an empty array");
      }
      s->enumv = *v;
      return true;
   }
   if (!strcmp (k, "items")) {
      if (v->value_type == BSON_TYPE_DOCUMENT) {
         return (s->items = parse (v, error)) != NULL;
      }
      s->items_is_list = true;
      return parse_list (k, v, &s->item_list, &s->nitem_list, error);
   }
   if (!strcmp (k, "uniqueItems")) {
      if (v->value_type != BSON_TYPE_BOOL) {
         return bad_type (k, "a boolean", v, error);
      }
      s->unique_items = v->value.v_bool;
      return true;
   }
   if (!strcmp (k, "dependencies")) {
      return elements (k, v, BSON_TYPE_DOCUMENT, &it, error) && parse_deps (it, s, error);
   }
   if (!strcmp (k, "allOf")) {
      return parse_list (k, v, &s->all_of, &s->nall, error);
   }
   if (!strcmp (k, "anyOf")) {
      return parse_list (k, v, &s->any_of, &s->nany, error);
   }
   if (!strcmp (k, "oneOf")) {
      return parse_list (k, v, &s->one_of, &s->none, error);
   }
   if (!strcmp (k, "not")) {
      if (v->value_type != BSON_TYPE_DOCUMENT) {
         return bad_type (k, "an object", v, error);
      }
      return (s->not_ = parse (v, error)) != NULL;
   }
   if (!strcmp (k, "title") || !strcmp (k, "description")) {
      if (v->value_type != BSON_TYPE_UTF8) {
         return bad_type (k, "a string", v, error);
      }
      if (k[0] == 'd') {
         bson_free (s->description);
         s->description = bson_strdup (v->value.v_utf8.str);
      }
      return true;
   }
   static const char *const unsupported[] = {"$ref", "$schema", "default", "definitions", "format", "id", NULL};
   for (int i = 0; unsupported[i]; i++) {
      if (!strcmp (k, unsupported[i])) {
         return dj_err (error, DJ_FailedToParse, "$jsonSchema keyword '%s' is not currently supported", k);
      }
   }
   return dj_err (error, DJ_FailedToParse, "Unknown $jsonSchema keyword: %s", k);
}

static schema_t *
parse (const bson_value_t *spec, bson_error_t *error)
{
   bson_iter_t it;
   if (spec->value_type != BSON_TYPE_DOCUMENT) {
      dj_err (error, DJ_TypeMismatch, "$jsonSchema must be an object");
      return NULL;
   }
   schema_t *s = bson_malloc0 (sizeof *s);
   s->raw = bson_new_from_data (spec->value.v_doc.data, spec->value.v_doc.data_len);
   s->min_len = s->max_len = s->min_items = s->max_items = s->min_props = s->max_props = -1;
   bool min_seen = false, max_seen = false, emin = false, emax = false;
   if (!s->raw || !bson_iter_init (&it, s->raw)) {
      dj_err (error, DJ_FailedToParse, "invalid BSON in $jsonSchema");
      schema_free (s);
      return NULL;
   }
   while (bson_iter_next (&it)) {
      const char *k = bson_iter_key (&it);
      min_seen |= !strcmp (k, "minimum");
      max_seen |= !strcmp (k, "maximum");
      emin |= !strcmp (k, "exclusiveMinimum");
      emax |= !strcmp (k, "exclusiveMaximum");
      if (!keyword (s, k, bson_iter_value (&it), error)) {
         schema_free (s);
         return NULL;
      }
   }
   if ((emin && !min_seen) || (emax && !max_seen)) {
      dj_err (error, DJ_FailedToParse, "$jsonSchema keyword '%s' must be a present if %s is present",
              emin && !min_seen ? "minimum" : "maximum", emin && !min_seen ? "exclusiveMinimum" : "exclusiveMaximum");
      schema_free (s);
      return NULL;
   }
   if (s->add_items != ADD_ANY && !s->items_is_list) {
      s->add_items = ADD_ANY; /* additionalItems counts only after a list of items */
   }
   return s;
}

dj_schema_t *
dj_schema_new (const bson_value_t *spec, bson_error_t *error)
{
   return parse (spec, error);
}

void
dj_schema_destroy (dj_schema_t *s)
{
   schema_free (s);
}

/* ---- matching, and why not ----------------------------------------------------
 * check() answers whether v satisfies s. With `out` it also appends, for
 * each rule v breaks, mongod's description of it to out->arr
 * (schemaRulesNotSatisfied, or a sub-schema's `details`); without, it stops
 * at the first broken rule. */
typedef struct {
   bson_t *arr;
   uint32_t n;
} out_t;

static bool check (const schema_t *s, const bson_value_t *v, out_t *out);

/* Begins rule `kw`'s entry in out: {operatorName: kw[, specifiedAs: {kw: its value}]}. */
static void
rule_begin (out_t *out, bson_t *rule, const schema_t *s, const char *kw, bool specified)
{
   char buf[16];
   bson_iter_t it;
   bson_append_document_begin (out->arr, dj_array_key (out->n++, buf), -1, rule);
   BSON_APPEND_UTF8 (rule, "operatorName", kw);
   if (specified && bson_iter_init_find (&it, s->raw, kw)) {
      bson_t spec;
      BSON_APPEND_DOCUMENT_BEGIN (rule, "specifiedAs", &spec);
      bson_append_value (&spec, kw, -1, bson_iter_value (&it));
      bson_append_document_end (rule, &spec);
   }
}

/* Rule `kw` is broken: *ok becomes false and, with an out to describe it
 * in, the rule's entry is begun (the caller adds to it and ends it).
 * Returns false without an out: the caller stops at this first broken rule. */
static bool
failed (out_t *out, bool *ok, bson_t *rule, const schema_t *s, const char *kw, bool specified)
{
   *ok = false;
   if (out) {
      rule_begin (out, rule, s, kw, specified);
   }
   return out != NULL;
}

/* A rule broken by value v for `reason`: {operatorName, specifiedAs, reason,
 * consideredValue}; as failed() says, false without an out. */
static bool
broken (out_t *out, bool *ok, const schema_t *s, const char *kw, const char *reason, const bson_value_t *v)
{
   bson_t rule;
   if (!failed (out, ok, &rule, s, kw, true)) {
      return false;
   }
   BSON_APPEND_UTF8 (&rule, "reason", reason);
   BSON_APPEND_VALUE (&rule, "consideredValue", v);
   bson_append_document_end (out->arr, &rule);
   return true;
}

/* With n names in `names` (an array, destroyed here), rule kw is broken:
 * its entry lists them under `key`. */
static void
names_rule (out_t *out, bool *ok, const schema_t *s, const char *kw, const char *key, bson_t *names, uint32_t n)
{
   bson_t rule;
   if (n && failed (out, ok, &rule, s, kw, true)) {
      BSON_APPEND_ARRAY (&rule, key, names);
      bson_append_document_end (out->arr, &rule);
   }
   bson_destroy (names);
}

static bool
type_ok (const int *types, int n, const bson_value_t *v)
{
   for (int i = 0; i < n; i++) {
      if (types[i] == (int) v->value_type || (types[i] == DJ_TYPE_NUMBER && dj_value_is_number (v))) {
         return true;
      }
   }
   return false;
}

static int64_t
code_points (const bson_value_t *v)
{
   int64_t n = 0;
   for (uint32_t i = 0; i < v->value.v_utf8.len; i++) {
      n += ((uint8_t) v->value.v_utf8.str[i] & 0xC0) != 0x80;
   }
   return n;
}

static bool
re_match (const pcre2_code *re, const char *s, size_t n)
{
   pcre2_match_data *md = pcre2_match_data_create_from_pattern (re, NULL);
   int rc = pcre2_match (re, (PCRE2_SPTR) s, n, 0, 0, md, NULL);
   pcre2_match_data_free (md);
   return rc >= 0;
}

/* A sub-schema checked with its failures under `key` of rule (an array). */
static bool
check_into (const schema_t *sub, const bson_value_t *v, bson_t *rule, const char *key)
{
   bson_t details;
   BSON_APPEND_ARRAY_BEGIN (rule, key, &details);
   out_t o = {&details, 0};
   bool ok = check (sub, v, &o);
   bson_append_array_end (rule, &details);
   return ok;
}

static bool
check_number (const schema_t *s, const bson_value_t *v, out_t *out)
{
   bool ok = true;
   if (s->minimum.value_type) {
      int c = dj_value_cmp (v, &s->minimum);
      if ((c < 0 || (c == 0 && s->excl_min)) && !broken (out, &ok, s, "minimum", "comparison failed", v)) {
         return false;
      }
   }
   if (s->maximum.value_type) {
      int c = dj_value_cmp (v, &s->maximum);
      if ((c > 0 || (c == 0 && s->excl_max)) && !broken (out, &ok, s, "maximum", "comparison failed", v)) {
         return false;
      }
   }
   if (s->multiple_of.value_type) {
      double d = dj_value_as_double (v), m = dj_value_as_double (&s->multiple_of);
      if (!isfinite (d) || fmod (d, m) != 0) {
         broken (out, &ok, s, "multipleOf", "considered value is not a multiple of the specified value", v);
      }
   }
   return ok;
}

static bool
check_string (const schema_t *s, const bson_value_t *v, out_t *out)
{
   bool ok = true;
   int64_t n = (s->min_len >= 0 || s->max_len >= 0) ? code_points (v) : 0;
   if (((s->min_len >= 0 && n < s->min_len) || (s->max_len >= 0 && n > s->max_len)) &&
       !broken (out, &ok, s, s->min_len >= 0 && n < s->min_len ? "minLength" : "maxLength",
                "specified string length was not satisfied", v)) {
      return false;
   }
   if (s->pattern && !re_match (s->pattern, v->value.v_utf8.str, v->value.v_utf8.len)) {
      broken (out, &ok, s, "pattern", "regular expression did not match", v);
   }
   return ok;
}

static bool
check_array (const schema_t *s, const bson_value_t *v, out_t *out)
{
   bool ok = true;
   bson_iter_t it;
   int64_t n = dj_value_count (v);
   if (((s->min_items >= 0 && n < s->min_items) || (s->max_items >= 0 && n > s->max_items)) &&
       !broken (out, &ok, s, s->min_items >= 0 && n < s->min_items ? "minItems" : "maxItems",
                "array did not match specified length", v)) {
      return false;
   }
   if (s->unique_items) {
      bson_iter_t a, b;
      bool dup = false;
      bson_iter_init_from_data (&a, v->value.v_doc.data, v->value.v_doc.data_len);
      while (!dup && bson_iter_next (&a)) {
         b = a;
         while (!dup && bson_iter_next (&b)) {
            dup = dj_value_equal (bson_iter_value (&a), bson_iter_value (&b));
         }
      }
      bson_t rule;
      if (dup) {
         if (!failed (out, &ok, &rule, s, "uniqueItems", true)) {
            return false;
         }
         BSON_APPEND_UTF8 (&rule, "reason", "found a duplicate item");
         BSON_APPEND_VALUE (&rule, "consideredValue", v);
         BSON_APPEND_VALUE (&rule, "duplicatedValue", bson_iter_value (&a));
         bson_append_document_end (out->arr, &rule);
      }
   }
   /* items: one schema for each element, or one per position then additionalItems */
   int i = 0;
   bson_iter_init_from_data (&it, v->value.v_doc.data, v->value.v_doc.data_len);
   while (bson_iter_next (&it) && (s->items || s->items_is_list)) {
      const schema_t *sub = s->items_is_list ? (i < s->nitem_list ? s->item_list[i] : s->add_items_schema) : s->items;
      const char *kw = s->items_is_list && i >= s->nitem_list ? "additionalItems" : "items";
      bson_t rule;
      if (s->items_is_list && i >= s->nitem_list && s->add_items == ADD_NONE) {
         if (!failed (out, &ok, &rule, s, kw, true)) {
            return false;
         }
         BSON_APPEND_UTF8 (&rule, "reason", "found additional items");
         BSON_APPEND_INT32 (&rule, "itemIndex", i);
         BSON_APPEND_VALUE (&rule, "consideredValue", bson_iter_value (&it));
         bson_append_document_end (out->arr, &rule);
         break;
      }
      if (sub && !check (sub, bson_iter_value (&it), NULL)) {
         if (!failed (out, &ok, &rule, s, kw, false)) {
            return false;
         }
         BSON_APPEND_UTF8 (&rule, "reason", "At least one item did not match the sub-schema");
         BSON_APPEND_INT32 (&rule, "itemIndex", i);
         check_into (sub, bson_iter_value (&it), &rule, "details");
         bson_append_document_end (out->arr, &rule);
         break; /* mongod reports the first failing item */
      }
      i++;
   }
   return ok;
}

static bool
has_field (const bson_value_t *v, const char *name, bson_iter_t *found)
{
   bson_iter_t it;
   return bson_iter_init_from_data (&it, v->value.v_doc.data, v->value.v_doc.data_len) && bson_iter_find_w_len (&it, name, -1) &&
          (*found = it, true);
}

static bool
check_object (const schema_t *s, const bson_value_t *v, out_t *out)
{
   bool ok = true;
   bson_iter_t it, f;
   bson_t rule;
   if (s->nrequired) {
      bson_t missing = BSON_INITIALIZER;
      char buf[16];
      uint32_t nm = 0;
      for (int i = 0; i < s->nrequired; i++) {
         if (!has_field (v, s->required[i], &f)) {
            bson_append_utf8 (&missing, dj_array_key (nm++, buf), -1, s->required[i], -1);
         }
      }
      names_rule (out, &ok, s, "required", "missingProperties", &missing, nm);
      if (!ok && !out) {
         return false;
      }
   }
   if (s->min_props >= 0 || s->max_props >= 0) {
      int64_t n = dj_value_count (v);
      if ((s->min_props >= 0 && n < s->min_props) || (s->max_props >= 0 && n > s->max_props)) {
         if (!failed (out, &ok, &rule, s, s->min_props >= 0 && n < s->min_props ? "minProperties" : "maxProperties", true)) {
            return false;
         }
         BSON_APPEND_UTF8 (&rule, "reason", "specified number of properties was not satisfied");
         BSON_APPEND_INT64 (&rule, "numberOfProperties", n);
         bson_append_document_end (out->arr, &rule);
      }
   }
   /* properties: the ones present are checked; the failing ones listed */
   if (s->nprops) {
      bson_t list;
      uint32_t nf = 0;
      for (int i = 0; i < s->nprops; i++) {
         if (!has_field (v, s->prop_names[i], &f) || check (s->props[i], bson_iter_value (&f), NULL)) {
            continue;
         }
         if (nf == 0) {
            if (!failed (out, &ok, &rule, s, "properties", false)) {
               return false;
            }
            BSON_APPEND_ARRAY_BEGIN (&rule, "propertiesNotSatisfied", &list);
         }
         char buf[16];
         bson_t p;
         bson_append_document_begin (&list, dj_array_key (nf++, buf), -1, &p);
         BSON_APPEND_UTF8 (&p, "propertyName", s->prop_names[i]);
         if (s->props[i]->description) {
            BSON_APPEND_UTF8 (&p, "description", s->props[i]->description);
         }
         check_into (s->props[i], bson_iter_value (&f), &p, "details");
         bson_append_document_end (&list, &p);
      }
      if (nf) {
         bson_append_array_end (&rule, &list);
         bson_append_document_end (out->arr, &rule);
      }
   }
   /* patternProperties and additionalProperties, field by field */
   if (s->npat || s->add_props != ADD_ANY) {
      bson_t extra = BSON_INITIALIZER;
      uint32_t nextra = 0;
      bson_iter_init_from_data (&it, v->value.v_doc.data, v->value.v_doc.data_len);
      while (bson_iter_next (&it)) {
         const char *name = bson_iter_key (&it);
         bool named = false, patterned = false;
         for (int i = 0; i < s->nprops && !named; i++) {
            named = !strcmp (s->prop_names[i], name);
         }
         for (int i = 0; i < s->npat; i++) {
            if (!re_match (s->pat_re[i], name, bson_iter_key_len (&it))) {
               continue;
            }
            patterned = true;
            if (!check (s->pat_props[i], bson_iter_value (&it), NULL)) {
               bson_t list, p;
               if (!failed (out, &ok, &rule, s, "patternProperties", false)) {
                  bson_destroy (&extra);
                  return false;
               }
               BSON_APPEND_ARRAY_BEGIN (&rule, "propertiesNotSatisfied", &list);
               BSON_APPEND_DOCUMENT_BEGIN (&list, "0", &p);
               BSON_APPEND_UTF8 (&p, "propertyName", name);
               check_into (s->pat_props[i], bson_iter_value (&it), &p, "details");
               bson_append_document_end (&list, &p);
               bson_append_array_end (&rule, &list);
               bson_append_document_end (out->arr, &rule);
            }
         }
         if (named || patterned || s->add_props == ADD_ANY) {
            continue;
         }
         if (s->add_props == ADD_NONE) {
            char buf[16];
            bson_append_utf8 (&extra, dj_array_key (nextra++, buf), -1, name, -1);
         } else if (!check (s->add_props_schema, bson_iter_value (&it), NULL)) {
            if (!failed (out, &ok, &rule, s, "additionalProperties", false)) {
               bson_destroy (&extra);
               return false;
            }
            BSON_APPEND_UTF8 (&rule, "reason", "at least one additional property did not match the subschema");
            BSON_APPEND_UTF8 (&rule, "failingProperty", name);
            check_into (s->add_props_schema, bson_iter_value (&it), &rule, "details");
            bson_append_document_end (out->arr, &rule);
         }
      }
      names_rule (out, &ok, s, "additionalProperties", "additionalProperties", &extra, nextra);
      if (!ok && !out) {
         return false;
      }
   }
   /* dependencies: when a property is there, others must be, or a schema must hold */
   for (int i = 0; i < s->ndeps; i++) {
      if (!has_field (v, s->dep_names[i], &f)) {
         continue;
      }
      bson_t missing = BSON_INITIALIZER;
      uint32_t nm = 0;
      bool dep_ok = true;
      if (s->dep_lists[i].value_type) {
         bson_iter_t ai;
         char buf[16];
         bson_iter_init_from_data (&ai, s->dep_lists[i].value.v_doc.data, s->dep_lists[i].value.v_doc.data_len);
         while (bson_iter_next (&ai)) {
            if (!has_field (v, bson_iter_utf8 (&ai, NULL), &f)) {
               bson_append_utf8 (&missing, dj_array_key (nm++, buf), -1, bson_iter_utf8 (&ai, NULL), -1);
            }
         }
         dep_ok = nm == 0;
      } else {
         dep_ok = check (s->dep_schemas[i], v, NULL);
      }
      if (!dep_ok && failed (out, &ok, &rule, s, "dependencies", false)) {
         bson_t list, d;
         BSON_APPEND_ARRAY_BEGIN (&rule, "failingDependencies", &list);
         BSON_APPEND_DOCUMENT_BEGIN (&list, "0", &d);
         BSON_APPEND_UTF8 (&d, "conditionalProperty", s->dep_names[i]);
         if (s->dep_lists[i].value_type) {
            BSON_APPEND_ARRAY (&d, "missingProperties", &missing);
         } else {
            check_into (s->dep_schemas[i], v, &d, "details");
         }
         bson_append_document_end (&list, &d);
         bson_append_array_end (&rule, &list);
         bson_append_document_end (out->arr, &rule);
      }
      bson_destroy (&missing);
      if (!ok && !out) {
         return false;
      }
   }
   return ok;
}

/* allOf / anyOf / oneOf / not */
static bool
check_logic (const schema_t *s, const bson_value_t *v, out_t *out)
{
   bool ok = true;
   struct {
      const char *kw;
      schema_t *const *list;
      int n;
   } groups[] = {{"allOf", s->all_of, s->nall}, {"anyOf", s->any_of, s->nany}, {"oneOf", s->one_of, s->none}};
   for (int g = 0; g < 3; g++) {
      if (!groups[g].n) {
         continue;
      }
      int matched = 0;
      for (int i = 0; i < groups[g].n; i++) {
         matched += check (groups[g].list[i], v, NULL);
      }
      bool good = g == 0 ? matched == groups[g].n : g == 1 ? matched > 0 : matched == 1;
      if (good) {
         continue;
      }
      bson_t rule, list;
      if (!failed (out, &ok, &rule, s, groups[g].kw, false)) {
         return false;
      }
      char buf[16];
      uint32_t k = 0;
      bool many = g == 2 && matched > 1;
      if (many) {
         BSON_APPEND_UTF8 (&rule, "reason", "more than one subschema matched");
      }
      BSON_APPEND_ARRAY_BEGIN (&rule, many ? "matchingSchemaIndexes" : "schemasNotSatisfied", &list);
      for (int i = 0; i < groups[g].n; i++) {
         if (check (groups[g].list[i], v, NULL) != many) {
            continue;
         }
         if (many) {
            bson_append_int32 (&list, dj_array_key (k++, buf), -1, i);
            continue;
         }
         bson_t e;
         bson_append_document_begin (&list, dj_array_key (k++, buf), -1, &e);
         BSON_APPEND_INT32 (&e, "index", i);
         check_into (groups[g].list[i], v, &e, "details");
         bson_append_document_end (&list, &e);
      }
      bson_append_array_end (&rule, &list);
      bson_append_document_end (out->arr, &rule);
   }
   bson_t rule;
   if (s->not_ && check (s->not_, v, NULL) && failed (out, &ok, &rule, s, "not", true)) {
      BSON_APPEND_UTF8 (&rule, "reason", "child expression matched");
      bson_append_document_end (out->arr, &rule);
   }
   return ok;
}

static bool
check (const schema_t *s, const bson_value_t *v, out_t *out)
{
   bool ok = true;
   for (int j = 0; j < 2; j++) {
      bool json = j == 0;
      if (!(json ? s->has_jtype : s->has_btype) ||
          type_ok (json ? s->jtypes : s->btypes, json ? s->njtypes : s->nbtypes, v)) {
         continue;
      }
      bson_t rule;
      if (!failed (out, &ok, &rule, s, json ? "type" : "bsonType", true)) {
         return false;
      }
      BSON_APPEND_UTF8 (&rule, "reason", "type did not match");
      BSON_APPEND_VALUE (&rule, "consideredValue", v);
      BSON_APPEND_UTF8 (&rule, "consideredType", dj_type_name (v->value_type));
      bson_append_document_end (out->arr, &rule);
   }
   if (s->enumv.value_type) {
      bson_iter_t it;
      bool found = false;
      bson_iter_init_from_data (&it, s->enumv.value.v_doc.data, s->enumv.value.v_doc.data_len);
      while (!found && bson_iter_next (&it)) {
         found = dj_value_equal (bson_iter_value (&it), v);
      }
      if (!found && !broken (out, &ok, s, "enum", "value was not found in enum", v)) {
         return false;
      }
   }
   bool kind_ok = true;
   if (dj_value_is_number (v)) {
      kind_ok = check_number (s, v, out);
   } else if (v->value_type == BSON_TYPE_UTF8) {
      kind_ok = check_string (s, v, out);
   } else if (v->value_type == BSON_TYPE_ARRAY) {
      kind_ok = check_array (s, v, out);
   } else if (v->value_type == BSON_TYPE_DOCUMENT) {
      kind_ok = check_object (s, v, out);
   }
   if (!kind_ok) {
      ok = false;
      if (!out) {
         return false;
      }
   }
   return check_logic (s, v, out) && ok;
}

bool
dj_schema_match (const dj_schema_t *s, const bson_value_t *doc)
{
   return check (s, doc, NULL);
}

void
dj_schema_failure (const dj_schema_t *s, const bson_value_t *doc, bson_t *rules)
{
   out_t o = {rules, 0};
   check (s, doc, &o);
}
