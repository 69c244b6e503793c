// face-api's landmark, descriptor, age/gender and expression nets run in their own runtime: the oracle for
// mnet_vision's ports (issue 17). Runs @vladmandic/face-api's node-wasm bundle (@tensorflow/tfjs, its pure-JS
// 'cpu' backend and @tensorflow/tfjs-backend-wasm) from the faceapi_ssd oracle's Node project, calling each net
// as its users do, on int32 tensor3d [h, w, 3] inputs (face-api pads each to a square and resizes it itself).
// make_oracle.py drives it.
//
// Usage:
//   node oracle.js --project DIR --model DIR --inputs inputs.json --out results.json [--backends cpu,wasm]
//       inputs.json: [{"name", "rgb", "width", "height", "nets": ["landmarks68", "expression", ...]}]; "rgb" =
//       raw HxWx3 uint8 bytes. Per backend, per input, per net, the outputs (float32 widened to double):
//       landmarks68: {raw: 136 values (runNet: x0, y0, x1, ... in fractions of the padded square),
//                     positions: [[x, y] x 68] (detectLandmarks: input pixels)}
//       expression: {probabilities: 7 (predictExpressions, FACE_EXPRESSION_LABELS order)}
//       age_gender: {age, gender: [p0, p1] (forwardInput's softmax), prediction: predictAgeAndGender's}
//       descriptor: {descriptor: 128 (computeFaceDescriptor)}
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const { parseOracleArgs, loadFaceapi, setBackend: startBackend } = require('../tfjs_backend.js');

const NETS = ['landmarks68', 'expression', 'age_gender', 'descriptor'];

const args = parseOracleArgs(process.argv.slice(2));
const { projectRequire, faceapi, wasmBackend } = loadFaceapi(args.project);
const { tf } = faceapi;

async function setBackend(name) {
  return startBackend(tf, wasmBackend, projectRequire, name); // ../tfjs_backend.js
}

async function runNets(tensor, nets) {
  const out = {};
  if (nets.includes('landmarks68')) {
    const netInput = await faceapi.toNetInput(tensor);
    const raw = faceapi.nets.faceLandmark68Net.runNet(netInput);
    const landmarks = await faceapi.nets.faceLandmark68Net.detectLandmarks(tensor);
    out.landmarks68 = { raw: Array.from(raw.dataSync()), positions: landmarks.positions.map((p) => [p.x, p.y]) };
    raw.dispose();
  }
  if (nets.includes('expression')) {
    const expressions = await faceapi.nets.faceExpressionNet.predictExpressions(tensor);
    out.expression = { probabilities: faceapi.FACE_EXPRESSION_LABELS.map((e) => expressions[e]) };
  }
  if (nets.includes('age_gender')) {
    const { age, gender } = faceapi.nets.ageGenderNet.forwardInput(await faceapi.toNetInput(tensor));
    const prediction = await faceapi.nets.ageGenderNet.predictAgeAndGender(tensor);
    out.age_gender = { age: age.dataSync()[0], gender: Array.from(gender.dataSync()), prediction };
    tf.dispose([age, gender]);
  }
  if (nets.includes('descriptor')) {
    out.descriptor = { descriptor: Array.from(await faceapi.nets.faceRecognitionNet.computeFaceDescriptor(tensor)) };
  }
  return out;
}

async function main() {
  const inputs = JSON.parse(fs.readFileSync(args.inputs, 'utf8'));
  const result = {
    versions: { node: process.version, tfjs: tf.version_core, face_api: faceapi.version },
    backends: {},
    inputs: {},
  };
  const images = inputs.map((p) => {
    const bytes = fs.readFileSync(p.rgb);
    if (bytes.length !== p.width * p.height * 3) throw new Error(`${p.rgb}: ${bytes.length} bytes, expected ${p.width}x${p.height}x3`);
    const unknown = p.nets.filter((n) => !NETS.includes(n));
    if (unknown.length) throw new Error(`${p.name}: unknown nets ${unknown}, expected some of ${NETS}`);
    result.inputs[p.name] = { width: p.width, height: p.height, rgb_sha256: crypto.createHash('sha256').update(bytes).digest('hex'), outputs: {} };
    return Int32Array.from(bytes);
  });
  for (const backend of args.backends) {
    result.backends[backend] = await setBackend(backend);
    await faceapi.nets.faceLandmark68Net.loadFromDisk(args.model);
    await faceapi.nets.faceExpressionNet.loadFromDisk(args.model);
    await faceapi.nets.ageGenderNet.loadFromDisk(args.model);
    await faceapi.nets.faceRecognitionNet.loadFromDisk(args.model);
    for (let i = 0; i < inputs.length; i++) {
      const tensor = tf.tensor3d(images[i], [inputs[i].height, inputs[i].width, 3], 'int32'); // on this backend
      result.inputs[inputs[i].name].outputs[backend] = await runNets(tensor, inputs[i].nets);
      tensor.dispose();
    }
  }
  fs.writeFileSync(args.out, JSON.stringify(result));
}

main().catch((err) => { console.error(err); process.exit(1); });
