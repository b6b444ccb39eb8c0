/*
 * generated.c -- stored generated columns: c GENERATED ALWAYS AS (e) STORED
 * (Django's GeneratedField with db_persist=True).
 *
 * CREATE / ALTER TABLE record each one in the table's entry, generated:
 * {c: e as an aggregation expression over the row} (src/compile/ddl.c).
 * Every write computes them from the row's final values, inside the
 * statement's atomic unit, as one $set stage per column in CREATE TABLE
 * order (a column may read one defined before it, as SQLite allows):
 *  - INSERT: the documents go through {aggregate: 1, pipeline:
 *    [{$documents: docs}, {$set: {c: e}}, ...]} and the insert writes what
 *    comes back, so RETURNING reads the computed values (Django reads a
 *    GeneratedField back that way);
 *  - UPDATE: each update's u gets the stages after it: a plain {$set: S}
 *    becomes the pipeline [{$set: S, each value a $literal}, {$set: {c:
 *    e}}, ...] (pipeline updates: https://www.mongodb.com/docs/manual/tutorial/update-documents-with-aggregation-pipeline/);
 *  - INSERT ... ON CONFLICT DO UPDATE: a row that updated a stored one
 *    changed only the SET columns, so after the upserts the rows the
 *    statement's keys name are computed again by a pipeline update.
 * A statement that writes a generated column itself fails as in SQLite
 * ("cannot INSERT into generated column", ProgrammingError in the driver,
 * as PostgreSQL's GeneratedAlways is).
 */
#include <string.h>

#include "dj_bson_array.h"
#include "exec-private.h"

/* The table's generated columns as pipeline stages [{$set: {c: e}}, ...]
 * into *stages (initialised here when *has, to be destroyed by the
 * caller); *has false when the table has none. */
static bool
generated_stages (dj_exec_t *x, const char *table, bson_t *stages, bool *has, bson_error_t *error)
{
   bson_iter_t it, g;
   bool found;
   *has = false;
   if (!table || !exec_entry_field (x, table, "generated", &it, &found, error)) {
      return table == NULL;
   }
   if (!found || !BSON_ITER_HOLDS_DOCUMENT (&it) || !bson_iter_recurse (&it, &g)) {
      return true;
   }
   bson_init (stages);
   uint32_t n = 0;
   while (bson_iter_next (&g)) {
      char kb[16];
      const char *key;
      bson_t stage, set;
      bson_uint32_to_string (n++, &key, kb, sizeof kb);
      bson_append_document_begin (stages, key, -1, &stage);
      bson_append_document_begin (&stage, "$set", -1, &set);
      bson_append_iter (&set, NULL, 0, &g);
      bson_append_document_end (&stage, &set);
      bson_append_document_end (stages, &stage);
   }
   *has = n > 0;
   if (!*has) {
      bson_destroy (stages);
   }
   return true;
}

/* The first field of doc that is a generated column (a key of a stage's
 * $set), or NULL. */
static const char *
generated_in (const bson_t *stages, const bson_t *doc)
{
   bson_iter_t f, s;
   bson_iter_init (&f, doc);
   while (bson_iter_next (&f)) {
      char path[300];
      bson_snprintf (path, sizeof path, "$set.%s", bson_iter_key (&f));
      bson_iter_init (&s, stages);
      while (bson_iter_next (&s)) {
         bson_iter_t d;
         if (BSON_ITER_HOLDS_DOCUMENT (&s) && bson_iter_recurse (&s, &d) && bson_iter_find_descendant (&d, path, &d)) {
            return bson_iter_key (&f);
         }
      }
   }
   return NULL;
}

static bool
refuse (const char *verb, const char *col, bson_error_t *error)
{
   /* SQLite's words */
   return dj_error_set (error, DJ_DOMAIN_SQL, DJ_SQL_SYNTAX, "cannot %s generated column \"%s\"", verb, col);
}

/* Appends the documents of a cursor reply's batch to arr; returns the
 * cursor id (0: exhausted). */
