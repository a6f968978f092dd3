"""The search's journal: what each finished trial measured, so that ``--resume`` continues an interrupted search.

The search is deterministic for a recipe and seed: its budget is counted in FLOPs, not seconds, so the same
trials are asked for in the same order on every run. A resumed search therefore runs the search again from
its start, and every trial the journal already holds is *replayed* (its measurements restored, nothing
trained); the first one it does not hold continues from that trial's newest checkpoint under ``auto/``
(an ordinary mid-phase resume, bit-identical to an uninterrupted run). The seconds measured on the first
run (the head phase's, which calibrate the seconds per FLOP) are replayed too, so an ``auto_minutes`` cap
cuts the same trials.

``auto/journal.jsonl`` holds one JSON object a line, appended and fsynced by the main process:
``start`` (the recipe's identity: a changed recipe is refused), ``head`` (its seconds and the seconds per
FLOP), then ``trial`` per finished trial call (its folder, the epochs asked for, what it measured), and
``partial`` for a call stopped by Ctrl-C (the seconds it had trained). A line
cut short by a kill is ignored, with every line after it.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from tlhub.artifacts import rundir
from tlhub.errors import UserError
from tlhub.training.checkpoint import differences

log = logging.getLogger("tlhub")

FILE = "journal.jsonl"
# What ``TrialRunner.train`` measures; the rest of a TrialState (rung, status, cost) the search sets itself.
MEASURED = ("epochs", "score", "loss", "best_epoch", "stopped", "seconds", "curve")


def read(path: Path) -> list[dict]:
    """The whole lines of ``path``; a torn last line (a kill mid-write) ends the record."""
    out = []
    if not path.is_file():
        return out
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            break
    return out


@dataclass
class Journal:
    path: Path
    write: bool                      # the main process writes; every process replays
    head: dict | None = None         # the head record of an earlier run
    trials: list = field(default_factory=list)  # trial records of an earlier run, in the order they ran
    position: int = 0                # trial records replayed so far
    # seconds an interrupted trial call trained before Ctrl-C, by folder: added to its time when it finishes,
    # so that its timing (the first fine-tuning trial calibrates the cost bound) is that of an uninterrupted run
    partial: dict = field(default_factory=dict)

    @classmethod
    def open(cls, folder: Path, identity: dict, resuming: bool, write: bool) -> Journal:
        """A fresh journal, or (``resuming``) the one in ``folder`` of the same recipe."""
        path = Path(folder) / FILE
        records = read(path) if resuming else []
        journal = cls(path, write)
        if records:
            if records[0].get("kind") != "start":
                raise UserError(f"--resume: {path} is not a tlhub search journal; start a new run instead")
            diffs = differences(records[0]["identity"], identity)
            if diffs:
                raise UserError(errors=[f"--resume: the search in {path.parent} comes from a different recipe:"]
                                + [f"  {d}" for d in diffs])
            if write:  # drop a torn last line, so that the lines appended next are read back
                rundir.write_atomic(path, "".join(json.dumps(r) + "\n" for r in records))
            journal.head = next((r for r in records if r["kind"] == "head"), None)
            journal.trials = [r for r in records if r["kind"] == "trial"]
            for r in records:
                if r["kind"] == "partial":
                    journal.partial[r["trial"]] = journal.partial.get(r["trial"], 0.0) + r["seconds"]
                elif r["kind"] == "trial":
                    journal.partial.pop(r["trial"], None)
            log.info("auto: resuming the search: %d finished trial(s) recorded in %s", len(journal.trials), path)
        elif write:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.unlink(missing_ok=True)
            journal._append({"kind": "start", "identity": identity})
        return journal

    def _append(self, record: dict) -> None:
        if not self.write:
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())  # recorded before the next trial starts: a kill cannot lose a finished trial

    def record_head(self, seconds: float, seconds_per_flop: float) -> None:
        self._append({"kind": "head", "seconds": seconds, "seconds_per_flop": seconds_per_flop})

    def replay(self, folder: str, epochs: int) -> dict | None:
        """The measurements of the next trial call if the journal holds it, else None (train it)."""
        if self.position >= len(self.trials):
            return None
        rec = self.trials[self.position]
        if (rec["trial"], rec["epochs_asked"]) != (folder, epochs):
            # the same recipe and seed ask for the same trials: a mismatch is a bug, not a user mistake
            raise RuntimeError(f"auto search resume: trial {self.position + 1} recorded as {rec['trial']} to "
                               f"{rec['epochs_asked']} epoch(s), now asked {folder} to {epochs}")
        self.position += 1
        rec = {"score": rec.get("accuracy")} | rec  # journals written before tasks named the score accuracy
        return {k: rec[k] for k in MEASURED}

    def record_partial(self, folder: str, seconds: float) -> None:
        """A trial call stopped by Ctrl-C after ``seconds`` of training (a hard kill records nothing)."""
        self._append({"kind": "partial", "trial": folder, "seconds": seconds})

    def take_partial(self, folder: str) -> float:
        return self.partial.pop(folder, 0.0)

    def record_trial(self, folder: str, epochs: int, state) -> None:
        self._append({"kind": "trial", "trial": folder, "epochs_asked": epochs}
                     | {k: getattr(state, k) for k in MEASURED})
