"""Example Quiver functions in Python: the same functions as the Rust example
(examples/rust), built into a component by the Makefile beside this file.
See the guide, sdk/python/README.md."""

import collections
import datetime
import json

from quiver_udf import aggregate, open_bucket, scalar, table, transform
from quiver_udf import Aggregate, Scalar, Table, Transform  # noqa: F401 (the component's exports)


@scalar(args=["bigint", "bigint"], returns="bigint")
def gcd(a, b):
    """Greatest common divisor (numeric)."""
    a, b = abs(a), abs(b)
    while b:
        a, b = b, a % b
    return a


@scalar(args=["bigint"], returns="bigint")
def mul2_add1(x):
    """x * 2 + 1 (the benchmark's); beyond bigint it is an error."""
    return x * 2 + 1


@scalar(args=["text"], returns="text")
def upper(s):
    """Upper-cases every character (string); NULL stays NULL."""
    return s.upper()


@aggregate(args=["bigint"], returns="bigint", name="wasm_sum")
class Sum:
    """The sum of a bigint column; NULL for no rows, an error beyond bigint."""

    def __init__(self):
        self.total = None

    def update(self, x):
        self.total = x if self.total is None else self.total + x

    def merge(self, other):
        if other.total is not None:
            self.update(other.total)

    def finish(self):
        return self.total


@table(args=["bigint", "bigint", "bigint"], columns=["bigint"])
def series(start, stop, step):
    """start, start + step, ... up to stop (like generate_series)."""
    n = start
    while (step > 0 and n <= stop) or (step < 0 and n >= stop):
        yield n
        n += step


# Beyond the functions every language's example has: what the Python SDK adds.


@scalar(args=["double precision"], returns="double precision", strict=False)
def zero_if_null(x):
    """NULL becomes zero: strict=False passes None to the function."""
    return 0.0 if x is None else x


@scalar(args=["text"], returns="bigint")
def parse_int(s):
    """A Python exception fails the query, naming the row and the exception."""
    return int(s)


@scalar(args=["date", "date"], returns="integer")
def days_between(a, b):
    """Dates arrive as datetime.date."""
    return (b - a).days


@scalar(args=["timestamp"], returns="timestamp")
def next_hour(ts):
    """Timestamps arrive as datetime.datetime (no time zone)."""
    return ts.replace(minute=0, second=0, microsecond=0) + datetime.timedelta(hours=1)


@aggregate(args=["text"], returns="text")
class most_common:
    """The most frequent value (the smallest of ties): a state can be any
    picklable object, here a Counter."""

    def __init__(self):
        self.counts = collections.Counter()

    def update(self, value):
        self.counts[value] += 1

    def merge(self, other):
        self.counts.update(other.counts)

    def finish(self):
        if not self.counts:
            return None
        return min(self.counts.items(), key=lambda item: (-item[1], item[0]))[0]


@table(args=["text"], columns=["integer", "text"])
def words(text):
    """Rows of several columns are tuples."""
    for position, word in enumerate(text.split(), start=1):
        yield position, word


@scalar(args=["bigint"], returns="bigint", vectorized=True)
def mul2_add1_batch(xs):
    """mul2_add1 called once per batch: a list in, a list out (vectorized=True)."""
    return [x * 2 + 1 for x in xs]


@scalar(args=["text"], returns="text", vectorized=True)
def upper_batch(strings):
    """upper, vectorized."""
    return [s.upper() for s in strings]


@scalar(args=["double precision", "text"], returns="double precision")
def to_usd(amount, currency):
    """`amount` in US dollars at the rate bucket `rates` holds for
    `currency` (needs `SET quiver.wasm.keyvalue = 'rates:read'`)."""
    rate = open_bucket("rates").get(currency)
    if rate is None:
        raise ValueError(f"no rate for currency {currency}")
    return amount * float(bytes(rate).decode())


@scalar(args=["text"], returns="bigint")
def hit(key):
    """Counts a hit of `key` in bucket `hits` (needs `hits:read-write`)."""
    return open_bucket("hits").increment(key)


@transform(args=["bigint"])
class sessionize:
    """sessionize(TABLE clicks PARTITION BY user_id ORDER BY ts, gap_seconds):
    every row, with `session`, the number of its key's session (from 1): a new
    one after more than gap_seconds without a click. Reads the time from `ts`."""

    @staticmethod
    def describe(columns, gap):
        if ("ts", "timestamp") not in columns:
            raise ValueError("sessionize needs a timestamp column ts")
        return columns + [("session", "bigint")]

    def __init__(self, columns, gap):
        self.ts = [name for name, _ in columns].index("ts")
        self.gap = datetime.timedelta(seconds=gap)
        self.last = None
        self.session = 1

    def process(self, rows):
        for row in rows:
            ts = row[self.ts]
            if ts is not None:
                if self.last is not None and ts - self.last > self.gap:
                    self.session += 1
                self.last = ts
            yield row + (self.session,)


@transform(args=["text"])
class explode_json:
    """explode_json(TABLE t, 'column'): a row per element of the JSON array in
    `column`, with the other columns and `item` (a string as its text, else
    JSON). A NULL gives no rows."""

    @staticmethod
    def describe(columns, column):
        names = [name for name, _ in columns]
        if column not in names:
            raise ValueError(f"the input has no column {column}")
        return [c for c in columns if c[0] != column] + [("item", "text")]

    def __init__(self, columns, column):
        self.column = [name for name, _ in columns].index(column)

    def process(self, rows):
        c = self.column
        for row in rows:
            if row[c] is None:
                continue
            for item in json.loads(row[c]):
                text = item if isinstance(item, str) else json.dumps(item, separators=(",", ":"))
                yield row[:c] + row[c + 1:] + (text,)
