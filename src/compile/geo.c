/*
 * geo.c -- djongo's geospatial predicates in SQL's WHERE -> MongoDB's
 * geospatial query operators.
 *
 * djongo.models' geo lookups (djongo/models/geo.py) write
 *
 *   GEO_WITHIN(col, %s)      -> {col: {$geoWithin: <param>}}
 *   GEO_INTERSECTS(col, %s)  -> {col: {$geoIntersects: <param>}}
 *   GEO_NEAR(col, %s)        -> {col: {$near: <param>}}
 *
 * the parameter being the operator's whole argument as a bound document
 * ({$geometry: ..., $maxDistance: ...}, {$centerSphere: [...]}): a value,
 * never SQL text, so it cannot become anything but the operator's
 * argument. They are query operators, so they compile only as a filter on
 * a column; NOT of within/intersects holds the rows that have a location
 * and are not within it (a row without one is NULL in SQL: in neither).
 * $near cannot be negated (MongoDB sorts by it).
 * https://www.mongodb.com/docs/manual/reference/operator/query-geospatial/
 *
 * GEO_DISTANCE(col, point) and GEO_SHAPE_DISTANCE(col, point), values,
 * are function.c's rows (a haversine any MongoDB evaluates; the embedded
 * engine's $_djongoGeoDistance).
 */
#include <string.h>

#include "compile-private.h"

static const char *
geo_operator (const dj_expr_t *e)
{
   if (e->kind != DJ_X_FUNC || e->args.n != 2 || e->over) {
      return NULL;
   }
   return !strcmp (e->name, "GEO_WITHIN")       ? "$geoWithin"
          : !strcmp (e->name, "GEO_INTERSECTS") ? "$geoIntersects"
          : !strcmp (e->name, "GEO_NEAR")       ? "$near"
                                                : NULL;
}

bool
cx_geo_is_predicate (const dj_expr_t *e)
{
   return geo_operator (e) != NULL;
}

bool
cx_geo_filter (cx_t *cx, const dj_expr_t *e, bool want, bson_t *parent, const char *key)
{
   const char *op = geo_operator (e);
   const dj_expr_t *col = e->args.v[0], *arg = e->args.v[1];
   char path[512];
   if (col->kind != DJ_X_COLUMN || cx->group || !strcmp (col->name, "*") || cx_is_outer (cx, col) || !cx_is_const (arg)) {
      return cx_unsupported (cx, e->pos, "%s outside a WHERE condition on a column with a parameter", e->name);
   }
   if (!want && !strcmp (op, "$near")) {
      return cx_unsupported (cx, e->pos, "NOT %s (it orders the rows)", e->name);
   }
   if (!cx_column_path (cx, col, path, sizeof path)) {
      return false;
   }
   return cx_template (cx, want ? "{'@0': {'@1': '@2'}}" : "{'@0': {'$ne': null, '$not': {'@1': '@2'}}}",
                       CX_ARGS (CX_STR (path), CX_STR (op), CX_CONST (arg)), parent, key);
}
