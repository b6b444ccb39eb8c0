/*
 * ops_arith.c -- numbers: arithmetic, rounding, logarithms, trigonometry,
 * bitwise operators, $rand, and the accumulators used as expressions
 * ($sum, $avg, $min, $max, $stdDevPop, $stdDevSamp over their arguments).
 *
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/#arithmetic-expression-operators
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/#trigonometry-expression-operators
 *
 * Their rows (name, arity, argument rule) are in expr.c's ops[].
 */
#include "expr-private.h"

#include <math.h>
#include <stdlib.h>

/* $add/$multiply/$subtract with aggregation's widening: int32 -> int64 ->
 * double on overflow; any double: double; any decimal: decimal. */
void
dj_num_arith (char op, const bson_value_t *a, const bson_value_t *b, bson_value_t *out)
{
   bson_type_t ta = a->value_type, tb = b->value_type;
   if (ta == BSON_TYPE_DECIMAL128 || tb == BSON_TYPE_DECIMAL128) {
      dj_decimal_arith (op, a, b, out);
      return;
   }
   if (ta == BSON_TYPE_DOUBLE || tb == BSON_TYPE_DOUBLE) {
      double x = dj_value_as_double (a), y = dj_value_as_double (b);
      set_double (out, op == '+' ? x + y : op == '-' ? x - y : x * y);
      return;
   }
   int64_t x = as_i64 (a), y = as_i64 (b);
   int64_t r;
   bool ovf = op == '+' ? __builtin_add_overflow (x, y, &r) : op == '-' ? __builtin_sub_overflow (x, y, &r)
                                                                        : __builtin_mul_overflow (x, y, &r);
   if (ovf) {
      set_double (out, op == '+' ? (double) x + (double) y : op == '-' ? (double) x - (double) y : (double) x * (double) y);
   } else if (ta == BSON_TYPE_INT32 && tb == BSON_TYPE_INT32 && r >= INT32_MIN && r <= INT32_MAX) {
      set_int (out, r);
   } else {
      set_long (out, r);
   }
}

/* an integer result: int32 when both operands were int32 and it fits */
static void
set_int_like (bson_value_t *out, int64_t r, const bson_value_t *a, const bson_value_t *b)
{
   if (a->value_type == BSON_TYPE_INT32 && b->value_type == BSON_TYPE_INT32 && r >= INT32_MIN && r <= INT32_MAX) {
      set_int (out, r);
   } else {
      set_long (out, r);
   }
}

/* a double result, as a decimal when the input was one */
static void
set_double_like (bson_value_t *out, double d, bool decimal)
{
   set_double (out, d);
   if (decimal) {
      dj_decimal_from_value (out, out);
   }
}

/* A date `ms` milliseconds from the epoch, where ms is any number; a value
 * no int64 holds (NaN, infinities, beyond +-2^63) is MongoDB's Overflow
 * ("date overflow in $add"; $subtract's says "date overflow") rather than
 * an undefined conversion. */
static bool
date_from_number (dj_eval_t *ev, const char *where, const bson_value_t *ms, int64_t *out)
{
   if (ms->value_type == BSON_TYPE_INT32 || ms->value_type == BSON_TYPE_INT64) {
      *out = as_i64 (ms);
      return true;
   }
   double d = round (dj_value_as_double (ms)); /* llround's rounding, as MongoDB */
   /* 2^63 is exact in a double; every double below it converts */
   if (!isfinite (d) || d >= 9223372036854775808.0 || d < -9223372036854775808.0) {
      return x_fail (ev, DJ_Overflow, "date overflow%s", where);
   }
   *out = (int64_t) d;
   return true;
}

