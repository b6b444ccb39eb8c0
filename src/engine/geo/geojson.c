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
#include <stdlib.h>

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

/* ---- a polygon's rings must not cross (themselves or each other) ----------
 * Every pair of edges that are not neighbours on one ring is tested, but
 * only pairs whose bounding boxes share a cell of a grid laid over the
 * polygon: about O(n) tests for n edges rather than n^2, so a polygon of a
 * hundred thousand vertices is checked in milliseconds. An edge across the
 * antimeridian (its box would wrap) is tested against every edge. */
typedef struct {
   int ring, i;   /* ring (index into g->rings) and edge i..i+1 on it */
   dj_geo_box_t b;
} edge_t;

/* Whether edges x and y may share points legitimately: neighbours on one ring. */
static bool
neighbours (const dj_geo_t *g, const edge_t *x, const edge_t *y)
{
   if (x->ring != y->ring) {
      return false;
   }
   int ne = g->rings[x->ring].npts - 1, d = abs (x->i - y->i);
   return d <= 1 || d == ne - 1;
}

static bool
edges_cross (const dj_geo_t *g, const edge_t *x, const edge_t *y, int ring0, bson_error_t *error)
{
   if (neighbours (g, x, y)) {
      return false;
   }
   const dj_geo_pt_t *a = g->pts + g->rings[x->ring].pt0 + x->i, *c = g->pts + g->rings[y->ring].pt0 + y->i;
   if (!dj_geo_sphere_arcs_meet (a[0], a[1], c[0], c[1])) {
      return false;
   }
   if (x->ring == y->ring) {
      dj_err (error, DJ_BadValue, "Loop is not valid: Edges %d and %d cross", x->i < y->i ? x->i : y->i,
              x->i < y->i ? y->i : x->i);
   } else {
      dj_err (error, DJ_BadValue, "Polygon loops %d and %d cross or touch", x->ring - ring0, y->ring - ring0);
   }
   return true;
}

static bool
rings_simple (const dj_geo_t *g, int ring0, bson_error_t *error)
{
   int n = 0, nwide = 0;
   for (int r = ring0; r < g->nrings; r++) {
      n += g->rings[r].npts - 1;
   }
   edge_t *e = bson_malloc (sizeof *e * (size_t) n);
   int *wide = bson_malloc (sizeof (int) * (size_t) n);
   dj_geo_box_t all = {INFINITY, -INFINITY, INFINITY, -INFINITY};
   int k = 0;
   for (int r = ring0; r < g->nrings; r++) {
      const dj_geo_pt_t *p = g->pts + g->rings[r].pt0;
      for (int i = 0; i + 1 < g->rings[r].npts; i++, k++) {
         e[k].ring = r, e[k].i = i;
         dj_geo_arc_box (p[i], p[i + 1], &e[k].b);
         if (e[k].b.xhi - e[k].b.xlo > 180) {
            wide[nwide++] = k;
            continue;
         }
         all.xlo = fmin (all.xlo, e[k].b.xlo), all.xhi = fmax (all.xhi, e[k].b.xhi);
         all.ylo = fmin (all.ylo, e[k].b.ylo), all.yhi = fmax (all.yhi, e[k].b.yhi);
      }
   }
   bool crossed = false;
   for (int w = 0; w < nwide && !crossed; w++) {
      for (int j = 0; j < n && !crossed; j++) {
         crossed = j != wide[w] && edges_cross (g, &e[wide[w]], &e[j], ring0, error);
      }
   }
   /* the grid: G x G cells over the narrow edges' box; cell lists by
    * counting (start[c]..start[c + 1] in `in`) */
   int grid = (int) sqrt ((double) n / 2);
   grid = grid < 1 ? 1 : grid > 512 ? 512 : grid;
   double cw = (all.xhi - all.xlo) / grid, ch = (all.yhi - all.ylo) / grid;
   int *start = bson_malloc0 (sizeof (int) * (size_t) (grid * grid + 1));
   int *in = NULL;
   for (int pass = 0; pass < 2 && !crossed; pass++) {
      int *fill = pass ? bson_malloc0 (sizeof (int) * (size_t) (grid * grid)) : NULL;
      for (int j = 0; j < n; j++) {
         if (e[j].b.xhi - e[j].b.xlo > 180) {
            continue;
         }
         int x0 = cw > 0 ? (int) ((e[j].b.xlo - all.xlo) / cw) : 0, x1 = cw > 0 ? (int) ((e[j].b.xhi - all.xlo) / cw) : 0;
         int y0 = ch > 0 ? (int) ((e[j].b.ylo - all.ylo) / ch) : 0, y1 = ch > 0 ? (int) ((e[j].b.yhi - all.ylo) / ch) : 0;
         x1 = x1 >= grid ? grid - 1 : x1, y1 = y1 >= grid ? grid - 1 : y1;
         for (int x = x0; x <= x1; x++) {
            for (int y = y0; y <= y1; y++) {
               int c = x * grid + y;
               if (pass) {
                  in[start[c] + fill[c]++] = j;
               } else {
                  start[c + 1]++;
               }
            }
         }
      }
      if (!pass) {
         for (int c = 0; c < grid * grid; c++) {
            start[c + 1] += start[c];
         }
         in = bson_malloc (sizeof (int) * (size_t) (start[grid * grid] ? start[grid * grid] : 1));
      }
      bson_free (fill);
   }
   for (int c = 0; c < grid * grid && !crossed; c++) {
      for (int x = start[c]; x < start[c + 1] && !crossed; x++) {
         for (int y = x + 1; y < start[c + 1] && !crossed; y++) {
            crossed = edges_cross (g, &e[in[x]], &e[in[y]], ring0, error);
         }
      }
   }
   DJ_FREE (e, wide, start, in);
   return !crossed;
}

