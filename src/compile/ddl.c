/*
 * ddl.c -- CREATE / DROP / ALTER, and the transaction statements.
 *
 * Documents have no column types, defaults or NOT NULL: a table's columns,
 * declared types and NOT NULL columns are recorded in its entry in
 * __djongo_tables (the executor checks writes against NOT NULL; see
 * dj_exec.h); the rest becomes:
 *   CREATE TABLE t (...)      {create: t} + {createIndexes} for PRIMARY KEY and UNIQUE
 *   DROP TABLE [IF EXISTS] t  {drop: t} (IF EXISTS: NamespaceNotFound counts as success)
 *   CREATE [UNIQUE] INDEX i ON t (a, b DESC) [WHERE ...]
 *                             {createIndexes: t, indexes: [{key, name, unique, partialFilterExpression}]}
 *   CREATE INDEX i ON t (a HASHED, b)   key {a: "hashed", b: 1}: a hashed index
 *   CREATE INDEX i ON t (a GEOSPHERE, b) key {a: "2dsphere", b: 1}; (a GEO2D): {a: "2d"}
 *   CREATE INDEX i ON t (a) WITH (expireAfterSeconds = n)   a TTL index (expireAfterSeconds: n)
 *   DROP INDEX i ON t         {dropIndexes: t, index: i}
 *   ALTER TABLE t ADD c ... DEFAULT v    backfill: {update: t, q: {c: {$exists: false}}, u: {$set: {c: v}}}
 *   ALTER TABLE t DROP c                 {update: t, u: {$unset: {c: ""}}}
 *   ALTER TABLE t RENAME c TO d          {update: t, u: {$rename: {c: d}}}
 *   ALTER TABLE t RENAME TO u            {renameCollection: "db.t", to: "db.u"} (admin)
 *   ALTER TABLE t ADD CONSTRAINT n UNIQUE (a, b)   createIndexes, named n
 *   CHECK (e), on a column or the table  {create: t, validator} + the entry's checks;
 *                                        ALTER TABLE: the entry, then the executor's collMod
 *   [CONSTRAINT n] FOREIGN KEY / REFERENCES   the entry's fks (the executor checks writes)
 *   ALTER TABLE t DROP CONSTRAINT n      dropIndexes n, or the entry's check / foreign key n
 *   ALTER TABLE t ALTER c TYPE x          convert_column (values SQL would convert) + the entry
 *     [AUTOINCREMENT]                     the entry's auto: c, or (without) no longer c
 *   ALTER TABLE t ALTER c [SET|DROP] NOT NULL           the entry only
 *   ALTER TABLE t ALTER c SET DEFAULT v / DROP DEFAULT  the entry's defaults.c set / unset
 *   c ... GENERATED ALWAYS AS (e) STORED   the entry's generated: {c: e as an aggregation
 *                                          expression}; the executor computes c on every
 *                                          INSERT and UPDATE (src/exec/generated.c);
 *                                          ALTER TABLE ADD: also {update: t, u: [{$set: {c: e}}]}
 *
 * UNIQUE over a nullable column: SQL lets any number of rows hold NULL
 * there, a MongoDB unique index would let one. Such indexes get a
 * partialFilterExpression that leaves NULL and missing values out
 * (MongoDB manual, "Unique Constraint" under Partial Indexes).
 */
#include <stdio.h>
#include <string.h>

#include "compile-private.h"

#define DJ_TABLES DJ_TABLES_COLLECTION

static bool update_default (cx_t *cx, const char *table, const dj_coldef_t *c);
static bool update_table_columns (cx_t *cx, const char *table, const char *op, const char *from, const char *to,
                                  const char *type);

static const char *const non_null_types[] = {"double", "string", "object", "array", "binData", "objectId", "bool",
                                             "date", "int", "timestamp", "long", "decimal", "regex", NULL};

static const dj_coldef_t *
find_coldef (const dj_sql_stmt_t *st, const char *name)
{
   for (int i = 0; i < st->coldefs.n; i++) {
      const dj_coldef_t *c = st->coldefs.v[i];
      if (!strcmp (c->name, name)) {
         return c;
      }
   }
   return NULL;
}

/* Per-column key kinds of index_spec (NULL: all ascending). */
enum { KEY_ASC, KEY_DESC, KEY_HASHED, KEY_2DSPHERE, KEY_2D, KEY_TEXT };

/* A generated column, c GENERATED ALWAYS AS (e) [STORED | VIRTUAL]: e as
 * an aggregation expression over the row into gen[c] (a missing result
 * stored as NULL). SQLite and PostgreSQL give such a column no DEFAULT and
 * no PRIMARY KEY, and a subquery would read other rows. A VIRTUAL column
 * (SQLite's default: computed when read) is stored as a STORED one is,
 * computed by every INSERT and UPDATE of its row (src/exec/generated.c):
 * MongoDB has no field computed when read, and since e reads only its own
 * row's columns, the value its row's last write computed is the value a read
 * would compute. Parameters are bound into the expression as values. */
static bool
nondeterministic (const dj_expr_t *e, const void *ctx)
{
   (void) ctx;
   return e->kind == DJ_X_FUNC && (!strcmp (e->name, "RANDOM") || !strcmp (e->name, "NOW"));
}

/* A generated column's or an index's expression must give a row the same
 * value whenever it is computed: RANDOM() and NOW() (CURRENT_TIMESTAMP)
 * are refused with SQLite's words (https://www.sqlite.org/deterministic.html:
 * "non-deterministic functions prohibited in index expressions"), as
 * PostgreSQL refuses what is not IMMUTABLE -- an error of the statement,
 * not a construct djongo lacks. */
static bool
deterministic (cx_t *cx, const dj_expr_t *e, const char *where)
{
   return !cx_expr_any (e, nondeterministic, NULL) ||
          cx_fail (cx, DJ_SQL_SYNTAX, e->pos, "non-deterministic functions prohibited in %s", where);
}

static bool
generated_expr (cx_t *cx, const char *table, const dj_coldef_t *c, bson_t *gen)
{
   if (c->default_value || c->primary_key || c->autoincrement) {
      return cx_unsupported (cx, c->generated->pos, "a generated column with a DEFAULT, PRIMARY KEY or AUTOINCREMENT");
   }
   if (cx_has_subquery (c->generated)) {
      return cx_unsupported (cx, c->generated->pos, "a subquery in a generated column");
   }
   if (!deterministic (cx, c->generated, "generated columns")) {
      return false;
   }
   cx_single_source (cx, table, NULL);
   return cx_agg_value_or_null (cx, c->generated, gen, c->name);
}

/* One index spec {key, name, unique[, expireAfterSeconds][,
 * partialFilterExpression]} into `indexes`; ttl NULL: not a TTL index. */
