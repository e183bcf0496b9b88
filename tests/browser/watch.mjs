// Public viewers in real browsers: each opens the class's public link (the
// watch page, no account) and watches the composed program. Prints one
// JSON line with what each viewer decoded. Driven by `tests/tests/mesh.rs`.
//
//   LINK='http://.../app/watch.html?session=...&key=...' VIEWERS=2 REGION=campus-b node watch.mjs
import { chromium } from 'playwright-core';

const link = process.env.LINK;
const viewers = Number(process.env.VIEWERS || 1);
const region = process.env.REGION || '';
const deadline = Date.now() + Number(process.env.TIMEOUT_MS || 60000);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: [
    '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--autoplay-policy=no-user-gesture-required', '--allow-loopback-in-peer-connection',
    '--disable-features=WebRtcHideLocalIpsWithMdns',
  ],
});

async function waitFor(page, what, fn) {
  while (Date.now() < deadline) {
    const v = await page.evaluate(fn).catch(() => null);
    if (v) return v;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const result = { ok: false, viewers: [] };
try {
  const pages = [];
  for (let i = 0; i < viewers; i++) {
    const page = await (await browser.newContext()).newPage();
    page.on('console', (m) => process.stderr.write(`[viewer${i + 1}] ${m.text()}\n`));
    await page.goto(region ? `${link}&region=${region}` : link);
    pages.push(page);
  }
  for (const [i, page] of pages.entries()) {
    const stats = await waitFor(page, `viewer ${i + 1} to decode the program`, async () => {
      if (window.classroomState.error) return { error: window.classroomState.error };
      const s = await mediaStats(window.edge && window.edge.pc);
      return s.framesDecoded >= 60 && s.audioPackets >= 100 ? { ...s, edge: window.classroomState.edge } : null;
    });
    const rendered = await waitFor(page, `viewer ${i + 1}'s video element`, () => {
      const v = document.querySelector('video');
      return v && v.videoWidth > 0 ? { width: v.videoWidth, height: v.videoHeight } : null;
    });
    result.viewers.push({ ...stats, rendered });
  }
  result.ok = result.viewers.every((v) => !v.error);
} catch (e) {
  result.error = String(e);
} finally {
  await browser.close();
  console.log(JSON.stringify(result));
}
