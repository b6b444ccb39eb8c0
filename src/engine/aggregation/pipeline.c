/*
 * pipeline.c -- aggregation pipelines.
 *
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation-pipeline/
 *
 * A pipeline is parsed once into stages (all parse errors first, like
 * MongoDB) and run over materialised lists of documents: each stage takes
 * the list and produces the next. A leading $match is handed to the planner
 * so it can use an index. $lookup and $unionWith read other collections in
 * the same LMDB transaction, so a pipeline sees one consistent snapshot.
 *
 * Memory: $group, $sort, $bucket and $bucketAuto count the bytes they hold;
 * over their limit (100 MiB, or what setParameter set: commands/cmd_param.c)
 * without allowDiskUse they fail with MongoDB's error 292, as MongoDB does;
 * with it $sort and $group go through temporary files (spill.c), the
 * others keep going in memory.
 */
#include "agg-private.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

void
dj_docs_strip_meta (dj_docs_t *d)
{
   for (size_t i = 0; i < d->n; i++) {
      bson_t *plain = dj_meta_strip (d->v[i]);
      if (plain) {
         bson_destroy (d->v[i]);
         d->v[i] = plain;
      }
   }
}

int
dj_pipeline_nstages (const dj_pipeline_t *p)
{
   return p->n;
}

bool
dj_pipeline_has_text (const dj_pipeline_t *p)
{
   return p->n && p->stages[0].kind == S_MATCH && dj_matcher_text (p->stages[0].match);
}

void
dj_docs_clear (dj_docs_t *d)
{
   dj_bsons_free (d->v, 0, d->n);
   memset (d, 0, sizeof *d);
}

void
dj_docs_reserve (dj_docs_t *d, size_t n)
{
   n = n < 4096 ? n : 4096; /* (a hint: more grows as pushes do) */
   if (n > d->cap) {
      d->cap = n;
      d->v = bson_realloc (d->v, sizeof *d->v * n);
   }
}

void
dj_docs_own (dj_docs_t *d, const dj_rows_t *rows)
{
   for (size_t i = 0; rows && i < d->n; i++) {
      if (d->v[i] && dj_rows_has (rows, d->v[i])) {
         d->v[i] = bson_copy (d->v[i]); /* the view stays rows' */
      }
   }
}

/* ---- documents back to back (dj_rows_t) --------------------------------------
 * Views come from blocks of `per` bson_t (ROWS_VIEWS unless told; aligned as bson_t must be),
 * bytes from blocks of ROWS_BYTES, or of the document's size when larger;
 * neither kind of block moves once made, so a view stays valid while the
 * rows live. */
enum { ROWS_VIEWS = 64, ROWS_BYTES = 16 * 1024 };

struct dj_rows {
   bson_t **vblk;      /* owned: the blocks of views (per each), oldest first */
   size_t nvblk, vcap;
   uint8_t **bblk;     /* owned: the blocks of bytes */
   size_t nbblk, bcap;
   size_t nview;       /* the views taken from the newest views block */
   size_t per;         /* views per block */
   uint8_t *at, *end;  /* the free bytes of the newest bytes block */
};

dj_rows_t *
dj_rows_new (void)
{
   return dj_rows_new_for (ROWS_VIEWS);
}

dj_rows_t *
dj_rows_new_for (size_t n)
{
   dj_rows_t *rows = bson_malloc0 (sizeof (dj_rows_t));
   rows->per = n < 16 ? 16 : n > 1024 ? 1024 : n;
   return rows;
}

void
dj_rows_free (dj_rows_t *rows)
{
   if (!rows) {
      return;
   }
   for (size_t i = 0; i < rows->nvblk; i++) {
      bson_free (rows->vblk[i]); /* views own nothing: their bytes are in bblk */
   }
   for (size_t i = 0; i < rows->nbblk; i++) {
      bson_free (rows->bblk[i]);
   }
   bson_free (rows->vblk);
   bson_free (rows->bblk);
   bson_free (rows);
}

uint8_t *
dj_rows_reserve (dj_rows_t *rows, size_t len)
{
   if ((size_t) (rows->end - rows->at) < len) {
      size_t size = len > ROWS_BYTES ? len : ROWS_BYTES;
      DJ_GROW (rows->bblk, rows->nbblk, rows->bcap, 4);
      rows->bblk[rows->nbblk++] = rows->at = bson_malloc (size); /* rows' (dj_rows_free) */
      rows->end = rows->at + size;
   }
   return rows->at;
}

bson_t *
dj_rows_commit (dj_rows_t *rows, size_t len)
{
   if (!rows->nvblk || rows->nview == rows->per) {
      DJ_GROW (rows->vblk, rows->nvblk, rows->vcap, 4);
      /* rows' (dj_rows_free) */
      rows->vblk[rows->nvblk++] = bson_aligned_alloc (BSON_ALIGNOF (bson_t), sizeof (bson_t) * rows->per);
      rows->nview = 0;
   }
   bson_t *view = &rows->vblk[rows->nvblk - 1][rows->nview++];
   if (!bson_init_static (view, rows->at, len)) {
      static const uint8_t empty[5] = {5, 0, 0, 0, 0};
      bson_init_static (view, empty, sizeof empty);
      return view;
   }
   rows->at += len;
   return view;
}

bson_t *
dj_rows_add (dj_rows_t *rows, const bson_t *doc)
{
   memcpy (dj_rows_reserve (rows, doc->len), bson_get_data (doc), doc->len);
   return dj_rows_commit (rows, doc->len);
}

bool
dj_rows_has (const dj_rows_t *rows, const bson_t *doc)
{
   uintptr_t d = (uintptr_t) doc;
   for (size_t i = 0; i < rows->nvblk; i++) {
      uintptr_t b = (uintptr_t) rows->vblk[i];
      if (d >= b && d < b + sizeof (bson_t) * rows->per) {
         return true;
      }
   }
   return false;
}

/* ---- stages ----------------------------------------------------------------- */


static void
stage_cleanup (stage_t *s)
{
   dj_matcher_destroy (s->match);
   dj_reshape_destroy (s->reshape);
   dj_expr_destroy (s->expr);
   for (int i = 0; i < s->naccs; i++) {
      dj_acc_cleanup (&s->accs[i]);
   }
   bson_free (s->accs);
   dj_sort_destroy (s->sort);
   bson_free (s->str);
   bson_free (s->str2);
   dj_agg_geonear_cleanup (s);
   dj_path_cleanup (&s->path);
   bson_free (s->local);
   bson_free (s->foreign);
   bson_free (s->unwind_index);
   dj_reshape_destroy (s->project);
   for (int i = 0; i < s->nlet; i++) {
      dj_expr_destroy (s->let_exprs[i]);
      bson_free (s->let_names[i]);
   }
   DJ_FREE (s->let_exprs, s->let_names, s->let_scope);
   dj_pipeline_destroy (s->sub);
   dj_agg_jcache_free (s->jcache);
   for (int i = 0; i < s->nfacets; i++) {
      bson_free (s->fnames[i]);
      dj_pipeline_destroy (s->facets[i]);
   }
   bson_free (s->fnames);
   bson_free (s->facets);
   bson_destroy (s->boundaries);
   if (s->has_default) {
      bson_value_destroy (&s->dflt);
   }
   dj_expr_destroy (s->partition);
   for (int i = 0; i < s->nwf; i++) {
      bson_free (s->wf[i].name);
      dj_expr_destroy (s->wf[i].expr);
      dj_accparam_free (s->wf[i].param);
      dj_expr_destroy (s->wf[i].expr2);
      if (s->wf[i].shift_default.value_type != BSON_TYPE_EOD) {
         bson_value_destroy (&s->wf[i].shift_default);
      }
   }
   bson_free (s->wf);
   for (int i = 0; i < s->non; i++) {
      bson_free (s->on[i]);
   }
   bson_free (s->on);
   dj_pipeline_destroy (s->merge_pipeline);
   if (s->spec) {
      s->spec_free (s->spec);
   }
}

void
dj_pipeline_destroy (dj_pipeline_t *p)
{
   if (!p) {
      return;
   }
   for (int i = 0; i < p->n; i++) {
      stage_cleanup (&p->stages[i]);
   }
   bson_free (p->stages);
   bson_free (p);
}

bool
dj_pipeline_writes (const dj_pipeline_t *p)
{
   return p->n && (p->stages[p->n - 1].kind == S_OUT || p->stages[p->n - 1].kind == S_MERGE);
}

bool
dj_pipeline_needs_collection (const dj_pipeline_t *p)
{
   return !(p->n && (p->stages[0].kind == S_DOCUMENTS || p->stages[0].kind == S_LISTSESSIONS ||
                     p->stages[0].kind == S_COLLSTATS));
}

/* ---- parsing -------------------------------------------------------------- */

/* {count: {$count: {}}}: the accumulators of $sortByCount, and of a
 * $bucket without `output`. */
void
dj_agg_count_only (stage_t *s)
{
   s->accs = bson_malloc0 (sizeof (dj_acc_t));
   s->accs[0].field = bson_strdup ("count");
   s->accs[0].op = dj_acc_op ("$count");
   s->naccs = 1;
}

