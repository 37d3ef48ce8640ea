"""What starting tiles on the network's 32 px grid buys: tile-vs-whole agreement of the embedded default model on real images.

`Net` downsamples by 32 with strided layers, which are not shift-invariant: a tile that starts between grid points sees
its pixels on a different grid from the whole image's run. For every real validation image (the validation split of
`maskgen.default_model.real_pairs`, never trained on) it compares, with `strategy='whole'` as the reference:
on the images the default strategy tiles (both sides 512 px or more), the default tiles (512 px, overlap 192) started on the grid (what maskgen runs) and started anywhere, the last tile
flush with the image's end (`on_grid=False`, the layout before); and the whole image moved by 1, 16 and 32 px
(a crop from the top left), on the pixels the two share. Mask Dice at the model's threshold, per modality and per image.
Prints JSON; `--out FILE` also writes it.

    python bench/bench_tile_grid.py [--threads 2] [--weights W] [--out bench/results/tile_grid.json]
"""
import argparse, json, platform, time
from pathlib import Path
import numpy as np


def dice(a, b)->float:
    "Dice of two masks, as `maskgen.metrics.mask_metrics` computes it."
    from maskgen.metrics import mask_metrics
    return float(mask_metrics(a, b)['dice'])


def cpu_name()->str:
    "The CPU's model name (/proc/cpuinfo), or the platform's."
    try: return next(line.split(':', 1)[1].strip() for line in open('/proc/cpuinfo') if line.startswith('model name'))
    except (OSError, StopIteration): return platform.processor() or platform.machine()


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('--real-root', default=str(Path(__file__).resolve().parents[2] / 'shared' / 'datasets' / 'real'))
    ap.add_argument('--weights', default=None, help='checkpoint to measure instead of the embedded default model')
    ap.add_argument('--threads', type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument('--shifts', type=int, nargs='*', default=[1, 16, 32], help='pixels to move the whole image by')
    ap.add_argument('--out', default=None)
    args = ap.parse_args()
    import torch
    from maskgen import MaskGenerator
    from maskgen.default_model import real_pairs
    from maskgen.engine import tiled_probability, tile_grid
    from maskgen.io import read_image, intensity_range
    from maskgen.settings import parse_strategy
    if args.threads: torch.set_num_threads(args.threads)
    gen = MaskGenerator(args.weights, device='cpu', backend='torch')
    thr = gen.threshold if gen.threshold is not None else 0.5
    rows, t0 = [], time.perf_counter()
    for p in real_pairs(args.real_root):
        if p['split'] != 'val': continue
        img = read_image(p['image'])
        H, W = img.shape[:2]
        s = parse_strategy({'name': 'tile'}, img.shape)
        whole = gen.predict_probability(img, 'whole', progress=False) > thr
        row = dict(set=p['set'], modality=p['modality'], image=p['image'].name, shape=[H, W])
        if min(H, W) >= s['tile_size']:   # the images the default strategy tiles
            row['on_grid'] = dice(gen.predict_probability(img, s, progress=False) > thr, whole)
            off = np.concatenate([q for _, _, q in tiled_probability(img, intensity_range(img), gen._logits, s['tile_size'], s['overlap'],
                                                                      s['window'], on_grid=False)])
            row['off_grid'] = dice(off > thr, whole)
            row['tile_starts'] = {k: tile_grid(H, W, s['tile_size'], s['overlap'], on_grid=g).ys for k, g in (('on_grid', True), ('off_grid', False))}
        for k in args.shifts:
            moved = gen.predict_probability(img[k:, k:], 'whole', progress=False) > thr
            row[f'whole_moved_{k}px'] = dice(moved, whole[k:, k:])
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != 'tile_starts'}), flush=True)
    keys = ['on_grid', 'off_grid'] + [f'whole_moved_{k}px' for k in args.shifts]
    per = {}
    for m in sorted({r['modality'] for r in rows}):
        rs = [r for r in rows if r['modality'] == m]
        per[m] = {'n': len(rs), **{k: {'mean': round(float(np.mean(v)), 4), 'min': round(float(np.min(v)), 4), 'n': len(v)}
                                   for k in keys if (v := [r[k] for r in rs if k in r])}}
    res = dict(model=gen.info.get('description') or str(gen.info.get('path')), threshold=thr, strategy=parse_strategy({'name': 'tile'}, (1024, 1024)),
               cpu=dict(name=cpu_name(), torch_capability=torch.backends.cpu.get_cpu_capability(), threads=torch.get_num_threads()),
               seconds=round(time.perf_counter() - t0, 1), per_modality=per, per_image=rows)
    text = json.dumps(res, indent=1)
    print(text)
    if args.out: Path(args.out).write_text(text + '\n')


if __name__ == '__main__': main()
