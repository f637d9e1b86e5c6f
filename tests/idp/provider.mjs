// Portcullis test/demo OpenID Connect provider (oidc-provider 9, ESM).
//
// Prints exactly one line `READY http://127.0.0.1:<port>` on stdout once it
// accepts connections; everything else goes to stderr. See README.md.

import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as http from 'node:http';
import * as querystring from 'node:querystring';

import Provider from 'oidc-provider';

// oidc-provider prints its notices with console.info (stdout). stdout is
// reserved for the READY line, so send all console output to stderr.
console.log = (...args) => console.error(...args);
console.info = (...args) => console.error(...args);
console.debug = (...args) => console.error(...args);

const env = process.env;

function die(msg) {
  process.stderr.write(`idp: ${msg}\n`);
  process.exit(2);
}

function list(value) {
  return (value || '').split(',').map((s) => s.trim()).filter(Boolean);
}

function seconds(name, dflt) {
  const raw = env[name];
  if (raw === undefined || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n <= 0) die(`${name} must be a positive integer (seconds), got ${JSON.stringify(raw)}`);
  return n;
}

const PORT = env.IDP_PORT ? Number(env.IDP_PORT) : 0;
if (!Number.isSafeInteger(PORT) || PORT < 0 || PORT > 65535) die(`IDP_PORT invalid: ${env.IDP_PORT}`);
const CLIENT_ID = env.IDP_CLIENT_ID || 'portcullis';
const CLIENT_SECRET = env.IDP_CLIENT_SECRET || 'portcullis-secret';
const REDIRECT_URIS = list(env.IDP_REDIRECT_URIS);
if (REDIRECT_URIS.length === 0) die('IDP_REDIRECT_URIS is required (comma-separated list)');
const POST_LOGOUT_REDIRECT_URIS = list(env.IDP_POST_LOGOUT_REDIRECT_URIS);
const BACKCHANNEL_LOGOUT_URI = env.IDP_BACKCHANNEL_LOGOUT_URI || undefined;
const ACCESS_TOKEN_TTL = seconds('IDP_ACCESS_TOKEN_TTL', 3600);
const ID_TOKEN_TTL = seconds('IDP_ID_TOKEN_TTL', 3600);
const REFRESH_TOKEN_TTL = seconds('IDP_REFRESH_TOKEN_TTL', 14 * 24 * 3600);
const USERS_FILE = env.IDP_USERS_FILE || undefined;
const ID_TOKEN_ALG = env.IDP_ID_TOKEN_ALG || 'RS256';
if (!['RS256', 'ES256'].includes(ID_TOKEN_ALG)) die(`IDP_ID_TOKEN_ALG must be RS256 or ES256, got ${ID_TOKEN_ALG}`);

// ---------------------------------------------------------------- users ----

const BUILTIN_USERS = [
  { sub: 'alice', email: 'alice@example.com', name: 'Alice Example', groups: ['admins', 'staff'] },
  { sub: 'bob', email: 'bob@example.com', name: 'Bob Builder', groups: ['staff'] },
  { sub: 'mallory', email: 'mallory@evil.example', name: 'Mallory', groups: [] },
];

// Built-in users merged with IDP_USERS_FILE (entries with the same sub
// replace the built-in one). The file is re-read on every call so tests can
// change users (e.g. groups) while the provider runs.
function loadUsers() {
  const bySub = new Map(BUILTIN_USERS.map((u) => [u.sub, u]));
  if (USERS_FILE) {
    let extra;
    try {
      extra = JSON.parse(readFileSync(USERS_FILE, 'utf8'));
    } catch (err) {
      process.stderr.write(`idp: cannot read IDP_USERS_FILE ${USERS_FILE}: ${err.message}\n`);
      extra = [];
    }
    if (!Array.isArray(extra)) {
      process.stderr.write('idp: IDP_USERS_FILE must contain a JSON array\n');
      extra = [];
    }
    for (const u of extra) {
      if (u && typeof u.sub === 'string' && u.sub) bySub.set(u.sub, u);
    }
  }
  return bySub;
}

// Look a user up by sub or by email (case-insensitive for email).
// A user with `"disabled": true` counts as not found (login refused, refresh
// and userinfo fail), as does a user removed from IDP_USERS_FILE.
function findUser(login) {
  if (typeof login !== 'string' || !login) return undefined;
  const users = loadUsers();
  let user = users.get(login);
  if (!user) {
    const lower = login.toLowerCase();
    user = [...users.values()].find((u) => typeof u.email === 'string' && u.email.toLowerCase() === lower);
  }
  return user && !user.disabled ? user : undefined;
}

async function findAccount(_ctx, id) {
  const user = findUser(id);
  if (!user) return undefined;
  return {
    accountId: user.sub,
    async claims(_use, _scope) {
      const claims = { sub: user.sub };
      if (user.email !== undefined) {
        claims.email = user.email;
        claims.email_verified = user.email_verified ?? true;
      }
      if (user.name !== undefined) claims.name = user.name;
      claims.groups = Array.isArray(user.groups) ? user.groups : [];
      return claims;
    },
  };
}

