/*
 * djongo-engine -- run MongoDB commands against a data directory.
 *
 *   djongo-engine --dbpath DIR [--db NAME] ['{"find": "c"}' ...]
 *   djongo-engine --dbpath DIR | --host URI dump OUT [--db NAME]
 *   djongo-engine --dbpath DIR | --host URI restore IN [--drop]
 *
 * Each argument (or, with none, each line of standard input) is a command in
 * MongoDB Extended JSON; each reply is printed as one line of relaxed
 * Extended JSON (--canonical: canonical, which keeps every BSON type, for
 * programs that drive the engine through a pipe; output is flushed per
 * line). A line "use DB" switches the database. Exit status 1 if any
 * command failed.
 *
 * dump / restore (dump.c): databases in mongodump's layout, from or to the
 * data directory or (--host) a MongoDB server, so data moves between the
 * embedded engine, djongo-server and MongoDB (mongorestore/mongodump read
 * and write the same files).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dj_engine.h"
#include "dj_transport.h"
#include "dump.h"

static bool canonical;

static const char usage_text[] =
   "usage: djongo-engine --dbpath DIR [--db NAME] [--canonical] [JSON-COMMAND ...]\n"
   "       djongo-engine --dbpath DIR | --host URI dump OUT-DIR [--db NAME]\n"
   "       djongo-engine --dbpath DIR | --host URI restore IN-DIR [--drop]\n";
static const char help_text[] =
   "\n"
   "Runs MongoDB commands on djongo's embedded engine, with no server.\n"
   "\n"
   "  --dbpath DIR    the data directory (created if missing)\n"
   "  --db NAME       the database the commands run in (default: test)\n"
   "  --canonical     print replies as canonical Extended JSON (every BSON type kept)\n"
   "  --version       print the version\n"
   "  -h, --help      print this help\n"
   "\n"
   "Each JSON-COMMAND (or, with none, each line of stdin) is one command in\n"
   "Extended JSON, e.g. '{\"find\": \"blog_entry\", \"filter\": {\"rating\": {\"$gt\": 3}}}';\n"
   "each reply is one line. On stdin, a line \"use NAME\" switches the database.\n"
   "\n"
   "dump OUT-DIR writes every database (or --db NAME) in mongodump's layout:\n"
   "OUT-DIR/<db>/<collection>.bson (the documents) and .metadata.json (options,\n"
   "indexes; views too). restore IN-DIR reads it back (also what mongodump wrote):\n"
   "collections with their options, documents (inserted, never overwritten), indexes,\n"
   "views; --drop drops each collection first. --host URI: a MongoDB server\n"
   "(djongo-server, a replica set, Atlas) instead of the data directory.\n"
   "Exit status: 0, 1 when a command failed, 2 on bad usage.\n";

static int
run_one (dj_engine_t *e, const char *db, const char *json)
{
   bson_error_t err;
   bson_t *cmd = bson_new_from_json ((const uint8_t *) json, -1, &err);
   bson_t reply;

   if (!cmd) {
      fprintf (stderr, "djongo-engine: not a JSON command: %s\n", err.message);
      return 1;
   }
   bool ok = dj_engine_run_command (e, db, cmd, &reply);
   char *out = canonical ? bson_as_canonical_extended_json (&reply, NULL) : bson_as_relaxed_extended_json (&reply, NULL);
   printf ("%s\n", out);
   fflush (stdout);
   bson_free (out);
   bson_destroy (&reply);
   bson_destroy (cmd);
   return ok ? 0 : 1;
}

/* dump / restore over the transport: the data directory, or --host's server */
static int
dump_or_restore (const char *action, const char *dir, const char *dbpath, const char *host, const char *only_db,
                 bool drop)
{
   if (!dbpath == !host || (drop && strcmp (action, "restore")) || (only_db && strcmp (action, "dump"))) {
      fputs (usage_text, stderr);
      return 2;
   }
   char *where = NULL;
   if (dbpath) {
      /* the transport reads a bare word as a host name: a path it is */
      where = dbpath[0] == '/' || dbpath[0] == '.' || dbpath[0] == '~' ? bson_strdup (dbpath)
                                                                       : bson_strdup_printf ("./%s", dbpath);
   } else {
      where = bson_strdup (host);
   }
   bson_error_t err;
   /* dump reads: the data directory must exist */
   dj_transport_t *t = dj_transport_open (where, !strcmp (action, "dump") ? DJ_TRANSPORT_EXISTING : 0, 0, &err);
   bson_free (where);
   if (!t) {
      fprintf (stderr, "djongo-engine: %s\n", err.message);
      return 1;
   }
   int rc = !strcmp (action, "dump") ? dj_dump (t, dir, only_db) : dj_restore (t, dir, drop);
   dj_transport_close (t);
   return rc;
}

