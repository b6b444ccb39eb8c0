/*
 * sphere.c -- geometry on the unit sphere: points as unit vectors, edges as
 * great circle arcs (the shorter one between two vertices), as a 2dsphere
 * index reads GeoJSON.
 * https://www.mongodb.com/docs/manual/core/indexes/index-types/geospatial/2dsphere/
 *
 * Point in a loop: the loop's vertices are projected gnomonically from the
 * centre of the loop (the gnomonic projection maps great circles to
 * straight lines, so arcs stay segments), and a ray is cast in that plane.
 * A loop is the smaller of the two regions its ring bounds -- MongoDB's
 * rule for polygons of single-ringed GeoJSON ("the polygon with the smaller
 * area"): https://www.mongodb.com/docs/manual/reference/operator/query/geometry/
 * A ring that does not fit the hemisphere around its centre (larger than
 * MongoDB accepts without a custom CRS) is read in the longitude/latitude
 * plane instead.
 */
#include "dj_geo.h"

#include <math.h>

#define EPS 1e-12

typedef struct {
   double x, y, z;
} v3_t;

static v3_t
vec (dj_geo_pt_t p)
{
   double lat = p.y * M_PI / 180.0, lng = p.x * M_PI / 180.0;
   return (v3_t) {cos (lat) * cos (lng), cos (lat) * sin (lng), sin (lat)};
}

static v3_t
cross (v3_t a, v3_t b)
{
   return (v3_t) {a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x};
}

static double
dot (v3_t a, v3_t b)
{
   return a.x * b.x + a.y * b.y + a.z * b.z;
}

static double
len (v3_t a)
{
   return sqrt (dot (a, a));
}

static v3_t
scale (v3_t a, double s)
{
   return (v3_t) {a.x * s, a.y * s, a.z * s};
}

static double
angle (v3_t a, v3_t b)
{
   return atan2 (len (cross (a, b)), dot (a, b));
}

double
dj_geo_sphere_dist (dj_geo_pt_t a, dj_geo_pt_t b)
{
   return angle (vec (a), vec (b));
}

/* Whether p (on the great circle of a, b) lies on the minor arc a..b. */
static bool
between (v3_t p, v3_t a, v3_t b, v3_t n)
{
   return dot (cross (a, p), n) >= -EPS && dot (cross (p, b), n) >= -EPS;
}

static bool
on_arc (v3_t p, v3_t a, v3_t b)
{
   v3_t n = cross (a, b);
   double l = len (n);
   if (l < EPS) {
      return angle (p, a) < 1e-9;
   }
   n = scale (n, 1.0 / l);
   return fabs (dot (n, p)) < 1e-9 && between (p, a, b, n);
}

/* strict: only a proper crossing counts (a touch does not). */
static bool
arcs_meet (v3_t a, v3_t b, v3_t c, v3_t d, bool strict)
{
   v3_t n1 = cross (a, b), n2 = cross (c, d);
   double sc = dot (n1, c), sd = dot (n1, d), sa = dot (n2, a), sb = dot (n2, b);
   double t1 = EPS * (len (n1) + EPS), t2 = EPS * (len (n2) + EPS);
   bool c0 = fabs (sc) < t1, d0 = fabs (sd) < t1, a0 = fabs (sa) < t2, b0 = fabs (sb) < t2;
   if (strict) {
      if (c0 || d0 || a0 || b0) {
         return false;
      }
   } else if (c0 || d0 || a0 || b0) {
      /* a vertex on the other arc's great circle: they meet iff some vertex
       * lies on the other arc (collinear overlap included) */
      if (on_arc (c, a, b) || on_arc (d, a, b) || on_arc (a, c, d) || on_arc (b, c, d)) {
         return true;
      }
      if ((c0 && d0) || (a0 && b0)) {
         return false;
      }
   }
   if ((sc > 0 && sd > 0) || (sc < 0 && sd < 0) || (sa > 0 && sb > 0) || (sa < 0 && sb < 0)) {
      return false;
   }
   v3_t t = cross (n1, n2);
   double l = len (t);
   if (l < EPS) {
      return false;
   }
   t = scale (t, 1.0 / l);
   v3_t u1 = scale (n1, 1.0 / len (n1)), u2 = scale (n2, 1.0 / len (n2));
   for (int s = 0; s < 2; s++) {
      v3_t p = s ? scale (t, -1) : t;
      if (between (p, a, b, u1) && between (p, c, d, u2)) {
         return true;
      }
   }
   return false;
}

