//! Which models are loaded: on demand, deduplicated, within a memory budget, for as long as
//! their `keep_alive` says.
//!
//! Every model goes through one state machine, shown in listings:
//!
//! ```text
//!              acquire                 load ok
//!  unloaded ────────────▶ loading ───────────────▶ loaded ──┐ keep_alive expired,
//!     ▲                      │ load failed          │  ▲    │ evicted for memory,
//!     │                      ▼                      │  │    │ worker died
//!     │                   failed ◀──────────────────┘  │    ▼
//!     │                      │ acquire (reload)        │  unloading
//!     │                      └─────────▶ loading ──────┘    │
//!     └─────────────────────────────────────────────────────┘
//! ```
//!
//! A model with requests in flight (a [`Lease`] alive) is never unloaded: eviction picks the
//! least recently used *idle* model, and a load that needs memory held by busy models waits
//! for one of them to become idle. A load of a model that is already loading waits for that
//! load instead of starting a second one.

use crate::Backends;
use minerva_core::{CoreError, LibraryModel, Model, ModelSpec, Result};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant, SystemTime};

/// How long a model stays loaded after its last request (Ollama's `keep_alive`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepAlive {
    /// Unload after this long idle; zero unloads as soon as the model is idle.
    For(Duration),
    /// Never unload for being idle (a negative `keep_alive` in Ollama's API).
    Forever,
}

impl KeepAlive {
    fn deadline(self, from: Instant) -> Option<Instant> {
        match self {
            // Past what the clock can say: as good as never.
            KeepAlive::For(d) => from.checked_add(d),
            KeepAlive::Forever => None,
        }
    }
}

/// Where a model is in its life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelState {
    Unloaded,
    Loading,
    Loaded,
    Unloading,
    /// The last load failed or its worker died; the next request loads it again.
    Failed,
}

impl ModelState {
    pub fn as_str(self) -> &'static str {
        match self {
            ModelState::Unloaded => "unloaded",
            ModelState::Loading => "loading",
            ModelState::Loaded => "loaded",
            ModelState::Unloading => "unloading",
            ModelState::Failed => "failed",
        }
    }
}

/// Load options applied to every model the manager loads.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    pub ctx_size: Option<u32>,
    pub threads: Option<u32>,
    pub parallel: Option<u32>,
    /// KV cache cells shared by the sequences (`None`: parallel × ctx_size).
    pub kv_size: Option<u32>,
    /// One KV cache for all sequences (`None`: yes).
    pub kv_unified: Option<bool>,
    pub flash_attn: Option<minerva_core::FlashAttn>,
    pub queue: Option<u32>,
    pub chat_template: Option<String>,
    pub queue_timeout: Option<Duration>,
    pub cache_bytes: Option<u64>,
}

impl LoadOptions {
    /// The spec that loads `model`. A created model's own `num_ctx` and template replace the
    /// server's.
    pub fn spec(&self, model: &LibraryModel) -> ModelSpec {
        ModelSpec {
            id: model.name.clone(),
            path: model.path.clone(),
            ctx_size: self.ctx_size_of(model),
            threads: self.threads,
            parallel: self.parallel,
            kv_size: self.kv_size,
            kv_unified: self.kv_unified,
            flash_attn: self.flash_attn,
            queue: self.queue,
            chat_template: model
                .settings
                .template
                .clone()
                .or_else(|| self.chat_template.clone()),
            queue_timeout: self.queue_timeout,
            cache_bytes: self.cache_bytes,
            sha256: Some(model.digest.clone()).filter(|d| !d.is_empty()),
            projector: model.projector.clone(),
        }
    }

    /// Memory a load of `model` is expected to take: the weights (and the vision projector's)
    /// plus the KV cache of every sequence (the backend's defaults when the options leave them
    /// open).
    pub fn estimate(&self, model: &LibraryModel) -> u64 {
        let ctx = u64::from(self.ctx_size_of(model).unwrap_or(4096).max(1));
        // The llama.cpp backend's default: 16384 tokens of KV, in 1 to 4 sequences.
        let parallel = u64::from(
            self.parallel
                .unwrap_or((16384 / ctx).clamp(1, 4) as u32)
                .max(1),
        );
        let cells = self.kv_size.map_or(ctx.saturating_mul(parallel), u64::from);
        let kv = model.kv_bytes_per_token.unwrap_or(0).saturating_mul(cells);
        let projector = model
            .projector
            .as_ref()
            .and_then(|p| std::fs::metadata(p).ok())
            .map_or(0, |m| m.len());
        model.size.saturating_add(kv).saturating_add(projector)
    }

