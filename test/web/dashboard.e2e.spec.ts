/**
 * The dashboard in a real browser (Debian's Chromium through playwright-core) against the real
 * server: the flow — open `/`, classify the example digit, open the trajectory, upload an
 * ImageFolder zip, fine-tune a tiny model for one epoch on it while the curve gets points, classify
 * with the new model — plus the API-key prompt, API errors shown as the API's message, cancel, and
 * axe-core's WCAG 2.1 A/AA checks of every page at 1280 px and 390 px wide.
 *
 * Chromium missing is a failure, not a skip: CI installs it (.ci/run). SKIP_BROWSER_TESTS=1 skips
 * these tests explicitly (reported as skipped). With SCREENSHOTS_DIR set (npm run screenshots)
 * each page is also saved as a PNG there.
 */
import AxeBuilder from '@axe-core/playwright';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { brightnessZip } from '../../src/server/datasets/testing/fixtures';
import {
  buildDashboard,
  DashboardServer,
  findChromium,
  launchChromium,
  startServer,
} from './harness';

const KEY = 'browser-test-key';
const SKIP = process.env.SKIP_BROWSER_TESTS === '1';
const SHOTS = process.env.SCREENSHOTS_DIR ? path.resolve(process.env.SCREENSHOTS_DIR) : null;

let server: DashboardServer;
let browser: Browser;
let work: string;
let toyZip: string;

/** axe-core in the page: WCAG 2.1 A and AA (labels, names, contrast, landmarks, …). */
async function expectAccessible(page: Page, what: string): Promise<void> {
  const r = await new AxeBuilder({ page })
    .withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'])
    .analyze();
  const problems = r.violations.map(
    (v) =>
      `${v.id} (${v.impact}): ${v.help} — ${v.nodes
        .map((n) => n.target.join(' '))
        .slice(0, 5)
        .join(' | ')}`,
  );
  expect(problems, `${what}: accessibility violations`).toEqual([]);
}

/**
 * Run in the page (a string: this file is type-checked without the DOM library): how wide the
 * page is against the viewport, and the elements reaching furthest right (for the message).
 */
const PAGE_WIDTH = `(() => {
  const limit = document.documentElement.clientWidth;
  const right = (e) => Math.round(e.getBoundingClientRect().right);
  const wide = [...document.querySelectorAll('body *')]
    .filter((e) => right(e) > limit + 1)
    .sort((a, b) => right(b) - right(a))
    .slice(0, 6)
    .map((e) => e.tagName.toLowerCase() + '.' + e.className + ' (' + right(e) + ' px)');
  return { width: document.documentElement.scrollWidth, limit, wide };
})()`;

/** The page does not scroll sideways (a scrolling box inside it, like the trajectory strip, may). */
async function expectNoOverflow(page: Page, what: string): Promise<void> {
  const r = await page.evaluate<{ width: number; limit: number; wide: string[] }>(PAGE_WIDTH);
  expect(
    r.width,
    `${what}: page ${r.width} px wide in a ${r.limit} px viewport (${r.wide.join(', ')})`,
  ).toBeLessThanOrEqual(r.limit);
}

/** vitest's expect.poll, with room for a busy 2-core machine (its default gives up after 1 s). */
const until = <T>(fn: () => T | Promise<T>, timeout = 20_000) =>
  expect.poll(fn, { timeout, interval: 100 });

async function shot(page: Page, name: string): Promise<void> {
  if (SHOTS) await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

async function newPage(
  width: number,
  height = 900,
): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({ viewport: { width, height }, baseURL: server.url });
  const page = await context.newPage();
  page.on('dialog', (d) => void d.accept()); // confirm() before deleting
  return { context, page };
}

/** Types the key into the prompt the page shows after a 401. */
async function answerKeyPrompt(page: Page, key: string): Promise<void> {
  const dialog = page.getByRole('dialog', { name: 'API key needed' });
  await until(() => dialog.isVisible()).toBe(true);
  await dialog.getByLabel('API key').fill(key);
  await dialog.getByRole('button', { name: 'Use key' }).click();
}

async function classifyExample(page: Page): Promise<string> {
  await page.getByRole('button', { name: 'Use the example digit' }).click();
  const label = page.getByTestId('label').last();
  await label.waitFor();
  return label.innerText();
}

/** Fills the fine-tune form: hyperparameters field by field when the schema lists them, else as JSON. */
async function fillHyperparameters(page: Page, h: Record<string, number>): Promise<void> {
  const json = page.getByLabel('hyperparameters (JSON)');
  if (await json.count()) await json.fill(JSON.stringify(h));
  else
    for (const [k, v] of Object.entries(h))
      await page.getByLabel(k, { exact: true }).fill(String(v));
}

