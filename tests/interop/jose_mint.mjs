// Mints JWTs with `jose` (panva) for every algorithm authz verifies, valid and invalid, and
// writes them with their public keys as JSON for tests/tests/it/interop.rs.
// Usage: node jose_mint.mjs OUT.json
import { writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import * as jose from 'jose';

const ISS = 'https://jose.interop.test';
const AUD = 'authz-interop';
const now = Math.floor(Date.now() / 1000);

function claims(over = {}) {
  const c = { iss: ISS, aud: AUD, sub: 'js-user', iat: now, exp: now + 600, roles: ['viewer'], ...over };
  for (const k of Object.keys(c)) if (c[k] === null) delete c[k];
  return c;
}

function tamper(token) {
  const [h, p, s] = token.split('.');
  const mid = Math.floor(s.length / 2);
  return [h, p, s.slice(0, mid) + (s[mid] === 'A' ? 'B' : 'A') + s.slice(mid + 1)].join('.');
}

async function keypair(alg) {
  if (alg.startsWith('HS')) {
    const bytes = randomBytes({ HS256: 32, HS384: 48, HS512: 64 }[alg]);
    return { privateKey: bytes, jwk: { kty: 'oct', k: Buffer.from(bytes).toString('base64url') } };
  }
  const { publicKey, privateKey } = await jose.generateKeyPair(alg, { extractable: true });
  return { privateKey, jwk: await jose.exportJWK(publicKey) };
}

const keys = [];
const cases = [];
for (const alg of ['HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512',
                   'ES256', 'ES384', 'EdDSA']) {
  const { privateKey, jwk } = await keypair(alg);
  const kid = `js-${alg.toLowerCase()}`;
  keys.push({ ...jwk, kid, alg, use: 'sig' });
  const sign = (c, extra = {}) =>
    new jose.SignJWT(c).setProtectedHeader({ alg, kid, typ: 'at+jwt', ...extra }).sign(privateKey);
  const good = await sign(claims());
  cases.push(
    { name: `${alg} valid`, alg, kid, token: good, valid: true },
    { name: `${alg} aud array`, alg, kid, token: await sign(claims({ aud: ['other', AUD] })), valid: true },
    { name: `${alg} expired`, alg, kid, token: await sign(claims({ exp: now - 3600 })), valid: false },
    { name: `${alg} not yet valid`, alg, kid, token: await sign(claims({ nbf: now + 3600 })), valid: false },
    { name: `${alg} wrong audience`, alg, kid, token: await sign(claims({ aud: 'someone-else' })), valid: false },
    { name: `${alg} wrong issuer`, alg, kid, token: await sign(claims({ iss: 'https://evil.test' })), valid: false },
    { name: `${alg} no exp`, alg, kid, token: await sign(claims({ exp: null })), valid: false },
    { name: `${alg} tampered signature`, alg, kid, token: tamper(good), valid: false },
  );
}
cases.push({ name: 'alg none (UnsecuredJWT)', alg: 'none', kid: 'js-hs256',
             token: new jose.UnsecuredJWT(claims()).encode(), valid: false });

const version = JSON.parse((await import('node:fs')).readFileSync(
  new URL('./node_modules/jose/package.json', import.meta.url))).version;
writeFileSync(process.argv[2], JSON.stringify({ library: `jose ${version}`, issuer: ISS, audience: AUD,
  keys: { keys }, cases }, null, 1));
