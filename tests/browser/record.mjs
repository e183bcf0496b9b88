// A teacher in headless Chromium publishing its fake camera (a frame
// counter) and microphone for as long as the Rust test drives the class.
// Prints {"published":true} once media flows, then waits for a line on
// stdin (or stdin closing) and prints {"ok":true} after closing cleanly.
// Driven by `tests/tests/recording.rs`.
//
//   CORE_URL=... SESSION=<id> PASSWORD=... node record.mjs
import { chromium } from 'playwright-core';
import readline from 'node:readline';

const core = process.env.CORE_URL;
const session = process.env.SESSION;
const password = process.env.PASSWORD;
const deadline = Date.now() + Number(process.env.TIMEOUT_MS || 60000);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: [
    '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
    '--autoplay-policy=no-user-gesture-required', '--allow-loopback-in-peer-connection',
    '--disable-features=WebRtcHideLocalIpsWithMdns',
  ],
});

const result = { ok: false };
try {
  const ctx = await browser.newContext();
  const teacher = await ctx.newPage();
  teacher.on('console', (m) => process.stderr.write(`[teacher] ${m.text()}\n`));
  await teacher.goto(`${core}/app/teacher.html?auto=1&session=${session}&email=teacher@demo.test&password=${password}`);
  for (;;) {
    const s = await teacher.evaluate(() => window.classroomState).catch(() => null);
    if (s && s.error) throw new Error(`teacher: ${s.error}`);
    if (s && s.published) break;
    if (Date.now() > deadline) throw new Error('timed out waiting for the teacher to publish');
    await new Promise((r) => setTimeout(r, 200));
  }
  console.log(JSON.stringify({ published: true }));
  const rl = readline.createInterface({ input: process.stdin });
  await new Promise((resolve) => {
    rl.on('line', resolve);
    rl.on('close', resolve);
  });
  result.ok = true;
} catch (e) {
  result.error = String(e);
} finally {
  await browser.close();
  console.log(JSON.stringify(result));
}
