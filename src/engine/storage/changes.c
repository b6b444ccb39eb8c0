/*
 * changes.c -- the change log change streams read, and the cluster clock
 * its entries are stamped with.
 *
 * The log is the LMDB database "changes" of the data directory, MongoDB's
 * oplog in miniature:
 *
 *   [seconds u32][inc u32]    -> an entry (BSON), one per change
 *
 * and its size record, {bytes: int64, lost: int64}, under the key
 * "\x01changes" of LMDB's unnamed database (dbi_main), beside the named
 * databases' own records there ("Database names are keys in the unnamed
 * database": lmdb.h, mdb_dbi_open). Every write transaction rewrites that
 * database's page anyway -- the named databases' roots it holds move with
 * each copy-on-write commit -- so the record written at each commit costs
 * no page of its own. Kept as the log's first key (8 zero bytes, where
 * older versions put it, and where a directory they wrote still has it
 * until its next logged change moves it), it sat on the log's first leaf,
 * far from the leaf an entry is appended to once the log spans several:
 * two more pages (that leaf and its branch) written and fsynced per commit.
 *
 * Keys are cluster times (a BSON Timestamp: seconds, increment), big-endian
 * so that key order is time order. An entry is written by the function that
 * makes the change (store.c's record writes, drop, rename), inside the same
 * LMDB write transaction: a change is in the log if and only if it
 * commits, and an aborted transaction leaves no entry. LMDB has one writer
 * at a time across processes, and an entry's time is taken while the write
 * lock is held and is past the log's last key, so commit order is time
 * order and a reader that has seen time T never later finds an entry at or
 * before T.
 *
 * The log is capped by size (dj_engine_options_t.change_log_size): past it
 * the oldest entries go, and `lost` remembers the newest time dropped, so
 * that resuming from before it fails with ChangeStreamHistoryLost (286)
 * instead of silently missing changes, as mongod's oplog does.
 * https://www.mongodb.com/docs/manual/changeStreams/#resume-a-change-stream
 *
 * Entry: {op, db, coll, wall: date, cid, key: documentKey, doc, pre, upd, desc}
 *   op    "insert" "update" "replace" "delete" "drop" "rename" "dropDatabase"
 *         "create" "createIndexes" "dropIndexes" "modify"
 *   cid   the collection's id (the events' collectionUUID is made from it)
 *   doc   insert/replace: the new document; update: the post-image, kept
 *         when the collection has changeStreamPreAndPostImages enabled
 *   pre   update/replace/delete: the pre-image, kept likewise
 *   upd   update: {updatedFields, removedFields, truncatedArrays, disambiguatedPaths}
 *   desc  the operationDescription of a namespace's change: rename's {to:
 *         {db, coll}, dropTarget}, the indexes created or dropped, collMod's
 * https://www.mongodb.com/docs/manual/reference/change-events/
 *
 * A batch: the deletes of one statement (storage/write_many.c) share one
 * entry {op: "delete", db, coll, wall, cid, ids: [_id, ...]} instead of
 * an entry each, and the updates of a multi-document update statement
 * (write_many.c too) one {op: "update", ..., ids, upds: [upd, ...]},
 * each document's update description beside its _id (what a delete of many documents writes, and fsyncs, is
 * then mostly their _ids). Its n documents still have a time each, as
 * mongod's oplog gives each deleted document an entry of its own: the n
 * times ending at the entry's key, reserved together (consecutive
 * increments of one second), so that key order is still time order and
 * the log's last key still its newest time. dj_changes_read hands each
 * document of a batch on as an entry of its own ({..., key: {_id}}), at
 * its own time: change events, resume tokens and resuming inside a batch
 * are as with single entries. A collection keeping pre-images logs each
 * delete on its own (its entry carries the document).
 *
 * The inserts of a transaction into one collection, one after another,
 * share an entry likewise: {op: "insert", db, coll, wall, cid, docs: [doc,
 * ...]}, their n times reserved together as above, the documents in the
 * order they were inserted. An insert waits in the context
 * (dj_ctx_t.chg.ins_docs) until the transaction's next change of another
 * kind or collection, its commit (dj_changes_flush), or until the waiting
 * documents pass INSERT_BATCH_BYTES; the times are taken then (under the
 * write lock, past the log's last key, as always). An insert of 1,000
 * rows then writes one entry of its documents -- not 1,000 keys, headers
 * and clock readings. dj_changes_read hands each document on as an entry
 * of its own ({op: "insert", ..., key: {_id}, doc}).
 *
 * Changes to the admin, config and local databases and to system.*
 * collections are not logged: change streams never show them.
 */
#include "dj_storage.h"

