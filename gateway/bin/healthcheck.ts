/**
 * Docker HEALTHCHECK: `node dist/gateway/bin/healthcheck.js [url]` exits 0
 * when GET /healthz answers 200 within 4 s, 1 otherwise. No curl in the image.
 */
import http from 'node:http';

// HEALTH_PORT=0 means off (as in .env.example): then the admin's own port answers.
const port = [process.env.HEALTH_PORT, process.env.ADMIN_PORT].map((value) => Number(value?.trim() || 0)).find((value) => value > 0) ?? 8080;
const url = process.argv[2] ?? `http://127.0.0.1:${port}/healthz`;
const request = http.get(url, { timeout: 4000 }, (res) => {
  res.resume();
  process.exit(res.statusCode === 200 ? 0 : 1);
});
request.on('timeout', () => request.destroy(new Error('timeout')));
request.on('error', (err) => {
  process.stderr.write(`healthcheck: ${url}: ${err.message}\n`);
  process.exit(1);
});
