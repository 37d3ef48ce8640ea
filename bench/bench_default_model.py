"""Quality and speed of the embedded default model, against the best classical baseline.

Held-out synthetic images of every kind (seeds never used in training or validation) and the real labelled
fluorescence-nuclei image that StarDist ships (2018 Data Science Bowl, BBBC038, CC0; fetched with
`pip download stardist`, never used in training). Dice of the default model for `whole` and `tile` (256 px tiles,
the default overlap), agreement of tile and whole, and the classical baseline: Gaussian smoothing then Otsu or Li threshold (scikit-image), with the
polarity (bright or dark foreground) chosen per image by the ground truth, which flatters the baseline.
Agreement of tiles and whole image also for the default tile size (512) at overlaps 64, 128 and 192 on 1024x1024 images.
Test-time augmentation: Dice of `whole` with the mean of 8 views (flips and transposes, `tta=8`).
Real images: per-modality Dice on the validation split of `maskgen.default_model.real_pairs` (images never trained on) at default
settings, against best-polarity Otsu and Li, and the agreement of 256 px and default (512 px) tiles with `strategy='whole'`.
Speed: a 2048x2048 image, steady state, with 1, 4 and 8 views. Prints JSON; `--out FILE` also writes it.

    python bench/bench_default_model.py [--n 6] [--weights W] [--out bench/results/default_model.json]
                                        [--figure nbs/images/default_model_real.png]
"""
import argparse, json, subprocess, sys, tempfile, time, zipfile
from pathlib import Path
import numpy as np

TEST_SEED0 = 900_000   # far from make_dataset's training/validation seeds


def dice(pred, truth):
    "Dice of two masks (nonzero is foreground), as `maskgen.metrics.mask_metrics` computes it."
    from maskgen.metrics import mask_metrics
    return mask_metrics(np.asarray(truth), np.asarray(pred))['dice']


def threshold_of(gen):
    "The generator's calibrated threshold, or 0.5 for weights without one."
    return gen.threshold if gen.threshold is not None else 0.5


def classical_masks(image, truth):
    "Best-polarity Otsu and Li masks after Gaussian smoothing of the grayscale image."
    from skimage.filters import gaussian, threshold_otsu, threshold_li
    from maskgen.io import read_image, intensity_range
    img = read_image(image).astype(np.float32)
    lo, hi = intensity_range(read_image(image))
    gray = np.clip((img.mean(-1) - lo) / (hi - lo), 0, 1)
    sm = gaussian(gray, sigma=2)
    out = {}
    for name, f in (('otsu', threshold_otsu), ('li', threshold_li)):
        t = f(sm)
        out[name] = max((sm > t, sm < t), key=lambda m: dice(m, truth))
    return out


def stardist_nuclei(cache=Path(tempfile.gettempdir()) / 'maskgen-bench'):
    "The real DSB 2018 nuclei image and its labels from the stardist wheel, or None when it cannot be fetched."
    import tifffile
    d = cache / 'stardist'
    img, lab = d / 'stardist/data/images/img2d.tif', d / 'stardist/data/images/mask2d.tif'
    if not img.exists():
        d.mkdir(parents=True, exist_ok=True)
        r = subprocess.run([sys.executable, '-m', 'pip', 'download', '--no-deps', '-q', 'stardist==0.9.2', '-d', str(d)],
                           capture_output=True, text=True)
        wheels = list(d.glob('stardist-*.whl'))
        if r.returncode or not wheels: return None
        with zipfile.ZipFile(wheels[0]) as z:
            for n in ('stardist/data/images/img2d.tif', 'stardist/data/images/mask2d.tif'): z.extract(n, d)
    return tifffile.imread(img), (tifffile.imread(lab) > 0).astype(np.uint8) * 255


