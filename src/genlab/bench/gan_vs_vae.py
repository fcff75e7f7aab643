"""GANs against VAEs on one budget: DCGAN, VAE, VAE-GAN, VQ-VAE + prior and VQGAN + prior, trained on
the embedded digits for the same wall-clock time each, then scored on one protocol in one table.

    python -m genlab.bench gan_vs_vae [--budget 6m] [--prior-share 0.45] [--out DIR]
    python -m genlab.bench gan_vs_vae --rows none --beta-sweep 0.25,0.5,1,2,4   # VAE rate-distortion only
    python -m genlab.bench gan_vs_vae --quick                                 # pipeline check, numbers meaningless
    python -m genlab.bench gan_vs_vae --dcgan-ckpt A --vae-ckpt B ...          # score given runs, train the rest

The budget. Each row trains its recipe (``experiment=<row>_digits``: the same data, 32 px, batch 64)
until ``trainer.max_time`` runs out (``--budget 6m``; ``trainer.max_epochs=-1``): equal compute on
the machine that runs the bench, which is the question a user with one machine asks ("what do I
get for six minutes?"). A two-stage row splits its budget: the prior gets ``--prior-share`` of it,
its autoencoder the rest (the default 0.45 of 6 minutes is the 162 s its recipe was timed at on 2
idle cores: 30 epochs, where the held-out code NLL bottoms out). Wall time depends on the machine,
so the table also prints what each row reached (epochs = training images seen / training images).
``--budget 60ep`` instead gives every row the same number of epochs (the same training images; the
split as above): reproducible anywhere, but not equal compute (a VAE-GAN step costs about three VAE
steps). Validation and checkpoints during training count towards ``max_time`` (Lightning's Timer
starts with training); setup does not, but the table's "train s" is the whole train.py run.

Scores, per row, on ``evaluate.py``'s functions: FID / KID / IS / precision & recall of ``--n``
samples against as many training images on the shipped digits classifier; PSNR / SSIM of
reconstructions of the held-out images (the autoencoder of two-stage rows); the VAE's
importance-weighted NLL bound and the prior's NLL of held-out code maps (two different quantities:
two columns); sampling speed and parameter count. One PNG panel per row, and ``gan_vs_vae.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torchvision.utils import save_image

from genlab import evaluate, surfaces
from genlab.bench import argument_parser
from genlab.bench.autoencoders import QUICK, real_baseline, train_experiment, validate
from genlab.bench.plot import line_plot
from genlab.callbacks.images import to_grid
from genlab.checkpoint import load_model, load_run_config, read_checkpoint
from genlab.config import compose_evaluate
from genlab.errors import UserError
from genlab.generate import pick_device
from genlab.metrics import extractors, keys, quality


@dataclass(frozen=True)
class Row:
    name: str  # option stem: --<name>-ckpt, --<name>-prior-ckpt
    label: str
    experiment: str
    prior: str | None = None  # the second stage's experiment, trained on this row's checkpoint


ROWS = (
    Row("dcgan", "DCGAN", "dcgan_digits"),
    Row("vae", "VAE", "vae_digits"),
    Row("vaegan", "VAE-GAN", "vaegan_digits"),
    Row("vqvae", "VQ-VAE + prior", "vqvae_digits", "vqvae_prior_digits"),
    Row("vqgan", "VQGAN + prior", "vqgan_digits", "vqgan_prior_digits"),
)
# The bench scores every run itself afterwards; periodic checkpoints of a 300-epoch run are clutter.
BENCH = ["callbacks.sample_quality=null", "callbacks.periodic_checkpoint=null"]


@dataclass(frozen=True)
class Budget:
    """What each row gets: ``amount`` seconds of ``trainer.max_time`` (kind ``time``) or epochs."""

    amount: float
    kind: str  # time | epochs

    @classmethod
    def parse(cls, text: str) -> Budget:
        """``6m``, ``90s``, ``1.5min``, ``60ep`` (``epochs``)."""
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|m|min|ep|epochs?)\s*", text)
        if match is None or float(match[1]) <= 0:
            raise ValueError(f"budget {text!r}: write a positive time (90s, 6m) or a number of epochs (60ep)")
        amount, unit = float(match[1]), match[2]
        if unit.startswith("ep"):
            return cls(amount, "epochs")
        return cls(amount * (60 if unit.startswith("m") else 1), "time")

    def stage(self, share: float = 1.0) -> list[str]:
        """train.py overrides that give one stage ``share`` of the budget (at least 1 s or 1 epoch)."""
        if self.kind == "epochs":
            return [f"trainer.max_epochs={max(1, round(self.amount * share))}"]
        seconds = max(1, round(self.amount * share))
        hours, rest = divmod(seconds, 3600)
        return ["trainer.max_epochs=-1", f"++trainer.max_time=00:{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"]

    def __str__(self) -> str:
        return f"{self.amount:g} epochs" if self.kind == "epochs" else f"{self.amount:g} s of wall clock"


@dataclass
class Stage:
    experiment: str
    ckpt: Path
    wall_s: float | None  # None: a given checkpoint, not trained here

    def progress(self) -> tuple[int, float]:
        """(training images seen, epochs = images / training-set size), from the checkpoint."""
        saved = read_checkpoint(self.ckpt)
        images = saved.get("callbacks", {}).get("ImagesSeen", {}).get("images", 0)
        return images, images / len(data_of(self.ckpt).train_set)


@dataclass
class Trained:
    row: Row
    stages: list[Stage] = field(default_factory=list)

    @property
    def sampler(self) -> Path:
        return self.stages[-1].ckpt


def data_of(ckpt: Path):
    datamodule = instantiate(OmegaConf.create(load_run_config(ckpt)["data"]))
    datamodule.setup("fit")
    return datamodule


def train_row(row: Row, out: Path, extra: list[str], budget: Budget | None, share: float, given: dict) -> Trained:
    """The row's checkpoints: given ones as they are, the others trained here on the budget (``None``:
    ``extra`` alone decides, e.g. --quick)."""
    trained = Trained(row)
    first, prior = given.get(row.name), given.get(f"{row.name}_prior")
    if prior is not None:  # the prior checkpoint carries its autoencoder; a given one is only reported
        if first is not None:
            trained.stages.append(Stage(row.experiment, first, None))
        trained.stages.append(Stage(row.prior, prior, None))
        return trained
    if first is None:
        overrides = budget.stage(1 - share if row.prior else 1.0) if budget else []
        first, wall = train_experiment(row.experiment, out, [*BENCH, *overrides, *extra])
        trained.stages.append(Stage(row.experiment, first, wall))
    else:
        trained.stages.append(Stage(row.experiment, first, None))
    if row.prior:
        overrides = budget.stage(share) if budget else []
        ckpt, wall = train_experiment(row.prior, out, [*BENCH, *overrides, *extra, f"model.vqvae_ckpt={first}"])
        trained.stages.append(Stage(row.prior, ckpt, wall))
    return trained


def sampling_rate(model, n: int, batch_size: int) -> float:
    """Images per second of ``model.sample`` over ``n`` images in batches (one untimed warm-up batch)."""
    generator = torch.Generator(device=model.device).manual_seed(0)
    model.sample(min(batch_size, n), generator=generator)
    start = time.perf_counter()
    for i in range(0, n, batch_size):
        model.sample(min(batch_size, n - i), generator=generator)
    return n / (time.perf_counter() - start)


def columns(values: dict[str, float], report: dict, extractor: str, n_val: int, iw_k: int) -> dict[str, float]:
    """The table's columns from ``evaluate``'s protocol-named keys (``fid1000[classifier]``, ``psnr180``,
    ``iw_nll180_k1000``); what the model's surfaces did not give stays out."""
    out = {}
    if "n_fake" in report:
        for stat in ("fid", "kid", "is", "precision", "recall"):
            key = keys.sample_key(stat, report["n_fake"], extractor, stage=None)
            if key in values:
                out[stat] = values[key]
    for metric in ("psnr", "ssim"):
        if f"{metric}{n_val}" in values:
            out[metric] = values[f"{metric}{n_val}"]
    if f"iw_nll{n_val}_k{iw_k}" in values:
        out["iw_nll"] = values[f"iw_nll{n_val}_k{iw_k}"]
    return out


