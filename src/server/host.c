/*
 * host.c -- a thread's mailbox: a function run on a given thread.
 *
 * LMDB's write transaction belongs to the thread that began it, so a
 * multi-document transaction's commands and its end run on one thread, its
 * host (sessions.c). A transaction begun by a command that came over a
 * connection is hosted by that connection's thread: the commands that follow
 * over the same connection -- all of them, for a driver with one connection,
 * as djongo's -- run at once, with no handoff to another thread (two thread
 * wakes each). A command of it that comes over another connection is posted
 * to the host, which runs it between its own messages: the connection
 * thread polls its host's eventfd beside its socket (io.c).
 *
 * A thread waiting for a function posted elsewhere runs what is posted to
 * its own host meanwhile, and so does one waiting for a lock another
 * thread holds while it waits for this one (dj_host_lock): two hosts
 * waiting for each other each run the other's function.
 *
 * A host lives as long as its thread; a connection thread whose connection
 * ended while it still hosts something keeps serving (dj_host_close) until
 * nothing is hosted (the transaction committed or aborted from another
 * connection, ended with its session, or aborted past its lifetime).
 *
 * Ownership: a host is its thread's (made and freed there); a task is the
 * poster's (its stack) until done.
 */
#include <errno.h>
#include <semaphore.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "server-private.h"

typedef struct task {
   void (*fn) (void *);
   void *arg;
   struct task *next;
   dj_host_t *waiter; /* the waiting thread's host, or NULL: it waits on sem */
   sem_t sem;
   bool done; /* (under waiter->mu) */
} task_t;

struct dj_host {
   pthread_mutex_t mu;
   pthread_cond_t cv; /* a task posted, one this thread waits for done, held dropped to 0, quit */
   task_t *queue, **tail; /* posted, not yet taken (guarded by mu) */
   int wake;              /* eventfd written at each post (-1: none, the thread waits on cv only) */
   int held;              /* what it hosts: the thread serves until 0 (guarded by mu) */
   bool quit;             /* dj_host_loop returns */
};

static _Thread_local dj_host_t *tl_host;

