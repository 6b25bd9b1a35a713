// Example Quiver functions in JavaScript: the same functions as the Rust
// example (examples/rust), built into a component by `npm run build` in this
// folder. See the guide, sdk/js/README.md.

import { aggregateFunction, scalarFunction, tableFunction } from "./quiver_udf.js";
export { aggregate, scalar, table } from "./quiver_udf.js"; // the component's exports

// Greatest common divisor (numeric): bigint columns are JavaScript bigints.
scalarFunction("gcd", ["bigint", "bigint"], "bigint", (a, b) => {
  a = a < 0n ? -a : a;
  b = b < 0n ? -b : b;
  while (b !== 0n) [a, b] = [b, a % b];
  return a;
});

// x * 2 + 1 (the benchmark's); beyond bigint it is an error.
scalarFunction("mul2_add1", ["bigint"], "bigint", (x) => x * 2n + 1n);

// Upper-cases every character (string); NULL stays NULL.
scalarFunction("upper", ["text"], "text", (s) => s.toUpperCase());

// The same two, called once per batch: arrays in, an array out. A
// BigInt64Array result is taken as it is (its values wrap around as the
// typed array's do).
scalarFunction("mul2_add1_batch", ["bigint"], "bigint", (xs) => xs.map((x) => x * 2n + 1n), {
  vectorized: true,
});
scalarFunction("upper_batch", ["text"], "text", (ss) => ss.map((s) => s.toUpperCase()), {
  vectorized: true,
});

// The sum of a bigint column; NULL for no rows, an error beyond bigint.
aggregateFunction("wasm_sum", ["bigint"], "bigint", class {
  total = null;
  update(x) {
    this.total = this.total === null ? x : this.total + x;
  }
  merge(other) {
    if (other.total !== null) this.update(other.total);
  }
  finish() {
    return this.total;
  }
});

// start, start + step, ... up to stop (like generate_series).
tableFunction("series", ["bigint", "bigint", "bigint"], ["bigint"], function* (start, stop, step) {
  for (let n = start; (step > 0n && n <= stop) || (step < 0n && n >= stop); n += step) yield n;
});

// Beyond the functions every language's example has: what the JavaScript SDK adds.

// NULL becomes zero: { strict: false } passes null to the function.
scalarFunction("zero_if_null", ["double precision"], "double precision", (x) => x ?? 0, { strict: false });

// An exception fails the query, naming the row and the exception.
scalarFunction("parse_int", ["text"], "bigint", (s) => {
  if (!/^\s*[-+]?\d+\s*$/.test(s)) throw new RangeError(`not an integer: ${JSON.stringify(s)}`);
  return BigInt(s.trim());
});

// Dates arrive as Date objects (midnight UTC).
scalarFunction("days_between", ["date", "date"], "integer", (a, b) => (b - a) / 86_400_000);

// The most frequent value (the smallest of ties): a state's fields travel as JSON.
aggregateFunction("most_common", ["text"], "text", class {
  counts = {};
  update(value) {
    this.counts[value] = (this.counts[value] ?? 0) + 1;
  }
  merge(other) {
    for (const [value, n] of Object.entries(other.counts)) this.counts[value] = (this.counts[value] ?? 0) + n;
  }
  finish() {
    const entries = Object.entries(this.counts);
    if (entries.length === 0) return null;
    entries.sort(([a, m], [b, n]) => n - m || (a < b ? -1 : a > b ? 1 : 0));
    return entries[0][0];
  }
});

// Rows of several columns are arrays.
tableFunction("words", ["text"], ["integer", "text"], function* (text) {
  let position = 0;
  for (const word of text.split(/\s+/).filter(Boolean)) yield [++position, word];
});
