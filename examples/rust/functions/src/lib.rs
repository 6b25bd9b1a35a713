//! Example Quiver functions: each is an ordinary Rust function.

use quiver_udf::{
    Aggregate, Column, ColumnBuilder, Date, Decimal, RawFunction, RowError, SqlType, Timestamp,
};
use sha2::{Digest, Sha256};

quiver_udf::functions! {
    /// Greatest common divisor (numeric).
    fn gcd(a: i64, b: i64) -> i64 {
        let (mut a, mut b) = (a.unsigned_abs(), b.unsigned_abs());
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a as i64
    }

    /// Upper-cases text; null stays null (string, nullable).
    fn upper(s: Option<&str>) -> Option<String> {
        s.map(str::to_uppercase)
    }

    /// Null becomes zero: called for null rows too (nullable argument).
    fn zero_if_null(x: Option<f64>) -> f64 {
        x.unwrap_or(0.0)
    }

    /// Integer division that reports a row error for a zero divisor.
    fn checked_div(a: i64, b: i64) -> Result<i64, String> {
        a.checked_div(b).ok_or_else(|| format!("cannot divide {a} by {b}"))
    }

    /// SHA-256 of text, hex encoded (heavier work per row).
    fn sha256_hex(s: &str) -> String {
        let digest = Sha256::digest(s.as_bytes());
        let mut hex = String::with_capacity(64);
        for byte in digest {
            hex.push(char::from_digit((byte >> 4) as u32, 16).unwrap_or('0'));
            hex.push(char::from_digit((byte & 15) as u32, 16).unwrap_or('0'));
        }
        hex
    }

    /// x + 1 over double precision (for the benchmark).
    fn add_one(x: f64) -> f64 {
        x + 1.0
    }

    /// x * 2 + 1 over bigint (for the benchmark).
    fn mul2_add1(x: i64) -> i64 {
        x.wrapping_mul(2).wrapping_add(1)
    }

    /// Every other type, one function each.
    fn negate_bool(b: bool) -> bool {
        !b
    }
    fn tiny_double(x: i8) -> i8 {
        x.wrapping_mul(2)
    }
    fn small_double(x: i16) -> i16 {
        x.wrapping_mul(2)
    }
    fn int_double(x: i32) -> i32 {
        x.wrapping_mul(2)
    }
    fn real_half(x: f32) -> f32 {
        x / 2.0
    }
    fn bytes_reversed(b: &[u8]) -> Vec<u8> {
        b.iter().rev().copied().collect()
    }
    fn next_day(d: Date) -> Date {
        Date(d.0 + 1)
    }
    fn plus_hour(t: Timestamp) -> Timestamp {
        Timestamp(t.0 + 3_600_000_000)
    }
    fn add_cent(x: Decimal<2>) -> Decimal<2> {
        Decimal(x.0 + 1)
    }

    @raw first_non_null = FirstNonNull;

    // Median of double precision values, from a mergeable sketch (exact
    // up to 1,000 distinct values per group).
    @aggregate median_sketch(x: f64) = Median;
    // The `p` percentile (0 to 1, interpolated like `percentile_cont`)
    // from the same sketch.
    @aggregate percentile_sketch(x: f64, p: f64) = Percentile;
    // The values joined by a separator, sorted (string_agg with a
    // deterministic order).
    @aggregate sorted_string_agg(value: &str, separator: &str) = SortedJoin;
    // Sample variance, by Welford's method merged with Chan et al.'s
    // formula: no catastrophic cancellation on large offsets.
    @aggregate welford_var_samp(x: f64) = Welford;
    // Average of double precision values (for the benchmark).
    @aggregate wasm_avg(x: f64) = Average;
    // Sum of bigint values (for the benchmark).
    @aggregate wasm_sum(x: i64) = Sum;

    // `start`, `start + step`, ... up to `stop` (like generate_series).
    @table series(start: i64, stop: i64, step: i64) -> (n: i64) {
        let forward = step > 0;
        let mut next = Some(start);
        std::iter::from_fn(move || {
            let n = next?;
            let inside = if forward { n <= stop } else { step < 0 && n >= stop };
            if !inside {
                return None;
            }
            next = n.checked_add(step);
            Some((n,))
        })
    }

    // The parts of `text` between `separator`s, numbered from 1.
    @table split_rows(text: &str, separator: &str) -> (part: String, n: i32) {
        let parts: Vec<String> = if separator.is_empty() {
            vec![text.to_owned()]
        } else {
            text.split(separator).map(str::to_owned).collect()
        };
        parts.into_iter().zip(1..).map(|(part, n)| (part, n))
    }

    // The fields of CSV text (RFC 4180 quoting), one row per field.
    @table csv_rows(text: &str) -> (line: i32, field: i32, value: String) {
        parse_csv(text)
            .into_iter()
            .zip(1..)
            .flat_map(|(fields, line)| {
                fields.into_iter().zip(1..).map(move |(value, field)| (line, field, value))
            })
    }
}

