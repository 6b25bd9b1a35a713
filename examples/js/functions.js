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
