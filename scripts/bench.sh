#!/usr/bin/env bash
# Benchmarks (not part of the test command). Writes bench/results/*.md.
#   bash scripts/bench.sh            everything below
#   bash scripts/bench.sh orm [N] [MAX]
#                                    only Django's ORM suite (bench/orm_ops.py):
#                                    N books (default 10000) on every side, then
#                                    the scaling curves from 10k books up to MAX
#                                    (default 1000000) with their PNG plots
#                                    (~10-15 minutes on a 2-core machine)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

orm() {
  bash scripts/deps.sh bench
  export DJONGO_SERVER="$root/build/src/tools/djongo-server"  # the wire sides' server: this tree's
  local n=${1:-${N_ORM:-10000}} max=${2:-${ORM_MAX:-1000000}} sizes=10000
  for s in 100000 1000000 10000000; do ((s <= max)) && sizes="$sizes,$s"; done
  (cd /tmp && nice -n 10 python3 "$root/bench/orm_ops.py" "$n" --rounds "${ROUNDS:-5}" \
     --markdown "$root/bench/results/orm_ops.md")
  (cd /tmp && nice -n 10 python3 "$root/bench/orm_ops.py" --scale "$sizes" --sides djongo,sqlite-default,sqlite-wal,postgres \
     --rounds "${SCALE_ROUNDS:-3}" --markdown "$root/bench/results/orm_scaling.md" --plots "$root/bench/results")
}

bash scripts/deps.sh
[ -f build/build.ninja ] || meson setup build -Dbuildtype=release -Dpython=false >/dev/null
ninja -C build >/dev/null
mkdir -p bench/results
if [ "${1:-}" = orm ]; then
  python3 -m pip install -q --no-build-isolation .
  shift
  orm "$@"
  exit 0
fi
./build/bench/engine_vs_sqlite "${N:-100000}" --markdown bench/results/engine_vs_sqlite.md
./build/bench/engine_vs_sqlite "${N_SYNC:-2000}" --sync --markdown bench/results/engine_vs_sqlite_fsync.md
./build/bench/write_many_vs_sqlite "${N_WRITE:-50}" --markdown bench/results/write_many.md
./build/bench/write_many_vs_sqlite "${N_WRITE_SYNC:-30}" --sync --txn --markdown bench/results/write_many_fsync_txn.md
./build/bench/agg_vs_sqlite "${N_AGG:-100000}" --markdown bench/results/agg_vs_sqlite.md
./build/bench/text_vs_fts5 "${N_TEXT:-100000}" --markdown bench/results/text.md
./build/bench/geo_vs_sqlite "${N_GEO:-100000}" --markdown bench/results/geo.md
python3 bench/sql_compile.py bench/results/sql_compile.md   # vs the original djongo, in bench/.oldenv
python3 -m pip install -q --no-build-isolation .
(cd /tmp && python3 "$OLDPWD/bench/driver_rows.py" "${N:-100000}" --markdown "$OLDPWD/bench/results/driver_rows.md")
(cd /tmp && python3 "$OLDPWD/bench/django_documents.py" "${N_DOCS:-10000}" --markdown "$OLDPWD/bench/results/django_documents.md")
(cd /tmp && python3 "$OLDPWD/bench/wire_load.py" --clients 8 --seconds 10 --markdown "$OLDPWD/bench/results/wire_load.md")
orm
