#!/usr/bin/env bash
# Smoke test for the test IdP: starts provider.mjs on a dynamic port and runs
# discovery, a non-browser authorization-code + PKCE login with a cookie jar,
# the token exchange, ID-token claim checks, userinfo, refresh, introspection,
# revocation and RP-initiated logout. Exits 0 when everything passed.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"

if [ ! -d node_modules/oidc-provider ]; then
  npm ci --no-audit --no-fund >&2
fi

WORK="$(mktemp -d)"
IDP_PID=""
BCL_PID=""
cleanup() {
  if [ -n "$BCL_PID" ]; then kill -TERM "$BCL_PID" 2>/dev/null || true; wait "$BCL_PID" 2>/dev/null || true; fi
  if [ -n "$IDP_PID" ] && kill -0 "$IDP_PID" 2>/dev/null; then
    kill -TERM "$IDP_PID" 2>/dev/null || true
    wait "$IDP_PID" 2>/dev/null || true
  fi
  if [ -n "${KEEP_WORK:-}" ]; then echo "# kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

PASS=0
FAIL=0
ok()   { PASS=$((PASS + 1)); echo "ok   - $*"; }
bad()  { FAIL=$((FAIL + 1)); echo "FAIL - $*"; }
check() { # check DESCRIPTION ACTUAL EXPECTED
  if [ "$2" = "$3" ]; then ok "$1"; else bad "$1 (got '$2', want '$3')"; fi
}
fatal() {
  echo "FATAL: $*"
  echo "--- idp stderr ---"; cat "$WORK/idp.err" 2>/dev/null || true
  echo "$PASS passed, $((FAIL + 1)) failed"
  exit 1
}

# json FILE EXPR: evaluate a JS expression over the parsed JSON in `j`.
json() { node -e 'const j=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")); const v=(0,eval)("(j)=>("+process.argv[2]+")")(j); process.stdout.write(typeof v==="string"?v:JSON.stringify(v))' "$1" "$2"; }
# jwt_payload JWT: print the decoded payload JSON.
jwt_payload() { node -e 'process.stdout.write(Buffer.from(process.argv[1].split(".")[1],"base64url").toString())' "$1"; }
jwt_header() { node -e 'process.stdout.write(Buffer.from(process.argv[1].split(".")[0],"base64url").toString())' "$1"; }
# pkce_challenge VERIFIER: BASE64URL(SHA256(verifier)) (via env: a verifier may start with "-").
pkce_challenge() { V="$1" node -e 'process.stdout.write(require("crypto").createHash("sha256").update(process.env.V).digest("base64url"))'; }
urlenc() { node -e 'process.stdout.write(encodeURIComponent(process.argv[1]))' "$1"; }
# header FILE NAME: value of a response header (last response in the dump).
header() { tr -d '\r' < "$1" | awk -v n="$(echo "$2" | tr A-Z a-z)" 'BEGIN{IGNORECASE=1} tolower($0) ~ "^"n":" {sub(/^[^:]*:[ ]*/, ""); v=$0} END{print v}'; }
status() { tr -d '\r' < "$1" | awk 'NR==1{print $2}'; }
# query_param URL NAME
query_param() { node -e 'process.stdout.write(new URL(process.argv[1]).searchParams.get(process.argv[2]) ?? "")' "$1" "$2"; }

REDIRECT_URI="http://127.0.0.1:9/callback"
POST_LOGOUT_URI="http://127.0.0.1:9/signed-out"
CLIENT_ID="portcullis"
CLIENT_SECRET="portcullis-secret"
USERS_FILE="$WORK/users.json"
echo '[{"sub":"carol","email":"carol@example.com","name":"Carol Extra","groups":["contractors"],"password":"carol-pw"}]' > "$USERS_FILE"

# ----------------------------------------- back-channel logout receiver ---
# Tiny RP stand-in that records back-channel logout POSTs.
node -e '
const http=require("http"),fs=require("fs");
const s=http.createServer((req,res)=>{let b="";req.on("data",c=>b+=c);req.on("end",()=>{
  fs.appendFileSync(process.argv[1], req.method+" "+req.url+" "+b+"\n"); res.end();});});
s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);});
process.on("SIGTERM",()=>process.exit(0));' "$WORK/bcl.log" > "$WORK/bcl.port" &
BCL_PID=$!
for _ in $(seq 1 50); do [ -s "$WORK/bcl.port" ] && break; sleep 0.1; done
BCL_URI="http://127.0.0.1:$(cat "$WORK/bcl.port")/backchannel-logout"

