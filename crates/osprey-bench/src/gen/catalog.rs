//! [`Catalog`]: the static shop of [`super::spec`] resolved for a given number of services,
//! with every name turned into an index and every resource pre-built.
//!
//! `--services N` keeps the first N services; calls to services that were dropped are left
//! out. Above the 20 base services, the extra ones are replicas of the base services
//! (`cart-2`, `payment-2`, ...): a call to a base service goes to it or to one of its replicas.

use super::spec::{ActionSpec, EndpointSpec, Rpc, ServiceSpec, ROOTS, SERVICES, TOPICS};
use anyhow::{anyhow, bail, Result};
use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use std::collections::HashMap;

/// Pods (resources) per service.
pub const INSTANCES: usize = 3;
/// The largest `--services` accepted.
pub const MAX_SERVICES: usize = 1000;

pub struct Catalog {
    pub services: Vec<Service>,
    pub endpoints: Vec<Endpoint>,
    pub db_ops: Vec<DbOp>,
    pub topics: Vec<Topic>,
    /// Root endpoints and their cumulative weights.
    pub roots: Vec<(u16, u32)>,
}

pub struct Service {
    pub name: String,
    pub spec: &'static ServiceSpec,
    pub resources: Vec<Resource>,
    pub port: i64,
}

pub struct Endpoint {
    pub svc: u16,
    pub spec: &'static EndpointSpec,
    /// `Some(topic)` for a message consumer.
    pub topic: Option<u16>,
    pub self_ms: f64,
    pub steps: Vec<Step>,
    /// Server span name, e.g. `GET /product/{id}` or `oteldemo.CartService/GetCart`.
    pub server_name: String,
    /// Client span name, e.g. `GET` or `oteldemo.CartService/GetCart`.
    pub client_name: String,
    /// HTTP method (empty for gRPC).
    pub method: &'static str,
    pub route: &'static str,
    /// `url.path` is `path.0 + random id + path.1` when the route has `{id}`.
    pub path: (&'static str, Option<&'static str>),
    pub rpc_method: &'static str,
}

pub enum Action {
    /// Alternatives: the target endpoint and its replicas.
    Call(Vec<u16>),
    Db(u16),
    Publish(u16),
    Internal(&'static str, f64),
}

pub struct Step {
    pub p: f32,
    pub repeat: u8,
    pub action: Action,
}

pub struct DbOp {
    pub system: &'static str,
    pub namespace: &'static str,
    pub op: &'static str,
    pub span_name: String,
    pub stmt: (&'static str, Option<&'static str>),
    pub server: String,
    pub port: i64,
    pub median_ms: f64,
}

pub struct Topic {
    pub name: &'static str,
    pub system: &'static str,
    pub publish_name: String,
    pub process_name: String,
    /// One entry per consuming service, with its replicas as alternatives.
    pub consumers: Vec<Vec<u16>>,
}

fn split_id(s: &'static str) -> (&'static str, Option<&'static str>) {
    match s.split_once("{id}") {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    }
}

pub fn kv_str(key: &str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

pub fn kv_int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(Value::IntValue(value)),
        }),
        ..Default::default()
    }
}

/// A stable pseudo-random number for names (FNV-1a).
fn name_hash(parts: &[&str], salt: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ salt;
    for p in parts {
        for b in p.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100_0000_01b3);
        }
    }
    h
}

fn resource(name: &str, spec: &ServiceSpec, instance: usize) -> Resource {
    const ALNUM: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let h = name_hash(&[name], 7);
    let h2 = name_hash(&[name], instance as u64 + 11);
    let suffix: String = (0..5)
        .map(|i| ALNUM[((h2 >> (i * 5)) % ALNUM.len() as u64) as usize] as char)
        .collect();
    let pod = format!("{name}-{:010x}-{suffix}", h & 0xff_ffff_ffff);
    let node = format!(
        "ip-10-0-{}-{}.eu-west-1.compute.internal",
        (h2 >> 8) % 4,
        (h2 >> 16) % 250 + 2
    );
    let attrs = vec![
        kv_str("service.name", name),
        kv_str("service.namespace", "shop"),
        kv_str("service.version", spec.version),
        kv_str("service.instance.id", format!("{:016x}{:016x}", h, h2)),
        kv_str("deployment.environment", "production"),
        kv_str("host.name", node.clone()),
        kv_str("host.arch", "amd64"),
        kv_str("os.type", "linux"),
        kv_str("k8s.namespace.name", "shop"),
        kv_str("k8s.deployment.name", name),
        kv_str("k8s.pod.name", pod),
        kv_str("k8s.node.name", node),
        kv_str("cloud.provider", "aws"),
        kv_str("cloud.region", "eu-west-1"),
        kv_str("telemetry.sdk.name", "opentelemetry"),
        kv_str("telemetry.sdk.language", spec.lang),
        kv_str("telemetry.sdk.version", "1.27.0"),
    ];
    Resource {
        attributes: attrs,
        ..Default::default()
    }
}

