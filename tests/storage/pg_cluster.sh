#!/usr/bin/env bash
# A private, throwaway PostgreSQL cluster for the storage tests.
#
#   pg_cluster.sh start STATE   initdb into a new directory under $TMPDIR (or /tmp), start
#                               postgres on a free 127.0.0.1 port with its unix socket in that
#                               directory, and write STATE
#   pg_cluster.sh stop STATE    stop that cluster, remove its directory and STATE
#   pg_cluster.sh down STATE    stop its server at once (as a crash would), keeping the data
#   pg_cluster.sh up STATE      start that server again, on the same port
#
# For speed the server does not wait for its WAL at commit (synchronous_commit=off), so a
# `down` may lose the last moments of commits; PG_CLUSTER_DURABLE=1 at `start` keeps every
# acknowledged commit across `down` (the outage tests).
#
# STATE is a shell-sourceable file: PG_CLUSTER_DIR, PG_CLUSTER_PORT and PG_CLUSTER_URL (a
# superuser URL to the `postgres` database; authentication is `trust` on loopback, except for
# the role llmproxy_pw, which must give its password, so tests can check password handling).
# CTest runs `start` and `stop` as fixtures around the PostgreSQL storage tests, which read STATE
# through LLM_PROXY_TEST_PG_STATE; the test binary also runs them itself when started alone.
# With LLM_PROXY_TEST_PG_URL set (the tests then use that server), `start` does nothing.
#
# As root, initdb and postgres run as the unprivileged user $PG_CLUSTER_USER (default
# `postgres`, which Debian's postgresql package creates). The server binaries come from
# $PG_BINDIR, `pg_config --bindir`, /usr/lib/postgresql/*/bin or PATH, in that order.
set -euo pipefail

die() {
  echo "pg_cluster: $*" >&2
  exit 1
}

find_bindir() {
  local d
  for d in "${PG_BINDIR:-}" "$(pg_config --bindir 2>/dev/null || true)" \
    $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [[ -n $d && -x $d/initdb && -x $d/pg_ctl && -x $d/postgres ]]; then
      echo "$d"
      return
    fi
  done
  if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
    dirname "$(command -v initdb)"
    return
  fi
  die "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found in \$PG_BINDIR," \
    "pg_config --bindir, /usr/lib/postgresql/*/bin or PATH. Install the 'postgresql' package" \
    "(bash packaging/install-deps.sh test) or set PG_BINDIR."
}

# Runs a command as the cluster's owner: the unprivileged user when we are root.
as_owner() {
  if [[ $(id -u) -eq 0 ]]; then
    if command -v runuser >/dev/null; then
      runuser -u "$RUN_USER" -- "$@"
    else
      setpriv --reuid="$RUN_USER" --regid="$(id -g "$RUN_USER")" --init-groups -- "$@"
    fi
  else
    "$@"
  fi
}

port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

stop_cluster() {
  local state=$1
  [[ -f $state ]] || return 0
  local PG_CLUSTER_DIR="" PG_CLUSTER_BINDIR="" PG_CLUSTER_RUN_USER=""
  # shellcheck disable=SC1090
  source "$state"
  RUN_USER=${PG_CLUSTER_RUN_USER:-postgres}
  if [[ -n $PG_CLUSTER_DIR && -d $PG_CLUSTER_DIR ]]; then
    if [[ -f $PG_CLUSTER_DIR/data/postmaster.pid ]]; then
      as_owner "$PG_CLUSTER_BINDIR/pg_ctl" -D "$PG_CLUSTER_DIR/data" -m immediate -w stop \
        >/dev/null 2>&1 || true
    fi
    rm -rf "$PG_CLUSTER_DIR"
  fi
  rm -f "$state"
}

start_server() {
  local bindir=$1 dir=$2 port=$3 durable=${4:-0} sync=off
  [[ $durable == 1 ]] && sync=on
  as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off \
        -c synchronous_commit=$sync -c full_page_writes=off -c max_connections=200" \
    start >/dev/null
}