static int64_t
take_documents (const bson_t *reply, const char *batch_key, bson_t *arr, uint32_t *n)
{
   bson_iter_t it, batch;
   int64_t id = 0;
   if (bson_iter_init (&it, reply) && bson_iter_find_descendant (&it, "cursor.id", &it)) {
      id = bson_iter_as_int64 (&it);
   }
   char path[32];
   bson_snprintf (path, sizeof path, "cursor.%s", batch_key);
   if (bson_iter_init (&it, reply) && bson_iter_find_descendant (&it, path, &it) && bson_iter_recurse (&it, &batch)) {
      bson_t doc;
      while (exec_next_document (&batch, &doc)) {
         char kb[16];
         const char *key;
         bson_uint32_to_string ((*n)++, &key, kb, sizeof kb);
         bson_append_document (arr, key, -1, &doc);
      }
   }
   return id;
}

/* INSERT: the documents of `cmd` (an insert) with the generated columns
 * computed, into a new command *out (owned by the caller). */
static bool
compute_inserted (dj_exec_t *x, const bson_t *cmd, const bson_t *stages, bson_t **out, bson_error_t *error)
{
   bson_iter_t it, d;
   if (!bson_iter_init_find (&it, cmd, "documents") || !bson_iter_recurse (&it, &d)) {
      *out = NULL;
      return true;
   }
   bson_t agg = BSON_INITIALIZER, pipe, stage, cursor, docs = BSON_INITIALIZER, reply;
   uint32_t n = 0, nin = 0;
   bson_t doc;
   while (exec_next_document (&d, &doc)) {
      const char *col = generated_in (stages, &doc);
      if (col) {
         bson_destroy (&agg);
         bson_destroy (&docs);
         return refuse ("INSERT into", col, error);
      }
      nin++;
   }
   BSON_APPEND_INT32 (&agg, "aggregate", 1);
   BSON_APPEND_ARRAY_BEGIN (&agg, "pipeline", &pipe);
   BSON_APPEND_DOCUMENT_BEGIN (&pipe, "0", &stage);
   bson_append_iter (&stage, "$documents", -1, &it);
   bson_append_document_end (&pipe, &stage);
   bson_iter_t s;
   bson_iter_init (&s, stages);
   uint32_t k = 1;
   while (bson_iter_next (&s)) {
      char kb[16];
      const char *key;
      bson_uint32_to_string (k++, &key, kb, sizeof kb);
      bson_append_value (&pipe, key, -1, bson_iter_value (&s));
   }
   bson_append_array_end (&agg, &pipe);
   BSON_APPEND_DOCUMENT_BEGIN (&agg, "cursor", &cursor);
   bson_append_document_end (&agg, &cursor);
   bool ok = exec_run_cmd (x, x->db, &agg, false, &reply, error);
   int64_t id = ok ? take_documents (&reply, "firstBatch", &docs, &n) : 0;
   bson_destroy (&reply);
   while (ok && id != 0) {
      bson_t more = BSON_INITIALIZER;
      BSON_APPEND_INT64 (&more, "getMore", id);
      BSON_APPEND_UTF8 (&more, "collection", "$cmd.aggregate");
      ok = exec_run_cmd (x, x->db, &more, false, &reply, error);
      id = ok ? take_documents (&reply, "nextBatch", &docs, &n) : 0;
      bson_destroy (&reply);
      bson_destroy (&more);
   }
   bson_destroy (&agg);
   if (ok && n != nin) {
      ok = dj_error_set (error, DJ_DOMAIN_SERVER, DJ_InternalError,
                         "computing the generated columns of %u rows gave %u", nin, n);
   }
   if (!ok) {
      bson_destroy (&docs);
      return false;
   }
   *out = bson_new ();
   bson_iter_init (&it, cmd);
   while (bson_iter_next (&it)) {
      if (BSON_ITER_IS_KEY (&it, "documents")) {
         BSON_APPEND_ARRAY (*out, "documents", &docs);
      } else {
         bson_append_iter (*out, NULL, 0, &it);
      }
   }
   bson_destroy (&docs);
   return true;
}

