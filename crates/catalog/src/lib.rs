#![doc = include_str!("../README.md")]

mod catalog;
mod compaction;
mod error;
mod staging;
mod store;
mod table;
mod temp;

pub use catalog::{Catalog, DEFAULT_SCHEMA};
pub use compaction::{FANOUT, Lease, SMALL_FILE};
pub use error::{Error, Result};
pub use staging::Staging;
pub use store::{Change, FUNCTIONS_CF, MODULES_CF, MetaStore, ROLES_CF};
pub use table::{PUBLIC, Privilege, TableEntry, TableKind};
pub use temp::{SessionSchema, TempTables};
