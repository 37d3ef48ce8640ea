"""Masking at scale: a 16k x 16k TIFF masked lazily vs in memory, and a folder of 64 images on 1 and 2 Dask workers.

Part 1 writes a 16384x16384 RGB tiled BigTIFF (synthetic nuclei), then masks it in a fresh process each way:
lazily (`open_lazy`, strip by strip into a tiled BigTIFF) and in memory (`read_image` + `generate_and_save`), with the tile
strategy (tile 512, overlap 64). It reports each process's peak RSS and time. The model there is a 1x1 convolution
(`MaskGenerator.from_model`): this part measures reading, blending and writing, which is what bounds memory; a real network
adds its own time per tile but not memory per pixel of the image.
Part 2 masks a folder of 64 images (512x512, tile strategy) with the tiny Net(8, layers [1,1,1,1]) on a LocalCluster of 1,
then 2, worker processes (one thread each): wall time of the job (cluster start-up excluded), speedup, and each worker's peak RSS.

    python bench/bench_distributed.py [--size 16384] [--images 64] [--skip-large] [--skip-folder]
Prints one JSON object.
"""
import argparse, json, os, platform, resource, subprocess, sys, tempfile, time
from pathlib import Path
import numpy as np

TILES = {'name': 'tile', 'tile_size': 512, 'overlap': 64}


def cpu_name():
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'): return line.split(':', 1)[1].strip()
    except OSError: pass
    return platform.processor() or 'unknown'


def peak_rss_mb():
    "This process's peak resident memory in MiB (VmHWM: unlike ru_maxrss it is not inherited from the parent across exec)."
    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith('VmHWM:'): return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_large_tiff(path, size, tile=512):
    "A size x size RGB tiled BigTIFF of synthetic nuclei, written tile by tile (a few distinct tiles repeated)."
    import tifffile
    from maskgen.synth import synth_image
    variants = [np.ascontiguousarray(synth_image('nuclei', tile, seed=s, rgb=True)[0]) for s in range(8)]
    n = -(-size // tile)
    tiles = (variants[(i * 7 + j * 3) % len(variants)] for i in range(n) for j in range(n))
    tifffile.imwrite(path, tiles, shape=(size, size, 3), dtype=np.uint8, tile=(tile, tile), bigtiff=True, compression='zlib',
                     photometric='rgb', maxworkers=1)


def child_large(mode, image, out):
    "Mask `image` in this fresh process, lazily or in memory; print {'seconds', 'peak_rss_mb'}."
    import torch
    from torch import nn
    from maskgen.generator import MaskGenerator
    torch.manual_seed(0)
    model = nn.Conv2d(3, 1, 1)
    gen = MaskGenerator.from_model(model, device='cpu', precision='fp32')
    base = peak_rss_mb()
    t0 = time.perf_counter()
    if mode == 'lazy':
        from maskgen.large import open_lazy
        with open_lazy(image) as img: gen.generate_and_save(img, out, TILES, progress=False, postprocess=None)
    else: gen.generate_and_save(image, out, TILES, progress=False, postprocess=None)
    print(json.dumps(dict(seconds=round(time.perf_counter() - t0, 1), peak_rss_mb=round(peak_rss_mb()), rss_before_mb=round(base))))


def bench_large(size, work):
    image = work / 'large.tif'
    t0 = time.perf_counter()
    write_large_tiff(image, size)
    res = dict(image=f'{size}x{size} RGB uint8 tiled BigTIFF (zlib), {image.stat().st_size / 2**20:.0f} MiB on disk, '
                     f'{size * size * 3 / 2**20:.0f} MiB decoded', write_seconds=round(time.perf_counter() - t0, 1),
               strategy=TILES, model='1x1 convolution (MaskGenerator.from_model)')
    for mode in ('lazy', 'in_memory'):
        out = work / f'mask_{mode}.tif'
        r = subprocess.run([sys.executable, __file__, '--child', mode, str(image), str(out)], capture_output=True, text=True)
        if r.returncode: res[mode] = dict(error=r.stderr.strip().splitlines()[-1:]); continue
        res[mode] = json.loads(r.stdout.strip().splitlines()[-1])
    import tifffile
    try:
        a, b = tifffile.imread(work / 'mask_lazy.tif'), tifffile.imread(work / 'mask_in_memory.tif')
        res['masks_identical'] = bool(np.array_equal(a, b))
        del a, b
    except Exception as e: res['masks_identical'] = f'not compared: {e}'
    res['acceptance_lazy_peak_rss_under_1.5GB'] = res.get('lazy', {}).get('peak_rss_mb', 1e9) < 1536
    image.unlink()
    return res


def bench_folder(n_images, work):
    import torch
    from PIL import Image
    from maskgen.model import Net
    from maskgen.checkpoint import save_safetensors
    from maskgen.synth import synth_image
    from maskgen.distributed import dask_client, run_jobs
    folder = work / 'frames'
    folder.mkdir()
    for i in range(n_images): Image.fromarray(synth_image('nuclei', 512, seed=i)[0]).save(folder / f'f{i:03d}.png')
    torch.manual_seed(0)
    weights = work / 'tiny.safetensors'
    save_safetensors(Net(8, {'layers': [1, 1, 1, 1]}), weights, threshold=0.5)
    res = dict(images=f'{n_images} PNG 512x512 gray', model='Net(8, layers [1,1,1,1])', strategy=TILES | {'tile_size': 256, 'overlap': 64})
    for workers in (1, 2):
        out = work / f'out{workers}'
        jobs = [(f, out / f'{f.stem}_mask.png', None) for f in sorted(folder.iterdir())]
        with dask_client(workers=workers, quiet=True) as c:
            c.run(lambda: __import__('maskgen.distributed').distributed.worker_generator(weights=str(weights), device='cpu'))   # warm: load the model
            t0 = time.perf_counter()
            rep = run_jobs(jobs, dict(weights=str(weights), device='cpu'), dict(strategy=res['strategy']), client=c, quiet=True)
            seconds = time.perf_counter() - t0
            rss = c.run(peak_rss_mb)
        res[f'workers_{workers}'] = dict(seconds=round(seconds, 1), masked=rep['masked'], failed=len(rep['failed']),
                                         images_per_s=round(n_images / seconds, 2),
                                         peak_rss_mb_per_worker=sorted(round(v) for v in rss.values()))
    res['speedup_2_vs_1'] = round(res['workers_1']['seconds'] / res['workers_2']['seconds'], 2)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--size', type=int, default=16384)
    ap.add_argument('--images', type=int, default=64)
    ap.add_argument('--skip-large', action='store_true')
    ap.add_argument('--skip-folder', action='store_true')
    ap.add_argument('--child', nargs=3, metavar=('MODE', 'IMAGE', 'OUT'), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child: return child_large(*a.child)
    import torch, dask, distributed, zarr, tifffile
    res = dict(cpu=cpu_name(), cores=os.cpu_count(), load_average_at_start=[round(x, 1) for x in os.getloadavg()],
               torch=torch.__version__, dask=dask.__version__, distributed=distributed.__version__, zarr=zarr.__version__,
               tifffile=tifffile.__version__)
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        if not a.skip_large: res['large_tiff'] = bench_large(a.size, work)
        if not a.skip_folder: res['folder'] = bench_folder(a.images, work)
    res['load_average_at_end'] = [round(x, 1) for x in os.getloadavg()]
    print(json.dumps(res, indent=2))


if __name__ == '__main__':
    main()
