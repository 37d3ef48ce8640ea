"`maskgen eval` and `--from-run` as a user runs them: a run folder and a data folder in, JSON results out, mistakes caught first."
import json, os, time
from pathlib import Path
import numpy as np
import pytest
from PIL import Image
from conftest import run_maskgen

ENV = {**os.environ, 'OMP_NUM_THREADS': '1'}


@pytest.fixture(scope='session')
def data(tmp_path_factory):
    "A small synthetic data set: 4 training and 2 validation images of 96 px."
    from maskgen.synth import make_dataset
    return make_dataset(tmp_path_factory.mktemp('eval') / 'data', n_train=4, n_val=2, size=96, seed=0)


@pytest.fixture(scope='session')
def run(tmp_path_factory, data):
    "A finished one-epoch training run of a tiny model."
    import torch
    from maskgen.train import train
    torch.set_num_threads(1)
    cfg = dict(channels=8, layers=[1, 1, 1, 1], stochastic_depth=0.1, ema=0.9, img_size=64, crop_per_img=2, batch_size=4, lr=2e-3,
               weight_decay=0.05, warmup_epoch=1, scheduler_params={'T-max': 4}, epochs=1, clip_grad=1.0, num_workers=0)
    return train(cfg, tmp_path_factory.mktemp('eval') / 'run', data, use_wandb=False, progress=False)


def test_eval_from_run_writes_summary_and_per_image(tmp_path, data, run):
    out = tmp_path / 'eval'
    r = run_maskgen('eval', '--from-run', run.run_dir, '--data-root', data, '-o', out, '--device', 'cpu', env=ENV)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ['per_image.jsonl', 'summary.json']
    rows = [json.loads(line) for line in (out / 'per_image.jsonl').read_text().splitlines()]
    summary = json.loads((out / 'summary.json').read_text())
    assert len(rows) == summary['n'] == 2
    assert {'stem', 'dice', 'iou', 'precision', 'recall', 'fg_fraction_gt', 'fg_fraction_pred'} <= set(rows[0])
    assert summary['mean_dice'] == pytest.approx(np.mean([r['dice'] for r in rows]))
    assert 0 <= summary['pooled_dice'] <= 1 and 0 <= summary['pooled_iou'] <= summary['pooled_dice']
    assert summary['threshold'] == run.threshold and summary['threshold_source'] == 'calibrated'
    assert summary['weights'] == str(run.best_safetensors) and summary['split'] == 'val'
    assert f"Dice {summary['mean_dice']:.4f} mean" in r.stdout and 'summary.json' in r.stdout


def test_eval_weights_options_and_masks(tmp_path, data, tiny_weights):
    out = tmp_path / 'eval'
    r = run_maskgen('eval', '--weights', tiny_weights, '--data-root', data, '--split', 'train', '-o', out, '--threshold', '0.3',
                    '--tile-size', '64', '--overlap', '16', '--save-masks', '--fiftyone', '--device', 'cpu', env=ENV)
    assert r.returncode == 0, r.stderr
    summary = json.loads((out / 'summary.json').read_text())
    assert (summary['n'], summary['threshold'], summary['threshold_source']) == (4, 0.3, 'given')
    assert summary['strategy'] == {'name': 'tile', 'tile_size': 64, 'overlap': 16, 'window': 'hann'}
    stems = sorted(p.stem for p in (data / 'train' / 'images').iterdir())
    assert sorted(p.name for p in (out / 'masks').iterdir()) == sorted([f'{s}_mask.png' for s in stems] + [f'{s}_prob.tif' for s in stems])
    mask = np.asarray(Image.open(out / 'masks' / f'{stems[0]}_mask.png'))
    assert mask.shape == (96, 96) and set(np.unique(mask)) <= {0, 255}
    assert 'maskgen browse --images' in r.stdout


def test_missing_checkpoint_fails_fast(tmp_path, data):
    out = tmp_path / 'eval'
    t0 = time.perf_counter()
    r = run_maskgen('eval', '--weights', tmp_path / 'missing.safetensors', '--data-root', data, '-o', out, env=ENV)
    assert r.returncode == 2 and 'missing.safetensors does not exist' in r.stderr, r.stderr
    r = run_maskgen('eval', '--from-run', tmp_path / 'no_run', '--data-root', data, '-o', out, env=ENV)
    assert r.returncode == 2 and 'no_run does not exist' in r.stderr and 'train first' in r.stderr, r.stderr
    (tmp_path / 'unfinished').mkdir()
    r = run_maskgen('eval', '--from-run', tmp_path / 'unfinished', '--data-root', data, '-o', out, env=ENV)
    assert r.returncode == 2 and 'has no best.safetensors' in r.stderr, r.stderr
    assert not out.exists()                   # nothing written
    assert time.perf_counter() - t0 < 60      # three interpreter starts, no image work


def test_incompatible_checkpoint_and_bad_options(tmp_path, data):
    import torch
    from safetensors.torch import save_file
    save_file({'weight': torch.zeros(2, 2)}, str(tmp_path / 'linear.safetensors'))
    r = run_maskgen('eval', '--weights', tmp_path / 'linear.safetensors', '--data-root', data, '-o', tmp_path / 'o', env=ENV)
    assert r.returncode == 2 and 'not a maskgen Net' in r.stderr, r.stderr
    r = run_maskgen('eval', '--data-root', tmp_path / 'nodata', '--weights', tmp_path / 'linear.safetensors', env=ENV)
    assert r.returncode == 2
    r = run_maskgen('eval', '--threshold', 'high', env=ENV)
    assert r.returncode == 2 and '--threshold high: give a probability' in r.stderr


