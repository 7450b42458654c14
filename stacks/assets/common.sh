#!/bin/bash
# Shared steps for every odin VM. The rendered startup script defines ODIN_* variables and
# stages config files under $ODIN_STAGE before this part runs. Order on every boot: place the
# config and unit files, then install (waiting for the dpkg lock, retrying the network), then
# start what changed, then optional agents last and non-fatally. Every step is idempotent.
set -euo pipefail

# To stderr, so a log line never ends up in a function's captured output (journald keeps both).
log() { echo "odin-startup[${ODIN_ROLE:-?}]: $*" >&2; }

# Retries a command with exponential backoff (5, 10, 20, 40 s): mirrors and installers on a
# fresh VM flake. ODIN_RETRY_MAX and ODIN_RETRY_DELAY_S make it testable.
retry() {
  local attempt=1 max=${ODIN_RETRY_MAX:-5} delay=${ODIN_RETRY_DELAY_S:-5}
  until "$@"; do
    if ((attempt >= max)); then
      log "giving up after $max attempts: $*"
      return 1
    fi
    log "attempt $attempt failed, retrying in ${delay}s: $*"
    sleep "$delay"
    attempt=$((attempt + 1))
    delay=$((delay * 2))
  done
}

# unattended-upgrades holds the dpkg lock for minutes on a new Debian VM: apt waits for it
# (DPkg::Lock::Timeout) instead of failing at once.
APT_OPTS=(-q -o DPkg::Lock::Timeout=600)

ODIN_APT_UPDATED=0
apt_update() {
  retry apt-get "${APT_OPTS[@]}" update
  ODIN_APT_UPDATED=1
}

