"""The custom-model registry: round trip, atomic replace, refusal of paths a shell could read."""

from __future__ import annotations

from pathlib import Path

import pytest

from trials.model_registry import CustomModel, RegistryError, load, lookup, register


def test_register_then_lookup_round_trips_and_replaces_by_name(tmp_path: Path) -> None:
    path = tmp_path / "reg" / "custom_models.json"
    assert load(path) == {}
    first = CustomModel("digits-cnn", "examples.cnn:build", "examples.cnn:data", "ab12")
    register(path, first)
    assert lookup(path, "digits-cnn") == first
    second = CustomModel("digits-cnn", "examples.other:build", "examples.other:data", "cd34")
    register(path, second)
    assert load(path) == {"digits-cnn": second}
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind


@pytest.mark.parametrize(
    "model_fn", ["os:system; rm -rf /", "a.b", ":f", "a.b:f()", "../x:f", "a b:f"]
)
def test_a_function_path_that_is_not_module_colon_function_is_refused(model_fn: str) -> None:
    with pytest.raises(RegistryError, match="bad model_fn"):
        CustomModel("m", model_fn, "pkg.data:load", "h")


def test_a_file_that_is_not_a_registry_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "custom_models.json"
    path.write_text("[1, 2]")
    with pytest.raises(RegistryError, match="not a custom-model registry"):
        load(path)
    path.write_text('{"m": {"model_fn": "a:b"}}')
    with pytest.raises(RegistryError, match="lacks 'data_fn'"):
        load(path)
