"""generator: makes passwords (`GET /password?length=N`, 4 <= N <= 64, default 12) from the
characters of the upper, lower, digit and special services: at least one of each class, the
rest drawn at random, one request per class, then shuffled.

Part of Osprey's demo (demo/README.md): plain Flask + requests, no OpenTelemetry in the code;
traces come from the auto-instrumentation the operator injects. Listens on $HOST:$PORT
(0.0.0.0:8080); finds its peers at $UPPER_URL, $LOWER_URL, $DIGIT_URL and $SPECIAL_URL
(default http://<name>:8080, their Kubernetes Service names).
"""
import os
import random
import secrets

import requests
from flask import Flask, jsonify, request

CLASSES = ("upper", "lower", "digit", "special")
PEERS = {c: os.environ.get(f"{c.upper()}_URL", f"http://{c}:8080").rstrip("/") for c in CLASSES}
PEER_TIMEOUT = float(os.environ.get("PEER_TIMEOUT", "5"))
MIN_LENGTH, MAX_LENGTH = len(CLASSES), 64

app = Flask(__name__)
session = requests.Session()


class PeerError(Exception):
    pass


def fetch_chars(cls: str, count: int) -> list[str]:
    try:
        r = session.get(f"{PEERS[cls]}/chars", params={"count": count}, timeout=PEER_TIMEOUT)
        r.raise_for_status()
        chars = r.json()["chars"]
    except (requests.RequestException, ValueError, KeyError) as e:
        raise PeerError(f"{cls} service ({PEERS[cls]}): {e}") from e
    if len(chars) != count:
        raise PeerError(f"{cls} service sent {len(chars)} characters, not {count}")
    return chars


@app.get("/healthz")
def healthz():
    return "ok\n"


@app.get("/password")
def password():
    length = request.args.get("length", default=12, type=int)
    if not MIN_LENGTH <= length <= MAX_LENGTH:
        return jsonify(error=f"length must be an integer in {MIN_LENGTH}..{MAX_LENGTH}"), 400
    counts = dict.fromkeys(CLASSES, 1)
    for _ in range(length - len(CLASSES)):
        counts[random.choice(CLASSES)] += 1
    try:
        chars = [ch for cls, n in counts.items() for ch in fetch_chars(cls, n)]
    except PeerError as e:
        return jsonify(error=str(e)), 502
    secrets.SystemRandom().shuffle(chars)
    return jsonify(password="".join(chars), length=length)


if __name__ == "__main__":
    app.run(host=os.environ.get("HOST", "0.0.0.0"), port=int(os.environ.get("PORT", "8080")))
