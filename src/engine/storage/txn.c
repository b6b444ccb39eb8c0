/*
 * txn.c -- transactions: the one each command runs in, and the ones callers
 * hold across commands (dj_engine_txn_*, see dj_engine.h).
 *
 * Commands never see a dj_engine_txn_t: they call dj_txn_begin() as if they
 * were alone, and dj_engine_run_command_in() makes the caller's transaction
 * the thread's current one for the length of the call. A command's write
 * transaction is then an LMDB nested transaction of the caller's -- so a
 * command that fails aborts only its own writes -- and a read borrows the
 * caller's transaction (LMDB has no read-only nested transactions, and the
 * read must see the caller's uncommitted writes anyway).
 *
 * A transaction nothing has been written in yet -- no command's writes, no
 * nested transaction begun under it -- is written directly instead: the
 * first write command (and a nested transaction begun first, such as the
 * executor's statement unit) shares its LMDB transaction, and undoing them
 * ends that transaction and begins it again, as it was: a nested one under
 * the same parent, or a top-level one that nothing had been read in either
 * (a top-level transaction that has read nests as before: while the lock
 * is let go another writer may commit, and a later start is as good only
 * when nothing was seen of the earlier one's snapshot). An LMDB
 * nested transaction costs every write: each page it touches is looked up
 * in its own dirty list (a binary search per B-tree level), besides its
 * begin and its commit's merge into the parent. A Django ORM write (BEGIN,
 * a statement, COMMIT) and an autocommit statement nest none.
 *
 * Ownership: a dj_engine_txn_t is the caller's until commit/abort, which
 * also end (and free) nested transactions still open under it.
 */
#include "dj_storage.h"

struct dj_engine_txn {
   dj_engine_t *engine;   /* borrowed */
   MDB_txn *txn;          /* owned until commit/abort */
   bool readonly;         /* a snapshot not (yet) written: an MDB_RDONLY txn, no writer mark */
   bool snapshot_writer;  /* a snapshot turned writer: holds the env's snapshot-writer slot */
   dj_engine_txn_t *parent; /* NULL: top-level, holds the env's writer mark */
   dj_engine_txn_t *child;  /* the open nested transaction, if any (owned through the chain) */
   bool shares;             /* txn is its parent's, begun before anything was written in that: no LMDB
                             * transaction of its own */
   /* (an owner: one that does not share) something was written in its txn
    * (by it or a handle sharing it), or a nested transaction begun under */
   bool wrote;
   /* something was read in it, or in a nested one committed into it */
   bool read;
   pthread_t thread;
   bson_t *lsid;            /* owned, or NULL: the session it is a transaction of */
   int64_t txn_number;
   bool flat;               /* dj_engine_txn_set_flat: commands write in it directly */
};

/* The caller's transaction for the command running on this thread. */
static _Thread_local dj_engine_txn_t *tls_txn;

static bool upgrade (dj_engine_txn_t *t, bson_error_t *error);

/* The handle whose LMDB transaction t's is. */
static dj_engine_txn_t *
owner_of (dj_engine_txn_t *t)
{
   while (t->shares) {
      t = t->parent;
   }
   return t;
}

/* Whether writes in t may go into its LMDB transaction directly (the
 * header): a write transaction nothing was written in (nor, when it is
 * top-level, read), with no nested one. */
static bool
fresh (dj_engine_txn_t *t)
{
   const dj_engine_txn_t *o = owner_of (t);
   return !o->wrote && !o->readonly && o->txn && !t->child && (o->parent || !o->read);
}

/* Undoes what was written in t's LMDB transaction (the header): ended and
 * begun again, every handle sharing it given the new one. When that cannot
 * be done as it was, they are left without one (txn NULL): what runs in
 * them then fails (lost_error). */
static void
undo (dj_engine_txn_t *t)
{
   dj_engine_txn_t *o = owner_of (t);
   if (!o->wrote) {
      return; /* nothing to undo */
   }
   MDB_txn *w = NULL;
   mdb_txn_abort (o->txn);
   if (mdb_txn_begin (o->engine->env, o->parent ? o->parent->txn : NULL, 0, &w)) {
      w = NULL;
   }
   for (dj_engine_txn_t *h = o; h && (h == o || h->shares); h = h->child) {
      h->txn = w;
   }
   o->wrote = false;
}

