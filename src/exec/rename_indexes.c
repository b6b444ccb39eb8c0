/*
 * rename_indexes.c -- ALTER TABLE RENAME COLUMN: the table's indexes follow
 * the column.
 *
 * SQL's indexes and UNIQUE constraints belong to the column, whatever its
 * name; MongoDB's index on "c" stays on "c" when $rename moves the values
 * to "d" (https://www.mongodb.com/docs/manual/reference/operator/update/rename/
 * changes documents only), so a UNIQUE column renamed would stop being
 * unique -- and, while the $rename runs, two renamed rows would both be
 * NULL under the old name, a duplicate key. So each index whose keys,
 * partialFilterExpression or text weights name the column (or a path into
 * it) is dropped before the rename and created after it, with the same
 * name and options, on the new name: a unique one is checked again as it
 * is built. Should the rename fail, the indexes come back as they were.
 *
 * DROP COLUMN drops the indexes that name the column, multi-column ones
 * too, as PostgreSQL does (https://www.postgresql.org/docs/current/sql-altertable.html:
 * "Indexes and table constraints involving the column will be
 * automatically dropped"); MongoDB's would index a field no row has.
 */
#include <string.h>

#include "exec-private.h"

/* A copy of doc's keys under out[key], each path into `from` moved to `to`;
 * *hit set when one was. */
static void
rename_keys (const bson_iter_t *doc, const char *key, const char *from, const char *to, bson_t *out, bool *hit)
{
   bson_iter_t it;
   bson_t child;
   bson_append_document_begin (out, key, -1, &child);
   if (bson_iter_recurse (doc, &it)) {
      while (bson_iter_next (&it)) {
         char *r = exec_renamed_path (bson_iter_key (&it), from, to);
         *hit |= r != NULL;
         bson_append_value (&child, r ? r : bson_iter_key (&it), -1, bson_iter_value (&it));
         bson_free (r);
      }
   }
   bson_append_document_end (out, &child);
}

/* The createIndexes spec of index `spec` with the column renamed into out
 * (from == to: the spec as it is); false when nothing in it names the
 * column. */
static bool
renamed_spec (const bson_t *spec, const char *from, const char *to, bson_t *out)
{
   bson_iter_t it;
   bool hit = false;
   if (!bson_iter_init (&it, spec)) {
      return false;
   }
   while (bson_iter_next (&it)) {
      const char *k = bson_iter_key (&it);
      if (!strcmp (k, "v") || !strcmp (k, "ns")) {
         continue; /* the server's own: createIndexes gives them again */
      }
      if ((!strcmp (k, "key") || !strcmp (k, "weights")) && BSON_ITER_HOLDS_DOCUMENT (&it)) {
         rename_keys (&it, k, from, to, out, &hit);
      } else if (!strcmp (k, "partialFilterExpression") && BSON_ITER_HOLDS_DOCUMENT (&it)) {
         uint32_t len;
         const uint8_t *data;
         bson_t filter, renamed = BSON_INITIALIZER;
         bson_iter_document (&it, &len, &data);
         bson_init_static (&filter, data, len);
         /* whether it reads the column: renamed to another name, it changes */
         char *other = bson_strdup_printf ("%s\x7f", from);
         bson_t probe = BSON_INITIALIZER;
         exec_rename_in_filter (&filter, from, other, &probe);
         hit |= !bson_equal (&filter, &probe);
         exec_rename_in_filter (&filter, from, to, &renamed);
         BSON_APPEND_DOCUMENT (out, k, &renamed);
         bson_destroy (&renamed);
         bson_destroy (&probe);
         bson_free (other);
      } else {
         bson_append_value (out, k, -1, bson_iter_value (&it));
      }
   }
   return hit;
}

