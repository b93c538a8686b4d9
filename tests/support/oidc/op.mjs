// A small but real OpenID Provider (panva/oidc-provider) for seatbridge's
// integration tests. Started by the Rust tests as `node tests/support/oidc/op.mjs`;
// see README.md in this directory for the full contract. In short:
//
//   env  OP_PORT (0 = any free port), OP_REDIRECT_URIS, OP_POST_LOGOUT_REDIRECT_URIS
//        (both comma-separated), OP_AUDIENCE (default "seatbridge-api").
//   stdout  exactly one line, `{"issuer":"http://127.0.0.1:PORT"}`, once listening.
//           Everything else goes to stderr.
//   exits   when stdin closes (so a test that dies never leaks us) or on SIGTERM/SIGINT.
//           The spawner must therefore give us a pipe as stdin and keep its end open
//           (/dev/null closes at once). OP_IGNORE_STDIN=1 disables this for manual runs.
//
// Login (built-in devInteractions, consent is skipped for our first-party client):
//   1. GET  {issuer}/auth?client_id=seatbridge&response_type=code&scope=openid ...
//        -> 303 Location: /interaction/<uid>   (sets cookie `_interaction`, path /interaction/<uid>,
//                                               and `_interaction_resume`, path /auth/<uid>)
//   2. GET  /interaction/<uid> -> 200 HTML containing exactly one form:
//        <form autocomplete="off" action="http://127.0.0.1:PORT/interaction/<uid>" method="post">
//          <input type="hidden" name="prompt" value="login"/>
//          <input required type="text" name="login" ...>
//          <input required type="password" name="password" ...>
//      The action is absolute; <uid> is the last path segment of the step-1 Location.
//   3. POST that action, application/x-www-form-urlencoded:
//        prompt=login&login=<account id>&password=<anything>
//      `prompt=login` is REQUIRED (without it the OP answers 501 "not implemented").
//        -> 303 Location: http://127.0.0.1:PORT/auth/<uid>
//   4. GET  /auth/<uid> -> 303 Location: <redirect_uri>?code=...&state=...&iss=...
//      No consent page: loadExistingGrant below grants whatever was asked.
//
// Logout (RP-initiated): GET {end_session_endpoint}?id_token_hint=..&post_logout_redirect_uri=..&state=..
//   -> 303 straight to post_logout_redirect_uri?state=.. (the confirmation form is submitted
//   on the caller's behalf, see autoConfirmLogout).

import * as crypto from 'node:crypto';
import * as http from 'node:http';

import Provider, { errors } from 'oidc-provider';
import * as jose from 'jose';

// oidc-provider prints its "you SHOULD change ..." notices with console.info, i.e. on
// stdout. stdout belongs to the single ready line the Rust harness parses.
console.log = console.error.bind(console);
console.info = console.error.bind(console);

const env = process.env;
const PORT = Number.parseInt(env.OP_PORT ?? '0', 10);
const HOST = '127.0.0.1';
const list = (v) => (v ?? '').split(',').map((s) => s.trim()).filter(Boolean);
const REDIRECT_URIS = list(env.OP_REDIRECT_URIS);
const POST_LOGOUT_REDIRECT_URIS = list(env.OP_POST_LOGOUT_REDIRECT_URIS);
const AUDIENCE = env.OP_AUDIENCE || 'seatbridge-api';
// Resource indicators must be absolute URIs while the audience the tests want is a bare
// name, so the (never sent by the client) indicator is only an internal handle.
const RESOURCE = URL.canParse(AUDIENCE) ? AUDIENCE : `urn:seatbridge:resource:${AUDIENCE}`;
const SCOPE = 'openid profile email roles';

const CLIENT_ID = 'seatbridge';
const CLIENT_SECRET = 'seatbridge-test-secret';

const log = (...args) => console.error('[test-op]', ...args);

if (REDIRECT_URIS.length === 0) {
  log('OP_REDIRECT_URIS is empty; the client needs at least one redirect URI');
  process.exit(2);
}

// ---------------------------------------------------------------------------
// Keys. keys[0] is the provider's own signing key (ID tokens, JWT access tokens);
// /test/rotate appends, and the last entry is what /test/sign calls "current".
// oidc-provider's keystore is fixed at construction, so the JWKS endpoint is served
// by us (see testControl) to be able to publish rotated keys too.

function newRsaKey() {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const kid = crypto.randomUUID();
  const meta = { kid, alg: 'RS256', use: 'sig' };
  return {
    kid,
    privateKey,
    privateJwk: { ...privateKey.export({ format: 'jwk' }), ...meta },
    publicJwk: { ...publicKey.export({ format: 'jwk' }), ...meta },
  };
}

const keys = [newRsaKey()];
let foreignKey; // created on first use; never published anywhere

const currentKey = () => keys.at(-1);
const keyByKid = (kid) => keys.find((k) => k.kid === kid) ?? keys[0];
const foreign = () => (foreignKey ??= newRsaKey()).privateKey;

async function sign(payload, privateKey, header) {
  return new jose.SignJWT(payload).setProtectedHeader({ alg: 'RS256', ...header }).sign(privateKey);
}

