"""``python -m genlab.bench <what> --help`` lists that bench's own options."""

import sys

import pytest

from genlab.bench.__main__ import BENCHES
from genlab.bench.__main__ import main as bench_main
from tests.conftest import ROOT

# Options the README and the benches' docstrings send users to, per bench.
OPTIONS = {
    "autoencoders": ["--quick", "--override", "--iw-k", "--vae-ckpt"],
    "cyclegan": ["--authors-code", "--quick", "--sizes", "--precision", "--no-plain"],
    "dcgan": ["--samples-of", "--override", "--epochs", "--n"],
    "metrics": ["--quick", "--images", "--n-inception"],
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
    assert "{autoencoders,cyclegan,dcgan,metrics}" not in out  # not the top-level help


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
        [sys.executable, "-m", "genlab.bench", "dcgan", "--help"], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "--samples-of CKPT" in done.stdout and "--override KEY=VALUE" in done.stdout