def score_row(trained: Trained, ecfg, device, reference: str) -> tuple[dict, dict[str, torch.Tensor]]:
    """Every number of one row, and its panel's images."""
    sampler = load_model(trained.sampler, map_location=device)
    datamodule = data_of(trained.sampler)
    if quality.describe_dataset(datamodule, "train") != reference:
        raise UserError(
            f"{trained.sampler} was trained on other data than the rest of the table "
            f"({quality.describe_dataset(datamodule, 'train')}); every row needs the embedded digits at 32 px"
        )
    n_val = min(ecfg.n, len(datamodule.val_set))
    values, report = evaluate.model_metrics(ecfg, sampler, datamodule, evaluate.default_metrics(sampler), device)
    extractor = report.get("extractor", {}).get("name", "")
    # Two-stage rows reconstruct with their autoencoder: the given/trained first stage, else the copy
    # inside the prior's checkpoint (the same weights).
    coder = sampler
    if trained.row.prior:
        coder = load_model(trained.stages[0].ckpt, map_location=device) if len(trained.stages) > 1 else sampler.vqvae
        recon_values, recon_report = evaluate.model_metrics(ecfg, coder, datamodule, ["psnr", "ssim"], device)
        values.update(recon_values)
        report.setdefault("skipped", {}).update(recon_report.get("skipped", {}))
    row = {"row": trained.row.label, **columns(values, report, extractor, n_val, ecfg.iw_k)}
    if trained.row.prior:
        own = validate(sampler, datamodule.val_dataloader())
        row["code_nll"], row["code_bits"] = own["val/nll"], own["val/bits"]
    rate_n = 20 if ecfg.n < 100 else 500
    row["samples_per_s"] = sampling_rate(sampler, rate_n, min(100, rate_n))
    row["params_m"] = sum(p.numel() for p in sampler.parameters()) / 1e6
    walls = [s.wall_s for s in trained.stages]
    row["train_s"] = None if None in walls else sum(walls)
    progress = [s.progress() for s in trained.stages]
    row["epochs"] = "+".join(rounded(epochs) for _, epochs in progress)
    row["kimg"] = "+".join(rounded(images / 1000) for images, _ in progress)
    row["given"] = None in walls
    row["metrics"], row["report"] = values, report
    row["ckpts"] = [str(s.ckpt) for s in trained.stages]
    generator = torch.Generator(device=device).manual_seed(0)
    panels = {"samples": sampler.sample(64, generator=generator)}
    if surfaces.can(coder, surfaces.Autoencoder):
        originals = torch.cat(list(quality.real_batches(datamodule.val_set, 32, 32))).to(device)
        panels["reconstructions"] = interleave(originals, coder.reconstruct(originals), 8)
    return row, panels


