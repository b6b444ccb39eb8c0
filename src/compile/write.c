/*
 * write.c -- INSERT, UPDATE, DELETE -> insert / update / delete commands.
 *
 *   INSERT INTO t (a, b) VALUES (%s, %s), (...)   {insert: t, documents: [{a, b}, ...]}
 *   UPDATE t SET a = %s WHERE ...                 {update: t, updates: [{q, u: {$set}, multi: true}]}
 *   UPDATE t SET a = a + 1 WHERE ...              ... u: [{$set: {a: {$add: ["$a", 1]}}}] (pipeline update)
 *   DELETE FROM t WHERE ...                       {delete: t, deletes: [{q, limit: 0}]}
 *   INSERT ... ON CONFLICT (k) DO UPDATE SET ...  {update: t, updates: [{q: {k}, u: {$set, $setOnInsert},
 *                                                  upsert: true}, ...]} (made by the executor: upsert_spec)
 *
 * A NULL value is stored as null (not left out): `IS NULL` matches both,
 * and the document then shows every column the row was given. A parameter
 * that is BSON undefined is stored as undefined: a JSON column's top-level
 * JSON null, which must stay apart from SQL NULL (djongo/operations.py).
 * Integer primary keys are the driver's (a counter per table, issue 6): the
 * compiler inserts what the SQL names.
 */
#include <string.h>
#include <strings.h>

#include "compile-private.h"
#include "dj_bson_walk.h"

/* A column the statement writes to `table`: a name MongoDB can store as
 * a field, and one the table recorded ("no such column" otherwise, as in
 * SQLite: a write to a misspelt column must not store a field no SELECT
 * shows). */
static bool
column_ok (cx_t *cx, const char *table, const char *name, uint32_t pos)
{
   if (!name[0] || name[0] == '$' || strchr (name, '.')) {
      return cx_unsupported (cx, pos, "column name \"%s\" cannot be a MongoDB field name", name);
   }
   const cx_source_t target = {.alias = table, .table = table};
   const dj_expr_t col = {.kind = DJ_X_COLUMN, .name = (char *) name, .pos = pos};
   return cx_check_column (cx, &target, &col);
}

/* ON CONFLICT (keys) DO UPDATE SET c = EXCLUDED.s, ...: SQLite's upsert
 * (Django's bulk_create(update_conflicts=True, unique_fields=..,
 * update_fields=..)). Recorded in dj_mql_t.upsert as {keys: [..], set:
 * {c: s, ..}}; once the executor has the documents as they will be
 * inserted (ids given), dj_mql_to_upserts() turns the insert into one
 * upsert per row: q = the row's keys, $set = the SET columns from the
 * row, $setOnInsert = the rest of the row. So a row whose keys match a
 * stored row updates it, any other row is inserted; a row that breaks
 * another unique index fails with DuplicateKey as in SQLite. Only
 * EXCLUDED.<column> on the right (what Django writes); an expression of
 * the stored row would need a pipeline update, which cannot hold the
 * insert's $setOnInsert. */
static bool
upsert_spec (cx_t *cx, const dj_sql_stmt_t *st)
{
   if (st->conflict_where) {
      return cx_unsupported (cx, st->conflict_where->pos, "ON CONFLICT DO UPDATE ... WHERE");
   }
   bson_t *spec = bson_new (), keys, set;
   cx_idx_t k;
   bool ok = true;
   BSON_APPEND_ARRAY_BEGIN (spec, "keys", &keys);
   for (int i = 0; ok && i < st->conflict_target.n; i++) {
      ok = column_ok (cx, st->table, st->conflict_target.v[i], 0);
      BSON_APPEND_UTF8 (&keys, cx_idx (&k, (uint32_t) i), st->conflict_target.v[i]);
   }
   bson_append_array_end (spec, &keys);
   BSON_APPEND_DOCUMENT_BEGIN (spec, "set", &set);
   for (int i = 0; ok && i < st->conflict_sets.n; i++) {
      const dj_item_t *it = st->conflict_sets.v[i];
      const dj_expr_t *v = it->expr;
      if (v->kind != DJ_X_COLUMN || !v->table || strcasecmp (v->table, "EXCLUDED") || !strcmp (v->name, "*")) {
         ok = cx_unsupported (cx, v->pos, "ON CONFLICT DO UPDATE SET to something other than EXCLUDED.<column>");
      } else if (bson_has_field (&set, it->alias)) {
         ok = cx_unsupported (cx, v->pos, "column \"%s\" assigned twice in ON CONFLICT DO UPDATE", it->alias);
      } else {
         ok = column_ok (cx, st->table, it->alias, v->pos) && column_ok (cx, st->table, v->name, v->pos);
         BSON_APPEND_UTF8 (&set, it->alias, v->name);
         ok = ok && cx_dt_upsert_set (cx, st->table, it->alias, v->name, &set);
      }
   }
   bson_append_document_end (spec, &set);
   if (!ok) {
      bson_destroy (spec);
      return false;
   }
   cx->out->upsert = spec; /* owned by the dj_mql_t */
   return true;
}

