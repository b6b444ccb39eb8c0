/*
 * sort.c -- sort specifications ({a: 1, "b.c": -1}).
 *
 * https://www.mongodb.com/docs/manual/reference/method/cursor.sort/
 * A field that is an array sorts by its smallest element ascending and its
 * largest element descending; a missing field sorts as null; an empty array
 * sorts below null (it has no element, MongoDB keys it as undefined).
 */
#include "dj_values.h"

#include <stdlib.h>

bson_t *
dj_meta_strip (const bson_t *doc)
{
   bson_iter_t it;
   if (!bson_iter_init_find (&it, doc, DJ_META_TEXT_SCORE)) {
      return NULL;
   }
   bson_t *out = bson_sized_new (doc->len);
   bson_copy_to_excluding_noinit (doc, out, DJ_META_TEXT_SCORE, NULL);
   return out;
}

typedef struct {
   dj_path_t path;
   char *dotted; /* owned */
   int dir;      /* 1 or -1 */
} skey_t;

struct dj_sort {
   skey_t *keys; /* owned */
   int n;
};

void
dj_sort_destroy (dj_sort_t *s)
{
   if (!s) {
      return;
   }
   for (int i = 0; i < s->n; i++) {
      dj_path_cleanup (&s->keys[i].path);
      bson_free (s->keys[i].dotted);
   }
   bson_free (s->keys);
   bson_free (s);
}

dj_sort_t *
dj_sort_new (const bson_t *spec, bson_error_t *error)
{
   bson_iter_t it;
   dj_sort_t *s = bson_malloc0 (sizeof *s);

   bson_iter_init (&it, spec);
   while (bson_iter_next (&it)) {
      const bson_value_t *v = bson_iter_value (&it);
      int64_t d;
      const char *field = bson_iter_key (&it);
      if (v->value_type == BSON_TYPE_DOCUMENT) {
         /* https://www.mongodb.com/docs/manual/reference/operator/aggregation/meta/ */
         bson_iter_t mi;
         bson_iter_init_from_data (&mi, v->value.v_doc.data, v->value.v_doc.data_len);
         if (!bson_iter_next (&mi) || strcmp (bson_iter_key (&mi), "$meta") || !BSON_ITER_HOLDS_UTF8 (&mi) ||
             bson_iter_next (&mi)) {
            dj_err (error, 17312, "$meta is the only expression supported by $sort right now");
            goto fail;
         }
         bson_iter_init_from_data (&mi, v->value.v_doc.data, v->value.v_doc.data_len);
         bson_iter_next (&mi);
         if (strcmp (bson_iter_utf8 (&mi, NULL), "textScore")) {
            dj_err (error, 31138, "Illegal $meta sort: %s", bson_iter_utf8 (&mi, NULL));
            goto fail;
         }
         field = DJ_META_TEXT_SCORE;
         static const bson_value_t highest_first = {.value_type = BSON_TYPE_INT32, .value.v_int32 = -1};
         v = &highest_first;
      }
      if (!dj_value_is_number (v) || !dj_value_as_int64_exact (v, &d) || (d != 1 && d != -1)) {
         dj_err (error, 15975, "$sort key ordering must be 1 (for ascending) or -1 (for descending)");
         goto fail;
      }
      s->keys = bson_realloc (s->keys, sizeof (skey_t) * (size_t) (s->n + 1));
      s->keys[s->n].dir = (int) d;
      if (!dj_path_init (&s->keys[s->n].path, field, strlen (field), error)) {
         dj_err (error, DJ_BadValue, "FieldPath field names may not be empty strings.");
         goto fail;
      }
      s->keys[s->n].dotted = bson_strdup (field);
      s->n++;
   }
   return s;
fail:
   dj_sort_destroy (s);
   return NULL;
}

typedef struct {
   int dir;
   bool have;
   bool saw_empty;
   bson_value_t best;
} pick_t;

