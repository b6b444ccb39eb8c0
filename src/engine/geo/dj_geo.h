/*
 * dj_geo.h -- geospatial values: GeoJSON and legacy coordinate pairs parsed
 * and checked as mongod checks them, spherical and flat geometry, the query
 * operators' shapes ($geoWithin, $geoIntersects, $near, $nearSphere), and
 * the cell ids a '2dsphere' or '2d' index stores.
 *
 * Who calls it: query (match.c evaluates the operators), storage (index
 * keys and the cell ranges a geo scan walks), aggregation ($geoNear).
 * It calls values only (BSON helpers).
 *
 * Why hand-written geometry: Debian's GEOS (geos_c.h) is planar -- its
 * predicates treat longitude/latitude as x/y, so an edge from 170 to -170
 * would wrap the globe the wrong way and "within" near the poles would be
 * wrong -- and MongoDB's 2dsphere semantics are spherical (edges are great
 * circle arcs, https://www.mongodb.com/docs/manual/reference/geojson/).
 * Google's libs2 is C++ (we are C11) and not packaged for C callers. What
 * spherical geometry is needed here is small: unit vectors, great circle
 * arcs crossing, point in a loop (through the gnomonic projection centred
 * on the loop, where arcs are straight lines), and distances.
 *
 * Shapes, in the manual's terms:
 *  - spherical (2dsphere, $geometry, $centerSphere, $nearSphere): WGS84
 *    coordinates on a sphere; distances in meters for GeoJSON points (earth
 *    radius 6378.1 km), radians for legacy pairs.
 *    https://www.mongodb.com/docs/manual/tutorial/calculate-distances-using-spherical-geometry-with-2d-geospatial-indexes/
 *  - flat (2d, $box, $polygon, $center, $near on legacy pairs): the plane.
 *    https://www.mongodb.com/docs/manual/core/indexes/index-types/geospatial/2d/
 *
 * Cell ids: the key space is a Z-order (Morton) curve over a 2^L x 2^L grid
 * of the index's bounds ([-180, 180] x [-90, 90] for 2dsphere, [min, max)^2
 * for 2d with `bits` = L). A cell at level l is written as S2 writes its
 * ids: the l-level Morton prefix, a 1 bit, then zeros, so a cell's
 * descendants are the contiguous range [id - lsb + 1, id + lsb - 1] and each
 * ancestor is one other id. A point is stored as its leaf cell; a line or a
 * polygon as the few cells (at one level) covering its bounding box. A query
 * walks, for each cell covering its region, the descendants' range and the
 * ancestors' ids; every candidate is then checked exactly.
 *
 * Memory: a dj_geo_t / dj_geo_query_t owns its arrays (dj_geo_cleanup,
 * dj_geo_query_cleanup). Threads: no shared state.
 *
 * Files:
 *   geojson.c    GeoJSON and legacy pairs parsed and validated
 *   sphere.c     unit vectors, arcs, point in loop, distances, predicates
 *   cells.c      bounding boxes, cell ids, coverings
 *   geo_query.c  the query operators parsed; matching and distances
 */
#ifndef DJ_GEO_H
#define DJ_GEO_H

#include "dj_values.h"

/* The earth's radius MongoDB converts radians with, in meters.
 * https://www.mongodb.com/docs/manual/tutorial/calculate-distances-using-spherical-geometry-with-2d-geospatial-indexes/ */
#define DJ_GEO_EARTH_RADIUS_M 6378100.0

typedef struct {
   double x, y; /* longitude, latitude in degrees (flat: x, y) */
} dj_geo_pt_t;

typedef enum { DJ_GEO_POINT, DJ_GEO_LINE, DJ_GEO_POLYGON } dj_geo_part_kind_t;
typedef struct {
   int pt0, npts; /* a polygon's ring is closed: its last point is its first */
} dj_geo_ring_t;
typedef struct {
   dj_geo_part_kind_t kind;
   int ring0, nrings; /* a point or a line: one ring; a polygon: shell, then holes */
} dj_geo_part_t;

/* A geometry flattened into parts (Multi* and GeometryCollection have
 * several). All arrays owned. */
