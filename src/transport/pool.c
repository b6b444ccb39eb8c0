/*
 * pool.c -- one libmongoc client pool per server per process: every
 * transport open on the same HOST with the same options takes a client from
 * it (mongoc_client_pool_pop) and gives it back when it closes, so a
 * process's Django connections -- one per thread, closed and remade by
 * CONN_MAX_AGE -- share the pool's sockets and its one background
 * monitor of the deployment, as libmongoc's documentation advises for
 * multi-threaded programs.
 * https://www.mongodb.com/docs/languages/c/c-driver/current/libmongoc/guides/connection-pooling/
 *
 * Fork: a pool serves the process that made it. Its sockets and monitor
 * threads are the parent's, so a child (gunicorn's pre-forked workers,
 * Django's test --parallel) must never use them: the child forgets every
 * pool it inherited (the list records its process) and makes its own on
 * first use. The inherited ones are abandoned, not destroyed: destroying
 * would end the parent's sessions over the parent's sockets.
 *
 * State: the list of pools (g_pools) is process-global, guarded by
 * g_pools_mu, held only to look a pool up or make one (no I/O): as
 * libmongoc asks, a program forks while no other thread is inside
 * libmongoc -- or this lookup. Pools live as long as the process (as
 * mongoc_init's state does): a later connection with the same settings
 * finds the pool warm. Each pool also keeps, per client, the client's
 * retryable-write session and last transaction number (dj_pool_writer_t),
 * looked up under g_pools_mu when the client is popped and then used only
 * by the transport holding the client.
 */
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "dj_transport.h"
#include "transport-private.h"

/* A client of the pool and its retryable-write state (dj_pool_writer_t) */
struct dj_writer {
   mongoc_client_t *client; /* the pool's */
   dj_pool_writer_t w;
   struct dj_writer *next;
};

struct dj_pool {
   char *key;                  /* owned: HOST and its options, as text */
   mongoc_client_pool_t *pool; /* owned (never destroyed: see above) */
   struct dj_writer *writers;  /* owned: one per client popped so far (never freed, as the pool) */
   struct dj_pool *next;
};

static pthread_mutex_t g_pools_mu = PTHREAD_MUTEX_INITIALIZER;
static struct dj_pool *g_pools;
static pid_t g_pools_pid; /* the process the list belongs to (g_pools_mu guards it) */

mongoc_client_t *
dj_pool_pop (const char *host, const bson_t *options, mongoc_client_pool_t **from, dj_pool_writer_t **writer,
             void (*started) (const mongoc_apm_command_started_t *), bson_error_t *error)
{
   char *json = options ? bson_as_canonical_extended_json (options, NULL) : NULL;
   char *key = bson_strdup_printf ("%s\n%s", host, json ? json : "{}");
   bson_free (json);
   mongoc_client_pool_t *pool = NULL;
   struct dj_pool *entry = NULL;
   pthread_mutex_lock (&g_pools_mu);
   if (g_pools_pid != getpid ()) {
      g_pools = NULL; /* a forked child: the parent's pools, abandoned */
      g_pools_pid = getpid ();
   }
   for (struct dj_pool *p = g_pools; p; p = p->next) {
      if (!strcmp (p->key, key)) {
         pool = p->pool;
         entry = p;
         break;
      }
   }
   if (!pool) {
      mongoc_uri_t *uri = dj_transport_uri (host, options, error);
      if (uri) {
         /* the handshake's client.application.name: the user's appname,
          * else "djongo" (server logs, currentOp, profiler entries) */
         if (!mongoc_uri_get_appname (uri)) {
            mongoc_uri_set_appname (uri, "djongo");
         }
         pool = mongoc_client_pool_new_with_error (uri, error);
         mongoc_uri_destroy (uri);
      }
      if (pool) {
         /* before the first pop, as libmongoc requires */
         mongoc_apm_callbacks_t *cbs = mongoc_apm_callbacks_new ();
         mongoc_apm_set_command_started_cb (cbs, started);
         mongoc_client_pool_set_apm_callbacks (pool, cbs, NULL); /* copies cbs */
         mongoc_apm_callbacks_destroy (cbs);
         mongoc_client_pool_set_error_api (pool, MONGOC_ERROR_API_VERSION_2);
         struct dj_pool *p = bson_malloc0 (sizeof *p);
         p->key = key;
         key = NULL;
         p->pool = pool;
         p->next = g_pools;
         g_pools = entry = p;
      }
   }
   pthread_mutex_unlock (&g_pools_mu);
   bson_free (key);
   if (!pool) {
      return NULL;
   }
   *from = pool;
   mongoc_client_t *client = mongoc_client_pool_pop (pool); /* waits while maxPoolSize clients are out */
   /* the client's writer: found, or made on the client's first pop (the
    * list only grows, to maxPoolSize entries) */
   pthread_mutex_lock (&g_pools_mu);
   struct dj_writer *w = entry->writers;
   while (w && w->client != client) {
      w = w->next;
   }
   if (!w) {
      w = bson_malloc0 (sizeof *w);
      w->client = client;
      w->next = entry->writers;
      entry->writers = w;
   }
   pthread_mutex_unlock (&g_pools_mu);
   *writer = &w->w;
   return client;
}
