/*
 * project.c -- find projections.
 *
 * https://www.mongodb.com/docs/manual/reference/method/db.collection.find/#projection
 * {a: 1} includes, {a: 0} excludes (the two do not mix, except for _id);
 * {a: {$slice: n}} / {$slice: [skip, n]} trims an array; {a: {$elemMatch: q}}
 * keeps the first matching element; {"a.$": 1} keeps the element the query
 * matched.
 */
#include "spec-private.h"
#include "dj_bson_walk.h"

#include <stdio.h>

/* A find projection is a shaping (spec-private.h): a $project stage when it
 * has expressions, else RS_FIND over its specification tree. */
void
dj_projection_destroy (dj_projection_t *p)
{
   dj_reshape_destroy (p);
}

/* Since MongoDB 4.4 find projections take aggregation expressions
 * ({total: {$add: ["$a", "$b"]}}, {name: "$user.name"}): such projections
 * are $project stages. https://www.mongodb.com/docs/manual/reference/method/db.collection.find/#std-label-find-projection */
static bool
has_expressions (const bson_t *spec)
{
   bson_iter_t it;
   bson_iter_init (&it, spec);
   while (bson_iter_next (&it)) {
      const bson_value_t *v = bson_iter_value (&it);
      if (v->value_type == BSON_TYPE_BOOL || dj_value_is_number (v)) {
         continue;
      }
      if (v->value_type == BSON_TYPE_DOCUMENT) {
         bson_iter_t oi;
         bson_iter_init_from_data (&oi, v->value.v_doc.data, v->value.v_doc.data_len);
         if (bson_iter_next (&oi) &&
             (!strcmp (bson_iter_key (&oi), "$slice") || !strcmp (bson_iter_key (&oi), "$elemMatch"))) {
            continue;
         }
      }
      return true;
   }
   return false;
}

/* The name of {$meta: name} (a projection value), else NULL. */
static const char *
meta_name (const bson_value_t *v)
{
   bson_iter_t oi;
   if (v->value_type != BSON_TYPE_DOCUMENT || !bson_iter_init_from_data (&oi, v->value.v_doc.data, v->value.v_doc.data_len) ||
       !bson_iter_next (&oi) || strcmp (bson_iter_key (&oi), "$meta") || !BSON_ITER_HOLDS_UTF8 (&oi)) {
      return NULL;
   }
   const char *name = bson_iter_utf8 (&oi, NULL);
   return bson_iter_next (&oi) ? NULL : name;
}

static dj_projection_t *projection_new (const bson_t *spec, bson_error_t *error);

/* {score: {$meta: "textScore"}} joins an inclusion or an exclusion
 * projection without making it either: alone, it keeps the whole document
 * and adds the score (the manual's $text examples).
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/meta/#usage */
dj_projection_t *
dj_projection_new (const bson_t *spec, bson_error_t *error)
{
   bson_iter_t it;
   bson_t rest = BSON_INITIALIZER, *meta = NULL;
   bson_iter_init (&it, spec);
   while (bson_iter_next (&it)) {
      const char *name = meta_name (bson_iter_value (&it));
      if (name && !strcmp (name, "textScore") && !strchr (bson_iter_key (&it), '.')) {
         meta = meta ? meta : bson_new ();
         BSON_APPEND_UTF8 (meta, bson_iter_key (&it), name);
      } else {
         bson_append_iter (&rest, NULL, 0, &it);
      }
   }
   dj_projection_t *p = NULL;
   if (!meta || has_expressions (&rest)) {
      p = projection_new (spec, error); /* a $project stage computes $meta itself */
   } else if ((p = projection_new (&rest, error)) && p->kind == RS_FIND) {
      p->meta = meta;
      meta = NULL;
   }
   bson_destroy (&rest);
   if (meta) {
      bson_destroy (meta);
   }
   return p;
}

