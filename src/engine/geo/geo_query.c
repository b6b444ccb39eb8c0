/*
 * geo_query.c -- the geospatial query operators: their arguments parsed
 * into a dj_geo_query_t, and a stored value tested against one.
 *
 * https://www.mongodb.com/docs/manual/reference/operator/query-geospatial/
 *  - $geoWithin: { $geometry: Polygon | MultiPolygon } (spherical), or the
 *    legacy shapes $box, $polygon, $center (flat) and $centerSphere
 *    (spherical, radius in radians). The flat shapes hold points only.
 *  - $geoIntersects: { $geometry: <any GeoJSON> } (spherical).
 *  - $near: a legacy pair (flat distances) or { $geometry: Point } (meters);
 *    $nearSphere: spherical (radians for a legacy pair, meters for
 *    GeoJSON); $minDistance / $maxDistance beside the point or inside the
 *    $near document.
 *    https://www.mongodb.com/docs/manual/reference/operator/query/near/
 *    https://www.mongodb.com/docs/manual/reference/operator/query/nearSphere/
 */
#include "dj_geo.h"

#include <math.h>

void
dj_geo_query_cleanup (dj_geo_query_t *q)
{
   dj_geo_cleanup (&q->shape);
}

static bool
pair_and_radius (const bson_value_t *v, const char *op, dj_geo_pt_t *c, double *r, bson_error_t *error)
{
   bson_iter_t it;
   if (v->value_type != BSON_TYPE_ARRAY) {
      return dj_err (error, DJ_BadValue, "%s must be an array", op);
   }
   bson_iter_init_from_data (&it, v->value.v_doc.data, v->value.v_doc.data_len);
   if (!bson_iter_next (&it) || !dj_geo_parse_legacy (bson_iter_value (&it), c, error)) {
      return dj_err (error, DJ_BadValue, "%s must be an array of a point and a radius", op);
   }
   if (!bson_iter_next (&it) || !dj_value_is_number (bson_iter_value (&it))) {
      return dj_err (error, DJ_BadValue, "radius must be a number");
   }
   *r = dj_value_as_double (bson_iter_value (&it));
   if (!(*r >= 0) || isinf (*r)) {
      return dj_err (error, DJ_BadValue, "radius must be a non-negative number");
   }
   if (bson_iter_next (&it)) {
      return dj_err (error, DJ_BadValue, "Only 2 fields allowed for circular region");
   }
   return true;
}

/* The legacy points of array v appended to q->shape as one ring. */
static bool
legacy_points (const bson_value_t *v, dj_geo_query_t *q, int *n, bson_error_t *error)
{
   bson_iter_t it;
   *n = 0;
   if (v->value_type != BSON_TYPE_ARRAY) {
      return dj_err (error, DJ_BadValue, "Point must be an array or object");
   }
   bson_iter_init_from_data (&it, v->value.v_doc.data, v->value.v_doc.data_len);
   while (bson_iter_next (&it)) {
      dj_geo_pt_t p;
      if (!dj_geo_parse_legacy (bson_iter_value (&it), &p, error)) {
         return false;
      }
      DJ_GROW (q->shape.pts, q->shape.npts, q->shape.cap_pts, 8);
      q->shape.pts[q->shape.npts++] = p;
      (*n)++;
   }
   return true;
}