    /// The context window one request of `model` may use: its own `num_ctx`, else the
    /// server's.
    fn ctx_size_of(&self, model: &LibraryModel) -> Option<u32> {
        model.settings.num_ctx().or(self.ctx_size)
    }
}

/// How the manager decides what stays loaded.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    /// Memory the loaded models may take together, in bytes.
    pub budget_bytes: u64,
    /// Most models loaded at once (`None`: only the budget limits).
    pub max_loaded: Option<usize>,
    /// `keep_alive` of requests that do not give one.
    pub default_keep_alive: KeepAlive,
    /// Longest a load waits for busy models to free memory before it is refused.
    pub load_wait: Duration,
    pub load: LoadOptions,
    /// Most tokens one request may generate (llama-server's `--n-predict`): a request that
    /// asks for more, or gives no limit, gets this many (`None`: the request's own limit, else
    /// the context's end).
    pub n_predict: Option<u32>,
}

impl Default for ManagerConfig {
    fn default() -> Self {
        ManagerConfig {
            budget_bytes: u64::MAX,
            max_loaded: None,
            default_keep_alive: KeepAlive::For(Duration::from_secs(300)),
            load_wait: Duration::from_secs(600),
            load: LoadOptions::default(),
            n_predict: None,
        }
    }
}

/// What is known of a loaded model.
#[derive(Clone)]
pub struct LoadedModel {
    pub model: Arc<dyn Model>,
    pub memory_bytes: u64,
    /// When it unloads if it stays idle (`None`: never, or busy now).
    pub expires_at: Option<SystemTime>,
    pub in_flight: usize,
    pub loaded_at: SystemTime,
    pub load_duration: Duration,
}

enum Entry {
    Loading { estimate: u64 },
    Loaded(Box<Loaded>),
    Unloading { memory: u64 },
    Failed(String),
}

struct Loaded {
    model: Arc<dyn Model>,
    in_flight: usize,
    last_used: Instant,
    expires: Option<Instant>,
    keep_alive: KeepAlive,
    loaded_at: SystemTime,
    load_duration: Duration,
    /// Never unloaded (models handed over already loaded, without a backend to reload them).
    pinned: bool,
}

impl Loaded {
    fn memory(&self) -> u64 {
        self.model.memory_bytes()
    }
}

pub(crate) struct Manager {
    backends: Backends,
    config: ManagerConfig,
    entries: Mutex<BTreeMap<String, Entry>>,
    load_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Signalled when a lease ends or a model leaves memory.
    changed: tokio::sync::Notify,
}

/// A loaded model held for one request: while any lease of a model lives, the model stays
/// loaded. Dropping the last one starts its `keep_alive` timer.
pub struct Lease {
    model: Arc<dyn Model>,
    name: String,
    keep_alive: Option<KeepAlive>,
    manager: Weak<Manager>,
}

impl Lease {
    pub fn model(&self) -> &Arc<dyn Model> {
        &self.model
    }

    /// The most tokens a request asking for `requested` may generate, under the server's
    /// [`ManagerConfig::n_predict`].
    pub fn max_tokens(&self, requested: Option<u32>) -> Option<u32> {
        let cap = self.manager.upgrade().and_then(|m| m.config.n_predict);
        match (requested, cap) {
            (Some(r), Some(c)) => Some(r.min(c)),
            (r, c) => r.or(c),
        }
    }

    /// The library name the model was requested by.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Another lease on the same model, for one more request using it (the model stays
    /// loaded until every lease is dropped).
    pub fn share(&self) -> Lease {
        if let Some(manager) = self.manager.upgrade() {
            manager.add_use(&self.name, &self.model);
        }
        Lease {
            model: Arc::clone(&self.model),
            name: self.name.clone(),
            keep_alive: self.keep_alive,
            manager: self.manager.clone(),
        }
    }
}

impl std::ops::Deref for Lease {
    type Target = Arc<dyn Model>;
    fn deref(&self) -> &Arc<dyn Model> {
        &self.model
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(manager) = self.manager.upgrade() {
            manager.release(&self.name, &self.model, self.keep_alive);
        }
    }
}

impl Manager {
    pub(crate) fn new(backends: Backends, config: ManagerConfig) -> Arc<Self> {
        let manager = Arc::new(Manager {
            backends,
            config,
            entries: Mutex::new(BTreeMap::new()),
            load_locks: Mutex::new(HashMap::new()),
            changed: tokio::sync::Notify::new(),
        });
        start_reaper(Arc::downgrade(&manager));
        manager
    }

