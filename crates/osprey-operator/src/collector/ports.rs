//! Ports derived from the collector config (upstream §1.8): one per enabled receiver/exporter
//! endpoint (one per protocol for multi-protocol receivers), extension ports separately, the
//! telemetry `metrics` port for the container, and the merge with `spec.ports`.

use super::components::{component_type, parser_for, Kind, Parser, PortDefault};
use super::config;
use super::naming::{is_valid_port_name, port_name};
use super::DesiredError;
use crate::crd::PortSpec;
use k8s_openapi::api::core::v1::{ContainerPort, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_yaml::Value;
use std::collections::BTreeSet;

/// The ports a collector config opens.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Ports {
    /// Receiver and exporter ports (the base Service), sorted by name.
    pub service: Vec<ServicePort>,
    /// Extension ports (the extension Service), sorted by name.
    pub extension: Vec<ServicePort>,
    /// All of them plus `metrics`, as container ports, sorted by name.
    pub container: Vec<ContainerPort>,
    /// The collector's own metrics port (default 8888).
    pub metrics_port: i32,
}

/// Ports of a collector config (YAML text), after the operator's endpoint defaults.
pub fn derive_ports(config_yaml: &str) -> Result<Ports, DesiredError> {
    Ok(config::load(config_yaml)?.ports)
}

/// Ports of one component; `value` is its config (may be null).
pub(crate) fn component_ports(
    kind: Kind,
    id: &str,
    value: &Value,
) -> Result<Vec<ServicePort>, DesiredError> {
    let ports = match parser_for(kind, component_type(id)) {
        Parser::None => Vec::new(),
        Parser::Silent => endpoint_port(value)
            .map(|p| {
                let d = PortDefault {
                    port: p,
                    protocol: "TCP",
                    app_protocol: None,
                    target: false,
                };
                service_port(id, p, d)
            })
            .into_iter()
            .collect(),
        Parser::Single(d) => match endpoint_port(value).or((d.port != 0).then_some(d.port)) {
            Some(p) => vec![service_port(id, p, d)],
            None => Vec::new(),
        },
        Parser::Multi(table) => {
            let mut out = Vec::new();
            if let Some(protocols) = value.get("protocols").and_then(Value::as_mapping) {
                for (key, proto_value) in protocols {
                    let key = key.as_str().unwrap_or_default();
                    let Some((_, d)) = table.iter().find(|(name, _)| *name == key) else {
                        let known: Vec<_> = table.iter().map(|(n, _)| *n).collect();
                        return Err(DesiredError::Invalid {
                            field: format!("{}.{id}.protocols", kind.section()),
                            message: format!(
                                "unknown protocol {key:?} (expected one of {})",
                                known.join(", ")
                            ),
                        });
                    };
                    let p = endpoint_port(proto_value).unwrap_or(d.port);
                    out.push(service_port(&format!("{id}-{key}"), p, *d));
                }
            }
            out
        }
    };
    Ok(ports)
}

fn service_port(raw_name: &str, port: i32, d: PortDefault) -> ServicePort {
    ServicePort {
        name: Some(port_name(raw_name, port)),
        port,
        protocol: Some(d.protocol.to_string()),
        app_protocol: d.app_protocol.map(str::to_string),
        target_port: d.target.then_some(IntOrString::Int(port)),
        ..Default::default()
    }
}

