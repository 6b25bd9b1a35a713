// Write Quiver functions in JavaScript.
//
// Register plain JavaScript functions and classes; componentize-js turns the
// module into a WebAssembly component of the `quiver:udf` world
// (wit/udf.wit), and this module implements that world over them:
//
//   import { scalarFunction } from "./quiver_udf.js";
//   export { scalar, aggregate, table } from "./quiver_udf.js"; // the exports
//
//   scalarFunction("add_tax", ["double precision"], "double precision", (price) => price * 1.2);
//
// Functions get and return JavaScript values, one row at a time: boolean,
// number, bigint (for `bigint` columns), string, Uint8Array and Date, and
// null for NULL. See sdk/js/README.md.

const EPOCH_DAY_MS = 86_400_000;

/** A SQL type: its WIT tag, its name, how its column values are read and written. */
function intType(name, tag, bits, Typed) {
  const lo = -(2 ** (bits - 1));
  const hi = 2 ** (bits - 1) - 1;
  return {
    name,
    tag,
    typed: Typed,
    read: (values, i) => values[i],
    check: (v) =>
      typeof v === "bigint" ? (v >= BigInt(lo) && v <= BigInt(hi) ? null : `${name} out of range`)
      : Number.isInteger(v) ? (v >= lo && v <= hi ? null : `${name} out of range`)
      : `${describe(v)} is not ${name}`,
    write: (values) => Typed.from(values, (v) => (v === null ? 0 : Number(v))),
  };
}

function varType(name, tag, decode, encode, check) {
  return {
    name,
    tag,
    read: (values, i) => decode(values.data.subarray(values.offsets[i], values.offsets[i + 1])),
    check,
    write: (values) => {
      const chunks = values.map((v) => (v === null ? new Uint8Array(0) : encode(v)));
      const offsets = new Uint32Array(values.length + 1);
      let end = 0;
      chunks.forEach((chunk, i) => {
        end += chunk.length;
        offsets[i + 1] = end;
      });
      const data = new Uint8Array(end);
      chunks.forEach((chunk, i) => data.set(chunk, offsets[i]));
      return { offsets, data };
    },
  };
}

const utf8 = { decoder: new TextDecoder(), encoder: new TextEncoder() };
const isDate = (v) => v instanceof Date && !Number.isNaN(v.getTime());

const TYPES = [
  {
    name: "boolean",
    tag: "boolean",
    read: (values, i) => values[i],
    check: (v) => (typeof v === "boolean" ? null : `${describe(v)} is not boolean`),
    write: (values) => values.map((v) => v === true),
  },
  intType("tinyint", "int8", 8, Int8Array),
  intType("smallint", "int16", 16, Int16Array),
  intType("integer", "int32", 32, Int32Array),
  {
    name: "bigint",
    tag: "int64",
    typed: BigInt64Array,
    read: (values, i) => BigInt(values[i]),
    check: (v) => {
      if (typeof v !== "bigint" && !Number.isSafeInteger(v)) return `${describe(v)} is not bigint`;
      const b = BigInt(v);
      return b >= -(2n ** 63n) && b < 2n ** 63n ? null : "bigint out of range";
    },
    write: (values) => BigInt64Array.from(values, (v) => (v === null ? 0n : BigInt(v))),
  },
  floatType("real", "float32", Float32Array),
  floatType("double precision", "float64", Float64Array),
  varType("text", "text", (b) => utf8.decoder.decode(b), (s) => utf8.encoder.encode(s),
    (v) => (typeof v === "string" ? null : `${describe(v)} is not text`)),
  varType("bytea", "bytea", (b) => b.slice(), (b) => b,
    (v) => (v instanceof Uint8Array ? null : `${describe(v)} is not bytea`)),
  {
    name: "date",
    tag: "date",
    read: (values, i) => new Date(values[i] * EPOCH_DAY_MS),
    check: (v) => (isDate(v) ? null : `${describe(v)} is not date`),
    write: (values) =>
      Int32Array.from(values, (v) => (v === null ? 0 : Math.floor(v.getTime() / EPOCH_DAY_MS))),
  },
  {
    name: "timestamp",
    tag: "timestamp",
    read: (values, i) => new Date(Number(BigInt(values[i]) / 1000n)),
    check: (v) => (isDate(v) ? null : `${describe(v)} is not timestamp`),
    write: (values) =>
      BigInt64Array.from(values, (v) => (v === null ? 0n : BigInt(v.getTime()) * 1000n)),
  },
];