    fn entries(&self) -> MutexGuard<'_, BTreeMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a model that is already loaded; it stays loaded for the manager's life.
    pub(crate) fn insert_pinned(&self, name: String, model: Arc<dyn Model>) {
        self.entries().insert(
            name,
            Entry::Loaded(Box::new(Loaded {
                model,
                in_flight: 0,
                last_used: Instant::now(),
                expires: None,
                keep_alive: KeepAlive::Forever,
                loaded_at: SystemTime::now(),
                load_duration: Duration::ZERO,
                pinned: true,
            })),
        );
    }

    pub(crate) fn state(&self, name: &str) -> (ModelState, Option<String>) {
        match self.entries().get(name) {
            None => (ModelState::Unloaded, None),
            Some(Entry::Loading { .. }) => (ModelState::Loading, None),
            Some(Entry::Loaded(_)) => (ModelState::Loaded, None),
            Some(Entry::Unloading { .. }) => (ModelState::Unloading, None),
            Some(Entry::Failed(e)) => (ModelState::Failed, Some(e.clone())),
        }
    }

    /// The loaded models, by name.
    pub(crate) fn default_keep_alive(&self) -> KeepAlive {
        self.config.default_keep_alive
    }

    pub(crate) fn loaded(&self) -> Vec<(String, LoadedModel)> {
        let now = Instant::now();
        let wall = SystemTime::now();
        let loaded: Vec<(String, Loaded)> = self
            .entries()
            .iter()
            .filter_map(|(name, e)| match e {
                Entry::Loaded(l) => Some((
                    name.clone(),
                    Loaded {
                        model: Arc::clone(&l.model),
                        ..**l
                    },
                )),
                _ => None,
            })
            .collect();
        // `memory_bytes` may read /proc: outside the lock.
        loaded
            .into_iter()
            .map(|(name, l)| {
                let expires_at = l
                    .expires
                    .filter(|_| l.in_flight == 0)
                    .and_then(|e| wall.checked_add(e.saturating_duration_since(now)));
                (
                    name,
                    LoadedModel {
                        memory_bytes: l.memory(),
                        model: l.model,
                        expires_at,
                        in_flight: l.in_flight,
                        loaded_at: l.loaded_at,
                        load_duration: l.load_duration,
                    },
                )
            })
            .collect()
    }

    /// The model `library` describes, loaded if it is not, held for one request.
    pub(crate) async fn acquire(
        self: &Arc<Self>,
        library: &LibraryModel,
        keep_alive: Option<KeepAlive>,
    ) -> Result<Lease> {
        let name = library.name.as_str();
        if let Some(lease) = self.try_lease(name, keep_alive)? {
            return Ok(lease);
        }
        let lock = self.load_lock(name);
        let _guard = lock.lock().await;
        // Someone else's load may have finished while this one waited.
        if let Some(lease) = self.try_lease(name, keep_alive)? {
            return Ok(lease);
        }
        let backend = self.backends.for_model(library)?;
        let estimate = self.config.load.estimate(library);
        self.make_room(name, estimate).await?;
        // From here the entry says `loading`; should this request go away before the load ends
        // (its client disconnected), the guard takes that back (the load's result is dropped).
        let mut loading = LoadingGuard {
            manager: self,
            name,
            armed: true,
        };
        let spec = self.config.load.spec(library);
        tracing::info!(
            model = name,
            backend = backend.name(),
            estimate_mib = estimate >> 20,
            "loading model"
        );
        let started = Instant::now();
        let loaded = tokio::task::spawn_blocking(move || backend.load(&spec))
            .await
            .map_err(|e| CoreError::Load(format!("the load task failed: {e}")))
            .and_then(|r| r);
        loading.armed = false;
        let model = match loaded {
            Ok(model) => model,
            Err(e) => {
                tracing::warn!(model = name, error = %e, "load failed");
                self.entries()
                    .insert(name.to_string(), Entry::Failed(e.to_string()));
                self.changed.notify_waiters();
                return Err(e);
            }
        };
        let load_duration = started.elapsed();
        tracing::info!(
            model = name,
            pid = model.process_id(),
            seconds = load_duration.as_secs_f64(),
            memory_mib = model.memory_bytes() >> 20,
            "model loaded"
        );
        self.entries().insert(
            name.to_string(),
            Entry::Loaded(Box::new(Loaded {
                model: Arc::clone(&model),
                in_flight: 1,
                last_used: Instant::now(),
                expires: None,
                keep_alive: keep_alive.unwrap_or(self.config.default_keep_alive),
                loaded_at: SystemTime::now(),
                load_duration,
                pinned: false,
            })),
        );
        Ok(self.lease(name, model, keep_alive))
    }

