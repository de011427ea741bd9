#!/usr/bin/env python3
"""Writes refusion_official_style.pth: the small official-style ReFusion state dict of
refusion_official_style.safetensors (made by make_restormer_fixtures.py), saved by torch.save as
the official TDFusion/ReFusion checkpoints are: a plain state dict in which every conv weight
appears twice, as `X.weight` and `X.conv.weight`, both views of one storage.

    pip install torch safetensors
    python3 Tests/RestormerFusionTests/Fixtures/make_official_pth_fixture.py
"""
import collections, os
import torch
from safetensors.torch import load_file

here = os.path.dirname(os.path.abspath(__file__))
flat = load_file(os.path.join(here, "refusion_official_style.safetensors"))
state = collections.OrderedDict()
for key in sorted(k for k in flat if not k.endswith(".conv.weight")):
    state[key] = flat[key].clone()
for key in sorted(k for k in flat if k.endswith(".conv.weight")):
    original = key[: -len(".conv.weight")] + ".weight"
    assert torch.equal(flat[key], flat[original]), key
    state[key] = state[original]  # the same tensor: one storage, two names
torch.save(state, os.path.join(here, "refusion_official_style.pth"))

loaded = torch.load(os.path.join(here, "refusion_official_style.pth"), weights_only=True)
assert loaded["project_in_1.conv.weight"].untyped_storage().data_ptr() == loaded["project_in_1.weight"].untyped_storage().data_ptr()
print(len(state), "tensors,", sum(k.endswith(".conv.weight") for k in state), "duplicated conv weights,",
      os.path.getsize(os.path.join(here, "refusion_official_style.pth")), "bytes")
