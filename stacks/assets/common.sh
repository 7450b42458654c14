#!/bin/bash
# Shared steps for every odin VM. The rendered startup script defines ODIN_* variables and
# stages config files under $ODIN_STAGE before this part runs.
set -euo pipefail

log() { echo "odin-startup[${ODIN_ROLE:-?}]: $*"; }

# Retries a command a bounded number of times: package mirrors on a fresh VM flake.
retry() {
  local attempt=1 max=5
  until "$@"; do
    if ((attempt >= max)); then
      log "giving up after $max attempts: $*"
      return 1
    fi
    sleep $((attempt * 5))
    attempt=$((attempt + 1))
  done
}

ODIN_APT_UPDATED=0
apt_update() {
  retry apt-get update -q
  ODIN_APT_UPDATED=1
}

# Installs only the packages that are missing, so a reboot does not touch the mirrors.
apt_install() {
  local missing=()
  local pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  ((${#missing[@]} == 0)) && return 0
  ((ODIN_APT_UPDATED == 1)) || apt_update
  retry apt-get install -y -q -o Dpkg::Options::=--force-confold "${missing[@]}"
}

# Adds an apt source signed by its own key (never a global trusted key).
apt_repo() {
  local name=$1 key_url=$2 line=$3
  local keyring=/etc/apt/keyrings/$name.gpg
  if [[ ! -s $keyring ]]; then
    install -d -m 0755 /etc/apt/keyrings
    retry curl -fsSL "$key_url" -o "/tmp/$name.key"
    gpg --dearmor --yes -o "$keyring" "/tmp/$name.key"
    rm -f "/tmp/$name.key"
  fi
  local list=/etc/apt/sources.list.d/$name.list
  local want="deb [signed-by=$keyring] $line"
  if [[ ! -f $list ]] || [[ "$(cat "$list")" != "$want" ]]; then
    echo "$want" >"$list"
    ODIN_APT_UPDATED=0
  fi
}

# Copies a staged file into place. Exit status 0 means the file changed (so its service
# needs a restart), 1 means it was already up to date.
place() {
  local dest=$1 owner=${2:-root:root}
  local src=$ODIN_STAGE$dest
  [[ -f $src ]] || { log "no staged file for $dest"; exit 1; }
  if [[ -f $dest ]] && cmp -s "$src" "$dest"; then
    return 1
  fi
  install -D -m "$(stat -c %a "$src")" -o "${owner%%:*}" -g "${owner##*:}" "$src" "$dest" ||
    { log "cannot write $dest"; exit 1; }
  log "updated $dest"
  return 0
}

install_base() {
  apt_install ca-certificates curl gnupg jq
}

install_node() {
  if command -v node >/dev/null && [[ "$(node --version)" == v${ODIN_NODE_MAJOR}.* ]]; then
    return 0
  fi
  apt_repo nodesource https://deb.nodesource.com/gpgkey/nodesource-repo.gpg.key \
    "https://deb.nodesource.com/node_${ODIN_NODE_MAJOR}.x nodistro main"
  apt_update
  apt-get install -y -q nodejs
  log "node $(node --version) at $(command -v node)"
}

install_ops_agent() {
  [[ $ODIN_INSTALL_OPS_AGENT == true ]] || return 0
  systemctl list-unit-files google-cloud-ops-agent.service >/dev/null 2>&1 && return 0
  retry curl -fsSL https://dl.google.com/cloudagents/add-google-cloud-ops-agent-repo.sh -o /tmp/add-ops-agent-repo.sh
  bash /tmp/add-ops-agent-repo.sh --also-install
}

# The runtime user and the release layout the deploy script fills:
# /opt/odin/releases/<version>/ and the /opt/odin/current symlink.
ensure_odin_layout() {
  getent group odin >/dev/null || groupadd --system odin
  id -u odin >/dev/null 2>&1 || useradd --system --gid odin --home-dir /opt/odin --shell /usr/sbin/nologin odin
  install -d -m 0755 -o root -g root /opt/odin /opt/odin/releases /etc/odin
}

apply_sysctl() {
  local file=$1
  if place "$file"; then
    sysctl -q -p "$file"
  fi
}

# Writes a service's env/unit files and (re)starts it only if something changed, so
# re-running this script never drops clients of a healthy server.
converge_service() {
  local unit=$1
  shift
  local changed=0 file
  for file in "$@"; do
    if place "$file"; then changed=1; fi
  done
  systemctl daemon-reload
  systemctl enable "$unit" >/dev/null
  if systemctl is-active --quiet "$unit"; then
    ((changed == 0)) || systemctl restart "$unit"
  else
    # The units carry ConditionPathExists on the bundle, so before the first deploy this
    # is a no-op rather than a crash loop.
    systemctl start "$unit" || log "$unit did not start (bundle not deployed yet?)"
  fi
}

# Waits, bounded, for a command to succeed.
wait_for() {
  local what=$1 tries=$2
  shift 2
  local i
  for ((i = 1; i <= tries; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 2
  done
  log "timed out waiting for $what"
  return 1
}
