"""genlab.metrics on features whose answers are known by hand (no Inception: fast)."""

import json
import math
import warnings
from pathlib import Path

import pytest
import scipy.linalg
import torch
from torch import nn

from genlab import evaluate, train
from genlab.data.embedded import load_digits
from genlab.errors import UserError
from genlab.metrics import functional as M
from genlab.metrics import keys, paired, quality
from genlab.metrics.extractors import Classifier, classifier_file


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path / "cache"))


def random_spd(d: int, seed: int) -> torch.Tensor:
    a = torch.randn(d, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return a @ a.T / d + 0.1 * torch.eye(d, dtype=torch.float64)


def test_frechet_distance_of_gaussians_is_the_closed_form():
    # Diagonal covariances commute: d² = ‖μ1 − μ2‖² + Σ_i (σ1_i − σ2_i)².
    mu1, mu2 = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([1.0, 1.0, -1.0])
    s1, s2 = torch.tensor([1.0, 4.0, 9.0]), torch.tensor([4.0, 1.0, 9.0])
    expected = (mu1 - mu2).square().sum() + (s1 - s2).square().sum()
    got = M.frechet_distance(mu1, torch.diag(s1**2), mu2, torch.diag(s2**2))
    assert got == pytest.approx(float(expected), rel=1e-10)
    # General covariances: Tr(Σ1 + Σ2 − 2 (Σ1 Σ2)^½) with scipy's independent matrix square root.
    a, b = random_spd(6, 0), random_spd(6, 1)
    reference = float(a.trace() + b.trace() - 2 * scipy.linalg.sqrtm((a @ b).numpy()).real.trace())
    assert M.frechet_distance(torch.zeros(6), a, torch.zeros(6), b) == pytest.approx(reference, rel=1e-8)


def test_fid_of_a_set_with_itself_is_zero_and_fid_is_symmetric():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(300, 16, generator=g), torch.randn(300, 16, generator=g) * 1.5 + 0.3
    assert abs(M.fid(x, x)) < 1e-8
    assert M.fid(x, y) == pytest.approx(M.fid(y, x), rel=1e-10)
    assert M.fid(x, y) > 1


class Identity(nn.Module):
    """Hands torchmetrics our features as if its extractor had produced them."""

    def __init__(self, dim: int):
        super().__init__()
        self.num_features = dim

    def forward(self, x):
        return x


def test_our_numbers_equal_torchmetrics_on_identical_features():
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.inception import InceptionScore
    from torchmetrics.image.kid import KernelInceptionDistance

    g = torch.Generator().manual_seed(1)
    # float64 in: torchmetrics then computes in float64 as we do, and the numbers agree to rounding.
    real = torch.randn(64, 8, generator=g, dtype=torch.float64)
    fake = torch.randn(64, 8, generator=g, dtype=torch.float64) * 0.8 + 0.2
    tm_fid = FrechetInceptionDistance(feature=Identity(8))
    tm_fid.update(real, real=True)
    tm_fid.update(fake, real=False)
    assert M.fid(real, fake) == pytest.approx(float(tm_fid.compute()), rel=1e-9)

    # One subset holding every sample: no randomness on either side.
    tm_kid = KernelInceptionDistance(feature=Identity(8), subsets=1, subset_size=64)
    tm_kid.update(real, real=True)
    tm_kid.update(fake, real=False)
    assert M.kid(real, fake, subsets=1, subset_size=64)[0] == pytest.approx(float(tm_kid.compute()[0]), rel=1e-9)

    logits = torch.randn(50, 5, generator=g, dtype=torch.float64) * 3
    tm_is = InceptionScore(feature=Identity(5), splits=1)
    tm_is.update(logits)
    assert M.inception_score(logits, splits=1)[0] == pytest.approx(float(tm_is.compute()[0]), rel=1e-9)


def test_kid_is_unbiased_on_a_toy_case():
    # 1-D features, k(x, y) = (xy + 1)³ = 1 + 3xy + 3x²y² + x³y³, so for independent draws
    # MMD² = 3(m1_P − m1_Q)² + 3(m2_P − m2_Q)² + (m3_P − m3_Q)² with m_i the raw moments.
    # P = N(0, 1): m = (0, 1, 0); Q = N(½, 1): m = (½, 1¼, ⅛ + 3·½ = 1⅝).
    truth = 3 * 0.5**2 + 3 * 0.25**2 + 1.625**2
    g = torch.Generator().manual_seed(0)
    m, trials = 4, 20000  # tiny subsets: a biased estimator would be far off
    x = torch.randn(trials, m, 1, generator=g, dtype=torch.float64)
    y = torch.randn(trials, m, 1, generator=g, dtype=torch.float64) + 0.5
    estimates = torch.stack([M.polynomial_mmd2(a, b) for a, b in zip(x, y)])
    stderr = estimates.std() / math.sqrt(trials)
    assert abs(estimates.mean() - truth) < 4 * stderr
    # The biased V-statistic (diagonals included) on the same draws misses by far more.
    k = lambda a, b: (a @ b.T + 1) ** 3  # noqa: E731
    biased = torch.stack([k(a, a).mean() + k(b, b).mean() - 2 * k(a, b).mean() for a, b in zip(x, y)])
    assert abs(biased.mean() - truth) > 20 * stderr


def test_kid_with_subsets_as_large_as_the_sets_is_one_exact_value():
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(30, 4, generator=g), torch.randn(30, 4, generator=g) + 0.3
    mean, std = M.kid(x, y, subsets=5, subset_size=30)
    assert std == 0.0 and mean == pytest.approx(float(M.polynomial_mmd2(x.double(), y.double())), rel=1e-12)
    shuffled = M.polynomial_mmd2(x.double()[torch.randperm(30, generator=g)], y.double().flip(0))
    assert mean == pytest.approx(float(shuffled), rel=1e-9)  # order does not matter
    assert M.kid(x, y, subsets=50, subset_size=10)[1] > 0  # proper subsets do vary


def test_inception_score_of_uniform_is_one_and_of_balanced_one_hot_is_the_class_count():
    assert M.inception_score(torch.zeros(100, 7), splits=5)[0] == pytest.approx(1.0, abs=1e-10)
    one_hot = torch.nn.functional.one_hot(torch.arange(100) % 10, 10).double() * 1e4  # softmax ≈ one-hot
    mean, std = M.inception_score(one_hot, splits=10)
    assert mean == pytest.approx(10.0, rel=1e-9) and std < 1e-9


def test_precision_recall_of_identical_sets_is_one_and_of_far_apart_sets_is_zero():
    x = torch.randn(200, 5, generator=torch.Generator().manual_seed(0))
    assert M.precision_recall(x, x.clone(), k=3) == (1.0, 1.0)
    assert M.precision_recall(x, x + 100.0, k=3) == (0.0, 0.0)
    # A fake set that collapsed onto a tenth of the reals: precise, but recalls little.
    precision, recall = M.precision_recall(x, x[:20].repeat(10, 1), k=3)
    assert precision == 1.0 and recall < 0.5


def test_copying_tells_samples_that_reproduce_training_points_from_fresh_draws():
    g = torch.Generator().manual_seed(0)
    train, held_out, fresh = (torch.randn(n, 4, generator=g) for n in (400, 300, 1000))
    copies = train[torch.randint(0, 400, (1000,), generator=g)] + 1e-3 * torch.randn(1000, 4, generator=g)

    share, z = M.copying(train, held_out, fresh)  # drawn like the held-out data: as near to train as it
    assert 0.02 < share < 0.09 and abs(z) < 3
    share, z = M.copying(train, held_out, copies)
    assert share == 1.0 and z < -20
    share, z = M.copying(train, held_out, torch.cat([copies[:500], fresh[:500]]))
    assert 0.5 <= share < 0.56 and z < -3
    share, z = M.copying(train, held_out, fresh + 5.0)  # far from everything: no copying, z far above 0
    assert share == 0.0 and z > 20
    with pytest.raises(ValueError, match="held-out"):
        M.copying(train, held_out[:1], fresh)


class Resampler(nn.Module):
    """A "model" whose samples are images drawn (with replacement) from a fixed set."""

    def __init__(self, images):
        super().__init__()
        self.images = images

    def sample(self, n, generator=None):
        return self.images[torch.randint(0, len(self.images), (n,), generator=generator)]


def test_evaluate_flags_a_sampler_that_returns_training_images(tmp_path):
    from genlab.data.embedded import DigitsDataModule

    datamodule = DigitsDataModule(batch_size=64)
    datamodule.setup("fit")
    cfg = compose_evaluate(f"cache_dir={tmp_path}", "n=300")
    train_images = torch.stack([datamodule.train_set[i][0] for i in range(len(datamodule.train_set))])
    val_images = torch.stack([datamodule.val_set[i][0] for i in range(len(datamodule.val_set))])

    def copy_metrics(images):
        values, report = evaluate.model_metrics(cfg, Resampler(images), datamodule, ["copy"], "cpu")
        assert report["copy"] == {"n_train": len(train_images), "n_held_out": min(300, len(val_images))}
        return values["copy300[classifier]"], values["copyz300[classifier]"]

    copy, z = copy_metrics(train_images)
    assert copy == 1.0 and z < -10
    copy, z = copy_metrics(val_images)  # unseen images: as near to the training set as held-out images are
    assert copy < 0.1 and abs(z) < 3
    circles = quality.Plan(datamodule.val_set, datamodule.val_set, 10, "val", "a2b")
    with pytest.raises(ValueError, match="held-out"):  # a translator (or a folder) has no held-out reference
        quality.check_request(["copy"], 10, 10, FakeExtractor(), quality.Protocol(), circles.n_held_out)


def test_precision_recall_equal_torch_fidelity_on_identical_features():
    from torch_fidelity.metric_prc import prc_features_to_metric

    g = torch.Generator().manual_seed(3)
    real, fake = torch.randn(150, 6, generator=g), torch.randn(120, 6, generator=g) * 1.3 + 0.4
    theirs = prc_features_to_metric(
        fake, real, prc_neighborhood=3, prc_batch_size=10000, save_cpu_ram=False, verbose=False
    )
    assert M.precision_recall(real, fake, k=3) == pytest.approx((theirs["precision"], theirs["recall"]), abs=1e-6)


def test_reconstruction_metrics_match_their_definitions():
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    assert M.mse(x, x) == 0 and M.ssim(x, x) == pytest.approx(1.0, abs=1e-9)
    noisy = (x + 0.1).clamp(-1, 1)
    mse = float((noisy - x).square().mean())
    assert M.mse(noisy, x) == pytest.approx(mse, rel=1e-6)
    per_image = [10 * math.log10(4 / float((noisy[i] - x[i]).square().mean())) for i in range(4)]
    assert M.psnr(noisy, x) == pytest.approx(sum(per_image) / 4, rel=1e-6)  # peak-to-peak range 2 → 2² = 4
    assert M.ssim(noisy, x) < 1


def test_lpips_without_its_weights_is_a_clear_message_not_a_download(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))  # an empty hub cache
    with pytest.raises(RuntimeError, match="LPIPS needs torchvision's alex ImageNet weights"):
        M.lpips(torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 16))


