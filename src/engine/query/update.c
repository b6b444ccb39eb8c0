/*
 * update.c -- update operator documents and replacement documents.
 *
 * https://www.mongodb.com/docs/manual/reference/operator/update/
 *
 * An update is parsed once (every parse-time error MongoDB raises is raised
 * here, before any document is touched), then applied per document on a
 * mutable tree (tree.c). Operators apply in the order of their paths, field
 * by field, as MongoDB 5.0+ does: "update operators process document fields
 * with string-based names in lexicographic order. Fields with numeric names
 * are processed in numeric order."
 */
#include "dj_query.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>

typedef enum {
   U_SET,
   U_UNSET,
   U_INC,
   U_MUL,
   U_MIN,
   U_MAX,
   U_RENAME,
   U_SET_ON_INSERT,
   U_CURRENT_DATE,
   U_PUSH,
   U_ADD_TO_SET,
   U_PULL,
   U_PULL_ALL,
   U_POP
} uop_t;

static const struct {
   const char *name;
   uop_t op;
} op_names[] = {
   {"$set", U_SET},       {"$unset", U_UNSET},           {"$inc", U_INC},
   {"$mul", U_MUL},       {"$min", U_MIN},               {"$max", U_MAX},
   {"$rename", U_RENAME}, {"$setOnInsert", U_SET_ON_INSERT}, {"$currentDate", U_CURRENT_DATE},
   {"$push", U_PUSH},     {"$addToSet", U_ADD_TO_SET},   {"$pull", U_PULL},
   {"$pullAll", U_PULL_ALL}, {"$pop", U_POP},
};

typedef struct {
   uop_t op;
   const char *opname;
   char *dotted;        /* owned */
   dj_path_t path;
   bson_value_t arg;    /* owned copy */
   /* $push / $addToSet */
   bson_value_t *each;  /* owned array */
   int neach;
   bool has_slice, has_position, has_sort;
   int64_t slice, position;
   dj_sort_t *sort;     /* owned; NULL with has_sort means scalar sort */
   int sort_dir;
   /* $pull */
   dj_matcher_t *pull;  /* owned */
   bool pull_docs;      /* condition is a document filter over element documents */
   /* $rename */
   char *to_dotted;     /* owned */
   dj_path_t to;
   /* $currentDate */
   bool timestamp;
} uitem_t;

typedef struct {
   char *id;          /* owned */
   dj_matcher_t *m;   /* owned */
   bool used;
} afilter_t;

struct dj_update {
   bool pipeline;          /* a pipeline-style update: the stages below */
   dj_reshape_t **stages;  /* owned array of owned stages */
   int nstages;
   bool replacement;
   bson_t *repl; /* owned */
   uitem_t *items; /* owned array */
   int n;
   afilter_t *af;  /* owned array */
   int naf;
};

static void
item_cleanup (uitem_t *it)
{
   bson_free (it->dotted);
   dj_path_cleanup (&it->path);
   bson_value_destroy (&it->arg); /* EOD (absent): nothing */
   dj_values_free (it->each, (size_t) it->neach);
   dj_sort_destroy (it->sort);
   dj_matcher_destroy (it->pull);
   bson_free (it->to_dotted);
   dj_path_cleanup (&it->to);
}

void
dj_update_destroy (dj_update_t *u)
{
   if (!u) {
      return;
   }
   bson_destroy (u->repl);
   for (int i = 0; i < u->nstages; i++) {
      dj_reshape_destroy (u->stages[i]);
   }
   bson_free (u->stages);
   for (int i = 0; i < u->n; i++) {
      item_cleanup (&u->items[i]);
   }
   bson_free (u->items);
   for (int i = 0; i < u->naf; i++) {
      bson_free (u->af[i].id);
      dj_matcher_destroy (u->af[i].m);
   }
   bson_free (u->af);
   bson_free (u);
}

bool
dj_update_is_replacement (const dj_update_t *u)
{
   return u->replacement;
}

bool
dj_update_positional (const dj_update_t *u)
{
   for (int i = 0; i < u->n; i++) {
      const uitem_t *it = &u->items[i];
      for (int j = 0; j < it->path.n; j++) {
         if (!strcmp (it->path.parts[j], "$")) {
            return true;
         }
      }
      for (int j = 0; j < it->to.n; j++) {
         if (!strcmp (it->to.parts[j], "$")) {
            return true;
         }
      }
   }
   return false;
}

/* ---- parsing ------------------------------------------------------------ */

static bool
as_whole_number (const bson_value_t *v, int64_t *out)
{
   return dj_value_is_number (v) && dj_value_as_int64_exact (v, out);
}

static bool
parse_each (uitem_t *it, const bson_value_t *arr, bson_error_t *error)
{
   bson_iter_t i;

   if (arr->value_type != BSON_TYPE_ARRAY) {
      return dj_err (error, DJ_BadValue, "The argument to $each in %s must be an array but it was of type: %s", it->opname,
                     dj_type_name (arr->value_type));
   }
   bson_iter_init_from_data (&i, arr->value.v_doc.data, arr->value.v_doc.data_len);
   while (bson_iter_next (&i)) {
      it->each = bson_realloc (it->each, sizeof (bson_value_t) * (size_t) (it->neach + 1));
      bson_value_copy (bson_iter_value (&i), &it->each[it->neach++]);
   }
   return true;
}

