//! `thrift_compact` and `thrift_binary`: the Jaeger agent's UDP servers. Each datagram is an
//! `Agent.emitBatch` call. As upstream's buffered server: one reader fills a queue of
//! `queue_size` datagrams (of at most `max_packet_size` bytes; more are truncated) and
//! `workers` tasks decode them and hand them on.
//!
//! UDP has no acknowledgement: a datagram that cannot be queued, decoded or taken is dropped
//! and counted in [`super::JaegerStats`], with a warning on the 1st, 2nd, 4th, 8th... drop.

use super::config::UdpConfig;
use super::thrift::{decode_agent_message, AgentMessage};
use super::thrift_reader::Wire;
use super::translate::{self, Flavor};
use super::{Ingest, Protocol};
use osprey_pipeline::Context;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::net::UdpSocket;
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Binds a non-blocking UDP socket, with `SO_RCVBUF` set when `recv_buffer` is not 0.
pub(crate) fn bind(addr: SocketAddr, recv_buffer: usize) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol as P, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(P::UDP))?;
    if recv_buffer > 0 {
        socket.set_recv_buffer_size(recv_buffer)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

/// Whether the `n`th occurrence of something deserves a log line (1, 2, 4, 8, ...).
fn worth_logging(n: u64) -> bool {
    n.is_power_of_two()
}

async fn handle(protocol: Protocol, wire: Wire, data: &[u8], peer: SocketAddr, ingest: &Ingest) {
    let batch = match decode_agent_message(data, wire) {
        Ok(AgentMessage::EmitBatch(Some(batch))) => batch,
        Ok(AgentMessage::EmitBatch(None)) => return,
        Ok(AgentMessage::Other(method)) => {
            let n = ingest.decode_error();
            if worth_logging(n) {
                tracing::warn!(%peer, %method, dropped = n,
                    "jaeger {protocol}: dropping a call to an unsupported agent method");
            }
            return;
        }
        Err(e) => {
            let n = ingest.decode_error();
            if worth_logging(n) {
                tracing::warn!(%peer, error = %e, bytes = data.len(), dropped = n,
                    "jaeger {protocol}: dropping a datagram that is not an emitBatch call");
            }
            return;
        }
    };
    let request = translate::to_otlp(batch, Flavor::Thrift);
    let context = Context {
        client_addr: Some(peer.ip()),
        ..Context::default()
    };
    if let Err(e) = ingest.ingest(request, context).await {
        let n = ingest.stats.batches_refused.load(Ordering::Relaxed);
        if worth_logging(n) {
            tracing::warn!(%peer, error = %e, refused = n,
                "jaeger {protocol}: the pipeline refused a batch; UDP cannot retry, dropped");
        }
    }
}

/// Starts the reader and the workers for one UDP protocol.
pub(crate) fn spawn(
    protocol: Protocol,
    socket: UdpSocket,
    cfg: &UdpConfig,
    ingest: Ingest,
    shutdown: CancellationToken,
) -> Vec<JoinHandle<()>> {
    let wire = match protocol {
        Protocol::ThriftCompact => Wire::Compact,
        _ => Wire::Binary,
    };
    let (tx, rx) = mpsc::channel::<(Vec<u8>, SocketAddr)>(cfg.queue_size.max(1));
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let max_packet = cfg.max_packet_size.max(1);
    let stats = Arc::clone(&ingest.stats);
    let mut handles = Vec::with_capacity(cfg.workers + 1);
    handles.push(tokio::spawn(async move {
        let mut buf = vec![0u8; max_packet];
        loop {
            let received = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = socket.recv_from(&mut buf) => r,
            };
            match received {
                Ok((n, peer)) => match tx.try_send((buf[..n].to_vec(), peer)) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) => {
                        let n = stats.udp_queue_full.fetch_add(1, Ordering::Relaxed) + 1;
                        if worth_logging(n) {
                            tracing::warn!(%peer, dropped = n,
                                "jaeger {protocol}: queue full, dropping a datagram");
                        }
                    }
                    Err(TrySendError::Closed(_)) => break,
                },
                Err(e) => {
                    tracing::debug!(error = %e, "jaeger {protocol}: receive failed");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            }
        }
        // Dropping `tx` lets the workers drain the queue and stop.
    }));
    for _ in 0..cfg.workers.max(1) {
        let rx = Arc::clone(&rx);
        let ingest = ingest.clone();
        handles.push(tokio::spawn(async move {
            loop {
                let next = rx.lock().await.recv().await;
                let Some((data, peer)) = next else { break };
                handle(protocol, wire, &data, peer, &ingest).await;
            }
        }));
    }
    handles
}
