/*
 * geo_index.c -- '2dsphere' and '2d' indexes: the cell keys a document's
 * geometry is stored under (geo/dj_geo.h, "Cell ids"), and the scans that
 * answer geo queries through them.
 *
 * https://www.mongodb.com/docs/manual/core/indexes/index-types/geospatial/2dsphere/
 *  - a 2dsphere field holds GeoJSON or legacy pairs; an insert whose
 *    geometry is malformed fails ("Can't extract geo keys", 16755);
 *  - 2dsphere (version 2+) indexes are sparse: a document without the
 *    field (or with null / an empty array) has no entry, in a compound
 *    index too.
 * https://www.mongodb.com/docs/manual/core/indexes/index-types/geospatial/2d/
 *  - a 2d field holds legacy pairs within [min, max) (default -180..180),
 *    at `bits` of precision (default 26).
 * https://www.mongodb.com/docs/manual/reference/operator/query/near/
 *  - $near / $nearSphere need a geospatial index, and return documents
 *    nearest first: "unable to find index for $geoNear query" (291) without.
 *
 * A scan: the query's region (or, for $near, a cap around the point that
 * grows fourfold until it holds enough documents) is covered by cells; the
 * index entries in those cells' ranges name the candidates, which are then
 * checked against the whole filter -- the cells only narrow, never decide.
 */
#include "dj_storage.h"

#include <math.h>
#include <stdlib.h>

bool
dj_geo_index_kind (dj_index_t *ix, const bson_value_t *v)
{
   if (v->value_type != BSON_TYPE_UTF8) {
      return false;
   }
   if (!strcmp (v->value.v_utf8.str, "2dsphere")) {
      ix->geo_flat = false;
      dj_geo_grid_sphere (&ix->grid);
      return true;
   }
   if (!strcmp (v->value.v_utf8.str, "2d")) {
      ix->geo_flat = true;
      ix->grid = (dj_geo_grid_t) {-180, 180, -180, 180, 26};
      return true;
   }
   return false;
}

bool
dj_geo_index_options (dj_index_t *ix, const bson_t *spec, bson_error_t *error)
{
   bson_iter_t it;
   if (!ix->geo_flat) {
      return true;
   }
   if (bson_iter_init_find (&it, spec, "bits")) {
      double b = dj_value_as_double (bson_iter_value (&it));
      if (!dj_value_is_number (bson_iter_value (&it)) || b < 1 || b > 32) {
         return dj_err (error, DJ_InvalidOptions, "bits in geo index must be between 1 and 32");
      }
      /* the cell ids hold 30 levels; a finer 2d index is rechecked exactly */
      ix->grid.bits = b > 30 ? 30 : (int) b;
   }
   double lo = -180, hi = 180;
   if (bson_iter_init_find (&it, spec, "min")) {
      lo = dj_value_as_double (bson_iter_value (&it));
   }
   if (bson_iter_init_find (&it, spec, "max")) {
      hi = dj_value_as_double (bson_iter_value (&it));
   }
   if (!(lo < hi)) {
      return dj_err (error, 13022, "max must be greater than min");
   }
   ix->grid.xmin = ix->grid.ymin = lo;
   ix->grid.xmax = ix->grid.ymax = hi;
   return true;
}

typedef struct {
   const dj_index_t *ix;
   dj_vlist_t *out;
   bson_error_t *error;
   bool failed;
} cells_t;

static void
add_cells (cells_t *cs, const dj_geo_t *g)
{
   int64_t *ids;
   int n;
   dj_geo_keys (&cs->ix->grid, g, !cs->ix->geo_flat, &ids, &n);
   for (int i = 0; i < n; i++) {
      bson_value_t v = {.value_type = BSON_TYPE_INT64};
      v.value.v_int64 = ids[i];
      bool dup = false;
      for (size_t j = 0; j < cs->out->n && !dup; j++) {
         dup = cs->out->v[j].value.v_int64 == ids[i];
      }
      if (!dup) {
         dj_vlist_push (&v, cs->out);
      }
   }
   bson_free (ids);
}

