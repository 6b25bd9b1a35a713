//! The extended query protocol: Parse, Bind, Describe, Execute.
//!
//! Parse plans a query or DML statement once, with `$n` placeholders; Describe
//! answers from that plan (parameter types DataFusion inferred, result
//! columns); Bind decodes the parameter values (text or binary) to the types
//! the plan expects, and Execute runs the plan with them substituted. Other
//! statements (DDL, SET, ...) take no parameters and run as in the simple
//! protocol.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Debug;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::ScalarValue;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::logical_expr::expr::{Cast, Placeholder};
use datafusion::logical_expr::{Expr, ExprSchemable, LogicalPlan};
use datafusion::sql::parser::Statement as DfStatement;
use futures::{Sink, SinkExt};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, send_describe_response};
use pgwire::api::results::{FieldInfo, Response};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::{Entry, PortalStore};
use pgwire::api::{
    ClientInfo, ClientPortalStore, DEFAULT_NAME, PgWireConnectionState, SessionExtensions, Type,
};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::data::{NoData, ParameterDescription};
use pgwire::messages::extendedquery::{Describe, Execute, TARGET_TYPE_BYTE_STATEMENT};
use pgwire::messages::response::{CommandComplete, TransactionStatus};
use pgwire::messages::startup::SecretKey;
use pgwire::messages::{PgWireBackendMessage, ProtocolVersion};

use rustls_pki_types::CertificateDer;

use crate::encode::RowDescription;
use crate::handler::{Handler, respond};
use crate::parse::{SqlParser, Statement};
use crate::plan_cache::{PlanCache, Stamp, reads_when_run};
use crate::session::{Conflict, Returned, Session, take_on_conflict, take_returning};
use crate::{Error, Result};

/// A statement after Parse.
#[derive(Clone)]
pub struct Prepared {
    statement: Statement,
    /// The plan of a query or DML statement, with its placeholders.
    plan: Option<LogicalPlan>,
    /// The type DataFusion inferred for each `$n` of `plan`, in order.
    parameters: Vec<Option<DataType>>,
    /// The `n` of each `$n` the statement casts to an OID type.
    oid_parameters: HashSet<usize>,
    /// The `n` of each `$n` among its table functions' arguments: if any,
    /// `plan` is for describing it, and each Bind plans it again with
    /// their values in place (see [`crate::table_arguments`]).
    table_arguments: BTreeSet<usize>,
    names: Option<Vec<Option<String>>>,
    /// The `RETURNING` list of an `INSERT`, `UPDATE` or `DELETE`, planned
    /// as a query of its table; `plan` is the statement without it.
    returned: Option<Arc<Returned>>,
    /// The `ON CONFLICT` clause of an `INSERT`; `plan` is the statement
    /// without it.
    conflict: Option<Arc<Conflict>>,
    /// The columns `plan` produces, once a Describe asked (each Describe
    /// of a portal asks again); shared by the copies of a kept statement.
    produced: Arc<OnceLock<Schema>>,
    /// `plan` through DataFusion's optimizer, once an Execute asked, if
    /// each execution can bind its values into that (see
    /// [`Session::optimized`]); shared like `produced`.
    optimized: Arc<OnceLock<Option<LogicalPlan>>>,
    /// The text, the parameter types the client declared and what `plan`
    /// was made from: a statement run after its tables, functions or the
    /// session changed is planned again (see [`crate::plan_cache`]).
    sql: Arc<str>,
    declared: Vec<Option<Type>>,
    stamp: Stamp,
}

impl Prepared {
    /// The statement's plan as written and through DataFusion's optimizer,
    /// optimized at its first execution, if its executions can bind their
    /// values into that: not one planned again for each Bind (table
    /// function arguments).
    fn optimized(&self, session: &Session) -> Option<(&LogicalPlan, &LogicalPlan)> {
        let plan = self
            .plan
            .as_ref()
            .filter(|_| self.table_arguments.is_empty())?;
        let optimized = self.optimized.get_or_init(|| session.optimized(plan));
        Some((plan, optimized.as_ref()?))
    }
}