/* What an update's u assigns: a plain {$set: S}'s S, or the first $set
 * stage of a pipeline (write.c makes no other forms); false for another. */
static bool
assigned (const bson_iter_t *u, bson_t *set)
{
   bson_iter_t it, rest;
   uint32_t len;
   const uint8_t *data;
   if (BSON_ITER_HOLDS_ARRAY (u)) {
      if (!(bson_iter_recurse (u, &it) && bson_iter_next (&it) && BSON_ITER_HOLDS_DOCUMENT (&it) &&
            bson_iter_recurse (&it, &it))) {
         return false;
      }
   } else if (!BSON_ITER_HOLDS_DOCUMENT (u) || !bson_iter_recurse (u, &it)) {
      return false;
   }
   if (!(bson_iter_next (&it) && BSON_ITER_IS_KEY (&it, "$set") && BSON_ITER_HOLDS_DOCUMENT (&it) &&
         (rest = it, !bson_iter_next (&rest)))) {
      return false;
   }
   bson_iter_document (&it, &len, &data);
   return bson_init_static (set, data, len);
}

/* UPDATE: one update's u (at `u`) followed by the stages, as parent.u; a
 * plain {$set: S} becomes a first stage setting S's values as literals. */
static bool
update_with_stages (const bson_iter_t *u, const bson_t *stages, bson_t *parent, bson_error_t *error)
{
   bson_t pipe, set, lit, stage, s;
   bson_iter_t it, f;
   uint32_t n = 0;
   if (!assigned (u, &s)) {
      return dj_error_set (error, DJ_DOMAIN_SERVER, DJ_InternalError,
                           "an UPDATE of a table with generated columns that is not a $set");
   }
   const char *col = generated_in (stages, &s);
   if (col) {
      return refuse ("UPDATE", col, error);
   }
   BSON_APPEND_ARRAY_BEGIN (parent, "u", &pipe);
   if (BSON_ITER_HOLDS_ARRAY (u)) {
      bson_iter_recurse (u, &it);
      n = dj_bson_array_append_rest (&pipe, n, &it);
   } else {
      bson_iter_init (&f, &s);
      bson_append_document_begin (&pipe, "0", -1, &stage);
      bson_append_document_begin (&stage, "$set", -1, &set);
      while (bson_iter_next (&f)) {
         bson_append_document_begin (&set, bson_iter_key (&f), -1, &lit);
         bson_append_value (&lit, "$literal", -1, bson_iter_value (&f));
         bson_append_document_end (&set, &lit);
      }
      bson_append_document_end (&stage, &set);
      bson_append_document_end (&pipe, &stage);
      n = 1;
   }
   bson_iter_init (&it, stages);
   dj_bson_array_append_rest (&pipe, n, &it);
   return bson_append_array_end (parent, &pipe);
}

/* UPDATE: `cmd` (an update) with the stages after each u, into *out. */
static bool
compute_updated (const bson_t *cmd, const bson_t *stages, bson_t **out, bson_error_t *error)
{
   bson_iter_t it, ups, f;
   bson_t *nc = bson_new (), arr, up;
   bool ok = true;
   bson_iter_init (&it, cmd);
   while (ok && bson_iter_next (&it)) {
      if (!BSON_ITER_IS_KEY (&it, "updates") || !bson_iter_recurse (&it, &ups)) {
         bson_append_iter (nc, NULL, 0, &it);
         continue;
      }
      bson_append_array_begin (nc, "updates", -1, &arr);
      while (ok && bson_iter_next (&ups)) {
         if (!bson_iter_recurse (&ups, &f)) {
            continue;
         }
         bson_append_document_begin (&arr, bson_iter_key (&ups), -1, &up);
         while (ok && bson_iter_next (&f)) {
            ok = BSON_ITER_IS_KEY (&f, "u") ? update_with_stages (&f, stages, &up, error) : bson_append_iter (&up, NULL, 0, &f);
         }
         bson_append_document_end (&arr, &up);
      }
      bson_append_array_end (nc, &arr);
   }
   if (!ok) {
      bson_destroy (nc);
      return false;
   }
   *out = nc;
   return true;
}

