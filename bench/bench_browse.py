"""Building a FiftyOne dataset to browse: N images of SIZExSIZE with ground-truth and predicted mask files (no inference).

Times `maskgen.browse.build_dataset` end to end (finding the files, reading the masks, computing the metrics, writing the
samples, setting up the App) at each N, on a private MongoDB started beforehand (its start and FiftyOne's import are
reported apart, not in the rates). Then its two halves apart: `collect_records` (files, masks, metrics), and the writing
of the same records by three writers, each followed by the same `configure_app`:

- `after`: `dataset_from_records` as it is, `add_samples` in batches of `SAMPLES_PER_INSERT`, one insert each;
- `before`: a faithful copy of `dataset_from_records` before this batching: one `add_samples` call with all the samples
  made up front, batched by FiftyOne's default batcher;
- `per_sample`: one `Dataset.add_sample` per image, the pattern to avoid (maskgen never shipped it; it shows what bulk
  writes save).

Everything runs `--repeats` times per N (the writers in rotating order); the run of least wall time is reported, with
its CPU seconds (this process's and mongod's: on a shared machine they say more than the wall time), and every run's
wall time. The database writes to the samples' collection are counted. `--tiff` writes the images as 16-bit TIFFs, so that
every sample also gets a JPEG preview. Prints one JSON object (and writes it atomically to `--out`).

    python bench/bench_browse.py [--n 100 1000] [--size 1024] [--repeats 3] [--workers 2] [--tiff] [--out bench/results/browse_build.json]
"""
import argparse, gc, json, os, platform, shutil, tempfile, time
from pathlib import Path
import numpy as np

WRITE_METHODS = ('insert_one', 'insert_many', 'update_one', 'update_many', 'replace_one', 'bulk_write',
                 'find_one_and_update', 'find_one_and_replace')


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


def first_n(src, dst, n):
    "`dst`: images/, masks/, pred/ with the first `n` images of `src` and their masks, hard-linked (copied where links fail)."
    names = sorted(os.listdir(src / 'images'))[:n]
    stems = {Path(x).stem for x in names}
    for d in ('images', 'masks', 'pred'):
        (dst / d).mkdir(parents=True)
        for x in sorted(os.listdir(src / d)):
            if Path(x).stem.removesuffix('_mask') in stems:
                try: os.link(src / d / x, dst / d / x)
                except OSError: shutil.copy2(src / d / x, dst / d / x)
    return dst


class WriteCounter:
    "Counts pymongo write calls on FiftyOne's sample collections (`samples.*`) while active."
    def __init__(self):
        import pymongo.collection
        self.cls, self.calls = pymongo.collection.Collection, {}
        self.saved = {n: getattr(self.cls, n) for n in WRITE_METHODS}
    def __enter__(self):
        def counting(n):
            original = self.saved[n]
            def wrapper(coll, *a, **k):
                if coll.name.startswith('samples.'): self.calls[n] = self.calls.get(n, 0) + 1
                return original(coll, *a, **k)
            return wrapper
        for n in WRITE_METHODS: setattr(self.cls, n, counting(n))
        return self
    def __exit__(self, *exc):
        for n, f in self.saved.items(): setattr(self.cls, n, f)


def dataset_before(records, name):
    "`dataset_from_records` as it was before this change: all samples made up front, one `add_samples` call."
    from maskgen.browse import import_fiftyone, configure_app, empty_dataset, _sample
    fo = import_fiftyone()
    ds = empty_dataset(records, name)
    ds.add_samples([_sample(fo, r) for r in records], progress=False)
    return configure_app(ds)


def dataset_per_sample(records, name):
    "The same dataset written one `add_sample` (one database round trip) per image."
    from maskgen.browse import import_fiftyone, configure_app, empty_dataset, _sample
    fo = import_fiftyone()
    ds = empty_dataset(records, name)
    for r in records: ds.add_sample(_sample(fo, r))
    return configure_app(ds)


