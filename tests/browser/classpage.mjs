// The student class page of the web app (web/dist, served by core at `/`)
// in real headless Chromium: a student signs in through the labelled form,
// follows "Join <class>" in My classes, reads the recording notice and
// consents, waits for the live state; sends a chat message and sees it in
// the chat list, asks a question and sees it, raises a hand, votes in an
// open poll; reports whether the class's video renders frames; the page
// passes axe-core (no serious or critical violation) and fits 390 px. Then
// an outsider (not on the course's roster) opens the class and is refused
// with the not-enrolled alert. Prints one JSON line.
//
//   CORE_URL=http://127.0.0.1:8080 PASSWORD=... SESSION=<id> \
//     STUDENT_EMAIL=student1@demo.test OUTSIDER_EMAIL=student9@demo.test \
//     SHOTS_DIR=/tmp/shots TIMEOUT_MS=90000 node classpage.mjs
import { harness, launch, signIn as signInAs } from './harness.mjs';

const core = (process.env.CORE_URL || 'http://127.0.0.1:8080').replace(/\/$/, '');
const password = process.env.PASSWORD;
const session = process.env.SESSION;
const studentEmail = process.env.STUDENT_EMAIL || 'student1@demo.test';
const outsiderEmail = process.env.OUTSIDER_EMAIL || 'student9@demo.test';
const shotsDir = process.env.SHOTS_DIR || '';
const timeoutMs = Number(process.env.TIMEOUT_MS || 90000);

const stamp = Date.now();
const chatText = `Hello from the class page ${stamp}`;
const questionText = `Why is the sky blue ${stamp}?`;

const result = {
  ok: false,
  step: 'start',
  steps: [],
  session,
  joined_via_link: false,
  chat_seen: false,
  question_seen: false,
  hand_raised: false,
  poll_open: false,
  voted: false,
  slide_shown: false,
  video_frames: 0,
  video: null,
  axe: {},
  screenshots: [],
  outsider_refused: false,
  outsider_alert: null,
  note_saved: false,
  reconnected: false,
  console_errors: [],
  failed_requests: [],
};

const { watchdog, step, check, axe, shots } = harness('classpage', result, { timeoutMs, shotsDir });
const browser = await launch({ media: true });

const signIn = (page, email) => signInAs(page, core, email, password);

async function signOut(page) {
  await page.getByRole('button', { name: 'Sign out', exact: true }).click();
  await page.getByRole('heading', { level: 1, name: 'Sign in' }).waitFor();
}

/** The first <video>'s rendered frames, within `ms`; 0 when there is none. */
async function videoFrames(page, ms) {
  const until = Date.now() + ms;
  let last = null;
  while (Date.now() < until) {
    last = await page.evaluate(() => {
      const v = document.querySelector('main video');
      if (!v) return null;
      const q = v.getVideoPlaybackQuality();
      return { width: v.videoWidth, height: v.videoHeight, frames: q.totalVideoFrames, muted: v.muted, paused: v.paused };
    });
    if (last && last.width > 0 && last.frames > 10) break;
    await page.waitForTimeout(250);
  }
  result.video = last;
  return last ? last.frames : 0;
}

