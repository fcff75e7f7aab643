"""Degradations (conf/degradation/*.yaml), their masks, and the degraded pairs datamodules serve."""

import math

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from genlab.config import compose_train, config_dir
from genlab.data import degradations as D
from genlab.data import masks

DEGRADATIONS = sorted(p.stem for p in (config_dir() / "degradation").glob("*.yaml"))
INPAINTING = [d for d in DEGRADATIONS if d.startswith("inpaint")]


def from_yaml(name: str, *overrides: str) -> D.Degradation:
    return instantiate(compose_train([f"degradation={name}", *overrides]).degradation)


def smooth_image(channels: int = 3, height: int = 48, width: int = 40) -> torch.Tensor:
    """A smooth colour ramp in [-0.8, 0.8]: far from the clip limits, no texture."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    planes = [torch.sin(2 * math.pi * (xx + k / 3)) * 0.4 + (yy - 0.5) * 0.8 for k in range(channels)]
    return torch.stack(planes).clamp(-0.8, 0.8)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- the config group ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", DEGRADATIONS)
def test_every_yaml_declares_what_it_feeds_and_builds(name):
    cfg = compose_train([f"degradation={name}"])
    assert {"inpaint", "scale", "seed"} <= set(cfg.degradation), "the model config interpolates these keys"
    deg = instantiate(cfg.degradation)
    assert deg.inpaint == cfg.degradation.inpaint == name.startswith("inpaint")
    assert deg.scale == cfg.degradation.scale
    out = deg(smooth_image(3, 48, 48), gen(0))
    assert set(out) == set(deg.outputs) and ("mask" in out) == deg.inpaint
    assert out["degraded"].shape == (3, 48 // deg.scale, 48 // deg.scale)


def test_model_configs_can_interpolate_inpaint_and_scale():
    cfg = compose_train(["degradation=downsample", "degradation.scale=4", "+model.probe=${degradation.scale}"])
    assert cfg.model.probe == 4
    cfg = compose_train(["degradation=inpaint_box", "+model.probe=${degradation.inpaint}"])
    assert cfg.model.probe is True


@pytest.mark.parametrize("name, key, wrong", [("noise", "inpaint", "true"), ("inpaint_box", "scale", "2")])
def test_a_yaml_key_that_contradicts_the_class_is_refused(name, key, wrong):
    with pytest.raises(Exception, match=f"{key}="):
        from_yaml(name, f"degradation.{key}={wrong}")


def test_every_single_domain_dataset_takes_the_degradation():
    from hydra.utils import get_class

    for path in sorted((config_dir() / "data").glob("*.yaml")):
        cfg = compose_train([f"data={path.stem}", "degradation=noise"])
        single = get_class(cfg.data._target_).batches == "images"
        assert (OmegaConf.select(cfg, "data.degradation") is not None) == single, path.name


# --- masks ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", INPAINTING)
@pytest.mark.parametrize("size", [(32, 32), (31, 47), (64, 50)])
def test_masks_binary_right_size_deterministic_and_known_pixels_kept(name, size):
    deg = from_yaml(name)
    clean = smooth_image(3, *size)
    a, b, other = deg(clean, gen(3)), deg(clean, gen(3)), deg(clean, gen(4))
    mask = a["mask"]
    assert mask.shape == (1, *size) and mask.dtype == torch.float32
    assert set(mask.unique().tolist()) <= {0.0, 1.0} and mask.sum() > 0
    assert torch.equal(a["mask"], b["mask"]) and torch.equal(a["degraded"], b["degraded"])
    assert not torch.equal(a["mask"], other["mask"])
    known = mask.expand_as(clean) == 0
    assert torch.equal(a["degraded"][known], clean[known])  # exactly, not approximately
    assert (a["degraded"][~known] == 0).all()  # holes are grey


@pytest.mark.parametrize("size", [(64, 64), (37, 90)])
def test_box_mask_is_one_rectangle_with_sides_in_range(size):
    h, w = size
    for seed in range(30):
        mask = masks.box_mask(h, w, gen(seed), (0.25, 0.5))[0]
        rows, cols = mask.any(dim=1).nonzero(), mask.any(dim=0).nonzero()
        box_h, box_w = len(rows), len(cols)
        assert mask.sum() == box_h * box_w  # a filled rectangle
        assert rows.max() - rows.min() + 1 == box_h and cols.max() - cols.min() + 1 == box_w
        assert 0.25 * h - 0.5 <= box_h <= 0.5 * h + 0.5 and 0.25 * w - 0.5 <= box_w <= 0.5 * w + 0.5


def test_free_form_follows_deepfill_v2(monkeypatch):
    """1-3 strokes of 4-11 vertices (5-12 points with the start), widths 12-40 px at 256, scaled."""
    drawn = []
    original = masks._stroke

    def recorded(draw, points, width):
        drawn.append((points, width))
        original(draw, points, width)

    monkeypatch.setattr(masks, "_stroke", recorded)
    for size, scale in ((256, 1.0), (64, 0.25)):
        strokes_per_mask = []
        for seed in range(40):
            drawn.clear()
            masks.free_form_mask(size, size, gen(seed))
            strokes_per_mask.append(len(drawn))
            for points, width in drawn:
                assert 5 <= len(points) <= 12
                assert round(12 * scale) <= width <= round(40 * scale)
                assert all(0 <= x <= size and 0 <= y <= size for x, y in points)
        assert set(strokes_per_mask) == {1, 2, 3}


def test_free_form_coverage_is_the_same_fraction_at_any_size():
    coverage = {
        size: torch.tensor([masks.free_form_mask(size, size, gen(s)).mean() for s in range(40)]).mean().item()
        for size in (64, 256)
    }
    assert 0.08 < coverage[256] < 0.3
    assert coverage[64] == pytest.approx(coverage[256], rel=0.2)


@pytest.mark.parametrize("name", ["inpaint_lama", "inpaint_lama_medium", "inpaint_lama_thin"])
def test_lama_masks_cover_at_most_half(name):
    deg = from_yaml(name)
    coverage = torch.tensor([deg.draw_mask(40, 56, gen(s)).mean() for s in range(60)])
    assert (coverage > 0).all() and (coverage <= 0.5).all()
    assert coverage.max() > 0.3  # large masks occur: the bound is a rejection, not a shrink


def test_lama_rejects_and_redraws_masks_over_the_bound():
    tight = from_yaml("inpaint_lama", "degradation.max_coverage=0.1")
    loose = from_yaml("inpaint_lama", "degradation.max_coverage=1.0")
    assert max(loose.draw_mask(64, 64, gen(s)).mean() for s in range(30)) > 0.1
    assert max(tight.draw_mask(64, 64, gen(s)).mean() for s in range(30)) <= 0.1


def test_lama_boxes_only_when_asked(monkeypatch):
    calls = {"boxes": 0}
    original = masks._lama_boxes

    def counted(*args, **kwargs):
        calls["boxes"] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(masks, "_lama_boxes", counted)
    thin, thick = from_yaml("inpaint_lama_thin"), from_yaml("inpaint_lama")
    for s in range(40):
        thin.draw_mask(64, 64, gen(s))
    assert calls["boxes"] == 0
    for s in range(40):
        thick.draw_mask(64, 64, gen(s))
    assert 2 <= calls["boxes"] <= 20  # weight 0.3 against 1: 23% of 40 draws


# --- the other degradations ------------------------------------------------------------------------


def test_noise_sigma_measured_back():
    clean = smooth_image(3, 128, 128)
    out = D.GaussianNoise(sigma=25)(clean, gen(0))
    assert (out["degraded"] - clean).std().item() == pytest.approx(25 / 127.5, rel=0.02)
    assert out["sigma"].item() == 25
    blind = D.GaussianNoise(sigma=[5, 50])
    sigmas = []
    for s in range(20):
        out = blind(clean, gen(s))
        sigmas.append(out["sigma"].item())
        assert (out["degraded"] - clean).std().item() == pytest.approx(out["sigma"].item() / 127.5, rel=0.03)
    assert min(sigmas) >= 5 and max(sigmas) <= 50 and max(sigmas) - min(sigmas) > 20


def test_noise_clip_option():
    clean = torch.full((1, 64, 64), 0.9)
    assert D.GaussianNoise(50)(clean, gen(0))["degraded"].max() > 1  # the benchmarks' convention
    assert D.GaussianNoise(50, clip=True)(clean, gen(0))["degraded"].max() <= 1


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_downsample_shapes_and_constants(scale):
    out = D.Downsample(scale)(smooth_image(3, 12 * scale, 7 * scale), gen(0))["degraded"]
    assert out.shape == (3, 12, 7)
    flat = D.Downsample(scale)(torch.full((1, 6 * scale, 6 * scale), 0.3), gen(0))["degraded"]
    assert torch.allclose(flat, torch.full_like(flat, 0.3), atol=1e-5)  # cubic weights sum to 1


def test_downsample_needs_divisible_sizes():
    with pytest.raises(ValueError, match="multiple of 3"):
        D.Downsample(3)(smooth_image(3, 32, 33), gen(0))
    with pytest.raises(ValueError, match="x2, x3 or x4"):
        D.Downsample(5)
    with pytest.raises(Exception, match="divisible by degradation.scale=3"):
        instantiate(compose_train(["data=shapes", "degradation=downsample", "degradation.scale=3"]).data)


@pytest.mark.parametrize("channels", [1, 3])
def test_jpeg_really_encodes(channels):
    clean = smooth_image(channels, 40, 40) + 0.03 * torch.randn(channels, 40, 40, generator=gen(1))
    clean = clean.clamp(-1, 1)
    low = D.JPEG(quality=10)(clean, gen(0))["degraded"]
    high = D.JPEG(quality=90)(clean, gen(0))["degraded"]
    assert low.shape == clean.shape and torch.isfinite(low).all() and low.abs().max() <= 1
    assert not torch.equal(low, clean)
    assert (low - clean).pow(2).mean() > 3 * (high - clean).pow(2).mean()  # quality matters
    levels = ((low + 1) * 127.5).round()
    assert torch.allclose((low + 1) * 127.5, levels, atol=1e-4)  # decoded 8-bit values


def test_blur_kernels():
    clean = smooth_image(3, 40, 40)
    for deg in (D.GaussianBlur(sigma=[1.0, 3.0]), D.MotionBlur(length=[5, 15])):
        out = deg(clean, gen(0))
        k = out["kernel"]
        assert k.shape == (21, 21) and k.sum().item() == pytest.approx(1.0, abs=1e-5) and (k >= 0).all()
        flat = deg(torch.full((1, 30, 30), -0.4), gen(0))["degraded"]
        assert torch.allclose(flat, torch.full_like(flat, -0.4), atol=1e-5)
        tv = lambda x: (x[..., 1:, :] - x[..., :-1, :]).abs().sum() + (x[..., 1:] - x[..., :-1]).abs().sum()  # noqa: E731
        assert tv(out["degraded"]) < tv(clean)
    r = torch.arange(21.0) - 10
    k = D.GaussianBlur(sigma=2.0)(clean, gen(0))["kernel"]
    assert (k.sum(0) * r**2).sum().sqrt().item() == pytest.approx(2.0, rel=0.02)  # its σ
    k = D.MotionBlur(length=10.0)(clean, gen(0))["kernel"]
    extent = (k > 1e-6).nonzero().float()
    span = (extent.max(0).values - extent.min(0).values).norm().item()
    assert 9 <= span <= 12.5  # a segment of 10 px (+ bilinear footprint)
    with pytest.raises(ValueError, match="kernel_size >= 31"):
        D.GaussianBlur(sigma=5.0, kernel_size=21)


def test_blur_is_a_true_convolution():
    """An impulse blurs into the kernel itself, not its mirror: the deconvolution baselines assume it."""
    kernel = torch.zeros(5, 5)
    kernel[1, 3], kernel[2, 2], kernel[4, 0] = 0.5, 0.3, 0.2  # no symmetry at all
    impulse = torch.zeros(2, 15, 17)
    impulse[:, 7, 8] = 1
    blurred = D.convolve(impulse, kernel)
    assert blurred.shape == impulse.shape
    assert torch.allclose(blurred[:, 5:10, 6:11], kernel.expand(2, 5, 5), atol=1e-6)
    assert blurred.sum().item() == pytest.approx(2.0, abs=1e-5)


class Recorder(D.Degradation):
    """Adds its tag to the image so a chain's order shows in the output."""

    def __init__(self, tag: float, scale: int = 1):
        self.scale, self.tag, self.calls = scale, tag, 0
        super().__init__()

    def __call__(self, clean, generator):
        self.calls += 1
        y = clean * 10 + self.tag
        return {"degraded": y[..., :: self.scale, :: self.scale]}


