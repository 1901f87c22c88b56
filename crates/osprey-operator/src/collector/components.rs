//! What the operator knows about collector component types: their default ports (upstream's
//! table), which of them listen on several protocols, and which never open a port.

/// Where a component listens by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortDefault {
    /// Default port; 0 when there is none (an explicit endpoint is needed).
    pub port: i32,
    /// `TCP` or `UDP`.
    pub protocol: &'static str,
    pub app_protocol: Option<&'static str>,
    /// Whether the Service port carries `targetPort` (= the resolved port).
    pub target: bool,
}

const fn tcp(port: i32) -> PortDefault {
    PortDefault {
        port,
        protocol: "TCP",
        app_protocol: None,
        target: true,
    }
}
const fn udp(port: i32) -> PortDefault {
    PortDefault {
        port,
        protocol: "UDP",
        app_protocol: None,
        target: true,
    }
}
const fn grpc(port: i32) -> PortDefault {
    PortDefault {
        port,
        protocol: "TCP",
        app_protocol: Some("grpc"),
        target: true,
    }
}
const fn http(port: i32) -> PortDefault {
    PortDefault {
        port,
        protocol: "TCP",
        app_protocol: Some("http"),
        target: true,
    }
}
const NO_TARGET_TCP: PortDefault = PortDefault {
    port: 0,
    protocol: "TCP",
    app_protocol: None,
    target: false,
};

/// How ports are found for one component type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parser {
    /// One port per key under `protocols`; an unknown key is an error.
    Multi(&'static [(&'static str, PortDefault)]),
    /// One port from `endpoint` / `listen_address`, else the default (none when it is 0).
    Single(PortDefault),
    /// A port only when `endpoint` / `listen_address` names one (unknown receiver types).
    Silent,
    /// Never a port (scrapers, processors, most exporters and extensions).
    None,
}

impl Parser {
    /// Whether the operator rewrites this component's endpoints to `0.0.0.0:<port>`.
    pub fn has_default_port(&self) -> bool {
        match self {
            Parser::Multi(_) => true,
            Parser::Single(d) => d.port != 0,
            Parser::Silent | Parser::None => false,
        }
    }
}

/// The kinds of component that can open ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Receiver,
    Exporter,
    Extension,
}

impl Kind {
    /// The config section (`receivers`, ...).
    pub fn section(self) -> &'static str {
        match self {
            Kind::Receiver => "receivers",
            Kind::Exporter => "exporters",
            Kind::Extension => "extensions",
        }
    }
}

const OTLP: &[(&str, PortDefault)] = &[("grpc", grpc(4317)), ("http", http(4318))];
const JAEGER: &[(&str, PortDefault)] = &[
    ("grpc", grpc(14250)),
    ("thrift_http", http(14268)),
    ("thrift_compact", udp(6831)),
    ("thrift_binary", udp(6832)),
];
const SKYWALKING: &[(&str, PortDefault)] = &[("grpc", grpc(11800)), ("http", http(12800))];
const LOKI: &[(&str, PortDefault)] = &[("grpc", grpc(9095)), ("http", http(3100))];

/// Receivers that scrape or read and never listen, even with an `endpoint` (it names a target).
const SCRAPERS: &[&str] = &[
    "prometheus",
    "prometheus_simple",
    "filelog",
    "hostmetrics",
    "k8s_cluster",
    "k8s_events",
    "k8sobjects",
    "k8s_objects",
    "kubeletstats",
    "kubelet_stats",
    "sshcheck",
    "cloudfoundry",
    "vcenter",
    "oracledb",
    "snmp",
    "googlecloudpubsub",
    "chrony",
    "jmx",
    "podman_stats",
    "pulsar",
    "docker_stats",
    "aerospike",
    "zookeeper",
    "saphana",
    "riak",
    "redis",
    "rabbitmq",
    "purefb",
    "postgresql",
    "nsxt",
    "nginx",
    "mysql",
    "memcached",
    "httpcheck",
    "haproxy",
    "flinkmetrics",
    "couchdb",
    "kafka",
    "kafkametrics",
    "journald",
    "windowseventlog",
    "apache",
    "elasticsearch",
    "mongodb",
    "mongodbatlas",
    "sqlquery",
    "sqlserver",
    "awscontainerinsightreceiver",
    "awsecscontainermetrics",
    "k8s_leader_elector",
];

/// The parser for component `type_name` (the part of the id before `/`) of `kind`.
pub fn parser_for(kind: Kind, type_name: &str) -> Parser {
    match kind {
        Kind::Receiver => receiver(type_name),
        Kind::Exporter => match type_name {
            "prometheus" => Parser::Single(PortDefault {
                target: false,
                ..tcp(8888)
            }),
            _ => Parser::None,
        },
        Kind::Extension => match type_name {
            "health_check" => Parser::Single(PortDefault {
                target: false,
                ..tcp(13133)
            }),
            "jaeger_query" => Parser::Single(tcp(16686)),
            _ => Parser::None,
        },
    }
}

fn receiver(type_name: &str) -> Parser {
    let single = match type_name {
        "otlp" => return Parser::Multi(OTLP),
        "jaeger" => return Parser::Multi(JAEGER),
        "skywalking" => return Parser::Multi(SKYWALKING),
        "loki" => return Parser::Multi(LOKI),
        "awsxray" => udp(2000),
        "carbon" | "wavefront" => tcp(2003),
        "collectd" => tcp(8081),
        "fluentforward" | "fluent_forward" => tcp(8006),
        "influxdb" => tcp(8086),
        "opencensus" => tcp(55678),
        "sapm" => tcp(7276),
        "signalfx" => tcp(9943),
        "splunk_hec" => tcp(8088),
        "statsd" => udp(8125),
        "zipkin" => http(9411),
        "tcplog" | "tcp_log" => NO_TARGET_TCP,
        "udplog" | "udp_log" => PortDefault {
            protocol: "UDP",
            ..NO_TARGET_TCP
        },
        t if SCRAPERS.contains(&t) => return Parser::None,
        _ => return Parser::Silent,
    };
    Parser::Single(single)
}

/// The type of a component id (`otlp/internal` → `otlp`).
pub fn component_type(id: &str) -> &str {
    id.split_once('/').map_or(id, |(t, _)| t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_types() {
        assert_eq!(parser_for(Kind::Receiver, "otlp"), Parser::Multi(OTLP));
        assert_eq!(
            parser_for(Kind::Receiver, "statsd"),
            Parser::Single(udp(8125))
        );
        assert_eq!(parser_for(Kind::Receiver, "prometheus"), Parser::None);
        assert_eq!(parser_for(Kind::Receiver, "mystery"), Parser::Silent);
        assert_eq!(parser_for(Kind::Exporter, "otlp"), Parser::None);
        assert!(parser_for(Kind::Extension, "health_check").has_default_port());
        assert!(!parser_for(Kind::Receiver, "tcplog").has_default_port());
        assert_eq!(component_type("otlp/2"), "otlp");
    }
}
