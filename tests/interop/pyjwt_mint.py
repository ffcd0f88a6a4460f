"""Mints JWTs with PyJWT for every algorithm authz verifies, valid and invalid, and writes them
with their public keys as JSON for tests/tests/it/interop.rs. Usage: pyjwt_mint.py OUT.json"""
import json
import secrets
import sys
import time

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, HMACAlgorithm, OKPAlgorithm, RSAAlgorithm

ISS = "https://pyjwt.interop.test"
AUD = "authz-interop"


def keypair(alg):
    if alg.startswith("HS"):
        secret = secrets.token_bytes({"HS256": 32, "HS384": 48, "HS512": 64}[alg])
        return secret, json.loads(HMACAlgorithm.to_jwk(secret))
    if alg[:2] in ("RS", "PS"):
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return private, json.loads(RSAAlgorithm.to_jwk(private.public_key()))
    if alg == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
        return private, json.loads(ECAlgorithm.to_jwk(private.public_key()))
    if alg == "ES384":
        private = ec.generate_private_key(ec.SECP384R1())
        return private, json.loads(ECAlgorithm.to_jwk(private.public_key()))
    private = ed25519.Ed25519PrivateKey.generate()
    return private, json.loads(OKPAlgorithm.to_jwk(private.public_key()))


def claims(**over):
    now = int(time.time())
    c = {"iss": ISS, "aud": AUD, "sub": "py-user", "iat": now, "exp": now + 600, "roles": ["viewer"]}
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


def tamper(token):
    head, payload, sig = token.split(".")
    mid = len(sig) // 2
    flipped = "A" if sig[mid] != "A" else "B"
    return ".".join([head, payload, sig[:mid] + flipped + sig[mid + 1:]])


def main(out):
    keys, cases = [], []
    now = int(time.time())
    for alg in ["HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                "ES256", "ES384", "EdDSA"]:
        private, jwk = keypair(alg)
        kid = "py-" + alg.lower()
        jwk.update({"kid": kid, "alg": alg, "use": "sig"})
        keys.append(jwk)
        sign = lambda c, headers=None: jwt.encode(c, private, algorithm=alg, headers={"kid": kid, **(headers or {})})
        good = sign(claims())
        cases += [
            {"name": f"{alg} valid", "alg": alg, "kid": kid, "token": good, "valid": True},
            {"name": f"{alg} aud array", "alg": alg, "kid": kid, "token": sign(claims(aud=["other", AUD])), "valid": True},
            {"name": f"{alg} expired", "alg": alg, "kid": kid, "token": sign(claims(exp=now - 3600)), "valid": False},
            {"name": f"{alg} not yet valid", "alg": alg, "kid": kid, "token": sign(claims(nbf=now + 3600)), "valid": False},
            {"name": f"{alg} wrong audience", "alg": alg, "kid": kid, "token": sign(claims(aud="someone-else")), "valid": False},
            {"name": f"{alg} wrong issuer", "alg": alg, "kid": kid, "token": sign(claims(iss="https://evil.test")), "valid": False},
            {"name": f"{alg} no exp", "alg": alg, "kid": kid, "token": sign(claims(exp=None)), "valid": False},
            {"name": f"{alg} tampered signature", "alg": alg, "kid": kid, "token": tamper(good), "valid": False},
            {"name": f"{alg} crit header", "alg": alg, "kid": kid, "token": sign(claims(), {"crit": ["exp"]}), "valid": False},
        ]
    cases.append({"name": "alg none", "alg": "none", "kid": "py-hs256",
                  "token": jwt.encode(claims(), None, algorithm="none", headers={"kid": "py-hs256"}), "valid": False})
    with open(out, "w") as f:
        json.dump({"library": f"PyJWT {jwt.__version__}", "issuer": ISS, "audience": AUD,
                   "keys": {"keys": keys}, "cases": cases}, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
