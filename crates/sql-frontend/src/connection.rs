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
//!
//! pgwire flushes the socket after most messages it sends (`ParseComplete`,
//! `BindComplete`, a `RowDescription`, `ReadyForQuery`), so one statement
//! of the extended protocol went out as five writes, each a system call
//! and, with `TCP_NODELAY`, a segment that wakes the client. PostgreSQL
//! sends what a message sequence produced when it is about to wait for the
//! client (or when its buffer fills). Here too: the connection's writes are
//! held ([`HeldWrites`]) until the server has read every message the client
//! sent and would wait for more, or until [`HOLD_LIMIT`] bytes are held.

use std::io;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use futures::{FutureExt, SinkExt, StreamExt};
use pgwire::api::{ClientInfo, ErrorHandler, PgWireConnectionState, PgWireServerHandlers};
use pgwire::error::PgWireError;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use pgwire::tokio::TlsAcceptor;
use pgwire::tokio::server::{
    PgWireMessageServerCodec, negotiate_tls, process_error, process_message,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, FramedParts};

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
) -> io::Result<()> {
    let startup = tokio::time::sleep(STARTUP_TIMEOUT);
    tokio::pin!(startup);
    let socket = tokio::select! {
        _ = &mut startup => return Ok(()),
        socket = negotiate_tls(socket, tls) => socket?,
    };
    // A client that asked for TLS this server does not offer.
    let Some(socket) = socket else {
        return Ok(());
    };
    let mut socket = HeldWrites::frame(socket);
    let startup_handler = handlers.startup_handler();
    let simple_query_handler = handlers.simple_query_handler();
    let extended_query_handler = handlers.extended_query_handler();
    let copy_handler = handlers.copy_handler();
    let cancel_handler = handlers.cancel_handler();
    let error_handler = handlers.error_handler();
    let served: io::Result<()> = async {
        loop {
            // Every message the client sent is answered: send the answers
            // before waiting for more.
            if socket.read_buffer().is_empty() {
                socket.get_mut().release = true;
                let flushed = socket.flush().await;
                socket.get_mut().release = false;
                flushed?;
            }
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
            // A CancelRequest comes on a connection of its own, which ends
            // with it.
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
    .await;
    // What the last messages produced (a FATAL error) goes out before the
    // connection closes.
    let closed = socket.close().await;
    served.and(closed.or_else(|e| match e.kind() {
        io::ErrorKind::NotConnected | io::ErrorKind::BrokenPipe => Ok(()),
        _ => Err(e),
    }))
}

/// A connection's socket: pgwire's framing over [`HeldWrites`].
type Socket<T, S> = Framed<HeldWrites<T>, PgWireMessageServerCodec<S>>;

/// The most bytes [`HeldWrites`] holds before it writes them.
const HOLD_LIMIT: usize = 64 * 1024;

/// A stream whose writes are held until `release` is set (or
/// [`HOLD_LIMIT`] bytes are held): pgwire's flushes leave them here, and
/// the connection sends them when it would wait for the client (see the
/// module docs). Closing writes what is held first.
///
/// pgwire looks for TLS client certificates by the stream's type, which
/// this wrapper hides; Quiver does not authenticate by certificate.
pub(crate) struct HeldWrites<T> {
    inner: T,
    held: BytesMut,
    /// Flushes write what is held.
    release: bool,
}

impl<T: AsyncRead + AsyncWrite + Unpin> HeldWrites<T> {
    /// `framed` (as pgwire negotiated it) over held writes.
    fn frame<S>(framed: Framed<T, PgWireMessageServerCodec<S>>) -> Socket<T, S> {
        let parts = framed.into_parts();
        let io = HeldWrites {
            inner: parts.io,
            held: BytesMut::new(),
            release: false,
        };
        let mut held = FramedParts::new(io, parts.codec);
        held.read_buf = parts.read_buf;
        held.write_buf = parts.write_buf;
        Framed::from_parts(held)
    }

    /// Writes everything held.
    fn poll_write_held(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.held.is_empty() {
            let written = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.held))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.held.advance(written);
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for HeldWrites<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for HeldWrites<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.held.len() + buf.len() > HOLD_LIMIT {
            ready!(this.poll_write_held(cx))?;
            if buf.len() > HOLD_LIMIT {
                return Pin::new(&mut this.inner).poll_write(cx, buf);
            }
        }
        this.held.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.release {
            return Poll::Ready(Ok(()));
        }
        ready!(this.poll_write_held(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_write_held(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
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
/// error (`08P01`) saying `what`; the connection ends after it.
async fn refuse<S>(socket: &mut S, what: String) -> io::Result<()>
where
    S: futures::Sink<PgWireBackendMessage, Error = std::io::Error> + Unpin,
{
    tracing::debug!(what, "malformed message; closing the connection");
    let mut info = Error::Protocol(what).to_error_info();
    info.severity = "FATAL".to_string();
    socket
        .feed(PgWireBackendMessage::ErrorResponse(info.into()))
        .await
}
