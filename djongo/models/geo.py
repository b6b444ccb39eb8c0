"""Geospatial fields, lookups, Distance() and GeoIndex: GeoJSON stored as
MongoDB stores it, queried with MongoDB's geospatial operators.

  PointField(), LineStringField(), PolygonField(), MultiPolygonField()
      a GeoJSON object ({"type": "Point", "coordinates": [lng, lat]}).
      They take a GeoJSON dict, coordinates ((lng, lat) for a point, a list
      of positions for a line, a list of rings for a polygon), or -- when
      django.contrib.gis is installed -- its GEOSGeometry objects (read
      through their GeoJSON, so GDAL is not needed). Values read back as
      GeoJSON dicts. https://www.mongodb.com/docs/manual/reference/geojson/
  GeoIndex(fields=["location"])                 a 2dsphere index (compound:
      more fields after it); GeoIndex(fields=["xy"], kind="2d") a legacy one.
      https://www.mongodb.com/docs/manual/core/indexes/index-types/geospatial/2dsphere/
  lookups
      location__near=point | (point, max_m) | (point, max_m, min_m)
          nearest first, within max/min meters: $near (needs a GeoIndex).
          https://www.mongodb.com/docs/manual/reference/operator/query/near/
      location__within=polygon           $geoWithin {$geometry}
      location__intersects=geometry      $geoIntersects {$geometry}
      location__within_distance=(point, meters)
          $geoWithin {$centerSphere: [point, meters / 6378100]} (radians on
          MongoDB's sphere of radius 6378.1 km)
          https://www.mongodb.com/docs/manual/reference/operator/query/centerSphere/
  Distance("location", point)
      meters from point, for annotate() and order_by(). On a PointField it
      is an aggregation expression every MongoDB evaluates (the haversine
      great-circle distance on MongoDB's sphere, radius 6378.1 km), so it
      runs on the embedded engine and over a MongoDB server alike, with the
      same numbers. On a line or polygon field it is the distance to the
      geometry's nearest point: the embedded engine's own operator, refused
      over a MongoDB server (use __near there, which orders).

Distances may be numbers (meters) or objects with an ``m`` attribute
(GeoDjango's ``D(km=2)``). The SQL the lookups write is djongo's
(src/compile/geo.c): GEO_NEAR("t"."location", %s) with the operator's
argument bound as a document, never as SQL text.
"""
import json
import numbers

from django.core.exceptions import ValidationError
from django.db import NotSupportedError
from django.db.models import Field, FloatField, Func, Index, Lookup

from djongo.models.indexes import create_keyed_sql

EARTH_RADIUS_M = 6378100.0


def _number(v, what):
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError("%s must be a number, not %r" % (what, v))
    return float(v)


def _position(p):
    if not isinstance(p, (list, tuple)) or len(p) < 2:
        raise TypeError("a position is (longitude, latitude), not %r" % (p,))
    return [_number(p[0], "longitude"), _number(p[1], "latitude")]


def _meters(d, what):
    if hasattr(d, "m") and not isinstance(d, numbers.Real):  # GeoDjango's Distance (D)
        d = d.m
    d = _number(d, what)
    if d < 0:
        raise ValueError("%s must not be negative" % what)
    return d


def to_geojson(value, geom_type=None):
    """value as a GeoJSON dict: a GeoJSON dict as it is, a GEOSGeometry
    through its GeoJSON, or coordinates of geom_type's shape."""
    if value is None:
        return None
    if hasattr(value, "geom_type") and hasattr(value, "json"):  # django.contrib.gis.geos.GEOSGeometry
        if getattr(value, "srid", None) not in (None, 4326):
            raise ValueError("geometries are WGS84 longitude/latitude (SRID 4326), not SRID %s" % value.srid)
        value = json.loads(value.json)
    if isinstance(value, dict):
        if not isinstance(value.get("type"), str):
            raise TypeError("a GeoJSON object has a string 'type', not %r" % (value,))
        if geom_type and value["type"] != geom_type:
            raise TypeError("expected a GeoJSON %s, got a %s" % (geom_type, value["type"]))
        return value
    if geom_type is None:
        raise TypeError("expected a GeoJSON object or a geometry, not %r" % (value,))
    if geom_type == "Point":
        coords = _position(value)
    elif geom_type == "LineString":
        coords = [_position(p) for p in value]
    elif geom_type == "Polygon":
        coords = [[_position(p) for p in ring] for ring in value]
    elif geom_type == "MultiPolygon":
        coords = [[[_position(p) for p in ring] for ring in poly] for poly in value]
    else:
        raise TypeError("no coordinate form for %s" % geom_type)
    return {"type": geom_type, "coordinates": coords}


