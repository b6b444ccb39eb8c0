/*
 * compile.c -- plans, binding, and the dj_mql_t they produce.
 */
#include <string.h>

#include "compile-private.h"


dj_plan_t *
dj_plan_new (const char *sql, size_t len, bson_error_t *error)
{
   dj_sql_stmt_t *st = dj_sql_parse (sql, len, error);
   if (!st) {
      return NULL;
   }
   /* the process's count of plans made (atomic: plans are made by any
    * connection's thread; the only state shared, and only ever added to) */
   static uint64_t made;
   dj_plan_t *p = bson_malloc0 (sizeof *p);
   p->stmt = st;
   p->serial = __atomic_fetch_add (&made, 1, __ATOMIC_RELAXED);
   return p;
}

void
dj_plan_destroy (dj_plan_t *plan)
{
   if (plan) {
      dj_sql_stmt_destroy (plan->stmt);
      bson_free (plan);
   }
}

int
dj_plan_nparams (const dj_plan_t *plan)
{
   return plan->stmt->nparams;
}

const dj_sql_stmt_t *
dj_plan_stmt (const dj_plan_t *plan)
{
   return plan->stmt;
}

bool
cx_add_command (cx_t *cx, bson_t *cmd, int32_t ignore_code, bool admin)
{
   dj_mql_t *out = cx->out;
   if (out->ncommands == DJ_MQL_MAX_COMMANDS) {
      bson_destroy (cmd);
      return cx_unsupported (cx, 0, "a statement needing more than %d commands", DJ_MQL_MAX_COMMANDS);
   }
   out->ignore_code[out->ncommands] = ignore_code;
   out->admin[out->ncommands] = admin;
   out->commands[out->ncommands++] = cmd; /* steals cmd */
   return true;
}

bool
cx_add_command_if (cx_t *cx, bool ok, bson_t *cmd)
{
   if (!ok || !cmd) {
      bson_destroy (cmd); /* a half-built command: the error is set */
      return false;
   }
   return cx_add_command (cx, cmd, 0, false);
}

void
cx_single_source (cx_t *cx, const char *table, const char *alias)
{
   cx->nsources = 1;
   cx->sources[0].table = table;
   cx->sources[0].alias = alias ? alias : table;
   cx->sources[0].prefix[0] = '\0';
   cx->sources[0].sub = NULL;
}

void
cx_add_column (cx_t *cx, const char *name, const char *path)
{
   dj_mql_t *out = cx->out;
   out->columns = bson_realloc (out->columns, sizeof *out->columns * (size_t) (out->ncolumns + 1));
   out->columns[out->ncolumns].name = bson_strdup (name);
   out->columns[out->ncolumns].path = bson_strdup (path);
   out->columns[out->ncolumns].star_table = NULL;
   out->columns[out->ncolumns].us = false;
   out->ncolumns++;
}

void
cx_add_star_column (cx_t *cx, const char *table, const char *path)
{
   char *name = bson_strdup_printf ("%s.*", table);
   cx_add_column (cx, name, path);
   bson_free (name);
   cx->out->columns[cx->out->ncolumns - 1].star_table = bson_strdup (table);
}

/* EXPLAIN: the compiled read wrapped in MongoDB's explain command, the
 * plan being the one row (dj_mql_t.explain).
 * https://www.mongodb.com/docs/manual/reference/command/explain/ */
static bool
explain_read (dj_mql_t *out)
{
   dj_mql_drop_claim (out);
   bson_t *read = out->commands[out->ncommands - 1], *cmd = bson_new ();
   BSON_APPEND_DOCUMENT (cmd, "explain", read);
   BSON_APPEND_UTF8 (cmd, "verbosity", "queryPlanner");
   bson_destroy (read);
   out->commands[out->ncommands - 1] = cmd; /* owned */
   for (int i = 0; i < out->ncolumns; i++) {
      DJ_FREE (out->columns[i].name, out->columns[i].path, out->columns[i].star_table);
   }
   out->columns = bson_realloc (out->columns, sizeof *out->columns);
   out->ncolumns = 1;
   out->columns[0] = (dj_mql_column_t) {.name = bson_strdup ("QUERY PLAN"), .path = bson_strdup ("plan")};
   out->star = false;
   out->explain = true;
   return true;
}

