// Plots: the Vega-Lite specifications of specs.ts, rendered to SVG in Node by Vega's headless renderer
// (no browser, no canvas) and to PNG by resvg. One function per figure (in specs.ts); every figure can
// overlay several runs or models.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Resvg } from '@resvg/resvg-js';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

import { writeFileWhole } from '../util/paths.js';

// The specs live in specs.ts (no Node built-ins, so the browser demo draws the very same figures).
export {
  gradientNormSpec,
  learningCurveSpec,
  spectrumSpec,
  type CurvePoint,
  type GradientSeries,
  type SpectrumSeries,
} from './specs.js';

/** Renders a Vega-Lite spec to a standalone SVG document (string). */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Rasterises an SVG at `scale` x its size (2: sharp on high-density screens). */
export function svgToPng(svg: string, scale = 2): Buffer {
  const resvg = new Resvg(svg, {
    fitTo: { mode: 'zoom', value: scale },
    font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' },
    background: 'white',
  });
  return resvg.render().asPng();
}

/** A rendered figure: its file stem, title and SVG. */
export interface Figure {
  name: string;
  title: string;
  svg: string;
  /** A caption line, e.g. which runs could not be drawn. */
  note?: string;
}

/** Renders a spec and writes `<dir>/<name>.svg` and `<dir>/<name>.png`. */
export async function writeFigure(dir: string, name: string, spec: TopLevelSpec): Promise<Figure> {
  const svg = await renderSvg(spec);
  mkdirSync(dir, { recursive: true });
  writeFileWhole(join(dir, `${name}.svg`), svg);
  writeFileWhole(join(dir, `${name}.png`), svgToPng(svg));
  const title = typeof spec.title === 'string' ? spec.title : name;
  return { name, title, svg };
}
