/*
 * djongo-sql -- translate SQL to MongoDB commands, or run it on the engine.
 *
 *   djongo-sql translate "SQL" [--params JSON-ARRAY] [--db NAME]
 *       prints each MongoDB command as canonical Extended JSON, one a line
 *   djongo-sql --host HOST [--db NAME] [--create] [--params JSON-ARRAY] ["SQL" ...]
 *       runs each statement and prints its rows; HOST is a data directory
 *       (the embedded engine) or a MongoDB server (mongodb://..., or a host
 *       name), by dj_transport.h's rule. The data directory, and a --db
 *       named, must exist unless --create (a typo is an error, not a new
 *       empty database). With no statements, reads statements from stdin,
 *       each ended by ';' as sqlite3 and psql do (the last one may omit
 *       it); on a terminal, a prompt with line editing and history
 *       (readline) and the commands .help .tables .quit (or \? \dt \q).
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

#ifdef DJ_HAVE_READLINE
#include <readline/history.h>
#include <readline/readline.h>
#endif

#include "dj_buf.h"
#include "dj_compile.h"
#include "dj_exec.h"
#include "dj_sql.h"
#include "dj_transport.h"

typedef struct {
   dj_transport_t *tr;      /* owned by main */
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
   dj_catalog_t catalog = dj_exec_catalog (s->exec);
   if (!dj_plan_bind_catalog (plan, dj_exec_db (s->exec), &catalog, params, nparams, &m, error)) {
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
   fprintf (f,
            "usage: djongo-sql translate \"SQL\" [--params JSON-ARRAY] [--db NAME]\n"
            "       djongo-sql --host HOST [--db NAME] [--create] [--params JSON-ARRAY] [--json] [\"SQL\" ...]\n"
            "       djongo-sql --host PATH [--db NAME] [--create] --batch\n"
            "\n"
            "Translates SQL to MongoDB commands, or runs it on a database.\n"
            "\n"
            "  translate       print the MongoDB commands of one statement (Extended JSON)\n"
            "  --host HOST     a data directory (a path: /abs, ./rel, ~/x or file:x) for the\n"
            "                  embedded engine, or a MongoDB server (mongodb://URI or HOST[:PORT])\n"
            "  --db NAME       the database (default: test)\n"
            "  --create        create the data directory / database if missing (without it, a\n"
            "                  path or --db that does not exist is an error)\n"
            "  --params JSON   parameter values for %%s or ? placeholders, a JSON array\n"
            "  --json          print results as Extended JSON, one line each\n"
            "  --batch         read [SQL, [params]] JSON arrays from stdin, answer one line each\n"
            "  --version       print the version\n"
            "  -h, --help      print this help\n"
            "\n"
            "With no SQL arguments, statements are read from stdin, each ended by ';'.\n"
            "At the prompt: .help (\\?), .tables (\\dt), .quit (\\q, exit).\n");
}

/* The database a --db names must exist unless --create: listDatabases
 * (nameOnly) on admin names it. */
static bool
database_exists (dj_transport_t *tr, const char *db, bson_error_t *error, bool *exists)
{
   bson_t cmd = BSON_INITIALIZER, reply;
   BSON_APPEND_INT32 (&cmd, "listDatabases", 1);
   BSON_APPEND_BOOL (&cmd, "nameOnly", true);
   bool ok = dj_transport_run (tr, "admin", &cmd, &reply, error);
   bson_iter_t it, a, name;
   *exists = false;
   if (ok && bson_iter_init_find (&it, &reply, "databases") && bson_iter_recurse (&it, &a)) {
      while (bson_iter_next (&a)) {
         if (bson_iter_recurse (&a, &name) && bson_iter_find (&name, "name") && BSON_ITER_HOLDS_UTF8 (&name) &&
             !strcmp (bson_iter_utf8 (&name, NULL), db)) {
            *exists = true;
         }
      }
   }
   bson_destroy (&cmd);
   bson_destroy (&reply);
   return ok;
}

/* .tables: the database's collections, without djongo's own and MongoDB's
 * system ones, sorted by name (the engine lists them in name order). */