/* $add (aux '+') and $multiply (aux '*') */
bool
op_add (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   bool mul = e->op->aux == '*';
   bson_value_t acc = {.value_type = BSON_TYPE_INT32};
   acc.value.v_int32 = mul ? 1 : 0;
   bool have_date = false, is_null = false;
   for (int i = 0; i < e->nargs; i++) {
      if (nullish (&v[i])) {
         is_null = true;
         continue;
      }
      if (!mul && v[i].value_type == BSON_TYPE_DATE_TIME) {
         if (have_date) {
            return x_fail (ev, 16612, "only one date allowed in an $add expression");
         }
         have_date = true;
         bson_value_t ms;
         set_long (&ms, v[i].value.v_datetime);
         dj_num_arith ('+', &acc, &ms, &acc);
         continue;
      }
      if (!isnum (&v[i])) {
         return x_fail (ev, mul ? 16555 : 16554, "%s only supports numeric%s types, not %s", e->op->name,
                        mul ? "" : " or date", tname (&v[i]));
      }
      dj_num_arith (e->op->aux, &acc, &v[i], &acc);
   }
   if (is_null) {
      set_null (out);
      return true;
   }
   if (have_date) {
      int64_t ms = 0;
      if (!date_from_number (ev, " in $add", &acc, &ms)) {
         return false;
      }
      set_date (out, ms);
      return true;
   }
   *out = acc;
   return true;
}

bool
op_subtract (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   (void) e;
   bson_value_t *a = &v[0], *b = &v[1];
   if (a->value_type == BSON_TYPE_DATE_TIME && b->value_type == BSON_TYPE_DATE_TIME) {
      int64_t r;
      if (__builtin_sub_overflow (a->value.v_datetime, b->value.v_datetime, &r)) {
         return x_fail (ev, DJ_Overflow, "date overflow");
      }
      set_long (out, r);
      return true;
   }
   if (a->value_type == BSON_TYPE_DATE_TIME && isnum (b)) {
      int64_t ms = 0, r;
      if (!date_from_number (ev, "", b, &ms)) {
         return false;
      }
      if (__builtin_sub_overflow (a->value.v_datetime, ms, &r)) {
         return x_fail (ev, DJ_Overflow, "date overflow");
      }
      set_date (out, r);
      return true;
   }
   if (!isnum (a) || !isnum (b)) {
      return x_fail (ev, 16556, "can't $subtract %s from %s", tname (b), tname (a));
   }
   dj_num_arith ('-', a, b, out);
   return true;
}

/* $divide (aux '/') and $mod (aux '%') */
bool
op_divide_mod (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   bson_value_t *a = &v[0], *b = &v[1];
   bool div = e->op->aux == '/';
   if (!isnum (a) || !isnum (b)) {
      return x_fail (ev, div ? 16609 : 16611, "%s only supports numeric types, not %s and %s", e->op->name, tname (a),
                     tname (b));
   }
   bson_value_t zero = {.value_type = BSON_TYPE_INT32};
   if (dj_number_cmp (b, &zero) == 0) {
      return x_fail (ev, div ? 2 : 16610, "can't %s by zero", e->op->name);
   }
   if (a->value_type == BSON_TYPE_DECIMAL128 || b->value_type == BSON_TYPE_DECIMAL128) {
      if (div) {
         return dj_decimal_arith ('/', a, b, out);
      }
      set_double_like (out, fmod (dj_value_as_double (a), dj_value_as_double (b)), true);
      return true;
   }
   if (div) {
      set_double (out, dj_value_as_double (a) / dj_value_as_double (b));
      return true;
   }
   if (a->value_type == BSON_TYPE_DOUBLE || b->value_type == BSON_TYPE_DOUBLE) {
      set_double (out, fmod (dj_value_as_double (a), dj_value_as_double (b)));
      return true;
   }
   int64_t x = as_i64 (a), y = as_i64 (b);
   set_int_like (out, y == -1 ? 0 : x % y, a, b);
   return true;
}

