/*
 * failpoint.c -- the test command configureFailPoint and mongod's
 * "failCommand" fail point, which drivers' specification tests use to make
 * the server fail, block or drop a connection on chosen commands.
 * https://github.com/mongodb/mongo/wiki/The-%22failCommand%22-fail-point
 *
 *   {configureFailPoint: "failCommand",
 *    mode: "alwaysOn" | "off" | {times: N} | {skip: N},
 *    data: {failCommands: [names], errorCode, closeConnection,
 *           blockConnection + blockTimeMS, writeConcernError: {...},
 *           errorLabels: [...], appName}}
 *
 * Also mongod's "onPrimaryTransactionalWrite" (retryable-writes tests):
 * on a retryable write (txnNumber outside a transaction) it closes the
 * connection instead of replying -- after the write is applied, or, with
 * data.failBeforeCommitExceptionCode, before (the write is not applied).
 *
 * And mongod's "failGetMoreAfterCursorCheckout" (change streams' resume
 * tests): a getMore fails with data.errorCode after finding its cursor;
 * as the error is the getMore's own, mongod's labeller marks it
 * ResumableChangeStreamError when a change stream may resume after it
 * (failCommand's errors carry only the labels its data gives).
 *
 * Only with test commands enabled (--setParameter enableTestCommands=1);
 * otherwise the command does not exist (CommandNotFound), as on a mongod
 * started without them. The reply's `count` is how many times the fail
 * point fired before this command (mongod's "times entered").
 *
 * The fail point is server-wide state, guarded by its mutex; a matching
 * command takes a copy of what to do (dj_fail_action_t) under the lock
 * and acts on it outside it (blocking must not hold the lock).
 */
#include <string.h>
#include <time.h>

#include "server-private.h"

enum { FP_OFF, FP_ALWAYS, FP_TIMES, FP_SKIP };

struct dj_failpoint {
   pthread_mutex_t mu;
   int mode;
   int64_t n;       /* FP_TIMES: firings left; FP_SKIP: matches still to let through */
   int64_t entered; /* firings since the server started */
   bson_t *data;    /* owned: the data document, or NULL when off */
   /* maxTimeAlwaysTimeOut's only: the open cursors a command with a
    * maxTimeMS opened (their getMores run under that time limit), at most
    * TIMED_MAX of them, the oldest forgotten first */
   int64_t *timed; /* owned array */
   size_t ntimed, timed_cap;
};

#define TIMED_MAX 4096

dj_failpoint_t *
dj_failpoint_new (void)
{
   dj_failpoint_t *fp = bson_malloc0 (sizeof *fp);
   pthread_mutex_init (&fp->mu, NULL);
   return fp;
}

void
dj_failpoint_destroy (dj_failpoint_t *fp)
{
   if (!fp) {
      return;
   }
   bson_destroy (fp->data);
   pthread_mutex_destroy (&fp->mu);
   bson_free (fp->timed);
   bson_free (fp);
}

void
dj_fail_action_cleanup (dj_fail_action_t *a)
{
   bson_destroy (a->error_labels);
   bson_destroy (a->write_concern_error);
   memset (a, 0, sizeof *a);
}

static bool
failure (bson_t *reply, uint32_t code, const char *msg)
{
   bson_error_t e;
   dj_err (&e, code, "%s", msg);
   bson_init (reply);
   dj_error_append_reply (&e, reply);
   return true;
}

/* The mode: "alwaysOn", "off", {times: N} or {skip: N} (N >= 0). */
static bool
parse_mode (const bson_iter_t *it, int *mode, int64_t *n)
{
   if (BSON_ITER_HOLDS_UTF8 (it)) {
      const char *m = bson_iter_utf8 (it, NULL);
      *mode = !strcmp (m, "alwaysOn") ? FP_ALWAYS : !strcmp (m, "off") ? FP_OFF : -1;
      *n = 0;
      return *mode >= 0;
   }
   bson_iter_t d;
   if (!BSON_ITER_HOLDS_DOCUMENT (it) || !bson_iter_recurse (it, &d) || !bson_iter_next (&d) ||
       !BSON_ITER_HOLDS_NUMBER (&d)) {
      return false;
   }
   const char *k = bson_iter_key (&d);
   *mode = !strcmp (k, "times") ? FP_TIMES : !strcmp (k, "skip") ? FP_SKIP : -1;
   *n = bson_iter_as_int64 (&d);
   if (*mode == FP_TIMES && *n == 0) {
      *mode = FP_OFF; /* {times: 0}: never fires */
   }
   return *mode >= 0 && *n >= 0 && !bson_iter_next (&d);
}