static bool
parse_push_arg (uitem_t *it, bson_error_t *error)
{
   const bson_value_t *a = &it->arg;
   bson_iter_t i;
   bool modifiers = false;

   if (a->value_type == BSON_TYPE_DOCUMENT) {
      bson_iter_init_from_data (&i, a->value.v_doc.data, a->value.v_doc.data_len);
      modifiers = bson_iter_find (&i, "$each");
   }
   if (!modifiers) {
      it->each = bson_malloc (sizeof (bson_value_t));
      bson_value_copy (a, &it->each[0]);
      it->neach = 1;
      return true;
   }
   bson_iter_init_from_data (&i, a->value.v_doc.data, a->value.v_doc.data_len);
   while (bson_iter_next (&i)) {
      const char *k = bson_iter_key (&i);
      const bson_value_t *v = bson_iter_value (&i);
      if (!strcmp (k, "$each")) {
         if (!parse_each (it, v, error)) {
            return false;
         }
      } else if (it->op == U_ADD_TO_SET) {
         return dj_err (error, DJ_BadValue, "Found unexpected fields after $each in $addToSet: %s", k);
      } else if (!strcmp (k, "$slice")) {
         if (!as_whole_number (v, &it->slice)) {
            return dj_err (error, DJ_BadValue, "The value for $slice must be an integer value but was given type: %s",
                           dj_type_name (v->value_type));
         }
         it->has_slice = true;
      } else if (!strcmp (k, "$position")) {
         if (!as_whole_number (v, &it->position)) {
            return dj_err (error, DJ_BadValue, "The value for $position must be an integer value, not of type: %s",
                           dj_type_name (v->value_type));
         }
         it->has_position = true;
      } else if (!strcmp (k, "$sort")) {
         it->has_sort = true;
         if (v->value_type == BSON_TYPE_DOCUMENT) {
            bson_t spec;
            bson_init_static (&spec, v->value.v_doc.data, v->value.v_doc.data_len);
            if (spec.len <= 5) {
               return dj_err (error, DJ_BadValue, "The $sort pattern is empty when it should be a set of fields.");
            }
            it->sort = dj_sort_new (&spec, error);
            if (!it->sort) {
               return false;
            }
         } else {
            int64_t d;
            if (!as_whole_number (v, &d) || (d != 1 && d != -1)) {
               return dj_err (error, DJ_BadValue, "The $sort is invalid: use 1/-1 to sort the whole element, or {field:1/-1} to sort embedded fields");
            }
            it->sort_dir = (int) d;
         }
      } else {
         return dj_err (error, DJ_BadValue, "Unrecognized clause in $push: %s", k);
      }
   }
   return true;
}

static bool
parse_item (dj_update_t *u, uitem_t *it, bson_error_t *error)
{
   const bson_value_t *a = &it->arg;

   switch (it->op) {
   case U_INC:
   case U_MUL:
      if (!dj_value_is_number (a)) {
         return dj_err (error, DJ_TypeMismatch, "Cannot %s with non-numeric argument: {%s: %s}",
                        it->op == U_INC ? "increment" : "multiply", it->dotted, dj_type_name (a->value_type));
      }
      return true;
   case U_PUSH:
   case U_ADD_TO_SET: return parse_push_arg (it, error);
   case U_PULL_ALL:
      if (a->value_type != BSON_TYPE_ARRAY) {
         return dj_err (error, DJ_BadValue, "$pullAll requires an array argument but was given a %s",
                        dj_type_name (a->value_type));
      }
      return parse_each (it, a, error);
   case U_POP: {
      int64_t d;
      if (!dj_value_is_number (a)) {
         return dj_err (error, DJ_FailedToParse, "Expected a number in: %s: %s", it->dotted, dj_type_name (a->value_type));
      }
      if (!as_whole_number (a, &d) || (d != 1 && d != -1)) {
         return dj_err (error, DJ_FailedToParse, "$pop expects 1 or -1, found: %g", dj_value_as_double (a));
      }
      return true;
   }
   case U_PULL: {
      bson_t cond;
      bson_iter_t i;
      if (a->value_type == BSON_TYPE_DOCUMENT) {
         bool ops = false;
         bson_iter_init_from_data (&i, a->value.v_doc.data, a->value.v_doc.data_len);
         if (bson_iter_next (&i)) {
            const char *k = bson_iter_key (&i);
            ops = k[0] == '$' && strcmp (k, "$and") && strcmp (k, "$or") && strcmp (k, "$nor");
         }
         bson_init_static (&cond, a->value.v_doc.data, a->value.v_doc.data_len);
         it->pull_docs = !ops;
         it->pull = ops ? dj_matcher_new_value (&cond, error) : dj_matcher_new (&cond, error);
         return it->pull != NULL;
      }
      bson_t wrapped = BSON_INITIALIZER;
      bson_t arr;
      BSON_APPEND_ARRAY_BEGIN (&wrapped, "$in", &arr);
      BSON_APPEND_VALUE (&arr, "0", a);
      bson_append_array_end (&wrapped, &arr);
      it->pull = dj_matcher_new_value (&wrapped, error);
      bson_destroy (&wrapped);
      return it->pull != NULL;
   }
   case U_RENAME: {
      if (a->value_type != BSON_TYPE_UTF8) {
         return dj_err (error, DJ_BadValue, "The 'to' field for $rename must be a string: %s: %s", it->dotted,
                        dj_type_name (a->value_type));
      }
      const char *to = a->value.v_utf8.str;
      if (strchr (it->dotted, '$')) {
         return dj_err (error, DJ_BadValue, "The source field for $rename may not be dynamic: %s", it->dotted);
      }
      if (strchr (to, '$')) {
         return dj_err (error, DJ_BadValue, "The destination field for $rename may not be dynamic: %s", to);
      }
      if (!strcmp (to, it->dotted)) {
         return dj_err (error, DJ_BadValue, "The source and target field for $rename must differ: %s: \"%s\"", it->dotted, to);
      }
      size_t lf = strlen (it->dotted), lt = strlen (to);
      if ((lf < lt && !strncmp (to, it->dotted, lf) && to[lf] == '.') ||
          (lt < lf && !strncmp (to, it->dotted, lt) && it->dotted[lt] == '.')) {
         return dj_err (error, DJ_BadValue, "The source and target field for $rename must not be on the same path: %s: \"%s\"",
                        it->dotted, to);
      }
      it->to_dotted = bson_strdup (to);
      return dj_path_init (&it->to, to, lt, error);
   }
   case U_CURRENT_DATE:
      if (a->value_type == BSON_TYPE_BOOL) {
         return true;
      }
      if (a->value_type == BSON_TYPE_DOCUMENT) {
         bson_iter_t i;
         bson_iter_init_from_data (&i, a->value.v_doc.data, a->value.v_doc.data_len);
         if (bson_iter_next (&i) && !strcmp (bson_iter_key (&i), "$type") && BSON_ITER_HOLDS_UTF8 (&i)) {
            const char *t = bson_iter_utf8 (&i, NULL);
            if (!strcmp (t, "date") || !strcmp (t, "timestamp")) {
               it->timestamp = t[0] == 't';
               if (!bson_iter_next (&i)) {
                  return true;
               }
            }
         }
         return dj_err (error, DJ_BadValue, "The '$type' string field is required to be 'date' or 'timestamp': {$currentDate: {field : {$type: 'date'}}}");
      }
      return dj_err (error, DJ_BadValue, "%s is not valid type for $currentDate. Please use a boolean ('true') or a $type expression ({$type: 'timestamp/date'}).",
                     dj_type_name (a->value_type));
   default: return true;
   }
   (void) u;
}