static bool
lost_error (bson_error_t *error)
{
   return dj_err (error, DJ_InternalError, "the transaction was lost: undoing a failed command's writes could not begin it again");
}

/* A read-only transaction: the handle's spare renewed (mdb_txn_renew: its
 * reader slot kept, no allocation), else a new one. LMDB's code. */
static int
read_begin (dj_engine_t *e, MDB_txn **txn)
{
   MDB_txn *spare = __atomic_exchange_n (&e->spare_read, NULL, __ATOMIC_ACQ_REL);
   if (spare) {
      if (!mdb_txn_renew (spare)) {
         *txn = spare;
         return 0;
      }
      mdb_txn_abort (spare);
   }
   return mdb_txn_begin (e->env, NULL, MDB_RDONLY, txn);
}

/* Ends read-only transaction txn: reset (its snapshot released: old pages
 * can be reused) and kept as the handle's spare; a spare already there
 * (another thread's) is aborted. */
static void
read_end (dj_engine_t *e, MDB_txn *txn)
{
   mdb_txn_reset (txn);
   MDB_txn *old = __atomic_exchange_n (&e->spare_read, txn, __ATOMIC_ACQ_REL);
   if (old) {
      mdb_txn_abort (old);
   }
}

bool
dj_txn_begin (dj_engine_t *e, bool write, dj_ctx_t *ctx, bson_error_t *error)
{
   dj_engine_txn_t *outer = tls_txn && tls_txn->engine->env == e->env ? tls_txn : NULL;
   int rc;

   if (outer && write && outer->readonly && !upgrade (outer, error)) {
      return false;
   }
   ctx->engine = e;
   ctx->write = write;
   ctx->borrowed = false;
   ctx->top = false;
   ctx->txn = NULL;
   ctx->chg.valid = ctx->chg.dirty = false;
   ctx->chg.ins_docs = NULL;
   ctx->chg.ins_db = ctx->chg.ins_coll = NULL;
   memset (ctx->puts, 0, sizeof ctx->puts);
   ctx->direct = NULL;
   if (outer && !outer->txn) {
      return lost_error (error);
   }
   if (outer && write && outer->flat && !outer->child && !outer->shares) {
      /* a write the caller lets into its transaction itself
       * (dj_engine_txn_set_flat): nothing to undo if it fails, the
       * caller aborts the whole transaction then */
      owner_of (outer)->wrote = true;
      ctx->txn = outer->txn;
      ctx->borrowed = true;
      return true;
   }
   if (outer && !write) {
      ctx->txn = outer->txn;
      ctx->borrowed = true;
      outer->read = true;
      return true;
   }
   if (outer && fresh (outer)) {
      ctx->txn = outer->txn;
      ctx->direct = outer;
      return true;
   }
   if (outer) {
      owner_of (outer)->wrote = true;
      rc = mdb_txn_begin (e->env, outer->txn, 0, &ctx->txn);
   } else {
      if (write && !dj_env_writer_check (e, error)) {
         return false;
      }
      rc = write ? mdb_txn_begin (e->env, NULL, 0, &ctx->txn) : read_begin (e, &ctx->txn);
      if (!rc && write) {
         dj_env_writer_set (e, true);
         ctx->top = true;
      }
   }
   if (rc) {
      ctx->txn = NULL;
      return dj_lmdb_error (rc, error, "cannot begin a transaction");
   }
   return true;
}

/* ctx's put cursor `slot` (opened here at first use) into *cur; NULL for a
 * slot past DJ_PUT_CURSORS (the caller goes without). LMDB's code. */
static int
put_cursor (dj_ctx_t *ctx, int slot, MDB_cursor **cur)
{
   *cur = NULL;
   if (slot < 0 || slot >= DJ_PUT_CURSORS) {
      return 0;
   }
   if (!ctx->puts[slot]) {
      int rc = mdb_cursor_open (ctx->txn, ctx->engine->dbi_data, &ctx->puts[slot]);
      if (rc) {
         ctx->puts[slot] = NULL;
         return rc;
      }
   }
   *cur = ctx->puts[slot];
   return 0;
}

