"""A small fake Kubernetes API server for end-to-end tests of Osprey's Kubernetes clients
(no real API server can run here). It keeps objects in memory per collection path
(`/api/v1/pods`, `/apis/apps/v1/deployments`, ...) and serves what kube-rs clients ask for:

- GET of a collection (all namespaces or one) as a `<Kind>List` with a resourceVersion, GET of
  one object, and watches (`?watch=true`): newline-delimited `{"type", "object"}` events
  (ADDED / MODIFIED / DELETED) after the requested resourceVersion, held open until the server
  stops;
- POST (create; 409 AlreadyExists), PUT (replace), DELETE, and PATCH of an object or of its
  `/status`: server-side apply (`application/apply-patch+yaml`: the object is upserted, the
  applied fields merged over the stored ones), JSON merge patch and strategic merge patch
  (treated as a JSON merge patch), and JSON patch (RFC 6902 add/replace/remove).

It records every request, and writes a kubeconfig pointing at itself. Tests may refuse a path
(`reject[path] = (code, message)`) and play the controllers (`on_write(collection, obj)`, called
after each create or patch, may set the object's `status`). Shapes follow the
Kubernetes API conventions (api-concepts); nothing here checks schemas or admission.
"""
from __future__ import annotations

import copy
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import yaml


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def _pointer(doc, path: str):
    parts = [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]
    parent = doc
    for p in parts[:-1]:
        parent = parent[int(p)] if isinstance(parent, list) else parent[p]
    return parent, parts[-1]


def json_patch(doc, ops):
    """RFC 6902 add / replace / remove / test (enough for Kubernetes clients)."""
    doc = copy.deepcopy(doc)
    for op in ops:
        parent, key = _pointer(doc, op["path"])
        kind = op["op"]
        if isinstance(parent, list):
            idx = len(parent) if key == "-" else int(key)
            if kind == "add":
                parent.insert(idx, op["value"])
            elif kind == "replace":
                parent[idx] = op["value"]
            elif kind == "remove":
                del parent[idx]
            elif kind == "test":
                assert parent[idx] == op["value"], f"json patch test failed at {op['path']}"
        else:
            if kind in ("add", "replace"):
                parent[key] = op["value"]
            elif kind == "remove":
                del parent[key]
            elif kind == "test":
                assert parent.get(key) == op["value"], f"json patch test failed at {op['path']}"
    return doc