# --------------------------------------------------------------- start ---
IDP_PORT=0 IDP_REDIRECT_URIS="$REDIRECT_URI,http://127.0.0.1:9/other" \
IDP_POST_LOGOUT_REDIRECT_URIS="$POST_LOGOUT_URI" IDP_USERS_FILE="$USERS_FILE" \
IDP_BACKCHANNEL_LOGOUT_URI="$BCL_URI" \
  node provider.mjs > "$WORK/idp.out" 2> "$WORK/idp.err" &
IDP_PID=$!

for _ in $(seq 1 100); do
  grep -q '^READY ' "$WORK/idp.out" 2>/dev/null && break
  kill -0 "$IDP_PID" 2>/dev/null || fatal "provider exited early"
  sleep 0.1
done
grep -q '^READY ' "$WORK/idp.out" || fatal "provider did not print READY"
ISSUER="$(awk '/^READY /{print $2; exit}' "$WORK/idp.out")"
echo "# provider at $ISSUER (pid $IDP_PID)"
[[ "$ISSUER" =~ ^http://127\.0\.0\.1:[0-9]+$ ]] && ok "READY line has issuer URL" || bad "READY line: $ISSUER"

# ----------------------------------------------------------- discovery ---
curl -fsS "$ISSUER/.well-known/openid-configuration" -o "$WORK/disco.json" || fatal "discovery failed"
check "discovery issuer" "$(json "$WORK/disco.json" j.issuer)" "$ISSUER"
AUTH_EP="$(json "$WORK/disco.json" j.authorization_endpoint)"
TOKEN_EP="$(json "$WORK/disco.json" j.token_endpoint)"
USERINFO_EP="$(json "$WORK/disco.json" j.userinfo_endpoint)"
INTROSPECT_EP="$(json "$WORK/disco.json" j.introspection_endpoint)"
REVOKE_EP="$(json "$WORK/disco.json" j.revocation_endpoint)"
END_SESSION_EP="$(json "$WORK/disco.json" j.end_session_endpoint)"
JWKS_URI="$(json "$WORK/disco.json" j.jwks_uri)"
check "authorization_endpoint" "$AUTH_EP" "$ISSUER/auth"
check "token_endpoint" "$TOKEN_EP" "$ISSUER/token"
check "end_session_endpoint" "$END_SESSION_EP" "$ISSUER/session/end"
check "code_challenge_methods" "$(json "$WORK/disco.json" 'j.code_challenge_methods_supported.join(",")')" "S256"
check "scopes_supported has groups+offline_access" \
  "$(json "$WORK/disco.json" '["openid","profile","email","groups","offline_access"].every(s=>j.scopes_supported.includes(s))')" "true"
check "claims_supported has groups" "$(json "$WORK/disco.json" 'j.claims_supported.includes("groups")')" "true"
check "backchannel_logout_supported" "$(json "$WORK/disco.json" 'j.backchannel_logout_supported')" "true"
check "id_token algs include RS256+ES256" \
  "$(json "$WORK/disco.json" '["RS256","ES256"].every(a=>j.id_token_signing_alg_values_supported.includes(a))')" "true"
check "token auth methods" \
  "$(json "$WORK/disco.json" '["client_secret_basic","client_secret_post"].every(a=>j.token_endpoint_auth_methods_supported.includes(a))')" "true"
curl -fsS "$JWKS_URI" -o "$WORK/jwks.json"
check "jwks has RS256 and ES256 keys" "$(json "$WORK/jwks.json" 'j.keys.map(k=>k.alg).sort().join(",")')" "ES256,RS256"
check "jwks exposes no private parts" "$(json "$WORK/jwks.json" 'j.keys.some(k=>"d" in k)')" "false"

# --------------------------------------------------------------- login ---
# login_flow JAR LOGIN PASSWORD [EXTRA_AUTH_PARAMS]
# Performs the exact non-browser sequence documented in README.md and sets
# CODE, STATE_BACK, VERIFIER. Never follows redirects.
login_flow() {
  local jar="$1" login="$2" password="$3" extra="${4:-}"
  VERIFIER="$(node -e 'process.stdout.write(require("crypto").randomBytes(32).toString("base64url"))')"
  local challenge state nonce
  challenge="$(pkce_challenge "$VERIFIER")"
  state="st-$RANDOM$RANDOM"; nonce="n-$RANDOM$RANDOM"
  NONCE="$nonce"
  local auth_url="$AUTH_EP?client_id=$CLIENT_ID&response_type=code&redirect_uri=$(urlenc "$REDIRECT_URI")&scope=$(urlenc "${LOGIN_SCOPE:-openid profile email groups offline_access}")&state=$state&nonce=$nonce&code_challenge=$challenge&code_challenge_method=S256$extra"

  # 1. GET /auth?... -> 303 Location: /interaction/<uid>
  curl -sS -b "$jar" -c "$jar" -D "$WORK/h1" -o /dev/null "$auth_url"
  local s1 loc1; s1="$(status "$WORK/h1")"; loc1="$(header "$WORK/h1" location)"
  [ "$s1" = 303 ] || { bad "auth: expected 303, got $s1"; return 1; }
  [[ "$loc1" =~ ^/interaction/[A-Za-z0-9_-]+$ ]] || { bad "auth: Location $loc1"; return 1; }

  # 2. GET /interaction/<uid> -> 200 login form (optional for a client; proves the form)
  curl -sS -b "$jar" -c "$jar" -D "$WORK/h2" -o "$WORK/form.html" "$ISSUER$loc1"
  [ "$(status "$WORK/h2")" = 200 ] || { bad "interaction page status $(status "$WORK/h2")"; return 1; }
  grep -q 'name="prompt" value="login"' "$WORK/form.html" || { bad "login form not found"; return 1; }

  # 3. POST /interaction/<uid> prompt=login&login=..&password=.. -> 303 Location: <issuer>/auth/<uid>
  curl -sS -b "$jar" -c "$jar" -D "$WORK/h3" -o "$WORK/b3" \
    --data-urlencode prompt=login --data-urlencode "login=$login" --data-urlencode "password=$password" \
    "$ISSUER$loc1"
  LOGIN_STATUS="$(status "$WORK/h3")"
  [ "$LOGIN_STATUS" = 303 ] || return 2
  local loc3; loc3="$(header "$WORK/h3" location)"
  [[ "$loc3" == "$ISSUER/auth/"* ]] || { bad "login: Location $loc3"; return 1; }

  # 4. GET <issuer>/auth/<uid> -> 303 Location: <redirect_uri>?code=..&state=..&iss=..
  curl -sS -b "$jar" -c "$jar" -D "$WORK/h4" -o /dev/null "$loc3"
  local loc4; loc4="$(header "$WORK/h4" location)"
  CONSENTED=0
  if [[ "$loc4" =~ ^/interaction/[A-Za-z0-9_-]+$ ]]; then
    # Consent screen (only when the RP sends prompt=consent):
    # POST /interaction/<uid2> prompt=consent -> 303 <issuer>/auth/<uid2> -> 303 redirect_uri
    CONSENTED=1
    curl -sS -b "$jar" -c "$jar" -D "$WORK/h5" -o /dev/null --data-urlencode prompt=consent "$ISSUER$loc4"
    [ "$(status "$WORK/h5")" = 303 ] || { bad "consent POST status $(status "$WORK/h5")"; return 1; }
    curl -sS -b "$jar" -c "$jar" -D "$WORK/h4" -o /dev/null "$(header "$WORK/h5" location)"
    loc4="$(header "$WORK/h4" location)"
  fi
  [ "$(status "$WORK/h4")" = 303 ] || { bad "resume: status $(status "$WORK/h4") Location $loc4"; return 1; }
  [[ "$loc4" == "$REDIRECT_URI?"* ]] || { bad "resume: Location $loc4 (consent screen?)"; return 1; }
  CODE="$(query_param "$loc4" code)"
  STATE_BACK="$(query_param "$loc4" state)"
  ISS_BACK="$(query_param "$loc4" iss)"
  [ "$STATE_BACK" = "$state" ] || { bad "state mismatch"; return 1; }
  [ -n "$CODE" ] || { bad "no code in $loc4"; return 1; }
  return 0
}

JAR="$WORK/alice.jar"
login_flow "$JAR" alice whatever || fatal "alice login failed (status ${LOGIN_STATUS:-?})"
ok "alice: /auth -> interaction -> login POST -> /auth/<uid> -> redirect with code"
check "iss in authorization response" "$ISS_BACK" "$ISSUER"
echo "# cookies in jar after login (domain path name):"
sed 's/^#HttpOnly_//' "$JAR" | awk -F'\t' 'NF>=7 && $1 !~ /^#/ {print "#   " $1 " " $3 " " $6}'

# ------------------------------------------------------------- token -----
curl -sS -u "$CLIENT_ID:$CLIENT_SECRET" -o "$WORK/tok.json" -w '%{http_code}' "$TOKEN_EP" \
  --data-urlencode grant_type=authorization_code --data-urlencode "code=$CODE" \
  --data-urlencode "redirect_uri=$REDIRECT_URI" --data-urlencode "code_verifier=$VERIFIER" > "$WORK/code"
check "token exchange (client_secret_basic + PKCE) status" "$(cat "$WORK/code")" 200 || true
[ "$(cat "$WORK/code")" = 200 ] || fatal "token exchange failed: $(cat "$WORK/tok.json")"
ID_TOKEN="$(json "$WORK/tok.json" j.id_token)"
ACCESS_TOKEN="$(json "$WORK/tok.json" j.access_token)"
REFRESH_TOKEN="$(json "$WORK/tok.json" 'j.refresh_token ?? ""')"
check "token_type" "$(json "$WORK/tok.json" j.token_type)" "Bearer"
check "granted scope" "$(json "$WORK/tok.json" 'j.scope.split(" ").sort().join(" ")')" "email groups offline_access openid profile"
[ -n "$REFRESH_TOKEN" ] && ok "refresh_token issued without prompt=consent" || bad "no refresh_token: $(cat "$WORK/tok.json")"
check "expires_in default" "$(json "$WORK/tok.json" j.expires_in)" 3600

jwt_payload "$ID_TOKEN" > "$WORK/idt.json"
jwt_header "$ID_TOKEN" > "$WORK/idh.json"
echo "# id_token header: $(cat "$WORK/idh.json")"
echo "# id_token claims: $(cat "$WORK/idt.json")"
check "id_token alg" "$(json "$WORK/idh.json" j.alg)" "RS256"
check "id_token iss" "$(json "$WORK/idt.json" j.iss)" "$ISSUER"
check "id_token aud" "$(json "$WORK/idt.json" j.aud)" "$CLIENT_ID"
check "id_token nonce" "$(json "$WORK/idt.json" j.nonce)" "$NONCE"
check "id_token sub" "$(json "$WORK/idt.json" j.sub)" "alice"
check "id_token email" "$(json "$WORK/idt.json" j.email)" "alice@example.com"
check "id_token email_verified" "$(json "$WORK/idt.json" j.email_verified)" "true"
check "id_token name" "$(json "$WORK/idt.json" j.name)" "Alice Example"
check "id_token groups" "$(json "$WORK/idt.json" 'j.groups.join(",")')" "admins,staff"
check "id_token has sid" "$(json "$WORK/idt.json" 'typeof j.sid')" "string"
check "id_token lifetime" "$(json "$WORK/idt.json" 'j.exp - j.iat')" 3600

# Verify the ID token signature against the JWKS with node:crypto.
node -e '
const fs=require("fs"),crypto=require("crypto");
const [h,p,s]=process.argv[1].split(".");
const hdr=JSON.parse(Buffer.from(h,"base64url"));
const jwk=JSON.parse(fs.readFileSync(process.argv[2])).keys.find(k=>k.kid===hdr.kid);
const ok=crypto.verify("sha256",Buffer.from(h+"."+p),crypto.createPublicKey({key:jwk,format:"jwk"}),Buffer.from(s,"base64url"));
process.exit(ok?0:1)' "$ID_TOKEN" "$WORK/jwks.json" && ok "id_token RS256 signature verifies with JWKS" || bad "id_token signature"

# ------------------------------------------------------------ userinfo ---
curl -sS -H "Authorization: Bearer $ACCESS_TOKEN" -o "$WORK/ui.json" -w '%{http_code}' "$USERINFO_EP" > "$WORK/code"
check "userinfo status" "$(cat "$WORK/code")" 200
echo "# userinfo: $(cat "$WORK/ui.json")"
check "userinfo sub/email/name/groups" \
  "$(json "$WORK/ui.json" '[j.sub,j.email,j.email_verified,j.name,j.groups.join("+")].join("|")')" \
  "alice|alice@example.com|true|Alice Example|admins+staff"

# --------------------------------------------------------- introspection ---
curl -sS -u "$CLIENT_ID:$CLIENT_SECRET" -o "$WORK/intro.json" "$INTROSPECT_EP" --data-urlencode "token=$ACCESS_TOKEN"
check "introspection active/sub" "$(json "$WORK/intro.json" '[j.active,j.sub,j.client_id].join("|")')" "true|alice|$CLIENT_ID"

# -------------------------------------------------------------- refresh ---
curl -sS -u "$CLIENT_ID:$CLIENT_SECRET" -o "$WORK/ref.json" -w '%{http_code}' "$TOKEN_EP" \
  --data-urlencode grant_type=refresh_token --data-urlencode "refresh_token=$REFRESH_TOKEN" > "$WORK/code"
check "refresh_token grant status" "$(cat "$WORK/code")" 200
jwt_payload "$(json "$WORK/ref.json" j.id_token)" > "$WORK/idt2.json"
check "refreshed id_token sub/groups" "$(json "$WORK/idt2.json" '[j.sub,j.email,j.groups.join("+")].join("|")')" "alice|alice@example.com|admins+staff"
[ -n "$(json "$WORK/ref.json" 'j.access_token ?? ""')" ] && ok "refresh returned new access_token" || bad "refresh: no access_token"
REFRESH2="$(json "$WORK/ref.json" 'j.refresh_token ?? ""')"
[ -n "$REFRESH2" ] || REFRESH2="$REFRESH_TOKEN"

# SSO: a second /auth with the same cookie jar (live _session) skips the login
# form and redirects straight back with a code; offline_access still honoured.
VERIFIER="$(node -e 'process.stdout.write(require("crypto").randomBytes(32).toString("base64url"))')"
CHAL="$(pkce_challenge "$VERIFIER")"
curl -sS -b "$JAR" -c "$JAR" -D "$WORK/hs" -o /dev/null \
  "$AUTH_EP?client_id=$CLIENT_ID&response_type=code&redirect_uri=$(urlenc "$REDIRECT_URI")&scope=$(urlenc "openid email offline_access")&state=sso&code_challenge=$CHAL&code_challenge_method=S256"
SSO_LOC="$(header "$WORK/hs" location)"
[[ "$SSO_LOC" == "$REDIRECT_URI?"* ]] && ok "SSO: /auth with live session -> redirect_uri directly" || bad "SSO: Location $SSO_LOC"
curl -sS -u "$CLIENT_ID:$CLIENT_SECRET" -o "$WORK/toks.json" "$TOKEN_EP" \
  --data-urlencode grant_type=authorization_code --data-urlencode "code=$(query_param "$SSO_LOC" code)" \
  --data-urlencode "redirect_uri=$REDIRECT_URI" --data-urlencode "code_verifier=$VERIFIER"
check "SSO: scope + refresh_token" "$(json "$WORK/toks.json" '[j.scope.split(" ").sort().join(" "), typeof j.refresh_token].join("|")')" "email offline_access openid|string"
jwt_payload "$(json "$WORK/toks.json" j.id_token)" > "$WORK/idts.json"
check "SSO: id_token has email, no name/groups (not requested)" \
  "$(json "$WORK/idts.json" '[j.sub, j.email, "name" in j, "groups" in j].join("|")')" "alice|alice@example.com|false|false"

# Without offline_access: no refresh token.
LOGIN_SCOPE="openid email" login_flow "$WORK/nooff.jar" bob pw || fatal "bob (no offline_access) login failed"
curl -sS -u "$CLIENT_ID:$CLIENT_SECRET" -o "$WORK/tokn.json" "$TOKEN_EP" \
  --data-urlencode grant_type=authorization_code --data-urlencode "code=$CODE" \
  --data-urlencode "redirect_uri=$REDIRECT_URI" --data-urlencode "code_verifier=$VERIFIER" 
check "scope without offline_access: no refresh_token" "$(json "$WORK/tokn.json" '"refresh_token" in j')" "false"

# prompt=consent: the consent form appears once; offline_access kept.
login_flow "$WORK/consent.jar" bob pw "&prompt=consent" || fatal "prompt=consent login failed"
check "prompt=consent shows consent step" "$CONSENTED" 1
curl -sS -u "$CLIENT_ID:$CLIENT_SECRET" -o "$WORK/tokpc.json" "$TOKEN_EP" \
  --data-urlencode grant_type=authorization_code --data-urlencode "code=$CODE" \
  --data-urlencode "redirect_uri=$REDIRECT_URI" --data-urlencode "code_verifier=$VERIFIER"
check "prompt=consent: refresh_token issued" "$(json "$WORK/tokpc.json" 'typeof j.refresh_token')" "string"

# ---------------------------------------------------------- negatives ------
# Wrong code_verifier is rejected.
login_flow "$WORK/alice2.jar" alice x || fatal "second alice login failed"
curl -sS -u "$CLIENT_ID:$CLIENT_SECRET" -o "$WORK/bad.json" -w '%{http_code}' "$TOKEN_EP" \
  --data-urlencode grant_type=authorization_code --data-urlencode "code=$CODE" \
  --data-urlencode "redirect_uri=$REDIRECT_URI" --data-urlencode "code_verifier=wrong-verifier-wrong-verifier-wrong-verifier-x" > "$WORK/code"
check "wrong code_verifier -> 400 invalid_grant" "$(cat "$WORK/code") $(json "$WORK/bad.json" j.error)" "400 invalid_grant"

# Missing PKCE on /auth is rejected (redirected back with error).
curl -sS -D "$WORK/hp" -o /dev/null \
  "$AUTH_EP?client_id=$CLIENT_ID&response_type=code&redirect_uri=$(urlenc "$REDIRECT_URI")&scope=openid&state=s"
check "auth without PKCE -> error=invalid_request" "$(query_param "$(header "$WORK/hp" location)" error)" "invalid_request"

# Unknown user cannot sign in.
set +e; login_flow "$WORK/eve.jar" eve pw; rc=$?; set -e
check "unknown user login refused (401, no redirect)" "$rc/$LOGIN_STATUS" "2/401"

# --------------------------------------------- email login + secret_post ---
login_flow "$WORK/bob.jar" bob@example.com pw || fatal "bob (by email) login failed"
curl -sS -o "$WORK/tokb.json" -w '%{http_code}' "$TOKEN_EP" \
  --data-urlencode grant_type=authorization_code --data-urlencode "code=$CODE" \
  --data-urlencode "redirect_uri=$REDIRECT_URI" --data-urlencode "code_verifier=$VERIFIER" \
  --data-urlencode "client_id=$CLIENT_ID" --data-urlencode "client_secret=$CLIENT_SECRET" > "$WORK/code"
check "client_secret_post token exchange" "$(cat "$WORK/code")" 200
jwt_payload "$(json "$WORK/tokb.json" j.id_token)" > "$WORK/idtb.json"
check "login by email -> sub bob" "$(json "$WORK/idtb.json" '[j.sub,j.name,j.groups.join("+")].join("|")')" "bob|Bob Builder|staff"
BOB_RT="$(json "$WORK/tokb.json" j.refresh_token)"

# mallory: empty groups array.
login_flow "$WORK/mal.jar" mallory pw || fatal "mallory login failed"
curl -sS -u "$CLIENT_ID:$CLIENT_SECRET" -o "$WORK/tokm.json" "$TOKEN_EP" \
  --data-urlencode grant_type=authorization_code --data-urlencode "code=$CODE" \
  --data-urlencode "redirect_uri=$REDIRECT_URI" --data-urlencode "code_verifier=$VERIFIER"
jwt_payload "$(json "$WORK/tokm.json" j.id_token)" > "$WORK/idtm.json"
check "mallory groups empty" "$(json "$WORK/idtm.json" '[j.sub,j.email,JSON.stringify(j.groups)].join("|")')" 'mallory|mallory@evil.example|[]'

# ------------------------------------------------- IDP_USERS_FILE ---------
set +e; login_flow "$WORK/carol0.jar" carol wrong-pw; rc=$?; set -e
check "file user with password: wrong password refused" "$rc/$LOGIN_STATUS" "2/401"
login_flow "$WORK/carol.jar" carol carol-pw || fatal "carol login failed"
curl -sS -u "$CLIENT_ID:$CLIENT_SECRET" -o "$WORK/tokc.json" "$TOKEN_EP" \
  --data-urlencode grant_type=authorization_code --data-urlencode "code=$CODE" \
  --data-urlencode "redirect_uri=$REDIRECT_URI" --data-urlencode "code_verifier=$VERIFIER"
jwt_payload "$(json "$WORK/tokc.json" j.id_token)" > "$WORK/idtc.json"
check "file user carol" "$(json "$WORK/idtc.json" '[j.sub,j.email,j.groups.join("+")].join("|")')" "carol|carol@example.com|contractors"
CAROL_RT="$(json "$WORK/tokc.json" j.refresh_token)"

# Change bob's groups at runtime; the refresh grant must see the new groups.
echo '[{"sub":"bob","email":"bob@example.com","name":"Bob Builder","groups":["staff","oncall"]}]' > "$USERS_FILE"
curl -sS -u "$CLIENT_ID:$CLIENT_SECRET" -o "$WORK/refb.json" "$TOKEN_EP" \
  --data-urlencode grant_type=refresh_token --data-urlencode "refresh_token=$BOB_RT"
jwt_payload "$(json "$WORK/refb.json" j.id_token)" > "$WORK/idtb2.json"
check "runtime groups change visible after refresh" "$(json "$WORK/idtb2.json" 'j.groups.join("+")')" "staff+oncall"
# carol is no longer in the file: her refresh token stops working.
curl -sS -u "$CLIENT_ID:$CLIENT_SECRET" -o "$WORK/refc.json" -w '%{http_code}' "$TOKEN_EP" \
  --data-urlencode grant_type=refresh_token --data-urlencode "refresh_token=$CAROL_RT" > "$WORK/code"
check "user removed from IDP_USERS_FILE: refresh fails" "$(cat "$WORK/code") $(json "$WORK/refc.json" j.error)" "400 invalid_grant"
# "disabled": true on a built-in user refuses the login.
echo '[{"sub":"mallory","email":"mallory@evil.example","name":"Mallory","groups":[],"disabled":true}]' > "$USERS_FILE"
set +e; login_flow "$WORK/mal2.jar" mallory pw; rc=$?; set -e
check "disabled user login refused" "$rc/$LOGIN_STATUS" "2/401"

# ------------------------------------------------------------ revocation ---
curl -sS -u "$CLIENT_ID:$CLIENT_SECRET" -o /dev/null -w '%{http_code}' "$REVOKE_EP" \
  --data-urlencode "token=$ACCESS_TOKEN" > "$WORK/code"
check "revocation status" "$(cat "$WORK/code")" 200
curl -sS -u "$CLIENT_ID:$CLIENT_SECRET" -o "$WORK/intro2.json" "$INTROSPECT_EP" --data-urlencode "token=$ACCESS_TOKEN"
check "revoked token inactive" "$(json "$WORK/intro2.json" j.active)" "false"

# ------------------------------------------------- RP-initiated logout ---
# 1. GET /session/end?id_token_hint=..&post_logout_redirect_uri=..&state=.. -> 200 confirm form with xsrf
curl -sS -b "$JAR" -c "$JAR" -D "$WORK/hl1" -o "$WORK/logout.html" \
  "$END_SESSION_EP?id_token_hint=$ID_TOKEN&post_logout_redirect_uri=$(urlenc "$POST_LOGOUT_URI")&state=bye"
check "logout confirm page status" "$(status "$WORK/hl1")" 200
XSRF="$(grep -o 'name="xsrf" value="[^"]*"' "$WORK/logout.html" | sed 's/.*value="\([^"]*\)"/\1/')"
[ -n "$XSRF" ] && ok "logout form has xsrf" || bad "no xsrf in logout form"
grep -q "action=\"$ISSUER/session/end/confirm\"" "$WORK/logout.html" && ok "logout form posts to /session/end/confirm" || bad "logout form action"
# 2. POST /session/end/confirm xsrf=..&logout=yes -> 303 Location: post_logout_redirect_uri?state=..
curl -sS -b "$JAR" -c "$JAR" -D "$WORK/hl2" -o /dev/null \
  --data-urlencode "xsrf=$XSRF" --data-urlencode logout=yes "$ISSUER/session/end/confirm"
check "logout confirm status" "$(status "$WORK/hl2")" 303
check "logout redirect" "$(header "$WORK/hl2" location)" "$POST_LOGOUT_URI?state=bye"
# Back-channel logout token delivered to the RP's backchannel_logout_uri.
for _ in $(seq 1 50); do [ -s "$WORK/bcl.log" ] && break; sleep 0.1; done
if [ -s "$WORK/bcl.log" ]; then
  LT="$(head -n1 "$WORK/bcl.log" | sed -n 's/.*logout_token=\([^& ]*\).*/\1/p')"
  jwt_payload "$LT" > "$WORK/lt.json"
  echo "# logout_token claims: $(cat "$WORK/lt.json")"
  check "back-channel logout_token sub/sid/event" \
    "$(json "$WORK/lt.json" '[j.sub, j.sid, Object.keys(j.events).join()].join("|")')" \
    "alice|$(json "$WORK/idt.json" j.sid)|http://schemas.openid.net/event/backchannel-logout"
else
  bad "no back-channel logout request received"
fi
# Session is gone: /auth now asks for login again.
curl -sS -b "$JAR" -c "$JAR" -D "$WORK/hl3" -o /dev/null \
  "$AUTH_EP?client_id=$CLIENT_ID&response_type=code&redirect_uri=$(urlenc "$REDIRECT_URI")&scope=openid&state=s&code_challenge=$(node -e 'process.stdout.write(require("crypto").createHash("sha256").update("x".repeat(43)).digest("base64url"))')&code_challenge_method=S256"
[[ "$(header "$WORK/hl3" location)" == /interaction/* ]] && ok "after logout /auth requires login again" || bad "after logout: $(header "$WORK/hl3" location)"
# oidc-provider's default: logout=yes revokes the session's grants, so even
# offline_access refresh tokens stop working.
curl -sS -u "$CLIENT_ID:$CLIENT_SECRET" -o "$WORK/ref3.json" -w '%{http_code}' "$TOKEN_EP" \
  --data-urlencode grant_type=refresh_token --data-urlencode "refresh_token=$REFRESH2" > "$WORK/code"
check "refresh token revoked by RP-initiated logout (grant revoked)" "$(cat "$WORK/code") $(json "$WORK/ref3.json" j.error)" "400 invalid_grant"

# --------------------------------------------------------------- stdout ---
check "stdout holds only the READY line" "$(wc -l < "$WORK/idp.out" | tr -d ' ')" 1

# ------------------------------------------------------------- SIGTERM ---
kill -TERM "$IDP_PID"
for _ in $(seq 1 50); do kill -0 "$IDP_PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$IDP_PID" 2>/dev/null; then bad "provider still running after SIGTERM"; else
  set +e; wait "$IDP_PID"; rc=$?; set -e
  check "provider exit code after SIGTERM" "$rc" 0
fi
IDP_PID=""

echo "# idp stderr (first lines):"; head -n 5 "$WORK/idp.err" | sed 's/^/#   /'
echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