int
dj_ctx_put (dj_ctx_t *ctx, int slot, MDB_val *k, MDB_val *v, unsigned flags)
{
   MDB_cursor *cur;
   int rc = put_cursor (ctx, slot, &cur);
   return rc ? rc : cur ? mdb_cursor_put (cur, k, v, flags) : mdb_put (ctx->txn, ctx->engine->dbi_data, k, v, flags);
}

/* Closes ctx's put cursors: before its transaction ends (LMDB frees a
 * write transaction's cursors with it). */
static void
puts_close (dj_ctx_t *ctx)
{
   for (int i = 0; i < DJ_PUT_CURSORS; i++) {
      if (ctx->puts[i]) {
         mdb_cursor_close (ctx->puts[i]);
         ctx->puts[i] = NULL;
      }
   }
}

static void
ctx_end (dj_ctx_t *ctx)
{
   if (ctx->top) {
      /* cleared before LMDB releases its lock, so the next writer's mark
       * (set after it gets the lock) is never overwritten */
      dj_env_writer_set (ctx->engine, false);
      ctx->top = false;
   }
}

bool
dj_txn_commit (dj_ctx_t *ctx, bson_error_t *error)
{
   int rc = 0;
   if (!dj_changes_flush (ctx, error)) {
      dj_txn_abort (ctx);
      return false;
   }
   puts_close (ctx);
   ctx_end (ctx);
   if (ctx->direct) {
      /* (its writes are in the caller's transaction already; what it
       * read is in its reply) */
      owner_of (ctx->direct)->wrote = true;
      ctx->direct->read = true;
   } else if (!ctx->borrowed && !ctx->write) {
      read_end (ctx->engine, ctx->txn); /* (a read-only transaction has nothing to commit) */
   } else if (!ctx->borrowed) {
      rc = mdb_txn_commit (ctx->txn);
   }
   ctx->txn = NULL;
   if (rc) {
      return dj_commit_error (ctx->engine, rc, error);
   }
   return true;
}

void
dj_txn_abort (dj_ctx_t *ctx)
{
   if (ctx->error_info) {
      bson_destroy (ctx->error_info);
      ctx->error_info = NULL;
   }
   dj_changes_discard (ctx);
   puts_close (ctx);
   if (ctx->txn) {
      ctx_end (ctx);
      if (ctx->direct) {
         owner_of (ctx->direct)->wrote = true; /* (what it wrote, if anything) */
         undo (ctx->direct);
      } else if (!ctx->borrowed && !ctx->write) {
         read_end (ctx->engine, ctx->txn);
      } else if (!ctx->borrowed) {
         mdb_txn_abort (ctx->txn);
      }
      ctx->txn = NULL;
   }
}

void
dj_ctx_error_info (dj_ctx_t *ctx, const bson_error_t *e, bson_t *into)
{
   if (!ctx->error_info) {
      return;
   }
   if (e->domain == DJ_DOMAIN_SERVER && (e->code == DJ_DuplicateKey || e->code == DJ_DocumentValidationFailure)) {
      bson_concat (into, ctx->error_info);
   }
   bson_destroy (ctx->error_info);
   ctx->error_info = NULL;
}

/* ---- callers' transactions ------------------------------------------------- */

/* A snapshot's first write: a write transaction that starts exactly where
 * the snapshot stands (LMDB's transaction ids count commits), or
 * WriteConflict. https://www.mongodb.com/docs/manual/core/transactions-production-consideration/#in-progress-transactions-and-write-conflicts */
static bool
upgrade (dj_engine_txn_t *t, bson_error_t *error)
{
   dj_engine_t *e = t->engine;
   MDB_envinfo info;
   size_t snap = mdb_txn_id (t->txn);
   mdb_env_info (e->env, &info);
   if (info.me_last_txnid != snap) {
      return dj_err (error, DJ_WriteConflict, "WriteConflict: the data changed since this transaction's snapshot");
   }
   if (!dj_env_snapshot_writer_claim (e)) {
      return dj_err (error, DJ_WriteConflict, "WriteConflict: another transaction is writing");
   }
   MDB_txn *w = NULL;
   int rc = dj_env_writer_check (e, error) ? mdb_txn_begin (e->env, NULL, 0, &w) : -1;
   if (rc || mdb_txn_id (w) != snap + 1) {
      /* -1: the writer check set error; else a commit slipped in between */
      if (w) {
         mdb_txn_abort (w);
      }
      dj_env_snapshot_writer_release (e);
      if (rc > 0) {
         return dj_lmdb_error (rc, error, "cannot begin a transaction");
      }
      return rc ? false : dj_err (error, DJ_WriteConflict, "WriteConflict: the data changed since this transaction's snapshot");
   }
   dj_env_writer_set (e, true);
   mdb_txn_abort (t->txn);
   t->txn = w;
   t->readonly = false;
   t->snapshot_writer = true;
   return true;
}

