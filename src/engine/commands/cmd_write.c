/*
 * cmd_write.c -- insert, update, delete, findAndModify.
 *
 * A write command is one LMDB write transaction. A statement that fails
 * (duplicate key, bad operator, ...) becomes an entry of `writeErrors`, as
 * in MongoDB: with ordered: true the command stops there, otherwise it goes
 * on; the statements that succeeded are committed either way. Storage
 * failures (disk full, I/O) are different: the transaction is aborted, the
 * command fails as a whole, and nothing of it is written.
 * https://www.mongodb.com/docs/manual/reference/command/insert/#output
 */
#include "dj_commands.h"

#include "dj_bson_walk.h"

#include <stdio.h>

static bool
is_storage_error (const bson_error_t *e)
{
   return e->domain != DJ_DOMAIN_SERVER || e->code == DJ_OutOfDiskSpace || e->code == DJ_InternalError;
}

/* A write command's write errors, and whether it stops at the first. */
typedef struct {
   bson_t arr;
   int n;
   bool ordered;
   bool stop; /* an ordered command had a statement fail */
} werrs_t;

/* A write error: {index, code, errmsg} and the error's own fields (ctx's
 * error_info: keyPattern/keyValue, errInfo). */
static void
werr_add (werrs_t *w, dj_ctx_t *ctx, int index, const bson_error_t *e)
{
   char buf[16];
   const char *key;
   bson_t one;
   bson_uint32_to_string ((uint32_t) w->n++, &key, buf, sizeof buf);
   bson_append_document_begin (&w->arr, key, -1, &one);
   BSON_APPEND_INT32 (&one, "index", index);
   BSON_APPEND_INT32 (&one, "code", (int32_t) e->code);
   BSON_APPEND_UTF8 (&one, "errmsg", e->message);
   dj_ctx_error_info (ctx, e, &one);
   bson_append_document_end (&w->arr, &one);
}

/* Statement `index` failed with e. A storage error fails the whole command
 * (false, e copied to *error: nothing of it may be committed); any other is
 * the statement's write error, after which an ordered command stops (w->stop).
 * https://www.mongodb.com/docs/manual/reference/command/insert/#output */
static bool
stmt_failed (werrs_t *w, dj_ctx_t *ctx, int index, const bson_error_t *e, bson_error_t *error)
{
   if (is_storage_error (e)) {
      *error = *e;
      return false;
   }
   werr_add (w, ctx, index, e);
   w->stop = w->ordered;
   return true;
}

/* The first '$'-prefixed key anywhere inside the document at `it`, or NULL. */
static const char *
dollar_key (const bson_iter_t *it)
{
   bson_iter_t child;
   if (!bson_iter_recurse (it, &child)) {
      return NULL;
   }
   while (bson_iter_next (&child)) {
      const char *found = bson_iter_key (&child)[0] == '$' ? bson_iter_key (&child) : NULL;
      if (!found && (BSON_ITER_HOLDS_DOCUMENT (&child) || BSON_ITER_HOLDS_ARRAY (&child))) {
         found = dollar_key (&child);
      }
      if (found) {
         return found;
      }
   }
   return NULL;
}

/* Whether doc's first field is its one _id: then it is stored as it is
 * (what drivers send: they give a document its _id, first, before the
 * insert -- and so does src/exec for the rows it numbers). */
static bool
id_leads (const bson_t *doc)
{
   /* the keys only, read from the bytes (dj_bson_walk.h): an insert of many
    * rows asks this of each one; a malformed document answers false and
    * takes the copying path, whose iterator reports it as before */
   dj_bwalk_t w;
   if (!dj_bwalk_init (&w, bson_get_data (doc), doc->len) || !dj_bwalk_next (&w) || w.key_len != 3 ||
       memcmp (w.key, "_id", 3)) {
      return false;
   }
   while (dj_bwalk_next (&w)) {
      if (w.key_len == 3 && !memcmp (w.key, "_id", 3)) {
         return false; /* a second one: the copy below keeps the first */
      }
   }
   return !w.bad;
}

/* doc with _id first, generating an ObjectId if missing, into out: a copy,
 * or -- `borrow`, and doc's _id leads already -- doc's own bytes (then out
 * is valid while doc is). bson_destroy(out) either way.
 * https://www.mongodb.com/docs/manual/core/document/#the-_id-field */
