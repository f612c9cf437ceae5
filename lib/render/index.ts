/** Rendering: colour maps, channel grids, overlays and layer summaries (PNG via sharp). */
export { COLORMAP_NAMES, applyColormap, colormapRGB, getColormap } from './colormaps';
export type { ColormapName } from './colormaps';
export { channelStats } from './capture';
export type { ChannelStats, FeatureMaps } from './capture';
export { rankChannels, renderChannelGrid } from './grid';
export type {
  ChannelGrid,
  ChannelGridOptions,
  FramedChannelGridOptions,
  ChannelSelection,
  GridCell,
  RankBy,
  RankOptions,
  RankedChannel,
} from './grid';
export { channelMean, renderLayerSummary, renderOverlay } from './overlay';
export type { LayerSummary, LayerSummaryOptions, Map2D, OverlayImage, OverlayOptions, RenderedImage } from './overlay';
export type { ColorInput } from './color';
export type { UpsampleMode } from './resample';
