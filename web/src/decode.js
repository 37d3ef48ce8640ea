// Image files to pixel arrays with the semantics of maskgen.io.read_image: PNG decoded exactly (fast-png: 8 and 16 bits,
// palettes, alpha dropped), TIFF by geotiff (8/16-bit, 1 or 3 samples, and the other numeric types Python accepts), JPEG
// and BMP by the browser's own decoder without colour management; PNG and JPEG turned by their EXIF orientation. The result is
// {width, height, channels: 1|3, kind: 'uint8'|'uint16'|'float32', data, format, description}.
// Every file the page cannot read the way the Python package would gets an ImageError that says why and what to do.
import {decode as decodePng} from 'fast-png';
import {fromArrayBuffer} from 'geotiff';

export class ImageError extends Error {}

const mpx = n => `${(n / 1e6).toFixed(1)} megapixels`;

/** What kind of file `bytes` starts like: 'PNG', 'JPEG', 'TIFF', 'BigTIFF', 'BMP', or null. */
export function sniff(bytes) {
  const b = i => bytes[i];
  if (bytes.length >= 8 && b(0) === 0x89 && b(1) === 0x50 && b(2) === 0x4e && b(3) === 0x47) return 'PNG';
  if (bytes.length >= 3 && b(0) === 0xff && b(1) === 0xd8 && b(2) === 0xff) return 'JPEG';
  if (bytes.length >= 4 && ((b(0) === 0x49 && b(1) === 0x49) || (b(0) === 0x4d && b(1) === 0x4d))) {
    const le = b(0) === 0x49, magic = le ? b(2) | (b(3) << 8) : (b(2) << 8) | b(3);
    if (magic === 42) return 'TIFF';
    if (magic === 43) return 'BigTIFF';
  }
  if (bytes.length >= 26 && b(0) === 0x42 && b(1) === 0x4d) return 'BMP';
  return null;
}

// width and height from a JPEG's start-of-frame marker, without decoding it
function jpegSize(bytes) {
  let i = 2;
  while (i + 9 < bytes.length) {
    if (bytes[i] !== 0xff) { i++; continue; }
    const marker = bytes[i + 1];
    if (marker === 0xff) { i++; continue; }
    if (marker === 0xd8 || marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) { i += 2; continue; }
    const len = (bytes[i + 2] << 8) | bytes[i + 3];
    if (marker >= 0xc0 && marker <= 0xcf && ![0xc4, 0xc8, 0xcc].includes(marker))
      return {height: (bytes[i + 5] << 8) | bytes[i + 6], width: (bytes[i + 7] << 8) | bytes[i + 8]};
    i += 2 + len;
  }
  return null;
}

function checkSize(name, width, height, maxPixels) {
  if (!(width > 0 && height > 0)) throw new ImageError(`${name} says it is ${width}×${height} pixels: it has no pixels to mask`);
  if (width * height > maxPixels) {
    const side = Math.floor(Math.sqrt(maxPixels));
    throw new ImageError(`${name} is ${width}×${height} pixels (${mpx(width * height)}), larger than this page's limit of ` +
      `${mpx(maxPixels)} (e.g. ${side}×${side}). Mask it with the Python package (maskgen predict ${name} --o masks), which tiles ` +
      `images of any size, or crop it into pieces under the limit.`);
  }
}

// The EXIF orientation (1..8) in TIFF-structured EXIF data `exif` (starting at its II/MM byte order mark); 1 if none.
function exifOrientation(exif) {
  if (exif.length < 8) return 1;
  const dv = new DataView(exif.buffer, exif.byteOffset, exif.byteLength), le = exif[0] === 0x49;
  try {
    const ifd = dv.getUint32(4, le), n = dv.getUint16(ifd, le);
    for (let i = 0; i < n; i++) {
      const e = ifd + 2 + 12 * i;
      if (dv.getUint16(e, le) === 0x0112) return dv.getUint16(e + 8, le);
    }
  } catch (e) { /* a truncated EXIF block: no orientation */ }
  return 1;
}

