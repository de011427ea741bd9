#!/usr/bin/env python3
"""Writes the committed seed corpora of the fuzz harnesses (Tests/Fuzz/Corpus/<harness>/).

Run once by hand when the seeds should change (python3 with Pillow, numpy and safetensors);
CI only reads the committed files. Seeds are small on purpose (8x8 to 16x16 images, short
files): libFuzzer mutates them, and small inputs run fast. Each seed covers one variant the
reader handles (bit depths, colour types, interlacing, palettes, header kinds, dtypes, ...).
Files named regression-* are not made here: they are inputs the fuzzers (or the review of a
harness) found, kept as they were; each also has a test in the normal test suite.
"""
import io
import json
import os
import struct
import sys
import zlib

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "Corpus")
ROOT = os.path.dirname(os.path.dirname(HERE))


def put(harness, name, data):
    folder = os.path.join(CORPUS, harness)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


rng = np.random.default_rng(18)


# ---------------------------------------------------------------- PNG (hand-written encoder)
def png_chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def png_rows(samples, bit_depth):
    """Packs a (h, w, c) array of integer samples into PNG scanlines (filter type cycling 0..4)."""
    h, w, c = samples.shape
    rows = []
    for y in range(h):
        if bit_depth == 16:
            raw = samples[y].astype(">u2").tobytes()
        elif bit_depth == 8:
            raw = samples[y].astype(np.uint8).tobytes()
        else:
            bits = "".join(format(int(v), "0%db" % bit_depth) for v in samples[y].reshape(-1))
            bits += "0" * (-len(bits) % 8)
            raw = bytes(int(bits[i:i + 8], 2) for i in range(0, len(bits), 8))
        rows.append((y % 2, raw))  # filters 0 (none) and 1 (sub, applied below)
    out = b""
    bpp = max(1, c * bit_depth // 8)
    for filter_type, raw in rows:
        if filter_type == 1:
            filtered = bytes((raw[i] - (raw[i - bpp] if i >= bpp else 0)) & 0xFF for i in range(len(raw)))
        else:
            filtered = raw
        out += bytes([filter_type]) + filtered
    return out


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def png(samples, bit_depth, color_type, palette=None, trns=None, interlace=False, extra=b""):
    h, w, _ = samples.shape
    if interlace:
        data = b""
        for x0, y0, dx, dy in ADAM7:
            sub = samples[y0::dy, x0::dx]
            if sub.size:
                data += png_rows(sub, bit_depth)
    else:
        data = png_rows(samples, bit_depth)
    out = b"\x89PNG\r\n\x1a\n"
    out += png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, 1 if interlace else 0))
    out += extra
    if palette is not None:
        out += png_chunk(b"PLTE", bytes(palette))
    if trns is not None:
        out += png_chunk(b"tRNS", trns)
    compressed = zlib.compress(data, 9)
    half = len(compressed) // 2
    out += png_chunk(b"IDAT", compressed[:half]) + png_chunk(b"IDAT", compressed[half:])
    out += png_chunk(b"IEND", b"")
    return out


def levels(h, w, c, bit_depth):
    return rng.integers(0, 1 << bit_depth, size=(h, w, c))


for depth in (1, 2, 4, 8, 16):
    put("png", "gray%d.png" % depth, png(levels(8, 8, 1, depth), depth, 0))
put("png", "gray8-interlaced.png", png(levels(9, 11, 1, 8), 8, 0, interlace=True))
put("png", "gray16-interlaced.png", png(levels(5, 7, 1, 16), 16, 0, interlace=True))
put("png", "gray8-trns.png", png(levels(8, 8, 1, 8), 8, 0, trns=struct.pack(">H", 7)))
put("png", "gray-alpha8.png", png(levels(8, 8, 2, 8), 8, 4))
put("png", "gray-alpha16.png", png(levels(4, 4, 2, 16), 16, 4))
put("png", "rgb8.png", png(levels(8, 8, 3, 8), 8, 2))
put("png", "rgb16.png", png(levels(4, 4, 3, 16), 16, 2))
put("png", "rgb8-trns.png", png(levels(4, 4, 3, 8), 8, 2, trns=struct.pack(">HHH", 1, 2, 3)))
put("png", "rgba8.png", png(levels(8, 8, 4, 8), 8, 6))
put("png", "rgba16-interlaced.png", png(levels(5, 6, 4, 16), 16, 6, interlace=True))
for depth in (1, 2, 4, 8):
    count = 1 << depth
    palette = rng.integers(0, 256, size=3 * count).tolist()
    put("png", "palette%d.png" % depth, png(levels(8, 8, 1, depth), depth, 3, palette=palette))
