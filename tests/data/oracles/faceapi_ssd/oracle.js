// face-api's SSD-MobileNetV1 face detector run in its own runtime: the oracle for mnet_vision's port.
//
// Runs @vladmandic/face-api (its node-wasm bundle: @tensorflow/tfjs with the pure-JS 'cpu' backend and
// @tensorflow/tfjs-backend-wasm; never tfjs-node, whose install downloads a native binary) exactly as its
// users call it: detectAllFaces(int32 tensor3d [h, w, 3], SsdMobilenetv1Options). make_oracle.py drives it.
//
// Usage:
//   node oracle.js --project DIR --model DIR --inputs inputs.json --out DIR
//       inputs.json: [{"name", "jpeg", "rgb", "width", "height"}]; "rgb" = raw HxWx3 uint8 bytes (the bytes
//       mnet_vision's reader decoded). Writes DIR/results.json and DIR/raw/<backend>_<input>_<name>.f32
//       (float32 LE: box encodings [5118,4], logits [5118,3], decoded boxes [5118,4], face scores [5118]) and
//       DIR/jpegjs_<name>.rgb (jpeg-js's RGB bytes).
//   node oracle.js --time --project DIR --model DIR [--backends wasm,cpu] a.jpg b.jpg ...
//       per backend, per photo: median ms over 5 runs (after 1 warm-up) of jpeg-js decode + detectAllFaces
//       at 0.5, and of detectAllFaces alone; JSON on stdout.
// --backends: a comma list of cpu, wasm (default both, in that order).
// --project: the folder whose node_modules hold the pinned packages (default: this file's folder).
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const { parseBackends, loadFaceapi, setBackend: startBackend } = require('../tfjs_backend.js');

const N_ANCHORS = 5118;
const INPUT_SIZE = 512;
const THRESHOLDS = [0.5, 0.1];
const MAX_RESULTS = 100;
// The synthetic input: 512x512 (no pad, no resize), easy to rebuild in Python.
const SYNTHETIC_FORMULA = 'v[y][x][c] = (x*7 + y*13 + c*101 + ((x*y) % 31)) % 256, x, y in 0..511, c in 0..2';

function parseArgs(argv) {
  const args = { time: false, project: __dirname, files: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--time') args.time = true;
    else if (['--project', '--model', '--inputs', '--out', '--backends'].includes(a)) {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      args[a.slice(2)] = argv[++i];
    } else if (a.startsWith('--')) throw new Error(`unknown option ${a}`);
    else args.files.push(a);
  }
  if (!args.model) throw new Error('--model DIR (face-api\'s model/ folder) is required');
  if (!args.time && (!args.inputs || !args.out)) throw new Error('--inputs FILE and --out DIR are required');
  if (args.time && !args.files.length) throw new Error('--time needs JPEG files');
  args.backends = parseBackends(args.backends);
  return args;
}

const args = parseArgs(process.argv.slice(2));
const { projectRequire, faceapi, wasmBackend } = loadFaceapi(args.project);
const jpeg = projectRequire('jpeg-js');
const { tf } = faceapi;

function sha256(bytes) {
  return crypto.createHash('sha256').update(bytes).digest('hex');
}

function median(values) {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

// jpeg-js, as a face-api user in Node without canvas decodes: RGBA -> RGB bytes.
function decodeJpeg(file) {
  const img = jpeg.decode(fs.readFileSync(file), { useTArray: true });
  const n = img.width * img.height;
  const rgb = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    rgb[3 * i] = img.data[4 * i];
    rgb[3 * i + 1] = img.data[4 * i + 1];
    rgb[3 * i + 2] = img.data[4 * i + 2];
  }
  return { rgb, width: img.width, height: img.height };
}

function synthetic() {
  const rgb = new Uint8Array(INPUT_SIZE * INPUT_SIZE * 3);
  for (let y = 0; y < INPUT_SIZE; y++) {
    for (let x = 0; x < INPUT_SIZE; x++) {
      for (let c = 0; c < 3; c++) rgb[(y * INPUT_SIZE + x) * 3 + c] = (x * 7 + y * 13 + c * 101 + ((x * y) % 31)) % 256;
    }
  }
  return { rgb, width: INPUT_SIZE, height: INPUT_SIZE };
}

