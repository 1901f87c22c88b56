//! The built-in web UI of `osprey up` (port 9201): page routes that all answer the same shell
//! HTML, and the static assets (JS modules, CSS, SVG) under `/ui/...`.
//!
//! The assets are embedded in the binary. With `OSPREY_UI_DIR=<dir>` they are read from disk
//! at each request instead, so the UI can be edited without rebuilding. All data is fetched by
//! the browser from the existing APIs (`POST /api/sql`, the Jaeger API); this crate serves no
//! data itself.

mod assets;

use axum::body::Body;
use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

pub use assets::{content_type, find, Asset, ASSETS};

/// Page routes of the UI; each answers the shell, and the JS router renders the view.
pub const PAGE_ROUTES: &[&str] = &[
    "/",
    "/services/{service}",
    "/map",
    "/search",
    "/trace/{trace_id}",
    "/sql",
];

/// The UI router: page routes plus `/ui/{*path}` for assets. Merge it into the query router.
pub fn router() -> Router {
    let mut r = Router::new();
    for p in PAGE_ROUTES {
        r = r.route(p, get(shell));
    }
    r.route("/ui/{*path}", get(asset))
}

async fn shell(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    serve(&path, &headers)
}

/// The directory to read assets from instead of the embedded copies, if `OSPREY_UI_DIR` is set.
fn dev_dir() -> Option<std::path::PathBuf> {
    std::env::var_os("OSPREY_UI_DIR")
        .filter(|v| !v.is_empty())
        .map(Into::into)
}

/// A relative asset name made only of safe path segments (no `..`, no absolute paths).
fn safe_name(name: &str) -> bool {
    !name.is_empty()
        && name.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        })
}

fn serve(name: &str, headers: &HeaderMap) -> Response {
    serve_with(dev_dir().as_deref(), name, headers)
}

/// Serves asset `name` from `dir` when given (development), else from the embedded copies.
fn serve_with(dir: Option<&std::path::Path>, name: &str, headers: &HeaderMap) -> Response {
    if !safe_name(name) {
        return not_found();
    }
    if let Some(dir) = dir {
        return match std::fs::read(dir.join(name)) {
            Ok(bytes) => respond(name, Body::from(bytes), "no-store", None),
            Err(e) => {
                tracing::debug!(asset = name, error = %e, "UI asset not found on disk");
                not_found()
            }
        };
    }
    let Some(a) = assets::find(name) else {
        return not_found();
    };
    let etag = a.etag();
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    if matches {
        let mut resp = StatusCode::NOT_MODIFIED.into_response();
        set_header(&mut resp, header::ETAG, &etag);
        set_header(&mut resp, header::CACHE_CONTROL, "no-cache");
        return resp;
    }
    respond(name, Body::from(a.bytes), "no-cache", Some(&etag))
}

fn respond(name: &str, body: Body, cache: &str, etag: Option<&str>) -> Response {
    let mut resp = Response::new(body);
    set_header(&mut resp, header::CONTENT_TYPE, content_type(name));
    set_header(&mut resp, header::CACHE_CONTROL, cache);
    set_header(&mut resp, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    if let Some(e) = etag {
        set_header(&mut resp, header::ETAG, e);
    }
    resp
}

fn set_header(resp: &mut Response, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(name, v);
    }
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "not found\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests;
