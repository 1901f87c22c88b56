//! A small fake Kubernetes API server for tests: kube's client over a `tower_test` mock
//! service, backed by an in-memory object map keyed by API path. It answers GET (object or
//! list, namespaced or across namespaces), POST (create; 409 AlreadyExists), PUT (replace;
//! 409 Conflict on a stale resourceVersion) and PATCH (JSON merge, lists of named items merged
//! by name as a strategic merge does). Watches stay open and silent. Every request is logged.

use http::{Request, Response};
use http_body_util::BodyExt;
use kube::client::Body;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use tower_test::mock;

/// One request the fake API server saw.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: String,
    pub content_type: String,
    pub body: Option<Value>,
}

/// The fake server's state, shared with the test.
#[derive(Clone, Default)]
pub struct FakeApi {
    pub objects: Arc<Mutex<BTreeMap<String, Value>>>,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    /// Paths answered with this HTTP status (a `Status` body) instead.
    pub failing: Arc<Mutex<HashMap<String, u16>>>,
}

impl FakeApi {
    /// Starts the fake server with `objects` (API path → object) and returns a client to it.
    pub fn start(objects: Vec<(&str, Value)>) -> (kube::Client, FakeApi) {
        let api = FakeApi::default();
        for (path, obj) in objects {
            api.put(path, obj);
        }
        let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
        tokio::spawn(serve(handle, api.clone()));
        (kube::Client::new(service, "default"), api)
    }

    pub fn put(&self, path: &str, obj: Value) {
        self.objects.lock().unwrap().insert(path.to_string(), obj);
    }

    pub fn get(&self, path: &str) -> Option<Value> {
        self.objects.lock().unwrap().get(path).cloned()
    }

    pub fn fail(&self, path: &str, code: u16) {
        self.failing.lock().unwrap().insert(path.to_string(), code);
    }

    /// Requests other than watches, as `METHOD path`.
    pub fn calls(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| !s.query.contains("watch=true"))
            .map(|s| format!("{} {}", s.method, s.path))
            .collect()
    }
}

/// (base, namespace, resource, name) of an API path.
fn parse(path: &str) -> Option<(String, Option<String>, String, Option<String>)> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (base, rest) = match segs.first() {
        Some(&"api") if segs.len() >= 2 => (segs[..2].join("/"), &segs[2..]),
        Some(&"apis") if segs.len() >= 3 => (segs[..3].join("/"), &segs[3..]),
        _ => return None,
    };
    let name = |i: usize| rest.get(i).map(|s| s.to_string());
    if rest.first() == Some(&"namespaces") && rest.len() >= 3 {
        Some((base, name(1), rest[2].to_string(), name(3)))
    } else {
        Some((base, None, rest.first()?.to_string(), name(1)))
    }
}

fn status(code: u16, reason: &str) -> Response<Body> {
    let body = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "code": code, "message": reason});
    Response::builder()
        .status(code)
        .body(Body::from(body.to_string().into_bytes()))
        .unwrap()
}

fn ok(code: u16, v: &Value) -> Response<Body> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(v.to_string().into_bytes()))
        .unwrap()
}

/// Merge patch; arrays whose patch items all have a `name` merge item by item.
pub fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (Value::Array(t), Value::Array(p)) if p.iter().all(|i| i.get("name").is_some()) => {
            for item in p {
                match t.iter_mut().find(|x| x.get("name") == item.get("name")) {
                    Some(x) => merge(x, item),
                    None => t.push(item.clone()),
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

fn bump(obj: &mut Value) {
    let rv = obj["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(0);
    obj["metadata"]["resourceVersion"] = json!((rv + 1).to_string());
}

fn answer(api: &FakeApi, s: &Seen) -> Option<Response<Body>> {
    if let Some(code) = api.failing.lock().unwrap().get(&s.path) {
        return Some(status(*code, "InternalError"));
    }
    let mut objects = api.objects.lock().unwrap();
    let (base, ns, res, name) = parse(&s.path)?;
    Some(match (s.method.as_str(), name) {
        ("GET", Some(_)) => match objects.get(&s.path) {
            Some(o) => ok(200, o),
            None => status(404, "NotFound"),
        },
        ("GET", None) => {
            let items: Vec<Value> = objects
                .iter()
                .filter(|(p, _)| {
                    parse(p).is_some_and(|(b, n, r, nm)| {
                        b == base && r == res && nm.is_some() && (ns.is_none() || n == ns)
                    })
                })
                .map(|(_, o)| o.clone())
                .collect();
            ok(
                200,
                &json!({"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": items}),
            )
        }
        ("POST", None) => {
            let mut body = s.body.clone().unwrap_or_default();
            let Some(n) = body["metadata"]["name"].as_str().map(str::to_string) else {
                return Some(status(422, "Invalid"));
            };
            let key = format!("{}/{n}", s.path);
            if objects.contains_key(&key) {
                return Some(status(409, "AlreadyExists"));
            }
            bump(&mut body);
            objects.insert(key, body.clone());
            ok(201, &body)
        }
        ("PUT", Some(_)) => {
            let mut body = s.body.clone().unwrap_or_default();
            let Some(cur) = objects.get(&s.path) else {
                return Some(status(404, "NotFound"));
            };
            if body["metadata"]["resourceVersion"] != cur["metadata"]["resourceVersion"] {
                return Some(status(409, "Conflict"));
            }
            bump(&mut body);
            objects.insert(s.path.clone(), body.clone());
            ok(200, &body)
        }
        ("PATCH", Some(_)) => {
            let Some(cur) = objects.get_mut(&s.path) else {
                return Some(status(404, "NotFound"));
            };
            merge(cur, &s.body.clone().unwrap_or_default());
            bump(cur);
            ok(200, cur)
        }
        _ => status(405, "MethodNotAllowed"),
    })
}

async fn serve(handle: mock::Handle<Request<Body>, Response<Body>>, api: FakeApi) {
    let mut handle = std::pin::pin!(handle);
    let mut held = Vec::new();
    while let Some((req, send)) = handle.next_request().await {
        let (parts, body) = req.into_parts();
        let bytes = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let s = Seen {
            method: parts.method.to_string(),
            path: parts.uri.path().to_string(),
            query: parts.uri.query().unwrap_or("").to_string(),
            content_type: parts
                .headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string(),
            body: serde_json::from_slice(&bytes).ok(),
        };
        api.seen.lock().unwrap().push(s.clone());
        if s.query.contains("watch=true") {
            held.push(send);
            continue;
        }
        match answer(&api, &s) {
            Some(r) => send.send_response(r),
            None => send.send_response(status(404, "NotFound")),
        }
    }
}
