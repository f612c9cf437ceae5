/**
 * `featscope concepts`: k concepts of one layer over a folder (NMF of its post-ReLU activations,
 * lib/analysis/concepts.ts), each image's concept map, each concept's top images.
 *
 * Sharding: every shard fits W itself on the same seeded sample of the WHOLE input list (so each
 * shard reads the sample's images, at most --fit-images of them), or takes W from --concepts
 * W.npy; it then transforms only its own images. `featscope merge` checks that all shards used
 * the same W (bit for bit) and joins them: the same result as one run.
 */
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import {
  analysisPage,
  conceptsFromWeights,
  fitConcepts,
  renderConceptImage,
  renderConceptTop,
  writeAnalysisReport,
  type AnalysisSection,
  type Concepts,
} from '../analysis';
import { conceptColour, conceptNorms, rgbBatches } from '../analysis/concepts';
import { normalisationOf } from '../analysis/common';
import { FeatscopeError } from '../errors';
import type { Model } from '../model';
import { decodeNpy, encodeNpy } from '../npy';
import { preprocess } from '../preprocess';
import { toHex } from '../render/color';
import { parseDevice, parsePositiveInt, parseReportAssets, parseResize, usage } from './args';
import { readBoundedFile } from '../fsutil';
import { insideShard, insideOut, writeAtomic } from './files';
import { expandInputs } from './inputs';
import { interruptible, Interrupted } from './interrupt';
import { modelSummary } from './manifest';
import { loadCliModel } from './model-options';
import { Progress } from './progress';
import { announceShard, parseShard, selectShard, shardOut, shardRecord } from './shard';
import { asFailures, endRun } from './summary';
import { parseCommand, printHelp } from './command';
import { CONCEPTS_COMMAND } from './commands';

export const CONCEPTS_STATE_FORMAT = 'featscope-concepts-state/1';

interface Top {
  global: number;
  source: string;
  score: number;
  map: number[];
}

interface ImageRecord {
  global: number;
  source: string;
  picture: string;
  /** Per concept: mean over positions of u·‖w‖ (activation units). */
  share: number[];
  dominant: number;
  relativeError: number;
  normSquared: number;
}

/** What a run (or a merge) has to draw and write its outputs. */
interface ConceptsResult {
  layer: string;
  k: number;
  channels: number;
  W: Float32Array;
  h: number;
  w: number;
  fit: Concepts['fit'];
  images: ImageRecord[];
  failed: Array<{ source: string; code?: string; message: string }>;
  tops: Top[][];
}

function pushTop(list: Top[], t: Top, keep: number): void {
  list.push(t);
  list.sort((a, b) => b.score - a.score || a.global - b.global);
  if (list.length > keep) list.length = keep;
}

