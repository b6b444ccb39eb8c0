/*
 * walk.c -- the one way the storage layer walks LMDB: a cursor over the
 * keys of one database that start with a prefix (a collection's records,
 * an index's entries, a database's catalog entries), forward or backward.
 *
 * Every range the layout defines is a prefix (store.c's header comment), so
 * scans, index builds, drops, statistics and the catalog listings are all
 * this loop, with its LMDB details -- seeking, the step after a delete, the
 * end of the range, the error at the end -- written once.
 */
#include "dj_storage.h"

#include <errno.h>

bool
dj_walk_open (dj_walk_t *w, dj_ctx_t *ctx, MDB_dbi dbi, const void *prefix, size_t n, int dir, bson_error_t *error)
{
   memset (w, 0, sizeof *w);
   dj_buf_init (&w->prefix);
   dj_buf_init (&w->from);
   dj_buf_append (&w->prefix, prefix, n);
   w->dir = dir;
   w->rc = mdb_cursor_open (ctx->txn, dbi, &w->cur);
   if (w->rc) {
      w->cur = NULL;
      dj_buf_cleanup (&w->prefix);
      dj_buf_cleanup (&w->from);
      return dj_lmdb_error (w->rc, error, "cursor");
   }
   return true;
}

void
dj_walk_seek (dj_walk_t *w, const void *key, size_t n)
{
   w->from.len = 0;
   dj_buf_append (&w->from, key, n);
   w->state = DJ_WALK_SEEK;
}

/* Whether the current key lies in the range. */
static bool
in_range (const dj_walk_t *w)
{
   return w->k.mv_size >= w->prefix.len && (!w->prefix.len || !memcmp (w->k.mv_data, w->prefix.data, w->prefix.len));
}

/* Backward walks start after the last key with the prefix: at the prefix's
 * successor (its last byte below 0xFF incremented, the rest dropped), or at
 * the database's end when there is none. */
static int
seek_last (dj_walk_t *w)
{
   dj_buf_t succ;
   int rc = MDB_NOTFOUND;
   size_t n = w->prefix.len;

   dj_buf_init (&succ);
   dj_buf_append (&succ, w->prefix.data, n);
   while (n && succ.data[n - 1] == 0xFF) {
      n--;
   }
   if (n) {
      succ.data[n - 1]++;
      w->k.mv_size = n;
      w->k.mv_data = succ.data;
      rc = mdb_cursor_get (w->cur, &w->k, &w->v, MDB_SET_RANGE);
   }
   rc = rc == 0 ? mdb_cursor_get (w->cur, &w->k, &w->v, MDB_PREV) : mdb_cursor_get (w->cur, &w->k, &w->v, MDB_LAST);
   dj_buf_cleanup (&succ);
   return rc;
}

bool
dj_walk_next (dj_walk_t *w)
{
   switch (w->state) {
   case DJ_WALK_START:
      if (w->dir < 0) {
         w->rc = seek_last (w);
         break;
      }
      w->k.mv_size = w->prefix.len;
      w->k.mv_data = w->prefix.data;
      w->rc = mdb_cursor_get (w->cur, &w->k, &w->v, w->prefix.len ? MDB_SET_RANGE : MDB_FIRST);
      break;
   case DJ_WALK_SEEK:
      w->k.mv_size = w->from.len;
      w->k.mv_data = w->from.data;
      w->rc = mdb_cursor_get (w->cur, &w->k, &w->v, MDB_SET_RANGE);
      break;
   case DJ_WALK_DELETED:
      /* mdb_cursor_del leaves the cursor on the entry after the deleted
       * one; past the last entry LMDB answers EINVAL */
      w->rc = mdb_cursor_get (w->cur, &w->k, &w->v, MDB_GET_CURRENT);
      if (w->rc == EINVAL) {
         w->rc = MDB_NOTFOUND;
      }
      break;
   case DJ_WALK_ON:
      w->rc = mdb_cursor_get (w->cur, &w->k, &w->v, w->dir > 0 ? MDB_NEXT : MDB_PREV);
      break;
   case DJ_WALK_END: return false;
   }
   if (w->rc == 0 && !in_range (w)) {
      w->rc = MDB_NOTFOUND;
   }
   w->state = w->rc ? DJ_WALK_END : DJ_WALK_ON;
   return w->rc == 0;
}

bool
dj_walk_del (dj_walk_t *w)
{
   w->rc = mdb_cursor_del (w->cur, 0);
   w->state = w->rc ? DJ_WALK_END : DJ_WALK_DELETED;
   return w->rc == 0;
}

bool
dj_walk_close (dj_walk_t *w, const char *what, bson_error_t *error)
{
   int rc = w->rc;
   if (w->cur) {
      mdb_cursor_close (w->cur);
      w->cur = NULL;
   }
   dj_buf_cleanup (&w->prefix);
   dj_buf_cleanup (&w->from);
   if (rc && rc != MDB_NOTFOUND) {
      return dj_lmdb_error (rc, error, what);
   }
   return true;
}
