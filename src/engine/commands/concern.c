/*
 * concern.c -- a write concern as a one-member replica set's mongod judges
 * it (the embedded engine and djongo-server are both that node).
 *
 * A one-member set acknowledges w: 1 (and 0: unacknowledged, the client's
 * business) and "majority"; a w naming more members can never be
 * satisfied, and a tag set the configuration does not define is unknown.
 * j and wtimeout are met by every acknowledged write (each commits
 * durably before it is answered). mongod still applies the write and says
 * so in writeConcernError (100 UnsatisfiableWriteConcern, 79
 * UnknownReplWriteConcern), in the reply of a write that failed too.
 * https://www.mongodb.com/docs/manual/reference/write-concern/
 */
#include <stdio.h>
#include <string.h>

#include "dj_commands.h"
#include "dj_engine.h"

void
dj_engine_write_concern_check (const bson_t *cmd, bson_t *reply)
{
   bson_iter_t it, w;
   uint32_t code = 0;
   char msg[160];
   /* a write that failed waits for its write concern too: mongod waits
    * whatever the command's outcome (the client learns how durable the
    * writes before it are), so a failed command's reply carries the
    * writeConcernError beside its error -- drivers raise that first */
   if (!bson_iter_init_find (&it, reply, "ok") || bson_has_field (reply, "writeConcernError") ||
       !bson_iter_init_find (&it, cmd, "writeConcern") ||
       !BSON_ITER_HOLDS_DOCUMENT (&it) || !bson_iter_recurse (&it, &w) || !bson_iter_find (&w, "w")) {
      return;
   }
   if (BSON_ITER_HOLDS_NUMBER (&w) && bson_iter_as_int64 (&w) > 1) {
      code = DJ_UnsatisfiableWriteConcern;
      snprintf (msg, sizeof msg, "Not enough data-bearing nodes");
   } else if (BSON_ITER_HOLDS_UTF8 (&w) && strcmp (bson_iter_utf8 (&w, NULL), "majority")) {
      code = DJ_UnknownReplWriteConcern;
      snprintf (msg, sizeof msg, "Unrecognized write concern mode: %.100s", bson_iter_utf8 (&w, NULL));
   }
   if (!code) {
      return;
   }
   char buf[24];
   bson_t wce;
   BSON_APPEND_DOCUMENT_BEGIN (reply, "writeConcernError", &wce);
   BSON_APPEND_INT32 (&wce, "code", (int32_t) code);
   BSON_APPEND_UTF8 (&wce, "codeName", dj_error_code_name (code, buf));
   BSON_APPEND_UTF8 (&wce, "errmsg", msg);
   bson_append_document_end (reply, &wce);
}
