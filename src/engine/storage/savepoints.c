/*
 * savepoints.c -- SQL's savepoints by name over nested transactions
 * (dj_savepoints_*, see dj_engine.h): the embedded transport's for a
 * connection, djongo-server's for a transaction it hosts.
 */
#include "dj_storage.h"

#include <strings.h>

#include "dj_buf.h"

int
dj_savepoints_find (const dj_savepoints_t *s, const char *name)
{
   for (int i = s->n - 1; i >= 0; i--) {
      if (!strcasecmp (s->v[i].name, name)) { /* SQL names fold case, as SQLite compares them */
         return i;
      }
   }
   return -1;
}

dj_engine_txn_t *
dj_savepoints_top (const dj_savepoints_t *s, dj_engine_txn_t *root)
{
   return s->n ? s->v[s->n - 1].txn : root;
}

void
dj_savepoints_push (dj_savepoints_t *s, const char *name, dj_engine_txn_t *txn)
{
   DJ_GROW (s->v, s->n, s->cap, 8);
   s->v[s->n].name = bson_strdup (name);
   s->v[s->n++].txn = txn;
}

bool
dj_savepoints_begin (dj_savepoints_t *s, dj_engine_t *engine, dj_engine_txn_t *root, const char *name,
                     bson_error_t *error)
{
   dj_engine_txn_t *sp = dj_engine_txn_begin (engine, dj_savepoints_top (s, root), error);
   if (!sp) {
      return false;
   }
   dj_savepoints_push (s, name, sp);
   return true;
}

void
dj_savepoints_drop (dj_savepoints_t *s, int i)
{
   while (s->n > i) {
      bson_free (s->v[--s->n].name);
   }
   if (!s->n) {
      bson_free (s->v);
      s->v = NULL;
      s->cap = 0;
   }
}

bool
dj_savepoints_release (dj_savepoints_t *s, int i, dj_engine_txn_t **root, bson_error_t *error)
{
   bool ok = dj_engine_txn_commit (s->v[i].txn, error); /* (the ones inside it first) */
   dj_savepoints_drop (s, i);
   if (!ok) {
      dj_engine_txn_abort (*root);
      *root = NULL;
      dj_savepoints_drop (s, 0);
   }
   return ok;
}

bool
dj_savepoints_rollback_to (dj_savepoints_t *s, int i, dj_engine_t *engine, dj_engine_txn_t *root,
                           bson_error_t *error)
{
   dj_engine_txn_abort (s->v[i].txn); /* (and the ones inside it) */
   char *keep = s->v[i].name;
   s->v[i].name = NULL;
   dj_savepoints_drop (s, i);
   bool ok = dj_savepoints_begin (s, engine, root, keep, error);
   bson_free (keep);
   return ok;
}
