#!/usr/bin/env python3
"""Regenerates the PyTorch checkpoint fixtures read by TorchCheckpointTests.

    pip install torch safetensors
    python3 Tests/FuseKitNNTests/Fixtures/make_torch_checkpoint_fixtures.py

Writes, next to this script (CI needs neither PyTorch nor this script; the outputs are committed):

torch_zip.pth, torch_legacy.pth
    The same state dict, saved by torch.save in the zip format and in the legacy format
    (_use_new_zipfile_serialization=False): a real module's state dict (with its `_metadata`
    attribute) plus tensors of every storage type (float32, float16, bfloat16, float64, int64,
    int32, int16, int8, uint8, bool) holding special values (signed zeros, infinities, NaN,
    subnormals, integers past 2^24), an nn.Parameter, a 0-d and an empty tensor, views with
    offsets and strides (a transpose, a strided window, a slice) and tensors sharing one storage.
torch_bigendian.pth
    A zip checkpoint rewritten with `byteorder` "big" and byte-swapped storages (PyTorch reads
    such files from big-endian machines); written with Python's zipfile, so it also has a
    layout other than PyTorch's own writer (no ZIP64 records, no alignment padding).
torch_nested.pth
    {"epoch", "model": {"module." + name: tensor}, "optimizer": {...}, "args": {...}}, as
    training scripts save (DataParallel prefix, optimizer state with integer keys).
torch_mtan.pth
    {"MTAN": {"encoder.*", "fuse_decoder.*", "seg_decoder.*"}} as MAFS saves.
torch_ambiguous.pth
    {"fusion": state dict, "segmentation": state dict}: no obvious single state dict.
torch_reference.safetensors
    torch's own Float32 value (`tensor.float().contiguous()`) of every tensor above, named
    `zip.<name>` (torch_zip.pth, torch_legacy.pth and torch_bigendian.pth hold the same
    values), `nested.<name>`, `mtan.<name>` and `ambiguous.<name>` (full dotted names).
malicious_os_system.pth, malicious_builtins_eval.pth, malicious_legacy.pth
    Zip (and legacy) checkpoints whose pickles call os.system and builtins.eval (GLOBAL and
    REDUCE, STACK_GLOBAL at protocol 4): unpickling them with Python's pickle runs a shell
    command. Hand-assembled, since Python itself would record os.system as posix.system.
whole_module.pth
    torch.save of an nn.Conv2d object instead of its state dict (names torch.nn.modules.conv.Conv2d).
"""
import collections, io, os, pickle, pickletools, struct, warnings, zipfile

import torch
from safetensors.torch import save_file

warnings.filterwarnings("ignore", message="TypedStorage is deprecated")
here = os.path.dirname(os.path.abspath(__file__))
torch.manual_seed(17)


def path(name):
    return os.path.join(here, name)


def zip_state_dict():
    module = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.BatchNorm2d(3))
    with torch.no_grad():
        module[1].running_mean.uniform_(-1, 1)
        module[1].running_var.uniform_(0.5, 2)
        module[1].num_batches_tracked.fill_(1234)
    sd = module.state_dict()  # an OrderedDict with a _metadata attribute
    specials = [0.0, -0.0, float("inf"), float("-inf"), float("nan"), 1.0, -2.5, 65504.0, 6e-8, 1e-5, 0.1, 3.0e38]
    sd["half"] = torch.tensor(specials, dtype=torch.float16)
    sd["brain"] = torch.tensor(specials, dtype=torch.bfloat16).reshape(3, 4)
    sd["double"] = torch.tensor([[0.1, 1.0 / 3.0], [1e-40, 1e39], [-2.0 ** -149, 16777217.0]], dtype=torch.float64)
    sd["long"] = torch.tensor([0, -1, 2 ** 24 + 1, 2 ** 40 + 3, -(2 ** 62)], dtype=torch.int64)
    sd["int"] = torch.tensor([7, -8, 2 ** 31 - 1], dtype=torch.int32)
    sd["short"] = torch.tensor([-32768, 12], dtype=torch.int16)
    sd["char"] = torch.tensor([-128, 127], dtype=torch.int8)
    sd["byte"] = torch.tensor([0, 255], dtype=torch.uint8)
    sd["mask"] = torch.tensor([[True, False, True], [False, False, True]])
    sd["parameter"] = torch.nn.Parameter(torch.randn(3))
    sd["scalar"] = torch.tensor(2.75)
    sd["empty"] = torch.zeros(0, 3)
    weight = torch.randn(4, 6)
    sd["transposed"] = weight.t()  # stride (1, 6)
    base = torch.arange(40, dtype=torch.float32) * 0.5
    sd["window"] = base.as_strided((3, 4), (1, 5), 2)  # offset 2, overlapping strides
    sd["slice"] = base[10:20]  # contiguous with an offset
    sd["shared.a"] = base[:8].view(2, 4)
    sd["shared.b"] = base[4:12]
    sd["half_view"] = sd["half"][1::3]  # a strided half-precision view
    return sd


