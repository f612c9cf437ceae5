/**
 * --devices cuda:0,cuda:1 (or cpu,cpu): one model per device for render and export; the batches
 * go to them in turn, one in flight on each (lib/cli/batch.ts).
 */
import type { Model } from '../model';
import { parseDevice, usage, parseList } from './args';
import { loadCliModel } from './model-options';

/** The device list of --devices, or [--device]. */
export function parseDevices(
  values: { device?: string; devices?: string },
  command: string,
): Array<ReturnType<typeof parseDevice>> {
  if (values.devices === undefined) return [parseDevice(values.device, command)];
  if (values.device !== undefined) throw usage('give --device or --devices, not both', command);
  const list = parseList(values.devices);
  if (list.length === 0) throw usage('--devices needs at least one device, e.g. cuda:0,cuda:1', command);
  if (list.length > 16) throw usage(`--devices lists ${list.length} devices; at most 16`, command);
  return list.map((d) => {
    if (!/^(auto|cpu|cuda|cuda:\d+)$/.test(d))
      throw usage(`--devices takes a list of cpu, cuda or cuda:N, not ${JSON.stringify(d)}`, command);
    return d as ReturnType<typeof parseDevice>;
  });
}

/** The models of the other devices (the first device's model is loaded by the command). */
export async function loadMoreModels(
  values: Record<string, string | boolean | undefined>,
  command: string,
  devices: string[],
): Promise<Model[]> {
  const more: Model[] = [];
  try {
    for (const device of devices.slice(1))
      more.push(await loadCliModel(values, command, { device: device as ReturnType<typeof parseDevice> }));
  } catch (err) {
    for (const m of more) m.dispose();
    throw err;
  }
  return more;
}
