/* Quiver's C SDK: the `quiver:udf` world's exports (wit/udf.wit, bindings
 * by `wit-bindgen c`) over the module's QU_SCALARS, QU_AGGREGATES and
 * QU_TABLES. See quiver_udf.h.
 *
 * The bindings' rules: a function owns its arguments (it frees them) and
 * hands over what it returns (freed after the call by the bindings), so
 * everything returned is allocated with malloc. */

#include <stdlib.h>
#include <string.h>

#include "quiver_udf.h"

/* Allocation failure inside a function cannot be reported row by row: it
 * traps, which fails the query with Quiver's memory-limit error. */
static void *grow(void *ptr, size_t size) {
    void *grown = realloc(ptr, size ? size : 1);
    if (!grown) __builtin_trap();
    return grown;
}

/* ---- reading columns ---- */

bool qu_is_null(const qu_column *c, uint32_t row) {
    return c->validity.is_some && !(c->validity.val.ptr[row / 8] & (1u << (row % 8)));
}

bool qu_bool(const qu_column *c, uint32_t row) { return c->values.val.boolean.ptr[row]; }

int32_t qu_int32(const qu_column *c, uint32_t row) {
    switch (c->values.tag) {
    case QUIVER_UDF_TYPES_VALUES_INT8: return c->values.val.int8.ptr[row];
    case QUIVER_UDF_TYPES_VALUES_INT16: return c->values.val.int16.ptr[row];
    case QUIVER_UDF_TYPES_VALUES_DATE: return c->values.val.date.ptr[row];
    default: return c->values.val.int32.ptr[row];
    }
}

int64_t qu_int64(const qu_column *c, uint32_t row) {
    /* int64 and timestamp share a layout. */
    return c->values.val.int64.ptr[row];
}

double qu_float64(const qu_column *c, uint32_t row) {
    if (c->values.tag == QUIVER_UDF_TYPES_VALUES_FLOAT32) return c->values.val.float32.ptr[row];
    return c->values.val.float64.ptr[row];
}

qu_text qu_text_at(const qu_column *c, uint32_t row) {
    /* text and bytea share a layout. */
    const quiver_udf_types_var_binary_t *v = &c->values.val.text;
    uint32_t start = v->offsets.ptr[row], end = v->offsets.ptr[row + 1];
    return (qu_text){v->data.ptr + start, end - start};
}

/* ---- building columns ---- */

static bool variable_width(qu_type type) { return type == QU_TEXT || type == QU_BYTEA; }

static size_t value_size(qu_type type) {
    switch (type) {
    case QU_BOOLEAN: case QU_INT8: return 1;
    case QU_INT16: return 2;
    case QU_INT32: case QU_FLOAT32: case QU_DATE: return 4;
    default: return 8;
    }
}

static void builder_init(qu_builder *b, qu_type type, uint32_t rows) {
    memset(b, 0, sizeof *b);
    b->type = type;
    b->capacity = rows;
    if (variable_width(type)) {
        b->offsets = grow(NULL, ((size_t)rows + 1) * sizeof(uint32_t));
        b->offsets[0] = 0;
    } else {
        b->values = grow(NULL, (size_t)rows * value_size(type));
    }
}

/* Room for one more row; returns its index. */
static uint32_t next_row(qu_builder *b) {
    if (b->rows == b->capacity) {
        b->capacity = b->capacity ? b->capacity * 2 : 64;
        if (variable_width(b->type)) {
            b->offsets = grow(b->offsets, ((size_t)b->capacity + 1) * sizeof(uint32_t));
        } else {
            b->values = grow(b->values, (size_t)b->capacity * value_size(b->type));
        }
        if (b->validity) {
            size_t bytes = (b->capacity + 7) / 8;
            b->validity = grow(b->validity, bytes);
        }
    }
    if (b->validity) b->validity[b->rows / 8] |= 1u << (b->rows % 8);
    return b->rows++;
}

void qu_append_null(qu_builder *b) {
    if (!b->validity) {
        size_t bytes = ((size_t)b->capacity + 8) / 8;
        b->validity = grow(NULL, bytes);
        memset(b->validity, 0xFF, bytes);
    }
    uint32_t row = next_row(b);
    b->validity[row / 8] &= ~(1u << (row % 8));
    if (variable_width(b->type)) {
        b->offsets[row + 1] = (uint32_t)b->data_len;
    } else {
        memset((uint8_t *)b->values + (size_t)row * value_size(b->type), 0, value_size(b->type));
    }
}

