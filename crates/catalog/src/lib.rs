#![doc = include_str!("../README.md")]

mod acl;
mod backup;
mod buckets;
mod catalog;
mod changes;
mod compaction;
mod error;
mod files;
mod foreign_keys;
mod keys;
mod listing;
mod rewrite;
mod schemas;
mod sequences;
mod session_catalog;
mod staging;
mod store;
mod table;
mod temp;
mod usage;

pub use acl::{Acl, Object, PUBLIC, Privilege, WASM_LANGUAGE};
pub use backup::{CATALOG_DIR, Copied, backup, restore};
pub use buckets::{BucketEntry, BucketSnapshot, BucketWrite, Buckets};
pub use catalog::{Catalog, DEFAULT_SCHEMA};
pub use compaction::{FANOUT, Lease, SMALL_FILE};
pub use error::{Error, Result};
pub use listing::LocalListings;
pub use rewrite::Rewrite;
pub use schemas::{Database, SEARCH_PATH, SchemaEntry, SessionDatabase, parse_search_path};
pub use sequences::{OwnedBy, Sequence, SequenceOptions, SequenceSpec, SequenceType, Sequences};
pub use session_catalog::{RelationPlanner, SessionCatalog, SessionSchema, Target};
pub use staging::Staging;
pub use store::{
    ACLS_CF, Change, Durability, FUNCTION_USAGE_CF, FUNCTIONS_CF, MODULES_CF, MetaStore, ROLES_CF,
};
pub use table::{
    COLUMN_COMMENT, COLUMN_DEFAULT, ColumnEntry, ForeignKey, IndexEntry, KeyAction, QualifiedName,
    TableEntry, TableKind, Uniqueness,
};
pub use temp::TempTables;
pub use usage::{FunctionUsage, Usage};
