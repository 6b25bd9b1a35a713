//! Who may connect: `trust` (anyone, the default on loopback) or
//! SCRAM-SHA-256 against login roles.
//!
//! Roles come from a users file (`--users FILE`, `name:password` lines, read
//! at start-up) and from `CREATE ROLE`, kept in the catalog. Only SCRAM
//! verifiers are stored (salt and salted password, PostgreSQL's 4096
//! iterations), never the password itself.
//!
//! A role has PostgreSQL's `SUPERUSER` and `LOGIN` attributes (`CREATE
//! ROLE` gives neither unless asked, as in PostgreSQL). The users file's
//! roles are superusers that may log in: they bootstrap the server. Under
//! `trust`, a client may give any name: a name no role has is taken for
//! the bootstrap superuser (what `trust` on loopback means), a role's name
//! gets that role's attributes.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use pgwire::api::auth::sasl::scram::gen_salted_password;
use pgwire::api::auth::{AuthSource, LoginInfo, Password};
use pgwire::error::{PgWireError, PgWireResult};
use quiver_catalog::{Change, MetaStore, ROLES_CF};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// SCRAM iterations of every stored verifier (PostgreSQL's default).
pub(crate) const ITERATIONS: usize = 4096;

/// How clients are authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthMethod {
    /// Every client is let in, under the user name it gives.
    #[default]
    Trust,
    /// SCRAM-SHA-256 against login roles; a wrong password is `28P01`.
    ScramSha256,
}

/// A role's password verifier.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Verifier {
    #[serde(with = "hex::serde")]
    salt: Vec<u8>,
    #[serde(with = "hex::serde")]
    salted_password: Vec<u8>,
}

impl Verifier {
    fn new(password: &str) -> Self {
        let salt: [u8; 16] = rand_salt();
        Self {
            salted_password: gen_salted_password(password, &salt, ITERATIONS),
            salt: salt.to_vec(),
        }
    }
}

fn rand_salt() -> [u8; 16] {
    // A v4 UUID is 122 random bits from the OS generator.
    *uuid::Uuid::new_v4().as_bytes()
}

/// A role made with `CREATE ROLE`, as the catalog stores it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Role {
    /// `None`: the role has no password (`PASSWORD NULL`, or none given).
    #[serde(flatten)]
    verifier: Option<Verifier>,
    #[serde(default)]
    superuser: bool,
    /// Roles stored before roles had attributes were made to log in.
    #[serde(default = "logs_in")]
    login: bool,
    /// The [`PREDEFINED`] roles it was granted.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    member_of: BTreeSet<String>,
}

/// PostgreSQL's predefined roles Quiver has, which a superuser grants
/// (`GRANT pg_read_server_files TO alice`): reading the server's files
/// (creating external tables) and writing them (`INSERT` into an external
/// table), within the directories the operator allows.
pub(crate) const PREDEFINED: [&str; 2] = [READ_SERVER_FILES, WRITE_SERVER_FILES];
pub(crate) const READ_SERVER_FILES: &str = "pg_read_server_files";
pub(crate) const WRITE_SERVER_FILES: &str = "pg_write_server_files";

fn logs_in() -> bool {
    true
}

/// What a role may do, of PostgreSQL's role attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Attributes {
    pub superuser: bool,
    pub login: bool,
}

/// A role as the catalogs list it (`pg_roles`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListedRole {
    pub name: String,
    pub attributes: Attributes,
    /// The [`PREDEFINED`] roles it was granted.
    pub member_of: Vec<String>,
}

/// `CREATE ROLE`'s and `ALTER ROLE`'s options; `None`: not given.
#[derive(Debug, Default)]
pub(crate) struct RoleOptions {
    /// `Some(None)`: `PASSWORD NULL`.
    pub password: Option<Option<String>>,
    pub superuser: Option<bool>,
    pub login: Option<bool>,
}

/// The roles: the users file's and the catalog's.
#[derive(Debug)]
pub(crate) struct Roles {
    store: Arc<MetaStore>,
    /// From the users file; not changed by SQL.
    configured: HashMap<String, Verifier>,
    /// From `CREATE ROLE`, mirrored in the catalog.
    created: RwLock<HashMap<String, Role>>,
}

