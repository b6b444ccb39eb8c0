#!/usr/bin/env bash
# Django 5.2's own test suite on djongo's embedded engine, per app, compared
# with SQLite in the same run (issue 17's measure). Long (hours): not part of
# scripts/test.sh; run it under nice.
#   bash scripts/django_suite.sh [APP ...]
# Without APPs: every app of Django's tests/ but gis_tests and postgres_tests,
# written to docs/django-suite.md; each app's full output (both databases) and
# the list of tests lost on djongo go to var/django-suite/.
# First, Django's cache tests on djongo.cache.MongoCache (run_cache_suite.py).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
python3 -m pip install -q --no-build-isolation .
python3 tests/django_suite/run_cache_suite.py 2>&1 | tail -1
exec python3 tests/django_suite/run_suite.py --logs var/django-suite "$@"
