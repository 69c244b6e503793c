// Decodes TF.js weights manifests with tfjs-core's own loader and writes what it decoded as JSON:
// per manifest, per tensor (manifest order), the shape, dtype and sha256 of the decoded values'
// little-endian bytes (Float32Array / Int32Array / Uint8Array as tfjs holds them), the first values,
// min and max; and the same for synthetic cases (every uint16 / float16 bit pattern) that pin
// tfjs's dequantization rules. tests/tfjs/test_weights.py compares mnet_vision.tfjs.weights to it.
//
// Usage (see README.md): NODE_PATH=<folder>/node_modules node decode.js OUT.json MANIFEST...
// where <folder> has @tensorflow/tfjs-core and @tensorflow/tfjs-backend-cpu 4.22.0 installed.
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs-core');
require('@tensorflow/tfjs-backend-cpu');

const PINNED = '4.22.0';
const coreVersion = require('@tensorflow/tfjs-core/package.json').version;
const cpuVersion = require('@tensorflow/tfjs-backend-cpu/package.json').version;
if (coreVersion !== PINNED || cpuVersion !== PINNED) {
  throw new Error(`need tfjs-core and tfjs-backend-cpu ${PINNED}, found ${coreVersion} / ${cpuVersion}`);
}

const sha256 = (bytes) => crypto.createHash('sha256').update(bytes).digest('hex');
// JSON has no inf/nan: write them as the strings Python's float() reads back.
const num = (x) => (Number.isFinite(x) ? x : (Number.isNaN(x) ? 'nan' : (x > 0 ? 'inf' : '-inf')));

function describe(name, t) {
  const values = t.dataSync();  // the typed array tfjs holds: Float32Array, Int32Array or Uint8Array (bool)
  const bytes = Buffer.from(values.buffer, values.byteOffset, values.byteLength);
  let min = Infinity;
  let max = -Infinity;
  for (const v of values) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return {
    name, shape: t.shape, dtype: t.dtype, sha256: sha256(bytes),
    first: Array.from(values.slice(0, 4), num),
    min: values.length ? num(min) : null, max: values.length ? num(max) : null,
  };
}

// The loader face-api calls (tf.io.loadWeights) is weightsLoaderFactory over fetch; here over the
// file system, as tfjs-core's own docstring for weightsLoaderFactory shows.
const readShards = async (paths) => paths.map((p) => {
  const b = fs.readFileSync(p);
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
});

async function decodeManifest(manifestPath) {
  const text = fs.readFileSync(manifestPath);
  const manifest = JSON.parse(text.toString('utf8'));
  const folder = path.dirname(manifestPath);
  const loaded = await tf.io.weightsLoaderFactory(readShards)(manifest, folder);
  const shards = {};
  const tensors = [];
  for (const group of manifest) {
    const buffers = await readShards(group.paths.map((p) => path.join(folder, p)));
    group.paths.forEach((p, i) => { shards[p] = sha256(Buffer.from(buffers[i])); });
    // decodeWeights(weightData: ArrayBuffer | ArrayBuffer[], specs) concatenates the group's shards
    // itself (CompositeArrayBuffer); the loader above slices them per tensor. Both must agree.
    const decoded = tf.io.decodeWeights(buffers, group.weights);
    for (const spec of group.weights) {
      const viaDecode = describe(spec.name, decoded[spec.name]);
      const viaLoader = describe(spec.name, loaded[spec.name]);
      if (viaDecode.sha256 !== viaLoader.sha256) {
        throw new Error(`${manifestPath}: ${spec.name}: decodeWeights and weightsLoaderFactory disagree`);
      }
      tensors.push(viaDecode);
    }
  }
  return { manifest_sha256: sha256(text), shards, tensors };
}