/// Parses and plans statements for one session.
pub struct PreparingParser {
    pub(crate) session: Arc<Session>,
    pub(crate) parser: Arc<SqlParser>,
    /// The statements parsed before, by their text.
    pub(crate) kept: Arc<PlanCache<Prepared>>,
}

impl PreparingParser {
    /// `sql`, its parameters declared `types`, as kept if it was parsed
    /// under the session's present stamp, else parsed and planned (and kept
    /// if its plan reads only listing tables).
    async fn parse(&self, sql: &str, types: &[Option<Type>]) -> PgWireResult<Option<Prepared>> {
        let oids: Vec<Option<u32>> = types.iter().map(|t| t.as_ref().map(Type::oid)).collect();
        let stamp = self.session.plan_stamp();
        if let Some(kept) = self.kept.get(sql, &oids, stamp) {
            self.session.check_block()?;
            return Ok(Some(kept));
        }
        let prepared = self.prepare(sql, types, stamp).await?;
        if let Some(prepared) = &prepared
            && prepared.table_arguments.is_empty()
            && prepared.plan.as_ref().is_some_and(reads_when_run)
        {
            self.kept.put(sql, &oids, stamp, prepared.clone());
        }
        Ok(prepared)
    }

    /// `prepared`, planned again if what it was planned from changed since:
    /// a statement prepared before a table was replaced, a temporary table
    /// created or a transaction block begun reads what is there now. Its
    /// parameters and result columns must stay as described to the client
    /// (0A000 otherwise, as PostgreSQL's "cached plan must not change
    /// result type").
    pub(crate) async fn refreshed(&self, prepared: &Prepared) -> PgWireResult<Option<Prepared>> {
        let Some(plan) = &prepared.plan else {
            return Ok(None);
        };
        if prepared.stamp == self.session.plan_stamp() {
            return Ok(None);
        }
        let Some(again) = self.parse(&prepared.sql, &prepared.declared).await? else {
            return Err(Error::Internal("a query planned again as no query".into()).into());
        };
        let columns = |plan: &LogicalPlan| -> Vec<DataType> {
            plan.schema()
                .fields()
                .iter()
                .map(|f| f.data_type().clone())
                .collect()
        };
        let same_result = match &again.plan {
            Some(new) => matches!(new, LogicalPlan::Dml(_)) || columns(new) == columns(plan),
            None => false,
        };
        if again.parameters != prepared.parameters || !same_result {
            return Err(Error::FeatureNotSupported(
                "cached plan must not change result type".into(),
            )
            .into());
        }
        Ok(Some(again))
    }

