# Regenerates the tiny TorchScript models used by backend_test.
# Run with Debian's interpreter (the one that sees python3-torch):
#   /usr/bin/python3 src/backend/testdata/make_test_models.py [NAME ...]
# (names: only those models; default: all)
import os
import sys
from typing import List, Tuple

import torch

HERE = os.path.dirname(os.path.abspath(__file__))


class TupleModel(torch.nn.Module):
    """Two inputs (float features, int64 ids); returns a tuple of three."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 2)
        with torch.no_grad():
            self.linear.weight.copy_(torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 1.0, 1.0]]))
            self.linear.bias.copy_(torch.tensor([0.5, -0.5]))

    def forward(self, x: torch.Tensor, ids: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.linear(x), ids * 2, x > 0


class ListModel(torch.nn.Module):
    """One input; returns a list of two tensors."""

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        return [x + 1, x * x]


class IntModel(torch.nn.Module):
    """Returns something that is not a tensor."""

    def forward(self, x: torch.Tensor) -> int:
        return int(x.numel())


class RaiseModel(torch.nn.Module):
    """Raises for inputs whose sum is negative; identity otherwise."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if bool(x.sum() < 0):
            raise ValueError("negative input sum")
        return x * 1.0


class LoopModel(torch.nn.Module):
    """Never returns for an input whose sum is > -1 (warm-up's included): a start that hangs."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        while bool(x.sum() > -1.0):
            x = x * 1.0
        return x


class AllocModel(torch.nn.Module):
    """Allocates and fills as many MiB as the largest input value, then
    returns its input: a model that exceeds its memory_mb on request
    (runtime and e2e tests of the memory limit)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mib = int(x.max().item())
        if mib <= 0:
            return x * 1.0
        block = torch.ones(mib * 262144)  # 262144 floats = 1 MiB, every page written
        return x + block[-1] - 1.0


class MismatchModel(torch.nn.Module):
    """Fails inside an ATen op for inputs of exactly 3 elements (warm-up uses 1, 2, 4)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.numel() == 3:
            return x + torch.ones(4)
        return x * 1.0


MODELS = [("tuple_model", TupleModel()), ("list_model", ListModel()), ("int_model", IntModel()),
          ("raise_model", RaiseModel()), ("loop_model", LoopModel()), ("alloc_model", AllocModel()),
          ("mismatch_model", MismatchModel())]
for name, module in MODELS:
    if len(sys.argv) > 1 and name not in sys.argv[1:]:
        continue
    torch.jit.script(module.eval()).save(os.path.join(HERE, name + ".pt"))
