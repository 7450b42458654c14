#!/bin/bash
# WS VM: the odin-ws server as a systemd service, kernel and limits tuned for many sockets.
set -euo pipefail

install_base
ensure_odin_layout
apply_sysctl /etc/sysctl.d/90-odin-ws.conf
place /etc/security/limits.d/90-odin.conf || true
install_node
install_ops_agent
converge_service odin-ws.service /etc/odin/ws.env /etc/systemd/system/odin-ws.service
log "ws VM ready (kafka ${ODIN_KAFKA_BROKERS}, ${ODIN_WS_SHARDS} shards)"
