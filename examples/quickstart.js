// Load the model, hook two layers, print their shapes, write a grid: the README's example.
// Run from the repository root after `npm run demo` (or scripts/setup.sh):
//   node examples/quickstart.js [photo] [grid.png]      (FEATSCOPE_MODEL picks another model file)
const { writeFile } = require('fs/promises');
const { loadModel, preprocess, renderChannelGrid } = require('featscope'); // in the checkout too (package.json exports)

async function main(photo = 'test/fixtures/images/dog.jpg', gridFile = 'layer1.0.conv1.png') {
  const model = await loadModel(process.env.FEATSCOPE_MODEL || 'models/resnet18.pt'); // device 'auto': CUDA when present
  try {
    const input = await preprocess(photo, { model }); // torchvision's Resize((224, 224)) + Normalize
    model.hook(['layer1.0.conv1', 'layer4']);
    const { output, captures } = await model.forward(input);
    for (const c of captures) console.log(c.name, JSON.stringify(c.shape));
    console.log('output', JSON.stringify(output.shape), model.metadata.weights.trained ? '' : '(untrained weights)');
    const grid = await renderChannelGrid(captures[0], { channels: 16, colormap: 'viridis' });
    await writeFile(gridFile, grid.png);
  } finally {
    model.dispose();
  }
}

main(process.argv[2], process.argv[3]).catch((err) => {
  console.error(`${err.message}${err.code ? ` [${err.code}]` : ''}`);
  process.exit(1);
});
