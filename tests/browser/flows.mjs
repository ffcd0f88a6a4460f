// The two sign-in pages of the model registry (/app/web/ and /app/spa/), and its API reference
// page (/docs, rendered from /openapi.json), in a real browser:
// Debian's Chromium driven by playwright-core. Run by tests/tests/it/browser.rs:
//
//   node flows.mjs <registry url> <user> <password>
//
// For each pattern: sign in on the login page, call the API (the /me JSON names the user),
// refresh, call again, sign out, and see the API call refused or impossible. After every step,
// no token is in localStorage, sessionStorage, document.cookie or the page. The API reference
// page shows the operations with their permissions and security, with no console error or CSP
// violation. Prints one line
// per check (never a token or the password); exits 1 on the first failure of a pattern.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const [base, user, password] = process.argv.slice(2);
if (!base || !user || !password) {
  console.error('usage: node flows.mjs <registry url> <user> <password>');
  process.exit(2);
}
// A hard stop below the Rust test's own (120 s).
setTimeout(() => {
  console.log('FAIL: the browser flows took longer than 100 s');
  process.exit(1);
}, 100_000).unref();

const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const JWT = /eyJ[\w-]+\.[\w-]+\.[\w-]+/;

function check(condition, what) {
  if (!condition) throw new Error(what);
  console.log(`  ok  ${what}`);
}

