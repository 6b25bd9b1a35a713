//! The extended query protocol: Parse, Bind, Describe, Execute.
//!
//! Parse plans a query or DML statement once, with `$n` placeholders; Describe
//! answers from that plan (parameter types DataFusion inferred, result
//! columns); Bind decodes the parameter values (text or binary) to the types
//! the plan expects, and Execute runs the plan with them substituted. Other
//! statements (DDL, SET, ...) take no parameters and run as in the simple
//! protocol.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::LogicalPlan;
use futures::{Sink, SinkExt};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, send_describe_response};
use pgwire::api::results::{FieldFormat, FieldInfo, Response};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::{Entry, PortalStore};
use pgwire::api::{ClientInfo, ClientPortalStore, DEFAULT_NAME, Type};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::data::{NoData, ParameterDescription};
use pgwire::messages::extendedquery::{Describe, TARGET_TYPE_BYTE_STATEMENT};
use postgres_types::FromSql;

use crate::encode::RowDescription;
use crate::handler::{Handler, respond};
use crate::parse::{SqlParser, Statement};
use crate::session::Session;
use crate::{Error, Result};

/// A statement after Parse.
#[derive(Clone)]
pub struct Prepared {
    statement: Statement,
    /// The plan of a query or DML statement, with its placeholders.
    plan: Option<LogicalPlan>,
    /// The type DataFusion inferred for each `$n` of `plan`, in order.
    parameters: Vec<Option<DataType>>,
    names: Option<Vec<Option<String>>>,
}

/// Parses and plans statements for one session.
pub struct PreparingParser {
    pub(crate) session: Arc<Session>,
    pub(crate) parser: Arc<SqlParser>,
}

#[async_trait]
impl QueryParser for PreparingParser {
    type Statement = Prepared;

    async fn parse_sql<C>(
        &self,
        _client: &C,
        sql: &str,
        _types: &[Option<Type>],
    ) -> PgWireResult<Option<Prepared>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let mut statements = self
            .parser
            .parse(sql)
            .inspect_err(|_| self.session.abort_block())?;
        let statement = match (statements.pop(), statements.is_empty()) {
            (None, _) => return Ok(None),
            (Some(statement), true) => statement,
            (Some(_), false) => {
                return Err(Error::Syntax(
                    "cannot insert multiple commands into a prepared statement".into(),
                )
                .into());
            }
        };
        let plan = self.session.plan_parameterized(&statement).await?;
        let parameters = match &plan {
            Some(plan) => parameter_types(plan)?,
            None => vec![],
        };
        let names = match &statement {
            Statement::Sql(statement) => crate::names::statement_names(statement),
            _ => None,
        };
        Ok(Some(Prepared {
            statement,
            plan,
            parameters,
            names,
        }))
    }

    fn get_parameter_types(&self, prepared: &Prepared) -> PgWireResult<Vec<Type>> {
        prepared
            .parameters
            .iter()
            .map(|t| match t {
                Some(t) => arrow_pg::datatypes::into_pg_type(t)
                    .map_err(|e| Error::FeatureNotSupported(e.to_string()).into()),
                None => Ok(Type::UNKNOWN),
            })
            .collect()
    }

    fn get_result_schema(
        &self,
        prepared: &Prepared,
        format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        match &prepared.plan {
            Some(plan) if !matches!(plan, LogicalPlan::Dml(_)) => {
                let schema = crate::names::rename(plan.schema().as_arrow(), prepared.names.clone());
                let description = RowDescription::new(&schema, &format_codes(format))?;
                Ok(description.fields().as_ref().clone())
            }
            _ => Ok(vec![]),
        }
    }
}

/// The inferred type of each `$n`, in order.
fn parameter_types(plan: &LogicalPlan) -> Result<Vec<Option<DataType>>> {
    let types = plan.get_parameter_types()?;
    Ok((1..=types.len())
        .map(|i| types.get(&format!("${i}")).cloned().flatten())
        .collect())
}

