/*
 * exec.c -- runs a dj_mql_t over a transport (see dj_exec.h).
 */
#include <string.h>
#include <strings.h>

#include "dj_bson_array.h"
#include "dj_bson_walk.h"
#include "dj_buf.h"
#include "exec-private.h"


/* After DDL or a rollback: what was known of tables may have changed. */
void
exec_forget_tables (dj_exec_t *x)
{
   bson_reinit (x->tables);
   bson_reinit (x->plain);
   bson_reinit (x->refs);
   exec_blocks_forget (x, NULL);
   x->tables_gen++;
}

void
dj_exec_set_outside_run (dj_exec_t *x, dj_run_command_fn run)
{
   x->outside_run = run;
}

dj_exec_t *
dj_exec_new (dj_run_command_fn run, dj_txn_fn txn, void *ctx, const char *db)
{
   dj_exec_t *x = bson_malloc0 (sizeof *x);
   x->run = run;
   x->outside_run = run;
   x->txn = txn;
   x->ctx = ctx;
   x->db = bson_strdup (db);
   x->tables = bson_new ();
   x->plain = bson_new ();
   x->refs = bson_new ();
   x->fk_pending = bson_new ();
   return x;
}

void
dj_exec_destroy (dj_exec_t *x)
{
   if (x) {
      bson_destroy (x->tables);
      bson_destroy (x->plain);
      bson_destroy (x->refs);
      bson_destroy (x->fk_pending);
      exec_blocks_free (x);
      exec_catalog_free (x->catalog);
      bson_free (x->db);
      bson_free (x);
   }
}

const char *
dj_exec_db (const dj_exec_t *x)
{
   return x->db;
}

void
dj_result_cleanup (dj_result_t *r)
{
   if (r->held) {
      bson_free (r->rows); /* (a static view of held: bson_destroy leaves its struct) */
      bson_free (r->held);
   } else {
      bson_destroy (r->rows);
   }
   memset (r, 0, sizeof *r);
}

/* Runs one command. Write errors (reported with ok: 1) become the error,
 * except DuplicateKey ones when ignore_dups. */
bool
exec_run_cmd (dj_exec_t *x, const char *db, const bson_t *cmd, bool ignore_dups, bson_t *reply, bson_error_t *error)
{
   if (!x->run (x->ctx, db, cmd, reply, error)) {
      return false;
   }
   bson_iter_t it, a, e;
   if (bson_iter_init_find (&it, reply, "writeErrors") && BSON_ITER_HOLDS_ARRAY (&it) && bson_iter_recurse (&it, &a)) {
      while (bson_iter_next (&a)) {
         int64_t code = 0;
         const char *msg = "write error";
         if (!BSON_ITER_HOLDS_DOCUMENT (&a) || !bson_iter_recurse (&a, &e)) {
            continue;
         }
         while (bson_iter_next (&e)) {
            if (BSON_ITER_IS_KEY (&e, "code")) {
               code = bson_iter_as_int64 (&e);
            } else if (BSON_ITER_IS_KEY (&e, "errmsg") && BSON_ITER_HOLDS_UTF8 (&e)) {
               msg = bson_iter_utf8 (&e, NULL);
            }
         }
         if (!(ignore_dups && code == DJ_DuplicateKey)) {
            return dj_error_set (error, DJ_DOMAIN_SERVER, (uint32_t) code, "%s", msg);
         }
      }
   }
   return true;
}

/* Advances `arr` (an iterator over an array) to its next document, viewed
 * by *doc; other elements are skipped. false at the end. */
bool
exec_next_document (bson_iter_t *arr, bson_t *doc)
{
   while (bson_iter_next (arr)) {
      uint32_t len;
      const uint8_t *data;
      if (BSON_ITER_HOLDS_DOCUMENT (arr)) {
         bson_iter_document (arr, &len, &data);
         if (bson_init_static (doc, data, len)) {
            return true;
         }
      }
   }
   return false;
}

/* A batch of documents taken as rows as it is, when it is what
 * exec_rows_add_doc would make of it: every element a document, keyed by
 * its row's index (an engine's firstBatch into no rows yet) -- one copy of
 * the batch's bytes, not one per document and another of the rows. False,
 * nothing appended, otherwise. */
static bool
batch_as_rows (const uint8_t *data, uint32_t len, bson_t *rows, int64_t *nrows, exec_batch_t *defer)
{
   dj_bwalk_t w;
   bson_t view;
   int64_t n = *nrows;
   char kb[16];
   if (n >= UINT32_MAX) {
      return false;
   }
   size_t klen = dj_bson_array_key ((uint32_t) n, kb);
   /* each element read only when its key is the next index */
   dj_bwalk_init (&w, data, len);
   while (dj_bwalk_next_named (&w, kb)) {
      if (w.type != BSON_TYPE_DOCUMENT || w.val_len < 5 || n + 1 >= UINT32_MAX) {
         return false;
      }
      n++;
      klen = dj_bson_array_key_next (kb, klen);
   }
   /* (stopped before the end: a key out of its place) */
   if (w.bad || w.p < w.end || !bson_init_static (&view, data, len)) {
      return false;
   }
   if (defer && *nrows == 0 && rows->len == 5) {
      defer->data = data; /* (the caller keeps it, or copies it: run_rows) */
      defer->len = len;
   } else if (!bson_concat (rows, &view)) {
      return false;
   }
   *nrows = n;
   return true;
}

/* Rows of a cursor reply's batch; returns the cursor id (0: exhausted).
 * With `defer`, a batch of documents that would be the rows as it is
 * (batch_as_rows) is left where it is, in the reply, and *defer points to
 * it: the caller appends it, or keeps the reply. */
static int64_t
take_batch (const bson_t *reply, const char *batch_key, const dj_mql_t *m, bool docs, bson_t *rows, int64_t *nrows,
            exec_batch_t *defer)
{
   bson_iter_t it, cur;
   int64_t id = 0;
   if (!bson_iter_init_find (&it, reply, "cursor") || !bson_iter_recurse (&it, &cur)) {
      return 0;
   }
   while (bson_iter_next (&cur)) {
      if (BSON_ITER_IS_KEY (&cur, "id")) {
         id = bson_iter_as_int64 (&cur);
      } else if (!strcmp (bson_iter_key (&cur), batch_key) && BSON_ITER_HOLDS_ARRAY (&cur)) {
         /* the batch's documents (other elements skipped) */
         uint32_t len;
         const uint8_t *data;
         dj_bwalk_t w;
         exec_rows_t r;
         bson_iter_array (&cur, &len, &data);
         if (docs && batch_as_rows (data, len, rows, nrows, defer)) {
            continue;
         }
         exec_rows_begin (&r, rows, nrows);
         dj_buf_reserve (&r.b, (size_t) len + len / 2); /* rows take about the documents' room */
         dj_bwalk_init (&w, data, len);
         while (dj_bwalk_next (&w)) {
            bson_t doc;
            if (w.type == BSON_TYPE_DOCUMENT && bson_init_static (&doc, w.val, w.val_len)) {
               if (docs) {
                  exec_rows_add_doc (&r, &doc);
               } else {
                  exec_rows_add (&r, m, &doc);
               }
            }
         }
         exec_rows_end (&r);
      }
   }
   return id;
}

/* EXPLAIN: runs the explain command; its one row is [the reply as relaxed
 * Extended JSON text] (the plan, as MongoDB shows it). Outside the open
 * transaction: MongoDB refuses explain inside one ("Cannot run 'explain' in
 * a multi-document transaction") and leaves it aborted. */
static bool
run_explain (dj_exec_t *x, const bson_t *cmd, bson_t *rows, bson_error_t *error)
{
   bson_t reply, row;
   bool ok = x->outside_run (x->ctx, x->db, cmd, &reply, error);
   if (ok) {
      size_t len;
      char *json = bson_as_relaxed_extended_json (&reply, &len);
      bson_append_array_begin (rows, "0", 1, &row);
      bson_append_utf8 (&row, "0", 1, json, (int) len);
      bson_append_array_end (rows, &row);
      bson_free (json);
   }
   bson_destroy (&reply);
   return ok;
}

/* Makes *out's rows a read-only view of the batch (at `b`) of the cursor
 * reply `reply`, whose bytes out then owns (out->held): the reply is
 * consumed. False, nothing changed, when the reply's bytes cannot be
 * taken (a static reply: libbson's bson_steal refuses it). */
