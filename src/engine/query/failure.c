/*
 * failure.c -- why a document fails a filter: the `details` of the errInfo
 * a DocumentValidationFailure carries, in mongod's shape.
 *
 * mongod explains a failed validator clause by clause: a validator of one
 * clause is described by that clause, several by
 *   {operatorName: "$and", clausesNotSatisfied: [{index, details}, ...]}
 * and a clause by {operatorName, specifiedAs, reason, consideredValue(s)}:
 *   {a: {$gt: 5}}  -> {operatorName: "$gt", specifiedAs: {a: {$gt: 5}},
 *                      reason: "comparison failed", consideredValue: 1}
 *   {a: 1}         -> operatorName "$eq"; a missing field: reason "field was missing"
 *   {$expr: e}     -> {operatorName: "$expr", specifiedAs: {$expr: e},
 *                      reason: "expression did not match", expressionResult: false}
 * https://www.mongodb.com/docs/manual/core/schema-validation/specify-query-expression-rules/
 *   {$jsonSchema: s} -> {operatorName: "$jsonSchema", schemaRulesNotSatisfied:
 *                      [{operatorName: "required", missingProperties: [...]},
 *                       {operatorName: "properties", propertiesNotSatisfied:
 *                        [{propertyName, details: [...]}]}, ...]} (schema.c)
 * https://www.mongodb.com/docs/manual/core/schema-validation/specify-json-schema/
 * Other operators ($or, $regex ...) are named with what they were
 * specified as.
 */
#include "dj_query.h"

static const char *const comparisons[] = {"$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", NULL};

static bool
clause_matches (const char *key, const bson_value_t *v, const bson_t *doc)
{
   bson_t f = BSON_INITIALIZER;
   bson_error_t err;
   bson_append_value (&f, key, -1, v);
   dj_matcher_t *m = dj_matcher_new (&f, &err);
   /* the clause was parsed as part of the whole filter already */
   bool ok = !m || dj_matcher_match (m, doc, NULL);
   dj_matcher_destroy (m);
   bson_destroy (&f);
   return ok;
}

/* What doc holds at dotted `path`: {consideredValue: v}, or for an array
 * {consideredValues: [elements..., the array]} as mongod lists them;
 * false when the path is missing. */
static bool
considered (const bson_t *doc, const char *path, bson_t *out)
{
   bson_iter_t it, found;
   if (!bson_iter_init (&it, doc) || !bson_iter_find_descendant (&it, path, &found)) {
      return false;
   }
   if (!BSON_ITER_HOLDS_ARRAY (&found)) {
      BSON_APPEND_VALUE (out, "consideredValue", bson_iter_value (&found));
      return true;
   }
   bson_t arr;
   bson_iter_t el;
   char buf[16];
   uint32_t i = 0;
   BSON_APPEND_ARRAY_BEGIN (out, "consideredValues", &arr);
   bson_iter_recurse (&found, &el);
   while (bson_iter_next (&el)) {
      bson_append_value (&arr, dj_array_key (i++, buf), -1, bson_iter_value (&el));
   }
   bson_append_value (&arr, dj_array_key (i, buf), -1, bson_iter_value (&found));
   bson_append_array_end (out, &arr);
   return true;
}

static void describe (const char *key, const bson_value_t *v, const bson_t *doc, bson_t *out);

/* The clauses (keys, which may repeat) doc fails: a single clause described
 * alone, several under $and. */
