//! [`FunctionLoader`]: from a function definition to a callable function,
//! in whichever process a plan reaches.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};

use quiver_catalog::{Buckets, MODULES_CF, MetaStore};
use quiver_storage::ObjectStores;

use crate::definition::FunctionDef;
use crate::function::{Code, WasmFunction};
use crate::keyvalue::BucketSource;
use crate::module::ModuleBytes;
use crate::module_dir::ModuleDir;
use crate::runtime::WasmRuntime;
use crate::usage::UsageCounters;
use crate::{Error, Result};

/// How many recently decoded functions a process keeps alive with no plan
/// holding them, so the next task of a query reuses their instances.
const RECENT: usize = 64;

/// Builds [`WasmFunction`]s from definitions, compiling each module at most
/// once per process. The frontend's loader reads modules from the catalog;
/// an executor's or the scheduler's, from the module directory a plan names.
pub struct FunctionLoader {
    runtime: Arc<WasmRuntime>,
    /// The catalog, in the process that owns it.
    store: Option<Arc<MetaStore>>,
    /// The buckets functions read: the catalog's, where it is.
    buckets: Arc<BucketSource>,
    /// Every function version alive in this process, so a plan decoded again
    /// (once per task) reuses its instances. Weak: a replaced version's
    /// instances are freed once no plan and no recent use holds it.
    versions: Mutex<HashMap<FunctionDef, Weak<WasmFunction>>>,
    recent: Mutex<VecDeque<Arc<WasmFunction>>>,
    /// What this process's functions did.
    usage: Arc<UsageCounters>,
    /// Where module directories named by plans are (local or in object
    /// stores).
    stores: Arc<ObjectStores>,
}

impl std::fmt::Debug for FunctionLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FunctionLoader")
            .field("runtime", &self.runtime)
            .field("catalog", &self.store.is_some())
            .finish_non_exhaustive()
    }
}

impl FunctionLoader {
    /// A loader reading modules from `store` (the catalog) when given, and
    /// otherwise from module directories named by plans, which `stores`
    /// reaches.
    pub fn new(
        runtime: Arc<WasmRuntime>,
        store: Option<Arc<MetaStore>>,
        stores: Arc<ObjectStores>,
    ) -> Self {
        let buckets = store
            .as_ref()
            .map(|store| Arc::new(Buckets::new(store.clone())));
        Self {
            runtime,
            store,
            buckets: Arc::new(BucketSource::new(buckets)),
            versions: Mutex::new(HashMap::new()),
            recent: Mutex::new(VecDeque::new()),
            usage: Arc::default(),
            stores,
        }
    }

    /// The module directory at `location` (a URL a plan names), if any.
    pub fn module_dir(&self, location: Option<&str>) -> Result<Option<ModuleDir>> {
        location
            .map(|location| ModuleDir::open(location, &self.stores))
            .transpose()
    }

    pub fn runtime(&self) -> &Arc<WasmRuntime> {
        &self.runtime
    }

    /// What this process's functions did since it was last taken.
    pub fn usage(&self) -> &Arc<UsageCounters> {
        &self.usage
    }

    /// The buckets of this process's functions.
    pub fn buckets(&self) -> &Arc<BucketSource> {
        &self.buckets
    }

    /// The callable form of `def` (this version exactly). A module this
    /// process has not compiled is read from the catalog, or else from
    /// `modules`, and compiled (or loaded from the compiled-code cache).
    pub fn function(
        &self,
        def: &FunctionDef,
        modules: Option<&ModuleDir>,
    ) -> Result<Arc<WasmFunction>> {
        if let Some(f) = self.versions().get(def).and_then(Weak::upgrade) {
            return Ok(f);
        }
        let code = self.code(def, modules)?;
        let f = self.remember(def.clone(), code, modules);
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if !recent.iter().any(|r| Arc::ptr_eq(r, &f)) {
            if recent.len() == RECENT {
                recent.pop_front();
            }
            recent.push_back(f.clone());
        }
        Ok(f)
    }

    /// Where `def`'s module comes from: compiled already, or from the
    /// catalog (compiled now), or from `modules` (compiled at the first call).
    fn code(&self, def: &FunctionDef, modules: Option<&ModuleDir>) -> Result<Code> {
        let sha = &def.module_sha256;
        if let Some(compiled) = self.runtime.cached(sha) {
            return Ok(Code::Compiled(compiled));
        }
        if let Some(store) = &self.store
            && let Some(bytes) = store.get(MODULES_CF, sha)?
        {
            return Ok(Code::Compiled(
                self.runtime.compile(&ModuleBytes::new(bytes))?,
            ));
        }
        match modules {
            Some(modules) if modules.contains(sha)? => Ok(Code::Fetch(modules.clone())),
            _ => Err(Error::Corrupt {
                key: def.signature(),
                message: format!("module {sha} is missing"),
            }),
        }
    }

    fn versions(&self) -> std::sync::MutexGuard<'_, HashMap<FunctionDef, Weak<WasmFunction>>> {
        self.versions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The one [`WasmFunction`] of `def` in this process.
    pub(crate) fn remember(
        &self,
        def: FunctionDef,
        code: Code,
        modules: Option<&ModuleDir>,
    ) -> Arc<WasmFunction> {
        let mut versions = self.versions();
        if let Some(f) = versions.get(&def).and_then(Weak::upgrade) {
            return f;
        }
        versions.retain(|_, f| f.strong_count() > 0);
        let f = Arc::new(
            WasmFunction::new(def.clone(), code, self.runtime.clone())
                .with_buckets(self.buckets.clone(), modules.cloned())
                .counted_in(self.usage.of(modules, &def.signature())),
        );
        versions.insert(def, Arc::downgrade(&f));
        f
    }
}