static bool
parse_let (stage_t *s, const bson_value_t *let, const dj_vscope_t *scope, bson_error_t *error)
{
   bson_iter_t it;
   bson_iter_init_from_data (&it, let->value.v_doc.data, let->value.v_doc.data_len);
   while (bson_iter_next (&it)) {
      s->let_exprs = bson_realloc (s->let_exprs, sizeof (dj_expr_t *) * (size_t) (s->nlet + 1));
      s->let_names = bson_realloc (s->let_names, sizeof (char *) * (size_t) (s->nlet + 1));
      s->let_names[s->nlet] = bson_strdup (bson_iter_key (&it));
      s->let_exprs[s->nlet] = dj_expr_parse (bson_iter_value (&it), scope, error);
      s->nlet++;
      if (!s->let_exprs[s->nlet - 1]) {
         return false;
      }
   }
   s->let_scope = bson_malloc (sizeof (dj_vscope_t) * (size_t) (s->nlet ? s->nlet : 1));
   return true;
}

/* The scope a sub-pipeline sees: the outer scope plus this stage's let names. */
static const dj_vscope_t *
let_chain (stage_t *s, const dj_vscope_t *scope)
{
   const dj_vscope_t *up = scope;
   for (int i = 0; i < s->nlet; i++) {
      s->let_scope[i].name = s->let_names[i];
      s->let_scope[i].up = up;
      up = &s->let_scope[i];
   }
   return up;
}

static bool
sub_pipeline (const bson_value_t *v, const dj_vscope_t *scope, dj_pipeline_t **out, const char *stage, bson_error_t *error)
{
   if (v->value_type != BSON_TYPE_ARRAY) {
      return dj_err (error, DJ_TypeMismatch, "%s: 'pipeline' must be an array", stage);
   }
   bson_t arr;
   bson_init_static (&arr, v->value.v_doc.data, v->value.v_doc.data_len);
   *out = dj_pipeline_new (&arr, scope, error);
   return *out != NULL;
}

static bool
parse_window_bound (const bson_value_t *v, bool *unbounded, bool *current, double *num)
{
   *unbounded = *current = false;
   if (v->value_type == BSON_TYPE_UTF8) {
      *unbounded = !strcmp (v->value.v_utf8.str, "unbounded");
      *current = !strcmp (v->value.v_utf8.str, "current");
      return *unbounded || *current;
   }
   if (dj_value_is_number (v)) {
      *num = dj_value_as_double (v);
      return true;
   }
   return false;
}

/* The pieces stages' specifications share. Each replaces what a repeated
 * field parsed before ({groupBy: a, groupBy: b}: the last wins). */

/* *slot: v parsed as an expression. */
static bool
set_expr (dj_expr_t **slot, const bson_value_t *v, const dj_vscope_t *scope, bson_error_t *error)
{
   dj_expr_destroy (*slot);
   *slot = dj_expr_parse (v, scope, error);
   return *slot != NULL;
}

/* s->sort: the sort specification in the document value v. */
static bool
set_sort (stage_t *s, const bson_value_t *v, bson_error_t *error)
{
   bson_t doc;
   bson_init_static (&doc, v->value.v_doc.data, v->value.v_doc.data_len);
   dj_sort_destroy (s->sort);
   s->sort = dj_sort_new (&doc, error);
   return s->sort != NULL;
}

/* One more accumulator on s: the output field `name` with v, {$op: expression}. */
bool
dj_agg_add_acc (stage_t *s, const char *name, const bson_value_t *v, const dj_vscope_t *scope, bson_error_t *error)
{
   s->accs = bson_realloc (s->accs, sizeof (dj_acc_t) * (size_t) (s->naccs + 1));
   s->naccs++;
   return dj_acc_parse (&s->accs[s->naccs - 1], name, v, scope, error);
}

