#!/usr/bin/env bash
# Runs every fuzz target of the module for FUZZTIME (default 30s) each.
# Go fuzzes one target at a time, so this walks them one by one.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-30s}

# count_inputs counts the saved inputs of a target (none yet is fine).
count_inputs() {
	if [ -d "$1" ]; then
		find "$1" -type f | wc -l
	else
		echo 0
	fi
}
grep -rl --include='*_test.go' '^func Fuzz' . | sort | while read -r file; do
	dir=$(dirname "$file")
	for target in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$file" | sed 's/^func //'); do
		echo "fuzz: $dir $target ($fuzztime)"
		for try in 1 2; do
			before=$(count_inputs "$dir/testdata/fuzz/$target")
			if go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$dir" >/tmp/twofa-fuzz.log 2>&1; then
				break
			fi
			after=$(count_inputs "$dir/testdata/fuzz/$target")
			# Go's fuzzing engine now and then stops a worker with "context
			# deadline exceeded" at the end of a short run, saving no input:
			# that is the engine, not our code, and is retried once. A real
			# failure saves its input and fails at once.
			if [ "$try" = 1 ] && [ "$after" = "$before" ] && grep -q "context deadline exceeded" /tmp/twofa-fuzz.log; then
				echo "fuzz: $target: the fuzzing engine timed out a worker without a failing input; once more"
				continue
			fi
			cat /tmp/twofa-fuzz.log
			echo "fuzz: $target failed; the failing input is in $dir/testdata/fuzz/$target"
			exit 1
		done
	done
done
