//! Unit tests of the UI router: page routes answer the shell, assets carry their content
//! types and cache headers, unknown or unsafe asset paths are 404.

use super::*;
use axum::http::Request;
use http_body_util::BodyExt;
use tower::ServiceExt;

async fn get_path(path: &str, inm: Option<&str>) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut req = Request::builder().uri(path);
    if let Some(v) = inm {
        req = req.header(header::IF_NONE_MATCH, v);
    }
    let resp = router()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, headers, body)
}

#[tokio::test]
async fn page_routes_serve_the_shell() {
    let shell = find("index.html").unwrap().bytes;
    for p in [
        "/",
        "/services/frontend",
        "/services/a%2Fb",
        "/map",
        "/search?service=x",
        "/trace/0123456789abcdef0123456789abcdef",
        "/sql?range=1h",
        "/?start=1&end=2",
    ] {
        let (status, headers, body) = get_path(p, None).await;
        assert_eq!(status, StatusCode::OK, "{p}");
        assert_eq!(
            headers[header::CONTENT_TYPE],
            "text/html; charset=utf-8",
            "{p}"
        );
        assert_eq!(body, shell, "{p}");
    }
    let html = String::from_utf8(shell.to_vec()).unwrap();
    assert!(html.contains("/ui/app.js"), "shell loads the app module");
    assert!(html.contains("/ui/app.css"));
}

#[tokio::test]
async fn assets_have_content_types_and_cache_headers() {
    for (p, ct) in [
        ("/ui/app.js", "text/javascript; charset=utf-8"),
        ("/ui/overview.js", "text/javascript; charset=utf-8"),
        ("/ui/app.css", "text/css; charset=utf-8"),
        ("/ui/favicon.svg", "image/svg+xml"),
        ("/ui/index.html", "text/html; charset=utf-8"),
    ] {
        let (status, headers, body) = get_path(p, None).await;
        assert_eq!(status, StatusCode::OK, "{p}");
        assert_eq!(headers[header::CONTENT_TYPE], ct, "{p}");
        assert_eq!(headers[header::CACHE_CONTROL], "no-cache", "{p}");
        assert!(!body.is_empty());
        let etag = headers[header::ETAG].to_str().unwrap().to_string();
        let (status, headers, body) = get_path(p, Some(&etag)).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED, "{p}");
        assert_eq!(headers[header::ETAG].to_str().unwrap(), etag);
        assert!(body.is_empty());
    }
}

#[tokio::test]
async fn every_embedded_asset_is_served() {
    for a in ASSETS {
        let (status, _, body) = get_path(&format!("/ui/{}", a.name), None).await;
        assert_eq!(status, StatusCode::OK, "{}", a.name);
        assert_eq!(body, a.bytes);
    }
}

#[tokio::test]
async fn unknown_and_unsafe_assets_are_404() {
    for p in [
        "/ui/nope.js",
        "/ui/../Cargo.toml",
        "/ui/%2e%2e/Cargo.toml",
        "/ui/a//b.js",
        "/ui/x.js%00",
    ] {
        let (status, _, _) = get_path(p, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{p}");
    }
}

#[test]
fn names_and_types() {
    assert!(safe_name("app.js"));
    assert!(safe_name("icons/a-b_c.svg"));
    assert!(!safe_name("../x"));
    assert!(!safe_name("/etc/passwd"));
    assert!(!safe_name("a/./b"));
    assert!(!safe_name(""));
    assert_eq!(content_type("x.bin"), "application/octet-stream");
    assert_eq!(content_type("noext"), "application/octet-stream");
}

#[tokio::test]
async fn assets_from_a_directory_are_not_cached() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app.js"), "export const x = 1;\n").unwrap();
    std::fs::write(dir.path().join("index.html"), "<!doctype html>dev").unwrap();
    let none = HeaderMap::new();
    let resp = serve_with(Some(dir.path()), "app.js", &none);
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()[header::CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(resp.headers()[header::CACHE_CONTROL], "no-store");
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"export const x = 1;\n");
    let resp = serve_with(Some(dir.path()), "index.html", &none);
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        serve_with(Some(dir.path()), "lib.js", &none).status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        serve_with(Some(dir.path()), "../app.js", &none).status(),
        StatusCode::NOT_FOUND
    );
}

#[test]
fn every_file_in_assets_is_embedded() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(
            find(&name).is_some(),
            "assets/{name} is not listed in assets.rs"
        );
    }
}
