#!/usr/bin/env bash
# The main job (README): the example Django site (example/) with its admin,
# on djongo's embedded MongoDB engine -- no MongoDB server needed. Builds and
# installs djongo, migrates, creates the superuser and sample data
# (admin / admin unless DJANGO_SUPERUSER_USERNAME / _PASSWORD say otherwise),
# then serves http://127.0.0.1:8000/ (the admin at /admin/) until Ctrl-C.
# The data stays in ./var/site-data; PORT=8001 bash scripts/run.sh picks
# another port.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
python3 -m pip install -q --no-build-isolation .
export DJONGO_HOST=${DJONGO_HOST:-$PWD/var/site-data}
cd example
python3 manage.py migrate --no-input
python3 manage.py seed
echo
echo "The example site is at http://127.0.0.1:${PORT:-8000}/ and its admin at /admin/"
echo "(user ${DJANGO_SUPERUSER_USERNAME:-admin}). Its data is in $DJONGO_HOST, MongoDB database 'publishing':"
echo "  djongo-sql --host $DJONGO_HOST --db publishing 'SELECT \"headline\" FROM \"blog_entry\"'"
echo "  djongo-engine --dbpath $DJONGO_HOST --db publishing '{\"find\": \"blog_entry\"}'"
exec python3 manage.py runserver "127.0.0.1:${PORT:-8000}"
