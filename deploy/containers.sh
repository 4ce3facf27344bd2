#!/usr/bin/env bash
# DataPilot in containers on one host: build the images, start and stop the compose stack.
#
#   deploy/containers.sh image   build datapilot:dev (+ the local Debian base, Redis and moto
#                                images when podman has no registry to pull from)
#   deploy/containers.sh up      start deploy/compose.yaml + deploy/local/compose.override.yaml
#                                under the project name datapilot-ct; returns when /readyz is ready
#   deploy/containers.sh down    remove that project's containers, network and volumes
#
# The Makefile's `image`, `container-up` and `container-down` call this. Settings (environment):
#   GATEWAY_PORT (8080), DATAPILOT_BIND (127.0.0.1), DATAPILOT_API_KEYS (generated when unset),
#   CT_PROJECT (datapilot-ct), READY_TIMEOUT_SECONDS (240), CT_ENGINE (detected), BASE_IMAGE
#   (docker only). `up` and `down` use podman-compose; with Docker run compose.yaml itself
#   (`docker compose -f deploy/compose.yaml up --build`).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCAL="$ROOT/deploy/local"
PROJECT="${CT_PROJECT:-datapilot-ct}"
IMAGE="datapilot:dev"
DEBIAN_SUITE="bookworm"
BASE_LOCAL="localhost/datapilot-base:$DEBIAN_SUITE"
REDIS_LOCAL="localhost/datapilot-redis:$DEBIAN_SUITE"
MOTO_LOCAL="localhost/datapilot-moto:dev"
# Podman here: runc instead of crun, and ulimits, without touching /etc/containers.
export CONTAINERS_CONF="${CONTAINERS_CONF:-$LOCAL/containers.conf}"

log() { echo "containers.sh: $*" >&2; }

# Docker when a daemon answers, podman otherwise (installed on demand).
engine() {
  if [[ -n "${CT_ENGINE:-}" ]]; then
    echo "$CT_ENGINE"
  elif command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    echo docker
  else
    echo podman
  fi
}

