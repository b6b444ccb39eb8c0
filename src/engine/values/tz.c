/*
 * tz.c -- time zones for date expressions: "UTC", offsets ("+04:30",
 * "-0700", "+03") and Olson names ("Europe/Paris"), read from the system's
 * TZif files (Debian's tzdata, /usr/share/zoneinfo).
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/dateToString/#std-label-dateToString-timezone
 *
 * Loaded zones are cached for the life of the process in a list guarded by
 * g_tz_mu; a zone is immutable once loaded, so callers use it without a lock.
 */
#include "dj_values.h"

#include <pthread.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>

struct dj_tz {
   char *name;         /* owned */
   int32_t fixed;      /* offset in seconds when ntrans == 0 and types == NULL */
   int64_t *trans;     /* owned: transition times (UTC seconds), ascending */
   uint8_t *idx;       /* owned: type index per transition */
   int32_t *offsets;   /* owned: UT offset per type */
   int ntrans, ntypes;
   int first_std;      /* type in force before the first transition */
   struct dj_tz *next;
};

static pthread_mutex_t g_tz_mu = PTHREAD_MUTEX_INITIALIZER;
static dj_tz_t *g_tzs;

static int64_t
be (const uint8_t *p, int n)
{
   uint64_t v = 0;
   for (int i = 0; i < n; i++) {
      v = (v << 8) | p[i];
   }
   if (n == 4) {
      return (int32_t) (uint32_t) v;
   }
   return (int64_t) v;
}

/* Parses a TZif file's version-2+ (64-bit) block, or v1 if that is all. */
static dj_tz_t *
load_tzif (const char *name, const uint8_t *d, size_t n)
{
   if (n < 44 || memcmp (d, "TZif", 4)) {
      return NULL;
   }
   int version = d[4];
   const uint8_t *h = d;
   int tsize = 4;
   for (int pass = 0; pass < 2; pass++) {
      if (h + 44 > d + n) {
         return NULL;
      }
      int64_t isutc = be (h + 20, 4), isstd = be (h + 24, 4), leap = be (h + 28, 4), timecnt = be (h + 32, 4),
              typecnt = be (h + 36, 4), charcnt = be (h + 40, 4);
      if (isutc < 0 || isstd < 0 || leap < 0 || timecnt < 0 || typecnt <= 0 || charcnt < 0 || timecnt > 100000 ||
          typecnt > 256) {
         return NULL;
      }
      size_t body = (size_t) (timecnt * tsize + timecnt + typecnt * 6 + charcnt + leap * (tsize + 4) + isstd + isutc);
      const uint8_t *b = h + 44;
      if (b + body > d + n) {
         return NULL;
      }
      if (pass == 0 && version >= '2') {
         h = b + body; /* skip to the 64-bit block */
         tsize = 8;
         continue;
      }
      dj_tz_t *z = bson_malloc0 (sizeof *z);
      z->name = bson_strdup (name);
      z->ntrans = (int) timecnt;
      z->ntypes = (int) typecnt;
      z->trans = bson_malloc (sizeof (int64_t) * (size_t) (timecnt ? timecnt : 1));
      z->idx = bson_malloc ((size_t) (timecnt ? timecnt : 1));
      z->offsets = bson_malloc (sizeof (int32_t) * (size_t) typecnt);
      for (int64_t i = 0; i < timecnt; i++) {
         z->trans[i] = be (b + i * tsize, tsize);
      }
      const uint8_t *ix = b + timecnt * tsize;
      for (int64_t i = 0; i < timecnt; i++) {
         z->idx[i] = ix[i] < typecnt ? ix[i] : 0;
      }
      const uint8_t *tt = ix + timecnt;
      z->first_std = 0;
      for (int64_t i = 0; i < typecnt; i++) {
         z->offsets[i] = (int32_t) be (tt + i * 6, 4);
      }
      for (int64_t i = 0; i < typecnt; i++) {
         if (!tt[i * 6 + 4]) { /* first non-DST type rules before the first transition */
            z->first_std = (int) i;
            break;
         }
      }
      return z;
   }
   return NULL;
}

