//! [`FunctionRegistry`]: the durable catalog of Wasm functions.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use quiver_catalog::{
    Change, FUNCTION_USAGE_CF, FUNCTIONS_CF, FunctionUsage, MODULES_CF, MetaStore, Usage,
};

use crate::definition::{Abi, Folded, FunctionDef, Grants, Kind, Limits, Volatility};
use crate::folded::FoldedParts;
use crate::function::{Code, WasmFunction};
use crate::loader::FunctionLoader;
use crate::module::ModuleBytes;
use crate::module_dir::ModuleDir;
use crate::runtime::WasmRuntime;
use crate::types::{SqlType, signature};
use crate::{Error, Result};
use quiver_storage::ObjectStores;

/// Where a `CREATE FUNCTION` takes its module from.
#[derive(Debug, Clone)]
pub enum ModuleSource {
    /// `AS '...'`: WAT text, base64, or a bytea hex literal.
    Inline(String),
    /// `AS 'file.wasm', 'symbol'`: a file under the function directory.
    File(String),
    /// `AS 'sha256:<hex>', 'symbol'`: a module this server stores already
    /// (another function's), by its SHA-256 — as `pg_proc.probin` names it,
    /// and so pg_dump writes a Wasm function.
    Stored(String),
}

/// A `CREATE [OR REPLACE] FUNCTION ... LANGUAGE wasm` or
/// `CREATE [OR REPLACE] AGGREGATE ... (MODULE = ...)` statement.
#[derive(Debug, Clone)]
pub struct CreateFunction {
    pub name: String,
    pub kind: Kind,
    pub args: Vec<SqlType>,
    /// The result type of a scalar function. Aggregates return what their
    /// component says; table functions, their columns.
    pub returns: Option<SqlType>,
    pub module: ModuleSource,
    /// The function inside the module; the SQL name when not given.
    pub symbol: Option<String>,
    pub volatility: Volatility,
    /// `Some(true)`: `STRICT`; `Some(false)`: `CALLED ON NULL INPUT`.
    pub strict: Option<bool>,
    pub limits: Limits,
    pub grants: Grants,
    pub or_replace: bool,
}

/// A `CREATE [OR REPLACE] AGGREGATE name(types) (SFUNC = ..., STYPE = ...)`
/// statement: an aggregate folding rows with Wasm scalar functions.
#[derive(Debug, Clone)]
pub struct CreateFolded {
    pub name: String,
    pub args: Vec<SqlType>,
    pub stype: SqlType,
    /// Function names; their argument types follow from `stype` and `args`.
    pub sfunc: String,
    pub combinefunc: Option<String>,
    pub finalfunc: Option<String>,
    pub initcond: Option<String>,
    pub or_replace: bool,
}

/// The durable catalog of Wasm functions of one data directory: definitions
/// and content-addressed modules in the [`MetaStore`], compiled functions in
/// memory, and every module published to the [`ModuleDir`] other processes
/// of a cluster read.
pub struct FunctionRegistry {
    store: Arc<MetaStore>,
    loader: Arc<FunctionLoader>,
    function_dir: Option<PathBuf>,
    modules: Option<ModuleDir>,
    /// Definitions by name, overloads in signature order.
    functions: RwLock<BTreeMap<String, Vec<Arc<WasmFunction>>>>,
    /// Bumped by every change, so sessions know when to refresh.
    generation: AtomicU64,
    ddl: Mutex<()>,
    /// What functions did, summed (`quiver.function_stats`).
    usage: FunctionUsage,
}

impl std::fmt::Debug for FunctionRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FunctionRegistry")
            .field("function_dir", &self.function_dir)
            .finish_non_exhaustive()
    }
}

