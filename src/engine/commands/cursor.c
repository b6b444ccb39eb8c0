/*
 * cursor.c -- results waiting for getMore.
 *
 * A find's results are materialised when the find runs (one LMDB read
 * transaction, so the cursor sees one consistent snapshot) and handed out in
 * batches. Cursors live in the engine's list, guarded by cursors_mu; a cursor
 * not touched for ten minutes is discarded, as MongoDB's idle timeout does.
 *
 * Ids are random (a positive int64, never 0), as mongod's are, so that one
 * client cannot guess another's cursor; and a cursor belongs to the user
 * whose command opened it (dj_engine_run_command_as): another user's
 * getMore or killCursors fails with Unauthorized (13), as mongod's does
 * (https://www.mongodb.com/docs/manual/reference/command/getMore/ --
 * "the user must be the user who created the cursor").
 */
#include "dj_commands.h"
#include "dj_bson_array.h"
#include "dj_buf.h"

#include <stdio.h>
#include <sys/random.h>
#include <time.h>


#define DJ_CURSOR_IDLE_SECONDS 600

struct dj_cursor {
   int64_t id;
   char *ns;     /* owned */
   dj_tail_t *tail; /* owned: a tailable cursor's collection and filter, else NULL */
   dj_stream_t *stream; /* owned: a change stream's (changestream.c), else NULL */
   dj_spill_t *spill;   /* owned: a spilled sort's merge the documents come from, else NULL */
   void *keep;          /* owned: what spill borrows (its sort), freed by keep_free after it */
   void (*keep_free) (void *);
   char *owner;  /* owned: "user@db" who opened it, or NULL (no authentication) */
   bson_t **docs; /* owned, with each document */
   size_t n, pos;
   bool streamed; /* a find's: a batch filled to its size does not look past its last document */
   time_t used;
   dj_cursor_t *next;
};

static void
cursor_free (dj_cursor_t *c)
{
   dj_bsons_free (c->docs, c->pos, c->n); /* the ones not sent */
   bson_free (c->ns);
   bson_free (c->owner);
   dj_tail_free (c->tail);
   dj_stream_free (c->stream);
   dj_spill_destroy (c->spill); /* closes its files: they go */
   if (c->keep_free) {
      c->keep_free (c->keep);
   }
   bson_free (c);
}

void
dj_cursor_attach_stream (dj_engine_t *e, int64_t id, dj_stream_t *s)
{
   pthread_mutex_lock (&e->cursors_mu);
   for (dj_cursor_t *c = e->cursors; c; c = c->next) {
      if (c->id == id) {
         c->stream = s;
         s = NULL;
      }
   }
   pthread_mutex_unlock (&e->cursors_mu);
   dj_stream_free (s); /* (reaped meanwhile: nobody can ask for it) */
}

void
dj_tail_free (dj_tail_t *t)
{
   if (t) {
      bson_destroy (t->filter);
      bson_destroy (t->projection);
      DJ_FREE (t->db, t->coll, t);
   }
}

/* The user the commands on this thread run for (borrowed from the caller of
 * dj_engine_run_command_as for the length of the command), NULL for none.
 * Thread-local like the current transaction (storage/txn.c): each command
 * runs on its caller's thread. */
static _Thread_local const char *tls_user;

const char *
dj_cursor_user_enter (const char *user)
{
   const char *saved = tls_user;
   tls_user = user;
   return saved;
}

void
dj_cursor_user_leave (const char *saved)
{
   tls_user = saved;
}

static bool
owned_by_caller (const dj_cursor_t *c)
{
   return c->owner ? tls_user && !strcmp (c->owner, tls_user) : !tls_user;
}

