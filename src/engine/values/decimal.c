/*
 * decimal.c -- exact Decimal128 arithmetic for the expression language.
 *
 * Debian ships no decimal library for C (no libmpdec-dev), and Django's
 * DecimalField sums must be exact, so this does decimal arithmetic on digit
 * strings: sign, coefficient digits, exponent. Results are rounded to 34
 * significant digits, half to even, as IEEE 754-2008 decimal128 (and
 * MongoDB) do. Doubles convert to Decimal128 with 15 significant digits, as
 * MongoDB's Decimal128(double) does.
 * https://www.mongodb.com/docs/manual/reference/bson-types/#decimal128-bson-data-type
 */
#include "dj_values.h"

#include <stdio.h>
#include <stdlib.h>

#define DIGITS_MAX 34

typedef struct {
   int special; /* 0 finite, 1 inf, 2 nan */
   int neg;
   char *dig; /* owned, most significant first, no leading zeros ("" = 0) */
   int exp;   /* value = dig * 10^exp */
} dnum_t;

static void
dn_free (dnum_t *n)
{
   bson_free (n->dig);
   n->dig = NULL;
}

static void
dn_strip (dnum_t *n)
{
   char *p = n->dig;
   while (*p == '0') {
      p++;
   }
   memmove (n->dig, p, strlen (p) + 1);
}

/* Parses libbson's and printf's forms: [-]digits[.digits][E[+-]x], Infinity, NaN. */
static void
dn_parse (const char *s, dnum_t *n)
{
   memset (n, 0, sizeof *n);
   if (*s == '-' || *s == '+') {
      n->neg = *s == '-';
      s++;
   }
   if (!strncasecmp (s, "inf", 3)) {
      n->special = 1;
      n->dig = bson_strdup ("");
      return;
   }
   if (!strncasecmp (s, "nan", 3)) {
      n->special = 2;
      n->dig = bson_strdup ("");
      return;
   }
   size_t len = strlen (s);
   n->dig = bson_malloc (len + 1);
   int k = 0, frac = 0, in_frac = 0;
   for (; *s && *s != 'E' && *s != 'e'; s++) {
      if (*s == '.') {
         in_frac = 1;
         continue;
      }
      n->dig[k++] = *s;
      frac += in_frac;
   }
   n->dig[k] = '\0';
   n->exp = -frac + ((*s == 'E' || *s == 'e') ? atoi (s + 1) : 0);
   dn_strip (n);
}

static void
dn_from_value (const bson_value_t *v, dnum_t *n)
{
   char s[64];
   switch (v->value_type) {
   case BSON_TYPE_INT32: snprintf (s, sizeof s, "%d", v->value.v_int32); break;
   case BSON_TYPE_INT64: snprintf (s, sizeof s, "%" PRId64, v->value.v_int64); break;
   case BSON_TYPE_DOUBLE:
      if (v->value.v_double != v->value.v_double) {
         snprintf (s, sizeof s, "NaN");
      } else {
         snprintf (s, sizeof s, "%.14e", v->value.v_double); /* 15 significant digits */
      }
      break;
   case BSON_TYPE_DECIMAL128: bson_decimal128_to_string (&v->value.v_decimal128, s); break;
   default: snprintf (s, sizeof s, "0");
   }
   dn_parse (s, n);
}

/* Rounds to DIGITS_MAX significant digits, half to even. */
static void
dn_round (dnum_t *n)
{
   int len = (int) strlen (n->dig);
   if (len <= DIGITS_MAX) {
      return;
   }
   int drop = len - DIGITS_MAX;
   char first = n->dig[DIGITS_MAX];
   bool rest_nonzero = false;
   for (int i = DIGITS_MAX + 1; i < len; i++) {
      rest_nonzero |= n->dig[i] != '0';
   }
   n->dig[DIGITS_MAX] = '\0';
   n->exp += drop;
   bool up = first > '5' || (first == '5' && (rest_nonzero || ((n->dig[DIGITS_MAX - 1] - '0') & 1)));
   if (up) {
      int i = DIGITS_MAX - 1;
      while (i >= 0 && n->dig[i] == '9') {
         n->dig[i--] = '0';
      }
      if (i >= 0) {
         n->dig[i]++;
      } else {
         /* 999...9 + 1: one more digit, drop the last zero */
         memmove (n->dig + 1, n->dig, DIGITS_MAX);
         n->dig[0] = '1';
         n->dig[DIGITS_MAX] = '\0';
         n->exp++;
      }
   }
}