static bool
index_spec (cx_t *cx, bson_t *indexes, uint32_t i, const char *name, char *const *cols, const int *kind, int ncols,
            bool unique, bool nullable, const int64_t *ttl, const dj_expr_t *where, const bson_t *extra)
{
   cx_idx_t k;
   bson_t spec, key;
   bool ok = true;
   BSON_APPEND_DOCUMENT_BEGIN (indexes, cx_idx (&k, i), &spec);
   BSON_APPEND_DOCUMENT_BEGIN (&spec, "key", &key);
   for (int c = 0; c < ncols; c++) {
      if (cols[c][0] == '$' || !cols[c][0]) {
         ok = cx_unsupported (cx, 0, "column name \"%s\" cannot be a MongoDB field name", cols[c]);
      }
      if (kind && kind[c] == KEY_HASHED) {
         BSON_APPEND_UTF8 (&key, cols[c], "hashed");
      } else if (kind && (kind[c] == KEY_2DSPHERE || kind[c] == KEY_2D)) {
         BSON_APPEND_UTF8 (&key, cols[c], kind[c] == KEY_2D ? "2d" : "2dsphere");
      } else if (kind && kind[c] == KEY_TEXT) {
         BSON_APPEND_UTF8 (&key, cols[c], "text");
      } else {
         BSON_APPEND_INT32 (&key, cols[c], kind && kind[c] == KEY_DESC ? -1 : 1);
      }
   }
   bson_append_document_end (&spec, &key);
   BSON_APPEND_UTF8 (&spec, "name", name);
   if (unique) {
      BSON_APPEND_BOOL (&spec, "unique", true);
   }
   if (ttl) {
      BSON_APPEND_INT64 (&spec, "expireAfterSeconds", *ttl);
   }
   if (extra) {
      bson_concat (&spec, extra);
   }
   if (ok && where) {
      ok = cx_filter (cx, where, true, &spec, "partialFilterExpression");
   } else if (ok && unique && nullable) {
      bson_t pf, f, types;
      BSON_APPEND_DOCUMENT_BEGIN (&spec, "partialFilterExpression", &pf);
      for (int c = 0; c < ncols; c++) {
         BSON_APPEND_DOCUMENT_BEGIN (&pf, cols[c], &f);
         BSON_APPEND_ARRAY_BEGIN (&f, "$type", &types);
         for (uint32_t t = 0; non_null_types[t]; t++) {
            BSON_APPEND_UTF8 (&types, cx_idx (&k, t), non_null_types[t]);
         }
         bson_append_array_end (&f, &types);
         bson_append_document_end (&pf, &f);
      }
      bson_append_document_end (&spec, &pf);
   }
   bson_append_document_end (indexes, &spec);
   return ok;
}

static bool
simple_command (cx_t *cx, const char *name, const char *value, int32_t ignore)
{
   bson_t *cmd = bson_new ();
   BSON_APPEND_UTF8 (cmd, name, value);
   return cx_add_command (cx, cmd, ignore, false);
}

/* DROP INDEX, ALTER TABLE DROP CONSTRAINT */
static bool
drop_index (cx_t *cx, const char *table, const char *name, int32_t ignore)
{
   return cx_add_command (
      cx, cx_template_new (cx, "{'dropIndexes': '@0', 'index': '@1'}", CX_ARGS (CX_STR (table), CX_STR (name))), ignore,
      false);
}

/* A column's COLLATE name is one djongo knows (cx_collation_spec). */
static bool
known_collation (cx_t *cx, const char *name)
{
   bson_t probe = BSON_INITIALIZER;
   bool ok = cx_collation_spec (cx, 0, name, &probe, "c");
   bson_destroy (&probe);
   return ok;
}

/* A unique index compares bytes: a column whose collation takes
 * different strings as equal (nocase, levels 1 and 2) cannot have one
 * that keeps SQL's rule, so it is refused (PostgreSQL's deterministic
 * collations, which djongo's others are, tell apart every two strings). */
static bool
unique_collation_ok (cx_t *cx, const dj_coldef_t *c)
{
   if (c->collation && !cx_collation_deterministic (c->collation)) {
      return cx_unsupported (cx, 0, "UNIQUE on column \"%s\" with the non-deterministic collation \"%s\"", c->name,
                             c->collation);
   }
   return true;
}

/* The extra field of a PRIMARY KEY's index on one INTEGER column (SQLite's
 * rule: a type name holding "INT"; NULL otherwise): djongoRecordKeyed, the
 * embedded engine's ask to key the table's records by it (its values are
 * the record ids: src/engine/storage/ridkey.c). The transport takes it out
 * for a server that does not announce it (a MongoDB server). */
static const bson_t *
record_keyed (const dj_coldef_t *c, bson_t *extra)
{
   if (!c || !c->type || !strstr (c->type, "INT")) {
      return NULL;
   }
   bson_init (extra);
   BSON_APPEND_BOOL (extra, "djongoRecordKeyed", true);
   return extra;
}

/* Whether c is a key whose rows' _ids are its values: an AUTOINCREMENT
 * INTEGER PRIMARY KEY NOT NULL (Django's AutoField). The table's _id index
 * is then asked record-keyed beside the key's (constraint_indexes), and
 * its entry says idkey: each INSERT gives a row its key as its _id
 * (src/exec/exec.c's with_id_doc), so that a row has no ObjectId, and on
 * the embedded engine no _id index entry, of its own. */
static bool
key_is_id (const dj_coldef_t *c)
{
   return c && c->primary_key && c->not_null && c->autoincrement && c->type && strstr (c->type, "INT");
}

/* Indexes for a table's (or an added column's) PRIMARY KEY / UNIQUE parts. */
static bool
constraint_indexes (cx_t *cx, const dj_sql_stmt_t *st)
{
   bson_t *cmd = bson_new (), indexes, extra = BSON_INITIALIZER;
   uint32_t n = 0;
   bool ok = true;
   char name[256];
   BSON_APPEND_UTF8 (cmd, "createIndexes", st->table);
   BSON_APPEND_ARRAY_BEGIN (cmd, "indexes", &indexes);
   for (int i = 0; ok && i < st->coldefs.n; i++) {
      dj_coldef_t *c = st->coldefs.v[i];
      if (!(c->primary_key || c->unique) || !strcmp (c->name, "_id")) {
         continue; /* _id is unique already */
      }
      if (!unique_collation_ok (cx, c)) {
         bson_destroy (cmd);
         return false;
      }
      snprintf (name, sizeof name, "%s_%s_%s", st->table, c->name, c->primary_key ? "pk" : "uniq");
      bool keyed = c->primary_key && c->not_null;
      if (key_is_id (c)) {
         /* {key: {_id: 1}, name: "_id_", djongoRecordKeyed: true} */
         static char *const id_field[] = {(char *) "_id"};
         ok = index_spec (cx, &indexes, n++, "_id_", id_field, NULL, 1, false, false, NULL, NULL, record_keyed (c, &extra));
      }
      ok = ok && index_spec (cx, &indexes, n++, name, &c->name, NULL, 1, true, !c->not_null, NULL, NULL,
                             keyed ? record_keyed (c, &extra) : NULL);
   }
   for (int i = 0; ok && i < st->constraints.n; i++) {
      const dj_tconstraint_t *tc = st->constraints.v[i];
      if (tc->check || tc->ref_table) {
         continue; /* the table's entry holds those (record_constraints) */
      }
      bool nullable = false;
      for (int c = 0; c < tc->columns.n; c++) {
         const dj_coldef_t *cd = find_coldef (st, tc->columns.v[c]);
         nullable |= !tc->primary_key && (!cd || !cd->not_null); /* unknown column (ALTER): assume nullable */
         if (cd && !unique_collation_ok (cx, cd)) {
            bson_destroy (cmd);
            return false;
         }
      }
      if (tc->primary_key && tc->columns.n == 1 && !strcmp (tc->columns.v[0], "_id")) {
         continue;
      }
      if (tc->name) {
         bson_strncpy (name, tc->name, sizeof name);
      } else {
         snprintf (name, sizeof name, "%s_%s_%s", st->table, (char *) tc->columns.v[0], tc->primary_key ? "pk" : "uniq");
      }
      bool keyed = tc->primary_key && tc->columns.n == 1 && !tc->where;
      ok = index_spec (cx, &indexes, n++, name, (char *const *) tc->columns.v, NULL, tc->columns.n, true, nullable, NULL,
                       tc->where, keyed ? record_keyed (find_coldef (st, tc->columns.v[0]), &extra) : NULL);
   }
   bson_destroy (&extra);
   bson_append_array_end (cmd, &indexes);
   if (!ok || n == 0) {
      bson_destroy (cmd);
      return ok;
   }
   return cx_add_command (cx, cmd, 0, false);
}

/* {update: table, updates: [tpl]}: one update, `tpl` the template of
 * its {q, u, multi: true} (see template.c). */
