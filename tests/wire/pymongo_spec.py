"""MongoDB's unified-format specification tests run by pymongo's own runner
(test/unified_format.py of pymongo's sdist) against djongo-server.

    python3 tests/wire/pymongo_spec.py [--write docs/spec_tests.md] [SUITE ...]

pymongo's test package comes from the sdist `bash scripts/deps.sh tests`
unpacks into .cache/pymongo-sdist/pymongo-VERSION/ (specdata.py finds it;
DJONGO_SPEC_TESTS may point at another copy of its test/ directory). Each
suite is one of pymongo's test modules, run by `pytest` in a subprocess
(its test/ package importable, the installed pymongo under test) against a
fresh djongo-server started with test commands (--setParameter
enableTestCommands=1), as drivers run them against a mongod started with
them. pymongo_spec_plugin.py keeps the spec tests of the
module and records each test's outcome.

Every test that does not pass is given a reason and a category:
  topology        needs a deployment this is not (sharded cluster, load
                  balancer, serverless, a set with secondaries, Atlas)
  server version  written for MongoDB versions other than the 7.0 djongo
                  follows (features added later, or behaviour of older ones)
  driver          pymongo itself skips it (a driver feature it lacks)
  missing feature what djongo-server does not do yet (KNOWN below, or the
                  error the runner reported)
"""
import json
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from specdata import spec_root  # noqa: E402

SERVER_VERSION = (8, 0, 0)  # what djongo-server reports (handshake.c)

# suite -> (pymongo's test module, floors: the pass percentage of the tests
# that ran (rounded down), and the number of passes reached: a regression
# that fails tests, or that makes them skip, fails the floor)
SUITES = {
    "crud": ("test_crud_unified.py", 100, 353),
    "transactions": ("test_transactions_unified.py", 100, 182),
    "sessions": ("test_sessions_unified.py", 100, 28),
    "retryable-reads": ("test_retryable_reads_unified.py", 100, 277),
    "retryable-writes": ("test_retryable_writes_unified.py", 100, 116),
    "index-management": ("test_index_management.py", 100, 15),
    "collection-management": ("test_collection_management.py", 14, 1),
    "command-monitoring": ("test_command_monitoring.py", 100, 33),
    "command-logging": ("test_command_logging.py", 100, 27),
    "change-streams": ("test_change_stream.py", 100, 66),
}

# Tests that need a secondary to select: against a one-member set pymongo
# would wait out its 30 s server-selection timeout before failing. Not run;
# listed in the table as needing another topology.
NEEDS_SECONDARY = [
    "TestUnifiedRunCommand::test_run_command_fails_with_explicit_secondary_read_preference",
    "TestUnifiedRunCommand::test_run_command_fails_with_secondary_read_preference_from_transaction_options",
    "TestUnifiedReadPref::test_secondary_readPreference",
]

# Failures with a known cause: (regex on "Class::test", category, reason).
KNOWN = [
    (r"Timeseries", "missing feature", "time-series collections"),
    (r"ClusteredIndex", "missing feature", "clustered collections (clusteredIndex)"),
]


def _version(text):
    return tuple(int(x) for x in (text.split(".") + ["0", "0"])[:3])


def unmet(req):
    """Why one runOnRequirements entry is not met here, as (category, reason),
    or None when it is met."""
    topo = req.get("topologies")
    if topo and "replicaset" not in topo:
        return "topology", "needs a %s deployment" % " or ".join(topo)
    if req.get("serverless") == "require":
        return "topology", "needs a serverless deployment"
    if "minServerVersion" in req and _version(req["minServerVersion"]) > SERVER_VERSION:
        return "server version", "needs MongoDB %s or later (djongo follows 8.0)" % req["minServerVersion"]
    if "maxServerVersion" in req and _version(req["maxServerVersion"]) < SERVER_VERSION:
        return "server version", "for MongoDB %s or older" % req["maxServerVersion"]
    if req.get("auth") is True:
        return "topology", "needs a server with authentication on (the suite runs without)"
    if req.get("csfle"):
        return "topology", "needs client-side field-level encryption (libmongocrypt)"
    return None


def reason_of(row):
    """(category, reason) for a test that did not pass."""
    if row["outcome"] == "deselected":
        return "topology", "needs a secondary to select (a one-member replica set has none)"
    msg = row["message"]
    if row["outcome"] == "xfail":
        return "driver", "pymongo expects it to fail (an operation pymongo does not have)"
    if row["outcome"] == "skipped":
        if "runOnRequirements not satisfied" in msg:
            for reqs in (row["file_requirements"], row["test_requirements"]):
                why = [unmet(r) for r in reqs]
                if reqs and all(why):
                    cats = sorted({c for c, _ in why})
                    # a test several deployments could run is listed under
                    # the first that rules it out: topology before version
                    cat = "topology" if "topology" in cats else cats[0]
                    return cat, "; or ".join(sorted({r for _, r in why}))
            return "missing feature", "runOnRequirements not met: %s" % msg
        if "Test commands must be enabled" in msg:
            return "missing feature", "test commands (fail points) not enabled"
        return "driver", "pymongo skips it: " + msg.split(": ", 1)[-1]
    for pattern, cat, why in KNOWN:
        if re.search(pattern, row["id"]):
            return cat, why
    return "missing feature", "%s: %s" % (row["outcome"], msg)