static bool
parse_stage (stage_t *s, const char *name, const bson_value_t *v, const dj_vscope_t *scope, bool first, bson_error_t *error)
{
   bson_t doc;
   bson_iter_t it;

   if (!strcmp (name, "$geoNear")) {
      if (!first) {
         return dj_err (error, 40602, "$geoNear is only valid as the first stage in a pipeline.");
      }
      s->kind = S_GEONEAR;
      return dj_agg_geonear_parse (s, v, scope, error);
   }
   if (!strcmp (name, "$match")) {
      s->kind = S_MATCH;
      if (v->value_type != BSON_TYPE_DOCUMENT) {
         return dj_err (error, 15959, "the match filter must be an expression in an object");
      }
      bson_init_static (&doc, v->value.v_doc.data, v->value.v_doc.data_len);
      s->match = dj_matcher_new_scoped (&doc, scope, error);
      if (s->match && !first && dj_matcher_text (s->match)) {
         /* https://www.mongodb.com/docs/manual/reference/operator/aggregation/match/#restrictions */
         return dj_err (error, 17313, "$match with $text is only allowed as the first pipeline stage");
      }
      return s->match != NULL;
   }
   if (dj_reshape_is_stage (name)) {
      s->kind = S_RESHAPE;
      s->reshape = dj_reshape_new (name, v, scope, error);
      return s->reshape != NULL;
   }
   if (!strcmp (name, "$group")) {
      s->kind = S_GROUP;
      if (v->value_type != BSON_TYPE_DOCUMENT) {
         return dj_err (error, 15947, "a group's fields must be specified in an object");
      }
      bool have_id = false;
      bson_iter_init_from_data (&it, v->value.v_doc.data, v->value.v_doc.data_len);
      while (bson_iter_next (&it)) {
         const char *k = bson_iter_key (&it);
         if (!strcmp (k, "_id")) {
            if (have_id) {
               return dj_err (error, 15948, "a group's _id may only be specified once");
            }
            have_id = true;
            if (!set_expr (&s->expr, bson_iter_value (&it), scope, error)) {
               return false;
            }
            continue;
         }
         if (strchr (k, '.')) {
            return dj_err (error, 40235, "The field name '%s' cannot contain '.'", k);
         }
         if (!dj_agg_add_acc (s, k, bson_iter_value (&it), scope, error)) {
            return false;
         }
      }
      if (!have_id) {
         return dj_err (error, 15955, "a group specification must include an _id");
      }
      return true;
   }
   if (!strcmp (name, "$sort")) {
      s->kind = S_SORT;
      if (v->value_type != BSON_TYPE_DOCUMENT || v->value.v_doc.data_len == 5) {
         return dj_err (error, 15976, "$sort stage must have at least one sort key");
      }
      return set_sort (s, v, error);
   }
   if (!strcmp (name, "$skip") || !strcmp (name, "$limit") || !strcmp (name, "$sample")) {
      s->kind = name[2] == 'k' ? S_SKIP : name[2] == 'i' ? S_LIMIT : S_SAMPLE;
      const bson_value_t *nv = v;
      bson_value_t size;
      if (s->kind == S_SAMPLE) {
         if (v->value_type != BSON_TYPE_DOCUMENT || !dj_value_get_field (v, "size", &size)) {
            return dj_err (error, 28745, "$sample stage must specify a size");
         }
         nv = &size;
      }
      if (!dj_value_is_number (nv) || !dj_value_as_int64_exact (nv, &s->n)) {
         return dj_err (error, 15957, "invalid argument to %s stage: Cannot represent as a 64-bit integer", name);
      }
      if (s->n < 0 || (s->kind == S_LIMIT && s->n == 0)) {
         return dj_err (error, 15958, "invalid argument to %s stage: %s", name, s->kind == S_LIMIT ? "the limit must be positive" : "Expected a non-negative number");
      }
      return true;
   }
   if (!strcmp (name, "$count")) {
      s->kind = S_COUNT;
      if (v->value_type != BSON_TYPE_UTF8 || v->value.v_utf8.len == 0) {
         return dj_err (error, 40156, "the count field must be a non-empty string");
      }
      if (v->value.v_utf8.str[0] == '$' || strchr (v->value.v_utf8.str, '.')) {
         return dj_err (error, 40158, "the count field cannot be a $-prefixed path or contain '.'");
      }
      s->str = bson_strdup (v->value.v_utf8.str);
      return true;
   }
   if (!strcmp (name, "$unwind")) {
      s->kind = S_UNWIND;
      const char *path = NULL;
      if (v->value_type == BSON_TYPE_UTF8) {
         path = v->value.v_utf8.str;
      } else if (v->value_type == BSON_TYPE_DOCUMENT) {
         bson_iter_init_from_data (&it, v->value.v_doc.data, v->value.v_doc.data_len);
         while (bson_iter_next (&it)) {
            const char *k = bson_iter_key (&it);
            if (!strcmp (k, "path") && BSON_ITER_HOLDS_UTF8 (&it)) {
               path = bson_iter_utf8 (&it, NULL);
            } else if (!strcmp (k, "includeArrayIndex") && BSON_ITER_HOLDS_UTF8 (&it)) {
               bson_free (s->str2);
               s->str2 = bson_strdup (bson_iter_utf8 (&it, NULL));
               if (s->str2[0] == '$' || !s->str2[0]) {
                  return dj_err (error, 28822, "includeArrayIndex option to $unwind stage should not be prefixed with a '$': %s", s->str2);
               }
            } else if (!strcmp (k, "preserveNullAndEmptyArrays") && BSON_ITER_HOLDS_BOOL (&it)) {
               s->flag = bson_iter_bool (&it);
            } else {
               return dj_err (error, 28811, "unrecognized option to $unwind stage: %s", k);
            }
         }
      } else {
         return dj_err (error, 15981, "expected either a string or an object as specification for $unwind stage, got %s",
                        dj_type_name (v->value_type));
      }
      if (!path) {
         return dj_err (error, 28812, "no path specified to $unwind stage");
      }
      if (path[0] != '$' || !path[1]) {
         return dj_err (error, 28818, "path option to $unwind stage should be prefixed with a '$': %s", path);
      }
      s->str = bson_strdup (path + 1);
      return dj_path_init (&s->path, s->str, strlen (s->str), error);
   }
   if (!strcmp (name, "$lookup")) {
      s->kind = S_LOOKUP;
      s->jcache = dj_agg_jcache_new ();
      /* copies: bson_iter_value() storage is reused by the next call */
      bson_value_t pipe_v, let_v;
      const bson_value_t *pipe = NULL, *let = NULL;
      if (v->value_type != BSON_TYPE_DOCUMENT) {
         return dj_err (error, 40319, "the $lookup stage specification must be an object");
      }
      bson_iter_init_from_data (&it, v->value.v_doc.data, v->value.v_doc.data_len);
      while (bson_iter_next (&it)) {
         const char *k = bson_iter_key (&it);
         if (!strcmp (k, "from") || !strcmp (k, "as") || !strcmp (k, "localField") || !strcmp (k, "foreignField")) {
            if (!strcmp (k, "from") && BSON_ITER_HOLDS_DOCUMENT (&it)) {
               return dj_err (error, DJ_NotImplemented, "$lookup from another database is not supported by the embedded engine");
            }
            if (!BSON_ITER_HOLDS_UTF8 (&it)) {
               return dj_err (error, 4570, "$lookup argument '%s' must be a string", k);
            }
            char *val = bson_strdup (bson_iter_utf8 (&it, NULL));
            char **slot = !strcmp (k, "from") ? &s->str2 : !strcmp (k, "as") ? &s->str : !strcmp (k, "localField") ? &s->local : &s->foreign;
            bson_free (*slot);
            *slot = val;
         } else if (!strcmp (k, "pipeline")) {
            pipe_v = *bson_iter_value (&it);
            pipe = &pipe_v;
         } else if (!strcmp (k, "let")) {
            if (!BSON_ITER_HOLDS_DOCUMENT (&it)) {
               return dj_err (error, DJ_FailedToParse, "$lookup argument 'let' must be an object");
            }
            let_v = *bson_iter_value (&it);
            let = &let_v;
         } else {
            return dj_err (error, DJ_FailedToParse, "unknown argument to $lookup: %s", k);
         }
      }
      if (!s->str) {
         return dj_err (error, DJ_FailedToParse, "must specify 'as' field for a $lookup");
      }
      if ((s->local != NULL) != (s->foreign != NULL)) {
         return dj_err (error, DJ_FailedToParse, "$lookup requires both or neither of 'localField' and 'foreignField' to be specified");
      }
      if (!pipe && !s->local) {
         return dj_err (error, DJ_FailedToParse, "$lookup requires either 'pipeline' or both 'localField' and 'foreignField' to be specified");
      }
      if (!s->str2 && !pipe) {
         return dj_err (error, DJ_FailedToParse, "must specify 'from' field for a $lookup");
      }
      if (let && !parse_let (s, let, scope, error)) {
         return false;
      }
      if (pipe) {
         s->let_scope = s->let_scope ? s->let_scope : bson_malloc (sizeof (dj_vscope_t));
         if (!sub_pipeline (pipe, let_chain (s, scope), &s->sub, "$lookup", error)) {
            return false;
         }
         if (!s->str2 && dj_pipeline_needs_collection (s->sub)) {
            return dj_err (error, DJ_FailedToParse, "must specify 'from' field for a $lookup");
         }
      }
      return true;
   }
   if (!strcmp (name, "$facet")) {
      s->kind = S_FACET;
      if (v->value_type != BSON_TYPE_DOCUMENT || v->value.v_doc.data_len == 5) {
         return dj_err (error, 40169, "the $facet specification must be a non-empty object");
      }
      bson_iter_init_from_data (&it, v->value.v_doc.data, v->value.v_doc.data_len);
      while (bson_iter_next (&it)) {
         s->fnames = bson_realloc (s->fnames, sizeof (char *) * (size_t) (s->nfacets + 1));
         s->facets = bson_realloc (s->facets, sizeof (dj_pipeline_t *) * (size_t) (s->nfacets + 1));
         s->fnames[s->nfacets] = bson_strdup (bson_iter_key (&it));
         s->facets[s->nfacets] = NULL;
         s->nfacets++;
         if (!sub_pipeline (bson_iter_value (&it), scope, &s->facets[s->nfacets - 1], "$facet", error)) {
            return false;
         }
         for (int i = 0; i < s->facets[s->nfacets - 1]->n; i++) {
            skind_t k = s->facets[s->nfacets - 1]->stages[i].kind;
            if (k == S_OUT || k == S_MERGE || k == S_FACET) {
               return dj_err (error, 40600, "%s is not allowed to be used within a $facet stage", k == S_FACET ? "$facet" : k == S_OUT ? "$out" : "$merge");
            }
         }
      }
      return true;
   }
   if (!strcmp (name, "$unionWith")) {
      s->kind = S_UNIONWITH;
      if (v->value_type == BSON_TYPE_UTF8) {
         s->str2 = bson_strdup (v->value.v_utf8.str);
         return true;
      }
      if (v->value_type != BSON_TYPE_DOCUMENT) {
         return dj_err (error, 40606, "the $unionWith stage specification must be an object or string");
      }
      bson_iter_init_from_data (&it, v->value.v_doc.data, v->value.v_doc.data_len);
      while (bson_iter_next (&it)) {
         if (!strcmp (bson_iter_key (&it), "coll") && BSON_ITER_HOLDS_UTF8 (&it)) {
            bson_free (s->str2);
            s->str2 = bson_strdup (bson_iter_utf8 (&it, NULL));
         } else if (!strcmp (bson_iter_key (&it), "pipeline")) {
            dj_pipeline_destroy (s->sub);
            s->sub = NULL;
            if (!sub_pipeline (bson_iter_value (&it), scope, &s->sub, "$unionWith", error)) {
               return false;
            }
         } else {
            return dj_err (error, 40415, "BSON field '$unionWith.%s' is an unknown field.", bson_iter_key (&it));
         }
      }
      if (!s->str2 && (!s->sub || dj_pipeline_needs_collection (s->sub))) {
         return dj_err (error, 40415, "$unionWith requires 'coll' unless its pipeline starts with $documents");
      }
      return true;
   }
   if (!strcmp (name, "$documents")) {
      s->kind = S_DOCUMENTS;
      if (!first) {
         return dj_err (error, 40602, "$documents is only valid as the first stage in a pipeline");
      }
      s->expr = dj_expr_parse (v, scope, error);
      return s->expr != NULL;
   }
   if (!strcmp (name, "$collStats")) {
      /* https://www.mongodb.com/docs/manual/reference/operator/aggregation/collStats/
       * storageStats and count, from the collection's records and indexes;
       * the engine keeps no latency or query-execution counters, so those
       * are refused rather than answered with zeros */
      s->kind = S_COLLSTATS;
      if (!first) {
         return dj_err (error, 40602, "$collStats is only valid as the first stage in a pipeline");
      }
      if (v->value_type != BSON_TYPE_DOCUMENT) {
         return dj_err (error, 5447000, "$collStats must take a nested object but found a %s",
                        dj_type_name (v->value_type));
      }
      bson_iter_init_from_data (&it, v->value.v_doc.data, v->value.v_doc.data_len);
      while (bson_iter_next (&it)) {
         const char *k = bson_iter_key (&it);
         if (!strcmp (k, "storageStats")) {
            /* n: the scale sizes are divided by (storageStats: {scale}), 0 for none asked */
            bson_iter_t sc;
            s->n = 1;
            if (BSON_ITER_HOLDS_DOCUMENT (&it) && bson_iter_recurse (&it, &sc) && bson_iter_find (&sc, "scale")) {
               if (!BSON_ITER_HOLDS_NUMBER (&sc) || bson_iter_as_double (&sc) < 1) {
                  return dj_err (error, 51024, "BSON field 'scale' value must be >= 1");
               }
               s->n = (int64_t) bson_iter_as_double (&sc); /* the integer part, as mongod */
            }
         } else if (!strcmp (k, "count")) {
            s->flag = true;
         } else if (!strcmp (k, "latencyStats") || !strcmp (k, "queryExecStats")) {
            return dj_err (error, DJ_NotImplemented, "$collStats %s: the embedded engine keeps no such counters", k);
         } else {
            return dj_err (error, 40415, "BSON field '$collStats.%s' is an unknown field.", k);
         }
      }
      return true;
   }
   if (!strcmp (name, "$listLocalSessions")) {
      /* https://www.mongodb.com/docs/manual/reference/operator/aggregation/listLocalSessions/
       * The sessions a server holds in memory. The embedded engine itself
       * keeps none (the wire server, which speaks sessions, will list its own). */
      s->kind = S_LISTSESSIONS;
      if (!first) {
         return dj_err (error, 40602, "$listLocalSessions is only valid as the first stage in a pipeline");
      }
      if (v->value_type != BSON_TYPE_DOCUMENT) {
         return dj_err (error, DJ_TypeMismatch, "$listLocalSessions options must be specified in an object");
      }
      bson_iter_init_from_data (&it, v->value.v_doc.data, v->value.v_doc.data_len);
      while (bson_iter_next (&it)) {
         if (strcmp (bson_iter_key (&it), "allUsers") && strcmp (bson_iter_key (&it), "users")) {
            return dj_err (error, 40415, "BSON field '$listLocalSessions.%s' is an unknown field.", bson_iter_key (&it));
         }
      }
      return true;
   }
   if (!strcmp (name, "$sortByCount")) {
      s->kind = S_SORTBYCOUNT;
      if (v->value_type == BSON_TYPE_DOCUMENT) {
         bson_iter_init_from_data (&it, v->value.v_doc.data, v->value.v_doc.data_len);
         if (!bson_iter_next (&it) || bson_iter_key (&it)[0] != '$') {
            return dj_err (error, 40147, "the sortByCount field must be defined as a $-prefixed path or an expression");
         }
      } else if (v->value_type != BSON_TYPE_UTF8 || v->value.v_utf8.str[0] != '$') {
         return dj_err (error, 40148, "the sortByCount field must be defined as a $-prefixed path or an expression");
      }
      /* $group {_id: <expression>, count: {$sum: 1}} then $sort {count: -1}, as the manual defines it:
       * https://www.mongodb.com/docs/manual/reference/operator/aggregation/sortByCount/ */
      dj_agg_count_only (s);
      bson_t spec = BSON_INITIALIZER;
      BSON_APPEND_INT32 (&spec, "count", -1);
      s->sort = dj_sort_new (&spec, error);
      bson_destroy (&spec);
      s->expr = dj_expr_parse (v, scope, error);
      return s->expr != NULL;
   }
   if (!strcmp (name, "$bucket")) {
      s->kind = S_BUCKET;
      if (v->value_type != BSON_TYPE_DOCUMENT) {
         return dj_err (error, 40201, "Argument to $bucket stage must be an object");
      }
      bson_iter_init_from_data (&it, v->value.v_doc.data, v->value.v_doc.data_len);
      while (bson_iter_next (&it)) {
         const char *k = bson_iter_key (&it);
         if (!strcmp (k, "groupBy")) {
            if (!set_expr (&s->expr, bson_iter_value (&it), scope, error)) {
               return false;
            }
         } else if (!strcmp (k, "boundaries")) {
            if (!BSON_ITER_HOLDS_ARRAY (&it)) {
               return dj_err (error, 40200, "The $bucket 'boundaries' field must be an array");
            }
            const uint8_t *d;
            uint32_t l;
            bson_iter_array (&it, &l, &d);
            bson_destroy (s->boundaries);
            s->boundaries = bson_new_from_data (d, l);
         } else if (!strcmp (k, "default")) {
            if (s->has_default) {
               bson_value_destroy (&s->dflt);
            }
            bson_value_copy (bson_iter_value (&it), &s->dflt);
            s->has_default = true;
         } else if (!strcmp (k, "output")) {
            bson_iter_t oi;
            if (!BSON_ITER_HOLDS_DOCUMENT (&it)) {
               return dj_err (error, 40196, "The $bucket 'output' field must be an object");
            }
            bson_iter_recurse (&it, &oi);
            while (bson_iter_next (&oi)) {
               if (!dj_agg_add_acc (s, bson_iter_key (&oi), bson_iter_value (&oi), scope, error)) {
                  return false;
               }
            }
         } else {
            return dj_err (error, 40197, "Unrecognized option to $bucket: %s.", k);
         }
      }
      if (!s->expr || !s->boundaries) {
         return dj_err (error, 40198, "$bucket requires 'groupBy' and 'boundaries' to be specified.");
      }
      /* boundaries: at least two, ascending, one type bracket */
      bson_value_t prev = {0};
      int nb = 0;
      bson_iter_init (&it, s->boundaries);
      while (bson_iter_next (&it)) {
         const bson_value_t *b = bson_iter_value (&it);
         if (nb && (dj_type_rank (b->value_type) != dj_type_rank (prev.value_type))) {
            return dj_err (error, 40193, "All values in the the 'boundaries' option to $bucket must have the same type.");
         }
         if (nb && dj_value_cmp (&prev, b) >= 0) {
            return dj_err (error, 40194, "The 'boundaries' option to $bucket must be sorted in ascending order");
         }
         prev = *b;
         nb++;
      }
      if (nb < 2) {
         return dj_err (error, 40192, "The $bucket 'boundaries' field must have at least 2 values");
      }
      if (!s->naccs) {
         dj_agg_count_only (s);
      }
      return true;
   }
   if (!strcmp (name, "$setWindowFields")) {
      s->kind = S_SETWINDOWFIELDS;
      if (v->value_type != BSON_TYPE_DOCUMENT) {
         return dj_err (error, DJ_FailedToParse, "$setWindowFields requires an object");
      }
      bson_iter_init_from_data (&it, v->value.v_doc.data, v->value.v_doc.data_len);
      while (bson_iter_next (&it)) {
         const char *k = bson_iter_key (&it);
         if (!strcmp (k, "partitionBy")) {
            if (!set_expr (&s->partition, bson_iter_value (&it), scope, error)) {
               return false;
            }
         } else if (!strcmp (k, "sortBy")) {
            if (!BSON_ITER_HOLDS_DOCUMENT (&it)) {
               return dj_err (error, DJ_FailedToParse, "sortBy must be an object");
            }
            if (!set_sort (s, bson_iter_value (&it), error)) {
               return false;
            }
         } else if (!strcmp (k, "output")) {
            bson_iter_t oi;
            if (!BSON_ITER_HOLDS_DOCUMENT (&it)) {
               return dj_err (error, DJ_FailedToParse, "output must be an object");
            }
            bson_iter_recurse (&it, &oi);
            while (bson_iter_next (&oi)) {
               s->wf = bson_realloc (s->wf, sizeof (wfield_t) * (size_t) (s->nwf + 1));
               wfield_t *w = &s->wf[s->nwf++];
               memset (w, 0, sizeof *w);
               w->name = bson_strdup (bson_iter_key (&oi));
               w->lo_unbounded = w->hi_unbounded = true;
               w->op = dj_acc_op ("$sum"); /* an output field without a function: $sum of nothing, 0 */
               bson_iter_t fi;
               if (!BSON_ITER_HOLDS_DOCUMENT (&oi)) {
                  return dj_err (error, DJ_FailedToParse, "$setWindowFields output field must be an object");
               }
               bson_iter_recurse (&oi, &fi);
               while (bson_iter_next (&fi)) {
                  const char *fk = bson_iter_key (&fi);
                  const bson_value_t *fv = bson_iter_value (&fi);
                  if (!strcmp (fk, "window")) {
                     bson_iter_t wi;
                     w->has_window = true;
                     /* not a document: nothing to recurse into (the iterator would be garbage) */
                     if (!BSON_ITER_HOLDS_DOCUMENT (&fi) || !bson_iter_recurse (&fi, &wi)) {
                        return dj_err (error, DJ_FailedToParse, "'window' field must be an object");
                     }
                     while (bson_iter_next (&wi)) {
                        const char *wk = bson_iter_key (&wi);
                        if (!strcmp (wk, "documents") || !strcmp (wk, "range")) {
                           bson_iter_t bi;
                           w->range = wk[0] == 'r';
                           if (!BSON_ITER_HOLDS_ARRAY (&wi) || !bson_iter_recurse (&wi, &bi) || !bson_iter_next (&bi) ||
                               !parse_window_bound (bson_iter_value (&bi), &w->lo_unbounded, &w->lo_current, &w->lo) ||
                               !bson_iter_next (&bi) ||
                               !parse_window_bound (bson_iter_value (&bi), &w->hi_unbounded, &w->hi_current, &w->hi)) {
                              return dj_err (error, DJ_FailedToParse, "Window bounds must be a 2-element array");
                           }
                        } else if (!strcmp (wk, "unit")) {
                           if (!BSON_ITER_HOLDS_UTF8 (&wi) || !dj_agg_time_unit (bson_iter_utf8 (&wi, NULL), &w->range_unit)) {
                              return dj_err (error, DJ_FailedToParse, "unknown time unit value: %s",
                                             BSON_ITER_HOLDS_UTF8 (&wi) ? bson_iter_utf8 (&wi, NULL) : dj_type_name (bson_iter_type (&wi)));
                           }
                           w->has_range_unit = true;
                        } else {
                           return dj_err (error, DJ_FailedToParse, "'window' field that is not 'documents', 'range' or 'unit': %s", wk);
                        }
                     }
                     continue;
                  }
                  if (w->rank || w->expr) {
                     return dj_err (error, DJ_FailedToParse, "Expected exactly one window function in output field '%s'", w->name);
                  }
                  if (!strcmp (fk, "$rank") || !strcmp (fk, "$denseRank") || !strcmp (fk, "$documentNumber")) {
                     w->rank = fk[1] == 'r' ? 1 : fk[1] == 'd' && fk[2] == 'e' ? 2 : 3;
                     continue;
                  }
                  if (!strcmp (fk, "$shift")) {
                     bson_value_t o, by, df;
                     w->rank = 4;
                     if (fv->value_type != BSON_TYPE_DOCUMENT || !dj_value_get_field (fv, "output", &o) ||
                         !dj_value_get_field (fv, "by", &by) || !dj_value_as_int64_exact (&by, &w->shift_by)) {
                        return dj_err (error, DJ_FailedToParse, "$shift requires 'output' and an integer 'by'");
                     }
                     w->expr = dj_expr_parse (&o, scope, error);
                     if (!w->expr) {
                        return false;
                     }
                     if (dj_value_get_field (fv, "default", &df)) {
                        bson_value_copy (&df, &w->shift_default);
                     }
                     continue;
                  }
                  bool handled;
                  if (!dj_agg_window_fn_parse (w, fk, fv, scope, &handled, error)) {
                     return false;
                  }
                  if (handled) {
                     continue;
                  }
                  dj_acc_t a;
                  bson_t one = BSON_INITIALIZER;
                  BSON_APPEND_VALUE (&one, fk, fv);
                  bson_value_t ov;
                  dj_value_from_doc (&one, false, &ov);
                  bool ok = dj_acc_parse (&a, w->name, &ov, scope, error);
                  bson_destroy (&one);
                  if (!ok) {
                     dj_acc_cleanup (&a);
                     return false;
                  }
                  w->op = a.op;
                  w->expr = a.expr;   /* moved */
                  w->param = a.param; /* moved */
                  bson_free (a.field);
               }
            }
         } else {
            return dj_err (error, DJ_FailedToParse, "$setWindowFields got unexpected argument: %s", k);
         }
      }
      for (int i = 0; i < s->nwf; i++) {
         if ((s->wf[i].rank >= 1 && s->wf[i].rank <= 4) && !s->sort) {
            return dj_err (error, 5371601, "%s requires a sortBy", s->wf[i].rank == 4 ? "$shift" : "$rank");
         }
         if (!dj_agg_window_check (s, &s->wf[i], error)) {
            return false;
         }
      }
      return true;
   }
   if (!strcmp (name, "$out")) {
      s->kind = S_OUT;
      if (v->value_type == BSON_TYPE_UTF8) {
         s->str = bson_strdup (v->value.v_utf8.str);
      } else if (v->value_type == BSON_TYPE_DOCUMENT) {
         bson_value_t dbv, cv;
         if (!dj_value_get_field (v, "coll", &cv) || cv.value_type != BSON_TYPE_UTF8) {
            return dj_err (error, 16994, "If an object is passed to $out it must have 'coll' field");
         }
         s->str = bson_strdup (cv.value.v_utf8.str);
         if (dj_value_get_field (v, "db", &dbv) && dbv.value_type == BSON_TYPE_UTF8) {
            s->str2 = bson_strdup (dbv.value.v_utf8.str);
         }
      } else {
         return dj_err (error, 16990, "$out only supports a string or object argument, not %s", dj_type_name (v->value_type));
      }
      return true;
   }
   if (!strcmp (name, "$merge")) {
      s->kind = S_MERGE;
      bson_value_t iv;
      if (v->value_type == BSON_TYPE_UTF8) {
         s->str = bson_strdup (v->value.v_utf8.str);
         return true;
      }
      if (v->value_type != BSON_TYPE_DOCUMENT || !dj_value_get_field (v, "into", &iv)) {
         return dj_err (error, 40415, "BSON field '$merge.into' is missing but a required field");
      }
      if (iv.value_type == BSON_TYPE_UTF8) {
         s->str = bson_strdup (iv.value.v_utf8.str);
      } else if (iv.value_type == BSON_TYPE_DOCUMENT) {
         bson_value_t dbv, cv;
         if (!dj_value_get_field (&iv, "coll", &cv) || cv.value_type != BSON_TYPE_UTF8) {
            return dj_err (error, 51178, "$merge 'into' field must specify a 'coll'");
         }
         s->str = bson_strdup (cv.value.v_utf8.str);
         if (dj_value_get_field (&iv, "db", &dbv) && dbv.value_type == BSON_TYPE_UTF8) {
            s->str2 = bson_strdup (dbv.value.v_utf8.str);
         }
      } else {
         return dj_err (error, 51178, "$merge 'into' field must be either a string or an object");
      }
      bson_iter_init_from_data (&it, v->value.v_doc.data, v->value.v_doc.data_len);
      while (bson_iter_next (&it)) {
         const char *k = bson_iter_key (&it);
         if (!strcmp (k, "into")) {
            continue;
         }
         if (!strcmp (k, "on")) {
            if (BSON_ITER_HOLDS_UTF8 (&it)) {
               s->on = bson_malloc (sizeof (char *));
               s->on[0] = bson_strdup (bson_iter_utf8 (&it, NULL));
               s->non = 1;
            } else if (BSON_ITER_HOLDS_ARRAY (&it)) {
               bson_iter_t ai;
               bson_iter_recurse (&it, &ai);
               while (bson_iter_next (&ai)) {
                  if (!BSON_ITER_HOLDS_UTF8 (&ai)) {
                     return dj_err (error, 51134, "$merge 'on' array elements must be strings");
                  }
                  s->on = bson_realloc (s->on, sizeof (char *) * (size_t) (s->non + 1));
                  s->on[s->non++] = bson_strdup (bson_iter_utf8 (&ai, NULL));
               }
            } else {
               return dj_err (error, 51186, "$merge 'on' field must be either a string or an array of strings");
            }
         } else if (!strcmp (k, "whenMatched")) {
            if (BSON_ITER_HOLDS_ARRAY (&it)) {
               s->when_matched = 4;
               dj_pipeline_destroy (s->merge_pipeline);
               s->merge_pipeline = NULL;
               if (!sub_pipeline (bson_iter_value (&it), scope, &s->merge_pipeline, "$merge", error)) {
                  return false;
               }
            } else if (BSON_ITER_HOLDS_UTF8 (&it)) {
               const char *w = bson_iter_utf8 (&it, NULL);
               s->when_matched = !strcmp (w, "merge") ? 0 : !strcmp (w, "replace") ? 1 : !strcmp (w, "keepExisting") ? 2 : !strcmp (w, "fail") ? 3 : -1;
               if (s->when_matched < 0) {
                  return dj_err (error, DJ_BadValue, "Enumeration value '%s' for field 'whenMatched' is not a valid value.", w);
               }
            }
         } else if (!strcmp (k, "whenNotMatched")) {
            const char *w = BSON_ITER_HOLDS_UTF8 (&it) ? bson_iter_utf8 (&it, NULL) : "";
            s->when_not_matched = !strcmp (w, "insert") ? 0 : !strcmp (w, "discard") ? 1 : !strcmp (w, "fail") ? 2 : -1;
            if (s->when_not_matched < 0) {
               return dj_err (error, DJ_BadValue, "Enumeration value '%s' for field 'whenNotMatched' is not a valid value.", w);
            }
         } else if (!strcmp (k, "let")) {
            continue;
         } else {
            return dj_err (error, 40415, "BSON field '$merge.%s' is an unknown field.", k);
         }
      }
      return true;
   }
   if (!strcmp (name, "$redact")) {
      s->kind = S_REDACT;
      return dj_agg_parse_redact (s, v, scope, error);
   }
   if (!strcmp (name, "$bucketAuto")) {
      s->kind = S_BUCKETAUTO;
      return dj_agg_parse_bucket_auto (s, v, scope, error);
   }
   if (!strcmp (name, "$graphLookup")) {
      s->kind = S_GRAPHLOOKUP;
      return dj_agg_parse_graph_lookup (s, v, scope, error);
   }
   if (!strcmp (name, "$densify")) {
      s->kind = S_DENSIFY;
      return dj_agg_parse_densify (s, v, error);
   }
   if (!strcmp (name, "$fill")) {
      s->kind = S_FILL;
      return dj_agg_parse_fill (s, v, scope, error);
   }
   if (!strcmp (name, "$changeStream")) {
      /* (aggregate takes a leading one off before the rest is parsed: commands/changestream.c) */
      return dj_err (error, 40602, "$changeStream is only valid as the first stage in a pipeline.");
   }
   return dj_err (error, 40324, "Unrecognized pipeline stage name: '%s'", name);
}

