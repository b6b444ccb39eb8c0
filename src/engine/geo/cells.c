/*
 * cells.c -- the cell ids a geo index stores and the id ranges a geo query
 * walks (dj_geo.h, "Cell ids", says how an id is laid out).
 *
 * A 2dsphere index's grid is longitude x latitude at 30 levels (a leaf cell
 * is about 4 cm wide); a 2d index's is [min, max) in both axes at `bits`
 * levels (26 by default, as mongod's):
 * https://www.mongodb.com/docs/manual/core/indexes/index-types/geospatial/2d/create/define-location-precision/
 */
#include "dj_geo.h"

#include <math.h>
#include <stdlib.h>

void
dj_geo_grid_sphere (dj_geo_grid_t *grid)
{
   *grid = (dj_geo_grid_t) {-180, 180, -90, 90, 30};
}

/* Spreads the low 32 bits of v to the even bits of the result. */
static uint64_t
spread (uint64_t v)
{
   v &= 0xFFFFFFFFull;
   v = (v | (v << 16)) & 0x0000FFFF0000FFFFull;
   v = (v | (v << 8)) & 0x00FF00FF00FF00FFull;
   v = (v | (v << 4)) & 0x0F0F0F0F0F0F0F0Full;
   v = (v | (v << 2)) & 0x3333333333333333ull;
   v = (v | (v << 1)) & 0x5555555555555555ull;
   return v;
}

static int64_t
cell_id (const dj_geo_grid_t *grid, int level, uint64_t i, uint64_t j)
{
   uint64_t m = spread (i) | (spread (j) << 1);
   return (int64_t) (((m << 1) | 1) << (2 * (grid->bits - level)));
}

/* The column of x at `level` (clamped into the grid). */
static uint64_t
column (double v, double lo, double hi, int level)
{
   double n = ldexp (1.0, level);
   double f = floor ((v - lo) / (hi - lo) * n);
   if (!(f >= 0)) {
      f = 0;
   }
   if (f > n - 1) {
      f = n - 1;
   }
   return (uint64_t) f;
}

int64_t
dj_geo_cell_leaf (const dj_geo_grid_t *grid, dj_geo_pt_t p)
{
   return cell_id (grid, grid->bits, column (p.x, grid->xmin, grid->xmax, grid->bits),
                   column (p.y, grid->ymin, grid->ymax, grid->bits));
}

static int
cell_level (const dj_geo_grid_t *grid, int64_t id)
{
   int tz = __builtin_ctzll ((unsigned long long) id);
   return grid->bits - tz / 2;
}

static void
box_add (dj_geo_box_t *b, dj_geo_pt_t p)
{
   b->xlo = fmin (b->xlo, p.x);
   b->xhi = fmax (b->xhi, p.x);
   b->ylo = fmin (b->ylo, p.y);
   b->yhi = fmax (b->yhi, p.y);
}

void
dj_geo_bbox_flat (const dj_geo_t *g, dj_geo_box_t *b)
{
   *b = (dj_geo_box_t) {INFINITY, -INFINITY, INFINITY, -INFINITY};
   for (int i = 0; i < g->npts; i++) {
      box_add (b, g->pts[i]);
   }
}

/* The latitudes an arc a..b reaches beyond its ends: a great circle's
 * highest point is where it is closest to the pole. */
static void
arc_lat_extent (dj_geo_pt_t a, dj_geo_pt_t b, dj_geo_box_t *box)
{
   double la = a.y * M_PI / 180, lb = b.y * M_PI / 180, ga = a.x * M_PI / 180, gb = b.x * M_PI / 180;
   double ax = cos (la) * cos (ga), ay = cos (la) * sin (ga), az = sin (la);
   double bx = cos (lb) * cos (gb), by = cos (lb) * sin (gb), bz = sin (lb);
   double nx = ay * bz - az * by, ny = az * bx - ax * bz, nz = ax * by - ay * bx;
   double nl = sqrt (nx * nx + ny * ny + nz * nz);
   if (nl < 1e-15) {
      return;
   }
   nx /= nl, ny /= nl, nz /= nl;
   /* the circle's top: z minus its component along n, normalised */
   double tx = -nz * nx, ty = -nz * ny, tz = 1 - nz * nz;
   double tl = sqrt (tx * tx + ty * ty + tz * tz);
   if (tl < 1e-15) {
      return; /* the equator */
   }
   for (int s = 1; s >= -1; s -= 2) {
      double px = s * tx / tl, py = s * ty / tl, pz = s * tz / tl;
      /* between a and b: (a x p) . n >= 0 and (p x b) . n >= 0 */
      double c1 = (ay * pz - az * py) * nx + (az * px - ax * pz) * ny + (ax * py - ay * px) * nz;
      double c2 = (py * bz - pz * by) * nx + (pz * bx - px * bz) * ny + (px * by - py * bx) * nz;
      if (c1 >= 0 && c2 >= 0) {
         double lat = asin (fmax (-1, fmin (1, pz))) * 180 / M_PI;
         box->ylo = fmin (box->ylo, lat);
         box->yhi = fmax (box->yhi, lat);
      }
   }
}

