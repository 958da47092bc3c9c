"""NNI's Hyperband advisor, made to run on NNI 3.0 and to be reproducible.

NNI 3.0's own ``Hyperband`` (and BOHB) dies on the first metric a trial reports: its parameter
ids are strings like ``"0-4_0_3"`` (bracket, round, index) and
``Recoverable.is_created_in_previous_exp`` compares them with an int ("'<=' not supported between
instances of 'str' and 'int'", microsoft/nni#5263; NNI is archived, so it stays). NNI's Hyperband
also draws its configurations from an unseeded ``RandomState``, so no two runs sample alike.

This subclass changes exactly those two things; the brackets, the successive halving and the
``TRIAL_BUDGET`` it hands each trial are NNI's. A search space uses it as a custom advisor::

    advisor:
      codeDirectory: ..            # the repository root, relative to the YAML file
      className: advisors.hyperband.Hyperband
      classArgs: {optimize_mode: minimize, R: 100, eta: 3, seed: 0}
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from nni.algorithms.hpo.hyperband_advisor import Bracket
from nni.algorithms.hpo.hyperband_advisor import Hyperband as NNIHyperband

EXEC_MODES = ("parallelism", "serial")
OPTIMIZE_MODES = ("minimize", "maximize")


def brackets(R: int, eta: int) -> list[list[tuple[int, int]]]:  # noqa: N803 - Hyperband's name
    """One Hyperband iteration as NNI runs it: per bracket (most aggressive first), the
    (configurations, epochs) of each round. Its trial count is what ``maxTrialNumber`` must allow
    for every bracket to finish (R=100, eta=3: 206 trials, 143 configurations)."""
    s_max = math.floor(math.log(R, eta) + 1e-6)  # NNI's own rounding (its _epsilon)
    out = []
    for s in range(s_max, -1, -1):
        bracket = Bracket(str(s), s, s_max, eta, R, "minimize")
        rounds = []
        for i in range(s + 1):
            bracket.i = i
            rounds.append(bracket.get_n_r())
        out.append(rounds)
    return out


class Hyperband(NNIHyperband):
    """NNI's Hyperband with a ``seed`` class argument and string parameter ids that work."""

    def __init__(
        self,
        optimize_mode: str = "maximize",
        R: int = 60,  # noqa: N803 - NNI's name for the largest budget (epochs here)
        eta: int = 3,
        exec_mode: str = "parallelism",
        seed: int | None = None,
    ) -> None:
        # NNI validates the class arguments of its built-in algorithms only: check them here, so
        # a bad value stops the experiment with its name instead of a failure deep in a bracket.
        if optimize_mode not in OPTIMIZE_MODES:
            allowed = ", ".join(OPTIMIZE_MODES)
            raise ValueError(f"optimize_mode={optimize_mode!r}; allowed: {allowed}")
        if exec_mode not in EXEC_MODES:
            raise ValueError(f"exec_mode={exec_mode!r}; allowed: {', '.join(EXEC_MODES)}")
        if not isinstance(R, int) or isinstance(R, bool) or R < 1:
            raise ValueError(f"R={R!r} must be an integer >= 1 (the full budget, in epochs)")
        if not isinstance(eta, int) or isinstance(eta, bool) or eta < 2:
            raise ValueError(f"eta={eta!r} must be an integer >= 2")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
            raise ValueError(f"seed={seed!r} must be an integer >= 0, or left out")
        super().__init__(optimize_mode=optimize_mode, R=R, eta=eta, exec_mode=exec_mode)
        self.seed = seed

    def handle_update_search_space(self, data: Any) -> None:
        super().handle_update_search_space(data)
        # NNI's Hyperband reseeds from the OS here; a seed makes the sampled configurations
        # repeatable (the same seed draws the same brackets).
        self.random_state = np.random.RandomState(self.seed)

    def is_created_in_previous_exp(self, param_id: Any) -> bool:
        # Hyperband never recovers a resumed experiment's brackets, so no id is "previous";
        # NNI's int comparison would raise on its own string ids (microsoft/nni#5263).
        if isinstance(param_id, str):
            return False
        return bool(super().is_created_in_previous_exp(param_id))
