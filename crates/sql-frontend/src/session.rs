//! One client connection's session: its DataFusion context, its PostgreSQL
//! settings, and the statements it runs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use datafusion::arrow::array::{Array, Int64Array, RecordBatch, StringArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::TableProvider;
use datafusion::common::{ScalarValue, TableReference};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::{provider_as_source, source_as_provider};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::WriteOp;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{CreateMemoryTable, DdlStatement, LogicalPlan, LogicalPlanBuilder};
use datafusion::optimizer::Optimizer;
use datafusion::optimizer::simplify_expressions::SimplifyExpressions;
use datafusion::physical_plan::memory::MemoryStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{ExecutionPlan, collect, execute_stream};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::{ResetStatement, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::{
    CopySource, CopyTarget, Expr, Ident, ObjectName, ObjectType, Set, SetExpr,
    SetSessionAuthorizationParamKind, Statement, Value,
};
use futures::{StreamExt, TryStreamExt};
use quiver_catalog::{
    Catalog, DEFAULT_SCHEMA, Durability, Privilege, SessionCatalog, Staging, Target,
};
use quiver_udf_registry::{FunctionDef, FunctionRegistry, Grants, SizedText, SqlType};

use crate::auth::{READ_SERVER_FILES, Roles};
use crate::cancel::Canceller;
use crate::copy::{CopyIn, CopyOptions};
use crate::encode::CopyOutFormat;
use crate::functions::{Functions, SessionFunctions};
use crate::locations::ExternalLocations;
use crate::parse;
use crate::plan_cache::Stamp;
use crate::privileges::{Grant, Objects};
use crate::settings::Settings;
use crate::{Error, Result};

mod access;
mod alter_table;
mod buckets;
mod comments;
mod defaults;
mod foreign_keys;
mod function_tables;
mod in_place;
mod indexes;
mod insert_select;
mod not_null;
mod on_conflict;
mod prepared;
mod reshape;
mod returning;
mod schemas;
mod sequences;
mod unique_keys;
mod views;

pub(crate) use not_null::{refuse_nulls, written_table};
pub(crate) use on_conflict::{Conflict, take_on_conflict};
pub(crate) use returning::{Returned, take_returning};

use access::Identity;
pub(crate) use sequences::SequenceFunction;

/// What a statement produced.
pub enum Outcome {
    /// Rows to send, then the tag `command` and their count (`SELECT 3`;
    /// `INSERT 0 1` for an `INSERT ... RETURNING`).
    Rows {
        schema: SchemaRef,
        batches: SendableRecordBatchStream,
        command: &'static str,
    },
    /// A command that completed.
    Command(Completion),
    /// `COPY FROM STDIN` is ready for data (in the binary format or not).
    CopyIn { columns: usize, binary: bool },
    /// `COPY TO STDOUT` rows.
    CopyOut {
        schema: SchemaRef,
        format: CopyOutFormat,
        header: Option<String>,
        batches: SendableRecordBatchStream,
    },
}

/// A completed command: its tag and what else the client is told.
#[derive(Debug, Default)]
pub struct Completion {
    /// The command tag (`CREATE TABLE`, `INSERT 0 3`, ...).
    pub tag: String,
    /// A NOTICE to send first.
    pub notice: Option<String>,
    /// A `ParameterStatus` to send (a reported parameter changed).
    pub parameter: Option<(String, String)>,
    /// Transaction boundary: `Some(true)` starts one, `Some(false)` ends it.
    pub transaction: Option<bool>,
}

impl Completion {
    pub(crate) fn tag(tag: impl Into<String>) -> Self {
        Self {
            tag: tag.into(),
            ..Self::default()
        }
    }

    pub(crate) fn with_notice(mut self, notice: Option<String>) -> Self {
        self.notice = notice;
        self
    }
}

impl From<Completion> for Outcome {
    fn from(c: Completion) -> Self {
        Outcome::Command(c)
    }
}

/// The state of one connection.
pub struct Session {
    ctx: SessionContext,
    /// The engine options the session started with (the server's: its
    /// flags, Quiver's planning settings), what `RESET` returns to.
    defaults: Vec<(String, Option<String>)>,
    catalog: Arc<Catalog>,
    functions: Arc<Functions>,
    registered: SessionFunctions,
    settings: Arc<Mutex<Settings>>,
    /// The `COPY FROM STDIN` in progress, and the table it appends to.
    copy_in: Mutex<Option<(CopyIn, CopyDestination)>>,
    canceller: Arc<Canceller>,
    /// Writes of the open transaction block (also seen by `ctx`'s tables).
    staging: Arc<Staging>,
    /// The stored schemas and relations as the session sees them
    /// (`ctx`'s), through which its DDL goes.
    relations: Arc<SessionCatalog>,
    /// Login roles (`CREATE ROLE ... PASSWORD`).
    roles: Arc<Roles>,
    /// Where external tables may point.
    locations: Arc<ExternalLocations>,
    block: Mutex<Block>,
    /// Who logged in; set once, when the connection's start-up completes.
    identity: OnceLock<Identity>,
    /// The role `SET SESSION AUTHORIZATION` made the session's; `None`: the
    /// one that logged in.
    acting: Mutex<Option<String>>,
    /// Advanced by every statement that may change how this session plans
    /// a text (see [`crate::plan_cache`]), but for transaction control.
    generation: AtomicU64,
    /// Transaction blocks begun: the open block's number while one is open.
    blocks: AtomicU64,
    /// The statements `PREPARE` kept.
    prepared: prepared::PreparedStatements,
}

/// Where the session is with respect to a transaction block.
#[derive(Debug)]
/// Where the rows of a `COPY ... FROM STDIN` go.
enum CopyDestination {
    Table(Target),
    /// `COPY BUCKET`.
    Bucket(String),
}

enum Block {
    /// No block: each statement commits on its own.
    Idle,
    /// Between BEGIN and COMMIT; the savepoints defined, oldest first.
    Open(Vec<String>),
    /// A statement of the block failed: only ROLLBACK (or COMMIT) ends it.
    Failed,
}

impl Block {
    /// The open block's savepoints, for `statement` (which needs one).
    fn savepoints(&mut self, statement: &str) -> Result<&mut Vec<String>> {
        match self {
            Block::Idle => Err(Error::NoActiveTransaction(format!(
                "{statement} can only be used in transaction blocks"
            ))),
            Block::Failed => Err(Error::InFailedTransaction),
            Block::Open(savepoints) => Ok(savepoints),
        }
    }

    fn fail(&mut self) {
        if matches!(self, Block::Open(_)) {
            *self = Block::Failed;
        }
    }
}

impl Session {
    pub(crate) fn new(
        ctx: SessionContext,
        relations: Arc<SessionCatalog>,
        functions: Arc<Functions>,
        canceller: Arc<Canceller>,
        roles: Arc<Roles>,
        locations: Arc<ExternalLocations>,
    ) -> Self {
        relations.plan_with(Arc::new(views::SessionRelations::new(&ctx)));
        let settings = Settings::default();
        if let Ok(search_path) = settings.get("search_path") {
            relations.set_search_path(&search_path);
        }
        let settings = Arc::new(Mutex::new(settings));
        // `set_config('search_path', ...)` (pg_dump's first statement)
        // changes how names resolve, as `SET` does.
        let session = Arc::downgrade(&relations);
        let changed: crate::pg_functions::SettingChanged = Arc::new(move |name, value| {
            if let Some(session) = session.upgrade()
                && name.eq_ignore_ascii_case("search_path")
            {
                session.set_search_path(value);
            }
        });
        for function in crate::pg_functions::session_functions(settings.clone(), changed)
            .into_iter()
            .chain(sequences::functions(&relations))
            .chain(schemas::functions(&relations))
        {
            ctx.register_udf(function);
        }
        let defaults = engine_options(&ctx).collect();
        Self {
            defaults,
            roles,
            locations,
            canceller,
            staging: relations.staging().clone(),
            catalog: relations.shared().clone(),
            relations,
            block: Mutex::new(Block::Idle),
            identity: OnceLock::new(),
            acting: Mutex::new(None),
            generation: AtomicU64::new(0),
            blocks: AtomicU64::new(0),
            prepared: Default::default(),
            ctx,
            functions,
            registered: SessionFunctions::default(),
            settings,
            copy_in: Mutex::new(None),
        }
    }

    /// What cancels this session's statements.
    pub(crate) fn canceller(&self) -> &Arc<Canceller> {
        &self.canceller
    }

    /// Makes functions created or dropped (by any session) visible here.
    fn refresh_functions(&self) {
        self.registered.refresh(&self.ctx, &self.functions.registry);
    }

    fn settings(&self) -> std::sync::MutexGuard<'_, Settings> {
        self.settings.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn copy_slot(&self) -> std::sync::MutexGuard<'_, Option<(CopyIn, CopyDestination)>> {
        self.copy_in.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What a plan made now is made from: read before planning.
    pub(crate) fn plan_stamp(&self) -> Stamp {
        Stamp {
            catalog: self.catalog.generation(),
            functions: self.functions.registry.generation(),
            session: self.generation.load(Ordering::Acquire),
            // Inside a block the managed tables are its views (staged
            // writes first), a new view for each block.
            block: match self.staging.is_open() {
                true => self.blocks.load(Ordering::Acquire),
                false => 0,
            },
        }
    }

    /// Runs one parsed statement.
    pub async fn execute(&self, statement: parse::Statement) -> Result<Outcome> {
        let changes_planning = changes_planning(&statement);
        let written = not_null::written_table(&statement).map(|(t, c)| (t.clone(), c.to_vec()));
        let result = self.execute_unstamped(statement).await;
        let written = written.as_ref().map(|(t, c)| (t, c.as_slice()));
        let result = self.naming_not_null_column(written, result).await;
        if changes_planning {
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
        result
    }

    async fn execute_unstamped(&self, statement: parse::Statement) -> Result<Outcome> {
        if let parse::Statement::Sql(DfStatement::Statement(s)) = &statement
            && let Some(outcome) = match s.as_ref() {
                Statement::Commit { .. } => Some(self.end_block(true).await?),
                Statement::Rollback {
                    savepoint: None, ..
                } => Some(self.end_block(false).await?),
                s => self.transaction_control(s)?,
            }
        {
            return Ok(outcome);
        }
        self.check_block()?;
        let result = self.execute_statement(statement).await;
        self.note_failure(result)
    }

    async fn execute_statement(&self, statement: parse::Statement) -> Result<Outcome> {
        self.refresh_functions();
        let statement = match statement {
            parse::Statement::Sql(statement) => statement,
            parse::Statement::CreateAggregate(create) => {
                let may_create = |name: &str, args: &[SqlType], grants: &Grants| {
                    self.may_create_function(name, args, grants)
                };
                let (done, def) = self.functions.create_aggregate(create, &may_create).await?;
                self.created_function(&def)?;
                return Ok(done.into());
            }
            parse::Statement::DropAggregate(drop) => {
                let may_drop = |def: &FunctionDef| self.check_function_owner(def);
                let (done, dropped) = self.functions.drop_aggregates(drop, &may_drop)?;
                self.dropped_functions(&dropped)?;
                return Ok(done.into());
            }
            parse::Statement::RoleGrant(grant) => return self.grant_roles(grant),
            parse::Statement::CreateBucket {
                name,
                if_not_exists,
            } => return self.create_bucket(&name, if_not_exists),
            parse::Statement::DropBucket { names, if_exists } => {
                return self.drop_buckets(&names, if_exists);
            }
            parse::Statement::CopyBucket(copy) => return self.copy_bucket(*copy),
            parse::Statement::AlterSequenceOwnedBy {
                name,
                if_exists,
                owned_by,
            } => {
                return self
                    .alter_sequence_owned_by(&name, if_exists, &owned_by)
                    .await;
            }
            parse::Statement::LanguageGrant(grant) => {
                let objects = Objects::Languages(grant.languages);
                let give = grant.give;
                return self
                    .grant(
                        Grant::on(objects, &grant.privileges, &grant.grantees)?,
                        give,
                    )
                    .await;
            }
        };
        match statement {
            DfStatement::Statement(s) => match *s {
                Statement::CreateFunction(create) => {
                    let may_create = |name: &str, args: &[SqlType], grants: &Grants| {
                        self.may_create_function(name, args, grants)
                    };
                    let (done, def) = self.functions.create(create, &may_create).await?;
                    self.created_function(&def)?;
                    Ok(done.into())
                }
                Statement::DropFunction(drop) => {
                    let may_drop = |def: &FunctionDef| self.check_function_owner(def);
                    let (done, dropped) = self.functions.drop_functions(drop, &may_drop)?;
                    self.dropped_functions(&dropped)?;
                    Ok(done.into())
                }
                Statement::Set(set) => self.set(set).await,
                Statement::AlterTable(alter) => self.alter_table(alter).await,
                Statement::CreateRole(create) => self.create_role(create),
                Statement::Grant(grant) if grant.with_grant_option => Err(
                    Error::FeatureNotSupported("WITH GRANT OPTION is not supported".into()),
                ),
                Statement::Grant(grant) => {
                    let grant =
                        Grant::new(&grant.privileges, grant.objects.as_ref(), &grant.grantees)?;
                    self.grant(grant, true).await
                }
                Statement::Revoke(revoke) => {
                    let grant = Grant::new(
                        &revoke.privileges,
                        revoke.objects.as_ref(),
                        &revoke.grantees,
                    )?;
                    self.grant(grant, false).await
                }
                Statement::AlterRole { name, operation } => self.alter_role(&name, operation),
                Statement::Drop {
                    object_type: ObjectType::Role,
                    if_exists,
                    names,
                    ..
                } => self.drop_roles(&names, if_exists),
                Statement::Drop {
                    object_type: ObjectType::Table,
                    if_exists,
                    names,
                    cascade: true,
                    ..
                } => self.drop_tables_cascading(&names, if_exists).await,
                Statement::CreateIndex(create) => self.create_index(create).await,
                Statement::CreateSchema {
                    schema_name,
                    if_not_exists,
                    ..
                } => self.create_schema(&schema_name, if_not_exists).await,
                Statement::Drop {
                    object_type: ObjectType::Schema,
                    if_exists,
                    names,
                    cascade,
                    ..
                } => self.drop_schemas(&names, if_exists, cascade).await,
                Statement::CreateSequence {
                    temporary,
                    if_not_exists,
                    name,
                    data_type,
                    sequence_options,
                    owned_by,
                } => {
                    self.create_sequence(sequences::CreateSequence {
                        name: &name,
                        temporary,
                        if_not_exists,
                        data_type: data_type.as_ref(),
                        options: &sequence_options,
                        owned_by: owned_by.as_ref(),
                    })
                    .await
                }
                Statement::Drop {
                    object_type: ObjectType::Sequence,
                    if_exists,
                    names,
                    ..
                } => self.drop_sequences(&names, if_exists).await,
                Statement::Drop {
                    object_type: ObjectType::Index,
                    if_exists,
                    names,
                    ..
                } => self.drop_indexes(&names, if_exists).await,
                Statement::Prepare {
                    name,
                    data_types,
                    statement,
                } => self.prepare(&name, data_types, *statement),
                Statement::Execute {
                    name: Some(name),
                    parameters,
                    immediate: false,
                    ..
                } => {
                    let name = name.0.last().and_then(|part| part.as_ident());
                    let name = name.map(|ident| ident.value.clone()).unwrap_or_default();
                    let bound = self.bound(&name, parameters)?;
                    Box::pin(self.execute_statement(parse::Statement::Sql(bound))).await
                }
                Statement::Deallocate { name, .. } => self.deallocate(&name),
                Statement::Lock(lock) => self.lock_tables(&lock),
                Statement::AlterSchema(alter) => self.alter_schema(&alter),
                Statement::AlterFunction(alter) => self.alter_function(&alter),
                Statement::Comment {
                    object_type,
                    object_name,
                    comment,
                    if_exists,
                } => {
                    self.comment_on(object_type, &object_name, comment, if_exists)
                        .await
                }
                Statement::ShowVariable { variable } => self.show(variable).await,
                Statement::Truncate(truncate) => self.truncate_tables(truncate).await,
                Statement::Insert(insert) if insert.on.is_some() => {
                    self.insert_on_conflict(insert).await
                }
                mut statement @ (Statement::Insert(_)
                | Statement::Update(_)
                | Statement::Delete(_)) => match take_returning(&mut statement) {
                    Some(items) => self.run_returning(statement, items).await,
                    None => {
                        self.plan_and_run(DfStatement::Statement(Box::new(statement)))
                            .await
                    }
                },
                Statement::Copy {
                    source,
                    to,
                    target,
                    options,
                    legacy_options,
                    values: _,
                } => {
                    self.copy(source, to, target, &options, &legacy_options)
                        .await
                }
                other => {
                    self.plan_and_run(DfStatement::Statement(Box::new(other)))
                        .await
                }
            },
            DfStatement::CopyTo(_) => Err(server_file_copy()),
            DfStatement::Reset(reset) => self.reset(reset).await,
            other => self.plan_and_run(other).await,
        }
    }

    /// Runs `work` in the open transaction block, or outside one in a
    /// block of its own, committed if `work` succeeds and rolled back if
    /// not: a statement that writes several times, or writes and changes
    /// DDL, has all its effects or none.
    pub(super) async fn atomically<T>(&self, work: impl Future<Output = Result<T>>) -> Result<T> {
        if self.staging.is_open() {
            return work.await;
        }
        self.staging.begin();
        let done = work.await;
        match &done {
            Ok(_) => self.commit_staged().await?,
            Err(_) => self.relations.rollback(),
        }
        done
    }

    /// Commits the transaction block's DDL and staged writes.
    async fn commit_staged(&self) -> Result<()> {
        for table in self.relations.commit().await? {
            self.catalog.written(table.as_ref());
        }
        Ok(())
    }

    /// COMMIT (`commit`) or ROLLBACK of the transaction block.
    async fn end_block(&self, commit: bool) -> Result<Outcome> {
        let ended = std::mem::replace(&mut *self.block(), Block::Idle);
        let (tag, notice) = match ended {
            Block::Idle => (
                if commit { "COMMIT" } else { "ROLLBACK" },
                Some("there is no transaction in progress".to_string()),
            ),
            Block::Open(_) if commit => {
                self.commit_staged().await?;
                ("COMMIT", None)
            }
            // COMMIT of a failed block rolls it back, as in PostgreSQL.
            Block::Open(_) | Block::Failed => {
                self.relations.rollback();
                ("ROLLBACK", None)
            }
        };
        Ok(Completion {
            transaction: Some(false),
            ..Completion::tag(tag).with_notice(notice)
        }
        .into())
    }

    /// BEGIN, SAVEPOINT, ROLLBACK TO and RELEASE; `None` for any other
    /// statement.
    fn transaction_control(&self, statement: &Statement) -> Result<Option<Outcome>> {
        let mut block = self.block();
        let completion = match statement {
            Statement::StartTransaction { .. } => {
                let notice = match *block {
                    Block::Idle => {
                        self.blocks.fetch_add(1, Ordering::AcqRel);
                        self.staging.begin();
                        *block = Block::Open(Vec::new());
                        None
                    }
                    _ => Some("there is already a transaction in progress".to_string()),
                };
                Completion {
                    transaction: Some(true),
                    ..Completion::tag("BEGIN").with_notice(notice)
                }
            }
            Statement::Rollback {
                savepoint: Some(_), ..
            } => {
                let error = match *block {
                    Block::Idle => Error::NoActiveTransaction(
                        "ROLLBACK TO SAVEPOINT can only be used in transaction blocks".into(),
                    ),
                    _ => Error::FeatureNotSupported(
                        "ROLLBACK TO SAVEPOINT is not supported: Quiver undoes whole transaction blocks only (ROLLBACK)".into(),
                    ),
                };
                block.fail();
                return Err(error);
            }
            Statement::Savepoint { name } => {
                block.savepoints("SAVEPOINT")?.push(name.value.clone());
                Completion::tag("SAVEPOINT")
            }
            Statement::ReleaseSavepoint { name } => {
                let savepoints = block.savepoints("RELEASE SAVEPOINT")?;
                // Releasing a savepoint releases every later one too.
                let Some(at) = savepoints.iter().rposition(|s| *s == name.value) else {
                    block.fail();
                    return Err(Error::UndefinedSavepoint(name.value.clone()));
                };
                savepoints.truncate(at);
                Completion::tag("RELEASE")
            }
            _ => return Ok(None),
        };
        Ok(Some(completion.into()))
    }

    /// `LOCK TABLE`, which clients take to read tables as of one moment
    /// (pg_dump): in a transaction block, of tables that exist and that
    /// the session's role may read. A block reads its tables as they were
    /// when it first read them, and Quiver's writers never block readers,
    /// so there is nothing to hold.
    fn lock_tables(&self, lock: &datafusion::sql::sqlparser::ast::Lock) -> Result<Outcome> {
        self.block().savepoints("LOCK TABLE")?;
        for target in &lock.tables {
            let reference = crate::names::table_reference(&target.name);
            if let Target::Stored(name) = self.target(&reference)?
                && self.relations.entry(&name).is_none()
            {
                return Err(Error::UndefinedTable(target.name.to_string()));
            }
            self.check_table(&reference, Privilege::Select)?;
        }
        Ok(Completion::tag("LOCK TABLE").into())
    }

    fn block(&self) -> std::sync::MutexGuard<'_, Block> {
        self.block.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a transaction block is open (or failed).
    pub(crate) fn in_block(&self) -> bool {
        !matches!(*self.block(), Block::Idle)
    }

    /// Refuses statements in a failed transaction block.
    pub(crate) fn check_block(&self) -> Result<()> {
        match *self.block() {
            Block::Failed => Err(Error::InFailedTransaction),
            _ => Ok(()),
        }
    }

    /// A statement failed: an open transaction block is now aborted.
    pub(crate) fn abort_block(&self) {
        self.block().fail();
    }

    fn note_failure<T>(&self, result: Result<T>) -> Result<T> {
        if result.is_err() {
            self.abort_block();
        }
        result
    }

    async fn plan_and_run(&self, mut statement: DfStatement) -> Result<Outcome> {
        // An external table's definition is stored as its statement's text.
        let definition =
            matches!(statement, DfStatement::CreateExternalTable(_)).then(|| statement.to_string());
        // DataFusion's planner refuses CREATE TEMPORARY TABLE: plan it as a
        // table and mark the plan temporary again.
        let mut temporary = false;
        let mut columns = DeclaredColumns::default();
        if let DfStatement::Statement(s) = &mut statement
            && let Statement::CreateTable(create) = s.as_mut()
        {
            let schema = match create.temporary {
                true => DEFAULT_SCHEMA.to_string(),
                false => {
                    let reference = crate::names::table_reference(&create.name);
                    self.relations
                        .creation_name(reference.schema(), reference.table())?
                        .schema
                }
            };
            columns.sequences = sequences::serial_columns(create, &schema)?;
            temporary = std::mem::take(&mut create.temporary);
            columns.types = crate::sized_text::declared_types(&create.columns)?;
            columns.defaults = defaults::declared_defaults(&create.columns);
            let table = crate::names::table_reference(&create.name);
            columns.keys = unique_keys::declared_keys(create, table.table())?;
            columns.references = foreign_keys::take_declared(create);
            if temporary && !columns.references.is_empty() {
                return Err(Error::FeatureNotSupported(
                    "foreign keys of temporary tables are not supported yet".into(),
                ));
            }
        }
        let names = crate::names::statement_names(&statement);
        let plan = self.plan(statement).await?;
        match plan {
            LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(mut create)) => {
                create.temporary |= temporary;
                if columns.references.is_empty() {
                    return self.create_table(create, columns).await;
                }
                // Its foreign keys are added to it once it is made: all in
                // one block, so that a key that cannot be made leaves no
                // table behind.
                let name = self.creation_name(&create.name)?;
                let existed = self.relations.entry(&name).is_some();
                let references = std::mem::take(&mut columns.references);
                self.atomically(async {
                    let created = self.create_table(create, columns).await?;
                    if !existed {
                        for key in &references {
                            self.add_foreign_key(&name, key).await?;
                        }
                    }
                    Ok(created)
                })
                .await
            }
            LogicalPlan::Ddl(ddl) => self.ddl(ddl, definition).await,
            plan => self.run_plan(plan, names).await,
        }
    }

    /// The Wasm functions there are.
    pub(crate) fn function_registry(&self) -> &FunctionRegistry {
        &self.functions.registry
    }

    /// Plans a statement that may carry `$n` parameters (a query or DML),
    /// for the extended protocol; `None` for every other statement.
    pub async fn plan_parameterized(
        &self,
        statement: &parse::Statement,
    ) -> Result<Option<LogicalPlan>> {
        let parse::Statement::Sql(statement) = statement else {
            return Ok(None);
        };
        let parameterized = match statement {
            DfStatement::Statement(s) => matches!(
                s.as_ref(),
                Statement::Query(_)
                    | Statement::Insert(_)
                    | Statement::Update { .. }
                    | Statement::Delete(_)
            ),
            DfStatement::Explain(_) => true,
            _ => false,
        };
        if !parameterized {
            return Ok(None);
        }
        self.check_block()?;
        self.refresh_functions();
        let planned = self.plan(statement.clone()).await;
        Ok(Some(self.note_failure(planned)?))
    }

    /// Plans a statement — an `INSERT`'s `DEFAULT`s filled in (see
    /// [`defaults`]), scalar functions in `FROM` read as one-row tables
    /// (see [`function_tables`]), an `INSERT` whose query reads a `VALUES`
    /// list planned by Quiver (see [`insert_select`]) — its integer
    /// literals typed as PostgreSQL types them (see [`crate::integers`]) and its `INTERSECT ALL`/`EXCEPT ALL`
    /// with PostgreSQL's multiset rules (see [`crate::set_operations`]),
    /// its `numeric` quotients and averages at PostgreSQL's scale (see
    /// [`crate::numeric`]), its select lists' `EXISTS`/`IN` subqueries
    /// counted (see [`crate::select_list_subqueries`]) and its `char(n)` and
    /// `varchar(n)` values kept as PostgreSQL keeps them (see
    /// [`crate::sized_text`]). A `FULL`/`RIGHT JOIN ... USING` the rewrite left
    /// alone (see [`crate::using_joins`]) and a `LIMIT` of a subquery fail
    /// with 0A000; a value over 1 GB that constants ask for fails with 54000
    /// (see [`crate::sizes`]). The views it reads are planned into it (see
    /// [`views`]), so all of this applies to them too.
    async fn plan(&self, statement: DfStatement) -> Result<LogicalPlan> {
        let mut statement = self.insert_defaults(statement).await?;
        function_tables::scalar_functions_in_from(&mut statement, &self.ctx.state_ref().read());
        let plan = match statement {
            DfStatement::Statement(s) if matches!(s.as_ref(), Statement::Insert(i) if insert_select::reads_values_list(i)) =>
            {
                let Statement::Insert(insert) = *s else {
                    unreachable!("matched as an INSERT")
                };
                views::planning(self.plan_insert_select(insert)).await?
            }
            DfStatement::Statement(s) if matches!(s.as_ref(), Statement::Insert(i) if insert_select::may_name_fewer(i)) =>
            {
                let Statement::Insert(insert) = *s else {
                    unreachable!("matched as an INSERT")
                };
                let statement = DfStatement::Statement(Box::new(Statement::Insert(insert.clone())));
                match views::planning(self.ctx.state().statement_to_plan(statement)).await {
                    Err(e) if insert_select::is_column_count_mismatch(&e) => {
                        views::planning(self.plan_insert_select(insert)).await?
                    }
                    planned => planned?,
                }
            }
            statement => views::planning(self.ctx.state().statement_to_plan(statement)).await?,
        };
        crate::using_joins::refuse_outer_using(&plan)?;
        refuse_subquery_limits(&plan)?;
        crate::sizes::refuse_oversized_values(&plan)?;
        let plan = crate::integers::type_literals(plan)?;
        let plan = crate::set_operations::multiset_set_operations(plan)?;
        let plan = crate::numeric::numeric_quotients(plan)?;
        let plan = crate::select_list_subqueries::sort_key_subqueries(plan)?;
        let plan = crate::select_list_subqueries::select_list_subqueries(plan)?;
        Ok(crate::sized_text::sized_text_semantics(plan)?)
    }

    /// The columns `plan` produces when it runs: its schema after the
    /// analyzer. A plan the analyzer refuses before its parameters are bound
    /// (one whose parameters have no type yet) is described as written; it
    /// is analyzed again when it runs.
    pub(crate) fn produced_schema(&self, plan: &LogicalPlan) -> Schema {
        let state = self.ctx.state_ref();
        let state = state.read();
        state
            .analyzer()
            .execute_and_check(plan.clone(), state.config_options(), |_, _| {})
            .map_or_else(
                |_| plan.schema().as_arrow().clone(),
                |analyzed| analyzed.schema().as_arrow().clone(),
            )
    }

    /// Runs a planned query or DML statement (a bound prepared statement);
    /// `names` rename result columns the way PostgreSQL names them.
    pub async fn run_plan(
        &self,
        plan: LogicalPlan,
        names: Option<Vec<Option<String>>>,
    ) -> Result<Outcome> {
        self.check_block()?;
        let result = self.run_planned(plan, None, names).await;
        self.note_failure(result)
    }

    /// `plan`, a query with `$n` placeholders, through DataFusion's analyzer
    /// and optimizer once, for each execution to bind its values into
    /// ([`Session::run_optimized`]) instead of optimizing the whole plan
    /// again. `None` where that could change what an execution returns: a
    /// plan that calls a function that is not immutable (the optimizer
    /// folds `now()` to the time it runs), one with a parameter of no type
    /// yet, a statement other than a query, or a plan the optimizer refuses
    /// before its values are bound (it fails as before when it runs).
    pub(crate) fn optimized(&self, plan: &LogicalPlan) -> Option<LogicalPlan> {
        let query = !matches!(
            plan,
            LogicalPlan::Dml(_)
                | LogicalPlan::Ddl(_)
                | LogicalPlan::Statement(_)
                | LogicalPlan::Copy(_)
                | LogicalPlan::Explain(_)
                | LogicalPlan::Analyze(_)
                | LogicalPlan::DescribeTable(_)
        );
        let typed = plan
            .get_parameter_types()
            .is_ok_and(|types| types.values().all(Option::is_some));
        if !query || !typed || !only_immutable(plan) {
            return None;
        }
        let state = self.ctx.state_ref();
        let state = state.read();
        state.optimize(plan).ok()
    }

    /// Runs `optimized` (from [`Session::optimized`]) with `values` in
    /// place of its parameters. Privileges, limits and how result columns
    /// are typed are read from `planned`, the plan as written (with the same
    /// values): the optimizer may drop a table it need not read (`WHERE
    /// false`) or merge the nodes result types are traced through.
    pub async fn run_optimized(
        &self,
        planned: &LogicalPlan,
        optimized: &LogicalPlan,
        values: Vec<ScalarValue>,
        names: Option<Vec<Option<String>>>,
    ) -> Result<Outcome> {
        self.check_block()?;
        let result = async {
            let written = planned.clone().with_param_values(values.clone())?;
            let plan = optimized.clone().with_param_values(values)?;
            // What the optimizer does with values once they are known:
            // casts of them folded (`$1::date`), `$1 IS NULL` decided.
            let simplify = Optimizer::with_rules(vec![Arc::new(SimplifyExpressions::new())]);
            let plan = {
                let state = self.ctx.state_ref();
                let state = state.read();
                simplify.optimize(plan, &*state, |_, _| {})?
            };
            self.run_planned(written, Some(plan), names).await
        }
        .await;
        self.note_failure(result)
    }

    /// Refuses `plan`, as written, if it passes the limits Quiver keeps
    /// (see [`refuse_wide_limits`]) or reads or writes a table the role may
    /// not: the checks every query and DML statement passes before it runs.
    fn admit(&self, plan: &LogicalPlan) -> Result<()> {
        refuse_wide_limits(plan)?;
        self.check_privileges(plan)
    }

    /// Runs `plan` as written, a query or DML statement; a query runs as
    /// `optimized` if it comes so (see [`Session::run_optimized`]), its
    /// limits and privileges read from `plan` all the same.
    async fn run_planned(
        &self,
        plan: LogicalPlan,
        optimized: Option<LogicalPlan>,
        names: Option<Vec<Option<String>>>,
    ) -> Result<Outcome> {
        self.admit(&plan)?;
        match plan {
            LogicalPlan::Dml(ref dml) => {
                let command = match dml.op {
                    WriteOp::Insert(_) => "INSERT 0",
                    WriteOp::Delete => "DELETE",
                    WriteOp::Update => "UPDATE",
                    WriteOp::Ctas => "SELECT",
                    WriteOp::Truncate => "TRUNCATE TABLE",
                    _ => "MERGE",
                };
                if matches!(
                    dml.op,
                    WriteOp::Delete | WriteOp::Update | WriteOp::Truncate
                ) {
                    let (count, _) = self.change_in_place(dml, false).await?;
                    return Ok(match (dml.op.clone(), count) {
                        (WriteOp::Truncate, _) => Completion::tag(command),
                        (_, count) => Completion::tag(format!("{command} {count}")),
                    }
                    .into());
                }
                let table = self.target(&dml.table_name)?;
                let count = self
                    .keeping_keys(&table, async {
                        let plan = self.staged_insert(plan)?;
                        let LogicalPlan::Dml(dml) = &plan else {
                            return Err(Error::Internal("an INSERT planned otherwise".into()));
                        };
                        let target = source_as_provider(&dml.target)?;
                        let count = self.run_counting(plan).await?;
                        self.catalog.written(target.as_ref());
                        Ok(count)
                    })
                    .await?;
                Ok(Completion::tag(format!("{command} {count}")).into())
            }
            LogicalPlan::Copy(_) => Err(server_file_copy()),
            LogicalPlan::Statement(datafusion::logical_expr::Statement::SetVariable(_)) => {
                self.ctx.execute_logical_plan(plan).await?;
                Ok(Completion::tag("SET").into())
            }
            LogicalPlan::Statement(datafusion::logical_expr::Statement::ResetVariable(_)) => {
                self.ctx.execute_logical_plan(plan).await?;
                Ok(Completion::tag("RESET").into())
            }
            LogicalPlan::Statement(other) => Err(Error::FeatureNotSupported(format!(
                "{} is not supported",
                other.name()
            ))),
            LogicalPlan::Ddl(ddl) => Err(Error::FeatureNotSupported(format!(
                "{} cannot be prepared",
                ddl.name()
            ))),
            plan => self.query(plan, optimized, names).await,
        }
    }

    /// Runs a query `written` so, or its `optimized` form if there is one;
    /// `names` rename result columns the way PostgreSQL names them.
    async fn query(
        &self,
        written: LogicalPlan,
        optimized: Option<LogicalPlan>,
        names: Option<Vec<Option<String>>>,
    ) -> Result<Outcome> {
        let batches = match optimized {
            Some(plan) => self.stream(plan, true).await?,
            None => self.stream(written.clone(), false).await?,
        };
        let schema = Arc::new(result_schema(&written, &batches.schema(), names));
        Ok(Outcome::Rows {
            schema,
            batches,
            command: "SELECT",
        })
    }

    /// Starts `plan`, through DataFusion's optimizer unless `optimized`
    /// already; its rows stop when the statement is cancelled. The files of
    /// the managed tables it reads stay in place until its last row (see
    /// [`Catalog::leases`]).
    async fn stream(
        &self,
        plan: LogicalPlan,
        optimized: bool,
    ) -> Result<SendableRecordBatchStream> {
        let leases = self.catalog.leases(&plan).await;
        let (physical, task) = if optimized {
            let state = self.ctx.state();
            let physical = state
                .query_planner()
                .create_physical_plan(&plan, &state)
                .await?;
            (physical, Arc::new(TaskContext::from(&state)))
        } else {
            let frame = self.ctx.execute_logical_plan(plan).await?;
            let task = Arc::new(frame.task_ctx());
            (frame.create_physical_plan().await?, task)
        };
        let batches = execute_stream(physical.clone(), task)?;
        let batches = self.canceller.stream(batches, &physical);
        let schema = batches.schema();
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            schema,
            batches.inspect(move |_| {
                let _ = &leases;
            }),
        )))
    }

    /// `plan`, an `INSERT` planned before the transaction block open now
    /// (a block of the statement's own, see [`Session::keeping_keys`]),
    /// writing where the block writes.
    fn staged_insert(&self, plan: LogicalPlan) -> Result<LogicalPlan> {
        let LogicalPlan::Dml(mut dml) = plan else {
            return Ok(plan);
        };
        if self.staging.is_open() {
            let target = self.target(&dml.table_name)?;
            let planned = source_as_provider(&dml.target)?;
            let staged = self.relations.staged_target(&target, planned)?;
            dml.target = provider_as_source(staged);
        }
        Ok(LogicalPlan::Dml(dml))
    }

    /// Runs a DML plan and returns the row count it reports.
    async fn run_counting(&self, plan: LogicalPlan) -> Result<u64> {
        let stream = self.stream(plan, false).await?;
        let batches: Vec<RecordBatch> = stream.try_collect().await?;
        Ok(count_rows(&batches))
    }

    /// `CREATE TABLE` (and `CREATE TABLE AS`) of the `declared` columns:
    /// those declared `char(n)` or `varchar(n)` are marked with their
    /// types (see [`crate::sized_text`]), those with a `DEFAULT` with it
    /// (see [`quiver_catalog::COLUMN_DEFAULT`]), and the sequences of its
    /// `SERIAL` columns are created with it.
    async fn create_table(
        &self,
        create: CreateMemoryTable,
        declared: DeclaredColumns,
    ) -> Result<Outcome> {
        let name = create.name.table().to_string();
        let stored = match create.temporary {
            true => None,
            false => Some(self.creation_name(&create.name)?),
        };
        // The rows come from tables the role must be allowed to read.
        self.check_privileges(&create.input)?;
        let with_rows = has_rows(&create);
        let (input, schema) = self.declared_schema(&create, &declared)?;
        let schema = Arc::new(schema);
        let created = match &stored {
            None => {
                if create.or_replace {
                    self.relations.drop_temp_table(&name);
                }
                self.relations
                    .create_temp_table(&name, schema.clone(), create.if_not_exists)?
            }
            Some(stored) => {
                if create.or_replace {
                    self.check_owner(stored)?;
                    self.relations.drop_table(stored, true).await?;
                }
                self.relations
                    .create_table(
                        stored,
                        schema.clone(),
                        declared.sequences,
                        declared.keys,
                        create.if_not_exists,
                        &self.user().unwrap_or_default(),
                    )
                    .await?
            }
        };
        let Some(provider) = created else {
            return Ok(Completion::tag("CREATE TABLE")
                .with_notice(Some(format!(
                    "relation \"{name}\" already exists, skipping"
                )))
                .into());
        };
        if !with_rows {
            return Ok(Completion::tag("CREATE TABLE").into());
        }
        let reference = match &stored {
            Some(stored) => TableReference::partial(stored.schema.clone(), name.clone()),
            None => TableReference::bare(name.clone()),
        };
        let insert = LogicalPlanBuilder::insert_into(
            crate::sized_text::assign(input, &schema)?,
            reference,
            provider_as_source(provider),
            InsertOp::Append,
        )?
        .build()?;
        match self.run_counting(insert).await {
            Ok(count) => Ok(Completion::tag(format!("SELECT {count}")).into()),
            Err(e) => {
                // CREATE TABLE AS is all or nothing.
                match &stored {
                    None => {
                        self.relations.drop_temp_table(&name);
                    }
                    Some(stored) => {
                        if let Err(drop) = self.relations.drop_table(stored, true).await {
                            tracing::error!(table = %stored, error = %drop, "could not drop a failed CREATE TABLE AS");
                        }
                    }
                }
                Err(e)
            }
        }
    }

    /// The columns `create` makes, as they will be stored (see
    /// [`Session::create_table`]), and its input after type coercion.
    fn declared_schema(
        &self,
        create: &CreateMemoryTable,
        declared: &DeclaredColumns,
    ) -> Result<(LogicalPlan, Schema)> {
        // The columns' types are those of the rows as they will be stored:
        // after type coercion, which widens a UNION's first input to the
        // others' types.
        let state = self.ctx.state();
        let input = state.analyzer().execute_and_check(
            create.input.as_ref().clone(),
            state.config_options(),
            |_, _| {},
        )?;
        let schema = crate::sized_text::table_schema(&input, &declared.types);
        // Like PostgreSQL, columns of CREATE TABLE AS are nullable, and
        // a primary key's are not.
        let with_rows = has_rows(create);
        let primary_key: Vec<usize> = create
            .constraints
            .iter()
            .filter_map(|constraint| match constraint {
                datafusion::common::Constraint::PrimaryKey(columns) => Some(columns.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        let fields: Vec<Field> = schema
            .fields()
            .iter()
            .map(|f| defaults::with_default(f.as_ref().clone(), &declared.defaults))
            .enumerate()
            .map(|(i, f)| match (with_rows, primary_key.contains(&i)) {
                (_, true) => f.with_nullable(false),
                (true, false) => f.with_nullable(true),
                (false, false) => f,
            })
            .collect();
        Ok((input, Schema::new(fields)))
    }

    async fn ddl(&self, ddl: DdlStatement, definition: Option<String>) -> Result<Outcome> {
        match ddl {
            DdlStatement::CreateMemoryTable(create) => {
                self.create_table(create, DeclaredColumns::default()).await
            }
            DdlStatement::CreateExternalTable(create) => {
                if create.temporary {
                    return Err(Error::FeatureNotSupported(
                        "temporary tables are not supported yet".into(),
                    ));
                }
                // Its files are read and written as the server's user.
                self.check_member(READ_SERVER_FILES, || {
                    format!(
                        "permission denied to create external table \"{}\": only superusers and roles granted {READ_SERVER_FILES} may read the server's files",
                        create.name
                    )
                })?;
                let name = self.creation_name(&create.name)?;
                for location in &create.locations {
                    self.locations.check(location)?;
                }
                let definition = definition.ok_or_else(|| {
                    Error::Internal("CREATE EXTERNAL TABLE without its statement".into())
                })?;
                self.relations
                    .create_external_table(
                        &self.ctx.state(),
                        &create,
                        &name,
                        definition,
                        &self.user().unwrap_or_default(),
                    )
                    .await?;
                Ok(Completion::tag("CREATE TABLE").into())
            }
            DdlStatement::DropTable(drop) => {
                // A temporary table hides a persistent one of the same name.
                let dropped = match self.target(&drop.name)? {
                    Target::Temp(name) => self.relations.drop_temp_table(&name),
                    Target::Stored(name) => {
                        self.check_owner(&name)?;
                        self.relations.drop_table(&name, drop.if_exists).await?
                    }
                };
                Ok(Completion::tag("DROP TABLE")
                    .with_notice((!dropped).then(|| {
                        format!("table \"{}\" does not exist, skipping", drop.name.table())
                    }))
                    .into())
            }

            DdlStatement::CreateView(create) => self.create_view(create).await,
            DdlStatement::DropView(drop) => self.drop_view(&drop.name, drop.if_exists).await,
            other => Err(Error::FeatureNotSupported(format!(
                "{} is not supported yet",
                other.name()
            ))),
        }
    }

    async fn set(&self, set: Set) -> Result<Outcome> {
        let (name, value) = match set {
            Set::SingleAssignment {
                variable, values, ..
            } => {
                let name = object_name(&variable);
                refuse_unsafe_plan_setting(&name, set_value(&values).as_deref())?;
                if is_engine_option(&name) {
                    let statement = Statement::Set(Set::SingleAssignment {
                        scope: None,
                        hivevar: false,
                        variable,
                        values,
                    });
                    return self
                        .plan_and_run(DfStatement::Statement(Box::new(statement)))
                        .await;
                }
                let value = match name.eq_ignore_ascii_case("search_path") {
                    true => search_path_value(&values),
                    false => set_value(&values),
                };
                (name, value)
            }
            Set::SetTimeZone { value, .. } => ("timezone".to_string(), set_value(&[value])),
            Set::SetNames { charset_name, .. } => {
                ("client_encoding".to_string(), Some(charset_name.value))
            }
            Set::SetTransaction { .. } => return Ok(Completion::tag("SET").into()),
            Set::SetSessionAuthorization(param) => {
                return self.set_session_authorization(match param.kind {
                    SetSessionAuthorizationParamKind::Default => None,
                    SetSessionAuthorizationParamKind::User(name) => {
                        Some(crate::names::folded(&name))
                    }
                });
            }
            other => {
                return Err(Error::FeatureNotSupported(format!(
                    "{other} is not supported"
                )));
            }
        };
        let parameter = self.assign(&name, value)?;
        Ok(Completion {
            parameter,
            ..Completion::tag("SET")
        }
        .into())
    }

    /// Sets engine option `name` to `value` as `SET` would (`None`: the
    /// option's own default, DataFusion's `RESET`).
    async fn set_engine_option(&self, name: &str, value: Option<&str>) -> Result<()> {
        let statement = match value {
            Some(value) => parse_one(&format!("SET {name} = '{}'", value.replace('\'', "''")))?,
            None => parse_one(&format!("RESET {name}"))?,
        };
        self.plan_and_run(statement).await?;
        Ok(())
    }

    /// `RESET name` (`RESET ALL`: every parameter). An engine option
    /// (`datafusion.*`, `ballista.*`, `quiver.local_read_limit`) returns to
    /// the value the session started with: the server's, not DataFusion's
    /// default (`datafusion.execution.target_partitions` is `--partitions`,
    /// Ballista's adaptive planner stays off).
    async fn reset(&self, reset: ResetStatement) -> Result<Outcome> {
        let ResetStatement::Variable(variable) = &reset;
        let name = object_name(variable);
        if name.eq_ignore_ascii_case("session.authorization")
            || name.eq_ignore_ascii_case("session authorization")
        {
            return self.set_session_authorization(None);
        }
        if is_engine_option(&name) {
            let name = name.to_ascii_lowercase();
            let Some((_, value)) = self.defaults.iter().find(|(key, _)| *key == name) else {
                return Err(Error::UndefinedParameter(name));
            };
            self.set_engine_option(&name, value.as_deref()).await?;
            return Ok(Completion::tag("RESET").into());
        }
        let parameter = match name.eq_ignore_ascii_case("all") {
            true => {
                // Every engine option the session changed, back to the
                // server's value.
                let now: HashMap<String, Option<String>> = engine_options(&self.ctx).collect();
                for (key, value) in &self.defaults {
                    let changed = now.get(key).is_some_and(|current| current != value);
                    if changed && key != quiver_scheduler::SESSION_SETTING {
                        self.set_engine_option(key, value.as_deref()).await?;
                    }
                }
                *self.settings() = Settings::default();
                let search_path = self.settings().get("search_path")?;
                self.relations.set_search_path(&search_path);
                None
            }
            false => self.assign(&name, None)?,
        };
        Ok(Completion {
            parameter,
            ..Completion::tag("RESET")
        }
        .into())
    }

    /// Sets the PostgreSQL parameter `name` to `value` (`None`: its
    /// default). Returns the name and value to report to the client when
    /// it is a reported one.
    fn assign(&self, name: &str, value: Option<String>) -> Result<Option<(String, String)>> {
        let mut settings = self.settings();
        let parameter = match value {
            Some(value) => settings.set(name, value)?,
            None => {
                settings.reset(name)?;
                None
            }
        };
        if name.eq_ignore_ascii_case("search_path") {
            let search_path = settings.get("search_path")?;
            drop(settings);
            self.relations.set_search_path(&search_path);
        }
        Ok(parameter)
    }

    async fn show(&self, variable: Vec<Ident>) -> Result<Outcome> {
        // `SHOW TRANSACTION ISOLATION LEVEL` and `SHOW TIME ZONE` are
        // words of SQL; other names of several parts are dotted.
        let words = variable.len() > 1
            && ["transaction", "time"]
                .iter()
                .any(|word| variable[0].value.eq_ignore_ascii_case(word));
        let name = variable
            .iter()
            .map(|i| i.value.to_ascii_lowercase())
            .collect::<Vec<_>>()
            .join(if words { "_" } else { "." });
        if is_engine_option(&name) || name == "all" {
            let statement = Statement::ShowVariable { variable };
            return self
                .plan_and_run(DfStatement::Statement(Box::new(statement)))
                .await;
        }
        let name = match name.as_str() {
            "transaction_isolation_level" => "transaction_isolation".to_string(),
            "time_zone" => "timezone".to_string(),
            _ => name,
        };
        // What the session's role decides.
        let value = match name.as_str() {
            "session_authorization" => self.user().unwrap_or_default(),
            "is_superuser" => on_off(self.is_superuser()),
            _ => self.settings().get(&name)?,
        };
        let schema = Arc::new(Schema::new(vec![Field::new(&name, DataType::Utf8, false)]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(StringArray::from(vec![value]))],
        )
        .map_err(|e| Error::Internal(e.to_string()))?;
        let batches = Box::pin(MemoryStream::try_new(vec![batch], schema.clone(), None)?);
        Ok(Outcome::Rows {
            schema,
            batches,
            command: "SELECT",
        })
    }

    async fn copy(
        &self,
        source: CopySource,
        to: bool,
        target: CopyTarget,
        options: &[datafusion::sql::sqlparser::ast::CopyOption],
        legacy: &[datafusion::sql::sqlparser::ast::CopyLegacyOption],
    ) -> Result<Outcome> {
        let options = CopyOptions::parse(options, legacy)?;
        match (to, target) {
            (true, CopyTarget::Stdout) => {
                let query = match source {
                    CopySource::Table {
                        table_name,
                        columns,
                    } => {
                        let columns = if columns.is_empty() {
                            "*".to_string()
                        } else {
                            columns
                                .iter()
                                .map(ToString::to_string)
                                .collect::<Vec<_>>()
                                .join(", ")
                        };
                        parse_one(&format!("SELECT {columns} FROM {table_name}"))?
                    }
                    CopySource::Query(query) => {
                        DfStatement::Statement(Box::new(Statement::Query(query)))
                    }
                };
                let Outcome::Rows {
                    schema, batches, ..
                } = self.plan_and_run(query).await?
                else {
                    return Err(Error::Internal("COPY source produced no rows".into()));
                };
                Ok(Outcome::CopyOut {
                    header: options.header_line(&schema),
                    format: options.out_format(),
                    schema,
                    batches,
                })
            }
            (false, CopyTarget::Stdin) => {
                let CopySource::Table {
                    table_name,
                    columns,
                } = source
                else {
                    return Err(Error::Syntax("COPY FROM needs a table".into()));
                };
                let reference = crate::names::table_reference(&table_name);
                let name = reference.table().to_string();
                let provider = self
                    .ctx
                    .table_provider(reference.clone())
                    .await
                    .map_err(|_| Error::UndefinedTable(reference.to_string()))?;
                self.check_table(&reference, Privilege::Insert)?;
                let columns: Vec<String> = columns.iter().map(|c| c.value.clone()).collect();
                let target = self.target(&reference)?;
                let copy = CopyIn::new(name, provider, &columns, &options)?;
                let count = if columns.is_empty() {
                    copy.provider.schema().fields().len()
                } else {
                    columns.len()
                };
                *self.copy_slot() = Some((copy, CopyDestination::Table(target)));
                Ok(Outcome::CopyIn {
                    columns: count,
                    binary: options.binary,
                })
            }
            _ => Err(server_file_copy()),
        }
    }

    /// Data of the `COPY FROM STDIN` in progress.
    pub fn copy_data(&self, data: &[u8]) {
        if let Some((copy, _)) = self.copy_slot().as_mut() {
            copy.feed(data);
        }
    }

    /// The client ended `COPY FROM STDIN`: append the rows. Returns the tag.
    pub async fn copy_done(&self) -> Result<String> {
        let result = self.finish_copy().await;
        self.note_failure(result)
    }

    async fn finish_copy(&self) -> Result<String> {
        let (copy, target) = self
            .copy_slot()
            .take()
            .ok_or_else(|| Error::Internal("no COPY in progress".into()))?;
        let (provider, batches) = copy.finish()?;
        let target = match target {
            CopyDestination::Table(target) => target,
            CopyDestination::Bucket(name) => {
                let writes = buckets::bucket_writes(&batches)?;
                self.buckets()?.write(&name, &writes, Durability::Now)?;
                return Ok(format!("COPY {}", writes.len()));
            }
        };
        let count = self
            .keeping_keys(&target, async {
                let provider = self.relations.staged_target(&target, provider)?;
                self.append(provider, batches).await
            })
            .await?;
        Ok(format!("COPY {count}"))
    }

    /// The client abandoned `COPY FROM STDIN`: nothing is appended.
    pub fn copy_fail(&self) {
        self.copy_slot().take();
        self.abort_block();
    }

    /// Appends `batches` to a table on the frontend, through the table's own
    /// `insert_into` (the rows are in this process; they are not a plan an
    /// executor could rebuild), its sized text values coerced to their
    /// columns' types.
    async fn append(
        &self,
        provider: Arc<dyn TableProvider>,
        batches: Vec<RecordBatch>,
    ) -> Result<u64> {
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        if rows == 0 {
            return Ok(0);
        }
        let schema = provider.schema();
        let batches = batches
            .into_iter()
            .map(|batch| crate::sized_text::assign_batch(batch, &schema))
            .collect::<datafusion::common::Result<Vec<_>>>()?;
        let state = self.ctx.state();
        let input = MemorySourceConfig::try_new_exec(&[batches], schema, None)?;
        let plan: Arc<dyn ExecutionPlan> = provider
            .insert_into(&state, input, InsertOp::Append)
            .await?;
        let result = collect(plan, self.ctx.task_ctx()).await?;
        self.catalog.written(provider.as_ref());
        Ok(count_rows(&result))
    }
}

/// Whether running `statement` may change how the session plans a text
/// (see [`crate::plan_cache`]): anything but a query, an `INSERT` or
/// transaction control (which [`Stamp::block`] follows) — `SET`, DDL, a
/// temporary table, a role, `SELECT ... INTO` (a table).
fn changes_planning(statement: &parse::Statement) -> bool {
    let parse::Statement::Sql(DfStatement::Statement(s)) = statement else {
        return true;
    };
    match s.as_ref() {
        Statement::Query(query) => {
            matches!(query.body.as_ref(), SetExpr::Select(select) if select.into.is_some())
        }
        Statement::Insert(_)
        | Statement::StartTransaction { .. }
        | Statement::Commit { .. }
        | Statement::Rollback { .. }
        | Statement::Savepoint { .. }
        | Statement::ReleaseSavepoint { .. } => false,
        _ => true,
    }
}

/// The result columns of a query `plan` as PostgreSQL describes them: of
/// the types its rows have when it runs, `produced` (its schema after the
/// analyzer, which may differ from the written plan's: a `UNION` of
/// `integer` and `bigint` columns is `bigint`), named by `names` (see
/// [`crate::names`]), OIDs as `oid` (see [`crate::oid_types`]).
pub(crate) fn result_schema(
    plan: &LogicalPlan,
    produced: &Schema,
    names: Option<Vec<Option<String>>>,
) -> Schema {
    let schema = crate::oid_types::mark_columns(plan, produced.clone());
    let schema = crate::encode::display_metadata(plan, schema);
    crate::names::rename(&schema, names)
}

fn server_file_copy() -> Error {
    Error::FeatureNotSupported(
        "COPY to or from a server file or program is not supported: use COPY ... FROM STDIN / TO STDOUT (psql's \\copy)".into(),
    )
}

/// Parses one statement Quiver wrote itself (no client rewrites needed).
fn parse_one(sql: &str) -> Result<DfStatement> {
    let mut statements = datafusion::sql::parser::DFParser::parse_sql_with_dialect(
        sql,
        &datafusion::sql::sqlparser::dialect::PostgreSqlDialect {},
    )?;
    match (statements.pop_back(), statements.is_empty()) {
        (Some(statement), true) => Ok(statement),
        _ => Err(Error::Syntax(format!("expected one statement: {sql}"))),
    }
}

/// The `count` a DML plan reports.
fn count_rows(batches: &[RecordBatch]) -> u64 {
    batches
        .iter()
        .filter(|b| b.num_columns() > 0)
        .map(|b| {
            let column = b.column(0);
            if let Some(a) = column.as_any().downcast_ref::<UInt64Array>() {
                a.iter().flatten().sum::<u64>()
            } else if let Some(a) = column.as_any().downcast_ref::<Int64Array>() {
                a.iter().flatten().sum::<i64>() as u64
            } else {
                b.num_rows() as u64
            }
        })
        .sum()
}

/// Whether `create` is `CREATE TABLE ... AS` (its rows are written too).
fn has_rows(create: &CreateMemoryTable) -> bool {
    !matches!(create.input.as_ref(),
        LogicalPlan::EmptyRelation(e) if !e.produce_one_row)
}

/// What `CREATE TABLE` declares of its columns beyond their types.
#[derive(Default)]
struct DeclaredColumns {
    /// The sized text types of columns, by name.
    types: HashMap<String, SizedText>,
    /// The `DEFAULT`s of columns, as SQL text, by name.
    defaults: HashMap<String, String>,
    /// The sequences of its `SERIAL` and identity columns.
    sequences: Vec<(String, quiver_catalog::SequenceOptions)>,
    /// Its `PRIMARY KEY` and `UNIQUE` constraints.
    keys: Vec<quiver_catalog::IndexEntry>,
    /// Its `FOREIGN KEY` constraints, as written.
    references: Vec<datafusion::sql::sqlparser::ast::ForeignKeyConstraint>,
}

pub(crate) fn object_name(name: &ObjectName) -> String {
    name.0
        .iter()
        .map(|part| {
            part.as_ident()
                .map(|i| i.value.clone())
                .unwrap_or_else(|| part.to_string())
        })
        .collect::<Vec<_>>()
        .join(".")
}

fn on_off(on: bool) -> String {
    if on { "on" } else { "off" }.to_string()
}

/// Fails with 0A000 for a setting under which distributed plans are known
/// to answer wrongly: issue 18's differential test found joins over
/// unpartitioned inputs (`datafusion.optimizer.repartition_joins = false`)
/// answering wrongly.
fn refuse_unsafe_plan_setting(name: &str, value: Option<&str>) -> Result<()> {
    let Some(value) = value.map(str::to_ascii_lowercase) else {
        return Ok(());
    };
    let off = matches!(value.as_str(), "false" | "off" | "0");
    let unsafe_value = match name.to_ascii_lowercase().as_str() {
        "datafusion.optimizer.repartition_joins" if off => "false",
        _ => return Ok(()),
    };
    Err(Error::FeatureNotSupported(format!(
        "{name} = {unsafe_value} is not supported: distributed joins planned so can give wrong answers"
    )))
}

/// Fails with 0A000 if a `LIMIT` or `OFFSET` of `plan` is a subquery
/// (`LIMIT (SELECT n FROM t)`): the plan cannot be sent to the cluster
/// (`datafusion-proto` encodes only constant counts).
fn refuse_subquery_limits(plan: &LogicalPlan) -> Result<()> {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    use datafusion::logical_expr::Expr as PlanExpr;
    let mut found = false;
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::Limit(limit) = node {
            found = [&limit.skip, &limit.fetch]
                .into_iter()
                .flatten()
                .any(|count| {
                    count
                        .exists(|e| Ok(matches!(e, PlanExpr::ScalarSubquery(_))))
                        .unwrap_or(false)
                });
        }
        Ok(if found {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    })?;
    if found {
        return Err(Error::FeatureNotSupported(
            "LIMIT and OFFSET take a constant or a parameter, not a subquery".into(),
        ));
    }
    Ok(())
}

/// Whether every function `plan` calls is immutable: the same arguments
/// give the same value whenever it runs.
fn only_immutable(plan: &LogicalPlan) -> bool {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    use datafusion::logical_expr::{Expr, Volatility};
    let mut immutable = true;
    // The first function that is not immutable stops the walk.
    let _ = plan.apply_with_subqueries(|node| {
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                immutable = match e {
                    Expr::ScalarFunction(f) => {
                        f.func.signature().volatility == Volatility::Immutable
                    }
                    Expr::ScalarVariable(..) => false,
                    _ => true,
                };
                Ok(if immutable {
                    TreeNodeRecursion::Continue
                } else {
                    TreeNodeRecursion::Stop
                })
            })
        })
    });
    immutable
}

