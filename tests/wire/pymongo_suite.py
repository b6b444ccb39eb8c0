"""pymongo's own synchronous test suite (the test/test_*.py modules of its
sdist, beyond the unified spec tests pymongo_spec.py runs) against
djongo-server -- a long suite, not part of the test command:

    python3 tests/wire/pymongo_suite.py [--write docs/pymongo_suite.md] [--rows FILE] [MODULE ...]

(--rows FILE keeps the run's rows in FILE, and when FILE exists writes the
doc from it without running anything.)

pymongo's test package comes from the sdist `bash scripts/deps.sh tests`
unpacks into .cache/pymongo-sdist/pymongo-VERSION/ (specdata.py finds it).
Each module runs in its own `pytest` subprocess (pymongo's test/ package
importable, the installed pymongo under test; pymongo_suite_plugin.py
records each test) against a fresh djongo-server started with test commands,
pointed at it as pymongo's CI points it at a mongod: DB_IP / DB_PORT, which
its client_context reads (on port 27017 when that is free: a few tests
connect there whatever DB_PORT says). A module gets MODULE_SECONDS; the tests it did
not reach by then are counted as one error row.

MODULES are the modules that test pymongo against a server; SKIPPED_MODULES
those not run, each with its reason. The table in docs/ lists every test
that fails with its cause (CAUSES: a regex on the test id or the failure
message, and why); "absent feature" marks what djongo-server does not have.
"""
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from specdata import spec_root  # noqa: E402

MODULE_SECONDS = 900

MODULES = [
    "test_binary.py", "test_bulk.py", "test_change_stream.py", "test_client.py",
    "test_client_bulk_write.py", "test_client_context.py", "test_collation.py",
    "test_collection.py", "test_comment.py", "test_common.py", "test_cursor.py",
    "test_custom_types.py", "test_database.py", "test_decimal128.py", "test_examples.py",
    "test_grid_file.py", "test_gridfs.py", "test_gridfs_bucket.py", "test_heartbeat_monitoring.py",
    "test_json_util_integration.py", "test_logger.py", "test_monitor.py", "test_monitoring.py",
    "test_operation_id_retry.py", "test_pooling.py", "test_raw_bson.py", "test_read_concern.py",
    "test_read_preferences.py", "test_read_write_concern_spec.py", "test_retryable_reads.py",
    "test_retryable_writes.py", "test_session.py", "test_threads.py", "test_transactions.py",
    "test_typing.py", "test_versioned_api_integration.py", "test_auth.py",
]

SKIPPED_MODULES = {
    # MongoDB's unified-format spec tests: tests/wire/pymongo_spec.py runs them
    # (docs/spec_tests.md), and the test command asserts their floors
    "test_crud_unified.py": "unified spec tests (pymongo_spec.py runs them)",
    "test_transactions_unified.py": "unified spec tests (pymongo_spec.py runs them)",
    "test_sessions_unified.py": "unified spec tests (pymongo_spec.py runs them)",
    "test_retryable_reads_unified.py": "unified spec tests (pymongo_spec.py runs them)",
    "test_retryable_writes_unified.py": "unified spec tests (pymongo_spec.py runs them)",
    "test_index_management.py": "unified spec tests (pymongo_spec.py runs them)",
    "test_collection_management.py": "unified spec tests (pymongo_spec.py runs them)",
    "test_command_monitoring.py": "unified spec tests (pymongo_spec.py runs them)",
    "test_command_logging.py": "unified spec tests (pymongo_spec.py runs them)",
    # another topology or infrastructure a single djongo-server is not
    "test_encryption.py": "client-side field-level encryption (libmongocrypt, mongocryptd, KMS servers)",
    "test_on_demand_csfle.py": "client-side encryption with cloud KMS credentials",
    "test_kms_connect.py": "KMS servers (client-side encryption)",
    "test_kms_connect_prose.py": "KMS servers (client-side encryption)",
    "test_auth_oidc.py": "OIDC identity providers (Atlas, cloud)",
    "test_azure_helpers.py": "Azure instance metadata (cloud)",
    "test_gcp_helpers.py": "GCP instance metadata (cloud)",
    "test_ssl.py": "TLS: djongo-server listens without TLS",
    "test_ocsp_support.py": "TLS with OCSP stapling",
    "test_dns.py": "DNS SRV/TXT seed lists (mongodb+srv://)",
    "test_srv_polling.py": "DNS SRV polling of a sharded cluster",
    "test_load_balancer.py": "a load-balanced deployment",
    "test_mongos_load_balancing.py": "several mongos routers",
    "test_connections_survive_primary_stepdown_spec.py": "a replica set whose primary steps down (replSetStepDown)",
    "test_replica_set_reconfig.py": "a replica set reconfigured (mocked multi-member topologies)",
    "test_max_staleness.py": "secondaries with replication lag",
    "test_fork.py": "forks a process holding pymongo's locks (a pymongo test, not a server one); slow",
    "test_subinterpreters.py": "Python sub-interpreters (pymongo's own machinery)",
}

