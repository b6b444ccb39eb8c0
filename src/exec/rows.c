/*
 * rows.c -- documents turned into rows: each of a statement's columns
 * (dj_mql_column_t) found in a document and made one cell of the row's
 * array, in column order (NULL when missing; a DATETIME column's date and
 * remainder one exact cell), or, for SELECT *, every field in order.
 *
 * A row is written as bytes: the fields usually come in the columns'
 * order (a projection keeps its specification's, an INSERT's documents
 * their VALUES'), so each column is first looked for at the field after
 * the last one found -- read with dj_bson_walk.h, copied as it is under
 * the cell's index -- and only then by its path. A cursor batch's rows
 * are written into one buffer (exec_rows_t) and appended to the result at
 * once, not row by row through libbson.
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
 * below the top level, NULL, an exact datetime) appended to the row's
 * bytes b; `one` destroyed. */
static void
put_built_cell (dj_buf_t *b, bson_t *one)
{
   dj_buf_append (b, bson_get_data (one) + 4, one->len - 5);
   bson_destroy (one);
}

/* The cell `key: value` (type, value bytes) appended to b. */
static void
put_cell (dj_buf_t *b, const char *key, size_t klen, uint8_t type, const uint8_t *val, uint32_t vlen)
{
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

/* Appends doc's row as element `index` (an array of m's columns) to the
 * elements being written in b. */
static void
put_row (const dj_mql_t *m, const bson_t *doc, uint32_t index, dj_buf_t *b)
{
   char kb[16], cb[16];
   size_t klen = dj_bson_array_key (index, kb);
   dj_buf_reserve (b, 1 + klen + 1 + 4 + doc->len + 64);
   dj_buf_putc (b, BSON_TYPE_ARRAY);
   dj_buf_append (b, kb, klen + 1);
   size_t start = b->len;
   dj_buf_put_u32le (b, 0); /* the row's length, set below */
   dj_bwalk_t w;
   bool have = dj_bwalk_init (&w, bson_get_data (doc), doc->len) && dj_bwalk_next (&w);
   int ncols = m->star ? INT32_MAX : m->ncolumns;
   for (int i = 0; i < ncols && (have || !m->star); i++) {
      size_t cl = i < 10 ? (cb[0] = (char) ('0' + i), cb[1] = 0, 1) : dj_bson_array_key ((uint32_t) i, cb);
      bool here = have && (m->star || !strcmp (w.key, m->columns[i].path));
      if (!m->star && m->columns[i].us) {
         /* a DATETIME column: its date and remainder made one exact cell */
         bson_t one = BSON_INITIALIZER;
         bson_iter_t it, found;
         if (here) {
            bson_value_t v;
            dj_bwalk_value (&w, &v);
            append_dt_cell (&one, cb, doc, m->columns[i].path, &v);
            have = dj_bwalk_next (&w);
         } else if (bson_iter_init (&it, doc) && bson_iter_find_descendant (&it, m->columns[i].path, &found)) {
            append_dt_cell (&one, cb, doc, m->columns[i].path, bson_iter_value (&found));
         } else {
            bson_append_null (&one, cb, -1);
         }
         put_built_cell (b, &one);
      } else if (here) {
         put_cell (b, cb, cl, w.type, w.val, w.val_len);
         have = dj_bwalk_next (&w);
      } else {
         bson_t one = BSON_INITIALIZER;
         append_cell (&one, cb, doc, m->columns[i].path);
         put_built_cell (b, &one);
      }
   }
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