bool
dj_failpoint_configure (struct dj_server *srv, const char *db, const bson_t *cmd, bson_t *reply)
{
   bson_iter_t it;
   if (!srv->test_commands) {
      return failure (reply, DJ_CommandNotFound, "no such command: 'configureFailPoint'");
   }
   if (strcmp (db, "admin")) {
      return failure (reply, DJ_Unauthorized, "configureFailPoint may only be run against the admin database.");
   }
   bson_iter_init_find (&it, cmd, "configureFailPoint");
   const char *fp_name = BSON_ITER_HOLDS_UTF8 (&it) ? bson_iter_utf8 (&it, NULL) : "";
   bool fail_command = !strcmp (fp_name, "failCommand");
   bool get_more = !strcmp (fp_name, "failGetMoreAfterCursorCheckout");
   bool max_time = !strcmp (fp_name, "maxTimeAlwaysTimeOut");
   if (!fail_command && !get_more && !max_time && strcmp (fp_name, "onPrimaryTransactionalWrite")) {
      /* mongod has many fail points; this server has the ones clients' tests use */
      return failure (reply, DJ_BadValue,
                      "unknown fail point: djongo-server has 'failCommand', 'onPrimaryTransactionalWrite', "
                      "'failGetMoreAfterCursorCheckout' and 'maxTimeAlwaysTimeOut'");
   }
   int mode;
   int64_t n;
   if (!bson_iter_init_find (&it, cmd, "mode") || !parse_mode (&it, &mode, &n)) {
      return failure (reply, DJ_BadValue,
                      "mode must be \"alwaysOn\", \"off\", {times: N} or {skip: N} with N a non-negative number");
   }
   bson_t *data = NULL;
   if (bson_iter_init_find (&it, cmd, "data")) {
      uint32_t len;
      const uint8_t *p;
      bson_t d;
      if (!BSON_ITER_HOLDS_DOCUMENT (&it)) {
         return failure (reply, DJ_TypeMismatch, "'data' must be a document");
      }
      bson_iter_document (&it, &len, &p);
      bson_init_static (&d, p, len);
      data = bson_copy (&d);
   } else {
      /* mongod keeps a fail point's data as given: a failCommand without
       * data.failCommands is accepted and names no command, so it never
       * fires (dj_failpoint_check); pymongo's pool tests configure one */
      data = bson_new (); /* onPrimaryTransactionalWrite's defaults */
   }
   dj_failpoint_t *fp = fail_command ? srv->failpoint
                        : get_more   ? srv->getmore_fp
                        : max_time   ? srv->maxtime_fp
                                     : srv->txn_write_fp;
   pthread_mutex_lock (&fp->mu);
   int64_t before = fp->entered;
   bson_destroy (fp->data);
   fp->data = mode == FP_OFF ? NULL : data;
   if (mode == FP_OFF && data) {
      bson_destroy (data);
   }
   fp->mode = mode;
   fp->n = n;
   pthread_mutex_unlock (&fp->mu);
   bson_init (reply);
   BSON_APPEND_INT64 (reply, "count", before);
   BSON_APPEND_DOUBLE (reply, "ok", 1.0);
   return true;
}

/* Under fp->mu, for a command the fail point applies to: does it fire
 * (skip / times counted)? */
static bool
fires (dj_failpoint_t *fp)
{
   if (fp->mode == FP_SKIP && fp->n > 0) {
      fp->n--;
      return false;
   }
   fp->entered++;
   return true;
}

/* Under fp->mu, after it fired: {times: N} runs out. */
static void
fired (dj_failpoint_t *fp)
{
   if (fp->mode == FP_TIMES && --fp->n == 0) {
      fp->mode = FP_OFF;
      bson_destroy (fp->data);
      fp->data = NULL;
   }
}

/* The statements a write command holds, which mongod's
 * onPrimaryTransactionalWrite counts (each has its stmtId): its documents,
 * updates, deletes or bulkWrite ops; findAndModify is one. */
