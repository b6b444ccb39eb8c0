/*
 * text_or.c -- $text under an $or, answered as mongod's planner answers it:
 * a union of index reads.
 *
 * "To use a $text query in an $or expression, all clauses in the $or array
 * must be indexed" (https://www.mongodb.com/docs/manual/reference/operator/query/text/#restrictions):
 * a $text reads its text index, and an $or reads indexes only when each of
 * its alternatives has one (https://www.mongodb.com/docs/manual/reference/operator/query/or/#-or-and-text-queries).
 * The candidates are then
 *   - the text index's documents for the $text (text_scan.c's dj_text_hits,
 *     the prefix equalities of a compound text index taken from the $text's
 *     own alternative), with their scores;
 *   - each other alternative's, through the index plan.c would choose for
 *     it alone or a geo index; an alternative that is an $and holding an $or
 *     (or the $text's $or deeper down) through that $or's alternatives;
 * each document once, matched against the whole filter with its $text true
 * only for the text index's documents (dj_matcher_match_text). A document
 * only another alternative finds has no text score: DJ_META_TEXT_SCORE is
 * null beside it, which {$meta: "textScore"} reads as missing, as mongod's
 * does for a document without the metadata.
 *
 * When an alternative has no index mongod finds no plan: 291
 * NoQueryExecutionPlans, "Failed to produce a solution for TEXT under OR..."
 * when the $text is itself an alternative of the filter's one $or, "No query
 * solutions" otherwise; both after the text index's own checks (27 without
 * one, 291 without a compound index's prefix equalities).
 */
#include "storage-private.h"

#include <stdio.h>
#include <stdlib.h>

/* The reads whose union holds the filter's documents. */
typedef struct {
   const dj_matcher_t *text;  /* borrowed: the conjunction holding the $text */
   const dj_matcher_t **alts; /* owned array of borrowed: alternatives read through their own index */
   size_t n, cap;
} union_t;

static bool plan_or (dj_coll_t *c, const dj_matcher_t *or, union_t *u);

static bool
is_kind (const dj_matcher_t *m, dj_mkind_t kind)
{
   int n;
   return dj_matcher_kind (m, &n) == kind;
}

/* Adds to u the reads that find the documents of conjunction `and` (the
 * filter, or an $or's alternative); false when one has no index. */
static bool
plan_and (dj_coll_t *c, const dj_matcher_t *and, union_t *u)
{
   int n;
   if (dj_matcher_kind (and, &n) != DJ_MK_AND) {
      return false;
   }
   for (int i = 0; i < n; i++) {
      if (is_kind (dj_matcher_kid (and, i), DJ_MK_TEXT)) {
         u->text = and;
         return true;
      }
   }
   for (int i = 0; i < n; i++) {
      const dj_matcher_t *kid = dj_matcher_kid (and, i);
      if (is_kind (kid, DJ_MK_OR) && dj_matcher_text (kid)) {
         return plan_or (c, kid, u);
      }
   }
   if (dj_plan_clause_indexed (c, and)) {
      DJ_GROW (u->alts, u->n, u->cap, 4);
      u->alts[u->n++] = and;
      return true;
   }
   for (int i = 0; i < n; i++) { /* an $or among its conjuncts whose alternatives all have one */
      const dj_matcher_t *kid = dj_matcher_kid (and, i);
      size_t at = u->n;
      if (is_kind (kid, DJ_MK_OR) && plan_or (c, kid, u)) {
         return true;
      }
      u->n = at;
   }
   return false;
}

static bool
plan_or (dj_coll_t *c, const dj_matcher_t *or, union_t *u)
{
   int n;
   dj_matcher_kind (or, &n);
   for (int i = 0; i < n; i++) {
      if (!plan_and (c, dj_matcher_kid (or, i), u)) {
         return false;
      }
   }
   return true;
}

/* The conjunction holding m's $text. */
static const dj_matcher_t *
text_and (const dj_matcher_t *m)
{
   int n;
   dj_mkind_t kind = dj_matcher_kind (m, &n);
   for (int i = 0; i < n; i++) {
      const dj_matcher_t *kid = dj_matcher_kid (m, i);
      if (kind == DJ_MK_AND && is_kind (kid, DJ_MK_TEXT)) {
         return m;
      }
      if (dj_matcher_text (kid)) {
         return text_and (kid);
      }
   }
   return m;
}

/* Whether the filter is one $or with the $text alone as an alternative:
 * mongod's tree after it drops one-child $ands, for its error message. */
static bool
text_alternative (const dj_matcher_t *m)
{
   int n, na, k;
   if (dj_matcher_kind (m, &n) != DJ_MK_AND || n != 1 || dj_matcher_kind (dj_matcher_kid (m, 0), &na) != DJ_MK_OR) {
      return false;
   }
   for (int i = 0; i < na; i++) {
      const dj_matcher_t *alt = dj_matcher_kid (dj_matcher_kid (m, 0), i);
      if (dj_matcher_kind (alt, &k) == DJ_MK_AND && k == 1 && is_kind (dj_matcher_kid (alt, 0), DJ_MK_TEXT)) {
         return true;
      }
   }
   return false;
}