# Failures with a known cause: (regex on "id message", category, reason).
#   absent feature  what djongo-server does not have (the list, or
#                   deliberately: server-side JavaScript)
#   environment     the machine the suite runs on, not the server: no DNS
#   harness         the test ignores DB_PORT (a client on localhost:27017)
#   client          pymongo's own client-side behaviour, no server answer
#                   involved
# Anything else is "wrong answer": djongo-server answers otherwise than mongod.
CAUSES = [
    (r"\$where|test_max_pool_size|test_to_list_csot_applied|test_interrupt_signal", "absent feature",
     "server-side JavaScript ($where; pymongo's delay() helper): deliberately absent"),
    (r"Index type '(2d|2dsphere|text)'", "absent feature", "geospatial and text indexes"),
    (r"unknown fail point", "absent feature", "a mongod fail point djongo-server does not have"),
    (r"test_to_list_tailable", "absent feature",
     "the oplog (local.oplog.rs: mongod's replication log, read as a capped collection)"),
    (r"DNS query name does not exist", "environment", "no DNS SRV records for the test's mongodb+srv host"),
    (r"localhost:27017", "harness", "the test connects to localhost:27017 whatever DB_PORT says (taken by another "
     "server on this machine during the run)"),
    (r"test_read_preference_hedge_deprecated", "client",
     "pymongo's DeprecationWarning for hedge (client-side; already emitted once in the process)"),
    (r"test_4_retry_backoff_is_enforced", "client",
     "an OverflowError in pymongo's with_transaction backoff with random.random patched to 0 "
     "(the commands it sends are answered as mongod does)"),
]

# What a skip needs, by pymongo's message (first match): another topology or
# deployment, something on the client's side, or what djongo-server lacks.
SKIP_KINDS = [
    (r"secondaries|mongos|standalone|This cluster supports retryable writes|cluster-level change streams cannot be "
     r"invalidated", "another topology"),
    (r"Authentication is not enabled|via TLS|SASL|Kerberos", "another deployment (authentication on, TLS, Kerberos)"),
    (r"Server version must be at least (8\.[1-9]|9|[1-9][0-9])", "a test for newer servers (djongo follows 8.0)"),
    (r"did not negotiate compression", "absent feature: wire compression (OP_COMPRESSED)"),
    (r"Server version must be at most", "a test for older servers"),
    (r"runOnRequirements|expects it to fail", "the spec test's own requirements (sharded clusters, older or newer "
     "servers, serverless, encryption: see its file)"),
    (r".", "the client's side (pymongo's build, Python, optional modules, harness settings)"),
]


def skip_kind(message):
    for pattern, kind in SKIP_KINDS:
        if re.search(pattern, message):
            return kind
    return SKIP_KINDS[-1][1]