#include <stdio.h>
#include <time.h>

/* Where older versions kept the size record (see above). */
static const uint8_t META_KEY[8] = {0};
static const char MAIN_META_KEY[] = "\x01" "changes";

/* Waiting inserts are written as an entry once they pass this many bytes:
 * a capped log trims whole entries, so an entry stays a small part of
 * even a small log (--oplogSize 1). */
#define INSERT_BATCH_BYTES (256 * 1024)

/* ---- the clock ------------------------------------------------------------ */

void
dj_clock_now (dj_engine_t *e, uint32_t *t, uint32_t *i)
{
   pthread_mutex_lock (&e->shared_clock->mu);
   *t = e->shared_clock->secs;
   *i = e->shared_clock->inc;
   pthread_mutex_unlock (&e->shared_clock->mu);
}

/* Moves the clock past both its last reading and `floor` (a time the log
 * already holds, maybe written by another process). Caller holds mu. */
static void
clock_step (dj_clock_t *c, uint64_t floor)
{
   /* the wall clock's seconds while they move forward; within a second
    * (or if the wall clock stepped back) the increment */
   uint32_t now = (uint32_t) time (NULL);
   if (((uint64_t) c->secs << 32 | c->inc) < floor) {
      c->secs = (uint32_t) (floor >> 32);
      c->inc = (uint32_t) floor;
   }
   if (now > c->secs) {
      c->secs = now;
      c->inc = 1;
   } else {
      c->inc++;
   }
}

void
dj_clock_advance (dj_engine_t *e, uint32_t *t, uint32_t *i)
{
   pthread_mutex_lock (&e->shared_clock->mu);
   clock_step (e->shared_clock, 0);
   *t = e->shared_clock->secs;
   *i = e->shared_clock->inc;
   pthread_mutex_unlock (&e->shared_clock->mu);
}

void
dj_clock_seed (dj_clock_t *c, uint64_t last)
{
   pthread_mutex_lock (&c->mu);
   if (((uint64_t) c->secs << 32 | c->inc) < last) {
      c->secs = (uint32_t) (last >> 32);
      c->inc = (uint32_t) last;
   }
   pthread_mutex_unlock (&c->mu);
}

/* ---- writing ---------------------------------------------------------------- */

static bool
logged_ns (const char *db, const char *coll)
{
   if (!strcmp (db, "admin") || !strcmp (db, "config") || !strcmp (db, "local")) {
      return false;
   }
   return !coll || strncmp (coll, "system.", 7);
}

bool
dj_changes_images_enabled (const dj_coll_t *c)
{
   bson_iter_t it;
   return c->options && bson_iter_init (&it, c->options) &&
          bson_iter_find_descendant (&it, "changeStreamPreAndPostImages.enabled", &it) && bson_iter_as_bool (&it);
}

/* The size record into *bytes and *lost (0 when there is none); *legacy
 * (may be NULL): whether it was found under the log's old key. */
static bool
read_meta (dj_ctx_t *ctx, int64_t *bytes, int64_t *lost, bool *legacy, bson_error_t *error)
{
   MDB_val k = {sizeof MAIN_META_KEY - 1, (void *) MAIN_META_KEY}, v;
   *bytes = *lost = 0;
   if (legacy) {
      *legacy = false;
   }
   int rc = mdb_get (ctx->txn, ctx->engine->dbi_main, &k, &v);
   if (rc == MDB_NOTFOUND) {
      k.mv_size = sizeof META_KEY;
      k.mv_data = (void *) META_KEY;
      rc = mdb_get (ctx->txn, ctx->engine->dbi_changes, &k, &v);
      if (legacy) {
         *legacy = rc == 0;
      }
   }
   if (rc == MDB_NOTFOUND) {
      return true;
   }
   if (rc) {
      return dj_lmdb_error (rc, error, "change log");
   }
   bson_t meta;
   bson_iter_t it;
   if (bson_init_static (&meta, v.mv_data, v.mv_size)) {
      if (bson_iter_init_find (&it, &meta, "bytes")) {
         *bytes = bson_iter_as_int64 (&it);
      }
      if (bson_iter_init_find (&it, &meta, "lost")) {
         *lost = bson_iter_as_int64 (&it);
      }
   }
   return true;
}

/* Drops the oldest entries while the log holds more than its cap (never
 * the newest: the log always shows where it ends). */