    /// Parses and plans `sql`, its parameters declared `types`, under `stamp`.
    async fn prepare(
        &self,
        sql: &str,
        types: &[Option<Type>],
        stamp: Stamp,
    ) -> PgWireResult<Option<Prepared>> {
        let mut statements = self
            .parser
            .parse(sql)
            .inspect_err(|_| self.session.abort_block())?;
        let mut statement = match (statements.pop(), statements.is_empty()) {
            (None, _) => return Ok(None),
            (Some(statement), true) => statement,
            (Some(_), false) => {
                return Err(Error::Syntax(
                    "cannot insert multiple commands into a prepared statement".into(),
                )
                .into());
            }
        };
        // An INSERT is planned without its ON CONFLICT clause, which
        // decides what of it is written (see `crate::session::on_conflict`).
        let conflict = match &mut statement {
            Statement::Sql(DfStatement::Statement(s)) => {
                take_on_conflict(s).inspect_err(|_| self.session.abort_block())?
            }
            _ => None,
        };
        // An INSERT, UPDATE or DELETE is planned without its RETURNING
        // list, which is planned as a query of its own.
        let returned = match &mut statement {
            Statement::Sql(DfStatement::Statement(s)) => match take_returning(s) {
                Some(items) => Some(
                    self.session
                        .plan_returning(s, &items)
                        .await
                        .inspect_err(|_| self.session.abort_block())?,
                ),
                None => None,
            },
            _ => None,
        };
        // Parameters among table functions' arguments, with their types:
        // the declared one, else the one the function implies.
        let table_arguments: BTreeMap<usize, Option<DataType>> = match &statement {
            Statement::Sql(sql) => crate::table_arguments::parameters(sql)
                .into_iter()
                .map(|(n, argument)| {
                    let declared = types.get(n - 1).cloned().flatten();
                    let declared = declared.and_then(|t| crate::params::arrow_type_of(&t));
                    let registry = self.session.function_registry();
                    (n, declared.or_else(|| argument.inferred_type(registry)))
                })
                .collect(),
            _ => BTreeMap::new(),
        };
        let plan = match &statement {
            Statement::Sql(sql) if !table_arguments.is_empty() => {
                // Described with a stand-in of each type for the values
                // Bind brings.
                let stand_in = |n| {
                    let value = match &table_arguments[&n] {
                        Some(t) => ScalarValue::new_default(t).unwrap_or(ScalarValue::Null),
                        None => ScalarValue::Null,
                    };
                    crate::table_arguments::constant(value, true)
                };
                let described = crate::table_arguments::with_values(sql, stand_in)?;
                self.session
                    .plan_parameterized(&Statement::Sql(described))
                    .await?
            }
            _ => self.session.plan_parameterized(&statement).await?,
        };
        let plan = plan.map(type_cast_parameters).transpose()?;
        let parameters = match &plan {
            Some(plan) => parameter_types(plan, &table_arguments)?,
            None => vec![],
        };
        let (names, oid_parameters) = match &statement {
            Statement::Sql(sql) => (
                match &returned {
                    Some(returned) => returned.names.clone(),
                    None => crate::names::statement_names(sql),
                },
                match sql {
                    DfStatement::Statement(s) => crate::oid_types::oid_parameters(s),
                    _ => HashSet::new(),
                },
            ),
            _ => (None, HashSet::new()),
        };
        Ok(Some(Prepared {
            statement,
            plan,
            parameters,
            oid_parameters,
            table_arguments: table_arguments.into_keys().collect(),
            names,
            returned: returned.map(Arc::new),
            conflict: conflict.map(Arc::new),
            produced: Arc::default(),
            optimized: Arc::default(),
            sql: sql.into(),
            declared: types.to_vec(),
            stamp,
        }))
    }
}

#[async_trait]
impl QueryParser for PreparingParser {
    type Statement = Prepared;

    async fn parse_sql<C>(
        &self,
        _client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<Prepared>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        self.parse(sql, types).await
    }

    fn get_parameter_types(&self, prepared: &Prepared) -> PgWireResult<Vec<Type>> {
        prepared
            .parameters
            .iter()
            .enumerate()
            .map(|(i, t)| match t {
                Some(t) => match crate::oid_types::parameter_type(t)
                    .filter(|_| prepared.oid_parameters.contains(&(i + 1)))
                {
                    Some(oid_type) => Ok(oid_type),
                    None => arrow_pg::datatypes::into_pg_type(t)
                        .map_err(|e| Error::FeatureNotSupported(e.to_string()).into()),
                },
                None => Ok(Type::UNKNOWN),
            })
            .collect()
    }

    fn get_result_schema(
        &self,
        prepared: &Prepared,
        format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        let plan = match &prepared.returned {
            Some(returned) => Some(returned.plan()),
            None => prepared.plan.as_ref(),
        };
        match plan {
            Some(plan) if !matches!(plan, LogicalPlan::Dml(_)) => {
                let produced = prepared
                    .produced
                    .get_or_init(|| self.session.produced_schema(plan));
                let schema = crate::session::result_schema(plan, produced, prepared.names.clone());
                let description = RowDescription::new(&schema, &format_codes(format))?;
                Ok(description.fields().as_ref().clone())
            }
            _ => Ok(vec![]),
        }
    }
}

