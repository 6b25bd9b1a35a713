/* Example Quiver functions in C: the same functions as the Rust example
 * (examples/rust), built to a component by the Makefile beside this file.
 * See the guide, sdk/c/README.md. */

#include <stdint.h>
#include <stdlib.h>
#include <wctype.h>

#include "quiver_udf.h"

/* gcd(bigint, bigint) -> bigint: greatest common divisor (numeric). */
static bool gcd(const qu_column *args, uint32_t rows, qu_builder *out, qu_row_error *error) {
    (void)error;
    for (uint32_t row = 0; row < rows; row++) {
        if (qu_is_null(&args[0], row) || qu_is_null(&args[1], row)) {
            qu_append_null(out);
            continue;
        }
        int64_t x = qu_int64(&args[0], row), y = qu_int64(&args[1], row);
        uint64_t a = x < 0 ? -(uint64_t)x : (uint64_t)x;
        uint64_t b = y < 0 ? -(uint64_t)y : (uint64_t)y;
        while (b != 0) {
            uint64_t rest = a % b;
            a = b;
            b = rest;
        }
        qu_append_int64(out, (int64_t)a);
    }
    return true;
}

/* mul2_add1(bigint) -> bigint: x * 2 + 1, wrapping (the benchmark's). */
static bool mul2_add1(const qu_column *args, uint32_t rows, qu_builder *out, qu_row_error *error) {
    (void)error;
    for (uint32_t row = 0; row < rows; row++) {
        if (qu_is_null(&args[0], row)) {
            qu_append_null(out);
        } else {
            uint64_t x = (uint64_t)qu_int64(&args[0], row);
            qu_append_int64(out, (int64_t)(x * 2 + 1));
        }
    }
    return true;
}

/* One UTF-8 character of s (len > 0): its code point, and its length in *size. */
static uint32_t utf8_decode(const uint8_t *s, size_t len, size_t *size) {
    uint32_t c = s[0];
    size_t n = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    if (n > len) n = len;
    if (n > 1) c &= 0x3F >> (n - 1);
    for (size_t i = 1; i < n; i++) c = (c << 6) | (s[i] & 0x3F);
    *size = n;
    return c;
}

static size_t utf8_encode(uint32_t c, uint8_t *out) {
    if (c < 0x80) { out[0] = (uint8_t)c; return 1; }
    if (c < 0x800) { out[0] = 0xC0 | (c >> 6); out[1] = 0x80 | (c & 0x3F); return 2; }
    if (c < 0x10000) {
        out[0] = 0xE0 | (c >> 12); out[1] = 0x80 | ((c >> 6) & 0x3F); out[2] = 0x80 | (c & 0x3F);
        return 3;
    }
    out[0] = 0xF0 | (c >> 18); out[1] = 0x80 | ((c >> 12) & 0x3F);
    out[2] = 0x80 | ((c >> 6) & 0x3F); out[3] = 0x80 | (c & 0x3F);
    return 4;
}

/* upper(text) -> text: upper-cases every character; NULL stays NULL (string). */
static bool upper(const qu_column *args, uint32_t rows, qu_builder *out, qu_row_error *error) {
    (void)error;
    for (uint32_t row = 0; row < rows; row++) {
        if (qu_is_null(&args[0], row)) {
            qu_append_null(out);
            continue;
        }
        qu_text text = qu_text_at(&args[0], row);
        /* Upper-casing changes a character's UTF-8 length by at most 2x. */
        uint8_t *upper = qu_append_text_start(out, text.len * 2);
        size_t written = 0;
        for (size_t at = 0; at < text.len;) {
            size_t size;
            uint32_t c = utf8_decode(text.ptr + at, text.len - at, &size);
            written += utf8_encode((uint32_t)towupper((wint_t)c), upper + written);
            at += size;
        }
        qu_append_text_end(out, written);
    }
    return true;
}

const qu_scalar QU_SCALARS[] = {
    {"gcd", 2, {QU_INT64, QU_INT64}, QU_INT64, gcd},
    {"mul2_add1", 1, {QU_INT64}, QU_INT64, mul2_add1},
    {"upper", 1, {QU_TEXT}, QU_TEXT, upper},
    {0},
};

/* wasm_sum(bigint) -> bigint: a sum that fails on overflow, as PostgreSQL's.
 * One group's state; all zero is a group without rows. */
typedef struct {
    int64_t sum;
    bool seen;     /* a non-null value was added */
    bool overflow; /* the sum left bigint's range */
} sum_state;

static void sum_add(sum_state *state, int64_t x) {
    if (__builtin_add_overflow(state->sum, x, &state->sum)) state->overflow = true;
    state->seen = true;
}

static void sum_update(void *state, const qu_column *args, uint32_t row) {
    if (!qu_is_null(&args[0], row)) sum_add(state, qu_int64(&args[0], row));
}

static void sum_merge(void *state, const void *other) {
    const sum_state *o = other;
    if (o->seen) sum_add(state, o->sum);
    ((sum_state *)state)->overflow |= o->overflow;
}

static bool sum_finish(const void *state, qu_builder *out, const char **error) {
    const sum_state *s = state;
    if (s->overflow) {
        *error = "bigint out of range";
        return false;
    }
    if (s->seen) qu_append_int64(out, s->sum);
    else qu_append_null(out);
    return true;
}

const qu_aggregate QU_AGGREGATES[] = {
    {"wasm_sum", 1, {QU_INT64}, QU_INT64, sizeof(sum_state), sum_update, sum_merge, sum_finish},
    {0},
};

/* series(start, stop, step) -> TABLE (n bigint): start, start + step, ...
 * up to stop, like generate_series. */
typedef struct {
    int64_t next, stop, step;
    bool done;
} series_cursor;

static void *series_start(const qu_column *args, const char **error) {
    for (int i = 0; i < 3; i++) {
        if (qu_is_null(&args[i], 0)) {
            *error = "series takes no NULL arguments";
            return NULL;
        }
    }
    series_cursor *cursor = malloc(sizeof *cursor);
    cursor->next = qu_int64(&args[0], 0);
    cursor->stop = qu_int64(&args[1], 0);
    cursor->step = qu_int64(&args[2], 0);
    cursor->done = cursor->step == 0;
    return cursor;
}

static uint32_t series_next(void *state, uint32_t max_rows, qu_builder *columns) {
    series_cursor *c = state;
    uint32_t rows = 0;
    while (rows < max_rows && !c->done) {
        if (c->step > 0 ? c->next > c->stop : c->next < c->stop) {
            c->done = true;
            break;
        }
        qu_append_int64(&columns[0], c->next);
        rows++;
        if (__builtin_add_overflow(c->next, c->step, &c->next)) c->done = true;
    }
    return rows;
}

const qu_table QU_TABLES[] = {
    {"series", 3, {QU_INT64, QU_INT64, QU_INT64}, 1, {QU_INT64}, series_start, series_next, free},
    {0},
};
