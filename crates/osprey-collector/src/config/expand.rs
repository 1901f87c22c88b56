//! `${env:VAR}` / `${VAR}` / `${env:VAR:-default}` expansion in string values, as the Collector
//! does it: after YAML parsing, so an expansion never changes the document's structure, and a
//! value that is one whole expansion is re-read as a YAML scalar (`${env:PORT}` can be a number).
//! `$$` is a literal `$`.

use serde_yaml::Value;

/// Where expansion looks variables up (the process environment, or a map in tests).
pub trait Env {
    fn get(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Env for std::collections::HashMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        std::collections::HashMap::get(self, name).cloned()
    }
}

/// Expands every string in `value` in place. `path` names the value for error messages.
pub fn expand_value(value: &mut Value, env: &dyn Env, path: &str) -> Result<(), String> {
    match value {
        Value::String(s) => {
            if !s.contains('$') {
                return Ok(());
            }
            let whole = is_single_reference(s);
            let expanded = expand_str(s, env).map_err(|e| format!("{path}: {e}"))?;
            if whole {
                // A value that is one reference takes the type of what it expands to.
                *value = match serde_yaml::from_str::<Value>(&expanded) {
                    Ok(v @ (Value::Bool(_) | Value::Number(_))) => v,
                    _ => Value::String(expanded),
                };
            } else {
                *s = expanded;
            }
            Ok(())
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_value(item, env, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        Value::Mapping(map) => {
            for (k, v) in map.iter_mut() {
                let key = match k {
                    Value::String(s) => s.clone(),
                    other => format!("{other:?}"),
                };
                let child = if path.is_empty() {
                    key
                } else {
                    format!("{path}.{key}")
                };
                expand_value(v, env, &child)?;
            }
            Ok(())
        }
        Value::Tagged(t) => expand_value(&mut t.value, env, path),
        _ => Ok(()),
    }
}

fn is_single_reference(s: &str) -> bool {
    s.starts_with("${") && s.ends_with('}') && s[2..].find('}') == Some(s.len() - 3)
}

/// Expands the references in one string.
pub fn expand_str(s: &str, env: &dyn Env) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| format!("unterminated `${{` in {s:?}"))?;
            out.push_str(&resolve(&body[..end], env)?);
            rest = &body[end + 1..];
        } else {
            // A lone `$` (or `$VAR`, which the Collector no longer expands) stays as written.
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn resolve(reference: &str, env: &dyn Env) -> Result<String, String> {
    let (scheme, rest) = match reference.split_once(':') {
        Some((scheme, rest)) if scheme.chars().all(|c| c.is_ascii_alphanumeric()) => (scheme, rest),
        _ => ("env", reference),
    };
    if scheme != "env" {
        return Err(format!(
            "`${{{reference}}}`: the {scheme:?} provider is not supported (only env)"
        ));
    }
    let (name, default) = match rest.split_once(":-") {
        Some((n, d)) => (n, Some(d)),
        None => (rest, None),
    };
    let valid = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if !valid {
        return Err(format!(
            "`${{{reference}}}`: {name:?} is not a valid environment variable name"
        ));
    }
    match (env.get(name), default) {
        (Some(v), _) if !v.is_empty() || default.is_none() => Ok(v),
        (_, Some(d)) => Ok(d.to_string()),
        (None, None) => {
            tracing::warn!(
                variable = name,
                "environment variable is not set; using \"\""
            );
            Ok(String::new())
        }
        (Some(v), None) => Ok(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env() -> HashMap<String, String> {
        HashMap::from([
            ("HOST".to_string(), "collector".to_string()),
            ("PORT".to_string(), "4317".to_string()),
        ])
    }

    #[test]
    fn forms() {
        let e = env();
        assert_eq!(
            expand_str("${env:HOST}:${PORT}", &e).unwrap(),
            "collector:4317"
        );
        assert_eq!(expand_str("${env:NOPE:-dflt}", &e).unwrap(), "dflt");
        assert_eq!(expand_str("${NOPE}", &e).unwrap(), "");
        assert_eq!(expand_str("cost $$5 and $x", &e).unwrap(), "cost $5 and $x");
        assert!(expand_str("${file:/etc/x}", &e)
            .unwrap_err()
            .contains("file"));
        assert!(expand_str("${env:HOST", &e)
            .unwrap_err()
            .contains("unterminated"));
        assert!(expand_str("${env:1X}", &e).is_err());
    }

    #[test]
    fn whole_reference_takes_the_type() {
        let mut v: Value =
            serde_yaml::from_str("a: ${env:PORT}\nb: x${PORT}\nc:\n  - ${HOST}").unwrap();
        expand_value(&mut v, &env(), "").unwrap();
        assert_eq!(v["a"], Value::Number(4317.into()));
        assert_eq!(v["b"], Value::String("x4317".into()));
        assert_eq!(v["c"][0], Value::String("collector".into()));
        let mut bad: Value = serde_yaml::from_str("a:\n  b: ${env:1}").unwrap();
        assert!(expand_value(&mut bad, &env(), "")
            .unwrap_err()
            .starts_with("a.b:"));
    }
}