/// Gives a parameter that is cast (`$1::text[]`, `CAST($1 AS int)`) the type
/// it is cast to, as PostgreSQL infers it; DataFusion leaves such a parameter
/// untyped, and a client that asks for its type (asyncpg) would be told
/// `unknown`. A parameter DataFusion typed from elsewhere keeps that type.
/// `LIMIT $1` and `OFFSET $1` are `bigint`s, as PostgreSQL types them, and
/// in `x = ANY ($1)` the parameter is an array of `x`'s type (psycopg sends
/// a list without a type; pgcli's catalog queries do so).
fn type_cast_parameters(plan: LogicalPlan) -> Result<LogicalPlan> {
    let typed = plan.transform_up_with_subqueries(|node| {
        let counts = matches!(node, LogicalPlan::Limit(_));
        let input = match node.inputs().as_slice() {
            [input] => Some(input.schema().clone()),
            _ => None,
        };
        node.map_expressions(|expr| {
            if counts
                && let Expr::Placeholder(p) = &expr
                && p.field.is_none()
            {
                let field = Field::new("", DataType::Int64, true);
                let typed = Placeholder::new_with_field(p.id.clone(), Some(Arc::new(field)));
                return Ok(Transformed::yes(Expr::Placeholder(typed)));
            }
            expr.transform_up(|expr| match expr {
                Expr::ScalarFunction(mut call)
                    if call.func.name() == "array_has"
                        && matches!(call.args.as_slice(), [Expr::Placeholder(p), _] if p.field.is_none()) =>
                {
                    let element = input
                        .as_ref()
                        .and_then(|schema| call.args[1].get_type(schema).ok());
                    let (Some(element), Expr::Placeholder(p)) = (element, &call.args[0]) else {
                        return Ok(Transformed::no(Expr::ScalarFunction(call)));
                    };
                    let list = Field::new("", DataType::new_list(element, true), true);
                    call.args[0] =
                        Expr::Placeholder(Placeholder::new_with_field(p.id.clone(), Some(Arc::new(list))));
                    Ok(Transformed::yes(Expr::ScalarFunction(call)))
                }
                Expr::Cast(Cast {
                    expr: operand,
                    field,
                }) if matches!(operand.as_ref(), Expr::Placeholder(p) if p.field.is_none()) => {
                    let Expr::Placeholder(p) = *operand else {
                        unreachable!("matched a placeholder")
                    };
                    let operand = Placeholder::new_with_field(
                        p.id,
                        Some(Arc::new(Field::new("", field.data_type().clone(), true))),
                    );
                    Ok(Transformed::yes(Expr::Cast(Cast {
                        expr: Box::new(Expr::Placeholder(operand)),
                        field,
                    })))
                }
                other => Ok(Transformed::no(other)),
            })
        })
    })?;
    Ok(typed.data)
}

/// The type of each `$n`, in order: the one DataFusion inferred in `plan`,
/// or for a table function's argument (not in `plan`) the one in
/// `table_arguments`.
fn parameter_types(
    plan: &LogicalPlan,
    table_arguments: &BTreeMap<usize, Option<DataType>>,
) -> Result<Vec<Option<DataType>>> {
    let types = plan.get_parameter_types()?;
    let in_plan = types
        .keys()
        .filter_map(|id| id.strip_prefix('$')?.parse::<usize>().ok());
    let count = in_plan
        .chain(table_arguments.keys().copied())
        .max()
        .unwrap_or(0);
    Ok((1..=count)
        .map(|i| match types.get(&format!("${i}")) {
            Some(t) => t.clone(),
            None => table_arguments.get(&i).cloned().flatten(),
        })
        .collect())
}

fn format_codes(format: Option<&Format>) -> Vec<i16> {
    match format {
        None | Some(Format::UnifiedText) => vec![],
        Some(Format::UnifiedBinary) => vec![1],
        Some(Format::Individual(codes)) => codes.clone(),
    }
}

/// The most rows one Execute returns before the portal is suspended, and
/// the most pgwire holds in memory for one: it collects the rows of an
/// Execute before it sends them.
///
/// pgwire sets aside room for as many rows as an Execute asks for before it
/// reads one: `max_rows` of 2^31 - 1 asked for 85 GB, and the allocation
/// failure ended the process (found by the protocol fuzzer,
/// `tests/e2e/fuzz.rs`). A client that sets `max_rows` reads on after
/// `PortalSuspended` with another Execute, so answering a large request in
/// parts is within the protocol. An Execute for every row (`max_rows` zero
/// or less, as PostgreSQL reads negative counts) is served in parts of this
/// size too, and answered as one ([`WholeResult`]).
const MAX_ROWS_PER_EXECUTE: i32 = 4096;