def test_chain_applies_a_random_nonempty_sequence():
    steps = [Recorder(1), Recorder(2), Recorder(3)]
    clean = torch.zeros(1, 8, 8)
    results = {D.Chain(steps, p=0.5)(clean, gen(s))["degraded"][0, 0, 0].item() for s in range(100)}
    assert 0 not in results  # never the clean image
    assert {1, 2, 3} <= results  # single steps
    assert len({r for r in results if r > 100}) >= 3  # all three, in several orders
    assert {D.Chain(steps, p=0.0)(clean, gen(s))["degraded"][0, 0, 0].item() for s in range(30)} == {1, 2, 3}
    unshuffled = D.Chain(steps, p=1.0, shuffle=False)(clean, gen(0))["degraded"][0, 0, 0].item()
    assert unshuffled == 123


def test_chain_resampling_always_applies_and_sets_scale():
    chain = D.Chain([D.GaussianNoise(10), D.Downsample(2)], p=0.0, scale=2)
    assert chain.scale == 2
    for s in range(10):
        assert chain(smooth_image(3, 32, 32), gen(s))["degraded"].shape == (3, 16, 16)
    with pytest.raises(ValueError, match="scale=1"):
        D.Chain([D.Downsample(2)], scale=1)
    with pytest.raises(ValueError, match="inpainting"):
        D.Chain([D.InpaintBox()])