static bool
hold_batch (bson_t *reply, const exec_batch_t *b, dj_result_t *out)
{
   size_t at = (size_t) (b->data - bson_get_data (reply));
   bson_t kept;
   uint32_t total;
   if (!bson_steal (&kept, reply)) {
      return false;
   }
   /* the bytes, the reply's own buffer when it has one (a copy of them
    * when they were inline in the bson_t) */
   out->held = bson_destroy_with_steal (&kept, true, &total);
   /* (out->rows, as dj_exec_run made it, holds nothing to free; the batch
    * was checked as a document by batch_as_rows) */
   bson_init_static (out->rows, out->held + at, b->len);
   return true;
}

/* Runs a cursor-returning command and appends all its rows (getMore until
 * the cursor is exhausted). With `out` (a statement's result, its rows
 * `rows` so far empty), a cursor whose one batch is the rows as it is
 * leaves them in its reply, which out keeps (hold_batch). */
static bool
run_rows (dj_exec_t *x, const dj_mql_t *m, const bson_t *cmd, bool docs, bson_t *rows, int64_t *nrows,
          dj_result_t *out, bson_error_t *error)
{
   bson_t reply;
   exec_batch_t first = {0};
   bool ok = exec_run_cmd (x, x->db, cmd, false, &reply, error);
   int64_t id = ok ? take_batch (&reply, "firstBatch", m, docs, rows, nrows, out ? &first : NULL) : 0;
   bool held = first.data && id == 0 && hold_batch (&reply, &first, out);
   if (!held) {
      bson_t view;
      if (first.data && bson_init_static (&view, first.data, first.len)) {
         bson_concat (rows, &view); /* (more batches follow, or a static reply: a copy) */
      }
      bson_destroy (&reply);
   }
   while (ok && id != 0) {
      bson_t more = BSON_INITIALIZER;
      BSON_APPEND_INT64 (&more, "getMore", id);
      BSON_APPEND_UTF8 (&more, "collection", m->collection ? m->collection : "");
      ok = exec_run_cmd (x, x->db, &more, false, &reply, error);
      id = ok ? take_batch (&reply, "nextBatch", m, docs, rows, nrows, NULL) : 0;
      bson_destroy (&reply);
      bson_destroy (&more);
   }
   return ok;
}

/* ---- auto-increment keys ---- */

/* The table's entry in the tables collection ({table, columns, auto, seq}),
 * cached per session: *info views the cache (valid until the next DDL or
 * rollback); *found is false for a table CREATE TABLE never made. */
static bool
table_info (dj_exec_t *x, const char *table, bson_t *info, bool *found, bson_error_t *error)
{
   bson_iter_t it;
   uint32_t len;
   const uint8_t *data;
   if (!bson_iter_init_find (&it, x->tables, table)) {
      bson_t cmd = BSON_INITIALIZER, filter, reply;
      BSON_APPEND_UTF8 (&cmd, "find", DJ_TABLES_COLLECTION);
      BSON_APPEND_DOCUMENT_BEGIN (&cmd, "filter", &filter);
      BSON_APPEND_UTF8 (&filter, "table", table);
      bson_append_document_end (&cmd, &filter);
      BSON_APPEND_INT32 (&cmd, "limit", 1);
      bool ok = exec_run_cmd (x, x->db, &cmd, false, &reply, error);
      if (ok) {
         bson_iter_t d;
         if (bson_iter_init (&d, &reply) && bson_iter_find_descendant (&d, "cursor.firstBatch.0", &d) &&
             BSON_ITER_HOLDS_DOCUMENT (&d)) {
            bson_iter_document (&d, &len, &data);
            bson_t doc;
            bson_init_static (&doc, data, len);
            BSON_APPEND_DOCUMENT (x->tables, table, &doc);
         } else {
            BSON_APPEND_NULL (x->tables, table);
         }
      }
      bson_destroy (&reply);
      bson_destroy (&cmd);
      if (!ok) {
         return false;
      }
      bson_iter_init_find (&it, x->tables, table);
   }
   *found = BSON_ITER_HOLDS_DOCUMENT (&it);
   if (*found) {
      bson_iter_document (&it, &len, &data);
      bson_init_static (info, data, len);
   }
   return true;
}

/* The field `key` of the table's entry (*it points at it, valid until the
 * next DDL or rollback); *found is false when the table or the field is not
 * there. */
bool
exec_entry_field (dj_exec_t *x, const char *table, const char *key, bson_iter_t *it, bool *found, bson_error_t *error)
{
   bson_t info;
   bool has;
   *found = false;
   if (!table_info (x, table, &info, &has, error)) {
      return false;
   }
   *found = has && bson_iter_init_find (it, &info, key);
   return true;
}

uint64_t
dj_exec_tables_generation (const dj_exec_t *x)
{
   return x->tables_gen;
}

char *
dj_exec_column_type (dj_exec_t *x, const char *table, const char *column)
{
   bson_iter_t it, t;
   bson_error_t ignored; /* unknown is an answer here */
   bool found;
   if (table && column && exec_entry_field (x, table, "types", &it, &found, &ignored) && found &&
       BSON_ITER_HOLDS_DOCUMENT (&it) && bson_iter_recurse (&it, &t) && bson_iter_find (&t, column) &&
       BSON_ITER_HOLDS_UTF8 (&t)) {
      return bson_strdup (bson_iter_utf8 (&t, NULL));
   }
   return NULL;
}


/* Appends (to *cols, *n, *cap) the columns CREATE TABLE recorded for
 * `table`, each at "<prefix><column>" (prefix "" or "c0."); *found is false
 * when the table has no entry (a collection made elsewhere). */
static bool
recorded_columns (dj_exec_t *x, const char *table, const char *prefix, dj_mql_column_t **cols, int *n, int *cap,
                  bool *found, bson_error_t *error)
{
   bson_iter_t it, c;
   if (!exec_entry_field (x, table, "columns", &it, found, error)) {
      return false;
   }
   if (!*found || !BSON_ITER_HOLDS_ARRAY (&it) || !bson_iter_recurse (&it, &c)) {
      *found = false;
      return true;
   }
   while (bson_iter_next (&c)) {
      if (!BSON_ITER_HOLDS_UTF8 (&c)) {
         continue;
      }
      if (*n == *cap) {
         *cap = *cap ? *cap * 2 : 8;
         *cols = bson_realloc (*cols, sizeof **cols * (size_t) *cap);
      }
      (*cols)[*n].name = bson_strdup (bson_iter_utf8 (&c, NULL));
      (*cols)[*n].path = bson_strdup_printf ("%s%s", prefix, (*cols)[*n].name);
      (*cols)[*n].star_table = NULL;
      (*cols)[*n].us = exec_catalog_is_datetime (x, table, (*cols)[*n].name);
      (*n)++;
   }
   return true;
}

/* SELECT * over a table CREATE TABLE made: its columns, in their order
 * (a field a document lacks is NULL), instead of each document's own
 * fields -- SQL's rows, and names for cursor.description. */
static bool
expand_star (dj_exec_t *x, dj_mql_t *m, bson_error_t *error)
{
   int n = 0, cap = 0;
   dj_mql_column_t *cols = NULL;
   bool found;
   if (!recorded_columns (x, m->collection, "", &cols, &n, &cap, &found, error)) {
      bson_free (cols);
      return false;
   }
   if (!found) {
      bson_free (cols);
      return true; /* a collection from elsewhere: its documents' fields */
   }
   m->columns = cols; /* m owns them (dj_mql_cleanup) */
   m->ncolumns = n;
   m->star = false;
   return true;
}

static void
free_columns (dj_mql_column_t *cols, int n)
{
   for (int i = 0; i < n; i++) {
      bson_free (cols[i].name);
      bson_free (cols[i].path);
      bson_free (cols[i].star_table);
   }
   bson_free (cols);
}

/* The star columns of a SELECT the compiler could not expand (`t.*` with
 * joins or beside expressions: dj_mql_column_t.star_table): each becomes
 * its table's recorded columns, read from the row's document of that table. */
