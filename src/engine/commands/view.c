/*
 * view.c -- read-only views: create with viewOn and pipeline.
 * https://www.mongodb.com/docs/manual/core/views/
 *
 * A view is a catalog entry like a collection's whose options hold
 * {viewOn, pipeline}; it has no documents of its own. Reads resolve it
 * where pipelines read collections (dj_view_read, pipeline.c), so an
 * aggregate -- and a $lookup, $unionWith or $graphLookup -- on a view sees
 * the view's output. find, count and distinct are answered as the
 * aggregate they amount to; commands that would write to it or index it
 * are refused with CommandNotSupportedOnView (166), as MongoDB does.
 */
#include "dj_commands.h"

#include <stdio.h>

bool
dj_view_options (const bson_t *cmd, bson_t *options, bson_error_t *error)
{
   static const char *const allowed[] = {"viewOn", "pipeline", "collation", "writeConcern", "comment", NULL};
   bson_iter_t it;
   bson_t stages;
   bool has_pipeline;

   bson_iter_init (&it, cmd);
   bson_iter_next (&it); /* create: name */
   while (bson_iter_next (&it)) {
      const char *k = bson_iter_key (&it);
      bool ok = k[0] == '$' || !strcmp (k, "lsid") || !strcmp (k, "txnNumber") || !strcmp (k, "autocommit") ||
                !strcmp (k, "maxTimeMS") || !strcmp (k, "apiVersion");
      for (int i = 0; allowed[i] && !ok; i++) {
         ok = !strcmp (allowed[i], k);
      }
      if (!ok) {
         return dj_err (error, DJ_InvalidOptions, "option not supported on a view: %s", k);
      }
   }
   if (!bson_iter_init_find (&it, cmd, "viewOn") || !BSON_ITER_HOLDS_UTF8 (&it)) {
      return dj_err (error, DJ_TypeMismatch, "BSON field 'create.viewOn' is the wrong type, expected type 'string'");
   }
   uint32_t len;
   const char *on = bson_iter_utf8 (&it, &len);
   if (!len) {
      return dj_err (error, DJ_BadValue, "'viewOn' cannot be empty");
   }
   if (!dj_cmd_get_array (cmd, "pipeline", "create.pipeline", &stages, &has_pipeline, error)) {
      return false;
   }
   /* the definition must parse now, and may not write */
   dj_pipeline_t *p = dj_pipeline_new (&stages, NULL, error);
   if (!p) {
      return false;
   }
   bool writes = dj_pipeline_writes (p);
   dj_pipeline_destroy (p);
   if (writes) {
      return dj_err (error, DJ_OptionNotSupportedOnView, "$out and $merge cannot be used in a view definition");
   }
   BSON_APPEND_UTF8 (options, "viewOn", on);
   if (has_pipeline) {
      BSON_APPEND_ARRAY (options, "pipeline", &stages);
   } else {
      bson_t empty;
      BSON_APPEND_ARRAY_BEGIN (options, "pipeline", &empty);
      bson_append_array_end (options, &empty);
   }
   return true;
}

/* Appends {name: value} of cmd's field `name`, if present, as `as`. */
static void
copy_field (const bson_t *cmd, const char *name, bson_t *out, const char *as)
{
   bson_iter_t it;
   if (bson_iter_init_find (&it, cmd, name)) {
      bson_append_value (out, as, -1, bson_iter_value (&it));
   }
}

/* Appends stage {op: cmd[field]} to the pipeline array when the field is
 * present (and, for documents, not empty). */
static void
stage_from (const bson_t *cmd, const char *field, const char *op, bson_t *pipe, int *n)
{
   bson_iter_t it;
   if (!bson_iter_init_find (&it, cmd, field) || BSON_ITER_HOLDS_NULL (&it)) {
      return;
   }
   if (BSON_ITER_HOLDS_DOCUMENT (&it)) {
      uint32_t l;
      const uint8_t *d;
      bson_iter_document (&it, &l, &d);
      if (l <= 5) {
         return; /* {} */
      }
   } else if (BSON_ITER_HOLDS_NUMBER (&it) && bson_iter_as_int64 (&it) == 0) {
      return; /* skip 0 / limit 0: none */
   }
   char key[16];
   bson_t st;
   snprintf (key, sizeof key, "%d", (*n)++);
   BSON_APPEND_DOCUMENT_BEGIN (pipe, key, &st);
   if (BSON_ITER_HOLDS_NUMBER (&it)) {
      int64_t v = bson_iter_as_int64 (&it);
      BSON_APPEND_INT64 (&st, op, v < 0 ? -v : v); /* a negative find limit: that many, one batch */
   } else {
      bson_append_value (&st, op, -1, bson_iter_value (&it));
   }
   bson_append_document_end (pipe, &st);
}