# Installs only what is missing or not at its pinned version ("pkg" or "pkg=version", where a
# version may end in * to pin a release series), so a reboot does not touch the mirrors.
apt_install() {
  local missing=() spec pkg want have
  for spec in "$@"; do
    pkg=${spec%%=*}
    want=${spec#*=}
    [[ $spec == *=* ]] || want=''
    have=$(dpkg-query -W -f='${Status} ${Version}' "$pkg" 2>/dev/null | sed -n 's/^install ok installed //p')
    # shellcheck disable=SC2053 # $want is a glob on purpose
    if [[ -z $have ]] || { [[ -n $want ]] && [[ $have != $want ]]; }; then missing+=("$spec"); fi
  done
  ((${#missing[@]} == 0)) && return 0
  ((ODIN_APT_UPDATED == 1)) || apt_update
  retry apt-get "${APT_OPTS[@]}" install -y --allow-downgrades -o Dpkg::Options::=--force-confold "${missing[@]}"
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
# needs a restart), 1 means it was already up to date. Changes are remembered for changed().
declare -A ODIN_CHANGED=()
place() {
  local dest=$1 owner=${2:-root:root}
  local src=$ODIN_STAGE$dest
  [[ -f $src ]] || { log "no staged file for $dest"; exit 1; }
  if [[ -f $dest ]] && cmp -s "$src" "$dest"; then
    return 1
  fi
  install -D -m "$(stat -c %a "$src")" -o "${owner%%:*}" -g "${owner##*:}" "$src" "$dest" ||
    { log "cannot write $dest"; exit 1; }
  ODIN_CHANGED[$dest]=1
  log "updated $dest"
  return 0
}

# Removes a file this script manages, remembered as a change when it existed.
remove_file() {
  if [[ -f $1 ]]; then
    rm -f "$1"
    ODIN_CHANGED[$1]=1
  fi
}

# True if any of the files was updated by place() (or by a secret fetch) during this run.
changed() {
  local file
  for file in "$@"; do
    [[ -n ${ODIN_CHANGED[$file]:-} ]] && return 0
  done
  return 1
}

install_base() {
  apt_install ca-certificates curl gnupg jq
}

install_node() {
  # ODIN_PIN_NODEJS is the nodesource package version, e.g. 24.21.0-1nodesource1.
  if command -v node >/dev/null && [[ "$(node --version)" == "v${ODIN_PIN_NODEJS%%-*}" ]]; then
    return 0
  fi
  apt_repo nodesource https://deb.nodesource.com/gpgkey/nodesource-repo.gpg.key \
    "https://deb.nodesource.com/node_${ODIN_NODE_MAJOR}.x nodistro main"
  apt_install "nodejs=${ODIN_PIN_NODEJS}"
  log "node $(node --version) at $(command -v node)"
}

# Optional and last: a failure here is logged, never fatal, and never delays the services.
install_ops_agent() {
  [[ $ODIN_INSTALL_OPS_AGENT == true ]] || return 0
  systemctl list-unit-files google-cloud-ops-agent.service 2>/dev/null | grep -q google-cloud-ops-agent && return 0
  if retry curl -fsSL https://dl.google.com/cloudagents/add-google-cloud-ops-agent-repo.sh -o /tmp/add-ops-agent-repo.sh &&
    retry bash /tmp/add-ops-agent-repo.sh --also-install; then
    log "ops agent installed"
  else
    log "ops agent NOT installed (optional; logs still reach the serial console and journald)"
  fi
}

# The runtime user and the release layout the deploy script fills:
# /opt/odin/releases/<version>/ and the /opt/odin/current symlink.
ensure_odin_layout() {
  getent group odin >/dev/null || groupadd --system odin
  id -u odin >/dev/null 2>&1 || useradd --system --gid odin --home-dir /opt/odin --shell /usr/sbin/nologin odin
  install -d -m 0755 -o root -g root /opt/odin /opt/odin/releases /etc/odin /var/lib/odin
}

apply_sysctl() {
  local file=$1
  if place "$file"; then
    sysctl -q -p "$file"
  fi
}

# (Re)starts a service only if one of its files changed or it is not running, so re-running
# this script never drops clients of a healthy server. The units carry ConditionPathExists on
# the bundle, so before the first deploy a start is a no-op rather than a crash loop.
# A unit named in $ODIN_DEFERRED_RESTARTS (written by gcp:deploy's converge step, in /run so a
# reboot forgets it) is not restarted here: the deploy restarts it once, on the new release.
ODIN_DEFERRED_RESTARTS=${ODIN_DEFERRED_RESTARTS:-/run/odin/deferred-restarts}
start_service() {
  local unit=$1
  shift
  systemctl daemon-reload
  systemctl enable "$unit" >/dev/null
  if systemctl is-active --quiet "$unit"; then
    if ! changed "$@"; then
      return 0
    elif grep -qxF "$unit" "$ODIN_DEFERRED_RESTARTS" 2>/dev/null; then
      log "$unit: config changed; the deploy restarts it"
    else
      systemctl restart "$unit"
    fi
  else
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

# ---- Secret Manager, with this VM's own service account (metadata server token) -------------
ODIN_METADATA=${ODIN_METADATA:-http://metadata.google.internal/computeMetadata/v1}
ODIN_SECRETS_API=${ODIN_SECRETS_API:-https://secretmanager.googleapis.com/v1}

metadata() {
  curl -fsS -m 10 -H 'Metadata-Flavor: Google' "$ODIN_METADATA/$1"
}

# Prints the payloads of the newest enabled versions of secret $1 (at most $2), newest first,
# one per line. Exit 0 with no output when the secret has no enabled version; 3 when a value
# is shorter than 32 bytes or spans lines; 1 when Secret Manager cannot be reached.
secret_versions() {
  local name=$1 want=$2 token project list version value
  token=$(retry metadata 'instance/service-accounts/default/token' | jq -r .access_token) || return 1
  project=$(retry metadata 'project/project-id') || return 1
  list=$(retry curl -fsS -m 10 -H "Authorization: Bearer $token" \
    "$ODIN_SECRETS_API/projects/$project/secrets/$name/versions?filter=state:ENABLED") || return 1
  for version in $(jq -r --argjson n "$want" '[.versions // [] | sort_by(.createTime) | reverse | .[].name][:$n][]' <<<"$list"); do
    value=$(retry curl -fsS -m 10 -H "Authorization: Bearer $token" "$ODIN_SECRETS_API/$version:access" |
      jq -r .payload.data | base64 -d | tr -d '\r') || return 1
    value=${value%$'\n'}
    if ((${#value} < 32)) || [[ $value == *$'\n'* ]]; then
      log "secret $name: $version is not one line of at least 32 bytes: refused"
      return 3
    fi
    printf '%s\n' "$value"
  done
}

# Writes secret $1's newest enabled versions (at most $3) to $2, readable only by $4 (user:group,
# mode $5). Exit 0: written (or unchanged), 1: Secret Manager unreachable (file kept),
# 2: no version (file removed), 3: a version refused (file kept).
fetch_secret() {
  local name=$1 dest=$2 count=$3 owner=$4 mode=$5 values rc=0
  values=$(secret_versions "$name" "$count") || rc=$?
  ((rc == 0)) || return "$rc"
  if [[ -z $values ]]; then
    remove_file "$dest"
    return 2
  fi
  local tmp
  tmp=$(mktemp "$dest.XXXXXX")
  printf '%s\n' "$values" >"$tmp"
  chown "$owner" "$tmp"
  chmod "$mode" "$tmp"
  if [[ -f $dest ]] && cmp -s "$tmp" "$dest"; then
    rm -f "$tmp"
  else
    mv -f "$tmp" "$dest"
    ODIN_CHANGED[$dest]=1
  fi
}

# Records which startup script this VM has applied; gcp:deploy compares it with the metadata
# to know whether a changed script must be re-run before a restart.
mark_applied() {
  local sum
  if sum=$(metadata 'instance/attributes/startup-script' | sha256sum | cut -d' ' -f1); then
    echo "$sum" >/var/lib/odin/startup-applied.sha256
  fi
}
