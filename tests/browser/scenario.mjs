// A whole class in the web app, console to replay, in real headless
// Chromium against the real stack (recording on). Five people in five
// browser contexts:
//   - the admin adds a teacher, two students and an outsider in Console →
//     Users, creates a course, enrolls the teacher and the two students, adds
//     a lesson and schedules it;
//   - the teacher signs in, presses "Go live: <lesson>" in My classes, lands
//     in the studio, starts the camera, uploads a deck of coloured pages,
//     switches to the Slides scene and pages to slide 2;
//   - both students join from My classes (recording notice first) and see
//     slide 2 — checked on the pixels of what their page shows, against the
//     page colours — then slide 3 when the teacher pages on;
//   - the teacher draws on the whiteboard in the Whiteboard scene: both
//     students' boards show the pen colour (pixels again);
//   - chat, a question asked by one student, upvoted by the other and
//     answered by the teacher, a poll the teacher opens, both vote in
//     (results in the studio) and the teacher closes, both raise hands (the
//     studio's queue, the teacher lowers one);
//   - the teacher grants the first student Speak in the participants panel
//     and she turns her microphone on from the class page;
//   - the outsider is refused;
//   - the teacher ends the class, waits for the replay to be prepared and
//     publishes it; a student opens it from the Replays library, plays it
//     from a chapter and from a search hit (the video's clock moves there).
// Every page passes axe-core; screenshots at 1280 and 390 px. Prints one
// JSON line.
//
//   CORE_URL=http://127.0.0.1:8080 ADMIN_EMAIL=admin@demo.test PASSWORD=... \
//     DECK_PDF=/tmp/deck.pdf DECK_COLORS='[[255,0,0],[0,0,255],[255,0,255]]' \
//     SHOTS_DIR=/tmp/shots TIMEOUT_MS=400000 node scenario.mjs
import { harness, launch, signIn as signInAs } from './harness.mjs';
import { randomBytes } from 'node:crypto';

const core = (process.env.CORE_URL || 'http://127.0.0.1:8080').replace(/\/$/, '');
const adminEmail = process.env.ADMIN_EMAIL || 'admin@demo.test';
const adminPassword = process.env.PASSWORD;
const deckPdf = process.env.DECK_PDF;
const deckColors = JSON.parse(process.env.DECK_COLORS || '[]');
const shotsDir = process.env.SHOTS_DIR || '';
const timeoutMs = Number(process.env.TIMEOUT_MS || 400000);
const penColor = [0x1f, 0x4e, 0x9e]; // the studio's first pen ("Blue")

const stamp = Date.now();
const pw = () => `${randomBytes(9).toString('base64url')}-A1`;
const person = (tag, name, role) => ({ email: `${tag}-${stamp}@example.test`, name: `${name} ${stamp}`, role, password: pw() });
const teacher = person('sc-teacher', 'Tess Teacher', 'teacher');
const students = [person('sc-ana', 'Ana Student', 'student'), person('sc-ben', 'Ben Student', 'student')];
const outsider = person('sc-out', 'Olga Outsider', 'student');
const courseTitle = `Biology ${stamp}`;
const lessonTitle = 'Photosynthesis';
const question = 'How does photosynthesis store energy?';
const pollQuestion = 'Which organelle does photosynthesis?';

const result = {
  ok: false,
  step: 'start',
  steps: [],
  course_id: null,
  session_id: null,
  replay_id: null,
  teacher_email: teacher.email,
  student_emails: students.map((s) => s.email),
  student_names: students.map((s) => s.name),
  outsider_email: outsider.email,
  slide_pixels: [],
  board_pixels: [],
  poll_results: null,
  hands_in_studio: 0,
  question_votes_in_studio: null,
  outsider_refused: false,
  student_speaks: false,
  published: false,
  artifacts_state: null,
  chapter_seek: null,
  search_seek: null,
  axe: {},
  screenshots: [],
  console_errors: [],
  failed_requests: [],
};

const { watchdog, step, check, axe, shots } = harness('scenario', result, { timeoutMs, shotsDir });
const browser = await launch({ media: true });
const pages = [];

