// The report in a real browser, end to end through the command line: three short runs (roaf-mlp, mlp,
// resmlp) trained with --log-gradients, diagnosed from their checkpoints, compared by `roaf report`,
// then opened from disk by headless Chromium (Debian's `chromium` package) driven by playwright-core.
// Checks: every plot rendered (a visible, non-empty SVG), no console error, no request of any kind
// beyond the file itself; keeps a full-page screenshot (its path is printed; set
// ROAF_REPORT_SCREENSHOT=FILE to copy it there). Skips, saying why, when Chromium is not installed.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL, fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';

const CHROMIUM = process.env.ROAF_CHROMIUM ?? '/usr/bin/chromium';
const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

function roaf(...args: string[]): string {
  const result = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
  assert.equal(result.status, 0, `roaf ${args.join(' ')}: ${result.stderr}`);
  return result.stdout;
}

describe('report in headless Chromium', () => {
  it('renders every plot, logs no console error, requests nothing, and is kept as a screenshot', async (t) => {
    if (!existsSync(CHROMIUM)) {
      t.skip(
        `no Chromium at ${CHROMIUM}: install Debian's chromium package (apt-get install -y chromium) or set ROAF_CHROMIUM`,
      );
      return;
    }
    const root = mkdtempSync(join(tmpdir(), 'roaf-browser-'));
    const runs = ['roaf-mlp', 'mlp', 'resmlp'].map((kind) => {
      const dir = join(root, kind);
      roaf(
        'train',
        '--model',
        kind,
        '--task',
        'mnist',
        '--depth',
        '12',
        '--width',
        '8',
        '--train-limit',
        '96',
        '--test-limit',
        '32',
        '--batch',
        '32',
        '--epochs',
        '2',
        '--eval-every',
        '1',
        '--log-gradients',
        '--quiet',
        '--out',
        dir,
      );
      roaf(
        'diagnose',
        '--checkpoint',
        join(dir, 'checkpoint'),
        '--batch',
        '8',
        '--quiet',
        '--out',
        join(dir, 'diagnostics'),
      );
      return dir;
    });
    const page = join(root, 'report.html');
    roaf('report', ...runs, '--out', page, '--title', 'roaf-mlp vs mlp vs resmlp');

    const { chromium } = await import('playwright-core');
    const context = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'roaf-chromium-profile-')), {
      executablePath: CHROMIUM,
      headless: true,
      timeout: 60_000,
      viewport: { width: 1400, height: 1000 },
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    try {
      const requests: string[] = [];
      const errors: string[] = [];
      const url = pathToFileURL(page).href;
      await context.route('**/*', (route) => {
        const requested = route.request().url();
        if (requested === url) return route.continue();
        requests.push(requested);
        return route.abort();
      });
      const tab = context.pages()[0] ?? (await context.newPage());
      tab.on('console', (message) => {
        if (message.type() === 'error') errors.push(message.text());
      });
      tab.on('pageerror', (error) => errors.push(error.message));
      await tab.goto(url, { waitUntil: 'load' });
      const plots = await tab.evaluate(() =>
        Array.from(document.querySelectorAll('figure.plot'), (figure) => {
          const svg = figure.querySelector('svg');
          const box = svg?.getBoundingClientRect();
          const drawn = svg
            ? Array.from(svg.querySelectorAll('path')).filter((p) => (p.getAttribute('d') ?? '').length > 10).length
            : 0;
          return {
            name: figure.getAttribute('data-plot'),
            width: box?.width ?? 0,
            height: box?.height ?? 0,
            drawn,
            text: svg?.textContent?.length ?? 0,
          };
        }),
      );
      assert.deepEqual(plots.map((p) => p.name).sort(), [
        'gradient-norms-layer',
        'gradient-ratio',
        'loss',
        'spectrum',
        'test-accuracy',
      ]);
      for (const plot of plots) {
        assert.ok(plot.width > 200 && plot.height > 150, `${plot.name} is not visible: ${plot.width}x${plot.height}`);
        assert.ok(plot.drawn > 0, `${plot.name} draws nothing`);
        assert.ok(plot.text > 20, `${plot.name} has no axis labels`);
      }
      assert.equal(await tab.locator('section.run').count(), 3);
      assert.equal(await tab.title(), 'roaf-mlp vs mlp vs resmlp');
      assert.deepEqual(errors, [], 'console errors');
      assert.deepEqual(requests, [], 'the report requested resources');
      const screenshot = join(root, 'report-screenshot.png');
      await tab.screenshot({ path: screenshot, fullPage: true });
      assert.ok(readFileSync(screenshot).length > 20_000, 'the screenshot is empty');
      if (process.env.ROAF_REPORT_SCREENSHOT) copyFileSync(screenshot, process.env.ROAF_REPORT_SCREENSHOT);
      t.diagnostic(`screenshot: ${process.env.ROAF_REPORT_SCREENSHOT ?? screenshot}`);
    } finally {
      await context.close();
    }
  });
});
