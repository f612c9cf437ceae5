/**
 * Every featscope command, declared once: its usage, help text and typed options. The argument
 * parser, `--help`, `featscope run` job files (lib/cli/run.ts) and the Kubernetes/Slurm generators
 * (lib/cli/cluster.ts) all read these descriptors (lib/cli/command.ts). Data only: loading this
 * file loads no command.
 */
import { withHelp, type CommandSpec, type OptionSpec } from './command';

// ---- Options many commands share, and their groups.

export const HELP = { name: 'help', short: 'h', type: 'bool', help: 'this help' } as const satisfies OptionSpec;
export const THREADS = {
  name: 'threads',
  type: 'int',
  metavar: 'N',
  help: "libtorch's intra-op threads (default: $FEATSCOPE_THREADS, else libtorch's)",
} as const satisfies OptionSpec;
export const JSON_OUT = {
  name: 'json',
  type: 'bool',
  help: 'print a JSON summary on stdout',
} as const satisfies OptionSpec;

/** The model group: --model and what overrides the model file's input metadata (lib/cli/model-options.ts). */
export const MODEL = {
  name: 'model',
  short: 'm',
  type: 'path',
  metavar: 'FILE',
  help: 'TorchScript model (default: $FEATSCOPE_MODEL, else models/resnet18.pt)',
} as const satisfies OptionSpec;
export const MEAN = {
  name: 'mean',
  type: 'list',
  metavar: 'R,G,B',
  help: "input normalisation mean (default: the model's featscope.json, else ImageNet's)",
} as const satisfies OptionSpec;
export const STD = {
  name: 'std',
  type: 'list',
  metavar: 'R,G,B',
  help: "input normalisation std (default: the model's, else ImageNet's)",
} as const satisfies OptionSpec;
export const SIZE = {
  name: 'size',
  type: 'int',
  metavar: 'PX',
  help: "input side in pixels (default: the model's, else 224)",
} as const satisfies OptionSpec;
export const LABELS = {
  name: 'labels',
  type: 'path',
  metavar: 'FILE',
  help: "class names, one per line in class-index order (default: the model's)",
} as const satisfies OptionSpec;
export const MODEL_GROUP = [MODEL, MEAN, STD, SIZE, LABELS] as const;

export const DEVICE = {
  name: 'device',
  type: 'string',
  metavar: 'DEV',
  help: 'auto (default) | cpu | cuda | cuda:N',
} as const satisfies OptionSpec;
export const DEVICES = {
  name: 'devices',
  type: 'list',
  metavar: 'A,B',
  help: 'one model per device, batches spread over them: cuda:0,cuda:1 (or cpu,cpu)',
} as const satisfies OptionSpec;

/** The output group. */
export const OUT = {
  name: 'out',
  short: 'o',
  type: 'path',
  metavar: 'DIR',
  help: 'output folder (default: ./featscope-out)',
} as const satisfies OptionSpec;

/** The report group. */
export const REPORT = { name: 'report', type: 'bool', help: 'also write report.html' } as const satisfies OptionSpec;
export const REPORT_ASSETS = {
  name: 'report-assets',
  type: 'string',
  metavar: 'HOW',
  help: 'inline (default) | linked: the pictures in report_files/ beside it',
} as const satisfies OptionSpec;
export const REPORT_GROUP = [REPORT, REPORT_ASSETS] as const;

/** The batch group: what the runs over many images share (each command says its default batch). */
export const LAYERS = {
  name: 'layers',
  short: 'l',
  type: 'list',
  metavar: 'A,B',
  help: 'layers',
} as const satisfies OptionSpec;
export const BATCH = {
  name: 'batch',
  type: 'int',
  metavar: 'N',
  help: 'images per forward',
} as const satisfies OptionSpec;
export const RESIZE = {
  name: 'resize',
  type: 'string',
  metavar: 'MODE',
  help: 'squash (default: Resize((224, 224))) | crop (Resize(256) + CenterCrop(224))',
} as const satisfies OptionSpec;
export const RESUME = {
  name: 'resume',
  type: 'bool',
  help: 'skip images already finished in --out with the same options',
} as const satisfies OptionSpec;

/** The shard group (lib/cli/shard.ts). */
export const SHARD = {
  name: 'shard',
  type: 'string',
  metavar: 'I/N',
  help: 'process shard I of N (0-based) into OUT/shard-I-of-N/; `featscope merge` joins them',
} as const satisfies OptionSpec;
export const SHARDS = {
  name: 'shards',
  type: 'int',
  metavar: 'N',
  help: 'the shard count, with the index from $JOB_COMPLETION_INDEX (Kubernetes Indexed Job);\nin a Slurm array, $SLURM_ARRAY_TASK_ID/COUNT are used without either option',
} as const satisfies OptionSpec;
export const SHARD_GROUP = [SHARD, SHARDS] as const;

// ---- The commands.

export const INFO_COMMAND = {
  name: 'info',
  synopsis: 'info',
  summary: `versions of featscope, Node, libtorch and CUDA; the GPUs seen`,
  usage: `info [--json]`,
  description: `Print featscope, Node, libtorch and CUDA versions, the GPUs libtorch sees, and the model the
other commands use by default (with whether its weights are trained).`,
  helpColumn: 21,
  positionals: false,
  jobs: true,
  options: [
    withHelp(MODEL, 'the model to describe (default: $FEATSCOPE_MODEL, else models/resnet18.pt)'),
    withHelp(JSON_OUT, 'machine-readable output'),
    THREADS,
    HELP,
  ],
  epilogue: ``,
} as const satisfies CommandSpec;

