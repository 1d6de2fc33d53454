"""Tests that wait on processes of their own run alongside the others, in pytest processes of their own.

The browser tests (marked `e2e`) and the tests that start processes of their own (marked `process`: `python -m
app`, a CLI, DDP workers) spend most of their time waiting on those processes and on Chromium, so the whole suite
ends sooner with each group in a second pytest process running beside this one (on a busy host, too: the suite
then gets a larger share of the CPU). The test of this process's memory goes with them, away from the app this
process serves to the API tests, whose sessions free their runs when they like. They stay items of this
session, counted and reported as ever: each is an `Alongside` item that waits for its result from its process
and passes, fails (with the failure's text) or skips as it did there. Nothing runs alongside when only one
group is selected, when collecting only, or with BFN_ALONGSIDE=0 (then every test runs here, in turn).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

RESULTS = "BFN_ALONGSIDE_RESULTS"  # set in the second process: where it writes each test's result
POLL_S = 0.2


def enabled(config: pytest.Config) -> bool:
    return os.environ.get("BFN_ALONGSIDE", "1") != "0" and RESULTS not in os.environ and not config.option.collectonly


def record(report: pytest.TestReport) -> None:
    """In the second process: one JSON line per phase of a test, for the first process to read."""
    text = report.longreprtext if report.failed else (report.longrepr[2] if report.skipped and isinstance(report.longrepr, tuple) else "")
    line = json.dumps({"nodeid": report.nodeid, "when": report.when, "outcome": report.outcome, "text": text})
    with open(os.environ[RESULTS], "a", encoding="utf-8") as f:
        f.write(line + "\n")


class Runner:
    """The second pytest process, running `nodeids`; `result(nodeid)` waits for one test's phases."""

    def __init__(self, config: pytest.Config, nodeids: list[str]):
        folder = Path(tempfile.mkdtemp(prefix="bfn-alongside-"))
        self.results, self.log = folder / "results.jsonl", folder / "pytest.log"
        env = dict(os.environ, **{RESULTS: str(self.results)})
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *nodeids]
        with self.log.open("w") as log:
            self.process = subprocess.Popen(command, cwd=config.rootpath, env=env, stdout=log, stderr=subprocess.STDOUT)
        self._seen: dict[str, list[dict]] = {}
        self._read = 0
        self.waiting = len(nodeids)  # tests whose result this process has not taken yet

    def _poll(self) -> None:
        if not self.results.exists():
            return
        with self.results.open(encoding="utf-8") as f:
            f.seek(self._read)
            for line in f:
                if not line.endswith("\n"):
                    break  # written in part: read it whole next time
                self._read += len(line.encode("utf-8"))
                entry = json.loads(line)
                self._seen.setdefault(entry["nodeid"], []).append(entry)

    def result(self, nodeid: str) -> list[dict]:
        """The phases (setup, call, teardown) of test `nodeid`, once its teardown is reported."""
        while True:
            self._poll()
            phases = self._seen.get(nodeid, [])
            if any(p["when"] == "teardown" for p in phases):
                self.waiting -= 1
                return phases
            if self.process.poll() is not None:
                self._poll()
                if any(p["when"] == "teardown" for p in self._seen.get(nodeid, [])):
                    return self._seen[nodeid]
                tail = self.log.read_text(errors="replace")[-4000:]
                raise AlongsideError(f"the second pytest process ended without running {nodeid}:\n{tail}")
            time.sleep(POLL_S)

    def stop(self) -> None:
        """Let the second process end: at once where this session stopped early (it is interrupted, as by
        Ctrl-C, so that its fixtures stop their app and browser), else after its own clean-up."""
        if self.process.poll() is not None:
            return
        if self.waiting:
            self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.process.kill()


class AlongsideError(Exception):
    """A test run alongside failed there (or never ran); the message is its failure's text."""


class Alongside(pytest.Item):
    """A test run by the second process: passes, fails or skips as it did there."""

    def __init__(self, *, runner: Runner, original: pytest.Item, **kwargs):
        super().__init__(**kwargs)
        self.runner = runner
        self.own_markers = list(original.iter_markers())

    def runtest(self) -> None:
        phases = self.runner.result(self.nodeid)
        failed = [p for p in phases if p["outcome"] == "failed"]
        if failed:
            raise AlongsideError("\n".join(f"({p['when']}) {p['text']}" for p in failed))
        skipped = [p for p in phases if p["outcome"] == "skipped"]
        if skipped:
            pytest.skip(skipped[0]["text"] or "skipped in the second process")

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style=None) -> str:
        if isinstance(excinfo.value, AlongsideError):
            return f"run alongside, in a second pytest process:\n{excinfo.value}"
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, self.name


GROUPS = ("e2e", "process")  # the markers whose tests run alongside, each group in a process of its own


def arrange(config: pytest.Config, items: list[pytest.Item]) -> list[Runner]:
    """Run each group of `GROUPS` among `items` in a process of its own, where tests of other groups are selected
    too: replace its items by `Alongside` items, last, and start that process. → the processes started."""
    groups = {name: [item for item in items if item.get_closest_marker(name)] for name in GROUPS}
    groups = {name: chosen for name, chosen in groups.items() if chosen}
    if not enabled(config) or not groups or (len(groups) == 1 and len(next(iter(groups.values()))) == len(items)):
        return []
    runners, waiting = [], []
    for chosen in groups.values():
        runner = Runner(config, [item.nodeid for item in chosen])
        runners.append(runner)
        waiting += [Alongside.from_parent(item.parent, name=item.name, runner=runner, original=item) for item in chosen]
    moved = {item for chosen in groups.values() for item in chosen}
    items[:] = [item for item in items if item not in moved] + waiting
    return runners
