"""VAE, VQ-VAE and a prior on digits: train the experiments, then score held-out images.

    python -m genlab.bench autoencoders [--quick] [--iw-k 1000] [--out DIR] [--override trainer.max_epochs=5]
    python -m genlab.bench autoencoders --vae-ckpt A --vqvae-ckpt B --prior-ckpt C   # score runs only

Held-out = the validation split of the data each checkpoint was trained on (digits: 180 images).
VAE: negative ELBO (nats/image, one posterior sample per image, and bits/dim), KL, active units,
and the k-sample importance-weighted NLL (Burda et al. 2015). VQ-VAE: MSE on [-1, 1], MSE / data
variance, PSNR, code perplexity and usage (experiment=vqvae_digits). Prior: trained over the codes of
experiment=vqvae_digits_coarse, the first stage made for sampling (its train time counts in the prior's),
NLL of the held-out code maps. VAE and prior samples: FID against the training images and IS, on the
shipped digits classifier (the protocol of the training callback and evaluate.py), next to the same
numbers for the held-out real digits.
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from genlab import train
from genlab.bench import argument_parser
from genlab.checkpoint import load_model, load_run_config
from genlab.config import compose_train
from genlab.metrics import functional as M
from genlab.metrics import quality
from genlab.metrics.extractors import Classifier

QUICK = ["trainer.max_epochs=1", "+trainer.limit_train_batches=3", "+trainer.limit_val_batches=2"]
QUIET = ["callbacks.progress_bar=null", "+trainer.enable_model_summary=false"]


def train_experiment(experiment: str, out: Path, extra: list[str]) -> tuple[Path, float]:
    """Run ``python train.py experiment=<experiment> *extra``; returns (last.ckpt, wall seconds)."""
    cfg = compose_train([f"experiment={experiment}", *QUIET, *extra], output_dir=out / experiment)
    start = time.perf_counter()
    train.run(cfg)
    return Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt", time.perf_counter() - start


def held_out(ckpt: Path) -> torch.utils.data.DataLoader:
    """The validation loader of the data the checkpoint was trained on."""
    datamodule = instantiate(OmegaConf.create(load_run_config(ckpt)["data"]))
    datamodule.setup("validate")
    return datamodule.val_dataloader()


def validate(model: L.LightningModule, loader) -> dict[str, float]:
    """The model's own ``val/...`` metrics over the whole loader."""
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    return {k: float(v) for k, v in trainer.validate(model, loader, verbose=False)[0].items()}


def iw_nll(model, loader, k: int, seed: int = 0) -> float:
    """Mean importance-weighted NLL (nats/image) over the loader."""
    generator = torch.Generator().manual_seed(seed)
    total, count = 0.0, 0
    for x, _ in loader:
        total += float(model.importance_weighted_nll(x, k=k, generator=generator).sum())
        count += len(x)
    return total / count


def sample_quality(model, ckpt: Path, extractor, n: int) -> dict[str, float]:
    """Classifier FID of ``n`` samples against ``n`` training images, and their IS: what the
    training callback and ``evaluate.py`` compute, through the same function."""
    datamodule = instantiate(OmegaConf.create(load_run_config(ckpt)["data"]))
    datamodule.setup("fit")
    plan = quality.plan(model, datamodule, n, "train")
    values, _ = quality.score(
        model, plan, extractor, ["fid", "is"], quality.Protocol(), real_name="", image_size=datamodule.image_size
    )
    return {"fid": values[plan.key("fid", extractor.name, None)], "is": values[plan.key("is", extractor.name, None)]}


def real_baseline(ckpt: Path, extractor, n: int) -> dict[str, float]:
    """The same numbers for the held-out real images in place of samples: what a model that drew
    new digits from the true distribution would score (FID on few images is biased upwards)."""
    datamodule = instantiate(OmegaConf.create(load_run_config(ckpt)["data"]))
    datamodule.setup("fit")
    train_set = quality.extract(extractor, quality.real_batches(datamodule.train_set, n, 250))
    held_out = quality.extract(extractor, quality.real_batches(datamodule.val_set, len(datamodule.val_set), 250))
    return {"fid": M.fid(train_set.features, held_out.features), "is": M.inception_score(held_out.logits)[0]}