export const DOCTOR_COMMAND = {
  name: 'doctor',
  synopsis: 'doctor',
  summary: `the libtorch found and where from, the prebuilt addon chosen or why none`,
  usage: `doctor [--json]`,
  description: `Say which libtorch featscope finds and where from (LIBTORCH, a Python's torch, the system), its
version, C++ ABI and CUDA, the prebuilt addon chosen for it or why none fits, whether the addon
loads and the GPUs it sees, sharp, Node, and the torch of Python if there is one.
Exit status 0 when the addon loads, 1 when it does not.`,
  helpColumn: 15,
  positionals: false,
  options: [withHelp(JSON_OUT, 'machine-readable output'), HELP],
  epilogue: ``,
} as const satisfies CommandSpec;

export const LAYERS_COMMAND = {
  name: 'layers',
  synopsis: 'layers',
  summary: `the model's layers with their types and output shapes`,
  usage: `layers [options]`,
  description: `List the model's layers in call order: name, type, how often one forward calls it, and the output
shape of each call for one image. Names with #k pick one call of a module called several times.
A module called inside a loop shows the calls one forward of that input made, marked (loop).`,
  helpColumn: 21,
  positionals: false,
  jobs: true,
  options: [
    MODEL,
    {
      name: 'size',
      type: 'int',
      metavar: 'N',
      help: "input height and width for the shapes (default: the model's, else 224)",
    },
    DEVICE,
    THREADS,
    withHelp(JSON_OUT, 'machine-readable output'),
    HELP,
  ],
  epilogue: ``,
} as const satisfies CommandSpec;

export const RENDER_COMMAND = {
  name: 'render',
  synopsis: 'render <images>...',
  summary: `PNG grids (and overlays) per image and layer, manifest.json, report.html`,
  usage: `render <image|folder|glob>... [options]`,
  description: `Render feature maps of one or more layers as PNG channel grids (and heatmap overlays), with a
manifest.json and, with --report, a self-contained report.html.

Inputs: image files, folders (searched recursively for .jpg .jpeg .png .webp .gif .tif .avif)
and globs ("photos/**/*.jpg", quoted so the shell leaves it alone). Video clips (.mp4 .mov .mkv
.webm .avi ...) are decoded with ffmpeg (Debian's ffmpeg package) and render to animated WebPs.`,
  helpColumn: 26,
  positionals: true,
  inputs: true,
  jobs: true,
  cluster: true,
  options: [
    ...MODEL_GROUP,
    withHelp(LAYERS, 'layers to show (default: layer1.0.conv1; `featscope layers` lists them)'),
    {
      name: 'channels',
      short: 'c',
      type: 'string',
      metavar: 'SEL',
      help: '16 (the first 16, default) | top:16 (highest max; top:16:mean) | 3,7,9',
    },
    {
      name: 'colormap',
      type: 'string',
      metavar: 'NAME',
      help: 'grid colours: viridis (default), magma, inferno, plasma, cividis, turbo, gray',
    },
    {
      name: 'normalize',
      type: 'string',
      metavar: 'MODE',
      help: 'grid colours: channel (default: each cell its own min..max) | shared (one\nscale for all shown channels, in the title and a colour bar in real values)',
    },
    { name: 'overlay', type: 'bool', help: "also write the layer's mean activation over the photo, with a colour bar" },
    { name: 'fps', type: 'int', metavar: 'N', help: 'video clips: sample N frames per second (default: every frame)' },
    { name: 'frames', type: 'bool', help: "video clips: keep each frame's PNGs and maps (.npy) in DIR/<clip>/frames/" },
    ...REPORT_GROUP,
    RESIZE,
    DEVICE,
    DEVICES,
    THREADS,
    withHelp(BATCH, 'images per forward (default 32); memory stays bounded by it'),
    OUT,
    ...SHARD_GROUP,
    withHelp(RESUME, 'skip images already finished in --out with the same options'),
    withHelp(JSON_OUT, 'print a JSON summary on stdout (progress stays on stderr)'),
    HELP,
  ],
  epilogue: `Output: DIR/<image>/input.png, DIR/<image>/<layer>.png, DIR/<image>/<layer>.overlay.png,
DIR/manifest.json, DIR/report.html. A clip: DIR/<clip>/<layer>.webp (animated grid),
<layer>.overlay.webp, <layer>.means.png (channel means per frame); --resume resumes by frame.

Exit status: 0 all done, 1 some inputs failed (listed at the end), 2 usage error,
130 interrupted (Ctrl-C; finished files are complete, rerun with --resume).

Example:
  featscope render photo.jpg --layers layer1.0.conv1,layer4 --overlay --report --out out/
`,
} as const satisfies CommandSpec;