static bool
parse_offset (const char *s, int32_t *out)
{
   /* +hh, +hhmm, +hh:mm (and the same with -) */
   int sign = s[0] == '-' ? -1 : 1, h, m = 0;
   if (s[0] != '+' && s[0] != '-') {
      return false;
   }
   size_t n = strlen (s + 1);
   for (size_t i = 1; s[i]; i++) {
      if (!isdigit ((unsigned char) s[i]) && !(s[i] == ':' && i == 3)) {
         return false;
      }
   }
   if (n == 2) {
      h = atoi (s + 1);
   } else if (n == 4 && s[3] != ':') {
      h = (s[1] - '0') * 10 + (s[2] - '0');
      m = (s[3] - '0') * 10 + (s[4] - '0');
   } else if (n == 5 && s[3] == ':') {
      h = (s[1] - '0') * 10 + (s[2] - '0');
      m = (s[4] - '0') * 10 + (s[5] - '0');
   } else {
      return false;
   }
   if (h > 99 || m > 59) {
      return false;
   }
   *out = sign * (h * 3600 + m * 60);
   return true;
}

const dj_tz_t *
dj_tz_get (const char *name, bson_error_t *error)
{
   dj_tz_t *z;
   int32_t off = 0;

   pthread_mutex_lock (&g_tz_mu);
   for (z = g_tzs; z; z = z->next) {
      if (!strcmp (z->name, name)) {
         pthread_mutex_unlock (&g_tz_mu);
         return z;
      }
   }
   if (!strcmp (name, "UTC") || !strcmp (name, "GMT") || !strcmp (name, "Z") || parse_offset (name, &off)) {
      z = bson_malloc0 (sizeof *z);
      z->name = bson_strdup (name);
      z->fixed = (name[0] == '+' || name[0] == '-') ? off : 0;
   } else {
      /* Olson names only: letters, digits, '/', '_', '-', '+'; no "..". */
      bool ok = name[0] && name[0] != '/' && !strstr (name, "..") && strlen (name) < 128;
      for (const char *p = name; ok && *p; p++) {
         ok = isalnum ((unsigned char) *p) || strchr ("/_-+", *p);
      }
      z = NULL;
      if (ok) {
         char path[256];
         snprintf (path, sizeof path, "/usr/share/zoneinfo/%s", name);
         FILE *f = fopen (path, "rb");
         if (f) {
            uint8_t buf[1 << 16];
            size_t n = fread (buf, 1, sizeof buf, f);
            fclose (f);
            z = load_tzif (name, buf, n);
         }
      }
      if (!z) {
         pthread_mutex_unlock (&g_tz_mu);
         dj_err (error, 40485, "unrecognized time zone identifier: \"%s\"", name);
         return NULL;
      }
   }
   z->next = g_tzs;
   g_tzs = z;
   pthread_mutex_unlock (&g_tz_mu);
   return z;
}

int32_t
dj_tz_offset (const dj_tz_t *z, int64_t utc_seconds)
{
   if (!z || !z->offsets) {
      return z ? z->fixed : 0;
   }
   if (z->ntrans == 0 || utc_seconds < z->trans[0]) {
      return z->offsets[z->first_std];
   }
   int lo = 0, hi = z->ntrans - 1;
   while (lo < hi) { /* last transition <= t */
      int mid = (lo + hi + 1) / 2;
      if (z->trans[mid] <= utc_seconds) {
         lo = mid;
      } else {
         hi = mid - 1;
      }
   }
   return z->offsets[z->idx[lo]];
}

int64_t
dj_tz_local_to_utc (const dj_tz_t *z, int64_t local_seconds)
{
   /* the offset in force at the result: two rounds settle every case but
    * the skipped hour, which resolves forward like MongoDB */
   int32_t off = dj_tz_offset (z, local_seconds);
   off = dj_tz_offset (z, local_seconds - off);
   return local_seconds - off;
}
