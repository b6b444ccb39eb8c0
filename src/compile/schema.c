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
   if (!cx->catalog || !cx->catalog->columns) {
      return true;
   }
   /* (has_column first: it answers the usual case without a copy) */
   char *path_head = dot ? bson_strndup (col->name, head) : NULL; /* owned */
   bool found = cx->catalog->has_column &&
                cx->catalog->has_column (cx->catalog->ctx, src->table, path_head ? path_head : col->name);
   bson_free (path_head);
   if (!found) {
      bson_t names;
      found = !recorded (cx, src->table, &names); /* no recorded schema: any column */
      bson_destroy (&names);
   }
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

/* ---- * in a derived table ---- */

/* A block for cx_scratch_t (zeroed), or a copy of `size` bytes of `from`. */
static void *
scratch (cx_scratch_t *mem, const void *from, size_t size)
{
   if (mem->n == mem->cap) {
      mem->cap = mem->cap ? mem->cap * 2 : 16;
      mem->v = bson_realloc (mem->v, sizeof *mem->v * (size_t) mem->cap);
   }
   void *p = bson_malloc0 (size);
   if (from) {
      memcpy (p, from, size);
   }
   return mem->v[mem->n++] = p;
}

void
cx_scratch_free (cx_scratch_t *mem)
{
   for (int i = 0; i < mem->n; i++) {
      bson_free (mem->v[i]);
   }
   bson_free (mem->v);
}

static bool
is_star (const dj_expr_t *e)
{
   return e->kind == DJ_X_STAR || (e->kind == DJ_X_COLUMN && !strcmp (e->name, "*"));
}

/* Appends `item` to `items` (its storage in mem). */
static void
push_item (dj_list_t *items, dj_item_t *item, cx_scratch_t *mem)
{
   if (items->n == items->cap) {
      items->cap = items->cap * 2 + 8;
      void **v = scratch (mem, NULL, sizeof *v * (size_t) items->cap);
      if (items->n) {
         memcpy (v, items->v, sizeof *v * (size_t) items->n);
      }
      items->v = v;
   }
   items->v[items->n++] = item;
}

/* A derived table's column names into *names (initialised here); false
 * when one is an expression without an alias. */
static bool
sub_names (const dj_select_t *sub, bson_t *names)
{
   bson_init (names);
   for (int m = 0; m < sub->items.n; m++) {
      const dj_item_t *it = sub->items.v[m];
      const char *name = it->alias ? it->alias : it->expr->kind == DJ_X_COLUMN ? it->expr->name : NULL;
      char kb[16];
      const char *key;
      if (!name || !strcmp (name, "*")) {
         return false;
      }
      bson_uint32_to_string ((uint32_t) m, &key, kb, sizeof kb);
      bson_append_utf8 (names, key, -1, name, -1);
   }
   return true;
}

/* Appends to `items` a column item per recorded column of the tables `star`
 * names (a derived table's: its columns), qualified with the table's
 * alias; false when one of them has no recorded schema. */
static bool
star_items (cx_t *cx, const dj_select_t *s, const dj_expr_t *star, dj_list_t *items, cx_scratch_t *mem)
{
   for (int k = 0; k < s->from.n; k++) {
      const dj_from_t *f = s->from.v[k];
      const char *alias = f->alias ? f->alias : f->name;
      bson_t names;
      bson_iter_t it;
      if (star->kind == DJ_X_COLUMN && star->table && (!alias || strcmp (star->table, alias))) {
         continue;
      }
      bool known = f->sub ? sub_names (f->sub, &names) : recorded (cx, f->name, &names);
      if (known && bson_iter_init (&it, &names)) {
         while (bson_iter_next (&it)) {
            const char *name = bson_iter_utf8 (&it, NULL);
            dj_expr_t *col = scratch (mem, NULL, sizeof *col);
            dj_item_t *item = scratch (mem, NULL, sizeof *item);
            col->kind = DJ_X_COLUMN;
            col->pos = star->pos;
            col->table = (char *) alias; /* borrowed from the statement */
            col->name = strcpy (scratch (mem, NULL, strlen (name) + 1), name);
            item->expr = col;
            push_item (items, item, mem);
         }
      }
      bson_destroy (&names);
      if (!known) {
         return false;
      }
   }
   return true;
}

const dj_select_t *
cx_expand_derived_stars (cx_t *cx, const dj_select_t *s, cx_scratch_t *mem)
{
   if (s->from.n != 1 || !((dj_from_t *) s->from.v[0])->sub) {
      return s;
   }
   const dj_from_t *f = s->from.v[0];
   const dj_select_t *in = cx_expand_derived_stars (cx, f->sub, mem);
   bool has_star = false;
   for (int i = 0; i < in->items.n; i++) {
      has_star |= is_star (((dj_item_t *) in->items.v[i])->expr);
   }
   if (has_star && !cx_derived_star (in) && !in->next) {
      /* the derived table's SELECT with its * written out */
      dj_list_t items = {0};
      bool ok = true;
      for (int i = 0; ok && i < in->items.n; i++) {
         dj_item_t *it = in->items.v[i];
         if (is_star (it->expr)) {
            ok = star_items (cx, in, it->expr, &items, mem);
         } else {
            push_item (&items, it, mem);
         }
      }
      if (ok) {
         dj_select_t *copy = scratch (mem, in, sizeof *copy);
         copy->items = items;
         in = copy;
      }
   }
   if (in == f->sub) {
      return s;
   }
   /* s with its FROM entry naming the new derived SELECT */
   dj_from_t *nf = scratch (mem, f, sizeof *nf);
   nf->sub = (dj_select_t *) in;
   dj_select_t *ns = scratch (mem, s, sizeof *ns);
   ns->from = (dj_list_t) {.v = scratch (mem, NULL, sizeof (void *)), .n = 1, .cap = 1};
   ns->from.v[0] = nf;
   return ns;
}