export const EXPORT_COMMAND = {
  name: 'export',
  synopsis: 'export <images>...',
  summary: `layer outputs as .npy files for numpy`,
  usage: `export <image|folder|glob>... [options]`,
  description: `Save layer outputs as NumPy .npy files (float32, C order): one file per image and layer, with
the capture's shape for that image ([1, C, H, W] for a convolutional layer, [1, 1000] for fc),
plus manifest.json. Load them with numpy.load(path).`,
  helpColumn: 26,
  positionals: true,
  inputs: true,
  jobs: true,
  cluster: true,
  options: [
    ...MODEL_GROUP,
    withHelp(LAYERS, 'layers to save (default: layer1.0.conv1); any layer, not only conv maps'),
    RESIZE,
    DEVICE,
    DEVICES,
    THREADS,
    withHelp(BATCH, 'images per forward (default 32)'),
    OUT,
    ...SHARD_GROUP,
    withHelp(RESUME, 'skip images already exported in --out with the same options'),
    withHelp(JSON_OUT, 'print a JSON summary on stdout'),
    HELP,
  ],
  epilogue: `Output: DIR/<image>/<layer>.npy and DIR/manifest.json (files, shapes, dtype, model metadata).
Exit status: 0 all done, 1 some inputs failed, 2 usage error, 130 interrupted.

Example:
  featscope export photo.jpg --layers layer1.0.conv1,layer4,fc --out features/
  python3 -c "import numpy; print(numpy.load('features/photo/layer4.npy').shape)"
`,
} as const satisfies CommandSpec;

export const PREDICT_COMMAND = {
  name: 'predict',
  synopsis: 'predict <images>...',
  summary: `a segmentation/detection model's mask or boxes; --eigencam LAYER: EigenCAM`,
  usage: `predict <image>... --model FILE [options]`,
  description: `A segmentation or detection model's prediction drawn over each photo: the argmax class per pixel
(Pascal VOC palette, legend with the classes present) or the highest-scoring boxes with their
class names and scores (Mask R-CNN: each box's mask tinted where it is >= 0.5; Keypoint R-CNN:
its keypoints as dots); and, with --eigencam LAYER, EigenCAM at that layer (the first principal
component of its channels, projected on positions: no gradients, any model, .pt2 too; a part
of a dict output is named layer:key, e.g. backbone.fpn:0). Models from scripts/export-model.py
--arch deeplabv3_resnet50|fcn_resnet50|retinanet_resnet50_fpn|... are UNTRAINED: the banner says
so, and their masks and boxes are noise.`,
  helpColumn: 23,
  positionals: true,
  inputs: true,
  options: [
    ...MODEL_GROUP,
    { name: 'top', type: 'int', metavar: 'K', help: 'detection: boxes drawn, highest scores first (default 10)' },
    {
      name: 'eigencam',
      type: 'string',
      metavar: 'LAYER',
      help: 'also draw EigenCAM at LAYER (e.g. backbone.fpn:0, backbone:out, layer4);\nwith a classifier, --eigencam alone is drawn',
    },
    DEVICE,
    THREADS,
    OUT,
    withHelp(JSON_OUT, 'print the results as JSON on stdout'),
    HELP,
  ],
  epilogue: `Output: DIR/<image>.prediction.png, DIR/<image>.eigencam-<layer>.png (--eigencam).

Example:
  featscope predict street.jpg --model retinanet.pt --eigencam backbone.fpn:0 --out out/
`,
} as const satisfies CommandSpec;

export const GRADCAM_COMMAND = {
  name: 'gradcam',
  synopsis: 'gradcam <images>...',
  summary: `Grad-CAM overlays (class evidence at a layer), --flow for gradient flow,
--saliency gradient|smoothgrad|ig for input saliency maps`,
  usage: `gradcam <image|folder|glob>... [options]`,
  description: `Grad-CAM: where in the photo the evidence for a class lies, at one layer. Gradients of the class
score flow back to the layer's output through the TorchScript graph; the map ReLU(Σ_k α_k A_k)
(α_k: spatial mean of channel k's gradient) is normalised to its maximum and drawn over the photo.`,
  helpColumn: 23,
  positionals: true,
  inputs: true,
  jobs: true,
  options: [
    ...MODEL_GROUP,
    {
      name: 'layer',
      short: 'l',
      type: 'string',
      metavar: 'NAME',
      help: 'layer with [N, C, H, W] output (default: layer4)',
    },
    {
      name: 'class',
      type: 'list',
      metavar: 'N[,N]',
      help:
        "target class (one for all, or one per image); default: each image's top-1\n" +
        '(a segmentation model: the class logit summed over its predicted mask;\n' +
        'default: the class predicted on the most pixels; a detection model takes\n' +
        "no class: its top detection's score is the target, its box drawn)",
    },
    { name: 'top', type: 'int', metavar: 'K', help: 'predictions listed under the picture (default 3)' },
    { name: 'colormap', type: 'string', metavar: 'NAME', help: 'heatmap colours (default turbo)' },
    { name: 'flow', type: 'bool', help: 'also chart the gradient flow (per-layer and per-weight gradient norms)' },
    {
      name: 'saliency',
      type: 'string',
      metavar: 'M',
      help: 'also draw an input saliency map: gradient | smoothgrad | ig\n(integrated gradients, from the mean colour)',
    },
    {
      name: 'samples',
      type: 'int',
      metavar: 'N',
      help: 'noisy copies (smoothgrad, default 16) or path steps (ig, default 32)',
    },
    {
      name: 'metrics',
      type: 'list',
      metavar: 'LIST',
      help: 'deletion,insertion (or one): faithfulness curves and AUCs of each map\n(RISE; one input row of pixels per step); drawn in DIR/<image>.metrics.png',
    },
    {
      name: 'sanity',
      type: 'bool',
      help: 'randomisation sanity check (Adebayo et al. 2018): permute the weights of\none more layer at a time from the output, recompute each map, report the\nSpearman correlation with the original (DIR/<image>.sanity.png)',
    },
    ...REPORT_GROUP,
    RESIZE,
    DEVICE,
    THREADS,
    withHelp(BATCH, 'images per forward and backward (default 8)'),
    OUT,
    withHelp(RESUME, 'skip images already finished in --out with the same model and options'),
    withHelp(JSON_OUT, 'print the results as JSON on stdout (progress stays on stderr)'),
    HELP,
  ],
  epilogue: `Output: DIR/<image>.gradcam-<layer>.png, DIR/<image>.flow.png (--flow),
DIR/<image>.saliency-<M>.png (--saliency), DIR/gradcam.json, DIR/report.html;
DIR/.featscope/gradcam/<image>.json marks each finished image for --resume.

Exit status: 0 all done, 1 some images failed (listed at the end, each with its [CODE]),
2 usage error, 130 interrupted (Ctrl-C; finished files are complete, rerun with --resume).

Example:
  featscope gradcam photo.jpg --layer layer4 --flow --report --out out/
`,
} as const satisfies CommandSpec;

