"""Peak memory and time of one whole image (`strategy='whole'`) on each engine, for `maskgen.backend.engine_fits`.

Tiles bound an engine's memory by the tile; a whole image does not. ONNX Runtime and OpenVINO hold the activations of the
whole input at once, the largest being the full-resolution head's expansion to 8C channels; maskgen's PyTorch engine runs
that head in strips (`maskgen.engine.fused_head`). Each (model, engine) runs in a fresh process, so one engine's arena
does not hide another's: a 256² warm-up, then one `size`² random RGB image with the peak RSS growth over the RSS before
it (Linux `clear_refs`/`VmHWM`), then the same image again, timed (the first call at a new shape includes one-off work:
OpenVINO compiles per shape). `bytes_per_pixel_channel` is that growth per input pixel and per channel C of
the network, the unit of `maskgen.backend.ENGINE_BYTES_PER_PIXEL_CHANNEL`. Each engine is asked for by name (`backend='torch'`, `'onnx'`, `'openvino'`), so `backend='auto'`'s rule for
whole inputs does not apply here. Prints one JSON object.

    python bench/bench_whole_memory.py [--models bench default] [--engines torch onnx openvino] [--size 1024] [--threads 2] [--out FILE]
"""
import argparse, json, os, subprocess, sys, time
from pathlib import Path
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_inference import cpu_info, peak_growth   # noqa: E402
from bench_engines import engine_net   # noqa: E402


def probe(which, engine, size, threads):
    "Run in a subprocess: seconds and peak RSS growth of one whole `size`² image of model `which` on `engine`."
    torch.set_num_threads(threads)
    from maskgen.generator import MaskGenerator
    net = engine_net(which)
    gen = MaskGenerator.from_model(net, device='cpu', backend=engine)
    image = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    gen.generate(image[:256, :256], 'whole')   # builds the engine and warms its allocator
    _, grew = peak_growth(lambda: gen.generate(image, 'whole'))   # the first call at this size: what it takes to run it at all
    t = time.perf_counter()
    gen.generate(image, 'whole')   # timed again, without the engines' one-off work for a new shape (OpenVINO compiles per shape)
    seconds = time.perf_counter() - t
    channels = net.config['channels']
    print(json.dumps(dict(backend=gen.backend, seconds=round(seconds, 2), extra_mib=round(grew / 2**20, 1),
                          bytes_per_pixel=round(grew / size**2, 1), bytes_per_pixel_channel=round(grew / size**2 / channels, 1))))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--models', nargs='+', default=['bench', 'default'], help='bench, lab or default (see bench_engines.py)')
    ap.add_argument('--engines', nargs='+', default=['torch', 'onnx', 'openvino'])
    ap.add_argument('--size', type=int, default=1024, help='side of the whole image')
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--out', help='also write the JSON here')
    ap.add_argument('--probe', nargs=2, metavar=('MODEL', 'ENGINE'), help=argparse.SUPPRESS)
    args = ap.parse_args()
    from maskgen.engine import keep_freed_memory
    keep_freed_memory()   # as MaskGenerator does on the CPU
    if args.probe: return probe(*args.probe, args.size, args.threads)
    results = {}
    for which in args.models:
        results[which] = {}
        for engine in args.engines:
            out = subprocess.run([sys.executable, __file__, '--probe', which, engine, '--size', str(args.size), '--threads', str(args.threads)],
                                 capture_output=True, text=True, env=os.environ)
            lines = out.stdout.strip().splitlines()
            results[which][engine] = json.loads(lines[-1]) if out.returncode == 0 and lines else {'error': out.stderr.strip()[-500:]}
    res = dict(size=args.size, threads=args.threads, torch=torch.__version__, cpu=cpu_info(),
               models=results,
               load_average=os.getloadavg())
    text = json.dumps(res, indent=1)
    print(text)
    if args.out: Path(args.out).write_text(text + '\n')


if __name__ == '__main__':
    main()