static void
dn_to_value (dnum_t *n, bson_value_t *out)
{
   char s[DIGITS_MAX + 32];
   out->value_type = BSON_TYPE_DECIMAL128;
   if (n->special == 2) {
      bson_decimal128_from_string ("NaN", &out->value.v_decimal128);
      return;
   }
   if (n->special == 1) {
      bson_decimal128_from_string (n->neg ? "-Infinity" : "Infinity", &out->value.v_decimal128);
      return;
   }
   dn_round (n);
   if (n->exp > 6111) {
      bson_decimal128_from_string (n->neg ? "-Infinity" : "Infinity", &out->value.v_decimal128);
      return;
   }
   snprintf (s, sizeof s, "%s%sE%d", n->neg ? "-" : "", *n->dig ? n->dig : "0", n->exp < -6176 ? -6176 : n->exp);
   if (!bson_decimal128_from_string (s, &out->value.v_decimal128)) {
      bson_decimal128_from_string (n->neg ? "-0" : "0", &out->value.v_decimal128);
   }
}

/* |a| vs |b| for digit strings aligned at the same exponent */
static int
mag_cmp (const char *a, const char *b)
{
   size_t la = strlen (a), lb = strlen (b);
   if (la != lb) {
      return la < lb ? -1 : 1;
   }
   int c = strcmp (a, b);
   return (c > 0) - (c < 0);
}

static char *
pad_right (const char *d, int zeros)
{
   size_t l = strlen (d);
   char *r = bson_malloc (l + (size_t) zeros + 1);
   memcpy (r, d, l);
   memset (r + l, '0', (size_t) zeros);
   r[l + (size_t) zeros] = '\0';
   return r;
}

static char *
digits_add (const char *a, const char *b)
{
   size_t la = strlen (a), lb = strlen (b), n = (la > lb ? la : lb) + 1;
   char *r = bson_malloc (n + 1);
   int carry = 0;
   r[n] = '\0';
   for (size_t i = 0; i < n; i++) {
      int x = i < la ? a[la - 1 - i] - '0' : 0, y = i < lb ? b[lb - 1 - i] - '0' : 0;
      int s = x + y + carry;
      r[n - 1 - i] = (char) ('0' + s % 10);
      carry = s / 10;
   }
   return r;
}

/* a - b with |a| >= |b| */
static char *
digits_sub (const char *a, const char *b)
{
   size_t la = strlen (a), lb = strlen (b);
   char *r = bson_malloc (la + 1);
   int borrow = 0;
   r[la] = '\0';
   for (size_t i = 0; i < la; i++) {
      int x = a[la - 1 - i] - '0' - borrow, y = i < lb ? b[lb - 1 - i] - '0' : 0;
      borrow = x < y;
      r[la - 1 - i] = (char) ('0' + x + (borrow ? 10 : 0) - y);
   }
   return r;
}

static void
dn_add (dnum_t *a, dnum_t *b, dnum_t *r)
{
   memset (r, 0, sizeof *r);
   if (a->special == 2 || b->special == 2 || (a->special == 1 && b->special == 1 && a->neg != b->neg)) {
      r->special = 2;
      r->dig = bson_strdup ("");
      return;
   }
   if (a->special || b->special) {
      r->special = 1;
      r->neg = a->special ? a->neg : b->neg;
      r->dig = bson_strdup ("");
      return;
   }
   /* align at the smaller exponent; a huge gap means the small operand only
    * matters for rounding, so cap the padding just past the precision */
   int e = a->exp < b->exp ? a->exp : b->exp;
   int ea = a->exp - e, eb = b->exp - e;
   int la = (int) strlen (a->dig), lb = (int) strlen (b->dig);
   if (*a->dig && *b->dig) {
      int top = (la + a->exp > lb + b->exp ? la + a->exp : lb + b->exp);
      int floor_exp = top - (DIGITS_MAX + 3);
      if (e < floor_exp) {
         /* the smaller operand sits entirely below the rounding digit: keep
          * it as one sticky digit there */
         dnum_t *small = a->exp + la < b->exp + lb ? a : b;
         if (small->exp + (int) strlen (small->dig) <= floor_exp) {
            bson_free (small->dig);
            small->dig = bson_strdup ("1");
            small->exp = floor_exp - 1;
            e = floor_exp - 1;
            ea = a->exp - e;
            eb = b->exp - e;
         }
      }
   }
   char *x = pad_right (a->dig, ea), *y = pad_right (b->dig, eb);
   if (a->neg == b->neg) {
      r->dig = digits_add (x, y);
      r->neg = a->neg;
   } else if (mag_cmp (x, y) >= 0) {
      r->dig = digits_sub (x, y);
      r->neg = a->neg;
   } else {
      r->dig = digits_sub (y, x);
      r->neg = b->neg;
   }
   r->exp = e;
   bson_free (x);
   bson_free (y);
   dn_strip (r);
   if (!*r->dig) {
      r->neg = 0;
   }
}