    fn lease(self: &Arc<Self>, name: &str, model: Arc<dyn Model>, ka: Option<KeepAlive>) -> Lease {
        Lease {
            model,
            name: name.to_string(),
            keep_alive: ka,
            manager: Arc::downgrade(self),
        }
    }

    /// A lease on the loaded model `name`, or `None` when it is not loaded (a failed model is
    /// dropped here so that the caller loads it again).
    fn try_lease(self: &Arc<Self>, name: &str, ka: Option<KeepAlive>) -> Result<Option<Lease>> {
        let mut entries = self.entries();
        let Some(Entry::Loaded(l)) = entries.get_mut(name) else {
            return Ok(None);
        };
        if let Some(reason) = l.model.failure() {
            if l.pinned {
                return Err(CoreError::Backend(reason));
            }
            tracing::warn!(model = name, %reason, "model failed; it will be loaded again");
            let failed = entries.insert(name.to_string(), Entry::Failed(reason));
            drop(entries);
            drop(failed);
            return Ok(None);
        }
        l.in_flight += 1;
        l.last_used = Instant::now();
        l.expires = None;
        let model = Arc::clone(&l.model);
        drop(entries);
        Ok(Some(self.lease(name, model, ka)))
    }

    fn load_lock(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.load_locks.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(locks.entry(name.to_string()).or_default())
    }

    /// One more request uses the loaded `name` (a [`Lease::share`]); undone by `release`.
    fn add_use(&self, name: &str, model: &Arc<dyn Model>) {
        if let Some(Entry::Loaded(l)) = self.entries().get_mut(name) {
            if Arc::ptr_eq(&l.model, model) {
                l.in_flight += 1;
                l.expires = None;
            }
        }
    }

    fn release(&self, name: &str, model: &Arc<dyn Model>, ka: Option<KeepAlive>) {
        let mut entries = self.entries();
        if let Some(Entry::Loaded(l)) = entries.get_mut(name) {
            if Arc::ptr_eq(&l.model, model) {
                l.in_flight = l.in_flight.saturating_sub(1);
                l.last_used = Instant::now();
                if let Some(ka) = ka {
                    l.keep_alive = ka;
                }
                if l.in_flight == 0 && !l.pinned {
                    l.expires = l.keep_alive.deadline(l.last_used);
                }
            }
        }
        drop(entries);
        self.changed.notify_waiters();
    }