static bool
with_id_first (const bson_t *doc, bool borrow, bson_t *out, bson_error_t *error)
{
   bson_iter_t it;

   bool leads = borrow && id_leads (doc);
   bson_init (out);
   if (bson_iter_init_find (&it, doc, "_id")) {
      bson_type_t t = bson_iter_type (&it);
      const char *dollar;
      if (t == BSON_TYPE_ARRAY || t == BSON_TYPE_REGEX || t == BSON_TYPE_UNDEFINED) {
         bson_destroy (out);
         return dj_err (error, DJ_BadValue, "The '_id' value cannot be of type %s", dj_type_name (t));
      }
      if (t == BSON_TYPE_DOCUMENT && (dollar = dollar_key (&it))) {
         /* https://www.mongodb.com/docs/manual/core/dot-dollar-considerations/ */
         bson_destroy (out);
         return dj_err (error, DJ_InvalidIdField,
                        "_id fields may not contain '$'-prefixed fields: %s is not valid for storage.", dollar);
      }
      if (leads) {
         bson_destroy (out);
         if (!bson_init_static (out, bson_get_data (doc), doc->len)) {
            return dj_err (error, DJ_InternalError, "a document to insert could not be read");
         }
         return true;
      }
      bson_append_value (out, "_id", 3, bson_iter_value (&it));
   } else {
      bson_oid_t oid;
      bson_oid_init (&oid, NULL);
      BSON_APPEND_OID (out, "_id", &oid);
   }
   bson_iter_init (&it, doc);
   while (bson_iter_next (&it)) {
      if (strcmp (bson_iter_key (&it), "_id")) {
         bson_append_value (out, bson_iter_key (&it), -1, bson_iter_value (&it));
      }
   }
   return true;
}

static bool
parse_ordered (const bson_t *cmd, bool *ordered, bool *bypass, bson_error_t *error)
{
   *ordered = true;
   *bypass = false;
   return dj_cmd_get_bool (cmd, "ordered", ordered, error) &&
          dj_cmd_get_bool (cmd, "bypassDocumentValidation", bypass, error);
}

static bool
get_array (const bson_t *cmd, const char *cmdname, const char *field, bson_iter_t *out, bson_error_t *error)
{
   bson_iter_t it;
   if (!bson_iter_init_find (&it, cmd, field)) {
      return dj_err (error, 40414, "BSON field '%s.%s' is missing but a required field", cmdname, field);
   }
   if (!BSON_ITER_HOLDS_ARRAY (&it)) {
      return dj_err (error, DJ_TypeMismatch, "BSON field '%s.%s' is the wrong type '%s', expected type 'array'", cmdname,
                     field, dj_type_name (bson_iter_type (&it)));
   }
   bson_iter_recurse (&it, out);
   return true;
}


/* ---- the statement loop of insert, update and delete --------------------- */

/* A write command across its statements. Everything here is owned by the
 * command and released by write_cmd_cleanup(). */
typedef struct write_cmd {
   dj_ctx_t ctx;
   const char *db, *name;
   dj_coll_t *c; /* insert: loaded up front; update: at its first statement; delete: NULL if missing */
   dj_let_t let;
   bool bypass;
   werrs_t w;
   int64_t n, nmod;   /* matched (or inserted, deleted) and modified documents */
   bson_t upserted;   /* update: [{index, _id}] */
   int nups;
   dj_refs_t *refs;   /* insert: djongoReferences (references.c), NULL: none */
} write_cmd_t;

/* One statement, the element at `it` (its type not checked yet): false with
 * the statement's error in *serr. */
typedef bool (*stmt_fn) (write_cmd_t *wc, const bson_iter_t *it, int index, bson_error_t *serr);

static void
write_cmd_init (write_cmd_t *wc, const char *db)
{
   memset (wc, 0, sizeof *wc);
   wc->db = db;
   bson_init (&wc->w.arr);
   bson_init (&wc->upserted);
}

static void
write_cmd_cleanup (write_cmd_t *wc)
{
   dj_txn_abort (&wc->ctx);
   bson_destroy (&wc->w.arr);
   bson_destroy (&wc->upserted);
   dj_coll_checkin_written (wc->ctx.engine, wc->c); /* (freed unless checked out) */
   dj_let_destroy (&wc->let);
   dj_refs_free (wc->refs);
}

/* Runs fn over the statements, in the command's one transaction, and
 * commits. False (nothing committed) for a storage error, or an insert's
 * broken djongoReferences. */
static bool
write_cmd_run (write_cmd_t *wc, bson_iter_t *stmts, bool ordered, stmt_fn fn, bson_error_t *error)
{
   wc->w.ordered = ordered;
   for (int index = 0; bson_iter_next (stmts); index++) {
      bson_error_t serr = {0};
      if (fn (wc, stmts, index, &serr)) {
         continue;
      }
      if (!stmt_failed (&wc->w, &wc->ctx, index, &serr, error)) {
         return false;
      }
      if (wc->w.stop) {
         break;
      }
   }
   if (wc->refs && !dj_refs_check (wc->refs, &wc->ctx, wc->db, wc->name, error)) {
      return false;
   }
   return dj_txn_commit (&wc->ctx, error);
}