static bool
trim (dj_ctx_t *ctx, uint64_t newest, int64_t *bytes, int64_t *lost, bson_error_t *error)
{
   int64_t cap = ctx->engine->change_log_size;
   if (*bytes <= cap) {
      return true;
   }
   dj_walk_t w;
   if (!dj_walk_open (&w, ctx, ctx->engine->dbi_changes, NULL, 0, 1, error)) {
      return false;
   }
   bool ok = true;
   while (*bytes > cap && dj_walk_next (&w)) {
      if (w.k.mv_size != 8 || !memcmp (w.k.mv_data, META_KEY, 8)) {
         continue;
      }
      if (dj_u64be_read (w.k.mv_data) >= newest) {
         break;
      }
      *bytes -= (int64_t) (w.k.mv_size + w.v.mv_size);
      *lost = (int64_t) dj_u64be_read (w.k.mv_data);
      if (!dj_walk_del (&w)) {
         ok = false;
         break;
      }
   }
   return dj_walk_close (&w, "change log trim", error) && ok;
}

/* Appends entry at fresh times (past the log's last key): `times` of them,
 * consecutive, the entry keyed by the last (a batch's, above; 1 for any
 * other entry), and trims. The log's newest time and size are read at the
 * transaction's first change and kept in ctx->chg after that (a command's
 * transaction is the only writer while it lasts); dj_changes_flush writes
 * the size at commit. */
static bool
append (dj_ctx_t *ctx, bson_t *entry, uint32_t times, bson_error_t *error)
{
   dj_engine_t *e = ctx->engine;
   MDB_val k, v;
   int rc;
   if (!ctx->chg.valid) {
      MDB_cursor *cur;
      if ((rc = mdb_cursor_open (ctx->txn, e->dbi_changes, &cur))) {
         return dj_lmdb_error (rc, error, "change log");
      }
      ctx->chg.last = 0;
      if (mdb_cursor_get (cur, &k, &v, MDB_LAST) == 0 && k.mv_size == 8) {
         ctx->chg.last = dj_u64be_read (k.mv_data);
      }
      mdb_cursor_close (cur);
      if (!read_meta (ctx, &ctx->chg.bytes, &ctx->chg.lost, &ctx->chg.legacy, error)) {
         return false;
      }
      ctx->chg.valid = true;
   }
   pthread_mutex_lock (&e->shared_clock->mu);
   dj_clock_t *clk = e->shared_clock;
   clock_step (clk, ctx->chg.last);
   if (times > 1 && clk->inc > UINT32_MAX - (times - 1)) {
      /* the increments left in this second do not hold the batch: the next second's */
      clk->secs++;
      clk->inc = 1;
   }
   clk->inc += times - 1;
   uint64_t ts = (uint64_t) clk->secs << 32 | clk->inc;
   pthread_mutex_unlock (&clk->mu);

   uint8_t key[8];
   dj_u64be_write (key, ts);
   k.mv_size = 8;
   k.mv_data = key;
   v.mv_size = entry->len;
   v.mv_data = (void *) bson_get_data (entry);
   if ((rc = mdb_put (ctx->txn, e->dbi_changes, &k, &v, MDB_APPEND))) {
      return dj_lmdb_error (rc, error, "change log write");
   }
   ctx->chg.last = ts;
   ctx->chg.bytes += (int64_t) (8 + entry->len);
   ctx->chg.dirty = true;
   return trim (ctx, ts, &ctx->chg.bytes, &ctx->chg.lost, error);
}

static void entry_start (bson_t *entry, const char *op, const char *db, const char *coll);
static void session_append (const dj_ctx_t *ctx, bson_t *entry);

void
dj_changes_discard (dj_ctx_t *ctx)
{
   if (ctx->chg.ins_docs) {
      bson_destroy (ctx->chg.ins_docs);
   }
   bson_free (ctx->chg.ins_db);
   bson_free (ctx->chg.ins_coll);
   ctx->chg.ins_docs = NULL;
   ctx->chg.ins_db = ctx->chg.ins_coll = NULL;
   ctx->chg.ins_n = 0;
}

/* Writes the waiting inserts as one entry (the header's batches). */
static bool
flush_inserts (dj_ctx_t *ctx, bson_error_t *error)
{
   if (!ctx->chg.ins_docs) {
      return true;
   }
   bson_t entry;
   entry_start (&entry, "insert", ctx->chg.ins_db, ctx->chg.ins_coll);
   BSON_APPEND_INT64 (&entry, "cid", (int64_t) ctx->chg.ins_cid);
   BSON_APPEND_ARRAY (&entry, "docs", ctx->chg.ins_docs);
   session_append (ctx, &entry);
   uint32_t n = ctx->chg.ins_n;
   dj_changes_discard (ctx);
   bool ok = append (ctx, &entry, n, error);
   bson_destroy (&entry);
   return ok;
}

