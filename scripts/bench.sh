#!/usr/bin/env bash
# Benchmarks (not part of the test command). Writes bench/results/*.md.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
[ -f build/build.ninja ] || meson setup build -Dbuildtype=release -Dpython=false >/dev/null
ninja -C build >/dev/null
mkdir -p bench/results
./build/bench/engine_vs_sqlite "${N:-100000}" --markdown bench/results/engine_vs_sqlite.md
./build/bench/engine_vs_sqlite "${N_SYNC:-2000}" --sync --markdown bench/results/engine_vs_sqlite_fsync.md
./build/bench/agg_vs_sqlite "${N_AGG:-100000}" --markdown bench/results/agg_vs_sqlite.md
./build/bench/text_vs_fts5 "${N_TEXT:-100000}" --markdown bench/results/text.md
./build/bench/geo_vs_sqlite "${N_GEO:-100000}" --markdown bench/results/geo.md
python3 bench/sql_compile.py bench/results/sql_compile.md   # vs the original djongo, in bench/.oldenv
python3 -m pip install -q --no-build-isolation .
(cd /tmp && python3 "$OLDPWD/bench/driver_rows.py" "${N:-100000}" --markdown "$OLDPWD/bench/results/driver_rows.md")
(cd /tmp && python3 "$OLDPWD/bench/django_documents.py" "${N_DOCS:-10000}" --markdown "$OLDPWD/bench/results/django_documents.md")
(cd /tmp && python3 "$OLDPWD/bench/wire_load.py" --clients 8 --seconds 10 --markdown "$OLDPWD/bench/results/wire_load.md")
