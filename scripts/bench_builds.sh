#!/usr/bin/env bash
# The C benchmarks of an older commit against this tree, in one run
# (alternating rounds; bench/compare_builds.py). For refactorings that must
# not cost speed. Writes bench/results/builds.md.
#
#   bash scripts/bench_builds.sh REV [ROUNDS]
#   bash scripts/bench_builds.sh REV [ROUNDS] orm
#        also Django's ORM operations (bench/orm_ops.py) with REV's djongo
#        ("djongo-before") beside this tree's and SQLite as Django sets it
#        up, interleaved in one run: bench/results/orm_builds.md
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:?usage: bash scripts/bench_builds.sh REV [ROUNDS] [orm]}
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

[ "${3:-}" = orm ] || exit 0
# a djongo package per tree: its Python files and its _driver module
pkg() { # $1: source tree, $2: build dir, $3: package dir to make
  [ -f "$2/build.ninja" ] || meson setup "$2" -Dbuildtype=release -Dpython=true >/dev/null
  ninja -C "$2" >/dev/null
  mkdir -p "$3/djongo"
  ln -s "$1"/djongo/*.py "$1"/djongo/models "$1"/djongo/management "$1"/djongo/templates \
        "$2"/djongo/_driver*.so "$3/djongo/"
}
bash scripts/deps.sh bench
pkg "$old/src" "$old/src/build-py" "$old/pkg"
pkg "$PWD" "$PWD/build-bench-py" "$old/new-pkg"
root=$PWD
(cd /tmp && PYTHONPATH="$old/new-pkg" python3 "$root/bench/orm_ops.py" "${N_ORM:-10000}" --rounds "${2:-5}" \
   --sides djongo,sqlite-default --before "$old/pkg" --markdown "$root/bench/results/orm_builds.md")
