//! [`GuestOutput`]: where a guest's stdout and stderr go. Always into a
//! bounded buffer of the instance, which error messages quote; and, when
//! the function's definition grants `log` (`SET quiver.wasm.log = on`),
//! into the server's log too, line by line, tagged with the function and
//! the stream (target `quiver::guest`, level INFO).

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// The longest line logged whole; longer ones are logged in pieces.
const LINE_LIMIT: usize = 4096;

/// One output stream of one instance.
#[derive(Clone)]
pub(crate) struct GuestOutput {
    capture: MemoryOutputPipe,
    log: Option<Arc<LogLines>>,
}

impl GuestOutput {
    /// A stream kept in `capture`, and logged as `stream` of `function`
    /// when `log` is given.
    pub(crate) fn new(capture: MemoryOutputPipe, log: Option<(&str, &'static str)>) -> Self {
        Self {
            capture,
            log: log.map(|(function, stream)| {
                Arc::new(LogLines {
                    function: function.to_string(),
                    stream,
                    partial: Mutex::new(Vec::new()),
                })
            }),
        }
    }

    fn logged(&self, bytes: &[u8]) {
        if let Some(log) = &self.log {
            log.write(bytes);
        }
    }
}

/// Splits what a guest writes into lines for the log.
struct LogLines {
    function: String,
    stream: &'static str,
    /// The line being written (no newline yet).
    partial: Mutex<Vec<u8>>,
}

impl LogLines {
    fn write(&self, bytes: &[u8]) {
        let mut partial = self.partial.lock().unwrap_or_else(|p| p.into_inner());
        for &byte in bytes {
            if byte == b'\n' {
                self.emit(&partial);
                partial.clear();
            } else {
                partial.push(byte);
                if partial.len() == LINE_LIMIT {
                    self.emit(&partial);
                    partial.clear();
                }
            }
        }
    }

    fn emit(&self, line: &[u8]) {
        let line = String::from_utf8_lossy(line);
        let line = line.trim_end_matches('\r');
        tracing::info!(target: "quiver::guest", function = %self.function, stream = self.stream, "{line}");
    }
}

impl Drop for LogLines {
    fn drop(&mut self) {
        let partial = self.partial.get_mut().unwrap_or_else(|p| p.into_inner());
        if !partial.is_empty() {
            let line = std::mem::take(partial);
            self.emit(&line);
        }
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl OutputStream for GuestOutput {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.capture.write(bytes.clone())?;
        self.logged(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        self.capture.flush()
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        self.capture.check_write()
    }
}

#[async_trait::async_trait]
impl Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

impl AsyncWrite for GuestOutput {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.capture).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &written {
            self.logged(&buf[..*n]);
        }
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.capture).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.capture).poll_shutdown(cx)
    }
}
