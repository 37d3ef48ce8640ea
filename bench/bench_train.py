"""Training throughput on CPU: a plain fp32 eager loop vs maskgen's `train_step` (channels_last, autocast where the CPU has native bf16, EMA, clipping, schedule), eager and compiled.

Same model (Net(16, layers [1,1,2,1]), same initial weights), same batches (16 crops of 128x128), one process.
The variants run interleaved, step by step, so other load on the machine slows each alike.
Prints one JSON object with crops/s (wall clock and CPU time) per variant.

    python bench/bench_train.py [--steps 8] [--warmup 2] [--no-compile] [--threads 1]
"""
import argparse, copy, json, os, time
import torch
import torch.nn.functional as F

CONFIG = dict(channels=16, layers=[1, 1, 2, 1], stochastic_depth=0.1, ema=0.999, img_size=128, crop_per_img=4, batch_size=16,
              lr=1e-3, weight_decay=0.05, warmup_epoch=1, scheduler_params={'T-max': 100}, epochs=1, gradient_clip=1.0,
              num_workers=0, device='cpu')


def bench_batches(n, seed=0):
    "`n` batches of 16 images (3,128,128) in [-1,1] with masks of bright squares, made once and reused by every variant."
    g = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(n):
        masks = torch.zeros(16, 1, 128, 128)
        for m in masks:
            y, x, s = torch.randint(0, 96, (2,), generator=g).tolist() + [int(torch.randint(8, 32, (1,), generator=g))]
            m[:, y:y + s, x:x + s] = 1
        images = (masks * 1.2 - 0.6).expand(-1, 3, -1, -1) + 0.2 * torch.randn(16, 3, 128, 128, generator=g)
        batches.append((images.clamp(-1, 1).contiguous(), masks))
    return batches


def plain_fp32(model):
    "The baseline step: the textbook eager fp32 loop (AdamW, BCE-with-logits), nothing else."
    opt = torch.optim.AdamW(model.parameters(), lr=CONFIG['lr'], weight_decay=CONFIG['weight_decay'])
    model.train()
    def step(images, masks):
        loss = F.binary_cross_entropy_with_logits(model(images), masks)
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
        return loss.detach()
    return step, 'float32'


def maskgen_step(model, n_batches, standard_layout=False, **overrides):
    "maskgen's `train_step`: autocast, float32 loss, clipping, per-step schedule and EMA update (and torch.compile if asked)."
    from maskgen.train import make_train_state, train_config, train_step
    state = make_train_state(train_config({**CONFIG, **overrides}), steps_per_epoch=n_batches)
    if standard_layout:   # maskgen's step as it was before channels_last: the reference its losses must match
        state.memory_format = torch.contiguous_format
        for m in (state.model, state.ema): m.to(memory_format=torch.contiguous_format)
    state.model.load_state_dict(model.state_dict())
    state.ema.module.load_state_dict(model.state_dict())
    return (lambda x, y: train_step(state, x, y)), str(state.amp_dtype or 'float32').replace('torch.', '')


def run(steps:dict, batches, warmup):
    "Crops/s of each step function over `batches` after `warmup` untimed steps, the variants interleaved step by step."
    for step in steps.values():
        for i, (images, masks) in enumerate(batches[:warmup]):
            torch.manual_seed(i); step(images, masks)
    wall, cpu, losses = {k: 0. for k in steps}, {k: 0. for k in steps}, {k: [] for k in steps}
    for i, (images, masks) in enumerate(batches[warmup:], warmup):   # interleaved, so load from other processes hits every variant alike
        for k, step in steps.items():
            torch.manual_seed(i)   # the same stochastic-depth drops in every eager variant (compiled code draws its own)
            t, c = time.perf_counter(), time.process_time()
            losses[k].append(float(step(images, masks)))
            wall[k] += time.perf_counter() - t; cpu[k] += time.process_time() - c
    crops = sum(len(x) for x, _ in batches[warmup:])
    base = losses.get('maskgen_reference', losses[next(iter(steps))])
    return {k: dict(crops_per_s=round(crops / wall[k], 2), crops_per_cpu_s=round(crops / cpu[k], 2), seconds=round(wall[k], 2),
                    first_loss=round(losses[k][0], 4), last_loss=round(losses[k][-1], 4),
                    max_abs_loss_difference=round(max(abs(a - b) for a, b in zip(losses[k], base)), 5)) for k in steps}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--steps', type=int, default=8, help='timed steps per variant')
    ap.add_argument('--warmup', type=int, default=2, help='untimed steps first (compile happens here)')
    ap.add_argument('--no-compile', action='store_true', help='leave out maskgen with torch.compile (a minute or more of warm-up)')
    ap.add_argument('--threads', type=int, default=None, help='torch threads (default: torch\'s choice); 1 is steadier on a busy machine')
    args = ap.parse_args()
    if args.threads: torch.set_num_threads(args.threads)

    from maskgen.model import Net
    from maskgen.train import amp_settings
    from maskgen.recipe import use_compile, COMPILE_MIN_STEPS
    from maskgen.backend import machine_key
    torch.manual_seed(0)
    model = Net(CONFIG['channels'], CONFIG)
    batches = bench_batches(args.warmup + args.steps)
    res = dict(model=repr(model), batch=list(batches[0][0].shape), threads=torch.get_num_threads(), torch=torch.__version__,
               cpu=machine_key(torch.device('cpu'))['cpu'], cpu_capability=torch.backends.cpu.get_cpu_capability(),
               cpu_bf16=amp_settings('auto', torch.device('cpu'))[0] is not None, variants={})
    n = len(batches)
    steps, amp = {}, {}
    steps['plain_fp32_eager'], amp['plain_fp32_eager'] = plain_fp32(copy.deepcopy(model))
    steps['maskgen_reference'], amp['maskgen_reference'] = maskgen_step(copy.deepcopy(model), n, standard_layout=True, amp='auto', compile=False)
    steps['maskgen_eager'], amp['maskgen_eager'] = maskgen_step(copy.deepcopy(model), n, amp='auto', compile=False)
    if not args.no_compile: steps['maskgen_compiled'], amp['maskgen_compiled'] = maskgen_step(copy.deepcopy(model), n, amp='auto', compile=True)
    t = time.perf_counter()
    V = res['variants'] = run(steps, batches, args.warmup)
    res['seconds_total'] = round(time.perf_counter() - t, 1)
    for k in V: V[k]['precision'] = amp[k]
    diffs = {k: v.pop('max_abs_loss_difference') for k, v in V.items()}
    res['max_abs_loss_difference_vs_maskgen_reference'] = {k: d for k, d in diffs.items() if k.startswith('maskgen')}
    res['compile_auto_for_a_run_of_500_steps'] = use_compile('auto', 'cpu', COMPILE_MIN_STEPS)
    res['load_average'] = list(os.getloadavg()) if hasattr(os, 'getloadavg') else None
    base, base_cpu = V['plain_fp32_eager']['crops_per_s'], V['plain_fp32_eager']['crops_per_cpu_s']
    res['speedup_vs_plain_fp32'] = {k: round(v['crops_per_s'] / base, 2) for k, v in V.items()}
    res['cpu_time_speedup_vs_plain_fp32'] = {k: round(v['crops_per_cpu_s'] / base_cpu, 2) for k, v in V.items()}
    print(json.dumps(res, indent=1))


if __name__ == '__main__':
    main()
