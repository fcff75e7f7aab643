"""The circles->squares quality bench (``python -m genlab.bench cyclegan --shapes-ckpt``): background
flatness and colour measures against hand computations, the other renderers against the data law,
and one run on a tiny trained checkpoint."""

import json

import numpy as np
import pytest
import torch

from genlab import train
from genlab.bench.__main__ import main as bench_main
from genlab.bench.cyclegan_shapes import background_mask, background_stats, draw_pil, other_renderer_sets, summarise
from genlab.checkpoint import load_model
from genlab.data.embedded import PALETTE
from genlab.metrics import paired
from tests.conftest import FAST
from tests.test_cyclegan import TINY

LEVEL = 1 / 127.5  # one step of the 0-255 scale in [-1, 1] units


def scene(radius: float, cx: float, cy: float, fg: int = 0, bg: int = 1) -> dict[str, np.ndarray]:
    return {k: np.array([v]) for k, v in dict(fg=fg, bg=bg, radius=radius, cx=cx, cy=cy).items()}


# --- background measures ----------------------------------------------------------------------------


def test_background_is_outside_both_shapes_and_the_margin():
    # r = 8 at the centre of 32 px: the circle reaches x = 8 on the axis, the equal-area square only
    # 16 - 8·sqrt(pi)/2 = 8.91; at pixel (9, 9) the square is inside, the circle (8.66 from the centre) is not.
    params = scene(8.0, 16.0, 16.0)
    mask = background_mask(params, 32, margin=0)[0, 0]
    assert mask.shape == (32, 32) and mask.dtype == torch.bool
    assert not mask[16, 8]  # touched by the circle only
    assert not mask[9, 9]  # touched by the square only
    assert mask[16, 7] and mask[8, 8] and mask[0, 0]
    assert np.pi * 8**2 < (~mask).sum() < 20 * 20  # about the disc, its rim and the square's corners
    wider = background_mask(params, 32, margin=1)[0, 0]
    assert not wider[16, 7] and not wider[8, 8] and wider[16, 6] and wider[7, 7]
    assert (wider <= mask).all()


def images_with_background(values_255: torch.Tensor) -> torch.Tensor:
    """[N, 3, 8, 8] in [-1, 1] whose columns 0-3 are ``values_255`` [N, 3, 8, 4] and whose right half,
    the "shape", is white: the mask leaves it out, so it must not count."""
    images = torch.ones(len(values_255), 3, 8, 8, dtype=torch.float64)
    images[..., :4] = values_255.double() / 127.5 - 1
    return images


def test_background_std_and_shift_by_hand():
    mask = torch.zeros(3, 1, 8, 8, dtype=torch.bool)
    mask[..., :4] = True
    grey = torch.full((3, 3, 8, 4), 100.0)
    inputs = images_with_background(grey)
    checker = (torch.arange(8)[:, None] + torch.arange(4)[None, :]) % 2 * 2 - 1  # ±1, 16 of each
    outputs = grey.clone()
    outputs[1, 0] += 10 * checker  # red ±10 levels: variance 100, 0, 0 -> std sqrt(100 / 3)
    outputs[2] += torch.tensor([3.0, 4.0, 0.0])[:, None, None]  # flat, moved by (3, 4, 0): 5 levels
    stats = background_stats(images_with_background(outputs), inputs, mask)
    assert torch.allclose(stats["std_in"], torch.zeros(3, dtype=torch.float64), atol=1e-9)
    assert torch.allclose(stats["std_out"], torch.tensor([0.0, (100 / 3) ** 0.5, 0.0], dtype=torch.float64))
    assert torch.allclose(stats["shift"], torch.tensor([0.0, 0.0, 5.0], dtype=torch.float64))


def test_summary_median_worst_decile_and_flat_share():
    values = torch.arange(1.0, 11.0, dtype=torch.float64)  # 1 .. 10
    stats = {"std_out": values, "std_in": torch.zeros(10, dtype=torch.float64), "shift": values}
    out = summarise(stats, floor=2.0)
    assert out["std_out_median"] == pytest.approx(5.5) and out["shift_median"] == pytest.approx(5.5)
    assert out["std_out_p90"] == pytest.approx(9.1)  # 90% of the way from the 1st to the 10th: 9 + 0.1
    assert out["flat_share"] == pytest.approx(0.4)  # 1..4 <= 2 * max(0, 2)
    stats["std_in"] = torch.full((10,), 3.0, dtype=torch.float64)  # the input's own texture raises the bar
    assert summarise(stats, floor=2.0)["flat_share"] == pytest.approx(0.6)


# --- other renderers ----------------------------------------------------------------------------------


def coverage(images: torch.Tensor, scenes: dict[str, np.ndarray]) -> torch.Tensor:
    """Per pixel, how much of the shape colour it holds, read back from the colours ([N, S, S])."""
    fg = torch.from_numpy(np.rint(PALETTE[scenes["fg"]] * 255) / 127.5 - 1)[:, :, None, None]
    bg = torch.from_numpy(np.rint(PALETTE[scenes["bg"]] * 255) / 127.5 - 1)[:, :, None, None]
    channel = (fg - bg).abs().argmax(dim=1, keepdim=True)  # the channel that tells them apart best
    alpha = (images.double() - bg).gather(1, channel.expand(-1, 1, *images.shape[-2:])) / (fg - bg).gather(1, channel)
    return alpha[:, 0].clamp(0, 1)