fn format_codes(format: Option<&Format>) -> Vec<i16> {
    match format {
        None | Some(Format::UnifiedText) => vec![],
        Some(Format::UnifiedBinary) => vec![1],
        Some(Format::Individual(codes)) => codes.clone(),
    }
}

#[async_trait]
impl ExtendedQueryHandler for Handler {
    type Statement = Prepared;
    type QueryParser = PreparingParser;

    fn query_parser(&self) -> Arc<PreparingParser> {
        Arc::new(self.preparing())
    }

    async fn on_describe<C>(&self, client: &mut C, message: Describe) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        // pgwire describes a statement with parameters but no result columns
        // (an INSERT) with an empty RowDescription; PostgreSQL sends NoData,
        // and pgjdbc counts a batch's updated rows only after NoData.
        if message.target_type == TARGET_TYPE_BYTE_STATEMENT {
            let name = message.name.as_deref().unwrap_or(DEFAULT_NAME);
            if let Some(Entry::Value(statement)) = client.portal_store().get_statement(name) {
                let response = self.do_describe_statement(client, &statement).await?;
                if !response.fields.is_empty() {
                    return send_describe_response(client, &response).await;
                }
                let oids = response.parameters.iter().map(Type::oid).collect();
                client
                    .send(PgWireBackendMessage::ParameterDescription(
                        ParameterDescription::new(oids),
                    ))
                    .await?;
                client
                    .send(PgWireBackendMessage::NoData(NoData::new()))
                    .await?;
                return Ok(());
            }
        }
        self._on_describe(client, message).await
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Prepared>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: pgwire::api::store::PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let prepared = &portal.statement.statement;
        let session = self.session();
        // A cancel from now on stops this portal's statement.
        session.canceller().begin();
        let outcome = match &prepared.plan {
            Some(plan) => {
                let plan = bind(plan, &prepared.parameters, portal)?;
                session.run_plan(plan, prepared.names.clone()).await
            }
            None => session.execute(prepared.statement.clone()).await,
        }
        .inspect_err(crate::handler::log_failure)?;
        respond(
            client,
            outcome,
            &format_codes(Some(&portal.result_column_format)),
        )
        .await
    }
}

/// Substitutes the portal's parameter values, decoded to the `expected`
/// types, into `plan`.
fn bind(
    plan: &LogicalPlan,
    expected: &[Option<DataType>],
    portal: &Portal<Prepared>,
) -> Result<LogicalPlan> {
    if portal.parameters.len() != expected.len() {
        return Err(Error::Protocol(format!(
            "bind message supplies {} parameters, but prepared statement requires {}",
            portal.parameters.len(),
            expected.len()
        )));
    }
    let values = portal
        .parameters
        .iter()
        .enumerate()
        .map(|(i, bytes)| {
            let declared = portal.statement.parameter_types.get(i).cloned().flatten();
            decode(
                bytes.as_deref(),
                portal.parameter_format.format_for(i),
                declared,
                expected[i].clone(),
            )
            .map_err(|e| Error::InvalidParameterValue(format!("parameter ${}: {e}", i + 1)))
        })
        .collect::<Result<Vec<ScalarValue>>>()?;
    Ok(plan.clone().with_param_values(values)?)
}

/// The Arrow type a client's declared parameter type stands for.
fn arrow_type(t: &Type) -> DataType {
    match *t {
        Type::BOOL => DataType::Boolean,
        Type::INT2 => DataType::Int16,
        Type::INT4 => DataType::Int32,
        Type::INT8 => DataType::Int64,
        Type::FLOAT4 => DataType::Float32,
        Type::FLOAT8 => DataType::Float64,
        Type::DATE => DataType::Date32,
        Type::TIMESTAMP => DataType::Timestamp(TimeUnit::Microsecond, None),
        Type::TIMESTAMPTZ => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        Type::BYTEA => DataType::Binary,
        _ => DataType::Utf8,
    }
}