/// The client of an Execute for every row, served as several Executes of
/// [`MAX_ROWS_PER_EXECUTE`] rows: the `PortalSuspended` after each part is
/// not sent, and the `CommandComplete` at the end counts the rows of all.
struct WholeResult<'a, C> {
    client: &'a mut C,
    /// The last part ended with `PortalSuspended`: rows remain.
    suspended: bool,
    /// Rows sent so far.
    rows: usize,
}

impl<'a, C> WholeResult<'a, C> {
    fn new(client: &'a mut C) -> Self {
        Self {
            client,
            suspended: false,
            rows: 0,
        }
    }
}

impl<C> Sink<PgWireBackendMessage> for WholeResult<'_, C>
where
    C: Sink<PgWireBackendMessage> + Unpin,
{
    type Error = C::Error;

    fn poll_ready(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<std::result::Result<(), C::Error>> {
        Pin::new(&mut *self.get_mut().client).poll_ready(cx)
    }

    fn start_send(
        self: Pin<&mut Self>,
        message: PgWireBackendMessage,
    ) -> std::result::Result<(), C::Error> {
        let this = self.get_mut();
        let message = match message {
            PgWireBackendMessage::PortalSuspended(_) => {
                this.suspended = true;
                return Ok(());
            }
            PgWireBackendMessage::DataRow(_) => {
                this.rows += 1;
                message
            }
            PgWireBackendMessage::CommandComplete(complete) => {
                PgWireBackendMessage::CommandComplete(CommandComplete::new(counted(
                    &complete.tag,
                    this.rows,
                )))
            }
            other => other,
        };
        Pin::new(&mut *this.client).start_send(message)
    }

    fn poll_flush(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<std::result::Result<(), C::Error>> {
        Pin::new(&mut *self.get_mut().client).poll_flush(cx)
    }

    fn poll_close(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<std::result::Result<(), C::Error>> {
        Pin::new(&mut *self.get_mut().client).poll_close(cx)
    }
}

/// A `CommandComplete` tag of a result (`SELECT 4096`) with its count
/// replaced by `rows`; other tags as they are.
fn counted(tag: &str, rows: usize) -> String {
    match tag.split_once(' ') {
        Some(("SELECT", count)) if count.parse::<u64>().is_ok() => format!("SELECT {rows}"),
        _ => tag.to_string(),
    }
}

impl<C: ClientInfo> ClientInfo for WholeResult<'_, C> {
    fn socket_addr(&self) -> SocketAddr {
        self.client.socket_addr()
    }

    fn is_secure(&self) -> bool {
        self.client.is_secure()
    }

    fn protocol_version(&self) -> ProtocolVersion {
        self.client.protocol_version()
    }

    fn set_protocol_version(&mut self, version: ProtocolVersion) {
        self.client.set_protocol_version(version);
    }

    fn pid_and_secret_key(&self) -> (i32, SecretKey) {
        self.client.pid_and_secret_key()
    }

    fn set_pid_and_secret_key(&mut self, pid: i32, secret_key: SecretKey) {
        self.client.set_pid_and_secret_key(pid, secret_key);
    }

    fn state(&self) -> PgWireConnectionState {
        self.client.state()
    }

    fn set_state(&mut self, new_state: PgWireConnectionState) {
        self.client.set_state(new_state);
    }

    fn transaction_status(&self) -> TransactionStatus {
        self.client.transaction_status()
    }

    fn set_transaction_status(&mut self, new_status: TransactionStatus) {
        self.client.set_transaction_status(new_status);
    }

    fn metadata(&self) -> &HashMap<String, String> {
        self.client.metadata()
    }

    fn metadata_mut(&mut self) -> &mut HashMap<String, String> {
        self.client.metadata_mut()
    }

    fn session_extensions(&self) -> &SessionExtensions {
        self.client.session_extensions()
    }

    fn sni_server_name(&self) -> Option<&str> {
        self.client.sni_server_name()
    }

    fn client_certificates<'a>(&self) -> Option<&[CertificateDer<'a>]> {
        self.client.client_certificates()
    }
}

impl<C: ClientPortalStore> ClientPortalStore for WholeResult<'_, C> {
    type PortalStore = C::PortalStore;

    fn portal_store(&self) -> &C::PortalStore {
        self.client.portal_store()
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

    async fn on_execute<C>(&self, client: &mut C, mut message: Execute) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if message.max_rows > 0 {
            message.max_rows = message.max_rows.min(MAX_ROWS_PER_EXECUTE);
            return self._on_execute(client, message).await;
        }
        // Every row: pgwire collects all of a portal's rows before it sends
        // the first when asked for every row, so fetch them in parts, each
        // sent before the next is read, and answer as one.
        let mut whole = WholeResult::new(client);
        loop {
            whole.suspended = false;
            let part = Execute::new(message.name.clone(), MAX_ROWS_PER_EXECUTE);
            self._on_execute(&mut whole, part).await?;
            if !whole.suspended {
                return Ok(());
            }
        }
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
        let session = self.session();
        // A cancel from now on stops this portal's statement.
        session.canceller().begin();
        let refreshed = self
            .preparing()
            .refreshed(&portal.statement.statement)
            .await
            .inspect_err(|_| session.abort_block())?;
        let prepared = refreshed.as_ref().unwrap_or(&portal.statement.statement);
        let names = prepared.names.clone();
        let outcome = async {
            match prepared.optimized(session) {
                Some((planned, optimized)) => {
                    let values = values(&prepared.parameters, portal)?;
                    session
                        .run_optimized(planned, optimized, values, names)
                        .await
                }
                None => match self.portal_plan(prepared, portal).await? {
                    Some(plan) => match (&prepared.conflict, &prepared.returned) {
                        (Some(conflict), _) => session.run_on_conflict(plan, conflict).await,
                        (None, Some(returned)) => session.run_returned(plan, returned).await,
                        (None, None) => session.run_plan(plan, names).await,
                    },
                    None => session.execute(prepared.statement.clone()).await,
                },
            }
        }
        .await;
        let outcome = session
            .naming_not_null_column(crate::session::written_table(&prepared.statement), outcome)
            .await
            .inspect_err(crate::handler::log_failure)?;
        respond(
            client,
            outcome,
            &format_codes(Some(&portal.result_column_format)),
        )
        .await
    }
}

