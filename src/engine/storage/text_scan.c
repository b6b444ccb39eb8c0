/*
 * text_scan.c -- text indexes: their keys, and $text answered through one.
 *
 * https://www.mongodb.com/docs/manual/core/indexes/index-types/index-text/
 * A document's keys in a text index are, for each distinct term its
 * strings give (text/spec.c), [prefix values][term][score][suffix values]
 * -- MongoDB's {prefix..., _fts: term, _ftsx: score, suffix...}. A
 * document without indexed text has none (text indexes are sparse).
 *
 * $text needs the collection's text index (error 27 without one:
 * https://www.mongodb.com/docs/manual/reference/operator/query/text/#restrictions)
 * and, when it is compound, an equality on every prefix field
 * (https://www.mongodb.com/docs/manual/core/indexes/index-types/index-text/text-index-restrictions/).
 * Each positive term of the search is looked up; each document found once
 * is then checked against the whole filter and the rest of the $text query
 * (negations, phrases, case and diacritic sensitivity: text/search.c) and
 * handed on with its score, under DJ_META_TEXT_SCORE, for $meta
 * "textScore" to read.
 */
#include "storage-private.h"

#include <stdlib.h>

/* The one value doc has at ix's path i: null when missing; false (16675) for
 * an array, which a text index's prefix and suffix fields cannot hold. */
static bool
field_value (const dj_index_t *ix, int i, const bson_t *doc, bson_value_t *out, bson_error_t *error)
{
   bson_value_t dv;
   dj_vlist_t vals = {0};
   dj_value_from_doc (doc, false, &dv);
   dj_path_visit (&dv, &ix->paths[i], 0, false, dj_vlist_push, &vals);
   out->value_type = BSON_TYPE_NULL;
   bool ok = true;
   if (vals.n > 1 || (vals.n == 1 && vals.v[0].value_type == BSON_TYPE_ARRAY)) {
      ok = dj_err (error, 16675, "cannot have a multi-key as a prefix to a text index");
   } else if (vals.n == 1) {
      *out = vals.v[0];
   }
   bson_free (vals.v);
   return ok;
}

typedef struct {
   const dj_index_t *ix;
   dj_buf_t prefix, suffix;
   dj_keyset_t *ks;
} keys_t;

static void
key_cb (const char *term, size_t len, double score, void *ud)
{
   keys_t *k = ud;
   dj_buf_t key;
   bson_value_t t = {.value_type = BSON_TYPE_UTF8}, s = {.value_type = BSON_TYPE_DOUBLE};
   t.value.v_utf8.str = (char *) term;
   t.value.v_utf8.len = (uint32_t) len;
   s.value.v_double = score;
   dj_buf_init (&key);
   dj_buf_append (&key, k->prefix.data, k->prefix.len);
   dj_key_append (&key, &t, false);
   dj_key_append (&key, &s, false);
   dj_buf_append (&key, k->suffix.data, k->suffix.len);
   k->ks->lossy |= key.len > DJ_KEY_MAX;
   dj_key_finish (&key, 0);
   k->ks->keys = bson_realloc (k->ks->keys, sizeof (dj_buf_t) * (size_t) (k->ks->n + 1));
   k->ks->rows = bson_realloc (k->ks->rows, sizeof (int) * (size_t) (k->ks->n + 1));
   k->ks->rows[k->ks->n] = 0;
   k->ks->keys[k->ks->n++] = key;
}

/* Appends the encoded values of ix's paths [from, to) in doc to b. */
static bool
append_fields (const dj_index_t *ix, int from, int to, const bson_t *doc, dj_buf_t *b, bson_error_t *error)
{
   for (int i = from; i < to; i++) {
      bson_value_t v;
      if (!field_value (ix, i, doc, &v, error)) {
         return false;
      }
      dj_key_append (b, &v, ix->desc[i]);
   }
   return true;
}

bool
dj_text_index_keys (const dj_index_t *ix, const bson_t *doc, dj_keyset_t *ks, bson_error_t *error)
{
   keys_t k = {.ix = ix, .ks = ks};
   dj_buf_init (&k.prefix);
   dj_buf_init (&k.suffix);
   ks->multikey = true; /* many terms per document */
   dj_text_tok_t *tok = dj_text_tok_new ();
   bool ok = append_fields (ix, 0, ix->text_pos, doc, &k.prefix, error) &&
             append_fields (ix, ix->text_pos + 2, ix->npaths, doc, &k.suffix, error) &&
             dj_text_doc_terms (ix->text, tok, doc, key_cb, &k, error);
   dj_text_tok_destroy (tok);
   dj_buf_cleanup (&k.prefix);
   dj_buf_cleanup (&k.suffix);
   if (!ok) {
      dj_keyset_cleanup (ks);
   }
   return ok;
}