static void
describe_all (const bson_t *clauses, const bson_t *doc, bson_t *out)
{
   bson_iter_t it;
   if (bson_count_keys (clauses) == 1) {
      bson_iter_init (&it, clauses);
      bson_iter_next (&it);
      describe (bson_iter_key (&it), bson_iter_value (&it), doc, out);
      return;
   }
   bson_t arr;
   char buf[16];
   int i = 0, k = 0;
   BSON_APPEND_UTF8 (out, "operatorName", "$and");
   BSON_APPEND_ARRAY_BEGIN (out, "clausesNotSatisfied", &arr);
   bson_iter_init (&it, clauses);
   while (bson_iter_next (&it)) {
      if (!clause_matches (bson_iter_key (&it), bson_iter_value (&it), doc)) {
         bson_t one, det;
         bson_append_document_begin (&arr, dj_array_key ((uint32_t) k++, buf), -1, &one);
         BSON_APPEND_INT32 (&one, "index", i);
         BSON_APPEND_DOCUMENT_BEGIN (&one, "details", &det);
         describe (bson_iter_key (&it), bson_iter_value (&it), doc, &det);
         bson_append_document_end (&one, &det);
         bson_append_document_end (&arr, &one);
      }
      i++;
   }
   bson_append_array_end (out, &arr);
}

static void
specified_as (const char *key, const bson_value_t *v, bson_t *out)
{
   bson_t sa;
   BSON_APPEND_DOCUMENT_BEGIN (out, "specifiedAs", &sa);
   bson_append_value (&sa, key, -1, v);
   bson_append_document_end (out, &sa);
}

/* One clause {key: v} that doc fails. */
static void
describe (const char *key, const bson_value_t *v, const bson_t *doc, bson_t *out)
{
   if (!strcmp (key, "$jsonSchema")) {
      bson_error_t err;
      bson_value_t dv;
      bson_t rules;
      dj_schema_t *s = dj_schema_new (v, &err); /* it parsed with the whole filter */
      BSON_APPEND_UTF8 (out, "operatorName", key);
      BSON_APPEND_ARRAY_BEGIN (out, "schemaRulesNotSatisfied", &rules);
      if (s) {
         dj_value_from_doc (doc, false, &dv);
         dj_schema_failure (s, &dv, &rules);
      }
      bson_append_array_end (out, &rules);
      dj_schema_destroy (s);
      return;
   }
   if (key[0] == '$') {
      BSON_APPEND_UTF8 (out, "operatorName", key);
      specified_as (key, v, out);
      if (!strcmp (key, "$expr")) {
         BSON_APPEND_UTF8 (out, "reason", "expression did not match");
         BSON_APPEND_BOOL (out, "expressionResult", false);
      }
      return;
   }
   const char *op = "$eq";
   if (v->value_type == BSON_TYPE_DOCUMENT) {
      bson_t ops;
      bson_iter_t it;
      bson_init_static (&ops, v->value.v_doc.data, v->value.v_doc.data_len);
      if (bson_iter_init (&it, &ops) && bson_iter_next (&it) && bson_iter_key (&it)[0] == '$') {
         if (bson_count_keys (&ops) > 1) {
            /* {a: {$gt: 1, $lt: 5}} is the conjunction {a: {$gt: 1}}, {a:
             * {$lt: 5}}: a list of clauses may repeat a key */
            bson_t flat = BSON_INITIALIZER;
            do {
               bson_t one;
               bson_append_document_begin (&flat, key, -1, &one);
               bson_append_value (&one, bson_iter_key (&it), -1, bson_iter_value (&it));
               bson_append_document_end (&flat, &one);
            } while (bson_iter_next (&it));
            describe_all (&flat, doc, out);
            bson_destroy (&flat);
            return;
         }
         op = bson_iter_key (&it);
      }
   }
   BSON_APPEND_UTF8 (out, "operatorName", op);
   specified_as (key, v, out);
   bool comparison = false;
   for (int i = 0; comparisons[i]; i++) {
      comparison |= !strcmp (comparisons[i], op);
   }
   if (!comparison) {
      return;
   }
   bson_t seen = BSON_INITIALIZER;
   if (considered (doc, key, &seen)) {
      BSON_APPEND_UTF8 (out, "reason", "comparison failed");
      bson_concat (out, &seen);
   } else {
      BSON_APPEND_UTF8 (out, "reason", "field was missing");
   }
   bson_destroy (&seen);
}

void
dj_match_failure_details (const bson_t *filter, const bson_t *doc, bson_t *details)
{
   describe_all (filter, doc, details);
}