/* A handle on a begun LMDB transaction, owned by this thread. */
static dj_engine_txn_t *
txn_new (dj_engine_t *e, MDB_txn *txn, dj_engine_txn_t *parent, bool readonly)
{
   dj_engine_txn_t *t = bson_malloc0 (sizeof *t);
   t->engine = e;
   t->txn = txn;
   t->parent = parent;
   t->readonly = readonly;
   t->thread = pthread_self ();
   return t;
}

dj_engine_txn_t *
dj_engine_txn_begin_snapshot (dj_engine_t *e, bson_error_t *error)
{
   MDB_txn *txn = NULL;
   int rc = mdb_txn_begin (e->env, NULL, MDB_RDONLY, &txn);
   if (rc) {
      dj_lmdb_error (rc, error, "cannot begin a transaction");
      return NULL;
   }
   return txn_new (e, txn, NULL, true);
}

static bool
owned_here (const dj_engine_txn_t *t, bson_error_t *error)
{
   if (!pthread_equal (t->thread, pthread_self ())) {
      return dj_err (error, DJ_IllegalOperation, "a transaction may only be used by the thread that began it");
   }
   return true;
}

dj_engine_txn_t *
dj_engine_txn_begin (dj_engine_t *e, dj_engine_txn_t *parent, bson_error_t *error)
{
   MDB_txn *txn = NULL;
   int rc;

   if (parent) {
      if (!owned_here (parent, error)) {
         return NULL;
      }
      if (parent->child) {
         dj_err (error, DJ_IllegalOperation, "the transaction already has an open nested transaction");
         return NULL;
      }
      if (parent->engine->env != e->env) {
         dj_err (error, DJ_IllegalOperation, "a nested transaction must be on its parent's data directory");
         return NULL;
      }
      if (!parent->txn) {
         lost_error (error);
         return NULL;
      }
      if (parent->readonly && !upgrade (parent, error)) {
         return NULL;
      }
      if (fresh (parent)) {
         /* (the header: it shares its parent's transaction) */
         dj_engine_txn_t *t = txn_new (e, parent->txn, parent, false);
         t->shares = true;
         parent->child = t;
         return t;
      }
      owner_of (parent)->wrote = true;
      rc = mdb_txn_begin (e->env, parent->txn, 0, &txn);
   } else {
      if (!dj_env_writer_check (e, error)) {
         return NULL;
      }
      rc = mdb_txn_begin (e->env, NULL, 0, &txn);
   }
   if (rc) {
      dj_lmdb_error (rc, error, "cannot begin a transaction");
      return NULL;
   }
   dj_engine_txn_t *t = txn_new (e, txn, parent, false);
   if (parent) {
      parent->child = t;
   } else {
      dj_env_writer_set (e, true);
   }
   return t;
}

/* Unlinks t from its parent, clears the writer mark of a top-level one, and
 * frees t's open descendants' handles (LMDB ends their transactions with t's). */
static void
txn_release (dj_engine_txn_t *t)
{
   for (dj_engine_txn_t *c = t->child, *next; c; c = next) {
      next = c->child;
      bson_free (c);
   }
   if (t->parent) {
      t->parent->child = NULL;
   } else if (!t->readonly) {
      dj_env_writer_set (t->engine, false);
   }
   if (t->snapshot_writer) {
      dj_env_snapshot_writer_release (t->engine);
   }
}

static void
txn_free (dj_engine_txn_t *t)
{
   if (t->lsid) {
      bson_destroy (t->lsid);
   }
   bson_free (t);
}

