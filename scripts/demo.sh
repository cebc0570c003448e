#!/usr/bin/env bash
# The seed's demo, end to end, on one machine (Debian 12; run as root for the
# package install, or with everything already installed):
#
#   1. installs dependencies (scripts/deps.sh) and builds build/portico;
#   2. generates a fresh self-signed example.com certificate (the seed's shape:
#      CN and DNS SAN example.com, keyUsage digitalSignature, EKU serverAuth);
#   3. starts nginx with it on 127.0.0.1:8443 (TLS 1.2, as in the seed's stats);
#   4. writes examples/backend-tls/ plus a ConfigMap `ca` holding that
#      certificate into a temp config dir and starts `portico run` on it
#      (listener 8080, admin 127.0.0.1:19000);
#   5. runs the seed's curl (expects 200) and prints the seed's two stats;
#   6. shows the failure modes: the seed's own CA (expired 2025-04-09) in the
#      ConfigMap, and a backend serving a certificate with the seed's validity
#      dates (503 "certificate has expired");
#   7. stops everything it started.
#
# Environment: PORTICO_BIN=path uses that binary and skips deps/build;
# SKIP_BUILD=1 skips deps/build and uses build/portico; KEEP_TMP=1 keeps the
# temp dir (configs, logs). Exit status: non-zero when the 200 step fails.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

