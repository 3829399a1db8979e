// A whole class in real browsers: one teacher and three students (separate browser
// contexts of one chromium) through joining, lesson 1, the live dashboard, a stuck
// flag, watching and taking over a terminal, a raised hand, messages, a reset, an
// ended lab, the CSV and a transcript, closing and reopening the class, coming back
// from another browser, and what a student may not see.
//
//   TEACH_NAME=kim TEACH_PASSWORD=... node tests/browser/classroom.mjs http://127.0.0.1:PORT [SCREENSHOT_DIR]
//
// The server must run with `--class-stuck-attempts 3 --open-playground=false`, and
// TEACH_NAME must be an instructor (`berth instructor add`). tests/tests/browser.rs
// does all that, and checks the transcript this script saves (transcript.txt in
// SCREENSHOT_DIR, which defaults to $TMPDIR/berth-classroom-screenshots) with
// `berth transcript verify`. With UPDATE_SCREENSHOTS=1 the pictures are also copied
// to tests/browser/screenshots/classroom-*.png (the README's).
//
// Needs Debian's chromium (/usr/bin/chromium, or $CHROMIUM) and playwright-core from
// playground-web/node_modules (`npm ci` there). Exits non-zero with a message on any
// failure, after saving a screenshot of every page (failure-*.png) in SCREENSHOT_DIR.

import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..', '..');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const PLAYWRIGHT = join(repo, 'playground-web', 'node_modules', 'playwright-core', 'index.mjs');
// Each wait; the machine may be busy with other tests.
const WAIT_MS = Number(process.env.BROWSER_WAIT_MS || 30_000);
// The whole run.
const TOTAL_MS = Number(process.env.BROWSER_TOTAL_MS || 300_000);
// A step done in a student's page must show on the dashboard within this.
const DASHBOARD_DELAY_MS = 3000;

function fail(msg) {
    console.error(`classroom: FAILED: ${msg}`);
    process.exit(1);
}

