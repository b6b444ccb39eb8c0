/*
 * implies.c -- whether a query's filter implies a partial index's filter.
 *
 * A partial index holds entries only for the documents its
 * partialFilterExpression matches, so the planner may scan it only when
 * every document the query matches is one of them: "to use the partial
 * index, a query must contain the filter expression (or a modified filter
 * expression that specifies a subset of the filter expression) as part of
 * its query condition".
 * https://www.mongodb.com/docs/manual/core/index-partial/#query-coverage
 *
 * As mongod's planner, the proof is made conjunct by conjunct: each of the
 * filter's top-level conjuncts (through $and) must follow from one of the
 * query's on the same path -- {a: 1} or {a: {$lt: 1}} implies
 * {a: {$lte: 1.5}}; {a: {$lte: 1.6}} does not; any equality or comparison
 * that cannot match null or a missing field implies {a: {$exists: true}}.
 * Comparisons only prove within one type bracket (they match nothing across
 * brackets, match.c); null, NaN, arrays, documents and regexes prove
 * nothing. One conjunct proving another is sound even on arrays: the
 * element that satisfies the query's condition satisfies the filter's.
 * Whatever is not proven leaves the index unused (never wrong results).
 */
#include "dj_query.h"

#include <string.h>

static bool
same_path (const dj_path_t *a, const dj_path_t *b)
{
   return a->n == b->n && dj_path_is_prefix (a, b);
}

/* A scalar whose comparisons follow dj_value_cmp within its type bracket. */
static bool
provable (const bson_value_t *v)
{
   switch (v->value_type) {
   case BSON_TYPE_EOD: case BSON_TYPE_NULL: case BSON_TYPE_UNDEFINED: case BSON_TYPE_ARRAY:
   case BSON_TYPE_DOCUMENT: case BSON_TYPE_REGEX: case BSON_TYPE_MINKEY: case BSON_TYPE_MAXKEY:
      return false;
   case BSON_TYPE_DOUBLE:
      return v->value.v_double == v->value.v_double; /* NaN compares only to NaN */
   default:
      return true;
   }
}

/* Whether value w satisfies `op v` (w and v provable, one bracket). */
static bool
satisfies (const bson_value_t *w, dj_cj_op_t op, const bson_value_t *v)
{
   if (!provable (w) || !provable (v) || dj_type_rank (w->value_type) != dj_type_rank (v->value_type)) {
      return false;
   }
   int c = dj_value_cmp (w, v);
   switch (op) {
   case DJ_CJ_EQ: return c == 0;
   case DJ_CJ_LT: return c < 0;
   case DJ_CJ_LTE: return c <= 0;
   case DJ_CJ_GT: return c > 0;
   case DJ_CJ_GTE: return c >= 0;
   default: return false;
   }
}

/* Every value of q's equality or $in satisfies `op` against one of vals. */
static bool
points_satisfy (const dj_conjunct_t *q, dj_cj_op_t op, const bson_value_t *vals, int nvals)
{
   for (int i = 0; i < q->nvals; i++) {
      bool some = false;
      for (int k = 0; k < nvals && !some; k++) {
         some = satisfies (&q->vals[i], op, &vals[k]);
      }
      if (!some) {
         return false;
      }
   }
   return q->nvals > 0;
}

/* Whether the query's conjunct q implies the filter's conjunct f. */
static bool
conjunct_implies (const dj_conjunct_t *q, const dj_conjunct_t *f)
{
   if (!q->path || !f->path || q->op == DJ_CJ_OTHER || !same_path (q->path, f->path)) {
      return false;
   }
   bool points = q->op == DJ_CJ_EQ || q->op == DJ_CJ_IN;
   switch (f->op) {
   case DJ_CJ_EXISTS:
      if (q->op == DJ_CJ_EXISTS) {
         return true;
      }
      for (int i = 0; i < q->nvals; i++) {
         if (!provable (&q->vals[i])) {
            return false; /* {a: null} also matches a missing a */
         }
      }
      return q->nvals > 0;
   case DJ_CJ_EQ:
   case DJ_CJ_IN:
      return points && points_satisfy (q, DJ_CJ_EQ, f->vals, f->nvals);
   case DJ_CJ_LT:
   case DJ_CJ_LTE:
   case DJ_CJ_GT:
   case DJ_CJ_GTE:
      if (points) {
         return points_satisfy (q, f->op, f->vals, 1);
      } else {
         bool upper = f->op == DJ_CJ_LT || f->op == DJ_CJ_LTE;
         bool q_upper = q->op == DJ_CJ_LT || q->op == DJ_CJ_LTE;
         if (q->op == DJ_CJ_EXISTS || upper != q_upper) {
            return false;
         }
         /* q's bound at least as tight as f's: strictly so when only f's excludes the bound itself */
         bool strict = (f->op == DJ_CJ_LT || f->op == DJ_CJ_GT) && (q->op == DJ_CJ_LTE || q->op == DJ_CJ_GTE);
         dj_cj_op_t need = upper ? (strict ? DJ_CJ_LT : DJ_CJ_LTE) : (strict ? DJ_CJ_GT : DJ_CJ_GTE);
         return satisfies (&q->vals[0], need, &f->vals[0]);
      }
   default:
      return false;
   }
}

bool
dj_matcher_implies (const dj_matcher_t *query, const dj_matcher_t *filter)
{
   dj_conjunct_t *qs, *fs;
   int nq = dj_matcher_conjuncts (query, &qs);
   int nf = dj_matcher_conjuncts (filter, &fs);
   bool all = true;
   for (int i = 0; i < nf && all; i++) {
      bool some = false;
      for (int k = 0; k < nq && !some; k++) {
         some = conjunct_implies (&qs[k], &fs[i]);
      }
      all = some;
   }
   bson_free (qs);
   bson_free (fs);
   return all;
}
