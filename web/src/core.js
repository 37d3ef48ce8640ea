// The arithmetic of maskgen's Python inference, ported line by line so the page gives the Python package's masks:
// intensity range and normalization (maskgen/io.py: intensity_range, normalize_tile), the default strategy
// (maskgen/generator.py: parse_strategy(None, shape)), padding to a multiple of 32 (generator._pad_to), and the tiling
// with its blend window (maskgen/engine.py: tile_starts, balanced_tile, tile_grid, read_tile, blend_profile, tiled_probability). The numbers these rules use
// (tile size, overlap, window, percentiles, ...) come from model.json, which web/build.py writes from the Python package.
// Pure functions, no DOM: the worker runs them, and the page exposes them to the tests (window.maskgen.core).

const f32 = Math.fround;

/**
 * Start offsets of tiles covering `length`, at most `tileSize - overlap` apart, multiples of `align`, the last one flush with
 * the end (`length` rounded up to a multiple of `align`) (engine.tile_starts).
 */
export function tileStarts(length, tileSize, overlap, align = 1) {
  const end = Math.ceil(length / align) * align;
  if (end < tileSize) throw new Error(`The image side of ${length} px is smaller than the tile size ${tileSize}`);
  if (end === tileSize) return [0];
  const T = Math.floor(tileSize / align), O = Math.ceil(overlap / align), L = end / align;
  if (tileSize % align || O >= T) throw new Error(`Tiles of ${tileSize} px overlapping by ${overlap} cannot start on a grid of ${align} px`);
  const n = Math.ceil((L - T) / (T - O)) + 1;
  return Array.from({length: n}, (_, i) => Math.min(i * (T - O), L - T) * align);
}

/** The smallest tile side, a multiple of `align` and at most `tileSize`, covering `length` with as few tiles on the grid (engine.balanced_tile). */
export function balancedTile(length, tileSize, overlap, align = 32) {
  const T = Math.floor(tileSize / align), O = Math.ceil(overlap / align);
  if (length <= tileSize || tileSize % align || O >= T) return tileSize;
  const n = tileStarts(length, tileSize, overlap, align).length, L = Math.ceil(length / align);
  return Math.min(tileSize, Math.ceil((L + (n - 1) * O) / n) * align);
}

/** Tile sides, starts and the padded extent of an `height` x `width` image (engine.tile_grid). */
export function tileGrid(height, width, tileSize, overlap, onGrid = true) {
  // each side on the 32 px grid where it can be: one tile, or room to overlap on the grid (not: 32 px tiles that overlap)
  const fits = (L, t) => onGrid && t % 32 === 0 && (Math.ceil(overlap / 32) * 32 < t || Math.ceil(L / 32) * 32 <= t);
  const gy = fits(height, tileSize), gx = fits(width, tileSize);
  const TH = gy ? balancedTile(height, tileSize, overlap) : balancedOffGrid(height, tileSize, overlap);
  const TW = gx ? balancedTile(width, tileSize, overlap) : balancedOffGrid(width, tileSize, overlap);
  const ys = tileStarts(height, TH, overlap, gy ? 32 : 1), xs = tileStarts(width, TW, overlap, gx ? 32 : 1);
  return {TH, TW, ys, xs, height: ys[ys.length - 1] + TH, width: xs[xs.length - 1] + TW};
}

/** balanced_tile(..., on_grid=False): the side a multiple of 32, the starts anywhere. */
function balancedOffGrid(length, tileSize, overlap, align = 32) {
  if (length <= tileSize || tileSize % align || overlap >= tileSize) return tileSize;
  const n = tileStarts(length, tileSize, overlap).length;
  return Math.min(tileSize, Math.ceil((length + (n - 1) * overlap) / (n * align)) * align);
}

/** 1-D blend weights (float32, > 0) along one side of a tile (engine.blend_profile). */
export function blendProfile(tileSize, overlap, window = 'hann', rampStart = true, rampEnd = true) {
  const w = new Float64Array(tileSize).fill(1);
  if (window === 'gaussian') {
    const g = new Float64Array(tileSize);
    let gmax = 0;
    for (let i = 0; i < tileSize; i++) {
      const t = i - (tileSize - 1) / 2;
      g[i] = Math.exp(-0.5 * (t / (tileSize / 8)) ** 2);
      gmax = Math.max(gmax, g[i]);
    }
    const half = Math.floor(tileSize / 2);
    for (let i = 0; i < tileSize; i++) {
      const v = Math.max(g[i] / gmax, 1e-3);
      if ((i < half && rampStart) || (i >= half && rampEnd)) w[i] = v;
    }
  } else if (window === 'hann' || window === 'linear') {
    for (let i = 0; i < overlap; i++) {
      const k = (i + 1) / (overlap + 1);
      const ramp = window === 'linear' ? k : Math.sin(Math.PI / 2 * k) ** 2;
      if (rampStart) w[i] = ramp;
      if (rampEnd) w[tileSize - 1 - i] = ramp;
    }
  } else throw new Error(`Unknown blend window ${JSON.stringify(window)}: use hann, linear or gaussian`);
  return Float32Array.from(w);
}