static int
list_tables (session_t *s)
{
   bson_error_t error;
   bson_t cmd = BSON_INITIALIZER, reply;
   BSON_APPEND_INT32 (&cmd, "listCollections", 1);
   BSON_APPEND_BOOL (&cmd, "nameOnly", true);
   bool ok = dj_transport_run (s->tr, dj_exec_db (s->exec), &cmd, &reply, &error);
   bson_iter_t it, a, name;
   if (!ok) {
      fprintf (stderr, "error: %s\n", error.message);
   } else if (bson_iter_init (&it, &reply) && bson_iter_find_descendant (&it, "cursor.firstBatch", &a) &&
              bson_iter_recurse (&a, &a)) {
      while (bson_iter_next (&a)) {
         if (bson_iter_recurse (&a, &name) && bson_iter_find (&name, "name") && BSON_ITER_HOLDS_UTF8 (&name)) {
            const char *n = bson_iter_utf8 (&name, NULL);
            if (strncmp (n, "__djongo", 8) && strncmp (n, "system.", 7)) {
               printf ("%s\n", n);
            }
         }
      }
   }
   bson_destroy (&cmd);
   bson_destroy (&reply);
   return ok ? 0 : 1;
}

static const char prompt_help[] =
   "Statements end with ';' and may span lines.\n"
   "  .help   \\?    this text\n"
   "  .tables \\dt   the tables (collections) of the database\n"
   "  .quit   \\q    leave (also: exit, quit, end of input)\n";

/* One line of input: what readline or getline gave, without its newline
 * (malloc'd: the caller frees), or NULL at the end of input. */
static char *
read_line (bool tty, const char *prompt)
{
#ifdef DJ_HAVE_READLINE
   if (tty) {
      char *l = readline (prompt);
      if (l && *l) {
         add_history (l);
      }
      return l;
   }
#else
   if (tty) {
      fputs (prompt, stdout);
      fflush (stdout);
   }
#endif
   char *line = NULL;
   size_t cap = 0;
   ssize_t len = getline (&line, &cap, stdin);
   if (len < 0) {
      free (line);
      return NULL;
   }
   while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) {
      line[--len] = '\0';
   }
   return line;
}

/* A prompt command (only where no statement is half typed): 1 ran,
 * 0 not one, -1 quit. */
static int
prompt_command (session_t *s, const char *line, int *rc)
{
   while (*line == ' ' || *line == '\t') {
      line++;
   }
   size_t n = strlen (line);
   while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t' || line[n - 1] == ';')) {
      n--;
   }
#define IS(word) (n == strlen (word) && !strncmp (line, word, n))
   if (IS (".quit") || IS (".exit") || IS ("\\q") || IS ("exit") || IS ("quit")) {
      return -1;
   }
   if (IS (".help") || IS ("\\?") || IS ("help")) {
      fputs (prompt_help, stdout);
      return 1;
   }
   if (IS (".tables") || IS ("\\dt")) {
      *rc |= list_tables (s);
      return 1;
   }
#undef IS
   if (line[0] == '.' || line[0] == '\\') {
      fprintf (stderr, "error: unknown command '%.*s' (.help lists them)\n", (int) n, line);
      *rc |= 1;
      return 1;
   }
   return 0;
}

/* Statements from stdin, each ended by ';' (dj_sql_statement_end), as
 * sqlite3 and psql read them; what is left at the end of input runs too. */
