/*
 * reshape.c -- the document-shaping stages: $project, $addFields (and its
 * alias $set), $unset, $replaceRoot and $replaceWith.
 *
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/project/
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/addFields/
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/replaceRoot/
 *
 * They work on one document at a time and read no collection, which is why
 * they live here and not in aggregation: find projections with expressions
 * and pipeline-style updates use them without the pipeline (and so without
 * storage), and the aggregation pipeline runs them as stages.
 *
 * A $project/$addFields specification is parsed into the tree find
 * projections use too (spec-private.h), one node per path component:
 * included, excluded, computed (an expression) or more paths below.
 */
#include "spec-private.h"

void
dj_reshape_destroy (dj_reshape_t *r)
{
   if (r) {
      dj_rpaths_free (r->paths);
      dj_spec_free (r->shape);
      dj_expr_destroy (r->root);
      if (r->meta) {
         bson_destroy (r->meta);
      }
      bson_free (r);
   }
}

/* ---- parsing -------------------------------------------------------------- */

/* Adds one projection entry at dotted `path` under root. mode: 1 inclusion,
 * -1 exclusion, 0 unknown yet; updated. */
static bool parse_shape_into (dj_spec_node_t *root, const bson_value_t *spec, const dj_vscope_t *scope, bool addfields, int *mode,
                              bool *id_excluded, int depth, bson_error_t *error);

static bool
shape_add (dj_spec_node_t *root, const char *path, const bson_value_t *v, const dj_vscope_t *scope, bool addfields,
           int *mode, bool *id_excluded, int depth, bson_error_t *error)
{
   dj_spec_node_t *node = dj_spec_add (root, path, true, error);
   if (!node) {
      return false;
   }
   bool incl;
   bool is_id = depth == 0 && !strcmp (path, "_id");
   if (path[0] == '$') {
      return dj_err (error, 16410, "FieldPath field names may not start with '$'. Consider using $getField or $setField.");
   }
   if (!addfields && dj_spec_truthy (v, &incl)) {
      node->kind = incl ? DJ_SPEC_INCLUDE : DJ_SPEC_EXCLUDE;
      if (is_id) {
         *id_excluded = !incl;
      } else if (*mode == 0) {
         *mode = incl ? 1 : -1;
      } else if (*mode != (incl ? 1 : -1)) {
         if (incl) {
            return dj_err (error, 31253, "Invalid $project :: caused by :: Cannot do inclusion on field %s in exclusion projection", path);
         }
         return dj_err (error, 31254, "Invalid $project :: caused by :: Cannot do exclusion on field %s in inclusion projection", path);
      }
      return true;
   }
   if (v->value_type == BSON_TYPE_DOCUMENT) {
      bson_iter_t it;
      bson_iter_init_from_data (&it, v->value.v_doc.data, v->value.v_doc.data_len);
      bool empty = !bson_iter_next (&it);
      if (empty && !addfields) {
         return dj_err (error, 51282, "Invalid $project :: caused by :: An empty sub-projection is not a valid value. Found empty object at path");
      }
      if (!empty && bson_iter_key (&it)[0] != '$') {
         /* a nested projection / nested fields */
         return parse_shape_into (node, v, scope, addfields, mode, id_excluded, depth + 1, error);
      }
   }
   node->kind = DJ_SPEC_EXPR;
   node->expr = dj_expr_parse (v, scope, error);
   if (!node->expr) {
      return false;
   }
   if (!addfields && !is_id) {
      if (*mode < 0) {
         return dj_err (error, 31252, "Invalid $project :: caused by :: Cannot use expression other than $meta in exclusion projection");
      }
      *mode = 1;
   }
   return true;
}

static bool
parse_shape_into (dj_spec_node_t *root, const bson_value_t *spec, const dj_vscope_t *scope, bool addfields, int *mode,
                  bool *id_excluded, int depth, bson_error_t *error)
{
   bson_iter_t it;
   bson_iter_init_from_data (&it, spec->value.v_doc.data, spec->value.v_doc.data_len);
   while (bson_iter_next (&it)) {
      if (!shape_add (root, bson_iter_key (&it), bson_iter_value (&it), scope, addfields, mode, id_excluded, depth, error)) {
         return false;
      }
   }
   return true;
}