static void
consider (const bson_value_t *v, void *ctx)
{
   pick_t *p = ctx;
   if (!p->have || (p->dir > 0 ? dj_value_cmp (v, &p->best) < 0 : dj_value_cmp (v, &p->best) > 0)) {
      p->best = *v;
      p->have = true;
   }
}

static void
pick_visit (const bson_value_t *v, void *ctx)
{
   pick_t *p = ctx;
   if (!dj_value_each (v, consider, p)) {
      p->saw_empty = true;
   }
}

/* The sort key of doc for key k: borrowed from doc's bytes. */
static bson_value_t
sort_key (const skey_t *k, const bson_t *doc)
{
   bson_value_t dv;
   pick_t p = {.dir = k->dir};

   dj_value_from_doc (doc, false, &dv);
   if (k->path.n == 1) {
      /* a top-level field (ORDER BY col): a scalar there is the key, missing
       * is null; only an array needs the visit (its least or greatest element) */
      bson_value_t v;
      if (!dj_value_get_field (&dv, k->path.parts[0], &v)) {
         return (bson_value_t) {.value_type = BSON_TYPE_NULL};
      }
      if (v.value_type != BSON_TYPE_ARRAY) {
         return v;
      }
   }
   dj_path_visit (&dv, &k->path, 0, false, pick_visit, &p);
   if (!p.have) {
      p.best.value_type = p.saw_empty ? BSON_TYPE_UNDEFINED : BSON_TYPE_NULL;
   }
   return p.best;
}

int
dj_sort_nkeys (const dj_sort_t *s)
{
   return s->n;
}

const char *
dj_sort_key (const dj_sort_t *s, int i, int *dir)
{
   *dir = s->keys[i].dir;
   return s->keys[i].dotted;
}

int
dj_sort_cmp (const dj_sort_t *s, const bson_t *a, const bson_t *b)
{
   for (int i = 0; i < s->n; i++) {
      bson_value_t ka = sort_key (&s->keys[i], a), kb = sort_key (&s->keys[i], b);
      int c = dj_value_cmp (&ka, &kb);
      if (c) {
         return c * s->keys[i].dir;
      }
   }
   return 0;
}

typedef struct {
   void *item;
   bson_value_t *keys;
   size_t idx;
} entry_t;


void
dj_sort_keys_of (const dj_sort_t *s, const bson_t *doc, bson_value_t *keys)
{
   for (int i = 0; i < s->n; i++) {
      keys[i] = sort_key (&s->keys[i], doc);
   }
}

int
dj_sort_cmp_keys (const dj_sort_t *s, const bson_value_t *a, const bson_value_t *b)
{
   for (int i = 0; i < s->n; i++) {
      int c = dj_value_cmp (&a[i], &b[i]);
      if (c) {
         return c * s->keys[i].dir;
      }
   }
   return 0;
}

static int
entry_cmp_n (const entry_t *x, const entry_t *y, const dj_sort_t *s)
{
   int c = dj_sort_cmp_keys (s, x->keys, y->keys);
   return c ? c : (x->idx > y->idx) - (x->idx < y->idx);
}

static void
merge_sort (entry_t *a, entry_t *tmp, size_t n, const dj_sort_t *s)
{
   if (n < 2) {
      return;
   }
   size_t h = n / 2;
   merge_sort (a, tmp, h, s);
   merge_sort (a + h, tmp, n - h, s);
   size_t i = 0, j = h, k = 0;
   while (i < h && j < n) {
      tmp[k++] = entry_cmp_n (&a[j], &a[i], s) < 0 ? a[j++] : a[i++];
   }
   while (i < h) {
      tmp[k++] = a[i++];
   }
   while (j < n) {
      tmp[k++] = a[j++];
   }
   memcpy (a, tmp, sizeof (entry_t) * n);
}

