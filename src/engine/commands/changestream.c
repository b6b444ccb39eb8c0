/*
 * changestream.c -- $changeStream: aggregate's change streams, read from
 * the change log (storage/changes.c).
 *
 *   {aggregate: "coll", pipeline: [{$changeStream: {...}}, ...stages]}  one collection
 *   {aggregate: 1, ...} on a database                                    its collections
 *   {aggregate: 1, pipeline: [{$changeStream: {allChangesForCluster: true}}]} on admin
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/changeStream/
 * https://www.mongodb.com/docs/manual/changeStreams/
 *
 * A stream is a position in the log (a cluster time) and what to show.
 * Each batch reads the entries past the position in one snapshot, turns
 * each into its change event (the manual's "Change Events" pages:
 * https://www.mongodb.com/docs/manual/reference/change-events/), runs the
 * stages after $changeStream over it, and moves the position on. The
 * cursor (cursor.c) keeps the stream between getMores; a getMore that
 * finds nothing waits up to its maxTimeMS (1 s by default) for more, as
 * an awaitData cursor does.
 *
 * Resume tokens: an event's _id is {_data: hex}, opaque to clients, as
 * mongod's. Its bytes: 0x82, the cluster time (8 bytes, big-endian), a kind
 * (TOKEN_EVENT; TOKEN_INVALIDATE, the invalidate after a drop or rename;
 * TOKEN_HWM, a high-water mark: the postBatchResumeToken of a batch that
 * ended past its last event). A stream resumes after the token's time.
 * A fragment of a split event (TOKEN_FRAGMENT) adds its number (2 bytes):
 * a stream resumed there starts with the event's next fragment.
 *
 * $changeStreamSplitLargeEvent (the last stage) splits an event over
 * 16 MiB into fragments {_id, splitEvent: {fragment, of}, ...its top-level
 * fields}, as many fields as fit in each, in order; without it such an
 * event fails the stream (BSONObjectTooLarge). A batch holds the fragments
 * that fit; the next one re-reads the event and goes on from there.
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/changeStreamSplitLargeEvent/
 */
#include "dj_commands.h"

#include <stdio.h>
#include <time.h>

enum { TOKEN_HWM = 0, TOKEN_EVENT = 1, TOKEN_INVALIDATE = 2, TOKEN_FRAGMENT = 3 };
enum { FD_DEFAULT, FD_LOOKUP, FD_WHEN_AVAILABLE, FD_REQUIRED };
enum { FB_OFF, FB_WHEN_AVAILABLE, FB_REQUIRED };

struct dj_stream {
   char *db;   /* owned: the database watched (admin for the cluster) */
   char *coll; /* owned: the collection watched; NULL: the database or the cluster */
   bool cluster;
   int full_doc, before;
   bool expanded;          /* showExpandedEvents: create events too */
   dj_pipeline_t *rest;    /* owned: the stages after $changeStream */
   uint64_t pos;           /* events after this cluster time come next */
   bool check_invalidate;  /* resumed from an event's token: the entry at pos may call for an invalidate */
   bool invalidated;       /* the invalidate event was handed out: the stream is over */
   bson_t *pbrt;           /* owned: the last batch's postBatchResumeToken */
   bool split;             /* $changeStreamSplitLargeEvent ended the pipeline */
   uint64_t skip_ts;       /* the event at this time... */
   uint32_t skip_frags;    /* ...starts after its first skip_frags fragments (handed out already) */
};

/* ---- resume tokens ---------------------------------------------------------- */

/* kind TOKEN_FRAGMENT: fragment (1-based) of the event at ts */
static void
token_append_fragment (bson_t *out, const char *field, uint64_t ts, int kind, uint32_t fragment)
{
   char hex[2 * 12 + 1];
   uint8_t raw[12];
   int n = kind == TOKEN_FRAGMENT ? 12 : 10;
   raw[0] = 0x82;
   dj_u64be_write (raw + 1, ts);
   raw[9] = (uint8_t) kind;
   raw[10] = (uint8_t) (fragment >> 8);
   raw[11] = (uint8_t) fragment;
   for (int b = 0; b < n; b++) {
      snprintf (hex + 2 * b, 3, "%02X", raw[b]);
   }
   bson_t t;
   bson_append_document_begin (out, field, -1, &t);
   BSON_APPEND_UTF8 (&t, "_data", hex);
   bson_append_document_end (out, &t);
}

static void
token_append (bson_t *out, const char *field, uint64_t ts, int kind)
{
   token_append_fragment (out, field, ts, kind, 0);
}

/* A resume token ({_data: hex}) as its time and kind; `option` names
 * the $changeStream field in errors. */