// ------------------------------------------------------------------ keys ---

function signingKeys() {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
  // RS256 first: it is the default signing key (and the ID token default alg).
  return [
    { ...rsa, kid: `rs256-${randomUUID().slice(0, 8)}`, alg: 'RS256', use: 'sig' },
    { ...ec, kid: `es256-${randomUUID().slice(0, 8)}`, alg: 'ES256', use: 'sig' },
  ];
}

// ------------------------------------------------------------ login form ---

function htmlEscape(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({
    '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
  })[c]);
}

async function readForm(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 56 * 1024) throw new Error('request entity too large');
    chunks.push(chunk);
  }
  return querystring.parse(Buffer.concat(chunks).toString('utf8'));
}

// Koa middleware in front of devInteractions' POST /interaction/:uid.
// devInteractions accepts any login and uses it verbatim as accountId; here
// the login (short name or email) is resolved to a known user and replaced by
// its canonical sub, and an unknown login (or a wrong password for a user that
// has one in IDP_USERS_FILE) is refused with 401 and the form again.
function loginGuard() {
  return async function idpLoginGuard(ctx, next) {
    const m = ctx.method === 'POST' && /^\/interaction\/([^/]+)$/.exec(ctx.path);
    if (!m || !ctx.is('application/x-www-form-urlencoded')) return next();

    const body = await readForm(ctx.req);
    // oidc-provider's body parser uses req.body when the stream was consumed.
    ctx.req.body = body;

    if (body.prompt === 'login') {
      const user = findUser(body.login);
      const passwordOk = user && (user.password === undefined || user.password === body.password);
      if (!user || !passwordOk) {
        ctx.status = 401;
        ctx.type = 'html';
        ctx.set('cache-control', 'no-store');
        ctx.body = `<!DOCTYPE html><html><head><meta charset="utf-8"><title>Sign-in</title></head><body>
<p class="error">invalid login: unknown user or wrong password</p>
<form autocomplete="off" action="${htmlEscape(ctx.path)}" method="post">
  <input type="hidden" name="prompt" value="login"/>
  <input required type="text" name="login" placeholder="Enter login" value="${htmlEscape(body.login ?? '')}">
  <input required type="password" name="password" placeholder="and password">
  <button type="submit">Sign-in</button>
</form></body></html>`;
        return undefined;
      }
      body.login = user.sub;
    }
    return next();
  };
}

// ------------------------------------------------------- offline_access ---

// oidc-provider (following OIDC Core 11) strips `offline_access` from the
// requested scope unless the request carries prompt=consent, so a normal
// login would never yield a refresh token. This middleware notes, in an extra
// authorization parameter that survives the login interaction, whether the
// RP asked for offline_access; loadExistingGrant then puts the scope back.
const OFFLINE_PARAM = 'x_portcullis_offline_access';

function wantsOffline(params) {
  const scope = typeof params.scope === 'string' ? params.scope : '';
  return scope.split(' ').includes('offline_access');
}

function offlineAccessMarker() {
  return async function idpOfflineAccessMarker(ctx, next) {
    // GET|POST /auth and POST /request (PAR).
    const isAuth = ctx.path === '/auth' && (ctx.method === 'GET' || ctx.method === 'POST');
    const isPar = ctx.path === '/request' && ctx.method === 'POST';
    if (!isAuth && !isPar) return next();

    if (ctx.method === 'GET') {
      const q = { ...ctx.query };
      delete q[OFFLINE_PARAM];
      if (wantsOffline(q)) q[OFFLINE_PARAM] = '1';
      ctx.querystring = querystring.stringify(q);
    } else if (ctx.is('application/x-www-form-urlencoded')) {
      const body = await readForm(ctx.req);
      delete body[OFFLINE_PARAM];
      if (wantsOffline(body)) body[OFFLINE_PARAM] = '1';
      ctx.req.body = body;
    }
    return next();
  };
}

// ---------------------------------------------------------------- config ---

const SCOPES = ['openid', 'offline_access', 'profile', 'email', 'groups'];
const CLAIMS = {
  openid: ['sub'],
  email: ['email', 'email_verified'],
  profile: ['name'],
  groups: ['groups'],
};
const ALL_CLAIMS = [...new Set(Object.values(CLAIMS).flat())];