/* The candidates: record ids, with the text index's scores. */
typedef struct {
   uint64_t rid;
   double score;
   bool scored; /* the text index found it */
} cand_t;

typedef struct {
   cand_t *v; /* owned */
   size_t n, cap;
} cands_t;

static void
cands_add (cands_t *cs, uint64_t rid, double score, bool scored)
{
   DJ_GROW (cs->v, cs->n, cs->cap, 64);
   cs->v[cs->n++] = (cand_t) {.rid = rid, .score = score, .scored = scored};
}

static bool
text_cand (uint64_t rid, const bson_t *doc, double score, void *ud)
{
   (void) doc;
   cands_add (ud, rid, score, true);
   return true;
}

static bool
alt_cand (uint64_t rid, const bson_t *doc, int32_t pos, void *ud)
{
   (void) doc, (void) pos;
   cands_add (ud, rid, 0, false);
   return true;
}

/* By record id, the text index's entry first. */
static int
cmp_cand (const void *a, const void *b)
{
   const cand_t *x = a, *y = b;
   return x->rid != y->rid ? (x->rid < y->rid ? -1 : 1) : (int) y->scored - (int) x->scored;
}

bool
dj_text_or_scan (dj_ctx_t *ctx, dj_coll_t *c, const dj_matcher_t *m, const dj_eval_t *vars, bool writes, int64_t max,
                 dj_scan_fn fn, void *fnctx, bson_error_t *error)
{
   union_t u = {0};
   cands_t cs = {0};
   bool ok = dj_text_check (c, text_and (m), error);
   if (ok && !plan_and (c, m, &u)) {
      ok = dj_err (error, DJ_NoQueryExecutionPlans, "error processing query: planner returned error :: caused by :: %s",
                   text_alternative (m) ? "Failed to produce a solution for TEXT under OR - other non-TEXT clauses "
                                          "under OR have to be indexed as well."
                                        : "No query solutions");
   }
   ok = ok && dj_text_hits (ctx, c, u.text, text_cand, &cs, error);
   for (size_t i = 0; ok && i < u.n; i++) {
      ok = dj_plan_scan_clause (ctx, c, u.alts[i], vars, alt_cand, &cs, error);
   }
   if (ok && cs.n) {
      qsort (cs.v, cs.n, sizeof *cs.v, cmp_cand);
   }
   uint64_t *rids = NULL; /* writes: the matches, handed on once all are known */
   int32_t *poss = NULL;
   size_t nrids = 0, rcap = 0, pcap = 0;
   int64_t found = 0;
   for (size_t i = 0; ok && i < cs.n && (!max || found < max); i++) {
      const cand_t *k = &cs.v[i];
      bson_t doc;
      int32_t pos;
      bson_error_t xe = {0};
      if (i && cs.v[i - 1].rid == k->rid) {
         continue; /* found by another read too */
      }
      if (!(ok = dj_record_get (ctx, c, k->rid, &doc, error))) {
         break;
      }
      if (!dj_matcher_match_text (m, &doc, k->scored, &pos, vars, &xe)) {
         if (xe.code) {
            *error = xe;
            ok = false;
         }
         continue;
      }
      found++;
      if (writes) {
         DJ_GROW (rids, nrids, rcap, 16);
         poss = pcap < rcap ? bson_realloc (poss, sizeof *poss * (pcap = rcap)) : poss;
         poss[nrids] = pos;
         rids[nrids++] = k->rid;
         continue;
      }
      bson_t *out = bson_copy (&doc);
      if (k->scored) {
         BSON_APPEND_DOUBLE (out, DJ_META_TEXT_SCORE, k->score);
      } else {
         BSON_APPEND_NULL (out, DJ_META_TEXT_SCORE);
      }
      bool more = fn (k->rid, out, pos, fnctx);
      bson_destroy (out);
      if (!more) {
         break;
      }
   }
   for (size_t i = 0; ok && i < nrids; i++) {
      bson_t doc;
      if (!(ok = dj_record_get (ctx, c, rids[i], &doc, error)) || !fn (rids[i], &doc, poss[i], fnctx)) {
         break;
      }
   }
   DJ_FREE (u.alts, cs.v, rids, poss);
   return ok;
}

bool
dj_text_or_explain (dj_coll_t *c, const dj_matcher_t *m, bson_t *plan)
{
   union_t u = {0};
   if (text_and (m) == m || !plan_and (c, m, &u)) {
      bson_free (u.alts);
      return false; /* a top-level $text (plan.c's TEXT_MATCH), or no plan */
   }
   bson_t arr, sub;
   BSON_APPEND_UTF8 (plan, "stage", "OR");
   BSON_APPEND_ARRAY_BEGIN (plan, "inputStages", &arr);
   for (size_t i = 0; i <= u.n; i++) {
      char key[24];
      snprintf (key, sizeof key, "%zu", i);
      BSON_APPEND_DOCUMENT_BEGIN (&arr, key, &sub);
      dj_plan_explain (c, i ? u.alts[i - 1] : u.text, NULL, -1, &sub);
      bson_append_document_end (&arr, &sub);
   }
   bson_append_array_end (plan, &arr);
   bson_free (u.alts);
   return true;
}
