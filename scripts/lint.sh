#!/usr/bin/env bash
# Static checks beyond gofmt and vet: staticcheck, govulncheck, and a rule
# of ours: outside cmd/, nothing prints with fmt.Print* — output goes
# through the structured logger or is returned, so no stray line can carry
# a secret past the log's redaction.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
echo "lint: staticcheck"
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./... || status=1
echo "lint: govulncheck"
if ! out=$(go run golang.org/x/vuln/cmd/govulncheck@v1.9.0 ./... 2>&1); then
	if grep -q "fetching vulnerabilities" <<<"$out"; then
		# The database lives at vuln.go.dev, which some build machines
		# cannot reach; say so instead of passing silently.
		echo "lint: WARNING: govulncheck did not run: the vulnerability database is unreachable"
		echo "$out" | tail -1
	else
		echo "$out"
		status=1
	fi
else
	echo "$out" | tail -3
fi
echo "lint: fmt.Print outside cmd/"
hits=$(git ls-files '*.go' | grep -v '^cmd/' | grep -v '_test.go$' | xargs grep -n 'fmt\.Print' || true)
if [ -n "$hits" ]; then
	echo "$hits"
	echo "lint: print through the logger or return the text instead"
	status=1
fi
exit $status