/* One document of an insert. */
static bool
insert_stmt (write_cmd_t *wc, const bson_iter_t *it, int index, bson_error_t *serr)
{
   bson_t raw, doc;
   const uint8_t *d;
   uint32_t l;

   if (!BSON_ITER_HOLDS_DOCUMENT (it)) {
      return dj_err (serr, DJ_TypeMismatch, "BSON field 'insert.documents.%d' is the wrong type '%s', expected type 'object'",
                     index, dj_type_name (bson_iter_type (it)));
   }
   bson_iter_document (it, &l, &d);
   bson_init_static (&raw, d, l);
   if (!with_id_first (&raw, true, &doc, serr)) {
      return false;
   }
   bool ok = (wc->bypass || dj_coll_validate (&wc->ctx, wc->c, &doc, NULL, serr)) && dj_record_insert (&wc->ctx, wc->c, &doc, NULL, serr) &&
             (!wc->c->capped || dj_coll_trim_capped (&wc->ctx, wc->c, serr));
   if (ok) {
      dj_refs_note (wc->refs, &doc);
   }
   bson_destroy (&doc);
   wc->n += ok;
   return ok;
}


/* ---- the scans of update and delete ---------------------------------------- */

/* What an update's or a delete's scan callback writes with, and what it
 * reports: a dj_scan_fn cannot return an error, so the first one waits in
 * err until the scan is over. */
typedef struct {
   dj_ctx_t *ctx;
   dj_coll_t *c;
   int64_t n; /* documents matched (and written) */
   bson_error_t err;
   bool failed;
} wscan_t;

/* In a scan callback: w->err is set; stops the scan. */
static bool
wscan_stop (wscan_t *w)
{
   w->failed = true;
   return false;
}

/* Runs fn (its ctx: arg, which starts with w) over w->c's documents that m
 * matches, at most max (0: all); a callback's error becomes *error. */
static bool
wscan_run (wscan_t *w, const dj_matcher_t *m, const dj_eval_t *vars, int64_t max, dj_scan_fn fn, void *arg,
           bson_error_t *error)
{
   if (!dj_plan_scan_vars (w->ctx, w->c, m, vars, true, max, fn, arg, error)) {
      return false;
   }
   if (w->failed) {
      *error = w->err;
      return false;
   }
   return true;
}

/* ---- update ------------------------------------------------------------- */

typedef struct {
   wscan_t w; /* first: the scan's state */
   const dj_update_t *u;
   const dj_eval_t *vars; /* the command's let values */
   bool bypass;
   int64_t modified;
} upd_t;

static bool
update_fn (uint64_t rid, const bson_t *doc, int32_t pos, void *ctx)
{
   upd_t *s = ctx;
   bson_t out;
   bool changed;

   if (!dj_update_apply (s->u, doc, pos, false, s->vars, &out, &changed, &s->w.err)) {
      return wscan_stop (&s->w);
   }
   if (changed) {
      bson_t *old = bson_copy (doc); /* doc lives in LMDB's map; our write may move it */
      s->w.ctx->replacement = dj_update_is_replacement (s->u); /* a "replace" change event */
      bool ok = (s->bypass || dj_coll_validate (s->w.ctx, s->w.c, &out, old, &s->w.err)) &&
                dj_record_update (s->w.ctx, s->w.c, rid, old, &out, &s->w.err);
      bson_destroy (old);
      if (!ok) {
         bson_destroy (&out);
         return wscan_stop (&s->w);
      }
      s->modified++;
   }
   s->w.n++;
   bson_destroy (&out);
   return true;
}

/* A multi-document update's change to one document (dj_update_doc_fn):
 * the update applied, the result validated. No positional `$` (pos -1). */
static bool
update_doc_fn (const bson_t *doc, bson_t *out, bool *changed, void *ud, bson_error_t *error)
{
   upd_t *s = ud;
   if (!dj_update_apply (s->u, doc, -1, false, s->vars, out, changed, error)) {
      return false;
   }
   if (*changed && !s->bypass && !dj_coll_validate (s->w.ctx, s->w.c, out, doc, error)) {
      bson_destroy (out);
      return false;
   }
   return true;
}

/* A multi-document update without a positional `$`: the matches' record
 * ids first (from the index alone when it answers the filter), then the
 * documents updated together (storage/write_many.c). *failed: an error
 * came after the matching, so the documents before it stay updated. */
static bool
update_many (upd_t *s, const dj_matcher_t *m, const dj_eval_t *vars, bool *failed, bson_error_t *error)
{
   uint64_t *rids = NULL;
   size_t n = 0;
   bool ok = dj_plan_match_rids (s->w.ctx, s->w.c, m, vars, 0, &rids, &n, error);
   if (ok && !dj_record_update_many (s->w.ctx, s->w.c, rids, n, update_doc_fn, s, &s->w.n, &s->modified, error)) {
      ok = false;
      *failed = true;
   }
   bson_free (rids);
   return ok;
}

/* An update statement's sort (MongoDB 8.0, updateOne and replaceOne): of
 * the documents the filter matches, the first in sort order is the one
 * updated. https://www.mongodb.com/docs/manual/reference/command/update/ */
