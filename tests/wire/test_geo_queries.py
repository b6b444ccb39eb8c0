"""Geospatial queries through pymongo against djongo-server: the questions
tests/engine/scripts/geo_*.test ask the engine, asked as an application
would, with pymongo's GEOSPHERE / GEO2D index helpers.

https://www.mongodb.com/docs/manual/core/indexes/index-types/geospatial/2dsphere/
https://www.mongodb.com/docs/manual/core/indexes/index-types/geospatial/2d/
https://www.mongodb.com/docs/manual/reference/operator/query/near/
https://www.mongodb.com/docs/manual/reference/operator/query/geoWithin/
https://www.mongodb.com/docs/manual/reference/operator/query/geoIntersects/
https://www.mongodb.com/docs/manual/reference/operator/aggregation/geoNear/
"""
import math

import pymongo
import pytest
from pymongo import GEO2D, GEOSPHERE
from pymongo.errors import OperationFailure, WriteError

EARTH_M = 6378100.0  # the radius MongoDB converts radians with


def _db(server):
    return pymongo.MongoClient(server.uri, serverSelectionTimeoutMS=5000).geo


def _pt(lng, lat):
    return {"type": "Point", "coordinates": [lng, lat]}


def _places(db):
    db.places.insert_many([{"_id": i, "loc": _pt(0.01 * i, 0), "kind": "even" if i % 2 == 0 else "odd"}
                           for i in range(10)])
    assert db.places.create_index([("loc", GEOSPHERE)]) == "loc_2dsphere"
    return db.places


def test_near_sorted_by_distance_with_bounds(server):
    places = _places(_db(server))
    q = {"loc": {"$near": {"$geometry": _pt(0.044, 0), "$maxDistance": 2500}}}
    got = [d["_id"] for d in places.find(q)]
    # 0.01 degree on the equator is 1113.2 m: within 2.5 km of 0.044 are 3..6
    assert got == [4, 5, 3, 6]
    q = {"loc": {"$near": {"$geometry": _pt(0, 0), "$minDistance": 5000}}}
    assert [d["_id"] for d in places.find(q).limit(3)] == [5, 6, 7]


def test_near_sphere_legacy_in_radians(server):
    places = _places(_db(server))
    r = 0.0201 * math.pi / 180  # just past two steps
    got = [d["_id"] for d in places.find({"loc": {"$nearSphere": [0, 0], "$maxDistance": r}})]
    assert got == [0, 1, 2]


def test_within_and_intersects_use_the_index(server):
    db = _db(server)
    places = _places(db)
    box = {"type": "Polygon", "coordinates": [[[0.015, -1], [0.055, -1], [0.055, 1], [0.015, 1], [0.015, -1]]]}
    q = {"loc": {"$geoWithin": {"$geometry": box}}}
    assert sorted(d["_id"] for d in places.find(q)) == [2, 3, 4, 5]
    plan = places.find(q).explain()["queryPlanner"]["winningPlan"]
    assert plan["inputStage"]["indexName"] == "loc_2dsphere"
    within_km = {"loc": {"$geoWithin": {"$centerSphere": [[0, 0], 2300 / EARTH_M]}}}
    assert sorted(d["_id"] for d in places.find(within_km)) == [0, 1, 2]
    line = {"type": "LineString", "coordinates": [[0.03, -1], [0.03, 1]]}
    assert [d["_id"] for d in places.find({"loc": {"$geoIntersects": {"$geometry": line}}})] == [3]
    assert places.count_documents({"loc": {"$geoWithin": {"$geometry": box}}, "kind": "odd"}) == 2


def test_near_without_index_fails_with_291(server):
    db = _db(server)
    db.plain.insert_one({"loc": _pt(0, 0)})
    with pytest.raises(OperationFailure) as e:
        list(db.plain.find({"loc": {"$near": {"$geometry": _pt(0, 0)}}}))
    assert e.value.code == 291
    assert "unable to find index for $geoNear query" in str(e.value)


def test_malformed_geometry_is_refused(server):
    db = _db(server)
    places = _places(db)
    with pytest.raises(WriteError) as e:
        places.insert_one({"loc": _pt(181, 0)})
    assert e.value.code == 16755
    assert "Can't extract geo keys" in str(e.value)
    open_ring = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1]]]}
    with pytest.raises(WriteError) as e:
        places.insert_one({"loc": open_ring})
    assert e.value.code == 16755
    places.insert_one({"name": "no location"})  # the index is sparse: fine
    assert places.count_documents({}) == 11


def test_geonear_stage(server):
    places = _places(_db(server))
    out = list(places.aggregate([
        {"$geoNear": {"near": _pt(0, 0), "distanceField": "dist", "maxDistance": 3000, "query": {"kind": "even"},
                      "includeLocs": "where", "spherical": True}},
    ]))
    assert [d["_id"] for d in out] == [0, 2]
    assert out[0]["dist"] == 0
    assert out[1]["dist"] == pytest.approx(0.02 * math.pi / 180 * EARTH_M, rel=1e-9)
    assert out[1]["where"] == _pt(0.02, 0)
    with pytest.raises(OperationFailure) as e:
        list(places.aggregate([{"$match": {}}, {"$geoNear": {"near": _pt(0, 0), "distanceField": "d"}}]))
    assert e.value.code == 40602