bold() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
note() { printf '   %s\n' "$*"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- 1. build
if [ -n "${PORTICO_BIN:-}" ]; then
  portico="$PORTICO_BIN"
elif [ "${SKIP_BUILD:-0}" = 1 ]; then
  portico="$root/build/portico"
else
  bold "Installing dependencies and building (scripts/deps.sh, scripts/build.sh)"
  if [ "$(id -u)" = 0 ]; then
    scripts/deps.sh
  else
    note "not root: skipping scripts/deps.sh (install its packages yourself if missing)"
  fi
  scripts/build.sh portico
  portico="$root/build/portico"
fi
[ -x "$portico" ] || die "$portico is not built"
for tool in openssl curl python3; do
  command -v "$tool" >/dev/null || die "$tool is not installed (run scripts/deps.sh as root)"
done
nginx_bin="$(command -v nginx || true)"
[ -n "$nginx_bin" ] || { [ -x /usr/sbin/nginx ] && nginx_bin=/usr/sbin/nginx; } ||
  die "nginx is not installed (run scripts/deps.sh as root)"

# ---------------------------------------------------------------- processes
tmp="$(mktemp -d /tmp/portico-demo.XXXXXX)"
nginx_pid=""
portico_pid=""
cleanup() {
  local rc=$?
  set +e
  if [ -n "$portico_pid" ] && kill -0 "$portico_pid" 2>/dev/null; then
    kill -TERM "$portico_pid"
    wait "$portico_pid" 2>/dev/null
  fi
  if [ -n "$nginx_pid" ] && kill -0 "$nginx_pid" 2>/dev/null; then
    kill -QUIT "$nginx_pid"  # graceful; its workers exit with it
    for _ in $(seq 50); do kill -0 "$nginx_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$nginx_pid" 2>/dev/null
    wait "$nginx_pid" 2>/dev/null
  fi
  if [ "${KEEP_TMP:-0}" = 1 ]; then
    echo "demo: kept $tmp"
  else
    rm -rf "$tmp"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- ports
# The seed's ports when free; otherwise any free loopback port, said aloud.
port_free() {
  python3 - "$1" <<'EOF'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
EOF
}
any_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
pick_port() {  # pick_port WANT WHAT
  if port_free "$1"; then
    echo "$1"
  else
    local p
    p="$(any_port)"
    echo "demo: port $1 ($2) is busy, using $p instead" >&2
    echo "$p"
  fi
}
gw_port="$(pick_port 8080 "Gateway listener")"
admin_port="$(pick_port 19000 "admin")"
nginx_port="$(pick_port 8443 "nginx")"

# ---------------------------------------------------------------- 2. certificate
bold "Generating a fresh self-signed example.com certificate"
mkdir -p "$tmp/certs" "$tmp/config" "$tmp/nginx/logs"
cat >"$tmp/certs/leaf.cnf" <<'EOF'
[ req ]
distinguished_name = dn
prompt = no
[ dn ]
CN = example.com
[ leaf ]
subjectAltName = DNS:example.com
keyUsage = digitalSignature
extendedKeyUsage = serverAuth
EOF
openssl req -x509 -config "$tmp/certs/leaf.cnf" -extensions leaf -newkey rsa:2048 -nodes \
  -keyout "$tmp/certs/tls.key" -out "$tmp/certs/tls.crt" -days 30 2>/dev/null
openssl x509 -in "$tmp/certs/tls.crt" -noout -subject -ext subjectAltName -dates | sed 's/^/   /'

# ---------------------------------------------------------------- 3. nginx
bold "Starting nginx with that certificate on 127.0.0.1:$nginx_port (TLSv1.2)"
user_line=""
[ "$(id -u)" = 0 ] && user_line="user root;"  # workers must read the key in $tmp
cat >"$tmp/nginx/nginx.conf" <<EOF
$user_line
worker_processes 1;
daemon off;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/logs/error.log notice;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $tmp/nginx/body;
  proxy_temp_path $tmp/nginx/proxy;
  fastcgi_temp_path $tmp/nginx/fastcgi;
  uwsgi_temp_path $tmp/nginx/uwsgi;
  scgi_temp_path $tmp/nginx/scgi;
  server {
    listen 127.0.0.1:$nginx_port ssl;
    ssl_certificate $tmp/certs/tls.crt;
    ssl_certificate_key $tmp/certs/tls.key;
    ssl_protocols TLSv1.2;
    location / {
      default_type text/plain;
      return 200 'hello from nginx over \$ssl_protocol (SNI \$ssl_server_name)\n';
    }
  }
}
EOF
"$nginx_bin" -e "$tmp/nginx/logs/error.log" -c "$tmp/nginx/nginx.conf" -p "$tmp/nginx" &
nginx_pid=$!
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$nginx_port") 2>/dev/null && break
  kill -0 "$nginx_pid" 2>/dev/null || { cat "$tmp/nginx/logs/error.log" >&2; die "nginx did not start"; }
  sleep 0.1
done

# ---------------------------------------------------------------- 4. portico
bold "Writing examples/backend-tls/ and ConfigMap ca into $tmp/config"
write_configmap() {  # write_configmap PEM_FILE
  local indented
  indented="$(sed 's/^/    /' "$1")"
  awk -v pem="$indented" '{ if ($0 == "@CA_PEM@") print pem; else print }' \
    examples/backend-tls/ca-configmap.yaml.tmpl >"$tmp/ca-configmap.yaml.new"
  mv "$tmp/ca-configmap.yaml.new" "$tmp/config/ca-configmap.yaml"  # atomic for the watcher
}
for f in gateway.yaml nginx-service.yaml backend-tls-policy.yaml httproute.yaml; do
  cp "examples/backend-tls/$f" "$tmp/config/$f"
done
# Only the two numbers the machine decides: the listener and nginx's port.
sed -i "s/port: 8080/port: $gw_port/" "$tmp/config/gateway.yaml"
awk -v p="$nginx_port" '/^kind: EndpointSlice/ { s = 1 } s && /  port: 8443/ { sub(/8443/, p) } 1' \
  "$tmp/config/nginx-service.yaml" >"$tmp/x" && mv "$tmp/x" "$tmp/config/nginx-service.yaml"
write_configmap "$tmp/certs/tls.crt"
ls "$tmp/config" | sed 's/^/   /'

bold "Starting portico (listener 127.0.0.1:$gw_port, admin 127.0.0.1:$admin_port)"
note "$portico run --config $tmp/config --admin-address 127.0.0.1:$admin_port --listen-address 127.0.0.1"
"$portico" run --config "$tmp/config" --admin-address "127.0.0.1:$admin_port" \
  --listen-address 127.0.0.1 --workers 2 --drain-timeout 1 --access-log off \
  >"$tmp/portico.log" 2>&1 &
portico_pid=$!
for _ in $(seq 100); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$admin_port/ready")" = 200 ] &&
    (exec 3<>"/dev/tcp/127.0.0.1/$gw_port") 2>/dev/null && break
  kill -0 "$portico_pid" 2>/dev/null || { cat "$tmp/portico.log" >&2; die "portico exited"; }
  sleep 0.1
