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

/**
 * Debian's headless Chromium, able to do WebRTC over loopback; `media` adds
 * the fake camera, microphone and screen (a picker that picks by itself).
 */
export async function launch({ media = false } = {}) {
  const args = [
    '--headless=new', '--no-sandbox', '--disable-gpu', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--disable-quic', '--autoplay-policy=no-user-gesture-required', '--allow-loopback-in-peer-connection',
    '--disable-features=WebRtcHideLocalIpsWithMdns',
  ];
  if (media) {
    args.push(
      '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
      '--auto-select-desktop-capture-source=Entire screen',
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

/**
 * Keeps every RTCPeerConnection the page makes in `window.__pcs`, so a
 * script can read WebRTC statistics without any hook in the app.
 */
export async function keepPeerConnections(page) {
  await page.addInitScript(() => {
    const Native = window.RTCPeerConnection;
    window.__pcs = [];
    window.RTCPeerConnection = class extends Native {
      constructor(...args) {
        super(...args);
        window.__pcs.push(this);
      }
    };
  });
}

/** What the page's peer connections received: decoded frames, audio samples, packets and level. */
export function mediaStats(page) {
  return page.evaluate(async () => {
    const out = { framesDecoded: 0, audioSamples: 0, audioPackets: 0, audioLevel: 0, videoTracks: 0 };
    for (const pc of window.__pcs || []) {
      if (pc.connectionState === 'closed') continue;
      (await pc.getStats()).forEach((s) => {
        if (s.type === 'inbound-rtp' && s.kind === 'video') {
          out.framesDecoded += s.framesDecoded || 0;
          if (s.framesDecoded) out.videoTracks++;
        }
        if (s.type === 'inbound-rtp' && s.kind === 'audio') {
          out.audioSamples += s.totalSamplesReceived || 0;
          out.audioPackets += s.packetsReceived || 0;
          out.audioLevel = Math.max(out.audioLevel, s.audioLevel || 0);
        }
      });
    }
    return out;
  });
}

/** Polls `fn` (in node) until it answers truthy; throws after `ms`. */
export async function until(what, fn, ms) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn().catch(() => null);
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