void qu_append_bool(qu_builder *b, bool value) { ((bool *)b->values)[next_row(b)] = value; }

void qu_append_int32(qu_builder *b, int32_t value) {
    uint32_t row = next_row(b);
    switch (b->type) {
    case QU_INT8: ((int8_t *)b->values)[row] = (int8_t)value; break;
    case QU_INT16: ((int16_t *)b->values)[row] = (int16_t)value; break;
    default: ((int32_t *)b->values)[row] = value;
    }
}

void qu_append_int64(qu_builder *b, int64_t value) { ((int64_t *)b->values)[next_row(b)] = value; }

void qu_append_float64(qu_builder *b, double value) {
    uint32_t row = next_row(b);
    if (b->type == QU_FLOAT32) ((float *)b->values)[row] = (float)value;
    else ((double *)b->values)[row] = value;
}

uint8_t *qu_append_text_start(qu_builder *b, size_t max_len) {
    if (b->data_len + max_len > b->data_capacity) {
        b->data_capacity = (b->data_len + max_len) * 2;
        b->data = grow(b->data, b->data_capacity);
    }
    return b->data + b->data_len;
}

void qu_append_text_end(qu_builder *b, size_t len) {
    uint32_t row = next_row(b);
    b->data_len += len;
    b->offsets[row + 1] = (uint32_t)b->data_len;
}

void qu_append_text(qu_builder *b, const void *ptr, size_t len) {
    memcpy(qu_append_text_start(b, len), ptr, len);
    qu_append_text_end(b, len);
}

/* Hands the builder's buffers over to a column. */
static void builder_finish(qu_builder *b, qu_column *out) {
    memset(out, 0, sizeof *out);
    if (b->validity) {
        out->validity.is_some = true;
        out->validity.val.ptr = b->validity;
        out->validity.val.len = (b->rows + 7) / 8;
    }
    out->values.tag = (uint8_t)b->type;
    switch (b->type) {
    case QU_TEXT:
    case QU_BYTEA:
        out->values.val.text.offsets.ptr = b->offsets;
        out->values.val.text.offsets.len = (size_t)b->rows + 1;
        out->values.val.text.data.ptr = b->data ? b->data : grow(NULL, 1);
        out->values.val.text.data.len = b->data_len;
        break;
    default:
        /* Every fixed-width list has the same {ptr, len} layout. */
        out->values.val.int64.ptr = b->values;
        out->values.val.int64.len = b->rows;
    }
}

static void builder_free(qu_builder *b) {
    free(b->values);
    free(b->validity);
    free(b->offsets);
    free(b->data);
}

/* ---- names and types ---- */

static bool named(const udf_string_t *name, const char *wanted) {
    return strlen(wanted) == name->len && memcmp(name->ptr, wanted, name->len) == 0;
}

static void list_names(udf_list_string_t *ret, const char *(*name_at)(size_t)) {
    size_t count = 0;
    while (name_at(count)) count++;
    ret->ptr = grow(NULL, count * sizeof(udf_string_t));
    ret->len = count;
    for (size_t i = 0; i < count; i++) udf_string_dup(&ret->ptr[i], name_at(i));
}

static void error_string(udf_string_t *err, const char *message) { udf_string_dup(err, message); }

static const char *type_name(qu_type type) {
    static const char *const names[] = {"boolean", "tinyint", "smallint", "integer", "bigint",
                                        "real", "double precision", "text", "bytea", "date",
                                        "timestamp"};
    return (size_t)type < sizeof names / sizeof names[0] ? names[type] : "numeric";
}

/* Whether `given` matches a signature; otherwise `err` says what it takes. */
static bool signature_matches(const char *name, size_t nargs, const qu_type *args,
                              const quiver_udf_types_sql_type_t *given, size_t given_len,
                              udf_string_t *err) {
    bool ok = nargs == given_len;
    for (size_t i = 0; ok && i < nargs; i++) ok = given[i].tag == args[i];
    if (ok) return true;
    /* "name takes (bigint, text)", without stdio: the module imports nothing. */
    size_t len = strlen(name) + sizeof " takes ()";
    for (size_t i = 0; i < nargs; i++) len += strlen(type_name(args[i])) + 2;
    char *message = grow(NULL, len);
    strcpy(message, name);
    strcat(message, " takes (");
    for (size_t i = 0; i < nargs; i++) {
        if (i) strcat(message, ", ");
        strcat(message, type_name(args[i]));
    }
    strcat(message, ")");
    err->ptr = (uint8_t *)message;
    err->len = strlen(message);
    return false;
}

