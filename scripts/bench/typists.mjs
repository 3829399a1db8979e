// Types KEYS keys into each given session's terminal at once; each key is sent when the
// previous one's echo came back. Prints {"keys":[latencies in ms]} on stdout.
// Usage: node typists.mjs BASE KEYS GAP_MS SESSION...
import { Term, PROMPT, sleep, now } from './terminal.mjs';

const [base, keys, gap, ...ids] = [process.argv[2], +process.argv[3], +process.argv[4], ...process.argv.slice(5)];
const terms = ids.map((id) => new Term(base, id));
await Promise.all(terms.map(async (t) => { await t.open(); await sleep(300); t.send('\x03'); await t.until((s) => PROMPT.test(s), 'prompt'); }));
const letters = 'abcdefghijklmnopqrstuvwxyz';
const lat = [];
await Promise.all(terms.map(async (t, n) => {
    await sleep(200 + Math.random() * 50);
    for (let k = 0; k < keys; k++) {
        const c = letters[(k + n) % letters.length];
        t.mark = t.text.length;
        const sent = now();
        t.send(c);
        lat.push((await t.until((s) => s.includes(c), `echo of key ${k}`, 15000)) - sent);
        if (gap > 0) await sleep(gap * (0.5 + Math.random()));
    }
    t.send('\x03');
    await t.until((s) => PROMPT.test(s), 'prompt after ctrl-C');
}));
for (const t of terms) t.ws.close();
console.log(JSON.stringify({ keys: lat }));
