/*
 * test_row_cells -- dj_exec_row_in_order (src/exec/rows.c, the DB-API
 * driver's reading of a row) reads what dj_exec_row_cells reads.
 *
 * 1. Documents whose fields are the columns in order -- keys of 1 to 9
 *    bytes (compared as a word under 8, byte by byte from 8), values of
 *    every size down to none (NULL) last, near the document's end -- are
 *    taken, each cell the very bytes dj_exec_row_cells hands out; with a
 *    field more after them too.
 * 2. Documents that are not (a column missing, two swapped, a key that is
 *    a column's prefix or runs past it) are refused, and so is SELECT *
 *    and a DATETIME column (dj_exec_row_keys).
 * 3. Thousands of random mutations of those documents (1 to 3 bytes
 *    overwritten, keys and lengths included): whatever dj_exec_row_in_order
 *    takes, dj_exec_row_cells reads alike. Under ASan+UBSan this also shows
 *    that its word reads stay inside the document.
 */
#include <string.h>

#include "ctest.h"
#include "dj_compile.h"
#include "dj_exec.h"

#define NCOLS 8

static char *paths[NCOLS] = {"a", "bb", "c3c", "dddd", "eeeee6", "fffffff", "gggggggg", "h"};

/* A cell as dj_exec_row_cells handed it out. */
typedef struct {
   int n; /* times handed out */
   uint8_t type;
   const uint8_t *val;
   uint32_t len;
} seen_t;

static void
note (void *ctx, int i, uint8_t type, const uint8_t *val, uint32_t len)
{
   seen_t *s = ctx;
   if (i >= 0 && i < NCOLS && !s[i].n++) {
      s[i].type = type;
      s[i].val = val;
      s[i].len = len;
   }
}

/* -1: dj_exec_row_in_order refused the document; 1: it took it, each cell
 * what dj_exec_row_cells gives; 0: it took it, some cell otherwise. */
static int
read_alike (const dj_mql_t *m, const uint8_t *data, uint32_t len)
{
   dj_exec_cell_t cells[NCOLS];
   seen_t seen[NCOLS] = {{0}};
   bson_t doc;
   if (!dj_exec_row_keys (m, cells) || !dj_exec_row_in_order (m, data, len, cells)) {
      return -1;
   }
   if (!bson_init_static (&doc, data, len)) {
      return 0;
   }
   dj_exec_row_cells (m, &doc, note, seen);
   for (int i = 0; i < m->ncolumns; i++) {
      /* (the same bytes of the document: the same element) */
      if (seen[i].n != 1 || seen[i].type != cells[i].type || seen[i].val != cells[i].val ||
          seen[i].len != cells[i].len) {
         return 0;
      }
   }
   return 1;
}

/* The document of the columns' fields in order, the last one's value of
 * kind k (0: NULL, 1: int32, 2: a short string, 3: an empty one, 4: a
 * document, 5: false), a field `extra` more after them if not NULL. */
static bson_t *
in_order (int k, const char *extra)
{
   bson_t *d = bson_new ();
   BSON_APPEND_INT32 (d, paths[0], 1);
   BSON_APPEND_UTF8 (d, paths[1], "two");
   BSON_APPEND_NULL (d, paths[2]);
   BSON_APPEND_DOUBLE (d, paths[3], 4.5);
   BSON_APPEND_INT64 (d, paths[4], 5);
   BSON_APPEND_BOOL (d, paths[5], true);
   BSON_APPEND_UTF8 (d, paths[6], "a text longer than a word or two");
   switch (k) {
   case 0: BSON_APPEND_NULL (d, paths[7]); break;
   case 1: BSON_APPEND_INT32 (d, paths[7], 8); break;
   case 2: BSON_APPEND_UTF8 (d, paths[7], "x"); break;
   case 3: BSON_APPEND_UTF8 (d, paths[7], ""); break;
   case 4: {
      bson_t child;
      BSON_APPEND_DOCUMENT_BEGIN (d, paths[7], &child);
      bson_append_document_end (d, &child);
      break;
   }
   default: BSON_APPEND_BOOL (d, paths[7], false);
   }
   if (extra) {
      BSON_APPEND_INT32 (d, extra, 9);
   }
   return d;
}

