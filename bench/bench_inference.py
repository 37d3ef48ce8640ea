"""Tiled inference: maskgen against the lab's own tiled loop and MONAI's sliding_window_inference, in one process.

Same model, same RGB image, tile 512, overlap 64, one process, measured side by side. Models:
  --model bench  Net(32, [1,1,3,1]), random weights with a non-trivial GRN (the benchmark model)
  --model lab    Net(128, [1,2,4,2]), the lab's production size (about 16x the FLOPs)

The lab's loop is reproduced as the lab's `MaskGenerator` runs it (github.com/Katsurado/bernlab_maskgen,
src/maskgen/mask_generator.py): tile starts `range(0, H, tile - overlap)`, edge tiles truncated at the border and
zero-padded to a multiple of 32, linear ramps of `min(overlap, side // 2)` on every side, logits blended, raw 0-255
input, weights in channels_last, and the network wrapped in `torch.compile` and then `AveragedModel` (so the loop runs
compiled on CPU and CUDA; the lab turns dynamo off on MPS only). `lab_eager` is the same loop without torch.compile.

Reports seconds, MP/s, useful GFLOP/s (image megapixels x the model's GFLOP per megapixel / seconds), its fraction of
a 4096^2 fp32 matmul measured in the same run, the CPU's flags, the ratios, agreement with fp32 eager PyTorch, and
the first call of a fresh process (cache warm). Prints one JSON object.

maskgen's generator sets `maskgen.engine.keep_freed_memory` for the whole process when it is created (first), so the
lab's loop and MONAI, measured after it in the same process, run with glibc keeping freed memory too: the ratios
understate maskgen's lead by the page faults the lab's loop pays in a process of its own.

    python bench/bench_inference.py [--model bench|lab] [--size 2048] [--threads 2] [--device cpu|cuda]
                                    [--skip-monai] [--skip-lab-compiled] [--skip-memory] [--memory-size 8192]
"""
import argparse, copy, json, os, platform, subprocess, sys, tempfile, time
import numpy as np
import torch
import torch.nn.functional as F

TILE, OVERLAP = 512, 64
MODELS = {'bench': (32, [1, 1, 3, 1]), 'lab': (128, [1, 2, 4, 2])}


def bench_model(seed=0, which='bench'):
    "The benchmark network (random weights, GRN made non-trivial as after training): Net(32, [1,1,3,1]) or the lab's Net(128, [1,2,4,2])."
    from maskgen.model import Net
    channels, layers = MODELS[which]
    torch.manual_seed(seed)
    net = Net(channels, {'layers': layers, 'stochastic_depth': 0.}).eval()
    with torch.no_grad():
        for m in net.modules():
            if hasattr(m, 'gamma'): m.gamma.normal_(0, 0.5); m.beta.normal_(0, 0.1)
    return net


def bench_image(size, seed=0):
    "A real-looking RGB test image: synthetic nuclei from maskgen.synth."
    from maskgen.synth import synth_image
    img, _ = synth_image('nuclei', size=size, seed=seed, bit_depth=8, rgb=True)
    return np.ascontiguousarray(img)


def cpu_info():
    "The CPU's name and the flags that decide inference speed."
    name, flags = platform.processor() or platform.machine(), set()
    try:
        for line in open('/proc/cpuinfo'):
            if line.startswith('model name'): name = line.split(':', 1)[1].strip()
            if line.startswith('flags'): flags = set(line.split(':', 1)[1].split()); break
    except OSError: pass
    want = ['avx2', 'fma', 'avx512f', 'avx512_bf16', 'avx512_vnni', 'amx_bf16', 'amx_tile']
    return dict(name=name, torch_capability=torch.backends.cpu.get_cpu_capability(), flags={f: f in flags for f in want},
                cores=os.cpu_count())


def matmul_gflops(device, n=4096, repeats=3):
    "GFLOP/s of the best of `repeats` fp32 n x n matmuls: the machine's practical peak for this run."
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    sync = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)
    a @ b; sync()
    best = float('inf')
    for _ in range(repeats):
        t = time.perf_counter(); a @ b; sync(); best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


def gflop_per_mp(net):
    "The model's GFLOP per megapixel (torch's FlopCounter on a 512x512 input)."
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as fc, torch.no_grad(): net(torch.zeros(1, 3, 512, 512))
    return fc.get_total_flops() / 1e9 / (512 * 512 / 1e6)


# ---- the lab's loop, as its MaskGenerator runs it --------------------------------------------------------------