static int
prompt_loop (session_t *s, bool json)
{
   bool tty = isatty (0);
   dj_buf_t text; /* what was typed and not yet run; statements start at `done` */
   size_t done = 0;
   dj_buf_init (&text);
   int rc = 0;
   char *line;
   while ((line = read_line (tty, text.len > done ? "      ...> " : "djongo-sql> "))) {
      int cmd = text.len > done ? 0 : prompt_command (s, line, &rc);
      if (cmd < 0) {
         free (line);
         break;
      }
      if (cmd == 0) {
         dj_buf_append (&text, line, strlen (line));
         dj_buf_append (&text, "\n", 1);
         size_t end;
         while ((end = dj_sql_statement_end ((const char *) text.data + done, text.len - done)) > 0) {
            char *stmt = bson_strndup ((const char *) text.data + done, end);
            if (dj_sql_skip_space (stmt, end - 1) < end - 1) { /* not a bare ';' */
               rc |= run_one (s, stmt, NULL, 0, json);
            }
            bson_free (stmt);
            done += end;
         }
         if (done + dj_sql_skip_space ((const char *) text.data + done, text.len - done) == text.len) {
            text.len = done = 0; /* only blanks or comments left: a fresh prompt */
         }
      }
      free (line);
   }
   if (text.len > done) {
      char *stmt = bson_strndup ((const char *) text.data + done, text.len - done);
      rc |= run_one (s, stmt, NULL, 0, json);
      bson_free (stmt);
   }
   dj_buf_cleanup (&text);
   if (tty) {
      printf ("\n");
   }
   return rc;
}

int
main (int argc, char **argv)
{
   const char *host = NULL, *db = "test", *params_json = NULL;
   const char *stmts[256];
   int nstmts = 0;
   bool translate_mode = false, json = false, batch_mode = false, create = false, db_given = false;

   dj_transport_process_init (); /* before any thread */

   for (int i = 1; i < argc; i++) {
      if (!strcmp (argv[i], "translate") && i == 1) {
         translate_mode = true;
      } else if (!strcmp (argv[i], "--host") && i + 1 < argc) {
         host = argv[++i];
      } else if (!strcmp (argv[i], "--db") && i + 1 < argc) {
         db = argv[++i];
         db_given = true;
      } else if (!strcmp (argv[i], "--params") && i + 1 < argc) {
         params_json = argv[++i];
      } else if (!strcmp (argv[i], "--json")) {
         json = true;
      } else if (!strcmp (argv[i], "--batch")) {
         batch_mode = true;
      } else if (!strcmp (argv[i], "--create")) {
         create = true;
      } else if (!strcmp (argv[i], "--version")) {
         printf ("djongo-sql %s\n", DJONGO_VERSION);
         return 0;
      } else if (!strcmp (argv[i], "--help") || !strcmp (argv[i], "-h")) {
         usage (stdout);
         return 0;
      } else if (argv[i][0] == '-' && argv[i][1] == '-') {
         fprintf (stderr, "djongo-sql: unknown option or missing value: %s\n", argv[i]);
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
   dj_transport_t *tr = dj_transport_open (host, create ? 0 : DJ_TRANSPORT_EXISTING, 0, &error);
   if (!tr) {
      fprintf (stderr, "djongo-sql: %s%s\n", error.message, create ? "" : " (--create makes a new one)");
      return 1;
   }
   if (db_given && !create) {
      bool exists;
      bool asked = database_exists (tr, db, &error, &exists);
      if (!asked || !exists) {
         if (!asked) { /* the server could not be asked (unreachable, TLS, auth): say why */
            fprintf (stderr, "djongo-sql: %s\n", error.message);
         } else {
            fprintf (stderr, "djongo-sql: no database '%s' at %s (--create makes a new one)\n", db, host);
         }
         dj_transport_close (tr);
         return 1;
      }
   }
   session_t s = {.tr = tr, .exec = dj_exec_new (dj_transport_run, dj_transport_txn, tr, db), .plans = dj_plan_cache_new (0)};
   dj_exec_set_engine_ops (s.exec, !strcmp (dj_transport_kind (tr), "embedded"));
   dj_exec_set_insert_references (s.exec, dj_transport_djongo_engine (tr));
   dj_exec_set_deferred_references (s.exec, dj_transport_djongo_has (tr, "deferredReferences"));
   dj_exec_set_djongo_max (s.exec, dj_transport_djongo_has (tr, "djongoMax"));
   dj_exec_set_outside_run (s.exec, dj_transport_run_outside);
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
         rc |= prompt_loop (&s, json);
      }
      bson_free (params);
      bson_destroy (&holder);
   }
   dj_plan_cache_destroy (s.plans);
   dj_exec_destroy (s.exec);
   dj_transport_close (tr);
   return rc;
}
