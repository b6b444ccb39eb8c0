/* dj_date.c -- see dj_date.h. */
#include "dj_date.h"

int64_t
dj_days_from_civil (int64_t y, unsigned m, unsigned d)
{
   y -= m <= 2;
   const int64_t era = (y >= 0 ? y : y - 399) / 400;
   const unsigned yoe = (unsigned) (y - era * 400);
   const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
   const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
   return era * 146097 + (int64_t) doe - 719468;
}

void
dj_civil_from_days (int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
   z += 719468;
   const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
   const unsigned doe = (unsigned) (z - era * 146097);
   const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
   const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
   const unsigned mp = (5 * doy + 2) / 153;
   *d = doy - (153 * mp + 2) / 5 + 1;
   *m = mp < 10 ? mp + 3 : mp - 9;
   *y = (int64_t) yoe + era * 400 + (*m <= 2);
}

int64_t
dj_date_add_months (int64_t ms, int64_t months)
{
   int64_t days = ms >= 0 ? ms / 86400000 : -((-ms + 86399999) / 86400000);
   int64_t in_day = ms - days * 86400000;
   int64_t y;
   unsigned m, d;
   dj_civil_from_days (days, &y, &m, &d);
   int64_t tm = (int64_t) m - 1 + months;
   int64_t ny = y + (tm >= 0 ? tm / 12 : -((-tm + 11) / 12));
   unsigned nm = (unsigned) (tm - (ny - y) * 12) + 1;
   int64_t dim = dj_days_from_civil (nm == 12 ? ny + 1 : ny, nm == 12 ? 1 : nm + 1, 1) - dj_days_from_civil (ny, nm, 1);
   return dj_days_from_civil (ny, nm, d > dim ? (unsigned) dim : d) * 86400000 + in_day;
}
