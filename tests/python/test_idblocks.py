"""AUTOINCREMENT ids reserved in blocks per connection (src/exec/idblock.c):
a single-row INSERT outside a transaction takes its id from the block this
connection reserved, so it runs as its insert alone (over the wire: one
commit, not the counter's findAndModify and then the insert); ids stay
unique across connections and are never given twice; an id another writer
put inside a block makes the INSERT run again with an id from the counter.
"""
import pytest

from djongo import driver

CREATE = 'CREATE TABLE "x" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "v" integer NULL)'


def connect(path):
    return driver.connect(str(path), db="t", autocommit=True)


def counter(cur, table="x"):
    cur.execute('SELECT "seq" FROM "__djongo_tables" WHERE "table" = %s', [table])
    return cur.fetchall()[0][0]


def test_single_row_inserts_reserve_growing_blocks(tmp_path):
    conn = connect(tmp_path / "db")
    cur = conn.cursor()
    cur.execute(CREATE)
    seqs = []
    for i in range(12):
        cur.execute('INSERT INTO "x" ("v") VALUES (%s)', [i])
        seqs.append(counter(cur))
    # four single ids, then blocks of 2, 4, 8: the counter moves at the 1st
    # to 5th, the 7th and 11th INSERT only; the others run as their insert alone
    assert seqs == [1, 2, 3, 4, 6, 6, 10, 10, 10, 10, 18, 18]
    cur.execute('SELECT "id" FROM "x" ORDER BY "id"')
    assert [r[0] for r in cur.fetchall()] == list(range(1, 13))
    conn.close()
    # inside a transaction the counter moves with the rows, and back with them
    conn = driver.connect(str(tmp_path / "db"), db="t")
    cur = conn.cursor()
    for i in range(3):
        cur.execute('INSERT INTO "x" ("v") VALUES (%s)', [i])
        assert counter(cur) == 19 + i
    conn.rollback()
    cur.execute('INSERT INTO "x" ("v") VALUES (%s)', [9])
    conn.commit()
    assert cur.lastrowid == 19 and counter(cur) == 19
    conn.close()


def test_an_id_written_into_a_block_is_not_given_again(tmp_path):
    a, b = connect(tmp_path / "db"), connect(tmp_path / "db")
    ca, cb = a.cursor(), b.cursor()
    ca.execute(CREATE)
    for i in range(6):
        ca.execute('INSERT INTO "x" ("v") VALUES (%s)', [i])  # a's blocks: 1, 2, 3, 4, 5..6, 7..10
    assert ca.lastrowid == 6
    ca.execute('INSERT INTO "x" ("v") VALUES (%s)', [6])  # 7, from the block 7..10
    cb.execute('INSERT INTO "x" ("id", "v") VALUES (8, 80)')  # inside a's block
    ca.execute('INSERT INTO "x" ("v") VALUES (%s)', [7])  # 8 is taken: run again, from the counter
    assert ca.lastrowid == 11
    # this connection's own explicit id drops its block too
    ca.execute('INSERT INTO "x" ("id", "v") VALUES (12, 90)')
    ca.execute('INSERT INTO "x" ("v") VALUES (%s)', [10])
    assert ca.lastrowid == 13
    ca.execute('SELECT COUNT(*), COUNT(DISTINCT "id") FROM "x"')
    assert ca.fetchall() == [(11, 11)]
    # interleaved, the two connections never give the same id
    given = []
    for i in range(40):
        for c in (ca, cb, ca):
            c.execute('INSERT INTO "x" ("v") VALUES (%s)', [i])
            given.append(c.lastrowid)
    assert len(set(given)) == len(given) == 120
    ca.execute('SELECT COUNT(*), COUNT(DISTINCT "id") FROM "x"')
    assert ca.fetchall() == [(131, 131)]
    # a statement that fails for another reason is not run again; its block is dropped
    ca.execute('CREATE TABLE "y" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "v" integer NOT NULL UNIQUE)')
    ca.execute('INSERT INTO "y" ("v") VALUES (1)')
    ca.execute('INSERT INTO "y" ("v") VALUES (2)')  # block 2..3
    with pytest.raises(driver.IntegrityError):
        ca.execute('INSERT INTO "y" ("v") VALUES (1)')
    ca.execute('INSERT INTO "y" ("v") VALUES (3)')
    ca.execute('SELECT "id", "v" FROM "y" ORDER BY "id"')
    rows = ca.fetchall()
    assert [r[1] for r in rows] == [1, 2, 3] and len({r[0] for r in rows}) == 3
    a.close()
    b.close()
