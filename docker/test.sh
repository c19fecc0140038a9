#!/usr/bin/env bash
# `make docker-test`: build the image and check it in one go.
#
#   - a reply through the console adapter (stdin piped: `!hjälp` answered), exit 0
#   - the bot runs as uid 10001, not root
#   - healthy within 15 s, also when started with another --config
#   - docker stop: exit 0 within a few seconds
#   - data kept in the volume across a restart (the database, its heartbeat, and a poll
#     the first run made, listed by a later one)
#   - an operator's mistakes are one line and exit 2, never a traceback: a host folder the
#     bot's uid cannot write, a configuration only root can read, a folder mounted where
#     the configuration file belongs
#   - the image holds no sources, build/ or egg-info, an upgraded pip; the build context
#     holds no .venv, .git, data/ or databases (.dockerignore)
#
# It works on a fresh machine of this project's kind, as root and non-interactively:
# what is missing is installed from Debian's packages (docker.io, debootstrap). Where no
# Docker engine runs, it starts one of its own and stops it by its PID at the end: no
# bridge, no iptables rules and no IP forwarding (a default dockerd rewrites the host's
# firewall), with its own socket, data root and pid file. Builds use the host's network
# (there is no bridge), test containers none at all.
#
# Where the official base image cannot be pulled (no registry reachable), a stand-in is
# built from Debian's packages: debootstrap of bookworm with python3 and python3-venv,
# imported with `docker import`, plus the machine's extra CA certificates so that pip can
# reach the package index through the proxy. The debootstrap tarball is cached in
# $SAMVERKAN_DOCKER_CACHE (default /var/cache/samverkan-docker), and the engine's images
# and build cache in $SAMVERKAN_DOCKER_ROOT (default /var/lib/samverkan-docker): both
# outside the repository, on this machine only.
#
# Variables: BASE (a base image to use as is), IMAGE (the tag built, samverkan:test),
# DEBIAN_MIRROR, SAMVERKAN_DOCKER_CACHE, SAMVERKAN_DOCKER_ROOT.
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$PWD
IMAGE=${IMAGE:-samverkan:test}
OFFICIAL_BASE=python:3.11-slim
STANDIN_RAW=samverkan-standin-raw:bookworm
STANDIN=samverkan-standin:bookworm
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
CACHE=${SAMVERKAN_DOCKER_CACHE:-/var/cache/samverkan-docker}
ROOT=${SAMVERKAN_DOCKER_ROOT:-/var/lib/samverkan-docker}
HEALTHY_WITHIN=15 # seconds
STOP_WITHIN=10    # seconds
# The legacy builder: it is what Debian's engine (20.10) has, and it needs no buildx
# plugin in the client.
export DOCKER_BUILDKIT=0

started=$(date +%s)
TMP=$(mktemp -d /tmp/samverkan-docker-test.XXXXXX)
chmod 755 "$TMP"
RUN_ID=samverkan-test-$$
DOCKERD_PID=""
failures=0

DOCKER_CLI=docker
docker() { command "$DOCKER_CLI" "$@"; }

say() { printf '== [%4ss] %s\n' "$(($(date +%s) - started))" "$*"; }
ok() { printf '   ok: %s\n' "$*"; }
fail() {
    printf '   FAILED: %s\n' "$*"
    failures=$((failures + 1))
}
die() {
    printf 'docker-test: %s\n' "$*" >&2
    exit 1
}
elapsed_since() { # seconds since a `date +%s.%N` value, one decimal
    awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'
}

cleanup() {
    local code=$?
    set +e
    if [[ -n ${DOCKER_HOST:-} ]] && docker info >/dev/null 2>&1; then
        local c v
        for c in $(docker ps -aq --filter "name=^$RUN_ID-"); do
            docker rm -f "$c" >/dev/null 2>&1
        done
        for v in $(docker volume ls -q --filter "name=^$RUN_ID-"); do
            docker volume rm -f "$v" >/dev/null 2>&1
        done
    fi
    if [[ -n $DOCKERD_PID ]]; then
        # Only the engine this script started, by its PID; its containerd goes with it.
        kill -TERM "$DOCKERD_PID" 2>/dev/null
        for _ in $(seq 60); do
            kill -0 "$DOCKERD_PID" 2>/dev/null || break
            sleep 0.5
        done
        if kill -0 "$DOCKERD_PID" 2>/dev/null; then
            echo "docker-test: dockerd $DOCKERD_PID did not stop; killing it" >&2
            kill -KILL "$DOCKERD_PID" 2>/dev/null
        fi
        wait "$DOCKERD_PID" 2>/dev/null
        # dockerd leaves its network namespace mounted under its exec root.
        awk -v t="$TMP/" 'index($2, t) == 1 { print $2 }' /proc/mounts | sort -r |
            while read -r mnt; do umount "$mnt"; done
    fi
    rm -rf "$TMP"
    exit "$code"
}
trap cleanup EXIT

