//! Sequences in statements: `CREATE SEQUENCE`, `DROP SEQUENCE`, the
//! functions `nextval`, `currval`, `setval`, `lastval` and
//! `pg_get_serial_sequence`, and `SERIAL`/`GENERATED ... AS IDENTITY`
//! columns, which are a sequence and a column `DEFAULT` calling `nextval`
//! (see [`quiver_catalog::Sequences`] for how counters are kept).
//!
//! The functions are the session's own: they find a sequence by its name
//! as the session sees it (one its open transaction block created, say)
//! and `currval` answers with what this session's `nextval` last gave.
//! So they run on the frontend: a plan that calls them is never shipped to
//! Ballista's executors (see `crate::planner::route`).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, Weak};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, Result as DfResult, TableReference};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use datafusion::sql::sqlparser::ast::{
    ColumnDef, ColumnOption, ColumnOptionDef, CreateTable, DataType as SqlType, Expr, GeneratedAs,
    ObjectName, SequenceOptions as SqlSequenceOptions, UnaryOperator, Value,
};
use quiver_catalog::{
    DEFAULT_SCHEMA, OwnedBy, QualifiedName, Sequence, SequenceOptions, SequenceSpec, SequenceType,
    SessionCatalog,
};

use super::{Completion, Outcome, Session};
use crate::names::folded;
use crate::{Error, Result};

/// What `CREATE SEQUENCE` says, as sqlparser parsed it.
pub(super) struct CreateSequence<'a> {
    pub(super) name: &'a ObjectName,
    pub(super) temporary: bool,
    pub(super) if_not_exists: bool,
    pub(super) data_type: Option<&'a SqlType>,
    pub(super) options: &'a [SqlSequenceOptions],
    pub(super) owned_by: Option<&'a ObjectName>,
}

impl Session {
    /// `CREATE SEQUENCE`.
    pub(super) async fn create_sequence(&self, create: CreateSequence<'_>) -> Result<Outcome> {
        if create.temporary {
            return Err(Error::FeatureNotSupported(
                "temporary sequences are not supported yet".into(),
            ));
        }
        let name = self.creation_name(&crate::names::table_reference(create.name))?;
        let mut spec = sequence_spec(create.options)?;
        spec.data_type = create.data_type.map(sequence_type).transpose()?;
        if let Some(owned_by) = create.owned_by {
            spec.owned_by = self.owned_by(&name, owned_by)?;
        }
        let created = self
            .relations
            .create_sequence(
                &name,
                spec.options()?,
                create.if_not_exists,
                &self.user().unwrap_or_default(),
            )
            .await?;
        Ok(Completion::tag("CREATE SEQUENCE")
            .with_notice(
                (!created).then(|| format!("relation \"{}\" already exists, skipping", name.name)),
            )
            .into())
    }

    /// `DROP SEQUENCE [IF EXISTS] name, ...`, by each one's owner.
    pub(super) async fn drop_sequences(
        &self,
        names: &[ObjectName],
        if_exists: bool,
    ) -> Result<Outcome> {
        let mut notices = Vec::new();
        for name in names {
            let name = self.stored_name(&crate::names::table_reference(name))?;
            if self.relations.entry(&name).is_some() {
                self.check_owner(&name)?;
            }
            if !self.relations.drop_sequence(&name, if_exists).await? {
                notices.push(format!("sequence \"{name}\" does not exist, skipping"));
            }
        }
        Ok(Completion::tag("DROP SEQUENCE")
            .with_notice((!notices.is_empty()).then(|| notices.join("\n")))
            .into())
    }

    /// `ALTER SEQUENCE [IF EXISTS] name OWNED BY table.column | NONE`, by
    /// the sequence's owner.
    pub(super) async fn alter_sequence_owned_by(
        &self,
        name: &ObjectName,
        if_exists: bool,
        owned_by: &ObjectName,
    ) -> Result<Outcome> {
        let reference = crate::names::table_reference(name);
        let sequence = self.stored_name(&reference)?;
        let Some(entry) = self.relations.entry(&sequence) else {
            if if_exists {
                return Ok(Completion::tag("ALTER SEQUENCE")
                    .with_notice(Some(format!(
                        "relation \"{reference}\" does not exist, skipping"
                    )))
                    .into());
            }
            return Err(Error::UndefinedTable(reference.to_string()));
        };
        if entry.sequence().is_none() {
            return Err(quiver_catalog::Error::WrongObjectType(format!(
                "\"{reference}\" is not a sequence"
            ))
            .into());
        }
        self.check_owner(&sequence)?;
        let owned_by = self.owned_by(&sequence, owned_by)?;
        self.relations
            .set_sequence_owner(&sequence, owned_by)
            .await?;
        Ok(Completion::tag("ALTER SEQUENCE").into())
    }