static bool
sorted_update (upd_t *s, const dj_matcher_t *m, const dj_eval_t *vars, const dj_sort_t *sort, bson_error_t *error)
{
   dj_matches_t f = {.error = error};
   bool ok = wscan_run (&s->w, m, vars, 0, dj_matches_add, &f, error) && !f.failed;
   if (ok && f.n) {
      size_t best = 0;
      for (size_t i = 1; i < f.n; i++) {
         if (dj_sort_cmp (sort, f.docs[i], f.docs[best]) < 0) {
            best = i;
         }
      }
      if (!update_fn (f.rids[best], f.docs[best], f.poss[best], s)) {
         *error = s->w.err;
         ok = false;
      }
   }
   dj_matches_cleanup (&f);
   return ok;
}

/* Builds and inserts the document an upsert creates. *id receives its _id
 * (caller destroys). */
static bool
do_upsert (dj_ctx_t *ctx, dj_coll_t *c, const bson_t *query, const dj_update_t *u, const dj_eval_t *vars, bool bypass,
           bson_value_t *id, bson_t **inserted, bson_error_t *error)
{
   dj_node_t *seed = dj_node_new_container (BSON_TYPE_DOCUMENT, NULL);
   bson_t seed_doc = BSON_INITIALIZER, applied, final;
   bool changed, ok = false;

   if (!dj_matcher_upsert_seed (query, seed, error)) {
      goto done;
   }
   if (dj_update_is_replacement (u)) {
      /* a replacement keeps only the query's _id */
      dj_node_t *qid = dj_node_child (seed, "_id", NULL);
      if (qid) {
         dj_node_append (&seed_doc, "_id", 3, qid);
      }
   } else {
      dj_node_to_bson (seed, &seed_doc);
   }
   if (!dj_update_apply (u, &seed_doc, -1, true, vars, &applied, &changed, error)) {
      goto done;
   }
   ok = with_id_first (&applied, false, &final, error);
   bson_destroy (&applied);
   if (!ok) {
      goto done;
   }
   ok = (bypass || dj_coll_validate (ctx, c, &final, NULL, error)) && dj_record_insert (ctx, c, &final, NULL, error);
   if (ok) {
      bson_iter_t it;
      bson_iter_init_find (&it, &final, "_id");
      bson_value_copy (bson_iter_value (&it), id);
      if (inserted) {
         *inserted = bson_copy (&final);
      }
   }
   bson_destroy (&final);
done:
   bson_destroy (&seed_doc);
   dj_node_free (seed);
   return ok;
}

static bool
get_stmt_doc (const bson_t *stmt, const char *field, bool required, bson_t *out, bson_error_t *error)
{
   bson_iter_t it;
   const uint8_t *d;
   uint32_t l;
   if (!bson_iter_init_find (&it, stmt, field)) {
      if (required) {
         return dj_err (error, 40414, "BSON field '%s' is missing but a required field", field);
      }
      bson_init (out);
      return true;
   }
   if (!BSON_ITER_HOLDS_DOCUMENT (&it)) {
      return dj_err (error, DJ_TypeMismatch, "BSON field '%s' is the wrong type '%s', expected type 'object'", field,
                     dj_type_name (bson_iter_type (&it)));
   }
   bson_iter_document (&it, &l, &d);
   bson_init_static (out, d, l);
   return true;
}


/* One update statement: {q, u, upsert, multi, arrayFilters, ...}. Returns
 * false with *error on failure. */