done

# ---------------------------------------------------------------- 5. verify
host="example.com:$gw_port"
url="http://localhost:$gw_port/"
bold "Verify the TLS connection: curl -vi $url -H \"host: $host\""
code="$(curl -sS -o "$tmp/body" -w '%{http_code}' "$url" -H "host: $host" || true)"
curl -sS -vi "$url" -H "host: $host" 2>&1 | sed 's/^/   /' || true
if [ "$code" != 200 ]; then
  note "expected 200, got $code"
  note "portico log:"; tail -20 "$tmp/portico.log" | sed 's/^/     /'
  die "the seed's request did not return 200"
fi

stats() { curl -s "http://127.0.0.1:$admin_port/stats"; }
bold "The seed's stats from http://127.0.0.1:$admin_port/stats"
seed_stats="$(stats | grep -E '^cluster\.kube_default_nginx_8443\.ssl\.(versions\.TLSv1\.2|handshake):' || true)"
if [ -n "$seed_stats" ]; then
  printf '%s\n' "$seed_stats" | sed 's/^/   /'
else
  note "(not found: the ssl.* stats of cluster kube_default_nginx_8443 are missing)"
fi

# ---------------------------------------------------------------- 6. failure modes
# Waits until the route answers WANT (the file watcher reloads within ~100 ms).
wait_code() {
  local want="$1" got=""
  for _ in $(seq 50); do
    got="$(curl -s -o "$tmp/body" -w '%{http_code}' "$url" -H "host: $host" || true)"
    [ "$got" = "$want" ] && return 0
    sleep 0.1
  done
  note "(still $got after 5s, expected $want)"
  return 1
}
show_failure() {
  note "HTTP $(curl -s -o "$tmp/body" -w '%{http_code}' "$url" -H "host: $host")"
  note "body: $(cat "$tmp/body")"
  note "log:  $(grep -iE 'tls|verify|certificate' "$tmp/portico.log" | tail -1)"
  stats | grep -E '^cluster\.kube_default_nginx_8443\.ssl\.(fail_verify_error|connection_error):' |
    sed 's/^/   /' || true
}
# Waits until the body contains TEXT (a reload can keep the status the same).
wait_body() {
  for _ in $(seq 50); do
    curl -s -o "$tmp/body" "$url" -H "host: $host" || true
    grep -q "$1" "$tmp/body" && return 0
    sleep 0.1
  done
  note "(body still lacks '$1' after 5s)"
  return 1
}

