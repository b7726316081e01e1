// A real OpenID Connect provider on loopback for videoamt's tests: panva's oidc-provider with
// the accounts and clients of a JSON config, our own login form and no consent page.
//
//   node scripts/oidc-provider/provider.mjs CONFIG.json
//
// Prints exactly one line to stdout once it listens, {"issuer":"http://127.0.0.1:NNNNN"}
// (https:// with "tls" in the config), and logs everything else to stderr. Exits on SIGTERM/SIGINT and when its stdin, if a pipe,
// reaches its end, so a test that dies does not leave it running. See README.md.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';

// oidc-provider prints its notices with console.info, i.e. to stdout; stdout carries only the
// issuer line, so everything the console prints goes to stderr. This has to happen before
// oidc-provider is loaded (hence the dynamic import below).
console.log = console.error;
console.info = console.error;
console.debug = console.error;

const { default: Provider, errors } = await import('oidc-provider');

function fail(message) {
  process.stderr.write(`oidc-provider: ${message}\n`);
  process.exit(2);
}

// --- the config ---

if (process.argv.length !== 3) {
  fail('usage: node provider.mjs CONFIG.json');
}
let config;
try {
  config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
} catch (err) {
  fail(`cannot read the config ${process.argv[2]}: ${err.message}`);
}
const port = config.port ?? 0;
// The name the issuer goes by: `localhost` puts the provider on another site than an app on
// 127.0.0.1, as a real provider is, so SameSite cookies behave as they would there.
const issuerHost = config.issuer_host ?? '127.0.0.1';
if (!Number.isInteger(port) || port < 0 || port > 65535) fail('port must be an integer 0..65535');
const idTokenTtl = config.id_token_ttl_seconds ?? 3600;
if (!Number.isInteger(idTokenTtl) || idTokenTtl < 1) fail('id_token_ttl_seconds must be a positive integer');
if (!Array.isArray(config.clients) || config.clients.length === 0) fail('clients must be a non-empty array');
if (!Array.isArray(config.users)) fail('users must be an array');
// "tls": {"cert": PATH, "key": PATH} serves https with that certificate (PEM, its chain may
// follow it in the file) and key, as a provider behind a municipality's own CA would.
let tls;
if (config.tls !== undefined) {
  if (typeof config.tls?.cert !== 'string' || typeof config.tls?.key !== 'string') {
    fail('tls must be {"cert": PATH, "key": PATH}');
  }
  try {
    tls = { cert: fs.readFileSync(config.tls.cert), key: fs.readFileSync(config.tls.key) };
  } catch (err) {
    fail(`cannot read the TLS certificate or key: ${err.message}`);
  }
}

for (const u of config.users) {
  if (typeof u.login !== 'string' || typeof u.password !== 'string') {
    fail('every user needs a string login and password');
  }
  if (u.groups !== undefined && !(Array.isArray(u.groups) && u.groups.every((g) => typeof g === 'string'))) {
    fail(`groups of ${u.login} must be an array of strings`);
  }
}

// The subject is opaque and stable: derived from the login, so it does not change when the order
// of the users in the config does, and it is not the login itself.
const subjectOf = (login) => `user-${crypto.createHash('sha256').update(login, 'utf8').digest('hex').slice(0, 24)}`;
const accounts = new Map(config.users.map((u) => [subjectOf(u.login), u]));
const userByLogin = new Map(config.users.map((u) => [u.login, u]));

function passwordMatches(given, expected) {
  // Compares digests so the comparison takes the same time whatever the lengths.
  const a = crypto.createHash('sha256').update(given, 'utf8').digest();
  const b = crypto.createHash('sha256').update(expected, 'utf8').digest();
  return crypto.timingSafeEqual(a, b);
}

// Other client metadata in the config (e.g. application_type) goes to oidc-provider as it is.
const clients = config.clients.map((c) => ({
  grant_types: ['authorization_code'],
  response_types: ['code'],
  token_endpoint_auth_method: 'client_secret_basic',
  id_token_signed_response_alg: 'RS256',
  ...c,
}));

// --- HTML ---

const escapeHtml = (s) => String(s)
  .replaceAll('&', '&amp;')
  .replaceAll('<', '&lt;')
  .replaceAll('>', '&gt;')
  .replaceAll('"', '&quot;')
  .replaceAll("'", '&#39;');

const STYLE = 'body{font-family:sans-serif;max-width:28rem;margin:2rem auto;padding:0 1rem}'
  + 'label{display:block;margin-top:1rem}input{display:block;width:100%;padding:.4rem;box-sizing:border-box}'
  + 'button{margin-top:1.2rem;padding:.5rem 1.2rem}.fehler{color:#a00000;font-weight:bold}';

// `body` is HTML already; everything from outside must have been escaped by the caller.
function page(title, body) {
  return `<!DOCTYPE html>
<html lang="de">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<main>
${body}
</main>
</body>
</html>
`;
}

