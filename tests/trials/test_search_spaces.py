"""Every search space loads, names only real trial parameters, and passes NNI's own config check."""

from __future__ import annotations

import dataclasses
import importlib
import shlex
from pathlib import Path

import pytest
import yaml

from trials import contract
from trials.params import from_cli, merge, regularized_layers
from trials.params import resolve_layers as parse_layers

REPO = Path(__file__).resolve().parents[2]
SPACES = sorted((REPO / "search_spaces").glob("*.yml"))


def _specs(space: dict) -> list[tuple[str, dict]]:
    """Every (key, spec) of a search space, the keys inside NNI's nested choices too (each branch's
    ``_name`` is a value of the key that holds the choice, not a key)."""
    out = []
    for key, spec in space.items():
        out.append((key, spec))
        for branch in spec.get("_value", []):
            if isinstance(branch, dict) and "_name" in branch:
                out += _specs({k: v for k, v in branch.items() if k != "_name"})
    return out


def _values(space: dict, key: str) -> list:
    """Every value ``key`` can take: its choices, in every branch; a nested choice's names."""
    values = []
    for k, spec in _specs(space):
        if k == key:
            for v in spec["_value"]:
                values.append(v["_name"] if isinstance(v, dict) else v)
    return values


def _entry(config: dict) -> tuple[object, list[str]]:
    """(the trial module the command runs, its flags), cold or through the warm launcher."""
    argv = shlex.split(config["trialCommand"])
    entry = contract.command_entry(argv[1:])
    assert argv[0] == "python" and entry in contract.ENTRIES, argv
    flags = argv[4:] if argv[2] == contract.WARM_MODULE else argv[3:]
    return importlib.import_module(f"trials.{entry}"), flags


@pytest.mark.parametrize("path", SPACES, ids=lambda p: p.stem)
def test_local_searches_start_warm_and_remote_ones_cold(path: Path) -> None:
    """The warm launcher on NNI's local training service; a remote machine starts each trial
    cold. Either way storage reads the same entry and flags back from the command."""
    config = yaml.safe_load(path.read_text())
    argv = shlex.split(config["trialCommand"])
    warm = config["trainingService"]["platform"] == "local"
    assert (argv[2] == contract.WARM_MODULE) == warm, argv
    cold = ["python", "-m", f"trials.{argv[3]}", *argv[4:]] if warm else argv
    assert contract.parse_command(config["trialCommand"]) == contract.parse_command(
        shlex.join(cold)
    )


def _command_params(config: dict) -> tuple[object, type, object]:
    """(trial module, its params class, the params its trial command gives)."""
    module, argv = _entry(config)
    cls = _params_class(module)
    return module, cls, from_cli(cls, argv, "test", "")


def _params_class(module: object) -> type:
    classes = [
        v
        for k, v in vars(module).items()
        if k.endswith("Params") and dataclasses.is_dataclass(v) and v.__module__ == module.__name__
    ]
    assert len(classes) == 1, classes
    return classes[0]


def test_there_are_search_spaces_for_every_mlp() -> None:
    names = {p.stem for p in SPACES}
    assert {"quickstart", "mlp3", "mlp4", "mlp6", "mlp8", "mlp10"} <= names


def test_there_are_search_spaces_for_every_cnn_and_gnn() -> None:
    names = {p.stem for p in SPACES}
    cnns = {"resnet18", "vgg19"}
    gnns = {f"{kind}{depth}" for kind in ("gcn", "sage") for depth in (2, 3, 4)}
    assert cnns | gnns <= names
    for name in cnns | gnns:
        config = yaml.safe_load((REPO / "search_spaces" / f"{name}.yml").read_text())
        argv = shlex.split(config["trialCommand"])
        # Each file searches the model its name says, with the paper's default layer among choices.
        assert argv[argv.index("--model") + 1] == name
        default = "1" if name in gnns else {"resnet18": "5", "vgg19": "6"}[name]
        assert default in config["searchSpace"]["layers"]["_value"]


