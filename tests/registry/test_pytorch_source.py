from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from registry.errors import InvalidModelInput, InvalidWeights
from registry.pytorch_source import load_state_dict, rebuild_model
from tests.fixtures import TabularMLP, make_mlp


def test_a_state_dict_loads(tmp_path: Path) -> None:
    model = make_mlp()
    torch.save(model.state_dict(), tmp_path / "w.pt")
    state = load_state_dict(tmp_path / "w.pt")
    assert set(state) == set(model.state_dict())


def test_a_pickled_module_is_refused_without_being_unpickled(tmp_path: Path) -> None:
    torch.save(make_mlp(), tmp_path / "module.pt")
    with pytest.raises(
        InvalidWeights, match=r"pickles a tests\.fixtures\.TabularMLP object"
    ) as caught:
        load_state_dict(tmp_path / "module.pt")
    assert caught.value.status_code == 400


def test_arbitrary_pickles_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (Path.touch, (str(marker),))

    (tmp_path / "evil.pt").write_bytes(pickle.dumps({"w": Evil()}))
    with pytest.raises(InvalidWeights):
        load_state_dict(tmp_path / "evil.pt")
    assert not marker.exists()


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ({"state_dict": {"w": torch.zeros(1)}, "epoch": 3}, "not tensors"),
        ([torch.zeros(1)], "holds a list"),
    ],
)
def test_things_that_are_not_state_dicts(tmp_path: Path, content: object, fragment: str) -> None:
    torch.save(content, tmp_path / "w.pt")
    with pytest.raises(InvalidWeights, match=fragment):
        load_state_dict(tmp_path / "w.pt")


def test_garbage_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "junk.pt").write_bytes(b"\x00not a torch file")
    with pytest.raises(InvalidWeights, match="not a state dict"):
        load_state_dict(tmp_path / "junk.pt")
    with pytest.raises(InvalidWeights, match="does not exist"):
        load_state_dict(tmp_path / "absent.pt")


def test_rebuild_checks_the_weights_fit() -> None:
    state = make_mlp(hidden=8).state_dict()
    model = rebuild_model("tests.fixtures:make_mlp", {"hidden": 8}, state)
    assert isinstance(model, TabularMLP)
    assert not model.training
    with pytest.raises(InvalidWeights, match="do not fit"):
        rebuild_model("tests.fixtures:make_mlp", {"hidden": 16}, state)
    with pytest.raises(InvalidModelInput, match="cannot import"):
        rebuild_model("tests.nowhere:make", {}, state)
    with pytest.raises(InvalidModelInput, match="has no attribute"):
        rebuild_model("tests.fixtures:nothing", {}, state)
    with pytest.raises(InvalidModelInput, match="not of the form"):
        rebuild_model("tests.fixtures.make_mlp", {}, state)
    with pytest.raises(InvalidModelInput, match="failed with"):
        rebuild_model("tests.fixtures:make_mlp", {"bogus": 1}, state)
    with pytest.raises(InvalidModelInput, match=r"not a torch\.nn\.Module"):
        rebuild_model("tests.support.pgserver:_free_port", {}, state)