static void
dn_mul (dnum_t *a, dnum_t *b, dnum_t *r)
{
   memset (r, 0, sizeof *r);
   r->neg = a->neg ^ b->neg;
   if (a->special == 2 || b->special == 2 || (a->special == 1 && !*b->dig && !b->special) ||
       (b->special == 1 && !*a->dig && !a->special)) {
      r->special = 2;
      r->dig = bson_strdup ("");
      return;
   }
   if (a->special || b->special) {
      r->special = 1;
      r->dig = bson_strdup ("");
      return;
   }
   size_t la = strlen (a->dig), lb = strlen (b->dig);
   if (!la || !lb) { /* a zero (no digits once stripped): the product is zero */
      r->dig = bson_strdup ("");
      r->exp = a->exp + b->exp; /* the sign stays a's xor b's, as IEEE 754 multiplies zeros */
      return;
   }
   /* schoolbook: la + lb digits, position la + lb - 1 the least significant */
   size_t n = la + lb;
   int *acc = bson_malloc0 (sizeof (int) * n);
   for (size_t i = 0; i < la; i++) {
      for (size_t j = 0; j < lb; j++) {
         acc[i + j + 1] += (a->dig[i] - '0') * (b->dig[j] - '0');
      }
   }
   for (size_t k = n - 1; k > 0; k--) {
      acc[k - 1] += acc[k] / 10;
      acc[k] %= 10;
   }
   r->dig = bson_malloc (n + 1);
   for (size_t k = 0; k < n; k++) {
      r->dig[k] = (char) ('0' + acc[k]);
   }
   r->dig[n] = '\0';
   bson_free (acc);
   r->exp = a->exp + b->exp;
   dn_strip (r);
}

/* a / b to DIGITS_MAX + 2 digits (then rounded); b != 0 */
static void
dn_div (dnum_t *a, dnum_t *b, dnum_t *r)
{
   memset (r, 0, sizeof *r);
   r->neg = a->neg ^ b->neg;
   if (a->special == 2 || b->special == 2 || (a->special == 1 && b->special == 1)) {
      r->special = 2;
      r->dig = bson_strdup ("");
      return;
   }
   if (a->special == 1 || !*b->dig) {
      r->special = *a->dig || a->special ? 1 : 2;
      r->dig = bson_strdup ("");
      return;
   }
   if (b->special == 1 || !*a->dig) {
      r->dig = bson_strdup ("");
      r->exp = 0;
      return;
   }
   /* long division of a->dig * 10^k by b->dig, k chosen for 36+ digits */
   int want = DIGITS_MAX + 3;
   int k = want + (int) strlen (b->dig) - (int) strlen (a->dig);
   if (k < 0) {
      k = 0;
   }
   char *num = pad_right (a->dig, k);
   size_t ln = strlen (num);
   char *q = bson_malloc (ln + 2);
   char *rem = bson_strdup ("");
   size_t qi = 0;
   for (size_t i = 0; i < ln; i++) {
      size_t lr = strlen (rem);
      rem = bson_realloc (rem, lr + 2);
      rem[lr] = num[i];
      rem[lr + 1] = '\0';
      dnum_t t = {.dig = rem};
      dn_strip (&t);
      int d = 0;
      while (mag_cmp (rem, b->dig) >= 0) {
         char *nr = digits_sub (rem, b->dig);
         bson_free (rem);
         rem = nr;
         dnum_t t2 = {.dig = rem};
         dn_strip (&t2);
         d++;
      }
      q[qi++] = (char) ('0' + d);
   }
   q[qi] = '\0';
   /* a sticky digit keeps half-even rounding honest when a remainder is left */
   if (*rem) {
      q = bson_realloc (q, qi + 2);
      q[qi++] = '1';
      q[qi] = '\0';
      k++;
   }
   bool exact = !*rem;
   r->dig = q;
   r->exp = a->exp - b->exp - k;
   dn_strip (r);
   /* an exact quotient takes the preferred exponent a.exp - b.exp (IEEE
    * 754-2008 5.2), dropping trailing zeros only down to it: 10 / 4 = 2.5 */
   size_t l = strlen (r->dig);
   while (exact && l > 1 && r->dig[l - 1] == '0' && r->exp < a->exp - b->exp) {
      r->dig[--l] = '\0';
      r->exp++;
   }
   bson_free (num);
   bson_free (rem);
}