/* One value at the geo path: a geometry, or an array of them. */
static bool
one_value (cells_t *cs, const bson_value_t *v, bool top, bson_error_t *error)
{
   dj_geo_t g;
   if (v->value_type == BSON_TYPE_NULL || v->value_type == BSON_TYPE_UNDEFINED) {
      return true;
   }
   if (cs->ix->geo_flat) {
      dj_geo_pt_t p;
      if (v->value_type == BSON_TYPE_ARRAY && top) {
         bson_iter_t it;
         bson_iter_init_from_data (&it, v->value.v_doc.data, v->value.v_doc.data_len);
         if (bson_iter_next (&it) && (BSON_ITER_HOLDS_ARRAY (&it) || BSON_ITER_HOLDS_DOCUMENT (&it))) {
            do { /* an array of pairs */
               if (!one_value (cs, bson_iter_value (&it), false, error)) {
                  return false;
               }
            } while (bson_iter_next (&it));
            return true;
         }
      }
      if (v->value_type != BSON_TYPE_ARRAY && v->value_type != BSON_TYPE_DOCUMENT) {
         return dj_err (error, 13026, "geo values must be 'legacy coordinate pairs' for 2d indexes");
      }
      if (!dj_geo_parse_legacy (v, &p, error)) {
         return false;
      }
      if (p.x < cs->ix->grid.xmin || p.x >= cs->ix->grid.xmax || p.y < cs->ix->grid.ymin || p.y >= cs->ix->grid.ymax) {
         return dj_err (error, 13027, "point not in interval of [ %g, %g ) :: caused by :: { 0: %g, 1: %g }", cs->ix->grid.xmin,
                        cs->ix->grid.xmax, p.x, p.y);
      }
      dj_geo_init (&g);
      DJ_GROW (g.pts, g.npts, g.cap_pts, 1);
      g.pts[g.npts++] = p;
      DJ_GROW (g.rings, g.nrings, g.cap_rings, 1);
      g.rings[g.nrings++] = (dj_geo_ring_t) {0, 1};
      DJ_GROW (g.parts, g.nparts, g.cap_parts, 1);
      g.parts[g.nparts++] = (dj_geo_part_t) {DJ_GEO_POINT, 0, 1};
      add_cells (cs, &g);
      dj_geo_cleanup (&g);
      return true;
   }
   if (v->value_type == BSON_TYPE_ARRAY && top) {
      /* a legacy pair [x, y], or an array of geometries */
      bson_iter_t it;
      bson_iter_init_from_data (&it, v->value.v_doc.data, v->value.v_doc.data_len);
      if (bson_iter_next (&it) && (BSON_ITER_HOLDS_ARRAY (&it) || BSON_ITER_HOLDS_DOCUMENT (&it))) {
         do {
            if (!one_value (cs, bson_iter_value (&it), false, error)) {
               return false;
            }
         } while (bson_iter_next (&it));
         return true;
      }
   }
   if (!dj_geo_parse (v, true, &g, error)) {
      return false;
   }
   bool ok = true;
   for (int i = 0; i < g.npts && ok; i++) {
      if (g.pts[i].x < -180 || g.pts[i].x > 180 || g.pts[i].y < -90 || g.pts[i].y > 90) {
         ok = dj_err (error, DJ_BadValue, "longitude/latitude is out of bounds, lng: %g lat: %g", g.pts[i].x, g.pts[i].y);
      }
   }
   if (ok) {
      add_cells (cs, &g);
   }
   dj_geo_cleanup (&g);
   return ok;
}

static void
visit_geo (const bson_value_t *v, void *ud)
{
   cells_t *cs = ud;
   if (!cs->failed && !one_value (cs, v, true, cs->error)) {
      cs->failed = true;
   }
}