static bool
update_many (cx_t *cx, const char *table, const char *tpl, const cx_arg_t *args, int nargs)
{
   bson_t *cmd = bson_new (), ups;
   BSON_APPEND_UTF8 (cmd, "update", table);
   BSON_APPEND_ARRAY_BEGIN (cmd, "updates", &ups);
   bool ok = cx_template (cx, tpl, args, nargs, &ups, "0");
   bson_append_array_end (cmd, &ups);
   return cx_add_command_if (cx, ok, cmd);
}

/* {op: {field: value}} on the table's entry ($set a type, $addToSet or
 * $pull a NOT NULL column). */
static bool
update_entry (cx_t *cx, const char *table, const char *op, const char *field, const char *value)
{
   return update_many (cx, DJ_TABLES, "{'q': {'table': '@0'}, 'u': {'@1': {'@2': '@3'}}, 'multi': true}",
                       CX_ARGS (CX_STR (table), CX_STR (op), CX_STR (field), CX_STR (value)));
}

/* ALTER COLUMN c TYPE t: the stored values SQL would convert, converted
 * in place -- a number becomes text for a text type, numeric text or
 * another number becomes a number for a numeric type, ISO text becomes a
 * date for a date type, an integer becomes a boolean -- each with
 * $convert's onError keeping what does not convert (SQL would refuse the
 * ALTER; here the rows keep the value and the new type is recorded all the
 * same). https://www.mongodb.com/docs/manual/reference/operator/aggregation/convert/ */
static bool
convert_column (cx_t *cx, const char *table, const char *column, const char *type)
{
   static const struct {
      const char *prefix, *to, *from;
   } rules[] = {
      {"VARCHAR", "string", "['int', 'long', 'double', 'decimal']"},
      {"CHAR", "string", "['int', 'long', 'double', 'decimal']"},
      {"TEXT", "string", "['int', 'long', 'double', 'decimal']"},
      {"BIGINT", "long", "['string', 'int', 'double', 'decimal']"},
      {"SMALLINT", "long", "['string', 'double', 'decimal']"},
      {"INT", "long", "['string', 'double', 'decimal']"},
      {"REAL", "double", "['string', 'int', 'long', 'decimal']"},
      {"DOUBLE", "double", "['string', 'int', 'long', 'decimal']"},
      {"FLOAT", "double", "['string', 'int', 'long', 'decimal']"},
      {"DECIMAL", "decimal", "['string', 'int', 'long', 'double']"},
      {"NUMERIC", "decimal", "['string', 'int', 'long', 'double']"},
      {"DATE", "date", "['string']"},
      {"TIMESTAMP", "date", "['string']"},
      {"BOOL", "bool", "['int', 'long']"},
      {NULL, NULL, NULL}};
   for (int i = 0; rules[i].prefix; i++) {
      if (strncmp (type, rules[i].prefix, strlen (rules[i].prefix))) {
         continue;
      }
      /* the column as the template's argument: a field path of the table */
      dj_expr_t col = {.kind = DJ_X_COLUMN, .name = (char *) column};
      cx_single_source (cx, table, NULL);
      char *tpl = bson_strdup_printf (
         "{'q': {'@0': {'$ne': null}}, 'u': [{'$set': {'@0': {'$cond': [{'$in': [{'$type': '@1'}, %s]}, "
         "{'$convert': {'input': '@1', 'to': '%s', 'onError': '@1'}}, '@1']}}}], 'multi': true}",
         rules[i].from, rules[i].to);
      bool ok = update_many (cx, table, tpl, CX_ARGS (CX_STR (column), CX_VALUE (&col)));
      bson_free (tpl);
      return ok;
   }
   return true; /* other types (uuid, blob, json, time...): values stay as they are */
}

/* ---- CHECK and FOREIGN KEY: the table's entry ----
 *
 * A CHECK is a collection validator. SQL's rule: a row passes when the
 * condition is TRUE or NULL (UNKNOWN), and fails only when it is FALSE; so
 * a check's validator is {$nor: [the filter of the rows where it is
 * FALSE]} (cx_filter with want = false keeps three-valued logic: a NULL or
 * missing column is in neither set). MongoDB holds one validator per
 * collection, so the table's entry keeps the list, checks: [{name,
 * columns, validator}], and the collection's validator is {$and: [each
 * validator]}: CREATE TABLE writes it with {create}, ALTER TABLE has the
 * executor rebuild it from the entry after the entry changed
 * (dj_mql_t.sync_checks). Violations fail with DocumentValidationFailure
 * (121), IntegrityError in the driver.
 * https://www.mongodb.com/docs/manual/core/schema-validation/specify-query-expression-rules/
 *
 * A FOREIGN KEY is recorded, fks: [{name, columns, table, to, deferred}]
 * (to: the referenced columns, [] for the referenced table's primary key):
 * the executor checks writes against them (src/exec/constraint.c), and
 * djongo/base.py's check_constraints() looks for rows that break them. */

static bool
check_reads (cx_t *cx, const dj_expr_t *e, bson_t *seen)
{
   if (!e) {
      return true;
   }
   switch (e->kind) {
   case DJ_X_COLUMN: {
      char name[256];
      bson_strncpy (name, e->name, sizeof name);
      char *dot = strchr (name, '.');
      if (dot) {
         *dot = '\0'; /* a path into a document reads its column */
      }
      bson_iter_t it;
      if (!bson_iter_init_find (&it, seen, name)) {
         BSON_APPEND_BOOL (seen, name, true);
      }
      return true;
   }
   case DJ_X_EXISTS: case DJ_X_IN_SELECT: case DJ_X_SUBQUERY:
      return cx_unsupported (cx, e->pos, "a subquery in a CHECK constraint");
   case DJ_X_PARAM:
      return cx_unsupported (cx, e->pos, "a parameter in a CHECK constraint (DDL takes literals)");
   default:
      break;
   }
   bool ok = check_reads (cx, e->a, seen) && check_reads (cx, e->b, seen) && check_reads (cx, e->c, seen);
   for (int i = 0; ok && i < e->args.n; i++) {
      ok = check_reads (cx, e->args.v[i], seen);
   }
   return ok;
}

/* Appends {name, columns, validator} for CHECK (e) on `table` to `arr` at
 * index i; and its validator to `all` (may be NULL) at the same index. */
static bool
check_entry (cx_t *cx, const char *table, const char *name, const dj_expr_t *e, bson_t *arr, uint32_t i, bson_t *all)
{
   bson_t seen = BSON_INITIALIZER, cols = BSON_INITIALIZER, v = BSON_INITIALIZER, nor, one;
   cx_idx_t k;
   bool ok = check_reads (cx, e, &seen);
   bson_iter_t it;
   uint32_t n = 0;
   bson_iter_init (&it, &seen);
   while (bson_iter_next (&it)) {
      BSON_APPEND_UTF8 (&cols, cx_idx (&k, n++), bson_iter_key (&it));
   }
   cx_single_source (cx, table, NULL);
   BSON_APPEND_ARRAY_BEGIN (&v, "$nor", &nor);
   ok = ok && cx_filter (cx, e, false, &nor, "0");
   bson_append_array_end (&v, &nor);
   if (ok) {
      BSON_APPEND_DOCUMENT_BEGIN (arr, cx_idx (&k, i), &one);
      BSON_APPEND_UTF8 (&one, "name", name);
      BSON_APPEND_ARRAY (&one, "columns", &cols);
      BSON_APPEND_DOCUMENT (&one, "validator", &v);
      bson_append_document_end (arr, &one);
      if (all) {
         BSON_APPEND_DOCUMENT (all, cx_idx (&k, i), &v);
      }
   }
   bson_destroy (&seen);
   bson_destroy (&cols);
   bson_destroy (&v);
   return ok;
}