# Drawing rounds each edge to the nearest pixel (to a quarter pixel at 4x): up to 0.5 (0.125) px per edge, so
# the radius at 4.8 px (the smallest) is off by up to 10% (2.6%); over many scenes these errors average out.
@pytest.mark.parametrize(
    "name, area_tol, centre_tol, bias_tol", [("pil", 0.22, 0.5, 0.1), ("pil_box4x", 0.055, 0.13, 0.03)]
)
def test_other_renderers_draw_the_data_law(name, area_tol, centre_tol, bias_tol):
    size, n = 32, 40
    circles, squares, scenes = other_renderer_sets(size, n, seed=3)[name]
    assert circles.shape == squares.shape == (n, 3, size, size) and circles.min() >= -1 and circles.max() <= 1
    centres = torch.arange(size, dtype=torch.float64) + 0.5  # pixel i spans [i, i + 1)
    for images in (circles, squares):
        alpha = coverage(images, scenes)
        area = alpha.sum(dim=(1, 2))
        # Unclipped and of the drawn radius: the circle and its equal-area square both cover pi r².
        assert torch.allclose(area, torch.from_numpy(np.pi * scenes["radius"] ** 2), rtol=area_tol)
        cx = (alpha * centres[None, None, :]).sum(dim=(1, 2)) / area
        cy = (alpha * centres[None, :, None]).sum(dim=(1, 2)) / area
        assert torch.allclose(cx, torch.from_numpy(scenes["cx"]), atol=centre_tol)
        assert torch.allclose(cy, torch.from_numpy(scenes["cy"]), atol=centre_tol)
        for found, true in ((cx, scenes["cx"]), (cy, scenes["cy"])):  # no shift common to all scenes
            assert abs(float((found - torch.from_numpy(true)).mean())) < bias_tol
        # The law: radius in [0.15, 0.32] of the side, and the whole circle inside the image.
        r = (area / np.pi).sqrt()
        assert (r >= 0.15 * size * (1 - area_tol)).all() and (r <= 0.32 * size * (1 + area_tol)).all()
        assert ((cx - r >= -centre_tol - 0.5) & (cx + r <= size + centre_tol + 0.5)).all()
    # The background is the scene's background colour, never the shape's.
    bg = torch.from_numpy(np.rint(PALETTE[scenes["bg"]] * 255) / 127.5 - 1).float()
    assert torch.allclose(circles[:, :, 0, 0], bg, atol=1e-6)  # no circle of the law reaches a corner pixel
    assert (scenes["fg"] != scenes["bg"]).all()


def test_other_renderers_are_deterministic_per_seed_and_differ_between_renderers():
    one, again, other = (other_renderer_sets(16, 6, seed=s) for s in (5, 5, 6))
    for name in one:
        assert torch.equal(one[name][0], again[name][0]) and torch.equal(one[name][1], again[name][1])
        assert not torch.equal(one[name][0], other[name][0])
    assert not torch.equal(one["pil"][0], one["pil_box4x"][0])  # hard edges vs anti-aliased ones
    assert not torch.equal(one["pil_box4x"][0], one["pil_lanczos4x"][0])
    with pytest.raises(ValueError, match="draws 'circle' or 'square'"):
        draw_pil("triangle", one["pil"][2], 16)


# --- the bench on a checkpoint ------------------------------------------------------------------------


def test_validation_scenes_locate_the_validation_backgrounds(make_cfg):
    from hydra.utils import instantiate

    dm = instantiate(make_cfg(*TINY, "data.image_size=32").data)
    dm.setup("validate")
    scenes = dm.scenes("val_a")
    bg = torch.from_numpy(PALETTE[scenes["bg"]] * 2 - 1)[:, :, None, None]
    for images in (dm.val_set.a, dm.val_set.b_true):
        exact = background_mask(scenes, 32, margin=0)
        differs = (images - bg).abs().amax(dim=1, keepdim=True) > 1e-6
        assert not (differs & exact).any()  # what the mask calls background is the background colour
        assert (differs | exact).float().mean() > 0.5  # and it is most of the image


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    from genlab.config import compose_train

    out = tmp_path_factory.mktemp("cyclegan_shapes") / "run"
    train.run(compose_train([*FAST, *TINY, "model.n_epochs=1", "model.n_epochs_decay=0"], output_dir=out))
    return out / "checkpoints" / "last.ckpt"


def test_bench_scores_the_checkpoint_as_validation_does(tiny_ckpt, tmp_path, capsys):
    bench_main(["cyclegan", "--shapes-ckpt", str(tiny_ckpt), "--n", "4", "--out", str(tmp_path), "--device", "cpu"])
    report = json.loads((tmp_path / "cyclegan_shapes.json").read_text())
    assert list(report["sets"]) == ["val", "pil", "pil_box4x", "pil_lanczos4x"]
    assert report["sets"]["val"]["n"] == 8 and report["sets"]["pil"]["n"] == 4
    # The val row is val/psnr_a2b and val/ssim_a2b of the same checkpoint, scored by the one scorer.
    model = load_model(tiny_ckpt)
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from genlab.checkpoint import load_run_config

    dm = instantiate(OmegaConf.create(load_run_config(tiny_ckpt)["data"]))
    dm.setup("validate")
    expected = paired.scores(model.translate(dm.val_set.a), dm.val_set.b_true, ("psnr", "ssim"), tag="_a2b")
    for key, value in expected.items():
        assert report["sets"]["val"]["model"][key] == pytest.approx(value)
    # Doing nothing keeps the background exactly: no texture, no shift, every image flat.
    for rows in report["sets"].values():
        identity = rows["identity"]
        assert identity["shift_p90"] == 0 and identity["std_out_p90"] == identity["std_in_p90"]
        assert identity["flat_share"] == 1
    assert (tmp_path / "cyclegan_shapes_pil.png").is_file()
    assert "pil_lanczos4x" in capsys.readouterr().out