impl Handler {
    /// The plan `portal` runs: that of `prepared` (its statement, maybe
    /// planned again), with the portal's parameter values in place; `None`
    /// for a statement run without a plan.
    async fn portal_plan(
        &self,
        prepared: &Prepared,
        portal: &Portal<Prepared>,
    ) -> Result<Option<LogicalPlan>> {
        let Some(plan) = &prepared.plan else {
            return Ok(None);
        };
        let values = values(&prepared.parameters, portal)?;
        let plan = match &prepared.statement {
            Statement::Sql(sql) if !prepared.table_arguments.is_empty() => {
                let filled = crate::table_arguments::with_values(sql, |n| {
                    let typed = prepared.parameters[n - 1].is_some();
                    crate::table_arguments::constant(values[n - 1].clone(), typed)
                })?;
                let planned = self
                    .session()
                    .plan_parameterized(&Statement::Sql(filled))
                    .await?;
                match planned {
                    Some(plan) => type_cast_parameters(plan)?,
                    None => return Err(Error::Internal("a query planned as no query".into())),
                }
            }
            _ => plan.clone(),
        };
        Ok(Some(plan.with_param_values(values)?))
    }
}

/// The portal's parameter values, decoded to the `expected` types.
fn values(expected: &[Option<DataType>], portal: &Portal<Prepared>) -> Result<Vec<ScalarValue>> {
    if portal.parameters.len() != expected.len() {
        return Err(Error::Protocol(format!(
            "bind message supplies {} parameters, but prepared statement requires {}",
            portal.parameters.len(),
            expected.len()
        )));
    }
    portal
        .parameters
        .iter()
        .enumerate()
        .map(|(i, bytes)| {
            let declared = portal.statement.parameter_types.get(i).cloned().flatten();
            crate::params::decode(
                bytes.as_deref(),
                portal.parameter_format.format_for(i),
                declared,
                expected[i].clone(),
            )
            .map_err(|e| Error::InvalidParameterValue(format!("parameter ${}: {e}", i + 1)))
        })
        .collect()
}
