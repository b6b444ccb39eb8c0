/*
 * handshake.c -- the commands a mongod answers that are not about data:
 * what drivers, mongosh and Compass send on connecting and around their
 * work. Replies follow mongod's shapes (the fields drivers read).
 * https://www.mongodb.com/docs/manual/reference/command/hello/
 */
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "server-private.h"

/* The MongoDB version whose wire protocol and commands we follow: 8.0
 * (maxWireVersion 25), as the engine's behaviour does (its bulkWrite
 * command is 8.0's). */
#define DJ_SERVER_VERSION "8.0.0"
#define DJ_MAX_WIRE_VERSION 25

static void
ok (bson_t *reply)
{
   BSON_APPEND_DOUBLE (reply, "ok", 1.0);
}

/* Awaitable hello (the SDAM spec's streaming monitor): a client that sends
 * the topologyVersion it last saw and maxAwaitTimeMS is answered when the
 * topology changes or the time is up. A one-member set's topology never
 * changes while the process lives, so the answer waits the time (at most
 * DJ_HELLO_AWAIT_MAX_MS) -- or until the client goes or the server stops
 * (their sockets wake the poll) -- instead of a monitor polling hello in a
 * loop.
 * https://github.com/mongodb/specifications/blob/master/source/server-discovery-and-monitoring/server-monitoring.md#streaming-protocol */
/* The longest a hello waits, whatever maxAwaitTimeMS says: pymongo does not
 * cancel an awaitable check when an operation reports a state change (it
 * only requests a new one), so a longer wait would stall the operations
 * that need a fresh check for that long -- a second costs an idle monitor
 * one hello a second, instead of one each round trip. */
#define DJ_HELLO_AWAIT_MAX_MS 1000

static void
await_topology_change (struct dj_server *srv, dj_conn_t *c, const bson_t *cmd)
{
   bson_iter_t it, tv;
   int64_t wait_ms;
   if (!bson_iter_init_find (&it, cmd, "maxAwaitTimeMS") || !BSON_ITER_HOLDS_NUMBER (&it) ||
       (wait_ms = bson_iter_as_int64 (&it)) <= 0 || !bson_iter_init_find (&it, cmd, "topologyVersion") ||
       !BSON_ITER_HOLDS_DOCUMENT (&it) || !bson_iter_recurse (&it, &tv) || !bson_iter_find (&tv, "processId") ||
       !BSON_ITER_HOLDS_OID (&tv) || !bson_oid_equal (bson_iter_oid (&tv), &srv->process_id)) {
      return; /* not awaitable, or another process's version: answer now */
   }
   if (wait_ms > DJ_HELLO_AWAIT_MAX_MS) {
      wait_ms = DJ_HELLO_AWAIT_MAX_MS;
   }
   struct pollfd p = {c->fd, POLLIN | POLLRDHUP, 0};
   poll (&p, 1, (int) wait_ms);
}

