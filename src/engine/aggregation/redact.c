/*
 * redact.c -- $redact: the expression, evaluated at each embedded document
 * ($$CURRENT) from the top down, keeps it whole ($$KEEP), drops it
 * ($$PRUNE) or keeps its fields after redacting the documents inside them,
 * in arrays too ($$DESCEND).
 *
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/redact/
 */
#include "agg-private.h"

/* The values the three variables hold (mongod's are these strings). */
static const char *const redact_vars[] = {"DESCEND", "PRUNE", "KEEP"};
static const char *const redact_values[] = {"descend", "prune", "keep"};

bool
dj_agg_parse_redact (stage_t *s, const bson_value_t *v, const dj_vscope_t *scope, bson_error_t *error)
{
   dj_vscope_t names[3];
   const dj_vscope_t *up = scope;
   for (int i = 0; i < 3; i++) {
      names[i].name = redact_vars[i];
      names[i].up = up;
      up = &names[i];
   }
   s->expr = dj_expr_parse (v, up, error); /* the scope is only read while parsing */
   return s->expr != NULL;
}

static bool redact_doc (rctx_t *r, const stage_t *s, dj_eval_t *ev, const uint8_t *data, uint32_t len, bson_t *out,
                        bool *keep);

/* Appends v (redacted) to out as key: documents through redact_doc, arrays
 * element by element, anything else as it is. */
static bool
redact_value (rctx_t *r, const stage_t *s, dj_eval_t *ev, const char *key, const bson_value_t *v, bson_t *out)
{
   if (v->value_type == BSON_TYPE_DOCUMENT) {
      bson_t child;
      bool keep;
      bson_init (&child);
      bool ok = redact_doc (r, s, ev, v->value.v_doc.data, v->value.v_doc.data_len, &child, &keep);
      if (ok && keep) {
         BSON_APPEND_DOCUMENT (out, key, &child);
      }
      bson_destroy (&child);
      return ok;
   }
   if (v->value_type == BSON_TYPE_ARRAY) {
      bson_t arr;
      bson_iter_t it;
      uint32_t n = 0;
      bool ok = true;
      BSON_APPEND_ARRAY_BEGIN (out, key, &arr);
      bson_iter_init_from_data (&it, v->value.v_doc.data, v->value.v_doc.data_len);
      while (ok && bson_iter_next (&it)) {
         char kb[16];
         const bson_value_t *e = bson_iter_value (&it);
         if (e->value_type == BSON_TYPE_DOCUMENT || e->value_type == BSON_TYPE_ARRAY) {
            bson_value_t ec = *e; /* the iterator's value is overwritten by the next call */
            bson_t one = BSON_INITIALIZER;
            ok = redact_value (r, s, ev, "0", &ec, &one);
            bson_iter_t oi;
            if (ok && bson_iter_init_find (&oi, &one, "0")) {
               bson_append_value (&arr, dj_array_key (n++, kb), -1, bson_iter_value (&oi));
            }
            bson_destroy (&one);
         } else {
            bson_append_value (&arr, dj_array_key (n++, kb), -1, e);
         }
      }
      bson_append_array_end (out, &arr);
      return ok;
   }
   return bson_append_value (out, key, -1, v);
}

/* The document data[0..len) as $$CURRENT: *keep false when pruned, else out
 * holds what is kept. */
static bool
redact_doc (rctx_t *r, const stage_t *s, dj_eval_t *ev, const uint8_t *data, uint32_t len, bson_t *out, bool *keep)
{
   bson_value_t cur = {.value_type = BSON_TYPE_DOCUMENT}, res;
   cur.value.v_doc.data = (uint8_t *) data;
   cur.value.v_doc.data_len = len;
   bson_value_t saved = ev->current;
   ev->current = cur;
   bool ok = dj_expr_eval (s->expr, ev, &res);
   ev->current = saved;
   if (!ok) {
      return false;
   }
   int which = -1;
   for (int i = 0; res.value_type == BSON_TYPE_UTF8 && i < 3; i++) {
      if (!strcmp (res.value.v_utf8.str, redact_values[i])) {
         which = i;
      }
   }
   if (which < 0) {
      return dj_err (r->error, 17053,
                     "$redact's expression should not return anything aside from the variables $$KEEP, $$DESCEND, and "
                     "$$PRUNE, but returned %s",
                     dj_type_name (res.value_type));
   }
   *keep = which != 1;
   if (which == 2) {
      bson_t whole;
      bson_init_static (&whole, data, len);
      bson_concat (out, &whole);
      return true;
   }
   if (which == 1) {
      return true;
   }
   bson_iter_t it;
   bson_iter_init_from_data (&it, data, len);
   while (bson_iter_next (&it)) {
      bson_value_t fv = *bson_iter_value (&it);
      if (!redact_value (r, s, ev, bson_iter_key (&it), &fv, out)) {
         return false;
      }
   }
   return true;
}

bool
dj_agg_run_redact (rctx_t *r, const stage_t *s, dj_docs_t *docs)
{
   size_t k = 0;
   bool ok = true;
   for (size_t i = 0; i < docs->n; i++) {
      if (!ok) {
         bson_destroy (docs->v[i]);
         continue;
      }
      dj_eval_t ev;
      bool keep = false;
      bson_t *out = bson_new ();
      dj_agg_eval_setup (r, &ev, docs->v[i]);
      for (int v = 0; v < 3; v++) {
         bson_value_t sv = {.value_type = BSON_TYPE_UTF8};
         sv.value.v_utf8.str = (char *) redact_values[v];
         sv.value.v_utf8.len = (uint32_t) strlen (redact_values[v]);
         if (ev.nvars == DJ_MAX_VARS) {
            ok = dj_err (r->error, DJ_BadValue, "too many variables in scope (limit %d)", DJ_MAX_VARS);
            break;
         }
         ev.vars[ev.nvars].name = redact_vars[v];
         ev.vars[ev.nvars].value = sv;
         ev.nvars++;
      }
      ok = ok && redact_doc (r, s, &ev, bson_get_data (docs->v[i]), docs->v[i]->len, out, &keep);
      dj_arena_reset (r->arena);
      bson_destroy (docs->v[i]);
      if (ok && keep) {
         docs->v[k++] = out;
      } else {
         bson_destroy (out);
      }
   }
   docs->n = k;
   return ok;
}