/// Records of CSV text: fields separated by commas, records by newlines;
/// double quotes quote a field, `""` inside one is a quote.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !record.is_empty() {
        record.push(field);
        records.push(record);
    }
    records
}

/// Little-endian numbers in and out of saved states.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("truncated aggregate state".into());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn f64(&mut self) -> Result<f64, String> {
        Ok(f64::from_le_bytes(self.take(8)?.try_into().map_err(|_| "bad state")?))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().map_err(|_| "bad state")?))
    }
    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_le_bytes(self.take(8)?.try_into().map_err(|_| "bad state")?))
    }
    fn text(&mut self) -> Result<String, String> {
        let n = self.u64()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|e| e.to_string())
    }
    fn done(&self) -> Result<(), String> {
        if self.0.is_empty() { Ok(()) } else { Err("trailing bytes in aggregate state".into()) }
    }
}

fn put_text(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// A mergeable quantile sketch: (value, weight) centroids, exact while
/// there are at most `CAPACITY` distinct values, neighbours merged beyond.
#[derive(Default)]
struct Sketch {
    centroids: Vec<(f64, f64)>,
    /// Centroids appended since the last compression (unsorted tail).
    pending: usize,
}

const CAPACITY: usize = 1000;

impl Sketch {
    fn add(&mut self, value: f64, weight: f64) {
        if value.is_nan() {
            return;
        }
        self.centroids.push((value, weight));
        self.pending += 1;
        if self.pending >= CAPACITY {
            self.compress();
        }
    }

    /// Sorts, merges equal values, and halves the centroids while there
    /// are more than `CAPACITY`.
    fn compress(&mut self) {
        self.pending = 0;
        self.centroids.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut merged: Vec<(f64, f64)> = Vec::with_capacity(self.centroids.len());
        for &(v, w) in &self.centroids {
            match merged.last_mut() {
                Some(last) if last.0 == v => last.1 += w,
                _ => merged.push((v, w)),
            }
        }
        while merged.len() > CAPACITY {
            merged = merged
                .chunks(2)
                .map(|pair| {
                    let w: f64 = pair.iter().map(|c| c.1).sum();
                    (pair.iter().map(|c| c.0 * c.1).sum::<f64>() / w, w)
                })
                .collect();
        }
        self.centroids = merged;
    }

    fn merge(&mut self, other: Sketch) {
        for (v, w) in other.centroids {
            self.add(v, w);
        }
    }

    /// The `p` quantile, interpolated between neighbouring ranks.
    fn quantile(&self, p: f64) -> Option<f64> {
        let mut sorted = self.centroids.clone();
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
        let total: f64 = sorted.iter().map(|c| c.1).sum();
        if total == 0.0 {
            return None;
        }
        let position = p.clamp(0.0, 1.0) * (total - 1.0);
        let at = |rank: f64| {
            let mut seen = 0.0;
            for &(v, w) in &sorted {
                seen += w;
                if rank < seen {
                    return v;
                }
            }
            sorted[sorted.len() - 1].0
        };
        let (low, high) = (position.floor(), position.ceil());
        let (a, b) = (at(low), at(high));
        Some(a + (b - a) * (position - low))
    }

    fn save(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.centroids.len() as u64).to_le_bytes());
        for (v, w) in &self.centroids {
            out.extend_from_slice(&v.to_le_bytes());
            out.extend_from_slice(&w.to_le_bytes());
        }
    }

    fn load(r: &mut Reader) -> Result<Self, String> {
        let n = r.u64()? as usize;
        let mut sketch = Sketch::default();
        for _ in 0..n {
            let (v, w) = (r.f64()?, r.f64()?);
            sketch.centroids.push((v, w));
        }
        Ok(sketch)
    }
}

#[derive(Default)]
struct Median(Sketch);

