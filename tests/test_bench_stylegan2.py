"""``python -m genlab.bench stylegan2``: what it refuses, and how it drives the reference code.

The real checkouts are not here (never committed, no network at test time); stand-ins written here
keep their module layout and call signatures and record how the bench calls them.
"""

import json
import subprocess
import sys

import pytest

from genlab.bench import stylegan2, stylegan2_reference
from tests.conftest import ROOT

# The checks run before any worker; should one let a folder through, this worker fails at once (not
# SystemExit) instead of running the bench.
FAILS_FAST = ["--worker", "probe"]


def test_a_folder_that_is_not_the_nvlabs_checkout_is_refused_with_what_to_pass(tmp_path):
    (tmp_path / "training").mkdir()
    (tmp_path / "training" / "networks.py").write_text("")
    for wrong in (tmp_path, tmp_path / "training"):  # e.g. the checkout's training/ folder instead of its root
        with pytest.raises(SystemExit) as refused:
            stylegan2.main(["--quick", "--authors-code", str(wrong), *FAILS_FAST])
        message = str(refused.value.code)
        assert message.startswith(f"--authors-code {wrong}: not a checkout of NVlabs/stylegan2-ada-pytorch")
        assert (
            "training/loss.py" in message
            and "pass the folder that holds train.py, training/ and torch_utils/" in message
        )


def test_a_folder_that_is_not_the_rosinality_checkout_is_refused(tmp_path):
    (tmp_path / "model.py").write_text("")
    with pytest.raises(SystemExit) as refused:
        stylegan2.main(["--quick", "--rosinality-code", str(tmp_path), *FAILS_FAST])
    message = str(refused.value.code)
    assert "not a checkout of rosinality/stylegan2-pytorch (train.py, op/__init__.py not found there)" in message


def test_iterations_must_cover_whole_r1_cycles(capsys):
    with pytest.raises(SystemExit) as refused:
        stylegan2.main(["--iters", "20"])
    assert refused.value.code == 2
    assert "--iters 20: use a multiple of 16" in capsys.readouterr().err


# A stand-in for NVlabs/stylegan2-ada-pytorch: training.networks.Generator/Discriminator with their
# constructor signatures and submodules (mapping, synthesis), and training.loss.StyleGAN2Loss with its
# accumulate_gradients(phase, ..., gain); each records how it was called into $FAKE_NVLABS_RECORD.
FAKE_NETWORKS = """
import torch


class Generator(torch.nn.Module):
    def __init__(self, z_dim, c_dim, w_dim, img_resolution, img_channels, mapping_kwargs={}, synthesis_kwargs={}):
        super().__init__()
        self.mapping, self.synthesis = torch.nn.Linear(z_dim, w_dim), torch.nn.Linear(w_dim, 3)
        self.kwargs = dict(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, img_resolution=img_resolution,
                           mapping_kwargs=mapping_kwargs, synthesis_kwargs=synthesis_kwargs)


class Discriminator(torch.nn.Module):
    def __init__(self, c_dim, img_resolution, img_channels, architecture="resnet", channel_base=32768,
                 channel_max=512, num_fp16_res=0, conv_clamp=None, epilogue_kwargs={}):
        super().__init__()
        self.fc = torch.nn.Linear(1, 1)
        self.kwargs = dict(c_dim=c_dim, architecture=architecture, channel_base=channel_base, channel_max=channel_max,
                           num_fp16_res=num_fp16_res, conv_clamp=conv_clamp, epilogue_kwargs=epilogue_kwargs)
"""

FAKE_LOSS = """
class StyleGAN2Loss:
    def __init__(self, device, G_mapping, G_synthesis, D, augment_pipe=None, style_mixing_prob=0.9, r1_gamma=10,
                 pl_batch_shrink=2, pl_decay=0.01, pl_weight=2):
        self.G_mapping, self.D = G_mapping, D
        self.kwargs = dict(style_mixing_prob=style_mixing_prob, r1_gamma=r1_gamma, pl_weight=pl_weight,
                           pl_batch_shrink=pl_batch_shrink, augment_pipe=augment_pipe)
        self.calls = []

    def accumulate_gradients(self, phase, real_img, real_c, gen_z, gen_c, sync, gain):
        player = self.G_mapping if phase.startswith("G") else self.D
        other = self.D if phase.startswith("G") else self.G_mapping
        trains = all(p.requires_grad for p in player.parameters()) and not any(p.requires_grad for p in other.parameters())
        self.calls.append([phase, gain, trains, list(real_img.shape), list(gen_z.shape)])
"""

# In one process (torch imports once): the bench's NVlabs loop for each (config, first global step,
# iterations) in argv, and what the stand-in saw, as JSON on stdout.
DRIVE = """
import json, sys
from genlab.bench import stylegan2_reference as reference
repo, seen = sys.argv[1], {}
for run in sys.argv[2:]:
    config, first, steps = run.split(":")
    loop = reference.NVlabsLoop(reference.CONFIGS[config], int(first), repo)
    for _ in range(int(steps)):
        loop.step()
    seen[run] = dict(g=loop.g.kwargs, g_ema=loop.g_ema.kwargs, d=loop.d.kwargs, loss=loop.loss.kwargs, calls=loop.loss.calls)
print(json.dumps(seen))
"""


