#!/usr/bin/env bash
# Fuzzes the SQL tokenizer, parser and compiler with libFuzzer (clang),
# under ASan+UBSan, starting from tests/fuzz/corpus/sql; new inputs that
# reach new code are merged back into that corpus (commit them: the test
# command replays the corpus in every build).
#
#   bash scripts/fuzz.sh [SECONDS]     default 300
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-300}
bash scripts/deps.sh
if ! command -v clang >/dev/null || ! ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-*.a >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq clang libclang-rt-dev >/dev/null
fi
if [ ! -f build-fuzz/build.ninja ]; then
  # the library is instrumented for coverage too (fuzzer-no-link), or libFuzzer sees only the harness
  CC=clang meson setup build-fuzz -Dbuildtype=debugoptimized -Db_sanitize=address,undefined -Db_lundef=false \
    -Dc_args=-fsanitize=fuzzer-no-link \
    -Dpython=false -Dtests=false >build-fuzz.setup.log
fi
ninja -C build-fuzz >build-fuzz.ninja.log
libs=$(pkg-config --libs libbson-1.0 lmdb libpcre2-8 icu-i18n icu-uc)
clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -Isrc/common -Isrc/sql -Isrc/compile $(pkg-config --cflags libbson-1.0) \
  tests/fuzz/fuzz_sql.c build-fuzz/libdjcore.a $libs -lpthread -lm -o build-fuzz/fuzz_sql
work=$(mktemp -d /tmp/djongo-fuzz-XXXXXX)
echo "fuzz: ${secs}s on 2 workers, new inputs in $work"
build-fuzz/fuzz_sql -max_total_time="$secs" -jobs=2 -workers=2 -max_len=4096 -timeout=10 \
  -dict=tests/fuzz/sql.dict "$work" tests/fuzz/corpus/sql >"$work.log" 2>&1 || { tail -50 "$work.log" fuzz-*.log 2>/dev/null; exit 1; }
build-fuzz/fuzz_sql -merge=1 tests/fuzz/corpus/sql "$work" >>"$work.log" 2>&1
echo "fuzz: no crash; corpus now $(ls tests/fuzz/corpus/sql | wc -l) inputs"
rm -f fuzz-*.log