/** The strategy Python picks when none is named (parse_strategy(None, shape)): tile for images larger than a tile, else whole. */
export function defaultStrategy(height, width, settings) {
  const t = settings.tile_size;
  const big = Math.min(height, width) >= t && Math.max(height, width) > t;
  if (!big) return {name: 'whole'};
  return {name: 'tile', tile_size: t, overlap: settings.overlap, window: settings.window};
}

/** How many tiles (model runs) `strategy` takes for an image of `height` x `width`. */
export function tileCount(height, width, strategy) {
  if (strategy.name !== 'tile') return 1;
  const {tile_size: t, overlap: o} = strategy;
  const g = tileGrid(height, width, t, o);
  return g.ys.length * g.xs.length;
}

// numpy's default ('linear') percentile of a sorted sample given by `at(k)` (the k-th smallest of `n` values)
function percentile(at, n, q) {
  const v = (q / 100) * (n - 1);
  const lo = Math.floor(v), hi = Math.min(lo + 1, n - 1), g = v - lo;
  const a = at(lo), b = at(hi), d = f32(b - a);   // numpy subtracts in the sample's float32, then lerps in float64
  return g >= 0.5 ? b - d * (1 - g) : a + d * g;
}

/** The (low, high) intensities that map to -1 and 1: (0, 255) for 8-bit, robust percentiles otherwise (io.intensity_range). */
export function intensityRange(img, settings) {
  if (img.kind === 'uint8') return [0, 255];
  const [qlo, qhi] = settings.percentiles;
  const {width: W, height: H, channels: C, data} = img;
  const step = Math.max(1, Math.floor(Math.sqrt(H * W / settings.max_samples)));
  const rep = 4 - C;   // Python samples the (H,W,3) image: a gray value counts three times
  let at, n;
  if (img.kind === 'uint16') {   // exact order statistics from a histogram
    const hist = new Float64Array(65536);
    for (let y = 0; y < H; y += step) for (let x = 0; x < W; x += step) {
      const o = (y * W + x) * C;
      for (let c = 0; c < C; c++) hist[data[o + c]] += rep;
    }
    n = hist.reduce((s, v) => s + v, 0);
    const cum = new Float64Array(65536);
    let s = 0;
    for (let v = 0; v < 65536; v++) { s += hist[v]; cum[v] = s; }
    at = k => {   // smallest value with more than k values at or below it
      let lo = 0, hi = 65535;
      while (lo < hi) { const mid = (lo + hi) >> 1; if (cum[mid] > k) hi = mid; else lo = mid + 1; }
      return lo;
    };
  } else {
    const values = [];
    for (let y = 0; y < H; y += step) for (let x = 0; x < W; x += step) {
      const o = (y * W + x) * C;
      for (let c = 0; c < C; c++) { const v = data[o + c]; if (Number.isFinite(v)) values.push(v); }
    }
    const sorted = Float32Array.from(values).sort();
    n = sorted.length * rep;
    at = k => sorted[Math.floor(k / rep)];
  }
  if (n === 0) return [0, 1];
  const lo = percentile(at, n, qlo);
  let hi = percentile(at, n, qhi);
  if (hi <= lo) hi = lo + 1;
  return [lo, hi];
}

/** Row (or column) `i` of a picture padded at the end from `n` to more rows: reflected (without the edge) or replicated. */
function padIndex(i, n, reflect) {
  if (i < n) return i;
  return reflect ? 2 * (n - 1) - i : n - 1;
}

/**
 * Normalize the `h` x `w` region at (`y0`, `x0`) of `img` into `out` (a float32 (3,h,w) array, channels first) exactly as
 * io.normalize_tile does: (x - low) * 2/(high - low) - 1 in float32, clipped to [-1, 1] unless the image is 8-bit,
 * NaN and ±inf as -1.
 * Rows and columns past the image's bottom and right edges are padded as generator._pad_to pads them.
 */
export function normalizeRegion(img, range, y0, x0, h, w, out, reflect = true) {
  const {width: W, height: H, channels: C, data} = img;
  const lo = f32(range[0]), scale = f32(2 / (range[1] - range[0])), clip = img.kind !== 'uint8';
  const plane = h * w;
  for (let i = 0; i < h; i++) {
    const row = padIndex(y0 + i, H, reflect) * W;
    for (let j = 0; j < w; j++) {
      const o = (row + padIndex(x0 + j, W, reflect)) * C, k = i * w + j;
      for (let c = 0; c < 3; c++) {
        let v = f32(f32(f32(data[o + (C === 1 ? 0 : c)]) - lo) * scale) - 1;
        if (clip) v = !Number.isFinite(v) ? -1 : (v < -1 ? -1 : (v > 1 ? 1 : v));   // NaN and ±inf as the low end
        out[c * plane + k] = v;
      }
    }
  }
  return out;
}

