"""A full disk (issue 19, finding 4): the write that does not fit fails with
OutOfDiskSpace (14031) naming the data directory -- not "Input/output
error" -- every acknowledged row stays, and freeing space makes the database
writable again. A real filesystem fills up here: a 3 MiB tmpfs, which needs
the right to mount (CI runs as root, as this machine's kind does)."""
import os
import subprocess

import pytest

from djongo import driver


@pytest.fixture
def small_disk(tmp_path):
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a small filesystem needs root (the test command runs as root in CI)")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_disk_full_is_out_of_disk_space(small_disk):
    host = str(small_disk / "db")
    conn = driver.connect(host, db="d", autocommit=True)
    cur = conn.cursor()
    cur.execute('CREATE TABLE "t" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "b" text)')
    acked = 0
    with pytest.raises(driver.OperationalError) as e:
        for _ in range(1000):
            cur.execute('INSERT INTO "t" ("b") VALUES (%s)', ["x" * 50000])
            acked += 1
    assert e.value.code == 14031, e.value
    assert host in str(e.value) and "full" in str(e.value) and "Input/output" not in str(e.value)
    assert acked > 10
    cur.execute('SELECT COUNT(*) FROM "t"')
    assert cur.fetchone() == (acked,)  # nothing acknowledged was lost
    cur.execute('DELETE FROM "t" WHERE "t"."id" <= %s', [acked // 2])
    cur.execute('INSERT INTO "t" ("b") VALUES (%s)', ["fits"])
    cur.execute('SELECT COUNT(*) FROM "t"')
    assert cur.fetchone() == (acked - acked // 2 + 1,)
    conn.close()
    conn = driver.connect(host, db="d")  # reopened: the same rows
    cur = conn.cursor()
    cur.execute('SELECT COUNT(*) FROM "t"')
    assert cur.fetchone() == (acked - acked // 2 + 1,)
    conn.close()