class Meter:
    "Calls `fn()` and returns its result and the elapsed seconds, this process's CPU seconds and mongod's (by its pid)."
    def __init__(self, mongod_pid):
        import psutil
        self.mongod = psutil.Process(mongod_pid)
    def mongod_cpu(self):
        t = self.mongod.cpu_times()
        return t.user + t.system
    def __call__(self, fn):
        gc.collect()
        wall, cpu, mongod = time.perf_counter(), time.process_time(), self.mongod_cpu()
        result = fn()
        wall, cpu, mongod = time.perf_counter() - wall, time.process_time() - cpu, self.mongod_cpu() - mongod
        return result, dict(wall_s=round(wall, 3), python_cpu_s=round(cpu, 3), mongod_cpu_s=round(mongod, 3), cpu_s=round(cpu + mongod, 3))


def best(runs):
    "The run of least wall time."
    return min(runs, key=lambda r: r['wall_s'])


def cpu_info():
    "Model name and flags of the first CPU in /proc/cpuinfo (Linux), else what `platform` knows."
    info = {}
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            k, _, v = line.partition(':')
            k, v = k.strip(), v.strip()
            if k in ('model name', 'flags') and k not in info: info[k] = v
    except OSError: pass
    return dict(model=info.get('model name') or platform.processor() or platform.machine(), flags=info.get('flags', ''))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--n', type=int, nargs='+', default=[100, 1000], help='numbers of images to build datasets of')
    ap.add_argument('--size', type=int, default=1024)
    ap.add_argument('--repeats', type=int, default=3, help='runs of each measurement per N (the best is reported)')
    ap.add_argument('--workers', type=int, default=None, help='threads reading masks (default: min(4, CPUs))')
    ap.add_argument('--tiff', action='store_true', help='16-bit TIFF images, shown through JPEG previews')
    ap.add_argument('--out', type=Path, default=None, help='also write the JSON here, atomically')
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix='bench-browse-'))
    os.environ.update(FIFTYONE_DO_NOT_TRACK='true', HOME=str(tmp / 'home'), MPLCONFIGDIR=str(tmp / 'home' / 'mpl'),
                      FIFTYONE_DATABASE_DIR=str(tmp / 'home' / 'fiftyone-db'))
    load_start = os.getloadavg()
    try:
        t = time.perf_counter()
        write_inputs(tmp / 'data', max(args.n), args.size, args.tiff)
        inputs_s = time.perf_counter() - t
        from maskgen.browse import PrivateDatabase, import_fiftyone, build_dataset, collect_records, dataset_from_records, SAMPLES_PER_INSERT
        t = time.perf_counter()
        db = PrivateDatabase(tmp / 'db')
        db_start_s = time.perf_counter() - t
        writers = dict(after=dataset_from_records, before=dataset_before, per_sample=dataset_per_sample)
        measure = Meter(db.process.pid)
        results = []
        try:
            t = time.perf_counter()
            import_fiftyone()
            warm = first_n(tmp / 'data', tmp / 'warm', 2)
            build_dataset(warm / 'images', warm / 'masks', warm / 'pred', name='warmup', media_dir=tmp / 'media-warm', workers=args.workers).delete()
            warm_records = collect_records(warm / 'images', warm / 'masks', warm / 'pred', media_dir=tmp / 'media-warm', workers=args.workers)
            for v, write in writers.items(): write(warm_records, f'warmup-{v}').delete()
            import_and_warmup_s = time.perf_counter() - t
            for n in args.n:
                data = first_n(tmp / 'data', tmp / f'n{n}', n)
                build_runs, records_runs, write_runs, writes = [], [], {v: [] for v in writers}, {}
                for rep in range(args.repeats):
                    ds, run = measure(lambda: build_dataset(data / 'images', data / 'masks', data / 'pred', name=f'build-{n}',
                                                            media_dir=tmp / f'media-{n}', workers=args.workers))
                    build_runs.append(run)
                    assert len(ds) == n and ds.count('dice') == n, (n, len(ds), ds.count('dice'))
                    ds.delete()
                    records, run = measure(lambda: collect_records(data / 'images', data / 'masks', data / 'pred', media_dir=tmp / f'media-{n}', workers=args.workers))
                    records_runs.append(run)
                    order = list(writers)[rep % len(writers):] + list(writers)[:rep % len(writers)]   # rotate, so no variant always runs first
                    for v in order:
                        with WriteCounter() as wc: ds, run = measure(lambda: writers[v](records, f'{v}-{n}'))
                        write_runs[v].append(run)
                        assert len(ds) == n and ds.count('dice') == n, (v, n, len(ds), ds.count('dice'))
                        writes[v] = wc.calls
                        ds.delete()
                build, recs = best(build_runs), best(records_runs)
                write = {v: best(r) for v, r in write_runs.items()}
                results.append(dict(
                    images=n,
                    build_dataset_samples_per_s=round(n / build['wall_s'], 1),
                    build_dataset=build, build_dataset_wall_s_runs=[r['wall_s'] for r in build_runs],
                    collect_records=recs, collect_records_wall_s_runs=[r['wall_s'] for r in records_runs],
                    write_samples_per_s={v: round(n / w['wall_s'], 1) for v, w in write.items()},
                    write=write, write_wall_s_runs={v: [r['wall_s'] for r in rs] for v, rs in write_runs.items()},
                    build_samples_per_s_from_parts={v: round(n / (recs['wall_s'] + w['wall_s']), 1) for v, w in write.items()},
                    sample_collection_writes=writes,
                    write_cpu_ratio_before_to_after=round(write['before']['cpu_s'] / write['after']['cpu_s'], 2),
                    write_cpu_ratio_per_sample_to_after=round(write['per_sample']['cpu_s'] / write['after']['cpu_s'], 2)))
        finally: db.stop()
        import fiftyone, pymongo
        cpu = cpu_info()
        out = dict(
            benchmark='build_dataset', size=args.size, image_format='16-bit TIFF + JPEG preview' if args.tiff else '8-bit PNG',
            masks='ground truth and prediction PNG files on disk (no inference)',
            variants=dict(after=f'maskgen.browse.dataset_from_records now: add_samples in batches of {SAMPLES_PER_INSERT}, one insert each',
                          before='dataset_from_records before: one add_samples call of all samples made up front, FiftyOne default batcher',
                          per_sample='one Dataset.add_sample per image (never shipped; the pattern bulk writes replace)'),
            measures=dict(build_dataset_samples_per_s='maskgen.browse.build_dataset end to end (best wall time of the runs): find files, read masks, metrics, write samples, App setup',
                          collect_records='collect_records alone (find files, read masks, metrics): the part every writer shares',
                          write='each writer alone on the same records (samples, database writes, App setup); best run by wall time',
                          build_samples_per_s_from_parts='n / (best collect_records wall + best write wall): build_dataset with each writer',
                          wall_s='elapsed seconds', python_cpu_s='CPU seconds of this process (all its threads)',
                          mongod_cpu_s='CPU seconds of the MongoDB server', cpu_s='python_cpu_s + mongod_cpu_s: the work done, '
                          'much less sensitive than wall time to other jobs on the machine'),
            goal_samples_per_s=20, results=results,
            repeats=args.repeats, workers=args.workers or min(4, os.cpu_count() or 1), cpus=os.cpu_count(),
            cpu_model=cpu['model'], cpu_flags=cpu['flags'], machine=platform.machine(), python=platform.python_version(),
            fiftyone=fiftyone.__version__, pymongo=pymongo.version,
            load_average_start=[round(x, 2) for x in load_start], load_average_end=[round(x, 2) for x in os.getloadavg()],
            note='shared machine: other jobs ran at the same time (see the load averages), so the seconds are noisy; compare variants within one run',
            excluded='database start (db_start_s) and FiftyOne import + warm-up (import_and_warmup_s) are not in the rates',
            db_start_s=round(db_start_s, 2), import_and_warmup_s=round(import_and_warmup_s, 2), inputs_s=round(inputs_s, 1))
        text = json.dumps(out, indent=1)
        print(text)
        if args.out:
            from maskgen.io import atomic_write
            args.out.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(args.out, lambda f: f.write((text + '\n').encode()))
    finally: shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    main()
