"`maskgen.browse.build_dataset` writes its samples in bulk (a few inserts, never one write per image) and the dataset is the one per-sample writes make, with the metrics of the mask files."
import math
from pathlib import Path
import numpy as np
import pytest

pytestmark = pytest.mark.fiftyone
N = 13   # images; dataset_from_records(batch_size=5) writes them in 3 batches
H, W = 48, 64
WRITE_METHODS = ('insert_one', 'insert_many', 'update_one', 'update_many', 'replace_one', 'bulk_write', 'find_one_and_update', 'find_one_and_replace')


@pytest.fixture(scope='module')
def masks_on_disk(tmp_path_factory):
    "N grayscale PNGs with disk-shaped ground truths and predictions damaged by different amounts (the last one empty): folder, {stem: (truth, prediction)}."
    from PIL import Image
    root = tmp_path_factory.mktemp('build')
    for d in ('images', 'masks', 'pred'): (root / d).mkdir()
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[:H, :W]
    pairs = {}
    for i in range(N):
        truth = np.zeros((H, W), bool)
        for _ in range(3):
            cy, cx, r = rng.integers(8, H - 8), rng.integers(8, W - 8), rng.integers(3, 9)
            truth |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        pred = np.roll(truth, i % 5, axis=1) & (yy < H - 3 * i)   # shifted and cut from below: each image its own score
        if i == N - 1: pred[:] = False
        img = (rng.integers(0, 40, (H, W)) + 150 * truth).astype(np.uint8)
        stem = f'cells{i:02d}'
        Image.fromarray(img).save(root / 'images' / f'{stem}.png')
        Image.fromarray(truth.astype(np.uint8) * 255).save(root / 'masks' / f'{stem}.png')
        Image.fromarray(pred.astype(np.uint8) * 255).save(root / 'pred' / f'{stem}_mask.png')
        pairs[stem] = (truth, pred)
    return root, pairs


def reference_metrics(truth, pred):
    "The metrics from sums of 0/1 float arrays (not maskgen's counts of booleans)."
    t, p = truth.astype(np.float64), pred.astype(np.float64)
    tp, nt, npred = (t * p).sum(), t.sum(), p.sum()
    return dict(dice=2 * tp / (nt + npred), iou=tp / (nt + npred - tp), precision=tp / npred if npred else 0.0, recall=tp / nt,
                fg_fraction_gt=t.mean(), fg_fraction_pred=p.mean())


class Calls:
    "Counts calls of FiftyOne's per-sample and bulk writers and of pymongo's writes to sample collections, while active."
    def __init__(self, monkeypatch):
        import fiftyone as fo, pymongo.collection
        self.counts = {}
        def wrap(owner, name, key, only=None):
            original = getattr(owner, name)
            def wrapper(obj, *a, **k):
                if only is None or only(obj): self.counts[key] = self.counts.get(key, 0) + 1
                return original(obj, *a, **k)
            monkeypatch.setattr(owner, name, wrapper)
        wrap(fo.Dataset, 'add_sample', 'Dataset.add_sample')
        wrap(fo.Dataset, 'add_samples', 'Dataset.add_samples')
        wrap(fo.Sample, 'save', 'Sample.save')
        for n in WRITE_METHODS: wrap(pymongo.collection.Collection, n, f'mongo.{n}', only=lambda c: c.name.startswith('samples.'))


def per_sample_dataset(records, name):
    "The dataset `dataset_from_records` makes, written one `add_sample` per record (the reference, and what must not happen)."
    from maskgen.browse import import_fiftyone, configure_app, METRIC_FIELDS, _sample
    fo = import_fiftyone()
    ds = fo.Dataset(name, overwrite=True)
    ds.add_sample_field('original_path', fo.StringField)
    for f in METRIC_FIELDS: ds.add_sample_field(f, fo.FloatField)
    ds.add_sample_field('prediction_resized', fo.BooleanField)
    for f in ('ground_truth', 'prediction'): ds.add_sample_field(f, fo.EmbeddedDocumentField, embedded_doc_type=fo.Segmentation)
    for r in records: ds.add_sample(_sample(fo, r))
    return configure_app(ds)


def _without_ids(d):
    "`d` (a sample's dict) without the values that differ between two writes of one sample: ids and timestamps."
    if isinstance(d, dict): return {k: _without_ids(v) for k, v in d.items() if k not in ('_id', 'id', 'created_at', 'last_modified_at', '_dataset_id')}
    if isinstance(d, list): return [_without_ids(v) for v in d]
    return d