static bool
expand_star_columns (dj_exec_t *x, dj_mql_t *m, bson_error_t *error)
{
   int n = 0, cap = 0;
   dj_mql_column_t *cols = NULL;
   bool ok = true;
   for (int i = 0; ok && i < m->ncolumns; i++) {
      dj_mql_column_t *c = &m->columns[i];
      if (!c->star_table) {
         if (n == cap) {
            cap = cap ? cap * 2 : 8;
            cols = bson_realloc (cols, sizeof *cols * (size_t) cap);
         }
         cols[n++] = *c; /* moved: cols owns its strings now */
         *c = (dj_mql_column_t){0};
         continue;
      }
      bool found;
      char *prefix = bson_strdup_printf ("%s.", c->path);
      ok = recorded_columns (x, c->star_table, prefix, &cols, &n, &cap, &found, error);
      bson_free (prefix);
      if (ok && !found) {
         ok = dj_error_set (error, DJ_DOMAIN_SQL, DJ_SQL_UNSUPPORTED,
                            "not supported: %s in a SELECT with joins or expressions: \"%s\" has no columns "
                            "recorded by CREATE TABLE to expand it into",
                            c->name, c->star_table);
      }
   }
   free_columns (m->columns, m->ncolumns);
   if (!ok) {
      free_columns (cols, n);
      cols = NULL;
      n = 0;
   }
   m->columns = cols; /* m owns them (dj_mql_cleanup) */
   m->ncolumns = n;
   return ok;
}

/* The AUTOINCREMENT column of `table` (owned copy), or NULL if none. */
static bool
auto_column (dj_exec_t *x, const char *table, char **col, bson_error_t *error)
{
   bson_iter_t it;
   bool found;
   *col = NULL;
   if (!exec_entry_field (x, table, "auto", &it, &found, error)) {
      return false;
   }
   if (found && BSON_ITER_HOLDS_UTF8 (&it)) {
      *col = bson_strdup (bson_iter_utf8 (&it, NULL));
   }
   return true;
}

bool
exec_rewrite_documents (dj_mql_t *m, exec_doc_rewrite_fn fn, void *ctx, bson_error_t *error)
{
   bson_t *cmd = bson_new (), arr;
   bson_iter_t it, docs;
   bool ok = true;
   bson_iter_init (&it, m->commands[0]);
   while (bson_iter_next (&it)) {
      if (!BSON_ITER_IS_KEY (&it, "documents")) {
         bson_append_iter (cmd, NULL, 0, &it);
         continue;
      }
      bson_append_array_begin (cmd, "documents", -1, &arr);
      bson_iter_recurse (&it, &docs);
      while (ok && bson_iter_next (&docs)) {
         bson_t d;
         uint32_t len;
         const uint8_t *data;
         bson_iter_document (&docs, &len, &data);
         ok = bson_init_static (&d, data, len) && fn (&d, bson_iter_key (&docs), &arr, ctx, error);
      }
      bson_append_array_end (cmd, &arr);
   }
   if (!ok) {
      bson_destroy (cmd);
      return false;
   }
   bson_destroy (m->commands[0]);
   m->commands[0] = cmd; /* m owns it */
   return true;
}

typedef struct {
   bson_iter_t cols; /* the table's column list */
   uint32_t ncols;
   const char *table;
} positional_t;

static bool
positional_doc (const bson_t *d, const char *key, bson_t *arr, void *ctx, bson_error_t *error)
{
   positional_t *p = ctx;
   bson_iter_t f, cn;
   uint32_t nvals = 0;
   bson_t nd;
   bson_iter_init (&f, d);
   while (bson_iter_next (&f)) {
      nvals++;
   }
   if (nvals != p->ncols) {
      /* SQLite's wording */
      return dj_error_set (error, DJ_DOMAIN_SQL, DJ_SQL_SYNTAX, "table %s has %u columns but %u values were supplied",
                           p->table, p->ncols, nvals);
   }
   bson_append_document_begin (arr, key, -1, &nd);
   bson_iter_init (&f, d);
   bson_iter_recurse (&p->cols, &cn);
   while (bson_iter_next (&f) && bson_iter_next (&cn)) {
      bson_append_value (&nd, bson_iter_utf8 (&cn, NULL), -1, bson_iter_value (&f));
   }
   return bson_append_document_end (arr, &nd);
}

/* INSERT without a column list: renames the documents' "0", "1", ... to the
 * table's columns, in CREATE TABLE order (rewriting commands[0]). */
static bool
name_positional (dj_exec_t *x, dj_mql_t *m, bson_error_t *error)
{
   bson_iter_t cols;
   bool found;
   uint32_t ncols = 0;
   if (!exec_entry_field (x, m->collection, "columns", &cols, &found, error)) {
      return false;
   }
   if (!found || !BSON_ITER_HOLDS_ARRAY (&cols)) {
      return dj_error_set (error, DJ_DOMAIN_SQL, DJ_SQL_SYNTAX,
                           "INSERT INTO \"%s\" without a column list: the table's columns are unknown "
                           "(it was not made by CREATE TABLE); name the columns",
                           m->collection);
   }
   bson_iter_t c;
   bson_iter_recurse (&cols, &c);
   while (bson_iter_next (&c)) {
      if (BSON_ITER_HOLDS_UTF8 (&c)) {
         ncols++;
      }
   }
   positional_t p = {.cols = cols, .ncols = ncols, .table = m->collection};
   if (!exec_rewrite_documents (m, positional_doc, &p, error)) {
      return false;
   }
   m->positional = false;
   return true;
}

/* Whether doc's first `col` is missing or null (bson_iter_find's answer,
 * read from the bytes: dj_bson_walk.h -- every row of an INSERT, most of
 * them without the column, so walked to their end). */
static bool
lacks (const bson_t *doc, const char *col)
{
   dj_bwalk_t w;
   dj_bwalk_init (&w, bson_get_data (doc), doc->len);
   while (dj_bwalk_next (&w)) {
      if (!strcmp (w.key, col)) {
         return w.type == BSON_TYPE_NULL;
      }
   }
   return true;
}

/* Largest number in `col` of `table` (0 if none): the sorted walk uses the
 * column's unique index. 0 without a command when the engine reads
 * findAndModify's djongoMax: take_ids then has it read it. */
static bool
max_id (dj_exec_t *x, const char *table, const char *col, int64_t *out, bson_error_t *error)
{
   if (x->max_in_reserve) {
      *out = 0;
      return true;
   }
   bson_t cmd = BSON_INITIALIZER, filter, cond, sort, proj, reply;
   BSON_APPEND_UTF8 (&cmd, "find", table);
   BSON_APPEND_DOCUMENT_BEGIN (&cmd, "filter", &filter);
   BSON_APPEND_DOCUMENT_BEGIN (&filter, col, &cond);
   BSON_APPEND_UTF8 (&cond, "$type", "number");
   bson_append_document_end (&filter, &cond);
   bson_append_document_end (&cmd, &filter);
   BSON_APPEND_DOCUMENT_BEGIN (&cmd, "sort", &sort);
   BSON_APPEND_INT32 (&sort, col, -1);
   bson_append_document_end (&cmd, &sort);
   BSON_APPEND_DOCUMENT_BEGIN (&cmd, "projection", &proj);
   BSON_APPEND_INT32 (&proj, col, 1);
   bson_append_document_end (&cmd, &proj);
   BSON_APPEND_INT32 (&cmd, "limit", 1);
   *out = 0;
   bool ok = exec_run_cmd (x, x->db, &cmd, false, &reply, error);
   bson_iter_t it, f;
   if (ok && bson_iter_init (&it, &reply) && bson_iter_find_descendant (&it, "cursor.firstBatch.0", &it) &&
       BSON_ITER_HOLDS_DOCUMENT (&it) && bson_iter_recurse (&it, &f) && bson_iter_find (&f, col) &&
       BSON_ITER_HOLDS_NUMBER (&f)) {
      *out = bson_iter_as_int64 (&f);
   }
   bson_destroy (&reply);
   bson_destroy (&cmd);
   return ok;
}

/* Advances the table's counter past max(counter, maxid) by n, atomically;
 * *last = the new counter value (the ids are last - n + 1 .. last). A
 * failed INSERT leaves a gap, as SQLite's and PostgreSQL's sequences do.
 * With `col` and an engine that reads findAndModify's djongoMax
 * (src/engine/commands/maxof.c), past the largest number in `col` of the
 * table too, read by the command itself: max_id's find and this in one
 * command, over the wire one round trip. */
