#!/usr/bin/env python3
"""A scripted model around torchvision::roi_align, and torchvision's own result, for featscope's kernel.

  roi_align_oracle.py MODEL.pt INPUT.f32 N,C,H,W K SCALE PH PW SAMPLING ALIGNED OUT.f32

The model's forward(x) pools x with boxes read from x itself: rows 0..K-1 of image 0's channel 0,
columns 0..4 ([batch index, x1, y1, x2, y2]), so a test can hand it any box, hostile ones too.
The model is saved to MODEL.pt; torchvision.ops.roi_align on INPUT goes to OUT.f32 (when
INPUT.f32 is '-', only the model is written).
"""
import sys

import numpy as np
import torch
import torchvision  # noqa: F401  (registers torchvision::roi_align for scripting and the reference)


class RoiAlign(torch.nn.Module):
    def __init__(self, k: int, scale: float, ph: int, pw: int, sampling: int, aligned: bool):
        super().__init__()
        self.k, self.scale, self.ph, self.pw, self.sampling, self.aligned = k, scale, ph, pw, sampling, aligned

    def forward(self, x):
        rois = x[0, 0, : self.k, :5]
        return torch.ops.torchvision.roi_align(x, rois, self.scale, self.ph, self.pw, self.sampling, self.aligned)


def main():
    model_path, in_path, shape, k, scale, ph, pw, sampling, aligned, out_path = sys.argv[1:]
    m = RoiAlign(int(k), float(scale), int(ph), int(pw), int(sampling), aligned == "true")
    torch.jit.save(torch.jit.script(m), model_path)
    if in_path != "-":
        dims = [int(v) for v in shape.split(",")]
        x = torch.from_numpy(np.fromfile(in_path, dtype="<f4").reshape(dims))
        with torch.no_grad():
            m(x).contiguous().numpy().astype("<f4").tofile(out_path)


if __name__ == "__main__":
    main()
