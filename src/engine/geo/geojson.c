/*
 * geojson.c -- GeoJSON objects and legacy coordinate pairs, parsed into a
 * dj_geo_t and checked as a 2dsphere index checks them on insert.
 *
 * https://www.mongodb.com/docs/manual/reference/geojson/ :
 *  - { type: <GeoJSON type>, coordinates: <coordinates> }, longitude first,
 *    longitude in [-180, 180], latitude in [-90, 90];
 *  - a Polygon's rings are closed (first position == last) with at least
 *    four positions; the first ring is the exterior one, the others holes
 *    inside it; rings must not self-intersect;
 *  - GeometryCollection: { type, geometries: [ ...GeoJSON objects ] }.
 * https://www.mongodb.com/docs/manual/geospatial-queries/#legacy-coordinate-pairs :
 *  a legacy pair is [x, y] or an embedded document whose first two fields
 *  are the coordinates ({ lng: x, lat: y }).
 */
#include "dj_geo.h"

#include <math.h>
#include <stdio.h>

void
dj_geo_init (dj_geo_t *g)
{
   memset (g, 0, sizeof *g);
}

void
dj_geo_cleanup (dj_geo_t *g)
{
   DJ_FREE (g->pts, g->rings, g->parts);
   memset (g, 0, sizeof *g);
}

static void
add_pt (dj_geo_t *g, dj_geo_pt_t p)
{
   DJ_GROW (g->pts, g->npts, g->cap_pts, 8);
   g->pts[g->npts++] = p;
}

static void
add_ring (dj_geo_t *g, int pt0)
{
   DJ_GROW (g->rings, g->nrings, g->cap_rings, 4);
   g->rings[g->nrings++] = (dj_geo_ring_t) {pt0, g->npts - pt0};
}

static void
add_part (dj_geo_t *g, dj_geo_part_kind_t kind, int ring0)
{
   DJ_GROW (g->parts, g->nparts, g->cap_parts, 2);
   g->parts[g->nparts++] = (dj_geo_part_t) {kind, ring0, g->nrings - ring0};
}

bool
dj_geo_is_geojson (const bson_value_t *v)
{
   bson_value_t t;
   return v->value_type == BSON_TYPE_DOCUMENT && dj_value_get_field (v, "type", &t) && t.value_type == BSON_TYPE_UTF8;
}

bool
dj_geo_parse_legacy (const bson_value_t *v, dj_geo_pt_t *pt, bson_error_t *error)
{
   bson_iter_t it;
   double c[2];
   int n = 0;

   if (v->value_type != BSON_TYPE_ARRAY && v->value_type != BSON_TYPE_DOCUMENT) {
      return dj_err (error, DJ_BadValue, "Point must be an array or object");
   }
   bson_iter_init_from_data (&it, v->value.v_doc.data, v->value.v_doc.data_len);
   while (n < 2 && bson_iter_next (&it)) {
      const bson_value_t *e = bson_iter_value (&it);
      if (!dj_value_is_number (e) || e->value_type == BSON_TYPE_DECIMAL128) {
         return dj_err (error, DJ_BadValue, "Point must only contain numeric elements");
      }
      c[n++] = dj_value_as_double (e);
   }
   if (n < 2) {
      return dj_err (error, DJ_BadValue, "Point must only contain numeric elements");
   }
   if (!isfinite (c[0]) || !isfinite (c[1])) {
      return dj_err (error, DJ_BadValue, "Point coordinates must be finite numbers");
   }
   pt->x = c[0];
   pt->y = c[1];
   return true;
}

/* One GeoJSON position [lng, lat(, alt)], checked against the sphere's
 * bounds. */
static bool
position (const bson_value_t *v, dj_geo_pt_t *pt, bson_error_t *error)
{
   if (v->value_type != BSON_TYPE_ARRAY) {
      return dj_err (error, DJ_BadValue, "GeoJSON coordinates must be an array of numbers");
   }
   if (!dj_geo_parse_legacy (v, pt, error)) {
      return false;
   }
   if (pt->x < -180 || pt->x > 180 || pt->y < -90 || pt->y > 90) {
      return dj_err (error, DJ_BadValue, "longitude/latitude is out of bounds, lng: %g lat: %g", pt->x, pt->y);
   }
   return true;
}

/* An array of positions appended to g; *n receives how many. */
static bool
positions (const bson_value_t *v, dj_geo_t *g, int *n, bson_error_t *error)
{
   bson_iter_t it;
   *n = 0;
   if (v->value_type != BSON_TYPE_ARRAY) {
      return dj_err (error, DJ_BadValue, "GeoJSON coordinates must be an array");
   }
   bson_iter_init_from_data (&it, v->value.v_doc.data, v->value.v_doc.data_len);
   while (bson_iter_next (&it)) {
      dj_geo_pt_t p;
      if (!position (bson_iter_value (&it), &p, error)) {
         return false;
      }
      add_pt (g, p);
      (*n)++;
   }
   return true;
}

