"""What `pip install .` delivers: the package and the engine tool, built from
the C core. Runs against the installed artefacts, not the source tree."""

import json
import subprocess

import djongo


def run_engine(dbpath, *commands):
    tool = djongo.engine_tool()
    assert tool, "djongo-engine is not installed on PATH"
    proc = subprocess.run([tool, "--dbpath", str(dbpath), "--db", "t", *commands],
                          capture_output=True, text=True, timeout=60)
    return proc.returncode, [json.loads(line) for line in proc.stdout.splitlines()]


def test_version():
    assert djongo.__version__.startswith("2.")


def test_engine_round_trip(tmp_path):
    rc, replies = run_engine(
        tmp_path / "data",
        '{"insert": "c", "documents": [{"_id": 1, "a": [1, 2]}, {"_id": 2, "a": 3}]}',
        '{"find": "c", "filter": {"a": 2}}',
    )
    assert rc == 0
    assert replies[0] == {"n": 2, "ok": 1.0}
    assert replies[1]["cursor"]["firstBatch"] == [{"_id": 1, "a": [1, 2]}]


def test_data_persists_between_processes(tmp_path):
    run_engine(tmp_path / "d", '{"insert": "c", "documents": [{"_id": "x"}]}')
    rc, replies = run_engine(tmp_path / "d", '{"count": "c"}')
    assert rc == 0 and replies[0]["n"] == 1


def test_errors_are_mongodb_errors(tmp_path):
    rc, replies = run_engine(
        tmp_path / "e",
        '{"insert": "c", "documents": [{"_id": 1}, {"_id": 1}]}',
        '{"nosuch": 1}',
    )
    assert rc == 1
    assert replies[0]["writeErrors"][0]["code"] == 11000
    assert replies[1] == {"ok": 0.0, "errmsg": "no such command: 'nosuch'", "code": 59,
                          "codeName": "CommandNotFound"}