static dj_projection_t *
projection_new (const bson_t *spec, bson_error_t *error)
{
   if (has_expressions (spec)) {
      bson_value_t sv;
      dj_value_from_doc (spec, false, &sv);
      return dj_reshape_new ("$project", &sv, NULL, error);
   }

   bson_iter_t it;
   dj_projection_t *p = bson_malloc0 (sizeof *p);
   int mode = 0; /* 1 inclusion, -1 exclusion */
   bool id_included = false;

   p->kind = RS_FIND;
   p->shape = dj_spec_new ();
   bson_iter_init (&it, spec);
   while (bson_iter_next (&it)) {
      const char *key = bson_iter_key (&it);
      const bson_value_t *v = bson_iter_value (&it);
      size_t kl = strlen (key);
      bool incl;

      if (key[0] == '$') {
         dj_err (error, DJ_BadValue, "FieldPath field names may not start with '$'. Consider using $getField or $setField.");
         goto fail;
      }
      if (kl >= 2 && !strcmp (key + kl - 2, ".$")) {
         if (!dj_spec_truthy (v, &incl) || !incl) {
            dj_err (error, 31395, "positional projection cannot be used with an exclusion projection");
            goto fail;
         }
         if (mode < 0) {
            dj_err (error, 31254, "Cannot do exclusion on field %s in inclusion projection", key);
            goto fail;
         }
         char *base = bson_strndup (key, kl - 2);
         dj_spec_node_t *n = dj_spec_add (p->shape, base, false, error);
         bson_free (base);
         if (!n) {
            goto fail;
         }
         n->kind = DJ_SPEC_POSITIONAL;
         mode = 1;
         continue;
      }
      if (v->value_type == BSON_TYPE_DOCUMENT) {
         bson_iter_t oi;
         bson_iter_init_from_data (&oi, v->value.v_doc.data, v->value.v_doc.data_len);
         if (!bson_iter_next (&oi)) {
            dj_err (error, 51270, "An empty sub-projection is not a valid value. Found empty object at path");
            goto fail;
         }
         const char *op = bson_iter_key (&oi);
         if (!strcmp (op, "$slice")) {
            dj_spec_node_t *n = dj_spec_add (p->shape, key, false, error);
            if (!n) {
               goto fail;
            }
            const bson_value_t *a = bson_iter_value (&oi);
            n->kind = DJ_SPEC_SLICE; /* $slice alone neither includes nor excludes */
            if (a->value_type == BSON_TYPE_ARRAY) {
               bson_iter_t ai;
               bson_value_t parts[2];
               int k = 0;
               bson_iter_init_from_data (&ai, a->value.v_doc.data, a->value.v_doc.data_len);
               while (bson_iter_next (&ai) && k < 3) {
                  if (k < 2) {
                     parts[k] = *bson_iter_value (&ai);
                  }
                  k++;
               }
               if (k != 2 || !dj_value_is_number (&parts[0]) || !dj_value_is_number (&parts[1])) {
                  dj_err (error, 28724, "First argument to $slice must be an array, second must be a number");
                  goto fail;
               }
               n->skip = (int64_t) dj_value_as_double (&parts[0]);
               n->limit = (int64_t) dj_value_as_double (&parts[1]);
               if (n->limit <= 0) {
                  dj_err (error, 28724, "Third argument to $slice must be positive: %" PRId64, n->limit);
                  goto fail;
               }
            } else if (dj_value_is_number (a)) {
               int64_t s = (int64_t) dj_value_as_double (a);
               n->skip = s >= 0 ? 0 : s;
               n->limit = s >= 0 ? s : -s;
            } else {
               dj_err (error, 28724, "First argument to $slice must be an array, second must be a number");
               goto fail;
            }
            continue;
         }
         if (!strcmp (op, "$elemMatch")) {
            if (!BSON_ITER_HOLDS_DOCUMENT (&oi)) {
               dj_err (error, DJ_BadValue, "elemMatch: Invalid argument, object required.");
               goto fail;
            }
            if (mode < 0) {
               dj_err (error, 31255, "Cannot use $elemMatch projection on a field in an exclusion projection");
               goto fail;
            }
            if (strchr (key, '.')) {
               dj_err (error, DJ_BadValue, "Cannot use $elemMatch projection on a nested field.");
               goto fail;
            }
            dj_spec_node_t *n = dj_spec_add (p->shape, key, false, error);
            if (!n) {
               goto fail;
            }
            n->kind = DJ_SPEC_ELEMMATCH;
            /* {a: {$elemMatch: q}} keeps the first element e of a with {a: e} matching {a: {$elemMatch: q}} */
            bson_t q = BSON_INITIALIZER, em;
            BSON_APPEND_DOCUMENT_BEGIN (&q, "x", &em);
            BSON_APPEND_VALUE (&em, "$elemMatch", bson_iter_value (&oi));
            bson_append_document_end (&q, &em);
            n->elem = dj_matcher_new (&q, error);
            bson_destroy (&q);
            if (!n->elem) {
               goto fail;
            }
            mode = 1;
            continue;
         }
         dj_err (error, DJ_NotImplemented,
                 "projection expressions ('%s' in field '%s') are not supported by the embedded engine until the aggregation expression evaluator lands",
                 op, key);
         goto fail;
      }
      if (!dj_spec_truthy (v, &incl)) {
         dj_err (error, DJ_NotImplemented,
                 "literal and expression projection values (field '%s') are not supported by the embedded engine until the aggregation expression evaluator lands",
                 key);
         goto fail;
      }
      bool is_id = !strcmp (key, "_id");
      if (is_id) {
         p->id_excluded = !incl;
         id_included = incl;
      } else if (mode != 0 && mode != (incl ? 1 : -1)) {
         if (incl) {
            dj_err (error, 31253, "Cannot do inclusion on field %s in exclusion projection", key);
         } else {
            dj_err (error, 31254, "Cannot do exclusion on field %s in inclusion projection", key);
         }
         goto fail;
      } else {
         mode = incl ? 1 : -1;
      }
      dj_spec_node_t *n = dj_spec_add (p->shape, key, false, error);
      if (!n) {
         goto fail;
      }
      n->kind = incl ? DJ_SPEC_INCLUDE : DJ_SPEC_EXCLUDE;
   }
   /* {_id: 0} alone is an exclusion projection; {} keeps everything */
   p->inclusion = mode > 0 || (mode == 0 && id_included);
   return p;
fail:
   dj_projection_destroy (p);
   return NULL;
}

