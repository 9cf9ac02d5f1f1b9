/* The arithmetic after the exponentials of sce check --arrays' pass over labels without
 * smoothing, fused into one loop over the entries (sce/grading/dump/ulp_kernel.py); and the
 * same grading of the fused linear check's ∂L/∂E and ∂L/∂C blocks, whose operands' size is given.
 *
 * numpy makes some twenty passes over a block's float64 arrays to grade a gradient: the
 * magnitude, its ulp unit, the answer's error, each baseline route's error, their largest,
 * their sums of squares, the histogram's bins and counts, the worst entries, and for a float32
 * claim the routes' gradients themselves. Here they are one loop, a chunk of a row at a time in
 * the first-level cache. lane_sum_f32 is the baseline's sum in lanes, without numpy's transposed
 * copy.
 *
 * Every value is formed by the same IEEE operations as in the numpy code it replaces
 * (sce/grading/dump/sparse_labels.py, baseline.py, block_errors.py), so that the magnitude,
 * the unit, each error and each bin are the same bits. Dividing by the unit, a power of two,
 * is multiplying by its inverse where that is a normal number: both round the same quotient.
 * Only the sums of squares are added in another order than numpy's, and they are shown to 6
 * digits. setup.py builds it without fused multiply-adds or fast-math, whatever CFLAGS say.
 *
 * Where an error, a sum of squares or a magnitude is not finite, the call returns 1 and the
 * caller grades the rows with numpy, which knows NaN and infinity.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__FAST_MATH__) || defined(__ASSOCIATIVE_MATH__) || defined(__RECIPROCAL_MATH__) || \
    defined(__NO_SIGNED_ZEROS__) || (defined(__FINITE_MATH_ONLY__) && __FINITE_MATH_ONLY__) || \
    (defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD != 0)
/* Reassociated or wider arithmetic would not round as numpy does: no library, numpy grades. */
#error "_ulp_errors.c needs IEEE arithmetic in each operand's own type"
#endif

#define CHUNK 512
#define LANES 8
#define WORST 10
/* float32 lanes of a 64-byte vector register (dtype_baseline.VECTOR_BYTES). */
#define LANES32 16
#define MAX_BINS 512
/* Copies of the histogram, entry j counted in copy j % COPIES: consecutive entries mostly fall
 * in the same bin, and one counter would wait on its own last store at every entry. */
#define COPIES 4

#if defined(__GNUC__) && defined(__linux__) && defined(__x86_64__)
#define WIDE_VECTORS __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define WIDE_VECTORS
#endif
#if defined(__GNUC__)
#define ALWAYS_INLINE __attribute__((always_inline))
#else
#define ALWAYS_INLINE
#endif

typedef union {
    double value;
    int64_t bits;
} Bits;

static const int64_t EXPONENT_BITS = INT64_C(0x7FF0000000000000);
static const int64_t MANTISSA_BITS = (INT64_C(1) << 52) - 1;

typedef struct {
    double quarters[3]; /* 2^(1/4), 2^(1/2), 2^(3/4), as numpy has them */
    int64_t lowest_exponent;
    int64_t last_bin;
    int64_t counts[COPIES][MAX_BINS];
    int64_t worst_index[WORST];
    double worst_error[WORST];
    int64_t worst_count;
} Histogram;

/* The WORST largest errors, ties to the earliest entry (entries come in order). */
static void keep_worst(Histogram *h, double e, int64_t index)
{
    int64_t n = h->worst_count;
    int64_t at = n < WORST ? n : WORST - 1;
    while (at > 0 && e > h->worst_error[at - 1]) {
        h->worst_error[at] = h->worst_error[at - 1];
        h->worst_index[at] = h->worst_index[at - 1];
        at--;
    }
    h->worst_error[at] = e;
    h->worst_index[at] = index;
    if (n < WORST)
        h->worst_count = n + 1;
}