def run_suite(name, server, workdir):
    """Runs one suite through pymongo's runner against a started Server;
    returns the rows the plugin recorded (one dict per test)."""
    module = SUITES[name][0]
    test_dir = os.path.realpath(spec_root())
    results = os.path.join(workdir, "%s.jsonl" % name)
    ini = os.path.join(workdir, "pytest.ini")
    with open(ini, "w") as f:
        # pymongo's own pytest settings (pyproject.toml) need its test-only
        # plugins (pytest-asyncio...): an empty ini stands in for them
        f.write("[pytest]\n")
    # pymongo's test package alone on the path (a directory holding a link to
    # it), not the sdist's root: the tests then drive the installed pymongo
    # (with its C extensions), not the sdist's copy of its sources
    pyroot = os.path.join(workdir, "pyroot-" + name)
    os.makedirs(pyroot, exist_ok=True)
    if not os.path.exists(os.path.join(pyroot, "test")):
        os.symlink(test_dir, os.path.join(pyroot, "test"))
    env = dict(os.environ)
    env.update(DB_IP="127.0.0.1", DB_PORT=str(server.port), DJONGO_SPEC_RESULTS=results,
               DJONGO_SPEC_DESELECT="\n".join(NEEDS_SECONDARY),
               PYTHONPATH=os.pathsep.join([HERE, pyroot] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])))
    env.pop("LD_PRELOAD", None)  # (the sanitizer run preloads ASan for the server, not for this)
    proc = subprocess.run(
        [sys.executable, "-P", "-m", "pytest", "-c", ini, "--rootdir", pyroot, "-q", "-p", "no:cacheprovider",
         "-p", "pymongo_spec_plugin", os.path.join(pyroot, "test", module)],
        cwd=pyroot, env=env, capture_output=True, text=True, timeout=1800)
    rows = []
    if os.path.exists(results):
        with open(results) as f:
            rows = [json.loads(line) for line in f]
    if not rows:
        raise RuntimeError("pymongo's runner recorded no tests for %s:\n%s\n%s"
                           % (name, proc.stdout[-3000:], proc.stderr[-3000:]))
    return rows


def counts(rows):
    c = {k: 0 for k in ("passed", "failed", "error", "skipped", "deselected", "xfail", "xpass")}
    for r in rows:
        c[r["outcome"]] += 1
    ran = c["passed"] + c["failed"] + c["error"]
    c["pct"] = 100.0 * c["passed"] / ran if ran else 0.0
    return c


def summary(name, rows):
    c = counts(rows)
    lines = ["%s: %d passed, %d failed, %d errors, %d skipped, %d not run (%.1f%% of the tests that ran pass)"
             % (name, c["passed"], c["failed"], c["error"], c["skipped"] + c["xfail"], c["deselected"], c["pct"])]
    for r in rows:
        if r["outcome"] in ("failed", "error"):
            cat, why = reason_of(r)
            lines.append("  %s %s [%s] %s" % (r["outcome"], r["id"], cat, why[:200]))
    return "\n".join(lines)


def table(all_rows):
    """docs/spec_tests.md: the per-suite counts, then every test that did not
    pass with its category and reason."""
    out = ["# MongoDB's unified spec tests through pymongo's runner",
           "",
           "Generated by `python3 tests/wire/pymongo_spec.py --write docs/spec_tests.md`:",
           "pymongo's own runner (test/unified_format.py of its sdist) against djongo-server",
           "started with `--setParameter enableTestCommands=1`. The test command runs the same",
           "suites (tests/wire/test_pymongo_spec.py) and asserts each suite's floor.",
           "",
           "Categories of the tests that do not pass: *topology* (needs another deployment: sharded,",
           "load balancer, serverless, secondaries, Atlas), *server version* (written for MongoDB",
           "versions other than 7.0), *driver* (pymongo skips it), *missing feature* (djongo's gap).",
           "",
           "| suite | passed | failed | skipped | not run | pass % of those run | topology | server version | driver | missing feature |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    detail = []
    for name, rows in all_rows.items():
        c = counts(rows)
        by_cat = {"topology": 0, "server version": 0, "driver": 0, "missing feature": 0}
        for r in rows:
            if r["outcome"] != "passed":
                cat, why = reason_of(r)
                by_cat[cat] += 1
                detail.append((name, cat, r["file"], r["test"], r["outcome"], why))
        out.append("| %s | %d | %d | %d | %d | %.1f | %d | %d | %d | %d |"
                   % (name, c["passed"], c["failed"] + c["error"], c["skipped"] + c["xfail"], c["deselected"],
                      c["pct"], by_cat["topology"], by_cat["server version"], by_cat["driver"],
                      by_cat["missing feature"]))
    out += ["", "## Every test that does not pass", "",
            "| suite | category | file | test | outcome | reason |", "|---|---|---|---|---|---|"]
    order = {"missing feature": 0, "driver": 1, "server version": 2, "topology": 3}
    for name, cat, f, t, outcome, why in sorted(detail, key=lambda d: (d[0], order[d[1]], d[2], d[3])):
        cell = lambda s: str(s).replace("|", "\\|").replace("\n", " ")  # noqa: E731
        out.append("| %s | %s | %s | %s | %s | %s |" % (name, cat, cell(f), cell(t), outcome, cell(why)[:240]))
    return "\n".join(out) + "\n"


def main(argv):
    from conftest import Server
    write = None
    if argv[:1] == ["--write"]:
        write, argv = argv[1], argv[2:]
    names = argv or list(SUITES)
    all_rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            s = Server(os.path.join(tmp, name + "-data"), "--setParameter", "enableTestCommands=1")
            try:
                all_rows[name] = run_suite(name, s, tmp)
            finally:
                s.stop()
            print(summary(name, all_rows[name]), flush=True)
    if write:
        with open(write, "w") as f:
            f.write(table(all_rows))
        print("wrote", write)


if __name__ == "__main__":
    main(sys.argv[1:])
