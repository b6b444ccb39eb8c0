/*
 * rows.c -- documents turned into rows: each of a statement's columns
 * (dj_mql_column_t) found in a document and made one cell of the row's
 * array, in column order (NULL when missing; a DATETIME column's date and
 * remainder one exact cell), or, for SELECT *, every field in order.
 *
 * The fields usually come in the columns' order (a projection keeps its
 * specification's, an INSERT's documents their VALUES'), so each column
 * is first looked for at the field after the last one found -- read with
 * dj_bson_walk.h -- and only then by its path (dj_exec_row_cells). A row
 * is written as bytes, each cell's value copied as it is under its index;
 * a cursor batch's rows go into one buffer (exec_rows_t) appended to the
 * result at once, not row by row through libbson. A client that reads
 * the cells itself (dj_exec_set_row_docs: the DB-API driver, making its
 * tuples) gets the documents instead, and no rows are written at all.
 */
#include <stdio.h>
#include <string.h>

#include "dj_bson_array.h"
#include "dj_bson_walk.h"
#include "exec-private.h"

/* Appends the value at dotted `path` of doc (NULL when missing) to row. */
static void
append_cell (bson_t *row, const char *key, const bson_t *doc, const char *path)
{
   bson_iter_t it, found;
   if (bson_iter_init (&it, doc) && bson_iter_find_descendant (&it, path, &found)) {
      bson_append_value (row, key, -1, bson_iter_value (&found));
   } else {
      bson_append_null (row, key, -1);
   }
}

/* A DATETIME column's cell (dj_mql_column_t.us): the date at `path`
 * with the microseconds at "<path>__us", an exact datetime when they are
 * 1..999; anything else as it is. */
static void
append_dt_cell (bson_t *row, const char *key, const bson_t *doc, const char *path, const bson_value_t *v)
{
   bson_iter_t it, found;
   char upath[600];
   int n = snprintf (upath, sizeof upath, "%s" DJ_US_SUFFIX, path);
   if (v->value_type == BSON_TYPE_DATE_TIME && n > 0 && (size_t) n < sizeof upath && bson_iter_init (&it, doc) &&
       bson_iter_find_descendant (&it, upath, &found) && BSON_ITER_HOLDS_NUMBER (&found)) {
      int64_t r = bson_iter_as_int64 (&found); /* (an expression's may be a long or a double) */
      if (r > 0 && r < 1000 && v->value.v_datetime <= INT64_MAX / 1000 - 1 && v->value.v_datetime >= INT64_MIN / 1000) {
         dj_exact_dt_append (row, key, v->value.v_datetime * 1000 + r);
         return;
      }
   }
   bson_append_value (row, key, -1, v);
}

/* The one element of `one` (a cell built with libbson: a path found
 * below the top level, NULL, an exact datetime) handed to fn as column
 * i's cell; `one` destroyed. */
static void
built_cell (dj_exec_cell_fn fn, void *ctx, int i, bson_t *one)
{
   dj_bwalk_t c;
   if (dj_bwalk_init (&c, bson_get_data (one), one->len) && dj_bwalk_next (&c)) {
      fn (ctx, i, c.type, c.val, c.val_len);
   }
   bson_destroy (one);
}

/* The first top-level field named `key` of doc handed to fn as column
 * i's cell, as bson_iter_find finds it; false when doc has none. */
static bool
find_top (const bson_t *doc, const char *key, dj_exec_cell_fn fn, void *ctx, int i)
{
   dj_bwalk_t w;
   dj_bwalk_init (&w, bson_get_data (doc), doc->len);
   while (dj_bwalk_next (&w)) {
      if (!strcmp (w.key, key)) {
         fn (ctx, i, w.type, w.val, w.val_len);
         return true;
      }
   }
   return false;
}

/* Whether the element key w (key_len bytes) is path: compared here, byte
 * by byte, rather than by a call per cell -- keys and paths are short
 * (c0, c1, ...), and the walk already knows the key's length. */
static inline bool
key_is (const dj_bwalk_t *w, const char *path)
{
   for (size_t j = 0; j < w->key_len; j++) {
      if (w->key[j] != path[j]) {
         return false; /* (a shorter path stops here, at its 0) */
      }
   }
   return path[w->key_len] == 0;
}

void
dj_exec_row_cells (const dj_mql_t *m, const bson_t *doc, dj_exec_cell_fn fn, void *ctx)
{
   dj_bwalk_t w;
   bool have = dj_bwalk_init (&w, bson_get_data (doc), doc->len) && dj_bwalk_next (&w);
   int ncols = m->star ? INT32_MAX : m->ncolumns;
   for (int i = 0; i < ncols && (have || !m->star); i++) {
      bool here = have && (m->star || key_is (&w, m->columns[i].path));
      if (!m->star && m->columns[i].us) {
         /* a DATETIME column: its date and remainder made one exact cell */
         bson_t one = BSON_INITIALIZER;
         bson_iter_t it, found;
         if (here) {
            bson_value_t v;
            dj_bwalk_value (&w, &v);
            append_dt_cell (&one, "0", doc, m->columns[i].path, &v);
            have = dj_bwalk_next (&w);
         } else if (bson_iter_init (&it, doc) && bson_iter_find_descendant (&it, m->columns[i].path, &found)) {
            append_dt_cell (&one, "0", doc, m->columns[i].path, bson_iter_value (&found));
         } else {
            bson_append_null (&one, "0", 1);
         }
         built_cell (fn, ctx, i, &one);
      } else if (here) {
         fn (ctx, i, w.type, w.val, w.val_len);
         have = dj_bwalk_next (&w);
      } else if (!m->star && !strchr (m->columns[i].path, '.') && find_top (doc, m->columns[i].path, fn, ctx, i)) {
         /* a top-level field out of the columns' order (an INSERT's
          * RETURNING "id": the document begins with its _id) */
      } else {
         bson_t one = BSON_INITIALIZER;
         append_cell (&one, "0", doc, m->columns[i].path);
         built_cell (fn, ctx, i, &one);
      }
   }
}

