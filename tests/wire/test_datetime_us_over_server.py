"""Datetimes to the microsecond over libmongoc (djongo.driver against
djongo-server, as against a real MongoDB: the commands are plain MongoDB),
and what a MongoDB tool sees of them (pymongo reading the documents): the
column a BSON date floored to the millisecond, the microseconds below it
an int in the sibling "<column>__us", absent when 0
(src/compile/exact_dt.c, README "Datetimes")."""
import datetime

import pymongo

from djongo import driver

T = datetime.datetime(2024, 2, 29, 23, 59, 59, 123456)


def test_exact_over_libmongoc_and_a_date_for_tools(server):
    with driver.connect(server.uri, db="d", autocommit=True) as c:
        cur = c.cursor()
        cur.execute('CREATE TABLE "ev" ("id" integer NOT NULL PRIMARY KEY, "at" datetime NULL)')
        cur.execute('INSERT INTO "ev" ("id", "at") VALUES (1, %s), (2, %s), (3, %s)',
                    [T, T.replace(microsecond=123000), T.replace(microsecond=123457)])
        cur.execute('SELECT "id", "at" FROM "ev" ORDER BY "at" DESC')
        assert cur.fetchall() == [(3, T.replace(microsecond=123457)), (1, T), (2, T.replace(microsecond=123000))]
        cur.execute('SELECT "id" FROM "ev" WHERE "at" > %s ORDER BY "id"', [T.replace(microsecond=123000)])
        assert cur.fetchall() == [(1,), (3,)]
        cur.execute('SELECT "id" FROM "ev" WHERE "at" = %s', [T])
        assert cur.fetchall() == [(1,)]
        cur.execute('SELECT MAX("at") FROM "ev"')
        assert cur.fetchall() == [(T.replace(microsecond=123457),)]
    docs = {d["id"]: d for d in pymongo.MongoClient(server.uri).d.ev.find({}, {"_id": 0})}
    assert docs[1] == {"id": 1, "at": T.replace(microsecond=123000), "at__us": 456}
    assert docs[2] == {"id": 2, "at": T.replace(microsecond=123000)}
    assert docs[3]["at"] == T.replace(microsecond=123000) and docs[3]["at__us"] == 457
    # a date operator of the server sees the instant (to the millisecond)
    got = list(pymongo.MongoClient(server.uri).d.ev.aggregate(
        [{"$match": {"id": 1}}, {"$project": {"_id": 0, "ms": {"$millisecond": "$at"}}}]))
    assert got == [{"ms": 123}]