bool
dj_geo_index_cells (const dj_index_t *ix, const bson_t *doc, dj_vlist_t *out, bson_error_t *error)
{
   bson_value_t dv;
   bson_error_t why = {0};
   cells_t cs = {ix, out, &why, false};

   dj_value_from_doc (doc, false, &dv);
   dj_path_visit (&dv, &ix->paths[ix->geo - 1], 0, false, visit_geo, &cs);
   if (!cs.failed) {
      return true;
   }
   out->n = 0;
   if (ix->geo_flat) {
      if (error) {
         *error = why;
      }
      return false;
   }
   dj_buf_t shell;
   dj_buf_init (&shell);
   dj_doc_to_shell (doc, &shell);
   /* the reason must survive bson_error_t's fixed message: a long document
    * is cut (mongod prints it whole) */
   size_t room = sizeof error->message - strlen (why.message) - 40;
   if (shell.len > room) {
      shell.len = room;
      dj_buf_append (&shell, " ...", 4);
   }
   dj_err (error, 16755, "Can't extract geo keys: %.*s  %s", (int) shell.len, (const char *) shell.data, why.message);
   dj_buf_cleanup (&shell);
   return false;
}

/* ---- choosing the index ---------------------------------------------------- */

/* Whether index ix can answer q: GeoJSON near points and $geoIntersects
 * need a 2dsphere index, $near on a legacy pair a 2d one
 * (https://www.mongodb.com/docs/manual/reference/operator/query/near/). */
static bool
fits (const dj_index_t *ix, const dj_geo_query_t *q)
{
   if (!ix->geo || ix->hidden || ix->partial) {
      return false;
   }
   switch (q->kind) {
   case DJ_GEO_R_NEAR: return q->meters ? !ix->geo_flat : (q->spherical || ix->geo_flat);
   case DJ_GEO_R_GEOMETRY: return !ix->geo_flat;
   default: return true;
   }
}

/* The name of ix's geo field (a key of its pattern, borrowed). */
static const char *
geo_field (const dj_index_t *ix)
{
   bson_iter_t kp;
   bson_iter_init (&kp, ix->key);
   for (int k = 0; k < ix->geo && bson_iter_next (&kp); k++) {
   }
   return bson_iter_key (&kp);
}

/* The geo index for m: the one on its near condition's field, else the
 * first whose field has a geo condition it fits; *qo the condition. */
static int
index_for (const dj_coll_t *c, const dj_matcher_t *m, const dj_geo_query_t **qo)
{
   const char *npath;
   const dj_geo_query_t *nq = dj_matcher_geo (m, NULL, true, &npath);
   if (dj_collation_current () && !nq) {
      return -1;
   }
   for (int i = 0; i < c->nindexes; i++) {
      const dj_index_t *ix = &c->indexes[i];
      if (!ix->geo) {
         continue;
      }
      const dj_geo_query_t *q = nq ? (strcmp (npath, geo_field (ix)) ? NULL : nq) : dj_matcher_geo (m, geo_field (ix), false, NULL);
      if (q && fits (ix, q)) {
         *qo = q;
         return i;
      }
   }
   return -1;
}

int
dj_geo_plan_index (const dj_coll_t *c, const dj_matcher_t *m, bool *near)
{
   const dj_geo_query_t *q;
   int i = c ? index_for (c, m, &q) : -1;
   if (near) {
      *near = i >= 0 && q->op == DJ_GEO_NEAR;
   }
   return i;
}

/* ---- candidates -------------------------------------------------------------- */

typedef struct {
   uint64_t *rids;
   size_t n, cap;
} rids_t;

/* Appends the record ids of ix's entries whose first key is an int64 in
 * [lo, hi] (w: an open walk of ix's entries, sought here); all of them
 * when `all`. */
