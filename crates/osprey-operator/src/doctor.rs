//! `osprey doctor`: finds annotated pods that are not instrumented (created before the operator
//! or their Instrumentation existed, or the webhook failed or skipped them), or whose
//! instrumentation is stale (the Instrumentation or sidecar collector changed since the pod
//! started), and restarts their workloads on request — the upstream operator's long-standing
//! gaps (pods are only mutated at creation, and changes never roll workloads).
//!
//! [`diagnose`] is pure over the objects; [`collect`] reads them from the cluster;
//! [`restart_targets`], [`rollout_patch`] and [`rollout`] restart what a restart would fix.

mod diagnose;
mod resolve;
mod rollout;
#[cfg(test)]
mod tests;

pub use diagnose::diagnose;
pub use rollout::{
    collect, connect, restart_targets, rollout, rollout_patch, rollout_patch_at, workload_of,
};

use serde::Serialize;
use std::fmt;

/// The kind of a pod's owning workload.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    DaemonSet,
    /// A ReplicaSet without a Deployment (its pods are not restarted).
    ReplicaSet,
    Job,
    /// Any other owner kind (e.g. an Argo Rollout's ReplicaSet owner).
    Other(String),
}

impl WorkloadKind {
    /// The lowercase kind, as `kubectl` writes it (`deployment`).
    pub fn as_str(&self) -> &str {
        match self {
            WorkloadKind::Deployment => "deployment",
            WorkloadKind::StatefulSet => "statefulset",
            WorkloadKind::DaemonSet => "daemonset",
            WorkloadKind::ReplicaSet => "replicaset",
            WorkloadKind::Job => "job",
            WorkloadKind::Other(k) => k,
        }
    }
}

/// The workload a pod belongs to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct WorkloadRef {
    pub kind: WorkloadKind,
    pub namespace: String,
    pub name: String,
}

impl WorkloadRef {
    /// Deployments, StatefulSets and DaemonSets restart through their pod template.
    pub fn restartable(&self) -> bool {
        matches!(
            self.kind,
            WorkloadKind::Deployment | WorkloadKind::StatefulSet | WorkloadKind::DaemonSet
        )
    }
}

impl fmt::Display for WorkloadRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind.as_str(), self.name)
    }
}

/// What is wrong with one pod for one language (or its sidecar).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum Problem {
    /// Annotated, the Instrumentation (or collector) exists, but the pod was not mutated; a
    /// restart fixes it (while the webhook works).
    NotInstrumented { reason: String },
    /// Mutated from an older Instrumentation (or collector); a restart fixes it.
    Stale { reason: String },
    /// The annotation names nothing usable (no or several Instrumentations, a wrong name, a
    /// collector not in sidecar mode); a restart does not help.
    Misconfigured { reason: String },
}

impl Problem {
    pub fn label(&self) -> &'static str {
        match self {
            Problem::NotInstrumented { .. } => "not instrumented",
            Problem::Stale { .. } => "stale",
            Problem::Misconfigured { .. } => "misconfigured",
        }
    }
    pub fn reason(&self) -> &str {
        match self {
            Problem::NotInstrumented { reason }
            | Problem::Stale { reason }
            | Problem::Misconfigured { reason } => reason,
        }
    }
    /// Whether restarting the pod's workload would fix it.
    pub fn fixed_by_restart(&self) -> bool {
        !matches!(self, Problem::Misconfigured { .. })
    }
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub namespace: String,
    pub pod: String,
    pub workload: Option<WorkloadRef>,
    /// `java`, `nodejs`, `python`, `dotnet`, `go`, `apache-httpd`, `nginx`, `sdk` or `sidecar`.
    pub language: String,
    #[serde(flatten)]
    pub problem: Problem,
}

/// Errors reading from or writing to the cluster.
#[derive(Debug, thiserror::Error)]
pub enum DoctorError {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("cannot restart {workload}: {source}")]
    Restart {
        workload: String,
        source: kube::Error,
    },
}

/// The findings as an aligned text table (a header line, then one line per finding).
pub fn table(findings: &[Finding]) -> String {
    let rows: Vec<[String; 6]> = findings
        .iter()
        .map(|f| {
            [
                f.namespace.clone(),
                f.pod.clone(),
                f.workload
                    .as_ref()
                    .map_or("-".to_string(), |w| w.to_string()),
                f.language.clone(),
                f.problem.label().to_string(),
                f.problem.reason().to_string(),
            ]
        })
        .collect();
    let header = ["NAMESPACE", "POD", "WORKLOAD", "LANGUAGE", "PROBLEM", "WHY"].map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
