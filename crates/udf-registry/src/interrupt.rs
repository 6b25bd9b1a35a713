//! Cancelling a session's running Wasm calls from outside them.
//!
//! A Wasm call runs synchronously inside an operator's `poll_next`, so
//! dropping the query's future (what a cancel does) only takes effect when
//! the call returns. Each call therefore notes the session it serves (see
//! [`in_session`]) and, every epoch tick, asks whether that session was
//! cancelled after the call began ([`cancel_session`]); if so the call ends
//! with [`Error::Cancelled`](crate::Error::Cancelled). Calls that begin after
//! a cancel are not affected, so the session's next statement runs normally.
//!
//! The registry is per process: a cancel reaches the calls of the frontend
//! and of the executor embedded with it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Instant;

thread_local! {
    /// The session whose query this thread is computing right now.
    static SESSION: RefCell<Option<Arc<str>>> = const { RefCell::new(None) };
}

/// When each session was last cancelled.
static CANCELLED: LazyLock<Mutex<HashMap<Arc<str>, Instant>>> = LazyLock::new(Default::default);
/// How many sessions are in `CANCELLED`: lets the common case skip the lock.
static PENDING: AtomicUsize = AtomicUsize::new(0);

fn cancelled() -> std::sync::MutexGuard<'static, HashMap<Arc<str>, Instant>> {
    CANCELLED.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs `f` (a poll of an operator) on behalf of `session`: Wasm calls it
/// makes can be cancelled with [`cancel_session`].
pub fn in_session<R>(session: &Arc<str>, f: impl FnOnce() -> R) -> R {
    let outer = SESSION.with(|s| s.replace(Some(session.clone())));
    let result = f();
    SESSION.with(|s| *s.borrow_mut() = outer);
    result
}

/// `f`, to run on another thread on behalf of this thread's session.
pub(crate) fn carried<R>(f: impl FnOnce() -> R) -> impl FnOnce() -> R {
    let session = SESSION.with(|s| s.borrow().clone());
    move || match session {
        Some(session) => in_session(&session, f),
        None => f(),
    }
}

/// Cancels every Wasm call of `session` running now.
pub fn cancel_session(session: &str) {
    let mut map = cancelled();
    if map.insert(Arc::from(session), Instant::now()).is_none() {
        PENDING.fetch_add(1, Ordering::Relaxed);
    }
}

/// Forgets `session` (it ended).
pub fn end_session(session: &str) {
    if cancelled().remove(session).is_some() {
        PENDING.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One Wasm call, as the interrupt check sees it.
#[derive(Debug, Clone)]
pub(crate) struct CallWatch {
    session: Option<Arc<str>>,
    started: Instant,
}

impl CallWatch {
    /// A call starting now on this thread.
    pub(crate) fn start() -> Self {
        Self {
            session: SESSION.with(|s| s.borrow().clone()),
            started: Instant::now(),
        }
    }

    /// Whether the call's session was cancelled since the call began.
    pub(crate) fn is_cancelled(&self) -> bool {
        let Some(session) = &self.session else {
            return false;
        };
        if PENDING.load(Ordering::Relaxed) == 0 {
            return false;
        }
        cancelled()
            .get(session)
            .is_some_and(|at| *at >= self.started)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_calls_begun_before_the_cancel_are_cancelled() {
        let session: Arc<str> = Arc::from("interrupt-test");
        let before = in_session(&session, CallWatch::start);
        let elsewhere = CallWatch::start();
        assert!(!before.is_cancelled());
        cancel_session(&session);
        assert!(before.is_cancelled());
        assert!(!elsewhere.is_cancelled(), "a call of no session");
        let after = in_session(&session, CallWatch::start);
        assert!(!after.is_cancelled(), "the next statement's calls run");
        end_session(&session);
        assert!(!before.is_cancelled());
    }
}