/* Each error's bin, as histogram.bins: from its exponent and the quarter its mantissa is in. */
static inline ALWAYS_INLINE void count(Histogram *h, const double *e, int64_t n, int64_t offset)
{
    int64_t bins[CHUNK];
    for (int64_t j = 0; j < n; j++) {
        Bits b = {.value = e[j]};
        int64_t exponent = (b.bits >> 52) - 1023;
        Bits m = {.bits = (b.bits & MANTISSA_BITS) | (INT64_C(1023) << 52)};
        int64_t quarter = (m.value >= h->quarters[0]) + (m.value >= h->quarters[1]) + (m.value >= h->quarters[2]);
        int64_t index = 4 * (exponent - h->lowest_exponent) + 1 + quarter;
        bins[j] = index < 0 ? 0 : (index > h->last_bin ? h->last_bin : index);
    }
    double threshold = h->worst_count == WORST ? h->worst_error[WORST - 1] : -1.0;
    for (int64_t j = 0; j < n; j++) {
        h->counts[j % COPIES][bins[j]]++;
        if (e[j] > threshold) {
            keep_worst(h, e[j], offset + j);
            threshold = h->worst_count == WORST ? h->worst_error[WORST - 1] : -1.0;
        }
    }
}

static inline ALWAYS_INLINE void widen(double *out, const void *in, int is_double, int64_t n)
{
    if (is_double)
        memcpy(out, in, (size_t)n * sizeof(double));
    else
        for (int64_t j = 0; j < n; j++)
            out[j] = (double)((const float *)in)[j];
}

typedef struct {
    double squares[LANES];
    double largest[LANES];
} Sums;

/* Σ v² and the largest |v| of v = (value − x)/unit, in LANES running sums, and the errors |v|
 * themselves into ``errors`` (NAME_into). ``scale`` holds the units' inverses (multiplied), or
 * the units themselves (divided, in NAME_divided). One function each, without a branch inside
 * the loop, so that the compiler turns the loop into vector instructions. */
#define ADD_ERRORS(NAME, OPERATION, STORE, STORE_TAIL)                                                          \
    static inline ALWAYS_INLINE void NAME(Sums *sums, const double *value, const double *x,          \
                                          const double *scale, double *errors, int64_t n)            \
    {                                                                                               \
        int64_t j = 0;                                                                              \
        for (; j + LANES <= n; j += LANES)                                                          \
            for (int k = 0; k < LANES; k++) {                                                       \
                double d = (value[j + k] - x[j + k]) OPERATION scale[j + k];                        \
                double size = fabs(d);                                                              \
                sums->squares[k] += d * d;                                                          \
                sums->largest[k] = sums->largest[k] > size ? sums->largest[k] : size;               \
                STORE;                                                                              \
            }                                                                                       \
        for (int k = 0; j < n; j++, k++) {                                                          \
            double d = (value[j] - x[j]) OPERATION scale[j];                                        \
            double size = fabs(d);                                                                  \
            sums->squares[k] += d * d;                                                              \
            sums->largest[k] = sums->largest[k] > size ? sums->largest[k] : size;                   \
            STORE_TAIL;                                                                             \
        }                                                                                           \
    }
ADD_ERRORS(add_errors_into, *, errors[j + k] = size, errors[j] = size)
ADD_ERRORS(add_errors, *, (void)errors, (void)errors)
ADD_ERRORS(add_errors_into_divided, /, errors[j + k] = size, errors[j] = size)
ADD_ERRORS(add_errors_divided, /, (void)errors, (void)errors)

/* The unit is a power of two, max(2^exponent(m), smallest)·ulp_scale. Its inverse, formed from
 * its exponent E as 2^(1023 − (E − 1023)), where every unit is normal; else the unit itself. */
static inline ALWAYS_INLINE void units(double *m, int64_t n, double smallest, double ulp_scale, int divide)
{
    for (int64_t j = 0; j < n; j++) {
        Bits b = {.value = m[j]};
        b.bits &= EXPONENT_BITS;
        Bits unit = {.value = (b.value > smallest ? b.value : smallest) * ulp_scale};
        Bits inverse = {.bits = (INT64_C(2046) << 52) - unit.bits};
        m[j] = divide ? unit.value : inverse.value;
    }
}

/* The same-type baseline's two routes: gradients as arrays (FORMED, float32 or float64), or,
 * for a float32 claim, formed here as sparse_labels._gradient forms them in float32 from the
 * exponentials e with their row sums (p = e / Σe) and from exp(log p): ((p·s) − c)·a, with
 * c only at the label. */