dj_pipeline_t *
dj_pipeline_new (const bson_t *stages, const dj_vscope_t *scope, bson_error_t *error)
{
   bson_iter_t it;
   dj_pipeline_t *p = bson_malloc0 (sizeof *p);

   bson_iter_init (&it, stages);
   while (bson_iter_next (&it)) {
      const char *name = NULL;
      bson_value_t argv;
      const bson_value_t *arg = &argv;
      if (!dj_stage_split (&it, &name, &argv, error)) {
         goto fail;
      }
      p->stages = bson_realloc (p->stages, sizeof (stage_t) * (size_t) (p->n + 1));
      stage_t *s = &p->stages[p->n++];
      memset (s, 0, sizeof *s);
      if (!parse_stage (s, name, arg, scope, p->n == 1, error)) {
         goto fail;
      }
      if ((s->kind == S_OUT || s->kind == S_MERGE) && bson_iter_next (&it)) {
         dj_err (error, 40601, "%s can only be the final stage in the pipeline", name);
         goto fail;
      }
   }
   dj_agg_coalesce (p);
   return p;
fail:
   dj_pipeline_destroy (p);
   return NULL;
}

/* ---- a parsed pipeline run again ---------------------------------------------
 * What dj_pipeline_new builds depends on nothing but the stages' bytes and
 * the let scope it parses under (a collation applies when values are
 * compared, not when they are parsed), and the stages below are read only
 * by a run -- matchers, shapes and paths through const pointers -- but for
 * a $lookup's jcache, the hash join's foreign side of one run's snapshot.
 * Any other stage (a $group's accumulators, a $sort's sorter, a
 * sub-pipeline, $out/$merge...) keeps the pipeline from being kept. */