/** A fresh browser profile (its own user-data dir) for `fn`. */
async function inFreshBrowser(name, fn) {
  const dir = mkdtempSync(join(tmpdir(), 'authz-chromium-'));
  console.log(`${name}:`);
  const context = await chromium.launchPersistentContext(dir, {
    executablePath: process.env.AUTHZ_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ARGS,
    timeout: 30_000,
  });
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    page.setDefaultTimeout(15_000);
    await fn(context, page);
    console.log(`PASS ${name}`);
    return true;
  } catch (e) {
    // Playwright's message, first line only (later lines may quote the page).
    console.log(`FAIL ${name}: ${String(e.message).split('\n')[0]}`);
    return false;
  } finally {
    await context.close().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * No token in localStorage, sessionStorage, document.cookie, the page's HTML or its URL:
 * none of `secrets` (tokens seen on the wire, when the test can see them) and nothing shaped
 * like a JWT.
 */
async function noTokensInTheBrowser(page, secrets, step) {
  const seen = await page.evaluate(() => ({
    local: Object.keys(localStorage).map((k) => `${k}=${localStorage.getItem(k)}`),
    session: Object.keys(sessionStorage).map((k) => `${k}=${sessionStorage.getItem(k)}`),
    cookie: document.cookie,
    html: document.documentElement.outerHTML,
    url: location.href,
  }));
  const all = [...seen.local, ...seen.session, seen.cookie, seen.html, seen.url];
  check(seen.local.length === 0, `${step}: localStorage is empty`);
  check(seen.session.length === 0, `${step}: sessionStorage is empty`);
  check(!seen.cookie.includes('authz_session'), `${step}: document.cookie has no authz_session`);
  check(!all.some((v) => JWT.test(v)), `${step}: no JWT in storage, document.cookie, the page or its URL`);
  if (secrets.length > 0) {
    check(
      !all.some((v) => secrets.some((s) => v.includes(s))),
      `${step}: none of the ${secrets.length} tokens seen on the wire is in the browser`,
    );
  }
  check(!seen.url.includes('code='), `${step}: no authorization code in the URL`);
}

/** From the app's "Sign in" to the login page, and through it. */
async function logIn(page, signIn) {
  await page.click(signIn);
  await page.waitForURL(/\/authorize/);
  await page.fill('input[name=username]', user);
  await page.fill('input[name=password]', password);
  await Promise.all([page.waitForEvent('framenavigated'), page.click('button[type=submit]')]);
}

/**
 * Submits a form `POST path` from the page, as a forged or stale page would (the browser sends
 * its cookies); returns the response status and comes back to the web app.
 */
async function postFromPage(page, path, fields) {
  const [response] = await Promise.all([
    page.waitForResponse((r) => new URL(r.url()).pathname === path && r.request().method() === 'POST'),
    page.evaluate(
      ([p, f]) => {
        const form = document.createElement('form');
        form.method = 'post';
        form.action = p;
        for (const [name, value] of Object.entries(f)) {
          const input = document.createElement('input');
          input.type = 'hidden';
          input.name = name;
          input.value = value;
          form.append(input);
        }
        document.body.append(form);
        form.submit();
      },
      [path, fields],
    ),
  ]);
  await page.waitForURL(`${base}${path}`);
  await page.goto(`${base}/app/web/`);
  return response.status();
}

/** The page's response carries `Cache-Control: no-store` and a CSP with `directives`. */
function securityHeaders(response, directives) {
  const h = response.headers();
  check(h['cache-control'] === 'no-store', 'Cache-Control: no-store');
  const csp = h['content-security-policy'] ?? '';
  for (const d of directives) check(csp.includes(d), `CSP has ${d}`);
}

async function webApp(context, page) {
  securityHeaders(await page.goto(`${base}/app/web/`), ["default-src 'none'", "frame-ancestors 'none'"]);
  check((await page.textContent('#status')).includes('Not signed in'), 'starts signed out');
  await logIn(page, '#signin');
  await page.waitForURL(`${base}/app/web/`);
  check((await page.textContent('#user')) === user, `signed in as ${user}`);

  const cookies = await context.cookies(`${base}/app/web/`);
  const session = cookies.find((c) => c.name === 'web_session');
  check(session !== undefined, 'the session cookie is set');
  check(session.httpOnly, 'the session cookie is HttpOnly');
  check(session.sameSite === 'Strict', 'the session cookie is SameSite=Strict');
  check(session.path === '/app/web', 'the session cookie is scoped to /app/web');
  check(!cookies.some((c) => c.name === 'web_login'), 'the pre-login cookie is gone');
  check(!cookies.some((c) => JWT.test(c.value)), 'no cookie holds a JWT');
  await noTokensInTheBrowser(page, [], 'signed in');

  await Promise.all([page.waitForURL(`${base}/app/web/`), page.click('#call-api')]);
  check((await page.textContent('#result')).includes(`"subject": "${user}"`), 'GET /me names the user');
  await noTokensInTheBrowser(page, [], 'after the API call');

  await Promise.all([page.waitForURL(`${base}/app/web/`), page.click('#refresh')]);
  check((await page.textContent('#result')).startsWith('Refreshed'), 'refreshed');
  await Promise.all([page.waitForURL(`${base}/app/web/`), page.click('#call-api')]);
  check((await page.textContent('#result')).includes(`"subject": "${user}"`), 'GET /me after the refresh');
  await noTokensInTheBrowser(page, [], 'after the refresh');

  check((await postFromPage(page, '/app/web/api', {})) === 403, 'a POST without the CSRF token gets 403');
  check(
    (await postFromPage(page, '/app/web/api', { csrf_token: 'x'.repeat(43) })) === 403,
    'a POST with a wrong CSRF token gets 403',
  );
  const csrf = await page.inputValue('form[action="/app/web/api"] input[name=csrf_token]');

  await Promise.all([page.waitForURL(/\/app\/web\/\?signed_out=/), page.click('#signout')]);
  check((await page.textContent('#status')).includes('refresh token is revoked'), 'signed out, refresh token revoked');
  check((await page.locator('#call-api').count()) === 0, 'no "Call the API" button any more');
  check(
    (await postFromPage(page, '/app/web/api', { csrf_token: csrf })) === 403,
    'the old page\'s "Call the API" is refused (403)',
  );
  check(!(await context.cookies(`${base}/app/web/`)).some((c) => c.name === 'web_session'), 'the session cookie is cleared');
  await noTokensInTheBrowser(page, [], 'signed out');
}

async function spa(context, page) {
  // The tokens as the token endpoint sent them: the test looks for them in the browser.
  const pending = [];
  const issued = [];
  page.on('response', (r) => {
    if (r.request().method() === 'POST' && new URL(r.url()).pathname === '/token') {
      pending.push(
        r.json().then(
          (b) => issued.push(b),
          () => {},
        ),
      );
    }
  });
  const secrets = async () => {
    await Promise.all(pending);
    return issued.flatMap((b) => [b.access_token, b.refresh_token]).filter(Boolean);
  };

  securityHeaders(await page.goto(`${base}/app/spa/`), ["script-src 'self'", "connect-src 'self'"]);
  await page.waitForSelector('body[data-ready=true]');
  check((await page.textContent('#status')).includes('Not signed in'), 'starts signed out');
  await logIn(page, '#signin');
  await page.waitForURL(/\/app\/spa\//);
  await page.waitForSelector('body[data-ready=true]');
  const error = await page.textContent('#error');
  check(error === '', `no error on return${error ? ` (${error})` : ''}`);
  check((await page.textContent('#status')).includes(`Signed in as ${user}`), `signed in as ${user}`);
  check((await secrets()).length === 2, 'the token endpoint sent an access and a refresh token');
  await noTokensInTheBrowser(page, await secrets(), 'signed in');
  check((await context.cookies(`${base}/app/spa/`)).every((c) => c.name === 'authz_session'),
    'the SPA sets no cookie of its own');

  await page.click('#call-api');
  await page.waitForFunction(() => document.getElementById('result').textContent.startsWith('GET /me'));
  check((await page.textContent('#result')).includes(`"subject": "${user}"`), 'GET /me names the user');
  await noTokensInTheBrowser(page, await secrets(), 'after the API call');

  await page.click('#refresh');
  await page.waitForFunction(() => document.getElementById('result').textContent.startsWith('Refreshed'));
  const afterRefresh = await secrets();
  check(afterRefresh.length === 4 && afterRefresh[3] !== afterRefresh[1], 'the refresh token rotated');
  await page.click('#call-api');
  await page.waitForFunction(() => document.getElementById('result').textContent.startsWith('GET /me'));
  check((await page.textContent('#result')).includes(`"subject": "${user}"`), 'GET /me after the refresh');
  await noTokensInTheBrowser(page, afterRefresh, 'after the refresh');

  await page.click('#signout');
  await page.waitForFunction(() => document.getElementById('result').textContent.startsWith('Signed out'));
  check((await page.textContent('#result')).includes('refresh token is revoked'), 'signed out, refresh token revoked');
  check(await page.isDisabled('#call-api'), '"Call the API" is disabled');
  // The last refresh token no longer works at the token endpoint.
  const refused = await context.request.post(`${base}/token`, {
    form: { grant_type: 'refresh_token', refresh_token: afterRefresh[3], client_id: 'spa' },
  });
  check(refused.status() === 400, 'the revoked refresh token is refused at /token (400)');
  await noTokensInTheBrowser(page, afterRefresh, 'signed out');

  await page.reload();
  await page.waitForSelector('body[data-ready=true]');
  check((await page.textContent('#status')).includes('Not signed in'), 'after a reload: signed out');
  await page.click('#signin');
  await page.waitForURL(/\/authorize/);
  check(await page.isVisible('input[name=password]'), 'signing in again asks for the password (login ended)');
}

async function apiReference(context, page) {
  // Console errors and uncaught exceptions (a CSP violation is logged as a console error).
  const errors = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(String(e.message)));

  securityHeaders(await page.goto(`${base}/docs`), [
    "default-src 'none'",
    "script-src 'self'",
    "connect-src 'self'",
    "require-trusted-types-for 'script'",
  ]);
  await page.waitForSelector('body[data-ready=true]');
  const error = await page.textContent('#error');
  check(error === '', `the page loaded /openapi.json${error ? ` (${error})` : ''}`);
  const deploy = page.locator('#post_models_id_deploy');
  await deploy.waitFor({ state: 'visible' });
  const text = await deploy.innerText();
  check(text.includes('/models/{id}/deploy'), 'the deploy operation is shown with its path');
  check(text.includes('model:deploy'), 'it shows the permission model:deploy');
  check(/security\s+dpop\b/.test(text), 'it shows DPoP as its only security scheme');
  check(await page.getByText('model:deploy', { exact: true }).first().isVisible(), '"model:deploy" is visible');
  const health = await page.locator('#get_healthz').innerText();
  check(health.includes('none (public)'), 'a public route shows no security');
  const schemes = await page.locator('#schemes tbody tr').count();
  check(schemes === 3, 'three security schemes are listed (bearer, apiKey, dpop)');
  const operations = await page.locator('article.op').count();
  check(operations >= 15, `every operation is listed (${operations})`);
  check(errors.length === 0, `no console error${errors.length ? `: ${errors[0]}` : ''}`);
}

const web = await inFreshBrowser('server-side web app (/app/web/)', webApp);
const single = await inFreshBrowser('single-page app (/app/spa/)', spa);
const docs = await inFreshBrowser('API reference (/docs)', apiReference);
process.exit(web && single && docs ? 0 : 1);
