// Types KEYS keys into each given session's terminal at once; each key is sent when the
// previous one's echo came back. Prints {"keys":[latencies in ms]} on stdout.
// Usage: node typists.mjs BASE KEYS GAP_MS WARMUP SESSION...
//
// WARMUP keys are typed first and not counted: this node process is new in every
// scenario, and its first keys run while V8 compiles the client's code on background
// threads (bursts of 5-18 ms of CPU on the same two cores as the server). A student's
// browser is warm after the first keys of a lesson, and it is not on the server.
// With WARM_FILE set, a line goes to that file (a FIFO) when the counted keys begin:
// the script starts the others' `docker ps` then, so they overlap the counted keys.
import { Term, openAll, typeKeys } from './terminal.mjs';

const [base, keys, gap, warmup, ...ids] = [process.argv[2], +process.argv[3], +process.argv[4], +process.argv[5], ...process.argv.slice(6)];
const terms = ids.map((id) => new Term(base, id));
await openAll(terms);
if (warmup > 0) await Promise.all(terms.map((t, n) => typeKeys(t, n, warmup, gap, [])));
if (process.env.WARM_FILE) (await import('node:fs')).writeFileSync(process.env.WARM_FILE, 'warm\n');
const lat = [];
await Promise.all(terms.map((t, n) => typeKeys(t, n, keys, gap, lat)));
for (const t of terms) t.ws.close();
console.log(JSON.stringify({ keys: lat }));