def reference(prefix, tensors):
    return {prefix + k: v.detach().float().contiguous().clone() for k, v in tensors.items()}


def write_zip(name, records):
    """A zip archive with stored records, as torch.save lays them out."""
    with zipfile.ZipFile(path(name), "w", compression=zipfile.ZIP_STORED) as z:
        for record, data in records:
            z.writestr(record, data)


sd = zip_state_dict()
torch.save(sd, path("torch_zip.pth"))
torch.save(sd, path("torch_legacy.pth"), _use_new_zipfile_serialization=False)
for name in ("torch_zip.pth", "torch_legacy.pth"):
    loaded = torch.load(path(name), weights_only=True)
    assert set(loaded) == set(sd)
    for k in sd:
        assert torch.equal(loaded[k].float().nan_to_num(7), sd[k].float().nan_to_num(7)), (name, k)
    # Shared storages stay shared.
    assert loaded["shared.a"].untyped_storage().data_ptr() == loaded["shared.b"].untyped_storage().data_ptr()

# Big-endian: the same records, storages byte-swapped, byteorder "big".
with zipfile.ZipFile(path("torch_zip.pth")) as source:
    records = []
    pickled = None
    for info in source.infolist():
        data = source.read(info.filename)
        records.append((info.filename, data))
    prefix = records[0][0].split("/")[0] + "/"
    storage_sizes = {}
    # Element size per storage key, from the pickle's persistent ids.
    class Probe(pickle.Unpickler):
        def find_class(self, module, name):
            if module == "torch" and name.endswith("Storage"):
                return getattr(torch, name)
            if (module, name) == ("collections", "OrderedDict"):
                return collections.OrderedDict
            if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
                return lambda *a: None
            if (module, name) == ("torch._utils", "_rebuild_parameter"):
                return lambda *a: None
            raise pickle.UnpicklingError(name)

        def persistent_load(self, pid):
            storage_sizes[pid[2]] = torch.tensor([], dtype=pid[1].dtype).element_size()
            return None

    Probe(io.BytesIO(dict(records)[prefix + "data.pkl"])).load()
    swapped = []
    for record, data in records:
        key = record[len(prefix + "data/"):] if record.startswith(prefix + "data/") else None
        if key in storage_sizes and storage_sizes[key] > 1:
            size = storage_sizes[key]
            data = b"".join(data[i:i + size][::-1] for i in range(0, len(data), size))
        if record == prefix + "byteorder":
            data = b"big"
        swapped.append((record, data))
write_zip("torch_bigendian.pth", swapped)
loaded = torch.load(path("torch_bigendian.pth"), weights_only=True)
for k in sd:
    assert torch.equal(loaded[k].float().nan_to_num(7), sd[k].float().nan_to_num(7)), ("bigendian", k)

small = collections.OrderedDict([("conv.weight", torch.randn(2, 1, 3, 3)), ("conv.bias", torch.randn(2)),
                                 ("bn.num_batches_tracked", torch.tensor(5))])