static bool
token_parse (const bson_value_t *v, const char *option, uint64_t *ts, int *kind, uint32_t *fragment,
             bson_error_t *error)
{
   bson_value_t data;
   if (v->value_type != BSON_TYPE_DOCUMENT) {
      return dj_err (error, DJ_TypeMismatch, "BSON field '$changeStream.%s' is the wrong type '%s', expected type 'object'",
                     option, dj_type_name (v->value_type));
   }
   if (!dj_value_get_field (v, "_data", &data)) {
      return dj_err (error, DJ_BadValue, "Expected resume token to have a _data field");
   }
   if (data.value_type != BSON_TYPE_UTF8) {
      return dj_err (error, DJ_BadValue, "Expected resume token _data field to be a string");
   }
   const char *hex = data.value.v_utf8.str;
   uint8_t raw[12];
   uint32_t n = data.value.v_utf8.len / 2;
   bool ok = (n == 10 || n == 12) && data.value.v_utf8.len % 2 == 0;
   for (uint32_t b = 0; ok && b < n; b++) {
      unsigned int byte;
      ok = sscanf (hex + 2 * b, "%2x", &byte) == 1;
      raw[b] = (uint8_t) byte;
   }
   if (!ok || raw[0] != 0x82 || raw[9] > TOKEN_FRAGMENT || (raw[9] == TOKEN_FRAGMENT) != (n == 12)) {
      return dj_err (error, DJ_BadValue, "The resume token '%s' is not one this server issued", hex);
   }
   *ts = dj_u64be_read (raw + 1);
   *kind = raw[9];
   *fragment = n == 12 ? (uint32_t) raw[10] << 8 | raw[11] : 0;
   return true;
}

/* ---- parsing ------------------------------------------------------------------ */

static bool
enum_option (const bson_iter_t *it, const char *const *names, int *out, bson_error_t *error)
{
   const char *v = BSON_ITER_HOLDS_UTF8 (it) ? bson_iter_utf8 (it, NULL) : NULL;
   if (!v) {
      return dj_err (error, DJ_TypeMismatch, "BSON field '$changeStream.%s' is the wrong type '%s', expected type 'string'",
                     bson_iter_key (it), dj_type_name (bson_iter_type (it)));
   }
   for (int i = 0; names[i]; i++) {
      if (!strcmp (v, names[i])) {
         *out = i;
         return true;
      }
   }
   return dj_err (error, DJ_BadValue, "Enumeration value '%s' for field '$changeStream.%s' is not a valid value.", v,
                  bson_iter_key (it));
}

/* The stages a change stream may run after $changeStream: ones that
 * reshape or filter each event on its own.
 * https://www.mongodb.com/docs/manual/changeStreams/#modify-change-stream-output */
static bool
rest_allowed (const bson_t *stages, bson_error_t *error)
{
   static const char *const allowed[] = {"$match", "$project", "$addFields", "$set", "$unset", "$replaceRoot",
                                         "$replaceWith", "$redact", NULL};
   bson_iter_t it;
   bson_iter_init (&it, stages);
   while (bson_iter_next (&it)) {
      const char *name;
      bson_value_t spec;
      if (!dj_stage_split (&it, &name, &spec, error)) {
         return false;
      }
      bool ok = false;
      for (int i = 0; allowed[i] && !ok; i++) {
         ok = !strcmp (name, allowed[i]);
      }
      if (!ok) {
         return dj_err (error, DJ_IllegalOperation, "%s is not permitted in a $changeStream pipeline", name);
      }
   }
   return true;
}

/* The stages after $changeStream without a last {$changeStreamSplitLargeEvent: {}}
 * (*split: it was there); out: initialised on success (the caller's).
 * mongod's checks: only once, only last (40601, 7183900). */
static bool
split_stage (const bson_t *stages, bson_t *out, bool *split, bson_error_t *error)
{
   static const char name[] = "$changeStreamSplitLargeEvent";
   bson_iter_t it, st;
   uint32_t n = bson_count_keys (stages), i = 0;
   *split = false;
   bson_init (out);
   bson_iter_init (&it, stages);
   while (bson_iter_next (&it)) {
      bool is_split = BSON_ITER_HOLDS_DOCUMENT (&it) && bson_iter_recurse (&it, &st) && bson_iter_next (&st) &&
                      !strcmp (bson_iter_key (&st), name);
      i++;
      if (!is_split) {
         char buf[16];
         const char *key;
         bson_uint32_to_string (i - 1, &key, buf, sizeof buf);
         bson_append_value (out, key, -1, bson_iter_value (&it));
         continue;
      }
      if (*split) {
         bson_destroy (out);
         return dj_err (error, 7183900, "%s can only be used once in the pipeline", name);
      }
      if (i != n) {
         bson_destroy (out);
         return dj_err (error, 40601, "%s can only be the final stage in the pipeline", name);
      }
      bson_iter_t arg;
      if (!BSON_ITER_HOLDS_DOCUMENT (&st) || !bson_iter_recurse (&st, &arg) || bson_iter_next (&arg)) {
         bson_destroy (out);
         return dj_err (error, DJ_FailedToParse, "%s only accepts an empty object as its argument", name);
      }
      *split = true;
   }
   return true;
}

void
dj_stream_free (dj_stream_t *s)
{
   if (s) {
      bson_free (s->db);
      bson_free (s->coll);
      dj_pipeline_destroy (s->rest);
      if (s->pbrt) {
         bson_destroy (s->pbrt);
      }
      bson_free (s);
   }
}

/* The stream's start: from the resume options, else the log's newest entry
 * (read in ctx: what commits later has a later time). */
