#!/usr/bin/env bash
# Runs every tests/integration/t_*.sh; a test exits 0 (pass), 77 (skipped,
# with its reason printed) or anything else (fail).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
pass=0 failed=() skipped=0
for t in "$here"/t_*.sh; do
	name=$(basename "$t" .sh)
	start=$(date +%s)
	bash "$t"
	rc=$?
	secs=$(($(date +%s) - start))
	case $rc in
	0) pass=$((pass + 1)) ;;
	77) skipped=$((skipped + 1)) ;;
	*) failed+=("$name") ;;
	esac
	echo "   ($name: ${secs}s)"
done
echo "integration: $pass passed, $skipped skipped, ${#failed[@]} failed${failed:+: ${failed[*]}}"
[[ ${#failed[@]} -eq 0 ]]
