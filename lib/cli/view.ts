/** `featscope view`: the interactive viewer in the browser (a local HTTP server with a token). */
import { DEFAULT_MAX_INPUT_PIXELS } from '../preprocess';
import { startViewer } from '../viewer/server';
import { DEVICE_OPTION, parse, parseDevice, parsePositiveInt, resolveModel, usage } from './args';
import { expandInputs } from './inputs';

export const VIEW_HELP = `Usage: featscope view [image|folder|glob]... [options]

An interactive viewer in the browser: the images (thumbnails, upload), the model's layer tree, a
layer's channels (paged, sorted by max or mean from the device statistics), one channel full size
with a colour bar in real values, the layer's mean overlay, Grad-CAM and saliency for the predicted
or a chosen class, and compare mode (two images, or one image through two models): per-layer
cosine distance and relative L2, both maps of a channel and their difference.

Options:
  -m, --model FILE     TorchScript model (default: $FEATSCOPE_MODEL, else models/resnet18.pt);
                       give it twice to compare two models (e.g. before and after fine-tuning)
      --port N         port (default 0: a free one)
      --host ADDR      address to listen on (default 127.0.0.1; anything else is reachable from
                       other machines, still behind the token)
      --device DEV     auto (default) | cpu | cuda | cuda:N
      --upload-limit MB  largest upload in MiB (default 20)
  -h, --help           this help

The server prints its URL with a random token; every request needs it (401 otherwise). From a
laptop, forward the port over SSH with the printed \`ssh -L\` line, then open the URL there.
Ctrl-C stops the server.

Example:
  featscope view photos/ --model models/resnet18.pt
`;

export async function view(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    'view',
    argv,
    {
      model: { type: 'string', short: 'm', multiple: true },
      ...DEVICE_OPTION,
      port: { type: 'string' },
      host: { type: 'string' },
      'upload-limit': { type: 'string' },
    },
    true,
  );
  if (values.help) {
    process.stdout.write(VIEW_HELP);
    return 0;
  }
  const given = values.model ?? [];
  if (given.length > 2)
    throw usage(`view takes at most two models (--model a.pt --model b.pt), not ${given.length}`, 'view');
  const models = given.length ? given : [resolveModel(undefined)];
  const portText = values.port;
  if (portText !== undefined && (!/^\d+$/.test(portText) || Number(portText) > 65535))
    throw usage(`--port must be an integer from 0 to 65535, not ${JSON.stringify(portText)}`, 'view');
  const host = (values.host ?? '127.0.0.1').trim();
  if (!/^[A-Za-z0-9.:-]+$/.test(host))
    throw usage(`--host must be an address such as 127.0.0.1 or ::1, not ${JSON.stringify(host)}`, 'view');
  const uploadMiB = parsePositiveInt(values['upload-limit'], '--upload-limit', 20, 1024, 'view');
  const images = positionals.length ? (await expandInputs(positionals)).map((i) => i.source) : [];
  const viewer = await startViewer({
    images,
    models,
    host,
    port: portText === undefined ? 0 : Number(portText),
    device: parseDevice(values.device, 'view'),
    uploadLimit: uploadMiB * 1024 * 1024,
    maxInputPixels: DEFAULT_MAX_INPUT_PIXELS,
  });
  const loopback = host === '127.0.0.1' || host === '::1' || host === 'localhost';
  process.stdout.write(`featscope view: ${images.length} image(s), model ${models.join(' and ')}\n`);
  process.stdout.write(`  open ${viewer.url}\n`);
  process.stdout.write(
    `  from a laptop: ssh -L ${viewer.port}:${host.includes(':') ? `[${host}]` : host}:${viewer.port} <user>@<this machine>, then open http://127.0.0.1:${viewer.port}/?token=${viewer.token}\n`,
  );
  if (!loopback)
    process.stdout.write(
      `  warning: listening on ${host}, reachable from other machines (the token still guards every request)\n`,
    );
  process.stdout.write('  Ctrl-C to stop\n');
  await new Promise<void>((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      process.stderr.write('featscope view: stopping\n');
      viewer.close().then(resolve, resolve);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  return 0;
}
