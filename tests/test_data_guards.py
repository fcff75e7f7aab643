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
