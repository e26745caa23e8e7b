"""Schedule pilot: the same network and epochs under the two ways of fitting the paper's schedule
into a short budget, trained side by side (one process per core), compared epoch by epoch.

    python bench/pilot_schedule.py            # trains (or resumes) both, writes bench/pilot_schedule.json

``proportional`` puts the milestones at the paper's fractions of its epochs; ``budget``
(``train.Schedule.budgeted``) keeps the paper's rates but spends half the epochs at the first.
The network is single-representation at the ``cifar10-long`` profile's width and seed 0, 30 epochs:
its paper schedule (200 epochs, first drop at 40) compresses to 6 of 30 epochs at lr 0.1 and 18 at
0.0008, the sharpest contrast among the four figure networks. (The profile then gave single-repr 50
epochs, as this pilot's 30 left it short of the accuracy target.) The record keeps, per epoch and schedule,
the learning rate, the running and un-augmented training accuracy and loss, test accuracy and
loss, and the monitors' per-block cosine and l2 ratio (the numbers Fig. 2 and Fig. 4 are judged on).
"""
from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from refine_utils import experiments, profiles, specs, store, sweep  # noqa: E402

PROFILE, ARCH, EPOCHS = "cifar10-long", "single-representation", 30
KEYS = ("epoch", "lr", "train_loss", "train_acc", "train_eval_loss", "train_eval_acc", "test_loss", "test_acc",
        "cos", "ratio")


def specs() -> dict[str, specs.RunSpec]:
    budget = dataclasses.replace(profiles.get_profile(PROFILE).spec(ARCH, 0), epochs=EPOCHS)
    return {fit: dataclasses.replace(budget, schedule_fit=fit) for fit in specs.SCHEDULE_FITS}


def summary(history: list[dict]) -> dict:
    last, n = history[-1], len(history[-1]["cos"])
    upper = last["cos"][n // 2:]
    return dict(train_eval_acc=last["train_eval_acc"], test_acc=last["test_acc"], test_loss=last["test_loss"],
                train_eval_loss=last["train_eval_loss"], cos_upper_half=sum(upper) / len(upper),
                cos_negative_share=sum(c < 0 for c in last["cos"]) / n, ratio_first=last["ratio"][0],
                ratio_last=last["ratio"][-1])


def main() -> int:
    runs = specs()
    sweep.run(experiments._train_quietly, list(runs.values()), executor="processes", workers=len(runs))
    out = {"profile": PROFILE, "arch": ARCH, "commit": store.commit(), "runs": {}}
    for fit, spec in runs.items():
        _, history = experiments.run(spec)
        records = [{k: r.get(k) for k in KEYS} for r in history.records]
        out["runs"][fit] = dict(spec=dataclasses.asdict(spec), milestones=spec.schedule().milestones,
                                summary=summary(records), history=records)
        print(fit, json.dumps(out["runs"][fit]["summary"]))
    path = Path(__file__).with_name("pilot_schedule.json")
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