dj_host_t *
dj_host_new (bool pollable)
{
   int fd = -1;
   if (pollable && (fd = eventfd (0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
      return NULL;
   }
   dj_host_t *h = bson_malloc0 (sizeof *h);
   pthread_mutex_init (&h->mu, NULL);
   pthread_cond_init (&h->cv, NULL);
   h->tail = &h->queue;
   h->wake = fd;
   return h;
}

void
dj_host_enter (dj_host_t *h)
{
   tl_host = h;
}

dj_host_t *
dj_host_self (void)
{
   return tl_host;
}

int
dj_host_fd (const dj_host_t *h)
{
   return h ? h->wake : -1;
}

/* Runs the tasks posted to h (the caller is h's thread): true if any. */
static bool
serve (dj_host_t *h)
{
   pthread_mutex_lock (&h->mu);
   task_t *q = h->queue;
   h->queue = NULL;
   h->tail = &h->queue;
   pthread_mutex_unlock (&h->mu);
   for (task_t *t = q, *next; t; t = next) {
      next = t->next; /* t is gone once done */
      t->fn (t->arg);
      dj_host_t *w = t->waiter;
      if (w) {
         pthread_mutex_lock (&w->mu);
         t->done = true;
         pthread_cond_broadcast (&w->cv);
         pthread_mutex_unlock (&w->mu);
      } else {
         sem_post (&t->sem);
      }
   }
   return q != NULL;
}

/* Serves h (the caller is h's thread) until until(h, arg) holds, looked
 * at under h's lock whenever h's condition is signalled. */
static void
serve_until (dj_host_t *h, bool (*until) (const dj_host_t *, const void *), const void *arg)
{
   pthread_mutex_lock (&h->mu);
   while (!until (h, arg)) {
      if (h->queue) {
         pthread_mutex_unlock (&h->mu);
         serve (h);
         pthread_mutex_lock (&h->mu);
         continue;
      }
      pthread_cond_wait (&h->cv, &h->mu);
   }
   pthread_mutex_unlock (&h->mu);
}

static bool
task_done (const dj_host_t *h, const void *t)
{
   (void) h;
   return ((const task_t *) t)->done;
}

static bool
quitting (const dj_host_t *h, const void *arg)
{
   (void) arg;
   return h->quit;
}

/* nothing hosted, nothing posted: the thread may end */
static bool
idle (const dj_host_t *h, const void *arg)
{
   (void) arg;
   return h->held == 0 && !h->queue;
}

bool
dj_host_serve (dj_host_t *h)
{
   uint64_t n;
   if (h->wake >= 0 && read (h->wake, &n, sizeof n) < 0 && errno != EAGAIN) {
      return false;
   }
   return serve (h);
}

void
dj_host_run (dj_host_t *h, void (*fn) (void *), void *arg)
{
   dj_host_t *me = tl_host;
   if (h == me) {
      fn (arg);
      return;
   }
   task_t t = {fn, arg, NULL, me, {{0}}, false};
   if (!me) {
      sem_init (&t.sem, 0, 0);
   }
   pthread_mutex_lock (&h->mu);
   *h->tail = &t;
   h->tail = &t.next;
   pthread_cond_broadcast (&h->cv);
   if (h->wake >= 0) {
      uint64_t one = 1;
      ssize_t rc = write (h->wake, &one, sizeof one); /* fails only when the counter is full: woken anyway */
      (void) rc;
   }
   pthread_mutex_unlock (&h->mu);
   if (!me) {
      while (sem_wait (&t.sem) != 0 && errno == EINTR) {
      }
      sem_destroy (&t.sem);
      return;
   }
   serve_until (me, task_done, &t);
}

void
dj_host_lock (pthread_mutex_t *m)
{
   dj_host_t *me = tl_host;
   if (!me || !dj_host_busy (me)) { /* nobody waits for this thread: it may block */
      pthread_mutex_lock (m);
      return;
   }
   while (pthread_mutex_trylock (m) != 0) {
      /* its holder may be waiting for this thread: serve, then look again
       * (a millisecond at most: the holder signals nothing here) */
      pthread_mutex_lock (&me->mu);
      if (!me->queue) {
         struct timespec until;
         clock_gettime (CLOCK_REALTIME, &until);
         until.tv_nsec += 1000 * 1000;
         if (until.tv_nsec >= 1000000000) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000;
         }
         pthread_cond_timedwait (&me->cv, &me->mu, &until);
      }
      pthread_mutex_unlock (&me->mu);
      serve (me);
   }
}

void
dj_host_hold (dj_host_t *h, int delta)
{
   pthread_mutex_lock (&h->mu);
   h->held += delta;
   if (h->held == 0) {
      pthread_cond_broadcast (&h->cv);
   }
   pthread_mutex_unlock (&h->mu);
}

bool
dj_host_busy (dj_host_t *h)
{
   pthread_mutex_lock (&h->mu);
   bool busy = h->held > 0;
   pthread_mutex_unlock (&h->mu);
   return busy;
}

static void
set_quit (void *arg)
{
   ((dj_host_t *) arg)->quit = true;
}

void
dj_host_quit (dj_host_t *h)
{
   dj_host_run (h, set_quit, h);
}

void
dj_host_loop (dj_host_t *h)
{
   serve_until (h, quitting, NULL);
}

void
dj_host_close (dj_host_t *h)
{
   if (!h) {
      return;
   }
   serve_until (h, idle, NULL);
   tl_host = NULL;
   if (h->wake >= 0) {
      close (h->wake);
   }
   pthread_cond_destroy (&h->cv);
   pthread_mutex_destroy (&h->mu);
   bson_free (h);
}
