/*
 * geo_vs_sqlite -- geospatial queries: the engine through a 2dsphere index,
 * the engine scanning the collection, and SQLite's R*Tree, on the same
 * points in the same run.
 *
 *   geo_vs_sqlite [N] [--markdown FILE]
 *
 * N points (default 100000), spread evenly (a fixed pseudo-random
 * sequence) over longitude -10..10, latitude 40..60, loaded into an indexed
 * collection, an unindexed one, and an R*Tree table. Each workload runs Q
 * queries at different centres; the table shows the best of 3 rounds per
 * query.
 *   within_box      $geoWithin a 0.5 x 0.5 degree polygon; SQLite: the
 *                   R*Tree's box query (a planar box: the same points
 *                   unless one lies within metres of an edge)
 *   within_50km     $geoWithin $centerSphere 50 km; SQLite: the R*Tree's
 *                   box around the cap, then the great circle distance of
 *                   each candidate (in C, as the engine computes it)
 *   near_10         $near, limit 10; the scan: $_djongoGeoDistance of each
 *                   document, $sort, $limit 10; SQLite: R*Tree boxes
 *                   growing fourfold from ~1 km until 10 points lie within
 *                   the cap, sorted by distance
 *   near_5km        $near with $maxDistance 5 km, all of them, nearest first;
 *                   SQLite: the cap's box, the distances, a sort
 * The counts column says that each side found the same number of points.
 */
#include <math.h>
#include <string.h>

#include "bench.h"

#define EARTH_M 6378100.0
#define Q 20

static double
sphere_m (double lng1, double lat1, double lng2, double lat2)
{
   double p1 = lat1 * M_PI / 180, p2 = lat2 * M_PI / 180, dl = (lng2 - lng1) * M_PI / 180;
   double x = cos (p1) * sin (p2) - sin (p1) * cos (p2) * cos (dl), y = cos (p2) * sin (dl),
          z = sin (p1) * sin (p2) + cos (p1) * cos (p2) * cos (dl);
   return atan2 (sqrt (x * x + y * y), z) * EARTH_M;
}

/* The R*Tree's box query, prepared once by main (finalized before the
 * database closes). */
static sqlite3_stmt *box_stmt;

/* The R*Tree's points inside the box; *cand their coordinates (owned). */
static int64_t
rtree_box (bench_t *b, double x0, double x1, double y0, double y1, double **cand)
{
   sqlite3_stmt *st = box_stmt;
   (void) b;
   sqlite3_bind_double (st, 1, x0);
   sqlite3_bind_double (st, 2, x1);
   sqlite3_bind_double (st, 3, y0);
   sqlite3_bind_double (st, 4, y1);
   int64_t n = 0, cap = 0;
   while (sqlite3_step (st) == SQLITE_ROW) {
      if (cand) {
         if (n == cap) {
            cap = cap ? cap * 2 : 256;
            *cand = realloc (*cand, sizeof (double) * 2 * (size_t) cap);
         }
         (*cand)[2 * n] = sqlite3_column_double (st, 0);
         (*cand)[2 * n + 1] = sqlite3_column_double (st, 1);
      }
      n++;
   }
   sqlite3_reset (st);
   return n;
}

static int
cmp_d (const void *a, const void *b)
{
   double x = *(const double *) a, y = *(const double *) b;
   return x < y ? -1 : x > y;
}

/* The points within r meters of (x, y), by distance: how many (and at
 * most `keep` of them sorted when keep > 0). */
static int64_t
rtree_cap (bench_t *b, double x, double y, double r, int64_t keep)
{
   double dlat = r / EARTH_M * 180 / M_PI, dlng = dlat / cos (y * M_PI / 180);
   double *cand = NULL;
   int64_t n = rtree_box (b, x - dlng, x + dlng, y - dlat, y + dlat, &cand), k = 0;
   double *d = malloc (sizeof (double) * (size_t) (n ? n : 1));
   for (int64_t i = 0; i < n; i++) {
      double m = sphere_m (x, y, cand[2 * i], cand[2 * i + 1]);
      if (m <= r) {
         d[k++] = m;
      }
   }
   qsort (d, (size_t) k, sizeof *d, cmp_d);
   free (cand);
   free (d);
   return keep && k > keep ? keep : k;
}

static int64_t
rtree_knn (bench_t *b, double x, double y, int64_t k)
{
   for (double r = 1000;; r *= 4) {
      int64_t n = rtree_cap (b, x, y, r, k);
      if (n >= k || r > 2e7) {
         return n;
      }
   }
}

typedef struct {
   const char *name;
   int kind; /* 0 box, 1 cap 50 km, 2 near 10, 3 near 5 km */
} work_t;

