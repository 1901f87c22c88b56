//! RFC 6902 JSON Patch between the admitted pod and the mutated one (what the webhook
//! returns), and a small applier for the operations it emits (`add`, `remove`, `replace`;
//! `test` too) so tests and tools can check a patch reproduces the mutation.

use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Map, Value};

/// Why a patch could not be applied.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PatchError {
    #[error("the patch is not an array of operations")]
    NotAnArray,
    #[error("operation {0}: {1}")]
    Invalid(usize, String),
}

/// The RFC 6902 operations turning `original` into `mutated` (an empty array when equal).
pub fn json_patch(original: &Pod, mutated: &Pod) -> Value {
    let (a, b) = match (
        serde_json::to_value(original),
        serde_json::to_value(mutated),
    ) {
        (Ok(a), Ok(b)) => (a, b),
        // A Pod always serializes; keep the signature infallible.
        _ => return Value::Array(Vec::new()),
    };
    let mut ops = Vec::new();
    diff(&a, &b, &mut String::new(), &mut ops);
    Value::Array(ops)
}

fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

fn diff(a: &Value, b: &Value, path: &mut String, ops: &mut Vec<Value>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, va) in x {
                let len = path.len();
                path.push('/');
                path.push_str(&escape(k));
                match y.get(k) {
                    Some(vb) => diff(va, vb, path, ops),
                    None => ops.push(json!({"op": "remove", "path": path.as_str()})),
                }
                path.truncate(len);
            }
            for (k, vb) in y {
                if !x.contains_key(k) {
                    let p = format!("{path}/{}", escape(k));
                    ops.push(json!({"op": "add", "path": p, "value": vb}));
                }
            }
        }
        (Value::Array(x), Value::Array(y)) => diff_arrays(x, y, path, ops),
        _ if a == b => {}
        _ => ops.push(json!({"op": "replace", "path": path.as_str(), "value": b})),
    }
}

/// Common prefix and suffix are kept; the middle is diffed element by element, then the
/// extra elements are added (or the missing ones removed, highest index first).
fn diff_arrays(x: &[Value], y: &[Value], path: &mut String, ops: &mut Vec<Value>) {
    let prefix = x.iter().zip(y).take_while(|(a, b)| a == b).count();
    let max_suffix = x.len().min(y.len()) - prefix;
    let suffix = x
        .iter()
        .rev()
        .zip(y.iter().rev())
        .take(max_suffix)
        .take_while(|(a, b)| a == b)
        .count();
    let (xm, ym) = (&x[prefix..x.len() - suffix], &y[prefix..y.len() - suffix]);
    let common = xm.len().min(ym.len());
    for i in 0..common {
        let len = path.len();
        path.push_str(&format!("/{}", prefix + i));
        diff(&xm[i], &ym[i], path, ops);
        path.truncate(len);
    }
    for (i, v) in ym.iter().enumerate().skip(common) {
        ops.push(json!({"op": "add", "path": format!("{path}/{}", prefix + i), "value": v}));
    }
    for i in (common..xm.len()).rev() {
        ops.push(json!({"op": "remove", "path": format!("{path}/{}", prefix + i)}));
    }
}

/// Applies an RFC 6902 patch (`add`, `remove`, `replace`, `test`) to `doc` in place.
pub fn apply_patch(doc: &mut Value, patch: &Value) -> Result<(), PatchError> {
    let ops = patch.as_array().ok_or(PatchError::NotAnArray)?;
    for (i, op) in ops.iter().enumerate() {
        let err = |m: &str| PatchError::Invalid(i, m.to_string());
        let kind = op
            .get("op")
            .and_then(Value::as_str)
            .ok_or_else(|| err("no op"))?;
        let path = op
            .get("path")
            .and_then(Value::as_str)
            .ok_or_else(|| err("no path"))?;
        let value = op.get("value").cloned();
        let tokens: Vec<String> = if path.is_empty() {
            Vec::new()
        } else if let Some(rest) = path.strip_prefix('/') {
            rest.split('/')
                .map(|t| t.replace("~1", "/").replace("~0", "~"))
                .collect()
        } else {
            return Err(err("path does not start with /"));
        };
        let Some((last, parents)) = tokens.split_last() else {
            match (kind, value) {
                ("add" | "replace", Some(v)) => *doc = v,
                ("test", Some(v)) if *doc == v => {}
                _ => return Err(err("unsupported operation on the root")),
            }
            continue;
        };
        let mut target = &mut *doc;
        for t in parents {
            target = match target {
                Value::Object(m) => m.get_mut(t.as_str()),
                Value::Array(a) => t.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
                _ => None,
            }
            .ok_or_else(|| err(&format!("no parent at {path}")))?;
        }
        apply_one(target, kind, last, value).map_err(|m| err(&format!("{m} at {path}")))?;
    }
    Ok(())
}

