#![doc = include_str!("../README.md")]

mod auth;
mod cancel;
mod cluster;
mod copy;
mod depth;
mod encode;
mod error;
mod extended;
mod functions;
mod grouping_sets;
mod handler;
mod integers;
mod names;
mod numeric;
mod oid_types;
mod params;
mod parse;
mod pg_functions;
mod pg_proc;
mod pg_semantics;
mod planner;
mod rewrite;
mod rounding;
mod server;
mod session;
mod set_operations;
mod settings;
mod sizes;
mod subquery;
mod system;
mod using_joins;
mod window;

pub use auth::AuthMethod;
pub use error::{Error, Result};
pub use planner::{Route, route};
pub use server::{DATABASE, Server, ServerConfig, TlsFiles};
