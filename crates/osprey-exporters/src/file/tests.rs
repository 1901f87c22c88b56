//! File exporter: formats, truncation, rotation and config checks, in a temporary directory.

use super::*;
use osprey_model::otlp::collector::trace::v1::ExportTraceServiceRequest;
use osprey_model::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span};
use osprey_pipeline::decode_config;

fn config(yaml: &str) -> Result<FileConfig, ConfigError> {
    let c: FileConfig = decode_config(&serde_yaml::from_str(yaml).unwrap())?;
    c.validate().map(|_| c)
}

fn traces(name: &str) -> ExportTraceServiceRequest {
    let span = Span {
        trace_id: vec![0xab; 16],
        span_id: vec![0xcd; 8],
        name: name.into(),
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![span],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

#[tokio::test]
async fn json_lines_truncated_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.json");
    std::fs::write(&path, "old content\n").unwrap();
    let e = FileExporter::new(config(&format!("path: {}", path.display())).unwrap()).unwrap();
    e.consume(Batch::traces(traces("a"))).await.unwrap();
    e.consume(Batch::logs(osprey_pipeline::LogsRequest::default()))
        .await
        .unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    let span = &v["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
    assert_eq!(span["traceId"], "abababababababababababababababab");
    assert_eq!(span["name"], "a");
    let back: ExportTraceServiceRequest = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(back, traces("a"));
    assert_eq!(lines[1], r#"{"resourceLogs":[]}"#);
}

#[tokio::test]
async fn append_keeps_existing_content() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.json");
    std::fs::write(&path, "old\n").unwrap();
    let e = FileExporter::new(config(&format!("path: {}\nappend: true", path.display())).unwrap())
        .unwrap();
    e.consume(Batch::traces(traces("a"))).await.unwrap();
    assert!(std::fs::read_to_string(&path)
        .unwrap()
        .starts_with("old\n{"));
}

#[tokio::test]
async fn proto_and_zstd_are_length_prefixed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.pb");
    let e = FileExporter::new(config(&format!("path: {}\nformat: proto", path.display())).unwrap())
        .unwrap();
    e.consume(Batch::traces(traces("a"))).await.unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let len = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
    assert_eq!(len + 4, bytes.len());
    assert_eq!(
        ExportTraceServiceRequest::decode(&bytes[4..]).unwrap(),
        traces("a")
    );

    let path = dir.path().join("out.json.zst");
    let e =
        FileExporter::new(config(&format!("path: {}\ncompression: zstd", path.display())).unwrap())
            .unwrap();
    e.consume(Batch::traces(traces("b"))).await.unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let len = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
    let json = zstd::decode_all(&bytes[4..4 + len]).unwrap();
    let back: ExportTraceServiceRequest = serde_json::from_slice(&json).unwrap();
    assert_eq!(back, traces("b"));
}

#[tokio::test]
async fn rotation_renames_and_keeps_max_backups() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.json");
    let cfg = config(&format!(
        "path: {}\nrotation:\n  max_backups: 2",
        path.display()
    ))
    .unwrap();
    assert_eq!(cfg.rotation.as_ref().unwrap().max_megabytes, 100);
    let line_len = FileExporter::with_file(
        &cfg,
        RotatingFile::open(&path, false, None, Duration::from_secs(1)).unwrap(),
    )
    .encode(&Batch::traces(traces("x")))
    .unwrap()
    .len() as u64;
    // Room for two lines per file.
    let file = RotatingFile::open(&path, false, cfg.rotation.clone(), Duration::from_secs(1))
        .unwrap()
        .with_max_bytes(2 * line_len + 1);
    let e = FileExporter::with_file(&cfg, file);
    for i in 0..9 {
        e.consume(Batch::traces(traces(&format!("{i}"))))
            .await
            .unwrap();
    }
    // 9 lines, 2 per file: the current file holds line 8; backups hold 0-1, 2-3, 4-5, 6-7,
    // of which only the newest two remain.
    let current = std::fs::read_to_string(&path).unwrap();
    assert_eq!(current.lines().count(), 1);
    let guard = e.file.lock().unwrap();
    let backups = guard.backups().unwrap();
    assert_eq!(backups.len(), 2, "{backups:?}");
    let names: Vec<String> = backups
        .iter()
        .map(|b| b.0.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for n in &names {
        assert!(n.starts_with("data-") && n.ends_with(".json"), "{n}");
    }
    let newest = std::fs::read_to_string(&backups[0].0).unwrap();
    assert!(
        newest.contains(r#""name":"6""#) && newest.contains(r#""name":"7""#),
        "{newest}"
    );
    let older = std::fs::read_to_string(&backups[1].0).unwrap();
    assert!(older.contains(r#""name":"4""#), "{older}");
}

#[test]
fn config_checks_mirror_the_collector() {
    assert_eq!(config("{}").unwrap_err().path, "path");
    assert_eq!(config("path: x\nformat: xml").unwrap_err().path, "format");
    assert_eq!(
        config("path: x\ncompression: gzip").unwrap_err().path,
        "compression"
    );
    assert_eq!(
        config("path: x\nappend: true\ncompression: zstd")
            .unwrap_err()
            .path,
        "append"
    );
    assert_eq!(
        config("path: x\nappend: true\nrotation:").unwrap_err().path,
        "append"
    );
    assert_eq!(
        config("path: x\ngroup_by: {enabled: true}")
            .unwrap_err()
            .path,
        "group_by"
    );
    assert_eq!(
        config("path: x\ndirectory_permissions: '0755'")
            .unwrap_err()
            .path,
        "directory_permissions"
    );
    assert_eq!(
        config("path: x\ncreate_directory: true\ndirectory_permissions: '0999'")
            .unwrap_err()
            .path,
        "directory_permissions"
    );
    let c = config(
        "path: x\nflush_interval: 5s\nrotation: {max_megabytes: 10, max_days: 3, localtime: true}",
    )
    .unwrap();
    let r = c.rotation.unwrap();
    assert_eq!(
        (r.max_megabytes, r.max_days, r.max_backups, r.localtime),
        (10, 3, 100, true)
    );
    assert_eq!(c.flush_interval, Duration::from_secs(5));
    assert!(config("path: x").unwrap().rotation.is_none());
}

#[tokio::test]
async fn create_directory_makes_the_parent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/out.json");
    let e = FileExporter::new(
        config(&format!("path: {}\ncreate_directory: true", path.display())).unwrap(),
    )
    .unwrap();
    e.consume(Batch::traces(traces("a"))).await.unwrap();
    assert!(path.exists());
}