class GeometryField(Field):
    """A GeoJSON object of type geom_type, stored as a sub-document."""

    geom_type = None
    description = "A GeoJSON geometry"

    def db_type(self, connection):
        return "document"

    def rel_db_type(self, connection):
        return "document"

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        return name, "djongo.models.%s" % type(self).__name__, args, kwargs

    def to_python(self, value):
        try:
            return to_geojson(value, self.geom_type)
        except (TypeError, ValueError) as e:
            raise ValidationError(str(e), code="invalid") from e

    def get_prep_value(self, value):
        if value is None or hasattr(value, "resolve_expression"):
            return value
        return to_geojson(value, self.geom_type)

    def from_db_value(self, value, expression, connection):
        return value


class PointField(GeometryField):
    geom_type = "Point"


class LineStringField(GeometryField):
    geom_type = "LineString"


class PolygonField(GeometryField):
    geom_type = "Polygon"


class MultiPolygonField(GeometryField):
    geom_type = "MultiPolygon"


class _GeoLookup(Lookup):
    """``FUNC(lhs, %s)``, the operator's argument one bound document."""

    function = None
    prepare_rhs = False

    def argument(self, value):
        raise NotImplementedError

    def as_sql(self, compiler, connection):
        if hasattr(self.rhs, "resolve_expression"):
            raise NotSupportedError("%s takes a value, not an expression" % self.lookup_name)
        lhs, params = self.process_lhs(compiler, connection)
        return "%s(%s, %%s)" % (self.function, lhs), [*params, self.argument(self.rhs)]


@GeometryField.register_lookup
class Near(_GeoLookup):
    lookup_name = "near"
    function = "GEO_NEAR"

    def argument(self, value):
        if isinstance(value, dict) and "point" in value:
            point, mx, mn = value["point"], value.get("max_distance"), value.get("min_distance")
        elif isinstance(value, (list, tuple)) and value and not isinstance(value[0], numbers.Real):
            point, mx, mn = value[0], value[1] if len(value) > 1 else None, value[2] if len(value) > 2 else None
        else:
            point, mx, mn = value, None, None
        arg = {"$geometry": to_geojson(point, "Point")}
        if mx is not None:
            arg["$maxDistance"] = _meters(mx, "max distance")
        if mn is not None:
            arg["$minDistance"] = _meters(mn, "min distance")
        return arg


@GeometryField.register_lookup
class Within(_GeoLookup):
    lookup_name = "within"
    function = "GEO_WITHIN"

    def argument(self, value):
        g = to_geojson(value)
        if g["type"] not in ("Polygon", "MultiPolygon"):
            raise TypeError("within takes a Polygon or MultiPolygon, not a %s" % g["type"])
        return {"$geometry": g}


@GeometryField.register_lookup
class Intersects(_GeoLookup):
    lookup_name = "intersects"
    function = "GEO_INTERSECTS"

    def argument(self, value):
        return {"$geometry": to_geojson(value)}


@GeometryField.register_lookup
class WithinDistance(_GeoLookup):
    lookup_name = "within_distance"
    function = "GEO_WITHIN"

    def argument(self, value):
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise TypeError("within_distance takes (point, distance)")
        point = to_geojson(value[0], "Point")["coordinates"]
        return {"$centerSphere": [point, _meters(value[1], "distance") / EARTH_RADIUS_M]}


class Distance(Func):
    """Meters from `point` to the geometry in `expression`."""

    function = "GEO_DISTANCE"
    output_field = FloatField()

    def __init__(self, expression, point, **extra):
        super().__init__(expression, **extra)
        self.point = to_geojson(point, "Point")

    def as_sql(self, compiler, connection, **extra_context):
        source = self.source_expressions[0]
        lhs, params = compiler.compile(source)
        try:
            field = source.output_field
        except Exception:  # FieldError: an expression of mixed types
            field = None
        # a point: src/compile/function.c's haversine; else the engine's own
        function = "GEO_DISTANCE" if isinstance(field, PointField) else "GEO_SHAPE_DISTANCE"
        return "%s(%s, %%s)" % (function, lhs), [*params, self.point]

    def __eq__(self, other):
        return super().__eq__(other) and self.point == other.point

    def __hash__(self):
        return hash((super().__hash__(), json.dumps(self.point, sort_keys=True)))


class GeoIndex(Index):
    """A 2dsphere index (kind="2d": a legacy 2d one) on its first field;
    further fields are ordinary keys of the compound index."""

    suffix = "geo"
    KINDS = {"2dsphere": "GEOSPHERE", "2d": "GEO2D"}

    def __init__(self, *, fields=(), kind="2dsphere", **kwargs):
        if kind not in self.KINDS:
            raise ValueError("GeoIndex kind is '2dsphere' or '2d', not %r" % (kind,))
        if not fields or str(fields[0]).startswith("-"):
            raise ValueError("GeoIndex's first field is the geo one: it has no order ('-')")
        self.kind = kind
        super().__init__(fields=fields, **kwargs)

    def create_sql(self, model, schema_editor, using="", **kwargs):
        return create_keyed_sql(self, model, schema_editor, self.KINDS[self.kind], using, **kwargs)

    def deconstruct(self):
        path, args, kwargs = super().deconstruct()
        if self.kind != "2dsphere":
            kwargs["kind"] = self.kind
        return "djongo.models.GeoIndex", args, kwargs