/* Exact comparison: doubles enter with every binary digit (glibc prints the
 * exact value), not the 15 digits arithmetic uses. NaN sorts below every
 * number and equals NaN, as in MongoDB. */
static void
dn_from_value_exact (const bson_value_t *v, dnum_t *n)
{
   if (v->value_type == BSON_TYPE_DOUBLE && v->value.v_double == v->value.v_double) {
      char s[820];
      snprintf (s, sizeof s, "%.770e", v->value.v_double);
      dn_parse (s, n);
      return;
   }
   dn_from_value (v, n);
}

int
dj_decimal_cmp (const bson_value_t *a, const bson_value_t *b)
{
   dnum_t x, y;
   int r;

   dn_from_value_exact (a, &x);
   dn_from_value_exact (b, &y);
   if (x.special == 2 || y.special == 2) {
      r = (y.special == 2) - (x.special == 2);
      goto done;
   }
   int sx = x.special ? (x.neg ? -2 : 2) : (*x.dig ? (x.neg ? -1 : 1) : 0);
   int sy = y.special ? (y.neg ? -2 : 2) : (*y.dig ? (y.neg ? -1 : 1) : 0);
   if (sx != sy || sx == 0 || sx == 2 || sx == -2) {
      r = (sx > sy) - (sx < sy);
      goto done;
   }
   /* drop trailing zeros: then the position of the leading digit decides,
    * and equal positions compare digit by digit (a prefix is smaller) */
   size_t lx = strlen (x.dig), ly = strlen (y.dig);
   while (lx > 1 && x.dig[lx - 1] == '0') {
      x.dig[--lx] = '\0';
      x.exp++;
   }
   while (ly > 1 && y.dig[ly - 1] == '0') {
      y.dig[--ly] = '\0';
      y.exp++;
   }
   int ex = (int) lx + x.exp, ey = (int) ly + y.exp;
   int mag = ex != ey ? (ex < ey ? -1 : 1) : strcmp (x.dig, y.dig);
   mag = (mag > 0) - (mag < 0);
   r = sx < 0 ? -mag : mag;
done:
   dn_free (&x);
   dn_free (&y);
   return r;
}

bool
dj_decimal_arith (char op, const bson_value_t *a, const bson_value_t *b, bson_value_t *out)
{
   dnum_t x, y, r;
   dn_from_value (a, &x);
   dn_from_value (b, &y);
   switch (op) {
   case '+': dn_add (&x, &y, &r); break;
   case '-': y.neg = !y.neg; dn_add (&x, &y, &r); break;
   case '*': dn_mul (&x, &y, &r); break;
   default: dn_div (&x, &y, &r); break;
   }
   dn_to_value (&r, out);
   dn_free (&x);
   dn_free (&y);
   dn_free (&r);
   return true;
}

void
dj_decimal_from_value (const bson_value_t *v, bson_value_t *out)
{
   dnum_t x;
   dn_from_value (v, &x);
   dn_to_value (&x, out);
   dn_free (&x);
}
