// A real OpenID Connect provider (panva/oidc-provider) on loopback for the interop test:
// client-credentials clients, JWT access tokens (RFC 9068) for one resource indicator, and a
// `roles` claim per client. Usage: node oidc_idp.mjs PORT KEYS.json
//   KEYS.json: {"keys": [private JWKs]}; the first ES256 key signs (rotate by reordering).
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

if (process.argv[2] === 'keygen') {
  // node oidc_idp.mjs keygen KID  → prints a private ES256 JWK
  const jose = await import('jose');
  const { privateKey } = await jose.generateKeyPair('ES256', { extractable: true });
  console.log(JSON.stringify({ ...(await jose.exportJWK(privateKey)), kid: process.argv[3], alg: 'ES256', use: 'sig' }));
  process.exit(0);
}

const port = Number(process.argv[2]);
const jwks = JSON.parse(readFileSync(process.argv[3], 'utf8'));
const RESOURCE = process.env.IDP_RESOURCE || 'urn:authz:model-registry';
const ROLES = { 'analyst-svc': ['analyst'], 'viewer-svc': ['viewer'], 'admin-svc': ['admin'] };

const provider = new Provider(`http://127.0.0.1:${port}`, {
  jwks,
  clients: Object.keys(ROLES).map((id) => ({
    client_id: id,
    client_secret: `${id}-secret-0123456789abcdef0123456789`,
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'ES256',
  })),
  features: {
    clientCredentials: { enabled: true },
    devInteractions: { enabled: false },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => RESOURCE,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resource) => {
        if (resource !== RESOURCE && resource !== 'urn:authz:other-api') throw new Error('unknown resource');
        return { scope: 'api', audience: resource, accessTokenFormat: 'jwt', accessTokenTTL: 600,
                 jwt: { sign: { alg: 'ES256' } } };
      },
    },
  },
  extraTokenClaims: (ctx, token) => ({ roles: ROLES[token.clientId] || [] }),
});
provider.listen(port, '127.0.0.1', () => console.log(`oidc-provider listening on ${port}`));
