/*
 * cmd_agg.c -- the aggregate command.
 * https://www.mongodb.com/docs/manual/reference/command/aggregate/
 */
#include "dj_commands.h"
#include "dj_bson_array.h"

#include <stdio.h>

/* A cursor's keep_free for the pipeline its sorter borrows the $sort of. */
static void
free_pipeline (void *p)
{
   dj_pipeline_destroy (p);
}

bool
dj_cmd_aggregate (dj_engine_t *e, const char *db, const bson_t *cmd, bson_t *reply, bson_error_t *error)
{
   static const char *const known[] = {"pipeline", "cursor", "explain", "allowDiskUse", "bypassDocumentValidation",
                                       "collation", "hint", "let", "fromMongos", "needsMerge", "isMapReduceCommand", NULL};
   bson_iter_t it;
   const char *coll = NULL;
   bson_t stages, cursor;
   bool has_cursor, allow_disk = false, bypass = false, explain = false, ok = false;
   int64_t batch = -1;
   dj_pipeline_t *p = NULL;
   dj_ctx_t ctx = {0};
   dj_let_t let = {0};
   dj_docs_t out = {0};
   dj_rows_t *rows = NULL; /* owned: what out's views view (dj_pipeline_run_rows), freed after out */

   if (!dj_cmd_check_fields (cmd, known, error)) {
      goto done;
   }
   bson_iter_init (&it, cmd);
   bson_iter_next (&it);
   if (BSON_ITER_HOLDS_UTF8 (&it)) {
      coll = bson_iter_utf8 (&it, NULL);
      if (!dj_ns_valid (db, coll, error)) {
         goto done;
      }
   } else if (!(dj_value_is_number (bson_iter_value (&it)) && bson_iter_as_int64 (&it) == 1)) {
      dj_err (error, DJ_FailedToParse, "Invalid command format: the aggregate field must be a collection name or 1");
      goto done;
   }
   if (!bson_iter_init_find (&it, cmd, "pipeline") || !BSON_ITER_HOLDS_ARRAY (&it)) {
      dj_err (error, bson_iter_init_find (&it, cmd, "pipeline") ? DJ_TypeMismatch : 40414,
              "'pipeline' option must be specified as an array");
      goto done;
   }
   {
      const uint8_t *d;
      uint32_t l;
      bson_iter_array (&it, &l, &d);
      bson_init_static (&stages, d, l);
   }
   dj_cmd_get_bool (cmd, "explain", &explain, error);
   if (!dj_cmd_get_doc (cmd, "cursor", &cursor, &has_cursor, error)) {
      goto done;
   }
   if (!has_cursor && !explain) {
      dj_err (error, DJ_FailedToParse, "The 'cursor' option is required, except for aggregate with the explain argument");
      goto done;
   }
   if (has_cursor) {
      bool present;
      if (!dj_cmd_get_int64 (&cursor, "batchSize", &batch, &present, error)) {
         goto done;
      }
      if (present && batch < 0) {
         dj_err (error, 51024, "BSON field 'batchSize' value must be >= 0, actual value '%" PRId64 "'", batch);
         goto done;
      }
      if (!present) {
         batch = -1;
      }
   }
   {
      /* a leading $changeStream: a change stream, not a read (changestream.c) */
      bson_iter_t st, first;
      if (bson_iter_init (&st, &stages) && bson_iter_next (&st) && BSON_ITER_HOLDS_DOCUMENT (&st) &&
          bson_iter_recurse (&st, &first) && bson_iter_next (&first) && !strcmp (bson_iter_key (&first), "$changeStream")) {
         bson_t rest = BSON_INITIALIZER;
         dj_bson_array_append_rest (&rest, 0, &st);
         ok = dj_change_stream_read_concern (cmd, error) &&
              dj_cmd_change_stream (e, db, coll, bson_iter_value (&first), &rest, batch, reply, error);
         bson_destroy (&rest);
         goto done;
      }
   }
   /* without allowDiskUse: allowDiskUseByDefault (true unless setParameter said otherwise)
    * https://www.mongodb.com/docs/manual/reference/parameters/#mongodb-parameter-param.allowDiskUseByDefault */
   allow_disk = dj_engine_param (e, DJ_PARAM_DISK_BY_DEFAULT) > 0;
   dj_cmd_get_bool (cmd, "allowDiskUse", &allow_disk, error);
   dj_cmd_get_bool (cmd, "bypassDocumentValidation", &bypass, error);
   if (!dj_cmd_collation (cmd, error)) {
      goto done;
   }
   /* let: constants the pipeline sees as $$name */
   if (!dj_let_parse (cmd, &let, error)) {
      goto done;
   }
   /* the pipeline parsed for an earlier command of the very same stages,
    * taken from the handle's keep (e->pipe_cache; aggregation/pipeline.c:
    * dj_pipeline_keepable); under let, parsed (its variables are part of
    * the parse) */
   p = let.top ? NULL : dj_keep_take (e->pipe_cache, bson_get_data (&stages), stages.len);
   if (!p && !(p = dj_pipeline_new (&stages, let.top, error))) {
      goto done;
   }
   if (!coll && dj_pipeline_needs_collection (p)) {
      dj_err (error, DJ_InvalidNamespace, "{aggregate: 1} is not valid for this pipeline; a collection is required.");
      goto done;
   }
   if (explain) {
      BSON_APPEND_UTF8 (reply, "explainVersion", "1");
      bson_t st;
      BSON_APPEND_DOCUMENT_BEGIN (reply, "stages", &st);
      bson_append_document_end (reply, &st);
      BSON_APPEND_DOCUMENT (reply, "pipeline", &stages);
      BSON_APPEND_DOUBLE (reply, "ok", 1.0);
      ok = true;
      goto done;
   }
   bool writes = dj_pipeline_writes (p);
   bson_iter_t rc;
   if (writes && bson_iter_init_find (&rc, cmd, "readConcern") && BSON_ITER_HOLDS_DOCUMENT (&rc) &&
       bson_iter_recurse (&rc, &rc) && bson_iter_find (&rc, "level") && BSON_ITER_HOLDS_UTF8 (&rc) &&
       !strcmp (bson_iter_utf8 (&rc, NULL), "linearizable")) {
      /* https://www.mongodb.com/docs/manual/reference/read-concern-linearizable/ */
      dj_err (error, DJ_InvalidOptions, "cannot use a readConcern of level 'linearizable' with $out or $merge");
      goto done;
   }
   if (!dj_txn_begin (e, writes, &ctx, error)) {
      goto done;
   }
   if (coll && bson_iter_init_find (&it, cmd, "hint")) {
      /* a hint must name an index of the collection (a view has none to name) */
      int hint;
      dj_coll_t *c = dj_coll_load (&ctx, db, coll, error);
      bool hint_ok = (c || !error->code) && (!c || c->view_on || dj_cmd_hint (cmd, c, &hint, error));
      dj_coll_free (c);
      if (!hint_ok) {
         goto done;
      }
   }
   dj_spill_t *tail = NULL; /* a last $sort that spilled: its merge streams into the cursor */
   dj_prun_t run = {.engine = e, .ctx = &ctx, .db = db, .vars = &let.vars, .now_ms = let.vars.now_ms,
                    .allow_disk = allow_disk, .bypass_validation = bypass, .tail = writes || dj_pipeline_has_text (p) ? NULL : &tail, .tail_of = p};
   rows = dj_rows_new ();
   if (!dj_pipeline_run_rows (p, &run, coll, rows, &out, error)) {
      dj_spill_destroy (tail);
      dj_ctx_error_info (&ctx, error, reply); /* $out/$merge: a DuplicateKey's keyPattern/keyValue (engine.c keeps them) */
      goto done;
   }
   if (writes && !dj_txn_commit (&ctx, error)) {
      goto done;
   }
   dj_txn_abort (&ctx);
   {
      char *ns = coll ? bson_strdup_printf ("%s.%s", db, coll) : bson_strdup_printf ("%s.$cmd.aggregate", db);
      if (tail) {
         /* the sorter borrows the pipeline's $sort: the cursor keeps both */
         dj_reply_spilled (e, reply, ns, tail, p, free_pipeline, batch, error);
         p = NULL;
         bson_free (ns);
         ok = !error->code;
         goto done;
      }
      if (dj_pipeline_has_text (p)) {
         dj_docs_strip_meta (&out); /* the text score is metadata, never a field of the reply */
      }
      /* the first batch is copied into the reply; a cursor keeps the rest,
       * which must then be its own, not views of rows (freed below) */
      if (dj_reply_keeps (out.v, out.n, batch, false)) {
         dj_docs_own (&out, rows);
      }
      bson_t **docs = out.v ? out.v : bson_malloc (sizeof (bson_t *));
      dj_reply_results (e, reply, ns, docs, out.n, batch, false);
      memset (&out, 0, sizeof out); /* the reply owns them now */
      bson_free (ns);
   }
   ok = true;
done:
   dj_txn_abort (&ctx);
   dj_docs_clear (&out);
   dj_rows_free (rows); /* (after out: its views are rows') */
   if (p && !let.top && dj_pipeline_keepable (p)) {
      dj_pipeline_reset (p);
      dj_keep_put (e->pipe_cache, bson_get_data (&stages), stages.len, p); /* kept for the next aggregate */
   } else {
      dj_pipeline_destroy (p);
   }
   dj_let_destroy (&let);
   return ok;
}