/* A random positive id no open cursor has. Caller holds cursors_mu. */
static int64_t
new_cursor_id (dj_engine_t *e)
{
   for (;;) {
      uint64_t r = 0;
      if (getrandom (&r, sizeof r, 0) != (ssize_t) sizeof r) {
         r = (uint64_t) ++e->next_cursor_id * 0x9E3779B97F4A7C15u; /* no entropy source: distinct, if guessable */
      }
      int64_t id = (int64_t) (r & INT64_MAX);
      bool taken = id == 0;
      for (dj_cursor_t *c = e->cursors; c && !taken; c = c->next) {
         taken = c->id == id;
      }
      if (!taken) {
         return id;
      }
   }
}

/* Caller holds cursors_mu. */
static void
reap_idle (dj_engine_t *e, time_t now)
{
   dj_cursor_t **pp = &e->cursors;
   while (*pp) {
      if (now - (*pp)->used > DJ_CURSOR_IDLE_SECONDS) {
         dj_cursor_t *dead = *pp;
         *pp = dead->next;
         cursor_free (dead);
      } else {
         pp = &(*pp)->next;
      }
   }
}

int64_t
dj_cursor_open (dj_engine_t *e, const char *ns, bson_t **docs, size_t n, size_t pos)
{
   dj_cursor_t *c = bson_malloc0 (sizeof *c);
   c->ns = bson_strdup (ns);
   c->docs = docs;
   c->n = n;
   c->pos = pos;
   c->owner = tls_user ? bson_strdup (tls_user) : NULL;
   c->used = time (NULL);
   pthread_mutex_lock (&e->cursors_mu);
   reap_idle (e, c->used);
   c->id = new_cursor_id (e);
   c->next = e->cursors;
   e->cursors = c;
   pthread_mutex_unlock (&e->cursors_mu);
   return c->id;
}

void
dj_cursor_close_all (dj_engine_t *e)
{
   pthread_mutex_lock (&e->cursors_mu);
   while (e->cursors) {
      dj_cursor_t *c = e->cursors;
      e->cursors = c->next;
      cursor_free (c);
   }
   pthread_mutex_unlock (&e->cursors_mu);
}

static size_t
batch_end (bson_t **docs, size_t from, size_t n, int64_t batch_size)
{
   size_t end = from, bytes = 0;
   while (end < n && (batch_size <= 0 || (int64_t) (end - from) < batch_size)) {
      /* a batch stays under the 16 MiB reply limit, but holds at least one document */
      if (end > from && bytes + docs[end]->len > DJ_MAX_BSON_SIZE - 16 * 1024) {
         break;
      }
      bytes += docs[end]->len;
      end++;
   }
   return end;
}

/* Whether a batch [from, end) of a streamed cursor ends it: mongod's find
 * and getMore fill a batch until it holds batch_size documents *before*
 * asking the plan for the next one, so a batch filled exactly to its size
 * does not know it holds the last document -- the cursor stays open and
 * the next getMore finds the end (an empty batch, cursor id 0). A short
 * batch found the end. (A find whose limit or in-memory sort already
 * ended the plan is not streamed: the plan knows it is at its end.) */
static bool
batch_ends (bool streamed, size_t from, size_t end, size_t n, int64_t batch_size)
{
   if (end < n) {
      return false;
   }
   return !streamed || (int64_t) (end - from) != batch_size;
}

/* The end of the first batch of docs[0 .. n) */
static size_t
first_batch_end (bson_t **docs, size_t n, int64_t batch_size, bool single_batch)
{
   if (batch_size == 0 && !single_batch) {
      return 0; /* batchSize: 0 opens a cursor and returns nothing yet */
   }
   return batch_end (docs, 0, n, batch_size < 0 ? 101 : batch_size);
}

bool
dj_reply_keeps (bson_t **docs, size_t n, int64_t batch_size, bool single_batch)
{
   return !single_batch && first_batch_end (docs, n, batch_size, single_batch) < n;
}