static void
hello (struct dj_server *srv, dj_conn_t *c, bool legacy_name, const bson_t *cmd, bson_t *reply)
{
   bson_t hosts, tv;
   const bson_oid_t *pid = &srv->process_id;
   await_topology_change (srv, c, cmd);
   /* a one-member replica set: drivers then offer sessions and transactions.
    * hosts is the address this client reached us at, so a driver's
    * discovery converges on an address it can reach. */
   if (legacy_name) {
      BSON_APPEND_BOOL (reply, "ismaster", true);
   } else {
      BSON_APPEND_BOOL (reply, "isWritablePrimary", true);
   }
   BSON_APPEND_DOCUMENT_BEGIN (reply, "topologyVersion", &tv);
   BSON_APPEND_OID (&tv, "processId", pid);
   BSON_APPEND_INT64 (&tv, "counter", 0);
   bson_append_document_end (reply, &tv);
   BSON_APPEND_UTF8 (reply, "setName", "djongo");
   BSON_APPEND_INT32 (reply, "setVersion", 1);
   BSON_APPEND_ARRAY_BEGIN (reply, "hosts", &hosts);
   BSON_APPEND_UTF8 (&hosts, "0", c->local);
   bson_append_array_end (reply, &hosts);
   BSON_APPEND_UTF8 (reply, "primary", c->local);
   BSON_APPEND_BOOL (reply, "secondary", false);
   /* the last write's optime and date, which a client's maxStalenessSeconds
    * is measured with (a member without them cannot be selected with a
    * staleness limit); on one member, the majority's are the same.
    * https://www.mongodb.com/docs/manual/reference/command/hello/#replica-sets */
   uint32_t ts_t, ts_i;
   dj_cluster_time_now (srv, &ts_t, &ts_i);
   bson_t lw, op;
   BSON_APPEND_DOCUMENT_BEGIN (reply, "lastWrite", &lw);
   for (int majority = 0; majority < 2; majority++) {
      BSON_APPEND_DOCUMENT_BEGIN (&lw, majority ? "majorityOpTime" : "opTime", &op);
      BSON_APPEND_TIMESTAMP (&op, "ts", ts_t, ts_i);
      BSON_APPEND_INT64 (&op, "t", 1);
      bson_append_document_end (&lw, &op);
      BSON_APPEND_DATE_TIME (&lw, majority ? "majorityWriteDate" : "lastWriteDate", (int64_t) ts_t * 1000);
   }
   bson_append_document_end (reply, &lw);
   BSON_APPEND_INT32 (reply, "maxBsonObjectSize", 16 * 1024 * 1024);
   BSON_APPEND_INT32 (reply, "maxMessageSizeBytes", DJ_WIRE_MAX_MESSAGE);
   BSON_APPEND_INT32 (reply, "maxWriteBatchSize", 100000);
   BSON_APPEND_DATE_TIME (reply, "localTime", (int64_t) time (NULL) * 1000);
   BSON_APPEND_INT32 (reply, "logicalSessionTimeoutMinutes", 30);
   BSON_APPEND_INT64 (reply, "connectionId", c->id);
   BSON_APPEND_INT32 (reply, "minWireVersion", 0);
   BSON_APPEND_INT32 (reply, "maxWireVersion", DJ_MAX_WIRE_VERSION);
   BSON_APPEND_BOOL (reply, "readOnly", false);
   /* what djongo's engine reads beyond MongoDB's commands (drivers ignore
    * hello fields they do not know): djongo's transport sends an insert's
    * djongoReferences (src/engine/commands/references.c), and its items
    * marked deferred, only where this says so */
   bson_t ext;
   BSON_APPEND_DOCUMENT_BEGIN (reply, "djongo", &ext);
   BSON_APPEND_BOOL (&ext, "insertReferences", true);
   BSON_APPEND_BOOL (&ext, "deferredReferences", true); /* djongoReferences' deferred items */
   BSON_APPEND_BOOL (&ext, "djongoMax", true);          /* findAndModify's (commands/maxof.c) */
   BSON_APPEND_BOOL (&ext, "recordKeyed", true);        /* createIndexes' djongoRecordKeyed (storage/ridkey.c) */
   BSON_APPEND_BOOL (&ext, "savepoints", true);         /* djongoSavepoint and its two (sessions.c) */
   bson_append_document_end (reply, &ext);
   dj_compress_negotiate (srv, c, cmd, reply);
   /* saslSupportedMechs: "db.user" asks which mechanisms that user has */
   bson_iter_t sm;
   if (srv->users && bson_iter_init_find (&sm, cmd, "saslSupportedMechs") && BSON_ITER_HOLDS_UTF8 (&sm)) {
      const char *dot = strchr (bson_iter_utf8 (&sm, NULL), '.');
      if (dot && dj_users_has (srv->users, dot + 1)) {
         bson_t mechs;
         BSON_APPEND_ARRAY_BEGIN (reply, "saslSupportedMechs", &mechs);
         BSON_APPEND_UTF8 (&mechs, "0", "SCRAM-SHA-256");
         bson_append_array_end (reply, &mechs);
      }
   }
   ok (reply);
}

