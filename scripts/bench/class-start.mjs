// The class-start benchmark's students: each, at a random moment in [0, SPREAD_MS),
// makes a lab session (POST /api/sessions, as the playground page does when it opens)
// and opens its terminal; the time is from the POST to the first prompt on the
// terminal WebSocket. When every student has a prompt (or failed), it writes
//   {"students": [{"ok", "total", "create", "connect", "id", "error"}...]}
// (times in ms) to OUT, creates READY, and keeps the terminals open (an idle class,
// pages open) until the file DONE appears. Then it closes them and exits.
// Usage: node class-start.mjs BASE STUDENTS SPREAD_MS OUT READY DONE
import { writeFileSync, existsSync } from 'node:fs';
import { Term, PROMPT, sleep, now } from './terminal.mjs';

const [base, students, spread, out, ready, done] = [process.argv[2], +process.argv[3], +process.argv[4], process.argv[5], process.argv[6], process.argv[7]];
// A first prompt later than this counts as a failure (the goal is a few seconds).
const PROMPT_TIMEOUT_MS = 120000;

const terms = [];
async function student(n) {
    await sleep(Math.random() * spread);
    const r = { n, ok: false };
    const t0 = now();
    try {
        const resp = await fetch(`${base}/api/sessions`, { method: 'POST' });
        const body = await resp.text();
        if (resp.status !== 201) throw new Error(`POST /api/sessions: ${resp.status} ${body.slice(0, 200)}`);
        r.id = JSON.parse(body).id;
        const t1 = now();
        r.create = t1 - t0;
        const t = new Term(base, r.id);
        terms.push(t);
        await t.open();
        const t2 = await t.until((s) => PROMPT.test(s), 'first prompt', PROMPT_TIMEOUT_MS);
        r.connect = t2 - t1;
        r.total = t2 - t0;
        r.ok = true;
    } catch (e) {
        r.error = String(e.message || e);
        r.total = now() - t0;
    }
    return r;
}

const results = await Promise.all(Array.from({ length: students }, (_, n) => student(n)));
writeFileSync(out, JSON.stringify({ students: results }));
writeFileSync(ready, '');
while (!existsSync(done)) await sleep(200);
for (const t of terms) t.ws?.close();
await sleep(200);
process.exit(0);
