#!/bin/bash
# Backend VM: Redpanda (single node), Redpanda Console, Prometheus, Grafana and the publisher.
# Config and units first, then packages (pinned), then (re)start what changed, then the agent.
set -euo pipefail

ensure_odin_layout
apply_sysctl /etc/sysctl.d/90-odin-backend.conf
place /etc/odin/publisher.env || true
place /etc/systemd/system/odin-publisher.service || true
place /etc/systemd/system/grafana-server.service.d/odin.conf || true
place /var/lib/odin/dashboards/odin-ws.json || true
systemctl daemon-reload

install_base
install_node

# --- Redpanda: Kafka API on :9092, advertised on this VM's internal IP -------------------
# (linux.pkg.redpanda.com: the old dl.redpanda.com repository shut down on 2026-09-28.)
if ! apt-cache show redpanda >/dev/null 2>&1; then
  retry curl -fsSL https://linux.pkg.redpanda.com/setup-redpanda.deb.sh -o /tmp/setup-redpanda.deb.sh
  retry bash /tmp/setup-redpanda.deb.sh
  apt_update
fi
apt_install "redpanda=${ODIN_PIN_REDPANDA}" "redpanda-console=${ODIN_PIN_REDPANDA_CONSOLE}"
place /etc/redpanda/redpanda.yaml redpanda:redpanda || true
place /etc/default/redpanda || true
start_service redpanda /etc/redpanda/redpanda.yaml /etc/default/redpanda
# Topics are created here, not auto-created: a typo in a client must not make a new topic.
# If the broker does not come up, carry on so Prometheus and Grafana are there to diagnose it.
if wait_for "redpanda" 90 rpk cluster info -X brokers=127.0.0.1:9092; then
  IFS=',' read -r -a topics <<<"$ODIN_KAFKA_TOPICS"
  for topic in "${topics[@]}"; do
    if ! rpk topic describe "$topic" -X brokers=127.0.0.1:9092 >/dev/null 2>&1; then
      rpk topic create "$topic" -p "$ODIN_KAFKA_PARTITIONS" -r 1 -X brokers=127.0.0.1:9092
    fi
  done
fi

# --- Redpanda Console on :8080 (IAP only) ----------------------------------------------------
place /etc/redpanda/redpanda-console-config.yaml || true
start_service redpanda-console /etc/redpanda/redpanda-console-config.yaml

# --- Prometheus on :9090, scraping the WS VM and the publisher -------------------------------
apt_install "prometheus=${ODIN_PIN_PROMETHEUS}"
place /etc/prometheus/prometheus.yml || true
start_service prometheus /etc/prometheus/prometheus.yml

# --- Grafana on :3010 (IAP only) with a provisioned datasource and the odin-ws dashboard -----
apt_repo grafana https://apt.grafana.com/gpg.key "https://apt.grafana.com stable main"
apt_install "grafana=${ODIN_PIN_GRAFANA}"
place /etc/grafana/provisioning/datasources/odin.yaml root:grafana || true
place /etc/grafana/provisioning/dashboards/odin.yaml root:grafana || true
chgrp grafana /var/lib/odin/dashboards/odin-ws.json
# The admin password: the newest enabled version of the Secret Manager secret; without one, a
# random password made here once (read it over IAP SSH). Grafana reads the file through
# $__file{} in the drop-in (Grafana expands it itself; the Debian unit has no *_FILE support).
pw=/etc/odin/grafana-admin-password
pw_rc=0
fetch_secret "$ODIN_GRAFANA_SECRET_NAME" "$pw" 1 root:grafana 0440 || pw_rc=$?
if ((pw_rc == 2)); then
  if [[ ! -s $pw ]]; then
    (umask 027 && head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$pw")
    chgrp grafana "$pw"
  fi
  log "grafana: no version in Secret Manager $ODIN_GRAFANA_SECRET_NAME; using this VM's generated password in $pw"
elif ((pw_rc != 0)); then
  log "grafana: secret $ODIN_GRAFANA_SECRET_NAME could not be read (exit $pw_rc); the password stays as it was"
fi
start_service grafana-server /etc/grafana/provisioning/datasources/odin.yaml /etc/grafana/provisioning/dashboards/odin.yaml \
  /var/lib/odin/dashboards/odin-ws.json /etc/systemd/system/grafana-server.service.d/odin.conf "$pw"
# admin_password only applies when Grafana creates its database: an existing admin gets the
# current password through the CLI whenever the file differs from what was applied last.
applied=/var/lib/odin/grafana-password-applied.sha256
if [[ -s $pw ]] && [[ "$(sha256sum <"$pw")" != "$(cat "$applied" 2>/dev/null)" ]] &&
  wait_for grafana 60 curl -fsS -m 3 http://127.0.0.1:3010/api/health; then
  if runuser -u grafana -- grafana-cli --homepath /usr/share/grafana --config /etc/grafana/grafana.ini \
    admin reset-admin-password --password-from-stdin <"$pw" >/dev/null; then
    sha256sum <"$pw" >"$applied"
    log "grafana admin password applied"
  else
    log "grafana admin password NOT applied (grafana-cli failed)"
  fi
fi

# --- The publisher (bundle arrives with deploy) -----------------------------------------------
start_service odin-publisher.service /etc/odin/publisher.env /etc/systemd/system/odin-publisher.service
mark_applied
log "backend VM ready (kafka ${ODIN_BACKEND_INTERNAL_IP}:9092, grafana :3010, console :8080)"
install_ops_agent
