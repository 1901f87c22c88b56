//! The persistent sending queue: one file per batch in the exporter's own directory under the
//! `file_storage` extension's directory. A batch is acknowledged only after its file is written,
//! synced and renamed into place, so a `kill -9` loses nothing acknowledged; a batch leaves the
//! disk only once it was delivered or dropped for a counted reason. Delivery is at least once: a
//! crash while sending means the batch is sent again after restart.
//!
//! File: `<seq, 20 digits>.batch` = one byte signal (0 traces, 1 metrics, 2 logs) + protobuf.

use osprey_pipeline::{Batch, ConsumeError, LogsRequest, MetricsRequest, Payload, RawTraces};
use prost::Message;
use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use tokio::sync::Mutex;

pub struct DiskQueue {
    dir: PathBuf,
    state: Mutex<State>,
}

struct State {
    pending: VecDeque<u64>,
    in_flight: usize,
    next_seq: u64,
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> ConsumeError {
    ConsumeError::Unavailable(format!("persistent queue: {what}: {e}"))
}

impl DiskQueue {
    /// Opens (creating) the directory and picks up the batches a previous run left.
    pub fn open(dir: PathBuf) -> Result<DiskQueue, ConsumeError> {
        std::fs::create_dir_all(&dir)
            .map_err(|e| unavailable(&format!("create {}", dir.display()), e))?;
        let mut seqs: Vec<u64> = Vec::new();
        let entries = std::fs::read_dir(&dir).map_err(|e| unavailable("list", e))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if name.ends_with(".tmp") {
                let _ = std::fs::remove_file(entry.path());
            } else if let Some(seq) = name.strip_suffix(".batch").and_then(|s| s.parse().ok()) {
                seqs.push(seq);
            }
        }
        seqs.sort_unstable();
        if !seqs.is_empty() {
            tracing::info!(dir = %dir.display(), batches = seqs.len(), "resuming persistent queue");
        }
        let next_seq = seqs.last().map_or(0, |s| s + 1);
        Ok(DiskQueue {
            dir,
            state: Mutex::new(State {
                pending: seqs.into(),
                in_flight: 0,
                next_seq,
            }),
        })
    }

    pub async fn len(&self) -> usize {
        let s = self.state.lock().await;
        s.pending.len() + s.in_flight
    }

    fn path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:020}.batch"))
    }

    /// Writes the batch durably, then makes it visible to the workers.
    pub async fn push(&self, batch: &Batch) -> Result<(), ConsumeError> {
        let bytes = encode(&batch.payload);
        let seq = {
            let mut s = self.state.lock().await;
            let seq = s.next_seq;
            s.next_seq += 1;
            seq
        };
        let (dir, path) = (self.dir.clone(), self.path(seq));
        tokio::task::spawn_blocking(move || write_durably(&dir, &path, &bytes))
            .await
            .map_err(|e| unavailable("writer task", e))?
            .map_err(|e| unavailable("write", e))?;
        let mut s = self.state.lock().await;
        // Keep order by sequence even if writers finished out of order.
        let pos = s.pending.partition_point(|&p| p < seq);
        s.pending.insert(pos, seq);
        Ok(())
    }

    /// The oldest batch not being sent, with its key for [`DiskQueue::finish`].
    pub async fn take(&self) -> Result<Option<(Batch, u64)>, ConsumeError> {
        loop {
            let seq = {
                let mut s = self.state.lock().await;
                let Some(seq) = s.pending.pop_front() else {
                    return Ok(None);
                };
                s.in_flight += 1;
                seq
            };
            let path = self.path(seq);
            let read = tokio::fs::read(&path).await;
            match read.map_err(|e| e.to_string()).and_then(|b| decode(&b)) {
                Ok(payload) => return Ok(Some((Batch::from_payload(payload), seq))),
                Err(e) => {
                    tracing::error!(file = %path.display(), error = %e,
                        "unreadable batch in the persistent queue; dropped");
                    self.finish(seq, true).await?;
                }
            }
        }
    }

    /// Ends a taken batch: `remove` deletes it, otherwise it goes back to the front.
    pub async fn finish(&self, seq: u64, remove: bool) -> Result<(), ConsumeError> {
        if remove {
            match tokio::fs::remove_file(self.path(seq)).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(unavailable("remove", e)),
            }
        }
        let mut s = self.state.lock().await;
        s.in_flight = s.in_flight.saturating_sub(1);
        if !remove {
            s.pending.push_front(seq);
        }
        Ok(())
    }
}

fn write_durably(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

fn encode(p: &Payload) -> Vec<u8> {
    let (tag, body) = match p {
        Payload::Traces(r) => (0u8, r.encode_to_vec()),
        Payload::RawTraces(r) => (0u8, r.to_bytes().to_vec()),
        Payload::Metrics(r) => (1, r.encode_to_vec()),
        Payload::Logs(r) => (2, r.encode_to_vec()),
    };
    let mut out = Vec::with_capacity(body.len() + 1);
    out.push(tag);
    out.extend_from_slice(&body);
    out
}

fn decode(bytes: &[u8]) -> Result<Payload, String> {
    let (tag, body) = bytes.split_first().ok_or("empty file")?;
    let err = |e: prost::DecodeError| e.to_string();
    Ok(match tag {
        // Traces stay encoded (the skim checks they decode): the exporter sends the bytes.
        0 => Payload::RawTraces(
            RawTraces::from_bytes(bytes::Bytes::copy_from_slice(body))
                .map_err(|e| e.to_string())?,
        ),
        1 => Payload::Metrics(MetricsRequest::decode(body).map_err(err)?),
        2 => Payload::Logs(LogsRequest::decode(body).map_err(err)?),
        t => return Err(format!("unknown signal tag {t}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn survives_reopen_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let q = DiskQueue::open(dir.path().join("q")).unwrap();
        for n in 0..3u8 {
            let mut req = osprey_model::TraceRequest::default();
            req.resource_spans.push(Default::default());
            req.resource_spans[0].schema_url = format!("s{n}");
            q.push(&Batch::traces(req)).await.unwrap();
        }
        let (_, first) = q.take().await.unwrap().unwrap();
        q.finish(first, true).await.unwrap();
        // Taken but not finished: still on disk after a crash.
        let _ = q.take().await.unwrap().unwrap();
        drop(q);
        let q = DiskQueue::open(dir.path().join("q")).unwrap();
        assert_eq!(q.len().await, 2);
        let (mut b, _) = q.take().await.unwrap().unwrap();
        assert!(b.is_raw());
        b.materialize().unwrap();
        match b.payload {
            Payload::Traces(r) => assert_eq!(r.resource_spans[0].schema_url, "s1"),
            _ => panic!("wrong signal"),
        }
    }
}
