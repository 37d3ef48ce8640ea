"""Page faults of tiled inference on the CPU, with and without `maskgen.engine.keep_freed_memory`.

Eager PyTorch allocates fresh buffers for every layer of every tile; glibc serves large ones with fresh pages and
returns freed memory at the top of its heap to the OS, so each tile faults its pages back in. `MaskGenerator` asks
glibc to keep freed memory for reuse (`keep_freed_memory`); `MASKGEN_KEEP_FREED_MEMORY=0` turns that off. This bench
masks the same 2048² RGB image (tile 512, overlap 64, `backend='torch'`) in fresh processes, alternating the two
settings, and reports per setting the best steady-state seconds of a call, its minor page faults and system time,
and the RSS growth of one call beyond what the process holds after its warm-up call (with glibc keeping freed
memory, the warm-up's freed buffers are already counted in that starting point). Prints one JSON object.

    python bench/bench_page_faults.py [--model bench|lab] [--size 2048] [--threads 2] [--rounds 2] [--backend torch]
"""
import argparse, json, os, resource, subprocess, sys, time
from pathlib import Path
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_inference import bench_model, bench_image, cpu_info, peak_growth, MODELS, TILE, OVERLAP   # noqa: E402


def probe(which, size, backend, repeats=3):
    "Run in a subprocess: the best of `repeats` steady calls, with their minor faults and system seconds, and one call's peak growth."
    from maskgen.generator import MaskGenerator
    from maskgen.engine import keep_freed_memory
    gen = MaskGenerator.from_model(bench_model(0, which), device='cpu', backend=backend)
    image, strategy = bench_image(size), {'name': 'tile', 'tile_size': TILE, 'overlap': OVERLAP}
    gen.generate(image, strategy, progress=False)   # warm-up
    runs = []
    for _ in range(repeats):
        before, t = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        grew = peak_growth(lambda: gen.generate(image, strategy, progress=False))[1]
        after = resource.getrusage(resource.RUSAGE_SELF)
        runs.append(dict(seconds=time.perf_counter() - t, minor_faults=after.ru_minflt - before.ru_minflt,
                         system_s=after.ru_stime - before.ru_stime, peak_growth_mb=grew / 2**20))
    best = min(runs, key=lambda r: r['seconds'])
    print(json.dumps(dict(keep_freed_memory=keep_freed_memory(), backend=gen.backend, **{k: round(v, 3) for k, v in best.items()})))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--model', choices=list(MODELS), default='bench')
    ap.add_argument('--size', type=int, default=2048)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--rounds', type=int, default=2, help='fresh processes per setting, alternating')
    ap.add_argument('--backend', default='torch', help="maskgen engine: torch, onnx or openvino")
    ap.add_argument('--probe', action='store_true', help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.probe: return probe(args.model, args.size, args.backend)
    results = {'kept': [], 'off': []}
    for _ in range(args.rounds):
        for setting in results:
            env = {**os.environ, 'MASKGEN_KEEP_FREED_MEMORY': '1' if setting == 'kept' else '0'}
            out = subprocess.run([sys.executable, __file__, '--probe', '--model', args.model, '--size', str(args.size),
                                  '--threads', str(args.threads), '--backend', args.backend], capture_output=True, text=True, env=env)
            if out.returncode: raise RuntimeError(out.stderr[-2000:])
            results[setting].append(json.loads(out.stdout.strip().splitlines()[-1]))
    best = {k: min(v, key=lambda r: r['seconds']) for k, v in results.items()}
    print(json.dumps(dict(cpu=cpu_info(), threads=args.threads, model=args.model, size=args.size, tile=TILE, overlap=OVERLAP,
                          torch=torch.__version__, runs=results, best=best,
                          speedup_kept_vs_off=round(best['off']['seconds'] / best['kept']['seconds'], 3)), indent=1))


if __name__ == '__main__': main()
