#!/usr/bin/env bash
# Runs a command with TWOFA_TEST_POSTGRES_DSN naming a PostgreSQL server that
# the tests may use (each test works in a schema of its own). It takes, in
# this order:
#
#   1. TWOFA_TEST_POSTGRES_DSN, when it is set, as it is;
#   2. the server at TWOFA_TEST_POSTGRES_ADDR (default 127.0.0.1:5432), when
#      postgres://postgres@ADDR/test?sslmode=disable reaches it: user
#      postgres with trust authentication and a database named test, as CI
#      has it (without psql to check that, a server answering on the port);
#   3. a throwaway cluster: initdb in a new temporary directory, pg_ctl start
#      on a free port of 127.0.0.1 with trust authentication and no Unix
#      socket, as the user nobody when run as root (PostgreSQL refuses to
#      run as root). It is stopped, and its directory deleted, when the
#      command ends, however it ends; one left behind by a wrapper that was
#      killed outright is stopped by the next run. scripts/install-test-deps.sh
#      installs Debian's postgresql for it.
#
# Usage: with-postgres.sh COMMAND [ARG...]   exits with the command's status
#        with-postgres.sh --plan             prints which of the three a run
#                                            would take: given, server or
#                                            cluster; or missing, when it
#                                            would need a cluster and finds
#                                            no initdb
#
# Without any of the three the command runs without a DSN: the PostgreSQL
# tests skip, or fail under TWOFA_TEST_REQUIRE_ALL=1, which stops here
# instead with the reason.
set -euo pipefail

addr=${TWOFA_TEST_POSTGRES_ADDR:-127.0.0.1:5432}
server_dsn="postgres://postgres@$addr/test?sslmode=disable"
tmp_root=${TMPDIR:-/tmp}
run_as=nobody # the cluster's owner when we are root

say() { echo "with-postgres: $*" >&2; }

# answers reports whether something accepts TCP connections at host:port.
answers() {
	local host=${1%:*} port=${1##*:}
	timeout 5 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$host" "$port" 2>/dev/null
}

# server_usable reports whether the tests can use the server at $addr.
server_usable() {
	answers "$addr" || return 1
	if command -v psql >/dev/null; then
		if ! PGCONNECT_TIMEOUT=5 psql -X -Atq -d "$server_dsn" -c 'SELECT 1' >/dev/null 2>&1; then
			say "a server answers at $addr, but $server_dsn does not reach it (no trust authentication for postgres, or no database test)"
			return 1
		fi
	fi
	return 0
}

# bindir prints the directory of initdb and pg_ctl: Debian keeps them per
# version under /usr/lib/postgresql, off the PATH.
bindir() {
	local d
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
		if [[ -x $d/initdb && -x $d/pg_ctl ]]; then
			echo "$d"
			return 0
		fi
	done
	if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
		dirname "$(command -v initdb)"
		return 0
	fi
	return 1
}

plan() {
	if [[ -n ${TWOFA_TEST_POSTGRES_DSN:-} ]]; then
		echo given
	elif server_usable; then
		echo server
	elif bindir >/dev/null; then
		echo cluster
	else
		echo missing
	fi
}

if [[ ${1:-} == --plan ]]; then
	plan
	exit 0
fi
if (($# == 0)); then
	echo "usage: $0 COMMAND [ARG...] | --plan" >&2
	exit 2
fi

# as runs a command as the cluster's owner.
as() {
	if ((EUID == 0)); then
		runuser -u "$run_as" -- "$@"
	else
		"$@"
	fi
}

# alive reports whether process $1 runs (a zombie, which a container's
# init may leave unreaped for a while, does not).
alive() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	[[ ${stat##*) } != Z* ]]
}

# sweep stops the clusters of earlier runs whose wrapper is gone.
sweep() {
	local d pid
	for d in "$tmp_root"/twofa-pg.*; do
		[[ -f $d/wrapper.pid ]] || continue
		pid=$(<"$d/wrapper.pid")
		if [[ $pid =~ ^[0-9]+$ ]] && ! alive "$pid"; then
			say "stopping a cluster left behind in $d"
			(cd "$d" && as "$bin/pg_ctl" stop -D "$d/data" -m immediate -w >/dev/null 2>&1) || true
			rm -rf "$d"
		fi
	done
}

dir=
stop_cluster() {
	[[ -n $dir ]] || return 0
	if [[ -f $dir/data/postmaster.pid ]]; then
		(cd "$dir" && as "$bin/pg_ctl" stop -D "$dir/data" -m fast -w -t 60 >/dev/null) ||
			(cd "$dir" && as "$bin/pg_ctl" stop -D "$dir/data" -m immediate -w >/dev/null) || true
	fi
	rm -rf "$dir"
	say "stopped the throwaway cluster and deleted $dir"
}

# start_cluster makes and starts a cluster and sets TWOFA_TEST_POSTGRES_DSN.
start_cluster() {
	sweep
	dir=$(mktemp -d "$tmp_root/twofa-pg.XXXXXX")
	echo $$ >"$dir/wrapper.pid"
	if ((EUID == 0)); then
		chown "$run_as" "$dir"
		if ! runuser -u "$run_as" -- test -w "$dir"; then
			say "$run_as cannot write $dir: set TMPDIR to a directory every user can reach, such as /tmp"
			return 1
		fi
	fi
	(cd "$dir" && as "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C --no-sync >"$dir/initdb.log" 2>&1) || {
		cat "$dir/initdb.log" >&2
		say "initdb failed"
		return 1
	}
	cat >>"$dir/data/postgresql.conf" <<-EOF
		listen_addresses = '127.0.0.1'
		unix_socket_directories = ''
	EOF
	local try port
	for try in 1 2 3 4 5; do
		port=$((20000 + RANDOM % 12000)) # below Linux's ephemeral ports
		answers "127.0.0.1:$port" && continue
		if (cd "$dir" && as "$bin/pg_ctl" start -D "$dir/data" -l "$dir/server.log" -o "-p $port" -w -t 60 >/dev/null); then
			export TWOFA_TEST_POSTGRES_DSN="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
			say "started a throwaway PostgreSQL $("$bin/pg_ctl" --version | awk '{print $3}') at 127.0.0.1:$port in $dir; it stops when the command ends"
			return 0
		fi
		grep -q "could not bind" "$dir/server.log" 2>/dev/null || break
	done
	cat "$dir/server.log" >&2 2>/dev/null || true
	say "pg_ctl start failed"
	return 1
}

case $(plan) in
given)
	say "using TWOFA_TEST_POSTGRES_DSN as given"
	;;
server)
	export TWOFA_TEST_POSTGRES_DSN=$server_dsn
	say "using the server at $addr"
	;;
cluster)
	bin=$(bindir)
	trap stop_cluster EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	start_cluster
	;;
missing)
	msg="no PostgreSQL for the tests: none at $addr, no TWOFA_TEST_POSTGRES_DSN, and no initdb to start one (make test-deps installs it)"
	if [[ ${TWOFA_TEST_REQUIRE_ALL:-} == 1 ]]; then
		say "$msg"
		exit 1
	fi
	say "$msg; the PostgreSQL tests skip"
	;;
esac

status=0
"$@" || status=$?
exit "$status"