static bool
stream_start (dj_ctx_t *ctx, dj_stream_t *s, const bson_iter_t *resume, const bson_iter_t *start_after,
              const bson_iter_t *at_time, bson_error_t *error)
{
   uint64_t ts = 0;
   int kind = 0;
   uint32_t fragment = 0;
   if (resume || start_after) {
      bool after = !resume;
      if (!token_parse (bson_iter_value ((bson_iter_t *) (after ? start_after : resume)),
                        after ? "startAfter" : "resumeAfter", &ts, &kind, &fragment, error)) {
         return false;
      }
      if (kind == TOKEN_FRAGMENT) {
         if (!s->split) {
            return dj_err (error, 280 /* ChangeStreamFatalError */,
                           "To resume from a split event, the $changeStream pipeline must include a "
                           "$changeStreamSplitLargeEvent stage");
         }
         /* the event again, after the fragments handed out */
         s->pos = ts ? ts - 1 : 0;
         s->skip_ts = ts;
         s->skip_frags = fragment;
         return true;
      }
   }
   if (resume) {
      if (kind == TOKEN_INVALIDATE) {
         return dj_err (error, 260 /* InvalidResumeToken */,
                        "Attempting to resume a change stream using 'resumeAfter' is not allowed from an invalidate "
                        "notification.");
      }
      s->pos = ts;
      s->check_invalidate = kind == TOKEN_EVENT;
      return true;
   }
   if (start_after) {
      s->pos = ts;
      s->check_invalidate = kind == TOKEN_EVENT;
      return true;
   }
   if (at_time) {
      if (!BSON_ITER_HOLDS_TIMESTAMP (at_time)) {
         return dj_err (error, DJ_TypeMismatch,
                        "BSON field '$changeStream.startAtOperationTime' is the wrong type '%s', expected type 'timestamp'",
                        dj_type_name (bson_iter_type (at_time)));
      }
      uint32_t t, i;
      bson_iter_timestamp (at_time, &t, &i);
      ts = (uint64_t) t << 32 | i;
      s->pos = ts ? ts - 1 : 0; /* events at that time and after */
      return true;
   }
   return dj_changes_last (ctx, &s->pos, error);
}

/* Parses {$changeStream: spec} and the stages after it for a stream on
 * db (and coll: NULL for {aggregate: 1}). */
static dj_stream_t *
stream_new (dj_ctx_t *ctx, const char *db, const char *coll, const bson_value_t *spec, const bson_t *rest,
            bson_error_t *error)
{
   static const char *const fd_names[] = {"default", "updateLookup", "whenAvailable", "required", NULL};
   static const char *const fb_names[] = {"off", "whenAvailable", "required", NULL};
   bson_iter_t it, resume, start_after, at_time;
   bool has_resume = false, has_start_after = false, has_at_time = false;
   dj_stream_t *s = bson_malloc0 (sizeof *s);

   if (spec->value_type != BSON_TYPE_DOCUMENT) {
      dj_err (error, 50808, "$changeStream stage expects a document as argument");
      goto fail;
   }
   bson_iter_init_from_data (&it, spec->value.v_doc.data, spec->value.v_doc.data_len);
   while (bson_iter_next (&it)) {
      const char *k = bson_iter_key (&it);
      if (!strcmp (k, "fullDocument")) {
         if (!enum_option (&it, fd_names, &s->full_doc, error)) {
            goto fail;
         }
      } else if (!strcmp (k, "fullDocumentBeforeChange")) {
         if (!enum_option (&it, fb_names, &s->before, error)) {
            goto fail;
         }
      } else if (!strcmp (k, "resumeAfter")) {
         resume = it;
         has_resume = true;
      } else if (!strcmp (k, "startAfter")) {
         start_after = it;
         has_start_after = true;
      } else if (!strcmp (k, "startAtOperationTime")) {
         at_time = it;
         has_at_time = true;
      } else if (!strcmp (k, "allChangesForCluster") || !strcmp (k, "showExpandedEvents") ||
                 !strcmp (k, "showSystemEvents") || !strcmp (k, "showMigrationEvents") ||
                 !strcmp (k, "allowToRunOnConfigDB") || !strcmp (k, "allowToRunOnSystemNS")) {
         if (!BSON_ITER_HOLDS_BOOL (&it)) {
            dj_err (error, DJ_TypeMismatch, "BSON field '$changeStream.%s' is the wrong type '%s', expected type 'bool'", k,
                    dj_type_name (bson_iter_type (&it)));
            goto fail;
         }
         if (!strcmp (k, "allChangesForCluster")) {
            s->cluster = bson_iter_bool (&it);
         } else if (!strcmp (k, "showExpandedEvents")) {
            s->expanded = bson_iter_bool (&it);
         }
      } else {
         dj_err (error, DJ_UnknownField, "BSON field '$changeStream.%s' is an unknown field.", k);
         goto fail;
      }
   }
   if (has_resume && has_start_after) {
      dj_err (error, 50865, "Do not specify both 'resumeAfter' and 'startAfter' in a $changeStream stage");
      goto fail;
   }
   if ((has_resume || has_start_after) && has_at_time) {
      dj_err (error, 40674, "Only one type of resume option is allowed, but multiple were found.");
      goto fail;
   }
   /* where a stream may be opened:
    * https://www.mongodb.com/docs/manual/changeStreams/#watch-a-collection--database--or-deployment */
   if (s->cluster && (strcmp (db, "admin") || coll)) {
      dj_err (error, DJ_InvalidOptions,
              "A $changeStream with 'allChangesForCluster:true' may only be opened on the 'admin' database, and with no "
              "collection name");
      goto fail;
   }
   if (!s->cluster && !strcmp (db, "admin")) {
      dj_err (error, DJ_InvalidNamespace, "$changeStream may not be opened on the internal admin database");
      goto fail;
   }
   if (!strcmp (db, "config") || !strcmp (db, "local")) {
      dj_err (error, DJ_InvalidNamespace, "$changeStream may not be opened on the internal %s database", db);
      goto fail;
   }
   if (coll && !strncmp (coll, "system.", 7)) {
      dj_err (error, DJ_InvalidNamespace, "$changeStream may not be opened on the internal %s.%s collection", db, coll);
      goto fail;
   }
   bson_t stages;
   if (!split_stage (rest, &stages, &s->split, error)) {
      goto fail;
   }
   bool parsed = (s->rest = dj_pipeline_new (&stages, NULL, error)) && rest_allowed (&stages, error);
   bson_destroy (&stages);
   if (!parsed) {
      goto fail;
   }
   s->db = bson_strdup (db);
   s->coll = coll ? bson_strdup (coll) : NULL;
   if (!stream_start (ctx, s, has_resume ? &resume : NULL, has_start_after ? &start_after : NULL,
                      has_at_time ? &at_time : NULL, error)) {
      goto fail;
   }
   return s;
fail:
   dj_stream_free (s);
   return NULL;
}