def test_predict_from_run(tmp_path, data, run):
    out = tmp_path / 'masks'
    r = run_maskgen('predict', data / 'val' / 'images', '-o', out, '--from-run', run.run_dir, '--threshold', 'auto',
                    '--device', 'cpu', '--quiet', env=ENV)
    assert r.returncode == 0, r.stderr
    stems = sorted(p.stem for p in (data / 'val' / 'images').iterdir())
    assert sorted(p.name for p in out.iterdir()) == [f'{s}_mask.png' for s in stems]
    r = run_maskgen('predict', data / 'val' / 'images', '-o', out, '--from-run', tmp_path / 'no_run', env=ENV)
    assert r.returncode == 2 and 'train first' in r.stderr, r.stderr


def test_summary_and_rows_say_when_and_with_what(tmp_path, data, run):
    from datetime import datetime
    out = tmp_path / 'eval'
    r = run_maskgen('eval', '--from-run', run.run_dir, '--data-root', data, '-o', out, '--device', 'cpu', '--tta', '4', env=ENV)
    assert r.returncode == 0, r.stderr
    summary = json.loads((out / 'summary.json').read_text())
    rows = [json.loads(line) for line in (out / 'per_image.jsonl').read_text().splitlines()]
    import maskgen, torch
    for record in [summary, *rows]:
        assert record['schema_version'] == 1
        assert datetime.fromisoformat(record['created']).utcoffset().total_seconds() == 0
        env = record['environment']
        assert (env['maskgen'], env['torch'], env['numpy'], env['device']) == (maskgen.__version__, torch.__version__, np.__version__, 'cpu')
        assert env['python'].count('.') == 2 and 'git_commit' in env
    assert summary['tta'] == 4 and summary['strategy_per_image'] == {'whole': 2}
    assert summary['strategy'].startswith('auto')


def test_min_dice_gate_sets_the_exit_status(tmp_path, data, run):
    out = tmp_path / 'eval'
    r = run_maskgen('eval', '--from-run', run.run_dir, '--data-root', data, '-o', out, '--device', 'cpu', '--min-dice', '0.99', env=ENV)
    summary = json.loads((out / 'summary.json').read_text())
    assert r.returncode == 1, r.stderr
    assert r.stderr.strip().splitlines()[-1] == (f"maskgen eval: FAILED: pooled Dice {summary['pooled_dice']:.4f} < --min-dice 0.99 "
                                                 f"(2 images of {data / 'val'})")
    assert (summary['min_dice'], summary['passed']) == (0.99, False)
    r = run_maskgen('eval', '--from-run', run.run_dir, '--data-root', data, '--device', 'cpu', '--min-dice', '0', env=ENV)
    assert r.returncode == 0 and 'maskgen eval: passed: pooled Dice' in r.stdout, r.stderr
    r = run_maskgen('eval', '--from-run', run.run_dir, '--data-root', data, '--min-dice', '1.5', env=ENV)
    assert r.returncode == 2 and '--min-dice 1.5' in r.stderr


def test_eval_applies_and_records_the_clean_up(tmp_path, data, run):
    "A run's stored clean-up is applied and recorded in summary.json; --min-size and friends replace it; bad values exit 2 in one line."
    import shutil
    from maskgen.generator import MaskGenerator, save_inference_settings
    from maskgen.metrics import mask_metrics
    from maskgen.data import read_mask
    run_dir = Path(shutil.copytree(run.run_dir, tmp_path / 'run'))   # the shared run stays as it is
    save_inference_settings(run_dir, {'min_size': 30, 'max_hole': 30})
    out = tmp_path / 'eval'
    r = run_maskgen('eval', '--from-run', run_dir, '--data-root', data, '-o', out, '--device', 'cpu', '--save-masks', env=ENV)
    assert r.returncode == 0, r.stderr
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['postprocess'] == {'min_size': 30, 'max_hole': 30, 'opening': 0}
    assert 'clean-up min_size 30, max_hole 30' in r.stdout
    gen = MaskGenerator.from_run(run_dir, device='cpu')
    changed = 0
    for row in map(json.loads, (out / 'per_image.jsonl').read_text().splitlines()):   # scored on the generator's cleaned mask
        expected = np.asarray(gen.generate(row['image'], threshold='auto')) > 0
        assert (read_mask(row['prediction']) == expected).all()
        changed += int((expected != (np.asarray(gen.generate(row['image'], threshold='auto', postprocess=None)) > 0)).any())
        assert row['dice'] == pytest.approx(mask_metrics(read_mask(row['ground_truth']), expected)['dice'])
    assert changed, 'the clean-up should change some mask of this run'
    r = run_maskgen('eval', '--from-run', run_dir, '--data-root', data, '--device', 'cpu', '--fill-holes', '-1', env=ENV)
    assert r.returncode == 2 and '--fill-holes -1.0: must be a number of pixels >= 0' in r.stderr and 'Traceback' not in r.stderr, r.stderr