void
dj_engine_txn_set_session (dj_engine_txn_t *t, const bson_t *lsid, int64_t txn_number)
{
   if (t->lsid) {
      bson_destroy (t->lsid);
   }
   t->lsid = lsid ? bson_copy (lsid) : NULL;
   t->txn_number = txn_number;
}

void
dj_engine_txn_set_flat (dj_engine_txn_t *t, bool flat)
{
   t->flat = flat;
}

bool
dj_txn_session (const dj_ctx_t *ctx, const bson_t **lsid, int64_t *txn_number)
{
   dj_engine_txn_t *top = tls_txn && tls_txn->engine->env == ctx->engine->env ? tls_txn : NULL;
   while (top && top->parent) {
      top = top->parent;
   }
   if (!top || !top->lsid) {
      return false;
   }
   *lsid = top->lsid;
   *txn_number = top->txn_number;
   return true;
}

bool
dj_engine_txn_commit (dj_engine_txn_t *t, bson_error_t *error)
{
   if (!t) {
      return true;
   }
   if (!owned_here (t, error)) {
      return false;
   }
   /* innermost first: each nested transaction's writes join its parent
    * (one sharing its parent's transaction has joined it already) */
   int rc = 0;
   dj_engine_txn_t *inner = t;
   while (inner->child) {
      inner = inner->child;
   }
   while (inner != t && !rc) {
      if (!inner->shares) {
         rc = mdb_txn_commit (inner->txn);
      }
      inner->parent->read |= inner->read;
      inner->txn = NULL;
      inner = inner->parent;
   }
   bool lost = !t->txn;
   if (lost) {
      rc = EINVAL;
   } else if (t->shares) {
      if (rc) {
         owner_of (t)->wrote = true; /* (a nested one's commit failed: all of t undone) */
         undo (t);
      } else {
         t->parent->read |= t->read;
      }
   } else if (rc) {
      mdb_txn_abort (t->txn); /* also ends what is left under it */
   } else if (!(rc = mdb_txn_commit (t->txn)) && t->parent) {
      t->parent->read |= t->read;
   }
   const dj_engine_t *engine = t->engine;
   txn_release (t);
   txn_free (t);
   if (lost) {
      return lost_error (error);
   }
   if (rc) {
      return dj_commit_error (engine, rc, error);
   }
   return true;
}

void
dj_engine_txn_abort (dj_engine_txn_t *t)
{
   if (!t) {
      return;
   }
   if (!pthread_equal (t->thread, pthread_self ()) && !(t->readonly && !t->parent)) {
      /* Another thread cannot release LMDB's write lock (a robust mutex
       * refuses a non-owner's unlock). This happens when a connection is
       * garbage-collected on another thread: the LMDB transaction is left
       * as it is -- nothing of it is ever written -- and LMDB discards it
       * when the owning thread exits (the next writer finds the lock's
       * owner dead and recovers). Until then, that thread's writes get
       * WriteConflict and other writers wait. Only the handles are freed.
       * (A snapshot that never wrote is a read-only LMDB transaction, which
       * the environment's MDB_NOTLS lets any thread end: it is aborted
       * below, so that its reader slot is not held until the process exits.) */
      for (dj_engine_txn_t *c = t; c; c = c->child) {
         c->txn = NULL;
      }
      if (t->parent) {
         t->parent->child = NULL;
      }
      for (dj_engine_txn_t *c = t, *next; c; c = next) {
         next = c->child;
         txn_free (c);
      }
      return;
   }
   if (t->shares) {
      undo (t); /* (what was written in it and under it) */
   } else {
      mdb_txn_abort (t->txn);
   }
   txn_release (t);
   txn_free (t);
}

bool
dj_txn_enter (dj_engine_t *e, dj_engine_txn_t *t, dj_engine_txn_t **saved, bson_error_t *error)
{
   if (!owned_here (t, error)) {
      return false;
   }
   if (t->child) {
      return dj_err (error, DJ_IllegalOperation, "the transaction has an open nested transaction; run commands in that one");
   }
   if (t->engine->env != e->env) {
      return dj_err (error, DJ_IllegalOperation, "the transaction belongs to another data directory");
   }
   *saved = tls_txn;
   tls_txn = t;
   return true;
}

void
dj_txn_leave (dj_engine_txn_t *saved)
{
   tls_txn = saved;
}
