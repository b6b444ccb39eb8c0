"""djongo.models' geo fields, lookups, Distance() and GeoIndex through
Django: makemigrations writes the fields and the index, migrate creates a
2dsphere index (compound with a plain field), the lookups become MongoDB's
$near / $geoWithin / $geoIntersects (nearest first for __near), a malformed
geometry is refused on save (mongod's 16755), Distance() orders by meters,
and a migration that removes the index drops it (then __near fails as
mongod's 291 says).

https://www.mongodb.com/docs/manual/reference/geojson/
https://www.mongodb.com/docs/manual/core/indexes/index-types/geospatial/2dsphere/
https://www.mongodb.com/docs/manual/reference/operator/query/near/
https://www.mongodb.com/docs/manual/reference/operator/query/geoWithin/
https://www.mongodb.com/docs/manual/reference/operator/query/geoIntersects/
https://www.mongodb.com/docs/manual/reference/operator/query/centerSphere/
"""
import json
import textwrap

from appdir import MANAGE, first_migration, make_project, run

MODELS_WITH = '''
from djongo import models

class Place(models.Model):
    name = models.CharField(max_length=40)
    kind = models.CharField(max_length=10, default="cafe")
    location = models.PointField(null=True)
    route = models.LineStringField(null=True)
    area = models.PolygonField(null=True)
    zones = models.MultiPolygonField(null=True)
    class Meta:
        indexes = [models.GeoIndex(fields=["location", "kind"], name="place_location_geo"),
                   models.GeoIndex(fields=["area"], name="place_area_geo")]
'''
MODELS_WITHOUT = MODELS_WITH.replace('''        indexes = [models.GeoIndex(fields=["location", "kind"], name="place_location_geo"),
                   models.GeoIndex(fields=["area"], name="place_area_geo")]''', "        pass")


CHECK = '''
import json
import django
django.setup()
from django.db import connection, DatabaseError, IntegrityError
from djongo import models
from geoapp.models import Place

out = {}
def ix():
    reply = connection.command({"listIndexes": "geoapp_place", "cursor": {}})
    return {i["name"]: i["key"] for i in reply["cursor"]["firstBatch"]}
out["indexes"] = ix()

# points on the equator, 0.01 degree = 1113.2 m apart
for i in range(6):
    Place.objects.create(name="p%d" % i, kind="bar" if i % 2 else "cafe", location=(0.01 * i, 0))
Place.objects.create(name="nowhere")
Place.objects.create(name="line", route=[(10, 10), (12, 12)])
Place.objects.create(name="square", area=[[(20, 20), (22, 20), (22, 22), (20, 22), (20, 20)]])
Place.objects.create(name="zones", zones=[[[(30, 30), (31, 30), (31, 31), (30, 31), (30, 30)]],
                                          [[(32, 32), (33, 32), (33, 33), (32, 33), (32, 32)]]])
out["stored"] = Place.objects.get(name="p1").location
out["stored_polygon"] = Place.objects.get(name="square").area["type"]

names = lambda qs: [p.name for p in qs]
here = {"type": "Point", "coordinates": [0.032, 0]}
out["near"] = names(Place.objects.filter(location__near=here))
out["near_max"] = names(Place.objects.filter(location__near=((0.032, 0), 1500)))
out["near_min_max"] = names(Place.objects.filter(location__near={"point": (0, 0), "min_distance": 2000,
                                                                 "max_distance": 4000}))
out["near_limit"] = names(Place.objects.filter(location__near=(0, 0))[:2])
out["near_and_kind"] = names(Place.objects.filter(location__near=(0.032, 0), kind="bar"))
box = [[(0.015, -1), (0.045, -1), (0.045, 1), (0.015, 1), (0.015, -1)]]
poly = {"type": "Polygon", "coordinates": box}
out["within"] = sorted(names(Place.objects.filter(location__within=poly)))
out["not_within"] = sorted(names(Place.objects.exclude(location__within=poly).filter(location__isnull=False)))
out["within_distance"] = sorted(names(Place.objects.filter(location__within_distance=((0, 0), 2300))))
line = {"type": "LineString", "coordinates": [[10, 12], [12, 10]]}
out["intersects_line"] = names(Place.objects.filter(route__intersects=line))
out["intersects_area"] = names(Place.objects.filter(area__intersects={"type": "Point", "coordinates": [21, 21]}))
out["zones_within"] = names(Place.objects.filter(zones__within={"type": "Polygon", "coordinates": [
    [[29, 29], [34, 29], [34, 34], [29, 34], [29, 29]]]}))
out["distance_order"] = [(p.name, round(p.d, 1)) for p in
                         Place.objects.filter(location__isnull=False).annotate(d=models.Distance("location", (0.012, 0)))
                         .order_by("d")[:3]]
plan = connection.command({"explain": {"find": "geoapp_place",
                                       "filter": {"location": {"$near": {"$geometry": here}}}}})
out["plan"] = plan["queryPlanner"]["winningPlan"].get("indexName")
try:
    Place.objects.create(name="bad", location=(200, 0))
    out["bad"] = "saved"
except DatabaseError as e:
    out["bad"] = type(e).__name__ + ": " + str(e)[:60]
try:
    Place.objects.create(name="bad", area=[[(0, 0), (1, 0), (1, 1), (0, 1)]])
    out["bad_ring"] = "saved"
except DatabaseError as e:
    out["bad_ring"] = type(e).__name__
print(json.dumps(out))
'''

CHECK_DROPPED = '''
import json
import django
django.setup()
from django.db import connection, DatabaseError
from geoapp.models import Place
reply = connection.command({"listIndexes": "geoapp_place", "cursor": {}})
out = {"names": sorted(ix["name"] for ix in reply["cursor"]["firstBatch"])}
try:
    list(Place.objects.filter(location__near=(0, 0)))
    out["near"] = "ran"
except DatabaseError as e:
    out["near"] = str(e)
print(json.dumps(out))
'''