static void
walk_cells (dj_walk_t *w, const dj_index_t *ix, int64_t lo, int64_t hi, bool all, rids_t *out)
{
   dj_buf_t k, hik;
   dj_buf_init (&k);
   dj_buf_init (&hik);
   bson_value_t v = {.value_type = BSON_TYPE_INT64};
   v.value.v_int64 = hi;
   dj_key_append (&hik, &v, false);
   if (!all) {
      v.value.v_int64 = lo;
      dj_buf_put_u64be (&k, ix->id);
      dj_key_append (&k, &v, false);
      dj_walk_seek (w, k.data, k.len);
   }
   while (dj_walk_next (w)) {
      const uint8_t *key = (const uint8_t *) w->k.mv_data + 8;
      size_t klen = w->k.mv_size - 8;
      if (!all) {
         size_t n = klen < hik.len ? klen : hik.len;
         int cmp = memcmp (key, hik.data, n);
         if (cmp > 0 || (cmp == 0 && klen < hik.len)) {
            break; /* past every key starting with hi */
         }
      }
      uint64_t rid = ix->unique ? dj_u64be_read (w->v.mv_data) : dj_u64be_read (key + klen - 8);
      DJ_GROW (out->rids, out->n, out->cap, 64);
      out->rids[out->n++] = rid;
   }
   DJ_FREE (k.data, hik.data);
}

/* The candidates for a region: the entries in the cells covering box b
 * (b NULL: the whole index), record ids sorted without repeats. */
static bool
candidates (dj_ctx_t *ctx, const dj_index_t *ix, const dj_geo_box_t *b, rids_t *out, bson_error_t *error)
{
   dj_walk_t w;
   uint8_t prefix[8];
   dj_u64be_write (prefix, ix->id);
   out->n = 0;
   if (!dj_walk_open (&w, ctx, ctx->engine->dbi_data, prefix, 8, 1, error)) {
      return false;
   }
   if (!b || ix->geo != 1) { /* the geo field not first: every entry */
      walk_cells (&w, ix, 0, 0, true, out);
   } else {
      int64_t *cells;
      int n;
      dj_geo_ranges_t r;
      dj_geo_cover (&ix->grid, b, 16, &cells, &n);
      dj_geo_ranges_from_cells (&ix->grid, cells, n, &r);
      bson_free (cells);
      for (int i = 0; i < r.nranges; i++) {
         walk_cells (&w, ix, r.lo[i], r.hi[i], false, out);
      }
      for (int i = 0; i < r.nids; i++) {
         walk_cells (&w, ix, r.ids[i], r.ids[i], false, out);
      }
      dj_geo_ranges_cleanup (&r);
   }
   bool ok = dj_walk_close (&w, "geo index scan", error);
   dj_rids_sort (out->rids, out->n);
   size_t k = 0;
   for (size_t i = 0; i < out->n; i++) {
      if (!k || out->rids[k - 1] != out->rids[i]) {
         out->rids[k++] = out->rids[i];
      }
   }
   out->n = k;
   return ok;
}

/* ---- near: by distance ------------------------------------------------------- */

typedef struct {
   uint64_t rid;
   double dist;
} hit_t;

static int
cmp_hit (const void *a, const void *b)
{
   const hit_t *x = a, *y = b;
   if (x->dist != y->dist) {
      return x->dist < y->dist ? -1 : 1;
   }
   return x->rid < y->rid ? -1 : x->rid > y->rid;
}

typedef struct {
   const dj_geo_query_t *q;
   double best;
   bson_value_t loc;
   bool any;
} nearest_t;

static void
nearest_visit (const bson_value_t *v, void *ud)
{
   nearest_t *nt = ud;
   double d;
   if (dj_geo_query_match (nt->q, v, &d) && (!nt->any || d < nt->best)) {
      nt->best = d, nt->loc = *v, nt->any = true;
   }
   if (v->value_type == BSON_TYPE_ARRAY) { /* an array of locations: each */
      bson_iter_t it;
      bson_iter_init_from_data (&it, v->value.v_doc.data, v->value.v_doc.data_len);
      while (bson_iter_next (&it)) {
         if ((BSON_ITER_HOLDS_ARRAY (&it) || BSON_ITER_HOLDS_DOCUMENT (&it)) &&
             dj_geo_query_match (nt->q, bson_iter_value (&it), &d) && (!nt->any || d < nt->best)) {
            nt->best = d, nt->loc = *bson_iter_value (&it), nt->any = true;
         }
      }
   }
}

