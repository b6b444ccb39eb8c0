/*
 * run_golden -- SQL -> MongoDB golden tests (the .test files in tests/sql/golden).
 *
 *   run_golden FILE.test ...          check every case
 *   run_golden --print FILE.test      print each case with what the compiler
 *                                     gives now (to write new cases; review
 *                                     every line before committing it)
 *
 * A case is a group of lines:
 *
 *   # text           a comment: say what rule of SQL or MongoDB the case pins
 *   sql TEXT         the statement (starts a case)
 *   params JSON      its parameters, a JSON array (Extended JSON); default []
 *   datetime T.C ..  the catalog: these columns were recorded DATETIME (their
 *                    microseconds in "<column>__us", dj_compile.h); without
 *                    the line the case is bound without a catalog. A column
 *                    read so shows as "name=path+us" in `columns`
 *   mql JSON         one expected command, relaxed Extended JSON; several
 *                    lines for several commands, in order (an INSERT ... ON
 *                    CONFLICT DO UPDATE: the upserts dj_mql_to_upserts makes)
 *   columns A, B     the result columns (name=path), e.g. "id=id, n=c1"
 *   error TEXT       the expected error message, exactly
 *
 * JSON is compared as text with whitespace outside strings removed: the
 * expected text is never parsed, so "$type"/"$regex" (which libbson's JSON
 * reader would take for legacy Extended JSON) read as written.
 *
 * Prints each failure with file:line, then "run_golden: N passed, N failed".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dj_compile.h"

static int passed, failed;
static bool print_mode;

/* Removes whitespace outside JSON strings. Returns a malloc'd string. */
static char *
squeeze (const char *s)
{
   char *out = malloc (strlen (s) + 1), *o = out;
   bool in_str = false;
   for (; *s; s++) {
      if (in_str) {
         *o++ = *s;
         if (*s == '\\' && s[1]) {
            *o++ = *++s;
         } else if (*s == '"') {
            in_str = false;
         }
      } else if (*s == '"') {
         in_str = true;
         *o++ = *s;
      } else if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r') {
         *o++ = *s;
      }
   }
   *o = '\0';
   return out;
}

typedef struct {
   const char *file;
   int line;
   char *sql;
   char *params;
   char *datetimes; /* "t.a t.b": the catalog's DATETIME columns, or NULL */
   char *mql[DJ_MQL_MAX_COMMANDS];
   int nmql;
   char *columns;
   char *error;
} case_t;

static void
case_clear (case_t *c)
{
   free (c->sql);
   free (c->params);
   free (c->datetimes);
   for (int i = 0; i < c->nmql; i++) {
      free (c->mql[i]);
   }
   free (c->columns);
   free (c->error);
   memset (c, 0, sizeof *c);
}

static void
failf (const case_t *c, const char *fmt, const char *a, const char *b)
{
   fprintf (stderr, "%s:%d: %s\n   sql:      %s\n", c->file, c->line, fmt, c->sql);
   if (a) {
      fprintf (stderr, "   expected: %s\n", a);
   }
   if (b) {
      fprintf (stderr, "   got:      %s\n", b);
   }
}