# The seed's ConfigMap certificate, verbatim (public; it expired 2025-04-09).
cat >"$tmp/certs/seed-ca.crt" <<'EOF'
-----BEGIN CERTIFICATE-----
MIIC6zCCAdOgAwIBAgIJAPdgL5W5vugOMA0GCSqGSIb3DQEBCwUAMBYxFDASBgNV
BAMMC2V4YW1wbGUuY29tMB4XDTI1MDMxMDIyMDY0OVoXDTI1MDQwOTIyMDY0OVow
FjEUMBIGA1UEAwwLZXhhbXBsZS5jb20wggEiMA0GCSqGSIb3DQEBAQUAA4IBDwAw
ggEKAoIBAQC46DSkpngZavNVgByw/h7rbKyvgzp2wGDW/fPGL0/rkLcKIsIiNgHH
6vA0UPTSI3YsHeu+CnQCEhZWk9KhQ2q8etSynUoizIrj2iuxKTEsL3SJ7cI03cpH
iQoMuUqp4L4lA6/YXsLkXjHWtnTLKjsvsrjBFiu96ueoje6B2sfcSlYRFI1WgMgZ
QP+LALy9tVtMManIqKVr63BG0884AghF3sPo5ryOEP/1Oc9F6Ivf67JfNjMhuBHa
hT500hYyuxzjgUPoMWyX1FQ7NL/OWUJ5EXuSnxpDb7edVDVCz+z199S76wpAKEe0
hoJG5Ahw1vWNRRBO8gnsSjLAHEw0nXpvAgMBAAGjPDA6MBYGA1UdEQQPMA2CC2V4
YW1wbGUuY29tMAsGA1UdDwQEAwIHgDATBgNVHSUEDDAKBggrBgEFBQcDATANBgkq
hkiG9w0BAQsFAAOCAQEANRIdAdlJgSsgBdUcO7fmAKAZtlUUPWHa1nq5hzxCkdBj
hnGBCE4d8tyffTkL4kZ3cQZmDjeb7KiVL9/OBDjbe3coaKrNeFRZ+0XTJtcnRzrB
gRpnXAJvYCbq4AIOkGdUfp2mw1fLdoNaoW8snb6RMV/7YrOSmhUa8H9YeiW3bZIh
oOhsl5u5DXaInkTUR4ZOVV6UJVsG+JnN71nFGikcKKMGgOC2rpFP658M3jCHX5yx
EGqH5JRIpCX9epfIvFeJWJY8u8G4pg3Sryko72RWwUQBQ5HGInO0nYGU1ff/enW6
ywK+felXBiCUKrWKFjChgwmrs2bGAUfegKF/TQtvWQ==
-----END CERTIFICATE-----
EOF
bold "Failure mode 1: the seed's own ConfigMap certificate (expired on 2025-04-09)"
openssl x509 -in "$tmp/certs/seed-ca.crt" -noout -subject -enddate | sed 's/^/   /'
note "It is not the certificate this nginx serves, so nothing verifies against it:"
write_configmap "$tmp/certs/seed-ca.crt"
wait_code 503 || true
show_failure
note "portico check on the same config:"
"$portico" check "$tmp/config" 2>&1 | grep -E 'backend default/nginx|warning' | head -8 |
  sed 's/^/     /' || true
note "the admin port's /certs and Envoy's expiry gauge say the same:"
curl -s "http://127.0.0.1:$admin_port/certs" |
  grep -E '"(name|days_until_expiration|expiration_time)"' | sed 's/^ */     /' || true
stats | grep -F 'server.days_until_first_cert_expiring' | sed 's/^/     /' || true

bold "Failure mode 2: a backend serving a certificate with the seed's dates (expired)"
# What the seed's manifests meet today: the backend's certificate ran out on
# 2025-04-09. `openssl ca` takes explicit dates, so no clock tricks are needed.
mkdir -p "$tmp/certs/expired"
: >"$tmp/certs/expired/index.txt"
echo 01 >"$tmp/certs/expired/serial"
cat >"$tmp/certs/expired/ca.cnf" <<EOF
[ ca ]
default_ca = d
[ d ]
database = $tmp/certs/expired/index.txt
new_certs_dir = $tmp/certs/expired
serial = $tmp/certs/expired/serial
default_md = sha256
policy = p
unique_subject = no
copy_extensions = none
[ p ]
commonName = supplied
[ leaf ]
subjectAltName = DNS:example.com
keyUsage = digitalSignature
extendedKeyUsage = serverAuth
EOF
openssl req -new -newkey rsa:2048 -nodes -keyout "$tmp/certs/expired/tls.key" \
  -subj /CN=example.com -out "$tmp/certs/expired/req.csr" 2>/dev/null
openssl ca -batch -notext -config "$tmp/certs/expired/ca.cnf" -extensions leaf -selfsign \
  -keyfile "$tmp/certs/expired/tls.key" -startdate 20250310220649Z -enddate 20250409220649Z \
  -in "$tmp/certs/expired/req.csr" -out "$tmp/certs/expired/tls.crt" 2>/dev/null
openssl x509 -in "$tmp/certs/expired/tls.crt" -noout -subject -dates | sed 's/^/   /'
cp "$tmp/certs/expired/tls.crt" "$tmp/certs/tls.crt"
cp "$tmp/certs/expired/tls.key" "$tmp/certs/tls.key"
kill -HUP "$nginx_pid"  # nginx re-reads its certificate
sleep 0.5
write_configmap "$tmp/certs/expired/tls.crt"
wait_body 'certificate has expired' || true
show_failure

bold "Done: 200 with a fresh certificate, a clear 503 with the seed's expired one"
note "cleaning up nginx (pid $nginx_pid) and portico (pid $portico_pid)"
