/*
 * column.c -- column references: which FROM source (table, derived table
 * or an outer query's, for a correlated subquery) a column belongs to, the
 * document path it reads, and the field reference, indexed path or `let`
 * variable the compiled command names it by. Split from expr.c, which
 * asks these questions for every expression.
 */
#include <stdio.h>
#include <string.h>

#include "compile-private.h"

/* Whether a derived table's SELECT has an item named `name` (its first
 * head bytes), through SELECT * FROM (derived) as cx_column_path reads it. */
static bool
derived_has (const dj_select_t *in, const char *name, size_t head)
{
   while (cx_derived_star (in)) {
      in = cx_derived_star (in);
   }
   for (int i = 0; i < in->items.n; i++) {
      const dj_item_t *it = in->items.v[i];
      const char *nm = it->alias ? it->alias : it->expr->kind == DJ_X_COLUMN ? it->expr->name : NULL;
      if (nm && strlen (nm) == head && !strncmp (nm, name, head)) {
         return true;
      }
   }
   return false;
}

/* An unqualified column in a query over several tables: the one source
 * that has it (a table by the columns the catalog says it records, a
 * derived table by its SELECT items), as SQL resolves it; NULL when none
 * or more than one does, or nothing is known. */
static const cx_source_t *
owning_source (cx_t *cx, const char *name)
{
   const cx_source_t *found = NULL;
   const char *dot = strchr (name, '.'); /* col.key: the column is col */
   size_t head = dot ? (size_t) (dot - name) : strlen (name);
   char *colname = bson_strndup (name, head);
   for (int i = 0; i < cx->nsources; i++) {
      const cx_source_t *s = &cx->sources[i];
      bool has = s->sub ? derived_has (s->sub, name, head)
                        : cx->catalog && s->table && cx->catalog->has_column (cx->catalog->ctx, s->table, colname);
      if (has && found) {
         found = NULL; /* ambiguous: SQL refuses it too */
         break;
      }
      if (has) {
         found = s;
      }
   }
   bson_free (colname);
   return found;
}

/* The source a column belongs to (*src), or false with cx->error set. */
static bool
column_source (cx_t *cx, const dj_expr_t *col, const cx_source_t **out)
{
   const cx_source_t *src = NULL;
   if (col->table) {
      for (int i = 0; i < cx->nsources; i++) {
         if (!strcmp (cx->sources[i].alias, col->table)) {
            src = &cx->sources[i];
            break;
         }
      }
      if (!src) {
         for (cx_t *o = cx->outer ? cx->outer->outer : NULL; o; o = o->outer) {
            for (int i = 0; i < o->nsources; i++) {
               if (!strcmp (o->sources[i].alias, col->table)) {
                  return cx_unsupported (cx, col->pos, "a subquery referring to \"%s\" of a query two or more levels out",
                                         col->table);
               }
            }
         }
         return cx_unsupported (cx, col->pos, "no table or alias \"%s\" in this query's FROM clause", col->table);
      }
   } else if (cx->nsources == 1) {
      src = &cx->sources[0];
   } else if (cx->nsources == 0) {
      return cx_unsupported (cx, col->pos, "column \"%s\" in a query without FROM", col->name);
   } else if (!(src = owning_source (cx, col->name))) {
      return cx_unsupported (cx, col->pos,
                             "column \"%s\" needs a table qualifier: djongo has no schema to tell which table has it",
                             col->name);
   }
   *out = src;
   return cx_check_column (cx, src, col);
}

const char *
cx_column_table (cx_t *cx, const dj_expr_t *col)
{
   const cx_source_t *src;
   bson_error_t *keep = cx->error, scratch; /* no answer is not an error here */
   cx->error = &scratch;
   bool ok = column_source (cx, col, &src);
   cx->error = keep;
   return ok && !src->sub ? src->table : NULL;
}