/* The aggregate a find, count or distinct on the view amounts to. */
static void
as_aggregate (const char *verb, const char *view, const bson_t *cmd, bson_t *agg)
{
   bson_t pipe, cursor, st, inner;
   int n = 0;
   bool find = !strcmp (verb, "find"), count = !strcmp (verb, "count");
   BSON_APPEND_UTF8 (agg, "aggregate", view);
   BSON_APPEND_ARRAY_BEGIN (agg, "pipeline", &pipe);
   stage_from (cmd, find ? "filter" : "query", "$match", &pipe, &n);
   if (find) {
      stage_from (cmd, "sort", "$sort", &pipe, &n);
   }
   if (find || count) {
      stage_from (cmd, "skip", "$skip", &pipe, &n);
      stage_from (cmd, "limit", "$limit", &pipe, &n);
   }
   if (find) {
      stage_from (cmd, "projection", "$project", &pipe, &n);
   } else {
      char key[16];
      snprintf (key, sizeof key, "%d", n++);
      BSON_APPEND_DOCUMENT_BEGIN (&pipe, key, &st);
      if (count) {
         BSON_APPEND_UTF8 (&st, "$count", "n");
      } else {
         /* distinct: each array element counts on its own, missing values do not */
         bson_iter_t it;
         char path[512];
         snprintf (path, sizeof path, "$%s",
                   bson_iter_init_find (&it, cmd, "key") && BSON_ITER_HOLDS_UTF8 (&it) ? bson_iter_utf8 (&it, NULL) : "");
         BSON_APPEND_DOCUMENT_BEGIN (&st, "$unwind", &inner);
         BSON_APPEND_UTF8 (&inner, "path", path);
         bson_append_document_end (&st, &inner);
         bson_append_document_end (&pipe, &st);
         snprintf (key, sizeof key, "%d", n++);
         BSON_APPEND_DOCUMENT_BEGIN (&pipe, key, &st);
         BSON_APPEND_DOCUMENT_BEGIN (&st, "$group", &inner);
         BSON_APPEND_NULL (&inner, "_id");
         bson_t add;
         BSON_APPEND_DOCUMENT_BEGIN (&inner, "values", &add);
         BSON_APPEND_UTF8 (&add, "$addToSet", path);
         bson_append_document_end (&inner, &add);
         bson_append_document_end (&st, &inner);
      }
      bson_append_document_end (&pipe, &st);
   }
   bson_append_array_end (agg, &pipe);
   BSON_APPEND_DOCUMENT_BEGIN (agg, "cursor", &cursor);
   if (find) {
      copy_field (cmd, "batchSize", &cursor, "batchSize");
   }
   bson_append_document_end (agg, &cursor);
   copy_field (cmd, "collation", agg, "collation");
   copy_field (cmd, "let", agg, "let");
   copy_field (cmd, "comment", agg, "comment");
}

/* The one document of an aggregate's first batch, if any. */
static bool
first_result (const bson_t *reply, bson_iter_t *doc)
{
   bson_iter_t it, batch;
   return bson_iter_init_find (&it, reply, "cursor") && bson_iter_recurse (&it, &batch) &&
          bson_iter_find (&batch, "firstBatch") && bson_iter_recurse (&batch, doc) && bson_iter_next (doc) &&
          BSON_ITER_HOLDS_DOCUMENT (doc);
}

static const char *const rewritten[] = {"find", "count", "distinct", NULL};
static const char *const refused[] = {"insert", "update", "delete", "findAndModify", "createIndexes",
                                      "dropIndexes", "listIndexes", "collMod", "compact", "validate", NULL};

static bool
listed (const char *const *names, const char *name)
{
   for (int i = 0; names[i]; i++) {
      if (!strcmp (name, names[i])) {
         return true;
      }
   }
   return false;
}

bool
dj_view_concerns (const char *name)
{
   return listed (rewritten, name) || listed (refused, name);
}

bool
dj_view_dispatch (dj_engine_t *e, const char *db, const char *name, const bson_t *cmd, bool view, bson_t *reply,
                  bool *handled, bson_error_t *error)
{
   bson_iter_t it;
   *handled = false;
   if (!view || !dj_view_concerns (name) || !bson_iter_init (&it, cmd) || !bson_iter_next (&it) ||
       !BSON_ITER_HOLDS_UTF8 (&it)) {
      return true;
   }
   const char *coll = bson_iter_utf8 (&it, NULL);
   *handled = true;
   if (listed (refused, name)) {
      return dj_err (error, DJ_CommandNotSupportedOnView, "Namespace %s.%s is a view, not a collection", db, coll);
   }
   bson_t agg = BSON_INITIALIZER, out;
   as_aggregate (name, coll, cmd, &agg);
   bool ok;
   if (!strcmp (name, "find")) {
      ok = dj_cmd_aggregate (e, db, &agg, reply, error); /* the same reply shape as find's */
   } else {
      bson_init (&out);
      ok = dj_cmd_aggregate (e, db, &agg, &out, error);
      bson_iter_t doc, f;
      bool found = ok && first_result (&out, &doc) && bson_iter_recurse (&doc, &f);
      if (ok && !strcmp (name, "count")) {
         int64_t n = found && bson_iter_find (&f, "n") ? bson_iter_as_int64 (&f) : 0;
         dj_append_count (reply, "n", n); /* count's n is an int, as mongod's */
      } else if (ok) {
         if (found && bson_iter_find (&f, "values")) {
            bson_append_value (reply, "values", 6, bson_iter_value (&f));
         } else {
            bson_t empty;
            BSON_APPEND_ARRAY_BEGIN (reply, "values", &empty);
            bson_append_array_end (reply, &empty);
         }
      }
      if (ok) {
         BSON_APPEND_DOUBLE (reply, "ok", 1.0);
      }
      bson_destroy (&out);
   }
   bson_destroy (&agg);
   return ok;
}
