"""Does the embedded default model gain from seeing an image at another scale? Dice on real validation images, per scale.

For every real validation image (the validation split of `maskgen.default_model.real_pairs`, never trained on), the image is
normalized as at its own size, resized by each factor of `--scales` (bilinear, antialiased when shrinking), run whole and
its logits resized back to the image's size, as the `downsample` strategy does (`MaskGenerator._resized_logits`); the mask is the probability (or the mean of
the probabilities of several scales, `--combos`) above the model's threshold. Prints the mean Dice per modality and the Dice
per image as JSON; `--out FILE` also writes it. The model card's *Limits* cite it.

    python bench/bench_scale.py [--threads 2] [--weights W] [--out bench/results/default_model_scales.json]
"""
import argparse, json, time
from pathlib import Path
import numpy as np
from bench_tile_grid import cpu_name   # the sibling script's: this one runs as python bench/bench_scale.py


def probability_at(gen, img:np.ndarray, factor:float)->np.ndarray:
    "The probability (H,W) of `img` run whole at `factor` times its size and scaled back, as `strategy='downsample'` runs it."
    import torch
    from maskgen.io import intensity_range, normalize_tile
    if factor == 1: return gen.predict_probability(img, 'whole', progress=False)
    H, W = img.shape[:2]
    x = torch.from_numpy(normalize_tile(img, intensity_range(img)))[None]   # normalized as at 1x, then resized
    return torch.sigmoid(gen._resized_logits(x, (round(H * factor), round(W * factor))))[0, 0].numpy()


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('--real-root', default=str(Path(__file__).resolve().parents[2] / 'shared' / 'datasets' / 'real'))
    ap.add_argument('--weights', default=None, help='checkpoint to measure instead of the embedded default model')
    ap.add_argument('--threads', type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument('--scales', type=float, nargs='*', default=[0.5, 0.75, 1.0, 1.5, 2.0], help='factors to resize each image by')
    ap.add_argument('--combos', nargs='*', default=['1+1.5', '1+0.75+1.5'], help='means of the probabilities of several scales, e.g. 1+1.5')
    ap.add_argument('--out', default=None)
    args = ap.parse_args()
    import torch
    from maskgen import MaskGenerator
    from maskgen.data import read_mask
    from maskgen.default_model import real_pairs
    from maskgen.generator import check_threshold
    from maskgen.io import read_image
    from maskgen.metrics import mask_metrics
    if args.threads: torch.set_num_threads(args.threads)
    gen = MaskGenerator(args.weights, device='cpu', backend='torch')
    thr = check_threshold('auto', gen)
    combos = {c: [float(s) for s in c.split('+')] for c in args.combos}
    needed = sorted(set(args.scales) | {s for ss in combos.values() for s in ss})
    rows, t0 = [], time.perf_counter()
    for p in real_pairs(args.real_root):
        if p['split'] != 'val': continue
        img, truth = read_image(p['image']), read_mask(p['mask'], 0)
        probs = {s: probability_at(gen, img, s) for s in needed}
        row = dict(set=p['set'], modality=p['modality'], image=p['image'].name)
        row.update({f'{s:g}': float(mask_metrics(truth, probs[s] > thr)['dice']) for s in args.scales})
        row.update({c: float(mask_metrics(truth, np.mean([probs[s] for s in ss], 0) > thr)['dice']) for c, ss in combos.items()})
        rows.append(row)
    keys = [f'{s:g}' for s in args.scales] + list(combos)
    per = {}
    for m in dict.fromkeys(r['modality'] for r in rows):
        rs = [r for r in rows if r['modality'] == m]
        per[m] = dict(n=len(rs), **{k: round(float(np.mean([r[k] for r in rs])), 4) for k in keys})
    out = dict(model=gen.info.get('metadata', {}).get('name') or str(args.weights), version=gen.info.get('metadata', {}).get('version'),
               threshold=thr, cpu=dict(name=cpu_name(), torch_capability=torch.backends.cpu.get_cpu_capability(), threads=torch.get_num_threads()),
               seconds=round(time.perf_counter() - t0, 1), per_modality=per,
               per_image=[{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in rows])
    text = json.dumps(out, indent=1)
    print(text)
    if args.out: Path(args.out).write_text(text + '\n')


if __name__ == '__main__':
    main()
