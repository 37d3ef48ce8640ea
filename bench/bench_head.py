"""The fused full-resolution head on the CPU: one pass (the GRN's statistics gathered a slice of channels at a time)
(forced, whatever the head's width) against three passes over strips (what `fused_head` runs for depthwise outputs
larger than its `cache_bytes`, and how every input ran before), on the decoder features of one 512² tile of the benchmark image.

For each network (`--models bench lab`, random weights with a non-trivial GRN): seconds per call of each way, best of
`--repeats` interleaved rounds after a warm-up, on `--threads` threads, their agreement with the module's own head,
and the RSS growth of one call beyond what the process holds after the earlier calls (with glibc keeping freed
memory, that is the working memory the earlier calls did not already leave in the heap). `keep_freed_memory` is on, as in `MaskGenerator`. Prints one JSON object.

    python bench/bench_head.py [--models bench lab] [--threads 2] [--repeats 5]
"""
import argparse, json, sys, time
from pathlib import Path
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_inference import bench_model, cpu_info, peak_growth, MODELS   # noqa: E402
from bench_engines import bench_tile   # noqa: E402


def bench_one(which, repeats):
    from maskgen.engine import fused_head
    net = bench_model(0, which)
    with torch.inference_mode():
        feats = net.decoder.features(net.encoder(bench_tile()))
        ref = net.decoder.predict(feats)
        ways = {'one_pass': lambda: fused_head(net.decoder.predict, feats, cache_bytes=1 << 40), 'three_passes': lambda: fused_head(net.decoder.predict, feats, cache_bytes=0)}
        seconds = {k: [] for k in ways}
        for f in ways.values(): f()
        for _ in range(repeats):
            for k, f in ways.items():
                t = time.perf_counter(); f(); seconds[k].append(time.perf_counter() - t)
        return dict(model=repr(net), features=list(feats.shape), seconds={k: round(min(v), 4) for k, v in seconds.items()},
                    speedup=round(min(seconds['three_passes']) / min(seconds['one_pass']), 3),
                    max_abs_dlogit={k: float((f() - ref).abs().max()) for k, f in ways.items()},
                    peak_growth_mb={k: round(peak_growth(f)[1] / 2**20, 1) for k, f in ways.items()})


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--models', nargs='+', default=['bench', 'lab'], choices=list(MODELS))
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--repeats', type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from maskgen.engine import keep_freed_memory
    keep_freed_memory()
    res = dict(cpu=cpu_info(), threads=args.threads, torch=torch.__version__, repeats=args.repeats,
               models={m: bench_one(m, args.repeats) for m in args.models})
    print(json.dumps(res, indent=1))


if __name__ == '__main__': main()