/* ---- events ---------------------------------------------------------------------- */

typedef struct {
   dj_engine_t *engine;
   dj_ctx_t *ctx;
   dj_stream_t *s;
   int64_t max;    /* events wanted at most */
   dj_docs_t *out; /* the batch */
   size_t bytes;
   uint64_t last;  /* the last entry read */
   bool last_shown; /* ...and it ended the batch with an event */
   uint64_t ts;     /* the entry being read */
   bool cut;        /* the batch is full inside the event at ts (its fragments) */
   bool failed;
   bson_error_t *error;
} fetch_t;

static const char *
entry_str (const bson_t *entry, const char *field)
{
   bson_iter_t it;
   return bson_iter_init_find (&it, entry, field) && BSON_ITER_HOLDS_UTF8 (&it) ? bson_iter_utf8 (&it, NULL) : NULL;
}

static bool
entry_doc (const bson_t *entry, const char *field, bson_t *out)
{
   bson_iter_t it;
   const uint8_t *d;
   uint32_t l;
   if (!bson_iter_init_find (&it, entry, field) || !BSON_ITER_HOLDS_DOCUMENT (&it)) {
      return false;
   }
   bson_iter_document (&it, &l, &d);
   return bson_init_static (out, d, l);
}

/* Whether the stream watches what entry changed. */
static bool
watches (const dj_stream_t *s, const bson_t *entry)
{
   const char *db = entry_str (entry, "db"), *coll = entry_str (entry, "coll");
   if (s->cluster) {
      return true;
   }
   if (!db || strcmp (db, s->db)) {
      return false;
   }
   if (!s->coll) {
      return true;
   }
   /* a collection's stream sees its database dropped as the collection's drop (logged before it) */
   return coll && !strcmp (coll, s->coll);
}

/* Whether entry ends the stream: a collection's stream ends when it is
 * dropped or renamed, a database's when the database is dropped. */
static bool
invalidates (const dj_stream_t *s, const char *op)
{
   if (s->cluster) {
      return false;
   }
   if (s->coll) {
      return !strcmp (op, "drop") || !strcmp (op, "rename");
   }
   return !strcmp (op, "dropDatabase");
}

typedef struct {
   bson_t *found;
} lookup_t;

static bool
lookup_fn (uint64_t rid, const bson_t *doc, int32_t pos, void *ud)
{
   (void) rid;
   (void) pos;
   ((lookup_t *) ud)->found = bson_copy (doc);
   return false;
}

/* fullDocument: updateLookup: the document as it is now (NULL: gone). */
static bool
lookup_current (fetch_t *f, const char *db, const char *coll, const bson_t *key, bson_t **found)
{
   lookup_t l = {0};
   *found = NULL;
   dj_coll_t *c = dj_coll_load (f->ctx, db, coll, f->error);
   if (!c) {
      return !f->error->code;
   }
   dj_matcher_t *m = dj_matcher_new (key, f->error);
   bool ok = m && dj_plan_scan (f->ctx, c, m, false, 1, lookup_fn, &l, f->error);
   dj_matcher_destroy (m);
   dj_coll_free (c);
   *found = l.found;
   return ok;
}

/* A collection's UUID as events show it (collectionUUID, a rename's
 * dropTarget): made from its catalog id, which it keeps for its life
 * (a rename too), as mongod's UUID. */
static void
uuid_append (bson_t *out, const char *field, uint64_t cid)
{
   uint8_t u[16] = {'d', 'j', 'o', 'n', 'g', 'o', 0x40, 0, 0x80};
   for (int b = 0; b < 8; b++) {
      u[8 + b] |= (uint8_t) (cid >> (56 - 8 * b));
   }
   bson_append_binary (out, field, -1, BSON_SUBTYPE_UUID, u, sizeof u);
}

static void
event_head (bson_t *ev, uint64_t ts, int kind, const char *op, const bson_t *entry)
{
   bson_iter_t it;
   token_append (ev, "_id", ts, kind);
   BSON_APPEND_UTF8 (ev, "operationType", op);
   BSON_APPEND_TIMESTAMP (ev, "clusterTime", (uint32_t) (ts >> 32), (uint32_t) ts);
   if (bson_iter_init_find (&it, entry, "wall")) {
      BSON_APPEND_VALUE (ev, "wallTime", bson_iter_value (&it));
   }
}