const [base, shotArg] = process.argv.slice(2);
if (!base || !/^https?:\/\//.test(base)) fail('usage: node tests/browser/classroom.mjs http://HOST:PORT [SCREENSHOT_DIR]');
const TEACHER = process.env.TEACH_NAME;
const PASSWORD = process.env.TEACH_PASSWORD;
if (!TEACHER || !PASSWORD) fail('TEACH_NAME and TEACH_PASSWORD must name an instructor of the server (berth instructor add)');
const shots = resolve(shotArg || join(tmpdir(), 'berth-classroom-screenshots'));
if (!existsSync(CHROMIUM)) fail(`${CHROMIUM} is missing: apt-get install chromium fonts-noto-cjk (or set CHROMIUM)`);
if (!existsSync(PLAYWRIGHT)) fail(`${PLAYWRIGHT} is missing: run \`npm ci\` in playground-web`);
const { chromium } = await import(pathToFileURL(PLAYWRIGHT).href);
mkdirSync(shots, { recursive: true });
// A failure's files from an earlier run would be taken for this one's.
for (const f of readdirSync(shots)) if (f.startsWith('failure-')) unlinkSync(join(shots, f));

const log = (...a) => console.log('classroom:', ...a);
let step = 'start';
const t0 = Date.now();
const at = (what) => {
    step = what;
    log(`[${((Date.now() - t0) / 1000).toFixed(1)}s] ${what}`);
};

// The students' names: distinct enough that a page showing another's is caught, with
// spaces (URL-encoded in the teacher's routes).
const ANN = 'Ann Park';
const BO = 'Bo Choi';
const CY = 'Cy Lee';
const NAMES = [ANN, BO, CY];

/** A terminal's visible text (xterm's DOM renderer), one line per row. */
async function screenText(page, box = '#terminal') {
    return page.evaluate((box) => {
        const rows = document.querySelector(`${box} .xterm-rows`);
        if (!rows) return '';
        return [...rows.children].map((r) => r.textContent.replace(/\u00a0/g, ' ').trimEnd()).join('\n');
    }, box);
}

/** Waits until the terminal in `box` shows `re` (a RegExp or string). */
async function waitScreen(page, re, what, box = '#terminal') {
    const test = typeof re === 'string' ? (t) => t.includes(re) : (t) => re.test(t);
    const end = Date.now() + WAIT_MS;
    let text = '';
    while (Date.now() < end) {
        text = await screenText(page, box);
        if (test(text)) return text;
        await page.waitForTimeout(100);
    }
    throw new Error(`${box} never showed ${what || re}; it shows:\n${text}`);
}

/** Waits for `selector`, failing with `what`. */
async function see(page, selector, what) {
    await page.locator(selector).first().waitFor({ timeout: WAIT_MS }).catch(() => {
        throw new Error(`${what || selector}: not seen within ${WAIT_MS / 1000} s (${selector})`);
    });
}

/** Waits until `selector` is gone. */
async function gone(page, selector, what) {
    await page.locator(selector).first().waitFor({ state: 'detached', timeout: WAIT_MS }).catch(() => {
        throw new Error(`${what || selector}: still there after ${WAIT_MS / 1000} s (${selector})`);
    });
}

/** The time (the browser's clock, ms) at which `selector` first matches, polled every 20 ms. */
async function whenSeen(page, selector) {
    const h = await page.waitForFunction((sel) => (document.querySelector(sel) ? Date.now() : 0), selector, { polling: 20, timeout: WAIT_MS });
    return h.jsonValue();
}

async function text(page, selector) {
    return ((await page.locator(selector).first().textContent({ timeout: WAIT_MS })) || '').trim();
}

/** Types a line into the page's own terminal (clicked first, for the focus). */
async function typeLine(page, line, box = '#terminal') {
    await page.locator(box).click();
    await page.keyboard.type(line, { delay: 5 });
    await page.keyboard.press('Enter');
}

async function waitPrompt(page) {
    await see(page, '#term-state[data-state="connected"]', 'the terminal connected');
    await waitScreen(page, /\$ ?$/m, 'the workstation prompt "$ "');
}

const row = (name) => `tr.student[data-name="${name}"]`;

const overall = setTimeout(() => fail(`gave up after ${TOTAL_MS / 1000} s at: ${step}`), TOTAL_MS);

let browser;
const pages = {};
const apiLog = {};
const pageErrors = [];
const saved = [];
let failed = null;

async function newPage(role, locale, viewport = { width: 1280, height: 720 }) {
    const context = await browser.newContext({ viewport, locale, acceptDownloads: true });
    const page = await context.newPage();
    page.on('pageerror', (e) => pageErrors.push(`${role}: ${e}`));
    // The page's last API answers, for the failure files.
    const answers = [];
    apiLog[role] = answers;
    page.on('response', (r) => {
        const u = new URL(r.url());
        if (!u.pathname.startsWith('/api/')) return;
        const line = `${new Date().toISOString()} ${r.request().method()} ${u.pathname}${u.search} ${r.status()}`;
        answers.push(line);
        if (answers.length > 60) answers.shift();
        // Which lab a join gave.
        if (u.pathname === '/api/join') {
            r.json().then((j) => answers.push(`  join -> session ${j.session ? j.session.id : JSON.stringify(j)}`)).catch(() => {});
        }
    });
    page.on('dialog', (d) => {
        pageErrors.push(`${role}: unexpected dialog: ${d.type()} ${d.message()}`);
        d.dismiss().catch(() => {});
    });
    pages[role] = page;
    return page;
}

async function shot(page, name, opts = {}) {
    const path = join(shots, `classroom-${name}.png`);
    if (opts.locator) await opts.locator.screenshot({ path });
    else await page.screenshot({ path });
    saved.push(path);
}

/** The whole dashboard in one picture: the viewport made as tall as the page. */
async function shotWholePage(page, name) {
    const size = page.viewportSize();
    const height = await page.evaluate(() => document.querySelector('.doc-page').scrollHeight);
    await page.setViewportSize({ width: size.width, height: Math.min(Math.max(height, size.height), 2400) });
    await page.waitForTimeout(300);
    await shot(page, name);
    await page.setViewportSize(size);
}

/** Joins the class at `/join/CODE` (the form is there) as `name`: its PIN. */
async function joinAs(page, name) {
    await page.locator('#join-name').fill(name, { timeout: WAIT_MS });
    await page.locator('#join-button').click();
    await see(page, '#joined', `${name}'s PIN screen`);
    const pin = await text(page, '#joined-pin');
    if (!/^\d{6}$/.test(pin)) throw new Error(`${name}'s PIN is ${JSON.stringify(pin)}, not 6 digits`);
    const link = await page.locator('#joined-link').getAttribute('href');
    if (!link || !link.includes('#')) throw new Error(`${name}'s rejoin link is ${JSON.stringify(link)}`);
    return pin;
}

async function toLab(page, name) {
    await page.locator('#joined-go').click();
    await page.waitForURL((u) => new URL(u).pathname === '/', { timeout: WAIT_MS });
    await waitPrompt(page);
    const shown = await text(page, '#student-name');
    if (shown !== name) throw new Error(`the lab's header names ${JSON.stringify(shown)}, not ${JSON.stringify(name)}`);
}

/**
 * Types `command` in `student`'s terminal; waits for `stepId` to be marked done in
 * their lesson pane and for their dashboard row to say `done` steps; returns the
 * dashboard's delay after the student's page (ms; negative: the dashboard was first).
 */
async function stepAndMeasure(student, teacher, name, command, stepId, done) {
    const inPage = whenSeen(student, `[data-step="${stepId}"].done`);
    const onDash = whenSeen(teacher, `${row(name)}[data-done="${done}"]`);
    await typeLine(student, command);
    const entered = await student.evaluate(() => Date.now());
    const [a, b] = await Promise.all([
        inPage.catch(async (e) => { throw new Error(`${name}: step ${stepId} never marked done in the lesson pane (${e.message}); terminal:\n${await screenText(student)}`); }),
        onDash.catch(async (e) => { throw new Error(`${name}: the dashboard row never said ${done} done (${e.message}); it says data-done=${await teacher.locator(row(name)).getAttribute('data-done').catch(() => '?')}`); }),
    ]);
    const delay = b - a;
    log(`  ${name} ${stepId}: dashboard ${delay >= 0 ? `${delay} ms after` : `${-delay} ms before`} the lesson pane`
        + ` (after Enter: lesson pane ${a - entered} ms, dashboard ${b - entered} ms)`);
    if (delay > DASHBOARD_DELAY_MS) throw new Error(`the dashboard showed ${name}'s step ${stepId} ${delay} ms after their page (more than ${DASHBOARD_DELAY_MS} ms)`);
    return delay;
}

/** What `page` downloads when `locator` is clicked, saved as `file` in the screenshot dir. */
async function download(page, locator, file) {
    const [dl] = await Promise.all([page.waitForEvent('download', { timeout: WAIT_MS }), locator.click()]);
    const path = join(shots, file);
    await dl.saveAs(path);
    const failure = await dl.failure();
    if (failure) throw new Error(`the download of ${file} failed: ${failure}`);
    return readFileSync(path, 'utf8');
}

const delays = [];
try {
    at('launch chromium');
    browser = await chromium.launch({
        executablePath: CHROMIUM,
        // Without the background-networking flags chromium keeps trying the internet.
        args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
            '--disable-component-update', '--disable-sync'],
    });
    const teacher = await newPage('teacher', 'en-US', { width: 1400, height: 1000 });
    const s1 = await newPage('student1', 'ko-KR');
    const s2 = await newPage('student2', 'en-US');
    const s3 = await newPage('student3', 'en-US');

    // ---------------------------------------------------------------- 1. the teacher
    at('1. teacher: a wrong password is refused');
    await teacher.goto(`${base}/teach`, { waitUntil: 'load', timeout: WAIT_MS });
    await teacher.locator('#teach-name').fill(TEACHER, { timeout: WAIT_MS });
    await teacher.locator('#teach-password').fill(`${PASSWORD}-wrong`);
    await teacher.locator('#teach-login').click();
    await see(teacher, '#teach-error[data-kind="wrong_password"]', 'the wrong-password error');

    at('1. teacher: logs in and creates a class of lesson 1');
    await teacher.locator('#teach-password').fill(PASSWORD);
    await teacher.locator('#teach-login').click();
    await see(teacher, '#new-class-form', 'the class list and the new-class form');
    await teacher.locator('#new-class-name').fill('Docker 101 (browser test)');
    await teacher.locator('.new-class-lesson[value="lifecycle"]').check({ timeout: WAIT_MS });
    // The class's own lab limits, beside the server's defaults.
    await teacher.locator('#new-class-memory').fill('512');
    await teacher.locator('#new-class-containers').fill('10');
    await teacher.locator('#new-class-create').click();
    await teacher.waitForURL(/\/teach\/classes\/[^/]+$/, { timeout: WAIT_MS });
    const limits = await teacher.evaluate(async () => (await fetch(`${location.pathname.replace('/teach/', '/api/teach/')}/limits`)).text());
    if (limits !== '{"session_memory":536870912,"containers":10}') throw new Error(`the class's limits are ${limits}`);
    await see(teacher, '#class-code', 'the join code on the dashboard');
    const code = await text(teacher, '#class-code');
    if (!/^[A-Z0-9]{4}-[A-Z0-9]{4}$/.test(code)) throw new Error(`the join code is ${JSON.stringify(code)}`);
    log(`  class code ${code}`);
    await see(teacher, '#live-state[data-state="live"]', 'the live feed');
    await teacher.waitForFunction(() => {
        const img = document.querySelector('#join-qr');
        return img && img.complete && img.naturalWidth > 0;
    }, null, { timeout: WAIT_MS }).catch(() => { throw new Error('the QR code image did not load (naturalWidth 0)'); });
    const joinUrl = await text(teacher, '#join-url');
    if (joinUrl !== `${base}/join/${code}`) throw new Error(`the join panel says ${JSON.stringify(joinUrl)}`);

    at('1. teacher: the join panel on the projector');
    await teacher.locator('#join-panel-toggle').click();
    await see(teacher, '#join-panel.projector', 'the projector view');
    await teacher.waitForTimeout(300);
    await shot(teacher, 'projector');
    await teacher.locator('#join-panel-toggle').click();
    await gone(teacher, '#join-panel.projector', 'the projector view');

    // ---------------------------------------------------------------- 2. students join
    at(`2. student 1 joins by the URL, as ${ANN}`);
    await s1.goto(`${base}/join/${code}`, { waitUntil: 'load', timeout: WAIT_MS });
    await see(s1, '#join-name', 'the join form');
    const className = await text(s1, '#class-name');
    if (className !== 'Docker 101 (browser test)') throw new Error(`the join page names the class ${JSON.stringify(className)}`);
    await s1.locator('#join-name').fill(ANN);
    await shot(s1, 'join');
    const pin1 = await joinAs(s1, ANN);
    await shot(s1, 'pin');
    await toLab(s1, ANN);

    at(`2. student 2 types the code on the start page, as ${BO}`);
    await s2.goto(base, { waitUntil: 'load', timeout: WAIT_MS });
    // A class-only server: no lab until the student joins.
    await see(s2, '#class-only', 'the class-only notice');
    await s2.locator('#join-code-input').fill(code.toLowerCase().replace('-', ''));
    await s2.locator('#join-code-button').click();
    await s2.waitForURL((u) => new URL(u).pathname.startsWith('/join/'), { timeout: WAIT_MS });
    await joinAs(s2, BO);
    await toLab(s2, BO);

    at(`2. student 3: a name already taken, then ${CY}`);
    await s3.goto(`${base}/join/${code}`, { waitUntil: 'load', timeout: WAIT_MS });
    await s3.locator('#join-name').fill(ANN.toUpperCase(), { timeout: WAIT_MS });
    await s3.locator('#join-button').click();
    await see(s3, '#join-error[data-kind="name_taken"]', 'the name-taken error');
    await joinAs(s3, CY);
    await toLab(s3, CY);
    for (const name of NAMES) await see(teacher, row(name), `${name}'s row on the dashboard`);

    // ---------------------------------------------------------------- 3. steps, live
    at('3. lesson 1 in the terminals; the dashboard keeps up');
    for (const p of [s1, s2, s3]) await see(p, '.lesson-pane[data-current-lesson="lifecycle"]', 'lesson 1 open');
    delays.push(await stepAndMeasure(s1, teacher, ANN, 'docker search busybox', 'search', 1));
    delays.push(await stepAndMeasure(s2, teacher, BO, 'docker search busybox', 'search', 1));
    delays.push(await stepAndMeasure(s1, teacher, ANN, 'docker pull busybox', 'pull', 2));
    delays.push(await stepAndMeasure(s3, teacher, CY, 'docker search busybox', 'search', 1));
    delays.push(await stepAndMeasure(s1, teacher, ANN, 'docker images', 'images', 3));
    const stepSum = await teacher.locator('.step-sum[data-step="search"]').getAttribute('data-finished');
    if (stepSum !== '3') throw new Error(`the step summary says ${stepSum} finished "search", not 3`);

    // ---------------------------------------------------------------- 4. stuck
    at(`4. ${CY} tries three commands that do not pass "pull": flagged stuck`);
    for (let i = 0; i < 3; i++) {
        await typeLine(s3, `docker images # try ${i + 1}`);
        await waitScreen(s3, new RegExp(`try ${i + 1}\\n(?:.*\\n)*REPOSITORY[\\s\\S]*\\$ ?$`, 'm'), `the output of try ${i + 1}`);
    }
    await see(teacher, `${row(CY)}.stuck[data-stuck="failing"]`, `${CY}'s stuck flag`);
    const notStuck = await teacher.locator(`${row(ANN)}.stuck, ${row(BO)}.stuck`).count();
    if (notStuck) throw new Error('a student who is not stuck is flagged');
    await shotWholePage(teacher, 'dashboard');

    // ---------------------------------------------------------------- 5. watch, take over
    at(`5. the teacher watches ${ANN}'s terminal`);
    await teacher.locator(`${row(ANN)} .watch`).click();
    await see(teacher, `#watch-panel[data-name="${ANN}"] #watch-mode[data-mode="watch"]`, 'the watch panel, watching');
    await see(teacher, '#watch-state[data-state="connected"]', 'the watch panel connected');
    // The scrollback came first.
    await waitScreen(teacher, 'docker images', `${ANN}'s earlier commands in the watch panel`, '#watch-terminal');
    await typeLine(s1, 'echo watched-$((20+22))');
    await waitScreen(teacher, /^watched-42$/m, `${ANN}'s output (watched-42) in the watch panel`, '#watch-terminal');
    await see(teacher, `${row(ANN)} .watching[data-control="false"]`, 'the watching badge on the row');

    at(`5. a message to ${ANN} alone`);
    await teacher.locator(`${row(ANN)} .message-student`).click();
    await teacher.locator('#message-text').fill('Nice work, Ann: keep going');
    await teacher.locator('#message-send').click();
    await gone(teacher, '#message-dialog', 'the message dialog');
    await see(s1, '#message-banner[data-kind="text"]', `the message banner on ${ANN}'s page`);
    if (!(await text(s1, '#message-banner')).includes('Nice work, Ann')) throw new Error(`${ANN}'s banner: ${await text(s1, '#message-banner')}`);

    at(`5. the teacher takes over and types in ${ANN}'s terminal`);
    await teacher.locator('#watch-toggle').click();
    await see(teacher, '#watch-mode[data-mode="control"]', 'the watch panel in control');
    await see(teacher, '#watch-state[data-state="connected"]', 'the controlling terminal connected');
    await see(s1, '#instructor-typing', `the "instructor is typing" notice on ${ANN}'s page`);
    const notice = await text(s1, '#instructor-typing');
    if (!notice.includes(TEACHER)) throw new Error(`the typing notice does not name the teacher: ${notice}`);
    await see(teacher, `${row(ANN)} .watching[data-control="true"]`, 'the typing badge on the row');
    await typeLine(teacher, 'echo teacher-$((40+2))', '#watch-terminal');
    await waitScreen(s1, /^teacher-42$/m, `the teacher's command's output (teacher-42) in ${ANN}'s terminal`);
    await shot(s1, 'student-lab');
    await shot(teacher, 'watch');
    // The private message is Ann's alone.
    for (const p of [s2, s3]) {
        if (await p.locator('#messages .message').count()) throw new Error("another student got Ann's message");
    }
    await s1.locator('#message-dismiss').click();
    await gone(s1, '#message-banner', 'the dismissed banner');

    at('5. the teacher stops typing, then closes the panel');
    await teacher.locator('#watch-toggle').click();
    await see(teacher, '#watch-mode[data-mode="watch"]', 'the watch panel back to watching');
    await gone(s1, '#instructor-typing', 'the typing notice after the teacher stopped');
    await teacher.locator('#watch-close').click();
    await gone(teacher, '#watch-panel', 'the watch panel');
    await gone(teacher, `${row(ANN)} .watching`, 'the watching badge');

    // ---------------------------------------------------------------- 6. a hand
    at(`6. ${BO} raises a hand with a note`);
    const note = 'port 8080 does not answer';
    await s2.locator('#hand-note').fill(note);
    await s2.locator('#hand-button').click();
    await see(s2, '#hand-state', 'the raised hand on the student\'s page');
    await see(s2, '#hand-lower', 'the Lower button');
    await see(teacher, `#hands .hand[data-name="${BO}"]`, `${BO}'s hand in the queue`);
    const queued = await text(teacher, `#hands .hand[data-name="${BO}"]`);
    if (!queued.includes(note)) throw new Error(`the queue does not show the note: ${queued}`);
    await see(teacher, `${row(BO)}[data-hand="true"]`, 'the hand on the row');
    await teacher.waitForTimeout(300);
    await shot(teacher, 'hands', { locator: teacher.locator('.dash-mid') });

    at('6. the teacher answers it');
    await teacher.locator(`#hands .hand[data-name="${BO}"] .hand-answer`).click();
    await gone(teacher, `#hands .hand[data-name="${BO}"]`, 'the answered hand');
    await see(s2, '#hand-button', `${BO}'s hand lowered (the Raise button back)`);
    await see(teacher, `#actions .action[data-action="answer_hand"][data-student="${BO}"]`, 'the answer in the recent actions');

    at(`6. ${CY} raises a hand and lowers it again`);
    await s3.locator('#hand-button').click();
    await see(teacher, `#hands .hand[data-name="${CY}"]`, `${CY}'s hand in the queue`);
    await s3.locator('#hand-lower').click();
    await gone(teacher, `#hands .hand[data-name="${CY}"]`, `${CY}'s lowered hand`);

    // ---------------------------------------------------------------- 7. broadcast
    at('7. the teacher messages the class: every student sees it');
    const broadcast = 'Break: 5 minutes';
    await teacher.locator('#broadcast-text').fill(broadcast);
    await teacher.locator('#broadcast-send').click();
    for (const [p, name] of [[s1, ANN], [s2, BO], [s3, CY]]) {
        await see(p, '#message-banner[data-kind="text"]', `the class message's banner on ${name}'s page`);
        const banner = await text(p, '#message-banner');
        if (!banner.includes(broadcast)) throw new Error(`${name}'s banner says ${JSON.stringify(banner)}`);
        const newest = await text(p, '#messages .message');
        if (!newest.includes(broadcast)) throw new Error(`${name}'s newest message is ${JSON.stringify(newest)}`);
        await p.locator('#message-dismiss').click();
        await gone(p, '#message-banner', `${name}'s dismissed banner`);
    }
    await see(teacher, '#sent-messages .sent[data-to=""]', 'the message in the sent list');

    // ---------------------------------------------------------------- 8. reset
    at(`8. ${CY} starts a container; the teacher resets the lab`);
    await typeLine(s3, 'docker run -d --name junk busybox sleep 600');
    await see(s3, '.chip[data-container="junk"][data-state="running"]', 'the junk container in the status strip');
    // (docker run pulled busybox: that may have passed the "pull" step.)
    await s3.waitForTimeout(1500);
    const cyDone = await teacher.locator(row(CY)).getAttribute('data-done');
    await s3.evaluate(() => {
        // Every state the terminal goes through from now on.
        window.__termStates = [];
        const el = document.querySelector('#term-state');
        new MutationObserver(() => window.__termStates.push(el.getAttribute('data-state')))
            .observe(el, { attributes: true, attributeFilter: ['data-state'] });
    });
    await teacher.locator(`${row(CY)} .reset`).click();
    await see(teacher, '#confirm', 'the confirmation');
    if (!(await text(teacher, '#confirm-text')).includes(CY)) throw new Error('the confirmation does not name the student');
    await teacher.locator('#confirm-yes').click();
    await gone(teacher, '#confirm', 'the confirmation');
    await see(s3, '#message-banner[data-kind="reset"]', `the reset message on ${CY}'s page`);
    await see(s3, '#messages .message[data-kind="reset"]', 'the reset message in the list');
    await s3.waitForFunction(() => (window.__termStates || []).includes('reconnecting') || (window.__termStates || []).includes('connecting'), null, { timeout: WAIT_MS })
        .catch(() => { throw new Error("the student's terminal never reconnected after the reset"); });
    await waitPrompt(s3);
    await s3.waitForFunction(() => document.querySelectorAll('.chip:not([data-lane="removed"])').length === 0, null, { timeout: WAIT_MS })
        .catch(() => { throw new Error('the status strip still shows containers after the reset'); });
    await typeLine(s3, 'docker ps -aq | wc -l; echo after-reset-$((6*7))');
    await waitScreen(s3, /^\s*0\s*\nafter-reset-42$/m, 'no containers (0) and after-reset-42 from the new shell');
    await see(teacher, `${row(CY)}[data-done="${cyDone}"]`, `${CY}'s progress (${cyDone} steps) kept after the reset`);
    await s3.locator('#message-dismiss').click();

    // ---------------------------------------------------------------- 9. hand-ins
    at('9. the CSV export and a transcript download');
    const csvHref = await teacher.locator('#export-csv').getAttribute('href');
    const csv = await download(teacher, teacher.locator('#export-csv'), 'progress.csv');
    const lines = csv.trim().split(/\r?\n/);
    if (lines[0] !== 'student,lesson,step,done_at,attempts') throw new Error(`the CSV's header is ${JSON.stringify(lines[0])}`);
    const want = [[ANN, 'search'], [ANN, 'pull'], [ANN, 'images'], [BO, 'search'], [CY, 'search']];
    for (const [name, s] of want) {
        if (!lines.some((l) => l.startsWith(`${name},lifecycle,${s},`))) throw new Error(`no CSV row for ${name}'s ${s}:\n${csv}`);
    }
    const doneOnDash = await teacher.$$eval('tr.student', (rows) => rows.reduce((n, r) => n + Number(r.dataset.done), 0));
    if (lines.length - 1 !== doneOnDash) throw new Error(`the CSV has ${lines.length - 1} rows, the dashboard ${doneOnDash} steps done:\n${csv}`);
    const fetched = await teacher.evaluate(async (u) => {
        const r = await fetch(u);
        return [r.status, r.headers.get('content-type')];
    }, csvHref);
    if (fetched[0] !== 200 || !String(fetched[1]).startsWith('text/csv')) throw new Error(`fetching ${csvHref}: ${fetched}`);
    const transcript = await download(teacher, teacher.locator(`${row(ANN)} a.transcript`), 'transcript.txt');
    if (!transcript.includes(ANN)) throw new Error(`the transcript does not name ${ANN}:\n${transcript.slice(0, 500)}`);

    // ---------------------------------------------------------------- 10. come back
    at(`10. ${ANN} comes back from a new browser with the code, name and PIN`);
    const s1b = await newPage('student1-again', 'en-US');
    await s1b.goto(`${base}/join/${code}`, { waitUntil: 'load', timeout: WAIT_MS });
    await s1b.locator('#join-pin-toggle').check({ timeout: WAIT_MS });
    await s1b.locator('#join-name').fill(ANN.toLowerCase());
    await s1b.locator('#join-pin').fill(pin1);
    await s1b.locator('#join-button').click();
    await s1b.waitForURL((u) => new URL(u).pathname === '/', { timeout: WAIT_MS });
    await waitPrompt(s1b);
    await waitScreen(s1b, /^watched-42$/m, 'the earlier output (watched-42) in the scrollback');
    await waitScreen(s1b, /^teacher-42$/m, "the teacher's earlier output (teacher-42) in the scrollback");
    for (const id of ['search', 'pull', 'images']) await see(s1b, `[data-step="${id}"].done`, `step ${id} done after coming back`);
    if ((await text(s1b, '#student-name')) !== ANN) throw new Error('the lab came back under another name');
    await typeLine(s1b, 'echo back-$((50+5))');
    await waitScreen(s1b, /^back-55$/m, 'back-55 from the same shell');

    at(`10. the teacher ends ${BO}'s lab; ${BO} comes back through the class's page`);
    await teacher.locator(`${row(BO)} .end`).click();
    await see(teacher, '#confirm', 'the confirmation');
    await teacher.locator('#confirm-yes').click();
    await see(s2, '#lab-ended', `the "lab ended" notice on ${BO}'s page`);
    await gone(s2, '#terminal', 'the terminal of the ended lab');
    // Also after a reload: the page remembers the class of its lab.
    await s2.reload({ waitUntil: 'load', timeout: WAIT_MS });
    await see(s2, '#lab-ended', `the "lab ended" notice after a reload`);
    // Nothing to reset in an ended lab: the dashboard says why.
    await teacher.locator(`${row(BO)} .reset`).click();
    await teacher.locator('#confirm-yes').click();
    await see(teacher, '#dash-error[data-kind="lab_ended"]', 'the error of resetting an ended lab');
    await teacher.locator('#dash-error button').click();
    await gone(teacher, '#dash-error', 'the dismissed error');
    await s2.locator('#lab-ended-rejoin').click();
    await s2.waitForURL((u) => new URL(u).pathname === `/join/${code}`, { timeout: WAIT_MS });
    await see(s2, '#join-resume', `"Continue as ${BO}"`);
    if (!(await text(s2, '#join-resume')).includes(BO)) throw new Error(`the resume button says ${await text(s2, '#join-resume')}`);
    await s2.locator('#join-resume').click();
    await s2.waitForURL((u) => new URL(u).pathname === '/', { timeout: WAIT_MS });
    await waitPrompt(s2);
    await see(s2, '#messages .message[data-kind="ended"]', 'the "lab ended" message after coming back');
    await see(s2, '[data-step="search"].done', `${BO}'s progress after the new lab`);
    await s2.locator('#message-dismiss').click();

    at('10. the teacher closes the class, then reopens it');
    await teacher.locator('#close-class').click();
    await see(teacher, '#confirm', 'the confirmation');
    await teacher.locator('#confirm-yes').click();
    await see(teacher, '#class-state[data-state="closed"]', 'the closed class on the dashboard');
    await see(s3, '#class-banner[data-state="closed"]', 'the closed banner on a student\'s page');
    await teacher.locator('#reopen-class').click();
    await see(teacher, '#class-state[data-state="open"]', 'the reopened class');
    await gone(s3, '#class-banner', 'the closed banner after the reopening');
    await see(teacher, '#actions .action[data-action="end"]', 'the end in the recent actions');

    // ---------------------------------------------------------------- 11. boundaries
    at('11. no student page shows another student');
    for (const [p, me] of [[s1b, ANN], [s2, BO], [s3, CY]]) {
        const body = await p.evaluate(() => document.body.innerText);
        for (const other of NAMES.filter((n) => n !== me)) {
            if (body.includes(other)) throw new Error(`${me}'s page shows ${other}`);
        }
    }
    at('11. a student cannot open the teacher\'s pages');
    await s3.goto(`${base}/teach`, { waitUntil: 'load', timeout: WAIT_MS });
    await see(s3, '#teach-login-form', 'the login form for a student');
    const status = await s3.evaluate(async () => (await fetch('/api/teach/classes')).status);
    if (status !== 401) throw new Error(`GET /api/teach/classes from a student's browser answered ${status}`);
    const dashPath = new URL(teacher.url()).pathname;
    await s3.goto(`${base}${dashPath}`, { waitUntil: 'load', timeout: WAIT_MS });
    await see(s3, '#login-expired', 'the dashboard refused to a student');
    if ((await s3.locator('tr.student').count()) !== 0) throw new Error('a student sees the dashboard\'s rows');

    if (pageErrors.length) throw new Error(`page errors: ${pageErrors.join('; ')}`);
    at('done');
} catch (e) {
    failed = e;
} finally {
    if (failed) {
        for (const [role, page] of Object.entries(pages)) {
            await page.screenshot({ path: join(shots, `failure-${role}.png`) }).catch(() => {});
            const t = await screenText(page).catch(() => '');
            const w = await screenText(page, '#watch-terminal').catch(() => '');
            writeFileSync(join(shots, `failure-${role}-terminal.txt`), t + (w ? `\n--- watch panel ---\n${w}` : ''));
            writeFileSync(join(shots, `failure-${role}-api.txt`), `${page.url()}\n${(apiLog[role] || []).join('\n')}\n`);
        }
    }
    if (browser) await browser.close().catch(() => {});
    clearTimeout(overall);
}
if (failed) {
    fail(`at "${step}": ${failed && failed.message ? failed.message : failed}\n(screenshots: ${join(shots, 'failure-*.png')})`);
}
log(`dashboard delays after the student's page (ms): ${delays.join(', ')} (max ${Math.max(...delays)})`);
if (process.env.UPDATE_SCREENSHOTS === '1') {
    const dest = join(here, 'screenshots');
    for (const p of saved) copyFileSync(p, join(dest, p.split('/').pop()));
    log(`copied ${saved.length} screenshots to ${dest}`);
}
log(`passed; screenshots in ${shots}`);
