//! Schemas: `public` and those `CREATE SCHEMA` made, as DataFusion's
//! catalog of the database ([`Database`]) and of one session
//! ([`SessionDatabase`]), and the search path that resolves unqualified
//! names.
//!
//! DataFusion resolves an unqualified name in one default schema. A
//! session's default schema is [`SEARCH_PATH`], which no catalog lists:
//! its provider looks the name up as PostgreSQL's search path does — the
//! session's temporary tables first, then each schema of the path that
//! exists, in order.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, MemoryCatalogProvider, SchemaProvider, TableProvider};
use datafusion::common::{exec_err, not_impl_err};
use datafusion::error::Result as DfResult;
use serde::{Deserialize, Serialize};

use crate::catalog::Catalog;
use crate::{Acl, DEFAULT_SCHEMA, QualifiedName, SessionCatalog};

/// The name of a session's default schema in DataFusion: the session's
/// search path (see the module's docs). Not a name a user can write
/// unquoted, nor one any catalog lists.
pub const SEARCH_PATH: &str = "$search_path";

/// A schema `CREATE SCHEMA` made, as the catalog stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaEntry {
    pub name: String,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_at_ms: i64,
    /// Its owner and the privileges granted on it.
    #[serde(flatten)]
    pub acl: Acl,
}

/// The schemas of a search path's text (`"$user", public`): names as
/// PostgreSQL reads identifiers (unquoted ones in lower case), `$user`
/// standing for `user`'s schema.
pub fn parse_search_path(text: &str, user: &str) -> Vec<String> {
    let mut schemas = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace() || *c == ',').is_some() {}
        let Some(&first) = chars.peek() else {
            break;
        };
        let mut name = String::new();
        if first == '"' {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '"' if chars.next_if_eq(&'"').is_some() => name.push('"'),
                    '"' => break,
                    c => name.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| *c != ',') {
                name.push(c);
            }
            name = name.trim().to_lowercase();
        }
        schemas.push(match name.as_str() {
            "$user" => user.to_string(),
            _ => name,
        });
    }
    schemas
}

/// The database as every session shares it: the schemas Quiver serves
/// itself (`pg_catalog`, `information_schema`, `quiver`), then the stored
/// ones, as they are outside any transaction block. Catalogs built
/// outside a session (`pg_class`, `pg_namespace`) list it.
#[derive(Debug)]
pub struct Database {
    catalog: Arc<Catalog>,
    /// The schemas Quiver serves itself.
    system: MemoryCatalogProvider,
}

impl Database {
    pub fn new(catalog: Arc<Catalog>) -> Self {
        Self {
            catalog,
            system: MemoryCatalogProvider::new(),
        }
    }

    /// The schema `name` Quiver serves itself, if it is one.
    pub fn system_schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        self.system.schema(name)
    }

    /// The names of the schemas Quiver serves itself.
    pub fn system_schema_names(&self) -> Vec<String> {
        self.system.schema_names()
    }
}

impl CatalogProvider for Database {
    fn schema_names(&self) -> Vec<String> {
        let mut names = self.system.schema_names();
        names.extend(self.catalog.schema_names());
        names
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        if let Some(schema) = self.system.schema(name) {
            return Some(schema);
        }
        let stored = name == DEFAULT_SCHEMA || self.catalog.schema_entry(name).is_some();
        stored.then(|| {
            Arc::new(StoredSchema {
                catalog: self.catalog.clone(),
                schema: name.to_string(),
            }) as Arc<dyn SchemaProvider>
        })
    }

    /// Registers a schema Quiver serves itself.
    fn register_schema(
        &self,
        name: &str,
        schema: Arc<dyn SchemaProvider>,
    ) -> DfResult<Option<Arc<dyn SchemaProvider>>> {
        self.system.register_schema(name, schema)
    }
}

/// A stored schema as every session shares it (outside any transaction
/// block, without temporary tables).
#[derive(Debug)]
struct StoredSchema {
    catalog: Arc<Catalog>,
    schema: String,
}

#[async_trait]
impl SchemaProvider for StoredSchema {
    fn table_names(&self) -> Vec<String> {
        self.catalog.listed_in(&self.schema)
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let name = QualifiedName::new(self.schema.clone(), name);
        match self.catalog.loaded(&name) {
            None => Ok(None),
            Some(loaded) => match loaded.provider {
                Some(provider) => Ok(Some(provider)),
                None => exec_err!(
                    "table \"{name}\" could not be loaded at start-up (see the server log); DROP it or fix its files and restart"
                ),
            },
        }
    }

    fn table_exist(&self, name: &str) -> bool {
        let name = QualifiedName::new(self.schema.clone(), name);
        self.catalog.loaded(&name).is_some()
    }

    fn register_table(
        &self,
        name: String,
        _table: Arc<dyn TableProvider>,
    ) -> DfResult<Option<Arc<dyn TableProvider>>> {
        not_impl_err!("cannot register \"{name}\" in a stored schema outside Quiver's DDL")
    }

    fn deregister_table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        not_impl_err!("cannot deregister \"{name}\" from a stored schema outside Quiver's DDL")
    }
}

/// The database as one session sees it: the schemas Quiver serves itself,
/// the stored schemas as the session sees them (see [`SessionCatalog`]),
/// and its search path ([`SEARCH_PATH`]).
#[derive(Debug)]
pub struct SessionDatabase {
    shared: Arc<Database>,
    session: Arc<SessionCatalog>,
}

impl SessionDatabase {
    pub fn new(shared: Arc<Database>, session: Arc<SessionCatalog>) -> Self {
        Self { shared, session }
    }
}

impl CatalogProvider for SessionDatabase {
    fn schema_names(&self) -> Vec<String> {
        let mut names = self.shared.system_schema_names();
        names.extend(self.session.schema_names());
        names
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        if name == SEARCH_PATH {
            return Some(self.session.search_path_schema());
        }
        if let Some(schema) = self.shared.system_schema(name) {
            return Some(schema);
        }
        self.session.schema(name)
    }
}

#[cfg(test)]
mod tests {
    use super::parse_search_path;

    #[test]
    fn search_paths_read_as_postgresql_reads_them() {
        assert_eq!(
            parse_search_path("\"$user\", public", "ann"),
            ["ann", "public"]
        );
        assert_eq!(
            parse_search_path("Analytics,\"Mixed Case\" , x\"\"y", "ann"),
            ["analytics", "Mixed Case", "x\"\"y"]
        );
        assert_eq!(parse_search_path("\"a\"\"b\"", "ann"), ["a\"b"]);
        assert!(parse_search_path("", "ann").is_empty());
    }
}