function toTensor({ rgb, width, height }) {
  return tf.tensor3d(Int32Array.from(rgb), [height, width, 3], 'int32');
}

// face-api exports no internals: the raw network outputs are caught where its predictionLayer concatenates
// the six box predictors, by wrapping the active backend's 'Concat' kernel in tfjs's own registry.
const captured = { enc: null, logits: null };
let capturing = false;

function wrapConcat(backendName) {
  const original = tf.getKernel('Concat', backendName);
  if (!original) throw new Error(`no Concat kernel registered for backend ${backendName}`);
  tf.unregisterKernel('Concat', backendName);
  tf.registerKernel({
    ...original,
    kernelFunc: (kernelArgs) => {
      const out = original.kernelFunc(kernelArgs);
      if (capturing) {
        const shape = out.shape.join(',');
        const copy = () => Float32Array.from(kernelArgs.backend.readSync(out.dataId));
        if (shape === `1,${N_ANCHORS},1,4`) captured.enc = copy();
        else if (shape === `1,${N_ANCHORS},3`) captured.logits = copy();
      }
      return out;
    },
  });
}

async function setBackend(name) {
  return startBackend(tf, wasmBackend, projectRequire, name); // ../tfjs_backend.js
}

function detectionRecord(d) {
  return { score: d.score, box: { x: d.box.x, y: d.box.y, width: d.box.width, height: d.box.height } };
}

async function detect(tensor, minConfidence) {
  const found = await faceapi.detectAllFaces(tensor, new faceapi.SsdMobilenetv1Options({ minConfidence, maxResults: MAX_RESULTS }));
  return found;
}

// All 5118 anchors, face-api's own forward: raw encodings + logits (caught at Concat) and its decoded
// boxes [ymin, xmin, ymax, xmax] (fractions of the padded square) and sigmoid face scores.
async function rawOutputs(tensor) {
  captured.enc = null;
  captured.logits = null;
  capturing = true;
  const { boxes, scores } = faceapi.nets.ssdMobilenetv1.forwardInput(await faceapi.toNetInput(tensor));
  capturing = false;
  if (!captured.enc || !captured.logits) throw new Error('the Concat kernel never produced [1,5118,1,4] and [1,5118,3]');
  const out = { enc: captured.enc, logits: captured.logits, boxes: boxes[0].dataSync().slice(), scores: scores[0].dataSync().slice() };
  tf.dispose([...boxes, ...scores]);
  return out;
}

function sameArray(a, b) {
  return a.length === b.length && a.every((v, i) => Object.is(v, b[i]));
}