export async function concepts(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommand(CONCEPTS_COMMAND, argv);
  if (values.help) return printHelp(CONCEPTS_COMMAND);
  const reportAssets = parseReportAssets(values['report-assets'], 'concepts');
  if (positionals.length === 0) throw usage('concepts needs images, a folder or a glob', 'concepts');
  const layer = (values.layer ?? 'layer4').trim();
  const k = parsePositiveInt(values.k, '--k', 8, 256, 'concepts');
  const iterations = parsePositiveInt(values.iterations, '--iterations', 200, 100000, 'concepts');
  const seed = values.seed === '0' ? 0 : parsePositiveInt(values.seed, '--seed', 0, 2 ** 32 - 1, 'concepts');
  const fitImages = parsePositiveInt(values['fit-images'], '--fit-images', 256, 1e9, 'concepts');
  const fitRows = parsePositiveInt(values['fit-rows'], '--fit-rows', 20000, 1e8, 'concepts');
  const topImages = parsePositiveInt(values['top-images'], '--top-images', 6, 50, 'concepts');
  const batch = parsePositiveInt(values.batch, '--batch', 16, 1024, 'concepts');
  const resize = parseResize(values.resize, 'concepts');
  const device = parseDevice(values.device, 'concepts');
  const shard = parseShard(values, 'concepts');
  const outBase = path.resolve(values.out ?? 'featscope-out');
  const out = shardOut(outBase, shard);
  let given: { data: Float32Array | Float64Array; shape: number[]; file: string } | undefined;
  if (values.concepts !== undefined) {
    const file = path.resolve(values.concepts);
    if (!fs.existsSync(file))
      throw usage(`--concepts ${JSON.stringify(values.concepts)}: no such file; give a k x channels .npy`, 'concepts');
    given = { ...decodeNpy(fs.readFileSync(file), file), file };
  }
  const all = await expandInputs(positionals, { skip: outBase });
  const { inputs, indices } = selectShard(positionals, all, shard);
  announceShard('concepts', shard, all.length, inputs.length, out);
  const model = await loadCliModel(values, 'concepts', { device });
  const progress = new Progress({ total: inputs.length });
  const interrupt = interruptible(progress);
  const norm = normalisationOf(model);
  const options = {
    layer,
    k: given ? given.shape[0] : k,
    iterations,
    seed,
    fitImages,
    fitRows,
    resize,
    topImages,
    ...(given ? { concepts: given.file } : {}),
  };
  try {
    fs.mkdirSync(out, { recursive: true });
    let c: Concepts;
    if (given) {
      c = conceptsFromWeights(given.data, given.shape, layer, given.file);
    } else {
      progress.note(`fitting ${k} concepts of ${layer}…`);
      c = await fitConcepts(
        model,
        all.map((i) => i.source),
        {
          layer,
          k,
          seed,
          iterations,
          batch,
          resize,
          fitImages,
          fitRows,
          onProgress: (done, total) => {
            progress.note(`concepts: fit, read ${done}/${total} images`);
            interrupt.check();
          },
        },
      );
    }
    const norms = conceptNorms(c.W, c.k, c.channels);
    const images: ImageRecord[] = [];
    const failed: ConceptsResult['failed'] = [];
    const tops: Top[][] = Array.from({ length: c.k }, () => []);
    let h = 0;
    let w = 0;
    const files = inputs.map((i) => i.source);
    for await (const b of rgbBatches(files, batch, { resize, size: norm.size, mean: norm.mean, std: norm.std })) {
      failed.push(...b.failed);
      if (b.files.length > 0) {
        const [cap] = await model.capture({ data: b.data, shape: b.shape }, [layer]);
        const maps = c.transform(cap);
        [, , h, w] = maps.shape;
        const HW = h * w;
        for (const [j, f] of b.files.entries()) {
          const data = maps.data.subarray(j * c.k * HW, (j + 1) * c.k * HW);
          const share = Array.from({ length: c.k }, (_, t) => {
            let s = 0;
            for (let p = 0; p < HW; p++) s += data[t * HW + p];
            return (s / HW) * norms[t];
          });
          const dominant = share.reduce((best, v, t) => (v > share[best] ? t : best), 0);
          const picture = `${inputs[f].name}.concepts.png`;
          const pic = await renderConceptImage(
            model,
            b.images[j],
            { k: c.k, h, w, data },
            norms,
            `${path.basename(inputs[f].source)}: ${c.k} concepts of ${layer}`,
          );
          await writeAtomic(insideOut(out, picture), pic.png);
          images.push({
            global: indices[f],
            source: inputs[f].source,
            picture,
            share,
            dominant,
            relativeError: maps.relativeError[j],
            normSquared: maps.normSquared[j],
          });
          for (let t = 0; t < c.k; t++)
            pushTop(
              tops[t],
              {
                global: indices[f],
                source: inputs[f].source,
                score: share[t],
                map: Array.from(data.subarray(t * HW, (t + 1) * HW)),
              },
              topImages,
            );
        }
      }
      progress.note(`concepts: ${Math.min(b.start + batch, files.length)}/${files.length} images`);
      interrupt.check();
    }
    if (images.length === 0 && inputs.length > 0)
      throw new FeatscopeError(
        'NO_INPUTS',
        `none of the ${inputs.length} images could be read; first error: ${failed[0]?.message}`,
      );
    const result: ConceptsResult = {
      layer,
      k: c.k,
      channels: c.channels,
      W: c.W,
      h,
      w,
      fit: c.fit,
      images,
      failed,
      tops,
    };
    const summaryModel = modelSummary(model);
    const written = await writeConceptOutputs(model, result, out, {
      options,
      modelRecord: summaryModel,
      report: values.report === true,
      reportAssets,
      preprocess: { resize, size: norm.size, mean: [...norm.mean], std: [...norm.std] },
      extra: shard ? { shard: shardRecord(shard, all.length, inputs.length) } : {},
    });
    const outFiles = written.files.map((f) => path.join(out, f));
    if (shard) {
      await writeAtomic(
        insideOut(out, 'concepts-state.json'),
        `${JSON.stringify({
          format: CONCEPTS_STATE_FORMAT,
          command: 'concepts',
          shard: shardRecord(shard, all.length, inputs.length),
          model: summaryModel,
          options,
          report: values.report === true,
          reportAssets,
          preprocess: { resize, size: norm.size, mean: [...norm.mean], std: [...norm.std] },
          W: { file: 'concepts-W.npy', sha256: wHash(c.W), k: c.k, channels: c.channels },
          fit: c.fit,
          h,
          w,
          images,
          failed,
          tops,
        })}\n`,
      );
      outFiles.push(insideOut(out, 'concepts-state.json'));
    }
    return endRun({
      command: 'concepts',
      json: Boolean(values.json),
      out,
      total: inputs.length,
      summary: written.summary,
      outcome: { done: images.length, skipped: 0, failed: asFailures(failed), interrupted: false },
      files: outFiles,
    });
  } catch (err) {
    if (!(err instanceof Interrupted)) throw err;
    if (!fs.existsSync(out) || !fs.readdirSync(out).some((f) => f.endsWith('.concepts.png')))
      return endRun({ command: 'concepts', stopped: true });
    // The per-image pictures are written as the images stream by; the concepts' outputs need them all.
    process.stderr.write(
      `featscope: concepts: interrupted (Ctrl-C); the per-image pictures done so far are in ${out}, but no concepts.json, concepts-W.npy or concept pictures were written. Rerun the command to do it all.\n`,
    );
    return 130;
  } finally {
    interrupt.dispose();
    model.dispose();
  }
}

