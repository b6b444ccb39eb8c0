"""Aggregation stages and operators of issue 16 through pymongo against
djongo-server: $graphLookup, $bucketAuto, $densify, $fill, $topN, $median,
$dateFromString's format, setParameter and allowDiskUse (error 292) --
the same questions the engine scripts (tests/engine/scripts/agg_*.test)
ask, over the wire.

https://www.mongodb.com/docs/manual/reference/operator/aggregation/graphLookup/
https://www.mongodb.com/docs/manual/reference/operator/aggregation/bucketAuto/
https://www.mongodb.com/docs/manual/reference/operator/aggregation/densify/
https://www.mongodb.com/docs/manual/reference/operator/aggregation/fill/
https://www.mongodb.com/docs/manual/reference/operator/aggregation/topN/
https://www.mongodb.com/docs/manual/reference/parameters/#mongodb-parameter-param.internalQueryMaxBlockingSortMemoryUsageBytes
"""
import datetime

import pymongo
import pytest
from pymongo.errors import OperationFailure


def test_graph_lookup_and_top_n(server):
    with pymongo.MongoClient(server.uri, serverSelectionTimeoutMS=5000) as c:
        db = c.test
        db.employees.insert_many([
            {"_id": 1, "name": "Dev"}, {"_id": 2, "name": "Eliot", "reportsTo": "Dev"},
            {"_id": 3, "name": "Ron", "reportsTo": "Eliot"}, {"_id": 4, "name": "Andrew", "reportsTo": "Eliot"},
            {"_id": 5, "name": "Asya", "reportsTo": "Ron"}, {"_id": 6, "name": "Dan", "reportsTo": "Andrew"}])
        out = list(db.employees.aggregate([
            {"$match": {"name": "Asya"}},
            {"$graphLookup": {"from": "employees", "startWith": "$reportsTo", "connectFromField": "reportsTo",
                              "connectToField": "name", "as": "chain", "depthField": "depth"}}]))
        chain = sorted((d["name"], d["depth"]) for d in out[0]["chain"])
        assert chain == [("Dev", 2), ("Eliot", 1), ("Ron", 0)]
        top = list(db.employees.aggregate([
            {"$group": {"_id": None, "last2": {"$topN": {"output": "$name", "sortBy": {"_id": -1}, "n": 2}},
                        "mid": {"$median": {"input": "$_id", "method": "approximate"}}}}]))
        assert top == [{"_id": None, "last2": ["Dan", "Asya"], "mid": 3.0}]


def test_bucket_auto_densify_fill(server):
    with pymongo.MongoClient(server.uri, serverSelectionTimeoutMS=5000) as c:
        db = c.test
        db.things.insert_many([{"_id": i} for i in range(100)])
        buckets = list(db.things.aggregate([{"$bucketAuto": {"groupBy": "$_id", "buckets": 5, "granularity": "R5"}}]))
        assert [(b["_id"]["min"], b["_id"]["max"], b["count"]) for b in buckets] == [(0, 25, 25), (25, 63, 38), (63, 100, 37)]
        t0 = datetime.datetime(2021, 5, 18)
        db.weather.insert_many([{"_id": i, "ts": t0 + datetime.timedelta(hours=4 * i), "temp": 10 + i} for i in range(3)])
        dense = list(db.weather.aggregate([
            {"$densify": {"field": "ts", "range": {"step": 2, "unit": "hour", "bounds": "full"}}},
            {"$fill": {"sortBy": {"ts": 1}, "output": {"temp": {"method": "linear"}}}},
            {"$project": {"_id": 0, "ts": 1, "temp": 1}}]))
        assert [(d["ts"].hour, d["temp"]) for d in dense] == [(0, 10), (2, 10.5), (4, 11), (6, 11.5), (8, 12)]
        parsed = list(db.things.aggregate([
            {"$limit": 1},
            {"$project": {"_id": 0, "d": {"$dateFromString": {"dateString": "15-06-2018", "format": "%d-%m-%Y"}}}}]))
        assert parsed == [{"d": datetime.datetime(2018, 6, 15)}]


def test_memory_limit_and_allow_disk_use(server):
    with pymongo.MongoClient(server.uri, serverSelectionTimeoutMS=5000) as c:
        db = c.test
        db.m.insert_many([{"_id": i, "s": "x" * 200} for i in range(20)])
        was = c.admin.command("setParameter", 1, internalQueryMaxBlockingSortMemoryUsageBytes=2000)
        assert was["was"] == 100 * 1024 * 1024
        with pytest.raises(OperationFailure) as e:
            list(db.m.aggregate([{"$sort": {"s": 1, "_id": 1}}], allowDiskUse=False))
        assert e.value.code == 292
        assert len(list(db.m.aggregate([{"$sort": {"s": 1, "_id": 1}}], allowDiskUse=True))) == 20
        c.admin.command("setParameter", 1, internalQueryMaxBlockingSortMemoryUsageBytes=100 * 1024 * 1024)