/* Adds doc, an insert into c, to the waiting inserts: after the ones
 * waiting for c, or first after those for another collection are written. */
static bool
wait_insert (dj_ctx_t *ctx, const dj_coll_t *c, const bson_t *doc, bson_error_t *error)
{
   if (ctx->chg.ins_docs && ctx->chg.ins_cid != c->id && !flush_inserts (ctx, error)) {
      return false;
   }
   if (!ctx->chg.ins_docs) {
      ctx->chg.ins_docs = bson_new ();
      ctx->chg.ins_db = bson_strdup (c->db);
      ctx->chg.ins_coll = bson_strdup (c->name);
      ctx->chg.ins_cid = c->id;
      ctx->chg.ins_n = 0;
   }
   char kb[16];
   const char *key;
   size_t klen = bson_uint32_to_string (ctx->chg.ins_n++, &key, kb, sizeof kb);
   bson_append_document (ctx->chg.ins_docs, key, (int) klen, doc);
   return ctx->chg.ins_docs->len < INSERT_BATCH_BYTES || flush_inserts (ctx, error);
}

bool
dj_changes_flush (dj_ctx_t *ctx, bson_error_t *error)
{
   if (!flush_inserts (ctx, error)) {
      return false;
   }
   if (!ctx->chg.dirty) {
      return true;
   }
   ctx->chg.dirty = false;
   bson_t meta = BSON_INITIALIZER;
   BSON_APPEND_INT64 (&meta, "bytes", ctx->chg.bytes);
   BSON_APPEND_INT64 (&meta, "lost", ctx->chg.lost);
   MDB_val k = {sizeof MAIN_META_KEY - 1, (void *) MAIN_META_KEY}, v = {meta.len, (void *) bson_get_data (&meta)};
   int rc = mdb_put (ctx->txn, ctx->engine->dbi_main, &k, &v, 0);
   bson_destroy (&meta);
   if (rc == 0 && ctx->chg.legacy) {
      /* moved out of the log (once per data directory) */
      MDB_val old = {sizeof META_KEY, (void *) META_KEY};
      rc = mdb_del (ctx->txn, ctx->engine->dbi_changes, &old, NULL);
      ctx->chg.legacy = false;
   }
   return rc == 0 || dj_lmdb_error (rc, error, "change log write");
}

static void
entry_start (bson_t *entry, const char *op, const char *db, const char *coll)
{
   bson_init (entry);
   BSON_APPEND_UTF8 (entry, "op", op);
   BSON_APPEND_UTF8 (entry, "db", db);
   if (coll) {
      BSON_APPEND_UTF8 (entry, "coll", coll);
   }
   struct timespec now;
   clock_gettime (CLOCK_REALTIME, &now);
   BSON_APPEND_DATE_TIME (entry, "wall", (int64_t) now.tv_sec * 1000 + now.tv_nsec / 1000000);
}

/* ---- update descriptions ------------------------------------------------------ */

typedef struct {
   bson_t *updated, *truncated, *removed, *disambiguated;
   uint32_t nremoved, ntruncated;
} diff_t;

/* Where the diff is: a step (a field name, or an array index) and the
 * steps above it. Its dotted path, and its components (field names as
 * strings, array indexes as ints) for disambiguatedPaths -- which lists a
 * path when one of its field names reads as an array index (or holds a
 * dot): "a.1" is then not enough to tell -- are written out only for what
 * changed (where_path, note_path): most fields of an updated document did
 * not, and an update's description is built for every document it writes.
 * https://www.mongodb.com/docs/manual/reference/change-events/update/#path-disambiguation */
typedef struct where {
   const struct where *up; /* NULL at the top (which has no step) */
   const char *field;      /* the step's field name, NULL for an index */
   int32_t index;
   bool ambiguous; /* some field name of the path reads as an index or holds a dot */
} where_t;

static bool
numeric_name (const char *k)
{
   if (!*k) {
      return false;
   }
   for (const char *p = k; *p; p++) {
      if (*p < '0' || *p > '9') {
         return false;
      }
   }
   return true;
}

/* where + one step (a field name, or index >= 0). */
static where_t
where_child (const where_t *w, const char *field, int32_t index)
{
   where_t out = {.up = w, .field = index >= 0 ? NULL : field, .index = index};
   out.ambiguous = w->ambiguous || (index < 0 && (numeric_name (field) || strchr (field, '.')));
   return out;
}

/* w's dotted path into b (NUL-terminated). */
static void
where_path (const where_t *w, dj_buf_t *b)
{
   if (!w->up) {
      return;
   }
   where_path (w->up, b);
   if (w->up->up) {
      dj_buf_putc (b, '.');
   }
   char num[16];
   const char *name = w->field;
   if (!name) {
      snprintf (num, sizeof num, "%d", w->index);
      name = num;
   }
   dj_buf_append (b, name, strlen (name));
}

