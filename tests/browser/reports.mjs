// The analytics pages in real headless Chromium after a class: the teacher
// opens Reports from the nav, the course dashboard (attendance trend, runs,
// polls, students; downloads the CSV), then the class report (attendance,
// the minute-by-minute chart whose figures open as a table with the
// keyboard, polls, students); a student opens My progress. Every page is
// checked with axe-core (no serious or critical violation) and fits 390 px.
// Prints one JSON line. Driven by `tests/tests/analytics.rs`.
//
//   CORE_URL=... TEACHER_EMAIL=... STUDENT_EMAIL=... PASSWORD=... \
//     SESSION_ID=... COURSE_TITLE=... ATTENDED=24 ENROLLED=30 node reports.mjs
import { readFileSync } from 'node:fs';
import { harness, launch, signIn } from './harness.mjs';

const core = (process.env.CORE_URL || 'http://127.0.0.1:8080').replace(/\/$/, '');
const password = process.env.PASSWORD;
const sessionId = process.env.SESSION_ID;
const courseTitle = process.env.COURSE_TITLE;
const attended = process.env.ATTENDED;
const enrolled = process.env.ENROLLED;
const shotsDir = process.env.SHOTS_DIR || '';
const timeoutMs = Number(process.env.TIMEOUT_MS || 90000);

const result = { ok: false, step: 'start', steps: [], axe: {}, screenshots: [], console_errors: [] };
const { watchdog, step, check, axe, shots } = harness('reports', result, { timeoutMs, shotsDir });
const browser = await launch();

try {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  const page = await ctx.newPage();
  page.setDefaultTimeout(Math.min(15000, timeoutMs));
  page.on('pageerror', (e) => result.console_errors.push(String(e)));

  step('the teacher opens Reports from the nav');
  await signIn(page, core, process.env.TEACHER_EMAIL, password);
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Reports', exact: true }).click();
  await page.getByRole('heading', { level: 1, name: 'Reports' }).waitFor();
  await axe(page, 'reports');
  await shots(page, 'reports');

  step('the course dashboard');
  await page.getByRole('link', { name: `Dashboard of ${courseTitle}`, exact: true }).click();
  await page.getByRole('heading', { level: 1, name: `Course dashboard: ${courseTitle}` }).waitFor();
  const runs = page.getByRole('region', { name: 'Classes' }).getByRole('table');
  const runText = await runs.textContent();
  check(runText.includes(`${Math.round((attended / enrolled) * 100)} %`), `the run's attendance is shown (${runText})`);
  await page.getByRole('figure').first().waitFor();
  await axe(page, 'course-dashboard');
  await shots(page, 'course-dashboard');

  step('the course figures download as CSV');
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: 'Download the course figures as CSV', exact: true }).click(),
  ]);
  const csv = readFileSync(await download.path(), 'utf8');
  result.course_csv_lines = csv.trim().split('\n').length;
  check(csv.startsWith('user_id,display_name,attended_runs'), `the CSV has its header (${csv.slice(0, 60)})`);
  check(result.course_csv_lines === Number(enrolled) + 1, `one CSV line per enrolled student (${result.course_csv_lines})`);

  step('the class report');
  await runs.getByRole('link').first().click();
  await page.getByRole('heading', { level: 1, name: /^Class report: / }).waitFor();
  const facts = await page.locator('dl.facts').textContent();
  check(facts.includes(`${attended} of ${enrolled} enrolled`), `attendance in the facts (${facts})`);
  step('the chart figures open as a table with the keyboard');
  const summary = page.getByText('People in the class, minute by minute: the figures as a table', { exact: true });
  await summary.focus();
  await page.keyboard.press('Enter');
  const rows = await page.getByRole('region', { name: 'Minute by minute' }).getByRole('row').count();
  check(rows >= 2, `the minute table has rows (${rows})`);
  const students = await page.getByRole('region', { name: 'Students' }).getByRole('row').count();
  check(students === Number(enrolled) + 1, `one row per enrolled student and a header (${students})`);
  await axe(page, 'class-report');
  await shots(page, 'class-report');
  check(page.url().includes(`#/reports/class/${sessionId}`), `at the class's report (${page.url()})`);
  await page.getByRole('button', { name: 'Sign out', exact: true }).click();
  await page.getByRole('heading', { level: 1, name: 'Sign in' }).waitFor();

  step('a student opens My progress');
  await signIn(page, core, process.env.STUDENT_EMAIL, password);
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'My progress', exact: true }).click();
  await page.getByRole('heading', { level: 1, name: 'My progress' }).waitFor();
  const mine = await page.getByRole('region', { name: courseTitle }).textContent();
  check(mine.includes('Came to 1 of 1 classes'), `the student's attendance (${mine})`);
  check(mine.includes('(right)'), `the student's poll answer is marked (${mine})`);
  check(await page.getByRole('link', { name: 'Reports' }).count() === 0, 'a student has no Reports link');
  await axe(page, 'my-progress');
  await shots(page, 'my-progress');

  check(result.console_errors.length === 0, `no page errors (${result.console_errors.join('; ')})`);
  result.ok = true;
  result.step = 'done';
} catch (e) {
  result.error = String(e && e.message ? e.message : e).split('\n').slice(0, 6).join('\n');
} finally {
  clearTimeout(watchdog);
  await browser.close();
  console.log(JSON.stringify(result));
}