/* The change event of entry (at time ts) for the stream: false with
 * f->error on failure. */
static bool
build_event (fetch_t *f, uint64_t ts, const bson_t *entry, const char *op, bson_t *ev)
{
   const dj_stream_t *s = f->s;
   const char *db = entry_str (entry, "db"), *coll = entry_str (entry, "coll");
   bson_t key, doc, pre, upd, ns;
   bool has_key = entry_doc (entry, "key", &key), has_doc = entry_doc (entry, "doc", &doc);
   bool has_pre = entry_doc (entry, "pre", &pre);
   bool document_op = !strcmp (op, "insert") || !strcmp (op, "update") || !strcmp (op, "replace") || !strcmp (op, "delete");

   bson_init (ev);
   event_head (ev, ts, TOKEN_EVENT, op, entry);
   bson_iter_t it;
   if (s->expanded && bson_iter_init_find (&it, entry, "cid")) {
      uuid_append (ev, "collectionUUID", (uint64_t) bson_iter_as_int64 (&it));
   }
   bson_t *looked_up = NULL;
   if (!strcmp (op, "insert") || !strcmp (op, "replace")) {
      BSON_APPEND_DOCUMENT (ev, "fullDocument", &doc);
   } else if (!strcmp (op, "update") && s->full_doc != FD_DEFAULT) {
      if (s->full_doc == FD_LOOKUP) {
         if (!lookup_current (f, db, coll, &key, &looked_up)) {
            return false;
         }
      }
      const bson_t *post = looked_up ? looked_up : (s->full_doc != FD_LOOKUP && has_doc) ? &doc : NULL;
      if (!post && s->full_doc == FD_REQUIRED) {
         return dj_err (f->error, 47 /* NoMatchingDocument */,
                        "Change stream was configured to require a post-image for all update, delete and replace events, "
                        "but the post-image was not found for event: %s.%s",
                        db, coll);
      }
      if (post) {
         BSON_APPEND_DOCUMENT (ev, "fullDocument", post);
      } else {
         BSON_APPEND_NULL (ev, "fullDocument");
      }
   }
   BSON_APPEND_DOCUMENT_BEGIN (ev, "ns", &ns);
   BSON_APPEND_UTF8 (&ns, "db", db ? db : "");
   if (coll) {
      BSON_APPEND_UTF8 (&ns, "coll", coll);
   }
   bson_append_document_end (ev, &ns);
   bson_t desc;
   bool has_desc = entry_doc (entry, "desc", &desc);
   if (has_desc && bson_iter_init_find (&it, &desc, "to") && BSON_ITER_HOLDS_DOCUMENT (&it)) {
      BSON_APPEND_VALUE (ev, "to", bson_iter_value (&it));
   }
   if (document_op && has_key) {
      BSON_APPEND_DOCUMENT (ev, "documentKey", &key);
   }
   if (entry_doc (entry, "upd", &upd)) {
      bson_t shown;
      BSON_APPEND_DOCUMENT_BEGIN (ev, "updateDescription", &shown);
      bson_iter_init (&it, &upd);
      while (bson_iter_next (&it)) {
         /* disambiguatedPaths: with showExpandedEvents, when some path is ambiguous */
         if (strcmp (bson_iter_key (&it), "disambiguatedPaths") ||
             (s->expanded && dj_value_count (bson_iter_value (&it)) > 0)) {
            BSON_APPEND_VALUE (&shown, bson_iter_key (&it), bson_iter_value (&it));
         }
      }
      bson_append_document_end (ev, &shown);
   }
   bson_t lsid;
   if (entry_doc (entry, "lsid", &lsid) && bson_iter_init_find (&it, entry, "txn")) {
      /* a change of a multi-document transaction: its session and number
       * https://www.mongodb.com/docs/manual/reference/change-events/ */
      BSON_APPEND_INT64 (ev, "txnNumber", bson_iter_as_int64 (&it));
      BSON_APPEND_DOCUMENT (ev, "lsid", &lsid);
   }
   if (has_desc && s->expanded) {
      bson_t od;
      BSON_APPEND_DOCUMENT_BEGIN (ev, "operationDescription", &od);
      bson_iter_init (&it, &desc);
      while (bson_iter_next (&it)) {
         if (!strcmp (bson_iter_key (&it), "dropTarget")) {
            uuid_append (&od, "dropTarget", (uint64_t) bson_iter_as_int64 (&it));
         } else {
            BSON_APPEND_VALUE (&od, bson_iter_key (&it), bson_iter_value (&it));
         }
      }
      bson_append_document_end (ev, &od);
   }
   if (document_op && strcmp (op, "insert") && s->before != FB_OFF) {
      if (!has_pre && s->before == FB_REQUIRED) {
         if (looked_up) {
            bson_destroy (looked_up);
         }
         return dj_err (f->error, 47 /* NoMatchingDocument */,
                        "Change stream was configured to require a pre-image for all update, delete and replace events, "
                        "but the pre-image was not found for event: %s.%s",
                        db, coll);
      }
      if (has_pre) {
         BSON_APPEND_DOCUMENT (ev, "fullDocumentBeforeChange", &pre);
      } else {
         BSON_APPEND_NULL (ev, "fullDocumentBeforeChange");
      }
   }
   if (looked_up) {
      bson_destroy (looked_up);
   }
   return true;
}

