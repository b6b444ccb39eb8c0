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
 * Memory: $group, $sort and $bucket count the bytes they hold; over 100 MiB
 * without allowDiskUse they fail with MongoDB's error 292, as MongoDB does
 * (with allowDiskUse they keep going in memory -- we do not spill).
 */
#include "dj_agg.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define DJ_STAGE_MEMORY_LIMIT ((size_t) 100 * 1024 * 1024)

void
dj_docs_push (dj_docs_t *d, bson_t *doc)
{
   if (d->n == d->cap) {
      d->cap = d->cap ? d->cap * 2 : 16;
      d->v = bson_realloc (d->v, sizeof (bson_t *) * d->cap);
   }
   d->v[d->n++] = doc;
}

void
dj_docs_clear (dj_docs_t *d)
{
   for (size_t i = 0; i < d->n; i++) {
      bson_destroy (d->v[i]);
   }
   bson_free (d->v);
   memset (d, 0, sizeof *d);
}

/* ---- stage definitions ------------------------------------------------------ */

typedef enum {
   S_MATCH, S_RESHAPE, S_GROUP, S_SORT, S_SKIP, S_LIMIT, S_UNWIND, S_LOOKUP, S_COUNT,
   S_FACET, S_UNIONWITH, S_DOCUMENTS, S_SORTBYCOUNT, S_BUCKET, S_SAMPLE, S_SETWINDOWFIELDS, S_OUT, S_MERGE,
   S_LISTSESSIONS
} skind_t;

typedef struct {
   char *name;          /* owned: output field */
   const dj_accop_t *op; /* for window accumulators */
   int rank;            /* 1 $rank, 2 $denseRank, 3 $documentNumber, 4 $shift, 0 accumulator */
   dj_expr_t *expr;     /* owned */
   int64_t shift_by;
   bson_value_t shift_default; /* owned */
   bool has_window, range;
   bool lo_unbounded, hi_unbounded, lo_current, hi_current;
   double lo, hi;
} wfield_t;

typedef struct stage {
   skind_t kind;
   dj_matcher_t *match;
   dj_reshape_t *reshape; /* $project, $addFields/$set, $unset, $replaceRoot/$replaceWith */
   dj_expr_t *expr;
   dj_acc_t *accs;
   int naccs;
   dj_sort_t *sort;
   int64_t n;
   char *str, *str2;
   bool flag;
   dj_path_t path;
   /* $lookup */
   char *local, *foreign;
   dj_expr_t **let_exprs;
   char **let_names;
   int nlet;
   dj_vscope_t *let_scope; /* owned array, nlet entries */
   dj_pipeline_t *sub;
   /* $facet */
   char **fnames;
   dj_pipeline_t **facets;
   int nfacets;
   /* $bucket */
   bson_t *boundaries;
   bson_value_t dflt;
   bool has_default;
   /* $setWindowFields */
   dj_expr_t *partition;
   wfield_t *wf;
   int nwf;
   /* $merge */
   char **on;
   int non;
   int when_matched;     /* 0 merge, 1 replace, 2 keepExisting, 3 fail, 4 pipeline */
   int when_not_matched; /* 0 insert, 1 discard, 2 fail */
   dj_pipeline_t *merge_pipeline;
} stage_t;

struct dj_pipeline {
   stage_t *stages;
   int n;
};

