/*
 * geonear.c -- the $geoNear stage: documents nearest a point first, each
 * with its distance, through a geospatial index (storage/geo_index.c).
 *
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/geoNear/
 *  - only as the first stage; needs a 2dsphere or 2d index (`key` names
 *    its field when there are several);
 *  - near: a GeoJSON point (distances in meters, spherical) or a legacy
 *    pair (radians with spherical: true, else flat units on a 2d index);
 *  - distanceField (dotted allowed), includeLocs (the location used),
 *    distanceMultiplier, minDistance / maxDistance, query (a filter; no
 *    $near in it).
 */
#include "agg-private.h"

#include <math.h>

void
dj_agg_geonear_cleanup (stage_t *s)
{
   if (s->geo) {
      dj_geo_query_cleanup (s->geo);
   }
   DJ_FREE (s->geo, s->geo_key);
   s->geo = NULL;
   s->geo_key = NULL;
}

static bool
string_opt (const bson_value_t *v, const char *name, char **out, bson_error_t *error)
{
   if (v->value_type != BSON_TYPE_UTF8) {
      return dj_err (error, DJ_TypeMismatch, "$geoNear requires that '%s' option is a String", name);
   }
   bson_free (*out);
   *out = bson_strdup (v->value.v_utf8.str);
   return true;
}

bool
dj_agg_geonear_parse (stage_t *s, const bson_value_t *spec, const dj_vscope_t *scope, bson_error_t *error)
{
   bson_iter_t it;
   /* shallow copies: bson_iter_value's storage is the iterator's */
   bson_value_t nearv, minv, maxv;
   const bson_value_t *near = NULL, *min = NULL, *max = NULL;
   bool spherical = false;

   if (spec->value_type != BSON_TYPE_DOCUMENT) {
      return dj_err (error, 10065, "invalid parameter: expected an object ($geoNear)");
   }
   s->geo_mult = 1;
   bson_iter_init_from_data (&it, spec->value.v_doc.data, spec->value.v_doc.data_len);
   while (bson_iter_next (&it)) {
      const char *k = bson_iter_key (&it);
      const bson_value_t *v = bson_iter_value (&it);
      if (!strcmp (k, "near")) {
         nearv = *v;
         near = &nearv;
      } else if (!strcmp (k, "distanceField")) {
         if (!string_opt (v, k, &s->str, error)) {
            return false;
         }
      } else if (!strcmp (k, "includeLocs")) {
         if (!string_opt (v, k, &s->str2, error)) {
            return false;
         }
      } else if (!strcmp (k, "key")) {
         if (!string_opt (v, k, &s->geo_key, error)) {
            return false;
         }
         if (!s->geo_key[0]) {
            return dj_err (error, DJ_BadValue, "$geoNear parameter 'key' cannot be the empty string");
         }
      } else if (!strcmp (k, "spherical")) {
         spherical = dj_value_truthy (v);
      } else if (!strcmp (k, "minDistance")) {
         minv = *v;
         min = &minv;
      } else if (!strcmp (k, "maxDistance")) {
         maxv = *v;
         max = &maxv;
      } else if (!strcmp (k, "distanceMultiplier")) {
         if (!dj_value_is_number (v) || !(dj_value_as_double (v) >= 0)) {
            return dj_err (error, DJ_BadValue, "distanceMultiplier must be a non-negative number");
         }
         s->geo_mult = dj_value_as_double (v);
      } else if (!strcmp (k, "query")) {
         if (v->value_type != BSON_TYPE_DOCUMENT) {
            return dj_err (error, DJ_TypeMismatch, "query must be an object");
         }
         bson_t q;
         bson_init_static (&q, v->value.v_doc.data, v->value.v_doc.data_len);
         dj_matcher_destroy (s->match);
         if (!(s->match = dj_matcher_new_scoped (&q, scope, error))) {
            return false;
         }
         if (dj_matcher_geo (s->match, NULL, true, NULL)) {
            return dj_err (error, 5626500, "$geoNear, $near, and $nearSphere are not allowed in this context, as these operators require sorting geospatial data. If you do not need sort, consider using $geoWithin instead.");
         }
      } else if (!strcmp (k, "num") || !strcmp (k, "limit") || !strcmp (k, "uniqueDocs")) {
         return dj_err (error, DJ_BadValue, "$geoNear no longer supports the '%s' option", k);
      } else {
         return dj_err (error, DJ_BadValue, "Unknown argument to $geoNear: %s", k);
      }
   }
   if (!near) {
      return dj_err (error, DJ_BadValue, "$geoNear requires a 'near' option as an Array");
   }
   if (!s->str) {
      return dj_err (error, DJ_BadValue, "$geoNear requires a 'distanceField' option as a String");
   }
   s->geo = bson_malloc0 (sizeof *s->geo);
   if (!dj_geo_query_near_point (near, spherical, min, max, s->geo, error)) {
      bson_free (s->geo);
      s->geo = NULL;
      return false;
   }
   return true;
}

