"""A small, faithful PyTorch transcription of Ultralytics YOLOv8 (8.1/8.2): the model built from
yolov8.yaml (Conv, Bottleneck, C2f, SPPF, Concat, Upsample, Detect with DFL), and
v8DetectionLoss (TaskAlignedAssigner top-k 10, alpha 0.5, beta 6; CIoU; DFL; BCE; gains 7.5,
0.5, 1.5), for the parameter counts, the worked unit cases and the parity fixture of
YOLOv8ParityTests.swift.

Usage: python3 yolov8_reference.py          (prints parameter counts and the unit-case figures)
       python3 yolov8_reference.py --write  (writes yolov8_parity.safetensors next to this file)

The fixture holds the weights (filled from a formula, see formula_state), two images and their
boxes; for a training pass (BatchNorm on batch statistics) the Detect head's raw outputs, the
loss, its three terms, the assignment (positive anchors, their boxes, target scores), the
gradient of the loss with respect to every parameter and the input, and the BatchNorm statistics
after the pass; for an evaluation pass the raw outputs and the decoded predictions. Everything is
computed in float64 and stored as float32. The model is reduced (width 1/32, 8 DFL bins, 2
classes; the official widths are checked by the parameter-count tests) but has every block:
Conv, C2f with and without shortcuts and with one and two bottlenecks, SPPF, upsampling and
concatenation, the Detect head at three strides and the DFL. For each tensor the fixture also
holds PyTorch's own float32 error on it (`f32error.*`), the scale of what float32 can reach where
the quantity is ill-conditioned (BatchNorm on the batch statistics of 2 x 2 maps). The script
refuses to write a fixture that sits where float32 rounding decides (see write_fixture).
"""
import json
import math
import os
import sys
import torch
import torch.nn as nn
import torch.nn.functional as F

# ---------------------------------------------------------------- model (ultralytics/nn)

def autopad(k, p=None):
    if p is None:
        p = k // 2 if isinstance(k, int) else [x // 2 for x in k]
    return p


class Conv(nn.Module):
    def __init__(self, c1, c2, k=1, s=1, p=None, g=1):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, autopad(k, p), groups=g, bias=False)
        self.bn = nn.BatchNorm2d(c2)
        self.act = nn.SiLU()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class Bottleneck(nn.Module):
    def __init__(self, c1, c2, shortcut=True, g=1, k=(3, 3), e=0.5):
        super().__init__()
        c_ = int(c2 * e)
        self.cv1 = Conv(c1, c_, k[0], 1)
        self.cv2 = Conv(c_, c2, k[1], 1, g=g)
        self.add = shortcut and c1 == c2

    def forward(self, x):
        return x + self.cv2(self.cv1(x)) if self.add else self.cv2(self.cv1(x))


class C2f(nn.Module):
    def __init__(self, c1, c2, n=1, shortcut=False, g=1, e=0.5):
        super().__init__()
        self.c = int(c2 * e)
        self.cv1 = Conv(c1, 2 * self.c, 1, 1)
        self.cv2 = Conv((2 + n) * self.c, c2, 1)
        self.m = nn.ModuleList(Bottleneck(self.c, self.c, shortcut, g, k=((3, 3), (3, 3)), e=1.0) for _ in range(n))

    def forward(self, x):
        y = list(self.cv1(x).chunk(2, 1))
        y.extend(m(y[-1]) for m in self.m)
        return self.cv2(torch.cat(y, 1))


class SPPF(nn.Module):
    def __init__(self, c1, c2, k=5):
        super().__init__()
        c_ = c1 // 2
        self.cv1 = Conv(c1, c_, 1, 1)
        self.cv2 = Conv(c_ * 4, c2, 1, 1)
        self.m = nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2)

    def forward(self, x):
        x = self.cv1(x)
        y1 = self.m(x)
        y2 = self.m(y1)
        return self.cv2(torch.cat((x, y1, y2, self.m(y2)), 1))


class Concat(nn.Module):
    def forward(self, x):
        return torch.cat(x, 1)


class DFL(nn.Module):
    def __init__(self, c1=16):
        super().__init__()
        self.conv = nn.Conv2d(c1, 1, 1, bias=False).requires_grad_(False)
        self.conv.weight.data[:] = torch.arange(c1, dtype=torch.float).view(1, c1, 1, 1)
        self.c1 = c1

    def forward(self, x):
        b, _, a = x.shape
        return self.conv(x.view(b, 4, self.c1, a).transpose(2, 1).softmax(1)).view(b, 4, a)