static void
center (int q, double *x, double *y)
{
   *x = -9 + 18.0 * (double) ((q * 7) % Q) / Q;
   *y = 41 + 18.0 * (double) ((q * 13) % Q) / Q;
}

static int64_t
run_engine (bench_t *b, int kind, const char *coll, bool scan, double x, double y)
{
   char json[1024];
   switch (kind) {
   case 0:
      snprintf (json, sizeof json,
                "{\"find\": \"%s\", \"filter\": {\"loc\": {\"$geoWithin\": {\"$geometry\": {\"type\": \"Polygon\", "
                "\"coordinates\": [[[%f, %f], [%f, %f], [%f, %f], [%f, %f], [%f, %f]]]}}}}, \"batchSize\": 1000000}",
                coll, x, y, x + 0.5, y, x + 0.5, y + 0.5, x, y + 0.5, x, y);
      break;
   case 1:
      snprintf (json, sizeof json,
                "{\"find\": \"%s\", \"filter\": {\"loc\": {\"$geoWithin\": {\"$centerSphere\": [[%f, %f], %.12f]}}}, "
                "\"batchSize\": 1000000}",
                coll, x, y, 50000 / EARTH_M);
      break;
   case 2:
      if (scan) {
         snprintf (json, sizeof json,
                   "{\"aggregate\": \"%s\", \"pipeline\": [{\"$addFields\": {\"d\": {\"$_djongoGeoDistance\": [\"$loc\", "
                   "{\"$literal\": {\"type\": \"Point\", \"coordinates\": [%f, %f]}}]}}}, {\"$sort\": {\"d\": 1}}, "
                   "{\"$limit\": 10}], \"cursor\": {}}",
                   coll, x, y);
      } else {
         snprintf (json, sizeof json,
                   "{\"find\": \"%s\", \"filter\": {\"loc\": {\"$near\": {\"$geometry\": {\"type\": \"Point\", "
                   "\"coordinates\": [%f, %f]}}}}, \"limit\": 10}",
                   coll, x, y);
      }
      break;
   default:
      if (scan) {
         snprintf (json, sizeof json,
                   "{\"aggregate\": \"%s\", \"pipeline\": [{\"$addFields\": {\"d\": {\"$_djongoGeoDistance\": [\"$loc\", "
                   "{\"$literal\": {\"type\": \"Point\", \"coordinates\": [%f, %f]}}]}}}, {\"$match\": {\"d\": {\"$lte\": 5000}}}, "
                   "{\"$sort\": {\"d\": 1}}], \"cursor\": {\"batchSize\": 1000000}}",
                   coll, x, y);
      } else {
         snprintf (json, sizeof json,
                   "{\"find\": \"%s\", \"filter\": {\"loc\": {\"$near\": {\"$geometry\": {\"type\": \"Point\", "
                   "\"coordinates\": [%f, %f]}, \"$maxDistance\": 5000}}}, \"batchSize\": 1000000}",
                   coll, x, y);
      }
   }
   return bench_engine_rows (b, json);
}

static int64_t
run_sqlite (bench_t *b, int kind, double x, double y)
{
   switch (kind) {
   case 0: return rtree_box (b, x, x + 0.5, y, y + 0.5, NULL);
   case 1: return rtree_cap (b, x, y, 50000, 0);
   case 2: return rtree_knn (b, x, y, 10);
   default: return rtree_cap (b, x, y, 5000, 0);
   }
}