static int64_t
statements (const char *name, const bson_t *cmd)
{
   static const char *const arrays[][2] = {
      {"insert", "documents"}, {"update", "updates"}, {"delete", "deletes"}, {"bulkWrite", "ops"}};
   for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++) {
      bson_iter_t it, a;
      if (strcmp (name, arrays[i][0])) {
         continue;
      }
      int64_t n = 0;
      if (bson_iter_init_find (&it, cmd, arrays[i][1]) && BSON_ITER_HOLDS_ARRAY (&it) && bson_iter_recurse (&it, &a)) {
         while (bson_iter_next (&a)) {
            n++;
         }
      }
      return n;
   }
   return 1;
}

bool
dj_failpoint_txn_write (struct dj_server *srv, const char *name, const bson_t *cmd, bool *fail_before)
{
   dj_failpoint_t *fp = srv->txn_write_fp;
   bson_iter_t it;
   bool fire = false;
   *fail_before = false;
   if (!srv->test_commands) {
      return false;
   }
   int64_t n = statements (name, cmd);
   pthread_mutex_lock (&fp->mu);
   /* {skip: N} lets N statements through, as mongod's counts each write
    * (pymongo's test_batch_splitting_retry_fails: "the number of
    * _documents_ to skip"). When it runs out inside this command, the
    * command fails as a whole -- none of it written before, all of it
    * after: this server records a retryable write's reply per command, so
    * a retry replays all of it or runs all of it, never a part twice. */
   if (fp->mode == FP_SKIP && fp->n >= n) {
      fp->n -= n;
   } else if (fp->mode != FP_OFF && fp->data) {
      if (fp->mode == FP_SKIP) {
         fp->n = 0; /* the statements skipped, this command's rest fires */
      }
      fp->entered++;
      fire = true;
      *fail_before = bson_iter_init_find (&it, fp->data, "failBeforeCommitExceptionCode");
      fired (fp);
   }
   pthread_mutex_unlock (&fp->mu);
   return fire;
}

/* ---- maxTimeAlwaysTimeOut ----------------------------------------------------
 * mongod's fail point that makes every operation running under a time limit
 * fail at once with MaxTimeMSExpired (50), as if its maxTimeMS had passed:
 * a command with maxTimeMS > 0, and a getMore on a cursor such a command
 * opened (the cursor keeps its command's time limit; a failed getMore ends
 * its cursor). Commands without maxTimeMS run as usual. Drivers' tests use
 * it to see a server timeout reported as ExecutionTimeout. */

static bool
positive_max_time (const bson_t *cmd)
{
   bson_iter_t it;
   return bson_iter_init_find (&it, cmd, "maxTimeMS") && BSON_ITER_HOLDS_NUMBER (&it) && bson_iter_as_int64 (&it) > 0;
}

/* Under fp->mu: the index of id among the timed cursors, or -1. */
static ssize_t
timed_find (const dj_failpoint_t *fp, int64_t id)
{
   for (size_t i = 0; i < fp->ntimed; i++) {
      if (fp->timed[i] == id) {
         return (ssize_t) i;
      }
   }
   return -1;
}

/* Under fp->mu. */
static void
timed_forget (dj_failpoint_t *fp, int64_t id)
{
   ssize_t i = timed_find (fp, id);
   if (i >= 0) {
      memmove (fp->timed + i, fp->timed + i + 1, sizeof *fp->timed * (fp->ntimed - (size_t) i - 1));
      fp->ntimed--;
   }
}

static int64_t
reply_cursor_id (const bson_t *reply)
{
   bson_iter_t it;
   return bson_iter_init (&it, reply) && bson_iter_find_descendant (&it, "cursor.id", &it) && BSON_ITER_HOLDS_INT64 (&it)
             ? bson_iter_int64 (&it)
             : 0;
}

bool
dj_failpoint_max_time (struct dj_server *srv, const char *name, const bson_t *cmd, int64_t *cursor_id, bson_t *reply)
{
   dj_failpoint_t *fp = srv->maxtime_fp;
   bson_iter_t it;
   bool fire = false;
   *cursor_id = 0;
   if (!srv->test_commands) {
      return false;
   }
   bool get_more = !strcmp (name, "getMore") && bson_iter_init_find (&it, cmd, "getMore") && BSON_ITER_HOLDS_INT64 (&it);
   int64_t id = get_more ? bson_iter_int64 (&it) : 0;
   pthread_mutex_lock (&fp->mu);
   if (fp->mode != FP_OFF && fp->data && (positive_max_time (cmd) || (get_more && timed_find (fp, id) >= 0)) &&
       fires (fp)) {
      fire = true;
      fired (fp);
      if (get_more) {
         timed_forget (fp, id);
         *cursor_id = id;
      }
   }
   pthread_mutex_unlock (&fp->mu);
   if (fire) {
      failure (reply, DJ_MaxTimeMSExpired, "operation exceeded time limit");
   }
   return fire;
}