gray_palette = [v for i in range(16) for v in (i * 17,) * 3]
put("png", "palette4-gray-labels.png", png(levels(8, 8, 1, 4), 4, 3, palette=gray_palette))
put("png", "palette8-trns.png",
    png(levels(6, 6, 1, 3), 8, 3, palette=rng.integers(0, 256, size=24).tolist(), trns=bytes([0, 128, 255])))
text = png_chunk(b"tEXt", b"Comment\x00fuzz seed") + png_chunk(b"gAMA", struct.pack(">I", 45455))
put("png", "rgb8-ancillary.png", png(levels(4, 4, 3, 8), 8, 2, extra=text))
put("png", "one-pixel.png", png(levels(1, 1, 1, 8), 8, 0))


# ---------------------------------------------------------------- JPEG (Pillow / libjpeg)
def jpeg(image, **options):
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", **options)
    return buffer.getvalue()


gray = Image.fromarray(rng.integers(0, 256, size=(16, 16), dtype=np.uint8), "L")
rgb = Image.fromarray(rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8), "RGB")
put("jpeg", "gray.jpg", jpeg(gray, quality=75))
put("jpeg", "rgb-420.jpg", jpeg(rgb, quality=75, subsampling=2))
put("jpeg", "rgb-444.jpg", jpeg(rgb, quality=90, subsampling=0))
put("jpeg", "rgb-422.jpg", jpeg(rgb.crop((0, 0, 13, 9)), quality=50, subsampling=1))
put("jpeg", "rgb-progressive.jpg", jpeg(rgb, quality=75, progressive=True))
put("jpeg", "gray-progressive.jpg", jpeg(gray.crop((0, 0, 11, 7)), quality=60, progressive=True))
put("jpeg", "rgb-optimized.jpg", jpeg(rgb, quality=75, optimize=True))
put("jpeg", "rgb-exif.jpg", jpeg(rgb.crop((0, 0, 8, 8)), quality=75, exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x00"))
put("jpeg", "cmyk.jpg", jpeg(Image.fromarray(rng.integers(0, 256, size=(8, 8, 4), dtype=np.uint8), "CMYK"), quality=75))
put("jpeg", "one-pixel.jpg", jpeg(gray.crop((0, 0, 1, 1)), quality=75))


# ---------------------------------------------------------------- BMP (hand-written encoder)
def bmp(width, height, bpp, pixels_rows, palette=None, core=False, top_down=False, masks=None, v4=False):
    """pixels_rows: bytes of each row (already packed, without padding), top row first."""
    stride = ((width * bpp + 31) // 32) * 4
    rows = [row + b"\x00" * (stride - len(row)) for row in pixels_rows]
    if not top_down:
        rows = rows[::-1]
    pixel_data = b"".join(rows)
    if core:
        dib = struct.pack("<IHHHH", 12, width, height, 1, bpp)
        pal = b"".join(bytes([b, g, r]) for r, g, b in palette) if palette else b""
    else:
        dib_size = 108 if v4 else 40
        compression = 3 if masks else 0
        h = -height if top_down else height
        dib = struct.pack("<IiiHHIIiiII", dib_size, width, h, 1, bpp, compression, len(pixel_data), 2835, 2835,
                          len(palette) if palette else 0, 0)
        if v4:
            dib += struct.pack("<IIII", *(masks or (0x00FF0000, 0x0000FF00, 0x000000FF, 0xFF000000)))
            dib += b"BGRs" + b"\x00" * (108 - 40 - 16 - 4)
        elif masks:
            dib += struct.pack("<III", *masks[:3])
        pal = b"".join(bytes([b, g, r, 0]) for r, g, b in palette) if palette else b""
    offset = 14 + len(dib) + len(pal)
    header = b"BM" + struct.pack("<IHHI", offset + len(pixel_data), 0, 0, offset)
    return header + dib + pal + pixel_data


def packed_rows(values, bpp):
    rows = []
    for row in values:
        bits = "".join(format(int(v), "0%db" % bpp) for v in row)
        bits += "0" * (-len(bits) % 8)
        rows.append(bytes(int(bits[i:i + 8], 2) for i in range(0, len(bits), 8)))
    return rows


for bpp in (1, 4, 8):
    count = 1 << bpp
    palette = [tuple(rng.integers(0, 256, size=3).tolist()) for _ in range(count)]
    values = rng.integers(0, count, size=(7, 9))
    put("bmp", "palette%d.bmp" % bpp, bmp(9, 7, bpp, packed_rows(values, bpp), palette=palette))
gray_pal = [(i, i, i) for i in range(256)]
put("bmp", "gray8-top-down.bmp", bmp(5, 4, 8, packed_rows(rng.integers(0, 256, size=(4, 5)), 8), palette=gray_pal, top_down=True))
put("bmp", "palette8-core.bmp", bmp(5, 3, 8, packed_rows(rng.integers(0, 256, size=(3, 5)), 8), palette=gray_pal, core=True))
put("bmp", "palette4-short.bmp",
    bmp(6, 2, 4, packed_rows(rng.integers(0, 5, size=(2, 6)), 4), palette=[tuple(rng.integers(0, 256, size=3).tolist()) for _ in range(5)]))
rgb_rows = [bytes(rng.integers(0, 256, size=3 * 7, dtype=np.uint8)) for _ in range(5)]
put("bmp", "rgb24.bmp", bmp(7, 5, 24, rgb_rows))
put("bmp", "rgb24-core.bmp", bmp(7, 5, 24, rgb_rows, core=True))
bgrx_rows = [bytes(rng.integers(0, 256, size=4 * 6, dtype=np.uint8)) for _ in range(4)]
put("bmp", "bgrx32.bmp", bmp(6, 4, 32, bgrx_rows))
put("bmp", "bgra32-v4.bmp", bmp(6, 4, 32, bgrx_rows, v4=True, masks=(0x00FF0000, 0x0000FF00, 0x000000FF, 0xFF000000)))
put("bmp", "bgrx32-bitfields.bmp", bmp(6, 4, 32, bgrx_rows, masks=(0x00FF0000, 0x0000FF00, 0x000000FF)))
put("bmp", "one-pixel.bmp", bmp(1, 1, 24, [b"\x01\x02\x03"]))


# ---------------------------------------------------------------- safetensors
from safetensors.numpy import save as safetensors_save  # noqa: E402

put("safetensors", "f32.safetensors",
    safetensors_save({"weight": rng.standard_normal((2, 3)).astype(np.float32), "bias": np.zeros(3, np.float32)}, {"format": "pt"}))
put("safetensors", "dtypes.safetensors", safetensors_save({
    "f64": np.array([1.5, -2], np.float64), "f16": np.array([1, np.inf, -0.0], np.float16),
    "i64": np.array([7], np.int64), "i32": np.array([-3, 4], np.int32), "i16": np.array([5], np.int16),
    "i8": np.array([-1], np.int8), "u8": np.array([200], np.uint8), "u16": np.array([9], np.uint16),
    "u32": np.array([10], np.uint32), "u64": np.array([11], np.uint64), "bool": np.array([True, False]),
}))
put("safetensors", "scalar-and-empty.safetensors", safetensors_save({"scalar": np.array(3.0, np.float32), "empty": np.zeros((0, 4), np.float32)}))
bf16_header = json.dumps({"b": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}}).encode()
bf16_header += b" " * (-len(bf16_header) % 8)
put("safetensors", "bf16.safetensors", struct.pack("<Q", len(bf16_header)) + bf16_header + b"\x80\x3f\x00\xc0")
checkpoint_metadata = {
    "fusekit.checkpoint": "1", "fusekit.step": "3", "fusekit.epoch": "1", "fusekit.models": '["fusion","task"]',
    "fusekit.optim.fusion.step": "3", "fusekit.rng": "1,2,3,4", "user.recipe": "name: seed",
}
checkpoint_tensors = {
    "fusion.param.conv.weight": rng.standard_normal((2, 1, 1, 1)).astype(np.float32),
    "fusion.buffer.norm.running_mean": np.zeros(2, np.float32),
    "fusion.optim.exp_avg.conv.weight": np.zeros((2, 1, 1, 1), np.float32),
    "fusion.optim.exp_avg_sq.conv.weight": np.zeros((2, 1, 1, 1), np.float32),
    "task.param.head.bias": np.ones(1, np.float32),
}
put("safetensors", "checkpoint.safetensors", safetensors_save(checkpoint_tensors, checkpoint_metadata))


def crc32c(data, crc=0):
    """CRC-32C, bit by bit (an implementation independent of FuseKit's)."""
    crc ^= 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def fusekit_checkpoint(tensors, metadata):
    """A format-2 FuseKit checkpoint: F32 tensors, names sorted, data contiguous, and the CRC-32C
    of the tensor table, the metadata and the data section (Checkpoint.swift's definition)."""
    table, offset, data = [], 0, b""
    for name in sorted(tensors):
        raw = np.ascontiguousarray(tensors[name], dtype="<f4").tobytes()
        table.append((name, "F32", list(tensors[name].shape), offset, offset + len(raw)))
        offset += len(raw)
        data += raw
    canonical = "".join("%s\0%s\0%s\0%d,%d\0" % (n, d, ",".join(map(str, sh)), b, e) for n, d, sh, b, e in table)
    canonical += "\u0001" + "".join("%s\0%s\0" % (k, metadata[k]) for k in sorted(metadata))
    metadata = dict(metadata, **{"fusekit.checkpoint": "2"})
    checksum = crc32c(data, crc32c(canonical.encode()))
    metadata["fusekit.checksum"] = "crc32c:%08x" % checksum
    return safetensors_save(tensors, metadata)


v2_metadata = dict(checkpoint_metadata, **{"fusekit.checkpoint": "2"})
put("safetensors", "checkpoint-v2.safetensors", fusekit_checkpoint(checkpoint_tensors, v2_metadata))


# ---------------------------------------------------------------- recipes, YOLO txt, VOC XML
# The shipped recipes without their comments (shorter inputs run faster), the demo's TDFusion
# recipe as it is (demo.yaml: comments and all).
for name in sorted(os.listdir(os.path.join(ROOT, "recipes"))) + ["demo/tdfusion.yaml"]:
    path = os.path.join(ROOT, "recipes", name)
    if not os.path.isfile(path):
        continue
    with open(path, "rb") as f:
        text = f.read()
    if name.startswith("demo/"):
        put("recipe", "demo.yaml", text)
    else:
        put("recipe", name, b"".join(line for line in text.splitlines(keepends=True) if not line.lstrip().startswith(b"#")))
# One small recipe per group of settings, so that mutations reach each value quickly.
put("recipe", "min-schedules.yaml", b"""data: { synthetic: { train-count: 2, test-count: 1, width: 8, height: 8, night-fraction: 0.5, seed: 3 } }
fusion: { plugin: f, schedule: { kind: step, step: 2, gamma: 0.5, warmup: 1, warmup-start-factor: 0.1 } }
loss-generator: { plugin: g, schedule: { kind: poly, total: 5, power: 0.9, minimum: 0 } }
task: { plugin: t, schedule: { kind: cosine, t-max: 3, eta-min: 0 } }
""")
put("recipe", "min-optimizers.yaml", b"""seed: 5
data: { root: d, batch-size: 1, crop: [8, 8] }
fusion: { plugin: f, optimizer: { kind: adamw, learning-rate: 1e-3, weight-decay: 0.1, beta1: 0.5, beta2: 0.9, epsilon: 1e-6 } }
task: { plugin: t, optimizer: { kind: sgd, momentum: 0.9, nesterov: true }, input-size: [4, 4] }
training: { epochs: 1, meta-steps: 1, inner-learning-rate: 0.1, fusion-task-weight: 0.5, fusion-steps-per-epoch: 1, checkpoint-every: 1, log-every: 1, preview-pairs: 0, schedule-unit: step }
evaluation: { max-pairs: 1, per-pair: false }
fusion-loss: { alpha: 0.5 }
""")
put("recipe", "regression-negative-seed.yaml", b"seed: -1\ndata: {root: x}\nfusion: {plugin: a}\ntask: {plugin: b}\n")
put("recipe", "regression-step-zero.yaml", b"data: {root: x}\nfusion: {plugin: a, schedule: {kind: step, step: 0}}\ntask: {plugin: b}\n")
# (The 534-byte alias bomb of RecipeFuzzRegressionTests is not a seed: even refused after
# 100,000 values it costs tens of milliseconds under ASan, and its mutants slow the whole run.)

put("yolo", "boxes.txt", b"0 0.5 0.5 0.25 0.125\n3 0.1 0.2 0.05 0.06\n")
put("yolo", "scores-comments.txt", b"# predictions\n1 0.4 0.4 0.2 0.2 0.91\n\n2\t0.6\t0.7\t0.1\t0.3\t0.05\n")
put("yolo", "commas.txt", b"5,0.5,0.5,1,1\r\n")
put("yolo", "empty.txt", b"")

put("voc", "m3fd.xml", b"""<annotation>
  <filename>00001.png</filename>
  <size><width>1024</width><height>768</height><depth>3</depth></size>
  <object><name>People</name><difficult>0</difficult>
    <bndbox><xmin>10</xmin><ymin>20</ymin><xmax>40</xmax><ymax>90</ymax></bndbox></object>
  <object><name>car</name><difficult>1</difficult>
    <bndbox><xmin>100.5</xmin><ymin>200</ymin><xmax>300</xmax><ymax>260.25</ymax></bndbox></object>
</annotation>
""")
put("voc", "no-size.xml", b"<annotation><object><name>Lamp</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>3</xmax><ymax>4</ymax></bndbox></object></annotation>")
put("voc", "entities.xml", b"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE annotation [<!ENTITY w "640">]>
<annotation><size><width>&w;</width><height>480</height></size><!-- comment --><![CDATA[x]]></annotation>
""")

# ---------------------------------------------------------------- PyTorch checkpoints (.pth)
# The reader's test fixtures as they are (zip and legacy layouts, big-endian, nested and
# ambiguous state dicts, a whole pickled module, and three files whose pickles call os.system,
# builtins.eval or a legacy global: the restricted unpickler must refuse them), a small state
# dict saved by torch (several dtypes, a strided view, shared storage) in both layouts, and the
# bare data.pkl pickles of the zip files: the harness also reads its input as the data.pkl of an
# archive it builds (storages 0 to 7 of 1 KiB each), so these reach the unpickler directly.
def pth_seeds():
    import shutil
    import zipfile
    fixtures = os.path.join(ROOT, "Tests", "FuseKitNNTests", "Fixtures")
    for name in sorted(os.listdir(fixtures)):
        if name.endswith(".pth"):
            shutil.copyfile(os.path.join(fixtures, name), os.path.join(CORPUS, "pth", name))
    import torch
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    state = {"conv.weight": base, "conv.bias": torch.tensor([0.5, -1.0, 2.0], dtype=torch.float16),
             "bn.num_batches_tracked": torch.tensor(7), "view.t": base.t(), "flags": torch.tensor([True, False]),
             "bf16": torch.tensor([1.5, -2.0], dtype=torch.bfloat16), "f64": torch.tensor([[3.25]], dtype=torch.float64)}
    zipped, legacy = io.BytesIO(), io.BytesIO()
    torch.save(state, zipped)
    torch.save(state, legacy, _use_new_zipfile_serialization=False)
    put("pth", "small-zip.pth", zipped.getvalue())
    put("pth", "small-legacy.pth", legacy.getvalue())
    zip_files = [os.path.join(CORPUS, "pth", n) for n in sorted(os.listdir(os.path.join(CORPUS, "pth")))]
    for path in zip_files:
        if not zipfile.is_zipfile(path):
            continue
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                if member.endswith("/data.pkl"):
                    put("pth", os.path.basename(path)[:-4] + "-data.pkl", archive.read(member))


os.makedirs(os.path.join(CORPUS, "pth"), exist_ok=True)
pth_seeds()

print("seeds written to", CORPUS, file=sys.stderr)
