/*
 * compile.c -- plans, binding, and the dj_mql_t they produce.
 */
#include <string.h>

#include "compile-private.h"

struct dj_plan {
   dj_sql_stmt_t *stmt; /* owned */
};

dj_plan_t *
dj_plan_new (const char *sql, size_t len, bson_error_t *error)
{
   dj_sql_stmt_t *st = dj_sql_parse (sql, len, error);
   if (!st) {
      return NULL;
   }
   dj_plan_t *p = bson_malloc0 (sizeof *p);
   p->stmt = st;
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

void
cx_add_column (cx_t *cx, const char *name, const char *path)
{
   dj_mql_t *out = cx->out;
   out->columns = bson_realloc (out->columns, sizeof *out->columns * (size_t) (out->ncolumns + 1));
   out->columns[out->ncolumns].name = bson_strdup (name);
   out->columns[out->ncolumns].path = bson_strdup (path);
   out->ncolumns++;
}

bool
dj_plan_bind (const dj_plan_t *plan, const char *db, const bson_value_t *params, int nparams, dj_mql_t *out,
              bson_error_t *error)
{
   const dj_sql_stmt_t *st = plan->stmt;
   bool ok;

   if (nparams != st->nparams) {
      return dj_error_set (error, DJ_DOMAIN_SQL, DJ_SQL_PARAMS, "the statement takes %d parameter%s, %d given", st->nparams, st->nparams == 1 ? "" : "s",
                           nparams);
   }
   memset (out, 0, sizeof *out);
   out->stmt = st->kind;
   cx_t cx = {.params = params, .nparams = nparams, .db = db ? db : "test", .error = error, .out = out};
   if (error) {
      memset (error, 0, sizeof *error);
   }
   switch (st->kind) {
   case DJ_STMT_SELECT:
      ok = cx_compile_select (&cx, st);
      break;
   case DJ_STMT_INSERT:
   case DJ_STMT_UPDATE:
   case DJ_STMT_DELETE:
      ok = cx_compile_write (&cx, st);
      break;
   default:
      ok = cx_compile_ddl (&cx, st);
      break;
   }
   if (!ok) {
      dj_mql_cleanup (out);
   }
   return ok;
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
   }
   bson_free (mql->columns);
   bson_free (mql->collection);
   bson_free (mql->name);
   memset (mql, 0, sizeof *mql);
}
