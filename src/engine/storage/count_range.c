/*
 * count_range.c -- the entries of one key range of the data DBI counted,
 * nothing read but their keys: a covered count ({rating: {$lt: 50}} on a
 * plain index) or a collection's records counted.
 *
 * The cost is LMDB's step from key to key; what is ours per key is one
 * comparison with the range's end, written inline on 8-byte words (the
 * start is where the walk seeks to; an exclusive start's keys are skipped
 * once, at the start, since they come first).
 *
 * A long range is counted by two walkers meeting in the middle, the way
 * PostgreSQL's parallel index-only scans share one index: the caller walks
 * forward from the start, a helper thread backward from the end, each in
 * chunks of keys. A walker claims a chunk under a lock only if it stays
 * clear of what the other has claimed (forward: its last key below the
 * other's lowest; backward: its lowest key above the other's last), else it
 * stops; so the two claims never overlap, and what lies between them when
 * both have stopped (at most about a chunk from each) is walked by the
 * caller at the end. The split needs no guess of where the middle is, and
 * the count stays exact whatever the helper does: should it count nothing
 * (no thread, its own snapshot not the caller's, an LMDB error), the caller
 * walks the rest itself.
 *
 * The helper reads in a read transaction of its own, used only when it sees
 * the same snapshot as the caller's: mdb_txn_id equal. A write transaction
 * (its own uncommitted writes, a savepoint) has the id of the commit it
 * will make, which no reader sees, so it is always counted by the caller
 * alone; so is a snapshot that something committed after (the engine's
 * snapshot reads, DEVELOPERS.md). The helper is the only thread that
 * touches its transaction, cursor and key copies; it lives within one call
 * (joined before the count returns) with every signal blocked, as the TTL
 * monitor's thread.
 */
#include "dj_storage.h"

#include <pthread.h>
#include <signal.h>

/* The keys counted by the caller alone before a helper is worth starting
 * (a thread and a read transaction cost some tens of microseconds: the
 * walk of about a thousand keys), and the keys per claimed chunk. */
enum { SERIAL_KEYS = 16384, CHUNK_KEYS = 2048 };

/* ---- keys compared as LMDB's default order compares them ---------------- */
static inline uint64_t
be64 (const uint8_t *p)
{
   uint64_t v;
   memcpy (&v, p, 8);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
   v = __builtin_bswap64 (v);
#endif
   return v;
}

/* memcmp's sign over the common length (0: one starts with the other). */
static inline int
prefix_cmp (const uint8_t *a, const uint8_t *b, size_t n)
{
   size_t i = 0;
   for (; i + 8 <= n; i += 8) {
      uint64_t x = be64 (a + i), y = be64 (b + i);
      if (x != y) {
         return x < y ? -1 : 1;
      }
   }
   for (; i < n; i++) {
      if (a[i] != b[i]) {
         return a[i] < b[i] ? -1 : 1;
      }
   }
   return 0;
}

/* LMDB's order: bytes, then the shorter first (dj_key_cmp in
 * storage-private.h, over prefix_cmp's words: the walkers compare each key
 * they step on with the other's position). */
static int
key_cmp (const MDB_val *k, const dj_buf_t *b)
{
   size_t n = k->mv_size < b->len ? k->mv_size : b->len;
   int c = prefix_cmp (k->mv_data, b->data, n);
   return c ? c : (k->mv_size > b->len) - (k->mv_size < b->len);
}

/* The range: keys from `start` (those starting with it left out when
 * start_skip) to `end` (those starting with it inside when end_incl). */
typedef struct {
   dj_buf_t start, end;
   bool start_skip, end_incl;
} span_t;

static inline bool
before_end (const span_t *sp, const MDB_val *k)
{
   size_t n = k->mv_size < sp->end.len ? k->mv_size : sp->end.len;
   int c = prefix_cmp (k->mv_data, sp->end.data, n);
   return c < 0 || (c == 0 && (k->mv_size < sp->end.len || sp->end_incl));
}

static bool
starts_with (const MDB_val *k, const dj_buf_t *p)
{
   return k->mv_size >= p->len && !memcmp (k->mv_data, p->data, p->len);
}

static void
set_key (dj_buf_t *b, const MDB_val *k)
{
   b->len = 0;
   dj_buf_append (b, k->mv_data, k->mv_size);
}

/* ---- the two walkers' shared claims ---------------------------------------- */
/* On count_span's stack, its buffers owned by it (freed after the join). */
typedef struct {
   pthread_mutex_t mu; /* guards fwd, bwd, bwd_claimed, bwd_n */
   dj_buf_t fwd;       /* the forward walker counted every key up to and including this one */
   dj_buf_t bwd;       /* the backward walker counted every key from this one up (valid if bwd_claimed) */
   bool bwd_claimed;
   int64_t bwd_n; /* the keys the backward walker claimed */
   /* the helper's: read-only while it runs */
   MDB_env *env;
   MDB_dbi dbi;
   uint64_t snapshot; /* the caller's mdb_txn_id */
   const span_t *sp;
   size_t chunk;
} meet_t;

