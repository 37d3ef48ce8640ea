"""MaskTool responsiveness on a large image with cached probabilities: threshold redraw and brush strokes.

A 4096x4096 synthetic nuclei image, a tiny random Net (the model's speed does not matter here: its probabilities are
computed once, with the downsample strategy, and cached), the default 1024-px preview, CPU. Prints one JSON object
with median milliseconds; the targets are <= 100 ms for a threshold change and <= 50 ms for a brush stroke.

    python bench/bench_widget.py [--size 4096] [--repeats 21]
"""
import argparse, json, statistics, tempfile, time
from pathlib import Path
import numpy as np


def median_ms(f, repeats):
    "Median wall time of `f(k)` over `repeats` calls, in milliseconds."
    ts = []
    for k in range(repeats):
        t = time.perf_counter(); f(k); ts.append(time.perf_counter() - t)
    return round(statistics.median(ts) * 1000, 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('--size', type=int, default=4096)
    ap.add_argument('--repeats', type=int, default=21)
    args = ap.parse_args()
    import torch
    from PIL import Image
    from maskgen.model import Net
    from maskgen.generator import MaskGenerator
    from maskgen.synth import synth_image
    from maskgen.widget import MaskTool
    tmp = Path(tempfile.mkdtemp())
    img, _ = synth_image('nuclei', size=args.size, seed=1)
    Image.fromarray(img).save(tmp / 'big.png', compress_level=1)
    torch.manual_seed(0)
    gen = MaskGenerator.from_model(Net(8, {'layers': [1, 1, 1, 1]}), device='cpu', precision='fp32', threshold=0.5)
    t = time.perf_counter()
    tool = MaskTool(tmp / 'big.png', gen, masks_dir=tmp / 'masks', strategy={'name': 'downsample', 'max_dim': 512})
    open_s = time.perf_counter() - t
    t = time.perf_counter(); tool.run(); run_s = time.perf_counter() - t
    R, res = args.repeats, {'image': [args.size, args.size], 'preview': list(tool._disp.shape[:2]), 'repeats': args.repeats,
                            'torch_threads': torch.get_num_threads()}
    thresholds = np.linspace(0.3, 0.7, R)
    res['threshold_redraw_ms'] = median_ms(lambda k: setattr(tool.threshold, 'value', float(thresholds[k])), R)
    tool.min_size.value, tool.max_hole.value = 50, 50
    res['threshold_redraw_with_cleanup_ms'] = median_ms(lambda k: setattr(tool.threshold, 'value', float(thresholds[-1 - k])), R)
    tool.min_size.value = tool.max_hole.value = 0
    tool.brush.value = 'paint'
    # a drag across the preview: one press, then moves of 6 preview px, as ipyevents reports them (throttled to 25 ms)
    shown = {'boundingRectWidth': 1024, 'boundingRectHeight': 1024}
    tool._on_mouse({'type': 'mousedown', 'relativeX': 100, 'relativeY': 500, 'buttons': 1, **shown})
    res['brush_move_ms'] = median_ms(lambda k: tool._on_mouse({'type': 'mousemove', 'relativeX': 106 + 6 * k, 'relativeY': 500 + 3 * k, 'buttons': 1, **shown}), R)
    tool._on_mouse({'type': 'mouseup', 'relativeX': 0, 'relativeY': 0, **shown})
    res['brush_press_ms'] = median_ms(lambda k: tool.paint([(400 + 40 * k, 3000)], radius=24), R)
    res['paint_stroke_10_points_ms'] = median_ms(lambda k: tool.paint([(100 + 30 * j, 3500 - 5 * k) for j in range(10)], radius=16), R)
    res['undo_ms'] = median_ms(lambda k: tool.undo(), R)
    t = time.perf_counter(); m = tool.mask; res['full_resolution_mask_ms'] = round((time.perf_counter() - t) * 1000, 1)
    t = time.perf_counter(); tool.save(); res['save_ms'] = round((time.perf_counter() - t) * 1000, 1)
    res['open_image_s'], res['run_downsample_s'] = round(open_s, 2), round(run_s, 2)
    res['preview_jpeg_kb'] = round(len(tool.preview.value) / 1024, 1)
    res['mask_foreground'] = round(float((m > 0).mean()), 4)
    print(json.dumps(res, indent=1))


if __name__ == '__main__':
    main()
