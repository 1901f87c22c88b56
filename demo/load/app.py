"""load: drives the password generator, like a user who never stops: one
`GET $GENERATOR_URL/password?length=<8..24>` every $INTERVAL seconds (default 1), forever, or
$COUNT times (then exits 0; default 0 = forever). Failures are logged and retried on the next
tick, so it can start before the generator is up.

Part of Osprey's demo (demo/README.md): plain requests, no OpenTelemetry in the code; its
outgoing calls are the roots of the demo's traces once auto-instrumentation is injected.
It serves nothing, so it needs no port.
"""
import os
import random
import sys
import time

import requests

GENERATOR_URL = os.environ.get("GENERATOR_URL", "http://generator:8080").rstrip("/")
INTERVAL = float(os.environ.get("INTERVAL", "1"))
COUNT = int(os.environ.get("COUNT", "0"))
TIMEOUT = float(os.environ.get("TIMEOUT", "10"))


def main() -> int:
    session = requests.Session()
    sent = ok = 0
    while COUNT == 0 or sent < COUNT:
        sent += 1
        try:
            r = session.get(f"{GENERATOR_URL}/password",
                            params={"length": random.randint(8, 24)}, timeout=TIMEOUT)
            r.raise_for_status()
            ok += 1
        except requests.RequestException as e:
            print(f"load: request {sent} failed: {e}", file=sys.stderr, flush=True)
        if sent % 10 == 0 or sent == COUNT:
            print(f"load: {ok} of {sent} passwords generated", flush=True)
        if COUNT == 0 or sent < COUNT:
            time.sleep(INTERVAL)
    return 0


if __name__ == "__main__":
    sys.exit(main())