async function runOracle() {
  const inputs = JSON.parse(fs.readFileSync(args.inputs, 'utf8'));
  fs.mkdirSync(path.join(args.out, 'raw'), { recursive: true });
  const photos = inputs.map((p) => {
    const ours = fs.readFileSync(p.rgb);
    if (ours.length !== p.width * p.height * 3) throw new Error(`${p.rgb}: ${ours.length} bytes, expected ${p.width}x${p.height}x3`);
    const js = decodeJpeg(p.jpeg);
    fs.writeFileSync(path.join(args.out, `jpegjs_${p.name}.rgb`), js.rgb); // for make_oracle.py's pixel comparison
    return { name: p.name, sources: { rgb: { rgb: new Uint8Array(ours), width: p.width, height: p.height }, jpegjs: js } };
  });
  photos.push({ name: 'synthetic', sources: { rgb: synthetic() } });

  const result = {
    versions: { node: process.version, tfjs: tf.version_core, face_api: faceapi.version, tfjs_versions: tf.version },
    model_dir: path.resolve(args.model),
    thresholds: THRESHOLDS,
    max_results: MAX_RESULTS,
    iou_threshold: 0.5,
    synthetic_formula: SYNTHETIC_FORMULA,
    raw_layout: { dtype: 'float32 little-endian', arrays: [['enc', [N_ANCHORS, 4]], ['logits', [N_ANCHORS, 3]], ['boxes', [N_ANCHORS, 4]], ['scores', [N_ANCHORS]]] },
    backends: {},
    photos: {},
  };
  for (const p of photos) {
    result.photos[p.name] = {};
    for (const [src, img] of Object.entries(p.sources)) {
      result.photos[p.name][src] = { width: img.width, height: img.height, rgb_sha256: sha256(img.rgb) };
    }
  }

  for (const backend of args.backends) {
    const info = await setBackend(backend);
    wrapConcat(backend);
    result.backends[backend] = info;
    await faceapi.nets.ssdMobilenetv1.loadFromDisk(args.model);
    for (const p of photos) {
      for (const [src, img] of Object.entries(p.sources)) {
        const tensor = toTensor(img);
        const raw = await rawOutputs(tensor);
        const rec = { detections: {} };
        const reshaped = faceapi.utils.computeReshapedDimensions({ width: img.width, height: img.height }, INPUT_SIZE);
        rec.reshaped = { width: reshaped.width, height: reshaped.height };
        for (const t of THRESHOLDS) {
          capturing = true; // the detection's own forward pass must give the raw outputs recorded above
          const found = await detect(tensor, t);
          capturing = false;
          rec.detections[String(t)] = found.map(detectionRecord);
          if (found.length) {
            rec.imageWidth = found[0].imageWidth;
            rec.imageHeight = found[0].imageHeight;
          }
          if (!sameArray(captured.enc, raw.enc) || !sameArray(captured.logits, raw.logits)) {
            throw new Error(`${backend}/${src}/${p.name}: detectAllFaces' forward pass differs from forwardInput's`);
          }
        }
        tensor.dispose();
        const file = path.join(args.out, 'raw', `${backend}_${src}_${p.name}.f32`);
        const all = new Float32Array(N_ANCHORS * 12);
        all.set(raw.enc, 0);
        all.set(raw.logits, N_ANCHORS * 4);
        all.set(raw.boxes, N_ANCHORS * 7);
        all.set(raw.scores, N_ANCHORS * 11);
        fs.writeFileSync(file, Buffer.from(all.buffer));
        result.photos[p.name][src][backend] = rec;
      }
    }
  }
  fs.writeFileSync(path.join(args.out, 'results.json'), JSON.stringify(result, null, 1));
}

async function timeIt(fn, runs = 5) {
  await fn(); // warm-up
  const ms = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    ms.push(performance.now() - t0);
  }
  return median(ms);
}

async function runTiming() {
  const out = { versions: { node: process.version, tfjs: tf.version_core, face_api: faceapi.version }, runs: 5, warmup: 1, min_confidence: 0.5, backends: {} };
  for (const backend of args.backends) {
    const info = await setBackend(backend);
    await faceapi.nets.ssdMobilenetv1.loadFromDisk(args.model);
    const photos = [];
    for (const file of args.files) {
      const decodeAndDetect = async () => {
        const tensor = toTensor(decodeJpeg(file));
        await detect(tensor, 0.5);
        tensor.dispose();
      };
      const tensor = toTensor(decodeJpeg(file));
      const detectOnly = async () => { await detect(tensor, 0.5); };
      const row = { file: path.basename(file), decode_and_detect_ms: await timeIt(decodeAndDetect), detect_ms: await timeIt(detectOnly) };
      photos.push(row);
      process.stderr.write(`oracle.js --time: ${backend} ${JSON.stringify(row)}\n`); // progress: a long run's partial figures
      tensor.dispose();
    }
    out.backends[backend] = { ...info, photos };
  }
  process.stdout.write(JSON.stringify(out, null, 1) + '\n');
}

(args.time ? runTiming() : runOracle()).catch((err) => {
  process.stderr.write(`oracle.js: ${err.stack || err}\n`);
  process.exit(1);
});
