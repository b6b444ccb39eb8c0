/*
 * graph.c -- $graphLookup: a breadth-first search over another collection
 * (or view) of this database, from the values of startWith, following
 * connectFromField -> connectToField, each document once, to maxDepth.
 *
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/graphLookup/
 *
 * The collection is read once per stage run (restrictSearchWithMatch
 * applied while reading) and indexed by connectToField the way an $in on
 * it matches (lookup.c's jtable); each input document's search then walks
 * the index. depthField gets the depth a document was first reached at, as
 * a long. The order of the `as` array is unspecified by the manual; here it
 * is the order documents were reached in.
 */
#include "agg-private.h"

typedef struct {
   char *from, *as, *connect_from, *connect_to, *depth_field; /* owned */
   dj_expr_t *start;       /* owned */
   int64_t max_depth;      /* -1: unbounded */
   dj_matcher_t *restrict_; /* owned; NULL: none */
   dj_path_t from_path, to_path, as_path, depth_path;
} graph_t;

static void
graph_free (void *p)
{
   graph_t *g = p;
   dj_expr_destroy (g->start);
   dj_matcher_destroy (g->restrict_);
   dj_path_cleanup (&g->from_path);
   dj_path_cleanup (&g->to_path);
   dj_path_cleanup (&g->as_path);
   dj_path_cleanup (&g->depth_path);
   DJ_FREE (g->from, g->as, g->connect_from, g->connect_to, g->depth_field, g);
}

/* *slot = the string value of it, for option `k`. */
static bool
string_opt (bson_iter_t *it, const char *k, char **slot, bson_error_t *error)
{
   if (!BSON_ITER_HOLDS_UTF8 (it)) {
      return dj_err (error, 40103, "expected string as argument for %s, found: %s", k, dj_type_name (bson_iter_type (it)));
   }
   bson_free (*slot);
   *slot = bson_strdup (bson_iter_utf8 (it, NULL));
   return true;
}

bool
dj_agg_parse_graph_lookup (stage_t *s, const bson_value_t *v, const dj_vscope_t *scope, bson_error_t *error)
{
   graph_t *g = bson_malloc0 (sizeof *g);
   g->max_depth = -1;
   s->spec = g;
   s->spec_free = graph_free;
   if (v->value_type != BSON_TYPE_DOCUMENT) {
      return dj_err (error, DJ_FailedToParse, "the $graphLookup stage specification must be an object, found %s",
                     dj_type_name (v->value_type));
   }
   bson_iter_t it;
   bson_iter_init_from_data (&it, v->value.v_doc.data, v->value.v_doc.data_len);
   while (bson_iter_next (&it)) {
      const char *k = bson_iter_key (&it);
      bool ok = true;
      if (!strcmp (k, "from")) {
         if (BSON_ITER_HOLDS_DOCUMENT (&it)) {
            return dj_err (error, DJ_NotImplemented, "$graphLookup from another database is not supported by the embedded engine");
         }
         ok = string_opt (&it, k, &g->from, error);
      } else if (!strcmp (k, "as")) {
         ok = string_opt (&it, k, &g->as, error);
      } else if (!strcmp (k, "connectFromField")) {
         ok = string_opt (&it, k, &g->connect_from, error);
      } else if (!strcmp (k, "connectToField")) {
         ok = string_opt (&it, k, &g->connect_to, error);
      } else if (!strcmp (k, "depthField")) {
         ok = string_opt (&it, k, &g->depth_field, error);
      } else if (!strcmp (k, "startWith")) {
         dj_expr_destroy (g->start);
         g->start = dj_expr_parse (bson_iter_value (&it), scope, error);
         ok = g->start != NULL;
      } else if (!strcmp (k, "maxDepth")) {
         if (!BSON_ITER_HOLDS_NUMBER (&it) || !dj_value_as_int64_exact (bson_iter_value (&it), &g->max_depth)) {
            return dj_err (error, 40100, "maxDepth must be numeric, found type: %s", dj_type_name (bson_iter_type (&it)));
         }
         if (g->max_depth < 0) {
            return dj_err (error, 40101, "maxDepth requires a nonnegative argument, found: %" PRId64, g->max_depth);
         }
      } else if (!strcmp (k, "restrictSearchWithMatch")) {
         if (!BSON_ITER_HOLDS_DOCUMENT (&it)) {
            return dj_err (error, 40185, "restrictSearchWithMatch must be an object, found %s", dj_type_name (bson_iter_type (&it)));
         }
         uint32_t len;
         const uint8_t *data;
         bson_t q;
         bson_iter_document (&it, &len, &data);
         bson_init_static (&q, data, len);
         dj_matcher_destroy (g->restrict_);
         g->restrict_ = dj_matcher_new (&q, error);
         ok = g->restrict_ != NULL;
      } else {
         return dj_err (error, 40104, "Unknown argument to $graphLookup: %s", k);
      }
      if (!ok) {
         return false;
      }
   }
   const char *missing = !g->as ? "as" : !g->connect_to ? "connectToField" : !g->connect_from ? "connectFromField"
                         : !g->from ? "from" : !g->start ? "startWith" : NULL;
   if (missing) {
      return dj_err (error, 40105, "must specify 'startWith', 'connectFromField', 'connectToField', 'from', and 'as' for $graphLookup (missing '%s')",
                     missing);
   }
   if (g->as[0] == '$' || g->connect_from[0] == '$' || g->connect_to[0] == '$' || (g->depth_field && g->depth_field[0] == '$')) {
      return dj_err (error, 16410, "FieldPath field names may not start with '$'");
   }
   return dj_path_init (&g->from_path, g->connect_from, strlen (g->connect_from), error) &&
          dj_path_init (&g->to_path, g->connect_to, strlen (g->connect_to), error) &&
          dj_path_init (&g->as_path, g->as, strlen (g->as), error) &&
          (!g->depth_field || dj_path_init (&g->depth_path, g->depth_field, strlen (g->depth_field), error));
}

