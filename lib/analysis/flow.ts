/**
 * Gradient flow: one forward and backward for an input and a target, reporting for each layer the
 * L2 norm of its output (activation) and of the loss's gradient with respect to it, and for each
 * parameter its norm and its gradient's norm. Vanishing gradients show as a fall towards the input,
 * exploding ones as a rise.
 */
import { checkKnownKeys, invalidParameter } from '../errors';
import type { Model } from '../model';
import type { TensorInput } from '../types';
import { className, weightsOf } from './common';
import { type Bar, barChart, labelSpace } from '../render/chart';
import { BANNER_HEIGHT, weightsBanner } from '../render/frame';
import { svgDocument, svgToPng, text, MUTED } from '../render/svg';

export interface GradientFlowOptions {
  /** Layers to report; default every Conv2d and Linear layer the forward calls, in call order. */
  layers?: string[];
  /** Target class per image, one for all, or omitted for each image's top-1 prediction. */
  classes?: number | number[];
  /** 'score' (default): the sum of the target logits, as Grad-CAM; 'cross-entropy': the training loss. */
  loss?: 'score' | 'cross-entropy';
}

export interface LayerFlow {
  /** `layer` or `layer#k` for call k. */
  name: string;
  type?: string;
  shape: number[];
  /** ||A||_2 over the whole batch. */
  activationNorm: number;
  /** ||dL/dA||_2 over the whole batch. */
  gradNorm: number;
  /** mean |dL/dA|. */
  gradMeanAbs: number;
}

export interface ParameterFlow {
  name: string;
  shape: number[];
  norm: number;
  gradNorm: number;
  /** gradNorm / norm: the relative size of one plain gradient step (0 when the norm is 0). */
  ratio: number;
}

export interface GradientFlow {
  loss: 'score' | 'cross-entropy';
  lossValue: number;
  classes: { class: number; name: string }[];
  layers: LayerFlow[];
  parameters: ParameterFlow[];
  weights: { trained: boolean | undefined; text: string };
}

/** Layers with weights, in call order: the default set for gradient flow and divergence. */
export async function weightLayers(model: Model): Promise<string[]> {
  return (await model.layers()).filter((l) => l.calls > 0 && /^(Conv[123]d|Linear)$/.test(l.type)).map((l) => l.name);
}

export async function gradientFlow(
  model: Model,
  input: TensorInput,
  options: GradientFlowOptions = {},
): Promise<GradientFlow> {
  if (options === null || typeof options !== 'object')
    throw invalidParameter('gradientFlow options', 'an object', options);
  checkKnownKeys('gradientFlow', options, ['layers', 'classes', 'loss']);
  const loss = options.loss ?? 'score';
  const layers = options.layers ?? (await weightLayers(model));
  const types = new Map((await model.layers()).map((l) => [l.name, l.type]));
  const r = await model.backward(input, { layers, classes: options.classes, loss, parameterGrads: true });
  return {
    loss,
    lossValue: r.loss,
    classes: r.classes.map((c) => ({ class: c, name: className(model, c) })),
    layers: r.layers.map((l) => ({
      name: l.name,
      type: types.get(l.layer),
      shape: l.shape,
      activationNorm: l.activationNorm,
      gradNorm: l.gradNorm,
      gradMeanAbs: l.gradMeanAbs,
    })),
    parameters: r.parameters.map((p) => ({ ...p, ratio: p.norm > 0 ? p.gradNorm / p.norm : 0 })),
    weights: weightsOf(model),
  };
}

export interface FlowChartOptions {
  /** Also chart the parameters' gradient norms (weights only; biases and BatchNorm are many and small); default true. */
  parameters?: boolean;
  width?: number;
  /** The title's subject, e.g. the image name. */
  subject?: string;
}

/**
 * Two log-scale bar charts: the gradient norm at each layer's output (bars) with the activation
 * norm (dots), and the gradient norm of each weight tensor. Log axes, since norms span decades.
 */
export async function renderFlowChart(
  model: Model,
  flow: GradientFlow,
  options: FlowChartOptions = {},
): Promise<{ png: Buffer; width: number; height: number }> {
  checkKnownKeys('renderFlowChart', options, ['parameters', 'width', 'subject']);
  const width = options.width ?? Math.max(900, 40 + flow.layers.length * 34);
  const layerBars: Bar[] = flow.layers.map((l) => ({ label: l.name, value: l.gradNorm, second: l.activationNorm }));
  const paramRows = (options.parameters ?? true) ? flow.parameters.filter((p) => p.shape.length >= 2) : [];
  const paramBars: Bar[] = paramRows.map((p) => ({
    label: p.name.replace(/\.weight$/, ''),
    value: p.gradNorm,
    second: p.norm,
  }));
  const chartH = (bars: Bar[]) => 40 + 260 + labelSpace(bars, bars.length > 24 ? 10 : 11);
  const head = BANNER_HEIGHT + 58;
  const h1 = chartH(layerBars);
  const h2 = paramBars.length ? chartH(paramBars) + 16 : 0;
  const height = head + h1 + h2 + 8;
  const targets = [...new Set(flow.classes.map((c) => `${c.name} (${c.class})`))];
  const lossText =
    flow.loss === 'score' ? 'loss = sum of the target logits' : 'loss = cross-entropy summed over the batch';
  const body = [
    weightsBanner(model.metadata, width),
    text(12, BANNER_HEIGHT + 22, `Gradient flow${options.subject ? ` · ${options.subject}` : ''}`, {
      size: 16,
      weight: 'bold',
    }),
    text(
      12,
      BANNER_HEIGHT + 44,
      `target: ${targets.slice(0, 3).join(', ')}${targets.length > 3 ? `, … (${targets.length})` : ''} · ${lossText} = ${flow.lossValue.toPrecision(4)} · L2 norms over the batch, log scale`,
      { size: 12, fill: MUTED },
    ),
    barChart({
      x: 0,
      y: head,
      width,
      height: h1,
      title: 'Layer outputs: gradient norm ||dL/dA|| (bars) and activation norm ||A|| (dots)',
      yLabel: 'L2 norm (log)',
      bars: layerBars,
      log: true,
      legend: [
        ['#3b6fb6', '||dL/dA||'],
        ['dot:#1a1a1a', '||A||'],
      ],
    }),
    paramBars.length
      ? barChart({
          x: 0,
          y: head + h1 + 16,
          width,
          height: h2 - 16,
          title: 'Weight tensors: gradient norm ||dL/dW|| (bars) and weight norm ||W|| (dots)',
          yLabel: 'L2 norm (log)',
          bars: paramBars,
          log: true,
          color: '#5a9e6f',
          legend: [
            ['#5a9e6f', '||dL/dW||'],
            ['dot:#1a1a1a', '||W||'],
          ],
        })
      : '',
  ].join('');
  return { png: await svgToPng(svgDocument(width, height, body)), width, height };
}