export const ATTENTION_COMMAND = {
  name: 'attention',
  synopsis: 'attention <images>...',
  summary: `ViT attention: rollout and per-head class-token attention overlays`,
  usage: `attention <image|folder|glob>... [options]`,
  description: `Vision Transformer attention. featscope captures the attention weights of each
nn.MultiheadAttention call ([N, heads, L, L], named <module>.weights) by rewriting the TorchScript
graph: a second call with need_weights=True, average_attn_weights=False; the model's own output
is unchanged. Per image it draws:
  - attention rollout (Abnar & Zuidema 2020): each layer's weights averaged over heads (the mean),
    0.5·A + 0.5·I for the residual path, rows normalised, multiplied over the layers from the
    first up to the last of --layers; the class token's row over the patches, on the patch grid;
  - for each of --layers: the class token's attention to every patch, one map per head.`,
  helpColumn: 23,
  positionals: true,
  inputs: true,
  options: [
    withHelp(MODEL, 'a ViT exported by scripts/export-model.py (--arch vit_b_16, vit_small, ...)'),
    MEAN,
    STD,
    SIZE,
    LABELS,
    withHelp(
      LAYERS,
      'attention layers: <module>.weights or the MultiheadAttention module\n(default: the last one; `featscope layers` lists them)',
    ),
    { name: 'top', type: 'int', metavar: 'K', help: 'predictions listed under the rollout (default 3)' },
    { name: 'colormap', type: 'string', metavar: 'NAME', help: 'heatmap colours (default turbo)' },
    ...REPORT_GROUP,
    RESIZE,
    DEVICE,
    THREADS,
    withHelp(BATCH, 'images per forward (default 8)'),
    OUT,
    withHelp(RESUME, 'skip images already finished in --out with the same model and options'),
    withHelp(JSON_OUT, 'print the results as JSON on stdout (progress stays on stderr)'),
    HELP,
  ],
  epilogue: `Output: DIR/<image>.attention-rollout.png, DIR/<image>.attention-<layer>.png (heads),
DIR/attention.json, DIR/report.html; DIR/.featscope/attention/<image>.json for --resume.

Exit status: 0 all done, 1 some images failed (listed at the end, each with its [CODE]),
2 usage error, 130 interrupted (Ctrl-C; finished files are complete, rerun with --resume).

Example:
  featscope attention photo.jpg -m models/vit_b_16.pt --layers encoder.layers.encoder_layer_11.self_attention --report
`,
} as const satisfies CommandSpec;

export const WEIGHTS_COMMAND = {
  name: 'weights',
  synopsis: 'weights',
  summary: `weight histograms and statistics, first-conv filters as RGB tiles`,
  usage: `weights [options]`,
  description: `Weight distributions: a histogram of every weight tensor with its mean, standard deviation and
share near zero (|w| < 0.001 · max|w|), and the first convolution's filters as RGB tiles.`,
  helpColumn: 23,
  positionals: false,
  jobs: true,
  options: [
    MODEL,
    withHelp(LAYERS, 'only parameters of these modules (and their submodules), e.g. layer1,fc'),
    { name: 'bins', type: 'int', metavar: 'N', help: 'bins per histogram (default 50)' },
    { name: 'all', type: 'bool', help: 'draw biases and BatchNorm scales too (default: conv and linear weights)' },
    ...REPORT_GROUP,
    DEVICE,
    THREADS,
    OUT,
    withHelp(JSON_OUT, 'print the statistics as JSON on stdout'),
    HELP,
  ],
  epilogue: `Output: DIR/weights.png, DIR/first-conv-filters.png, DIR/weights.json, DIR/report.html.

Example:
  featscope weights --report --out out/
`,
} as const satisfies CommandSpec;

