//! Table functions: an iterator of rows, pulled a batch at a time.

use std::cell::RefCell;

use crate::bindings::exports::quiver::udf::table::{Batch, GuestRows};
use crate::{ColumnBuilder, RowError, SqlType};

type Next = Box<dyn FnMut(u32) -> Result<Option<Batch>, RowError>>;

/// The component's rows resource: a running table function.
pub struct RowsImpl(RefCell<Next>);

impl RowsImpl {
    /// Rows from `rows`, each written into the column builders by `push`.
    pub fn new<I, F>(rows: I, types: Vec<SqlType>, push: F) -> Self
    where
        I: IntoIterator + 'static,
        F: Fn(I::Item, &mut [ColumnBuilder]) -> Result<(), String> + 'static,
    {
        let mut rows = rows.into_iter();
        let mut done = false;
        Self(RefCell::new(Box::new(move |max| {
            if done {
                return Ok(None);
            }
            let mut out: Vec<ColumnBuilder> = types
                .iter()
                .map(|t| ColumnBuilder::new(t.clone(), max as usize))
                .collect();
            let mut count = 0;
            while count < max {
                let Some(row) = rows.next() else {
                    done = true;
                    break;
                };
                push(row, &mut out).map_err(|message| RowError {
                    row: count,
                    message,
                })?;
                count += 1;
            }
            if count == 0 {
                return Ok(None);
            }
            Ok(Some(Batch {
                columns: out.into_iter().map(ColumnBuilder::finish).collect(),
                rows: count,
            }))
        })))
    }
}

impl GuestRows for RowsImpl {
    fn next(&self, max_rows: u32) -> Result<Option<Batch>, RowError> {
        (self.0.borrow_mut())(max_rows)
    }
}
