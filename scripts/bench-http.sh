#!/usr/bin/env bash
# make bench-http: the whole service under load, over HTTP, on this machine.
# Builds twofa and twofa-bench, starts `twofa serve` on a temporary SQLite
# database on a free loopback port with a generated master key, lets
# twofa-bench enroll its users and drive verifications for a fixed time,
# prints its report, and stops the server and deletes the database however
# the run ends.
#
#   BENCH_DURATION  how long to drive verifications (default 10s)
#   BENCH_USERS     users to enroll (default 1000); with 1-second devices
#                   each verifies at most once a second, so they cap the
#                   valid verifications a second
#   BENCH_FLAGS     more twofa-bench flags, e.g. "--concurrency 64 --baseline"
#   SERVE_FLAGS     more `twofa serve` flags, e.g. "--verify-per-ip 0"
#
# TWOFA_* settings of the environment are not passed on: the server runs
# with its defaults and the flags above.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
go=${GO:-go}
duration=${BENCH_DURATION:-10s}
users=${BENCH_USERS:-1000}
read -r -a bench_flags <<<"${BENCH_FLAGS:-}"
read -r -a serve_flags <<<"${SERVE_FLAGS:-}"
while read -r name; do unset "$name"; done < <(compgen -e | grep '^TWOFA_' || true)

dir=$(mktemp -d "${TMPDIR:-/tmp}/twofa-bench-http.XXXXXX")
server=
cleanup() {
	if [[ -n $server ]] && kill -0 "$server" 2>/dev/null; then
		kill -TERM "$server" 2>/dev/null || true
		wait "$server" 2>/dev/null || true
	fi
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "bench-http: building twofa and twofa-bench"
(cd "$root" && "$go" build -o "$dir/" ./cmd/twofa ./cmd/twofa-bench)
mkdir -m 0700 "$dir/data"
TWOFA_MASTER_KEY="1:$("$dir/twofa" keys generate)"
export TWOFA_MASTER_KEY
if ! key=$("$dir/twofa" apikey create --data "$dir/data" --name bench-http --tenant bench 2>"$dir/apikey.log" | tail -1); then
	cat "$dir/apikey.log" >&2
	echo "bench-http: twofa apikey create failed" >&2
	exit 1
fi

"$dir/twofa" serve --addr 127.0.0.1:0 --data "$dir/data" --log-level warn "${serve_flags[@]}" \
	>"$dir/serve.out" 2>"$dir/serve.log" &
server=$!
# The server prints its address once it listens, its database open.
url=
for _ in $(seq 600); do
	url=$(sed -n 's/^twofa listening on //p' "$dir/serve.out")
	[[ -n $url ]] && break
	if ! kill -0 "$server" 2>/dev/null; then
		cat "$dir/serve.log" >&2
		echo "bench-http: twofa serve exited before listening" >&2
		exit 1
	fi
	sleep 0.1
done
if [[ -z $url ]]; then
	cat "$dir/serve.log" >&2
	echo "bench-http: twofa serve did not listen within 60s" >&2
	exit 1
fi
echo "bench-http: twofa serve (pid $server) on $url, database in $dir/data"
echo "bench-http: twofa-bench --users $users --duration $duration ${BENCH_FLAGS:-}"
status=0
# The key goes in the environment, out of ps.
TWOFA_API_KEY=$key "$dir/twofa-bench" --url "$url" --users "$users" --duration "$duration" \
	--server-pid "$server" "${bench_flags[@]}" || status=$?
if [[ -s $dir/serve.log ]]; then
	echo "bench-http: the server's warnings and errors:"
	tail -20 "$dir/serve.log"
fi
exit "$status"