/* Appends {name, columns, table, to, deferred} to `arr` at index i. */
static void
fk_entry (const char *name, char *const *cols, int ncols, const char *ref_table, char *const *to, int nto,
          bool deferred, bson_t *arr, uint32_t i)
{
   bson_t one, a;
   cx_idx_t k;
   BSON_APPEND_DOCUMENT_BEGIN (arr, cx_idx (&k, i), &one);
   BSON_APPEND_UTF8 (&one, "name", name);
   BSON_APPEND_ARRAY_BEGIN (&one, "columns", &a);
   for (int c = 0; c < ncols; c++) {
      BSON_APPEND_UTF8 (&a, cx_idx (&k, (uint32_t) c), cols[c]);
   }
   bson_append_array_end (&one, &a);
   BSON_APPEND_UTF8 (&one, "table", ref_table);
   BSON_APPEND_ARRAY_BEGIN (&one, "to", &a);
   for (int c = 0; c < nto; c++) {
      BSON_APPEND_UTF8 (&a, cx_idx (&k, (uint32_t) c), to[c]);
   }
   bson_append_array_end (&one, &a);
   BSON_APPEND_BOOL (&one, "deferred", deferred);
   bson_append_document_end (arr, &one);
}

/* A constraint's name into buf[256]: the one given, else `fmt` (two %s:
 * the table and a part) filled. */
static void
constraint_name (char *buf, const char *given, const char *fmt, const char *table, const char *part)
{
   if (given) {
      bson_strncpy (buf, given, 256);
   } else {
      snprintf (buf, 256, fmt, table, part);
   }
}

/* The CHECK and FOREIGN KEY parts of a CREATE TABLE or an ALTER TABLE ADD
 * (column or constraint): their entries into `checks` and `fks` (arrays),
 * the checks' validators into `all` (may be NULL). */
static bool
record_constraints (cx_t *cx, const dj_sql_stmt_t *st, bson_t *checks, bson_t *fks, bson_t *all)
{
   uint32_t nc = 0, nf = 0;
   char name[256];
   for (int i = 0; i < st->coldefs.n; i++) {
      const dj_coldef_t *c = st->coldefs.v[i];
      if (c->check) {
         constraint_name (name, c->check_name, "%s_%s_check", st->table, c->name);
         if (!check_entry (cx, st->table, name, c->check, checks, nc++, all)) {
            return false;
         }
      }
      if (c->ref_table) {
         snprintf (name, sizeof name, "%s_%s_fk", st->table, c->name);
         fk_entry (name, &c->name, 1, c->ref_table, &c->ref_column, c->ref_column ? 1 : 0, c->ref_deferred, fks, nf++);
      }
   }
   for (int i = 0; i < st->constraints.n; i++) {
      const dj_tconstraint_t *tc = st->constraints.v[i];
      if (tc->check) {
         char nth[16];
         snprintf (nth, sizeof nth, "check_%u", nc);
         constraint_name (name, tc->name, "%s_%s", st->table, nth);
         if (!check_entry (cx, st->table, name, tc->check, checks, nc++, all)) {
            return false;
         }
      } else if (tc->ref_table) {
         constraint_name (name, tc->name, "%s_%s_fk", st->table, (char *) tc->columns.v[0]);
         fk_entry (name, (char *const *) tc->columns.v, tc->columns.n, tc->ref_table, (char *const *) tc->ref_columns.v,
                   tc->ref_columns.n, tc->ref_deferred, fks, nf++);
      }
   }
   return true;
}

/* ALTER TABLE ADD (a column or a constraint): its CHECKs and FOREIGN KEYs
 * pushed onto the entry's lists; the executor then rebuilds the validator. */
static bool
alter_add_constraints (cx_t *cx, const dj_sql_stmt_t *st)
{
   bson_t checks = BSON_INITIALIZER, fks = BSON_INITIALIZER;
   bool ok = record_constraints (cx, st, &checks, &fks, NULL);
   if (ok && !bson_empty (&checks)) {
      ok = update_many (cx, DJ_TABLES, "{'q': {'table': '@0'}, 'u': {'$push': {'checks': {'$each': '@1'}}}, 'multi': true}",
                        CX_ARGS (CX_STR (st->table), CX_ARRAY (&checks)));
      cx->out->sync_checks = true;
   }
   if (ok && !bson_empty (&fks)) {
      ok = update_many (cx, DJ_TABLES, "{'q': {'table': '@0'}, 'u': {'$push': {'fks': {'$each': '@1'}}}, 'multi': true}",
                        CX_ARGS (CX_STR (st->table), CX_ARRAY (&fks)));
   }
   bson_destroy (&checks);
   bson_destroy (&fks);
   return ok;
}

/* ALTER TABLE DROP CONSTRAINT n: an index (UNIQUE, PRIMARY KEY) or a
 * CHECK / FOREIGN KEY of the entry. The index's IndexNotFound is ignored
 * when the entry has a constraint of that name (the executor decides:
 * dj_mql_t.constraint). */
static bool
drop_constraint (cx_t *cx, const dj_sql_stmt_t *st)
{
   cx->out->constraint = bson_strdup (st->name);
   cx->out->sync_checks = true;
   return drop_index (cx, st->table, st->name, DJ_IndexNotFound) &&
          update_many (cx, DJ_TABLES,
                       "{'q': {'table': '@0'}, 'u': {'$pull': {'checks': {'name': '@1'}, 'fks': {'name': '@1'}}}, 'multi': true}",
                       CX_ARGS (CX_STR (st->table), CX_STR (st->name)));
}

/* DROP COLUMN c: out of the entry's NOT NULL list; the CHECKs that read c
 * and the FOREIGN KEYs over it go with it (as SQLite and PostgreSQL drop a
 * dropped column's constraints). */
static bool
drop_column_constraints (cx_t *cx, const dj_sql_stmt_t *st)
{
   cx->out->sync_checks = true;
   return update_many (
      cx, DJ_TABLES,
      "{'q': {'table': '@0'}, 'u': {'$pull': {'notnull': '@1', 'checks': {'columns': '@1'}, 'fks': {'columns': '@1'}}}, 'multi': true}",
      CX_ARGS (CX_STR (st->table), CX_STR (st->column)));
}

/* RENAME COLUMN c TO d: the FOREIGN KEYs of other tables that reference
 * c follow (their `to`). */
static bool
rename_referenced_column (cx_t *cx, const dj_sql_stmt_t *st)
{
   return update_many (cx, DJ_TABLES,
                       "{'q': {'fks.table': '@0'}, 'u': {'$set': {'fks.$[f].to.$[c]': '@2'}}, "
                       "'arrayFilters': [{'f.table': '@0'}, {'c': '@1'}], 'multi': true}",
                       CX_ARGS (CX_STR (st->table), CX_STR (st->column), CX_STR (st->name)));
}

static bool
reads_column (const dj_expr_t *e, const void *ctx)
{
   (void) ctx;
   return e->kind == DJ_X_COLUMN || e->kind == DJ_X_STAR || e->sub;
}

/* A DEFAULT expression is "variable-free": no column of the row, no
 * subquery (https://www.postgresql.org/docs/current/sql-createtable.html,
 * DEFAULT). */
static bool
variable_free (cx_t *cx, const dj_expr_t *e)
{
   return !cx_expr_any (e, reads_column, NULL) ||
          cx_unsupported (cx, e->pos, "a DEFAULT that reads a column or a subquery");
}

