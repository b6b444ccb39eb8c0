/*
 * topk.c -- a pipeline that starts [$match] $sort $limit k: only the first k
 * documents in sort order are kept while the collection is read (a heap of
 * k copies, the one that would go first at its root), not every match.
 *
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/sort/#-sort----limit-coalescence
 *
 * Ties keep the read order, as the stable $sort over all of them would:
 * a later document never displaces an equal one. The kept documents are
 * handed on in read order; the $sort and $limit stages then run over them.
 */
#include "agg-private.h"
#include "dj_heap.h"

#include <stdlib.h>

/* Past this a $limit is no top-k: the heap would hold as much as the list. */
#define TOPK_MAX 100000

typedef struct {
   bson_t *doc; /* owned */
   uint64_t seq; /* read order */
} kept_t;

typedef struct {
   const dj_sort_t *sort;
   size_t k, n;
   kept_t *v; /* owned, k entries */
   uint64_t seq;
} topk_t;

/* Whether a goes after b (the sort, then read order): nearer the root. */
static bool
later (void *ctx, const void *a, const void *b)
{
   const topk_t *t = ctx;
   const kept_t *x = a, *y = b;
   int c = dj_sort_cmp (t->sort, x->doc, y->doc);
   return c > 0 || (c == 0 && x->seq > y->seq);
}

static bool
keep_fn (uint64_t rid, const bson_t *doc, int32_t pos, void *ctx)
{
   topk_t *t = ctx;
   (void) rid;
   (void) pos;
   uint64_t seq = t->seq++;
   if (t->n < t->k) {
      t->v[t->n++] = (kept_t) {bson_copy (doc), seq};
      if (t->n == t->k) {
         for (size_t i = t->k / 2; i-- > 0;) {
            dj_heap_sift_down (t->v, sizeof *t->v, t->n, i, later, t);
         }
      }
   } else if (dj_sort_cmp (t->sort, doc, t->v[0].doc) < 0) {
      bson_destroy (t->v[0].doc);
      t->v[0] = (kept_t) {bson_copy (doc), seq};
      dj_heap_sift_down (t->v, sizeof *t->v, t->n, 0, later, t);
   }
   return true;
}

static int
by_seq (const void *a, const void *b)
{
   uint64_t x = ((const kept_t *) a)->seq, y = ((const kept_t *) b)->seq;
   return x < y ? -1 : x > y;
}

bool
dj_agg_read_topk (const dj_prun_t *run, const char *coll, const dj_matcher_t *m, const dj_sort_t *sort, int64_t k,
                  dj_docs_t *out, bool *used, bson_error_t *error)
{
   *used = k > 0 && k <= TOPK_MAX;
   if (!*used) {
      return true;
   }
   topk_t t = {.sort = sort, .k = (size_t) k, .v = bson_malloc (sizeof (kept_t) * (size_t) k)};
   bool ok = dj_agg_scan_collection (run, run->db, coll, m, run->vars, keep_fn, &t, error);
   qsort (t.v, t.n, sizeof *t.v, by_seq);
   for (size_t i = 0; i < t.n; i++) {
      if (ok) {
         dj_docs_push (out, t.v[i].doc); /* moved */
      } else {
         bson_destroy (t.v[i].doc);
      }
   }
   bson_free (t.v);
   return ok;
}