bool
dj_pipeline_keepable (const dj_pipeline_t *p)
{
   for (int i = 0; i < p->n; i++) {
      const stage_t *s = &p->stages[i];
      switch (s->kind) {
      case S_MATCH:
      case S_RESHAPE:
      case S_SKIP:
      case S_LIMIT:
      case S_UNWIND:
      case S_COUNT:
         break;
      case S_LOOKUP:
         if (s->sub || s->nlet) {
            return false;
         }
         break;
      default:
         return false;
      }
   }
   return true;
}

void
dj_pipeline_reset (dj_pipeline_t *p)
{
   for (int i = 0; i < p->n; i++) {
      stage_t *s = &p->stages[i];
      if (s->kind == S_LOOKUP) {
         dj_agg_jcache_free (s->jcache); /* (its built side to the join keep, as at destroy) */
         s->jcache = dj_agg_jcache_new ();
      }
   }
}

/* ---- running: helpers ------------------------------------------------------- */


void
dj_agg_eval_setup (rctx_t *r, dj_eval_t *ev, const bson_t *doc)
{
   dj_eval_init_vars (ev, r->arena, doc, r->run->vars, r->run->now_ms, r->error);
}

bool
dj_agg_check_memory (rctx_t *r, size_t bytes, const char *stage)
{
   /* $sort's limit, or $group's (for the stages that group) -- setParameter's */
   int which = !strcmp (stage, "$sort") ? DJ_PARAM_SORT_BYTES : DJ_PARAM_GROUP_BYTES;
   if ((int64_t) bytes > dj_engine_param (r->run->engine, which) && !r->run->allow_disk) {
      return dj_err (r->error, 292,
                     "Exceeded memory limit for %s, but didn't allow external spilling; pass allowDiskUse:true to opt in.",
                     stage);
   }
   return true;
}