bool
dj_reshape_is_stage (const char *name)
{
   static const char *const names[] = {"$project", "$addFields", "$set", "$unset", "$replaceRoot", "$replaceWith"};
   for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
      if (!strcmp (name, names[i])) {
         return true;
      }
   }
   return false;
}

static bool
parse_reshape (dj_reshape_t *r, const char *name, const bson_value_t *v, const dj_vscope_t *scope, bson_error_t *error)
{
   bson_iter_t it;

   if (!strcmp (name, "$project") || !strcmp (name, "$addFields") || !strcmp (name, "$set")) {
      bool add = name[1] != 'p';
      int mode = 0;
      r->kind = add ? RS_ADDFIELDS : RS_PROJECT;
      if (v->value_type != BSON_TYPE_DOCUMENT) {
         return dj_err (error, add ? 40272 : 15969, "%s specification must be an object", name);
      }
      if (!add && v->value.v_doc.data_len == 5) {
         return dj_err (error, 51272, "Invalid $project :: caused by :: projection specification must have at least one field");
      }
      r->shape = dj_spec_new ();
      if (!parse_shape_into (r->shape, v, scope, add, &mode, &r->id_excluded, 0, error)) {
         return false;
      }
      r->inclusion = mode > 0 || (mode == 0 && !r->id_excluded);
      if (!add && mode == 0 && r->id_excluded) {
         r->inclusion = false;
      }
      return true;
   }
   if (!strcmp (name, "$unset")) {
      r->kind = RS_PROJECT;
      r->shape = dj_spec_new ();
      bson_value_t zero = {.value_type = BSON_TYPE_INT32};
      int mode = 0;
      if (v->value_type == BSON_TYPE_UTF8) {
         return shape_add (r->shape, v->value.v_utf8.str, &zero, scope, false, &mode, &r->id_excluded, 0, error);
      }
      if (v->value_type != BSON_TYPE_ARRAY) {
         return dj_err (error, 31002, "$unset specification must be a string or an array");
      }
      bson_iter_init_from_data (&it, v->value.v_doc.data, v->value.v_doc.data_len);
      while (bson_iter_next (&it)) {
         if (!BSON_ITER_HOLDS_UTF8 (&it)) {
            return dj_err (error, 31120, "$unset specification must be a string or an array containing only string values");
         }
         if (!shape_add (r->shape, bson_iter_utf8 (&it, NULL), &zero, scope, false, &mode, &r->id_excluded, 0, error)) {
            return false;
         }
      }
      return true;
   }
   /* $replaceRoot / $replaceWith */
   r->kind = RS_REPLACEROOT;
   const bson_value_t *root = v;
   bson_value_t nr;
   if (name[8] == 'R') {
      if (v->value_type != BSON_TYPE_DOCUMENT || !dj_value_get_field (v, "newRoot", &nr)) {
         return dj_err (error, 40231, "no newRoot specified for the $replaceRoot stage");
      }
      root = &nr;
   }
   r->root = dj_expr_parse (root, scope, error);
   return r->root != NULL;
}

dj_reshape_t *
dj_reshape_new (const char *name, const bson_value_t *spec, const dj_vscope_t *scope, bson_error_t *error)
{
   BSON_ASSERT (dj_reshape_is_stage (name));
   dj_reshape_t *r = bson_malloc0 (sizeof *r);
   if (!parse_reshape (r, name, spec, scope, error)) {
      dj_reshape_destroy (r);
      return NULL;
   }
   r->paths = dj_rpaths_new (r);
   return r;
}

bool
dj_stage_split (const bson_iter_t *it, const char **name, bson_value_t *spec, bson_error_t *error)
{
   bson_iter_t si;
   int nkeys = 0;

   if (!BSON_ITER_HOLDS_DOCUMENT (it)) {
      return dj_err (error, DJ_TypeMismatch, "Each element of the 'pipeline' array must be an object");
   }
   bson_iter_recurse (it, &si);
   while (bson_iter_next (&si)) {
      nkeys++;
      *name = bson_iter_key (&si);
      *spec = *bson_iter_value (&si);
   }
   if (nkeys != 1) {
      return dj_err (error, 40323, "A pipeline stage specification object must contain exactly one field.");
   }
   return true;
}

/* ---- applying --------------------------------------------------------------- */

