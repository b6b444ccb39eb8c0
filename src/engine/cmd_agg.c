/*
 * cmd_agg.c -- the aggregate command.
 * https://www.mongodb.com/docs/manual/reference/command/aggregate/
 */
#include "engine-private.h"

#include <stdio.h>

bool
dj_cmd_aggregate (dj_engine_t *e, const char *db, const bson_t *cmd, bson_t *reply, bson_error_t *error)
{
   static const char *const known[] = {"pipeline", "cursor", "explain", "allowDiskUse", "bypassDocumentValidation",
                                       "collation", "hint", "let", "fromMongos", "needsMerge", "isMapReduceCommand", NULL};
   bson_iter_t it;
   const char *coll = NULL;
   bson_t stages, cursor, let;
   bool has_cursor, has_let, allow_disk = false, bypass = false, explain = false, ok = false;
   int64_t batch = -1;
   dj_pipeline_t *p = NULL;
   dj_ctx_t ctx = {0};
   dj_arena_t *arena = dj_arena_new ();
   dj_vscope_t *scope = NULL;
   dj_docs_t out = {0};

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
   dj_cmd_get_bool (cmd, "allowDiskUse", &allow_disk, error);
   dj_cmd_get_bool (cmd, "bypassDocumentValidation", &bypass, error);
   if (!dj_cmd_collation (cmd, error)) {
      goto done;
   }
   /* let: constants the pipeline sees as $$name */
   dj_eval_t vars;
   dj_eval_init (&vars, arena, NULL, dj_now_ms (), error);
   if (!dj_cmd_get_doc (cmd, "let", &let, &has_let, error)) {
      goto done;
   }
   if (has_let) {
      int n = 0;
      bson_iter_init (&it, &let);
      while (bson_iter_next (&it)) {
         n++;
      }
      scope = bson_malloc (sizeof (dj_vscope_t) * (size_t) (n ? n : 1));
      const dj_vscope_t *up = NULL;
      int k = 0;
      bson_iter_init (&it, &let);
      while (bson_iter_next (&it)) {
         dj_expr_t *x = dj_expr_parse (bson_iter_value (&it), NULL, error);
         bson_value_t v;
         if (!x || !dj_expr_eval (x, &vars, &v)) {
            dj_expr_destroy (x);
            goto done;
         }
         /* the value may point into x (a constant): keep a copy in the arena,
          * which lives as long as the command */
         bson_t holder = BSON_INITIALIZER;
         bson_value_t hv;
         bson_iter_t hi;
         if (v.value_type != BSON_TYPE_EOD) {
            BSON_APPEND_VALUE (&holder, "v", &v);
         }
         dj_arena_value (arena, &holder, false, &hv);
         bson_destroy (&holder);
         dj_expr_destroy (x);
         if (bson_iter_init_from_data (&hi, hv.value.v_doc.data, hv.value.v_doc.data_len) && bson_iter_next (&hi)) {
            v = *bson_iter_value (&hi);
         } else {
            v.value_type = BSON_TYPE_NULL;
         }
         if (vars.nvars == DJ_MAX_VARS) {
            dj_err (error, DJ_BadValue, "too many let variables");
            goto done;
         }
         vars.vars[vars.nvars].name = bson_iter_key (&it);
         vars.vars[vars.nvars].value = v;
         vars.nvars++;
         scope[k].name = bson_iter_key (&it);
         scope[k].up = up;
         up = &scope[k++];
      }
      p = dj_pipeline_new (&stages, up, error);
   } else {
      p = dj_pipeline_new (&stages, NULL, error);
   }
   if (!p) {
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
   if (!dj_txn_begin (e, writes, &ctx, error)) {
      goto done;
   }
   dj_prun_t run = {.engine = e, .ctx = &ctx, .db = db, .vars = &vars, .now_ms = vars.now_ms,
                    .allow_disk = allow_disk, .bypass_validation = bypass};
   if (!dj_pipeline_run (p, &run, coll, &out, error)) {
      goto done;
   }
   if (writes && !dj_txn_commit (&ctx, error)) {
      goto done;
   }
   dj_txn_abort (&ctx);
   {
      char *ns = coll ? bson_strdup_printf ("%s.%s", db, coll) : bson_strdup_printf ("%s.$cmd.aggregate", db);
      bson_t **docs = out.v ? out.v : bson_malloc (sizeof (bson_t *));
      dj_reply_results (e, reply, ns, docs, out.n, batch, false);
      memset (&out, 0, sizeof out); /* the reply owns them now */
      bson_free (ns);
   }
   ok = true;
done:
   dj_txn_abort (&ctx);
   dj_docs_clear (&out);
   dj_pipeline_destroy (p);
   dj_arena_destroy (arena);
   bson_free (scope);
   return ok;
}