/* The fragments of event ev (at ts), over 16 MiB: its top-level fields
 * but _id in order, as many in each fragment as fit under 16 MiB beside
 * the fragment's own _id and splitEvent. *frags: an owned array of *n
 * owned documents. A field too large on its own: BSONObjectTooLarge. */
static bool
split_event (const bson_t *ev, uint64_t ts, bson_t ***frags, uint32_t *n, bson_error_t *error)
{
   bson_iter_t it;
   bson_t head = BSON_INITIALIZER, sub;
   token_append_fragment (&head, "_id", ts, TOKEN_FRAGMENT, UINT16_MAX);
   BSON_APPEND_DOCUMENT_BEGIN (&head, "splitEvent", &sub);
   BSON_APPEND_INT32 (&sub, "fragment", INT32_MAX);
   BSON_APPEND_INT32 (&sub, "of", INT32_MAX);
   bson_append_document_end (&head, &sub);
   size_t room = (size_t) DJ_MAX_BSON_SIZE - head.len; /* for the fields, at most */
   bson_destroy (&head);
   /* which fragment each field goes to */
   uint32_t nfields = bson_count_keys (ev), k = 0, count = 0;
   uint32_t *frag_of = bson_malloc0 (sizeof (uint32_t) * (nfields ? nfields : 1));
   size_t used = 0;
   bson_iter_init (&it, ev);
   while (bson_iter_next (&it)) {
      if (!strcmp (bson_iter_key (&it), "_id")) {
         k++;
         continue;
      }
      bson_t one = BSON_INITIALIZER;
      bson_append_iter (&one, NULL, 0, &it);
      size_t size = one.len - 5;
      bson_destroy (&one);
      if (size > room) {
         bson_free (frag_of);
         return dj_err (error, DJ_BSONObjectTooLarge,
                        "BSONObj size: %zu is invalid: the change event's field '%s' alone is larger than 16MB, which "
                        "$changeStreamSplitLargeEvent cannot split",
                        size, bson_iter_key (&it));
      }
      if (count == 0 || used + size > room) {
         count++;
         used = 0;
      }
      used += size;
      frag_of[k++] = count;
   }
   *n = count;
   *frags = bson_malloc0 (sizeof (bson_t *) * (count ? count : 1));
   for (uint32_t i = 0; i < count; i++) {
      bson_t *fr = (*frags)[i] = bson_new ();
      token_append_fragment (fr, "_id", ts, TOKEN_FRAGMENT, i + 1);
      BSON_APPEND_DOCUMENT_BEGIN (fr, "splitEvent", &sub);
      BSON_APPEND_INT32 (&sub, "fragment", (int32_t) i + 1);
      BSON_APPEND_INT32 (&sub, "of", (int32_t) count);
      bson_append_document_end (fr, &sub);
      bson_iter_init (&it, ev);
      for (uint32_t j = 0; bson_iter_next (&it); j++) {
         if (frag_of[j] == i + 1 && strcmp (bson_iter_key (&it), "_id")) {
            bson_append_iter (fr, NULL, 0, &it);
         }
      }
   }
   bson_free (frag_of);
   return true;
}

/* Adds event d (stolen) to the batch: split into fragments when over
 * 16 MiB with $changeStreamSplitLargeEvent (those the stream handed out
 * already skipped; the batch cut where the next does not fit), else
 * BSONObjectTooLarge as mongod's. */
static bool
push_event (fetch_t *f, bson_t *d)
{
   dj_stream_t *s = f->s;
   if (d->len <= (uint32_t) DJ_MAX_BSON_SIZE) {
      f->bytes += d->len;
      dj_docs_push (f->out, d);
      return true;
   }
   if (!s->split) {
      uint32_t len = d->len;
      bson_destroy (d);
      return dj_err (f->error, DJ_BSONObjectTooLarge,
                     "BSONObj size: %u (0x%X) is invalid. Size must be between 0 and 16793600(16MB): a change event "
                     "over 16MB needs a $changeStreamSplitLargeEvent stage",
                     len, len);
   }
   bson_t **frags = NULL;
   uint32_t n = 0;
   bool ok = split_event (d, f->ts, &frags, &n, f->error);
   bson_destroy (d);
   if (!ok) {
      return false;
   }
   uint32_t k = s->skip_ts == f->ts ? s->skip_frags : 0;
   s->skip_ts = 0;
   for (uint32_t i = 0; i < k && i < n; i++) {
      bson_destroy (frags[i]); /* handed out already */
      frags[i] = NULL;
   }
   for (; k < n; k++) {
      if (f->out->n && f->bytes + frags[k]->len > (size_t) DJ_MAX_BSON_SIZE) {
         /* the rest in the next batch, which reads this event again */
         f->cut = true;
         s->skip_ts = f->ts;
         s->skip_frags = k;
         break;
      }
      f->bytes += frags[k]->len;
      dj_docs_push (f->out, frags[k]);
      frags[k] = NULL;
   }
   dj_bsons_free (frags, k, n);
   return true;
}

/* Runs the stages after $changeStream over one event (stolen) and adds
 * what comes out to the batch; an output whose _id is not the event's
 * is ChangeStreamFatalError (the token would be lost). */
