// Public viewers in real browsers: each opens the class's public link (the
// web app's watch page, `#/watch/<id>?key=`, no account) and watches the
// composed program. Prints one JSON line with what each viewer decoded.
// Driven by `tests/tests/mesh.rs`.
//
//   LINK='http://.../#/watch/<id>?key=...' VIEWERS=2 REGION=campus-b node watch.mjs
import { keepPeerConnections, launch, mediaStats, until } from './harness.mjs';

const link = process.env.LINK;
const viewers = Number(process.env.VIEWERS || 1);
const region = process.env.REGION || '';
const timeoutMs = Number(process.env.TIMEOUT_MS || 60000);
const deadline = Date.now() + timeoutMs;
const left = () => Math.max(1000, deadline - Date.now());

const browser = await launch();
const result = { ok: false, viewers: [] };
try {
  const pages = [];
  for (let i = 0; i < viewers; i++) {
    const page = await (await browser.newContext()).newPage();
    await keepPeerConnections(page);
    page.on('console', (m) => process.stderr.write(`[viewer${i + 1}] ${m.text()}\n`));
    await page.goto(region ? `${link}&region=${encodeURIComponent(region)}` : link);
    pages.push(page);
  }
  for (const [i, page] of pages.entries()) {
    const stats = await until(`viewer ${i + 1} to decode the program`, async () => {
      const alert = await page.getByRole('alert').first().textContent({ timeout: 100 }).catch(() => null);
      if (alert) return { error: alert };
      const s = await mediaStats(page);
      if (!(s.framesDecoded >= 60 && s.audioPackets >= 100)) return null;
      const edge = await page.locator('[data-edge]').getAttribute('data-edge');
      return { ...s, edge };
    }, left());
    if (stats.error) throw new Error(`viewer ${i + 1}: ${stats.error}`);
    const rendered = await until(`viewer ${i + 1}'s video element`, () => page.evaluate(() => {
      const v = document.querySelector('main video');
      return v && v.videoWidth > 0 ? { width: v.videoWidth, height: v.videoHeight } : null;
    }), left());
    result.viewers.push({ ...stats, rendered });
  }
  result.ok = result.viewers.length === viewers;
} catch (e) {
  result.error = String(e && e.message ? e.message : e).split('\n').slice(0, 6).join('\n');
} finally {
  await browser.close();
  console.log(JSON.stringify(result));
}
