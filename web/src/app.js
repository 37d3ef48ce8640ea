// The page: pick or drop an image, show it with its mask, move the threshold, download the mask as a PNG.
// The work happens in worker.js; this file only draws. `window.maskgen` tells the page's state (also to the tests).
import {encode as encodePng} from 'fast-png';
import * as core from './core.js';

const $ = id => document.getElementById(id);
const api = window.maskgen = {state: 'loading', core, backend: null, settings: null, info: null, result: null, message: ''};
let worker = null, current = null, renderQueued = false, ticker = null, started = 0, runs = 0;

function setState(state) { api.state = state; document.body.dataset.state = state; }

function showMessage(text) {
  api.message = text;
  $('message').textContent = text;
  $('message').hidden = !text;
}

function fail(text) {
  clearInterval(ticker);
  showMessage(text);
  $('status').textContent = '';
  $('progress').value = 0;
  $('cancel').hidden = true;
  setState(api.backend ? 'error' : 'failed');
}

function startWorker() {
  worker = new Worker(new URL('worker.js', import.meta.url), {type: 'module'});
  worker.onmessage = ({data}) => handlers[data.type]?.(data);
  worker.onerror = e => { e.preventDefault?.(); fail(`The page's worker stopped (${e.message || 'an error it did not name'}). Reload the page.`); };
  worker.onmessageerror = () => fail("The page's worker sent a message the page could not read. Reload the page.");
}

const handlers = {
  ready({backend, settings}) {
    api.backend = backend; api.settings = settings;
    $('backend').textContent = `Runs on ${backend.label}${backend.note ? ` (${backend.note})` : ''} · model ${settings.name} v${settings.version}`;
    $('backend').dataset.ep = backend.ep;
    if (!current) setThreshold(settings.threshold);
    $('file').disabled = false;
    if (api.state === 'loading') setState('ready');
  },
  decoded({width, height, rgba, info}) {
    api.info = info;
    for (const id of ['image', 'overlay']) { $(id).width = width; $(id).height = height; }
    $('image').getContext('2d').putImageData(new ImageData(new Uint8ClampedArray(rgba), width, height), 0, 0);
    $('overlay').getContext('2d').clearRect(0, 0, width, height);
    $('stage').classList.add('has-image');
    const s = info.strategy;
    const how = s.name === 'tile' ? `${info.tiles} tiles of up to ${s.tile_size} px (overlap ${s.overlap}, ${s.window} window)`
                                  : 'the whole image at once';
    const range = info.range.map(v => +v.toPrecision(6)).join('–');
    $('info').textContent = `${current.name}: ${width}×${height}, ${info.description}; intensities ${range} map to −1…1; ${how}.`;
    $('progress').max = info.tiles; $('progress').value = 0;
    setState('running');
  },
  progress({done, total}) {
    $('progress').max = total; $('progress').value = done;
    $('status').textContent = `${done} of ${total} tile${total > 1 ? 's' : ''} · ${((performance.now() - started) / 1000).toFixed(1)} s`;
  },
  result({prob, width, height, seconds}) {
    clearInterval(ticker);
    current = {...current, width, height, prob: new Float32Array(prob), mask: new Uint8Array(width * height)};
    api.result = {width, height, seconds, tiles: api.info.tiles, backend: api.backend.ep};
    $('status').textContent = `Masked in ${seconds.total.toFixed(1)} s (decoding ${seconds.decode.toFixed(1)} s, model ` +
      `${seconds.model.toFixed(1)} s) on ${api.backend.label}`;
    $('download').disabled = false; $('cancel').hidden = true;
    render();
    setState('done');
  },
  error({message, stage}) {
    if (stage === 'model') { api.backend = null; $('backend').textContent = 'The model did not load.'; }
    fail(message);
  },
};

function setThreshold(value) {
  $('threshold').value = value;
  $('threshold-value').textContent = Number(value).toFixed(2);
  api.threshold = Number(value);
  queueRender();
}

function queueRender() {
  if (renderQueued || !current?.prob) return;
  renderQueued = true;
  requestAnimationFrame(() => { renderQueued = false; render(); });
}

