#!/usr/bin/env bash
# Django 5.2's own test suite on djongo's embedded engine, per app, compared
# with SQLite (issue 7's measure). Long: not part of scripts/test.sh.
#   bash scripts/django_suite.sh [APP ...]
# Writes docs/django-suite.md; each app's full output goes to var/django-suite/.
# First, Django's cache tests on djongo.cache.MongoCache (run_cache_suite.py).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
python3 -m pip install -q --no-build-isolation .
python3 tests/django_suite/run_cache_suite.py 2>&1 | tail -1
exec python3 tests/django_suite/run_suite.py --logs var/django-suite "$@"