bool
dj_cmd_aggregate_spills (dj_engine_t *e, const char *db, const char *coll, dj_ctx_t *ctx, const bson_t *inner,
                         int64_t **spills, int *n, bson_error_t *error)
{
   bson_iter_t it;
   bson_t stages;
   dj_let_t let = {0};
   dj_pipeline_t *p = NULL;
   const uint8_t *d;
   uint32_t l;
   bool ok = false;

   *spills = NULL;
   *n = 0;
   if (!bson_iter_init_find (&it, inner, "pipeline") || !BSON_ITER_HOLDS_ARRAY (&it)) {
      return true; /* (the caller reported it) */
   }
   bson_iter_array (&it, &l, &d);
   bson_init_static (&stages, d, l);
   if (!dj_let_parse (inner, &let, error) || !(p = dj_pipeline_new (&stages, let.top, error))) {
      goto done;
   }
   ok = true;
   if (!dj_pipeline_writes (p)) {
      bool allow = dj_engine_param (e, DJ_PARAM_DISK_BY_DEFAULT) > 0;
      dj_cmd_get_bool (inner, "allowDiskUse", &allow, error);
      int ns = dj_pipeline_nstages (p);
      int64_t *sp = bson_malloc0 (sizeof (int64_t) * (size_t) (ns ? ns : 1));
      dj_agg_stats_t stats = {p, sp};
      dj_prun_t run = {.engine = e, .ctx = ctx, .db = db, .vars = &let.vars, .now_ms = let.vars.now_ms,
                       .allow_disk = allow, .stats = &stats};
      dj_docs_t out = {0};
      ok = dj_pipeline_run (p, &run, coll, &out, error);
      dj_docs_clear (&out);
      if (ok) {
         *spills = sp; /* the caller's */
         *n = ns;
      } else {
         bson_free (sp);
      }
   }
done:
   dj_pipeline_destroy (p);
   dj_let_destroy (&let);
   return ok;
}
