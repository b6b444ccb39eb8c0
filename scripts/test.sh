#!/usr/bin/env bash
# The test command (README, .ci/run). Installs its own dependencies, then:
#   1. builds the C core with -Werror (release) and runs the C tests;
#   2. builds it again with ASan+UBSan and runs the same C tests;
#   3. installs the package with `pip install .` into a fresh virtualenv and
#      runs the Python tests against the installed artefacts.
# Ends with one summary line: "tests: N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
# (with "tests": MongoDB's specification tests too, from pymongo's sdist)
bash scripts/deps.sh tests || { echo "!! scripts/deps.sh failed"; echo "tests: 0 passed, 1 failed"; exit 1; }

total_pass=0 total_fail=0 broken=0
tally() { # reads a program's output, echoes it, adds its "N passed, N failed" line
  local out=$1 p f
  echo "$out"
  read -r p f < <(echo "$out" | sed -n 's/^[A-Za-z_-]*: \([0-9]*\) passed, \([0-9]*\) failed.*/\1 \2/p' | tail -1)
  if [ -z "${p:-}" ]; then broken=$((broken + 1)); echo "!! no summary line from that program"; return; fi
  total_pass=$((total_pass + p)); total_fail=$((total_fail + f))
}

count_of() { # $1: a summary line, $2: a word (regex): the number before that word, if any
  echo "$1" | grep -oE "[0-9]+ ($2)([^A-Za-z]|\$)" | grep -oE '^[0-9]+' | tail -1
}
pytest_tally() { # $1: a pytest run's output, $2: its exit status; adds up its last line
  # ("3 failed, 120 passed, 4 skipped in 9.1s", "120 passed", "2 errors in 1s", ...):
  # each count by its word, wherever it stands; errors count as failures. A run
  # with no such count, or that exited non-zero without any failure, is broken.
  local last p f e
  last=$(echo "$1" | tail -1)
  p=$(count_of "$last" passed) f=$(count_of "$last" failed) e=$(count_of "$last" 'errors?')
  if [ -z "$p$f$e" ] || { [ "$2" -ne 0 ] && [ $((${f:-0} + ${e:-0})) -eq 0 ]; }; then
    broken=$((broken + 1)); echo "!! pytest exited $2 with no count of passed/failed tests in: $last"; return
  fi
  total_pass=$((total_pass + ${p:-0})); total_fail=$((total_fail + ${f:-0} + ${e:-0}))
}

run_c_tests() { # $1: build dir
  local b=$1
  tally "$("$b/tests/engine/run_scripts" tests/engine/scripts/*.test 2>&1)"
  tally "$("$b/tests/engine/test_keyenc" 2>&1)"
  tally "$("$b/tests/engine/test_sample" 2>&1)"
  tally "$("$b/tests/engine/test_keep" 2>&1)"
  tally "$("$b/tests/engine/test_durability" 2>&1)"
  tally "$("$b/tests/engine/test_malformed" 2>&1)"
  tally "$("$b/tests/engine/test_txn" 2>&1)"
  tally "$("$b/tests/engine/test_depth" 2>&1)"
  tally "$("$b/tests/engine/test_ttl" 2>&1)"
  tally "$("$b/tests/crypt/test_crypt" 2>&1)"
  tally "$("$b/tests/sql/run_golden" tests/sql/golden/*.test 2>&1)"
  tally "$("$b/tests/sql/test_plan_cache" 2>&1)"
  tally "$("$b/tests/sql/test_bound_cache" 2>&1)"
  tally "$("$b/tests/fuzz/replay_sql" tests/fuzz/corpus/sql 2>&1)"
  tally "$("$b/tests/fuzz/replay_wire" tests/fuzz/corpus/wire 2>&1)"
  tally "$("$b/tests/fuzz/replay_wire_bson" tests/fuzz/corpus/wire_bson 2>&1)"
  tally "$("$b/tests/fuzz/replay_command" tests/fuzz/corpus/command 2>&1)"
  tally "$("$b/tests/fuzz/replay_expr" tests/fuzz/corpus/expr 2>&1)"
  tally "$("$b/tests/wire/test_mongoc" 2>&1)"
}