def rounded(x: float) -> str:
    """Whole numbers from 10 up, two significant digits below (a --quick run reaches 0.12 epochs)."""
    return f"{x:.0f}" if x >= 10 else f"{x:.2g}"


def interleave(originals: torch.Tensor, recon: torch.Tensor, per_row: int) -> torch.Tensor:
    """Rows of ``per_row`` originals each followed by a row of their reconstructions."""
    if len(originals) % per_row or originals.shape != recon.shape:
        raise ValueError(f"need matching batches of whole rows of {per_row}: {originals.shape}, {recon.shape}")
    rows = [images.cpu().unflatten(0, (-1, per_row)) for images in (originals, recon)]
    return torch.stack(rows, dim=1).flatten(0, 2)


def write_panel(path: Path, panels: dict[str, torch.Tensor]) -> None:
    """Samples (8 × 8) and, for autoencoders, held-out originals over their reconstructions, side by side."""
    grids = [to_grid(images, 8) for images in panels.values()]
    height = max(g.shape[1] for g in grids)
    gap = torch.ones(3, height, 12)
    parts = []
    for grid in grids:
        parts += [torch.nn.functional.pad(grid, (0, 0, 0, height - grid.shape[1]), value=1.0), gap]
    save_image(torch.cat(parts[:-1], dim=2), path)


