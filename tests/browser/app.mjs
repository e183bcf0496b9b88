// The web app (web/dist, served by core at `/`) in real headless Chromium:
// an admin signs in through the labelled form, opens Console → Users, adds a
// user, changes its role, disables it, imports a CSV with one good and one
// bad line and reads the per-line report; Console → Courses: creates a
// course, enrolls student1 and the teacher by email, makes student1 an
// assistant and removes them; Settings: toggles Public viewing and back;
// adds the lesson "UI Lesson" and schedules it an hour ahead; Audit log
// filtered by `course.`; Edges (at least one edge); starts the run through
// the API, then Live classes: observes it, engages its chat kill switch and
// ends it (confirming first); Replays: publishes it publicly; opens the
// Replays library from the nav and the class's replay page (no recording
// message or video, a search with no match); opens My classes and signs out;
// then signs in again with the keyboard only (Tab/Enter) and signs out.
// Every page is checked with axe-core (no serious or critical violation) and
// screenshotted full-page at 1280 px and 390 px. Prints one JSON line.
// Driven by the Rust test `tests/tests/web_app.rs`.
//
//   CORE_URL=http://127.0.0.1:8080 ADMIN_EMAIL=admin@demo.test PASSWORD=... \
//     SHOTS_DIR=/tmp/shots TIMEOUT_MS=90000 node app.mjs
import { harness, launch } from './harness.mjs';
import { randomBytes } from 'node:crypto';

const core = (process.env.CORE_URL || 'http://127.0.0.1:8080').replace(/\/$/, '');
const adminEmail = process.env.ADMIN_EMAIL || 'admin@demo.test';
const password = process.env.PASSWORD;
const shotsDir = process.env.SHOTS_DIR || '';
const timeoutMs = Number(process.env.TIMEOUT_MS || 90000);

const stamp = Date.now();
const created = {
  email: `ui-${stamp}@example.test`,
  name: `UI Tester ${stamp}`,
  role: 'teacher',
  password: `${randomBytes(9).toString('base64url')}-A1`,
};
const changedRole = 'assistant';
const csv = [
  'email,display_name,role',
  `csv-${stamp}@example.test,CSV Good ${stamp},student`,
  `csv-bad-${stamp}@example.test,CSV Bad ${stamp},wizard`,
  '',
].join('\n');

const courseTitle = `UI Course ${stamp}`;
const studentEmail = 'student1@demo.test';
const teacherEmail = 'teacher@demo.test';
const lessonTitle = 'UI Lesson';

