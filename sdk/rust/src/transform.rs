//! Transforms: a relation in, a relation out, a partition at a time.

use std::cell::RefCell;

use crate::bindings::exports::quiver::udf::transform::GuestPartition;
use crate::{Arg, ArgReader, Column, ColumnBuilder, Ret, RowError, SqlType, ValueRef};

pub use crate::bindings::exports::quiver::udf::transform::Field;

impl Field {
    /// A column named `name` of type `ty`.
    pub fn new(name: impl Into<String>, ty: SqlType) -> Self {
        Self {
            name: name.into(),
            type_: ty,
        }
    }
}

/// A transform: `SELECT * FROM name(TABLE t PARTITION BY k ORDER BY o,
/// args...)`.
///
/// Quiver asks [`describe`](Self::describe) when it plans a query, then
/// runs the transform a partition at a time: [`start`](Self::start) makes
/// a value of this type for each (each `PARTITION BY` key's rows, in `ORDER
/// BY` order; without `PARTITION BY`, one share of the input), which gets
/// the partition's rows batch by batch in [`push`](Self::push) and ends with
/// [`finish`](Self::finish). Each writes the rows it produces into
/// [`Output`] — as many as it likes, none included.
pub trait Transform: Sized + 'static {
    /// The columns produced for input of these columns and these constant
    /// arguments (one value each: read them with [`constant`]), or why the
    /// transform does not accept them.
    fn describe(input: &[Field], args: &[Column]) -> Result<Vec<Field>, String>;

    /// A new partition.
    fn start(input: &[Field], args: &[Column]) -> Result<Self, String>;

    /// One batch of the partition's rows.
    fn push(&mut self, input: &Rows, out: &mut Output) -> Result<(), RowError>;

    /// The partition's rows have all been pushed.
    fn finish(&mut self, _out: &mut Output) -> Result<(), RowError> {
        Ok(())
    }
}

/// A transform over whole columns: each batch in Arrow's layout (the
/// [`Column`]s the host sent), the rows it produces likewise. For
/// vectorized work, or to pass columns through untouched. Listed with
/// `@columnar_transform name = Type;`.
pub trait ColumnarTransform: Sized + 'static {
    /// As [`Transform::describe`].
    fn describe(input: &[Field], args: &[Column]) -> Result<Vec<Field>, String>;

    /// As [`Transform::start`].
    fn start(input: &[Field], args: &[Column]) -> Result<Self, String>;

    /// One batch of `rows` rows of the partition, one column per input
    /// field; returns the columns produced (one per output field, all of one
    /// length) — `Batch { columns, rows }`.
    fn push(&mut self, input: Batch) -> Result<Batch, RowError>;

    /// The partition's rows have all been pushed: what is left.
    fn finish(&mut self) -> Result<Batch, RowError>;
}

pub use crate::bindings::exports::quiver::udf::transform::Batch;

/// Constant argument `index` of a transform (`None` for a null or a
/// missing one).
pub fn constant<'a, T: Arg<'a>>(args: &'a [Column], index: usize) -> Option<T> {
    let column = args.get(index)?;
    if column.is_empty() || column.is_null(0) {
        return None;
    }
    Some(ArgReader::<T>::new(column).get(0))
}

/// The position of the column named `name` among `fields`.
pub fn position(fields: &[Field], name: &str) -> Result<usize, String> {
    fields
        .iter()
        .position(|f| f.name == name)
        .ok_or_else(|| format!("the input has no column {name}"))
}

/// A batch of input rows.
pub struct Rows {
    columns: Vec<Column>,
    rows: usize,
}

impl Rows {
    /// The number of rows.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Column `index`, whole.
    pub fn column(&self, index: usize) -> &Column {
        &self.columns[index]
    }

    /// The values of column `index` as `T` (`i64`, `&str`, `Option<f64>`
    /// ...): `.get(row)`.
    pub fn reader<'a, T: Arg<'a>>(&'a self, index: usize) -> ArgReader<'a, T> {
        ArgReader::new(&self.columns[index])
    }

    /// The value of column `index` in row `row` (`None` when null).
    pub fn value(&self, index: usize, row: usize) -> Option<ValueRef<'_>> {
        self.columns[index].value(row)
    }
}

/// The rows a transform produces: one builder per output column. Write a
/// value into each column for every row.
pub struct Output {
    columns: Vec<ColumnBuilder>,
    types: Vec<SqlType>,
}