static bool
emit (fetch_t *f, bson_t *ev)
{
   dj_docs_t docs = {0};
   bson_iter_t it;
   bson_value_t id;
   bson_iter_init_find (&it, ev, "_id");
   bson_value_copy (bson_iter_value (&it), &id);
   dj_docs_push (&docs, ev);
   dj_prun_t run = {.engine = f->engine, .ctx = f->ctx, .db = f->s->db, .now_ms = dj_now_ms ()};
   bool ok = dj_pipeline_run_docs (f->s->rest, &run, &docs, f->error);
   for (size_t i = 0; ok && i < docs.n; i++) {
      if (!bson_iter_init_find (&it, docs.v[i], "_id") || !dj_value_identical (bson_iter_value (&it), &id)) {
         ok = dj_err (f->error, 280 /* ChangeStreamFatalError */,
                      "Encountered an event whose _id field, which contains the resume token, was modified by the "
                      "pipeline. Modifying the _id field of an event makes it impossible to resume the stream from that "
                      "point. Only transformations that retain the unmodified _id field are allowed.");
      }
   }
   for (size_t i = 0; ok && i < docs.n; i++) {
      ok = push_event (f, docs.v[i]);
      docs.v[i] = NULL;
   }
   for (size_t i = 0; i < docs.n; i++) {
      if (docs.v[i]) {
         bson_destroy (docs.v[i]);
      }
   }
   bson_free (docs.v);
   bson_value_destroy (&id);
   return ok;
}

/* The events only showExpandedEvents shows.
 * https://www.mongodb.com/docs/manual/reference/change-events/#expanded-events */
static bool
expanded_only (const char *op)
{
   return !strcmp (op, "create") || !strcmp (op, "createIndexes") || !strcmp (op, "dropIndexes") || !strcmp (op, "modify");
}

static bool
fetch_fn (uint64_t ts, const bson_t *entry, void *ud)
{
   fetch_t *f = ud;
   dj_stream_t *s = f->s;
   const char *op = entry_str (entry, "op");
   size_t before = f->out->n;
   bool resumed_at = s->check_invalidate && ts == s->pos;
   if (!op) {
      return true;
   }
   f->ts = ts;
   if (resumed_at) {
      /* the entry whose event the stream resumed after: shown already,
       * but a drop or rename there still ends the stream */
      s->check_invalidate = false;
   } else if (watches (s, entry) && (!expanded_only (op) || s->expanded)) {
      bson_t ev;
      if (!build_event (f, ts, entry, op, &ev)) {
         bson_destroy (&ev);
         f->failed = true;
         return false;
      }
      if (!emit (f, bson_copy (&ev))) {
         bson_destroy (&ev);
         f->failed = true;
         return false;
      }
      bson_destroy (&ev);
      if (f->cut) {
         /* full inside this event: the next batch reads it again (s->skip_frags) */
         f->last = ts - 1;
         f->last_shown = true;
         return false;
      }
   }
   if (watches (s, entry) && invalidates (s, op)) {
      bson_t *inv = bson_new ();
      event_head (inv, ts, TOKEN_INVALIDATE, "invalidate", entry);
      if (!emit (f, inv)) {
         f->failed = true;
         return false;
      }
      s->invalidated = true;
   }
   f->last = ts;
   f->last_shown = f->out->n > before;
   if (s->invalidated) {
      return false;
   }
   /* a batch stays well under a reply's 16 MiB */
   return (f->max <= 0 || (int64_t) f->out->n < f->max) && f->bytes < (size_t) DJ_MAX_BSON_SIZE / 2;
}

/* One batch: the events past the stream's position, at most max (0: as
 * many as fit), waiting up to wait_ms for the first (polled: a writer in
 * another process gives no signal). */
static bool
stream_fetch (dj_engine_t *e, dj_stream_t *s, int64_t max, int64_t wait_ms, dj_docs_t *out, bson_error_t *error)
{
   int64_t deadline = dj_now_ms () + wait_ms;
   for (;;) {
      dj_ctx_t ctx = {0};
      uint64_t lost = 0;
      fetch_t f = {.engine = e, .ctx = &ctx, .s = s, .max = max, .out = out, .last = s->pos, .error = error};
      if (!dj_txn_begin (e, false, &ctx, error)) {
         return false;
      }
      uint64_t from = s->check_invalidate && s->pos ? s->pos - 1 : s->pos;
      bool ok = dj_changes_read (&ctx, from, fetch_fn, &f, &lost, error) && !f.failed;
      if (ok && lost && s->pos < lost) {
         /* https://www.mongodb.com/docs/manual/changeStreams/#resume-a-change-stream:
          * the log no longer holds what comes after the resume point */
         ok = dj_err (error, 286 /* ChangeStreamHistoryLost */,
                      "Resume of change stream was not possible, as the resume point may no longer be in the oplog.");
      }
      uint64_t newest = 0;
      if (ok && !out->n && !s->invalidated) {
         ok = dj_changes_last (&ctx, &newest, error);
      }
      dj_txn_abort (&ctx);
      if (!ok) {
         dj_docs_clear (out);
         return false;
      }
      s->check_invalidate = false;
      s->pos = f.last > s->pos ? f.last : s->pos;
      if (!s->pbrt) {
         s->pbrt = bson_new ();
      }
      bson_reinit (s->pbrt);
      if (out->n && f.last_shown) {
         /* the batch ends on an event: its token */
         bson_iter_t it;
         bson_iter_init_find (&it, out->v[out->n - 1], "_id");
         BSON_APPEND_VALUE (s->pbrt, "postBatchResumeToken", bson_iter_value (&it));
      } else {
         s->pos = newest > s->pos ? newest : s->pos;
         token_append (s->pbrt, "postBatchResumeToken", s->pos, TOKEN_HWM);
      }
      if (out->n || s->invalidated || dj_now_ms () >= deadline) {
         return true;
      }
      struct timespec pause = {0, 20 * 1000000L};
      nanosleep (&pause, NULL);
   }
}