/** A `datetime-local` value: local time, to the minute. */
function localInput(d) {
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

const result = {
  ok: false,
  step: 'start',
  steps: [],
  created_email: created.email,
  changed_role: changedRole,
  course_id: null,
  course_title: courseTitle,
  lesson_title: lessonTitle,
  lesson_run_id: null,
  session_id: null,
  edges_seen: null,
  live_rows: null,
  axe: {},
  screenshots: [],
  console_errors: [],
};

const { watchdog, step, check, axe, shots } = harness('app', result, { timeoutMs, shotsDir });
const browser = await launch({ media: false });

async function expectTitle(page, text) {
  await page.waitForFunction((t) => document.title.startsWith(t), text);
}

async function signOut(page) {
  await page.getByRole('button', { name: 'Sign out', exact: true }).click();
  await page.getByRole('heading', { level: 1, name: 'Sign in' }).waitFor();
  check(page.url().endsWith('#/signin'), `signed out to #/signin (${page.url()})`);
  const tokens = await page.evaluate(() => sessionStorage.getItem('classroom.tokens'));
  check(tokens === null, 'no tokens left in sessionStorage');
}

try {
  check(password, 'PASSWORD is set');
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await ctx.newPage();
  page.setDefaultTimeout(Math.min(15000, timeoutMs));
  page.on('console', (m) => {
    if (m.type() === 'error') result.console_errors.push(m.text());
    process.stderr.write(`[page] ${m.type()}: ${m.text()}\n`);
  });
  page.on('pageerror', (e) => result.console_errors.push(String(e)));
  // no credentials ever travel in a URL
  page.on('framenavigated', (f) => {
    if (f.url().includes(password) || f.url().includes(encodeURIComponent(password))) {
      result.password_in_url = true;
    }
  });

  step('the root opens the sign-in page');
  await page.goto(`${core}/`);
  await page.getByRole('heading', { level: 1, name: 'Sign in' }).waitFor();
  await expectTitle(page, 'Sign in');
  check(page.url().endsWith('#/signin'), `root redirects to #/signin (${page.url()})`);
  check(await page.evaluate(() => document.documentElement.lang) === 'en', 'lang="en"');
  await axe(page, 'signin');
  await shots(page, 'signin');

  step('a wrong password shows the API message in an alert');
  await page.getByLabel('Email', { exact: true }).fill(adminEmail);
  await page.getByLabel('Password', { exact: true }).fill(`${password}-wrong`);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  const alert = page.getByRole('alert');
  await alert.waitFor();
  result.wrong_password_alert = (await alert.textContent()).trim();
  check(result.wrong_password_alert.length > 0, 'the alert has text');
  await axe(page, 'signin-error');

  step('the admin signs in through the labelled form');
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.getByRole('heading', { level: 1, name: 'My classes' }).waitFor();
  await expectTitle(page, 'My classes');
  const header = page.getByRole('banner');
  const nav = page.getByRole('navigation', { name: 'Main' });
  await nav.getByRole('link', { name: 'My classes', exact: true }).waitFor();
  await nav.getByRole('link', { name: 'Console', exact: true }).waitFor();
  result.signed_in_as = (await header.locator('.user-name').textContent()).trim();
  check(result.signed_in_as.length > 0, "the header shows the user's name");
  check(await page.locator('main').count() === 1, 'one <main>');

  step('My classes renders');
  await page.waitForFunction(() => !document.querySelector('main [aria-busy="true"]'));
  result.classes = {
    items: await page.locator('main .card').count(),
    empty: await page.getByText('You have no live or upcoming classes.').count() > 0,
  };
  check(result.classes.items > 0 || result.classes.empty, 'classes listed, or the empty state');
  await axe(page, 'classes');
  await shots(page, 'classes');

  step('Console → Users');
  await nav.getByRole('link', { name: 'Console', exact: true }).click();
  await page.getByRole('heading', { level: 1, name: 'Users' }).waitFor();
  await expectTitle(page, 'Users');
  check(page.url().endsWith('#/console/users'), `at #/console/users (${page.url()})`);
  const table = page.getByRole('table');
  await table.getByRole('row').filter({ hasText: adminEmail }).waitFor();
  await axe(page, 'users');
  await shots(page, 'users');

  step('add a user');
  const status = page.getByRole('status');
  await page.getByLabel('Email', { exact: true }).fill(created.email);
  await page.getByLabel('Display name', { exact: true }).fill(created.name);
  await page.getByLabel('Role', { exact: true }).selectOption(created.role);
  await page.getByLabel('Password', { exact: true }).fill(created.password);
  await page.getByRole('button', { name: 'Add user', exact: true }).click();
  await status.filter({ hasText: `Added ${created.name}` }).waitFor();
  const row = table.getByRole('row').filter({ hasText: created.email });
  await row.waitFor();
  check((await row.textContent()).includes(created.name), 'the new row shows the name');

  step('change its role');
  const roleSelect = page.getByLabel(`Role for ${created.name}`, { exact: true });
  check(await roleSelect.inputValue() === created.role, 'the new user has the chosen role');
  await roleSelect.selectOption(changedRole);
  await status.filter({ hasText: `${created.name} is now ${changedRole}` }).waitFor();

  step('disable it');
  await page.getByRole('button', { name: `Disable ${created.name}`, exact: true }).click();
  await page.getByRole('button', { name: `Enable ${created.name}`, exact: true }).waitFor();
  await status.filter({ hasText: `${created.name} is disabled` }).waitFor();
  check((await row.textContent()).includes('Disabled'), 'the row shows Disabled');

  step('a reload keeps the session and shows the saved changes');
  await page.reload();
  await page.getByRole('heading', { level: 1, name: 'Users' }).waitFor();
  await row.waitFor();
  check(await page.getByLabel(`Role for ${created.name}`, { exact: true }).inputValue() === changedRole,
    'the role change was saved');
  check((await row.textContent()).includes('Disabled'), 'the disable was saved');

  step('export what is held about the new user');
  await page.getByRole('button', { name: `Export data of ${created.name}`, exact: true }).click();
  const download = page.getByRole('link', { name: `Download the export of ${created.name} (ZIP)`, exact: true });
  await download.waitFor({ timeout: 60_000 });
  await status.filter({ hasText: `The export of ${created.name} is ready` }).waitFor();
  result.export_link = await download.getAttribute('href');
  await axe(page, 'users-export');

  step('import a CSV with one good and one bad line');
  await page.getByLabel('CSV file', { exact: true }).setInputFiles({
    name: 'users.csv', mimeType: 'text/csv', buffer: Buffer.from(csv),
  });
  await page.getByRole('button', { name: 'Import', exact: true }).click();
  const report = page.getByRole('region', { name: 'Import report' });
  await report.waitFor();
  await status.filter({ hasText: 'Import finished' }).waitFor();
  const reportText = (await report.textContent()).replace(/\s+/g, ' ');
  result.import_report = reportText.slice(0, 500);
  check(reportText.includes(`Line 2: csv-${stamp}@example.test`), 'line 2 created');
  check(/Errors \(1\)/.test(reportText) && reportText.includes('Line 3:'), 'line 3 refused');
  await table.getByRole('row').filter({ hasText: `csv-${stamp}@example.test` }).waitFor();
  await axe(page, 'users-import');
  await shots(page, 'users-import');

  step('Console → Courses');
  const consoleNav = page.getByRole('navigation', { name: 'Console' });
  await consoleNav.getByRole('link', { name: 'Courses', exact: true }).click();
  await page.getByRole('heading', { level: 1, name: 'Courses' }).waitFor();
  await expectTitle(page, 'Courses');
  check(page.url().endsWith('#/console/courses'), `at #/console/courses (${page.url()})`);
  await page.waitForFunction(() => document.activeElement?.tagName === 'H1');
  await page.waitForFunction(() => !document.querySelector('main [aria-busy="true"]'));
  await axe(page, 'courses');
  await shots(page, 'courses');

  step('create a course');
  await page.getByLabel('Course title', { exact: true }).fill(courseTitle);
  await page.getByRole('button', { name: 'Create course', exact: true }).click();
  await status.filter({ hasText: `Created the course ${courseTitle}` }).waitFor();
  const courseRow = page.getByRole('table').getByRole('row').filter({ hasText: courseTitle });
  await courseRow.waitFor();

  step('open its members');
  await courseRow.getByRole('link', { name: `Members of ${courseTitle}`, exact: true }).click();
  await page.getByRole('heading', { level: 1, name: 'Course members' }).waitFor();
  await expectTitle(page, 'Course members');
  const courseMatch = /#\/console\/courses\/([0-9a-f-]{36})$/.exec(page.url());
  check(courseMatch, `at #/console/courses/<id> (${page.url()})`);
  result.course_id = courseMatch[1];
  await page.getByText(courseTitle, { exact: true }).waitFor();
  const members = page.getByRole('table');

  step('enroll a student and a teacher by email');
  async function enroll(email, role) {
    await page.getByLabel('Email', { exact: true }).fill(email);
    await page.getByLabel('Course role', { exact: true }).selectOption(role);
    await page.getByRole('button', { name: 'Enroll', exact: true }).click();
    await status.filter({ hasText: email }).waitFor();
    const r = members.getByRole('row').filter({ hasText: email });
    await r.waitFor();
    return (await r.getByRole('rowheader').textContent()).trim();
  }
  const studentName = await enroll(studentEmail, 'student');
  const teacherName = await enroll(teacherEmail, 'teacher');
  check(await page.getByLabel(`Role for ${studentName}`, { exact: true }).inputValue() === 'student',
    'student1 is a student');
  check(await page.getByLabel(`Role for ${teacherName}`, { exact: true }).inputValue() === 'teacher',
    'the teacher is a teacher');
  await axe(page, 'course-members');
  await shots(page, 'course-members');

  step("change student1's course role to assistant");
  await page.getByLabel(`Role for ${studentName}`, { exact: true }).selectOption('assistant');
  await status.filter({ hasText: `${studentName} is now assistant` }).waitFor();

  step('remove student1; the teacher stays');
  await page.getByRole('button', { name: `Remove ${studentName}`, exact: true }).click();
  await status.filter({ hasText: `Removed ${studentName}` }).waitFor();
  await members.getByRole('row').filter({ hasText: studentEmail }).waitFor({ state: 'detached' });
  await members.getByRole('row').filter({ hasText: teacherEmail }).waitFor();

  step('a reload shows the saved roster');
  await page.reload();
  await page.getByRole('heading', { level: 1, name: 'Course members' }).waitFor();
  await members.getByRole('row').filter({ hasText: teacherEmail }).waitFor();
  check(await members.getByRole('row').filter({ hasText: studentEmail }).count() === 0, 'student1 stays removed');

  step('add a lesson and schedule it an hour ahead');
  await page.getByLabel('Lesson title', { exact: true }).fill(lessonTitle);
  await page.getByRole('button', { name: 'Add lesson', exact: true }).click();
  await status.filter({ hasText: `Added the lesson ${lessonTitle}` }).waitFor();
  const startAt = new Date(Date.now() + 3600_000);
  await page.getByLabel(`Start time for ${lessonTitle}`, { exact: true }).fill(localInput(startAt));
  const [runAnswer] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith('/lesson-runs') && r.request().method() === 'POST'),
    page.getByRole('button', { name: `Schedule ${lessonTitle}`, exact: true }).click(),
  ]);
  check(runAnswer.status() === 201, `POST /lesson-runs answered ${runAnswer.status()}`);
  const run = await runAnswer.json();
  result.lesson_run_id = run.id;
  const drift = Math.abs(new Date(run.scheduled_start).getTime() - startAt.getTime());
  check(drift < 120_000, `the run starts about an hour ahead (${run.scheduled_start})`);
  await status.filter({ hasText: `Scheduled ${lessonTitle}` }).waitFor();
  await page.getByRole('list', { name: `Scheduled runs of ${lessonTitle}` }).getByText(run.id).waitFor();
  await axe(page, 'course-lessons');
  await shots(page, 'course-lessons');

  step('Settings: toggle Public viewing and back');
  await consoleNav.getByRole('link', { name: 'Settings', exact: true }).click();
  await page.getByRole('heading', { level: 1, name: 'Settings' }).waitFor();
  await expectTitle(page, 'Settings');
  const save = page.getByRole('button', { name: 'Save settings', exact: true });
  await page.waitForFunction(() => !document.querySelector('main [aria-busy="true"]'));
  await save.and(page.locator(':enabled')).waitFor();
  await axe(page, 'settings');
  await shots(page, 'settings');
  const publicViewing = page.getByRole('checkbox', { name: 'Public viewing', exact: true });
  const before = await publicViewing.isChecked();
  result.public_viewing_before = before;
  for (const want of [!before, before]) {
    await publicViewing.setChecked(want);
    const [saved] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith('/tenant/settings') && r.request().method() === 'PATCH'),
      save.click(),
    ]);
    check(saved.status() === 200, `PATCH /tenant/settings answered ${saved.status()}`);
    check((await saved.json()).public_viewing === want, `the server has public_viewing ${want}`);
    await status.filter({ hasText: 'Settings saved.' }).waitFor();
    check(await publicViewing.isChecked() === want, `Public viewing is ${want} after saving`);
  }
  result.public_viewing_after = await publicViewing.isChecked();

  step('Audit log filtered by course.');
  await consoleNav.getByRole('link', { name: 'Audit log', exact: true }).click();
  await page.getByRole('heading', { level: 1, name: 'Audit log' }).waitFor();
  await expectTitle(page, 'Audit log');
  await page.getByLabel('Action', { exact: true }).fill('course.');
  await page.getByRole('button', { name: 'Filter', exact: true }).click();
  await page.waitForFunction(() => !document.querySelector('main [aria-busy="true"]'));
  const auditRows = page.getByRole('table').locator('tbody tr').filter({ hasText: 'course.' });
  await auditRows.first().waitFor();
  result.audit_rows = await auditRows.count();
  const actions = await page.getByRole('table').locator('tbody tr td:nth-child(3)').allTextContents();
  check(actions.length > 0 && actions.every((a) => a.trim().startsWith('course.')), `only course.* rows (${actions.slice(0, 5)})`);
  const sources = await page.getByRole('table').locator('tbody tr td:nth-child(5)').allTextContents();
  result.audit_sources = [...new Set(sources.map((s) => s.trim()))];
  await page.getByRole('button', { name: 'Verify the audit log', exact: true }).click();
  const verdict = page.getByRole('status').filter({ hasText: 'The audit log is whole' });
  await verdict.waitFor();
  result.audit_verdict = (await verdict.textContent()).trim();
  await axe(page, 'audit');
  await shots(page, 'audit');

  step('Console → Edges');
  await consoleNav.getByRole('link', { name: 'Edges', exact: true }).click();
  await page.getByRole('heading', { level: 1, name: 'Edges' }).waitFor();
  await expectTitle(page, 'Edges');
  const edgeRows = page.getByRole('region', { name: 'Edges table' }).locator('tbody tr:has(th)');
  await edgeRows.first().waitFor();
  await page.getByRole('button', { name: 'Refresh', exact: true }).click();
  await page.waitForFunction(() => !document.querySelector('main [aria-busy="true"]'));
  await status.filter({ hasText: 'healthy' }).waitFor();
  result.edges_seen = await edgeRows.count();
  check(result.edges_seen >= 1, `at least one edge (${result.edges_seen})`);
  await axe(page, 'edges');
  await shots(page, 'edges');

  step('Console → Destinations: add an RTMP destination; its key is never shown');
  await consoleNav.getByRole('link', { name: 'Destinations', exact: true }).click();
  await page.getByRole('heading', { level: 1, name: 'Stream destinations' }).waitFor();
  await expectTitle(page, 'Stream destinations');
  await page.getByLabel('Name', { exact: true }).fill('Open lecture channel');
  await page.getByLabel('Protocol').selectOption('rtmp');
  await page.getByLabel('Server URL').fill('rtmp://live.example.test/app');
  await page.getByLabel('Stream key').fill('very-secret-key-123');
  await page.getByLabel('Public (staff and content only)').check();
  await page.getByRole('button', { name: 'Add destination' }).click();
  await status.filter({ hasText: 'Added Open lecture channel' }).waitFor();
  const destRow = page
    .getByRole('region', { name: 'Destinations table' })
    .locator('tbody tr', { hasText: 'Open lecture channel' });
  await destRow.waitFor();
  const destText = await page.locator('main').innerText();
  check(!destText.includes('very-secret-key-123'), 'the stream key is not on the page');
  check((await page.getByLabel('Stream key').inputValue()) === '', 'the key field is emptied');
  result.destination_added = true;
  await axe(page, 'destinations');
  await shots(page, 'destinations');
  await page.getByRole('button', { name: 'Remove Open lecture channel' }).click();
  await status.filter({ hasText: 'Removed Open lecture channel' }).waitFor();

  step('start the scheduled run through the API, so one class is live');
  const started = await page.evaluate(async (lessonRunId) => {
    const { access_token } = JSON.parse(sessionStorage.getItem('classroom.tokens'));
    const r = await fetch('/sessions/start', {
      method: 'POST',
      headers: { Authorization: `Bearer ${access_token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ lesson_run_id: lessonRunId }),
    });
    return { status: r.status, body: await r.json().catch(() => null) };
  }, result.lesson_run_id);
  check(started.status === 201, `POST /sessions/start answered ${started.status}: ${JSON.stringify(started.body)}`);
  result.session_id = started.body.id ?? started.body.session_id ?? null;

  step('Console → Live classes');
  await consoleNav.getByRole('link', { name: 'Live classes', exact: true }).click();
  await page.getByRole('heading', { level: 1, name: 'Live classes' }).waitFor();
  await expectTitle(page, 'Live classes');
  await status.filter({ hasText: 'live class' }).waitFor();
  await page.waitForFunction(() => !document.querySelector('main [aria-busy="true"]'));
  const liveRows = page.getByRole('region', { name: 'Live classes table' }).locator('tbody tr:has(th)');
  result.live_rows = await liveRows.count();
  check(result.live_rows >= 1, `the started class is listed live (${result.live_rows})`);
  const liveTitle = (await liveRows.first().locator('th').textContent()).trim();
  result.live_title = liveTitle;
  await page.getByRole('button', { name: `Observe ${liveTitle}`, exact: true }).first().click();
  const observing = page.getByRole('region', { name: `Observing ${liveTitle}` }).first();
  await observing.getByText('Participants', { exact: true }).waitFor();
  const chatSwitch = observing.getByRole('button', { name: 'Chat kill switch', exact: true });

  check(await chatSwitch.getAttribute('aria-pressed') === 'false', 'the chat kill switch starts released');
  await chatSwitch.click();
  await page.waitForFunction(() => !document.querySelector('.switches button:disabled'));
  result.kill_switch = await page.getByRole('alert').count()
    ? `refused: ${(await page.getByRole('alert').first().textContent()).trim()}`
    : await chatSwitch.getAttribute('aria-pressed');
  check(result.kill_switch === 'true', `the chat kill switch engages (${result.kill_switch})`);
  await status.filter({ hasText: 'Chat kill switch engaged' }).waitFor();
  await axe(page, 'live');
  await shots(page, 'live');

  step('end the class, confirming first');
  await page.getByRole('button', { name: `End ${liveTitle}`, exact: true }).first().click();
  await page.getByRole('button', { name: `Confirm end ${liveTitle}`, exact: true }).first().click();
  await status.filter({ hasText: `Ended ${liveTitle}` }).waitFor();
  await page.getByRole('region', { name: 'Recently ended classes table' }).locator('tbody tr')
    .filter({ hasText: liveTitle }).first().waitFor();

  step('Console → Replays');
  await consoleNav.getByRole('link', { name: 'Replays', exact: true }).click();
  await page.getByRole('heading', { level: 1, name: 'Recordings and replays' }).waitFor();
  await expectTitle(page, 'Recordings and replays');
  await page.getByRole('region', { name: 'Replays table' }).waitFor();
  await page.waitForFunction(() => !document.querySelector('main [aria-busy="true"]'));
  await page.getByLabel(`Visibility for ${liveTitle}`, { exact: true }).first().selectOption('public');
  const [pubAnswer] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith('/publish') && r.request().method() === 'POST'),
    page.getByRole('button', { name: `Publish ${liveTitle}`, exact: true }).first().click(),
  ]);
  check(pubAnswer.status() === 201, `POST /sessions/{id}/publish answered ${pubAnswer.status()}`);
  result.published = (await pubAnswer.json()).visibility;
  await status.filter({ hasText: `Published ${liveTitle}` }).waitFor();
  await page.getByRole('link', { name: `Public link to ${liveTitle}`, exact: true }).first().waitFor();
  const replayRows = page.getByRole('region', { name: 'Replays table' }).locator('tbody tr:has(th)');
  await replayRows.first().waitFor();
  result.replay_rows = await replayRows.count();
  await axe(page, 'replays');
  await shots(page, 'replays');

  step('Replays library from the nav');
  await nav.getByRole('link', { name: 'Replays', exact: true }).click();
  await page.getByRole('heading', { level: 1, name: 'Replays' }).waitFor();
  await expectTitle(page, 'Replays');
  await page.waitForFunction(() => !document.querySelector('main [aria-busy="true"]'));
  const watch = page.getByRole('link', { name: `Watch ${liveTitle}`, exact: true }).first();
  await watch.waitFor();
  await page.getByRole('heading', { level: 2, name: courseTitle, exact: true }).waitFor();
  await axe(page, 'replays-library');
  await shots(page, 'replays-library');

  step('the replay page');
  await watch.click();
  await page.getByRole('heading', { level: 1, name: liveTitle, exact: true }).waitFor();
  await expectTitle(page, 'Replay');
  check(/^#\/replay\/[0-9a-f-]{36}$/.test(await page.evaluate(() => location.hash)), 'the replay route');
  const noRecording = page.getByText('The recording is not available yet', { exact: false });
  const replayVideo = page.getByRole('region', { name: 'Recording' }).locator('video[aria-label="Replay video"]');
  await noRecording.or(replayVideo).first().waitFor();
  result.replay_media = (await replayVideo.count()) ? 'video' : 'not_available';
  await page.getByLabel('Search this replay', { exact: true }).fill('photosynthesis');
  await page.getByRole('button', { name: 'Search', exact: true }).click();
  await status.filter({ hasText: 'No matches for “photosynthesis”' }).waitFor();
  await axe(page, 'replay');
  await shots(page, 'replay');
  result.replay_page_ok = true;

  step('My classes from the nav');
  await nav.getByRole('link', { name: 'My classes', exact: true }).click();
  await page.getByRole('heading', { level: 1, name: 'My classes' }).waitFor();
  await expectTitle(page, 'My classes');

  step('sign out');
  await signOut(page);
  await axe(page, 'signed-out');

  step('sign in again with the keyboard only');
  let onEmail = false;
  for (let i = 0; i < 15 && !onEmail; i++) {
    await page.keyboard.press('Tab');
    onEmail = await page.evaluate(() => document.activeElement?.labels?.[0]?.textContent?.trim() === 'Email');
  }
  check(onEmail, 'Tab reaches the Email field');
  await page.keyboard.type(adminEmail);
  await page.keyboard.press('Tab');
  check(await page.evaluate(() => document.activeElement?.labels?.[0]?.textContent?.trim() === 'Password'),
    'Tab moves from Email to Password');
  await page.keyboard.type(password);
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { level: 1, name: 'My classes' }).waitFor();
  result.keyboard_sign_in = true;

  step('the skip link moves focus to <main>');
  await page.getByRole('link', { name: 'Skip to main content', exact: true }).focus();
  await page.keyboard.press('Enter');
  check(await page.evaluate(() => document.activeElement?.id === 'main'), 'the skip link focuses <main>');

  step('sign out again');
  await signOut(page);

  check(!result.password_in_url, 'no password in any URL');
  result.ok = true;
  result.step = 'done';
} catch (e) {
  result.error = String(e && e.message ? e.message : e).split('\n').slice(0, 6).join('\n');
} finally {
  clearTimeout(watchdog);
  await browser.close();
  console.log(JSON.stringify(result));
}
