# The local stack, sourced by scripts/test and scripts/demo: moto server on a free loopback port,
# with the AWS environment pointed at it. `stack_start` exports the variables; `stack_stop` ends it.

STACK_DIR="${STACK_DIR:-$PWD/.stack}"

free_port() {
  .venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

stack_start() {
  mkdir -p "$STACK_DIR"
  local port
  port=$(free_port)
  .venv/bin/moto_server -H 127.0.0.1 -p "$port" >"$STACK_DIR/moto.log" 2>&1 &
  echo $! >"$STACK_DIR/moto.pid"
  export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
  export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
  unset AWS_SESSION_TOKEN AWS_PROFILE
  # Outside Lambda the SDK would otherwise probe the instance metadata address.
  export AWS_EC2_METADATA_DISABLED=true
  for _ in $(seq 1 100); do
    if .venv/bin/python -c "import urllib.request as u; u.urlopen('$AWS_ENDPOINT_URL/moto-api/')" 2>/dev/null; then
      return 0
    fi
    sleep 0.2
  done
  echo "stack: moto server did not start; see $STACK_DIR/moto.log" >&2
  return 1
}

stack_stop() {
  if [ -f "$STACK_DIR/moto.pid" ]; then
    kill "$(cat "$STACK_DIR/moto.pid")" 2>/dev/null || true
    rm -f "$STACK_DIR/moto.pid"
  fi
}