export const ATTACK_COMMAND = {
  name: 'attack',
  synopsis: 'attack <images>...',
  summary: `FGSM / PGD: predictions before and after, per-layer divergence`,
  usage: `attack <image|folder|glob>... [options]`,
  description: `Adversarial paths: perturb each image against a class (default: its own prediction) with FGSM or
PGD, and show the prediction before and after, how far each layer's output moves (relative L2),
and the feature maps of the layer that moves most, clean beside attacked.

ε and the step are in pixel units of [0, 1] (8/255 ≈ 0.031), applied per channel in the model's
normalised input space as ε / std; pixels stay within [0, 1].`,
  helpColumn: 23,
  positionals: true,
  inputs: true,
  jobs: true,
  options: [
    ...MODEL_GROUP,
    { name: 'method', type: 'string', metavar: 'M', help: 'fgsm | pgd (default pgd)' },
    {
      name: 'epsilon',
      type: 'number',
      metavar: 'E',
      help: 'largest change per pixel, e.g. 8/255 or 0.03 (default 8/255)',
    },
    { name: 'step', type: 'number', metavar: 'S', help: 'PGD step size (default ε/4)' },
    { name: 'steps', type: 'int', metavar: 'K', help: 'PGD steps (default 10)' },
    {
      name: 'class',
      type: 'list',
      metavar: 'N[,N]',
      help: 'class to attack (one for all, or one per image); default: the prediction',
    },
    withHelp(LAYERS, 'layers to compare (default: every conv and linear layer)'),
    ...REPORT_GROUP,
    RESIZE,
    DEVICE,
    THREADS,
    OUT,
    withHelp(RESUME, 'skip images already finished in --out with the same model and options'),
    withHelp(JSON_OUT, 'print the results as JSON on stdout (progress stays on stderr)'),
    HELP,
  ],
  epilogue: `Output per image: DIR/<image>.adversarial.png (the attacked model input), <image>.divergence.png,
<image>.grids.png; DIR/attack.json, DIR/report.html; DIR/.featscope/attack/<image>.json marks each
finished image for --resume.

Exit status: 0 all done, 1 some images failed (listed at the end, each with its [CODE]),
2 usage error, 130 interrupted (Ctrl-C; finished files are complete, rerun with --resume).

Example:
  featscope attack photo.jpg --method pgd --epsilon 4/255 --steps 10 --report --out out/
`,
} as const satisfies CommandSpec;

export const STATS_COMMAND = {
  name: 'stats',
  synopsis: 'stats <images|folder>...',
  summary: `per-channel activation statistics, dead channels and top images over many images`,
  usage: `stats <image|folder|glob>... [options]`,
  description: `Activation statistics over many images: for every channel of the given layers, the mean over
images of its spatial mean, the p50/p90/p99 of those per-image means (exact up to 1,000 images,
then from a mergeable sketch, within 1%), its largest activation, the share of images where it
never fires, and the dead channels that never fire on any image (candidates for pruning), and
each channel's top images ("dataset examples": the images where it fires most, and where).
Images are read in batches; memory does not grow with the folder.`,
  helpColumn: 23,
  positionals: true,
  inputs: true,
  jobs: true,
  cluster: true,
  options: [
    ...MODEL_GROUP,
    withHelp(LAYERS, 'layers (default: relu,layer1,layer2,layer3,layer4)'),
    withHelp(BATCH, 'images per forward (default 16)'),
    {
      name: 'examples',
      type: 'int',
      metavar: 'N',
      help: 'per layer, draw the top images of its N strongest channels (default 8, 0: none)',
    },
    { name: 'top-images', type: 'int', metavar: 'K', help: 'top images kept per channel (default 5)' },
    {
      name: 'exact-limit',
      type: 'int',
      metavar: 'N',
      help: 'percentiles exact up to N images (default 1000), then from the sketch\n(each order statistic within 1%); 0: always the sketch',
    },
    ...REPORT_GROUP,
    RESIZE,
    DEVICE,
    THREADS,
    OUT,
    ...SHARD_GROUP,
    withHelp(JSON_OUT, 'print the per-layer summary as JSON on stdout'),
    HELP,
  ],
  epilogue: `Output: DIR/stats.json (per-channel columns and top images), DIR/stats.png,
DIR/examples-<layer>.png, DIR/report.html.

Example:
  featscope stats photos/ --layers layer3,layer4 --report --out out/
`,
} as const satisfies CommandSpec;

export const CONCEPTS_COMMAND = {
  name: 'concepts',
  synopsis: 'concepts <images|folder>...',
  summary: `k concepts of a layer over many images (NMF), per-image concept maps`,
  usage: `concepts <image|folder|glob>... --layer L [options]`,
  description: `Concepts over a folder: non-negative matrix factorisation of a layer's activations (rows: image x
position, columns: channels; values below 0 set to 0) into k concepts, A ≈ U W. W (k x channels)
is fitted on the folder (scikit-learn's NMF: init nndsvda, coordinate descent, fixed iterations,
seeded); U, each concept's weight at each position, is then solved exactly (non-negative least
squares) for every image with W fixed. Pictures: each image's positions in the colour of their
dominant concept, and each concept's top images with its heatmap.`,
  helpColumn: 23,
  positionals: true,
  inputs: true,
  options: [
    ...MODEL_GROUP,
    { name: 'layer', short: 'l', type: 'string', metavar: 'L', help: 'the layer (default layer4)' },
    { name: 'k', short: 'k', type: 'int', metavar: 'K', help: 'concepts (default 8)' },
    { name: 'iterations', type: 'int', metavar: 'N', help: 'NMF iterations (default 200)' },
    {
      name: 'seed',
      type: 'int',
      metavar: 'S',
      help: 'seed of the image/row samples and the SVD in the init (default 0)',
    },
    {
      name: 'fit-images',
      type: 'int',
      metavar: 'N',
      help: 'fit W on a seeded sample of at most N images of all inputs (default 256)',
    },
    {
      name: 'fit-rows',
      type: 'int',
      metavar: 'N',
      help: 'and at most N rows (image x position) of them, a seeded sample past it\n(default 20000; memory about N x channels x 4 bytes)',
    },
    {
      name: 'concepts',
      type: 'path',
      metavar: 'FILE',
      help: "take W from a .npy (k x channels, e.g. an earlier run's concepts-W.npy)\ninstead of fitting it",
    },
    { name: 'top-images', type: 'int', metavar: 'N', help: 'top images drawn per concept (default 6)' },
    withHelp(BATCH, 'images per forward (default 16)'),
    ...REPORT_GROUP,
    RESIZE,
    DEVICE,
    THREADS,
    OUT,
    ...SHARD_GROUP,
    withHelp(JSON_OUT, 'print the summary as JSON on stdout'),
    HELP,
  ],
  epilogue: `Sharded, each shard fits W on the same seeded sample of all inputs (it reads those images), or
takes --concepts W.npy; \`featscope merge\` checks that the shards' W are identical.

Output: DIR/concepts.json, DIR/concepts-W.npy (k x channels, float32), DIR/concept-<t>.png (top
images), DIR/<image>.concepts.png (per image), DIR/report.html.

Example:
  featscope concepts photos/ --layer layer4 --k 8 --report --out out/
`,
} as const satisfies CommandSpec;