function buildConfig() {
  const client = {
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    client_name: 'Portcullis (test)',
    redirect_uris: REDIRECT_URIS,
    post_logout_redirect_uris: POST_LOGOUT_REDIRECT_URIS,
    response_types: ['code'],
    grant_types: ['authorization_code', 'refresh_token'],
    // client_secret_post is accepted as well: oidc-provider treats the two
    // secret methods as interchangeable for authentication.
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: ID_TOKEN_ALG,
  };
  if (BACKCHANNEL_LOGOUT_URI) {
    client.backchannel_logout_uri = BACKCHANNEL_LOGOUT_URI;
    client.backchannel_logout_session_required = true;
  }

  return {
    clients: [client],
    extraParams: [OFFLINE_PARAM],
    jwks: { keys: signingKeys() },
    cookies: { keys: ['portcullis-test-idp-cookie-key-1', 'portcullis-test-idp-cookie-key-2'] },
    scopes: SCOPES,
    claims: CLAIMS,
    conformIdTokenClaims: false,
    findAccount,
    features: {
      devInteractions: { enabled: true },
      rpInitiatedLogout: { enabled: true },
      backchannelLogout: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
    },
    pkce: {
      // S256 is the only supported method (the default).
      required: () => true,
    },
    ttl: {
      AccessToken: ACCESS_TOKEN_TTL,
      IdToken: ID_TOKEN_TTL,
      RefreshToken: REFRESH_TOKEN_TTL,
    },
    // Refresh tokens whenever offline_access made it into the granted scope,
    // for any client allowed the refresh_token grant.
    async issueRefreshToken(_ctx, client, code) {
      return client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access');
    },
    // Pre-grant everything for our client: no consent screen.
    async loadExistingGrant(ctx) {
      const { client, session } = ctx.oidc;
      const accountId = ctx.oidc.account?.accountId ?? session.accountId;
      const grantId = ctx.oidc.result?.consent?.grantId || session.grantIdFor(client.clientId);
      let grant;
      if (grantId) {
        grant = await ctx.oidc.provider.Grant.find(grantId);
        if (grant && grant.accountId !== accountId) grant = undefined;
      }
      if (!grant && client.clientId !== CLIENT_ID) return grant;
      if (!grant) {
        grant = new ctx.oidc.provider.Grant({ accountId, clientId: client.clientId });
      }
      // Put back offline_access if the RP asked for it (see offlineAccessMarker).
      const { params } = ctx.oidc;
      if (
        params[OFFLINE_PARAM] === '1'
        && client.grantTypeAllowed('refresh_token')
        && String(params.response_type || '').split(' ').includes('code')
        && typeof params.scope === 'string'
        && !params.scope.split(' ').includes('offline_access')
      ) {
        params.scope = `${params.scope} offline_access`;
      }
      grant.addOIDCScope(SCOPES.join(' '));
      grant.addOIDCClaims(ALL_CLAIMS);
      await grant.save();
      return grant;
    },
    // oidc-provider's outgoing requests (back-channel logout) carry an
    // SSRF-protecting dispatcher that refuses loopback/private addresses. The
    // RPs under test live on 127.0.0.1, so drop it.
    fetch(url, options) {
      const { dispatcher: _ssrfGuard, ...rest } = options;
      return globalThis.fetch(url, rest);
    },
    // Surface server-side errors on stderr (never stdout).
    renderError(ctx, out, error) {
      ctx.type = 'html';
      ctx.body = `<!DOCTYPE html><html><head><meta charset="utf-8"><title>error</title></head><body>
<h1>oops! something went wrong</h1>
${Object.entries(out).map(([k, v]) => `<pre><strong>${htmlEscape(k)}</strong>: ${htmlEscape(v)}</pre>`).join('\n')}
</body></html>`;
      if (error && !error.expose) process.stderr.write(`idp: ${error.stack || error}\n`);
    },
  };
}

// ------------------------------------------------------------------ main ---

const server = http.createServer();
server.listen(PORT, '127.0.0.1');
await new Promise((resolve, reject) => {
  server.once('listening', resolve);
  server.once('error', reject);
}).catch((err) => die(`cannot listen on 127.0.0.1:${PORT}: ${err.message}`));

const { port } = server.address();
const issuer = `http://127.0.0.1:${port}`;
const provider = new Provider(issuer, buildConfig());
provider.use(offlineAccessMarker());
provider.use(loginGuard());
provider.on('backchannel.error', (_ctx, err, client) => process.stderr.write(`idp: back-channel logout to ${client?.backchannelLogoutUri} failed: ${err?.stack || err}\n`));
provider.on('server_error', (_ctx, err) => process.stderr.write(`idp: server_error: ${err.stack || err}\n`));
// Token endpoint statistics for tests (e.g. "each due refresh happens exactly once"):
// GET /__test/stats -> {"grants":{"refresh_token":{"success":N,"error":M},...}}.
const grants = {};
const countGrant = (outcome) => (ctx) => {
  const type = ctx.oidc?.params?.grant_type || 'unknown';
  grants[type] ??= { success: 0, error: 0 };
  grants[type][outcome] += 1;
};
provider.on('grant.success', countGrant('success'));
provider.on('grant.error', countGrant('error'));
const handle = provider.callback();
server.on('request', (req, res) => {
  if (req.method === 'GET' && req.url === '/__test/stats') {
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(JSON.stringify({ grants }));
    return;
  }
  handle(req, res);
});

process.stdout.write(`READY ${issuer}\n`);

let closing = false;
function shutdown(signal) {
  if (closing) return;
  closing = true;
  process.stderr.write(`idp: ${signal}, shutting down\n`);
  server.close(() => process.exit(0));
  server.closeAllConnections?.();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