/// Decodes one parameter value. Text values go through Arrow's cast from
/// text; binary values are read with the declared type's binary format.
fn decode(
    bytes: Option<&[u8]>,
    format: FieldFormat,
    declared: Option<Type>,
    expected: Option<DataType>,
) -> std::result::Result<ScalarValue, String> {
    let declared = declared.filter(|t| *t != Type::UNKNOWN);
    let target = expected
        .or_else(|| declared.as_ref().map(arrow_type))
        .unwrap_or(DataType::Utf8);
    let Some(bytes) = bytes else {
        return ScalarValue::try_from(&target).map_err(|e| e.to_string());
    };
    let value = match format {
        FieldFormat::Text => {
            let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
            ScalarValue::Utf8(Some(text.to_string()))
        }
        FieldFormat::Binary => {
            let t = declared.unwrap_or_else(|| {
                arrow_pg::datatypes::into_pg_type(&target).unwrap_or(Type::BYTEA)
            });
            binary(&t, bytes)?
        }
    };
    value.cast_to(&target).map_err(|e| e.to_string())
}

fn binary(t: &Type, bytes: &[u8]) -> std::result::Result<ScalarValue, String> {
    fn read<'a, T: FromSql<'a>>(t: &Type, bytes: &'a [u8]) -> std::result::Result<T, String> {
        T::from_sql(t, bytes).map_err(|e| e.to_string())
    }
    Ok(match *t {
        Type::BOOL => ScalarValue::Boolean(Some(read(t, bytes)?)),
        Type::INT2 => ScalarValue::Int16(Some(read(t, bytes)?)),
        Type::INT4 => ScalarValue::Int32(Some(read(t, bytes)?)),
        Type::INT8 => ScalarValue::Int64(Some(read(t, bytes)?)),
        Type::FLOAT4 => ScalarValue::Float32(Some(read(t, bytes)?)),
        Type::FLOAT8 => ScalarValue::Float64(Some(read(t, bytes)?)),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => {
            ScalarValue::Utf8(Some(read(t, bytes)?))
        }
        Type::BYTEA => ScalarValue::Binary(Some(read(t, bytes)?)),
        // As text, which casts to the decimal type the plan expects.
        Type::NUMERIC => {
            ScalarValue::Utf8(Some(read::<rust_decimal::Decimal>(t, bytes)?.to_string()))
        }
        Type::DATE => {
            let date: NaiveDate = read(t, bytes)?;
            let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).ok_or("calendar")?;
            ScalarValue::Date32(Some((date - epoch).num_days() as i32))
        }
        Type::TIMESTAMP => {
            let ts: NaiveDateTime = read(t, bytes)?;
            ScalarValue::TimestampMicrosecond(Some(ts.and_utc().timestamp_micros()), None)
        }
        Type::TIMESTAMPTZ => {
            let ts: DateTime<Utc> = read(t, bytes)?;
            ScalarValue::TimestampMicrosecond(Some(ts.timestamp_micros()), Some("UTC".into()))
        }
        ref other => {
            return Err(format!(
                "binary parameters of type {other} are not supported; send them as text"
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_binary_parameters_decode_to_the_expected_type() {
        let v = decode(Some(b"42"), FieldFormat::Text, None, Some(DataType::Int64)).unwrap();
        assert_eq!(v, ScalarValue::Int64(Some(42)));
        let v = decode(
            Some(&7i32.to_be_bytes()),
            FieldFormat::Binary,
            Some(Type::INT4),
            Some(DataType::Int64),
        )
        .unwrap();
        assert_eq!(v, ScalarValue::Int64(Some(7)));
        let v = decode(None, FieldFormat::Text, None, Some(DataType::Utf8)).unwrap();
        assert_eq!(v, ScalarValue::Utf8(None));
        assert!(decode(Some(b"x1"), FieldFormat::Text, None, Some(DataType::Int32)).is_err());
    }
}