void
dj_failpoint_max_time_note (struct dj_server *srv, const char *name, const bson_t *cmd, const bson_t *reply)
{
   dj_failpoint_t *fp = srv->maxtime_fp;
   bson_iter_t it, a;
   if (!srv->test_commands) {
      return;
   }
   int64_t id = reply_cursor_id (reply);
   pthread_mutex_lock (&fp->mu);
   if (!strcmp (name, "getMore")) {
      if (!id && bson_iter_init_find (&it, cmd, "getMore") && BSON_ITER_HOLDS_INT64 (&it)) {
         timed_forget (fp, bson_iter_int64 (&it)); /* the cursor ended */
      }
   } else if (!strcmp (name, "killCursors")) {
      if (bson_iter_init_find (&it, cmd, "cursors") && BSON_ITER_HOLDS_ARRAY (&it) && bson_iter_recurse (&it, &a)) {
         while (bson_iter_next (&a)) {
            if (BSON_ITER_HOLDS_INT64 (&a)) {
               timed_forget (fp, bson_iter_int64 (&a));
            }
         }
      }
   } else if (id && positive_max_time (cmd)) {
      if (fp->ntimed == TIMED_MAX) {
         timed_forget (fp, fp->timed[0]);
      }
      DJ_GROW (fp->timed, fp->ntimed, fp->timed_cap, 16);
      fp->timed[fp->ntimed++] = id;
   }
   pthread_mutex_unlock (&fp->mu);
}

/* mongod's isResumableChangeStreamError (error_labels.cpp): the
 * retriable and network errors, a node no longer primary, and the
 * sharding ones a stream outlives (StaleShardVersion, StaleEpoch, StaleConfig). */
static bool retriable_code (int64_t code);
static bool
resumable_change_stream_code (int64_t code)
{
   return retriable_code (code) || code == 63 || code == 150 || code == 13388;
}

bool
dj_failpoint_get_more (struct dj_server *srv, bson_t *reply)
{
   dj_failpoint_t *fp = srv->getmore_fp;
   bson_iter_t it;
   int64_t code = -1;
   if (!srv->test_commands) {
      return false;
   }
   pthread_mutex_lock (&fp->mu);
   if (fp->mode != FP_OFF && fp->data && fires (fp)) {
      code = bson_iter_init_find (&it, fp->data, "errorCode") && BSON_ITER_HOLDS_NUMBER (&it) ? bson_iter_as_int64 (&it)
                                                                                             : DJ_InternalError;
      fired (fp);
   }
   pthread_mutex_unlock (&fp->mu);
   if (code < 0) {
      return false;
   }
   bson_error_t e;
   dj_err (&e, (uint32_t) code, "Failing getMore via 'failGetMoreAfterCursorCheckout' failpoint");
   bson_init (reply);
   dj_error_append_reply (&e, reply);
   if (resumable_change_stream_code (code)) {
      bson_t arr;
      BSON_APPEND_ARRAY_BEGIN (reply, "errorLabels", &arr);
      BSON_APPEND_UTF8 (&arr, "0", "ResumableChangeStreamError");
      bson_append_array_end (reply, &arr);
   }
   return true;
}

void
dj_error_labels_stream (bson_t *reply)
{
   bson_iter_t it;
   if (bson_has_field (reply, "errorLabels") || !bson_iter_init_find (&it, reply, "code") ||
       !BSON_ITER_HOLDS_NUMBER (&it)) {
      return;
   }
   int64_t code = bson_iter_as_int64 (&it);
   if (code == 280 || code == 286) { /* ChangeStreamFatalError, ChangeStreamHistoryLost */
      bson_t arr;
      BSON_APPEND_ARRAY_BEGIN (reply, "errorLabels", &arr);
      BSON_APPEND_UTF8 (&arr, "0", "NonResumableChangeStreamError");
      bson_append_array_end (reply, &arr);
   }
}

/* One command's names: mongod matches failCommands against the command
 * run and its aliases (Command::hasAlias), so "hello" also names a legacy
 * "ismaster" handshake, as pymongo's first one is. */
static int
alias_group (const char *name)
{
   static const char *const groups[][3] = {
      {"hello", "isMaster", "ismaster"},
      {"findAndModify", "findandmodify", NULL},
      {"buildInfo", "buildinfo", NULL},
   };
   for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++) {
      for (size_t k = 0; k < 3 && groups[g][k]; k++) {
         if (!strcmp (groups[g][k], name)) {
            return (int) g;
         }
      }
   }
   return -1;
}

