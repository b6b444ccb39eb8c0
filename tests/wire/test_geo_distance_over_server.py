"""djongo.models' Distance() over a MongoDB server (Django's HOST a
mongodb:// URI: the libmongoc transport, against djongo-server) and on the
embedded engine: on a PointField it compiles to an aggregation expression
any MongoDB evaluates (the haversine distance on MongoDB's sphere, radius
6378.1 km: src/compile/function.c), so annotate(), order_by() and filters on
it run on both with the same numbers; on another geometry field it is the
embedded engine's own operator, refused by name over a server.

https://www.mongodb.com/docs/manual/reference/operator/aggregation/asin/
https://www.mongodb.com/docs/manual/reference/operator/query/centerSphere/
"""
import json
import math
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "django"))
from appdir import MANAGE, make_project, run  # noqa: E402

MODELS = '''
from djongo import models

class Place(models.Model):
    name = models.CharField(max_length=40)
    location = models.PointField(null=True)
    route = models.LineStringField(null=True)
'''

SCRIPT = '''
import json
import django
django.setup()
from django.db import NotSupportedError, DatabaseError
from django.db.models import F
from djongo.models import Distance
from geoapp.models import Place

Place.objects.bulk_create([Place(name="p%d" % i, location=(lng, lat)) for i, (lng, lat) in
                           enumerate([(0.01, 0), (0, 0.02), (-0.03, 0), (2.35, 48.85), (-73.99, 40.73)])] +
                          [Place(name="nowhere"), Place(name="line", route=[(10, 10), (12, 12)])])
here = (0, 0)
out = {}
out["annotated"] = [(p.name, p.d) for p in Place.objects.annotate(d=Distance("location", here)).order_by("d", "name")]
out["ordered"] = list(Place.objects.filter(location__isnull=False).order_by(Distance("location", here).desc())
                      .values_list("name", flat=True))
out["filtered"] = sorted(Place.objects.annotate(d=Distance("location", here)).filter(d__lt=2500)
                         .values_list("name", flat=True))
out["paris_ny"] = Place.objects.annotate(d=Distance("location", (2.35, 48.85))).get(name="p4").d
try:
    out["line"] = [p.d for p in Place.objects.filter(name="line").annotate(d=Distance("route", here))]
except (NotSupportedError, DatabaseError) as e:
    out["line"] = type(e).__name__ + ": " + str(e)
print(json.dumps(out))
'''


def _run(tmp_path, host):
    env = make_project(tmp_path, "geoapp", MODELS, "geodist")
    env["DJONGO_HOST"] = host
    run(tmp_path, env, *MANAGE, "makemigrations", "geoapp")
    run(tmp_path, env, *MANAGE, "migrate", "geoapp")
    return json.loads(run(tmp_path, env, "-c", SCRIPT))


def test_distance_over_server_and_embedded(tmp_path, server):
    (tmp_path / "mongo").mkdir()
    (tmp_path / "embedded").mkdir()
    over = _run(tmp_path / "mongo", server.uri)
    embedded = _run(tmp_path / "embedded", str(tmp_path / "embedded" / "data"))

    # great-circle meters on the sphere of radius 6378100 m
    deg = 6378100 * math.pi / 180
    names = [n for n, _ in over["annotated"]]
    assert names == ["line", "nowhere", "p0", "p1", "p2", "p3", "p4"]  # NULL first, ascending
    d = dict(over["annotated"])
    assert d["nowhere"] is None and d["line"] is None
    assert math.isclose(d["p0"], 0.01 * deg, rel_tol=1e-12)
    assert math.isclose(d["p1"], 0.02 * deg, rel_tol=1e-12)
    assert math.isclose(d["p2"], 0.03 * deg, rel_tol=1e-12)
    assert over["ordered"] == ["p4", "p3", "p2", "p1", "p0"]
    assert over["filtered"] == ["p0", "p1"]
    # Paris to New York: the haversine's 5,842 km on this sphere
    assert round(over["paris_ny"] / 1000) == 5842
    assert "GEO_SHAPE_DISTANCE" in over["line"], over["line"]

    # the embedded engine evaluates the same expression: the same numbers
    for key in ("annotated", "ordered", "filtered", "paris_ny"):
        assert embedded[key] == over[key], key
    # and there the distance to a line is the engine's own: its nearest point
    assert isinstance(embedded["line"], list) and embedded["line"][0] > 1.5e6, embedded["line"]
