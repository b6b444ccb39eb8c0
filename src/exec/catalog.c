/*
 * catalog.c -- dj_catalog_t over the table entries: what the compiler may
 * ask about a table's recorded columns (src/compile/dj_compile.h).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dj_buf.h"
#include "exec-private.h"

/*
 * The compiler asks about a column a dozen times per statement (each
 * reference: does the table record it, is it a DATETIME); reading the
 * answer out of the table's entry (a BSON document: the table's key in the
 * session's cache of entries, then "columns" or "types", then the name)
 * cost ~40,000 instructions per Django get(), a third of its execute().
 * The answers are therefore kept per table as a sorted array of the
 * entry's column names, each with its two flags, built at the first
 * question and dropped with the entries themselves (DDL, a rollback:
 * exec_forget_tables counts dj_exec.tables_gen up).
 */
typedef struct {
   char *name;       /* owned */
   bool recorded;    /* in the entry's columns */
   bool datetime;    /* its recorded type keeps microseconds (is_datetime_type) */
} catalog_col_t;

typedef struct {
   char *table;        /* owned */
   bool has_columns;   /* the entry has a columns array (else: unknown, ask no further) */
   catalog_col_t *cols; /* owned, ncols, sorted by name (strcmp) */
   size_t ncols;
} catalog_table_t;

struct exec_catalog {
   uint64_t gen;          /* the dj_exec.tables_gen the tables were read at */
   catalog_table_t *tables; /* owned, ntables (capacity cap) */
   size_t ntables, cap;
};

static bool is_datetime_type (const char *type);

/* An entry could not be read: the answer given (unknown) is not kept, and
 * the next question asks again; nor is a statement compiled with it
 * (dj_plan_bind_kept keeps commands per tables generation). */
static void
unread (dj_exec_t *x)
{
   x->tables_gen++;
}

/* *c at the table entry's recorded column names; false: no entry (or it
 * cannot be read: unknown is an answer here) */
static bool
catalog_column_list (void *ctx, const char *table, bson_iter_t *c)
{
   bson_iter_t it;
   bson_error_t error;
   bool found;
   if (!exec_entry_field (ctx, table, "columns", &it, &found, &error)) {
      unread (ctx);
      return false;
   }
   return found && BSON_ITER_HOLDS_ARRAY (&it) && bson_iter_recurse (&it, c);
}

static void
catalog_table_free (catalog_table_t *t)
{
   for (size_t j = 0; j < t->ncols; j++) {
      bson_free (t->cols[j].name);
   }
   DJ_FREE (t->cols, t->table);
}

static void
catalog_tables_clear (exec_catalog_t *cat)
{
   for (size_t i = 0; i < cat->ntables; i++) {
      catalog_table_free (&cat->tables[i]);
   }
   cat->ntables = 0;
}

void
exec_catalog_free (exec_catalog_t *cat)
{
   if (cat) {
      catalog_tables_clear (cat);
      DJ_FREE (cat->tables, cat);
   }
}

static int
col_cmp (const void *a, const void *b)
{
   return strcmp (((const catalog_col_t *) a)->name, ((const catalog_col_t *) b)->name);
}

/* The column `name` of t->cols (sorted), or NULL. */
static catalog_col_t *
find_col (const catalog_table_t *t, const char *name)
{
   catalog_col_t key = {.name = (char *) name};
   return t->ncols ? bsearch (&key, t->cols, t->ncols, sizeof *t->cols, col_cmp) : NULL;
}

/* The column `name` of t, added (neither flag set) when absent; t->cols
 * is sorted again by catalog_table_read once every name is in. */
static catalog_col_t *
add_col (catalog_table_t *t, size_t *cap, const char *name)
{
   for (size_t i = 0; i < t->ncols; i++) {
      if (!strcmp (t->cols[i].name, name)) {
         return &t->cols[i];
      }
   }
   DJ_GROW (t->cols, t->ncols, *cap, 8);
   t->cols[t->ncols] = (catalog_col_t) {.name = bson_strdup (name)};
   return &t->cols[t->ncols++];
}

/* *t built from the table's entry: its columns (recorded), and the types'
 * names (datetime). false when the entry cannot be read (nothing kept:
 * the next question asks again). */
static bool
catalog_table_read (dj_exec_t *x, const char *table, catalog_table_t *t)
{
   bson_iter_t it, c;
   bson_error_t error;
   bool found;
   size_t cap = 0;
   *t = (catalog_table_t) {0};
   if (!exec_entry_field (x, table, "columns", &it, &found, &error)) {
      return false;
   }
   t->has_columns = found && BSON_ITER_HOLDS_ARRAY (&it) && bson_iter_recurse (&it, &c);
   while (t->has_columns && bson_iter_next (&c)) {
      if (BSON_ITER_HOLDS_UTF8 (&c)) {
         add_col (t, &cap, bson_iter_utf8 (&c, NULL))->recorded = true;
      }
   }
   if (!exec_entry_field (x, table, "types", &it, &found, &error)) {
      catalog_table_free (t);
      return false;
   }
   if (found && BSON_ITER_HOLDS_DOCUMENT (&it) && bson_iter_recurse (&it, &c)) {
      while (bson_iter_next (&c)) {
         if (BSON_ITER_HOLDS_UTF8 (&c) && is_datetime_type (bson_iter_utf8 (&c, NULL))) {
            add_col (t, &cap, bson_iter_key (&c))->datetime = true;
         }
      }
   }
   if (t->ncols > 1) {
      qsort (t->cols, t->ncols, sizeof *t->cols, col_cmp);
   }
   t->table = bson_strdup (table);
   return true;
}

/* The kept answers for `table` (read now if need be), or NULL when its
 * entry cannot be read. Borrowed: valid until the next question. */
static const catalog_table_t *
catalog_table (dj_exec_t *x, const char *table)
{
   if (!x->catalog) {
      x->catalog = bson_malloc0 (sizeof *x->catalog);
      x->catalog->gen = dj_exec_tables_generation (x);
   }
   exec_catalog_t *cat = x->catalog;
   if (cat->gen != dj_exec_tables_generation (x)) {
      catalog_tables_clear (cat); /* the entries were dropped: so are their answers */
      cat->gen = dj_exec_tables_generation (x);
   }
   for (size_t i = 0; i < cat->ntables; i++) {
      if (!strcmp (cat->tables[i].table, table)) {
         return &cat->tables[i];
      }
   }
   catalog_table_t t;
   if (!catalog_table_read (x, table, &t)) {
      unread (x);
      return NULL;
   }
   DJ_GROW (cat->tables, cat->ntables, cat->cap, 8);
   cat->tables[cat->ntables] = t; /* cat owns it */
   return &cat->tables[cat->ntables++];
}

/* dj_catalog_t.has_column over the table entries; an entry that cannot be
 * read counts as unknown (false): the compiler then asks for a qualifier. */
static bool
catalog_has_column (void *ctx, const char *table, const char *column)
{
   const catalog_table_t *t = catalog_table (ctx, table);
   const catalog_col_t *c = t && t->has_columns ? find_col (t, column) : NULL;
   return c && c->recorded;
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
   const catalog_table_t *t = catalog_table (ctx, table);
   const catalog_col_t *c = t ? find_col (t, column) : NULL;
   return c && c->datetime;
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