async function startFineTune(page: Page, h: Record<string, number>): Promise<string> {
  await page.goto('/#/fine-tunes');
  const form = page.getByRole('region', { name: 'New fine-tune' });
  await form.getByLabel('model', { exact: true }).selectOption('tiny@0.0.1');
  await form.getByLabel(/^dataset/).selectOption({ label: 'toy (20 images, 2 classes)' });
  await fillHyperparameters(page, h);
  await form.getByRole('button', { name: 'Start fine-tune' }).click();
  await page.waitForURL(/#\/fine-tunes\/ft_/);
  return decodeURIComponent(page.url().split('#/fine-tunes/')[1]);
}

const lossPoints = (page: Page) =>
  page
    .getByRole('img', { name: /^Loss per step/ })
    .getAttribute('data-points')
    .then(Number);

describe.skipIf(SKIP)('dashboard in Chromium', () => {
  beforeAll(async () => {
    const executable = findChromium();
    if (!executable)
      throw new Error(
        "Chromium not found: install Debian's package (apt-get install -y chromium; .ci/run does) or set CHROMIUM_PATH. " +
          'SKIP_BROWSER_TESTS=1 skips the browser tests explicitly.',
      );
    work = await fs.mkdtemp(path.join(os.tmpdir(), 'prg-web-build-'));
    if (SHOTS) await fs.mkdir(SHOTS, { recursive: true });
    const webDir = path.join(work, 'web');
    await buildDashboard(webDir);
    [server, browser] = await Promise.all([
      startServer(
        webDir,
        [
          {
            name: 'tiny',
            version: '0.0.1',
            classes: ['c0', 'c1'],
            inputShape: [1, 8, 8],
            featurePool: 4,
            solver: { name: 'euler', steps: 2, tStar: 0.5 },
          },
        ],
        [KEY],
      ),
      launchChromium(executable),
    ]);
    toyZip = path.join(work, 'toy.zip');
    await fs.writeFile(toyZip, await brightnessZip()); // dark and light, 10 each
    await fs.writeFile(path.join(work, 'broken.zip'), 'not a zip at all');
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    if (work) await fs.rm(work, { recursive: true, force: true });
  });

  it('serves the page at / with cache headers, without shadowing the API', async () => {
    const index = await fetch(`${server.url}/`);
    expect(index.status).toBe(200);
    expect(index.headers.get('cache-control')).toBe('no-cache');
    const html = await index.text();
    const asset = /src="(\/assets\/[^"]+\.js)"/.exec(html)![1];
    const js = await fetch(server.url + asset);
    expect(js.status).toBe(200);
    expect(js.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    for (const p of ['/models', '/health/live', '/docs-json']) {
      const r = await fetch(server.url + p);
      expect(r.status, p).toBe(200);
      expect(r.headers.get('content-type'), p).toMatch(/json/);
    }
    for (const p of ['/v2/models', '/nope', '/datasets/ds_000000000000/x/y']) {
      const r = await fetch(server.url + p);
      expect(r.status, p).toBe(404);
      expect(((await r.json()) as { code: string }).code, p).toBe('NOT_FOUND');
    }
  });

  it('runs the flow: classify, trajectory, upload, fine-tune, classify with the new model (1280 px)', async () => {
    const { context, page } = await newPage(1280);
    try {
      // Try it: the example digit is a 7 for the shipped model.
      await page.goto('/');
      await until(() => page.title()).toBe('Try it · PRG dashboard');
      expect(await classifyExample(page)).toBe('7');
      const result = page.getByRole('article', { name: 'example digit (seven.png)' });
      await until(() => result.getByRole('listitem').count()).toBe(5); // top-5 bars
      await until(() =>
        result
          .getByText(/In distribution|Flagged/)
          .first()
          .isVisible(),
      ).toBe(true);

      // Trajectory: 8 frames by default, then the user's choice of 4; the slider re-runs features.
      await result.getByRole('button', { name: 'Show trajectory' }).click();
      const strip = result.getByRole('list', { name: /Reverse trajectory/ });
      await until(() => strip.getByRole('listitem').count()).toBe(8);
      await result.getByRole('spinbutton', { name: 'Frames' }).fill('4');
      await result.getByRole('spinbutton', { name: 'Frames' }).press('Enter');
      await until(() => strip.getByRole('listitem').count()).toBe(4);
      const features = page.waitForResponse(
        (r) => r.url().endsWith('/features') && r.status() === 200,
      );
      await result.getByRole('slider').fill('0.8');
      await features;
      await until(() => result.getByText(/at t = 0\.8 \(784 values\)/).count()).toBeGreaterThan(0);
      // Solver and steps go with every request: too many steps is the API's error, shown as is.
      await page.getByLabel('Steps', { exact: true }).fill('100000');
      await until(() => page.getByRole('alert').first().innerText()).toMatch(
        /^INVALID_STEPS .*steps/,
      );
      const again = page.waitForResponse(
        (r) => r.url().endsWith('/classify') && r.status() === 200,
      );
      await page.getByLabel('Steps', { exact: true }).fill('2');
      await page.getByLabel('Solver', { exact: true }).selectOption('midpoint');
      await again;
      await until(() => result.getByTestId('label').innerText()).toBe('7');
      await expectAccessible(page, 'Try it');
      await expectNoOverflow(page, 'Try it');
      await shot(page, 'try-it');

      // Drawing canvas (1-channel model): a stroke, classified like any image.
      await page.getByText('Draw an image').click();
      const canvas = page.getByRole('img', { name: /Drawing area/ });
      const box = (await canvas.boundingBox())!;
      await page.mouse.move(box.x + box.width / 2, box.y + 30);
      await page.mouse.down();
      await page.mouse.move(box.x + box.width / 2, box.y + box.height - 30, { steps: 10 });
      await page.mouse.up();
      await page.getByRole('button', { name: 'Classify drawing' }).click();
      await until(() => page.getByTestId('label').count()).toBe(2);

      // Datasets need the key: the page asks once, then keeps it for the tab.
      await page.getByRole('link', { name: 'Datasets' }).click();
      await answerKeyPrompt(page, 'wrong-key-123');
      await until(() => page.getByRole('dialog').getByText('invalid API key').isVisible()).toBe(
        true,
      );
      await page.getByRole('dialog').getByLabel('API key').fill(KEY);
      await page.getByRole('dialog').getByRole('button', { name: 'Use key' }).click();
      await until(() => page.getByText('No datasets yet.').isVisible()).toBe(true);
      expect(await page.evaluate("sessionStorage.getItem('prg.apiKey')")).toBe(KEY);

      // A bad upload shows the API's code and message.
      await page.getByLabel('Zip file').setInputFiles(path.join(work, 'broken.zip'));
      await page.getByRole('button', { name: 'Upload' }).click();
      await until(() => page.getByRole('alert').innerText()).toMatch(/^ZIP_INVALID .+/);

      // Upload the toy ImageFolder zip: progress, then class counts and thumbnails.
      await page.getByLabel('Zip file').setInputFiles(toyZip);
      await page.getByLabel('Name (optional)').fill('toy');
      await page.getByRole('button', { name: 'Upload' }).click();
      await until(() => page.getByRole('status').innerText()).toBe(
        'Uploaded toy: 20 images in 2 classes.',
      );
      const card = page.getByRole('article', { name: 'toy' });
      await until(() => card.getByRole('img', { name: /sample/ }).count()).toBe(8);
      expect(await card.getByRole('row', { name: /^dark 10/ }).count()).toBe(1);
      await expectAccessible(page, 'Datasets');
      await expectNoOverflow(page, 'Datasets');
      await shot(page, 'datasets');

      // Fine-tune the tiny model for one epoch: the curve gets points, the job succeeds.
      const job = await startFineTune(page, {
        epochs: 1,
        batchSize: 4,
        learningRate: 0.01,
        warmupEpochs: 0,
      });
      const status = page.getByTestId('job-status');
      await until(() => status.innerText(), 90_000).toBe('succeeded');
      expect(await lossPoints(page)).toBeGreaterThan(0);
      expect(await page.locator('#job-progress').getAttribute('value')).toBe('1');
      await shot(page, 'fine-tune-done');

      // The new model in Try it.
      const newModel = `tiny@0.0.1-ft.${job.slice(3)}`;
      await page.getByRole('link', { name: `Open ${newModel} in Try it` }).click();
      await until(() => page.getByLabel('Model', { exact: true }).inputValue()).toBe(newModel);
      expect(['dark', 'light']).toContain(await classifyExample(page));

      // A long job, watched live, then cancelled.
      await startFineTune(page, { epochs: 1000, batchSize: 4, warmupEpochs: 0 });
      await until(() => status.innerText(), 30_000).toBe('running');
      await until(() => lossPoints(page), 30_000).toBeGreaterThan(3);
      await until(() => page.getByText(/left$/).count(), 30_000).toBeGreaterThan(0);
      await expectAccessible(page, 'Fine-tunes (running job)');
      await expectNoOverflow(page, 'Fine-tunes');
      await shot(page, 'fine-tune-running');
      await page.getByRole('button', { name: 'Cancel job' }).click();
      await until(() => status.innerText(), 30_000).toBe('cancelled');

      // Models: the registry with the default marked, metrics with their commands.
      await page.getByRole('link', { name: 'Models' }).click();
      const mnist = page.getByRole('article', { name: /^prg-mnist@/ });
      await until(() => mnist.getByText('default', { exact: true }).isVisible()).toBe(true);
      expect(await mnist.getByText('npx prg eval --model models/prg-mnist').count()).toBe(1);
      await expectAccessible(page, 'Models');
      await shot(page, 'models');
    } finally {
      await context.close();
    }
  }, 240_000);

  it('builds the fine-tune form from the schema: limits, choices and defaults per hyperparameter', async () => {
    // The document as the jobs schema declares each hyperparameter (OpenAPI 3.0 style, as
    // @nestjs/swagger emits it), whatever this server's document says today.
    const { context, page } = await newPage(1280);
    try {
      await page.route('**/docs-json', async (route) => {
        const doc = (await (await route.fetch()).json()) as {
          paths: Record<
            string,
            { post: { requestBody: { content: Record<string, { schema: { $ref: string } }> } } }
          >;
          components: {
            schemas: Record<string, { type?: string; properties: Record<string, unknown> }>;
          };
        };
        const body = doc.paths['/fine-tunes'].post.requestBody.content[
          'application/json'
        ].schema.$ref
          .split('/')
          .pop()!;
        doc.components.schemas[body].properties.hyperparameters = {
          allOf: [{ $ref: '#/components/schemas/TestHyperparameters' }],
        };
        doc.components.schemas.TestHyperparameters = {
          type: 'object',
          properties: {
            epochs: { type: 'integer', minimum: 1, maximum: 1000, default: 10 },
            learningRate: {
              type: 'number',
              minimum: 0,
              maximum: 1,
              exclusiveMinimum: true,
              default: 0.00025,
            },
            solver: { type: 'string', enum: ['euler', 'midpoint', 'rk4'] },
            freezeFlow: { type: 'boolean', default: false },
          },
        };
        await route.fulfill({ json: doc });
      });
      let posted = false;
      page.on('request', (r) => {
        if (r.method() === 'POST' && r.url().endsWith('/fine-tunes')) posted = true;
      });
      await page.goto('/#/fine-tunes');
      await answerKeyPrompt(page, KEY);
      const epochs = page.getByLabel('epochs', { exact: true });
      await epochs.waitFor();
      expect([await epochs.getAttribute('min'), await epochs.getAttribute('max')]).toEqual([
        '1',
        '1000',
      ]);
      expect(await page.getByText('integer in [1, 1000] · default 10').count()).toBe(1);
      expect(await page.getByText('number in (0, 1] · default 0.00025').count()).toBe(1);
      expect(
        await page.getByLabel('solver', { exact: true }).locator('option').allInnerTexts(),
      ).toEqual(['default', 'euler', 'midpoint', 'rk4']);
      expect(await page.getByLabel('freezeFlow').isChecked()).toBe(false);
      // Out-of-range values are named before anything is sent (the open bound included).
      await epochs.fill('0');
      await page.getByLabel('learningRate', { exact: true }).fill('0');
      await page.getByRole('button', { name: 'Start fine-tune' }).click();
      await until(() => page.getByRole('alert').allInnerTexts()).toEqual([
        'dataset is required\nhyperparameters.epochs must be an integer in [1, 1000]\nhyperparameters.learningRate must be a number in (0, 1]',
      ]);
      expect(posted).toBe(false);
      await expectAccessible(page, 'Fine-tune form from a described schema');
    } finally {
      await context.close();
    }
  }, 60_000);

  it('works 390 px wide', async () => {
    const { context, page } = await newPage(390, 844);
    try {
      await page.goto('/');
      expect(await classifyExample(page)).toBe('7');
      await page.getByRole('button', { name: 'Show trajectory' }).click();
      await until(() =>
        page
          .getByRole('list', { name: /Reverse trajectory/ })
          .getByRole('listitem')
          .count(),
      ).toBe(8);
      await expectAccessible(page, 'Try it, 390 px');
      await expectNoOverflow(page, 'Try it, 390 px');
      await shot(page, 'mobile-try-it');
      // Each page once its content is in: the models, the uploaded dataset, the jobs table.
      for (const [link, name, ready] of [
        ['Models', 'mobile-models', () => page.getByRole('article', { name: /^prg-mnist@/ })],
        ['Datasets', 'mobile-datasets', () => page.getByRole('img', { name: 'dark sample 1' })],
        ['Fine-tunes', 'mobile-fine-tunes', () => page.getByRole('region', { name: 'Jobs table' })],
      ] as const) {
        await page.getByRole('link', { name: link, exact: true }).click();
        if (link === 'Datasets') await answerKeyPrompt(page, KEY); // a new tab: asked again
        await ready().waitFor();
        await expectAccessible(page, `${link}, 390 px`);
        await expectNoOverflow(page, `${link}, 390 px`);
        await shot(page, name);
      }
    } finally {
      await context.close();
    }
  }, 120_000);
});