// ---------------------------------------------------------------------------
// Accounts. Any login is accepted; the well-known ones carry roles.

const ACCOUNTS = {
  'operator@example.test': { name: 'Olivia Operator', roles: ['seatbridge-operator'] },
  'admin-acme@example.test': { name: 'Alex Acme', roles: ['seatbridge-tenant-admin:acme'] },
  'admin-multi@example.test': {
    name: 'Max Multi',
    roles: ['seatbridge-tenant-admin:acme', 'seatbridge-tenant-admin:globex'],
  },
  'nobody@example.test': { name: 'Nora Nobody', roles: [] },
};

function profileOf(accountId) {
  const known = ACCOUNTS[accountId];
  return {
    sub: accountId,
    email: accountId,
    email_verified: true,
    name: known?.name ?? accountId,
    roles: known?.roles ?? [],
  };
}

// ---------------------------------------------------------------------------
// Provider configuration.

function configuration() {
  return {
    clients: [{
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: REDIRECT_URIS,
      post_logout_redirect_uris: POST_LOGOUT_REDIRECT_URIS,
      id_token_signed_response_alg: 'RS256',
    }],
    jwks: { keys: [keys[0].privateJwk] },
    cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },

    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name'],
      roles: ['roles'],
    },
    // By default scope-derived claims go to userinfo only whenever an access token is
    // issued; the RP under test reads them from the ID token.
    conformIdTokenClaims: false,

    async findAccount(ctx, id) {
      return { accountId: id, claims: async () => profileOf(id) };
    },

    // First-party client: never show a consent page. Extend (or create) the grant with
    // everything the current request asks for, so the consent prompt finds nothing missing.
    async loadExistingGrant(ctx) {
      const { oidc } = ctx;
      const grantId = oidc.result?.consent?.grantId || oidc.session.grantIdFor(oidc.client.clientId);
      const grant = (grantId && await oidc.provider.Grant.find(grantId))
        || new oidc.provider.Grant({ clientId: oidc.client.clientId, accountId: oidc.session.accountId });
      grant.addOIDCScope([...oidc.requestParamOIDCScopes].join(' '));
      grant.addOIDCClaims([...oidc.requestParamClaims]);
      for (const indicator of Object.keys(oidc.resourceServers)) {
        grant.addResourceScope(indicator, [...oidc.requestParamScopes].join(' '));
      }
      await grant.save();
      return grant;
    },

    extraTokenClaims(ctx, token) {
      if (!token.accountId) return undefined;
      const { roles, email } = profileOf(token.accountId);
      return { roles, email };
    },

    // Issue a refresh token whenever the client may use one (no offline_access dance).
    issueRefreshToken: (ctx, client) => client.grantTypeAllowed('refresh_token'),

    pkce: { required: () => true },

    features: {
      devInteractions: { enabled: true },
      rpInitiatedLogout: { enabled: true },
      resourceIndicators: {
        enabled: true,
        // The RP does not send `resource`; default it so access tokens are JWTs for us.
        defaultResource: (ctx, client, oneOf) => (oneOf ? [oneOf].flat()[0] : RESOURCE),
        useGrantedResource: () => true,
        getResourceServerInfo(ctx, indicator) {
          if (indicator !== RESOURCE) throw new errors.InvalidTarget();
          return {
            scope: SCOPE,
            audience: AUDIENCE,
            accessTokenFormat: 'jwt',
            accessTokenTTL: 3600,
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },

    ttl: {
      AccessToken: 3600,
      AuthorizationCode: 60,
      IdToken: 3600,
      Interaction: 3600,
      Session: 3600,
      Grant: 3600,
      RefreshToken: 24 * 3600,
    },

    // Plain, greppable error page (the default one loads web fonts and logs a notice).
    renderError(ctx, out) {
      ctx.type = 'text';
      ctx.body = Object.entries(out).map(([k, v]) => `${k}: ${v}`).join('\n');
    },
  };
}

// ---------------------------------------------------------------------------
// Test-control routes and response rewriting, mounted in front of the provider.

const TAMPER = {
  expired: (c) => {
    const shift = c.exp - Math.floor(Date.now() / 1000) + 3600;
    return { ...c, exp: c.exp - shift, iat: c.iat - shift };
  },
  wrong_aud: (c) => ({ ...c, aud: 'someone-else' }),
  no_nonce: ({ nonce, ...c }) => c,
  bad_nonce: (c) => ({ ...c, nonce: 'not-the-one' }),
  wrong_iss: (c) => ({ ...c, iss: 'http://evil.example' }),
  forged: (c) => c,
};
let pendingTamper; // mode for the next successful token response carrying an id_token

async function tamperIdToken(idToken, mode) {
  const header = jose.decodeProtectedHeader(idToken);
  const claims = TAMPER[mode](jose.decodeJwt(idToken));
  const key = mode === 'forged' ? foreign() : keyByKid(header.kid).privateKey;
  return sign(claims, key, { kid: header.kid, ...(header.typ && { typ: header.typ }) });
}

async function readJson(ctx) {
  const chunks = [];
  for await (const chunk of ctx.req) chunks.push(chunk);
  const text = Buffer.concat(chunks).toString('utf8');
  if (!text) return {};
  try {
    return JSON.parse(text);
  } catch {
    ctx.throw(400, 'body must be JSON');
  }
}

function testControl() {
  return async (ctx, next) => {
    const route = `${ctx.method} ${ctx.path}`;

    if (route === 'POST /test/sign') {
      const { claims, key = 'current', header } = await readJson(ctx);
      if (!claims || typeof claims !== 'object') ctx.throw(400, '`claims` object required');
      if (key !== 'current' && key !== 'foreign') ctx.throw(400, '`key` must be current|foreign');
      const { kid, privateKey } = currentKey();
      const token = await sign(claims, key === 'foreign' ? foreign() : privateKey, { kid, typ: 'JWT', ...header });
      ctx.body = { token };
      return;
    }

    if (route === 'POST /test/rotate') {
      const key = newRsaKey();
      keys.push(key);
      log('rotated signing key, new kid', key.kid);
      ctx.body = { kid: key.kid };
      return;
    }

    if (route === 'POST /test/tamper-next-id-token') {
      const { mode } = await readJson(ctx);
      if (!Object.hasOwn(TAMPER, mode)) ctx.throw(400, `mode must be one of ${Object.keys(TAMPER).join('|')}`);
      pendingTamper = mode;
      ctx.status = 204;
      return;
    }

    // Serve the JWKS ourselves so keys added by /test/rotate are published; newest first.
    if (route === 'GET /jwks') {
      ctx.set('cache-control', 'no-store');
      ctx.type = 'application/jwk-set+json; charset=utf-8';
      ctx.body = { keys: keys.map((k) => k.publicJwk).reverse() };
      return;
    }

    await next();

    if (route === 'POST /token' && pendingTamper && ctx.status === 200 && ctx.body?.id_token) {
      const mode = pendingTamper;
      pendingTamper = undefined;
      ctx.body = { ...ctx.body, id_token: await tamperIdToken(ctx.body.id_token, mode) };
      log('tampered id_token:', mode);
    }

    if (route === 'GET /session/end' && ctx.status === 200) {
      await autoConfirmLogout(ctx);
    }
  };
}

// oidc-provider always answers the end_session request with an HTML form that has to be
// POSTed back (xsrf-bound to the session cookie). Submit it on the caller's behalf, through
// the real HTTP endpoint, and hand back the resulting redirect and cookies, so a plain HTTP
// client (no JavaScript, no form parsing) gets `303 -> post_logout_redirect_uri`.
async function autoConfirmLogout(ctx) {
  const html = String(ctx.body);
  const action = html.match(/<form[^>]*action="([^"]+)"/)?.[1];
  const xsrf = html.match(/name="xsrf" value="([^"]+)"/)?.[1];
  if (!action || !xsrf) return;

  const setCookies = [ctx.response.get('set-cookie') || []].flat();
  const jar = new Map((ctx.get('cookie') || '').split(/;\s*/).filter(Boolean).map((c) => c.split(/=(.*)/s, 2)));
  for (const c of setCookies) {
    const [name, value] = c.split(';', 1)[0].split(/=(.*)/s, 2);
    jar.set(name, value);
  }

  const res = await fetch(action.replaceAll('&amp;', '&'), {
    method: 'POST',
    redirect: 'manual',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      cookie: [...jar].map(([n, v]) => `${n}=${v}`).join('; '),
    },
    body: new URLSearchParams({ xsrf, logout: 'yes' }),
  });
  const location = res.headers.get('location');
  if (res.status !== 303 || !location) {
    log('logout auto-confirm failed with', res.status, await res.text());
    return;
  }

  // The confirm step clears the session cookies the first step may have just set; send
  // only the final value of each cookie so no client has to rely on header order.
  const confirmCookies = res.headers.getSetCookie();
  const confirmNames = new Set(confirmCookies.map((c) => c.split('=', 1)[0]));
  ctx.set('set-cookie', [...setCookies.filter((c) => !confirmNames.has(c.split('=', 1)[0])), ...confirmCookies]);
  ctx.status = 303;
  ctx.redirect(location);
  ctx.body = `Redirecting to ${location}`;
}

// ---------------------------------------------------------------------------
// Startup. The issuer needs the real port, so bind first, then build the provider.

const server = http.createServer();
server.listen(PORT, HOST, () => {
  const issuer = `http://${HOST}:${server.address().port}`;
  const provider = new Provider(issuer, configuration());
  provider.use(testControl());

  for (const event of ['server_error', 'authorization.error', 'grant.error', 'end_session.error', 'jwks.error']) {
    provider.on(event, (ctx, err) => log(event, err?.name, err?.message, err?.error_description ?? ''));
  }

  server.on('request', provider.callback());
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
  log('listening', issuer, 'audience', AUDIENCE);
});

server.on('error', (err) => {
  log('cannot listen:', err.message);
  process.exit(1);
});

const shutdown = () => process.exit(0);
if (env.OP_IGNORE_STDIN !== '1') {
  process.stdin.on('end', shutdown);
  process.stdin.on('close', shutdown);
  process.stdin.resume();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
