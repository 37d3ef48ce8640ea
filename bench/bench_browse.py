"""Building a FiftyOne dataset to browse: N images of SIZExSIZE with ground-truth and predicted mask files (no inference).

Times `maskgen.browse.build_dataset` (reading the masks, computing the metrics, writing the samples) on a private MongoDB
started beforehand; the database start and FiftyOne's import are reported apart. `--tiff` writes the images as 16-bit TIFFs,
so that every sample also gets a JPEG preview. Prints one JSON object.

    python bench/bench_browse.py [--n 200] [--size 1024] [--workers 4] [--tiff]
"""
import argparse, json, os, platform, shutil, tempfile, time
from pathlib import Path
import numpy as np


def write_inputs(root, n, size, tiff, distinct=8):
    "N images (from `distinct` synthetic ones, each shifted) with ground-truth masks and predictions (the truth shifted by 6 px)."
    from PIL import Image
    import tifffile
    from maskgen.synth import synth_image
    from maskgen.io import save_mask
    pairs = [synth_image('nuclei', size, seed=s, bit_depth=16 if tiff else 8, rgb=False) for s in range(distinct)]
    for d in ('images', 'masks', 'pred'): (root / d).mkdir(parents=True)
    for i in range(n):
        img, mask = pairs[i % distinct]
        shift = i // distinct
        img, mask = np.roll(img, shift, axis=1), np.roll(mask, shift, axis=1)
        if tiff: tifffile.imwrite(root / 'images' / f'img{i:04d}.tif', img)
        else: Image.fromarray(img).save(root / 'images' / f'img{i:04d}.png', compress_level=1)
        save_mask(mask, root / 'masks' / f'img{i:04d}.png')
        save_mask(np.roll(mask, 6, axis=0), root / 'pred' / f'img{i:04d}_mask.png')


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--n', type=int, default=200)
    ap.add_argument('--size', type=int, default=1024)
    ap.add_argument('--workers', type=int, default=None, help='threads reading masks (default: min(4, CPUs))')
    ap.add_argument('--tiff', action='store_true', help='16-bit TIFF images, shown through JPEG previews')
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix='bench-browse-'))
    os.environ.update(FIFTYONE_DO_NOT_TRACK='true', HOME=str(tmp / 'home'), MPLCONFIGDIR=str(tmp / 'home' / 'mpl'))
    try:
        t = time.perf_counter()
        write_inputs(tmp / 'data', args.n, args.size, args.tiff)
        inputs_s = time.perf_counter() - t
        from maskgen.browse import PrivateDatabase, import_fiftyone, build_dataset, collect_records, dataset_from_records
        t = time.perf_counter()
        db = PrivateDatabase(tmp / 'db')
        db_start_s = time.perf_counter() - t
        try:
            t = time.perf_counter()
            import_fiftyone()
            build_dataset([tmp / 'data' / 'images' / sorted(os.listdir(tmp / 'data' / 'images'))[0]], gt_masks=tmp / 'data' / 'masks',
                          pred_masks=tmp / 'data' / 'pred', name='warmup', media_dir=tmp / 'media-warmup')
            import_and_warmup_s = time.perf_counter() - t

            t = time.perf_counter()
            ds = build_dataset(tmp / 'data' / 'images', gt_masks=tmp / 'data' / 'masks', pred_masks=tmp / 'data' / 'pred',
                               name='bench', media_dir=tmp / 'media', workers=args.workers)
            build_s = time.perf_counter() - t
            assert len(ds) == args.n and ds.count('dice') == args.n

            t = time.perf_counter()   # the two halves of build_dataset, timed apart
            records = collect_records(tmp / 'data' / 'images', tmp / 'data' / 'masks', tmp / 'data' / 'pred',
                                      media_dir=tmp / 'media', workers=args.workers)
            records_s = time.perf_counter() - t
            t = time.perf_counter()
            dataset_from_records(records, 'bench-records')
            dataset_s = time.perf_counter() - t
        finally: db.stop()
        print(json.dumps(dict(
            benchmark='build_dataset', images=args.n, size=args.size, image_format='16-bit TIFF + JPEG preview' if args.tiff else '8-bit PNG',
            workers=args.workers or min(4, os.cpu_count() or 1), cpus=os.cpu_count(), machine=platform.machine(),
            samples_per_s=round(args.n / build_s, 1), build_s=round(build_s, 2),
            records_s=round(records_s, 2), dataset_s=round(dataset_s, 2),
            db_start_s=round(db_start_s, 2), import_and_warmup_s=round(import_and_warmup_s, 2), inputs_s=round(inputs_s, 1)), indent=1))
    finally: shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    main()
