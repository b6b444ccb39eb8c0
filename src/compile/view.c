/*
 * view.c -- CREATE VIEW v AS SELECT ...: a MongoDB view.
 *
 * The SELECT compiles as a query would (into a scratch dj_mql_t); its one
 * read becomes the view's pipeline -- a find's filter, sort, skip, limit and
 * projection as the stages $match, $sort, $skip, $limit, $project; an
 * aggregate's pipeline as it is -- followed by a $project that names each
 * result column as the SELECT does, so the view's documents have the
 * columns as fields: {create: v, viewOn: <the read's collection>, pipeline}.
 * The view is recorded in the tables collection with its columns (SELECT *
 * and introspection read them) and view: true. DROP VIEW drops it as a
 * table. A view over SELECT * (columns djongo cannot name here) or over a
 * statement of several commands (subqueries read first) is refused.
 * https://www.mongodb.com/docs/manual/core/views/
 */
#include <string.h>

#include "compile-private.h"

/* A find command's parts as pipeline stages into pipe (from *n on). */
static void
find_stages (const bson_t *find, bson_t *pipe, uint32_t *n)
{
   static const struct {
      const char *field, *stage;
   } parts[] = {{"filter", "$match"}, {"sort", "$sort"}, {"skip", "$skip"}, {"limit", "$limit"}, {"projection", "$project"}};
   for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
      bson_iter_t it;
      cx_idx_t k;
      bson_t st;
      if (!bson_iter_init_find (&it, find, parts[i].field)) {
         continue;
      }
      BSON_APPEND_DOCUMENT_BEGIN (pipe, cx_idx (&k, (*n)++), &st);
      bson_append_iter (&st, parts[i].stage, -1, &it);
      bson_append_document_end (pipe, &st);
   }
}

bool
cx_compile_create_view (cx_t *cx, const dj_sql_stmt_t *st)
{
   dj_mql_t read = {0}, *out = cx->out;
   cx->out = &read;
   bool ok = cx_compile_select (cx, st);
   cx->out = out;
   if (ok && (read.star || read.ncommands != 1 || read.kind != DJ_MQL_ROWS)) {
      ok = cx_unsupported (cx, st->select->pos, "a view over SELECT * or over a query with subqueries read first");
   }
   bson_iter_t it;
   if (!ok || !bson_iter_init (&it, read.commands[0]) || !bson_iter_next (&it) || !BSON_ITER_HOLDS_UTF8 (&it)) {
      dj_mql_cleanup (&read);
      return ok ? cx_unsupported (cx, st->select->pos, "a view over this query") : false;
   }
   bool find = !strcmp (bson_iter_key (&it), "find");
   bson_t *cmd = bson_new (), pipe, stage, proj, cols = BSON_INITIALIZER, entry;
   uint32_t n = 0;
   cx_idx_t k;
   BSON_APPEND_UTF8 (cmd, "create", st->table);
   BSON_APPEND_UTF8 (cmd, "viewOn", bson_iter_utf8 (&it, NULL));
   BSON_APPEND_ARRAY_BEGIN (cmd, "pipeline", &pipe);
   if (find) {
      find_stages (read.commands[0], &pipe, &n);
   } else if (bson_iter_init_find (&it, read.commands[0], "pipeline") && BSON_ITER_HOLDS_ARRAY (&it) &&
              bson_iter_recurse (&it, &it)) {
      while (bson_iter_next (&it)) {
         bson_append_iter (&pipe, cx_idx (&k, n++), -1, &it);
      }
   }
   /* each column under its SELECT name */
   BSON_APPEND_DOCUMENT_BEGIN (&pipe, cx_idx (&k, n++), &stage);
   BSON_APPEND_DOCUMENT_BEGIN (&stage, "$project", &proj);
   BSON_APPEND_INT32 (&proj, "_id", 0);
   for (int i = 0; i < read.ncolumns; i++) {
      char *ref = bson_strdup_printf ("$%s", read.columns[i].path);
      BSON_APPEND_UTF8 (&proj, read.columns[i].name, ref);
      BSON_APPEND_UTF8 (&cols, cx_idx (&k, (uint32_t) i), read.columns[i].name);
      bson_free (ref);
   }
   bson_append_document_end (&stage, &proj);
   bson_append_document_end (&pipe, &stage);
   bson_append_array_end (cmd, &pipe);
   if (read.engine_only && !out->engine_only) {
      out->engine_only = read.engine_only;
   }
   dj_mql_cleanup (&read);
   /* the entry: its columns, no types (a view's values are whatever its
    * query gives), view: true */
   bson_init (&entry);
   BSON_APPEND_ARRAY (&entry, "columns", &cols);
   BSON_APPEND_BOOL (&entry, "view", true);
   ok = cx_add_command (cx, cmd, 0, false);
   if (ok) {
      bson_t *rec = cx_template_new (cx, "{'update': '@0', 'updates': [{'q': {'table': '@1'}, 'u': {'$set': '@2'}, "
                                         "'upsert': true}]}",
                                     CX_ARGS (CX_STR (DJ_TABLES_COLLECTION), CX_STR (st->table), CX_DOC (&entry)));
      ok = cx_add_command_if (cx, rec != NULL, rec);
   }
   bson_destroy (&cols);
   bson_destroy (&entry);
   return ok;
}
