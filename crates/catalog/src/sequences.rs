//! Sequences: `CREATE SEQUENCE`, and the counters behind `nextval`,
//! `setval` and `SERIAL`/identity columns.
//!
//! A sequence is a relation of the catalog like a table or a view (its name
//! is taken among theirs, its `CREATE`/`DROP` is transactional, see
//! [`crate::changes`]), described by [`SequenceOptions`]. Its counter is
//! not transactional, as PostgreSQL's is not: a value `nextval` gave is
//! never given again, whatever happens to the transaction that asked.
//!
//! Counters are kept in memory and stored in the `sequences` column family
//! by the sequence's id. Like PostgreSQL (which logs 32 values ahead),
//! `nextval` does not write each value: it stores a value [`LOG_AHEAD`]
//! steps ahead and hands out values up to it from memory; after a crash
//! the counter goes on from the stored value, skipping those that were
//! not handed out. `setval` is stored at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{BooleanArray, Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::ExecutionPlan;
use serde::{Deserialize, Serialize};

use crate::store::{MetaStore, SEQUENCES_CF};
use crate::{Error, Result};

/// How many values `nextval` hands out per write of the counter.
const LOG_AHEAD: u32 = 32;

/// The integer type of a sequence's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SequenceType {
    Smallint,
    Integer,
    Bigint,
}

impl SequenceType {
    /// The type's least and greatest values.
    fn range(self) -> (i64, i64) {
        match self {
            SequenceType::Smallint => (i16::MIN.into(), i16::MAX.into()),
            SequenceType::Integer => (i32::MIN.into(), i32::MAX.into()),
            SequenceType::Bigint => (i64::MIN, i64::MAX),
        }
    }

    /// The type's name in PostgreSQL.
    pub fn name(self) -> &'static str {
        match self {
            SequenceType::Smallint => "smallint",
            SequenceType::Integer => "integer",
            SequenceType::Bigint => "bigint",
        }
    }
}

/// A column whose sequence it is (`SERIAL`, identity, `OWNED BY`): the
/// sequence goes when the table does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnedBy {
    pub table: String,
    pub column: String,
}

/// What a sequence counts, as `CREATE SEQUENCE` sets it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequenceOptions {
    pub data_type: SequenceType,
    pub start: i64,
    pub increment: i64,
    pub min: i64,
    pub max: i64,
    pub cycle: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owned_by: Option<OwnedBy>,
}

/// What `CREATE SEQUENCE` says, each option `None` where it says nothing.
#[derive(Debug, Clone, Default)]
pub struct SequenceSpec {
    pub data_type: Option<SequenceType>,
    pub start: Option<i64>,
    pub increment: Option<i64>,
    /// `Some(None)`: `NO MINVALUE`.
    pub min: Option<Option<i64>>,
    pub max: Option<Option<i64>>,
    pub cycle: Option<bool>,
    pub owned_by: Option<OwnedBy>,
}

impl SequenceSpec {
    /// The options `self` makes, with PostgreSQL's defaults for those it
    /// leaves out, checked as PostgreSQL checks them (22023).
    pub fn options(self) -> Result<SequenceOptions> {
        let data_type = self.data_type.unwrap_or(SequenceType::Bigint);
        let (least, greatest) = data_type.range();
        let increment = self.increment.unwrap_or(1);
        if increment == 0 {
            return Err(Error::InvalidParameter("INCREMENT must not be zero".into()));
        }
        let ascending = increment > 0;
        let min = self
            .min
            .flatten()
            .unwrap_or(if ascending { 1 } else { least });
        let max = self
            .max
            .flatten()
            .unwrap_or(if ascending { greatest } else { -1 });
        let type_name = data_type.name();
        for (name, value) in [("MINVALUE", min), ("MAXVALUE", max)] {
            if !(least..=greatest).contains(&value) {
                return Err(Error::InvalidParameter(format!(
                    "{name} ({value}) is out of range for sequence data type {type_name}"
                )));
            }
        }
        if min >= max {
            return Err(Error::InvalidParameter(format!(
                "MINVALUE ({min}) must be less than MAXVALUE ({max})"
            )));
        }
        let start = self.start.unwrap_or(if ascending { min } else { max });
        if start < min {
            return Err(Error::InvalidParameter(format!(
                "START value ({start}) cannot be less than MINVALUE ({min})"
            )));
        }
        if start > max {
            return Err(Error::InvalidParameter(format!(
                "START value ({start}) cannot be greater than MAXVALUE ({max})"
            )));
        }
        Ok(SequenceOptions {
            data_type,
            start,
            increment,
            min,
            max,
            cycle: self.cycle.unwrap_or(false),
            owned_by: self.owned_by,
        })
    }
}

