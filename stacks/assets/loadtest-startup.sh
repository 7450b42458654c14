#!/bin/bash
# Load-test VM: node for /opt/odin/current/loadtest.mjs (shipped by deploy), limits tuned for
# tens of thousands of outgoing connections. The load generator is started by the ops scripts
# with --source-ips over the NIC's alias range (the guest agent routes it to this VM).
set -euo pipefail

ensure_odin_layout
apply_sysctl /etc/sysctl.d/90-odin-loadtest.conf
place /etc/security/limits.d/90-odin.conf || true
install_base
install_node
mark_applied
log "loadtest VM ready (target ws://${ODIN_WS_INTERNAL_IP}:3004/ws, extra source range '${ODIN_SOURCE_CIDR}')"
install_ops_agent