/* out.name = [the documents], as $facet outputs each of its pipelines. */
static void
append_docs (bson_t *out, const char *name, const dj_docs_t *docs)
{
   bson_t arr;
   BSON_APPEND_ARRAY_BEGIN (out, name, &arr);
   for (size_t i = 0; i < docs->n; i++) {
      char kb[16];
      const char *key;
      bson_uint32_to_string ((uint32_t) i, &key, kb, sizeof kb);
      BSON_APPEND_DOCUMENT (&arr, key, docs->v[i]);
   }
   bson_append_array_end (out, &arr);
}

static bool
run_reshape (rctx_t *r, const stage_t *s, dj_docs_t *docs)
{
   for (size_t i = 0; i < docs->n; i++) {
      dj_eval_t ev;
      bson_t *out = bson_new ();
      dj_agg_eval_setup (r, &ev, docs->v[i]);
      bool ok = dj_reshape_apply (s->reshape, &ev, docs->v[i], out);
      dj_arena_reset (r->arena);
      if (!ok) {
         bson_destroy (out);
         return false;
      }
      bson_destroy (docs->v[i]);
      docs->v[i] = out;
   }
   return true;
}

/* ---- the stage loop ------------------------------------------------------------ */

static bool
run_stage (rctx_t *r, const dj_pipeline_t *p, int si, dj_docs_t *docs)
{
   const stage_t *s = &p->stages[si];
   const dj_prun_t *run = r->run;

   switch (s->kind) {
   case S_MATCH: {
      if (dj_matcher_text (s->match)) {
         /* only a first $match read from a collection is answered by its
          * text index ($facet, $lookup's pipeline, change streams: no) */
         return dj_err (r->error, 17313, "$match with $text is only allowed as the first pipeline stage");
      }
      size_t k = 0;
      for (size_t i = 0; i < docs->n; i++) {
         bson_error_t xe = {0};
         if (dj_matcher_match_ex (s->match, docs->v[i], NULL, run->vars, &xe)) {
            docs->v[k++] = docs->v[i];
         } else {
            bson_destroy (docs->v[i]);
            if (xe.code) {
               for (size_t j = i + 1; j < docs->n; j++) {
                  bson_destroy (docs->v[j]);
               }
               docs->n = k;
               *r->error = xe;
               return false;
            }
         }
      }
      docs->n = k;
      return true;
   }
   case S_RESHAPE: return run_reshape (r, s, docs);
   case S_GROUP: return dj_agg_run_group (r, s, docs);
   case S_SORT: {
      size_t bytes = 0;
      for (size_t i = 0; i < docs->n; i++) {
         bytes += docs->v[i]->len;
      }
      /* a $sort followed by $limit keeps only the top: the memory check counts what is kept */
      if (si + 1 < p->n && p->stages[si + 1].kind == S_LIMIT && docs->n) {
         bytes = bytes / docs->n * (size_t) (p->stages[si + 1].n < (int64_t) docs->n ? p->stages[si + 1].n : (int64_t) docs->n);
      }
      if (!dj_agg_check_memory (r, bytes, "$sort")) {
         return false;
      }
      if (si + 1 < p->n && p->stages[si + 1].kind == S_LIMIT) {
         dj_sort_docs_topk (s->sort, docs->v, docs->n, (size_t) p->stages[si + 1].n); /* the $limit then drops the rest */
      } else if ((int64_t) bytes > dj_engine_param (run->engine, DJ_PARAM_SORT_BYTES)) {
         /* allowDiskUse (else the check failed); the last stage may stream out */
         return dj_agg_sort_spill (r, s->sort, docs, si == p->n - 1 && run->tail && run->tail_of == p);
      } else {
         dj_sort_docs (s->sort, docs->v, docs->n);
      }
      return true;
   }
   case S_SKIP: {
      size_t k = (size_t) s->n < docs->n ? (size_t) s->n : docs->n;
      for (size_t i = 0; i < k; i++) {
         bson_destroy (docs->v[i]);
      }
      if (docs->n > k) {
         memmove (docs->v, docs->v + k, sizeof (bson_t *) * (docs->n - k));
      }
      docs->n -= k;
      return true;
   }
   case S_LIMIT:
      while (docs->n > (size_t) s->n) {
         bson_destroy (docs->v[--docs->n]);
      }
      return true;
   case S_COUNT: {
      size_t n = docs->n;
      dj_docs_clear (docs);
      if (n) {
         bson_t *d = bson_new ();
         BSON_APPEND_INT32 (d, s->str, (int32_t) n);
         dj_docs_push (docs, d);
      }
      return true;
   }
   case S_UNWIND: return dj_agg_run_unwind (r, s, docs);
   case S_LOOKUP: return dj_agg_run_lookup (r, s, docs);
   case S_FACET: {
      bson_t *out = bson_new ();
      bool ok = true;
      for (int f = 0; ok && f < s->nfacets; f++) {
         dj_docs_t copy = {0};
         for (size_t i = 0; i < docs->n; i++) {
            dj_docs_push (&copy, bson_copy (docs->v[i]));
         }
         ok = dj_agg_run_stages (s->facets[f], 0, run, &copy, r->error);
         if (ok) {
            append_docs (out, s->fnames[f], &copy);
         }
         dj_docs_clear (&copy);
      }
      if (!ok) {
         bson_destroy (out);
         return false;
      }
      if (out->len > DJ_MAX_BSON_SIZE) {
         bson_destroy (out);
         return dj_err (r->error, 4031700, "document constructed by $facet is larger than 16 MiB");
      }
      dj_docs_clear (docs);
      dj_docs_push (docs, out);
      return true;
   }
   case S_UNIONWITH: {
      dj_docs_t other = {0};
      bool ok = true;
      if (s->str2 && (!s->sub || dj_pipeline_needs_collection (s->sub))) {
         ok = dj_agg_read_collection (run, run->db, s->str2, NULL, NULL, &other, r->error);
      }
      if (ok && s->sub) {
         ok = dj_agg_run_stages (s->sub, 0, run, &other, r->error);
      }
      for (size_t i = 0; ok && i < other.n; i++) {
         dj_docs_push (docs, other.v[i]);
         other.v[i] = NULL;
      }
      if (ok) {
         other.n = 0;
      }
      dj_docs_clear (&other);
      return ok;
   }
   case S_DOCUMENTS: {
      dj_eval_t ev;
      bson_value_t v;
      dj_agg_eval_setup (r, &ev, NULL);
      if (!dj_expr_eval (s->expr, &ev, &v)) {
         return false;
      }
      if (v.value_type != BSON_TYPE_ARRAY) {
         return dj_err (r->error, 5858203, "an array is expected");
      }
      dj_docs_clear (docs);
      bson_iter_t it;
      bson_iter_init_from_data (&it, v.value.v_doc.data, v.value.v_doc.data_len);
      while (bson_iter_next (&it)) {
         const bson_value_t *e = bson_iter_value (&it);
         if (e->value_type != BSON_TYPE_DOCUMENT) {
            dj_arena_reset (r->arena);
            return dj_err (r->error, 5858202, "$documents expects an array of objects");
         }
         dj_docs_push (docs, bson_new_from_data (e->value.v_doc.data, e->value.v_doc.data_len));
      }
      dj_arena_reset (r->arena);
      return true;
   }
   case S_SORTBYCOUNT:
      if (!dj_agg_run_group (r, s, docs)) {
         return false;
      }
      dj_sort_docs (s->sort, docs->v, docs->n);
      return true;
   case S_BUCKET: return dj_agg_run_bucket (r, s, docs);
   case S_SAMPLE: {
      /* Fisher-Yates on the first `size` slots */
      size_t k = (size_t) s->n < docs->n ? (size_t) s->n : docs->n;
      for (size_t i = 0; i < k; i++) {
         size_t j = i + (size_t) random () % (docs->n - i);
         bson_t *t = docs->v[i];
         docs->v[i] = docs->v[j];
         docs->v[j] = t;
      }
      while (docs->n > k) {
         bson_destroy (docs->v[--docs->n]);
      }
      return true;
   }
   case S_SETWINDOWFIELDS: return dj_agg_run_window (r, s, docs);
   case S_LISTSESSIONS: dj_docs_clear (docs); return true;
   case S_COLLSTATS: /* made by dj_pipeline_run, which knows the collection */
   case S_GEONEAR: return true;
   case S_REDACT: return dj_agg_run_redact (r, s, docs);
   case S_BUCKETAUTO: return dj_agg_run_bucket_auto (r, s, docs);
   case S_GRAPHLOOKUP: return dj_agg_run_graph_lookup (r, s, docs);
   case S_DENSIFY: return dj_agg_run_densify (r, s, docs);
   case S_FILL: return dj_agg_run_fill (r, s, docs);
   case S_OUT: return dj_agg_run_out (r, s, docs);
   case S_MERGE: return dj_agg_run_merge (r, s, docs);
   }
   return dj_err (r->error, DJ_InternalError, "unknown stage");
}

