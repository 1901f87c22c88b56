//! `osprey sql`: runs a query against a running Osprey and prints the result.

use anyhow::{bail, Context, Result};
use serde_json::Value;

#[derive(clap::ValueEnum, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Format {
    #[default]
    Table,
    Json,
    Csv,
}

#[derive(clap::Args, Debug, Clone)]
pub struct SqlArgs {
    /// The Osprey query endpoint
    #[arg(long, env = "OSPREY_URL", default_value = "http://127.0.0.1:9201")]
    pub url: String,
    /// Output format
    #[arg(long, env = "OSPREY_FORMAT", value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// The SQL query
    pub query: String,
}

pub async fn run(args: SqlArgs) -> Result<()> {
    let url = format!("{}/api/sql", args.url.trim_end_matches('/'));
    let resp = reqwest::Client::new()
        .post(&url)
        .json(&serde_json::json!({ "sql": args.query }))
        .send()
        .await
        .with_context(|| format!("cannot reach {url}; is `osprey up` running?"))?;
    let status = resp.status();
    let body: Value = resp
        .json()
        .await
        .with_context(|| format!("{url} answered {status} with a body that is not JSON"))?;
    if !status.is_success() {
        let msg = body
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("(no message)");
        bail!("{msg}");
    }
    let out = match args.format {
        Format::Json => serde_json::to_string(&body)?,
        Format::Csv => csv(&body),
        Format::Table => table(&body),
    };
    println!("{out}");
    Ok(())
}

fn columns(body: &Value) -> Vec<String> {
    body.get("columns")
        .and_then(Value::as_array)
        .map(|c| {
            c.iter()
                .map(|v| v.as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn rows(body: &Value) -> Vec<Vec<String>> {
    body.get("rows")
        .and_then(Value::as_array)
        .map(|rows| {
            rows.iter()
                .map(|r| {
                    r.as_array()
                        .map(|r| r.iter().map(cell).collect())
                        .unwrap_or_default()
                })
                .collect()
        })
        .unwrap_or_default()
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// RFC 4180 CSV with a header line.
pub fn csv(body: &Value) -> String {
    let mut lines = vec![columns(body)
        .iter()
        .map(|c| csv_field(c))
        .collect::<Vec<_>>()
        .join(",")];
    for r in rows(body) {
        lines.push(r.iter().map(|c| csv_field(c)).collect::<Vec<_>>().join(","));
    }
    lines.join("\n")
}

/// A boxed text table and a row count, as psql prints them.
pub fn table(body: &Value) -> String {
    let cols = columns(body);
    let rows = rows(body);
    let mut width: Vec<usize> = cols.iter().map(|c| c.chars().count()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = width.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let line = |cells: &[String]| -> String {
        let parts: Vec<String> = width
            .iter()
            .enumerate()
            .map(|(i, w)| format!(" {:<w$} ", cells.get(i).map(String::as_str).unwrap_or("")))
            .collect();
        format!("|{}|", parts.join("|"))
    };
    let rule = format!(
        "+{}+",
        width
            .iter()
            .map(|w| "-".repeat(w + 2))
            .collect::<Vec<_>>()
            .join("+")
    );
    let mut out = vec![rule.clone(), line(&cols), rule.clone()];
    for r in &rows {
        out.push(line(r));
    }
    out.push(rule);
    out.push(format!(
        "({} row{})",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" }
    ));
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let body =
            serde_json::json!({"columns": ["a", "b"], "rows": [["x,y", 1], [null, {"k": "v"}]]});
        assert_eq!(csv(&body), "a,b\n\"x,y\",1\n,\"{\"\"k\"\":\"\"v\"\"}\"");
        let t = table(&body);
        assert!(t.contains("| x,y | 1         |"), "{t}");
        assert!(t.ends_with("(2 rows)"));
    }
}
