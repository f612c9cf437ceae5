// featscope view: the page. Plain DOM, no framework; every name goes in as text (textContent), never as HTML.
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const state = {
    session: null,
    model: 0,
    image: null,
    layer: null,
    layers: [],
    sort: 'index',
    scale: 'shared',
    colormap: 'viridis',
    page: 0,
    pages: 0,
    info: null,
    channel: null,
    lut: null,
    classes: [],
    overlay: 'none',
    compare: null,
    cmpLayer: null,
  };
  const fmt = (v) =>
    v === null || v === undefined
      ? '–'
      : Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-3 && v !== 0)
        ? v.toExponential(3)
        : Number(v.toPrecision(4)).toString();

  function status(text, ok) {
    const s = $('status');
    s.textContent = text || '';
    s.className = ok ? 'status ok' : 'status';
  }

  async function api(path, params, init) {
    const q = new URLSearchParams(params || {});
    const res = await fetch(`${path}?${q}`, Object.assign({ credentials: 'same-origin' }, init || {}));
    if (!res.ok) {
      let msg = `${res.status}`;
      try {
        const j = await res.json();
        msg = `${j.error.message} [${j.error.code}]`;
      } catch (e) {
        /* not JSON */
      }
      throw new Error(msg);
    }
    return res;
  }
  const getJSON = async (path, params) => (await api(path, params)).json();

  async function getMaps(model, image, layer, channels) {
    const res = await api('/api/maps', { model, image, layer, channels: channels.join(',') });
    const [k, h, w] = res.headers.get('X-Featscope-Shape').split(',').map(Number);
    return { k, h, w, data: new Float32Array(await res.arrayBuffer()) };
  }

  // Colour maps: the library's 256-entry tables; index as in lib/render/colormaps.ts (floor(v * 256), clamped).
  const lutCache = {};
  async function lut(name) {
    if (!lutCache[name]) lutCache[name] = Uint8Array.from(await getJSON('/api/colormap', { name }));
    return lutCache[name];
  }
  function divergingLut() {
    const t = new Uint8Array(768);
    const lo = [59, 76, 192],
      mid = [247, 247, 247],
      hi = [180, 4, 38];
    for (let i = 0; i < 256; i++) {
      const f = i / 255;
      const [a, b, u] = f < 0.5 ? [lo, mid, f * 2] : [mid, hi, (f - 0.5) * 2];
      for (let c = 0; c < 3; c++) t[i * 3 + c] = Math.round(a[c] + (b[c] - a[c]) * u);
    }
    return t;
  }
  const DIVERGING = divergingLut();
  function index(v, vmin, vmax) {
    const span = vmax - vmin;
    const x = span > 0 ? (v - vmin) / span : 0;
    if (Number.isNaN(x)) return -1;
    if (x <= 0) return 0;
    if (x >= 1) return 255;
    return Math.min(255, Math.floor(x * 256));
  }
  /** Draw an h x w map at its own resolution (one canvas pixel per value; CSS scales it up). */
  function drawMap(canvas, data, offset, h, w, vmin, vmax, table) {
    canvas.width = w;
    canvas.height = h;
    const ctx = canvas.getContext('2d');
    const img = ctx.createImageData(w, h);
    for (let i = 0; i < h * w; i++) {
      const k = index(data[offset + i], vmin, vmax);
      img.data[i * 4 + 3] = 255;
      if (k < 0) continue;
      img.data[i * 4] = table[k * 3];
      img.data[i * 4 + 1] = table[k * 3 + 1];
      img.data[i * 4 + 2] = table[k * 3 + 2];
    }
    ctx.putImageData(img, 0, 0);
  }
  function drawColorbar(canvas, labels, vmin, vmax, table) {
    canvas.width = 1;
    canvas.height = 256;
    const ctx = canvas.getContext('2d');
    const img = ctx.createImageData(1, 256);
    for (let i = 0; i < 256; i++) {
      const k = 255 - i;
      img.data.set([table[k * 3], table[k * 3 + 1], table[k * 3 + 2], 255], i * 4);
    }
    ctx.putImageData(img, 0, 0);
    labels.replaceChildren(
      el('span', '', fmt(vmax)),
      el('span', '', fmt((vmin + vmax) / 2)),
      el('span', '', fmt(vmin)),
    );
  }

  // ---- session, images, layers ----
  async function init() {
    const url = new URL(location.href);
    if (url.searchParams.has('token')) {
      url.searchParams.delete('token');
      history.replaceState(null, '', url.pathname + url.search);
    }
    try {
      state.session = await getJSON('/api/session');
    } catch (e) {
      status(String(e.message));
      return;
    }
    const cm = $('colormap');
    for (const n of state.session.colormaps) cm.append(new Option(n, n, n === 'viridis', n === 'viridis'));
    const ms = $('model-select');
    const cmpModel = $('cmp-model');
    for (const m of state.session.models) {
      ms.append(new Option(`${m.index}: ${m.name}`, String(m.index)));
      cmpModel.append(new Option(`${m.index}: ${m.name}`, String(m.index)));
    }
    renderThumbs();
    bind();
    await selectModel(0);
    if (state.session.images.length) await selectImage(state.session.images[0].id);
  }

  function banner() {
    const m = state.session.models[state.model];
    const b = $('banner');
    const texts = state.session.models.map((x) => `${x.name}: ${x.weights.text}`);
    b.textContent = `featscope view — ${texts.join(' · ')}`;
    b.className = state.session.models.some((x) => x.weights.trained !== true) ? 'banner untrained' : 'banner';
    $('model-name').textContent = m.architecture ? `(${m.architecture})` : '';
  }

  function renderThumbs() {
    const box = $('thumbs');
    box.replaceChildren();
    const cmp = $('cmp-image');
    const keep = cmp.value;
    cmp.replaceChildren();
    for (const img of state.session.images) {
      const b = el('button', 'thumb');
      b.dataset.id = img.id;
      b.title = img.name;
      const i = el('img');
      i.alt = img.name;
      i.src = `/api/image?${new URLSearchParams({ image: img.id, size: '152' })}`;
      b.append(i, el('span', '', img.name));
      b.addEventListener('click', () => selectImage(img.id));
      if (img.id === state.image) b.classList.add('active');
      box.append(b);
      cmp.append(new Option(img.name, img.id));
    }
    if (keep) cmp.value = keep;
    else if (state.session.images.length > 1) cmp.value = state.session.images[1].id;
  }

  async function selectModel(i) {
    state.model = i;
    banner();
    status('reading the layer tree…', true);
    state.layers = await getJSON('/api/layers', { model: i });
    state.classes = await getJSON('/api/classes', { model: i });
    const cs = $('class-select');
    cs.replaceChildren(new Option('predicted (top-1)', ''));
    state.classes.forEach((n, k) => cs.append(new Option(`${k}: ${n}`, String(k))));
    // attention rollout and per-head maps: ViTs only
    $('ov-attention').hidden = !state.session.models[i].tokens;
    if (state.overlay === 'attention' && !state.session.models[i].tokens) {
      state.overlay = 'none';
      document.querySelector('input[name="ov"][value="none"]').checked = true;
    }
    renderTree();
    status('', true);
  }

  function renderTree() {
    const filter = $('layer-filter').value.trim().toLowerCase();
    const tree = $('tree');
    tree.replaceChildren();
    for (const l of state.layers) {
      if (filter && !l.name.toLowerCase().includes(filter)) continue;
      // a part (`backbone.fpn:0`) sits one step below its layer
      const depth = l.name.split(/[.:]/).length - 1;
      const b = el('button', 'node');
      b.dataset.layer = l.name;
      b.setAttribute('role', 'treeitem');
      b.style.paddingLeft = `${4 + depth * 12}px`;
      const spatial = l.shape && l.shape.length === 4;
      if (!spatial) b.classList.add('flat');
      b.append(
        el('span', '', l.name.split('.').pop() + ' '),
        el('span', 't', `${l.type} ${l.shape ? `[${l.shape.join('×')}]` : ''} ×${l.calls}`),
      );
      if (l.inLoop) b.append(el('span', 'loop', ' loop'));
      b.title = `${l.name} — ${l.type}, output ${l.shape ? l.shape.join('×') : 'not a tensor'}, called ${l.calls}×${l.inLoop ? ' (inside a loop)' : ''}`;
      if (l.name === state.layer) b.classList.add('active');
      b.addEventListener('click', () => selectLayer(l.name));
      tree.append(b);
    }
  }

  async function selectImage(id) {
    state.image = id;
    for (const t of document.querySelectorAll('.thumb')) t.classList.toggle('active', t.dataset.id === id);
    const img = state.session.images.find((x) => x.id === id);
    $('cmp-a-label').textContent = img ? img.name : '';
    await loadPredictions();
    if (state.layer) await loadChannels();
  }

  let predSeq = 0;
  async function loadPredictions() {
    const ol = $('predictions');
    const seq = ++predSeq;
    ol.replaceChildren();
    try {
      const preds = await getJSON('/api/predict', { model: state.model, image: state.image });
      if (seq !== predSeq) return; // a newer image or model asked since: its list, not both
      ol.replaceChildren(
        ...preds.map((p) => el('li', '', `${p.name} (class ${p.class}) — ${(p.probability * 100).toFixed(1)}%`)),
      );
    } catch (e) {
      status(e.message);
    }
  }

  async function selectLayer(name) {
    state.layer = name;
    state.page = 0;
    state.channel = null;
    for (const n of document.querySelectorAll('.node')) n.classList.toggle('active', n.dataset.layer === name);
    $('cmp-layer').textContent = `layer: ${name}`;
    state.cmpLayer = name;
    if ($('compare-view').hidden) await loadChannels();
  }

  // ---- channels ----
  let loadSeq = 0;
  async function loadChannels() {
    if (!state.image || !state.layer) return;
    status(`running ${state.layer}…`, true);
    const grid = $('grid');
    const seq = ++loadSeq;
    try {
      state.lut = await lut(state.colormap);
      const info = await getJSON('/api/channels', {
        model: state.model,
        image: state.image,
        layer: state.layer,
        sort: state.sort,
        page: state.page,
        per: 32,
      });
      state.info = info;
      state.pages = info.pages;
      const maps = await getMaps(
        state.model,
        state.image,
        state.layer,
        info.channels.map((c) => c.channel),
      );
      if (seq !== loadSeq) return; // a newer request (sort, page, scale) superseded this one
      $('layer-title').textContent = `${info.layer} [${info.shape.join('×')}]`;
      $('page-info').textContent = `page ${info.page + 1} / ${info.pages}`;
      grid.replaceChildren();
      info.channels.forEach((c, i) => {
        const tile = el('div', 'tile');
        tile.dataset.channel = String(c.channel);
        const cv = el('canvas');
        const [lo, hi] = state.scale === 'shared' ? [info.layerMin, info.layerMax] : [c.min, c.max];
        drawMap(cv, maps.data, i * maps.h * maps.w, maps.h, maps.w, lo, hi, state.lut);
        tile.append(cv, el('div', '', `#${c.channel}`));
        tile.title = `channel ${c.channel}: max ${fmt(c.max)}, mean ${fmt(c.mean)}`;
        tile.addEventListener('click', () => openChannel(c.channel));
        if (c.channel === state.channel) tile.classList.add('active');
        grid.append(tile);
      });
      grid.dataset.state = `${info.sort}:${info.page}:${state.scale}`;
      if (state.channel !== null) await openChannel(state.channel);
      await loadOverlay();
      status('', true);
    } catch (e) {
      if (seq !== loadSeq) return;
      grid.replaceChildren();
      $('layer-title').textContent = state.layer;
      status(e.message);
    }
  }

  async function openChannel(ch) {
    state.channel = ch;
    for (const t of document.querySelectorAll('.tile')) t.classList.toggle('active', t.dataset.channel === String(ch));
    const info = state.info;
    const maps = await getMaps(state.model, state.image, state.layer, [ch]);
    let min = Infinity,
      max = -Infinity,
      sum = 0;
    for (const v of maps.data) {
      if (v < min) min = v;
      if (v > max) max = v;
      sum += v;
    }
    const [lo, hi] = state.scale === 'shared' ? [info.layerMin, info.layerMax] : [min, max];
    drawMap($('detail-canvas'), maps.data, 0, maps.h, maps.w, lo, hi, state.lut);
    drawColorbar($('colorbar'), $('colorbar-labels'), lo, hi, state.lut);
    $('detail').hidden = false;
    $('detail-canvas').dataset.range = `${lo},${hi}`;
    $('detail-title').textContent = `${state.layer} · channel ${ch} (${maps.h}×${maps.w})`;
    $('detail-stats').textContent =
      `min ${fmt(min)} · max ${fmt(max)} · mean ${fmt(sum / maps.data.length)} · colours: ${state.scale === 'shared' ? 'shared layer scale' : 'this channel’s scale'} [${fmt(lo)}, ${fmt(hi)}]`;
    $('cmp-channel').value = String(ch);
  }

  async function loadOverlay() {
    const img = $('overlay-img');
    const info = $('overlay-info');
    if (state.overlay === 'none' || !state.image) {
      img.hidden = true;
      info.textContent = '';
      return;
    }
    if (!state.layer && state.overlay !== 'saliency') {
      info.textContent = 'choose a layer first';
      return;
    }
    info.textContent = `computing ${state.overlay}…`;
    try {
      const params = { model: state.model, image: state.image, layer: state.layer || '', kind: state.overlay };
      const cls = $('class-select').value;
      if (cls) params.class = cls;
      const res = await api('/api/overlay', params);
      const meta = JSON.parse(decodeURIComponent(res.headers.get('X-Featscope-Info') || '%7B%7D'));
      const blob = await res.blob();
      if (img.src.startsWith('blob:')) URL.revokeObjectURL(img.src);
      await new Promise((resolve) => {
        img.onload = resolve;
        img.onerror = resolve;
        img.src = URL.createObjectURL(blob);
      });
      img.hidden = false;
      img.dataset.kind = state.overlay;
      const label = {
        mean: `mean over channels of ${state.layer}`,
        gradcam: `Grad-CAM at ${state.layer}`,
        saliency: 'input saliency (gradient)',
        faithfulness: `Grad-CAM at ${state.layer}, deletion and insertion curves`,
        attention: 'attention',
      }[state.overlay];
      info.textContent = meta.rollout
        ? `attention rollout over ${meta.rollout.layers.length} layer(s): ${fmt(meta.rollout.min)} to ${fmt(meta.rollout.max)}; class-token attention per head of ${meta.heads.layer}: ${meta.heads.ranges.map((r, k) => `head ${k} ${fmt(r[0])} to ${fmt(r[1])}`).join(', ')}`
        : meta.auc
          ? `${label} for ${meta.target.name} (class ${meta.target.class}): AUC deletion ${fmt(meta.auc.deletion)} (lower is better), insertion ${fmt(meta.auc.insertion)} (higher is better), ${meta.step} pixels per step`
          : meta.target
            ? `${label} for ${meta.target.name} (class ${meta.target.class})`
            : meta.max !== undefined
              ? `${label}: ${fmt(meta.min)} to ${fmt(meta.max)}`
              : label;
    } catch (e) {
      img.hidden = true;
      info.textContent = e.message;
    }
  }

  // ---- compare ----
  async function runCompare() {
    const b = $('cmp-image').value;
    const mb = $('cmp-model').value || '0';
    if (!state.image || !b) return status('compare needs two images (or one image and two models)');
    status('comparing…', true);
    try {
      const r = await getJSON('/api/compare', { a: state.image, modelA: state.model, b, modelB: mb });
      state.compare = { ...r, b, modelB: Number(mb) };
      drawChart();
      const names = (p) => (p.length ? `${p[0].name} ${(p[0].probability * 100).toFixed(1)}%` : '–');
      $('cmp-preds').textContent = `A predicts ${names(r.predictions[0])} · B predicts ${names(r.predictions[1])}`;
      if (!state.cmpLayer && r.layers.length) state.cmpLayer = r.layers[0].name;
      await showCompareChannel();
      status('', true);
    } catch (e) {
      status(e.message);
    }
  }

  function drawChart() {
    const cv = $('div-chart');
    const ctx = cv.getContext('2d');
    const L = state.compare.layers;
    const W = cv.width,
      H = cv.height,
      left = 44,
      bottom = 26,
      top = 10;
    ctx.fillStyle = '#fff';
    ctx.fillRect(0, 0, W, H);
    const vals = L.flatMap((l) => [l.cosine, l.relativeL2]).filter(Number.isFinite);
    const ymax = Math.max(1e-6, ...vals);
    const y = (v) => H - bottom - (Math.min(v, ymax) / ymax) * (H - bottom - top);
    ctx.strokeStyle = '#999';
    ctx.fillStyle = '#333';
    ctx.font = '11px monospace';
    for (let t = 0; t <= 4; t++) {
      const v = (ymax * t) / 4;
      ctx.beginPath();
      ctx.moveTo(left, y(v));
      ctx.lineTo(W, y(v));
      ctx.strokeStyle = '#eee';
      ctx.stroke();
      ctx.fillText(fmt(v), 2, y(v) + 4);
    }
    const slot = (W - left) / Math.max(1, L.length);
    state.compare.slot = slot;
    state.compare.left = left;
    L.forEach((l, i) => {
      const x = left + i * slot;
      const bw = Math.max(1, slot / 2 - 1);
      ctx.fillStyle = '#1a73e8';
      ctx.fillRect(x, y(l.cosine), bw, H - bottom - y(l.cosine));
      ctx.fillStyle = '#e8710a';
      const r = Number.isFinite(l.relativeL2) ? l.relativeL2 : ymax;
      ctx.fillRect(x + bw, y(r), bw, H - bottom - y(r));
      if (l.name === state.cmpLayer) {
        ctx.strokeStyle = '#000';
        ctx.strokeRect(x, top, slot - 1, H - bottom - top);
      }
    });
    ctx.fillStyle = '#333';
    ctx.fillText(
      `${L.length} layers, first ${L.length ? L[0].name : ''} … last ${L.length ? L[L.length - 1].name : ''}`,
      left,
      H - 8,
    );
  }

  async function showCompareChannel() {
    const c = state.compare;
    if (!c || !state.cmpLayer) return;
    const ch = Math.max(0, Number($('cmp-channel').value) || 0);
    const sel = c.layers.find((l) => l.name === state.cmpLayer);
    $('cmp-layer').textContent =
      `layer: ${state.cmpLayer}${sel ? ` · cosine distance ${fmt(sel.cosine)} · relative L2 ${fmt(sel.relativeL2)}` : ''}`;
    try {
      const table = await lut(state.colormap);
      const [a, b] = await Promise.all([
        getMaps(state.model, state.image, state.cmpLayer, [ch]),
        getMaps(c.modelB, c.b, state.cmpLayer, [ch]),
      ]);
      if (a.h !== b.h || a.w !== b.w) throw new Error(`the two maps differ in size (${a.h}×${a.w} and ${b.h}×${b.w})`);
      let lo = Infinity,
        hi = -Infinity,
        dmax = 0;
      const diff = new Float32Array(a.data.length);
      for (let i = 0; i < a.data.length; i++) {
        lo = Math.min(lo, a.data[i], b.data[i]);
        hi = Math.max(hi, a.data[i], b.data[i]);
        diff[i] = b.data[i] - a.data[i];
        dmax = Math.max(dmax, Math.abs(diff[i]));
      }
      drawMap($('cmp-map-a'), a.data, 0, a.h, a.w, lo, hi, table);
      drawMap($('cmp-map-b'), b.data, 0, b.h, b.w, lo, hi, table);
      drawMap($('cmp-map-diff'), diff, 0, a.h, a.w, -dmax, dmax, DIVERGING);
      $('cmp-map-diff').dataset.range = `${-dmax},${dmax}`;
      $('cap-a').textContent = `A · channel ${ch} · shared scale [${fmt(lo)}, ${fmt(hi)}]`;
      $('cap-b').textContent = `B · channel ${ch} · same scale`;
      $('cap-diff').textContent = `B − A · blue ${fmt(-dmax)} · white 0 · red ${fmt(dmax)}`;
      if (c.layers.length) drawChart();
    } catch (e) {
      status(e.message);
    }
  }

  // ---- events ----
  function bind() {
    $('model-select').addEventListener('change', async (e) => {
      await selectModel(Number(e.target.value));
      state.layer = null;
      await loadPredictions();
    });
    $('layer-filter').addEventListener('input', renderTree);
    $('sort').addEventListener('change', (e) => {
      state.sort = e.target.value;
      state.page = 0;
      loadChannels();
    });
    $('scale').addEventListener('change', (e) => {
      state.scale = e.target.value;
      loadChannels();
    });
    $('colormap').addEventListener('change', (e) => {
      state.colormap = e.target.value;
      loadChannels();
    });
    $('prev').addEventListener('click', () => {
      if (state.page > 0) {
        state.page--;
        loadChannels();
      }
    });
    $('next').addEventListener('click', () => {
      if (state.page + 1 < state.pages) {
        state.page++;
        loadChannels();
      }
    });
    for (const r of document.querySelectorAll('input[name="ov"]')) {
      r.addEventListener('change', (e) => {
        state.overlay = e.target.value;
        loadOverlay();
      });
    }
    $('class-select').addEventListener('change', loadOverlay);
    $('tab-channels').addEventListener('click', () => tab(false));
    $('tab-compare').addEventListener('click', () => tab(true));
    $('tab-concepts').addEventListener('click', () => tab('concepts'));
    $('concepts-run').addEventListener('click', runConcepts);
    $('cmp-run').addEventListener('click', runCompare);
    $('cmp-show').addEventListener('click', showCompareChannel);
    $('div-chart').addEventListener('mousemove', (e) => {
      const l = chartLayerAt(e);
      e.target.title = l
        ? `${l.name} [${l.shape.slice(1).join('×')}]: cosine distance ${fmt(l.cosine)}, relative L2 ${fmt(l.relativeL2)}`
        : '';
    });
    $('div-chart').addEventListener('click', (e) => {
      const l = chartLayerAt(e);
      if (l) {
        state.cmpLayer = l.name;
        showCompareChannel();
      }
    });
    $('upload').addEventListener('change', async (e) => {
      const file = e.target.files[0];
      if (!file) return;
      const st = $('upload-status');
      st.textContent = `uploading ${file.name}…`;
      try {
        const r = await (
          await api(
            '/api/upload',
            { name: file.name },
            { method: 'POST', body: file, headers: { 'Content-Type': 'application/octet-stream' } },
          )
        ).json();
        state.session.images.push(r);
        renderThumbs();
        st.textContent = `added ${r.name}`;
        await selectImage(r.id);
      } catch (err) {
        st.textContent = err.message;
      }
      e.target.value = '';
    });
  }

  function chartLayerAt(e) {
    const c = state.compare;
    if (!c || !c.layers.length) return null;
    const rect = e.target.getBoundingClientRect();
    const x = ((e.clientX - rect.left) * e.target.width) / rect.width;
    const i = Math.floor((x - c.left) / c.slot);
    return i >= 0 && i < c.layers.length ? c.layers[i] : null;
  }

  function tab(compare) {
    const concepts = compare === 'concepts';
    if (concepts) compare = false;
    $('channels-view').hidden = compare || concepts;
    $('compare-view').hidden = !compare;
    $('concepts-view').hidden = !concepts;
    $('tab-channels').classList.toggle('active', !compare && !concepts);
    $('tab-compare').classList.toggle('active', compare);
    $('tab-concepts').classList.toggle('active', concepts);
    $('concepts-layer').textContent = `layer: ${state.layer || '– (choose one in the tree)'}`;
    if (!compare && !concepts && state.layer) loadChannels();
  }

  // Concepts tab: fit k concepts of the current layer over the session's images, list them, show the pictures.
  async function showPicture(id, params) {
    const img = $(id);
    const blob = await (await api('/api/concepts', params)).blob();
    if (img.src.startsWith('blob:')) URL.revokeObjectURL(img.src);
    img.src = URL.createObjectURL(blob);
    img.hidden = false;
  }
  async function runConcepts() {
    const info = $('concepts-info');
    if (!state.layer) {
      info.textContent = 'choose a layer first';
      return;
    }
    const params = { model: state.model, layer: state.layer, k: $('concepts-k').value };
    info.textContent = `fitting ${params.k} concepts of ${state.layer}…`;
    try {
      const s = await getJSON('/api/concepts', params);
      info.textContent = `${s.k} concepts of ${s.layer} over ${s.images} images (${s.rows} positions), relative error ‖A − UW‖/‖A‖ ${fmt(s.relativeError)}; click a concept for its top images`;
      const list = $('concepts-list');
      list.replaceChildren();
      for (const c of s.concepts) {
        const li = el('li', 'concept');
        const sw = el('span', 'key');
        sw.style.background = c.colour;
        li.append(
          sw,
          el(
            'span',
            '',
            ` concept ${c.concept}: mean share ${fmt(c.meanShare)}, top channels ${c.topChannels.join(', ')}`,
          ),
        );
        li.addEventListener('click', () =>
          showPicture('concepts-top', Object.assign({ concept: c.concept }, params)).catch(
            (e) => (info.textContent = e.message),
          ),
        );
        list.append(li);
      }
      if (state.image) await showPicture('concepts-image', Object.assign({ image: state.image }, params));
    } catch (err) {
      info.textContent = err.message;
    }
  }

  init();
})();