function floatType(name, tag, Typed) {
  return {
    name,
    tag,
    typed: Typed,
    read: (values, i) => values[i],
    check: (v) => (typeof v === "number" ? null : `${describe(v)} is not ${name}`),
    write: (values) => Typed.from(values, (v) => (v === null ? 0 : v)),
  };
}

// The names PostgreSQL gives these types, as written in signatures.
const ALIASES = {
  bool: "boolean",
  int2: "smallint",
  int: "integer",
  int4: "integer",
  int8: "bigint",
  float4: "real",
  float8: "double precision",
  double: "double precision",
  varchar: "text",
  "timestamp without time zone": "timestamp",
};

function describe(v) {
  if (v === undefined) return "undefined";
  if (typeof v === "object") return v?.constructor?.name ?? "object";
  return typeof v;
}

function sqlType(name) {
  const key = String(name).toLowerCase().split(/\s+/).filter(Boolean).join(" ");
  const type = TYPES.find((t) => t.name === (ALIASES[key] ?? key));
  if (!type) {
    throw new Error(`unknown SQL type ${JSON.stringify(name)}; use one of: ${TYPES.map((t) => t.name).join(", ")}`);
  }
  return type;
}

const typeName = (wit) => TYPES.find((t) => t.tag === wit.tag)?.name ?? wit.tag;

/** What a registration recorded: a name, a signature and the JavaScript object. */
function define(registry, kind, name, args, options) {
  if (registry.has(name)) throw new Error(`two ${kind} functions are named ${JSON.stringify(name)}`);
  const f = { name, args: args.map(sqlType), strict: options?.strict ?? true };
  registry.set(name, f);
  return f;
}

/** Throws the error message unless `given` (WIT types) is this signature. */
function check(f, given) {
  const same = given.length === f.args.length && given.every((t, i) => t.tag === f.args[i].tag);
  if (!same) {
    throw `${f.name} takes (${f.args.map((t) => t.name).join(", ")}), not (${given.map(typeName).join(", ")})`;
  }
}

const SCALARS = new Map();
const AGGREGATES = new Map();
const TABLES = new Map();

/**
 * A scalar function: `fn` is called once per row with one value per argument.
 * With `strict` (the default), a row with a NULL argument gives NULL without a
 * call; `{ strict: false }` passes null instead.
 *
 * `{ vectorized: true }`: `fn` is called once per batch of rows instead, with
 * one array per argument (a typed array for numbers: BigInt64Array for
 * `bigint`, Float64Array for `double precision`, ...), and returns an array
 * of as many results; a typed array of the result's type is taken as it is.
 * In a strict function the rows with a NULL argument hold a placeholder (0,
 * "", ...) and their results are ignored: they are NULL.
 */
export function scalarFunction(name, args, returns, fn, options) {
  const f = define(SCALARS, "scalar", name, args, options);
  f.returns = sqlType(returns);
  f.fn = fn;
  f.vectorized = options?.vectorized ?? false;
}

/**
 * An aggregate: `cls` is a class whose instances are the states of groups.
 * `new cls()` is a new group, `update(...values)` adds one row, `merge(other)`
 * adds another state of the same group, `finish()` gives the result. States
 * travel between machines as JSON of their fields (bigints included). With
 * `strict` (the default), rows with a NULL argument are skipped.
 */
export function aggregateFunction(name, args, returns, cls, options) {
  for (const method of ["update", "merge", "finish"]) {
    if (typeof cls.prototype?.[method] !== "function") {
      throw new Error(`aggregate ${name} needs a ${method} method`);
    }
  }
  const f = define(AGGREGATES, "aggregate", name, args, options);
  f.returns = sqlType(returns);
  f.cls = cls;
}

