"""Generates the parity fixtures of the Restormer plugins from the PyTorch reference.

Run from this folder with PyTorch and safetensors installed (CI does not need them; the output
files are committed):  python3 make_restormer_fixtures.py /path/to/shared/reference
"""
import sys, torch
from safetensors.torch import save_file

sys.path.insert(0, sys.argv[1] if len(sys.argv) > 1 else "../../../../shared/reference")
import tdfusion_ref as R

torch.manual_seed(2025)
F, G = R.ReFusion(), R.LPN()
# Non-trivial LayerNorm, temperature and PReLU values so that parity exercises every parameter.
with torch.no_grad():
    for name, p in list(F.named_parameters()) + list(G.named_parameters()):
        if name.endswith("body.weight"): p.uniform_(0.5, 1.5)
        elif name.endswith("body.bias"): p.uniform_(-0.2, 0.2)
        elif "temperature" in name: p.uniform_(0.5, 2.0)
        elif name == "out2.weight": p.fill_(0.1)

x = torch.rand(2, 2, 20, 24)
fused = F(x)
weights = G(x)
a, b = x[:, :1], x[:, 1:2]
loss = R.fusion_loss(fused, a, b, weights)
grads = torch.autograd.grad(loss, list(F.parameters()))
squared = (weights[:, :1] ** 2 * (a - fused) ** 2).mean() + (weights[:, 1:2] ** 2 * (b - fused) ** 2).mean()
fx, fy = R.sobel(fused); ax, ay = R.sobel(a); bx, by = R.sobel(b)
mx = torch.where(ax.abs() >= bx.abs(), ax, bx); my = torch.where(ay.abs() >= by.abs(), ay, by)
squared = squared + ((fx - mx).abs().mean() + (fy - my).abs().mean())

out = {"input": x, "fused": fused.detach(), "weights": weights.detach(),
       "loss": loss.detach().reshape(1), "loss_squared_weights": squared.detach().reshape(1)}
for k, v in F.state_dict().items():
    out["F." + k] = v
for (k, _), g in zip(F.named_parameters(), grads):
    out["dF." + k] = g
for k, v in G.state_dict().items():
    out["G." + k] = v
save_file({k: v.contiguous() for k, v in out.items()}, "restormer_parity.safetensors",
          metadata={"generator": "make_restormer_fixtures.py", "torch": torch.__version__,
                    "F_parameters": str(sum(p.numel() for p in F.parameters())),
                    "G_parameters": str(sum(p.numel() for p in G.parameters()))})

# An official-style checkpoint of a small F (dim 8, 1 block, 2 heads): every conv weight stored
# twice (`X.weight` and `X.conv.weight`), as the official files do.
small = R.ReFusion(dim=8, blocks=1, heads=2)
official = {}
for k, v in small.state_dict().items():
    official[k] = v.clone()
    if k.endswith(".weight") and v.dim() == 4:
        official[k[: -len(".weight")] + ".conv.weight"] = v.clone()
save_file(official, "refusion_official_style.safetensors")
print("F", sum(p.numel() for p in F.parameters()), "G", sum(p.numel() for p in G.parameters()), "loss", loss.item())
