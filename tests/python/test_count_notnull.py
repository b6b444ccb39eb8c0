"""COUNT(b.c) over a LEFT JOIN whose b.c is NOT NULL (Django's
annotate(Count("b"))) counts the joined rows: the executor writes the
$lookup's counting $group as {$sum: 1} for a column the table declares NOT
NULL (src/exec/notnull.c), which the engine answers from the keys of the
index on the join's field (aggregation/lookup_group.c); a nullable column
keeps its NULL test. Same counts as SQLite either way."""
import sqlite3

from djongo import driver

TABLES = ['CREATE TABLE "a" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "name" text NOT NULL)',
          'CREATE TABLE "b" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "a_id" integer NULL, "note" text NULL)',
          'CREATE INDEX "b_a_id" ON "b" ("a_id")']
QUERY = ('SELECT "a"."id", "a"."name", COUNT("b"."{col}") AS "n" FROM "a" LEFT OUTER JOIN "b" '
         'ON ("a"."id" = "b"."a_id") GROUP BY "a"."id", "a"."name" ORDER BY "a"."id"')


def fill(cur, ph):
    for t in TABLES:
        cur.execute(t)
    for i in range(6):
        cur.execute('INSERT INTO "a" ("name") VALUES (%s)'.replace("%s", ph), ["a%d" % i])
    rows = [(1 + i % 4, None if i % 3 else "n%d" % i) for i in range(40)] + [(None, "orphan")]
    for a_id, note in rows:
        cur.execute('INSERT INTO "b" ("a_id", "note") VALUES (%s, %s)'.replace("%s", ph), [a_id, note])


def test_count_of_a_not_null_column_counts_joined_rows(tmp_path):
    conn = driver.connect(str(tmp_path / "db"), db="t", autocommit=True)
    cur = conn.cursor()
    fill(cur, "%s")
    lite = sqlite3.connect(":memory:")
    lc = lite.cursor()
    fill(lc, "?")
    for col, counted in (("id", True), ("note", False)):
        conn._c.trace = True
        cur.execute(QUERY.format(col=col))
        conn._c.trace = False
        got = cur.fetchall()
        lc.execute(QUERY.format(col=col))
        assert got == [tuple(r) for r in lc.fetchall()]
        assert got[4:] == [(5, "a4", 0), (6, "a5", 0)]  # no joined row: 0
        command = cur.last_commands[-1]
        # b.id is NOT NULL: every joined row counts, no NULL test left;
        # b.note may be NULL: its test stays
        assert ('"$sum" : 1 ' in command and "$ifNull" not in command.split("$lookup")[1].split("$set")[0]) == counted
    conn.close()