static bool
compile_insert (cx_t *cx, const dj_sql_stmt_t *st)
{
   if (st->select) {
      return cx_unsupported (cx, st->select->pos, "INSERT ... SELECT");
   }
   /* without a column list, values are named by position; the executor
    * knows the table's columns (dj_mql_t.positional) */
   cx->out->positional = st->columns.n == 0 && st->rows.n && ((dj_list_t *) st->rows.v[0])->n;
   for (int i = 0; i < st->columns.n; i++) {
      if (!column_ok (cx, st->table, st->columns.v[i], 0)) {
         return false;
      }
      for (int j = 0; j < i; j++) {
         if (!strcmp (st->columns.v[i], st->columns.v[j])) {
            return cx_unsupported (cx, 0, "column \"%s\" named twice in INSERT", (char *) st->columns.v[i]);
         }
      }
   }
   /* expressions in VALUES (UPPER(%s), NOW(), a subquery: Django's
    * expressions in create()/bulk_create()): every value of every row is
    * computed by a first command, the SELECT without FROM of them all, row
    * after row (SELECT v00, v01, .., v10, ..: {aggregate: 1, pipeline:
    * [{$documents: [{}]}, .., {$project: {c0, c1, ..}}]}), and the
    * insert's documents hold null until the executor puts the results in
    * (dj_mql_set_values) -- so what follows (ids, NOT NULL, RETURNING)
    * sees plain values. SQL's VALUES see no table: a column there is an
    * error. */
   bool computed = false;
   int total = 0;
   for (int r = 0; r < st->rows.n; r++) {
      const dj_list_t *row = st->rows.v[r];
      for (int c = 0; c < row->n; c++) {
         computed |= !cx_is_const (row->v[c]);
      }
      total += row->n;
   }
   bson_t *cmd = bson_new (), docs;
   cx_idx_t k;
   bool ok = true;
   if (computed) {
      dj_item_t *items = bson_malloc0 (sizeof *items * (size_t) total);
      void **iv = bson_malloc (sizeof *iv * (size_t) total);
      int i = 0;
      for (int r = 0; r < st->rows.n; r++) {
         const dj_list_t *row = st->rows.v[r];
         for (int c = 0; c < row->n; c++, i++) {
            items[i].expr = row->v[c];
            iv[i] = &items[i];
         }
      }
      const dj_select_t values = {.items = {.v = iv, .n = total}};
      ok = cx_add_aggregate (cx, NULL, &values, CX_PIPE_KEEP_NULLS | CX_PIPE_NO_COLUMNS | CX_PIPE_VALUES);
      bson_free (iv);
      bson_free (items);
      if (!ok) {
         bson_destroy (cmd);
         return false;
      }
      cx->out->values_from = 1;
   }
   BSON_APPEND_UTF8 (cmd, "insert", st->table);
   BSON_APPEND_ARRAY_BEGIN (cmd, "documents", &docs);
   /* each row's document written as bytes into one buffer, reused, and
    * appended once (a bulk INSERT's thousands of values) */
   dj_buf_t b;
   dj_buf_init (&b);
   for (int r = 0; ok && r < st->rows.n; r++) {
      const dj_list_t *row = st->rows.v[r];
      bson_t doc;
      b.len = 0;
      dj_buf_put_u32le (&b, 0); /* the length, set below */
      for (int c = 0; ok && c < row->n; c++) {
         cx_idx_t ck;
         const char *col = cx->out->positional ? cx_idx (&ck, (uint32_t) c) : st->columns.v[c];
         static const bson_value_t null_v = {.value_type = BSON_TYPE_NULL};
         ok = computed ? dj_bson_put_scalar (&b, col, strlen (col), &null_v) : cx_put_stored (cx, row->v[c], &b, col);
      }
      dj_buf_putc (&b, 0);
      dj_le32_write (b.data, (uint32_t) b.len);
      ok = ok && bson_init_static (&doc, b.data, b.len) && bson_append_document (&docs, cx_idx (&k, (uint32_t) r), -1, &doc);
   }
   dj_buf_cleanup (&b);
   bson_append_array_end (cmd, &docs);
   if (ok && st->conflict_sets.n) {
      ok = upsert_spec (cx, st);
   }
   /* ignore_conflicts: unordered, so one duplicate does not stop the rest */
   BSON_APPEND_BOOL (cmd, "ordered", !st->ignore_conflicts);
   cx->out->ignore_duplicates = st->ignore_conflicts;
   cx->out->auto_ids = true;
   for (int i = 0; ok && i < st->returning.n; i++) {
      const dj_item_t *it = st->returning.v[i];
      if (it->expr->kind != DJ_X_COLUMN || !strcmp (it->expr->name, "*")) {
         ok = cx_unsupported (cx, it->expr->pos, "RETURNING something other than a column");
      } else {
         cx_add_column (cx, it->alias ? it->alias : it->expr->name, it->expr->name);
      }
   }
   return cx_add_command_if (cx, ok, cmd);
}