static bool
same_pt (dj_geo_pt_t a, dj_geo_pt_t b)
{
   return a.x == b.x && a.y == b.y;
}

static bool
line (const bson_value_t *v, dj_geo_t *g, bson_error_t *error)
{
   int ring0 = g->nrings, pt0 = g->npts, n;
   if (!positions (v, g, &n, error)) {
      return false;
   }
   if (n < 2) {
      return dj_err (error, DJ_BadValue, "GeoJSON LineString must have at least 2 vertices");
   }
   add_ring (g, pt0);
   add_part (g, DJ_GEO_LINE, ring0);
   return true;
}

/* A ring's edges i and j (not neighbours) must not meet. O(n^2): rings of
 * thousands of vertices are checked in a few milliseconds. */
static bool
ring_simple (const dj_geo_t *g, const dj_geo_ring_t *r, bson_error_t *error)
{
   const dj_geo_pt_t *p = g->pts + r->pt0;
   int ne = r->npts - 1;
   for (int i = 0; i < ne; i++) {
      for (int j = i + 2; j < ne; j++) {
         if (i == 0 && j == ne - 1) {
            continue; /* the closing edge touches the first */
         }
         if (dj_geo_sphere_arcs_meet (p[i], p[i + 1], p[j], p[j + 1])) {
            return dj_err (error, DJ_BadValue, "Loop is not valid: Edges %d and %d cross", i, j);
         }
      }
   }
   return true;
}

static bool
polygon (const bson_value_t *v, dj_geo_t *g, bson_error_t *error)
{
   bson_iter_t it;
   int ring0 = g->nrings;

   if (v->value_type != BSON_TYPE_ARRAY) {
      return dj_err (error, DJ_BadValue, "Polygon coordinates must be an array");
   }
   bson_iter_init_from_data (&it, v->value.v_doc.data, v->value.v_doc.data_len);
   while (bson_iter_next (&it)) {
      int pt0 = g->npts, n;
      if (!positions (bson_iter_value (&it), g, &n, error)) {
         return false;
      }
      if (n < 4) {
         return dj_err (error, DJ_BadValue, "Loop must have at least 3 different vertices");
      }
      if (!same_pt (g->pts[pt0], g->pts[pt0 + n - 1])) {
         return dj_err (error, DJ_BadValue, "Loop is not closed, first vertex does not equal last vertex");
      }
      int distinct = 0;
      for (int i = pt0; i < pt0 + n - 1; i++) {
         bool seen = false;
         for (int j = pt0; j < i && !seen; j++) {
            seen = same_pt (g->pts[i], g->pts[j]);
         }
         distinct += !seen;
      }
      if (distinct < 3) {
         return dj_err (error, DJ_BadValue, "Loop must have at least 3 different vertices");
      }
      add_ring (g, pt0);
      if (!ring_simple (g, &g->rings[g->nrings - 1], error)) {
         return false;
      }
   }
   if (g->nrings == ring0) {
      return dj_err (error, DJ_BadValue, "Polygon has no loops.");
   }
   add_part (g, DJ_GEO_POLYGON, ring0);
   /* holes: inside the shell, crossing neither it nor each other */
   const dj_geo_part_t *part = &g->parts[g->nparts - 1];
   dj_geo_part_t shell_only = {DJ_GEO_POLYGON, ring0, 1};
   for (int h = ring0 + 1; h < g->nrings; h++) {
      const dj_geo_ring_t *hr = &g->rings[h];
      for (int i = 0; i < hr->npts - 1; i++) {
         if (!dj_geo_sphere_poly_contains (g, &shell_only, g->pts[hr->pt0 + i])) {
            return dj_err (error, DJ_BadValue,
                           "Secondary loops not contained by first exterior loop - secondary loops must be holes");
         }
      }
      for (int o = ring0; o < g->nrings; o++) {
         if (o == h) {
            continue;
         }
         const dj_geo_ring_t *or = &g->rings[o];
         for (int i = 0; i < hr->npts - 1; i++) {
            for (int j = 0; j < or->npts - 1; j++) {
               const dj_geo_pt_t *a = g->pts + hr->pt0 + i, *b = g->pts + or->pt0 + j;
               if (dj_geo_sphere_arcs_meet (a[0], a[1], b[0], b[1])) {
                  return dj_err (error, DJ_BadValue, "Polygon loops %d and %d cross or touch", o - ring0, h - ring0);
               }
            }
         }
      }
   }
   (void) part;
   return true;
}

