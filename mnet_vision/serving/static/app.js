// The service's page: one photo in, the loaded models' answers drawn. Plain JS, no build step, nothing
// fetched but this service's own endpoints (it runs where the internet cannot be reached).
"use strict";

const $ = (selector) => document.querySelector(selector);
// run: the number of the latest upload; answers to an earlier one arriving late are dropped, not drawn over it
const state = { models: null, file: null, image: null, faces: [], run: 0 };

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "style") Object.assign(node.style, value);
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) node.append(child);
  return node;
}

const percent = (value) => `${(100 * value).toFixed(3)}%`;
const score = (value) => (typeof value === "number" ? value.toFixed(2) : "");

// An error body of the service (FastAPI's {"detail": "..."} or its 422 list of {loc, msg}) as one readable line.
function describeError(status, body) {
  let detail = body && body.detail !== undefined ? body.detail : body;
  if (Array.isArray(detail)) {
    detail = detail.map((d) => (d && d.msg ? `${(d.loc || []).join(".")}: ${d.msg}` : JSON.stringify(d))).join("; ");
  } else if (detail && typeof detail === "object") {
    detail = JSON.stringify(detail);
  }
  return `${status}: ${detail || "the service gave no reason"}`;
}

function showError(what, message) {
  $("#errors").append(element("p", { className: "error", "data-what": what }, `${what}: ${message}`));
}

async function call(path, options = {}) {
  const response = await fetch(path, options);
  const text = await response.text();
  let body = text;
  try { body = text ? JSON.parse(text) : null; } catch (_) { /* not JSON: keep the text */ }
  if (!response.ok) throw new Error(describeError(response.status, body));
  return body;
}

const TASK_MODELS = { detect: "detector", faces: "faces", geolocate: "geolocator" }; // /models' keys
// A model's source as a short name: "pretrained:faceapi_ssd (<its file>)" -> "pretrained:faceapi_ssd",
// a path -> its file name.
const shortName = (source) => String(source || "").replace(/ \(.*\)$/, "").split(/[\\/]/).pop();
const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

// GET /models: which endpoints have a model behind them, the index's size, whether writes need a token.
async function loadModels() {
  const models = $("#models");
  try {
    state.models = await call("/models");
  } catch (error) {
    models.dataset.state = "error";
    models.textContent = `could not read /models: ${error.message}`;
    return;
  }
  models.textContent = "";
  for (const task of Object.keys(TASK_MODELS)) {
    const info = modelInfo(task);
    let text = "not loaded";
    const classes = (info && info.classes) || [];
    if (info && task === "detect") {
      const named = classes.length <= 3 ? classes.join(", ") : plural(classes.length, "class");
      text = `${shortName(info.source)} (${named})`;
    }
    if (info && task === "faces") {
      const index = state.models.index || {};
      const describer = (info.embedding_model || {}).name || info.metric || "loaded";
      text = `${describer}, index of ${plural(index.size ?? 0, "face")}`;
    }
    if (info && task === "geolocate") text = `${shortName(info.source)} (${plural(info.cells, "cell")})`;
    models.append(element("span", { className: "model", "data-task": task, "data-loaded": Boolean(info),
                                    title: (info && info.source) || "" },
      element("b", {}, task), ` ${text}`));
  }
  const writes = state.models.writes || {};
  $("#add-face").dataset.writable = writes.writable !== false;
  $("#add-token").closest("label").hidden = !writes.token_required;
  models.dataset.state = "ready";
}

// The /models entry of one task's model, or null when the service runs none.
function modelInfo(task) {
  const models = state.models && state.models.models;
  return (models && models[TASK_MODELS[task]]) || null;
}

function photoForm(file, extra = {}) {
  const form = new FormData();
  form.append("image", file, file.name || "photo.jpg");
  for (const [key, value] of Object.entries(extra)) form.append(key, value);
  return form;
}

function setCount(section, text) {
  section.querySelector("h2 .count").textContent = text;
}

// The pixel size the service's boxes refer to: the photo as it decoded it (upright by EXIF, as the browser shows it).
function photoSize(result) {
  return result.width && result.height ? [result.width, result.height]
    : [state.image.naturalWidth, state.image.naturalHeight];
}

