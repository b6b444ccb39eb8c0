#!/usr/bin/env bash
# Fuzzes with libFuzzer (clang), under ASan+UBSan, starting from
# tests/fuzz/corpus/TARGET; new inputs that reach new code are merged back
# into that corpus (commit them: the test command replays the corpora in
# every build). Targets: sql (tokenizer, parser, compiler), wire (message
# framing and OP_MSG/OP_QUERY parsing of the wire-protocol server).
#
#   bash scripts/fuzz.sh [SECONDS] [sql|wire]     default 300 sql
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-300}
target=${2:-sql}
case "$target" in
  sql) dict=(-dict=tests/fuzz/sql.dict); maxlen=4096 ;;
  wire) dict=(); maxlen=65536 ;;
  *) echo "fuzz: unknown target $target (sql or wire)"; exit 2 ;;
esac
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
libs=$(pkg-config --libs libbson-1.0 lmdb libpcre2-8 icu-i18n icu-uc libcrypto)
clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -Isrc/common -Isrc/sql -Isrc/compile -Isrc/server $(pkg-config --cflags libbson-1.0) \
  "tests/fuzz/fuzz_$target.c" build-fuzz/libdjcore.a $libs $(pkg-config --libs libmongoc-1.0) -lpthread -lm \
  -o "build-fuzz/fuzz_$target"
work=$(mktemp -d /tmp/djongo-fuzz-XXXXXX)
echo "fuzz: ${secs}s on 2 workers, new inputs in $work"
"build-fuzz/fuzz_$target" -max_total_time="$secs" -jobs=2 -workers=2 -max_len=$maxlen -timeout=10 \
  "${dict[@]}" "$work" "tests/fuzz/corpus/$target" >"$work.log" 2>&1 || { tail -50 "$work.log" fuzz-*.log 2>/dev/null; exit 1; }
"build-fuzz/fuzz_$target" -merge=1 "tests/fuzz/corpus/$target" "$work" >>"$work.log" 2>&1
echo "fuzz: no crash; corpus now $(ls "tests/fuzz/corpus/$target" | wc -l) inputs"
rm -f fuzz-*.log