impl Aggregate for Median {
    type Input<'a> = f64;
    type Output = Option<f64>;
    fn update(&mut self, x: f64) {
        self.0.add(x, 1.0)
    }
    fn merge(&mut self, other: Self) {
        self.0.merge(other.0)
    }
    fn finish(&self) -> Option<f64> {
        self.0.quantile(0.5)
    }
    fn save(&self, out: &mut Vec<u8>) {
        self.0.save(out)
    }
    fn load(bytes: &[u8]) -> Result<Self, String> {
        let mut r = Reader(bytes);
        let sketch = Sketch::load(&mut r)?;
        r.done()?;
        Ok(Median(sketch))
    }
}

#[derive(Default)]
struct Percentile {
    sketch: Sketch,
    p: Option<f64>,
}

impl Aggregate for Percentile {
    type Input<'a> = (f64, f64);
    type Output = Option<f64>;
    fn update(&mut self, (x, p): (f64, f64)) {
        self.p.get_or_insert(p);
        self.sketch.add(x, 1.0)
    }
    fn merge(&mut self, other: Self) {
        self.p = self.p.or(other.p);
        self.sketch.merge(other.sketch)
    }
    fn finish(&self) -> Option<f64> {
        self.sketch.quantile(self.p?)
    }
    fn save(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.p.unwrap_or(f64::NAN).to_le_bytes());
        self.sketch.save(out)
    }
    fn load(bytes: &[u8]) -> Result<Self, String> {
        let mut r = Reader(bytes);
        let p = Some(r.f64()?).filter(|p| !p.is_nan());
        let sketch = Sketch::load(&mut r)?;
        r.done()?;
        Ok(Percentile { sketch, p })
    }
}

#[derive(Default)]
struct SortedJoin {
    values: Vec<String>,
    separator: Option<String>,
}

impl Aggregate for SortedJoin {
    type Input<'a> = (&'a str, &'a str);
    type Output = Option<String>;
    fn update(&mut self, (value, separator): (&str, &str)) {
        if self.separator.is_none() {
            self.separator = Some(separator.to_owned());
        }
        self.values.push(value.to_owned());
    }
    fn merge(&mut self, other: Self) {
        self.separator = self.separator.take().or(other.separator);
        self.values.extend(other.values);
    }
    fn finish(&self) -> Option<String> {
        if self.values.is_empty() {
            return None;
        }
        let mut values = self.values.clone();
        values.sort();
        Some(values.join(self.separator.as_deref().unwrap_or_default()))
    }
    fn save(&self, out: &mut Vec<u8>) {
        put_text(out, self.separator.as_deref().unwrap_or_default());
        out.extend_from_slice(&(self.values.len() as u64).to_le_bytes());
        for v in &self.values {
            put_text(out, v);
        }
    }
    fn load(bytes: &[u8]) -> Result<Self, String> {
        let mut r = Reader(bytes);
        let separator = r.text()?;
        let n = r.u64()? as usize;
        let values = (0..n).map(|_| r.text()).collect::<Result<Vec<_>, _>>()?;
        r.done()?;
        Ok(SortedJoin {
            separator: (!values.is_empty()).then_some(separator),
            values,
        })
    }
}

#[derive(Default)]
struct Welford {
    n: u64,
    mean: f64,
    m2: f64,
}

impl Aggregate for Welford {
    type Input<'a> = f64;
    type Output = Option<f64>;
    fn update(&mut self, x: f64) {
        self.n += 1;
        let delta = x - self.mean;
        self.mean += delta / self.n as f64;
        self.m2 += delta * (x - self.mean);
    }
    fn merge(&mut self, other: Self) {
        if other.n == 0 {
            return;
        }
        let n = self.n + other.n;
        let delta = other.mean - self.mean;
        self.mean += delta * other.n as f64 / n as f64;
        self.m2 += other.m2 + delta * delta * (self.n as f64 * other.n as f64) / n as f64;
        self.n = n;
    }
    fn finish(&self) -> Option<f64> {
        (self.n > 1).then(|| self.m2 / (self.n - 1) as f64)
    }
    fn save(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.n.to_le_bytes());
        out.extend_from_slice(&self.mean.to_le_bytes());
        out.extend_from_slice(&self.m2.to_le_bytes());
    }
    fn load(bytes: &[u8]) -> Result<Self, String> {
        let mut r = Reader(bytes);
        let state = Welford { n: r.u64()?, mean: r.f64()?, m2: r.f64()? };
        r.done()?;
        Ok(state)
    }
}