bool
dj_geo_sphere_arcs_meet (dj_geo_pt_t a, dj_geo_pt_t b, dj_geo_pt_t c, dj_geo_pt_t d)
{
   return arcs_meet (vec (a), vec (b), vec (c), vec (d), false);
}

bool
dj_geo_flat_poly_contains (const dj_geo_pt_t *r, int n, dj_geo_pt_t p)
{
   bool in = false;
   for (int i = 0, j = n - 1; i < n; j = i++) {
      /* on the edge j..i: boundary points are inside */
      double cr = (r[i].x - r[j].x) * (p.y - r[j].y) - (r[i].y - r[j].y) * (p.x - r[j].x);
      if (fabs (cr) < 1e-12 && p.x >= fmin (r[i].x, r[j].x) && p.x <= fmax (r[i].x, r[j].x) &&
          p.y >= fmin (r[i].y, r[j].y) && p.y <= fmax (r[i].y, r[j].y)) {
         return true;
      }
      if ((r[i].y > p.y) != (r[j].y > p.y) &&
          p.x < (r[j].x - r[i].x) * (p.y - r[i].y) / (r[j].y - r[i].y) + r[i].x) {
         in = !in;
      }
   }
   return in;
}

/* 1: inside, 0: outside, 2: on the ring's boundary. */
static int
ring_contains (const dj_geo_t *g, const dj_geo_ring_t *r, dj_geo_pt_t pt)
{
   const dj_geo_pt_t *q = g->pts + r->pt0;
   int n = r->npts - 1; /* closed: the last vertex repeats the first */
   v3_t p = vec (pt);
   v3_t c = {0, 0, 0};

   for (int i = 0; i < n; i++) {
      if (on_arc (p, vec (q[i]), vec (q[i + 1]))) {
         return 2;
      }
   }
   for (int i = 0; i < n; i++) {
      v3_t v = vec (q[i]);
      c = (v3_t) {c.x + v.x, c.y + v.y, c.z + v.z};
   }
   double cl = len (c);
   bool hemi = cl > EPS;
   if (hemi) {
      c = scale (c, 1.0 / cl);
      for (int i = 0; i < n && hemi; i++) {
         hemi = dot (vec (q[i]), c) > 1e-9;
      }
   }
   if (!hemi) {
      return dj_geo_flat_poly_contains (q, n, pt) ? 1 : 0;
   }
   if (dot (p, c) <= 1e-12) {
      return 0;
   }
   /* a basis of the plane tangent at c */
   v3_t e1 = fabs (c.z) < 0.9 ? cross ((v3_t) {0, 0, 1}, c) : cross ((v3_t) {1, 0, 0}, c);
   e1 = scale (e1, 1.0 / len (e1));
   v3_t e2 = cross (c, e1);
   double px = dot (p, e1) / dot (p, c), py = dot (p, e2) / dot (p, c);
   bool in = false;
   for (int i = 0, j = n - 1; i < n; j = i++) {
      v3_t vi = vec (q[i]), vj = vec (q[j]);
      double xi = dot (vi, e1) / dot (vi, c), yi = dot (vi, e2) / dot (vi, c);
      double xj = dot (vj, e1) / dot (vj, c), yj = dot (vj, e2) / dot (vj, c);
      if ((yi > py) != (yj > py) && px < (xj - xi) * (py - yi) / (yj - yi) + xi) {
         in = !in;
      }
   }
   return in ? 1 : 0;
}