function wHash(W: Float32Array): string {
  return createHash('sha256')
    .update(Buffer.from(W.buffer, W.byteOffset, W.byteLength))
    .digest('hex');
}

interface PreprocessRecord {
  resize: 'squash' | 'crop';
  size: number;
  mean: number[];
  std: number[];
}

/**
 * concepts.json, concepts-W.npy, the concepts' top-image pictures and report.html, for a run or a
 * merge (the per-image pictures are drawn while the images stream by).
 */
async function writeConceptOutputs(
  model: Model,
  r: ConceptsResult,
  out: string,
  o: {
    options: Record<string, unknown>;
    modelRecord: Record<string, unknown>;
    report: boolean;
    reportAssets: 'inline' | 'linked';
    preprocess: PreprocessRecord;
    extra: Record<string, unknown>;
    /** Per-image pictures relative to `out` (a merge's lie in the shard folders). */
    pictureOf?: (i: ImageRecord) => string;
  },
): Promise<{ files: string[]; summary: Record<string, unknown> }> {
  const files: string[] = [];
  await writeAtomic(insideOut(out, 'concepts-W.npy'), encodeNpy(r.W, [r.k, r.channels]));
  files.push('concepts-W.npy');
  const norms = conceptNorms(r.W, r.k, r.channels);
  const pictures: Array<{ png: Buffer; file: string } | undefined> = [];
  for (let t = 0; t < r.k; t++) {
    if (r.tops[t].length === 0) {
      pictures.push(undefined);
      continue;
    }
    const entries = [];
    for (const e of r.tops[t]) {
      const x = await preprocess(e.source, {
        resize: o.preprocess.resize,
        size: o.preprocess.size,
        mean: o.preprocess.mean as [number, number, number],
        std: o.preprocess.std as [number, number, number],
      });
      entries.push({
        photo: x.images[0],
        map: Float32Array.from(e.map),
        h: r.h,
        w: r.w,
        label: `${path.basename(e.source)} ${e.score.toPrecision(3)}`,
      });
    }
    const pic = await renderConceptTop(model, t, entries, norms[t], r.layer);
    const file = `concept-${t}.png`;
    await writeAtomic(insideOut(out, file), pic.png);
    files.push(file);
    pictures.push({ png: pic.png, file });
  }
  let err = 0;
  let total = 0;
  for (const i of r.images) {
    err += i.relativeError ** 2 * i.normSquared;
    total += i.normSquared;
  }
  const sorted = [...r.images].sort((a, b) => a.global - b.global);
  const round = (v: number) => Number(v.toPrecision(6));
  const conceptList = Array.from({ length: r.k }, (_, t) => {
    const row = Array.from(r.W.subarray(t * r.channels, (t + 1) * r.channels));
    const channels = row
      .map((v, ch) => [ch, v] as [number, number])
      .sort((a, b) => b[1] - a[1] || a[0] - b[0])
      .slice(0, 5);
    return {
      concept: t,
      colour: toHex(conceptColour(t)),
      norm: round(norms[t]),
      topChannels: channels.map(([ch, v]) => ({ channel: ch, weight: round(v) })),
      meanShare: r.images.length ? round(r.images.reduce((s, i) => s + i.share[t], 0) / r.images.length) : 0,
      dominantIn: r.images.filter((i) => i.dominant === t).length,
      picture: pictures[t]?.file ?? null,
      top: r.tops[t].map((e) => ({ source: e.source, score: round(e.score) })),
    };
  });
  const summary = {
    command: 'concepts',
    model: o.modelRecord,
    options: o.options,
    ...o.extra,
    layer: r.layer,
    k: r.k,
    channels: r.channels,
    positions: [r.h, r.w],
    W: 'concepts-W.npy',
    fit: r.fit,
    images: r.images.length,
    failed: r.failed,
    relativeError: total > 0 ? round(Math.sqrt(err / total)) : 0,
    concepts: conceptList,
    perImage: sorted.map((i) => ({
      source: i.source,
      picture: o.pictureOf ? o.pictureOf(i) : i.picture,
      dominant: i.dominant,
      share: i.share.map(round),
      relativeError: round(i.relativeError),
    })),
  };
  await writeAtomic(insideOut(out, 'concepts.json'), `${JSON.stringify(summary, null, 2)}\n`);
  files.unshift('concepts.json');
  if (o.report) {
    const sections: AnalysisSection[] = [
      {
        heading: `Concepts of ${r.layer}: ${r.k} concepts over ${r.images.length} images`,
        note:
          `A ≈ U W by NMF of the layer's activations (rows: image x position; values below 0 set to 0). ` +
          `Relative reconstruction error ‖A − UW‖/‖A‖ over all images: ${summary.relativeError}. ` +
          `Share: mean over positions of u·‖w‖ (activation units).`,
        table: {
          head: ['concept', 'mean share', 'dominant in (images)', '‖w‖', 'top channels'],
          rows: conceptList.map((cpt) => [
            `concept ${cpt.concept} (${cpt.colour})`,
            cpt.meanShare,
            cpt.dominantIn,
            cpt.norm,
            cpt.topChannels.map((x) => `${x.channel}`).join(', '),
          ]),
        },
      },
      {
        heading: 'Top images per concept',
        images: pictures
          .map((p, t) => (p ? { png: p.png, caption: `concept ${t}: its top images, heatmap of u·‖w‖` } : undefined))
          .filter((x): x is { png: Buffer; caption: string } => x !== undefined),
      },
    ];
    const perImage: Array<{ png: Buffer; caption: string; width: number }> = [];
    for (const i of sorted.slice(0, 24)) {
      const file = path.join(out, o.pictureOf ? o.pictureOf(i) : i.picture);
      if (fs.existsSync(file))
        perImage.push({
          png: fs.readFileSync(file),
          caption: `${i.source}: dominant concept ${i.dominant}`,
          width: 360,
        });
    }
    sections.push({
      heading: `Each image's concepts${sorted.length > 24 ? ` (the first 24 of ${sorted.length})` : ''}`,
      images: perImage,
    });
    await writeAnalysisReport(
      insideOut(out, 'report.html'),
      analysisPage(model, `featscope concepts: ${r.layer}`, o.options, sections),
      o.reportAssets,
    );
    files.push('report.html');
  }
  return { files, summary };
}