# down/up: the server of a running cluster goes away and comes back with its data.
server_down() {
  local state=$1
  [[ -f $state ]] || die "no cluster state in $state"
  local PG_CLUSTER_DIR="" PG_CLUSTER_BINDIR="" PG_CLUSTER_RUN_USER=""
  # shellcheck disable=SC1090
  source "$state"
  RUN_USER=${PG_CLUSTER_RUN_USER:-postgres}
  as_owner "$PG_CLUSTER_BINDIR/pg_ctl" -D "$PG_CLUSTER_DIR/data" -m immediate -w stop >/dev/null
}

server_up() {
  local state=$1
  [[ -f $state ]] || die "no cluster state in $state"
  local PG_CLUSTER_DIR="" PG_CLUSTER_BINDIR="" PG_CLUSTER_RUN_USER="" PG_CLUSTER_PORT=""
  local PG_CLUSTER_DURABLE=0
  # shellcheck disable=SC1090
  source "$state"
  RUN_USER=${PG_CLUSTER_RUN_USER:-postgres}
  start_server "$PG_CLUSTER_BINDIR" "$PG_CLUSTER_DIR" "$PG_CLUSTER_PORT" "$PG_CLUSTER_DURABLE" ||
    { cat "$PG_CLUSTER_DIR/postgres.log" >&2 || true; die "postgres did not start again"; }
}

start_cluster() {
  local state=$1
  stop_cluster "$state" # a cluster left behind by an interrupted run
  if [[ -n ${LLM_PROXY_TEST_PG_URL:-} ]]; then
    echo "pg_cluster: the tests use LLM_PROXY_TEST_PG_URL; no private cluster started"
    return
  fi
  local bindir
  bindir=$(find_bindir)
  RUN_USER=${PG_CLUSTER_USER:-postgres}
  if [[ $(id -u) -eq 0 ]] && ! id -u "$RUN_USER" >/dev/null 2>&1; then
    die "running as root, but the user '$RUN_USER' to run PostgreSQL as does not exist" \
      "(set PG_CLUSTER_USER to an unprivileged user)"
  fi

  local base=${TMPDIR:-/tmp}
  [[ -d $base ]] || base=/tmp
  local dir
  dir=$(mktemp -d "$base/llmproxy-pg-XXXXXX")
  if [[ $(id -u) -eq 0 ]]; then
    chown "$RUN_USER" "$dir"
    if ! as_owner test -w "$dir"; then # $TMPDIR not reachable for that user
      rm -rf "$dir"
      dir=$(mktemp -d /tmp/llmproxy-pg-XXXXXX)
      chown "$RUN_USER" "$dir"
    fi
  fi
  {
    echo "PG_CLUSTER_DIR=$dir"
    echo "PG_CLUSTER_BINDIR=$bindir"
    echo "PG_CLUSTER_RUN_USER=$RUN_USER"
    echo "PG_CLUSTER_DURABLE=${PG_CLUSTER_DURABLE:-0}"
  } >"$state"

  if ! as_owner "$bindir/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
    --no-sync >"$dir/initdb.log" 2>&1; then
    cat "$dir/initdb.log" >&2
    stop_cluster "$state"
    die "initdb failed"
  fi
  # The password role first: pg_hba.conf is read top down.
  local hba="$dir/data/pg_hba.conf"
  as_owner sh -c "{ echo 'host all llmproxy_pw 127.0.0.1/32 scram-sha-256'; cat '$hba'; } \
    > '$hba.new' && mv '$hba.new' '$hba'"

  local port tries=0
  while :; do
    port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
    port_in_use "$port" && continue
    if start_server "$bindir" "$dir" "$port" "${PG_CLUSTER_DURABLE:-0}"; then
      break
    fi
    tries=$((tries + 1))
    if ((tries >= 5)); then
      cat "$dir/postgres.log" >&2 || true
      stop_cluster "$state"
      die "postgres did not start"
    fi
  done
  {
    echo "PG_CLUSTER_PORT=$port"
    echo "PG_CLUSTER_URL=postgres://postgres@127.0.0.1:$port/postgres"
  } >>"$state"
  echo "pg_cluster: PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on" \
    "127.0.0.1:$port, data in $dir"
}

[[ $# -eq 2 ]] || die "usage: $0 start|stop|down|up STATE_FILE"
case $1 in
  start) start_cluster "$2" ;;
  stop) stop_cluster "$2" ;;
  down) server_down "$2" ;;
  up) server_up "$2" ;;
  *) die "usage: $0 start|stop|down|up STATE_FILE" ;;
esac