void
dj_geo_arc_box (dj_geo_pt_t a, dj_geo_pt_t b, dj_geo_box_t *box)
{
   *box = (dj_geo_box_t) {fmin (a.x, b.x), fmax (a.x, b.x), fmin (a.y, b.y), fmax (a.y, b.y)};
   arc_lat_extent (a, b, box);
}

void
dj_geo_bbox_sphere (const dj_geo_t *g, dj_geo_box_t *b)
{
   bool all_lng = false;
   dj_geo_bbox_flat (g, b);
   for (int r = 0; r < g->nrings; r++) {
      const dj_geo_pt_t *q = g->pts + g->rings[r].pt0;
      for (int i = 0; i + 1 < g->rings[r].npts; i++) {
         if (fabs (q[i + 1].x - q[i].x) > 180) {
            all_lng = true; /* the shorter way crosses the antimeridian */
         }
         arc_lat_extent (q[i], q[i + 1], b);
      }
   }
   for (int i = 0; i < g->nparts; i++) {
      if (g->parts[i].kind != DJ_GEO_POLYGON) {
         continue;
      }
      if (dj_geo_sphere_poly_contains (g, &g->parts[i], (dj_geo_pt_t) {0, 90})) {
         b->yhi = 90, all_lng = true;
      }
      if (dj_geo_sphere_poly_contains (g, &g->parts[i], (dj_geo_pt_t) {0, -90})) {
         b->ylo = -90, all_lng = true;
      }
   }
   if (all_lng) {
      b->xlo = -180, b->xhi = 180;
   }
}

void
dj_geo_bbox_cap (dj_geo_pt_t c, double radius, dj_geo_box_t *b)
{
   double rd = radius * 180 / M_PI;
   b->ylo = c.y - rd;
   b->yhi = c.y + rd;
   if (radius >= M_PI / 2 || b->yhi >= 90 || b->ylo <= -90) {
      b->ylo = fmax (b->ylo, -90), b->yhi = fmin (b->yhi, 90);
      b->xlo = -180, b->xhi = 180;
      return;
   }
   double dl = asin (fmin (1, sin (radius) / cos (c.y * M_PI / 180))) * 180 / M_PI;
   if (dl >= 180) {
      b->xlo = -180, b->xhi = 180;
      return;
   }
   b->xlo = c.x - dl;
   b->xhi = c.x + dl;
   /* across the antimeridian: xlo > xhi says the box wraps */
   if (b->xlo < -180) {
      b->xlo += 360;
   }
   if (b->xhi > 180) {
      b->xhi -= 360;
   }
}

static void
cover_one (const dj_geo_grid_t *grid, double xlo, double xhi, double ylo, double yhi, int max_cells, int64_t **cells, int *n,
           int *cap)
{
   int level = 0;
   for (int l = 1; l <= grid->bits; l++) {
      uint64_t nx = column (xhi, grid->xmin, grid->xmax, l) - column (xlo, grid->xmin, grid->xmax, l) + 1;
      uint64_t ny = column (yhi, grid->ymin, grid->ymax, l) - column (ylo, grid->ymin, grid->ymax, l) + 1;
      if (nx * ny > (uint64_t) max_cells) {
         break;
      }
      level = l;
   }
   uint64_t i0 = column (xlo, grid->xmin, grid->xmax, level), i1 = column (xhi, grid->xmin, grid->xmax, level);
   uint64_t j0 = column (ylo, grid->ymin, grid->ymax, level), j1 = column (yhi, grid->ymin, grid->ymax, level);
   for (uint64_t i = i0; i <= i1; i++) {
      for (uint64_t j = j0; j <= j1; j++) {
         DJ_GROW (*cells, *n, *cap, 16);
         (*cells)[(*n)++] = cell_id (grid, level, i, j);
      }
   }
}

