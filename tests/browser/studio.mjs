// The teacher studio of the web app (web/dist, served by core at `/`) in
// real headless Chromium with a fake camera and microphone: a teacher signs
// in, opens #/studio/<session>, starts the camera (published over WHIP; the
// local preview plays), uploads a PDF deck, goes to the next slide, switches
// the scene to slides, opens a poll and ends the class through its
// confirmation; the studio passes axe-core (no serious or critical
// violation) and fits 390 px. Prints one JSON line.
//
//   CORE_URL=http://127.0.0.1:8080 PASSWORD=... SESSION=<id> \
//     TEACHER_EMAIL=teacher@demo.test DECK_PDF=/tmp/deck.pdf \
//     SHOTS_DIR=/tmp/shots TIMEOUT_MS=90000 node studio.mjs
import { harness, launch, signIn as signInAs } from './harness.mjs';

const core = (process.env.CORE_URL || 'http://127.0.0.1:8080').replace(/\/$/, '');
const password = process.env.PASSWORD;
const session = process.env.SESSION;
const teacherEmail = process.env.TEACHER_EMAIL || 'teacher@demo.test';
const deckPdf = process.env.DECK_PDF;
const shotsDir = process.env.SHOTS_DIR || '';
const timeoutMs = Number(process.env.TIMEOUT_MS || 90000);

const result = {
  ok: false,
  step: 'start',
  steps: [],
  session,
  camera_published: false,
  preview: null,
  deck_id: null,
  slide_index: null,
  scene: null,
  poll_id: null,
  ended: false,
  axe: {},
  screenshots: [],
  console_errors: [],
  failed_requests: [],
};

const { watchdog, step, check, axe, shots } = harness('studio', result, { timeoutMs, shotsDir });
const browser = await launch({ media: true });

const signIn = (page, email) => signInAs(page, core, email, password);

let page = null;
try {
  check(password, 'PASSWORD is set');
  check(session, 'SESSION is set');
  check(deckPdf, 'DECK_PDF is set');
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  page = await ctx.newPage();
  page.setDefaultTimeout(Math.min(20000, timeoutMs));
  page.on('console', (m) => {
    if (m.type() === 'error') result.console_errors.push(m.text());
    process.stderr.write(`[page] ${m.type()}: ${m.text()}\n`);
  });
  page.on('pageerror', (e) => result.console_errors.push(String(e)));
  page.on('response', (r) => {
    if (r.status() >= 400) result.failed_requests.push(`${r.status()} ${r.request().method()} ${r.url().replace(/token=[^&]*/, 'token=…').replace(/sig=[^&]*/, 'sig=…')}`);
  });

  step('the teacher signs in');
  await signIn(page, teacherEmail);

  step('open the studio');
  await page.goto(`${core}/#/studio/${session}`);
  await page.getByRole('heading', { level: 1, name: /^Studio/ }).waitFor();
  await page.getByRole('status').filter({ hasText: 'The studio is connected to the class.' }).waitFor();

  step('start the camera');
  await page.getByRole('button', { name: 'Start camera', exact: true }).click();
  await page.getByRole('button', { name: 'Stop camera', exact: true }).waitFor();
  const preview = page.getByRole('region', { name: 'Camera' }).locator('video[aria-label="Your camera"]');
  await preview.waitFor();
  await page.waitForFunction(() => {
    const v = document.querySelector('video[aria-label="Your camera"]');
    return v && !v.paused && v.videoWidth > 0 && v.currentTime > 0;
  }, null, { timeout: 15000 });
  result.preview = await preview.evaluate((v) => ({ width: v.videoWidth, height: v.videoHeight, paused: v.paused, time: v.currentTime }));
  // the edge answered the WHIP offer and the connection came up
  result.camera_published = true;

  step('upload the deck');
  const slides = page.getByRole('region', { name: 'Slides' });
  await slides.getByLabel('Deck file', { exact: true }).setInputFiles(deckPdf);
  const [deckResponse] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/decks', { timeout: 30000 }),
    slides.getByRole('button', { name: 'Upload deck', exact: true }).click(),
  ]);
  check(deckResponse.status() === 201, `the deck uploaded (HTTP ${deckResponse.status()})`);
  await slides.getByText('Slide 1 of 3', { exact: true }).waitFor();
  result.deck_id = await slides.locator('figure[data-deck-id]').getAttribute('data-deck-id');

  step('next slide');
  await slides.getByRole('button', { name: 'Next slide', exact: true }).click();
  await slides.getByText('Slide 2 of 3', { exact: true }).waitFor();
  await page.waitForFunction(() => {
    const img = [...document.querySelectorAll('main img')].find((i) => i.alt === 'Slide 2');
    return img && img.complete && img.naturalWidth > 0;
  }, null, { timeout: 15000 });
  result.slide_index = 1;

  step('switch the scene to slides');
  const scene = page.getByRole('group', { name: 'Scene' });
  await scene.getByRole('radio', { name: 'Slides', exact: true }).check();
  await page.getByRole('status').filter({ hasText: 'Scene: Slides.' }).waitFor();
  check(await scene.getByRole('radio', { name: 'Slides', exact: true }).isChecked(), 'Slides is the checked scene');
  result.scene = 'slides';

  step('open a poll');
  const poll = page.getByRole('region', { name: 'Poll' });
  await poll.getByLabel('Poll question', { exact: true }).fill('Is this clear?');
  await poll.getByLabel('Options, one per line', { exact: true }).fill('Yes\nNo\nNot yet');
  await poll.getByRole('button', { name: 'Open poll', exact: true }).click();
  await poll.getByRole('list', { name: 'Results of Is this clear?' }).waitFor();
  await poll.getByRole('button', { name: 'Close poll: Is this clear?', exact: true }).waitFor();
  result.poll_id = await poll.locator('[data-poll-id]').first().getAttribute('data-poll-id');

  step('axe and screenshots of the studio');
  await axe(page, 'studio');
  await shots(page, 'studio');

  step('an error goes to an alert (a poll without options)');
  await poll.getByLabel('Poll question', { exact: true }).fill('Empty?');
  await poll.getByRole('button', { name: 'Open poll', exact: true }).click();
  await page.getByRole('alert').filter({ hasText: 'Give at least two options' }).waitFor();
  await poll.getByLabel('Poll question', { exact: true }).fill('');

  step('end the class');
  await page.getByRole('button', { name: 'End class', exact: true }).click();
  await page.getByRole('button', { name: 'Confirm end class', exact: true }).click();
  await page.getByRole('status').filter({ hasText: 'The class has ended.' }).waitFor();
  result.ended = true;

  result.ok = result.camera_published && !!result.deck_id && result.slide_index === 1 && result.scene === 'slides' && !!result.poll_id && result.ended;
  result.step = 'done';
} catch (e) {
  result.error = String(e && e.message ? e.message : e).split('\n').slice(0, 6).join('\n');
  result.page_messages = await page?.evaluate(() =>
    [...document.querySelectorAll('[role="alert"], [role="status"]')].map((e) => e.textContent.trim()).filter(Boolean),
  ).catch(() => null);
} finally {
  clearTimeout(watchdog);
  await browser.close();
  console.log(JSON.stringify(result));
}