def evaluate(gen, cases, tile, whole=None, tta_gen=None):
    "Per-kind mean Dice of model (whole, tile), tile-vs-whole agreement and the classical baselines; `whole`: the cases' whole-image probabilities, if already predicted; `tta_gen`: also `whole` with its 8 test-time views."
    rows, thr = {}, threshold_of(gen)
    for n, (kind, image, truth) in enumerate(cases):
        pw = whole[n] if whole is not None else gen.predict_probability(image, 'whole', progress=False)
        pt = gen.predict_probability(image, tile, progress=False)
        cl = classical_masks(image, truth)
        r = rows.setdefault(kind, {k: [] for k in ('whole', 'tile', 'tile_vs_whole', 'tile_vs_whole_dprob', 'otsu', 'li')})
        r['whole'].append(dice(pw > thr, truth)); r['tile'].append(dice(pt > thr, truth))
        r['tile_vs_whole'].append(dice(pt > thr, pw > thr)); r['tile_vs_whole_dprob'].append(float(np.abs(pt - pw).mean()))
        r['otsu'].append(dice(cl['otsu'], truth)); r['li'].append(dice(cl['li'], truth))
        if tta_gen is not None: r.setdefault('whole_tta8', []).append(dice(tta_gen.predict_probability(image, 'whole', progress=False) > thr, truth))
    out = {}
    for kind, r in rows.items():
        m = {k: round(float(np.mean(v)), 4) for k, v in r.items()}
        m['best_classical'] = max(m['otsu'], m['li'])
        m['n'] = len(r['whole'])
        out[kind] = m
    return out


def real_validation(gen, real_root, tile):
    """Per-modality Dice on the real validation images of `maskgen.default_model.real_pairs` (never trained on): the model at default settings
    (`generate(path)`: default strategy, threshold 0.5), with its calibrated threshold, its tiles (`tile`, and the generator's default 512 px
    tiles) against the whole image in one pass (`strategy='whole'`), and best-polarity Otsu and Li."""
    from maskgen.default_model import real_pairs
    from maskgen.generator import parse_strategy
    from maskgen.data import read_mask
    default_tile = parse_strategy('tile')
    per_image, thr = [], threshold_of(gen)
    for p in real_pairs(real_root):
        if p['split'] != 'val': continue
        truth = read_mask(p['mask'], 0)
        default = np.asarray(gen.generate(p['image'], progress=False)) > 0
        pw = gen.predict_probability(p['image'], 'whole', progress=False)
        pt = gen.predict_probability(p['image'], tile, progress=False)
        pd = gen.predict_probability(p['image'], default_tile, progress=False)
        pa = pd if parse_strategy(None, truth.shape) == default_tile else pw   # the default strategy is one of the two
        cl = classical_masks(p['image'], truth)
        per_image.append(dict(set=p['set'], modality=p['modality'], image=p['image'].name, default=dice(default, truth),
                              calibrated=dice(pa > thr, truth), tile_vs_whole=dice(pt > 0.5, pw > 0.5),
                              tile_vs_whole_default_tiles=dice(pd > 0.5, pw > 0.5),
                              otsu=dice(cl['otsu'], truth), li=dice(cl['li'], truth)))
    out = {}
    for modality in dict.fromkeys(r['modality'] for r in per_image):
        rs = [r for r in per_image if r['modality'] == modality]
        m = {k: round(float(np.mean([r[k] for r in rs])), 4) for k in ('default', 'calibrated', 'tile_vs_whole', 'tile_vs_whole_default_tiles', 'otsu', 'li')}
        m.update(n=len(rs), sets=sorted({r['set'] for r in rs}), margin_over_otsu=round(m['default'] - m['otsu'], 4))
        out[modality] = m
    summary = dict(mean_margin_over_otsu=round(float(np.mean([m['margin_over_otsu'] for m in out.values()])), 4),
                   beats_otsu_on_every_kind=all(m['margin_over_otsu'] > 0 for m in out.values()))
    return dict(per_modality=out, summary=summary, per_image=per_image)


