/*
 * profile.c -- the database profiler: the `profile` command sets a
 * database's level (0 off, 1 operations slower than slowms, 2 all) and
 * dj_profile_record writes each profiled operation to that database's
 * system.profile, a capped collection of 1 MiB made on first use, as
 * mongod's profiler does.
 * https://www.mongodb.com/docs/manual/reference/command/profile/
 * https://www.mongodb.com/docs/manual/reference/database-profiler/
 *
 * The settings are per data directory and database, in memory (mongod's
 * are per process too: a restart turns profiling off), in a table guarded
 * by its own lock.
 */
#include "dj_commands.h"

#include <stdio.h>

typedef struct profile_setting {
   char *path;            /* owned: the data directory */
   char *db;              /* owned */
   int level;
   int64_t slowms;
   struct profile_setting *next;
} profile_setting_t;

static pthread_mutex_t settings_mu = PTHREAD_MUTEX_INITIALIZER;
static profile_setting_t *settings; /* guarded by settings_mu; lives until the process ends */

/* A thread writing a profile entry does not profile that write. */
static _Thread_local bool recording;

/* Caller holds settings_mu. */
static profile_setting_t *
setting_of (const dj_engine_t *e, const char *db, bool make)
{
   for (profile_setting_t *s = settings; s; s = s->next) {
      if (!strcmp (s->path, e->path) && !strcmp (s->db, db)) {
         return s;
      }
   }
   if (!make) {
      return NULL;
   }
   profile_setting_t *s = bson_malloc0 (sizeof *s);
   s->path = bson_strdup (e->path);
   s->db = bson_strdup (db);
   s->slowms = 100; /* mongod's default */
   s->next = settings;
   settings = s;
   return s;
}

bool
dj_cmd_profile (dj_engine_t *e, const char *db, const bson_t *cmd, bson_t *reply, bson_error_t *error)
{
   static const char *const known[] = {"slowms", "sampleRate", "filter", NULL};
   bson_iter_t it;
   int64_t slowms = -1;
   bool has;
   (void) e;
   if (!dj_cmd_check_fields (cmd, known, error) || !dj_cmd_get_int64 (cmd, "slowms", &slowms, &has, error)) {
      return false;
   }
   bson_iter_init (&it, cmd);
   bson_iter_next (&it);
   if (!BSON_ITER_HOLDS_NUMBER (&it)) {
      return dj_err (error, DJ_TypeMismatch, "profile level must be a number");
   }
   int64_t level = bson_iter_as_int64 (&it);
   if (level < -1 || level > 2) {
      return dj_err (error, DJ_BadValue, "Invalid profiling level: %" PRId64 " (one of -1, 0, 1, 2)", level);
   }
   if (bson_iter_init_find (&it, cmd, "filter") || (bson_iter_init_find (&it, cmd, "sampleRate") &&
                                                    bson_iter_as_double (&it) != 1.0)) {
      return dj_err (error, DJ_NotImplemented, "profile: the embedded engine profiles every operation past slowms "
                                               "(no filter, sampleRate 1.0)");
   }
   pthread_mutex_lock (&settings_mu);
   profile_setting_t *s = setting_of (e, db, level >= 0 || has);
   BSON_APPEND_INT32 (reply, "was", s ? s->level : 0);
   BSON_APPEND_INT32 (reply, "slowms", (int32_t) (s ? s->slowms : 100));
   BSON_APPEND_DOUBLE (reply, "sampleRate", 1.0);
   if (s && level >= 0) {
      s->level = (int) level;
   }
   if (s && has && slowms >= 0) {
      s->slowms = slowms;
   }
   pthread_mutex_unlock (&settings_mu);
   BSON_APPEND_DOUBLE (reply, "ok", 1.0);
   return true;
}

void
dj_profile_record (dj_engine_t *e, const char *db, const char *name, const bson_t *cmd, const bson_t *reply,
                   int64_t start_ms, int64_t millis)
{
   if (recording || !strcmp (name, "profile")) {
      return;
   }
   pthread_mutex_lock (&settings_mu);
   profile_setting_t *s = setting_of (e, db, false);
   bool on = s && (s->level == 2 || (s->level == 1 && millis >= s->slowms));
   pthread_mutex_unlock (&settings_mu);
   if (!on) {
      return;
   }
   /* an operation on system.profile itself is not profiled (mongod's rule) */
   bson_iter_t it;
   if (bson_iter_init (&it, cmd) && bson_iter_next (&it) && BSON_ITER_HOLDS_UTF8 (&it) &&
       !strcmp (bson_iter_utf8 (&it, NULL), "system.profile")) {
      return;
   }
   recording = true;
   bson_t create = BSON_INITIALIZER, ins = BSON_INITIALIZER, docs, doc, r;
   BSON_APPEND_UTF8 (&create, "create", "system.profile");
   BSON_APPEND_BOOL (&create, "capped", true);
   BSON_APPEND_INT64 (&create, "size", 1 << 20);
   dj_engine_run_command (e, db, &create, &r); /* NamespaceExists after the first time */
   bson_destroy (&r);
   const char *coll = bson_iter_init (&it, cmd) && bson_iter_next (&it) && BSON_ITER_HOLDS_UTF8 (&it)
                         ? bson_iter_utf8 (&it, NULL)
                         : "$cmd";
   char *ns = bson_strdup_printf ("%s.%s", db, coll);
   bool ok = bson_iter_init_find (&it, reply, "ok") && bson_iter_as_double (&it) == 1.0;
   BSON_APPEND_UTF8 (&ins, "insert", "system.profile");
   BSON_APPEND_ARRAY_BEGIN (&ins, "documents", &docs);
   BSON_APPEND_DOCUMENT_BEGIN (&docs, "0", &doc);
   const char *op = !strcmp (name, "insert") || !strcmp (name, "update") || !strcmp (name, "getMore")
                       ? name
                       : !strcmp (name, "delete") ? "remove" : !strcmp (name, "find") ? "query" : "command";
   BSON_APPEND_UTF8 (&doc, "op", op);
   BSON_APPEND_UTF8 (&doc, "ns", ns);
   BSON_APPEND_DOCUMENT (&doc, "command", cmd);
   if (!ok && bson_iter_init_find (&it, reply, "errmsg") && BSON_ITER_HOLDS_UTF8 (&it)) {
      BSON_APPEND_UTF8 (&doc, "errMsg", bson_iter_utf8 (&it, NULL));
   }
   BSON_APPEND_BOOL (&doc, "ok", ok);
   BSON_APPEND_INT64 (&doc, "millis", millis);
   BSON_APPEND_DATE_TIME (&doc, "ts", start_ms);
   bson_append_document_end (&docs, &doc);
   bson_append_array_end (&ins, &docs);
   dj_engine_run_command (e, db, &ins, &r);
   bson_destroy (&r);
   bson_destroy (&ins);
   bson_destroy (&create);
   bson_free (ns);
   recording = false;
}
