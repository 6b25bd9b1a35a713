//! The pgwire side of a connection: startup, simple queries and COPY.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use futures::{Sink, SinkExt};
use pgwire::api::auth::driver::AuthOutcome;
use pgwire::api::auth::mechanism::AuthMechanismFactory;
use pgwire::api::auth::sasl::scram::ScramAuth;
use pgwire::api::auth::{
    AuthDriver, ServerParameterProvider, StartupHandler, protocol_negotiation,
    save_startup_parameters_to_metadata,
};
use pgwire::api::cancel::CancelHandler;
use pgwire::api::copy::CopyHandler;
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{CopyResponse, QueryResponse, Response, Tag};
use pgwire::api::{
    ClientInfo, ClientPortalStore, PgWireServerHandlers, RandomPidSecretKeyGenerator,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::copy::{CopyData, CopyDone, CopyFail};
use pgwire::messages::response::NoticeResponse;
use pgwire::messages::startup::{Authentication, ParameterStatus};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};

use crate::Error;
use crate::auth::{AuthMethod, Roles};
use crate::cancel::Cancels;
use crate::encode::{CopyOutFormat, RowDescription, copy_stream};
use crate::extended::{Prepared, PreparingParser};
use crate::parse::SqlParser;
use crate::plan_cache::PlanCache;
use crate::session::{Completion, Outcome, Session};
use crate::settings::Settings;

/// Everything pgwire needs for one connection; all of it shares the
/// connection's [`Session`].
pub struct Connection {
    handler: Arc<Handler>,
}

impl Connection {
    pub(crate) fn new(
        session: Session,
        parser: Arc<SqlParser>,
        login: Arc<Login>,
        cancels: Arc<Cancels>,
    ) -> Self {
        Self {
            handler: Arc::new(Handler {
                session: Arc::new(session),
                parser,
                kept: Arc::default(),
                login,
                cancels,
            }),
        }
    }
}

impl PgWireServerHandlers for Connection {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.handler.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.handler.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.handler.clone()
    }

    fn copy_handler(&self) -> Arc<impl CopyHandler> {
        self.handler.clone()
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        self.handler.cancels.clone()
    }
}

pub(crate) struct Handler {
    session: Arc<Session>,
    parser: Arc<SqlParser>,
    /// The extended protocol's statements parsed before, by their text.
    kept: Arc<PlanCache<Prepared>>,
    login: Arc<Login>,
    cancels: Arc<Cancels>,
}

/// How connections log in: pgwire's authentication driver (which also
/// hands out the keys CancelRequests carry), with SCRAM-SHA-256 over
/// Quiver's roles or, for trust, no mechanism at all.
pub(crate) struct Login {
    driver: AuthDriver<StartupParameters>,
    /// `None`: every client is trusted.
    scram: Option<Arc<dyn AuthMechanismFactory>>,
}

impl Login {
    pub(crate) fn new(method: AuthMethod, roles: Arc<Roles>) -> Self {
        let scram = (method == AuthMethod::ScramSha256).then(|| {
            let mut scram = ScramAuth::new(roles.clone());
            scram.set_iterations(crate::auth::ITERATIONS);
            Arc::new(scram) as Arc<dyn AuthMechanismFactory>
        });
        Self {
            driver: AuthDriver::new(StartupParameters { roles })
                .with_pid_secret_key_generator(Arc::new(RandomPidSecretKeyGenerator::default())),
            scram,
        }
    }

    /// The client is who it says: finish the startup and make its session
    /// reachable by CancelRequests.
    async fn complete<C>(
        &self,
        handler: &Handler,
        client: &mut C,
        final_message: Option<Authentication>,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let user = client.metadata().get("user").cloned().unwrap_or_default();
        if let Err(e) = handler.session.log_in(&user) {
            let mut error = e.to_error_info();
            error.severity = "FATAL".into();
            return Err(PgWireError::UserError(Box::new(error)));
        }
        self.driver
            .complete_authentication(client, final_message)
            .await?;
        let (pid, secret) = client.pid_and_secret_key();
        handler
            .cancels
            .register(pid, &secret, handler.session.canceller());
        Ok(())
    }
}

impl Handler {
    /// The extended protocol's parser for this connection's session.
    pub(crate) fn preparing(&self) -> PreparingParser {
        PreparingParser {
            session: self.session.clone(),
            parser: self.parser.clone(),
            kept: self.kept.clone(),
        }
    }

    pub(crate) fn session(&self) -> &Session {
        &self.session
    }
}

/// The parameters reported at start-up: the settings' defaults, and what
/// the client and its role decide.
struct StartupParameters {
    roles: Arc<Roles>,
}

impl ServerParameterProvider for StartupParameters {
    fn server_parameters<C>(&self, client: &C) -> Option<HashMap<String, String>>
    where
        C: ClientInfo,
    {
        let mut parameters: HashMap<String, String> =
            Settings::startup_parameters().into_iter().collect();
        if let Some(name) = client.metadata().get("application_name") {
            parameters.insert("application_name".into(), name.clone());
        }
        if let Some(user) = client.metadata().get("user") {
            parameters.insert("session_authorization".into(), user.clone());
            // A name no role has is the bootstrap superuser (under trust).
            let superuser = self.roles.attributes(user).is_none_or(|a| a.superuser);
            parameters.insert(
                "is_superuser".into(),
                if superuser { "on" } else { "off" }.into(),
            );
        }
        Some(parameters)
    }
}