# ---------------------------------------------------------------------------- set-up

# Installs Debian packages that are missing; `apt-get update` once, first. Services the
# packages bring (docker.io's dockerd) are kept from starting: a default engine is what
# must not run here.
APT_UPDATED=""
need_packages() {
    local missing=() pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' ||
            missing+=("$pkg")
    done
    [[ ${#missing[@]} -gt 0 ]] || return 0
    [[ $(id -u) -eq 0 ]] || die "needs root to install ${missing[*]} (or install them first)"
    say "installing ${missing[*]} from Debian's packages"
    if [[ -z $APT_UPDATED ]]; then
        # Some configured sources may be unreachable here; Debian's own are what counts.
        apt-get update -qq || echo "docker-test: apt-get update reported errors; going on" >&2
        APT_UPDATED=1
    fi
    local policy=/usr/sbin/policy-rc.d made_policy=""
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && made_policy=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >"$TMP/apt.log" 2>&1 || {
        tail -20 "$TMP/apt.log" >&2
        [[ -z $made_policy ]] || rm -f "$policy"
        die "could not install ${missing[*]}"
    }
    [[ -z $made_policy ]] || rm -f "$policy"
}

# An engine: the one DOCKER_HOST or the default socket names if it answers, else our own.
start_engine() {
    if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
        say "using the running Docker engine"
        DOCKER_HOST=${DOCKER_HOST:-unix:///var/run/docker.sock}
        export DOCKER_HOST
        return
    fi
    need_packages docker.io
    mkdir -p "$ROOT"
    # One engine per data root: a second run waits for the first to finish.
    exec 9>"$ROOT/.lock"
    flock -w 1800 9 || die "another docker-test holds $ROOT/.lock"
    local run=$TMP/engine
    mkdir -p "$run"
    export DOCKER_HOST=unix://$run/docker.sock
    say "starting dockerd (data root $ROOT, no bridge, no iptables)"
    dockerd \
        --host "$DOCKER_HOST" \
        --data-root "$ROOT/engine" \
        --exec-root "$run/exec" \
        --pidfile "$run/dockerd.pid" \
        --bridge=none --iptables=false --ip-forward=false --ip-masq=false \
        >"$run/dockerd.log" 2>&1 9>&- &
    DOCKERD_PID=$!
    # Debian's client with Debian's engine: the same API, no notice about the legacy
    # builder (a newer client elsewhere on PATH prints one on every build).
    if [[ -x /usr/bin/docker ]]; then
        DOCKER_CLI=/usr/bin/docker
    fi
    for _ in $(seq 120); do
        docker info >/dev/null 2>&1 && return
        kill -0 "$DOCKERD_PID" 2>/dev/null || break
        sleep 0.5
    done
    tail -30 "$run/dockerd.log" >&2
    die "dockerd did not come up"
}

# The stand-in base: bookworm's python3 from debootstrap, with this machine's CA
# certificates. The tarball is cached; the certificate layer is rebuilt when they change.
build_standin() {
    if ! docker image inspect "$STANDIN_RAW" >/dev/null 2>&1; then
        local packages=python3,python3-venv,ca-certificates
        local arch tarball
        arch=$(dpkg --print-architecture)
        tarball=$CACHE/bookworm-minbase-$arch-python3.tar
        if [[ ! -s $tarball ]]; then
            need_packages debootstrap
            say "debootstrap of bookworm ($packages) from $DEBIAN_MIRROR"
            local rootfs=$TMP/rootfs
            debootstrap --variant=minbase --include="$packages" \
                bookworm "$rootfs" "$DEBIAN_MIRROR" >"$TMP/debootstrap.log" 2>&1 || {
                tail -20 "$TMP/debootstrap.log" >&2
                die "debootstrap failed"
            }
            # What an image needs no copy of: downloaded packages, package lists, docs.
            rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
                "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* \
                "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/*
            mkdir -p "$CACHE"
            tar --numeric-owner -C "$rootfs" \
                --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' \
                -cf "$tarball.partial" .
            mv "$tarball.partial" "$tarball"
            rm -rf "$rootfs"
        else
            say "stand-in base from the cached $tarball"
        fi
        docker import \
            --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --change 'ENV LANG=C.UTF-8' \
            --change 'CMD ["/bin/bash"]' \
            "$tarball" "$STANDIN_RAW" >/dev/null
    fi
    local ctx=$TMP/standin
    mkdir -p "$ctx/certs"
    if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
        cp /usr/local/share/ca-certificates/*.crt "$ctx/certs/"
    fi
    # pip before 24.2 reads only its own certificate bundle: PIP_CERT points it at the
    # system's, which now holds the machine's certificates too.
    cat >"$ctx/Dockerfile" <<EOF
FROM $STANDIN_RAW
COPY certs/ /usr/local/share/ca-certificates/
RUN update-ca-certificates >/dev/null
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt \\
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
EOF
    docker build -q --network host -t "$STANDIN" "$ctx" >/dev/null
}

choose_base() {
    if [[ -n ${BASE:-} ]]; then
        say "base image $BASE (given)"
    elif docker image inspect "$OFFICIAL_BASE" >/dev/null 2>&1 ||
        timeout 120 docker pull -q "$OFFICIAL_BASE" >/dev/null 2>&1; then
        BASE=$OFFICIAL_BASE
        say "base image $BASE"
    else
        say "$OFFICIAL_BASE cannot be pulled here: a stand-in base from Debian's packages"
        build_standin
        BASE=$STANDIN
    fi
}

# ---------------------------------------------------------------------------- checks

# Every container and volume is named $RUN_ID-<what> and removed at the end. The clean-up
# removes them by that prefix: a name kept in a variable would be lost in the subshell
# of a $(...).
container_name() { printf '%s' "$RUN_ID-$1"; }
new_volume() {
    docker volume create "$RUN_ID-$1" >/dev/null
    printf '%s' "$RUN_ID-$1"
}

# Seconds from `docker run -d` until the container reports healthy; fails past the limit.
wait_healthy() {
    local name=$1 since=$2 status
    while true; do
        status=$(docker inspect -f '{{.State.Health.Status}}' "$name" 2>/dev/null || echo gone)
        case $status in
            healthy)
                elapsed_since "$since"
                return 0
                ;;
            unhealthy | gone) break ;;
        esac
        if awk -v a="$since" -v b="$(date +%s.%N)" -v l="$HEALTHY_WITHIN" \
            'BEGIN { exit !(b - a > l) }'; then
            break
        fi
        sleep 0.2
    done
    docker inspect -f '{{range .State.Health.Log}}{{.Output}}{{end}}' "$name" 2>/dev/null |
        tail -3 >&2
    docker logs --tail 10 "$name" >&2 2>&1 || true
    return 1
}

# An operator's mistake: exit 2 and one line on stderr, no traceback.
expect_one_line() {
    local what=$1 out
    shift
    local code=0
    out=$(docker run --rm --network none "$@" 2>&1 >/dev/null) || code=$?
    if [[ $code -eq 2 && $(grep -c . <<<"$out") -eq 1 && $out != *Traceback* ]]; then
        ok "$what: exit 2, \"$out\""
    else
        fail "$what: exit $code, stderr:"
        awk '{ print "      " $0 }' <<<"$out" | tail -15
    fi
}

check_context() {
    say "the build context (.dockerignore)"
    # An image of the context itself, listed: what `docker build .` would send.
    printf 'FROM scratch\nCOPY . /ctx/\n' |
        docker build -q -t "$RUN_ID-context" -f - . >/dev/null 2>"$TMP/context.log"
    local cid listing
    cid=$(docker create "$RUN_ID-context" none 2>>"$TMP/context.log")
    listing=$(docker export "$cid" | tar -t)
    docker rm "$cid" >/dev/null
    docker rmi "$RUN_ID-context" >/dev/null
    local bad
    bad=$(grep -E '^ctx/(\.venv|\.git|data|build|tests|\.mypy_cache|\.pytest_cache|\.ruff_cache)(/|$)|\.db(-wal|-shm)?$|\.egg-info/|__pycache__/' <<<"$listing" | head -5 || true)
    if [[ -z $bad ]]; then
        ok "no .venv, .git, data/, tests, caches or databases ($(grep -c . <<<"$listing") entries)"
    else
        fail "the context carries: $(tr '\n' ' ' <<<"$bad")"
    fi
}

check_image_contents() {
    say "what the image holds"
    local listing
    listing=$(docker run --rm --network none "$IMAGE" bash -c \
        'ls -a /app; find / -xdev \( -name "*.egg-info" -o -path /app/build \) -print 2>/dev/null | grep -v "^/proc"; true')
    if grep -qxE 'build|bot|plugins|tests|\.git|pyproject\.toml' <<<"$listing" ||
        grep -q 'egg-info\|/app/build' <<<"$listing"; then
        fail "sources, build/ or egg-info in the image: $(tr '\n' ' ' <<<"$listing")"
    else
        ok "/app holds only $(grep -vxE '\.|\.\.' <<<"$listing" | tr '\n' ' ')"
    fi
    local pip
    pip=$(docker run --rm --network none "$IMAGE" pip --version | awk '{ print $2 }') || true
    if [[ ${pip%%.*} =~ ^[0-9]+$ && ${pip%%.*} -ge 25 ]]; then
        ok "pip $pip (upgraded)"
    else
        fail "pip $pip: not upgraded"
    fi
}

check_console_reply() {
    say "a reply through the console"
    local vol=$1 out code=0
    out=$(printf '%s\n' '!hjälp' '!omröstning ny "Fika på fredag?" "Ja" "Nej" --i alla' |
        docker run -i --rm --network none --name "$(container_name console)" \
            -v "$vol":/app/data "$IMAGE" 2>"$TMP/console.err") || code=$?
    if [[ $code -eq 0 ]] && grep -q '^\[#falun\] Samverkan: Kommandon du kan använda' <<<"$out"; then
        ok "!hjälp answered, exit 0"
    else
        fail "!hjälp not answered (exit $code): $(head -c 600 <<<"$out") $(tail -5 "$TMP/console.err")"
    fi
    if grep -q '^\[#falun\] Samverkan: Omröstning 1 är skapad' <<<"$out"; then
        ok "a poll made (to be found after the restart)"
    else
        fail "the poll was not made"
    fi
}

check_running() {
    say "running detached: uid, health, stop, restart"
    local vol=$1 name since took
    name=$(container_name bot)
    since=$(date +%s.%N)
    # -i keeps the console's stdin open, so the bot runs until it is stopped.
    docker run -d -i --network none --name "$name" -v "$vol":/app/data "$IMAGE" >/dev/null
    if took=$(wait_healthy "$name" "$since"); then
        ok "healthy after ${took} s (limit $HEALTHY_WITHIN s)"
        HEALTHY_AFTER=$took
    else
        fail "not healthy within $HEALTHY_WITHIN s"
    fi
    local uid
    uid=$(docker exec "$name" awk '/^Uid:/ { print $2 }' /proc/1/status 2>&1) || true
    if [[ $uid == 10001 ]]; then
        ok "the bot (PID 1) runs as uid $uid"
    else
        fail "the bot runs as uid $uid, not 10001"
    fi
    since=$(date +%s.%N)
    docker stop -t 30 "$name" >/dev/null || true
    took=$(elapsed_since "$since")
    local code
    code=$(docker inspect -f '{{.State.ExitCode}}' "$name")
    if [[ $code -eq 0 ]] && awk -v t="$took" -v l="$STOP_WITHIN" 'BEGIN { exit !(t < l) }'; then
        ok "docker stop: exit 0 after $took s"
        STOP_AFTER=$took
    else
        fail "docker stop: exit $code after $took s (limit $STOP_WITHIN s)"
        docker logs --tail 10 "$name" 2>&1 | sed 's/^/      /'
    fi
    # The same container again: `docker start` keeps its stdin open as `run -d -i` did.
    since=$(date +%s.%N)
    docker start "$name" >/dev/null || true
    if took=$(wait_healthy "$name" "$since"); then
        ok "restarted: healthy again after ${took} s"
    else
        fail "restarted: not healthy within $HEALTHY_WITHIN s"
    fi
    docker stop -t 30 "$name" >/dev/null || true
}

check_data_kept() {
    say "data kept in the volume"
    local vol=$1 files out
    files=$(docker run --rm --network none -v "$vol":/app/data "$IMAGE" ls /app/data) || true
    if grep -qx samverkan.db <<<"$files" && grep -qx heartbeat <<<"$files"; then
        ok "the volume holds $(tr '\n' ' ' <<<"$files")"
    else
        fail "the volume holds only: $(tr '\n' ' ' <<<"$files")"
    fi
    out=$(printf '!omröstning lista\n' |
        docker run -i --rm --network none -v "$vol":/app/data "$IMAGE" 2>/dev/null || true)
    if grep -q '1\. Fika på fredag?' <<<"$out"; then
        ok "the poll of the first run is listed after the restarts"
    else
        fail "the poll of the first run is gone: $(head -c 400 <<<"$out")"
    fi
}

check_other_config() {
    say "health with another configuration (--config), a host file by absolute path"
    # The README's form: -v "$PWD/samverkan.toml":... Debian's client needs the absolute
    # path. The database goes to a folder of its own, so that only its heartbeat can make
    # the container healthy.
    mkdir -p "$TMP/etc"
    sed 's|^database = .*|database = "/app/data/other/bot.db"|' \
        "$REPO/config/samverkan.toml" >"$TMP/etc/other.toml"
    sed -i 's|"config/|"/app/config/|' "$TMP/etc/other.toml"
    chmod 644 "$TMP/etc/other.toml"
    local vol name since took
    vol=$(new_volume other)
    docker run --rm --network none -v "$vol":/app/data "$IMAGE" mkdir /app/data/other || true
    name=$(container_name other)
    since=$(date +%s.%N)
    docker run -d -i --network none --name "$name" -v "$vol":/app/data \
        -v "$TMP/etc/other.toml":/etc/samverkan/other.toml:ro \
        "$IMAGE" run --config /etc/samverkan/other.toml >/dev/null
    if took=$(wait_healthy "$name" "$since"); then
        ok "healthy after ${took} s with --config /etc/samverkan/other.toml"
    else
        fail "not healthy with --config within $HEALTHY_WITHIN s"
    fi
    docker stop -t 30 "$name" >/dev/null || true
}

check_mistakes() {
    say "an operator's mistakes: one line, exit 2"
    mkdir -p "$TMP/hostdata" "$TMP/private"
    chmod 755 "$TMP/hostdata"
    expect_one_line "a host folder owned by root" -v "$TMP/hostdata":/app/data "$IMAGE"
    cp "$REPO/config/samverkan.toml" "$TMP/private/samverkan.toml"
    chmod 600 "$TMP/private/samverkan.toml"
    expect_one_line "a configuration only root can read" \
        -v "$TMP/private/samverkan.toml":/app/config/samverkan.toml:ro "$IMAGE"
    expect_one_line "check-config on it" \
        -v "$TMP/private/samverkan.toml":/app/config/samverkan.toml:ro "$IMAGE" check-config
    # What Docker does with a host path that does not exist: it makes a folder there (onto
    # the image's own configuration file Docker itself refuses; elsewhere it mounts it).
    expect_one_line "a folder where the configuration belongs" \
        -v "$TMP/missing.toml":/etc/samverkan/samverkan.toml:ro "$IMAGE" \
        run --config /etc/samverkan/samverkan.toml
}

# ---------------------------------------------------------------------------- main

[[ $(id -u) -eq 0 ]] || docker info >/dev/null 2>&1 ||
    die "needs root (to install and start a Docker engine) or a running engine"
start_engine
say "engine: $(docker version -f 'server {{.Server.Version}}, client {{.Client.Version}}')"
if [[ -n $DOCKERD_PID ]]; then
    # Our own engine, locked to us: what a run that was killed left behind can go.
    for c in $(docker ps -aq --filter 'name=^samverkan-test-'); do docker rm -f "$c" >/dev/null; done
    for v in $(docker volume ls -q --filter 'name=^samverkan-test-'); do
        docker volume rm -f "$v" >/dev/null
    done
fi
choose_base

say "docker build (base $BASE)"
build_started=$(date +%s.%N)
# The build stage is tagged too: the legacy builder's cache is its intermediate images,
# and an untagged stage would go with the prune below, and be built anew each time.
for target in "--target=build -t $IMAGE-build" "-t $IMAGE"; do
    # shellcheck disable=SC2086 # two words each, on purpose
    docker build --network host --build-arg BASE="$BASE" $target . >>"$TMP/build.log" 2>&1 || {
        tail -30 "$TMP/build.log" >&2
        die "docker build failed"
    }
done
BUILD_TOOK=$(elapsed_since "$build_started")
ok "built $IMAGE in $BUILD_TOOK s ($(grep -c 'Using cache' "$TMP/build.log" || true) of" \
    "$(grep -c '^Step ' "$TMP/build.log" || true) steps from the cache)"
# Earlier builds of the tag, now untagged, would pile up in our data root (an engine that
# was running already is left as it is).
if [[ -n $DOCKERD_PID ]]; then
    docker image prune -f >/dev/null
fi

HEALTHY_AFTER="-"
STOP_AFTER="-"
check_context
check_image_contents
data=$(new_volume data)
check_console_reply "$data"
check_running "$data"
check_data_kept "$data"
check_other_config
check_mistakes

size=$(docker image inspect -f '{{.Size}}' "$IMAGE")
say "figures: image $IMAGE $((size / 1000000)) MB (base $BASE), build $BUILD_TOOK s," \
    "healthy after $HEALTHY_AFTER s, stop $STOP_AFTER s, whole run $(($(date +%s) - started)) s"
if [[ $failures -gt 0 ]]; then
    say "docker-test: $failures check(s) FAILED"
    exit 1
fi
say "docker-test: every check passed"