    /// `OWNED BY table.column` (`None` for `OWNED BY NONE`): a column of a
    /// table the session's role owns, in the schema of the sequence
    /// `sequence`.
    fn owned_by(&self, sequence: &QualifiedName, name: &ObjectName) -> Result<Option<OwnedBy>> {
        let parts = crate::names::folded_parts(name);
        let (table, column) = match parts.as_slice() {
            [none] if none == "none" => return Ok(None),
            [table, column] => (table.clone(), column.clone()),
            [schema, table, column] if schema == &sequence.schema => {
                (table.clone(), column.clone())
            }
            [_, _, _] => {
                return Err(Error::InvalidParameterValue(
                    "sequence must be in same schema as table it is linked to".into(),
                ));
            }
            _ => {
                return Err(Error::InvalidParameterValue(
                    "invalid OWNED BY option: specify OWNED BY table.column or OWNED BY NONE"
                        .into(),
                ));
            }
        };
        self.check_owner(&sequence.sibling(table.clone()))?;
        Ok(Some(OwnedBy { table, column }))
    }
}

/// The type `CREATE SEQUENCE ... AS type` names.
fn sequence_type(data_type: &SqlType) -> Result<SequenceType> {
    match data_type {
        SqlType::SmallInt(_) | SqlType::Int2(_) => Ok(SequenceType::Smallint),
        SqlType::Int(_) | SqlType::Integer(_) | SqlType::Int4(_) => Ok(SequenceType::Integer),
        SqlType::BigInt(_) | SqlType::Int8(_) => Ok(SequenceType::Bigint),
        _ => Err(Error::InvalidParameterValue(
            "sequence type must be smallint, integer, or bigint".into(),
        )),
    }
}

/// The options of `CREATE SEQUENCE` or of an identity column.
fn sequence_spec(options: &[SqlSequenceOptions]) -> Result<SequenceSpec> {
    let mut spec = SequenceSpec::default();
    for option in options {
        match option {
            SqlSequenceOptions::IncrementBy(by, _) => spec.increment = Some(integer(by)?),
            SqlSequenceOptions::MinValue(min) => {
                spec.min = Some(min.as_ref().map(integer).transpose()?)
            }
            SqlSequenceOptions::MaxValue(max) => {
                spec.max = Some(max.as_ref().map(integer).transpose()?)
            }
            SqlSequenceOptions::StartWith(start, _) => spec.start = Some(integer(start)?),
            // Values are counted one at a time in memory: nothing to cache.
            SqlSequenceOptions::Cache(_) => {}
            SqlSequenceOptions::Cycle(no) => spec.cycle = Some(!no),
        }
    }
    Ok(spec)
}