def test_2d_index_flat_shapes(server):
    db = _db(server)
    db.legacy.insert_many([{"_id": 1, "p": [0, 0]}, {"_id": 2, "p": [3, 4]}, {"_id": 3, "p": [6, 8]}])
    db.legacy.create_index([("p", GEO2D)], min=-10, max=10, bits=24)
    info = db.legacy.index_information()["p_2d"]
    assert info["key"] == [("p", "2d")] and info["min"] == -10 and info["max"] == 10
    assert [d["_id"] for d in db.legacy.find({"p": {"$near": [6, 8], "$maxDistance": 5}})] == [3, 2]
    assert sorted(d["_id"] for d in db.legacy.find({"p": {"$geoWithin": {"$box": [[-1, -1], [3, 4]]}}})) == [1, 2]
    assert sorted(d["_id"] for d in db.legacy.find({"p": {"$geoWithin": {"$center": [[0, 0], 5]}}})) == [1, 2]
    rect = [[2, 3], [7, 3], [7, 9], [2, 9]]
    assert sorted(d["_id"] for d in db.legacy.find({"p": {"$geoWithin": {"$polygon": rect}}})) == [2, 3]
    with pytest.raises(WriteError) as e:
        db.legacy.insert_one({"p": [11, 0]})
    assert e.value.code == 13027
    db.legacy.drop_index("p_2d")
    with pytest.raises(OperationFailure) as e:
        list(db.legacy.find({"p": {"$near": [0, 0]}}))
    assert e.value.code == 291


# ---- an independent reference: the same answers computed another way -------
# Point in a ring by the winding of the great circle angles seen from the
# point (the engine casts a ray in the gnomonic projection), restricted to the
# hemisphere around the ring's centre (the smaller region, as MongoDB reads a
# ring); distances by atan2(|a x b|, a . b) on unit vectors.

def _vec(p):
    lng, lat = math.radians(p[0]), math.radians(p[1])
    return (math.cos(lat) * math.cos(lng), math.cos(lat) * math.sin(lng), math.sin(lat))


def _cross(a, b):
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def _dot(a, b):
    return sum(x * y for x, y in zip(a, b))


def _winding(pt, ring):
    p, total = _vec(pt), 0.0
    for a, b in zip(ring, ring[1:]):
        na, nb = _cross(p, _vec(a)), _cross(p, _vec(b))
        total += math.atan2(_dot(_cross(na, nb), p), _dot(na, nb))
    return total


def _dist_m(a, b):
    x, y = _vec(a), _vec(b)
    return math.atan2(math.sqrt(sum(c * c for c in _cross(x, y))), _dot(x, y)) * EARTH_M


def test_against_reference_geometry(server):
    import random

    rng = random.Random(7)
    coll = _db(server).world
    pts = [[rng.uniform(-180, 180), rng.uniform(-85, 85)] for _ in range(2000)]
    coll.insert_many([{"_id": i, "loc": _pt(*p)} for i, p in enumerate(pts)])
    coll.create_index([("loc", GEOSPHERE)])
    for trial in range(25):
        # a convex ring of 3..9 vertices, up to ~40 degrees across, some across the antimeridian
        cx, cy, r = rng.uniform(-180, 180), rng.uniform(-70, 70), rng.uniform(1, 40)
        angles = sorted(rng.uniform(0, 2 * math.pi) for _ in range(rng.randint(3, 9)))
        ring = [[(cx + r * math.cos(a) / max(0.2, math.cos(math.radians(cy))) + 180) % 360 - 180,
                 max(-89, min(89, cy + r * math.sin(a)))] for a in angles]
        ring.append(ring[0])
        centre = [sum(_vec(p)[k] for p in ring[:-1]) for k in range(3)]
        want = {i for i, p in enumerate(pts) if abs(_winding(p, ring)) > math.pi and _dot(_vec(p), centre) > 0}
        got = {d["_id"] for d in coll.find({"loc": {"$geoWithin": {"$geometry": {"type": "Polygon", "coordinates": [ring]}}}})}
        assert got == want, (trial, ring)
        q, max_m = [rng.uniform(-180, 180), rng.uniform(-80, 80)], rng.uniform(1e5, 3e6)
        ref = sorted((_dist_m(q, p), i) for i, p in enumerate(pts))
        got = [d["_id"] for d in coll.find({"loc": {"$near": {"$geometry": _pt(*q), "$maxDistance": max_m}}})]
        assert got == [i for d, i in ref if d <= max_m], trial
        got = [d["_id"] for d in coll.find({"loc": {"$near": {"$geometry": _pt(*q)}}}).limit(10)]
        assert got == [i for d, i in ref[:10]], trial