bool
cx_column_path (cx_t *cx, const dj_expr_t *col, char *path, size_t size)
{
   const cx_source_t *src = NULL;
   if (col->name[0] == '$' || col->name[0] == '\0' || strstr (col->name, "..")) {
      return cx_unsupported (cx, col->pos, "column name \"%s\" cannot be a MongoDB field name", col->name);
   }
   if (!column_source (cx, col, &src)) {
      return false;
   }
   if (src->sub) {
      /* a derived table's column: the inner SELECT item of that name; a
       * SELECT * FROM (derived) passes its derived table's columns through
       * as they are (Django's QUALIFY emulation wraps a window filter's
       * query so: SELECT col FROM (SELECT * FROM (...) qualify WHERE ...)) */
      const dj_select_t *in = src->sub;
      while (cx_derived_star (in)) {
         in = cx_derived_star (in);
      }
      const char *dot = strchr (col->name, '.'); /* derived.col -> 'key' */
      size_t head = dot ? (size_t) (dot - col->name) : strlen (col->name);
      for (int i = 0; i < in->items.n; i++) {
         const dj_item_t *it = in->items.v[i];
         const char *nm = it->alias ? it->alias : it->expr->kind == DJ_X_COLUMN ? it->expr->name : NULL;
         if (nm && strlen (nm) == head && !strncmp (nm, col->name, head)) {
            int n = snprintf (path, size, "c%d%s", i, dot ? dot : "");
            return n > 0 && (size_t) n < size ? true : cx_unsupported (cx, col->pos, "column path too long");
         }
      }
      return cx_unsupported (cx, col->pos, "no column \"%s\" in the derived table \"%s\"", col->name, src->alias);
   }
   /* prefix + name (every column of every statement comes here: copied,
    * not formatted) */
   size_t lp = strlen (src->prefix), ln = strlen (col->name);
   if (lp + ln >= size) {
      return cx_unsupported (cx, col->pos, "column path too long");
   }
   memcpy (path, src->prefix, lp);
   memcpy (path + lp, col->name, ln + 1);
   return true;
}

static bool
is_index_step (const char *seg, size_t n)
{
   return n && strspn (seg, "0123456789") >= n;
}

/* Whether a column path (col -> ...) has an array index step ("a.0.b"). */
bool
cx_path_has_index (const char *name)
{
   for (const char *seg = strchr (name, '.'), *end; seg; seg = end) {
      end = strchr (seg + 1, '.');
      if (is_index_step (seg + 1, end ? (size_t) (end - seg - 1) : strlen (seg + 1))) {
         return true;
      }
   }
   return false;
}

/* "$a.0.b" as an expression: a field path in an expression does not index
 * arrays ("$a.0" looks for a field named "0" in each element), so each index
 * step is an $arrayElemAt and each key after it a $getField.
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/arrayElemAt/ */
static bool
append_indexed_path (bson_t *parent, const char *key, const char *path)
{
   /* the steps before the first index stay one field path ("$col.key") */
   const char *p = strchr (path, '.'), *end;
   while (p && !is_index_step (p + 1, (end = strchr (p + 1, '.')) ? (size_t) (end - p - 1) : strlen (p + 1))) {
      p = end;
   }
   bson_t *cur = bson_new (), *next;
   bson_append_utf8 (cur, "v", 1, path, p ? (int) (p - path) : -1);
   while (p) {
      const char *seg = p + 1;
      end = strchr (seg, '.');
      int n = end ? (int) (end - seg) : (int) strlen (seg);
      bson_iter_t it;
      bson_t op, in, field;
      bson_iter_init_find (&it, cur, "v");
      next = bson_new ();
      BSON_APPEND_DOCUMENT_BEGIN (next, "v", &op);
      if (is_index_step (seg, (size_t) n)) {
         BSON_APPEND_ARRAY_BEGIN (&op, "$arrayElemAt", &in);
         bson_append_iter (&in, "0", 1, &it);
         BSON_APPEND_INT64 (&in, "1", strtoll (seg, NULL, 10));
         bson_append_array_end (&op, &in);
      } else {
         BSON_APPEND_DOCUMENT_BEGIN (&op, "$getField", &in);
         BSON_APPEND_DOCUMENT_BEGIN (&in, "field", &field);
         bson_append_utf8 (&field, "$literal", 8, seg, n);
         bson_append_document_end (&in, &field);
         bson_append_iter (&in, "input", 5, &it);
         bson_append_document_end (&op, &in);
      }
      bson_append_document_end (next, &op);
      bson_destroy (cur);
      cur = next;
      p = end;
   }
   bson_iter_t it;
   bool ok = bson_iter_init_find (&it, cur, "v") && bson_append_iter (parent, key, -1, &it);
   bson_destroy (cur);
   return ok;
}