// The photo with one positioned div per detection, in percent of the image so it scales with the page.
function drawDetections(result) {
  const section = $("#detections");
  const frame = $("#photo-frame");
  frame.querySelectorAll(".box").forEach((node) => node.remove());
  const [width, height] = photoSize(result);
  const detections = result.detections || [];
  detections.forEach((detection, number) => {
    const [x0, y0, x1, y1] = detection.box_xyxy;
    frame.append(element("div", {
      className: "box", "data-label": detection.label, "data-score": detection.score, "data-number": number,
      style: { left: percent(x0 / width), top: percent(y0 / height), width: percent((x1 - x0) / width),
               height: percent((y1 - y0) / height) },
    }, element("span", { className: "tag" }, `${detection.label} ${score(detection.score)}`)));
  });
  setCount(section, `(${plural(detections.length, "detection")})`);
  section.dataset.count = detections.length;
  section.hidden = false;
}

// A face cropped from the uploaded photo (with a little context around the box) on a canvas.
function faceCrop(box, size = 112) {
  const canvas = element("canvas", { width: size, height: size });
  const [x0, y0, x1, y1] = box;
  const side = Math.max(x1 - x0, y1 - y0) * 1.25;
  const cx = (x0 + x1) / 2;
  const cy = (y0 + y1) / 2;
  canvas.getContext("2d").drawImage(state.image, cx - side / 2, cy - side / 2, side, side, 0, 0, size, size);
  return canvas;
}

// A match's number: face-api's Euclidean distance (smaller is closer) or a cosine similarity.
function matchValue(match) {
  for (const key of ["distance", "cosine", "score"]) {
    if (typeof match[key] === "number") return `${key} ${match[key].toFixed(3)}`;
  }
  return "";
}

// The contact sheet: each query face cropped from the photo, beside its matches' thumbnails from the index.
function drawFaces(result) {
  const section = $("#faces");
  const sheet = $("#sheet");
  const frame = $("#photo-frame");
  sheet.textContent = "";
  frame.querySelectorAll(".face-box").forEach((node) => node.remove());
  const [width, height] = photoSize(result);
  state.faces = result.faces || [];
  state.faces.forEach((face, position) => {
    const number = face.face ?? position; // the face's number in the photo, what /faces/add's face= takes
    const name = `${number + 1}: ${face.label || "unknown"}`;
    const [x0, y0, x1, y1] = face.box_xyxy;
    frame.append(element("div", {
      className: "face-box", "data-number": number, "data-label": face.label,
      style: { left: percent(x0 / width), top: percent(y0 / height), width: percent((x1 - x0) / width),
               height: percent((y1 - y0) / height) },
    }, element("span", { className: "tag" }, name)));
    const row = element("div", { className: "face", "data-number": number, "data-label": face.label },
      element("figure", { className: "query" }, faceCrop(face.box_xyxy),
        element("figcaption", {}, element("b", { title: name }, name), `detected ${score(face.score)}`)));
    const matches = face.matches || [];
    for (const match of matches) {
      row.append(element("figure", { className: match.unknown ? "match unknown" : "match", "data-id": match.id,
                                     "data-identity": match.identity },
        element("img", { src: `/faces/${encodeURIComponent(match.id)}/thumbnail`, alt: match.identity }),
        element("figcaption", {},
          element("b", { title: match.label || match.identity }, match.label || match.identity), matchValue(match))));
    }
    if (!matches.length) row.append(element("span", { className: "none" }, "no match in the index"));
    sheet.append(row);
  });
  if (!state.faces.length) sheet.append(element("p", { className: "none" }, "no face found in this photo"));
  const select = $("#add-face-number");
  select.textContent = "";
  state.faces.forEach((face, position) => {
    const number = face.face ?? position;
    select.append(element("option", { value: number }, `face ${number + 1}`));
  });
  $("#add-face").hidden = !state.faces.length || $("#add-face").dataset.writable === "false";
  setCount(section, `(${state.faces.length})`);
  section.dataset.count = state.faces.length;
  section.hidden = false;
}

