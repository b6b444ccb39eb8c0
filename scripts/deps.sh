#!/usr/bin/env bash
# Installs what building and testing djongo needs, from Debian and PyPI.
# Idempotent: skips what is already there. Used by scripts/test.sh, run.sh, bench.sh.
#   bash scripts/deps.sh tests   also fetches MongoDB's specification tests (below)
set -euo pipefail

debs=(build-essential pkg-config libbson-dev libmongoc-dev libmongocrypt-dev libssl-dev liblmdb-dev libpcre2-dev libicu-dev libsqlite3-dev libreadline-dev tzdata
      # libmongocrypt-dev: client-side field-level encryption (src/crypt)
      openssl  # the openssl command: tests/wire/test_tls.py's throwaway certificates
      chromium chromium-driver)  # the last two: the example site's browser test (tests/e2e)
# text indexes (src/engine/text): Snowball stemmers, and the Snowball project's stop word lists
debs+=(libstemmer-dev liblingua-stopwords-perl)
# djongo-server's wire compression, OP_COMPRESSED (src/server/compress.c)
debs+=(zlib1g-dev libzstd-dev libsnappy-dev)
missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "deps: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# name=requirement: installed unless `pip show name` finds it at a matching version
pips=(meson=meson meson-python=meson-python ninja=ninja pytest=pytest pymongo=pymongo "django=django>=5.2,<5.3"
      "dbapi-compliance=dbapi-compliance==1.15.0"  # dbapi20.py: PEP 249 conformance suite
      selenium=selenium tblib=tblib  # tblib: tracebacks from Django suite workers
      djangorestframework=djangorestframework  # DRF serializers of djongo.models' fields (tests)
      mockupdb=mockupdb  # simulated replica sets and mongos (tests/wire/test_topologies.py)
      django-debug-toolbar=django-debug-toolbar  # djongo.debug_toolbar.MongoPanel (tests/django/test_debug_toolbar.py)
      python-snappy=python-snappy backports.zstd=backports.zstd)  # pymongo's snappy / zstd compressors (backports.zstd: Python < 3.14, where compression.zstd is not built in) (tests/wire/test_compression.py)
need=()
for p in "${pips[@]}"; do
  name=${p%%=*} req=${p#*=}
  python3 - "$req" <<'PY' 2>/dev/null || need+=("$req")
import sys
from importlib.metadata import version
from packaging.requirements import Requirement
r = Requirement(sys.argv[1])
sys.exit(0 if r.specifier.contains(version(r.name), prereleases=True) else 1)
PY
done
if ((${#need[@]})); then
  echo "deps: installing PyPI packages: ${need[*]}"
  python3 -m pip install -q "${need[@]}"
fi

# The ORM benchmark's peers (bench/orm_ops.py, `deps.sh bench`): PostgreSQL
# (Debian's server, started by the benchmark on a Unix socket) with psycopg 3,
# MongoDB's own Django backend (the 5.2 series, for Django 5.2) against
# djongo-server, and matplotlib for the scaling plots.
if [ "${1:-}" = bench ]; then
  dpkg-query -W -f='${Status}' postgresql 2>/dev/null | grep -q "install ok installed" || {
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  }
  python3 -c 'import matplotlib, psycopg, django_mongodb_backend' 2>/dev/null ||
    python3 -m pip install -q matplotlib "psycopg[binary]" "django-mongodb-backend>=5.2,<5.3"
fi

# MongoDB's specification tests (unified-format JSON: crud/unified,
# transactions/unified, ...) ship in pymongo's sdist, test/. The test command
# takes them from the sdist of the installed pymongo version, unpacked into
# .cache/pymongo-sdist/pymongo-VERSION (ignored by git: test input only, never
# part of djongo's source); tests/wire/specdata.py finds them there, and
# tests/wire/pymongo_spec.py runs them with pymongo's own runner (its test/
# package) against djongo-server.
if [ "${1:-}" = tests ]; then
  cache=$(cd "$(dirname "$0")/.." && pwd)/.cache/pymongo-sdist
  ver=$(python3 -c 'import pymongo; print(pymongo.version)')
  if [ ! -d "$cache/pymongo-$ver/test/crud/unified" ]; then
    echo "deps: fetching pymongo $ver's sdist from PyPI (MongoDB's specification tests) into $cache"
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/pymongo-sdist-XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    python3 -m pip download -q --no-binary pymongo --no-deps "pymongo==$ver" -d "$tmp"
    tar xzf "$tmp/pymongo-$ver.tar.gz" -C "$tmp"
    for d in crud/unified transactions/unified sessions retryable_reads/unified retryable_writes/unified unified_format.py; do
      [ -e "$tmp/pymongo-$ver/test/$d" ] || { echo "deps: pymongo $ver's sdist has no test/$d" >&2; exit 1; }
    done
    mkdir -p "$cache"
    rm -rf "$cache"/pymongo-*  # an older version's
    mv "$tmp/pymongo-$ver" "$cache/"
  fi
fi
