"""Train the ``classifier`` extractor's weights on an embedded labelled dataset, reproducibly.

    python -m genlab.metrics.train_classifier --data digits   # -> src/genlab/assets/classifier_digits.pt
    python -m genlab.metrics.train_classifier --data shapes   # 27 classes: shape x colour

Seeded, single-threaded, CPU: the same command writes the same weights. Light augmentation
(shifts, small rotations and scalings, noise) keeps the features meaningful on imperfect samples.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from genlab.data.embedded import DigitsDataModule, ShapesDataModule
from genlab.metrics.classifier import DomainClassifier

DATASETS = {
    # name -> (datamodule, classes, label -> class index)
    "digits": (lambda: DigitsDataModule(image_size=32, batch_size=64), 10, lambda y: y),
    "shapes": (lambda: ShapesDataModule(image_size=32, batch_size=64), 27, lambda y: y[:, 0] * 9 + y[:, 1]),
}


def tensors(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = zip(*(dataset[i] for i in range(len(dataset))))
    return torch.stack(images), torch.stack([torch.as_tensor(y) for y in labels])


@torch.no_grad()
def accuracy(net: DomainClassifier, x: torch.Tensor, y: torch.Tensor) -> float:
    net.eval()
    return float((net(x)[1].argmax(1) == y).float().mean())


def train(data: str, epochs: int, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    make, classes, to_class = DATASETS[data]
    datamodule = make()
    datamodule.setup("fit")
    x_train, y_train = tensors(datamodule.train_set)
    x_val, y_val = tensors(datamodule.val_set)
    y_train, y_val = to_class(y_train), to_class(y_val)
    config = {"channels": x_train.shape[1], "classes": classes, "image_size": x_train.shape[-1]}
    net = DomainClassifier(**config)
    augment = v2.RandomAffine(degrees=10, translate=(0.1, 0.1), scale=(0.9, 1.1), fill=-1.0)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=epochs * (len(x_train) // 64))
    for epoch in range(epochs):
        net.train()
        order = torch.randperm(len(x_train))
        for i in range(0, len(order) - 63, 64):
            idx = order[i : i + 64]
            x = torch.stack([augment(img) for img in x_train[idx]])
            x = (x + 0.05 * torch.randn_like(x)).clamp(-1, 1)
            loss = F.cross_entropy(net(x)[1], y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        print(f"epoch {epoch + 1}/{epochs}  loss {loss.item():.3f}  val accuracy {accuracy(net, x_val, y_val):.3f}")
    return {
        "state_dict": net.state_dict(),
        "config": config,
        "dataset": f"{data} (embedded, genlab.data.embedded, 32 px)",
        "val_accuracy": accuracy(net, x_val, y_val),
        "recipe": f"python -m genlab.metrics.train_classifier --data {data} --epochs {epochs} --seed {seed}",
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m genlab.metrics.train_classifier", description=__doc__)
    parser.add_argument("--data", choices=sorted(DATASETS), default="digits")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="default: the package's assets folder")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # bitwise reproducible on CPU
    torch.use_deterministic_algorithms(True)
    saved = train(args.data, args.epochs, args.seed)
    out = args.out or Path(__file__).resolve().parents[1] / "assets" / f"classifier_{args.data}.pt"
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(saved, out)
    print(f"wrote {out} ({out.stat().st_size / 1e3:.0f} kB), val accuracy {saved['val_accuracy']:.3f}")


if __name__ == "__main__":
    main()