let page = null;
try {
  check(password, 'PASSWORD is set');
  check(session, 'SESSION is set');
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

  // every WebSocket the page opens is kept, so the test can drop the live feed's
  await page.addInitScript(() => {
    const Native = window.WebSocket;
    window.__sockets = [];
    window.WebSocket = class extends Native {
      constructor(...args) {
        super(...args);
        window.__sockets.push(this);
      }
    };
  });
  const feedUrls = () => page.evaluate(() => window.__sockets.map((w) => w.url).filter((u) => /\/sessions\/[^/]+\/live/.test(u)));

  step('the student signs in');
  await signIn(page, studentEmail);

  step('My classes lists the live class with a Join link');
  await page.waitForFunction(() => !document.querySelector('main [aria-busy="true"]'));
  const joinLink = page.locator(`main a[href="#/class/${session}"]`);
  if (await joinLink.count() > 0) {
    const name = (await joinLink.first().textContent()).trim();
    check(name.startsWith('Join '), `the link is named "Join …" (${name})`);
    await page.getByRole('link', { name, exact: true }).first().click();
    result.joined_via_link = true;
  } else {
    await page.goto(`${core}/#/class/${session}`);
  }
  check(page.url().endsWith(`#/class/${session}`), `at #/class/<session> (${page.url()})`);

  step('the recording notice');
  const notice = page.getByRole('region', { name: 'This class is recorded' });
  await notice.waitFor();
  await notice.getByRole('button', { name: 'Join without being recorded', exact: true }).waitFor();
  await axe(page, 'class-notice');
  await notice.getByRole('button', { name: 'Join and consent to recording', exact: true }).click();

  step('the live state');
  const chat = page.getByRole('region', { name: 'Chat' });
  await chat.waitFor();
  await page.getByRole('button', { name: 'Leave class', exact: true }).waitFor();
  await page.getByRole('button', { name: 'Captions', exact: true }).waitFor();
  check(await page.getByRole('button', { name: 'Captions', exact: true }).getAttribute('aria-pressed') !== null,
    'Captions is a toggle (aria-pressed)');

  step('send a chat message');
  await page.getByLabel('Message', { exact: true }).fill(chatText);
  await page.getByRole('button', { name: 'Send', exact: true }).click();
  await chat.getByRole('list', { name: 'Chat messages' }).getByText(chatText).waitFor();
  result.chat_seen = true;

  step('ask a question');
  const questions = page.getByRole('region', { name: 'Questions' });
  await page.getByLabel('Ask a question', { exact: true }).fill(questionText);
  await page.getByRole('button', { name: 'Ask', exact: true }).click();
  await questions.getByRole('list', { name: 'Questions' }).getByText(questionText).waitFor();
  await questions.getByRole('button', { name: `Upvote: ${questionText}`, exact: true }).waitFor();
  result.question_seen = true;

  step('raise a hand');
  await page.getByRole('button', { name: 'Raise hand', exact: true }).click();
  await page.getByRole('button', { name: 'Lower hand', exact: true }).waitFor();
  result.hand_raised = true;

  step('vote if a poll is open');
  const poll = page.getByRole('region', { name: 'Poll' });
  const radios = poll.getByRole('radio');
  if (await radios.count() > 0) {
    result.poll_open = true;
    await radios.first().check();
    await poll.getByRole('button', { name: 'Vote', exact: true }).first().click();
    await poll.getByText(/You voted for/).waitFor();
    result.voted = true;
  }

  step('save a private note');
  const noteField = page.getByLabel('Note', { exact: true });
  if (await noteField.count() > 0) {
    const noteText = `My note ${stamp}`;
    await noteField.fill(noteText);
    await page.getByRole('button', { name: 'Save note', exact: true }).click();
    await page.getByRole('list', { name: 'Your notes' }).getByText(noteText).waitFor();
    result.note_saved = true;
  }

  step('a slide, if one is shown');
  const slide = page.getByRole('img', { name: /^Slide \d+$/ });
  if (await slide.count() > 0) {
    await page.waitForFunction(() => {
      const img = [...document.querySelectorAll('main img')].find((i) => /^Slide \d+$/.test(i.alt));
      return img && img.complete && img.naturalWidth > 0;
    }, null, { timeout: 10000 }).then(() => { result.slide_shown = true; }, () => {});
  }

  step('the video');
  result.video_frames = await videoFrames(page, 15000);

  step('the feed drops: "Reconnecting…", then it resumes');
  if ((await feedUrls()).length > 0) {
    await page.evaluate(() => {
      window.__sawReconnecting = false;
      const seen = () => [...document.querySelectorAll('[role="status"]')].some((e) => e.textContent.includes('Reconnecting…'));
      new MutationObserver(() => { if (seen()) window.__sawReconnecting = true; })
        .observe(document.body, { subtree: true, childList: true, characterData: true });
    });
    const before = (await feedUrls()).length;
    await page.evaluate(() => window.__sockets.filter((w) => /\/live\?/.test(w.url)).at(-1).close());
    await page.waitForFunction(() => window.__sawReconnecting === true, null, { timeout: 10000 });
    const until = Date.now() + 15000;
    let urls = await feedUrls();
    while (urls.length === before && Date.now() < until) {
      await page.waitForTimeout(100);
      urls = await feedUrls();
    }
    check(urls.length > before, 'the page opened a new feed socket');
    check(/[?&]after=\d+/.test(urls.at(-1)), 'the new feed resumes with after=<last seq>');
    await page.waitForFunction(() => ![...document.querySelectorAll('[role="status"]')].some((e) => e.textContent.includes('Reconnecting…')), null, { timeout: 10000 });
    const again = `${chatText} (after reconnecting)`;
    await page.getByLabel('Message', { exact: true }).fill(again);
    await page.getByRole('button', { name: 'Send', exact: true }).click();
    await chat.getByRole('list', { name: 'Chat messages' }).getByText(again).waitFor();
    result.reconnected = true;
  }

  step('axe and screenshots of the class page');
  await axe(page, 'class');
  await shots(page, 'class');

  step('an error goes to an alert (empty chat message)');
  await page.getByLabel('Message', { exact: true }).fill('   ');
  await page.getByRole('button', { name: 'Send', exact: true }).click();
  await page.getByRole('alert').filter({ hasText: 'Write a message first.' }).waitFor();

  step('leave the class');
  await page.getByRole('button', { name: 'Leave class', exact: true }).click();
  await page.getByRole('button', { name: 'Rejoin the class', exact: true }).waitFor();

  step('sign out; the outsider opens the class');
  await signOut(page);
  await signIn(page, outsiderEmail);
  await page.goto(`${core}/#/class/${session}`);
  await page.getByRole('region', { name: 'This class is recorded' })
    .getByRole('button', { name: 'Join without being recorded', exact: true }).click();
  const refused = page.getByRole('alert').filter({ hasText: 'You are not enrolled in this course' });
  await refused.waitFor();
  result.outsider_alert = (await refused.textContent()).trim();
  result.outsider_refused = true;
  await axe(page, 'class-refused');
  await shots(page, 'class-refused');
  await signOut(page);

  result.ok = result.chat_seen && result.question_seen && result.hand_raised && result.outsider_refused;
  result.step = 'done';
} catch (e) {
  result.error = String(e && e.message ? e.message : e).split('\n').slice(0, 6).join('\n');
  // what the page said when it failed
  result.page_messages = await page?.evaluate(() =>
    [...document.querySelectorAll('[role="alert"], [role="status"]')].map((e) => e.textContent.trim()).filter(Boolean),
  ).catch(() => null);
} finally {
  clearTimeout(watchdog);
  await browser.close();
  console.log(JSON.stringify(result));
}