static bool
take_ids (dj_exec_t *x, const char *table, const char *col, int64_t maxid, int64_t n, int64_t *last, bson_error_t *error)
{
   /* the command written in its own shape (BCON) rather than as a begin/end
    * call per nested level; the values are typed (BCON_UTF8 ...), so that no
    * table or column name can be read as BCON's "{" or "[" */
   bson_t reply, *cmd;
   if (col && x->max_in_reserve) {
      /* [{$set: {seq: {$add: [{$max: [{$ifNull: ["$seq", 0]}, maxid, "$$djongoMax"]}, n]}}}],
       * djongoMax: {collection: table, field: col} */
      cmd = BCON_NEW ("findAndModify", BCON_UTF8 (DJ_TABLES_COLLECTION), "query", "{", "table", BCON_UTF8 (table), "}",
                      "update", "[", "{", "$set", "{", "seq", "{", "$add", "[", "{", "$max", "[", "{", "$ifNull", "[",
                      BCON_UTF8 ("$seq"), BCON_INT64 (0), "]", "}", BCON_INT64 (maxid), BCON_UTF8 ("$$djongoMax"), "]", "}",
                      BCON_INT64 (n), "]", "}", "}", "}", "]", "new", BCON_BOOL (true), "upsert", BCON_BOOL (true),
                      "djongoMax", "{", "collection", BCON_UTF8 (table), "field", BCON_UTF8 (col), "}");
   } else {
      /* [{$set: {seq: {$add: [{$max: [{$ifNull: ["$seq", 0]}, maxid]}, n]}}}] */
      cmd = BCON_NEW ("findAndModify", BCON_UTF8 (DJ_TABLES_COLLECTION), "query", "{", "table", BCON_UTF8 (table), "}",
                      "update", "[", "{", "$set", "{", "seq", "{", "$add", "[", "{", "$max", "[", "{", "$ifNull", "[",
                      BCON_UTF8 ("$seq"), BCON_INT64 (0), "]", "}", BCON_INT64 (maxid), "]", "}", BCON_INT64 (n), "]", "}",
                      "}", "}", "]", "new", BCON_BOOL (true), "upsert", BCON_BOOL (true));
   }
   bool ok = exec_run_cmd (x, x->db, cmd, false, &reply, error);
   bson_iter_t it;
   if (ok) {
      if (bson_iter_init (&it, &reply) && bson_iter_find_descendant (&it, "value.seq", &it) && BSON_ITER_HOLDS_NUMBER (&it)) {
         *last = bson_iter_as_int64 (&it);
      } else {
         ok = dj_error_set (error, DJ_DOMAIN_SERVER, DJ_InternalError, "the id counter of \"%s\" did not advance", table);
      }
   }
   bson_destroy (&reply);
   bson_destroy (cmd);
   return ok;
}

/* DJ_TABLES_IMPLICIT: an INSERT into a table without an entry, RETURNING a
 * column none of its documents gives, records that column as the table's
 * AUTOINCREMENT key ($setOnInsert: an entry made meanwhile stays). */
static bool
register_implicit (dj_exec_t *x, const dj_mql_t *m, bson_error_t *error)
{
   bson_iter_t it, docs;
   bool found;
   if (m->ncolumns < 1) {
      return true; /* no RETURNING: nothing says which column is the key */
   }
   if (!exec_entry_field (x, m->collection, "table", &it, &found, error)) {
      return false;
   }
   if (found) {
      return true;
   }
   const char *col = m->columns[0].path;
   if (bson_iter_init_find (&it, m->commands[0], "documents") && bson_iter_recurse (&it, &docs)) {
      while (bson_iter_next (&docs)) {
         bson_iter_t f;
         if (bson_iter_recurse (&docs, &f) && bson_iter_find (&f, col) && !BSON_ITER_HOLDS_NULL (&f)) {
            return true; /* the RETURNING column is given: not a key to make */
         }
      }
   }
   bson_t reply, *cmd = BCON_NEW ("update", BCON_UTF8 (DJ_TABLES_COLLECTION), "updates", "[", "{", /* see take_ids */
                                  "q", "{", "table", BCON_UTF8 (m->collection), "}",
                                  "u", "{", "$setOnInsert", "{", "auto", BCON_UTF8 (col), "seq", BCON_INT64 (0), "}", "}",
                                  "upsert", BCON_BOOL (true), "}", "]");
   bool ok = exec_run_cmd (x, x->db, cmd, false, &reply, error);
   bson_destroy (&reply);
   bson_destroy (cmd);
   exec_forget_tables (x); /* the entry is there now */
   return ok;
}

typedef struct {
   const char *col; /* the AUTOINCREMENT column */
   uint32_t col_len;
   bool key_as_id;  /* the table's entry says idkey: a row's _id is its key (with_id_doc) */
   int64_t next;    /* the next id to give */
   dj_result_t *out;
   dj_buf_t doc; /* owned: the document being written, reused row after row */
} with_ids_t;

/* An element's type and key (its NUL included) appended to b. */
static void
put_elem_head (dj_buf_t *b, bson_type_t type, const char *key, size_t key_len)
{
   dj_buf_putc (b, (uint8_t) type);
   dj_buf_append (b, key, key_len + 1);
}

/* An integer element: int32 when it fits (what pymongo stores for a small
 * int), else int64. */
static void
put_int_elem (dj_buf_t *b, const char *key, size_t key_len, int64_t v)
{
   if (v >= INT32_MIN && v <= INT32_MAX) {
      put_elem_head (b, BSON_TYPE_INT32, key, key_len);
      dj_buf_put_u32le (b, (uint32_t) (int32_t) v);
   } else {
      put_elem_head (b, BSON_TYPE_INT64, key, key_len);
      dj_buf_put_u32le (b, (uint32_t) ((uint64_t) v & 0xffffffffu));
      dj_buf_put_u32le (b, (uint32_t) ((uint64_t) v >> 32));
   }
}

/* One document of an INSERT into a table with an AUTOINCREMENT column:
 * one without the column (or with null there) is given the next id. One
 * without an _id is given one, first, as MongoDB's drivers give one before
 * an insert (the engine then stores the document as it comes instead of
 * copying it to put an _id first, and an insert retried over the wire
 * carries the same _id): its key when the table's entry says idkey (its
 * CREATE TABLE, src/compile/ddl.c, asked for the _id index record-keyed:
 * the row then has no ObjectId nor _id index entry of its own,
 * src/engine/storage/ridkey.c), else an ObjectId. An explicit key that is
 * no integer leaves the _id to the engine. */
static bool
with_id_doc (const bson_t *d, const char *key, bson_t *arr, void *ctx, bson_error_t *error)
{
   with_ids_t *w = ctx;
   bson_t nd;
   bool has_col = false, has_id = false;
   uint8_t key_type = 0;
   const uint8_t *key_val = NULL;
   uint32_t key_len = 0;
   (void) error;
   /* one look at the keys, read from the bytes (dj_bson_walk.h): the
    * column (its first occurrence decides, as lacks() reads it) and _id */
   dj_bwalk_t kw;
   dj_bwalk_init (&kw, bson_get_data (d), d->len);
   while (dj_bwalk_next (&kw)) {
      if (!has_col && kw.key_len == w->col_len && !memcmp (kw.key, w->col, kw.key_len)) {
         has_col = true;
         if (kw.type != BSON_TYPE_NULL) {
            key_type = kw.type;
            key_val = kw.val;
            key_len = kw.val_len;
         }
      } else if (kw.key_len == 3 && !memcmp (kw.key, "_id", 3)) {
         has_id = true;
      }
   }
   bool explicit_key = key_type != 0;
   if (explicit_key && (has_id || !w->key_as_id || (key_type != BSON_TYPE_INT32 && key_type != BSON_TYPE_INT64))) {
      return bson_append_document (arr, key, -1, d);
   }
   /* the new document written as bytes into w->doc and appended in one
    * copy, not element by element through libbson (a bulk INSERT's
    * every row) */
   dj_buf_t *b = &w->doc;
   b->len = 0;
   dj_buf_reserve (b, d->len + 48 + w->col_len);
   dj_buf_put_u32le (b, 0); /* the length, set below */
   if (explicit_key) {
      put_elem_head (b, (bson_type_t) key_type, "_id", 3);
      dj_buf_append (b, key_val, key_len);
      dj_buf_append (b, bson_get_data (d) + 4, d->len - 5);
   } else {
      w->out->lastrowid = w->next;
      w->out->has_lastrowid = true;
      int64_t id = w->next++;
      if (!has_id && w->key_as_id) {
         put_int_elem (b, "_id", 3, id);
      } else if (!has_id) {
         bson_oid_t oid;
         bson_oid_init (&oid, NULL);
         put_elem_head (b, BSON_TYPE_OID, "_id", 3);
         dj_buf_append (b, oid.bytes, sizeof oid.bytes);
      }
      put_int_elem (b, w->col, w->col_len, id);
      if (!has_col) {
         dj_buf_append (b, bson_get_data (d) + 4, d->len - 5); /* the row's fields as they are, in one copy */
      } else {
         dj_bwalk_init (&kw, bson_get_data (d), d->len);
         while (dj_bwalk_next (&kw)) {
            if (kw.key_len != w->col_len || memcmp (kw.key, w->col, kw.key_len)) {
               size_t elen;
               const uint8_t *e = dj_bwalk_elem (&kw, &elen);
               dj_buf_append (b, e, elen);
            }
         }
      }
   }
   dj_buf_putc (b, 0);
   dj_le32_write (b->data, (uint32_t) b->len);
   return bson_init_static (&nd, b->data, b->len) && bson_append_document (arr, key, -1, &nd);
}

