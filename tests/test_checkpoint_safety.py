"""A checkpoint never runs code: crafted files are refused by every entry point, genlab's own still load.

Each crafted file carries a payload that, once run, creates a marker folder (``os.mkdir``: a harmless
stand-in for ``os.system``). Every refusal test checks both the error and that the marker never appears;
the ``*_would_run`` tests show first that each payload does run when loaded without genlab's guards.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import get_class, instantiate

from genlab import checkpoint, evaluate, generate, train, translate
from genlab.checkpoint import CONFIG_KEY, MODEL_CLASS_KEY, UnsafeCheckpointError, load_model, load_run_config
from genlab.config import config_dir
from tests.conftest import run_script

MKDIR = f"{os.mkdir.__module__}.mkdir"  # the global the payload's pickle names (posix.mkdir here)


class Payload:
    """What an attacker pickles: unpickling it calls ``os.mkdir(marker)``."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def genlab_like(**entries) -> dict:
    """What genlab's train.py writes, in miniature, with ``entries`` replaced."""
    return {
        MODEL_CLASS_KEY: "genlab.models.gan.GAN",
        "hyper_parameters": {"n_critic": 1},
        "state_dict": {"generator.w": torch.zeros(2)},
        CONFIG_KEY: {"data": {"_target_": "genlab.data.embedded.DigitsDataModule", "channels": 1}},
        **entries,
    }


def save(entries: dict, path: Path) -> Path:
    torch.save(entries, path)
    return path


@pytest.fixture
def marker(tmp_path) -> Path:
    return tmp_path / "payload-ran"


@pytest.fixture
def pickled(tmp_path, marker) -> Path:
    """A checkpoint whose hyper-parameters hide a pickled ``__reduce__`` payload."""
    return save(genlab_like(hyper_parameters={"n_critic": 1, "n_preview": Payload(marker)}), tmp_path / "pickled.ckpt")


def compose_entry(name: str, *overrides: str):
    """conf/<name>.yaml as ``python <name>.py *overrides`` sees it."""
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose(config_name=name, overrides=list(overrides))


def assert_refused_pickle(err: pytest.ExceptionInfo, path: Path, marker: Path) -> None:
    assert str(path) in str(err.value) and MKDIR in str(err.value) and "untrusted" in str(err.value)
    assert not marker.exists(), "the payload ran"


def test_the_pickled_payload_would_run(pickled, marker):
    torch.load(pickled, weights_only=False)
    assert marker.is_dir()


@pytest.mark.parametrize(
    "entry, overrides",
    [
        (generate.run, ["n=4", "device=cpu"]),
        (evaluate.run, ["device=cpu", "metrics=[fid]"]),
        (translate.run, ["device=cpu", "input=photo.png"]),
    ],
    ids=["generate", "evaluate", "translate"],
)
def test_entry_points_refuse_a_pickled_payload(entry, overrides, pickled, marker, tmp_path):
    cfg = compose_entry(entry.__module__.rpartition(".")[2], f"ckpt={pickled}", f"out={tmp_path / 'out'}", *overrides)
    with pytest.raises(UnsafeCheckpointError) as err:
        entry(cfg)
    assert_refused_pickle(err, pickled, marker)
    assert not (tmp_path / "out").exists()


def test_vqvae_prior_refuses_a_pickled_vqvae(make_cfg, pickled, marker):
    cfg = make_cfg("model=vqvae_prior", f"model.vqvae_ckpt={pickled}", "data.batch_size=8")
    with pytest.raises(ValueError, match="refused to load") as err:
        train.run(cfg)
    assert_refused_pickle(err, pickled, marker)


def test_generate_script_exits_with_the_reason_alone(pickled, marker, tmp_path):
    result = run_script("generate.py", f"ckpt={pickled}", "device=cpu", cwd=tmp_path, timeout=120)
    assert result.returncode != 0
    assert f"refused to load {pickled}" in result.stderr and MKDIR in result.stderr
    assert "During handling of the above exception" not in result.stderr  # no chained unpickling traceback
    assert not marker.exists()


# Names are the other way in: the model class and every _target_ are imported and called on load.
# Each case: the crafted entries, what genlab would do with them unchecked (as load_model did, and as
# GAN.__init__ and evaluate.py do with a _target_), and the guarded call that must refuse them.
NAMED = {
    "model class": (
        lambda marker: {MODEL_CLASS_KEY: "logging.FileHandler", "hyper_parameters": {"filename": str(marker)}},
        lambda saved: get_class(saved[MODEL_CLASS_KEY])(**saved["hyper_parameters"]),
        load_model,
    ),
    "network _target_": (
        lambda marker: {"hyper_parameters": {"generator": {"_target_": "os.mkdir", "path": str(marker)}}},
        lambda saved: instantiate(saved["hyper_parameters"]["generator"]),
        load_model,
    ),
    "data _target_ of the run config": (
        lambda marker: {CONFIG_KEY: {"data": {"_target_": "os.mkdir", "path": str(marker)}}},
        lambda saved: instantiate(saved[CONFIG_KEY]["data"]),
        lambda path: instantiate(load_run_config(path)["data"]),
    ),
    "a loader inside torch": (  # a trusted package, but no building block
        lambda marker: {
            "hyper_parameters": {
                "generator": {"_target_": "torch.load", "f": str(marker.parent / "p.pt"), "weights_only": False}
            }
        },
        lambda saved: instantiate(saved["hyper_parameters"]["generator"]),
        load_model,
    ),
}


def crafted(case: str, marker: Path) -> Path:
    save({"payload": Payload(marker)}, marker.parent / "p.pt")  # what "a loader inside torch" opens
    return save(genlab_like(**NAMED[case][0](marker)), marker.parent / "named.ckpt")


@pytest.mark.parametrize("case", NAMED)
def test_each_crafted_name_would_run(case, marker):
    NAMED[case][1](torch.load(crafted(case, marker), weights_only=True))
    assert marker.exists()


@pytest.mark.parametrize("case", NAMED)
def test_crafted_names_are_refused(case, marker):
    path = crafted(case, marker)
    with pytest.raises(UnsafeCheckpointError, match="refused to load") as err:
        NAMED[case][2](path)
    assert str(path) in str(err.value) and "names" in str(err.value)
    assert not marker.exists(), "the payload ran"


def test_a_model_class_must_be_a_lightning_module(tmp_path):
    path = save(genlab_like(**{MODEL_CLASS_KEY: "torch.nn.Identity", "hyper_parameters": {}}), tmp_path / "x.ckpt")
    with pytest.raises(UnsafeCheckpointError, match="not a LightningModule"):
        load_model(path)


def test_a_freshly_trained_checkpoint_loads_and_generates(make_cfg, tmp_path):
    cfg = make_cfg("data.batch_size=8", "model.generator.width=8", "model.discriminator.width=8")
    train.run(cfg)
    ckpt = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    assert isinstance(load_model(ckpt), get_class(cfg.model._target_))
    assert load_run_config(ckpt)["data"]["_target_"] == cfg.data._target_
    out = generate.run(compose_entry("generate", f"ckpt={ckpt}", "n=3", "device=cpu", f"out={tmp_path / 'gen'}"))
    assert sorted(p.name for p in out.iterdir()) == ["0.png", "1.png", "2.png"]


@pytest.mark.parametrize("asset", sorted((Path(checkpoint.__file__).parent / "assets").glob("*.pt")), ids=str)
def test_shipped_assets_load_as_data(asset):
    saved = torch.load(asset, map_location="cpu", weights_only=True)
    assert saved["state_dict"] and all(isinstance(v, torch.Tensor) for v in saved["state_dict"].values())
