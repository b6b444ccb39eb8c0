/*
 * ops_date.c -- dates: the calendar in a time zone, $year..$isoDayOfWeek,
 * $dateToString/$dateFromString (and the formats $toString/$toDate use),
 * $dateTrunc/$dateAdd/$dateSubtract/$dateDiff, $dateFromParts/$dateToParts.
 *
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/#date-expression-operators
 *
 * Their rows (name, arity, argument rule) are in expr.c's ops[].
 */
#include "dj_date.h"
#include "expr-private.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdlib.h>
#include <strings.h>

/* ---- dates ----------------------------------------------------------------- */

typedef struct {
   int64_t year;
   unsigned month, day, hour, minute, second, ms;
   unsigned dow;  /* 1 = Sunday .. 7 */
   unsigned doy;  /* 1..366 */
   int32_t offset; /* seconds */
} parts_t;


/* The dates the calendar arithmetic takes (op_date_arith): +-2^52 ms,
 * about 142,000 years either side of 1970, where days * 86400000 plus any
 * time zone offset and any month or week step stay far inside int64. */
#define DATE_ARITH_MAX (INT64_C (1) << 52)
static int64_t
floordiv (int64_t a, int64_t b)
{
   int64_t q = a / b;
   return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

/* The start of x's bin, floor (x / (per * bin)) * per * bin, computed in
 * 128 bits (per * bin may pass int64: a binSize up to 2^63 is legal): false
 * when it lies beyond +-limit. */
static bool
bin_start (int64_t x, int64_t per, int64_t bin, int64_t limit, int64_t *out)
{
   __int128 w = (__int128) per * bin;
   __int128 q = x / w;
   if (x % w < 0) {
      q--;
   }
   __int128 r = q * w;
   if (r < -(__int128) limit || r > (__int128) limit) {
      return false;
   }
   *out = (int64_t) r;
   return true;
}

static void
to_parts (int64_t ms, const dj_tz_t *tz, parts_t *p)
{
   int64_t secs = floordiv (ms, 1000);
   p->offset = tz ? dj_tz_offset (tz, secs) : 0;
   /* in 128 bits: a date near +-2^63 ms plus its zone's offset, and the
    * whole days below it times 86,400,000, leave int64 (UBSan, the
    * expression fuzzer); the day count and the remainder fit again */
   __int128 local_ms = (__int128) ms + (__int128) p->offset * 1000;
   __int128 q = local_ms / 86400000;
   if (local_ms % 86400000 != 0 && local_ms < 0) {
      q--;
   }
   int64_t days = (int64_t) q;
   int64_t rem = (int64_t) (local_ms - q * 86400000);
   dj_civil_from_days (days, &p->year, &p->month, &p->day);
   p->hour = (unsigned) (rem / 3600000);
   p->minute = (unsigned) (rem / 60000 % 60);
   p->second = (unsigned) (rem / 1000 % 60);
   p->ms = (unsigned) (rem % 1000);
   p->dow = (unsigned) ((days % 7 + 7 + 4) % 7) + 1; /* 1970-01-01 was a Thursday */
   p->doy = (unsigned) (days - dj_days_from_civil (p->year, 1, 1)) + 1;
}

int64_t
x_from_parts (int64_t y, int64_t mo, int64_t d, int64_t h, int64_t mi, int64_t s, int64_t ms, const dj_tz_t *tz)
{
   /* months and days may overflow their ranges: MongoDB carries them */
   y += floordiv (mo - 1, 12);
   mo = mo - 1 - floordiv (mo - 1, 12) * 12 + 1;
   int64_t days = dj_days_from_civil (y, (unsigned) mo, 1) + d - 1;
   int64_t local_s = days * 86400 + h * 3600 + mi * 60 + s;
   int64_t utc_s = tz ? dj_tz_local_to_utc (tz, local_s) : local_s;
   return utc_s * 1000 + ms;
}

static unsigned
iso_dow (const parts_t *p)
{
   return p->dow == 1 ? 7 : p->dow - 1;
}

static void
iso_week (const parts_t *p, int64_t *wyear, unsigned *week)
{
   /* ISO 8601: the week with the year's first Thursday is week 1 */
   int64_t y = p->year;
   int wd = (int) iso_dow (p);
   int64_t ordinal = p->doy;
   int64_t w = (ordinal - wd + 10) / 7;
   if (w < 1) {
      y--;
      int64_t dec31 = dj_days_from_civil (y, 12, 31);
      parts_t q;
      to_parts (dec31 * 86400000, NULL, &q);
      w = ((int64_t) q.doy - (int64_t) iso_dow (&q) + 10) / 7;
   } else if (w == 53) {
      int64_t jan1next = dj_days_from_civil (y + 1, 1, 1);
      int jd = (int) (((jan1next % 7) + 7 + 3) % 7) + 1; /* ISO weekday of next Jan 1 */
      if (jd <= 4) {
         y++;
         w = 1;
      }
   }
   *wyear = y;
   *week = (unsigned) w;
}

/* The time zone a 'timezone' argument names (v NULL: none given, UTC);
 * *is_null when it is null or missing. */
static bool
tz_value (dj_eval_t *ev, const bson_value_t *v, const dj_tz_t **tz, bool *is_null)
{
   *tz = NULL;
   if (!v) {
      return true;
   }
   if (nullish (v)) {
      *is_null = true;
      return true;
   }
   if (v->value_type != BSON_TYPE_UTF8) {
      return x_fail (ev, 40517, "timezone must evaluate to a string, found %s", tname (v));
   }
   *tz = dj_tz_get (v->value.v_utf8.str, ev->error);
   return *tz != NULL;
}

/* The same for the expression tze (NULL: none given). */
static bool
get_tz (const dj_expr_t *tze, dj_eval_t *ev, const dj_tz_t **tz, bool *is_null)
{
   bson_value_t v;
   *tz = NULL;
   return !tze || (x_eval (tze, ev, &v) && tz_value (ev, &v, tz, is_null));
}

bool
x_date_ms (dj_eval_t *ev, const bson_value_t *v, int64_t *ms)
{
   switch (v->value_type) {
   case BSON_TYPE_DATE_TIME: *ms = v->value.v_datetime; return true;
   case BSON_TYPE_TIMESTAMP: *ms = (int64_t) v->value.v_timestamp.timestamp * 1000; return true;
   case BSON_TYPE_OID: *ms = (int64_t) bson_oid_get_time_t (&v->value.v_oid) * 1000; return true;
   default: return x_fail (ev, 16006, "can't convert from BSON type %s to Date", tname (v));
   }
}

/* The date v in the zone tz as calendar parts: 1; null or missing (or a null
 * zone): 0, out is null; not a date: -1, the error set. */
static int
date_parts (dj_eval_t *ev, const bson_value_t *v, const dj_tz_t *tz, bool tz_null, parts_t *p, bson_value_t *out)
{
   int64_t ms;
   if (nullish (v) || tz_null) {
      set_null (out);
      return 0;
   }
   if (!x_date_ms (ev, v, &ms)) {
      return -1;
   }
   to_parts (ms, tz, p);
   return 1;
}

/* $year, $month, ... (aux D_YEAR ...): args date, timezone */
bool
op_date_part (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   const dj_tz_t *tz = NULL;
   bool tz_null = false;
   parts_t p;

   if (!tz_value (ev, e->nargs > 1 && e->args[1] ? &v[1] : NULL, &tz, &tz_null)) {
      return false;
   }
   int r = date_parts (ev, &v[0], tz, tz_null, &p, out);
   if (r <= 0) {
      return r == 0;
   }
   int64_t wy;
   unsigned w;
   switch (e->op->aux) {
   case D_YEAR: set_int (out, p.year); break;
   case D_MONTH: set_int (out, p.month); break;
   case D_DAYOFMONTH: set_int (out, p.day); break;
   case D_DAYOFWEEK: set_int (out, p.dow); break;
   case D_DAYOFYEAR: set_int (out, p.doy); break;
   case D_HOUR: set_int (out, p.hour); break;
   case D_MINUTE: set_int (out, p.minute); break;
   case D_SECOND: set_int (out, p.second); break;
   case D_MILLISECOND: set_int (out, p.ms); break;
   case D_WEEK:
      /* %U: weeks start on Sunday; days before the first Sunday are week 0 */
      set_int (out, ((int64_t) p.doy + 6 - ((int64_t) p.dow - 1)) / 7);
      break;
   case D_ISOWEEK: iso_week (&p, &wy, &w); set_int (out, w); break;
   case D_ISOWEEKYEAR: iso_week (&p, &wy, &w); set_long (out, wy); set_int (out, wy); break;
   case D_ISODAYOFWEEK: set_int (out, iso_dow (&p)); break;
   default: break;
   }
   return true;
}

bool
x_format_date (dj_eval_t *ev, int64_t ms, const dj_tz_t *tz, const char *fmt, bson_value_t *out)
{
   parts_t p;
   dj_buf_t b;
   char tmp[64];
   to_parts (ms, tz, &p);
   dj_buf_init (&b);
   for (const char *f = fmt; *f; f++) {
      if (*f != '%') {
         dj_buf_putc (&b, (uint8_t) *f);
         continue;
      }
      f++;
      int64_t wy;
      unsigned w;
      switch (*f) {
      case 'Y': snprintf (tmp, sizeof tmp, "%04" PRId64, p.year); break;
      case 'm': snprintf (tmp, sizeof tmp, "%02u", p.month); break;
      case 'd': snprintf (tmp, sizeof tmp, "%02u", p.day); break;
      case 'H': snprintf (tmp, sizeof tmp, "%02u", p.hour); break;
      case 'M': snprintf (tmp, sizeof tmp, "%02u", p.minute); break;
      case 'S': snprintf (tmp, sizeof tmp, "%02u", p.second); break;
      case 'L': snprintf (tmp, sizeof tmp, "%03u", p.ms); break;
      case 'j': snprintf (tmp, sizeof tmp, "%03u", p.doy); break;
      case 'w': snprintf (tmp, sizeof tmp, "%u", p.dow); break;
      case 'u': snprintf (tmp, sizeof tmp, "%u", iso_dow (&p)); break;
      case 'U': snprintf (tmp, sizeof tmp, "%02u", (p.doy + 6 - (p.dow - 1)) / 7); break;
      case 'V': iso_week (&p, &wy, &w); snprintf (tmp, sizeof tmp, "%02u", w); break;
      case 'G': iso_week (&p, &wy, &w); snprintf (tmp, sizeof tmp, "%04" PRId64, wy); break;
      case 'b': {
         static const char *const mon[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
         snprintf (tmp, sizeof tmp, "%s", mon[p.month - 1]);
         break;
      }
      case 'z': {
         int32_t o = p.offset;
         snprintf (tmp, sizeof tmp, "%c%02d%02d", o < 0 ? '-' : '+', abs (o) / 3600, abs (o) / 60 % 60);
         break;
      }
      case 'Z': snprintf (tmp, sizeof tmp, "%d", p.offset / 60); break;
      case '%': snprintf (tmp, sizeof tmp, "%%"); break;
      default:
         dj_buf_cleanup (&b);
         return x_fail (ev, 18536, "Invalid format character '%%%c' in format string", *f ? *f : ' ');
      }
      dj_buf_append (&b, tmp, strlen (tmp));
   }
   x_str (ev->arena, (char *) b.data, b.len, out);
   dj_buf_cleanup (&b);
   return true;
}

/* Parses the ISO 8601 forms MongoDB's $dateFromString and $toDate accept:
 * YYYY-MM-DD[(T| )hh:mm[:ss[.fff]]][Z|+hh[:mm]]. Returns false if not one. */
bool
x_parse_iso (const char *s, const dj_tz_t *tz, int64_t *ms_out, bool *had_offset)
{
   int64_t y = 0;
   int mo = 1, d = 1, h = 0, mi = 0, sec = 0, ms = 0, n = 0;
   const char *p = s;
   *had_offset = false;
   if (sscanf (p, "%4" SCNd64 "-%2d-%2d%n", &y, &mo, &d, &n) != 3) {
      return false;
   }
   p += n;
   if (*p == 'T' || *p == ' ') {
      p++;
      if (sscanf (p, "%2d:%2d%n", &h, &mi, &n) != 2) {
         return false;
      }
      p += n;
      if (*p == ':') {
         p++;
         if (sscanf (p, "%2d%n", &sec, &n) != 1) {
            return false;
         }
         p += n;
         if (*p == '.') {
            p++;
            int digits = 0;
            ms = 0;
            while (isdigit ((unsigned char) *p)) {
               if (digits < 3) {
                  ms = ms * 10 + (*p - '0');
               }
               digits++;
               p++;
            }
            while (digits < 3) {
               ms *= 10;
               digits++;
            }
         }
      }
   }
   int32_t off = 0;
   if (*p == 'Z') {
      *had_offset = true;
      p++;
   } else if (*p == '+' || *p == '-') {
      const dj_tz_t *oz = dj_tz_get (p, NULL);
      if (!oz) {
         return false;
      }
      off = dj_tz_offset (oz, 0);
      *had_offset = true;
      p += strlen (p);
   }
   if (*p || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 59) {
      return false;
   }
   int64_t local = x_from_parts (y, mo, d, h, mi, sec, ms, NULL);
   if (*had_offset) {
      *ms_out = local - (int64_t) off * 1000;
   } else {
      *ms_out = tz ? x_from_parts (y, mo, d, h, mi, sec, ms, tz) : local;
   }
   return true;
}

static int64_t
unit_ms (const char *unit)
{
   if (!strcmp (unit, "millisecond")) return 1;
   if (!strcmp (unit, "second")) return 1000;
   if (!strcmp (unit, "minute")) return 60000;
   if (!strcmp (unit, "hour")) return 3600000;
   if (!strcmp (unit, "day")) return 86400000;
   if (!strcmp (unit, "week")) return 7 * 86400000LL;
   return 0;
}

static bool
valid_unit (const char *u)
{
   return unit_ms (u) || !strcmp (u, "month") || !strcmp (u, "quarter") || !strcmp (u, "year");
}

bool
/* date, format, timezone (evaluated); onNull (evaluated when needed) */
op_date_to_string (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   const bson_value_t *fmt = &v[1];
   const dj_tz_t *tz;
   bool tz_null = false;
   int64_t ms;
   if (!tz_value (ev, e->args[2] ? &v[2] : NULL, &tz, &tz_null)) {
      return false;
   }
   if (nullish (&v[0])) {
      return e->args[3] ? x_eval (e->args[3], ev, out) : (set_null (out), true);
   }
   if (tz_null || fmt->value_type == BSON_TYPE_NULL) {
      set_null (out);
      return true;
   }
   if (!x_date_ms (ev, &v[0], &ms)) {
      return false;
   }
   if (fmt->value_type != BSON_TYPE_EOD && fmt->value_type != BSON_TYPE_UTF8) {
      return x_fail (ev, 18533, "$dateToString requires that 'format' be a string, found: %s", tname (fmt));
   }
   return x_format_date (ev, ms, tz, fmt->value_type == BSON_TYPE_UTF8 ? fmt->value.v_utf8.str : "%Y-%m-%dT%H:%M:%S.%LZ", out);
}

bool
/* dateString, format, timezone (evaluated); onError, onNull (evaluated when needed) */
op_date_from_string (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   const bson_value_t a = v[0];
   const dj_tz_t *tz;
   bool tz_null = false, had;
   int64_t ms;
   if (!tz_value (ev, e->args[2] ? &v[2] : NULL, &tz, &tz_null)) {
      return false;
   }
   if (nullish (&a)) {
      return e->args[4] ? x_eval (e->args[4], ev, out) : (set_null (out), true);
   }
   if (tz_null) {
      set_null (out);
      return true;
   }
   if (a.value_type != BSON_TYPE_UTF8) {
      if (e->args[3]) {
         return x_eval (e->args[3], ev, out);
      }
      return x_fail (ev, 241, "$dateFromString requires that 'dateString' be a string, found: %s", tname (&a));
   }
   if (e->args[1] && v[1].value_type != BSON_TYPE_EOD) {
      /* https://www.mongodb.com/docs/manual/reference/operator/aggregation/dateFromString/#format-specifiers */
      if (v[1].value_type == BSON_TYPE_NULL || v[1].value_type == BSON_TYPE_UNDEFINED) {
         set_null (out);
         return true;
      }
      if (v[1].value_type != BSON_TYPE_UTF8) {
         return x_fail (ev, 40684, "$dateFromString requires that 'format' be a string, found: %s", tname (&v[1]));
      }
      if (!x_parse_format (ev, a.value.v_utf8.str, v[1].value.v_utf8.str, tz, &ms)) {
         if (e->args[3] && ev->error->code == 241) {
            memset (ev->error, 0, sizeof *ev->error); /* onError takes the string's error */
            return x_eval (e->args[3], ev, out);
         }
         return false;
      }
      set_date (out, ms);
      return true;
   }
   if (!x_parse_iso (a.value.v_utf8.str, tz, &ms, &had)) {
      if (e->args[3]) {
         return x_eval (e->args[3], ev, out);
      }
      return x_fail (ev, 241, "Error parsing date string '%s'", a.value.v_utf8.str);
   }
   set_date (out, ms);
   return true;
}

bool
op_date_arith (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   (void) v;
   bson_value_t a, b;
   int id = e->op->aux;
   /* args: trunc (date, unit, binSize, timezone, startOfWeek);
    *       add (startDate, unit, amount, timezone);
    *       diff (startDate, endDate, unit, timezone, startOfWeek) */
   bson_value_t unit_v;
   const dj_tz_t *tz;
   bool tz_null = false;
   int64_t ms, ms2 = 0;
   if (!x_arg (e, 0, ev, &a) || !x_arg (e, id == D_DIFF ? 2 : 1, ev, &unit_v) ||
       !get_tz (e->args[3], ev, &tz, &tz_null) || !x_arg (e, id == D_DIFF ? 1 : 2, ev, &b)) {
      return false;
   }
   /* startOfWeek (args[4] of $dateTrunc and $dateDiff): 0 = Sunday, the
    * default .. 6 = Saturday; case-insensitive day names or their first
    * three letters. https://www.mongodb.com/docs/manual/reference/operator/aggregation/dateTrunc/ */
   int start_dow = 0;
   bool sow_null = false;
   if ((id == D_TRUNC || id == D_DIFF) && e->args[4]) {
      bson_value_t sow;
      static const char *const days[] = {"sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"};
      if (!x_arg (e, 4, ev, &sow)) {
         return false;
      }
      if (nullish (&sow)) {
         sow_null = true;
      } else {
         start_dow = -1;
         for (int d = 0; sow.value_type == BSON_TYPE_UTF8 && d < 7; d++) {
            if (!strcasecmp (sow.value.v_utf8.str, days[d]) ||
                (strlen (sow.value.v_utf8.str) == 3 && !strncasecmp (sow.value.v_utf8.str, days[d], 3))) {
               start_dow = d;
            }
         }
         if (start_dow < 0) {
            return x_fail (ev, 5439018, "%s parameter 'startOfWeek' value cannot be recognized as a day of a week",
                         e->op->name);
         }
      }
   }
   if (nullish (&a) || nullish (&unit_v) || tz_null || ((id != D_TRUNC) && nullish (&b))) {
      set_null (out);
      return true;
   }
   if (sow_null && unit_v.value_type == BSON_TYPE_UTF8 && !strcmp (unit_v.value.v_utf8.str, "week")) {
      set_null (out); /* an explicit null startOfWeek with unit week */
      return true;
   }
   if (unit_v.value_type != BSON_TYPE_UTF8 || !valid_unit (unit_v.value.v_utf8.str)) {
      return x_fail (ev, 5439014, "%s requires 'unit' to be a valid time unit", e->op->name);
   }
   const char *unit = unit_v.value.v_utf8.str;
   if (!x_date_ms (ev, &a, &ms)) {
      return false;
   }
   if (id == D_DIFF && !x_date_ms (ev, &b, &ms2)) {
      return false;
   }
   /* Dates this far out (about 142,000 years from 1970) would overflow the
    * calendar arithmetic below; mongod's arithmetic overflows on them too
    * and says so. */
   if (ms < -DATE_ARITH_MAX || ms > DATE_ARITH_MAX || ms2 < -DATE_ARITH_MAX || ms2 > DATE_ARITH_MAX) {
      return x_fail (ev, DJ_Overflow, "date overflow in %s", e->op->name);
   }
   parts_t p, q;
   to_parts (ms, tz, &p);
   if (id == D_ADD || id == D_SUBTRACT) {
      int64_t amount;
      if (!dj_value_as_int64_exact (&b, &amount)) {
         return x_fail (ev, 5166405, "%s requires 'amount' to be an integer", e->op->name);
      }
      /* an amount that moves the date out of that range is an overflow:
       * checked in 128 bits, before any 64-bit arithmetic */
      __int128 span = (__int128) amount * (unit_ms (unit) ? unit_ms (unit) : 31LL * 86400000 * 12);
      if (span < -(__int128) 2 * DATE_ARITH_MAX || span > (__int128) 2 * DATE_ARITH_MAX) {
         return x_fail (ev, DJ_Overflow, "date overflow in %s", e->op->name);
      }
      if (id == D_SUBTRACT) {
         amount = -amount;
      }
      int64_t r;
      if (unit_ms (unit)) {
         if (!strcmp (unit, "day") || !strcmp (unit, "week")) {
            /* calendar days in the time zone: DST changes keep local time */
            int64_t days = amount * (!strcmp (unit, "week") ? 7 : 1);
            r = x_from_parts (p.year, p.month, (int64_t) p.day + days, p.hour, p.minute, p.second, p.ms, tz);
         } else {
            r = ms + amount * unit_ms (unit);
         }
      } else {
         int64_t months = amount * (!strcmp (unit, "year") ? 12 : !strcmp (unit, "quarter") ? 3 : 1);
         int64_t tm = (int64_t) p.month - 1 + months;
         int64_t y = p.year + floordiv (tm, 12);
         int64_t mo = tm - floordiv (tm, 12) * 12 + 1;
         /* clamp the day to the target month's length, as MongoDB does */
         int64_t dim = dj_days_from_civil (mo == 12 ? y + 1 : y, mo == 12 ? 1 : (unsigned) mo + 1, 1) - dj_days_from_civil (y, (unsigned) mo, 1);
         r = x_from_parts (y, mo, p.day > dim ? dim : p.day, p.hour, p.minute, p.second, p.ms, tz);
      }
      if (r < -DATE_ARITH_MAX || r > DATE_ARITH_MAX) {
         return x_fail (ev, DJ_Overflow, "date overflow in %s", e->op->name);
      }
      set_date (out, r);
      return true;
   }
   if (id == D_DIFF) {
      to_parts (ms2, tz, &q);
      int64_t r;
      if (!strcmp (unit, "year")) {
         r = q.year - p.year;
      } else if (!strcmp (unit, "quarter")) {
         r = (q.year * 4 + (q.month - 1) / 3) - (p.year * 4 + (p.month - 1) / 3);
      } else if (!strcmp (unit, "month")) {
         r = (q.year * 12 + q.month) - (p.year * 12 + p.month);
      } else if (!strcmp (unit, "week")) {
         /* weeks start on startOfWeek (Sunday by default); dow is 1 = Sunday */
         int64_t d1 = floordiv (ms + (int64_t) p.offset * 1000, 86400000) - (p.dow - 1 - start_dow + 7) % 7;
         int64_t d2 = floordiv (ms2 + (int64_t) q.offset * 1000, 86400000) - (q.dow - 1 - start_dow + 7) % 7;
         r = (d2 - d1) / 7;
      } else if (!strcmp (unit, "day")) {
         r = floordiv (ms2 + (int64_t) q.offset * 1000, 86400000) - floordiv (ms + (int64_t) p.offset * 1000, 86400000);
      } else {
         int64_t u = unit_ms (unit);
         r = floordiv (ms2, u) - floordiv (ms, u);
      }
      set_long (out, r);
      return true;
   }
   /* $dateTrunc */
   int64_t bin = 1;
   if (b.value_type != BSON_TYPE_EOD && (!dj_value_as_int64_exact (&b, &bin) || bin <= 0)) {
      return x_fail (ev, 5439017, "$dateTrunc requires 'binSize' to be a positive integer");
   }
   int64_t r, start;
   /* bins count from 2000-01-01 (weeks from the startOfWeek day after it);
    * a bin so wide that its start is out of the dates' range overflows */
   if (!strcmp (unit, "year") || !strcmp (unit, "quarter") || !strcmp (unit, "month")) {
      int64_t per = !strcmp (unit, "year") ? 12 : !strcmp (unit, "quarter") ? 3 : 1;
      int64_t months = (p.year - 2000) * 12 + (p.month - 1);
      if (!bin_start (months, per, bin, DATE_ARITH_MAX / (31LL * 86400000), &start)) {
         return x_fail (ev, DJ_Overflow, "date overflow in %s", e->op->name);
      }
      r = x_from_parts (2000 + floordiv (start, 12), start - floordiv (start, 12) * 12 + 1, 1, 0, 0, 0, 0, tz);
   } else if (!strcmp (unit, "week") || !strcmp (unit, "day")) {
      int64_t local_days = floordiv (ms + (int64_t) p.offset * 1000, 86400000);
      int64_t per = !strcmp (unit, "week") ? 7 : 1;
      int64_t ref = per == 7 ? dj_days_from_civil (2000, 1, 2) + start_dow /* 2000-01-02 is a Sunday */
                             : dj_days_from_civil (2000, 1, 1);
      if (!bin_start (local_days - ref, per, bin, DATE_ARITH_MAX / 86400000, &start)) {
         return x_fail (ev, DJ_Overflow, "date overflow in %s", e->op->name);
      }
      int64_t y;
      unsigned mo, dd;
      dj_civil_from_days (start + ref, &y, &mo, &dd);
      r = x_from_parts (y, mo, dd, 0, 0, 0, 0, tz);
   } else {
      int64_t ref = x_from_parts (2000, 1, 1, 0, 0, 0, 0, (unit_ms (unit) >= 3600000) ? tz : NULL);
      if (!bin_start (ms - ref, unit_ms (unit), bin, DATE_ARITH_MAX, &start)) {
         return x_fail (ev, DJ_Overflow, "date overflow in %s", e->op->name);
      }
      r = ref + start;
   }
   set_date (out, r);
   return true;
}

bool
op_date_from_parts (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   (void) v;
   bson_value_t a;
   static const int64_t dflt[] = {1970, 1, 1, 0, 0, 0, 0};
   int64_t vals[7];
   const dj_tz_t *tz;
   bool tz_null = false;
   if (!get_tz (e->args[7], ev, &tz, &tz_null)) {
      return false;
   }
   bool iso = e->args[8] != NULL;
   if (!iso && !e->args[0]) {
      return x_fail (ev, 40516, "$dateFromParts requires either 'year' or 'isoWeekYear' to be present");
   }
   for (int i = 0; i < 7; i++) {
      int slot = i;
      if (iso && i < 3) {
         slot = 8 + i;
      }
      if (!x_arg (e, slot, ev, &a)) {
         return false;
      }
      if (a.value_type == BSON_TYPE_EOD) {
         vals[i] = dflt[i];
         continue;
      }
      if (nullish (&a)) {
         set_null (out);
         return true;
      }
      if (!isnum (&a) || !dj_value_as_int64_exact (&a, &vals[i])) {
         return x_fail (ev, 40515, "'%s' must evaluate to an integer, found %s with value", e->op->named[slot], tname (&a));
      }
   }
   if (tz_null) {
      set_null (out);
      return true;
   }
   if (!iso && (vals[0] < 1 || vals[0] > 9999)) {
      return x_fail (ev, 40523, "'year' must evaluate to an integer in the range 1 to 9999, found %" PRId64, vals[0]);
   }
   if (iso && (vals[0] < 1 || vals[0] > 9999)) {
      return x_fail (ev, 31095, "'isoWeekYear' must evaluate to an integer in the range 1 to 9999, found %" PRId64,
                     vals[0]);
   }
   /* the other parts carry into the next ones, within MongoDB's bounds
    * (which also keep the arithmetic below from overflowing) */
   for (int i = 1; i < 7; i++) {
      if (vals[i] < -32768 || vals[i] > 32767) {
         return x_fail (ev, 31034, "'%s' must evaluate to a value in the range [-32768, 32767]; value %" PRId64
                        " is not in range", e->op->named[iso && i < 3 ? 8 + i : i], vals[i]);
      }
   }
   int64_t r;
   if (iso) {
      /* ISO week date: Monday of week 1 is the Monday on or before Jan 4 */
      int64_t jan4 = dj_days_from_civil (vals[0], 1, 4);
      int wd = (int) (((jan4 % 7) + 7 + 3) % 7) + 1; /* ISO weekday */
      int64_t day = jan4 - (wd - 1) + (vals[1] - 1) * 7 + (vals[2] - 1);
      int64_t y;
      unsigned mo, dd;
      dj_civil_from_days (day, &y, &mo, &dd);
      r = x_from_parts (y, mo, dd, vals[3], vals[4], vals[5], vals[6], tz);
   } else {
      r = x_from_parts (vals[0], vals[1], vals[2], vals[3], vals[4], vals[5], vals[6], tz);
   }
   set_date (out, r);
   return true;
}

bool
/* date, timezone (evaluated), iso8601 (evaluated after the zone is checked) */
op_date_to_parts (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   bson_value_t iso;
   const dj_tz_t *tz;
   bool tz_null = false;
   parts_t p;
   if (!tz_value (ev, e->args[1] ? &v[1] : NULL, &tz, &tz_null) || !x_arg (e, 2, ev, &iso)) {
      return false;
   }
   int r = date_parts (ev, &v[0], tz, tz_null, &p, out);
   if (r <= 0) {
      return r == 0;
   }
   bson_t doc = BSON_INITIALIZER;
   if (dj_value_truthy (&iso)) {
      int64_t wy;
      unsigned w;
      iso_week (&p, &wy, &w);
      BSON_APPEND_INT32 (&doc, "isoWeekYear", (int32_t) wy);
      BSON_APPEND_INT32 (&doc, "isoWeek", (int32_t) w);
      BSON_APPEND_INT32 (&doc, "isoDayOfWeek", (int32_t) iso_dow (&p));
   } else {
      BSON_APPEND_INT32 (&doc, "year", (int32_t) p.year);
      BSON_APPEND_INT32 (&doc, "month", (int32_t) p.month);
      BSON_APPEND_INT32 (&doc, "day", (int32_t) p.day);
   }
   BSON_APPEND_INT32 (&doc, "hour", (int32_t) p.hour);
   BSON_APPEND_INT32 (&doc, "minute", (int32_t) p.minute);
   BSON_APPEND_INT32 (&doc, "second", (int32_t) p.second);
   BSON_APPEND_INT32 (&doc, "millisecond", (int32_t) p.ms);
   return x_doc_value (ev, &doc, false, out);
}