int
main (void)
{
   dj_mql_column_t cols[NCOLS];
   memset (cols, 0, sizeof cols);
   for (int i = 0; i < NCOLS; i++) {
      cols[i].path = paths[i];
   }
   dj_mql_t m;
   memset (&m, 0, sizeof m);
   m.columns = cols;
   m.ncolumns = NCOLS;

   bson_t *docs[12];
   int ndocs = 0;
   for (int k = 0; k < 6; k++) {
      docs[ndocs] = in_order (k, NULL);
      CHECK (read_alike (&m, bson_get_data (docs[ndocs]), docs[ndocs]->len) == 1, "in order, last of kind %d", k);
      ndocs++;
      docs[ndocs] = in_order (k, "zz");
      CHECK (read_alike (&m, bson_get_data (docs[ndocs]), docs[ndocs]->len) == 1, "and a field more, kind %d", k);
      ndocs++;
   }

   /* not in order: refused */
   bson_t *d = BCON_NEW ("a", BCON_INT32 (1), "c3c", BCON_NULL);
   CHECK (read_alike (&m, bson_get_data (d), d->len) == -1, "a column missing");
   bson_destroy (d);
   d = BCON_NEW ("bb", BCON_INT32 (1), "a", BCON_NULL);
   CHECK (read_alike (&m, bson_get_data (d), d->len) == -1, "two columns swapped");
   bson_destroy (d);
   d = BCON_NEW ("a", BCON_INT32 (1), "b", BCON_INT32 (2), "c3c", BCON_NULL);
   CHECK (read_alike (&m, bson_get_data (d), d->len) == -1, "a key that is a column's prefix");
   bson_destroy (d);
   d = BCON_NEW ("a", BCON_INT32 (1), "bbb", BCON_INT32 (2), "c3c", BCON_NULL);
   CHECK (read_alike (&m, bson_get_data (d), d->len) == -1, "a key that runs past a column's");
   bson_destroy (d);
   d = BCON_NEW ("a", BCON_INT32 (1), "bb", BCON_INT32 (2), "c3c", BCON_NULL, "dddd", BCON_NULL, "eeeee6",
                 BCON_NULL, "fffffff", BCON_NULL, "ggggggggg", BCON_NULL, "h", BCON_NULL);
   CHECK (read_alike (&m, bson_get_data (d), d->len) == -1, "a long key that runs past a column's");
   bson_destroy (d);
   dj_exec_cell_t cells[NCOLS];
   m.star = true;
   CHECK (!dj_exec_row_keys (&m, cells), "SELECT * is not read in order");
   m.star = false;
   cols[3].us = true;
   CHECK (!dj_exec_row_keys (&m, cells), "nor a DATETIME column");
   cols[3].us = false;

   /* mutations: whatever is taken is read alike */
   uint32_t seed = 4242;
   uint8_t buf[512];
   int differing = 0, taken = 0;
   for (int round = 0; round < 30000; round++) {
      const bson_t *base = docs[round % ndocs];
      uint32_t len = base->len;
      memcpy (buf, bson_get_data (base), len);
      int k = 1 + (int) (seed % 3);
      for (int j = 0; j < k; j++) {
         seed = seed * 1103515245u + 12345u;
         uint32_t at = 4 + (seed >> 8) % (len - 4);
         seed = seed * 1103515245u + 12345u;
         buf[at] = (uint8_t) (seed >> 16);
      }
      /* (a copy of exactly len bytes: ASan sees a read past them) */
      uint8_t *exact = bson_malloc (len);
      memcpy (exact, buf, len);
      int r = read_alike (&m, exact, len);
      differing += r == 0;
      taken += r == 1;
      bson_free (exact);
   }
   CHECK (differing == 0, "%d mutated documents read otherwise", differing);
   CHECK (taken > 1000, "mutated documents still taken: %d", taken);
   for (int i = 0; i < ndocs; i++) {
      bson_destroy (docs[i]);
   }
   return CTEST_REPORT ("row_cells");
}
