#!/usr/bin/env bash
# The C benchmarks of an older commit against this tree, in one run
# (alternating rounds; bench/compare_builds.py). For refactorings that must
# not cost speed. Writes bench/results/builds.md.
#
#   bash scripts/bench_builds.sh REV [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:?usage: bash scripts/bench_builds.sh REV [ROUNDS]}
bash scripts/deps.sh
old=$(mktemp -d /tmp/djongo-old-XXXXXX)
trap 'git worktree remove --force "$old/src" >/dev/null 2>&1 || true; rm -rf "$old"' EXIT
git worktree add --detach "$old/src" "$rev" >/dev/null
for dir in "$old/src/build" build; do
  [ -f "$dir/build.ninja" ] || meson setup "$dir" -Dbuildtype=release -Dpython=false >/dev/null
done
ninja -C "$old/src/build" bench/engine_vs_sqlite bench/agg_vs_sqlite bench/sql_compile >/dev/null
ninja -C build bench/engine_vs_sqlite bench/agg_vs_sqlite bench/sql_compile >/dev/null
mkdir -p bench/results
python3 bench/compare_builds.py "$old/src/build" build --rounds "${2:-5}" --markdown bench/results/builds.md \
  --labels "$rev" "$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src || echo ' + changes')"
