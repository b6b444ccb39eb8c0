/*
 * spill.c -- an external merge sort of documents: what a blocking sort
 * (a find's, $sort, a $group spilling by key) does past its memory limit
 * when it may use the disk.
 *
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/sort/#-sort-and-memory-restrictions
 * https://www.mongodb.com/docs/manual/reference/parameters/#mongodb-parameter-param.allowDiskUseByDefault
 *
 * Documents are held in memory until they pass the limit; then the ones held
 * are sorted (stably) and written as one run to a temporary file, and memory
 * starts over. At the end the runs (and what is still held) are merged k
 * ways: a heap of each run's current document, ties going to the earlier
 * run, so the output is the stable sort of the input, as the in-memory sort
 * gives it. Runs have levels: SPILL_FANIN runs of one level, the last ones,
 * are merged into one of the next as soon as they are there (so a few
 * times SPILL_FANIN files are open at most, and a document is rewritten
 * once per level: log base SPILL_FANIN of the runs); more than SPILL_FANIN
 * left at the end are merged in consecutive groups first. Merging
 * consecutive runs keeps their order, so ties' order.
 *
 * The files live in the data directory's _tmp (mongod's dbpath/_tmp), named
 * spill-<pid>-XXXXXX, and are unlinked as soon as they are created: the open
 * descriptor is all that keeps them, so they are gone when the sort ends,
 * fails or the process dies. dj_spill_sweep (at the directory's open)
 * removes any a process left between creating and unlinking one.
 *
 * Memory: the sorter owns the documents added until they are written or
 * returned; while merging it holds one document and a stdio buffer per run.
 */
#include "dj_storage.h"
#include "dj_heap.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SPILL_FANIN 64

typedef struct {
   FILE *f;     /* owned: the run, unlinked */
   bson_t *doc; /* owned: its current document while merging (NULL: done) */
   int level;   /* 0: written from memory; n + 1: SPILL_FANIN runs of level n merged */
} run_t;

struct dj_spill {
   const char *dir; /* borrowed: the data directory */
   const dj_sort_t *sort;
   int64_t limit;
   bson_t **mem; /* owned, with each document */
   size_t n, cap, bytes, pos;
   run_t *runs; /* owned */
   size_t nruns, rcap;
   size_t *heap; /* merging: indexes into runs, the next document's run at the root */
   size_t nheap;
   int64_t spills; /* the times memory was written out as a run */
   bool merging;
};

dj_spill_t *
dj_spill_new (const char *dir, const dj_sort_t *sort, int64_t limit)
{
   dj_spill_t *s = bson_malloc0 (sizeof *s);
   s->dir = dir;
   s->sort = sort;
   s->limit = limit;
   s->heap = bson_malloc (sizeof (size_t) * SPILL_FANIN);
   return s;
}

int64_t
dj_spill_count (const dj_spill_t *s)
{
   return s->spills;
}

static bool
io_error (bson_error_t *error, const char *what)
{
   /* mongod reports a failed spill file as an internal error of the sorter */
   return dj_err (error, DJ_InternalError, "sort spill: %s: %s", what, strerror (errno));
}

/* A new temporary file under dir/_tmp, already unlinked. */
static FILE *
temp_file (const char *dir, bson_error_t *error)
{
   char *tmp = bson_strdup_printf ("%s/_tmp", dir);
   char *name = bson_strdup_printf ("%s/spill-%ld-XXXXXX", tmp, (long) getpid ());
   FILE *f = NULL;
   if (mkdir (tmp, 0700) && errno != EEXIST) {
      io_error (error, "cannot create the _tmp directory");
   } else {
      int fd = mkstemp (name);
      if (fd < 0) {
         io_error (error, "cannot create a file");
      } else {
         unlink (name);
         f = fdopen (fd, "w+b");
         if (!f) {
            close (fd);
            io_error (error, "cannot open a file");
         }
      }
   }
   bson_free (name);
   bson_free (tmp);
   return f;
}