enum { FORMED = 0, FROM_PROBABILITIES = 1 };

typedef struct {
    int kind;
    int is_double;      /* FORMED: the arrays are float64 */
    const void *first;  /* FORMED: route 1; FROM_PROBABILITIES: e (float32) */
    const void *second; /* FORMED: route 2 or NULL; FROM_PROBABILITIES: exp(log p) (float32) */
    /* FROM_PROBABILITIES, float32, one per row: Σe, the row's s, and c at its label (0 if ignored) */
    const float *total32, *s32, *c32;
    float a32;
} Routes;

/* A slice of rows: the exact result (float64, rows × classes) and each row's coefficients. */
typedef struct {
    int64_t rows, classes;
    const double *expected, *probabilities;
    const double *s;      /* Σ_j c_j of each row: w[y], or 0 for an ignored row */
    const int64_t *label; /* each row's label column, −1 for an ignored row */
    const double *c;      /* c at each row's label (0 for an ignored row) */
    double a;             /* the gradient's factor: 1/(T·D) for 'mean', 1/T otherwise */
    int weighted;         /* magnitude (p·s)·a instead of p·(s·a) (sparse_labels.gradient_magnitude) */
    /* Or, where not NULL, each entry's operands' size given (float32, rows × classes), the
     * magnitude being max(size, |expected|) (the fused check's, sce/grading/linear/check.py);
     * probabilities, s, label, c, a and weighted are then not read. */
    const float *magnitude;
} Rows;

/* The answer: float32 or float64, rows × classes. */
typedef struct {
    const void *values;
    int is_double;
} Answer;

/* The claimed type's ulp and the histogram's edges (histogram.EDGES). */
typedef struct {
    double smallest;  /* 2^(lowest exponent): the unit of a smaller magnitude is that of this one */
    double ulp_scale; /* 2^−(mantissa bits) */
    int64_t zero_step; /* every zero_step-th entry samples an all-zero answer's errors */
    double quarters[3];
    int64_t lowest_exponent, last_bin;
} Scale;

/* stats: the answer's largest error, its Σe², route 1's largest |d|, its Σd², route 2's, its Σd²,
 * the sampled Σ(x/u)² of an all-zero answer. */
typedef struct {
    int64_t counts[MAX_BINS];
    double stats[7];
    int64_t worst_index[WORST];
    double worst_error[WORST];
    int64_t worst_count;
} Found;

static inline ALWAYS_INLINE void form_route(double *out, const Routes *routes, int k, int64_t r, int64_t offset,
                                            int64_t n, int64_t y)
{
    if (routes->kind == FORMED) {
        size_t size = routes->is_double ? sizeof(double) : sizeof(float);
        widen(out, (const char *)(k ? routes->second : routes->first) + (size_t)offset * size, routes->is_double, n);
        return;
    }
    const float *q = (const float *)(k ? routes->second : routes->first) + offset;
    float s = routes->s32[r], a = routes->a32;
    if (k == 0) {
        float total = routes->total32[r];
        for (int64_t j = 0; j < n; j++)
            out[j] = (double)(((q[j] / total) * s) * a);
        if (y >= 0)
            out[y] = (double)((((q[y] / total) * s) - routes->c32[r]) * a);
    } else {
        for (int64_t j = 0; j < n; j++)
            out[j] = (double)((q[j] * s) * a);
        if (y >= 0)
            out[y] = (double)(((q[y] * s) - routes->c32[r]) * a);
    }
}

/* The units (or their inverses) of a chunk of row r, from the magnitudes a·max(s·p, c). */
static inline ALWAYS_INLINE void chunk_units(double *m, const Rows *rows, const Scale *scale, int divide, int64_t r,
                                             int64_t offset, int64_t n, int64_t y)
{
    if (rows->magnitude) {
        const float *size = rows->magnitude + offset;
        const double *x = rows->expected + offset;
        for (int64_t j = 0; j < n; j++) {
            double given_size = (double)size[j], own = fabs(x[j]);
            m[j] = own > given_size || isnan(own) ? own : given_size; /* numpy's maximum keeps a NaN */
        }
        units(m, n, scale->smallest, scale->ulp_scale, divide);
        return;
    }
    const double *p = rows->probabilities + offset;
    double s = rows->s[r], a = rows->a, sa = s * a;
    if (rows->weighted)
        for (int64_t j = 0; j < n; j++)
            m[j] = (p[j] * s) * a;
    else
        for (int64_t j = 0; j < n; j++)
            m[j] = p[j] * sa;
    if (y >= 0) {
        double ps = p[y] * s;
        m[y] = (ps > rows->c[r] ? ps : rows->c[r]) * a;
    }
    units(m, n, scale->smallest, scale->ulp_scale, divide);
}