/* The documents of m's INSERT through with_id_doc (col: the table's
 * AUTOINCREMENT column; next: the first id to give). */
static bool
rewrite_ids (dj_mql_t *m, const char *col, bool key_as_id, int64_t next, dj_result_t *out, bson_error_t *error)
{
   with_ids_t w = {.col = col, .col_len = (uint32_t) strlen (col), .key_as_id = key_as_id, .next = next, .out = out};
   dj_buf_init (&w.doc);
   bool ok = exec_rewrite_documents (m, with_id_doc, &w, error);
   dj_buf_cleanup (&w.doc);
   return ok;
}

/* Gives the documents of an INSERT that lack the table's AUTOINCREMENT
 * column their ids (rewriting commands[0]); sets lastrowid. */
static bool
assign_ids (dj_exec_t *x, dj_mql_t *m, dj_result_t *out, bson_error_t *error)
{
   char *col = NULL;
   bson_iter_t it, docs;
   int64_t n = 0, last = 0, maxid = 0, explicit_max = INT64_MIN;
   if (x->tables_mode == DJ_TABLES_IMPLICIT && !register_implicit (x, m, error)) {
      return false;
   }
   if (!auto_column (x, m->collection, &col, error)) {
      return false;
   }
   if (!col) {
      return true;
   }
   bool found;
   if (!exec_entry_field (x, m->collection, "idkey", &it, &found, error)) {
      bson_free (col);
      return false;
   }
   bool key_as_id = found && bson_iter_as_bool (&it);
   bool ok = bson_iter_init_find (&it, m->commands[0], "documents") && bson_iter_recurse (&it, &docs);
   bson_t d;
   while (ok && exec_next_document (&docs, &d)) {
      if (lacks (&d, col)) {
         n++;
      } else {
         bson_iter_t idit;
         if (bson_iter_init_find (&idit, &d, col) && BSON_ITER_HOLDS_NUMBER (&idit)) {
            out->lastrowid = bson_iter_as_int64 (&idit); /* an explicit key */
            out->has_lastrowid = true;
            explicit_max = out->lastrowid > explicit_max ? out->lastrowid : explicit_max;
         }
      }
   }
   if (explicit_max != INT64_MIN) {
      exec_blocks_forget (x, m->collection); /* the explicit id may lie in this connection's block */
   }
   if (n == 0) {
      /* explicit keys advance the counter too: an id once used is not handed
       * out again even after its row is deleted (SQLite's AUTOINCREMENT) */
      if (ok && explicit_max != INT64_MIN) {
         ok = take_ids (x, m->collection, NULL, explicit_max, 0, &last, error);
      }
      if (ok && key_as_id) {
         ok = rewrite_ids (m, col, true, 0, out, error); /* each row's key as its _id too */
      }
      bson_free (col);
      return ok;
   }
   int64_t id, want = 0;
   if (ok && n == 1 && explicit_max == INT64_MIN && !x->stmt_in_txn && !x->blocks_off) {
      /* one row outside a transaction: an id from this connection's block (idblock.c) */
      if (!exec_block_next (x, m->collection, &id, &want)) {
         ok = max_id (x, m->collection, col, &maxid, error) && take_ids (x, m->collection, col, maxid, want, &last, error);
         if (ok) {
            exec_block_set (x, m->collection, last - want + 1, last);
            exec_block_next (x, m->collection, &id, &want);
         }
      }
      x->block_used = ok;
      ok = ok && rewrite_ids (m, col, key_as_id, id, out, error);
      bson_free (col);
      return ok;
   }
   ok = max_id (x, m->collection, col, &maxid, error);
   if (ok && explicit_max > maxid) {
      maxid = explicit_max; /* explicit keys in this very batch */
   }
   ok = ok && take_ids (x, m->collection, col, maxid, n, &last, error);
   /* the documents again, the ids given in document order */
   ok = ok && rewrite_ids (m, col, key_as_id, last - n + 1, out, error);
   bson_free (col);
   return ok;
}

static bool listed (const bson_iter_t *list, const char *name);

/* Whether the index spec `ix` ({key, unique, partialFilterExpression..})
 * is a unique index on exactly the columns `keys` lists. */
static bool
index_is_target (const bson_t *ix, const bson_iter_t *keys)
{
   bson_iter_t it, k, f;
   bool unique = bson_iter_init_find (&it, ix, "unique") && bson_iter_as_bool (&it);
   bool is_id = bson_iter_init_find (&it, ix, "name") && BSON_ITER_HOLDS_UTF8 (&it) &&
                !strcmp (bson_iter_utf8 (&it, NULL), "_id_");
   if ((!unique && !is_id) || !bson_iter_init_find (&it, ix, "key") || !bson_iter_recurse (&it, &f)) {
      return false;
   }
   /* partial: only the form UNIQUE over nullable columns takes (each key
    * {$type: [the non-null types]}, src/compile/ddl.c), which is SQL's
    * plain UNIQUE; a conditional index is not a target without ON
    * CONFLICT ... WHERE, as in SQLite */
   bson_iter_t pf, cond;
   if (bson_iter_init_find (&pf, ix, "partialFilterExpression")) {
      if (!BSON_ITER_HOLDS_DOCUMENT (&pf) || !bson_iter_recurse (&pf, &pf)) {
         return false;
      }
      while (bson_iter_next (&pf)) {
         if (!listed (keys, bson_iter_key (&pf)) || !BSON_ITER_HOLDS_DOCUMENT (&pf) || !bson_iter_recurse (&pf, &cond) ||
             !bson_iter_next (&cond) || strcmp (bson_iter_key (&cond), "$type") || bson_iter_next (&cond)) {
            return false;
         }
      }
   }
   uint32_t nkey = 0, nlisted = 0;
   while (bson_iter_next (&f)) {
      nkey++;
      if (!listed (keys, bson_iter_key (&f))) {
         return false;
      }
   }
   bson_iter_recurse (keys, &k);
   while (bson_iter_next (&k)) {
      nlisted++;
   }
   return nkey == nlisted;
}

/* ON CONFLICT (cols) DO UPDATE: as SQLite, the conflict target must be the
 * columns of a unique index (the primary key's included), else the
 * statement is an error -- an upsert keyed on other columns would update
 * rows no constraint ties together. */
static bool
check_conflict_target (dj_exec_t *x, const dj_mql_t *m, bson_error_t *error)
{
   bson_iter_t keys, it, batch;
   if (!bson_iter_init_find (&keys, m->upsert, "keys")) {
      return true;
   }
   bson_t cmd = BSON_INITIALIZER, reply;
   BSON_APPEND_UTF8 (&cmd, "listIndexes", m->collection);
   /* outside the transaction: a server refuses listIndexes in one */
   bool ok = x->outside_run (x->ctx, x->db, &cmd, &reply, error), found = false;
   /* the indexes of a table fit one batch (MongoDB allows 64) */
   if (ok && bson_iter_init (&it, &reply) && bson_iter_find_descendant (&it, "cursor.firstBatch", &batch) &&
       bson_iter_recurse (&batch, &it)) {
      bson_t ix;
      while (!found && exec_next_document (&it, &ix)) {
         found = index_is_target (&ix, &keys);
      }
   }
   bson_destroy (&reply);
   bson_destroy (&cmd);
   if (ok && !found) {
      /* SQLite's words */
      return dj_error_set (error, DJ_DOMAIN_SQL, DJ_SQL_SYNTAX,
                           "ON CONFLICT clause does not match any PRIMARY KEY or UNIQUE constraint");
   }
   return ok;
}