def lab_model(net, compiled=True, device='cpu'):
    "The network as the lab's `MaskGenerator._load_checkpoint` prepares it: torch.compile, AveragedModel, channels_last, eval."
    from torch.optim import swa_utils as swa
    model = copy.deepcopy(net)
    if compiled: model = torch.compile(model)
    ema = swa.AveragedModel(model, multi_avg_fn=swa.get_ema_multi_avg_fn(0.9999))
    return ema.to(device, memory_format=torch.channels_last).eval()


def lab_grid(h, w, tile, overlap):
    "Tile boxes (y0, y1, x0, x1): starts every `tile - overlap` pixels, edge tiles truncated at the border."
    stride = tile - overlap
    return [(y, min(y + tile, h), x, min(x + tile, w)) for y in range(0, h, stride) for x in range(0, w, stride)]


def lab_ramp(n, overlap):
    "The lab's 1-D blend weights: linear ramps of min(overlap, n // 2) at both ends."
    wgt, o = np.ones(n), min(overlap, n // 2)
    if o > 0:
        r = (np.arange(o) + 1) / (o + 1)
        wgt[:o], wgt[-o:] = r, r[::-1]
    return wgt


def lab_probability(model, image, tile=TILE, overlap=OVERLAP, device='cpu'):
    "Foreground probability from the lab's tiled loop: raw 0-255 input, tiles padded to 32, logits blended."
    x = torch.from_numpy(image).permute(2, 0, 1).float()[None].to(device)
    _, _, h, w = x.shape
    out, wsum = torch.zeros(1, 1, h, w), torch.zeros(1, 1, h, w)
    for y0, y1, x0, x1 in lab_grid(h, w, tile, overlap):
        t = x[:, :, y0:y1, x0:x1]
        th, tw = t.shape[-2:]
        t = F.pad(t, (0, -tw % 32, 0, -th % 32))
        with torch.no_grad(): logits = model(t)[:, :, :th, :tw].cpu()
        wgt = torch.from_numpy(np.outer(lab_ramp(th, overlap), lab_ramp(tw, overlap))).float()
        out[:, :, y0:y1, x0:x1] += logits * wgt
        wsum[:, :, y0:y1, x0:x1] += wgt
    return torch.sigmoid(out / wsum.clamp(min=1e-8))[0, 0].numpy()


def monai_probability(model, image, device='cpu'):
    "MONAI's sliding_window_inference with the same tile and about the same overlap (0.125 of 512 = 64)."
    from monai.inferers import sliding_window_inference
    x = torch.from_numpy(image).permute(2, 0, 1).float()[None].to(device) / 127.5 - 1
    with torch.no_grad():
        return torch.sigmoid(sliding_window_inference(x, (TILE, TILE), 8, model, overlap=0.125))[0, 0].cpu().numpy()


def dice(a, b):
    a, b = a.astype(bool), b.astype(bool)
    s = a.sum() + b.sum()
    return 1.0 if s == 0 else float(2 * (a & b).sum() / s)


def timed(f):
    t = time.perf_counter(); r = f(); return r, time.perf_counter() - t


STRATEGY = {'name': 'tile', 'tile_size': TILE, 'overlap': OVERLAP}


def first_call_probe(which, size, device):
    "Run in a fresh subprocess: construct the generator (backend='auto', cache as left by the parent) and time the first call."
    from maskgen.generator import MaskGenerator
    net, image = bench_model(which=which), bench_image(size)
    t0 = time.perf_counter()
    gen = MaskGenerator.from_model(net, device=device, backend='auto')
    setup = time.perf_counter() - t0
    _, secs = timed(lambda: gen.generate(image, STRATEGY, progress=False))
    print(json.dumps({'setup_seconds': round(setup, 2), 'first_call_seconds': round(secs, 2), 'backend': gen.backend,
                      'backend_cached': (gen.backend_choice or {}).get('cached')}))


def rss(key):
    "This process's memory figure `key` of /proc/self/status in bytes ('VmRSS:' now, 'VmHWM:' its peak)."
    for line in open('/proc/self/status'):
        if line.startswith(key): return int(line.split()[1]) * 1024


def peak_growth(f):
    "(result of `f()`, bytes the peak RSS grew above the current RSS while it ran) (Linux)."
    with open('/proc/self/clear_refs', 'w') as fh: fh.write('5')   # the peak RSS starts again from the current RSS
    base = rss('VmRSS:')
    out = f()
    return out, rss('VmHWM:') - base


def memory_probe(size, which, model_name):
    "Run in a subprocess: peak RSS growth (bytes/pixel) while masking a size x size RGB image."
    net = bench_model(which=model_name)
    image = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    if which.startswith('maskgen'):   # maskgen (backend='auto'), maskgen_torch, maskgen_onnx or maskgen_openvino
        from maskgen.generator import MaskGenerator
        gen = MaskGenerator.from_model(net, device='cpu', backend=which.partition('_')[2] or 'auto')
        gen.generate(image[:1024, :1024], STRATEGY)  # warm up allocators
        run = lambda: gen.generate(image, STRATEGY, progress=False)
    else:
        model = lab_model(net, compiled=False)   # the compiled loop's memory differs little; its compile takes minutes
        lab_probability(model, image[:1024, :1024])
        run = lambda: lab_probability(model, image) > 0.5
    t0 = time.perf_counter()
    _, grew = peak_growth(run)
    secs = time.perf_counter() - t0
    print(json.dumps({'size': size, 'which': which, 'extra_bytes_per_pixel': round(grew / size**2, 2),
                      'extra_mb': round(grew / 2**20, 1), 'seconds': round(secs, 1)}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--model', choices=list(MODELS), default='bench')
    ap.add_argument('--size', type=int, default=2048)
    ap.add_argument('--device', default='cpu')
    ap.add_argument('--threads', type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument('--memory-size', type=int, default=8192)
    ap.add_argument('--lab-memory-size', type=int, default=4096)
    ap.add_argument('--skip-monai', action='store_true')
    ap.add_argument('--skip-lab-compiled', action='store_true', help='skip the compiled lab loop (its first call compiles for minutes)')
    ap.add_argument('--skip-memory', action='store_true')
    ap.add_argument('--memory-backends', default='auto,torch', help="maskgen engines to probe for memory, of auto, torch, onnx, openvino")
    ap.add_argument('--skip-lab-eager', action='store_true', help="skip the lab's loop without torch.compile")
    ap.add_argument('--skip-engines', action='store_true', help="skip timing each engine maskgen can pick (and their agreement) and the fresh-process probe")
    ap.add_argument('--cache', default=None, help='maskgen cache folder for this run (default: a fresh temporary one, so the cold start is measured)')
    ap.add_argument('--first-call-probe', action='store_true', help=argparse.SUPPRESS)
    ap.add_argument('--memory-probe', nargs=2, metavar=('SIZE', 'WHICH'), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.threads: torch.set_num_threads(args.threads)
    if args.first_call_probe: return first_call_probe(args.model, args.size, args.device)
    if args.memory_probe: return memory_probe(int(args.memory_probe[0]), args.memory_probe[1], args.model)
    os.environ['MASKGEN_CACHE'] = args.cache or tempfile.mkdtemp(prefix='maskgen-bench-cache-')

    from maskgen.generator import MaskGenerator
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)
    def run(f):
        r, s = timed(lambda: (f(), sync())[0]); return r, s
    net, image = bench_model(which=args.model), bench_image(args.size)
    mp = image.shape[0] * image.shape[1] / 1e6
    res = {'image': list(image.shape), 'model': repr(net), 'tile': TILE, 'overlap': OVERLAP, 'device': str(device),
           'threads': torch.get_num_threads(), 'torch': torch.__version__, 'cpu': cpu_info(),
           'gpu': torch.cuda.get_device_name() if device.type == 'cuda' else None}
    res['model_gflop_per_mp'] = round(gflop_per_mp(net), 1)
    res['matmul_fp32_gflops'] = round(matmul_gflops(device), 1)
    S = {}
    # cold: a fresh generator on an empty cache (backend measured here), then the competitors' first calls
    gen, S['maskgen_setup_cold'] = run(lambda: MaskGenerator.from_model(copy.deepcopy(net).to(device), device=device, backend='auto'))
    res['backend'] = dict(picked=gen.backend, precision=gen.precision, measured=gen.backend_choice)
    _, S['maskgen_first_cold'] = run(lambda: gen.generate(image, STRATEGY, progress=False))
    if not args.skip_lab_eager:
        lab_eager = lab_model(net, compiled=False, device=device)
        _, S['lab_eager_first'] = run(lambda: lab_probability(lab_eager, image, device=device))
    if not args.skip_lab_compiled:
        lab = lab_model(net, compiled=True, device=device)
        _, S['lab_first'] = run(lambda: lab_probability(lab, image, device=device))
    if not args.skip_monai:
        monai_net = copy.deepcopy(net).to(device)
        _, S['monai_first'] = run(lambda: monai_probability(monai_net, image, device=device))
    # steady state: second calls, interleaved
    _, S['maskgen'] = run(lambda: gen.generate(image, STRATEGY, progress=False))
    if not args.skip_lab_eager: _, S['lab_eager'] = run(lambda: lab_probability(lab_eager, image, device=device))
    if not args.skip_lab_compiled: _, S['lab'] = run(lambda: lab_probability(lab, image, device=device))
    if not args.skip_monai: _, S['monai'] = run(lambda: monai_probability(monai_net, image, device=device))
    # every engine maskgen can pick, and the fp32 eager reference they must agree with
    if not args.skip_engines:
        ref_gen = MaskGenerator.from_model(copy.deepcopy(net).to(device), device=device, precision='fp32', backend='torch')
        ref, S['maskgen_torch_fp32'] = run(lambda: ref_gen.predict_probability(image, STRATEGY, progress=False))
    agree = {}
    from maskgen.backend import installed_engines
    engines = [] if args.skip_engines else [('torch', 'auto')] + ([(e, 'fp32') for e in installed_engines()] if device.type == 'cpu' else [])
    for backend, precision in engines:
        g = MaskGenerator.from_model(copy.deepcopy(net).to(device), device=device, precision=precision, backend=backend)
        g.predict_probability(image[:TILE, :TILE], STRATEGY, progress=False)
        p, S[f'maskgen_{backend}_{g.precision}'] = run(lambda: g.predict_probability(image, STRATEGY, progress=False))
        agree[f'{backend}_{g.precision}'] = dict(mean_abs_dprob=round(float(np.abs(p - ref).mean()), 6),
                                                 max_abs_dprob=round(float(np.abs(p - ref).max()), 5), mask_dice=round(dice(p > 0.5, ref > 0.5), 5))
    res['agreement_with_fp32_eager'] = agree
    res['seconds'] = S = {k: round(v, 2) for k, v in S.items()}
    # a fresh process with the cache this run filled: what a user's second session pays
    if device.type == 'cpu' and not args.skip_engines:
        out = subprocess.run([sys.executable, __file__, '--first-call-probe', '--model', args.model, '--size', str(args.size),
                              '--device', args.device] + (['--threads', str(args.threads)] if args.threads else []),
                             capture_output=True, text=True, env=os.environ)
        res['fresh_process_warm_cache'] = json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else {'error': out.stderr[-800:]}
    def perf(secs): return dict(seconds=secs, mp_per_s=round(mp / secs, 3), useful_gflops=round(mp * res['model_gflop_per_mp'] / secs, 1),
                                fraction_of_matmul=round(mp * res['model_gflop_per_mp'] / secs / res['matmul_fp32_gflops'], 3))
    res['throughput'] = {k: perf(S[k]) for k in ('maskgen', 'lab', 'lab_eager', 'monai') if k in S}
    ratios = {}
    for base in ('lab', 'lab_eager', 'monai'):
        if base in S:
            ratios[f'steady_vs_{base}'] = round(S[base] / S['maskgen'], 2)
            ratios[f'first_cold_vs_{base}_first'] = round(S[f'{base}_first'] / (S['maskgen_setup_cold'] + S['maskgen_first_cold']), 2)
            fresh = res.get('fresh_process_warm_cache', {})
            if 'first_call_seconds' in fresh:
                ratios[f'first_fresh_process_vs_{base}_first'] = round(S[f'{base}_first'] / (fresh['setup_seconds'] + fresh['first_call_seconds']), 2)
    res['ratios'] = ratios
    res['pixels_computed'] = dict(maskgen=None, lab=round(sum((y1 - y0 + (-(y1 - y0) % 32)) * (x1 - x0 + (-(x1 - x0) % 32))
                                                              for y0, y1, x0, x1 in lab_grid(*image.shape[:2], TILE, OVERLAP)) / 1e6, 2))
    from maskgen.engine import tile_grid
    grid = tile_grid(*image.shape[:2], TILE, OVERLAP)   # the layout maskgen's tiler runs
    res['pixels_computed']['maskgen'] = round(grid.pixels / 1e6, 2)
    res['pixels_computed']['maskgen_tiles'] = [grid.th, grid.tw]
    res['load_average'] = list(os.getloadavg())
    if not args.skip_memory and device.type == 'cpu':
        mem = {}
        probes = [(args.memory_size, 'maskgen' if b == 'auto' else f'maskgen_{b}') for b in args.memory_backends.split(',')]
        for size, which in probes + [(args.lab_memory_size, 'lab_eager')]:
            out = subprocess.run([sys.executable, __file__, '--memory-probe', str(size), which, '--model', args.model]
                                 + (['--threads', str(args.threads)] if args.threads else []), capture_output=True, text=True, env=os.environ)
            mem[f'{which}_{size}'] = json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else {'error': out.stderr[-500:]}
        res['memory'] = mem
    print(json.dumps(res, indent=1))


if __name__ == '__main__':
    main()