async function open(label) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await ctx.newPage();
  page.setDefaultTimeout(20000);
  page.on('console', (m) => {
    if (m.type() === 'error') result.console_errors.push(`${label}: ${m.text()}`);
  });
  page.on('pageerror', (e) => result.console_errors.push(`${label}: ${e}`));
  page.on('response', (r) => {
    if (r.status() >= 400) {
      const url = r.url().replace(/token=[^&]*/, 'token=…').replace(/sig=[^&]*/, 'sig=…');
      result.failed_requests.push(`${label}: ${r.status()} ${r.request().method()} ${url}`);
    }
  });
  pages.push([label, page]);
  return page;
}

const status = (page, text) => page.getByRole('status').filter({ hasText: text }).first().waitFor();

/**
 * The mean colour of what the page shows inside `locator` (a screenshot of
 * the element, decoded in the page), and the share of pixels within 60 of
 * `near` on each channel.
 */
async function pixels(page, locator, near) {
  const png = await locator.screenshot();
  return page.evaluate(async ({ b64, near }) => {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const bmp = await createImageBitmap(new Blob([bytes], { type: 'image/png' }));
    const c = new OffscreenCanvas(bmp.width, bmp.height);
    const g = c.getContext('2d');
    g.drawImage(bmp, 0, 0);
    const d = g.getImageData(0, 0, bmp.width, bmp.height).data;
    let r = 0, gr = 0, b = 0, close = 0;
    const n = d.length / 4;
    for (let i = 0; i < d.length; i += 4) {
      r += d[i]; gr += d[i + 1]; b += d[i + 2];
      if (near && Math.abs(d[i] - near[0]) < 60 && Math.abs(d[i + 1] - near[1]) < 60 && Math.abs(d[i + 2] - near[2]) < 60) close++;
    }
    return { mean: [Math.round(r / n), Math.round(gr / n), Math.round(b / n)], near: close / n, width: bmp.width, height: bmp.height };
  }, { b64: png.toString('base64'), near });
}

/** Which deck page colour the mean is closest to (index), and how close. */
function closestPage(mean) {
  let best = -1, dist = Infinity;
  deckColors.forEach((c, i) => {
    const d = Math.hypot(c[0] - mean[0], c[1] - mean[1], c[2] - mean[2]);
    if (d < dist) { dist = d; best = i; }
  });
  return { index: best, distance: Math.round(dist) };
}

/** Waits until the student's page shows slide `index` and checks its pixels. */
async function seesSlide(page, who, index) {
  const img = page.getByRole('img', { name: `Slide ${index + 1}`, exact: true });
  await img.waitFor();
  await page.waitForFunction((alt) => {
    const i = [...document.querySelectorAll('main img')].find((x) => x.alt === alt);
    return i && i.complete && i.naturalWidth > 0;
  }, `Slide ${index + 1}`);
  const px = await pixels(page, img, deckColors[index]);
  const match = closestPage(px.mean);
  result.slide_pixels.push({ who, want: index, mean: px.mean, near: Math.round(px.near * 100) / 100, closest: match.index, distance: match.distance });
  check(match.index === index && px.near > 0.8, `${who} sees slide ${index + 1} in pixels (mean ${px.mean}, closest page ${match.index + 1}, ${Math.round(px.near * 100)} % near)`);
}