export const MAXIMIZE_COMMAND = {
  name: 'maximize',
  synopsis: 'maximize --layer L',
  summary: `feature visualisation: the input that most raises a channel's activation`,
  usage: `maximize --layer NAME [options]`,
  description: `Feature visualisation: the input picture that most raises a channel's mean activation (or the
whole layer's), found by gradient ascent from faint noise with jitter, blur and decay so that it
is not adversarial noise. Each step is one forward and backward (fast on a GPU; about 0.1 s per
step at 224 px on a CPU). Meaningful only with trained weights.`,
  helpColumn: 23,
  positionals: false,
  jobs: true,
  options: [
    MODEL,
    {
      name: 'layer',
      short: 'l',
      type: 'string',
      metavar: 'NAME',
      help: 'layer called once per forward, e.g. layer3 or layer4.1.conv2 (required)',
    },
    {
      name: 'channels',
      short: 'c',
      type: 'list',
      metavar: 'A,B',
      help: "channels, one picture each, optimised together in batches of --batch\n(default: the whole layer's mean)",
    },
    withHelp(BATCH, 'channels per forward and backward (default 16)'),
    { name: 'steps', type: 'int', metavar: 'N', help: 'gradient steps (default 128)' },
    { name: 'size', type: 'int', metavar: 'N', help: "picture side in pixels (default: the model's input size)" },
    {
      name: 'lr',
      type: 'number',
      metavar: 'X',
      help: 'mean change per step, in normalised input units (default 0.05)',
    },
    { name: 'seed', type: 'int', metavar: 'N', help: 'seed of the start noise and the jitter (default 0)' },
    ...REPORT_GROUP,
    DEVICE,
    THREADS,
    OUT,
    withHelp(JSON_OUT, 'print the results as JSON on stdout'),
    HELP,
  ],
  epilogue: `Output: DIR/maximize-<layer>[-c<channel>].png, DIR/maximize.json (objective per step).

Example:
  featscope maximize --layer layer3 --channels 12,40 --steps 256 --out out/
`,
} as const satisfies CommandSpec;

export const SIMILARITY_COMMAND = {
  name: 'similarity',
  synopsis: 'similarity <images>...',
  summary: `linear CKA between layers, of one model or of two (before/after fine-tuning)`,
  usage: `similarity <image|folder|glob>... [options]`,
  description: `Layer similarity: linear CKA (Kornblith et al. 2019) between layers, on each image's channel
means at each layer. 1: the same representation up to rotation and scale; near 0: unrelated.
Compare the layers of one model with each other, or with another model's (a checkpoint before
and after fine-tuning, another architecture) on the same images.`,
  helpColumn: 28,
  positionals: true,
  inputs: true,
  jobs: true,
  options: [
    ...MODEL_GROUP,
    withHelp(LAYERS, 'its layers (default: layer1,layer2,layer3,layer4)'),
    {
      name: 'other-model',
      type: 'path',
      metavar: 'FILE',
      help: 'compare with this model (default: the model with itself)',
    },
    { name: 'other-layers', type: 'list', metavar: 'A,B', help: 'its layers (default: the same names as --layers)' },
    withHelp(BATCH, 'images per forward (default 16)'),
    RESIZE,
    ...REPORT_GROUP,
    DEVICE,
    THREADS,
    OUT,
    ...SHARD_GROUP,
    withHelp(JSON_OUT, 'print the matrix as JSON on stdout'),
    HELP,
  ],
  epilogue: `Output: DIR/similarity.png, DIR/similarity.json, DIR/report.html.

Example:
  featscope similarity photos/ --other-model finetuned.pt --out out/
`,
} as const satisfies CommandSpec;