static void
reply_results (dj_engine_t *e, bson_t *reply, const char *ns, bson_t **docs, size_t n, int64_t batch_size,
               bool single_batch, bool streamed)
{
   size_t end = first_batch_end (docs, n, batch_size, single_batch);
   int64_t id = 0;
   dj_reply_cursor (reply, ns, "firstBatch", docs, end, 0);
   for (size_t i = 0; i < end; i++) {
      bson_destroy (docs[i]);
   }
   if (!single_batch && (end < n || !batch_ends (streamed, 0, end, n, batch_size < 0 ? 101 : batch_size))) {
      id = dj_cursor_open (e, ns, docs, n, end);
      if (streamed) {
         pthread_mutex_lock (&e->cursors_mu);
         for (dj_cursor_t *c = e->cursors; c; c = c->next) {
            c->streamed = c->streamed || c->id == id;
         }
         pthread_mutex_unlock (&e->cursors_mu);
      }
      /* patch the id in: rebuild the cursor subdocument cheaply */
      bson_iter_t it, ci;
      if (bson_iter_init_find (&it, reply, "cursor") && bson_iter_recurse (&it, &ci) && bson_iter_find (&ci, "id")) {
         bson_iter_overwrite_int64 (&ci, id);
      }
      return;
   }
   dj_bsons_free (docs, end, n);
}

void
dj_reply_results (dj_engine_t *e, bson_t *reply, const char *ns, bson_t **docs, size_t n, int64_t batch_size,
                  bool single_batch)
{
   reply_results (e, reply, ns, docs, n, batch_size, single_batch, false);
}

void
dj_reply_find_results (dj_engine_t *e, bson_t *reply, const char *ns, bson_t **docs, size_t n, int64_t batch_size,
                       bool single_batch, bool streamed)
{
   reply_results (e, reply, ns, docs, n, batch_size, single_batch, streamed);
}

/* Up to `batch` documents (<= 0: about 4 MiB of them) from sp into *docs
 * (the caller's, *n of them); *end: sp ran out. False on an error. */
static bool
spill_fetch (dj_spill_t *sp, int64_t batch, bson_t ***docs, size_t *n, bool *end, bson_error_t *error)
{
   size_t cap = 0, bytes = 0;
   bson_t *doc = NULL;
   *docs = NULL;
   *n = 0;
   while ((batch > 0 ? (int64_t) *n < batch : bytes < 4 * 1024 * 1024) && (doc = dj_spill_next (sp, error))) {
      DJ_GROW (*docs, *n, cap, 16);
      (*docs)[(*n)++] = doc;
      bytes += doc->len;
   }
   *end = !doc;
   if (error->code) {
      dj_bsons_free (*docs, 0, *n);
      *docs = NULL;
      *n = 0;
      return false;
   }
   if (!*docs) {
      *docs = bson_malloc (sizeof (bson_t *));
   }
   return true;
}

void
dj_reply_spilled (dj_engine_t *e, bson_t *reply, const char *ns, dj_spill_t *sp, void *keep, void (*keep_free) (void *),
                  int64_t batch_size, bson_error_t *error)
{
   bson_t **docs;
   size_t n = 0, first = (size_t) (batch_size < 0 ? 101 : batch_size);
   bool end = false;
   /* one more than the batch: a batch that empties the merge knows it, and
    * the reply ends the cursor as a listed result's would */
   if (first && !spill_fetch (sp, (int64_t) first + 1, &docs, &n, &end, error)) {
      dj_spill_destroy (sp);
      keep_free (keep);
      return;
   }
   if (!first) {
      docs = bson_malloc (sizeof (bson_t *));
   }
   size_t out = n < first ? n : first;
   dj_reply_cursor (reply, ns, "firstBatch", docs, out, 0);
   for (size_t i = 0; i < out; i++) {
      bson_destroy (docs[i]);
   }
   if (end && n == out) {
      bson_free (docs);
      dj_spill_destroy (sp);
      keep_free (keep);
      return;
   }
   if (end) {
      dj_spill_destroy (sp); /* the rest is in docs */
      keep_free (keep);
      sp = NULL;
      keep = NULL;
      keep_free = NULL;
   }
   int64_t id = dj_cursor_open (e, ns, docs, n, out);
   pthread_mutex_lock (&e->cursors_mu);
   for (dj_cursor_t *c = e->cursors; c; c = c->next) {
      if (c->id == id) {
         c->spill = sp;
         c->keep = keep;
         c->keep_free = keep_free;
      }
   }
   pthread_mutex_unlock (&e->cursors_mu);
   bson_iter_t it, ci;
   if (bson_iter_init_find (&it, reply, "cursor") && bson_iter_recurse (&it, &ci) && bson_iter_find (&ci, "id")) {
      bson_iter_overwrite_int64 (&ci, id);
   }
}