impl FunctionRegistry {
    /// Loads every stored function. A function whose module no longer
    /// compiles is logged and left out (it can still be dropped). Every
    /// stored module is published to the module directory at `modules` (a
    /// URL or an absolute path, in `stores`), and no other module is left
    /// there.
    pub fn open(
        store: Arc<MetaStore>,
        runtime: Arc<WasmRuntime>,
        stores: Arc<ObjectStores>,
        function_dir: Option<PathBuf>,
        modules: Option<&str>,
    ) -> Result<Self> {
        let loader = FunctionLoader::new(runtime, Some(store.clone()), stores);
        let modules = loader.module_dir(modules)?;
        let registry = Self {
            loader: Arc::new(loader),
            usage: FunctionUsage::new(store.clone()),
            store,
            function_dir,
            modules,
            functions: RwLock::new(BTreeMap::new()),
            generation: AtomicU64::new(1),
            ddl: Mutex::new(()),
        };
        let mut loaded = 0;
        for (key, value) in registry.store.scan(FUNCTIONS_CF)? {
            let def: FunctionDef = serde_json::from_slice(&value).map_err(|e| Error::Corrupt {
                key: key.clone(),
                message: e.to_string(),
            })?;
            match registry.function(&def) {
                Ok(function) => {
                    registry.insert(function);
                    loaded += 1;
                }
                Err(e) => {
                    tracing::error!(function = %key, error = %e, "Wasm function could not be loaded")
                }
            }
        }
        tracing::info!(functions = loaded, "Wasm functions loaded");
        registry.publish_all()?;
        Ok(registry)
    }

    /// Publishes every stored module and removes modules no function uses
    /// any more (kept until now: a running query may have needed them).
    fn publish_all(&self) -> Result<()> {
        let Some(modules) = &self.modules else {
            return Ok(());
        };
        let mut keep = HashSet::new();
        let mut published = 0;
        let sizes = modules.module_sizes()?;
        for (sha, bytes) in self.store.scan(MODULES_CF)? {
            // Written again unless it is there whole: a file a crash of the
            // machine left short would otherwise stay so.
            if sizes.get(&sha) != Some(&(bytes.len() as u64)) {
                modules.write_module(&ModuleBytes::new(bytes))?;
                published += 1;
            }
            keep.insert(sha);
        }
        let removed = modules.retain(&keep)?;
        tracing::info!(modules = keep.len(), published, removed, dir = %modules.location(), "Wasm modules published");
        Ok(())
    }

    pub fn runtime(&self) -> &Arc<WasmRuntime> {
        self.loader.runtime()
    }

    /// What builds functions from definitions (plan decoding uses it).
    pub fn loader(&self) -> &Arc<FunctionLoader> {
        &self.loader
    }

    /// What each function did, by signature: the catalog's totals, after
    /// adding what this process counted and what executors wrote into the
    /// module directory since the last time (see [`crate::usage`]).
    pub fn usage(&self) -> Result<BTreeMap<String, Usage>> {
        self.gather_usage()?;
        Ok(self.usage.totals()?)
    }

    /// Adds what this process counted and what executors wrote into the
    /// module directory since the last time to the catalog's totals (the
    /// server does so every few seconds, so that executors' files do not
    /// pile up while nobody reads the totals).
    pub fn gather_usage(&self) -> Result<()> {
        let mut counted = self.loader.usage().take_all();
        if let Some(modules) = &self.modules {
            for (signature, usage) in crate::usage::gather(modules)? {
                *counted.entry(signature).or_default() += &usage;
            }
        }
        Ok(self.usage.add(&counted)?)
    }

    /// Where executors read this catalog's modules.
    pub fn module_dir(&self) -> Option<&ModuleDir> {
        self.modules.as_ref()
    }

    /// Changes with every `CREATE` or `DROP`.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The overloads of every function, by name.
    pub fn functions(&self) -> BTreeMap<String, Vec<Arc<WasmFunction>>> {
        self.read().clone()
    }

    /// The overloads of function `name` (none: no such function).
    pub fn overloads(&self, name: &str) -> Vec<Arc<WasmFunction>> {
        self.read().get(name).cloned().unwrap_or_default()
    }

