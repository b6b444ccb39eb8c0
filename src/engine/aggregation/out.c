/*
 * out.c -- $out and $merge: writing a pipeline's results into a
 * collection, in the pipeline's write transaction.
 *
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/out/
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/merge/
 */
#include "agg-private.h"

#include <stdlib.h>

bool
dj_agg_run_out (rctx_t *r, const stage_t *s, dj_docs_t *docs)
{
   const dj_prun_t *run = r->run;
   const char *db = s->str2 ? s->str2 : run->db;
   bson_error_t le = {0};
   if (!run->ctx->write) {
      return dj_err (r->error, DJ_InternalError, "$out needs a write transaction");
   }
   if (!dj_ns_valid (db, s->str, r->error)) {
      return false;
   }
   /* replace the target's documents, keeping its indexes and options */
   dj_coll_t *c = dj_coll_load (run->ctx, db, s->str, &le);
   if (!c && le.code) {
      *r->error = le;
      return false;
   }
   if (c && c->view_on) {
      dj_coll_free (c);
      return dj_err (r->error, DJ_CommandNotSupportedOnView, "Namespace %s.%s is a view, not a collection", db, s->str);
   }
   if (c) {
      if (c->capped) {
         dj_coll_free (c);
         return dj_err (r->error, 17152, "namespace '%s.%s' is capped so it can't be used for $out", db, s->str);
      }
      bson_t *opts = bson_copy (c->options);
      dj_index_t *keep = c->indexes;
      int nkeep = c->nindexes;
      /* drop and recreate, all inside this transaction: readers see the old
       * contents or the new, never a mix */
      bool ok = dj_coll_drop (run->ctx, c, r->error);
      dj_coll_t *nc = ok ? dj_coll_create (run->ctx, db, s->str, opts, r->error) : NULL;
      for (int i = 1; nc && i < nkeep; i++) {
         if (!dj_coll_add_index (run->ctx, nc, keep[i].spec, r->error)) {
            dj_coll_free (nc);
            nc = NULL;
         }
      }
      bson_destroy (opts);
      dj_coll_free (c);
      c = nc;
      if (!c) {
         return false;
      }
   } else {
      c = dj_coll_create (run->ctx, db, s->str, NULL, r->error);
      if (!c) {
         return false;
      }
   }
   bool ok = true;
   dj_docs_strip_meta (docs);
   for (size_t i = 0; ok && i < docs->n; i++) {
      ok = dj_record_insert (run->ctx, c, docs->v[i], NULL, r->error);
   }
   dj_coll_free (c);
   dj_docs_clear (docs); /* $out returns no documents */
   return ok;
}

/* The first match: its record id and a copy of it (the scan stops there). */
typedef struct {
   uint64_t rid;
   bson_t *doc; /* owned copy, NULL when nothing matched */
} first_t;

/* A DuplicateKey's details for a $merge that found its document
 * (whenMatched: fail): {keyPattern, keyValue} of the 'on' fields (_id by
 * default), kept in ctx->error_info for the reply. */
static void
merge_key_info (const stage_t *s, const bson_t *d, dj_ctx_t *ctx)
{
   bson_t *info = bson_new (), pat, val;
   bson_iter_t it;
   BSON_APPEND_DOCUMENT_BEGIN (info, "keyPattern", &pat);
   for (int k = 0; k < (s->non ? s->non : 1); k++) {
      BSON_APPEND_INT32 (&pat, s->non ? s->on[k] : "_id", 1);
   }
   bson_append_document_end (info, &pat);
   BSON_APPEND_DOCUMENT_BEGIN (info, "keyValue", &val);
   for (int k = 0; k < (s->non ? s->non : 1); k++) {
      const char *f = s->non ? s->on[k] : "_id";
      if (bson_iter_init (&it, d) && bson_iter_find_descendant (&it, f, &it)) {
         BSON_APPEND_VALUE (&val, f, bson_iter_value (&it));
      }
   }
   bson_append_document_end (info, &val);
   bson_destroy (ctx->error_info);
   ctx->error_info = info;
}

static bool
first_fn (uint64_t rid, const bson_t *doc, int32_t pos, void *ctx)
{
   first_t *f = ctx;
   (void) pos;
   f->rid = rid;
   f->doc = bson_copy (doc);
   return false;
}