/* Component-wise path order: numeric components numerically. */
static int
path_cmp (const dj_path_t *a, const dj_path_t *b)
{
   for (int i = 0; i < a->n && i < b->n; i++) {
      uint32_t x, y;
      if (dj_path_is_index (a->parts[i], &x) && dj_path_is_index (b->parts[i], &y)) {
         if (x != y) {
            return x < y ? -1 : 1;
         }
         continue;
      }
      int c = strcmp (a->parts[i], b->parts[i]);
      if (c) {
         return c < 0 ? -1 : 1;
      }
   }
   return (a->n > b->n) - (a->n < b->n);
}

static int
item_cmp (const void *x, const void *y)
{
   return path_cmp (&((const uitem_t *) x)->path, &((const uitem_t *) y)->path);
}

static bool
check_conflicts (dj_update_t *u, bson_error_t *error)
{
   /* Every path an update touches, including $rename targets. */
   int total = u->n;
   for (int i = 0; i < u->n; i++) {
      total += u->items[i].op == U_RENAME;
   }
   const dj_path_t **paths = bson_malloc (sizeof (dj_path_t *) * (size_t) (total ? total : 1));
   const char **names = bson_malloc (sizeof (char *) * (size_t) (total ? total : 1));
   int k = 0;
   for (int i = 0; i < u->n; i++) {
      paths[k] = &u->items[i].path;
      names[k++] = u->items[i].dotted;
      if (u->items[i].op == U_RENAME) {
         paths[k] = &u->items[i].to;
         names[k++] = u->items[i].to_dotted;
      }
   }
   bool ok = true;
   for (int i = 0; i < total && ok; i++) {
      for (int j = 0; j < total && ok; j++) {
         if (i != j && dj_path_is_prefix (paths[i], paths[j]) && (paths[i]->n < paths[j]->n || i < j)) {
            ok = dj_err (error, DJ_ConflictingUpdateOperators, "Updating the path '%s' would create a conflict at '%s'",
                         names[j], names[i]);
         }
      }
   }
   bson_free (paths);
   bson_free (names);
   return ok;
}

static bool
parse_array_filters (dj_update_t *u, const bson_t *filters, bson_error_t *error)
{
   bson_iter_t it;

   if (!filters) {
      return true;
   }
   bson_iter_init (&it, filters);
   while (bson_iter_next (&it)) {
      if (!BSON_ITER_HOLDS_DOCUMENT (&it)) {
         return dj_err (error, DJ_TypeMismatch, "Each array filter must be an object");
      }
      bson_t f;
      const uint8_t *d;
      uint32_t l;
      bson_iter_document (&it, &l, &d);
      bson_init_static (&f, d, l);
      bson_iter_t fi;
      char *id = NULL;
      bson_iter_init (&fi, &f);
      while (bson_iter_next (&fi)) {
         const char *k = bson_iter_key (&fi);
         size_t n = strcspn (k, ".");
         if (k[0] == '$') {
            if (!strcmp (k, "$and") || !strcmp (k, "$or") || !strcmp (k, "$nor")) {
               continue; /* the identifier comes from inside; accept as given */
            }
         }
         if (!id) {
            id = bson_strndup (k, n);
         } else if (strlen (id) != n || strncmp (id, k, n)) {
            dj_err (error, DJ_FailedToParse,
                    "Error parsing array filter :: caused by :: Expected a single top-level field name, found '%s' and '%.*s'", id,
                    (int) n, k);
            bson_free (id);
            return false;
         }
      }
      if (!id) {
         return dj_err (error, DJ_FailedToParse, "Cannot use an expression without a top-level field name in arrayFilters");
      }
      /* https://www.mongodb.com/docs/manual/reference/operator/update/positional-filtered/#behavior */
      bool alnum = id[0] >= 'a' && id[0] <= 'z';
      for (const char *p = id; alnum && *p; p++) {
         alnum = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9');
      }
      if (!alnum) {
         dj_err (error, DJ_BadValue, "Error parsing array filter :: caused by :: The top-level field name must be an alphanumeric string beginning with a lowercase letter, found '%s'", id);
         bson_free (id);
         return false;
      }
      for (int i = 0; i < u->naf; i++) {
         if (!strcmp (u->af[i].id, id)) {
            dj_err (error, DJ_FailedToParse, "Found multiple array filters with the same top-level field name %s", id);
            bson_free (id);
            return false;
         }
      }
      dj_matcher_t *m = dj_matcher_new (&f, error);
      if (!m) {
         bson_free (id);
         return false;
      }
      u->af = bson_realloc (u->af, sizeof (afilter_t) * (size_t) (u->naf + 1));
      u->af[u->naf].id = id;
      u->af[u->naf].m = m;
      u->af[u->naf].used = false;
      u->naf++;
   }
   return true;
}

