# shellcheck shell=bash
# Private PostgreSQL clusters for tests, the demo and local runs. Source it.
#
#   cluster_pick_dir NAME         print the folder to use for cluster NAME
#   cluster_start DIR [PORT]      initdb (first time) + start; exports CLUSTER_DIR,
#                                 CLUSTER_SOCKET_DIR, CLUSTER_PORT, CLUSTER_USER,
#                                 CLUSTER_PGBIN, CLUSTER_LOG
#   cluster_stop DIR              fast shutdown; no-op when not running
#   cluster_destroy DIR           stop, remove the folder and its .run/ record
#   cluster_psql DIR DB [args]    psql as the postgres role through the cluster's socket
#   cluster_is_running DIR        status 0 when the cluster's server is up
#
# The cluster is Unix-socket only (listen_addresses=''); the socket lives in DIR itself,
# and PORT only names the socket file. PostgreSQL refuses to run as root, so when we are
# root every server-side command runs as Debian's `postgres` account and DIR belongs to it.

if [[ -n "${_MDSYNC_CLUSTER_SH:-}" ]]; then
    return 0
fi
_MDSYNC_CLUSTER_SH=1

# shellcheck source=tools/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

MDSYNC_CLUSTER_DEFAULT_PORT="${MDSYNC_CLUSTER_DEFAULT_PORT:-5432}"
# Role created by initdb and used by every client.
MDSYNC_CLUSTER_ROLE=postgres

# OS account that owns and runs the server: postgres when root, else ourselves.
_cluster_owner() {
    if [[ "$(id -u)" -eq 0 ]]; then
        if ! getent passwd postgres >/dev/null 2>&1; then
            die "running as root but there is no 'postgres' account to run PostgreSQL as (install postgresql-15, or run as a normal user)"
            return 1
        fi
        printf 'postgres\n'
    else
        id -un
    fi
}