static void
build_info (bson_t *reply)
{
   bson_t arr;
   BSON_APPEND_UTF8 (reply, "version", DJ_SERVER_VERSION);
   BSON_APPEND_UTF8 (reply, "gitVersion", "djongo");
   BSON_APPEND_ARRAY_BEGIN (reply, "versionArray", &arr);
   BSON_APPEND_INT32 (&arr, "0", 8);
   BSON_APPEND_INT32 (&arr, "1", 0);
   BSON_APPEND_INT32 (&arr, "2", 0);
   BSON_APPEND_INT32 (&arr, "3", 0);
   bson_append_array_end (reply, &arr);
   BSON_APPEND_INT32 (reply, "bits", 64);
   BSON_APPEND_BOOL (reply, "debug", false);
   BSON_APPEND_INT32 (reply, "maxBsonObjectSize", 16 * 1024 * 1024);
   BSON_APPEND_ARRAY_BEGIN (reply, "storageEngines", &arr);
   BSON_APPEND_UTF8 (&arr, "0", "djongo-lmdb");
   bson_append_array_end (reply, &arr);
   BSON_APPEND_UTF8 (reply, "javascriptEngine", "none");
   ok (reply);
}

static void
host_info (bson_t *reply)
{
   bson_t sys, os;
   struct utsname u;
   char host[256] = "localhost";
   gethostname (host, sizeof host - 1);
   BSON_APPEND_DOCUMENT_BEGIN (reply, "system", &sys);
   BSON_APPEND_DATE_TIME (&sys, "currentTime", (int64_t) time (NULL) * 1000);
   BSON_APPEND_UTF8 (&sys, "hostname", host);
   BSON_APPEND_INT32 (&sys, "cpuAddrSize", 64);
   BSON_APPEND_INT32 (&sys, "numCores", (int32_t) sysconf (_SC_NPROCESSORS_ONLN));
   bson_append_document_end (reply, &sys);
   BSON_APPEND_DOCUMENT_BEGIN (reply, "os", &os);
   if (uname (&u) == 0) {
      BSON_APPEND_UTF8 (&os, "type", u.sysname);
      BSON_APPEND_UTF8 (&os, "name", u.sysname);
      BSON_APPEND_UTF8 (&os, "version", u.release);
   }
   bson_append_document_end (reply, &os);
   ok (reply);
}

/* getParameter: "*" lists every parameter; otherwise the ones named
 * (`getParameter: 1, name: 1`). Unknown names are left out.
 * https://www.mongodb.com/docs/manual/reference/command/getParameter/ */
static void
get_parameter (struct dj_server *srv, const bson_t *cmd, bson_t *reply)
{
   bson_iter_t it;
   bool all = bson_iter_init_find (&it, cmd, "getParameter") && BSON_ITER_HOLDS_UTF8 (&it) &&
              !strcmp (bson_iter_utf8 (&it, NULL), "*");
   bson_init (reply);
   if (all || bson_has_field (cmd, "featureCompatibilityVersion")) {
      bson_t fcv;
      BSON_APPEND_DOCUMENT_BEGIN (reply, "featureCompatibilityVersion", &fcv);
      BSON_APPEND_UTF8 (&fcv, "version", "8.0");
      bson_append_document_end (reply, &fcv);
   }
   /* mongod reports whether it was started with test commands (drivers'
    * test harnesses read it before using fail points) */
   if (all || bson_has_field (cmd, "enableTestCommands")) {
      BSON_APPEND_BOOL (reply, "enableTestCommands", srv->test_commands);
   }
   if (all || bson_has_field (cmd, "transactionLifetimeLimitSeconds")) {
      BSON_APPEND_INT32 (reply, "transactionLifetimeLimitSeconds", (int32_t) (srv->txn_lifetime_ms / 1000));
   }
   ok (reply);
}

/* The handshake's client metadata names the application (appName in the
 * connection string): the failCommand fail point can target it, the
 * handshake itself included -- mongod reads the metadata before it checks
 * its fail points, so {failCommands: ["hello"], appName: A} blocks or fails
 * the handshakes of A's new connections (pymongo's pool tests). */
