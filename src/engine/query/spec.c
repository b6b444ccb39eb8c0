/*
 * spec.c -- the projection specification tree (spec-private.h): the nodes,
 * adding a dotted path with MongoDB's path-collision rule, and the values
 * that include or exclude.
 *
 * https://www.mongodb.com/docs/manual/reference/method/db.collection.find/#projection
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/project/
 */
#include "spec-private.h"

dj_spec_node_t *
dj_spec_new (void)
{
   return bson_malloc0 (sizeof (dj_spec_node_t));
}

void
dj_spec_free (dj_spec_node_t *n)
{
   if (!n) {
      return;
   }
   for (int i = 0; i < n->nkids; i++) {
      dj_spec_free (n->kids[i]);
   }
   bson_free (n->kids);
   bson_free (n->name);
   dj_expr_destroy (n->expr);
   dj_matcher_destroy (n->elem);
   bson_free (n);
}

dj_spec_node_t *
dj_spec_add (dj_spec_node_t *root, const char *dotted, bool stage, bson_error_t *error)
{
   dj_path_t p;
   dj_spec_node_t *cur = root;

   if (!dj_path_init (&p, dotted, strlen (dotted), error)) {
      if (stage) {
         dj_err (error, 40352, "FieldPath cannot be constructed with empty string");
      } else {
         dj_err (error, DJ_BadValue, "FieldPath field names may not be empty strings.");
      }
      return NULL;
   }
   for (int i = 0; cur && i < p.n; i++) {
      dj_spec_node_t *next = dj_spec_child (cur, p.parts[i], NULL);
      if (next && (dj_spec_whole (next) || i + 1 == p.n)) {
         dj_err (error, 31250, "%sPath collision at %s", stage ? "Invalid $project :: caused by :: " : "", dotted);
         cur = NULL;
      } else if (next) {
         cur = next;
      } else {
         next = dj_spec_new ();
         next->name = bson_strdup (p.parts[i]);
         cur->kids = bson_realloc (cur->kids, sizeof (dj_spec_node_t *) * (size_t) (cur->nkids + 1));
         cur->kids[cur->nkids++] = next;
         cur = next;
      }
   }
   dj_path_cleanup (&p);
   return cur;
}

bool
dj_spec_truthy (const bson_value_t *v, bool *out)
{
   if (v->value_type == BSON_TYPE_BOOL) {
      *out = v->value.v_bool;
      return true;
   }
   if (dj_value_is_number (v)) {
      *out = dj_value_as_double (v) != 0;
      return true;
   }
   return false;
}
