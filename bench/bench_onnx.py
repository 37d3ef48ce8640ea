"""ONNX Runtime vs PyTorch for tiled inference on the CPU, and the time to export.

Same model (Net(32, layers [1,1,3,1]), random weights with a non-trivial GRN), same 1024x1024 RGB image, tile 512,
overlap 64, one process. PyTorch runs maskgen's default path (`MaskGenerator.from_model(net, device='cpu')`: the fused
head, bf16 where the CPU has it) and, for reference, the same in fp32; ONNX Runtime runs `OnnxNet` (fp32) through the
same `MaskGenerator`, optionally also the int8 model. Runs are interleaved; medians are reported. Prints one JSON object.

    python bench/bench_onnx.py [--size 1024] [--repeats 3] [--int8]
"""
import argparse, json, statistics, sys, tempfile, time
from pathlib import Path
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_inference import bench_model, bench_image   # noqa: E402

TILE, OVERLAP = 512, 64


def timed(f):
    "(seconds, result) of calling `f`."
    t0 = time.perf_counter()
    r = f()
    return time.perf_counter() - t0, r


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--size', type=int, default=1024, help='image side')
    ap.add_argument('--repeats', type=int, default=3, help='timed runs of each (after one warm-up)')
    ap.add_argument('--int8', action='store_true', help='also time the int8 (dynamic quantization) model')
    args = ap.parse_args()

    from maskgen.generator import MaskGenerator
    from maskgen.export import export_onnx, OnnxNet, quantize_onnx
    net, img = bench_model(), bench_image(args.size)
    s = {'name': 'tile', 'tile_size': TILE, 'overlap': OVERLAP}
    d = Path(tempfile.mkdtemp())
    export_s = [timed(lambda: export_onnx(net, d / 'bench.onnx', check=False))[0] for _ in range(3)]
    export_check_s = timed(lambda: export_onnx(net, d / 'bench.onnx', check=True))[0]
    gens = {'torch_default': MaskGenerator.from_model(net, device='cpu'),
            'torch_fp32': MaskGenerator.from_model(net, device='cpu', precision='fp32'),
            'onnx': MaskGenerator.from_model(OnnxNet(d / 'bench.onnx'), device='cpu', precision='fp32')}
    quant = {}
    if args.int8:
        t, q = timed(lambda: quantize_onnx(d / 'bench.onnx'))
        quant = dict(quantize_s=round(t, 2), int8_mb=round(q.stat().st_size / 1e6, 2))
        gens['onnx_int8'] = MaskGenerator.from_model(OnnxNet(q), device='cpu', precision='fp32')
    probs = {k: g.predict_probability(img, s, progress=False) for k, g in gens.items()}   # warm-up
    times = {k: [] for k in gens}
    for _ in range(args.repeats):                     # interleaved, so load from other processes hits all alike
        for k, g in gens.items(): times[k].append(timed(lambda: g.predict_probability(img, s, progress=False))[0])
    med = {k: statistics.median(v) for k, v in times.items()}
    res = dict(
        size=args.size, tile=TILE, overlap=OVERLAP, model='Net(32, [1,1,3,1])', threads=torch.get_num_threads(),
        torch=torch.__version__, onnxruntime=__import__('onnxruntime').__version__,
        torch_default_precision=gens['torch_default'].precision, repeats=args.repeats,
        export_s=round(statistics.median(export_s), 2), export_with_check_s=round(export_check_s, 2),
        onnx_mb=round((d / 'bench.onnx').stat().st_size / 1e6, 2), **quant,
        median_s={k: round(v, 3) for k, v in med.items()},
        runs_s={k: [round(t, 3) for t in v] for k, v in times.items()},
        speedup_onnx_vs_torch_default=round(med['torch_default'] / med['onnx'], 3),
        speedup_onnx_vs_torch_fp32=round(med['torch_fp32'] / med['onnx'], 3),
        max_abs_dprob_vs_torch_fp32={k: float(np.abs(p - probs['torch_fp32']).max()) for k, p in probs.items() if k != 'torch_fp32'})
    if args.int8: res['speedup_int8_vs_onnx'] = round(med['onnx'] / med['onnx_int8'], 3)
    print(json.dumps(res, indent=1))


if __name__ == '__main__':
    main()