/* RETURNING: the columns of each document of the insert `cmd`, in order. */
static void
returning_rows (const bson_t *cmd, const dj_mql_t *m, dj_result_t *out)
{
   bson_iter_t it, docs;
   int64_t nrows = 0;
   if (!bson_iter_init_find (&it, cmd, "documents") || !bson_iter_recurse (&it, &docs)) {
      return;
   }
   bson_t d;
   exec_rows_t r; /* the rows written into one buffer, appended once */
   exec_rows_begin (&r, out->rows, &nrows);
   while (exec_next_document (&docs, &d)) {
      exec_rows_add (&r, m, &d);
   }
   exec_rows_end (&r);
}

/* Whether the update reply's upserted list ({u: [{index, _id}, ...]})
 * names statement i. */
static bool
was_upserted (const bson_t *upserted, int64_t i)
{
   bson_iter_t it, one, f;
   if (!bson_iter_init_find (&it, upserted, "u") || !bson_iter_recurse (&it, &one)) {
      return false;
   }
   while (bson_iter_next (&one)) {
      if (bson_iter_recurse (&one, &f) && bson_iter_find (&f, "index") && BSON_ITER_HOLDS_NUMBER (&f) &&
          bson_iter_as_int64 (&f) == i) {
         return true;
      }
   }
   return false;
}

/* RETURNING of INSERT ... ON CONFLICT DO UPDATE: a row that was inserted
 * returns its document (`inserted`, the insert the upserts were made
 * from); one that updated a stored row returns that row as it is now,
 * found by the upsert's q (its keys) -- SQLite's RETURNING of an upsert. */
static bool
returning_upserts (dj_exec_t *x, const dj_mql_t *m, const bson_t *inserted, const bson_t *upserted, dj_result_t *out,
                   bson_error_t *error)
{
   bson_iter_t it, docs, ups, q;
   bson_t d;
   int64_t i = 0, nrows = 0;
   if (!bson_iter_init_find (&it, inserted, "documents") || !bson_iter_recurse (&it, &docs) ||
       !bson_iter_init_find (&it, m->commands[0], "updates") || !bson_iter_recurse (&it, &ups)) {
      return true;
   }
   bool ok = true;
   while (ok && exec_next_document (&docs, &d) && bson_iter_next (&ups)) {
      if (was_upserted (upserted, i++)) {
         exec_append_row (m, &d, out->rows, &nrows);
         continue;
      }
      bson_t cmd = BSON_INITIALIZER, reply;
      BSON_APPEND_UTF8 (&cmd, "find", m->collection);
      if (bson_iter_recurse (&ups, &q) && bson_iter_find (&q, "q")) {
         bson_append_iter (&cmd, "filter", 6, &q);
      }
      BSON_APPEND_INT32 (&cmd, "limit", 1);
      ok = exec_run_cmd (x, x->db, &cmd, false, &reply, error);
      bson_iter_t row;
      uint32_t len;
      const uint8_t *data;
      bson_t found;
      if (ok && bson_iter_init (&row, &reply) && bson_iter_find_descendant (&row, "cursor.firstBatch.0", &row) &&
          BSON_ITER_HOLDS_DOCUMENT (&row)) {
         bson_iter_document (&row, &len, &data);
         bson_init_static (&found, data, len);
         exec_append_row (m, &found, out->rows, &nrows);
      }
      bson_destroy (&reply);
      bson_destroy (&cmd);
   }
   return ok;
}

void
dj_exec_set_tables_mode (dj_exec_t *x, dj_tables_mode_t mode)
{
   x->tables_mode = mode;
}

void
dj_exec_set_engine_ops (dj_exec_t *x, bool available)
{
   x->engine_ops = available;
}

void
dj_exec_set_row_docs (dj_exec_t *x, bool on)
{
   x->row_docs = on;
}

/* ---- NOT NULL ---- */

/* Whether `name` is in the array at `list`. */
static bool
listed (const bson_iter_t *list, const char *name)
{
   bson_iter_t it;
   if (!BSON_ITER_HOLDS_ARRAY (list) || !bson_iter_recurse (list, &it)) {
      return false;
   }
   while (bson_iter_next (&it)) {
      if (BSON_ITER_HOLDS_UTF8 (&it) && !strcmp (bson_iter_utf8 (&it, NULL), name)) {
         return true;
      }
   }
   return false;
}

/* The first field of doc set to null that `notnull` lists, or NULL. */
static const char *
null_in (const bson_iter_t *notnull, const bson_t *doc)
{
   dj_bwalk_t w; /* (every row of an INSERT: the keys read from the bytes) */
   dj_bwalk_init (&w, bson_get_data (doc), doc->len);
   while (dj_bwalk_next (&w)) {
      if (w.type == BSON_TYPE_NULL && listed (notnull, w.key)) {
         return w.key;
      }
   }
   return NULL;
}

/* The $set of an update statement's u: {$set: {...}}, or a pipeline's
 * first {$set: {...}} stage (UPDATE ... SET with expressions). */
static bool
update_set (const bson_iter_t *u, bson_t *set)
{
   bson_iter_t it;
   uint32_t len;
   const uint8_t *data;
   if (BSON_ITER_HOLDS_ARRAY (u) && bson_iter_recurse (u, &it) && bson_iter_next (&it) &&
       BSON_ITER_HOLDS_DOCUMENT (&it)) {
      bson_iter_recurse (&it, &it);
   } else if (!(BSON_ITER_HOLDS_DOCUMENT (u) && bson_iter_recurse (u, &it))) {
      return false;
   }
   if (!bson_iter_find (&it, "$set") || !BSON_ITER_HOLDS_DOCUMENT (&it)) {
      return false;
   }
   bson_iter_document (&it, &len, &data);
   return bson_init_static (set, data, len);
}

/* SQL's NOT NULL for the columns CREATE/ALTER TABLE declared so: an INSERT
 * or UPDATE that sets one to NULL fails (IntegrityError through the
 * driver: MongoDB's DocumentValidationFailure). A column an INSERT leaves
 * out is not checked (a database default may stand for it), nor a value
 * computed by an expression. Documents other tools write are theirs. */
static bool
check_not_null (dj_exec_t *x, const dj_mql_t *m, bson_error_t *error)
{
   bson_iter_t notnull, it, items, f;
   bool found;
   if (!exec_entry_field (x, m->collection, "notnull", &notnull, &found, error)) {
      return false;
   }
   if (!found || !BSON_ITER_HOLDS_ARRAY (&notnull)) {
      return true;
   }
   bool insert = bson_iter_init_find (&it, m->commands[0], "documents");
   if (!insert && !bson_iter_init_find (&it, m->commands[0], "updates")) {
      return true;
   }
   if (!bson_iter_recurse (&it, &items)) {
      return true;
   }
   bson_t doc;
   while (exec_next_document (&items, &doc)) {
      if (!insert && !(bson_iter_init_find (&f, &doc, "u") && update_set (&f, &doc))) {
         continue;
      }
      const char *col = null_in (&notnull, &doc);
      if (col) {
         /* SQLite's words */
         return dj_error_set (error, DJ_DOMAIN_SERVER, DJ_DocumentValidationFailure,
                              "NOT NULL constraint failed: %s.%s", m->collection, col);
      }
   }
   return true;
}

/* ---- transactions ---- */