// The top cells as dots on the backdrop (area proportional to probability), the predicted point as a star.
function drawGeolocation(result) {
  const section = $("#geolocation");
  const map = $("#map");
  map.querySelectorAll(".cell, .predicted").forEach((node) => node.remove());
  const cells = result.cells || [];
  const best = Math.max(...cells.map((cell) => cell.probability), 1e-12);
  const place = (lat, lon) => ({ left: percent((lon + 180) / 360), top: percent((90 - lat) / 180) });
  cells.forEach((cell, rank) => {
    const size = `${(6 + 26 * Math.sqrt(cell.probability / best)).toFixed(1)}px`;
    map.append(element("div", {
      className: "cell", title: `${cell.token}: ${(100 * cell.probability).toFixed(1)}%`, "data-token": cell.token,
      "data-probability": cell.probability, "data-rank": rank,
      style: { ...place(cell.lat, cell.lon), width: size, height: size },
    }));
  });
  map.append(element("div", { className: "predicted", title: `predicted (${result.lat}, ${result.lon})`,
    "data-lat": result.lat, "data-lon": result.lon, style: place(result.lat, result.lon) }, "\u2605"));
  $("#cells").replaceChildren(...cells.map((cell) => element("li", {},
    `${(100 * cell.probability).toFixed(1)}% at ${cell.lat.toFixed(2)}, ${cell.lon.toFixed(2)} (${cell.token})`)));
  setCount(section, `(${result.lat.toFixed(3)}, ${result.lon.toFixed(3)})`);
  section.dataset.count = cells.length;
  section.hidden = false;
}

function loadImage(file) {
  return new Promise((resolve, reject) => {
    const image = $("#photo");
    image.onload = () => resolve(image);
    image.onerror = () => reject(new Error("the browser cannot show this file as an image"));
    if (image.src) URL.revokeObjectURL(image.src);
    image.src = URL.createObjectURL(file);
  });
}

async function analyse(file) {
  const run = ++state.run;
  state.file = file;
  $("#errors").textContent = "";
  $("#add-result").textContent = "";
  for (const id of ["#faces", "#geolocation"]) $(id).hidden = true;
  const status = $("#status");
  status.dataset.state = "busy";
  status.textContent = `analysing ${file.name}\u2026`;
  try {
    state.image = await loadImage(file);
  } catch (error) {
    showError("photo", error.message); // the service is still asked: its 415 says why, in its words
    state.image = null;
  }
  $("#detections").hidden = !state.image;
  if (!state.models) await loadModels();
  const tasks = [
    ["detect", "/detect", drawDetections],
    ["faces", "/faces/search", drawFaces],
    ["geolocate", "/geolocate", drawGeolocation],
  ].filter(([task]) => modelInfo(task));
  await Promise.all(tasks.map(async ([task, path, draw]) => {
    try {
      const result = await call(path, { method: "POST", body: photoForm(file) });
      if (run === state.run && (state.image || task === "geolocate")) draw(result);
    } catch (error) {
      if (run === state.run) showError(path, error.message);
    }
  }));
  if (run !== state.run) return;
  status.dataset.state = "done";
  status.textContent = tasks.length ? `${file.name}: done` : "the service has no model loaded";
}

async function addFace(event) {
  event.preventDefault();
  const result = $("#add-result");
  const number = Number($("#add-face-number").value);
  const identity = $("#add-identity").value.trim();
  const token = $("#add-token").value;
  if (!state.file || !identity) return;
  result.dataset.state = "busy";
  result.textContent = "adding\u2026";
  try {
    const headers = token ? { Authorization: `Bearer ${token}` } : {};
    const form = photoForm(state.file, { identity, face: number });
    const body = await call("/faces/add", { method: "POST", headers, body: form });
    result.dataset.state = "done";
    const ids = ((body && body.added) || []).map((face) => face.id).join(", ");
    result.textContent = `added face ${number + 1} as ${identity} (id ${ids}; ${body.total} faces in the index)`;
    loadModels(); // the index's new size
  } catch (error) {
    result.dataset.state = "error";
    result.textContent = "";
    showError("/faces/add", error.message);
  }
}

function setUp() {
  const drop = $("#drop");
  const input = $("#file");
  input.addEventListener("change", () => {
    const file = input.files[0];
    input.value = ""; // choosing the same file again is a change too
    if (file) analyse(file);
  });
  // a photo dropped anywhere on the page is taken (the browser would otherwise open it in place of the page)
  for (const name of ["dragenter", "dragover"]) {
    document.addEventListener(name, (event) => { event.preventDefault(); drop.classList.add("over"); });
  }
  document.addEventListener("dragleave", (event) => { if (!event.relatedTarget) drop.classList.remove("over"); });
  document.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    if (event.dataTransfer && event.dataTransfer.files.length) analyse(event.dataTransfer.files[0]);
  });
  $("#add-face").addEventListener("submit", addFace);
  loadModels();
}

setUp();