/* Stages [from, to) over docs; skipped: when stage `to` is a $skip, how
 * many of the range's first outputs it will drop (the outputs before these
 * already took the rest of it). */
static bool
run_range (const dj_pipeline_t *p, int from, int to, const dj_prun_t *run, dj_docs_t *docs, size_t skipped,
           dj_rows_t *rows, const dj_rows_t *views, bson_error_t *error)
{
   rctx_t r = {.run = run, .arena = dj_arena_new (), .error = error, .rows = rows, .views = views};
   bool ok = true;
   for (int i = from; ok && i < to; i++) {
      int64_t spills = r.spills;
      r.dropped = 0;
      if (i + 1 < p->n && p->stages[i + 1].kind == S_SKIP) {
         r.dropped = i + 1 < to ? (size_t) p->stages[i + 1].n : skipped;
      }
      ok = run_stage (&r, p, i, docs);
      if (run->stats && run->stats->top == p) {
         run->stats->spills[i] += r.spills - spills;
      }
   }
   dj_arena_destroy (r.arena);
   if (!ok) {
      dj_docs_clear (docs);
   }
   return ok;
}

bool
dj_agg_run_range (const dj_pipeline_t *p, int from, int to, const dj_prun_t *run, dj_docs_t *docs, bson_error_t *error)
{
   return run_range (p, from, to, run, docs, 0, NULL, NULL, error);
}

/* ---- stopping at a $limit ----------------------------------------------------
 * Stages that take each document on its own, in order ($match, the shaping
 * stages, $lookup, $unwind), followed by [$skip] $limit, need only as many
 * input documents as it takes to produce skip + limit outputs: they run
 * over the input in growing chunks until they have, so a join with a
 * LIMIT (Django's select_related()[:20]) joins twenty documents, not the
 * collection. The outputs are the same, in the same order. */
static bool
streams_to_limit (const dj_pipeline_t *p, int from, int *end, size_t *needed)
{
   int i = from;
   while (i < p->n && (p->stages[i].kind == S_MATCH || p->stages[i].kind == S_RESHAPE ||
                       p->stages[i].kind == S_LOOKUP || p->stages[i].kind == S_UNWIND)) {
      i++;
   }
   *end = i;
   int64_t skip = 0;
   if (i < p->n && p->stages[i].kind == S_SKIP) {
      skip = p->stages[i++].n;
   }
   if (*end == from || i >= p->n || p->stages[i].kind != S_LIMIT || p->stages[i].n > INT64_MAX - skip) {
      return false;
   }
   *needed = (size_t) (skip + p->stages[i].n);
   return true;
}

/* The input of stages [from, end), handed to them chunk by chunk until
 * their outputs reach `needed`: 32 documents, then as many as the outputs
 * per input so far say the rest needs (twice as many while there is no
 * output yet) -- a join of one match per document takes the documents
 * the limit needs, not the next power of two. */
typedef struct {
   const dj_pipeline_t *p;
   int from, end;
   size_t needed, chunk;
   const dj_prun_t *run;
   size_t taken;       /* the input documents handed to the stages so far */
   dj_docs_t part;     /* the chunk being filled (owned) */
   dj_docs_t *out;     /* the outputs so far (the caller's) */
   bool ok;            /* false once a stage failed (error set) */
   bson_error_t *error;
   /* the scanned documents of the chunk, viewed by part's (owned; NULL
    * until the first): the stages read them, and the few they keep as
    * outputs are copied out at the chunk's end -- not one heap bson_t
    * per scanned document */
   dj_rows_t *scan;
   dj_rows_t *rows; /* the caller's, NULL: where the outputs may be made (rctx_t) */
} chunks_t;

/* Runs the stages over the chunk and moves their outputs to out: false to
 * stop (enough outputs, or a failure). */
static bool
chunk_flush (chunks_t *ch)
{
   ch->taken += ch->part.n;
   /* a $skip after the stages drops what the outputs so far leave of it */
   size_t skip = ch->end < ch->p->n && ch->p->stages[ch->end].kind == S_SKIP ? (size_t) ch->p->stages[ch->end].n : 0;
   size_t skipped = skip > ch->out->n ? skip - ch->out->n : 0;
   ch->ok = run_range (ch->p, ch->from, ch->end, ch->run, &ch->part, skipped, ch->rows, ch->scan, ch->error);
   for (size_t i = 0; ch->ok && i < ch->part.n; i++) {
      bson_t *d = ch->part.v[i]; /* moved */
      if (ch->scan && dj_rows_has (ch->scan, d)) {
         /* a scanned document kept as it is (a $match's): its view goes with the chunk */
         d = ch->rows ? dj_rows_add (ch->rows, d) : bson_copy (d);
      }
      dj_docs_push (ch->out, d);
   }
   bson_free (ch->part.v);
   memset (&ch->part, 0, sizeof ch->part);
   dj_rows_free (ch->scan);
   ch->scan = NULL;
   size_t have = ch->out->n;
   if (have && have < ch->needed && ch->taken <= SIZE_MAX / (ch->needed - have)) {
      ch->chunk = ((ch->needed - have) * ch->taken + have - 1) / have; /* rounded up */
   } else {
      ch->chunk = ch->chunk <= SIZE_MAX / 2 ? ch->chunk * 2 : SIZE_MAX;
   }
   return ch->ok && ch->out->n < ch->needed;
}

/* Takes doc into the chunk; false to stop. */
static bool
chunk_add (chunks_t *ch, bson_t *doc)
{
   if (!ch->part.cap) {
      dj_docs_reserve (&ch->part, ch->chunk);   /* the chunk's documents */
      dj_docs_reserve (ch->out, ch->needed); /* (once: the outputs the limit takes) */
   }
   dj_docs_push (&ch->part, doc);
   return ch->part.n < ch->chunk || chunk_flush (ch);
}

static bool
chunk_scan_fn (uint64_t rid, const bson_t *doc, int32_t pos, void *ctx)
{
   chunks_t *ch = ctx;
   (void) rid;
   (void) pos;
   if (!ch->scan) {
      ch->scan = dj_rows_new_for (ch->chunk); /* (the chunk's views in one block, as a rule) */
   }
   /* (doc is the scan's only until this returns: its bytes are copied) */
   return chunk_add (ch, dj_rows_add (ch->scan, doc));
}

/* The end of a chunked run: the last, partial chunk; false on a failure
 * (out emptied). */