const sigmoid = x => 1 / (1 + Math.exp(-x));

/** How generator._pad_to pads an `height` x `width` image: its padded size and whether by reflection. */
export function padding(height, width, multiple) {
  const ph = (multiple - height % multiple) % multiple, pw = (multiple - width % multiple) % multiple;
  return {height: height + ph, width: width + pw, reflect: ph < height && pw < width};
}

/**
 * Foreground probability (float32, H*W) of `img` with `strategy`, as MaskGenerator.predict_probability computes it.
 * `predict(input, h, w)` resolves to the (h*w) logits of a normalized (3,h,w) input; `onTile(done, total)` reports progress.
 */
export async function probability(img, range, strategy, settings, predict, onTile = () => {}) {
  const {width: W, height: H} = img;
  const prob = new Float32Array(H * W);
  if (strategy.name !== 'tile') {   // the whole image in one run, padded to a multiple of 32
    const pad = padding(H, W, settings.pad_multiple);
    const input = normalizeRegion(img, range, 0, 0, pad.height, pad.width, new Float32Array(3 * pad.height * pad.width), pad.reflect);
    const logits = await predict(input, pad.height, pad.width);
    for (let r = 0; r < H; r++) for (let c = 0; c < W; c++) prob[r * W + c] = sigmoid(logits[r * pad.width + c]);
    onTile(1, 1);
    return prob;
  }
  const {tile_size: T, overlap: o, window} = strategy;
  const {TH, TW, ys, xs, height: HP, width: WP} = tileGrid(H, W, T, o);   // on the network's grid, as tiled_probability
  const reflect = HP - H < H && WP - W < W;   // past the edges, the padding of a whole-image run
  const profY = ys.map(y => blendProfile(TH, o, window, y > 0, y + TH < HP));
  const profX = xs.map(x => blendProfile(TW, o, window, x > 0, x + TW < WP));
  const sumY = new Float32Array(HP), sumX = new Float32Array(WP);
  ys.forEach((y, i) => { for (let k = 0; k < TH; k++) sumY[y + k] += profY[i][k]; });
  xs.forEach((x, i) => { for (let k = 0; k < TW; k++) sumX[x + k] += profX[i][k]; });
  const input = new Float32Array(3 * TH * TW), total = ys.length * xs.length;
  let done = 0;
  for (let iy = 0; iy < ys.length; iy++) {   // the same order as Python, so the float32 sums add up the same way
    const y = ys[iy], py = profY[iy];
    for (let ix = 0; ix < xs.length; ix++) {
      const x = xs[ix], px = profX[ix];
      normalizeRegion(img, range, y, x, TH, TW, input, reflect);
      const logits = await predict(input, TH, TW);
      const h = Math.min(TH, H - y), w = Math.min(TW, W - x);   // the part inside the image
      for (let i = 0; i < h; i++) {
        const row = (y + i) * W + x, wy = py[i];
        for (let j = 0; j < w; j++) prob[row + j] += f32(f32(f32(sigmoid(logits[i * TW + j])) * wy) * px[j]);
      }
      onTile(++done, total);
    }
  }
  for (let r = 0; r < H; r++) {
    const sy = sumY[r];
    for (let c = 0; c < W; c++) prob[r * W + c] /= f32(sy * sumX[c]);
  }
  return prob;
}

/** The binary mask (0/255 bytes) of `prob` at `threshold`: foreground where prob > threshold, compared in float32 like numpy. */
export function thresholdMask(prob, threshold, out = new Uint8Array(prob.length)) {
  const t = f32(threshold);
  for (let i = 0; i < prob.length; i++) out[i] = prob[i] > t ? 255 : 0;
  return out;
}

/** RGBA bytes of `img` for display, scaled like the model's input (io.to_display). */
export function toDisplay(img, range) {
  const {width: W, height: H, channels: C, data} = img;
  const rgba = new Uint8ClampedArray(W * H * 4);
  const [lo, hi] = range, eight = img.kind === 'uint8';
  for (let p = 0; p < W * H; p++) {
    for (let c = 0; c < 3; c++) {
      const v = data[p * C + (C === 1 ? 0 : c)];
      rgba[p * 4 + c] = eight ? v : Math.floor(Math.min(Math.max((v - lo) / (hi - lo), 0), 1) * 255 + 0.5);
    }
    rgba[p * 4 + 3] = 255;
  }
  return rgba;
}
