//! PostgreSQL run-time parameters (`SET` / `SHOW`) of one session.
//!
//! DataFusion's own options (`datafusion.*`, `ballista.*`) live in the session's
//! `SessionConfig`; this module keeps the PostgreSQL parameters clients read and
//! write, with PostgreSQL's names and defaults.

use std::collections::BTreeMap;

use crate::{Error, Result};

/// The PostgreSQL major version Quiver presents itself as.
pub const PG_VERSION: &str = "16.6";

/// `server_version` as reported to clients.
pub fn server_version() -> String {
    format!("{PG_VERSION} (Quiver {})", env!("CARGO_PKG_VERSION"))
}

/// `version()` as reported to clients: drivers and SQLAlchemy parse the
/// "PostgreSQL N.M" prefix.
pub fn version_string() -> String {
    format!(
        "PostgreSQL {PG_VERSION} (Quiver {}) on {}-{}, compiled by rustc, 64-bit",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH,
        std::env::consts::OS
    )
}

/// A parameter: its default and whether a client may change it.
struct Parameter {
    name: &'static str,
    default: fn() -> String,
    settable: bool,
    /// Reported to the client in `ParameterStatus` at start-up and on change.
    reported: bool,
}

const fn param(
    name: &'static str,
    default: fn() -> String,
    settable: bool,
    reported: bool,
) -> Parameter {
    Parameter {
        name,
        default,
        settable,
        reported,
    }
}

const PARAMETERS: &[Parameter] = &[
    param("application_name", String::new, true, true),
    param("check_function_bodies", || "on".into(), true, false),
    param("default_table_access_method", || "heap".into(), true, false),
    param("default_tablespace", String::new, true, false),
    param("bytea_output", || "hex".into(), true, false),
    param("client_encoding", || "UTF8".into(), true, true),
    param("client_min_messages", || "notice".into(), true, false),
    param("datestyle", || "ISO, MDY".into(), true, true),
    param(
        "default_transaction_isolation",
        || "read committed".into(),
        true,
        false,
    ),
    param("default_transaction_read_only", || "off".into(), true, true),
    param("extra_float_digits", || "1".into(), true, false),
    param(
        "idle_in_transaction_session_timeout",
        || "0".into(),
        true,
        false,
    ),
    param("in_hot_standby", || "off".into(), false, true),
    param("integer_datetimes", || "on".into(), false, true),
    param("intervalstyle", || "postgres".into(), true, true),
    param("is_superuser", || "on".into(), false, true),
    param("lc_messages", || "C".into(), true, false),
    param("lock_timeout", || "0".into(), true, false),
    param("max_identifier_length", || "63".into(), false, false),
    // How many columns an index may have (pgjdbc reads it for its key
    // queries).
    param("max_index_keys", || "32".into(), false, false),
    param("quote_all_identifiers", || "off".into(), true, false),
    param("row_security", || "on".into(), true, false),
    param("search_path", || "\"$user\", public".into(), true, false),
    param("server_encoding", || "UTF8".into(), false, true),
    param("server_version", server_version, false, true),
    param("server_version_num", || "160006".into(), false, false),
    param("standard_conforming_strings", || "on".into(), true, true),
    param("statement_timeout", || "0".into(), true, false),
    param("synchronize_seqscans", || "on".into(), true, false),
    param("timezone", || "UTC".into(), true, true),
    param(
        "transaction_isolation",
        || "read committed".into(),
        false,
        false,
    ),
    param("transaction_read_only", || "off".into(), false, false),
    // PostgreSQL 17's; pg_dump 17 and later set it.
    param("transaction_timeout", || "0".into(), true, false),
    param("xmloption", || "content".into(), true, false),
];

/// Every parameter: its name, default, and whether a session may set it.
pub(crate) fn parameters() -> impl Iterator<Item = (&'static str, String, bool)> {
    PARAMETERS
        .iter()
        .map(|p| (display_name(p.name), (p.default)(), p.settable))
}

fn lookup(name: &str) -> Option<&'static Parameter> {
    PARAMETERS.iter().find(|p| p.name == name)
}

