// face-api's whole face pipeline run in its own runtime: the oracle for mnet_vision.faces.pipeline (issue 17).
// Runs @vladmandic/face-api's node-wasm bundle (@tensorflow/tfjs, its pure-JS 'cpu' backend and
// @tensorflow/tfjs-backend-wasm) from the faceapi_ssd oracle's Node project, calling it as its users do:
//   detectAllFaces(t, SsdMobilenetv1Options({minConfidence: 0.5, maxResults: 100}))
//     .withFaceLandmarks().withFaceExpressions().withAgeAndGender().withFaceDescriptors()
// on t = tf.tensor3d(Int32Array of a photo's RGB bytes, [h, w, 3], 'int32'). make_oracle.py drives it.
//
// Usage:
//   node oracle.js --project DIR --model DIR --inputs inputs.json --out results.json [--backends cpu,wasm]
//       inputs.json: [{"name", "rgb", "width", "height"}]; "rgb" = raw HxWx3 uint8 bytes. Per backend, per photo,
//       per face (face-api's order): score, detection box {x, y, width, height} (input pixels), landmarks (68
//       [x, y] input pixels), unshifted landmarks (pixels of the landmark crop), the landmark crop's size, the
//       box the descriptor was cut from (landmarks.align(null, {useDlibAlignment: true})), alignedRect's box
//       (what expressions and age/gender were cut from), descriptor (128), expressions (7, FACE_EXPRESSION_LABELS
//       order), age, gender, genderProbability.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const { parseOracleArgs, loadFaceapi, setBackend: startBackend } = require('../tfjs_backend.js');

const MIN_CONFIDENCE = 0.5;
const MAX_RESULTS = 100;

const args = parseOracleArgs(process.argv.slice(2));
const { projectRequire, faceapi, wasmBackend } = loadFaceapi(args.project);
const { tf } = faceapi;

const asBox = (b) => ({ x: b.x, y: b.y, width: b.width, height: b.height });
const asPoints = (landmarks) => landmarks.positions.map((p) => [p.x, p.y]);

async function faces(tensor) {
  const found = await faceapi.detectAllFaces(tensor, new faceapi.SsdMobilenetv1Options({ minConfidence: MIN_CONFIDENCE, maxResults: MAX_RESULTS }))
    .withFaceLandmarks().withFaceExpressions().withAgeAndGender().withFaceDescriptors();
  return found.map((r) => ({
    score: r.detection.score,
    box: asBox(r.detection.box),
    landmarks: asPoints(r.landmarks),
    unshifted_landmarks: asPoints(r.unshiftedLandmarks),
    landmark_crop: { width: r.unshiftedLandmarks.imageWidth, height: r.unshiftedLandmarks.imageHeight },
    descriptor_box: asBox(r.landmarks.align(null, { useDlibAlignment: true })),
    aligned_rect: asBox(r.alignedRect.box),
    descriptor: Array.from(r.descriptor),
    expressions: faceapi.FACE_EXPRESSION_LABELS.map((e) => r.expressions[e]),
    age: r.age,
    gender: r.gender,
    gender_probability: r.genderProbability,
  }));
}

async function main() {
  const inputs = JSON.parse(fs.readFileSync(args.inputs, 'utf8'));
  const result = { versions: { node: process.version, tfjs: tf.version_core, face_api: faceapi.version }, backends: {}, photos: {} };
  const images = inputs.map((p) => {
    const bytes = fs.readFileSync(p.rgb);
    if (bytes.length !== p.width * p.height * 3) throw new Error(`${p.rgb}: ${bytes.length} bytes, expected ${p.width}x${p.height}x3`);
    result.photos[p.name] = { width: p.width, height: p.height, rgb_sha256: crypto.createHash('sha256').update(bytes).digest('hex'), faces: {} };
    return Int32Array.from(bytes);
  });
  for (const backend of args.backends) {
    result.backends[backend] = await startBackend(tf, wasmBackend, projectRequire, backend); // ../tfjs_backend.js
    await faceapi.nets.ssdMobilenetv1.loadFromDisk(args.model);
    await faceapi.nets.faceLandmark68Net.loadFromDisk(args.model);
    await faceapi.nets.faceExpressionNet.loadFromDisk(args.model);
    await faceapi.nets.ageGenderNet.loadFromDisk(args.model);
    await faceapi.nets.faceRecognitionNet.loadFromDisk(args.model);
    for (let i = 0; i < inputs.length; i++) {
      const tensor = tf.tensor3d(images[i], [inputs[i].height, inputs[i].width, 3], 'int32'); // on this backend
      result.photos[inputs[i].name].faces[backend] = await faces(tensor);
      tensor.dispose();
      console.error(`oracle: ${backend} ${inputs[i].name}: ${result.photos[inputs[i].name].faces[backend].length} faces`);
    }
  }
  fs.writeFileSync(args.out, JSON.stringify(result));
}

main().catch((err) => { console.error(err); process.exit(1); });
