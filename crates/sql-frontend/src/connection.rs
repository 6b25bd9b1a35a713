//! One client connection: pgwire's TLS negotiation and message dispatch,
//! and an answer to bytes that are not a message.
//!
//! pgwire's `process_socket` ends a connection whose bytes do not decode —
//! an unknown message type, a length beyond the protocol's limit, a
//! malformed startup packet — by dropping it without a word, so the client
//! sees only "server closed the connection unexpectedly". PostgreSQL first
//! sends a FATAL error with SQLSTATE `08P01` (protocol_violation) naming
//! what was wrong, and clients show it. [`serve`] runs the same steps as
//! `process_socket`, through pgwire's public parts, and sends that error
//! before closing. Once a message does not decode the stream cannot be
//! re-framed, so the connection always ends there.
//!
//! pgwire's decoders also panic on some truncated bodies (a `Bind` cut
//! short reads past its end: docs/upstream.md #20). The panic stays in the
//! connection's task either way; catching it here turns it into the same
//! answer instead of a silent close.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::{FutureExt, SinkExt, StreamExt};
use pgwire::api::{ClientInfo, ErrorHandler, PgWireConnectionState, PgWireServerHandlers};
use pgwire::error::PgWireError;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use pgwire::tokio::TlsAcceptor;
use pgwire::tokio::server::{negotiate_tls, process_error, process_message};
use tokio::net::TcpStream;

use crate::error::Error;

/// How long a client has from connecting to finishing authentication
/// (PostgreSQL's `authentication_timeout` default).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Serves one connection until the client leaves, a FATAL error ends it, or
/// its bytes stop being messages (see the module docs).
pub(crate) async fn serve<H: PgWireServerHandlers>(
    socket: TcpStream,
    tls: Option<TlsAcceptor>,
    handlers: H,
) -> std::io::Result<()> {
    let startup = tokio::time::sleep(STARTUP_TIMEOUT);
    tokio::pin!(startup);
    let socket = tokio::select! {
        _ = &mut startup => return Ok(()),
        socket = negotiate_tls(socket, tls) => socket?,
    };
    // A client that asked for TLS this server does not offer.
    let Some(mut socket) = socket else {
        return Ok(());
    };
    let startup_handler = handlers.startup_handler();
    let simple_query_handler = handlers.simple_query_handler();
    let extended_query_handler = handlers.extended_query_handler();
    let copy_handler = handlers.copy_handler();
    let cancel_handler = handlers.cancel_handler();
    let error_handler = handlers.error_handler();
    loop {
        let starting = matches!(
            socket.state(),
            PgWireConnectionState::AwaitingStartup
                | PgWireConnectionState::AuthenticationInProgress
        );
        let next = AssertUnwindSafe(socket.next()).catch_unwind();
        let next = if starting {
            tokio::select! {
                _ = &mut startup => return Ok(()),
                next = next => next,
            }
        } else {
            next.await
        };
        let message = match next {
            Ok(None | Some(Ok(PgWireFrontendMessage::Terminate(_)))) => return Ok(()),
            Ok(Some(Ok(message))) => message,
            Ok(Some(Err(PgWireError::IoError(e)))) => return Err(e),
            Ok(Some(Err(e))) => return refuse(&mut socket, malformed(&e)).await,
            Err(_) => return refuse(&mut socket, "malformed message".to_string()).await,
        };
        let extended = match socket.state() {
            PgWireConnectionState::CopyInProgress(extended) => extended,
            _ => message.is_extended_query(),
        };
        // A CancelRequest comes on a connection of its own, which ends with it.
        let cancel = matches!(message, PgWireFrontendMessage::CancelRequest(_));
        let handled = process_message(
            message,
            &mut socket,
            startup_handler.clone(),
            simple_query_handler.clone(),
            extended_query_handler.clone(),
            copy_handler.clone(),
            cancel_handler.clone(),
        )
        .await;
        if let Err(mut e) = handled {
            error_handler.on_error(&socket, &mut e);
            let fatal = e.is_fatal();
            process_error(&mut socket, e, extended).await?;
            if fatal {
                return Ok(());
            }
        }
        if cancel {
            return Ok(());
        }
    }
}

/// What was wrong with bytes that did not decode, in PostgreSQL's words
/// where it has them.
fn malformed(error: &PgWireError) -> String {
    match error {
        PgWireError::InvalidMessageType(tag) => format!("invalid frontend message type {tag}"),
        PgWireError::MessageTooLarge(max, actual) => {
            format!("invalid message length {actual} (at most {max})")
        }
        PgWireError::InvalidStartupMessage => "invalid startup packet layout".to_string(),
        error => format!("malformed message: {error}"),
    }
}

/// Answers bytes that did not decode as a message with a FATAL protocol
/// error (`08P01`) saying `what`, then ends the connection.
async fn refuse<S>(socket: &mut S, what: String) -> std::io::Result<()>
where
    S: futures::Sink<PgWireBackendMessage, Error = std::io::Error> + Unpin,
{
    tracing::debug!(what, "malformed message; closing the connection");
    let mut info = Error::Protocol(what).to_error_info();
    info.severity = "FATAL".to_string();
    socket
        .send(PgWireBackendMessage::ErrorResponse(info.into()))
        .await?;
    socket.close().await
}
