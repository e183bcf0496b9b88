// A teacher in headless Chromium, through the web app's studio, publishing
// its fake camera (a frame counter) and microphone for as long as the Rust
// test drives the class. Prints {"published":true} once the camera is live,
// then waits for a line on stdin (or stdin closing) and prints {"ok":true}
// after closing cleanly. Driven by `tests/tests/recording.rs`.
//
//   CORE_URL=... SESSION=<id> PASSWORD=... node record.mjs
import readline from 'node:readline';
import { launch, signIn } from './harness.mjs';

const core = (process.env.CORE_URL || 'http://127.0.0.1:8080').replace(/\/$/, '');
const session = process.env.SESSION;
const password = process.env.PASSWORD;
const timeoutMs = Number(process.env.TIMEOUT_MS || 60000);

const browser = await launch({ media: true });
const result = { ok: false };
try {
  const teacher = await (await browser.newContext()).newPage();
  teacher.setDefaultTimeout(Math.min(timeoutMs, 30000));
  teacher.on('console', (m) => process.stderr.write(`[teacher] ${m.text()}\n`));
  await signIn(teacher, core, 'teacher@demo.test', password);
  await teacher.goto(`${core}/#/studio/${session}`);
  await teacher.getByRole('status').filter({ hasText: 'The studio is connected to the class.' }).waitFor();
  await teacher.getByRole('button', { name: 'Start camera', exact: true }).click();
  await teacher.getByRole('status').filter({ hasText: 'Your camera and microphone are live.' }).waitFor();
  console.log(JSON.stringify({ published: true }));
  const rl = readline.createInterface({ input: process.stdin });
  await new Promise((resolve) => {
    rl.on('line', resolve);
    rl.on('close', resolve);
  });
  result.ok = true;
} catch (e) {
  result.error = String(e && e.message ? e.message : e).split('\n').slice(0, 6).join('\n');
} finally {
  await browser.close();
  console.log(JSON.stringify(result));
}
