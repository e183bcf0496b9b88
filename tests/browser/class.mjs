// A class in real browsers, through the web app: the teacher signs in,
// opens the studio and starts Chromium's fake camera and microphone;
// students sign in and join from the class page (optionally through
// another campus's edge, `#/class/<id>?edge=`). Prints one JSON line with
// what each student decoded. Driven by `tests/tests/browser.rs` and
// `tests/tests/mesh.rs`.
//
//   CORE_URL=http://127.0.0.1:8080 SESSION=<id> PASSWORD=... STUDENTS=3 \
//     [STUDENT_EDGE=edge-b] node class.mjs
import { keepPeerConnections, launch, mediaStats, signIn, until } from './harness.mjs';

const core = (process.env.CORE_URL || 'http://127.0.0.1:8080').replace(/\/$/, '');
const session = process.env.SESSION;
const password = process.env.PASSWORD;
const students = Number(process.env.STUDENTS || 3);
const studentEmails = (process.env.STUDENT_EMAILS || '').split(',').filter(Boolean);
// students join through this edge instead of the class's home edge
const studentEdge = process.env.STUDENT_EDGE || '';
const timeoutMs = Number(process.env.TIMEOUT_MS || 60000);
const deadline = Date.now() + timeoutMs;
const left = () => Math.max(1000, deadline - Date.now());

const browser = await launch({ media: true });
const result = { ok: false, teacher: null, students: [] };
try {
  const teacher = await (await browser.newContext()).newPage();
  teacher.setDefaultTimeout(20000);
  teacher.on('console', (m) => process.stderr.write(`[teacher] ${m.text()}\n`));
  await signIn(teacher, core, 'teacher@demo.test', password);
  await teacher.goto(`${core}/#/studio/${session}`);
  await teacher.getByRole('status').filter({ hasText: 'The studio is connected to the class.' }).waitFor();
  await teacher.getByRole('button', { name: 'Start camera', exact: true }).click();
  await teacher.getByRole('status').filter({ hasText: 'Your camera and microphone are live.' }).waitFor();
  result.teacher = { published: true };

  const pages = [];
  for (let i = 0; i < students; i++) {
    const page = await (await browser.newContext()).newPage();
    page.setDefaultTimeout(20000);
    await keepPeerConnections(page);
    const email = studentEmails[i] || `student${i + 1}@demo.test`;
    page.on('console', (m) => process.stderr.write(`[student${i + 1}] ${m.text()}\n`));
    await signIn(page, core, email, password);
    await page.goto(`${core}/#/class/${session}${studentEdge ? `?edge=${encodeURIComponent(studentEdge)}` : ''}`);
    await page.getByRole('button', { name: 'Join and consent to recording', exact: true }).click();
    await page.getByRole('button', { name: 'Leave class', exact: true }).waitFor();
    pages.push(page);
  }
  for (const [i, page] of pages.entries()) {
    // decoded frames and real audio (the fake microphone is a beep)
    const stats = await until(`student ${i + 1} to decode video and audio`, async () => {
      const alert = await page.getByRole('alert').first().textContent({ timeout: 100 }).catch(() => null);
      if (alert) return { error: alert };
      const s = await mediaStats(page);
      return s.framesDecoded >= 60 && s.audioSamples >= 48000 && s.audioLevel > 0 ? s : null;
    }, left());
    if (stats.error) throw new Error(`student ${i + 1}: ${stats.error}`);
    // the <video> element renders frames too
    const rendered = await until(`student ${i + 1}'s video element to render`, () => page.evaluate(() => {
      const v = document.querySelector('main video');
      return v && v.videoWidth > 0 && v.getVideoPlaybackQuality().totalVideoFrames > 10
        ? { width: v.videoWidth, height: v.videoHeight, frames: v.getVideoPlaybackQuality().totalVideoFrames }
        : null;
    }), left());
    result.students.push({ ...stats, rendered });
  }
  // a student raises a hand from the page; the teacher's studio queues it
  await pages[0].getByRole('button', { name: 'Raise hand', exact: true }).click();
  await teacher.getByRole('list', { name: 'Raised hands' }).getByRole('listitem').first().waitFor({ timeout: left() });
  result.hand_seen = true;
  result.ok = result.students.length === students;
} catch (e) {
  result.error = String(e && e.message ? e.message : e).split('\n').slice(0, 6).join('\n');
} finally {
  await browser.close();
  console.log(JSON.stringify(result));
}
