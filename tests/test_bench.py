"""The speed benchmarks run end to end and print their tables (numbers are checked by hand, not here)."""

import pytest

from genlab.bench import cyclegan, dcgan


@pytest.mark.slow
def test_dcgan_bench_interleaves_and_prints_the_overhead(capsys):
    dcgan.main(["--epochs", "1"])
    out = capsys.readouterr().out
    assert "19 Lightning iterations, each followed by one plain-loop iteration" in out  # 24 pairs - 5 warm-up
    assert "overhead" in out and "lightning" in out and "plain" in out


@pytest.mark.slow
def test_cyclegan_bench_times_every_loop_and_precision(capsys):
    cyclegan.main(["--sizes", "32", "--iters", "1", "--warmup", "1", "--precision", "32-true", "bf16-mixed"])
    out = capsys.readouterr().out
    rows = [
        words for words in map(str.split, out.splitlines()) if words[:1] == ["32"] and not words[1].startswith("px")
    ]
    assert [(r[1], r[2]) for r in rows] == [
        ("lightning", "32-true"),
        ("plain", "32-true"),
        ("lightning", "bf16-mixed"),
        ("plain", "bf16-mixed"),
    ]
    assert "GFLOP per iteration" in out