static bool
run_update_stmt (dj_ctx_t *ctx, dj_coll_t *c, const dj_let_t *let, const bson_t *stmt, int index, bool bypass, int64_t *n,
                 int64_t *nmod,
                 bson_t *upserted, int *nups, bson_error_t *error)
{
   bson_t q, af_doc, sort_spec;
   bson_iter_t it;
   bool upsert = false, multi = false, has_af = false;
   dj_matcher_t *m = NULL;
   dj_update_t *u = NULL;
   dj_sort_t *sort = NULL;
   bool ok = false;

   if (!get_stmt_doc (stmt, "q", true, &q, error) || !dj_cmd_collation (stmt, error)) {
      return false;
   }
   if (!bson_iter_init_find (&it, stmt, "u")) {
      return dj_err (error, 40414, "BSON field 'update.updates.u' is missing but a required field");
   }
   bson_value_t uspec_v = *bson_iter_value (&it);
   const bson_value_t *uspec = &uspec_v;
   if (bson_iter_init_find (&it, stmt, "upsert")) {
      upsert = bson_iter_as_bool (&it);
   }
   if (bson_iter_init_find (&it, stmt, "multi")) {
      multi = bson_iter_as_bool (&it);
   }
   if (!dj_cmd_get_array (stmt, "arrayFilters", "update.updates.arrayFilters", &af_doc, &has_af, error) ||
       !get_stmt_doc (stmt, "sort", false, &sort_spec, error)) {
      return false;
   }
   if (!bson_empty (&sort_spec)) {
      if (multi) {
         return dj_err (error, DJ_FailedToParse, "Cannot specify sort with multi=true");
      }
      if (!(sort = dj_sort_new (&sort_spec, error))) {
         return false;
      }
   }
   if (!(m = dj_matcher_new_scoped (&q, let->top, error)) ||
       !(u = dj_update_new (uspec, has_af ? &af_doc : NULL, let->top, error))) {
      goto done;
   }
   if (multi && dj_update_is_replacement (u)) {
      dj_err (error, DJ_FailedToParse, "multi update is not supported for replacement-style update");
      goto done;
   }
   upd_t s = {.w = {.ctx = ctx, .c = c}, .u = u, .vars = &let->vars, .bypass = bypass};
   bool scanned = sort                                 ? sorted_update (&s, m, &let->vars, sort, error)
                  : multi && !dj_update_positional (u) ? update_many (&s, m, &let->vars, &s.w.failed, error)
                                                       : wscan_run (&s.w, m, &let->vars, multi ? 0 : 1, update_fn, &s, error);
   if (scanned || s.w.failed) {
      *n += s.w.n; /* the documents before a failing one stay updated */
      *nmod += s.modified;
   }
   if (!scanned) {
      goto done;
   }
   if (s.w.n == 0 && upsert) {
      bson_value_t id;
      if (!do_upsert (ctx, c, &q, u, &let->vars, bypass, &id, NULL, error)) {
         goto done;
      }
      char buf[16];
      const char *key;
      bson_t one;
      bson_uint32_to_string ((uint32_t) (*nups)++, &key, buf, sizeof buf);
      bson_append_document_begin (upserted, key, -1, &one);
      BSON_APPEND_INT32 (&one, "index", index);
      BSON_APPEND_VALUE (&one, "_id", &id);
      bson_append_document_end (upserted, &one);
      bson_value_destroy (&id);
      (*n)++;
   }
   ok = true;
done:
   dj_matcher_destroy (m);
   dj_update_destroy (u);
   dj_sort_destroy (sort);
   return ok;
}

/* One statement of an update; updates create the collection, as in MongoDB. */
static bool
update_stmt (write_cmd_t *wc, const bson_iter_t *it, int index, bson_error_t *serr)
{
   bson_t stmt;
   const uint8_t *d;
   uint32_t l;

   if (!BSON_ITER_HOLDS_DOCUMENT (it)) {
      return dj_err (serr, DJ_TypeMismatch, "BSON field 'update.updates' is the wrong type, expected type 'object'");
   }
   bson_iter_document (it, &l, &d);
   bson_init_static (&stmt, d, l);
   if (!wc->c && !(wc->c = dj_coll_load_or_create (&wc->ctx, wc->db, wc->name, NULL, serr))) {
      return false;
   }
   return run_update_stmt (&wc->ctx, wc->c, &wc->let, &stmt, index, wc->bypass, &wc->n, &wc->nmod, &wc->upserted, &wc->nups,
                           serr);
}


/* ---- delete ------------------------------------------------------------- */

/* One statement of a delete: {q, limit, collation, hint}. */
static bool
delete_stmt (write_cmd_t *wc, const bson_iter_t *it, int index, bson_error_t *serr)
{
   bson_t stmt, q;
   bson_iter_t li;
   const uint8_t *d;
   uint32_t l;
   int64_t limit;
   dj_matcher_t *m = NULL;
   bool ok = false;

   (void) index;
   if (!BSON_ITER_HOLDS_DOCUMENT (it)) {
      return dj_err (serr, DJ_TypeMismatch, "BSON field 'delete.deletes' is the wrong type, expected type 'object'");
   }
   bson_iter_document (it, &l, &d);
   bson_init_static (&stmt, d, l);
   if (!bson_iter_init_find (&li, &stmt, "limit")) {
      return dj_err (serr, 40414, "BSON field 'delete.deletes.limit' is missing but a required field");
   }
   if ((limit = bson_iter_as_int64 (&li)) != 0 && limit != 1) {
      return dj_err (serr, DJ_FailedToParse, "The limit field in delete objects must be 0 or 1. Got %" PRId64, limit);
   }
   if (get_stmt_doc (&stmt, "q", true, &q, serr) && dj_cmd_collation (&stmt, serr) &&
       (m = dj_matcher_new_scoped (&q, wc->let.top, serr))) {
      /* the matches first, then deleted together: storage/write_many.c */
      uint64_t *rids = NULL;
      size_t n = 0;
      ok = !wc->c || (dj_plan_match_rids (&wc->ctx, wc->c, m, &wc->let.vars, limit, &rids, &n, serr) &&
                      dj_record_delete_many (&wc->ctx, wc->c, rids, n, &wc->n, serr));
      bson_free (rids);
   }
   dj_matcher_destroy (m);
   return ok;
}


/* ---- the three commands --------------------------------------------------- */

