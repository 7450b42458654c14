#!/bin/bash
# WS fleet node (ws.count >= 2), before ws-startup.sh: a VM the group created (autohealing,
# scale-out, a rollout) must come up on the current release with no deploy running. The group's
# metadata names that release (odin-release, odin-release-sha256, set by gcp:deploy); the VM
# fetches it from the releases bucket with its own service account (objectViewer on that bucket
# only), refuses it unless its sha256 matches, and installs it behind /opt/odin/current.
# Every node also consumes every message, so each has its own Kafka consumer group, named after
# the instance: ws-<env>-<instance name> (the prefix is ODIN_CONSUMER_GROUP_PREFIX).
set -euo pipefail

ODIN_BASE=${ODIN_BASE:-/opt/odin}
ODIN_STORAGE_API=${ODIN_STORAGE_API:-https://storage.googleapis.com/storage/v1}

# Prints metadata key $1, or nothing when it is not set (404); fails when the server is unreachable.
metadata_optional() {
  local code out
  out=$(mktemp)
  code=$(curl -sS -m 10 -o "$out" -w '%{http_code}' -H 'Metadata-Flavor: Google' "$ODIN_METADATA/$1") || { rm -f "$out"; return 1; }
  case $code in
    200) cat "$out" ;;
    404) ;;
    *) rm -f "$out"; log "metadata $1: HTTP $code"; return 1 ;;
  esac
  rm -f "$out"
}

# Appends this node's consumer group to the staged ws.env (placed by ws-startup.sh).
fleet_consumer_group() {
  local name
  name=$(retry metadata 'instance/name') || { log "cannot read this instance's name from the metadata server"; exit 1; }
  if [[ ! $name =~ ^[a-z][a-z0-9-]{0,62}$ ]]; then
    log "instance name ${name@Q} is not a GCE instance name"
    exit 1
  fi
  echo "KAFKA_CONSUMER_GROUP=${ODIN_CONSUMER_GROUP_PREFIX}${name}" >>"$ODIN_STAGE/etc/odin/ws.env"
  log "kafka consumer group ${ODIN_CONSUMER_GROUP_PREFIX}${name}"
}

# Installs the release the metadata names. Exit 0: installed (or already current) or none named
# yet (before the first deploy: the unit stays inactive); 1: unreachable, or the download does not
# match its sha256 (nothing installed, nothing started on it).
fleet_install_release() {
  local version sha bucket token tmp dest
  version=$(retry metadata_optional 'instance/attributes/odin-release') || { log "metadata server unreachable"; return 1; }
  if [[ -z $version ]]; then
    log "no release named in the group's metadata yet (odin-release): gcp:deploy sets it"
    return 0
  fi
  sha=$(retry metadata_optional 'instance/attributes/odin-release-sha256') || return 1
  bucket=$(retry metadata_optional 'instance/attributes/odin-release-bucket') || return 1
  if [[ ! $version =~ ^[A-Za-z0-9._-]{1,100}$ ]] || [[ ! $sha =~ ^[0-9a-f]{64}$ ]] || [[ ! $bucket =~ ^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$ ]]; then
    log "release metadata refused: odin-release must be a version name, odin-release-sha256 64 hex digits, odin-release-bucket a bucket name"
    return 1
  fi
  dest=$ODIN_BASE/releases/$version
  if [[ -f $dest/release.json ]] && [[ "$(readlink -f "$ODIN_BASE/current")" == "$(readlink -f "$dest")" ]]; then
    return 0
  fi
  token=$(retry metadata 'instance/service-accounts/default/token' | jq -r .access_token) || return 1
  tmp=$(mktemp -d)
  if ! retry curl -fsS -m 120 -H "Authorization: Bearer $token" -o "$tmp/release.tar.gz" \
    "$ODIN_STORAGE_API/b/$bucket/o/releases%2F$version.tar.gz?alt=media"; then
    rm -rf "$tmp"
    log "release $version: cannot download gs://$bucket/releases/$version.tar.gz"
    return 1
  fi
  if ! echo "$sha  $tmp/release.tar.gz" | sha256sum -c --status; then
    rm -rf "$tmp"
    log "release $version: sha256 does not match odin-release-sha256: refused"
    return 1
  fi
  tar -xzf "$tmp/release.tar.gz" -C "$tmp"
  if [[ ! -f $tmp/$version/release.json ]]; then
    rm -rf "$tmp"
    log "release $version: the archive holds no $version/release.json: refused"
    return 1
  fi
  rm -rf "$dest"
  mkdir -p "$ODIN_BASE/releases"
  mv "$tmp/$version" "$dest"
  rm -rf "$tmp"
  chmod -R a+rX "$dest"
  ln -sfn "$dest" "$ODIN_BASE/current.next"
  mv -Tf "$ODIN_BASE/current.next" "$ODIN_BASE/current"
  # A running server restarts onto it: start_service restarts odin-ws when ws.env "changed".
  # shellcheck disable=SC2034 # read by changed() in common.sh
  ODIN_CHANGED[/etc/odin/ws.env]=1
  log "release $version installed (sha256 verified)"
}

if [[ ${ODIN_SOURCE_ONLY:-0} != 1 ]]; then
  ensure_odin_layout
  install_base
  fleet_consumer_group
  fleet_install_release
fi