# Their training_loop's phases in order, each with its gain (= its interval), all due at global step 16;
# in the cifar config Greg runs too, with nothing to compute (pl_weight 0), as theirs does.
PHASES_AT_16 = [("Gmain", 1), ("Greg", 4), ("Dmain", 1), ("Dreg", 16)]


@pytest.fixture(scope="module")
def fake_nvlabs(tmp_path_factory) -> dict:
    """What the stand-in saw: one iteration of each config at global step 16, and config F's first 16."""
    repo = tmp_path_factory.mktemp("stylegan2-ada-pytorch")
    for name, body in {
        "dnnlib/__init__.py": "",
        "torch_utils/__init__.py": "",
        "torch_utils/ops/__init__.py": "",
        "torch_utils/ops/upfirdn2d.py": "",
        "training/__init__.py": "",
        "training/networks.py": FAKE_NETWORKS,
        "training/loss.py": FAKE_LOSS,
    }.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(body)
    done = subprocess.run(
        [sys.executable, "-c", DRIVE, str(repo), "cifar:15:1", "f:15:1", "f:0:16"],
        capture_output=True,
        text=True,
        cwd=ROOT,  # where this checkout's src/ is
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_nvlabs_networks_and_loss_are_built_as_their_train_py_builds_each_config_in_fp32(fake_nvlabs):
    cifar = fake_nvlabs["cifar:15:1"]
    assert cifar["g"]["mapping_kwargs"] == {"num_layers": 2} and cifar["g"]["z_dim"] == cifar["g"]["w_dim"] == 512
    assert cifar["g"]["synthesis_kwargs"] == {
        "channel_base": 32768,
        "channel_max": 512,
        "num_fp16_res": 0,
        "conv_clamp": 256,
    }
    assert cifar["g_ema"] == cifar["g"]
    assert cifar["calls"] == [[phase, gain, True, [8, 3, 32, 32], [8, 512]] for phase, gain in PHASES_AT_16]
    assert cifar["d"]["architecture"] == "orig" and cifar["d"]["epilogue_kwargs"] == {"mbstd_group_size": 32}
    assert cifar["d"]["num_fp16_res"] == 0 and cifar["d"]["conv_clamp"] == 256
    assert cifar["loss"] == {
        "style_mixing_prob": 0.0,
        "r1_gamma": 0.01,
        "pl_weight": 0.0,
        "pl_batch_shrink": 2,
        "augment_pipe": None,
    }
    f = fake_nvlabs["f:15:1"]
    assert f["g"]["mapping_kwargs"] == {"num_layers": 8}
    assert f["d"]["architecture"] == "resnet" and f["d"]["epilogue_kwargs"] == {"mbstd_group_size": 4}
    assert f["calls"] == [[phase, gain, True, [4, 3, 32, 32], [4, 512]] for phase, gain in PHASES_AT_16]
    assert f["loss"]["style_mixing_prob"] == 0.9 and f["loss"]["r1_gamma"] == 10.0 and f["loss"]["pl_weight"] == 2.0


def test_nvlabs_phases_run_as_their_training_loop_runs_them_on_genlabs_lazy_steps(fake_nvlabs):
    """16 iterations from global step 0: Gmain and Dmain each time; Greg (gain 4) on the 4th, 8th, 12th
    and 16th, Dreg (gain 16) on the 16th, where genlab's every() puts path length and R1; the phase's
    player trains and the other is frozen; batch 4 of 32 px reals and 512-d z (config F)."""
    calls = fake_nvlabs["f:0:16"]["calls"]
    expected = []
    for step in range(1, 17):
        expected += [["Gmain", 1]] + ([["Greg", 4]] if step % 4 == 0 else [])
        expected += [["Dmain", 1]] + ([["Dreg", 16]] if step % 16 == 0 else [])
    assert [call[:2] for call in calls] == expected
    assert all(trains for _, _, trains, _, _ in calls)
    assert {(tuple(real), tuple(z)) for *_, real, z in calls} == {((4, 3, 32, 32), (4, 512))}


ROSINALITY_MODEL = """
raise OSError("CUDA_HOME environment variable is not set. Please set it to your CUDA install root.")
"""


def test_rosinality_that_cannot_import_gives_one_line_why(tmp_path):
    (tmp_path / "op").mkdir()
    (tmp_path / "op" / "__init__.py").write_text("")
    (tmp_path / "train.py").write_text("")
    (tmp_path / "model.py").write_text(ROSINALITY_MODEL)  # as its import-time CUDA build fails without a toolkit
    why = stylegan2_reference.rosinality_unavailable(str(tmp_path), stylegan2_reference.CONFIGS["f"])
    assert (
        why
        == "cannot import here: OSError: CUDA_HOME environment variable is not set. Please set it to your CUDA install root."
    )
    assert "config F" in stylegan2_reference.rosinality_unavailable(str(tmp_path), stylegan2_reference.CONFIGS["cifar"])
