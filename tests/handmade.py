"""Hand-made search and confirmation experiments of MLP-4 on digits, for the analysis tests:
each trial reports its configuration as this project's trials do."""

from __future__ import annotations

import json

from storage.nni.records import RawExperiment, RawTrial

CMD = "python -m trials.mlp --model mlp4 --dataset digits --epochs 15 --lr 0.1"


def trial(i: int, layers: str, seed: int, val: float, test: float, lam: float | None = None):
    params: dict = {"layers": layers, "seed": seed}
    if lam is not None:
        params[f"lambda_{layers}"] = lam
    config = {"entry": "mlp", "model": "mlp4", "dataset": "digits", "epochs": 15, "lr": 0.1,
              **params}  # fmt: skip
    body = {"default": val, "test_error": test, "config": config}
    return RawTrial(f"t{i}", "SUCCEEDED", i, params, 1, 2, json.dumps(json.dumps(body)), [val])


def experiment(nni_id: str, trials: list, name: str = "search") -> RawExperiment:
    config = {"trialCommand": CMD, "trialCodeDirectory": "/code", "trialConcurrency": 1,
              "maxTrialNumber": len(trials), "tuner": {"name": "Random"},
              "searchSpace": {"layers": {"_type": "choice", "_value": ["none", "3"]}},
              "trainingService": {"platform": "local"}}  # fmt: skip
    return RawExperiment(nni_id, name, "STOPPED", config, 1, 2, "sqlite", None, trials)


def results(pairs: list[tuple[str, int, float]], start: int = 0) -> list:
    """Trials from (layers, seed, test error); the validation error tracks the test error."""
    return [
        trial(start + i, layers, seed, test - 1, test, lam=2.0 if layers == "3" else None)
        for i, (layers, seed, test) in enumerate(pairs)
    ]
