//! End-to-end tests against real `quiver serve` processes and real clients.

#[path = "../support/mod.rs"]
mod support;

mod aggregates;
mod auth;
mod backup;
mod cancel;
mod clients;
mod cluster;
mod compaction;
mod differential;
mod extended;
mod fuzz;
mod hosts;
mod liveness;
mod locations;
mod names;
mod object_stores;
mod psql;
mod restart;
mod robustness;
mod routing;
mod tls;
mod transactions;
mod wasm;
