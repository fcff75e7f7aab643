"""Metric costs on CPU (or the current GPU): Inception feature throughput of the offline extractor
vs torchmetrics' own extractor on the same images, and an uncached vs cached FID evaluation.

    python -m genlab.bench metrics            # 64 images per extractor, FID on n=1000 (classifier) / 128 (inception)
    python -m genlab.bench metrics --quick    # a smoke run: 8 images, n=200 / 16

torchmetrics' ``FrechetInceptionDistance`` builds ``NoTrainInceptionV3`` (torch-fidelity's network) with
the standard weights, which need a network; here it gets the same converted fid-helper weights through
its ``feature_extractor_weights_path``, so both rows run the identical network and differ only in
preprocessing (torchmetrics' default antialiased resize vs our TF1-compatible one).
"""

from __future__ import annotations

import tempfile
import time

import torch

from genlab.bench import argument_parser
from genlab.data.embedded import load_digits
from genlab.metrics import functional as M
from genlab.metrics import inception, quality
from genlab.metrics.extractors import Classifier, Inception, to_uint8


def throughput(fn, images: torch.Tensor, batch: int) -> tuple[float, torch.Tensor]:
    fn(images[:batch])  # warm-up: allocator, first-touch, oneDNN kernel selection
    start = time.perf_counter()
    out = torch.cat([fn(chunk) for chunk in images.split(batch)])
    return len(images) / (time.perf_counter() - start), out


def fid_time(extractor, dataset: torch.Tensor, fake: torch.Tensor, n: int, cache_dir: str, batch: int) -> float:
    """One evaluation as evaluate.py does it: real features (from cache when present), fake features, FID."""
    start = time.perf_counter()
    cache = quality.RealStatsCache(cache_dir)
    path = cache.path("bench-digits", "train", 32, extractor, n)
    real, _ = cache.get(path, lambda: quality.extract(extractor, dataset[:n].split(batch)))
    fake_features = quality.extract(extractor, fake[:n].split(batch))
    M.fid(real.features, fake_features.features)
    return time.perf_counter() - start


def main(argv: list[str]) -> None:
    parser = argument_parser("metrics", __doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the command, numbers are noise")
    parser.add_argument("--images", type=int, default=64, help="images per Inception throughput row")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--n-inception", type=int, default=128, help="n of the Inception FID evaluation")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    n_images, n_cls, n_inc = (8, 200, 16) if args.quick else (args.images, 1000, args.n_inception)
    batch = min(args.batch, n_images)
    device = torch.device(args.device)
    torch.manual_seed(0)

    digits, _ = load_digits(32)
    images = digits[: max(n_images, 2 * n_cls)].expand(-1, 3, -1, -1).contiguous().to(device)
    rows = []
    ours = Inception("fid-helper").to(device)
    rate, f_ours = throughput(lambda x: ours(x)["features"], images[:n_images], batch)
    rows.append(("genlab Inception (fid-helper weights, TF1 resize)", rate, 0.0))

    from torchmetrics.image.fid import NoTrainInceptionV3

    weights = str(inception.converted_fid_helper_file(inception.fid_helper_file()))
    tm = NoTrainInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=weights).to(device)
    rate, f_tm = throughput(lambda x: tm(to_uint8(x)), images[:n_images], batch)
    rows.append(
        ("torchmetrics NoTrainInceptionV3 (same weights, its default antialias)", rate, (f_tm - f_ours).abs().max())
    )

    scripted = torch.jit.load(str(inception.fid_helper_file()), map_location=device).eval()

    @torch.no_grad()
    def run_scripted(x):
        from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

        u8 = to_uint8(x).float()
        return scripted(
            (interpolate_bilinear_2d_like_tensorflow1x(u8, size=(299, 299), align_corners=False) - 128) / 128
        )

    rate, f_ts = throughput(run_scripted, images[:n_images], batch)
    rows.append(("fid-helper TorchScript default_1.pt (TF1 resize)", rate, (f_ts - f_ours).abs().max()))

    classifier = Classifier("digits").to(device)
    grey = digits[: 2 * n_cls].to(device)
    rate, _ = throughput(lambda x: classifier(x)["features"], grey, 250)
    rows.append(("genlab classifier (digits, 32 px)", rate, None))  # other features: nothing to compare

    print(
        f"\nfeature throughput on {device} ({torch.get_num_threads()} threads), {n_images} digit images (classifier: {len(grey)})"
    )
    print(f"{'extractor':<72} {'images/s':>9} {'max |Δ feature| vs genlab':>27}")
    for name, rate, diff in rows:
        print(f"{name:<72} {rate:>9.1f} {'-' if diff is None else format(float(diff), '.3g'):>27}")

    print("\nFID evaluation time (real features extracted + cached, then read from the cache)")
    print(f"{'extractor':<12} {'n':>6} {'uncached s':>11} {'cached s':>9}")
    with tempfile.TemporaryDirectory() as cache_dir:
        for name, ext, data, n in (
            ("classifier", classifier, digits.to(device), n_cls),
            ("inception", ours, digits.expand(-1, 3, -1, -1).to(device), n_inc),
        ):
            fake = data.flip(0)  # other digits than the reals: a non-trivial FID, same cost
            uncached = fid_time(ext, data, fake, n, cache_dir, args.batch)
            cached = fid_time(ext, data, fake, n, cache_dir, args.batch)
            print(f"{name:<12} {n:>6} {uncached:>11.2f} {cached:>9.2f}")
    print("\nreproduce: python -m genlab.bench metrics" + (" --quick" if args.quick else ""))
