//! Example transforms: a relation in, a relation out.
//!
//! ```sql
//! CREATE FUNCTION sessionize(TABLE, bigint) RETURNS TABLE LANGUAGE wasm
//!     AS 'quiver_example_transforms.wasm', 'sessionize';
//! SELECT * FROM sessionize(TABLE clicks PARTITION BY user_id ORDER BY ts, 1800);
//! ```

use quiver_udf::{
    Batch, Column, ColumnBuilder, ColumnarTransform, Field, Output, RowError, Rows, SqlType,
    Timestamp, Transform, ValueRef, constant, position,
};

/// A row error for row `row` of the batch.
fn at(row: usize) -> impl Fn(String) -> RowError {
    move |message| RowError {
        row: row as u32,
        message,
    }
}

/// The input's columns and one more, `name` of type `ty`.
fn with_column(input: &[Field], name: &str, ty: SqlType) -> Result<Vec<Field>, String> {
    if input.iter().any(|f| f.name == name) {
        return Err(format!("the input already has a column {name}"));
    }
    let mut fields = input.to_vec();
    fields.push(Field::new(name, ty));
    Ok(fields)
}

/// `sessionize(TABLE clicks PARTITION BY user_id ORDER BY ts, gap_seconds)`:
/// every input row, with `session`, the number (from 1) of its key's
/// session: a new session starts when more than `gap_seconds` passed since
/// the key's previous row. Reads the time from the column `ts`, or else the
/// first timestamp column; a row without one stays in the current session.
struct Sessionize {
    ts: usize,
    gap: i64,
    width: usize,
    last: Option<i64>,
    session: i64,
}

impl Sessionize {
    fn time_column(input: &[Field]) -> Result<usize, String> {
        let ts = position(input, "ts").or_else(|_| {
            input
                .iter()
                .position(|f| f.type_ == SqlType::Timestamp)
                .ok_or_else(|| "sessionize needs a timestamp column".to_string())
        })?;
        if input[ts].type_ != SqlType::Timestamp {
            return Err("sessionize: column ts must be a timestamp".into());
        }
        Ok(ts)
    }

    fn gap(args: &[Column]) -> Result<i64, String> {
        match constant::<i64>(args, 0) {
            Some(gap) if gap >= 0 => Ok(gap),
            _ => Err("sessionize takes the gap in seconds, at least 0".into()),
        }
    }
}

impl Transform for Sessionize {
    fn describe(input: &[Field], args: &[Column]) -> Result<Vec<Field>, String> {
        Self::time_column(input)?;
        Self::gap(args)?;
        with_column(input, "session", SqlType::Int64)
    }

    fn start(input: &[Field], args: &[Column]) -> Result<Self, String> {
        Ok(Self {
            ts: Self::time_column(input)?,
            gap: Self::gap(args)?.saturating_mul(1_000_000),
            width: input.len(),
            last: None,
            session: 1,
        })
    }

    fn push(&mut self, input: &Rows, out: &mut Output) -> Result<(), RowError> {
        let ts = input.reader::<Option<Timestamp>>(self.ts);
        for row in 0..input.len() {
            if let Some(Timestamp(t)) = ts.get(row) {
                if self.last.is_some_and(|last| t - last > self.gap) {
                    self.session += 1;
                }
                self.last = Some(t);
            }
            out.copy(input, row, 0..self.width, 0).map_err(at(row))?;
            out.set(self.width, self.session).map_err(at(row))?;
        }
        Ok(())
    }
}

/// `dedup(TABLE t PARTITION BY key [ORDER BY ...])`: the first row of each
/// key (in `ORDER BY` order).
struct Dedup {
    width: usize,
    done: bool,
}

impl Transform for Dedup {
    fn describe(input: &[Field], _args: &[Column]) -> Result<Vec<Field>, String> {
        Ok(input.to_vec())
    }

    fn start(input: &[Field], _args: &[Column]) -> Result<Self, String> {
        Ok(Self {
            width: input.len(),
            done: false,
        })
    }

    fn push(&mut self, input: &Rows, out: &mut Output) -> Result<(), RowError> {
        if !self.done && !input.is_empty() {
            out.copy(input, 0, 0..self.width, 0).map_err(at(0))?;
            self.done = true;
        }
        Ok(())
    }
}

/// `explode_json(TABLE t, 'column')`: for each input row, a row per element
/// of the JSON array in `column` (text), with the input's other columns
/// and `item`, the element (a string as its text, anything else as JSON).
/// A null gives no rows.
struct ExplodeJson {
    column: usize,
    width: usize,
}

impl ExplodeJson {
    fn column(input: &[Field], args: &[Column]) -> Result<usize, String> {
        let name = constant::<&str>(args, 0)
            .ok_or("explode_json takes the name of a text column holding JSON arrays")?;
        let column = position(input, name)?;
        if input[column].type_ != SqlType::Text {
            return Err(format!("explode_json: column {name} is not text"));
        }
        Ok(column)
    }
}