/* doc's distance from q's point (the nearest of its locations at path). */
static bool
doc_distance (const dj_index_t *ix, const dj_geo_query_t *q, const bson_t *doc, double *d, bson_value_t *loc)
{
   bson_value_t dv;
   nearest_t nt = {q, 0, {0}, false};
   dj_value_from_doc (doc, false, &dv);
   dj_path_visit (&dv, &ix->paths[ix->geo - 1], 0, false, nearest_visit, &nt);
   *d = nt.best;
   if (loc) {
      *loc = nt.loc;
   }
   return nt.any;
}

/* The documents within q's distances matching m, nearest first: at most
 * max (0: all) hits into *hits (owned). */
static bool
near_hits (dj_ctx_t *ctx, dj_coll_t *c, const dj_index_t *ix, const dj_geo_query_t *q, const dj_matcher_t *m,
           const dj_eval_t *vars, int64_t max, hit_t **hits, size_t *nhits, bson_error_t *error)
{
   rids_t rids = {0};
   hit_t *h = NULL;
   size_t n = 0, cap = 0;
   bool ok = true;
   /* the first cap: ~6 km on the sphere, 1/1024 of a 2d grid */
   double unit = q->spherical ? (q->meters ? DJ_GEO_EARTH_RADIUS_M : 1.0) : 1.0;
   double r = q->spherical ? 1e-3 * unit : (ix->grid.xmax - ix->grid.xmin) / 1024.0;
   double whole = q->spherical ? M_PI * unit : (ix->grid.xmax - ix->grid.xmin) * 2;
   if (max == 0 || r > q->max_dist) {
      r = q->max_dist;
   }
   for (;;) {
      bool last = r >= q->max_dist || r >= whole;
      dj_geo_box_t b;
      bool bounded = !isinf (r) && r < whole && dj_geo_query_bbox (q, r, &b);
      n = 0;
      if (!(ok = candidates (ctx, ix, bounded ? &b : NULL, &rids, error))) {
         break;
      }
      for (size_t i = 0; i < rids.n && ok; i++) {
         bson_t doc;
         double d;
         if (!(ok = dj_record_get (ctx, c, rids.rids[i], &doc, error))) {
            break;
         }
         if (!doc_distance (ix, q, &doc, &d, NULL) || (!last && d > r)) {
            continue; /* beyond this round's cap: a later round finds it in order */
         }
         bson_error_t xe = {0};
         if (m && !dj_matcher_match_ex (m, &doc, NULL, vars, &xe)) {
            if (xe.code) {
               *error = xe;
               ok = false;
            }
            continue;
         }
         DJ_GROW (h, n, cap, 64);
         h[n++] = (hit_t) {rids.rids[i], d};
      }
      if (!ok || last || (int64_t) n >= max) {
         break;
      }
      r = fmin (r * 4, q->max_dist);
   }
   bson_free (rids.rids);
   if (!ok) {
      bson_free (h);
      return false;
   }
   if (n > 1) {
      qsort (h, n, sizeof *h, cmp_hit);
   }
   if (max && (int64_t) n > max) {
      n = (size_t) max;
   }
   *hits = h;
   *nhits = n;
   return true;
}

