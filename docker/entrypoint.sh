#!/usr/bin/env bash
# The image's entrypoint. Its arguments are samverkan's (`run`, `run --config PATH`,
# `check-config`, `health`, ...), or `samverkan ...`, or any other command (`bash`),
# which runs as given.
#
# Before samverkan starts it checks what an operator mounts, since the usual mistakes
# there would otherwise surface as a Python traceback: a configuration the bot's user
# cannot read (or a folder where a file belongs: Docker makes one when the host path does
# not exist), and, for `run`, a data folder it cannot write. Each is one line and exit 2,
# as samverkan reports every other configuration mistake.
set -euo pipefail

BOT_UID=$(id -u)
DATA=/app/data

refuse() {
    echo "samverkan: $*" >&2
    exit 2
}

# "uid 0, mode 600": who may do what with a path, for the operator to compare.
owner_and_mode() {
    stat -c 'uid %u, mode %a' -- "$1" 2>/dev/null || echo 'owner unknown'
}

# The configuration file samverkan will read: --config, else SAMVERKAN_CONFIG, else the
# default; relative paths are taken from the working directory, as samverkan does.
config_of() {
    local config=${SAMVERKAN_CONFIG:-config/samverkan.toml}
    while [[ $# -gt 0 ]]; do
        case $1 in
            --config) config=${2:-}; shift ;;
            --config=*) config=${1#--config=} ;;
        esac
        shift
    done
    printf '%s' "$config"
}

check_config() {
    local config
    config=$(config_of "$@")
    [[ -n $config && -e $config ]] || return 0 # samverkan names a missing file itself
    if [[ -d $config ]]; then
        refuse "the configuration $config is a folder, not a file" \
            "(mount a file that exists on the host, by its absolute path)"
    fi
    if [[ ! -r $config ]]; then
        refuse "cannot read the configuration $config as uid $BOT_UID" \
            "($(owner_and_mode "$config")): make it readable to that uid" \
            "(e.g. chmod 644, or chgrp 10001 and chmod 640)"
    fi
}

check_data() {
    # An anonymous or named volume is the image's folder, which belongs to the bot; a host
    # folder mounted here must be given to it. (A database configured elsewhere is checked
    # by samverkan itself.)
    [[ -d $DATA ]] || return 0
    if [[ ! -w $DATA || ! -x $DATA ]]; then
        refuse "cannot write the data folder $DATA as uid $BOT_UID" \
            "($(owner_and_mode "$DATA")): give the host folder to that uid" \
            "(chown -R 10001:10001 FOLDER) or use a named volume"
    fi
}

if [[ $# -eq 0 ]]; then
    set -- run
elif [[ $1 == samverkan ]]; then
    shift
    [[ $# -gt 0 ]] || set -- run
elif command -v -- "$1" >/dev/null; then
    exec "$@" # another command: bash, python, ...
fi

check_config "$@"
if [[ $1 == run ]]; then
    check_data
fi
exec samverkan "$@"