def run_module(module, server, workdir):
    """Runs one of pymongo's test modules against a started Server; returns
    its rows (one dict per test) and whether it ended within its time."""
    test_dir = os.path.realpath(spec_root())
    results = os.path.join(workdir, module + ".jsonl")
    ini = os.path.join(workdir, "pytest.ini")
    with open(ini, "w") as f:
        f.write("[pytest]\n")  # pymongo's own settings want its test-only plugins
    pyroot = os.path.join(workdir, "pyroot")
    os.makedirs(pyroot, exist_ok=True)
    if not os.path.exists(os.path.join(pyroot, "test")):
        os.symlink(test_dir, os.path.join(pyroot, "test"))
    env = dict(os.environ)
    env.update(DB_IP="127.0.0.1", DB_PORT=str(server.port), DJONGO_SUITE_RESULTS=results,
               PYTHONPATH=os.pathsep.join([HERE, pyroot] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])))
    env.pop("LD_PRELOAD", None)
    env.pop("KUBERNETES_SERVICE_HOST", None)  # a developer's machine, not a container (pymongo_suite_plugin.py)
    proc = subprocess.Popen(
        [sys.executable, "-P", "-m", "pytest", "-c", ini, "--rootdir", pyroot, "-q", "-p", "no:cacheprovider",
         "-p", "pymongo_suite_plugin", os.path.join(pyroot, "test", module)],
        cwd=pyroot, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    timed_out = False
    try:
        out, _ = proc.communicate(timeout=MODULE_SECONDS)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        timed_out = True
    rows = {}
    if os.path.exists(results):
        with open(results) as f:
            for line in f:
                r = json.loads(line)
                old = rows.get(r["id"])
                if old is None or old["outcome"] == "passed":  # a failed teardown after a pass counts
                    rows[r["id"]] = r
    rows = list(rows.values())
    if timed_out:
        rows.append({"id": "(module)", "outcome": "error",
                     "message": "stopped after %d s; the tests after the last one listed did not run"
                     % MODULE_SECONDS})
    elif not rows:
        rows.append({"id": "(module)", "outcome": "error", "message": "no test ran: " + out[-300:].replace("\n", " ")})
    return rows


def counts(rows):
    c = {k: 0 for k in ("passed", "failed", "error", "skipped")}
    for r in rows:
        c[r["outcome"]] += 1
    return c


def cause_of(row):
    text = "%s %s" % (row["id"], row["message"])
    for pattern, cat, why in CAUSES:
        if re.search(pattern, text):
            return cat, why
    return "wrong answer", row["message"]


def table(all_rows, seconds):
    total = {k: 0 for k in ("passed", "failed", "error", "skipped")}
    body = []
    for module, rows in all_rows.items():
        c = counts(rows)
        for k in total:
            total[k] += c[k]
        ran = c["passed"] + c["failed"] + c["error"]
        body.append("| %s | %d | %d | %d | %d | %s |" % (module, c["passed"], c["failed"], c["error"], c["skipped"],
                                                          "%.1f" % (100.0 * c["passed"] / ran) if ran else "-"))
    ran = total["passed"] + total["failed"] + total["error"]
    by_cause = {}
    for rows in all_rows.values():
        for r in rows:
            if r["outcome"] in ("failed", "error"):
                cat = cause_of(r)[0]
                by_cause[cat] = by_cause.get(cat, 0) + 1
    out = ["# pymongo's own test suite against djongo-server", "",
           "Generated by `python3 tests/wire/pymongo_suite.py --write docs/pymongo_suite.md` (%d s):" % seconds,
           "the synchronous test modules of pymongo %s's sdist (test/test_*.py), each run by" % _pymongo_version(),
           "pytest against a fresh djongo-server started with `--setParameter enableTestCommands=1`.",
           "pymongo's harness skips what needs another deployment (sharded, load balancer,",
           "secondaries, authentication on, encryption); those are the skipped column.",
           "A failure's cause: *wrong answer* (djongo-server answers otherwise than mongod),",
           "*absent feature* (what it does not have), *client* (pymongo's own behaviour, no server",
           "answer involved), *harness* (the test ignores DB_PORT), *environment* (the machine).",
           "The modules run as on a developer's machine, not in a container: pymongo's handshake",
           "metadata leaves out env.container (tests/wire/pymongo_suite_plugin.py says how), as its",
           "metadata tests expect.", "",
           "**Total: %d passed, %d failed, %d errors, %d skipped: %.1f%% of the %d tests that ran pass**"
           % (total["passed"], total["failed"], total["error"], total["skipped"],
              100.0 * total["passed"] / ran if ran else 0, ran)
           + ".", "",
           "Failures by cause: " + (", ".join("%s %d" % kv for kv in sorted(by_cause.items())) or "none") + "; "
           "without the absent features, %.1f%% pass." % (
               100.0 * total["passed"] / (ran - by_cause.get("absent feature", 0)) if ran else 0), "",
           "| module | passed | failed | errors | skipped | pass % |", "|---|---|---|---|---|---|"]
    out += body
    out += ["", "## Modules not run", "", "| module | why |", "|---|---|"]
    out += ["| %s | %s |" % (m, why) for m, why in sorted(SKIPPED_MODULES.items())]
    out += ["", "## Every test that fails", "", "| module | test | outcome | cause | reason |", "|---|---|---|---|---|"]
    cell = lambda s: str(s).replace("|", "\\|").replace("\n", " ")[:240]  # noqa: E731
    order = {"wrong answer": 0, "absent feature": 1, "client": 2, "harness": 3, "environment": 4}
    failing = [(module, r) + cause_of(r) for module, rows in all_rows.items() for r in rows
               if r["outcome"] in ("failed", "error")]
    for module, r, cat, why in sorted(failing, key=lambda f: (order[f[2]], f[0], f[1]["id"])):
        out.append("| %s | %s | %s | %s | %s |" % (module, cell(r["id"]), r["outcome"], cat, cell(why)))
    # every skip, by pymongo's reason (its harness decides what the deployment lacks)
    skips = {}
    for module, rows in all_rows.items():
        for r in rows:
            if r["outcome"] == "skipped":
                skips.setdefault(r["message"].strip() or "(no reason given)", []).append(module)
    kinds = {}
    for why, modules in skips.items():
        kinds[skip_kind(why)] = kinds.get(skip_kind(why), 0) + len(modules)
    out += ["", "## Every skip, by pymongo's reason", "",
            "By what it needs: " + ", ".join("%s %d" % (k, n) for k, n in sorted(kinds.items(), key=lambda kv: -kv[1]))
            + ".", "", "| tests | reason (pymongo's message) | needs | modules |", "|---|---|---|---|"]
    for why, modules in sorted(skips.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        out.append("| %d | %s | %s | %s |" % (len(modules), cell(why), skip_kind(why),
                                               ", ".join(sorted(set(modules)))))
    return "\n".join(out) + "\n"


def _pymongo_version():
    import pymongo
    return pymongo.version


def default_port_free():
    """Is mongod's default port (27017) free? A few of pymongo's tests build
    a client on localhost:27017 whatever DB_PORT says; the server listens
    there when it can."""
    sock = socket.socket()
    try:
        sock.bind(("127.0.0.1", 27017))
        return True
    except OSError:
        return False
    finally:
        sock.close()


def main(argv):
    from conftest import Server
    write = rows_file = None
    if argv[:1] == ["--write"]:
        write, argv = argv[1], argv[2:]
    if argv[:1] == ["--rows"]:  # keep (or, when it exists, reuse) the run's rows: the doc again without a run
        rows_file, argv = argv[1], argv[2:]
    modules = argv or MODULES
    all_rows = {}
    start = time.time()
    if rows_file and os.path.exists(rows_file):
        with open(rows_file) as f:
            saved = json.load(f)
        all_rows, modules, start = saved["rows"], [], time.time() - saved["seconds"]
    with tempfile.TemporaryDirectory() as tmp:
        for module in modules:
            port = ("--port", "27017") if default_port_free() else ()  # (the last --port is the one taken)
            s = Server(os.path.join(tmp, module + "-data"), "--setParameter", "enableTestCommands=1", *port)
            t0 = time.time()
            try:
                all_rows[module] = run_module(module, s, tmp)
            finally:
                s.stop()
            c = counts(all_rows[module])
            print("%s: %d passed, %d failed, %d errors, %d skipped (%.0f s)"
                  % (module, c["passed"], c["failed"], c["error"], c["skipped"], time.time() - t0), flush=True)
            for r in all_rows[module]:
                if r["outcome"] in ("failed", "error"):
                    print("  %s %s: %s" % (r["outcome"], r["id"], r["message"][:200]), flush=True)
    if rows_file and modules:
        with open(rows_file, "w") as f:
            json.dump({"rows": all_rows, "seconds": int(time.time() - start)}, f)
    if write:
        with open(write, "w") as f:
            f.write(table(all_rows, int(time.time() - start)))
        print("wrote", write)


if __name__ == "__main__":
    main(sys.argv[1:])
