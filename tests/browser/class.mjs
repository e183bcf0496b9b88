// A class in real browsers: a teacher page publishes Chromium's fake camera
// and microphone; student pages watch. Prints one JSON line with what each
// student decoded. Driven by the Rust test `tests/tests/browser.rs`.
//
//   CORE_URL=http://127.0.0.1:8080 SESSION=<id> PASSWORD=... STUDENTS=3 node class.mjs
import { chromium } from 'playwright-core';

const core = process.env.CORE_URL;
const session = process.env.SESSION;
const password = process.env.PASSWORD;
const students = Number(process.env.STUDENTS || 3);
const studentEmails = (process.env.STUDENT_EMAILS || '').split(',').filter(Boolean);
// students join through this edge instead of the class's home edge
const studentEdge = process.env.STUDENT_EDGE || '';
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

async function waitFor(page, what, fn, arg) {
  while (Date.now() < deadline) {
    const v = await page.evaluate(fn, arg).catch(() => null);
    if (v) return v;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const result = { ok: false, teacher: null, students: [] };
try {
  const tctx = await browser.newContext();
  const teacher = await tctx.newPage();
  teacher.on('console', (m) => process.stderr.write(`[teacher] ${m.text()}\n`));
  await teacher.goto(`${core}/app/teacher.html?auto=1&session=${session}&email=teacher@demo.test&password=${password}`);
  await waitFor(teacher, 'the teacher to publish', () => window.classroomState.published || (window.classroomState.error && { error: window.classroomState.error }));
  result.teacher = await teacher.evaluate(() => window.classroomState);
  if (result.teacher.error) throw new Error(`teacher: ${result.teacher.error}`);

  const pages = [];
  for (let i = 0; i < students; i++) {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    const email = studentEmails[i] || `student${i + 1}@demo.test`;
    page.on('console', (m) => process.stderr.write(`[student${i + 1}] ${m.text()}\n`));
    const via = studentEdge ? `&edge=${studentEdge}` : '';
    await page.goto(`${core}/app/student.html?auto=1&session=${session}&email=${email}&password=${password}${via}`);
    pages.push(page);
  }
  for (const [i, page] of pages.entries()) {
    // decoded frames and real audio (the fake microphone is a beep)
    const stats = await waitFor(page, `student ${i + 1} to decode video and audio`, async () => {
      if (window.classroomState.error) return { error: window.classroomState.error };
      const s = await mediaStats(window.edge && window.edge.pc);
      return s.framesDecoded >= 60 && s.audioSamples >= 48000 && s.audioLevel > 0 ? s : null;
    });
    // the <video> element renders frames too
    const rendered = await waitFor(page, `student ${i + 1}'s video element to render`, () => {
      const v = document.querySelector('video');
      return v && v.videoWidth > 0 && v.getVideoPlaybackQuality().totalVideoFrames > 10
        ? { width: v.videoWidth, height: v.videoHeight, frames: v.getVideoPlaybackQuality().totalVideoFrames }
        : null;
    });
    result.students.push({ ...stats, rendered });
  }
  // a student raises a hand from the page; the teacher's feed shows it
  await pages[0].click('#hand');
  await waitFor(teacher, 'the raised hand in the teacher feed', () => document.querySelector('#log').textContent.includes('hand.raised'));
  result.hand_seen = true;
  result.ok = result.students.every((s) => !s.error);
} catch (e) {
  result.error = String(e);
  if (process.env.DEBUG_STATS) {
    for (const ctx of browser.contexts()) {
      for (const page of ctx.pages()) {
        const dump = await page.evaluate(async () => {
          const pc = window.edge && window.edge.pc;
          if (!pc) return 'no pc';
          const out = [];
          (await pc.getStats()).forEach((s) => { if (['inbound-rtp', 'outbound-rtp', 'transport', 'candidate-pair'].includes(s.type)) out.push(s); });
          return { sdp: pc.remoteDescription && pc.remoteDescription.sdp, stats: out };
        }).catch((e) => String(e));
        process.stderr.write(`DUMP ${page.url()}\n${JSON.stringify(dump, null, 1)}\n`);
      }
    }
  }
} finally {
  await browser.close();
  console.log(JSON.stringify(result));
}