class FakeExtractor(nn.Module):
    name, provenance, dim, has_logits = "fake", "test", 8, False


def test_too_few_samples_is_a_clear_error_before_any_work():
    ext, protocol = FakeExtractor(), quality.Protocol()
    with pytest.raises(ValueError, match="singular"):
        quality.check_request(["fid"], 8, 8, ext, protocol)
    quality.check_request(["fid"], 8, 8, ext, quality.Protocol(allow_few_samples=True))
    with pytest.raises(ValueError, match="KID subset size 50"):
        quality.check_request(["kid"], 40, 40, ext, quality.Protocol(kid_subset_size=50))
    with pytest.raises(ValueError, match="IS needs class logits"):
        quality.check_request(["is"], 100, 100, ext, protocol)
    with pytest.raises(ValueError, match="unknown"):
        quality.check_request(["fidd"], 100, 100, ext, protocol)


def test_real_stats_cache_is_keyed_and_reused(tmp_path):
    cache, ext = quality.RealStatsCache(tmp_path), FakeExtractor()
    calls = []

    def compute():
        calls.append(1)
        return quality.FeatureSet(torch.randn(10, 8))

    path = cache.path("digits", "train", 32, ext, 10)
    assert cache.load(path) is None
    first = compute()
    cache.save(path, first)
    assert torch.equal(cache.load(path).features, first.features) and len(calls) == 1
    others = {cache.path(*args) for args in [("shapes", "train", 32, ext, 10), ("digits", "val", 32, ext, 10),
                                             ("digits", "train", 64, ext, 10), ("digits", "train", 32, ext, 20)]}  # fmt: skip
    assert path not in others and len(others) == 4