def make_anchors(feats, strides, grid_cell_offset=0.5):
    anchor_points, stride_tensor = [], []
    for i, stride in enumerate(strides):
        _, _, h, w = feats[i].shape
        sx = torch.arange(end=w, dtype=feats[0].dtype) + grid_cell_offset
        sy = torch.arange(end=h, dtype=feats[0].dtype) + grid_cell_offset
        sy, sx = torch.meshgrid(sy, sx, indexing="ij")
        anchor_points.append(torch.stack((sx, sy), -1).view(-1, 2))
        stride_tensor.append(torch.full((h * w, 1), stride, dtype=feats[0].dtype))
    return torch.cat(anchor_points), torch.cat(stride_tensor)


def dist2bbox(distance, anchor_points, xywh=True, dim=-1):
    lt, rb = distance.chunk(2, dim)
    x1y1 = anchor_points - lt
    x2y2 = anchor_points + rb
    if xywh:
        return torch.cat(((x1y1 + x2y2) / 2, x2y2 - x1y1), dim)
    return torch.cat((x1y1, x2y2), dim)


def bbox2dist(anchor_points, bbox, reg_max):
    x1y1, x2y2 = bbox.chunk(2, -1)
    return torch.cat((anchor_points - x1y1, x2y2 - anchor_points), -1).clamp_(0, reg_max - 0.01)


