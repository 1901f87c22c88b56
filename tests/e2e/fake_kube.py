"""A small fake Kubernetes API server for end-to-end tests of Osprey's Kubernetes clients
(no real API server can run here). It serves what kube-rs clients ask for: collection GETs
(`/api/v1/pods`, `/api/v1/namespaces/{ns}/pods`, `/apis/{group}/{version}/...`) as `<Kind>List`
documents with a resourceVersion, object GETs, and watches (`?watch=true`), which it holds open
(sending ADDED events for objects added later) until the server stops. It also writes a
kubeconfig pointing at itself.

Shapes follow the Kubernetes API conventions (api-concepts: list responses carry
`metadata.resourceVersion`; watch streams are newline-delimited JSON `{"type", "object"}`).
"""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse


class FakeKube:
    def __init__(self):
        # collection path without namespace, e.g. "/api/v1/pods" -> list of objects
        self.objects: dict[str, list[dict]] = {}
        self.requests: list[tuple[str, str]] = []
        self.resource_version = 100
        self._lock = threading.Condition()
        self._stopping = False
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                fake._get(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ objects

    def add(self, collection: str, obj: dict):
        """Adds `obj` to `collection` (e.g. "/api/v1/pods"); open watches see ADDED."""
        with self._lock:
            self.resource_version += 1
            obj.setdefault("metadata", {})["resourceVersion"] = str(self.resource_version)
            self.objects.setdefault(collection, []).append(obj)
            self._lock.notify_all()

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
    def _split(path: str) -> tuple[str, str | None, str | None]:
        """("/api/v1/pods", namespace or None, name or None) for a request path."""
        parts = path.strip("/").split("/")
        prefix_len = 2 if parts[0] == "api" else 3  # api/v1 or apis/group/version
        prefix, rest = parts[:prefix_len], parts[prefix_len:]
        namespace = None
        if len(rest) >= 2 and rest[0] == "namespaces" and len(rest) != 2:
            namespace, rest = rest[1], rest[2:]
        elif len(rest) == 2 and rest[0] == "namespaces":
            # GET /api/v1/namespaces/{name}: the namespace object itself
            return "/" + "/".join(prefix + ["namespaces"]), None, rest[1]
        collection = "/" + "/".join(prefix + rest[:1])
        name = rest[1] if len(rest) > 1 else None
        return collection, namespace, name

    def _matching(self, collection, namespace):
        return [o for o in self.objects.get(collection, [])
                if namespace is None or o.get("metadata", {}).get("namespace") == namespace]

    def _get(self, h: BaseHTTPRequestHandler):
        url = urlparse(h.path)
        query = parse_qs(url.query)
        self.requests.append(("GET", h.path))
        try:
            collection, namespace, name = self._split(url.path)
        except IndexError:
            return self._send(h, 404, {"kind": "Status", "status": "Failure", "code": 404})
        if name is not None:
            for o in self._matching(collection, namespace):
                if o["metadata"].get("name") == name:
                    return self._send(h, 200, o)
            return self._send(h, 404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                       "reason": "NotFound", "code": 404,
                                       "message": f"{name} not found"})
        if query.get("watch", ["false"])[0] in ("true", "1"):
            return self._watch(h, collection, namespace, query)
        with self._lock:
            items = self._matching(collection, namespace)
            rv = str(self.resource_version)
        kind = items[0].get("kind", "Object") if items else "Object"
        self._send(h, 200, {"kind": f"{kind}List", "apiVersion": "v1",
                            "metadata": {"resourceVersion": rv}, "items": items})

    def _watch(self, h, collection, namespace, query):
        since = int(query.get("resourceVersion", ["0"])[0] or 0)
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        sent: set[int] = set()
        try:
            while True:
                with self._lock:
                    fresh = [o for o in self._matching(collection, namespace)
                             if int(o["metadata"]["resourceVersion"]) > since
                             and id(o) not in sent]
                    if not fresh:
                        if self._stopping:
                            break
                        self._lock.wait(timeout=1.0)
                        continue
                for o in fresh:
                    sent.add(id(o))
                    line = (json.dumps({"type": "ADDED", "object": o}) + "\n").encode()
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
