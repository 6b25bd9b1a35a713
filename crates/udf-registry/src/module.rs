//! Module bytes from what `CREATE FUNCTION ... AS` gives: WAT text, base64,
//! a bytea hex literal, or a file under the function directory.

use std::path::{Component, Path};

use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// The first bytes of every binary Wasm module and component.
const WASM_MAGIC: &[u8] = b"\0asm";

/// Module bytes and their content address.
#[derive(Debug, Clone)]
pub struct ModuleBytes {
    pub bytes: Vec<u8>,
    /// SHA-256, lower-case hex.
    pub sha256: String,
}

impl ModuleBytes {
    pub fn new(bytes: Vec<u8>) -> Self {
        let sha256 = hex::encode(Sha256::digest(&bytes));
        Self { bytes, sha256 }
    }

    /// Decodes the `AS '...'` string: a bytea hex literal (`\x0061736d...`),
    /// WAT text (starts with `(`), or base64 of a binary module.
    pub fn from_inline(text: &str) -> Result<Self> {
        let trimmed = text.trim();
        let bytes = if let Some(hex_digits) = trimmed.strip_prefix("\\x") {
            hex::decode(hex_digits).map_err(|e| {
                Error::InvalidFunction(format!("invalid hexadecimal module literal: {e}"))
            })?
        } else if trimmed.starts_with('(') || trimmed.starts_with(";;") {
            wat::parse_str(trimmed)
                .map_err(|e| Error::InvalidFunction(format!("invalid WAT module: {e}")))?
        } else {
            let compact: String = trimmed.split_whitespace().collect();
            base64::engine::general_purpose::STANDARD
                .decode(compact)
                .map_err(|_| {
                    Error::InvalidFunction(
                        "the module must be WAT text, base64 of a .wasm file, a bytea hex literal ('\\x0061736d...'), or a file name followed by the function's name (AS 'file.wasm', 'name')".into(),
                    )
                })?
        };
        Self::checked(bytes)
    }

    /// Reads `file` from `function_dir`. Only relative paths that stay inside
    /// the directory are accepted.
    pub fn from_file(function_dir: Option<&Path>, file: &str) -> Result<Self> {
        let Some(dir) = function_dir else {
            return Err(Error::InvalidFunction(
                "module files are disabled: start the server with --function-dir to load functions from files".into(),
            ));
        };
        let relative = Path::new(file);
        if relative.as_os_str().is_empty()
            || !relative
                .components()
                .all(|c| matches!(c, Component::Normal(_)))
        {
            return Err(Error::InvalidFunction(format!(
                "module file \"{file}\" must be a relative path inside the function directory"
            )));
        }
        let path = dir.join(relative);
        let bytes = std::fs::read(&path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => Error::InvalidFunction(format!(
                "module file \"{file}\" does not exist in the function directory"
            )),
            _ => Error::Io { path, source },
        })?;
        Self::checked(bytes)
    }

    fn checked(bytes: Vec<u8>) -> Result<Self> {
        if !bytes.starts_with(WASM_MAGIC) {
            return Err(Error::InvalidFunction(
                "not a WebAssembly module: it does not start with \\0asm".into(),
            ));
        }
        Ok(Self::new(bytes))
    }

    /// Whether the bytes are a component (rather than a core module).
    pub fn is_component(&self) -> bool {
        wasmparser::Parser::is_component(&self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADD1: &str = r#"(module (func (export "add1") (param i64) (result i64) local.get 0 i64.const 1 i64.add))"#;

    #[test]
    fn wat_hex_and_base64_give_the_same_module() {
        let wat = ModuleBytes::from_inline(ADD1).expect("wat");
        let hex =
            ModuleBytes::from_inline(&format!("\\x{}", hex::encode(&wat.bytes))).expect("hex");
        let b64 =
            ModuleBytes::from_inline(&base64::engine::general_purpose::STANDARD.encode(&wat.bytes))
                .expect("base64");
        assert_eq!(wat.sha256, hex.sha256);
        assert_eq!(wat.sha256, b64.sha256);
        assert!(!wat.is_component());
    }

    #[test]
    fn garbage_and_escaping_paths_are_refused() {
        assert!(matches!(
            ModuleBytes::from_inline("\\x00112233"),
            Err(Error::InvalidFunction(_))
        ));
        assert!(ModuleBytes::from_inline("(module (func").is_err());
        let dir = tempfile::tempdir().expect("tempdir");
        for bad in ["../x.wasm", "/etc/passwd", "a/../../b.wasm", ""] {
            assert!(matches!(
                ModuleBytes::from_file(Some(dir.path()), bad),
                Err(Error::InvalidFunction(_))
            ));
        }
        assert!(ModuleBytes::from_file(None, "x.wasm").is_err());
    }
}
