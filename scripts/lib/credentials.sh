# Test credentials shared by scripts/pulsar-broker and scripts/pulsar-cluster (sourced, not run):
# HS256 tokens, a basic-auth user, and a small CA with broker and client certificates. Each
# function takes the directory the files go to; existing files are kept (restarts reuse them).
# Needs python3 and openssl.

mint_token() {  # mint_token SECRET_FILE ROLE [EXPIRY_SECONDS] -> HS256 JWT on stdout (stdlib only)
  python3 - "$@" <<'PY'
import base64, hashlib, hmac, json, sys, time
b64 = lambda x: base64.urlsafe_b64encode(x).rstrip(b"=")
key = open(sys.argv[1], "rb").read()
claims = {"sub": sys.argv[2]}
if len(sys.argv) > 3:
    claims["exp"] = int(time.time()) + int(sys.argv[3])
enc = lambda o: b64(json.dumps(o, separators=(",", ":")).encode())
signing_input = enc({"alg": "HS256", "typ": "JWT"}) + b"." + enc(claims)
sig = b64(hmac.new(key, signing_input, hashlib.sha256).digest())
print((signing_input + b"." + sig).decode())
PY
}

make_auth() {  # make_auth DIR: secret key, role tokens (admin, client, proxy) and a basic-auth user
  local a=$1; mkdir -p "$a"
  [ -s "$a/secret.key" ] || head -c 32 /dev/urandom > "$a/secret.key"
  mint_token "$a/secret.key" admin > "$a/admin.token"
  mint_token "$a/secret.key" client > "$a/client.token"
  mint_token "$a/secret.key" proxy > "$a/proxy.token"
  if [ ! -s "$a/basic.htpasswd" ]; then
    echo "client:$(openssl passwd -apr1 client-password)" > "$a/basic.htpasswd"
  fi
}

make_certs() {  # make_certs DIR: CA, server cert (127.0.0.1/localhost), client cert (CN=client), and an unrelated CA
  local c=$1; mkdir -p "$c"
  [ -s "$c/client.cert.pem" ] && [ -s "$c/other-ca.cert.pem" ] && return 0
  (
    cd "$c"
    for ca in ca other-ca; do
      openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=pulsar-sansio test $ca" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
        -keyout "$ca.key.pem" -out "$ca.cert.pem" 2>/dev/null
    done
    issue() {  # issue NAME CN EXTENSIONS
      openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1.key-pk8.pem" 2>/dev/null
      openssl req -new -key "$1.key-pk8.pem" -subj "/CN=$2" -out "$1.csr" 2>/dev/null
      printf '%s\n' "$3" > "$1.ext"
      openssl x509 -req -in "$1.csr" -CA ca.cert.pem -CAkey ca.key.pem -CAcreateserial -days 3650 \
        -extfile "$1.ext" -out "$1.cert.pem" 2>/dev/null
      rm -f "$1.csr" "$1.ext"
    }
    issue broker localhost "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost"
    issue client client "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
  )
}

