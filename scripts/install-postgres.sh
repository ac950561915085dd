#!/usr/bin/env bash
# Installs Debian's postgresql, as root, when the tests would need a
# throwaway cluster (scripts/with-postgres.sh) and find no initdb to start
# one: no TWOFA_TEST_POSTGRES_DSN, no usable server at 127.0.0.1:5432 (or
# TWOFA_TEST_POSTGRES_ADDR). Quick and silent when there is nothing to do.
#
# Debian's package would also create a cluster of its own and start it on
# port 5432 for good, with peer and password authentication, of no use to
# the tests. So the install turns create_main_cluster off in
# /etc/postgresql-common/createcluster.conf and puts the setting back as it
# was afterwards: installed this way, PostgreSQL runs only while tests do.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[[ $(bash "$root/scripts/with-postgres.sh" --plan) == missing ]] || exit 0

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
if ! command -v pg_conftool >/dev/null; then
	echo "install-test-deps: installing postgresql-common (apt-get)"
	apt-get install -y -qq --no-install-recommends postgresql-common >/dev/null
fi
conf=/etc/postgresql-common/createcluster.conf
was=$(pg_conftool "$conf" show -bs create_main_cluster 2>/dev/null || true)
pg_conftool "$conf" set create_main_cluster off
restore() {
	if [[ -z $was ]]; then
		pg_conftool "$conf" remove create_main_cluster
	else
		pg_conftool "$conf" set create_main_cluster "$was"
	fi
}
trap restore EXIT
echo "install-test-deps: installing postgresql (apt-get), with no cluster: the tests start their own"
apt-get install -y -qq --no-install-recommends postgresql >/dev/null
[[ $(bash "$root/scripts/with-postgres.sh" --plan) == cluster ]] || {
	echo "install-test-deps: postgresql is installed but initdb is still missing" >&2
	exit 1
}