def contents(ds):
    "Everything a user sees of `ds` except ids and timestamps: schema, samples in order, mask targets, App config, saved views."
    import fiftyone as fo
    schema = {k: (type(v).__name__, getattr(getattr(v, 'document_type', None), '__name__', None)) for k, v in ds.get_field_schema().items()}
    app = ds.app_config
    return dict(schema=schema, samples=[_without_ids(s.to_dict()) for s in ds], mask_targets=ds.mask_targets,
                default_mask_targets=ds.default_mask_targets, active_fields=list(app.active_fields.paths),
                sidebar=[(g.name, list(g.paths)) for g in app.sidebar_groups], colors=app.color_scheme.to_dict()['fields'],
                views=ds.list_saved_views(), worst_first=ds.load_saved_view('worst_first').values('original_path'),
                fo_version=fo.__version__)


def test_build_dataset_has_every_image_with_its_metrics(fiftyone_db, masks_on_disk, tmp_path):
    from PIL import Image
    from maskgen.browse import build_dataset, METRIC_FIELDS
    root, pairs = masks_on_disk
    ds = build_dataset(root / 'images', gt_masks=root / 'masks', pred_masks=root / 'pred', name='build-values', media_dir=tmp_path / 'media')
    assert len(ds) == N and ds.count('dice') == N
    assert sorted(Path(p).stem for p in ds.values('original_path')) == sorted(pairs)
    for s in ds:
        stem = Path(s.original_path).stem
        truth, pred = pairs[stem]
        for f, v in reference_metrics(truth, pred).items(): assert math.isclose(s[f], v, rel_tol=0, abs_tol=1e-12), (stem, f, s[f], v)
        assert s.filepath == str((root / 'images' / f'{stem}.png').resolve())
        assert (s.metadata.width, s.metadata.height, s.metadata.num_channels, s.metadata.mime_type) == (W, H, 1, 'image/png')
        assert s.metadata.size_bytes == (root / 'images' / f'{stem}.png').stat().st_size
        assert np.array_equal(np.asarray(Image.open(s.ground_truth.mask_path)) > 0, truth)
        assert np.array_equal(np.asarray(Image.open(s.prediction.mask_path)) > 0, pred)
        assert s.prediction_resized is False
    assert set(METRIC_FIELDS) <= set(ds.get_field_schema())
    assert ds.load_saved_view('worst_first').values('dice') == sorted(ds.values('dice'))
    assert min(ds.values('dice')) == 0.0   # the empty prediction
    ds.delete()


def test_build_dataset_writes_samples_in_bulk(fiftyone_db, masks_on_disk, tmp_path, monkeypatch):
    from maskgen.browse import build_dataset
    root, _ = masks_on_disk
    calls = Calls(monkeypatch)
    ds = build_dataset(root / 'images', gt_masks=root / 'masks', pred_masks=root / 'pred', name='build-bulk', media_dir=tmp_path / 'media')
    assert len(ds) == N
    assert calls.counts == {'Dataset.add_samples': 1, 'mongo.insert_many': 1}, calls.counts   # no add_sample, no Sample.save, one insert
    ds.delete()


def test_batches_are_one_insert_each_and_the_dataset_is_the_per_sample_one(fiftyone_db, masks_on_disk, tmp_path, monkeypatch):
    from maskgen.browse import collect_records, dataset_from_records
    root, _ = masks_on_disk
    records = collect_records(root / 'images', root / 'masks', root / 'pred', media_dir=tmp_path / 'media')
    reference = per_sample_dataset(records, 'build-reference')
    calls = Calls(monkeypatch)
    ds = dataset_from_records(records, 'build-batched', batch_size=5)
    assert calls.counts == {'Dataset.add_samples': 3, 'mongo.insert_many': 3}, calls.counts   # 13 samples: 5 + 5 + 3
    assert contents(ds) == contents(reference)
    ds.delete(); reference.delete()


def test_the_counts_catch_per_sample_writes(fiftyone_db, masks_on_disk, tmp_path, monkeypatch):
    "The instrument of the two tests above fails a writer that adds or saves the samples one at a time."
    from maskgen.browse import collect_records
    root, _ = masks_on_disk
    records = collect_records(root / 'images', root / 'masks', root / 'pred', media_dir=tmp_path / 'media')
    calls = Calls(monkeypatch)
    ds = per_sample_dataset(records, 'build-per-sample')
    assert calls.counts.get('Dataset.add_sample') == N and calls.counts.get('mongo.insert_many') == N, calls.counts
    calls.counts.clear()
    for s in ds.iter_samples(autosave=False):
        s['dice'] = 0.5; s.save()
    assert calls.counts.get('Sample.save') == N and sum(v for k, v in calls.counts.items() if k.startswith('mongo.')) >= N, calls.counts
    ds.delete()
