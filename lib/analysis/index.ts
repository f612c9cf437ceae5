/** Analyses beyond feature maps: Grad-CAM overlays, input saliency, gradient flow, weight distributions, adversarial paths, folder statistics. */
export { gradCamOverlay, gradCamOverlays } from './gradcam';
export type { GradCamOverlay, GradCamOverlayOptions } from './gradcam';
export { gaussianNoise } from './random';
export { saliency, saliencyOverlays } from './saliency';
export { ckaMatrix, layerSimilarity, linearCka, pooledFeatures, renderSimilarity } from './similarity';
export type { LayerSimilarity, LayerSimilarityOptions, PooledFeatures } from './similarity';
export { featureVisualization, featureVisualizations, renderFeatureVisualization } from './featurevis';
export type { FeatureVisOptions, FeatureVisResult } from './featurevis';
export type {
  SaliencyMethod,
  SaliencyOptions,
  SaliencyOverlay,
  SaliencyOverlayOptions,
  SaliencyResult,
} from './saliency';
export { gradientFlow, renderFlowChart, weightLayers } from './flow';
export type { FlowChartOptions, GradientFlow, GradientFlowOptions, LayerFlow, ParameterFlow } from './flow';
export {
  firstConvWeight,
  histogram,
  renderFirstConvFilters,
  renderWeightHistograms,
  weightDistributions,
} from './weights';
export type {
  FirstConvFilterOptions,
  WeightDistributionOptions,
  WeightDistributions,
  WeightHistogram,
  WeightHistogramChartOptions,
} from './weights';
export { divergence, fgsm, pgd, renderAttackGrids, renderDivergenceChart } from './attack';
export type { AttackOptions, AttackResult, ImageOutcome, LayerDivergence, PathStep, PgdOptions } from './attack';
export {
  PercentileSketch,
  SKETCH_ACCURACY,
  checkLayerStatsState,
  folderStats,
  mergeStatsStates,
  percentileSorted,
  renderChannelExamples,
  renderStatsChart,
} from './stats';
export type {
  ChannelExample,
  ChannelExamplesOptions,
  ChannelExamplesPicture,
  ChannelStatistics,
  FolderStats,
  FolderStatsOptions,
  LayerStatisticsOverFolder,
  LayerStatsState,
  SketchState,
} from './stats';
export type { Prediction } from './common';
export { analysisPage, analysisReport, writeAnalysisReport } from './report';
export type { AnalysisPage, AnalysisSection } from './report';
export {
  conceptsFromWeights,
  fitConcepts,
  nmf,
  nnlsRows,
  randomizedSvd,
  renderConceptImage,
  renderConceptTop,
} from './concepts';
export type { ConceptFit, ConceptMaps, Concepts, FitConceptsOptions, NmfOptions } from './concepts';
export { eigenCam, eigenCamOf, firstComponentMap } from './eigencam';
export type { EigenCamOptions, EigenCamResult } from './eigencam';
export { predictionOverlay, eigenCamOverlay, paletteColour } from './predictions';
export type { DrawnBox, PredictionOverlay, PredictionOverlayOptions } from './predictions';
export {
  SANITY_THRESHOLD,
  cascadeLayers,
  curveAuc,
  evaluateSaliency,
  gradCamExplainer,
  mapsAtInputSize,
  pixelOrder,
  randomisationCheck,
  randomisedParameters,
  riseBlur,
  riseBlurKernel,
  saliencyExplainer,
  spearman,
} from './faithfulness';
export type {
  EvaluateSaliencyOptions,
  Explainer,
  RandomisationOptions,
  RandomisationResult,
  RandomisationStep,
  SaliencyCurve,
  SaliencyEvaluation,
  SaliencyEvaluationResult,
  SaliencyMaps,
  SaliencyMetric,
} from './faithfulness';
export { renderCurvesChart, renderSanityChart } from './faithfulness-chart';
export type { CurveSeries, SanitySeries } from './faithfulness-chart';
export {
  ATTENTION_SUFFIX,
  attentionLayers,
  attentionOverlaysOf,
  attentionRollout,
  classTokenRow,
  tokenGrid,
} from './attention';
export type { AttentionOverlay, AttentionOverlayOptions, AttentionWeights } from './attention';