/// Refuses a `LIMIT`/`OFFSET` whose rows (skipped and fetched) pass
/// 4,294,967,295: Ballista sends limits to executors as 32-bit numbers
/// (docs/upstream.md #2), and `LIMIT 4294967297` fetched one row.
fn refuse_wide_limits(plan: &LogicalPlan) -> Result<()> {
    use datafusion::common::tree_node::TreeNodeRecursion;
    use datafusion::logical_expr::{FetchType, SkipType};
    let mut wide = false;
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::Limit(limit) = node {
            let skip = match limit.get_skip_type() {
                Ok(SkipType::Literal(skip)) => skip,
                _ => 0,
            };
            let fetch = match limit.get_fetch_type() {
                Ok(FetchType::Literal(Some(fetch))) => fetch,
                _ => 0,
            };
            wide = skip.saturating_add(fetch) > u32::MAX as usize;
        }
        Ok(if wide {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    })?;
    if wide {
        return Err(Error::FeatureNotSupported(format!(
            "LIMIT and OFFSET cannot pass {} rows together",
            u32::MAX
        )));
    }
    Ok(())
}

/// Options DataFusion and Ballista own; the rest are PostgreSQL parameters.
/// Every engine option of `ctx` with its value now (`None`: unset).
fn engine_options(ctx: &SessionContext) -> impl Iterator<Item = (String, Option<String>)> {
    ctx.state()
        .config()
        .options()
        .entries()
        .into_iter()
        .map(|entry| (entry.key, entry.value))
}