/* Positions cur on the range's last key, if any is below the end. */
static int
seek_end (MDB_cursor *cur, const span_t *sp, MDB_val *k, MDB_val *v)
{
   dj_buf_t succ;
   int rc = MDB_NOTFOUND;
   size_t n = sp->end.len;

   dj_buf_init (&succ);
   dj_buf_append (&succ, sp->end.data, n);
   if (sp->end_incl) { /* past every key starting with end: its successor */
      while (n && succ.data[n - 1] == 0xFF) {
         n--;
      }
      if (n) {
         succ.data[n - 1]++;
      }
   }
   if (n) {
      k->mv_size = n;
      k->mv_data = succ.data;
      rc = mdb_cursor_get (cur, k, v, MDB_SET_RANGE);
   }
   rc = rc == 0 ? mdb_cursor_get (cur, k, v, MDB_PREV) : rc == MDB_NOTFOUND ? mdb_cursor_get (cur, k, v, MDB_LAST) : rc;
   dj_buf_cleanup (&succ);
   return rc;
}

/* The backward walker: chunks claimed from the end down while they stay
 * above the forward walker's claim. */
static void *
helper_main (void *arg)
{
   meet_t *m = arg;
   MDB_txn *txn = NULL;
   MDB_cursor *cur = NULL;
   MDB_val k, v;
   dj_buf_t low; /* the chunk's lowest key */
   int rc;

   dj_buf_init (&low);
   if ((rc = mdb_txn_begin (m->env, NULL, MDB_RDONLY, &txn))) {
      goto done;
   }
   if (mdb_txn_id (txn) != m->snapshot || (rc = mdb_cursor_open (txn, m->dbi, &cur))) {
      goto done; /* another snapshot: the caller counts alone */
   }
   rc = seek_end (cur, m->sp, &k, &v);
   while (rc == 0) {
      int64_t n = 0;
      MDB_val lowest = k; /* (LMDB keeps it valid: a read transaction) */
      for (size_t i = 0; i < m->chunk && rc == 0; i++) {
         n++;
         lowest = k;
         rc = mdb_cursor_get (cur, &k, NULL, MDB_PREV);
      }
      set_key (&low, &lowest);
      pthread_mutex_lock (&m->mu);
      bool clear = key_cmp (&lowest, &m->fwd) > 0;
      if (clear) {
         dj_buf_t t = m->bwd;
         m->bwd = low;
         low = t;
         m->bwd_claimed = true;
         m->bwd_n += n;
      }
      pthread_mutex_unlock (&m->mu);
      if (!clear) {
         break;
      }
   }
done: /* (an LMDB error here is no error of the count: the caller walks what was not claimed) */
   if (cur) {
      mdb_cursor_close (cur);
   }
   if (txn) {
      mdb_txn_abort (txn);
   }
   dj_buf_cleanup (&low);
   return NULL;
}

/* Counts keys forward from the entry the cursor is on (k; rc: LMDB's
 * answer that put it there) while they lie before `stop` -- the backward
 * walker's claim -- or, stop NULL, the range's end; at most max of them (0:
 * no limit). *last: the last key counted, when one was (LMDB keeps it valid
 * while the transaction writes nothing). Leaves the cursor on the first key
 * not counted; *at_end when that one is past the range (or there is none).
 * Returns LMDB's error, 0 if none. */
static int
walk_fwd (MDB_cursor *cur, MDB_val *k, int rc, const span_t *sp, const dj_buf_t *stop, size_t max,
          int64_t *n, MDB_val *last, bool *at_end)
{
   size_t i = 0;
   *at_end = false;
   while (rc == 0) {
      if (stop ? key_cmp (k, stop) >= 0 : !before_end (sp, k)) {
         *at_end = true;
         break;
      }
      if (max && i == max) {
         break;
      }
      i++;
      *last = *k;
      /* (no value asked: LMDB's step then reads none -- mdb.c's
       * mdb_cursor_next/prev read the node's value only into a given one) */
      rc = mdb_cursor_get (cur, k, NULL, MDB_NEXT);
   }
   *n += (int64_t) i;
   if (rc == 0) {
      return 0;
   }
   *at_end = true;
   return rc == MDB_NOTFOUND ? 0 : rc;
}

/* The forward walk in chunks, each claimed while it stays below the
 * helper's claim; from the key the cursor is on (k), past the claim m->fwd. */