/* *v: the empty document {} (static data: nothing to free). */
static void
empty_doc (bson_value_t *v)
{
   static const uint8_t empty[5] = {5, 0, 0, 0, 0};
   v->value_type = BSON_TYPE_DOCUMENT;
   v->value.v_doc.data = (uint8_t *) empty;
   v->value.v_doc.data_len = sizeof empty;
}

static bool apply_shape (dj_eval_t *ev, const dj_spec_node_t *shape, const bson_value_t *doc, bool inclusion,
                         bool addfields, int depth, bool id_excluded, bson_t *out);

static bool
shape_value (dj_eval_t *ev, const dj_spec_node_t *node, const bson_value_t *v, bool inclusion, bool addfields, int depth,
             const char *key, bson_t *out)
{
   /* node is DJ_SPEC_SUB applied to an existing value */
   if (v->value_type == BSON_TYPE_DOCUMENT) {
      bson_t sub;
      bson_append_document_begin (out, key, -1, &sub);
      bool ok = apply_shape (ev, node, v, inclusion, addfields, depth + 1, false, &sub);
      bson_append_document_end (out, &sub);
      return ok;
   }
   if (v->value_type == BSON_TYPE_ARRAY) {
      bson_t arr;
      bson_iter_t it;
      uint32_t k = 0;
      bson_append_array_begin (out, key, -1, &arr);
      bson_iter_init_from_data (&it, v->value.v_doc.data, v->value.v_doc.data_len);
      while (bson_iter_next (&it)) {
         const bson_value_t *e = bson_iter_value (&it);
         char buf[16];
         const char *ek;
         if (e->value_type == BSON_TYPE_DOCUMENT || e->value_type == BSON_TYPE_ARRAY) {
            bson_uint32_to_string (k++, &ek, buf, sizeof buf);
            if (!shape_value (ev, node, e, inclusion, addfields, depth, ek, &arr)) {
               bson_append_array_end (out, &arr);
               return false;
            }
         } else if (!inclusion || addfields) {
            /* $addFields on a scalar element replaces it with the new fields */
            bson_uint32_to_string (k++, &ek, buf, sizeof buf);
            if (addfields) {
               bson_value_t ev0;
               empty_doc (&ev0);
               if (!shape_value (ev, node, &ev0, inclusion, addfields, depth, ek, &arr)) {
                  bson_append_array_end (out, &arr);
                  return false;
               }
            } else {
               bson_append_value (&arr, ek, -1, e);
            }
         }
      }
      bson_append_array_end (out, &arr);
      return true;
   }
   if (addfields) {
      bson_value_t e0;
      empty_doc (&e0);
      return shape_value (ev, node, &e0, inclusion, addfields, depth, key, out);
   }
   if (!inclusion) {
      bson_append_value (out, key, -1, v);
   }
   return true;
}

static bool
shape_has_computed (const dj_spec_node_t *s)
{
   if (s->kind == DJ_SPEC_EXPR) {
      return true;
   }
   for (int i = 0; i < s->nkids; i++) {
      if (shape_has_computed (s->kids[i])) {
         return true;
      }
   }
   return false;
}

