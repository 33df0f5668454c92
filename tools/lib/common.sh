# shellcheck shell=bash
# Shared helpers for mdsync's shell tooling. Source it; do not execute it.
#
#   mdsync_repo_root            absolute path of the repository checkout
#   log_step MSG...             "==> MSG" on stderr
#   log_warn MSG... / die MSG...
#   ensure_deps                 install missing Debian packages (no apt call if none missing)
#   pg_bindir                   print the PostgreSQL server bin dir (initdb, pg_ctl, postgres)
#   build_project [DIR] [cmake args...]
#
# Functions report errors with a message and a non-zero return; they never `exit`.

if [[ -n "${_MDSYNC_COMMON_SH:-}" ]]; then
    return 0
fi
_MDSYNC_COMMON_SH=1

mdsync_repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
export mdsync_repo_root

log_step() { printf '==> %s\n' "$*" >&2; }
log_warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
    printf 'error: %s\n' "$*" >&2
    return 1
}

# Packages the build, the tests and the tools need (Debian 12 names).
MDSYNC_DEB_PACKAGES=(
    build-essential cmake pkg-config
    libpqxx-dev libboost-dev nlohmann-json3-dev libspdlog-dev libcli11-dev
    librapidcheck-dev libgtest-dev libbenchmark-dev
    libicu-dev
    clang-format
)
# The server package, asked for only when no initdb binary can be found.
MDSYNC_PG_SERVER_PACKAGE=postgresql-15

# Print the directory holding initdb/pg_ctl/postgres. Order: $MDSYNC_PGBIN,
# `pg_config --bindir`, the newest /usr/lib/postgresql/*/bin, initdb on PATH.
pg_bindir() {
    local d
    if [[ -n "${MDSYNC_PGBIN:-}" ]]; then
        if [[ -x "$MDSYNC_PGBIN/initdb" && -x "$MDSYNC_PGBIN/pg_ctl" ]]; then
            printf '%s\n' "$MDSYNC_PGBIN"
            return 0
        fi
        die "MDSYNC_PGBIN=$MDSYNC_PGBIN has no initdb/pg_ctl"
        return 1
    fi
    if command -v pg_config >/dev/null 2>&1; then
        d="$(pg_config --bindir 2>/dev/null || true)"
        if [[ -n "$d" && -x "$d/initdb" && -x "$d/pg_ctl" ]]; then
            printf '%s\n' "$d"
            return 0
        fi
    fi
    d="$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/initdb' -type f 2>/dev/null |
        sort -V | tail -n 1)"
    if [[ -n "$d" ]]; then
        d="$(dirname "$d")"
        if [[ -x "$d/pg_ctl" ]]; then
            printf '%s\n' "$d"
            return 0
        fi
    fi
    d="$(command -v initdb 2>/dev/null || true)"
    if [[ -n "$d" ]]; then
        d="$(dirname "$(readlink -f "$d")")"
        if [[ -x "$d/pg_ctl" ]]; then
            printf '%s\n' "$d"
            return 0
        fi
    fi
    return 1
}

# Run a command as root: directly when root, through sudo otherwise.
_mdsync_as_root() {
    if [[ "$(id -u)" -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root to run '$*': not root and sudo is not installed"
        return 1
    fi
}

ensure_deps() {
    if [[ -n "${MDSYNC_SKIP_DEPS:-}" ]]; then
        return 0
    fi
    if ! command -v dpkg-query >/dev/null 2>&1; then
        die "ensure_deps needs a Debian system (dpkg-query not found); install the dependencies by hand and set MDSYNC_SKIP_DEPS=1"
        return 1
    fi

    local -a missing=()
    local pkg status
    local -A installed=()
    # One dpkg-query for all packages; unknown packages go to stderr and count as missing.
    while read -r pkg status; do
        if [[ "$status" == installed ]]; then
            installed["${pkg%%:*}"]=1
        fi
    done < <(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${MDSYNC_DEB_PACKAGES[@]}" 2>/dev/null || true)
    for pkg in "${MDSYNC_DEB_PACKAGES[@]}"; do
        [[ -n "${installed[$pkg]:-}" ]] || missing+=("$pkg")
    done
    if ! pg_bindir >/dev/null 2>&1; then
        missing+=("$MDSYNC_PG_SERVER_PACKAGE")
    fi
    if [[ ${#missing[@]} -eq 0 ]]; then
        return 0
    fi

    log_step "installing missing packages: ${missing[*]}"
    _mdsync_as_root apt-get update -qq || {
        die "apt-get update failed"
        return 1
    }
    _mdsync_as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}" || {
        die "apt-get install failed for: ${missing[*]}"
        return 1
    }
    if ! pg_bindir >/dev/null 2>&1; then
        die "PostgreSQL server binaries (initdb, pg_ctl) still not found after installing ${MDSYNC_PG_SERVER_PACKAGE}"
        return 1
    fi
}

# build_project [BUILD_DIR] [extra cmake args...]
# BUILD_DIR defaults to $repo/build; a relative BUILD_DIR is taken from the repo root.
build_project() {
    local build_dir="${1:-build}"
    if [[ $# -gt 0 ]]; then
        shift
    fi
    [[ "$build_dir" == /* ]] || build_dir="$mdsync_repo_root/$build_dir"

    local -a cfg=(-S "$mdsync_repo_root" -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo)
    if command -v ccache >/dev/null 2>&1; then
        cfg+=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
    fi

    log_step "configuring $build_dir"
    cmake "${cfg[@]}" "$@" || {
        die "cmake configure failed ($build_dir)"
        return 1
    }
    log_step "building $build_dir"
    cmake --build "$build_dir" -j"$(nproc)" || {
        die "build failed ($build_dir)"
        return 1
    }
}
