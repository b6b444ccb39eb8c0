/*
 * schema.c -- what the executor's recorded columns (dj_catalog_t.columns)
 * settle in a query: a column its table never recorded is an error, as in
 * SQL ("no such column"), and a * whose rows must be columns (beside GROUP
 * BY) is the table's recorded columns. A table without a recorded schema (a
 * collection made outside SQL) keeps MongoDB's freedom: any field, and a
 * missing one is NULL.
 */
#include <string.h>

#include "compile-private.h"

/* `table`'s recorded columns into *names (initialised here either way, the
 * caller destroys it); false: no recorded schema, or no catalog to ask. */
static bool
recorded (cx_t *cx, const char *table, bson_t *names)
{
   bson_init (names);
   return cx->catalog && cx->catalog->columns && table && cx->catalog->columns (cx->catalog->ctx, table, names);
}

bool
cx_check_column (cx_t *cx, const cx_source_t *src, const dj_expr_t *col)
{
   /* an unqualified column in a subquery may be the enclosing query's
    * (SQL looks outward for a name the inner tables lack) */
   if (src->sub || (!col->table && cx->outer)) {
      return true;
   }
   /* col.key (a path into an embedded document): the column is col; _id is
    * every document's own */
   const char *dot = strchr (col->name, '.');
   size_t head = dot ? (size_t) (dot - col->name) : strlen (col->name);
   if ((head == 3 && !strncmp (col->name, "_id", 3)) || !strcmp (col->name, "*")) {
      return true;
   }
   bson_t names;
   bson_iter_t it;
   bool known = recorded (cx, src->table, &names), found = !known;
   if (known && bson_iter_init (&it, &names)) {
      while (!found && bson_iter_next (&it)) {
         const char *name = bson_iter_utf8 (&it, NULL);
         found = strlen (name) == head && !strncmp (name, col->name, head);
      }
   }
   bson_destroy (&names);
   if (!found) {
      return cx_fail (cx, DJ_SQL_NO_COLUMN, col->pos, "no such column: %s%s%.*s", col->table ? col->table : "",
                      col->table ? "." : "", (int) head, col->name);
   }
   return true;
}

/* The GROUP BY key naming column `name` of source `src`, or NULL. */
static const dj_expr_t *
group_key (const cx_t *cx, const cx_source_t *src, const char *name)
{
   for (int i = 0; i < cx->group->keys->n; i++) {
      const dj_expr_t *k = cx->group->keys->v[i];
      if (k->kind == DJ_X_COLUMN && !strcmp (k->name, name) &&
          (k->table ? !strcmp (k->table, src->alias) : cx->nsources == 1)) {
         return k;
      }
   }
   return NULL;
}

bool
cx_project_star_grouped (cx_t *cx, const dj_expr_t *star, int i, bson_t *proj, bool *done)
{
   *done = false;
   int nk = 0, known = 0;
   for (int k = 0; k < cx->nsources; k++) {
      const cx_source_t *src = &cx->sources[k];
      bson_t names;
      if (star->kind == DJ_X_COLUMN && star->table && strcmp (star->table, src->alias)) {
         continue;
      }
      nk++;
      bool rec = recorded (cx, src->table, &names);
      known += rec && !src->sub;
      bson_destroy (&names);
   }
   if (!nk || known < nk) {
      return true; /* a derived table or a collection without a schema */
   }
   bool ok = true;
   for (int k = 0; ok && k < cx->nsources; k++) {
      const cx_source_t *src = &cx->sources[k];
      bson_t names;
      bson_iter_t it;
      if (star->kind == DJ_X_COLUMN && star->table && strcmp (star->table, src->alias)) {
         continue;
      }
      recorded (cx, src->table, &names);
      int m = 0;
      ok = bson_iter_init (&it, &names);
      while (ok && bson_iter_next (&it)) {
         const char *name = bson_iter_utf8 (&it, NULL);
         const dj_expr_t *key = group_key (cx, src, name);
         char out[48];
         bool us = false;
         snprintf (out, sizeof out, "c%d_%d_%d", i, k, m++);
         if (!key) {
            ok = cx_unsupported (cx, star->pos, "column \"%s\" of \"%s.*\" is not in GROUP BY", name, src->alias);
            break;
         }
         ok = cx_agg_value (cx, key, proj, out) && cx_dt_project_rem (cx, key, proj, out, &us);
         if (ok) {
            cx_add_column (cx, name, out);
            if (us) {
               cx_dt_mark_column (cx);
            }
         }
      }
      bson_destroy (&names);
   }
   *done = ok;
   return ok;
}
