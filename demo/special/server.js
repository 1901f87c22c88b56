/*
 * special: hands out random special characters to the password generator
 * (`GET /chars?count=N` answers `{"chars": [...]}`).
 *
 * Part of Osprey's demo (demo/README.md), the one Node.js service: the standard `http` module
 * only, no OpenTelemetry in the code; traces come from the auto-instrumentation the operator
 * injects (NODE_OPTIONS=--require …/autoinstrumentation.js). Listens on $HOST:$PORT
 * (0.0.0.0:8080).
 */
'use strict';

const crypto = require('node:crypto');
const http = require('node:http');

const ALPHABET = '!#$%&*+-=?@^_~';
const MAX_COUNT = 128;
const host = process.env.HOST || '0.0.0.0';
const port = Number(process.env.PORT || 8080);

function send(res, status, body) {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, {
    'content-type': typeof body === 'string' ? 'text/plain' : 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://localhost');
  if (req.method !== 'GET') {
    return send(res, 405, { error: 'only GET' });
  }
  if (url.pathname === '/healthz') {
    return send(res, 200, 'ok\n');
  }
  if (url.pathname === '/chars') {
    const count = Number(url.searchParams.get('count') ?? '1');
    if (!Number.isInteger(count) || count < 1 || count > MAX_COUNT) {
      return send(res, 400, { error: `count must be an integer in 1..${MAX_COUNT}` });
    }
    const chars = Array.from({ length: count }, () => ALPHABET[crypto.randomInt(ALPHABET.length)]);
    return send(res, 200, { chars });
  }
  return send(res, 404, { error: 'not found' });
});

server.listen(port, host, () => console.log(`special: listening on ${host}:${port}`));

// Stop accepting, close idle keep-alive connections, and let the process end by itself (so
// that anything hooked on exit, such as a telemetry flush, still runs).
process.on('SIGTERM', () => {
  server.close();
  server.closeIdleConnections();
});
