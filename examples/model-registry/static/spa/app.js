// The single-page app pattern: authorization code + PKCE in the page, tokens in memory only.
//
// `tokens` below is the only place the access and refresh tokens ever live: a variable of this
// module (not a global, not storage, not a cookie). Reloading the page loses them.
// The PKCE verifier and `state` sit in sessionStorage only while the browser is at the
// authorization server; they are removed before anything else runs on return.

const CLIENT_ID = 'spa';
const REDIRECT_URI = `${location.origin}/app/spa/`;
const PENDING = 'authz-spa-pending';

/** @type {{access: string, refresh: string | null} | null} */
let tokens = null;
let subject = null;
let metadata = null;

const $ = (id) => document.getElementById(id);

// First thing on return from the authorization server: take the pending sign-in out of
// storage and the code out of the address bar (and so out of history and Referer).
const returned = new URLSearchParams(location.search);
const isReturn = returned.has('code') || returned.has('error') || returned.has('state');
let pending = null;
if (isReturn) {
  const saved = sessionStorage.getItem(PENDING);
  sessionStorage.removeItem(PENDING);
  history.replaceState(null, '', location.pathname);
  try {
    pending = saved ? JSON.parse(saved) : null;
  } catch {
    pending = null;
  }
} else {
  // A sign-in abandoned at the login page leaves nothing behind either.
  sessionStorage.removeItem(PENDING);
}

function render() {
  const signedIn = tokens !== null;
  $('status').textContent = signedIn
    ? `Signed in as ${subject}. Tokens are in this page's memory only.`
    : 'Not signed in (no token in memory).';
  $('signin').disabled = signedIn || metadata === null;
  $('call-api').disabled = !signedIn;
  $('refresh').disabled = !signedIn;
  $('signout').disabled = !signedIn;
}

function showError(message) {
  $('error').textContent = message;
}

function base64url(bytes) {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function randomString(bytes) {
  return base64url(crypto.getRandomValues(new Uint8Array(bytes)));
}

async function s256(verifier) {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier));
  return base64url(new Uint8Array(digest));
}

async function signIn() {
  showError('');
  if (!window.isSecureContext || !crypto.subtle) {
    showError('WebCrypto needs a secure context (https, or http on loopback).');
    return;
  }
  const verifier = randomString(32);
  const state = randomString(32);
  const challenge = await s256(verifier);
  sessionStorage.setItem(PENDING, JSON.stringify({ verifier, state }));
  const url = new URL(metadata.authorization_endpoint);
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: CLIENT_ID,
    redirect_uri: REDIRECT_URI,
    state,
    code_challenge: challenge,
    code_challenge_method: 'S256',
  }).toString();
  location.assign(url.toString());
}

/** A form POST to an endpoint of the authorization server, as the public client. */
function post(endpoint, params) {
  return fetch(endpoint, {
    method: 'POST',
    body: new URLSearchParams({ ...params, client_id: CLIENT_ID }),
    credentials: 'omit',
    cache: 'no-store',
  });
}

async function tokenRequest(params) {
  const response = await post(metadata.token_endpoint, params);
  const body = await response.json().catch(() => ({}));
  if (!response.ok || typeof body.access_token !== 'string') {
    // The OAuth error code only; the request carried a code or a token.
    throw new Error(`the token endpoint refused: ${body.error || `HTTP ${response.status}`}`);
  }
  return { access: body.access_token, refresh: body.refresh_token || null, expiresIn: body.expires_in };
}

async function me() {
  const response = await fetch('/me', {
    headers: { Authorization: `Bearer ${tokens.access}` },
    credentials: 'omit',
    cache: 'no-store',
  });
  const body = await response.json().catch(() => null);
  return { status: response.status, body };
}

async function finishSignIn() {
  if (pending === null || returned.get('state') !== pending.state) {
    throw new Error('this sign-in response does not belong to a sign-in started here (state); sign in again');
  }
  if (returned.get('iss') !== metadata.issuer) {
    throw new Error('the sign-in response came from an unexpected authorization server (iss)');
  }
  if (returned.has('error')) {
    throw new Error(`the authorization server did not sign you in: ${returned.get('error')}`);
  }
  const code = returned.get('code');
  if (!code) throw new Error('the sign-in response has no code');
  const { verifier } = pending;
  pending = null;
  const t = await tokenRequest({
    grant_type: 'authorization_code',
    code,
    redirect_uri: REDIRECT_URI,
    code_verifier: verifier,
  });
  tokens = { access: t.access, refresh: t.refresh };
  const who = await me();
  if (who.status !== 200 || !who.body) {
    tokens = null;
    throw new Error(`the API refused the new access token (HTTP ${who.status})`);
  }
  subject = who.body.subject;
  $('result').textContent = `Signed in (access token valid ${t.expiresIn} s).`;
}

async function callApi() {
  showError('');
  if (tokens === null) {
    $('result').textContent = 'Not signed in: there is no access token in memory.';
    return;
  }
  const { status, body } = await me();
  $('result').textContent = `GET /me → ${status}\n${JSON.stringify(body, null, 2)}`;
}

async function refresh() {
  showError('');
  if (tokens === null || tokens.refresh === null) return;
  try {
    const t = await tokenRequest({ grant_type: 'refresh_token', refresh_token: tokens.refresh });
    // Rotation: the old refresh token is spent; keep the new one.
    tokens = { access: t.access, refresh: t.refresh };
    $('result').textContent =
      `Refreshed: a new access token (valid ${t.expiresIn} s) and a new refresh token; the previous refresh token is spent.`;
  } catch (e) {
    // The grant is gone (revoked, expired, reused): so are the tokens.
    tokens = null;
    showError(`${e.message}; sign in again`);
  }
  render();
}

async function signOut() {
  showError('');
  const refreshToken = tokens && tokens.refresh;
  // Memory first: whatever the network does, this page holds no token any more.
  tokens = null;
  subject = null;
  render();
  let revoked = false;
  try {
    if (refreshToken) {
      const r = await post(metadata.revocation_endpoint, { token: refreshToken, token_type_hint: 'refresh_token' });
      revoked = r.ok;
    }
    // End the login at the authorization server too, or "Sign in" would not ask again.
    const logout = document.body.dataset.logoutUrl;
    if (logout) await fetch(logout, { method: 'POST', credentials: 'include', cache: 'no-store' });
  } catch {
    revoked = false;
  }
  $('result').textContent = revoked
    ? 'Signed out: the refresh token is revoked and the tokens are gone from memory.'
    : 'Signed out here, but the refresh token could not be revoked.';
}

function guard(action) {
  return () => action().catch((e) => showError(e.message)).finally(render);
}

$('signin').addEventListener('click', guard(signIn));
$('call-api').addEventListener('click', guard(callApi));
$('refresh').addEventListener('click', guard(refresh));
$('signout').addEventListener('click', guard(signOut));

async function main() {
  const response = await fetch('/.well-known/oauth-authorization-server', { cache: 'no-store' });
  if (!response.ok) throw new Error(`authorization server metadata: HTTP ${response.status}`);
  metadata = await response.json();
  if (isReturn) await finishSignIn();
}

main()
  .catch((e) => showError(e.message))
  .finally(() => {
    render();
    document.body.dataset.ready = 'true';
  });
