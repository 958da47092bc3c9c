"""advisors.hyperband: NNI's Hyperband, runnable on NNI 3.0 and seeded."""

from __future__ import annotations

from typing import Any

import pytest
from nni.algorithms.hpo.hyperband_advisor import Hyperband as NNIHyperband
from nni.runtime import msg_dispatcher_base
from nni.runtime.env_vars import dispatcher_env_vars

from advisors.hyperband import Hyperband, brackets

SPACE = {
    "layers": {"_type": "choice", "_value": ["none", "2", "3", "4", "3,4"]},
    "lambda_3": {"_type": "loguniform", "_value": [0.01, 100]},
}


@pytest.fixture(autouse=True)
def no_nni_manager(monkeypatch: pytest.MonkeyPatch) -> None:
    """An advisor connects to its NNI manager when built; NNI's own tests skip that with this
    channel name, and so do ours (the algorithm is called directly)."""
    unconnected = dispatcher_env_vars._replace(NNI_TUNER_COMMAND_CHANNEL="ws://_unittest_")
    monkeypatch.setattr(msg_dispatcher_base, "dispatcher_env_vars", unconnected)


def first_bracket(advisor: Hyperband, count: int) -> list[dict[str, Any]]:
    """The parameter sets the advisor hands out first (its first bracket's first round)."""
    advisor.handle_update_search_space(SPACE)
    return [advisor._get_one_trial_job()["parameters"] for _ in range(count)]


def test_nni_own_hyperband_fails_on_its_own_parameter_ids_and_ours_does_not() -> None:
    """The reason this subclass exists (microsoft/nni#5263): on NNI 3.0 the first metric of a
    Hyperband trial, whose parameter id is text, raises in the dispatcher and ends the search."""
    with pytest.raises(TypeError, match="not supported between instances of 'str' and 'int'"):
        NNIHyperband(optimize_mode="minimize").is_created_in_previous_exp("0-3_0_1")
    assert Hyperband(optimize_mode="minimize").is_created_in_previous_exp("0-3_0_1") is False


def test_a_metric_with_a_text_parameter_id_is_recorded() -> None:
    advisor = Hyperband(optimize_mode="minimize", R=9, eta=3, exec_mode="serial", seed=0)
    advisor.handle_update_search_space(SPACE)
    job = advisor._get_one_trial_job()
    advisor.handle_report_metric_data({
        "parameter_id": job["parameter_id"], "trial_job_id": "t1", "type": "FINAL",
        "sequence": 0, "value": '{"default": 12.5, "epochs_run": 1}',
    })  # fmt: skip
    bracket_id, round_index, _ = job["parameter_id"].split("_")
    perf = advisor.brackets[bracket_id].configs_perf[int(round_index)]
    assert perf[job["parameter_id"]][1] == 12.5


def test_the_same_seed_draws_the_same_configurations_and_another_seed_others() -> None:
    def draw(seed: int | None) -> list[dict[str, Any]]:
        return first_bracket(Hyperband(optimize_mode="minimize", R=9, eta=3, seed=seed), 9)

    first, again, other = draw(7), draw(7), draw(8)
    assert first == again
    assert first != other
    assert all(p["TRIAL_BUDGET"] == 1 for p in first)  # R=9, eta=3: 9 configurations x 1 epoch
    assert draw(None) != draw(None)  # unseeded, as NNI's own: the OS picks


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"R": 0}, "R=0"),
        ({"R": 2.5}, "R=2.5"),
        ({"eta": 1}, "eta=1"),
        ({"exec_mode": "fast"}, "exec_mode='fast'"),
        ({"optimize_mode": "min"}, "optimize_mode='min'"),
        ({"seed": -1}, "seed=-1"),
        ({"seed": "1"}, "seed='1'"),
    ],
)
def test_bad_class_arguments_are_named(kwargs: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match=named.replace(".", r"\.")):
        Hyperband(**{"optimize_mode": "minimize", **kwargs})


def test_brackets_are_nni_s() -> None:
    """R=100, eta=3: five brackets; the first starts 81 configurations on 1 epoch."""
    plan = brackets(100, 3)
    assert plan[0] == [(81, 1), (27, 3), (9, 11), (3, 33), (1, 100)]
    assert plan[-1] == [(5, 100)]
    assert sum(n for rounds in plan for n, _ in rounds) == 206
    assert brackets(27, 3)[0] == [(27, 1), (9, 3), (3, 9), (1, 27)]