def real_gallery(gen, real_root, path, per_modality=2):
    "Save a PNG of real validation images of each modality with the default model's errors (default settings)."
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from maskgen.default_model import real_pairs
    from maskgen.data import read_mask
    from maskgen.io import to_display, read_image, error_colors
    chosen, seen = [], {}
    for p in real_pairs(real_root):
        if p['split'] == 'val' and seen.get(p['modality'], 0) < per_modality:
            chosen.append(p); seen[p['modality']] = seen.get(p['modality'], 0) + 1
    fig, axes = plt.subplots(2, len(chosen), figsize=(2.2 * len(chosen), 4.8))
    for ax, p in zip(axes.T, chosen):
        truth = read_mask(p['mask'], 0)
        pred = np.asarray(gen.generate(p['image'], progress=False)) > 0
        ax[0].imshow(to_display(read_image(p['image']))); ax[0].set_title(f"{p['modality']}\n{p['image'].stem[:18]}", fontsize=7)
        ax[1].imshow(error_colors(truth, pred)); ax[1].set_title(f"Dice {dice(pred, truth):.3f}", fontsize=8)
        for a in ax: a.set_axis_off()
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.text(0.5, 0.01, 'real validation images (never trained on); white: found, red: false foreground, blue: missed', ha='center', fontsize=8)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80, bbox_inches='tight')