/* A path's positional parts: one `$` at most and never first; `$[]` and
 * `$[id]` not first either; each `$[id]` names an array filter (marked used).
 * https://www.mongodb.com/docs/manual/reference/operator/update/positional/#restrictions */
static bool
check_identifiers (dj_update_t *u, const dj_path_t *p, const char *dotted, bson_error_t *error)
{
   int dollars = 0;
   for (int i = 0; i < p->n; i++) {
      dollars += !strcmp (p->parts[i], "$");
   }
   if (dollars > 1) {
      return dj_err (error, DJ_BadValue, "Too many positional (i.e. '$') elements found in path '%s'", dotted);
   }
   if (p->n && !strcmp (p->parts[0], "$")) {
      return dj_err (error, DJ_BadValue, "Cannot have positional (i.e. '$') element in the first position in path '%s'", dotted);
   }
   if (p->n && !strncmp (p->parts[0], "$[", 2)) {
      return dj_err (error, DJ_BadValue,
                     "Cannot have array filter identifier (i.e. '$[<id>]') element in the first position in path '%s'", dotted);
   }
   for (int i = 0; i < p->n; i++) {
      const char *c = p->parts[i];
      size_t l = strlen (c);
      if (l > 3 && c[0] == '$' && c[1] == '[' && c[l - 1] == ']') {
         bool found = false;
         for (int k = 0; k < u->naf; k++) {
            if (strlen (u->af[k].id) == l - 3 && !strncmp (u->af[k].id, c + 2, l - 3)) {
               u->af[k].used = found = true;
            }
         }
         if (!found) {
            return dj_err (error, DJ_BadValue, "No array filter found for identifier '%.*s' in path '%s'", (int) (l - 3),
                           c + 2, dotted);
         }
      }
   }
   return true;
}

/* A pipeline-style update: only the document-shaping stages may appear.
 * https://www.mongodb.com/docs/manual/tutorial/update-documents-with-aggregation-pipeline/ */
static bool
parse_stages (dj_update_t *u, const bson_value_t *spec, const dj_vscope_t *scope, bson_error_t *error)
{
   bson_iter_t it;

   u->pipeline = true;
   bson_iter_init_from_data (&it, spec->value.v_doc.data, spec->value.v_doc.data_len);
   while (bson_iter_next (&it)) {
      const char *name = NULL;
      bson_value_t v;
      if (!dj_stage_split (&it, &name, &v, error)) {
         return false;
      }
      if (!dj_reshape_is_stage (name)) {
         return dj_err (error, DJ_InvalidOptions,
                        "Invalid update pipeline: stage %d is not one of $addFields, $set, $project, $unset, $replaceRoot or $replaceWith",
                        u->nstages);
      }
      dj_reshape_t *r = dj_reshape_new (name, &v, scope, error);
      if (!r) {
         return false;
      }
      u->stages = bson_realloc (u->stages, sizeof (dj_reshape_t *) * (size_t) (u->nstages + 1));
      u->stages[u->nstages++] = r;
   }
   return true;
}

/* Runs the stages of a pipeline-style update over doc. NULL on failure. */
static bson_t *
run_stages (const dj_update_t *u, const bson_t *doc, const dj_eval_t *vars, bson_error_t *error)
{
   dj_arena_t *arena = dj_arena_new ();
   bson_t *cur = bson_copy (doc);
   for (int i = 0; cur && i < u->nstages; i++) {
      dj_eval_t ev;
      bson_t *next = bson_new ();
      dj_eval_init_vars (&ev, arena, cur, vars, vars ? vars->now_ms : dj_now_ms (), error);
      bool ok = dj_reshape_apply (u->stages[i], &ev, cur, next);
      dj_arena_reset (arena);
      bson_destroy (cur);
      cur = next;
      if (!ok) {
         bson_destroy (cur);
         cur = NULL;
      }
   }
   dj_arena_destroy (arena);
   return cur;
}