bool
dj_agg_run_merge (rctx_t *r, const stage_t *s, dj_docs_t *docs)
{
   const dj_prun_t *run = r->run;
   const char *db = s->str2 ? s->str2 : run->db;
   bool ok = true;
   if (!run->ctx->write) {
      return dj_err (r->error, DJ_InternalError, "$merge needs a write transaction");
   }
   dj_coll_t *c = dj_coll_load_or_create (run->ctx, db, s->str, NULL, r->error);
   if (!c) {
      return false;
   }
   if (c->view_on) {
      dj_coll_free (c);
      return dj_err (r->error, DJ_CommandNotSupportedOnView, "Namespace %s.%s is a view, not a collection", db, s->str);
   }
   dj_docs_strip_meta (docs);
   for (size_t i = 0; ok && i < docs->n; i++) {
      bson_t *d = docs->v[i];
      bson_t q = BSON_INITIALIZER;
      bson_iter_t it;
      if (s->non == 0) {
         if (!bson_iter_init_find (&it, d, "_id")) {
            bson_t *withid = bson_new ();
            bson_oid_t oid;
            bson_oid_init (&oid, NULL);
            BSON_APPEND_OID (withid, "_id", &oid);
            bson_concat (withid, d);
            bson_destroy (d);
            docs->v[i] = d = withid;
            bson_iter_init_find (&it, d, "_id");
         }
         BSON_APPEND_VALUE (&q, "_id", bson_iter_value (&it));
      } else {
         for (int k = 0; k < s->non; k++) {
            if (!bson_iter_init (&it, d) || !bson_iter_find_descendant (&it, s->on[k], &it)) {
               bson_destroy (&q);
               dj_coll_free (c);
               return dj_err (r->error, 51132, "$merge write error: 'on' field '%s' cannot be missing, null, undefined or an array", s->on[k]);
            }
            BSON_APPEND_VALUE (&q, s->on[k], bson_iter_value (&it));
         }
      }
      dj_matcher_t *m = dj_matcher_new (&q, r->error);
      bson_destroy (&q);
      if (!m) {
         ok = false;
         break;
      }
      first_t found = {0};
      ok = dj_plan_scan (run->ctx, c, m, false, 1, first_fn, &found, r->error);
      dj_matcher_destroy (m);
      if (!ok) {
         break;
      }
      if (!found.doc) {
         if (s->when_not_matched == 0) {
            ok = dj_record_insert (run->ctx, c, d, NULL, r->error);
         } else if (s->when_not_matched == 2) {
            ok = dj_err (r->error, 13113, "$merge could not find a matching document in the target collection for at least one document in the source collection");
         }
      } else {
         bson_t *old = found.doc;
         bson_t *newdoc = NULL;
         if (s->when_matched == 3) {
            /* as the insert mongod makes would fail: the 'on' fields' key */
            ok = dj_err (r->error, DJ_DuplicateKey, "$merge with whenMatched: fail found an existing document with the same values for the 'on' fields");
            merge_key_info (s, d, run->ctx);
         } else if (s->when_matched == 2) {
            /* keep existing */
         } else if (s->when_matched == 1) {
            newdoc = bson_copy (d);
         } else if (s->when_matched == 0) {
            dj_node_t *t = dj_node_from_bson (old);
            bson_iter_init (&it, d);
            while (bson_iter_next (&it)) {
               dj_node_set_child (t, bson_iter_key (&it), dj_node_from_value (bson_iter_value (&it), bson_iter_key (&it)));
            }
            newdoc = bson_new ();
            dj_node_to_bson (t, newdoc);
            dj_node_free (t);
         } else {
            dj_docs_t one = {0};
            dj_docs_push (&one, bson_copy (old));
            dj_prun_t sub = *run;
            ok = dj_agg_run_stages (s->merge_pipeline, 0, &sub, &one, r->error);
            if (ok && one.n) {
               newdoc = one.v[0];
               one.v[0] = bson_new ();
            }
            dj_docs_clear (&one);
         }
         if (ok && newdoc) {
            /* the new document keeps the old _id */
            bson_iter_t oi, ni;
            bson_iter_init_find (&oi, old, "_id");
            if (!bson_iter_init_find (&ni, newdoc, "_id")) {
               bson_t *w = bson_new ();
               BSON_APPEND_VALUE (w, "_id", bson_iter_value (&oi));
               bson_concat (w, newdoc);
               bson_destroy (newdoc);
               newdoc = w;
            }
            run->ctx->replacement = s->when_matched == 1; /* whenMatched: "replace" is a replace event */
            ok = dj_record_update (run->ctx, c, found.rid, old, newdoc, r->error);
         }
         bson_destroy (newdoc);
         bson_destroy (found.doc);
      }
   }
   dj_coll_free (c);
   dj_docs_clear (docs);
   return ok;
}

