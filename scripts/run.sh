#!/usr/bin/env bash
# The main job (README). Builds and installs djongo, then serves what exists
# today: the embedded engine on ./var/data, driven by djongo-engine. When the
# Django backend lands (issue "Django backend"), this becomes the example site
# with its admin on the embedded engine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
python3 -m pip install -q --no-build-isolation . 
mkdir -p var
data=var/data
djongo-engine --dbpath "$data" --db demo \
  '{"drop": "entries"}' \
  '{"createIndexes": "entries", "indexes": [{"key": {"headline": 1}, "name": "headline_1", "unique": true}]}' \
  '{"insert": "entries", "documents": [{"_id": 1, "headline": "Hello", "tags": ["intro", "news"], "blog": {"name": "Beatles Blog"}}, {"_id": 2, "headline": "Second post", "tags": ["news"], "rating": 4}]}' \
  '{"find": "entries", "filter": {"tags": "news"}, "sort": {"headline": -1}}' \
  '{"update": "entries", "updates": [{"q": {"_id": 2}, "u": {"$inc": {"rating": 1}, "$push": {"tags": "updated"}}}]}' \
  '{"find": "entries", "filter": {"rating": {"$gte": 5}}, "projection": {"headline": 1, "tags": 1}}'
echo
echo "djongo-engine is installed: run MongoDB commands against $data, e.g."
echo "  djongo-engine --dbpath $data --db demo '{\"find\": \"entries\"}'"
if [ -t 0 ]; then
  echo "Type commands as JSON, one per line (Ctrl-D to quit):"
  exec djongo-engine --dbpath "$data" --db demo
fi