/**
 * A table function: called once with its arguments, `fn` returns an iterable
 * (usually it is a generator) of rows: arrays, or single values for one column.
 */
export function tableFunction(name, args, columns, fn) {
  const f = define(TABLES, "table", name, args, { strict: false });
  f.columns = columns.map(sqlType);
  f.fn = fn;
}

// Columns in and out.

/** A WIT column as an array of JavaScript values, null for NULL. */
function readColumn(column, type, rows) {
  const out = new Array(rows);
  const validity = column.validity;
  for (let i = 0; i < rows; i++) {
    out[i] = validity && !((validity[i >> 3] >> (i & 7)) & 1) ? null : type.read(column.values.val, i);
  }
  return out;
}

/** JavaScript values as a WIT column; a value of the wrong type or range fails its row. */
function writeColumn(values, type) {
  let validity;
  values.forEach((v, i) => {
    if (v === null || v === undefined) {
      values[i] = null;
      validity ??= new Uint8Array((values.length + 7) >> 3).fill(0xff);
      validity[i >> 3] &= ~(1 << (i & 7));
      return;
    }
    const problem = type.check(v);
    if (problem) throw { row: i, message: problem };
  });
  return { validity, values: { tag: type.tag, val: type.write(values) } };
}

/** A whole argument column for a vectorized function. */
function readAll(column, type, rows, strict) {
  if (!strict) return readColumn(column, type, rows);
  const raw = column.values.val;
  if (type.typed && raw instanceof type.typed) return raw;
  return Array.from({ length: rows }, (_, i) => type.read(raw, i));
}

/** The rows valid in every one of `bitmaps` (undefined: no NULL), or undefined. */
function validInAll(bitmaps, rows) {
  let all;
  for (const bits of bitmaps) {
    if (!bits) continue;
    all ??= new Uint8Array((rows + 7) >> 3).fill(0xff);
    for (let i = 0; i < all.length; i++) all[i] &= bits[i] ?? 0;
  }
  return all;
}

/** A vectorized scalar function over a batch: arrays in, an array out. */
function callVectorized(f, args, rows) {
  const columns = f.args.map((type, c) => readAll(args[c], type, rows, f.strict));
  let out;
  try {
    out = f.fn(...columns);
  } catch (error) {
    throw { row: 0, message: `${message(error)} (in a batch of ${rows} rows from this one)` };
  }
  if (out?.length !== rows) {
    throw { row: 0, message: `${f.name} returned ${out?.length} values for ${rows} rows` };
  }
  const type = f.returns;
  const column = type.typed && out instanceof type.typed
    ? { validity: undefined, values: { tag: type.tag, val: out } }
    : writeColumn(Array.from(out), type);
  if (f.strict) column.validity = validInAll([...args.map((a) => a.validity), column.validity], rows);
  return column;
}

function message(error) {
  if (error instanceof Error) return error.message ? `${error.name}: ${error.message}` : error.name;
  return String(error);
}

/** The function `name` of `registry`; with `types` (WIT types), checked to take them. */
function lookup(registry, name, kind, types) {
  const f = registry.get(name);
  if (!f) throw `this module has no ${kind} named ${JSON.stringify(name)}`;
  if (types) check(f, types);
  return f;
}

/** Calls `each(row, values)` for every row of `args` (one array of values per row). */
function eachRow(f, args, rows, each) {
  const columns = f.args.map((type, c) => readColumn(args[c], type, rows));
  for (let row = 0; row < rows; row++) {
    const values = columns.map((column) => column[row]);
    try {
      each(row, values);
    } catch (error) {
      throw { row, message: message(error) };
    }
  }
}

// Aggregate states as JSON, with bigints kept exact.
const BIGINT = "$bigint";
const toJson = (state) =>
  JSON.stringify(state, (_, v) => (typeof v === "bigint" ? { [BIGINT]: v.toString() } : v));
const fromJson = (text) =>
  JSON.parse(text, (_, v) => (v && typeof v === "object" && BIGINT in v ? BigInt(v[BIGINT]) : v));

