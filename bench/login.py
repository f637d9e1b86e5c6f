#!/usr/bin/env python3
"""Non-interactive browser login for bench/run.sh, and the "does this session work" check.

  login.py login --url http://127.0.0.1:PORT/ --host app.localhost:PORT --cookie NAME
      Plays a browser (Accept: text/html, a cookie jar, redirects followed one by one) from the
      protected URL through the proxy's login flow and the test IdP's login form (alice), back
      to the URL. Prints the value of the session cookie NAME set on the proxy's host, after
      checking that it alone gets 200 "ok" from the upstream.

  login.py check --url http://127.0.0.1:PORT/ --host HOST [--cookie-header 'NAME=VALUE']
      One request as wrk sends it (no Accept header); exit 0 only for 200 with body "ok".

Host names under .localhost resolve to 127.0.0.1 here, whatever the system resolver says, so
cookies stay per host name (the app host, the authenticate host, the IdP's 127.0.0.1) as in a
browser. Standard library only.
"""

import argparse
import http.cookiejar
import re
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

_getaddrinfo = socket.getaddrinfo


def _resolve_localhost(host, *args, **kwargs):
    if isinstance(host, str) and (host == "localhost" or host.endswith(".localhost")):
        host = "127.0.0.1"
    return _getaddrinfo(host, *args, **kwargs)


socket.getaddrinfo = _resolve_localhost


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def fetch(opener, url, data=None, headers=None, timeout=10):
    """One request, no redirect following. Returns (status, headers, body)."""
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with opener.open(req, timeout=timeout) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def login(url, host, cookie_name, user, password, attempts):
    start = urllib.parse.urlsplit(url)._replace(netloc=host).geturl()
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(NoRedirect, urllib.request.HTTPCookieProcessor(jar))
    browser = {"Accept": "text/html,application/xhtml+xml", "User-Agent": "portcullis-bench/1"}
    trail = []
    current, data = start, None
    retries = 20
    for _ in range(attempts + retries):
        status, headers, body = fetch(opener, current, data=data, headers=browser)
        trail.append(f"{'POST' if data else 'GET '} {current} -> {status}")
        data = None
        if status in (301, 302, 303, 307, 308):
            current = urllib.parse.urljoin(current, headers["Location"])
            continue
        path = urllib.parse.urlsplit(current).path
        if status == 200 and path.startswith("/interaction/"):
            # the IdP's login form (oidc-provider devInteractions)
            form = re.search(rb'<form[^>]*action="([^"]+)"', body)
            action = urllib.parse.urljoin(current, form.group(1).decode()) if form else current
            fields = {"prompt": "login", "login": user, "password": password}
            current, data = action, urllib.parse.urlencode(fields).encode()
            continue
        if status == 200 and current == start:
            break
        if status in (502, 503, 504) and len(trail) == 1 and retries > 0:
            # a service still starting up (IdP discovery, NATS buckets): start again
            retries -= 1
            time.sleep(0.5)
            trail.clear()
            continue
        fail(f"unexpected {status} at {current}", trail, body)
    else:
        fail("too many steps", trail, b"")

    cookie_host = urllib.parse.urlsplit(start).hostname
    values = [c.value for c in jar if c.name == cookie_name and c.domain.lstrip(".") == cookie_host]
    if len(values) != 1:
        names = sorted(f"{c.name}@{c.domain}" for c in jar)
        fail(f"expected one {cookie_name} cookie for {cookie_host}, jar has {names}", trail, b"")
    if not check(url, host, f"{cookie_name}={values[0]}"):
        fail("the new session cookie does not get 200 ok on its own", trail, b"")
    print(f"login ok via {cookie_host}: {len(trail)} requests, cookie {cookie_name}", file=sys.stderr)
    return values[0]


def check(url, host, cookie_header=None, quiet=False):
    """The request wrk sends: Host header, optional Cookie, no Accept. 200 "ok" or False."""
    opener = urllib.request.build_opener(NoRedirect)
    # urllib puts the URL's host in Host; we want 127.0.0.1 on the wire and `host` in the header
    headers = {"Host": host}
    if cookie_header:
        headers["Cookie"] = cookie_header
    status, _, body = fetch(opener, url, headers=headers)
    if status == 200 and body.strip() == b"ok":
        return True
    if not quiet:
        print(f"check {host}: got {status} {body[:200]!r}", file=sys.stderr)
    return False


def fail(message, trail, body):
    print(f"login failed: {message}", file=sys.stderr)
    for line in trail:
        print(f"  {line}", file=sys.stderr)
    if body:
        print(f"  body: {body[:500]!r}", file=sys.stderr)
    sys.exit(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    lg = sub.add_parser("login")
    lg.add_argument("--url", required=True)
    lg.add_argument("--host", required=True)
    lg.add_argument("--cookie", required=True)
    lg.add_argument("--user", default="alice")
    lg.add_argument("--password", default="x")
    lg.add_argument("--max-steps", type=int, default=20)
    ck = sub.add_parser("check")
    ck.add_argument("--url", required=True)
    ck.add_argument("--host", required=True)
    ck.add_argument("--cookie-header")
    args = ap.parse_args()
    if args.cmd == "login":
        print(login(args.url, args.host, args.cookie, args.user, args.password, args.max_steps))
    else:
        sys.exit(0 if check(args.url, args.host, args.cookie_header) else 1)


if __name__ == "__main__":
    main()
