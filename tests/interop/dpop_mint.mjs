// DPoP proofs minted by panva's `dpop` (and, for the malformed variants, `jose`), for
// tests/tests/it/dpop.rs. A line protocol on stdin/stdout, one JSON object per line:
//   {"op":"key","alg":"ES256"|"RS256"|"PS256"|"Ed25519"}  → {"key":N,"jkt":"…"}
//   {"op":"proof","key":N,"htm":"POST","htu":"…","token":"…"?,"nonce":"…"?}  → {"proof":"…"}
//   {"op":"forge","key":N,"kind":K,"htm":…,"htu":…,"token":…?}  → {"proof":"…"}
//     K: old_iat | future_iat | wrong_typ | private_jwk | no_jwk | no_jti | hs256 | bad_signature
import * as DPoP from 'dpop';
import * as jose from 'jose';
import { createHash, randomUUID } from 'node:crypto';
import { createInterface } from 'node:readline';

const keys = [];
const b64url = (buf) => Buffer.from(buf).toString('base64url');
const ath = (token) => b64url(createHash('sha256').update(token).digest());

async function forge(k, kind, htm, htu, token) {
  const publicJwk = await jose.exportJWK(k.publicKey);
  const privateJwk = await jose.exportJWK(k.privateKey);
  const now = Math.floor(Date.now() / 1000);
  const claims = { jti: randomUUID(), htm, htu, iat: now };
  if (token) claims.ath = ath(token);
  let header = { typ: 'dpop+jwt', alg: k.alg, jwk: publicJwk };
  if (kind === 'old_iat') claims.iat = now - 3600;
  if (kind === 'future_iat') claims.iat = now + 3600;
  if (kind === 'no_jti') delete claims.jti;
  if (kind === 'wrong_typ') header.typ = 'JWT';
  if (kind === 'private_jwk') header.jwk = privateJwk;
  if (kind === 'no_jwk') delete header.jwk;
  if (kind === 'hs256') {
    const secret = new TextEncoder().encode('a-shared-secret-that-is-long-enough!!');
    header = { typ: 'dpop+jwt', alg: 'HS256', jwk: { kty: 'oct', k: b64url(secret) } };
    return new jose.CompactSign(new TextEncoder().encode(JSON.stringify(claims)))
      .setProtectedHeader(header).sign(secret);
  }
  const jws = await new jose.CompactSign(new TextEncoder().encode(JSON.stringify(claims)))
    .setProtectedHeader(header).sign(k.privateKey);
  if (kind === 'bad_signature') {
    const [h, p, s] = jws.split('.');
    const sig = Buffer.from(s, 'base64url');
    sig[0] ^= 1;
    return `${h}.${p}.${b64url(sig)}`;
  }
  return jws;
}

const rl = createInterface({ input: process.stdin });
for await (const line of rl) {
  const req = JSON.parse(line);
  let out;
  try {
    if (req.op === 'key') {
      const pair = await DPoP.generateKeyPair(req.alg, { extractable: true });
      const alg = req.alg;
      keys.push({ ...pair, alg });
      out = { key: keys.length - 1, jkt: await DPoP.calculateThumbprint(pair.publicKey) };
    } else if (req.op === 'proof') {
      out = { proof: await DPoP.generateProof(keys[req.key], req.htu, req.htm, req.nonce ?? undefined, req.token ?? undefined) };
    } else if (req.op === 'forge') {
      out = { proof: await forge(keys[req.key], req.kind, req.htm, req.htu, req.token ?? undefined) };
    } else {
      out = { error: `unknown op ${req.op}` };
    }
  } catch (e) {
    out = { error: String(e) };
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}
