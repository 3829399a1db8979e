// The class benchmark's clients: DASHBOARDS teacher dashboards (the live event stream
// of /api/teach/classes/{id}/live) and one terminal per student. Every student types
// KEYS keys (each sent when the previous one's echo came back, GAP_MS apart), then
// `docker search busybox` (lesson 1's first step), all at once. Prints JSON:
// {"keys":[echo latencies, ms], "seen":{name: epoch ms when dashboard 1 first showed the
//  student's step done}, "events": dashboard events received}.
// Usage: node class-typists.mjs BASE COOKIE CLASS_ID DASHBOARDS KEYS GAP_MS NAME=SESSION...
import { Term, openAll, typeKeys, sleep, now } from './terminal.mjs';

const [base, cookie, classId, dashboards, keys, gap] = [process.argv[2], process.argv[3], process.argv[4], +process.argv[5], +process.argv[6], +process.argv[7]];
const students = process.argv.slice(8).map((a) => { const i = a.indexOf('='); return { name: a.slice(0, i), id: a.slice(i + 1) }; });

const seen = {};
let events = 0;
const streams = [];
async function dashboard(n) {
    const ctl = new AbortController();
    streams.push(ctl);
    const resp = await fetch(`${base}/api/teach/classes/${classId}/live`, { headers: { cookie }, signal: ctl.signal });
    if (!resp.ok) throw new Error(`dashboard ${n}: ${resp.status} ${await resp.text()}`);
    const dec = new TextDecoder();
    let buf = '';
    try {
        for await (const chunk of resp.body) {
            buf += dec.decode(chunk, { stream: true });
            let end;
            while ((end = buf.indexOf('\n\n')) >= 0) {
                const block = buf.slice(0, end);
                buf = buf.slice(end + 2);
                const data = block.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
                if (!data) continue;
                const at = Date.now();
                events++;
                if (n !== 0) continue;
                for (const s of JSON.parse(data).students) if (s.done > 0 && !(s.name in seen)) seen[s.name] = at;
            }
        }
    } catch (e) {
        if (e.name !== 'AbortError') throw e;
    }
}
const running = [];
for (let n = 0; n < dashboards; n++) running.push(dashboard(n));

const terms = students.map((s) => new Term(base, s.id));
await openAll(terms);
const lat = [];
await Promise.all(terms.map(async (t, n) => {
    await typeKeys(t, n, keys, gap, lat);
    // The shell asks the terminal where the cursor is after each prompt; what is typed
    // before the answer went back is eaten as part of it.
    await sleep(300);
    t.send('docker search busybox >/dev/null; echo searched-$((6*7))\r');
    await t.until((s) => s.includes('searched-42'), 'the search', 60000);
}));
// Every step done must reach the dashboard; give it a few seconds.
const until = now() + 10000;
while (dashboards > 0 && Object.keys(seen).length < students.length && now() < until) await sleep(50);
if (process.env.DUMP) for (const t of terms) console.error(JSON.stringify(t.text.slice(-600)));
for (const t of terms) t.ws.close();
for (const c of streams) c.abort();
await Promise.allSettled(running);
console.log(JSON.stringify({ keys: lat, seen, events }));