function loginPage(uid, { login = '', error } = {}) {
  const action = `/interaction/${encodeURIComponent(uid)}/login`;
  return page('Anmeldung – Verzeichnisdienst (Test)', `<h1>Anmeldung beim Verzeichnisdienst</h1>
${error ? `<p class="fehler" role="alert">${escapeHtml(error)}</p>\n` : ''}<form method="post" action="${escapeHtml(action)}" autocomplete="off">
<label for="login">Benutzername</label>
<input id="login" name="login" type="text" value="${escapeHtml(login)}" autofocus>
<label for="password">Passwort</label>
<input id="password" name="password" type="password">
<button id="anmelden" type="submit">Anmelden</button>
</form>`);
}

function errorPage(heading, detail) {
  return page('Fehler – Verzeichnisdienst (Test)', `<h1>${escapeHtml(heading)}</h1>
${detail ? `<p>${escapeHtml(detail)}</p>` : ''}`);
}

// oidc-provider hands `form` over as `<form id="op.logoutForm" …><input name="xsrf" …></form>`;
// the button goes inside it (and names it with `form=` as well) and sends logout=yes, which ends
// the whole provider session rather than only this client's part of it.
async function logoutSource(ctx, form) {
  const button = '<button id="abmelden" type="submit" form="op.logoutForm" name="logout" value="yes">Abmelden</button>';
  const withButton = form.includes('</form>') ? form.replace('</form>', `${button}</form>`) : `${form}${button}`;
  ctx.type = 'html';
  ctx.body = page('Abmelden – Verzeichnisdienst (Test)', `<h1>Möchten Sie sich beim Verzeichnisdienst abmelden?</h1>
${withButton}`);
}

async function postLogoutSuccessSource(ctx) {
  ctx.type = 'html';
  ctx.body = page('Abgemeldet – Verzeichnisdienst (Test)', '<h1>Abgemeldet.</h1>');
}

async function renderError(ctx, out, error) {
  process.stderr.write(`oidc-provider: error page: ${out.error}: ${out.error_description ?? ''}\n`);
  ctx.type = 'html';
  ctx.body = page('Fehler – Verzeichnisdienst (Test)', `<h1>Fehler</h1>
${Object.entries(out).filter(([, v]) => v !== undefined)
    .map(([k, v]) => `<p><strong>${escapeHtml(k)}</strong>: ${escapeHtml(v)}</p>`).join('\n')}`);
}

// --- the provider ---

// Made asynchronously on purpose: Node 20's generateKeyPairSync can deadlock when a garbage
// collection runs while it builds its result (the job's destructor waits for the mutex the job
// still holds); the tests saw that about one start in twenty.
const privateKey = await new Promise((resolve, reject) => {
  crypto.generateKeyPair('rsa', { modulusLength: 2048 }, (err, _publicKey, key) =>
    err ? reject(err) : resolve(key));
});
const signingKey = {
  ...privateKey.export({ format: 'jwk' }),
  kid: crypto.randomBytes(8).toString('hex'),
  alg: 'RS256',
  use: 'sig',
};

function providerConfiguration() {
  return {
    clients,
    jwks: { keys: [signingKey] },
    cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
    findAccount(ctx, sub) {
      const user = accounts.get(sub);
      if (!user) return undefined;
      return {
        accountId: sub,
        // oidc-provider keeps of these the claims the granted scopes (and the claims config
        // below) allow for each use (id_token, userinfo).
        async claims() {
          return {
            sub,
            preferred_username: user.login,
            ...(user.name !== undefined ? { name: user.name } : {}),
            ...(user.email !== undefined ? { email: user.email } : {}),
            groups: user.groups ?? [],
          };
        },
      };
    },
    claims: {
      openid: ['sub'],
      profile: ['preferred_username', 'name'],
      email: ['email'],
      groups: ['groups'],
    },
    scopes: ['openid', 'profile', 'email', 'groups'],
    // Puts the scope-requested claims in the ID token too, not only at userinfo.
    conformIdTokenClaims: false,
    responseTypes: ['code'],
    pkce: { required: () => true },
    clientAuthMethods: ['client_secret_basic', 'client_secret_post'],
    enabledJWA: { idTokenSigningAlgValues: ['RS256'] },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    features: {
      devInteractions: { enabled: false },
      rpInitiatedLogout: { enabled: true, logoutSource, postLogoutSuccessSource },
    },
    ttl: {
      AccessToken: 3600,
      AuthorizationCode: 60,
      IdToken: idTokenTtl,
      Interaction: 600,
      Session: 8 * 3600,
      Grant: 8 * 3600,
    },
    clientBasedCORS: () => false,
    renderError,
  };
}

// --- the interactions (login form, automatic consent) ---

function readForm(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > 64 * 1024) {
        reject(new Error('request body too large'));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(new URLSearchParams(Buffer.concat(chunks).toString('utf8'))));
    req.on('error', reject);
  });
}

function send(res, status, html) {
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    'content-length': Buffer.byteLength(html),
  });
  res.end(html);
}

