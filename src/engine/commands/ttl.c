/*
 * ttl.c -- the TTL monitor: the background pass that deletes the documents
 * TTL indexes expire.
 * https://www.mongodb.com/docs/manual/core/index-ttl/
 *
 * As mongod's: every ttl_monitor_secs (default 60) the monitor thread looks
 * at every TTL index (expireAfterSeconds) and deletes the documents whose
 * indexed field is a date, or an array holding a date, earlier than now
 * minus expireAfterSeconds -- an array expires by its earliest date; a
 * missing or non-date field never expires. A partial TTL index deletes
 * only documents its filter admits. Each deletion is an ordinary delete
 * command, {delete: coll, deletes: [{q: {field: {$lt: <date>}}, limit: 0}]},
 * run through dj_engine_run_command: it takes the write lock as any writer
 * does (waiting for transactions in progress, and making a snapshot
 * transaction that read the documents get WriteConflict at its next write,
 * as mongod's TTL deletes do), keeps every index consistent, and commits
 * by itself. Counters: metrics.ttl.{deletedDocuments, passes} (serverStatus
 * in djongo-server, dj_engine_ttl_stats()).
 *
 * One monitor per data directory per process: the engine handles opened on
 * one directory share it (g_monitors, guarded by g_monitors_mu). It runs
 * commands on a handle of its own, opened with the first opener's options,
 * and stops (its thread joined) when the last handle on the directory
 * closes. A process forked with handles open (Django's parallel test
 * workers) inherits the monitors but not their threads: the child marks
 * them orphans (pthread_atfork), freed without a join when their handles
 * close; handles it opens afterwards start monitors of its own.
 */
#include "dj_commands.h"

#include <errno.h>
#include <signal.h>
#include <time.h>

struct dj_ttl_monitor {
   const void *key; /* the shared LMDB environment: one monitor per directory */
   int refs;        /* engine handles using it (g_monitors_mu guards it) */
   struct dj_ttl_monitor *next;
   dj_engine_t *engine; /* owned: the handle the passes run on */
   int period_s;
   pthread_t thread;
   pthread_mutex_t mu; /* guards what follows */
   pthread_cond_t cond;
   bool stop;
   int64_t deleted, passes;
   bool orphan; /* inherited through fork(): the thread is the parent's */
};

static pthread_mutex_t g_monitors_mu = PTHREAD_MUTEX_INITIALIZER;
static struct dj_ttl_monitor *g_monitors;
static pthread_once_t g_atfork_once = PTHREAD_ONCE_INIT;

/* fork(): the list is taken across it, so the child's copy is consistent */
static void
atfork_prepare (void)
{
   pthread_mutex_lock (&g_monitors_mu);
}

static void
atfork_parent (void)
{
   pthread_mutex_unlock (&g_monitors_mu);
}

/* The child has no monitor threads: each inherited monitor becomes an
 * orphan (its mutex and condition made anew: a thread of the parent may
 * have held them) and leaves the list. */
static void
atfork_child (void)
{
   for (struct dj_ttl_monitor *m = g_monitors; m; m = m->next) {
      m->orphan = true;
      pthread_mutex_init (&m->mu, NULL);
      pthread_cond_init (&m->cond, NULL);
   }
   g_monitors = NULL;
   pthread_mutex_unlock (&g_monitors_mu);
}

static void
atfork_register (void)
{
   pthread_atfork (atfork_prepare, atfork_parent, atfork_child);
}

/* One TTL index found by a pass: what its delete needs (all owned). */
typedef struct {
   char *db, *coll, *field;
   int32_t secs;
   bson_t *partial; /* the partialFilterExpression, or NULL */
} job_t;