/* A document an index entry found, with the score that entry holds. */
typedef struct {
   uint64_t rid;
   double score;
} hit_t;

typedef struct {
   hit_t *v; /* owned */
   size_t n, cap;
   bool unscored; /* some entry's score was cut off its key: read the documents */
} hits_t;

static int
cmp_hit (const void *a, const void *b)
{
   uint64_t x = ((const hit_t *) a)->rid, y = ((const hit_t *) b)->rid;
   return x < y ? -1 : x > y;
}

/* The entries of ix whose key starts with prefix + term, appended to h:
 * each one's record and the score after the term (MongoDB's _ftsx). */
static bool
term_rids (dj_ctx_t *ctx, const dj_index_t *ix, const dj_buf_t *prefix, const char *term, hits_t *h, bson_error_t *error)
{
   dj_buf_t p;
   dj_walk_t w;
   bson_value_t t = {.value_type = BSON_TYPE_UTF8};
   t.value.v_utf8.str = (char *) term;
   t.value.v_utf8.len = (uint32_t) strlen (term);
   dj_buf_init (&p);
   dj_buf_put_u64be (&p, ix->id);
   dj_buf_append (&p, prefix->data, prefix->len);
   dj_key_append (&p, &t, false);
   if (!dj_walk_open (&w, ctx, ctx->engine->dbi_data, p.data, p.len, 1, error)) {
      dj_buf_cleanup (&p);
      return false;
   }
   size_t at = p.len;
   dj_buf_cleanup (&p);
   while (dj_walk_next (&w)) {
      const uint8_t *k = w.k.mv_data;
      DJ_GROW (h->v, h->n, h->cap, 64);
      h->v[h->n].rid = dj_u64be_read (k + w.k.mv_size - 8);
      /* a key cut to DJ_KEY_MAX (a very long term) may have lost the score */
      h->unscored |= at - 8 + 18 + 40 > DJ_KEY_MAX ||
                     !dj_key_read_double (k + at, w.k.mv_size - 8 - at, &h->v[h->n].score);
      h->n++;
   }
   return dj_walk_close (&w, "text index scan", error);
}

/* The text index of c, or NULL (error 27). */
static const dj_index_t *
text_index (const dj_coll_t *c, bson_error_t *error)
{
   for (int i = 0; c && i < c->nindexes; i++) {
      if (c->indexes[i].text && !c->indexes[i].hidden) {
         return &c->indexes[i];
      }
   }
   dj_err (error, DJ_IndexNotFound, "text index required for $text query");
   return NULL;
}

/* The encoded equality values of m's conjuncts on ix's prefix fields into b
 * (mongod's planner error 291 when one has none).
 * https://www.mongodb.com/docs/manual/core/indexes/index-types/index-text/text-index-restrictions/#compound-index */
static bool
prefix_key (const dj_index_t *ix, const dj_matcher_t *m, dj_buf_t *b, bson_error_t *error)
{
   for (int i = 0; i < ix->text_pos; i++) {
      dj_bounds_t bd;
      if (!dj_matcher_bounds (m, ix->paths[i].buf, &bd) || bd.kind != DJ_BOUND_EQ || bd.npoints != 1 ||
          bd.points[0].value_type == BSON_TYPE_ARRAY || bd.points[0].value_type == BSON_TYPE_REGEX) {
         return dj_err (error, DJ_NoQueryExecutionPlans,
                        "error processing query: planner returned error :: caused by :: failed to use text index to satisfy "
                        "$text query (if text index is compound, are equality predicates given for all prefix fields?)");
      }
      dj_key_append (b, &bd.points[0], ix->desc[i]);
   }
   return true;
}

bool
dj_text_check (const dj_coll_t *c, const dj_matcher_t *clause, bson_error_t *error)
{
   const dj_index_t *ix = text_index (c, error);
   dj_buf_t prefix;
   dj_buf_init (&prefix);
   bool ok = ix && prefix_key (ix, clause, &prefix, error);
   dj_buf_cleanup (&prefix);
   return ok;
}

