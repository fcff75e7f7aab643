"""The metrics themselves, as pure functions of features, logits or image pairs (float64 inside).

Sample quality (features of real and generated images from one extractor):

    FID  = ‖μ_r − μ_g‖² + Tr(Σ_r + Σ_g − 2 (Σ_r^½ Σ_g Σ_r^½)^½)          (Heusel et al. 2017, arXiv:1706.08500)
    KID  = unbiased MMD² with k(x, y) = (xᵀy / d + 1)³, mean ± std over subsets
                                                                      (Bińkowski et al. 2018, arXiv:1801.01401)
    IS   = exp E_x[KL(p(y|x) ‖ p(y))], mean ± std over splits          (Salimans et al. 2016, arXiv:1606.03498)
    P&R  = share of fakes inside the real k-NN balls, and of reals inside the fake ones
                                                                      (Kynkäänniemi et al. 2019, arXiv:1904.06991)
    copy = share of fakes nearer to a training image than 95% of held-out real images are (a model that
           generalises: ~5%), and the Mann-Whitney z of fakes' against held-out images' nearest-training
           distances (< 0: nearer than unseen data, i.e. copying)   (Meehan et al. 2020, arXiv:2004.05675)

Reconstruction (images in [-1, 1], so the data range is 2): MSE, PSNR, SSIM, LPIPS.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from genlab.errors import ConfigError


def gaussian_stats(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and unbiased covariance (float64) of [N, D] features."""
    x = features.double()
    mu = x.mean(dim=0)
    centred = x - mu
    return mu, centred.T @ centred / (x.shape[0] - 1)


def _sqrt_psd(matrix: torch.Tensor) -> torch.Tensor:
    eigvals, eigvecs = torch.linalg.eigh(matrix)
    return (eigvecs * eigvals.clamp(min=0).sqrt()) @ eigvecs.T


def frechet_distance(mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor, sigma2: torch.Tensor) -> float:
    """Fréchet (2-Wasserstein) distance² between N(μ1, Σ1) and N(μ2, Σ2).

    Tr((Σ1 Σ2)^½) is taken as Σ sqrt(eig(Σ1^½ Σ2 Σ1^½)): that matrix is symmetric PSD with the same
    eigenvalues as Σ1 Σ2, so ``eigvalsh`` applies and no complex square root or ``sqrtm`` iteration
    is needed (stable even for the singular covariances of small sample sets).
    """
    mu1, sigma1, mu2, sigma2 = (t.double() for t in (mu1, sigma1, mu2, sigma2))
    root1 = _sqrt_psd(sigma1)
    middle = root1 @ sigma2 @ root1
    trace_sqrt = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
    return float((mu1 - mu2).square().sum() + sigma1.trace() + sigma2.trace() - 2 * trace_sqrt)


def fid(real: torch.Tensor, fake: torch.Tensor) -> float:
    return frechet_distance(*gaussian_stats(real), *gaussian_stats(fake))


def polynomial_mmd2(x: torch.Tensor, y: torch.Tensor, degree: int = 3, coef: float = 1.0) -> torch.Tensor:
    """Unbiased MMD² of two equally sized sets with k(a, b) = (aᵀb / d + coef)^degree."""
    m, d = x.shape
    k_xx = (x @ x.T / d + coef) ** degree
    k_yy = (y @ y.T / d + coef) ** degree
    k_xy = (x @ y.T / d + coef) ** degree
    off_diag = (k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()) / (m * (m - 1))
    return off_diag - 2 * k_xy.mean()