impl Output {
    fn new(types: &[SqlType]) -> Self {
        Self {
            columns: types
                .iter()
                .map(|t| ColumnBuilder::new(t.clone(), 0))
                .collect(),
            types: types.to_vec(),
        }
    }

    /// Writes `value` into column `index` of the row being built.
    pub fn set<T: Ret>(&mut self, index: usize, value: T) -> Result<(), String> {
        value.push(&mut self.columns[index])
    }

    /// Writes a value of any type (`None`: null) into column `index`.
    pub fn set_value(&mut self, index: usize, value: Option<ValueRef<'_>>) -> Result<(), String> {
        match value {
            Some(v) => self.columns[index].push(v),
            None => {
                self.columns[index].push_null();
                Ok(())
            }
        }
    }

    /// Copies row `row` of the input's columns `from` into the output's
    /// columns `to..`: pass-through columns.
    pub fn copy(
        &mut self,
        input: &Rows,
        row: usize,
        from: std::ops::Range<usize>,
        to: usize,
    ) -> Result<(), String> {
        for (i, column) in from.enumerate() {
            self.set_value(to + i, input.value(column, row))?;
        }
        Ok(())
    }

    fn take(&mut self) -> Result<Batch, String> {
        let fresh = Output::new(&self.types);
        let columns: Vec<Column> = std::mem::replace(self, fresh)
            .columns
            .into_iter()
            .map(ColumnBuilder::finish)
            .collect();
        let rows = columns.first().map_or(0, Column::len);
        if let Some(c) = columns.iter().position(|c| c.len() != rows) {
            return Err(format!(
                "output column {} has {} values where column 1 has {rows}",
                c + 1,
                columns[c].len()
            ));
        }
        Ok(Batch {
            columns,
            rows: rows as u32,
        })
    }
}

/// Row errors for a whole batch (no one row is to blame).
fn batch_error(message: String) -> RowError {
    RowError { row: 0, message }
}

/// A running partition of some transform.
trait Running {
    fn push(&mut self, input: Batch) -> Result<Batch, RowError>;
    fn finish(&mut self) -> Result<Batch, RowError>;
}

struct Runner<T: Transform> {
    transform: T,
    out: Output,
}

impl<T: Transform> Running for Runner<T> {
    fn push(&mut self, input: Batch) -> Result<Batch, RowError> {
        let rows = Rows {
            columns: input.columns,
            rows: input.rows as usize,
        };
        self.transform.push(&rows, &mut self.out)?;
        self.out.take().map_err(batch_error)
    }

    fn finish(&mut self) -> Result<Batch, RowError> {
        self.transform.finish(&mut self.out)?;
        self.out.take().map_err(batch_error)
    }
}

struct Columnar<T: ColumnarTransform>(T);

impl<T: ColumnarTransform> Running for Columnar<T> {
    fn push(&mut self, input: Batch) -> Result<Batch, RowError> {
        self.0.push(input)
    }

    fn finish(&mut self) -> Result<Batch, RowError> {
        self.0.finish()
    }
}

/// The component's partition resource (generated code makes these).
pub struct PartitionImpl(RefCell<Box<dyn Running>>);

impl PartitionImpl {
    /// Starts a partition of transform `T`.
    pub fn start<T: Transform>(input: &[Field], args: &[Column]) -> Result<Self, String> {
        let types: Vec<SqlType> = T::describe(input, args)?
            .into_iter()
            .map(|f| f.type_)
            .collect();
        let transform = T::start(input, args)?;
        Ok(Self(RefCell::new(Box::new(Runner {
            transform,
            out: Output::new(&types),
        }))))
    }
}

impl PartitionImpl {
    /// Starts a partition of columnar transform `T`.
    pub fn start_columnar<T: ColumnarTransform>(
        input: &[Field],
        args: &[Column],
    ) -> Result<Self, String> {
        Ok(Self(RefCell::new(Box::new(Columnar(T::start(input, args)?)))))
    }
}

impl GuestPartition for PartitionImpl {
    fn push(&self, input: Batch) -> Result<Batch, RowError> {
        self.0.borrow_mut().push(input)
    }

    fn finish(&self) -> Result<Batch, RowError> {
        self.0.borrow_mut().finish()
    }
}