fn is_engine_option(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.starts_with("datafusion.")
        || lower.starts_with("ballista.")
        || lower == quiver_scheduler::LOCAL_READ_LIMIT_SETTING
}

/// The text of a `SET` value; `None` for `DEFAULT`.
/// `SET search_path TO a, "B", 'c'` as the parameter's text: each schema
/// an identifier, quoted where it keeps its case (a string is one name,
/// as PostgreSQL reads it); `None` for `DEFAULT`.
fn search_path_value(values: &[Expr]) -> Option<String> {
    if let [Expr::Identifier(i)] = values
        && i.quote_style.is_none()
        && i.value.eq_ignore_ascii_case("default")
    {
        return None;
    }
    let schemas: Vec<String> = values
        .iter()
        .map(|v| match v {
            Expr::Value(v) => match &v.value {
                Value::SingleQuotedString(s) => quiver_udf_registry::quote_ident(s),
                other => other.to_string(),
            },
            other => other.to_string(),
        })
        .collect();
    Some(schemas.join(", "))
}

fn set_value(values: &[Expr]) -> Option<String> {
    let parts: Vec<String> = values
        .iter()
        .map(|v| match v {
            Expr::Value(v) => match &v.value {
                Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
                other => other.to_string(),
            },
            Expr::Identifier(i) => i.value.clone(),
            other => other.to_string(),
        })
        .collect();
    if parts.len() == 1 && parts[0].eq_ignore_ascii_case("default") {
        None
    } else {
        Some(parts.join(", "))
    }
}