static void
collect (dj_ctx_t *ctx, const char *db, job_t **jobs, int *n)
{
   bson_error_t error;
   char **names = NULL;
   int nnames = 0;
   if (!dj_coll_list (ctx, db, &names, &nnames, &error)) {
      return;
   }
   for (int i = 0; i < nnames; i++) {
      dj_coll_t *c = dj_coll_load (ctx, db, names[i], &error);
      if (!c) {
         continue;
      }
      for (int k = 0; k < c->nindexes && !c->view_on; k++) {
         const dj_index_t *ix = &c->indexes[k];
         bson_iter_t it;
         if (!ix->ttl || ix->npaths != 1 || !bson_iter_init (&it, ix->key) || !bson_iter_next (&it)) {
            continue;
         }
         *jobs = bson_realloc (*jobs, sizeof (job_t) * (size_t) (*n + 1));
         job_t *j = &(*jobs)[(*n)++];
         j->db = bson_strdup (db);
         j->coll = bson_strdup (names[i]);
         j->field = bson_strdup (bson_iter_key (&it));
         j->secs = ix->expire_after;
         j->partial = NULL;
         if (ix->partial && bson_iter_init_find (&it, ix->spec, "partialFilterExpression") && BSON_ITER_HOLDS_DOCUMENT (&it)) {
            const uint8_t *d;
            uint32_t l;
            bson_iter_document (&it, &l, &d);
            j->partial = bson_new_from_data (d, l);
         }
      }
      dj_coll_free (c);
   }
   dj_strv_free (names, nnames);
}

/* Deletes what job j expires at now_ms; returns the number deleted. */
static int64_t
expire (dj_engine_t *e, const job_t *j, int64_t now_ms)
{
   bson_t reply, cond = BSON_INITIALIZER, lt;
   int64_t n = 0;
   /* {delete: coll, deletes: [{q: {$and: [partial, {field: {$lt: now - secs}}]}, limit: 0}]}, without
    * the partial filter when there is none. $lt on a date matches dates
    * only (and an array if one of its dates does: its earliest). The field
    * is no BCON key: a field named "}" would close a level. */
   BSON_APPEND_DOCUMENT_BEGIN (&cond, j->field, &lt);
   BSON_APPEND_DATE_TIME (&lt, "$lt", now_ms - (int64_t) j->secs * 1000);
   bson_append_document_end (&cond, &lt);
   bson_t *q = j->partial ? BCON_NEW ("$and", "[", BCON_DOCUMENT (j->partial), BCON_DOCUMENT (&cond), "]")
                          : BCON_NEW ("$and", "[", BCON_DOCUMENT (&cond), "]");
   bson_t *cmd = BCON_NEW ("delete", BCON_UTF8 (j->coll), "deletes", "[", "{", "q", BCON_DOCUMENT (q), "limit",
                           BCON_INT32 (0), "}", "]");
   bson_iter_t it;
   if (dj_engine_run_command (e, j->db, cmd, &reply) && bson_iter_init_find (&it, &reply, "n")) {
      n = bson_iter_as_int64 (&it);
   }
   bson_destroy (&reply);
   bson_destroy (cmd);
   bson_destroy (q);
   bson_destroy (&cond);
   return n;
}

static void
pass (struct dj_ttl_monitor *m)
{
   dj_ctx_t ctx = {0};
   bson_error_t error;
   job_t *jobs = NULL;
   int njobs = 0;
   char **dbs = NULL;
   int ndbs = 0;

   if (dj_txn_begin (m->engine, false, &ctx, &error)) {
      if (dj_db_list (&ctx, &dbs, &ndbs, &error)) {
         for (int i = 0; i < ndbs; i++) {
            collect (&ctx, dbs[i], &jobs, &njobs);
         }
         dj_strv_free (dbs, ndbs);
      }
      dj_txn_abort (&ctx);
   }
   struct timespec now;
   clock_gettime (CLOCK_REALTIME, &now);
   int64_t now_ms = (int64_t) now.tv_sec * 1000 + now.tv_nsec / 1000000;
   int64_t deleted = 0;
   for (int i = 0; i < njobs; i++) {
      deleted += expire (m->engine, &jobs[i], now_ms);
      bson_free (jobs[i].db);
      bson_free (jobs[i].coll);
      bson_free (jobs[i].field);
      if (jobs[i].partial) {
         bson_destroy (jobs[i].partial);
      }
   }
   bson_free (jobs);
   pthread_mutex_lock (&m->mu);
   m->deleted += deleted;
   m->passes++;
   pthread_cond_broadcast (&m->cond);
   pthread_mutex_unlock (&m->mu);
}

static void *
monitor_main (void *arg)
{
   struct dj_ttl_monitor *m = arg;
   pthread_mutex_lock (&m->mu);
   while (!m->stop) {
      struct timespec until;
      clock_gettime (CLOCK_MONOTONIC, &until);
      until.tv_sec += m->period_s;
      while (!m->stop) {
         int rc = pthread_cond_timedwait (&m->cond, &m->mu, &until);
         if (rc == ETIMEDOUT) {
            break;
         }
      }
      if (m->stop) {
         break;
      }
      pthread_mutex_unlock (&m->mu);
      pass (m);
      pthread_mutex_lock (&m->mu);
   }
   pthread_mutex_unlock (&m->mu);
   return NULL;
}

