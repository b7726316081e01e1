// Checks provider.mjs end to end with plain fetch, the way the Rust tests and a browser use it:
// discovery, the code flow with PKCE, a wrong password, the tokens' claims, userinfo, and
// RP-initiated logout after which the login form shows again.
//
//   node scripts/oidc-provider/selftest.mjs
//
// Exits 0 when everything holds, and prints what failed otherwise. OIDC_SELFTEST_VERBOSE=1 logs
// every request, its answer and the cookies set to stderr.

import { spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const VERBOSE = process.env.OIDC_SELFTEST_VERBOSE === '1';
const APP = 'http://127.0.0.1:45999'; // never listened on: the redirects are only read
const REDIRECT_URI = `${APP}/anmelden/verzeichnis/rueckkehr`;
const POST_LOGOUT_URI = `${APP}/anmelden`;
const CLIENT_ID = 'videoamt-musterstadt';
const CLIENT_SECRET = crypto.randomBytes(18).toString('base64url');
const ID_TOKEN_TTL = 120;
const USER = {
  login: 'm.mueller',
  password: 'Sommer 2024 <&>',
  name: 'Maria Müller',
  email: 'm@example.org',
  groups: ['videoamt-buergerbuero', 'videoamt-leitung'],
};

let checks = 0;
function check(cond, what) {
  if (!cond) throw new Error(what);
  checks += 1;
}

// --- a tiny cookie jar: name=value per cookie path, enough for one loopback host ---
const jar = new Map(); // "path\0name" -> { path, name, value }
function storeCookies(res) {
  for (const line of res.headers.getSetCookie()) {
    const [pair, ...attrs] = line.split(';').map((s) => s.trim());
    const eq = pair.indexOf('=');
    const name = pair.slice(0, eq);
    const value = pair.slice(eq + 1);
    let cookiePath = '/';
    let expired = false;
    for (const a of attrs) {
      const [k, v = ''] = a.split('=');
      if (k.toLowerCase() === 'path') cookiePath = v;
      if (k.toLowerCase() === 'expires' && Date.parse(v) <= Date.now()) expired = true;
      if (k.toLowerCase() === 'max-age' && Number(v) <= 0) expired = true;
    }
    const key = `${cookiePath}\0${name}`;
    if (expired || value === '') jar.delete(key);
    else jar.set(key, { path: cookiePath, name, value });
  }
}
function cookieHeader(url) {
  const { pathname } = new URL(url);
  return [...jar.values()]
    .filter((c) => pathname === c.path || pathname.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`))
    .map((c) => `${c.name}=${c.value}`)
    .join('; ');
}

async function request(url, { method = 'GET', form, headers = {} } = {}) {
  const h = { ...headers };
  const cookie = cookieHeader(url);
  if (cookie) h.cookie = cookie;
  let body;
  if (form) {
    body = new URLSearchParams(form).toString();
    h['content-type'] = 'application/x-www-form-urlencoded';
  }
  const res = await fetch(url, { method, headers: h, body, redirect: 'manual' });
  if (VERBOSE) {
    process.stderr.write(`${method} ${url} -> ${res.status} ${res.headers.get('location') ?? ''}\n`);
    for (const c of res.headers.getSetCookie()) process.stderr.write(`  set-cookie: ${c}\n`);
  }
  storeCookies(res);
  return res;
}

// Follows redirects on the provider until one leaves it (returned as a URL) or a page comes
// back (returned as { res, url, html }).
async function follow(issuer, res, url) {
  for (let hops = 0; hops < 10; hops += 1) {
    if (res.status < 300 || res.status >= 400) {
      return { res, url, html: await res.text() };
    }
    const next = new URL(res.headers.get('location'), url).href;
    await res.arrayBuffer();
    if (!next.startsWith(`${issuer}/`)) return new URL(next);
    url = next;
    res = await request(url);
  }
  throw new Error(`too many redirects, last ${url}`);
}

const b64url = (buf) => Buffer.from(buf).toString('base64url');
const decodeJwtPayload = (jwt) => JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString('utf8'));
const formAction = (html) => /<form[^>]*action="([^"]+)"/.exec(html)?.[1]?.replaceAll('&amp;', '&');
const hiddenInputs = (html) => Object.fromEntries(
  [...html.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)"/g)].map((m) => [m[1], m[2]]),
);

function startProvider() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'oidc-selftest-'));
  const configPath = path.join(dir, 'config.json');
  fs.writeFileSync(configPath, JSON.stringify({
    port: 0,
    id_token_ttl_seconds: ID_TOKEN_TTL,
    clients: [{
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      redirect_uris: [REDIRECT_URI],
      post_logout_redirect_uris: [POST_LOGOUT_URI],
    }],
    users: [USER, { login: 'k.klein', password: 'anders', name: 'Karl Klein', email: 'k@example.org', groups: [] }],
  }));
  const child = spawn(process.execPath, [path.join(here, 'provider.mjs'), configPath], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const stderr = [];
  child.stderr.on('data', (d) => stderr.push(d));
  const lines = createInterface({ input: child.stdout });
  const issuer = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('provider printed no issuer within 15 s')), 15000);
    lines.once('line', (line) => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(line).issuer);
      } catch {
        reject(new Error(`first stdout line is not JSON: ${line}`));
      }
    });
    child.once('exit', (code) => reject(new Error(`provider exited early (${code}): ${Buffer.concat(stderr)}`)));
  });
  const stdoutLines = [];
  lines.on('line', (l) => stdoutLines.push(l));
  return { child, issuer, stderr, stdoutLines, dir };
}

function pkce() {
  const verifier = b64url(crypto.randomBytes(32));
  const challenge = crypto.createHash('sha256').update(verifier).digest('base64url');
  return { verifier, challenge };
}

async function authorize(issuer, disco, scope = 'openid profile email groups') {
  const state = b64url(crypto.randomBytes(12));
  const nonce = b64url(crypto.randomBytes(12));
  const { verifier, challenge } = pkce();
  const url = new URL(disco.authorization_endpoint);
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: CLIENT_ID,
    redirect_uri: REDIRECT_URI,
    scope,
    state,
    nonce,
    code_challenge: challenge,
    code_challenge_method: 'S256',
  }).toString();
  const out = await follow(issuer, await request(url.href), url.href);
  return { out, state, nonce, verifier };
}

async function tokenExchange(disco, code, verifier, how) {
  const form = { grant_type: 'authorization_code', code, redirect_uri: REDIRECT_URI, code_verifier: verifier };
  const headers = { accept: 'application/json' };
  if (how === 'basic') {
    const enc = (s) => encodeURIComponent(s);
    headers.authorization = `Basic ${Buffer.from(`${enc(CLIENT_ID)}:${enc(CLIENT_SECRET)}`).toString('base64')}`;
  } else {
    Object.assign(form, { client_id: CLIENT_ID, client_secret: CLIENT_SECRET });
  }
  const res = await request(disco.token_endpoint, { method: 'POST', form, headers });
  const body = await res.json();
  check(res.status === 200, `token endpoint (${how}) answered ${res.status}: ${JSON.stringify(body)}`);
  return body;
}

function expectLoginForm(out, what) {
  check(!(out instanceof URL), `${what}: expected the login form, got a redirect to ${out}`);
  check(out.res.status === 200, `${what}: login form status ${out.res.status}`);
  check(out.html.includes('<title>Anmeldung – Verzeichnisdienst (Test)</title>'), `${what}: login form title missing`);
  for (const needle of ['name="login"', 'id="login"', 'name="password"', 'id="password"', 'id="anmelden"',
    '>Benutzername<', '>Passwort<', '>Anmelden<']) {
    check(out.html.includes(needle), `${what}: login form lacks ${needle}`);
  }
  const action = formAction(out.html);
  check(/^\/interaction\/[A-Za-z0-9_-]+\/login$/.test(action ?? ''), `${what}: odd form action ${action}`);
  return new URL(action, out.url).href;
}

async function run(issuer) {
  check(/^http:\/\/127\.0\.0\.1:\d+$/.test(issuer), `issuer ${issuer}`);

  // Discovery
  const discoRes = await request(`${issuer}/.well-known/openid-configuration`);
  check(discoRes.status === 200, `discovery status ${discoRes.status}`);
  const disco = await discoRes.json();
  check(disco.issuer === issuer, `discovery issuer ${disco.issuer}`);
  for (const k of ['authorization_endpoint', 'token_endpoint', 'userinfo_endpoint', 'jwks_uri', 'end_session_endpoint']) {
    check(typeof disco[k] === 'string' && disco[k].startsWith(`${issuer}/`), `discovery lacks ${k}`);
  }
  check(disco.code_challenge_methods_supported?.includes('S256'), 'S256 not supported');
  for (const m of ['client_secret_basic', 'client_secret_post']) {
    check(disco.token_endpoint_auth_methods_supported?.includes(m), `token auth ${m} not listed`);
  }
  for (const s of ['openid', 'profile', 'email', 'groups']) {
    check(disco.scopes_supported?.includes(s), `scope ${s} not listed`);
  }
  const jwks = await (await request(disco.jwks_uri)).json();
  check(jwks.keys?.length === 1 && jwks.keys[0].kty === 'RSA' && jwks.keys[0].alg === 'RS256' && !jwks.keys[0].d,
    `jwks ${JSON.stringify(jwks)}`);

  // Without PKCE the request is refused (back to the client with an error).
  {
    const url = new URL(disco.authorization_endpoint);
    url.search = new URLSearchParams({
      response_type: 'code', client_id: CLIENT_ID, redirect_uri: REDIRECT_URI, scope: 'openid', state: 'x',
    }).toString();
    const out = await follow(issuer, await request(url.href), url.href);
    check(out instanceof URL && out.searchParams.get('error') === 'invalid_request',
      `authorization without PKCE was not refused: ${out instanceof URL ? out : out.res.status}`);
  }

  // Code flow: the login form, a wrong password, then the right one.
  const first = await authorize(issuer, disco);
  const loginUrl = expectLoginForm(first.out, 'first authorization');

  const wrong = await follow(issuer, await request(loginUrl, {
    method: 'POST', form: { login: USER.login, password: 'falsch' },
  }), loginUrl);
  check(!(wrong instanceof URL) && wrong.res.status === 200, 'a wrong password did not re-show the form with 200');
  check(wrong.html.includes('Benutzername oder Passwort falsch.'), 'a wrong password shows no error message');
  check(wrong.html.includes(`value="${USER.login}"`), 'the form does not keep the login after a wrong password');

  const done = await follow(issuer, await request(loginUrl, {
    method: 'POST', form: { login: USER.login, password: USER.password },
  }), loginUrl);
  check(done instanceof URL, `login did not end at the redirect_uri: ${done.res?.status} ${done.html?.slice(0, 300)}`);
  check(`${done.origin}${done.pathname}` === REDIRECT_URI, `redirected to ${done}`);
  check(done.searchParams.get('state') === first.state, 'state does not match');
  check(done.searchParams.get('iss') === issuer, `iss parameter ${done.searchParams.get('iss')}`);
  const code = done.searchParams.get('code');
  check(code, `no code in ${done}`);

  // Token exchange with client_secret_basic.
  const tokens = await tokenExchange(disco, code, first.verifier, 'basic');
  check(tokens.token_type?.toLowerCase() === 'bearer' && tokens.access_token && tokens.id_token, 'token response fields');
  const claims = decodeJwtPayload(tokens.id_token);
  const header = JSON.parse(Buffer.from(tokens.id_token.split('.')[0], 'base64url').toString('utf8'));
  check(header.alg === 'RS256' && header.kid === jwks.keys[0].kid, `id token header ${JSON.stringify(header)}`);
  check(claims.iss === issuer && claims.aud === CLIENT_ID, `iss/aud ${claims.iss} ${claims.aud}`);
  check(claims.nonce === first.nonce, 'nonce does not match');
  check(claims.preferred_username === USER.login, `preferred_username ${claims.preferred_username}`);
  check(claims.name === USER.name && claims.email === USER.email, `name/email ${claims.name} ${claims.email}`);
  check(JSON.stringify(claims.groups) === JSON.stringify(USER.groups), `groups ${JSON.stringify(claims.groups)}`);
  check(claims.exp - claims.iat === ID_TOKEN_TTL, `exp - iat = ${claims.exp - claims.iat}`);
  check(/^user-[0-9a-f]+$/.test(claims.sub) && claims.sub !== USER.login, `sub ${claims.sub}`);

  // The ID token's signature verifies with the published key.
  const [h64, p64, s64] = tokens.id_token.split('.');
  const key = crypto.createPublicKey({ key: jwks.keys[0], format: 'jwk' });
  check(crypto.verify('RSA-SHA256', Buffer.from(`${h64}.${p64}`), key, Buffer.from(s64, 'base64url')),
    'ID token signature does not verify');

  // Userinfo
  const uiRes = await request(disco.userinfo_endpoint, { headers: { authorization: `Bearer ${tokens.access_token}` } });
  check(uiRes.status === 200, `userinfo status ${uiRes.status}`);
  const ui = await uiRes.json();
  check(ui.sub === claims.sub, 'userinfo sub differs');
  check(ui.preferred_username === USER.login, `userinfo preferred_username ${ui.preferred_username}`);
  check(JSON.stringify(ui.groups) === JSON.stringify(USER.groups), `userinfo groups ${JSON.stringify(ui.groups)}`);

  // The code is single-use, and using it again revokes the tokens issued for it.
  {
    const res = await request(disco.token_endpoint, {
      method: 'POST',
      form: {
        grant_type: 'authorization_code', code, redirect_uri: REDIRECT_URI, code_verifier: first.verifier,
        client_id: CLIENT_ID, client_secret: CLIENT_SECRET,
      },
    });
    check(res.status === 400, `a used code was accepted again (${res.status})`);
    await res.arrayBuffer();
    const again = await request(disco.userinfo_endpoint, { headers: { authorization: `Bearer ${tokens.access_token}` } });
    check(again.status === 401, `the access token still works after the code was replayed (${again.status})`);
    await again.arrayBuffer();
  }

  // While the provider session lasts, a new request needs no login; client_secret_post works.
  const second = await authorize(issuer, disco, 'openid profile');
  check(second.out instanceof URL && second.out.searchParams.get('code'),
    `second authorization showed a page instead of a code: ${second.out.html?.slice(0, 200)}`);
  const tokens2 = await tokenExchange(disco, second.out.searchParams.get('code'), second.verifier, 'post');
  const claims2 = decodeJwtPayload(tokens2.id_token);
  check(claims2.sub === claims.sub && claims2.preferred_username === USER.login, 'second login claims');
  check(claims2.groups === undefined, 'groups came without the groups scope');

  // RP-initiated logout with client_id and post_logout_redirect_uri, no id_token_hint.
  const logoutUrl = new URL(disco.end_session_endpoint);
  logoutUrl.search = new URLSearchParams({
    client_id: CLIENT_ID, post_logout_redirect_uri: POST_LOGOUT_URI, state: 'nach-abmelden',
  }).toString();
  const confirm = await follow(issuer, await request(logoutUrl.href), logoutUrl.href);
  check(!(confirm instanceof URL) && confirm.res.status === 200, 'logout did not show the confirm page');
  check(confirm.html.includes('Möchten Sie sich beim Verzeichnisdienst abmelden?'), 'logout question missing');
  check(/<button id="abmelden"[^>]*>Abmelden<\/button>/.test(confirm.html), 'logout button #abmelden missing');
  const confirmAction = new URL(formAction(confirm.html), confirm.url).href;
  const xsrf = hiddenInputs(confirm.html).xsrf;
  check(xsrf, 'logout form has no xsrf');
  const afterLogout = await follow(issuer, await request(confirmAction, {
    method: 'POST', form: { xsrf, logout: 'yes' },
  }), confirmAction);
  check(afterLogout instanceof URL, `logout did not redirect back: ${afterLogout.res?.status}`);
  check(`${afterLogout.origin}${afterLogout.pathname}` === POST_LOGOUT_URI, `logout went to ${afterLogout}`);
  check(afterLogout.searchParams.get('state') === 'nach-abmelden', 'logout state not passed back');

  // The provider session is gone: the login form again.
  const third = await authorize(issuer, disco);
  expectLoginForm(third.out, 'authorization after logout');

  // Without a post_logout_redirect_uri the German success page shows.
  {
    const url = `${disco.end_session_endpoint}?client_id=${CLIENT_ID}`;
    const page = await follow(issuer, await request(url), url);
    // Not signed in any more: oidc-provider answers with a self-submitting form.
    check(!(page instanceof URL) && page.res.status === 200, 'logout when signed out');
    const action = new URL(formAction(page.html), page.url).href;
    const ok = await follow(issuer, await request(action, { method: 'POST', form: hiddenInputs(page.html) }), action);
    check(!(ok instanceof URL) && ok.html.includes('Abgemeldet.'), 'no "Abgemeldet." page');
  }
}

const { child, issuer: issuerPromise, stderr, stdoutLines, dir } = startProvider();
let failure;
try {
  const issuer = await issuerPromise;
  await run(issuer);
  check(stdoutLines.length === 1, `provider wrote more to stdout: ${stdoutLines.join(' | ')}`);
  // Closing stdin stops it.
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  child.stdin.end();
  let timer;
  const result = await Promise.race([exited, new Promise((r) => { timer = setTimeout(() => r('timeout'), 5000); })]);
  clearTimeout(timer);
  check(result !== 'timeout' && result.code === 0, `closing stdin did not stop the provider: ${JSON.stringify(result)}`);
  process.stdout.write(`oidc-provider selftest: ${issuer}: ${checks} checks passed\n`);
} catch (err) {
  failure = err;
} finally {
  if (child.exitCode === null) child.kill('SIGTERM');
  fs.rmSync(dir, { recursive: true, force: true });
}
if (failure) {
  process.stdout.write(`oidc-provider selftest FAILED: ${failure.message}\n--- provider stderr ---\n${Buffer.concat(stderr)}\n`);
  process.exit(1);
}
