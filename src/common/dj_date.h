/*
 * dj_date.h -- days since 1970-01-01 <-> civil dates (proleptic Gregorian).
 *
 * Howard Hinnant's algorithms, exact over the whole int64 range we use. One
 * copy for the engine's date operators and the Python driver's conversions.
 */
#ifndef DJ_DATE_H
#define DJ_DATE_H

#include <stdint.h>

/** Days since 1970-01-01 of year @p y, month @p m (1-12), day @p d (1-31). */
int64_t dj_days_from_civil (int64_t y, unsigned m, unsigned d);

/** The civil date of day @p z (days since 1970-01-01). */
void dj_civil_from_days (int64_t z, int64_t *y, unsigned *m, unsigned *d);

/** The instant @p ms (UTC milliseconds) moved by @p months calendar months,
 * the day clamped to the target month's length (Jan 31 + 1 month: Feb 28
 * or 29), the time of day kept -- $dateAdd's rule in UTC. */
int64_t dj_date_add_months (int64_t ms, int64_t months);

#endif
