#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs prerequisites, builds, runs every test project, and closes with
# one line "N passed, N failed, N skipped".
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$root"
scripts/prerequisites.sh --tests

logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT
results="$root/TestResults/suite"
rm -rf "$results"
dotnet build Orchestrator.sln -c Release --nologo -v quiet -clp:ErrorsOnly

run_tests() { # project log-prefix
  dotnet test "tests/$1" -c Release --no-build --nologo -v quiet --logger "console;verbosity=minimal" \
    --logger "trx;LogFilePrefix=$1" --results-directory "$results"
}

# The node tests (about 23 minutes, one node or cluster at a time) and the projects that boot no guest (about 1.5
# minutes) run side by side; the hypervisor's tests, which boot guests under TCG, run after the node tests (beside them,
# a guest of theirs once stalled for 90 s). The node tests that measure shares of the machine (CPU, disk bandwidth)
# wait until the others are done: the others hold this lock while they run, and those tests take it
# (tests/Orchestrator.Node.Tests/QuietMachine.cs).
quiet="${TMPDIR:-/tmp}/orchestrator-tests/quiet.lock"
mkdir -p "$(dirname "$quiet")"
exec {quiet_fd}>"$quiet"
flock "$quiet_fd"
(
  status=0
  for project in Orchestrator.Actors.Tests Orchestrator.Domain.Tests Orchestrator.Cli.Tests Orchestrator.Simulation.Tests \
    Orchestrator.Tools.Tests; do
    run_tests "$project" || status=1
  done
  flock -u "$quiet_fd"
  exit $status
) > "$logs/others" 2>&1 &
others=$!
# The parent lets go of its copy of the lock: the subshell's copy holds it until the others are done.
exec {quiet_fd}>&-

status=0
run_tests Orchestrator.Node.Tests 2>&1 | tee "$logs/node" || status=$?
wait "$others" || status=$?
run_tests Orchestrator.Hypervisor.Tests 2>&1 | tee -a "$logs/node" || status=$?
echo "--- the test projects that ran beside the node tests:"
cat "$logs/others"

# Where the suite's time goes (it must stay under 25 minutes): each project's wall time and its slowest tests.
python3 scripts/test-timings.py "$results" || true

# dotnet test prints one summary per test assembly; add them up. A project that did not build (or a runner that
# crashed) has no summary: it counts as one failure, so the closing line never reads green when the run was not.
cat "$logs/node" "$logs/others" | awk -v status="$status" -v projects=7 '/(Passed|Failed)! +- +Failed:/ {
       for (i = 1; i <= NF; i++) { gsub(",", "", $(i+1)); if ($i == "Failed:") f += $(i+1); if ($i == "Passed:") p += $(i+1); if ($i == "Skipped:") s += $(i+1) }
       n++
     }
     END {
       if (n == 0) { print "no test summary found"; exit 1 }
       if (n < projects && f == 0) { printf "only %d of %d test projects printed a summary; see above\n", n, projects; f = 1 }
       if (status != 0 && f == 0) { print "dotnet test failed outside any test (build error or crashed runner); see above"; f = 1 }
       printf "%d passed, %d failed, %d skipped\n", p, f, s
     }' || status=1
exit $status
