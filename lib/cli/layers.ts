/** `featscope layers`: every submodule with its type, call count and output shape. */
import { loadModel } from '../model';
import { parseDevice, parsePositiveInt, resolveModel } from './args';
import { parseCommand, printHelp } from './command';
import { LAYERS_COMMAND } from './commands';

export async function layers(argv: string[]): Promise<number> {
  const { values } = parseCommand(LAYERS_COMMAND, argv);
  if (values.help) return printHelp(LAYERS_COMMAND);
  const device = parseDevice(values.device, 'layers');
  const sizeArg = values.size;
  const model = await loadModel(resolveModel(values.model), { device });
  try {
    const size = parsePositiveInt(sizeArg, '--size', model.metadata.input?.size?.[0] ?? 224, 8192, 'layers');
    const list = await model.layers({ inputSize: size });
    if (values.json) {
      process.stdout.write(
        `${JSON.stringify({ model: model.path, inputSize: [size, size], layers: list }, null, 2)}\n`,
      );
      return 0;
    }
    const shape = (s: number[]) => `[${s.join(', ')}]`;
    // A module called in a loop: the calls one forward of this input made, marked.
    const calls = (l: (typeof list)[number]) =>
      l.inLoop ? `${l.outputShapes?.length ?? l.calls} (loop)` : String(l.calls);
    // A tuple, list or dict output: its parts, `key [shape]` (capture one as layer:key).
    const parts = (p: Record<string, number[]>) =>
      `{${Object.entries(p)
        .map(([k, s]) => `${k}: ${shape(s)}`)
        .join(', ')}}`;
    // Transformer outputs: the layout and the [N, C, H, W] maps featscope shows (class token dropped).
    const maps = (l: (typeof list)[number]) =>
      l.layout && l.mapShapes ? ` ${l.layout} -> maps ${l.mapShapes.map(shape).join(' ')}` : '';
    const output = (l: (typeof list)[number]) =>
      ([...(l.outputShapes ?? []).map(shape), ...(l.outputParts ?? []).filter(Boolean).map(parts)].join(' ') || '-') +
      maps(l);
    const rows = list.map((l) => [l.name, l.type, calls(l), output(l)]);
    const header = ['layer', 'type', 'calls', `output (input ${size}x${size})`];
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
    const line = (r: string[]) =>
      r.map((c, i) => (i === 2 ? c.padStart(widths[i]) : i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ');
    process.stdout.write(`${model.path}: ${list.length} layers\n${line(header)}\n${rows.map(line).join('\n')}\n`);
    return 0;
  } finally {
    model.dispose();
  }
}