static void
stage_cleanup (stage_t *s)
{
   dj_matcher_destroy (s->match);
   dj_reshape_destroy (s->reshape);
   dj_expr_destroy (s->expr);
   for (int i = 0; i < s->naccs; i++) {
      bson_free (s->accs[i].field);
      dj_expr_destroy (s->accs[i].expr);
   }
   bson_free (s->accs);
   dj_sort_destroy (s->sort);
   bson_free (s->str);
   bson_free (s->str2);
   dj_path_cleanup (&s->path);
   bson_free (s->local);
   bson_free (s->foreign);
   for (int i = 0; i < s->nlet; i++) {
      dj_expr_destroy (s->let_exprs[i]);
      bson_free (s->let_names[i]);
   }
   bson_free (s->let_exprs);
   bson_free (s->let_names);
   bson_free (s->let_scope);
   dj_pipeline_destroy (s->sub);
   for (int i = 0; i < s->nfacets; i++) {
      bson_free (s->fnames[i]);
      dj_pipeline_destroy (s->facets[i]);
   }
   bson_free (s->fnames);
   bson_free (s->facets);
   if (s->boundaries) {
      bson_destroy (s->boundaries);
   }
   if (s->has_default) {
      bson_value_destroy (&s->dflt);
   }
   dj_expr_destroy (s->partition);
   for (int i = 0; i < s->nwf; i++) {
      bson_free (s->wf[i].name);
      dj_expr_destroy (s->wf[i].expr);
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
   return !(p->n && (p->stages[0].kind == S_DOCUMENTS || p->stages[0].kind == S_LISTSESSIONS));
}

/* ---- parsing -------------------------------------------------------------- */

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

static bool
parse_stage (stage_t *s, const char *name, const bson_value_t *v, const dj_vscope_t *scope, bool first, bson_error_t *error)
{
   bson_t doc;
   bson_iter_t it;

   if (!strcmp (name, "$match")) {
      s->kind = S_MATCH;
      if (v->value_type != BSON_TYPE_DOCUMENT) {
         return dj_err (error, 15959, "the match filter must be an expression in an object");
      }
      bson_init_static (&doc, v->value.v_doc.data, v->value.v_doc.data_len);
      s->match = dj_matcher_new_scoped (&doc, scope, error);
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
            s->expr = dj_expr_parse (bson_iter_value (&it), scope, error);
            if (!s->expr) {
               return false;
            }
            continue;
         }
         if (strchr (k, '.')) {
            return dj_err (error, 40235, "The field name '%s' cannot contain '.'", k);
         }
         s->accs = bson_realloc (s->accs, sizeof (dj_acc_t) * (size_t) (s->naccs + 1));
         s->naccs++;
         if (!dj_acc_parse (&s->accs[s->naccs - 1], k, bson_iter_value (&it), scope, error)) {
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
      bson_init_static (&doc, v->value.v_doc.data, v->value.v_doc.data_len);
      s->sort = dj_sort_new (&doc, error);
      return s->sort != NULL;
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
            dj_expr_destroy (s->expr);
            s->expr = dj_expr_parse (bson_iter_value (&it), scope, error);
            if (!s->expr) {
               return false;
            }
         } else if (!strcmp (k, "boundaries")) {
            if (!BSON_ITER_HOLDS_ARRAY (&it)) {
               return dj_err (error, 40200, "The $bucket 'boundaries' field must be an array");
            }
            const uint8_t *d;
            uint32_t l;
            bson_iter_array (&it, &l, &d);
            if (s->boundaries) {
               bson_destroy (s->boundaries);
            }
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
               s->accs = bson_realloc (s->accs, sizeof (dj_acc_t) * (size_t) (s->naccs + 1));
               s->naccs++;
               if (!dj_acc_parse (&s->accs[s->naccs - 1], bson_iter_key (&oi), bson_iter_value (&oi), scope, error)) {
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
         s->accs = bson_malloc0 (sizeof (dj_acc_t));
         s->accs[0].field = bson_strdup ("count");
         s->accs[0].op = dj_acc_op ("$count");
         s->naccs = 1;
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
            dj_expr_destroy (s->partition);
            s->partition = dj_expr_parse (bson_iter_value (&it), scope, error);
            if (!s->partition) {
               return false;
            }
         } else if (!strcmp (k, "sortBy")) {
            const uint8_t *d;
            uint32_t l;
            if (!BSON_ITER_HOLDS_DOCUMENT (&it)) {
               return dj_err (error, DJ_FailedToParse, "sortBy must be an object");
            }
            bson_iter_document (&it, &l, &d);
            bson_init_static (&doc, d, l);
            dj_sort_destroy (s->sort);
            s->sort = dj_sort_new (&doc, error);
            if (!s->sort) {
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
                     bson_iter_recurse (&fi, &wi);
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
                           return dj_err (error, DJ_NotImplemented, "time-unit window ranges are not supported by the embedded engine");
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
                  dj_acc_t a;
                  bson_t one = BSON_INITIALIZER;
                  BSON_APPEND_VALUE (&one, fk, fv);
                  bson_value_t ov;
                  dj_value_from_doc (&one, false, &ov);
                  bool ok = dj_acc_parse (&a, w->name, &ov, scope, error);
                  bson_destroy (&one);
                  bson_free (a.field);
                  if (!ok) {
                     dj_expr_destroy (a.expr);
                     return false;
                  }
                  w->op = a.op;
                  w->expr = a.expr;
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
   return p;
fail:
   dj_pipeline_destroy (p);
   return NULL;
}

/* ---- running: helpers ------------------------------------------------------- */

typedef struct {
   const dj_prun_t *run;
   dj_arena_t *arena;
   bson_error_t *error;
} rctx_t;

static void
eval_setup (rctx_t *r, dj_eval_t *ev, const bson_t *doc)
{
   dj_eval_init_vars (ev, r->arena, doc, r->run->vars, r->run->now_ms, r->error);
}

static bool
check_memory (rctx_t *r, size_t bytes, const char *stage)
{
   if (bytes > DJ_STAGE_MEMORY_LIMIT && !r->run->allow_disk) {
      return dj_err (r->error, 292,
                     "Exceeded memory limit for %s, but didn't allow external spilling; pass allowDiskUse:true to opt in.",
                     stage);
   }
   return true;
}

static bool
run_reshape (rctx_t *r, const stage_t *s, dj_docs_t *docs)
{
   for (size_t i = 0; i < docs->n; i++) {
      dj_eval_t ev;
      bson_t *out = bson_new ();
      eval_setup (r, &ev, docs->v[i]);
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

/* ---- $group ------------------------------------------------------------------- */

typedef struct {
   bson_value_t id; /* owned */
   dj_accst_t *st;     /* owned, naccs */
} group_t;

static uint64_t
hash_bytes (const uint8_t *p, size_t n)
{
   uint64_t h = 0xcbf29ce484222325ull;
   for (size_t i = 0; i < n; i++) {
      h = (h ^ p[i]) * 0x100000001b3ull;
   }
   return h;
}

/* Encoded keys to dense indexes 0..n-1, by open addressing. The $group
 * table and the $lookup join both sit on it, each keeping its own array of
 * values in step with the indexes. */
typedef struct {
   dj_buf_t *keys; /* owned */
   size_t n, cap;
   size_t *slots; /* hash -> index + 1 */
   size_t nslots;
} ktable_t;

/* The index of k; SIZE_MAX when absent and !create. *added: k is new. */
static size_t
ktable_index (ktable_t *t, const dj_buf_t *k, bool create, bool *added)
{
   *added = false;
   if (create && (t->n + 1) * 2 > t->nslots) {
      size_t ns = t->nslots ? t->nslots * 2 : 64;
      size_t *nsl = bson_malloc0 (sizeof (size_t) * ns);
      for (size_t i = 0; i < t->n; i++) {
         size_t h = (size_t) hash_bytes (t->keys[i].data, t->keys[i].len) & (ns - 1);
         while (nsl[h]) {
            h = (h + 1) & (ns - 1);
         }
         nsl[h] = i + 1;
      }
      bson_free (t->slots);
      t->slots = nsl;
      t->nslots = ns;
   }
   if (!t->nslots) {
      return SIZE_MAX;
   }
   size_t h = (size_t) hash_bytes (k->data, k->len) & (t->nslots - 1);
   while (t->slots[h]) {
      const dj_buf_t *e = &t->keys[t->slots[h] - 1];
      if (e->len == k->len && !memcmp (e->data, k->data, k->len)) {
         return t->slots[h] - 1;
      }
      h = (h + 1) & (t->nslots - 1);
   }
   if (!create) {
      return SIZE_MAX;
   }
   if (t->n == t->cap) {
      t->cap = t->cap ? t->cap * 2 : 16;
      t->keys = bson_realloc (t->keys, sizeof (dj_buf_t) * t->cap);
   }
   dj_buf_init (&t->keys[t->n]);
   dj_buf_append (&t->keys[t->n], k->data, k->len);
   t->slots[h] = ++t->n;
   *added = true;
   return t->n - 1;
}

static void
ktable_free (ktable_t *t)
{
   for (size_t i = 0; i < t->n; i++) {
      dj_buf_cleanup (&t->keys[i]);
   }
   bson_free (t->keys);
   bson_free (t->slots);
}

typedef struct {
   ktable_t kt;
   group_t *g; /* owned, kt.n entries */
   size_t cap;
   size_t bytes;
} gtable_t;

static group_t *
gtable_get (gtable_t *t, const bson_value_t *id, int naccs, const dj_acc_t *accs)
{
   dj_buf_t k;
   bool added;
   dj_buf_init (&k);
   /* groups by value: 1, 1.0 and NumberLong(1) are one group, as in MongoDB */
   dj_key_append_collated (&k, id);
   size_t i = ktable_index (&t->kt, &k, true, &added);
   t->bytes += added ? k.len + 64 : 0;
   dj_buf_cleanup (&k);
   if (!added) {
      return &t->g[i];
   }
   if (i == t->cap) {
      t->cap = t->cap ? t->cap * 2 : 16;
      t->g = bson_realloc (t->g, sizeof (group_t) * t->cap);
   }
   group_t *g = &t->g[i];
   if (id->value_type == BSON_TYPE_EOD) {
      g->id.value_type = BSON_TYPE_NULL;
   } else {
      bson_value_copy (id, &g->id);
   }
   g->st = bson_malloc0 (sizeof (dj_accst_t) * (size_t) (naccs ? naccs : 1));
   for (int a = 0; a < naccs; a++) {
      g->st[a].op = accs[a].op;
   }
   return g;
}

static void
gtable_free (gtable_t *t, int naccs)
{
   for (size_t i = 0; i < t->kt.n; i++) {
      bson_value_destroy (&t->g[i].id);
      for (int a = 0; a < naccs; a++) {
         dj_accst_cleanup (&t->g[i].st[a]);
      }
      bson_free (t->g[i].st);
   }
   bson_free (t->g);
   ktable_free (&t->kt);
}

static bool
accumulate (rctx_t *r, gtable_t *t, const dj_acc_t *accs, int naccs, group_t *g, dj_eval_t *ev)
{
   for (int a = 0; a < naccs; a++) {
      bson_value_t v = {.value_type = BSON_TYPE_EOD};
      if (accs[a].expr && !dj_expr_eval (accs[a].expr, ev, &v)) {
         return false;
      }
      if (!dj_acc_step (&g->st[a], &v, r->error)) {
         return false;
      }
      if (dj_acc_collects (accs[a].op)) {
         t->bytes += 16 + (v.value_type == BSON_TYPE_UTF8 ? v.value.v_utf8.len
                                                          : (v.value_type == BSON_TYPE_DOCUMENT || v.value_type == BSON_TYPE_ARRAY) ? v.value.v_doc.data_len : 8);
      }
   }
   return true;
}

static bool
run_group (rctx_t *r, const stage_t *s, dj_docs_t *docs)
{
   gtable_t t = {0};
   bool ok = true;

   for (size_t i = 0; ok && i < docs->n; i++) {
      dj_eval_t ev;
      bson_value_t id;
      eval_setup (r, &ev, docs->v[i]);
      ok = dj_expr_eval (s->expr, &ev, &id);
      if (ok) {
         group_t *g = gtable_get (&t, &id, s->naccs, s->accs);
         ok = accumulate (r, &t, s->accs, s->naccs, g, &ev) && check_memory (r, t.bytes, "$group");
      }
      dj_arena_reset (r->arena);
   }
   if (ok) {
      dj_docs_clear (docs);
      for (size_t i = 0; i < t.kt.n; i++) {
         bson_t *out = bson_new ();
         BSON_APPEND_VALUE (out, "_id", &t.g[i].id);
         for (int a = 0; a < s->naccs; a++) {
            dj_acc_result (&t.g[i].st[a], s->accs[a].field, out);
         }
         dj_docs_push (docs, out);
      }
   }
   gtable_free (&t, s->naccs);
   return ok;
}

/* ---- $bucket ------------------------------------------------------------ */

static bool
run_bucket (rctx_t *r, const stage_t *s, dj_docs_t *docs)
{
   bson_iter_t it;
   int nb = 0;
   bson_iter_init (&it, s->boundaries);
   while (bson_iter_next (&it)) {
      nb++;
   }
   bson_value_t *b = bson_malloc (sizeof (bson_value_t) * (size_t) nb);
   nb = 0;
   bson_iter_init (&it, s->boundaries);
   while (bson_iter_next (&it)) {
      b[nb++] = *bson_iter_value (&it);
   }
   /* one accumulator set per bucket plus the default bucket */
   dj_accst_t *st = bson_malloc0 (sizeof (dj_accst_t) * (size_t) (nb * s->naccs + s->naccs));
   bool *used = bson_malloc0 (sizeof (bool) * (size_t) nb);
   for (int i = 0; i < nb * s->naccs + s->naccs; i++) {
      st[i].op = s->accs[i % s->naccs].op;
   }
   gtable_t dummy = {0};
   bool ok = true;
   for (size_t i = 0; ok && i < docs->n; i++) {
      dj_eval_t ev;
      bson_value_t g;
      eval_setup (r, &ev, docs->v[i]);
      ok = dj_expr_eval (s->expr, &ev, &g);
      if (!ok) {
         break;
      }
      int slot = -1;
      if (dj_type_rank (g.value_type) == dj_type_rank (b[0].value_type)) {
         for (int k = 0; k + 1 < nb; k++) {
            if (dj_value_cmp (&g, &b[k]) >= 0 && dj_value_cmp (&g, &b[k + 1]) < 0) {
               slot = k;
               break;
            }
         }
      }
      if (slot < 0 && !s->has_default) {
         ok = dj_err (r->error, 40066, "$switch could not find a matching branch for an input, and no default was specified.");
         break;
      }
      int base = (slot < 0 ? nb - 1 : slot) * s->naccs;
      if (slot < 0) {
         base = nb * s->naccs;
      } else {
         used[slot] = true;
      }
      group_t grp = {.st = st + base};
      ok = accumulate (r, &dummy, s->accs, s->naccs, &grp, &ev);
      dj_arena_reset (r->arena);
   }
   if (ok) {
      bool default_used = false;
      for (int i = 0; i < s->naccs; i++) {
         default_used |= st[nb * s->naccs + i].have || st[nb * s->naccs + i].count || st[nb * s->naccs + i].arr;
      }
      dj_docs_clear (docs);
      for (int k = 0; k + 1 < nb; k++) {
         if (!used[k]) {
            continue;
         }
         bson_t *out = bson_new ();
         BSON_APPEND_VALUE (out, "_id", &b[k]);
         for (int a = 0; a < s->naccs; a++) {
            dj_acc_result (&st[k * s->naccs + a], s->accs[a].field, out);
         }
         dj_docs_push (docs, out);
      }
      if (default_used) {
         bson_t *out = bson_new ();
         BSON_APPEND_VALUE (out, "_id", &s->dflt);
         for (int a = 0; a < s->naccs; a++) {
            dj_acc_result (&st[nb * s->naccs + a], s->accs[a].field, out);
         }
         dj_docs_push (docs, out);
      }
   }
   for (int i = 0; i < nb * s->naccs + s->naccs; i++) {
      dj_accst_cleanup (&st[i]);
   }
   bson_free (st);
   bson_free (used);
   bson_free (b);
   return ok;
}

/* ---- $unwind ---------------------------------------------------------------- */

/* Copies doc with `path` set to v (v NULL: removed) and, if idx_field, that
 * field set to idx (-1: null). */
static bson_t *
with_path (const bson_t *doc, const dj_path_t *path, const bson_value_t *v, const char *idx_field, int64_t idx)
{
   if (path->n == 1 && (!idx_field || !strchr (idx_field, '.'))) {
      /* top-level fields (the usual case): one pass over the document,
       * replacing in place or appending, no tree */
      bson_t *out = bson_new ();
      bson_iter_t it;
      bool set_v = false, set_i = false;
      bson_value_t iv = {.value_type = idx < 0 ? BSON_TYPE_NULL : BSON_TYPE_INT64};
      iv.value.v_int64 = idx;
      bson_iter_init (&it, doc);
      while (bson_iter_next (&it)) {
         const char *k = bson_iter_key (&it);
         if (!strcmp (k, path->parts[0])) {
            if (v) {
               bson_append_value (out, k, -1, v);
            }
            set_v = true;
         } else if (idx_field && !strcmp (k, idx_field)) {
            bson_append_value (out, k, -1, &iv);
            set_i = true;
         } else {
            bson_append_value (out, k, -1, bson_iter_value (&it));
         }
      }
      if (!set_v && v) {
         bson_append_value (out, path->parts[0], -1, v);
      }
      if (idx_field && !set_i) {
         bson_append_value (out, idx_field, -1, &iv);
      }
      return out;
   }
   dj_node_t *tree = dj_node_from_bson (doc);
   dj_node_t *cur = tree;
   for (int i = 0; i < path->n - 1 && cur; i++) {
      cur = dj_node_child (cur, path->parts[i], NULL);
      if (cur && cur->v.value_type != BSON_TYPE_DOCUMENT) {
         cur = NULL;
      }
   }
   if (cur) {
      const char *leaf = path->parts[path->n - 1];
      if (v) {
         dj_node_set_child (cur, leaf, dj_node_from_value (v, leaf));
      } else {
         uint32_t pos;
         if (dj_node_child (cur, leaf, &pos)) {
            dj_node_remove_at (cur, pos);
         }
      }
   }
   if (idx_field) {
      bson_value_t iv = {.value_type = idx < 0 ? BSON_TYPE_NULL : BSON_TYPE_INT64};
      iv.value.v_int64 = idx;
      dj_path_t ip;
      if (dj_path_init (&ip, idx_field, strlen (idx_field), NULL)) {
         dj_node_t *c2 = tree;
         for (int i = 0; i < ip.n - 1 && c2; i++) {
            dj_node_t *nx = dj_node_child (c2, ip.parts[i], NULL);
            if (!nx) {
               dj_node_set_child (c2, ip.parts[i], dj_node_new_container (BSON_TYPE_DOCUMENT, ip.parts[i]));
               nx = dj_node_child (c2, ip.parts[i], NULL);
            }
            c2 = nx->v.value_type == BSON_TYPE_DOCUMENT ? nx : NULL;
         }
         if (c2) {
            dj_node_set_child (c2, ip.parts[ip.n - 1], dj_node_from_value (&iv, ip.parts[ip.n - 1]));
         }
         dj_path_cleanup (&ip);
      }
   }
   bson_t *out = bson_new ();
   dj_node_to_bson (tree, out);
   dj_node_free (tree);
   return out;
}

static bool
run_unwind (rctx_t *r, const stage_t *s, dj_docs_t *docs)
{
   dj_docs_t out = {0};
   (void) r;
   for (size_t i = 0; i < docs->n; i++) {
      bson_value_t dv, v = {.value_type = BSON_TYPE_EOD};
      dj_value_from_doc (docs->v[i], false, &dv);
      /* the path through documents only (arrays are not traversed) */
      bson_value_t cur = dv;
      bool found = true;
      for (int p = 0; p < s->path.n && found; p++) {
         bson_value_t next;
         found = cur.value_type == BSON_TYPE_DOCUMENT && dj_value_get_field (&cur, s->path.parts[p], &next);
         if (found) {
            cur = next; /* next is unset when the field is missing */
         }
      }
      if (found) {
         v = cur;
      }
      if (v.value_type == BSON_TYPE_ARRAY) {
         bson_iter_t it;
         int64_t k = 0;
         bson_iter_init_from_data (&it, v.value.v_doc.data, v.value.v_doc.data_len);
         while (bson_iter_next (&it)) {
            dj_docs_push (&out, with_path (docs->v[i], &s->path, bson_iter_value (&it), s->str2, k++));
         }
         if (k == 0 && s->flag) {
            /* an empty array, preserved: the field is removed */
            dj_docs_push (&out, with_path (docs->v[i], &s->path, NULL, s->str2, -1));
         }
      } else if (v.value_type == BSON_TYPE_EOD || v.value_type == BSON_TYPE_NULL || v.value_type == BSON_TYPE_UNDEFINED) {
         if (s->flag) {
            dj_docs_push (&out, s->str2 ? with_path (docs->v[i], &s->path, v.value_type == BSON_TYPE_EOD ? NULL : &v, s->str2, -1)
                                        : bson_copy (docs->v[i]));
         }
      } else {
         /* a scalar unwinds to itself */
         dj_docs_push (&out, s->str2 ? with_path (docs->v[i], &s->path, &v, s->str2, -1) : bson_copy (docs->v[i]));
      }
   }
   dj_docs_clear (docs);
   *docs = out;
   return true;
}

/* ---- reading other collections --------------------------------------------- */

typedef struct {
   dj_docs_t *out;
} collect_t;

static bool
collect_fn (uint64_t rid, const bson_t *doc, int32_t pos, void *ctx)
{
   (void) rid;
   (void) pos;
   dj_docs_push (((collect_t *) ctx)->out, bson_copy (doc));
   return true;
}

/* All documents of db.coll matching m (NULL: all). A missing collection is empty. */
static bool
read_collection (const dj_prun_t *run, const char *db, const char *coll, const dj_matcher_t *m, const dj_eval_t *vars,
                 dj_docs_t *out, bson_error_t *error)
{
   bson_error_t le = {0};
   dj_coll_t *c = dj_coll_load (run->ctx, db, coll, &le);
   if (!c) {
      if (le.code) {
         *error = le;
         return false;
      }
      return true;
   }
   if (c->view_on) {
      /* a view: its pipeline's output, then the filter */
      dj_docs_t vd = {0};
      bool ok = dj_view_read (run, c, 0, &vd, error);
      for (size_t i = 0; i < vd.n; i++) {
         if (ok && (!m || dj_matcher_match_ex (m, vd.v[i], NULL, vars, error))) {
            dj_docs_push (out, vd.v[i]);
         } else {
            ok = ok && !(error && error->code);
            bson_destroy (vd.v[i]);
         }
      }
      bson_free (vd.v);
      dj_coll_free (c);
      return ok;
   }
   dj_matcher_t *all = NULL;
   if (!m) {
      bson_t empty = BSON_INITIALIZER;
      all = dj_matcher_new (&empty, error);
      m = all;
   }
   collect_t cc = {.out = out};
   bool ok = dj_plan_scan_vars (run->ctx, c, m, vars, false, 0, collect_fn, &cc, error);
   dj_matcher_destroy (all);
   dj_coll_free (c);
   return ok;
}

static bool run_stages (const dj_pipeline_t *p, int from, const dj_prun_t *run, dj_docs_t *docs, bson_error_t *error);

bool
dj_view_read (const dj_prun_t *run, const dj_coll_t *view, int depth, dj_docs_t *out, bson_error_t *error)
{
   bson_iter_t it;
   bson_t stages;
   const uint8_t *d;
   uint32_t l;
   /* https://www.mongodb.com/docs/manual/core/views/#behavior: views on
    * views resolve to the first real collection, up to 20 deep */
   if (depth >= 20) {
      return dj_err (error, DJ_ViewDepthLimitExceeded, "View depth too deep or view cycle detected. Maximum depth is 20");
   }
   bson_init (&stages);
   if (bson_iter_init_find (&it, view->options, "pipeline") && BSON_ITER_HOLDS_ARRAY (&it)) {
      bson_iter_array (&it, &l, &d);
      bson_destroy (&stages);
      bson_init_static (&stages, d, l);
   }
   dj_pipeline_t *p = dj_pipeline_new (&stages, NULL, error);
   bson_destroy (&stages);
   if (!p) {
      return false;
   }
   bool ok;
   bson_error_t le = {0};
   dj_coll_t *src = dj_coll_load (run->ctx, view->db, view->view_on, &le);
   if (!src) {
      ok = !le.code; /* a view on a missing collection is empty */
      if (!ok) {
         *error = le;
      }
   } else if (src->view_on) {
      ok = dj_view_read (run, src, depth + 1, out, error);
   } else {
      ok = read_collection (run, view->db, view->view_on, NULL, NULL, out, error);
   }
   dj_coll_free (src);
   ok = ok && run_stages (p, 0, run, out, error);
   dj_pipeline_destroy (p);
   return ok;
}

/* ---- $lookup ------------------------------------------------------------------ */

typedef struct {
   bson_t *arr;
   uint32_t n;
} addctx_t;

static void
add_value (const bson_value_t *v, void *ctx)
{
   addctx_t *ac = ctx;
   char buf[16];
   const char *key;
   if (v->value_type == BSON_TYPE_REGEX) {
      return; /* a stored regex would turn into a pattern in $in */
   }
   bson_uint32_to_string (ac->n++, &key, buf, sizeof buf);
   bson_append_value (ac->arr, key, -1, v);
}


/* A hash join for localField/foreignField: the foreign collection is read
 * once and indexed by the encoded values at foreignField -- each array
 * element and the whole array, missing as null -- so equality follows
 * MongoDB's value order (1 == 1.0) exactly as the $in query it replaces.
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/lookup/#equality-match-with-a-single-join-condition */
typedef struct {
   size_t *docs; /* indexes into the foreign list, ascending */
   size_t n, cap;
} jbucket_t;

typedef struct {
   ktable_t kt;
   jbucket_t *b; /* owned, kt.n entries */
   size_t cap;
} jtable_t;

static jbucket_t *
jtable_find (jtable_t *t, const dj_buf_t *k, bool create)
{
   bool added;
   size_t i = ktable_index (&t->kt, k, create, &added);
   if (i == SIZE_MAX) {
      return NULL;
   }
   if (added) {
      if (i == t->cap) {
         t->cap = t->cap ? t->cap * 2 : 64;
         t->b = bson_realloc (t->b, sizeof (jbucket_t) * t->cap);
      }
      memset (&t->b[i], 0, sizeof t->b[i]);
   }
   return &t->b[i];
}

static void
jtable_free (jtable_t *t)
{
   for (size_t i = 0; i < t->kt.n; i++) {
      bson_free (t->b[i].docs);
   }
   bson_free (t->b);
   ktable_free (&t->kt);
}

typedef struct {
   jtable_t *t;
   size_t doc;
   int found;
} jadd_t;

static void
jadd_value (const bson_value_t *v, void *ctx)
{
   jadd_t *ja = ctx;
   dj_buf_t k;
   ja->found++;
   dj_buf_init (&k);
   dj_key_append_collated (&k, v);
   jbucket_t *b = jtable_find (ja->t, &k, true);
   dj_buf_cleanup (&k);
   if (b->n && b->docs[b->n - 1] == ja->doc) {
      return; /* [1, 1] indexes the document once */
   }
   if (b->n == b->cap) {
      b->cap = b->cap ? b->cap * 2 : 4;
      b->docs = bson_realloc (b->docs, sizeof (size_t) * b->cap);
   }
   b->docs[b->n++] = ja->doc;
}

static void
jadd_visit (const bson_value_t *v, void *ctx)
{
   if (v->value_type == BSON_TYPE_ARRAY) {
      bson_iter_t it;
      jadd_value (v, ctx); /* the whole array matches an equal array */
      bson_iter_init_from_data (&it, v->value.v_doc.data, v->value.v_doc.data_len);
      while (bson_iter_next (&it)) {
         jadd_value (bson_iter_value (&it), ctx);
      }
      return;
   }
   jadd_value (v, ctx);
}

static void
jtable_build (jtable_t *t, const dj_docs_t *foreign, const dj_path_t *fp)
{
   for (size_t i = 0; i < foreign->n; i++) {
      bson_value_t dv;
      jadd_t ja = {.t = t, .doc = i};
      dj_value_from_doc (foreign->v[i], false, &dv);
      dj_path_visit (&dv, fp, 0, false, jadd_visit, &ja);
      if (!ja.found) {
         bson_value_t null_v = {.value_type = BSON_TYPE_NULL};
         jadd_value (&null_v, &ja);
      }
   }
}

typedef struct {
   jtable_t *t;
   size_t *hits;
   size_t n, cap;
   int visited;
} jprobe_t;

static void
jprobe_value (const bson_value_t *v, void *ctx)
{
   jprobe_t *jp = ctx;
   dj_buf_t k;
   jp->visited++;
   if (v->value_type == BSON_TYPE_REGEX) {
      return;
   }
   dj_buf_init (&k);
   dj_key_append_collated (&k, v);
   jbucket_t *b = jtable_find (jp->t, &k, false);
   dj_buf_cleanup (&k);
   for (size_t i = 0; b && i < b->n; i++) {
      if (jp->n == jp->cap) {
         jp->cap = jp->cap ? jp->cap * 2 : 8;
         jp->hits = bson_realloc (jp->hits, sizeof (size_t) * jp->cap);
      }
      jp->hits[jp->n++] = b->docs[i];
   }
}

static int
cmp_size (const void *a, const void *b)
{
   size_t x = *(const size_t *) a, y = *(const size_t *) b;
   return (x > y) - (x < y);
}

static bool
run_lookup (rctx_t *r, const stage_t *s, dj_docs_t *docs)
{
   jtable_t jt = {0};
   dj_path_t lp = {0};
   bool joined = false;
   const dj_prun_t *run = r->run;
   dj_path_t as;
   bool ok = true;
   dj_docs_t foreign_all = {0};
   bool have_all = false;

   if (!dj_path_init (&as, s->str, strlen (s->str), r->error)) {
      return false;
   }
   if (s->local && s->str2) {
      /* the foreign side, once: a hash table on foreignField */
      dj_path_t fp;
      ok = dj_path_init (&fp, s->foreign, strlen (s->foreign), r->error) &&
           dj_path_init (&lp, s->local, strlen (s->local), r->error);
      if (ok) {
         ok = read_collection (run, run->db, s->str2, NULL, NULL, &foreign_all, r->error);
         have_all = true;
         if (ok) {
            jtable_build (&jt, &foreign_all, &fp);
            joined = true;
         }
         dj_path_cleanup (&fp);
      }
   }
   for (size_t i = 0; ok && i < docs->n; i++) {
      dj_docs_t matches = {0};
      dj_eval_t ev;
      eval_setup (r, &ev, docs->v[i]);
      /* let variables, evaluated against the local document */
      dj_eval_t vars = ev;
      for (int k = 0; ok && k < s->nlet; k++) {
         bson_value_t lv;
         ok = dj_expr_eval (s->let_exprs[k], &ev, &lv);
         if (ok && vars.nvars < DJ_MAX_VARS) {
            vars.vars[vars.nvars].name = s->let_names[k];
            vars.vars[vars.nvars].value = lv.value_type == BSON_TYPE_EOD ? (bson_value_t){.value_type = BSON_TYPE_NULL} : lv;
            vars.nvars++;
         }
      }
      if (!ok) {
         break;
      }
      if (joined) {
         /* equality match: foreignField equals any value at localField (an
          * array by its elements; missing matches null and missing) */
         bson_value_t dv;
         jprobe_t jp = {.t = &jt};
         dj_value_from_doc (docs->v[i], false, &dv);
         dj_path_visit (&dv, &lp, 0, true, jprobe_value, &jp);
         if (!jp.visited) {
            /* nothing at localField: it counts as null */
            bson_value_t null_v = {.value_type = BSON_TYPE_NULL};
            jprobe_value (&null_v, &jp);
         }
         if (jp.n > 1) { /* qsort (NULL, 0, ...) is undefined: no hits leaves hits NULL */
            qsort (jp.hits, jp.n, sizeof (size_t), cmp_size);
         }
         for (size_t k = 0; k < jp.n; k++) {
            if (k == 0 || jp.hits[k] != jp.hits[k - 1]) {
               dj_docs_push (&matches, bson_copy (foreign_all.v[jp.hits[k]]));
            }
         }
         bson_free (jp.hits);
      } else if (s->local) {
         /* equality match: foreignField equals any value at localField
          * (an array matches by element; missing matches null) */
         bson_value_t dv;
         dj_value_from_doc (docs->v[i], false, &dv);
         dj_path_t lp;
         ok = dj_path_init (&lp, s->local, strlen (s->local), r->error);
         if (!ok) {
            break;
         }
         bson_t q = BSON_INITIALIZER, cond, arr;
         BSON_APPEND_DOCUMENT_BEGIN (&q, s->foreign, &cond);
         BSON_APPEND_ARRAY_BEGIN (&cond, "$in", &arr);
         addctx_t ac = {&arr, 0};
         dj_path_visit (&dv, &lp, 0, true, add_value, &ac);
         if (ac.n == 0) {
            BSON_APPEND_NULL (&arr, "0");
         }
         bson_append_array_end (&cond, &arr);
         bson_append_document_end (&q, &cond);
         dj_path_cleanup (&lp);
         dj_matcher_t *m = dj_matcher_new (&q, r->error);
         bson_destroy (&q);
         if (!m) {
            ok = false;
            break;
         }
         if (s->str2) {
            ok = read_collection (run, run->db, s->str2, m, NULL, &matches, r->error);
         }
         dj_matcher_destroy (m);
      } else if (s->str2 && dj_pipeline_needs_collection (s->sub)) {
         /* uncorrelated pipelines still run per document (they may use let) */
         if (!have_all) {
            ok = read_collection (run, run->db, s->str2, NULL, NULL, &foreign_all, r->error);
            have_all = true;
         }
         for (size_t k = 0; ok && k < foreign_all.n; k++) {
            dj_docs_push (&matches, bson_copy (foreign_all.v[k]));
         }
      }
      if (ok && s->sub) {
         dj_prun_t sub = *run;
         sub.vars = &vars;
         ok = run_stages (s->sub, 0, &sub, &matches, r->error);
      }
      if (ok) {
         bson_t arr = BSON_INITIALIZER;
         for (size_t k = 0; k < matches.n; k++) {
            char buf[16];
            const char *key;
            bson_uint32_to_string ((uint32_t) k, &key, buf, sizeof buf);
            bson_append_document (&arr, key, -1, matches.v[k]);
         }
         bson_value_t av;
         dj_value_from_doc (&arr, true, &av);
         bson_t *nd = with_path (docs->v[i], &as, &av, NULL, 0);
         bson_destroy (&arr);
         if (nd->len > DJ_MAX_BSON_SIZE) {
            bson_destroy (nd);
            ok = dj_err (r->error, 4568, "Total size of documents in %s matching pipeline's $lookup stage exceeds 16793600 bytes",
                         s->str2 ? s->str2 : "$documents");
         } else {
            bson_destroy (docs->v[i]);
            docs->v[i] = nd;
         }
      }
      dj_docs_clear (&matches);
      dj_arena_reset (r->arena);
   }
   dj_docs_clear (&foreign_all);
   dj_path_cleanup (&as);
   dj_path_cleanup (&lp);
   jtable_free (&jt);
   return ok;
}

/* ---- $setWindowFields ------------------------------------------------------- */

typedef struct {
   bson_t *doc;
   size_t idx;
   bson_value_t part; /* borrowed from arena-free evaluation: copied */
   dj_buf_t pkey;
} wrow_t;

static int
wrow_cmp (const void *a, const void *b)
{
   const wrow_t *x = a, *y = b;
   size_t n = x->pkey.len < y->pkey.len ? x->pkey.len : y->pkey.len;
   int c = n ? memcmp (x->pkey.data, y->pkey.data, n) : 0; /* no partitionBy: empty keys */
   if (c) {
      return c;
   }
   if (x->pkey.len != y->pkey.len) {
      return x->pkey.len < y->pkey.len ? -1 : 1;
   }
   return (x->idx > y->idx) - (x->idx < y->idx);
}

static bool
run_window (rctx_t *r, const stage_t *s, dj_docs_t *docs)
{
   size_t n = docs->n;
   wrow_t *rows = bson_malloc0 (sizeof (wrow_t) * (n ? n : 1));
   bool ok = true;

   /* partition, then sort within each partition (stable) */
   for (size_t i = 0; i < n && ok; i++) {
      rows[i].doc = docs->v[i];
      rows[i].idx = i;
      dj_buf_init (&rows[i].pkey);
      if (s->partition) {
         dj_eval_t ev;
         bson_value_t pv;
         eval_setup (r, &ev, docs->v[i]);
         ok = dj_expr_eval (s->partition, &ev, &pv);
         if (ok) {
            dj_key_append_collated (&rows[i].pkey, &pv);
         }
         dj_arena_reset (r->arena);
      }
   }
   if (!ok) {
      for (size_t i = 0; i < n; i++) {
         dj_buf_cleanup (&rows[i].pkey);
      }
      bson_free (rows);
      return false;
   }
   qsort (rows, n, sizeof (wrow_t), wrow_cmp);
   for (size_t start = 0; start < n && ok;) {
      size_t end = start + 1;
      while (end < n && rows[end].pkey.len == rows[start].pkey.len &&
             (rows[start].pkey.len == 0 || !memcmp (rows[end].pkey.data, rows[start].pkey.data, rows[start].pkey.len))) {
         end++;
      }
      size_t pn = end - start;
      bson_t **pd = bson_malloc (sizeof (bson_t *) * pn);
      for (size_t i = 0; i < pn; i++) {
         pd[i] = rows[start + i].doc;
      }
      if (s->sort) {
         dj_sort_docs (s->sort, pd, pn);
      }
      /* each output field, per row */
      bson_t **outs = bson_malloc (sizeof (bson_t *) * pn);
      for (size_t i = 0; i < pn; i++) {
         outs[i] = bson_copy (pd[i]);
      }
      for (int w = 0; ok && w < s->nwf; w++) {
         const wfield_t *wf = &s->wf[w];
         int64_t rank = 0, dense = 0;
         dj_path_t wpath;
         if (!dj_path_init (&wpath, wf->name, strlen (wf->name), r->error)) {
            ok = false;
            break;
         }
         for (size_t i = 0; ok && i < pn; i++) {
            bson_value_t result = {.value_type = BSON_TYPE_NULL};
            if (wf->rank == 1 || wf->rank == 2 || wf->rank == 3) {
               bool tie = i > 0 && s->sort && dj_sort_cmp (s->sort, pd[i - 1], pd[i]) == 0;
               if (!tie) {
                  rank = (int64_t) i + 1;
                  dense++;
               }
               result.value_type = BSON_TYPE_INT32;
               result.value.v_int32 = (int32_t) (wf->rank == 1 ? rank : wf->rank == 2 ? dense : (int64_t) i + 1);
               if (wf->rank == 3) {
                  result.value.v_int32 = (int32_t) (i + 1);
               }
            } else if (wf->rank == 4) {
               int64_t j = (int64_t) i + wf->shift_by;
               if (j >= 0 && j < (int64_t) pn) {
                  dj_eval_t ev;
                  eval_setup (r, &ev, pd[j]);
                  ok = dj_expr_eval (wf->expr, &ev, &result);
                  if (result.value_type == BSON_TYPE_EOD) {
                     result.value_type = BSON_TYPE_NULL;
                  }
               } else if (wf->shift_default.value_type != BSON_TYPE_EOD) {
                  result = wf->shift_default;
               }
            } else {
               /* accumulator over the window */
               int64_t lo = 0, hi = (int64_t) pn - 1;
               if (wf->has_window && !wf->range) {
                  lo = wf->lo_unbounded ? 0 : (int64_t) i + (wf->lo_current ? 0 : (int64_t) wf->lo);
                  hi = wf->hi_unbounded ? (int64_t) pn - 1 : (int64_t) i + (wf->hi_current ? 0 : (int64_t) wf->hi);
               } else if (!wf->has_window && s->sort) {
                  hi = (int64_t) i; /* with a sortBy the default window is [unbounded, current] */
               }
               dj_accst_t st = {.op = wf->op};
               for (int64_t j = lo < 0 ? 0 : lo; ok && j <= hi && j < (int64_t) pn; j++) {
                  if (wf->has_window && wf->range) {
                     /* range windows: by the sort key's numeric value */
                     int dir;
                     const char *f = dj_sort_key (s->sort, 0, &dir);
                     bson_value_t ki, kj;
                     bson_iter_t it;
                     if (!bson_iter_init (&it, pd[i]) || !bson_iter_find_descendant (&it, f, &it)) {
                        continue;
                     }
                     ki = *bson_iter_value (&it);
                     if (!bson_iter_init (&it, pd[j]) || !bson_iter_find_descendant (&it, f, &it)) {
                        continue;
                     }
                     kj = *bson_iter_value (&it);
                     double d = dj_value_as_double (&kj) - dj_value_as_double (&ki);
                     if ((!wf->lo_unbounded && d < (wf->lo_current ? 0 : wf->lo)) ||
                         (!wf->hi_unbounded && d > (wf->hi_current ? 0 : wf->hi))) {
                        continue;
                     }
                  }
                  bson_value_t v = {.value_type = BSON_TYPE_EOD};
                  dj_eval_t ev;
                  eval_setup (r, &ev, pd[j]);
                  if (wf->expr) {
                     ok = dj_expr_eval (wf->expr, &ev, &v);
                  }
                  ok = ok && dj_acc_step (&st, &v, r->error);
               }
               bson_t tmp = BSON_INITIALIZER;
               dj_acc_result (&st, "v", &tmp);
               bson_iter_t ti;
               bson_iter_init_find (&ti, &tmp, "v");
               bson_t *nd = with_path (outs[i], &wpath, bson_iter_value (&ti), NULL, 0);
               bson_destroy (&tmp);
               dj_accst_cleanup (&st);
               bson_destroy (outs[i]);
               outs[i] = nd;
               dj_arena_reset (r->arena);
               continue;
            }
            if (!ok) {
               break;
            }
            bson_t *nd = with_path (outs[i], &wpath, &result, NULL, 0);
            bson_destroy (outs[i]);
            outs[i] = nd;
            dj_arena_reset (r->arena);
         }
         dj_path_cleanup (&wpath);
      }
      for (size_t i = 0; i < pn; i++) {
         /* replace in the row order the partition sorted them into */
         rows[start + i].doc = outs[i];
      }
      bson_free (outs);
      bson_free (pd);
      start = end;
   }
   for (size_t i = 0; i < n; i++) {
      bson_destroy (docs->v[i]);
      docs->v[i] = rows[i].doc;
      dj_buf_cleanup (&rows[i].pkey);
   }
   bson_free (rows);
   return ok;
}

/* ---- $out / $merge ---------------------------------------------------------- */

static bool
run_out (rctx_t *r, const stage_t *s, dj_docs_t *docs)
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

static bool
first_fn (uint64_t rid, const bson_t *doc, int32_t pos, void *ctx)
{
   first_t *f = ctx;
   (void) pos;
   f->rid = rid;
   f->doc = bson_copy (doc);
   return false;
}

static bool
run_merge (rctx_t *r, const stage_t *s, dj_docs_t *docs)
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
            ok = dj_err (r->error, 11000, "$merge with whenMatched: fail found an existing document with the same values for the 'on' fields");
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
            ok = run_stages (s->merge_pipeline, 0, &sub, &one, r->error);
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
            ok = dj_record_update (run->ctx, c, found.rid, old, newdoc, r->error);
         }
         if (newdoc) {
            bson_destroy (newdoc);
         }
         bson_destroy (found.doc);
      }
   }
   dj_coll_free (c);
   dj_docs_clear (docs);
   return ok;
}

/* ---- the stage loop ------------------------------------------------------------ */

static bool
run_stage (rctx_t *r, const dj_pipeline_t *p, int si, dj_docs_t *docs)
{
   const stage_t *s = &p->stages[si];
   const dj_prun_t *run = r->run;

   switch (s->kind) {
   case S_MATCH: {
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
   case S_GROUP: return run_group (r, s, docs);
   case S_SORT: {
      size_t bytes = 0;
      for (size_t i = 0; i < docs->n; i++) {
         bytes += docs->v[i]->len;
      }
      /* a $sort followed by $limit keeps only the top: the memory check counts what is kept */
      if (si + 1 < p->n && p->stages[si + 1].kind == S_LIMIT && docs->n) {
         bytes = bytes / docs->n * (size_t) (p->stages[si + 1].n < (int64_t) docs->n ? p->stages[si + 1].n : (int64_t) docs->n);
      }
      if (!check_memory (r, bytes, "$sort")) {
         return false;
      }
      if (si + 1 < p->n && p->stages[si + 1].kind == S_LIMIT) {
         dj_sort_docs_topk (s->sort, docs->v, docs->n, (size_t) p->stages[si + 1].n); /* the $limit then drops the rest */
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
   case S_UNWIND: return run_unwind (r, s, docs);
   case S_LOOKUP: return run_lookup (r, s, docs);
   case S_FACET: {
      bson_t *out = bson_new ();
      bool ok = true;
      for (int f = 0; ok && f < s->nfacets; f++) {
         dj_docs_t copy = {0};
         for (size_t i = 0; i < docs->n; i++) {
            dj_docs_push (&copy, bson_copy (docs->v[i]));
         }
         ok = run_stages (s->facets[f], 0, run, &copy, r->error);
         if (ok) {
            bson_t arr;
            BSON_APPEND_ARRAY_BEGIN (out, s->fnames[f], &arr);
            for (size_t i = 0; i < copy.n; i++) {
               char buf[16];
               const char *key;
               bson_uint32_to_string ((uint32_t) i, &key, buf, sizeof buf);
               bson_append_document (&arr, key, -1, copy.v[i]);
            }
            bson_append_array_end (out, &arr);
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
         ok = read_collection (run, run->db, s->str2, NULL, NULL, &other, r->error);
      }
      if (ok && s->sub) {
         ok = run_stages (s->sub, 0, run, &other, r->error);
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
      eval_setup (r, &ev, NULL);
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
   case S_SORTBYCOUNT: {
      gtable_t t = {0};
      dj_acc_t cnt = {.field = "count", .op = dj_acc_op ("$count")};
      bool ok = true;
      for (size_t i = 0; ok && i < docs->n; i++) {
         dj_eval_t ev;
         bson_value_t id;
         eval_setup (r, &ev, docs->v[i]);
         ok = dj_expr_eval (s->expr, &ev, &id);
         if (ok) {
            group_t *g = gtable_get (&t, &id, 1, &cnt);
            g->st[0].count++;
         }
         dj_arena_reset (r->arena);
      }
      if (ok) {
         dj_docs_clear (docs);
         for (size_t i = 0; i < t.kt.n; i++) {
            bson_t *out = bson_new ();
            BSON_APPEND_VALUE (out, "_id", &t.g[i].id);
            BSON_APPEND_INT32 (out, "count", (int32_t) t.g[i].st[0].count);
            dj_docs_push (docs, out);
         }
         bson_t spec = BSON_INITIALIZER;
         BSON_APPEND_INT32 (&spec, "count", -1);
         dj_sort_t *so = dj_sort_new (&spec, r->error);
         dj_sort_docs (so, docs->v, docs->n);
         dj_sort_destroy (so);
         bson_destroy (&spec);
      }
      gtable_free (&t, 1);
      return ok;
   }
   case S_BUCKET: return run_bucket (r, s, docs);
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
   case S_SETWINDOWFIELDS: return run_window (r, s, docs);
   case S_LISTSESSIONS: dj_docs_clear (docs); return true;
   case S_OUT: return run_out (r, s, docs);
   case S_MERGE: return run_merge (r, s, docs);
   }
   return dj_err (r->error, DJ_InternalError, "unknown stage");
}

static bool
run_stages (const dj_pipeline_t *p, int from, const dj_prun_t *run, dj_docs_t *docs, bson_error_t *error)
{
   rctx_t r = {.run = run, .arena = dj_arena_new (), .error = error};
   bool ok = true;
   for (int i = from; ok && i < p->n; i++) {
      ok = run_stage (&r, p, i, docs);
   }
   dj_arena_destroy (r.arena);
   if (!ok) {
      dj_docs_clear (docs);
   }
   return ok;
}

bool
dj_pipeline_run_docs (const dj_pipeline_t *p, const dj_prun_t *run, dj_docs_t *docs, bson_error_t *error)
{
   return run_stages (p, 0, run, docs, error);
}

bool
dj_pipeline_run (const dj_pipeline_t *p, const dj_prun_t *run, const char *coll, dj_docs_t *out, bson_error_t *error)
{
   int from = 0;
   memset (out, 0, sizeof *out);
   if (coll && dj_pipeline_needs_collection (p)) {
      /* a leading $match goes to the planner, which may use an index */
      const dj_matcher_t *m = NULL;
      if (p->n && p->stages[0].kind == S_MATCH) {
         m = p->stages[0].match;
         from = 1;
      }
      if (!read_collection (run, run->db, coll, m, run->vars, out, error)) {
         dj_docs_clear (out);
         return false;
      }
   }
   return run_stages (p, from, run, out, error);
}