static void
append_sliced (bson_t *out, const char *key, const bson_value_t *v, const dj_spec_node_t *n)
{
   if (v->value_type != BSON_TYPE_ARRAY) {
      bson_append_value (out, key, -1, v);
      return;
   }
   bson_iter_t it;
   int64_t len = dj_value_count (v), i = 0, start, count;
   start = n->skip >= 0 ? n->skip : len + n->skip;
   if (start < 0) {
      start = 0;
   }
   count = n->limit;
   bson_t arr;
   char buf[16];
   uint32_t o = 0;
   bson_append_array_begin (out, key, -1, &arr);
   bson_iter_init_from_data (&it, v->value.v_doc.data, v->value.v_doc.data_len);
   while (bson_iter_next (&it)) {
      if (i >= start && i < start + count) {
         bson_append_value (&arr, dj_array_key (o++, buf), -1, bson_iter_value (&it));
      }
      i++;
   }
   bson_append_array_end (out, &arr);
}

/* {a: {$elemMatch: q}}: the first element of the array v that q matches, as
 * a one-element array (nothing when none does or v is not an array). */
static void
append_elem_match (bson_t *out, const char *key, const bson_value_t *v, const dj_matcher_t *elem)
{
   if (v->value_type != BSON_TYPE_ARRAY) {
      return;
   }
   bson_iter_t ai;
   bson_iter_init_from_data (&ai, v->value.v_doc.data, v->value.v_doc.data_len);
   while (bson_iter_next (&ai)) {
      bson_t probe = BSON_INITIALIZER, one;
      BSON_APPEND_ARRAY_BEGIN (&probe, "x", &one);
      BSON_APPEND_VALUE (&one, "0", bson_iter_value (&ai));
      bson_append_array_end (&probe, &one);
      bool hit = dj_matcher_match (elem, &probe, NULL);
      bson_destroy (&probe);
      if (hit) {
         bson_t arr;
         bson_append_array_begin (out, key, -1, &arr);
         BSON_APPEND_VALUE (&arr, "0", bson_iter_value (&ai));
         bson_append_array_end (out, &arr);
         return;
      }
   }
}

/* {"a.$": 1}: element `pos` (the query's positional match) of the array v,
 * as a one-element array; a value that is not an array as it is. False
 * when there is no such element. */
static bool
append_positional (bson_t *out, const char *key, const bson_value_t *v, int32_t pos)
{
   if (v->value_type != BSON_TYPE_ARRAY) {
      bson_append_value (out, key, -1, v);
      return true;
   }
   bson_value_t e;
   char idx[16];
   snprintf (idx, sizeof idx, "%d", pos);
   if (pos < 0 || !dj_value_get_field (v, idx, &e)) {
      return false;
   }
   bson_t arr;
   bson_append_array_begin (out, key, -1, &arr);
   BSON_APPEND_VALUE (&arr, "0", &e);
   bson_append_array_end (out, &arr);
   return true;
}

