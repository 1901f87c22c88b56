//! The YAML of `osprey install --dry-run`: a small block-style emitter for JSON values that
//! quotes every string a YAML 1.1 parser (kubectl's, Helm's, PyYAML) would read as something
//! else (`yes`, `on`, `1`, `~`, ...), which serde_yaml's YAML 1.2 output leaves bare. Multi-line
//! strings (the collector config, dashboards) are literal blocks.

use serde_json::{Map, Value};

/// The objects as a multi-document YAML stream.
pub fn documents(objects: &[Value]) -> String {
    let mut out = String::new();
    for o in objects {
        out.push_str("---\n");
        if is_inline(o) {
            out.push_str(&scalar(o, 0));
            out.push('\n');
        } else {
            node(&mut out, o, 0);
        }
    }
    out
}

fn is_inline(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => true,
    }
}

fn pad(out: &mut String, indent: usize) {
    out.push_str(&" ".repeat(indent));
}

/// Writes a non-empty map or list as a block node whose lines start at `indent`.
fn node(out: &mut String, v: &Value, indent: usize) {
    match v {
        Value::Object(map) => write_map(out, map, indent),
        Value::Array(items) => {
            for item in items {
                if is_inline(item) {
                    pad(out, indent);
                    out.push_str("- ");
                    out.push_str(&scalar(item, indent));
                    out.push('\n');
                } else {
                    // The item's block at indent + 2, its first line's indentation becoming "- ".
                    let mut inner = String::new();
                    node(&mut inner, item, indent + 2);
                    pad(out, indent);
                    out.push_str("- ");
                    out.push_str(&inner[indent + 2..]);
                }
            }
        }
        other => {
            pad(out, indent);
            out.push_str(&scalar(other, indent));
            out.push('\n');
        }
    }
}

fn write_map(out: &mut String, map: &Map<String, Value>, indent: usize) {
    for (k, v) in map {
        pad(out, indent);
        out.push_str(&string(k, indent, false));
        out.push(':');
        match v {
            v if is_inline(v) => {
                out.push(' ');
                out.push_str(&scalar(v, indent));
                out.push('\n');
            }
            Value::Object(_) => {
                out.push('\n');
                node(out, v, indent + 2);
            }
            _ => {
                out.push('\n');
                node(out, v, indent);
            }
        }
    }
}

fn scalar(v: &Value, indent: usize) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => string(s, indent, true),
        Value::Object(_) => "{}".into(),
        Value::Array(_) => "[]".into(),
    }
}

/// Words YAML 1.1 resolves to booleans or null.
const RESERVED: &[&str] = &[
    "y", "n", "yes", "no", "on", "off", "true", "false", "null", "~",
];

fn plain_ok(s: &str) -> bool {
    let mut chars = s.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    first.is_ascii_alphabetic()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-'))
        && !RESERVED.contains(&s.to_ascii_lowercase().as_str())
}

/// A literal block fits when the text has lines, none of them whitespace-only or starting
/// the block with a space, no control characters, and at most one trailing newline.
fn literal_ok(s: &str) -> bool {
    s.contains('\n')
        && !s.ends_with("\n\n")
        && !s.starts_with([' ', '\t', '\n'])
        && !s.chars().any(|c| c.is_control() && c != '\n')
        && s.lines().all(|l| l.is_empty() || !l.trim().is_empty())
}

fn string(s: &str, indent: usize, allow_block: bool) -> String {
    if plain_ok(s) {
        return s.to_string();
    }
    if allow_block && literal_ok(s) {
        let body = s.strip_suffix('\n');
        let mut out = String::from(if body.is_some() { "|" } else { "|-" });
        for line in body.unwrap_or(s).split('\n') {
            out.push('\n');
            if !line.is_empty() {
                out.push_str(&" ".repeat(indent + 2));
                out.push_str(line);
            }
        }
        return out;
    }
    // A JSON string is a valid YAML double-quoted scalar.
    serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn round_trip(v: Value) {
        let text = documents(std::slice::from_ref(&v));
        let back: Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(back, v, "{text}");
    }

    #[test]
    fn ambiguous_strings_are_quoted() {
        let v = json!({"a": "yes", "b": "on", "c": "1", "d": "", "e": "~", "f": "a: b",
            "g": "NO", "h": "1e3", "i": "-", "j": "plain-name.io/x", "k": " lead", "l": "#x"});
        let text = documents(std::slice::from_ref(&v));
        for word in [
            "\"yes\"", "\"on\"", "\"1\"", "\"\"", "\"~\"", "\"NO\"", "\"1e3\"",
        ] {
            assert!(text.contains(word), "{word}: {text}");
        }
        assert!(text.contains("j: plain-name.io/x\n"), "{text}");
        round_trip(v);
    }

    #[test]
    fn nested_blocks_and_literals() {
        round_trip(json!({
            "list": [{"a": 1, "b": [1, 2, {"c": null}]}, [], {}, [["x", "y"]], "z"],
            "empty": {}, "none": [], "t": true, "f": 1.5, "neg": -3,
            "text": "line one\n  indented\n\nlast\n",
            "no_newline": "a\nb",
            "ws_line": "a\n   \nb\n",
            "many_newlines": "a\n\n\n",
            "leading": "\n a",
            "unicode": "é ✓\nok\n",
            "tab": "a\tb\nc\n",
        }));
        round_trip(json!([{"x": {"y": [{"z": "w"}]}}]));
    }

    #[test]
    fn literal_block_layout() {
        let text = documents(&[json!({"data": {"k": "a\nb\n"}})]);
        assert_eq!(text, "---\ndata:\n  k: |\n    a\n    b\n");
    }
}
