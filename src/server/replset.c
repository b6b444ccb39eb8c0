/*
 * replset.c -- what a replica-set member adds to its replies, so drivers
 * treat djongo-server as the primary of a one-member set:
 *
 *   - cluster time: every reply carries operationTime and $clusterTime
 *     {clusterTime: Timestamp, signature: {hash, keyId}}. With --auth the
 *     hash is HMAC-SHA1 of the timestamp under a key made at start (mongod
 *     signs with keys it keeps in admin.system.keys), and a $clusterTime a
 *     client sends back must carry it (TimeProofMismatch otherwise), so a
 *     client cannot move the clock; without --auth the hash is 20 zero
 *     bytes and keyId 0, as an unauthenticated mongod's. The clock is the
 *     engine's (dj_engine_cluster_time): a Timestamp (seconds, increment)
 *     each logged change advances, so a write's operationTime is the time
 *     of its last change event, as mongod's is its last oplog entry's; reads
 *     answer with the last write's time, so a causally consistent session
 *     (afterClusterTime = an operationTime it saw) always finds its writes
 *     committed: every write commits before it is answered.
 *     https://www.mongodb.com/docs/manual/core/read-isolation-consistency-recency/#causal-consistency
 *   - write concern: as the engine judges it for a one-member set
 *     (dj_engine_write_concern_check, src/engine/commands/concern.c, which
 *     the embedded transport applies too), after the fail points.
 */
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "server-private.h"

/* The signature of cluster time (t, i): 20 zero bytes without --auth. */
static void
sign_time (const struct dj_server *srv, uint32_t t, uint32_t i, uint8_t out[20])
{
   memset (out, 0, 20);
   if (srv->users) {
      uint8_t ts[8];
      for (int k = 0; k < 4; k++) { /* the Timestamp as BSON lays it out: increment, then seconds (little-endian) */
         ts[k] = (uint8_t) (i >> (8 * k));
         ts[4 + k] = (uint8_t) (t >> (8 * k));
      }
      unsigned int len = 20;
      HMAC (EVP_sha1 (), srv->clock_key, sizeof srv->clock_key, ts, sizeof ts, out, &len);
   }
}

bool
dj_cluster_time_check (struct dj_server *srv, const bson_t *cmd, bson_t *reply)
{
   bson_iter_t it, ct, f;
   if (!srv->users || !bson_iter_init_find (&it, cmd, "$clusterTime") || !BSON_ITER_HOLDS_DOCUMENT (&it)) {
      return true;
   }
   uint32_t t = 0, i = 0, len = 0;
   const uint8_t *hash = NULL;
   bson_subtype_t sub;
   bson_iter_recurse (&it, &ct);
   if (bson_iter_find (&ct, "clusterTime") && BSON_ITER_HOLDS_TIMESTAMP (&ct)) {
      bson_iter_timestamp (&ct, &t, &i);
   }
   bson_iter_recurse (&it, &ct);
   if (bson_iter_find_descendant (&ct, "signature.hash", &f) && BSON_ITER_HOLDS_BINARY (&f)) {
      bson_iter_binary (&f, &sub, &len, &hash);
   }
   uint8_t want[20];
   sign_time (srv, t, i, want);
   if (hash && len == 20 && CRYPTO_memcmp (hash, want, 20) == 0) {
      return true;
   }
   bson_init (reply);
   BSON_APPEND_DOUBLE (reply, "ok", 0.0);
   BSON_APPEND_UTF8 (reply, "errmsg", "$clusterTime is not signed by this server's key");
   BSON_APPEND_INT32 (reply, "code", 204);
   BSON_APPEND_UTF8 (reply, "codeName", "TimeProofMismatch");
   return false;
}

bool
dj_is_write_command (const char *name, const bson_t *cmd)
{
   static const char *const writes[] = {"insert",        "update",          "delete",          "findAndModify",
                                        "findandmodify", "create",          "drop",            "dropDatabase",
                                        "createIndexes", "dropIndexes",     "renameCollection", "collMod",
                                        "bulkWrite",     "commitTransaction", "applyOps",       NULL};
   for (int i = 0; writes[i]; i++) {
      if (!strcmp (name, writes[i])) {
         return true;
      }
   }
   if (strcmp (name, "aggregate")) {
      return false;
   }
   /* an aggregate writes when its last stage is $out or $merge */
   bson_iter_t it, st, last, stage;
   bool found = false;
   if (!bson_iter_init_find (&it, cmd, "pipeline") || !BSON_ITER_HOLDS_ARRAY (&it) || !bson_iter_recurse (&it, &st)) {
      return false;
   }
   while (bson_iter_next (&st)) {
      last = st;
      found = true;
   }
   if (!found || !BSON_ITER_HOLDS_DOCUMENT (&last) || !bson_iter_recurse (&last, &stage) || !bson_iter_next (&stage)) {
      return false;
   }
   return !strcmp (bson_iter_key (&stage), "$out") || !strcmp (bson_iter_key (&stage), "$merge");
}

bool
dj_cluster_time_init (struct dj_server *srv)
{
   srv->clock_key_id = (int64_t) time (NULL) << 32 | 1;
   return RAND_bytes (srv->clock_key, sizeof srv->clock_key) == 1;
}

/* The clock is the engine's (the data directory's: change events are
 * stamped from it in the transaction that logs them). */
void
dj_cluster_time_now (struct dj_server *srv, uint32_t *t, uint32_t *i)
{
   dj_engine_cluster_time (srv->engine, false, t, i);
}

void
dj_cluster_time_stamp (struct dj_server *srv, bool advance, bson_t *reply)
{
   uint32_t t, i;
   dj_engine_cluster_time (srv->engine, advance, &t, &i);
   uint8_t hash[20];
   sign_time (srv, t, i, hash);
   bson_t ct, sig;
   BSON_APPEND_DOCUMENT_BEGIN (reply, "$clusterTime", &ct);
   BSON_APPEND_TIMESTAMP (&ct, "clusterTime", t, i);
   BSON_APPEND_DOCUMENT_BEGIN (&ct, "signature", &sig);
   bson_append_binary (&sig, "hash", -1, BSON_SUBTYPE_BINARY, hash, sizeof hash);
   BSON_APPEND_INT64 (&sig, "keyId", srv->users ? srv->clock_key_id : 0);
   bson_append_document_end (&ct, &sig);
   bson_append_document_end (reply, &ct);
   BSON_APPEND_TIMESTAMP (reply, "operationTime", t, i);
}