/* A subquery in the WHERE of UPDATE/DELETE: the write commands take a plain
 * filter, so a first aggregate finds the _ids of the matching rows (with
 * $lookup for the subqueries) and the write then targets {_id: {$in: ids}}
 * (the executor feeds one into the other: dj_mql_t.feed_to). Run inside a
 * transaction, as Django's atomic blocks do, the two see the same data. */
static bool
feed_ids_command (cx_t *cx, const dj_sql_stmt_t *st)
{
   dj_expr_t id = {.kind = DJ_X_COLUMN, .name = "_id", .table = (char *) cx->sources[0].alias};
   dj_item_t item = {.expr = &id};
   void *items[1] = {&item};
   dj_from_t from = {.name = st->table, .alias = st->alias, .join = DJ_JOIN_NONE};
   void *froms[1] = {&from};
   dj_select_t sel = {.items = {.v = items, .n = 1}, .from = {.v = froms, .n = 1}, .where = st->where};
   cx->out->feed_to = 1;
   return cx_add_aggregate (cx, st->table, &sel, CX_PIPE_SUBQUERY);
}

/* The q of a write: the WHERE as a filter, a placeholder the executor
 * replaces (feed_to), or {} for every row. */
static bool
write_filter (cx_t *cx, const dj_sql_stmt_t *st, bson_t *parent)
{
   if (cx->out->feed_to) {
      return cx_template (cx, "{'_id': {'$in': []}}", CX_NO_ARGS, parent, "q");
   }
   if (st->where) {
      return cx_filter (cx, st->where, true, parent, "q");
   }
   return cx_template (cx, "{}", CX_NO_ARGS, parent, "q");
}

static bool
set_target (cx_t *cx, const dj_sql_stmt_t *st)
{
   cx_single_source (cx, st->table, st->alias);
   if (cx_has_subquery (st->where) && !feed_ids_command (cx, st)) {
      return false;
   }
   if (st->returning.n) {
      return cx_unsupported (cx, ((dj_item_t *) st->returning.v[0])->expr->pos, "RETURNING in %s",
                             st->kind == DJ_STMT_UPDATE ? "UPDATE" : "DELETE");
   }
   return true;
}

