// The same-command benchmark's students (Berth side): in every given session's
// terminal, at the same moment (a barrier before each phase), a student types
//   run-it  docker run -it busybox sh           until the container's prompt (`/ # `)
//   exit    exit                                until the workstation's prompt again
//   run-d   docker run -d -p 8080:80 busybox sh -c '... httpd ...'
//                                               until the container id and the prompt
//   http-up GET /lab/ID/ports/8080/ through the server's proxy (curl), again every 20 ms
//           until it answers 200 with this session's page (from the prompt after run-d)
//   http    one more GET once it is up: curl's time_total (the proxy's own cost)
// Times in ms from sending the line (or the first GET) to the frame that shows the
// prompt (or the answer). Prints {"phases": {name: [ms...]}, "failures": [...]}.
// Usage: node same-command.mjs BASE SESSION...
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Term, PROMPT, openAll, sleep, now } from './terminal.mjs';

const [base, ...ids] = [process.argv[2], ...process.argv.slice(3)];
const CONTAINER_PROMPT = /# $/;
// busybox's line editor drops keys that come right after its cursor query (asked at
// each prompt): every line waits this long after the prompt before it is typed.
const SETTLE_MS = 300;
const PHASE_TIMEOUT_MS = 120000;

const terms = ids.map((id) => new Term(base, id));
await openAll(terms);

const phases = {};
const failures = [];
const alive = new Set(terms.map((_, n) => n));

// Runs `step(t, n)` in every live session at the same moment; it returns the ms to
// record. A session that fails is left out of the later phases.
async function phase(name, step) {
    phases[name] = [];
    await sleep(SETTLE_MS);
    const start = now() + 50;
    await Promise.all([...alive].map(async (n) => {
        await sleep(start - now());
        try {
            phases[name].push(await step(terms[n], n));
        } catch (e) {
            alive.delete(n);
            failures.push(`${name}, session ${terms[n].id}: ${String(e.message || e).slice(0, 300)}`);
        }
    }));
}

async function typed(t, line, test, what) {
    t.mark = t.text.length;
    const sent = now();
    t.send(line + '\r');
    return (await t.until(test, what, PHASE_TIMEOUT_MS)) - sent;
}

// curl, on both sides (pty-clients.py does the same): one GET, its own time_total (ms)
// when it answered 200 with `marker`, else null.
const execFileP = promisify(execFile);
async function get(url, marker) {
    const { stdout } = await execFileP('curl', ['-s', '--max-time', '10', '-w', '\n%{http_code} %{time_total}', url]).catch((e) => ({ stdout: e.stdout || '' }));
    const [code, total] = stdout.slice(stdout.lastIndexOf('\n') + 1).split(' ');
    return code === '200' && stdout.includes(marker) ? +total * 1000 : null;
}

await phase('run-it', (t) => typed(t, 'docker run -it busybox sh', (s) => CONTAINER_PROMPT.test(s), "the container's prompt"));
await phase('exit', (t) => typed(t, 'exit', (s) => PROMPT.test(s), "the workstation's prompt after exit"));
await phase('run-d', (t, n) => typed(t,
    `docker run -d -p 8080:80 busybox sh -c 'mkdir -p /www && echo page-${n} > /www/index.html && exec httpd -f -p 80 -h /www'`,
    (s) => /\n[0-9a-f]{64}\r?\n[\s\S]*\$ $/.test(s), 'the container id and the prompt after docker run -d'));
const url = (t) => `${base}/lab/${t.id}/ports/8080/`;
await phase('http-up', async (t, n) => {
    const t0 = now();
    while ((await get(url(t), `page-${n}`)) === null) {
        if (now() - t0 > PHASE_TIMEOUT_MS) throw new Error(`${url(t)} did not answer with page-${n}`);
        await sleep(20);
    }
    return now() - t0;
});
await phase('http', async (t, n) => {
    const ms = await get(url(t), `page-${n}`);
    if (ms === null) throw new Error(`${url(t)} stopped answering`);
    return ms;
});

for (const t of terms) t.ws.close();
console.log(JSON.stringify({ phases, failures }));
process.exit(0);
