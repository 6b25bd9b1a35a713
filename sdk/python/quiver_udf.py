"""Write Quiver functions in Python.

Decorate plain Python functions and classes; componentize-py turns the module
into a WebAssembly component of the ``quiver:udf`` world (``wit/udf.wit``),
and this module implements that world over what you decorated:

    from quiver_udf import scalar, aggregate, table
    from quiver_udf import Scalar, Aggregate, Table, Transform  # what componentize-py exports

    @scalar(args=["double precision"], returns="double precision")
    def add_tax(price):
        return price * 1.2

Functions get and return Python values, one row at a time: ``bool``,
``int``, ``float``, ``str``, ``bytes``, ``datetime.date`` and
``datetime.datetime``, and ``None`` for NULL. A function may open the
key-value buckets its definition grants with ``open_bucket`` (build with the
``udf-keyvalue`` world). See sdk/python/README.md.
"""

import datetime
import itertools
import pickle

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import table as wit_table

try:  # Transforms: in components of the udf-transforms and udf-keyvalue worlds.
    from wit_world.exports import transform as wit_transform
except ImportError:
    wit_transform = None
from wit_world.imports import types as t

try:  # Key-value buckets: only in components of the udf-keyvalue world.
    from wit_world.imports import atomics as _atomics
    from wit_world.imports import batch as _batch
    from wit_world.imports import store as _store
except ImportError:
    _atomics = _batch = _store = None

__all__ = [
    "scalar", "aggregate", "table", "transform", "Scalar", "Aggregate", "Table", "Transform",
    "open_bucket", "Bucket", "KeyValueError",
]

_EPOCH = datetime.datetime(1970, 1, 1)
_EPOCH_DAY = _EPOCH.date().toordinal()


class _Type:
    """A SQL type: its WIT form, its name and how its columns are read and written."""

    def __init__(self, name, sql_type, values, lo=None, hi=None, read=None, write=None):
        self.name = name
        self.sql_type = sql_type
        self.values = values
        self.lo, self.hi = lo, hi
        self.read = read  # a function of the WIT values, giving a list
        self.write = write  # a function of a list (with None), giving WIT values


def _ints(bits):
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return lo, hi


def _var_read(var, decode):
    offsets, data = var.offsets, var.data
    return [decode(data[offsets[i] : offsets[i + 1]]) for i in range(len(offsets) - 1)]


def _var_write(values, encode):
    offsets, chunks, end = [0], [], 0
    for value in values:
        if value is not None:
            chunk = encode(value)
            chunks.append(chunk)
            end += len(chunk)
        offsets.append(end)
    return t.VarBinary(offsets, b"".join(chunks))


def _zeroed(values, zero):
    return [zero if v is None else v for v in values]


_TYPES = [
    _Type("boolean", t.SqlType_Boolean(), t.Values_Boolean,
          read=list, write=lambda vs: _zeroed(vs, False)),
    _Type("tinyint", t.SqlType_Int8(), t.Values_Int8, *_ints(8),
          read=lambda b: [v - 256 if v > 127 else v for v in b],
          write=lambda vs: bytes((v or 0) & 0xFF for v in vs)),
    _Type("smallint", t.SqlType_Int16(), t.Values_Int16, *_ints(16),
          read=list, write=lambda vs: _zeroed(vs, 0)),
    _Type("integer", t.SqlType_Int32(), t.Values_Int32, *_ints(32),
          read=list, write=lambda vs: _zeroed(vs, 0)),
    _Type("bigint", t.SqlType_Int64(), t.Values_Int64, *_ints(64),
          read=list, write=lambda vs: _zeroed(vs, 0)),
    _Type("real", t.SqlType_Float32(), t.Values_Float32,
          read=list, write=lambda vs: _zeroed(vs, 0.0)),
    _Type("double precision", t.SqlType_Float64(), t.Values_Float64,
          read=list, write=lambda vs: _zeroed(vs, 0.0)),
    _Type("text", t.SqlType_Text(), t.Values_Text,
          read=lambda v: _var_read(v, lambda b: b.decode()),
          write=lambda vs: _var_write(vs, str.encode)),
    _Type("bytea", t.SqlType_Bytea(), t.Values_Bytea,
          read=lambda v: _var_read(v, bytes),
          write=lambda vs: _var_write(vs, bytes)),
    _Type("date", t.SqlType_Date(), t.Values_Date, *_ints(32),
          read=lambda ds: [datetime.date.fromordinal(d + _EPOCH_DAY) for d in ds],
          write=lambda vs: [0 if v is None else v.toordinal() - _EPOCH_DAY for v in vs]),
    _Type("timestamp", t.SqlType_Timestamp(), t.Values_Timestamp,
          read=lambda us: [_EPOCH + datetime.timedelta(microseconds=u) for u in us],
          write=lambda vs: [0 if v is None else (v - _EPOCH) // datetime.timedelta(microseconds=1)
                            for v in vs]),
]