static bool
compile_update (cx_t *cx, const dj_sql_stmt_t *st)
{
   if (!set_target (cx, st)) {
      return false;
   }
   bool all_const = true;
   for (int i = 0; i < st->sets.n; i++) {
      const dj_item_t *it = st->sets.v[i];
      if (cx_has_subquery (it->expr)) {
         return cx_unsupported (cx, it->expr->pos, "a subquery in UPDATE ... SET");
      }
      if (!column_ok (cx, st->table, it->alias, it->expr->pos)) {
         return false;
      }
      for (int j = 0; j < i; j++) {
         if (!strcmp (it->alias, ((dj_item_t *) st->sets.v[j])->alias)) {
            return cx_unsupported (cx, it->expr->pos, "column \"%s\" assigned twice in UPDATE", it->alias);
         }
      }
      all_const &= cx_is_const (it->expr);
   }
   bson_t *cmd = bson_new (), ups, up, set = BSON_INITIALIZER, unset = BSON_INITIALIZER;
   BSON_APPEND_UTF8 (cmd, "update", st->table);
   BSON_APPEND_ARRAY_BEGIN (cmd, "updates", &ups);
   BSON_APPEND_DOCUMENT_BEGIN (&ups, "0", &up);
   bool ok = write_filter (cx, st, &up);
   for (int i = 0; ok && i < st->sets.n; i++) {
      const dj_item_t *it = st->sets.v[i];
      bool done = false; /* an exact datetime: date and remainder (exact_dt.c) */
      ok = all_const || cx_dt_set_exact (cx, it->expr, &set, it->alias, &done);
      ok = ok && (done || (all_const ? cx_append_stored (cx, it->expr, &set, it->alias)
                                     : cx_agg_value (cx, it->expr, &set, it->alias)));
      ok = ok && cx_dt_set_rem (cx, st->table, it->alias, it->expr, !all_const, &set, &unset);
   }
   /* not all constants: a pipeline of one $set stage, where every
    * right-hand side sees the row before the UPDATE, as SQL requires
    * (SET a = b, b = a swaps) */
   ok = ok && cx_template (cx,
                           !all_const             ? "[{'$set': '@0'}]"
                           : bson_empty (&unset) ? "{'$set': '@0'}"
                                                  : "{'$set': '@0', '$unset': '@1'}",
                           CX_ARGS (CX_DOC (&set), CX_DOC (&unset)), &up, "u");
   BSON_APPEND_BOOL (&up, "multi", true);
   bson_append_document_end (&ups, &up);
   bson_append_array_end (cmd, &ups);
   bson_destroy (&set);
   bson_destroy (&unset);
   return cx_add_command_if (cx, ok, cmd);
}

static bool
compile_delete (cx_t *cx, const dj_sql_stmt_t *st)
{
   if (!set_target (cx, st)) {
      return false;
   }
   bson_t *cmd = bson_new (), dels, del;
   bool ok = true;
   BSON_APPEND_UTF8 (cmd, "delete", st->table);
   BSON_APPEND_ARRAY_BEGIN (cmd, "deletes", &dels);
   BSON_APPEND_DOCUMENT_BEGIN (&dels, "0", &del);
   ok = write_filter (cx, st, &del);
   BSON_APPEND_INT32 (&del, "limit", 0);
   bson_append_document_end (&dels, &del);
   bson_append_array_end (cmd, &dels);
   return cx_add_command_if (cx, ok, cmd);
}

/* SELECT ... FOR UPDATE: the rows' write lock is taken by writing them
 * inside the transaction -- a first command, before the read, that sets and
 * then unsets DJ_CLAIM_FIELD on every row the WHERE matches. The documents
 * end as they were, but each was written by this transaction, so on MongoDB
 * another transaction writing (or claiming) one of them gets WriteConflict
 * (112, TransientTransactionError) until this one ends, and so does this
 * one if another changed them since its snapshot. This is the manual's own
 * way to lock a document read in a transaction (an update that modifies
 * it), and a no-op update would not do, as MongoDB does not write a
 * document an update leaves unchanged (SERVER-77616).
 * https://www.mongodb.com/docs/manual/core/transactions-production-consideration/#in-progress-transactions-and-stale-reads
 * On the embedded engine the claim is the transaction's first write: it
 * takes the data directory's write lock (or fails with WriteConflict when
 * the snapshot is stale). The executor runs the claim only inside a
 * transaction (outside one a lock would end with the statement, as in
 * PostgreSQL).
 *
 * With a join (Django's update_or_create() through a many-to-many manager
 * or a multi-table-inherited model) or a subquery in WHERE, a first
 * aggregate finds the _ids of the first table's rows the query reads and
 * the claim targets those (dj_mql_t.feed_to). Only that table's rows are
 * claimed: a joined row another transaction changes is still not lost --
 * this transaction's write to it gets WriteConflict (MongoDB's snapshot
 * rule; on the embedded engine the write lock covers every table) -- where
 * PostgreSQL would have made the other wait. Refused: derived tables,
 * UNION & co., GROUP BY / HAVING / DISTINCT (PostgreSQL refuses those). */