# Quote one word for /bin/sh.
_cluster_sh_quote() {
    local s=${1//\'/\'\\\'\'}
    printf "'%s'" "$s"
}

# Run a command as the cluster owner, from / (the caller's folder may be closed to it).
_cluster_as_owner() {
    if [[ "$(id -u)" -ne 0 ]]; then
        (cd / && "$@")
        return
    fi
    local owner
    owner="$(_cluster_owner)" || return 1
    if command -v runuser >/dev/null 2>&1; then
        (cd / && runuser -u "$owner" -- "$@")
    else
        local cmd="" a
        for a in "$@"; do
            cmd+="$(_cluster_sh_quote "$a") "
        done
        (cd / && su "$owner" -s /bin/sh -c "$cmd")
    fi
}

# Can the cluster owner enter and write DIR?
_cluster_reachable() {
    [[ -d "$1" ]] && _cluster_as_owner test -d "$1" -a -x "$1" -a -w "$1" 2>/dev/null
}

# Would a socket in DIR fit? (sun_path is ~107 bytes; we keep the whole path < 100.)
_cluster_socket_fits() {
    local bytes
    bytes="$(printf '%s/.s.PGSQL.65535' "$1" | wc -c)"
    [[ "$bytes" -lt 100 ]]
}

_cluster_abs() {
    readlink -m -- "$1"
}

# Hand an (empty or fresh) folder to the owner with mode 0700.
_cluster_own_dir() {
    local dir="$1" owner
    owner="$(_cluster_owner)" || return 1
    if [[ "$(id -u)" -eq 0 ]]; then
        chown "$owner": "$dir" || return 1
    fi
    chmod 0700 "$dir"
}

# A fresh private folder under ${TMPDIR:-/tmp} (or /tmp) that the owner can use.
_cluster_tmp_dir() {
    local name="$1" base d
    for base in "${TMPDIR:-/tmp}" /tmp; do
        d="$(mktemp -d "${base%/}/mdsync-$name.XXXXXX" 2>/dev/null)" || continue
        if _cluster_own_dir "$d" && _cluster_reachable "$d" && _cluster_socket_fits "$d"; then
            printf '%s\n' "$d"
            return 0
        fi
        rm -rf -- "$d"
    done
    die "cannot make a cluster folder under ${TMPDIR:-/tmp} or /tmp that $(_cluster_owner) can use"
}

cluster_pick_dir() {
    local name="${1:-}"
    if [[ ! "$name" =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$ ]]; then
        die "cluster_pick_dir: bad cluster name '$name' (letters, digits, . _ -; at most 40)"
        return 1
    fi
    local run="$mdsync_repo_root/.run"
    local link="$run/$name" target

    if [[ -L "$link" ]]; then
        target="$(readlink -f -- "$link" || true)"
        if [[ -n "$target" && -d "$target" ]]; then
            if _cluster_reachable "$target" && _cluster_socket_fits "$target"; then
                printf '%s\n' "$target"
                return 0
            fi
            die "$link points to $target, which $(_cluster_owner) cannot use; remove the link (and that folder) to start afresh"
            return 1
        fi
        log_warn "$link pointed to a folder that is gone; making a new cluster folder"
        rm -f -- "$link"
    elif [[ -d "$link" ]]; then
        if ! _cluster_reachable "$link" && [[ "$(id -u)" -eq 0 && -z "$(ls -A -- "$link")" ]]; then
            _cluster_own_dir "$link" || true
        fi
        if _cluster_reachable "$link" && _cluster_socket_fits "$link"; then
            _cluster_abs "$link"
            return 0
        fi
        die "$link exists but $(_cluster_owner) cannot run a cluster there; remove it to start afresh"
        return 1
    elif [[ -e "$link" ]]; then
        die "$link exists and is not a folder"
        return 1
    fi

    local have_run=1
    if [[ ! -d "$run" ]] && ! mkdir -m 0755 -- "$run" 2>/dev/null; then
        have_run=0
    fi

    # First choice: the repo's own .run/NAME.
    if [[ "$have_run" -eq 1 ]] && mkdir -m 0700 -- "$link" 2>/dev/null; then
        if _cluster_own_dir "$link" && _cluster_reachable "$link" && _cluster_socket_fits "$link"; then
            _cluster_abs "$link"
            return 0
        fi
        rmdir -- "$link" 2>/dev/null || rm -rf -- "$link"
    fi

    # Otherwise a private temp folder, recorded as the symlink .run/NAME.
    target="$(_cluster_tmp_dir "$name")" || return 1
    if [[ "$have_run" -eq 1 ]] && ln -sfn -- "$target" "$link" 2>/dev/null; then
        :
    else
        log_warn "could not record $target as $link"
    fi
    printf '%s\n' "$target"
}

# Field N (1-based) of DIR/postmaster.pid: 1 pid, 4 port, 5 socket dir, 8 status.
_cluster_pid_field() {
    local f="$1/postmaster.pid"
    [[ -r "$f" ]] || return 1
    sed -n "${2}p" "$f"
}

cluster_is_running() {
    local dir bindir
    dir="$(_cluster_abs "${1:?cluster_is_running DIR}")"
    [[ -f "$dir/PG_VERSION" && -f "$dir/postmaster.pid" ]] || return 1
    bindir="$(pg_bindir)" || return 1
    _cluster_as_owner "$bindir/pg_ctl" status -D "$dir" >/dev/null 2>&1
}

_cluster_export() {
    local dir="$1" port sock
    port="$(_cluster_pid_field "$dir" 4)" || return 1
    sock="$(_cluster_pid_field "$dir" 5)" || return 1
    if [[ -z "$port" || -z "$sock" ]]; then
        die "cannot read port/socket folder from $dir/postmaster.pid"
        return 1
    fi
    export CLUSTER_DIR="$dir"
    export CLUSTER_SOCKET_DIR="$sock"
    export CLUSTER_PORT="$port"
    export CLUSTER_USER="$MDSYNC_CLUSTER_ROLE"
    export CLUSTER_PGBIN="$2"
    export CLUSTER_LOG="$dir/server.log"
}

_cluster_locale() {
    if locale -a 2>/dev/null | grep -Eiq '^c\.utf-?8$'; then
        printf 'C.UTF-8\n'
    else
        printf 'C\n'
    fi
}

_cluster_initdb() {
    local dir="$1" bindir="$2" loc out
    loc="$(_cluster_locale)"
    log_step "initdb $dir (locale $loc)"
    local -a args=(-D "$dir" --auth=trust -U "$MDSYNC_CLUSTER_ROLE" --encoding=UTF8 --no-sync)
    if ! out="$(_cluster_as_owner "$bindir/initdb" "${args[@]}" --locale="$loc" 2>&1)"; then
        if [[ "$loc" != C ]]; then
            log_warn "initdb with locale $loc failed; retrying with locale C"
            out="$(_cluster_as_owner "$bindir/initdb" "${args[@]}" --locale=C 2>&1)" || {
                printf '%s\n' "$out" >&2
                die "initdb failed for $dir"
                return 1
            }
        else
            printf '%s\n' "$out" >&2
            die "initdb failed for $dir"
            return 1
        fi
    fi
    # Our settings live in mdsync.conf, rewritten on every start.
    if ! grep -q "^include_if_exists = 'mdsync.conf'" "$dir/postgresql.conf"; then
        # shellcheck disable=SC2016  # $1 is for the inner sh
        printf "\n# mdsync: settings written by tools/lib/cluster.sh at each start\ninclude_if_exists = 'mdsync.conf'\n" |
            _cluster_as_owner sh -c 'cat >> "$1"' sh "$dir/postgresql.conf" || return 1
    fi
}

_cluster_write_conf() {
    local dir="$1" port="$2"
    local qdir=${dir//\'/\'\'}
    # shellcheck disable=SC2016  # $1 is for the inner sh
    cat <<EOF | _cluster_as_owner sh -c 'cat > "$1"' sh "$dir/mdsync.conf"
# Written by tools/lib/cluster.sh at every start; local changes go in postgresql.conf.
listen_addresses = ''
port = $port
unix_socket_directories = '$qdir'
unix_socket_permissions = 0700
max_connections = 200
shared_buffers = 128MB
fsync = off
synchronous_commit = off
full_page_writes = off
logging_collector = off
EOF
}

cluster_start() {
    local dir port bindir
    if [[ -z "${1:-}" ]]; then
        die "usage: cluster_start DIR [PORT]"
        return 1
    fi
    dir="$(_cluster_abs "$1")"
    port="${2:-$MDSYNC_CLUSTER_DEFAULT_PORT}"
    if [[ ! "$port" =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then
        die "cluster_start: bad port '$port'"
        return 1
    fi
    bindir="$(pg_bindir)" || {
        die "PostgreSQL server binaries not found (install postgresql-15, or set MDSYNC_PGBIN)"
        return 1
    }
    if ! _cluster_socket_fits "$dir"; then
        die "cluster folder path too long for a Unix socket (keep it under ~85 bytes): $dir"
        return 1
    fi

    if cluster_is_running "$dir"; then
        _cluster_export "$dir" "$bindir"
        return
    fi

    if [[ ! -f "$dir/PG_VERSION" ]]; then
        if [[ ! -d "$dir" ]]; then
            mkdir -p -- "$dir" || return 1
            _cluster_own_dir "$dir" || return 1
        elif [[ -n "$(ls -A -- "$dir")" ]]; then
            die "$dir is not empty and holds no PostgreSQL cluster (no PG_VERSION)"
            return 1
        elif ! _cluster_reachable "$dir"; then
            _cluster_own_dir "$dir" || return 1
        fi
        _cluster_initdb "$dir" "$bindir" || return 1
    fi

    _cluster_write_conf "$dir" "$port" || {
        die "cannot write $dir/mdsync.conf"
        return 1
    }

    log_step "starting PostgreSQL in $dir (socket $dir/.s.PGSQL.$port)"
    if ! _cluster_as_owner "$bindir/pg_ctl" start -D "$dir" -l "$dir/server.log" -w -t 60 -s >&2; then
        printf -- '--- last 30 lines of %s ---\n' "$dir/server.log" >&2
        tail -n 30 "$dir/server.log" >&2 2>/dev/null || true
        die "PostgreSQL failed to start in $dir"
        return 1
    fi

    local isready="$bindir/pg_isready" i
    [[ -x "$isready" ]] || isready="$(command -v pg_isready || true)"
    if [[ -n "$isready" ]]; then
        for ((i = 0; i < 120; i++)); do
            if "$isready" -q -h "$dir" -p "$port" -U "$MDSYNC_CLUSTER_ROLE" -d postgres; then
                break
            fi
            sleep 0.5
        done
        if ((i == 120)); then
            tail -n 30 "$dir/server.log" >&2 2>/dev/null || true
            die "PostgreSQL in $dir started but does not accept connections"
            return 1
        fi
    fi
    _cluster_export "$dir" "$bindir"
}

cluster_stop() {
    local dir bindir pid
    dir="$(_cluster_abs "${1:?cluster_stop DIR}")"
    [[ -f "$dir/PG_VERSION" ]] || return 0
    cluster_is_running "$dir" || return 0
    bindir="$(pg_bindir)" || return 1
    log_step "stopping PostgreSQL in $dir"
    if _cluster_as_owner "$bindir/pg_ctl" stop -D "$dir" -m fast -w -t 60 -s >&2; then
        return 0
    fi
    log_warn "fast shutdown failed; trying immediate"
    if _cluster_as_owner "$bindir/pg_ctl" stop -D "$dir" -m immediate -w -t 30 -s >&2; then
        return 0
    fi
    pid="$(_cluster_pid_field "$dir" 1 || true)"
    if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
        log_warn "killing postmaster $pid"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 1
    fi
    ! cluster_is_running "$dir"
}

cluster_destroy() {
    local arg="${1:?cluster_destroy DIR}" dir l
    dir="$(readlink -f -- "$arg" 2>/dev/null || _cluster_abs "$arg")"
    if [[ -d "$dir" ]]; then
        cluster_stop "$dir" || log_warn "could not stop the server in $dir"
        case "$dir" in
        / | "$mdsync_repo_root" | "${HOME:-/}" | /tmp | /var/tmp | "$(readlink -m -- "${TMPDIR:-/tmp}")")
            die "cluster_destroy: refusing to remove $dir"
            return 1
            ;;
        esac
        if [[ -f "$dir/PG_VERSION" || -z "$(ls -A -- "$dir")" || "$dir" == "$mdsync_repo_root/.run/"* ||
            "$(basename -- "$dir")" == mdsync-* ]]; then
            rm -rf -- "$dir" || return 1
        else
            die "cluster_destroy: $dir does not look like a cluster folder; not removing it"
            return 1
        fi
    fi
    # Drop .run/ records that pointed at it.
    [[ -L "$arg" ]] && rm -f -- "$arg"
    for l in "$mdsync_repo_root/.run"/*; do
        if [[ -L "$l" && "$(readlink -m -- "$l")" == "$dir" ]]; then
            rm -f -- "$l"
        fi
    done
    return 0
}

cluster_psql() {
    if [[ $# -lt 2 ]]; then
        die "usage: cluster_psql DIR DBNAME [psql args...]"
        return 1
    fi
    local dir db="$2" sock port bindir psql
    dir="$(_cluster_abs "$1")"
    shift 2
    if ! sock="$(_cluster_pid_field "$dir" 5)" || ! port="$(_cluster_pid_field "$dir" 4)"; then
        die "no PostgreSQL running in $dir"
        return 1
    fi
    bindir="$(pg_bindir 2>/dev/null || true)"
    psql="$bindir/psql"
    [[ -n "$bindir" && -x "$psql" ]] || psql="$(command -v psql || true)"
    if [[ -z "$psql" ]]; then
        die "psql not found (install postgresql-client-15)"
        return 1
    fi
    "$psql" -X -v ON_ERROR_STOP=1 -h "$sock" -p "$port" -U "$MDSYNC_CLUSTER_ROLE" -d "$db" "$@"
}
