/**
 * Which model a capture came from, so that pictures drawn from it through the public API carry
 * that model's weights banner (UNTRAINED for random weights) without the caller passing the
 * model again. Keyed by the capture's data array, so `{ ...capture }` keeps it.
 */
import type { ModelMetadata } from './metadata';

export interface CaptureOrigin {
  metadata: ModelMetadata;
  /** How the capture's channels were chosen on the device ("top 6 by mean", "channels 3, 7, 9"), if they were. */
  selection?: string;
}

const origin = new WeakMap<object, CaptureOrigin>();

export function markCaptureOrigin(data: object, o: CaptureOrigin): void {
  origin.set(data, o);
}

export function captureOrigin(capture: { data?: unknown } | null | undefined): CaptureOrigin | undefined {
  const data = capture?.data;
  return typeof data === 'object' && data !== null ? origin.get(data) : undefined;
}

/** The device-side selection of CaptureOptions.channels, in words. */
export function deviceSelection(channels: unknown): string | undefined {
  if (Array.isArray(channels))
    return `channels ${channels.length > 8 ? `${channels.slice(0, 8).join(', ')}, … (${channels.length})` : channels.join(', ')}`;
  if (channels && typeof channels === 'object' && 'top' in channels) {
    const { top, by } = channels as { top: number; by?: string };
    return `top ${top} by ${by ?? 'max'}`;
  }
  return undefined;
}