/* Each element of array v parsed by fn; at least `min` of them. */
static bool
each (const bson_value_t *v, bool (*fn) (const bson_value_t *, dj_geo_t *, bson_error_t *), dj_geo_t *g, int min,
      const char *what, bson_error_t *error)
{
   bson_iter_t it;
   int n = 0;
   if (v->value_type != BSON_TYPE_ARRAY) {
      return dj_err (error, DJ_BadValue, "%s coordinates must be an array", what);
   }
   bson_iter_init_from_data (&it, v->value.v_doc.data, v->value.v_doc.data_len);
   while (bson_iter_next (&it)) {
      if (!fn (bson_iter_value (&it), g, error)) {
         return false;
      }
      n++;
   }
   if (n < min) {
      return dj_err (error, DJ_BadValue, "%s coordinates must have at least %d element%s", what, min, min == 1 ? "" : "s");
   }
   return true;
}

static bool
point (const bson_value_t *v, dj_geo_t *g, bson_error_t *error)
{
   dj_geo_pt_t p;
   int ring0 = g->nrings, pt0 = g->npts;
   if (!position (v, &p, error)) {
      return false;
   }
   add_pt (g, p);
   add_ring (g, pt0);
   add_part (g, DJ_GEO_POINT, ring0);
   return true;
}

/* The crs member: only EPSG:4326 names (the default) are taken here.
 * https://www.mongodb.com/docs/manual/reference/operator/query/geometry/ */
static bool
check_crs (const bson_value_t *doc, bson_error_t *error)
{
   bson_value_t crs, props, name;
   if (!dj_value_get_field (doc, "crs", &crs)) {
      return true;
   }
   if (crs.value_type == BSON_TYPE_DOCUMENT && dj_value_get_field (&crs, "properties", &props) &&
       props.value_type == BSON_TYPE_DOCUMENT && dj_value_get_field (&props, "name", &name) &&
       name.value_type == BSON_TYPE_UTF8 &&
       (!strcmp (name.value.v_utf8.str, "EPSG:4326") || !strcmp (name.value.v_utf8.str, "urn:ogc:def:crs:OGC:1.3:CRS84"))) {
      return true;
   }
   return dj_err (error, DJ_BadValue, "Unknown CRS name");
}

static bool geojson (const bson_value_t *v, dj_geo_t *g, bool nested, bson_error_t *error);

static bool
collection_member (const bson_value_t *v, dj_geo_t *g, bson_error_t *error)
{
   if (v->value_type != BSON_TYPE_DOCUMENT) {
      return dj_err (error, DJ_BadValue, "Element of GeometryCollection is not an object");
   }
   return geojson (v, g, true, error);
}

static bool
geojson (const bson_value_t *v, dj_geo_t *g, bool nested, bson_error_t *error)
{
   bson_value_t type, coords;
   if (!dj_value_get_field (v, "type", &type) || type.value_type != BSON_TYPE_UTF8) {
      return dj_err (error, DJ_BadValue, "GeoJSON object must have a string type");
   }
   if (!check_crs (v, error)) {
      return false;
   }
   const char *t = type.value.v_utf8.str;
   if (!strcmp (t, "GeometryCollection")) {
      bson_value_t geoms;
      if (nested) {
         return dj_err (error, DJ_BadValue, "GeometryCollection cannot be nested in a GeometryCollection");
      }
      if (!dj_value_get_field (v, "geometries", &geoms)) {
         return dj_err (error, DJ_BadValue, "GeometryCollection must have a geometries array");
      }
      return each (&geoms, collection_member, g, 1, "GeometryCollection", error);
   }
   if (!dj_value_get_field (v, "coordinates", &coords)) {
      return dj_err (error, DJ_BadValue, "GeoJSON object must have a coordinates field");
   }
   if (!strcmp (t, "Point")) {
      return point (&coords, g, error);
   }
   if (!strcmp (t, "LineString")) {
      return line (&coords, g, error);
   }
   if (!strcmp (t, "Polygon")) {
      return polygon (&coords, g, error);
   }
   if (!strcmp (t, "MultiPoint")) {
      return each (&coords, point, g, 1, "MultiPoint", error);
   }
   if (!strcmp (t, "MultiLineString")) {
      return each (&coords, line, g, 1, "MultiLineString", error);
   }
   if (!strcmp (t, "MultiPolygon")) {
      return each (&coords, polygon, g, 1, "MultiPolygon", error);
   }
   return dj_err (error, DJ_BadValue, "unknown GeoJSON type: %s", t);
}

bool
dj_geo_parse (const bson_value_t *v, bool allow_legacy, dj_geo_t *g, bson_error_t *error)
{
   dj_geo_init (g);
   bool ok;
   if (dj_geo_is_geojson (v)) {
      ok = geojson (v, g, false, error);
   } else if (allow_legacy) {
      dj_geo_pt_t p;
      ok = dj_geo_parse_legacy (v, &p, error);
      if (ok) {
         add_pt (g, p);
         add_ring (g, 0);
         add_part (g, DJ_GEO_POINT, 0);
         g->legacy = true;
      }
   } else {
      ok = dj_err (error, DJ_BadValue, "unknown geo specifier: not a GeoJSON object");
   }
   if (!ok) {
      dj_geo_cleanup (g);
   }
   return ok;
}