/* The stats from the running sums, the counts from the histogram's copies; 1 where a sum or a
 * largest error is not finite. */
static int finish(Found *found, Sums *sums, const Histogram *h, double zero_squares)
{
    for (int k = 0; k < 3; k++) {
        double total = 0.0, largest = 0.0;
        for (int lane = 0; lane < LANES; lane++) {
            total += sums[k].squares[lane];
            largest = largest > sums[k].largest[lane] ? largest : sums[k].largest[lane];
        }
        found->stats[2 * k] = largest;
        found->stats[2 * k + 1] = total;
    }
    found->stats[6] = zero_squares;
    for (int64_t bin = 0; bin <= h->last_bin; bin++)
        for (int copy = 0; copy < COPIES; copy++)
            found->counts[bin] += h->counts[copy][bin];
    found->worst_count = h->worst_count;
    memcpy(found->worst_index, h->worst_index, sizeof h->worst_index);
    memcpy(found->worst_error, h->worst_error, sizeof h->worst_error);
    for (int k = 0; k < 6; k++)
        if (!(found->stats[k] - found->stats[k] == 0.0))
            return 1;
    return 0;
}

/* Grades the answer's gradient on a slice of rows, into ``found`` (zeroed by the caller).
 * Returns 0, 1 where something is not finite (numpy grades those rows), 2 for too many bins. */
WIDE_VECTORS
int grade(const Rows *rows, const Answer *given, const Routes *routes, const Scale *scale, Found *found)
{
    if (scale->last_bin + 1 > MAX_BINS)
        return 2;
    Histogram h;
    memset(&h, 0, sizeof h);
    memcpy(h.quarters, scale->quarters, sizeof h.quarters);
    h.lowest_exponent = scale->lowest_exponent;
    h.last_bin = scale->last_bin;
    Sums sums[3];
    memset(sums, 0, sizeof sums);
    /* Where the smallest unit is normal, every unit's inverse is a normal number, so exact. */
    int divide = !(scale->smallest * scale->ulp_scale >= DBL_MIN);
    double zero_squares = 0.0, m[CHUNK], e[CHUNK], values[CHUNK];
    int64_t next_sample = 0, classes = rows->classes;
    size_t given_size = given->is_double ? sizeof(double) : sizeof(float);
    for (int64_t r = 0; r < rows->rows; r++)
        for (int64_t first = 0; first < classes; first += CHUNK) {
            int64_t n = classes - first < CHUNK ? classes - first : CHUNK;
            int64_t offset = r * classes + first, y = rows->magnitude ? -1 : rows->label[r] - first;
            const double *x = rows->expected + offset;
            if (!rows->magnitude && !(rows->label[r] >= 0 && y >= 0 && y < n))
                y = -1;
            chunk_units(m, rows, scale, divide, r, offset, n, y);
            widen(values, (const char *)given->values + (size_t)offset * given_size, given->is_double, n);
            if (divide)
                add_errors_into_divided(&sums[0], values, x, m, e, n);
            else
                add_errors_into(&sums[0], values, x, m, e, n);
            for (int k = 0; k < 2; k++)
                if (k == 0 || routes->second) {
                    form_route(values, routes, k, r, offset, n, y);
                    if (divide)
                        add_errors_divided(&sums[k + 1], values, x, m, NULL, n);
                    else
                        add_errors(&sums[k + 1], values, x, m, NULL, n);
                }
            for (; next_sample < offset + n; next_sample += scale->zero_step) {
                double z = divide ? x[next_sample - offset] / m[next_sample - offset]
                                  : x[next_sample - offset] * m[next_sample - offset];
                zero_squares += z * z;
            }
            count(&h, e, n, offset);
        }
    return finish(found, sums, &h, zero_squares);
}