// Synthetic cases: every bit pattern of the stored type, decoded under one spec. `bytes` names the
// buffer: arange_u8 = bytes 0..255, arange_u16 = little-endian uint16 0..65535.
const SYNTHETIC = [
  { bytes: 'arange_u16', spec: { name: 'float16_all_patterns', shape: [65536], dtype: 'float32',
    quantization: { dtype: 'float16' } } },
  { bytes: 'arange_u16', spec: { name: 'uint16_to_float32', shape: [65536], dtype: 'float32',
    quantization: { dtype: 'uint16', scale: 0.0026856216729856004, min: -0.34107395246917127 } } },
  { bytes: 'arange_u8', spec: { name: 'uint8_to_float32', shape: [256], dtype: 'float32',
    quantization: { dtype: 'uint8', scale: 0.1, min: -12.8 } } },
  { bytes: 'arange_u16', spec: { name: 'uint16_to_int32_half_ties', shape: [65536], dtype: 'int32',
    quantization: { dtype: 'uint16', scale: 0.5, min: -1000 } } },
  { bytes: 'arange_u8', spec: { name: 'uint8_to_int32_tenths', shape: [256], dtype: 'int32',
    quantization: { dtype: 'uint8', scale: 0.1, min: -12.85 } } },
  { bytes: 'arange_u8', spec: { name: 'uint8_to_int32_1_255', shape: [256], dtype: 'int32',
    quantization: { dtype: 'uint8', scale: 0.00392156862745098, min: 0 } } },
  // Math.round(0.49999999999999994) is 0, where floor(x + 0.5) gives 1.
  { bytes: 'arange_u8', spec: { name: 'uint8_to_int32_just_below_half', shape: [256], dtype: 'int32',
    quantization: { dtype: 'uint8', scale: 1, min: 0.49999999999999994 } } },
];

function syntheticBytes(kind) {
  if (kind === 'arange_u8') return Uint8Array.from({ length: 256 }, (_, i) => i).buffer;
  const u16 = new Uint8Array(2 * 65536);
  for (let i = 0; i < 65536; i++) { u16[2 * i] = i & 0xff; u16[2 * i + 1] = i >> 8; }  // little-endian
  return u16.buffer;
}

async function main() {
  const [out, ...manifests] = process.argv.slice(2);
  if (!out || manifests.length === 0) throw new Error('usage: node decode.js OUT.json MANIFEST...');
  await tf.setBackend('cpu');
  const result = {
    made_by: 'tests/data/oracles/tfjs_weights/decode.js', tfjs_core: coreVersion, tfjs_backend_cpu: cpuVersion,
    backend: tf.getBackend(), node: process.version, models: {}, synthetic: [],
  };
  for (const m of manifests) result.models[path.basename(m)] = await decodeManifest(m);
  for (const { bytes, spec } of SYNTHETIC) {
    const t = tf.io.decodeWeights(syntheticBytes(bytes), [spec])[spec.name];
    result.synthetic.push({ bytes, spec, ...describe(spec.name, t) });
  }
  fs.writeFileSync(out, format(result));
}

// Indented JSON with one tensor per line, so a diff of a rerun shows which tensors changed.
function format(result) {
  const line = (x) => JSON.stringify(x);
  const models = Object.entries(result.models).map(([file, m]) => `  ${line(file)}: {\n` +
    `   "manifest_sha256": ${line(m.manifest_sha256)},\n   "shards": ${line(m.shards)},\n` +
    `   "tensors": [\n${m.tensors.map((t) => `    ${line(t)}`).join(',\n')}\n   ]\n  }`);
  const head = Object.entries(result).filter(([k]) => k !== 'models' && k !== 'synthetic')
    .map(([k, v]) => ` ${line(k)}: ${line(v)},\n`).join('');
  return `{\n${head} "models": {\n${models.join(',\n')}\n },\n` +
    ` "synthetic": [\n${result.synthetic.map((s) => `  ${line(s)}`).join(',\n')}\n ]\n}\n`;
}

main().catch((err) => { console.error(err); process.exit(1); });