typedef struct {
   int32_t pos;
   bool pos_failed;
} papply_t;

static void project_doc (const dj_projection_t *p, const dj_spec_node_t *spec, const bson_value_t *doc, bson_t *out, int depth,
                         papply_t *st);

/* Projects one value under spec node n (n has children). */
static void
project_value (const dj_projection_t *p, const dj_spec_node_t *n, const char *key, const bson_value_t *v, bson_t *out, int depth,
               papply_t *st)
{
   if (v->value_type == BSON_TYPE_DOCUMENT) {
      bson_t sub;
      bson_append_document_begin (out, key, -1, &sub);
      project_doc (p, n, v, &sub, depth + 1, st);
      bson_append_document_end (out, &sub);
   } else if (v->value_type == BSON_TYPE_ARRAY) {
      bson_t arr;
      bson_iter_t it;
      char buf[16];
      const char *k;
      uint32_t o = 0;
      bson_append_array_begin (out, key, -1, &arr);
      bson_iter_init_from_data (&it, v->value.v_doc.data, v->value.v_doc.data_len);
      while (bson_iter_next (&it)) {
         const bson_value_t *e = bson_iter_value (&it);
         if (e->value_type == BSON_TYPE_DOCUMENT || e->value_type == BSON_TYPE_ARRAY) {
            bson_uint32_to_string (o++, &k, buf, sizeof buf);
            project_value (p, n, k, e, &arr, depth, st);
         } else if (!p->inclusion) {
            bson_append_value (&arr, dj_array_key (o++, buf), -1, e);
         }
      }
      bson_append_array_end (out, &arr);
   } else if (!p->inclusion) {
      bson_append_value (out, key, -1, v);
   }
}


static void
project_doc (const dj_projection_t *p, const dj_spec_node_t *spec, const bson_value_t *doc, bson_t *out, int depth, papply_t *st)
{
   bson_iter_t it;

   bson_iter_init_from_data (&it, doc->value.v_doc.data, doc->value.v_doc.data_len);
   while (bson_iter_next (&it)) {
      const char *key = bson_iter_key (&it);
      const bson_value_t *v = bson_iter_value (&it);
      const dj_spec_node_t *n = dj_spec_child (spec, key, NULL);
      bool is_id = depth == 0 && !strcmp (key, "_id");

      if (is_id && (!n || dj_spec_whole (n))) {
         if (!p->id_excluded) {
            bson_append_iter (out, NULL, 0, &it); /* (the element's bytes as they are) */
         }
         continue;
      }
      if (!n) {
         if (!p->inclusion) {
            bson_append_value (out, key, -1, v);
         }
         continue;
      }
      switch (n->kind) {
      case DJ_SPEC_ELEMMATCH: append_elem_match (out, key, v, n->elem); break;
      case DJ_SPEC_POSITIONAL:
         if (!append_positional (out, key, v, st->pos)) {
            st->pos_failed = true;
         }
         break;
      case DJ_SPEC_SLICE: append_sliced (out, key, v, n); break;
      case DJ_SPEC_INCLUDE:
      case DJ_SPEC_EXCLUDE:
         if (p->inclusion) {
            bson_append_iter (out, NULL, 0, &it);
         }
         break;
      case DJ_SPEC_SUB: project_value (p, n, key, v, out, depth, st); break;
      case DJ_SPEC_EXPR: break; /* not in find projections: those with expressions run as $project */
      }
   }
}

/* Appends the metadata fields of `meta` ({field: "textScore"}) to out,
 * replacing a stored field of the same name ("the existing fields will
 * return with the $meta values instead of with the stored values":
 * https://www.mongodb.com/docs/v4.0/reference/operator/projection/meta/). */
static bool
add_meta (const bson_t *meta, const bson_t *doc, bson_t *out, bson_error_t *error)
{
   bson_iter_t mi, score, oi;
   if (!bson_iter_init_find (&score, doc, DJ_META_TEXT_SCORE)) {
      bson_destroy (out);
      return dj_err (error, 40218, "query requires text score metadata, but it is not available");
   }
   bson_t kept = BSON_INITIALIZER;
   bson_iter_init (&oi, out);
   while (bson_iter_next (&oi)) {
      if (!bson_has_field (meta, bson_iter_key (&oi))) {
         bson_append_iter (&kept, NULL, 0, &oi);
      }
   }
   bson_iter_init (&mi, meta);
   while (BSON_ITER_HOLDS_DOUBLE (&score) && bson_iter_next (&mi)) { /* null: no score (storage/text_or.c) */
      bson_append_iter (&kept, bson_iter_key (&mi), -1, &score);
   }
   bson_destroy (out);
   bson_steal (out, &kept);
   return true;
}

