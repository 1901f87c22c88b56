//! The in-memory index the processor enriches from: pods by identifier (pod IP, pod UID and
//! the association rules' keys), and namespace / node metadata by name. The watchers keep it
//! current; enrichment only reads it.

use super::pod::{PodId, PodInfo};
use super::rules::{Origin, Rules};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, RwLock};

/// A namespace's or node's uid and the attributes its labels/annotations give.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetaInfo {
    pub uid: String,
    pub attributes: BTreeMap<String, String>,
}

/// The index shared by the watchers (writers) and the processor (reader).
pub type SharedIndex = Arc<RwLock<PodIndex>>;

/// Pods, namespaces and nodes known to the processor.
#[derive(Debug, Clone)]
pub struct PodIndex {
    rules: Arc<Rules>,
    pods: HashMap<PodId, Arc<PodInfo>>,
    namespaces: HashMap<String, MetaInfo>,
    nodes: HashMap<String, MetaInfo>,
}

impl PodIndex {
    pub fn new(rules: Arc<Rules>) -> Self {
        PodIndex {
            rules,
            pods: HashMap::new(),
            namespaces: HashMap::new(),
            nodes: HashMap::new(),
        }
    }

    /// An index holding `pods`.
    pub fn from_pods<'a>(rules: Arc<Rules>, pods: impl IntoIterator<Item = &'a Pod>) -> Self {
        let mut index = PodIndex::new(rules);
        for p in pods {
            index.upsert_pod(p);
        }
        index
    }

    pub fn rules(&self) -> &Arc<Rules> {
        &self.rules
    }

    /// Adds or updates `pod` under each of its identifiers. An identifier already held by a
    /// pod that started later stays with that pod (an IP reused by a newer pod is not taken
    /// back by a late update of the old one).
    pub fn upsert_pod(&mut self, pod: &Pod) {
        let info = Arc::new(PodInfo::from_pod(pod, &self.rules));
        for id in info.identifiers(&self.rules) {
            if let Some(old) = self.pods.get(&id) {
                if let (Some(new_start), Some(old_start)) = (info.start_time, old.start_time) {
                    if new_start < old_start {
                        continue;
                    }
                }
            }
            self.pods.insert(id, info.clone());
        }
    }

    /// The identifiers `pod` is (or would be) held under, and its uid: what a delayed
    /// [`remove_ids`](Self::remove_ids) needs.
    pub fn ids_of(&self, pod: &Pod) -> (Vec<PodId>, String) {
        let info = PodInfo::from_pod(pod, &self.rules);
        (info.identifiers(&self.rules), info.uid)
    }

    /// Drops the entries `ids` if they still belong to the pod with `uid`.
    pub fn remove_ids(&mut self, ids: &[PodId], uid: &str) {
        for id in ids {
            if self.pods.get(id).is_some_and(|p| p.uid == uid) {
                self.pods.remove(id);
            }
        }
    }

    /// Forgets `pod` now.
    pub fn remove_pod(&mut self, pod: &Pod) {
        let (ids, uid) = self.ids_of(pod);
        self.remove_ids(&ids, &uid);
    }

    /// Keeps only pods whose uid is in `uids` (after a re-list).
    pub fn retain_pods(&mut self, uids: &HashSet<String>) {
        self.pods.retain(|_, p| uids.contains(&p.uid));
    }

    /// The pod found by `id`, unless it is excluded.
    pub fn get(&self, id: &PodId) -> Option<&PodInfo> {
        self.pods.get(id).map(|p| p.as_ref()).filter(|p| !p.ignore)
    }

    /// How many distinct pods are held.
    pub fn pod_count(&self) -> usize {
        self.pods
            .values()
            .map(|p| p.uid.as_str())
            .collect::<HashSet<_>>()
            .len()
    }

    pub fn upsert_namespace(&mut self, ns: &Namespace) {
        let (name, info) = meta_info(&ns.metadata, &self.rules, Origin::Namespace);
        self.namespaces.insert(name, info);
    }

    pub fn remove_namespace(&mut self, name: &str) {
        self.namespaces.remove(name);
    }

    pub fn retain_namespaces(&mut self, names: &HashSet<String>) {
        self.namespaces.retain(|n, _| names.contains(n));
    }

    pub fn namespace(&self, name: &str) -> Option<&MetaInfo> {
        self.namespaces.get(name)
    }

    pub fn upsert_node(&mut self, node: &Node) {
        let (name, info) = meta_info(&node.metadata, &self.rules, Origin::Node);
        self.nodes.insert(name, info);
    }

    pub fn remove_node(&mut self, name: &str) {
        self.nodes.remove(name);
    }

    pub fn retain_nodes(&mut self, names: &HashSet<String>) {
        self.nodes.retain(|n, _| names.contains(n));
    }

    pub fn node(&self, name: &str) -> Option<&MetaInfo> {
        self.nodes.get(name)
    }
}

fn meta_info(meta: &ObjectMeta, rules: &Rules, from: Origin) -> (String, MetaInfo) {
    let mut attributes = BTreeMap::new();
    let empty = BTreeMap::new();
    let labels = meta.labels.as_ref().unwrap_or(&empty);
    let annotations = meta.annotations.as_ref().unwrap_or(&empty);
    for r in rules.labels.iter().filter(|r| r.from == from) {
        r.extract(labels, &mut attributes);
    }
    for r in rules.annotations.iter().filter(|r| r.from == from) {
        r.extract(annotations, &mut attributes);
    }
    (
        meta.name.clone().unwrap_or_default(),
        MetaInfo {
            uid: meta.uid.clone().unwrap_or_default(),
            attributes,
        },
    )
}
