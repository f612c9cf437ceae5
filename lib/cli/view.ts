/** `featscope view`: the interactive viewer in the browser (a local HTTP server with a token). */
import { DEFAULT_MAX_INPUT_PIXELS } from '../preprocess';
import { startViewer } from '../viewer/server';
import { parseDevice, parsePositiveInt, resolveModel, usage } from './args';
import { expandInputs } from './inputs';
import { parseCommand, printHelp } from './command';
import { VIEW_COMMAND } from './commands';

export async function view(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommand(VIEW_COMMAND, argv);
  if (values.help) return printHelp(VIEW_COMMAND);
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