dj_update_t *
dj_update_new (const bson_value_t *spec, const bson_t *array_filters, const dj_vscope_t *scope, bson_error_t *error)
{
   dj_update_t *u = bson_malloc0 (sizeof *u);
   bson_iter_t it, fi;

   if (spec->value_type == BSON_TYPE_ARRAY) {
      /* https://www.mongodb.com/docs/manual/reference/method/db.collection.updateMany/#update-with-aggregation-pipeline */
      if (array_filters && !bson_empty (array_filters)) {
         dj_err (error, DJ_FailedToParse, "arrayFilters may not be specified for pipeline-style updates");
         goto fail;
      }
      if (!parse_stages (u, spec, scope, error)) {
         goto fail;
      }
      return u;
   }
   if (spec->value_type != BSON_TYPE_DOCUMENT) {
      dj_err (error, DJ_FailedToParse, "Update argument must be either an object or an array");
      goto fail;
   }
   bson_iter_init_from_data (&it, spec->value.v_doc.data, spec->value.v_doc.data_len);
   if (!bson_iter_next (&it) || bson_iter_key (&it)[0] != '$') {
      /* replacement document */
      u->replacement = true;
      u->repl = bson_new ();
      bson_iter_init_from_data (&it, spec->value.v_doc.data, spec->value.v_doc.data_len);
      while (bson_iter_next (&it)) {
         if (bson_iter_key (&it)[0] == '$') {
            dj_err (error, DJ_DollarPrefixedFieldName, "The dollar ($) prefixed field '%s' in '%s' is not allowed in the context of an update's replacement document. Consider using an aggregation pipeline with $replaceWith.",
                    bson_iter_key (&it), bson_iter_key (&it));
            goto fail;
         }
         bson_append_value (u->repl, bson_iter_key (&it), -1, bson_iter_value (&it));
      }
      if (array_filters && !bson_empty (array_filters)) {
         dj_err (error, DJ_FailedToParse, "Cannot use array filters with a replacement-style update");
         goto fail;
      }
      return u;
   }
   if (!parse_array_filters (u, array_filters, error)) {
      goto fail;
   }
   bson_iter_init_from_data (&it, spec->value.v_doc.data, spec->value.v_doc.data_len);
   while (bson_iter_next (&it)) {
      const char *opname = bson_iter_key (&it);
      int opi = -1;
      for (size_t i = 0; i < sizeof op_names / sizeof op_names[0]; i++) {
         if (!strcmp (op_names[i].name, opname)) {
            opi = (int) i;
         }
      }
      if (opi < 0) {
         dj_err (error, DJ_FailedToParse, "Unknown modifier: %s. Expected a valid update modifier or pipeline-style update specified as an array",
                 opname);
         goto fail;
      }
      if (!BSON_ITER_HOLDS_DOCUMENT (&it)) {
         dj_err (error, DJ_FailedToParse, "Modifiers operate on fields but we found type %s instead. For example: {$mod: {<field>: ...}} not {%s: %s}",
                 dj_type_name (bson_iter_type (&it)), opname, dj_type_name (bson_iter_type (&it)));
         goto fail;
      }
      bson_iter_recurse (&it, &fi);
      while (bson_iter_next (&fi)) {
         u->items = bson_realloc (u->items, sizeof (uitem_t) * (size_t) (u->n + 1));
         uitem_t *item = &u->items[u->n];
         memset (item, 0, sizeof *item);
         item->op = op_names[opi].op;
         item->opname = op_names[opi].name;
         item->dotted = bson_strdup (bson_iter_key (&fi));
         bson_value_copy (bson_iter_value (&fi), &item->arg);
         u->n++;
         if (!dj_path_init (&item->path, item->dotted, strlen (item->dotted), error)) {
            goto fail;
         }
         if (!check_identifiers (u, &item->path, item->dotted, error) || !parse_item (u, item, error)) {
            goto fail;
         }
      }
   }
   for (int i = 0; i < u->naf; i++) {
      if (!u->af[i].used) {
         dj_err (error, DJ_FailedToParse, "The array filter for identifier '%s' was not used in the update", u->af[i].id);
         goto fail;
      }
   }
   if (!check_conflicts (u, error)) {
      goto fail;
   }
   if (u->n > 1) { /* items is NULL for an empty update ({$set: {}}); qsort (NULL, 0) is undefined */
      qsort (u->items, (size_t) u->n, sizeof (uitem_t), item_cmp);
   }
   return u;

fail:
   dj_update_destroy (u);
   return NULL;
}

/* ---- applying ------------------------------------------------------------ */

typedef struct {
   const dj_update_t *u;
   int32_t pos;
   bool inserting;
   const bson_value_t *id; /* the document's _id, for messages */
   bson_error_t *error;
} actx_t;

static void
id_text (const actx_t *a, char *buf, size_t n)
{
   dj_buf_t b;
   dj_buf_init (&b);
   dj_buf_append (&b, "{_id: ", 6);
   if (a->id) {
      dj_value_to_shell (a->id, &b);
   }
   dj_buf_putc (&b, '}');
   snprintf (buf, n, "%.*s", (int) b.len, (char *) b.data);
   dj_buf_cleanup (&b);
}