def fmt(value: float | None, spec: str = ".4g") -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def main(argv: list[str]) -> None:
    parser = argument_parser("autoencoders", __doc__)
    parser.add_argument("--quick", action="store_true", help="3 steps per model, k=10: checks the pipeline only")
    parser.add_argument("--iw-k", type=int, default=None, help="importance samples (default 1000; 10 with --quick)")
    parser.add_argument(
        "--n-samples", type=int, default=None, help="samples for FID/IS (default 1000; 100 with --quick)"
    )
    parser.add_argument("--out", type=Path, default=None, help="run directories (default: a temporary one)")
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra train.py override for all three runs, repeatable",
    )
    parser.add_argument("--vae-ckpt", type=Path, help="score this VAE instead of training experiment=vae_digits")
    parser.add_argument("--vqvae-ckpt", type=Path, help="score this VQ-VAE instead of training vqvae_digits")
    parser.add_argument(
        "--prior-ckpt", type=Path, help="score this prior instead of training vqvae_digits_coarse + vqvae_prior_digits"
    )
    args = parser.parse_args(argv)
    k = args.iw_k or (10 if args.quick else 1000)
    n_samples = args.n_samples or (100 if args.quick else 1000)  # FID needs more samples than the 64 features
    out = args.out or Path(tempfile.mkdtemp(prefix="genlab-bench-ae-"))
    extra = [*(QUICK if args.quick else []), *args.override]

    wall: dict[str, float | None] = {"vae": None, "vqvae": None, "prior": None}
    vae_ckpt, vqvae_ckpt, prior_ckpt = args.vae_ckpt, args.vqvae_ckpt, args.prior_ckpt
    if vae_ckpt is None:
        vae_ckpt, wall["vae"] = train_experiment("vae_digits", out, extra)
    if vqvae_ckpt is None and prior_ckpt is None:
        vqvae_ckpt, wall["vqvae"] = train_experiment("vqvae_digits", out, extra)
    if prior_ckpt is None:
        coarse_ckpt, coarse_s = train_experiment("vqvae_digits_coarse", out, extra)
        prior_ckpt, prior_s = train_experiment("vqvae_prior_digits", out, [*extra, f"model.vqvae_ckpt={coarse_ckpt}"])
        wall["prior"] = coarse_s + prior_s

    extractor = Classifier("digits")
    vae = load_model(vae_ckpt)
    loader = held_out(vae_ckpt)
    v = validate(vae, loader)
    v["iw_nll"] = iw_nll(vae, loader, k)
    v.update({f"vae_{m}": x for m, x in sample_quality(vae, vae_ckpt, extractor, n_samples).items()})
    baseline = real_baseline(vae_ckpt, extractor, n_samples)

    prior = load_model(prior_ckpt)
    vqvae = load_model(vqvae_ckpt) if vqvae_ckpt is not None else prior.vqvae
    loader = held_out(prior_ckpt)
    q = validate(vqvae, loader)
    p = validate(prior, loader)
    start = time.perf_counter()
    prior.sample(64, generator=torch.Generator().manual_seed(0))
    p["sample_s"] = time.perf_counter() - start
    p.update(sample_quality(prior, prior_ckpt, extractor, n_samples))

    images = len(loader.dataset)
    print(f"\nAutoencoders on held-out digits ({images} images, 32 px), {torch.get_num_threads()} threads")
    print(f"runs: {out}" + ("   (--quick: pipeline check, numbers meaningless)" if args.quick else ""))
    print(
        f"\n{'VAE':<8}{'train s':>9}{'-ELBO nats':>12}{'bits/dim':>10}{f'IW-NLL k={k}':>14}{'KL':>8}{'AU':>5}{'FID':>8}{'IS':>7}"
    )
    print(
        f"{'':<8}{fmt(wall['vae'], '.0f'):>9}{fmt(v['val/nelbo'], '.2f'):>12}{fmt(v['val/bpd'], '.4f'):>10}"
        f"{fmt(v['iw_nll'], '.2f'):>14}{fmt(v['val/kl'], '.2f'):>8}{fmt(v['val/active_units'], '.0f'):>5}"
        f"{fmt(v.get('vae_fid')):>8}{fmt(v.get('vae_is')):>7}"
    )
    print(f"\n{'VQ-VAE':<8}{'train s':>9}{'MSE':>10}{'MSE/var':>10}{'PSNR dB':>9}{'perplexity':>12}{'usage':>8}")
    print(
        f"{'':<8}{fmt(wall['vqvae'], '.0f'):>9}{fmt(q['val/mse'], '.5f'):>10}{fmt(q['val/nmse'], '.4f'):>10}"
        f"{fmt(q['val/psnr'], '.2f'):>9}{fmt(q['val/perplexity'], '.1f'):>12}{fmt(q['val/code_usage'], '.3f'):>8}"
    )
    print(f"\n{'prior':<8}{'train s':>9}{'nats/code':>11}{'bits/image':>12}{'64 samples s':>14}{'FID':>8}{'IS':>7}")
    print(
        f"{'':<8}{fmt(wall['prior'], '.0f'):>9}{fmt(p['val/nll'], '.3f'):>11}{fmt(p['val/bits'], '.1f'):>12}"
        f"{fmt(p['sample_s'], '.2f'):>14}{fmt(p.get('fid')):>8}{fmt(p.get('is')):>7}"
    )
    print(
        f"\nFID/IS: {n_samples} samples on the shipped digits classifier ({extractor.dim}-d features), FID against "
        f"{n_samples} training images; the {images} held-out real digits score FID {baseline['fid']:.2f}, "
        f"IS {baseline['is']:.2f} on the same protocol; the prior's train s includes its first stage, "
        "experiment=vqvae_digits_coarse (4x4 codes of 8), when the bench trained it"
    )