static bool
has_alias (const cx_t *cx, const char *alias)
{
   for (int i = 0; i < cx->nsources; i++) {
      if (!strcmp (cx->sources[i].alias, alias)) {
         return true;
      }
   }
   return false;
}

/* The level of the nesting whose enclosing query owns `alias` -- cx itself
 * when it is the query right around cx, an outer level when the column is
 * of a query two or more levels out -- or NULL when cx has the alias (or
 * no query around it has). The nearest query with the alias is the one. */
static cx_t *
outer_owner (cx_t *cx, const char *alias)
{
   if (has_alias (cx, alias)) {
      return NULL;
   }
   for (cx_t *c = cx; c->outer; c = c->outer) {
      if (has_alias (c->outer, alias)) {
         return c;
      }
   }
   return NULL;
}

bool
cx_is_outer (cx_t *cx, const dj_expr_t *col)
{
   return col->kind == DJ_X_COLUMN && col->table && outer_owner (cx, col->table) != NULL;
}

/* An outer column inside a correlated subquery: a $lookup variable bound by
 * the `let` of the level whose enclosing query has the column, to that
 * query's value of it (a GROUP BY key after its $group). The query right
 * around binds "$$o<i>"; one further out binds "$$d<level>_<i>", a name no
 * level between binds again: a $lookup's let variables are seen by the
 * stages of its pipeline, nested $lookup pipelines included.
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/lookup/ */
cx_t *
cx_outer_query (cx_t *cx, const dj_expr_t *col)
{
   cx_t *c = cx_is_outer (cx, col) ? outer_owner (cx, col->table) : NULL;
   return c ? c->outer : NULL;
}

bool
cx_outer_let (cx_t *cx, const dj_expr_t *col, cx_emit_fn value, bson_t *parent, const char *key)
{
   cx_t *c = outer_owner (cx, col->table);
   bool deep = c != cx;
   int level = 0;
   for (const cx_t *o = c; o->outer; o = o->outer) {
      level++;
   }
   bson_t val = BSON_INITIALIZER;
   bson_iter_t vi, it;
   if (!value (c->outer, col, &val, "v")) {
      bson_destroy (&val);
      return false;
   }
   bson_iter_init_find (&vi, &val, "v");
   /* the same outer value twice is one variable */
   char var[32], ref[40];
   var[0] = '\0';
   if (BSON_ITER_HOLDS_UTF8 (&vi) && bson_iter_init (&it, c->lets)) {
      while (bson_iter_next (&it)) {
         if (BSON_ITER_HOLDS_UTF8 (&it) && bson_iter_key (&it)[0] == (deep ? 'd' : 'o') &&
             !strcmp (bson_iter_utf8 (&it, NULL), bson_iter_utf8 (&vi, NULL))) {
            bson_strncpy (var, bson_iter_key (&it), sizeof var);
            break;
         }
      }
   }
   if (!var[0]) {
      if (deep) {
         snprintf (var, sizeof var, "d%d_%d", level, c->nlets++);
      } else {
         snprintf (var, sizeof var, "o%d", c->nlets++);
      }
      bson_append_iter (c->lets, var, -1, &vi);
   }
   bson_destroy (&val);
   snprintf (ref, sizeof ref, "$$%s", var);
   return BSON_APPEND_UTF8 (parent, key, ref);
}

bool
cx_append_field_ref (cx_t *cx, const dj_expr_t *col, bson_t *parent, const char *key)
{
   char path[512];
   path[0] = '$';
   if (!strcmp (col->name, "*")) {
      return cx_unsupported (cx, col->pos, "%s.* outside a SELECT list", col->table);
   }
   if (cx_is_outer (cx, col)) {
      return cx_outer_let (cx, col, cx_agg_value, parent, key);
   }
   if (!cx_column_path (cx, col, path + 1, sizeof path - 1)) {
      return false;
   }
   if (cx_path_has_index (col->name)) {
      return append_indexed_path (parent, key, path);
   }
   return BSON_APPEND_UTF8 (parent, key, path);
}