/** `featscope merge` of concepts shards: one W (checked), the images of all shards, the top images over all. */
export async function mergeConcepts(
  shards: Array<{ dir: string; index: number }>,
  out: string,
  read: (file: string) => Record<string, unknown>,
  modelOf: (summary: Record<string, unknown>) => Model,
): Promise<{ images: number; files: string[] }> {
  const states = shards.map((s) => ({ shard: s, state: read(path.join(s.dir, 'concepts-state.json')) }));
  const first = states[0].state;
  const key = (s: Record<string, unknown>) =>
    JSON.stringify([s.options, (s.model as Record<string, unknown>).path, s.W]);
  for (const { shard, state } of states) {
    if (state.format !== CONCEPTS_STATE_FORMAT)
      throw new FeatscopeError(
        'MERGE_INVALID',
        `${shard.dir}/concepts-state.json is not ${CONCEPTS_STATE_FORMAT}; rerun that shard with this featscope`,
      );
    if (key(state) !== key(first))
      throw new FeatscopeError(
        'MERGE_MISMATCH',
        `shard ${shard.index} has another model, options or W (sha256 ${(state.W as { sha256: string }).sha256.slice(0, 12)} vs ${(first.W as { sha256: string }).sha256.slice(0, 12)}) than shard ${states[0].shard.index}; the shards fitted W differently (another device or CPU?): fit once, then run every shard with --concepts concepts-W.npy`,
      );
  }
  const wPath = path.join(states[0].shard.dir, 'concepts-W.npy');
  const Wfile = decodeNpy(
    readBoundedFile(
      wPath,
      1 << 30,
      (reason) => new FeatscopeError('MERGE_INVALID', `${wPath} ${reason}; rerun that shard`),
    ),
  );
  const W = Float32Array.from(Wfile.data);
  const Wmeta = first.W as { sha256: string; k: number; channels: number };
  if (wHash(W) !== Wmeta.sha256)
    throw new FeatscopeError(
      'MERGE_INVALID',
      `${states[0].shard.dir}/concepts-W.npy changed since the run; rerun that shard`,
    );
  const k = Wmeta.k;
  if (!Number.isInteger(k) || k < 1 || W.length !== k * Wmeta.channels)
    throw new FeatscopeError(
      'MERGE_INVALID',
      `${wPath} holds ${W.length} values, not k x channels = ${k} x ${Wmeta.channels}; rerun that shard`,
    );
  const images: ImageRecord[] = [];
  const tops: Top[][] = Array.from({ length: k }, () => []);
  const failed: ConceptsResult['failed'] = [];
  const pictureDir = new Map<ImageRecord, string>();
  let h = 0;
  let w = 0;
  const topImages = (first.options as { topImages: number }).topImages;
  for (const { shard, state } of states) {
    for (const i of state.images as ImageRecord[]) {
      insideShard(shard.dir, i.picture, 'the concepts picture'); // a path that leaves the shard is refused
      images.push(i);
      pictureDir.set(i, shard.dir);
    }
    failed.push(...(state.failed as ConceptsResult['failed']));
    (state.tops as Top[][]).forEach((list, t) => list.forEach((e) => pushTop(tops[t], e, topImages)));
    if ((state.images as ImageRecord[]).length) [h, w] = [Number(state.h), Number(state.w)];
  }
  if (images.length === 0) throw new FeatscopeError('NO_INPUTS', 'every shard was empty: no images to merge');
  const missing = tops.flat().find((e) => !fs.existsSync(e.source));
  if (missing)
    throw new FeatscopeError(
      'MERGE_INVALID',
      `the merge draws each concept's top images, but ${missing.source} is not here; run the merge where the images are at the paths the shards saw`,
    );
  const modelRecord = first.model as Record<string, unknown>;
  const options = first.options as Record<string, unknown>;
  const written = await writeConceptOutputs(
    modelOf(modelRecord),
    {
      layer: String(options.layer),
      k,
      channels: Wmeta.channels,
      W,
      h,
      w,
      fit: first.fit as Concepts['fit'],
      images,
      failed,
      tops,
    },
    out,
    {
      options,
      modelRecord,
      report: first.report === true,
      reportAssets: first.reportAssets === 'linked' ? 'linked' : 'inline',
      preprocess: first.preprocess as PreprocessRecord,
      extra: { merged: { shards: shards.length, from: shards.map((s) => s.dir) } },
      pictureOf: (i) =>
        path
          .relative(out, path.join(pictureDir.get(i)!, i.picture))
          .split(path.sep)
          .join('/'),
    },
  );
  return { images: images.length, files: written.files };
}