bool
dj_geo_sphere_poly_contains (const dj_geo_t *g, const dj_geo_part_t *part, dj_geo_pt_t p)
{
   if (!ring_contains (g, &g->rings[part->ring0], p)) {
      return false;
   }
   for (int h = 1; h < part->nrings; h++) {
      if (ring_contains (g, &g->rings[part->ring0 + h], p) == 1) {
         return false; /* strictly inside a hole; its boundary is the polygon's */
      }
   }
   return true;
}

/* The distance from p to the arc a..b, radians. */
static double
arc_dist (v3_t p, v3_t a, v3_t b)
{
   v3_t n = cross (a, b);
   double l = len (n);
   if (l > EPS) {
      n = scale (n, 1.0 / l);
      v3_t q = (v3_t) {p.x - n.x * dot (p, n), p.y - n.y * dot (p, n), p.z - n.z * dot (p, n)};
      double ql = len (q);
      if (ql > EPS) {
         q = scale (q, 1.0 / ql);
         if (between (q, a, b, n)) {
            return angle (p, q);
         }
      }
   }
   return fmin (angle (p, a), angle (p, b));
}

double
dj_geo_sphere_dist_to (dj_geo_pt_t pt, const dj_geo_t *g)
{
   double best = INFINITY;
   v3_t p = vec (pt);
   for (int i = 0; i < g->nparts; i++) {
      const dj_geo_part_t *part = &g->parts[i];
      if (part->kind == DJ_GEO_POLYGON && dj_geo_sphere_poly_contains (g, part, pt)) {
         return 0;
      }
      for (int r = part->ring0; r < part->ring0 + part->nrings; r++) {
         const dj_geo_ring_t *ring = &g->rings[r];
         const dj_geo_pt_t *q = g->pts + ring->pt0;
         if (ring->npts == 1) {
            best = fmin (best, angle (p, vec (q[0])));
         }
         for (int k = 0; k + 1 < ring->npts; k++) {
            best = fmin (best, arc_dist (p, vec (q[k]), vec (q[k + 1])));
         }
      }
   }
   return best;
}

/* Whether some edge of a's rings (part pa) meets some edge of b's (pb). */
static bool
edges_meet (const dj_geo_t *a, const dj_geo_part_t *pa, const dj_geo_t *b, const dj_geo_part_t *pb, bool strict)
{
   for (int r = pa->ring0; r < pa->ring0 + pa->nrings; r++) {
      const dj_geo_ring_t *ra = &a->rings[r];
      for (int i = 0; i + 1 < ra->npts; i++) {
         v3_t p0 = vec (a->pts[ra->pt0 + i]), p1 = vec (a->pts[ra->pt0 + i + 1]);
         for (int s = pb->ring0; s < pb->ring0 + pb->nrings; s++) {
            const dj_geo_ring_t *rb = &b->rings[s];
            for (int j = 0; j + 1 < rb->npts; j++) {
               if (arcs_meet (p0, p1, vec (b->pts[rb->pt0 + j]), vec (b->pts[rb->pt0 + j + 1]), strict)) {
                  return true;
               }
            }
         }
      }
   }
   return false;
}

/* Whether all vertices of part pa's first ring (or all rings) are in polygon pb. */
static bool
vertices_in (const dj_geo_t *a, const dj_geo_part_t *pa, const dj_geo_t *b, const dj_geo_part_t *pb)
{
   const dj_geo_ring_t *ra = &a->rings[pa->ring0];
   for (int i = 0; i < ra->npts; i++) {
      if (!dj_geo_sphere_poly_contains (b, pb, a->pts[ra->pt0 + i])) {
         return false;
      }
   }
   return true;
}

