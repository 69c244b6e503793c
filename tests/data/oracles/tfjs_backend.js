// Starting a tfjs backend the same way in every face-api oracle: wasm from the project's own
// node_modules (never a CDN: nothing is fetched at run time), and a record of what it picked.
const path = require('path');

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

module.exports = { setBackend };