def test_shipped_classifier_knows_its_domain():
    assert classifier_file("digits").stat().st_size < 1_000_000
    images, labels = load_digits(32)
    ext = Classifier("digits")
    out = ext(images[:300])
    assert out["features"].shape == (300, ext.dim) and out["logits"].shape == (300, 10)
    assert (out["logits"].argmax(1) == labels[:300]).float().mean() > 0.95
    with pytest.raises(ValueError, match="takes 1-channel images, got 3"):
        ext(torch.zeros(2, 3, 32, 32))


def test_default_training_run_ends_with_classifier_fid_and_is(make_cfg, capsys):
    cfg = make_cfg("data.batch_size=16", "model.generator.width=8", "model.discriminator.width=8")
    train.run(cfg)
    summary = capsys.readouterr().out
    assert "val/fid1000[classifier]=" in summary and "val/is1000[classifier]=" in summary
    csv = (Path(cfg.paths.output_dir) / "csv" / "metrics.csv").read_text()
    assert "val/fid1000[classifier]" in csv


def test_metrics_preset_logs_every_epoch_and_checkpoints_the_best_fid(make_cfg):
    cfg = make_cfg(
        "callbacks=metrics", "callbacks.progress_bar=null", "callbacks.lr_monitor=null", "trainer.max_epochs=2",
        "callbacks.sample_quality.n=200", "data.batch_size=16", "model.generator.width=8", "model.discriminator.width=8",
    )  # fmt: skip
    train.run(cfg)
    run = Path(cfg.paths.output_dir)
    header, *rows = (run / "csv" / "metrics.csv").read_text().splitlines()
    column = header.split(",").index("val/fid200[classifier]")
    assert sum(1 for r in rows if r.split(",")[column]) >= 2  # epochs 1 and 2 (train end reuses epoch 2)
    assert {"val/kid200[classifier]", "val/precision200[classifier]", "val/recall200[classifier]"} <= set(
        header.split(",")
    )
    assert (run / "checkpoints" / "best_fid.ckpt").is_file()