static bool
part_within (const dj_geo_t *a, const dj_geo_part_t *pa, const dj_geo_t *region)
{
   for (int k = 0; k < region->nparts; k++) {
      const dj_geo_part_t *pr = &region->parts[k];
      if (pr->kind != DJ_GEO_POLYGON || !vertices_in (a, pa, region, pr)) {
         continue;
      }
      if (pa->kind == DJ_GEO_POINT) {
         return true;
      }
      if (edges_meet (a, pa, region, pr, true)) {
         continue;
      }
      if (pa->kind == DJ_GEO_POLYGON) {
         /* a hole of the region inside a's shell leaves part of a outside */
         dj_geo_part_t shell = {DJ_GEO_POLYGON, pa->ring0, 1};
         bool hole_inside = false;
         for (int h = pr->ring0 + 1; h < pr->ring0 + pr->nrings && !hole_inside; h++) {
            const dj_geo_ring_t *hr = &region->rings[h];
            for (int i = 0; i < hr->npts - 1 && !hole_inside; i++) {
               dj_geo_pt_t v = region->pts[hr->pt0 + i];
               hole_inside = dj_geo_sphere_poly_contains (a, &shell, v) && ring_contains (a, &a->rings[pa->ring0], v) == 1;
            }
         }
         if (hole_inside) {
            continue;
         }
      }
      return true;
   }
   return false;
}

bool
dj_geo_sphere_within (const dj_geo_t *a, const dj_geo_t *region)
{
   if (a->nparts == 0) {
      return false;
   }
   for (int i = 0; i < a->nparts; i++) {
      if (!part_within (a, &a->parts[i], region)) {
         return false;
      }
   }
   return true;
}

static bool
any_vertex_in (const dj_geo_t *a, const dj_geo_part_t *pa, const dj_geo_t *b, const dj_geo_part_t *pb)
{
   const dj_geo_ring_t *ra = &a->rings[pa->ring0];
   for (int i = 0; i < ra->npts; i++) {
      if (dj_geo_sphere_poly_contains (b, pb, a->pts[ra->pt0 + i])) {
         return true;
      }
   }
   return false;
}

static bool
parts_intersect (const dj_geo_t *a, const dj_geo_part_t *pa, const dj_geo_t *b, const dj_geo_part_t *pb)
{
   if (pa->kind > pb->kind) { /* order the pair: point < line < polygon */
      const dj_geo_t *t = a;
      const dj_geo_part_t *tp = pa;
      a = b, pa = pb, b = t, pb = tp;
   }
   if (pa->kind == DJ_GEO_POINT) {
      dj_geo_pt_t p = a->pts[a->rings[pa->ring0].pt0];
      if (pb->kind == DJ_GEO_POLYGON) {
         return dj_geo_sphere_poly_contains (b, pb, p);
      }
      const dj_geo_ring_t *rb = &b->rings[pb->ring0];
      if (rb->npts == 1) {
         return dj_geo_sphere_dist (p, b->pts[rb->pt0]) < 1e-12;
      }
      v3_t v = vec (p);
      for (int j = 0; j + 1 < rb->npts; j++) {
         if (on_arc (v, vec (b->pts[rb->pt0 + j]), vec (b->pts[rb->pt0 + j + 1]))) {
            return true;
         }
      }
      return false;
   }
   if (edges_meet (a, pa, b, pb, false)) {
      return true;
   }
   if (pb->kind == DJ_GEO_POLYGON && any_vertex_in (a, pa, b, pb)) {
      return true;
   }
   return pa->kind == DJ_GEO_POLYGON && any_vertex_in (b, pb, a, pa);
}

bool
dj_geo_sphere_intersects (const dj_geo_t *a, const dj_geo_t *b)
{
   for (int i = 0; i < a->nparts; i++) {
      for (int j = 0; j < b->nparts; j++) {
         if (parts_intersect (a, &a->parts[i], b, &b->parts[j])) {
            return true;
         }
      }
   }
   return false;
}
