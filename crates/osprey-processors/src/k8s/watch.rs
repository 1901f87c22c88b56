//! The Kubernetes API side: watchers (list, then watch, re-listing after errors with kube's
//! default backoff) that keep a [`PodIndex`] current - pods (with the `filter` selectors), and
//! namespaces / nodes when a rule needs their labels, annotations or uids. Deleted pods stay
//! in the index for a grace period, so late telemetry from them is still enriched (as
//! upstream). One watch is shared by the processors built from the same config.

use super::config::K8sAttributesConfig;
use super::index::{PodIndex, SharedIndex};
use super::pod::PodId;
use super::rules::Rules;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Resource};
use osprey_pipeline::ConfigError;
use serde::de::DeserializeOwned;
use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Debug;
use std::sync::{Arc, LazyLock, Mutex, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant};
use tokio::sync::watch as signal;

/// How long a deleted pod is still used for enrichment (upstream's default).
pub const POD_DELETE_GRACE: Duration = Duration::from_secs(120);
const SWEEP_INTERVAL: Duration = Duration::from_secs(30);

/// Running watchers feeding one index; dropping it stops them.
pub struct K8sWatch {
    index: SharedIndex,
    synced: Vec<signal::Receiver<bool>>,
    tasks: Vec<tokio::task::AbortHandle>,
}

impl Drop for K8sWatch {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl K8sWatch {
    pub fn index(&self) -> &SharedIndex {
        &self.index
    }

    /// Whether every watcher has completed its first list.
    pub fn is_synced(&self) -> bool {
        self.synced.iter().all(|rx| *rx.borrow())
    }

    /// Waits until every watcher has completed its first list; `false` on timeout.
    pub async fn wait_synced(&self, timeout: Duration) -> bool {
        let all = async {
            for rx in &self.synced {
                let mut rx = rx.clone();
                if rx.wait_for(|s| *s).await.is_err() {
                    return false;
                }
            }
            true
        };
        tokio::time::timeout(timeout, all).await.unwrap_or(false)
    }
}

/// The pod list/watch selectors `filter` asks for: (label selector, field selector).
pub fn pod_selectors(config: &K8sAttributesConfig) -> (String, String) {
    let labels: Vec<String> = config
        .filter
        .labels
        .iter()
        .map(|f| match f.op.as_str() {
            "not-equals" => format!("{}!={}", f.key, f.value),
            "exists" => f.key.clone(),
            "does-not-exist" => format!("!{}", f.key),
            _ => format!("{}={}", f.key, f.value),
        })
        .collect();
    let mut fields: Vec<String> = config
        .filter
        .fields
        .iter()
        .map(|f| {
            let op = if f.op == "not-equals" { "!=" } else { "=" };
            format!("{}{op}{}", f.key, escape_field_value(&f.value))
        })
        .collect();
    let node = config.node_filter();
    if !node.is_empty() {
        fields.push(format!("spec.nodeName={}", escape_field_value(&node)));
    }
    (labels.join(","), fields.join(","))
}

/// Escapes a field selector value as `fields.EscapeValue` does.
fn escape_field_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

static SHARED: LazyLock<Mutex<HashMap<String, Weak<K8sWatch>>>> = LazyLock::new(Mutex::default);

/// The watch for `config`, shared by every processor built from the same config (one
/// `k8sattributes` used in several pipelines lists and watches once).
pub fn shared_watch(
    config: &K8sAttributesConfig,
    rules: Arc<Rules>,
) -> Result<Arc<K8sWatch>, ConfigError> {
    let key = format!("{config:?}");
    let mut map = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(w) = map.get(&key).and_then(Weak::upgrade) {
        return Ok(w);
    }
    let client = super::client::client_for(config)?;
    let w = Arc::new(start(client, config, rules));
    map.retain(|_, w| w.strong_count() > 0);
    map.insert(key, Arc::downgrade(&w));
    Ok(w)
}

/// Starts the watchers on `client` (within a tokio runtime).
pub fn start(client: kube::Client, config: &K8sAttributesConfig, rules: Arc<Rules>) -> K8sWatch {
    let index: SharedIndex = Arc::new(RwLock::new(PodIndex::new(rules.clone())));
    let mut watch = K8sWatch {
        index: index.clone(),
        synced: Vec::new(),
        tasks: Vec::new(),
    };
    let (labels, fields) = pod_selectors(config);
    let ns = &config.filter.namespace;
    let pods: Api<Pod> = if ns.is_empty() {
        Api::all(client.clone())
    } else {
        Api::namespaced(client.clone(), ns)
    };
    tracing::info!(label_selector = %labels, field_selector = %fields, namespace = %ns, "k8sattributes: watching pods");
    let mut wc = watcher::Config::default();
    if !labels.is_empty() {
        wc = wc.labels(&labels);
    }
    if !fields.is_empty() {
        wc = wc.fields(&fields);
    }
    let pod_sink = PodSink {
        index: index.clone(),
        seen: HashSet::new(),
        deleted: VecDeque::new(),
    };
    spawn(&mut watch, "pods", pods, wc, pod_sink);
    if rules.needs_namespaces() {
        let mut wc = watcher::Config::default();
        if rules.needs_kube_system_only() {
            wc = wc.fields("metadata.name=kube-system");
        }
        let sink = MetaSink::<Namespace>::new(index.clone());
        spawn(&mut watch, "namespaces", Api::all(client.clone()), wc, sink);
    }
    if rules.needs_nodes() {
        let mut wc = watcher::Config::default();
        let node = config.node_filter();
        if !node.is_empty() {
            wc = wc.fields(&format!("metadata.name={}", escape_field_value(&node)));
        }
        let sink = MetaSink::<Node>::new(index.clone());
        spawn(&mut watch, "nodes", Api::all(client), wc, sink);
    }
    watch
}

/// What a watcher does with its events.
trait Sink<K>: Send + 'static {
    /// Handles one event; returns `true` when an initial list completed.
    fn event(&mut self, event: Event<K>) -> bool;
    /// Called periodically.
    fn tick(&mut self) {}
}