static bool
write_doc (FILE *f, const bson_t *doc, bson_error_t *error)
{
   return fwrite (bson_get_data (doc), 1, doc->len, f) == doc->len || io_error (error, "write failed");
}

/* The next document of f (owned by the caller); NULL at its end or on an
 * error (error->code set). */
static bson_t *
read_doc (FILE *f, bson_error_t *error)
{
   uint8_t hdr[4];
   size_t got = fread (hdr, 1, 4, f);
   if (got == 0 && feof (f)) {
      return NULL;
   }
   int32_t len = dj_le32_read (hdr);
   if (got != 4 || len < 5) {
      io_error (error, "short read");
      return NULL;
   }
   uint8_t *buf = bson_malloc ((size_t) len);
   memcpy (buf, hdr, 4);
   bson_t *doc = NULL;
   if (fread (buf + 4, 1, (size_t) len - 4, f) != (size_t) len - 4) {
      io_error (error, "short read");
   } else if (!(doc = bson_new_from_data (buf, (size_t) len))) {
      dj_err (error, DJ_InternalError, "sort spill: a corrupt document");
   }
   bson_free (buf);
   return doc;
}

static bool merge_group (dj_spill_t *s, size_t from, size_t to, int level, bson_error_t *error);

/* Writes what memory holds, sorted, as one more run (then merges the last
 * SPILL_FANIN runs while they share a level). */
static bool
spill_memory (dj_spill_t *s, bson_error_t *error)
{
   FILE *f = temp_file (s->dir, error);
   if (!f) {
      return false;
   }
   DJ_GROW (s->runs, s->nruns, s->rcap, 8);
   s->runs[s->nruns++] = (run_t) {f, NULL, 0};
   s->spills++;
   dj_sort_docs (s->sort, s->mem, s->n);
   bool ok = true;
   for (size_t i = 0; i < s->n; i++) {
      ok = ok && write_doc (f, s->mem[i], error);
      bson_destroy (s->mem[i]);
   }
   s->n = s->bytes = 0;
   ok = ok && (fflush (f) == 0 || io_error (error, "write failed")) && (fseek (f, 0, SEEK_SET) == 0 || io_error (error, "seek failed"));
   /* levels never rise along the runs: the first and last of the window agree only when all do */
   while (ok && s->nruns >= SPILL_FANIN && s->runs[s->nruns - SPILL_FANIN].level == s->runs[s->nruns - 1].level) {
      ok = merge_group (s, s->nruns - SPILL_FANIN, s->nruns, s->runs[s->nruns - 1].level + 1, error);
   }
   return ok;
}

bool
dj_spill_add (dj_spill_t *s, bson_t *doc, bson_error_t *error)
{
   DJ_GROW (s->mem, s->n, s->cap, 64);
   s->mem[s->n++] = doc;
   s->bytes += doc->len;
   return (int64_t) s->bytes <= s->limit || spill_memory (s, error);
}

/* ---- the k-way merge ------------------------------------------------------- */

/* Whether run a's document comes before run b's (ties: the earlier run). */
static bool
before (const dj_spill_t *s, size_t a, size_t b)
{
   int c = dj_sort_cmp (s->sort, s->runs[a].doc, s->runs[b].doc);
   return c < 0 || (c == 0 && a < b);
}

static bool
heap_above (void *ctx, const void *a, const void *b)
{
   return before (ctx, *(const size_t *) a, *(const size_t *) b);
}

static void
sift_down (dj_spill_t *s, size_t i)
{
   dj_heap_sift_down (s->heap, sizeof *s->heap, s->nheap, i, heap_above, s);
}

/* Starts merging runs [from, to): each one's first document, the heap. */
static bool
merge_start (dj_spill_t *s, size_t from, size_t to, bson_error_t *error)
{
   s->nheap = 0;
   for (size_t i = from; i < to; i++) {
      s->runs[i].doc = read_doc (s->runs[i].f, error);
      if (error->code) {
         return false;
      }
      if (s->runs[i].doc) {
         s->heap[s->nheap++] = i;
      }
   }
   for (size_t i = s->nheap / 2; i-- > 0;) {
      sift_down (s, i);
   }
   return true;
}

