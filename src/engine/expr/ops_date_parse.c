/*
 * ops_date_parse.c -- $dateFromString's `format`: a date string read by
 * the format specifiers the manual lists.
 *
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/dateFromString/#format-specifiers
 *
 *   %d day of month   %G ISO year      %H hour         %j day of year
 *   %L millisecond    %m month         %M minute       %S second
 *   %w day of week (1 Sunday .. 7)     %u ISO day of week (1 Monday .. 7)
 *   %U week of year (00..53, weeks from Sunday)        %V ISO week
 *   %Y year           %z +/-hhmm offset               %Z +/-mmm minutes offset
 *   %b, %B month name (abbreviated, full; any case)    %% a '%'
 *
 * Numbers take at least one digit and at most their field's width; other
 * characters must appear as written. What the string leaves out is the
 * start of its unit (year 1970, January, the 1st, midnight). An offset in
 * the string wins over the timezone argument.
 */
#include "expr-private.h"

#include "dj_date.h"

#include <ctype.h>
#include <strings.h>

typedef struct {
   int64_t year, month, day, hour, minute, second, ms, doy;
   int64_t iso_year, iso_week, iso_dow, week_u, dow_w;
   bool have_doy, have_iso, have_u;
   bool have_offset;
   int64_t offset_min;
} fparts_t;

/* Up to `width` digits at *p (at least one) into *out. */
static bool
digits (const char **p, int width, int64_t *out)
{
   int n = 0;
   int64_t v = 0;
   while (n < width && isdigit ((unsigned char) (*p)[n])) {
      v = v * 10 + ((*p)[n] - '0');
      n++;
   }
   if (!n) {
      return false;
   }
   *p += n;
   *out = v;
   return true;
}

static const char *const month_names[] = {"january", "february", "march",     "april",   "may",      "june",
                                          "july",    "august",   "september", "october", "november", "december"};

/* A month name at *p: the full name, or its first three letters. */
static bool
month_name (const char **p, bool full, int64_t *out)
{
   for (int m = 0; m < 12; m++) {
      size_t n = full ? strlen (month_names[m]) : 3;
      if (!strncasecmp (*p, month_names[m], n)) {
         *p += n;
         *out = m + 1;
         return true;
      }
   }
   return false;
}

/* +/-hhmm (or +/-hh:mm) at *p: minutes east of UTC. */
static bool
offset_hhmm (const char **p, int64_t *min)
{
   int sign = **p == '+' ? 1 : **p == '-' ? -1 : 0;
   int64_t h, m = 0;
   if (!sign) {
      return false;
   }
   (*p)++;
   const char *q = *p;
   if (!digits (p, 2, &h) || *p - q != 2) {
      return false;
   }
   if (**p == ':') {
      (*p)++;
   }
   q = *p;
   if (isdigit ((unsigned char) **p) && (!digits (p, 2, &m) || *p - q != 2)) {
      return false;
   }
   *min = sign * (h * 60 + m);
   return true;
}

/* The days since 1970-01-01 of the ISO week date (year, week, day 1..7). */
static int64_t
iso_days (int64_t year, int64_t week, int64_t dow)
{
   /* week 1 holds January 4th; its Monday */
   int64_t jan4 = dj_days_from_civil (year, 1, 4);
   int64_t jan4_dow = ((jan4 % 7) + 7 + 3) % 7; /* 0 Monday: 1970-01-01 was a Thursday */
   return jan4 - jan4_dow + (week - 1) * 7 + (dow - 1);
}

