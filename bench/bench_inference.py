"""Tiled inference: maskgen vs the original maskgen algorithm vs MONAI's sliding_window_inference.

Same model (Net(32, layers [1,1,3,1]), random weights with a non-trivial GRN), same 2048x2048 RGB image,
tile 512, overlap 64, CPU, one process. Prints one JSON object.

    python bench/bench_inference.py [--size 2048] [--memory-size 8192] [--skip-monai] [--skip-memory]
"""
import argparse, json, subprocess, sys, time
import numpy as np
import torch

TILE, OVERLAP = 512, 64


def bench_model(seed=0):
    "The benchmark network: Net(32, [1,1,3,1]) with random weights, GRN made non-trivial as after training."
    from maskgen.model import Net
    torch.manual_seed(seed)
    net = Net(32, {'layers': [1, 1, 3, 1], 'stochastic_depth': 0.}).eval()
    with torch.no_grad():
        for m in net.modules():
            if hasattr(m, 'gamma'): m.gamma.normal_(0, 0.5); m.beta.normal_(0, 0.1)
    return net


def bench_image(size, seed=0):
    "A real-looking RGB test image: synthetic nuclei when maskgen.synth exists, else smooth blobs."
    try:
        from maskgen.synth import synth_image
        img, _ = synth_image('nuclei', size=size, seed=seed, bit_depth=8, rgb=True)
        return np.ascontiguousarray(img)
    except Exception:
        rng = np.random.default_rng(seed)
        small = rng.random((size // 32, size // 32, 3))
        return np.clip(np.kron(small, np.ones((32, 32, 1))) * 255, 0, 255).astype(np.uint8)


def original_tiled_probability(model, image, tile=TILE, overlap=OVERLAP):
    "The original maskgen algorithm: whole image as float32, a Python loop over tiles, a ramp per tile, two accumulators."
    img = torch.from_numpy(image).permute(2, 0, 1).float()
    img = (img / 255 - 0.5) / 0.5        # the fixed normalization (the original fed raw 0-255)
    _, H, W = img.shape
    prob_acc, w_acc = torch.zeros(H, W), torch.zeros(H, W)
    stride = tile - overlap
    for y in range(0, H, stride):
        y0 = min(y, H - tile)
        for x in range(0, W, stride):
            x0 = min(x, W - tile)
            with torch.no_grad(): p = torch.sigmoid(model(img[None, :, y0:y0 + tile, x0:x0 + tile]))[0, 0]
            ramp = torch.ones(tile)
            r = torch.linspace(0, 1, overlap + 2)[1:-1]
            ramp[:overlap], ramp[-overlap:] = r, r.flip(0)
            wgt = ramp[:, None] * ramp[None, :]
            prob_acc[y0:y0 + tile, x0:x0 + tile] += p * wgt
            w_acc[y0:y0 + tile, x0:x0 + tile] += wgt
            if x0 == W - tile: break
        if y0 == H - tile: break
    return (prob_acc / w_acc).numpy()


def monai_probability(model, image):
    from monai.inferers import sliding_window_inference
    x = torch.from_numpy(image).permute(2, 0, 1).float()[None] / 127.5 - 1
    with torch.no_grad():
        return torch.sigmoid(sliding_window_inference(x, (TILE, TILE), 8, model, overlap=0.125))[0, 0].numpy()


def dice(a, b):
    a, b = a.astype(bool), b.astype(bool)
    s = a.sum() + b.sum()
    return 1.0 if s == 0 else float(2 * (a & b).sum() / s)


def timed(f):
    t = time.perf_counter(); r = f(); return r, time.perf_counter() - t


def memory_probe(size, which):
    "Run in a subprocess: peak RSS growth (bytes/pixel) while masking a size x size RGB image."
    def rss(key):
        for line in open('/proc/self/status'):
            if line.startswith(key): return int(line.split()[1]) * 1024
    net = bench_model()
    image = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    if which == 'maskgen':
        from maskgen.generator import MaskGenerator
        gen = MaskGenerator.from_model(net, device='cpu')
        gen.generate(image[:1024, :1024], {'name': 'tile', 'tile_size': TILE, 'overlap': OVERLAP})  # warm up allocators
        run = lambda: gen.generate(image, {'name': 'tile', 'tile_size': TILE, 'overlap': OVERLAP}, progress=False)
    else:
        original_tiled_probability(net, image[:1024, :1024])
        run = lambda: original_tiled_probability(net, image) > 0.5
    with open('/proc/self/clear_refs', 'w') as f: f.write('5')   # reset the peak RSS to the current RSS
    base = rss('VmRSS:')
    t0 = time.perf_counter(); run(); secs = time.perf_counter() - t0
    peak = rss('VmHWM:')
    print(json.dumps({'size': size, 'which': which, 'extra_bytes_per_pixel': round((peak - base) / size**2, 2),
                      'extra_mb': round((peak - base) / 2**20, 1), 'seconds': round(secs, 1)}))


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('--size', type=int, default=2048)
    ap.add_argument('--memory-size', type=int, default=8192)
    ap.add_argument('--original-memory-size', type=int, default=4096)
    ap.add_argument('--skip-monai', action='store_true')
    ap.add_argument('--skip-memory', action='store_true')
    ap.add_argument('--threads', type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument('--memory-probe', nargs=2, metavar=('SIZE', 'WHICH'), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.threads: torch.set_num_threads(args.threads)
    if args.memory_probe: return memory_probe(int(args.memory_probe[0]), args.memory_probe[1])

    from maskgen.generator import MaskGenerator
    net, image = bench_model(), bench_image(args.size)
    strategy = {'name': 'tile', 'tile_size': TILE, 'overlap': OVERLAP}
    res = {'image': list(image.shape), 'model': repr(net), 'tile': TILE, 'overlap': OVERLAP,
           'threads': torch.get_num_threads(), 'torch': torch.__version__, 'seconds': {}}
    S = res['seconds']
    # first calls, interleaved: a fresh generator each (no warm-up outside the timing)
    ref, S['original_first'] = timed(lambda: original_tiled_probability(net, image))
    gen = MaskGenerator.from_model(net, device='cpu')
    res['precision'] = gen.precision
    _, S['maskgen_first'] = timed(lambda: gen.generate(image, strategy, progress=False))
    if not args.skip_monai: mon, S['monai_first'] = timed(lambda: monai_probability(net, image))
    # steady state: second calls
    _, S['original'] = timed(lambda: original_tiled_probability(net, image))
    _, S['maskgen'] = timed(lambda: gen.generate(image, strategy, progress=False))
    if not args.skip_monai: _, S['monai'] = timed(lambda: monai_probability(net, image))
    fp32 = MaskGenerator.from_model(net, device='cpu', precision='fp32')
    _, S['maskgen_fp32'] = timed(lambda: fp32.generate(image, strategy, progress=False))
    S = {k: round(v, 2) for k, v in S.items()}; res['seconds'] = S
    res['speedup_vs_original'] = round(S['original'] / S['maskgen'], 2)
    res['first_call_speedup_vs_original'] = round(S['original_first'] / S['maskgen_first'], 2)
    if not args.skip_monai: res['speedup_vs_monai'] = round(S['monai'] / S['maskgen'], 2)
    # agreement with the original algorithm, same (linear) blend window and the default (hann)
    agree = {}
    for name, g, window in [('fp32_linear', fp32, 'linear'), (f'{gen.precision}_linear', gen, 'linear'), (f'{gen.precision}_hann', gen, 'hann')]:
        p = g.predict_probability(image, {**strategy, 'window': window}, progress=False)
        agree[name] = {'mean_abs_dprob': round(float(np.abs(p - ref).mean()), 5), 'max_abs_dprob': round(float(np.abs(p - ref).max()), 4),
                       'mask_dice': round(dice(p > 0.5, ref > 0.5), 5)}
    res['agreement_with_original'] = agree
    res['foreground_fraction_original'] = round(float((ref > 0.5).mean()), 4)
    if not args.skip_monai: res['agreement_with_monai_fp32'] = round(float(np.abs(fp32.predict_probability(image, strategy, progress=False) - mon).mean()), 5)
    if not args.skip_memory:
        mem = {}
        for size, which in [(args.memory_size, 'maskgen'), (args.original_memory_size, 'original')]:
            out = subprocess.run([sys.executable, __file__, '--memory-probe', str(size), which] + (['--threads', str(args.threads)] if args.threads else []),
                                 capture_output=True, text=True)
            mem[f'{which}_{size}'] = json.loads(out.stdout) if out.returncode == 0 else {'error': out.stderr[-500:]}
        res['memory'] = mem
    print(json.dumps(res, indent=1))


if __name__ == '__main__':
    main()
