import pickle
import struct

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from PIL import Image

from genlab.data.base import DataError
from genlab.data.embedded import PALETTE, SHAPES, render_shapes, sample_shape_params


def build(cfg):
    dm = instantiate(cfg.data)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_digits_values_split_and_determinism(make_cfg):
    dm = build(make_cfg("data=digits"))
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (64, 1, 32, 32) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1
    assert (x < -0.9).float().mean() > 0.3 > (x > 0.5).float().mean()  # dark paper, bright ink
    assert x.amax(dim=(1, 2, 3)).min() > 0.5  # every digit has bright ink
    assert len(dm.train_set) + len(dm.val_set) == 1797 and len(dm.val_set) == 180
    assert set(y.tolist()) <= set(range(10))
    again = build(make_cfg("data=digits"))
    assert torch.equal(dm.val_set.tensors[0], again.val_set.tensors[0])  # same split every run


def test_digits_resize_is_smooth(make_cfg):
    dm = build(make_cfg("data=digits", "data.image_size=64"))
    x = dm.train_set.tensors[0]
    assert x.shape[-1] == 64
    # Smooth upsampling leaves intermediate grey levels, not 17 blocky ones.
    assert len(torch.unique((x[:50] * 1000).round())) > 200


def test_shapes_renders_each_kind_with_its_colours(make_cfg):
    dm = build(make_cfg("data=shapes", "data.n_train=256", "data.n_val=64"))
    x, y = dm.train_set.tensors
    assert x.shape == (256, 3, 32, 32) and x.min() >= -1 and x.max() <= 1
    assert set(y[:, 0].tolist()) == {0, 1, 2}
    again = build(make_cfg("data=shapes", "data.n_train=256", "data.n_val=64"))
    assert torch.equal(x, again.train_set.tensors[0])
    other = build(make_cfg("data=shapes", "data.n_train=256", "data.n_val=64", "data.seed=1"))
    assert not torch.equal(x, other.train_set.tensors[0])


def test_shape_geometry_by_area():
    rng = np.random.default_rng(0)
    params = sample_shape_params(rng, 3, 64)
    params.update(radius=np.full(3, 16.0), cx=np.full(3, 32.0), cy=np.full(3, 32.0), fg=np.full(3, 7), bg=np.full(3, 8))
    images = render_shapes(np.arange(3), params, 64)
    fg, bg = PALETTE[7, 0] * 2 - 1, PALETTE[8, 0] * 2 - 1
    area = ((images[:, 0] - bg) / (fg - bg)).sum(dim=(1, 2))  # coverage of shape colour = area
    circle, square, triangle = area.tolist()
    assert circle == pytest.approx(np.pi * 16**2, rel=0.01)
    assert square == pytest.approx(circle, rel=0.01)  # equal-area square
    assert triangle == pytest.approx(3 * np.sqrt(3) / 4 * 16**2, rel=0.02)
    assert SHAPES == ("circle", "square", "triangle")


def write_idx(path, array: np.ndarray):
    magic = {1: 0x0801, 3: 0x0803}[array.ndim]
    with open(path, "wb") as f:
        f.write(struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape))
        f.write(array.astype(np.uint8).tobytes())


@pytest.mark.parametrize("name, folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_mnist_format_files_load(make_cfg, tmp_path, name, folder):
    raw = tmp_path / "data" / name / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", 70), ("t10k", 10)):
        write_idx(raw / f"{split}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        write_idx(raw / f"{split}-labels-idx1-ubyte", rng.integers(0, 10, n))
    dm = build(
        make_cfg(f"data={name}", f"paths.data_dir={tmp_path / 'data'}", "data.download=false", "data.num_workers=0")
    )
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (64, 1, 32, 32) and x.min() >= -1 and x.max() <= 1
    assert len(dm.val_set) == 10


def test_cifar10_format_files_load(make_cfg, tmp_path, monkeypatch):
    import torchvision.datasets.cifar

    # Our tiny batches cannot match the published MD5 sums; everything else is torchvision's reader.
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda path, md5=None: True)
    folder = tmp_path / "data" / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": rng.integers(0, 256, (16, 3072), dtype=np.uint8), "labels": rng.integers(0, 10, 16).tolist()}
        (folder / name).write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"c{i}" for i in range(10)]}))
    dm = build(
        make_cfg("data=cifar10", f"paths.data_dir={tmp_path / 'data'}", "data.download=false", "data.num_workers=0")
    )
    x, _ = next(iter(dm.train_dataloader()))
    assert x.shape == (64, 3, 32, 32) and len(dm.train_set) == 80 and len(dm.val_set) == 16


