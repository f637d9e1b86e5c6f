// The demo upstream: shows who Portcullis says you are (the identity JWT's claims)
// and the headers it received. Not for production.
import http from 'node:http';

const port = Number(process.env.UPSTREAM_PORT || 9091);
const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

http.createServer((req, res) => {
  const jwt = req.headers['x-portcullis-jwt-assertion'];
  let claims = null;
  if (jwt) {
    try { claims = JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString()); } catch { claims = 'undecodable'; }
  }
  const headers = Object.entries(req.headers).map(([k, v]) => `${k}: ${k.includes('jwt') ? String(v).slice(0, 24) + '…' : v}`).join('\n');
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
  res.end(`<!doctype html><title>Demo app</title><body style="font-family:system-ui;max-width:50rem;margin:3rem auto">
<h1>Demo app behind Portcullis</h1><p>${escape(req.method)} ${escape(req.url)} on ${escape(req.headers['x-forwarded-host'] || '')}</p>
<h2>Identity (verified by Portcullis, signed ES256)</h2><pre>${escape(JSON.stringify(claims, null, 2))}</pre>
<p><a href="/.portcullis/">Your session</a> · <a href="/.portcullis/sign_out">Sign out</a></p>
<h2>Request headers</h2><pre>${escape(headers)}</pre></body>`);
}).listen(port, '127.0.0.1', () => console.log(`demo upstream on http://127.0.0.1:${port}`));