/* dj_catalog_t.is_datetime over a case's `datetime` line ("t.a t.b") */
static bool
is_datetime (void *ctx, const char *table, const char *column)
{
   char want[256];
   snprintf (want, sizeof want, "%s.%s", table, column);
   size_t n = strlen (want);
   for (const char *p = ctx; p && (p = strstr (p, want)); p += n) {
      if ((p == ctx || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0')) {
         return true;
      }
   }
   return false;
}

static void
run_case (case_t *c)
{
   bson_error_t error;
   bson_t holder = BSON_INITIALIZER;
   bson_value_t params[64];
   int n = 0;
   bool ok = true;

   if (!c->sql) {
      return;
   }
   if (c->params) {
      char *w = bson_strdup_printf ("{\"p\": %s}", c->params);
      bson_destroy (&holder);
      if (!bson_init_from_json (&holder, w, -1, &error)) {
         failf (c, "bad params JSON", error.message, NULL);
         failed++;
         bson_free (w);
         bson_init (&holder);
         bson_destroy (&holder);
         return;
      }
      bson_free (w);
      bson_iter_t it, a;
      if (bson_iter_init_find (&it, &holder, "p") && bson_iter_recurse (&it, &a)) {
         while (bson_iter_next (&a) && n < 64) {
            params[n++] = *bson_iter_value (&a);
         }
      }
   }
   dj_plan_t *plan = dj_plan_new (c->sql, strlen (c->sql), &error);
   dj_mql_t m;
   dj_catalog_t catalog = {.is_datetime = is_datetime, .ctx = c->datetimes};
   bool compiled = plan && dj_plan_bind_catalog (plan, "test", c->datetimes ? &catalog : NULL, params, n, &m, &error);
   char cols[2048] = "";
   char *got[DJ_MQL_MAX_COMMANDS] = {0};
   int ngot = 0;
   if (compiled) {
      if (m.upsert && !m.values_from) {
         dj_mql_to_upserts (&m); /* ON CONFLICT DO UPDATE: the upserts the executor runs (ids aside) */
      }
      for (int i = 0; i < m.ncommands; i++) {
         char *j = bson_as_relaxed_extended_json (m.commands[i], NULL);
         got[ngot++] = squeeze (j);
         bson_free (j);
      }
      for (int i = 0; i < m.ncolumns; i++) {
         size_t l = strlen (cols);
         snprintf (cols + l, sizeof cols - l, "%s%s=%s%s", i ? ", " : "", m.columns[i].name, m.columns[i].path,
                   m.columns[i].us ? "+us" : "");
      }
      dj_mql_cleanup (&m);
   }
   dj_plan_destroy (plan);

   if (print_mode) {
      printf ("sql %s\n", c->sql);
      if (c->datetimes) {
         printf ("datetime %s\n", c->datetimes);
      }
      if (c->params) {
         printf ("params %s\n", c->params);
      }
      if (!compiled) {
         printf ("error %s\n", error.message);
      }
      for (int i = 0; i < ngot; i++) {
         printf ("mql %s\n", got[i]);
      }
      if (cols[0]) {
         printf ("columns %s\n", cols);
      }
      printf ("\n");
   } else if (c->error) {
      if (compiled) {
         failf (c, "expected an error", c->error, ngot ? got[0] : "(no command)");
         ok = false;
      } else if (strcmp (c->error, error.message)) {
         failf (c, "wrong error message", c->error, error.message);
         ok = false;
      }
   } else if (!compiled) {
      failf (c, "did not compile", NULL, error.message);
      ok = false;
   } else {
      if (ngot != c->nmql) {
         char e[16], g[16];
         snprintf (e, sizeof e, "%d", c->nmql);
         snprintf (g, sizeof g, "%d", ngot);
         failf (c, "wrong number of commands", e, g);
         ok = false;
      }
      for (int i = 0; ok && i < ngot; i++) {
         char *want = squeeze (c->mql[i]);
         if (strcmp (want, got[i])) {
            failf (c, "wrong command", want, got[i]);
            ok = false;
         }
         free (want);
      }
      if (ok && c->columns && strcmp (c->columns, cols)) {
         failf (c, "wrong columns", c->columns, cols);
         ok = false;
      }
   }
   for (int i = 0; i < ngot; i++) {
      free (got[i]);
   }
   bson_destroy (&holder);
   if (!print_mode) {
      ok ? passed++ : failed++;
   }
}

static char *
dup_trim (const char *s)
{
   size_t n = strlen (s);
   while (n && (s[n - 1] == '\n' || s[n - 1] == '\r')) {
      n--;
   }
   return strndup (s, n);
}

static void
run_file (const char *path)
{
   FILE *f = fopen (path, "r");
   char *line = NULL;
   size_t cap = 0;
   int lineno = 0;
   case_t c = {0};
   if (!f) {
      fprintf (stderr, "%s: cannot open\n", path);
      failed++;
      return;
   }
   while (getline (&line, &cap, f) > 0) {
      lineno++;
      if (!strncmp (line, "sql ", 4)) {
         run_case (&c);
         case_clear (&c);
         c.file = path;
         c.line = lineno;
         c.sql = dup_trim (line + 4);
      } else if (!strncmp (line, "datetime ", 9)) {
         c.datetimes = dup_trim (line + 9);
      } else if (!strncmp (line, "params ", 7)) {
         c.params = dup_trim (line + 7);
      } else if (!strncmp (line, "mql ", 4) && c.nmql < DJ_MQL_MAX_COMMANDS) {
         c.mql[c.nmql++] = dup_trim (line + 4);
      } else if (!strncmp (line, "columns ", 8)) {
         c.columns = dup_trim (line + 8);
      } else if (!strncmp (line, "error ", 6)) {
         c.error = dup_trim (line + 6);
      } else if (line[0] == '#' || line[0] == '\n') {
         if (print_mode && line[0] == '#') {
            run_case (&c);
            case_clear (&c);
            printf ("%s", line);
         }
      } else {
         fprintf (stderr, "%s:%d: unknown line: %s", path, lineno, line);
         failed++;
      }
   }
   run_case (&c);
   case_clear (&c);
   free (line);
   fclose (f);
}

int
main (int argc, char **argv)
{
   for (int i = 1; i < argc; i++) {
      if (!strcmp (argv[i], "--print")) {
         print_mode = true;
         continue;
      }
      run_file (argv[i]);
   }
   if (!print_mode) {
      printf ("run_golden: %d passed, %d failed\n", passed, failed);
   }
   return failed ? 1 : 0;
}