#[async_trait]
impl StartupHandler for Handler {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let login = &self.login;
        match (message, &login.scram) {
            (PgWireFrontendMessage::Startup(startup), scram) => {
                protocol_negotiation(client, &startup).await?;
                save_startup_parameters_to_metadata(client, &startup);
                match scram {
                    // Completed by the client's SASL messages, below.
                    Some(scram) => {
                        login
                            .driver
                            .begin_authentication(client, scram.create())
                            .await?;
                    }
                    None => login.complete(self, client, None).await?,
                }
            }
            (PgWireFrontendMessage::PasswordMessageFamily(message), Some(_)) => {
                // A wrong password or unknown user fails here with 28P01,
                // worded as PostgreSQL words it (naming the startup user:
                // libpq leaves SCRAM's user name empty).
                let outcome = match login.driver.advance_authentication(client, message).await {
                    Err(PgWireError::InvalidPassword(_)) => {
                        let user = client.metadata().get("user").cloned().unwrap_or_default();
                        return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                            "FATAL".into(),
                            "28P01".into(),
                            format!("password authentication failed for user \"{user}\""),
                        ))));
                    }
                    outcome => outcome?,
                };
                if let AuthOutcome::Authenticated { final_message, .. } = outcome {
                    login.complete(self, client, final_message).await?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

fn notice(message: String) -> PgWireBackendMessage {
    PgWireBackendMessage::NoticeResponse(NoticeResponse::from(ErrorInfo::new(
        "NOTICE".into(),
        "00000".into(),
        message,
    )))
}

/// Turns an outcome into pgwire's response; rows are encoded in `formats`
/// (result format codes; empty: all text).
pub(crate) async fn respond<C>(
    client: &mut C,
    outcome: Outcome,
    formats: &[i16],
) -> PgWireResult<Response>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    Ok(match outcome {
        Outcome::Rows {
            schema,
            batches,
            command,
        } => {
            let description = RowDescription::new(&schema, formats)?;
            let fields = description.fields();
            let mut response = QueryResponse::new(fields, description.row_stream(batches));
            response.set_command_tag(command);
            Response::Query(response)
        }
        Outcome::Command(Completion {
            tag,
            notice: note,
            parameter,
            transaction,
        }) => {
            if let Some(note) = note {
                client.feed(notice(note)).await?;
            }
            if let Some((name, value)) = parameter {
                client
                    .feed(PgWireBackendMessage::ParameterStatus(ParameterStatus::new(
                        name, value,
                    )))
                    .await?;
            }
            let tag = Tag::new(&tag);
            match transaction {
                Some(true) => Response::TransactionStart(tag),
                Some(false) => Response::TransactionEnd(tag),
                None => Response::Execution(tag),
            }
        }
        Outcome::CopyIn { columns, binary } => Response::CopyIn(CopyResponse::new(
            i8::from(binary),
            columns,
            futures::stream::empty(),
        )),
        Outcome::CopyOut {
            schema,
            format,
            header,
            batches,
        } => {
            let columns = schema.fields().len();
            let binary = matches!(format, CopyOutFormat::Binary);
            Response::CopyOut(CopyResponse::new(
                i8::from(binary),
                columns,
                copy_stream(&schema, format, header, batches)?,
            ))
        }
    })
}

#[async_trait]
impl SimpleQueryHandler for Handler {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let statements = match self.parser.parse(query) {
            Ok(statements) => statements,
            Err(e) => {
                self.session.abort_block();
                return Ok(vec![Response::Error(Box::new(e.to_error_info()))]);
            }
        };
        let mut responses = Vec::with_capacity(statements.len());
        // A cancel from now on stops this query string.
        self.session.canceller().begin();
        for statement in statements {
            // A statement that fails ends the query string, as in PostgreSQL.
            let outcome = match self.session.execute(statement).await {
                Ok(outcome) => outcome,
                Err(e) => {
                    log_failure(&e);
                    responses.push(Response::Error(Box::new(e.to_error_info())));
                    break;
                }
            };
            let copy_in = matches!(outcome, Outcome::CopyIn { .. });
            match respond(client, outcome, &[]).await {
                Ok(response) => responses.push(response),
                Err(e) => {
                    responses.push(Response::Error(Box::new(ErrorInfo::from(e))));
                    break;
                }
            }
            if copy_in {
                // The rest of the string waits for the copy; PostgreSQL runs
                // COPY FROM STDIN as the last statement of a query string too.
                break;
            }
        }
        Ok(responses)
    }
}

pub(crate) fn log_failure(e: &Error) {
    if e.sqlstate().starts_with("XX") || e.sqlstate().starts_with("58") {
        tracing::error!(sqlstate = e.sqlstate(), error = %e, "statement failed");
    } else {
        tracing::debug!(sqlstate = e.sqlstate(), error = %e, "statement failed");
    }
}

#[async_trait]
impl CopyHandler for Handler {
    async fn on_copy_data<C>(&self, _client: &mut C, copy_data: CopyData) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.session.copy_data(&copy_data.data);
        Ok(())
    }

    async fn on_copy_done<C>(&self, client: &mut C, _done: CopyDone) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let tag = self.session.copy_done().await.inspect_err(log_failure)?;
        client
            .send(PgWireBackendMessage::CommandComplete(Tag::new(&tag).into()))
            .await?;
        Ok(())
    }

    async fn on_copy_fail<C>(&self, _client: &mut C, fail: CopyFail) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.session.copy_fail();
        PgWireError::UserError(Box::new(ErrorInfo::new(
            "ERROR".into(),
            "57014".into(),
            format!("COPY from stdin failed: {}", fail.message),
        )))
    }
}