/* Runs {cmd: table, key: name} (dropIndexes) or {cmd: table, indexes: [spec]}. */
static bool
index_command (dj_exec_t *x, const char *cmd_name, const char *table, const char *name, const bson_t *spec,
               bson_error_t *error)
{
   bson_t cmd = BSON_INITIALIZER, list, reply;
   BSON_APPEND_UTF8 (&cmd, cmd_name, table);
   if (spec) {
      BSON_APPEND_ARRAY_BEGIN (&cmd, "indexes", &list);
      BSON_APPEND_DOCUMENT (&list, "0", spec);
      bson_append_array_end (&cmd, &list);
   } else {
      BSON_APPEND_UTF8 (&cmd, "index", name);
   }
   bool ok = exec_run_cmd (x, x->db, &cmd, false, &reply, error);
   bson_destroy (&reply);
   bson_destroy (&cmd);
   return ok;
}

bool
exec_indexes_before_rename (dj_exec_t *x, const char *table, const char *from, const char *to, bson_t **moved,
                            bson_error_t *error)
{
   bson_t cmd = BSON_INITIALIZER, cursor, reply;
   bson_iter_t it, batch;
   *moved = bson_new ();
   /* every index in one batch: a collection has at most 64
    * (https://www.mongodb.com/docs/manual/reference/limits/#indexes) */
   BSON_APPEND_UTF8 (&cmd, "listIndexes", table);
   BSON_APPEND_DOCUMENT_BEGIN (&cmd, "cursor", &cursor);
   BSON_APPEND_INT32 (&cursor, "batchSize", 1000);
   bson_append_document_end (&cmd, &cursor);
   bool ok = exec_run_cmd (x, x->db, &cmd, false, &reply, error);
   if (!ok && error->domain == DJ_DOMAIN_SERVER && error->code == DJ_NamespaceNotFound) {
      memset (error, 0, sizeof *error); /* no table, no indexes: the rename says what is wrong */
   }
   /* {name: {old: spec, new: spec}} of the indexes that name the column */
   if (ok && bson_iter_init (&it, &reply) && bson_iter_find_descendant (&it, "cursor.firstBatch", &batch) &&
       BSON_ITER_HOLDS_ARRAY (&batch) && bson_iter_recurse (&batch, &it)) {
      bson_t spec;
      while (exec_next_document (&it, &spec)) {
         bson_iter_t name;
         bson_t renamed = BSON_INITIALIZER, both;
         if (bson_iter_init_find (&name, &spec, "name") && BSON_ITER_HOLDS_UTF8 (&name) &&
             strcmp (bson_iter_utf8 (&name, NULL), "_id_") && renamed_spec (&spec, from, to, &renamed)) {
            bson_t old = BSON_INITIALIZER;
            renamed_spec (&spec, from, from, &old); /* the spec as createIndexes takes it */
            BSON_APPEND_DOCUMENT_BEGIN (*moved, bson_iter_utf8 (&name, NULL), &both);
            BSON_APPEND_DOCUMENT (&both, "old", &old);
            BSON_APPEND_DOCUMENT (&both, "new", &renamed);
            bson_destroy (&old);
            bson_append_document_end (*moved, &both);
         }
         bson_destroy (&renamed);
      }
   }
   bson_destroy (&reply);
   bson_destroy (&cmd);
   if (ok && bson_iter_init (&it, *moved)) {
      while (ok && bson_iter_next (&it)) {
         ok = index_command (x, "dropIndexes", table, bson_iter_key (&it), NULL, error);
      }
   }
   return ok;
}

bool
exec_indexes_after_rename (dj_exec_t *x, const char *table, bson_t *moved, const char *which, bson_error_t *error)
{
   bson_iter_t it, spec;
   bool ok = true;
   if (which && bson_iter_init (&it, moved)) {
      while (ok && bson_iter_next (&it)) {
         uint32_t len;
         const uint8_t *data;
         bson_t one;
         if (bson_iter_recurse (&it, &spec) && bson_iter_find (&spec, which) &&
             BSON_ITER_HOLDS_DOCUMENT (&spec)) {
            bson_iter_document (&spec, &len, &data);
            bson_init_static (&one, data, len);
            ok = index_command (x, "createIndexes", table, NULL, &one, error);
         }
      }
   }
   bson_destroy (moved);
   return ok;
}
