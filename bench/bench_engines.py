"""Inference engines per 512² tile on the CPU: maskgen's PyTorch path, ONNX Runtime and OpenVINO, for the benchmark and lab-size
networks and (`--models default`) the embedded default model.

Issue 16 lists the candidate engines to measure, not assume; `backend="auto"` picks among those installed by timing one
tile. This bench times each, OpenVINO (`pip install openvino`) on the same ONNX graphs ONNX Runtime runs and on the
plain export:
- `torch`: `maskgen.engine.net_logits` in fp32 (the fused head), what `backend='torch'` runs;
- `onnxruntime`: the folded twin `backend='onnx'` runs (`maskgen.backend.onnx_twin`);
- `openvino`: `maskgen.backend.OpenVinoNet` on the folded graph, what `backend='openvino'` runs (fp32, latency hint);
- `openvino_unfolded`: the same on the plain export, left to OpenVINO's own fusions;
- `openvino_bf16`: the folded graph with OpenVINO's bf16 hint, only on CPUs with native bf16 (AVX512-BF16 or AMX).

Each engine runs the same 512² tile of the benchmark image in interleaved rounds (best of `--repeats`, after a
warm-up) on `--threads` threads, and is checked against torch fp32 (max |Δlogit|, mean |Δprob|, mask Dice). With
`--memory`, each engine also runs one tile in a fresh process that reports its peak RSS growth. Prints one JSON object.

    python bench/bench_engines.py [--models bench lab default] [--threads 2] [--repeats 3] [--memory] [--out FILE]
"""
import argparse, json, os, subprocess, sys, tempfile, time
from pathlib import Path
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_inference import bench_model, bench_image, cpu_info, peak_growth, MODELS   # noqa: E402

TILE = 512
ENGINE_MODELS = [*MODELS, 'default']   # the benchmark and lab-size networks (random weights), and the embedded default model


def engine_net(which):
    "The network `which` of `ENGINE_MODELS`, in fp32 on the CPU."
    if which != 'default': return bench_model(0, which)
    from maskgen.checkpoint import load_model, DEFAULT_WEIGHTS
    return load_model(DEFAULT_WEIGHTS)[0].float().eval()


def openvino_request(path, threads, precision=None):
    "(infer callable, the precision OpenVINO compiled to) for the ONNX file at `path`, fixed to one 512² tile, with a precision hint."
    import openvino as ov
    core = ov.Core()
    model = core.read_model(str(path))
    model.reshape({0: [1, 3, TILE, TILE]})
    config = {'PERFORMANCE_HINT': 'LATENCY', 'INFERENCE_NUM_THREADS': threads}
    if precision: config['INFERENCE_PRECISION_HINT'] = precision
    compiled = core.compile_model(model, 'CPU', config)
    request = compiled.create_infer_request()
    return (lambda t: torch.from_numpy(request.infer({0: t.numpy()})[0].copy()),
            compiled.get_property('INFERENCE_PRECISION_HINT').to_string())


def agreement(ref, out):
    "Max |Δlogit|, mean |Δprob| and the Dice of the masks (probability > 0.5) of logits `out` against `ref`."
    out = torch.as_tensor(out).reshape(ref.shape)
    a, b = out > 0, ref > 0
    dice = 2 * (a & b).sum().item() / max(1, a.sum().item() + b.sum().item())
    return dict(max_abs_dlogit=float((out - ref).abs().max()), mean_abs_dprob=float((out.sigmoid() - ref.sigmoid()).abs().mean()),
                mask_dice=round(dice, 5))


def engine_modules(net, which, threads, work):
    "The engines to compare for `net` ({name: callable on a batch}) and notes on their versions."
    from maskgen.backend import onnx_twin, openvino_twin, OpenVinoNet, model_fingerprint, installed_engines
    from maskgen.engine import net_logits
    from maskgen.export import export_onnx
    fp = model_fingerprint(net)
    engines, notes = {'torch': lambda t: net_logits(net, t, 'fp32'), 'onnxruntime': onnx_twin(net, fp, threads)}, {}
    if 'openvino' in installed_engines():
        import openvino
        notes['openvino'] = openvino.__version__
        engines['openvino'] = openvino_twin(net, fp, threads)   # what backend='openvino' runs: the folded graph
        engines['openvino_unfolded'] = OpenVinoNet(export_onnx(net, work / f'{which}-unfolded.onnx', check=False), threads)   # its own fusions
        flags = cpu_info()['flags']
        if flags['avx512_bf16'] or flags['amx_bf16']:
            engines['openvino_bf16'], notes['openvino_bf16_precision'] = openvino_request(engines['openvino'].path, threads, 'bf16')
    else: notes['openvino'] = 'not installed (pip install openvino)'
    return engines, notes