/* w's components appended to arr (its first *n elements there already). */
static void
where_parts (const where_t *w, bson_t *arr, uint32_t *n)
{
   if (!w->up) {
      return;
   }
   where_parts (w->up, arr, n);
   char kb[16];
   const char *key;
   bson_uint32_to_string ((*n)++, &key, kb, sizeof kb);
   if (w->field) {
      bson_append_utf8 (arr, key, -1, w->field, -1);
   } else {
      bson_append_int32 (arr, key, -1, w->index);
   }
}

/* w's dotted path: owned by the caller (bson_free). */
static char *
where_str (const where_t *w)
{
   dj_buf_t b;
   dj_buf_init (&b);
   where_path (w, &b);
   dj_buf_putc (&b, 0);
   return (char *) b.data;
}

static void
note_path (diff_t *d, const where_t *w)
{
   if (w->ambiguous) {
      bson_t parts = BSON_INITIALIZER;
      uint32_t n = 0;
      char *path = where_str (w);
      where_parts (w, &parts, &n);
      bson_append_array (d->disambiguated, path, -1, &parts);
      bson_free (path);
      bson_destroy (&parts);
   }
}

/* w now holds v: an updatedFields entry. */
static void
put_updated (diff_t *d, const where_t *w, const bson_value_t *v)
{
   char *path = where_str (w);
   bson_append_value (d->updated, path, -1, v);
   bson_free (path);
   note_path (d, w);
}

/* w is gone: a removedFields entry. */
static void
put_removed (diff_t *d, const where_t *w)
{
   char buf[16];
   const char *key;
   char *path = where_str (w);
   bson_uint32_to_string (d->nremoved++, &key, buf, sizeof buf);
   bson_append_utf8 (d->removed, key, -1, path, -1);
   bson_free (path);
   note_path (d, w);
}

/* The array at w is now n long: a truncatedArrays entry. */
static void
put_truncated (diff_t *d, const where_t *w, uint32_t n)
{
   bson_t t;
   char buf[16];
   const char *key;
   char *path = where_str (w);
   bson_uint32_to_string (d->ntruncated++, &key, buf, sizeof buf);
   bson_append_document_begin (d->truncated, key, -1, &t);
   BSON_APPEND_UTF8 (&t, "field", path);
   BSON_APPEND_INT32 (&t, "newSize", (int32_t) n);
   bson_append_document_end (d->truncated, &t);
   bson_free (path);
   note_path (d, w);
}

static void diff_docs (diff_t *d, const where_t *w, const bson_value_t *a, const bson_value_t *b);

/* One field that is in both: updated, or diffed further when both sides
 * are documents or arrays (as MongoDB's delta oplog entries describe a
 * change: the paths that changed, arrays element by element). */
static void
diff_value (diff_t *d, const where_t *w, const bson_value_t *a, const bson_value_t *b)
{
   if (dj_value_identical (a, b)) {
      return;
   }
   if (a->value_type == BSON_TYPE_DOCUMENT && b->value_type == BSON_TYPE_DOCUMENT) {
      diff_docs (d, w, a, b);
      return;
   }
   if (a->value_type == BSON_TYPE_ARRAY && b->value_type == BSON_TYPE_ARRAY) {
      uint32_t na = dj_value_count (a), nb = dj_value_count (b);
      if (nb < na) {
         put_truncated (d, w, nb);
      }
      bson_iter_t ib, ia;
      bson_iter_init_from_data (&ib, b->value.v_doc.data, b->value.v_doc.data_len);
      bson_iter_init_from_data (&ia, a->value.v_doc.data, a->value.v_doc.data_len);
      for (int32_t i = 0; bson_iter_next (&ib); i++) {
         where_t sub = where_child (w, NULL, i);
         if (bson_iter_next (&ia)) {
            diff_value (d, &sub, bson_iter_value (&ia), bson_iter_value (&ib));
         } else {
            put_updated (d, &sub, bson_iter_value (&ib));
         }
      }
      return;
   }
   put_updated (d, w, b);
}

/* Whether documents a and b have the same fields in the same order (an
 * update's usual before and after: then each field pairs with its place). */
static bool
same_fields (const bson_value_t *a, const bson_value_t *b)
{
   bson_iter_t ia, ib;
   bson_iter_init_from_data (&ia, a->value.v_doc.data, a->value.v_doc.data_len);
   bson_iter_init_from_data (&ib, b->value.v_doc.data, b->value.v_doc.data_len);
   for (;;) {
      bool na = bson_iter_next (&ia), nb = bson_iter_next (&ib);
      if (!na || !nb) {
         return na == nb;
      }
      if (strcmp (bson_iter_key (&ia), bson_iter_key (&ib))) {
         return false;
      }
   }
}