bool
dj_geo_query_parse (dj_geo_op_t op, const bson_value_t *arg, dj_geo_query_t *q, bson_error_t *error)
{
   bson_iter_t it;
   memset (q, 0, sizeof *q);
   q->op = op;
   const char *name = op == DJ_GEO_WITHIN ? "$geoWithin" : "$geoIntersects";
   if (arg->value_type != BSON_TYPE_DOCUMENT) {
      return dj_err (error, DJ_BadValue, "%s must be an object", name);
   }
   bson_iter_init_from_data (&it, arg->value.v_doc.data, arg->value.v_doc.data_len);
   if (!bson_iter_next (&it)) {
      return dj_err (error, DJ_BadValue, "%s must contain a geometry", name);
   }
   const char *k = bson_iter_key (&it);
   const bson_value_t *v = bson_iter_value (&it);
   bool ok;
   if (!strcmp (k, "$geometry")) {
      q->kind = DJ_GEO_R_GEOMETRY;
      ok = v->value_type == BSON_TYPE_DOCUMENT ? dj_geo_parse (v, false, &q->shape, error)
                                               : dj_err (error, DJ_BadValue, "$geometry must be an object");
      if (ok && op == DJ_GEO_WITHIN) {
         for (int i = 0; i < q->shape.nparts && ok; i++) {
            if (q->shape.parts[i].kind != DJ_GEO_POLYGON) {
               ok = dj_err (error, DJ_BadValue, "$geoWithin not supported with provided geometry: %s",
                            "only Polygon and MultiPolygon regions hold other geometries");
            }
         }
      }
   } else if (op != DJ_GEO_WITHIN) {
      ok = dj_err (error, DJ_BadValue, "$geoIntersects must contain a $geometry");
   } else if (!strcmp (k, "$box")) {
      int n;
      q->kind = DJ_GEO_R_BOX;
      ok = legacy_points (v, q, &n, error) && (n == 2 || dj_err (error, DJ_BadValue, "Box must have exactly 2 points"));
   } else if (!strcmp (k, "$polygon")) {
      int n;
      q->kind = DJ_GEO_R_POLYGON;
      ok = legacy_points (v, q, &n, error) &&
           (n >= 3 || dj_err (error, DJ_BadValue, "Polygon must have at least 3 points"));
   } else if (!strcmp (k, "$center") || !strcmp (k, "$centerSphere")) {
      q->kind = !strcmp (k, "$center") ? DJ_GEO_R_CENTER : DJ_GEO_R_CENTER_SPHERE;
      ok = pair_and_radius (v, k, &q->center, &q->radius, error);
      if (ok && q->kind == DJ_GEO_R_CENTER_SPHERE &&
          (q->center.x < -180 || q->center.x > 180 || q->center.y < -90 || q->center.y > 90)) {
         ok = dj_err (error, DJ_BadValue, "Spherical MaxDistance > PI. Are you sure you are using radians?");
      }
   } else {
      ok = dj_err (error, DJ_BadValue, "unknown geo specifier: %s", k);
   }
   if (ok && bson_iter_next (&it) && strcmp (bson_iter_key (&it), "$uniqueDocs") != 0) {
      ok = dj_err (error, DJ_BadValue, "can't parse extra field: %s", bson_iter_key (&it));
   }
   if (!ok) {
      dj_geo_query_cleanup (q);
   }
   return ok;
}

static bool
distance_arg (const bson_value_t *v, const char *name, double *out, bson_error_t *error)
{
   if (!dj_value_is_number (v)) {
      return dj_err (error, DJ_BadValue, "%s must be a number", name);
   }
   *out = dj_value_as_double (v);
   if (!(*out >= 0)) {
      return dj_err (error, DJ_BadValue, "%s must be non-negative", name);
   }
   return true;
}

static bool
near_point (const bson_value_t *pt, dj_geo_query_t *q, bson_error_t *error)
{
   if (dj_geo_is_geojson (pt)) {
      dj_geo_t g;
      if (!dj_geo_parse (pt, false, &g, error)) {
         return false;
      }
      bool is_point = g.nparts == 1 && g.parts[0].kind == DJ_GEO_POINT;
      if (is_point) {
         q->center = g.pts[0];
      }
      dj_geo_cleanup (&g);
      if (!is_point) {
         return dj_err (error, DJ_BadValue, "$near requires a point, given a GeoJSON %s", "non-Point geometry");
      }
      q->spherical = q->meters = true;
      return true;
   }
   return dj_geo_parse_legacy (pt, &q->center, error);
}

bool
dj_geo_query_parse_near (const char *op, const bson_value_t *arg, const bson_value_t *opdoc, dj_geo_query_t *q,
                         bson_error_t *error)
{
   bson_iter_t it;
   memset (q, 0, sizeof *q);
   q->op = DJ_GEO_NEAR;
   q->kind = DJ_GEO_R_NEAR;
   q->max_dist = INFINITY;
   bool sphere = !strcmp (op, "$nearSphere") || !strcmp (op, "$geoNear");
   const bson_value_t *dists = opdoc; /* where $minDistance/$maxDistance sit */
   if (arg->value_type == BSON_TYPE_DOCUMENT) {
      bson_value_t g;
      if (dj_value_get_field (arg, "$geometry", &g)) {
         if (!near_point (&g, q, error)) {
            return false;
         }
         dists = arg;
      } else if (!near_point (arg, q, error)) {
         return false;
      }
   } else if (!near_point (arg, q, error)) {
      return false;
   }
   q->spherical |= sphere;
   for (int pass = 0; pass < 2; pass++) {
      const bson_value_t *d = pass ? opdoc : dists;
      if (pass && d == dists) {
         break;
      }
      bson_iter_init_from_data (&it, d->value.v_doc.data, d->value.v_doc.data_len);
      while (bson_iter_next (&it)) {
         const char *k = bson_iter_key (&it);
         if (!strcmp (k, "$maxDistance") && !distance_arg (bson_iter_value (&it), k, &q->max_dist, error)) {
            return false;
         }
         if (!strcmp (k, "$minDistance") && !distance_arg (bson_iter_value (&it), k, &q->min_dist, error)) {
            return false;
         }
      }
   }
   if (q->spherical && !q->meters && (q->center.x < -180 || q->center.x > 180 || q->center.y < -90 || q->center.y > 90)) {
      return dj_err (error, DJ_BadValue, "longitude/latitude is out of bounds, lng: %g lat: %g", q->center.x, q->center.y);
   }
   return true;
}