void
dj_reply_tailable (dj_engine_t *e, bson_t *reply, const char *ns, bson_t **docs, size_t n, int64_t batch_size,
                   dj_tail_t *tail)
{
   size_t end = batch_size == 0 ? 0 : batch_end (docs, 0, n, batch_size < 0 ? 101 : batch_size);
   dj_reply_cursor (reply, ns, "firstBatch", docs, end, 0);
   for (size_t i = 0; i < end; i++) {
      bson_destroy (docs[i]);
   }
   int64_t id = dj_cursor_open (e, ns, docs, n, end);
   pthread_mutex_lock (&e->cursors_mu);
   for (dj_cursor_t *c = e->cursors; c; c = c->next) {
      if (c->id == id) {
         c->tail = tail;
      }
   }
   pthread_mutex_unlock (&e->cursors_mu);
   bson_iter_t it, ci;
   if (bson_iter_init_find (&it, reply, "cursor") && bson_iter_recurse (&it, &ci) && bson_iter_find (&ci, "id")) {
      bson_iter_overwrite_int64 (&ci, id);
   }
}

bool
dj_matches_add (uint64_t rid, const bson_t *doc, int32_t pos, void *ctx)
{
   dj_matches_t *m = ctx;
   bson_t out;
   if (m->proj && !dj_projection_apply (m->proj, doc, pos, &out, m->error)) {
      m->failed = true;
      return false;
   }
   if (m->n >= m->cap) {
      m->cap = m->cap ? m->cap * 2 : 16;
      m->docs = bson_realloc (m->docs, sizeof *m->docs * m->cap);
      m->rids = bson_realloc (m->rids, sizeof *m->rids * m->cap);
      m->poss = bson_realloc (m->poss, sizeof *m->poss * m->cap);
   }
   m->docs[m->n] = m->proj ? bson_copy (&out) : bson_copy (doc);
   if (m->proj) {
      bson_destroy (&out);
   }
   m->rids[m->n] = rid;
   m->poss[m->n++] = pos;
   return !m->max || m->n < m->max;
}

void
dj_matches_cleanup (dj_matches_t *m)
{
   dj_bsons_free (m->docs, 0, m->n);
   bson_free (m->rids);
   bson_free (m->poss);
   memset (m, 0, sizeof *m);
}

/* The tailable cursor's next documents: the records after its last one
 * that match, read in one snapshot; with awaitData, waiting up to wait_ms
 * for some (polled: writers of another process give no signal here). */