def real_figure(gen, image, truth, path):
    "Save a PNG of the real image, the model's errors (whole) and the best classical baseline's errors."
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from maskgen.io import to_display, read_image, error_colors
    thr = threshold_of(gen)
    pred = gen.predict_probability(image, 'whole', progress=False) > thr
    cl = classical_masks(image, truth)
    best = max(cl, key=lambda k: dice(cl[k], truth))
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.6))
    axes[0].imshow(to_display(read_image(image))); axes[0].set_title('real DSB 2018 nuclei (contrast stretched)', fontsize=9)
    axes[1].imshow(error_colors(truth, pred)); axes[1].set_title(f'default model, whole: Dice {dice(pred, truth):.3f}', fontsize=9)
    axes[2].imshow(error_colors(truth, cl[best])); axes[2].set_title(f'{best.capitalize()} after smoothing: Dice {dice(cl[best], truth):.3f}', fontsize=9)
    for ax in axes: ax.set_axis_off()
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.text(0.5, 0.02, 'white: found, red: false foreground, blue: missed', ha='center', fontsize=9)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=72, bbox_inches='tight')


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('--n', type=int, default=6, help='test images per synthetic kind')
    ap.add_argument('--size', type=int, default=512)
    ap.add_argument('--n-large', type=int, default=3, help='1024x1024 images per kind for the agreement of 512 px tiles')
    ap.add_argument('--weights', default=None, help='checkpoint to evaluate instead of the embedded default')
    ap.add_argument('--out', default=None)
    ap.add_argument('--figure', default=None, help='also save a PNG of the masks on the real image here')
    ap.add_argument('--threads', type=int, default=None, help='torch threads (default: torch\'s choice)')
    ap.add_argument('--real-root', default=str(Path(__file__).resolve().parents[2] / 'shared' / 'datasets' / 'real'),
                    help='folder of the real labelled sets (maskgen.default_model.REAL_SETS); their validation split is measured')
    ap.add_argument('--real-only', action='store_true', help='measure only the real images (validation split and the StarDist test image)')
    ap.add_argument('--gallery', default=None, help='also save a PNG of real validation images with the model\'s errors here')
    args = ap.parse_args()
    import torch
    if args.threads: torch.set_num_threads(args.threads)
    from maskgen.generator import MaskGenerator, parse_strategy
    from maskgen.synth import synth_image, KINDS
    import platform
    gen = MaskGenerator(args.weights, device='cpu')
    def with_views(n): return MaskGenerator.from_model(gen.model, 'cpu', gen.precision, gen.threshold, tta=n)   # the same loaded model
    tta_gen = with_views(8)
    tile = parse_strategy({'name': 'tile', 'tile_size': 256})   # small tiles, so that 512 px images take several; default overlap
    thr = threshold_of(gen)
    cases, i = [], 0
    for kind in KINDS:
        for j in range(args.n):
            bit_depth, rgb = (8, 16)[j % 2], (kind == 'he') or (j % 3 == 2)
            img, truth = synth_image(kind, size=args.size, seed=TEST_SEED0 + i, bit_depth=bit_depth, rgb=rgb)
            cases.append((kind, img, truth)); i += 1
    res = {'model': repr(gen), 'threads': torch.get_num_threads(), 'metadata': {k: gen.info['metadata'].get(k) for k in ('name', 'version')},
           'threshold': gen.threshold, 'tile_strategy': tile, 'cpu': f"{platform.processor() or platform.machine()}, {torch.backends.cpu.get_cpu_capability()}"}
    if Path(args.real_root).is_dir():
        res['real_validation'] = real_validation(gen, args.real_root, tile)
        if args.gallery: real_gallery(gen, args.real_root, args.gallery)
    else: res['real_validation'] = f'not available ({args.real_root} does not exist)'
    if args.real_only:
        real = stardist_nuclei()
        if real is not None: res['real_dsb2018_nuclei'] = evaluate(gen, [('fluorescence nuclei (DSB 2018, 512x512)', *real)], tile)
        text = json.dumps(res, indent=1); print(text)
        if args.out: Path(args.out).parent.mkdir(parents=True, exist_ok=True); Path(args.out).write_text(text + '\n')
        return
    whole = [gen.predict_probability(image, 'whole', progress=False) for _, image, _ in cases]   # once, for every comparison below
    res['synthetic'] = evaluate(gen, cases, tile, whole, tta_gen)
    # blend windows: agreement of tiled and whole-image probabilities on the synthetic test images
    windows = {}
    for window in ('hann', 'linear', 'gaussian'):
        d, dp = [], []
        for (_, image, _), pw in zip(cases, whole):
            pt = gen.predict_probability(image, {**tile, 'window': window}, progress=False)
            d.append(dice(pt > thr, pw > thr)); dp.append(float(np.abs(pt - pw).mean()))
        windows[window] = {'tile_vs_whole_dice': round(float(np.mean(d)), 4), 'tile_vs_whole_mean_abs_dprob': round(float(np.mean(dp)), 5)}
    res['blend_windows'] = windows
    # agreement of 512 px tiles (the generator's default tile size) and whole images, on 1024x1024 images, at three overlaps
    default_tile = parse_strategy('tile')
    big_cases = [(kind, synth_image(kind, size=1024, seed=TEST_SEED0 + 500 + 10 * k + j, bit_depth=(8, 16)[j % 2], rgb=kind == 'he')[0])
                 for k, kind in enumerate(KINDS) for j in range(args.n_large)]
    whole_masks = [gen.predict_probability(img, 'whole', progress=False) > thr for _, img in big_cases]
    for overlap in sorted({64, 128, 192, default_tile['overlap']}):
        strategy = {**default_tile, 'overlap': overlap}
        agree = {}
        for (kind, img), pw in zip(big_cases, whole_masks):
            agree.setdefault(kind, []).append(dice(gen.predict_probability(img, strategy, progress=False) > thr, pw))
        agree = {k: round(float(np.mean(v)), 4) for k, v in agree.items()}
        entry = {'strategy': strategy, 'n_per_kind': args.n_large, 'per_kind': agree,
                 'mean': round(float(np.mean(list(agree.values()))), 4), 'min': min(agree.values())}
        res.setdefault('tile512_by_overlap', {})[str(overlap)] = entry
        if overlap == default_tile['overlap']: res['tile512_vs_whole_1024'] = entry   # the generator's default tiles
    real = stardist_nuclei()
    if real is not None:
        res['real_dsb2018_nuclei'] = evaluate(gen, [('fluorescence nuclei (DSB 2018, 512x512)', *real)], tile, tta_gen=tta_gen)
        if args.figure: real_figure(gen, *real, args.figure)
    else: res['real_dsb2018_nuclei'] = 'not available (pip download stardist failed)'
    big, _ = synth_image('nuclei', size=2048, seed=TEST_SEED0 - 1)
    gen.generate(big, progress=False)
    t = time.perf_counter(); gen.generate(big, progress=False); res['seconds_2048x2048_steady'] = round(time.perf_counter() - t, 2)
    for views in (4, 8):
        g = with_views(views)
        t = time.perf_counter(); g.generate(big, progress=False); res[f'seconds_2048x2048_tta{views}'] = round(time.perf_counter() - t, 2)
    res['default_strategy_2048'] = f"tile {default_tile['tile_size']}/{default_tile['overlap']} ({default_tile['window']})"
    text = json.dumps(res, indent=1)
    print(text)
    if args.out: Path(args.out).parent.mkdir(parents=True, exist_ok=True); Path(args.out).write_text(text + '\n')


if __name__ == '__main__':
    main()