bool
op_pow (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   (void) e;
   bson_value_t *a = &v[0], *b = &v[1];
   if (!isnum (a) || !isnum (b)) {
      return x_fail (ev, 28762, "$pow's base must be numeric, not %s", tname (isnum (a) ? b : a));
   }
   double x = dj_value_as_double (a), y = dj_value_as_double (b);
   if (x == 0 && y < 0) {
      return x_fail (ev, 28764, "$pow cannot take a base of 0 and a negative exponent");
   }
   bool ints = (a->value_type == BSON_TYPE_INT32 || a->value_type == BSON_TYPE_INT64) &&
               (b->value_type == BSON_TYPE_INT32 || b->value_type == BSON_TYPE_INT64) && y >= 0;
   double r = pow (x, y);
   if (ints && fabs (r) < 9.2e18) {
      /* exact integer power when it fits, by squaring: O(log y) steps even
       * for $pow: [1, 2^63-1]. While bits remain, the square is used later,
       * so its overflow is the result's. */
      int64_t base = as_i64 (a), res = 1;
      uint64_t k = (uint64_t) as_i64 (b);
      bool ovf = false;
      while (k && !ovf) {
         if (k & 1) {
            ovf = __builtin_mul_overflow (res, base, &res);
         }
         k >>= 1;
         if (k && !ovf) {
            ovf = __builtin_mul_overflow (base, base, &base);
         }
      }
      if (!ovf) {
         set_int_like (out, res, a, b);
         return true;
      }
   }
   set_double_like (out, r, a->value_type == BSON_TYPE_DECIMAL128 || b->value_type == BSON_TYPE_DECIMAL128);
   return true;
}

bool
op_abs (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   (void) e;
   if (v->value_type == BSON_TYPE_INT32) {
      set_int (out, llabs ((long long) v->value.v_int32));
   } else if (v->value_type == BSON_TYPE_INT64) {
      if (v->value.v_int64 == INT64_MIN) {
         return x_fail (ev, 28680, "can't take $abs of long long min");
      }
      set_long (out, llabs (v->value.v_int64));
   } else if (v->value_type == BSON_TYPE_DECIMAL128) {
      *out = *v;
      out->value.v_decimal128.high &= ~(1ull << 63);
   } else {
      set_double (out, fabs (v->value.v_double));
   }
   return true;
}

bool
op_ceil_floor (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   (void) ev;
   if (v->value_type == BSON_TYPE_INT32 || v->value_type == BSON_TYPE_INT64) {
      *out = *v;
      return true;
   }
   double d = dj_value_as_double (v);
   set_double_like (out, e->op->aux == M_CEIL ? ceil (d) : floor (d), v->value_type == BSON_TYPE_DECIMAL128);
   return true;
}

/* one number in, a double out (a decimal for a decimal) */
bool
op_math1 (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   double d = dj_value_as_double (v);
   double r = 0;
   switch (e->op->aux) {
   case M_SQRT:
      if (d < 0) {
         return x_fail (ev, 28714, "$sqrt's argument must be greater than or equal to 0");
      }
      r = sqrt (d);
      break;
   case M_EXP: r = exp (d); break;
   case M_LN:
      if (d <= 0) {
         return x_fail (ev, 28766, "$ln's argument must be a positive number, but is %g", d);
      }
      r = log (d);
      break;
   case M_LOG10:
      if (d <= 0) {
         return x_fail (ev, 28761, "$log10's argument must be a positive number, but is %g", d);
      }
      r = log10 (d);
      break;
   case M_SIN: r = sin (d); break;
   case M_COS: r = cos (d); break;
   case M_TAN: r = tan (d); break;
   case M_ASIN:
   case M_ACOS:
      if (d < -1 || d > 1) {
         return x_fail (ev, 50989, "cannot apply %s to %g, value must in [-1,1]", e->op->name, d);
      }
      r = e->op->aux == M_ASIN ? asin (d) : acos (d);
      break;
   case M_ATAN: r = atan (d); break;
   case M_SINH: r = sinh (d); break;
   case M_COSH: r = cosh (d); break;
   case M_TANH: r = tanh (d); break;
   case M_ASINH: r = asinh (d); break;
   case M_ACOSH:
      if (d < 1) {
         return x_fail (ev, 50989, "cannot apply $acosh to %g, value must in [1,inf]", d);
      }
      r = acosh (d);
      break;
   case M_ATANH:
      if (d < -1 || d > 1) {
         return x_fail (ev, 50989, "cannot apply $atanh to %g, value must in [-1,1]", d);
      }
      r = atanh (d);
      break;
   case M_DEG2RAD: r = d * M_PI / 180.0; break;
   case M_RAD2DEG: r = d * 180.0 / M_PI; break;
   default: break;
   }
   set_double_like (out, r, v->value_type == BSON_TYPE_DECIMAL128);
   return true;
}