/* Whether p includes top-level fields alone (SQL's select list: {a: 1,
 * b: 1, _id: 0}): every field of its tree an inclusion, _id either way. */
static bool
flat_inclusion (const dj_projection_t *p)
{
   if (!p->inclusion || p->meta || !p->shape || p->shape->nkids == 0) {
      return false;
   }
   for (int i = 0; i < p->shape->nkids; i++) {
      const dj_spec_node_t *n = p->shape->kids[i];
      if (n->kind != DJ_SPEC_INCLUDE && !(n->kind == DJ_SPEC_EXCLUDE && !strcmp (n->name, "_id"))) {
         return false;
      }
   }
   return true;
}

/* project_doc's result for a flat_inclusion projection: the elements it
 * keeps (_id unless excluded, the fields named) copied as bytes, in the
 * document's order, into one buffer that `out` is made from once. The
 * typed append of each field (bson_append_iter) cost ~130 instructions a
 * field, most of a Django filter()[:50]'s projection (callgrind); the
 * elements are found by dj_bson_walk (libbson's iterator was ~95 a field,
 * half of what is left) into a buffer on the stack for a row of the
 * usual size (a malloc and free a row less). */
static void
project_flat (const dj_projection_t *p, const bson_t *doc, bson_t *out)
{
   uint8_t small[512];
   /* the kept elements are no longer than the document */
   uint8_t *buf = doc->len <= sizeof small ? small : bson_malloc (doc->len);
   uint32_t n = 4;
   dj_bwalk_t w;
   /* the fields usually come in the projection's order (the INSERT's and
    * the select list's): each is first looked for at the field after the
    * last one found, then among all */
   int next = 0;
   dj_bwalk_init (&w, bson_get_data (doc), doc->len);
   while (dj_bwalk_next (&w)) {
      bool keep;
      if (w.key_len == 3 && !memcmp (w.key, "_id", 3)) {
         keep = !p->id_excluded;
      } else if (next < p->shape->nkids && !strcmp (p->shape->kids[next]->name, w.key)) {
         keep = true;
         next++;
      } else {
         keep = dj_spec_child (p->shape, w.key, &next) != NULL;
         next++; /* (-1 + 1 when absent: from the first again) */
      }
      if (keep) {
         size_t len;
         const uint8_t *elem = dj_bwalk_elem (&w, &len);
         memcpy (buf + n, elem, len);
         n += (uint32_t) len;
      }
   }
   buf[n++] = 0;
   uint32_t le = BSON_UINT32_TO_LE (n);
   memcpy (buf, &le, 4);
   bson_t view;
   bson_init (out);
   if (bson_init_static (&view, buf, n)) {
      bson_concat (out, &view);
   }
   if (buf != small) {
      bson_free (buf);
   }
}

bool
dj_projection_apply (const dj_projection_t *p, const bson_t *doc, int32_t pos, bson_t *out, bson_error_t *error)
{
   bson_value_t dv;
   papply_t st = {.pos = pos};

   if (p->kind != RS_FIND) {
      dj_arena_t *arena = dj_arena_new ();
      dj_eval_t ev;
      dj_eval_init (&ev, arena, doc, dj_now_ms (), error);
      bson_init (out);
      bool ok = dj_reshape_apply (p, &ev, doc, out);
      dj_arena_destroy (arena);
      if (!ok) {
         bson_destroy (out);
      }
      return ok;
   }

   if (flat_inclusion (p)) {
      project_flat (p, doc, out);
      return true;
   }
   dj_value_from_doc (doc, false, &dv);
   bson_init (out);
   project_doc (p, p->shape, &dv, out, 0, &st);
   if (st.pos_failed) {
      bson_destroy (out);
      return dj_err (error, 51246, "Executor error during find command :: caused by :: positional operator '.$' couldn't find a matching element in the array");
   }
   if (p->meta) {
      return add_meta (p->meta, doc, out, error);
   }
   return true;
}
