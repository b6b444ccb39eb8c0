/*
 * catalog.c -- dj_catalog_t over the table entries: what the compiler may
 * ask about a table's recorded columns (src/compile/dj_compile.h).
 */
#include <string.h>
#include <strings.h>

#include "exec-private.h"

/* *c at the table entry's recorded column names; false: no entry (or it
 * cannot be read: unknown is an answer here) */
static bool
catalog_column_list (void *ctx, const char *table, bson_iter_t *c)
{
   bson_iter_t it;
   bson_error_t error;
   bool found;
   return exec_entry_field (ctx, table, "columns", &it, &found, &error) && found && BSON_ITER_HOLDS_ARRAY (&it) &&
          bson_iter_recurse (&it, c);
}

/* dj_catalog_t.has_column over the table entries; an entry that cannot be
 * read counts as unknown (false): the compiler then asks for a qualifier. */
static bool
catalog_has_column (void *ctx, const char *table, const char *column)
{
   bson_iter_t c;
   if (!catalog_column_list (ctx, table, &c)) {
      return false;
   }
   while (bson_iter_next (&c)) {
      if (BSON_ITER_HOLDS_UTF8 (&c) && !strcmp (bson_iter_utf8 (&c, NULL), column)) {
         return true;
      }
   }
   return false;
}

/* Whether a recorded type keeps microseconds beside the date
 * (dj_compile.h): DATETIME, TIMESTAMP (with or without a time zone). */
static bool
is_datetime_type (const char *type)
{
   return !strncasecmp (type, "DATETIME", 8) || !strncasecmp (type, "TIMESTAMP", 9);
}

/* dj_catalog_t.is_datetime over the table entries' types */
bool
exec_catalog_is_datetime (void *ctx, const char *table, const char *column)
{
   bson_iter_t it, t;
   bson_error_t error;
   bool found;
   return exec_entry_field (ctx, table, "types", &it, &found, &error) && found && BSON_ITER_HOLDS_DOCUMENT (&it) &&
          bson_iter_recurse (&it, &t) && bson_iter_find (&t, column) && BSON_ITER_HOLDS_UTF8 (&t) &&
          is_datetime_type (bson_iter_utf8 (&t, NULL));
}

/* dj_catalog_t.columns over the table entries */
static bool
catalog_columns (void *ctx, const char *table, bson_t *names)
{
   bson_iter_t c;
   if (!catalog_column_list (ctx, table, &c)) {
      return false;
   }
   uint32_t n = 0;
   while (bson_iter_next (&c)) {
      if (BSON_ITER_HOLDS_UTF8 (&c)) {
         char kb[16];
         const char *key;
         bson_uint32_to_string (n++, &key, kb, sizeof kb);
         bson_append_utf8 (names, key, -1, bson_iter_utf8 (&c, NULL), -1);
      }
   }
   return true;
}

dj_catalog_t
dj_exec_catalog (dj_exec_t *x)
{
   return (dj_catalog_t) {
      .has_column = catalog_has_column, .is_datetime = exec_catalog_is_datetime, .columns = catalog_columns, .ctx = x};
}