typedef struct {
   dj_geo_pt_t *pts;
   int npts, cap_pts;
   dj_geo_ring_t *rings;
   int nrings, cap_rings;
   dj_geo_part_t *parts;
   int nparts, cap_parts;
   bool legacy; /* a legacy coordinate pair, not GeoJSON */
   bool trusted; /* parsed by dj_geo_parse_stored: rings not checked for crossings */
} dj_geo_t;

void dj_geo_init (dj_geo_t *g);
void dj_geo_cleanup (dj_geo_t *g);

/* ---- geojson.c ----------------------------------------------------------- */
/* Parses v as a GeoJSON object (any of the seven types) or, if
 * allow_legacy, a legacy pair ([x, y] or {a: x, b: y}); checks it as a
 * 2dsphere index does (coordinates in range, polygons closed, with 3
 * distinct vertices, not self-crossing, holes inside their shell). g is
 * initialised here; on false it is cleaned and *error says why. */
bool dj_geo_parse (const bson_value_t *v, bool allow_legacy, dj_geo_t *g, bson_error_t *error);
/* A stored value read for matching: as dj_geo_parse (legacy pairs
 * allowed), without the crossing checks -- what a 2dsphere index holds was
 * checked when it was written, and a value that is no geometry matches no
 * geo query either way. */
bool dj_geo_parse_stored (const bson_value_t *v, dj_geo_t *g);
/* A legacy coordinate pair only: [x, y] or a document whose first two
 * values are numbers. */
bool dj_geo_parse_legacy (const bson_value_t *v, dj_geo_pt_t *pt, bson_error_t *error);
/* Whether v looks like GeoJSON (a document with a string "type"). */
bool dj_geo_is_geojson (const bson_value_t *v);

/* ---- sphere.c ------------------------------------------------------------ */
/* Great circle distance between two lng/lat points, radians. */
double dj_geo_sphere_dist (dj_geo_pt_t a, dj_geo_pt_t b);
/* The least great circle distance from p to any part of g, radians (0
 * inside a polygon). */
double dj_geo_sphere_dist_to (dj_geo_pt_t p, const dj_geo_t *g);
/* Whether every part of a lies within the polygons of region (spherical). */
bool dj_geo_sphere_within (const dj_geo_t *a, const dj_geo_t *region);
/* Whether some part of a and some part of b share a point (spherical). */
bool dj_geo_sphere_intersects (const dj_geo_t *a, const dj_geo_t *b);
/* Whether the polygon part of g (rings from ring0, nrings) contains p,
 * boundary included. */
bool dj_geo_sphere_poly_contains (const dj_geo_t *g, const dj_geo_part_t *part, dj_geo_pt_t p);
/* Whether arcs ab and cd cross (spherical), or touch. */
bool dj_geo_sphere_arcs_meet (dj_geo_pt_t a, dj_geo_pt_t b, dj_geo_pt_t c, dj_geo_pt_t d);
/* Flat: ray casting in the plane, boundary included. */
bool dj_geo_flat_poly_contains (const dj_geo_pt_t *ring, int n, dj_geo_pt_t p);

/* ---- cells.c ------------------------------------------------------------- */
/* A grid: the index's bounds and its level count (2dsphere: the globe, 30). */
typedef struct {
   double xmin, xmax, ymin, ymax;
   int bits;
} dj_geo_grid_t;
typedef struct {
   double xlo, xhi, ylo, yhi;
} dj_geo_box_t;
void dj_geo_grid_sphere (dj_geo_grid_t *grid);
/* The leaf cell of p (clamped into the grid). */
int64_t dj_geo_cell_leaf (const dj_geo_grid_t *grid, dj_geo_pt_t p);
/* The spherical bounding box of g (edges as great circle arcs; a polygon
 * holding a pole reaches it, all longitudes). */
void dj_geo_bbox_sphere (const dj_geo_t *g, dj_geo_box_t *b);
/* The bounding box of the arc a..b (its latitudes beyond its ends
 * included); xhi - xlo > 180 when the arc crosses the antimeridian. */
void dj_geo_arc_box (dj_geo_pt_t a, dj_geo_pt_t b, dj_geo_box_t *box);
/* The flat bounding box of g's points. */
void dj_geo_bbox_flat (const dj_geo_t *g, dj_geo_box_t *b);
/* The bounding box of the spherical cap of `radius` radians around c. */
void dj_geo_bbox_cap (dj_geo_pt_t c, double radius, dj_geo_box_t *b);
/* Up to about max_cells cells, all at one level, covering box b
 * (owned array *cells, *n). */
