/* Python's float rounding and fixed-point formatting, exactly, for the C extensions (_window.c, _decide.c).
 *
 * round(x, p) and format(x, ".pf") round the exact binary value to p decimals, ties to even. For |x| * 10^p
 * below 2^40 the double product is within 2^-13 of the exact one, so unless it lies within 1e-3 of a tie its
 * nearest integer (nearbyint, ties to even) is the exact rounding; printing that integer with a point, or
 * dividing it by 10^p (one correctly rounded IEEE division), then gives what Python gives. Anything else
 * (near ties, huge values) goes through snprintf and strtod, also correctly rounded. Callers set the C locale
 * (uselocale) so that the fallback's decimal point is a point.
 */
#ifndef STREAM_SCORER_PYFLOAT_H
#define STREAM_SCORER_PYFLOAT_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static const double PYFLOAT_POW10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8};

/* the exact round-half-even of |x| * 10^p as an integer-valued double, or -1 when it cannot be told this way */
static inline int scaled_round(double ax, int p, double *out) {
    if (p < 0 || p > 8) return -1;
    double y = ax * PYFLOAT_POW10[p];
    if (!(y < 1099511627776.0)) return -1; /* 2^40; also NaN */
    if (fabs(y - floor(y) - 0.5) < 1e-3) return -1;
    *out = nearbyint(y);
    return 0;
}

/* round(x, p) for 0 <= p <= 8 */
static inline double py_round(double x, int p) {
    if (!isfinite(x) || x == 0.0) return x;
    double r;
    if (scaled_round(fabs(x), p, &r) == 0) return copysign(r / PYFLOAT_POW10[p], x);
    char text[400]; /* the largest double with 8 decimals */
    int n = snprintf(text, sizeof text, "%.*f", p, x);
    if (n < 0 || n >= (int)sizeof text) return x;
    return strtod(text, NULL);
}

/* format(x, f".{p}f") into out (at least 400 bytes) for 0 <= p <= 8: its length, or -1 */
static inline int format_fixed(double x, int p, char *out, size_t size) {
    double r;
    if (isfinite(x) && scaled_round(fabs(x), p, &r) == 0) {
        unsigned long long n = (unsigned long long)r;
        char digits[32];
        int len = 0;
        do {
            digits[len++] = (char)('0' + n % 10);
            n /= 10;
        } while (n);
        while (len < p + 1) digits[len++] = '0';
        int k = 0;
        if (signbit(x)) out[k++] = '-';
        for (int i = len - 1; i >= 0; i--) {
            out[k++] = digits[i];
            if (i == p && p > 0) out[k++] = '.';
        }
        return k;
    }
    int n = snprintf(out, size, "%.*f", p, x);
    return (n < 0 || (size_t)n >= size) ? -1 : n;
}

#endif