# (key, header, format): formats apply to numbers; strings print as they are; missing values print "-".
COLUMNS = (
    ("row", "model", ""),
    ("train_s", "train s", ".0f"),
    ("epochs", "epochs", ""),
    ("kimg", "kimg", ""),
    ("fid", "FID", ".2f"),
    ("kid", "KID", ".4f"),
    ("is", "IS", ".2f"),
    ("precision", "prec", ".3f"),
    ("recall", "recall", ".3f"),
    ("psnr", "PSNR dB", ".2f"),
    ("ssim", "SSIM", ".3f"),
    ("iw_nll", "IW-NLL(1)", ".1f"),
    ("code_nll", "code NLL(2)", ".3f"),
    ("samples_per_s", "samples/s", ".0f"),
    ("params_m", "params M", ".2f"),
)


def cell(value, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return value if isinstance(value, str) else format(value, spec)


def table(rows: list[dict], columns=COLUMNS) -> str:
    """Fixed-width text table, one line per row dict; a column a row lacks prints ``-``."""
    cells = [[header for _, header, _ in columns]]
    cells += [[cell(row.get(key), spec) for key, _, spec in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))) for line in cells
    ]
    return "\n".join(lines)


SWEEP_COLUMNS = (
    ("beta", "beta", "g"),
    ("train_s", "train s", ".0f"),
    ("epochs", "epochs", ""),
    ("rate", "rate KL nats", ".2f"),
    ("distortion", "distortion nats", ".2f"),
    ("nelbo", "-ELBO nats", ".2f"),
    ("psnr", "PSNR dB", ".2f"),
    ("active_units", "active units", ".0f"),
)


def beta_sweep(betas: list[float], out: Path, extra: list[str], budget: Budget | None, ecfg, device) -> list[dict]:
    """``experiment=vae_digits model.beta=<β>`` for each β (what ``python train.py -m model.beta=...``
    runs), each scored on the held-out images: rate = KL(q(z|x) ‖ p(z)), distortion = −log p(x|z) for
    one posterior sample (both nats/image, as ``val/kl`` and ``val/recon``), PSNR of the reconstructions."""
    points = []
    for beta in sorted(betas):
        overrides = [*BENCH, *(budget.stage() if budget else []), *extra, f"model.beta={beta}"]
        ckpt, wall = train_experiment("vae_digits", out / f"beta{beta:g}", overrides)
        vae, datamodule = load_model(ckpt, map_location=device), data_of(ckpt)
        own = validate(vae, datamodule.val_dataloader())
        values, _ = evaluate.model_metrics(ecfg, vae, datamodule, ["psnr"], device)
        images, epochs = Stage("vae_digits", ckpt, wall).progress()
        points.append(
            {
                "beta": beta,
                "train_s": wall,
                "epochs": rounded(epochs),
                "rate": own["val/kl"],
                "distortion": own["val/recon"],
                "nelbo": own["val/nelbo"],
                "psnr": values[f"psnr{min(ecfg.n, len(datamodule.val_set))}"],
                "active_units": own["val/active_units"],
                "ckpt": str(ckpt),
            }
        )
    return points


