/*
 * test_mongoc -- libmongoc (the C driver from Debian) against djongo-server:
 * the server runs in this process on a free port; the driver discovers it
 * as a one-member replica set, runs CRUD through cursors, a committed and an
 * aborted transaction, and sees MongoDB's error codes.
 */
#include <mongoc/mongoc.h>
#include <pthread.h>
#include <stdlib.h>

#include "../engine/ctest.h"
#include "dj_server.h"

static void *
serve (void *arg)
{
   dj_server_run (arg, false);
   return NULL;
}

static int64_t
count (mongoc_collection_t *c, const char *json)
{
   bson_error_t err;
   bson_t *q = bson_new_from_json ((const uint8_t *) json, -1, &err);
   int64_t n = mongoc_collection_count_documents (c, q, NULL, NULL, NULL, &err);
   bson_destroy (q);
   return n;
}

int
main (void)
{
   char dir[] = "/tmp/djongo-mongoc-XXXXXX";
   if (!mkdtemp (dir)) {
      return 2;
   }
   bson_error_t err;
   dj_server_options_t o = {.dbpath = dir, .port = DJ_SERVER_ANY_PORT, .quiet = true};
   dj_server_t *srv = dj_server_new (&o, &err);
   CHECK (srv != NULL, "server: %s", err.message);
   if (!srv) {
      return CTEST_REPORT ("mongoc");
   }
   pthread_t th;
   pthread_create (&th, NULL, serve, srv);

   mongoc_init ();
   char uri[128];
   snprintf (uri, sizeof uri, "mongodb://127.0.0.1:%d/?serverSelectionTimeoutMS=5000", dj_server_port (srv));
   mongoc_client_t *client = mongoc_client_new (uri);
   mongoc_client_set_error_api (client, MONGOC_ERROR_API_VERSION_2);
   mongoc_collection_t *c = mongoc_client_get_collection (client, "app", "items");

   /* CRUD */
   bool ok = true;
   for (int i = 0; i < 250 && ok; i++) {
      bson_t *d = BCON_NEW ("_id", BCON_INT32 (i), "k", BCON_INT32 (i % 5));
      ok = mongoc_collection_insert_one (c, d, NULL, NULL, &err);
      bson_destroy (d);
   }
   CHECK (ok, "inserts: %s", err.message);
   CHECK (count (c, "{\"k\": 3}") == 50, "count");
   bson_t *filter = BCON_NEW ("k", "{", "$gte", BCON_INT32 (2), "}");
   bson_t *opts = BCON_NEW ("batchSize", BCON_INT32 (7), "sort", "{", "_id", BCON_INT32 (-1), "}");
   mongoc_cursor_t *cur = mongoc_collection_find_with_opts (c, filter, opts, NULL);
   const bson_t *doc;
   int n = 0, first = -1;
   while (mongoc_cursor_next (cur, &doc)) {
      bson_iter_t it;
      if (n++ == 0 && bson_iter_init_find (&it, doc, "_id")) {
         first = bson_iter_int32 (&it);
      }
   }
   CHECK (!mongoc_cursor_error (cur, &err), "cursor: %s", err.message);
   CHECK (n == 150 && first == 249, "find through getMore: %d rows, first %d", n, first);
   mongoc_cursor_destroy (cur);
   bson_destroy (filter);
   bson_destroy (opts);
   bson_t *sel = BCON_NEW ("k", BCON_INT32 (1)), *upd = BCON_NEW ("$set", "{", "flag", BCON_BOOL (true), "}");
   bson_t reply;
   CHECK (mongoc_collection_update_many (c, sel, upd, NULL, &reply, &err), "update: %s", err.message);
   bson_iter_t it;
   CHECK (bson_iter_init_find (&it, &reply, "modifiedCount") && bson_iter_as_int64 (&it) == 50, "modifiedCount");
   bson_destroy (&reply);
   bson_destroy (sel);
   bson_destroy (upd);
   bson_t *dup = BCON_NEW ("_id", BCON_INT32 (1));
   CHECK (!mongoc_collection_insert_one (c, dup, NULL, NULL, &err) && err.code == 11000, "duplicate: %u %s", err.code,
          err.message);

   /* transactions */
   mongoc_client_session_t *s = mongoc_client_start_session (client, NULL, &err);
   CHECK (s != NULL, "session: %s", err.message);
   if (s) {
      bson_t sopts = BSON_INITIALIZER;
      mongoc_client_session_append (s, &sopts, NULL);
      CHECK (mongoc_client_session_start_transaction (s, NULL, &err), "start: %s", err.message);
      bson_t *t1 = BCON_NEW ("_id", "t1");
      CHECK (mongoc_collection_insert_one (c, t1, &sopts, NULL, &err), "insert in txn: %s", err.message);
      CHECK (count (c, "{\"_id\": \"t1\"}") == 0, "not visible outside before commit");
      bson_t creply;
      CHECK (mongoc_client_session_commit_transaction (s, &creply, &err), "commit: %s", err.message);
      bson_destroy (&creply);
      CHECK (count (c, "{\"_id\": \"t1\"}") == 1, "visible after commit");
      CHECK (mongoc_client_session_start_transaction (s, NULL, &err), "start 2: %s", err.message);
      bson_t *t2 = BCON_NEW ("_id", "t2");
      CHECK (mongoc_collection_insert_one (c, t2, &sopts, NULL, &err), "insert in txn 2: %s", err.message);
      CHECK (mongoc_client_session_abort_transaction (s, &err), "abort: %s", err.message);
      CHECK (count (c, "{\"_id\": \"t2\"}") == 0, "aborted");
      bson_destroy (t1);
      bson_destroy (t2);
      bson_destroy (&sopts);
      mongoc_client_session_destroy (s);
   }
   bson_destroy (dup);
   mongoc_collection_destroy (c);
   mongoc_client_destroy (client);
   mongoc_cleanup ();

   dj_server_stop (srv);
   pthread_join (th, NULL);
   dj_server_destroy (srv);
   ctest_rmdir (dir);
   return CTEST_REPORT ("mongoc");
}