/// An integer written in a sequence's options (`-5`, `10`).
fn integer(expr: &Expr) -> Result<i64> {
    let invalid = || Error::Syntax(format!("syntax error: {expr} is not an integer"));
    match expr {
        Expr::Value(value) => match &value.value {
            Value::Number(digits, _) => digits.parse().map_err(|_| invalid()),
            _ => Err(invalid()),
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => integer(expr)?.checked_neg().ok_or_else(invalid),
        Expr::UnaryOp {
            op: UnaryOperator::Plus,
            expr,
        } => integer(expr),
        _ => Err(invalid()),
    }
}

/// The sequences `CREATE TABLE name` needs for its `SERIAL`,
/// `BIGSERIAL`, `SMALLSERIAL` and `GENERATED ... AS IDENTITY` columns, by
/// name (`<table>_<column>_seq`, as PostgreSQL names them). Each such
/// column is rewritten as PostgreSQL defines it: of its integer type, `NOT
/// NULL`, `DEFAULT nextval('<sequence>')`.
///
/// `GENERATED ALWAYS` is taken as `BY DEFAULT`: an `INSERT` may give the
/// column a value. The table is made in `schema`, and its sequences too.
pub(super) fn serial_columns(
    create: &mut CreateTable,
    schema: &str,
) -> Result<Vec<(String, SequenceOptions)>> {
    let table = create
        .name
        .0
        .last()
        .and_then(|part| part.as_ident())
        .map(folded)
        .unwrap_or_default();
    let mut sequences = Vec::new();
    for column in &mut create.columns {
        let Some((data_type, spec)) = serial_column(column)? else {
            continue;
        };
        if create.temporary {
            return Err(Error::FeatureNotSupported(
                "SERIAL and identity columns of temporary tables are not supported yet".into(),
            ));
        }
        let name = folded(&column.name);
        let sequence = format!("{table}_{name}_seq");
        let mut spec = spec;
        spec.data_type = Some(data_type);
        spec.owned_by = Some(OwnedBy {
            table: table.clone(),
            column: name,
        });
        column.options.retain(|option| {
            !matches!(
                option.option,
                ColumnOption::Null
                    | ColumnOption::NotNull
                    | ColumnOption::Generated { .. }
                    | ColumnOption::Identity(_)
            )
        });
        column.options.push(option(ColumnOption::NotNull));
        column.options.push(option(ColumnOption::Default(
            datafusion::sql::sqlparser::ast::Expr::Function(nextval_call(schema, &sequence)),
        )));
        sequences.push((sequence, spec.options()?));
    }
    Ok(sequences)
}

fn option(option: ColumnOption) -> ColumnOptionDef {
    ColumnOptionDef { name: None, option }
}

/// `nextval('<sequence>')` as sqlparser writes a call: the name quoted
/// where it must be (`nextval('"Items_id_seq"')`), as `nextval` reads it,
/// and qualified outside `public` (`nextval('analytics.items_id_seq')`).
fn nextval_call(schema: &str, sequence: &str) -> datafusion::sql::sqlparser::ast::Function {
    let mut name = quiver_udf_registry::quote_ident(sequence);
    if schema != DEFAULT_SCHEMA {
        name = format!("{}.{name}", quiver_udf_registry::quote_ident(schema));
    }
    let sql = format!("nextval('{}')", name.replace('\'', "''"));
    match datafusion::sql::sqlparser::parser::Parser::new(
        &datafusion::sql::sqlparser::dialect::PostgreSqlDialect {},
    )
    .try_with_sql(&sql)
    .and_then(|mut parser| parser.parse_expr())
    {
        Ok(Expr::Function(call)) => call,
        other => unreachable!("nextval('...') parses as a call, not {other:?}"),
    }
}

/// The integer type and sequence options of a `SERIAL` or identity
/// column (its type becomes the integer type); `None` for another column.
fn serial_column(column: &mut ColumnDef) -> Result<Option<(SequenceType, SequenceSpec)>> {
    if let SqlType::Custom(name, modifiers) = &column.data_type
        && modifiers.is_empty()
        && let [part] = name.0.as_slice()
        && let Some(ident) = part.as_ident()
    {
        let serial = match ident.value.to_ascii_lowercase().as_str() {
            "serial" | "serial4" => Some((SequenceType::Integer, SqlType::Integer(None))),
            "bigserial" | "serial8" => Some((SequenceType::Bigint, SqlType::BigInt(None))),
            "smallserial" | "serial2" => Some((SequenceType::Smallint, SqlType::SmallInt(None))),
            _ => None,
        };
        if let Some((sequence_type, integer_type)) = serial {
            column.data_type = integer_type;
            return Ok(Some((sequence_type, SequenceSpec::default())));
        }
    }
    let identity = column
        .options
        .iter()
        .find_map(|option| match &option.option {
            ColumnOption::Generated {
                generated_as: GeneratedAs::Always | GeneratedAs::ByDefault,
                sequence_options,
                generation_expr: None,
                ..
            } => Some(sequence_options.clone().unwrap_or_default()),
            _ => None,
        });
    let Some(options) = identity else {
        return Ok(None);
    };
    let sequence_type = sequence_type(&column.data_type).map_err(|_| {
        Error::InvalidParameterValue(format!(
            "identity column type must be smallint, integer, or bigint (column \"{}\")",
            folded(&column.name)
        ))
    })?;
    Ok(Some((sequence_type, sequence_spec(&options)?)))
}

/// The sequence functions of one session.
pub(super) fn functions(relations: &Arc<SessionCatalog>) -> Vec<ScalarUDF> {
    let counters = Arc::new(Counters {
        session: Arc::downgrade(relations),
        last: Mutex::new(Last::default()),
    });
    let text = || DataType::Utf8;
    [
        (Call::Nextval, vec![TypeSignature::Exact(vec![text()])]),
        (Call::Currval, vec![TypeSignature::Exact(vec![text()])]),
        (Call::Lastval, vec![TypeSignature::Nullary]),
        (
            Call::Setval,
            vec![
                TypeSignature::Exact(vec![text(), DataType::Int64]),
                TypeSignature::Exact(vec![text(), DataType::Int64, DataType::Boolean]),
            ],
        ),
        (
            Call::PgGetSerialSequence,
            vec![TypeSignature::Exact(vec![text(), text()])],
        ),
    ]
    .into_iter()
    .map(|(call, signatures)| {
        ScalarUDF::from(SequenceFunction {
            call,
            signature: Signature::one_of(signatures, Volatility::Volatile),
            counters: counters.clone(),
        })
    })
    .collect()
}

/// What this session's `nextval` gave last.
#[derive(Debug, Default)]
struct Last {
    /// By sequence id (`currval`).
    by_sequence: HashMap<String, i64>,
    /// Of any sequence (`lastval`).
    any: Option<i64>,
}

/// The session's view of the sequences.
#[derive(Debug)]
struct Counters {
    /// Weak: a table's planned defaults call these functions, and the
    /// session's catalog keeps its tables' planned defaults.
    session: Weak<SessionCatalog>,
    last: Mutex<Last>,
}

impl Counters {
    fn session(&self) -> DfResult<Arc<SessionCatalog>> {
        self.session.upgrade().ok_or_else(|| {
            DataFusionError::Execution("the session calling the function has ended".into())
        })
    }

    fn last(&self) -> std::sync::MutexGuard<'_, Last> {
        self.last.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The sequence a call names.
    fn sequence(&self, name: &str) -> DfResult<Sequence> {
        let session = self.session()?;
        let name = relation_name(&session, name)?;
        session.sequence(&name).map_err(|e| match e {
            quiver_catalog::Error::TableNotFound(name) => external(Error::UndefinedTable(name)),
            other => external(other),
        })
    }

    fn nextval(&self, name: &str, count: usize) -> DfResult<Vec<i64>> {
        let sequence = self.sequence(name)?;
        let values = self
            .session()?
            .shared()
            .sequences()
            .next(&sequence, count)
            .map_err(external)?;
        if let Some(&last) = values.last() {
            let mut seen = self.last();
            seen.by_sequence.insert(sequence.id, last);
            seen.any = Some(last);
        }
        Ok(values)
    }

    fn currval(&self, name: &str) -> DfResult<i64> {
        let sequence = self.sequence(name)?;
        self.last()
            .by_sequence
            .get(&sequence.id)
            .copied()
            .ok_or_else(|| {
                external(Error::ObjectNotInPrerequisiteState(format!(
                    "currval of sequence \"{}\" is not yet defined in this session",
                    sequence.name
                )))
            })
    }

    fn lastval(&self) -> DfResult<i64> {
        self.last().any.ok_or_else(|| {
            external(Error::ObjectNotInPrerequisiteState(
                "lastval is not yet defined in this session".into(),
            ))
        })
    }

    fn setval(&self, name: &str, value: i64, is_called: bool) -> DfResult<i64> {
        let sequence = self.sequence(name)?;
        self.session()?
            .shared()
            .sequences()
            .set(&sequence, value, is_called)
            .map_err(external)
    }

    /// `pg_get_serial_sequence(table, column)`: `schema.<sequence>`, or
    /// NULL. Unlike PostgreSQL, NULL for a table there is not too:
    /// SQLAlchemy's reflection calls it with `attrelid::regclass::text`,
    /// which is the table's OID in digits here.
    fn serial_sequence(&self, table: &str, column: &str) -> DfResult<Option<String>> {
        let session = self.session()?;
        let table = relation_name(&session, table)?;
        Ok(session.owned_sequence(&table, column).map(|(name, _)| {
            format!(
                "{}.{}",
                quiver_udf_registry::quote_ident(&name.schema),
                quiver_udf_registry::quote_ident(&name.name)
            )
        }))
    }
}

/// The stored relation a function's text argument names (`'s'`,
/// `'public.s'`, `'"S"'`), as the session resolves it.
fn relation_name(session: &SessionCatalog, text: &str) -> DfResult<QualifiedName> {
    let reference = TableReference::parse_str(text);
    session
        .resolve(reference.schema(), reference.table())
        .map_err(external)
}

fn external(e: impl Into<Error>) -> DataFusionError {
    DataFusionError::External(Box::new(e.into()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Call {
    Nextval,
    Currval,
    Lastval,
    Setval,
    PgGetSerialSequence,
}

/// One of the session's sequence functions.
#[derive(Debug)]
pub(crate) struct SequenceFunction {
    call: Call,
    signature: Signature,
    counters: Arc<Counters>,
}

impl PartialEq for SequenceFunction {
    fn eq(&self, other: &Self) -> bool {
        self.call == other.call && Arc::ptr_eq(&self.counters, &other.counters)
    }
}

impl Eq for SequenceFunction {}

impl Hash for SequenceFunction {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.call.hash(state);
        Arc::as_ptr(&self.counters).hash(state);
    }
}

impl ScalarUDFImpl for SequenceFunction {
    fn name(&self) -> &str {
        match self.call {
            Call::Nextval => "nextval",
            Call::Currval => "currval",
            Call::Lastval => "lastval",
            Call::Setval => "setval",
            Call::PgGetSerialSequence => "pg_get_serial_sequence",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(match self.call {
            Call::PgGetSerialSequence => DataType::Utf8,
            _ => DataType::Int64,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let rows = args.number_rows;
        let counters = &self.counters;
        if let Call::Lastval = self.call {
            let value = counters.lastval()?;
            return Ok(ColumnarValue::Array(Arc::new(Int64Array::from(vec![
                value;
                rows
            ]))));
        }
        // `nextval('s')` over many rows: one call for all of them.
        if let (Call::Nextval, [ColumnarValue::Scalar(name)]) = (self.call, args.args.as_slice()) {
            let values = match name.try_as_str().flatten() {
                Some(name) => counters
                    .nextval(name, rows)?
                    .into_iter()
                    .map(Some)
                    .collect(),
                None => vec![None; rows],
            };
            return Ok(ColumnarValue::Array(Arc::new(Int64Array::from(values))));
        }
        let arrays: Vec<ArrayRef> = args
            .args
            .iter()
            .map(|arg| arg.to_array(rows))
            .collect::<DfResult<_>>()?;
        let names = arrays[0].as_string::<i32>();
        if let Call::PgGetSerialSequence = self.call {
            let columns = arrays[1].as_string::<i32>();
            let values = names
                .iter()
                .zip(columns.iter())
                .map(|(table, column)| match (table, column) {
                    (Some(table), Some(column)) => counters.serial_sequence(table, column),
                    _ => Ok(None),
                })
                .collect::<DfResult<StringArray>>()?;
            return Ok(ColumnarValue::Array(Arc::new(values)));
        }
        let values = (0..rows)
            .map(|row| {
                if names.is_null(row) {
                    return Ok(None);
                }
                let name = names.value(row);
                match self.call {
                    Call::Nextval => Ok(counters.nextval(name, 1)?.first().copied()),
                    Call::Currval => counters.currval(name).map(Some),
                    Call::Setval => {
                        let values =
                            arrays[1].as_primitive::<datafusion::arrow::datatypes::Int64Type>();
                        if values.is_null(row) {
                            return Ok(None);
                        }
                        let is_called = match arrays.get(2) {
                            Some(called) if called.is_null(row) => return Ok(None),
                            Some(called) => called.as_boolean().value(row),
                            None => true,
                        };
                        counters
                            .setval(name, values.value(row), is_called)
                            .map(Some)
                    }
                    Call::Lastval | Call::PgGetSerialSequence => unreachable!("answered above"),
                }
            })
            .collect::<DfResult<Int64Array>>()?;
        Ok(ColumnarValue::Array(Arc::new(values)))
    }
}