/* How insert, update and delete differ: one row each. */
typedef struct {
   const char *name, *field; /* the command and its array of statements */
   const char *const *known;
   const char *const *stmt_known; /* a statement's fields (NULL: documents, not statements) */
   bool let;                 /* takes `let` (read first, as MongoDB does) */
   enum { COLL_CREATE, COLL_AT_FIRST_STATEMENT, COLL_IF_EXISTS } coll;
   bool modified;            /* reports nModified and upserted */
   stmt_fn stmt;
} write_kind_t;

/* djongoReferences: djongo's own (references.c) */
static const char *const insert_known[] = {"documents", "ordered", "bypassDocumentValidation", "djongoReferences", NULL};
static const char *const update_known[] = {"updates", "ordered", "bypassDocumentValidation", "let", NULL};
static const char *const delete_known[] = {"deletes", "ordered", "let", NULL};
/* https://www.mongodb.com/docs/manual/reference/command/insert/
 * https://www.mongodb.com/docs/manual/reference/command/update/
 * https://www.mongodb.com/docs/manual/reference/command/delete/ */
/* "sort": MongoDB 8.0's, whose behaviour we follow */
static const char *const update_stmt_known[] = {"q", "u", "upsert", "multi", "arrayFilters", "hint", "collation", "c",
                                                "sort", NULL};
static const write_kind_t insert_kind = {"insert", "documents", insert_known, NULL, false, COLL_CREATE, false,
                                         insert_stmt};
static const write_kind_t update_kind = {"update", "updates", update_known, update_stmt_known, true,
                                         COLL_AT_FIRST_STATEMENT, true, update_stmt};
static const write_kind_t delete_kind = {"delete", "deletes", delete_known, NULL, true, COLL_IF_EXISTS, false,
                                         delete_stmt};

/* An update pipeline's stages are parsed with the command, as mongod
 * parses them: a stage that is not a shaping stage fails the whole command
 * (the command-logging spec's operation-id.json), not one statement. */
static bool
check_update_pipeline (const bson_iter_t *u, bson_error_t *error)
{
   bson_iter_t it;
   int i = 0;
   bson_iter_recurse (u, &it);
   while (bson_iter_next (&it)) {
      const char *name = NULL;
      bson_value_t v;
      bson_iter_t st;
      if (!BSON_ITER_HOLDS_DOCUMENT (&it) || !bson_iter_recurse (&it, &st) || !bson_iter_next (&st)) {
         return dj_err (error, DJ_InvalidOptions, "Invalid update pipeline: stage %d is not a stage", i);
      }
      if (!dj_stage_split (&it, &name, &v, error)) {
         return false;
      }
      if (!dj_reshape_is_stage (name)) {
         return dj_err (error, DJ_InvalidOptions,
                        "Invalid update pipeline: stage %d is not one of $addFields, $set, $project, $unset, "
                        "$replaceRoot or $replaceWith", i);
      }
      i++;
   }
   return true;
}

/* Every statement's fields, before any statement runs: mongod parses the
 * whole command first, so an unknown field fails the command (ok: 0,
 * 40415) rather than becoming one statement's writeError. */
static bool
check_statements (const write_kind_t *k, const bson_iter_t *stmts, bson_error_t *error)
{
   bson_iter_t it = *stmts, f;
   while (k->stmt_known && bson_iter_next (&it)) {
      if (!BSON_ITER_HOLDS_DOCUMENT (&it) || !bson_iter_recurse (&it, &f)) {
         continue; /* the statement's own check says what is wrong */
      }
      while (bson_iter_next (&f)) {
         bool found = false;
         for (int i = 0; k->stmt_known[i] && !found; i++) {
            found = !strcmp (k->stmt_known[i], bson_iter_key (&f));
         }
         if (!found) {
            return dj_err (error, DJ_UnknownField, "BSON field '%s.%s.%s' is an unknown field.", k->name, k->field,
                           bson_iter_key (&f));
         }
         if (!strcmp (bson_iter_key (&f), "u") && BSON_ITER_HOLDS_ARRAY (&f) && !check_update_pipeline (&f, error)) {
            return false;
         }
      }
   }
   return true;
}

/* The target collection, as the command needs it before its statements
 * (update_stmt creates it at the first statement). */
static bool
load_target (write_cmd_t *wc, const write_kind_t *k, bson_error_t *error)
{
   switch (k->coll) {
   case COLL_CREATE:
      /* the handle an earlier command built from the same catalog entry
       * (a create per row: the entry is not parsed again each time) */
      if (!(wc->c = dj_coll_checkout (&wc->ctx, wc->db, wc->name, error)) && !error->code) {
         wc->c = dj_coll_load_or_create (&wc->ctx, wc->db, wc->name, NULL, error);
      }
      return wc->c != NULL;
   case COLL_IF_EXISTS: wc->c = dj_coll_load (&wc->ctx, wc->db, wc->name, error); return !error->code; /* missing: nothing to delete */
   case COLL_AT_FIRST_STATEMENT: return true;
   }
   return true;
}