/* The points into the indexed and the plain collection and the R*Tree. */
static void
load (bench_t *b, int n)
{
   sqlite3_exec (b->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF;"
                       "CREATE VIRTUAL TABLE pts USING rtree(id, minx, maxx, miny, maxy);", NULL, NULL, NULL);
   sqlite3_exec (b->db, "BEGIN", NULL, NULL, NULL);
   sqlite3_stmt *ins;
   sqlite3_prepare_v2 (b->db, "INSERT INTO pts VALUES (?, ?, ?, ?, ?)", -1, &ins, NULL);
   uint64_t seed = 88172645463325252ull;
   static const char *const colls[] = {"indexed", "plain"};
   for (int first = 0; first < n; first += 1000) {
      bson_t *cmds[2];
      bson_t arrs[2];
      for (int c = 0; c < 2; c++) {
         cmds[c] = bson_new ();
         BSON_APPEND_UTF8 (cmds[c], "insert", colls[c]);
         BSON_APPEND_ARRAY_BEGIN (cmds[c], "documents", &arrs[c]);
      }
      for (int i = first; i < first + 1000 && i < n; i++) {
         seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
         double x = -10 + 20.0 * (double) (seed >> 11) / 9007199254740992.0;
         seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
         double y = 40 + 20.0 * (double) (seed >> 11) / 9007199254740992.0;
         char key[16];
         snprintf (key, sizeof key, "%d", i - first);
         for (int c = 0; c < 2; c++) {
            bson_t d, loc, co;
            bson_append_document_begin (&arrs[c], key, -1, &d);
            BSON_APPEND_INT32 (&d, "_id", i);
            BSON_APPEND_DOCUMENT_BEGIN (&d, "loc", &loc);
            BSON_APPEND_UTF8 (&loc, "type", "Point");
            BSON_APPEND_ARRAY_BEGIN (&loc, "coordinates", &co);
            BSON_APPEND_DOUBLE (&co, "0", x);
            BSON_APPEND_DOUBLE (&co, "1", y);
            bson_append_array_end (&loc, &co);
            bson_append_document_end (&d, &loc);
            bson_append_document_end (&arrs[c], &d);
         }
         sqlite3_bind_int (ins, 1, i);
         sqlite3_bind_double (ins, 2, x);
         sqlite3_bind_double (ins, 3, x);
         sqlite3_bind_double (ins, 4, y);
         sqlite3_bind_double (ins, 5, y);
         sqlite3_step (ins);
         sqlite3_reset (ins);
      }
      for (int c = 0; c < 2; c++) {
         bson_append_array_end (cmds[c], &arrs[c]);
         bench_engine (b, cmds[c], NULL);
         bson_destroy (cmds[c]);
      }
   }
   sqlite3_finalize (ins);
   sqlite3_exec (b->db, "COMMIT", NULL, NULL, NULL);
}

int
main (int argc, char **argv)
{
   int n = 100000;
   bench_t b;
   bench_start (&b, argc, argv, "geo_vs_sqlite", DJ_ENGINE_NOSYNC, &n);
   double t_load = bench_now ();
   load (&b, n);
   double t_ix = bench_now ();
   bench_engine_rows (&b, "{\"createIndexes\": \"indexed\", \"indexes\": [{\"key\": {\"loc\": \"2dsphere\"}, \"name\": \"loc\"}]}");
   t_ix = bench_now () - t_ix;
   t_load = bench_now () - t_load;

   if (sqlite3_prepare_v2 (b.db, "SELECT minx, miny FROM pts WHERE minx >= ? AND maxx <= ? AND miny >= ? AND maxy <= ?", -1,
                           &box_stmt, NULL) != SQLITE_OK) {
      bench_die (&b, sqlite3_errmsg (b.db));
   }
   static const work_t work[] = {{"within_box", 0}, {"within_50km", 1}, {"near_10", 2}, {"near_5km", 3}};
   bench_title (&b, "Geospatial queries vs SQLite %s R*Tree, %d points (ms per query, best of 3 rounds of %d queries)\n\n",
                sqlite3_libversion (), n, Q);
   bench_print (&b, "2dsphere index build: %.2f s (load of both collections and the R*Tree: %.2f s)\n\n", t_ix, t_load);
   bench_print (&b, "| workload | engine, 2dsphere index | engine, collection scan | SQLite R*Tree | index / R*Tree | "
                    "points found (index, scan, R*Tree) |\n|---|---:|---:|---:|---:|---|\n");
   for (size_t w = 0; w < sizeof work / sizeof work[0]; w++) {
      double best[3] = {1e9, 1e9, 1e9};
      int64_t found[3] = {0, 0, 0};
      for (int round = 0; round < 3; round++) {
         double t[3] = {0, 0, 0};
         int64_t f[3] = {0, 0, 0};
         for (int q = 0; q < Q; q++) {
            double x, y;
            center (q, &x, &y);
            double s = bench_now ();
            f[0] += run_engine (&b, work[w].kind, "indexed", false, x, y);
            t[0] += bench_now () - s;
            s = bench_now ();
            f[1] += run_engine (&b, work[w].kind, work[w].kind >= 2 ? "indexed" : "plain", true, x, y);
            t[1] += bench_now () - s;
            s = bench_now ();
            f[2] += run_sqlite (&b, work[w].kind, x, y);
            t[2] += bench_now () - s;
         }
         for (int k = 0; k < 3; k++) {
            best[k] = t[k] < best[k] ? t[k] : best[k];
            found[k] = f[k];
         }
      }
      bench_print (&b, "| %s | %.3f | %.3f | %.3f | %.2f | %" PRId64 ", %" PRId64 ", %" PRId64 " |\n", work[w].name,
                   best[0] * 1000 / Q, best[1] * 1000 / Q, best[2] * 1000 / Q, best[0] / best[2], found[0], found[1], found[2]);
   }
   sqlite3_finalize (box_stmt);
   bench_close (&b);
   return 0;
}