bool
dj_geo_near_index (const dj_coll_t *c, const dj_geo_query_t *q, const char *key, int *index, bson_error_t *error)
{
   int found = -1, nfit = 0;
   for (int i = 0; c && i < c->nindexes; i++) {
      const dj_index_t *ix = &c->indexes[i];
      if (!ix->geo) {
         continue;
      }
      if (key && strcmp (geo_field (ix), key)) {
         continue;
      }
      if (fits (ix, q)) {
         found = found < 0 ? i : found;
         nfit++;
      }
   }
   if (found < 0) {
      return dj_err (error, 291, "unable to find index for $geoNear query");
   }
   if (nfit > 1 && !key) {
      /* https://www.mongodb.com/docs/manual/reference/operator/aggregation/geoNear/ (key) */
      return dj_err (error, DJ_IndexNotFound, "There is more than one %s index on %s; unsure which to use for $geoNear",
                     c->indexes[found].geo_flat ? "2d" : "2dsphere", c->ns);
   }
   *index = found;
   return true;
}

bool
dj_geo_near (dj_ctx_t *ctx, dj_coll_t *c, int index, const dj_geo_query_t *q, const dj_matcher_t *m, int64_t max,
             dj_geo_near_fn fn, void *ud, bson_error_t *error)
{
   hit_t *h;
   size_t n;
   const dj_index_t *ix = &c->indexes[index];
   if (!near_hits (ctx, c, ix, q, m, NULL, max, &h, &n, error)) {
      return false;
   }
   bool ok = true;
   for (size_t i = 0; i < n && ok; i++) {
      bson_t doc;
      double d;
      bson_value_t loc;
      if (!(ok = dj_record_get (ctx, c, h[i].rid, &doc, error))) {
         break;
      }
      doc_distance (ix, q, &doc, &d, &loc);
      if (!fn (&doc, d, &loc, ud)) {
         break;
      }
   }
   bson_free (h);
   return ok;
}

/* ---- the planner's hook --------------------------------------------------------- */

bool
dj_geo_plan_scan (dj_ctx_t *ctx, dj_coll_t *c, const dj_matcher_t *m, const dj_eval_t *vars, int64_t max, dj_scan_fn fn,
                  void *fnctx, bool *used, bson_error_t *error)
{
   const dj_geo_query_t *q = NULL;
   int i = index_for (c, m, &q);
   *used = false;
   if (i < 0) {
      if (dj_matcher_geo (m, NULL, true, NULL)) {
         return dj_err (error, 291, "unable to find index for $geoNear query");
      }
      return true;
   }
   *used = true;
   const dj_index_t *ix = &c->indexes[i];
   bool ok;
   if (q->op == DJ_GEO_NEAR) {
      hit_t *h;
      size_t n;
      if (!near_hits (ctx, c, ix, q, m, vars, max, &h, &n, error)) {
         return false;
      }
      ok = true;
      for (size_t k = 0; k < n && ok; k++) {
         bson_t doc;
         if (!(ok = dj_record_get (ctx, c, h[k].rid, &doc, error)) || !fn (h[k].rid, &doc, -1, fnctx)) {
            break;
         }
      }
      bson_free (h);
      return ok;
   }
   dj_geo_box_t b;
   rids_t rids = {0};
   bool bounded = dj_geo_query_bbox (q, INFINITY, &b);
   ok = candidates (ctx, ix, bounded ? &b : NULL, &rids, error);
   /* matches first, then fn: fn may write (the Halloween problem) */
   size_t nmatch = 0;
   for (size_t k = 0; k < rids.n && ok; k++) {
      bson_t doc;
      bson_error_t xe = {0};
      if (!(ok = dj_record_get (ctx, c, rids.rids[k], &doc, error))) {
         break;
      }
      if (dj_matcher_match_ex (m, &doc, NULL, vars, &xe)) {
         rids.rids[nmatch++] = rids.rids[k];
      } else if (xe.code) {
         *error = xe;
         ok = false;
      }
   }
   for (size_t k = 0; k < nmatch && ok && (!max || (int64_t) k < max); k++) {
      bson_t doc;
      if (!(ok = dj_record_get (ctx, c, rids.rids[k], &doc, error)) || !fn (rids.rids[k], &doc, -1, fnctx)) {
         break;
      }
   }
   bson_free (rids.rids);
   return ok;
}
