"""upper: hands out random upper-case letters to the password generator (`GET /chars?count=N`
answers `{"chars": [...]}`).

Part of Osprey's demo (demo/README.md): plain Flask, no OpenTelemetry in the code; traces come
from the auto-instrumentation the operator injects. Listens on $HOST:$PORT (0.0.0.0:8080).
"""
import os
import secrets
import string

from flask import Flask, jsonify, request

ALPHABET = string.ascii_uppercase
MAX_COUNT = 128

app = Flask(__name__)


@app.get("/healthz")
def healthz():
    return "ok\n"


@app.get("/chars")
def chars():
    count = request.args.get("count", default=1, type=int)
    if not 1 <= count <= MAX_COUNT:
        return jsonify(error=f"count must be an integer in 1..{MAX_COUNT}"), 400
    return jsonify(chars=[secrets.choice(ALPHABET) for _ in range(count)])


if __name__ == "__main__":
    app.run(host=os.environ.get("HOST", "0.0.0.0"), port=int(os.environ.get("PORT", "8080")))