// The EXIF orientation of a PNG, from its eXIf chunk
function pngOrientation(bytes) {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 8; i + 8 <= bytes.length;) {
    const len = dv.getUint32(i), type = String.fromCharCode(...bytes.subarray(i + 4, i + 8));
    if (type === 'eXIf') return exifOrientation(bytes.subarray(i + 8, i + 8 + len));
    if (type === 'IEND') break;
    i += 12 + len;
  }
  return 1;
}

/** `img` turned as EXIF `orientation` says (maskgen.io._orient, like Pillow's exif_transpose). */
export function orient(img, orientation) {
  if (!(orientation >= 2 && orientation <= 8)) return img;
  const {width: W, height: H, channels: C, data} = img, swap = orientation >= 5;
  const w = swap ? H : W, h = swap ? W : H, out = new data.constructor(data.length);
  const src = {2: (i, j) => [i, W - 1 - j], 3: (i, j) => [H - 1 - i, W - 1 - j], 4: (i, j) => [H - 1 - i, j],
               5: (i, j) => [j, i], 6: (i, j) => [H - 1 - j, i], 7: (i, j) => [H - 1 - j, W - 1 - i], 8: (i, j) => [j, W - 1 - i]}[orientation];
  for (let i = 0; i < h; i++) for (let j = 0; j < w; j++) {
    const [y, x] = src(i, j), o = (i * w + j) * C, q = (y * W + x) * C;
    for (let c = 0; c < C; c++) out[o + c] = data[q + c];
  }
  return {...img, width: w, height: h, data: out};
}

// PNG like maskgen.io: 16-bit PNGs at their full depth; alpha dropped; palettes expanded to RGB; 1-, 2- and 4-bit gray
// scaled to 0..255 (PIL's L;1/L;2/L;4 modes); then the EXIF orientation applied.
function readPng(name, bytes, maxPixels) {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  checkSize(name, dv.getUint32(16), dv.getUint32(20), maxPixels);
  let png;
  try { png = decodePng(bytes); } catch (e) { throw new ImageError(`${name} is not a complete PNG file (${e.message}): re-export it`); }
  const {width: W, height: H, depth, channels: S, data, palette} = png;
  const n = W * H;
  if (palette) {
    const out = new Uint8Array(n * 3), lineBytes = Math.ceil(W * depth / 8);
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
      const bit = x * depth, byte = data[y * lineBytes + (bit >> 3)];
      const idx = depth === 8 ? byte : (byte >> (8 - depth - (bit & 7))) & ((1 << depth) - 1);
      const rgb = palette[idx] || [0, 0, 0];
      out.set([rgb[0], rgb[1], rgb[2]], (y * W + x) * 3);
    }
    return {width: W, height: H, channels: 3, kind: 'uint8', data: out, description: `${depth}-bit palette PNG`};
  }
  const color = S >= 3 ? 3 : 1;   // gray, gray+alpha, RGB, RGBA
  const out = depth === 16 ? new Uint16Array(n * color) : new Uint8Array(n * color);
  if (depth < 8) {   // gray only: packed rows, scaled like PIL's L;1/L;2/L;4 modes
    const lineBytes = Math.ceil(W * depth / 8), max = (1 << depth) - 1;
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
      const bit = x * depth, byte = data[y * lineBytes + (bit >> 3)];
      out[y * W + x] = Math.round(((byte >> (8 - depth - (bit & 7))) & max) * 255 / max);
    }
  } else if (S === color) out.set(data);
  else for (let p = 0; p < n; p++) for (let c = 0; c < color; c++) out[p * color + c] = data[p * S + c];
  const what = ['gray', 'gray+alpha', 'RGB', 'RGBA'][S - 1];
  return {width: W, height: H, channels: color, kind: depth === 16 ? 'uint16' : 'uint8', data: out,
          description: `${depth}-bit ${what} PNG${S === 2 || S === 4 ? ', alpha ignored' : ''}`};
}

