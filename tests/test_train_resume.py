"Fault injection for `maskgen.train`: SIGKILL a training subprocess, check its files, resume it to the end."
import json, os, signal, subprocess, sys, time
from pathlib import Path
import numpy as np
import pytest
import torch
from PIL import Image

EPOCHS = 6
CONFIG = dict(channels=8, layers=[1, 1, 1, 1], stochastic_depth=0.1, ema=0.9, img_size=64, crop_per_img=2, batch_size=4,
              lr=2e-3, weight_decay=0.05, warmup_epoch=1, scheduler_params={'T-max': EPOCHS}, epochs=EPOCHS, clip_grad=1.0,
              num_workers=0, seed=0)
TRAIN = """
import json, sys
from maskgen.train import train
config, run_dir, data_root, resume = sys.argv[1:5]
train(json.loads(config), run_dir, data_root, resume_from=resume or None, use_wandb=False, progress=False)
"""

pytestmark = pytest.mark.skipif(not hasattr(signal, 'SIGKILL'), reason='needs SIGKILL')


def write_data(root:Path, n_train=4, n_val=2, size=96, seed=0):
    "Tiny image/mask pairs of bright disks on a noisy background in root/{train,val}/{images,masks}."
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    for split, n in (('train', n_train), ('val', n_val)):
        for sub in ('images', 'masks'): (root/split/sub).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            mask = np.zeros((size, size), bool)
            for _ in range(3):
                cy, cx = rng.integers(10, size - 10, 2)
                mask |= (yy - cy) ** 2 + (xx - cx) ** 2 < int(rng.integers(6, 16)) ** 2
            img = np.clip(40 + 150 * mask + rng.normal(0, 20, (size, size)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(root/split/'images'/f'{split}{i}.png')
            Image.fromarray(mask.astype(np.uint8) * 255).save(root/split/'masks'/f'{split}{i}.png')
    return root


def start(run_dir, data_root, resume=''):
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONWARNINGS': 'ignore'}
    return subprocess.Popen([sys.executable, '-c', TRAIN, json.dumps(CONFIG), str(run_dir), str(data_root), str(resume)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def last_epoch(run_dir:Path):
    "The epoch of run_dir/last.pth, or None while there is none."
    try: return torch.load(run_dir/'last.pth', weights_only=True)['epoch']
    except FileNotFoundError: return None


def kill_after(proc, run_dir:Path, epoch_above, delay:float, timeout=60.):
    "SIGKILL `proc` `delay` seconds after last.pth first holds an epoch above `epoch_above`; the epoch it held then."
    t0, seen = time.monotonic(), None
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None: pytest.fail(f"training ended before it was killed: {proc.stderr.read().decode()[-2000:]}")
        try: stat = (run_dir/'last.pth').stat()
        except FileNotFoundError: stat = None
        changed, seen = stat is not None and (stat.st_ino, stat.st_mtime_ns) != seen, stat and (stat.st_ino, stat.st_mtime_ns)
        epoch = last_epoch(run_dir) if changed else None
        if epoch is not None and epoch > epoch_above:
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL); proc.wait()
            return epoch
        time.sleep(0.01)
    proc.kill(); pytest.fail("no last.pth appeared in time")


def check_files(run_dir:Path):
    "Every file of a killed run is whole: JSON parses, checkpoints load; only metrics.jsonl may end in a torn line."
    from maskgen.checkpoint import read_checkpoint
    for name in ('config.json', 'environment.json', 'report.json'):
        if (run_dir/name).exists(): json.loads((run_dir/name).read_text())
    for name in ('best.pth', 'best.safetensors', 'last.pth'):
        if (run_dir/name).exists(): read_checkpoint(run_dir/name)
    lines = (run_dir/'metrics.jsonl').read_text().split('\n')
    for line in lines[:-1]: json.loads(line)


def test_sigkill_and_resume(tmp_path):
    data, run = write_data(tmp_path/'data'), tmp_path/'run'
    # 1. killed right after its first last.pth: typically while writing report.json or starting epoch 2
    killed_at = kill_after(start(run, data), run, 0, delay=0.0)
    ckpt = torch.load(run/'last.pth', weights_only=True)
    assert ckpt['epoch'] >= killed_at >= 1 and ckpt['epoch'] < EPOCHS
    check_files(run)
    # 2. resumed, then killed again in the middle of a later epoch
    killed_at = kill_after(start(run, data, resume=run), run, ckpt['epoch'], delay=0.3)
    assert torch.load(run/'last.pth', weights_only=True)['epoch'] < EPOCHS
    check_files(run)
    # 3. resumed from last.pth to the end
    proc = start(run, data, resume=run/'last.pth')
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()[-2000:]

    metrics = [json.loads(line) for line in (run/'metrics.jsonl').read_text().splitlines()]
    assert [m['epoch'] for m in metrics] == list(range(1, EPOCHS + 1))
    assert not list(run.glob('.*.tmp')), "a temporary file of an interrupted write was left behind"
    report = json.loads((run/'report.json').read_text())
    assert report['status'] == 'finished' and report['epochs_finished'] == EPOCHS
    assert report['best_metrics']['val_dice'] == max(m['val_dice'] for m in metrics)

    from maskgen.checkpoint import load_model
    for name in ('best.pth', 'best.safetensors', 'last.pth'):
        model, info = load_model(run/name)
        assert info['config']['channels'] == 8
        assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 1, 64, 64)
    assert load_model(run/'best.safetensors')[1]['threshold'] == report['threshold']
    assert torch.load(run/'last.pth', weights_only=True)['epoch'] == EPOCHS


def test_resumed_run_matches_uninterrupted(tmp_path):
    "Losses after a kill and resume are those of a run that went straight through."
    data = write_data(tmp_path/'data')
    straight = start(tmp_path/'straight', data)
    _, err = straight.communicate(timeout=120)
    assert straight.returncode == 0, err.decode()[-2000:]
    run = tmp_path/'run'
    kill_after(start(run, data), run, 1, delay=0.0)
    proc = start(run, data, resume=run)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()[-2000:]
    read = lambda p: [(m['epoch'], m['train_loss'], m['val_dice']) for m in map(json.loads, (p/'metrics.jsonl').read_text().splitlines())]
    assert read(run) == read(tmp_path/'straight')
