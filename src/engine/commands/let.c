/*
 * let.c -- a command's `let`: {name: expression, ...}, each evaluated once
 * (no document in scope) and visible as $$name to the command's filter
 * ($expr), update pipeline and aggregation pipeline.
 * https://www.mongodb.com/docs/manual/reference/command/find/#let-variables
 * Also the part of a find or findAndModify command read alike around it:
 * the filter that sees those variables, the sort and the projection.
 */
#include "dj_commands.h"

bool
dj_let_parse (const bson_t *cmd, dj_let_t *let, bson_error_t *error)
{
   bson_t spec;
   bson_iter_t it;
   bool present;
   memset (let, 0, sizeof *let);
   let->arena = dj_arena_new ();
   dj_eval_init (&let->vars, let->arena, NULL, dj_now_ms (), error);
   if (!dj_cmd_get_doc (cmd, "let", &spec, &present, error)) {
      return false;
   }
   if (!present) {
      return true;
   }
   int n = 0;
   bson_iter_init (&it, &spec);
   while (bson_iter_next (&it)) {
      n++;
   }
   if (n > DJ_MAX_VARS) {
      return dj_err (error, DJ_BadValue, "too many let variables (at most %d)", DJ_MAX_VARS);
   }
   let->scope = bson_malloc (sizeof (dj_vscope_t) * (size_t) (n ? n : 1));
   bson_iter_init (&it, &spec);
   for (int k = 0; bson_iter_next (&it); k++) {
      /* each value sees only $$NOW and friends, not its siblings */
      dj_expr_t *x = dj_expr_parse (bson_iter_value (&it), NULL, error);
      bson_value_t v;
      if (!x || !dj_expr_eval (x, &let->vars, &v)) {
         dj_expr_destroy (x);
         return false;
      }
      /* the value may point into x (a constant): copy it into the arena,
       * which lives as long as the command */
      bson_t holder = BSON_INITIALIZER;
      bson_value_t hv;
      bson_iter_t hi;
      if (v.value_type != BSON_TYPE_EOD) {
         BSON_APPEND_VALUE (&holder, "v", &v);
      }
      dj_arena_value (let->arena, &holder, false, &hv);
      bson_destroy (&holder);
      dj_expr_destroy (x);
      if (bson_iter_init_from_data (&hi, hv.value.v_doc.data, hv.value.v_doc.data_len) && bson_iter_next (&hi)) {
         v = *bson_iter_value (&hi);
      } else {
         v.value_type = BSON_TYPE_NULL;
      }
      let->vars.vars[let->vars.nvars].name = bson_iter_key (&it);
      let->vars.vars[let->vars.nvars].value = v;
      let->vars.nvars++;
      let->scope[k].name = bson_iter_key (&it);
      let->scope[k].up = let->top;
      let->top = &let->scope[k];
   }
   return true;
}

void
dj_let_destroy (dj_let_t *let)
{
   dj_arena_destroy (let->arena);
   bson_free (let->scope);
   memset (let, 0, sizeof *let);
}

bool
dj_find_spec_parse (const bson_t *cmd, const bson_t *filter, const bson_t *sort, const bson_t *projection,
                    dj_find_spec_t *fs, bson_error_t *error)
{
   return dj_let_parse (cmd, &fs->let, error) && (fs->m = dj_matcher_new_scoped (filter, fs->let.top, error)) &&
          (bson_empty (sort) || (fs->sort = dj_sort_new (sort, error))) &&
          (bson_empty (projection) || (fs->proj = dj_projection_new (projection, error)));
}

void
dj_find_spec_destroy (dj_find_spec_t *fs)
{
   dj_matcher_destroy (fs->m);
   dj_sort_destroy (fs->sort);
   dj_projection_destroy (fs->proj);
   dj_let_destroy (&fs->let);
}