#ifndef SOURCE_DIGEST
#define SOURCE_DIGEST "unknown"
#endif

/* The SHA-256 of the source this library was built from (setup.py): ulp_kernel.py loads a
 * library only where it matches the source beside it, so never one of another version. */
const char *sce_ulp_errors_digest(void)
{
    return SOURCE_DIGEST;
}

/* The constants the Python code must agree with. */
int sce_ulp_errors_worst(void)
{
    return WORST;
}

int sce_ulp_errors_lanes(void)
{
    return LANES32;
}

/* dtype_baseline.lane_sum in float32: LANES32 running sums, each over every LANES32-th entry in
 * order (the missing entries of the last step added as 0), then added together as numpy's
 * pairwise sum adds 16 numbers: eight running sums, then ((r0 + r1) + (r2 + r3)) + ((r4 + r5) +
 * (r6 + r7)). */
WIDE_VECTORS
void lane_sum_f32(int64_t rows, int64_t classes, const float *values, float *out)
{
    for (int64_t r = 0; r < rows; r++) {
        const float *v = values + r * classes;
        float running[LANES32];
        int64_t full = classes / LANES32 * LANES32;
        int64_t j = 0;
        if (full) {
            for (int k = 0; k < LANES32; k++)
                running[k] = v[k];
            j = LANES32;
        } else {
            for (int k = 0; k < LANES32; k++)
                running[k] = 0.0f;
        }
        for (; j < full; j += LANES32)
            for (int k = 0; k < LANES32; k++)
                running[k] += v[j + k];
        if (full < classes) {
            for (int k = 0; k < LANES32; k++) {
                float next = full + k < classes ? v[full + k] : 0.0f;
                running[k] = full ? running[k] + next : next;
            }
        }
        float r8[8];
        for (int k = 0; k < 8; k++)
            r8[k] = running[k] + running[k + 8];
        out[r] = ((r8[0] + r8[1]) + (r8[2] + r8[3])) + ((r8[4] + r8[5]) + (r8[6] + r8[7]));
    }
}

/* A named mistake's what-if against the answer (mistake_trials.errors_of): each entry's
 * |given − other| in ulps at max(magnitude, |other|), their largest and Σe², in one loop
 * instead of numpy's ten passes. With bounds (one per row of `classes` entries), a given 0
 * where |other| is below its row's bound is taken as other in the answer's type, as
 * flushed.excused takes it (a flushing kernel's zero). The unit and each error are the same
 * bits as numpy's; Σe² is added in order. Returns 1 where a magnitude, a unit or an error is not
 * finite (numpy then measures the rows: it knows NaN and infinity). */
int candidate_errors(int64_t n, int64_t classes, const void *given, int given_is_double, const double *other,
                     const double *magnitude, const double *bounds, double smallest, double ulp_scale,
                     double *found)
{
    const double *g64 = (const double *)given;
    const float *g32 = (const float *)given;
    double worst = 0.0, squares = 0.0;
    for (int64_t j = 0; j < n; j++) {
        double o = other[j], m = magnitude[j];
        if (isnan(m))
            return 1;
        double size = fabs(o);
        Bits b = {.value = m > size ? m : size};
        b.bits &= EXPONENT_BITS;
        double unit = (b.value > smallest ? b.value : smallest) * ulp_scale;
        double given_value = given_is_double ? g64[j] : (double)g32[j];
        if (bounds != NULL && given_value == 0.0 && size < bounds[j / classes])
            given_value = given_is_double ? o : (double)(float)o;
        double e = fabs(given_value - o) / unit;
        if (!isfinite(unit) || !isfinite(e))
            return 1;
        worst = e > worst ? e : worst;
        squares += e * e;
    }
    if (!isfinite(squares))
        return 1;
    found[0] = worst;
    found[1] = squares;
    return 0;
}

/* A what-if's gradient as the exact one changed (kernel_mistakes.GradientChange): each row times
 * its factor, then some entries set to values of their own (sorted by their flat index). */
typedef struct {
    const double *factors; /* one per row */
    int64_t patches;
    const int64_t *patch_index;
    const double *patch_value;
} Change;