export const VIEW_COMMAND = {
  name: 'view',
  synopsis: 'view [images|folders]...',
  summary: `interactive viewer in the browser (local server with a token): layers,
channels, overlays, Grad-CAM, compare two images or two models`,
  usage: `view [image|folder|glob]... [options]`,
  description: `An interactive viewer in the browser: the images (thumbnails, upload), the model's layer tree, a
layer's channels (paged, sorted by max or mean), one channel full size with a colour bar in real
values, the layer's mean overlay, Grad-CAM and saliency for the predicted or a chosen class,
Grad-CAM with its deletion/insertion curves, attention rollout and the class token's attention per
head (ViTs), concepts over the session's images, and compare mode (two images, or one image through
two models): per-layer cosine distance and relative L2, both maps of a channel and their difference.`,
  helpColumn: 23,
  positionals: true,
  options: [
    {
      ...MODEL,
      help: 'TorchScript model (default: $FEATSCOPE_MODEL, else models/resnet18.pt);\ngive it twice to compare two models (e.g. before and after fine-tuning)',
      multiple: true,
    },
    { name: 'port', type: 'int', metavar: 'N', help: 'port (default 0: a free one)' },
    {
      name: 'host',
      type: 'string',
      metavar: 'ADDR',
      help: 'address to listen on (default 127.0.0.1; anything else is reachable from\nother machines, still behind the token)',
    },
    DEVICE,
    { name: 'upload-limit', type: 'int', metavar: 'MB', help: 'largest upload in MiB (default 20)' },
    HELP,
  ],
  epilogue: `The server prints its URL with a random token; every request needs it (401 otherwise). From a
laptop, forward the port over SSH with the printed \`ssh -L\` line, then open the URL there.
Ctrl-C stops the server.

Example:
  featscope view photos/ --model models/resnet18.pt
`,
} as const satisfies CommandSpec;

export const MERGE_COMMAND = {
  name: 'merge',
  synopsis: 'merge <shard folders>...',
  summary: `join the outputs of sharded runs (--shard I/N): render, export, stats, similarity,
concepts`,
  usage: `merge <shard folder | folder of shard-*-of-*>... --out DIR [options]`,
  description: `Join the outputs of a sharded run (render, export, stats or similarity with --shard I/N, --shards N or a
Slurm array) into one. Every shard 0..N-1 must be there, each once.

  stats           stats.json, stats.png, the example pictures and (if the shards were run with
                  --report) report.html over all images, equal to one run over the folder:
                  counts, maxima, dead channels, top images and p50/p90/p99 exactly, means to
                  float64 rounding. The pictures need the shards' model and the top images at
                  the paths the shards saw them
  similarity      similarity.json and similarity.png: CKA over all images' pooled features,
                  stacked in the run's image order, as one run computes it
  concepts        concepts.json, concepts-W.npy, the concepts' top-image pictures (and report.html):
                  one W (the shards' must be identical), every image's concept shares, the top
                  images over all shards; the per-image pictures stay in the shard folders
  render, export  one manifest.json over all shards (file paths relative to DIR) and, for
                  render, one report.html (with report_files/ if the shards used --report-assets linked)`,
  helpColumn: 20,
  positionals: true,
  inputs: true,
  jobs: true,
  options: [
    withHelp(OUT, 'where to write (default: the folder holding the shards)'),
    withHelp(JSON_OUT, 'print a JSON summary on stdout'),
    HELP,
  ],
  epilogue: `Example (4 pods wrote out/shard-0-of-4 ... out/shard-3-of-4):
  featscope merge out/ --out out/
`,
} as const satisfies CommandSpec;

export const K8S_JOB_COMMAND = {
  name: 'k8s-job',
  synopsis: 'k8s-job',
  summary: `a Kubernetes Indexed Job for a sharded run, and its merge`,
  usage: `k8s-job --shards N --data-claim PVC --out-claim PVC [options] -- <render|export|stats> <inputs>... [its options]`,
  description: `Write a Kubernetes Indexed Job (N pods, each one shard of the inputs) and the Job that merges
their outputs (for stats with the data mounted too: it draws the example pictures), for the
image built from Dockerfile.cuda. Paths in the featscope command are the
pods' paths: the inputs under --data-path, --out under --out-path.`,
  helpColumn: 26,
  positionals: true,
  options: [
    withHelp(SHARDS, 'shards = completions (required)'),
    { name: 'parallelism', type: 'int', metavar: 'P', help: 'pods at a time (default: N)' },
    {
      name: 'image',
      type: 'string',
      metavar: 'IMAGE',
      help: 'container image (default featscope:cuda, built from Dockerfile.cuda)',
    },
    { name: 'gpus', type: 'int', metavar: 'G', help: 'GPUs per pod, nvidia.com/gpu (default 1; 0 for CPU pods)' },
    {
      name: 'memory',
      type: 'string',
      metavar: 'SIZE',
      help: 'memory request and limit per pod, e.g. 16Gi (default: none)',
    },
    {
      name: 'data-claim',
      type: 'string',
      metavar: 'PVC',
      help: 'PersistentVolumeClaim with the images, mounted read-only (required)',
    },
    { name: 'data-path', type: 'path', metavar: 'DIR', help: 'its mount path (default /data)' },
    { name: 'out-claim', type: 'string', metavar: 'PVC', help: 'PersistentVolumeClaim for the outputs (required)' },
    { name: 'out-path', type: 'path', metavar: 'DIR', help: 'its mount path (default /out)' },
    {
      name: 'name',
      type: 'string',
      metavar: 'NAME',
      help: 'Job name (default featscope-<command>); the merge Job is NAME-merge',
    },
    { name: 'namespace', type: 'string', metavar: 'NS', help: "namespace (default: kubectl's)" },
    { name: 'retries', type: 'int', metavar: 'K', help: 'retries per shard index (backoffLimitPerIndex, default 3)' },
    { ...OUT, metavar: 'FILE', help: 'the Job file (default NAME.yaml); the merge Job goes to NAME-merge.yaml' },
    HELP,
  ],
  epilogue: `Then:
  kubectl apply -f NAME.yaml
  kubectl wait --for=condition=complete --timeout=48h job/NAME
  kubectl apply -f NAME-merge.yaml

Example:
  featscope k8s-job --shards 16 --data-claim photos --out-claim results -- \\
    stats /data/photos --layers layer3,layer4 --out /out/stats
`,
} as const satisfies CommandSpec;