static bool
to_double_arg (dj_eval_t *ev, const char *op, const bson_value_t *v, double *d)
{
   if (!isnum (v)) {
      return x_fail (ev, 28765, "%s only supports numeric types, not %s", op, tname (v));
   }
   *d = dj_value_as_double (v);
   return true;
}

/* $log, $atan2 */
bool
op_math2 (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   double x = 0, y = 0;
   if (!to_double_arg (ev, e->op->name, &v[0], &x) || !to_double_arg (ev, e->op->name, &v[1], &y)) {
      return false;
   }
   if (e->op->aux == M_LOG) {
      if (x <= 0 || y <= 0 || y == 1) {
         return x_fail (ev, 28758, "$log's argument must be a positive number, and the base must be positive and not 1");
      }
      set_double (out, log (x) / log (y));
   } else {
      set_double (out, atan2 (x, y));
   }
   return true;
}

/* round half to even at `place` digits after the point (negative: before) */
static double
round_half_even (double x, int place)
{
   if (!isfinite (x)) {
      return x;
   }
   long double scale = powl (10.0L, place);
   long double y = (long double) x * scale;
   long double r = roundl (y);
   if (fabsl (y - truncl (y)) == 0.5L) {
      r = 2.0L * roundl (y / 2.0L);
   }
   return (double) (r / scale);
}

/* $round (aux 0) and $trunc (aux 1) */
bool
op_round (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   bool trunc_mode = e->op->aux == 1;
   int64_t place = 0;
   if (e->nargs > 1) {
      if (!dj_value_as_int64_exact (&v[1], &place) || place < -20 || place > 100) {
         return x_fail (ev, 51083, "cannot apply %s with precision value %g value must be in [-20, 100]", e->op->name,
                        dj_value_as_double (&v[1]));
      }
   }
   switch (v[0].value_type) {
   case BSON_TYPE_INT32:
   case BSON_TYPE_INT64: {
      int64_t x = as_i64 (&v[0]);
      if (place < 0) {
         int64_t p = 1;
         for (int64_t i = 0; i < -place && p < INT64_MAX / 10; i++) {
            p *= 10;
         }
         int64_t q = x / p, r = x % p;
         if (!trunc_mode) {
            int64_t half = p / 2;
            int64_t ar = r < 0 ? -r : r;
            if (ar > half || (ar == half && (q % 2 != 0))) {
               q += x < 0 ? -1 : 1;
            }
         }
         x = q * p;
      }
      if (v[0].value_type == BSON_TYPE_INT32) {
         set_int (out, x);
      } else {
         set_long (out, x);
      }
      return true;
   }
   case BSON_TYPE_DOUBLE: {
      double x = v[0].value.v_double;
      if (trunc_mode) {
         long double scale = powl (10.0L, (long double) place);
         set_double (out, (double) (truncl ((long double) x * scale) / scale));
      } else {
         set_double (out, round_half_even (x, (int) place));
      }
      return true;
   }
   default: {
      /* Decimal128: via its string digits */
      char s[BSON_DECIMAL128_STRING];
      bson_decimal128_to_string (&v[0].value.v_decimal128, s);
      double x = strtod (s, NULL);
      char r[64];
      snprintf (r, sizeof r, "%.*f", place > 0 ? (int) place : 0,
                trunc_mode ? trunc (x * pow (10, (double) place)) / pow (10, (double) place) : round_half_even (x, (int) place));
      out->value_type = BSON_TYPE_DECIMAL128;
      bson_decimal128_from_string (r, &out->value.v_decimal128);
      return true;
   }
   }
}

