// Grad-CAM overlays: the heatmap is the native CAM normalised by its maximum; the picture is framed.
import * as path from 'path';
import sharp from 'sharp';
import { gradCamOverlay, gradCamOverlays } from '../../lib/analysis';
import { preprocess } from '../../lib/preprocess';
import { ROOT, cpuModelForTests } from '../support/models';

const DOG = path.join(ROOT, 'test', 'fixtures', 'images', 'dog.jpg');
const CAT = path.join(ROOT, 'test', 'fixtures', 'images', 'chelsea.png');

const scripted = cpuModelForTests();

test('heatmap = native Grad-CAM / its max; target defaults to the top-1 prediction', async () => {
  const r = await gradCamOverlay(scripted(), DOG, { layer: 'layer4' });
  const x = await preprocess(DOG, { size: 224 });
  const cam = await scripted().gradcam(x, { layer: 'layer4' });
  const max = Math.max(...cam.data);
  expect(r.rawMax).toBeCloseTo(max, 6);
  expect(r.heatmap.width * r.heatmap.height).toBe(cam.data.length);
  for (let i = 0; i < cam.data.length; i++) expect(r.heatmap.data[i]).toBeCloseTo(cam.data[i] / max, 6);
  expect(r.target.class).toBe(r.predictions[0].class);
  expect(r.target.probability).toBeCloseTo(r.predictions[0].probability, 5);
  expect(r.predictions).toHaveLength(3);
  expect(r.target.name).toBe(scripted().metadata.classes![r.target.class]);
  expect(r.weights.trained).toBe(false);
  const meta = await sharp(r.png).metadata();
  expect([meta.width, meta.height]).toEqual([r.width, r.height]);
  // The banner: the top rows are the untrained red.
  const { data } = await sharp(r.png)
    .extract({ left: 2, top: 2, width: 1, height: 1 })
    .raw()
    .toBuffer({ resolveWithObject: true });
  expect(Array.from(data.subarray(0, 3))).toEqual([0xc6, 0x28, 0x28]);
});

test('batched with given classes; crop mode', async () => {
  const rs = await gradCamOverlays(scripted(), [DOG, CAT], {
    layer: 'layer3',
    classes: [207, 281],
    resize: 'crop',
    top: 5,
  });
  expect(rs.map((r) => r.target.class)).toEqual([207, 281]);
  expect(rs[1].predictions).toHaveLength(5);
  expect(rs[0].heatmap.width).toBe(14);
});

test('bad options', async () => {
  await expect(gradCamOverlay(scripted(), DOG, { layer: 'layer4', alpha: 2 })).rejects.toMatchObject({
    code: 'INVALID_ARGUMENT',
  });
  await expect(gradCamOverlay(scripted(), DOG, { layer: 'layr4' })).rejects.toMatchObject({ code: 'UNKNOWN_LAYER' });
});