/* Does the array at it name the command `name` (or one of its aliases)? */
static bool
names_command (bson_iter_t *it, const char *name)
{
   bson_iter_t a;
   if (!bson_iter_recurse (it, &a)) {
      return false;
   }
   int group = alias_group (name);
   while (bson_iter_next (&a)) {
      if (!BSON_ITER_HOLDS_UTF8 (&a)) {
         continue;
      }
      const char *listed = bson_iter_utf8 (&a, NULL);
      if (!strcmp (listed, name) || (group >= 0 && alias_group (listed) == group)) {
         return true;
      }
   }
   return false;
}

static bson_t *
copy_sub (const bson_iter_t *it)
{
   uint32_t len;
   const uint8_t *p;
   bson_t d;
   if (BSON_ITER_HOLDS_ARRAY (it)) {
      bson_iter_array (it, &len, &p);
   } else {
      bson_iter_document (it, &len, &p);
   }
   return bson_init_static (&d, p, len) ? bson_copy (&d) : NULL;
}

bool
dj_failpoint_check (struct dj_server *srv, const dj_conn_t *c, const char *name, dj_fail_action_t *out)
{
   dj_failpoint_t *fp = srv->failpoint;
   bson_iter_t it;
   bool fire = false;
   memset (out, 0, sizeof *out);
   if (!srv->test_commands || !strcmp (name, "configureFailPoint")) {
      return false;
   }
   pthread_mutex_lock (&fp->mu);
   if (fp->mode == FP_OFF || !fp->data || !bson_iter_init_find (&it, fp->data, "failCommands") ||
       !names_command (&it, name)) {
      goto done;
   }
   /* appName: only connections whose handshake named that application */
   if (bson_iter_init_find (&it, fp->data, "appName") && BSON_ITER_HOLDS_UTF8 (&it) &&
       strcmp (bson_iter_utf8 (&it, NULL), c->app_name)) {
      goto done;
   }
   if (!fires (fp)) {
      goto done;
   }
   fire = true;
   bson_iter_init (&it, fp->data);
   while (bson_iter_next (&it)) {
      const char *k = bson_iter_key (&it);
      if (!strcmp (k, "closeConnection")) {
         out->close_connection = bson_iter_as_bool (&it);
      } else if (!strcmp (k, "blockConnection")) {
         out->block = bson_iter_as_bool (&it);
      } else if (!strcmp (k, "blockTimeMS") && BSON_ITER_HOLDS_NUMBER (&it)) {
         out->block_ms = bson_iter_as_int64 (&it);
      } else if (!strcmp (k, "errorCode") && BSON_ITER_HOLDS_NUMBER (&it)) {
         out->has_error = true;
         out->error_code = (int32_t) bson_iter_as_int64 (&it);
      } else if (!strcmp (k, "errorLabels") && BSON_ITER_HOLDS_ARRAY (&it)) {
         out->error_labels = copy_sub (&it);
      } else if (!strcmp (k, "writeConcernError") && BSON_ITER_HOLDS_DOCUMENT (&it)) {
         out->write_concern_error = copy_sub (&it);
      }
   }
   if (!out->block) {
      out->block_ms = 0;
   }
   fired (fp);
done:
   pthread_mutex_unlock (&fp->mu);
   return fire;
}

void
dj_fail_action_block (const dj_fail_action_t *a)
{
   if (a->block_ms > 0) {
      struct timespec ts = {(time_t) (a->block_ms / 1000), (long) (a->block_ms % 1000) * 1000000L};
      while (nanosleep (&ts, &ts) != 0) {
      }
   }
}

/* ---- error labels ------------------------------------------------------------ */

/* ErrorCategory::RetriableError of mongod's error_codes.yml: the codes a
 * retryable write (or commitTransaction / abortTransaction) may retry. */
static bool
retriable_code (int64_t code)
{
   static const int64_t codes[] = {6,   7,   89,   91,    133,   134,   189,   202,  234,
                                   262, 9001, 10107, 11600, 11602, 13435, 13436, 50915};
   for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
      if (codes[i] == code) {
         return true;
      }
   }
   return false;
}

/* ErrorCategory::NetworkError */
static bool
network_code (int64_t code)
{
   return code == 6 || code == 7 || code == 89 || code == 9001 || code == 202;
}