impl SequenceOptions {
    /// The value after `value`: `None` past the end of a sequence that
    /// does not cycle; `(value, true)` when it cycled.
    fn after(&self, value: i64) -> Option<(i64, bool)> {
        match value.checked_add(self.increment) {
            Some(next) if (self.min..=self.max).contains(&next) => Some((next, false)),
            _ if self.cycle => Some((
                if self.increment > 0 {
                    self.min
                } else {
                    self.max
                },
                true,
            )),
            _ => None,
        }
    }
}

/// One sequence, as a statement names it.
#[derive(Debug, Clone)]
pub struct Sequence {
    pub name: String,
    pub id: String,
    pub options: SequenceOptions,
}

/// A counter as stored: the last value given (or to be given first, if
/// not `is_called`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Stored {
    last_value: i64,
    is_called: bool,
}

/// A counter in memory.
#[derive(Debug)]
struct Counter {
    last_value: i64,
    is_called: bool,
    /// How many values after `last_value` the stored counter already
    /// accounts for.
    logged: u32,
}

/// The counters of every sequence, shared by the server's sessions.
pub struct Sequences {
    store: Arc<MetaStore>,
    counters: Mutex<HashMap<String, Arc<Mutex<Counter>>>>,
}

impl std::fmt::Debug for Sequences {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sequences").finish_non_exhaustive()
    }
}

impl Sequences {
    pub(crate) fn new(store: Arc<MetaStore>) -> Self {
        Self {
            store,
            counters: Mutex::new(HashMap::new()),
        }
    }

    /// Removes the stored counters of sequences that are gone (dropped, or
    /// created by a transaction block that did not commit): `live` holds
    /// the ids of those there are.
    pub(crate) fn remove_orphans(&self, live: &std::collections::HashSet<String>) -> Result<()> {
        for (id, _) in self.store.scan(SEQUENCES_CF)? {
            if !live.contains(&id) {
                self.store.delete(SEQUENCES_CF, &id)?;
            }
        }
        Ok(())
    }

    /// The counter of `sequence`, read from the store the first time.
    fn counter(&self, sequence: &Sequence) -> Result<Arc<Mutex<Counter>>> {
        let mut counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(counter) = counters.get(&sequence.id) {
            return Ok(counter.clone());
        }
        let stored = match self.store.get_json::<Stored>(SEQUENCES_CF, &sequence.id)? {
            Some(stored) => stored,
            None => Stored {
                last_value: sequence.options.start,
                is_called: false,
            },
        };
        let counter = Arc::new(Mutex::new(Counter {
            last_value: stored.last_value,
            is_called: stored.is_called,
            logged: 0,
        }));
        counters.insert(sequence.id.clone(), counter.clone());
        Ok(counter)
    }

    fn write(&self, sequence: &Sequence, stored: Stored) -> Result<()> {
        self.store.put_json(SEQUENCES_CF, &sequence.id, &stored)
    }

    /// `nextval`: the sequence's next `count` values.
    pub fn next(&self, sequence: &Sequence, count: usize) -> Result<Vec<i64>> {
        let counter = self.counter(sequence)?;
        let mut counter = counter.lock().unwrap_or_else(|p| p.into_inner());
        let options = &sequence.options;
        let mut values = Vec::with_capacity(count);
        for _ in 0..count {
            let value = if !counter.is_called {
                counter.last_value
            } else {
                let Some((value, cycled)) = options.after(counter.last_value) else {
                    let (end, bound) = match options.increment > 0 {
                        true => ("maximum", options.max),
                        false => ("minimum", options.min),
                    };
                    return Err(Error::SequenceLimit(format!(
                        "nextval: reached {end} value of sequence \"{}\" ({bound})",
                        sequence.name
                    )));
                };
                if cycled {
                    counter.logged = 0;
                }
                value
            };
            if counter.logged == 0 {
                // Store a value some steps ahead (not cycling), and hand
                // out values up to it from memory.
                let (mut ahead, mut steps) = (value, 0);
                while steps < LOG_AHEAD {
                    match options.after(ahead) {
                        Some((next, false)) => (ahead, steps) = (next, steps + 1),
                        _ => break,
                    }
                }
                self.write(
                    sequence,
                    Stored {
                        last_value: ahead,
                        is_called: true,
                    },
                )?;
                counter.logged = steps;
            } else {
                counter.logged -= 1;
            }
            counter.last_value = value;
            counter.is_called = true;
            values.push(value);
        }
        Ok(values)
    }

