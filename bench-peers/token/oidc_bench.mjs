// The peer of the token-endpoint benchmark (bench-peers/token/run.sh): panva/oidc-provider on
// loopback with its default in-memory adapter, modelled on tests/interop/oidc_idp.mjs.
//   - an ES256 signing key made at start-up; access tokens are JWTs (RFC 9068, via resource
//     indicators) signed with ES256 for one resource;
//   - `bench-cc`: a confidential client (client_secret_basic) for client credentials;
//   - `bench-spa`: a public client holding N refresh tokens, rotation on (rotateRefreshToken:
//     true), made here at start-up (a Grant and a RefreshToken per user session, as the code
//     grant would store them) because there is no login page to script.
// Usage: node oidc_bench.mjs PORT OUT_DIR N
//   writes OUT_DIR/oidc.basic (the cc client's `Authorization: Basic` value, mode 0600) and
//   OUT_DIR/oidc.refresh (N refresh tokens, one a line, mode 0600), then prints `ready`.
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import * as jose from 'jose';
import Provider from 'oidc-provider';

const [port, out, n] = [Number(process.argv[2]), process.argv[3], Number(process.argv[4])];
if (!port || !out || !(n > 0 && n <= 10000)) {
  console.error('usage: node oidc_bench.mjs PORT OUT_DIR N (1..10000)');
  process.exit(2);
}
const RESOURCE = 'urn:authz:model-registry';
const USER = 'ada';
const ROLES = { 'bench-cc': ['viewer'], [USER]: ['analyst', 'viewer'] };

const { privateKey } = await jose.generateKeyPair('ES256', { extractable: true });
const jwk = { ...(await jose.exportJWK(privateKey)), kid: 'bench', alg: 'ES256', use: 'sig' };
const ccSecret = randomBytes(32).toString('base64url');

const provider = new Provider(`http://127.0.0.1:${port}`, {
  jwks: { keys: [jwk] },
  clients: [
    {
      client_id: 'bench-cc',
      client_secret: ccSecret,
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'ES256',
    },
    {
      client_id: 'bench-spa',
      application_type: 'web',
      grant_types: ['authorization_code', 'refresh_token'],
      redirect_uris: [`http://127.0.0.1:${port}/cb`],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
      id_token_signed_response_alg: 'ES256',
    },
  ],
  // Every refresh rotates; a spent token presented again revokes the grant.
  rotateRefreshToken: true,
  ttl: {
    AccessToken: 600,
    ClientCredentials: 600,
    Grant: 14 * 24 * 3600,
    RefreshToken: 14 * 24 * 3600,
    Session: 14 * 24 * 3600,
    Interaction: 3600,
    IdToken: 600,
    AuthorizationCode: 60,
  },
  findAccount: (ctx, sub) => ({ accountId: sub, claims: () => ({ sub }) }),
  features: {
    clientCredentials: { enabled: true },
    devInteractions: { enabled: false },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => RESOURCE,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resource) => {
        if (resource !== RESOURCE) throw new Error('unknown resource');
        return { scope: 'api', audience: resource, accessTokenFormat: 'jwt', accessTokenTTL: 600,
                 jwt: { sign: { alg: 'ES256' } } };
      },
    },
  },
  extraTokenClaims: (ctx, token) => ({ roles: ROLES[token.accountId || token.clientId] || [] }),
});

// N refresh tokens of N grants (as N logins would leave them), each bound to bench-spa.
const spa = await provider.Client.find('bench-spa');
const tokens = [];
for (let i = 0; i < n; i += 1) {
  const grant = new provider.Grant({ accountId: USER, clientId: spa.clientId });
  grant.addResourceScope(RESOURCE, 'api');
  const grantId = await grant.save();
  const rt = new provider.RefreshToken({
    client: spa,
    accountId: USER,
    grantId,
    gty: 'authorization_code',
    scope: 'api',
    resource: RESOURCE,
  });
  tokens.push(await rt.save());
}
writeFileSync(`${out}/oidc.basic`, Buffer.from(`bench-cc:${ccSecret}`).toString('base64'), { mode: 0o600 });
writeFileSync(`${out}/oidc.refresh`, `${tokens.join('\n')}\n`, { mode: 0o600 });
provider.listen(port, '127.0.0.1', () => console.log(`ready: oidc-provider on 127.0.0.1:${port}, ${n} refresh tokens`));