static void row_error(quiver_udf_types_row_error_t *err, uint32_t row, const char *message) {
    err->row = row;
    udf_string_dup(&err->message, message);
}

/* ---- scalar functions ---- */

static const char *scalar_name(size_t i) { return QU_SCALARS[i].name; }

static const qu_scalar *find_scalar(const udf_string_t *name) {
    for (const qu_scalar *f = QU_SCALARS; f->name; f++) {
        if (named(name, f->name)) return f;
    }
    return NULL;
}

void exports_quiver_udf_scalar_functions(udf_list_string_t *ret) { list_names(ret, scalar_name); }

bool exports_quiver_udf_scalar_return_type(udf_string_t *name,
                                           exports_quiver_udf_scalar_list_sql_type_t *args,
                                           exports_quiver_udf_scalar_sql_type_t *ret,
                                           udf_string_t *err) {
    const qu_scalar *f = find_scalar(name);
    bool ok = f && signature_matches(f->name, f->nargs, f->args, args->ptr, args->len, err);
    if (!f) error_string(err, "no such function");
    if (ok) *ret = (quiver_udf_types_sql_type_t){.tag = (uint8_t)f->result};
    udf_string_free(name);
    exports_quiver_udf_scalar_list_sql_type_free(args);
    return ok;
}

bool exports_quiver_udf_scalar_call(udf_string_t *name, exports_quiver_udf_scalar_list_column_t *args,
                                    uint32_t rows, exports_quiver_udf_scalar_column_t *ret,
                                    exports_quiver_udf_scalar_row_error_t *err) {
    const qu_scalar *f = find_scalar(name);
    bool ok = false;
    if (!f) {
        row_error(err, 0, "no such function");
    } else {
        qu_builder out;
        builder_init(&out, f->result, rows);
        qu_row_error error = {0, "failed"};
        ok = f->call(args->ptr, rows, &out, &error);
        if (ok && out.rows != rows) {
            ok = false;
            error = (qu_row_error){out.rows, "the function gave a different number of rows"};
        }
        if (ok) {
            builder_finish(&out, ret);
        } else {
            builder_free(&out);
            row_error(err, error.row, error.message);
        }
    }
    udf_string_free(name);
    exports_quiver_udf_scalar_list_column_free(args);
    return ok;
}

/* ---- aggregates ---- */

struct exports_quiver_udf_aggregate_accumulator_t {
    const qu_aggregate *aggregate;
    uint8_t *states; /* `groups` states of aggregate->state_size bytes */
    uint32_t groups;
};

static const char *aggregate_name(size_t i) { return QU_AGGREGATES[i].name; }

static const qu_aggregate *find_aggregate(const udf_string_t *name) {
    for (const qu_aggregate *a = QU_AGGREGATES; a->name; a++) {
        if (named(name, a->name)) return a;
    }
    return NULL;
}

void exports_quiver_udf_aggregate_aggregates(udf_list_string_t *ret) {
    list_names(ret, aggregate_name);
}

bool exports_quiver_udf_aggregate_return_type(udf_string_t *name,
                                              exports_quiver_udf_aggregate_list_sql_type_t *args,
                                              exports_quiver_udf_aggregate_sql_type_t *ret,
                                              udf_string_t *err) {
    const qu_aggregate *a = find_aggregate(name);
    bool ok = a && signature_matches(a->name, a->nargs, a->args, args->ptr, args->len, err);
    if (!a) error_string(err, "no such aggregate");
    if (ok) *ret = (quiver_udf_types_sql_type_t){.tag = (uint8_t)a->result};
    udf_string_free(name);
    exports_quiver_udf_aggregate_list_sql_type_free(args);
    return ok;
}

bool exports_quiver_udf_aggregate_create(udf_string_t *name,
                                         exports_quiver_udf_aggregate_list_sql_type_t *args,
                                         exports_quiver_udf_aggregate_own_accumulator_t *ret,
                                         udf_string_t *err) {
    const qu_aggregate *a = find_aggregate(name);
    bool ok = a && signature_matches(a->name, a->nargs, a->args, args->ptr, args->len, err);
    if (!a) error_string(err, "no such aggregate");
    if (ok) {
        exports_quiver_udf_aggregate_accumulator_t *acc = grow(NULL, sizeof *acc);
        *acc = (exports_quiver_udf_aggregate_accumulator_t){a, NULL, 0};
        *ret = exports_quiver_udf_aggregate_accumulator_new(acc);
    }
    udf_string_free(name);
    exports_quiver_udf_aggregate_list_sql_type_free(args);
    return ok;
}