void
dj_handshake_note_client (dj_conn_t *c, const char *name, const bson_t *cmd)
{
   bson_iter_t it, d;
   if ((!strcmp (name, "hello") || !strcasecmp (name, "isMaster")) && bson_iter_init (&it, cmd) &&
       bson_iter_find_descendant (&it, "client.application.name", &d) && BSON_ITER_HOLDS_UTF8 (&d)) {
      snprintf (c->app_name, sizeof c->app_name, "%s", bson_iter_utf8 (&d, NULL));
   }
}

static void
command_not_found (const char *name, bson_t *reply)
{
   bson_error_t e;
   dj_err (&e, DJ_CommandNotFound, "no such command: '%s'", name);
   dj_error_append_reply (&e, reply);
}

/* Atlas Search's commands and $listSearchIndexes: mongod outside Atlas
 * refuses them with SearchNotEnabled (31082), and so does this server.
 * https://www.mongodb.com/docs/manual/reference/command/createSearchIndexes/ */
static bool
atlas_search (const char *name, const bson_t *cmd)
{
   if (!strcmp (name, "createSearchIndexes") || !strcmp (name, "dropSearchIndex") ||
       !strcmp (name, "updateSearchIndex")) {
      return true;
   }
   bson_iter_t it, st, stage;
   return !strcmp (name, "aggregate") && bson_iter_init_find (&it, cmd, "pipeline") && BSON_ITER_HOLDS_ARRAY (&it) &&
          bson_iter_recurse (&it, &st) && bson_iter_next (&st) && BSON_ITER_HOLDS_DOCUMENT (&st) &&
          bson_iter_recurse (&st, &stage) && bson_iter_next (&stage) &&
          !strcmp (bson_iter_key (&stage), "$listSearchIndexes");
}

