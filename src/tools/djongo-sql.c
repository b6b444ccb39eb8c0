/*
 * djongo-sql -- translate SQL to MongoDB commands, or run it on the engine.
 *
 *   djongo-sql translate "SQL" [--params JSON-ARRAY] [--db NAME]
 *       prints each MongoDB command as canonical Extended JSON, one a line
 *   djongo-sql --host HOST [--db NAME] [--params JSON-ARRAY] ["SQL" ...]
 *       runs each statement and prints its rows; HOST is a data directory
 *       (the embedded engine) or a MongoDB server (mongodb://..., or a host
 *       name), by dj_transport.h's rule; with no statements, reads one
 *       statement a line from stdin (an interactive prompt on a terminal)
 *   djongo-sql --host PATH --batch
 *       stdin: one JSON array [SQL, [params...]] a line (Extended JSON);
 *       stdout: one line each, {"columns": [...], "rows": [[...]], "rowcount": n}
 *       or {"error": {"domain": d, "code": c, "message": m}} -- what the
 *       execution tests drive.
 *
 * Exit status: 0, or 1 when any statement failed, 2 on bad usage.
 *
 * Statements run through src/exec (dj_exec.h) over src/transport, as the
 * DB-API driver's will.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dj_compile.h"
#include "dj_exec.h"
#include "dj_transport.h"

typedef struct {
   dj_exec_t *exec;         /* owned by main */
   dj_plan_cache_t *plans;  /* owned by main: a statement repeated in a session is parsed once */
} session_t;

/* Reads a JSON array of parameters into a bson_t holding {"p": [...]};
 * the values are then borrowed from it. */
static bool
load_params (const char *json, bson_t *holder, bson_value_t **values, int *n, bson_error_t *error)
{
   char *wrapped = bson_strdup_printf ("{\"p\": %s}", json ? json : "[]");
   bool ok = bson_init_from_json (holder, wrapped, -1, error);
   bson_free (wrapped);
   *values = NULL;
   *n = 0;
   if (!ok) {
      bson_init (holder); /* libbson destroyed what it had parsed: the caller's bson_destroy must find a document */
      return false;
   }
   bson_iter_t it, a;
   if (!bson_iter_init_find (&it, holder, "p") || !BSON_ITER_HOLDS_ARRAY (&it) || !bson_iter_recurse (&it, &a)) {
      return dj_error_set (error, DJ_DOMAIN_SQL, DJ_SQL_PARAMS, "parameters must be a JSON array");
   }
   while (bson_iter_next (&a)) {
      *values = bson_realloc (*values, sizeof **values * (size_t) (*n + 1));
      (*values)[(*n)++] = *bson_iter_value (&a); /* borrowed from holder */
   }
   return true;
}

/* load_params for --params: a bad value is reported here, for both modes,
 * and the holder is then destroyed (nothing to clean up but the caller's). */
static bool
cli_params (const char *json, bson_t *holder, bson_value_t **values, int *n)
{
   bson_error_t error;
   if (!load_params (json, holder, values, n, &error)) {
      fprintf (stderr, "djongo-sql: bad --params: %s\n", error.message);
      bson_destroy (holder);
      return false;
   }
   return true;
}

static void
print_json (const bson_t *doc, bool canonical)
{
   char *s = canonical ? bson_as_canonical_extended_json (doc, NULL) : bson_as_relaxed_extended_json (doc, NULL);
   printf ("%s\n", s);
   bson_free (s);
}

/* Executes SQL; fills `result` with {columns, rows, rowcount[, lastrowid]}. */
static bool
execute (session_t *s, const char *sql, const bson_value_t *params, int nparams, bson_t *result, bson_error_t *error)
{
   dj_plan_t *plan = dj_plan_cache_get (s->plans, sql, strlen (sql), error);
   dj_mql_t m;
   dj_result_t r;
   if (!plan) {
      return false;
   }
   if (!dj_plan_bind (plan, dj_exec_db (s->exec), params, nparams, &m, error)) {
      dj_plan_release (plan);
      return false;
   }
   bool ok = dj_exec_run (s->exec, &m, &r, error);
   if (ok) {
      bson_t cols;
      BSON_APPEND_ARRAY_BEGIN (result, "columns", &cols);
      for (int i = 0; i < m.ncolumns; i++) {
         char kb[16];
         const char *key;
         bson_uint32_to_string ((uint32_t) i, &key, kb, sizeof kb);
         BSON_APPEND_UTF8 (&cols, key, m.columns[i].name);
      }
      bson_append_array_end (result, &cols);
      BSON_APPEND_ARRAY (result, "rows", r.rows);
      BSON_APPEND_INT64 (result, "rowcount", r.rowcount);
      if (r.has_lastrowid) {
         BSON_APPEND_INT64 (result, "lastrowid", r.lastrowid);
      }
      dj_result_cleanup (&r);
   }
   dj_mql_cleanup (&m);
   dj_plan_release (plan);
   return ok;
}