    /// Marks `name` as loading once the loaded models leave room for `estimate` more bytes:
    /// evicts idle models, least recently used first, and waits for busy ones to become idle.
    async fn make_room(&self, name: &str, estimate: u64) -> Result<()> {
        let deadline = Instant::now() + self.config.load_wait;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.plan_room(name, estimate) {
                Room::Ready => return Ok(()),
                Room::Evict(victim, model) => {
                    tracing::info!(model = %victim, for_model = name, "evicting idle model for memory");
                    self.unload_now(&victim, model).await;
                    continue;
                }
                Room::Wait => {}
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(CoreError::Unavailable(format!(
                    "not enough memory to load '{name}': the models in use hold the memory budget \
                     ({} MiB); retry when they finish",
                    self.config.budget_bytes >> 20
                )));
            }
            let _ = tokio::time::timeout(left.min(Duration::from_millis(500)), notified).await;
        }
    }

    fn plan_room(&self, name: &str, estimate: u64) -> Room {
        let mut entries = self.entries();
        let mut used = 0u64;
        let mut count = 0usize;
        let mut victim: Option<(&String, Instant)> = None;
        for (other, entry) in entries.iter() {
            if other == name {
                continue;
            }
            match entry {
                Entry::Loading { estimate } => {
                    used = used.saturating_add(*estimate);
                    count += 1;
                }
                Entry::Unloading { memory } => used = used.saturating_add(*memory),
                Entry::Loaded(l) => {
                    used = used.saturating_add(l.memory());
                    count += 1;
                    if l.in_flight == 0 && !l.pinned && victim.is_none_or(|(_, t)| l.last_used < t)
                    {
                        victim = Some((other, l.last_used));
                    }
                }
                Entry::Failed(_) => {}
            }
        }
        let fits_memory = used.saturating_add(estimate) <= self.config.budget_bytes;
        let fits_count = self.config.max_loaded.is_none_or(|max| count < max);
        // A model bigger than the whole budget still loads when it is alone.
        if (fits_memory || count == 0) && fits_count {
            entries.insert(name.to_string(), Entry::Loading { estimate });
            return Room::Ready;
        }
        match victim.map(|(n, _)| n.clone()) {
            Some(victim) => match entries.remove(&victim) {
                Some(Entry::Loaded(l)) => {
                    let memory = l.memory();
                    entries.insert(victim.clone(), Entry::Unloading { memory });
                    Room::Evict(victim, l.model)
                }
                _ => Room::Wait,
            },
            None => Room::Wait,
        }
    }

    /// Drops an unloading model's last handle (a worker process exits) and forgets it.
    async fn unload_now(&self, name: &str, model: Arc<dyn Model>) {
        let _ = tokio::task::spawn_blocking(move || drop(model)).await;
        self.finish_unload(name);
    }

    fn finish_unload(&self, name: &str) {
        let mut entries = self.entries();
        if matches!(entries.get(name), Some(Entry::Unloading { .. })) {
            entries.remove(name);
        }
        drop(entries);
        tracing::info!(model = name, "model unloaded");
        self.changed.notify_waiters();
    }

    /// Unloads `name` now if it is idle; a busy model unloads when its last request ends.
    pub(crate) async fn unload(&self, name: &str) {
        let model = {
            let mut entries = self.entries();
            match entries.get_mut(name) {
                Some(Entry::Loaded(l)) if l.pinned => None,
                Some(Entry::Loaded(l)) if l.in_flight > 0 => {
                    l.keep_alive = KeepAlive::For(Duration::ZERO);
                    None
                }
                Some(Entry::Loaded(_)) => match entries.remove(name) {
                    Some(Entry::Loaded(l)) => {
                        let memory = l.memory();
                        entries.insert(name.to_string(), Entry::Unloading { memory });
                        Some(l.model)
                    }
                    _ => None,
                },
                Some(Entry::Failed(_)) => {
                    entries.remove(name);
                    None
                }
                _ => None,
            }
        };
        if let Some(model) = model {
            self.unload_now(name, model).await;
        }
    }

    /// One pass of the reaper: unloads expired idle models and marks dead ones failed.
    fn reap(&self) {
        let now = Instant::now();
        let mut dropped = Vec::new();
        {
            let mut entries = self.entries();
            let names: Vec<String> = entries
                .iter()
                .filter_map(|(name, e)| match e {
                    Entry::Loaded(l) if !l.pinned => {
                        let expired = l.in_flight == 0 && l.expires.is_some_and(|t| t <= now);
                        let failed = l.in_flight == 0 && l.model.failure().is_some();
                        (expired || failed).then(|| name.clone())
                    }
                    _ => None,
                })
                .collect();
            for name in names {
                if let Some(Entry::Loaded(l)) = entries.remove(&name) {
                    match l.model.failure() {
                        Some(reason) => {
                            tracing::warn!(model = %name, %reason, "model failed");
                            entries.insert(name.clone(), Entry::Failed(reason));
                            dropped.push((name, l.model, false));
                        }
                        None => {
                            let memory = l.memory();
                            entries.insert(name.clone(), Entry::Unloading { memory });
                            dropped.push((name, l.model, true));
                        }
                    }
                }
            }
        }
        for (name, model, unloading) in dropped {
            if unloading {
                tracing::info!(model = %name, "keep_alive expired");
            }
            drop(model);
            if unloading {
                self.finish_unload(&name);
            } else {
                self.changed.notify_waiters();
            }
        }
    }
}

/// Forgets a `loading` entry whose load was abandoned (see [`Manager::acquire`]).
struct LoadingGuard<'a> {
    manager: &'a Manager,
    name: &'a str,
    armed: bool,
}

impl Drop for LoadingGuard<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let mut entries = self.manager.entries();
        if matches!(entries.get(self.name), Some(Entry::Loading { .. })) {
            entries.remove(self.name);
        }
        drop(entries);
        tracing::info!(model = self.name, "load abandoned: the request went away");
        self.manager.changed.notify_waiters();
    }
}

enum Room {
    Ready,
    Evict(String, Arc<dyn Model>),
    Wait,
}

/// A thread that unloads expired models, four times a second, for as long as the manager lives.
fn start_reaper(manager: Weak<Manager>) {
    let spawned = std::thread::Builder::new()
        .name("minerva-reaper".into())
        .spawn(move || loop {
            std::thread::sleep(Duration::from_millis(250));
            match manager.upgrade() {
                Some(m) => m.reap(),
                None => return,
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the model reaper; idle models stay loaded");
    }
}
