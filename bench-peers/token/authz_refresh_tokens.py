"""Refresh tokens from the running model-registry through the real flow (bench-peers/token/run.sh).

Signs the demo user in once on the login page (GET /authorize, then the form POST with its
CSRF token), then, with the login session's cookie, runs N authorization-code + PKCE (S256)
exchanges for the public demo client `spa`: each gives a refresh token of its own grant.
Standard library only; loopback only; bounded (N <= 10000, 5 s per request).

Usage: python3 authz_refresh_tokens.py BASE_URL BANNER_FILE OUT_FILE N
  BASE_URL: http://127.0.0.1:PORT; BANNER_FILE: the server's stdout (it names the demo user's
  password); OUT_FILE: written with N refresh tokens, one a line, mode 0600.
"""

import base64
import hashlib
import html
import http.client
import json
import os
import re
import secrets
import sys
import urllib.parse

CLIENT = "spa"


def main() -> None:
    base, banner, out, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    if not 0 < n <= 10000:
        sys.exit("N must be 1..10000")
    url = urllib.parse.urlsplit(base)
    if url.hostname not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("loopback only")
    with open(banner, encoding="utf-8") as f:
        m = re.search(r"user (\S+) / password (\S+)", f.read())
    if not m:
        sys.exit("no demo user in the banner")
    user, password = m.group(1), m.group(2)
    redirect_uri = f"{base}/app/spa/"
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=5)

    def call(method, path, body=None, cookies=""):
        headers = {"Cookie": cookies} if cookies else {}
        if body is not None:
            body = urllib.parse.urlencode(body)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        return r.status, r.headers, r.read().decode()

    def cookie(headers, name):
        for v in headers.get_all("Set-Cookie") or []:
            k, _, rest = v.partition("=")
            if k == name:
                return rest.split(";", 1)[0]
        sys.exit(f"no {name} cookie")

    def authorization():
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        params = {
            "response_type": "code",
            "client_id": CLIENT,
            "redirect_uri": redirect_uri,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "state": secrets.token_urlsafe(8),
        }
        return verifier, params

    def exchange(location, verifier):
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)
        if "code" not in query:
            sys.exit(f"authorization refused: {query.get('error')}")
        status, _, body = call(
            "POST",
            "/token",
            {
                "grant_type": "authorization_code",
                "code": query["code"][0],
                "redirect_uri": redirect_uri,
                "client_id": CLIENT,
                "code_verifier": verifier,
            },
        )
        if status != 200:
            sys.exit(f"token exchange: {status}")
        return json.loads(body)["refresh_token"]

    # Sign in once: the page sets the CSRF cookie and carries the same value in the form.
    verifier, params = authorization()
    status, headers, page = call("GET", "/authorize?" + urllib.parse.urlencode(params))
    if status != 200:
        sys.exit(f"GET /authorize: {status}")
    csrf = cookie(headers, "authz_csrf")
    form = {k: html.unescape(v) for k, v in re.findall(r'type="hidden" name="([^"]+)" value="([^"]*)"', page)}
    form.update(username=user, password=password)
    status, headers, _ = call("POST", "/authorize", form, cookies=f"authz_csrf={csrf}")
    if status != 303:
        sys.exit(f"sign-in: {status}")
    session = cookie(headers, "authz_session")
    tokens = [exchange(headers["Location"], verifier)]
    # Each further grant: a new authorization request in the same login session.
    while len(tokens) < n:
        verifier, params = authorization()
        status, headers, _ = call(
            "GET", "/authorize?" + urllib.parse.urlencode(params), cookies=f"authz_session={session}"
        )
        if status != 303:
            sys.exit(f"GET /authorize with a session: {status}")
        tokens.append(exchange(headers["Location"], verifier))
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(tokens) + "\n")


if __name__ == "__main__":
    main()