static int64_t
current_ms (void)
{
   struct timeval tv;
   gettimeofday (&tv, NULL);
   return (int64_t) tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* Arithmetic with MongoDB's promotion rules for updates (SafeNum): int32
 * overflows into int64; int64 overflow is an error; any double makes a
 * double; any Decimal128 makes an exact Decimal128. Returns false on int64
 * overflow. */
static bool
arith (bool mul, const bson_value_t *a, const bson_value_t *b, bson_value_t *out)
{
   bson_type_t ta = a->value_type, tb = b->value_type;

   if (ta == BSON_TYPE_DECIMAL128 || tb == BSON_TYPE_DECIMAL128) {
      return dj_decimal_arith (mul ? '*' : '+', a, b, out);
   }
   if (ta == BSON_TYPE_DOUBLE || tb == BSON_TYPE_DOUBLE) {
      double x = dj_value_as_double (a), y = dj_value_as_double (b);
      out->value_type = BSON_TYPE_DOUBLE;
      out->value.v_double = mul ? x * y : x + y;
      return true;
   }
   int64_t x = ta == BSON_TYPE_INT32 ? a->value.v_int32 : a->value.v_int64;
   int64_t y = tb == BSON_TYPE_INT32 ? b->value.v_int32 : b->value.v_int64;
   int64_t r;
   if (mul ? __builtin_mul_overflow (x, y, &r) : __builtin_add_overflow (x, y, &r)) {
      return false;
   }
   if (ta == BSON_TYPE_INT32 && tb == BSON_TYPE_INT32 && r >= INT32_MIN && r <= INT32_MAX) {
      out->value_type = BSON_TYPE_INT32;
      out->value.v_int32 = (int32_t) r;
   } else {
      out->value_type = BSON_TYPE_INT64;
      out->value.v_int64 = r;
   }
   return true;
}

static int
cmp_nodes_by_value (const dj_node_t *a, const dj_node_t *b)
{
   bson_t ta, tb;
   bson_value_t va, vb;
   dj_node_value (a, &ta, &va);
   dj_node_value (b, &tb, &vb);
   int c = dj_value_cmp (&va, &vb);
   bson_destroy (&ta);
   bson_destroy (&tb);
   return c;
}

static int
cmp_for_push_sort (const uitem_t *it, const dj_node_t *a, const dj_node_t *b)
{
   if (!it->sort) {
      return cmp_nodes_by_value (a, b) * it->sort_dir;
   }
   /* {$sort: {field: 1}} orders element documents; non-documents sort as
    * documents without the field. */
   bson_t da = BSON_INITIALIZER, db = BSON_INITIALIZER;
   if (a->v.value_type == BSON_TYPE_DOCUMENT) {
      dj_node_to_bson (a, &da);
   }
   if (b->v.value_type == BSON_TYPE_DOCUMENT) {
      dj_node_to_bson (b, &db);
   }
   int c = dj_sort_cmp (it->sort, &da, &db);
   bson_destroy (&da);
   bson_destroy (&db);
   return c;
}

static void
sort_nodes (const uitem_t *it, dj_node_t *arr)
{
   /* insertion sort keeps ties stable; arrays under $push are small */
   for (uint32_t i = 1; i < arr->n; i++) {
      dj_node_t *x = arr->kids[i];
      uint32_t j = i;
      while (j > 0 && cmp_for_push_sort (it, arr->kids[j - 1], x) > 0) {
         arr->kids[j] = arr->kids[j - 1];
         j--;
      }
      arr->kids[j] = x;
   }
}

static bool
apply_leaf (actx_t *a, const uitem_t *it, dj_node_t *parent, const char *key, dj_node_t *child)
{
   char idbuf[256];
   bson_error_t *error = a->error;

   switch (it->op) {
   case U_SET_ON_INSERT:
      if (!a->inserting) {
         return true;
      }
      /* fallthrough */
   case U_SET: dj_node_set_child (parent, key, dj_node_from_value (&it->arg, key)); return true;
   case U_UNSET: {
      uint32_t pos;
      if (!child) {
         return true;
      }
      dj_node_child (parent, key, &pos);
      if (parent->v.value_type == BSON_TYPE_ARRAY) {
         bson_value_t null_v = {.value_type = BSON_TYPE_NULL};
         dj_node_replace_at (parent, pos, dj_node_from_value (&null_v, NULL));
      } else {
         dj_node_remove_at (parent, pos);
      }
      return true;
   }
   case U_INC:
   case U_MUL: {
      bson_value_t r;
      if (!child) {
         if (it->op == U_INC) {
            dj_node_set_child (parent, key, dj_node_from_value (&it->arg, key));
         } else {
            bson_value_t zero = {.value_type = BSON_TYPE_INT32};
            arith (true, &it->arg, &zero, &r); /* 0 of the argument's type */
            dj_node_set_child (parent, key, dj_node_from_value (&r, key));
         }
         return true;
      }
      if (!dj_value_is_number (&child->v)) {
         id_text (a, idbuf, sizeof idbuf);
         return dj_err (error, DJ_TypeMismatch, "Cannot apply %s to a value of non-numeric type. %s has the field '%s' of non-numeric type %s",
                        it->opname, idbuf, key, dj_type_name (child->v.value_type));
      }
      if (!arith (it->op == U_MUL, &child->v, &it->arg, &r)) {
         dj_buf_t b;
         dj_buf_init (&b);
         dj_value_to_shell (&child->v, &b);
         id_text (a, idbuf, sizeof idbuf);
         dj_err (error, DJ_BadValue, "Failed to apply %s operations to current value ((NumberLong)%.*s) for document %s",
                 it->opname, (int) b.len, (char *) b.data, idbuf);
         dj_buf_cleanup (&b);
         return false;
      }
      dj_node_set_child (parent, key, dj_node_from_value (&r, key));
      return true;
   }
   case U_MIN:
   case U_MAX: {
      if (child) {
         bson_t tmp;
         bson_value_t cur;
         dj_node_value (child, &tmp, &cur);
         int c = dj_value_cmp (&it->arg, &cur);
         bson_destroy (&tmp);
         if ((it->op == U_MIN && c >= 0) || (it->op == U_MAX && c <= 0)) {
            return true;
         }
      }
      dj_node_set_child (parent, key, dj_node_from_value (&it->arg, key));
      return true;
   }
   case U_CURRENT_DATE: {
      bson_value_t now;
      int64_t ms = current_ms ();
      if (it->timestamp) {
         now.value_type = BSON_TYPE_TIMESTAMP;
         now.value.v_timestamp.timestamp = (uint32_t) (ms / 1000);
         now.value.v_timestamp.increment = 1;
      } else {
         now.value_type = BSON_TYPE_DATE_TIME;
         now.value.v_datetime = ms;
      }
      dj_node_set_child (parent, key, dj_node_from_value (&now, key));
      return true;
   }
   case U_PUSH:
   case U_ADD_TO_SET: {
      if (!child) {
         child = dj_node_new_container (BSON_TYPE_ARRAY, key);
         dj_node_set_child (parent, key, child);
         child = dj_node_child (parent, key, NULL);
      } else if (child->v.value_type != BSON_TYPE_ARRAY) {
         id_text (a, idbuf, sizeof idbuf);
         return dj_err (error, DJ_BadValue, "The field '%s' must be an array but is of type %s in document %s", key,
                        dj_type_name (child->v.value_type), idbuf);
      }
      if (it->op == U_ADD_TO_SET) {
         for (int i = 0; i < it->neach; i++) {
            bool present = false;
            for (uint32_t k = 0; k < child->n && !present; k++) {
               bson_t tmp;
               bson_value_t cur;
               dj_node_value (child->kids[k], &tmp, &cur);
               present = dj_value_cmp (&cur, &it->each[i]) == 0;
               bson_destroy (&tmp);
            }
            if (!present) {
               dj_node_push (child, dj_node_from_value (&it->each[i], NULL));
            }
         }
         return true;
      }
      int64_t at = (int64_t) child->n;
      if (it->has_position) {
         at = it->position < 0 ? (int64_t) child->n + it->position : it->position;
         if (at < 0) {
            at = 0;
         }
         if (at > (int64_t) child->n) {
            at = (int64_t) child->n;
         }
      }
      for (int i = 0; i < it->neach; i++) {
         dj_node_insert_at (child, (uint32_t) (at + i), dj_node_from_value (&it->each[i], NULL));
      }
      if (it->has_sort) {
         sort_nodes (it, child);
      }
      if (it->has_slice) {
         if (it->slice >= 0) {
            while ((int64_t) child->n > it->slice) {
               dj_node_remove_at (child, child->n - 1);
            }
         } else {
            while ((int64_t) child->n > -it->slice) {
               dj_node_remove_at (child, 0);
            }
         }
      }
      return true;
   }
   case U_PULL:
   case U_PULL_ALL: {
      if (!child) {
         return true;
      }
      if (child->v.value_type != BSON_TYPE_ARRAY) {
         return dj_err (error, DJ_BadValue, "Cannot apply %s to a non-array value", it->opname);
      }
      for (uint32_t k = 0; k < child->n;) {
         bson_t tmp;
         bson_value_t cur;
         bool drop = false;
         dj_node_value (child->kids[k], &tmp, &cur);
         if (it->op == U_PULL_ALL) {
            for (int i = 0; i < it->neach && !drop; i++) {
               drop = dj_value_cmp (&cur, &it->each[i]) == 0;
            }
         } else if (it->pull_docs) {
            drop = cur.value_type == BSON_TYPE_DOCUMENT && dj_matcher_match (it->pull, &tmp, NULL);
         } else {
            drop = dj_matcher_match_value (it->pull, &cur);
         }
         bson_destroy (&tmp);
         if (drop) {
            dj_node_remove_at (child, k);
         } else {
            k++;
         }
      }
      return true;
   }
   case U_POP: {
      if (!child) {
         return true;
      }
      if (child->v.value_type != BSON_TYPE_ARRAY) {
         return dj_err (error, DJ_TypeMismatch, "Path '%s' contains an element of non-array type '%s'", it->dotted,
                        dj_type_name (child->v.value_type));
      }
      if (child->n) {
         dj_node_remove_at (child, dj_value_as_double (&it->arg) > 0 ? child->n - 1 : 0);
      }
      return true;
   }
   case U_RENAME: break; /* handled in apply_rename */
   }
   return true;
}

static bool
creates (uop_t op)
{
   return op != U_UNSET && op != U_PULL && op != U_PULL_ALL && op != U_POP && op != U_RENAME;
}

static bool
array_filter_match (const actx_t *a, const char *ident, size_t len, const dj_node_t *elem)
{
   for (int i = 0; i < a->u->naf; i++) {
      if (strlen (a->u->af[i].id) == len && !strncmp (a->u->af[i].id, ident, len)) {
         bson_t wrap = BSON_INITIALIZER;
         dj_node_append (&wrap, a->u->af[i].id, -1, elem);
         bool ok = dj_matcher_match (a->u->af[i].m, &wrap, NULL);
         bson_destroy (&wrap);
         return ok;
      }
   }
   return false;
}

/* PathNotViable: `field` cannot be created inside the element key: e (a
 * scalar, or an array addressed by name), in MongoDB's words. */
static bool
cannot_create (const actx_t *a, const char *field, const char *key, const dj_node_t *e)
{
   dj_buf_t b;
   bson_t tmp;
   bson_value_t v;

   dj_buf_init (&b);
   dj_node_value (e, &tmp, &v);
   dj_value_to_shell (&v, &b);
   dj_err (a->error, DJ_PathNotViable, "Cannot create field '%s' in element {%s: %.*s}", field, key, (int) b.len,
           (char *) b.data);
   bson_destroy (&tmp);
   dj_buf_cleanup (&b);
   return false;
}

static bool
apply_path (actx_t *a, const uitem_t *it, const dj_path_t *p, dj_node_t *cur, int i)
{
   const char *part = p->parts[i];
   bool last = i + 1 == p->n;
   char posbuf[16];
   size_t plen = strlen (part);

   if (!strcmp (part, "$")) {
      if (a->pos < 0) {
         return dj_err (a->error, DJ_BadValue, "The positional operator did not find the match needed from the query.");
      }
      snprintf (posbuf, sizeof posbuf, "%d", a->pos);
      part = posbuf;
   } else if (plen >= 3 && part[0] == '$' && part[1] == '[' && part[plen - 1] == ']') {
      if (cur->v.value_type != BSON_TYPE_ARRAY) {
         return dj_err (a->error, DJ_BadValue, "Cannot apply array updates to non-array element %s: %s", p->parts[i - 1 >= 0 ? i - 1 : 0],
                        dj_type_name (cur->v.value_type));
      }
      bool all = plen == 3;
      for (uint32_t k = 0; k < cur->n; k++) {
         dj_node_t *e = cur->kids[k];
         if (!all && !array_filter_match (a, part + 2, plen - 3, e)) {
            continue;
         }
         snprintf (posbuf, sizeof posbuf, "%u", k);
         if (last) {
            if (!apply_leaf (a, it, cur, posbuf, e)) {
               return false;
            }
         } else if (dj_node_is_container (e)) {
            if (!apply_path (a, it, p, e, i + 1)) {
               return false;
            }
         } else if (creates (it->op)) {
            return cannot_create (a, p->parts[i + 1], posbuf, e);
         }
      }
      return true;
   }

   if (cur->v.value_type == BSON_TYPE_ARRAY && !dj_path_is_index (part, NULL)) {
      if (!creates (it->op)) {
         return true;
      }
      return cannot_create (a, part, i > 0 ? p->parts[i - 1] : "", cur);
   }
   dj_node_t *child = dj_node_child (cur, part, NULL);
   if (last) {
      return apply_leaf (a, it, cur, part, child);
   }
   if (!child) {
      if (!creates (it->op)) {
         return true;
      }
      if (it->op == U_SET_ON_INSERT && !a->inserting) {
         return true;
      }
      dj_node_set_child (cur, part, dj_node_new_container (BSON_TYPE_DOCUMENT, part));
      child = dj_node_child (cur, part, NULL);
   } else if (!dj_node_is_container (child)) {
      if (!creates (it->op) || (it->op == U_SET_ON_INSERT && !a->inserting)) {
         return true;
      }
      return cannot_create (a, p->parts[i + 1], part, child);
   }
   return apply_path (a, it, p, child, i + 1);
}

static bool
apply_rename (actx_t *a, const uitem_t *it, dj_node_t *doc)
{
   dj_node_t *cur = doc, *parent = NULL;
   uint32_t pos = 0;

   for (int i = 0; i < it->path.n; i++) {
      if (cur->v.value_type == BSON_TYPE_ARRAY) {
         return dj_err (a->error, DJ_BadValue, "The source field cannot be an array element, '%s' in doc with %s being an array",
                        it->dotted, it->path.parts[i - 1]);
      }
      if (cur->v.value_type != BSON_TYPE_DOCUMENT) {
         return true;
      }
      parent = cur;
      cur = dj_node_child (cur, it->path.parts[i], &pos);
      if (!cur) {
         return true; /* missing source: no-op */
      }
   }
   /* check the destination does not run through an array */
   dj_node_t *d = doc;
   for (int i = 0; i < it->to.n - 1 && d; i++) {
      d = dj_node_child (d, it->to.parts[i], NULL);
      if (d && d->v.value_type == BSON_TYPE_ARRAY) {
         return dj_err (a->error, DJ_BadValue, "The destination field cannot be an array element, '%s' in doc with %s being an array",
                        it->to_dotted, it->to.parts[i]);
      }
   }
   dj_node_t *moved = dj_node_copy (cur, NULL);
   dj_node_remove_at (parent, pos);
   uitem_t setter = {.op = U_SET, .opname = "$rename"};
   bson_t tmp;
   dj_node_value (moved, &tmp, &setter.arg);
   bool ok = apply_path (a, &setter, &it->to, doc, 0);
   bson_destroy (&tmp);
   dj_node_free (moved);
   return ok;
}

bool
dj_update_apply (const dj_update_t *u, const bson_t *doc, int32_t pos, bool inserting, const dj_eval_t *vars,
                 bson_t *out, bool *changed, bson_error_t *error)
{
   bson_iter_t it;
   bson_value_t old_id = {.value_type = BSON_TYPE_EOD};
   bool have_id = bson_iter_init_find (&it, doc, "_id");

   if (have_id) {
      old_id = *bson_iter_value (&it);
   }
   if (u->pipeline) {
      bson_t *res = run_stages (u, doc, vars, error);
      if (!res) {
         return false;
      }
      bson_iter_t ni;
      bson_init (out);
      if (bson_iter_init_find (&ni, res, "_id")) {
         if (have_id && !dj_value_identical (bson_iter_value (&ni), &old_id)) {
            bson_destroy (res);
            bson_destroy (out);
            return dj_err (error, DJ_ImmutableField, "Performing an update on the path '_id' would modify the immutable field '_id'");
         }
         BSON_APPEND_VALUE (out, "_id", bson_iter_value (&ni));
      } else if (have_id) {
         BSON_APPEND_VALUE (out, "_id", &old_id);
      }
      bson_iter_init (&ni, res);
      while (bson_iter_next (&ni)) {
         if (strcmp (bson_iter_key (&ni), "_id")) {
            bson_append_value (out, bson_iter_key (&ni), -1, bson_iter_value (&ni));
         }
      }
      bson_destroy (res);
      *changed = out->len != doc->len || memcmp (bson_get_data (out), bson_get_data (doc), doc->len);
      (void) pos;
      (void) inserting;
      return true;
   }
   if (u->replacement) {
      bson_iter_t ri;
      bson_init (out);
      if (bson_iter_init_find (&ri, u->repl, "_id")) {
         if (have_id && !dj_value_identical (bson_iter_value (&ri), &old_id)) {
            dj_buf_t b;
            dj_buf_init (&b);
            dj_value_to_shell (bson_iter_value (&ri), &b);
            dj_err (error, DJ_ImmutableField, "After applying the update, the (immutable) field '_id' was found to have been altered to _id: %.*s",
                    (int) b.len, (char *) b.data);
            dj_buf_cleanup (&b);
            bson_destroy (out);
            return false;
         }
         bson_append_value (out, "_id", 3, bson_iter_value (&ri));
      } else if (have_id) {
         bson_append_value (out, "_id", 3, &old_id);
      }
      bson_iter_init (&ri, u->repl);
      while (bson_iter_next (&ri)) {
         if (strcmp (bson_iter_key (&ri), "_id")) {
            bson_append_value (out, bson_iter_key (&ri), -1, bson_iter_value (&ri));
         }
      }
      *changed = out->len != doc->len || memcmp (bson_get_data (out), bson_get_data (doc), doc->len);
      return true;
   }

   dj_node_t *tree = dj_node_from_bson (doc);
   actx_t a = {.u = u, .pos = pos, .inserting = inserting, .id = have_id ? &old_id : NULL, .error = error};
   bool ok = true;
   for (int i = 0; i < u->n && ok; i++) {
      const uitem_t *item = &u->items[i];
      ok = item->op == U_RENAME ? apply_rename (&a, item, tree) : apply_path (&a, item, &item->path, tree, 0);
   }
   if (ok) {
      bson_init (out);
      dj_node_to_bson (tree, out);
      if (have_id) {
         bson_iter_t ni;
         if (!bson_iter_init_find (&ni, out, "_id") || !dj_value_identical (bson_iter_value (&ni), &old_id)) {
            dj_err (error, DJ_ImmutableField, "Performing an update on the path '_id' would modify the immutable field '_id'");
            bson_destroy (out);
            ok = false;
         }
      }
      if (ok) {
         *changed = out->len != doc->len || memcmp (bson_get_data (out), bson_get_data (doc), doc->len);
      }
   }
   dj_node_free (tree);
   return ok;
}