impl Roles {
    /// Loads the catalog's roles and the users file's, if any.
    pub(crate) fn open(store: Arc<MetaStore>, users: Option<&Path>) -> Result<Self> {
        let mut configured = HashMap::new();
        if let Some(path) = users {
            refuse_shared_file(path)?;
            let text = std::fs::read_to_string(path).map_err(|e| {
                Error::InvalidParameterValue(format!("users file {}: {e}", path.display()))
            })?;
            for (n, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let (name, password) = line.split_once(':').ok_or_else(|| {
                    Error::InvalidParameterValue(format!(
                        "users file {} line {}: expected name:password",
                        path.display(),
                        n + 1
                    ))
                })?;
                configured.insert(name.to_string(), Verifier::new(password));
            }
        }
        let mut created = HashMap::new();
        for (name, value) in store.scan(ROLES_CF)? {
            let role = serde_json::from_slice(&value).map_err(|e| {
                Error::Catalog(quiver_catalog::Error::Corrupt {
                    key: name.clone(),
                    message: e.to_string(),
                })
            })?;
            created.insert(name, role);
        }
        Ok(Self {
            store,
            configured,
            created: RwLock::new(created),
        })
    }

    fn created(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Role>> {
        self.created.write().unwrap_or_else(|p| p.into_inner())
    }

    fn created_role(&self, name: &str) -> Option<Role> {
        self.created
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    fn verifier(&self, name: &str) -> Option<Verifier> {
        self.configured
            .get(name)
            .cloned()
            .or_else(|| self.created_role(name)?.verifier)
    }

    /// The attributes of role `name`; `None` when there is no such role.
    pub(crate) fn attributes(&self, name: &str) -> Option<Attributes> {
        if self.configured.contains_key(name) {
            return Some(Attributes {
                superuser: true,
                login: true,
            });
        }
        self.created_role(name).map(|role| Attributes {
            superuser: role.superuser,
            login: role.login,
        })
    }

    /// `CREATE ROLE` (`create`) or `ALTER ROLE`: the role `name` with
    /// `options` (`CREATE ROLE`'s defaults: no password, `NOSUPERUSER`,
    /// `NOLOGIN`). Returns `false` when the role exists and
    /// `if_not_exists` is set.
    pub(crate) fn define(
        &self,
        name: &str,
        options: RoleOptions,
        create: bool,
        if_not_exists: bool,
    ) -> Result<bool> {
        let mut created = self.created();
        let exists = created.contains_key(name) || self.configured.contains_key(name);
        match (create, exists) {
            (true, true) if if_not_exists => return Ok(false),
            (true, true) => {
                return Err(Error::DuplicateObject(format!(
                    "role \"{name}\" already exists"
                )));
            }
            (false, false) => {
                return Err(Error::UndefinedObject(format!(
                    "role \"{name}\" does not exist"
                )));
            }
            _ => {}
        }
        if self.configured.contains_key(name) {
            return Err(Error::FeatureNotSupported(format!(
                "role \"{name}\" is defined in the users file; change it there"
            )));
        }
        let mut role = created.get(name).cloned().unwrap_or(Role {
            verifier: None,
            superuser: false,
            login: false,
            member_of: BTreeSet::new(),
        });
        if let Some(password) = options.password {
            role.verifier = password.as_deref().map(Verifier::new);
        }
        role.superuser = options.superuser.unwrap_or(role.superuser);
        role.login = options.login.unwrap_or(role.login);
        self.store_role(&mut created, name, role)?;
        Ok(true)
    }

    fn store_role(
        &self,
        created: &mut HashMap<String, Role>,
        name: &str,
        role: Role,
    ) -> Result<()> {
        let value = serde_json::to_vec(&role).map_err(|e| Error::Internal(e.to_string()))?;
        self.store.write(&[Change::Put {
            cf: ROLES_CF,
            key: name,
            value: &value,
        }])?;
        created.insert(name.to_string(), role);
        Ok(())
    }

    /// Every role, the users file's and `CREATE ROLE`'s, by name.
    pub(crate) fn list(&self) -> Vec<ListedRole> {
        let superuser = Attributes {
            superuser: true,
            login: true,
        };
        let mut roles: Vec<ListedRole> = self
            .configured
            .keys()
            .map(|name| ListedRole {
                name: name.clone(),
                attributes: superuser,
                member_of: Vec::new(),
            })
            .collect();
        let created = self.created.read().unwrap_or_else(|p| p.into_inner());
        roles.extend(
            created
                .iter()
                .filter(|(name, _)| !self.configured.contains_key(*name))
                .map(|(name, role)| ListedRole {
                    name: name.clone(),
                    attributes: Attributes {
                        superuser: role.superuser,
                        login: role.login,
                    },
                    member_of: role.member_of.iter().cloned().collect(),
                }),
        );
        roles.sort_by(|a, b| a.name.cmp(&b.name));
        roles
    }

    /// Whether role `name` was granted the [`PREDEFINED`] role `group`
    /// (superusers have what every predefined role gives without it).
    pub(crate) fn is_member(&self, name: &str, group: &str) -> bool {
        self.created_role(name)
            .is_some_and(|role| role.member_of.contains(group))
    }

    /// `GRANT group TO name` (`give`) or `REVOKE group FROM name`, of a
    /// [`PREDEFINED`] role.
    pub(crate) fn set_membership(&self, name: &str, group: &str, give: bool) -> Result<()> {
        if !PREDEFINED.contains(&group) {
            return Err(Error::FeatureNotSupported(format!(
                "granting role \"{group}\" is not supported: roles are granted only the predefined roles {}",
                PREDEFINED.join(" and ")
            )));
        }
        let mut created = self.created();
        let Some(mut role) = created.get(name).cloned() else {
            return Err(if self.configured.contains_key(name) {
                Error::FeatureNotSupported(format!(
                    "role \"{name}\" is defined in the users file: a superuser needs no predefined role"
                ))
            } else {
                Error::UndefinedObject(format!("role \"{name}\" does not exist"))
            });
        };
        if give {
            role.member_of.insert(group.to_string());
        } else {
            role.member_of.remove(group);
        }
        self.store_role(&mut created, name, role)
    }

    /// `DROP ROLE`; `false` when there is none and `if_exists`.
    pub(crate) fn drop_role(&self, name: &str, if_exists: bool) -> Result<bool> {
        let mut created = self.created();
        if !created.contains_key(name) {
            if self.configured.contains_key(name) {
                return Err(Error::FeatureNotSupported(format!(
                    "role \"{name}\" is defined in the users file; remove it there"
                )));
            }
            return if if_exists {
                Ok(false)
            } else {
                Err(Error::UndefinedObject(format!(
                    "role \"{name}\" does not exist"
                )))
            };
        }
        self.store.write(&[Change::Delete {
            cf: ROLES_CF,
            key: name,
        }])?;
        created.remove(name);
        Ok(true)
    }
}

#[async_trait]
impl AuthSource for Roles {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        let user = login.user().unwrap_or_default();
        // An unknown user fails like a wrong password (28P01), as in PostgreSQL.
        let verifier = self
            .verifier(user)
            .ok_or_else(|| PgWireError::InvalidPassword(user.to_string()))?;
        Ok(Password::new(Some(verifier.salt), verifier.salted_password))
    }
}

/// Refuses a users file other users of the machine may read or write: it
/// holds passwords in clear text (PostgreSQL refuses a `.pgpass` so shared).
fn refuse_shared_file(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| Error::InvalidParameterValue(format!("users file {}: {e}", path.display())))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(Error::InvalidParameterValue(format!(
            "users file {} has group or world access (mode {:o}): it holds passwords; \
             allow only its owner (chmod 600)",
            path.display(),
            mode & 0o777
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_stored_before_attributes_could_log_in_and_were_no_superusers() {
        let legacy = br#"{"salt":"00ff","salted_password":"abcd"}"#;
        let role: Role = serde_json::from_slice(legacy).expect("reads");
        assert!(role.login && !role.superuser);
        assert_eq!(role.verifier.expect("a password").salt, [0x00, 0xff]);
    }

    #[test]
    fn a_role_without_a_password_round_trips() {
        let role = Role {
            verifier: None,
            superuser: true,
            login: false,
            member_of: BTreeSet::new(),
        };
        let text = serde_json::to_vec(&role).expect("writes");
        let back: Role = serde_json::from_slice(&text).expect("reads");
        assert!(back.verifier.is_none() && back.superuser && !back.login);
    }
}