/* ---- replies ---------------------------------------------------------------------- */

static void
stream_reply (bson_t *reply, const char *ns, const char *batch_name, const dj_docs_t *docs, int64_t id,
              const dj_stream_t *s)
{
   bson_t cur, arr;
   char buf[16];
   const char *key;
   bson_iter_t it;

   BSON_APPEND_DOCUMENT_BEGIN (reply, "cursor", &cur);
   bson_append_array_begin (&cur, batch_name, -1, &arr);
   for (size_t i = 0; i < docs->n; i++) {
      bson_uint32_to_string ((uint32_t) i, &key, buf, sizeof buf);
      bson_append_document (&arr, key, -1, docs->v[i]);
   }
   bson_append_array_end (&cur, &arr);
   if (s->pbrt && bson_iter_init_find (&it, s->pbrt, "postBatchResumeToken")) {
      BSON_APPEND_VALUE (&cur, "postBatchResumeToken", bson_iter_value (&it));
   }
   BSON_APPEND_INT64 (&cur, "id", id);
   BSON_APPEND_UTF8 (&cur, "ns", ns);
   bson_append_document_end (reply, &cur);
   BSON_APPEND_DOUBLE (reply, "ok", 1.0);
}

bool
dj_stream_get_more (dj_engine_t *e, dj_stream_t *s, const char *ns, int64_t batch, int64_t wait_ms, int64_t id,
                    bson_t *reply, bool *done, bson_error_t *error)
{
   dj_docs_t out = {0};
   if (!stream_fetch (e, s, batch, wait_ms, &out, error)) {
      return false;
   }
   *done = s->invalidated;
   stream_reply (reply, ns, "nextBatch", &out, *done ? 0 : id, s);
   dj_docs_clear (&out);
   return true;
}

/* A change stream reads majority-committed changes only: another
 * readConcern level is refused, as mongod's
 * DocumentSourceChangeStream::assertSupportsReadConcern does (InvalidOptions).
 * https://www.mongodb.com/docs/manual/reference/read-concern/ */
bool
dj_change_stream_read_concern (const bson_t *cmd, bson_error_t *error)
{
   bson_iter_t it, lv;
   if (!bson_iter_init_find (&it, cmd, "readConcern") || !BSON_ITER_HOLDS_DOCUMENT (&it) ||
       !bson_iter_recurse (&it, &lv) || !bson_iter_find (&lv, "level") ||
       (BSON_ITER_HOLDS_UTF8 (&lv) && !strcmp (bson_iter_utf8 (&lv, NULL), "majority"))) {
      return true;
   }
   bson_t shown = BSON_INITIALIZER;
   dj_buf_t text;
   dj_buf_init (&text);
   bson_append_value (&shown, "readConcern", -1, bson_iter_value (&it));
   dj_doc_to_shell (&shown, &text);
   dj_err (error, DJ_InvalidOptions,
           "$changeStream cannot run with a readConcern other than 'majority', or in a multi-document transaction. "
           "Current readConcern: %.*s",
           (int) text.len, (const char *) text.data);
   dj_buf_cleanup (&text);
   bson_destroy (&shown);
   return false;
}

bool
dj_cmd_change_stream (dj_engine_t *e, const char *db, const char *coll, const bson_value_t *spec, const bson_t *rest,
                      int64_t batch, bson_t *reply, bson_error_t *error)
{
   dj_ctx_t ctx = {0};
   dj_docs_t out = {0};
   if (!dj_txn_begin (e, false, &ctx, error)) {
      return false;
   }
   if (ctx.borrowed) {
      /* a transaction's snapshot would never see a later change
       * https://www.mongodb.com/docs/manual/core/transactions-operations/#restrictions */
      dj_txn_abort (&ctx);
      return dj_err (error, 263 /* OperationNotSupportedInTransaction */,
                     "Operation not permitted in transaction: $changeStream");
   }
   dj_stream_t *s = stream_new (&ctx, db, coll, spec, rest, error);
   dj_txn_abort (&ctx);
   /* the first batch: what is already there when resuming, never a wait */
   if (!s || (batch != 0 && !stream_fetch (e, s, batch < 0 ? 0 : batch, 0, &out, error))) {
      dj_stream_free (s);
      return false;
   }
   if (batch == 0) {
      s->pbrt = bson_new ();
      token_append (s->pbrt, "postBatchResumeToken", s->pos, TOKEN_HWM);
   }
   char *ns = coll ? bson_strdup_printf ("%s.%s", db, coll) : bson_strdup_printf ("%s.$cmd.aggregate", db);
   int64_t id = 0;
   if (!s->invalidated) {
      id = dj_cursor_open (e, ns, bson_malloc0 (sizeof (bson_t *)), 0, 0);
   }
   stream_reply (reply, ns, "firstBatch", &out, id, s);
   if (id) {
      dj_cursor_attach_stream (e, id, s);
   } else {
      dj_stream_free (s);
   }
   dj_docs_clear (&out);
   bson_free (ns);
   return true;
}