static bool
compile_alter (cx_t *cx, const dj_sql_stmt_t *st)
{
   bson_t *cmd;
   switch (st->alter) {
   case DJ_ALTER_ADD_COLUMN: {
      const dj_coldef_t *c = st->coldefs.v[0];
      if (c->name[0] == '$' || strchr (c->name, '.')) {
         return cx_unsupported (cx, 0, "column name \"%s\" cannot be a MongoDB field name", c->name);
      }
      if (c->default_value && !cx_is_const (c->default_value) && !variable_free (cx, c->default_value)) {
         return false;
      }
      if (c->generated) {
         /* existing rows get the column computed, then the entry records it */
         bson_t gen = BSON_INITIALIZER, u = BSON_INITIALIZER, set;
         char *gf = bson_strdup_printf ("generated.%s", c->name);
         bson_iter_t it;
         bool ok = generated_expr (cx, st->table, c, &gen) && bson_iter_init_find (&it, &gen, c->name);
         if (ok) {
            /* {$set: {generated.c: e}}: a plain $set stores e as it is */
            BSON_APPEND_DOCUMENT_BEGIN (&u, "$set", &set);
            bson_append_iter (&set, gf, -1, &it);
            bson_append_document_end (&u, &set);
         }
         ok = ok && update_many (cx, st->table, "{'q': {}, 'u': [{'$set': '@0'}], 'multi': true}", CX_ARGS (CX_DOC (&gen))) &&
              update_many (cx, DJ_TABLES, "{'q': {'table': '@0'}, 'u': '@1', 'multi': true}",
                           CX_ARGS (CX_STR (st->table), CX_DOC (&u)));
         bson_free (gf);
         bson_destroy (&gen);
         bson_destroy (&u);
         if (!ok) {
            return false;
         }
      }
      if (c->default_value && !cx_is_const (c->default_value)) {
         /* an expression (Django's db_default=Pi()): computed for each
          * existing row, as PostgreSQL computes a volatile DEFAULT for each
          * and Django's SQLite backend copies the rows with it; INSERTs
          * get it from Django (record_default) */
         cx_single_source (cx, st->table, NULL);
         if (!update_many (cx, st->table, "{'q': {'@0': {'$exists': false}}, 'u': [{'$set': {'@0': '@1'}}], 'multi': true}",
                           CX_ARGS (CX_STR (c->name), CX_VALUE (c->default_value)))) {
            return false;
         }
      } else if (c->default_value && !cx_const_is_null (cx, c->default_value)) {
         /* existing rows get the default, as SQL gives it to them */
         if (!update_many (cx, st->table, "{'q': {'@0': {'$exists': false}}, 'u': {'$set': {'@0': '@1'}}, 'multi': true}",
                           CX_ARGS (CX_STR (c->name), CX_CONST (c->default_value)))) {
            return false;
         }
      } else if (cx->error && cx->error->domain) {
         return false;
      }
      if (c->collation && !known_collation (cx, c->collation)) {
         return false;
      }
      char *cf = bson_strdup_printf ("collations.%s", c->name);
      bool ok = constraint_indexes (cx, st) && update_table_columns (cx, st->table, "$push", c->name, NULL, c->type) &&
                (!(c->not_null || c->primary_key) || update_entry (cx, st->table, "$addToSet", "notnull", c->name)) &&
                (!c->default_value || cx_const_is_null (cx, c->default_value) || update_default (cx, st->table, c)) &&
                (!c->collation || update_entry (cx, st->table, "$set", cf, c->collation)) && alter_add_constraints (cx, st);
      bson_free (cf);
      return ok;
   }
   case DJ_ALTER_DROP_COLUMN:
   case DJ_ALTER_RENAME_COLUMN: {
      bool drop = st->alter == DJ_ALTER_DROP_COLUMN;
      if (st->column[0] == '$' || (!drop && (st->name[0] == '$' || strchr (st->name, '.')))) {
         return cx_unsupported (cx, 0, "column name cannot be a MongoDB field name");
      }
      if (drop) {
         cx->out->drop_column = bson_strdup (st->column); /* its indexes go (dj_mql_t.drop_column) */
      } else {
         /* the entry's CHECKs and FOREIGN KEYs follow (dj_mql_t.rename_from) */
         cx->out->rename_from = bson_strdup (st->column);
         cx->out->rename_to = bson_strdup (st->name);
         cx->out->sync_checks = true;
      }
      return update_many (cx, st->table, "{'q': {'@0': {'$exists': true}}, 'u': {'@1': {'@0': '@2'}}, 'multi': true}",
                          CX_ARGS (CX_STR (st->column), CX_STR (drop ? "$unset" : "$rename"),
                                   CX_STR (drop ? "" : st->name))) &&
             update_table_columns (cx, st->table, "$pull", st->column, drop ? NULL : st->name, NULL) &&
             cx_dt_alter_column (cx, st->table, st->column, drop ? NULL : st->name) && /* its "__us" (exact_dt.c) */
             (drop ? drop_column_constraints (cx, st) : rename_referenced_column (cx, st));
   }
   case DJ_ALTER_RENAME_TABLE: {
      cmd = cx_template_new (cx, "{'renameCollection': '@0.@1', 'to': '@0.@2'}",
                             CX_ARGS (CX_STR (cx->db), CX_STR (st->table), CX_STR (st->name)));
      /* the entry (and its counter) moves with the table, and the
       * FOREIGN KEYs of other tables that reference it follow */
      return cx_add_command (cx, cmd, 0, true) && update_entry (cx, st->table, "$set", "table", st->name) &&
             update_many (cx, DJ_TABLES,
                          "{'q': {'fks.table': '@0'}, 'u': {'$set': {'fks.$[f].table': '@1'}}, "
                          "'arrayFilters': [{'f.table': '@0'}], 'multi': true}",
                          CX_ARGS (CX_STR (st->table), CX_STR (st->name)));
   }
   case DJ_ALTER_ADD_CONSTRAINT:
      return constraint_indexes (cx, st) && alter_add_constraints (cx, st);
   case DJ_ALTER_DROP_CONSTRAINT:
      return drop_constraint (cx, st);
   case DJ_ALTER_ALTER_COLUMN: {
      /* the entry follows (introspection, and the NOT NULL the executor
       * checks); a new type converts the values SQL would (convert_column) */
      const dj_coldef_t *c = st->coldefs.n ? st->coldefs.v[0] : NULL;
      if (!c) {
         return true;
      }
      if (c->type) {
         if (c->name[0] == '$' || strchr (c->name, '.')) {
            return cx_unsupported (cx, 0, "column name \"%s\" cannot be a MongoDB field name", c->name);
         }
         /* TYPE t [COLLATE n]: the column's collation is n, or none (as
          * PostgreSQL's ALTER ... TYPE gives the type's default) */
         bool ok = !c->collation || known_collation (cx, c->collation);
         char *tf = bson_strdup_printf ("types.%s", c->name), *cf = bson_strdup_printf ("collations.%s", c->name);
         ok = ok && convert_column (cx, st->table, c->name, c->type) &&
              update_many (cx, DJ_TABLES,
                           c->collation ? "{'q': {'table': '@0'}, 'u': {'$set': {'@1': '@2', '@3': '@4'}}, 'multi': true}"
                                        : "{'q': {'table': '@0'}, 'u': {'$set': {'@1': '@2'}, '$unset': {'@3': ''}}, 'multi': true}",
                           CX_ARGS (CX_STR (st->table), CX_STR (tf), CX_STR (c->type), CX_STR (cf),
                                    CX_STR (c->collation ? c->collation : "")));
         /* the new type says whether c numbers itself (Django's AutoField
          * <-> IntegerField): the entry's auto becomes c, or stops being
          * it; a table has one AUTOINCREMENT column, the last declared.
          * The counter goes past the largest id stored (dj_exec.h). */
         ok = ok && update_many (cx, DJ_TABLES,
                                 c->autoincrement ? "{'q': {'table': '@0'}, 'u': {'$set': {'auto': '@1'}}, 'multi': true}"
                                                  : "{'q': {'table': '@0', 'auto': '@1'}, 'u': {'$set': {'auto': null}}, 'multi': true}",
                                 CX_ARGS (CX_STR (st->table), CX_STR (c->name)));
         bson_free (tf);
         bson_free (cf);
         return ok;
      }
      if (c->not_null || c->drop_not_null) {
         return update_entry (cx, st->table, c->not_null ? "$addToSet" : "$pull", "notnull", c->name);
      }
      if (c->default_value || c->drop_default) {
         return update_default (cx, st->table, c);
      }
      return true;
   }
   }
   return cx_unsupported (cx, 0, "ALTER TABLE form");
}