static void
error_doc (const bson_error_t *error, bson_t *out)
{
   bson_t e;
   BSON_APPEND_DOCUMENT_BEGIN (out, "error", &e);
   BSON_APPEND_INT32 (&e, "domain", (int32_t) error->domain);
   BSON_APPEND_INT32 (&e, "code", (int32_t) error->code);
   BSON_APPEND_UTF8 (&e, "message", error->message);
   bson_append_document_end (out, &e);
}

static int
translate (const char *sql, const char *params_json, const char *db)
{
   bson_error_t error;
   bson_t holder;
   bson_value_t *params;
   int n;
   if (!cli_params (params_json, &holder, &params, &n)) {
      return 2;
   }
   int rc = 0;
   dj_plan_t *plan = dj_plan_new (sql, strlen (sql), &error);
   dj_mql_t m;
   if (!plan || !dj_plan_bind (plan, db, params, n, &m, &error)) {
      fprintf (stderr, "djongo-sql: %s\n", error.message);
      rc = 1;
   } else {
      for (int i = 0; i < m.ncommands; i++) {
         print_json (m.commands[i], true);
      }
      if (m.kind == DJ_MQL_TXN) {
         printf ("(transaction statement: no MongoDB command)\n");
      }
      dj_mql_cleanup (&m);
   }
   dj_plan_destroy (plan);
   bson_free (params);
   bson_destroy (&holder);
   return rc;
}

/* Prints a result for people: a header line, then one line per row. */
static void
print_table (const bson_t *result)
{
   bson_iter_t it, a;
   if (bson_iter_init_find (&it, result, "columns") && bson_iter_recurse (&it, &a)) {
      bool first = true;
      while (bson_iter_next (&a)) {
         printf ("%s%s", first ? "" : " | ", bson_iter_utf8 (&a, NULL));
         first = false;
      }
      if (!first) {
         printf ("\n");
      }
   }
   if (bson_iter_init_find (&it, result, "rows") && bson_iter_recurse (&it, &a)) {
      while (bson_iter_next (&a)) {
         bson_iter_t c;
         bson_iter_recurse (&a, &c);
         bool first = true;
         while (bson_iter_next (&c)) {
            bson_t one = BSON_INITIALIZER;
            bson_append_value (&one, "v", 1, bson_iter_value (&c));
            char *s = bson_as_relaxed_extended_json (&one, NULL);
            /* strip the wrapper: "{ \"v\" : " (8 bytes) ... " }" (2 bytes) */
            size_t len = strlen (s);
            printf ("%s%.*s", first ? "" : " | ", (int) (len > 10 ? len - 10 : 0), s + 8);
            bson_free (s);
            bson_destroy (&one);
            first = false;
         }
         printf ("\n");
      }
   }
   if (bson_iter_init_find (&it, result, "rowcount")) {
      int64_t n = bson_iter_as_int64 (&it);
      if (n < 0) {
         printf ("OK\n");
      } else {
         printf ("(%lld row%s)\n", (long long) n, n == 1 ? "" : "s");
      }
   }
}

static int
run_one (session_t *s, const char *sql, const bson_value_t *params, int n, bool json)
{
   bson_error_t error;
   bson_t result = BSON_INITIALIZER;
   bool ok = execute (s, sql, params, n, &result, &error);
   if (!ok) {
      if (json) {
         bson_t e = BSON_INITIALIZER;
         error_doc (&error, &e);
         print_json (&e, false);
         bson_destroy (&e);
      } else {
         fprintf (stderr, "error: %s\n", error.message);
      }
   } else if (json) {
      print_json (&result, false);
   } else {
      print_table (&result);
   }
   fflush (stdout);
   bson_destroy (&result);
   return ok ? 0 : 1;
}

