// PLACEHOLDER until the native backend lands (owned by the native-kernels work): reports "not built".
import type { Backend } from './backend.js';
export function loadNativeBackend(): Backend | null {
  return null;
}
export function nativeLoadError(): string | null {
  return 'the native addon is not part of this build';
}
export function nativeInfo(): { isa: string; threads: number } | null {
  return null;
}
export function setNativeThreads(_n: number): void {}