void exports_quiver_udf_aggregate_accumulator_destructor(exports_quiver_udf_aggregate_accumulator_t *acc) {
    free(acc->states);
    free(acc);
}

/* Makes groups up to `count` exist; new ones start zeroed (empty). */
static void ensure_groups(exports_quiver_udf_aggregate_accumulator_t *acc, uint32_t count) {
    if (count <= acc->groups) return;
    size_t size = acc->aggregate->state_size;
    acc->states = grow(acc->states, (size_t)count * size);
    memset(acc->states + (size_t)acc->groups * size, 0, (size_t)(count - acc->groups) * size);
    acc->groups = count;
}

static void *state_of(exports_quiver_udf_aggregate_accumulator_t *acc, uint32_t group) {
    return acc->states + (size_t)group * acc->aggregate->state_size;
}

bool exports_quiver_udf_aggregate_method_accumulator_update(
    exports_quiver_udf_aggregate_borrow_accumulator_t acc, udf_list_u32_t *groups,
    uint32_t group_count, exports_quiver_udf_aggregate_list_column_t *args, uint32_t rows,
    exports_quiver_udf_aggregate_row_error_t *err) {
    (void)err;
    ensure_groups(acc, group_count > 0 ? group_count : 1);
    for (uint32_t row = 0; row < rows; row++) {
        uint32_t group = groups->len ? groups->ptr[row] : 0;
        acc->aggregate->update(state_of(acc, group), args->ptr, row);
    }
    udf_list_u32_free(groups);
    exports_quiver_udf_aggregate_list_column_free(args);
    return true;
}

bool exports_quiver_udf_aggregate_method_accumulator_merge(
    exports_quiver_udf_aggregate_borrow_accumulator_t acc, udf_list_u32_t *groups,
    uint32_t group_count, exports_quiver_udf_aggregate_var_binary_t *states,
    exports_quiver_udf_aggregate_row_error_t *err) {
    ensure_groups(acc, group_count > 0 ? group_count : 1);
    size_t size = acc->aggregate->state_size, count = states->offsets.len - 1;
    bool ok = true;
    /* The state is copied out: the bytes of a list need not be aligned. */
    void *other = grow(NULL, size);
    for (size_t i = 0; i < count && ok; i++) {
        uint32_t start = states->offsets.ptr[i], end = states->offsets.ptr[i + 1];
        if (end - start != size) {
            row_error(err, (uint32_t)i, "an aggregate state of the wrong size");
            ok = false;
            break;
        }
        memcpy(other, states->data.ptr + start, size);
        acc->aggregate->merge(state_of(acc, groups->len ? groups->ptr[i] : 0), other);
    }
    free(other);
    udf_list_u32_free(groups);
    quiver_udf_types_var_binary_free(states);
    return ok;
}

bool exports_quiver_udf_aggregate_method_accumulator_state(
    exports_quiver_udf_aggregate_borrow_accumulator_t acc, uint32_t count,
    exports_quiver_udf_aggregate_var_binary_t *ret, udf_string_t *err) {
    (void)err;
    ensure_groups(acc, count);
    size_t size = acc->aggregate->state_size;
    ret->offsets.ptr = grow(NULL, ((size_t)count + 1) * sizeof(uint32_t));
    ret->offsets.len = (size_t)count + 1;
    for (uint32_t i = 0; i <= count; i++) ret->offsets.ptr[i] = (uint32_t)(i * size);
    ret->data.len = (size_t)count * size;
    ret->data.ptr = grow(NULL, ret->data.len);
    memcpy(ret->data.ptr, acc->states, ret->data.len);
    return true;
}

bool exports_quiver_udf_aggregate_method_accumulator_finish(
    exports_quiver_udf_aggregate_borrow_accumulator_t acc, uint32_t count,
    exports_quiver_udf_aggregate_column_t *ret, exports_quiver_udf_aggregate_row_error_t *err) {
    ensure_groups(acc, count);
    qu_builder out;
    builder_init(&out, acc->aggregate->result, count);
    for (uint32_t group = 0; group < count; group++) {
        const char *error = "failed";
        if (!acc->aggregate->finish(state_of(acc, group), &out, &error)) {
            builder_free(&out);
            row_error(err, group, error);
            return false;
        }
    }
    builder_finish(&out, ret);
    return true;
}

