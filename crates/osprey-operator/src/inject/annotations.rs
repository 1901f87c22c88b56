//! Annotation names and the pod/namespace fallback rule upstream applies to every
//! `instrumentation.opentelemetry.io/*` (and `sidecar.opentelemetry.io/inject`) annotation.

use super::{InjectError, Language};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// Prefix of every instrumentation annotation.
pub const PREFIX: &str = "instrumentation.opentelemetry.io/";
/// Target containers for every language (comma list).
pub const CONTAINER_NAMES: &str = "instrumentation.opentelemetry.io/container-names";
/// `glibc` (default) or `musl`.
pub const PYTHON_PLATFORM: &str = "instrumentation.opentelemetry.io/otel-python-platform";
/// `linux-x64` (default) or `linux-musl-x64`.
pub const DOTNET_RUNTIME: &str = "instrumentation.opentelemetry.io/otel-dotnet-auto-runtime";
/// The Go binary to instrument; read from the pod only.
pub const GO_TARGET_EXE: &str = "instrumentation.opentelemetry.io/otel-go-auto-target-exe";
/// `resource.opentelemetry.io/<key>` on the pod sets resource attribute `<key>`.
pub const RESOURCE_PREFIX: &str = "resource.opentelemetry.io/";

/// `instrumentation.opentelemetry.io/inject-<lang>`.
pub fn inject(language: Language) -> String {
    format!("{PREFIX}inject-{}", language.as_str())
}

/// The per-language target containers annotation (nginx's is `inject-nginx-container-names`,
/// as upstream spells it).
pub fn language_container_names(language: Language) -> String {
    match language {
        Language::Nginx => format!("{PREFIX}inject-nginx-container-names"),
        l => format!("{PREFIX}{}-container-names", l.as_str()),
    }
}

/// The effective value of `key` given the pod's and its namespace's annotations:
/// an empty namespace value → the pod's; an empty pod value → the namespace's; a pod value
/// other than `true` wins; pod `true` + namespace `false` → `true`; otherwise the namespace's.
pub fn annotation_value(namespace: &ObjectMeta, pod: &ObjectMeta, key: &str) -> String {
    let get = |m: &ObjectMeta| {
        m.annotations
            .as_ref()
            .and_then(|a| a.get(key))
            .cloned()
            .unwrap_or_default()
    };
    let (pod_value, ns_value) = (get(pod), get(namespace));
    if ns_value.is_empty() {
        return pod_value;
    }
    if pod_value.is_empty() {
        return ns_value;
    }
    if !pod_value.eq_ignore_ascii_case("true") {
        return pod_value;
    }
    if ns_value.eq_ignore_ascii_case("false") {
        return pod_value;
    }
    ns_value
}

/// What an `inject-*` value asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InjectValue {
    /// Empty or `false` (any case).
    Off,
    /// `true` (any case): the single Instrumentation of the pod's namespace.
    Default,
    /// `name` (pod's namespace) or `namespace/name`.
    Named {
        namespace: Option<String>,
        name: String,
    },
}

impl InjectValue {
    pub fn parse(value: &str) -> InjectValue {
        let value = value.trim();
        if value.is_empty() || value.eq_ignore_ascii_case("false") {
            InjectValue::Off
        } else if value.eq_ignore_ascii_case("true") {
            InjectValue::Default
        } else if let Some((ns, name)) = value.split_once('/') {
            InjectValue::Named {
                namespace: Some(ns.to_string()),
                name: name.to_string(),
            }
        } else {
            InjectValue::Named {
                namespace: None,
                name: value.to_string(),
            }
        }
    }
}

/// Parses a container-names annotation value (`^[a-zA-Z0-9-,]+$`, comma separated); empty
/// entries are dropped. An empty value gives no names.
pub fn container_names(annotation: &str, value: &str) -> Result<Vec<String>, InjectError> {
    if value.is_empty() {
        return Ok(Vec::new());
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ',')
    {
        return Err(InjectError::InvalidContainerNames {
            annotation: annotation.to_string(),
            value: value.to_string(),
        });
    }
    Ok(value
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn meta(value: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            annotations: value.map(|v| BTreeMap::from([("k".to_string(), v.to_string())])),
            ..Default::default()
        }
    }

    #[test]
    fn namespace_fallback_table() {
        // (namespace, pod, expected)
        let table = [
            (None, None, ""),
            (None, Some("true"), "true"),
            (None, Some("false"), "false"),
            (None, Some("inst"), "inst"),
            (Some("true"), None, "true"),
            (Some("false"), None, "false"),
            (Some("ns-inst"), None, "ns-inst"),
            (Some("true"), Some("false"), "false"),
            (Some("ns-inst"), Some("false"), "false"),
            (Some("ns-inst"), Some("pod-inst"), "pod-inst"),
            (Some("true"), Some("pod-inst"), "pod-inst"),
            (Some("false"), Some("true"), "true"),
            (Some("FALSE"), Some("True"), "True"),
            (Some("true"), Some("true"), "true"),
            (Some("ns-inst"), Some("true"), "ns-inst"),
            (Some("ns-inst"), Some("TRUE"), "ns-inst"),
            (Some(""), Some("true"), "true"),
            (Some("true"), Some(""), "true"),
        ];
        for (ns, pod, want) in table {
            assert_eq!(
                annotation_value(&meta(ns), &meta(pod), "k"),
                want,
                "ns={ns:?} pod={pod:?}"
            );
        }
    }

    #[test]
    fn inject_values() {
        assert_eq!(InjectValue::parse(""), InjectValue::Off);
        assert_eq!(InjectValue::parse("False"), InjectValue::Off);
        assert_eq!(InjectValue::parse("TRUE"), InjectValue::Default);
        assert_eq!(
            InjectValue::parse("my-inst"),
            InjectValue::Named {
                namespace: None,
                name: "my-inst".into()
            }
        );
        assert_eq!(
            InjectValue::parse("obs/my-inst"),
            InjectValue::Named {
                namespace: Some("obs".into()),
                name: "my-inst".into()
            }
        );
    }

    #[test]
    fn container_name_lists() {
        assert_eq!(container_names("a", "").unwrap(), Vec::<String>::new());
        assert_eq!(
            container_names("a", "app,side-car").unwrap(),
            ["app", "side-car"]
        );
        assert_eq!(container_names("a", "app,,x").unwrap(), ["app", "x"]);
        let err = container_names("a", "app, x").unwrap_err().to_string();
        assert!(err.starts_with("not valid characters included"), "{err}");
    }

    #[test]
    fn annotation_names() {
        assert_eq!(
            inject(Language::ApacheHttpd),
            "instrumentation.opentelemetry.io/inject-apache-httpd"
        );
        assert_eq!(
            language_container_names(Language::Python),
            "instrumentation.opentelemetry.io/python-container-names"
        );
        assert_eq!(
            language_container_names(Language::Nginx),
            "instrumentation.opentelemetry.io/inject-nginx-container-names"
        );
    }
}