#[derive(Default)]
struct Average {
    sum: f64,
    count: u64,
}

impl Aggregate for Average {
    type Input<'a> = f64;
    type Output = Option<f64>;
    fn update(&mut self, x: f64) {
        self.sum += x;
        self.count += 1;
    }
    fn merge(&mut self, other: Self) {
        self.sum += other.sum;
        self.count += other.count;
    }
    fn finish(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64)
    }
    fn save(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.sum.to_le_bytes());
        out.extend_from_slice(&self.count.to_le_bytes());
    }
    fn load(bytes: &[u8]) -> Result<Self, String> {
        let mut r = Reader(bytes);
        let state = Average { sum: r.f64()?, count: r.u64()? };
        r.done()?;
        Ok(state)
    }
}

#[derive(Default)]
struct Sum {
    sum: i64,
    /// Whether there was a row (no rows: NULL).
    any: bool,
    overflow: bool,
}

impl Sum {
    /// Adds without a branch (wrapping, with the overflow remembered), so
    /// that the SDK's loop over a batch vectorizes.
    #[inline]
    fn add(&mut self, x: i64) {
        let sum = self.sum.wrapping_add(x);
        // Both operands' signs differ from the sum's: it wrapped around.
        self.overflow |= ((self.sum ^ sum) & (x ^ sum)) < 0;
        self.sum = sum;
        self.any = true;
    }
}

impl Aggregate for Sum {
    type Input<'a> = i64;
    /// An overflow is an error, as in PostgreSQL.
    type Output = Result<Option<i64>, String>;
    #[inline]
    fn update(&mut self, x: i64) {
        self.add(x)
    }
    fn merge(&mut self, other: Self) {
        self.overflow |= other.overflow;
        if other.any {
            self.add(other.sum);
        }
    }
    fn finish(&self) -> Result<Option<i64>, String> {
        if self.overflow {
            return Err("bigint out of range".into());
        }
        Ok(self.any.then_some(self.sum))
    }
    fn save(&self, out: &mut Vec<u8>) {
        out.push(u8::from(self.overflow));
        if self.any {
            out.extend_from_slice(&self.sum.to_le_bytes());
        }
    }
    fn load(bytes: &[u8]) -> Result<Self, String> {
        let mut r = Reader(bytes);
        let overflow = r.take(1)? == [1];
        let any = !r.0.is_empty();
        let sum = if any { r.i64()? } else { 0 };
        r.done()?;
        Ok(Sum { sum, any, overflow })
    }
}

/// `first_non_null(anyelement, anyelement) -> anyelement`: the first argument
/// unless it is null, for arguments of any one type (polymorphic).
struct FirstNonNull;

impl RawFunction for FirstNonNull {
    fn return_type(args: &[SqlType]) -> Result<SqlType, String> {
        match args {
            [a, b] if a == b => Ok(*a),
            [a, b] => Err(format!("arguments must have one type, not {a:?} and {b:?}")),
            _ => Err("takes two arguments".into()),
        }
    }

    fn call(args: &[Column], rows: usize) -> Result<Column, RowError> {
        let [a, b] = args else {
            return Err(RowError { row: 0, message: "takes two arguments".into() });
        };
        let t = type_of(a);
        let mut out = ColumnBuilder::new(t, rows);
        for row in 0..rows {
            match a.value(row).or_else(|| b.value(row)) {
                Some(v) => out
                    .push(v)
                    .map_err(|message| RowError { row: row as u32, message })?,
                None => out.push_null(),
            }
        }
        Ok(out.finish())
    }
}

fn type_of(c: &Column) -> SqlType {
    use quiver_udf::Values;
    match &c.values {
        Values::Boolean(_) => SqlType::Boolean,
        Values::Int8(_) => SqlType::Int8,
        Values::Int16(_) => SqlType::Int16,
        Values::Int32(_) => SqlType::Int32,
        Values::Int64(_) => SqlType::Int64,
        Values::Float32(_) => SqlType::Float32,
        Values::Float64(_) => SqlType::Float64,
        Values::Text(_) => SqlType::Text,
        Values::Bytea(_) => SqlType::Bytea,
        Values::Date(_) => SqlType::Date,
        Values::Timestamp(_) => SqlType::Timestamp,
        // The scale is the caller's: the host knows it from the declared type.
        Values::Decimal(_) => SqlType::Decimal(0),
    }
}
