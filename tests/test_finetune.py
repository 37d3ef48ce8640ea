"Fine-tuning with `train(init_from=...)` and `maskgen train --init-from` on crops of real BBBC039 nuclei, and the resume mistakes that now point to it."
import json, os
from pathlib import Path
import numpy as np
import pytest
import torch
from PIL import Image
from conftest import ROOT, run_maskgen

SHARED = ROOT.parent / 'shared'
LAB_SMALL = SHARED / 'fixtures' / 'lab_checkpoint' / 'lab_small.pth'
BBBC039 = SHARED / 'datasets' / 'real' / 'bbbc039'
ENV = {**os.environ, 'OMP_NUM_THREADS': '1', 'WANDB_MODE': 'disabled'}
# a short fine-tuning: no warmup, a 2-epoch cosine, float32 everywhere so that numbers do not depend on the CPU
FINE_TUNE = dict(stochastic_depth=0.1, ema=0.9, img_size=64, crop_per_img=4, batch_size=4, lr=1e-3, weight_decay=0.05,
                 warmup_epoch=0, scheduler_params={'T-max': 2}, epochs=2, gradient_clip=1.0, num_workers=0, amp='off', seed=0)

pytestmark = pytest.mark.skipif(not (LAB_SMALL.exists() and BBBC039.is_dir()), reason='needs the shared fixtures and real data')


def write_bbbc039_crops(root:Path, n_train=4, n_val=2, size=96)->Path:
    "Crops of real BBBC039 nuclei in the lab's layout root/{train,val}/{images,masks}: 8-bit RGB PNG images, 0/255 PNG masks."
    images = sorted((BBBC039 / 'images').glob('*.tif'))[:n_train + n_val]
    import tifffile
    for k, path in enumerate(images):
        split = 'train' if k < n_train else 'val'
        img, fg = tifffile.imread(path).astype(np.float32), tifffile.imread(BBBC039 / 'masks' / path.name) > 0
        # the window (on a 32 px grid) whose foreground fraction is nearest a quarter: nuclei and background in every crop
        _, y, x = min((abs(fg[y:y + size, x:x + size].mean() - 0.25), y, x)
                      for y in range(0, fg.shape[0] - size + 1, 32) for x in range(0, fg.shape[1] - size + 1, 32))
        lo, hi = np.percentile(img, (0.5, 99.8))
        crop = np.clip((img[y:y + size, x:x + size] - lo) / (hi - lo) * 255, 0, 255).astype(np.uint8)
        for sub in ('images', 'masks'): (root / split / sub).mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.stack([crop] * 3, -1)).save(root / split / 'images' / f'{path.stem[:16]}.png')
        Image.fromarray(fg[y:y + size, x:x + size].astype(np.uint8) * 255).save(root / split / 'masks' / f'{path.stem[:16]}.png')
    return root


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    return write_bbbc039_crops(tmp_path_factory.mktemp('bbbc039') / 'data')


def val_loss_of(weights, data_root:Path, cfg:dict)->float:
    "The validation loss of the weights in a file, computed here without `train`: its model on the validation crops train uses."
    from maskgen.checkpoint import load_model
    from maskgen.train import train_config, make_datasets, segmentation_loss
    model = load_model(weights)[0]
    _, val = make_datasets(data_root, train_config(cfg))
    with torch.inference_mode(): return float(np.mean([segmentation_loss(model(x[None]), y[None]).item() for x, y in val]))


def fine_tune(init_from, run_dir, data_root, **changes):
    from maskgen.train import train, read_metrics
    torch.set_num_threads(1)
    result = train({**FINE_TUNE, **changes}, run_dir, data_root, init_from=init_from, use_wandb=False, progress=False)
    return result, read_metrics(run_dir / 'metrics.jsonl')


def test_fine_tune_lab_checkpoint_improves_validation_loss(tmp_path, data, capsys):
    from maskgen.generator import MaskGenerator
    result, metrics = fine_tune(LAB_SMALL, tmp_path / 'run', data, lr=1e-2)
    print('lab_small.pth val loss by epoch:', [round(m['val_loss'], 4) for m in metrics])
    assert [m['epoch'] for m in metrics] == [0, 1, 2]
    cfg = json.loads((tmp_path / 'run' / 'config.json').read_text())
    assert (cfg['channels'], cfg['layers'], cfg['norm']) == (8, [1, 1, 2, 1], 'global')   # from the weights
    # epoch 0 is the lab's EMA weights as they are, not a fresh network
    assert metrics[0]['val_loss'] == pytest.approx(val_loss_of(LAB_SMALL, data, {**FINE_TUNE, **cfg}), rel=1e-5)
    assert metrics[2]['val_loss'] < 0.95 * metrics[0]['val_loss']
    report = result.report
    assert report['init_from']['path'] == str(LAB_SMALL) and report['init_from']['weights'] == 'ema'
    assert report['init_from']['initial_metrics']['val_loss'] == metrics[0]['val_loss']
    ckpt = torch.load(result.last_pth, weights_only=True)
    assert ckpt['step'] == 2 * 4 and ckpt['epoch'] == 2        # a new run: 2 epochs of 16 crops in batches of 4
    assert MaskGenerator(result.best_pth, device='cpu').info['config']['channels'] == 8
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith('epoch 0/2  val loss ') and lines[0].endswith('before training: lab_small.pth')
    assert lines[1].startswith('epoch 1/2  train loss ')