void exports_quiver_udf_aggregate_method_accumulator_remove(
    exports_quiver_udf_aggregate_borrow_accumulator_t acc, uint32_t count) {
    if (count > acc->groups) count = acc->groups;
    size_t size = acc->aggregate->state_size;
    memmove(acc->states, acc->states + (size_t)count * size, (size_t)(acc->groups - count) * size);
    acc->groups -= count;
}

/* ---- table functions ---- */

struct exports_quiver_udf_table_rows_t {
    const qu_table *table;
    void *cursor;
};

static const char *table_name(size_t i) { return QU_TABLES[i].name; }

static const qu_table *find_table(const udf_string_t *name) {
    for (const qu_table *t = QU_TABLES; t->name; t++) {
        if (named(name, t->name)) return t;
    }
    return NULL;
}

void exports_quiver_udf_table_tables(udf_list_string_t *ret) { list_names(ret, table_name); }

bool exports_quiver_udf_table_columns(udf_string_t *name, exports_quiver_udf_table_list_sql_type_t *args,
                                      exports_quiver_udf_table_list_sql_type_t *ret,
                                      udf_string_t *err) {
    const qu_table *t = find_table(name);
    bool ok = t && signature_matches(t->name, t->nargs, t->args, args->ptr, args->len, err);
    if (!t) error_string(err, "no such table function");
    if (ok) {
        ret->ptr = grow(NULL, t->ncolumns * sizeof(quiver_udf_types_sql_type_t));
        ret->len = t->ncolumns;
        for (size_t i = 0; i < t->ncolumns; i++) {
            ret->ptr[i] = (quiver_udf_types_sql_type_t){.tag = (uint8_t)t->columns[i]};
        }
    }
    udf_string_free(name);
    exports_quiver_udf_table_list_sql_type_free(args);
    return ok;
}

bool exports_quiver_udf_table_start(udf_string_t *name, exports_quiver_udf_table_list_column_t *args,
                                    exports_quiver_udf_table_own_rows_t *ret, udf_string_t *err) {
    const qu_table *t = find_table(name);
    bool ok = false;
    if (!t) {
        error_string(err, "no such table function");
    } else {
        const char *error = "failed";
        void *cursor = t->start(args->ptr, &error);
        if (cursor) {
            exports_quiver_udf_table_rows_t *rows = grow(NULL, sizeof *rows);
            *rows = (exports_quiver_udf_table_rows_t){t, cursor};
            *ret = exports_quiver_udf_table_rows_new(rows);
            ok = true;
        } else {
            error_string(err, error);
        }
    }
    udf_string_free(name);
    exports_quiver_udf_table_list_column_free(args);
    return ok;
}

bool exports_quiver_udf_table_method_rows_next(exports_quiver_udf_table_borrow_rows_t rows,
                                               uint32_t max_rows,
                                               exports_quiver_udf_table_option_batch_t *ret,
                                               exports_quiver_udf_table_row_error_t *err) {
    const qu_table *t = rows->table;
    qu_builder columns[QU_MAX_ARGS];
    for (size_t i = 0; i < t->ncolumns; i++) builder_init(&columns[i], t->columns[i], max_rows);
    uint32_t produced = t->next(rows->cursor, max_rows, columns);
    for (size_t i = 0; i < t->ncolumns; i++) {
        if (columns[i].rows != produced) {
            for (size_t j = 0; j < t->ncolumns; j++) builder_free(&columns[j]);
            row_error(err, 0, "a table function's columns have different numbers of rows");
            return false;
        }
    }
    ret->is_some = produced > 0;
    if (!ret->is_some) {
        for (size_t i = 0; i < t->ncolumns; i++) builder_free(&columns[i]);
        return true;
    }
    ret->val.rows = produced;
    ret->val.columns.len = t->ncolumns;
    ret->val.columns.ptr = grow(NULL, t->ncolumns * sizeof(qu_column));
    for (size_t i = 0; i < t->ncolumns; i++) builder_finish(&columns[i], &ret->val.columns.ptr[i]);
    return true;
}

void exports_quiver_udf_table_rows_destructor(exports_quiver_udf_table_rows_t *rows) {
    if (rows->table->stop) rows->table->stop(rows->cursor);
    free(rows);
}