/* --batch: each line is [SQL, [params]] */
static int
batch (session_t *s)
{
   char *line = NULL;
   size_t cap = 0;
   ssize_t len;
   int rc = 0;
   while ((len = getline (&line, &cap, stdin)) > 0) {
      bson_error_t error;
      bson_t holder;
      char *wrapped = bson_strdup_printf ("{\"b\": %s}", line);
      bool ok = bson_init_from_json (&holder, wrapped, -1, &error);
      bson_free (wrapped);
      bson_iter_t it, a;
      const char *sql = NULL;
      bson_value_t *params = NULL;
      int n = 0;
      if (ok && bson_iter_init_find (&it, &holder, "b") && BSON_ITER_HOLDS_ARRAY (&it) && bson_iter_recurse (&it, &a) &&
          bson_iter_next (&a) && BSON_ITER_HOLDS_UTF8 (&a)) {
         sql = bson_iter_utf8 (&a, NULL);
         if (bson_iter_next (&a) && BSON_ITER_HOLDS_ARRAY (&a)) {
            bson_iter_t p;
            bson_iter_recurse (&a, &p);
            while (bson_iter_next (&p)) {
               params = bson_realloc (params, sizeof *params * (size_t) (n + 1));
               params[n++] = *bson_iter_value (&p);
            }
         }
      }
      if (!sql) {
         bson_t e = BSON_INITIALIZER;
         if (ok) {
            dj_error_set (&error, DJ_DOMAIN_SQL, DJ_SQL_PARAMS, "expected a JSON array [SQL, [params...]]");
         }
         error_doc (&error, &e);
         print_json (&e, false);
         bson_destroy (&e);
         rc = 1;
      } else {
         rc |= run_one (s, sql, params, n, true);
      }
      fflush (stdout);
      bson_free (params);
      if (ok) {
         bson_destroy (&holder);
      }
   }
   free (line);
   return rc;
}

static void
usage (FILE *f)
{
   fprintf (f, "usage: djongo-sql translate \"SQL\" [--params JSON-ARRAY] [--db NAME]\n"
               "       djongo-sql --host PATH|mongodb://URI|HOST[:PORT] [--db NAME] [--params JSON-ARRAY] [--json] [\"SQL\" ...]\n"
               "       djongo-sql --host PATH [--db NAME] --batch   (stdin: [SQL, [params]] a line)\n");
}

int
main (int argc, char **argv)
{
   const char *host = NULL, *db = "test", *params_json = NULL;
   const char *stmts[256];
   int nstmts = 0;
   bool translate_mode = false, json = false, batch_mode = false;

   for (int i = 1; i < argc; i++) {
      if (!strcmp (argv[i], "translate") && i == 1) {
         translate_mode = true;
      } else if (!strcmp (argv[i], "--host") && i + 1 < argc) {
         host = argv[++i];
      } else if (!strcmp (argv[i], "--db") && i + 1 < argc) {
         db = argv[++i];
      } else if (!strcmp (argv[i], "--params") && i + 1 < argc) {
         params_json = argv[++i];
      } else if (!strcmp (argv[i], "--json")) {
         json = true;
      } else if (!strcmp (argv[i], "--batch")) {
         batch_mode = true;
      } else if (!strcmp (argv[i], "--help") || !strcmp (argv[i], "-h")) {
         usage (stdout);
         return 0;
      } else if (argv[i][0] == '-' && argv[i][1] == '-') {
         usage (stderr);
         return 2;
      } else if (nstmts < 256) {
         stmts[nstmts++] = argv[i];
      }
   }
   if (translate_mode) {
      if (nstmts != 1) {
         usage (stderr);
         return 2;
      }
      return translate (stmts[0], params_json, db);
   }
   if (!host) {
      usage (stderr);
      return 2;
   }
   bson_error_t error;
   dj_transport_t *tr = dj_transport_open (host, &error);
   if (!tr) {
      fprintf (stderr, "djongo-sql: %s\n", error.message);
      return 1;
   }
   session_t s = {.exec = dj_exec_new (dj_transport_run, dj_transport_txn, tr, db), .plans = dj_plan_cache_new (0)};
   int rc = 0;
   if (batch_mode) {
      rc = batch (&s);
   } else {
      bson_t holder;
      bson_value_t *params;
      int n;
      if (!cli_params (params_json, &holder, &params, &n)) {
         dj_plan_cache_destroy (s.plans);
         dj_exec_destroy (s.exec);
         dj_transport_close (tr);
         return 2;
      }
      for (int i = 0; i < nstmts; i++) {
         rc |= run_one (&s, stmts[i], params, n, json);
      }
      if (nstmts == 0) {
         bool tty = isatty (0);
         char *line = NULL;
         size_t cap = 0;
         ssize_t len;
         for (;;) {
            if (tty) {
               printf ("djongo-sql> ");
               fflush (stdout);
            }
            if ((len = getline (&line, &cap, stdin)) <= 0) {
               break;
            }
            while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) {
               line[--len] = '\0';
            }
            if (len == 0) {
               continue;
            }
            rc |= run_one (&s, line, NULL, 0, json);
         }
         free (line);
         if (tty) {
            printf ("\n");
         }
      }
      bson_free (params);
      bson_destroy (&holder);
   }
   dj_plan_cache_destroy (s.plans);
   dj_exec_destroy (s.exec);
   dj_transport_close (tr);
   return rc;
}
