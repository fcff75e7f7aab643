"""One dispatcher decides what a model can do; CLIs say what it can do instead; bad input is one message."""

import warnings

import pytest
import torch
from hydra.utils import instantiate

from genlab import surfaces, train
from genlab.config import compose_train
from genlab.errors import ConfigError, UserError
from genlab.metrics import quality
from tests.conftest import run_script


def build(model: str, data: str = "digits"):
    cfg = compose_train([f"model={model}", f"data={data}"])
    return instantiate(cfg.model, _recursive_=False, _convert_="all")


@pytest.mark.parametrize(
    "model, data, expected",
    [
        ("dcgan", "digits", [surfaces.Sampler]),
        ("cyclegan", "shapes_unpaired", [surfaces.Translator]),
        ("vae", "digits", [surfaces.Sampler, surfaces.Autoencoder, surfaces.Likelihood]),
        ("vqvae", "digits", [surfaces.Autoencoder, surfaces.Coder]),
        ("vaegan", "digits", [surfaces.Sampler, surfaces.Autoencoder]),
        ("vqgan", "digits", [surfaces.Autoencoder, surfaces.Coder]),
    ],
)
def test_each_family_exposes_its_surfaces(model, data, expected):
    assert surfaces.surfaces(build(model, data)) == expected


def test_a_model_without_a_surface_says_what_it_can_do_instead():
    with pytest.raises(surfaces.MissingSurface) as err:
        surfaces.require(build("vqvae"), surfaces.Sampler, "run/last.ckpt")
    message = str(err.value)
    assert "cannot sample" in message and "model=vqvae_prior model.vqvae_ckpt=run/last.ckpt" in message
    assert "reconstruct" in message


def test_asking_for_more_samples_than_real_images_scores_what_is_there():
    class Data:
        train_set = torch.zeros(30, 1, 8, 8)

    with pytest.warns(UserWarning, match="n=5000 asked, but the train split has 30 real images"):
        plan = quality.plan(build("dcgan"), Data(), 5000, where="callbacks.sample_quality")
    assert plan.n == 30 and plan.key("fid", "classifier") == "val/fid30[classifier]"


@pytest.mark.parametrize(
    "overrides, fits",
    [(["model=dcgan", "data=shapes_unpaired"], "digits"), (["model=cyclegan", "data=digits"], "shapes_unpaired")],
)
def test_model_and_data_that_do_not_fit_fail_at_config_time(overrides, fits):
    with pytest.raises(ConfigError, match=f"data options that fit: .*{fits}"):
        train.check_config(compose_train(overrides))


def test_user_errors_are_one_line_without_a_traceback(tmp_path):
    missing = tmp_path / "missing.ckpt"
    result = run_script("generate.py", f"ckpt={missing}", cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    assert f"error: checkpoint {missing} does not exist" in result.stderr
    assert "Traceback" not in result.stderr
    shown = run_script("generate.py", f"ckpt={missing}", cwd=tmp_path, timeout=120, env={"HYDRA_FULL_ERROR": "1"})
    assert shown.returncode != 0 and "Traceback" in shown.stderr


def test_resuming_a_finished_run_says_how_to_continue(make_cfg):
    small = ["data.batch_size=16", "model.generator.width=8", "model.discriminator.width=8"]
    first = make_cfg(*small)
    train.run(first)
    again = make_cfg(*small, f"ckpt_path={first.paths.output_dir}/checkpoints/last.ckpt")
    with pytest.raises(UserError, match=r"already ended after epoch 1 .* trainer.max_epochs=2"):
        train.run(again)


def test_known_lightning_advice_is_quiet_only_inside_a_run():
    with train.quiet_known_warnings(), warnings.catch_warnings(record=True) as inside:
        warnings.simplefilter("default")  # pytest's filters off: only ours apply
        warnings.filterwarnings("ignore", r".*does not have many workers.*")
        warnings.warn("The 'train_dataloader' does not have many workers", UserWarning, stacklevel=1)
    assert not inside