bool
dj_exec_txn (dj_exec_t *x, dj_txn_op_t op, const char *name, bson_error_t *error)
{
   if (!x->txn) {
      if (op == DJ_TXN_ACTIVE || op == DJ_TXN_STMT_BEGIN || op == DJ_TXN_STMT_COMMIT || op == DJ_TXN_STMT_ABORT) {
         return op != DJ_TXN_ACTIVE; /* never active; statement units are no-ops */
      }
      return dj_error_set (error, DJ_DOMAIN_SQL, DJ_SQL_UNSUPPORTED, "not supported: transactions on this connection");
   }
   if (op == DJ_TXN_ROLLBACK || op == DJ_TXN_ROLLBACK_TO) {
      /* a CREATE/DROP TABLE may have been undone */
      exec_forget_tables (x);
   }
   if (op == DJ_TXN_ROLLBACK) {
      exec_fk_forget (x);
   }
   /* deferred FOREIGN KEY checks: a violation fails the COMMIT and leaves
    * the transaction open (SQLite's rule), for the caller to roll back */
   if (op == DJ_TXN_COMMIT && x->fk_npending && x->txn (x->ctx, DJ_TXN_ACTIVE, NULL, NULL) && !exec_fk_commit (x, error)) {
      return false;
   }
   bool ok = x->txn (x->ctx, op, name, error);
   if (op == DJ_TXN_COMMIT) {
      exec_fk_forget (x);
   }
   return ok;
}

static bool
run_txn_statement (dj_exec_t *x, const dj_mql_t *m, bson_error_t *error)
{
   static const dj_txn_op_t ops[] = {[DJ_STMT_BEGIN] = DJ_TXN_BEGIN,         [DJ_STMT_COMMIT] = DJ_TXN_COMMIT,
                                     [DJ_STMT_ROLLBACK] = DJ_TXN_ROLLBACK,   [DJ_STMT_SAVEPOINT] = DJ_TXN_SAVEPOINT,
                                     [DJ_STMT_RELEASE] = DJ_TXN_RELEASE,     [DJ_STMT_ROLLBACK_TO] = DJ_TXN_ROLLBACK_TO};
   if (m->stmt < DJ_STMT_BEGIN || m->stmt > DJ_STMT_ROLLBACK_TO) {
      return dj_error_set (error, DJ_DOMAIN_SQL, DJ_SQL_UNSUPPORTED, "not supported: %s as a transaction statement", "this statement");
   }
   return dj_exec_txn (x, ops[m->stmt], m->name, error);
}

/* ---- statements ---- */

static bool exec_commands (dj_exec_t *x, dj_mql_t *m, dj_result_t *out, bson_t *fk_items, uint32_t *nfk,
                           bson_error_t *error);

bool
dj_exec_run (dj_exec_t *x, dj_mql_t *m, dj_result_t *out, bson_error_t *error)
{
   bool ok = true;
   memset (out, 0, sizeof *out);
   out->rows = bson_new ();
   out->rowcount = -1;
   if (m->engine_only && !x->engine_ops) {
      dj_result_cleanup (out);
      return dj_error_set (error, DJ_DOMAIN_SQL, DJ_SQL_UNSUPPORTED,
                           "not supported: %s() on a MongoDB server: MongoDB has no operator for it (djongo's "
                           "embedded engine has)",
                           m->engine_only);
   }
   if (m->kind == DJ_MQL_TXN) {
      if (!run_txn_statement (x, m, error)) {
         dj_result_cleanup (out);
         return false;
      }
      return true;
   }
   /* SELECT ... FOR UPDATE claims its rows (commands[0]) inside a
    * transaction only: outside one the lock would end with the statement */
   bool claim = m->for_update && dj_exec_txn (x, DJ_TXN_ACTIVE, NULL, NULL);
   if (m->for_update && !claim) {
      dj_mql_drop_claim (m);
   }
   /* writes, DDL and a claim with its read are atomic units: all their
    * commands, or none */
   bool unit = m->kind != DJ_MQL_ROWS || claim;
   bool in_txn = m->kind == DJ_MQL_WRITE && dj_exec_txn (x, DJ_TXN_ACTIVE, NULL, NULL);
   if (unit && !dj_exec_txn (x, DJ_TXN_STMT_BEGIN, NULL, error)) {
      dj_result_cleanup (out);
      return false;
   }
   /* an INSERT given an id from a block (idblock.c) that another writer
    * took meanwhile runs once more, its id from the counter */
   bson_t *before_ids = m->kind == DJ_MQL_WRITE && m->auto_ids && m->ncommands == 1 && !in_txn ? bson_copy (m->commands[0])
                                                                                               : NULL;
   x->stmt_in_txn = in_txn;
   x->blocks_off = false;
   for (int attempt = 0;; attempt++) {
      x->block_used = false;
      bson_t fk_items = BSON_INITIALIZER;
      uint32_t nfk = 0;
      ok = exec_commands (x, m, out, &fk_items, &nfk, error) && exec_fk_after_write (x, m, &fk_items, &nfk, error) &&
           (!nfk || exec_fk_settle (x, &fk_items, in_txn, error));
      bson_destroy (&fk_items);
      if (unit) {
         if (ok) {
            ok = dj_exec_txn (x, DJ_TXN_STMT_COMMIT, NULL, error);
         } else {
            dj_exec_txn (x, DJ_TXN_STMT_ABORT, NULL, NULL);
         }
      }
      if (!ok) {
         exec_blocks_forget (x, NULL); /* what failed may have undone a reservation */
      }
      if (ok || !x->block_used || !error || error->code != DJ_DuplicateKey || attempt || !before_ids) {
         break;
      }
      bson_destroy (m->commands[0]);
      m->commands[0] = bson_copy (before_ids);
      bson_reinit (out->rows);
      out->rowcount = -1;
      out->has_lastrowid = false;
      x->blocks_off = true;
      if (unit && !dj_exec_txn (x, DJ_TXN_STMT_BEGIN, NULL, error)) {
         break;
      }
   }
   x->blocks_off = false;
   if (before_ids) {
      bson_destroy (before_ids);
   }
   if (m->kind == DJ_MQL_DDL) {
      /* a table may have been created, dropped or renamed */
      exec_forget_tables (x);
   }
   if (!ok) {
      dj_result_cleanup (out);
   }
   return ok;
}

/* A SELECT from a table that CREATE TABLE never made and no collection
 * holds fails with SQLite's words ("no such table"), as NamespaceNotFound,
 * rather than giving no rows: a mistyped name is an error. Both answers
 * are cached per session (a recorded table by table_info, a plain
 * collection in x->plain); a missing one is asked again each time, as a
 * collection can appear at any moment. */
static bool
check_table_exists (dj_exec_t *x, const char *table, bson_error_t *error)
{
   bson_iter_t it;
   bool found;
   if (!exec_entry_field (x, table, "table", &it, &found, error)) {
      return false;
   }
   if (found || bson_has_field (x->plain, table)) {
      return true;
   }
   bson_t cmd = BSON_INITIALIZER, filter, reply;
   BSON_APPEND_INT32 (&cmd, "listCollections", 1);
   BSON_APPEND_DOCUMENT_BEGIN (&cmd, "filter", &filter);
   BSON_APPEND_UTF8 (&filter, "name", table);
   bson_append_document_end (&cmd, &filter);
   BSON_APPEND_BOOL (&cmd, "nameOnly", true);
   bool ok = exec_run_cmd (x, x->db, &cmd, false, &reply, error);
   if (ok) {
      found = bson_iter_init (&it, &reply) && bson_iter_find_descendant (&it, "cursor.firstBatch.0", &it);
      if (found) {
         BSON_APPEND_BOOL (x->plain, table, true);
      } else {
         ok = dj_error_set (error, DJ_DOMAIN_SERVER, DJ_NamespaceNotFound, "no such table: %s", table);
      }
   }
   bson_destroy (&reply);
   bson_destroy (&cmd);
   return ok;
}

/* An INSERT with expressions in VALUES: commands[0] computes every row's
 * values, which go into the insert's documents (dj_mql_set_values). */
static bool
compute_values (dj_exec_t *x, dj_mql_t *m, bson_error_t *error)
{
   bson_t rows = BSON_INITIALIZER;
   int64_t n = 0;
   dj_mql_t star = {.star = true, .collection = "$cmd.aggregate"};
   bool ok = run_rows (x, &star, m->commands[0], false, &rows, &n, NULL, error);
   if (ok && !dj_mql_set_values (m, &rows)) {
      ok = dj_error_set (error, DJ_DOMAIN_SERVER, DJ_InternalError, "the values of an INSERT came back in another shape");
   }
   bson_destroy (&rows);
   return ok;
}

/* fk_items, *nfk: the FOREIGN KEY checks the statement's writes call for
 * (constraint.c) */