try {
  check(adminPassword && deckPdf && deckColors.length >= 3, 'PASSWORD, DECK_PDF and DECK_COLORS are set');

  // ------------------------------------------------------------ the admin
  step('the admin signs in and adds a teacher, two students and an outsider');
  const admin = await open('admin');
  await signInAs(admin, core, adminEmail, adminPassword);
  await admin.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Console', exact: true }).click();
  await admin.getByRole('heading', { level: 1, name: 'Users' }).waitFor();
  for (const p of [teacher, ...students, outsider]) {
    await admin.getByLabel('Email', { exact: true }).fill(p.email);
    await admin.getByLabel('Display name', { exact: true }).fill(p.name);
    await admin.getByLabel('Role', { exact: true }).selectOption(p.role);
    await admin.getByLabel('Password', { exact: true }).fill(p.password);
    await admin.getByRole('button', { name: 'Add user', exact: true }).click();
    await status(admin, `Added ${p.name}`);
  }

  step('the admin creates the course and enrolls the teacher and the two students');
  const consoleNav = admin.getByRole('navigation', { name: 'Console' });
  await consoleNav.getByRole('link', { name: 'Courses', exact: true }).click();
  await admin.getByRole('heading', { level: 1, name: 'Courses' }).waitFor();
  await admin.getByLabel('Course title', { exact: true }).fill(courseTitle);
  await admin.getByRole('button', { name: 'Create course', exact: true }).click();
  await status(admin, `Created the course ${courseTitle}`);
  await admin.getByRole('link', { name: `Members of ${courseTitle}`, exact: true }).click();
  await admin.getByRole('heading', { level: 1, name: 'Course members' }).waitFor();
  result.course_id = /#\/console\/courses\/([0-9a-f-]{36})$/.exec(admin.url())?.[1] ?? null;
  check(result.course_id, 'at the course members page');
  for (const [p, role] of [[teacher, 'teacher'], ...students.map((s) => [s, 'student'])]) {
    await admin.getByLabel('Email', { exact: true }).fill(p.email);
    await admin.getByLabel('Course role', { exact: true }).selectOption(role);
    await admin.getByRole('button', { name: 'Enroll', exact: true }).click();
    await admin.getByRole('table').getByRole('row').filter({ hasText: p.email }).waitFor();
  }

  step('the admin adds the lesson and schedules it');
  await admin.getByLabel('Lesson title', { exact: true }).fill(lessonTitle);
  await admin.getByRole('button', { name: 'Add lesson', exact: true }).click();
  await status(admin, `Added the lesson ${lessonTitle}`);
  const soon = new Date(Date.now() + 10 * 60_000);
  const p2 = (n) => String(n).padStart(2, '0');
  await admin.getByLabel(`Start time for ${lessonTitle}`, { exact: true })
    .fill(`${soon.getFullYear()}-${p2(soon.getMonth() + 1)}-${p2(soon.getDate())}T${p2(soon.getHours())}:${p2(soon.getMinutes())}`);
  await admin.getByRole('button', { name: `Schedule ${lessonTitle}`, exact: true }).click();
  await status(admin, `Scheduled ${lessonTitle}`);

  // ---------------------------------------------------------- the teacher
  step('the teacher goes live from My classes and lands in the studio');
  const studio = await open('teacher');
  await signInAs(studio, core, teacher.email, teacher.password);
  await studio.getByRole('button', { name: `Go live: ${lessonTitle}`, exact: true }).click();
  await studio.getByRole('heading', { level: 1, name: /^Studio/ }).waitFor();
  result.session_id = /#\/studio\/([0-9a-f-]{36})$/.exec(studio.url())?.[1] ?? null;
  check(result.session_id, `at #/studio/<id> (${studio.url()})`);
  await status(studio, 'The studio is connected to the class.');

  step('the teacher starts the camera and uploads the deck');
  await studio.getByRole('button', { name: 'Start camera', exact: true }).click();
  await studio.getByRole('button', { name: 'Stop camera', exact: true }).waitFor();
  const slides = studio.getByRole('region', { name: 'Slides' });
  await slides.getByLabel('Deck file', { exact: true }).setInputFiles(deckPdf);
  await slides.getByRole('button', { name: 'Upload deck', exact: true }).click();
  await slides.getByText(`Slide 1 of ${deckColors.length}`, { exact: true }).waitFor({ timeout: 60000 });
  await slides.getByRole('list', { name: 'Pages of the deck' }).getByRole('button').nth(deckColors.length - 1).waitFor();

  step('the teacher switches to the Slides scene and shows slide 2 (a thumbnail)');
  await studio.getByRole('group', { name: 'Scene' }).getByRole('radio', { name: 'Slides', exact: true }).check();
  await status(studio, 'Scene: Slides.');
  await slides.getByRole('button', { name: 'Show slide 2', exact: true }).click();
  await slides.getByText(`Slide 2 of ${deckColors.length}`, { exact: true }).waitFor();

  // --------------------------------------------------------- the students
  const classPages = [];
  for (const s of students) {
    step(`${s.name} joins from My classes, consenting to the recording`);
    const page = await open(s.name);
    await signInAs(page, core, s.email, s.password);
    await page.getByRole('link', { name: `Join ${lessonTitle}`, exact: true }).or(page.getByRole('link', { name: /^Join / })).first().click();
    check(page.url().endsWith(`#/class/${result.session_id}`), `at the class (${page.url()})`);
    await page.getByRole('region', { name: 'This class is recorded' })
      .getByRole('button', { name: 'Join and consent to recording', exact: true }).click();
    await page.getByRole('region', { name: 'Chat' }).waitFor();
    classPages.push([s, page]);
  }

  step('both students see slide 2, on pixels');
  for (const [s, page] of classPages) await seesSlide(page, s.name, 1);
  await axe(classPages[0][1], 'scenario-class');
  await shots(classPages[0][1], 'scenario-class');

  step('the teacher pages on; both students see slide 3, on pixels');
  await slides.getByRole('button', { name: 'Next slide', exact: true }).click();
  await slides.getByText(`Slide 3 of ${deckColors.length}`, { exact: true }).waitFor();
  for (const [s, page] of classPages) await seesSlide(page, s.name, 2);

  step('the teacher talks over slide 3 (the lesson\'s pace: a view held 9 s is a chapter of the replay)');
  await studio.waitForTimeout(9000);

  step('the teacher draws on the whiteboard; both students see the stroke');
  await studio.getByRole('group', { name: 'Scene' }).getByRole('radio', { name: 'Whiteboard', exact: true }).check();
  await status(studio, 'Scene: Whiteboard.');
  const board = studio.getByRole('region', { name: 'Whiteboard' }).locator('canvas');
  await board.scrollIntoViewIfNeeded();
  const box = await board.boundingBox();
  check(box && box.width > 100, 'the studio board is drawn');
  await studio.mouse.move(box.x + box.width * 0.2, box.y + box.height * 0.3);
  await studio.mouse.down();
  for (let i = 1; i <= 20; i++) {
    await studio.mouse.move(box.x + box.width * (0.2 + 0.03 * i), box.y + box.height * (0.3 + 0.02 * i));
  }
  await studio.mouse.up();
  await status(studio, 'Stroke drawn.');
  for (const [s, page] of classPages) {
    const shown = page.getByRole('img', { name: 'Whiteboard, 1 stroke', exact: true });
    await shown.waitFor();
    const px = await pixels(page, shown, penColor);
    result.board_pixels.push({ who: s.name, mean: px.mean, pen_share: Math.round(px.near * 1000) / 1000 });
    check(px.near > 0.001, `${s.name}'s board shows the pen colour (${Math.round(px.near * 1000) / 10} % of pixels)`);
  }
  await axe(studio, 'scenario-studio');
  await shots(studio, 'scenario-studio');

  step('chat: each student writes, the other and the studio read it');
  const [ana, anaPage] = classPages[0];
  const [ben, benPage] = classPages[1];
  const hello = `Good morning from ${ana.name}`;
  await anaPage.getByLabel('Message', { exact: true }).fill(hello);
  await anaPage.getByRole('button', { name: 'Send', exact: true }).click();
  await benPage.getByRole('list', { name: 'Chat messages' }).getByText(hello).waitFor();
  const reply = `Hi from ${ben.name}`;
  await benPage.getByLabel('Message', { exact: true }).fill(reply);
  await benPage.getByRole('button', { name: 'Send', exact: true }).click();
  await anaPage.getByRole('list', { name: 'Chat messages' }).getByText(reply).waitFor();
  await studio.getByRole('region', { name: 'Chat' }).getByText(reply).waitFor();

  step('a question asked by one student and upvoted by the other');
  await anaPage.getByLabel('Ask a question', { exact: true }).fill(question);
  await anaPage.getByRole('button', { name: 'Ask', exact: true }).click();
  await benPage.getByRole('button', { name: `Upvote: ${question}`, exact: true }).click();
  await benPage.getByRole('button', { name: `Upvote: ${question}`, exact: true }).filter({ hasText: 'Upvoted' }).waitFor();
  const studioQuestions = studio.getByRole('region', { name: 'Questions' });
  await studioQuestions.getByText('1 vote').first().waitFor();
  result.question_votes_in_studio = 1;
  await studioQuestions.getByRole('button', { name: `Answer: ${question}`, exact: true }).click();
  await status(studio, 'Question marked answered.');
  await anaPage.getByRole('region', { name: 'Questions' }).getByText('answered', { exact: false }).first().waitFor();

  step('the teacher opens a poll; both students vote; the studio shows the results');
  const poll = studio.getByRole('region', { name: 'Poll' });
  await poll.getByLabel('Poll question', { exact: true }).fill(pollQuestion);
  await poll.getByLabel('Options, one per line', { exact: true }).fill('Chloroplast\nMitochondrion');
  await poll.getByRole('button', { name: 'Open poll', exact: true }).click();
  const pollResults = poll.getByRole('list', { name: `Results of ${pollQuestion}` });
  await pollResults.waitFor();
  for (const [, page] of classPages) {
    const sp = page.getByRole('region', { name: 'Poll' });
    await sp.getByRole('radio', { name: 'Chloroplast', exact: true }).check();
    await sp.getByRole('button', { name: 'Vote', exact: true }).first().click();
    await sp.getByText(/You voted for/).waitFor();
  }
  await pollResults.getByText('Chloroplast: 2 votes', { exact: true }).waitFor();
  result.poll_results = (await pollResults.textContent()).replace(/\s+/g, ' ').trim();
  await poll.getByRole('button', { name: `Close poll: ${pollQuestion}`, exact: true }).click();
  await status(studio, 'The poll is closed.');
  await poll.getByRole('heading', { name: `${pollQuestion} (closed)` }).waitFor();

  step('both students raise hands; the studio queues them');
  for (const [, page] of classPages) {
    await page.getByRole('button', { name: 'Raise hand', exact: true }).click();
    await page.getByRole('button', { name: 'Lower hand', exact: true }).waitFor();
  }
  const hands = studio.getByRole('list', { name: 'Raised hands' });
  await hands.getByRole('listitem').nth(1).waitFor();
  result.hands_in_studio = await hands.getByRole('listitem').count();
  await studio.getByRole('button', { name: `Lower hand of ${ana.name}`, exact: true }).click();
  await anaPage.getByRole('button', { name: 'Raise hand', exact: true }).waitFor();

  step('the teacher lets the first student speak; she turns her microphone on');
  const people = studio.getByRole('region', { name: 'Participants' });
  const anaRow = people.getByRole('listitem').filter({ hasText: ana.name });
  await anaRow.locator('summary').click();
  await anaRow.getByRole('group', { name: `Permissions of ${ana.name}` }).getByRole('checkbox', { name: 'Speak', exact: true }).check();
  await status(studio, `${ana.name}: Speak allowed.`);
  await anaPage.getByRole('button', { name: 'Turn on your microphone', exact: true }).click();
  await status(anaPage, 'Your microphone is on');
  await anaPage.getByRole('button', { name: 'Turn off your microphone', exact: true }).waitFor();
  result.student_speaks = true;

  step('the outsider is refused');
  const out = await open('outsider');
  await signInAs(out, core, outsider.email, outsider.password);
  await out.goto(`${core}/#/class/${result.session_id}`);
  await out.getByRole('region', { name: 'This class is recorded' })
    .getByRole('button', { name: 'Join and consent to recording', exact: true }).click();
  await out.getByRole('alert').filter({ hasText: 'You are not enrolled in this course' }).waitFor();
  result.outsider_refused = true;

  step('the teacher ends the class');
  await studio.getByRole('button', { name: 'End class', exact: true }).click();
  await studio.getByRole('button', { name: 'Confirm end class', exact: true }).click();
  await status(studio, 'The class has ended.');
  for (const [, page] of classPages) await status(page, 'The class has ended.');

  step('the studio shows the replay being prepared, then ready');
  const after = studio.getByRole('region', { name: 'After the class' });
  await after.waitFor();
  await after.locator('p[data-state="done"]').waitFor({ timeout: 240000 });
  result.artifacts_state = 'done';
  await axe(studio, 'scenario-after');
  await shots(studio, 'scenario-after');

  step('the teacher publishes the replay');
  await after.getByRole('button', { name: 'Publish replay', exact: true }).click();
  await after.getByText('Published for the enrolled students.').waitFor();
  const replayLink = after.getByRole('link', { name: 'Open the replay', exact: true });
  result.replay_id = /#\/replay\/([0-9a-f-]{36})$/.exec(await replayLink.getAttribute('href'))?.[1] ?? null;
  result.published = true;

  step('a student opens the replay from the library');
  await benPage.goto(`${core}/#/replays`);
  await benPage.getByRole('heading', { level: 1, name: 'Replays' }).waitFor();
  await benPage.locator(`a[href="#/replay/${result.replay_id}"]`).first().click();
  const video = benPage.locator('video[aria-label="Replay video"]');
  await video.waitFor();
  await benPage.waitForFunction(() => {
    const v = document.querySelector('video[aria-label="Replay video"]');
    return v && v.readyState >= 1 && v.duration > 0;
  }, null, { timeout: 30000 });

  /** Seeks by a button and waits until the video's clock is there and moving. */
  async function playsFrom(button, atMs) {
    await button.click();
    await benPage.waitForFunction((at) => {
      const v = document.querySelector('video[aria-label="Replay video"]');
      return v && Math.abs(v.currentTime * 1000 - at) < 3000 && v.readyState >= 2;
    }, atMs, { timeout: 20000 });
    return benPage.evaluate(() => {
      const v = document.querySelector('video[aria-label="Replay video"]');
      return { current_ms: Math.round(v.currentTime * 1000), duration_ms: Math.round(v.duration * 1000) };
    });
  }

  step('play from a chapter');
  const chapters = benPage.getByRole('region', { name: 'Chapters' }).getByRole('button');
  await chapters.first().waitFor();
  const chapterCount = await chapters.count();
  // the last chapter: the whiteboard, well after the start
  const chapter = chapters.nth(chapterCount - 1);
  const chapterText = (await chapter.textContent()).replace(/\s+/g, ' ').trim();
  const chapterAt = /at (\d+):(\d\d)/.exec(chapterText);
  check(chapterAt, `the chapter names its time (${chapterText})`);
  const chapterMs = (Number(chapterAt[1]) * 60 + Number(chapterAt[2])) * 1000;
  result.chapter_seek = { chapter: chapterText, chapters: chapterCount, want_ms: chapterMs, ...(await playsFrom(chapter, chapterMs)) };

  step('search the replay and play from a hit');
  await benPage.getByLabel('Search this replay', { exact: true }).fill('photosynthesis');
  await benPage.getByRole('button', { name: 'Search', exact: true }).click();
  await benPage.getByRole('img', { name: /^Timeline with \d+ search match/ }).waitFor();
  const hit = benPage.getByRole('button', { name: /^Play from \d+:\d\d$/ }).first();
  const hitAt = /(\d+):(\d\d)/.exec(await hit.textContent());
  const hitMs = (Number(hitAt[1]) * 60 + Number(hitAt[2])) * 1000;
  result.search_seek = { want_ms: hitMs, ...(await playsFrom(hit, hitMs)) };
  await axe(benPage, 'scenario-replay');
  await shots(benPage, 'scenario-replay');

  step('the replay page reports the stretch watched when paused');
  await benPage.waitForFunction((from) => {
    const v = document.querySelector('video[aria-label="Replay video"]');
    return v && !v.paused && v.currentTime * 1000 > from + 1500;
  }, hitMs, { timeout: 20000 });
  const beacon = benPage.waitForResponse(
    (r) => r.url().endsWith(`/replays/${result.replay_id}/progress`) && r.request().method() === 'POST',
    { timeout: 20000 },
  );
  const pausedMs = await benPage.evaluate(() => {
    const v = document.querySelector('video[aria-label="Replay video"]');
    v.pause();
    return Math.round(v.currentTime * 1000);
  });
  const answer = await beacon;
  // the stretch played: from the search hit to the pause
  result.beacon = { status: answer.status(), from_ms: hitMs, to_ms: pausedMs };
  check(answer.status() === 204, `the beacon was taken (${answer.status()})`);

  result.ok = true;
  result.step = 'done';
} catch (e) {
  result.error = String(e && e.message ? e.message : e).split('\n').slice(0, 6).join('\n');
  result.page_messages = {};
  for (const [label, page] of pages) {
    result.page_messages[label] = await page.evaluate(() =>
      [...document.querySelectorAll('[role="alert"], [role="status"]')].map((e) => e.textContent.trim()).filter(Boolean),
    ).catch(() => null);
  }
} finally {
  clearTimeout(watchdog);
  await browser.close();
  console.log(JSON.stringify(result));
}
