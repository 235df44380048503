#!/bin/sh
# Use the operator's certificate from ./certs when present; otherwise the
# gateway generates a self-signed one into $DATA_DIR/tls at first start.
set -eu
if [ -z "${TLS_CERT_FILE:-}" ] && [ -r /certs/fullchain.pem ] && [ -r /certs/privkey.pem ]; then
  export TLS_CERT_FILE=/certs/fullchain.pem TLS_KEY_FILE=/certs/privkey.pem
fi
exec "$@"