int
main (int argc, char **argv)
{
   const char *dbpath = NULL, *db = "test", *host = NULL, *action = NULL, *action_dir = NULL;
   bool db_given = false, drop = false;
   int first = argc, rc = 0;

   dj_transport_process_init (); /* before any thread */

   for (int i = 1; i < argc; i++) {
      if (!strcmp (argv[i], "--dbpath") && i + 1 < argc) {
         dbpath = argv[++i];
      } else if (!strcmp (argv[i], "--host") && i + 1 < argc) {
         host = argv[++i];
      } else if (!strcmp (argv[i], "--drop")) {
         drop = true;
      } else if ((!strcmp (argv[i], "dump") || !strcmp (argv[i], "restore")) && !action && i + 1 < argc) {
         action = argv[i];
         action_dir = argv[++i];
      } else if (!strcmp (argv[i], "--db") && i + 1 < argc) {
         db = argv[++i];
         db_given = true;
      } else if (!strcmp (argv[i], "--canonical")) {
         canonical = true;
      } else if (!strcmp (argv[i], "--help") || !strcmp (argv[i], "-h")) {
         printf ("%s%s", usage_text, help_text);
         return 0;
      } else if (!strcmp (argv[i], "--version")) {
         printf ("djongo-engine %s\n", DJONGO_VERSION);
         return 0;
      } else if (argv[i][0] == '-' && argv[i][1] == '-') {
         fprintf (stderr, "djongo-engine: unknown option or missing value: %s\n%s", argv[i], usage_text);
         return 2;
      } else if (!action) {
         first = i;
         break;
      } else {
         fprintf (stderr, "djongo-engine: unexpected argument after %s: %s\n%s", action, argv[i], usage_text);
         return 2;
      }
   }
   if (action) {
      return dump_or_restore (action, action_dir, dbpath, host, db_given ? db : NULL, drop);
   }
   if (!dbpath || host || drop) {
      fputs (usage_text, stderr);
      return 2;
   }
   bson_error_t err;
   dj_engine_t *e = dj_engine_open (dbpath, NULL, &err);
   if (!e) {
      fprintf (stderr, "djongo-engine: %s\n", err.message);
      return 2;
   }
   if (first < argc) {
      for (int i = first; i < argc; i++) {
         rc |= run_one (e, db, argv[i]);
      }
   } else {
      char *line = NULL, *dbname = bson_strdup (db);
      size_t cap = 0;
      ssize_t n;
      while ((n = getline (&line, &cap, stdin)) > 0) {
         line[strcspn (line, "\n")] = '\0';
         if (!strncmp (line, "use ", 4)) {
            bson_free (dbname);
            dbname = bson_strdup (line + 4);
            printf ("{\"ok\": 1}\n");
            fflush (stdout);
         } else if (line[0]) {
            rc |= run_one (e, dbname, line);
         }
      }
      bson_free (dbname);
      free (line);
   }
   dj_engine_close (e);
   return rc;
}
