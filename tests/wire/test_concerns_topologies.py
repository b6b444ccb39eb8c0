"""Read preference, read concern and write concern set on a connection
(dj_transport_set_concerns: djongo.concerns() in Django), honoured over
libmongoc: against a MockupDB replica set (test_topologies.py's), asserted
on the commands each member receives -- outside transactions reads go where
the read preference says with the read concern and writes carry the write
concern; a transaction begun under them reads with the read concern and
commits with the write concern; set back to None, the connection's own
options apply again.
https://www.mongodb.com/docs/manual/reference/write-concern/
https://www.mongodb.com/docs/manual/reference/read-concern/"""
import pytest

from djongo import driver
from test_topologies import INSERT, SELECT, _connect, replica_set  # noqa: F401 (the fixture)


def _sent(member, name, key="items"):
    return [d for n, d in member.commands if n == name and d.get(name) == key]


def test_concerns_reach_the_members_and_can_be_unset(replica_set):  # noqa: F811
    rs = replica_set()
    primary, secondaries = rs.members[0], rs.members[1:]
    with _connect(rs.uri(), w=1) as conn:
        cur = conn.cursor()
        conn.set_concerns({"readPreference": "secondary", "readConcernLevel": "majority", "w": "majority",
                           "wTimeoutMS": 500, "journal": True})
        cur.execute(INSERT, [1])
        cur.execute(SELECT)
        assert cur.fetchall()[0][0] != primary.address
        conn.set_concerns(None)
        cur.execute(INSERT, [2])
        cur.execute(SELECT)
        assert cur.fetchall() == [(primary.address,)]
    first, second = _sent(primary, "insert")
    assert first["writeConcern"] == {"w": "majority", "j": True, "wtimeout": 500}
    assert second["writeConcern"] == {"w": 1}  # the connection's own option again
    reads = [d for m in secondaries for d in _sent(m, "find")]
    assert len(reads) == 1
    assert reads[0]["readConcern"] == {"level": "majority"} and reads[0]["$readPreference"]["mode"] == "secondary"
    assert "readConcern" not in _sent(primary, "find")[0]


def test_a_transaction_takes_the_concerns(replica_set):  # noqa: F811
    rs = replica_set()
    primary = rs.members[0]
    conn = _connect(rs.uri())
    conn.set_concerns({"readConcernLevel": "snapshot", "w": "majority", "readPreference": "secondaryPreferred"})
    conn.autocommit = False
    cur = conn.cursor()
    cur.execute(INSERT, [1])
    conn.commit()
    conn.close()
    first = [d for n, d in primary.commands if d.get("startTransaction")][0]  # djongo's table lookup, here
    assert first["readConcern"] == {"level": "snapshot"} and "$readPreference" not in first  # the primary
    insert = _sent(primary, "insert")[0]
    assert insert["txnNumber"] == first["txnNumber"] and insert["lsid"] == first["lsid"]
    assert "writeConcern" not in insert  # a transaction's statements take none: its commit does
    commit = [d for n, d in primary.commands if n == "commitTransaction"][0]
    assert commit["writeConcern"] == {"w": "majority"}


def test_bad_concerns_are_refused_with_the_options_words(replica_set):  # noqa: F811
    rs = replica_set()
    with _connect(rs.uri()) as conn:
        for bad, words in (({"readPreference": "fastest"}, "readPreference must be"),
                           ({"w": -1}, "w must be"), ({"tls": True}, "not a read preference"),
                           ({"readPreference": "primary", "maxStalenessSeconds": 120}, "primary")):
            with pytest.raises(driver.Error, match=words):
                conn.set_concerns(bad)
