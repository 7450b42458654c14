#!/bin/bash
# WS VM: the odin-ws server as a systemd service, kernel and limits tuned for many sockets.
# Config and units first, then packages, then the auth secret, then (re)start, then the agent.
set -euo pipefail

ensure_odin_layout
apply_sysctl /etc/sysctl.d/90-odin-ws.conf
place /etc/security/limits.d/90-odin.conf || true
place /etc/odin/ws.env || true
place /etc/systemd/system/odin-ws.service || true
systemctl daemon-reload

install_base
install_node

# Auth: the newest enabled versions of the secret (two during a rotation window) into a file
# only the service user can read; the server reads WS_AUTH_SECRET_FILE. The value never passes
# through metadata, this script or Terraform state.
auth_rc=0
fetch_secret "$ODIN_AUTH_SECRET_NAME" /etc/odin/auth-secret 2 odin:odin 0400 || auth_rc=$?
case $auth_rc in
  0)
    echo "WS_AUTH_SECRET_FILE=/etc/odin/auth-secret" >"$ODIN_STAGE/etc/odin/ws-auth.env"
    place /etc/odin/ws-auth.env || true
    log "auth ON: $(wc -l </etc/odin/auth-secret) secret(s) from Secret Manager $ODIN_AUTH_SECRET_NAME"
    ;;
  2)
    remove_file /etc/odin/ws-auth.env
    log "auth OFF: Secret Manager $ODIN_AUTH_SECRET_NAME has no enabled version; the server runs WITHOUT auth"
    ;;
  *)
    # Never fall back to no auth on a transient error: keep whatever this VM had, and fail.
    log "auth secret $ODIN_AUTH_SECRET_NAME could not be read (exit $auth_rc): odin-ws left as it was"
    exit 1
    ;;
esac

start_service odin-ws.service /etc/odin/ws.env /etc/systemd/system/odin-ws.service /etc/odin/auth-secret /etc/odin/ws-auth.env
mark_applied
log "ws VM ready (kafka ${ODIN_KAFKA_BROKERS}, ${ODIN_WS_SHARDS} shards)"
install_ops_agent