static bool
write_command (const write_kind_t *k, dj_engine_t *e, const char *db, const bson_t *cmd, bson_t *reply, bson_error_t *error)
{
   write_cmd_t wc;
   bson_iter_t stmts;
   bool ordered, ok = false;

   write_cmd_init (&wc, db);
   if ((!k->let || dj_let_parse (cmd, &wc.let, error)) && dj_cmd_target (cmd, db, k->known, &wc.name, error) &&
       get_array (cmd, k->name, k->field, &stmts, error) && check_statements (k, &stmts, error) &&
       parse_ordered (cmd, &ordered, &wc.bypass, error) &&
       (k != &insert_kind || dj_refs_parse (cmd, db, &wc.refs, error)) && dj_txn_begin (e, true, &wc.ctx, error) && load_target (&wc, k, error) &&
       write_cmd_run (&wc, &stmts, ordered, k->stmt, error)) {
      BSON_APPEND_INT32 (reply, "n", (int32_t) wc.n);
      if (k->modified) {
         BSON_APPEND_INT32 (reply, "nModified", (int32_t) wc.nmod);
         if (wc.nups) {
            BSON_APPEND_ARRAY (reply, "upserted", &wc.upserted);
         }
      }
      if (wc.w.n) {
         BSON_APPEND_ARRAY (reply, "writeErrors", &wc.w.arr);
      }
      dj_refs_reply (wc.refs, reply);
      BSON_APPEND_DOUBLE (reply, "ok", 1.0);
      ok = true;
   }
   write_cmd_cleanup (&wc);
   return ok;
}

bool
dj_cmd_insert (dj_engine_t *e, const char *db, const bson_t *cmd, bson_t *reply, bson_error_t *error)
{
   return write_command (&insert_kind, e, db, cmd, reply, error);
}

bool
dj_cmd_update (dj_engine_t *e, const char *db, const bson_t *cmd, bson_t *reply, bson_error_t *error)
{
   return write_command (&update_kind, e, db, cmd, reply, error);
}

bool
dj_cmd_delete (dj_engine_t *e, const char *db, const bson_t *cmd, bson_t *reply, bson_error_t *error)
{
   return write_command (&delete_kind, e, db, cmd, reply, error);
}

/* ---- findAndModify ----------------------------------------------------------- */

static bool
project_into (bson_t *reply, const char *key, const bson_t *doc, dj_projection_t *proj, bson_error_t *error)
{
   if (!doc) {
      BSON_APPEND_NULL (reply, key);
      return true;
   }
   if (!proj) {
      BSON_APPEND_DOCUMENT (reply, key, doc);
      return true;
   }
   bson_t out;
   if (!dj_projection_apply (proj, doc, -1, &out, error)) {
      return false;
   }
   BSON_APPEND_DOCUMENT (reply, key, &out);
   bson_destroy (&out);
   return true;
}