// Grants the requested OIDC scopes and claims (and resource scopes, should there be any) at once.
async function grantConsent(provider, details, req, res) {
  const { prompt, params, session } = details;
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  const d = prompt.details;
  if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
  if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
  if (d.missingResourceScopes) {
    for (const [indicator, scopes] of Object.entries(d.missingResourceScopes)) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
  }
  const grantId = await grant.save();
  await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
}

async function handleInteraction(provider, req, res, uid, action) {
  let details;
  try {
    details = await provider.interactionDetails(req, res);
  } catch (err) {
    if (err instanceof errors.SessionNotFound) {
      send(res, 400, errorPage('Die Anmeldung ist abgelaufen.', 'Bitte beginnen Sie die Anmeldung erneut.'));
      return;
    }
    throw err;
  }
  if (details.uid !== uid) {
    send(res, 400, errorPage('Die Anmeldung ist abgelaufen.', 'Bitte beginnen Sie die Anmeldung erneut.'));
    return;
  }
  const promptName = details.prompt.name;

  if (action === undefined && req.method === 'GET') {
    if (promptName === 'login') {
      send(res, 200, loginPage(uid));
    } else if (promptName === 'consent') {
      await grantConsent(provider, details, req, res);
    } else {
      send(res, 400, errorPage('Unbekannter Schritt der Anmeldung.', promptName));
    }
    return;
  }

  if (action === 'login' && req.method === 'POST') {
    if (promptName !== 'login') {
      send(res, 400, errorPage('Unbekannter Schritt der Anmeldung.', promptName));
      return;
    }
    const form = await readForm(req);
    const login = form.get('login') ?? '';
    const password = form.get('password') ?? '';
    const user = userByLogin.get(login);
    const ok = user !== undefined && passwordMatches(password, user.password);
    if (!ok) {
      process.stderr.write(`oidc-provider: failed login for ${JSON.stringify(login)}\n`);
      send(res, 200, loginPage(uid, { login, error: 'Benutzername oder Passwort falsch.' }));
      return;
    }
    process.stderr.write(`oidc-provider: ${login} signed in\n`);
    await provider.interactionFinished(
      req,
      res,
      { login: { accountId: subjectOf(login) } },
      { mergeWithLastSubmission: false },
    );
    return;
  }

  res.writeHead(405, { allow: action === 'login' ? 'POST' : 'GET' });
  res.end();
}

// --- the server ---

// The issuer names the port, which is known only once the server listens; requests before that
// cannot arrive (nobody knows the port yet), but are refused anyway.
let provider;
let providerCallback;

function handle(req, res) {
  if (!providerCallback) {
    res.writeHead(503);
    res.end();
    return;
  }
  const { pathname } = new URL(req.url, 'http://127.0.0.1');
  const m = /^\/interaction\/([A-Za-z0-9_-]+)(?:\/(login))?$/.exec(pathname);
  if (!m) {
    providerCallback(req, res);
    return;
  }
  handleInteraction(provider, req, res, m[1], m[2]).catch((err) => {
    process.stderr.write(`oidc-provider: interaction failed: ${err.stack ?? err}\n`);
    if (!res.headersSent) send(res, 500, errorPage('Interner Fehler.'));
    else res.destroy();
  });
}

const server = tls ? https.createServer(tls, handle) : http.createServer(handle);
// A client that refuses the certificate (as the tests make videoamt do) is no failure here.
server.on('tlsClientError', (err) => {
  process.stderr.write(`oidc-provider: TLS handshake failed: ${err.message}\n`);
});

function shutdown(why) {
  process.stderr.write(`oidc-provider: stopping (${why})\n`);
  server.close();
  server.closeAllConnections();
  process.exit(0);
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));

// Stdin is watched when it is a pipe or a socket: its end means the test that started this is
// gone. /dev/null or a file would end at once, and reading a terminal from the background stops
// the process (SIGTTIN), so those are not watched.
try {
  const st = fs.fstatSync(0);
  if (st.isFIFO() || st.isSocket()) {
    process.stdin.on('end', () => shutdown('stdin closed'));
    process.stdin.on('close', () => shutdown('stdin closed'));
    process.stdin.on('error', () => shutdown('stdin failed'));
    process.stdin.resume();
  }
} catch {
  // no stdin at all: nothing to watch
}

server.on('error', (err) => fail(`cannot listen on 127.0.0.1:${port}: ${err.message}`));
server.listen(port, '127.0.0.1', () => {
  const issuer = `${tls ? 'https' : 'http'}://${issuerHost}:${server.address().port}`;
  provider = new Provider(issuer, providerConfiguration());
  for (const event of ['server_error', 'authorization.error', 'grant.error', 'end_session.error',
    'userinfo.error', 'discovery.error', 'jwks.error', 'introspection.error', 'revocation.error']) {
    provider.on(event, (ctx, err) => {
      process.stderr.write(`oidc-provider: ${event}: ${err?.message ?? err}${err?.error_description ? ` (${err.error_description})` : ''}\n`);
    });
  }
  providerCallback = provider.callback();
  // Writes to a pipe are synchronous on Linux, so the line is out when this returns.
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});
