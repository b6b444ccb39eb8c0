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
   pthread_t thread;
   bson_t *lsid;            /* owned, or NULL: the session it is a transaction of */
   int64_t txn_number;
};

/* The caller's transaction for the command running on this thread. */
static _Thread_local dj_engine_txn_t *tls_txn;

static bool upgrade (dj_engine_txn_t *t, bson_error_t *error);

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
   if (outer && !write) {
      ctx->txn = outer->txn;
      ctx->borrowed = true;
      return true;
   }
   if (outer) {
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
   if (!ctx->borrowed && !ctx->write) {
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
      if (!ctx->borrowed && !ctx->write) {
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
      if (parent->readonly && !upgrade (parent, error)) {
         return NULL;
      }
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
   /* innermost first: each nested transaction's writes join its parent */
   int rc = 0;
   dj_engine_txn_t *inner = t;
   while (inner->child) {
      inner = inner->child;
   }
   while (inner != t && !rc) {
      rc = mdb_txn_commit (inner->txn);
      inner->txn = NULL;
      inner = inner->parent;
   }
   if (rc) {
      mdb_txn_abort (t->txn); /* also ends what is left under it */
   } else {
      rc = mdb_txn_commit (t->txn);
   }
   const dj_engine_t *engine = t->engine;
   txn_release (t);
   txn_free (t);
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
   mdb_txn_abort (t->txn);
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
