"""Example Quiver functions in Python: the same functions as the Rust example
(examples/rust), built into a component by the Makefile beside this file.
See the guide, sdk/python/README.md."""

from quiver_udf import aggregate, scalar, table
from quiver_udf import Aggregate, Scalar, Table  # noqa: F401 (the component's exports)


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