/// The port of `endpoint`, else of `listen_address` (the first `:<digits>`), if any.
pub(crate) fn endpoint_port(value: &Value) -> Option<i32> {
    let text = |key: &str| {
        value
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    match text("endpoint") {
        Some(e) => port_from_endpoint(e),
        None => text("listen_address").and_then(port_from_endpoint),
    }
}

/// The number after the first `:` that is followed by digits; `None` when absent, zero or out
/// of range.
pub(crate) fn port_from_endpoint(endpoint: &str) -> Option<i32> {
    let bytes = endpoint.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b != b':' {
            continue;
        }
        let digits: String = endpoint[i + 1..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        if digits.is_empty() {
            continue;
        }
        return digits
            .parse::<i32>()
            .ok()
            .filter(|p| (1..=65535).contains(p));
    }
    None
}

fn protocol_key(protocol: Option<&str>) -> String {
    match protocol {
        None | Some("") => "TCP".to_string(),
        Some(p) => p.to_string(),
    }
}

/// `spec.ports` first, then the inferred ports minus those whose (port, protocol) is taken; an
/// inferred port whose name is taken becomes `port-<n>`, or is dropped if that is taken too.
pub(crate) fn merge_service_ports(
    user: &[PortSpec],
    inferred: &[ServicePort],
    warnings: &mut Vec<String>,
) -> Vec<ServicePort> {
    let mut out: Vec<ServicePort> = user.iter().map(user_service_port).collect();
    let (numbers, names) = taken(user);
    for p in inferred {
        if let Some(p) = filter_port(p.clone(), &numbers, &names, warnings) {
            out.push(p);
        }
    }
    out
}

/// Container ports: `spec.ports` (with `hostPort`) merged with the inferred ports and `metrics`
/// by the same rules, invalid names dropped, sorted by name.
pub(crate) fn merge_container_ports(
    user: &[PortSpec],
    inferred: &[ContainerPort],
    warnings: &mut Vec<String>,
) -> Vec<ContainerPort> {
    let mut out: Vec<ContainerPort> = user
        .iter()
        .map(|u| ContainerPort {
            name: u.name.clone(),
            container_port: u.port,
            protocol: Some(protocol_key(u.protocol.as_deref())),
            host_port: u.host_port,
            ..Default::default()
        })
        .collect();
    let (numbers, names) = taken(user);
    for c in inferred {
        let as_service = ServicePort {
            name: c.name.clone(),
            port: c.container_port,
            protocol: c.protocol.clone(),
            ..Default::default()
        };
        if let Some(p) = filter_port(as_service, &numbers, &names, warnings) {
            out.push(ContainerPort {
                name: p.name,
                ..c.clone()
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Inferred service ports as container ports (plus `metrics`), deduplicated by name and sorted.
pub(crate) fn container_ports(
    service: &[ServicePort],
    extension: &[ServicePort],
    metrics_port: i32,
    warnings: &mut Vec<String>,
) -> Vec<ContainerPort> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for p in service.iter().chain(extension) {
        let name = p.name.clone().unwrap_or_default();
        if !is_valid_port_name(&name) {
            warnings.push(format!(
                "container port {name:?} ({}) dropped: invalid name",
                p.port
            ));
            continue;
        }
        if seen.insert(name.clone()) {
            out.push(ContainerPort {
                name: Some(name),
                container_port: p.port,
                protocol: p.protocol.clone(),
                ..Default::default()
            });
        }
    }
    if seen.insert("metrics".to_string()) {
        out.push(ContainerPort {
            name: Some("metrics".into()),
            container_port: metrics_port,
            protocol: Some("TCP".into()),
            ..Default::default()
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn user_service_port(u: &PortSpec) -> ServicePort {
    ServicePort {
        name: u.name.clone(),
        port: u.port,
        target_port: u.target_port.clone(),
        protocol: u.protocol.clone(),
        app_protocol: u.app_protocol.clone(),
        node_port: u.node_port,
    }
}

fn taken(user: &[PortSpec]) -> (BTreeSet<(i32, String)>, BTreeSet<String>) {
    let numbers = user
        .iter()
        .map(|u| (u.port, protocol_key(u.protocol.as_deref())))
        .collect();
    let names = user.iter().filter_map(|u| u.name.clone()).collect();
    (numbers, names)
}

fn filter_port(
    mut p: ServicePort,
    numbers: &BTreeSet<(i32, String)>,
    names: &BTreeSet<String>,
    warnings: &mut Vec<String>,
) -> Option<ServicePort> {
    let name = p.name.clone().unwrap_or_default();
    if numbers.contains(&(p.port, protocol_key(p.protocol.as_deref()))) {
        return None;
    }
    if names.contains(&name) {
        let fallback = format!("port-{}", p.port);
        if names.contains(&fallback) {
            warnings.push(format!(
                "inferred port {name:?} ({}) dropped: its name and {fallback:?} are both used in spec.ports",
                p.port
            ));
            return None;
        }
        p.name = Some(fallback);
    }
    Some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(s: &str) -> Value {
        serde_yaml::from_str(s).expect("yaml")
    }

    #[test]
    fn endpoint_ports() {
        assert_eq!(port_from_endpoint("0.0.0.0:4317"), Some(4317));
        assert_eq!(port_from_endpoint("${env:MY_POD_IP}:4317"), Some(4317));
        assert_eq!(port_from_endpoint("http://host:9000/path"), Some(9000));
        assert_eq!(port_from_endpoint("localhost"), None);
        assert_eq!(port_from_endpoint("host:0"), None);
        assert_eq!(port_from_endpoint("host:99999"), None);
        assert_eq!(endpoint_port(&yaml("listen_address: ':5000'")), Some(5000));
    }

    #[test]
    fn multi_protocol_ports_and_errors() {
        let v = yaml("protocols: {grpc: null, thrift_http: {endpoint: '0.0.0.0:15268'}}");
        let ports = component_ports(Kind::Receiver, "jaeger", &v).expect("ports");
        let names: Vec<_> = ports
            .iter()
            .map(|p| (p.name.clone().unwrap(), p.port))
            .collect();
        assert_eq!(
            names,
            [("jaeger-grpc".into(), 14250), ("port-15268".into(), 15268)]
        );
        let bad = yaml("protocols: {websocket: {}}");
        let err = component_ports(Kind::Receiver, "otlp", &bad).unwrap_err();
        assert!(
            err.to_string().contains("unknown protocol \"websocket\""),
            "{err}"
        );
    }

    #[test]
    fn silent_and_single_parsers() {
        assert!(component_ports(Kind::Receiver, "mystery", &Value::Null)
            .unwrap()
            .is_empty());
        let p =
            component_ports(Kind::Receiver, "mystery", &yaml("endpoint: 0.0.0.0:7000")).unwrap();
        assert_eq!(p[0].name.as_deref(), Some("mystery"));
        assert!(
            component_ports(Kind::Receiver, "redis", &yaml("endpoint: r:6379"))
                .unwrap()
                .is_empty()
        );
        assert!(component_ports(Kind::Receiver, "tcplog", &Value::Null)
            .unwrap()
            .is_empty());
        let e = component_ports(Kind::Exporter, "otlp", &yaml("endpoint: x:4317")).unwrap();
        assert!(e.is_empty());
        let z = component_ports(Kind::Receiver, "zipkin", &Value::Null).unwrap();
        assert_eq!(z[0].target_port, Some(IntOrString::Int(9411)));
    }

    #[test]
    fn merge_rules() {
        let inferred = vec![
            service_port(
                "otlp-grpc",
                4317,
                PortDefault {
                    port: 4317,
                    protocol: "TCP",
                    app_protocol: None,
                    target: true,
                },
            ),
            service_port(
                "otlp-http",
                4318,
                PortDefault {
                    port: 4318,
                    protocol: "TCP",
                    app_protocol: None,
                    target: true,
                },
            ),
            service_port(
                "zipkin",
                9411,
                PortDefault {
                    port: 9411,
                    protocol: "TCP",
                    app_protocol: None,
                    target: true,
                },
            ),
            service_port(
                "statsd",
                8125,
                PortDefault {
                    port: 8125,
                    protocol: "UDP",
                    app_protocol: None,
                    target: true,
                },
            ),
        ];
        let user = vec![
            PortSpec {
                name: Some("my-grpc".into()),
                port: 4317,
                ..Default::default()
            },
            PortSpec {
                name: Some("otlp-http".into()),
                port: 9999,
                ..Default::default()
            },
            PortSpec {
                name: Some("zipkin".into()),
                port: 1,
                ..Default::default()
            },
            PortSpec {
                name: Some("port-9411".into()),
                port: 2,
                ..Default::default()
            },
            PortSpec {
                name: Some("tcp-8125".into()),
                port: 8125,
                protocol: Some("TCP".into()),
                ..Default::default()
            },
        ];
        let mut w = Vec::new();
        let merged = merge_service_ports(&user, &inferred, &mut w);
        let got: Vec<_> = merged
            .iter()
            .map(|p| (p.name.clone().unwrap(), p.port))
            .collect();
        assert_eq!(
            got,
            [
                ("my-grpc".to_string(), 4317),
                ("otlp-http".into(), 9999),
                ("zipkin".into(), 1),
                ("port-9411".into(), 2),
                ("tcp-8125".into(), 8125),
                ("port-4318".into(), 4318),
                ("statsd".into(), 8125),
            ]
        );
        assert_eq!(w.len(), 1, "{w:?}");
    }
}
