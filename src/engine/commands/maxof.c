/*
 * maxof.c -- findAndModify's `djongoMax`: the largest number a field of
 * another collection holds, bound as the command's variable $$djongoMax.
 *
 *   {findAndModify: "__djongo_tables", query: {table: "book"},
 *    update: [{$set: {seq: {$add: [{$max: [{$ifNull: ["$seq", 0]}, "$$djongoMax"]}, 1000]}}}],
 *    new: true, upsert: true, djongoMax: {collection: "book", field: "id"}}
 *
 * A field of djongo's own (MongoDB's findAndModify has none like it: a
 * MongoDB server answers 40415, an unknown field, so djongo sends it only
 * to this engine and to djongo-server, whose hello announces it as
 * djongo.djongoMax). It is how the executor reserves a table's AUTOINCREMENT
 * ids (src/exec/exec.c, take_ids) -- the counter advanced past both its
 * own value and the largest id the table holds, in case something wrote
 * ids without advancing it -- in one command, over the wire one round
 * trip, where a find of that largest id came first.
 *
 * The value is what {find: collection, filter: {field: {$type: "number"}},
 * sort: {field: -1}, limit: 1} returns at `field` (0 when no document
 * holds a number there, or the collection does not exist), read in the
 * command's transaction, and it is given to the command as if its `let`
 * held {djongoMax: value}: a variable of the update pipeline and of the
 * query's $expr ("let" variables of findAndModify,
 * https://www.mongodb.com/docs/manual/reference/command/findAndModify/).
 * `field` is a top-level field name; the command's own `let` may not
 * name djongoMax.
 *
 * Memory: the rewritten command is the caller's (bson_destroy).
 */
#include "dj_commands.h"

static bool
bad (bson_error_t *error, const char *what)
{
   return dj_err (error, DJ_TypeMismatch, "BSON field 'findAndModify.djongoMax%s' is the wrong type, expected type '%s'",
                  what, what[0] ? "string" : "object");
}

/* The largest number at `field` in db.coll (0 when none) into *out. */
static bool
largest (dj_engine_t *e, const char *db, const char *coll, const char *field, bson_value_t *out, bson_error_t *error)
{
   bson_t *find = bson_new (), reply, sub, cond;
   BSON_APPEND_UTF8 (find, "find", coll);
   BSON_APPEND_DOCUMENT_BEGIN (find, "filter", &sub); /* {field: {$type: "number"}} */
   BSON_APPEND_DOCUMENT_BEGIN (&sub, field, &cond);
   BSON_APPEND_UTF8 (&cond, "$type", "number");
   bson_append_document_end (&sub, &cond);
   bson_append_document_end (find, &sub);
   /* sort {field: -1} (its index, walked from the end), projection {field: 1, _id: 0} */
   for (int32_t k = -1; k <= 1; k += 2) {
      BSON_APPEND_DOCUMENT_BEGIN (find, k < 0 ? "sort" : "projection", &sub);
      BSON_APPEND_INT32 (&sub, field, k);
      if (k > 0) {
         BSON_APPEND_INT32 (&sub, "_id", 0);
      }
      bson_append_document_end (find, &sub);
   }
   BSON_APPEND_INT32 (find, "limit", 1);
   BSON_APPEND_BOOL (find, "singleBatch", true);
   bson_init (&reply);
   bool ok = dj_cmd_find (e, db, find, &reply, error);
   bson_iter_t it;
   out->value_type = BSON_TYPE_INT32;
   out->value.v_int32 = 0;
   if (ok && bson_iter_init (&it, &reply) && bson_iter_find_descendant (&it, "cursor.firstBatch.0", &it) &&
       BSON_ITER_HOLDS_DOCUMENT (&it) && bson_iter_recurse (&it, &it) && bson_iter_find (&it, field) &&
       BSON_ITER_HOLDS_NUMBER (&it)) {
      bson_value_copy (bson_iter_value (&it), out); /* a number: nothing to free */
   }
   bson_destroy (&reply);
   bson_destroy (find);
   return ok;
}

bool
dj_maxof_rewrite (dj_engine_t *e, const char *db, const bson_t *cmd, bson_t *out, bool *rewritten, bson_error_t *error)
{
   bson_iter_t it, f;
   const char *coll = NULL, *field = NULL;
   *rewritten = false;
   if (!bson_iter_init_find (&it, cmd, "djongoMax")) {
      return true;
   }
   if (!BSON_ITER_HOLDS_DOCUMENT (&it) || !bson_iter_recurse (&it, &f)) {
      return bad (error, "");
   }
   while (bson_iter_next (&f)) {
      const char *k = bson_iter_key (&f);
      const char **slot = !strcmp (k, "collection") ? &coll : !strcmp (k, "field") ? &field : NULL;
      if (!slot) {
         return dj_err (error, DJ_UnknownField, "BSON field 'findAndModify.djongoMax.%s' is an unknown field.", k);
      }
      if (!BSON_ITER_HOLDS_UTF8 (&f)) {
         return !strcmp (k, "collection") ? bad (error, ".collection") : bad (error, ".field");
      }
      *slot = bson_iter_utf8 (&f, NULL);
   }
   if (!coll || !field) {
      return dj_err (error, 40414, "BSON field 'findAndModify.djongoMax.%s' is missing but a required field",
                     !coll ? "collection" : "field");
   }
   if (!field[0] || field[0] == '$' || strchr (field, '.')) {
      return dj_err (error, DJ_BadValue, "findAndModify.djongoMax.field must be a top-level field name, not '%s'", field);
   }
   if (!dj_ns_valid (db, coll, error)) {
      return false;
   }
   bson_iter_t let, lv;
   if (bson_iter_init_find (&let, cmd, "let") && BSON_ITER_HOLDS_DOCUMENT (&let) && bson_iter_recurse (&let, &lv) &&
       bson_iter_find (&lv, "djongoMax")) {
      return dj_err (error, DJ_BadValue, "findAndModify's let may not name djongoMax beside the djongoMax field");
   }
   bson_value_t max;
   if (!largest (e, db, coll, field, &max, error)) {
      return false;
   }
   /* the command again, without djongoMax, its let given the variable */
   bson_t vars;
   bool has_let = false;
   bson_init (out);
   bson_iter_init (&it, cmd);
   while (bson_iter_next (&it)) {
      const char *k = bson_iter_key (&it);
      if (!strcmp (k, "djongoMax")) {
         continue;
      }
      if (!strcmp (k, "let") && BSON_ITER_HOLDS_DOCUMENT (&it)) {
         bson_iter_t v;
         BSON_APPEND_DOCUMENT_BEGIN (out, "let", &vars);
         bson_iter_recurse (&it, &v);
         while (bson_iter_next (&v)) {
            bson_append_iter (&vars, NULL, 0, &v);
         }
         BSON_APPEND_VALUE (&vars, "djongoMax", &max);
         bson_append_document_end (out, &vars);
         has_let = true;
         continue;
      }
      bson_append_iter (out, NULL, 0, &it);
   }
   if (!has_let) {
      BSON_APPEND_DOCUMENT_BEGIN (out, "let", &vars);
      BSON_APPEND_VALUE (&vars, "djongoMax", &max);
      bson_append_document_end (out, &vars);
   }
   *rewritten = true;
   return true;
}