/* An index on expressions (Django's Index(Lower("name")),
 * UniqueConstraint(Lower("name"))): MongoDB indexes fields, so each
 * expression part is a hidden stored generated column,
 * __djongo_ix_<index>_<k> (k counting the expression parts from 0; at most
 * IX_PARTS), computed for the existing rows now and by every INSERT and
 * UPDATE after (the entry's generated, src/exec/generated.c), and the
 * index is on it. It is no table column (the entry's columns do not list
 * it: SELECT * leaves it out). A UNIQUE one leaves NULL out, as SQL's
 * does. DROP INDEX takes the hidden columns away (drop_expr_index). */
#define IX_PARTS 8

static void
hidden_name (char *buf, size_t size, const char *index, int k)
{
   snprintf (buf, size, "__djongo_ix_%s_%d", index, k);
}

/* A text index's options (`col TEXT WEIGHT n`, WITH (default_language =
 * 'x', language_override = 'y')) into out: weights, default_language,
 * language_override -- literals, as MongoDB's createIndexes takes them.
 * https://www.mongodb.com/docs/manual/core/indexes/index-types/index-text/ */
static bool
text_options (cx_t *cx, const dj_sql_stmt_t *st, bson_t *out)
{
   bson_t w;
   bool any = false;
   for (int i = 0; i < st->columns.n; i++) {
      const dj_order_t *o = st->columns.v[i];
      any |= o->text;
      if (!o->weight) {
         continue;
      }
      if ((o->weight->kind != DJ_X_INT && o->weight->kind != DJ_X_FLOAT) || o->expr->kind != DJ_X_COLUMN) {
         return cx_unsupported (cx, o->weight->pos, "a text index WEIGHT other than a number on a column");
      }
   }
   if (!any) {
      if (st->default_language || st->language_override) {
         const dj_expr_t *x = st->default_language ? st->default_language : st->language_override;
         return cx_unsupported (cx, x->pos, "default_language or language_override on an index without TEXT keys");
      }
      return true;
   }
   BSON_APPEND_DOCUMENT_BEGIN (out, "weights", &w);
   for (int i = 0; i < st->columns.n; i++) {
      const dj_order_t *o = st->columns.v[i];
      if (o->text && o->weight && o->weight->kind == DJ_X_INT) { /* the engine checks the range */
         BSON_APPEND_INT64 (&w, o->expr->name, o->weight->ival);
      } else if (o->text && o->weight) {
         BSON_APPEND_DOUBLE (&w, o->expr->name, o->weight->dval);
      }
   }
   bson_append_document_end (out, &w);
   const dj_expr_t *opts[2] = {st->default_language, st->language_override};
   static const char *const names[2] = {"default_language", "language_override"};
   for (int k = 0; k < 2; k++) {
      if (!opts[k]) {
         continue;
      }
      if (opts[k]->kind != DJ_X_STRING) {
         return cx_unsupported (cx, opts[k]->pos, "%s other than a string literal", names[k]);
      }
      BSON_APPEND_UTF8 (out, names[k], opts[k]->name);
   }
   return true;
}

static bool
compile_create_index (cx_t *cx, const dj_sql_stmt_t *st)
{
   char *cols[64], hidden[IX_PARTS][300];
   int kind[64];
   int64_t ttl = 0;
   int nh = 0;
   bson_t gen = BSON_INITIALIZER;
   bool ok = true;
   if (st->columns.n > 64) {
      return cx_unsupported (cx, 0, "an index on more than 64 columns");
   }
   if (st->expire_after) {
      /* the engine (or MongoDB) checks the range and the single field */
      if (st->expire_after->kind != DJ_X_INT) {
         return cx_unsupported (cx, st->expire_after->pos, "expireAfterSeconds other than an integer literal");
      }
      ttl = st->expire_after->ival;
   }
   cx_single_source (cx, st->table, NULL);
   for (int i = 0; ok && i < st->columns.n; i++) {
      const dj_order_t *o = st->columns.v[i];
      const dj_expr_t *x = o->expr;
      kind[i] = o->hashed ? KEY_HASHED : o->geo == 1 ? KEY_2DSPHERE : o->geo == 2 ? KEY_2D : o->text ? KEY_TEXT : o->desc ? KEY_DESC : KEY_ASC;
      if (cx_is_collate (x) && ((const dj_expr_t *) x->args.v[0])->kind == DJ_X_COLUMN) {
         /* c COLLATE n (Django's Index(Collate("c", n))): the index on c --
          * an index orders no results here, and a unique one compares bytes,
          * which is the collation's equality when it is deterministic */
         const char *name = ((const dj_expr_t *) x->args.v[1])->name;
         if (!known_collation (cx, name)) {
            ok = false;
            break;
         }
         if (st->unique && !cx_collation_deterministic (name)) {
            ok = cx_unsupported (cx, x->pos, "a UNIQUE index under the non-deterministic collation \"%s\"", name);
            break;
         }
         x = x->args.v[0];
      }
      if (x->kind == DJ_X_COLUMN && strcmp (x->name, "*")) {
         cols[i] = x->name;
         continue;
      }
      if (nh == IX_PARTS || cx_has_subquery (x) || x->kind == DJ_X_STAR || x->kind == DJ_X_COLUMN) {
         ok = cx_unsupported (cx, x->pos, "an index on more than %d expressions, a subquery or *", IX_PARTS);
         break;
      }
      if (!(ok = deterministic (cx, x, "index expressions"))) {
         break;
      }
      if (strchr (st->name, '.')) {
         ok = cx_unsupported (cx, 0, "an index on expressions named with a '.' (%s)", st->name);
         break;
      }
      hidden_name (hidden[nh], sizeof hidden[nh], st->name, nh);
      ok = cx_agg_value_or_null (cx, x, &gen, hidden[nh]);
      cols[i] = hidden[nh++];
   }
   if (ok && nh) {
      /* the rows there are get the hidden columns, the entry records them */
      bson_t u = BSON_INITIALIZER, set;
      bson_iter_t it;
      BSON_APPEND_DOCUMENT_BEGIN (&u, "$set", &set);
      bson_iter_init (&it, &gen);
      while (bson_iter_next (&it)) {
         char key[320];
         snprintf (key, sizeof key, "generated.%s", bson_iter_key (&it));
         bson_append_value (&set, key, -1, bson_iter_value (&it));
      }
      bson_append_document_end (&u, &set);
      ok = update_many (cx, st->table, "{'q': {}, 'u': [{'$set': '@0'}], 'multi': true}", CX_ARGS (CX_DOC (&gen))) &&
           update_many (cx, DJ_TABLES, "{'q': {'table': '@0'}, 'u': '@1', 'multi': true}",
                        CX_ARGS (CX_STR (st->table), CX_DOC (&u)));
      bson_destroy (&u);
   }
   bson_destroy (&gen);
   if (!ok) {
      return false;
   }
   bson_t *cmd = bson_new (), indexes;
   BSON_APPEND_UTF8 (cmd, "createIndexes", st->table);
   BSON_APPEND_ARRAY_BEGIN (cmd, "indexes", &indexes);
   bson_t text = BSON_INITIALIZER;
   ok = text_options (cx, st, &text) &&
        index_spec (cx, &indexes, 0, st->name, cols, kind, st->columns.n, st->unique, nh > 0, st->expire_after ? &ttl : NULL,
                    st->where, &text);
   bson_destroy (&text);
   bson_append_array_end (cmd, &indexes);
   return cx_add_command_if (cx, ok, cmd);
}

