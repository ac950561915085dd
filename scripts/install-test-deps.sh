#!/usr/bin/env bash
# Installs the outside tools that the tests use (see internal/testenv): on a
# fresh Debian 12 machine as root. Idempotent and quick when all is present;
# prints one line per thing it installs and exits non-zero on failure.
#
#   oathtool, zbarimg, pyotp (Debian's, for /usr/bin/python3)  via apt-get
#   chromium and a font for its pages (the browser tests)        via apt-get
#   otplib, pinned in otp/testdata/interop/node/package-lock.json via npm ci
#   mailpit, for the email tests (internal/mailpit)          via go install into .tools/bin
#   postgresql, when no server is there for the tests       via apt-get
#     (scripts/install-postgres.sh; scripts/with-postgres.sh starts it)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
node_dir=$root/otp/testdata/interop/node
min_node=20.19.0 # @noble/hashes, a dependency of otplib 13, needs it

have_pyotp() {
	/usr/bin/python3 -c 'import pyotp' 2>/dev/null || python3 -c 'import pyotp' 2>/dev/null
}

node_ok() {
	command -v node >/dev/null && command -v npm >/dev/null &&
		node -e 'const [a,b,c]=process.versions.node.split(".").map(Number), [x,y,z]=process.argv[1].split(".").map(Number);
		process.exit(a!==x ? +(a<x) : b!==y ? +(b<y) : +(c<z))' "$min_node"
}

# apt packages, by the command or module that shows each is there.
missing=()
command -v oathtool >/dev/null || missing+=(oathtool)
command -v zbarimg >/dev/null || missing+=(zbar-tools)
have_pyotp || missing+=(python3-pyotp)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
# Debian's chromium, without its recommends (udev, mesa, notification
# daemons) but with the font they would bring, so screenshots have text.
[[ -x /usr/bin/chromium ]] || missing+=(chromium fonts-liberation)
if ((${#missing[@]})); then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null
	for p in "${missing[@]}"; do
		echo "install-test-deps: installing $p (apt-get)"
		apt-get install -y -qq --no-install-recommends "$p" >/dev/null
	done
fi
# mailpit (internal/mailpit), a real SMTP server with an HTTP API, built from
# its module into the git-ignored .tools/bin: about 2 minutes the first time.
mailpit_version=v1.33.1
mailpit_built=$(go version -m "$root/.tools/bin/mailpit" 2>/dev/null || true)
if ! grep -qF "$(printf '\tmod\tgithub.com/axllent/mailpit\t%s\t' "$mailpit_version")" <<<"$mailpit_built"; then
	echo "install-test-deps: installing mailpit $mailpit_version into .tools/bin (go install)"
	GOBIN=$root/.tools/bin go install "github.com/axllent/mailpit@$mailpit_version"
fi
if ! node_ok; then
	echo "install-test-deps: node >= $min_node and npm are needed for otplib; have node $(node --version 2>/dev/null || echo none)" >&2
	exit 1
fi

# otplib: reinstall from the lockfile unless the versions package.json pins are there.
pinned() {
	node -e 'const dir = process.argv[1], deps = require(dir + "/package.json").dependencies;
	for (const [name, want] of Object.entries(deps)) {
		let got; try { got = require(dir + "/node_modules/" + name + "/package.json").version } catch {}
		if (got !== want) process.exit(1);
	}' "$node_dir"
}
if ! pinned; then
	echo "install-test-deps: installing otplib into ${node_dir#"$root"/}/node_modules (npm ci)"
	(cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
	pinned || { echo "install-test-deps: npm ci did not install the pinned otplib" >&2; exit 1; }
fi

bash "$root/scripts/install-postgres.sh"
