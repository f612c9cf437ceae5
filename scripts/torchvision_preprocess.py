#!/usr/bin/env python3
"""Reference preprocessing with torchvision's own transforms (PIL backend), for parity tests.

    python3 scripts/torchvision_preprocess.py --mode squash|crop [--size 224]
        [--mean 0.485,0.456,0.406] [--std 0.229,0.224,0.225] --out batch.f32 IMAGE [IMAGE ...]

Writes the batch as raw little-endian float32, NCHW, C-order (N = number of images), to --out
(or to stdout with --out -). The pipeline is what the featscope docs and the blog use:

    squash: Resize((size, size))                      -> ToTensor -> Normalize(mean, std)
    crop:   Resize(round(size * 256 / 224)) + CenterCrop(size) -> ToTensor -> Normalize

Images are opened with PIL, EXIF orientation applied (ImageOps.exif_transpose, as featscope does;
plain torchvision would leave it), first frame only, then convert('RGB') (alpha is dropped, not
composited).
"""
import argparse
import sys

import numpy as np
from PIL import Image, ImageOps
from torchvision import transforms


def parse_floats(text):
    values = [float(v) for v in text.split(',')]
    if len(values) != 3:
        raise argparse.ArgumentTypeError('expected three comma-separated numbers')
    return values


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--mode', choices=['squash', 'crop'], required=True)
    parser.add_argument('--size', type=int, default=224)
    parser.add_argument('--mean', type=parse_floats, default=[0.485, 0.456, 0.406])
    parser.add_argument('--std', type=parse_floats, default=[0.229, 0.224, 0.225])
    parser.add_argument('--out', required=True, help='output file, or - for stdout')
    parser.add_argument('images', nargs='+')
    args = parser.parse_args()

    if args.mode == 'squash':
        resize = [transforms.Resize((args.size, args.size))]
    else:
        resize = [transforms.Resize(round(args.size * 256 / 224)), transforms.CenterCrop(args.size)]
    pipeline = transforms.Compose(resize + [transforms.ToTensor(), transforms.Normalize(args.mean, args.std)])

    batch = []
    for path in args.images:
        with Image.open(path) as image:
            image.seek(0)
            image = ImageOps.exif_transpose(image).convert('RGB')
            batch.append(pipeline(image).numpy().astype('<f4'))
    data = np.stack(batch).tobytes()
    if args.out == '-':
        sys.stdout.buffer.write(data)
    else:
        with open(args.out, 'wb') as f:
            f.write(data)


if __name__ == '__main__':
    main()