fn spawn<K, S>(watch: &mut K8sWatch, what: &'static str, api: Api<K>, wc: watcher::Config, sink: S)
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    S: Sink<K>,
{
    let (tx, rx) = signal::channel(false);
    watch.synced.push(rx);
    let task = tokio::spawn(run(what, api, wc, sink, tx));
    watch.tasks.push(task.abort_handle());
}

async fn run<K, S>(
    what: &'static str,
    api: Api<K>,
    wc: watcher::Config,
    mut sink: S,
    synced: signal::Sender<bool>,
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    S: Sink<K>,
{
    let mut stream = std::pin::pin!(watcher::watcher(api, wc).default_backoff());
    let mut sweep = tokio::time::interval(SWEEP_INTERVAL);
    loop {
        tokio::select! {
            next = stream.next() => match next {
                Some(Ok(event)) => {
                    if sink.event(event) {
                        synced.send_replace(true);
                        tracing::debug!(what, "k8sattributes: list complete");
                    }
                }
                Some(Err(e)) => tracing::warn!(what, error = %e, "k8sattributes: watch failed, retrying"),
                None => return,
            },
            _ = sweep.tick() => sink.tick(),
        }
    }
}

fn write(index: &SharedIndex) -> std::sync::RwLockWriteGuard<'_, PodIndex> {
    index.write().unwrap_or_else(PoisonError::into_inner)
}

struct PodSink {
    index: SharedIndex,
    /// Pod uids listed since the last `Init`.
    seen: HashSet<String>,
    /// Deleted pods awaiting removal: when, identifiers, uid.
    deleted: VecDeque<(Instant, Vec<PodId>, String)>,
}

impl Sink<Pod> for PodSink {
    fn event(&mut self, event: Event<Pod>) -> bool {
        match event {
            Event::Init => self.seen.clear(),
            Event::InitApply(pod) => {
                if let Some(uid) = &pod.metadata.uid {
                    self.seen.insert(uid.clone());
                }
                write(&self.index).upsert_pod(&pod);
            }
            Event::InitDone => {
                write(&self.index).retain_pods(&self.seen);
                return true;
            }
            Event::Apply(pod) => write(&self.index).upsert_pod(&pod),
            Event::Delete(pod) => {
                let (ids, uid) = write(&self.index).ids_of(&pod);
                self.deleted.push_back((Instant::now(), ids, uid));
            }
        }
        false
    }

    fn tick(&mut self) {
        let now = Instant::now();
        while let Some((at, _, _)) = self.deleted.front() {
            if now.duration_since(*at) < POD_DELETE_GRACE {
                break;
            }
            if let Some((_, ids, uid)) = self.deleted.pop_front() {
                write(&self.index).remove_ids(&ids, &uid);
            }
        }
    }
}

/// Keeps namespace or node metadata.
struct MetaSink<K> {
    index: SharedIndex,
    seen: HashSet<String>,
    _kind: std::marker::PhantomData<fn(K)>,
}

impl<K> MetaSink<K> {
    fn new(index: SharedIndex) -> Self {
        MetaSink {
            index,
            seen: HashSet::new(),
            _kind: std::marker::PhantomData,
        }
    }
}

/// Namespaces and nodes, as one kind of object the index keeps by name.
trait MetaObject: Resource + Sized {
    fn upsert(&self, index: &mut PodIndex);
    fn remove(name: &str, index: &mut PodIndex);
    fn retain(names: &HashSet<String>, index: &mut PodIndex);
}

impl MetaObject for Namespace {
    fn upsert(&self, index: &mut PodIndex) {
        index.upsert_namespace(self)
    }
    fn remove(name: &str, index: &mut PodIndex) {
        index.remove_namespace(name)
    }
    fn retain(names: &HashSet<String>, index: &mut PodIndex) {
        index.retain_namespaces(names)
    }
}

impl MetaObject for Node {
    fn upsert(&self, index: &mut PodIndex) {
        index.upsert_node(self)
    }
    fn remove(name: &str, index: &mut PodIndex) {
        index.remove_node(name)
    }
    fn retain(names: &HashSet<String>, index: &mut PodIndex) {
        index.retain_nodes(names)
    }
}

impl<K: MetaObject + 'static> Sink<K> for MetaSink<K> {
    fn event(&mut self, event: Event<K>) -> bool {
        match event {
            Event::Init => self.seen.clear(),
            Event::InitApply(obj) => {
                if let Some(name) = &obj.meta().name {
                    self.seen.insert(name.clone());
                }
                obj.upsert(&mut write(&self.index));
            }
            Event::InitDone => {
                K::retain(&self.seen, &mut write(&self.index));
                return true;
            }
            Event::Apply(obj) => obj.upsert(&mut write(&self.index)),
            Event::Delete(obj) => {
                if let Some(name) = &obj.meta().name {
                    K::remove(name, &mut write(&self.index));
                }
            }
        }
        false
    }
}
