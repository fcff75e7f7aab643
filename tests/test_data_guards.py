"""Data options a user gets wrong fail early and leave the disk as they found it."""

from pathlib import Path
from urllib.error import URLError

import pytest
from hydra.utils import instantiate

from genlab.data.base import DataError


def fail_like_an_offline_download(monkeypatch) -> list[str]:
    """torchvision's MNIST download, offline: each mirror gets as far as a half-written archive in
    the raw folder, then the network error. Returns the URLs it was asked for (no network is used)."""
    import torchvision.datasets.mnist

    asked = []

    def download_and_extract_archive(url, download_root, filename=None, md5=None, **kwargs):
        asked.append(url)
        Path(download_root, filename or url.rsplit("/", 1)[-1]).write_bytes(b"\x1f\x8b partial")
        raise URLError("network is unreachable")

    monkeypatch.setattr(torchvision.datasets.mnist, "download_and_extract_archive", download_and_extract_archive)
    return asked


def test_failed_mnist_fetch_leaves_no_folders(make_cfg, tmp_path, monkeypatch):
    asked = fail_like_an_offline_download(monkeypatch)
    (tmp_path / "checkout").mkdir()
    data_dir = tmp_path / "checkout" / "data"  # neither data/ nor data/mnist exists yet
    dm = instantiate(make_cfg("data=mnist", f"paths.data_dir={data_dir}").data)
    with pytest.raises(DataError) as err:
        dm.prepare_data()
    assert asked, "the fake download was never reached"
    message = str(err.value)
    assert "could not be downloaded" in message and str(data_dir / "mnist") in message
    assert "train-images-idx3-ubyte" in message and "data.download=true" in message
    assert not data_dir.exists()
    assert list((tmp_path / "checkout").iterdir()) == []


def test_failed_fetch_keeps_what_the_user_put_there(make_cfg, tmp_path, monkeypatch):
    fail_like_an_offline_download(monkeypatch)
    raw = tmp_path / "mnist" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "train-images-idx3-ubyte").write_bytes(b"the user's own file")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    dm = instantiate(make_cfg("data=mnist", f"paths.data_dir={tmp_path}").data)
    with pytest.raises(DataError, match="could not be downloaded"):
        dm.prepare_data()
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert (raw / "train-images-idx3-ubyte").read_bytes() == b"the user's own file"


def write_pngs(folder: Path, n: int) -> None:
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(np.full((12, 12, 3), 40 * i % 256, dtype=np.uint8)).save(folder / f"{i}.png")


def data_options(tmp_path: Path) -> dict[str, list[str]]:
    """Every kind of datamodule, buildable offline: embedded, torchvision-backed, folder, unpaired folder."""
    write_pngs(tmp_path / "flat", 4)
    for domain in ("trainA", "trainB", "testA", "testB"):
        write_pngs(tmp_path / "unpaired" / domain, 2)
    return {
        "digits": ["data=digits"],
        "shapes": ["data=shapes"],
        "shapes_unpaired": ["data=shapes_unpaired"],
        "mnist": ["data=mnist", f"paths.data_dir={tmp_path}", "data.download=false"],
        "folder": ["data=folder", f"data.path={tmp_path / 'flat'}"],
        "unpaired_folder": ["data=unpaired_folder", f"data.path={tmp_path / 'unpaired'}"],
    }


@pytest.mark.parametrize(
    "override, valid",
    [
        ("data.batch_size=0", "integer >= 1"),
        ("data.batch_size=-8", "integer >= 1"),
        ("++data.val_batch_size=0", "integer >= 1"),
        ("++data.num_workers=-1", "integer >= 0"),
        ("data.image_size=0", "integer >= 1"),
    ],
)
def test_invalid_sizes_fail_when_the_datamodule_is_built(make_cfg, tmp_path, override, valid):
    from genlab.train import ConfigError, build_node

    key, value = override.lstrip("+").split("=")  # ++: set the key whether or not the option lists it
    for name, overrides in data_options(tmp_path).items():
        with pytest.raises(ConfigError) as err:
            build_node(make_cfg(*overrides, override).data, "data")
        message = str(err.value)
        assert f"{key}={value} is not valid" in message and valid in message, (name, message)


def test_batch_size_zero_stops_train_py_before_the_model_summary(tmp_path):
    from tests.conftest import run_script

    result = run_script("train.py", "data.batch_size=0", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path, timeout=120)
    assert result.returncode != 0
    assert "data.batch_size=0 is not valid: images per training batch must be an integer >= 1" in result.stderr
    assert "Total params" not in result.stdout + result.stderr  # the model summary never printed
    assert not list(tmp_path.rglob("*.ckpt"))


def test_home_in_user_paths_is_expanded(make_cfg, tmp_path, monkeypatch):
    """``"data.path='~/faces'"`` (quoted: Hydra's grammar has no bare ~) means the user's home folder."""
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    write_pngs(home / "faces", 4)
    for domain in ("trainA", "trainB", "testA", "testB"):
        write_pngs(home / "h2z" / domain, 2)
    folder = instantiate(make_cfg("data=folder", "data.path='~/faces'").data)
    assert folder.path == home / "faces"
    unpaired = instantiate(make_cfg("data=unpaired_folder", "data.path='~/h2z'").data)
    assert unpaired.path == home / "h2z"
    monkeypatch.chdir(tmp_path)
    mnist = instantiate(make_cfg("data=mnist", "paths.data_dir='~/datasets'", "data.download=false").data)
    assert mnist.root == home / "datasets" / "mnist"
    with pytest.raises(DataError, match=f"under {home / 'datasets' / 'mnist'}"):
        mnist.prepare_data()
    assert not (tmp_path / "~").exists()
