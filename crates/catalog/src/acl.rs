//! Privileges, PostgreSQL's way: every object has an owner, who may do
//! anything to it, and privileges granted to roles or to [`PUBLIC`]. A
//! table keeps its [`Acl`] in its [`crate::TableEntry`]; the other objects
//! privileges are granted on (the schema, the `wasm` language, functions)
//! keep theirs in [`crate::ACLS_CF`], by [`Object`] key.

use std::collections::BTreeSet;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

/// The grantee that stands for every role.
pub const PUBLIC: &str = "public";

/// The language functions are written in: in PostgreSQL's terms an
/// untrusted one (a function runs code the server loads), so only
/// superusers create functions in it unless they grant `USAGE` on it.
pub const WASM_LANGUAGE: &str = "wasm";

/// What a role may do to an object, besides owning it; in the order
/// PostgreSQL writes them in an ACL (`arwdDXUC`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Privilege {
    Insert,
    Select,
    Update,
    Delete,
    Truncate,
    /// Calling a function.
    Execute,
    /// Looking up objects in a schema; creating functions in a language.
    Usage,
    /// Creating objects in a schema.
    Create,
}

impl Privilege {
    /// The letter PostgreSQL's ACLs give it (`relacl`, psql's `\dp`).
    pub fn letter(self) -> char {
        match self {
            Privilege::Select => 'r',
            Privilege::Insert => 'a',
            Privilege::Update => 'w',
            Privilege::Delete => 'd',
            Privilege::Truncate => 'D',
            Privilege::Execute => 'X',
            Privilege::Usage => 'U',
            Privilege::Create => 'C',
        }
    }
}

impl std::fmt::Display for Privilege {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Privilege::Select => "SELECT",
            Privilege::Insert => "INSERT",
            Privilege::Update => "UPDATE",
            Privilege::Delete => "DELETE",
            Privilege::Truncate => "TRUNCATE",
            Privilege::Execute => "EXECUTE",
            Privilege::Usage => "USAGE",
            Privilege::Create => "CREATE",
        })
    }
}

/// The kinds of object privileges are granted on, each with the privileges
/// it has and what a role may do to it before anyone grants anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Object {
    Table(String),
    /// A schema (Quiver has `public`).
    Schema(String),
    /// A language functions are written in (Quiver has `wasm`).
    Language(String),
    /// A function overload, by signature (`add1(bigint)`).
    Function(String),
}

impl Object {
    /// Every privilege the object has (`GRANT ALL`).
    pub fn privileges(&self) -> &'static [Privilege] {
        match self {
            Object::Table(_) => &[
                Privilege::Insert,
                Privilege::Select,
                Privilege::Update,
                Privilege::Delete,
                Privilege::Truncate,
            ],
            Object::Schema(_) => &[Privilege::Usage, Privilege::Create],
            Object::Language(_) => &[Privilege::Usage],
            Object::Function(_) => &[Privilege::Execute],
        }
    }

    /// What PostgreSQL calls its kind in messages: `table`, `schema`,
    /// `language`, `function`.
    pub fn kind(&self) -> &'static str {
        match self {
            Object::Table(_) => "table",
            Object::Schema(_) => "schema",
            Object::Language(_) => "language",
            Object::Function(_) => "function",
        }
    }

    /// What the object is called in messages: `table t`, `schema public`,
    /// `language wasm`, `function add1(bigint)`.
    pub fn describe(&self) -> String {
        let (Object::Table(name)
        | Object::Schema(name)
        | Object::Language(name)
        | Object::Function(name)) = self;
        format!("{} {name}", self.kind())
    }

    /// Its key in [`crate::ACLS_CF`].
    pub fn key(&self) -> String {
        self.describe()
    }

    /// Its ACL before anything was granted or revoked, PostgreSQL's
    /// defaults: a schema gives `USAGE` to every role but `CREATE` to none
    /// (PostgreSQL 15's `public`), a function gives `EXECUTE` to every
    /// role, and `wasm` is an untrusted language: only superusers create
    /// functions in it. Their owner is a superuser (`None`).
    pub fn default_acl(&self, owner: Option<&str>) -> Acl {
        let public: &[Privilege] = match self {
            Object::Table(_) | Object::Language(_) => &[],
            Object::Schema(_) => &[Privilege::Usage],
            Object::Function(_) => &[Privilege::Execute],
        };
        let mut acl = Acl {
            owner: owner.map(str::to_string),
            grants: IndexMap::new(),
        };
        acl.change(PUBLIC, public, true);
        acl
    }
}