static void
diff_docs (diff_t *d, const where_t *w, const bson_value_t *a, const bson_value_t *b)
{
   bson_iter_t ia, ib;
   bson_value_t other;
   if (same_fields (a, b)) {
      bson_iter_init_from_data (&ia, a->value.v_doc.data, a->value.v_doc.data_len);
      bson_iter_init_from_data (&ib, b->value.v_doc.data, b->value.v_doc.data_len);
      while (bson_iter_next (&ia) && bson_iter_next (&ib)) {
         where_t sub = where_child (w, bson_iter_key (&ib), -1);
         diff_value (d, &sub, bson_iter_value (&ia), bson_iter_value (&ib));
      }
      return;
   }
   bson_iter_init_from_data (&ia, a->value.v_doc.data, a->value.v_doc.data_len);
   while (bson_iter_next (&ia)) {
      if (!dj_value_get_field (b, bson_iter_key (&ia), &other)) {
         where_t sub = where_child (w, bson_iter_key (&ia), -1);
         put_removed (d, &sub);
      }
   }
   bson_iter_init_from_data (&ib, b->value.v_doc.data, b->value.v_doc.data_len);
   while (bson_iter_next (&ib)) {
      where_t sub = where_child (w, bson_iter_key (&ib), -1);
      if (dj_value_get_field (a, bson_iter_key (&ib), &other)) {
         diff_value (d, &sub, &other, bson_iter_value (&ib));
      } else {
         put_updated (d, &sub, bson_iter_value (&ib));
      }
   }
}

void
dj_changes_describe_update (const bson_t *before, const bson_t *after, bson_t *out)
{
   bson_t updated = BSON_INITIALIZER, removed = BSON_INITIALIZER, truncated = BSON_INITIALIZER;
   bson_t dis = BSON_INITIALIZER;
   diff_t d = {.updated = &updated, .removed = &removed, .truncated = &truncated, .disambiguated = &dis};
   where_t top = {0};
   bson_value_t a, b;
   dj_value_from_doc (before, false, &a);
   dj_value_from_doc (after, false, &b);
   diff_docs (&d, &top, &a, &b);
   bson_init (out);
   BSON_APPEND_DOCUMENT (out, "updatedFields", &updated);
   BSON_APPEND_ARRAY (out, "removedFields", &removed);
   BSON_APPEND_ARRAY (out, "truncatedArrays", &truncated);
   /* (shown with showExpandedEvents only: commands/changestream.c) */
   BSON_APPEND_DOCUMENT (out, "disambiguatedPaths", &dis);
   bson_destroy (&updated);
   bson_destroy (&removed);
   bson_destroy (&truncated);
   bson_destroy (&dis);
}

/* A change made in a session's transaction records the session:
 * change events show it (lsid, txnNumber). */
static void
session_append (const dj_ctx_t *ctx, bson_t *entry)
{
   const bson_t *lsid;
   int64_t txn;
   if (dj_txn_session (ctx, &lsid, &txn)) {
      BSON_APPEND_DOCUMENT (entry, "lsid", lsid);
      BSON_APPEND_INT64 (entry, "txn", txn);
   }
}

bool
dj_changes_record (dj_ctx_t *ctx, const dj_coll_t *c, const char *op, const bson_t *before, const bson_t *after,
                   bson_error_t *error)
{
   if (ctx->quiet_log || !logged_ns (c->db, c->name)) {
      return true;
   }
   if (!strcmp (op, "insert")) {
      return wait_insert (ctx, c, after, error);
   }
   if (!flush_inserts (ctx, error)) {
      return false; /* (the waiting inserts came first) */
   }
   bool images = dj_changes_images_enabled (c);
   const bson_t *one = after ? after : before;
   bson_iter_t it;
   bson_t entry, key;
   entry_start (&entry, op, c->db, c->name);
   BSON_APPEND_INT64 (&entry, "cid", (int64_t) c->id);
   BSON_APPEND_DOCUMENT_BEGIN (&entry, "key", &key);
   if (one && bson_iter_init_find (&it, one, "_id")) {
      BSON_APPEND_VALUE (&key, "_id", bson_iter_value (&it));
   }
   bson_append_document_end (&entry, &key);
   if (after && (strcmp (op, "update") || images)) {
      BSON_APPEND_DOCUMENT (&entry, "doc", after);
   }
   if (before && images) {
      BSON_APPEND_DOCUMENT (&entry, "pre", before);
   }
   if (!strcmp (op, "update")) {
      bson_t upd;
      dj_changes_describe_update (before, after, &upd);
      BSON_APPEND_DOCUMENT (&entry, "upd", &upd);
      bson_destroy (&upd);
   }
   session_append (ctx, &entry);
   bool ok = append (ctx, &entry, 1, error);
   bson_destroy (&entry);
   return ok;
}

