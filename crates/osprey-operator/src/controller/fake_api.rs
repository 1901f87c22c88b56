//! A fake Kubernetes API server for tests: kube's client over a `tower_test` mock service whose
//! answers come from a closure, and which records every request (method, path, query, JSON
//! body) for the test to check.

use http::{Request, Response};
use kube::client::Body;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tower_test::mock;

/// One request the fake API server saw.
#[derive(Clone, Debug)]
pub(crate) struct Seen {
    pub method: String,
    pub path: String,
    pub query: String,
    pub content_type: String,
    /// The JSON body (`Null` when there was none).
    pub body: Value,
}

impl Seen {
    /// Everything but reads.
    pub fn is_write(&self) -> bool {
        self.method != "GET"
    }
}

/// The recorded requests.
pub(crate) type Log = Arc<Mutex<Vec<Seen>>>;

/// A client whose requests `respond` answers with (status, JSON body).
pub(crate) fn client(
    mut respond: impl FnMut(&Seen) -> (u16, Value) + Send + 'static,
) -> (kube::Client, Log) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let log: Log = Arc::default();
    let seen_log = log.clone();
    tokio::spawn(async move {
        let mut handle = std::pin::pin!(handle);
        while let Some((req, send)) = handle.next_request().await {
            let method = req.method().to_string();
            let path = req.uri().path().to_string();
            let query = req.uri().query().unwrap_or("").to_string();
            let content_type = req
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let bytes = req.into_body().collect_bytes().await.unwrap_or_default();
            let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let seen = Seen {
                method,
                path,
                query,
                content_type,
                body,
            };
            seen_log.lock().unwrap().push(seen.clone());
            let (code, reply) = respond(&seen);
            let resp = Response::builder()
                .status(code)
                .header("content-type", "application/json")
                .body(Body::from(reply.to_string().into_bytes()))
                .unwrap();
            send.send_response(resp);
        }
    });
    (kube::Client::new(service, "default"), log)
}

/// A list response holding `items`.
pub(crate) fn list(items: Vec<Value>) -> Value {
    json!({"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": items})
}

/// A `404 NotFound` Status.
pub(crate) fn not_found() -> (u16, Value) {
    (
        404,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}),
    )
}

/// The usual answers: GETs from `gets` by path (an empty list for an unknown path ending in a
/// plural, else 404), writes echo their body (merge patches of a status return `status_of`),
/// DELETE answers a success Status.
pub(crate) fn standard(
    gets: HashMap<String, Value>,
    status_of: Value,
) -> impl FnMut(&Seen) -> (u16, Value) + Send + 'static {
    move |s: &Seen| match s.method.as_str() {
        "GET" => match gets.get(&s.path) {
            Some(v) => (200, v.clone()),
            None if s.path.ends_with('s') => (200, list(Vec::new())),
            None => not_found(),
        },
        "DELETE" => (
            200,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
        ),
        "PATCH" if s.path.ends_with("/status") => (200, status_of.clone()),
        _ => (200, s.body.clone()),
    }
}

/// The requests seen so far.
pub(crate) fn seen(log: &Log) -> Vec<Seen> {
    log.lock().unwrap().clone()
}