static bool
tail_fetch (dj_engine_t *e, dj_tail_t *tail, int64_t wait_ms, bson_t ***docs, size_t *n, bson_error_t *error)
{
   dj_matcher_t *m = dj_matcher_new (tail->filter, error);
   dj_projection_t *proj = NULL;
   if (!m || (tail->projection && !(proj = dj_projection_new (tail->projection, error)))) {
      dj_matcher_destroy (m);
      return false;
   }
   dj_matches_t t = {.proj = proj, .max = 100000 /* a batch's worth at most per read */, .error = error};
   int64_t deadline = dj_now_ms () + (tail->await_data ? wait_ms : 0);
   bool ok = true;
   for (;;) {
      dj_ctx_t ctx = {0};
      dj_coll_t *c = NULL;
      ok = dj_txn_begin (e, false, &ctx, error);
      if (ok) {
         c = dj_coll_load (&ctx, tail->db, tail->coll, error);
         ok = c || !error->code;
      }
      if (ok && c && tail->last_rid) {
         /* the record the cursor stopped at is gone (a capped collection
          * rolled over it, or it was deleted): the cursor is dead, there is
          * no "after" it to go on from
          * https://www.mongodb.com/docs/manual/core/tailable-cursors/ */
         bson_t doc;
         bson_error_t miss = {0};
         if (!dj_record_get (&ctx, c, tail->last_rid, &doc, &miss)) {
            ok = miss.domain == DJ_DOMAIN_STORAGE && miss.code == (uint32_t) MDB_NOTFOUND
                    ? dj_err (error, DJ_CappedPositionLost,
                              "CollectionScan died due to position in capped collection being deleted. Last seen "
                              "record id: RecordId(%" PRIu64 ")",
                              tail->last_rid)
                    : (*error = miss, false);
         }
      }
      if (ok && c) {
         ok = dj_plan_scan_after (&ctx, c, tail->last_rid, m, dj_matches_add, &t, error) && !t.failed;
      }
      dj_coll_free (c);
      dj_txn_abort (&ctx);
      if (!ok || t.n || dj_now_ms () >= deadline) {
         break;
      }
      struct timespec ts = {0, 20 * 1000000L};
      nanosleep (&ts, NULL);
   }
   dj_matcher_destroy (m);
   dj_projection_destroy (proj);
   if (t.n) {
      tail->last_rid = t.rids[t.n - 1];
   }
   *docs = t.docs; /* the caller's now, with their count */
   *n = t.n;
   bson_free (t.rids);
   bson_free (t.poss);
   return ok;
}

/* Appends the element `type key` (klen: strlen (key)) at w, its value to
 * follow; returns where the value goes. */
static uint8_t *
put_key (uint8_t *w, uint8_t type, const char *key, size_t klen)
{
   *w++ = type;
   memcpy (w, key, klen + 1);
   return w + klen + 1;
}

/* Writes the array of docs[0 .. n) (`size` bytes, batch_size's count)
 * at w; returns the byte after it. */
static uint8_t *
put_batch (uint8_t *w, bson_t **docs, size_t n, size_t size)
{
   char key[16] = "0";
   size_t klen = 1;
   dj_le32_write (w, (uint32_t) size);
   w += 4;
   for (size_t i = 0; i < n; i++) {
      w = put_key (w, BSON_TYPE_DOCUMENT, key, klen);
      memcpy (w, bson_get_data (docs[i]), docs[i]->len);
      w += docs[i]->len;
      klen = dj_bson_array_key_next (key, klen);
   }
   *w++ = 0;
   return w;
}

/* The bytes of the array of docs[0 .. n), each keyed by its index. */
static size_t
batch_size (bson_t **docs, size_t n)
{
   char key[16] = "0";
   size_t size = 5, klen = 1;
   for (size_t i = 0; i < n; i++) {
      size += 2 + klen + docs[i]->len;
      klen = dj_bson_array_key_next (key, klen); /* (carried on, not divided per digit) */
   }
   return size;
}

