// The page's Web Worker: loads the ONNX model with ONNX Runtime Web (WebGPU when the browser has a GPU adapter, else
// WebAssembly, multi-threaded when the page is cross-origin isolated), decodes images and runs maskgen's inference on
// them, so the page stays responsive. Everything it loads comes from the page's own folder (model.json, model.onnx, ort/).
import {decodeImage, ImageError} from './decode.js';
import * as core from './core.js';

const here = new URL('.', self.location.href);
const post = (msg, transfer = []) => self.postMessage(msg, transfer);
let ort, session, settings, backend;

async function fetchOk(name, how) {
  const url = new URL(name, here);
  let r;
  try { r = await fetch(url); } catch (e) { throw new Error(`cannot fetch ${name} (${e.message})`); }
  if (!r.ok) throw new Error(`fetching ${name} answered HTTP ${r.status}`);
  return how === 'json' ? r.json() : r.arrayBuffer();
}

async function loadOrt(file, threads) {
  const mod = await import(new URL(`ort/${file}`, here).href);
  mod.env.wasm.wasmPaths = new URL('ort/', here).href;   // never a CDN: the files are copied beside the page
  mod.env.wasm.numThreads = threads;
  mod.env.wasm.proxy = false;                            // already off the main thread
  mod.env.logLevel = 'error';
  return mod;
}

async function gpuAdapter() {
  if (!self.navigator || !navigator.gpu) return [null, 'this browser has no WebGPU'];
  try {
    const adapter = await navigator.gpu.requestAdapter();
    return adapter ? [adapter, ''] : [null, 'WebGPU offers no GPU adapter here'];
  } catch (e) { return [null, `WebGPU failed (${e.message})`]; }
}

async function init() {
  settings = await fetchOk('model.json', 'json');
  const model = new Uint8Array(await fetchOk(settings.model_file));
  const isolated = self.crossOriginIsolated === true;
  const threads = isolated ? Math.max(1, Math.min(navigator.hardwareConcurrency || 1, settings.max_threads)) : 1;
  const opts = {graphOptimizationLevel: 'all'};
  let [adapter, note] = await gpuAdapter();
  if (adapter) {
    try {
      ort = await loadOrt('ort.webgpu.min.mjs', threads);
      session = await ort.InferenceSession.create(model, {...opts, executionProviders: ['webgpu']});
      backend = {ep: 'webgpu', label: 'WebGPU', threads, isolated, note: ''};
    } catch (e) { note = `WebGPU could not run the model (${e.message})`; session = null; }
  }
  if (!session) {
    ort = ort || await loadOrt('ort.wasm.min.mjs', threads);
    session = await ort.InferenceSession.create(model, {...opts, executionProviders: ['wasm']});
    const why = isolated ? '' : '; one thread, as the page is not cross-origin isolated';
    backend = {ep: 'wasm', label: `WebAssembly (${threads} thread${threads > 1 ? 's' : ''})`, threads, isolated, note: note + why};
  }
  return {backend, settings};
}

async function predict(input, h, w) {
  const out = await session.run({[session.inputNames[0]]: new ort.Tensor('float32', input, [1, 3, h, w])});
  const logits = out[session.outputNames[0]];
  const data = logits.data;
  if (data.length !== h * w) throw new Error(`the model returned ${data.length} values for a ${h}×${w} input`);
  return data;
}

const ready = init().then(
  info => { post({type: 'ready', ...info}); return true; },
  e => { post({type: 'error', stage: 'model', message: `The model did not load: ${e.message}. Reload the page; ` +
                'if it persists, use the Python package (pip install maskgen).'}); return false; });

async function mask({name, buffer}) {
  const t0 = performance.now();
  let stage = 'decode';
  try {
    if (!(await ready)) throw new Error('the model did not load');
    const img = await decodeImage(name, buffer, settings.max_pixels);
    const range = core.intensityRange(img, settings);
    const strategy = core.defaultStrategy(img.height, img.width, settings);
    const tiles = core.tileCount(img.height, img.width, strategy);
    const rgba = core.toDisplay(img, range);
    const t1 = performance.now();
    post({type: 'decoded', width: img.width, height: img.height, rgba: rgba.buffer,
          info: {format: img.format, description: img.description, range, strategy, tiles}}, [rgba.buffer]);
    stage = 'run';
    const prob = await core.probability(img, range, strategy, settings, predict,
                                        (done, total) => post({type: 'progress', done, total}));
    const t2 = performance.now();
    post({type: 'result', prob: prob.buffer, width: img.width, height: img.height,
          seconds: {decode: (t1 - t0) / 1000, model: (t2 - t1) / 1000, total: (t2 - t0) / 1000}}, [prob.buffer]);
  } catch (e) {
    const message = e instanceof ImageError ? e.message
      : stage === 'decode' ? `Cannot read ${name}: ${e.message || e}`
      : `The model failed on ${name}: ${e.message || e}. A smaller image may fit; the Python package handles any size.`;
    post({type: 'error', stage, message});
  }
}

self.onmessage = ({data}) => { if (data && data.type === 'mask') mask(data); };