def test_missing_torchvision_data_says_where_to_put_it(make_cfg, tmp_path, monkeypatch):
    import torchvision.datasets.mnist

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torchvision.datasets.mnist, "download_and_extract_archive", offline)
    dm = instantiate(make_cfg("data=mnist", f"paths.data_dir={tmp_path}").data)
    with pytest.raises(DataError) as err:
        dm.prepare_data()
    message = str(err.value)
    assert "could not be downloaded" in message and str(tmp_path / "mnist") in message
    assert "train-images-idx3-ubyte" in message
    dm = instantiate(make_cfg("data=mnist", f"paths.data_dir={tmp_path}", "data.download=false").data)
    with pytest.raises(DataError, match=r"data.download=false"):
        dm.prepare_data()


def write_images(folder, n, size=(40, 30), mode="RGB"):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(folder / f"img{i:03d}.png")


def test_folder_loads_resizes_and_labels_subfolders(make_cfg, tmp_path):
    write_images(tmp_path / "imgs" / "cats", 6)
    write_images(tmp_path / "imgs" / "dogs", 6, mode="L")
    dm = build(
        make_cfg(
            "data=folder",
            f"data.path={tmp_path / 'imgs'}",
            "data.image_size=16",
            "data.batch_size=4",
            "data.val_fraction=0.25",
            "data.num_workers=0",
        )
    )
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (4, 3, 16, 16) and x.min() >= -1 and x.max() <= 1
    assert len(dm.train_set) == 9 and len(dm.val_set) == 3
    assert set(dm.train_set.labels) | set(dm.val_set.labels) == {0, 1}
    grey = build(
        make_cfg(
            "data=folder",
            f"data.path={tmp_path / 'imgs'}",
            "data.channels=1",
            "data.image_size=16",
            "data.batch_size=4",
            "data.num_workers=0",
        )
    )
    assert next(iter(grey.train_dataloader()))[0].shape == (4, 1, 16, 16)


def test_folder_corrupt_file_is_named_or_skipped(make_cfg, tmp_path):
    write_images(tmp_path / "imgs", 8)
    (tmp_path / "imgs" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    args = [
        "data=folder",
        f"data.path={tmp_path / 'imgs'}",
        "data.image_size=16",
        "data.batch_size=4",
        "data.num_workers=0",
    ]
    with pytest.raises(DataError, match="broken.png"):
        build(make_cfg(*args))
    with pytest.warns(UserWarning, match="broken.png"):
        dm = build(make_cfg(*args, "data.skip_bad=true"))
    assert len(dm.train_set) + len(dm.val_set) == 8


def test_folder_empty_or_missing_fails_at_config_time(make_cfg, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(Exception, match="holds no images"):
        instantiate(make_cfg("data=folder", f"data.path={tmp_path / 'empty'}").data)
    with pytest.raises(Exception, match="data.path=.*is not a directory"):
        instantiate(make_cfg("data=folder", f"data.path={tmp_path / 'nowhere'}").data)


def test_too_few_images_for_batch(make_cfg, tmp_path):
    write_images(tmp_path / "imgs", 5)
    with pytest.raises(DataError, match="data.batch_size"):
        build(make_cfg("data=folder", f"data.path={tmp_path / 'imgs'}", "data.image_size=16", "data.batch_size=64"))