/* DROP INDEX i: its hidden columns, if it was on expressions, leave the
 * rows and the entry ($unset of a field that is not there does nothing). */
static bool
drop_expr_index (cx_t *cx, const char *table, const char *index)
{
   bson_t rows = BSON_INITIALIZER, entry = BSON_INITIALIZER, q = BSON_INITIALIZER, e;
   char name[300], key[320];
   BSON_APPEND_DOCUMENT_BEGIN (&entry, "$unset", &e);
   bson_t r;
   BSON_APPEND_DOCUMENT_BEGIN (&rows, "$unset", &r);
   for (int k = 0; k < IX_PARTS; k++) {
      hidden_name (name, sizeof name, index, k);
      BSON_APPEND_UTF8 (&r, name, "");
      snprintf (key, sizeof key, "generated.%s", name);
      BSON_APPEND_UTF8 (&e, key, "");
   }
   bson_append_document_end (&rows, &r);
   bson_append_document_end (&entry, &e);
   hidden_name (name, sizeof name, index, 0);
   snprintf (key, sizeof key, "generated.%s", name);
   bson_t ex;
   BSON_APPEND_DOCUMENT_BEGIN (&q, name, &ex);
   BSON_APPEND_BOOL (&ex, "$exists", true);
   bson_append_document_end (&q, &ex);
   bool ok = update_many (cx, table, "{'q': '@0', 'u': '@1', 'multi': true}", CX_ARGS (CX_DOC (&q), CX_DOC (&rows))) &&
             update_many (cx, DJ_TABLES, "{'q': {'table': '@0', '@1': {'$exists': true}}, 'u': '@2', 'multi': true}",
                          CX_ARGS (CX_STR (table), CX_STR (key), CX_DOC (&entry)));
   bson_destroy (&rows);
   bson_destroy (&entry);
   bson_destroy (&q);
   return ok;
}

/* A column's DEFAULT v into defs as {c: v}, what the executor gives an
 * INSERT that leaves c out (src/exec/defaults.c). Only a constant is kept
 * (a parameter bound as one); DEFAULT NULL is nothing to record (a missing
 * field reads as NULL), nor is an expression (Django's db_default=Now():
 * Django's own INSERTs write its value, features.
 * supports_default_keyword_in_insert; ADD COLUMN computes one for the
 * existing rows). */
static bool
record_default (cx_t *cx, const dj_coldef_t *c, bson_t *defs)
{
   bson_value_t tmp;
   const bson_value_t *v;
   if (!cx_is_const (c->default_value)) {
      return true;
   }
   if (!cx_const_value (cx, c->default_value, &tmp, &v)) {
      return false;
   }
   return v->value_type == BSON_TYPE_NULL || BSON_APPEND_VALUE (defs, c->name, v);
}

/* ALTER TABLE: the entry's defaults.c set to c's DEFAULT, or unset (DROP
 * DEFAULT, DEFAULT NULL). */
static bool
update_default (cx_t *cx, const char *table, const dj_coldef_t *c)
{
   bson_t defs = BSON_INITIALIZER;
   bson_iter_t it;
   char *df = bson_strdup_printf ("defaults.%s", c->name);
   bool ok = c->drop_default || record_default (cx, c, &defs);
   if (ok && bson_iter_init_find (&it, &defs, c->name)) {
      bson_t u = BSON_INITIALIZER, set;
      BSON_APPEND_DOCUMENT_BEGIN (&u, "$set", &set);
      bson_append_iter (&set, df, -1, &it);
      bson_append_document_end (&u, &set);
      ok = update_many (cx, DJ_TABLES, "{'q': {'table': '@0'}, 'u': '@1', 'multi': true}",
                        CX_ARGS (CX_STR (table), CX_DOC (&u)));
      bson_destroy (&u);
   } else if (ok) {
      ok = update_many (cx, DJ_TABLES, "{'q': {'table': '@0'}, 'u': {'$unset': {'@1': ''}}, 'multi': true}",
                        CX_ARGS (CX_STR (table), CX_STR (df)));
   }
   bson_free (df);
   bson_destroy (&defs);
   return ok;
}

/* The table's entry in the tables collection: {table, columns: [names in
 * order], types: {name: declared type}, notnull: [NOT NULL columns], auto:
 * the AUTOINCREMENT column or null, seq: 0}, and idkey: true when the
 * rows' _ids are their keys (key_is_id) (dj_exec.h says how INSERTs use
 * it). A re-created table starts its counter again, as
 * SQLite's and PostgreSQL's do. */
static bool
record_table (cx_t *cx, const dj_sql_stmt_t *st, const bson_t *checks, const bson_t *fks)
{
   const dj_coldef_t *autoc = NULL;
   for (int i = 0; i < st->coldefs.n; i++) {
      const dj_coldef_t *c = st->coldefs.v[i];
      if (c->autoincrement) {
         if (autoc) {
            return cx_unsupported (cx, 0, "two AUTOINCREMENT columns in one table");
         }
         autoc = c;
      }
   }
   bson_t cols = BSON_INITIALIZER, types = BSON_INITIALIZER, notnull = BSON_INITIALIZER;
   cx_idx_t k;
   for (int i = 0, n = 0; i < st->coldefs.n; i++) {
      const dj_coldef_t *c = st->coldefs.v[i];
      BSON_APPEND_UTF8 (&cols, cx_idx (&k, (uint32_t) i), c->name);
      if (c->type) {
         BSON_APPEND_UTF8 (&types, c->name, c->type);
      }
      if (c->not_null || c->primary_key) {
         BSON_APPEND_UTF8 (&notnull, cx_idx (&k, (uint32_t) n++), c->name);
      }
   }
   /* IF NOT EXISTS over an existing table keeps its entry (and counter);
    * checks and fks only when the table has some */
   static const dj_expr_t null_value = {.kind = DJ_X_NULL};
   bool cons = !bson_empty (checks) || !bson_empty (fks);
   bool ok = update_many (
      cx, DJ_TABLES,
      cons ? "{'q': {'table': '@0'}, 'u': {'@1': {'columns': '@2', 'types': '@3', 'notnull': '@4', 'auto': '@5', 'seq': '@6', "
             "'idkey': '@9', 'checks': '@7', 'fks': '@8'}}, 'upsert': true}"
           : "{'q': {'table': '@0'}, 'u': {'@1': {'columns': '@2', 'types': '@3', 'notnull': '@4', 'auto': '@5', 'seq': '@6', "
             "'idkey': '@9'}}, 'upsert': true}",
      CX_ARGS (CX_STR (st->table), CX_STR (st->if_not_exists ? "$setOnInsert" : "$set"), CX_ARRAY (&cols), CX_DOC (&types),
               CX_ARRAY (&notnull), autoc ? CX_STR (autoc->name) : CX_CONST (&null_value), CX_INT64 (0), CX_ARRAY (checks),
               CX_ARRAY (fks), CX_BOOL (key_is_id (autoc))));
   bson_destroy (&cols);
   bson_destroy (&types);
   bson_destroy (&notnull);
   /* the stored generated columns, in CREATE TABLE order: generated {c:
    * e}; the columns' collations: collations {c: name} */
   bson_t gen = BSON_INITIALIZER, colls = BSON_INITIALIZER, defs = BSON_INITIALIZER, extra = BSON_INITIALIZER;
   for (int i = 0; ok && i < st->coldefs.n; i++) {
      const dj_coldef_t *c = st->coldefs.v[i];
      if (c->generated) {
         ok = generated_expr (cx, st->table, c, &gen);
      }
      if (ok && c->default_value) {
         ok = record_default (cx, c, &defs);
      }
      if (ok && c->collation) {
         ok = known_collation (cx, c->collation);
         BSON_APPEND_UTF8 (&colls, c->name, c->collation);
      }
   }
   if (!bson_empty (&gen)) {
      BSON_APPEND_DOCUMENT (&extra, "generated", &gen);
   }
   if (!bson_empty (&colls)) {
      BSON_APPEND_DOCUMENT (&extra, "collations", &colls);
   }
   if (!bson_empty (&defs)) {
      BSON_APPEND_DOCUMENT (&extra, "defaults", &defs);
   }
   if (ok && !bson_empty (&extra)) {
      ok = update_many (cx, DJ_TABLES, "{'q': {'table': '@0'}, 'u': {'@1': '@2'}, 'multi': true}",
                        CX_ARGS (CX_STR (st->table), CX_STR (st->if_not_exists ? "$setOnInsert" : "$set"), CX_DOC (&extra)));
   }
   bson_destroy (&gen);
   bson_destroy (&colls);
   bson_destroy (&defs);
   bson_destroy (&extra);
   return ok;
}

