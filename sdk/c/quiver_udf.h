/* Quiver's C SDK: write scalar functions, aggregates and table functions for
 * Quiver in C. See README.md beside this file for the guide.
 *
 * A module lists its functions in three arrays, each ending with a zeroed
 * entry: QU_SCALARS, QU_AGGREGATES and QU_TABLES (define all three, empty
 * ones too). quiver_udf.c implements the `quiver:udf` world (wit/udf.wit)
 * over them: it checks argument types, hands each function a batch of
 * columns, builds result columns and keeps aggregate states per group.
 *
 * It is built on the bindings `wit-bindgen c` generates for the `udf` world
 * (udf.h), which must be on the include path. */

#ifndef QUIVER_UDF_H
#define QUIVER_UDF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "udf.h"

#define QU_MAX_ARGS 8

/* SQL types. Decimal is not offered by this SDK. */
typedef enum {
    QU_BOOLEAN = QUIVER_UDF_TYPES_SQL_TYPE_BOOLEAN,
    QU_INT8 = QUIVER_UDF_TYPES_SQL_TYPE_INT8,         /* "char" / tinyint */
    QU_INT16 = QUIVER_UDF_TYPES_SQL_TYPE_INT16,       /* smallint */
    QU_INT32 = QUIVER_UDF_TYPES_SQL_TYPE_INT32,       /* integer */
    QU_INT64 = QUIVER_UDF_TYPES_SQL_TYPE_INT64,       /* bigint */
    QU_FLOAT32 = QUIVER_UDF_TYPES_SQL_TYPE_FLOAT32,   /* real */
    QU_FLOAT64 = QUIVER_UDF_TYPES_SQL_TYPE_FLOAT64,   /* double precision */
    QU_TEXT = QUIVER_UDF_TYPES_SQL_TYPE_TEXT,         /* text, UTF-8 */
    QU_BYTEA = QUIVER_UDF_TYPES_SQL_TYPE_BYTEA,       /* bytea */
    QU_DATE = QUIVER_UDF_TYPES_SQL_TYPE_DATE,         /* days since 1970-01-01 */
    QU_TIMESTAMP = QUIVER_UDF_TYPES_SQL_TYPE_TIMESTAMP, /* microseconds since 1970 */
} qu_type;

/* One column of a batch, as the WIT contract defines it. */
typedef quiver_udf_types_column_t qu_column;

/* Text or bytea: `len` bytes at `ptr`, not NUL-terminated. */
typedef struct {
    const uint8_t *ptr;
    size_t len;
} qu_text;

/* Reading arguments: row `row` of column `c`. Read a value only when it is
 * not NULL, and with the accessor of the column's declared type. */
bool qu_is_null(const qu_column *c, uint32_t row);
bool qu_bool(const qu_column *c, uint32_t row);
int32_t qu_int32(const qu_column *c, uint32_t row); /* also int8, int16, date */
int64_t qu_int64(const qu_column *c, uint32_t row); /* also timestamp */
double qu_float64(const qu_column *c, uint32_t row); /* also real */
qu_text qu_text_at(const qu_column *c, uint32_t row); /* text and bytea */

/* A result column under construction: values are appended row after row. */
typedef struct {
    qu_type type;
    uint32_t rows;     /* rows appended so far */
    uint32_t capacity; /* rows with room for a value */
    void *values;      /* fixed-width values */
    uint8_t *validity; /* NULL until the first NULL is appended */
    uint32_t *offsets; /* text and bytea: rows + 1 offsets into `data` */
    uint8_t *data;
    size_t data_len, data_capacity;
} qu_builder;

void qu_append_null(qu_builder *b);
void qu_append_bool(qu_builder *b, bool value);
void qu_append_int32(qu_builder *b, int32_t value); /* also int8, int16, date */
void qu_append_int64(qu_builder *b, int64_t value); /* also timestamp */
void qu_append_float64(qu_builder *b, double value); /* also real */
void qu_append_text(qu_builder *b, const void *ptr, size_t len); /* text, bytea */
/* Appends a text value written in place: returns room for `max_len` bytes;
 * qu_append_text_end(b, len) then ends the value after its first `len`. */
uint8_t *qu_append_text_start(qu_builder *b, size_t max_len);
void qu_append_text_end(qu_builder *b, size_t len);

/* Why a row could not be computed: the query fails with this message. */
typedef struct {
    uint32_t row;
    const char *message; /* a static string */
} qu_row_error;

/* A scalar function: computes `rows` rows of `args` into `out` (one value
 * appended per row), or fills `error` and returns false. */
typedef struct {
    const char *name;
    size_t nargs;
    qu_type args[QU_MAX_ARGS];
    qu_type result;
    bool (*call)(const qu_column *args, uint32_t rows, qu_builder *out, qu_row_error *error);
} qu_scalar;

/* An aggregate. Each group's state is `state_size` bytes, zeroed for a new
 * group; it travels between machines as those bytes, so keep pointers out
 * of it. `update` adds row `row` of `args` to a state, `merge` adds another
 * state to it, and `finish` appends the group's result to `out` or sets
 * `*error` and returns false. */
typedef struct {
    const char *name;
    size_t nargs;
    qu_type args[QU_MAX_ARGS];
    qu_type result;
    size_t state_size;
    void (*update)(void *state, const qu_column *args, uint32_t row);
    void (*merge)(void *state, const void *other);
    bool (*finish)(const void *state, qu_builder *out, const char **error);
} qu_aggregate;

/* A table function. `start` gets the arguments (one row each) and returns
 * a cursor, or sets `*error` and returns NULL; `next` appends at most
 * `max_rows` rows to `columns` (one builder per result column) and returns
 * how many, 0 when there are no more; `stop` frees the cursor. */
typedef struct {
    const char *name;
    size_t nargs;
    qu_type args[QU_MAX_ARGS];
    size_t ncolumns;
    qu_type columns[QU_MAX_ARGS];
    void *(*start)(const qu_column *args, const char **error);
    uint32_t (*next)(void *cursor, uint32_t max_rows, qu_builder *columns);
    void (*stop)(void *cursor);
} qu_table;

/* Defined by the module, each ending with a zeroed entry. */
extern const qu_scalar QU_SCALARS[];
extern const qu_aggregate QU_AGGREGATES[];
extern const qu_table QU_TABLES[];

#endif