fn apply_one(
    target: &mut Value,
    kind: &str,
    key: &str,
    value: Option<Value>,
) -> Result<(), String> {
    match target {
        Value::Object(m) => apply_object(m, kind, key, value),
        Value::Array(a) => {
            let index = if key == "-" && kind == "add" {
                Ok(a.len())
            } else {
                key.parse::<usize>()
            };
            let index = index.map_err(|_| format!("bad array index {key:?}"))?;
            match (kind, value) {
                ("add", Some(v)) if index <= a.len() => a.insert(index, v),
                ("remove", _) if index < a.len() => {
                    a.remove(index);
                }
                ("replace", Some(v)) if index < a.len() => a[index] = v,
                ("test", Some(v)) if a.get(index) == Some(&v) => {}
                _ => return Err(format!("cannot {kind} index {index}")),
            }
            Ok(())
        }
        _ => Err("parent is not a container".to_string()),
    }
}

fn apply_object(
    m: &mut Map<String, Value>,
    kind: &str,
    key: &str,
    value: Option<Value>,
) -> Result<(), String> {
    match (kind, value) {
        ("add", Some(v)) => {
            m.insert(key.to_string(), v);
        }
        ("remove", _) if m.remove(key).is_some() => {}
        ("replace", Some(v)) if m.contains_key(key) => {
            m.insert(key.to_string(), v);
        }
        ("test", Some(v)) if m.get(key) == Some(&v) => {}
        _ => return Err(format!("cannot {kind} key {key:?}")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(a: Value, b: Value) -> Value {
        let mut ops = Vec::new();
        diff(&a, &b, &mut String::new(), &mut ops);
        let patch = Value::Array(ops);
        let mut doc = a;
        apply_patch(&mut doc, &patch).expect("apply");
        assert_eq!(doc, b);
        patch
    }

    #[test]
    fn object_and_escaped_keys() {
        let patch = roundtrip(
            json!({"metadata": {"annotations": {"a/b": "1", "x~y": "2"}}, "gone": 1}),
            json!({"metadata": {"annotations": {"a/b": "3", "x~y": "2", "new/k": "v"}}}),
        );
        let paths: Vec<&str> = patch
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["path"].as_str().unwrap())
            .collect();
        assert!(paths.contains(&"/metadata/annotations/a~1b"), "{paths:?}");
        assert!(paths.contains(&"/metadata/annotations/new~1k"), "{paths:?}");
    }

    #[test]
    fn array_insertions_are_single_adds() {
        let patch = roundtrip(json!({"l": [1, 2, 3]}), json!({"l": [1, 9, 2, 3]}));
        assert_eq!(patch, json!([{"op": "add", "path": "/l/1", "value": 9}]));
        roundtrip(json!({"l": [1, 2, 3]}), json!({"l": [3]}));
        roundtrip(json!({"l": [1, 2, 3]}), json!({"l": [4, 2, 5, 6, 7]}));
        roundtrip(
            json!({"l": [{"a": 1}]}),
            json!({"l": [{"a": 2, "b": [1]}], "m": null}),
        );
        roundtrip(json!([1]), json!({"x": 1}));
    }

    #[test]
    fn bad_patches_are_errors() {
        let mut doc = json!({"a": [1]});
        assert_eq!(
            apply_patch(&mut doc, &json!({})),
            Err(PatchError::NotAnArray)
        );
        assert!(apply_patch(&mut doc, &json!([{"op": "remove", "path": "/b"}])).is_err());
        assert!(apply_patch(
            &mut doc,
            &json!([{"op": "add", "path": "/a/5", "value": 1}])
        )
        .is_err());
        apply_patch(
            &mut doc,
            &json!([{"op": "add", "path": "/a/-", "value": 2}]),
        )
        .unwrap();
        assert_eq!(doc, json!({"a": [1, 2]}));
    }
}