/* RENAME COLUMN: the column's type (tf -> tt) moves and so do its
 * generated expression and its collation, if it has them ($rename of a
 * missing field does nothing). */
static bool
rename_entry_fields (cx_t *cx, const char *table, const char *from, const char *to, const char *tf, const char *tt)
{
   char *gf = bson_strdup_printf ("generated.%s", from), *gt = bson_strdup_printf ("generated.%s", to);
   char *cf = bson_strdup_printf ("collations.%s", from), *ct = bson_strdup_printf ("collations.%s", to);
   char *df = bson_strdup_printf ("defaults.%s", from), *dt = bson_strdup_printf ("defaults.%s", to);
   bool ok = update_many (cx, DJ_TABLES,
                          "{'q': {'table': '@0'}, 'u': {'$rename': {'@1': '@2', '@3': '@4', '@5': '@6', '@7': '@8'}}, 'multi': true}",
                          CX_ARGS (CX_STR (table), CX_STR (tf), CX_STR (tt), CX_STR (gf), CX_STR (gt), CX_STR (cf), CX_STR (ct),
                                   CX_STR (df), CX_STR (dt)));
   bson_free (gf);
   bson_free (gt);
   bson_free (cf);
   bson_free (ct);
   bson_free (df);
   bson_free (dt);
   return ok;
}

/* ALTER TABLE ADD/DROP/RENAME COLUMN: the recorded column list and types
 * follow: {$push: {columns: c}, $set: {types.c: type}}, {$pull: {columns:
 * c}, $unset: {types.c}} or, for a rename, a pipeline. */
static bool
update_table_columns (cx_t *cx, const char *table, const char *op, const char *from, const char *to,
                      const char *type)
{
   char *tf = bson_strdup_printf ("types.%s", from), *tt = to ? bson_strdup_printf ("types.%s", to) : NULL;
   bool ok, add = !strcmp (op, "$push");
   if (to) {
      /* each list with the one name renamed (a missing list stays missing);
       * the type moves in a second update: a pipeline cannot $rename */
      ok = update_many (cx, DJ_TABLES,
                        "{'q': {'table': '@0'}, 'u': [{'$set': {"
                        "'columns': {'$map': {'input': '$columns', 'in': {'$cond': [{'$eq': ['$$this', {'$literal': '@1'}]}, {'$literal': '@2'}, '$$this']}}}, "
                        "'notnull': {'$map': {'input': '$notnull', 'in': {'$cond': [{'$eq': ['$$this', {'$literal': '@1'}]}, {'$literal': '@2'}, '$$this']}}}"
                        "}}], 'multi': true}",
                        CX_ARGS (CX_STR (table), CX_STR (from), CX_STR (to))) &&
           rename_entry_fields (cx, table, from, to, tf, tt);
   } else if (add && !type) {
      ok = update_many (cx, DJ_TABLES, "{'q': {'table': '@0'}, 'u': {'@1': {'columns': '@2'}}, 'multi': true}",
                        CX_ARGS (CX_STR (table), CX_STR (op), CX_STR (from)));
   } else if (add) {
      ok = update_many (cx, DJ_TABLES, "{'q': {'table': '@0'}, 'u': {'$push': {'columns': '@1'}, '$set': {'@2': '@3'}}, 'multi': true}",
                        CX_ARGS (CX_STR (table), CX_STR (from), CX_STR (tf), CX_STR (type)));
   } else {
      /* a dropped generated column is no longer computed */
      char *gf = bson_strdup_printf ("generated.%s", from), *cf = bson_strdup_printf ("collations.%s", from);
      char *df = bson_strdup_printf ("defaults.%s", from);
      ok = update_many (cx, DJ_TABLES,
                        "{'q': {'table': '@0'}, 'u': {'$pull': {'columns': '@1'}, '$unset': {'@2': '', '@3': '', '@4': '', '@5': ''}}, "
                        "'multi': true}",
                        CX_ARGS (CX_STR (table), CX_STR (from), CX_STR (tf), CX_STR (gf), CX_STR (cf), CX_STR (df)));
      bson_free (gf);
      bson_free (cf);
      bson_free (df);
   }
   bson_free (tf);
   bson_free (tt);
   return ok;
}

/* {create: t[, validator: {$and: [each CHECK's]}]}, the indexes, the entry */
static bool
create_table (cx_t *cx, const dj_sql_stmt_t *st)
{
   bson_t checks = BSON_INITIALIZER, fks = BSON_INITIALIZER, all = BSON_INITIALIZER;
   bool ok = record_constraints (cx, st, &checks, &fks, &all);
   if (ok) {
      bson_t *cmd = bson_new (), v;
      BSON_APPEND_UTF8 (cmd, "create", st->table);
      if (!bson_empty (&all)) {
         BSON_APPEND_DOCUMENT_BEGIN (cmd, "validator", &v);
         BSON_APPEND_ARRAY (&v, "$and", &all);
         bson_append_document_end (cmd, &v);
      }
      ok = cx_add_command (cx, cmd, st->if_not_exists ? DJ_NamespaceExists : 0, false) && constraint_indexes (cx, st) &&
           record_table (cx, st, &checks, &fks);
   }
   bson_destroy (&checks);
   bson_destroy (&fks);
   bson_destroy (&all);
   return ok;
}

static bool
forget_table (cx_t *cx, const char *table)
{
   return cx_add_command_if (
      cx, true,
      cx_template_new (cx, "{'delete': '@0', 'deletes': [{'q': {'table': '@1'}, 'limit': 0}]}",
                       CX_ARGS (CX_STR (DJ_TABLES), CX_STR (table))));
}

bool
cx_compile_ddl (cx_t *cx, const dj_sql_stmt_t *st)
{
   dj_mql_t *out = cx->out;
   out->kind = DJ_MQL_DDL;
   if (st->table) {
      out->collection = bson_strdup (st->table);
   }
   switch (st->kind) {
   case DJ_STMT_CREATE_TABLE:
      return st->view ? cx_compile_create_view (cx, st) : create_table (cx, st);
   case DJ_STMT_DROP_TABLE:
      return simple_command (cx, "drop", st->table, st->if_exists ? DJ_NamespaceNotFound : 0) &&
             forget_table (cx, st->table);
   case DJ_STMT_CREATE_INDEX:
      return compile_create_index (cx, st);
   case DJ_STMT_DROP_INDEX: {
      if (!st->table) {
         return cx_unsupported (cx, 0, "DROP INDEX without ON <table> (MongoDB index names belong to a collection)");
      }
      return drop_index (cx, st->table, st->name, st->if_exists ? DJ_IndexNotFound : 0) &&
             drop_expr_index (cx, st->table, st->name);
   }
   case DJ_STMT_ALTER_TABLE:
      return compile_alter (cx, st);
   default:
      out->kind = DJ_MQL_TXN;
      if (st->name) {
         out->name = bson_strdup (st->name);
      }
      return true;
   }
}
