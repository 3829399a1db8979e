// The playground in a real browser: lesson 1 by keyboard and buttons, a reload that
// finds the same shell, a published port opened in a new tab, and both languages.
//
//   node tests/browser/lesson1.mjs http://127.0.0.1:PORT [SCREENSHOT_DIR]
//
// Needs Debian's chromium (/usr/bin/chromium, or $CHROMIUM) and playwright-core from
// playground-web/node_modules (`npm ci` there). SCREENSHOT_DIR defaults to
// tests/browser/screenshots (the committed ones); tests/tests/browser.rs passes a
// directory under target/ instead. Exits non-zero with a message on any failure, after
// saving failure.png and the terminal's text in SCREENSHOT_DIR.

import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..', '..');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const PLAYWRIGHT = join(repo, 'playground-web', 'node_modules', 'playwright-core', 'index.mjs');
// Each wait; the machine may be busy with other tests.
const WAIT_MS = Number(process.env.BROWSER_WAIT_MS || 30_000);
// The whole run.
const TOTAL_MS = Number(process.env.BROWSER_TOTAL_MS || 240_000);

function fail(msg) {
    console.error(`lesson1: FAILED: ${msg}`);
    process.exit(1);
}

const [base, shotArg] = process.argv.slice(2);
if (!base || !/^https?:\/\//.test(base)) fail('usage: node tests/browser/lesson1.mjs http://HOST:PORT [SCREENSHOT_DIR]');
const shots = resolve(shotArg || join(here, 'screenshots'));
if (!existsSync(CHROMIUM)) fail(`${CHROMIUM} is missing: apt-get install chromium fonts-noto-cjk (or set CHROMIUM)`);
if (!existsSync(PLAYWRIGHT)) fail(`${PLAYWRIGHT} is missing: run \`npm ci\` in playground-web`);
const { chromium } = await import(pathToFileURL(PLAYWRIGHT).href);
mkdirSync(shots, { recursive: true });

const log = (...a) => console.log('lesson1:', ...a);
let step = 'start';
const t0 = Date.now();
const at = (what) => {
    step = what;
    log(`[${((Date.now() - t0) / 1000).toFixed(1)}s] ${what}`);
};

/** The terminal's visible text (xterm's DOM renderer), one line per row. */
async function screenText(page) {
    return page.evaluate(() => {
        const rows = document.querySelector('#terminal .xterm-rows');
        if (!rows) return '';
        return [...rows.children].map((r) => r.textContent.replace(/\u00a0/g, ' ').trimEnd()).join('\n');
    });
}

/** Waits until the terminal shows `re` (a RegExp or string) on screen. */
async function waitScreen(page, re, what) {
    const test = typeof re === 'string' ? (t) => t.includes(re) : (t) => re.test(t);
    const end = Date.now() + WAIT_MS;
    let text = '';
    while (Date.now() < end) {
        text = await screenText(page);
        if (test(text)) return text;
        await page.waitForTimeout(100);
    }
    throw new Error(`the terminal never showed ${what || re}; it shows:\n${text}`);
}

async function waitStepDone(page, id) {
    await page.locator(`[data-step="${id}"].done`).waitFor({ timeout: WAIT_MS }).catch(async () => {
        const cls = await page.locator(`[data-step="${id}"]`).getAttribute('class').catch(() => '?');
        throw new Error(`step "${id}" never got class "done" (class="${cls}"); terminal:\n${await screenText(page)}`);
    });
}

/** Types with the keyboard into the focused terminal, then Enter. */
async function typeLine(page, line) {
    await page.keyboard.type(line, { delay: 5 });
    await page.keyboard.press('Enter');
}

/** Layout problems worth a look (printed, not failed: the screenshots are the judge). */
async function checkLayout(page) {
    const problems = await page.evaluate(() => {
        const out = [];
        const box = document.querySelector('#terminal').getBoundingClientRect();
        const rows = document.querySelectorAll('#terminal .xterm-rows > div');
        const last = rows.length ? rows[rows.length - 1].getBoundingClientRect() : null;
        if (last && last.bottom > box.bottom + 0.5) {
            out.push(`the terminal's last row ends ${Math.round(last.bottom - box.bottom)} px below its box (clipped)`);
        }
        const screen = document.querySelector('#terminal .xterm-screen');
        if (screen && screen.getBoundingClientRect().right > box.right - 14 + 0.5) {
            out.push(`the terminal's last column runs ${Math.round(screen.getBoundingClientRect().right - (box.right - 14))} px under the scrollbar`);
        }
        if (document.scrollingElement.scrollHeight > window.innerHeight) out.push('the page itself scrolls');
        return out;
    });
    for (const p of problems) log(`layout warning: ${p}`);
}

async function waitConnected(page) {
    await page.locator('#term-state[data-state="connected"]').waitFor({ timeout: WAIT_MS });
}

const overall = setTimeout(() => fail(`gave up after ${TOTAL_MS / 1000} s at: ${step}`), TOTAL_MS);

let browser;
let page;
let failed = null;
try {
    at('launch chromium');
    browser = await chromium.launch({
        executablePath: CHROMIUM,
        // Without the background-networking flags chromium keeps trying the internet.
        args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
            '--disable-component-update', '--disable-sync'],
    });
    const context = await browser.newContext({ viewport: { width: 1280, height: 720 }, locale: 'ko-KR' });
    page = await context.newPage();
    const pageErrors = [];
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    page.on('dialog', (d) => {
        pageErrors.push(`unexpected dialog: ${d.type()} ${d.message()}`);
        d.dismiss().catch(() => {});
    });

    at('open the page: the Korean UI');
    await page.goto(base, { waitUntil: 'load', timeout: WAIT_MS });
    await page.locator('#lang-switch[data-lang="ko"]').waitFor({ timeout: WAIT_MS });
    const tagline = (await page.locator('.tagline').textContent()).trim();
    if (tagline !== '도커 교실') throw new Error(`the Korean tagline is missing: header says ${JSON.stringify(tagline)}`);
    if ((await page.locator('html').getAttribute('lang')) !== 'ko') throw new Error('<html lang> is not "ko"');

    at('pick lesson 1');
    await page.locator('[data-lesson="lifecycle"]').click({ timeout: WAIT_MS });
    await page.locator('.lesson-pane[data-current-lesson="lifecycle"]').waitFor({ timeout: WAIT_MS });
    const heading = (await page.locator('.lesson-heading').textContent()).trim();
    if (heading !== '컨테이너의 한살이') throw new Error(`lesson 1's Korean title is missing: ${JSON.stringify(heading)}`);

    at('the terminal connects and shows the workstation prompt');
    await waitConnected(page);
    await waitScreen(page, /\$ ?$/m, 'the workstation prompt "$ "');

    // The first three steps with the lesson's "Type it" buttons.
    for (const id of ['search', 'pull', 'images']) {
        at(`step ${id}: its "Type it" button`);
        await page.locator(`[data-step="${id}"] .type-button`).first().click({ timeout: WAIT_MS });
        await waitStepDone(page, id);
    }

    at('step run-it: `docker run -it busybox sh` typed on the keyboard');
    await page.locator('#terminal').click();
    await typeLine(page, 'docker run -it busybox sh');
    await waitScreen(page, '/ #', 'the container prompt "/ #"');
    await waitStepDone(page, 'run-it');
    await typeLine(page, 'echo inside-$((40+2))');
    await waitScreen(page, 'inside-42');

    at('step detach: Control+P Control+Q on the keyboard');
    // Whether the page kept ctrl-P from the browser (its print dialog): seen first (the
    // terminal stops its propagation), read once the event has been handled.
    await page.evaluate(() => {
        window.__ctrlP = [];
        window.addEventListener('keydown', (e) => {
            if (e.ctrlKey && e.key.toLowerCase() === 'p') setTimeout(() => window.__ctrlP.push(e.defaultPrevented), 0);
        }, true);
    });
    await page.keyboard.press('Control+P');
    await page.keyboard.press('Control+Q');
    await waitStepDone(page, 'detach');
    // Back at the workstation: its prompt follows the container's.
    await waitScreen(page, /inside-42[\s\S]*\/ #[\s\S]*\$ ?$/m, 'the workstation prompt after the detach');
    const ctrlP = await page.evaluate(() => window.__ctrlP);
    if (ctrlP.length !== 1 || ctrlP[0] !== true) {
        throw new Error(`ctrl-P's keydown was not kept from the browser (defaultPrevented: ${JSON.stringify(ctrlP)}): it would open the print dialog`);
    }
    if (pageErrors.length) throw new Error(`page errors: ${pageErrors.join('; ')}`);
    await page.locator('[data-step="detach"]').scrollIntoViewIfNeeded();
    await page.screenshot({ path: join(shots, 'ko-lesson-detach.png') });

    at('reload: the same shell with its scrollback');
    // A shell variable lives only in that shell: a new shell would not have it.
    await typeLine(page, 'MARK=kept-$((3*4)); echo before-$MARK');
    await waitScreen(page, /^before-kept-12$/m, 'before-kept-12');
    await page.reload({ waitUntil: 'load', timeout: WAIT_MS });
    await waitConnected(page);
    await waitScreen(page, 'inside-42', 'the earlier output (inside-42) after the reload');
    await waitScreen(page, /^before-kept-12$/m, 'the earlier output (before-kept-12) after the reload');
    // The lesson and its progress come back from the session.
    await page.locator('.lesson-pane[data-current-lesson="lifecycle"]').waitFor({ timeout: WAIT_MS });
    await waitStepDone(page, 'detach');
    await page.locator('#terminal').click();
    await typeLine(page, 'echo after-$MARK');
    await waitScreen(page, /^after-kept-12$/m, 'after-kept-12 (the same shell, its variable still set)');
    await checkLayout(page);

    at('a published port, opened from its link in a new tab');
    await typeLine(page, "docker run -d -p 8080:80 --name web busybox sh -c 'mkdir -p /www && echo hello-port > /www/index.html && httpd -f -p 80 -h /www'");
    const link = page.locator('.port-link[data-port="8080"]');
    await link.waitFor({ timeout: WAIT_MS });
    const href = await link.getAttribute('href');
    // httpd may take a moment after the container starts: the link can come first.
    let popup;
    let body = '';
    for (let i = 0; i < 5 && !body.includes('hello-port'); i++) {
        if (popup) await popup.close();
        [popup] = await Promise.all([context.waitForEvent('page', { timeout: WAIT_MS }), link.click()]);
        await popup.waitForLoadState('load', { timeout: WAIT_MS });
        body = (await popup.locator('body').textContent({ timeout: WAIT_MS })) || '';
        if (!body.includes('hello-port')) await page.waitForTimeout(500);
    }
    if (!body.includes('hello-port')) throw new Error(`the port page (${popup.url()}) says ${JSON.stringify(body.slice(0, 300))}, not hello-port`);
    if (!popup.url().endsWith(href)) throw new Error(`the new tab is at ${popup.url()}, the link was ${href}`);
    await popup.setViewportSize({ width: 1280, height: 720 });
    await popup.screenshot({ path: join(shots, 'port-page.png') });
    await popup.close();

    at('switch to English');
    await page.bringToFront();
    await page.locator('#lang-switch').click();
    await page.locator('#lang-switch[data-lang="en"]').waitFor({ timeout: WAIT_MS });
    for (const [sel, text] of [['.tagline', 'Docker classroom'], ['.lesson-heading', "A container's life"],
        ['[data-step="detach"] h3', 'Step out without stopping it']]) {
        const got = (await page.locator(sel).first().textContent()).trim();
        if (got !== text) throw new Error(`${sel} says ${JSON.stringify(got)} in English, not ${JSON.stringify(text)}`);
    }
    if ((await page.locator('html').getAttribute('lang')) !== 'en') throw new Error('<html lang> is not "en"');
    // Let the status strip catch up with the web container before the picture.
    await page.locator('.chip[data-container="web"][data-state="running"]').waitFor({ timeout: WAIT_MS });
    await page.screenshot({ path: join(shots, 'en-view.png') });
    if (pageErrors.length) throw new Error(`page errors: ${pageErrors.join('; ')}`);
    at('done');
} catch (e) {
    failed = e;
} finally {
    if (failed && page) {
        await page.screenshot({ path: join(shots, 'failure.png') }).catch(() => {});
        const text = await screenText(page).catch(() => '');
        writeFileSync(join(shots, 'failure-terminal.txt'), text);
    }
    if (browser) await browser.close().catch(() => {});
    clearTimeout(overall);
}
if (failed) {
    fail(`at "${step}": ${failed && failed.message ? failed.message : failed}\n(screenshot: ${join(shots, 'failure.png')})`);
}
log(`passed; screenshots in ${shots}`);