/// The PostgreSQL parameters of one session.
#[derive(Debug, Default)]
pub struct Settings {
    /// Values that differ from the defaults, by lower-case name.
    changed: BTreeMap<String, String>,
}

impl Settings {
    /// The parameters sent to a client in `ParameterStatus` at start-up.
    pub fn startup_parameters() -> Vec<(String, String)> {
        PARAMETERS
            .iter()
            .filter(|p| p.reported)
            .map(|p| (display_name(p.name).to_string(), (p.default)()))
            .collect()
    }

    /// The value of `name` (case-insensitive), as `SHOW` prints it.
    pub fn get(&self, name: &str) -> Result<String> {
        let name = name.to_ascii_lowercase();
        if let Some(value) = self.changed.get(&name) {
            return Ok(value.clone());
        }
        match lookup(&name) {
            Some(p) => Ok((p.default)()),
            None => Err(Error::UndefinedParameter(name)),
        }
    }

    /// `SET name = value`. Custom parameters ("prefix.name") are accepted as
    /// PostgreSQL does; `client_encoding` accepts only UTF8. Returns the name
    /// and value to report to the client when the parameter is a reported one.
    pub fn set(&mut self, name: &str, value: String) -> Result<Option<(String, String)>> {
        let name = name.to_ascii_lowercase();
        match lookup(&name) {
            Some(p) if !p.settable => Err(Error::FeatureNotSupported(format!(
                "parameter \"{name}\" cannot be changed"
            ))),
            Some(p) => {
                let value = normalize(&name, value)?;
                let report = p
                    .reported
                    .then(|| (display_name(p.name).to_string(), value.clone()));
                self.changed.insert(name, value);
                Ok(report)
            }
            None if name.contains('.') => {
                self.changed.insert(name, value);
                Ok(None)
            }
            None => Err(Error::UndefinedParameter(name)),
        }
    }

    /// `RESET name` / `SET name TO DEFAULT`.
    pub fn reset(&mut self, name: &str) -> Result<()> {
        let name = name.to_ascii_lowercase();
        if lookup(&name).is_none() && !name.contains('.') {
            return Err(Error::UndefinedParameter(name));
        }
        self.changed.remove(&name);
        Ok(())
    }
}

fn normalize(name: &str, value: String) -> Result<String> {
    match name {
        "client_encoding" => {
            let upper = value.to_ascii_uppercase().replace(['-', '_'], "");
            if upper == "UTF8" || upper == "UNICODE" {
                Ok("UTF8".to_string())
            } else {
                Err(Error::InvalidParameterValue(format!(
                    "invalid value for parameter \"client_encoding\": \"{value}\" (Quiver speaks UTF8 only)"
                )))
            }
        }
        // Dump scripts set it; backslashes in strings are never escapes.
        "standard_conforming_strings" => match value.to_ascii_lowercase().as_str() {
            "on" | "true" | "1" | "yes" => Ok("on".to_string()),
            _ => Err(Error::FeatureNotSupported(
                "standard_conforming_strings cannot be turned off: Quiver's strings always conform to the standard".into(),
            )),
        },
        _ => Ok(value),
    }
}

/// PostgreSQL reports some parameters in mixed case.
fn display_name(name: &str) -> &str {
    match name {
        "datestyle" => "DateStyle",
        "intervalstyle" => "IntervalStyle",
        "timezone" => "TimeZone",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_and_show_are_per_session_and_case_insensitive() {
        let mut a = Settings::default();
        let b = Settings::default();
        a.set("Application_Name", "psql".into()).expect("settable");
        assert_eq!(a.get("application_name").expect("known"), "psql");
        assert_eq!(b.get("APPLICATION_NAME").expect("known"), "");
    }

    #[test]
    fn unknown_parameters_are_errors_but_custom_ones_are_kept() {
        let mut s = Settings::default();
        assert_eq!(
            s.set("no_such", "1".into()).unwrap_err().sqlstate(),
            "42704"
        );
        s.set("myapp.mode", "fast".into()).expect("custom");
        assert_eq!(s.get("myapp.mode").expect("set"), "fast");
        assert_eq!(
            s.set("client_encoding", "LATIN1".into())
                .unwrap_err()
                .sqlstate(),
            "22023"
        );
    }
}
