// The same-build benchmark's students (Berth side): in every given session's terminal,
// first (not timed) `mkdir -p /root/hello && cd /root/hello` and the Dockerfile
// written from base64 (one line: a heredoc typed line by line would race busybox's
// cursor queries); then, at the same moment in all of them,
// `docker build -t hello:v1 . ; echo build-status-$?` until the prompt after it.
// Prints {"phases": {"build": [ms...]}, "failures": [...], "cached": builds whose
// output says "Using cache", "outputs": {session: the last of its output}}.
// Usage: node same-build.mjs BASE DOCKERFILE_BASE64 SESSION...
import { Term, PROMPT, openAll, plain, sleep, now } from './terminal.mjs';

const [base, b64, ...ids] = [process.argv[2], process.argv[3], ...process.argv.slice(4)];
const SETTLE_MS = 300;
const TIMEOUT_MS = 300000;

const terms = ids.map((id) => new Term(base, id));
await openAll(terms);
const failures = [];
const alive = new Set();

async function typed(t, line, test, what, ms = TIMEOUT_MS) {
    t.mark = t.text.length;
    const sent = now();
    t.send(line + '\r');
    return (await t.until(test, what, ms)) - sent;
}

// Setup, a few sessions at a time so it does not overlap with itself much.
let next = 0;
await Promise.all(Array.from({ length: 4 }, async () => {
    while (next < terms.length) {
        const n = next++;
        const t = terms[n];
        try {
            await sleep(SETTLE_MS);
            await typed(t, 'mkdir -p /root/hello && cd /root/hello', (s) => PROMPT.test(s), 'prompt after cd', 30000);
            await sleep(SETTLE_MS);
            await typed(t, `echo ${b64} | base64 -d > Dockerfile; echo written-$(wc -c < Dockerfile)`, (s) => /written-\d+[\s\S]*\$ $/.test(s), 'the Dockerfile', 30000);
            alive.add(n);
        } catch (e) {
            failures.push(`setup, session ${t.id}: ${String(e.message || e).slice(0, 300)}`);
        }
    }
}));

const times = [];
const outputs = {};
let cached = 0;
await sleep(SETTLE_MS);
const start = now() + 50;
await Promise.all([...alive].map(async (n) => {
    const t = terms[n];
    await sleep(start - now());
    const from = t.text.length;
    try {
        const ms = await typed(t, 'docker build -t hello:v1 . ; echo build-status-$?', (s) => /build-status-\d+\r?\n[\s\S]*\$ $/.test(s), 'the prompt after docker build');
        const out = plain(t.text.slice(from));
        outputs[t.id] = out.slice(-2000);
        if (!out.includes('build-status-0')) throw new Error(`docker build failed: ${JSON.stringify(out.slice(-400))}`);
        if (out.includes('Using cache')) cached++;
        times.push(ms);
    } catch (e) {
        failures.push(`build, session ${t.id}: ${String(e.message || e).slice(0, 400)}`);
    }
}));
for (const t of terms) t.ws.close();
console.log(JSON.stringify({ phases: { build: times }, failures, cached, outputs }));
process.exit(0);