# The names PostgreSQL gives these types, as written in `args=` and `returns=`.
_ALIASES = {
    "bool": "boolean",
    "int2": "smallint",
    "int": "integer",
    "int4": "integer",
    "int8": "bigint",
    "float4": "real",
    "float8": "double precision",
    "double": "double precision",
    "varchar": "text",
    "timestamp without time zone": "timestamp",
}
_BY_NAME = {ty.name: ty for ty in _TYPES}

# What a Python value must be, per type (bool is an int, so it is refused for ints).
_PYTHON = {
    "boolean": (bool,),
    "real": (float, int),
    "double precision": (float, int),
    "text": (str,),
    "bytea": (bytes, bytearray, memoryview),
    "date": (datetime.date,),
    "timestamp": (datetime.datetime,),
}


def _sql_type(name):
    key = " ".join(name.lower().split())
    ty = _BY_NAME.get(_ALIASES.get(key, key))
    if ty is None:
        raise ValueError(f"unknown SQL type {name!r}; use one of: {', '.join(_BY_NAME)}")
    return ty


def _type_of(sql_type):
    for ty in _TYPES:
        if ty.sql_type == sql_type:
            return ty
    return None


def _type_names(sql_types):
    return ", ".join(ty.name if ty else "numeric" for ty in map(_type_of, sql_types))


class _Function:
    """What a decorator recorded: a name, a signature and the Python object."""

    def __init__(self, kind, obj, name, args, strict):
        self.kind = kind
        self.obj = obj
        self.name = name or obj.__name__
        self.args = [_sql_type(a) for a in args]
        self.strict = strict
        self.vectorized = False

    def check(self, given):
        """Raises Err(message) unless `given` (WIT types) is this signature."""
        if [ty.sql_type for ty in self.args] != list(given):
            wanted = ", ".join(ty.name for ty in self.args)
            raise Err(f"{self.name} takes ({wanted}), not ({_type_names(given)})")


_SCALARS = {}
_AGGREGATES = {}
_TABLES = {}
_TRANSFORMS = {}


def _register(registry, function):
    if function.name in registry:
        raise ValueError(f"two {function.kind} functions are named {function.name!r}")
    registry[function.name] = function
    return function.obj


def scalar(*, args, returns, name=None, strict=True, vectorized=False):
    """A scalar function: called once per row with one Python value per argument.

    ``args`` lists the SQL argument types and ``returns`` the result's. With
    ``strict`` (the default), a row with a NULL argument gives NULL without a
    call; ``strict=False`` passes None instead.

    ``vectorized=True``: called once per batch of rows instead, with one list
    per argument, and returns a list (any iterable) of as many results. In a
    strict function the rows with a NULL argument hold a placeholder (0, 0.0,
    "", ...) and their results are ignored: they are NULL.
    """

    def decorate(fn):
        function = _Function("scalar", fn, name, args, strict)
        function.returns = _sql_type(returns)
        function.vectorized = vectorized
        return _register(_SCALARS, function)

    return decorate