void
dj_reply_cursor (bson_t *reply, const char *ns, const char *batch_name, bson_t **docs, size_t n, int64_t id)
{
   /* the batch's bytes written at once, its size known first (each
    * document appended through libbson was ~450 instructions, a row of a
    * 100-row page) */
   size_t size = batch_size (docs, n), blen = strlen (batch_name), nslen = strlen (ns);
   /* {cursor: {<batch_name>: [...], id: <long>, ns: <string>}, ok: 1.0} */
   size_t csize = 4 + (2 + blen + size) + (1 + 3 + 8) + (1 + 3 + 4 + nslen + 1) + 1;
   size_t total = 4 + (1 + 7 + csize) + (1 + 3 + 8) + 1;
   uint8_t *w;
   if (reply->len == 5 && total <= INT32_MAX && (w = bson_reserve_buffer (reply, (uint32_t) total))) {
      /* a reply begun empty (a command's handler's, as a rule): the whole
       * of it written in its own buffer, the documents copied once */
      uint64_t bits;
      double one = 1.0;
      dj_le32_write (w, (uint32_t) total);
      w = put_key (w + 4, BSON_TYPE_DOCUMENT, "cursor", 6);
      dj_le32_write (w, (uint32_t) csize);
      w = put_batch (put_key (w + 4, BSON_TYPE_ARRAY, batch_name, blen), docs, n, size);
      w = put_key (w, BSON_TYPE_INT64, "id", 2);
      bits = BSON_UINT64_TO_LE ((uint64_t) id);
      memcpy (w, &bits, 8);
      w = put_key (w + 8, BSON_TYPE_UTF8, "ns", 2);
      dj_le32_write (w, (uint32_t) (nslen + 1));
      memcpy (w + 4, ns, nslen + 1);
      w += 4 + nslen + 1;
      *w++ = 0;
      w = put_key (w, BSON_TYPE_DOUBLE, "ok", 2);
      memcpy (&bits, &one, 8);
      bits = BSON_UINT64_TO_LE (bits);
      memcpy (w, &bits, 8);
      w[8] = 0;
      return;
   }
   bson_t cur, arr;
   dj_buf_t b;
   dj_buf_init (&b);
   dj_buf_reserve (&b, size);
   b.len = (size_t) (put_batch (b.data, docs, n, size) - b.data);
   BSON_APPEND_DOCUMENT_BEGIN (reply, "cursor", &cur);
   if (size <= INT32_MAX && bson_init_static (&arr, b.data, b.len)) {
      bson_append_array (&cur, batch_name, -1, &arr);
   } else {
      bson_append_array_begin (&cur, batch_name, -1, &arr); /* (batches stop near 16 MB: never) */
      bson_append_array_end (&cur, &arr);
   }
   dj_buf_cleanup (&b);
   BSON_APPEND_INT64 (&cur, "id", id);
   BSON_APPEND_UTF8 (&cur, "ns", ns);
   bson_append_document_end (reply, &cur);
   BSON_APPEND_DOUBLE (reply, "ok", 1.0);
}