static bool
apply_shape (dj_eval_t *ev, const dj_spec_node_t *shape, const bson_value_t *doc, bool inclusion, bool addfields,
             int depth, bool id_excluded, bson_t *out)
{
   bson_iter_t it;
   bson_value_t v;
   bool *done = bson_malloc0 (sizeof (bool) * (size_t) (shape->nkids ? shape->nkids : 1));
   bool ok = true;

   bson_iter_init_from_data (&it, doc->value.v_doc.data, doc->value.v_doc.data_len);
   while (ok && bson_iter_next (&it)) {
      const char *key = bson_iter_key (&it);
      int ki;
      const dj_spec_node_t *n = dj_spec_child (shape, key, &ki);
      bool is_id = depth == 0 && !strcmp (key, "_id");
      if (!n) {
         if (addfields || !inclusion || (is_id && !id_excluded)) {
            bson_append_value (out, key, -1, bson_iter_value (&it));
         }
         continue;
      }
      switch (n->kind) {
      case DJ_SPEC_INCLUDE:
         done[ki] = true;
         bson_append_value (out, key, -1, bson_iter_value (&it));
         break;
      case DJ_SPEC_EXCLUDE: done[ki] = true; break;
      case DJ_SPEC_EXPR:
         if (addfields) {
            /* $addFields replaces in place */
            done[ki] = true;
            ok = dj_expr_eval (n->expr, ev, &v);
            if (ok && v.value_type != BSON_TYPE_EOD) {
               bson_append_value (out, key, -1, &v);
            }
         }
         break; /* $project: computed fields come after the kept ones */
      case DJ_SPEC_SUB: {
         /* a sub-projection with computed fields over a scalar builds a new
          * document (pass 2 below); over documents and arrays it recurses */
         bson_type_t vt = bson_iter_type (&it);
         bool container = vt == BSON_TYPE_DOCUMENT || vt == BSON_TYPE_ARRAY;
         if (!container && shape_has_computed (n) && (inclusion || addfields)) {
            break;
         }
         if (addfields || !shape_has_computed (n) || inclusion) {
            done[ki] = true;
            ok = shape_value (ev, n, bson_iter_value (&it), inclusion, addfields, depth, key, out);
         }
         break;
      }
      case DJ_SPEC_SLICE:
      case DJ_SPEC_ELEMMATCH:
      case DJ_SPEC_POSITIONAL: break; /* find projections only */
      }
   }
   /* computed fields that were not in the document, in specification order */
   for (int i = 0; ok && i < shape->nkids; i++) {
      const dj_spec_node_t *n = shape->kids[i];
      if (done[i]) {
         continue;
      }
      if (n->kind == DJ_SPEC_EXPR) {
         ok = dj_expr_eval (n->expr, ev, &v);
         if (ok && v.value_type != BSON_TYPE_EOD) {
            bson_append_value (out, n->name, -1, &v);
         }
      } else if (n->kind == DJ_SPEC_SUB && shape_has_computed (n) && (inclusion || addfields)) {
         bson_value_t e0;
         empty_doc (&e0);
         bson_t sub;
         bson_append_document_begin (out, n->name, -1, &sub);
         ok = apply_shape (ev, n, &e0, inclusion, addfields, depth + 1, false, &sub);
         bson_append_document_end (out, &sub);
      }
   }
   bson_free (done);
   return ok;
}

static bool reshape (const dj_reshape_t *r, dj_eval_t *ev, const bson_t *doc, bson_t *out);

/* A document's text score (DJ_META_TEXT_SCORE) is metadata: it survives the
 * shaping stages, as MongoDB's does ({$meta: "textScore"} after $project). */
bool
dj_reshape_apply (const dj_reshape_t *r, dj_eval_t *ev, const bson_t *doc, bson_t *out)
{
   bson_iter_t it;
   if (r->paths) {
      return dj_rpaths_apply (r->paths, ev, doc, out);
   }
   if (!reshape (r, ev, doc, out)) {
      return false;
   }
   if (bson_iter_init_find (&it, doc, DJ_META_TEXT_SCORE) && !bson_has_field (out, DJ_META_TEXT_SCORE)) {
      bson_append_iter (out, DJ_META_TEXT_SCORE, -1, &it);
   }
   return true;
}

static bool
reshape (const dj_reshape_t *r, dj_eval_t *ev, const bson_t *doc, bson_t *out)
{
   bson_value_t v;

   BSON_ASSERT (r->kind != RS_FIND); /* find projections: dj_projection_apply */
   if (r->kind == RS_REPLACEROOT) {
      if (!dj_expr_eval (r->root, ev, &v)) {
         return false;
      }
      if (v.value_type != BSON_TYPE_DOCUMENT) {
         dj_buf_t b;
         dj_buf_init (&b);
         dj_value_to_shell (&v, &b);
         dj_err (ev->error, 40228, "'newRoot' expression must evaluate to an object, but resulting value was: %.*s. Type of resulting value: '%s'. Input document: ...",
                 (int) b.len, b.data ? (char *) b.data : "MISSING", dj_type_name (v.value_type));
         dj_buf_cleanup (&b);
         return false;
      }
      bson_t view;
      bson_init_static (&view, v.value.v_doc.data, v.value.v_doc.data_len);
      return bson_concat (out, &view);
   }
   dj_value_from_doc (doc, false, &v);
   return apply_shape (ev, r->shape, &v, r->kind == RS_PROJECT ? r->inclusion : false, r->kind == RS_ADDFIELDS, 0,
                       r->id_excluded, out);
}
