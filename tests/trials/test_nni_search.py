"""A real `nnictl create` on a tiny search: every trial succeeds and reports the contract's keys."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.nni

CONTRACT_KEYS = {"default", "test_error", "best_epoch", "epoch_seconds"}
MLP4_LAYERS = (2, 3, 4)


def _decode(value: str) -> object:
    # NNI stores a reported dict as a JSON string, itself JSON-encoded once more.
    data = json.loads(value)
    return json.loads(data) if isinstance(data, str) else data


def test_every_trial_succeeds_with_the_contract_metrics(nni_experiment) -> None:
    exp = nni_experiment
    exp.assert_done(3)
    for trial in exp.trials:
        assert trial["status"] == "SUCCEEDED", exp.trial_log(trial["trialJobId"])
    finals = [m for m in exp.metrics if m["type"] == "FINAL"]
    intermediates = [m for m in exp.metrics if m["type"] == "PERIODICAL"]
    assert len(finals) == 3
    # two epochs per trial: one validation error each
    assert len(intermediates) == 3 * 2
    for m in finals:
        final = _decode(m["data"])
        assert isinstance(final, dict)
        expected = CONTRACT_KEYS | {f"var_{k}" for k in MLP4_LAYERS}
        expected |= {f"var_{k}_init" for k in MLP4_LAYERS}
        assert expected <= final.keys()
        assert 0.0 <= final["default"] <= 100.0
        assert 0.0 <= final["test_error"] <= 100.0
        assert final["best_epoch"] in (1, 2)
        assert all(final[f"var_{k}"] > 0 for k in MLP4_LAYERS)
    for m in intermediates:
        assert 0.0 <= float(_decode(m["data"])) <= 100.0