/* getMore: {getMore: <id>, collection: <name>, batchSize: <n>} */
bool
dj_cmd_get_more (dj_engine_t *e, const char *db, const bson_t *cmd, bson_t *reply, bson_error_t *error)
{
   static const char *const known[] = {"collection", "batchSize", "maxTimeMS", "term", "lastKnownCommittedOpTime", NULL};
   bson_iter_t it;
   int64_t id, batch = -1;
   bool present;
   const char *coll = NULL;

   if (!dj_cmd_check_fields (cmd, known, error)) {
      return false;
   }
   bson_iter_init (&it, cmd);
   bson_iter_next (&it);
   if (!BSON_ITER_HOLDS_INT64 (&it)) {
      return dj_err (error, DJ_TypeMismatch, "BSON field 'getMore.getMore' is the wrong type '%s', expected type 'long'",
                     dj_type_name (bson_iter_type (&it)));
   }
   id = bson_iter_int64 (&it);
   if (bson_iter_init_find (&it, cmd, "collection") && BSON_ITER_HOLDS_UTF8 (&it)) {
      coll = bson_iter_utf8 (&it, NULL);
   } else {
      return dj_err (error, 40414, "BSON field 'getMore.collection' is missing but a required field");
   }
   if (!dj_cmd_get_int64 (cmd, "batchSize", &batch, &present, error)) {
      return false;
   }
   int64_t max_time_ms = 0; /* a tailable awaitData cursor's wait (0: the default second) */
   bool has_mt;
   if (!dj_cmd_get_int64 (cmd, "maxTimeMS", &max_time_ms, &has_mt, error)) {
      return false;
   }
   if (present && batch < 0) {
      return dj_err (error, 51024, "BSON field 'batchSize' value must be >= 0, actual value '%" PRId64 "'", batch);
   }
   if (!present || batch == 0) {
      batch = -1; /* as much as fits */
   }
   char *ns = bson_strdup_printf ("%s.%s", db, coll);
   pthread_mutex_lock (&e->cursors_mu);
   dj_cursor_t **pp = &e->cursors, *c = NULL;
   while (*pp && (*pp)->id != id) {
      pp = &(*pp)->next;
   }
   c = *pp;
   if (!c) {
      pthread_mutex_unlock (&e->cursors_mu);
      bson_free (ns);
      return dj_err (error, DJ_CursorNotFound, "cursor id %" PRId64 " not found", id);
   }
   if (!owned_by_caller (c)) {
      pthread_mutex_unlock (&e->cursors_mu);
      bson_free (ns);
      return dj_err (error, DJ_Unauthorized, "cursor id %" PRId64 " was not created by the authenticated user", id);
   }
   if (strcmp (c->ns, ns)) {
      pthread_mutex_unlock (&e->cursors_mu);
      dj_err (error, 13, "Requested getMore on namespace '%s', but cursor belongs to a different namespace %s", ns, c->ns);
      bson_free (ns);
      return false;
   }
   if (c->stream) {
      /* a change stream: its next events, off the list while it reads and
       * waits (the wait must not hold the lock) */
      *pp = c->next;
      pthread_mutex_unlock (&e->cursors_mu);
      bool done = false;
      bool got = dj_stream_get_more (e, c->stream, ns, batch < 0 ? 0 : batch, max_time_ms > 0 ? max_time_ms : 1000, id,
                                     reply, &done, error);
      bson_free (ns);
      if (done) {
         cursor_free (c);
      } else {
         /* a failed getMore leaves the cursor as it was, as mongod's
          * (the client may kill it or resume elsewhere) */
         c->used = time (NULL);
         pthread_mutex_lock (&e->cursors_mu);
         c->next = e->cursors;
         e->cursors = c;
         pthread_mutex_unlock (&e->cursors_mu);
      }
      return got;
   }
   if (c->tail && c->pos >= c->n) {
      /* a tailable cursor whose documents are all out: read what came
       * since, off the list meanwhile (the wait must not hold the lock) */
      *pp = c->next;
      pthread_mutex_unlock (&e->cursors_mu);
      bson_t **more = NULL;
      size_t nmore = 0;
      bool got = tail_fetch (e, c->tail, max_time_ms > 0 ? max_time_ms : 1000, &more, &nmore, error);
      dj_bsons_free (c->docs, c->pos, c->n);
      c->docs = more;
      c->n = nmore;
      c->pos = 0;
      if (!got) {
         /* a getMore that fails ends its cursor, as mongod's does (a
          * driver takes CappedPositionLost as the cursor's end) */
         cursor_free (c);
         bson_free (ns);
         return false;
      }
      pthread_mutex_lock (&e->cursors_mu);
      c->next = e->cursors;
      e->cursors = c;
      pp = &e->cursors;
   }
   if (c->spill && (batch > 0 ? c->n - c->pos <= (size_t) batch : c->pos >= c->n)) {
      /* a spilled sort's next documents from its merge (a batch and one
       * more, after what is left), off the list while it reads the files
       * (the read must not hold the lock) */
      *pp = c->next;
      pthread_mutex_unlock (&e->cursors_mu);
      bson_t **more;
      size_t nmore, left = c->n - c->pos;
      bool end;
      bool got = spill_fetch (c->spill, batch > 0 ? batch + 1 - (int64_t) left : -1, &more, &nmore, &end, error);
      if (!got) {
         cursor_free (c); /* a getMore that fails ends its cursor */
         bson_free (ns);
         return false;
      }
      bson_t **all = bson_malloc (sizeof (bson_t *) * (left + nmore + 1));
      memcpy (all, c->docs + c->pos, sizeof (bson_t *) * left);
      memcpy (all + left, more, sizeof (bson_t *) * nmore);
      bson_free (more);
      bson_free (c->docs);
      c->docs = all;
      c->n = left + nmore;
      c->pos = 0;
      if (end) {
         dj_spill_destroy (c->spill);
         c->spill = NULL;
      }
      pthread_mutex_lock (&e->cursors_mu);
      c->next = e->cursors;
      e->cursors = c;
      pp = &e->cursors;
   }
   size_t end = batch_end (c->docs, c->pos, c->n, batch);
   bool done = !c->tail && !c->spill && batch_ends (c->streamed, c->pos, end, c->n, batch);
   dj_reply_cursor (reply, ns, "nextBatch", c->docs + c->pos, end - c->pos, done ? 0 : id);
   for (size_t i = c->pos; i < end; i++) {
      bson_destroy (c->docs[i]);
   }
   c->pos = end;
   c->used = time (NULL);
   if (done) {
      *pp = c->next;
      cursor_free (c);
   }
   pthread_mutex_unlock (&e->cursors_mu);
   bson_free (ns);
   return true;
}