    /// `setval(sequence, value, is_called)`, stored at once.
    pub fn set(&self, sequence: &Sequence, value: i64, is_called: bool) -> Result<i64> {
        let options = &sequence.options;
        if !(options.min..=options.max).contains(&value) {
            return Err(Error::OutOfRange(format!(
                "setval: value {value} is out of bounds for sequence \"{}\" ({}..{})",
                sequence.name, options.min, options.max
            )));
        }
        let counter = self.counter(sequence)?;
        let mut counter = counter.lock().unwrap_or_else(|p| p.into_inner());
        self.write(
            sequence,
            Stored {
                last_value: value,
                is_called,
            },
        )?;
        *counter = Counter {
            last_value: value,
            is_called,
            logged: 0,
        };
        Ok(value)
    }

    /// The counter of `sequence` as `SELECT * FROM` it shows it:
    /// `last_value`, `log_cnt`, `is_called`.
    fn state(&self, sequence: &Sequence) -> Result<(i64, i64, bool)> {
        let counter = self.counter(sequence)?;
        let counter = counter.lock().unwrap_or_else(|p| p.into_inner());
        Ok((counter.last_value, counter.logged.into(), counter.is_called))
    }
}

/// A sequence read as a relation (`SELECT * FROM s`): one row, its
/// counter, as PostgreSQL shows it.
#[derive(Debug)]
pub(crate) struct SequenceTable {
    pub(crate) sequences: Arc<Sequences>,
    pub(crate) sequence: Sequence,
}

impl SequenceTable {
    fn row_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("last_value", DataType::Int64, false),
            Field::new("log_cnt", DataType::Int64, false),
            Field::new("is_called", DataType::Boolean, false),
        ]))
    }
}

#[async_trait::async_trait]
impl TableProvider for SequenceTable {
    fn schema(&self) -> SchemaRef {
        Self::row_schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let (last_value, log_cnt, is_called) = self.sequences.state(&self.sequence)?;
        let schema = Self::row_schema();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![last_value])),
                Arc::new(Int64Array::from(vec![log_cnt])),
                Arc::new(BooleanArray::from(vec![is_called])),
            ],
        )?;
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            schema,
            projection.cloned(),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sequence(spec: SequenceSpec) -> Sequence {
        Sequence {
            name: "s".into(),
            id: "id".into(),
            options: spec.options().unwrap(),
        }
    }

    #[test]
    fn counts_logs_ahead_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(MetaStore::open(dir.path()).unwrap());
        let s = sequence(SequenceSpec::default());
        let sequences = Sequences::new(store.clone());
        assert_eq!(sequences.next(&s, 3).unwrap(), vec![1, 2, 3]);
        // A restart goes on after the values logged ahead.
        let again = Sequences::new(store.clone());
        assert_eq!(
            again.next(&s, 1).unwrap(),
            vec![1 + i64::from(LOG_AHEAD) + 1]
        );
        // setval is stored at once.
        again.set(&s, 100, true).unwrap();
        let again = Sequences::new(store);
        assert_eq!(again.next(&s, 2).unwrap(), vec![101, 102]);
    }

    #[test]
    fn stops_or_cycles_at_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(MetaStore::open(dir.path()).unwrap());
        let sequences = Sequences::new(store);
        let mut spec = SequenceSpec {
            max: Some(Some(3)),
            ..SequenceSpec::default()
        };
        let s = sequence(spec.clone());
        assert_eq!(sequences.next(&s, 3).unwrap(), vec![1, 2, 3]);
        let err = sequences.next(&s, 1).unwrap_err();
        assert!(err.to_string().contains("reached maximum value"), "{err}");
        spec.cycle = Some(true);
        let cycling = Sequence {
            id: "other".into(),
            ..sequence(spec)
        };
        assert_eq!(sequences.next(&cycling, 5).unwrap(), vec![1, 2, 3, 1, 2]);
        let down = Sequence {
            id: "down".into(),
            ..sequence(SequenceSpec {
                increment: Some(-2),
                data_type: Some(SequenceType::Smallint),
                ..SequenceSpec::default()
            })
        };
        assert_eq!(sequences.next(&down, 2).unwrap(), vec![-1, -3]);
        assert!(
            SequenceSpec {
                increment: Some(0),
                ..SequenceSpec::default()
            }
            .options()
            .is_err()
        );
    }
}