def test_fine_tune_default_model_beats_its_start_and_training_from_scratch(tmp_path, data):
    from maskgen.generator import DEFAULT_WEIGHTS
    from maskgen.train import train, read_metrics
    result, metrics = fine_tune('default', tmp_path / 'tuned', data)
    print('default model val loss by epoch:', [round(m['val_loss'], 4) for m in metrics],
          'Dice:', [round(m['val_dice'], 4) for m in metrics])
    assert metrics[0]['val_loss'] == pytest.approx(val_loss_of(DEFAULT_WEIGHTS, data, {**FINE_TUNE, **result.report['init_from']['config']}), rel=1e-5)
    assert metrics[0]['val_dice'] > 0.8            # the embedded model already finds these nuclei: its weights were loaded
    assert metrics[2]['val_loss'] < metrics[0]['val_loss']   # the default model (v6 on) has seen real BBBC039 nuclei, so it starts close: it still improves
    assert metrics[2]['val_dice'] > metrics[0]['val_dice']
    assert result.report['init_from']['name'] == 'maskgen-default'
    # the same two epochs from random weights end far behind: the start is what the fine-tuning gains from
    scratch = train({**FINE_TUNE, 'channels': 16, 'layers': [1, 1, 2, 1], 'norm': 'local'}, tmp_path / 'scratch', data,
                    use_wandb=False, progress=False, verbose=False)
    assert read_metrics(scratch.run_dir / 'metrics.jsonl')[-1]['val_loss'] > 2 * metrics[2]['val_loss']


def test_init_from_command_line(tmp_path, data):
    cfg = tmp_path / 'cfg.json'
    cfg.write_text(json.dumps({**FINE_TUNE, 'epochs': 1, 'scheduler_params': {'T-max': 1}}))
    r = run_maskgen('train', '--config', cfg, '--data-root', data, '--checkpoint-dir', tmp_path / 'run', '--init-from', 'default',
                    '--no-wandb', env=ENV)
    assert r.returncode == 0, r.stderr
    assert 'before training: maskgen-default' in r.stdout and 'epoch 1/1  train loss' in r.stdout
    report = json.loads((tmp_path / 'run' / 'report.json').read_text())
    assert report['status'] == 'finished' and report['init_from']['config'] == {'channels': 16, 'layers': [1, 1, 2, 1], 'norm': 'local'}
    # a config that does not fit the weights: one line naming the file and the values, exit status 2, nothing written
    cfg.write_text(json.dumps({**FINE_TUNE, 'channels': 16, 'layers': [1, 1, 2, 1]}))
    r = run_maskgen('train', '--config', cfg, '--data-root', data, '--checkpoint-dir', tmp_path / 'bad', '--init-from', LAB_SMALL,
                    '--no-wandb', env=ENV)
    assert r.returncode == 2
    assert f"Cannot start from {LAB_SMALL}: its weights are channels=8 but the config sets channels=16" in r.stderr, r.stderr
    assert not (tmp_path / 'bad').exists()
    # weights are not a run to resume: the error says to start from them instead
    r = run_maskgen('train', '--resume', tmp_path / 'run' / 'best.safetensors', '--data-root', data, '--no-wandb', env=ENV)
    assert r.returncode == 2 and '--init-from' in r.stderr and 'holds only weights' in r.stderr, r.stderr


def test_resume_of_a_finished_lab_checkpoint(tmp_path, data):
    "The lab's epochs count from 0: lab_small.pth (epoch 2 of epochs 3) is finished; with epochs 4 it trains exactly one more."
    from maskgen.train import train, read_metrics
    torch.set_num_threads(1)
    lab_cfg = {**json.loads((LAB_SMALL.parent / 'provenance.json').read_text())['config'], 'num_workers': 0, 'amp': 'off'}
    with pytest.raises(ValueError, match='it is a finished run, all 3 epochs are done') as e:
        train(lab_cfg, tmp_path / 'same', data, resume_from=LAB_SMALL, use_wandb=False)
    assert f"init_from='{LAB_SMALL}'" in str(e.value)
    assert not (tmp_path / 'same').exists()
    with pytest.warns(UserWarning, match='not written by maskgen.train'):
        result = train({**lab_cfg, 'epochs': 4}, tmp_path / 'more', data, resume_from=LAB_SMALL, use_wandb=False, progress=False)
    assert [m['epoch'] for m in read_metrics(tmp_path / 'more' / 'metrics.jsonl')] == [4]
    assert result.epochs == 4 and result.report['epochs_finished'] == 4
