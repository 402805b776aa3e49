"""calibrate_batchnorm: running statistics as the plain average over the batches, inference forward throughout."""
import torch
from torch import nn

from robustreid.models import calibrate_batchnorm


class _Probe(nn.Module):
    """BN, then dropout, recording what the dropout let through (to see that it stayed off)."""

    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm2d(3, momentum=0.3)
        self.drop = nn.Dropout(p=0.9)
        self.seen = []

    def forward(self, x):
        y = self.drop(self.bn(x))
        self.seen.append(y)
        return y


def test_statistics_are_the_average_over_batches_and_the_forward_is_inference():
    g = torch.Generator().manual_seed(0)
    batches = [torch.randn(4, 3, 5, 2, generator=g) * (1 + i) + i for i in range(3)]
    model = _Probe()
    model.bn.running_mean.fill_(7.0)  # stale statistics, to be replaced, not blended
    before = [b.clone() for b in batches]

    out = calibrate_batchnorm(model.train(), iter(batches))

    # from the definition: the mean of the per-batch means and of the per-batch unbiased variances (equal sizes)
    means = torch.stack([b.mean(dim=(0, 2, 3)) for b in batches])
    variances = torch.stack([b.transpose(0, 1).reshape(3, -1).var(dim=1, unbiased=True) for b in batches])
    assert torch.allclose(model.bn.running_mean, means.mean(0), atol=1e-6)
    assert torch.allclose(model.bn.running_var, variances.mean(0), atol=1e-5)
    assert int(model.bn.num_batches_tracked) == 3
    # the dropout never fired (only the norm ran in training mode), nothing of the caller's was changed
    assert all(torch.count_nonzero(y) == y.numel() for y in model.seen)
    assert all(torch.equal(a, b) for a, b in zip(batches, before))
    # returned in eval mode with the norm's own momentum back
    assert out is model and not model.training and not model.bn.training and not model.drop.training
    assert model.bn.momentum == 0.3