def plot_rate_distortion(points: list[dict], path: Path) -> Path:
    return line_plot(
        path,
        [(p["rate"], p["distortion"]) for p in points],
        [f"beta={p['beta']:g}" for p in points],  # ASCII: Pillow's built-in font has no Greek
        title="beta-VAE on digits: rate-distortion of held-out images",
        xlabel="rate: KL(q(z|x) || p(z)), nats/image",
        ylabel="distortion: -log p(x|z), nats/image",
    )


def budget_arg(text: str) -> Budget:
    try:
        return Budget.parse(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def betas_arg(text: str) -> list[float]:
    try:
        betas = [float(b) for b in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: write β values separated by commas, e.g. 0.25,0.5,1,2,4") from None
    if not all(math.isfinite(b) and b > 0 for b in betas):
        raise argparse.ArgumentTypeError(f"{text!r}: every β must be a positive number")
    return betas


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argument_parser("gan_vs_vae", __doc__)
    parser.add_argument("--budget", type=budget_arg, default=Budget.parse("6m"), help="per row: 6m, 300s or 60ep")
    parser.add_argument("--prior-share", type=float, default=0.45, help="the prior's share of a two-stage row's budget")
    parser.add_argument("--rows", default=",".join(r.name for r in ROWS), help="comma list of rows, or none")
    parser.add_argument("--beta-sweep", type=betas_arg, metavar="B,B,...", help="also train the VAE per β")
    parser.add_argument("--sweep-budget", type=budget_arg, default=Budget.parse("100ep"), help="per β (the recipe's)")
    parser.add_argument(
        "--quick", action="store_true", help="3 batches per model, 32 samples: checks the pipeline only"
    )
    parser.add_argument("--n", type=int, default=None, help="samples for FID/KID/IS/P&R (default 1000)")
    parser.add_argument("--iw-k", type=int, default=None, help="VAE importance samples (default 1000)")
    parser.add_argument("--accelerator", choices=["cpu", "auto"], default="cpu", help="every row trains on this")
    parser.add_argument("--out", type=Path, default=None, help="runs, panels and JSON (default: a temporary dir)")
    parser.add_argument(
        "--override", action="append", default=[], metavar="KEY=VALUE", help="train.py override for every run"
    )
    for row in ROWS:
        parser.add_argument(
            f"--{row.name}-ckpt", type=Path, help=f"score this run instead of training {row.experiment}"
        )
        if row.prior:
            parser.add_argument(f"--{row.name}-prior-ckpt", type=Path, help=f"score this {row.prior} run")
    args = parser.parse_args(argv)
    if not 0 < args.prior_share < 1:
        parser.error(f"--prior-share {args.prior_share}: must lie strictly between 0 and 1")
    names = [r.name for r in ROWS]
    args.rows = [] if args.rows == "none" else [r.strip() for r in args.rows.split(",")]
    unknown = [r for r in args.rows if r not in names]
    if unknown:
        parser.error(f"--rows: unknown row(s) {unknown}; choose from {','.join(names)} (or none)")
    if not args.rows and not args.beta_sweep:
        parser.error("--rows none leaves nothing to do; add --beta-sweep 0.25,0.5,1,2,4")
    for option, path in vars(args).items():
        if option.endswith("_ckpt") and path is not None and not path.is_file():
            parser.error(f"--{option.replace('_', '-')} {path}: no such file (a run's checkpoints/last.ckpt)")
    return args


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="genlab-bench-gan-vs-vae-"))
    out.mkdir(parents=True, exist_ok=True)
    extra = [f"trainer.accelerator={args.accelerator}", *(QUICK if args.quick else []), *args.override]
    budget, sweep_budget = (None, None) if args.quick else (args.budget, args.sweep_budget)
    n, iw_k = args.n or (32 if args.quick else 1000), args.iw_k or (4 if args.quick else 1000)
    ecfg = compose_evaluate([f"n={n}", f"iw_k={iw_k}", f"allow_few_samples={str(args.quick).lower()}"])
    device = torch.device("cpu") if args.accelerator == "cpu" else pick_device("auto")
    given = {k[: -len("_ckpt")]: v for k, v in vars(args).items() if k.endswith("_ckpt") and v is not None}
    threads = torch.get_num_threads()
    command = "python -m genlab.bench gan_vs_vae " + " ".join(argv)
    result: dict = {"command": command, "quick": args.quick, "threads": threads, "torch": torch.__version__}

    if args.rows:
        trained = [train_row(r, out, extra, budget, args.prior_share, given) for r in ROWS if r.name in args.rows]
        reference = data_of(trained[0].sampler)
        rows = []
        for item in trained:
            start = time.perf_counter()
            row, panels = score_row(item, ecfg, device, quality.describe_dataset(reference, "train"))
            row["score_s"] = time.perf_counter() - start  # the JSON's: what scoring costs beside training
            write_panel(out / f"panel_{item.row.name}.png", panels)
            rows.append(row)
        extractor = extractors.for_data(ecfg.extractor, reference)
        baseline = real_baseline(trained[0].sampler, extractor, n)
        n_train, n_val = len(reference.train_set), len(reference.val_set)
        how = f"{budget} per row (a prior gets {args.prior_share:.0%} of its row's)" if budget else "--quick: 3 batches"
        print(
            f"\nGAN vs VAE on the embedded digits: 32 px, {n_train} training / {n_val} held-out images, {threads} threads"
        )
        print(f"budget: {how}; on {args.accelerator}; epochs = training images seen / {n_train}, autoencoder+prior")
        print(("(--quick: pipeline check, numbers meaningless)\n" if args.quick else "") + table(rows))
        print(
            f"FID/KID/IS/prec/recall: {n} samples vs {n} training images on the {extractor.name} extractor "
            f"({extractor.dim}-d); P&R with k=3 neighbours. The {n_val} held-out real digits score FID "
            f"{baseline['fid']:.2f} (fewer images: biased upwards), IS {baseline['is']:.2f}.\nPSNR/SSIM: reconstructions of the {min(n, n_val)} held-out images "
            "(two-stage rows: their autoencoder).\n"
            f"(1) VAE only: importance-weighted bound on -log p(x), k={iw_k} (Burda et al. 2015), nats/image under "
            "its Bernoulli likelihood of [0, 1] pixels.\n"
            "(2) priors only: -log p(c) per code of the held-out images' code maps, nats/code: a likelihood of one\n"
            "    autoencoder's codes, not of images; comparable neither with (1) nor across autoencoders.\n"
            "samples/s: sample() in batches of 100; params: every weight trained for the row (discriminators, "
            f"encoders, both stages). Panels: {out}/panel_<row>.png"
        )
        result.update(budget=str(budget) if budget else "quick", prior_share=args.prior_share, rows=rows)
        result["real_baseline"] = {"n_held_out": n_val, **baseline}
    if args.beta_sweep:
        points = beta_sweep(args.beta_sweep, out / "beta_sweep", extra, sweep_budget, ecfg, device)
        plot = plot_rate_distortion(points, out / "rate_distortion.png")
        print(f"\nVAE rate-distortion, {sweep_budget or '--quick'} per β, held-out images (nats/image)")
        print(table(points, SWEEP_COLUMNS))
        print(f"rate = KL(q(z|x) || p(z)); distortion = -log p(x|z), one posterior sample. Plot: {plot}")
        result.update(sweep_budget=str(sweep_budget) if sweep_budget else "quick", beta_sweep=points)
    (out / "gan_vs_vae.json").write_text(json.dumps(result, indent=2, default=str))
    print(f"wrote {out / 'gan_vs_vae.json'}\nreproduce: {result['command']}")