bool
dj_geo_query_near_point (const bson_value_t *near, bool spherical, const bson_value_t *min, const bson_value_t *max,
                         dj_geo_query_t *q, bson_error_t *error)
{
   memset (q, 0, sizeof *q);
   q->op = DJ_GEO_NEAR;
   q->kind = DJ_GEO_R_NEAR;
   q->max_dist = INFINITY;
   if (!near_point (near, q, error)) {
      return false;
   }
   q->spherical |= spherical;
   if ((min && !distance_arg (min, "minDistance", &q->min_dist, error)) ||
       (max && !distance_arg (max, "maxDistance", &q->max_dist, error))) {
      return false;
   }
   return true;
}

bool
dj_geo_query_spherical (const dj_geo_query_t *q)
{
   return q->kind == DJ_GEO_R_GEOMETRY || q->kind == DJ_GEO_R_CENTER_SPHERE || (q->kind == DJ_GEO_R_NEAR && q->spherical);
}

static bool
valid_lnglat (const dj_geo_t *g)
{
   for (int i = 0; i < g->npts; i++) {
      if (g->pts[i].x < -180 || g->pts[i].x > 180 || g->pts[i].y < -90 || g->pts[i].y > 90) {
         return false;
      }
   }
   return true;
}

bool
dj_geo_query_match (const dj_geo_query_t *q, const bson_value_t *v, double *dist)
{
   dj_geo_t g;
   bool r = false;
   if (!dj_geo_parse_stored (v, &g)) {
      return false;
   }
   bool point = g.nparts == 1 && g.parts[0].kind == DJ_GEO_POINT;
   dj_geo_pt_t p = g.npts ? g.pts[0] : (dj_geo_pt_t) {0, 0};
   switch (q->kind) {
   case DJ_GEO_R_GEOMETRY:
      if (valid_lnglat (&g)) {
         r = q->op == DJ_GEO_WITHIN ? dj_geo_sphere_within (&g, &q->shape) : dj_geo_sphere_intersects (&g, &q->shape);
      }
      break;
   case DJ_GEO_R_BOX: {
      const dj_geo_pt_t *b = q->shape.pts;
      r = point && p.x >= fmin (b[0].x, b[1].x) && p.x <= fmax (b[0].x, b[1].x) && p.y >= fmin (b[0].y, b[1].y) &&
          p.y <= fmax (b[0].y, b[1].y);
      break;
   }
   case DJ_GEO_R_POLYGON: r = point && dj_geo_flat_poly_contains (q->shape.pts, q->shape.npts, p); break;
   case DJ_GEO_R_CENTER: r = point && hypot (p.x - q->center.x, p.y - q->center.y) <= q->radius; break;
   case DJ_GEO_R_CENTER_SPHERE:
      r = valid_lnglat (&g) && g.npts > 0;
      for (int i = 0; i < g.npts && r; i++) {
         r = dj_geo_sphere_dist (q->center, g.pts[i]) <= q->radius;
      }
      break;
   case DJ_GEO_R_NEAR: {
      double d;
      if (q->spherical) {
         if (!valid_lnglat (&g)) {
            break;
         }
         d = dj_geo_sphere_dist_to (q->center, &g);
         if (q->meters) {
            d *= DJ_GEO_EARTH_RADIUS_M;
         }
      } else {
         if (!point) {
            break;
         }
         d = hypot (p.x - q->center.x, p.y - q->center.y);
      }
      r = d >= q->min_dist && d <= q->max_dist;
      if (dist) {
         *dist = d;
      }
      break;
   }
   }
   dj_geo_cleanup (&g);
   return r;
}

bool
dj_geo_query_bbox (const dj_geo_query_t *q, double radius, dj_geo_box_t *b)
{
   switch (q->kind) {
   case DJ_GEO_R_GEOMETRY: dj_geo_bbox_sphere (&q->shape, b); return true;
   case DJ_GEO_R_BOX:
   case DJ_GEO_R_POLYGON: dj_geo_bbox_flat (&q->shape, b); return true;
   case DJ_GEO_R_CENTER:
      *b = (dj_geo_box_t) {q->center.x - q->radius, q->center.x + q->radius, q->center.y - q->radius, q->center.y + q->radius};
      return true;
   case DJ_GEO_R_CENTER_SPHERE: dj_geo_bbox_cap (q->center, q->radius, b); return true;
   case DJ_GEO_R_NEAR:
      if (isinf (radius)) {
         return false;
      }
      if (q->spherical) {
         dj_geo_bbox_cap (q->center, q->meters ? radius / DJ_GEO_EARTH_RADIUS_M : radius, b);
      } else {
         *b = (dj_geo_box_t) {q->center.x - radius, q->center.x + radius, q->center.y - radius, q->center.y + radius};
      }
      return true;
   }
   return false;
}