def aggregate(*, args, returns, name=None, strict=True):
    """An aggregate: a class whose instances are the states of groups.

    ``cls()`` is a new group, ``update(*values)`` adds one row, ``merge(other)``
    adds another state of the same group, ``finish()`` gives the result.
    States travel between machines pickled. With ``strict`` (the default),
    rows with a NULL argument are skipped.
    """

    def decorate(cls):
        for method in ("update", "merge", "finish"):
            if not callable(getattr(cls, method, None)):
                raise TypeError(f"aggregate {cls.__name__} needs a {method} method")
        function = _Function("aggregate", cls, name, args, strict)
        function.returns = _sql_type(returns)
        return _register(_AGGREGATES, function)

    return decorate


def table(*, args, columns, name=None):
    """A table function: called once with its arguments, it returns an iterable
    (usually it is a generator) of rows: tuples, or single values for one column.
    """

    def decorate(fn):
        function = _Function("table", fn, name, args, False)
        function.columns = [_sql_type(c) for c in columns]
        return _register(_TABLES, function)

    return decorate


def transform(*, args=(), name=None):
    """A transform: a relation in, a relation out. Decorate a class with

    - ``describe(columns, *args)``, a static method: the output's columns for
      the input's, each a ``(name, type)`` pair (type names as in SQL), and
      the constant arguments as Python values;
    - ``__init__(self, columns, *args)``: a new partition (with ``PARTITION
      BY``, one key's rows, in ``ORDER BY`` order);
    - ``process(self, rows)``: one batch of the partition's rows, a list of
      tuples; returns (or, as a generator, yields) the rows produced;
    - ``finish(self)`` (optional): the rows still to produce at its end.
    """

    def decorate(cls):
        function = _Function("transform", cls, name, args, False)
        return _register(_TRANSFORMS, function)

    return decorate


# Columns in and out.


def _read(column, ty, rows):
    """A WIT column as a list of Python values, None for NULL."""
    values = ty.read(column.values.value)
    validity = column.validity
    if validity is not None:
        for i in range(rows):
            if not (validity[i >> 3] >> (i & 7)) & 1:
                values[i] = None
    return values


def _check(value, ty):
    """Why `value` cannot be a `ty`, or None when it can."""
    if ty.lo is not None and ty.name not in _PYTHON:
        if not isinstance(value, int) or isinstance(value, bool):
            return f"{type(value).__name__} is not {ty.name}"
        if not ty.lo <= value <= ty.hi:
            return f"{ty.name} out of range"
        return None
    if not isinstance(value, _PYTHON[ty.name]):
        return f"{type(value).__name__} is not {ty.name}"
    if ty.name == "date" and isinstance(value, datetime.datetime):
        return "datetime is not date"
    return None


