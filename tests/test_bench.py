"""The speed benchmarks run end to end and print their tables (numbers are checked by hand, not here)."""

import pytest

from genlab.bench import cyclegan, dcgan, layout


@pytest.mark.slow
def test_dcgan_bench_interleaves_and_prints_the_overhead(capsys):
    dcgan.main(["--epochs", "1"])
    out = capsys.readouterr().out
    assert "19 Lightning iterations, each followed by one iteration of each plain loop" in out  # 24 - 5 warm-up
    assert "overhead" in out and "lightning" in out and "plain NCHW" in out and "layout" in out


def test_layout_bench_times_both_layouts_of_a_recipe(capsys):
    tiny = ["--override", "model.generator.width=8", "--override", "model.discriminator.width=8"]
    layout.main(["--recipes", "default", "--batches", "6", "--repeats", "1", *tiny])
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("default "))
    nchw, channels_last, ratio = (float(v) for v in row.split()[1:])
    assert 0 < nchw < 10 and 0 < channels_last < 10 and ratio == pytest.approx(channels_last / nchw, abs=0.01)


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