def bench_tile():
    "A (1,3,512,512) tile of the benchmark image, normalized as maskgen normalizes it."
    from maskgen.pixels import normalize_tile
    return torch.from_numpy(normalize_tile(bench_image(TILE), (0, 255)))[None]


def memory_probe(which, engine, threads):
    "Run in a subprocess: the peak RSS growth (MiB) of one 512² tile on `engine`, after the engine is built (and compiled)."
    with tempfile.TemporaryDirectory() as d:
        f = engine_modules(engine_net(which), which, threads, Path(d))[0][engine]
        x = bench_tile()
        if hasattr(f, '_request'): f._request(tuple(x.shape))   # OpenVinoNet compiles lazily: compile first, as the others are built first
        with torch.inference_mode(): grew = peak_growth(lambda: f(x))[1]
        print(json.dumps({'extra_mb': round(grew / 2**20, 1)}))


def bench_one(which, threads, repeats, work, memory):
    "Seconds per 512² tile of each engine for the model `which`, agreement with torch fp32 and, with `memory`, peak memory."
    from maskgen.backend import seconds_per_call
    from maskgen.engine import net_logits
    net = engine_net(which)
    engines, notes = engine_modules(net, which, threads, work)
    x = bench_tile()
    seconds = seconds_per_call(engines, x, repeats)
    with torch.inference_mode(): ref = net_logits(net, x, 'fp32')
    res = dict(model=repr(net), **notes,
               seconds_per_tile={k: round(v, 4) for k, v in seconds.items()},
               vs_onnxruntime={k: round(seconds['onnxruntime'] / v, 3) for k, v in seconds.items()},
               agreement={k: agreement(ref, f(x)) for k, f in engines.items() if k != 'torch'})
    if memory:   # each engine in a fresh process, so one engine's arena does not hide another's
        res['peak_extra_mb_one_tile'] = {}
        for k in engines:
            out = subprocess.run([sys.executable, __file__, '--memory-probe', which, k, '--threads', str(threads)], capture_output=True, text=True, env=os.environ)
            lines = out.stdout.strip().splitlines()
            res['peak_extra_mb_one_tile'][k] = json.loads(lines[-1])['extra_mb'] if out.returncode == 0 and lines else out.stderr[-300:]
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--models', nargs='+', default=['bench', 'lab'], choices=ENGINE_MODELS, help='which models: the benchmark and lab-size networks, and the embedded default model')
    ap.add_argument('--threads', type=int, default=2, help='threads of every engine')
    ap.add_argument('--repeats', type=int, default=3, help='timed rounds after one warm-up round')
    ap.add_argument('--out', help='also write the JSON here')
    ap.add_argument('--memory', action='store_true', help="also each engine's peak memory for one tile, in a fresh process (Linux)")
    ap.add_argument('--memory-probe', nargs=2, metavar=('MODEL', 'ENGINE'), help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from maskgen.engine import keep_freed_memory
    keep_freed_memory()   # as MaskGenerator does on the CPU, so the PyTorch engine is timed as it runs there
    if args.memory_probe: return memory_probe(*args.memory_probe, args.threads)
    t0 = time.time()
    with tempfile.TemporaryDirectory() as d:
        res = dict(cpu=cpu_info(), threads=args.threads, tile=TILE, torch=torch.__version__,
                   onnxruntime=__import__('onnxruntime').__version__, repeats=args.repeats,
                   models={m: bench_one(m, args.threads, args.repeats, Path(d), args.memory) for m in args.models})
    res['wall_s'] = round(time.time() - t0, 1)
    text = json.dumps(res, indent=1)
    print(text)
    if args.out: Path(args.out).write_text(text + '\n')


if __name__ == '__main__': main()