// The world's exports: the component's module re-exports these three.

export const scalar = {
  functions: () => [...SCALARS.keys()],
  returnType(name, args) {
    const f = lookup(SCALARS, name, "scalar function", args);
    return { tag: f.returns.tag };
  },
  call(name, args, rows) {
    const f = SCALARS.get(name);
    if (!f) throw { row: 0, message: `this module has no scalar function named ${JSON.stringify(name)}` };
    if (f.vectorized) return callVectorized(f, args, rows);
    const out = new Array(rows);
    eachRow(f, args, rows, (row, values) => {
      out[row] = f.strict && values.includes(null) ? null : f.fn(...values);
    });
    return writeColumn(out, f.returns);
  },
};

/** The states of an aggregate's groups: one instance of its class each. */
class Accumulator {
  constructor(f) {
    this.f = f;
    this.groups = [];
  }

  grow(count) {
    while (this.groups.length < count) this.groups.push(new this.f.cls());
  }

  update(groups, groupCount, args, rows) {
    this.grow(groupCount);
    eachRow(this.f, args, rows, (row, values) => {
      if (this.f.strict && values.includes(null)) return;
      this.groups[groups.length ? groups[row] : 0].update(...values);
    });
  }

  merge(groups, groupCount, states) {
    this.grow(groupCount);
    const text = readColumn({ values: { val: states } }, sqlType("text"), states.offsets.length - 1);
    text.forEach((json, i) => {
      try {
        const other = Object.assign(new this.f.cls(), fromJson(json));
        this.groups[groups.length ? groups[i] : 0].merge(other);
      } catch (error) {
        throw { row: i, message: message(error) };
      }
    });
  }

  state(count) {
    try {
      return sqlType("text").write(this.groups.slice(0, count).map(toJson));
    } catch (error) {
      throw `${this.f.name}: cannot serialize a state: ${message(error)}`;
    }
  }

  finish(count) {
    this.grow(count);
    const results = this.groups.slice(0, count).map((state, group) => {
      try {
        return state.finish() ?? null;
      } catch (error) {
        throw { row: group, message: message(error) };
      }
    });
    return writeColumn(results, this.f.returns);
  }

  remove(count) {
    this.groups.splice(0, count);
  }
}

export const aggregate = {
  aggregates: () => [...AGGREGATES.keys()],
  returnType(name, args) {
    const f = lookup(AGGREGATES, name, "aggregate", args);
    return { tag: f.returns.tag };
  },
  create(name, args) {
    const f = lookup(AGGREGATES, name, "aggregate", args);
    return new Accumulator(f);
  },
  Accumulator,
};

/** A running table function: its iterator, read a batch at a time. */
class Rows {
  constructor(f, iterator) {
    this.f = f;
    this.iterator = iterator;
  }

  next(maxRows) {
    const width = this.f.columns.length;
    const batch = [];
    try {
      while (batch.length < maxRows) {
        const step = this.iterator.next();
        if (step.done) break;
        batch.push(Array.isArray(step.value) ? step.value : [step.value]);
      }
    } catch (error) {
      throw { row: batch.length, message: message(error) };
    }
    if (batch.length === 0) return undefined;
    batch.forEach((row, i) => {
      if (row.length !== width) {
        throw { row: i, message: `${this.f.name} gave a row of ${row.length} values, not ${width}` };
      }
    });
    const columns = this.f.columns.map((type, c) => writeColumn(batch.map((row) => row[c] ?? null), type));
    return { columns, rows: batch.length };
  }
}

export const table = {
  tables: () => [...TABLES.keys()],
  columns(name, args) {
    const f = lookup(TABLES, name, "table function", args);
    return f.columns.map((type) => ({ tag: type.tag }));
  },
  start(name, args) {
    const f = lookup(TABLES, name, "table function");
    const values = f.args.map((type, c) => readColumn(args[c], type, 1)[0]);
    try {
      return new Rows(f, f.fn(...values)[Symbol.iterator]());
    } catch (error) {
      throw message(error);
    }
  },
  Rows,
};