static int
walk_claimed (meet_t *m, MDB_cursor *cur, MDB_val *k, const span_t *sp, int64_t *n)
{
   bool at_end = false;
   int rc = 0;
   while (!at_end) {
      int64_t c = 0;
      MDB_val last = {0};
      if ((rc = walk_fwd (cur, k, rc, sp, NULL, m->chunk, &c, &last, &at_end)) || !c) {
         return rc;
      }
      pthread_mutex_lock (&m->mu);
      bool clear = !m->bwd_claimed || key_cmp (&last, &m->bwd) < 0;
      if (clear) {
         set_key (&m->fwd, &last);
      }
      pthread_mutex_unlock (&m->mu);
      if (!clear) {
         return 0; /* met: the rest is the gap's */
      }
      *n += c;
   }
   return 0;
}

/* Whether a helper's read transaction leaves LMDB's reader table room for
 * the commands' own: not once half its slots have been in use at a time
 * (me_numreaders: the most slots used so far), so that helpers never make
 * a command's read fail with MDB_READERS_FULL. */
static bool
room_for_helper (dj_ctx_t *ctx)
{
   MDB_envinfo info;
   return mdb_env_info (ctx->engine->env, &info) == 0 && info.me_numreaders < info.me_maxreaders / 2;
}

static bool
count_span (dj_ctx_t *ctx, const span_t *sp, size_t serial, size_t chunk, int64_t *out, int64_t *helped,
            bson_error_t *error)
{
   MDB_cursor *cur;
   MDB_val k = {.mv_size = sp->start.len, .mv_data = sp->start.data}, v, last = {0};
   int64_t n = 0;
   bool at_end;
   int rc = mdb_cursor_open (ctx->txn, ctx->engine->dbi_data, &cur);
   if (rc) {
      return dj_lmdb_error (rc, error, "index count");
   }
   rc = mdb_cursor_get (cur, &k, &v, MDB_SET_RANGE);
   while (rc == 0 && sp->start_skip && starts_with (&k, &sp->start)) {
      rc = mdb_cursor_get (cur, &k, &v, MDB_NEXT);
   }
   rc = walk_fwd (cur, &k, rc, sp, NULL, serial, &n, &last, &at_end);
   if (rc == 0 && !at_end) {
      /* a long range: a helper from the end meets this walk */
      meet_t m = {.env = ctx->engine->env, .dbi = ctx->engine->dbi_data, .snapshot = mdb_txn_id (ctx->txn), .sp = sp,
                  .chunk = chunk};
      pthread_t th;
      sigset_t all, was;
      pthread_mutex_init (&m.mu, NULL);
      dj_buf_init (&m.fwd);
      dj_buf_init (&m.bwd);
      set_key (&m.fwd, &last); /* the serial walk's keys are claimed */
      sigfillset (&all);
      pthread_sigmask (SIG_BLOCK, &all, &was);
      bool started = room_for_helper (ctx) && pthread_create (&th, NULL, helper_main, &m) == 0;
      pthread_sigmask (SIG_SETMASK, &was, NULL);
      if (started) {
         rc = walk_claimed (&m, cur, &k, sp, &n);
         pthread_join (th, NULL);
      }
      if (rc == 0) {
         /* what neither claimed: after the forward claim (a key of this
          * snapshot: the seek lands on it), below the backward one */
         k.mv_size = m.fwd.len;
         k.mv_data = m.fwd.data;
         rc = mdb_cursor_get (cur, &k, &v, MDB_SET_RANGE);
         rc = rc ? rc : mdb_cursor_get (cur, &k, &v, MDB_NEXT);
         rc = walk_fwd (cur, &k, rc, sp, m.bwd_claimed ? &m.bwd : NULL, 0, &n, &last, &at_end);
         n += m.bwd_n;
         *helped = m.bwd_n;
      }
      pthread_mutex_destroy (&m.mu);
      dj_buf_cleanup (&m.fwd);
      dj_buf_cleanup (&m.bwd);
   }
   mdb_cursor_close (cur);
   if (rc) {
      return dj_lmdb_error (rc, error, "index count");
   }
   *out = n;
   return true;
}

bool
dj_count_range (dj_ctx_t *ctx, const dj_count_range_t *r, int64_t *n, bson_error_t *error)
{
   span_t sp = {.start_skip = r->lo && r->lo_skip};
   int64_t helped = 0;
   dj_buf_init (&sp.start);
   dj_buf_init (&sp.end);
   dj_buf_put_u64be (&sp.start, r->id);
   dj_buf_put_u64be (&sp.end, r->id);
   if (r->lo) {
      dj_buf_append (&sp.start, r->lo->data, r->lo->len);
   }
   if (r->hi) {
      dj_buf_append (&sp.end, r->hi->data, r->hi->len);
   }
   sp.end_incl = r->hi ? r->hi_incl : true; /* no end: every key with the id */
   bool ok = count_span (ctx, &sp, r->serial_keys ? r->serial_keys : SERIAL_KEYS,
                         r->chunk_keys ? r->chunk_keys : CHUNK_KEYS, n, &helped, error);
   if (r->helped) {
      *r->helped = helped;
   }
   dj_buf_cleanup (&sp.start);
   dj_buf_cleanup (&sp.end);
   return ok;
}