def kid(
    real: torch.Tensor,
    fake: torch.Tensor,
    subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
    degree: int = 3,
) -> tuple[float, float]:
    """KID mean and std over ``subsets`` random subsets of ``subset_size`` from each set."""
    check_kid(min(len(real), len(fake)), subset_size)
    x, y = real.double(), fake.double()
    if subset_size == len(x) == len(y):
        # Every "subset" is then a permutation of both whole sets, and the estimate does not depend on
        # the order: all subsets give the same value (std 0); compute it once.
        return float(polynomial_mmd2(x, y, degree)), 0.0
    g = torch.Generator().manual_seed(seed)
    values = torch.stack(
        [
            polynomial_mmd2(
                x[torch.randperm(len(x), generator=g)[:subset_size].to(x.device)],
                y[torch.randperm(len(y), generator=g)[:subset_size].to(y.device)],
                degree,
            )
            for _ in range(subsets)
        ]
    )
    return float(values.mean()), float(values.std(unbiased=False)) if subsets > 1 else 0.0


def inception_score(logits: torch.Tensor, splits: int = 10) -> tuple[float, float]:
    """IS mean and std over ``splits`` consecutive chunks of the [N, K] class logits."""
    if len(logits) < splits:
        raise ValueError(f"IS over {splits} splits needs at least {splits} samples, got {len(logits)}")
    scores = []
    for chunk in logits.double().chunk(splits):
        log_p = F.log_softmax(chunk, dim=1)
        log_marginal = torch.logsumexp(log_p, dim=0) - torch.log(torch.tensor(float(len(chunk)), dtype=torch.float64))
        kl = (log_p.exp() * (log_p - log_marginal)).sum(dim=1).mean()
        scores.append(kl.exp())
    scores = torch.stack(scores)
    return float(scores.mean()), float(scores.std(unbiased=False)) if splits > 1 else 0.0


CHUNK = 4096  # rows of a distance matrix at once: 50k x 50k doubles would not fit in memory


def _knn_radii(x: torch.Tensor, k: int) -> torch.Tensor:
    # k+1: the nearest neighbour of a point in its own set is itself, at distance 0.
    return torch.cat([torch.cdist(c, x).kthvalue(k + 1, dim=1).values for c in x.split(CHUNK)])


def _covered(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor) -> torch.Tensor:
    """Whether each point lies in at least one ball (centre, radius)."""
    return torch.cat([(torch.cdist(c, centres) <= radii[None, :]).any(dim=1) for c in points.split(CHUNK)])


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall: a sample is covered by the other set's manifold when it lies
    within the k-NN radius of at least one of that set's points."""
    if min(len(real), len(fake)) <= k:
        raise ValueError(f"precision/recall with k={k} needs more than {k} samples per set")
    x, y = real.double(), fake.double()
    precision = _covered(y, x, _knn_radii(x, k)).double().mean()
    recall = _covered(x, y, _knn_radii(y, k)).double().mean()
    return float(precision), float(recall)