apt_install() {
  local missing=()
  local tool package
  for pair in "$@"; do
    tool="${pair%%=*}"
    package="${pair#*=}"
    command -v "$tool" >/dev/null 2>&1 || missing+=("$package")
  done
  if ((${#missing[@]})); then
    log "installing ${missing[*]} with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; }
  fi
}

need_podman() { apt_install podman=podman runc=runc mmdebstrap=mmdebstrap podman-compose=podman-compose; }

have_image() { podman image exists "$1"; }

# Read-only mounts that let pip inside `podman build` reach the package index the host uses.
pip_mounts() {
  local mounts=()
  local file
  for file in /etc/ssl/certs/ca-certificates.crt /etc/pip.conf; do
    [[ -f "$file" ]] && mounts+=(-v "$file:$file:ro")
  done
  echo "${mounts[@]}"
}

# A minimal Debian root with `packages`, imported as an image (no registry needed).
debian_image() {
  local name="$1" packages="$2" change="$3"
  shift 3
  log "building $name from Debian $DEBIAN_SUITE ($packages)"
  mmdebstrap --quiet --variant=minbase --include="$packages" "$@" "$DEBIAN_SUITE" - \
    | podman import --change "$change" - "$name" >/dev/null
}

build_local_bases() {
  have_image "$BASE_LOCAL" || debian_image "$BASE_LOCAL" \
    python3.11,python3.11-venv,python-is-python3,ca-certificates,passwd 'CMD ["python3"]'
  # /data owned by uid 999, the user compose.yaml runs Redis as (as in the official image), and
  # the official image's rule: a redis-server started without a config file turns protected mode
  # off, so that the other containers may connect.
  # shellcheck disable=SC2016  # the hooks are scripts of their own: mmdebstrap passes "$1"
  have_image "$REDIS_LOCAL" || debian_image "$REDIS_LOCAL" redis-server \
    'ENTRYPOINT ["/usr/local/bin/redis-entrypoint"]' \
    --customize-hook='chroot "$1" install -d -o 999 -g 999 /data' \
    --customize-hook='printf "%s\n" "#!/bin/sh" \
      "[ \"\$1\" = redis-server ] && shift && set -- redis-server --protected-mode no \"\$@\"" \
      "exec \"\$@\"" >"$1/usr/local/bin/redis-entrypoint" \
      && chmod 755 "$1/usr/local/bin/redis-entrypoint"'
  if ! have_image "$MOTO_LOCAL"; then
    log "building $MOTO_LOCAL"
    # shellcheck disable=SC2046
    podman build --quiet $(pip_mounts) --build-arg "BASE_IMAGE=$BASE_LOCAL" \
      -f "$LOCAL/moto.Containerfile" -t "$MOTO_LOCAL" "$ROOT" >/dev/null
  fi
}

cmd_image() {
  local eng
  eng="$(engine)"
  if [[ "$eng" == docker ]]; then
    docker build ${BASE_IMAGE:+--build-arg "BASE_IMAGE=$BASE_IMAGE"} \
      -f "$ROOT/deploy/Dockerfile" -t "$IMAGE" "$ROOT"
    return
  fi
  need_podman
  build_local_bases
  log "building $IMAGE on $BASE_LOCAL"
  # shellcheck disable=SC2046
  # Docker format: the Dockerfile's SHELL (pipefail) and HEALTHCHECK are not in the OCI format.
  podman build --format docker $(pip_mounts) --build-arg "BASE_IMAGE=$BASE_LOCAL" \
    -f "$ROOT/deploy/Dockerfile" -t "$IMAGE" "$ROOT"
  podman image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E '/datapilot(-[a-z]+)?:' >&2
}

random_hex() { od -An -N24 -tx1 /dev/urandom | tr -d ' \n'; }

compose() {
  # compose.yaml refuses to start without these (no known default credentials): a local stack
  # gets fresh random ones unless the caller set them (`down` only needs them to parse the file).
  export INTERNAL_AUTH_TOKEN="${INTERNAL_AUTH_TOKEN:-$(random_hex)}"
  export S3_ACCESS_KEY="${S3_ACCESS_KEY:-local-$(random_hex)}"
  export S3_SECRET_KEY="${S3_SECRET_KEY:-$(random_hex)}"
  export DATAPILOT_API_KEYS="${DATAPILOT_API_KEYS:-local:$(random_hex)}"
  # --no-ansi etc. are not in podman-compose 1.0.3; -p names the project, -f merges the files.
  podman-compose -p "$PROJECT" -f "$ROOT/deploy/compose.yaml" -f "$LOCAL/compose.override.yaml" "$@"
}

cmd_up() {
  need_podman
  for image in "$IMAGE" "$REDIS_LOCAL" "$MOTO_LOCAL"; do
    have_image "$image" || { log "$image is missing: run \`make image\` first"; exit 1; }
  done
  local generated=""
  if [[ -z "${DATAPILOT_API_KEYS:-}" ]]; then
    # Never a known default: a fresh random key for this stack.
    generated="local:$(random_hex)"
    export DATAPILOT_API_KEYS="$generated"
  fi
  local port="${GATEWAY_PORT:-8080}" bind="${DATAPILOT_BIND:-127.0.0.1}"
  local up_log="$ROOT/.run/$PROJECT-up.log"
  mkdir -p "$ROOT/.run"
  # podman-compose is chatty (and podman logs that it cannot add systemd healthcheck timers).
  compose up -d >"$up_log" 2>&1 || {
    tail -20 "$up_log" >&2
    log "compose up failed (full output: $up_log)"
    exit 1
  }
  # podman-compose does not wait for `condition: service_healthy` (and podman's healthchecks need
  # systemd timers): wait for the gateway's own readiness, which covers ingest and analysis.
  local url="http://$bind:$port" deadline=$((SECONDS + ${READY_TIMEOUT_SECONDS:-240}))
  until curl -fsS -o /dev/null "$url/readyz" 2>/dev/null; do
    if ((SECONDS > deadline)); then
      log "the gateway at $url did not become ready; \`podman logs ${PROJECT}_gateway_1\`"
      exit 1
    fi
    sleep 1
  done
  echo "DataPilot is up: $url (compose project $PROJECT; stop it with \`make container-down\`)"
  if [[ -n "$generated" ]]; then
    echo "API key (generated for this stack): ${generated#*:}"
    echo "  curl -H 'Authorization: Bearer ${generated#*:}' -F file=@data.csv $url/api/upload"
  else
    echo "Authenticate with a key of DATAPILOT_API_KEYS: -H 'Authorization: Bearer <key>'"
  fi
}

cmd_down() {
  need_podman
  # -v: the project's named volumes too. Then whatever is still labelled with the project
  # (a container left by an interrupted up), and nothing else.
  compose down -v >/dev/null 2>&1 || true
  local ids
  mapfile -t ids < <(podman ps -aq --filter "label=io.podman.compose.project=$PROJECT")
  ((${#ids[@]})) && podman rm -f "${ids[@]}" >/dev/null
  mapfile -t ids < <(podman volume ls -q --filter "label=io.podman.compose.project=$PROJECT")
  ((${#ids[@]})) && podman volume rm -f "${ids[@]}" >/dev/null
  podman network exists "${PROJECT}_default" && podman network rm -f "${PROJECT}_default" >/dev/null
  log "project $PROJECT removed"
}

case "${1:-}" in
  image) cmd_image ;;
  up) cmd_up ;;
  down) cmd_down ;;
  *)
    echo "usage: $0 image|up|down" >&2
    exit 2
    ;;
esac