/* The merge's next document (the caller's); NULL at the end or on an error. */
static bson_t *
merge_next (dj_spill_t *s, bson_error_t *error)
{
   if (!s->nheap) {
      return NULL;
   }
   run_t *r = &s->runs[s->heap[0]];
   bson_t *doc = r->doc;
   r->doc = read_doc (r->f, error);
   if (error->code) {
      bson_destroy (doc);
      return NULL;
   }
   if (!r->doc) {
      s->heap[0] = s->heap[--s->nheap];
   }
   sift_down (s, 0);
   return doc;
}

static void
close_run (run_t *r)
{
   if (r->f) {
      fclose (r->f);
   }
   bson_destroy (r->doc);
   *r = (run_t) {0};
}

/* Merges runs [from, to) (at most SPILL_FANIN) into one run of `level` in
 * their place; the runs after them move down. */
static bool
merge_group (dj_spill_t *s, size_t from, size_t to, int level, bson_error_t *error)
{
   FILE *f = temp_file (s->dir, error);
   bool ok = f && merge_start (s, from, to, error);
   bson_t *doc;
   while (ok && (doc = merge_next (s, error))) {
      ok = write_doc (f, doc, error);
      bson_destroy (doc);
   }
   ok = ok && !error->code && (fflush (f) == 0 || io_error (error, "write failed")) &&
        (fseek (f, 0, SEEK_SET) == 0 || io_error (error, "seek failed"));
   for (size_t i = from; i < to; i++) {
      close_run (&s->runs[i]);
   }
   size_t k = from;
   if (f) {
      s->runs[k++] = (run_t) {f, NULL, level};
   }
   memmove (&s->runs[k], &s->runs[to], sizeof (run_t) * (s->nruns - to));
   s->nruns = k + (s->nruns - to);
   return ok;
}

bool
dj_spill_finish (dj_spill_t *s, bson_error_t *error)
{
   s->merging = true;
   if (!s->nruns) {
      dj_sort_docs (s->sort, s->mem, s->n); /* all of it fit: the in-memory sort */
      return true;
   }
   if (s->n && !spill_memory (s, error)) {
      return false;
   }
   while (s->nruns > SPILL_FANIN) {
      /* consecutive groups into one run each */
      for (size_t from = 0; from < s->nruns; from++) {
         if (!merge_group (s, from, from + SPILL_FANIN < s->nruns ? from + SPILL_FANIN : s->nruns, 0, error)) {
            return false;
         }
      }
   }
   return merge_start (s, 0, s->nruns, error);
}

bson_t *
dj_spill_next (dj_spill_t *s, bson_error_t *error)
{
   if (s->nruns) {
      return merge_next (s, error);
   }
   if (s->pos == s->n) {
      return NULL;
   }
   bson_t *doc = s->mem[s->pos];
   s->mem[s->pos++] = NULL;
   return doc;
}

void
dj_spill_destroy (dj_spill_t *s)
{
   if (!s) {
      return;
   }
   for (size_t i = 0; i < s->nruns; i++) {
      close_run (&s->runs[i]);
   }
   dj_bsons_free (s->mem, s->pos, s->n);
   DJ_FREE (s->runs, s->heap, s);
}

void
dj_spill_sweep (const char *dir)
{
   char *tmp = bson_strdup_printf ("%s/_tmp", dir);
   DIR *d = opendir (tmp);
   struct dirent *de;
   while (d && (de = readdir (d))) {
      long pid;
      char rest[16];
      /* spill-<pid>-XXXXXX of a process that is gone */
      if (sscanf (de->d_name, "spill-%ld-%15s", &pid, rest) == 2 && pid > 0 &&
          (kill ((pid_t) pid, 0) == 0 ? false : errno == ESRCH)) {
         char *p = bson_strdup_printf ("%s/%s", tmp, de->d_name);
         unlink (p);
         bson_free (p);
      }
   }
   if (d) {
      closedir (d);
   }
   bson_free (tmp);
}
