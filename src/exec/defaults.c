/*
 * defaults.c -- column DEFAULTs: an INSERT that leaves a column out gets the
 * column's DEFAULT, as SQL gives it. Django's own INSERTs write a
 * db_default's value themselves (features.supports_default_keyword_in_insert
 * is False); a raw INSERT that names fewer columns, and a bulk_create in
 * which every row takes a field's database default (Django leaves that
 * field out), need the database to fill it in.
 *
 * CREATE TABLE, ALTER TABLE ADD COLUMN and ALTER COLUMN SET/DROP DEFAULT
 * record each constant DEFAULT in the table's entry, defaults: {c: v}
 * (src/compile/ddl.c; RENAME and DROP COLUMN carry it along). Before an
 * INSERT runs, each document without c gets c: v -- before the stored
 * generated columns are computed, which may read it. A DEFAULT NULL has no
 * entry: a missing field reads as NULL.
 */
#include <string.h>

#include "exec-private.h"

/* exec_rewrite_documents' fn: doc with the defaults (ctx) it lacks. */
static bool
with_defaults (const bson_t *doc, const char *key, bson_t *arr, void *ctx, bson_error_t *error)
{
   (void) error;
   bson_iter_t d;
   bson_t nd;
   bson_append_document_begin (arr, key, -1, &nd);
   bson_concat (&nd, doc);
   if (bson_iter_init (&d, ctx)) {
      while (bson_iter_next (&d)) {
         if (!bson_has_field (doc, bson_iter_key (&d))) {
            bson_append_iter (&nd, NULL, 0, &d);
         }
      }
   }
   return bson_append_document_end (arr, &nd);
}

bool
exec_defaults_before (dj_exec_t *x, dj_mql_t *m, bson_error_t *error)
{
   bson_iter_t it;
   bool found;
   uint32_t len;
   const uint8_t *data;
   bson_t defs;
   if (m->kind != DJ_MQL_WRITE || m->stmt != DJ_STMT_INSERT || !m->collection || m->ncommands < 1 ||
       !bson_iter_init (&it, m->commands[0]) || !bson_iter_next (&it) || !BSON_ITER_IS_KEY (&it, "insert")) {
      return true;
   }
   if (!exec_entry_field (x, m->collection, "defaults", &it, &found, error)) {
      return false;
   }
   if (!found || !BSON_ITER_HOLDS_DOCUMENT (&it)) {
      return true;
   }
   bson_iter_document (&it, &len, &data);
   if (!bson_init_static (&defs, data, len) || bson_empty (&defs)) {
      return true;
   }
   return exec_rewrite_documents (m, with_defaults, &defs, error);
}