void
dj_geo_cover (const dj_geo_grid_t *grid, const dj_geo_box_t *b, int max_cells, int64_t **cells, int *n)
{
   int cap = 0;
   *cells = NULL;
   *n = 0;
   double ylo = fmax (b->ylo, grid->ymin), yhi = fmin (b->yhi, grid->ymax);
   if (b->xlo > b->xhi) { /* wraps: two boxes */
      cover_one (grid, b->xlo, grid->xmax, ylo, yhi, max_cells / 2, cells, n, &cap);
      cover_one (grid, grid->xmin, b->xhi, ylo, yhi, max_cells / 2, cells, n, &cap);
   } else {
      cover_one (grid, fmax (b->xlo, grid->xmin), fmin (b->xhi, grid->xmax), ylo, yhi, max_cells, cells, n, &cap);
   }
}

static int
cmp_i64 (const void *a, const void *b)
{
   int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
   return x < y ? -1 : x > y;
}

void
dj_geo_ranges_from_cells (const dj_geo_grid_t *grid, const int64_t *cells, int n, dj_geo_ranges_t *r)
{
   memset (r, 0, sizeof *r);
   int64_t *c = bson_malloc (sizeof (int64_t) * (size_t) (n ? n : 1));
   if (n > 0) {
      memcpy (c, cells, sizeof (int64_t) * (size_t) n);
      qsort (c, (size_t) n, sizeof *c, cmp_i64);
   }
   for (int i = 0; i < n; i++) {
      int level = cell_level (grid, c[i]);
      int64_t lsb = (int64_t) 1 << (2 * (grid->bits - level));
      int64_t lo = c[i] - lsb + 1, hi = c[i] + lsb - 1;
      if (r->nranges && lo <= r->hi[r->nranges - 1] + 1) {
         if (hi > r->hi[r->nranges - 1]) {
            r->hi[r->nranges - 1] = hi;
         }
      } else {
         if (r->nranges == r->cap_ranges) { /* lo and hi grow together */
            r->cap_ranges = r->cap_ranges ? 2 * r->cap_ranges : 8;
            r->lo = bson_realloc (r->lo, sizeof (int64_t) * (size_t) r->cap_ranges);
            r->hi = bson_realloc (r->hi, sizeof (int64_t) * (size_t) r->cap_ranges);
         }
         r->lo[r->nranges] = lo;
         r->hi[r->nranges++] = hi;
      }
      for (int k = 0; k < level; k++) {
         int64_t lk = (int64_t) 1 << (2 * (grid->bits - k));
         int64_t anc = (c[i] & ~(2 * lk - 1)) | lk;
         DJ_GROW (r->ids, r->nids, r->cap_ids, 32);
         r->ids[r->nids++] = anc;
      }
   }
   bson_free (c);
   if (r->nids > 1) {
      qsort (r->ids, (size_t) r->nids, sizeof (int64_t), cmp_i64);
   }
   int out = 0;
   for (int i = 0; i < r->nids; i++) {
      if (out && r->ids[out - 1] == r->ids[i]) {
         continue;
      }
      bool in_range = false;
      for (int j = 0; j < r->nranges && !in_range; j++) {
         in_range = r->ids[i] >= r->lo[j] && r->ids[i] <= r->hi[j];
      }
      if (!in_range) {
         r->ids[out++] = r->ids[i];
      }
   }
   r->nids = out;
}

void
dj_geo_ranges_cleanup (dj_geo_ranges_t *r)
{
   DJ_FREE (r->lo, r->hi, r->ids);
   memset (r, 0, sizeof *r);
}

void
dj_geo_keys (const dj_geo_grid_t *grid, const dj_geo_t *g, bool spherical, int64_t **cells, int *n)
{
   bool points = true;
   for (int i = 0; i < g->nparts && points; i++) {
      points = g->parts[i].kind == DJ_GEO_POINT;
   }
   if (points && g->npts <= 32) { /* each point its leaf cell */
      int cap = 0;
      *cells = NULL;
      *n = 0;
      for (int i = 0; i < g->npts; i++) {
         int64_t id = dj_geo_cell_leaf (grid, g->pts[i]);
         bool dup = false;
         for (int j = 0; j < *n && !dup; j++) {
            dup = (*cells)[j] == id;
         }
         if (!dup) {
            DJ_GROW (*cells, *n, cap, 4);
            (*cells)[(*n)++] = id;
         }
      }
      return;
   }
   dj_geo_box_t b;
   if (spherical) {
      dj_geo_bbox_sphere (g, &b);
   } else {
      dj_geo_bbox_flat (g, &b);
   }
   dj_geo_cover (grid, &b, 8, cells, n);
}
