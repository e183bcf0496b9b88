// The teacher studio of the web app (web/dist, served by core at `/`) in
// real headless Chromium with a fake camera, microphone and screen: a
// teacher signs in, opens #/studio/<session>, starts the camera (published
// over WHIP; the local preview plays), shares the screen (a second WHIP
// publication, the scene follows), uploads a PDF deck, pages with Next and a
// thumbnail, switches scene and layout, draws on the whiteboard with the
// pointer and with the keyboard and clears it, shows and hides a link, locks the room and turns exam mode on
// and off, opens a poll; with the participant STUDENT_NAME in the class it
// grants Speak, mutes and removes them; ends the class through its
// confirmation and publishes the replay from "After the class". The studio
// passes axe-core (no serious or critical violation) and fits 390 px.
// Prints one JSON line.
//
//   CORE_URL=http://127.0.0.1:8080 PASSWORD=... SESSION=<id> \
//     TEACHER_EMAIL=teacher@demo.test DECK_PDF=/tmp/deck.pdf \
//     STUDENT_NAME='Student One' SHOTS_DIR=/tmp/shots TIMEOUT_MS=90000 node studio.mjs
import { harness, launch, signIn as signInAs } from './harness.mjs';

const core = (process.env.CORE_URL || 'http://127.0.0.1:8080').replace(/\/$/, '');
const password = process.env.PASSWORD;
const session = process.env.SESSION;
const teacherEmail = process.env.TEACHER_EMAIL || 'teacher@demo.test';
const deckPdf = process.env.DECK_PDF;
const studentName = process.env.STUDENT_NAME;
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
  screen_shared: false,
  layout: null,
  board: null,
  cta_shown: false,
  room: null,
  participant: null,
  ended: false,
  published: null,
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
  check(studentName, 'STUDENT_NAME is set');
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
  const mic = page.getByRole('button', { name: 'Mute microphone', exact: true });
  await mic.click();
  await page.getByRole('status').filter({ hasText: 'Your microphone is muted.' }).waitFor();
  check(await mic.getAttribute('aria-pressed') === 'true', 'the microphone toggle is pressed');
  check(await page.evaluate(() => document.querySelector('video[aria-label="Your camera"]').srcObject.getAudioTracks().every((t) => !t.enabled)), 'the microphone track is off');
  await mic.click();
  await page.getByRole('status').filter({ hasText: 'Your microphone is on.' }).waitFor();

  step('share the screen: a second publication, and the scene follows');
  await page.getByRole('button', { name: 'Share screen', exact: true }).click();
  await page.getByRole('button', { name: 'Stop sharing', exact: true }).waitFor();
  await page.getByRole('status').filter({ hasText: 'Scene: Screen.' }).waitFor();
  await page.waitForFunction(() => {
    const v = document.querySelector('video[aria-label="Your shared screen"]');
    return v && v.videoWidth > 0;
  }, null, { timeout: 15000 });
  check(await page.getByRole('group', { name: 'Scene' }).getByRole('radio', { name: 'Screen', exact: true }).isChecked(), 'Screen is the scene');
  result.screen_shared = true;
  await page.getByRole('button', { name: 'Stop sharing', exact: true }).click();
  await page.getByRole('button', { name: 'Share screen', exact: true }).waitFor();

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

  step('a thumbnail shows slide 3, Previous goes back to 2');
  await slides.getByRole('list', { name: 'Pages of the deck' }).getByRole('button').nth(2).waitFor();
  await slides.getByRole('button', { name: 'Show slide 3', exact: true }).click();
  await slides.getByText('Slide 3 of 3', { exact: true }).waitFor();
  check(await slides.getByRole('button', { name: 'Show slide 3', exact: true }).getAttribute('aria-current') === 'true', 'the thumbnail of the shown slide is current');
  await slides.getByRole('button', { name: 'Previous slide', exact: true }).click();
  await slides.getByText('Slide 2 of 3', { exact: true }).waitFor();

  step('switch the scene to slides');
  const scene = page.getByRole('group', { name: 'Scene' });
  await scene.getByRole('radio', { name: 'Slides', exact: true }).check();
  await page.getByRole('status').filter({ hasText: 'Scene: Slides.' }).waitFor();
  check(await scene.getByRole('radio', { name: 'Slides', exact: true }).isChecked(), 'Slides is the checked scene');
  result.scene = 'slides';

  step('switch the layout to grid');
  const layout = page.getByRole('group', { name: 'Layout' });
  await layout.getByRole('radio', { name: 'Grid', exact: true }).check();
  await page.getByRole('status').filter({ hasText: 'Layout: Grid.' }).waitFor();
  result.layout = 'grid';

  step('draw on the whiteboard, then clear it');
  const boardRegion = page.getByRole('region', { name: 'Whiteboard' });
  const canvas = boardRegion.locator('canvas');
  await canvas.scrollIntoViewIfNeeded();
  const box = await canvas.boundingBox();
  await page.mouse.move(box.x + box.width * 0.1, box.y + box.height * 0.5);
  await page.mouse.down();
  for (let i = 1; i <= 10; i++) await page.mouse.move(box.x + box.width * (0.1 + 0.07 * i), box.y + box.height * 0.5);
  await page.mouse.up();
  const board = boardRegion.getByRole('application', { name: /^Whiteboard, 1 stroke:/ });
  await board.waitFor();
  const drawn = await canvas.evaluate((c) => {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let ink = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i] < 200 || d[i + 1] < 200 || d[i + 2] < 200) ink++;
    return ink;
  });
  check(drawn > 50, `the stroke is on the canvas (${drawn} ink pixels)`);
  // the keyboard draws too: Space puts the pen down, arrows move it, Space lifts it
  await board.focus();
  await page.keyboard.press('Space');
  for (let i = 0; i < 5; i++) await page.keyboard.press('ArrowRight');
  for (let i = 0; i < 3; i++) await page.keyboard.press('ArrowDown');
  await page.keyboard.press('Space');
  await boardRegion.getByRole('application', { name: /^Whiteboard, 2 strokes:/ }).waitFor();
  await boardRegion.getByRole('button', { name: 'Clear whiteboard', exact: true }).click();
  await boardRegion.getByRole('application', { name: /^Whiteboard, 0 strokes:/ }).waitFor();
  result.board = { ink_pixels: drawn, keyboard_stroke: true, cleared: true };

  step('show a link to the students, then hide it');
  const links = page.getByRole('region', { name: 'Links for students' });
  await links.getByLabel('Link label', { exact: true }).fill('Course survey');
  await links.getByLabel('Link URL', { exact: true }).fill('https://school.test/survey');
  await links.getByRole('button', { name: 'Show link', exact: true }).click();
  await links.getByRole('img', { name: 'QR code for Course survey', exact: true }).waitFor();
  result.cta_shown = true;
  await links.getByRole('button', { name: 'Hide link: Course survey', exact: true }).click();
  await links.getByRole('img', { name: 'QR code for Course survey', exact: true }).waitFor({ state: 'detached' });

  step('lock the room; exam mode on and off');
  const room = page.getByRole('region', { name: 'Room' });
  await room.getByRole('button', { name: 'Lock room', exact: true }).click();
  await room.locator('button[aria-pressed="true"]', { hasText: 'Lock room' }).waitFor();
  await room.getByRole('button', { name: 'Exam mode', exact: true }).click();
  await room.locator('button[aria-pressed="true"]', { hasText: 'Exam mode' }).waitFor();
  check(await page.getByRole('button', { name: 'Share screen', exact: true }).isDisabled(), 'no screen sharing in exam mode');
  await room.getByRole('button', { name: 'Exam mode', exact: true }).click();
  await room.locator('button[aria-pressed="false"]', { hasText: 'Exam mode' }).waitFor();
  result.room = { locked: true, exam_mode_toggled: true };

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

  step('a participant: grant Speak, mute, remove');
  const people = page.getByRole('region', { name: 'Participants' });
  const row = people.getByRole('listitem').filter({ hasText: studentName });
  await row.waitFor();
  const participantId = await row.getAttribute('data-participant-id');
  await row.getByText(`Permissions of ${studentName}`, { exact: true }).click();
  const speak = row.getByRole('group', { name: `Permissions of ${studentName}` }).getByRole('checkbox', { name: 'Speak', exact: true });
  check(!(await speak.isChecked()), 'a student may not speak at first');
  await speak.check();
  await page.getByRole('status').filter({ hasText: `${studentName}: Speak allowed.` }).waitFor();
  await people.getByRole('button', { name: `Mute ${studentName}`, exact: true }).click();
  await page.getByRole('status').filter({ hasText: `${studentName} is muted.` }).waitFor();
  await people.getByRole('button', { name: `Remove ${studentName}`, exact: true }).click();
  await people.getByRole('button', { name: `Confirm remove ${studentName}`, exact: true }).click();
  await page.getByRole('status').filter({ hasText: `${studentName} was removed from the class.` }).waitFor();
  await row.waitFor({ state: 'detached' });
  result.participant = { id: participantId, granted: 'speak', muted: 'audio', removed: true };

  step('end the class');
  await page.getByRole('button', { name: 'End class', exact: true }).click();
  await page.getByRole('button', { name: 'Confirm end class', exact: true }).click();
  await page.getByRole('status').filter({ hasText: 'The class has ended.' }).waitFor();
  result.ended = true;

  step('after the class: the replay is prepared and published');
  const after = page.getByRole('region', { name: 'After the class' });
  await after.getByRole('list', { name: 'Replay preparation stages' }).or(after.locator('p[data-state]')).first().waitFor();
  await after.getByLabel('Who can watch', { exact: true }).selectOption('tenant');
  await after.getByRole('button', { name: 'Publish replay', exact: true }).click();
  await after.getByText('Published for everyone on campus.').waitFor();
  result.published = (await after.getByRole('link', { name: 'Open the replay', exact: true }).getAttribute('href')).replace('#/replay/', '');
  await axe(page, 'studio-after');
  await shots(page, 'studio-after');

  result.ok = result.camera_published && result.screen_shared && !!result.deck_id && result.slide_index === 1 && result.scene === 'slides' && !!result.poll_id && result.ended && !!result.published;
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