// the mask at the slider's threshold, drawn over the image as a translucent fill with a full-colour outline
function render() {
  if (!current?.prob) return;
  const {width: W, height: H, prob, mask} = current;
  core.thresholdMask(prob, api.threshold, mask);
  const ctx = $('overlay').getContext('2d'), img = ctx.createImageData(W, H), px = img.data;
  let fg = 0;
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
    const i = y * W + x;
    if (!mask[i]) continue;
    fg++;
    const edge = (y > 0 && !mask[i - W]) || (y < H - 1 && !mask[i + W]) || (x > 0 && !mask[i - 1]) || (x < W - 1 && !mask[i + 1]);
    px[i * 4] = 255; px[i * 4 + 1] = 40; px[i * 4 + 2] = 40; px[i * 4 + 3] = edge ? 255 : 110;
  }
  ctx.putImageData(img, 0, 0);
  api.result = {...api.result, threshold: api.threshold, foreground: fg / (W * H)};
  $('foreground').textContent = `Foreground ${(100 * fg / (W * H)).toFixed(1)} % at threshold ${api.threshold.toFixed(2)}`;
}

async function maskFile(file) {
  if (!file) return;
  document.body.dataset.run = String(++runs);   // which image the state is about (for the tests)
  if (api.state === 'decoding' || api.state === 'running') { worker.terminate(); startWorker(); }   // drop the old image's work
  current = {name: file.name};
  api.result = null; api.info = null;
  showMessage('');
  $('download').disabled = true;
  $('stage').classList.remove('has-image');
  $('info').textContent = ''; $('foreground').textContent = '';
  const limit = api.settings?.max_file_bytes ?? Infinity;
  if (file.size > limit) {
    fail(`${file.name} is ${(file.size / 2 ** 20).toFixed(0)} MB, more than this page reads (${(limit / 2 ** 20).toFixed(0)} MB). ` +
         `Mask it with the Python package (maskgen predict), which handles images of any size.`);
    return;
  }
  $('cancel').hidden = false;
  $('status').textContent = `Reading ${file.name}…`;
  setState('decoding');
  started = performance.now();
  clearInterval(ticker);
  ticker = setInterval(() => {
    if (api.state === 'running' && $('progress').value === 0)
      $('status').textContent = `Running the model · ${((performance.now() - started) / 1000).toFixed(1)} s`;
  }, 500);
  let buffer;
  try { buffer = await file.arrayBuffer(); } catch (e) { fail(`Cannot read ${file.name}: ${e.message}`); return; }
  worker.postMessage({type: 'mask', name: file.name, buffer}, [buffer]);
}

function download() {
  if (!current?.mask) return;
  const png = encodePng({width: current.width, height: current.height, data: current.mask, channels: 1, depth: 8});
  const a = document.createElement('a');
  a.href = URL.createObjectURL(new Blob([png], {type: 'image/png'}));
  a.download = `${current.name.replace(/\.[^.]*$/, '')}_mask.png`;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
}

api.setThreshold = setThreshold;
api.probabilityBase64 = () => {   // the probability map as little-endian float32 bytes, for the tests
  if (!current?.prob) return null;
  const bytes = new Uint8Array(current.prob.buffer);
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(s);
};

$('file').addEventListener('change', e => {
  const file = e.target.files[0];
  e.target.value = '';   // so that picking the same file again masks it again
  maskFile(file);
});
$('threshold').addEventListener('input', e => setThreshold(e.target.value));
$('reset-threshold').addEventListener('click', () => api.settings && setThreshold(api.settings.threshold));
$('show-mask').addEventListener('change', e => { $('overlay').hidden = !e.target.checked; });
$('download').addEventListener('click', download);
$('cancel').addEventListener('click', () => {
  worker.terminate(); startWorker();
  current = null; api.result = null;
  fail('Cancelled.');
  setState('loading');
});
for (const ev of ['dragenter', 'dragover']) document.addEventListener(ev, e => { e.preventDefault(); document.body.classList.add('dragging'); });
for (const ev of ['dragleave', 'drop']) document.addEventListener(ev, e => { e.preventDefault(); document.body.classList.remove('dragging'); });
document.addEventListener('drop', e => maskFile(e.dataTransfer?.files?.[0]));

if (location.protocol === 'file:') {
  fail('This page must come from a web server, not a file: run `python -m http.server -d _docs` and open ' +
       'http://localhost:8000/in_browser/ (browsers do not run its worker from a file).');
} else {
  $('file').disabled = true;
  startWorker();
}