/* Drops repeated consecutive positions of the ring at pt0 (n of them, g's
 * last); returns how many are left. GeoJSON allows them; they are no edges. */
static int
drop_repeats (dj_geo_t *g, int pt0, int n)
{
   int k = 1;
   for (int i = 1; i < n; i++) {
      if (!same_pt (g->pts[pt0 + i], g->pts[pt0 + k - 1])) {
         g->pts[pt0 + k++] = g->pts[pt0 + i];
      }
   }
   g->npts = pt0 + k;
   return k;
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
      if (n > 0 && !same_pt (g->pts[pt0], g->pts[pt0 + n - 1])) {
         return dj_err (error, DJ_BadValue, "Loop is not closed, first vertex does not equal last vertex");
      }
      n = n > 0 ? drop_repeats (g, pt0, n) : 0;
      /* three distinct vertices: the first and two others (no vertex
       * repeats its predecessor now, so the second differs from the first) */
      int distinct = n >= 3 ? 2 : n;
      for (int i = pt0 + 2; i < pt0 + n - 1 && distinct < 3; i++) {
         distinct += !same_pt (g->pts[i], g->pts[pt0]) && !same_pt (g->pts[i], g->pts[pt0 + 1]);
      }
      if (n < 4 || distinct < 3) {
         return dj_err (error, DJ_BadValue, "Loop must have at least 3 different vertices");
      }
      add_ring (g, pt0);
   }
   if (g->nrings == ring0) {
      return dj_err (error, DJ_BadValue, "Polygon has no loops.");
   }
   /* no ring crosses itself or another; then a hole lies inside the shell
    * or outside it entirely, which its first vertex tells */
   if (!g->trusted && !rings_simple (g, ring0, error)) {
      return false;
   }
   add_part (g, DJ_GEO_POLYGON, ring0);
   dj_geo_part_t shell_only = {DJ_GEO_POLYGON, ring0, 1};
   for (int h = ring0 + 1; h < g->nrings; h++) {
      if (!dj_geo_sphere_poly_contains (g, &shell_only, g->pts[g->rings[h].pt0])) {
         return dj_err (error, DJ_BadValue,
                        "Secondary loops not contained by first exterior loop - secondary loops must be holes");
      }
   }
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

static bool parse_into (const bson_value_t *v, bool allow_legacy, dj_geo_t *g, bson_error_t *error);

bool
dj_geo_parse (const bson_value_t *v, bool allow_legacy, dj_geo_t *g, bson_error_t *error)
{
   dj_geo_init (g);
   return parse_into (v, allow_legacy, g, error);
}

bool
dj_geo_parse_stored (const bson_value_t *v, dj_geo_t *g)
{
   dj_geo_init (g);
   g->trusted = true;
   return parse_into (v, true, g, NULL);
}

/* Parses v into g (initialised by the caller); cleans g on failure. */
static bool
parse_into (const bson_value_t *v, bool allow_legacy, dj_geo_t *g, bson_error_t *error)
{
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
