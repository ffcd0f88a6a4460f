"""Seeds the fuzz corpora from the outside vectors (../shared/vectors or $AUTHZ_VECTORS_DIR) and
the project's own examples. Usage: python3 fuzz/seed.py"""
import hashlib
import json
import os
import pathlib

here = pathlib.Path(__file__).resolve().parent
vectors = pathlib.Path(os.environ.get("AUTHZ_VECTORS_DIR", here.parent.parent / "shared" / "vectors"))


def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    d = here / "corpus" / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()).write_bytes(data)


tokens = []
hack = json.loads((vectors / "jwt-hack-generated/jwt_hack_payloads.json").read_text())
for s in hack["sets"]:
    tokens.append(s["base_token"])
    tokens += [p["token"] for p in s["payloads"]]
tokens += [t["token"] for t in json.loads((vectors / "nginx-auth-jwt/tokens.derived.json").read_text())]
jws = json.loads((vectors / "wycheproof/testvectors_v1/json_web_signature_test.json").read_text())
for g in jws["testGroups"]:
    tokens += [t["jws"] for t in g["tests"]]
for t in tokens:
    put("verify_token", t)
    put("authorization_header", "Bearer " + t)
put("authorization_header", "Basic dXNlcjpwYXNz")
put("authorization_header", "bearer mr_0000000000000000_" + "a" * 49)

# differential: the first byte picks the mode (0 token, 1 payload, 2 header).
for t in tokens[:200]:
    put("differential", b"\x00" + t.encode())
put("differential", b'\x01{"iss":"i","aud":"a","sub":"s","exp":4102444800,"nbf":1,"iat":1}')
put("differential", b'\x01{"iss":"i","aud":["a"],"exp":4102444800.5,"roles":["viewer"],"scope":"a b"}')
put("differential", b'\x02{"alg":"HS256","typ":"JWT","kid":"k1"}')
put("differential", b'\x02{"alg":"HS256","cty":"JWT","x5c":["MIIB"],"crit":["b64"],"b64":true}')

put("claims", '{"iss":"i","aud":"a","sub":"s","exp":4102444800,"tid":"t","roles":["viewer"]}')
put("claims", '{"iss":"i","aud":["a","b"],"sub":"s","exp":4102444800,"nbf":1,"iat":1,"tid":"t","realm_access":{"roles":["viewer"]},"perms":["model:run"],"scope":"a b"}')
for t in json.loads((vectors / "nginx-auth-jwt/tokens.derived.json").read_text()):
    put("claims", json.dumps(t["claims"]))

for f in (vectors / "latchset-jose-rfc").glob("*.jwkset"):
    put("jwks_document", f.read_text())
put("jwks_document", (vectors / "nginx-auth-jwt/t/data/jwks.json").read_text())
keys = json.loads((vectors / "wycheproof/testvectors_v1/json_web_key_test.json").read_text())
for g in keys["testGroups"]:
    put("jwks_document", json.dumps(g.get("public", g["private"])))

put("policy_file", (here.parent / "examples/model-registry/policy.toml").read_text())
put("policy_file", '[roles.a]\ninherits = ["b"]\ngrants = ["data:*"]\n[roles.b]\ngrants = ["model:run"]\n')
for p in ["model:run", "data:read-all", "a:*", "Model:Run", "a:b:c", ":x", "x:", "", "r\u00e9s:act"]:
    put("permission_grammar", p)
put("api_key", "azk_0123456789ABCDEF_" + "x" * 43 + "000000")
print("seeded", sum(1 for _ in (here / "corpus").rglob("*")), "files")