@pytest.mark.parametrize("path", SPACES, ids=lambda p: p.stem)
def test_keys_are_trial_parameters(path: Path) -> None:
    config = yaml.safe_load(path.read_text())
    module, argv = _entry(config)
    cls = _params_class(module)
    fields = {f.name for f in dataclasses.fields(cls)}
    space = config["searchSpace"]
    keys = {k for k, _ in _specs(space)}
    assert keys <= fields, keys - fields
    # Every search has its vanilla baseline: NSR on no layer, or the regularizer 'none'.
    assert "none" in _values(space, "layers") or "none" in _values(space, "regularizer")
    assert set(_values(space, "regularizer")) <= set(contract.REGULARIZERS)
    for key, spec in _specs(space):
        if key.startswith("lambda_"):
            assert spec == {"_type": "loguniform", "_value": [0.01, 100]}, key
        if key in contract.STRENGTH_RANGES:
            assert spec == {
                "_type": "loguniform",
                "_value": list(contract.STRENGTH_RANGES[key]),
            }, key
    # The command line itself must parse into valid parameters (model and data set names too).
    params = from_cli(cls, argv, "test", "")
    if hasattr(module, "validate"):
        module.validate(params)


@pytest.mark.parametrize("path", SPACES, ids=lambda p: p.stem)
def test_layers_exist_in_the_model(path: Path) -> None:
    config = yaml.safe_load(path.read_text())
    module, cls, params = _command_params(config)
    available = module.layer_indices(params)
    space = config["searchSpace"]
    keys = {k for k, _ in _specs(space)}
    for choice in _values(space, "layers"):
        for k in parse_layers(str(choice), available):
            # Each layer exists; where NSR is searched, its λ is searched too.
            assert "regularizer" in space or f"lambda_{k}" in keys, (choice, k)
    for branch in space.get("regularizer", {}).get("_value", []):
        if isinstance(branch, dict) and branch["_name"] == contract.NSR:
            for choice in _values({k: v for k, v in branch.items() if k != "_name"}, "layers"):
                for k in parse_layers(str(choice), available):
                    assert f"lambda_{k}" in branch, (choice, k)


@pytest.mark.parametrize("path", SPACES, ids=lambda p: p.stem)
def test_every_sampled_configuration_is_a_valid_trial(path: Path) -> None:
    """NNI's own random tuner samples the space; each sample, flattened by the trial, validates."""
    from nni.algorithms.hpo.random_tuner import RandomTuner

    config = yaml.safe_load(path.read_text())
    module, cls, base = _command_params(config)
    tuner = RandomTuner(seed=0)
    tuner.update_search_space(config["searchSpace"])
    seen = set()
    for i in range(40):
        sample = tuner.generate_parameters(i)
        params = merge(cls, base, sample, "NNI's search space")
        if hasattr(module, "validate"):
            module.validate(params)
        seen.add(params.regularizer)
        regularized_layers(params, module.layer_indices(params))
    if "regularizer" in config["searchSpace"]:
        assert seen == set(_values(config["searchSpace"], "regularizer"))


@pytest.mark.parametrize("path", SPACES, ids=lambda p: p.stem)
def test_nni_accepts_the_config(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nni.experiment.config import ExperimentConfig

    # NNI checks that a remote machine's sshKeyFile (~/.ssh/id_rsa) exists: a HOME with one.
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "id_rsa").write_text("placeholder key\n")
    monkeypatch.setenv("HOME", str(tmp_path))
    # ExperimentConfig.load is what nnictl create uses: it resolves paths against the YAML's folder.
    config = ExperimentConfig.load(str(path))
    config.validate()
    assert Path(config.canonical_copy().trial_code_directory).resolve() == REPO


