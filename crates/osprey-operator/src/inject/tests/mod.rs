//! Tests of pod mutation: golden files (`golden`) and focused assertions (`behaviour`).

mod behaviour;
mod golden;

use super::WorkloadRef;

/// `Kind/name[/uid]`.
fn owner(s: &str) -> WorkloadRef {
    let mut parts = s.splitn(3, '/');
    let kind = parts.next().unwrap_or_default().to_string();
    let name = parts.next().expect("Kind/name").to_string();
    WorkloadRef {
        kind,
        name,
        uid: parts.next().map(str::to_string),
    }
}