bool
dj_is_retryable_write (const char *name, const bson_t *cmd)
{
   bool write = !strcmp (name, "insert") || !strcmp (name, "update") || !strcmp (name, "delete") ||
                !strcmp (name, "findAndModify") || !strcmp (name, "findandmodify") || !strcmp (name, "bulkWrite");
   return write && bson_has_field (cmd, "txnNumber") && bson_has_field (cmd, "lsid") &&
          !bson_has_field (cmd, "autocommit");
}

void
dj_error_labels_add (const char *name, const bson_t *cmd, bson_t *reply)
{
   bson_iter_t it;
   int64_t code = -1, wce = -1;
   if (bson_has_field (reply, "errorLabels")) {
      return;
   }
   bool ok = bson_iter_init_find (&it, reply, "ok") && bson_iter_as_double (&it) == 1.0;
   if (!ok && bson_iter_init_find (&it, reply, "code") && BSON_ITER_HOLDS_NUMBER (&it)) {
      code = bson_iter_as_int64 (&it);
   }
   bson_iter_t d;
   if (bson_iter_init (&it, reply) && bson_iter_find_descendant (&it, "writeConcernError.code", &d) &&
       BSON_ITER_HOLDS_NUMBER (&d)) {
      wce = bson_iter_as_int64 (&d);
   }
   bool commit_or_abort = !strcmp (name, "commitTransaction") || !strcmp (name, "abortTransaction");
   bool in_txn = bson_has_field (cmd, "autocommit");
   bool retryable_write = dj_is_retryable_write (name, cmd);
   const char *labels[2];
   int n = 0;
   /* mongod's ErrorLabelBuilder (src/mongo/db/error_labels.cpp) */
   if ((retryable_write || commit_or_abort) && (retriable_code (code) || retriable_code (wce))) {
      labels[n++] = "RetryableWriteError";
   }
   /* isTransientTransactionError: worth running the whole transaction again */
   bool transient = code == DJ_WriteConflict || code == 24 /* LockTimeout */ ||
                    code == 267 /* PreparedTransactionInProgress */ || code == 239 /* SnapshotTooOld */ ||
                    code == 246 /* SnapshotUnavailable */;
   if (commit_or_abort) {
      transient = transient || (code == DJ_NoSuchTransaction && wce < 0);
   } else {
      transient = transient || code == DJ_NoSuchTransaction || network_code (code);
   }
   if (in_txn && transient) {
      labels[n++] = "TransientTransactionError";
   }
   if (n) {
      bson_t arr;
      BSON_APPEND_ARRAY_BEGIN (reply, "errorLabels", &arr);
      for (int i = 0; i < n; i++) {
         char kb[16];
         const char *key;
         bson_uint32_to_string ((uint32_t) i, &key, kb, sizeof kb);
         bson_append_utf8 (&arr, key, -1, labels[i], -1);
      }
      bson_append_array_end (reply, &arr);
   }
}

void
dj_fail_action_error (const dj_fail_action_t *a, const char *name, const bson_t *cmd, bson_t *reply)
{
   bson_error_t e;
   dj_err (&e, (uint32_t) a->error_code, "Failing command via 'failCommand' failpoint");
   bson_init (reply);
   dj_error_append_reply (&e, reply);
   if (a->error_labels) {
      bson_append_array (reply, "errorLabels", -1, a->error_labels);
   } else {
      dj_error_labels_add (name, cmd, reply);
   }
}

void
dj_fail_action_after (const dj_fail_action_t *a, const char *name, const bson_t *cmd, bson_t *reply)
{
   if (!a->write_concern_error) {
      return;
   }
   /* the command ran; its reply gains the configured writeConcernError
    * (replacing one it may have had) */
   bson_t copy;
   bson_iter_t it;
   bson_init (&copy);
   bson_iter_init (&it, reply);
   while (bson_iter_next (&it)) {
      if (strcmp (bson_iter_key (&it), "writeConcernError") && strcmp (bson_iter_key (&it), "errorLabels")) {
         bson_append_iter (&copy, NULL, 0, &it);
      }
   }
   bson_append_document (&copy, "writeConcernError", -1, a->write_concern_error);
   if (a->error_labels) {
      bson_append_array (&copy, "errorLabels", -1, a->error_labels);
   } else {
      dj_error_labels_add (name, cmd, &copy);
   }
   bson_destroy (reply);
   bson_steal (reply, &copy);
}