/// An object's owner and the privileges granted on it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acl {
    /// The role that created the object; `None`: a superuser (a table made
    /// before tables had owners, the schema, the language), which only
    /// superusers reach unless granted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Privileges granted, by grantee ([`PUBLIC`]: every role), in the
    /// order they were first granted (PostgreSQL's ACLs list them so).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub grants: IndexMap<String, BTreeSet<Privilege>>,
}

impl Acl {
    /// An ACL with no grants, owned by `owner`.
    pub fn owned_by(owner: &str) -> Self {
        Self {
            owner: Some(owner.to_string()),
            grants: IndexMap::new(),
        }
    }

    /// Whether `role` owns the object.
    pub fn is_owner(&self, role: &str) -> bool {
        self.owner.as_deref() == Some(role)
    }

    /// Whether `role` may do `privilege` by owning the object or by a grant
    /// to it or to every role (superusers are not asked).
    pub fn allows(&self, role: &str, privilege: Privilege) -> bool {
        self.is_owner(role)
            || [role, PUBLIC].iter().any(|grantee| {
                self.grants
                    .get(*grantee)
                    .is_some_and(|granted| granted.contains(&privilege))
            })
    }

    /// Whether `role` owns the object or was granted anything on it.
    pub fn mentions(&self, role: &str) -> bool {
        self.is_owner(role) || self.grants.contains_key(role)
    }

    /// `GRANT` (`give`) or `REVOKE` of `privileges` to or from `grantee`.
    pub fn change(&mut self, grantee: &str, privileges: &[Privilege], give: bool) {
        let granted = self.grants.entry(grantee.to_string()).or_default();
        for privilege in privileges {
            if give {
                granted.insert(*privilege);
            } else {
                granted.remove(privilege);
            }
        }
        if granted.is_empty() {
            self.grants.shift_remove(grantee);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_keep_the_order_they_were_made_in() {
        let mut acl = Acl::owned_by("alice");
        acl.change("zoe", &[Privilege::Select], true);
        acl.change(PUBLIC, &[Privilege::Insert], true);
        acl.change("bob", &[Privilege::Select], true);
        acl.change("zoe", &[Privilege::Select], false);
        acl.change("zoe", &[Privilege::Select], true);
        let order: Vec<&str> = acl.grants.keys().map(String::as_str).collect();
        assert_eq!(order, [PUBLIC, "bob", "zoe"]);
        let stored = serde_json::to_string(&acl).unwrap();
        let read: Acl = serde_json::from_str(&stored).unwrap();
        assert_eq!(
            read.grants.keys().collect::<Vec<_>>(),
            acl.grants.keys().collect::<Vec<_>>()
        );
    }

    #[test]
    fn owners_and_grantees_are_allowed_and_public_is_everyone() {
        let mut acl = Acl::owned_by("alice");
        assert!(acl.allows("alice", Privilege::Select));
        assert!(!acl.allows("bob", Privilege::Select));
        acl.change(PUBLIC, &[Privilege::Select], true);
        assert!(acl.allows("bob", Privilege::Select));
        assert!(!acl.allows("bob", Privilege::Insert));
        acl.change(PUBLIC, &[Privilege::Select], false);
        assert!(acl.grants.is_empty());
        assert!(!acl.mentions("bob"));
    }

    #[test]
    fn defaults_are_postgresql_15s() {
        let schema = Object::Schema("public".into()).default_acl(None);
        assert!(schema.allows("bob", Privilege::Usage));
        assert!(!schema.allows("bob", Privilege::Create));
        let language = Object::Language("wasm".into()).default_acl(None);
        assert!(!language.allows("bob", Privilege::Usage));
        let function = Object::Function("f(bigint)".into()).default_acl(Some("alice"));
        assert!(function.allows("bob", Privilege::Execute));
        assert!(function.is_owner("alice"));
    }
}