/* max-heap on (keys, idx): the root is the worst of the k best so far */
static void
heap_down (entry_t *h, size_t n, size_t i, const dj_sort_t *s)
{
   for (;;) {
      size_t l = 2 * i + 1, r = l + 1, m = i;
      if (l < n && entry_cmp_n (&h[l], &h[m], s) > 0) {
         m = l;
      }
      if (r < n && entry_cmp_n (&h[r], &h[m], s) > 0) {
         m = r;
      }
      if (m == i) {
         return;
      }
      entry_t t = h[i];
      h[i] = h[m];
      h[m] = t;
      i = m;
   }
}

void
dj_sort_docs_topk (const dj_sort_t *s, bson_t **docs, size_t n, size_t k)
{
   if (k == 0 || k * 4 >= n || s->n == 0) {
      dj_sort_docs (s, docs, n);
      return;
   }
   entry_t *heap = bson_malloc (sizeof (entry_t) * k);
   bson_value_t *keys = bson_malloc (sizeof (bson_value_t) * (k + 1) * (size_t) s->n);
   bool *taken = bson_malloc0 (sizeof (bool) * n);
   entry_t cand;
   size_t hn = 0;
   cand.keys = keys + k * (size_t) s->n;
   for (size_t i = 0; i < n; i++) {
      cand.item = docs[i];
      cand.idx = i;
      for (int j = 0; j < s->n; j++) {
         cand.keys[j] = sort_key (&s->keys[j], docs[i]);
      }
      if (hn < k) {
         /* grow: slot hn owns key storage hn */
         heap[hn] = cand;
         heap[hn].keys = keys + hn * (size_t) s->n;
         memcpy (heap[hn].keys, cand.keys, sizeof (bson_value_t) * (size_t) s->n);
         hn++;
         for (size_t p = hn / 2; p-- > 0;) {
            heap_down (heap, hn, p, s);
         }
      } else if (entry_cmp_n (&cand, &heap[0], s) < 0) {
         bson_value_t *slot = heap[0].keys;
         heap[0] = cand;
         heap[0].keys = slot;
         memcpy (slot, cand.keys, sizeof (bson_value_t) * (size_t) s->n);
         heap_down (heap, hn, 0, s);
      }
   }
   /* heap -> ascending by repeatedly moving the max to the end */
   for (size_t end = hn; end > 1; end--) {
      entry_t t = heap[0];
      heap[0] = heap[end - 1];
      heap[end - 1] = t;
      heap_down (heap, end - 1, 0, s);
   }
   bson_t **rest = bson_malloc (sizeof (bson_t *) * n);
   size_t nr = 0;
   for (size_t i = 0; i < hn; i++) {
      taken[heap[i].idx] = true;
   }
   for (size_t i = 0; i < n; i++) {
      if (!taken[i]) {
         rest[nr++] = docs[i];
      }
   }
   for (size_t i = 0; i < hn; i++) {
      docs[i] = heap[i].item;
   }
   memcpy (docs + hn, rest, sizeof (bson_t *) * nr);
   DJ_FREE (rest, taken, keys, heap);
}

static const bson_t *
identity (const void *item)
{
   return item;
}

void
dj_sort_docs (const dj_sort_t *s, bson_t **docs, size_t n)
{
   dj_sort_items (s, (void **) docs, n, identity);
}

void
dj_sort_items (const dj_sort_t *s, void **docs, size_t n, const bson_t *(*get) (const void *item))
{
   if (n < 2 || s->n == 0) {
      return;
   }
   entry_t *e = bson_malloc (sizeof (entry_t) * n);
   entry_t *tmp = bson_malloc (sizeof (entry_t) * n);
   bson_value_t *keys = bson_malloc (sizeof (bson_value_t) * n * (size_t) s->n);
   for (size_t i = 0; i < n; i++) {
      e[i].item = docs[i];
      e[i].idx = i;
      e[i].keys = keys + i * (size_t) s->n;
      for (int k = 0; k < s->n; k++) {
         e[i].keys[k] = sort_key (&s->keys[k], get (docs[i]));
      }
   }
   merge_sort (e, tmp, n, s);
   for (size_t i = 0; i < n; i++) {
      docs[i] = e[i].item;
   }
   DJ_FREE (keys, tmp, e);
}