bool
cx_compile_claim (cx_t *cx, const dj_sql_stmt_t *st)
{
   const dj_select_t *s = st->select;
   const dj_from_t *from = s->from.n ? s->from.v[0] : NULL;
   const char *why = NULL;
   if (!from || !from->name) {
      why = "FOR UPDATE needs a table (not a derived table) first in FROM";
   } else if (s->next) {
      why = "FOR UPDATE with UNION, INTERSECT or EXCEPT";
   } else if (s->group_by.n || s->having || s->distinct) {
      why = "FOR UPDATE with GROUP BY, HAVING or DISTINCT";
   }
   for (int i = 1; !why && i < s->from.n; i++) {
      if (!((const dj_from_t *) s->from.v[i])->name) {
         why = "FOR UPDATE with a derived table";
      }
   }
   if (why) {
      return cx_unsupported (cx, st->for_update_pos, "%s", why);
   }
   if (s->from.n > 1 || cx_has_subquery (s->where) || s->limit || s->offset) {
      /* SELECT <first table>._id FROM <the same FROM> WHERE <the same
       * WHERE> [ORDER BY .. LIMIT .. OFFSET ..]: with a LIMIT, exactly the
       * rows the read returns are claimed, as PostgreSQL locks them */
      dj_expr_t id = {.kind = DJ_X_COLUMN, .name = "_id", .table = from->alias ? from->alias : from->name};
      dj_item_t item = {.expr = &id};
      void *items[1] = {&item};
      dj_select_t ids = {.items = {.v = items, .n = 1}, .from = s->from, .where = s->where, .pos = s->pos};
      if (s->limit || s->offset) {
         ids.order_by = s->order_by;
         ids.limit = s->limit;
         ids.offset = s->offset;
      }
      cx->out->feed_to = 1;
      if (!cx_add_aggregate (cx, from->name, &ids, CX_PIPE_SUBQUERY)) {
         return false;
      }
      cx->nsub = 0; /* the read's pipeline numbers its own subquery $lookups */
   } else {
      cx_single_source (cx, from->name, from->alias);
   }
   bson_t *cmd = bson_new (), ups, up;
   bool ok = true;
   BSON_APPEND_UTF8 (cmd, "update", from->name);
   BSON_APPEND_ARRAY_BEGIN (cmd, "updates", &ups);
   for (int i = 0; ok && i < 2; i++) {
      BSON_APPEND_DOCUMENT_BEGIN (&ups, i ? "1" : "0", &up);
      if (cx->out->feed_to) {
         ok = cx_template (cx, "{'_id': {'$in': []}}", CX_NO_ARGS, &up, "q"); /* the executor fills it */
      } else {
         ok = s->where ? cx_filter (cx, s->where, true, &up, "q") : cx_template (cx, "{}", CX_NO_ARGS, &up, "q");
      }
      ok = ok && cx_template (cx, i ? "{'$unset': {'" DJ_CLAIM_FIELD "': ''}}" : "{'$set': {'" DJ_CLAIM_FIELD "': true}}",
                              CX_NO_ARGS, &up, "u");
      BSON_APPEND_BOOL (&up, "multi", true);
      bson_append_document_end (&ups, &up);
   }
   bson_append_array_end (cmd, &ups);
   if (!cx_add_command_if (cx, ok, cmd)) {
      return false;
   }
   cx->out->for_update = true;
   return true;
}

bool
cx_compile_write (cx_t *cx, const dj_sql_stmt_t *st)
{
   cx->out->kind = DJ_MQL_WRITE;
   cx->out->collection = bson_strdup (st->table);
   switch (st->kind) {
   case DJ_STMT_INSERT: return compile_insert (cx, st);
   case DJ_STMT_UPDATE: return compile_update (cx, st);
   case DJ_STMT_DELETE: return compile_delete (cx, st);
   default: return cx_unsupported (cx, 0, "statement");
   }
}