/* $bitAnd, $bitOr, $bitXor (aux '&', '|', '^'): a null operand gives null at once */
bool
op_bit (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   (void) v;
   int op = e->op->aux;
   int64_t acc = op == '&' ? -1 : 0;
   bool long_seen = false;
   bson_value_t a;
   for (int i = 0; i < e->nargs; i++) {
      if (!x_eval (e->args[i], ev, &a)) {
         return false;
      }
      if (nullish (&a)) {
         set_null (out);
         return true;
      }
      if (a.value_type != BSON_TYPE_INT32 && a.value_type != BSON_TYPE_INT64) {
         return x_fail (ev, 28679, "%s only supports int and long operands.", e->op->name);
      }
      int64_t x = as_i64 (&a);
      long_seen |= a.value_type == BSON_TYPE_INT64;
      acc = op == '&' ? (acc & x) : op == '|' ? (acc | x) : (acc ^ x);
   }
   if (long_seen) {
      set_long (out, acc);
   } else {
      out->value_type = BSON_TYPE_INT32;
      out->value.v_int32 = (int32_t) acc;
   }
   return true;
}

bool
op_bitnot (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   (void) e, (void) ev;
   if (v->value_type == BSON_TYPE_INT32) {
      out->value_type = BSON_TYPE_INT32;
      out->value.v_int32 = ~v->value.v_int32;
   } else {
      set_long (out, ~v->value.v_int64);
   }
   return true;
}

bool
op_rand (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   (void) e, (void) ev, (void) v;
   set_double (out, (double) random () / ((double) RAND_MAX + 1.0));
   return true;
}

/* ---- accumulators as expressions: over their arguments, or one array's elements ---- */

/* $sum (aux 0), $avg (aux 1): numbers only, others skipped */
bool
op_sum_avg (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   vlist_t l = x_acc_inputs (e, ev, v);
   bson_value_t acc = {.value_type = BSON_TYPE_INT32};
   uint32_t cnt = 0;
   for (uint32_t i = 0; i < l.n; i++) {
      if (isnum (&l.v[i])) {
         dj_num_arith ('+', &acc, &l.v[i], &acc);
         cnt++;
      }
   }
   if (e->op->aux == 0) {
      *out = acc;
   } else if (!cnt) {
      set_null (out);
   } else if (acc.value_type == BSON_TYPE_DECIMAL128) {
      bson_value_t c;
      set_int (&c, cnt);
      dj_decimal_arith ('/', &acc, &c, out);
   } else {
      set_double (out, dj_value_as_double (&acc) / cnt);
   }
   return true;
}

/* $min (aux -1), $max (aux 1): nulls skipped; none: null */
bool
op_min_max (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   vlist_t l = x_acc_inputs (e, ev, v);
   bool have = false;
   for (uint32_t i = 0; i < l.n; i++) {
      if (nullish (&l.v[i])) {
         continue;
      }
      int c = have ? dj_value_cmp (&l.v[i], out) : 0;
      if (!have || (e->op->aux < 0 ? c < 0 : c > 0)) {
         *out = l.v[i];
         have = true;
      }
   }
   if (!have) {
      set_null (out);
   }
   return true;
}