def nearest_distance(points: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Euclidean distance of each point to its nearest neighbour in ``reference``."""
    return torch.cat([torch.cdist(c, reference).min(dim=1).values for c in points.split(CHUNK)])


def copying(train: torch.Tensor, held_out: torch.Tensor, fake: torch.Tensor) -> tuple[float, float]:
    """(share, z): how many fakes sit nearer to a training image than held-out real images do.

    share: fakes nearer to their nearest training image than the 5th percentile of the held-out
    images' nearest-training distances (a model no closer to its training data than unseen data
    is: ~0.05; one that copies: up to 1). z: Meehan et al.'s Z_U, the Mann-Whitney U statistic of
    the fakes' against the held-out images' distances, standardised (ties count half); well below 0
    (e.g. < -3) is copying, above 0 samples farther from the data than unseen images are."""
    if len(held_out) < 2 or len(fake) < 1:
        raise ValueError(f"copying needs >= 2 held-out images and >= 1 fake, got {len(held_out)} and {len(fake)}")
    x = train.double()
    d_fake, d_held = nearest_distance(fake.double(), x), nearest_distance(held_out.double(), x)
    share = (d_fake < d_held.quantile(0.05)).double().mean()
    ordered = d_held.sort().values
    below = torch.searchsorted(ordered, d_fake, right=False)
    ties = torch.searchsorted(ordered, d_fake, right=True) - below
    m, n = len(d_fake), len(d_held)
    u = (below + 0.5 * ties).sum()  # pairs (fake, held) with the fake farther from the training data
    z = (u - m * n / 2) / (m * n * (m + n + 1) / 12) ** 0.5
    return float(share), float(z)


def check_fid(n: int, dim: int, allow_singular: bool = False) -> None:
    if n < 2:
        raise ConfigError(f"FID needs at least 2 samples per set, got {n}")
    if n <= dim and not allow_singular:
        raise ConfigError(
            f"FID with n={n} samples of {dim}-dim features: the covariance is singular and the number is not "
            f"comparable to anything; use n > {dim} (the literature uses 50000 for Inception), or set "
            "allow_few_samples=true to compute it anyway"
        )


def check_kid(n: int, subset_size: int) -> None:
    if subset_size < 2 or subset_size > n:
        raise ConfigError(f"KID subset size {subset_size} must be in [2, n={n}]; lower kid_subset_size")


# ----------------------------------------------------------------------------- reconstruction
def mse(recon: torch.Tensor, target: torch.Tensor) -> float:
    """Mean squared error of images in [-1, 1]."""
    return float(F.mse_loss(recon.double(), target.double()))


def l1(recon: torch.Tensor, target: torch.Tensor) -> float:
    """Mean absolute error of images in [-1, 1] (the restoration literature's L1)."""
    return float((recon.double() - target.double()).abs().mean())


def psnr(recon: torch.Tensor, target: torch.Tensor) -> float:
    """PSNR in dB for images in [-1, 1] (peak-to-peak range 2), averaged over images."""
    from torchmetrics.functional.image import peak_signal_noise_ratio

    return float(
        peak_signal_noise_ratio(
            recon.double(), target.double(), data_range=(-1.0, 1.0), reduction="elementwise_mean", dim=(1, 2, 3)
        )
    )


def ssim(recon: torch.Tensor, target: torch.Tensor) -> float:
    """SSIM (Wang et al. 2004; 11x11 Gaussian window, σ = 1.5) for images in [-1, 1], computed on
    intensities in [0, 1]: its luminance term (2 μ_x μ_y + C1) / (μ_x² + μ_y² + C1) is not
    shift-invariant, so SSIM is defined on non-negative intensities, not on [-1, 1]."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    recon, target = ((t.double().clamp(-1, 1) + 1) / 2 for t in (recon, target))
    return float(structural_similarity_index_measure(recon, target, data_range=1.0))


# torchvision backbones LPIPS builds on (torchmetrics ships the linear layers on top of them).
LPIPS_BACKBONES = {
    "alex": "alexnet-owt-7be5be79.pth",
    "vgg": "vgg16-397923af.pth",
    "squeeze": "squeezenet1_1-b8a52dc0.pth",
}


def lpips_weights(net: str = "alex"):
    """Where torchvision keeps (or would download) the ImageNet backbone LPIPS builds on."""
    from pathlib import Path

    return Path(torch.hub.get_dir()) / "checkpoints" / LPIPS_BACKBONES[net]


def lpips(recon: torch.Tensor, target: torch.Tensor, net: str = "alex", allow_download: bool = False) -> float:
    """LPIPS (Zhang et al. 2018, arXiv:1801.03924) of images in [-1, 1], when the backbone's ImageNet
    weights are on this machine (or ``allow_download``); otherwise a message saying how to get them.
    Grey images are compared as RGB (the network takes three channels), in float32 (its weights')."""
    weights = lpips_weights(net)
    if not weights.is_file() and not allow_download:
        raise RuntimeError(
            f"LPIPS needs torchvision's {net} ImageNet weights at {weights}, which are not on this machine; "
            "copy the file there, or call lpips(..., allow_download=True) once with a network, or leave LPIPS out"
        )
    from torchmetrics.functional.image.lpips import learned_perceptual_image_patch_similarity

    recon, target = (t.float().clamp(-1, 1).expand(-1, 3, -1, -1) for t in (recon, target))
    return float(learned_perceptual_image_patch_similarity(recon, target, net_type=net))