impl Transform for ExplodeJson {
    fn describe(input: &[Field], args: &[Column]) -> Result<Vec<Field>, String> {
        let column = Self::column(input, args)?;
        let others: Vec<Field> = input
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != column)
            .map(|(_, f)| f.clone())
            .collect();
        with_column(&others, "item", SqlType::Text)
    }

    fn start(input: &[Field], args: &[Column]) -> Result<Self, String> {
        Ok(Self {
            column: Self::column(input, args)?,
            width: input.len(),
        })
    }

    fn push(&mut self, input: &Rows, out: &mut Output) -> Result<(), RowError> {
        let text = input.reader::<Option<&str>>(self.column);
        for row in 0..input.len() {
            let Some(text) = text.get(row) else {
                continue;
            };
            let items: Vec<serde_json::Value> =
                serde_json::from_str(text).map_err(|e| at(row)(format!("not a JSON array: {e}")))?;
            for item in items {
                out.copy(input, row, 0..self.column, 0).map_err(at(row))?;
                out.copy(input, row, self.column + 1..self.width, self.column)
                    .map_err(at(row))?;
                let item = match item {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                out.set(self.width - 1, item).map_err(at(row))?;
            }
        }
        Ok(())
    }
}

/// `score(TABLE t, 'x:0.5,y:-1.25', bias)`: a batch scorer. Every input row
/// with `score`, a logistic model's probability 1 / (1 + e^-(bias + 0.5 x
/// - 1.25 y)) over numeric columns (a null among them: a null score).
struct Score {
    weights: Vec<(usize, f64)>,
    bias: f64,
    width: usize,
}

impl Score {
    fn model(input: &[Field], args: &[Column]) -> Result<(Vec<(usize, f64)>, f64), String> {
        let text = constant::<&str>(args, 0).ok_or("score takes its weights: 'column:weight,...'")?;
        let bias = constant::<f64>(args, 1).unwrap_or(0.0);
        let weights = text
            .split(',')
            .map(|pair| {
                let (name, weight) = pair
                    .split_once(':')
                    .ok_or_else(|| format!("score: {pair} is not column:weight"))?;
                let column = position(input, name.trim())?;
                let weight: f64 = weight
                    .trim()
                    .parse()
                    .map_err(|e| format!("score: weight of {name}: {e}"))?;
                match input[column].type_ {
                    SqlType::Int16 | SqlType::Int32 | SqlType::Int64 | SqlType::Float32 | SqlType::Float64 => {
                        Ok((column, weight))
                    }
                    _ => Err(format!("score: column {name} is not a number")),
                }
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok((weights, bias))
    }
}

fn number(value: Option<quiver_udf::ValueRef<'_>>) -> Option<f64> {
    use quiver_udf::ValueRef as V;
    match value? {
        V::Int16(v) => Some(f64::from(v)),
        V::Int32(v) => Some(f64::from(v)),
        V::Int64(v) => Some(v as f64),
        V::Float32(v) => Some(f64::from(v)),
        V::Float64(v) => Some(v),
        _ => None,
    }
}

impl Transform for Score {
    fn describe(input: &[Field], args: &[Column]) -> Result<Vec<Field>, String> {
        Self::model(input, args)?;
        with_column(input, "score", SqlType::Float64)
    }

    fn start(input: &[Field], args: &[Column]) -> Result<Self, String> {
        let (weights, bias) = Self::model(input, args)?;
        Ok(Self {
            weights,
            bias,
            width: input.len(),
        })
    }

    fn push(&mut self, input: &Rows, out: &mut Output) -> Result<(), RowError> {
        for row in 0..input.len() {
            let z = self.weights.iter().try_fold(self.bias, |z, (column, weight)| {
                number(input.value(*column, row)).map(|x| z + weight * x)
            });
            out.copy(input, row, 0..self.width, 0).map_err(at(row))?;
            out.set(self.width, z.map(|z| 1.0 / (1.0 + (-z).exp())))
                .map_err(at(row))?;
        }
        Ok(())
    }
}

/// `tag(TABLE t, 'label')`: every input row, untouched, with `tag`, the
/// label. A columnar transform: the input's columns pass through whole,
/// as Arrow laid them out, and one column is added.
struct Tag {
    label: String,
}

impl Tag {
    fn label(args: &[Column]) -> Result<String, String> {
        constant::<&str>(args, 0)
            .map(str::to_owned)
            .ok_or_else(|| "tag takes a label".to_string())
    }
}

impl ColumnarTransform for Tag {
    fn describe(input: &[Field], args: &[Column]) -> Result<Vec<Field>, String> {
        Self::label(args)?;
        with_column(input, "tag", SqlType::Text)
    }

    fn start(_input: &[Field], args: &[Column]) -> Result<Self, String> {
        Ok(Self {
            label: Self::label(args)?,
        })
    }

    fn push(&mut self, mut input: Batch) -> Result<Batch, RowError> {
        let mut tags = ColumnBuilder::new(SqlType::Text, input.rows as usize);
        for _ in 0..input.rows {
            tags.push(ValueRef::Text(&self.label)).map_err(at(0))?;
        }
        input.columns.push(tags.finish());
        Ok(input)
    }

    fn finish(&mut self) -> Result<Batch, RowError> {
        Ok(Batch {
            columns: Vec::new(),
            rows: 0,
        })
    }
}

quiver_udf::functions! {
    @transform sessionize = Sessionize;
    @transform dedup = Dedup;
    @transform explode_json = ExplodeJson;
    @transform score = Score;
    @columnar_transform tag = Tag;
}