bool
dj_plan_bind (const dj_plan_t *plan, const char *db, const bson_value_t *params, int nparams, dj_mql_t *out,
              bson_error_t *error)
{
   return dj_plan_bind_catalog (plan, db, NULL, params, nparams, out, error);
}

bool
dj_plan_bind_catalog (const dj_plan_t *plan, const char *db, const dj_catalog_t *catalog, const bson_value_t *params,
                      int nparams, dj_mql_t *out, bson_error_t *error)
{
   return cx_plan_bind (plan, db, catalog, params, nparams, out, NULL, error);
}

bool
cx_plan_bind (const dj_plan_t *plan, const char *db, const dj_catalog_t *catalog, const bson_value_t *params,
              int nparams, dj_mql_t *out, bool *values_read, bson_error_t *error)
{
   const dj_sql_stmt_t *st = plan->stmt;
   bool ok;

   if (nparams != st->nparams) {
      return dj_error_set (error, DJ_DOMAIN_SQL, DJ_SQL_PARAMS, "the statement takes %d parameter%s, %d given", st->nparams, st->nparams == 1 ? "" : "s",
                           nparams);
   }
   memset (out, 0, sizeof *out);
   out->stmt = st->kind;
   cx_t cx = {.params = params, .nparams = nparams, .values_read = values_read, .db = db ? db : "test", .error = error,
              .out = out, .catalog = catalog};
   if (error) {
      memset (error, 0, sizeof *error);
   }
   switch (st->kind) {
   case DJ_STMT_SELECT: {
      /* SELECT ... FROM (SELECT * ...): the * as recorded columns (schema.c) */
      cx_scratch_t mem = {0};
      dj_sql_stmt_t expanded = *st;
      expanded.select = (dj_select_t *) cx_expand_derived_stars (&cx, st->select, &mem);
      ok = cx_compile_select (&cx, &expanded) && (!st->explain || explain_read (out));
      cx_scratch_free (&mem);
      break;
   }
   case DJ_STMT_INSERT:
   case DJ_STMT_UPDATE:
   case DJ_STMT_DELETE:
      ok = cx_compile_write (&cx, st);
      break;
   default: {
      /* a DDL statement's expressions (CHECK, an index's) name the columns
       * it is creating, not yet recorded: none is refused (schema.c) */
      dj_catalog_t ddl = catalog ? *catalog : (dj_catalog_t) {0};
      ddl.columns = NULL;
      cx.catalog = catalog ? &ddl : NULL;
      ok = cx_compile_ddl (&cx, st);
      break;
   }
   }
   if (!ok) {
      dj_mql_cleanup (out);
   }
   return ok;
}

/* Copies `in`, replacing the q of each of its write statements (under
 * "updates" or "deletes": one for UPDATE/DELETE, two for a FOR UPDATE
 * claim) by {_id: {$in: ids}}. */
static void
copy_with_ids (const bson_t *in, const bson_t *ids, bson_t *out)
{
   bson_iter_t it;
   bson_iter_init (&it, in);
   while (bson_iter_next (&it)) {
      const char *k = bson_iter_key (&it);
      if ((!strcmp (k, "updates") || !strcmp (k, "deletes")) && BSON_ITER_HOLDS_ARRAY (&it)) {
         bson_iter_t a, f;
         bson_t arr, one, q, in_doc;
         bson_append_array_begin (out, k, -1, &arr);
         bson_iter_recurse (&it, &a);
         while (bson_iter_next (&a) && BSON_ITER_HOLDS_DOCUMENT (&a) && bson_iter_recurse (&a, &f)) {
            bson_append_document_begin (&arr, bson_iter_key (&a), -1, &one);
            while (bson_iter_next (&f)) {
               if (BSON_ITER_IS_KEY (&f, "q")) {
                  bson_append_document_begin (&one, "q", 1, &q);
                  bson_append_document_begin (&q, "_id", 3, &in_doc);
                  bson_append_array (&in_doc, "$in", 3, ids);
                  bson_append_document_end (&q, &in_doc);
                  bson_append_document_end (&one, &q);
               } else {
                  bson_append_iter (&one, NULL, 0, &f);
               }
            }
            bson_append_document_end (&arr, &one);
         }
         bson_append_array_end (out, &arr);
      } else {
         bson_append_iter (out, NULL, 0, &it);
      }
   }
}