bool
exec_generated_before (dj_exec_t *x, dj_mql_t *m, bson_error_t *error)
{
   if (m->kind != DJ_MQL_WRITE || (m->stmt != DJ_STMT_INSERT && m->stmt != DJ_STMT_UPDATE)) {
      return true;
   }
   bson_t stages;
   bool has;
   if (!generated_stages (x, m->collection, &stages, &has, error)) {
      return false;
   }
   bool ok = true;
   for (int i = 0; ok && has && i < m->ncommands; i++) {
      bson_iter_t it;
      bson_t *nc = NULL;
      if (!bson_iter_init (&it, m->commands[i]) || !bson_iter_next (&it)) {
         continue;
      }
      if (m->stmt == DJ_STMT_INSERT && BSON_ITER_IS_KEY (&it, "insert")) {
         ok = compute_inserted (x, m->commands[i], &stages, &nc, error);
      } else if (m->stmt == DJ_STMT_UPDATE && BSON_ITER_IS_KEY (&it, "update")) {
         ok = compute_updated (m->commands[i], &stages, &nc, error);
      }
      if (nc) {
         bson_destroy (m->commands[i]);
         m->commands[i] = nc; /* m owns it */
      }
   }
   if (has) {
      bson_destroy (&stages);
   }
   return ok;
}

bool
exec_generated_after_upsert (dj_exec_t *x, const dj_mql_t *m, const bson_t *inserted, bson_error_t *error)
{
   bson_t stages;
   bool has;
   bson_iter_t it, keys, docs, k, v;
   if (!m->upsert || !inserted) {
      return true;
   }
   if (!generated_stages (x, m->collection, &stages, &has, error)) {
      return false;
   }
   if (!has) {
      return true;
   }
   /* {update: t, updates: [{q: {$or: [each row's keys]}, u: stages, multi: true}]} */
   bson_t cmd = BSON_INITIALIZER, ups, up, q, or, one, reply;
   uint32_t n = 0;
   BSON_APPEND_UTF8 (&cmd, "update", m->collection);
   BSON_APPEND_ARRAY_BEGIN (&cmd, "updates", &ups);
   BSON_APPEND_DOCUMENT_BEGIN (&ups, "0", &up);
   BSON_APPEND_DOCUMENT_BEGIN (&up, "q", &q);
   BSON_APPEND_ARRAY_BEGIN (&q, "$or", &or);
   if (bson_iter_init_find (&it, m->upsert, "keys") && bson_iter_recurse (&it, &keys) &&
       bson_iter_init_find (&it, inserted, "documents") && bson_iter_recurse (&it, &docs)) {
      bson_t doc;
      while (exec_next_document (&docs, &doc)) {
         char kb[16];
         const char *key;
         bson_uint32_to_string (n++, &key, kb, sizeof kb);
         bson_append_document_begin (&or, key, -1, &one);
         k = keys;
         while (bson_iter_next (&k)) {
            const char *col = bson_iter_utf8 (&k, NULL);
            bson_t eq;
            bson_append_document_begin (&one, col, -1, &eq);
            if (bson_iter_init_find (&v, &doc, col)) {
               bson_append_value (&eq, "$eq", -1, bson_iter_value (&v));
            } else {
               bson_append_null (&eq, "$eq", -1);
            }
            bson_append_document_end (&one, &eq);
         }
         bson_append_document_end (&or, &one);
      }
   }
   bson_append_array_end (&q, &or);
   bson_append_document_end (&up, &q);
   BSON_APPEND_ARRAY (&up, "u", &stages);
   BSON_APPEND_BOOL (&up, "multi", true);
   bson_append_document_end (&ups, &up);
   bson_append_array_end (&cmd, &ups);
   bool ok = n == 0 || exec_run_cmd (x, x->db, &cmd, false, &reply, error);
   if (n) {
      bson_destroy (&reply);
   }
   bson_destroy (&cmd);
   bson_destroy (&stages);
   return ok;
}
