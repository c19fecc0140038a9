#!/usr/bin/env bash
# The image's health check: `samverkan health --config` about the configuration that the
# running bot was started with.
#
# Docker runs the probe as a process of its own with the image's environment, not the
# bot's command line: a bot started with `run --config /etc/x.toml` (or with variables
# set in its command) would otherwise be probed against the default configuration, and
# turn "unhealthy" while it works. So the probe finds the bot among the container's
# processes and takes from it the --config argument, the SAMVERKAN_* variables and the
# working directory (which relative paths are read from). Extra arguments are passed to
# `samverkan health` (e.g. --max-age 300).
set -euo pipefail

config=""
found=""
for dir in /proc/[0-9]*; do
    [[ ${dir#/proc/} == "$$" ]] && continue
    # A process may end while it is read, and others' may not be readable: skip those.
    mapfile -d '' -t argv 2>/dev/null <"$dir/cmdline" || continue
    # `.../samverkan run ...` (the console script under its interpreter) or
    # `python -m bot run ...`.
    rest=()
    for ((i = 0; i < ${#argv[@]}; i++)); do
        if [[ ${argv[i]##*/} == samverkan ]]; then
            rest=("${argv[@]:i+1}")
            break
        elif [[ ${argv[i]} == -m && ${argv[i + 1]:-} == bot ]]; then
            rest=("${argv[@]:i+2}")
            break
        fi
    done
    [[ ${#rest[@]} -gt 0 && ${rest[0]} == run ]] || continue
    found=${dir#/proc/}
    for ((i = 1; i < ${#rest[@]}; i++)); do
        case ${rest[i]} in
            --config) config=${rest[i + 1]:-} ;;
            --config=*) config=${rest[i]#--config=} ;;
        esac
    done
    if mapfile -d '' -t environ 2>/dev/null <"$dir/environ"; then
        for pair in "${environ[@]}"; do
            if [[ $pair == SAMVERKAN_* ]]; then
                export "${pair?}"
            fi
        done
    fi
    cd "$(readlink "$dir/cwd")" 2>/dev/null || true
    break
done

if [[ -z $found ]]; then
    echo "unhealthy: no samverkan run process in this container" >&2
    exit 1
fi
args=(health)
if [[ -n $config ]]; then
    args+=(--config "$config")
fi
exec samverkan "${args[@]}" "$@"
