/*
 * transport.c -- the embedded engine and libmongoc behind dj_run_command_fn.
 */
#include <mongoc/mongoc.h>
#include <pthread.h>
#include <string.h>

#include "dj_engine.h"
#include "dj_transport.h"

struct dj_transport {
   dj_engine_t *engine;     /* owned, or NULL */
   mongoc_client_t *client; /* owned, or NULL */
};

static pthread_once_t mongoc_once = PTHREAD_ONCE_INIT;

static void
init_mongoc (void)
{
   mongoc_init (); /* process-wide; never cleaned up: other threads may still use it at exit */
}

static bool
is_path (const char *host)
{
   return host[0] == '/' || host[0] == '.' || host[0] == '~' || !strncmp (host, "file:", 5) || strchr (host, '/') != NULL;
}

dj_transport_t *
dj_transport_open (const char *host, bson_error_t *error)
{
   dj_transport_t *t = bson_malloc0 (sizeof *t);
   if (!strncmp (host, "mongodb://", 10) || !strncmp (host, "mongodb+srv://", 14) || !is_path (host)) {
      char *uri_s = (!strncmp (host, "mongodb", 7) && strstr (host, "://")) ? bson_strdup (host)
                                                                              : bson_strdup_printf ("mongodb://%s", host);
      pthread_once (&mongoc_once, init_mongoc);
      mongoc_uri_t *uri = mongoc_uri_new_with_error (uri_s, error);
      bson_free (uri_s);
      if (uri) {
         t->client = mongoc_client_new_from_uri_with_error (uri, error);
         mongoc_uri_destroy (uri);
      }
      if (!t->client) {
         bson_free (t);
         return NULL;
      }
      mongoc_client_set_appname (t->client, "djongo");
      mongoc_client_set_error_api (t->client, MONGOC_ERROR_API_VERSION_2);
      return t;
   }
   const char *path = !strncmp (host, "file:", 5) ? host + 5 : host;
   char *expanded = NULL;
   if (path[0] == '~' && getenv ("HOME")) {
      expanded = bson_strdup_printf ("%s%s", getenv ("HOME"), path + 1);
      path = expanded;
   }
   t->engine = dj_engine_open (path, NULL, error);
   bson_free (expanded);
   if (!t->engine) {
      bson_free (t);
      return NULL;
   }
   return t;
}

void
dj_transport_close (dj_transport_t *t)
{
   if (t) {
      dj_engine_close (t->engine);
      if (t->client) {
         mongoc_client_destroy (t->client);
      }
      bson_free (t);
   }
}

const char *
dj_transport_kind (const dj_transport_t *t)
{
   return t->engine ? "embedded" : "mongodb";
}

/* A reply with ok: 0 -> DJ_DOMAIN_SERVER {code, errmsg}. */
static bool
reply_error (const bson_t *reply, bson_error_t *error)
{
   bson_iter_t it;
   uint32_t code = DJ_InternalError;
   const char *msg = "command failed";
   if (bson_iter_init_find (&it, reply, "code") && BSON_ITER_HOLDS_NUMBER (&it)) {
      code = (uint32_t) bson_iter_as_int64 (&it);
   }
   if (bson_iter_init_find (&it, reply, "errmsg") && BSON_ITER_HOLDS_UTF8 (&it)) {
      msg = bson_iter_utf8 (&it, NULL);
   }
   return dj_error_set (error, DJ_DOMAIN_SERVER, code, "%s", msg);
}

bool
dj_transport_run (void *ctx, const char *db, const bson_t *cmd, bson_t *reply, bson_error_t *error)
{
   dj_transport_t *t = ctx;
   if (t->engine) {
      return dj_engine_run_command (t->engine, db, cmd, reply) || reply_error (reply, error);
   }
   /* initialises reply in every case */
   if (mongoc_client_command_simple (t->client, db, cmd, NULL, reply, error)) {
      return true;
   }
   if (error->domain == MONGOC_ERROR_SERVER || error->domain == MONGOC_ERROR_WRITE_CONCERN) {
      /* the server answered: its code is MongoDB's, as the engine's are */
      uint32_t code = error->code;
      char msg[sizeof error->message];
      bson_strncpy (msg, error->message, sizeof msg);
      dj_error_set (error, DJ_DOMAIN_SERVER, code, "%s", msg);
   }
   return false;
}