def test_one_of_picks_by_weight_and_refuses_mixed_surfaces():
    box, free = D.InpaintBox(size=[0.5, 0.5]), D.InpaintFreeForm()
    only_box = D.OneOf([box, free], p=[1, 0])
    for s in range(10):
        assert only_box(smooth_image(1, 32, 32), gen(s))["mask"].mean() == 0.25
    with pytest.raises(ValueError, match="disagree on inpaint"):
        D.OneOf([box, D.GaussianNoise()])


# --- pairs served by the datamodules ----------------------------------------------------------------


def datamodule(*overrides: str):
    dm = instantiate(compose_train(["data=shapes", "data.n_train=64", "data.n_val=24", *overrides]).data)
    dm.setup("fit")
    return dm


def test_validation_pairs_are_fixed_by_seed_and_index():
    first = datamodule("degradation=inpaint_freeform", "+data.val_batch_size=4")
    again = datamodule("degradation=inpaint_freeform", "+data.val_batch_size=12")
    a = torch.cat([b["mask"] for b in first.val_dataloader()])
    b = torch.cat([b["mask"] for b in again.val_dataloader()])
    assert torch.equal(a, b)  # same run after run, whatever the batch size
    assert not torch.equal(a[0], a[1])  # but each item its own mask
    reseeded = datamodule("degradation=inpaint_freeform", "degradation.seed=1")
    assert not torch.equal(a, torch.cat([b["mask"] for b in reseeded.val_dataloader()]))
    item = first.val_set[5]
    assert set(item) == {"clean", "degraded", "mask"}
    assert torch.equal(item["clean"], first.val_set.images[5][0])


def test_training_pairs_are_fresh_yet_follow_the_run_seed():
    dm = datamodule("degradation=noise")
    x = dm.train_set[0]
    assert torch.equal(x["clean"], dm.train_set[0]["clean"]) and not torch.equal(
        x["degraded"], dm.train_set[0]["degraded"]
    )
    L.seed_everything(7, workers=True)
    first = next(iter(dm.train_dataloader()))["degraded"]
    L.seed_everything(7, workers=True)
    assert torch.equal(first, next(iter(dm.train_dataloader()))["degraded"])


def test_without_degradation_nothing_changes():
    dm = datamodule()
    x, label = next(iter(dm.train_dataloader()))
    assert isinstance(x, torch.Tensor) and x.shape == (64, 3, 32, 32) and label.shape == (64, 2)
    with pytest.raises(Exception, match="two image domains"):
        instantiate(
            compose_train(["data=shapes_unpaired", "degradation=noise", "+data.degradation=${degradation}"]).data
        )
