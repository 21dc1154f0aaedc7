// A hand-drawn digit made to look like an MNIST image: MNIST's digits were size-normalised to fit a
// 20x20 box (keeping their aspect ratio, anti-aliased) and centred by their centre of mass in a 28x28
// field. The same here, from any grey image (a canvas's alpha or luminance channel), so a model trained
// on MNIST sees a drawing the way it saw its training data.

/** MNIST's image side and the box the digit is scaled into. */
export const MNIST_SIDE = 28;
const DIGIT_BOX = 20;

/**
 * `ink` (height, width) row-major, 0 = background, larger = ink (any scale). Returns (28 * 28) pixels in
 * [0, 1], or null when nothing is drawn.
 */
export function mnistDigit(ink: ArrayLike<number>, width: number, height: number): Float32Array | null {
  let top = height,
    bottom = -1,
    left = width,
    right = -1,
    peak = 0;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const v = ink[y * width + x]!;
      if (v <= 0) continue;
      peak = Math.max(peak, v);
      top = Math.min(top, y);
      bottom = Math.max(bottom, y);
      left = Math.min(left, x);
      right = Math.max(right, x);
    }
  }
  if (bottom < 0) return null;
  const boxW = right - left + 1,
    boxH = bottom - top + 1;
  const scale = DIGIT_BOX / Math.max(boxW, boxH);
  const outW = Math.max(1, Math.round(boxW * scale)),
    outH = Math.max(1, Math.round(boxH * scale));
  // Area-average the bounding box down to (outH, outW): each output pixel is the mean of the source
  // pixels it covers (fractional coverage at the edges), i.e. anti-aliased like MNIST.
  const small = new Float64Array(outW * outH);
  const sx = boxW / outW,
    sy = boxH / outH;
  for (let oy = 0; oy < outH; oy++) {
    const y0 = top + oy * sy,
      y1 = y0 + sy;
    for (let ox = 0; ox < outW; ox++) {
      const x0 = left + ox * sx,
        x1 = x0 + sx;
      let sum = 0;
      for (let y = Math.floor(y0); y < Math.ceil(y1); y++) {
        const wy = Math.min(y + 1, y1) - Math.max(y, y0);
        for (let x = Math.floor(x0); x < Math.ceil(x1); x++) {
          const wx = Math.min(x + 1, x1) - Math.max(x, x0);
          sum += wx * wy * ink[y * width + x]!;
        }
      }
      small[oy * outW + ox] = sum / (sx * sy * peak);
    }
  }
  // Centre of mass of the scaled digit, placed at the field's centre (14, 14), as MNIST did.
  let mass = 0,
    cx = 0,
    cy = 0;
  for (let y = 0; y < outH; y++) {
    for (let x = 0; x < outW; x++) {
      const v = small[y * outW + x]!;
      mass += v;
      cx += v * (x + 0.5);
      cy += v * (y + 0.5);
    }
  }
  const offsetX = Math.round(MNIST_SIDE / 2 - cx / mass),
    offsetY = Math.round(MNIST_SIDE / 2 - cy / mass);
  const out = new Float32Array(MNIST_SIDE * MNIST_SIDE);
  for (let y = 0; y < outH; y++) {
    const ty = y + offsetY;
    if (ty < 0 || ty >= MNIST_SIDE) continue;
    for (let x = 0; x < outW; x++) {
      const tx = x + offsetX;
      if (tx < 0 || tx >= MNIST_SIDE) continue;
      out[ty * MNIST_SIDE + tx] = Math.min(1, small[y * outW + x]!);
    }
  }
  return out;
}
