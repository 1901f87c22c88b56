//! Tests of the action list: each action's semantics and config validation.

use super::*;
use crate::attrs::{get, str_value};

fn procs(yaml: &str) -> Result<AttrProc, ConfigError> {
    let list: Vec<ActionConfig> = serde_yaml::from_str(yaml).unwrap();
    AttrProc::new(&list, "actions")
}

fn kv(k: &str, v: Value) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

fn s(v: &str) -> Value {
    Value::StringValue(v.into())
}

#[test]
fn insert_update_upsert_semantics() {
    let p = procs(
        "[{key: a, value: new, action: insert}, {key: b, value: new, action: insert},
          {key: c, value: 7, action: update}, {key: d, value: 7, action: update},
          {key: e, from_attribute: a, action: upsert}, {key: f, value: 2.5, action: UPSERT}]",
    )
    .unwrap();
    let mut m = vec![kv("a", s("old")), kv("c", s("x"))];
    p.process(&Context::default(), &mut m);
    assert_eq!(
        get(&m, "a"),
        Some(&str_value("old")),
        "insert must not overwrite"
    );
    assert_eq!(get(&m, "b"), Some(&str_value("new")));
    assert_eq!(get(&m, "c").unwrap().value, Some(Value::IntValue(7)));
    assert!(get(&m, "d").is_none(), "update must not create");
    assert_eq!(get(&m, "e"), Some(&str_value("old")));
    assert_eq!(get(&m, "f").unwrap().value, Some(Value::DoubleValue(2.5)));
}

#[test]
fn delete_hash_with_patterns() {
    let p = procs("[{key: x, action: delete}, {pattern: '^secret\\.', action: delete}, {key: user, action: hash}]").unwrap();
    let mut m = vec![
        kv("x", s("1")),
        kv("secret.a", s("1")),
        kv("secret.b", s("1")),
        kv("keep", s("1")),
        kv("user", s("alice")),
    ];
    p.process(&Context::default(), &mut m);
    let keys: Vec<&str> = m.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["keep", "user"]);
    // sha256("alice")
    assert_eq!(
        get(&m, "user"),
        Some(&str_value(
            "2bd806c97f0e00af1a1fc3328fa763a9269723c8db8fac4f93af71db186d6e90"
        ))
    );
    let mut m = vec![kv("user", Value::IntValue(1))];
    p.process(&Context::default(), &mut m);
    assert_eq!(as_hex_len(&m), 64);
}

fn as_hex_len(m: &[KeyValue]) -> usize {
    attrs::as_str(get(m, "user").unwrap()).unwrap().len()
}

#[test]
fn extract_named_groups() {
    let p = procs(
        r#"[{key: url, pattern: '^/api/(?P<version>v\d+)/(?P<resource>\w+)', action: extract}]"#,
    )
    .unwrap();
    let mut m = vec![kv("url", s("/api/v2/users?id=1")), kv("version", s("old"))];
    p.process(&Context::default(), &mut m);
    assert_eq!(
        get(&m, "version"),
        Some(&str_value("v2")),
        "extract overrides"
    );
    assert_eq!(get(&m, "resource"), Some(&str_value("users")));
    let mut m = vec![kv("url", Value::IntValue(3))];
    p.process(&Context::default(), &mut m);
    assert_eq!(m.len(), 1, "non-string sources are left alone");
}

#[test]
fn convert_types() {
    let p = procs("[{key: a, action: convert, converted_type: int}, {key: b, action: convert, converted_type: double}, {key: c, action: convert, converted_type: string}, {key: d, action: convert, converted_type: int}]").unwrap();
    let mut m = vec![
        kv("a", s("42")),
        kv("b", Value::IntValue(3)),
        kv("c", Value::BoolValue(true)),
        kv("d", s("nope")),
    ];
    p.process(&Context::default(), &mut m);
    assert_eq!(get(&m, "a").unwrap().value, Some(Value::IntValue(42)));
    assert_eq!(get(&m, "b").unwrap().value, Some(Value::DoubleValue(3.0)));
    assert_eq!(get(&m, "c"), Some(&str_value("true")));
    assert_eq!(
        get(&m, "d"),
        Some(&str_value("nope")),
        "unconvertible stays as it is"
    );
}

#[test]
fn from_context_metadata_and_address() {
    let p = procs("[{key: tenant, from_context: metadata.X-Tenant, action: insert}, {key: ip, from_context: client.address, action: insert}]").unwrap();
    let mut ctx = Context::default();
    ctx.metadata
        .insert("x-tenant".into(), vec!["a".into(), "b".into()]);
    ctx.client_addr = Some("10.1.2.3".parse().unwrap());
    let mut m = Vec::new();
    p.process(&ctx, &mut m);
    assert_eq!(get(&m, "tenant"), Some(&str_value("a;b")));
    assert_eq!(get(&m, "ip"), Some(&str_value("10.1.2.3")));
}

#[test]
fn validation_names_the_entry() {
    let e = procs("[{key: a, value: 1, action: insert}, {key: b, value: 1, action: insert}, {key: c, action: frobnicate}]").unwrap_err();
    assert_eq!(e.path, "actions[2].action");
    let e = procs("[{key: a, action: insert}]").unwrap_err();
    assert_eq!(e.path, "actions[0].value");
    let e = procs("[{key: a, value: 1, from_attribute: b, action: upsert}]").unwrap_err();
    assert_eq!(e.path, "actions[0].value");
    let e = procs("[{key: a, pattern: '(\\d+)', action: extract}]").unwrap_err();
    assert_eq!(e.path, "actions[0].pattern");
    let e = procs("[{key: a, action: convert, converted_type: float}]").unwrap_err();
    assert_eq!(e.path, "actions[0].converted_type");
    let e = procs("[{action: delete}]").unwrap_err();
    assert_eq!(e.path, "actions[0].key");
}
