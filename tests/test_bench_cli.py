"""``python -m genlab.bench <what> --help`` lists that bench's own options."""

import os
import sys
from pathlib import Path

import pytest

from genlab.bench.__main__ import BENCHES
from genlab.bench.__main__ import main as bench_main
from tests.conftest import ROOT

# Options the README and the benches' docstrings send users to, per bench.
OPTIONS = {
    "autoencoders": ["--quick", "--override", "--iw-k", "--vae-ckpt"],
    "cyclegan": ["--authors-code", "--quick", "--sizes", "--precision", "--no-plain", "--shapes-ckpt", "--margin"],
    "dcgan": ["--samples-of", "--override", "--epochs", "--n"],
    "gan_vs_vae": [
        "--budget",
        "--prior-share",
        "--beta-sweep",
        "--sweep-budget",
        "--quick",
        "--out",
        "--vqgan-prior-ckpt",
    ],
    "layout": ["--recipes", "--batches", "--repeats", "--override"],
    "metrics": ["--quick", "--images", "--n-inception"],
    "restoration": ["--inpaint-ckpt", "--denoise-ckpt", "--sr-ckpt", "--train", "--tasks", "--threads", "--out"],
    "stylegan2": ["--authors-code", "--rosinality-code", "--quick", "--configs", "--try", "--iters"],
}


@pytest.mark.parametrize("what", sorted(BENCHES))
def test_each_bench_help_lists_its_own_options(what, capsys):
    with pytest.raises(SystemExit) as done:
        bench_main([what, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: python -m genlab.bench {what} ")
    for option in OPTIONS[what]:
        assert option in out, f"{what} --help does not list {option}"
    assert "{" + ",".join(sorted(BENCHES)) + "}" not in out  # not the top-level help


def test_top_level_help_names_every_bench(capsys):
    with pytest.raises(SystemExit) as done:
        bench_main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert all(f"  {what} " in out for what in BENCHES)
    assert "python -m genlab.bench <what> --help" in out


def test_the_command_line_reaches_the_bench_help():
    import subprocess

    done = subprocess.run(
        [sys.executable, "-m", "genlab.bench", "cyclegan", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "--authors-code DIR" in done.stdout and "--quick" in done.stdout  # (cyclegan.py imports fast)


# A stand-in for a checkout of junyanz/pytorch-CycleGAN-and-pix2pix (written here, never their code):
# the same module layout and option-parser contract (BaseOptions.initialize(parser), TrainOptions().parse()
# reading sys.argv and deriving fields after parsing), in two generations: until 2024 the parser turns
# --gpu_ids into a list that BaseModel reads; since 2025 the parser derives opt.device and has no --gpu_ids.
FAKE_OPTIONS = """
import argparse
import os
import sys
from pathlib import Path

import torch


class TrainOptions:
    def initialize(self, parser):
        parser.add_argument("--dataroot", required=True)
        parser.add_argument("--name", default="experiment_name")
        parser.add_argument("--checkpoints_dir", default="./checkpoints")
        parser.add_argument("--model", default="cycle_gan")
        parser.add_argument("--netG", default="unet_256")
        if GENERATION == "gpu_ids":
            parser.add_argument("--gpu_ids", default="0")
        return parser

    def parse(self):
        opt = self.initialize(argparse.ArgumentParser()).parse_args(sys.argv[1:])
        opt.isTrain = True
        if GENERATION == "gpu_ids":
            opt.gpu_ids = [int(i) for i in opt.gpu_ids.split(",") if int(i) >= 0]
        else:
            opt.device = torch.device("cuda:0")  # what it picks on a GPU machine; the bench times the CPU
        print("options parsed")  # their parser prints; the bench's stdout must stay JSON
        return opt
"""

FAKE_MODEL = """
import json
import os

import torch


class CycleGANModel:
    def __init__(self, opt):
        if GENERATION == "gpu_ids":
            self.device = torch.device(f"cuda:{opt.gpu_ids[0]}") if opt.gpu_ids else torch.device("cpu")
        else:
            self.device = opt.device  # AttributeError on an options object their parser did not build
        self.record = {"isTrain": opt.isTrain, "netG": opt.netG, "model_dir": os.path.join(opt.checkpoints_dir, opt.name)}
        self.record.update(device=str(self.device), steps=0)

    def set_input(self, data):
        self.real_A, self.real_B = data["A"].to(self.device), data["B"].to(self.device)

    def optimize_parameters(self):
        self.record["steps"] += 1
        self.record["shape"] = list(self.real_A.shape)
        with open(os.environ["FAKE_AUTHORS_RECORD"], "w") as f:
            json.dump(self.record, f)
"""


def write_fake_authors_checkout(root, generation: str) -> None:
    for package, module, body in (
        ("options", "train_options", FAKE_OPTIONS),
        ("models", "cycle_gan_model", FAKE_MODEL),
    ):
        (root / package).mkdir(parents=True)
        (root / package / "__init__.py").write_text("")
        (root / package / f"{module}.py").write_text(f"GENERATION = {generation!r}\n" + body)


@pytest.mark.parametrize("generation", ["gpu_ids", "device"])
def test_authors_loop_gets_the_options_their_parser_builds(tmp_path, generation):
    import json
    import subprocess

    write_fake_authors_checkout(tmp_path / "authors", generation)
    record = tmp_path / "record.json"
    done = subprocess.run(
        [sys.executable, "-m", "genlab.bench.cyclegan", "--worker", "memory", "--loops", "authors"]
        + ["--authors-code", str(tmp_path / "authors"), "--sizes", "8"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        env={**os.environ, "FAKE_AUTHORS_RECORD": str(record)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert float(done.stdout.strip()) > 0  # the peak memory JSON, alone on stdout
    seen = json.loads(record.read_text())
    assert seen["isTrain"] and seen["netG"] == "resnet_9blocks" and seen["device"] == "cpu"
    assert seen["steps"] == 2 and seen["shape"] == [1, 3, 8, 8]
    assert not Path(seen["model_dir"]).is_relative_to(tmp_path)  # their files go to a scratch folder