/* $stdDevPop (aux 0), $stdDevSamp (aux 1): Welford's running variance */
bool
op_stddev (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   vlist_t l = x_acc_inputs (e, ev, v);
   double mean = 0, m2 = 0;
   uint32_t cnt = 0;
   for (uint32_t i = 0; i < l.n; i++) {
      if (isnum (&l.v[i])) {
         double x = dj_value_as_double (&l.v[i]);
         cnt++;
         double d = x - mean;
         mean += d / cnt;
         m2 += d * (x - mean);
      }
   }
   bool samp = e->op->aux == 1;
   if (samp ? cnt < 2 : cnt == 0) {
      set_null (out);
   } else {
      set_double (out, sqrt (m2 / (samp ? cnt - 1 : cnt)));
   }
   return true;
}

double
dj_percentile (const double *v, size_t n, double p, bool continuous)
{
   if (continuous) {
      double pos = p * (double) (n - 1);
      size_t lo = (size_t) floor (pos), hi = (size_t) ceil (pos);
      return v[lo] + (pos - (double) lo) * (v[hi] - v[lo]);
   }
   double r = ceil (p * (double) n) - 1;
   size_t i = r < 0 ? 0 : (size_t) r;
   return v[i < n ? i : n - 1];
}

static int
cmp_double (const void *x, const void *y)
{
   double a = *(const double *) x, b = *(const double *) y;
   return (a > b) - (a < b);
}

/* $percentile {input, p, method} and $median {input, method} as
 * expressions: over the numbers of the input array (non-numbers left out),
 * exact whatever the method, as the manual says of the expression forms.
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/percentile/#behavior */
bool
op_percentile (const dj_expr_t *e, dj_eval_t *ev, bson_value_t *v, bson_value_t *out)
{
   bool median = e->op->aux;
   const bson_value_t *method = &v[median ? 1 : 2];
   if (method->value_type != BSON_TYPE_UTF8 ||
       (strcmp (method->value.v_utf8.str, "approximate") && strcmp (method->value.v_utf8.str, "discrete") &&
        strcmp (method->value.v_utf8.str, "continuous"))) {
      return x_fail (ev, 2, "Enumeration value '%s' for field '%s.method' is not a valid value.",
                     method->value_type == BSON_TYPE_UTF8 ? method->value.v_utf8.str : tname (method), e->op->name);
   }
   bool continuous = !strcmp (method->value.v_utf8.str, "continuous");
   vlist_t ps = {0};
   if (!median) {
      bool ok = v[1].value_type == BSON_TYPE_ARRAY;
      ps = ok ? x_list (ev, &v[1]) : ps;
      for (uint32_t i = 0; ok && i < ps.n; i++) {
         ok = isnum (&ps.v[i]) && dj_value_as_double (&ps.v[i]) >= 0 && dj_value_as_double (&ps.v[i]) <= 1;
      }
      if (!ok || !ps.n) {
         return x_fail (ev, 7750301, "The $percentile 'p' field must be an array of numbers from [0.0, 1.0]");
      }
   }
   vlist_t in = v[0].value_type == BSON_TYPE_ARRAY ? x_list (ev, &v[0]) : (vlist_t){.v = &v[0], .n = 1};
   double *nums = dj_arena_alloc (ev->arena, sizeof (double) * (in.n ? in.n : 1));
   size_t n = 0;
   for (uint32_t i = 0; i < in.n; i++) {
      if (isnum (&in.v[i])) {
         nums[n++] = dj_value_as_double (&in.v[i]);
      }
   }
   if (!n) {
      set_null (out);
      return true;
   }
   qsort (nums, n, sizeof (double), cmp_double);
   if (median) {
      set_double (out, dj_percentile (nums, n, 0.5, continuous));
      return true;
   }
   bson_value_t *res = dj_arena_alloc (ev->arena, sizeof (bson_value_t) * ps.n);
   for (uint32_t i = 0; i < ps.n; i++) {
      set_double (&res[i], dj_percentile (nums, n, dj_value_as_double (&ps.v[i]), continuous));
   }
   x_list_value (ev, res, ps.n, out);
   return true;
}