def test_geo_fields_lookups_and_index_through_migrations(tmp_path):
    app = tmp_path / "geoapp"
    env = make_project(tmp_path, "geoapp", MODELS_WITH, "geo")

    first, sql = first_migration(tmp_path, env, "geoapp")
    assert "djongo.models.PointField(null=True)" in first and "djongo.models.MultiPolygonField(null=True)" in first
    assert first.count("djongo.models.GeoIndex(") == 2
    assert '("location" GEOSPHERE, "kind")' in sql
    run(tmp_path, env, *MANAGE, "migrate", "geoapp")

    out = json.loads(run(tmp_path, env, "-c", CHECK))
    assert out["indexes"]["place_location_geo"] == {"location": "2dsphere", "kind": 1}
    assert out["indexes"]["place_area_geo"] == {"area": "2dsphere"}
    assert out["stored"] == {"type": "Point", "coordinates": [0.01, 0.0]}
    assert out["stored_polygon"] == "Polygon"
    assert out["near"] == ["p3", "p4", "p2", "p5", "p1", "p0"]  # nearest first; rows without a location are not near
    assert out["near_max"] == ["p3", "p4", "p2"]
    assert out["near_min_max"] == ["p2", "p3"]
    assert out["near_limit"] == ["p0", "p1"]
    assert out["near_and_kind"] == ["p3", "p5", "p1"]
    assert out["within"] == ["p2", "p3", "p4"]
    assert out["not_within"] == ["p0", "p1", "p5"]
    assert out["within_distance"] == ["p0", "p1", "p2"]
    assert out["intersects_line"] == ["line"]
    assert out["intersects_area"] == ["square"]
    assert out["zones_within"] == ["zones"]
    assert out["distance_order"] == [["p1", 222.6], ["p2", 890.6], ["p0", 1335.8]]
    assert out["plan"] == "place_location_geo"
    assert out["bad"].startswith("DataError") or out["bad"].startswith("IntegrityError"), out["bad"]
    assert "geo keys" in out["bad"], out["bad"]
    assert out["bad_ring"] in ("DataError", "IntegrityError"), out["bad_ring"]

    (app / "models.py").write_text(textwrap.dedent(MODELS_WITHOUT))
    run(tmp_path, env, *MANAGE, "makemigrations", "geoapp")
    second = next((app / "migrations").glob("0002_*.py")).read_text()
    assert second.count("migrations.RemoveIndex(") == 2
    run(tmp_path, env, *MANAGE, "migrate", "geoapp")
    out = json.loads(run(tmp_path, env, "-c", CHECK_DROPPED))
    assert "place_location_geo" not in out["names"] and "place_area_geo" not in out["names"], out
    assert "unable to find index for $geoNear query" in out["near"], out


def test_values_are_checked_before_saving():
    """The fields' conversions, without a database: coordinates become
    GeoJSON of the field's type; anything else is refused."""
    import pytest
    from django.core.exceptions import ValidationError

    from djongo.models import LineStringField, PointField, PolygonField
    from djongo.models.geo import Near, WithinDistance

    assert PointField().get_prep_value((1, 2)) == {"type": "Point", "coordinates": [1.0, 2.0]}
    assert LineStringField().get_prep_value([(0, 0), (1, 1)])["coordinates"] == [[0.0, 0.0], [1.0, 1.0]]
    assert PolygonField().get_prep_value({"type": "Polygon", "coordinates": []})["type"] == "Polygon"
    with pytest.raises(TypeError):
        PointField().get_prep_value({"type": "Polygon", "coordinates": []})
    with pytest.raises(ValidationError):
        PointField().to_python("here")
    near = Near.__new__(Near)
    assert near.argument(((1, 2), 500, 10)) == {"$geometry": {"type": "Point", "coordinates": [1.0, 2.0]},
                                                "$maxDistance": 500.0, "$minDistance": 10.0}

    class D:  # GeoDjango's Distance: meters in .m
        m = 6378.1

    class GEOSLike:  # what GeoDjango's GEOSGeometry offers: geom_type, srid, json (GeoJSON)
        geom_type, srid, json = "Point", 4326, '{"type": "Point", "coordinates": [3.5, 50.25]}'

    assert PointField().get_prep_value(GEOSLike()) == {"type": "Point", "coordinates": [3.5, 50.25]}
    GEOSLike.srid = 3857
    with pytest.raises(ValueError):
        PointField().get_prep_value(GEOSLike())

    wd = WithinDistance.__new__(WithinDistance)
    assert wd.argument(((0, 0), D())) == {"$centerSphere": [[0.0, 0.0], 0.001]}
    with pytest.raises(ValueError):
        wd.argument(((0, 0), -1))


def test_geodjango_geometries_when_installed():
    """GeoDjango's own objects, where its GEOS (and GDAL) libraries are
    installed: read through their GeoJSON."""
    import pytest

    try:
        from django.contrib.gis.geos import LineString, Point, Polygon
    except Exception as e:  # ImproperlyConfigured / OSError: the C libraries are missing
        pytest.skip("django.contrib.gis.geos is not usable here: %s" % e)
    from djongo.models import LineStringField, PointField, PolygonField

    assert PointField().get_prep_value(Point(1, 2, srid=4326)) == {"type": "Point", "coordinates": [1.0, 2.0]}
    assert LineStringField().get_prep_value(LineString((0, 0), (1, 1)))["type"] == "LineString"
    ring = ((0, 0), (1, 0), (1, 1), (0, 0))
    assert PolygonField().get_prep_value(Polygon(ring))["coordinates"][0][1] == [1.0, 0.0]