    /// Every definition, in name and signature order.
    pub fn definitions(&self) -> Vec<FunctionDef> {
        self.read()
            .values()
            .flatten()
            .map(|f| f.def().clone())
            .collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Vec<Arc<WasmFunction>>>> {
        self.functions.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Vec<Arc<WasmFunction>>>> {
        self.functions.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The callable form of a definition (this version exactly), built from
    /// the stored module if this process has not built it yet.
    pub fn function(&self, def: &FunctionDef) -> Result<Arc<WasmFunction>> {
        self.loader.function(def, None)
    }

    fn insert(&self, function: Arc<WasmFunction>) {
        let mut functions = self.write();
        let overloads = functions.entry(function.def().name.clone()).or_default();
        overloads.retain(|f| f.def().args != function.def().args);
        overloads.push(function);
        overloads.sort_by_key(|f| f.def().signature());
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The stored module whose SHA-256 is `sha256` (lower-case hex).
    fn stored_module(&self, sha256: &str) -> Result<ModuleBytes> {
        let bytes = self.store.get(MODULES_CF, sha256)?.ok_or_else(|| {
            Error::InvalidFunction(format!(
                "no module sha256:{sha256} is stored on this server: create the function from its module (AS 'file.wasm', 'symbol' or the module inline); a dump names a function's module by its hash only"
            ))
        })?;
        let module = ModuleBytes::new(bytes);
        if module.sha256 != sha256 {
            return Err(Error::Corrupt {
                key: sha256.to_string(),
                message: format!("the stored module's bytes hash to {}", module.sha256),
            });
        }
        Ok(module)
    }

    /// Registers a function: reads and compiles its module, checks the
    /// module against the SQL signature, and stores module and definition
    /// in one durable write. Returns the stored definition.
    ///
    /// Compiling can take a while: call from a blocking-friendly context.
    pub fn create(&self, create: CreateFunction) -> Result<FunctionDef> {
        let module = match &create.module {
            ModuleSource::Inline(text) => ModuleBytes::from_inline(text)?,
            ModuleSource::File(file) => ModuleBytes::from_file(self.function_dir.as_deref(), file)?,
            ModuleSource::Stored(sha256) => self.stored_module(sha256)?,
        };
        let abi = if module.is_component() {
            Abi::Component
        } else {
            Abi::Core
        };
        if abi == Abi::Core && create.kind != Kind::Scalar {
            return Err(Error::InvalidFunction(format!(
                "{} need a component: a core module exports only functions of numbers",
                match create.kind {
                    Kind::Aggregate => "aggregates",
                    Kind::Transform => "transforms",
                    _ => "table functions",
                }
            )));
        }
        let strict = match (abi, create.strict) {
            (Abi::Core, Some(false)) => {
                return Err(Error::InvalidFunction(
                    "core-module functions cannot be CALLED ON NULL INPUT: numbers cannot be null in a core module, so they are always STRICT".into(),
                ));
            }
            (Abi::Core, _) => true,
            (Abi::Component, strict) => strict.unwrap_or(false),
        };
        if create.kind == Kind::Aggregate && create.args.is_empty() {
            return Err(Error::InvalidFunction(
                "an aggregate takes at least one argument".into(),
            ));
        }
        let polymorphic = create.args.contains(&SqlType::AnyElement)
            || create.returns == Some(SqlType::AnyElement);
        if abi == Abi::Core && polymorphic {
            return Err(Error::InvalidFunction(
                "polymorphic (anyelement) functions need a component".into(),
            ));
        }
        if polymorphic && matches!(create.kind, Kind::Table { .. }) {
            return Err(Error::InvalidFunction(
                "table functions cannot take anyelement: their columns are fixed".into(),
            ));
        }
        self.runtime().check_limits(&create.limits)?;
        let grants = self.runtime().resolve_files(&create.grants)?;
        let compiled = self.runtime().compile(&module)?;
        let _ddl = self.ddl.lock().unwrap_or_else(|p| p.into_inner());
        let key = signature(&create.name, &create.args);
        let previous = self.stored(&key)?;
        let mut def = FunctionDef {
            name: create.name.clone(),
            kind: create.kind.clone(),
            args: create.args.clone(),
            returns: match &create.kind {
                Kind::Scalar => create.returns.ok_or_else(|| {
                    Error::InvalidFunction("function result type must be specified".into())
                })?,
                Kind::Table { columns } => columns.first().map(|c| c.ty).ok_or_else(|| {
                    Error::InvalidFunction("RETURNS TABLE needs at least one column".into())
                })?,
                // Asked from the component below.
                Kind::Aggregate => SqlType::AnyElement,
                // Described at each query, from its input.
                Kind::Transform => SqlType::AnyElement,
                Kind::Folded(_) => {
                    return Err(Error::InvalidFunction(
                        "aggregates with SFUNC are created with create_folded".into(),
                    ));
                }
            },
            abi,
            symbol: create.symbol.clone().unwrap_or_else(|| create.name.clone()),
            module_sha256: module.sha256.clone(),
            module_size: module.bytes.len() as u64,
            volatility: create.volatility,
            strict,
            limits: create.limits,
            grants,
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            version: previous.as_ref().map_or(1, |p| p.version + 1),
        };
        if def.kind == Kind::Aggregate && !polymorphic {
            let probe = WasmFunction::new(
                def.clone(),
                Code::Compiled(compiled.clone()),
                self.runtime().clone(),
            );
            probe.check_exported()?;
            def.returns = probe.guest_return_type(&def.args).map_err(|e| match e {
                Error::ArgumentTypes(m) => Error::InvalidFunction(m),
                other => other,
            })?;
        }
        if let Some(previous) = &previous {
            if !create.or_replace {
                return Err(Error::FunctionExists(key));
            }
            if previous.kind.name() != def.kind.name() {
                return Err(Error::WrongKind(format!(
                    "cannot change routine kind: {key} is {} function",
                    article(previous.kind.name())
                )));
            }
            if previous.returns != def.returns || previous.kind != def.kind {
                return Err(Error::InvalidFunction(format!(
                    "cannot change return type of existing function {key}: it returns {}",
                    previous.result_text()
                )));
            }
        }
        self.check_one_kind(&def)?;
        let function = WasmFunction::new(
            def.clone(),
            Code::Compiled(compiled.clone()),
            self.runtime().clone(),
        );
        function.validate()?;

        let value = serde_json::to_vec(&def).map_err(|e| Error::Runtime(e.to_string()))?;
        let mut changes = vec![Change::Put {
            cf: FUNCTIONS_CF,
            key: &key,
            value: &value,
        }];
        if self.store.get(MODULES_CF, &module.sha256)?.is_none() {
            changes.push(Change::Put {
                cf: MODULES_CF,
                key: &module.sha256,
                value: &module.bytes,
            });
        }
        let orphan = previous
            .as_ref()
            .map(|p| p.module_sha256.clone())
            .filter(|sha| *sha != module.sha256 && !self.module_used(sha, Some(&key)));
        if let Some(sha) = &orphan {
            changes.push(Change::Delete {
                cf: MODULES_CF,
                key: sha,
            });
        }
        // Published before the definition is: whoever sees the definition
        // can fetch the module.
        if let Some(modules) = &self.modules {
            modules.publish(&module)?;
        }
        self.store.write(&changes)?;
        self.insert(
            self.loader
                .remember(def.clone(), Code::Compiled(compiled), None),
        );
        tracing::info!(function = %key, sha256 = %def.module_sha256, version = def.version, "Wasm function created");
        Ok(def)
    }

    /// Overloads of one name must all be of one kind (DataFusion looks
    /// scalar functions, aggregates and table functions up separately).
    fn check_one_kind(&self, def: &FunctionDef) -> Result<()> {
        let kind = |k: &Kind| match k {
            Kind::Folded(_) => "classic aggregate",
            Kind::Aggregate => "module aggregate",
            other => other.name(),
        };
        if let Some(other) = self
            .read()
            .get(&def.name)
            .and_then(|overloads| overloads.first())
            .filter(|f| kind(&f.def().kind) != kind(&def.kind))
        {
            return Err(Error::InvalidFunction(format!(
                "{} is {} function; overloads of one name must all be of one kind",
                other.def().signature(),
                article(kind(&other.def().kind))
            )));
        }
        Ok(())
    }

    /// The functions a classic aggregate folds with, as they are now.
    pub fn folded_parts(&self, def: &FunctionDef) -> Result<FoldedParts> {
        let Kind::Folded(folded) = &def.kind else {
            return Err(Error::Runtime(format!(
                "{} is not a classic aggregate",
                def.signature()
            )));
        };
        let find = |key: &str| {
            self.read()
                .values()
                .flatten()
                .find(|f| f.def().signature() == key)
                .cloned()
                .ok_or_else(|| Error::FunctionNotFound(key.to_string()))
        };
        Ok(FoldedParts {
            aggregate: def.clone(),
            sfunc: find(&folded.sfunc)?,
            combinefunc: find(&folded.combinefunc)?,
            finalfunc: folded.finalfunc.as_deref().map(find).transpose()?,
        })
    }

    /// The scalar function `name(args)`, exactly.
    fn scalar(&self, name: &str, args: &[SqlType]) -> Result<Arc<WasmFunction>> {
        self.read()
            .get(name)
            .into_iter()
            .flatten()
            .find(|f| f.def().kind == Kind::Scalar && f.def().args == args)
            .cloned()
            .ok_or_else(|| Error::FunctionNotFound(signature(name, args)))
    }

    /// Registers a classic aggregate: checks its parts (which must exist
    /// as Wasm scalar functions of the right types) and its initial state,
    /// and stores it. Returns the stored definition.
    pub fn create_folded(&self, create: CreateFolded) -> Result<FunctionDef> {
        // Held from the look-up of the parts: none may be dropped meanwhile.
        let _ddl = self.ddl.lock().unwrap_or_else(|p| p.into_inner());
        if create.args.is_empty() {
            return Err(Error::InvalidFunction(
                "an aggregate takes at least one argument".into(),
            ));
        }
        let stype = create.stype;
        let state_args: Vec<SqlType> = std::iter::once(stype)
            .chain(create.args.iter().copied())
            .collect();
        let sfunc = self.scalar(&create.sfunc, &state_args)?;
        let Some(combinefunc) = &create.combinefunc else {
            return Err(Error::InvalidFunction(
                "COMBINEFUNC is required: Quiver always aggregates in parallel stages and merges partial states".into(),
            ));
        };
        let combine = self.scalar(combinefunc, &[stype, stype])?;
        let finalfunc = create
            .finalfunc
            .as_deref()
            .map(|f| self.scalar(f, &[stype]))
            .transpose()?;
        for (what, f) in [("transition", &sfunc), ("combine", &combine)] {
            if f.def().returns != stype {
                return Err(Error::InvalidFunction(format!(
                    "{what} function {} must return type {stype}, not {}",
                    f.def().signature(),
                    f.def().returns
                )));
            }
        }
        if let Some(initcond) = &create.initcond {
            crate::folded::initial_state(stype, Some(initcond))?;
        } else if sfunc.def().strict && create.args != [stype] {
            return Err(Error::InvalidFunction(
                "must not omit initial value when transition function is strict and transition type is not compatible with input type".into(),
            ));
        }
        let key = signature(&create.name, &create.args);
        let previous = self.stored(&key)?;
        let returns = finalfunc.as_ref().map_or(stype, |f| f.def().returns);
        let s = sfunc.def();
        let def = FunctionDef {
            name: create.name.clone(),
            kind: Kind::Folded(Folded {
                stype,
                sfunc: s.signature(),
                combinefunc: combine.def().signature(),
                finalfunc: finalfunc.as_ref().map(|f| f.def().signature()),
                initcond: create.initcond.clone(),
            }),
            args: create.args.clone(),
            returns,
            abi: s.abi,
            symbol: s.symbol.clone(),
            module_sha256: s.module_sha256.clone(),
            module_size: s.module_size,
            volatility: s.volatility,
            strict: s.strict,
            limits: s.limits,
            grants: s.grants.clone(),
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            version: previous.as_ref().map_or(1, |p| p.version + 1),
        };
        if let Some(previous) = &previous {
            if !create.or_replace {
                return Err(Error::FunctionExists(key));
            }
            if !matches!(previous.kind, Kind::Folded(_)) {
                return Err(Error::WrongKind(format!(
                    "cannot change routine kind: {key} is {} function",
                    article(previous.kind.name())
                )));
            }
            if previous.returns != def.returns {
                return Err(Error::InvalidFunction(format!(
                    "cannot change return type of existing function {key}: it returns {}",
                    previous.returns
                )));
            }
        }
        self.check_one_kind(&def)?;
        let value = serde_json::to_vec(&def).map_err(|e| Error::Runtime(e.to_string()))?;
        self.store.write(&[Change::Put {
            cf: FUNCTIONS_CF,
            key: &key,
            value: &value,
        }])?;
        self.insert(self.function(&def)?);
        tracing::info!(aggregate = %key, version = def.version, "classic Wasm aggregate created");
        Ok(def)
    }

    fn stored(&self, key: &str) -> Result<Option<FunctionDef>> {
        self.store
            .get(FUNCTIONS_CF, key)?
            .map(|value| {
                serde_json::from_slice(&value).map_err(|e| Error::Corrupt {
                    key: key.to_string(),
                    message: e.to_string(),
                })
            })
            .transpose()
    }

    /// Whether a function other than `except` uses the module.
    fn module_used(&self, sha256: &str, except: Option<&str>) -> bool {
        self.read().values().flatten().any(|f| {
            f.def().module_sha256 == sha256 && Some(f.def().signature().as_str()) != except
        })
    }

    /// The definition `name(args)` names; without `args`, the only overload
    /// of `name` (42725 if it has several). `None` when there is none.
    pub fn find(&self, name: &str, args: Option<&[SqlType]>) -> Result<Option<FunctionDef>> {
        let def = {
            let functions = self.read();
            let overloads = functions.get(name).map(Vec::as_slice).unwrap_or_default();
            match args {
                Some(args) => overloads.iter().find(|f| f.def().args == args),
                None if overloads.len() > 1 => {
                    return Err(Error::AmbiguousFunction(name.to_string()));
                }
                None => overloads.first(),
            }
            .map(|f| f.def().clone())
        };
        match (def, args) {
            (Some(def), _) => Ok(Some(def)),
            // A definition whose module failed to load is only in the store.
            (None, Some(args)) => self.stored(&signature(name, args)),
            (None, None) => Ok(None),
        }
    }

    /// `DROP FUNCTION name[(types)]`. Without types the name must have one
    /// overload. Returns the dropped definition, or `None` when it did not
    /// exist (the caller decides whether that is an error: `IF EXISTS`).
    ///
    /// `aggregate`: whether this is `DROP AGGREGATE` (which drops only
    /// aggregates, as `DROP FUNCTION` drops only other functions: 42809).
    pub fn drop_function(
        &self,
        name: &str,
        args: Option<&[SqlType]>,
        aggregate: bool,
    ) -> Result<Option<FunctionDef>> {
        let _ddl = self.ddl.lock().unwrap_or_else(|p| p.into_inner());
        let Some(def) = self.find(name, args)? else {
            return Ok(None);
        };
        let key = def.signature();
        if let Some(user) = self.read().values().flatten().find(|f| {
            matches!(&f.def().kind, Kind::Folded(parts)
                if parts.sfunc == key || parts.combinefunc == key || parts.finalfunc.as_deref() == Some(key.as_str()))
        }) {
            return Err(Error::DependentObjects(format!(
                "cannot drop function {key} because aggregate {} depends on it",
                user.def().signature()
            )));
        }
        match (aggregate, def.kind.name() == "aggregate") {
            (false, true) => {
                return Err(Error::WrongKind(format!(
                    "{key} is an aggregate function; use DROP AGGREGATE to drop aggregate functions"
                )));
            }
            (true, false) => {
                return Err(Error::WrongKind(format!(
                    "function {key} is not an aggregate"
                )));
            }
            _ => {}
        }
        let mut changes = vec![
            Change::Delete {
                cf: FUNCTIONS_CF,
                key: &key,
            },
            // A function made again under this signature starts from nothing.
            Change::Delete {
                cf: FUNCTION_USAGE_CF,
                key: &key,
            },
        ];
        let orphan = !self.module_used(&def.module_sha256, Some(&key));
        if orphan {
            changes.push(Change::Delete {
                cf: MODULES_CF,
                key: &def.module_sha256,
            });
        }
        self.store.write(&changes)?;
        let mut functions = self.write();
        if let Some(overloads) = functions.get_mut(name) {
            overloads.retain(|f| f.def().args != def.args);
            if overloads.is_empty() {
                functions.remove(name);
            }
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
        tracing::info!(function = %key, "Wasm function dropped");
        Ok(Some(def))
    }

    /// How many modules are stored (each once, however many functions use it).
    pub fn stored_modules(&self) -> Result<usize> {
        Ok(self.store.scan(MODULES_CF)?.len())
    }
}

fn article(kind: &str) -> String {
    match kind {
        "aggregate" => "an aggregate".into(),
        other => format!("a {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::RuntimeConfig;

    const ADD1: &str = r#"(module (func (export "add1") (param i64) (result i64) local.get 0 i64.const 1 i64.add))"#;
    const ADD2: &str = r#"(module (func (export "add1") (param i64) (result i64) local.get 0 i64.const 2 i64.add))"#;

    fn create(name: &str, module: &str, or_replace: bool) -> CreateFunction {
        CreateFunction {
            name: name.into(),
            kind: Kind::Scalar,
            args: vec![SqlType::Int64],
            returns: Some(SqlType::Int64),
            module: ModuleSource::Inline(module.replace("\"add1\"", &format!("\"{name}\""))),
            symbol: None,
            volatility: Volatility::Immutable,
            strict: None,
            limits: Limits::default(),
            grants: Grants::default(),
            or_replace,
        }
    }

    fn open(dir: &std::path::Path) -> FunctionRegistry {
        let store = Arc::new(MetaStore::open(&dir.join("catalog")).expect("store"));
        let runtime = Arc::new(WasmRuntime::new(RuntimeConfig::default()).expect("runtime"));
        FunctionRegistry::open(store, runtime, Arc::default(), None, None).expect("registry")
    }

    /// At start every stored module is published whole: one a crash left
    /// short is written again, one no function uses is removed.
    #[test]
    fn start_up_publishes_modules_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let modules = dir.path().join("modules");
        let open_published = || {
            let store = Arc::new(MetaStore::open(&dir.path().join("catalog")).expect("store"));
            let runtime = Arc::new(WasmRuntime::new(RuntimeConfig::default()).expect("runtime"));
            FunctionRegistry::open(
                store,
                runtime,
                Arc::default(),
                None,
                Some(modules.to_str().expect("utf-8")),
            )
            .expect("registry")
        };
        let def = open_published()
            .create(create("add1", ADD1, false))
            .expect("create");
        let file = modules.join(format!("{}.wasm", def.module_sha256));
        let whole = std::fs::read(&file).expect("published");
        std::fs::write(&file, &whole[..whole.len() / 2]).expect("torn");
        std::fs::write(modules.join(format!("{}.wasm", "0".repeat(64))), b"x").expect("unused");
        drop(open_published());
        assert_eq!(std::fs::read(&file).expect("republished"), whole);
        assert_eq!(std::fs::read_dir(&modules).expect("list").count(), 1);
    }

    #[test]
    fn modules_are_stored_once_and_removed_with_their_last_function() {
        let dir = tempfile::tempdir().expect("tempdir");
        let registry = open(dir.path());
        let first = registry
            .create(create("add1", ADD1, false))
            .expect("create");
        // Another overload, with a module of its own.
        let mut other = create("add1", ADD1, false);
        other.args = vec![SqlType::Int32];
        other.module = ModuleSource::Inline(ADD1.replace("i64) (result", "i32) (result").replace(
            "local.get 0 i64.const",
            "local.get 0 i64.extend_i32_s i64.const",
        ));
        registry.create(other).expect("overload");
        assert_eq!(registry.functions()["add1"].len(), 2);
        assert_eq!(registry.stored_modules().expect("modules"), 2);

        let replaced = registry
            .create(create("add1", ADD2, true))
            .expect("replace");
        assert_eq!(replaced.version, 2);
        assert_ne!(replaced.module_sha256, first.module_sha256);
        assert_eq!(
            registry.stored_modules().expect("modules"),
            2,
            "the replaced module is gone"
        );
        assert!(matches!(
            registry.create(create("add1", ADD1, false)),
            Err(Error::FunctionExists(_))
        ));
        assert!(matches!(
            registry.drop_function("add1", None, false),
            Err(Error::AmbiguousFunction(_))
        ));

        let generation = registry.generation();
        registry
            .drop_function("add1", Some(&[SqlType::Int64]), false)
            .expect("drop");
        assert!(registry.generation() > generation);
        assert_eq!(registry.stored_modules().expect("modules"), 1);
        assert!(
            registry
                .drop_function("add1", Some(&[SqlType::Int64]), false)
                .expect("drop")
                .is_none()
        );
        drop(registry);

        // Reopened: what is left is still there, and still runs.
        let registry = open(dir.path());
        let defs = registry.definitions();
        assert_eq!(defs.len(), 1);
        assert_eq!(defs[0].args, vec![SqlType::Int32]);
        let f = registry.function(&defs[0]).expect("loads");
        let out = f
            .invoke(
                &[Arc::new(datafusion::arrow::array::Int32Array::from(vec![
                    Some(1),
                    None,
                ]))],
                &[SqlType::Int32],
                2,
            )
            .expect("runs");
        assert_eq!(
            out.as_ref(),
            &datafusion::arrow::array::Int64Array::from(vec![Some(2), None])
                as &dyn datafusion::arrow::array::Array
        );
    }
}
