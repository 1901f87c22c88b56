//! Warning Events on the workload that owns a pod, so that failed or skipped injection is
//! visible with `kubectl describe deployment ...` and `kubectl get events`: reason
//! `InstrumentationFailed` or `InstrumentationSkipped`. Published in the background (the
//! admission answer never waits for them); kube-runtime's recorder folds repeats into a
//! series.

use super::context::Owner;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

/// Reason of the Event when injection failed.
pub const REASON_FAILED: &str = "InstrumentationFailed";
/// Reason of the Event when injection was skipped (with the skip reasons as its note).
pub const REASON_SKIPPED: &str = "InstrumentationSkipped";
/// Longest note kept (the Events API limits notes to 1 kB).
const MAX_NOTE: usize = 1000;

/// One Event to publish on a workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadEvent {
    pub namespace: String,
    pub owner: Owner,
    pub reason: &'static str,
    pub note: String,
}

impl WorkloadEvent {
    pub fn new(namespace: &str, owner: &Owner, reason: &'static str, note: &str) -> Self {
        let mut note = note.to_string();
        if note.len() > MAX_NOTE {
            let mut cut = MAX_NOTE;
            while !note.is_char_boundary(cut) {
                cut -= 1;
            }
            note.truncate(cut);
            note.push('…');
        }
        Self {
            namespace: namespace.to_string(),
            owner: owner.clone(),
            reason,
            note,
        }
    }

    fn reference(&self) -> ObjectReference {
        ObjectReference {
            api_version: Some(self.owner.api_version.clone()),
            kind: Some(self.owner.kind.clone()),
            name: Some(self.owner.name.clone()),
            namespace: Some(self.namespace.clone()),
            uid: self.owner.uid.clone(),
            ..Default::default()
        }
    }
}

/// Publishes events through the Kubernetes Events API.
#[derive(Clone)]
pub struct EventSink {
    recorder: Recorder,
}

impl EventSink {
    pub fn new(client: kube::Client) -> Self {
        let reporter = Reporter {
            controller: "osprey-operator".into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Self {
            recorder: Recorder::new(client, reporter),
        }
    }

    /// Publishes `ev` in the background; failures are logged.
    pub fn publish(&self, ev: WorkloadEvent) {
        let recorder = self.recorder.clone();
        tokio::spawn(async move {
            let event = Event {
                type_: EventType::Warning,
                reason: ev.reason.to_string(),
                note: Some(ev.note.clone()),
                action: "Instrument".into(),
                secondary: None,
            };
            if let Err(e) = recorder.publish(&event, &ev.reference()).await {
                tracing::warn!(error = %e, kind = %ev.owner.kind, name = %ev.owner.name, "cannot publish event");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_notes_are_cut_on_a_char_boundary() {
        let owner = Owner {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            name: "web".into(),
            uid: Some("u1".into()),
        };
        let ev = WorkloadEvent::new("shop", &owner, REASON_FAILED, &"é".repeat(800));
        assert!(ev.note.len() <= MAX_NOTE + '…'.len_utf8());
        let r = ev.reference();
        assert_eq!(r.kind.as_deref(), Some("Deployment"));
        assert_eq!(r.namespace.as_deref(), Some("shop"));
        assert_eq!(r.uid.as_deref(), Some("u1"));
    }
}