void
dj_mql_feed_ids (dj_mql_t *mql, const bson_t *ids)
{
   if (mql->feed_to <= 0 || mql->feed_to >= mql->ncommands) {
      return;
   }
   bson_t *cmd = bson_new ();
   copy_with_ids (mql->commands[mql->feed_to], ids, cmd);
   bson_destroy (mql->commands[mql->feed_to]);
   mql->commands[mql->feed_to] = cmd;
}

bool
dj_mql_set_values (dj_mql_t *mql, const bson_t *rows)
{
   bson_iter_t it, docs, row, vals, field;
   /* one row: [v00, v01, .., v10, ..], the values row after row */
   if (mql->values_from != 1 || mql->ncommands != 2 || !bson_iter_init (&row, rows) || !bson_iter_next (&row) ||
       !BSON_ITER_HOLDS_ARRAY (&row) || !bson_iter_recurse (&row, &vals) ||
       !bson_iter_init_find (&it, mql->commands[1], "documents") || !bson_iter_recurse (&it, &docs)) {
      return false;
   }
   bson_t *cmd = bson_new (), arr;
   bool ok = true;
   bson_iter_init (&it, mql->commands[1]);
   while (ok && bson_iter_next (&it)) {
      if (!BSON_ITER_IS_KEY (&it, "documents")) {
         ok = bson_append_iter (cmd, NULL, 0, &it);
         continue;
      }
      bson_append_array_begin (cmd, "documents", -1, &arr);
      while (ok && bson_iter_next (&docs)) {
         bson_t doc;
         if (!(ok = BSON_ITER_HOLDS_DOCUMENT (&docs) && bson_iter_recurse (&docs, &field))) {
            break;
         }
         bson_append_document_begin (&arr, bson_iter_key (&docs), -1, &doc);
         while (ok && bson_iter_next (&field)) {
            /* (an exact datetime as its date and remainder: dj_compile.h) */
            ok = bson_iter_next (&vals) && dj_exact_dt_store (&doc, bson_iter_key (&field), bson_iter_value (&vals));
         }
         bson_append_document_end (&arr, &doc);
      }
      ok = ok && !bson_iter_next (&vals);
      bson_append_array_end (cmd, &arr);
   }
   if (!ok) {
      bson_destroy (cmd);
      return false;
   }
   bson_destroy (mql->commands[0]);
   bson_destroy (mql->commands[1]);
   mql->commands[0] = cmd; /* owned */
   mql->ncommands = 1;
   mql->ignore_code[0] = mql->ignore_code[1];
   mql->admin[0] = mql->admin[1];
   mql->values_from = 0;
   return true;
}

/* One upsert of dj_mql_to_upserts for document doc. */
static void
append_upsert (const bson_iter_t *keys, const bson_iter_t *set, const bson_t *doc, bson_t *parent, const char *key)
{
   bson_t up, q = BSON_INITIALIZER, u, part;
   bson_iter_t k, f, s;
   bool null_key = false;
   bson_append_document_begin (parent, key, -1, &up);
   bson_iter_recurse (keys, &k);
   while (bson_iter_next (&k)) {
      if (!bson_iter_init_find (&f, doc, bson_iter_utf8 (&k, NULL)) || BSON_ITER_HOLDS_NULL (&f)) {
         null_key = true;
      }
   }
   if (null_key) {
      BSON_APPEND_BOOL (&q, "$expr", false);
   } else {
      bson_iter_recurse (keys, &k);
      while (bson_iter_next (&k)) {
         bson_iter_init_find (&f, doc, bson_iter_utf8 (&k, NULL));
         /* {k: {$eq: v}}: a value that is a document stays a value */
         bson_t eq;
         bson_append_document_begin (&q, bson_iter_utf8 (&k, NULL), -1, &eq);
         bson_append_value (&eq, "$eq", 3, bson_iter_value (&f));
         bson_append_document_end (&q, &eq);
      }
   }
   bson_append_document (&up, "q", 1, &q);
   bson_append_document_begin (&up, "u", 1, &u);
   bson_append_document_begin (&u, "$set", 4, &part);
   bson_iter_recurse (set, &s);
   while (bson_iter_next (&s)) {
      if (bson_iter_init_find (&f, doc, bson_iter_utf8 (&s, NULL))) {
         bson_append_value (&part, bson_iter_key (&s), -1, bson_iter_value (&f));
      } else {
         bson_append_null (&part, bson_iter_key (&s), -1); /* EXCLUDED.c of a column not given: NULL */
      }
   }
   bson_append_document_end (&u, &part);
   /* the rest of the row, for an insert ($setOnInsert may not be empty;
    * the keys come from q unless it matches nothing) */
   bson_t rest = BSON_INITIALIZER;
   bson_iter_init (&f, doc);
   while (bson_iter_next (&f)) {
      bson_iter_t tmp;
      const char *name = bson_iter_key (&f);
      if (!(bson_iter_recurse (set, &tmp) && bson_iter_find (&tmp, name)) && !bson_has_field (&q, name)) {
         bson_append_iter (&rest, NULL, 0, &f);
      }
   }
   if (!bson_empty (&rest)) {
      bson_append_document (&u, "$setOnInsert", -1, &rest);
   }
   bson_destroy (&rest);
   bson_destroy (&q);
   bson_append_document_end (&up, &u);
   bson_append_bool (&up, "upsert", -1, true);
   bson_append_document_end (parent, &up);
}