// TIFF like tifffile: raw samples; 1 or 3 samples per pixel, or a stack of 3 gray pages read as RGB channels
// (what read_image makes of a (3,H,W) stack); 8-bit stays 8-bit, 16-bit unsigned is 16-bit, other numbers become float32.
async function readTiff(name, buffer, maxPixels) {
  let tiff, count;
  try { tiff = await fromArrayBuffer(buffer); count = await tiff.getImageCount(); }
  catch (e) { throw new ImageError(`${name} is not a readable TIFF file (${e.message}): re-export it as a TIFF`); }
  const images = [];
  for (let i = 0; i < count; i++) images.push(await tiff.getImage(i));
  const first = images[0];
  const W = first.getWidth(), H = first.getHeight(), S = first.getSamplesPerPixel();
  const fmt = im => `${im.getWidth()}x${im.getHeight()}x${im.getSamplesPerPixel()}/${im.getBitsPerSample()}/${im.getSampleFormat()}`;
  const pages = images.filter(im => fmt(im) === fmt(first)).length;   // tifffile's first series: the pages shaped like the first
  const bits = first.getBitsPerSample(), format = first.getSampleFormat();
  const bitsAll = Array.from(first.fileDirectory.getValue('BitsPerSample') || [bits]);
  checkSize(name, W, H, maxPixels);
  if (pages > 1 && !(pages === 3 && S === 1))
    throw new ImageError(`${name} is a stack of ${pages} images of ${W}×${H}${S > 1 ? `×${S}` : ''} (a z-stack, time series or ` +
      `channels): this page masks one 2-D image, gray or RGB. Save the plane you want as its own TIFF (in Fiji: Image › ` +
      `Duplicate), or mask it with the Python package, which can pick a plane.`);
  if (![1, 3].includes(pages === 3 ? 3 : S))
    throw new ImageError(`${name} has ${S} samples per pixel${S === 2 || S === 4 ? ' (an alpha or extra channel)' : ''}: ` +
      `this page takes 1 (gray) or 3 (RGB). Save it as gray or RGB, or use the Python package and pick channels ` +
      `(channels=0 for one, channels=[0,1,2] for three).`);
  if (bitsAll.some(b => b !== bits))
    throw new ImageError(`${name} mixes ${bitsAll.join('/')} bits per sample: save it with the same bit depth for every channel`);
  const kindName = {1: 'unsigned integer', 2: 'signed integer', 3: 'floating point', 4: 'untyped', 5: 'complex integer',
                    6: 'complex floating point'}[format] || `SampleFormat ${format}`;
  const supported = (format === 1 && [1, 8, 16, 32].includes(bits)) || (format === 2 && [8, 16, 32].includes(bits)) ||
                    (format === 3 && [16, 32, 64].includes(bits));
  if (!supported)
    throw new ImageError(`${name} stores ${bits}-bit ${kindName} samples, which this page cannot read: ` +
      `save it as an 8- or 16-bit TIFF (or use the Python package)`);
  const compression = first.fileDirectory.getValue('Compression') || 1;
  let rasters;
  try {
    rasters = pages === 3
      ? await Promise.all(images.filter(im => fmt(im) === fmt(first)).map(im => im.readRasters({interleave: true})))
      : [await first.readRasters({interleave: true})];
  } catch (e) {
    throw new ImageError(`Cannot decode ${name} (TIFF compression ${compression}): ${e.message}. ` +
      `Save it uncompressed or with LZW/deflate compression, or use the Python package`);
  }
  const C = pages === 3 ? 3 : S, n = W * H;
  let kind, data;
  if (bits === 1) { kind = 'uint8'; data = new Uint8Array(n * C); }
  else if (format === 1 && bits === 8) { kind = 'uint8'; data = new Uint8Array(n * C); }
  else if (format === 1 && bits === 16) { kind = 'uint16'; data = new Uint16Array(n * C); }
  else { kind = 'float32'; data = new Float32Array(n * C); }
  for (let r = 0; r < rasters.length; r++) {
    const src = rasters[r];
    if (src.length < n * (rasters.length === 1 ? C : 1)) throw new ImageError(`${name} has fewer pixels than its header says: the file is truncated`);
    if (rasters.length === 1) { for (let i = 0; i < n * C; i++) data[i] = bits === 1 ? (src[i] ? 255 : 0) : src[i]; }
    else for (let i = 0; i < n; i++) data[i * 3 + r] = bits === 1 ? (src[i] ? 255 : 0) : src[i];
  }
  const what = pages === 3 ? 'stack of 3 pages read as RGB' : (C === 1 ? 'gray' : 'RGB');
  let bad = 0;   // pixels that are not a number: left out of the intensity range, and background (as in maskgen.io)
  if (kind === 'float32') for (let p = 0; p < n; p++) for (let c = 0; c < C; c++) if (!Number.isFinite(data[p * C + c])) { bad++; break; }
  return {width: W, height: H, channels: C, kind, data, description: `${bits}-bit ${kindName === 'unsigned integer' ? '' : kindName + ' '}${what} TIFF` +
          (bad ? `, ${bad} pixel${bad > 1 ? 's' : ''} not a number (NaN or ±inf), treated as background` : '')};
}