typedef struct {
   const stage_t *s;
   dj_docs_t *out;
} near_out_t;

/* Sets the (maybe dotted) field `path` of d to v. */
static void
set_path (dj_node_t *d, const char *path, const bson_value_t *v)
{
   char *buf = bson_strdup (path);
   char *part = buf, *dot;
   while ((dot = strchr (part, '.'))) {
      *dot = '\0';
      uint32_t pos;
      dj_node_t *child = dj_node_child (d, part, &pos);
      if (!child || child->v.value_type != BSON_TYPE_DOCUMENT) {
         child = dj_node_new_container (BSON_TYPE_DOCUMENT, part);
         dj_node_set_child (d, part, child);
      }
      d = child;
      part = dot + 1;
   }
   dj_node_set_child (d, part, dj_node_from_value (v, part));
   bson_free (buf);
}

static bool
near_fn (const bson_t *doc, double dist, const bson_value_t *loc, void *ud)
{
   near_out_t *no = ud;
   dj_node_t *d = dj_node_from_bson (doc);
   bson_value_t dv = {.value_type = BSON_TYPE_DOUBLE};
   dv.value.v_double = dist * no->s->geo_mult;
   set_path (d, no->s->str, &dv);
   if (no->s->str2) {
      set_path (d, no->s->str2, loc);
   }
   bson_t *out = bson_new ();
   dj_node_to_bson (d, out);
   dj_node_free (d);
   dj_docs_push (no->out, out);
   return true;
}

bool
dj_agg_geonear_read (const dj_prun_t *run, const char *coll, const stage_t *s, dj_docs_t *out, bson_error_t *error)
{
   bson_error_t le = {0};
   dj_coll_t *c = dj_coll_load (run->ctx, run->db, coll, &le);
   if (!c) {
      if (le.code) {
         *error = le;
         return false;
      }
      return true; /* a missing collection reads as empty */
   }
   int index;
   near_out_t no = {s, out};
   /* spherical: false is "$near semantics: spherical geometry for 2dsphere
    * indexes and planar geometry for 2d indexes" (the manual, above): a
    * legacy point over a 2dsphere index is measured on the sphere (radians) */
   dj_geo_query_t q = *s->geo; /* shallow: a near query owns no shape */
   bson_error_t flat_err;
   if (!dj_geo_near_index (c, &q, s->geo_key, &index, &flat_err)) {
      q.spherical = true;
      if (s->geo->spherical || flat_err.code != 291 || !dj_geo_near_index (c, &q, s->geo_key, &index, error)) {
         if (s->geo->spherical || flat_err.code != 291) {
            *error = flat_err;
         }
         dj_coll_free (c);
         return false;
      }
   }
   bool ok = dj_geo_near (run->ctx, c, index, &q, s->match, 0, near_fn, &no, error);
   dj_coll_free (c);
   return ok;
}