bool
dj_handshake_command (struct dj_server *srv, dj_conn_t *c, const char *db, const char *name, const bson_t *cmd,
                      bson_t *reply)
{
   bson_iter_t it;
   (void) db;
   if (!strcmp (name, "hello") || !strcasecmp (name, "isMaster")) {
      bson_init (reply);
      hello (srv, c, strcmp (name, "hello") != 0, cmd, reply);
      return true;
   }
   if (!strcasecmp (name, "buildInfo")) {
      bson_init (reply);
      build_info (reply);
      return true;
   }
   if (!strcmp (name, "hostInfo")) {
      bson_init (reply);
      host_info (reply);
      return true;
   }
   if (!strcmp (name, "whatsmyuri")) {
      bson_init (reply);
      BSON_APPEND_UTF8 (reply, "you", c->peer);
      ok (reply);
      return true;
   }
   if (!strcmp (name, "getParameter")) {
      get_parameter (srv, cmd, reply);
      return true;
   }
   if (!strcmp (name, "connectionStatus")) {
      bson_t info, arr;
      bson_init (reply);
      BSON_APPEND_DOCUMENT_BEGIN (reply, "authInfo", &info);
      BSON_APPEND_ARRAY_BEGIN (&info, "authenticatedUsers", &arr);
      bson_append_array_end (&info, &arr);
      BSON_APPEND_ARRAY_BEGIN (&info, "authenticatedUserRoles", &arr);
      bson_append_array_end (&info, &arr);
      bson_append_document_end (reply, &info);
      ok (reply);
      return true;
   }
   if (!strcmp (name, "endSessions") || !strcmp (name, "killSessions")) {
      bson_init (reply);
      if (bson_iter_init_find (&it, cmd, name) && BSON_ITER_HOLDS_ARRAY (&it)) {
         uint32_t len;
         const uint8_t *data;
         bson_t arr;
         bson_iter_array (&it, &len, &data);
         if (bson_init_static (&arr, data, len)) {
            dj_sessions_end (srv->sessions, &arr);
         }
      }
      ok (reply);
      return true;
   }
   if (!strcmp (name, "killAllSessions")) {
      /* (no users to filter by: every session is this server's one user's) */
      dj_sessions_kill_all (srv->sessions);
      bson_init (reply);
      ok (reply);
      return true;
   }
   if (!strcmp (name, "refreshSessions") || !strcmp (name, "logout") || !strcmp (name, "getFreeMonitoringStatus")) {
      bson_init (reply);
      ok (reply);
      return true;
   }
   if (!strcmp (name, "getCmdLineOpts")) {
      bson_t argv, parsed, storage;
      bson_init (reply);
      BSON_APPEND_ARRAY_BEGIN (reply, "argv", &argv);
      BSON_APPEND_UTF8 (&argv, "0", "djongo-server");
      bson_append_array_end (reply, &argv);
      BSON_APPEND_DOCUMENT_BEGIN (reply, "parsed", &parsed);
      BSON_APPEND_DOCUMENT_BEGIN (&parsed, "storage", &storage);
      BSON_APPEND_UTF8 (&storage, "dbPath", srv->dbpath);
      bson_append_document_end (&parsed, &storage);
      if (srv->test_commands) {
         bson_t sp;
         BSON_APPEND_DOCUMENT_BEGIN (&parsed, "setParameter", &sp);
         BSON_APPEND_UTF8 (&sp, "enableTestCommands", "1");
         bson_append_document_end (&parsed, &sp);
      }
      bson_append_document_end (reply, &parsed);
      ok (reply);
      return true;
   }
   if (!strcmp (name, "serverStatus")) {
      bson_t conns;
      char host[256] = "localhost";
      gethostname (host, sizeof host - 1);
      bson_init (reply);
      BSON_APPEND_UTF8 (reply, "host", host);
      BSON_APPEND_UTF8 (reply, "version", DJ_SERVER_VERSION);
      BSON_APPEND_UTF8 (reply, "process", "djongo-server");
      BSON_APPEND_INT64 (reply, "pid", (int64_t) getpid ());
      BSON_APPEND_INT64 (reply, "uptimeMillis", (int64_t) time (NULL) * 1000 - srv->started_ms);
      BSON_APPEND_DATE_TIME (reply, "localTime", (int64_t) time (NULL) * 1000);
      pthread_mutex_lock (&srv->mu);
      BSON_APPEND_DOCUMENT_BEGIN (reply, "connections", &conns);
      BSON_APPEND_INT32 (&conns, "current", srv->nconns);
      BSON_APPEND_INT32 (&conns, "available", srv->max_connections - srv->nconns);
      BSON_APPEND_INT64 (&conns, "totalCreated", srv->next_conn_id);
      bson_append_document_end (reply, &conns);
      pthread_mutex_unlock (&srv->mu);
      /* metrics.ttl, as mongod's: what the TTL monitor deleted, and its passes
       * https://www.mongodb.com/docs/manual/reference/command/serverStatus/#mongodb-serverstatus-serverstatus.metrics.ttl */
      bson_t metrics, ttl;
      int64_t deleted, passes;
      dj_engine_ttl_stats (srv->engine, &deleted, &passes);
      BSON_APPEND_DOCUMENT_BEGIN (reply, "metrics", &metrics);
      BSON_APPEND_DOCUMENT_BEGIN (&metrics, "ttl", &ttl);
      BSON_APPEND_INT64 (&ttl, "deletedDocuments", deleted);
      BSON_APPEND_INT64 (&ttl, "passes", passes);
      bson_append_document_end (&metrics, &ttl);
      bson_append_document_end (reply, &metrics);
      dj_compress_status (srv, reply);
      ok (reply);
      return true;
   }
   if (atlas_search (name, cmd)) {
      bson_error_t e;
      dj_err (&e, 31082,
              "Using Atlas Search Database Commands and the $listSearchIndexes aggregation stage requires "
              "additional configuration. Please connect to Atlas or an AtlasCLI local deployment to enable.");
      bson_init (reply);
      dj_error_append_reply (&e, reply);
      return true;
   }
   /* server administration we do not have: a clear CommandNotFound rather
    * than the engine's generic one */
   if (!strcmp (name, "shutdown") || !strcmp (name, "replSetGetStatus") || !strcmp (name, "saslStart") ||
       !strcmp (name, "authenticate")) {
      bson_init (reply);
      command_not_found (name, reply);
      return true;
   }
   return false;
}