void dj_geo_cover (const dj_geo_grid_t *grid, const dj_geo_box_t *b, int max_cells, int64_t **cells, int *n);
/* What a query walks to find every entry whose cell meets the covering:
 * ranges [lo[i], hi[i]] of descendants and single ids (ancestors), merged
 * and without repeats (owned arrays). */
typedef struct {
   int64_t *lo, *hi;
   int nranges, cap_ranges;
   int64_t *ids;
   int nids, cap_ids;
} dj_geo_ranges_t;
void dj_geo_ranges_from_cells (const dj_geo_grid_t *grid, const int64_t *cells, int n, dj_geo_ranges_t *r);
void dj_geo_ranges_cleanup (dj_geo_ranges_t *r);
/* The index keys of geometry g in a grid: its leaf cell for a point, else
 * the cells covering its bounding box (owned array). */
void dj_geo_keys (const dj_geo_grid_t *grid, const dj_geo_t *g, bool spherical, int64_t **cells, int *n);

/* ---- geo_query.c --------------------------------------------------------- */
typedef enum { DJ_GEO_WITHIN, DJ_GEO_INTERSECTS, DJ_GEO_NEAR } dj_geo_op_t;
typedef enum {
   DJ_GEO_R_GEOMETRY,      /* $geometry: spherical polygon(s) or any geometry */
   DJ_GEO_R_BOX,           /* $box: flat */
   DJ_GEO_R_POLYGON,       /* $polygon: flat */
   DJ_GEO_R_CENTER,        /* $center: flat circle */
   DJ_GEO_R_CENTER_SPHERE, /* $centerSphere: spherical cap, radians */
   DJ_GEO_R_NEAR           /* $near / $nearSphere / $geoNear's point */
} dj_geo_region_kind_t;

typedef struct {
   dj_geo_op_t op;
   dj_geo_region_kind_t kind;
   dj_geo_t shape;     /* GEOMETRY; BOX (2 corners); POLYGON (one ring) */
   dj_geo_pt_t center; /* CENTER, CENTER_SPHERE, NEAR */
   double radius;      /* CENTER, CENTER_SPHERE */
   /* NEAR: spherical ($nearSphere, a GeoJSON point, spherical: true);
    * meters: distances in meters (a GeoJSON point), else radians or flat
    * units; min/max bound the distance (max: +inf when not given). */
   bool spherical, meters;
   double min_dist, max_dist;
} dj_geo_query_t;

/* Parses the argument of $geoWithin / $geoIntersects (op) for a field.
 * https://www.mongodb.com/docs/manual/reference/operator/query/geoWithin/
 * https://www.mongodb.com/docs/manual/reference/operator/query/geoIntersects/ */
bool dj_geo_query_parse (dj_geo_op_t op, const bson_value_t *arg, dj_geo_query_t *q, bson_error_t *error);
/* Parses {$near | $nearSphere: point-or-{$geometry,...}} with the sibling
 * $minDistance/$maxDistance of `opdoc` (the field's operator document).
 * https://www.mongodb.com/docs/manual/reference/operator/query/near/ */
bool dj_geo_query_parse_near (const char *op, const bson_value_t *arg, const bson_value_t *opdoc, dj_geo_query_t *q,
                              bson_error_t *error);
/* A near query from $geoNear's fields (near, spherical, min/maxDistance). */
bool dj_geo_query_near_point (const bson_value_t *near, bool spherical, const bson_value_t *min, const bson_value_t *max,
                              dj_geo_query_t *q, bson_error_t *error);
void dj_geo_query_cleanup (dj_geo_query_t *q);
/* Whether the stored value v satisfies q (a near query: its distance is
 * within [min, max]); *dist receives a near query's distance if not NULL. */
bool dj_geo_query_match (const dj_geo_query_t *q, const bson_value_t *v, double *dist);
/* Whether q is answered on the sphere (its cells are a 2dsphere index's). */
bool dj_geo_query_spherical (const dj_geo_query_t *q);
/* The bounding box of what q can match; for a near query within `radius`
 * (the query's units). False: q's region is unbounded (a whole scan). */
bool dj_geo_query_bbox (const dj_geo_query_t *q, double radius, dj_geo_box_t *b);

#endif
