import { binding, packageRoot } from './native';
import * as fs from 'fs';
import * as path from 'path';

export interface Versions {
  featscope: string;
  node: string;
  libtorch: string;
  cxx11Abi: boolean;
  cuda: { available: boolean; devices: number };
  threads: number;
  /**
   * Whether TorchScript may fuse CPU ops into NNC (LLVM) kernels: always false, because featscope
   * turns it off when it loads (libtorch builds with LLVM gave NaN gradients through it).
   */
  jitCpuFusion: boolean;
}

/** featscope, Node, libtorch and CUDA as this process sees them. */
export function versions(): Versions {
  const b = binding();
  const v = b.versions();
  const pkg = JSON.parse(fs.readFileSync(path.join(packageRoot, 'package.json'), 'utf8')) as { version: string };
  return {
    featscope: pkg.version,
    node: process.version,
    libtorch: v.libtorch,
    cxx11Abi: v.cxx11Abi,
    cuda: { available: b.cudaAvailable(), devices: b.cudaDeviceCount() },
    threads: v.threads,
    jitCpuFusion: v.jitCpuFusion,
  };
}