bool
dj_exec_row_keys (const dj_mql_t *m, dj_exec_cell_t *cells)
{
   if (m->star) {
      return false;
   }
   for (int i = 0; i < m->ncolumns; i++) {
      dj_exec_cell_t *c = &cells[i];
      size_t n = strlen (m->columns[i].path);
      if (m->columns[i].us || n > UINT32_MAX) {
         return false;
      }
      c->klen = (uint32_t) n;
      c->key = c->mask = 0;
      if (n < 8) {
         /* (bytes in memory order, as a word read from a document compares) */
         memcpy (&c->key, m->columns[i].path, n + 1);
         memset (&c->mask, 0xFF, n + 1);
      }
   }
   return true;
}

bool
dj_exec_row_in_order (const dj_mql_t *m, const uint8_t *data, uint32_t len, dj_exec_cell_t *cells)
{
   dj_bwalk_t w;
   if (!dj_bwalk_init (&w, data, len)) {
      return false;
   }
   for (int i = 0, n = m->ncolumns; i < n; i++) {
      dj_exec_cell_t *c = &cells[i];
      uint64_t word;
      if (c->mask && w.p + 8 <= w.end) {
         /* the 8 bytes after the type byte are the document's: the key
          * and its 0 compared at once, then the value read as a walk does */
         memcpy (&word, w.p + 1, 8);
         if ((word & c->mask) != c->key || !dj_bwalk_take (&w, w.p + 1 + c->klen)) {
            return false;
         }
      } else if (!dj_bwalk_next_named (&w, m->columns[i].path)) {
         return false;
      }
      c->type = w.type;
      c->len = w.val_len;
      c->val = w.val;
   }
   return true;
}

/* A row's cell written as the element `<i>: value` into the buffer at ctx. */
static void
put_cell (void *ctx, int i, uint8_t type, const uint8_t *val, uint32_t vlen)
{
   dj_buf_t *b = ctx;
   char key[16];
   size_t klen = i < 10 ? (key[0] = (char) ('0' + i), key[1] = 0, 1) : dj_bson_array_key ((uint32_t) i, key);
   if (b->len + 2 + klen + vlen > b->cap) {
      dj_buf_reserve (b, 2 + klen + vlen);
   }
   uint8_t *w = b->data + b->len;
   *w++ = type;
   memcpy (w, key, klen + 1);
   w += klen + 1;
   memcpy (w, val, vlen);
   b->len += 2 + klen + vlen;
}

/* Appends the type and key (index) of an element to b, with room for
 * its value; returns where the value starts. */
static size_t
put_head (dj_buf_t *b, uint8_t type, uint32_t index, size_t room)
{
   char kb[16];
   size_t klen = dj_bson_array_key (index, kb);
   dj_buf_reserve (b, 1 + klen + 1 + room);
   dj_buf_putc (b, type);
   dj_buf_append (b, kb, klen + 1);
   return b->len;
}

/* Appends doc's row as element `index` (an array of m's columns) to the
 * elements being written in b. */
static void
put_row (const dj_mql_t *m, const bson_t *doc, uint32_t index, dj_buf_t *b)
{
   size_t start = put_head (b, BSON_TYPE_ARRAY, index, 4 + doc->len + 64);
   dj_buf_put_u32le (b, 0); /* the row's length, set below */
   dj_exec_row_cells (m, doc, put_cell, b);
   dj_buf_putc (b, 0);
   dj_le32_write (b->data + start, (uint32_t) (b->len - start));
}

void
exec_rows_begin (exec_rows_t *r, bson_t *rows, int64_t *nrows)
{
   r->rows = rows;
   r->nrows = nrows;
   dj_buf_init (&r->b);
   dj_buf_put_u32le (&r->b, 0); /* the elements' document's length, set at the end */
}

void
exec_rows_add (exec_rows_t *r, const dj_mql_t *m, const bson_t *doc)
{
   put_row (m, doc, (uint32_t) (*r->nrows)++, &r->b);
}

void
exec_rows_add_doc (exec_rows_t *r, const bson_t *doc)
{
   put_head (&r->b, BSON_TYPE_DOCUMENT, (uint32_t) (*r->nrows)++, doc->len);
   dj_buf_append (&r->b, bson_get_data (doc), doc->len);
}

void
exec_rows_end (exec_rows_t *r)
{
   bson_t view;
   dj_buf_putc (&r->b, 0);
   dj_le32_write (r->b.data, (uint32_t) r->b.len);
   if (r->b.len > 5 && bson_init_static (&view, r->b.data, r->b.len)) {
      bson_concat (r->rows, &view); /* the rows' elements copied as they are */
   }
   dj_buf_cleanup (&r->b);
}

void
exec_append_row (const dj_mql_t *m, const bson_t *doc, bson_t *rows, int64_t *nrows)
{
   exec_rows_t r;
   exec_rows_begin (&r, rows, nrows);
   exec_rows_add (&r, m, doc);
   exec_rows_end (&r);
}