def _write(values, ty, row_of=lambda i: i):
    """Python values as a WIT column; a value of the wrong type or range is
    an error of its row (`row_of` maps a position to the row it names)."""
    validity = None
    for i, value in enumerate(values):
        if value is None:
            if validity is None:
                validity = bytearray(b"\xff" * ((len(values) + 7) // 8))
            validity[i >> 3] &= ~(1 << (i & 7)) & 0xFF
            continue
        problem = _check(value, ty)
        if problem is not None:
            raise Err(t.RowError(row_of(i), problem))
    return t.Column(None if validity is None else bytes(validity), ty.values(ty.write(values)))


# What a result column's values may be, checked a column at a time; anything
# else goes through _write's check of each value.
_EXACT = {
    "smallint": {int},
    "integer": {int},
    "bigint": {int},
    "real": {float, int},
    "double precision": {float, int},
    "text": {str},
}


def _write_all(values, ty):
    """_write for a column with no NULL whose values are all of one plain type
    (checked by C code, not a Python loop), else _write itself."""
    if None not in values and set(map(type, values)) <= _EXACT.get(ty.name, set()):
        if ty.lo is None or not values or (ty.lo <= min(values) and max(values) <= ty.hi):
            return t.Column(None, ty.values(ty.write(values) if ty.name == "text" else values))
    return _write(values, ty)


def _valid_in_all(bitmaps, rows):
    """The rows valid in every one of `bitmaps` (Arrow validity bitmaps, None
    meaning no NULL), or None when every row is valid."""
    given = [b for b in bitmaps if b is not None]
    if not given:
        return None
    size = (rows + 7) // 8
    bits = (1 << (8 * size)) - 1
    for b in given:
        bits &= int.from_bytes(bytes(b[:size]).ljust(size, b"\0"), "little")
    return bits.to_bytes(size, "little")


def _vectorized(function, args, rows):
    """A vectorized scalar function over a batch: lists in, a list out."""
    if function.strict:
        columns = [ty.read(c.values.value) for c, ty in zip(args, function.args)]
    else:
        columns = [_read(c, ty, rows) for c, ty in zip(args, function.args)]
    try:
        out = function.obj(*columns)
        out = out if isinstance(out, list) else list(out)
    except Exception as error:
        raise Err(t.RowError(0, f"{_message(error)} (in a batch of {rows} rows from this one)"))
    if len(out) != rows:
        raise Err(t.RowError(0, f"{function.name} returned {len(out)} values for {rows} rows"))
    column = _write_all(out, function.returns)
    if function.strict:
        valid = _valid_in_all([c.validity for c in args] + [column.validity], rows)
        column = t.Column(valid, column.values)
    return column


def _message(error):
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _lookup(registry, name, kind, types=None):
    """The function `name` of `registry`; with `types` (WIT types), checked
    to take them. Raises Err(message) otherwise."""
    function = registry.get(name)
    if function is None:
        raise Err(f"this module has no {kind} named {name!r}")
    if types is not None:
        function.check(types)
    return function


def _constants(function, args):
    """The values of constant arguments (one row each)."""
    return [_read(c, ty, 1)[0] for c, ty in zip(args, function.args)]


def _row_columns(function, rows, types):
    """Rows (tuples) a function produced, as WIT columns of these types; a row
    of the wrong width is an error of its row."""
    for i, row in enumerate(rows):
        if len(row) != len(types):
            raise Err(t.RowError(i, f"{function.name} gave a row of {len(row)} values, "
                                    f"not {len(types)}"))
    return [_write([row[c] for row in rows], ty) for c, ty in enumerate(types)]


def _arguments(function, args, rows):
    """The rows of a batch's argument columns: a tuple of Python values each."""
    columns = [_read(c, ty, rows) for c, ty in zip(args, function.args)]
    return zip(*columns) if columns else itertools.repeat((), rows)


# The world's exports: componentize-py finds these three classes in the
# module it builds, which imports them from here.


class Scalar(exports.Scalar):
    def functions(self):
        return list(_SCALARS)

    def return_type(self, name, args):
        function = _lookup(_SCALARS, name, "scalar function", args)
        return function.returns.sql_type

    def call(self, name, args, rows):
        function = _SCALARS.get(name)
        if function is None:
            raise Err(t.RowError(0, f"this module has no scalar function named {name!r}"))
        if function.vectorized:
            return _vectorized(function, args, rows)
        fn = function.obj
        arguments = _arguments(function, args, rows)
        out = []
        append = out.append
        for row, values in enumerate(arguments):
            if function.strict and None in values:
                append(None)
                continue
            try:
                append(fn(*values))
            except Exception as error:
                raise Err(t.RowError(row, _message(error)))
        return _write(out, function.returns)


class _Accumulator:
    """The states of an aggregate's groups: one instance of its class each."""

    def __init__(self, function):
        self.function = function
        self.groups = []

    def _grow(self, count):
        cls = self.function.obj
        while len(self.groups) < count:
            self.groups.append(cls())

    def update(self, groups, group_count, args, rows):
        self._grow(group_count)
        function = self.function
        arguments = _arguments(function, args, rows)
        states = self.groups
        for row, values in enumerate(arguments):
            if function.strict and None in values:
                continue
            try:
                states[groups[row] if groups else 0].update(*values)
            except Exception as error:
                raise Err(t.RowError(row, _message(error)))

    def merge(self, groups, group_count, states):
        self._grow(group_count)
        offsets, data = states.offsets, states.data
        for i in range(len(offsets) - 1):
            try:
                other = pickle.loads(data[offsets[i] : offsets[i + 1]])
                self.groups[groups[i] if groups else 0].merge(other)
            except Exception as error:
                raise Err(t.RowError(i, _message(error)))

    def state(self, count):
        try:
            return _var_write(self.groups[:count], pickle.dumps)
        except Exception as error:
            raise Err(f"{self.function.name}: cannot pickle a state: {_message(error)}")

    def finish(self, count):
        self._grow(count)
        results = []
        for group, state in enumerate(self.groups[:count]):
            try:
                results.append(state.finish())
            except Exception as error:
                raise Err(t.RowError(group, _message(error)))
        return _write(results, self.function.returns)

    def remove(self, count):
        del self.groups[:count]


class Aggregate(exports.Aggregate):
    def aggregates(self):
        return list(_AGGREGATES)

    def return_type(self, name, args):
        function = _lookup(_AGGREGATES, name, "aggregate", args)
        return function.returns.sql_type

    def create(self, name, args):
        function = _lookup(_AGGREGATES, name, "aggregate", args)
        return _Accumulator(function)


class _Rows:
    """A running table function: its iterator, read a batch at a time."""

    def __init__(self, function, rows):
        self.function = function
        self.rows = rows

    def next(self, max_rows):
        function = self.function
        width = len(function.columns)
        batch = []
        try:
            for row in itertools.islice(self.rows, max_rows):
                batch.append(row if width > 1 or isinstance(row, tuple) else (row,))
        except Exception as error:
            raise Err(t.RowError(len(batch), _message(error)))
        if not batch:
            return None
        return wit_table.Batch(_row_columns(function, batch, function.columns), len(batch))


class Table(exports.Table):
    def tables(self):
        return list(_TABLES)

    def columns(self, name, args):
        function = _lookup(_TABLES, name, "table function", args)
        return [ty.sql_type for ty in function.columns]

    def start(self, name, args):
        function = _lookup(_TABLES, name, "table function")
        values = _constants(function, args)
        try:
            return _Rows(function, iter(function.obj(*values)))
        except Exception as error:
            raise Err(_message(error))


class _Partition:
    """A running partition of a transform."""

    def __init__(self, function, instance, input_types, output_types):
        self.function = function
        self.instance = instance
        self.input_types = input_types
        self.output_types = output_types

    def push(self, batch):
        columns = [_read(c, ty, batch.rows) for c, ty in zip(batch.columns, self.input_types)]
        rows = list(zip(*columns)) if columns else [()] * batch.rows
        return self._batch(lambda: self.instance.process(rows))

    def finish(self):
        finish = getattr(self.instance, "finish", None)
        return self._batch(lambda: finish() if finish is not None else ())

    def _batch(self, produce):
        width = len(self.output_types)
        try:
            out = [r if width > 1 or isinstance(r, tuple) else (r,) for r in (produce() or ())]
        except Err:
            raise
        except Exception as error:
            raise Err(t.RowError(0, _message(error)))
        return wit_transform.Batch(_row_columns(self.function, out, self.output_types), len(out))


def _fields(function, input):
    """The input's fields as (name, type name) pairs, and their types."""
    types = [_type_of(f.type) for f in input]
    for f, ty in zip(input, types):
        if ty is None:
            raise Err(f"{function.name}: column {f.name} has a type Python functions do not take")
    return [(f.name, ty.name) for f, ty in zip(input, types)], types


def _described(function, columns, values):
    """What the class's describe says, as SQL types."""
    try:
        described = function.obj.describe(columns, *values)
        return [(n, _sql_type(ty)) for n, ty in described]
    except Err:
        raise
    except Exception as error:
        raise Err(_message(error))


class _Transform:
    def transforms(self):
        return list(_TRANSFORMS)

    def describe(self, name, input, args):
        function = _lookup(_TRANSFORMS, name, "transform")
        columns, _ = _fields(function, input)
        values = _constants(function, args)
        return [wit_transform.Field(n, ty.sql_type) for n, ty in _described(function, columns, values)]

    def start(self, name, input, args):
        function = _lookup(_TRANSFORMS, name, "transform")
        columns, types = _fields(function, input)
        values = _constants(function, args)
        output = [ty for _, ty in _described(function, columns, values)]
        try:
            instance = function.obj(columns, *values)
        except Exception as error:
            raise Err(_message(error))
        return _Partition(function, instance, types, output)


if wit_transform is not None:

    class Transform(_Transform, exports.Transform):
        pass


class KeyValueError(Exception):
    """A bucket could not be opened, read or written: ``access denied`` (the
    function's definition does not grant it), ``no such bucket``, or the
    host's message. Raised from a function, it is its row's error."""


def _kv_error(error):
    """The KeyValueError of a wasi:keyvalue error value."""
    if isinstance(error, _store.Error_AccessDenied):
        return KeyValueError("access denied")
    if isinstance(error, _store.Error_NoSuchStore):
        return KeyValueError("no such bucket")
    return KeyValueError(getattr(error, "value", str(error)))


def _kv(call, *args):
    try:
        return call(*args)
    except Err as error:
        raise _kv_error(error.value) from None


class Bucket:
    """A key-value bucket (``wasi:keyvalue``): keys are strings, values bytes.

    A call reads the bucket as it was when the call began (a query the cluster
    runs: when it was planned), plus its own writes; writes need a
    ``read-write`` grant and are made only by statements the frontend runs.
    """

    def __init__(self, name, handle):
        self.name = name
        self._handle = handle

    def get(self, key):
        """The value of ``key`` (bytes), or None."""
        return _kv(self._handle.get, key)

    def set(self, key, value):
        """Sets ``key`` to ``value`` (bytes, or a str written as UTF-8)."""
        _kv(self._handle.set, key, value.encode() if isinstance(value, str) else bytes(value))

    def delete(self, key):
        _kv(self._handle.delete, key)

    def exists(self, key):
        return _kv(self._handle.exists, key)

    def keys(self):
        """Every key, in order (read page by page)."""
        cursor = None
        while True:
            page = _kv(self._handle.list_keys, cursor)
            yield from page.keys
            if page.cursor is None:
                return
            cursor = page.cursor

    def increment(self, key, delta=1):
        """Adds ``delta`` to the counter ``key`` holds (decimal text; 0 when
        absent) and returns the new count."""
        return _kv(_atomics.increment, self._handle, key, delta)

    def get_many(self, keys):
        """A dict of the keys that have values."""
        found = _kv(_batch.get_many, self._handle, list(keys))
        return dict(pair for pair in found if pair is not None)


def open_bucket(name):
    """The bucket ``name``, if the function's definition grants it
    (``SET quiver.wasm.keyvalue = 'name:read'``); else raises KeyValueError."""
    if _store is None:
        raise KeyValueError(
            "this module was built without key-value buckets: build it with -w udf-keyvalue"
        )
    try:
        return Bucket(name, _store.open(name))
    except Err as error:
        raise KeyValueError(f"cannot open bucket {name}: {_kv_error(error.value)}") from None
