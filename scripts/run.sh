#!/usr/bin/env bash
# The main job (README). Builds and installs djongo, then shows what exists
# today on ./var/data: MongoDB commands through djongo-engine, and SQL through
# djongo-sql (the compiler Django's backend will sit on); interactive SQL when
# run from a terminal. When the Django backend lands (issue "Django backend"),
# this becomes the example site with its admin on the embedded engine.
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
echo "== the same data directory through SQL (djongo-sql: SQL -> MongoDB commands)"
djongo-sql --host "$data" --db demo \
  'DROP TABLE IF EXISTS "blog"' \
  'CREATE TABLE "blog" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "name" varchar(100) NOT NULL UNIQUE, "rating" integer NULL)'
djongo-sql --host "$data" --db demo --params '["Beatles Blog", 5, "Cooking", null, "Darts", 3]' \
  'INSERT INTO "blog" ("name", "rating") VALUES (%s, %s), (%s, %s), (%s, %s) RETURNING "blog"."id", "blog"."name"'
djongo-sql --host "$data" --db demo \
  'SELECT "b"."name", "b"."rating" FROM "blog" "b" WHERE NOT ("b"."rating" > 4) ORDER BY "b"."name"' \
  'SELECT COUNT(*), AVG("b"."rating") FROM "blog" "b"'
djongo-sql translate 'SELECT "b"."name" FROM "blog" "b" WHERE "b"."rating" <> %s' --params '[5]'
echo
echo "djongo-engine is installed: run MongoDB commands against $data, e.g."
echo "  djongo-engine --dbpath $data --db demo '{\"find\": \"entries\"}'"
echo "and SQL with djongo-sql, e.g."
echo "  djongo-sql --host $data --db demo 'SELECT \"blog\".\"name\" FROM \"blog\"'"
if [ -t 0 ]; then
  echo "Type SQL, one statement per line (Ctrl-D to quit):"
  exec djongo-sql --host "$data" --db demo
fi