impl Catalog {
    /// Builds the catalog for `n` services (1..=[`MAX_SERVICES`]).
    pub fn new(n: usize) -> Result<Catalog> {
        if n == 0 || n > MAX_SERVICES {
            bail!("--services must be between 1 and {MAX_SERVICES}, got {n}");
        }
        let base_count = SERVICES.len();
        let mut services = Vec::with_capacity(n);
        let mut endpoints = Vec::new();
        // (base service, endpoint name) -> endpoint indices (base first, then replicas).
        let mut by_name: HashMap<(&str, &str), Vec<u16>> = HashMap::new();
        for k in 0..n {
            let (spec, name) = match SERVICES.get(k) {
                Some(spec) => (spec, spec.name.to_string()),
                None => {
                    let r = k - base_count;
                    let spec = &SERVICES[1 + r % (base_count - 1)];
                    (spec, format!("{}-{}", spec.name, r / (base_count - 1) + 2))
                }
            };
            let port = if matches!(spec.rpc, Rpc::Http) {
                8080
            } else {
                50051
            };
            let resources = (0..INSTANCES).map(|i| resource(&name, spec, i)).collect();
            for e in spec.endpoints {
                let idx =
                    u16::try_from(endpoints.len()).map_err(|_| anyhow!("too many endpoints"))?;
                by_name.entry((spec.name, e.name)).or_default().push(idx);
                endpoints.push(endpoint(k as u16, spec, e));
            }
            services.push(Service {
                name,
                spec,
                resources,
                port,
            });
        }
        let mut topics: Vec<Topic> = TOPICS
            .iter()
            .map(|(name, system)| Topic {
                name,
                system,
                publish_name: format!("{name} publish"),
                process_name: format!("{name} process"),
                consumers: Vec::new(),
            })
            .collect();
        let mut db_ops = Vec::new();
        let mut seen_consumers: HashMap<(&str, &str), ()> = HashMap::new();
        for i in 0..endpoints.len() {
            let svc = &services[endpoints[i].svc as usize];
            let spec = svc.spec;
            let espec = endpoints[i].spec;
            if espec.consumer {
                let t = topic_index(espec.name)?;
                endpoints[i].topic = Some(t);
                if seen_consumers.insert((spec.name, espec.name), ()).is_none() {
                    let alts = by_name
                        .get(&(spec.name, espec.name))
                        .cloned()
                        .unwrap_or_default();
                    topics[t as usize].consumers.push(alts);
                }
            }
            let mut steps = Vec::new();
            for s in espec.steps {
                let action = match &s.action {
                    ActionSpec::Call(target, ep) => {
                        if !SERVICES
                            .iter()
                            .any(|b| b.name == *target && b.endpoints.iter().any(|e| e.name == *ep))
                        {
                            bail!("{} calls unknown endpoint {target} {ep}", spec.name);
                        }
                        match by_name.get(&(*target, *ep)) {
                            Some(alts) => Action::Call(alts.clone()),
                            None => continue, // service not in this catalog
                        }
                    }
                    ActionSpec::Db(d) => {
                        let (system, namespace) = match (d.system, spec.db) {
                            (Some(sys), _) => (sys, "0"),
                            (None, Some(db)) => db,
                            (None, None) => {
                                bail!("{} queries a database it does not have", spec.name)
                            }
                        };
                        let span_name = if system == "redis" {
                            d.op.to_string()
                        } else {
                            format!("{} {namespace}.{}", d.op, d.target)
                        };
                        let port = match system {
                            "redis" => 6379,
                            "elasticsearch" => 9200,
                            _ => 5432,
                        };
                        db_ops.push(DbOp {
                            system,
                            namespace,
                            op: d.op,
                            span_name,
                            stmt: split_id(d.stmt),
                            server: format!("{system}-{}", spec.name),
                            port,
                            median_ms: d.median_ms,
                        });
                        Action::Db(u16::try_from(db_ops.len() - 1)?)
                    }
                    ActionSpec::Publish(topic) => Action::Publish(topic_index(topic)?),
                    ActionSpec::Internal(name, ms) => Action::Internal(name, *ms),
                };
                steps.push(Step {
                    p: s.p,
                    repeat: s.repeat.max(1),
                    action,
                });
            }
            endpoints[i].steps = steps;
        }
        let mut roots = Vec::new();
        let mut total = 0;
        for (name, weight) in ROOTS {
            let idx = by_name
                .get(&("frontend", *name))
                .and_then(|v| v.first())
                .copied();
            let idx = idx.ok_or_else(|| anyhow!("root endpoint {name} missing"))?;
            total += weight;
            roots.push((idx, total));
        }
        Ok(Catalog {
            services,
            endpoints,
            db_ops,
            topics,
            roots,
        })
    }
}

fn topic_index(name: &str) -> Result<u16> {
    let i = TOPICS
        .iter()
        .position(|(t, _)| *t == name)
        .ok_or_else(|| anyhow!("unknown topic {name}"))?;
    Ok(i as u16)
}

fn endpoint(svc: u16, spec: &ServiceSpec, e: &'static EndpointSpec) -> Endpoint {
    let (server_name, client_name, method, route, rpc_method) = if e.consumer {
        (format!("{} process", e.name), String::new(), "", "", "")
    } else {
        match spec.rpc {
            Rpc::Http => {
                let (method, route) = e.name.split_once(' ').unwrap_or(("GET", e.name));
                (e.name.to_string(), method.to_string(), method, route, "")
            }
            Rpc::Grpc(service) => {
                let full = format!("{service}/{}", e.name);
                (full.clone(), full, "", "", e.name)
            }
        }
    };
    Endpoint {
        svc,
        spec: e,
        topic: None,
        self_ms: e.self_ms,
        steps: Vec::new(),
        server_name,
        client_name,
        method,
        route,
        path: split_id(route),
        rpc_method,
    }
}