static bool
chunks_end (chunks_t *ch)
{
   if (ch->ok && ch->part.n && ch->out->n < ch->needed) {
      chunk_flush (ch);
   }
   dj_docs_clear (&ch->part);
   dj_rows_free (ch->scan);
   ch->scan = NULL;
   if (!ch->ok) {
      dj_docs_clear (ch->out);
   }
   return ch->ok;
}

/* The stages from `end` (the $skip and $limit the chunks ran to, and any
 * after them) over the chunks' outputs in out, some of which may be views
 * of rows: those a stage past the $limit may take in are copied first
 * (the folded select list reuses its input document's bson_t, lookup.c) */
static bool
run_past_limit (const dj_pipeline_t *p, int end, const dj_prun_t *run, const dj_rows_t *rows, dj_docs_t *out,
                bson_error_t *error)
{
   int i = end;
   while (i < p->n && (p->stages[i].kind == S_SKIP || p->stages[i].kind == S_LIMIT)) {
      i++;
   }
   if (i < p->n) {
      dj_docs_own (out, rows);
   }
   return dj_agg_run_stages (p, end, run, out, error);
}

/* Documents already in memory (docs: replaced by the outputs). */
static bool
run_in_chunks (const dj_pipeline_t *p, int from, int end, size_t needed, const dj_prun_t *run, dj_rows_t *rows,
               dj_docs_t *docs, bson_error_t *error)
{
   dj_docs_t in = *docs; /* the input, handed out chunk by chunk */
   memset (docs, 0, sizeof *docs);
   chunks_t ch = {.p = p, .from = from, .end = end, .needed = needed, .chunk = 32, .run = run, .out = docs, .ok = true,
                  .error = error, .rows = rows};
   size_t pos = 0;
   while (pos < in.n && chunk_add (&ch, in.v[pos++])) {
   }
   dj_bsons_free (in.v, pos, in.n); /* from pos: never needed */
   return chunks_end (&ch);
}

bool
dj_agg_run_stages (const dj_pipeline_t *p, int from, const dj_prun_t *run, dj_docs_t *docs, bson_error_t *error)
{
   return dj_agg_run_range (p, from, p->n, run, docs, error);
}

bool
dj_pipeline_run_docs (const dj_pipeline_t *p, const dj_prun_t *run, dj_docs_t *docs, bson_error_t *error)
{
   return dj_agg_run_range (p, 0, p->n, run, docs, error);
}

/* ---- counting without documents ---------------------------------------------
 * A stage whose output depends only on how many documents reach it: $count,
 * a $group with a constant _id whose accumulators all count ({$sum: 1},
 * {$count: {}}), or a $facet of such stages alone -- what SQL's COUNT(*)
 * becomes. After the leading $match, such a stage is fed a number instead of
 * documents (dj_agg_count_collection), which an index may answer from its
 * keys alone. */
bool
dj_agg_counts_only (const stage_t *s)
{
   bson_value_t v;
   switch (s->kind) {
   case S_COUNT:
      return true;
   case S_GROUP:
      if (!s->expr || !dj_expr_is_const (s->expr, &v) || s->naccs == 0) {
         return false;
      }
      for (int i = 0; i < s->naccs; i++) {
         const dj_acc_t *a = &s->accs[i];
         bool count = a->op == dj_acc_op ("$count") ||
                      (a->op == dj_acc_op ("$sum") && a->expr && dj_expr_is_const (a->expr, &v) &&
                       v.value_type == BSON_TYPE_INT32 && v.value.v_int32 == 1);
         if (!count) {
            return false;
         }
      }
      return true;
   case S_FACET:
      for (int k = 0; k < s->nfacets; k++) {
         if (s->facets[k]->n != 1 || !dj_agg_counts_only (&s->facets[k]->stages[0])) {
            return false;
         }
      }
      return s->nfacets > 0;
   default:
      return false;
   }
}

/* What a counts_only stage outputs for n input documents. */
static void
count_output (const stage_t *s, int64_t n, dj_docs_t *out)
{
   bson_value_t v;
   if (s->kind == S_FACET) {
      bson_t *d = bson_new ();
      for (int k = 0; k < s->nfacets; k++) {
         dj_docs_t sub = {0};
         count_output (&s->facets[k]->stages[0], n, &sub);
         append_docs (d, s->fnames[k], &sub);
         dj_docs_clear (&sub);
      }
      dj_docs_push (out, d);
      return;
   }
   if (n == 0) {
      return; /* $count and $group output nothing for no input */
   }
   bson_t *d = bson_new ();
   if (s->kind == S_COUNT) {
      BSON_APPEND_INT32 (d, s->str, (int32_t) n); /* as run_stage's $count */
   } else {
      dj_expr_is_const (s->expr, &v);
      BSON_APPEND_VALUE (d, "_id", &v);
      for (int i = 0; i < s->naccs; i++) {
         dj_append_count (d, s->accs[i].field, n); /* a sum of int 1s, as $sum */
      }
   }
   dj_docs_push (out, d);
}

bool
dj_pipeline_run (const dj_pipeline_t *p, const dj_prun_t *run, const char *coll, dj_docs_t *out, bson_error_t *error)
{
   return dj_pipeline_run_rows (p, run, coll, NULL, out, error);
}

bool
dj_pipeline_run_rows (const dj_pipeline_t *p, const dj_prun_t *run, const char *coll, dj_rows_t *rows, dj_docs_t *out,
                      bson_error_t *error)
{
   int from = 0;
   dj_prun_t frun; /* run with a join filter (below): what `run` points to from there on */
   memset (out, 0, sizeof *out);
   if (coll && p->n && p->stages[0].kind == S_COLLSTATS) {
      bson_t *d = bson_new ();
      if (!dj_agg_coll_stats (run, coll, p->stages[0].n, p->stages[0].flag, d, error)) {
         bson_destroy (d);
         return false;
      }
      dj_docs_push (out, d);
      from = 1;
   }
   if (coll && p->n && p->stages[0].kind == S_SAMPLE) {
      bool used;
      if (!dj_agg_sample_collection (run, coll, p->stages[0].n, out, &used, error)) {
         dj_docs_clear (out);
         return false;
      }
      if (used) {
         return dj_agg_run_stages (p, 1, run, out, error);
      }
   }
   if (coll && dj_pipeline_needs_collection (p)) {
      if (p->n && p->stages[0].kind == S_GEONEAR) {
         return dj_agg_geonear_read (run, coll, &p->stages[0], out, error) && dj_agg_run_stages (p, 1, run, out, error);
      }
      /* a leading $match goes to the planner, which may use an index */
      const dj_matcher_t *m = NULL;
      if (p->n && p->stages[0].kind == S_MATCH) {
         m = p->stages[0].match;
         from = 1;
      }
      if (from < p->n && dj_agg_counts_only (&p->stages[from])) {
         int64_t n;
         if (!dj_agg_count_collection (run, run->db, coll, m, run->vars, &n, error)) {
            return false;
         }
         count_output (&p->stages[from], n, out);
         return dj_agg_run_stages (p, from + 1, run, out, error);
      }
      bool sorted; /* [$match] $sort into a cursor: the scan straight into the sorter (spill.c) */
      if (!dj_agg_scan_sorted_tail (run, p, from, coll, m, &sorted, error)) {
         return false;
      }
      if (sorted) {
         return true;
      }
      if (from + 1 < p->n && p->stages[from].kind == S_SORT && p->stages[from + 1].kind == S_LIMIT) {
         bool used; /* (topk.c) */
         if (!dj_agg_read_topk (run, coll, m, p->stages[from].sort, p->stages[from + 1].n, out, &used, error)) {
            dj_docs_clear (out);
            return false;
         }
         if (used) {
            return dj_agg_run_stages (p, from, run, out, error);
         }
      }
      if (m && from < p->n && dj_agg_join_filter (run, coll, m, &p->stages[from])) {
         /* the filter decided by the $lookup, which reads its field anyway (lookup.c) */
         frun = *run;
         frun.join_filter = m;
         frun.join_filter_stage = &p->stages[from];
         run = &frun;
         m = NULL;
      }
      int end;
      size_t needed;
      if (streams_to_limit (p, from, &end, &needed)) {
         /* straight from the scan: the documents past the limit are never read */
         chunks_t ch = {.p = p, .from = from, .end = end, .needed = needed, .chunk = 32, .run = run, .out = out, .ok = true,
                        .error = error, .rows = rows};
         ch.ok = dj_agg_scan_collection (run, run->db, coll, m, run->vars, chunk_scan_fn, &ch, error) && ch.ok;
         return chunks_end (&ch) && run_past_limit (p, end, run, rows, out, error);
      }
      if (!dj_agg_read_collection (run, run->db, coll, m, run->vars, out, error)) {
         dj_docs_clear (out);
         return false;
      }
   }
   int end;
   size_t needed;
   if (streams_to_limit (p, from, &end, &needed)) {
      if (!run_in_chunks (p, from, end, needed, run, rows, out, error)) {
         return false;
      }
      return run_past_limit (p, end, run, rows, out, error);
   }
   return dj_agg_run_stages (p, from, run, out, error);
}