/* The units of max(m, |o|) as units() forms them (their inverses where those are normal), into m;
 * NaN where the unit is not finite (a magnitude or an entry NaN or infinite). */
static inline ALWAYS_INLINE void candidate_units(double *m, const double *o, int64_t n, double smallest,
                                                 double ulp_scale, int divide)
{
    for (int64_t j = 0; j < n; j++) {
        double size = fabs(o[j]);
        Bits b = {.value = size > m[j] ? size : m[j]}; /* a NaN magnitude kept */
        b.bits &= EXPONENT_BITS;
        Bits unit = {.value = (b.value > smallest ? b.value : smallest) * ulp_scale};
        Bits inverse = {.bits = (INT64_C(2046) << 52) - unit.bits};
        m[j] = (divide ? unit.value : inverse.value) + (unit.value - unit.value);
    }
}

/* A given 0 where |o| is below the row's bound taken as o in the answer's type (flushed.excused). */
static inline ALWAYS_INLINE void excuse(double *values, const double *o, int64_t n, double bound, int is_double)
{
    for (int64_t j = 0; j < n; j++) {
        double excused = is_double ? o[j] : (double)(float)o[j];
        values[j] = values[j] == 0.0 && fabs(o[j]) < bound ? excused : values[j];
    }
}

/* candidate_errors of a what-if formed here from the exact gradient, a chunk of a row at a time,
 * against the magnitudes a·max(s·p, c) formed here too (chunk_units' operations): neither is
 * written out as an array and read back. Each entry of the what-if is expected·factor (a patched
 * entry its own value), the same bits as numpy's gradient * factors[:, None]; each error the same
 * bits as candidate_errors', Σe² added in LANES running sums. Returns 1 where a magnitude, a unit
 * or an error is not finite. */
WIDE_VECTORS
int changed_candidate_errors(const Rows *rows, const Answer *given, const Change *change, const double *bounds,
                             double smallest, double ulp_scale, double *found)
{
    Sums sums;
    memset(&sums, 0, sizeof sums);
    double m[CHUNK], o[CHUNK], values[CHUNK];
    int divide = !(smallest * ulp_scale >= DBL_MIN), is_double = given->is_double;
    int64_t classes = rows->classes, next_patch = 0;
    size_t given_size = is_double ? sizeof(double) : sizeof(float);
    for (int64_t r = 0; r < rows->rows; r++) {
        double factor = change->factors[r], s = rows->s[r], a = rows->a, sa = s * a;
        for (int64_t first = 0; first < classes; first += CHUNK) {
            int64_t n = classes - first < CHUNK ? classes - first : CHUNK;
            int64_t offset = r * classes + first, y = rows->label[r] - first;
            const double *p = rows->probabilities + offset, *x = rows->expected + offset;
            if (rows->weighted)
                for (int64_t j = 0; j < n; j++)
                    m[j] = (p[j] * s) * a;
            else
                for (int64_t j = 0; j < n; j++)
                    m[j] = p[j] * sa;
            if (rows->label[r] >= 0 && y >= 0 && y < n) {
                double ps = p[y] * s;
                m[y] = (ps > rows->c[r] || isnan(ps) ? ps : rows->c[r]) * a;
            }
            for (int64_t j = 0; j < n; j++)
                o[j] = x[j] * factor;
            for (; next_patch < change->patches && change->patch_index[next_patch] < offset + n; next_patch++)
                o[change->patch_index[next_patch] - offset] = change->patch_value[next_patch];
            candidate_units(m, o, n, smallest, ulp_scale, divide);
            widen(values, (const char *)given->values + (size_t)offset * given_size, is_double, n);
            if (bounds != NULL)
                excuse(values, o, n, bounds[r], is_double);
            if (divide)
                add_errors_divided(&sums, values, o, m, NULL, n);
            else
                add_errors(&sums, values, o, m, NULL, n);
        }
    }
    double worst = 0.0, squares = 0.0;
    for (int lane = 0; lane < LANES; lane++) {
        squares += sums.squares[lane];
        worst = worst > sums.largest[lane] ? worst : sums.largest[lane];
    }
    if (!isfinite(squares) || !isfinite(worst))
        return 1;
    found[0] = worst;
    found[1] = squares;
    return 0;
}
