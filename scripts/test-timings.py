#!/usr/bin/env python3
"""Prints where a test run's time went, from the .trx files dotnet test's trx logger wrote: each test project's wall
time (first start to last end) and summed test time, then the slowest test classes and tests, and last each failed test
with its message (last, so that a log shown from its end names what failed). A test's time here is its
end minus its start, so it includes its class's constructor, InitializeAsync and DisposeAsync (the node it started and
stopped), which the trx "duration" leaves out. Usage: test-timings.py DIR [N]."""
from collections import defaultdict
import glob
import sys
import xml.etree.ElementTree as ET
from datetime import datetime

NS = {"t": "http://microsoft.com/schemas/VisualStudio/TeamTest/2010"}


def duration(text):
    hours, minutes, seconds = text.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def instant(text):
    # trx times carry 7 fraction digits and an offset; fromisoformat takes at most 6 before Python 3.11.
    head, _, rest = text.partition(".")
    digits = "".join(c for c in rest if c.isdigit())[:6]
    zone = rest[next((i for i, c in enumerate(rest) if c in "+-Z"), len(rest)):]
    return datetime.fromisoformat(f"{head}.{digits or '0'}{zone.replace('Z', '+00:00')}")


def main():
    directory = sys.argv[1]
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 25
    tests = []
    failures = []
    projects = []
    spans = []
    for path in sorted(glob.glob(f"{directory}/**/*.trx", recursive=True)):
        root = ET.parse(path).getroot()
        results = root.findall(".//t:UnitTestResult", NS)
        if not results:
            continue
        starts = [instant(r.get("startTime")) for r in results if r.get("startTime")]
        ends = [instant(r.get("endTime")) for r in results if r.get("endTime")]
        storage = root.find(".//t:UnitTest", NS).get("storage", path)
        project = storage.rsplit("/", 1)[-1].removesuffix(".dll")
        total = 0.0
        for r in results:
            seconds = duration(r.get("duration", "0:0:0"))
            if r.get("startTime") and r.get("endTime"):
                seconds = max(seconds, (instant(r.get("endTime")) - instant(r.get("startTime"))).total_seconds())
            total += seconds
            tests.append((seconds, project, r.get("testName"), r.get("outcome")))
            if r.get("outcome") == "Failed":
                failures.append((project, r.get("testName"), seconds, error_of(r)))
        wall = (max(ends) - min(starts)).total_seconds() if starts and ends else 0
        projects.append((wall, total, len(results), project))
        spans.extend([min(starts), max(ends)] if starts and ends else [])

    if spans:
        print(f"all projects: {(max(spans) - min(spans)).total_seconds() / 60:.1f} min from the first test's start to the last one's end")
    print("test time by project (wall = first test start to last test end):")
    for wall, total, count, project in sorted(projects, reverse=True):
        print(f"  {wall / 60:6.1f} min wall  {total / 60:6.1f} min summed  {count:5d} tests  {project}")
    classes = defaultdict(lambda: [0.0, 0])
    for seconds, project, name, _ in tests:
        test_class = name.split("(")[0].rsplit(".", 1)[0].rsplit(".", 1)[-1]
        classes[(project, test_class)][0] += seconds
        classes[(project, test_class)][1] += 1
    print(f"slowest {top} test classes:")
    for (project, test_class), (seconds, count) in sorted(classes.items(), key=lambda kv: -kv[1][0])[:top]:
        print(f"  {seconds:7.1f} s  {count:4d} tests  {project.removeprefix('Orchestrator.')}: {test_class}")
    print(f"slowest {top} tests:")
    for seconds, project, name, outcome in sorted(tests, reverse=True)[:top]:
        print(f"  {seconds:7.1f} s  {outcome:8s} {project.removeprefix('Orchestrator.')}: {name}")
    if failures:
        print(f"failed tests ({len(failures)}):")
        for project, name, seconds, error in failures:
            print(f"  {project.removeprefix('Orchestrator.')}: {name} ({seconds:.1f} s)")
            for line in error.splitlines():
                print(f"      {line}")


def error_of(result, limit=2000):
    """A failed test's message and the top of its stack trace, cut to about limit characters."""
    message = result.findtext(".//t:ErrorInfo/t:Message", "", NS).strip()
    stack = result.findtext(".//t:ErrorInfo/t:StackTrace", "", NS).strip().splitlines()[:8]
    text = "\n".join([message, *stack])
    return text if len(text) <= limit else text[:limit] + " ..."


if __name__ == "__main__":
    main()
