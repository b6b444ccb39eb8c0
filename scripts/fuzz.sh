#!/usr/bin/env bash
# Fuzzes with libFuzzer (clang), under ASan+UBSan, starting from
# tests/fuzz/corpus/TARGET; new inputs that reach new code are merged back
# into that corpus (commit them: the test command replays the corpora in
# every build). Targets (docs/fuzzing.md):
#   sql        tokenizer, parser, compiler (SQL text)
#   wire       message framing and OP_MSG/OP_QUERY parsing of the wire server (raw bytes)
#   wire_bson  the same parser fed valid OP_MSG frames around valid but hostile
#              BSON built from the input: deep, wide, document sequences, sizes
#              around the 48 MB message limit (structure-aware)
#   command    the engine's command API, dj_engine_run_command (Extended JSON commands)
#   expr       the aggregation expression evaluator (Extended JSON expressions)
#
#   bash scripts/fuzz.sh [SECONDS] [TARGET]     default 300 sql
# FUZZ_JOBS (default 2) sets libFuzzer's -jobs/-workers; each worker's
# memory is capped at 4 GB (-rss_limit_mb) and each input at 10 s (command and expr: 30 s).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
secs=${1:-300}
target=${2:-sql}
jobs=${FUZZ_JOBS:-2}
timeout=10
case "$target" in
  sql) dict=(-dict=tests/fuzz/sql.dict); maxlen=4096 ;;
  # above 16 MiB, so a message can carry a document of the largest BSON size and more
  wire) dict=(); maxlen=17000000 ;;
  wire_bson) dict=(); maxlen=4096 ;;
  # a command may sort or group megabytes: 10 s is too short for that under ASan on a busy machine
  command) dict=(-dict=tests/fuzz/command.dict); maxlen=4096; timeout=30 ;;
  # {$range: [0, 4000000]} is legal (under MongoDB's 64 MiB), and the harness evaluates it over four documents
  expr) dict=(-dict=tests/fuzz/expr.dict); maxlen=2048; timeout=30 ;;
  *) echo "fuzz: unknown target $target (sql, wire, wire_bson, command or expr)"; exit 2 ;;
esac
bash scripts/deps.sh
if ! command -v clang >/dev/null || ! ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-*.a >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq clang libclang-rt-dev >/dev/null
fi
# the library is instrumented for coverage too (fuzzer-no-link), or libFuzzer sees only the harness;
# undefined behaviour in it stops the run (UBSan otherwise prints and carries on)
cargs="-fsanitize=fuzzer-no-link -fno-sanitize-recover=undefined"
if [ ! -f build-fuzz/build.ninja ]; then
  CC=clang meson setup build-fuzz -Dbuildtype=debugoptimized -Db_sanitize=address,undefined -Db_lundef=false \
    -Dc_args="$cargs" -Dpython=false -Dtests=false >build-fuzz.setup.log
elif ! grep -q -- "-fno-sanitize-recover=undefined" build-fuzz/meson-info/intro-buildoptions.json; then
  meson configure build-fuzz -Dc_args="$cargs" >>build-fuzz.setup.log
fi
ninja -C build-fuzz >build-fuzz.ninja.log
# (libstemmer has no pkg-config file: text search's stems, src/engine/meson.build)
libs="$(pkg-config --libs libbson-1.0 lmdb libpcre2-8 icu-i18n icu-uc libcrypto) -lstemmer"
incs=()
for d in src/common src/sql src/compile src/server src/transport src/engine src/engine/*/; do incs+=("-I${d%/}"); done
clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  "${incs[@]}" $(pkg-config --cflags libbson-1.0) \
  "tests/fuzz/fuzz_$target.c" build-fuzz/libdjcore.a $libs $(pkg-config --libs libmongoc-1.0) -lpthread -lm \
  -o "build-fuzz/fuzz_$target"
mkdir -p "tests/fuzz/corpus/$target"
work=$(mktemp -d /tmp/djongo-fuzz-XXXXXX)
echo "fuzz: $target for ${secs}s on $jobs worker(s), new inputs in $work, log in $work.log"
# crash inputs are written under $work.crash/ (-artifact_prefix), worker logs next to $work.log
mkdir -p "$work.crash"
(cd "$work.crash" && "$root/build-fuzz/fuzz_$target" -max_total_time="$secs" -jobs="$jobs" -workers="$jobs" \
  -max_len=$maxlen -timeout=$timeout -rss_limit_mb=4096 -malloc_limit_mb=4096 -artifact_prefix="$work.crash/" -print_final_stats=1 \
  "${dict[@]/#-dict=/-dict=$root/}" "$work" "$root/tests/fuzz/corpus/$target") >"$work.log" 2>&1 \
  || true
# with -jobs the parent exits 0 even when a worker stopped on a crash: look for the inputs it wrote
found=$(find "$work.crash" -maxdepth 1 -type f ! -name 'fuzz-*.log' ! -name 'slow-unit-*')
if [ -n "$found" ]; then
  tail -60 "$work.crash"/fuzz-*.log "$work.log" 2>/dev/null || true
  echo "fuzz: $target stopped on: $found"; exit 1
fi
grep -h "stat::number_of_executed_units\|stat::peak_rss_mb" "$work.crash"/fuzz-*.log "$work.log" 2>/dev/null || true
"build-fuzz/fuzz_$target" -merge=1 -max_len=$maxlen -rss_limit_mb=4096 -timeout=$timeout "tests/fuzz/corpus/$target" "$work" >>"$work.log" 2>&1
echo "fuzz: no crash; corpus now $(ls "tests/fuzz/corpus/$target" | wc -l) inputs, $(du -sh "tests/fuzz/corpus/$target" | cut -f1)"