export const SLURM_JOB_COMMAND = {
  name: 'slurm-job',
  synopsis: 'slurm-job',
  summary: `an sbatch array script for a sharded run, and its merge`,
  usage: `slurm-job --shards N [options] -- <render|export|stats> <inputs>... [its options]`,
  description: `Write an sbatch array script (N tasks, each one shard of the inputs: featscope reads
SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT) and the merge script to run after it.`,
  helpColumn: 26,
  positionals: true,
  options: [
    withHelp(SHARDS, 'array tasks (required)'),
    { name: 'parallelism', type: 'int', metavar: 'P', help: 'tasks at a time (%P on --array; default: all)' },
    { name: 'gpus', type: 'int', metavar: 'G', help: 'GPUs per task (--gres=gpu:G; default 1, 0 for none)' },
    { name: 'cpus', type: 'int', metavar: 'C', help: 'CPUs per task (default 4)' },
    { name: 'memory', type: 'string', metavar: 'SIZE', help: "memory per task, e.g. 16G (default: the partition's)" },
    { name: 'time', type: 'string', metavar: 'T', help: 'time limit per task, e.g. 04:00:00 (default 24:00:00)' },
    { name: 'partition', type: 'string', metavar: 'P', help: "partition (default: the cluster's)" },
    {
      name: 'sif',
      type: 'path',
      metavar: 'FILE',
      help: 'run in this Apptainer image (apptainer build featscope.sif\ndocker-daemon://featscope:cuda), with --bind for --bind-paths; default:\nfeatscope from PATH',
    },
    {
      name: 'bind-paths',
      type: 'list',
      metavar: 'A,B',
      help: "folders to bind into the image (default: the inputs' and --out's)",
    },
    { name: 'name', type: 'string', metavar: 'NAME', help: 'job name (default featscope-<command>)' },
    { ...OUT, metavar: 'FILE', help: 'the array script (default NAME.sbatch); the merge script is NAME-merge.sbatch' },
    HELP,
  ],
  epilogue: `Then:
  jid=$(sbatch --parsable NAME.sbatch) && sbatch --dependency=afterok:$jid NAME-merge.sbatch
`,
} as const satisfies CommandSpec;

export const RUN_COMMAND = {
  name: 'run',
  synopsis: 'run JOBFILE',
  summary: `the jobs of a YAML or JSON file in turn (any command's options; --resume)`,
  usage: `run JOBFILE [--resume] [--dry-run]`,
  description: `Run the jobs of a YAML or JSON file, one after the other: each job is a command with its options,
written as on the command line without the dashes.

  # blog.yaml
  defaults:                 # options every job gets unless it sets them
    model: models/resnet18.pt
    device: cuda
  jobs:
    - command: render
      inputs: photos/       # a path, a glob, or a list of them
      layers: [layer1.0.conv1, layer2, layer3, layer4]
      overlay: true
      report: true
      out: out/render
    - command: stats
      inputs: photos/
      out: out/stats

A file may also be a bare list of jobs, or one job. Relative paths (inputs, --model, --out,
--labels, ...) are relative to the file's folder; a job without \`out\` writes to featscope-out/
there. Lists become comma lists (layers: [a, b] is --layers a,b); true switches a flag on.`,
  helpColumn: 20,
  positionals: true,
  options: [
    withHelp(
      RESUME,
      'skip the jobs that finished (exit 0) with the same options in an earlier run of\nthis file, and resume the others (render and export skip finished images)',
    ),
    { name: 'dry-run', type: 'bool', help: "check the file and print each job's command line; run nothing" },
    HELP,
  ],
  epilogue: `Before the first job starts, every job is checked: an unknown command or option is refused with
the closest names. Progress is each command's own; between jobs a line says which job runs.
The run's state is kept in .<file name>.state.json next to the file.

Exit status: 0 all jobs done; 1 a job had failed inputs or errors (the later jobs still ran);
2 a usage error (the file, or a job's options: the run stops there); 130 interrupted (Ctrl-C;
rerun with --resume).
`,
} as const satisfies CommandSpec;

/** Every command, in the order of `featscope --help`. */
export const COMMAND_SPECS = [
  INFO_COMMAND,
  DOCTOR_COMMAND,
  LAYERS_COMMAND,
  RENDER_COMMAND,
  EXPORT_COMMAND,
  PREDICT_COMMAND,
  GRADCAM_COMMAND,
  ATTENTION_COMMAND,
  WEIGHTS_COMMAND,
  ATTACK_COMMAND,
  STATS_COMMAND,
  CONCEPTS_COMMAND,
  MAXIMIZE_COMMAND,
  SIMILARITY_COMMAND,
  VIEW_COMMAND,
  MERGE_COMMAND,
  K8S_JOB_COMMAND,
  SLURM_JOB_COMMAND,
  RUN_COMMAND,
] as const satisfies readonly CommandSpec[];
