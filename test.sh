#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs prerequisites, builds, runs every test project, and closes with
# one line "N passed, N failed, N skipped".
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$root"
scripts/prerequisites.sh --tests

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
results="$root/TestResults/suite"
rm -rf "$results"
dotnet test Orchestrator.sln -c Release --nologo -v quiet --logger "console;verbosity=minimal" \
  --logger "trx;LogFilePrefix=suite" --results-directory "$results" 2>&1 | tee "$log" || status=$?

# Where the suite's time goes (it must stay under 25 minutes): each project's wall time and its slowest tests.
python3 scripts/test-timings.py "$results" || true

# dotnet test prints one summary per test assembly; add them up. A project that did not build (or a runner that
# crashed) has no summary: it counts as one failure, so the closing line never reads green when the run was not.
awk -v status="$status" '/(Passed|Failed)! +- +Failed:/ {
       for (i = 1; i <= NF; i++) { gsub(",", "", $(i+1)); if ($i == "Failed:") f += $(i+1); if ($i == "Passed:") p += $(i+1); if ($i == "Skipped:") s += $(i+1) }
       n++
     }
     END {
       if (n == 0) { print "no test summary found"; exit 1 }
       if (status != 0 && f == 0) { print "dotnet test failed outside any test (build error or crashed runner); see above"; f = 1 }
       printf "%d passed, %d failed, %d skipped\n", p, f, s
     }' "$log" || status=1
exit $status