adam = torch.optim.Adam([torch.nn.Parameter(small["conv.weight"].clone())])
adam.zero_grad()
adam.param_groups[0]["params"][0].grad = torch.ones(2, 1, 3, 3)
adam.step()
nested = {"epoch": 7, "model": collections.OrderedDict(("module." + k, v) for k, v in small.items()),
          "optimizer": adam.state_dict(),
          "args": {"lr": 1e-4, "name": "refusion", "flag": True, "none": None, "sizes": (480, 640), "list": [1, 2.5, "x"]}}
torch.save(nested, path("torch_nested.pth"))

mtan = {"MTAN": collections.OrderedDict([("encoder.conv.weight", torch.randn(4, 2, 1, 1)),
                                         ("fuse_decoder.conv.weight", torch.randn(1, 4, 3, 3)),
                                         ("seg_decoder.head.weight", torch.randn(9, 4, 1, 1)),
                                         ("seg_decoder.head.bias", torch.randn(9))])}
torch.save(mtan, path("torch_mtan.pth"))

ambiguous = {"fusion": {"a.weight": torch.randn(2)}, "segmentation": {"b.weight": torch.randn(3)}, "epoch": 1}
torch.save(ambiguous, path("torch_ambiguous.pth"))

refs = reference("zip.", sd)
refs.update(reference("nested.", {"model." + k: v for k, v in nested["model"].items()}))
refs.update(reference("nested.", {"optimizer.state.0." + k: v for k, v in nested["optimizer"]["state"][0].items()}))
refs.update(reference("mtan.MTAN.", mtan["MTAN"]))
refs.update(reference("ambiguous.fusion.", ambiguous["fusion"]))
refs.update(reference("ambiguous.segmentation.", ambiguous["segmentation"]))
save_file(refs, path("torch_reference.safetensors"), metadata={"generator": "make_torch_checkpoint_fixtures.py", "torch": torch.__version__})


# Malicious pickles. Protocol 2: GLOBAL 'os system', a command, TUPLE1, REDUCE, inside a dict.
def unicode(text):
    data = text.encode()
    return b"X" + struct.pack("<I", len(data)) + data


os_system = (b"\x80\x02}q\x00" + unicode("weight") + b"cos\nsystem\n" + unicode("echo pwned by os.system")
             + b"\x85R" + b"s.")
def short(text):
    data = text.encode()
    return b"\x8c" + bytes([len(data)]) + data + b"\x94"  # SHORT_BINUNICODE, MEMOIZE


# Protocol 4: FRAME, STACK_GLOBAL 'builtins' 'eval' called on an expression.
body = (b"}\x94" + short("weight") + short("builtins") + short("eval") + b"\x93\x94"
        + short("__import__('os').system('echo pwned by builtins.eval')") + b"\x85\x94R\x94s.")
builtins_eval = b"\x80\x04\x95" + struct.pack("<Q", len(body)) + body
for blob, expected in ((os_system, "os system"), (builtins_eval, "builtins eval")):
    ops = [(op.name, arg) for op, arg, _ in pickletools.genops(blob)]
    assert any(n in ("GLOBAL", "STACK_GLOBAL") for n, _ in ops), ops
for name, blob in (("malicious_os_system.pth", os_system), ("malicious_builtins_eval.pth", builtins_eval)):
    write_zip(name, [("archive/data.pkl", blob), ("archive/byteorder", b"little"), ("archive/version", b"3\n")])

legacy = io.BytesIO()
for value in (0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True}):
    pickle.dump(value, legacy, protocol=2)
legacy.write(os_system)
pickle.dump([], legacy, protocol=2)
open(path("malicious_legacy.pth"), "wb").write(legacy.getvalue())

torch.save(torch.nn.Conv2d(1, 1, 1), path("whole_module.pth"))

print("torch", torch.__version__, "tensors", len(refs))
for name in sorted(os.listdir(here)):
    if name.endswith((".pth", "reference.safetensors")):
        print(f"{name:32s} {os.path.getsize(path(name)):7d} bytes")