/* ---- the Stable API ------------------------------------------------------------ */

/* The commands of API Version 1 (the manual's Stable API changelog for 7.0,
 * with the authentication commands drivers run under a declared API). */
static bool
in_api_v1 (const char *name)
{
   static const char *const v1[] = {
      "abortTransaction", "aggregate",     "authenticate",  "collMod",     "commitTransaction", "count",
      "create",           "createIndexes", "delete",        "drop",        "dropDatabase",      "dropIndexes",
      "endSessions",      "explain",       "find",          "findAndModify", "getMore",         "hello",
      "insert",           "killCursors",   "listCollections", "listDatabases", "listIndexes",   "ping",
      "refreshSessions",  "saslContinue",  "saslStart",     "update",
   };
   for (size_t k = 0; k < sizeof v1 / sizeof v1[0]; k++) {
      if (!strcmp (v1[k], name)) {
         return true;
      }
   }
   return false;
}

const char *
dj_pipeline_stage_among (const bson_t *cmd, const char *const *names, size_t n)
{
   bson_iter_t it, st, stage;
   if (!bson_iter_init_find (&it, cmd, "pipeline") || !BSON_ITER_HOLDS_ARRAY (&it) || !bson_iter_recurse (&it, &st)) {
      return NULL;
   }
   while (bson_iter_next (&st)) {
      if (BSON_ITER_HOLDS_DOCUMENT (&st) && bson_iter_recurse (&st, &stage) && bson_iter_next (&stage)) {
         for (size_t k = 0; k < n; k++) {
            if (!strcmp (names[k], bson_iter_key (&stage))) {
               return names[k];
            }
         }
      }
   }
   return NULL;
}

/* An aggregate's stage that is never in API Version 1, or NULL. */
static const char *
stage_outside_api_v1 (const bson_t *cmd)
{
   static const char *const never[] = {"$currentOp", "$indexStats", "$listLocalSessions", "$listSessions",
                                       "$planCacheStats"};
   return dj_pipeline_stage_among (cmd, never, sizeof never / sizeof never[0]);
}

bool
dj_stable_api_check (const char *name, const bson_t *cmd, bson_t *reply)
{
   bson_iter_t it;
   bson_error_t e;
   bool has_version = bson_iter_init_find (&it, cmd, "apiVersion");
   if (has_version && !BSON_ITER_HOLDS_UTF8 (&it)) {
      dj_err (&e, DJ_TypeMismatch, "BSON field 'apiVersion' is the wrong type, expected type 'string'");
   } else if (has_version && strcmp (bson_iter_utf8 (&it, NULL), "1")) {
      dj_err (&e, DJ_APIVersionError, "API version must be \"1\"");
   } else if (!has_version && (bson_has_field (cmd, "apiStrict") || bson_has_field (cmd, "apiDeprecationErrors"))) {
      dj_err (&e, 4886600, "Provided %s without passing apiVersion",
              bson_has_field (cmd, "apiStrict") ? "apiStrict" : "apiDeprecationErrors");
   } else if (!bson_iter_init_find (&it, cmd, "apiStrict") || !bson_iter_as_bool (&it)) {
      return true;
   } else if (!in_api_v1 (name)) {
      dj_err (&e, DJ_APIStrictError,
              "Provided apiStrict:true, but the command %s is not in API Version 1. Information on supported "
              "commands and migrations in API Version 1 can be found at "
              "https://dochub.mongodb.org/core/manual-versioned-api",
              name);
   } else if (!strcmp (name, "aggregate") && stage_outside_api_v1 (cmd)) {
      dj_err (&e, DJ_APIStrictError, "%s is not allowed with 'apiStrict: true' in API Version 1",
              stage_outside_api_v1 (cmd));
   } else {
      return true;
   }
   bson_init (reply);
   dj_error_append_reply (&e, reply);
   return false;
}