build() { # $1: dir, rest: meson options
  local dir=$1; shift
  if [ ! -f "$dir/build.ninja" ]; then
    meson setup "$dir" "$@" >"$dir.setup.log" 2>&1 || { cat "$dir.setup.log"; return 1; }
  fi
  ninja -C "$dir" >"$dir.ninja.log" 2>&1 || { cat "$dir.ninja.log"; return 1; }
}

echo "== release build (-Werror) and C tests"
if build build -Dbuildtype=release -Dpython=false; then run_c_tests build; else broken=$((broken + 1)); fi

echo "== ASan+UBSan build and C tests"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
if build build-asan -Dbuildtype=debug -Db_sanitize=address,undefined -Dpython=true; then
  run_c_tests build-asan
  # the DB-API driver's C under the sanitizers: its Python tests against the
  # ASan+UBSan extension (a package dir of the sources + that build's .so;
  # CPython's own leaks at exit are not ours, so leak checks are off here)
  pyasan=$(mktemp -d /tmp/djongo-pyasan-XXXXXX); mkdir "$pyasan/djongo"
  ln -s "$root"/djongo/*.py "$root"/djongo/models "$root"/djongo/management "$root"/djongo/templates \
        "$root"/build-asan/djongo/_driver*.so "$pyasan/djongo/"
  # (the interpreter itself, not a pyenv shim, which would put its own bin
  # directory -- and any installed djongo tools -- first on PATH)
  py=$(python3 -c 'import sys; print(sys.executable)')
  out=$(cd /tmp && LD_PRELOAD="$(cc -print-file-name=libasan.so) $(cc -print-file-name=libubsan.so)" \
        ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 PYTHONPATH="$pyasan" PATH="$root/build-asan/src/tools:$PATH" \
        "$py" -m pytest -q -p no:cacheprovider "$root/tests/python" 2>&1); rc=$?
  echo "$out" | tail -3
  pytest_tally "$out" "$rc"
  # the executor and djongo-sql under the sanitizers: the SQL execution
  # tests and the Django corpus replay drive the ASan+UBSan djongo-sql
  out=$(cd /tmp && DJONGO_SQL="$root/build-asan/src/tools/djongo-sql" PYTHONPATH="$root/tests/sql" \
        "$py" -m pytest -q -p no:cacheprovider "$root/tests/sql" 2>&1); rc=$?
  echo "$out" | tail -3
  pytest_tally "$out" "$rc"
  # djongo-server under the sanitizers, leak checks on (it must exit 0 after
  # SIGTERM), driven by pymongo and by the ASan driver's libmongoc transport
  out=$(cd /tmp && LD_PRELOAD="$(cc -print-file-name=libasan.so) $(cc -print-file-name=libubsan.so)" \
        ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 DJONGO_SERVER_ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
        DJONGO_SERVER="$root/build-asan/src/tools/djongo-server" \
        PYTHONPATH="$pyasan" PATH="$root/build-asan/src/tools:$PATH" \
        "$py" -m pytest -q -p no:cacheprovider "$root/tests/wire" 2>&1); rc=$?
  rm -rf "$pyasan"
  echo "$out" | tail -3
  pytest_tally "$out" "$rc"
else
  broken=$((broken + 1))
fi
unset ASAN_OPTIONS UBSAN_OPTIONS

echo "== pip install . and Python tests"
venv=$(mktemp -d /tmp/djongo-venv-XXXXXX)
python3 -m venv --system-site-packages "$venv"
if "$venv/bin/pip" install -q --no-build-isolation "$root" >"$venv.pip.log" 2>&1; then
  out=$(cd /tmp && PATH="$venv/bin:$PATH" \
        "$venv/bin/python" -m pytest -q -p no:cacheprovider "$root/tests/python" "$root/tests/sql" "$root/tests/django" "$root/tests/e2e" "$root/tests/wire" 2>&1); rc=$?
  echo "$out"
  pytest_tally "$out" "$rc"
else
  cat "$venv.pip.log"; broken=$((broken + 1))
fi
rm -rf "$venv" "$venv.pip.log"

if ((broken)); then echo "($broken test programs crashed, did not build, or printed no summary)"; total_fail=$((total_fail + broken)); fi
echo "tests: $total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