bool
dj_ttl_attach (dj_engine_t *e, const dj_engine_options_t *opts, bson_error_t *error)
{
   int period = opts && opts->ttl_monitor_secs ? opts->ttl_monitor_secs : 60;
   if (period < 0) {
      return true; /* no monitor for this handle */
   }
   pthread_once (&g_atfork_once, atfork_register);
   pthread_mutex_lock (&g_monitors_mu);
   for (struct dj_ttl_monitor *m = g_monitors; m; m = m->next) {
      if (m->key == (const void *) e->shared) {
         m->refs++;
         e->ttl = m;
         pthread_mutex_unlock (&g_monitors_mu);
         return true;
      }
   }
   struct dj_ttl_monitor *m = bson_malloc0 (sizeof *m);
   m->key = e->shared;
   m->refs = 1;
   m->period_s = period;
   dj_engine_options_t own = opts ? *opts : (dj_engine_options_t){0};
   own.ttl_monitor_secs = -1; /* its own handle starts no monitor */
   own.flags &= ~DJ_ENGINE_EXISTING;
   if (!(m->engine = dj_engine_open (e->path, &own, error))) {
      bson_free (m);
      pthread_mutex_unlock (&g_monitors_mu);
      return false;
   }
   pthread_mutex_init (&m->mu, NULL);
   pthread_condattr_t ca;
   pthread_condattr_init (&ca);
   pthread_condattr_setclock (&ca, CLOCK_MONOTONIC);
   pthread_cond_init (&m->cond, &ca);
   pthread_condattr_destroy (&ca);
   /* the thread takes no signals (it inherits the mask): a process that
    * waits for SIGTERM in one thread, as djongo-server does, keeps it */
   sigset_t all, was;
   sigfillset (&all);
   pthread_sigmask (SIG_BLOCK, &all, &was);
   int rc = pthread_create (&m->thread, NULL, monitor_main, m);
   pthread_sigmask (SIG_SETMASK, &was, NULL);
   if (rc) {
      pthread_cond_destroy (&m->cond);
      pthread_mutex_destroy (&m->mu);
      dj_engine_close (m->engine);
      bson_free (m);
      pthread_mutex_unlock (&g_monitors_mu);
      return dj_error_set (error, DJ_DOMAIN_STORAGE, (uint32_t) rc, "cannot start the TTL monitor: %s", strerror (rc));
   }
   m->next = g_monitors;
   g_monitors = m;
   e->ttl = m;
   pthread_mutex_unlock (&g_monitors_mu);
   return true;
}

void
dj_ttl_detach (dj_engine_t *e)
{
   struct dj_ttl_monitor *m = e->ttl;
   if (!m) {
      return;
   }
   e->ttl = NULL;
   pthread_mutex_lock (&g_monitors_mu);
   bool last = --m->refs == 0;
   if (last && !m->orphan) {
      for (struct dj_ttl_monitor **pp = &g_monitors; *pp; pp = &(*pp)->next) {
         if (*pp == m) {
            *pp = m->next;
            break;
         }
      }
   }
   pthread_mutex_unlock (&g_monitors_mu);
   if (!last) {
      return;
   }
   if (!m->orphan) {
      pthread_mutex_lock (&m->mu);
      m->stop = true;
      pthread_cond_broadcast (&m->cond);
      pthread_mutex_unlock (&m->mu);
      pthread_join (m->thread, NULL); /* a pass in progress finishes first */
   }
   pthread_cond_destroy (&m->cond);
   pthread_mutex_destroy (&m->mu);
   dj_engine_close (m->engine);
   bson_free (m);
}

void
dj_engine_ttl_stats (dj_engine_t *e, int64_t *deleted, int64_t *passes)
{
   *deleted = *passes = 0;
   if (e && e->ttl) {
      pthread_mutex_lock (&e->ttl->mu);
      *deleted = e->ttl->deleted;
      *passes = e->ttl->passes;
      pthread_mutex_unlock (&e->ttl->mu);
   }
}
