import { FeatscopeError } from '../../lib/errors';
import { COLORMAP_NAMES, applyColormap, colormapRGB, getColormap } from '../../lib/render';
import { checkColormap } from '../../lib/render/colormaps';
import { pythonHas, runPython } from '../support/python';

describe('colour maps', () => {
  test('seven maps of 256 RGB entries', () => {
    expect([...COLORMAP_NAMES].sort()).toEqual(['cividis', 'gray', 'inferno', 'magma', 'plasma', 'turbo', 'viridis']);
    for (const name of COLORMAP_NAMES) expect(getColormap(name)).toHaveLength(768);
  });

  test("known end points (matplotlib's published data, as uint8)", () => {
    expect(colormapRGB('viridis', 0)).toEqual([68, 1, 84]);
    expect(colormapRGB('viridis', 1)).toEqual([253, 231, 36]);
    expect(colormapRGB('magma', 0)).toEqual([0, 0, 3]);
    expect(colormapRGB('inferno', 1)).toEqual([252, 254, 164]); // 0.998364 * 255 = 254.6, truncated as matplotlib does
    expect(colormapRGB('turbo', 0)).toEqual([48, 18, 59]);
    expect(colormapRGB('gray', 0.5)).toEqual([128, 128, 128]);
  });

  test('values map like matplotlib: floor(v * 256), clipped; a flat range gives the first colour; NaN is black', () => {
    const rgb = applyColormap([0, 0.5, 1, -3, 7, NaN], 0, 1, 'gray');
    expect([...rgb]).toEqual([0, 0, 0, 128, 128, 128, 255, 255, 255, 0, 0, 0, 255, 255, 255, 0, 0, 0]);
    expect([...applyColormap([2, 2], 2, 2, 'viridis')]).toEqual([68, 1, 84, 68, 1, 84]);
  });

  test('an unknown name is refused with the list of known ones', () => {
    expect(() => checkColormap('jet')).toThrow(FeatscopeError);
    expect(() => checkColormap('jet')).toThrow(
      'Expected one of viridis, magma, inferno, plasma, cividis, turbo, gray for colormap but received "jet"',
    );
  });

  (pythonHas('matplotlib') ? test : test.skip)('spot values equal matplotlib cmap(x, bytes=True)', () => {
    const xs = [0, 1 / 256, 0.1, 0.25, 0.3333, 0.5, 0.6, 0.75, 0.9, 0.999, 1];
    const script =
      'import json, sys, numpy as np\n' +
      'from matplotlib import colormaps\n' +
      'names, xs = json.loads(sys.stdin.read())\n' +
      'print(json.dumps({n: colormaps[n](np.array(xs), bytes=True)[:, :3].tolist() for n in names}))\n';
    const expected = JSON.parse(runPython(['-c', script], JSON.stringify([COLORMAP_NAMES, xs])));
    for (const name of COLORMAP_NAMES) {
      expect({ name, rgb: xs.map((x) => colormapRGB(name, x)) }).toEqual({ name, rgb: expected[name] });
    }
    // And every entry of every table.
    const full = JSON.parse(
      runPython(['-c', script.replace('np.array(xs)', 'np.arange(256)')], JSON.stringify([COLORMAP_NAMES, []])),
    );
    for (const name of COLORMAP_NAMES) expect([...getColormap(name)]).toEqual(full[name].flat());
  });
});