// JPEG and BMP through the browser's decoder, with no colour conversion or alpha, turned by the EXIF orientation as
// maskgen.io turns them
async function readWithBrowser(name, bytes, format, maxPixels) {
  let size = null;
  if (format === 'JPEG') size = jpegSize(bytes);
  else {   // BMP: a 12-byte core header has 16-bit sizes, the later ones 32-bit (negative height: top-down rows)
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), core = dv.getUint32(14, true) === 12;
    size = core ? {width: dv.getUint16(18, true), height: dv.getUint16(20, true)}
                : {width: Math.abs(dv.getInt32(18, true)), height: Math.abs(dv.getInt32(22, true))};
  }
  if (size) checkSize(name, size.width, size.height, maxPixels);
  let bitmap;
  try {
    bitmap = await createImageBitmap(new Blob([bytes]), {colorSpaceConversion: 'none', premultiplyAlpha: 'none', imageOrientation: 'from-image'});
  } catch (e) { throw new ImageError(`${name} is not a complete ${format} file (the browser cannot decode it): re-export it`); }
  const {width: W, height: H} = bitmap;
  checkSize(name, W, H, maxPixels);
  const ctx = new OffscreenCanvas(W, H).getContext('2d', {willReadFrequently: true});
  ctx.drawImage(bitmap, 0, 0);
  bitmap.close();
  const rgba = ctx.getImageData(0, 0, W, H).data, n = W * H, data = new Uint8Array(n * 3);
  for (let p = 0; p < n; p++) { data[p * 3] = rgba[p * 4]; data[p * 3 + 1] = rgba[p * 4 + 1]; data[p * 3 + 2] = rgba[p * 4 + 2]; }
  return {width: W, height: H, channels: 3, kind: 'uint8', data, description: `8-bit ${format}`};
}

/** The pixels of the file `name` with contents `buffer` (an ArrayBuffer); ImageError when the page cannot read it. */
export async function decodeImage(name, buffer, maxPixels) {
  const bytes = new Uint8Array(buffer);
  if (bytes.length === 0) throw new ImageError(`${name} is empty (0 bytes): pick an image file`);
  const format = sniff(bytes);
  if (format === null) {
    const head = Array.from(bytes.slice(0, 4), b => b.toString(16).padStart(2, '0')).join(' ');
    throw new ImageError(`${name} is not a PNG, JPEG, TIFF or BMP image (it starts with the bytes ${head}): ` +
      `pick an image file, or convert this one to PNG or TIFF`);
  }
  if (format === 'BigTIFF' || format === 'TIFF') return {format: 'TIFF', ...(await readTiff(name, buffer, maxPixels))};
  if (format === 'PNG') {
    const img = readPng(name, bytes, maxPixels), o = pngOrientation(bytes);
    return {format, ...orient(img, o), description: img.description + (o > 1 ? `, turned by its EXIF orientation ${o}` : '')};
  }
  return {format, ...(await readWithBrowser(name, bytes, format, maxPixels))};
}