bool
x_parse_format (dj_eval_t *ev, const char *s, const char *fmt, const dj_tz_t *tz, int64_t *ms_out)
{
   fparts_t f = {.year = 1970, .month = 1, .day = 1, .iso_dow = 1, .dow_w = 1};
   const char *p = s;
   bool ok = true;
   for (const char *c = fmt; *c; c++) {
      if (*c != '%') {
         ok = ok && *p == *c;
         p += ok;
         continue;
      }
      c++;
      if (!*c) {
         return x_fail (ev, 18535, "Unmatched '%%' at end of format string");
      }
      int64_t skip = 0;
      switch (*c) {
      case 'd': ok = ok && digits (&p, 2, &f.day); break;
      case 'm': ok = ok && digits (&p, 2, &f.month); break;
      case 'Y': ok = ok && digits (&p, 4, &f.year); break;
      case 'H': ok = ok && digits (&p, 2, &f.hour); break;
      case 'M': ok = ok && digits (&p, 2, &f.minute); break;
      case 'S': ok = ok && digits (&p, 2, &f.second); break;
      case 'L': {
         const char *q = p;
         ok = ok && digits (&p, 3, &f.ms);
         for (long n = p - q; ok && n < 3; n++) {
            f.ms *= 10; /* ".5" is 500 ms */
         }
         break;
      }
      case 'j': ok = ok && digits (&p, 3, &f.doy); f.have_doy = true; break;
      case 'G': ok = ok && digits (&p, 4, &f.iso_year); f.have_iso = true; break;
      case 'V': ok = ok && digits (&p, 2, &f.iso_week); f.have_iso = true; break;
      case 'u': ok = ok && digits (&p, 1, &f.iso_dow); f.have_iso = true; break;
      case 'U': ok = ok && digits (&p, 2, &f.week_u); f.have_u = true; break;
      case 'w': ok = ok && digits (&p, 1, &f.dow_w); break;
      case 'b': ok = ok && month_name (&p, false, &f.month); break;
      case 'B': ok = ok && month_name (&p, true, &f.month); break;
      case 'z': ok = ok && offset_hhmm (&p, &f.offset_min); f.have_offset = true; break;
      case 'Z': {
         int sign = *p == '+' ? 1 : *p == '-' ? -1 : 0;
         p += sign != 0;
         ok = ok && sign && digits (&p, 3, &skip);
         f.offset_min = sign * skip;
         f.have_offset = true;
         break;
      }
      case '%': ok = ok && *p == '%'; p += ok; break;
      default: return x_fail (ev, 18536, "Invalid format character '%%%c' in format string", *c);
      }
   }
   ok = ok && !*p; /* nothing left over */
   ok = ok && f.month >= 1 && f.month <= 12 && f.day >= 1 && f.day <= 31 && f.hour <= 23 && f.minute <= 59 &&
        f.second <= 59 && (!f.have_doy || (f.doy >= 1 && f.doy <= 366)) &&
        (!f.have_iso || (f.iso_week >= 1 && f.iso_week <= 53 && f.iso_dow >= 1 && f.iso_dow <= 7)) && f.dow_w >= 1 &&
        f.dow_w <= 7;
   if (!ok) {
      return x_fail (ev, 241, "Error parsing date string '%s' with format '%s'", s, fmt);
   }
   int64_t y = f.year, mo = f.month, d = f.day;
   if (f.have_iso) {
      int64_t days = iso_days (f.iso_year, f.iso_week, f.iso_dow);
      unsigned um, ud;
      dj_civil_from_days (days, &y, &um, &ud);
      mo = um;
      d = ud;
   } else if (f.have_doy) {
      mo = 1;
      d = f.doy; /* x_from_parts carries days past the month */
   } else if (f.have_u) {
      /* week 0 holds the days before the year's first Sunday (strftime's %U) */
      int64_t jan1 = dj_days_from_civil (y, 1, 1);
      int64_t jan1_dow = ((jan1 % 7) + 7 + 4) % 7; /* 0 Sunday */
      mo = 1;
      d = 1 + f.week_u * 7 + (f.dow_w - 1) - jan1_dow;
   }
   if (f.have_offset) {
      *ms_out = x_from_parts (y, mo, d, f.hour, f.minute, f.second, f.ms, NULL) - f.offset_min * 60000;
   } else {
      *ms_out = x_from_parts (y, mo, d, f.hour, f.minute, f.second, f.ms, tz);
   }
   return true;
}
