// Starting a tfjs backend the same way in every face-api oracle: wasm from the project's own
// node_modules (never a CDN: nothing is fetched at run time), and a record of what it picked.
const path = require('path');
const { createRequire } = require('module');

const BACKENDS = ['cpu', 'wasm'];

// --backends a,b (default: all), each checked.
function parseBackends(value) {
  const backends = value ? value.split(',') : BACKENDS;
  const unknown = backends.filter((b) => !BACKENDS.includes(b));
  if (unknown.length) throw new Error(`--backends: unknown ${unknown}, expected a comma list of ${BACKENDS}`);
  return backends;
}

// --project DIR --model DIR --inputs FILE --out DIR [--backends a,b]: the face oracles' arguments, all
// but --backends required.
function parseOracleArgs(argv) {
  const args = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!['--project', '--model', '--inputs', '--out', '--backends'].includes(a)) throw new Error(`unknown argument ${a}`);
    if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
    args[a.slice(2)] = argv[++i];
  }
  for (const k of ['project', 'model', 'inputs', 'out']) if (!args[k]) throw new Error(`--${k} is required`);
  args.backends = parseBackends(args.backends);
  return args;
}

// face-api and the wasm backend from the pinned Node project in folder `project`.
function loadFaceapi(project) {
  const projectRequire = createRequire(path.join(path.resolve(project), 'package.json'));
  const faceapi = projectRequire('@vladmandic/face-api/dist/face-api.node-wasm.js');
  const wasmBackend = projectRequire('@tensorflow/tfjs-backend-wasm');
  return { projectRequire, faceapi, wasmBackend, tf: faceapi.tf };
}

async function setBackend(tf, wasmBackend, projectRequire, name) {
  if (name === 'wasm') {
    const dist = path.join(path.dirname(projectRequire.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist');
    wasmBackend.setWasmPaths(dist + path.sep);
  }
  if (!(await tf.setBackend(name))) throw new Error(`tfjs backend ${name} failed to start`);
  await tf.ready();
  const info = { name, tfjs_backend: tf.getBackend() };
  if (name === 'wasm') {
    info.simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
    info.multithread = await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT');
    info.threads = wasmBackend.getThreadsCount();
    info.binary = info.multithread && info.simd ? 'tfjs-backend-wasm-threaded-simd.wasm'
      : info.simd ? 'tfjs-backend-wasm-simd.wasm' : 'tfjs-backend-wasm.wasm';
  } else {
    info.threads = 1; // the pure-JS backend runs on the main thread
  }
  return info;
}

module.exports = { BACKENDS, parseBackends, parseOracleArgs, loadFaceapi, setBackend };