void
dj_mql_to_upserts (dj_mql_t *mql)
{
   bson_iter_t it, docs, keys, set;
   if (!mql->upsert || mql->ncommands < 1 || !bson_iter_init_find (&keys, mql->upsert, "keys") ||
       !bson_iter_init_find (&set, mql->upsert, "set") || !bson_iter_init_find (&it, mql->commands[0], "insert") ||
       !BSON_ITER_HOLDS_UTF8 (&it)) {
      return;
   }
   bson_t *cmd = bson_new (), ups;
   BSON_APPEND_UTF8 (cmd, "update", bson_iter_utf8 (&it, NULL));
   BSON_APPEND_ARRAY_BEGIN (cmd, "updates", &ups);
   if (bson_iter_init_find (&it, mql->commands[0], "documents") && bson_iter_recurse (&it, &docs)) {
      while (bson_iter_next (&docs)) {
         uint32_t len;
         const uint8_t *data;
         bson_t doc;
         if (BSON_ITER_HOLDS_DOCUMENT (&docs)) {
            bson_iter_document (&docs, &len, &data);
            if (bson_init_static (&doc, data, len)) {
               append_upsert (&keys, &set, &doc, &ups, bson_iter_key (&docs));
            }
         }
      }
   }
   bson_append_array_end (cmd, &ups);
   BSON_APPEND_BOOL (cmd, "ordered", true);
   bson_destroy (mql->commands[0]);
   mql->commands[0] = cmd; /* owned */
}

void
dj_mql_drop_claim (dj_mql_t *mql)
{
   if (!mql->for_update || mql->ncommands < (mql->feed_to ? 3 : 2)) {
      return;
   }
   int k = mql->feed_to ? 2 : 1; /* the claim, and the aggregate that feeds it its _ids */
   for (int i = 0; i < k; i++) {
      bson_destroy (mql->commands[i]);
   }
   int n = mql->ncommands -= k;
   memmove (mql->commands, mql->commands + k, sizeof mql->commands[0] * (size_t) n);
   memmove (mql->ignore_code, mql->ignore_code + k, sizeof mql->ignore_code[0] * (size_t) n);
   memmove (mql->admin, mql->admin + k, sizeof mql->admin[0] * (size_t) n);
   mql->for_update = false;
   mql->feed_to = 0;
}

void
dj_mql_cleanup (dj_mql_t *mql)
{
   for (int i = 0; i < mql->ncommands; i++) {
      bson_destroy (mql->commands[i]);
   }
   for (int i = 0; i < mql->ncolumns; i++) {
      bson_free (mql->columns[i].name);
      bson_free (mql->columns[i].path);
      bson_free (mql->columns[i].star_table);
   }
   bson_free (mql->columns);
   bson_destroy (mql->upsert);
   DJ_FREE (mql->collection, mql->name, mql->constraint, mql->rename_from, mql->rename_to, mql->drop_column);
   memset (mql, 0, sizeof *mql);
}