class Detect(nn.Module):
    def __init__(self, nc=80, ch=(), reg_max=16):
        super().__init__()
        self.nc = nc
        self.nl = len(ch)
        self.reg_max = reg_max
        self.no = nc + self.reg_max * 4
        self.stride = torch.zeros(self.nl)
        c2, c3 = max((16, ch[0] // 4, self.reg_max * 4)), max(ch[0], min(self.nc, 100))
        self.cv2 = nn.ModuleList(nn.Sequential(Conv(x, c2, 3), Conv(c2, c2, 3), nn.Conv2d(c2, 4 * self.reg_max, 1)) for x in ch)
        self.cv3 = nn.ModuleList(nn.Sequential(Conv(x, c3, 3), Conv(c3, c3, 3), nn.Conv2d(c3, self.nc, 1)) for x in ch)
        self.dfl = DFL(self.reg_max)

    def forward(self, x):
        for i in range(self.nl):
            x[i] = torch.cat((self.cv2[i](x[i]), self.cv3[i](x[i])), 1)
        if self.training:
            return x
        shape = x[0].shape
        anchors, strides = (t.transpose(0, 1) for t in make_anchors(x, self.stride, 0.5))
        x_cat = torch.cat([xi.view(shape[0], self.no, -1) for xi in x], 2)
        box, cls = x_cat.split((self.reg_max * 4, self.nc), 1)
        dbox = dist2bbox(self.dfl(box), anchors.unsqueeze(0), xywh=True, dim=1) * strides
        return torch.cat((dbox, cls.sigmoid()), 1), x

    def bias_init(self):
        for a, b, s in zip(self.cv2, self.cv3, self.stride):
            a[-1].bias.data[:] = 1.0
            b[-1].bias.data[: self.nc] = math.log(5 / self.nc / (640 / s) ** 2)


BACKBONE = [[-1, 1, Conv, [64, 3, 2]], [-1, 1, Conv, [128, 3, 2]], [-1, 3, C2f, [128, True]],
            [-1, 1, Conv, [256, 3, 2]], [-1, 6, C2f, [256, True]], [-1, 1, Conv, [512, 3, 2]],
            [-1, 6, C2f, [512, True]], [-1, 1, Conv, [1024, 3, 2]], [-1, 3, C2f, [1024, True]],
            [-1, 1, SPPF, [1024, 5]]]
HEAD = [[-1, 1, nn.Upsample, [None, 2, "nearest"]], [[-1, 6], 1, Concat, [1]], [-1, 3, C2f, [512]],
        [-1, 1, nn.Upsample, [None, 2, "nearest"]], [[-1, 4], 1, Concat, [1]], [-1, 3, C2f, [256]],
        [-1, 1, Conv, [256, 3, 2]], [[-1, 12], 1, Concat, [1]], [-1, 3, C2f, [512]],
        [-1, 1, Conv, [512, 3, 2]], [[-1, 9], 1, Concat, [1]], [-1, 3, C2f, [1024]],
        [[15, 18, 21], 1, Detect, ["nc"]]]
SCALES = {"n": (0.33, 0.25, 1024), "s": (0.33, 0.50, 1024)}


class DetectionModel(nn.Module):
    """tasks.parse_model + DetectionModel.__init__ (strides from a 256x256 pass, bias_init,
    BatchNorm eps 1e-3 and momentum 0.03)."""

    def __init__(self, scale=(0.33, 0.25, 1024), ch=1, nc=80, reg_max=16):
        super().__init__()
        depth, width, max_channels = scale
        chs, layers, self.save = [ch], [], []
        for i, (f, n, m, args) in enumerate(BACKBONE + HEAD):
            n = max(round(n * depth), 1) if n > 1 else n
            if m in (Conv, C2f, SPPF):
                c1, c2 = chs[f], args[0]
                c2 = math.ceil(min(c2, max_channels) * width / 8) * 8
                args = [c1, c2, *args[1:]]
                if m is C2f:
                    args.insert(2, n)
                    n = 1
            elif m is Concat:
                c2 = sum(chs[x] for x in f)
                args = []
            elif m is Detect:
                args = [nc, [chs[x] for x in f], reg_max]
                c2 = None
            else:
                c2 = chs[f]
            mod = nn.Sequential(*(m(*args) for _ in range(n))) if n > 1 else m(*args)
            mod.i, mod.f = i, f
            self.save.extend(x % i for x in ([f] if isinstance(f, int) else f) if x != -1)
            layers.append(mod)
            if i == 0:
                chs = []
            chs.append(c2)
        self.model = nn.Sequential(*layers)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eps, m.momentum = 1e-3, 0.03
        det = self.model[-1]
        self.eval()
        det.stride = torch.tensor([256 / x.shape[-2] for x in self.forward(torch.zeros(1, ch, 256, 256))[1]])
        self.train()
        det.bias_init()

    def forward(self, x):
        y = []
        for m in self.model:
            if m.f != -1:
                x = y[m.f] if isinstance(m.f, int) else [x if j == -1 else y[j] for j in m.f]
            x = m(x)
            y.append(x if m.i in self.save else None)
        return x

# ---------------------------------------------------------------- loss (ultralytics/utils)

def bbox_iou(box1, box2, xywh=True, CIoU=False, eps=1e-7):
    b1_x1, b1_y1, b1_x2, b1_y2 = box1.chunk(4, -1)
    b2_x1, b2_y1, b2_x2, b2_y2 = box2.chunk(4, -1)
    w1, h1 = b1_x2 - b1_x1, b1_y2 - b1_y1 + eps
    w2, h2 = b2_x2 - b2_x1, b2_y2 - b2_y1 + eps
    inter = (b1_x2.minimum(b2_x2) - b1_x1.maximum(b2_x1)).clamp_(0) * (b1_y2.minimum(b2_y2) - b1_y1.maximum(b2_y1)).clamp_(0)
    union = w1 * h1 + w2 * h2 - inter + eps
    iou = inter / union
    cw = b1_x2.maximum(b2_x2) - b1_x1.minimum(b2_x1)
    ch = b1_y2.maximum(b2_y2) - b1_y1.minimum(b2_y1)
    c2 = cw.pow(2) + ch.pow(2) + eps
    rho2 = ((b2_x1 + b2_x2 - b1_x1 - b1_x2).pow(2) + (b2_y1 + b2_y2 - b1_y1 - b1_y2).pow(2)) / 4
    v = (4 / math.pi ** 2) * ((w2 / h2).atan() - (w1 / h1).atan()).pow(2)
    with torch.no_grad():
        alpha = v / (v - iou + (1 + eps))
    return iou - (rho2 / c2 + v * alpha)


class TaskAlignedAssigner(nn.Module):
    def __init__(self, topk=13, num_classes=80, alpha=1.0, beta=6.0, eps=1e-9):
        super().__init__()
        self.topk, self.num_classes, self.bg_idx = topk, num_classes, num_classes
        self.alpha, self.beta, self.eps = alpha, beta, eps

    @torch.no_grad()
    def forward(self, pd_scores, pd_bboxes, anc_points, gt_labels, gt_bboxes, mask_gt):
        self.bs = pd_scores.shape[0]
        self.n_max_boxes = gt_bboxes.shape[1]
        if self.n_max_boxes == 0:
            return (torch.full_like(pd_scores[..., 0], self.bg_idx), torch.zeros_like(pd_bboxes),
                    torch.zeros_like(pd_scores), torch.zeros_like(pd_scores[..., 0]), torch.zeros_like(pd_scores[..., 0]))
        mask_pos, align_metric, overlaps = self.get_pos_mask(pd_scores, pd_bboxes, gt_labels, gt_bboxes, anc_points, mask_gt)
        target_gt_idx, fg_mask, mask_pos = self.select_highest_overlaps(mask_pos, overlaps, self.n_max_boxes)
        target_labels, target_bboxes, target_scores = self.get_targets(gt_labels, gt_bboxes, target_gt_idx, fg_mask)
        align_metric *= mask_pos
        pos_align_metrics = align_metric.amax(dim=-1, keepdim=True)
        pos_overlaps = (overlaps * mask_pos).amax(dim=-1, keepdim=True)
        norm_align_metric = (align_metric * pos_overlaps / (pos_align_metrics + self.eps)).amax(-2).unsqueeze(-1)
        target_scores = target_scores * norm_align_metric
        return target_labels, target_bboxes, target_scores, fg_mask.bool(), target_gt_idx

    def get_pos_mask(self, pd_scores, pd_bboxes, gt_labels, gt_bboxes, anc_points, mask_gt):
        mask_in_gts = self.select_candidates_in_gts(anc_points, gt_bboxes)
        align_metric, overlaps = self.get_box_metrics(pd_scores, pd_bboxes, gt_labels, gt_bboxes, mask_in_gts * mask_gt)
        mask_topk = self.select_topk_candidates(align_metric, topk_mask=mask_gt.expand(-1, -1, self.topk).bool())
        return mask_topk * mask_in_gts * mask_gt, align_metric, overlaps

    def get_box_metrics(self, pd_scores, pd_bboxes, gt_labels, gt_bboxes, mask_gt):
        na = pd_bboxes.shape[-2]
        mask_gt = mask_gt.bool()
        overlaps = torch.zeros([self.bs, self.n_max_boxes, na], dtype=pd_bboxes.dtype)
        bbox_scores = torch.zeros([self.bs, self.n_max_boxes, na], dtype=pd_scores.dtype)
        ind = torch.zeros([2, self.bs, self.n_max_boxes], dtype=torch.long)
        ind[0] = torch.arange(end=self.bs).view(-1, 1).expand(-1, self.n_max_boxes)
        ind[1] = gt_labels.squeeze(-1)
        bbox_scores[mask_gt] = pd_scores[ind[0], :, ind[1]][mask_gt]
        pd_boxes = pd_bboxes.unsqueeze(1).expand(-1, self.n_max_boxes, -1, -1)[mask_gt]
        gt_boxes = gt_bboxes.unsqueeze(2).expand(-1, -1, na, -1)[mask_gt]
        overlaps[mask_gt] = bbox_iou(gt_boxes, pd_boxes, xywh=False, CIoU=True).squeeze(-1).clamp_(0)
        align_metric = bbox_scores.pow(self.alpha) * overlaps.pow(self.beta)
        return align_metric, overlaps

    def select_topk_candidates(self, metrics, largest=True, topk_mask=None):
        topk_metrics, topk_idxs = torch.topk(metrics, self.topk, dim=-1, largest=largest)
        topk_idxs.masked_fill_(~topk_mask, 0)
        count_tensor = torch.zeros(metrics.shape, dtype=torch.int8)
        ones = torch.ones_like(topk_idxs[:, :, :1], dtype=torch.int8)
        for k in range(self.topk):
            count_tensor.scatter_add_(-1, topk_idxs[:, :, k:k + 1], ones)
        count_tensor.masked_fill_(count_tensor > 1, 0)
        return count_tensor.to(metrics.dtype)

    def get_targets(self, gt_labels, gt_bboxes, target_gt_idx, fg_mask):
        batch_ind = torch.arange(end=self.bs, dtype=torch.int64)[..., None]
        target_gt_idx = target_gt_idx + batch_ind * self.n_max_boxes
        target_labels = gt_labels.long().flatten()[target_gt_idx]
        target_bboxes = gt_bboxes.view(-1, gt_bboxes.shape[-1])[target_gt_idx]
        target_labels.clamp_(0)
        target_scores = torch.zeros((target_labels.shape[0], target_labels.shape[1], self.num_classes), dtype=torch.int64)
        target_scores.scatter_(2, target_labels.unsqueeze(-1), 1)
        fg_scores_mask = fg_mask[:, :, None].repeat(1, 1, self.num_classes)
        target_scores = torch.where(fg_scores_mask > 0, target_scores, 0)
        return target_labels, target_bboxes, target_scores

    @staticmethod
    def select_candidates_in_gts(xy_centers, gt_bboxes, eps=1e-9):
        n_anchors = xy_centers.shape[0]
        bs, n_boxes, _ = gt_bboxes.shape
        lt, rb = gt_bboxes.view(-1, 1, 4).chunk(2, 2)
        bbox_deltas = torch.cat((xy_centers[None] - lt, rb - xy_centers[None]), dim=2).view(bs, n_boxes, n_anchors, -1)
        return bbox_deltas.amin(3).gt_(eps)

    @staticmethod
    def select_highest_overlaps(mask_pos, overlaps, n_max_boxes):
        fg_mask = mask_pos.sum(-2)
        if fg_mask.max() > 1:
            mask_multi_gts = (fg_mask.unsqueeze(1) > 1).expand(-1, n_max_boxes, -1)
            max_overlaps_idx = overlaps.argmax(1)
            is_max_overlaps = torch.zeros(mask_pos.shape, dtype=mask_pos.dtype)
            is_max_overlaps.scatter_(1, max_overlaps_idx.unsqueeze(1), 1)
            mask_pos = torch.where(mask_multi_gts, is_max_overlaps, mask_pos).float()
            fg_mask = mask_pos.sum(-2)
        target_gt_idx = mask_pos.argmax(-2)
        return target_gt_idx, fg_mask, mask_pos


class DFLoss(nn.Module):
    def __init__(self, reg_max=16):
        super().__init__()
        self.reg_max = reg_max

    def __call__(self, pred_dist, target):
        target = target.clamp_(0, self.reg_max - 1 - 0.01)
        tl = target.long()
        tr = tl + 1
        wl = tr - target
        wr = 1 - wl
        return (F.cross_entropy(pred_dist, tl.view(-1), reduction="none").view(tl.shape) * wl
                + F.cross_entropy(pred_dist, tr.view(-1), reduction="none").view(tl.shape) * wr).mean(-1, keepdim=True)


class BboxLoss(nn.Module):
    def __init__(self, reg_max=16):
        super().__init__()
        self.dfl_loss = DFLoss(reg_max)

    def forward(self, pred_dist, pred_bboxes, anchor_points, target_bboxes, target_scores, target_scores_sum, fg_mask):
        weight = target_scores.sum(-1)[fg_mask].unsqueeze(-1)
        iou = bbox_iou(pred_bboxes[fg_mask], target_bboxes[fg_mask], xywh=False, CIoU=True)
        loss_iou = ((1.0 - iou) * weight).sum() / target_scores_sum
        target_ltrb = bbox2dist(anchor_points, target_bboxes, self.dfl_loss.reg_max - 1)
        loss_dfl = self.dfl_loss(pred_dist[fg_mask].view(-1, self.dfl_loss.reg_max), target_ltrb[fg_mask]) * weight
        return loss_iou, loss_dfl.sum() / target_scores_sum


def xywh2xyxy(x):
    y = torch.empty_like(x)
    dw, dh = x[..., 2] / 2, x[..., 3] / 2
    y[..., 0], y[..., 1] = x[..., 0] - dw, x[..., 1] - dh
    y[..., 2], y[..., 3] = x[..., 0] + dw, x[..., 1] + dh
    return y


class v8DetectionLoss:
    def __init__(self, model, tal_topk=10, box=7.5, cls=0.5, dfl=1.5):
        m = model.model[-1]
        self.bce = nn.BCEWithLogitsLoss(reduction="none")
        self.gains = (box, cls, dfl)
        self.stride, self.nc, self.reg_max = m.stride, m.nc, m.reg_max
        self.no = m.nc + m.reg_max * 4
        self.assigner = TaskAlignedAssigner(topk=tal_topk, num_classes=self.nc, alpha=0.5, beta=6.0)
        self.bbox_loss = BboxLoss(m.reg_max)
        self.proj = torch.arange(m.reg_max, dtype=torch.float)

    def preprocess(self, targets, batch_size, scale_tensor):
        if targets.shape[0] == 0:
            return torch.zeros(batch_size, 0, 5)
        i = targets[:, 0]
        _, counts = i.unique(return_counts=True)
        out = torch.zeros(batch_size, counts.max(), 5)
        for j in range(batch_size):
            matches = i == j
            n = matches.sum()
            if n:
                out[j, :n] = targets[matches, 1:]
        out[..., 1:5] = xywh2xyxy(out[..., 1:5].mul_(scale_tensor))
        return out

    def bbox_decode(self, anchor_points, pred_dist):
        b, a, c = pred_dist.shape
        pred_dist = pred_dist.view(b, a, 4, c // 4).softmax(3).matmul(self.proj.type(pred_dist.dtype))
        return dist2bbox(pred_dist, anchor_points, xywh=False)

    def __call__(self, feats, batch):
        loss = torch.zeros(3)
        pred_distri, pred_scores = torch.cat([xi.view(feats[0].shape[0], self.no, -1) for xi in feats], 2).split(
            (self.reg_max * 4, self.nc), 1)
        pred_scores = pred_scores.permute(0, 2, 1).contiguous()
        pred_distri = pred_distri.permute(0, 2, 1).contiguous()
        dtype = pred_scores.dtype
        batch_size = pred_scores.shape[0]
        imgsz = torch.tensor(feats[0].shape[2:], dtype=dtype) * self.stride[0]
        anchor_points, stride_tensor = make_anchors(feats, self.stride, 0.5)
        targets = torch.cat((batch["batch_idx"].view(-1, 1), batch["cls"].view(-1, 1), batch["bboxes"]), 1)
        targets = self.preprocess(targets, batch_size, scale_tensor=imgsz[[1, 0, 1, 0]])
        gt_labels, gt_bboxes = targets.split((1, 4), 2)
        mask_gt = gt_bboxes.sum(2, keepdim=True).gt_(0.0)
        pred_bboxes = self.bbox_decode(anchor_points, pred_distri)
        _, target_bboxes, target_scores, fg_mask, target_gt_idx = self.assigner(
            pred_scores.detach().sigmoid(), (pred_bboxes.detach() * stride_tensor).type(gt_bboxes.dtype),
            anchor_points * stride_tensor, gt_labels, gt_bboxes, mask_gt)
        target_scores_sum = max(target_scores.sum(), 1)
        loss[1] = self.bce(pred_scores, target_scores.to(dtype)).sum() / target_scores_sum
        if fg_mask.sum():
            target_bboxes /= stride_tensor
            loss[0], loss[2] = self.bbox_loss(pred_distri, pred_bboxes, anchor_points, target_bboxes, target_scores,
                                              target_scores_sum, fg_mask)
        loss[0] *= self.gains[0]
        loss[1] *= self.gains[1]
        loss[2] *= self.gains[2]
        self.last = dict(fg=int(fg_mask.sum()), tss=float(target_scores_sum), target_scores=target_scores, fg_mask=fg_mask,
                         target_gt_idx=target_gt_idx, assigner_inputs=(pred_scores.detach().sigmoid(), (pred_bboxes.detach() * stride_tensor),
                                                                       anchor_points * stride_tensor, gt_labels, gt_bboxes, mask_gt))
        return loss.sum() * batch_size, loss.detach()

# ---------------------------------------------------------------- deterministic parameters

def formula_state(model):
    """Every parameter and buffer from a formula of its sorted-name index k and element index i:
    s = sin(1.7 i + 0.61 k + 0.3); conv weights s / sqrt(fan_in); conv biases 0.5 s;
    BatchNorm weight 1 + 0.2 s, bias 0.1 s, running_mean 0.1 s, running_var 1 + 0.3 |s|;
    num_batches_tracked 0; the DFL conv keeps its arange."""
    sd = model.state_dict()
    with torch.no_grad():
        for k, name in enumerate(sorted(sd)):
            t = sd[name]
            if name.endswith("num_batches_tracked") or name.endswith("dfl.conv.weight"):
                continue
            s = torch.tensor([math.sin(1.7 * i + 0.61 * k + 0.3) for i in range(t.numel())], dtype=torch.float64)
            if name.endswith("bn.weight"):
                v = 1 + 0.2 * s
            elif name.endswith("bn.bias") or name.endswith("running_mean"):
                v = 0.1 * s
            elif name.endswith("running_var"):
                v = 1 + 0.3 * s.abs()
            elif name.endswith(".bias"):
                v = 0.5 * s
            else:
                v = s / math.sqrt(t[0].numel())
            t.copy_(v.view(t.shape).to(torch.float32))


def formula_image(b, c, h, w):
    x = torch.zeros(b, c, h, w, dtype=torch.float64)
    for n in range(b):
        for y in range(h):
            for xx in range(w):
                x[n, 0, y, xx] = 0.5 + 0.4 * math.sin(0.3 * y + 0.7 * xx + 1.3 * n)
    return x.to(torch.float32)


def trainable(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


PARITY = dict(depth=0.33, width=0.03125, max_channels=1024, ch=1, nc=2, reg_max=8)
IMAGE_SIZE = (2, 64, 64)
# Boxes (image, class, cx, cy, w, h normalised): two overlapping objects in image 0, one in image 1.
# No box edge lies on an anchor centre (x or y = 4 + 8i, 8 + 16i, 16 + 32i pixels).
BOXES = [[0, 0, 0.30, 0.40, 0.25, 0.50], [0, 1, 0.40, 0.46, 0.50, 0.40], [1, 1, 0.70, 0.60, 0.40, 0.32]]


def assignment_margins(assigner, pd_scores, pd_bboxes, anc_points, gt_labels, gt_bboxes, mask_gt):
    """How far the assignment is from changing: the smallest distance (pixels) of an anchor centre
    to a box edge, the smallest gap between the k-th and (k+1)-th alignment of a box relative to
    the k-th (where the k-th is positive), and the smallest gap between the two best overlaps of an
    anchor claimed twice."""
    assigner.bs, assigner.n_max_boxes = pd_scores.shape[0], gt_bboxes.shape[1]
    lt, rb = gt_bboxes.view(-1, 1, 4).chunk(2, 2)
    deltas = torch.cat((anc_points[None] - lt, rb - anc_points[None]), dim=2)
    edge = deltas.abs().min().item()  # pixels
    mask_in = assigner.select_candidates_in_gts(anc_points, gt_bboxes)
    metric, overlaps = assigner.get_box_metrics(pd_scores, pd_bboxes, gt_labels, gt_bboxes, mask_in * mask_gt)
    ordered = metric.sort(dim=-1, descending=True).values
    k = assigner.topk
    gaps = (ordered[..., k - 1] - ordered[..., k]) / ordered[..., k - 1]  # relative
    topk = gaps[ordered[..., k - 1] > 0].min().item() if (ordered[..., k - 1] > 0).any() else math.inf
    mask_pos, _, _ = assigner.get_pos_mask(pd_scores, pd_bboxes, gt_labels, gt_bboxes, anc_points, mask_gt)
    shared = mask_pos.sum(-2) > 1
    if shared.any():
        best = (overlaps * 1).sort(dim=1, descending=True).values
        overlap = (best[:, 0] - best[:, 1])[shared].min().item()
    else:
        overlap = math.inf
    return dict(edge=edge, topk=topk, shared_overlap=overlap)


def build(state, dtype):
    torch.set_default_dtype(dtype)
    m = DetectionModel((PARITY["depth"], PARITY["width"], PARITY["max_channels"]), ch=PARITY["ch"], nc=PARITY["nc"], reg_max=PARITY["reg_max"])
    if state is not None:
        m.load_state_dict({k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()})
    return m


def head_outputs(feats):
    nc, reg_max = PARITY["nc"], PARITY["reg_max"]
    flat = torch.cat([f.view(f.shape[0], nc + 4 * reg_max, -1) for f in feats], 2)
    return flat[:, :4 * reg_max], flat[:, 4 * reg_max:]


def maxpool_margin(state, x, training):
    """The smallest gap, relative to the map's scale, between the largest value of an SPPF pooling
    window and the largest value below it (a near tie would let rounding move a gradient; exact
    ties are copies of one value made by the previous pooling, and route the gradient to the same
    source)."""
    m = build(state, x.dtype)
    m.train(training)
    sppf = m.model[9]
    gaps = []
    def hook(mod, inp, outp):
        y = outp.detach()
        k = sppf.m.kernel_size
        for _ in range(3):
            patches = F.pad(y, (k // 2,) * 4, value=-math.inf).unfold(2, k, 1).unfold(3, k, 1).flatten(-2)
            top = patches.max(dim=-1, keepdim=True).values
            below = patches.masked_fill(patches == top, -math.inf).max(dim=-1).values
            finite = torch.isfinite(below)
            if finite.any():
                gaps.append(((top[..., 0] - below)[finite] / y.abs().max()).min().item())
            y = sppf.m(y)
    handle = sppf.cv1.register_forward_hook(hook)
    with torch.no_grad():
        m(x)
    handle.remove()
    return min(gaps)


def train_pass(state, x0, labels, dtype):
    """The training pass: head outputs, loss and terms, assignment, gradients, statistics."""
    m = build(state, dtype)
    m.train()
    crit = v8DetectionLoss(m)
    x = x0.to(dtype).requires_grad_(True)
    feats = m(x)
    box, cls = head_outputs(feats)
    labels = labels.to(dtype)
    loss, items = crit(feats, {"batch_idx": labels[:, 0], "cls": labels[:, 1], "bboxes": labels[:, 2:]})
    trainable = {n: p for n, p in m.named_parameters() if p.requires_grad}
    grads = torch.autograd.grad(loss, [x] + list(trainable.values()))
    out = {"head.box": box.detach(), "head.cls": cls.detach(), "loss": loss.detach().reshape(1), "terms": items, "grad.input": grads[0]}
    for name, g in zip(trainable, grads[1:]):
        out["grad." + name] = g
    for name, value in m.state_dict().items():
        if "running" in name or name.endswith("num_batches_tracked"):
            out["buffer." + name] = value.clone()
    last = crit.last
    out["foreground"] = last["fg_mask"].to(dtype)
    out["target_scores"] = last["target_scores"].to(dtype)
    out["ground_truth_index"] = last["target_gt_idx"].to(dtype)
    out["target_score_sum"] = torch.tensor([last["tss"]])
    margins = assignment_margins(crit.assigner, *last["assigner_inputs"])
    return out, margins, dict(foreground=last["fg"], parameters=sum(p.numel() for p in trainable.values()))


def eval_pass(state, x0, dtype):
    """The evaluation pass (running statistics): head outputs and decoded predictions."""
    m = build(state, dtype)
    m.eval()
    with torch.no_grad():
        y, feats = m(x0.to(dtype))
    box, cls = head_outputs(feats)
    return {"head.box": box, "head.cls": cls, "predictions": y}


def write_fixture(path):
    m = build(None, torch.float64)
    formula_state(m)
    state = {k: v.clone() for k, v in m.state_dict().items()}
    x0 = formula_image(IMAGE_SIZE[0], PARITY["ch"], IMAGE_SIZE[1], IMAGE_SIZE[2]).double()
    labels = torch.tensor(BOXES, dtype=torch.float32).double()  # the values Swift reads
    tensors = {"input": x0, "boxes": labels}
    for name, value in state.items():
        tensors["state." + name] = value
    train, margins, facts = train_pass(state, x0, labels, torch.float64)
    evaluation = eval_pass(state, x0, torch.float64)
    # Only the training pass is differentiated; a near tie moves a forward value by the tie's gap.
    margins["maxpool"] = maxpool_margin(state, x0, training=True)
    # The fixture must not sit where float32 rounding decides: an anchor on a box edge, a near tie
    # in the assigner's top k or between two boxes' overlaps, a near tie in a max-pool window.
    assert margins["edge"] > 1e-2 and margins["topk"] > 1e-3 and margins["shared_overlap"] > 1e-3 and margins["maxpool"] > 1e-4, margins
    train32, _, facts32 = train_pass(state, x0, labels, torch.float32)
    evaluation32 = eval_pass(state, x0, torch.float32)
    assert facts32["foreground"] == facts["foreground"]
    for prefix, exact, single in (("train", train, train32), ("eval", evaluation, evaluation32)):
        for key, value in exact.items():
            tensors[f"{prefix}.{key}"] = value
            # PyTorch's own float32 error on this tensor (see YOLOv8ParityTests).
            tensors[f"f32error.{prefix}.{key}"] = (single[key].double() - value.double()).abs().max().reshape(1)
    torch.set_default_dtype(torch.float32)
    out = {k: v.to(torch.float32).contiguous() for k, v in tensors.items()}
    metadata = {"configuration": json.dumps(PARITY), "reference": f"float64, torch {torch.__version__}"}
    from safetensors.torch import save_file
    save_file(out, path, metadata=metadata)
    report = dict(loss=train["loss"].item(), terms=train["terms"].tolist(), margins=margins, **facts)
    return report, sum(v.numel() for v in out.values())


if __name__ == "__main__" and "--write" in sys.argv:
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "yolov8_parity.safetensors")
    report, floats = write_fixture(path)
    print(f"wrote {path}: {floats} floats ({os.path.getsize(path)} bytes)")
    print(report)
elif __name__ == "__main__":
    torch.set_printoptions(precision=8)
    for scale in ("n", "s"):
        for ch, nc in ((3, 80), (1, 80), (1, 6), (1, 2), (1, 1)):
            m = DetectionModel(SCALES[scale], ch=ch, nc=nc)
            print(f"count {scale} ch={ch} nc={nc}: total {sum(p.numel() for p in m.parameters())} trainable {trainable(m)}")
    m = DetectionModel(SCALES["n"], ch=1, nc=6)
    print("n names:", len(m.state_dict()), [k for k in list(m.state_dict())[:8]])
    print("bias cls P3:", m.model[22].cv3[0][2].bias[0].item(), "box:", m.model[22].cv2[0][2].bias[0].item())

    # Hand-made unit-test cases (YOLOv8LossPartsTests).
    anc = torch.tensor([[4., 4.], [12., 4.], [20., 4.], [28., 4.]])
    pd_boxes = torch.tensor([[[0., 0., 16., 8.], [8., 0., 24., 8.], [8., 0., 32., 8.], [24., 0., 32., 8.]]])
    pd_scores = torch.tensor([[[0.81, 0.1], [0.64, 0.36], [0.2, 0.49], [0.05, 0.25]]])
    gt_labels, gt_boxes = torch.tensor([[[0.], [1.]]]), torch.tensor([[[0., 0., 16., 8.], [8., 0., 32., 8.]]])
    for k in (4, 1):  # torch.topk needs k <= anchors: 4 here plays the role of 10
        _, _, ts, fg, idx = TaskAlignedAssigner(topk=k, num_classes=2, alpha=0.5, beta=6.0)(
            pd_scores, pd_boxes, anc, gt_labels, gt_boxes, torch.ones(1, 2, 1))
        print("assigner topk", k, "fg", fg.tolist(), "gt", idx.tolist(), "targets", ts[0].tolist())
    b1 = torch.tensor([[0., 0., 2., 2.], [0., 0., 4., 2.], [0., 0., 1., 1.], [0., 0., 2., 2.]])
    b2 = torch.tensor([[1., 0., 3., 2.], [0., 0., 2., 2.], [2., 0., 3., 1.], [0., 0., 2., 2.]])
    print("ciou", bbox_iou(b1, b2, xywh=False, CIoU=True).flatten().tolist())
    print("dfl", DFLoss(4)(torch.tensor([[0., math.log(3), 0., 0.]] * 4), torch.tensor([[1.25, 5.0, -1.0, 2.0]])).item())
