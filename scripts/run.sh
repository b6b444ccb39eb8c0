#!/usr/bin/env bash
# The main job (README): the example Django site (example/) with its admin,
# on djongo's embedded MongoDB engine -- no MongoDB server needed. Builds and
# installs djongo (into ./.venv), migrates, creates the superuser and sample data
# (admin / admin unless DJANGO_SUPERUSER_USERNAME / _PASSWORD say otherwise),
# then serves http://127.0.0.1:8000/ (the admin at /admin/) until Ctrl-C.
# The data stays in ./var/site-data; PORT=8001 bash scripts/run.sh picks
# another port.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { echo "== [$1/5] $2"; }
step 1 "system and Python packages (scripts/deps.sh; nothing to do when they are there)"
bash scripts/deps.sh
# djongo goes into a virtualenv of the project (./.venv), not into the
# machine's Python; it sees the packages deps.sh installed (Django, ...)
step 2 "building djongo's C core and installing it into ./.venv (a minute or two the first time)"
[ -x .venv/bin/python ] || python3 -m venv --system-site-packages .venv
.venv/bin/python -m pip install --no-build-isolation --progress-bar off . 2>&1 |
  grep -E --line-buffered "^(Processing|Building|Successfully|ERROR|error)" || true
(cd example && ../.venv/bin/python -c 'import djongo.driver') ||  # (not from here: ./djongo is the source)
  { echo "run.sh: djongo did not install (see above)"; exit 1; }
export PATH="$PWD/.venv/bin:$PATH"
export DJONGO_HOST=${DJONGO_HOST:-$PWD/var/site-data}
mkdir -p "$(dirname "$DJONGO_HOST")"
cd example
step 3 "migrating the example site's database ($DJONGO_HOST)"
python manage.py migrate --no-input
step 4 "the superuser and sample data"
python manage.py seed
step 5 "serving"
echo
echo "The example site is at http://127.0.0.1:${PORT:-8000}/ and its admin at /admin/"
echo "(user ${DJANGO_SUPERUSER_USERNAME:-admin}). Its data is in $DJONGO_HOST, MongoDB database 'publishing':"
echo "  .venv/bin/djongo-sql --host $DJONGO_HOST --db publishing 'SELECT \"headline\" FROM \"blog_entry\"'"
echo "  .venv/bin/djongo-engine --dbpath $DJONGO_HOST --db publishing '{\"find\": \"blog_entry\"}'"
exec python manage.py runserver "127.0.0.1:${PORT:-8000}"