/* A batch entry of op for n documents of c: their _ids (ids, or idarr: the
 * array of them built by the caller) and, for updates, their update
 * descriptions (upds: an array of n, else NULL). */
static bool
record_batch (dj_ctx_t *ctx, const dj_coll_t *c, const char *op, const bson_value_t *ids, const bson_t *idarr, size_t n,
              const bson_t *upds, bson_error_t *error)
{
   if (n == 0 || ctx->quiet_log || !logged_ns (c->db, c->name)) {
      return true;
   }
   if (n > UINT32_MAX / 2) {
      return dj_err (error, DJ_InternalError, "a batch of %zu %ss is too large for one change log entry", n, op);
   }
   if (!flush_inserts (ctx, error)) {
      return false;
   }
   bson_t entry, arr;
   char buf[16];
   const char *key;
   entry_start (&entry, op, c->db, c->name);
   BSON_APPEND_INT64 (&entry, "cid", (int64_t) c->id);
   if (idarr) {
      BSON_APPEND_ARRAY (&entry, "ids", idarr);
   } else {
      BSON_APPEND_ARRAY_BEGIN (&entry, "ids", &arr);
      for (size_t i = 0; i < n; i++) {
         size_t klen = bson_uint32_to_string ((uint32_t) i, &key, buf, sizeof buf);
         bson_append_value (&arr, key, (int) klen, &ids[i]);
      }
      bson_append_array_end (&entry, &arr);
   }
   if (upds) {
      BSON_APPEND_ARRAY (&entry, "upds", upds);
   }
   session_append (ctx, &entry);
   bool ok = append (ctx, &entry, (uint32_t) n, error);
   bson_destroy (&entry);
   return ok;
}

bool
dj_changes_record_deletes (dj_ctx_t *ctx, const dj_coll_t *c, const bson_t *ids, size_t n, bson_error_t *error)
{
   return record_batch (ctx, c, "delete", NULL, ids, n, NULL, error);
}

bool
dj_changes_record_updates (dj_ctx_t *ctx, const dj_coll_t *c, const bson_value_t *ids, size_t n, const bson_t *upds,
                           bson_error_t *error)
{
   return record_batch (ctx, c, "update", ids, NULL, n, upds, error);
}

bool
dj_changes_wants_updates (dj_ctx_t *ctx, const dj_coll_t *c)
{
   return !ctx->quiet_log && logged_ns (c->db, c->name);
}

bool
dj_changes_record_ns (dj_ctx_t *ctx, const char *op, const char *db, const char *coll, uint64_t cid, const bson_t *desc,
                      bson_error_t *error)
{
   if (ctx->quiet_log || !logged_ns (db, coll)) {
      return true;
   }
   if (!flush_inserts (ctx, error)) {
      return false;
   }
   bson_t entry;
   entry_start (&entry, op, db, coll);
   if (cid) {
      BSON_APPEND_INT64 (&entry, "cid", (int64_t) cid);
   }
   if (desc) {
      BSON_APPEND_DOCUMENT (&entry, "desc", desc);
   }
   session_append (ctx, &entry);
   bool ok = append (ctx, &entry, 1, error);
   bson_destroy (&entry);
   return ok;
}

/* ---- reading ------------------------------------------------------------------ */

/* Calls fn with the events of the entry at key ts that come after time
 * `after`: the entry itself, or each document of a batch (the header's
 * "A batch") as an entry of its own at its own time. False: fn stopped. */
