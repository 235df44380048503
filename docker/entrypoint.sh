#!/bin/sh
# Use the operator's certificate from /certs (./certs in compose) for STARTTLS;
# with neither file there the gateway generates a self-signed one into
# $DATA_DIR/tls at first start. As soon as either file is there both are
# used, so a missing or unreadable one (privkey.pem of mode 0600 owned by
# root: the container runs as uid 1000) stops the gateway with a line naming
# it instead of silently falling back to the self-signed certificate.
set -eu
certs=${POSTROOM_CERTS_DIR:-/certs}
if [ -z "${TLS_CERT_FILE:-}" ] && [ -z "${TLS_KEY_FILE:-}" ] && { [ -e "$certs/fullchain.pem" ] || [ -e "$certs/privkey.pem" ]; }; then
  export TLS_CERT_FILE="$certs/fullchain.pem" TLS_KEY_FILE="$certs/privkey.pem"
fi
exec "$@"