def test_callback_is_a_noop_with_one_warning_where_it_cannot_score(make_cfg):
    cfg = make_cfg("data=shapes", "data.n_train=64", "data.n_val=16", "data.batch_size=16",
                   "model.generator.width=8", "model.discriminator.width=8",
                   "callbacks.sample_quality.extractor.weights=digits")  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train.run(cfg)
    said = [str(w.message) for w in caught if "SampleQuality" in str(w.message)]
    assert len(said) == 1 and "the data has 3" in said[0]


def test_callback_refuses_a_meaningless_request_before_training(make_cfg):
    cfg = make_cfg("callbacks.sample_quality.n=50", "data.batch_size=16")  # FID of 50 samples, 64-dim features
    with pytest.raises(ValueError, match="covariance is singular"):
        train.run(cfg)
    assert not (Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt").exists()


def test_callback_skips_models_without_sample():
    from genlab.callbacks import SampleQuality

    callback = SampleQuality(extractor={"_target_": "genlab.metrics.extractors.Classifier"})
    with pytest.warns(UserWarning, match="nothing to score: Linear implements none"):
        callback.setup(None, nn.Linear(1, 1), "fit")
    callback.on_train_end(None, nn.Linear(1, 1))  # no-op: nothing evaluated, nothing raised
    assert callback.extractor is None


def test_callback_stays_quiet_for_a_restorer(recwarn):
    from genlab.callbacks import SampleQuality

    class Restorer(nn.Module):
        def restore(self, y, mask=None):
            return y

    callback = SampleQuality(extractor={"_target_": "genlab.metrics.extractors.Classifier"})
    callback.setup(None, Restorer(), "fit")  # scored by its own validation: no warning for the user
    assert callback.disabled and callback.extractor is None
    assert not [w for w in recwarn if "SampleQuality" in str(w.message)]


def test_evaluate_scores_a_checkpoint_and_reuses_cached_real_features(make_cfg, tmp_path):
    cfg = make_cfg("data.batch_size=16", "model.generator.width=8", "model.discriminator.width=8",
                   "callbacks.sample_quality=null")  # fmt: skip
    train.run(cfg)
    ckpt = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    from hydra import compose, initialize_config_dir

    from genlab.config import config_dir

    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        ev = compose("evaluate", overrides=[f"ckpt={ckpt}", "n=300", f"out={tmp_path / 'ev'}"])
    first = evaluate.run(ev)
    report = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    second = evaluate.run(ev)
    again = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert not report["real_features_cached"] and again["real_features_cached"]
    assert first == second  # same seed, same samples, same cached reals
    stats = ("fid", "kid", "kid_std", "is", "is_std", "precision", "recall", "copy", "copyz")
    assert set(first) == {keys.sample_key(stat, 300, "classifier", stage=None) for stat in stats}


def compose_evaluate(*overrides: str):
    from genlab.config import compose_evaluate

    return compose_evaluate(list(overrides))


def test_samples_scored_are_the_same_whatever_the_batch_size_and_process_count():
    class Sampler:  # the sampling surface every generative model has
        def sample(self, n, generator=None):
            return torch.randn(n, 1, 3, 3, generator=generator)

    plan = quality.Plan(reference=None, source=None, n=230, split="train")

    def images(batch_size, rank=0, world=1, seed=0):
        batches = list(quality.model_batches(Sampler(), plan, batch_size, seed, "cpu", quality.Ranks(rank, world)))
        assert all(len(b) <= max(batch_size, quality.SAMPLE_CHUNK) + quality.SAMPLE_CHUNK for b in batches)
        return torch.cat(batches)

    one = images(64)
    assert len(one) == 230
    assert torch.equal(images(7), one) and torch.equal(images(1000), one)
    # Another seed draws other images (the CPU generator keeps a seed's low 32 bits only: seed * 2**32 + chunk did not).
    others = [images(64, seed=seed) for seed in (1, 2, 12345)]
    assert all(not torch.isin(x, one).any() for x in others) and not torch.isin(others[0], others[1]).any()
    shares = [images(64, rank, 2) for rank in (0, 1)]  # rank r makes chunks r, r + 2, ...
    assert sum(len(x) for x in shares) == 230
    by_row = lambda x: sorted(map(tuple, x.flatten(1).tolist()))  # noqa: E731
    assert by_row(torch.cat(shares)) == by_row(one)
    few = quality.Plan(reference=None, source=None, n=60, split="train")  # 2 chunks of 50 for 4 processes
    counts = [sum(map(len, quality.model_batches(Sampler(), few, 64, 0, "cpu", quality.Ranks(r, 4)))) for r in range(4)]
    assert counts == [15, 15, 15, 15]  # no rank left out of the gather


def test_evaluate_reproduces_the_training_logs_fid_at_any_batch_size(make_cfg, tmp_path):
    # NCHW weights as evaluate.py loads them: the same float rounding, so the same numbers to the last digits
    cfg = make_cfg("data.batch_size=16", "model.generator.width=8", "model.discriminator.width=8",
                   "callbacks.sample_quality.n=300", "callbacks.sample_quality.metrics=[fid]",
                   "callbacks.channels_last.enabled=false")  # fmt: skip
    train.run(cfg)
    run = Path(cfg.paths.output_dir)
    header, *rows = (run / "csv" / "metrics.csv").read_text().splitlines()
    column = header.split(",").index("val/fid300[classifier]")
    logged = float(next(r.split(",")[column] for r in rows if r.split(",")[column]))
    ev = compose_evaluate(f"ckpt={run / 'checkpoints' / 'last.ckpt'}", "n=300", "metrics=[fid]", "batch_size=7",
                          f"out={tmp_path / 'ev'}")  # fmt: skip
    (value,) = evaluate.run(ev).values()
    # The callback samples 250 at a time, evaluate 7; one random stream cut both ways gave 1069.88 vs 1069.91 here.
    assert value == pytest.approx(logged, rel=1e-6)


def test_training_log_under_ddp_and_evaluate_in_one_process_give_the_same_numbers(tmp_path):
    from tests.conftest import run_script

    run = tmp_path / "run"
    scored = ["callbacks.sample_quality.n=200", "callbacks.sample_quality.metrics=[fid,kid,is]",
              "callbacks.sample_quality.kid_subset_size=50", "callbacks.sample_quality.kid_subsets=20"]  # fmt: skip
    # a VAE decodes visibly different images from its first steps, so the order KID's subsets read shows
    vae = ["model=vae", "model.encoder.width=8", "model.decoder.width=8", "+trainer.limit_train_batches=2"]
    result = run_script(
        "train.py", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.max_epochs=1",
        "callbacks.progress_bar=null", "callbacks.channels_last.enabled=false", "data.batch_size=16", *vae, *scored,
        f"hydra.run.dir={run}", cwd=tmp_path, timeout=400,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    header, *rows = (run / "csv" / "metrics.csv").read_text().splitlines()
    names = header.split(",")
    logged = {k[len("val/") :]: float(v) for row in rows for k, v in zip(names, row.split(",")) if "200[" in k and v}
    assert {"fid200[classifier]", "kid200[classifier]", "is200[classifier]"} <= logged.keys()
    ev = compose_evaluate(f"ckpt={run / 'checkpoints' / 'last.ckpt'}", "n=200", "metrics=[fid,kid,is]",
                          "kid_subset_size=50", "kid_subsets=20", f"out={tmp_path / 'ev'}")  # fmt: skip
    values = evaluate.run(ev)
    # Gathered in rank order, KID differed by 1e-4 relative (its subsets drew other images)
    assert {k: values[k] for k in logged} == pytest.approx(logged, rel=1e-6)


def test_callback_scores_with_the_classifier_of_the_data(make_cfg):
    import csv

    cfg = make_cfg("data=shapes", "data.n_train=128", "data.n_val=16", "data.batch_size=16",
                   "model.generator.width=8", "model.discriminator.width=8",
                   "callbacks.sample_quality.n=100", "callbacks.sample_quality.metrics=[fid]")  # fmt: skip
    train.run(cfg)
    rows = list(csv.DictReader((Path(cfg.paths.output_dir) / "csv" / "metrics.csv").open()))
    assert any(row.get("val/fid100[classifier]") for row in rows)  # the 3-channel shapes classifier took it


class OracleTranslator(nn.Module):
    """Translates each validation circle into its true square (or, ``shift``, the next image's)."""

    def __init__(self, dataset, shift: int = 0):
        super().__init__()
        self.a, self.truth, self.shift = (
            torch.stack([dataset.a[i] for i in range(len(dataset.a))]),
            dataset.b_true,
            shift,
        )

    def translate(self, x, direction="a2b"):
        index = [int((self.a == image).flatten(1).all(1).nonzero()) for image in x]
        return self.truth[[(i + self.shift) % len(self.truth) for i in index]]


def test_evaluate_pairs_each_translated_input_with_its_ground_truth():

    from genlab.data.unpaired import ShapesUnpairedDataModule

    datamodule = ShapesUnpairedDataModule(image_size=16, n_train=4, n_val=24, batch_size=4)
    datamodule.setup("fit")

    def score(model, metrics, direction="a2b"):
        outputs, targets, mask, tag = paired.pairs(model, datamodule.val_set, 20, 8, "cpu", direction)
        return paired.scores(outputs, targets, metrics, mask, f"{len(targets)}{tag}")

    perfect = score(OracleTranslator(datamodule.val_set), ["mse", "ssim"])
    assert perfect == {"mse20_a2b": 0.0, "ssim20_a2b": pytest.approx(1.0)}
    assert score(OracleTranslator(datamodule.val_set, shift=1), ["mse"])["mse20_a2b"] > 0.05
    with pytest.raises(UserError, match="shapes_unpaired"):
        score(OracleTranslator(datamodule.val_set), ["psnr"], direction="b2a")


def test_evaluate_vae_likelihood_and_reconstructions(make_cfg, tmp_path):
    # 40 steps: a posterior that depends on x, so that importance weighting has something to tighten
    cfg = make_cfg("model=vae", "data.batch_size=16", "callbacks.sample_quality=null", "trainer.limit_train_batches=40")
    train.run(cfg)
    ckpt = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    common = [f"ckpt={ckpt}", "n=32", f"out={tmp_path / 'ev'}"]
    elbo = evaluate.run(compose_evaluate(*common, "metrics=[nll,mse,psnr]", "iw_k=1"))
    tight = evaluate.run(compose_evaluate(*common, "metrics=[nll]", "iw_k=64"))
    assert tight["iw_nll32_k64"] < elbo["iw_nll32_k1"]  # more importance samples, a tighter bound
    assert elbo["iw_bpd32_k1"] == pytest.approx(elbo["iw_nll32_k1"] / (32 * 32 * math.log(2)))
    assert elbo["psnr32"] == pytest.approx(10 * math.log10(4 / elbo["mse32"]), abs=3)  # mean of per-image PSNRs
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate.run(compose_evaluate(*common, "metrics=[fid,likelihood]"))


def test_evaluate_defaults_to_what_the_model_supports(vqvae_ckpt, tmp_path):
    values = evaluate.run(compose_evaluate(f"ckpt={vqvae_ckpt}", "n=16", f"out={tmp_path}"))
    assert set(values) == {"mse16", "psnr16", "ssim16"}  # a VQ-VAE reconstructs; it does not sample


def test_evaluate_two_folders_of_the_same_images_gives_zero(tmp_path):
    from torchvision.utils import save_image

    images, _ = load_digits(32)
    for name in ("real", "fake"):
        (tmp_path / name).mkdir()
        for i, image in enumerate(images[:120]):
            save_image(image * 0.5 + 0.5, tmp_path / name / f"{i:03d}.png")
    from hydra import compose, initialize_config_dir

    from genlab.config import config_dir

    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        ev = compose("evaluate", overrides=[f"real={tmp_path / 'real'}", f"fake={tmp_path / 'fake'}", "n=null",
                                            "metrics=[fid,pr]", "extractor.weights=digits",
                                            f"out={tmp_path / 'ev'}"])  # fmt: skip
    values = evaluate.run(ev)
    assert abs(values["fid120[classifier]"]) < 1e-6
    assert values["precision120[classifier]"] == 1.0 and values["recall120[classifier]"] == 1.0
    report = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert report["files_read"] == {"real": 120, "fake": 120}
    with pytest.raises(ValueError, match="folder mode scores"):  # copy needs a run's training and held-out images
        evaluate.run(
            compose_evaluate(
                f"real={tmp_path / 'real'}", f"fake={tmp_path / 'fake'}", "metrics=[copy]", "extractor.weights=digits"
            )
        )


@pytest.mark.slow
def test_callback_under_ddp_gathers_every_rank_and_does_not_hang(tmp_path):
    from tests.conftest import run_script

    result = run_script(
        "train.py", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.max_epochs=2",
        "+trainer.limit_train_batches=2", "callbacks=metrics", "callbacks.progress_bar=null",
        "callbacks.sample_quality.n=200", "model.generator.width=8", "model.discriminator.width=8",
        "data.batch_size=16", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path, timeout=400,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "val/fid200[classifier]=" in result.stdout  # 2 x 100 samples gathered (checked inside the callback)
