// What every Playwright script of the web app shares: Debian's Chromium,
// a watchdog that still prints the one JSON result line, named steps,
// checks, axe-core on a page (fails on serious or critical violations),
// screenshots at desktop and phone width (nothing may overflow 390 px),
// and signing in through the labelled form.
import { chromium } from 'playwright-core';
import { createRequire } from 'node:module';
import { mkdirSync } from 'node:fs';
import path from 'node:path';

const axePath = createRequire(import.meta.url).resolve('axe-core/axe.min.js');

/** Debian's headless Chromium; `media` adds the fake camera and microphone. */
export async function launch({ media = false } = {}) {
  const args = [
    '--headless=new', '--no-sandbox', '--disable-gpu', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ];
  if (media) {
    args.push(
      '--disable-quic',
      '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
      '--autoplay-policy=no-user-gesture-required', '--allow-loopback-in-peer-connection',
      '--disable-features=WebRtcHideLocalIpsWithMdns',
    );
  }
  return chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args });
}

/**
 * Steps, checks, axe and screenshots that record into `result` (which has
 * `step`, `steps`, `axe` and `screenshots`). The watchdog prints `result`
 * and exits when the run takes longer than `timeoutMs`.
 */
export function harness(name, result, { timeoutMs, shotsDir }) {
  const watchdog = setTimeout(() => {
    result.error = `timed out after ${timeoutMs} ms at step "${result.step}"`;
    console.log(JSON.stringify(result));
    process.exit(1);
  }, timeoutMs);

  function step(what) {
    result.step = what;
    result.steps.push(what);
    process.stderr.write(`[${name}] ${what}\n`);
  }

  function check(cond, what) {
    if (!cond) throw new Error(`check failed: ${what}`);
  }

  /** axe-core on the page as it is now; keeps every violation, fails on serious or critical. */
  async function axe(page, pageName) {
    const loaded = await page.evaluate(() => typeof window.axe !== 'undefined');
    if (!loaded) await page.addScriptTag({ path: axePath });
    const r = await page.evaluate(async () => {
      const out = await window.axe.run(document, { resultTypes: ['violations'] });
      return {
        violations: out.violations.map((v) => ({
          id: v.id,
          impact: v.impact,
          help: v.help,
          nodes: v.nodes.length,
          targets: v.nodes.slice(0, 5).map((n) => n.target.join(' ')),
        })),
        passes: out.passes.length,
        incomplete: out.incomplete.length,
      };
    });
    const serious = r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
    result.axe[pageName] = { ...r, serious: serious.length };
    check(
      serious.length === 0,
      `axe on ${pageName}: ${serious.map((v) => `${v.id} (${v.targets.join(', ')})`).join('; ')}`,
    );
  }

  /** Full-page screenshots at desktop and phone width; nothing may overflow the phone width. */
  async function shots(page, pageName) {
    for (const [width, height] of [[1280, 900], [390, 844]]) {
      await page.setViewportSize({ width, height });
      await page.waitForTimeout(150);
      if (shotsDir) {
        mkdirSync(shotsDir, { recursive: true });
        const file = path.join(shotsDir, `${pageName}-${width}.png`);
        await page.screenshot({ path: file, fullPage: true });
        result.screenshots.push(path.basename(file));
      }
      if (width === 390) {
        const wide = await page.evaluate(() => document.documentElement.scrollWidth);
        check(wide <= 390, `${pageName} fits 390 px (scrollWidth ${wide})`);
      }
    }
    await page.setViewportSize({ width: 1280, height: 900 });
  }

  return { watchdog, step, check, axe, shots };
}

/** Signs in through the labelled form and waits for My classes. */
export async function signIn(page, core, email, password) {
  await page.goto(`${core}/`);
  await page.getByRole('heading', { level: 1, name: 'Sign in' }).waitFor();
  await page.getByLabel('Email', { exact: true }).fill(email);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.getByRole('heading', { level: 1, name: 'My classes' }).waitFor();
}