/* killCursors: {killCursors: <collection>, cursors: [<id>...]} */
bool
dj_cmd_kill_cursors (dj_engine_t *e, const char *db, const bson_t *cmd, bson_t *reply, bson_error_t *error)
{
   static const char *const known[] = {"cursors", NULL};
   bson_iter_t it, ai;
   bson_t killed = BSON_INITIALIZER, notfound = BSON_INITIALIZER;
   int nk = 0, nn = 0;
   char buf[16];
   const char *key;

   (void) db;
   if (!dj_cmd_check_fields (cmd, known, error)) {
      return false;
   }
   if (!bson_iter_init_find (&it, cmd, "cursors") || !BSON_ITER_HOLDS_ARRAY (&it)) {
      bson_destroy (&killed);
      bson_destroy (&notfound);
      return dj_err (error, 40414, "BSON field 'killCursors.cursors' is missing but a required field");
   }
   /* first: every cursor named that exists must be the caller's, or
    * nothing is killed */
   pthread_mutex_lock (&e->cursors_mu);
   bson_iter_recurse (&it, &ai);
   while (bson_iter_next (&ai)) {
      int64_t id = bson_iter_as_int64 (&ai);
      for (dj_cursor_t *c = e->cursors; c; c = c->next) {
         if (c->id == id && !owned_by_caller (c)) {
            pthread_mutex_unlock (&e->cursors_mu);
            bson_destroy (&killed);
            bson_destroy (&notfound);
            return dj_err (error, DJ_Unauthorized, "not authorized to kill cursor %" PRId64 ": another user opened it", id);
         }
      }
   }
   pthread_mutex_unlock (&e->cursors_mu);
   bson_iter_recurse (&it, &ai);
   while (bson_iter_next (&ai)) {
      int64_t id = bson_iter_as_int64 (&ai);
      bool found = false;
      pthread_mutex_lock (&e->cursors_mu);
      for (dj_cursor_t **pp = &e->cursors; *pp; pp = &(*pp)->next) {
         if ((*pp)->id == id) {
            dj_cursor_t *c = *pp;
            *pp = c->next;
            cursor_free (c);
            found = true;
            break;
         }
      }
      pthread_mutex_unlock (&e->cursors_mu);
      if (found) {
         bson_uint32_to_string ((uint32_t) nk++, &key, buf, sizeof buf);
         bson_append_int64 (&killed, key, -1, id);
      } else {
         bson_uint32_to_string ((uint32_t) nn++, &key, buf, sizeof buf);
         bson_append_int64 (&notfound, key, -1, id);
      }
   }
   BSON_APPEND_ARRAY (reply, "cursorsKilled", &killed);
   BSON_APPEND_ARRAY (reply, "cursorsNotFound", &notfound);
   bson_t empty = BSON_INITIALIZER;
   BSON_APPEND_ARRAY (reply, "cursorsAlive", &empty);
   BSON_APPEND_ARRAY (reply, "cursorsUnknown", &empty);
   BSON_APPEND_DOUBLE (reply, "ok", 1.0);
   bson_destroy (&killed);
   bson_destroy (&notfound);
   return true;
}