static bool
exec_commands (dj_exec_t *x, dj_mql_t *m, dj_result_t *out, bson_t *fk_items, uint32_t *nfk, bson_error_t *error)
{
   bool ok = true;
   if (m->kind == DJ_MQL_ROWS && m->collection && !check_table_exists (x, m->collection, error)) {
      return false;
   }
   if (m->kind == DJ_MQL_ROWS && m->star && m->ncolumns == 0 && m->collection) {
      ok = expand_star (x, m, error);
   }
   for (int i = 0; ok && m->kind == DJ_MQL_ROWS && i < m->ncolumns; i++) {
      if (m->columns[i].star_table) {
         ok = expand_star_columns (x, m, error);
         break;
      }
   }
   if (ok && m->kind == DJ_MQL_ROWS && m->ncommands >= 1) {
      ok = exec_counts_not_null (x, m, error); /* notnull.c */
   }
   if (m->kind == DJ_MQL_WRITE && x->tables_mode == DJ_TABLES_STRICT && m->collection) {
      bson_iter_t it;
      bool found;
      ok = exec_entry_field (x, m->collection, "table", &it, &found, error);
      if (ok && !found) {
         /* SQLite's words; NamespaceNotFound, as MongoDB says it */
         return dj_error_set (error, DJ_DOMAIN_SERVER, DJ_NamespaceNotFound, "no such table: %s", m->collection);
      }
   }
   if (ok && m->kind == DJ_MQL_WRITE && m->values_from) {
      ok = compute_values (x, m, error);
   }
   if (ok && m->kind == DJ_MQL_WRITE && m->positional) {
      ok = name_positional (x, m, error);
   }
   if (ok && m->kind == DJ_MQL_WRITE && m->auto_ids && m->ncommands == 1) {
      ok = assign_ids (x, m, out, error);
   }
   if (ok && m->kind == DJ_MQL_WRITE && m->collection) {
      ok = exec_defaults_before (x, m, error);
   }
   if (ok && m->kind == DJ_MQL_WRITE && m->collection && m->ncommands >= 1) {
      ok = check_not_null (x, m, error);
   }
   if (ok && m->kind == DJ_MQL_WRITE && m->collection) {
      ok = exec_generated_before (x, m, error);
   }
   bson_t *inserted = NULL; /* an upsert's documents as an insert, for RETURNING */
   bson_t upserted = BSON_INITIALIZER;
   if (ok && m->kind == DJ_MQL_WRITE && m->upsert) {
      ok = check_conflict_target (x, m, error);
   }
   if (ok && m->kind == DJ_MQL_WRITE && m->upsert) {
      inserted = bson_copy (m->commands[0]);
      dj_mql_to_upserts (m);
   }
   if (ok && m->constraint && m->collection) {
      /* DROP CONSTRAINT: not an index is fine only for a CHECK or FOREIGN KEY */
      bool has;
      ok = exec_entry_has_constraint (x, m->collection, m->constraint, &has, error);
      if (ok && !has) {
         m->ignore_code[0] = 0;
      }
   }
   /* RENAME / DROP COLUMN: its indexes, dropped while the values move or go (rename_indexes.c) */
   bson_t *moved = NULL;
   if (ok && m->rename_from && m->rename_to && m->collection) {
      ok = exec_indexes_before_rename (x, m->collection, m->rename_from, m->rename_to, &moved, error);
   } else if (ok && m->drop_column && m->collection) {
      ok = exec_indexes_before_rename (x, m->collection, m->drop_column, m->drop_column, &moved, error);
   }
   for (int i = 0; ok && i < m->ncommands; i++) {
      bool last = i == m->ncommands - 1;
      if (m->kind == DJ_MQL_ROWS && last && m->explain) {
         ok = run_explain (x, m->commands[i], out->rows, error);
         out->rowcount = ok ? 1 : 0;
         continue;
      }
      if (m->kind == DJ_MQL_ROWS && last) {
         int64_t n = 0;
         /* the documents themselves, for a client that reads their cells
          * (dj_exec_set_row_docs); SELECT * of an unrecorded table: rows */
         out->docs = x->row_docs && !m->star;
         ok = run_rows (x, m, m->commands[i], out->docs, out->rows, &n, out, error);
         out->rowcount = n;
         continue;
      }
      if (m->feed_to && i == m->feed_to - 1) {
         /* the rows' c0 are the _ids the next command writes */
         bson_t ids = BSON_INITIALIZER;
         int64_t n = 0;
         dj_mql_t idcols = {.ncolumns = 0, .star = true, .collection = m->collection};
         ok = run_rows (x, &idcols, m->commands[i], false, &ids, &n, NULL, error);
         if (ok) {
            /* each row is [c0] (star: the document's one field) */
            bson_t flat = BSON_INITIALIZER;
            bson_iter_t r, c;
            uint32_t k = 0;
            bson_iter_init (&r, &ids);
            while (bson_iter_next (&r)) {
               if (bson_iter_recurse (&r, &c) && bson_iter_next (&c)) {
                  char kb[16];
                  const char *key;
                  bson_uint32_to_string (k++, &key, kb, sizeof kb);
                  bson_append_value (&flat, key, -1, bson_iter_value (&c));
               }
            }
            dj_mql_feed_ids (m, &flat);
            bson_destroy (&flat);
         }
         bson_destroy (&ids);
         continue;
      }
      if (!exec_fk_before_write (x, m, m->commands[i], fk_items, nfk, error) ||
          !exec_fk_into_insert (x, m, m->commands[i], error)) {
         ok = false;
         break;
      }
      bson_t reply;
      const char *db = m->admin[i] ? "admin" : x->db;
      if (!exec_run_cmd (x, db, m->commands[i], m->ignore_duplicates, &reply, error)) {
         if (m->ignore_code[i] && error->domain == DJ_DOMAIN_SERVER && error->code == (uint32_t) m->ignore_code[i]) {
            memset (error, 0, sizeof *error);
         } else {
            ok = false;
         }
      } else if (m->kind == DJ_MQL_WRITE && last) {
         bson_iter_t it;
         if (bson_iter_init_find (&it, &reply, "n") && BSON_ITER_HOLDS_NUMBER (&it)) {
            out->rowcount = bson_iter_as_int64 (&it);
         }
         if (inserted && bson_iter_init_find (&it, &reply, "upserted") && BSON_ITER_HOLDS_ARRAY (&it)) {
            bson_append_iter (&upserted, "u", 1, &it);
         }
      }
      exec_fk_insert_reply (x, &reply);
      bson_destroy (&reply);
   }
   if (moved) {
      /* the renamed column's indexes on its new name, a dropped one's
       * gone; or, when the statement failed, as they were */
      bson_error_t undo;
      const char *which = !ok ? "old" : m->rename_from ? "new" : NULL;
      ok = exec_indexes_after_rename (x, m->collection, moved, which, ok ? error : &undo) && ok;
   }
   if (ok && inserted) {
      ok = exec_generated_after_upsert (x, m, inserted, error);
   }
   if (ok && m->kind == DJ_MQL_WRITE && m->stmt == DJ_STMT_INSERT && m->ncolumns) {
      if (inserted) {
         ok = returning_upserts (x, m, inserted, &upserted, out, error);
      } else {
         returning_rows (m->commands[0], m, out);
      }
   }
   bson_destroy (inserted);
   bson_destroy (&upserted);
   if (ok && m->rename_from && m->rename_to && m->collection) {
      ok = exec_rename_in_constraints (x, m->collection, m->rename_from, m->rename_to, error);
   }
   if (ok && m->sync_checks && m->collection) {
      ok = exec_sync_checks (x, m->collection, error);
   }
   return ok;
}

bool
dj_exec_sql (dj_exec_t *x, const char *sql, size_t len, const bson_value_t *params, int nparams, dj_result_t *out,
             bson_error_t *error)
{
   dj_plan_t *plan = dj_plan_new (sql, len, error);
   dj_mql_t m;
   if (!plan) {
      return false;
   }
   dj_catalog_t catalog = dj_exec_catalog (x);
   bool ok = dj_plan_bind_catalog (plan, x->db, &catalog, params, nparams, &m, error);
   if (ok) {
      ok = dj_exec_run (x, &m, out, error);
      dj_mql_cleanup (&m);
   }
   dj_plan_destroy (plan);
   return ok;
}