def test_remote_search_is_mlp4_on_several_machines() -> None:
    """mlp4-remote.yml is mlp4.yml's search on NNI's remote training service."""
    from nni.experiment.config import ExperimentConfig

    remote = yaml.safe_load((REPO / "search_spaces" / "mlp4-remote.yml").read_text())
    local = yaml.safe_load((REPO / "search_spaces" / "mlp4.yml").read_text())
    assert remote["searchSpace"] == local["searchSpace"]
    # The same trials, started cold on the remote machines (warm locally).
    assert contract.parse_command(remote["trialCommand"]) == contract.parse_command(
        local["trialCommand"]
    )
    assert remote["trialCommand"].startswith("python -m trials.mlp ")
    ts = ExperimentConfig.load(str(REPO / "search_spaces" / "mlp4-remote.yml")).training_service
    assert ts.platform == "remote" and len(ts.machine_list) >= 2
    assert all(m.python_path and m.user for m in ts.machine_list)
    # NNI uploads the code directory: the virtual environment and the tests must not go with it.
    ignored = (REPO / ".nniignore").read_text().split()
    assert ".venv/" in ignored and ".git/" in ignored


EARLY_VARIANTS = {
    "quickstart-early": "quickstart",
    "mlp4-early": "mlp4",
    "resnet18-early": "resnet18",
    "vgg19-early": "vgg19",
    "gcn2-early": "gcn2",
    "sage2-early": "sage2",
}


@pytest.mark.parametrize(("variant", "base"), sorted(EARLY_VARIANTS.items()))
def test_every_family_has_a_search_that_stops_bad_trials_early(variant: str, base: str) -> None:
    """The same search as its base file, plus NNI's median stopping rule on the validation error
    (minimized), which starts judging before the last epoch."""
    early = yaml.safe_load((REPO / "search_spaces" / f"{variant}.yml").read_text())
    plain = yaml.safe_load((REPO / "search_spaces" / f"{base}.yml").read_text())
    assert early["searchSpace"] == plain["searchSpace"]
    assert early["trialCommand"] == plain["trialCommand"]
    assert early["tuner"] == plain["tuner"]
    assessor = early["assessor"]
    assert assessor["name"] == "Medianstop"
    assert assessor["classArgs"]["optimize_mode"] == "minimize"
    argv = shlex.split(early["trialCommand"])
    epochs = int(argv[argv.index("--epochs") + 1])
    assert 1 <= assessor["classArgs"]["start_step"] < epochs


def test_hyperband_search_hands_the_full_epoch_budget_as_its_resource(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from nni.runtime import msg_dispatcher_base
    from nni.runtime.env_vars import dispatcher_env_vars

    from advisors.hyperband import Hyperband, brackets

    config = yaml.safe_load((REPO / "search_spaces" / "mlp4-hyperband.yml").read_text())
    plain = yaml.safe_load((REPO / "search_spaces" / "mlp4.yml").read_text())
    assert config["searchSpace"] == plain["searchSpace"] and "tuner" not in config
    advisor = config["advisor"]
    # Ours, not NNI's built-in Hyperband, which dies on NNI 3.0 (tests/advisors).
    assert advisor["className"] == "advisors.hyperband.Hyperband"
    assert (REPO / "search_spaces" / advisor["codeDirectory"]).resolve() == REPO
    args = advisor["classArgs"]
    assert args["optimize_mode"] == "minimize"
    argv = shlex.split(config["trialCommand"])
    assert args["R"] == int(argv[argv.index("--epochs") + 1])
    # The class takes its arguments (as NNI's dispatcher will build it, without a manager).
    unconnected = dispatcher_env_vars._replace(NNI_TUNER_COMMAND_CHANNEL="ws://_unittest_")
    monkeypatch.setattr(msg_dispatcher_base, "dispatcher_env_vars", unconnected)
    Hyperband(**args)
    # Room for one whole Hyperband iteration, so that no bracket is cut off before its last round.
    assert config["maxTrialNumber"] == sum(
        n for rounds in brackets(args["R"], args["eta"]) for n, _ in rounds
    )