/* findAndModify: https://www.mongodb.com/docs/manual/reference/command/findAndModify/ */
bool
dj_cmd_find_and_modify (dj_engine_t *e, const char *db, const bson_t *cmd, bson_t *reply, bson_error_t *error)
{
   static const char *const known[] = {"query", "sort", "remove", "update", "new", "fields", "upsert",
                                       "bypassDocumentValidation", "arrayFilters", "hint", "collation", "let", NULL};
   const char *name;
   bson_t query, sort_spec, fields, af;
   bson_iter_t it;
   bool has_q, has_sort, has_fields, remove = false, want_new = false, upsert = false, bypass = false, ok = false;
   bool has_af = false;
   const bson_value_t *uspec = NULL;
   dj_find_spec_t fs = {0};
   dj_update_t *u = NULL;
   dj_coll_t *c = NULL;
   dj_ctx_t ctx = {0};
   dj_matches_t f = {0};
   bson_t *before = NULL, *after = NULL;
   bson_t with_max;
   bool has_max;

   if (!dj_maxof_rewrite (e, db, cmd, &with_max, &has_max, error)) {
      return false;
   }
   if (has_max) { /* djongo's djongoMax (maxof.c): the command again, the variable in its let */
      ok = dj_cmd_find_and_modify (e, db, &with_max, reply, error);
      bson_destroy (&with_max);
      return ok;
   }
   if (!dj_cmd_target (cmd, db, known, &name, error) || !dj_cmd_get_doc (cmd, "query", &query, &has_q, error) ||
       !dj_cmd_get_doc (cmd, "sort", &sort_spec, &has_sort, error) ||
       !dj_cmd_get_doc (cmd, "fields", &fields, &has_fields, error) || !dj_cmd_get_bool (cmd, "remove", &remove, error) ||
       !dj_cmd_get_bool (cmd, "new", &want_new, error) || !dj_cmd_get_bool (cmd, "upsert", &upsert, error) ||
       !dj_cmd_get_bool (cmd, "bypassDocumentValidation", &bypass, error) || !dj_cmd_collation (cmd, error)) {
      return false;
   }
   bson_value_t uspec_v;
   if (bson_iter_init_find (&it, cmd, "update")) {
      uspec_v = *bson_iter_value (&it);
      uspec = &uspec_v;
   }
   if (bson_iter_init_find (&it, cmd, "arrayFilters") && BSON_ITER_HOLDS_ARRAY (&it)) {
      const uint8_t *d;
      uint32_t l;
      bson_iter_array (&it, &l, &d);
      bson_init_static (&af, d, l);
      has_af = true;
   }
   if (remove && uspec) {
      return dj_err (error, DJ_FailedToParse, "Cannot specify both an update and remove=true");
   }
   if (!remove && !uspec) {
      return dj_err (error, DJ_FailedToParse, "Either an update or remove=true must be specified");
   }
   if (remove && want_new) {
      return dj_err (error, DJ_FailedToParse, "Cannot specify both new=true and remove=true; 'remove' always returns the deleted document");
   }
   if (remove && upsert) {
      return dj_err (error, DJ_FailedToParse, "Cannot specify both upsert=true and remove=true ");
   }
   if (!dj_find_spec_parse (cmd, &query, &sort_spec, &fields, &fs, error) ||
       (uspec && !(u = dj_update_new (uspec, has_af ? &af : NULL, fs.let.top, error)))) {
      goto done;
   }
   if (!dj_txn_begin (e, true, &ctx, error)) {
      goto done;
   }
   if (!(c = dj_coll_load_or_create (&ctx, db, name, NULL, error))) {
      goto done;
   }
   /* all matches when sorting (the first after the sort wins), else the first */
   if (!dj_plan_scan_vars (&ctx, c, fs.m, &fs.let.vars, false, fs.sort ? 0 : 1, dj_matches_add, &f, error)) {
      goto done;
   }
   if (fs.sort) {
      /* sort positions along with documents: sort indices via the docs */
      size_t best = 0;
      for (size_t i = 1; i < f.n; i++) {
         if (dj_sort_cmp (fs.sort, f.docs[i], f.docs[best]) < 0) {
            best = i;
         }
      }
      if (f.n) {
         bson_t *td = f.docs[0];
         uint64_t tr = f.rids[0];
         int32_t tp = f.poss[0];
         f.docs[0] = f.docs[best];
         f.rids[0] = f.rids[best];
         f.poss[0] = f.poss[best];
         f.docs[best] = td;
         f.rids[best] = tr;
         f.poss[best] = tp;
      }
   }
   bson_t leo;
   bson_value_t upserted_id = {.value_type = BSON_TYPE_EOD};
   if (f.n) {
      before = bson_copy (f.docs[0]);
      if (remove) {
         if (!dj_record_delete (&ctx, c, f.rids[0], before, error)) {
            goto done;
         }
      } else {
         bool changed;
         bson_t out;
         if (!dj_update_apply (u, before, f.poss[0], false, &fs.let.vars, &out, &changed, error)) {
            goto done;
         }
         ctx.replacement = dj_update_is_replacement (u);
         if (changed && (!(bypass || dj_coll_validate (&ctx, c, &out, before, error)) ||
                         !dj_record_update (&ctx, c, f.rids[0], before, &out, error))) {
            bson_destroy (&out);
            goto done;
         }
         after = bson_copy (&out);
         bson_destroy (&out);
      }
   } else if (upsert) {
      if (!do_upsert (&ctx, c, &query, u, &fs.let.vars, bypass, &upserted_id, &after, error)) {
         goto done;
      }
   }
   if (!dj_txn_commit (&ctx, error)) {
      if (upserted_id.value_type != BSON_TYPE_EOD) {
         bson_value_destroy (&upserted_id);
      }
      goto done;
   }
   BSON_APPEND_DOCUMENT_BEGIN (reply, "lastErrorObject", &leo);
   BSON_APPEND_INT32 (&leo, "n", (f.n || upserted_id.value_type != BSON_TYPE_EOD) ? 1 : 0);
   if (!remove) {
      BSON_APPEND_BOOL (&leo, "updatedExisting", f.n > 0);
   }
   if (upserted_id.value_type != BSON_TYPE_EOD) {
      BSON_APPEND_VALUE (&leo, "upserted", &upserted_id);
      bson_value_destroy (&upserted_id);
   }
   bson_append_document_end (reply, &leo);
   if (!project_into (reply, "value", remove ? before : (want_new ? after : before), fs.proj, error)) {
      goto done;
   }
   BSON_APPEND_DOUBLE (reply, "ok", 1.0);
   ok = true;
done:
   if (!ok) {
      dj_ctx_error_info (&ctx, error, reply); /* kept beside the error: engine.c */
   }
   dj_txn_abort (&ctx);
   dj_matches_cleanup (&f);
   bson_destroy (before);
   bson_destroy (after);
   dj_coll_free (c);
   dj_find_spec_destroy (&fs);
   dj_update_destroy (u);
   return ok;
}