class FakeKube:
    def __init__(self):
        self.objects: dict[str, list[dict]] = {}
        self.events: list[tuple[int, str, str, dict]] = []  # (rv, type, collection, object)
        self.requests: list[tuple[str, str]] = []
        self.bodies: list[tuple[str, str, object]] = []  # (method, path, parsed body)
        self.resource_version = 100
        self.reject: dict[str, tuple[int, str]] = {}  # request path -> (HTTP code, message)
        self.on_write = None  # callable(collection, obj), lock held
        self._lock = threading.Condition()
        self._stopping = False
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                fake._handle(self, "GET")

            def do_POST(self):
                fake._handle(self, "POST")

            def do_PUT(self):
                fake._handle(self, "PUT")

            def do_PATCH(self):
                fake._handle(self, "PATCH")

            def do_DELETE(self):
                fake._handle(self, "DELETE")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ objects

    def _record(self, kind: str, collection: str, obj: dict):
        """Bumps the resourceVersion and logs a watch event (lock held)."""
        self.resource_version += 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(self.resource_version)
        self.events.append((self.resource_version, kind, collection, copy.deepcopy(obj)))
        self._lock.notify_all()

    def add(self, collection: str, obj: dict) -> dict:
        """Adds `obj` to `collection` (e.g. "/api/v1/pods"); open watches see ADDED."""
        with self._lock:
            meta = obj.setdefault("metadata", {})
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", "2026-11-26T00:00:00Z")
            meta.setdefault("generation", 1)
            self.objects.setdefault(collection, []).append(obj)
            self._record("ADDED", collection, obj)
            return obj

    def find(self, collection: str, namespace: str | None, name: str) -> dict | None:
        for o in self.objects.get(collection, []):
            meta = o.get("metadata", {})
            if meta.get("name") == name and (namespace is None
                                             or meta.get("namespace") == namespace):
                return o
        return None

    def list(self, collection: str, namespace: str | None = None) -> list[dict]:
        with self._lock:
            return copy.deepcopy(self._matching(collection, namespace))

    def stop(self):
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        self.httpd.shutdown()
        self.httpd.server_close()

    def write_kubeconfig(self, path: Path, namespace="default") -> Path:
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": "fake-token"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake",
                                                     "namespace": namespace}}],
        }))
        return path

    # ------------------------------------------------------------------ HTTP

    @staticmethod
    def _split(path: str):
        """(collection, namespace, name, subresource) for a request path."""
        parts = path.strip("/").split("/")
        prefix_len = 2 if parts[0] == "api" else 3  # api/v1 or apis/group/version
        prefix, rest = parts[:prefix_len], parts[prefix_len:]
        namespace = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        collection = "/" + "/".join(prefix + rest[:1])
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        return collection, namespace, name, sub

    def _matching(self, collection, namespace):
        return [o for o in self.objects.get(collection, [])
                if namespace is None or o.get("metadata", {}).get("namespace") == namespace]

    @staticmethod
    def _status(code: int, reason: str, message: str) -> dict:
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "reason": reason, "code": code, "message": message}

    def _handle(self, h: BaseHTTPRequestHandler, method: str):
        url = urlparse(h.path)
        query = parse_qs(url.query)
        self.requests.append((method, h.path))
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        ctype = (h.headers.get("Content-Type") or "").split(";")[0].strip()
        body = None
        if raw:
            body = yaml.safe_load(raw) if "yaml" in ctype else json.loads(raw)
        self.bodies.append((method, h.path, body))
        try:
            collection, namespace, name, sub = self._split(url.path)
        except IndexError:
            return self._send(h, 404, self._status(404, "NotFound", "bad path"))
        if url.path in self.reject:
            code, message = self.reject[url.path]
            reason = "Invalid" if code == 422 else "BadRequest"
            return self._send(h, code, self._status(code, reason, message))
        if method == "GET" and name is None and query.get("watch", ["false"])[0] in ("true", "1"):
            return self._watch(h, collection, namespace, query)
        with self._lock:
            code, out = self._apply(method, collection, namespace, name, sub, body, ctype)
            if self.on_write is not None and method in ("POST", "PUT", "PATCH") and code < 300:
                self.on_write(collection, out)
                out = copy.deepcopy(out)
        self._send(h, code, out)

    def _apply(self, method, collection, namespace, name, sub, body, ctype):
        if method == "GET":
            if name is None:
                items = self._matching(collection, namespace)
                kind = items[0].get("kind", "Object") if items else "Object"
                return 200, {"kind": f"{kind}List", "apiVersion": "v1",
                             "metadata": {"resourceVersion": str(self.resource_version)},
                             "items": items}
            obj = self.find(collection, namespace, name)
            if obj is None:
                return 404, self._status(404, "NotFound", f"{collection} {name} not found")
            return 200, obj
        if method == "POST":
            meta = body.setdefault("metadata", {})
            if namespace:
                meta.setdefault("namespace", namespace)
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
            if self.find(collection, meta.get("namespace"), meta.get("name")) is not None:
                return 409, self._status(409, "AlreadyExists", f"{meta.get('name')} exists")
            return 201, self.add(collection, body)  # the lock is re-entrant
        obj = self.find(collection, namespace, name)
        if method == "DELETE":
            if obj is None:
                return 404, self._status(404, "NotFound", f"{name} not found")
            self.objects[collection].remove(obj)
            self._record("DELETED", collection, obj)
            return 200, obj
        if method == "PUT":
            if obj is None:
                return 404, self._status(404, "NotFound", f"{name} not found")
            obj.clear()
            obj.update(body)
            self._record("MODIFIED", collection, obj)
            return 200, obj
        # PATCH
        if obj is None:
            if ctype != "application/apply-patch+yaml" or sub is not None:
                return 404, self._status(404, "NotFound", f"{collection} {name} not found")
            body.setdefault("metadata", {}).setdefault("namespace", namespace)
            if namespace is None:
                body["metadata"].pop("namespace", None)
            return 200, self.add(collection, body)
        if ctype == "application/json-patch+json":
            new = json_patch(obj, body)
        else:  # apply, merge and strategic merge patches: merged over the stored object
            if sub == "status":
                body = {"status": body.get("status")}
            new = merge_patch(obj, body)
        if new.get("spec") != obj.get("spec"):
            new["metadata"]["generation"] = int(obj["metadata"].get("generation", 1)) + 1
        obj.clear()
        obj.update(new)
        self._record("MODIFIED", collection, obj)
        return 200, obj

    def _watch(self, h, collection, namespace, query):
        since = int(query.get("resourceVersion", ["0"])[0] or 0)
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        try:
            while True:
                with self._lock:
                    fresh = [(rv, kind, o) for rv, kind, c, o in self.events
                             if rv > since and c == collection
                             and (namespace is None
                                  or o.get("metadata", {}).get("namespace") == namespace)]
                    if not fresh:
                        if self._stopping:
                            break
                        self._lock.wait(timeout=1.0)
                        continue
                for rv, kind, o in fresh:
                    since = rv
                    line = (json.dumps({"type": kind, "object": o}) + "\n").encode()
                    h.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
                    h.wfile.flush()
            h.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass

    @staticmethod
    def _send(h, code, body):
        data = json.dumps(body).encode()
        h.send_response(code)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)
