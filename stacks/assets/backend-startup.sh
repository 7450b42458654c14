#!/bin/bash
# Backend VM: Redpanda (single node), Redpanda Console, Prometheus, Grafana and the publisher.
set -euo pipefail

install_base
ensure_odin_layout
apply_sysctl /etc/sysctl.d/90-odin-backend.conf
install_node
install_ops_agent

# --- Redpanda: Kafka API on :9092, advertised on this VM's internal IP -------------------
if ! dpkg-query -W -f='${Status}' redpanda 2>/dev/null | grep -q 'install ok installed'; then
  retry curl -fsSL https://linux.pkg.redpanda.com/setup-redpanda.deb.sh -o /tmp/setup-redpanda.deb.sh
  bash /tmp/setup-redpanda.deb.sh
  ODIN_APT_UPDATED=0
fi
apt_install redpanda redpanda-console
redpanda_changed=0
place /etc/redpanda/redpanda.yaml redpanda:redpanda && redpanda_changed=1
place /etc/default/redpanda && redpanda_changed=1
systemctl enable redpanda >/dev/null
if ((redpanda_changed == 1)) && systemctl is-active --quiet redpanda; then
  systemctl restart redpanda
else
  systemctl start redpanda
fi
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

# --- Redpanda Console on :8080 --------------------------------------------------------------
place /etc/redpanda/redpanda-console-config.yaml && systemctl restart redpanda-console || true
systemctl enable --now redpanda-console >/dev/null

# --- Prometheus on :9090, scraping the WS VM and the publisher -------------------------------
apt_install prometheus
if place /etc/prometheus/prometheus.yml; then
  systemctl restart prometheus
fi
systemctl enable --now prometheus >/dev/null

# --- Grafana on :3010 with a provisioned datasource and the odin-ws dashboard ----------------
apt_repo grafana https://apt.grafana.com/gpg.key "https://apt.grafana.com stable main"
apt_install grafana
if [[ ! -s /etc/odin/grafana-admin-password ]]; then
  # A random admin password per VM instead of Grafana's admin/admin; read it over IAP SSH.
  umask 027
  head -c 24 /dev/urandom | base64 | tr -d '/+=' >/etc/odin/grafana-admin-password
  umask 022
  chgrp grafana /etc/odin/grafana-admin-password
fi
grafana_changed=0
place /etc/grafana/provisioning/datasources/odin.yaml root:grafana && grafana_changed=1
place /etc/grafana/provisioning/dashboards/odin.yaml root:grafana && grafana_changed=1
place /var/lib/odin/dashboards/odin-ws.json root:grafana && grafana_changed=1
place /etc/systemd/system/grafana-server.service.d/odin.conf && grafana_changed=1
systemctl daemon-reload
systemctl enable grafana-server >/dev/null
if ((grafana_changed == 1)) && systemctl is-active --quiet grafana-server; then
  systemctl restart grafana-server
else
  systemctl start grafana-server
fi

# --- The publisher (bundle arrives with deploy) -----------------------------------------------
converge_service odin-publisher.service /etc/odin/publisher.env /etc/systemd/system/odin-publisher.service
log "backend VM ready (kafka ${ODIN_BACKEND_INTERNAL_IP}:9092, grafana :3010, console :8080)"