/* each_event for an insert batch: docs iterates its documents. */
static bool
each_insert (uint64_t ts, const bson_t *entry, const bson_iter_t *docs, uint64_t after, dj_change_fn fn, void *ud)
{
   uint64_t n = 0;
   bson_iter_t d = *docs;
   while (bson_iter_next (&d)) {
      n++;
   }
   uint64_t t = ts - (n ? n - 1 : 0);
   d = *docs;
   for (; bson_iter_next (&d); t++) {
      if (t <= after || !BSON_ITER_HOLDS_DOCUMENT (&d)) {
         continue;
      }
      bson_t one, key, doc;
      bson_iter_t f, id;
      const uint8_t *data;
      uint32_t len;
      bson_iter_document (&d, &len, &data);
      if (!bson_init_static (&doc, data, len)) {
         continue;
      }
      bson_init (&one);
      bson_iter_init (&f, entry);
      while (bson_iter_next (&f)) {
         if (strcmp (bson_iter_key (&f), "docs")) {
            bson_append_iter (&one, NULL, 0, &f);
         }
      }
      BSON_APPEND_DOCUMENT_BEGIN (&one, "key", &key);
      if (bson_iter_init_find (&id, &doc, "_id")) {
         BSON_APPEND_VALUE (&key, "_id", bson_iter_value (&id));
      }
      bson_append_document_end (&one, &key);
      BSON_APPEND_DOCUMENT (&one, "doc", &doc);
      bool go = fn (t, &one, ud);
      bson_destroy (&one);
      if (!go) {
         return false;
      }
   }
   return true;
}

static bool
each_event (uint64_t ts, const bson_t *entry, uint64_t after, dj_change_fn fn, void *ud)
{
   bson_iter_t it, ids, upds;
   if (bson_iter_init_find (&it, entry, "docs") && BSON_ITER_HOLDS_ARRAY (&it) && bson_iter_recurse (&it, &ids)) {
      return each_insert (ts, entry, &ids, after, fn, ud);
   }
   if (!bson_iter_init_find (&it, entry, "ids") || !BSON_ITER_HOLDS_ARRAY (&it) || !bson_iter_recurse (&it, &ids)) {
      return fn (ts, entry, ud);
   }
   /* an update batch's descriptions, one a document */
   bool has_upds = bson_iter_init_find (&it, entry, "upds") && BSON_ITER_HOLDS_ARRAY (&it) && bson_iter_recurse (&it, &upds);
   uint64_t n = 0;
   bson_iter_t count = ids;
   while (bson_iter_next (&count)) {
      n++;
   }
   uint64_t t = ts - (n ? n - 1 : 0);
   for (; bson_iter_next (&ids); t++) {
      bool upd = has_upds && bson_iter_next (&upds) && BSON_ITER_HOLDS_DOCUMENT (&upds);
      if (t <= after) {
         continue;
      }
      bson_t one, key;
      bson_iter_t f;
      bson_init (&one);
      bson_iter_init (&f, entry);
      while (bson_iter_next (&f)) {
         if (strcmp (bson_iter_key (&f), "ids") && strcmp (bson_iter_key (&f), "upds")) {
            bson_append_iter (&one, NULL, 0, &f);
         }
      }
      BSON_APPEND_DOCUMENT_BEGIN (&one, "key", &key);
      BSON_APPEND_VALUE (&key, "_id", bson_iter_value (&ids));
      bson_append_document_end (&one, &key);
      if (upd) {
         bson_append_iter (&one, "upd", 3, &upds);
      }
      bool go = fn (t, &one, ud);
      bson_destroy (&one);
      if (!go) {
         return false;
      }
   }
   return true;
}

bool
dj_changes_read (dj_ctx_t *ctx, uint64_t after, dj_change_fn fn, void *ud, uint64_t *lost, bson_error_t *error)
{
   int64_t bytes, lost_ts;
   if (!read_meta (ctx, &bytes, &lost_ts, NULL, error)) {
      return false;
   }
   *lost = (uint64_t) lost_ts;
   uint8_t from[8];
   uint64_t start = after + 1;
   dj_u64be_write (from, start);
   dj_walk_t w;
   if (!dj_walk_open (&w, ctx, ctx->engine->dbi_changes, NULL, 0, 1, error)) {
      return false;
   }
   dj_walk_seek (&w, from, sizeof from);
   while (dj_walk_next (&w)) {
      bson_t entry;
      if (w.k.mv_size != 8 || !bson_init_static (&entry, w.v.mv_data, w.v.mv_size)) {
         continue;
      }
      if (!each_event (dj_u64be_read (w.k.mv_data), &entry, after, fn, ud)) {
         break;
      }
   }
   return dj_walk_close (&w, "change log read", error);
}

bool
dj_changes_last (dj_ctx_t *ctx, uint64_t *last, bson_error_t *error)
{
   MDB_cursor *cur;
   MDB_val k, v;
   *last = 0;
   int rc = mdb_cursor_open (ctx->txn, ctx->engine->dbi_changes, &cur);
   if (rc) {
      return dj_lmdb_error (rc, error, "change log");
   }
   if (mdb_cursor_get (cur, &k, &v, MDB_LAST) == 0 && k.mv_size == 8) {
      *last = dj_u64be_read (k.mv_data);
   }
   mdb_cursor_close (cur);
   return true;
}