/* The search state of one input document. */
typedef struct {
   jtable_t *index;     /* borrowed: the foreign documents by connectToField */
   ktable_t queried;    /* values already looked up */
   size_t *depth;       /* per foreign document: depth + 1 once reached, 0 before */
   size_t *order;       /* the documents reached, in order */
   size_t norder;
   dj_vlist_t frontier, next; /* values to look up at this depth, the next */
} search_t;

/* One depth of the search: every value of the frontier not looked up
 * before, the documents it reaches not reached before. */
static void
search_step (search_t *st, const graph_t *g, const dj_docs_t *foreign, size_t depth)
{
   st->next.n = 0;
   for (size_t i = 0; i < st->frontier.n; i++) {
      bool added;
      dj_buf_t k;
      dj_buf_init (&k);
      dj_key_append_collated (&k, &st->frontier.v[i]);
      dj_ktable_index (&st->queried, &k, true, &added);
      dj_buf_cleanup (&k);
      if (!added) {
         continue;
      }
      jbucket_t *b = dj_jtable_find (st->index, &st->frontier.v[i], false);
      for (size_t h = 0; b && h < b->n; h++) {
         size_t d = dj_jbucket_doc (b, h);
         if (st->depth[d]) {
            continue;
         }
         st->depth[d] = depth + 1;
         st->order[st->norder++] = d;
         /* its connectFromField values: the next depth's frontier */
         bson_value_t dv;
         dj_vlist_t vals = {0};
         dj_value_from_doc (foreign->v[d], false, &dv);
         dj_path_visit (&dv, &g->from_path, 0, false, dj_vlist_push, &vals);
         for (size_t x = 0; x < vals.n; x++) {
            dj_value_each (&vals.v[x], dj_vlist_push, &st->next); /* an array: each element */
         }
         bson_free (vals.v);
      }
   }
}

bool
dj_agg_run_graph_lookup (rctx_t *r, const stage_t *s, dj_docs_t *docs)
{
   const graph_t *g = s->spec;
   dj_docs_t foreign = {0};
   jtable_t index = {0};
   if (!dj_agg_read_collection (r->run, r->run->db, g->from, g->restrict_, NULL, &foreign, r->error)) {
      return false;
   }
   dj_jtable_build (&index, &foreign, &g->to_path);
   bool ok = true;
   for (size_t i = 0; ok && i < docs->n; i++) {
      dj_eval_t ev;
      bson_value_t start;
      dj_agg_eval_setup (r, &ev, docs->v[i]);
      ok = dj_expr_eval (g->start, &ev, &start);
      if (!ok) {
         break;
      }
      search_t st = {.index = &index};
      st.depth = bson_malloc0 (sizeof (size_t) * (foreign.n + 1));
      st.order = bson_malloc (sizeof (size_t) * (foreign.n + 1));
      if (start.value_type == BSON_TYPE_EOD) {
         start.value_type = BSON_TYPE_NULL; /* a missing startWith looks up null, as {$in: [null]} */
      }
      dj_value_each (&start, dj_vlist_push, &st.frontier);
      for (int64_t depth = 0; st.frontier.n && (g->max_depth < 0 || depth <= g->max_depth); depth++) {
         search_step (&st, g, &foreign, (size_t) depth);
         dj_vlist_t t = st.frontier;
         st.frontier = st.next;
         st.next = t;
      }
      bson_t arr = BSON_INITIALIZER;
      for (size_t k = 0; k < st.norder; k++) {
         char kb[16];
         const bson_t *fd = foreign.v[st.order[k]];
         if (g->depth_field) {
            bson_value_t dv = {.value_type = BSON_TYPE_INT64};
            dv.value.v_int64 = (int64_t) st.depth[st.order[k]] - 1;
            bson_t *with = dj_agg_with_path (fd, &g->depth_path, &dv, NULL, 0);
            bson_append_document (&arr, dj_array_key ((uint32_t) k, kb), -1, with);
            bson_destroy (with);
         } else {
            bson_append_document (&arr, dj_array_key ((uint32_t) k, kb), -1, fd);
         }
      }
      bson_value_t av;
      dj_value_from_doc (&arr, true, &av);
      bson_t *nd = dj_agg_with_path (docs->v[i], &g->as_path, &av, NULL, 0);
      bson_destroy (&arr);
      if (nd->len > DJ_MAX_BSON_SIZE) {
         bson_destroy (nd);
         ok = dj_err (r->error, 17419, "$graphLookup reached maximum memory consumption");
      } else {
         bson_destroy (docs->v[i]);
         docs->v[i] = nd;
      }
      dj_ktable_free (&st.queried);
      DJ_FREE (st.depth, st.order, st.frontier.v, st.next.v);
      dj_arena_reset (r->arena);
   }
   dj_jtable_free (&index);
   dj_docs_clear (&foreign);
   if (!ok) {
      dj_docs_clear (docs);
   }
   return ok;
}
