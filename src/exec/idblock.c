/*
 * idblock.c -- AUTOINCREMENT ids reserved in blocks, per connection.
 *
 * A single-row INSERT outside a transaction that leaves the key out takes
 * its id from a block this connection reserved earlier from the table's
 * counter (take_ids in exec.c: the counter advanced past the whole block,
 * so no other connection is ever given one of its ids) -- and so runs as
 * its insert alone: over the wire one commit instead of two (the counter's
 * findAndModify, then the insert). Blocks grow with use: the first
 * DJ_ID_BLOCK_SINGLE reservations of a table are of one id, then 2, 4, ...
 * up to DJ_ID_BLOCK_MAX, so that a connection that inserts a few rows
 * leaves no gap and one that inserts many amortizes the counter over 64
 * rows. As with
 * PostgreSQL's cached sequences, ids are unique and never reused, but
 * connections inserting at once interleave theirs out of order, and the
 * ids a connection reserved and did not use are gaps.
 *
 * A block is dropped when it may no longer be free: after DDL or a
 * rollback (exec_forget_tables), after a statement of this connection that
 * failed, and when this connection writes an explicit id into the table
 * (which may lie inside the block). Ids written by another connection or
 * tool into the block meet the table's unique key: dj_exec_run then drops
 * the block and runs the INSERT again with an id from the counter.
 *
 * Memory: the blocks (table names copied) are the dj_exec_t's.
 */
#include <string.h>

#include "dj_buf.h"
#include "exec-private.h"

#define DJ_ID_BLOCK_MAX 64
#define DJ_ID_BLOCK_SINGLE 4 /* the first reservations of single ids */

static exec_idblock_t *
find (dj_exec_t *x, const char *table)
{
   for (size_t i = 0; i < x->nblocks; i++) {
      if (!strcmp (x->blocks[i].table, table)) {
         return &x->blocks[i];
      }
   }
   return NULL;
}

bool
exec_block_next (dj_exec_t *x, const char *table, int64_t *id, int64_t *want)
{
   exec_idblock_t *b = find (x, table);
   if (b && b->next <= b->last) {
      *id = b->next++;
      return true;
   }
   int64_t k = b ? b->taken : 0; /* reservations since the block was last dropped */
   *want = k < DJ_ID_BLOCK_SINGLE ? 1 : k - DJ_ID_BLOCK_SINGLE + 1 < 7 ? (int64_t) 1 << (k - DJ_ID_BLOCK_SINGLE + 1) : DJ_ID_BLOCK_MAX;
   *want = *want < DJ_ID_BLOCK_MAX ? *want : DJ_ID_BLOCK_MAX;
   return false;
}

void
exec_block_set (dj_exec_t *x, const char *table, int64_t first, int64_t last)
{
   exec_idblock_t *b = find (x, table);
   if (!b) {
      DJ_GROW (x->blocks, x->nblocks, x->capblocks, 4);
      b = &x->blocks[x->nblocks++];
      b->table = bson_strdup (table);
      b->taken = 0;
   }
   b->next = first;
   b->last = last;
   b->taken++;
}

void
exec_blocks_forget (dj_exec_t *x, const char *table)
{
   for (size_t i = 0; i < x->nblocks; i++) {
      if (!table || !strcmp (x->blocks[i].table, table)) {
         /* emptied, and the next reservations single ids again */
         x->blocks[i].next = x->blocks[i].last + 1;
         x->blocks[i].taken = 0;
      }
   }
}

void
dj_exec_set_djongo_max (dj_exec_t *x, bool on)
{
   x->max_in_reserve = on;
}

void
exec_blocks_free (dj_exec_t *x)
{
   for (size_t i = 0; i < x->nblocks; i++) {
      bson_free (x->blocks[i].table);
   }
   bson_free (x->blocks);
   x->blocks = NULL;
   x->nblocks = x->capblocks = 0;
}