bool
dj_text_hits (dj_ctx_t *ctx, dj_coll_t *c, const dj_matcher_t *clause, dj_text_hit_fn fn, void *ud, bson_error_t *error)
{
   const dj_index_t *ix = text_index (c, error);
   if (!ix) {
      return false;
   }
   dj_text_query_t *q = dj_text_query_new (dj_matcher_text (clause), error);
   if (!q) {
      return false;
   }
   dj_text_tok_t *tok = dj_text_tok_new ();
   hits_t h = {0};
   dj_buf_t prefix;
   dj_buf_init (&prefix);
   bool ok = dj_text_query_bind (q, ix->text, tok, error) && prefix_key (ix, clause, &prefix, error);
   for (int t = 0; ok && t < dj_text_query_nterms (q); t++) {
      ok = term_rids (ctx, ix, &prefix, dj_text_query_term (q, t), &h, error);
   }
   if (ok && h.n) {
      qsort (h.v, h.n, sizeof *h.v, cmp_hit);
   }
   for (size_t i = 0, j; ok && i < h.n; i = j) {
      bson_t doc;
      double score = 0;
      uint64_t rid = h.v[i].rid;
      for (j = i; j < h.n && h.v[j].rid == rid; j++) {
         score += h.v[j].score; /* the document's entries for the query's terms */
      }
      if (!(ok = dj_record_get (ctx, c, rid, &doc, error))) {
         break;
      }
      if (!dj_text_query_match (q, tok, &doc)) {
         continue;
      }
      if (h.unscored) {
         score = dj_text_query_score (q, tok, &doc);
      }
      if (!fn (rid, &doc, score, ud)) {
         break;
      }
   }
   dj_buf_cleanup (&prefix);
   bson_free (h.v);
   dj_text_tok_destroy (tok);
   dj_text_query_destroy (q);
   return ok;
}

/* A top-level $text's scan: each hit matched against the whole filter. */
typedef struct {
   const dj_matcher_t *m;
   const dj_eval_t *vars;
   bool writes;
   int64_t max, found;
   dj_scan_fn fn;
   void *fnctx;
   uint64_t *rids; /* writes: owned, the matches' records and positions */
   int32_t *poss;
   size_t n, cap, pcap;
   bson_error_t *error;
   bool failed;
} top_t;

static bool
top_hit (uint64_t rid, const bson_t *doc, double score, void *ud)
{
   top_t *t = ud;
   int32_t pos = -1;
   bson_error_t xe = {0};
   if (!dj_matcher_match_ex (t->m, doc, &pos, t->vars, &xe)) {
      if (xe.code) {
         *t->error = xe;
         t->failed = true;
      }
      return !xe.code;
   }
   t->found++;
   bool more = !t->max || t->found < t->max;
   if (t->writes) { /* handed on once every match is known */
      DJ_GROW (t->rids, t->n, t->cap, 16);
      t->poss = t->pcap < t->cap ? bson_realloc (t->poss, sizeof *t->poss * (t->pcap = t->cap)) : t->poss;
      t->poss[t->n] = pos;
      t->rids[t->n++] = rid;
      return more;
   }
   bson_t *scored = bson_copy (doc);
   BSON_APPEND_DOUBLE (scored, DJ_META_TEXT_SCORE, score);
   more &= t->fn (rid, scored, pos, t->fnctx);
   bson_destroy (scored);
   return more;
}

/* Whether m's $text is one of its top-level conjuncts (else under an $or). */
static bool
text_at_top (const dj_matcher_t *m)
{
   int n;
   bool top = false;
   if (dj_matcher_kind (m, &n) == DJ_MK_AND) {
      for (int i = 0; i < n && !top; i++) {
         int k;
         top = dj_matcher_kind (dj_matcher_kid (m, i), &k) == DJ_MK_TEXT;
      }
   }
   return top;
}

bool
dj_text_scan (dj_ctx_t *ctx, dj_coll_t *c, const dj_matcher_t *m, const dj_eval_t *vars, bool writes, int64_t max,
              dj_scan_fn fn, void *fnctx, bson_error_t *error)
{
   if (!text_at_top (m)) {
      return dj_text_or_scan (ctx, c, m, vars, writes, max, fn, fnctx, error);
   }
   top_t t = {.m = m, .vars = vars, .writes = writes, .max = max, .fn = fn, .fnctx = fnctx, .error = error};
   bool ok = dj_text_hits (ctx, c, m, top_hit, &t, error) && !t.failed;
   for (size_t i = 0; ok && i < t.n; i++) {
      bson_t doc;
      if (!(ok = dj_record_get (ctx, c, t.rids[i], &doc, error)) || !fn (t.rids[i], &doc, t.poss[i], fnctx)) {
         break;
      }
   }
   DJ_FREE (t.rids, t.poss);
   return ok;
}
