"The lab's training example (README of Katsurado/bernlab_maskgen), verbatim but for smaller numbers, on a tiny data set in the lab's layout."
import ast, importlib.util, json, os, subprocess, sys, textwrap
import numpy as np
import pytest
import torch
from test_finetune import BBBC039, write_bbbc039_crops

LAB_KEYS = ['channels', 'layers', 'stochastic_depth', 'ema', 'img_size', 'crop_per_img', 'batch_size', 'lr', 'weight_decay',
            'warmup_epoch', 'scheduler_params', 'epochs', 'gradient_clip']
# the README's example with a tiny model, 64 px crops and 2 epochs instead of 128 channels, 512 px and 100 epochs
LAB_EXAMPLE = textwrap.dedent('''
    from maskgen.train import train

    config = {
        "channels": 8,
        "layers": [1, 1, 1, 1],
        "stochastic_depth": 0.1,
        "ema": 0.9,
        "img_size": 64,
        "crop_per_img": 4,
        "batch_size": 4,
        "lr": 1e-3,
        "weight_decay": 1e-2,
        "warmup_epoch": 1,
        "scheduler_params": {"T-max": 2},
        "epochs": 2,
        "gradient_clip": 1.0,
    }
    train(config, checkpoint_dir="./checkpoints", data_root="./data")
''')


@pytest.mark.skipif(not BBBC039.is_dir(), reason='needs the shared real data')
def test_lab_training_example(tmp_path):
    write_bbbc039_crops(tmp_path / 'data')
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'WANDB_MODE': 'disabled'}   # the example logs to W&B when wandb is installed
    r = subprocess.run([sys.executable, '-c', LAB_EXAMPLE], cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'not used by maskgen.train' not in r.stderr          # every key of the lab's config is one train knows
    assert 'invalid' not in r.stderr and 'missing' not in r.stderr
    run = tmp_path / 'checkpoints'
    config = json.loads((run / 'config.json').read_text())
    given = ast.literal_eval(LAB_EXAMPLE.split('config = ')[1].split('train(')[0])
    assert {k: config[k] for k in LAB_KEYS} == given         # every lab key kept, with its value
    assert [line.split('  ')[0] for line in r.stdout.splitlines() if line.startswith('epoch ')] == ['epoch 1/2', 'epoch 2/2']
    # the model summary the lab's script wrote, when torchinfo is installed (it is in maskgen[train]); otherwise a note
    note = json.loads((run / 'environment.json').read_text())['model_summary']
    if importlib.util.find_spec('torchinfo'):
        assert note == 'model_arch.txt' and 'Total params' in (run / 'model_arch.txt').read_text()
        assert '(4, 1, 64, 64)' in (run / 'model_arch.txt').read_text().replace('[', '(').replace(']', ')')   # the config's batch
    else: assert not (run / 'model_arch.txt').exists() and 'torchinfo is not installed' in note

    # best.pth is in the lab's layout, and MaskGenerator loads it like the lab's own checkpoints
    best = torch.load(run / 'best.pth', weights_only=True)
    assert {'model_state_dict', 'optimizer_state_dict', 'scheduler_state_dict', 'metric', 'epoch', 'ema_model'} <= set(best)
    from maskgen.generator import MaskGenerator
    from maskgen.io import read_image
    gen = MaskGenerator(run / 'best.pth', device='cpu')
    assert gen.info['config']['channels'] == 8 and gen.info['weights'] == 'ema'
    assert 0.05 <= gen.threshold <= 0.95                           # calibrated on the validation crops
    image = read_image(sorted((tmp_path / 'data' / 'val' / 'images').iterdir())[0])
    mask = np.asarray(gen.generate(image, threshold='auto'))
    assert mask.shape == (96, 96) and set(np.unique(mask)) <= {0, 255}
